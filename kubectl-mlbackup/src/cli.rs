//! The command line: every flag and subcommand, whose doc comments are the help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cluster::ConnectOptions;
use crate::cluster::lrs::ResourceOverride;
use crate::object::{DEPLOYMENT_TYPE, TYPE_LABEL};
use crate::printer::OutputFormat;

/// The value name of every argument that names a backup of the catalog: shell completion offers
/// the backups of `--dir` / `MLBACKUP_DIR` for the arguments that carry it.
pub const BACKUP: &str = "BACKUP";

/// Back up, restore and quiesce the Long Running Services (LRS) and model deployments of a
/// self-managed DataRobot installation, safely and fast.
///
/// Run it as `kubectl mlbackup ...`. It uses the same kubeconfig, context and namespace as
/// kubectl.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-mlbackup",
    bin_name = "kubectl mlbackup",
    version,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The kubectl-style flags every subcommand accepts.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use (instead of KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub kubeconfig: Option<PathBuf>,

    /// The name of the kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The name of the kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The name of the kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// The namespace to work in (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// How long to wait for one API request before giving up, like `30s` or `1m`; `0` waits
    /// forever.
    #[arg(long, global = true, value_name = "DURATION", value_parser = crate::duration::parse)]
    pub request_timeout: Option<Duration>,

    /// Output format of the data written to stdout.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Log verbosity, like kubectl's: 1 shows steps, 6 and more shows every API request.
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        value_name = "LEVEL",
        num_args = 0..=1,
        default_value_t = 0,
        default_missing_value = "1"
    )]
    pub verbosity: u8,
}

impl GlobalArgs {
    /// How to reach the cluster, as these flags say.
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            namespace: self.namespace.clone(),
            request_timeout: self.request_timeout,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the plugin version and the version of the cluster's API server.
    ///
    /// Also shows the helper binary the plugin would upload into an app pod of this machine's
    /// architecture, with its version: MLBACKUP_HELPER, else helpers/linux-<arch>/mlbackup-helper
    /// beside the plugin executable, else mlbackup-helper beside it. Then the context and
    /// namespace the plugin will act on. Exits 1 when the cluster cannot be reached (after
    /// printing the plugin version); a missing helper is reported, not an error.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup version\n  \
        kubectl mlbackup version --context prod -o json\n  \
        kubectl mlbackup version --client")]
    Version(VersionArgs),

    /// Back up LRS objects, one YAML file per object, into a new backup folder.
    ///
    /// One paginated list request (never one request per object) across all namespaces, unless
    /// -n narrows it. Each object is written as `kubectl get -o yaml` shows it (without
    /// managedFields) to `<namespace>/<name>.yaml`, and `manifest.json` records every file with
    /// its sha256. The folder is written as `<name>.partial` and renamed when complete; an
    /// interrupted or failed backup stays `.partial` with a manifest of status `partial`.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup backup\n  \
        kubectl mlbackup backup --all-types --dir /srv/backups\n  \
        kubectl mlbackup backup --type deployment --type custom_application -n dr-app\n  \
        kubectl mlbackup backup --name before-upgrade -o json")]
    Backup(BackupArgs),

    /// List the backups in the backup directory, newest first.
    ///
    /// Shows the backups written by `kubectl mlbackup backup` (status complete, or partial when
    /// unfinished) and the folders made by the documented shell loop (`lrs_backup_*` holding
    /// YAML files, status unmanaged). Other directories are ignored.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup list\n  \
        kubectl mlbackup list --dir /backups/prod -o json\n  \
        MLBACKUP_DIR=/backups/prod kubectl mlbackup list")]
    List(ListArgs),

    /// Show what a backup holds: its manifest, and counts per type and per namespace.
    ///
    /// Also says whether the backup holds a snapshot of deployment states (deployments.json)
    /// and a journal of prepare/recover/restore steps (journal.jsonl).
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup show lrs_backup_2026_11_21_14_05\n  \
        kubectl mlbackup show lrs_backup_2026_11_21_14_05 --files\n  \
        kubectl mlbackup show ./old/lrs_backup_2026_10_01_09_30 -o json")]
    Show(ShowArgs),

    /// Check that a backup's files are intact and restorable.
    ///
    /// Every file the manifest lists must be present with the recorded size and SHA-256, parse
    /// as an object of the recorded apiVersion and kind, and be named like its path; files the
    /// manifest does not list are reported. In a folder without a manifest (shell loop), every
    /// YAML file must parse as an object with apiVersion, kind and metadata.name. A partial
    /// backup never passes. Exits 1 and lists the bad files, and why, when anything is wrong.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup verify lrs_backup_2026_11_21_14_05\n  \
        kubectl mlbackup verify lrs_backup_2026_11_21_14_05 -o json\n  \
        kubectl mlbackup verify lrs_backup_2026_11_21_14_05 --against-cluster --context target\n  \
        kubectl mlbackup verify lrs_backup_2026_11_21_14_05 --against target-api.yaml")]
    Verify(VerifyArgs),

    /// Write what the current cluster serves for a restore, for `verify --against FILE`.
    ///
    /// Prints one YAML document (JSON with -o json) to stdout: the API server's version, the
    /// LRS API group with each served version and its resources, the LRS
    /// CustomResourceDefinition with its schemas, and the names of the namespaces. Take it on
    /// the target of an air-gapped migration and carry it to where the backups are; nothing
    /// else of the cluster (no object, no secret) is in it. What the user may not read is left
    /// out with a warning, and the file says so.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup api-surface --context target > target-api.yaml\n  \
        kubectl mlbackup verify lrs_backup_2026_11_21_14_05 --against target-api.yaml")]
    ApiSurface(ApiSurfaceArgs),

    /// Re-encrypt an encrypted backup to new recipients (key rotation).
    ///
    /// Every LRS file is decrypted with --identity (one of the backup's recipients), checked
    /// against the manifest's hashes and encrypted again to the new recipients, which replace
    /// the old ones. The new copy is written beside the backup as `<name>.rekey.partial`,
    /// verified, then swapped in with one atomic rename, so the backup is at every moment the
    /// old one whole or the new one whole; an interrupted rekey leaves the backup as it was.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup rekey lrs_backup_2026_11_21_14_05 --identity ~/.config/mlbackup/key.txt \\\n      \
        --recipients-file team-recipients.txt")]
    Rekey(RekeyArgs),

