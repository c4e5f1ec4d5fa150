//! `s3://` backup locations end to end: the built binary against the fake cluster and a real S3
//! server (s3s-fs, through the test kit's front, which decides create-only puts atomically as
//! S3 does), with the AWS variables a user sets.

use std::path::{Path, PathBuf};
use std::process::Command;

use http::Method;
use mlbackup_testkit::faults::{FaultRule, Gate};
use mlbackup_testkit::s3::S3Server;

use crate::support::{FakeCluster, Run, Sandbox};

/// The prefix every test writes under.
const PREFIX: &str = "team/prod";

/// A sandbox whose environment points at `server` with its keys.
fn sandbox_for(server: &S3Server) -> Sandbox {
    Sandbox::new()
        .env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", &server.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_access_key)
        .env("AWS_REGION", "us-east-1")
}

fn location(server: &S3Server) -> String {
    format!("s3://{}/{PREFIX}", server.bucket)
}

/// Runs `args` against the cluster (its kubeconfig) and checks that no output holds the secret.
fn run(sandbox: &Sandbox, server: &S3Server, cluster: &FakeCluster, args: &[&str]) -> Run {
    let kubeconfig = cluster.kubeconfig_arg();
    let mut all = args.to_vec();
    all.push(kubeconfig.as_str());
    let run = sandbox.run(&all);
    assert_no_secret(&run, &server.secret_access_key);
    run
}

fn assert_no_secret(run: &Run, secret: &str) {
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the secret key shows:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

/// The objects of the bucket under `PREFIX`, relative to it, sorted (from s3s-fs's directory).
fn objects(server: &S3Server) -> Vec<String> {
    let root = server.object_file(&server.bucket, PREFIX);
    let mut found = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(&root).unwrap().display().to_string();
                // s3s-fs's own metadata files.
                if !relative.contains(".s3s") && !relative.ends_with(".metadata.json") {
                    found.push(relative);
                }
            }
        }
    }
    found.sort();
    found
}

/// The files of a backup folder, relative, with their bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                found.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

/// `-v 6` logs each request to the bucket as it logs the API server's: method, URL without a
/// query, status; never a key or a signature.
#[test]
fn verbose_logs_every_request_to_the_bucket_without_credentials() {
    let Some(server) = S3Server::start_or_skip("request_log") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let bucket = location(&server);
    run(
        &sandbox,
        &server,
        &cluster,
        &[
            "backup",
            "--dir",
            &bucket,
            "--no-encrypt",
            "--name",
            "nightly",
        ],
    )
    .expect_code(0);
    let listed = run(
        &sandbox,
        &server,
        &cluster,
        &["list", "--dir", &bucket, "-v", "6"],
    );
    listed.expect_code(0);
    let manifest = format!(
        "debug: GET {}/{}/{PREFIX}/nightly/manifest.json 200 in ",
        server.endpoint, server.bucket
    );
    assert!(listed.stderr.contains(&manifest), "{}", listed.stderr);
    assert!(
        !listed.stderr.contains(&server.access_key_id),
        "{}",
        listed.stderr
    );
    assert!(!listed.stderr.contains("Signature"), "{}", listed.stderr);
}

