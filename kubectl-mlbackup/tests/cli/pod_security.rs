//! The pod path against an attacker: another user of the app pod (a uid of its own, dropped to
//! with `setpriv`, so these tests run as root like the rest of the suite) who plants a fake
//! helper, or someone in the namespace who starts a pod with the app's labels. The token must
//! reach only the helper this run uploaded, in the pod the Deployment controls; and Ctrl-C
//! while the helper runs stops it, records what it did and exits 130.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mlbackup_testkit::datarobot::FakeDataRobotOptions;
use mlbackup_testkit::faults::{Fault, FaultRule};
use serde_json::{Value, json};
use sha2::Digest;

use crate::in_pod::{
    World, helper_beside_the_plugin, helper_processes, leftovers, world, world_with,
};
use crate::support::{FakeCluster, Run, Sandbox};

/// The attacker's uid and gid (`nobody`).
const ATTACKER: &str = "65534";

fn require_root() {
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        uid, 0,
        "these tests play another user of the pod with setpriv, which needs root"
    );
}

/// Runs `script` with `sh` as the attacker, `input` on its stdin.
fn as_attacker(script: &str, input: &[u8]) {
    let mut child = Command::new(mlbackup_testkit::tools::require(
        "setpriv",
        "util-linux; plays another user",
    ))
    .args([
        "--reuid",
        ATTACKER,
        "--regid",
        ATTACKER,
        "--clear-groups",
        "sh",
        "-c",
        script,
    ])
    .stdin(Stdio::piped())
    .spawn()
    .expect("run setpriv");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "as the attacker: {script}");
}

/// A TMPDIR like /tmp: sticky and world-writable, reachable by the attacker.
fn sticky_tmp() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pod-tmp-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// A directory standing for an image's PATH: every program on this machine's PATH but `tool`.
fn path_without(tool: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for bin in std::env::split_paths(&path) {
        for entry in std::fs::read_dir(&bin).into_iter().flatten().flatten() {
            let link = dir.path().join(entry.file_name());
            if entry.file_name() != tool && std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .env_clear()
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert!(!found.status.success(), "{tool} is not on the pod's PATH");
    dir
}

/// Gives the app pod's container these environment variables (as its Deployment's template
/// would), keeping the pod under its ReplicaSet.
fn set_pod_env(w: &World, vars: &[(&str, &Path)]) {
    for pod in w.cluster.kube.list("pods", Some("dr-app")) {
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        let mut pod = pod.clone();
        pod["spec"]["containers"][0]["env"] = vars
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value.to_str().unwrap()}))
            .collect();
        w.cluster.kube.remove("pods", Some("dr-app"), &name);
        w.cluster.kube.insert(pod).unwrap();
    }
}

/// What the attacker prepared in the pod's TMPDIR: a copy of the real helper to pass the
/// request on to (so the run looks normal), and where stolen request lines go.
struct Attacker {
    real: PathBuf,
    stolen: PathBuf,
    /// Where earlier versions of the plugin put the helper: `mlbackup-helper-<sha256[..16]>`.
    planted: PathBuf,
}

impl Attacker {
    fn new(pod_tmp: &Path, helper: &[u8]) -> Attacker {
        let home = pod_tmp.join("attacker");
        let real = home.join("real-helper");
        as_attacker(
            &format!(
                "mkdir -m 755 {home} && cat > {real} && chmod 755 {real}",
                home = home.display(),
                real = real.display()
            ),
            helper,
        );
        let sha256 = format!("{:x}", sha2::Sha256::digest(helper));
        Attacker {
            stolen: home.join("stolen"),
            planted: pod_tmp.join(format!("mlbackup-helper-{}", &sha256[..16])),
            real,
        }
    }

    /// A helper that copies the request line to `stolen` and passes it on to the real one,
    /// padded to `size` bytes when given.
    fn fake(&self, size: Option<usize>) -> Vec<u8> {
        let mut text = format!(
            "#!/bin/sh\nhead -n 1 | tee -a {} | exec {} \"$@\"\nexit\n",
            self.stolen.display(),
            self.real.display()
        )
        .into_bytes();
        if let Some(size) = size {
            text.push(b'#');
            text.resize(size - 1, b'x');
            text.push(b'\n');
        }
        text
    }

    /// Puts `content` at the predictable name, as the attacker, executable by all.
    fn plant(&self, content: &[u8]) {
        as_attacker(
            &format!("cat > {f} && chmod 755 {f}", f = self.planted.display()),
            content,
        );
    }

