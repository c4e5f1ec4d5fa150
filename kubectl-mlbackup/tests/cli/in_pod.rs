//! `deployments ... --via pod` (the default): the plugin uploads the real helper binary into the
//! fake `mmapp-app` pod, which really runs it against the fake DataRobot API.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mlbackup_testkit::datarobot::FakeDataRobotOptions;
use mlbackup_testkit::kube::access::DenyRule;
use mlbackup_testkit::sample::SampleSpec;
use mlbackup_testkit::wait::wait_until;
use serde_json::Value;

use mlbackup_testkit::world::{App, Deployments};

use crate::support::{FakeApi, FakeCluster, Run, Sandbox, in_sandbox, start_world};

/// The helper binary beside the plugin (where `helper_binary::locate` finds it), current with
/// its sources: `cargo test -p kubectl-mlbackup` builds the plugin but not the helper, so a
/// helper left by an earlier build would be tested otherwise. When it is missing or older than
/// any of its sources, cargo builds it (once per test process).
pub fn helper_beside_the_plugin() -> &'static Path {
    static HELPER: OnceLock<PathBuf> = OnceLock::new();
    HELPER.get_or_init(|| {
        let plugin = Path::new(env!("CARGO_BIN_EXE_kubectl-mlbackup"));
        let helper = plugin.with_file_name("mlbackup-helper");
        let profile_dir = plugin
            .parent()
            .expect("the plugin is in a profile directory");
        if let Some(source) = newer_source(&helper) {
            eprintln!(
                "building the helper: {} is missing or older than {}",
                helper.display(),
                source.display()
            );
            let mut build = std::process::Command::new(env!("CARGO"));
            build
                .args(["build", "-p", "mlbackup-helper", "--bin", "mlbackup-helper"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            // The plugin's own target directory and profile (`target/debug`, `target/release`,
            // a custom profile's directory).
            if let Some(target) = profile_dir.parent() {
                build.env("CARGO_TARGET_DIR", target);
            }
            match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => {}
                Some(profile) => {
                    build.args(["--profile", profile]);
                }
            }
            let status = build.status().expect("run cargo build");
            assert!(status.success(), "cannot build the helper: {build:?}");
            // Cargo's fingerprints decide: a change that leaves the helper as it was (a
            // workspace manifest's other sections) leaves the binary's time as it was too.
            assert!(helper.is_file(), "cargo built no {}", helper.display());
        }
        // `locate` prefers a packaged helper under helpers/; one there would shadow this one.
        let packaged = profile_dir.join("helpers");
        assert!(
            !packaged.exists(),
            "{} would be used instead of the helper under test: remove it",
            packaged.display()
        );
        helper
    })
}

/// A source of the helper (its crate, the workspace manifest and lock file) changed after
/// `binary` was built; `Some` also when there is no binary.
fn newer_source(binary: &Path) -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = match std::fs::metadata(binary).and_then(|m| m.modified()) {
        Ok(built) => built,
        Err(_) => return Some(binary.to_path_buf()),
    };
    let mut pending = vec![workspace.join("helper")];
    let mut sources = vec![workspace.join("Cargo.toml"), workspace.join("Cargo.lock")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            // The helper's own tests do not go into the binary.
            if path.is_dir() && entry.file_name() != "tests" {
                pending.push(path);
            } else if path.is_file() {
                sources.push(path);
            }
        }
    }
    sources.into_iter().find(|source| {
        std::fs::metadata(source)
            .and_then(|m| m.modified())
            .is_ok_and(|changed| changed > built)
    })
}

pub struct World {
    pub sandbox: Sandbox,
    pub cluster: FakeCluster,
    pub api: FakeApi,
}

/// No LRS, the app pod in `dr-app` (the namespace the plugin is told), and `active` plus
/// `inactive` deployments behind jobs of 50 ms; the plugin's environment points at both.
pub fn world(active: usize, inactive: usize) -> World {
    world_with(active, inactive, fast())
}

/// [`world`] with the DataRobot API's own options.
pub fn world_with(active: usize, inactive: usize, options: FakeDataRobotOptions) -> World {
    helper_beside_the_plugin();
    let sandbox = Sandbox::new();
    let (cluster, api) = start_world(
        in_sandbox(&sandbox)
            .cluster(SampleSpec {
                lrs: 0,
                spark: 0,
                other: 0,
                ..SampleSpec::default()
            })
            .app(App::Pod)
            .datarobot(Deployments::Numbered { active, inactive }, options),
    );
    let sandbox = api
        .configure(sandbox, api.datarobot.admin_token())
        .env("KUBECONFIG", cluster.kubeconfig.to_str().unwrap())
        .env("DR_CORE_NAMESPACE", "dr-app");
    World {
        sandbox,
        cluster,
        api,
    }
}