    /// Delete one backup.
    ///
    /// Only a directory that is a backup (see `list`) is ever deleted, never another one, and
    /// symbolic links are never followed. Asks for confirmation; --yes skips the question and
    /// is required when stdin is not a terminal.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup delete lrs_backup_2026_11_21_14_05\n  \
        kubectl mlbackup delete lrs_backup_2026_11_21_14_05.partial --yes")]
    Delete(DeleteArgs),

    /// Copy a backup to another location: a folder or s3://BUCKET/PREFIX, either way.
    ///
    /// Only a complete backup is copied, and only after every file was checked against its
    /// manifest. At the destination the copy is checked again (every sha256) before its
    /// manifest makes it visible: it is complete or not there at all. An existing backup of
    /// the same name at the destination is never overwritten.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup copy lrs_backup_2026_11_21_14_05 --to s3://team-backups/prod\n  \
        kubectl mlbackup copy lrs_backup_2026_11_21_14_05 --dir s3://team-backups/prod --to /srv/backups")]
    Copy(CopyArgs),

    /// Delete old backups, keeping the recent ones.
    ///
    /// Prints what it would delete and what it keeps, each with why; nothing is deleted without
    /// --yes (--dry-run asks for just that, explicitly). A backup is kept when any rule keeps it
    /// (as restic and borg do): --keep-last N the N newest complete backups; --keep-daily N the newest backup of each of the N newest days
    /// that have backups (days without one do not count), --keep-weekly N the same per ISO 8601
    /// week (Monday to Sunday), --keep-monthly N per calendar month; --keep-within DURATION
    /// every backup created at most that long ago. Days, weeks and months are those of
    /// --time-zone (an IANA name like Europe/Berlin, or UTC), by default the local time zone
    /// (TZ, else /etc/localtime, else UTC), applied to each backup's creation time.
    ///
    /// Always kept, whatever the rules: the newest complete backup that verifies (as `verify`
    /// checks it: newer ones that do not are named, and kept only if a rule keeps them; when
    /// none verifies, the newest complete one), and partial backups younger than a day (a
    /// backup may still be writing them). Partial backups
    /// older than a day are deleted and never count for a rule. Folders of the shell loop
    /// (unmanaged) count as complete backups. --keep and --older-than, the flags of earlier
    /// versions, are the same as --keep-last and --keep-within.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup prune --keep-last 5\n  \
        kubectl mlbackup prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --time-zone Europe/Berlin\n  \
        kubectl mlbackup prune --keep-within 30d --yes\n  \
        kubectl mlbackup prune --keep-last 3 --keep-within 7d --dir /backups/prod -o json")]
    Prune(PruneArgs),

    /// Restore the LRS objects of a backup into the cluster with server-side apply.
    ///
    /// BACKUP is a name in the backup directory or a path; plain folders of YAML files (the
    /// documented shell loop's output) work too. Every file is read and checked first (YAML,
    /// apiVersion and kind of the cluster's LRS resource, metadata.name): one bad file stops the
    /// restore before any change and all bad files are listed (--skip-invalid goes on without
    /// them). Server-managed fields (uid, resourceVersion, managedFields, ownerReferences,
    /// status...) are dropped, then each object is applied with field manager
    /// `kubectl-mlbackup`. Objects that exist are left alone and reported as unchanged or as
    /// differing from the backup (labels, annotations, spec), unless --existing=update.
    /// Restoring the same backup again changes nothing. Objects without a namespace go to the
    /// -n / context namespace; with -n, only objects of that namespace are restored.
    ///
    /// Each real run (not dry runs) is recorded as one line in the backup's journal.jsonl;
    /// folders without a manifest keep no journal. Exits 1 when any object failed.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup restore lrs_backup_2026_11_21_14_05\n  \
        kubectl mlbackup restore lrs_backup_2026_11_21_14_05 --dry-run=server\n  \
        kubectl mlbackup restore lrs_backup_2026_11_21_14_05 --existing=update --only dr-app/cm-6571\n  \
        kubectl mlbackup restore ./old/lrs_backup_2026_11_21_14_05 --namespace-map dr-app=dr-app-new\n  \
        kubectl mlbackup restore lrs_backup_2026_11_21_14_05 --context new --create-namespaces -o json")]
    Restore(RestoreArgs),

    /// Compare a backup with the live cluster.
    ///
    /// Each LRS of the backup is missing in the cluster, differs (a unified diff of labels,
    /// annotations and spec follows), or is the same; LRSes that match the backup's selector in
    /// the backup's namespaces but are not in the backup are extra in the cluster (for folders
    /// without a manifest: `datarobot-lrs-type=deployment` in all namespaces, as the documented
    /// loop). Like diff(1), exits 0 when there is no difference and 1 when there is (or on
    /// error).
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup diff lrs_backup_2026_11_21_14_05\n  \
        kubectl mlbackup diff lrs_backup_2026_11_21_14_05 --namespace-map dr-app=dr-app-new\n  \
        kubectl mlbackup diff lrs_backup_2026_11_21_14_05 -o json")]
    Diff(DiffArgs),

    /// Delete the interactive Spark sessions (LRS of type spark_app) before an upgrade.
    ///
    /// Lists the LRSes labelled `datarobot-lrs-type=spark_app` in all namespaces (-n narrows),
    /// shows them and asks for confirmation (--yes skips it and is required when stdin is not a
    /// terminal). Deletes them with background propagation, several at a time, then waits
    /// until they are gone or --timeout passes; objects still held by finalizers are named.
    /// Never touches LRSes of other types. Exits 1 when any deletion failed or did not finish.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup spark-cleanup --dry-run\n  \
        kubectl mlbackup spark-cleanup --yes\n  \
        kubectl mlbackup spark-cleanup -n dr-app --timeout 5m\n  \
        kubectl mlbackup spark-cleanup --yes --no-wait -o json")]
    SparkCleanup(SparkCleanupArgs),

    /// Stop the DataRobot app before a backup or upgrade, and start it again afterwards.
    ///
    /// The vendor's scale-down step: `app stop` records each app workload's replica count in
    /// the annotation `mlbackup.datarobot.com/replicas` and scales it to zero; `app start`
    /// scales each back to its recorded count and removes the annotation.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup app stop --dry-run\n  \
        kubectl mlbackup app stop --yes --timeout 15m\n  \
        kubectl mlbackup app start\n  \
        kubectl mlbackup app stop --app-namespace dr-core -l tier=app --no-extras")]
    App(AppArgs),

