//! The official DataRobot Python client (`datarobot` 3.20.0) against the fake DataRobot API over
//! TLS: listing across pages, status changes through the asynchronous status job, tokens.
//!
//! The Python comes from `MLBACKUP_CONFORMANCE_PYTHON`, else from
//! `<workspace>/target/conformance-venv`, which the test creates when missing (PyPI must be
//! reachable then). The venv is built in a temporary directory next to it and renamed into place,
//! so concurrent runs never see a half-made one: the first rename wins, later ones discard theirs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use mlbackup_testkit::datarobot::{
    DeploymentSeed, DeploymentStatus, FakeDataRobotOptions, StatusOutcome, object_id,
};
use mlbackup_testkit::world::{Deployments, World};
use serde_json::Value;

const CLIENT_VERSION: &str = "3.20.0";
const DEPLOYMENTS: u64 = 130;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether `python` imports `datarobot` at the pinned version.
fn has_client(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import datarobot, sys; sys.exit(datarobot.__version__ != sys.argv[1])",
        ])
        .arg(CLIENT_VERSION)
        .output()
        .is_ok_and(|out| out.status.success())
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Python with the official client, creating the shared venv if needed.
fn conformance_python() -> PathBuf {
    if let Some(python) = std::env::var_os("MLBACKUP_CONFORMANCE_PYTHON") {
        let python = PathBuf::from(python);
        assert!(
            has_client(&python),
            "MLBACKUP_CONFORMANCE_PYTHON={} does not have datarobot=={CLIENT_VERSION}",
            python.display()
        );
        return python;
    }
    let target = workspace_root().join("target");
    let venv = target.join("conformance-venv");
    let python = venv.join("bin").join("python");
    if has_client(&python) {
        return python;
    }
    std::fs::create_dir_all(&target).unwrap();
    // The venv only ever runs as `<venv>/bin/python` (pip as `python -m pip`), which works
    // after the directory is renamed: python finds its prefix from its own location.
    let scratch = tempfile::Builder::new()
        .prefix("conformance-venv.tmp-")
        .tempdir_in(&target)
        .unwrap();
    let building = scratch.path().join("venv");
    run(Command::new("python3").args(["-m", "venv"]).arg(&building));
    let scratch_python = building.join("bin").join("python");
    run(Command::new(&scratch_python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("datarobot=={CLIENT_VERSION}"),
    ]));
    // Losing the race (another run renamed its venv first) is fine: use the winner's.
    if std::fs::rename(&building, &venv).is_err() && !has_client(&python) {
        panic!(
            "could not put the venv in place at {} (a broken one is there? remove it)",
            venv.display()
        );
    }
    assert!(has_client(&python), "the new venv lacks the client");
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_lists_and_toggles_deployments() {
    let python = tokio::task::spawn_blocking(conformance_python)
        .await
        .unwrap();

    let world = World::builder()
        .datarobot(
            Deployments::Numbered {
                active: 0,
                inactive: 0,
            },
            FakeDataRobotOptions::default(),
        )
        .start()
        .await
        .unwrap();
    let dr = world.datarobot();
    for n in 0..DEPLOYMENTS {
        dr.add_deployment(DeploymentSeed {
            id: object_id(n),
            label: format!("churn-model-{n:03}"),
            status: if n % 5 == 4 {
                DeploymentStatus::Inactive
            } else {
                DeploymentStatus::Active
            },
            description: (n % 3 == 0).then(|| format!("model number {n}")),
            importance: if n % 7 == 0 {
                None
            } else {
                Some("HIGH".to_string())
            },
            created_at: Utc::now(),
        });
    }
    let toggle = object_id(0);
    let ca = world.api().ca_file.as_ref().expect("the fake speaks TLS");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/dr_conformance.py");

    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .env("DR_API_URL", dr.api_url())
        .env("DR_APP_URL", dr.url())
        .env("DR_CA_FILE", ca)
        .env("DR_ADMIN_TOKEN", dr.admin_token())
        .env("DR_USER_TOKEN", dr.user_token())
        .env("DR_TOGGLE_ID", &toggle)
        // Keep the user's DataRobot configuration out of it.
        .env_remove("DATAROBOT_ENDPOINT")
        .env_remove("DATAROBOT_API_TOKEN")
        .env_remove("DATAROBOT_CONFIG_FILE")
        // requests lets these override the client's `ssl_verify=<CA file>` (the per-request
        // setting from the environment wins over the session's), which would reject the fake.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        // The world's HOME: no `~/.config/datarobot/drconfig.yaml` of the user's.
        .env("HOME", world.home())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("the Python client took over 120 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the script failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));

    // Shown with --nocapture or on failure: what the client saw.
    eprintln!("python client report: {report}");
    assert_eq!(report["clientVersion"], CLIENT_VERSION);
    // The client's own urllib3 deprecation warning may be there; none about the server.
    let warnings = report["clientWarnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .all(|w| !w.as_str().unwrap().to_lowercase().contains("server")),
        "the version check should pass silently: {warnings:?}"
    );

    // Deployment.list() walked every page (130 at the default 20 per page) through `next`.
    let listed = report["listed"].as_array().unwrap();
    let expected: Vec<_> = dr.deployments();
    assert_eq!(listed.len(), expected.len());
    for (got, want) in listed.iter().zip(&expected) {
        assert_eq!(got["id"], want.id.as_str());
        assert_eq!(got["label"], want.label.as_str());
        assert_eq!(got["importance"], serde_json::json!(want.importance));
    }
    let list_pages = dr
        .requests()
        .count(|r| r.method == "GET" && r.path == "/api/v2/deployments/" && r.status == 200);
    assert!(list_pages >= 7, "only {list_pages} list requests");
    assert_eq!(report["explicitPage"].as_array().unwrap().len(), 30);

    // deactivate() then activate(): both waited for their status job and saw the result.
    assert_eq!(report["before"], "active");
    assert_eq!(report["afterDeactivate"], "inactive");
    assert_eq!(report["afterDeactivateFetched"], "inactive");
    assert_eq!(report["afterActivate"], "active");
    assert!(report["model"]["target_type"].is_string());
    assert_eq!(
        dr.deployment(&toggle).unwrap().status,
        DeploymentStatus::Active
    );
    let history = dr.status_history();
    let summary: Vec<_> = history
        .iter()
        .map(|c| (c.deployment_id.as_str(), c.from, c.to, c.outcome.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                toggle.as_str(),
                DeploymentStatus::Active,
                DeploymentStatus::Inactive,
                StatusOutcome::Completed
            ),
            (
                toggle.as_str(),
                DeploymentStatus::Inactive,
                DeploymentStatus::Active,
                StatusOutcome::Completed
            ),
        ],
        "exactly the two admin changes, the user's was refused"
    );
    // The client polled each job without following redirects: 200 while running, then 303.
    let polls: Vec<u16> = dr
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v2/status/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(polls.iter().filter(|&&s| s == 303).count(), 2, "{polls:?}");
    assert!(polls.contains(&200), "{polls:?}");
    assert!(
        dr.requests().entries().iter().all(|r| r
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("DataRobotPythonClient/3.20.0"))),
        "every request came from the client"
    );

    // Both schemes, as the client sends them.
    assert_eq!(report["bearerListCount"], 3);
    let schemes: std::collections::BTreeSet<String> = dr
        .requests()
        .entries()
        .into_iter()
        .filter_map(|r| r.auth_scheme)
        .collect();
    assert!(
        schemes.contains("Token") && schemes.contains("Bearer"),
        "{schemes:?}"
    );

    // The app URL is refused by the client (it only appends paths to the endpoint it is given).
    assert_eq!(report["appUrl"]["accepted"], false);
    assert_eq!(report["appUrl"]["statusCode"], 404);
    assert!(
        report["appUrl"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/v2")
    );

    assert_eq!(report["wrongToken"]["accepted"], false);
    assert_eq!(report["wrongToken"]["statusCode"], 401);

    assert_eq!(report["userDeactivate"]["accepted"], false);
    assert_eq!(report["userDeactivate"]["statusCode"], 403);
    assert_eq!(
        report["userPermissions"],
        serde_json::json!(["CAN_MAKE_PREDICTIONS", "CAN_VIEW"])
    );
}