pub fn fast() -> FakeDataRobotOptions {
    FakeDataRobotOptions {
        status_change_duration: std::time::Duration::from_millis(50),
        ..FakeDataRobotOptions::default()
    }
}

/// The helper processes running in this test's pods: `mlbackup-helper serve-request` with
/// its working directory (its private directory) under `pods`.
pub fn helper_processes(pods: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cwd.starts_with(pods) && cmdline.ends_with(b"mlbackup-helper\0serve-request\0") {
            found.push(pid);
        }
    }
    found
}

/// The files the helper left in the pod's TMPDIR.
pub fn leftovers(sandbox: &Sandbox) -> Vec<String> {
    let pods = sandbox.path("pods").join("dr-app");
    let mut found = Vec::new();
    for pod in std::fs::read_dir(pods).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(pod.path().join("tmp"))
            .into_iter()
            .flatten()
            .flatten()
        {
            found.push(file.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// What a change did, without what differs between two runs (times, URLs).
fn essence(run: &Run) -> Vec<(String, String, String, String)> {
    run.json()["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let text = |key: &str| d[key].as_str().unwrap_or_default().to_string();
            (text("id"), text("before"), text("after"), text("outcome"))
        })
        .collect()
}

#[test]
fn the_helper_runs_in_the_pod_and_does_what_local_does() {
    let pod = world(5, 2);
    let local = world(5, 2);
    let deactivate = |w: &World, via: &str| {
        w.sandbox.run(&[
            "deployments",
            "deactivate",
            "--yes",
            "--via",
            via,
            "--state",
            "state.json",
            "-o",
            "json",
        ])
    };
    let in_pod = deactivate(&pod, "pod");
    in_pod.expect_code(0);
    let here = deactivate(&local, "local");
    here.expect_code(0);
    assert_eq!(essence(&in_pod), essence(&here));
    assert_eq!(pod.api.statuses(), local.api.statuses());
    assert!(
        pod.api
            .statuses()
            .iter()
            .all(|(_, s)| s.as_str() == "inactive")
    );

    let reactivate = |w: &World, via: &str| {
        w.sandbox.run(&[
            "deployments",
            "reactivate",
            "--via",
            via,
            "--state",
            "state.json",
            "-o",
            "json",
        ])
    };
    let in_pod = reactivate(&pod, "pod");
    in_pod.expect_code(0);
    let here = reactivate(&local, "local");
    here.expect_code(0);
    assert_eq!(essence(&in_pod), essence(&here));
    assert_eq!(pod.api.statuses(), local.api.statuses());
    let active = pod
        .api
        .statuses()
        .iter()
        .filter(|(_, s)| s.as_str() == "active")
        .count();
    assert_eq!(
        active, 5,
        "exactly those active before, not the 2 inactive ones"
    );

    // The helper really ran in the pod: its requests reached the DataRobot API, and the
    // cluster saw each request as one exec into the app pod (upload, check and run in one
    // command), besides `uname -m` (the fake's nodes cannot be read).
    let execs: Vec<String> = pod
        .cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.path.ends_with("/exec") && r.path.contains("/pods/mmapp-app-"))
        .filter_map(|r| r.query)
        .filter(|q| q.contains("serve-request"))
        .collect();
    assert_eq!(
        execs.len(),
        4,
        "list and change, for deactivate and reactivate: {execs:?}"
    );
    assert!(
        leftovers(&pod.sandbox).is_empty(),
        "the helper is removed at the end: {:?}",
        leftovers(&pod.sandbox)
    );
}

#[test]
fn a_kept_helper_stays_in_its_private_directory_and_is_never_reused() {
    let w = world(2, 0);
    let first = w
        .sandbox
        .run(&["deployments", "list", "--keep-helper", "-v", "-o", "json"]);
    first.expect_code(0);
    assert_eq!(first.json()["deployments"].as_array().unwrap().len(), 2);
    let kept = leftovers(&w.sandbox);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].starts_with("mlbackup-helper-"), "{kept:?}");
    mlbackup_testkit::assert_run_snapshot!(first.shown(&w.sandbox));

    // The next run uploads its own copy into a fresh directory, and removes it.
    let second = w.sandbox.run(&["deployments", "list", "-v", "-o", "json"]);
    second.expect_code(0);
    let running: Vec<&str> = second
        .stderr
        .lines()
        .filter(|l| l.contains("mlbackup: running "))
        .collect();
    assert_eq!(running.len(), 1, "{}", second.stderr);
    assert!(!running[0].contains(&kept[0]), "{}", second.stderr);
    assert_eq!(leftovers(&w.sandbox), kept, "only the kept one is left");
}