#[test]
fn a_backup_round_trips_through_the_bucket_and_every_command_reads_it_there() {
    let Some(server) = S3Server::start_or_skip("round_trip") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 12, 2);
    let bucket = location(&server);

    let taken = run(
        &sandbox,
        &server,
        &cluster,
        &[
            "backup",
            "--dir",
            &bucket,
            "--no-encrypt",
            "--name",
            "nightly",
            "-o",
            "json",
        ],
    );
    taken.expect_code(0);
    let outcome = taken.json();
    assert_eq!(outcome["status"], "complete");
    assert_eq!(outcome["path"], format!("{bucket}/nightly"));
    assert!(
        taken.stderr.contains("is plain http://"),
        "the http:// endpoint is warned about: {}",
        taken.stderr
    );
    let stored = objects(&server);
    assert!(stored.contains(&"nightly/manifest.json".to_string()));
    assert!(
        !stored.iter().any(|o| o.ends_with(".claim")),
        "the claim is gone once the manifest is written: {stored:?}"
    );
    assert_eq!(
        stored.len(),
        14,
        "12 LRS objects, the LRS definition and the manifest: {stored:?}"
    );
    assert!(stored.contains(&"nightly/crd.yaml".to_string()));

    // The same objects taken into a folder directly.
    run(
        &sandbox,
        &server,
        &cluster,
        &["backup", "--dir", "direct", "--name", "nightly"],
    )
    .expect_code(0);

    let listed = run(
        &sandbox,
        &server,
        &cluster,
        &["list", "--dir", &bucket, "-o", "json"],
    );
    listed.expect_code(0);
    let listed = listed.json();
    let backups = listed["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0]["name"], "nightly");
    assert_eq!(backups[0]["status"], "complete");
    assert_eq!(backups[0]["lrsCount"], 12);
    let id = backups[0]["cluster"]["id"]
        .as_str()
        .expect("the cluster's id");
    let kube_system = cluster.kube.get("namespaces", None, "kube-system").unwrap();
    assert_eq!(id, kube_system["metadata"]["uid"], "the uid of kube-system");
    let table = run(&sandbox, &server, &cluster, &["list", "--dir", &bucket]);
    assert!(
        table.stdout.contains(&format!("fake ({})", &id[..8])),
        "the table shows the cluster's id: {}",
        table.stdout
    );

    let shown = run(
        &sandbox,
        &server,
        &cluster,
        &["show", "nightly", "--dir", &bucket, "-o", "json"],
    );
    shown.expect_code(0);
    assert_eq!(shown.json()["path"], format!("{bucket}/nightly"));
    assert_eq!(shown.json()["lrsCount"], 12);
    let with_files = run(
        &sandbox,
        &server,
        &cluster,
        &["show", "nightly", "--files", "--dir", &bucket, "-o", "json"],
    );
    assert_eq!(with_files.json()["files"].as_array().unwrap().len(), 12);

    let verified = run(
        &sandbox,
        &server,
        &cluster,
        &["verify", "nightly", "--dir", &bucket],
    );
    verified.expect_code(0);
    assert!(verified.stdout.contains("is intact: 12 LRS files checked"));

    let diffed = run(
        &sandbox,
        &server,
        &cluster,
        &["diff", "nightly", "--dir", &bucket, "-o", "json"],
    );
    diffed.expect_code(0);
    assert_eq!(diffed.json()["identical"], true);

    // Back from the bucket into a folder: the same files as the direct backup.
    let copied = run(
        &sandbox,
        &server,
        &cluster,
        &[
            "copy", "nightly", "--dir", &bucket, "--to", "back", "-o", "json",
        ],
    );
    copied.expect_code(0);
    assert_eq!(copied.json()["to"], "back/nightly");
    let direct = files(&sandbox.path("direct/nightly"));
    let back = files(&sandbox.path("back/nightly"));
    let lrs_files = |files: &[(String, Vec<u8>)]| {
        files
            .iter()
            .filter(|(path, _)| path.ends_with(".yaml") && path != "crd.yaml")
            .cloned()
            .collect::<Vec<_>>()
    };
    let definition =
        |files: &[(String, Vec<u8>)]| files.iter().find(|(path, _)| path == "crd.yaml").cloned();
    assert!(definition(&back).is_some());
    assert_eq!(
        definition(&back),
        definition(&direct),
        "the LRS definition too"
    );
    assert_eq!(lrs_files(&back).len(), 12);
    assert_eq!(
        lrs_files(&back),
        lrs_files(&direct),
        "the same objects, byte for byte"
    );
    assert_eq!(
        back.iter()
            .map(|(p, _)| p.as_str())
            .collect::<Vec<_>>()
            .len(),
        14,
        "the manifest and the definition came along, the claim did not"
    );

    // An existing name is never overwritten, in either direction.
    let again = run(
        &sandbox,
        &server,
        &cluster,
        &["copy", "nightly", "--dir", &bucket, "--to", "back"],
    );
    again.expect_code(1);
    assert!(
        again
            .stderr
            .contains("a backup named `nightly` already exists"),
        "{}",
        again.stderr
    );
    // Into a bucket, an unencrypted backup goes only with --no-encrypt, as for `backup`.
    let unencrypted = run(
        &sandbox,
        &server,
        &cluster,
        &["copy", "nightly", "--dir", "direct", "--to", &bucket],
    );
    unencrypted.expect_code(2);
    assert!(
        unencrypted.stderr.contains(&format!(
            "error: a backup copied to {bucket} must be encrypted, and `nightly` is not"
        )),
        "{}",
        unencrypted.stderr
    );
    let into_bucket = run(
        &sandbox,
        &server,
        &cluster,
        &[
            "copy",
            "nightly",
            "--dir",
            "direct",
            "--to",
            &bucket,
            "--no-encrypt",
        ],
    );
    into_bucket.expect_code(1);
    assert!(
        into_bucket.stderr.contains("already exists in"),
        "{}",
        into_bucket.stderr
    );

    // A restore from the bucket, journaled there.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sandbox.path("back/nightly/manifest.json")).unwrap())
            .unwrap();
    let first = &manifest["items"][0];
    cluster.delete_lrs(
        first["namespace"].as_str().unwrap(),
        first["name"].as_str().unwrap(),
    );
    let restored = run(
        &sandbox,
        &server,
        &cluster,
        &["restore", "nightly", "--dir", &bucket, "-o", "json"],
    );
    restored.expect_code(0);
    assert_eq!(restored.json()["summary"]["created"], 1);
    assert!(objects(&server).contains(&"nightly/journal.jsonl".to_string()));
    // Read-only: restores, but records nothing.
    let read_only = format!("{bucket}?readonly");
    let again = run(
        &sandbox,
        &server,
        &cluster,
        &["restore", "nightly", "--dir", &read_only, "-o", "json"],
    );
    again.expect_code(0);
    assert!(
        again.json()["journalNote"]
            .as_str()
            .unwrap()
            .contains("read-only")
    );
}

#[test]
fn verify_names_an_altered_or_missing_object_in_the_bucket() {
    let Some(server) = S3Server::start_or_skip("altered") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 4, 1);
    let bucket = location(&server);
    run(
        &sandbox,
        &server,
        &cluster,
        &[
            "backup",
            "--dir",
            &bucket,
            "--no-encrypt",
            "--name",
            "nightly",
        ],
    )
    .expect_code(0);
    let items: Vec<String> = objects(&server)
        .into_iter()
        .filter(|o| o.ends_with(".yaml"))
        .collect();
    let altered = server.object_file(&server.bucket, &format!("{PREFIX}/{}", items[0]));
    let mut bytes = std::fs::read(&altered).unwrap();
    bytes.extend_from_slice(b"# changed\n");
    std::fs::write(&altered, bytes).unwrap();
    std::fs::remove_file(server.object_file(&server.bucket, &format!("{PREFIX}/{}", items[1])))
        .unwrap();

    let verified = run(
        &sandbox,
        &server,
        &cluster,
        &["verify", "nightly", "--dir", &bucket],
    );
    verified.expect_code(1);
    for item in &items[..2] {
        assert!(
            verified.stdout.contains(&format!("{bucket}/{item}")),
            "{item} is named in the bucket's terms:\n{}",
            verified.stdout
        );
    }
    // Restore refuses it before any change.
    let writes = cluster.writes();
    run(
        &sandbox,
        &server,
        &cluster,
        &["restore", "nightly", "--dir", &bucket],
    )
    .expect_code(1);
    assert_eq!(cluster.writes(), writes);
}