    /// Before an upgrade: back up every LRS, record and deactivate the deployments, delete the
    /// Spark sessions.
    ///
    /// The steps, in order: 1. a backup of the LRSes of every type (all namespaces unless -n);
    /// 2. the states of all deployments recorded in the backup's deployments.json, then the
    /// active ones deactivated (--skip-deployments leaves them; --via and the DataRobot flags as
    /// in `deployments`); 3. the interactive Spark sessions deleted (--skip-spark). Asks one
    /// confirmation first (--yes skips it and is required when stdin is not a terminal);
    /// --dry-run prints the plan with counts and changes nothing. A step that fails stops the
    /// run. Each step is recorded in the backup's journal.jsonl; --resume NAME continues an
    /// interrupted or failed prepare without repeating finished steps (a finished backup is
    /// never taken again: it is the state before the deactivation). The summary ends with the
    /// `recover` command to run after the upgrade. Exits 1 when a step failed, 130 when
    /// interrupted.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup prepare --dry-run\n  \
        kubectl mlbackup prepare --yes --dir /srv/backups --name before-upgrade\n  \
        kubectl mlbackup prepare --yes --via local --api-url https://datarobot.example.com\n  \
        kubectl mlbackup prepare --yes --resume before-upgrade")]
    Prepare(PrepareArgs),

    /// After an upgrade: restore the missing LRSes, reactivate the deployments recorded
    /// active, and verify.
    ///
    /// The steps, in order: 1. the LRSes of BACKUP missing in the cluster are restored (as
    /// `restore` does; existing ones are left alone and reported unless --existing=update;
    /// Spark sessions, deleted on purpose by prepare, are not restored); 2. exactly the
    /// deployments recorded active in the backup's deployments.json are reactivated
    /// (--skip-deployments leaves them); 3. verify: the backup is compared with the cluster and
    /// every deployment recorded active must be active; the summary shows what still differs.
    /// Every step runs even when an earlier one failed. Each step is recorded in the backup's
    /// journal.jsonl; a re-run is safe and changes only what is left. Exits 1 when a step failed
    /// or something still differs, 130 when interrupted.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup recover lrs_backup_2026_11_21_14_05\n  \
        kubectl mlbackup recover before-upgrade --dir /srv/backups --dry-run\n  \
        kubectl mlbackup recover before-upgrade --existing=update -o json")]
    Recover(RecoverArgs),

    /// Print a shell completion script for `kubectl-mlbackup`.
    ///
    /// `kubectl mlbackup <TAB>` is completed by kubectl's own completion (`kubectl completion
    /// bash|zsh|fish`), which since kubectl 1.26 asks the `kubectl_complete-mlbackup` program on
    /// the PATH: put it there (it comes with the plugin) and subcommands, flags, their values and
    /// the names of backups in --dir or MLBACKUP_DIR complete. The script printed here completes
    /// the same subcommands and flags when the plugin is called directly as `kubectl-mlbackup`.
    #[command(after_long_help = "Examples:\n  \
        # kubectl mlbackup <TAB> (kubectl_complete-mlbackup must be on the PATH):\n  \
        source <(kubectl completion bash)\n\n  \
        # kubectl-mlbackup <TAB>:\n  \
        source <(kubectl mlbackup completion bash)\n  \
        kubectl mlbackup completion zsh > \"${fpath[1]}/_kubectl-mlbackup\"\n  \
        kubectl mlbackup completion fish > ~/.config/fish/completions/kubectl-mlbackup.fish")]
    Completion(CompletionArgs),

    /// List, deactivate and reactivate DataRobot model deployments through the DataRobot API.
    ///
    /// Before an upgrade, `deactivate` records the status of every deployment (in a backup
    /// folder or a state file), then deactivates the active ones; afterwards, `reactivate`
    /// brings back exactly those that were active. Both are safe to re-run.
    #[command(subcommand)]
    Deployments(DeploymentsCommand),

    /// Scheduled backups in the cluster: a CronJob that runs `backup`, then `prune`.
    ///
    /// `install` creates, in its own namespace (default mlbackup): a ServiceAccount, a
    /// ClusterRole that may only get and list LRS objects and get their CRD, its binding, a
    /// ConfigMap of the recipients' public keys, and the CronJob (non-root, read-only root file
    /// system, no capabilities, no overlapping runs). Several schedules coexist under --name.
    #[command(subcommand)]
    Schedule(ScheduleCommand),

    /// What a scheduled Job's container runs: `backup` into --dir, then `prune` with the
    /// retention flags (when any is given), in one process (the image has no shell).
    #[command(hide = true)]
    ScheduledRun(ScheduledRunArgs),
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Install (or update) a schedule: the objects it needs and its CronJob.
    ///
    /// Everything is checked before the first request: the cron expression (5 fields), the
    /// time zone, the location, the recipients. Then every object is applied with server-side
    /// apply (field manager kubectl-mlbackup), labelled app.kubernetes.io/managed-by and with
    /// the schedule's name. With --dry-run the manifests are printed instead (-o yaml, the
    /// default, or -o json), for GitOps; nothing is sent to the cluster.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup schedule install --schedule '0 3 * * *' --time-zone Europe/Berlin \\\n      \
        --dir s3://backups/prod --image registry.example.com/kubectl-mlbackup:0.1.0 \\\n      \
        --recipients-file team.pub --keep-daily 7 --keep-weekly 4 --credentials-secret s3-backup\n  \
        kubectl mlbackup schedule install ... --dry-run -o yaml > mlbackup-schedule.yaml")]
    Install(Box<ScheduleInstallArgs>),

    /// Start a run now: a Job made from the CronJob's template, as `kubectl create job
    /// --from=cronjob/...` does. With --wait, follow it to its end: exit 1 when it failed,
    /// with the end of its pod's log.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup schedule run-now --wait\n  \
        kubectl mlbackup schedule run-now --name hourly")]
    RunNow(ScheduleRunNowArgs),

    /// Remove exactly what `install` made for this schedule (found by its labels).
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup schedule uninstall\n  \
        kubectl mlbackup schedule uninstall --name hourly --schedule-namespace backups")]
    Uninstall(ScheduleTargetArgs),

    /// The schedule, its next run, its last run and last success, from the CronJob and its
    /// Jobs; exits 1 when the last success is older than two schedule periods (overdue) or the
    /// last run failed, for monitoring.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup schedule status\n  \
        kubectl mlbackup schedule status --name hourly -o json")]
    Status(ScheduleTargetArgs),
}