    fn stolen(&self) -> String {
        std::fs::read_to_string(&self.stolen).unwrap_or_default()
    }
}

/// Deactivates everything through the pod; the run must succeed.
fn deactivate(w: &World) -> Run {
    let run = w.sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--state",
        "state.json",
        "-o",
        "json",
    ]);
    run.expect_code(0);
    assert!(
        w.api
            .statuses()
            .iter()
            .all(|(_, s)| s.as_str() == "inactive")
    );
    run
}

/// The names in the pod's TMPDIR: only what the attacker put there is left.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_same_sized_fake_at_the_old_name_in_a_pod_without_sha256sum_gets_nothing() {
    require_root();
    let w = world(3, 1);
    let pod_tmp = sticky_tmp();
    let bin = path_without("sha256sum");
    set_pod_env(&w, &[("PATH", bin.path()), ("TMPDIR", pod_tmp.path())]);
    let helper = std::fs::read(helper_beside_the_plugin()).unwrap();
    let attacker = Attacker::new(pod_tmp.path(), &helper);
    let fake = attacker.fake(Some(helper.len()));
    assert_eq!(
        fake.len(),
        helper.len(),
        "only the size could tell them apart"
    );
    attacker.plant(&fake);

    deactivate(&w);
    let token = w.api.datarobot.admin_token();
    assert!(!attacker.stolen().contains(token), "the token was stolen");
    assert_eq!(
        std::fs::read(&attacker.planted).unwrap(),
        fake,
        "left alone"
    );
    assert_eq!(
        names_in(pod_tmp.path()),
        [
            "attacker".to_string(),
            attacker
                .planted
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into()
        ],
        "the run's own directories are gone"
    );
}

#[test]
fn a_copy_at_the_old_name_rewritten_after_the_check_gets_nothing() {
    require_root();
    let w = world(3, 1);
    let pod_tmp = sticky_tmp();
    set_pod_env(&w, &[("TMPDIR", pod_tmp.path())]);
    let helper = std::fs::read(helper_beside_the_plugin()).unwrap();
    let attacker = Arc::new(Attacker::new(pod_tmp.path(), &helper));
    // A genuine copy passes any check; the attacker, who owns it, rewrites it in the moment
    // between the check and the exec (the fake API server gives that moment exactly: just
    // before a command that runs the file starts, as inotify would tell a real attacker).
    attacker.plant(&helper);
    let swaps = Arc::new(AtomicUsize::new(0));
    {
        let (attacker, swaps) = (attacker.clone(), swaps.clone());
        let planted = attacker.planted.to_string_lossy().into_owned();
        w.cluster.kube.before_exec(move |_, command| {
            if command.first() == Some(&planted) {
                swaps.fetch_add(1, Ordering::SeqCst);
                attacker.plant(&attacker.fake(None));
            }
        });
    }

    deactivate(&w);
    let token = w.api.datarobot.admin_token();
    assert!(!attacker.stolen().contains(token), "the token was stolen");
    assert_eq!(
        swaps.load(Ordering::SeqCst),
        0,
        "nothing at the predictable name was ever run"
    );
    assert_eq!(std::fs::read(&attacker.planted).unwrap(), helper);
    assert_eq!(names_in(pod_tmp.path()).len(), 2, "the run's own are gone");
}

/// A Running, Ready pod with the labels of `mmapp-app` in `dr-app`, created before its own
/// pods by someone else (no ownerReferences).
fn lookalike(cluster: &FakeCluster, name: &str) {
    let own = cluster
        .kube
        .list("pods", Some("dr-app"))
        .into_iter()
        .find(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("mmapp-app-")
        })
        .unwrap();
    cluster
        .kube
        .insert(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "dr-app",
                "labels": own["metadata"]["labels"],
                "creationTimestamp": "2020-01-01T00:00:00Z",
            },
            "spec": own["spec"],
            "status": own["status"],
        }))
        .unwrap();
}

/// The pods the plugin exec'd into.
fn exec_targets(cluster: &FakeCluster) -> Vec<String> {
    let mut pods: Vec<String> = cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.path.ends_with("/exec"))
        .map(|r| r.path.split('/').nth_back(1).unwrap().to_string())
        .collect();
    pods.sort();
    pods.dedup();
    pods
}

