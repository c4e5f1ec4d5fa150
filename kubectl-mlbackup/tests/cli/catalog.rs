//! The backup catalog commands (`list`, `show`, `verify`, `delete`, `prune`) on backup folders
//! written here as fixtures, byte for byte in format version 1 (DESIGN.md section 4), plus a
//! folder like the documented shell loop makes.

use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::support::{Run, Sandbox};

pub(crate) const NEWEST: &str = "lrs_backup_2025_06_01_10_00";
pub(crate) const STALE_PARTIAL: &str = "lrs_backup_2025_05_01_10_00.partial";
pub(crate) const SHELL_LOOP: &str = "lrs_backup_2025_04_01_09_30";
pub(crate) const NAMED: &str = "pre-upgrade";

fn lrs_yaml(namespace: &str, name: &str, lrs_type: &str) -> String {
    format!(
        "apiVersion: lrs.datarobot.com/v1\nkind: LongRunningService\nmetadata:\n  name: {name}\n  \
         namespace: {namespace}\n  uid: uid-{name}\n  resourceVersion: \"42\"\n  labels:\n    \
         datarobot-lrs-type: {lrs_type}\nspec:\n  image: registry.example.com/{name}:1\n"
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a backup folder as `kubectl mlbackup backup` does: one file per LRS, then the
/// manifest.
fn managed_backup(
    root: &Path,
    dir_name: &str,
    created_at: &str,
    status: &str,
    items: &[(&str, &str, &str)],
    errors: &[&str],
) -> PathBuf {
    let dir = root.join(dir_name);
    let mut manifest_items = Vec::new();
    let mut counts_by_type = serde_json::Map::new();
    let mut counts_by_namespace = serde_json::Map::new();
    for (namespace, name, lrs_type) in items {
        std::fs::create_dir_all(dir.join(namespace)).unwrap();
        let yaml = lrs_yaml(namespace, name, lrs_type);
        std::fs::write(dir.join(format!("{namespace}/{name}.yaml")), &yaml).unwrap();
        manifest_items.push(json!({
            "path": format!("{namespace}/{name}.yaml"),
            "namespace": namespace,
            "name": name,
            "type": lrs_type,
            "uid": format!("uid-{name}"),
            "resourceVersion": "42",
            "sha256": sha256_hex(yaml.as_bytes()),
            "bytes": yaml.len(),
        }));
        for (counts, key) in [
            (&mut counts_by_type, lrs_type),
            (&mut counts_by_namespace, namespace),
        ] {
            let count = counts.get(*key).and_then(|v| v.as_u64()).unwrap_or(0);
            counts.insert(key.to_string(), json!(count + 1));
        }
    }
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({
        "formatVersion": 1,
        "toolVersion": "0.1.0",
        "createdAt": created_at,
        "finishedAt": created_at.replace(":00Z", ":07Z"),
        "cluster": {"server": "https://10.0.0.1:6443", "context": "prod"},
        "resource": {"group": "lrs.datarobot.com", "version": "v1", "kind": "LongRunningService", "plural": "lrs"},
        "selector": "datarobot-lrs-type=deployment",
        "namespaces": [],
        "countsByType": counts_by_type,
        "countsByNamespace": counts_by_namespace,
        "items": manifest_items,
        "status": status,
        "errors": errors,
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap() + "\n",
    )
    .unwrap();
    dir
}

/// What the documented shell loop leaves: flat `<name>.yaml` files, no manifest.
fn shell_loop_backup(root: &Path) -> PathBuf {
    let dir = root.join(SHELL_LOOP);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, lrs_type) in [("a", "deployment"), ("old", "custom_application")] {
        std::fs::write(
            dir.join(format!("{name}.yaml")),
            lrs_yaml("dr", name, lrs_type),
        )
        .unwrap();
    }
    dir
}

/// A backup directory holding one of each kind of backup, and things that are not backups.
pub(crate) fn catalog_fixture(root: &Path) {
    managed_backup(
        root,
        NEWEST,
        "2025-06-01T10:00:00Z",
        "complete",
        &[
            ("dr", "a", "deployment"),
            ("dr", "spark-1", "spark_app"),
            ("team", "c", "deployment"),
        ],
        &[],
    );
    std::fs::write(root.join(NEWEST).join("deployments.json"), "[]\n").unwrap();
    managed_backup(
        root,
        STALE_PARTIAL,
        "2025-05-01T10:00:00Z",
        "partial",
        &[("dr", "a", "deployment")],
        &["interrupted: 1 of 3 LRS written"],
    );
    shell_loop_backup(root);
    managed_backup(
        root,
        NAMED,
        "2025-03-01T08:00:00Z",
        "complete",
        &[("dr", "a", "deployment")],
        &[],
    );
    std::fs::create_dir_all(root.join("notes")).unwrap();
    std::fs::write(root.join("notes/todo.yaml"), "x: 1\n").unwrap();
    std::fs::write(root.join("README.txt"), "not a backup\n").unwrap();
}

/// A sandbox whose backup directory (`$HOME/backups`) holds the catalog fixture.
fn sandbox_with_backups() -> (Sandbox, PathBuf) {
    let sandbox = Sandbox::new();
    let root = sandbox.path("backups");
    catalog_fixture(&root);
    (sandbox, root)
}

/// Runs with `--dir <root>` appended.
fn run_in(sandbox: &Sandbox, root: &Path, args: &[&str]) -> Run {
    let mut full = args.to_vec();
    full.extend(["--dir", root.to_str().unwrap()]);
    sandbox.run(&full)
}

fn names(json: &serde_json::Value, key: &str) -> Vec<String> {
    json[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn list_shows_backups_newest_first() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["list"]);
    run.expect_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    insta::assert_snapshot!(run.stdout, @r"
    NAME                                  CREATED                   CLUSTER   LRS   TYPES                      STATUS      SIZE
    lrs_backup_2025_06_01_10_00           2025-06-01 10:00:00 UTC   prod      3     deployment=2,spark_app=1   complete    2.0 KiB
    lrs_backup_2025_05_01_10_00.partial   2025-05-01 10:00:00 UTC   prod      1     deployment=1               partial     1.1 KiB
    lrs_backup_2025_04_01_09_30           2025-04-01 09:30:00 UTC   -         2     -                          unmanaged   446 B
    pre-upgrade                           2025-03-01 08:00:00 UTC   prod      1     deployment=1               complete    1.0 KiB
    ");
}

#[test]
fn list_as_json() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["list", "-o", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(
        names(&json, "backups"),
        [NEWEST, STALE_PARTIAL, SHELL_LOOP, NAMED]
    );
    let newest = &json["backups"][0];
    assert_eq!(newest["status"], "complete");
    assert_eq!(newest["createdAt"], "2025-06-01T10:00:00Z");
    assert_eq!(newest["cluster"]["server"], "https://10.0.0.1:6443");
    assert_eq!(newest["lrsCount"], 3);
    assert_eq!(newest["countsByType"]["spark_app"], 1);
    assert!(newest["sizeBytes"].as_u64().unwrap() > 0);
    assert_eq!(json["backups"][2]["status"], "unmanaged");
    assert_eq!(json["unreadable"], json!([]));
}

#[test]
fn the_backup_directory_comes_from_dir_then_mlbackup_dir_then_the_current_directory() {
    let (sandbox, root) = sandbox_with_backups();
    let sandbox = sandbox.env("MLBACKUP_DIR", root.to_str().unwrap());
    let run = sandbox.run(&["list", "-o", "json"]);
    run.expect_code(0);
    assert_eq!(names(&run.json(), "backups").len(), 4);

    // The current directory of the sandbox is HOME, which holds no backup itself.
    let empty = Sandbox::new();
    let run = empty.run(&["list"]);
    run.expect_code(0);
    assert_eq!(run.stdout, "No backups in .\n");
    let run = run_in(&sandbox, &sandbox.path("elsewhere"), &["list"]);
    run.expect_code(1);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot list the backups in [HOME]/elsewhere
      caused by: the backup directory [HOME]/elsewhere does not exist
    hint: check the path (--dir, else MLBACKUP_DIR, else the current directory); `kubectl mlbackup backup --dir [HOME]/elsewhere` creates it with the first backup
    "#);
}

/// Runs the plugin as `nobody` (util-linux `setpriv`; the tests run as root) in `dir`, which
/// nobody may enter, with only PATH and HOME set.
fn run_as_nobody(dir: &Path, args: &[&str]) -> Run {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "this test plays another user with setpriv, which needs root"
    );
    let output = std::process::Command::new(mlbackup_testkit::tools::require(
        "setpriv",
        "util-linux; plays another user",
    ))
    .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
    .arg(env!("CARGO_BIN_EXE_kubectl-mlbackup"))
    .args(args)
    .env_clear()
    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
    .env("HOME", dir)
    .current_dir(dir)
    .output()
    .expect("run setpriv");
    Run::from(output)
}

/// A backup folder another user wrote (0700, root's) is an error naming the path and the
/// cause: never "no backups", never "not a backup", never "no backup named".
#[test]
fn a_backup_this_user_may_not_read_is_an_error_not_an_empty_directory() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let home = tempfile::tempdir_in("/tmp").unwrap();
    mode(home.path(), 0o755);
    let bk = home.path().join("bk");
    managed_backup(
        &bk,
        "b1",
        "2025-06-01T10:00:00Z",
        "complete",
        &[("dr", "a", "deployment")],
        &[],
    );
    mode(&bk, 0o755);
    mode(&bk.join("b1"), 0o700);
    let denied = |run: &Run, path: &str| {
        run.expect_code(1);
        assert!(
            run.stderr.contains(&format!(
                "cannot read {path}\n  caused by: Permission denied"
            )),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("hint: backups are private"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    };
    denied(
        &run_as_nobody(home.path(), &["list", "--dir", "bk"]),
        "bk/b1/manifest.json",
    );
    denied(
        &run_as_nobody(home.path(), &["verify", "b1", "--dir", "bk"]),
        "bk/b1/manifest.json",
    );
    denied(
        &run_as_nobody(home.path(), &["prune", "--keep-last", "1", "--dir", "bk"]),
        "bk/b1/manifest.json",
    );
    // The manifest alone unreadable: the same.
    mode(&bk.join("b1"), 0o755);
    mode(&bk.join("b1/manifest.json"), 0o600);
    denied(
        &run_as_nobody(home.path(), &["list", "--dir", "bk"]),
        "bk/b1/manifest.json",
    );
    // The whole backup directory private: verify does not say "no backup named".
    mode(&bk, 0o700);
    denied(
        &run_as_nobody(home.path(), &["verify", "b1", "--dir", "bk"]),
        "bk/b1",
    );

    // The file system's own `lost+found` (0700 root, a name no backup has) is passed over.
    mode(&bk, 0o755);
    mode(&bk.join("b1/manifest.json"), 0o644);
    std::fs::create_dir(bk.join("lost+found")).unwrap();
    mode(&bk.join("lost+found"), 0o700);
    let listed = run_as_nobody(home.path(), &["list", "--dir", "bk", "-o", "json"]);
    listed.expect_code(0);
    assert_eq!(names(&listed.json(), "backups"), ["b1"]);
}

#[test]
fn list_warns_about_folders_it_cannot_read() {
    let (sandbox, root) = sandbox_with_backups();
    let broken = root.join("lrs_backup_broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("manifest.json"), "{not json").unwrap();
    let run = run_in(&sandbox, &root, &["list", "-o", "json"]);
    run.expect_code(0);
    assert_eq!(names(&run.json(), "unreadable"), ["lrs_backup_broken"]);
    assert!(
        run.stderr
            .starts_with("warning: skipped lrs_backup_broken: cannot read the manifest"),
        "{}",
        run.stderr
    );
}

#[test]
fn show_tells_everything_the_manifest_says() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["show", NEWEST]);
    run.expect_code(0);
    insta::assert_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    Name:                 lrs_backup_2025_06_01_10_00
    Path:                 [HOME]/backups/lrs_backup_2025_06_01_10_00
    Status:               complete
    Created:              2025-06-01 10:00:00 UTC
    Finished:             2025-06-01 10:00:07 UTC
    Format:               1 (kubectl-mlbackup 0.1.0)
    Cluster:              https://10.0.0.1:6443 (context prod)
    Resource:             lrs.v1.lrs.datarobot.com (kind LongRunningService)
    Selector:             datarobot-lrs-type=deployment
    Namespaces:           all
    LRS:                  3
    Size:                 2.0 KiB
    Deployments snapshot: yes
    Journal:              no
    Encrypted:            no

    TYPE         LRS
    deployment   2
    spark_app    1

    NAMESPACE   LRS
    dr          2
    team        1

    ----- stderr -----
    "#);
}

#[test]
fn show_files_and_errors_of_a_partial_backup() {
    let (sandbox, root) = sandbox_with_backups();
    // By name without `.partial` too.
    let run = run_in(
        &sandbox,
        &root,
        &["show", "lrs_backup_2025_05_01_10_00", "--files"],
    );
    insta::assert_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    Name:                 lrs_backup_2025_05_01_10_00.partial
    Path:                 [HOME]/backups/lrs_backup_2025_05_01_10_00.partial
    Status:               partial
    Created:              2025-05-01 10:00:00 UTC
    Finished:             2025-05-01 10:00:07 UTC
    Format:               1 (kubectl-mlbackup 0.1.0)
    Cluster:              https://10.0.0.1:6443 (context prod)
    Resource:             lrs.v1.lrs.datarobot.com (kind LongRunningService)
    Selector:             datarobot-lrs-type=deployment
    Namespaces:           all
    LRS:                  1
    Size:                 1.1 KiB
    Deployments snapshot: no
    Journal:              no
    Encrypted:            no

    TYPE         LRS
    deployment   1

    NAMESPACE   LRS
    dr          1

    Errors:
      interrupted: 1 of 3 LRS written

    FILE        TYPE         BYTES   SHA256
    dr/a.yaml   deployment   216     00b81bce70f835884d86604b50a71a7aa4f11c4723282cd69ea97442f80fa719

    ----- stderr -----
    "#);
}

#[test]
fn show_reads_a_shell_loop_folder_as_json() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["show", SHELL_LOOP, "-o", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["status"], "unmanaged");
    assert_eq!(json["createdAt"], "2025-04-01T09:30:00Z");
    assert_eq!(json["lrsCount"], 2);
    assert_eq!(
        json["countsByType"],
        json!({"custom_application": 1, "deployment": 1})
    );
    assert_eq!(json["countsByNamespace"], json!({"dr": 2}));
    assert!(json.get("cluster").is_none(), "no manifest, no cluster");
    assert!(json.get("files").is_none());
    assert_eq!(json["deploymentsSnapshot"], false);
}

#[test]
fn show_of_an_unknown_backup_points_at_list() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["show", "nope"]);
    run.expect_code(1);
    assert!(run.stdout.is_empty());
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot show the backup `nope`
      caused by: no backup named `nope` in [HOME]/backups
    hint: run `kubectl mlbackup list --dir [HOME]/backups` to see the backups there; set --dir or MLBACKUP_DIR to look elsewhere
    "#);
}

