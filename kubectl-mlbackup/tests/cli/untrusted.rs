//! What servers and other local users hand the plugin cannot steer it (DESIGN.md section 13):
//! files are never written or read through a planted symlink, server text cannot act on the
//! terminal or forge lines, names no API server accepts never become file names, what a server
//! sends is bounded (bytes, pages, a list that never ends, `--timeout`), and the token stays out
//! of what it echoes back. Each test plays the misbehaving server or the other user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use mlbackup_testkit::datarobot::{
    DeploymentSeed, DeploymentStatus, FakeDataRobotOptions, object_id,
};
use mlbackup_testkit::faults::{Fault, FaultRule};
use serde_json::json;

use crate::support::{FakeApi, FakeCluster, Run, Sandbox};

fn fast() -> FakeDataRobotOptions {
    FakeDataRobotOptions {
        status_change_duration: Duration::from_millis(40),
        ..FakeDataRobotOptions::default()
    }
}

/// A sealed sandbox pointed at a fake API with `active` deployments, with the admin token.
fn with_api(active: usize) -> (Sandbox, FakeApi) {
    let sandbox = Sandbox::new();
    let api = FakeApi::start(&sandbox, active, 0, fast());
    let token = api.datarobot.admin_token().to_string();
    (api.configure(sandbox, &token), api)
}

/// Whether `text` holds anything a terminal would act on (newlines apart).
fn has_controls(text: &str) -> bool {
    text.chars()
        .any(|c| mlbackup_helper::text::is_escaped(c) && c != '\n')
}

#[test]
fn the_state_file_is_never_written_through_a_symlink_another_user_planted() {
    let (sandbox, api) = with_api(2);
    let victim = sandbox.path("authorized_keys");
    std::fs::write(&victim, "precious\n").unwrap();
    // The temp name the snapshot used to be written under.
    let shared = mlbackup_testkit::tools::plant_symlink_as_another_user(&victim, ".state.json.tmp");
    let state = shared.path().join("state.json");
    sandbox
        .run(&[
            "deployments",
            "deactivate",
            "--yes",
            "--via",
            "local",
            "--state",
            state.to_str().unwrap(),
        ])
        .expect_code(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = std::fs::symlink_metadata(&state).unwrap();
    assert!(meta.file_type().is_file(), "the state file is not a link");
    let mine = std::fs::metadata(sandbox.home()).unwrap().uid();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (mine, 0o600));
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(snapshot["deployments"].as_array().unwrap().len(), 2);
    assert_eq!(api.datarobot.status_history().len(), 2);
}