/// The schedule's name and namespace when no --name or --schedule-namespace is given.
pub const DEFAULT_SCHEDULE: &str = "mlbackup";

/// Which schedule a command acts on.
#[derive(Debug, Args)]
pub struct ScheduleTargetArgs {
    /// The schedule's name (several schedules may coexist).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEDULE,
          value_parser = parse_schedule_name)]
    pub name: String,

    /// The namespace of the schedule's objects.
    #[arg(long, value_name = "NS", default_value = DEFAULT_SCHEDULE)]
    pub schedule_namespace: String,
}

#[derive(Debug, Args)]
pub struct ScheduleInstallArgs {
    #[command(flatten)]
    pub target: ScheduleTargetArgs,

    /// When to run, as a cron expression of 5 fields (minute hour day-of-month month
    /// day-of-week), like `0 3 * * *`; `@daily` and the like work too.
    #[arg(long, value_name = "CRON")]
    pub schedule: String,

    /// The time zone of --schedule, like `Europe/Berlin` (default: the cluster's, usually UTC).
    #[arg(long, value_name = "TZ")]
    pub time_zone: Option<String>,

    /// Where the backups go: s3://BUCKET/PREFIX (a folder path works only where the pod can
    /// write it).
    #[arg(long, value_name = "LOCATION")]
    pub dir: PathBuf,

    /// The container image with the plugin (built from the project's Dockerfile).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,

    /// Encrypt the backups to this age public key (age1...); repeatable. Only public keys go
    /// into the cluster.
    #[arg(long, value_name = "KEY")]
    pub recipient: Vec<String>,

    /// Encrypt the backups to the age public keys in this file (one per line).
    #[arg(long, value_name = "FILE", conflicts_with = "recipient")]
    pub recipients_file: Option<PathBuf>,

    #[command(flatten)]
    pub retention: ScheduleRetentionArgs,

    /// Stop a run that takes longer than this, like `2h` (the Job's activeDeadlineSeconds).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::duration::parse)]
    pub timeout: Duration,

    /// The Secret (in the schedule's namespace) with the bucket's keys: AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN. Without it, the pod uses its
    /// web identity (see --service-account-annotation).
    #[arg(long, value_name = "NAME")]
    pub credentials_secret: Option<String>,

    /// An annotation of the ServiceAccount, like
    /// `eks.amazonaws.com/role-arn=arn:aws:iam::123456789012:role/backup` for web identity;
    /// repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub service_account_annotation: Vec<(String, String)>,

    /// Print the manifests (-o yaml or -o json) instead of applying them.
    #[arg(long)]
    pub dry_run: bool,
}

/// The retention rules of a schedule, passed to `prune` after each backup.
#[derive(Debug, Args, Clone, Default)]
pub struct ScheduleRetentionArgs {
    /// Keep the N newest backups.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N days.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N weeks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_monthly: Option<u32>,
    /// Keep every backup younger than this, like `7d`.
    #[arg(long, value_name = "DURATION", value_parser = crate::retention::parse_keep_within)]
    pub keep_within: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ScheduleRunNowArgs {
    #[command(flatten)]
    pub target: ScheduleTargetArgs,

    /// Follow the run to its end; exit 1 when it failed.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ScheduledRunArgs {
    /// Where the backups go.
    #[arg(long, value_name = "LOCATION")]
    pub dir: PathBuf,

    /// The schedule's name: its run records are `.mlbackup-runs/NAME/` in the location.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SCHEDULE, value_parser = parse_schedule_name)]
    pub name: String,

    /// How long the run holds the location's lock before another run may take it over (the
    /// schedule's --timeout, after which Kubernetes stops the Job).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = crate::duration::parse)]
    pub lease: Duration,

    /// The recipients file (the schedule's ConfigMap, mounted).
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,

    #[command(flatten)]
    pub retention: ScheduleRetentionArgs,

    /// The schedule's time zone: the days, weeks and months of the retention rules.
    #[arg(long, value_name = "TZ")]
    pub time_zone: Option<String>,
}

/// A schedule's name: it names its CronJob (at most 52 characters, so that the Jobs' names fit)
/// and its other objects, so a DNS label: lower-case letters, digits and `-`.
fn parse_schedule_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 52
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a valid schedule name (lower-case letters, digits and `-`, at most 52, \
             starting and ending with a letter or digit)"
        ))
    }
}

/// `KEY=VALUE`, both non-empty.
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

#[derive(Debug, Subcommand)]
pub enum DeploymentsCommand {
    /// List the deployments visible to the token's user: id, label and status.
    #[command(after_long_help = "Examples:\n  \
        export LRS_DATAROBOT_API_TOKEN=...   # an API key of an MLOps admin\n  \
        kubectl mlbackup deployments list --via local --api-url https://datarobot.example.com\n  \
        LRS_DATAROBOT_URL=https://datarobot.example.com kubectl mlbackup deployments list --via local -o json")]
    List(DeploymentsListArgs),

    /// Record the status of every deployment, then deactivate the active ones.
    ///
    /// The snapshot (`deployments.json`: id, label, status and time of every visible
    /// deployment) is written to the backup folder (--backup) or the state file (--state)
    /// before the first change; a re-run adds to it and never forgets what was active before.
    /// Only active deployments are touched, --concurrency at a time, each followed until it is
    /// inactive (unless --wait=false). Asks first when more than the deployments named with
    /// --only would change (--yes skips the question and is required when stdin is not a
    /// terminal). Exits 1 when any deployment failed (the report says which and why; a re-run
    /// is safe), 130 when interrupted.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup deployments deactivate --via local --backup lrs_backup_2026_11_21_14_05 --yes\n  \
        kubectl mlbackup deployments deactivate --via local --state before-upgrade.json --dry-run\n  \
        kubectl mlbackup deployments deactivate --via local --state s.json --only 65f0c0de0000000000000001")]
    Deactivate(DeactivateArgs),