#[test]
fn missing_rbac_is_named_before_anything_runs() {
    let w = world(2, 0);
    w.cluster
        .kube
        .access()
        .deny(DenyRule::new("create", "", "pods").subresource("exec"));
    let run = w.sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--state",
        "state.json",
    ]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&w.sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot run the helper in deploy/mmapp-app in the namespace `dr-app`
      caused by: missing permissions in the namespace `dr-app`: create pods/exec
    hint: ask a cluster admin for them; check with `kubectl auth can-i create pods/exec -n dr-app`
    "#);
    assert_eq!(w.api.datarobot.requests().entries().len(), 0, "nothing ran");
    assert_eq!(
        w.cluster
            .kube
            .requests()
            .count(|r| r.path.ends_with("/exec")),
        0
    );
    assert!(!w.sandbox.path("state.json").exists());
}

#[test]
fn a_missing_app_is_a_clear_error() {
    let w = world(1, 0);
    let run = w
        .sandbox
        .run(&["deployments", "list", "--app-namespace", "elsewhere"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&w.sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot run the helper in deploy/mmapp-app in the namespace `elsewhere`
      caused by: deploy/mmapp-app was not found in the namespace `elsewhere`
    hint: the app lives in the namespace DataRobot is installed in: set --app-namespace or DR_CORE_NAMESPACE, or name the target with --app
    "#);
    let run = w
        .sandbox
        .run(&["deployments", "list", "--helper", "/nonexistent/helper"]);
    mlbackup_testkit::assert_run_snapshot!(run.shown(&w.sandbox), @r#"
    exit: 1
    ----- stdout -----

    ----- stderr -----
    error: cannot find the helper to run in the pod
      caused by: no mlbackup-helper for linux/amd64 (looked at /nonexistent/helper)
    hint: pass --helper PATH or set MLBACKUP_HELPER to a mlbackup-helper built for linux/amd64, or put it at helpers/linux-amd64/mlbackup-helper beside the plugin
    "#);
}

/// The plugin killed outright mid-change: a kubelet does not stop what it exec'd, so the
/// helper must notice that its stdin ended and stop by itself: no further change, and no
/// process holding the token left in the pod.
#[test]
fn the_helper_stops_by_itself_when_the_plugin_is_killed() {
    let w = world(6, 0);
    w.api
        .datarobot
        .faults()
        .add(mlbackup_testkit::faults::FaultRule::new(
            "/status/",
            mlbackup_testkit::faults::Fault::Latency(std::time::Duration::from_millis(700)),
            None,
        ));
    let mut child = w.sandbox.spawn(&[
        "deployments",
        "deactivate",
        "--yes",
        "--state",
        "state.json",
        "--concurrency",
        "1",
        "-o",
        "json",
    ]);
    let pods = w.sandbox.path("pods");
    wait_until(
        "the change started",
        std::time::Duration::from_secs(30),
        || !w.api.datarobot.status_history().is_empty(),
    );
    assert_eq!(
        helper_processes(&pods).len(),
        1,
        "the helper runs in the pod"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // Well within the fake's ORPHAN_WAIT, after which it would kill the helper itself.
    wait_until(
        "the helper stops after the plugin was killed",
        std::time::Duration::from_secs(30),
        || helper_processes(&pods).is_empty(),
    );
    // The change in flight when the plugin died may finish; none is started after it.
    let changed = w.api.datarobot.status_history().len();
    assert!(
        changed <= 2,
        "{changed} of 6 changed after the plugin was killed"
    );
}

#[test]
fn a_broken_exec_stream_is_reported_honestly() {
    let w = world(6, 0);
    // Slow status jobs keep the change under way long enough to cut the stream.
    w.api
        .datarobot
        .faults()
        .add(mlbackup_testkit::faults::FaultRule::new(
            "/status/",
            mlbackup_testkit::faults::Fault::Latency(std::time::Duration::from_millis(700)),
            None,
        ));
    let child = w.sandbox.spawn(&[
        "deployments",
        "deactivate",
        "--yes",
        "--state",
        "state.json",
        "--concurrency",
        "2",
        "-o",
        "json",
    ]);
    // Kill the helper inside the pod once the snapshot is written and changes are under way.
    let pods = w.sandbox.path("pods");
    wait_until(
        "two changes are under way",
        std::time::Duration::from_secs(30),
        || w.api.datarobot.status_history().len() >= 2,
    );
    let helpers = helper_processes(&pods);
    assert_eq!(helpers.len(), 1, "the helper process was found in the pod");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &helpers[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let outcome: Value = serde_json::from_slice(&output.stdout).unwrap();
    let outcomes: Vec<&str> = outcome["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"unknown"), "{outcomes:?}");
    // How many changes finished before the kill depends on timing (the outcomes above say
    // which): the whole of stderr is checked, not snapshotted, with that count in it.
    let not_changed = outcomes.iter().filter(|o| **o != "changed").count();
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("error: {not_changed} of 6 deployments were not deactivated; a re-run is safe\n")
    );
    assert!(
        w.sandbox.path("state.json").exists(),
        "the snapshot was written before any change"
    );

    // A re-run finishes the job and changes nothing twice.
    let rerun = w.sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--state",
        "state.json",
        "-o",
        "json",
    ]);
    rerun.expect_code(0);
    assert!(
        w.api
            .statuses()
            .iter()
            .all(|(_, s)| s.as_str() == "inactive")
    );
    let history = w.api.datarobot.status_history();
    let mut ids: Vec<_> = history.iter().map(|c| c.deployment_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        history.len(),
        "no deployment changed twice: {history:#?}"
    );
}

#[test]
fn the_token_appears_nowhere_on_the_pod_path() {
    let w = world(3, 1);
    let token = w.api.datarobot.admin_token().to_string();
    let run = w.sandbox.run(&[
        "deployments",
        "deactivate",
        "--yes",
        "--state",
        "state.json",
        "-v",
        "9",
    ]);
    run.expect_code(0);
    assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token));
    for request in w.cluster.kube.requests().entries() {
        let text = format!("{} {:?}", request.path, request.query);
        assert!(
            !text.contains(&token),
            "token in a request to the API server: {text}"
        );
    }
    let exec_queries: Vec<String> = w
        .cluster
        .kube
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.path.ends_with("/exec"))
        .filter_map(|r| r.query)
        .collect();
    assert!(
        exec_queries.iter().any(|q| q.contains("serve-request")),
        "{exec_queries:?}"
    );
    assert!(
        !std::fs::read_to_string(w.sandbox.path("state.json"))
            .unwrap()
            .contains(&token)
    );
}