#[test]
fn verify_passes_an_intact_backup() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["verify", NEWEST]);
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        "Backup lrs_backup_2025_06_01_10_00 is intact: 3 LRS files checked.\n"
    );
    let run = run_in(&sandbox, &root, &["verify", SHELL_LOOP]);
    run.expect_code(0);
    // A path works as well as a name.
    let path = root.join(NAMED);
    let run = sandbox.run(&["verify", path.to_str().unwrap(), "-o", "json"]);
    run.expect_code(0);
    assert_eq!(run.json()["ok"], true);
}

#[test]
fn verify_lists_every_bad_file_and_exits_1() {
    let (sandbox, root) = sandbox_with_backups();
    let dir = root.join(NEWEST);
    let edited = std::fs::read_to_string(dir.join("dr/a.yaml"))
        .unwrap()
        .replace("image: registry", "image: evil");
    std::fs::write(dir.join("dr/a.yaml"), edited).unwrap();
    std::fs::remove_file(dir.join("team/c.yaml")).unwrap();
    std::fs::write(dir.join("dr/stray.yaml"), "x: 1\n").unwrap();
    let run = run_in(&sandbox, &root, &["verify", NEWEST]);
    run.expect_code(1);
    insta::assert_snapshot!(run.stdout, @r"
    Backup lrs_backup_2025_06_01_10_00 has 3 problem(s) (3 LRS files checked):
    FILE            PROBLEM      DETAIL
    dr/a.yaml       modified     212 bytes with SHA-256 dce9006cabf3, the manifest says 216 bytes with SHA-256 00b81bce70f8
    dr/stray.yaml   unexpected   a file the manifest does not list
    team/c.yaml     missing      listed in the manifest, not on disk
    ");
    assert_eq!(
        run.stderr,
        "error: the backup `lrs_backup_2025_06_01_10_00` failed verification: 3 problem(s)\n"
    );
    let run = run_in(&sandbox, &root, &["verify", NEWEST, "-o", "json"]);
    run.expect_code(1);
    let json = run.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["problems"][0]["path"], "dr/a.yaml");
    assert_eq!(json["problems"][0]["kind"], "modified");
}