    /// Reactivate exactly the deployments recorded active that are not active now.
    ///
    /// Reads the snapshot that `deactivate` wrote (--backup or --state): deployments that were
    /// inactive before stay inactive. --all instead reactivates every inactive deployment and
    /// asks for confirmation (--yes skips it). Exits 1 when any deployment failed (a re-run is
    /// safe), 130 when interrupted.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup deployments reactivate --via local --backup lrs_backup_2026_11_21_14_05\n  \
        kubectl mlbackup deployments reactivate --via local --state before-upgrade.json -o json\n  \
        kubectl mlbackup deployments reactivate --via local --all --yes")]
    Reactivate(ReactivateArgs),
}

/// Where the DataRobot API calls run from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// In this process, against an API URL this machine can reach.
    Local,
    /// Inside the DataRobot app pod (the runbook's way): the plugin uploads its static helper
    /// and runs it there through exec, so the API URL is the one the pod reaches.
    Pod,
}

/// Where `--via pod` runs the helper.
#[derive(Debug, Args)]
pub struct PodArgs {
    /// The app to run the helper in: deploy/NAME (a ready pod of it) or pod/NAME.
    #[arg(long, value_name = "TYPE/NAME", default_value = "deploy/mmapp-app")]
    pub app: crate::cluster::pod::AppTarget,

    /// The namespace DataRobot is installed in [default: -n, else $DR_CORE_NAMESPACE, else the
    /// context's namespace].
    #[arg(long, value_name = "NAMESPACE")]
    pub app_namespace: Option<String>,

    /// The container to run the helper in [default: the pod's default container, else its
    /// first].
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,

    /// The helper binary to upload [default: $MLBACKUP_HELPER, else
    /// helpers/linux-<arch>/mlbackup-helper beside the plugin, else mlbackup-helper beside it].
    #[arg(long, value_name = "PATH")]
    pub helper: Option<PathBuf>,

    /// Leave this run's copy of the helper in its private directory in the pod instead of
    /// removing it (to look at; no later run uses it).
    #[arg(long)]
    pub keep_helper: bool,
}

/// How to reach the DataRobot API. The token is never a command-line value.
#[derive(Debug, Args)]
#[command(next_help_heading = "DataRobot API")]
pub struct DataRobotArgs {
    /// Where the API calls run from.
    #[arg(long, value_enum, default_value_t = Via::Pod)]
    pub via: Via,

    #[command(flatten)]
    pub pod: PodArgs,

    /// The DataRobot app URL (https://host) or API endpoint (https://host/api/v2) [default:
    /// $LRS_DATAROBOT_URL, else $DATAROBOT_ENDPOINT].
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,

    /// Read the API token from this file [default: $LRS_DATAROBOT_API_TOKEN, else
    /// $DATAROBOT_API_TOKEN].
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Also trust the CA certificates in this PEM file [default: $SSL_CERT_FILE].
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// Do not check the API server's certificate (anyone on the path could read the token).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,

    /// Refused: a token on the command line is visible to every user of the machine.
    #[arg(long = "token", alias = "api-token", hide = true, value_name = "TOKEN",
          num_args = 0..=1, default_missing_value = "")]
    pub refused_token: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeploymentsListArgs {
    #[command(flatten)]
    pub datarobot: DataRobotArgs,
}

/// Flags of both status changes.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// The backup (name in the backup directory, or path) whose deployments.json holds the
    /// snapshot.
    #[arg(long, value_name = "NAME", conflicts_with = "state")]
    pub backup: Option<String>,

    /// A state file holding the snapshot, instead of a backup.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// Only this deployment id (repeatable).
    #[arg(long, value_name = "ID")]
    pub only: Vec<String>,

    /// Print what would change; change nothing and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Deployments changed at the same time.
    #[arg(long, value_name = "N", default_value_t = mlbackup_helper::engine::DEFAULT_CONCURRENCY as u16,
          value_parser = clap::value_parser!(u16).range(1..=mlbackup_helper::engine::MAX_CONCURRENCY as i64))]
    pub concurrency: u16,

    /// Wait until each deployment has its new status (--wait=false: until the API accepted
    /// the change).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub wait: bool,

    /// The longest the whole change may take, like `15m`; what is left then is reported as not
    /// attempted.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = crate::duration::parse)]
    pub timeout: Duration,

    // Last: its help heading applies to the flags after it.
    #[command(flatten)]
    pub datarobot: DataRobotArgs,
}

#[derive(Debug, Args)]
pub struct DeactivateArgs {
    /// Do not ask before deactivating more than the deployments named with --only (required
    /// when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    // Last: the help heading of its DataRobot flags applies to the flags after it.
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, Args)]
pub struct ReactivateArgs {
    /// Reactivate every inactive deployment, recorded or not.
    #[arg(long, conflicts_with_all = ["backup", "state"])]
    pub all: bool,

    /// Do not ask for confirmation of --all.
    #[arg(long, short = 'y')]
    pub yes: bool,

    // Last: the help heading of its DataRobot flags applies to the flags after it.
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells `completion` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Where the backups are.
#[derive(Debug, Args)]
pub struct BackupDirArgs {
    /// Where the backups are: a directory, or s3://BUCKET/PREFIX (add ?readonly to open it
    /// read-only; credentials from the AWS_* variables). Default: $MLBACKUP_DIR, else the
    /// current directory.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: Option<PathBuf>,

    /// Open the backup location read-only: list, show, verify, restore and diff work; backup,
    /// delete and prune are refused before anything is sent.
    #[arg(long)]
    pub read_only: bool,
}

/// The age public keys a backup is encrypted to (DESIGN.md section 11).
#[derive(Debug, Default, Args)]
pub struct RecipientArgs {
    /// Encrypt every LRS file to this age public key (`age1...`, as `age-keygen` prints it);
    /// repeat for several recipients: any one of them can decrypt.
    #[arg(long = "recipient", value_name = "AGE_PUBLIC_KEY")]
    pub recipients: Vec<String>,

    /// Encrypt to every public key in this file (one a line, `#` comments, as `age -R`);
    /// repeatable [default: $MLBACKUP_RECIPIENTS_FILE].
    #[arg(long = "recipients-file", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub recipients_files: Vec<PathBuf>,
}

/// Whether and to whom a new backup is encrypted.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Encryption")]
pub struct EncryptArgs {
    #[command(flatten)]
    pub to: RecipientArgs,