#[test]
fn restore_and_diff_refuse_items_behind_a_symlinked_namespace_folder() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let kubeconfig = cluster.kubeconfig_arg();
    let backup = ["--dir", "backups"];
    let mut args = vec!["backup", kubeconfig.as_str(), "--name", "b"];
    args.extend(backup);
    sandbox.run(&args).expect_code(0);
    // The namespace folder moved out of the backup and linked back: the same bytes, read from
    // wherever the link points.
    let folder = sandbox.path("backups/b");
    let elsewhere = sandbox.path("elsewhere");
    std::fs::rename(folder.join("dr-app"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, folder.join("dr-app")).unwrap();
    let files: Vec<String> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| format!("dr-app/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert_eq!(files.len(), 2);

    let verify = sandbox.run(&["verify", "b", "--dir", "backups", "-o", "json"]);
    verify.expect_code(1);
    let problems = verify.json()["problems"].clone();
    assert_eq!(problems[0]["path"], "dr-app");
    assert_eq!(problems[0]["kind"], "unexpected");
    for command in ["restore", "diff"] {
        let mut args = vec![command, "b", kubeconfig.as_str()];
        args.extend(backup);
        let run = sandbox.run(&args);
        run.expect_code(1);
        assert!(
            run.stderr
                .starts_with("error: 2 files of the backup cannot be restored:\n"),
            "{command}: {}",
            run.stderr
        );
        for file in &files {
            assert!(
                run.stderr.contains(&format!(
                    "  {file}: a symbolic link is in its path (not followed)"
                )),
                "{command}: {}",
                run.stderr
            );
        }
    }
    assert_eq!(cluster.writes(), 0);
}

/// A label with escape sequences (clear the screen, set the window title), one with a line of
/// its own, one with a C1 control, one with a bidirectional override (shown as `inactive`
/// reversed: "Trojan Source").
const EVIL_LABELS: [&str; 4] = [
    "\u{1b}[2J\u{1b}]0;owned\u{7}screen",
    "row\n65f0c0de0000000000000099   forged       inactive",
    "c1\u{9b}31mred",
    "x \u{202e}evitcani\u{202c}",
];

#[test]
fn deployment_labels_cannot_drive_the_terminal_or_forge_rows() {
    let (sandbox, api) = with_api(0);
    for (n, label) in EVIL_LABELS.iter().enumerate() {
        api.datarobot.add_deployment(DeploymentSeed {
            id: object_id(n as u64),
            ..DeploymentSeed::new(*label, DeploymentStatus::Active)
        });
    }
    let run = sandbox.run(&["deployments", "list", "--via", "local"]);
    run.expect_code(0);
    assert!(!has_controls(&run.stdout), "{:?}", run.stdout);
    assert_eq!(
        run.stdout,
        r"ID                         LABEL                                                   STATUS
65f0c0de0000000000000000   \x1b[2J\x1b]0;owned\x07screen                           active
65f0c0de0000000000000002   c1\u{9b}31mred                                          active
65f0c0de0000000000000001   row\n65f0c0de0000000000000099   forged       inactive   active
65f0c0de0000000000000003   x \u{202e}evitcani\u{202c}                              active
"
    );
    // JSON keeps the labels exactly, escaped the JSON way.
    let json = sandbox
        .run(&["deployments", "list", "--via", "local", "-o", "json"])
        .expect_code(0)
        .json();
    let labels: Vec<&str> = json["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect();
    let mut expected = EVIL_LABELS.to_vec();
    expected.sort();
    assert_eq!(labels, expected);

    // The report of a change quotes the labels too.
    let run = sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--via",
        "local",
        "--state",
        "s.json",
    ]);
    run.expect_code(0);
    assert!(!has_controls(&run.stdout), "{:?}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 1 + 4 + 2, "{}", run.stdout);

    // An error message of the server is one line of the error, escaped.
    api.datarobot.faults().add(FaultRule::new(
        "/api/v2/version/",
        Fault::json(
            403,
            &json!({ "message": "denied\u{1b}]0;owned\u{7}\nerror: forged line" }),
        ),
        None,
    ));
    let run = sandbox.run(&["deployments", "list", "--via", "local"]);
    run.expect_code(1);
    assert!(!has_controls(&run.stderr), "{:?}", run.stderr);
    assert!(
        run.stderr
            .contains("denied\\x1b]0;owned\\x07\\nerror: forged line"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr
            .lines()
            .any(|line| line.starts_with("error: forged")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_huge_label_does_not_lose_the_report_of_a_deactivation() {
    let (sandbox, api) = with_api(0);
    api.datarobot.add_deployment(DeploymentSeed {
        id: object_id(1),
        ..DeploymentSeed::new("L".repeat(65_536), DeploymentStatus::Active)
    });
    let run = sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--via",
        "local",
        "--state",
        "s.json",
    ]);
    run.expect_code(0);
    let row = run.stdout.lines().nth(1).unwrap();
    assert!(
        row.contains(&format!(
            "{}…   active   inactive   changed",
            "L".repeat(511)
        )),
        "{}",
        &row[..80]
    );
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    assert_eq!(
        api.datarobot.deployment(&object_id(1)).unwrap().status,
        DeploymentStatus::Inactive
    );
}

/// An LRS as an API server lists it, named as given.
fn listed_lrs(namespace: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "lrs.datarobot.com/v1",
        "kind": "LongRunningService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("uid-{}", name.len()),
            "resourceVersion": "7",
            "labels": {"datarobot-lrs-type": "deployment"},
        },
        "spec": {"image": "x"},
    })
}

