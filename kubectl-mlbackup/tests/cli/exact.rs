//! Objects as they occur in real clusters and files as kubectl writes them (issue 12): a name
//! of 253 characters, numbers a lossy parser changes, and restores from what `kubectl apply -f`
//! takes (a folder of any name, `kind: List`, several documents, a byte order mark, CRLF), with
//! the real `kubectl` reading the same files.

use mlbackup_testkit::sample::SampleSpec;
use serde_json::{Value, json};

use crate::support::{FakeCluster, Run, Sandbox};

/// Deployment LRSes only, `per_namespace` in each of `namespaces` namespaces.
fn deployments_only(per_namespace: usize, namespaces: usize) -> SampleSpec {
    SampleSpec {
        lrs: per_namespace * namespaces,
        spark: 0,
        other: 0,
        namespaces,
        ..SampleSpec::default()
    }
}

/// A valid name of the longest kind: 253 characters, four dot-separated parts.
fn longest_name() -> String {
    let name = format!(
        "cm-{}.{}.{}.{}",
        "a".repeat(60),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(name.len(), 253);
    name
}

/// A copy of `template` (an object as a client creates it) named `name`, with `spec` merged in.
fn named_like(template: &Value, name: &str, spec: Value) -> Value {
    let mut object = template.clone();
    object["metadata"]["name"] = json!(name);
    for (key, value) in spec.as_object().unwrap() {
        object["spec"][key] = value.clone();
    }
    object
}

/// Runs the plugin with the cluster's kubeconfig and `--dir backups` where it takes one.
fn plugin(sandbox: &Sandbox, cluster: &FakeCluster, args: &[&str]) -> Run {
    let kubeconfig = cluster.kubeconfig_arg();
    let mut all: Vec<&str> = args.to_vec();
    all.push(&kubeconfig);
    sandbox.run(&all)
}

/// Runs the real kubectl against `cluster` from the sandbox's HOME.
fn kubectl(sandbox: &Sandbox, cluster: &FakeCluster, args: &[&str]) -> std::process::Output {
    std::process::Command::new(mlbackup_testkit::tools::kubectl())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sandbox.home())
        .env("KUBECONFIG", &cluster.kubeconfig)
        .current_dir(sandbox.home())
        .output()
        .expect("run kubectl")
}