#[test]
fn verify_fails_a_partial_backup() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["verify", STALE_PARTIAL, "-o", "json"]);
    run.expect_code(1);
    let json = run.json();
    assert_eq!(json["problems"][0]["kind"], "incomplete");
    assert_eq!(
        json["problems"][0]["detail"],
        "the backup did not finish: interrupted: 1 of 3 LRS written"
    );
}

#[test]
fn delete_without_yes_and_without_a_terminal_is_a_usage_error() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["delete", NAMED]);
    run.expect_code(2);
    assert!(run.stdout.is_empty());
    insta::assert_snapshot!(run.stderr, @r"
    error: refusing to delete the backup `pre-upgrade` without confirmation: stdin is not a terminal
    hint: pass --yes to delete without being asked
    ");
    assert!(root.join(NAMED).is_dir());
}

#[test]
fn delete_asks_on_a_terminal() {
    let (sandbox, root) = sandbox_with_backups();
    let dir = root.to_str().unwrap();
    let Some(run) = sandbox.run_on_terminal(&["delete", NAMED, "--dir", dir], "n\n") else {
        return;
    };
    // Fixed fixtures: no filter, so that the size is pinned too.
    insta::assert_snapshot!("delete_not_confirmed", run.shown(&sandbox));
    assert!(root.join(NAMED).is_dir());
    let run = sandbox
        .run_on_terminal(&["delete", NAMED, "--dir", dir], "y\n")
        .unwrap();
    insta::assert_snapshot!("delete_confirmed", run.shown(&sandbox));
    assert!(!root.join(NAMED).exists());
}