#[test]
fn a_wrong_secret_key_is_named_with_a_hint_and_nothing_is_written() {
    let Some(server) = S3Server::start_or_skip("wrong_secret") else {
        return;
    };
    let wrong = "wrong-secret-key-value-0123456789";
    let sandbox = Sandbox::new()
        .env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", &server.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", wrong)
        .env("AWS_REGION", "us-east-1");
    let cluster = FakeCluster::with_lrs(&sandbox, 3, 1);
    let bucket = location(&server);
    let taken = run(
        &sandbox,
        &server,
        &cluster,
        &["backup", "--dir", &bucket, "--no-encrypt"],
    );
    taken.expect_code(1);
    assert_no_secret(&taken, wrong);
    assert!(
        taken.stderr.contains("refused the credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (SignatureDoesNotMatch)"),
        "{}",
        taken.stderr
    );
    assert!(taken.stderr.contains("hint: "), "{}", taken.stderr);
    assert_eq!(objects(&server), Vec::<String>::new(), "nothing written");
    assert!(
        cluster.kube.requests().count(|r| r.path.ends_with("/lrs")) == 0,
        "the cluster was not read"
    );
}

#[test]
fn a_missing_bucket_is_named() {
    let Some(server) = S3Server::start_or_skip("missing_bucket") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 1, 1);
    let listed = run(
        &sandbox,
        &server,
        &cluster,
        &["list", "--dir", "s3://no-such-bucket/prod"],
    );
    listed.expect_code(1);
    assert!(
        listed
            .stderr
            .contains("the bucket `no-such-bucket` does not exist at http://127.0.0.1:"),
        "{}",
        listed.stderr
    );
    assert!(
        listed.stderr.contains("hint: check the bucket name"),
        "{}",
        listed.stderr
    );
}

#[test]
fn a_read_only_location_refuses_delete_prune_and_backup_before_any_request() {
    let Some(server) = S3Server::start_or_skip("read_only") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let bucket = location(&server);
    run(
        &sandbox,
        &server,
        &cluster,
        &[
            "backup",
            "--dir",
            &bucket,
            "--no-encrypt",
            "--name",
            "nightly",
        ],
    )
    .expect_code(0);
    let before = objects(&server);
    let read_only = format!("{bucket}?readonly");
    for args in [
        vec!["delete", "nightly", "--yes", "--dir", &read_only],
        vec![
            "delete",
            "nightly",
            "--yes",
            "--dir",
            &bucket,
            "--read-only",
        ],
        vec!["prune", "--keep", "1", "--yes", "--dir", &read_only],
        vec!["backup", "--dir", &read_only, "--no-encrypt"],
    ] {
        let requests = server.log.entries().len();
        let refused = run(&sandbox, &server, &cluster, &args);
        refused.expect_code(1);
        assert!(
            refused.stderr.contains("is read-only: refusing to"),
            "{args:?}: {}",
            refused.stderr
        );
        assert_eq!(
            server.log.entries().len(),
            requests,
            "{args:?}: no request was sent"
        );
    }
    assert_eq!(objects(&server), before);
    // Reading works.
    run(&sandbox, &server, &cluster, &["list", "--dir", &read_only]).expect_code(0);
    run(
        &sandbox,
        &server,
        &cluster,
        &["verify", "nightly", "--dir", &read_only],
    )
    .expect_code(0);
    // And a delete without the option removes it, manifest and all.
    run(
        &sandbox,
        &server,
        &cluster,
        &["delete", "nightly", "--yes", "--dir", &bucket],
    )
    .expect_code(0);
    assert_eq!(objects(&server), Vec::<String>::new());
}

#[test]
fn an_interrupt_during_the_upload_leaves_a_partial_that_delete_removes() {
    let Some(server) = S3Server::start_or_skip("interrupted_upload") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 30, 2);
    let bucket = location(&server);
    // The uploads of LRS files are held: the backup is interrupted while they are in flight.
    let gate = Gate::new();
    server
        .faults
        .add(FaultRule::new(".yaml", gate.fault(), None).with_method(Method::PUT));
    let kubeconfig = cluster.kubeconfig_arg();
    let child = sandbox.spawn(&[
        "backup",
        "--dir",
        &bucket,
        "--no-encrypt",
        "--name",
        "nightly",
        &kubeconfig,
    ]);
    gate.wait_held(1);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let interrupted = Run::from(child.wait_with_output().unwrap());
    gate.open();
    interrupted.expect_code(130);
    assert!(
        interrupted.stderr.contains("shows it as partial"),
        "{}",
        interrupted.stderr
    );
    assert!(
        !objects(&server).contains(&"nightly/manifest.json".to_string()),
        "no manifest: nothing looks complete"
    );
    let listed = run(
        &sandbox,
        &server,
        &cluster,
        &["list", "--dir", &bucket, "-o", "json"],
    );
    let backups = listed.json()["backups"].as_array().unwrap().clone();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0]["status"], "partial");
    run(
        &sandbox,
        &server,
        &cluster,
        &["verify", "nightly", "--dir", &bucket],
    )
    .expect_code(1);
    run(
        &sandbox,
        &server,
        &cluster,
        &["delete", "nightly", "--yes", "--dir", &bucket],
    )
    .expect_code(0);
    assert_eq!(
        objects(&server),
        Vec::<String>::new(),
        "delete removed everything"
    );
}