fn kubectl_ok(sandbox: &Sandbox, cluster: &FakeCluster, args: &[&str]) -> String {
    let output = kubectl(sandbox, cluster, args);
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Labels, annotations and spec: what a restore brings back.
fn desired(object: &Value) -> Value {
    json!({
        "labels": object["metadata"]["labels"],
        "annotations": object["metadata"]["annotations"],
        "spec": object["spec"],
    })
}

fn result_counts(run: &Run) -> Value {
    let summary = &run.json()["summary"];
    json!([summary["created"], summary["unchanged"], summary["failed"]])
}

#[test]
fn a_253_character_name_is_backed_up_verified_shown_restored_diffed_and_recovered() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::start(&sandbox, deployments_only(1, 1), Default::default());
    let short = cluster.sample.lrs[0].clone();
    let namespace = short["metadata"]["namespace"].as_str().unwrap().to_string();
    let short_name = short["metadata"]["name"].as_str().unwrap().to_string();
    let long = longest_name();
    cluster
        .kube
        .insert(named_like(&short, &long, json!({"replicas": 3})))
        .unwrap();

    let run = plugin(
        &sandbox,
        &cluster,
        &["backup", "--dir", "backups", "--name", "long", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(run.json()["objects"], 2);
    let folder = sandbox.path("backups/long");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap();
    let items: Vec<(&str, &str)> = manifest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["path"].as_str().unwrap()))
        .collect();
    assert_eq!(items.len(), 2);
    let (_, long_path) = items.iter().find(|(name, _)| *name == long).unwrap();
    let (_, short_path) = items.iter().find(|(name, _)| *name == short_name).unwrap();
    assert_eq!(*short_path, format!("{namespace}/{short_name}.yaml"));
    let long_file = long_path.rsplit('/').next().unwrap();
    assert!(
        long_file.len() <= 200 && long_file.starts_with("cm-aaaa") && long_file.ends_with(".yaml"),
        "{long_file}"
    );
    let stored: Value =
        serde_yaml::from_slice(&std::fs::read(folder.join(long_path)).unwrap()).unwrap();
    assert_eq!(stored["metadata"]["name"], long.as_str());

    plugin(&sandbox, &cluster, &["verify", "long", "--dir", "backups"]).expect_code(0);
    let shown = plugin(
        &sandbox,
        &cluster,
        &["show", "long", "--dir", "backups", "--files", "-o", "json"],
    );
    shown.expect_code(0);
    let files = shown.json()["files"].clone();
    let mut shown_names: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    shown_names.sort();
    let mut expected = [long.as_str(), short_name.as_str()];
    expected.sort();
    assert_eq!(shown_names, expected);
    plugin(&sandbox, &cluster, &["diff", "long", "--dir", "backups"]).expect_code(0);

    // Into an empty cluster: the object exists under its exact name with its spec.
    let target = FakeCluster::empty(&sandbox, "kubeconfig-new");
    let run = plugin(
        &sandbox,
        &target,
        &[
            "restore",
            "long",
            "--dir",
            "backups",
            "--create-namespaces",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    assert_eq!(result_counts(&run), json!([2, 0, 0]));
    let restored = target.served(&namespace, &long);
    assert_eq!(restored["metadata"]["name"], long.as_str());
    assert_eq!(
        desired(&restored),
        desired(&cluster.served(&namespace, &long))
    );
    assert_eq!(restored["spec"]["replicas"], 3);
    plugin(&sandbox, &target, &["diff", "long", "--dir", "backups"]).expect_code(0);

    // The runbook: prepare takes the backup, recover brings both back after an upgrade.
    let run = plugin(
        &sandbox,
        &cluster,
        &[
            "prepare",
            "--yes",
            "--dir",
            "backups",
            "--name",
            "before-upgrade",
            "--skip-deployments",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    for name in [&long, &short_name] {
        assert!(cluster.kube.remove("lrs", Some(&namespace), name));
    }
    let run = plugin(
        &sandbox,
        &cluster,
        &[
            "recover",
            "before-upgrade",
            "--dir",
            "backups",
            "--skip-deployments",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    assert_eq!(cluster.served(&namespace, &long)["spec"]["replicas"], 3);
    assert!(
        cluster
            .kube
            .get("lrs", Some(&namespace), &short_name)
            .is_some()
    );
}

/// The numbers of issue 12 as a spec holds them.
fn numbers() -> Value {
    serde_json::from_str(
        r#"{"f": 0.9215686321258545, "g": 10587.436593658975, "h": 123456789.12345679,
            "i": 9007199254740993, "min": -9223372036854775808, "max": 9223372036854775807,
            "one": 1.0, "zero": -0.0, "tiny": 5e-324}"#,
    )
    .unwrap()
}

/// The numbers of `object`'s spec as the JSON text a client reads: equal text, equal numbers.
fn spec_numbers(object: &Value) -> String {
    let spec = &object["spec"];
    let picked: serde_json::Map<String, Value> = numbers()
        .as_object()
        .unwrap()
        .keys()
        .map(|key| (key.clone(), spec[key].clone()))
        .collect();
    serde_json::to_string(&picked).unwrap()
}

#[test]
fn numbers_come_back_exactly_and_diff_sees_one_ulp() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::start(&sandbox, deployments_only(1, 1), Default::default());
    let template = source.sample.lrs[0].clone();
    let namespace = template["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    source
        .kube
        .insert(named_like(&template, "numbers", numbers()))
        .unwrap();
    let served = source.served(&namespace, "numbers");
    // As the real API server keeps them: `1.0` and `-0.0` are integers once stored.
    assert_eq!(
        spec_numbers(&served),
        r#"{"f":0.9215686321258545,"g":10587.436593658975,"h":123456789.12345679,"i":9007199254740993,"min":-9223372036854775808,"max":9223372036854775807,"one":1,"zero":0,"tiny":5e-324}"#
    );

    plugin(
        &sandbox,
        &source,
        &["backup", "--dir", "backups", "--name", "numbers"],
    )
    .expect_code(0);
    let file = sandbox.path(&format!("backups/numbers/{namespace}/numbers.yaml"));
    let text = std::fs::read_to_string(&file).unwrap();
    for line in [
        "  f: 0.9215686321258545\n",
        "  g: 10587.436593658975\n",
        "  h: 123456789.12345679\n",
        "  i: 9007199254740993\n",
        "  max: 9223372036854775807\n",
        "  min: -9223372036854775808\n",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    // kubectl reads the file as the same numbers.
    let read: Value = serde_json::from_str(&kubectl_ok(
        &sandbox,
        &source,
        &[
            "create",
            "--dry-run=client",
            "-o",
            "json",
            "-f",
            file.to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(spec_numbers(&read), spec_numbers(&served));

    let target = FakeCluster::empty(&sandbox, "kubeconfig-new");
    plugin(
        &sandbox,
        &target,
        &[
            "restore",
            "numbers",
            "--dir",
            "backups",
            "--create-namespaces",
        ],
    )
    .expect_code(0);
    assert_eq!(
        spec_numbers(&target.served(&namespace, "numbers")),
        spec_numbers(&served)
    );
    plugin(&sandbox, &target, &["diff", "numbers", "--dir", "backups"]).expect_code(0);

    // One ulp off: a difference, shown with both values.
    target.merge_patch(
        &namespace,
        "numbers",
        json!({"spec": {"f": 0.9215686321258544}}),
    );
    let run = plugin(&sandbox, &target, &["diff", "numbers", "--dir", "backups"]);
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("-  f: 0.9215686321258545\n+  f: 0.9215686321258544\n"),
        "{}",
        run.stdout
    );
    // And back.
    let run = plugin(
        &sandbox,
        &target,
        &[
            "restore",
            "numbers",
            "--dir",
            "backups",
            "--existing=update",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    assert_eq!(run.json()["summary"]["updated"], 1);
    assert_eq!(
        spec_numbers(&target.served(&namespace, "numbers")),
        spec_numbers(&served)
    );
}

/// `objects` as one YAML stream of `---` documents.
fn documents(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap()))
        .collect()
}

fn names_in(cluster: &FakeCluster) -> Vec<String> {
    let mut names: Vec<String> = cluster
        .kube
        .list("lrs", None)
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

#[test]
fn restore_takes_what_kubectl_apply_takes() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::start(&sandbox, deployments_only(2, 3), Default::default());
    let [first, second, third] = [0, 1, 2].map(|i| source.sample.namespaces[i].clone());
    let served = |namespace: &str| source.kube.list("lrs", Some(namespace));

    // An operator's folder, not named lrs_backup_*: what `kubectl get -o yaml` wrote (a List),
    // a file of several documents with CRLF line ends and an empty document, and a file an
    // editor saved with a byte order mark; and a note kubectl passes over.
    let folder = sandbox.path("exported");
    std::fs::create_dir(&folder).unwrap();
    let list = kubectl_ok(
        &sandbox,
        &source,
        &["get", "lrs", "-n", &first, "-o", "yaml"],
    );
    assert!(list.contains("kind: List"), "{list}");
    std::fs::write(folder.join("list.yaml"), &list).unwrap();
    let several = format!("{}---\n", documents(&served(&second))).replace('\n', "\r\n");
    std::fs::write(folder.join("several.yaml"), several).unwrap();
    let bom = format!(
        "\u{feff}{}",
        serde_yaml::to_string(&served(&third)[0]).unwrap()
    );
    std::fs::write(folder.join("bom.yml"), bom).unwrap();
    std::fs::write(folder.join("NOTES.txt"), "exported before the upgrade\n").unwrap();

    // The real kubectl takes the folder (validation off: the fake serves no OpenAPI v2, which
    // kubectl validates Lists with).
    let target = FakeCluster::empty(&sandbox, "kubeconfig-new");
    let kubectl_reads = kubectl_ok(
        &sandbox,
        &target,
        &[
            "create",
            "--dry-run=client",
            "--validate=false",
            "-o",
            "name",
            "-f",
            "exported",
        ],
    );
    assert_eq!(kubectl_reads.lines().count(), 5, "{kubectl_reads}");

    let run = plugin(
        &sandbox,
        &target,
        &["restore", "./exported", "--create-namespaces", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(result_counts(&run), json!([5, 0, 0]));
    assert_eq!(
        run.json()["journalNote"],
        "the backup has no manifest.json, so it keeps no journal"
    );
    let mut expected: Vec<String> = source
        .kube
        .list("lrs", None)
        .iter()
        .take(5)
        .map(|o| {
            format!(
                "{}/{}",
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    expected.sort();
    assert_eq!(names_in(&target), expected);
    for name in &expected {
        let (namespace, name) = name.split_once('/').unwrap();
        assert_eq!(
            desired(&target.served(namespace, name)),
            desired(&source.served(namespace, name)),
            "{namespace}/{name}"
        );
    }
    let diff = plugin(&sandbox, &target, &["diff", "./exported", "-o", "json"]);
    diff.expect_code(0);
    assert_eq!(
        diff.json()["selector"],
        Value::Null,
        "no scope, so nothing is extra"
    );
    plugin(&sandbox, &target, &["verify", "./exported"]).expect_code(0);

    // One file given by path: nothing to do, nothing written.
    target.kube.requests().clear();
    let run = plugin(
        &sandbox,
        &target,
        &["restore", "exported/list.yaml", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(result_counts(&run), json!([0, 2, 0]));
    assert_eq!(target.writes(), 0);
    assert!(
        !folder.join("journal.jsonl").exists(),
        "the folder stays the operator's"
    );
}

#[test]
fn what_would_apply_differently_or_is_no_lrs_is_refused_before_any_change() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::start(&sandbox, deployments_only(2, 1), Default::default());
    let objects = source.kube.list("lrs", None);
    let folder = sandbox.path("mixed");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("good.yaml"),
        serde_yaml::to_string(&objects[0]).unwrap(),
    )
    .unwrap();
    // `replicas` written twice: kubectl keeps the last value, a reader sees the first.
    let twice = serde_yaml::to_string(&objects[1])
        .unwrap()
        .replace("spec:\n", "spec:\n  replicas: 5\n");
    std::fs::write(folder.join("twice.yaml"), &twice).unwrap();
    let with_config_map = format!(
        "{}---\n{}",
        serde_yaml::to_string(&named_like(&objects[1], "third", json!({}))).unwrap(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n"
    );
    std::fs::write(folder.join("other.yaml"), with_config_map).unwrap();
    let kubectl_reads: Value = serde_json::from_str(&kubectl_ok(
        &sandbox,
        &source,
        &[
            "create",
            "--dry-run=client",
            "-o",
            "json",
            "-f",
            "mixed/twice.yaml",
        ],
    ))
    .unwrap();
    assert_ne!(
        kubectl_reads["spec"]["replicas"], 5,
        "kubectl keeps the other one"
    );

    let target = FakeCluster::empty(&sandbox, "kubeconfig-new");
    target.kube.requests().clear();
    let run = plugin(
        &sandbox,
        &target,
        &["restore", "./mixed", "--create-namespaces"],
    );
    run.expect_code(1);
    // The error points at the repeated key, the second `replicas` under `spec`.
    let replicas_line = twice
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("  replicas: "))
        .nth(1)
        .map(|(index, _)| index + 1)
        .unwrap();
    assert_ne!(
        replicas_line,
        2 + twice.lines().position(|l| l == "spec:").unwrap(),
        "not the first key of the map"
    );
    mlbackup_testkit::assert_run_snapshot!("mixed", run.shown(&sandbox));
    assert_eq!(replicas_line, 23, "the line the snapshot names");
    assert_eq!(
        target.writes(),
        0,
        "{:#?}",
        target.kube.requests().entries()
    );
    assert!(target.kube.list("lrs", None).is_empty());

    // Not a folder of YAML: named as such.
    let empty = sandbox.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = plugin(&sandbox, &target, &["restore", "./empty"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot restore the backup `./empty`
      caused by: ./empty is not a backup: it holds no YAML or JSON files (*.yaml, *.yml, *.json)
    hint: only folders written by `kubectl mlbackup backup` (with a manifest.json) or by the documented shell loop (lrs_backup_* holding YAML files) are managed
    "#);
}

#[test]
fn restore_reads_json_files_as_kubectl_apply_does() {
    let sandbox = Sandbox::new();
    let source = FakeCluster::start(&sandbox, deployments_only(2, 2), Default::default());
    let [first, second] = [0, 1].map(|i| source.sample.namespaces[i].clone());

    // What `kubectl get -o json` writes: one object, and a List.
    let folder = sandbox.path("exported-json");
    std::fs::create_dir(&folder).unwrap();
    let one_name = source.kube.list("lrs", Some(&second))[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let one = kubectl_ok(
        &sandbox,
        &source,
        &["get", "lrs", &one_name, "-n", &second, "-o", "json"],
    );
    assert!(one.trim_start().starts_with('{'), "{one}");
    std::fs::write(folder.join("one.json"), &one).unwrap();
    let list = kubectl_ok(
        &sandbox,
        &source,
        &["get", "lrs", "-n", &first, "-o", "json"],
    );
    assert!(list.contains("\"kind\": \"List\""), "{list}");
    std::fs::write(folder.join("list.json"), &list).unwrap();

    // The real kubectl reads both files.
    let target = FakeCluster::empty(&sandbox, "kubeconfig-new");
    let kubectl_reads = kubectl_ok(
        &sandbox,
        &target,
        &[
            "create",
            "--dry-run=client",
            "--validate=false",
            "-o",
            "name",
            "-f",
            "exported-json",
        ],
    );
    assert_eq!(kubectl_reads.lines().count(), 3, "{kubectl_reads}");

    let run = plugin(
        &sandbox,
        &target,
        &[
            "restore",
            "./exported-json",
            "--create-namespaces",
            "-o",
            "json",
        ],
    );
    run.expect_code(0);
    assert_eq!(result_counts(&run), json!([3, 0, 0]));
    let mut expected: Vec<String> = source
        .kube
        .list("lrs", Some(&first))
        .iter()
        .map(|o| format!("{first}/{}", o["metadata"]["name"].as_str().unwrap()))
        .chain([format!("{second}/{one_name}")])
        .collect();
    expected.sort();
    assert_eq!(names_in(&target), expected);
    for name in &expected {
        let (namespace, name) = name.split_once('/').unwrap();
        assert_eq!(
            desired(&target.served(namespace, name)),
            desired(&source.served(namespace, name)),
            "{namespace}/{name}"
        );
    }
    plugin(&sandbox, &target, &["verify", "./exported-json"]).expect_code(0);
    let diff = plugin(
        &sandbox,
        &target,
        &["diff", "./exported-json", "-o", "json"],
    );
    diff.expect_code(0);
    let show = plugin(
        &sandbox,
        &target,
        &["show", "./exported-json", "-o", "json"],
    );
    show.expect_code(0);
    assert_eq!(show.json()["lrsCount"], 3);
    assert_eq!(show.json()["errors"], json!([]));
}