#[test]
fn delete_with_yes_removes_the_backup() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["delete", NAMED, "--yes"]);
    run.expect_code(0);
    assert_eq!(run.stdout, "Deleted backup pre-upgrade (1.0 KiB freed).\n");
    assert!(!root.join(NAMED).exists());
    let run = run_in(
        &sandbox,
        &root,
        &["delete", STALE_PARTIAL, "-y", "-o", "json"],
    );
    run.expect_code(0);
    assert_eq!(run.json()["name"], STALE_PARTIAL);
    let mut left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["README.txt", SHELL_LOOP, NEWEST, "notes"]);
}

#[test]
fn delete_refuses_what_is_not_a_backup() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["delete", "notes", "--yes"]);
    run.expect_code(1);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot delete the backup `notes`
      caused by: [HOME]/backups/notes is not a backup: it has no manifest.json and its name does not start with lrs_backup_
    hint: only folders written by `kubectl mlbackup backup` (with a manifest.json) or by the documented shell loop (lrs_backup_* holding YAML files) are managed
    "#);
    assert!(root.join("notes/todo.yaml").exists());
    let home = sandbox.home().to_str().unwrap().to_string();
    let run = sandbox.run(&["delete", &format!("{home}/"), "--yes"]);
    run.expect_code(1);
    assert!(sandbox.path("backups").is_dir());
}

