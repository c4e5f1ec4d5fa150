//! Encryption at rest (DESIGN.md section 11) through the binary against the fake cluster: an
//! encrypted backup round trip, verify with and without a key, a missing or wrong identity
//! refused before any change, a tampered file named, rekey, interop with Debian's `age`, and no
//! secret of a spec in any file of the backup.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mlbackup_testkit::kube::FakeKubeOptions;
use mlbackup_testkit::sample::SampleSpec;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{FakeCluster, Sandbox};

/// Test keys (made with `age-keygen`; they protect nothing): the team's, the new team key of a
/// rotation, and someone else's.
const ALICE: (&str, &str) = (
    "age1534h5g5vjgxhvt9gk9xp92j2hr6ue6yxaq7855klm2lkp9wj8chsq5kgqq",
    "AGE-SECRET-KEY-13JPM5TKU3Z7JCZL49XZJ0X6TRJLLMGDMEKAN5U4AQHUSMTWCA6NQUM6Y24",
);
const BOB: (&str, &str) = (
    "age1alsgcep269ujrlja9yks4nlfvprxzuywq2h3a20x3kjg64980qasxe3eau",
    "AGE-SECRET-KEY-1SDXU936WN5D40AD5YECD75RWKEECSUG6VMK36GWNFJ08J45M6J6S0LL5JA",
);
const MALLORY: (&str, &str) = (
    "age1du8sdpymrhphpa869gaxwgpq6jgeuuc43e6xq4mdc4y7cnd0veqsmymtk3",
    "AGE-SECRET-KEY-1J7U7RGRSCS3XDX9U35WUUHC9KT7D3E42MNEH9MFZ7SWVRUQFHJHSMK5UJK",
);

/// A password in a spec, and an older one in the last-applied-configuration annotation.
const SECRET: &str = "s3cr3t-Db-Passw0rd-4242";
const OLD_SECRET: &str = "old-Passw0rd-from-last-apply";