    /// Write the backup unencrypted, also to a remote location (where a backup without a
    /// recipient is refused).
    #[arg(long, conflicts_with_all = ["recipients", "recipients_files"])]
    pub no_encrypt: bool,
}

/// The age identities that decrypt an encrypted backup.
#[derive(Debug, Default, Args)]
pub struct IdentityArgs {
    /// Decrypt an encrypted backup with the age identity (secret key) in this file, as
    /// `age-keygen -o` writes it; repeatable [default: $MLBACKUP_IDENTITY_FILE].
    #[arg(long = "identity", value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub identity_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// The backup's name in the backup directory, or a path to it (containing a `/`).
    #[arg(value_name = BACKUP)]
    pub name: String,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// An identity that opens the backup now (see `--identity` of `restore`).
    #[command(flatten)]
    pub identity: IdentityArgs,

    /// The new recipients (at least one): they replace the old ones.
    #[command(flatten)]
    pub to: RecipientArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub backups: BackupDirArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The backup's name in the backup directory, or a path to it (containing a `/`).
    #[arg(value_name = BACKUP)]
    pub name: String,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// Also list every LRS file with its type, size and SHA-256; with --identity, an encrypted
    /// backup's files are decrypted and checked first.
    #[arg(long)]
    pub files: bool,

    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup's name in the backup directory, or a path to it (containing a `/`).
    #[arg(value_name = BACKUP)]
    pub name: String,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    #[command(flatten)]
    pub identity: IdentityArgs,

    /// Also check that the backup can be restored in the current kubectl context: its LRS
    /// resource and version are served there, and a server-side dry-run apply of every object
    /// (what restore would send, with strict field validation) is accepted. Nothing is
    /// changed. An encrypted backup needs --identity.
    #[arg(long)]
    pub against_cluster: bool,

    /// Check offline that the backup can be restored in the cluster whose API surface FILE
    /// holds (written there by `kubectl mlbackup api-surface > FILE`), for air-gapped
    /// migrations: its LRS resource and version are served, every object's namespace exists
    /// and the CustomResourceDefinition's schema accepts every object. Admission webhooks,
    /// quotas and CEL rules are checked only by --against-cluster. An encrypted backup needs
    /// --identity.
    #[arg(long, value_name = "FILE", conflicts_with = "against_cluster", value_hint = clap::ValueHint::FilePath)]
    pub against: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApiSurfaceArgs {
    /// Describe this resource instead of the discovered `lrs.lrs.datarobot.com`.
    #[arg(long, value_name = "PLURAL.VERSION.GROUP")]
    pub resource: Option<ResourceOverride>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The backup's name in the backup directory, or a path to it (containing a `/`).
    #[arg(value_name = BACKUP)]
    pub name: String,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// Delete without asking for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The backup's name in the backup location, or a path to a backup folder (containing a
    /// `/`).
    #[arg(value_name = BACKUP)]
    pub name: String,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// Where to copy it: a directory, or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "LOCATION", value_hint = clap::ValueHint::DirPath)]
    pub to: PathBuf,

    /// Copy an unencrypted backup to a remote location anyway (where, as for `backup`, one
    /// without recipients is refused).
    #[arg(long)]
    pub no_encrypt: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("rule").required(true).multiple(true))]
pub struct PruneArgs {
    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// Keep the N newest complete backups.
    #[arg(long, alias = "keep", value_name = "N", group = "rule",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_last: Option<u32>,

    /// Keep the newest backup of each of the N newest days that have backups.
    #[arg(long, value_name = "N", group = "rule",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_daily: Option<u32>,

    /// Keep the newest backup of each of the N newest ISO weeks that have backups.
    #[arg(long, value_name = "N", group = "rule",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_weekly: Option<u32>,

    /// Keep the newest backup of each of the N newest months that have backups.
    #[arg(long, value_name = "N", group = "rule",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_monthly: Option<u32>,

    /// Keep every backup created at most this long ago, like `7d` or `12h`.
    #[arg(long, alias = "older-than", value_name = "DURATION", group = "rule",
          value_parser = crate::retention::parse_keep_within)]
    pub keep_within: Option<Duration>,

    /// The time zone of the days, weeks and months: an IANA name (`Europe/Berlin`) or `UTC`
    /// [default: the local time zone].
    #[arg(long, value_name = "TZ", value_parser = parse_time_zone)]
    pub time_zone: Option<jiff::tz::TimeZone>,

    /// Really delete; without it, only print what would be deleted.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Only print what would be deleted and why (what prune does without --yes), and delete
    /// nothing.
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
}

/// An IANA time zone name, from the system's tz database or the one built in.
fn parse_time_zone(text: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(text).map_err(|_| {
        format!("`{text}` is not a time zone: use an IANA name like Europe/Berlin, or UTC")
    })
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Back up LRSes of this workload type (the `datarobot-lrs-type` label); repeat for several
    /// types. Default: `deployment`, as in the vendor runbook.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_label_value)]
    pub types: Vec<String>,

    /// Back up LRSes of every type.
    #[arg(long, conflicts_with = "types")]
    pub all_types: bool,

    /// Only LRSes that also match this label selector (kubectl syntax, like `team=ml,tier!=dev`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Back up from every namespace (the default unless -n is given).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// Name of the backup folder [default: lrs_backup_YYYY_MM_DD_HH_MM, then _2, _3... when
    /// taken].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Back up this resource instead of the discovered `lrs.lrs.datarobot.com`.
    #[arg(long, value_name = "PLURAL.VERSION.GROUP")]
    pub resource: Option<ResourceOverride>,

    /// Objects per list request at most (the first requests ask for fewer, from 50 up, so that
    /// writing starts while the server prepares the rest).
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,

    // Last: its help heading applies to the flags after it.
    #[command(flatten)]
    pub encrypt: EncryptArgs,
}

impl BackupArgs {
    /// The label selector of the run: the type part, then the user's `-l`.
    pub fn selector(&self) -> String {
        let types = if self.all_types {
            None
        } else {
            match self.types.as_slice() {
                [] => Some(format!("{TYPE_LABEL}={DEPLOYMENT_TYPE}")),
                [one] => Some(format!("{TYPE_LABEL}={one}")),
                many => Some(format!("{TYPE_LABEL} in ({})", many.join(","))),
            }
        };
        types
            .into_iter()
            .chain(self.selector.clone().filter(|s| !s.trim().is_empty()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A label value as Kubernetes accepts it: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both
/// ends.
fn parse_label_value(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "`{text}` is not a valid label value (letters, digits, `-`, `_`, `.`; at most 63)"
        ))
    }
}

/// What `restore` does with an object that exists in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingPolicy {
    /// Leave it as it is (reported as unchanged, or as differing from the backup).
    Skip,
    /// Make its labels, annotations and spec the backup's (what others added is removed).
    Update,
}