/// A plugin run that the test interrupts: its pid for hooks, and its output once it ends.
struct Interruptible {
    pid: u32,
    ended: std::sync::mpsc::Receiver<std::process::Output>,
}

/// Generous: a run that has not ended by then hangs (the test fails; it measures nothing).
const HANG: std::time::Duration = std::time::Duration::from_secs(120);

impl Interruptible {
    /// Starts a deactivation through the pod (the default), `-v` so the pod's stderr shows.
    fn deactivate(
        w: &World,
        pid_for_hooks: &std::sync::Arc<std::sync::Mutex<Option<u32>>>,
    ) -> Self {
        let child = w.sandbox.spawn(&[
            "deployments",
            "deactivate",
            "--yes",
            "-v",
            "--state",
            "state.json",
            "-o",
            "json",
        ]);
        let pid = child.id();
        *pid_for_hooks.lock().unwrap() = Some(pid);
        let (done, ended) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output().unwrap());
        });
        Interruptible { pid, ended }
    }

    /// Its output, or a failed test (the process killed) when it does not end within [`HANG`].
    fn output(&self) -> std::process::Output {
        match self.ended.recv_timeout(HANG) {
            Ok(output) => output,
            Err(_) => {
                sigkill(self.pid);
                panic!("the plugin did not end within {HANG:?} of Ctrl-C: it hangs");
            }
        }
    }
}