#[test]
fn prune_prints_what_it_would_delete_without_yes() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["prune", "--keep", "2"]);
    run.expect_code(0);
    insta::assert_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    Would delete 2 backup(s) (2.1 KiB) in [HOME]/backups:
    NAME                                  CREATED                   STATUS     SIZE      WHY
    lrs_backup_2025_05_01_10_00.partial   2025-05-01 10:00:00 UTC   partial    1.1 KiB   partial, older than a day
    pre-upgrade                           2025-03-01 08:00:00 UTC   complete   1.0 KiB   no rule keeps it: not among the 2 newest

    Kept 2 backup(s):
    NAME                          CREATED                   STATUS      SIZE      WHY
    lrs_backup_2025_06_01_10_00   2025-06-01 10:00:00 UTC   complete    2.0 KiB   newest complete backup that verifies; keep-last #1
    lrs_backup_2025_04_01_09_30   2025-04-01 09:30:00 UTC   unmanaged   446 B     keep-last #2

    Nothing was deleted: run again with --yes to delete.

    ----- stderr -----
    "#);
    assert!(root.join(NAMED).is_dir());
    assert!(root.join(STALE_PARTIAL).is_dir());

    // --dry-run, as the schedule's docs name it: the same output, nothing deleted.
    let dry = run_in(&sandbox, &root, &["prune", "--keep", "2", "--dry-run"]);
    dry.expect_code(0);
    assert_eq!(dry.stdout, run.stdout);
    assert!(root.join(NAMED).is_dir());
    assert!(root.join(STALE_PARTIAL).is_dir());
    let both = run_in(
        &sandbox,
        &root,
        &["prune", "--keep", "2", "--dry-run", "--yes"],
    );
    both.expect_code(2);
    assert!(
        both.stderr
            .starts_with("error: the argument '--dry-run' cannot be used with '--yes'"),
        "{}",
        both.stderr
    );
    assert!(root.join(NAMED).is_dir());
}