/// An identity file as `age-keygen -o` writes it, mode 0600; its path.
fn identity_file(sandbox: &Sandbox, name: &str, key: (&str, &str)) -> PathBuf {
    let path = sandbox.path(name);
    std::fs::write(
        &path,
        format!(
            "# created: 2026-11-29T19:35:07Z\n# public key: {}\n{}\n",
            key.0, key.1
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A cluster with a few LRSes of every type, one of them holding [`SECRET`] in its spec,
/// [`OLD_SECRET`] in its last-applied-configuration, and a value of 300 KB.
fn cluster_with_secrets(sandbox: &Sandbox) -> FakeCluster {
    let cluster = FakeCluster::start(
        sandbox,
        SampleSpec {
            lrs: 4,
            spark: 1,
            other: 1,
            namespaces: 2,
            ..SampleSpec::default()
        },
        FakeKubeOptions::default(),
    );
    let mut object = cluster.kube.list("lrs", Some("dr-app"))[0].clone();
    let last_applied = json!({"spec": {"env": [{"name": "DB_PASSWORD", "value": OLD_SECRET}]}});
    object["metadata"] = json!({
        "name": "scorer-with-secrets",
        "namespace": "dr-app",
        "labels": {"datarobot-lrs-type": "deployment"},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": last_applied.to_string(),
            "team": "ml",
        },
    });
    object["spec"]["env"] = json!([{"name": "DB_PASSWORD", "value": SECRET}]);
    object["spec"]["blob"] = json!("x".repeat(300 * 1024));
    cluster.kube.insert(object).unwrap();
    cluster
}

/// Every regular file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn manifest_of_backup(folder: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(folder.join("manifest.json")).unwrap()).unwrap()
}

/// `backup --all-types --dir backups --name NAME --recipient ALICE`; returns the folder.
fn encrypted_backup(sandbox: &Sandbox, cluster: &FakeCluster, name: &str) -> PathBuf {
    let kubeconfig = cluster.kubeconfig_arg();
    let run = sandbox.run(&[
        "backup",
        &kubeconfig,
        "--all-types",
        "--dir",
        "backups",
        "--name",
        name,
        "--recipient",
        ALICE.0,
        "-o",
        "json",
    ]);
    run.expect_code(0);
    assert_eq!(run.json()["encryptedTo"], json!([ALICE.0]));
    sandbox.path("backups").join(name)
}

#[test]
fn an_encrypted_backup_holds_no_secret_and_restores_with_the_identity() {
    let sandbox = Sandbox::new();
    let source = cluster_with_secrets(&sandbox);
    let folder = encrypted_backup(&sandbox, &source, "enc");
    let alice = identity_file(&sandbox, "alice.txt", ALICE);

    // No file of the backup holds the secrets, whole folder searched byte by byte.
    let files = files_under(&folder);
    assert!(files.len() > 7, "{files:?}");
    for (path, bytes) in &files {
        for secret in [SECRET, OLD_SECRET] {
            assert!(
                !contains(bytes, secret),
                "{} holds {secret}",
                path.display()
            );
        }
    }
    let manifest = manifest_of_backup(&folder);
    assert_eq!(manifest["formatVersion"], 2);
    assert_eq!(
        manifest["encryption"],
        json!({"scheme": "age-encryption.org/v1", "recipients": [ALICE.0]})
    );
    let items = manifest["items"].as_array().unwrap();
    assert_eq!(items.len(), 7);
    for item in items {
        let path = item["path"].as_str().unwrap();
        assert!(path.ends_with(".yaml.age"), "{path}");
        let bytes = std::fs::read(folder.join(path)).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
        assert_eq!(item["sha256"], sha256_hex(&bytes));
        assert_eq!(item["bytes"], bytes.len());
        assert_eq!(item["plaintextSha256"].as_str().unwrap().len(), 64);
    }

    // Verify needs no key for the ciphertext, and decrypts with one.
    let run = sandbox.run(&["verify", "enc", "--dir", "backups"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        "Backup enc is intact: 7 LRS files checked (encrypted; ciphertext checked, no identity \
         given to decrypt).\n"
    );
    let alice_arg = format!("--identity={}", alice.display());
    let run = sandbox.run(&["verify", "enc", "--dir", "backups", &alice_arg]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("(encrypted; decrypted and checked)"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "", "a private identity file gives no warning");

    let run = sandbox.run(&["show", "enc", "--dir", "backups"]);
    run.expect_code(0);
    assert!(
        run.stdout
            .contains(&format!("Encrypted:            yes, to {}\n", ALICE.0)),
        "{}",
        run.stdout
    );

    // Restore into an empty cluster: the objects come back, the 300 KB value whole, the
    // last-applied-configuration not (it was never stored).
    let target = FakeCluster::empty(&sandbox, "kubeconfig-new");
    let kubeconfig = target.kubeconfig_arg();
    let run = sandbox.run(&[
        "restore",
        "enc",
        "--dir",
        "backups",
        &kubeconfig,
        "--create-namespaces",
        &alice_arg,
        "-o",
        "json",
    ]);
    run.expect_code(0);
    assert_eq!(run.json()["summary"]["created"], 7);
    for original in source.kube.list("lrs", None) {
        let namespace = original["metadata"]["namespace"].as_str().unwrap();
        let name = original["metadata"]["name"].as_str().unwrap();
        let restored = target.served(namespace, name);
        assert_eq!(restored["spec"], original["spec"], "{namespace}/{name}");
        assert_eq!(
            restored["metadata"]["labels"],
            original["metadata"]["labels"]
        );
    }
    let restored = target.served("dr-app", "scorer-with-secrets");
    assert_eq!(restored["spec"]["blob"].as_str().unwrap().len(), 300 * 1024);
    assert_eq!(restored["spec"]["env"][0]["value"], SECRET);
    assert_eq!(restored["metadata"]["annotations"], json!({"team": "ml"}));

    // The identity from the environment works as --identity does.
    let run = Sandbox::new()
        .env("MLBACKUP_IDENTITY_FILE", alice.to_str().unwrap())
        .run(&["diff", folder.to_str().unwrap(), &kubeconfig]);
    run.expect_code(0);
    assert!(
        run.stdout.starts_with("No differences between"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_missing_or_wrong_identity_fails_before_any_change_naming_the_recipients() {
    let sandbox = Sandbox::new();
    let source = cluster_with_secrets(&sandbox);
    encrypted_backup(&sandbox, &source, "enc");
    let target = FakeCluster::empty(&sandbox, "kubeconfig-new");
    let kubeconfig = target.kubeconfig_arg();
    target.kube.requests().clear();

    let run = sandbox.run(&["restore", "enc", "--dir", "backups", &kubeconfig]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: the backup `enc` is encrypted: the data is encrypted to age1534h5g5vjgxhvt9gk9xp92j2hr6ue6yxaq7855klm2lkp9wj8chsq5kgqq, and no identity was given
    hint: pass --identity FILE (an age identity file, as `age-keygen` writes it) or set MLBACKUP_IDENTITY_FILE
    ");

    let mallory = identity_file(&sandbox, "mallory.txt", MALLORY);
    // Readable by others: one warning, and still refused for being the wrong key.
    std::fs::set_permissions(&mallory, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = sandbox.run(&[
        "restore",
        "enc",
        "--dir",
        "backups",
        &kubeconfig,
        "--identity",
        "mallory.txt",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    warning: the identity file mallory.txt can be read by other users (mode 0644); make it private with `chmod 600 mallory.txt`
    error: cannot decrypt the backup `enc`
      caused by: no identity given can open the data: it is encrypted to age1534h5g5vjgxhvt9gk9xp92j2hr6ue6yxaq7855klm2lkp9wj8chsq5kgqq, the identities given are for age1du8sdpymrhphpa869gaxwgpq6jgeuuc43e6xq4mdc4y7cnd0veqsmymtk3
    hint: use the identity file of one of those recipients (`age-keygen -y FILE` prints the public key of an identity file)
    ");
    assert!(!run.stderr.contains(MALLORY.1) && !run.stderr.contains("AGE-SECRET-KEY"));
    for command in ["diff", "recover"] {
        let run = sandbox.run(&[command, "enc", "--dir", "backups", &kubeconfig]);
        run.expect_code(2);
        assert!(run.stderr.contains(ALICE.0), "{command}: {}", run.stderr);
    }
    // Nothing was asked of the cluster, let alone changed.
    assert_eq!(target.kube.requests().count(|_| true), 0);
    assert!(target.kube.list("lrs", None).is_empty());
}

#[test]
fn verify_names_a_tampered_ciphertext_with_or_without_the_key() {
    let sandbox = Sandbox::new();
    let source = cluster_with_secrets(&sandbox);
    let folder = encrypted_backup(&sandbox, &source, "enc");
    identity_file(&sandbox, "alice.txt", ALICE);
    let path = "dr-app/scorer-with-secrets.yaml.age";
    let mut bytes = std::fs::read(folder.join(path)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(folder.join(path), &bytes).unwrap();

    let run = sandbox.run(&["verify", "enc", "--dir", "backups", "-o", "json"]);
    run.expect_code(1);
    let problems = &run.json()["problems"];
    assert_eq!(problems.as_array().unwrap().len(), 1, "{problems:#}");
    assert_eq!(problems[0]["path"], path);
    assert_eq!(problems[0]["kind"], "modified");

    // Someone who also rewrote the manifest's hash of the file: only the key can tell.
    let mut manifest = manifest_of_backup(&folder);
    for item in manifest["items"].as_array_mut().unwrap() {
        if item["path"] == path {
            item["sha256"] = sha256_hex(&bytes).into();
        }
    }
    std::fs::write(folder.join("manifest.json"), manifest.to_string()).unwrap();
    sandbox
        .run(&["verify", "enc", "--dir", "backups"])
        .expect_code(0);
    let run = sandbox.run(&[
        "verify",
        "enc",
        "--dir",
        "backups",
        "--identity",
        "alice.txt",
        "-o",
        "json",
    ]);
    run.expect_code(1);
    let problems = &run.json()["problems"];
    assert_eq!(problems[0]["path"], path);
    assert_eq!(
        problems[0]["detail"],
        "the data is damaged or was tampered with: the payload fails authentication"
    );
}

#[test]
fn rekey_moves_a_backup_to_new_recipients() {
    let sandbox = Sandbox::new();
    let source = cluster_with_secrets(&sandbox);
    let folder = encrypted_backup(&sandbox, &source, "enc");
    identity_file(&sandbox, "alice.txt", ALICE);
    identity_file(&sandbox, "bob.txt", BOB);
    std::fs::write(
        sandbox.path("recipients.txt"),
        format!("# the on-call team, since the rotation\n{}\n", BOB.0),
    )
    .unwrap();
    let before = manifest_of_backup(&folder);

    // Without a key that opens it, nothing happens.
    let run = sandbox.run(&[
        "rekey",
        "enc",
        "--dir",
        "backups",
        "--identity",
        "bob.txt",
        "--recipients-file",
        "recipients.txt",
    ]);
    run.expect_code(1);
    assert!(run.stderr.contains(ALICE.0), "{}", run.stderr);
    assert_eq!(manifest_of_backup(&folder), before);

    // A copy left by a rekey that was killed: the backup is whole, the copy named.
    let left = sandbox.path("backups/enc.rekey.partial");
    std::fs::create_dir(&left).unwrap();
    let rekey = [
        "rekey",
        "enc",
        "--dir",
        "backups",
        "--identity",
        "alice.txt",
        "--recipients-file",
        "recipients.txt",
    ];
    let run = sandbox.run(&rekey);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("enc.rekey.partial exists, left by an interrupted rekey"),
        "{}",
        run.stderr
    );
    assert_eq!(manifest_of_backup(&folder), before);
    std::fs::remove_dir(&left).unwrap();

    let run = sandbox.run(&rekey);
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        format!(
            "Rekeyed backup enc: 7 LRS files re-encrypted and verified (ciphertext checked; no \
             identity of a new recipient was given to decrypt them back).\n  old recipients: \
             {}\n  new recipients: {}\n",
            ALICE.0, BOB.0
        )
    );
    let after = manifest_of_backup(&folder);
    assert_eq!(after["encryption"]["recipients"], json!([BOB.0]));
    assert_eq!(after["createdAt"], before["createdAt"]);
    for (old, new) in before["items"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["items"].as_array().unwrap())
    {
        assert_eq!(old["path"], new["path"]);
        assert_eq!(old["plaintextSha256"], new["plaintextSha256"]);
        assert_ne!(old["sha256"], new["sha256"]);
    }
    let names: Vec<String> = std::fs::read_dir(sandbox.path("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["enc"], "nothing left beside it");

    // The old key no longer opens it; the new one does.
    let run = sandbox.run(&[
        "verify",
        "enc",
        "--dir",
        "backups",
        "--identity",
        "alice.txt",
    ]);
    run.expect_code(1);
    assert!(run.stderr.contains(BOB.0), "{}", run.stderr);
    sandbox
        .run(&["verify", "enc", "--dir", "backups", "--identity", "bob.txt"])
        .expect_code(0);
}

#[test]
fn a_plain_backup_stays_format_1_and_has_no_last_applied_configuration() {
    let sandbox = Sandbox::new();
    let source = cluster_with_secrets(&sandbox);
    let kubeconfig = source.kubeconfig_arg();
    sandbox
        .run(&["backup", &kubeconfig, "--dir", "backups", "--name", "plain"])
        .expect_code(0);
    let folder = sandbox.path("backups/plain");
    assert_eq!(manifest_of_backup(&folder)["formatVersion"], 1);
    assert!(manifest_of_backup(&folder).get("encryption").is_none());
    let yaml = std::fs::read(folder.join("dr-app/scorer-with-secrets.yaml")).unwrap();
    assert!(contains(&yaml, SECRET), "not encrypted: the spec is there");
    assert!(!contains(&yaml, OLD_SECRET) && !contains(&yaml, "last-applied-configuration"));
    let run = sandbox.run(&["show", "plain", "--dir", "backups"]);
    assert!(
        run.stdout.contains("Encrypted:            no\n"),
        "{}",
        run.stdout
    );
    // Encrypting and not encrypting at once is a usage error.
    let run = sandbox.run(&["backup", "--no-encrypt", "--recipient", ALICE.0]);
    run.expect_code(2);
}

/// Debian's `age` (the Go reference implementation) opens a backup file with the team's
/// identity and gets the YAML the manifest vouches for; a file it encrypted to the same
/// recipient, put in a backup with its hashes, is read by restore.
#[test]
fn debian_age_reads_a_backup_file_and_writes_one_the_tool_reads() {
    let why = "Debian package `age`, for the interop test; .ci/run installs it";
    let Some(age) = mlbackup_testkit::tools::optional("age", why) else {
        return;
    };
    let sandbox = Sandbox::new();
    let source = cluster_with_secrets(&sandbox);
    let folder = encrypted_backup(&sandbox, &source, "enc");
    let alice = identity_file(&sandbox, "alice.txt", ALICE);
    let path = "dr-app/scorer-with-secrets.yaml.age";
    let output = std::process::Command::new(&age)
        .arg("-d")
        .arg("-i")
        .arg(&alice)
        .arg(folder.join(path))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let yaml = output.stdout;
    let manifest = manifest_of_backup(&folder);
    let item = manifest["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == path)
        .unwrap()
        .clone();
    assert_eq!(item["plaintextSha256"], sha256_hex(&yaml));
    let object: Value = serde_yaml::from_slice(&yaml).unwrap();
    assert_eq!(object["spec"]["env"][0]["value"], SECRET);

    // The same YAML, changed by hand and encrypted with `age -r`, in place of the item.
    let changed = String::from_utf8(yaml)
        .unwrap()
        .replace("team: ml", "team: ml-platform");
    let plain = sandbox.path("changed.yaml");
    std::fs::write(&plain, &changed).unwrap();
    let encrypted = std::process::Command::new(&age)
        .args(["-r", ALICE.0, "-o"])
        .arg(folder.join(path))
        .arg(&plain)
        .output()
        .unwrap();
    assert!(encrypted.status.success(), "{encrypted:?}");
    let bytes = std::fs::read(folder.join(path)).unwrap();
    let mut manifest = manifest;
    for entry in manifest["items"].as_array_mut().unwrap() {
        if entry["path"] == path {
            entry["sha256"] = sha256_hex(&bytes).into();
            entry["bytes"] = bytes.len().into();
            entry["plaintextSha256"] = sha256_hex(changed.as_bytes()).into();
        }
    }
    std::fs::write(folder.join("manifest.json"), manifest.to_string()).unwrap();
    let alice_arg = format!("--identity={}", alice.display());
    sandbox
        .run(&["verify", "enc", "--dir", "backups", &alice_arg])
        .expect_code(0);
    let run = sandbox.run(&["show", "enc", "--dir", "backups", "--files", &alice_arg]);
    run.expect_code(0);
    assert!(
        run.stdout.contains(&sha256_hex(changed.as_bytes())),
        "{}",
        run.stdout
    );
    let kubeconfig = source.kubeconfig_arg();
    let run = sandbox.run(&[
        "restore",
        "enc",
        "--dir",
        "backups",
        &kubeconfig,
        "--existing=update",
        "--only",
        "dr-app/scorer-with-secrets",
        &alice_arg,
    ]);
    run.expect_code(0);
    assert_eq!(
        source.served("dr-app", "scorer-with-secrets")["metadata"]["annotations"]["team"],
        "ml-platform"
    );
}

/// A prepare resumed over its partial backup takes it again, never less encrypted than begun.
#[test]
fn a_resumed_prepare_does_not_drop_the_encryption_of_its_backup() {
    let sandbox = Sandbox::new();
    let source = cluster_with_secrets(&sandbox);
    let folder = encrypted_backup(&sandbox, &source, "before-upgrade");
    // As a prepare killed during its backup leaves it.
    let mut manifest = manifest_of_backup(&folder);
    manifest["status"] = "partial".into();
    std::fs::write(folder.join("manifest.json"), manifest.to_string()).unwrap();
    let partial = sandbox.path("backups/before-upgrade.partial");
    std::fs::rename(&folder, &partial).unwrap();
    let kubeconfig = source.kubeconfig_arg();
    let run = sandbox.run(&[
        "prepare",
        &kubeconfig,
        "--dir",
        "backups",
        "--resume",
        "before-upgrade",
        "--skip-deployments",
        "--skip-spark",
        "--yes",
    ]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "the backup being resumed was begun encrypted to {}",
            ALICE.0
        )),
        "{}",
        run.stderr
    );
    assert!(partial.join("manifest.json").exists(), "left as it was");
    let run = sandbox.run(&[
        "prepare",
        &kubeconfig,
        "--dir",
        "backups",
        "--resume",
        "before-upgrade",
        "--skip-deployments",
        "--skip-spark",
        "--yes",
        "--recipient",
        ALICE.0,
    ]);
    run.expect_code(0);
    let taken = manifest_of_backup(&sandbox.path("backups/before-upgrade"));
    assert_eq!(taken["encryption"]["recipients"], json!([ALICE.0]));
}

#[test]
fn verify_against_cluster_decrypts_the_objects_with_the_identity_and_needs_one() {
    let sandbox = Sandbox::new();
    let cluster = cluster_with_secrets(&sandbox);
    encrypted_backup(&sandbox, &cluster, "enc");
    let alice = identity_file(&sandbox, "alice.txt", ALICE);
    let kubeconfig = cluster.kubeconfig_arg();

    // Without a key the objects cannot be read, so nothing is asked of the cluster.
    cluster.kube.requests().clear();
    let run = sandbox.run(&[
        "verify",
        &kubeconfig,
        "enc",
        "--dir",
        "backups",
        "--against-cluster",
    ]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("the backup `enc` is encrypted") && run.stderr.contains("--identity"),
        "{}",
        run.stderr
    );
    assert_eq!(cluster.kube.requests().entries().len(), 0);

    let alice_arg = format!("--identity={}", alice.display());
    let run = sandbox.run(&[
        "verify",
        &kubeconfig,
        "enc",
        "--dir",
        "backups",
        &alice_arg,
        "--against-cluster",
        "-o",
        "json",
    ]);
    run.expect_code(0);
    let check = &run.json()["againstCluster"];
    assert_eq!(check["failed"], 0, "{check}");
    assert_eq!(check["items"].as_array().unwrap().len(), 7);
    // Each object was sent decrypted, as a dry run, and nothing was written.
    let writes: Vec<_> = cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert_eq!(writes.len(), 7);
    assert!(
        writes.iter().all(|w| w
            .query
            .as_deref()
            .unwrap_or_default()
            .contains("dryRun=All")),
        "{writes:?}"
    );
}