/// `--dry-run` modes, as kubectl's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DryRun {
    /// Only read the cluster; send no request that could change it.
    Client,
    /// Send every write with dryRun=All: the API server validates and admits it, and stores
    /// nothing.
    Server,
}

/// `--namespace-map FROM=TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceMapping {
    pub from: String,
    pub to: String,
}

fn parse_namespace_mapping(text: &str) -> Result<NamespaceMapping, String> {
    let (from, to) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not FROM=TO"))?;
    for namespace in [from, to] {
        if !crate::object::is_namespace_name(namespace) {
            return Err(format!(
                "`{namespace}` is not a valid namespace name (lower-case letters, digits and `-`; \
                 at most 63)"
            ));
        }
    }
    Ok(NamespaceMapping {
        from: from.to_string(),
        to: to.to_string(),
    })
}

/// `--only NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

fn parse_object_ref(text: &str) -> Result<ObjectRef, String> {
    match text.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Ok(ObjectRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
        _ => Err(format!("`{text}` is not NAMESPACE/NAME")),
    }
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup's name in the backup directory, or a path to it (containing a `/`).
    #[arg(value_name = "BACKUP")]
    pub name: String,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// What to do with objects that already exist in the cluster.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = ExistingPolicy::Skip)]
    pub existing: ExistingPolicy,

    /// Restore only this object (its namespace and name in the backup); repeat for several.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_object_ref)]
    pub only: Vec<ObjectRef>,

    /// Restore only LRSes of this workload type (the `datarobot-lrs-type` label); repeat for
    /// several.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_label_value)]
    pub types: Vec<String>,

    /// Restore the objects of namespace FROM into namespace TO; repeat for several.
    #[arg(long, value_name = "FROM=TO", value_parser = parse_namespace_mapping)]
    pub namespace_map: Vec<NamespaceMapping>,

    /// Create target namespaces that do not exist (otherwise their objects fail).
    #[arg(long)]
    pub create_namespaces: bool,

    /// Only show what would be done: `client` sends no request that changes anything,
    /// `server` has the API server check every write without storing it.
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true,
          default_missing_value = "client")]
    pub dry_run: Option<DryRun>,

    /// Go on without the files that cannot be restored (they are still listed).
    #[arg(long)]
    pub skip_invalid: bool,

    /// Restore into this resource instead of the discovered `lrs.lrs.datarobot.com`.
    #[arg(long, value_name = "PLURAL.VERSION.GROUP")]
    pub resource: Option<ResourceOverride>,

    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The backup's name in the backup directory, or a path to it (containing a `/`).
    #[arg(value_name = "BACKUP")]
    pub name: String,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// Compare the objects of namespace FROM with namespace TO of the cluster; repeat for
    /// several.
    #[arg(long, value_name = "FROM=TO", value_parser = parse_namespace_mapping)]
    pub namespace_map: Vec<NamespaceMapping>,

    /// Compare with this resource instead of the discovered `lrs.lrs.datarobot.com`.
    #[arg(long, value_name = "PLURAL.VERSION.GROUP")]
    pub resource: Option<ResourceOverride>,

    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Debug, Args)]
pub struct SparkCleanupArgs {
    /// Look in every namespace (the default unless -n is given).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Delete without asking for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Only list what would be deleted.
    #[arg(long)]
    pub dry_run: bool,

    /// Wait until the deleted objects are gone (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,

    /// Do not wait: return once every deletion was accepted.
    #[arg(long, overrides_with = "wait")]
    pub no_wait: bool,

    /// How long to wait for the objects to be gone, like `2m` or `90s`.
    #[arg(long, value_name = "DURATION", default_value = "2m",
          value_parser = crate::duration::parse)]
    pub timeout: Duration,

    /// Delete this resource instead of the discovered `lrs.lrs.datarobot.com`.
    #[arg(long, value_name = "PLURAL.VERSION.GROUP")]
    pub resource: Option<ResourceOverride>,
}

#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(subcommand)]
    pub command: AppCommand,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Record the replica count of each app workload and scale it to zero.
    ///
    /// Selects the Deployments and StatefulSets of the app namespace labelled `release=dr` or
    /// `app.kubernetes.io/instance=dr` (-l replaces both), plus the named extras (`pcs-pgpool`
    /// unless --no-extras; a missing extra is reported, not an error). Each one running is
    /// scaled to zero by one request that also records its replica count in the annotation
    /// `mlbackup.datarobot.com/replicas`, and only if nobody changed it since it was read.
    /// Running it again is safe: a recorded count is never overwritten, and a workload already
    /// at zero without a recorded count is reported and left alone (`app start` leaves it at
    /// zero). Then waits until their pods are gone (terminating pods included), or --timeout
    /// passes. Asks for confirmation (--yes skips it and is required when stdin is not a
    /// terminal). Exits 1 when any workload failed or did not finish.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup app stop --dry-run\n  \
        kubectl mlbackup app stop --yes\n  \
        DR_CORE_NAMESPACE=dr-core kubectl mlbackup app stop --extra pcs-rabbitmq --timeout 20m\n  \
        kubectl mlbackup app stop --yes --no-wait -o json")]
    Stop(AppStopArgs),

    /// Scale each app workload back to its recorded replica count.
    ///
    /// Selects the workloads like `app stop`. Each one holding the annotation
    /// `mlbackup.datarobot.com/replicas` is scaled to that count and loses the annotation, in one
    /// request; workloads without it are left alone and reported. Then waits until their ready
    /// replicas reach the count, or --timeout passes. Running it again changes nothing. Exits 1
    /// when any workload failed or did not finish.
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup app start\n  \
        kubectl mlbackup app start --dry-run -o json\n  \
        kubectl mlbackup app start --app-namespace dr-core --timeout 30m")]
    Start(AppStartArgs),
}

/// Which workloads make up the app.
#[derive(Debug, Default, Args)]
pub struct AppSelectionArgs {
    /// The namespace DataRobot is installed in (default: -n, else $DR_CORE_NAMESPACE, else the
    /// context's namespace).
    #[arg(long, value_name = "NAMESPACE")]
    pub app_namespace: Option<String>,