/// A prune that deletes takes the location's lock, the one scheduled runs hold: refused while a
/// run holds it (naming the holder and its lease, nothing deleted), released at the end, and
/// taken over once the lease has passed. A dry run reads only and needs no lock.
#[test]
fn prune_with_yes_takes_the_lock_scheduled_runs_hold() {
    let (sandbox, root) = sandbox_with_backups();
    let lock = root.join(".mlbackup-lock");
    let live = json!({"holder": "mlbackup-nightly-29 (pid 7)",
        "started": "2026-11-29T03:00:00Z", "leaseUntil": "2999-01-01T00:00:00Z"});
    std::fs::write(&lock, live.to_string()).unwrap();
    let refused = run_in(&sandbox, &root, &["prune", "--keep", "1", "--yes"]);
    refused.expect_code(1);
    insta::assert_snapshot!(refused.shown(&sandbox), @r"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot prune: nothing was deleted
      caused by: [HOME]/backups is locked by `mlbackup-nightly-29 (pid 7)` until 2999-01-01 00:00:00 UTC
    hint: one run writes to a location at a time (a scheduled run, or a prune that deletes): this run did nothing; try again once that run has ended (it releases the lock) or its lease has passed (the lock is then taken over)
    ");
    assert!(root.join(NAMED).is_dir(), "nothing deleted");
    assert!(root.join(STALE_PARTIAL).is_dir(), "nothing deleted");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), live.to_string());
    run_in(&sandbox, &root, &["prune", "--keep", "1", "--dry-run"]).expect_code(0);

    // Its lease passed (that run was killed): taken over, said so, released at the end.
    let stale = json!({"holder": "mlbackup-nightly-29 (pid 7)",
        "started": "2026-11-29T03:00:00Z", "leaseUntil": "2026-11-29T05:00:00Z"});
    std::fs::write(&lock, stale.to_string()).unwrap();
    let pruned = run_in(
        &sandbox,
        &root,
        &["prune", "--keep", "1", "--yes", "-o", "json"],
    );
    pruned.expect_code(0);
    assert!(
        pruned.stderr.starts_with(&format!(
            "warning: took over the lock of {} from `mlbackup-nightly-29 (pid 7)`, whose lease \
             ended at 2026-11-29 05:00:00 UTC",
            root.display()
        )),
        "{}",
        pruned.stderr
    );
    assert_eq!(names(&pruned.json(), "delete").len(), 3);
    assert!(!lock.exists(), "released");

    // Taking the lock never creates a missing backup directory.
    let missing = sandbox.path("missing");
    let run = run_in(&sandbox, &missing, &["prune", "--keep", "1", "--yes"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "the backup directory {} does not exist",
            missing.display()
        )),
        "{}",
        run.stderr
    );
    assert!(!missing.exists());
}

/// `--keep-within 0s` keeps no backup by its age: refused as `schedule install` refuses it,
/// repeating what was typed.
#[test]
fn prune_refuses_a_keep_within_of_zero() {
    let (sandbox, root) = sandbox_with_backups();
    for typed in ["0s", "0d", "0"] {
        let run = run_in(&sandbox, &root, &["prune", "--keep-within", typed, "--yes"]);
        run.expect_code(2);
        assert!(
            run.stderr.starts_with(&format!(
                "error: invalid value '{typed}' for '--keep-within <DURATION>': `{typed}` keeps \
                 no backup by its age: give a duration longer than 0, like 7d, or leave \
                 --keep-within out\n"
            )),
            "{}",
            run.stderr
        );
    }
    assert!(root.join(NAMED).is_dir());
    assert!(root.join(STALE_PARTIAL).is_dir());
}

#[test]
fn prune_with_yes_deletes_and_reports_as_json() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(
        &sandbox,
        &root,
        &["prune", "--older-than", "30d", "--yes", "-o", "json"],
    );
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["dryRun"], false);
    // Everything is older than 30 days, but the newest complete backup always stays.
    assert_eq!(names(&json, "delete"), [STALE_PARTIAL, SHELL_LOOP, NAMED]);
    assert_eq!(names(&json, "keep"), [NEWEST]);
    assert_eq!(
        json["delete"][1]["reason"],
        "no rule keeps it: older than 30d"
    );
    let run = run_in(&sandbox, &root, &["list", "-o", "json"]);
    assert_eq!(names(&run.json(), "backups"), [NEWEST]);
    assert!(root.join("notes").is_dir(), "not a backup, never pruned");
}

