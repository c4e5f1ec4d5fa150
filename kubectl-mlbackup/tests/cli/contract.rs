//! The `-o json` contract: every command's output read into mirror types that deny unknown
//! fields, so that a field added, renamed or dropped fails here and is a deliberate change.

// The mirror types exist for their shape: deserialising is the check, most fields are not read.
#![allow(dead_code)]

use std::collections::BTreeMap;

use mlbackup_testkit::sample::SampleSpec;
use mlbackup_testkit::world::{App, Deployments};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::support::{Run, Sandbox, in_sandbox, start_world};

/// Runs every command once, in an order where each has something to report.
fn every_command() -> Vec<(&'static str, Run)> {
    crate::in_pod::helper_beside_the_plugin();
    let sandbox = Sandbox::new();
    let (cluster, api) = start_world(
        in_sandbox(&sandbox)
            .cluster(SampleSpec {
                lrs: 3,
                spark: 2,
                other: 1,
                ..SampleSpec::default()
            })
            .kube_options(mlbackup_testkit::kube::FakeKubeOptions {
                controller_delay: std::time::Duration::from_millis(50),
                lrs_operator_delay: Some(std::time::Duration::from_millis(50)),
                ..Default::default()
            })
            .app(App::Workloads)
            .datarobot(
                Deployments::Numbered {
                    active: 3,
                    inactive: 1,
                },
                crate::in_pod::fast(),
            ),
    );
    let sandbox = api
        .configure(sandbox, api.datarobot.admin_token())
        .env("KUBECONFIG", cluster.kubeconfig.to_str().unwrap())
        .env("DR_CORE_NAMESPACE", "dr-app")
        .env("MLBACKUP_DIR", "backups");
    // Test keys made with `age-keygen` (they protect nothing).
    let public = "age1534h5g5vjgxhvt9gk9xp92j2hr6ue6yxaq7855klm2lkp9wj8chsq5kgqq";
    std::fs::write(
        sandbox.path("key.txt"),
        "AGE-SECRET-KEY-13JPM5TKU3Z7JCZL49XZJ0X6TRJLLMGDMEKAN5U4AQHUSMTWCA6NQUM6Y24\n",
    )
    .unwrap();
    std::fs::set_permissions(
        sandbox.path("key.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let commands: &[(&str, &[&str])] = &[
        ("version", &["version"]),
        ("backup", &["backup", "--name", "nightly"]),
        ("list", &["list"]),
        ("show", &["show", "nightly"]),
        ("verify", &["verify", "nightly"]),
        ("verify", &["verify", "nightly", "--against-cluster"]),
        ("api-surface", &["api-surface"]),
        (
            "verify",
            &["verify", "nightly", "--against", "target-api.yaml"],
        ),
        (
            "backup",
            &["backup", "--name", "sealed", "--recipient", public],
        ),
        ("show", &["show", "sealed", "--files"]),
        ("verify", &["verify", "sealed", "--identity", "key.txt"]),
        (
            "rekey",
            &[
                "rekey",
                "sealed",
                "--identity",
                "key.txt",
                "--recipient",
                public,
            ],
        ),
        ("diff", &["diff", "nightly"]),
        ("restore", &["restore", "nightly"]),
        ("spark-cleanup", &["spark-cleanup", "--yes"]),
        ("app stop", &["app", "stop", "--yes"]),
        ("app start", &["app", "start"]),
        ("deployments list", &["deployments", "list"]),
        (
            "deployments deactivate",
            &["deployments", "deactivate", "--yes", "--state", "s.json"],
        ),
        (
            "deployments reactivate",
            &["deployments", "reactivate", "--yes", "--state", "s.json"],
        ),
        ("prepare", &["prepare", "--yes", "--name", "before-upgrade"]),
        ("recover", &["recover", "before-upgrade"]),
        ("copy", &["copy", "nightly", "--to", "elsewhere"]),
        ("delete", &["delete", "nightly", "--yes"]),
        ("prune", &["prune", "--keep", "1"]),
    ];
    // The schedule's Job runs this plugin in the fake cluster's kubelet, into a folder outside
    // /tmp (the pod's /tmp is its scratch emptyDir).
    const IMAGE: &str = "registry.example.com/kubectl-mlbackup:contract";
    cluster.kube.map_image(
        IMAGE,
        std::path::Path::new(env!("CARGO_BIN_EXE_kubectl-mlbackup")),
    );
    let scheduled = crate::support::dir_outside_the_pods_tmp();
    let scheduled_dir = scheduled.path().display().to_string();
    let install: Vec<&str> = vec![
        "schedule",
        "install",
        "--schedule",
        "0 3 * * *",
        "--image",
        IMAGE,
        "--dir",
        &scheduled_dir,
    ];
    let schedule_commands: [(&str, &[&str]); 4] = [
        ("schedule install", &install),
        ("schedule run-now", &["schedule", "run-now", "--wait"]),
        ("schedule status", &["schedule", "status"]),
        ("schedule uninstall", &["schedule", "uninstall"]),
    ];
    // `verify --against` reads the file `api-surface` writes in its own (YAML) format.
    let surface = sandbox.run(&["api-surface"]);
    surface.expect_code(0);
    std::fs::write(sandbox.path("target-api.yaml"), &surface.stdout).unwrap();
    commands
        .iter()
        .copied()
        .chain(schedule_commands)
        .map(|(name, args)| {
            let mut args = args.to_vec();
            args.extend(["-o", "json"]);
            (name, sandbox.run(&args))
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScheduleObjectJson {
    kind: String,
    name: String,
    #[serde(default)]
    action: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScheduleInstallJson {
    schedule: String,
    namespace: String,
    cron: String,
    time_zone: Option<String>,
    next_run: Option<String>,
    objects: Vec<ScheduleObjectJson>,
    #[serde(default)]
    carried: Vec<ScheduleCarriedJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScheduleCarriedJson {
    variable: String,
    path: String,
    bytes: u64,
    config_map: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScheduleRunJson {
    job: String,
    namespace: String,
    status: String,
    log_tail: Option<String>,
    pod_state: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScheduleStatusJson {
    schedule: String,
    namespace: String,
    cron: String,
    time_zone: Option<String>,
    suspended: bool,
    next_run: Option<String>,
    last_schedule: Option<String>,
    last_run: Option<String>,
    last_run_result: Option<String>,
    last_run_problem: Option<String>,
    last_success: Option<String>,
    last_attempt: Option<RunRecordJson>,
    last_attempt_job: Option<String>,
    last_success_backup: Option<String>,
    #[serde(default)]
    last_failed_run: Option<String>,
    overdue: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RunRecordJson {
    schedule: String,
    holder: String,
    started: String,
    finished: Option<String>,
    status: String,
    backup: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScheduleUninstallJson {
    schedule: String,
    namespace: String,
    removed: Vec<ScheduleObjectJson>,
    #[serde(default)]
    kept_namespace: Option<ScheduleKeptNamespaceJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScheduleKeptNamespaceJson {
    name: String,
    holds: Vec<String>,
}

// --- Mirror types: what a script reading `-o json` may rely on. Optional fields are the ones
// the output leaves out when empty; every object denies fields it does not name.

type Counts = BTreeMap<String, u64>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VersionJson {
    client_version: ClientVersionJson,
    helper: HelperJson,
    #[serde(default)]
    server_version: Option<ServerVersionJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClientVersionJson {
    version: String,
    platform: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HelperJson {
    platform: String,
    path: Option<String>,
    version: Option<String>,
    #[serde(default)]
    problem: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServerVersionJson {
    git_version: String,
    platform: String,
    server: String,
    context: Option<String>,
    namespace: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BackupJson {
    name: String,
    path: String,
    status: String,
    resource: String,
    selector: String,
    namespaces: Vec<String>,
    objects: u64,
    bytes: u64,
    counts_by_type: Counts,
    counts_by_namespace: Counts,
    duration_seconds: f64,
    errors: Vec<String>,
    #[serde(default)]
    encrypted_to: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListJson {
    dir: String,
    backups: Vec<ListedBackupJson>,
    unreadable: Vec<UnreadableJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListedBackupJson {
    name: String,
    path: String,
    status: String,
    created_at: String,
    cluster: Option<ClusterJson>,
    lrs_count: u64,
    counts_by_type: Counts,
    size_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnreadableJson {
    name: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterJson {
    server: String,
    context: Option<String>,
    /// The uid of the cluster's kube-system namespace.
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ShowJson {
    name: String,
    path: String,
    status: String,
    created_at: String,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    format_version: Option<u32>,
    #[serde(default)]
    tool_version: Option<String>,
    #[serde(default)]
    cluster: Option<ClusterJson>,
    #[serde(default)]
    resource: Option<ResourceJson>,
    #[serde(default)]
    selector: Option<String>,
    #[serde(default)]
    namespaces: Option<Vec<String>>,
    lrs_count: u64,
    counts_by_type: Counts,
    counts_by_namespace: Counts,
    size_bytes: u64,
    deployments_snapshot: bool,
    journal: bool,
    #[serde(default)]
    encryption: Option<EncryptionJson>,
    errors: Vec<String>,
    #[serde(default)]
    files: Option<Vec<FileJson>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptionJson {
    scheme: String,
    recipients: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileJson {
    path: String,
    namespace: String,
    name: String,
    r#type: String,
    uid: String,
    resource_version: String,
    sha256: String,
    bytes: u64,
    #[serde(default)]
    plaintext_sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RekeyJson {
    name: String,
    path: String,
    items: u64,
    old_recipients: Vec<String>,
    new_recipients: Vec<String>,
    decrypted_back: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceJson {
    group: String,
    version: String,
    kind: String,
    plural: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyJson {
    name: String,
    path: String,
    status: String,
    ok: bool,
    checked: u64,
    problems: Vec<ProblemJson>,
    #[serde(default)]
    decrypted: Option<bool>,
    #[serde(default, rename = "againstCluster")]
    against_cluster: Option<ClusterCheckJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ClusterCheckJson {
    server: String,
    context: Option<String>,
    #[serde(default)]
    surface: Option<SurfaceSourceJson>,
    resource: String,
    #[serde(default)]
    not_served: Option<String>,
    checked_by: String,
    #[serde(default)]
    not_checked: Vec<String>,
    failed: u64,
    items: Vec<ItemCheckJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SurfaceSourceJson {
    path: String,
    taken_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApiSurfaceJson {
    kind: String,
    format: u32,
    taken_at: String,
    server: String,
    context: Option<String>,
    namespace: String,
    server_version: String,
    cluster_id: Option<String>,
    group: Option<ServedGroupJson>,
    custom_resource_definition: Option<Value>,
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    problems: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServedGroupJson {
    name: String,
    preferred_version: Option<String>,
    versions: Vec<ServedVersionJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServedVersionJson {
    version: String,
    resources: Vec<ApiResourceJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiResourceJson {
    name: String,
    kind: String,
    namespaced: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemCheckJson {
    path: String,
    #[serde(default)]
    object: Option<String>,
    ok: bool,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProblemJson {
    path: String,
    kind: String,
    detail: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffJson {
    backup: String,
    path: String,
    server: String,
    context: Option<String>,
    selector: String,
    namespaces: Vec<String>,
    identical: bool,
    summary: DiffSummaryJson,
    items: Vec<DiffItemJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffSummaryJson {
    total: u64,
    missing: u64,
    differs: u64,
    same: u64,
    extra: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffItemJson {
    status: String,
    namespace: String,
    name: String,
    r#type: String,
    path: Option<String>,
    #[serde(default)]
    diff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestoreJson {
    backup: String,
    path: String,
    server: String,
    context: Option<String>,
    resource: String,
    dry_run: Option<String>,
    existing: String,
    interrupted: bool,
    summary: RestoreSummaryJson,
    namespaces_created: Vec<String>,
    invalid_files: Vec<ProblemJson>,
    items: Vec<RestoreItemJson>,
    journal: Option<String>,
    #[serde(default)]
    journal_note: Option<String>,
    duration_seconds: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestoreSummaryJson {
    total: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    skipped_differs: u64,
    failed: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestoreItemJson {
    namespace: String,
    name: String,
    source_namespace: String,
    r#type: String,
    path: String,
    result: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CleanupJson {
    selector: String,
    namespace: Option<String>,
    dry_run: bool,
    waited: bool,
    timeout_seconds: f64,
    summary: CleanupSummaryJson,
    items: Vec<CleanupItemJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CleanupSummaryJson {
    total: u64,
    deleted: u64,
    deleting: u64,
    timed_out: u64,
    failed: u64,
    interrupted: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CleanupItemJson {
    namespace: String,
    name: String,
    uid: String,
    result: String,
    #[serde(default)]
    finalizers: Vec<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AppJson {
    action: String,
    namespace: String,
    selection: SelectionJson,
    annotation: String,
    dry_run: bool,
    waited: bool,
    timeout_seconds: Option<f64>,
    summary: AppSummaryJson,
    workloads: Vec<WorkloadJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectionJson {
    selectors: Vec<String>,
    extras: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AppSummaryJson {
    total: u64,
    changed: u64,
    unchanged: u64,
    not_found: u64,
    timed_out: u64,
    failed: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WorkloadJson {
    kind: Option<String>,
    name: String,
    selected_by: String,
    replicas_before: Option<i64>,
    replicas_after: Option<i64>,
    recorded: Option<i64>,
    result: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeploymentsListJson {
    api_url: String,
    deployments: Vec<DeploymentJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentJson {
    id: String,
    label: String,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangeJson {
    action: String,
    api_url: String,
    snapshot: Option<String>,
    dry_run: bool,
    wait: bool,
    deployments: Vec<ChangeItemJson>,
    summary: ChangeSummaryJson,
    left_alone: u64,
    stopped: Option<String>,
    seconds: f64,
    max_in_flight: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangeItemJson {
    id: String,
    label: String,
    before: Option<String>,
    after: Option<String>,
    outcome: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error_kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangeSummaryJson {
    total: u64,
    changed: u64,
    requested: u64,
    unchanged: u64,
    skipped: u64,
    would_change: u64,
    missing: u64,
    failed: u64,
    not_attempted: u64,
    unknown: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RunbookJson {
    runbook: String,
    backup: Option<String>,
    path: Option<String>,
    dry_run: bool,
    result: String,
    steps: Vec<StepJson>,
    journal: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StepJson {
    step: String,
    result: String,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    seconds: f64,
    summary: String,
    counts: Counts,
    errors: Vec<String>,
    /// The standalone command's own outcome: checked by its mirror in [`check_step`].
    #[serde(default)]
    detail: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeleteJson {
    name: String,
    path: String,
    freed_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CopyJson {
    name: String,
    from: String,
    to: String,
    objects: u64,
    bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PruneJson {
    dir: String,
    dry_run: bool,
    delete: Vec<PruneEntryJson>,
    keep: Vec<PruneEntryJson>,
    failed: Vec<PruneEntryJson>,
    freed_bytes: u64,
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PruneEntryJson {
    name: String,
    status: String,
    created_at: String,
    size_bytes: u64,
    reason: String,
}

/// `value` read strictly as `T`; the failure names the command and shows the output.
fn read<T: DeserializeOwned>(command: &str, value: &Value) -> T {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("`{command} -o json` breaks its contract: {e}\n{value:#}"))
}

/// A runbook step's `detail` is the outcome of the standalone command it ran.
fn check_step(runbook: &str, step: &StepJson) {
    let Some(detail) = &step.detail else {
        return;
    };
    let what = format!("{runbook} step {}", step.step);
    match step.step.as_str() {
        "backup" => drop(read::<BackupJson>(&what, detail)),
        "deactivate-deployments" | "reactivate-deployments" => {
            drop(read::<ChangeJson>(&what, detail))
        }
        "spark-cleanup" => drop(read::<CleanupJson>(&what, detail)),
        "stop-app" | "start-app" => drop(read::<AppJson>(&what, detail)),
        "restore-lrs" => drop(read::<RestoreJson>(&what, detail)),
        "verify" => drop(read::<DiffJson>(&what, detail)),
        other => panic!("{what}: a step without a mirror type ({other})"),
    }
}

/// Every summary: `total`, then one count per outcome, zeros included, and the counts add up.
fn check_summary(command: &str, value: &Value) {
    let Some(summary) = value.get("summary") else {
        return;
    };
    let counts = summary.as_object().unwrap();
    let keys: Vec<&String> = counts.keys().collect();
    assert_eq!(
        keys[0], "total",
        "{command}: summary starts with total: {summary}"
    );
    assert!(
        counts.values().all(Value::is_u64),
        "{command}: every count is present as a number: {summary}"
    );
}

#[test]
fn every_command_keeps_its_json_contract_and_one_summary_shape() {
    let runs = every_command();
    let mut seen = Vec::new();
    for (command, run) in &runs {
        run.expect_code(0);
        let value = run.json();
        check_summary(command, &value);
        match *command {
            "version" => {
                let version: VersionJson = read(command, &value);
                assert!(
                    version.server_version.is_some(),
                    "the fake cluster answered"
                );
            }
            "backup" => drop(read::<BackupJson>(command, &value)),
            "list" => drop(read::<ListJson>(command, &value)),
            "show" => drop(read::<ShowJson>(command, &value)),
            "verify" => drop(read::<VerifyJson>(command, &value)),
            "api-surface" => {
                let surface: ApiSurfaceJson = read(command, &value);
                assert!(surface.custom_resource_definition.is_some(), "{command}");
            }
            "rekey" => drop(read::<RekeyJson>(command, &value)),
            "diff" => drop(read::<DiffJson>(command, &value)),
            "restore" => drop(read::<RestoreJson>(command, &value)),
            "spark-cleanup" => {
                let cleanup: CleanupJson = read(command, &value);
                assert_eq!(cleanup.summary.total, 2, "both Spark sessions were found");
            }
            "app stop" | "app start" => drop(read::<AppJson>(command, &value)),
            "deployments list" => drop(read::<DeploymentsListJson>(command, &value)),
            "deployments deactivate" | "deployments reactivate" => {
                let change: ChangeJson = read(command, &value);
                let s = &change.summary;
                assert_eq!(
                    s.total,
                    s.changed
                        + s.requested
                        + s.unchanged
                        + s.skipped
                        + s.would_change
                        + s.missing
                        + s.failed
                        + s.not_attempted
                        + s.unknown,
                    "{command}: the counts add up to the total"
                );
                assert_eq!((s.total, s.changed), (3, 3), "{command}");
            }
            "prepare" | "recover" => {
                let runbook: RunbookJson = read(command, &value);
                assert_eq!(runbook.result, "succeeded", "{command}");
                for step in &runbook.steps {
                    check_step(command, step);
                }
            }
            "copy" => {
                let copy: CopyJson = read(command, &value);
                assert_eq!(copy.name, "nightly");
                assert!(copy.to.ends_with("elsewhere/nightly"), "{}", copy.to);
                assert!(copy.objects > 0 && copy.bytes > 0, "{command}");
                assert!(!copy.from.is_empty());
            }
            "delete" => drop(read::<DeleteJson>(command, &value)),
            "prune" => drop(read::<PruneJson>(command, &value)),
            "schedule install" => drop(read::<ScheduleInstallJson>(command, &value)),
            "schedule run-now" => {
                let run: ScheduleRunJson = read(command, &value);
                assert_eq!(run.status, "succeeded", "{command}");
            }
            "schedule status" => drop(read::<ScheduleStatusJson>(command, &value)),
            "schedule uninstall" => drop(read::<ScheduleUninstallJson>(command, &value)),
            other => panic!("{other}: a command without a mirror type"),
        }
        seen.push(*command);
    }
    assert_eq!(seen.len(), 29, "every command ran: {seen:?}");
}