#[test]
fn two_backups_racing_for_one_name_exactly_one_wins() {
    let Some(server) = S3Server::start_or_skip("race") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 3, 1);
    let bucket = location(&server);
    // Both claims are held until both arrived, then let go together.
    let gate = Gate::new();
    server
        .faults
        .add(FaultRule::new(".claim", gate.fault(), None).with_method(Method::PUT));
    let kubeconfig = cluster.kubeconfig_arg();
    let racers: Vec<_> = (0..2)
        .map(|_| {
            sandbox.spawn(&[
                "backup",
                "--dir",
                &bucket,
                "--no-encrypt",
                "--name",
                "nightly",
                &kubeconfig,
            ])
        })
        .collect();
    gate.wait_held(2);
    gate.open();
    let runs: Vec<Run> = racers
        .into_iter()
        .map(|child| Run::from(child.wait_with_output().unwrap()))
        .collect();
    let mut codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    codes.sort();
    assert_eq!(
        codes,
        [0, 1],
        "exactly one wins:\n{}\n{}",
        runs[0].stderr,
        runs[1].stderr
    );
    let loser = runs.iter().find(|r| r.code == 1).unwrap();
    assert!(
        loser
            .stderr
            .contains("a backup named `nightly` already exists in"),
        "{}",
        loser.stderr
    );
    let listed = run(
        &sandbox,
        &server,
        &cluster,
        &["list", "--dir", &bucket, "-o", "json"],
    );
    let backups = listed.json()["backups"].as_array().unwrap().clone();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0]["status"], "complete");
    run(
        &sandbox,
        &server,
        &cluster,
        &["verify", "nightly", "--dir", &bucket],
    )
    .expect_code(0);
}

#[test]
fn default_names_in_a_bucket_get_suffixes_and_completion_offers_them() {
    let Some(server) = S3Server::start_or_skip("completion") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let bucket = location(&server);
    let first = run(
        &sandbox,
        &server,
        &cluster,
        &["backup", "--dir", &bucket, "--no-encrypt", "-o", "json"],
    );
    let second = run(
        &sandbox,
        &server,
        &cluster,
        &["backup", "--dir", &bucket, "--no-encrypt", "-o", "json"],
    );
    let first = PathBuf::from(first.json()["path"].as_str().unwrap());
    let second = PathBuf::from(second.json()["path"].as_str().unwrap());
    assert_ne!(first, second);
    let completed = sandbox.run(&["__complete", "verify", "--dir", &bucket, ""]);
    completed.expect_code(0);
    for path in [first, second] {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            completed.stdout.contains(name),
            "{name}:\n{}",
            completed.stdout
        );
    }
}

#[test]
fn an_interrupt_while_the_cluster_is_read_leaves_nothing_in_the_bucket() {
    let Some(server) = S3Server::start_or_skip("interrupted_list") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 3, 1);
    let bucket = location(&server);
    // The list of LRSes is held: the backup is interrupted after its name was claimed.
    let gate = Gate::new();
    cluster
        .kube
        .faults()
        .add(FaultRule::new("/v1/lrs", gate.fault(), None).with_method(Method::GET));
    let kubeconfig = cluster.kubeconfig_arg();
    let child = sandbox.spawn(&[
        "backup",
        "--dir",
        &bucket,
        "--no-encrypt",
        "--name",
        "nightly",
        &kubeconfig,
    ]);
    gate.wait_held(1);
    assert_eq!(
        objects(&server),
        ["nightly/.claim"],
        "the name is claimed before the cluster is read"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let interrupted = Run::from(child.wait_with_output().unwrap());
    gate.open();
    interrupted.expect_code(130);
    assert!(
        interrupted
            .stderr
            .contains("interrupted before the upload: nothing was left in the bucket"),
        "{}",
        interrupted.stderr
    );
    assert_eq!(objects(&server), Vec::<String>::new());
}

/// A test key pair (made with `age-keygen`; it protects nothing).
const TEAM_KEY: (&str, &str) = (
    "age1534h5g5vjgxhvt9gk9xp92j2hr6ue6yxaq7855klm2lkp9wj8chsq5kgqq",
    "AGE-SECRET-KEY-13JPM5TKU3Z7JCZL49XZJ0X6TRJLLMGDMEKAN5U4AQHUSMTWCA6NQUM6Y24",
);