#[test]
fn prune_spares_a_partial_backup_that_may_still_be_running() {
    let (sandbox, root) = sandbox_with_backups();
    let running = root.join("lrs_backup_running.partial");
    std::fs::create_dir_all(running.join("dr")).unwrap();
    std::fs::write(running.join("dr/a.yaml"), lrs_yaml("dr", "a", "deployment")).unwrap();
    let run = run_in(&sandbox, &root, &["prune", "--keep", "1", "-o", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["dryRun"], true);
    assert_eq!(names(&json, "keep"), ["lrs_backup_running.partial", NEWEST]);
    assert_eq!(
        json["keep"][0]["reason"],
        "partial, younger than a day: may still be written"
    );
}

/// A calendar of complete backups around a day, a week and a month boundary: Monday
/// 2025-06-02 opens ISO week 23; 23:30 UTC on it is already Tuesday in Berlin (UTC+2 in summer).
fn calendar_fixture(root: &Path) -> [&'static str; 5] {
    let backups = [
        ("lrs_backup_2025_06_02_23_30", "2025-06-02T23:30:00Z"),
        ("lrs_backup_2025_06_02_08_00", "2025-06-02T08:00:00Z"),
        ("lrs_backup_2025_05_31_12_00", "2025-05-31T12:00:00Z"),
        ("lrs_backup_2025_05_15_12_00", "2025-05-15T12:00:00Z"),
        ("lrs_backup_2025_04_30_12_00", "2025-04-30T12:00:00Z"),
    ];
    for (name, created_at) in backups {
        managed_backup(
            root,
            name,
            created_at,
            "complete",
            &[("dr", "a", "deployment")],
            &[],
        );
    }
    backups.map(|(name, _)| name)
}

#[test]
fn prune_keeps_by_day_week_and_month_in_the_time_zone_and_says_why() {
    let sandbox = Sandbox::new();
    let root = sandbox.path("backups");
    calendar_fixture(&root);
    let rules = [
        "prune",
        "--keep-daily",
        "2",
        "--keep-weekly",
        "2",
        "--keep-monthly",
        "2",
    ];
    let mut berlin = rules.to_vec();
    berlin.extend(["--time-zone", "Europe/Berlin"]);
    let run = run_in(&sandbox, &root, &berlin);
    insta::assert_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    Would delete 2 backup(s) (2.0 KiB) in [HOME]/backups:
    NAME                          CREATED                   STATUS     SIZE      WHY
    lrs_backup_2025_05_15_12_00   2025-05-15 12:00:00 UTC   complete   1.0 KiB   no rule keeps it: beyond the 2 newest days, beyond the 2 newest weeks, 2025-05 has a newer backup
    lrs_backup_2025_04_30_12_00   2025-04-30 12:00:00 UTC   complete   1.0 KiB   no rule keeps it: beyond the 2 newest days, beyond the 2 newest weeks, beyond the 2 newest months

    Kept 3 backup(s):
    NAME                          CREATED                   STATUS     SIZE      WHY
    lrs_backup_2025_06_02_23_30   2025-06-02 23:30:00 UTC   complete   1.0 KiB   newest complete backup that verifies; keep-daily 2025-06-03; keep-weekly 2025-W23; keep-monthly 2025-06
    lrs_backup_2025_06_02_08_00   2025-06-02 08:00:00 UTC   complete   1.0 KiB   keep-daily 2025-06-02
    lrs_backup_2025_05_31_12_00   2025-05-31 12:00:00 UTC   complete   1.0 KiB   keep-weekly 2025-W22; keep-monthly 2025-05

    Days, weeks and months are those of Europe/Berlin.

    Nothing was deleted: run again with --yes to delete.

    ----- stderr -----
    "#);
    // The same rules in UTC (here from TZ, the local time zone): both June 2 backups fall on
    // one day, so May 31 is the second day kept.
    let sandbox = sandbox.env("TZ", "UTC");
    let run = run_in(&sandbox, &root, &rules);
    insta::assert_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    Would delete 3 backup(s) (3.0 KiB) in [HOME]/backups:
    NAME                          CREATED                   STATUS     SIZE      WHY
    lrs_backup_2025_06_02_08_00   2025-06-02 08:00:00 UTC   complete   1.0 KiB   no rule keeps it: 2025-06-02 has a newer backup, 2025-W23 has a newer backup, 2025-06 has a newer backup
    lrs_backup_2025_05_15_12_00   2025-05-15 12:00:00 UTC   complete   1.0 KiB   no rule keeps it: beyond the 2 newest days, beyond the 2 newest weeks, 2025-05 has a newer backup
    lrs_backup_2025_04_30_12_00   2025-04-30 12:00:00 UTC   complete   1.0 KiB   no rule keeps it: beyond the 2 newest days, beyond the 2 newest weeks, beyond the 2 newest months

    Kept 2 backup(s):
    NAME                          CREATED                   STATUS     SIZE      WHY
    lrs_backup_2025_06_02_23_30   2025-06-02 23:30:00 UTC   complete   1.0 KiB   newest complete backup that verifies; keep-daily 2025-06-02; keep-weekly 2025-W23; keep-monthly 2025-06
    lrs_backup_2025_05_31_12_00   2025-05-31 12:00:00 UTC   complete   1.0 KiB   keep-daily 2025-05-31; keep-weekly 2025-W22; keep-monthly 2025-05

    Days, weeks and months are those of UTC.

    Nothing was deleted: run again with --yes to delete.

    ----- stderr -----
    "#);
    assert!(
        root.join("lrs_backup_2025_04_30_12_00").is_dir(),
        "a dry run"
    );
}

#[test]
fn prune_never_deletes_the_newest_backup_that_verifies() {
    let sandbox = Sandbox::new();
    let root = sandbox.path("backups");
    let [newest, second, ..] = calendar_fixture(&root);
    // The newest backup is damaged: an object changed after the manifest was written.
    std::fs::write(root.join(newest).join("dr/a.yaml"), "kind: Changed\n").unwrap();
    let run = run_in(&sandbox, &root, &["prune", "--keep-within", "1d", "--yes"]);
    insta::assert_snapshot!(run.shown(&sandbox), @r#"
    exit: 0
    ----- stdout -----
    Deleted 4 backup(s) (3.8 KiB) in [HOME]/backups:
    NAME                          CREATED                   STATUS     SIZE      WHY
    lrs_backup_2025_06_02_23_30   2025-06-02 23:30:00 UTC   complete   834 B     no rule keeps it: older than 1d; does not verify: 1 problem(s)
    lrs_backup_2025_05_31_12_00   2025-05-31 12:00:00 UTC   complete   1.0 KiB   no rule keeps it: older than 1d
    lrs_backup_2025_05_15_12_00   2025-05-15 12:00:00 UTC   complete   1.0 KiB   no rule keeps it: older than 1d
    lrs_backup_2025_04_30_12_00   2025-04-30 12:00:00 UTC   complete   1.0 KiB   no rule keeps it: older than 1d

    Kept 1 backup(s):
    NAME                          CREATED                   STATUS     SIZE      WHY
    lrs_backup_2025_06_02_08_00   2025-06-02 08:00:00 UTC   complete   1.0 KiB   newest complete backup that verifies

    ----- stderr -----
    "#);
    let run = run_in(&sandbox, &root, &["list", "-o", "json"]);
    assert_eq!(names(&run.json(), "backups"), [second]);
}

#[test]
fn prune_refuses_an_unknown_time_zone() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(
        &sandbox,
        &root,
        &["prune", "--keep-daily", "7", "--time-zone", "Mars/Olympus"],
    );
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: invalid value 'Mars/Olympus' for '--time-zone <TZ>': `Mars/Olympus` is not a time zone: use an IANA name like Europe/Berlin, or UTC

    For more information, try '--help'.
    "#);
    assert!(root.join(STALE_PARTIAL).is_dir());
}

#[test]
fn prune_needs_a_rule() {
    let (sandbox, root) = sandbox_with_backups();
    let run = run_in(&sandbox, &root, &["prune"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox), @r#"
    exit: 2
    ----- stdout -----

    ----- stderr -----
    error: the following required arguments were not provided:
      <--keep-last <N>|--keep-daily <N>|--keep-weekly <N>|--keep-monthly <N>|--keep-within <DURATION>>

    Usage: kubectl mlbackup prune --dir <DIR> <--keep-last <N>|--keep-daily <N>|--keep-weekly <N>|--keep-monthly <N>|--keep-within <DURATION>>

    For more information, try '--help'.
    "#);
    let run = run_in(&sandbox, &root, &["prune", "--keep", "0"]);
    run.expect_code(2);
}
