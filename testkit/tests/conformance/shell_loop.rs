//! The vendor runbook's LRS backup loop (`testkit/scripts/runbook-lrs-backup.sh`, copied verbatim
//! from the documentation) runs unchanged against the sandbox: it is the baseline that the
//! benchmark compares `kubectl mlbackup backup` with, and its known defects are pinned here.

use std::path::{Path, PathBuf};
use std::process::Command;

use mlbackup_testkit::sandbox::SandboxProcess;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/runbook-lrs-backup.sh")
}

fn run_loop(sandbox: &SandboxProcess, cwd: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(script())
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .env("KUBECONFIG", &sandbox.ready.kubeconfig)
        .env("DR_CORE_NAMESPACE", &sandbox.ready.app_namespace)
        .output()
        .expect("run bash")
}

fn backup_folder(cwd: &Path) -> PathBuf {
    std::fs::read_dir(cwd)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("lrs_backup_")
        })
        .expect("the loop made its lrs_backup_ folder")
}

#[test]
fn the_documented_loop_backs_up_the_app_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_mlbackup-sandbox")),
        dir.path(),
        &["--lrs", "9", "--spark", "2", "--namespaces", "1"],
    )
    .unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let output = run_loop(&sandbox, &work);
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("Backup completed. Files saved in lrs_backup_")
    );
    let folder = backup_folder(&work);
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        9,
        "one file per deployment LRS, spark sessions left out"
    );
    for file in files {
        let object: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(object["kind"], "LongRunningService");
        assert_eq!(
            object["metadata"]["labels"]["datarobot-lrs-type"],
            "deployment"
        );
        // A defect of the loop that restore has to deal with: server-set fields are kept.
        assert!(object["metadata"]["resourceVersion"].is_string());
        assert!(object["metadata"]["uid"].is_string());
    }
}

#[test]
fn the_documented_loop_misses_lrses_outside_the_app_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = SandboxProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_mlbackup-sandbox")),
        dir.path(),
        &["--lrs", "6", "--namespaces", "3"],
    )
    .unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let output = run_loop(&sandbox, &work);
    // The loop still reports success (exit 0) although it failed for 4 of 6 objects.
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("NotFound")
            || String::from_utf8_lossy(&output.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let folder = backup_folder(&work);
    let complete = std::fs::read_dir(&folder)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().metadata().unwrap().len() > 0)
        .count();
    assert_eq!(
        complete, 2,
        "only the app namespace's LRSes made it (LRS i lives in namespace i % 3)"
    );
}