fn sigint(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

fn sigkill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// Whether an exec'd command is the upload-and-run of the helper (not its cleanup).
fn is_upload(command: &[String]) -> bool {
    command.iter().any(|part| part.contains("serve-request"))
}

#[test]
fn ctrl_c_while_the_helper_is_uploaded_exits_130_and_cleans_up() {
    let w = world(4, 0);
    let pid: std::sync::Arc<std::sync::Mutex<Option<u32>>> = Default::default();
    // The gate: the upload's command does not start (the plugin is still writing the binary,
    // no hello came) until the plugin has ended, or the test gave up on it.
    let (released, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let uploads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    w.cluster.kube.before_exec({
        let (pid, uploads) = (pid.clone(), uploads.clone());
        move |_, command| {
            if is_upload(command) {
                uploads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                sigint(pid.lock().unwrap().expect("the plugin was started"));
                let _ = gate.lock().unwrap().recv_timeout(HANG);
            }
        }
    });
    let run = Interruptible::deactivate(&w, &pid);
    let output = run.output();
    let _ = released.send(());
    mlbackup_testkit::assert_run_snapshot!(Run::from(output).shown(&w.sandbox));
    assert_eq!(uploads.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(w.api.datarobot.status_history().is_empty());
    assert!(!w.sandbox.path("state.json").exists());
    assert_eq!(
        leftovers(&w.sandbox),
        Vec::<String>::new(),
        "the private directory was removed"
    );
}

#[test]
fn ctrl_c_after_the_hello_before_the_answer_exits_130() {
    let w = world(4, 0);
    // The list of deployments is not answered until the helper gives up on it.
    w.api
        .datarobot
        .faults()
        .add(mlbackup_testkit::faults::FaultRule::new(
            "",
            mlbackup_testkit::faults::Fault::Latency(HANG * 2),
            None,
        ));
    let pid: std::sync::Arc<std::sync::Mutex<Option<u32>>> = Default::default();
    let run = Interruptible::deactivate(&w, &pid);
    // The helper said hello, got the request and asked the API: interrupt now.
    wait_until("the helper asks the API", HANG, || {
        w.api.datarobot.requests().max_in_flight() > 0
    });
    sigint(run.pid);
    let output = run.output();
    mlbackup_testkit::assert_run_snapshot!(Run::from(output).shown(&w.sandbox));
    assert!(!w.sandbox.path("state.json").exists());
    assert_eq!(leftovers(&w.sandbox), Vec::<String>::new());
}

#[test]
fn a_second_ctrl_c_exits_at_once_even_when_the_cleanup_hangs() {
    let w = world(4, 0);
    let pid: std::sync::Arc<std::sync::Mutex<Option<u32>>> = Default::default();
    let (cleaning, cleanup_started) = std::sync::mpsc::channel::<()>();
    let cleaning = std::sync::Mutex::new(cleaning);
    let (released, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    w.cluster.kube.before_exec({
        let pid = pid.clone();
        move |_, command| {
            let pid = pid.lock().unwrap().expect("the plugin was started");
            if is_upload(command) {
                sigint(pid);
            } else if command.iter().any(|part| part.contains("rmdir")) {
                // The cleanup hangs (until the test ends).
                let _ = cleaning.lock().unwrap().send(());
                let _ = gate.lock().unwrap().recv_timeout(HANG);
            }
        }
    });
    let run = Interruptible::deactivate(&w, &pid);
    cleanup_started
        .recv_timeout(HANG)
        .expect("the plugin cleans up after the first Ctrl-C");
    sigint(run.pid);
    let output = run.output();
    let _ = released.send(());
    mlbackup_testkit::assert_run_snapshot!(Run::from(output).shown(&w.sandbox));
    assert!(w.api.datarobot.status_history().is_empty());
}

#[test]
fn ctrl_c_before_the_pod_is_found_exits_130_having_done_nothing() {
    let w = world(4, 0);
    // The pods are listed (to find the app's) only after a long wait: interrupt during it.
    w.cluster
        .kube
        .faults()
        .add(mlbackup_testkit::faults::FaultRule::new(
            "/pods",
            mlbackup_testkit::faults::Fault::Latency(HANG * 2),
            None,
        ));
    let pid: std::sync::Arc<std::sync::Mutex<Option<u32>>> = Default::default();
    let run = Interruptible::deactivate(&w, &pid);
    // Once it talks to the cluster it cannot get past the list of pods: it is still finding
    // the pod when the Ctrl-C comes.
    wait_until("the plugin asks the cluster", HANG, || {
        w.cluster.kube.requests().max_in_flight() > 0
    });
    sigint(run.pid);
    let output = run.output();
    // Exit 130, not killed by the signal.
    mlbackup_testkit::assert_run_snapshot!(Run::from(output).shown(&w.sandbox));
    assert!(!w.sandbox.path("state.json").exists());
}