    /// Select the app's Deployments and StatefulSets with this label selector instead of
    /// `release=dr` and `app.kubernetes.io/instance=dr`.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Also stop or start this Deployment or StatefulSet, whatever its labels; repeat for
    /// several.
    #[arg(long = "extra", value_name = "NAME")]
    pub extras: Vec<String>,

    /// Leave out the default extra `pcs-pgpool` (names given with --extra still count).
    #[arg(long)]
    pub no_extras: bool,
}

/// Waiting for the pods to follow.
#[derive(Debug, Args)]
pub struct AppWaitArgs {
    /// Wait until the pods have followed (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,

    /// Do not wait: return once every workload was scaled.
    #[arg(long, overrides_with = "wait")]
    pub no_wait: bool,

    /// How long to wait for the pods, like `10m` or `90s`.
    #[arg(long, value_name = "DURATION", default_value = "10m",
          value_parser = crate::duration::parse)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct AppStopArgs {
    #[command(flatten)]
    pub selection: AppSelectionArgs,

    #[command(flatten)]
    pub wait: AppWaitArgs,

    /// Only show what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Stop the app without asking for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct AppStartArgs {
    #[command(flatten)]
    pub selection: AppSelectionArgs,

    #[command(flatten)]
    pub wait: AppWaitArgs,

    /// Only show what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// Name of the backup folder [default: lrs_backup_YYYY_MM_DD_HH_MM, then _2, _3... when
    /// taken].
    #[arg(long, value_name = "NAME", conflicts_with = "resume")]
    pub name: Option<String>,

    /// Continue the prepare of this backup from its journal: finished steps are not repeated.
    #[arg(long, value_name = BACKUP)]
    pub resume: Option<String>,

    /// Leave the deployments as they are (no snapshot, no deactivation).
    #[arg(long)]
    pub skip_deployments: bool,

    /// Leave the Spark sessions in place.
    #[arg(long)]
    pub skip_spark: bool,

    /// Last step: stop the app (`app stop` with its default selection in the app namespace:
    /// replica counts recorded, scaled to 0, waited for); `recover --start-app` starts it.
    #[arg(long)]
    pub stop_app: bool,

    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Print the plan with counts; change nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// The longest each waiting step may take (the deactivation, the Spark sessions going
    /// away), like `15m`; what did not finish then is named.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = crate::duration::parse)]
    pub timeout: Duration,

    /// Work on this resource instead of the discovered `lrs.lrs.datarobot.com`.
    #[arg(long, value_name = "PLURAL.VERSION.GROUP")]
    pub resource: Option<ResourceOverride>,

    // Its help heading applies to the flags after it, up to the DataRobot ones.
    #[command(flatten)]
    pub encrypt: EncryptArgs,

    // Last: its help heading applies to the flags after it.
    #[command(flatten)]
    pub datarobot: DataRobotArgs,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The backup prepare took: its name in the backup directory, or a path to it.
    #[arg(value_name = BACKUP)]
    pub name: String,

    #[command(flatten)]
    pub backups: BackupDirArgs,

    /// What to do with LRSes that already exist in the cluster.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = ExistingPolicy::Skip)]
    pub existing: ExistingPolicy,

    /// Leave the deployments as they are (no reactivation, not verified).
    #[arg(long)]
    pub skip_deployments: bool,

    /// First step: start the app stopped by `prepare --stop-app` (`app start`: each workload
    /// back to its recorded replica count, waited for), so the app pod can reactivate the
    /// deployments.
    #[arg(long)]
    pub start_app: bool,

    /// Print what each step would do; change nothing, write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// The longest the reactivation may take, like `15m`; what did not finish then is named.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = crate::duration::parse)]
    pub timeout: Duration,

    /// Work on this resource instead of the discovered `lrs.lrs.datarobot.com`.
    #[arg(long, value_name = "PLURAL.VERSION.GROUP")]
    pub resource: Option<ResourceOverride>,

    #[command(flatten)]
    pub identity: IdentityArgs,

    // Last: its help heading applies to the flags after it.
    #[command(flatten)]
    pub datarobot: DataRobotArgs,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print only the plugin version; do not contact the cluster.
    #[arg(long)]
    pub client: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "kubectl-mlbackup",
            "version",
            "--context",
            "prod",
            "-n",
            "dr",
            "-o",
            "json",
            "--request-timeout",
            "1m30s",
            "-v=6",
        ])
        .unwrap();
        assert_eq!(cli.global.context.as_deref(), Some("prod"));
        assert_eq!(cli.global.namespace.as_deref(), Some("dr"));
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.request_timeout, Some(Duration::from_secs(90)));
        assert_eq!(cli.global.verbosity, 6);
    }

    fn backup_args(extra: &[&str]) -> BackupArgs {
        let mut argv = vec!["kubectl-mlbackup", "backup"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Backup(args) => args,
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn backup_selects_deployments_by_default_like_the_runbook() {
        assert_eq!(backup_args(&[]).selector(), "datarobot-lrs-type=deployment");
        assert_eq!(
            backup_args(&[
                "--type",
                "spark_app",
                "--type",
                "custom_job",
                "-l",
                "team=ml"
            ])
            .selector(),
            "datarobot-lrs-type in (spark_app,custom_job),team=ml"
        );
        assert_eq!(backup_args(&["--all-types"]).selector(), "");
        assert_eq!(
            backup_args(&["--all-types", "-l", "a!=b"]).selector(),
            "a!=b"
        );
        assert!(
            Cli::try_parse_from(["kubectl-mlbackup", "backup", "--type", "bad value"]).is_err()
        );
        assert!(
            Cli::try_parse_from(["kubectl-mlbackup", "backup", "--all-types", "--type", "x"])
                .is_err()
        );
    }

    #[test]
    fn a_bare_v_means_level_one() {
        let cli = Cli::try_parse_from(["kubectl-mlbackup", "-v", "version"]);
        // `-v version` reads "version" as the level and fails: kubectl's `-v` also needs a value
        // when it is separated by a space, so only `-v` at the end or `-v=N` are accepted forms.
        assert!(cli.is_err());
        let cli = Cli::try_parse_from(["kubectl-mlbackup", "version", "-v"]).unwrap();
        assert_eq!(cli.global.verbosity, 1);
    }
}