#[test]
fn a_pod_that_only_carries_the_app_labels_gets_no_token_and_is_named() {
    let w = world(2, 0);
    lookalike(&w.cluster, "mmapp-app-lookalike");
    let run = w.sandbox.run(&["deployments", "list", "-o", "json"]);
    mlbackup_testkit::assert_run_snapshot!("lookalike_left_alone", run.shown(&w.sandbox));
    let targets = exec_targets(&w.cluster);
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert!(
        targets[0].starts_with("mmapp-app-") && targets[0] != "mmapp-app-lookalike",
        "{targets:?}"
    );

    // Named explicitly, it is the operator's choice.
    w.cluster.kube.requests().clear();
    let run = w.sandbox.run(&[
        "deployments",
        "list",
        "--app",
        "pod/mmapp-app-lookalike",
        "-o",
        "json",
    ]);
    run.expect_code(0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    assert_eq!(exec_targets(&w.cluster), ["mmapp-app-lookalike"]);
}

#[test]
fn app_stop_waits_only_for_the_pods_of_its_workloads() {
    let sandbox = Sandbox::new();
    let cluster = FakeCluster::with_app(&sandbox, Duration::from_millis(50));
    lookalike(&cluster, "mmapp-app-lookalike");
    let run = sandbox.run(&[
        "app",
        "stop",
        "--yes",
        "--timeout",
        "30s",
        &cluster.kubeconfig_arg(),
        "-o",
        "json",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&sandbox));
    let left: Vec<String> = cluster
        .pod_names()
        .into_iter()
        .filter(|name| name.starts_with("mmapp-app-"))
        .collect();
    assert_eq!(
        left,
        ["mmapp-app-lookalike"],
        "the app's own pods are gone; the other one is left alone"
    );
}

/// Starts `args`, sends SIGINT once `ready` says so, and returns the run.
fn interrupted(w: &World, args: &[&str], ready: impl Fn() -> bool) -> Run {
    let child = w.sandbox.spawn(args);
    mlbackup_testkit::wait::wait_until("the moment to interrupt", Duration::from_secs(60), ready);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn ctrl_c_while_the_helper_lists_exits_130_and_leaves_nothing_in_the_pod() {
    let w = world(2, 0);
    // The helper's first API request hangs: the plugin is interrupted while it waits.
    w.api.datarobot.faults().add(FaultRule::new(
        "/version/",
        Fault::Latency(Duration::from_secs(600)),
        Some(1),
    ));
    let run = interrupted(&w, &["deployments", "list", "-o", "json"], || {
        w.api.datarobot.requests().max_in_flight() >= 1
    });
    mlbackup_testkit::assert_run_snapshot!(run.shown(&w.sandbox));
    assert!(helper_processes(&w.sandbox.path("pods")).is_empty());
    assert!(
        leftovers(&w.sandbox).is_empty(),
        "{:?}",
        leftovers(&w.sandbox)
    );
}

#[test]
fn ctrl_c_while_the_helper_deactivates_reports_what_it_did_and_exits_130() {
    let w = world_with(
        40,
        0,
        FakeDataRobotOptions {
            status_change_duration: Duration::from_millis(300),
            ..FakeDataRobotOptions::default()
        },
    );
    let run = interrupted(
        &w,
        &[
            "deployments",
            "deactivate",
            "--yes",
            "--state",
            "s.json",
            "--concurrency",
            "2",
            "-o",
            "json",
        ],
        || w.api.datarobot.status_history().len() >= 3,
    );
    run.expect_code(130);
    let json: Value = run.json();
    assert_eq!(json["stopped"], "interrupted");
    let items = json["deployments"].as_array().unwrap();
    assert_eq!(items.len(), 40);
    let count = |outcome: &str| items.iter().filter(|i| i["outcome"] == outcome).count();
    assert_eq!(count("unknown"), 0, "the helper's own report: {json}");
    assert!(count("notAttempted") > 0, "{json}");
    assert_eq!(
        w.api.datarobot.status_history().len(),
        40 - count("notAttempted"),
        "the helper stopped: what it did not attempt was not requested"
    );
    assert!(helper_processes(&w.sandbox.path("pods")).is_empty());
    assert!(
        leftovers(&w.sandbox).is_empty(),
        "{:?}",
        leftovers(&w.sandbox)
    );
    assert!(
        w.sandbox.path("s.json").exists(),
        "the snapshot is recorded"
    );
}