/// A list answer of the LRS collection holding `items`, continued with `continue_token`.
fn list_answer(items: Vec<serde_json::Value>, continue_token: Option<&str>) -> Fault {
    Fault::json(
        200,
        &json!({
            "apiVersion": "lrs.datarobot.com/v1",
            "kind": "LongRunningServiceList",
            "metadata": {"resourceVersion": "9", "continue": continue_token},
            "items": items,
        }),
    )
}

/// Every file and folder name under `dir`, recursively.
fn names_under(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        names.push(entry.file_name().to_string_lossy().into_owned());
        if entry.file_type().unwrap().is_dir() {
            names.extend(names_under(&entry.path()));
        }
    }
    names
}

#[test]
fn names_no_api_server_accepts_never_become_file_names() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 1, 1);
    let kubeconfig = cluster.kubeconfig_arg();
    for (case, (namespace, name)) in [
        ("dr-app", "cm-\u{1b}]0;owned\u{7}x"),
        ("dr\napp", "cm-a"),
        ("dr-app", "../../escaped"),
    ]
    .into_iter()
    .enumerate()
    {
        cluster.kube.faults().clear();
        cluster.kube.faults().add(
            FaultRule::new(
                "lrs.datarobot.com/v1/lrs",
                list_answer(
                    vec![listed_lrs("dr-app", "cm-good"), listed_lrs(namespace, name)],
                    None,
                ),
                None,
            )
            .with_method(http::Method::GET),
        );
        // Named, so that the snapshot does not depend on whether two runs share a minute.
        let name = format!("refused-{case}");
        let run = sandbox.run(&[
            "backup",
            &kubeconfig,
            "--dir",
            "backups",
            "--name",
            &name,
            "-o",
            "json",
        ]);
        run.expect_code(1);
        assert!(!has_controls(&run.stderr), "{:?}", run.stderr);
        mlbackup_testkit::assert_run_snapshot!(format!("refused_name_{case}"), run.shown(&sandbox));
        assert_eq!(run.json()["status"], "partial");
        assert_eq!(run.json()["objects"], 1, "the good one before it");
    }
    let names = names_under(&sandbox.path("backups"));
    assert!(names.iter().all(|n| !has_controls(n)), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("escaped")), "{names:?}");
    assert!(!sandbox.path("escaped.yaml").exists());
}