/// Encryption at rest in a bucket (DESIGN.md section 11): a backup without a recipient is
/// refused before anything reaches the bucket; with one, no object holds a secret of a spec,
/// the backup verifies without a key and with the team's identity; and one cut short before
/// its manifest is still a partial that `delete` removes.
#[test]
fn a_bucket_gets_only_encrypted_backups_and_no_object_holds_a_secret() {
    let Some(server) = S3Server::start_or_skip("encrypted_bucket") else {
        return;
    };
    const SECRET: &str = "s3cr3t-Db-Passw0rd-in-a-bucket";
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 6, 2);
    let mut object = cluster.kube.list("lrs", Some("dr-app"))[0].clone();
    object["metadata"] = serde_json::json!({
        "name": "scorer-with-secret",
        "namespace": "dr-app",
        "labels": {"datarobot-lrs-type": "deployment"},
    });
    object["spec"]["env"] = serde_json::json!([{"name": "DB_PASSWORD", "value": SECRET}]);
    cluster.kube.insert(object).unwrap();
    let bucket = location(&server);

    let refused = run(&sandbox, &server, &cluster, &["backup", "--dir", &bucket]);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("--no-encrypt") && refused.stderr.contains("--recipient"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        objects(&server),
        Vec::<String>::new(),
        "nothing was written"
    );

    let taken = run(
        &sandbox,
        &server,
        &cluster,
        &[
            "backup",
            "--dir",
            &bucket,
            "--recipient",
            TEAM_KEY.0,
            "--name",
            "sealed",
        ],
    );
    taken.expect_code(0);
    let stored = objects(&server);
    assert!(
        stored.iter().any(|o| o.ends_with(".yaml.age")),
        "{stored:?}"
    );
    // The one plain YAML is the LRS definition (a type's schema, no object's data).
    assert!(
        !stored
            .iter()
            .any(|o| o.ends_with(".yaml") && o != "sealed/crd.yaml"),
        "{stored:?}"
    );
    assert!(
        stored.contains(&"sealed/crd.yaml".to_string()),
        "{stored:?}"
    );
    // Every byte the server stored, its own metadata included.
    let root = server.object_file(&server.bucket, "");
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                    "{} holds the secret",
                    path.display()
                );
            }
        }
    }

    run(
        &sandbox,
        &server,
        &cluster,
        &["verify", "sealed", "--dir", &bucket],
    )
    .expect_code(0);
    let identity = sandbox.path("team.key");
    std::fs::write(&identity, format!("{}\n", TEAM_KEY.1)).unwrap();
    std::fs::set_permissions(
        &identity,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let verified = run(
        &sandbox,
        &server,
        &cluster,
        &[
            "verify",
            "sealed",
            "--dir",
            &bucket,
            "--identity",
            identity.to_str().unwrap(),
        ],
    );
    verified.expect_code(0);
    assert!(!verified.stdout.contains(TEAM_KEY.1));

    // Copied out of the bucket and into another prefix: encrypted files travel as they are.
    let other = format!("s3://{}/team/other", server.bucket);
    let local = sandbox.path("local");
    for (from, to) in [
        (bucket.as_str(), local.to_str().unwrap()),
        (local.to_str().unwrap(), other.as_str()),
    ] {
        run(
            &sandbox,
            &server,
            &cluster,
            &["copy", "sealed", "--dir", from, "--to", to],
        )
        .expect_code(0);
    }
    run(
        &sandbox,
        &server,
        &cluster,
        &["verify", "sealed", "--dir", &other],
    )
    .expect_code(0);

    // The same backup cut short before its manifest (its claim still there, as it is until
    // the manifest is written): a partial that delete removes.
    std::fs::remove_file(
        server.object_file(&server.bucket, &format!("{PREFIX}/sealed/manifest.json")),
    )
    .unwrap();
    std::fs::write(
        server.object_file(&server.bucket, &format!("{PREFIX}/sealed/.claim")),
        r#"{"claimedAt":"2026-01-10T08:30:00Z","toolVersion":"0.1.0"}"#,
    )
    .unwrap();
    let listed = run(
        &sandbox,
        &server,
        &cluster,
        &["list", "--dir", &bucket, "-o", "json"],
    );
    listed.expect_code(0);
    let backups = listed.json()["backups"].clone();
    assert_eq!(backups[0]["name"], "sealed", "{backups}");
    assert_eq!(backups[0]["status"], "partial", "{backups}");
    run(
        &sandbox,
        &server,
        &cluster,
        &["delete", "sealed", "--dir", &bucket, "--yes"],
    )
    .expect_code(0);
    assert_eq!(objects(&server), Vec::<String>::new());
}

#[test]
fn a_backup_uploads_each_page_while_the_next_one_is_listed() {
    let Some(server) = S3Server::start_or_skip("streamed_upload") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 120, 1);
    let bucket = location(&server);
    // The first page (50 objects) is answered; the second is held until the first page's
    // files are in the bucket, which they must reach while the list is not finished.
    let gate = Gate::new();
    cluster.kube.faults().add(
        FaultRule::new("/v1/lrs", gate.fault(), None)
            .with_method(Method::GET)
            .after(1),
    );
    let kubeconfig = cluster.kubeconfig_arg();
    let child = sandbox.spawn(&[
        "backup",
        "--no-encrypt",
        "--dir",
        &bucket,
        "--name",
        "nightly",
        &kubeconfig,
    ]);
    gate.wait_held(1);
    let items = || {
        objects(&server)
            .iter()
            // LRS files; the LRS definition (crd.yaml) goes up after the list.
            .filter(|o| o.ends_with(".yaml") && !o.ends_with("/crd.yaml"))
            .count()
    };
    mlbackup_testkit::wait::wait_until(
        "the first page's 50 files are uploaded while the second page is held",
        std::time::Duration::from_secs(60),
        || items() == 50,
    );
    assert!(
        !objects(&server).contains(&"nightly/manifest.json".to_string()),
        "no manifest before the list is read to its end"
    );
    gate.open();
    let taken = Run::from(child.wait_with_output().unwrap());
    taken.expect_code(0);
    assert_eq!(items(), 120);
    run(
        &sandbox,
        &server,
        &cluster,
        &["verify", "nightly", "--dir", &bucket],
    )
    .expect_code(0);
}