#[test]
fn a_deployment_list_that_never_ends_ends_with_an_error() {
    let (sandbox, api) = with_api(1);
    let base = api.datarobot.url();
    let deployment = json!({"id": object_id(0), "label": "model-0000", "status": "active"});
    // `next` leads back to the page itself.
    api.datarobot.faults().add(FaultRule::new(
        "/api/v2/deployments/",
        Fault::json(
            200,
            &json!({
                "count": 1,
                "data": [deployment],
                "next": format!("{base}/api/v2/deployments/?limit=100"),
                "previous": null,
            }),
        ),
        None,
    ));
    let run = sandbox.run(&["deployments", "list", "--via", "local"]);
    mlbackup_testkit::assert_run_snapshot!("next_leads_back", run.shown(&sandbox));

    // A totalCount no list holds: nothing is sized by it (the process used to abort).
    api.datarobot.faults().clear();
    api.datarobot.faults().add(FaultRule::new(
        "/api/v2/deployments/",
        Fault::json(
            200,
            &json!({
                "count": 1,
                "data": [deployment],
                "next": format!("{base}/api/v2/deployments/?offset=1&limit=1"),
                "previous": null,
                "totalCount": 1_000_000_000_000_u64,
            }),
        ),
        None,
    ));
    let run = sandbox.run(&["deployments", "list", "--via", "local"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot list the deployments at https://127.0.0.1:[PORT]/api/v2/
      caused by: the deployment list never ends: its `next` link leads back to https://127.0.0.1:[PORT]/api/v2/deployments/?offset=1&limit=1, a page already read
    "#);
}

#[test]
fn answers_larger_than_any_real_one_are_not_read() {
    let (sandbox, api) = with_api(1);
    api.datarobot.faults().add(FaultRule::new(
        "/api/v2/deployments/",
        Fault::HugeBody(64 << 20),
        None,
    ));
    let run = sandbox.run(&["deployments", "list", "--via", "local"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot list the deployments at https://127.0.0.1:[PORT]/api/v2/
      caused by: the answer of https://127.0.0.1:[PORT]/api/v2/deployments/?limit=100 is larger than 4 MiB, more than any DataRobot API answer; it was not read
    "#);

    let cluster = FakeCluster::with_lrs(&sandbox, 1, 1);
    cluster.kube.faults().add(
        FaultRule::new("lrs.datarobot.com/v1/lrs", Fault::HugeBody(80 << 20), None)
            .with_method(http::Method::GET),
    );
    let run = sandbox.run(&["backup", &cluster.kubeconfig_arg(), "--dir", "backups"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: the backup failed
      caused by: the API server's answer to GET /apis/lrs.datarobot.com/v1/lrs?&labelSelector=datarobot-lrs-type%3Ddeployment&limit=50 is larger than 64 MiB; it was not read
    hint: if the objects really are that large, list fewer at once with --page-size
    "#);
}

#[test]
fn a_list_whose_continue_token_repeats_ends_with_an_error() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_lrs(&sandbox, 1, 1);
    cluster.kube.faults().add(
        FaultRule::new(
            "lrs.datarobot.com/v1/lrs",
            list_answer(vec![listed_lrs("dr-app", "cm-a")], Some("same-again")),
            None,
        )
        .with_method(http::Method::GET),
    );
    let run = sandbox.run(&["backup", &cluster.kubeconfig_arg(), "--dir", "backups"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----
    PARTIAL backup: 1 LRS objects written to backups/lrs_backup_[TIME].partial before it stopped; it is not a complete backup
      by type:      deployment 1
      by namespace: dr-app 1
      error: listing stopped after 1 objects: the API server's list of lrs.lrs.datarobot.com never ends: it handed back a `continue` token it had already given

    ----- stderr -----
    error: the backup is incomplete
      caused by: the API server's list of lrs.lrs.datarobot.com never ends: it handed back a `continue` token it had already given
    "#);
}

#[test]
fn the_timeout_covers_listing_the_deployments() {
    let (sandbox, api) = with_api(2);
    // The list answers long after the whole change should have ended.
    api.datarobot.faults().add(
        FaultRule::new(
            "/api/v2/deployments/",
            Fault::Latency(Duration::from_secs(120)),
            None,
        )
        .with_method(http::Method::GET),
    );
    let run = sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--via",
        "local",
        "--state",
        "s.json",
        "--timeout",
        "1s",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot list the deployments at https://127.0.0.1:[PORT]/api/v2/
      caused by: the deployments were not listed within the overall timeout of 1s
    hint: nothing was changed; raise --timeout, or check with `-v=6` what the API answers
    "#);
    assert!(api.datarobot.status_history().is_empty());
    assert!(!sandbox.path("s.json").exists());
}

#[test]
fn a_token_a_server_echoes_in_a_redirect_is_redacted() {
    let (sandbox, api) = with_api(1);
    let token = api.datarobot.admin_token().to_string();
    api.datarobot.faults().add(FaultRule::new(
        "/api/v2/version/",
        Fault::Answer {
            status: 302,
            headers: vec![(
                "location".into(),
                format!("https://sso.example.com/login?next=%2Fapi&token={token}"),
            )],
            body: String::new(),
        },
        None,
    ));
    let run = sandbox.run(&["deployments", "list", "--via", "local", "-v", "9"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("to https://sso.example.com/login?next=%2Fapi&token=<redacted>, which"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&token), "{}", run.stderr);
    assert!(!run.stdout.contains(&token));
}

/// How many lines of `run`'s stderr are warnings.
fn warnings(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|line| line.starts_with("warning:"))
        .collect()
}

#[test]
fn cleartext_unchecked_tls_and_a_readable_token_file_are_each_warned_once() {
    // http://: the token crosses the network unencrypted.
    let sandbox = Sandbox::new();
    let api = FakeApi::start(
        &sandbox,
        1,
        0,
        FakeDataRobotOptions {
            tls: false,
            ..fast()
        },
    );
    let run = sandbox
        .env("LRS_DATAROBOT_URL", api.datarobot.url())
        .env("LRS_DATAROBOT_API_TOKEN", api.datarobot.admin_token())
        .run(&["deployments", "list", "--via", "local"]);
    run.expect_code(0);
    let url = format!("{}/api/v2/", api.datarobot.url());
    assert_eq!(
        warnings(&run),
        [format!(
            "warning: {url} is plain http://: the token travels unencrypted, and anyone on the \
             network path can read it; use https:// where the API offers it"
        )]
    );

    // --insecure-skip-tls-verify, run here: one warning, not one from each layer.
    let (sandbox, api) = with_api(1);
    let run = sandbox.run(&[
        "deployments",
        "list",
        "--via",
        "local",
        "--insecure-skip-tls-verify",
    ]);
    run.expect_code(0);
    assert_eq!(warnings(&run).len(), 1, "{}", run.stderr);
    assert!(warnings(&run)[0].contains("is NOT checked (--insecure-skip-tls-verify)"));

    // A token file others can read, as ssh says of a key; none for a private one.
    let file = sandbox.path("token");
    std::fs::write(&file, api.datarobot.admin_token()).unwrap();
    let path = file.to_str().unwrap();
    for (mode, expected) in [(0o644, 1), (0o600, 0)] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let run = sandbox.run(&[
            "deployments",
            "list",
            "--via",
            "local",
            "--token-file",
            path,
        ]);
        run.expect_code(0);
        assert_eq!(warnings(&run).len(), expected, "{}", run.stderr);
        if expected == 1 {
            assert_eq!(
                warnings(&run)[0],
                format!(
                    "warning: the token file {path} can be read by other users (mode 0644): \
                     run `chmod 600 {path}`"
                )
            );
        }
    }
}

#[test]
fn the_helper_in_the_pod_keeps_the_same_bounds() {
    let crate::in_pod::World {
        sandbox,
        cluster: _cluster,
        api,
    } = crate::in_pod::world_with(1, 0, fast());
    let base = api.datarobot.url();
    // A totalCount that used to abort the helper on an allocation, and a `next` that repeats.
    api.datarobot.faults().add(FaultRule::new(
        "/api/v2/deployments/",
        Fault::json(
            200,
            &json!({
                "count": 1,
                "data": [{"id": object_id(0), "label": "m\u{1b}[2J", "status": "active"}],
                "next": format!("{base}/api/v2/deployments/?offset=1&limit=1"),
                "previous": null,
                "totalCount": 1_000_000_000_000_u64,
            }),
        ),
        None,
    ));
    let run = sandbox.run(&["deployments", "list"]);
    mlbackup_testkit::assert_run_snapshot!("in_pod_list_never_ends", run.shown(&sandbox));

    // The list in the pod is bounded by --timeout too.
    api.datarobot.faults().clear();
    api.datarobot.faults().add(
        FaultRule::new(
            "/api/v2/deployments/",
            Fault::Latency(Duration::from_secs(120)),
            None,
        )
        .with_method(http::Method::GET),
    );
    let run = sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--state",
        "s.json",
        "--timeout",
        "1s",
    ]);
    mlbackup_testkit::assert_run_snapshot!("in_pod_overall_timeout", run.shown(&sandbox));
    assert!(api.datarobot.status_history().is_empty());
}