/// A scheduled run's command line into the bucket, encrypted to the team's key.
fn scheduled_run_args(sandbox: &Sandbox, bucket: &str) -> Vec<String> {
    let recipients = sandbox.path("team.pub");
    std::fs::write(&recipients, format!("{}\n", TEAM_KEY.0)).unwrap();
    [
        "scheduled-run",
        "--dir",
        bucket,
        "--name",
        "nightly",
        "--recipients-file",
        &recipients.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// One writer per prefix: of two scheduled runs starting together exactly one takes the lock
/// and runs; the other does nothing, naming the holder; the lock is gone afterwards and the
/// run records say what happened.
#[test]
fn two_scheduled_runs_racing_for_the_lock_exactly_one_runs() {
    let Some(server) = S3Server::start_or_skip("lock_race") else {
        return;
    };
    let sandbox = sandbox_for(&server).env("HOSTNAME", "mlbackup-nightly-pod");
    let cluster = FakeCluster::with_lrs(&sandbox, 3, 1);
    let bucket = location(&server);
    // Both creations of the lock are held until both arrived; then the winner is held at its
    // backup's claim until the loser has ended, so the loser always finds the lock live.
    let locks = Gate::new();
    server
        .faults
        .add(FaultRule::new(".mlbackup-lock", locks.fault(), Some(2)).with_method(Method::PUT));
    let claims = Gate::new();
    server
        .faults
        .add(FaultRule::new(".claim", claims.fault(), Some(1)).with_method(Method::PUT));
    let kubeconfig = cluster.kubeconfig_arg();
    let mut args = scheduled_run_args(&sandbox, &bucket);
    args.push(kubeconfig);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut racers: Vec<_> = (0..2).map(|_| sandbox.spawn(&args)).collect();
    locks.wait_held(2);
    locks.open();
    let mut loser = None;
    mlbackup_testkit::wait::wait_until(
        "one racer ends",
        std::time::Duration::from_secs(60),
        || {
            loser = racers
                .iter_mut()
                .position(|child| child.try_wait().unwrap().is_some());
            loser.is_some()
        },
    );
    let loser = racers.remove(loser.unwrap());
    let winner = racers.pop().unwrap();
    let winner_pid = winner.id();
    claims.open();
    let lost = Run::from(loser.wait_with_output().unwrap());
    let won = Run::from(winner.wait_with_output().unwrap());
    won.expect_code(0);
    lost.expect_code(1);
    assert!(
        lost.stderr.contains(&format!(
            "is locked by `mlbackup-nightly-pod (pid {winner_pid})` until "
        )),
        "{}",
        lost.stderr
    );
    let stored = objects(&server);
    assert!(
        !stored.iter().any(|key| key == ".mlbackup-lock"),
        "released: {stored:?}"
    );
    let success: serde_json::Value = serde_json::from_slice(
        &std::fs::read(server.object_file(
            &server.bucket,
            &format!("{PREFIX}/.mlbackup-runs/nightly/last-success.json"),
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(success["status"], "succeeded");
    assert_eq!(
        success["holder"],
        format!("mlbackup-nightly-pod (pid {winner_pid})")
    );
    // The run records are no backups.
    let listed = run(
        &sandbox,
        &server,
        &cluster,
        &["list", "--dir", &bucket, "-o", "json"],
    );
    listed.expect_code(0);
    let backups = listed.json()["backups"].as_array().unwrap().clone();
    assert_eq!(backups.len(), 1, "{}", listed.stdout);
    assert_eq!(backups[0]["name"], success["backup"]);
    assert!(
        listed.json()["unreadable"].as_array().unwrap().is_empty(),
        "{}",
        listed.stdout
    );
}

/// A lock past its lease (a run killed before it could release it) is taken over, with a
/// warning naming the old holder; a live one is refused.
#[test]
fn a_stale_lock_in_the_bucket_is_taken_over_and_said_so() {
    let Some(server) = S3Server::start_or_skip("stale_lock") else {
        return;
    };
    let sandbox = sandbox_for(&server).env("HOSTNAME", "mlbackup-nightly-new");
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let bucket = location(&server);
    let args = scheduled_run_args(&sandbox, &bucket);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // A live lock, written as another pod's run writes it: refused, nothing else written.
    let lock_file = server.object_file(&server.bucket, &format!("{PREFIX}/.mlbackup-lock"));
    std::fs::create_dir_all(lock_file.parent().unwrap()).unwrap();
    let live = serde_json::json!({"holder": "mlbackup-nightly-old (pid 7)",
        "started": "2026-11-29T03:00:00Z", "leaseUntil": "2999-01-01T00:00:00Z"});
    std::fs::write(&lock_file, live.to_string()).unwrap();
    let refused = run(&sandbox, &server, &cluster, &args);
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains("is locked by `mlbackup-nightly-old (pid 7)` until 2999-01-01 00:00:00 UTC"),
        "{}",
        refused.stderr
    );
    assert_eq!(objects(&server), [".mlbackup-lock"]);
    // Its lease passed: taken over, said so, and released at the end.
    let stale = serde_json::json!({"holder": "mlbackup-nightly-old (pid 7)",
        "started": "2026-11-29T03:00:00Z", "leaseUntil": "2026-11-29T05:00:00Z"});
    std::fs::write(&lock_file, stale.to_string()).unwrap();
    let taken = run(&sandbox, &server, &cluster, &args);
    taken.expect_code(0);
    assert!(
        taken.stderr.contains(
            "took over the lock of s3://mlbackup-test/team/prod from `mlbackup-nightly-old \
             (pid 7)`, whose lease ended at 2026-11-29"
        ),
        "{}",
        taken.stderr
    );
    assert!(!objects(&server).iter().any(|key| key == ".mlbackup-lock"));
}

/// Ctrl-C during a scheduled run's upload: the run stops cleanly (exit 130), records itself as
/// interrupted and releases the lock, so the next run is not refused.
#[test]
fn an_interrupted_scheduled_run_releases_the_lock() {
    let Some(server) = S3Server::start_or_skip("interrupted_run") else {
        return;
    };
    let sandbox = sandbox_for(&server).env("HOSTNAME", "mlbackup-nightly-pod");
    let cluster = FakeCluster::with_lrs(&sandbox, 10, 1);
    let bucket = location(&server);
    let gate = Gate::new();
    server
        .faults
        .add(FaultRule::new(".yaml", gate.fault(), None).with_method(Method::PUT));
    let mut args = scheduled_run_args(&sandbox, &bucket);
    args.push(cluster.kubeconfig_arg());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = sandbox.spawn(&args);
    gate.wait_held(1);
    assert!(objects(&server).contains(&".mlbackup-lock".to_string()));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let interrupted = Run::from(child.wait_with_output().unwrap());
    gate.open();
    interrupted.expect_code(130);
    let stored = objects(&server);
    assert!(
        !stored.contains(&".mlbackup-lock".to_string()),
        "released: {stored:?}"
    );
    let attempt: serde_json::Value = serde_json::from_slice(
        &std::fs::read(server.object_file(
            &server.bucket,
            &format!("{PREFIX}/.mlbackup-runs/nightly/last-attempt.json"),
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(attempt["status"], "interrupted", "{attempt}");
    assert!(
        !stored.contains(&".mlbackup-runs/nightly/last-success.json".to_string()),
        "{stored:?}"
    );
}

/// `schedule status` reads the run records from the schedule's bucket with the operator's AWS
/// settings; without access there it says so and shows what the Jobs say.
#[test]
fn schedule_status_reads_the_run_records_from_the_bucket() {
    let Some(server) = S3Server::start_or_skip("status_records") else {
        return;
    };
    let sandbox = sandbox_for(&server).env("HOSTNAME", "mlbackup-nightly-pod");
    let cluster = FakeCluster::with_lrs(&sandbox, 3, 1);
    let bucket = location(&server);
    let mut args = scheduled_run_args(&sandbox, &bucket);
    let recipients = args[6].clone();
    run(
        &sandbox,
        &server,
        &cluster,
        &[
            "schedule",
            "install",
            "--schedule",
            "0 3 * * *",
            "--dir",
            &bucket,
            "--image",
            "registry.example.com/kubectl-mlbackup:test",
            "--recipients-file",
            &recipients,
            "--name",
            "nightly",
        ],
    )
    .expect_code(0);
    // The run, as the CronJob's container runs it.
    args.push(cluster.kubeconfig_arg());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sandbox.run(&args).expect_code(0);
    let status = run(
        &sandbox,
        &server,
        &cluster,
        &["schedule", "status", "--name", "nightly", "-o", "json"],
    );
    status.expect_code(0);
    let status = status.json();
    assert_eq!(status["lastRunResult"], "succeeded", "{status}");
    assert!(
        status["lastAttempt"]["holder"]
            .as_str()
            .unwrap()
            .starts_with("mlbackup-nightly-pod (pid "),
        "{status}"
    );
    assert!(
        status["lastSuccessBackup"]
            .as_str()
            .unwrap()
            .starts_with("lrs_backup_"),
        "{status}"
    );
    // Without the keys here: said, and the Jobs (none) stand alone.
    let blind = Sandbox::new()
        .env("AWS_ENDPOINT_URL", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", &server.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .env("AWS_REGION", "us-east-1");
    let kubeconfig = cluster.kubeconfig_arg();
    let status = blind.run(&["schedule", "status", "--name", "nightly", &kubeconfig]);
    assert!(
        status
            .stderr
            .contains("warning: cannot read the run records in s3://"),
        "{}",
        status.stderr
    );
    assert!(
        status.stdout.contains("Last run:       none"),
        "{}",
        status.stdout
    );
}

/// A backup cut short before its manifest (killed: only its claim and some items are stored)
/// is as old as its claim says, or without a claim as old as S3 reports its objects; never
/// "now", so that it ages like any other and prune removes it once older than a day.
#[test]
fn a_partial_without_a_manifest_is_as_old_as_what_was_stored() {
    let Some(server) = S3Server::start_or_skip("partial_age") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 1, 1);
    let bucket = location(&server);
    let item = server.object_file(&server.bucket, &format!("{PREFIX}/intr1/dr/a.yaml"));
    std::fs::create_dir_all(item.parent().unwrap()).unwrap();
    std::fs::write(&item, "apiVersion: v1\nkind: X\nmetadata:\n  name: a\n").unwrap();
    let claim = server.object_file(&server.bucket, &format!("{PREFIX}/intr1/.claim"));
    std::fs::write(
        &claim,
        r#"{"claimedAt":"2026-01-10T08:30:00Z","toolVersion":"0.1.0"}"#,
    )
    .unwrap();
    let listed = |sandbox: &Sandbox| {
        let listed = run(
            sandbox,
            &server,
            &cluster,
            &["list", "--dir", &bucket, "-o", "json"],
        );
        listed.expect_code(0);
        let backup = listed.json()["backups"][0].clone();
        assert_eq!(backup["name"], "intr1", "{backup}");
        assert_eq!(backup["status"], "partial", "{backup}");
        backup["createdAt"].as_str().unwrap().to_string()
    };
    assert_eq!(listed(&sandbox), "2026-01-10T08:30:00Z");
    let pruned = run(
        &sandbox,
        &server,
        &cluster,
        &["prune", "--keep-last", "1", "--dir", &bucket, "-o", "json"],
    );
    pruned.expect_code(0);
    let outcome = pruned.json();
    assert_eq!(outcome["delete"][0]["name"], "intr1", "{outcome}");
    assert_eq!(
        outcome["delete"][0]["reason"], "partial, older than a day",
        "{outcome}"
    );

    // Without its claim or a manifest, the objects are not a backup, whoever put them there:
    // never listed, pruned or deleted (nor the location's own records).
    std::fs::remove_file(&claim).unwrap();
    let listed = run(
        &sandbox,
        &server,
        &cluster,
        &["list", "--dir", &bucket, "-o", "json"],
    );
    listed.expect_code(0);
    assert_eq!(listed.json()["backups"], serde_json::json!([]));
    let pruned = run(
        &sandbox,
        &server,
        &cluster,
        &["prune", "--keep-last", "1", "--dir", &bucket, "--yes"],
    );
    pruned.expect_code(0);
    assert!(item.exists(), "what is not a backup is never pruned");
    let records = server.object_file(&server.bucket, &format!("{PREFIX}/.mlbackup-runs/r.json"));
    std::fs::create_dir_all(records.parent().unwrap()).unwrap();
    std::fs::write(&records, "{}").unwrap();
    let mut shown = String::new();
    for name in ["intr1", ".mlbackup-runs"] {
        let refused = run(
            &sandbox,
            &server,
            &cluster,
            &["delete", name, "--dir", &bucket, "--yes"],
        );
        refused.expect_code(1);
        shown.push_str(&refused.shown(&sandbox));
    }
    mlbackup_testkit::assert_run_snapshot!(shown);
    assert!(item.exists() && records.exists());
}

/// Ctrl-C during a prune that deletes: the backup being deleted is finished, none after it is
/// touched, the outcome says which, and the lock the prune took is released (exit 130).
#[test]
fn an_interrupted_prune_stops_before_the_next_delete_and_releases_the_lock() {
    let Some(server) = S3Server::start_or_skip("interrupted_prune") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let bucket = location(&server);
    for name in ["a", "b", "c"] {
        run(
            &sandbox,
            &server,
            &cluster,
            &["backup", "--dir", &bucket, "--no-encrypt", "--name", name],
        )
        .expect_code(0);
    }
    // The first delete (of a manifest, deleted first; object_store deletes through the bulk
    // `POST /BUCKET?delete`) is held until Ctrl-C has come.
    let gate = Gate::new();
    server.faults.add(
        FaultRule::new(format!("/{}", server.bucket), gate.fault(), Some(1))
            .with_method(Method::POST),
    );
    let child = sandbox.spawn(&[
        "prune",
        "--keep-last",
        "1",
        "--yes",
        "--dir",
        &bucket,
        "-o",
        "json",
    ]);
    gate.wait_held(1);
    assert!(objects(&server).contains(&".mlbackup-lock".to_string()));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    gate.open();
    let interrupted = Run::from(child.wait_with_output().unwrap());
    interrupted.expect_code(130);
    assert!(
        interrupted
            .stderr
            .contains("interrupted: 1 backup(s) deleted before Ctrl-C, the rest left as they were"),
        "{}",
        interrupted.stderr
    );
    let outcome = interrupted.json();
    assert_eq!(outcome["delete"].as_array().unwrap().len(), 1, "{outcome}");
    let deleted = outcome["delete"][0]["name"].as_str().unwrap().to_string();
    let spared: Vec<&serde_json::Value> = outcome["keep"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|kept| {
            kept["reason"]
                .as_str()
                .unwrap()
                .starts_with("not deleted: interrupted (Ctrl-C) first")
        })
        .collect();
    assert_eq!(spared.len(), 1, "{outcome}");
    let stored = objects(&server);
    assert!(
        !stored.contains(&".mlbackup-lock".to_string()),
        "{stored:?}"
    );
    assert!(
        !stored
            .iter()
            .any(|key| key.starts_with(&format!("{deleted}/"))),
        "{stored:?}"
    );
    let spared = spared[0]["name"].as_str().unwrap();
    assert!(
        stored.contains(&format!("{spared}/manifest.json")),
        "{stored:?}"
    );
}

/// Ctrl-C during `delete --yes` of a bucket's backup, after its manifest went: the error says
/// that the backup is partly deleted, lists as partial and how to remove the rest (exit 130).
#[test]
fn an_interrupted_delete_says_what_is_left() {
    let Some(server) = S3Server::start_or_skip("interrupted_delete") else {
        return;
    };
    let sandbox = sandbox_for(&server);
    let cluster = FakeCluster::with_lrs(&sandbox, 2, 1);
    let bucket = location(&server);
    run(
        &sandbox,
        &server,
        &cluster,
        &[
            "backup",
            "--dir",
            &bucket,
            "--no-encrypt",
            "--name",
            "nightly",
        ],
    )
    .expect_code(0);
    // The manifest is deleted first (object_store deletes through the bulk
    // `POST /BUCKET?delete`); the deletion of the rest is held until Ctrl-C has come.
    let gate = Gate::new();
    server.faults.add(
        FaultRule::new(format!("/{}", server.bucket), gate.fault(), Some(1))
            .with_method(Method::POST)
            .after(1),
    );
    let child = sandbox.spawn(&["delete", "nightly", "--yes", "--dir", &bucket]);
    gate.wait_held(1);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let interrupted = Run::from(child.wait_with_output().unwrap());
    interrupted.expect_code(130);
    assert!(
        interrupted.stderr.ends_with(&format!(
            "error: interrupted: the backup `nightly` is partly deleted; its manifest went \
             first, so it lists as partial and is never read as complete; `kubectl mlbackup \
             delete nightly --dir {bucket} --yes` removes the rest\n"
        )),
        "{}",
        interrupted.stderr
    );
    // What it says, the bucket holds (the rest is still held at the gate).
    let listed = run(
        &sandbox,
        &server,
        &cluster,
        &["list", "--dir", &bucket, "-o", "json"],
    );
    assert_eq!(listed.json()["backups"][0]["status"], "partial");
    gate.open();
}
