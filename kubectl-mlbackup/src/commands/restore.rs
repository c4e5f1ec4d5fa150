//! `restore`: every file of a backup read and checked first, then each object applied with
//! server-side apply (DESIGN.md section 5), several at a time, with a per-object report and a
//! record in the backup's journal. Also the reading and matching that `diff` shares.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cli::{DryRun, ExistingPolicy, GlobalArgs, NamespaceMapping, ObjectRef, RestoreArgs};
use crate::cluster::list::{self, ServedResource};
use crate::cluster::lrs::LRS_TYPE_LABEL;
use crate::cluster::objects::{self, MAX_IN_FLIGHT, Persist};
use crate::cluster::{Cluster, ClusterError};
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::folder::{self, Backup, CatalogStatus, Place, Problem, ProblemKind};
use crate::object;
use crate::printer::{self, Printer, Render};

use super::Finished;

/// Why a restore (or a diff) cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the backup `{name}` is partial: it did not finish, so it may miss objects")]
    Partial { name: String },

    #[error("{} of the backup cannot be restored:{}", files(.problems.len()), list(.problems))]
    InvalidFiles { problems: Vec<Problem> },
}

fn files(count: usize) -> String {
    if count == 1 {
        "1 file".to_string()
    } else {
        format!("{count} files")
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  {}: {}", p.path, p.detail))
        .collect()
}

impl RestoreError {
    pub fn hint(&self) -> Option<String> {
        match self {
            RestoreError::Partial { .. } => Some(
                "take a new backup; or copy the files you need into another folder and restore it \
                 by path (./FOLDER)"
                    .into(),
            ),
            RestoreError::InvalidFiles { .. } => Some(
                "nothing was changed; fix or remove these files, or pass --skip-invalid to go on \
                 without them"
                    .into(),
            ),
        }
    }
}

/// One object of the backup, ready to apply: where it comes from and where it goes.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    /// The file, relative to the backup folder.
    pub path: String,
    /// Where in the file, for files of several documents and Lists.
    pub place: Place,
    pub source_namespace: String,
    pub namespace: String,
    pub name: String,
    pub lrs_type: String,
    /// Server-managed fields stripped, `metadata.namespace` set to the target.
    pub object: Value,
}

/// Reads a backup for a restore or a diff: refuses partial backups, reads every file, checks
/// each against the cluster's LRS resource and names, maps namespaces, and finds objects that
/// would land on the same target. Returns the objects and the problems of the bad files.
pub(super) fn plan(
    backup: &Backup,
    resource: &ServedResource,
    default_namespace: &str,
    mappings: &[NamespaceMapping],
) -> anyhow::Result<(Vec<Planned>, Vec<Problem>)> {
    if backup.status == CatalogStatus::Partial {
        return Err(RestoreError::Partial {
            name: backup.name.clone(),
        }
        .into());
    }
    let mut seen_from = BTreeSet::new();
    for mapping in mappings {
        if !seen_from.insert(&mapping.from) {
            return Err(UsageError {
                message: format!("--namespace-map maps `{}` more than once", mapping.from),
                hint: "give one FROM=TO per source namespace".into(),
            }
            .into());
        }
    }
    let (stored, mut problems) = backup
        .read_objects()
        .with_context(|| format!("cannot read the backup {}", backup.dir.display()))?;
    let map: HashMap<&str, &str> = mappings
        .iter()
        .map(|m| (m.from.as_str(), m.to.as_str()))
        .collect();
    let mut planned: Vec<Planned> = Vec::new();
    let mut targets: HashMap<(String, String), String> = HashMap::new();
    // Every namespace the backup's files name, good files or not: a mapping of one of them is
    // not a typo.
    let mut sources: BTreeSet<String> = BTreeSet::new();
    for item in stored {
        let invalid = |detail: String| Problem {
            path: item.path.clone(),
            kind: ProblemKind::Invalid,
            detail: item.place.describe(&detail),
        };
        let text = |pointer: &str| {
            item.object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (api_version, kind) = (text("/apiVersion"), text("/kind"));
        if api_version != resource.api_version() || kind != resource.kind {
            let hint = if kind == resource.kind && api_version.starts_with(&resource.group) {
                format!(
                    " (if the cluster also serves that version, pass --resource {}.{}.{})",
                    resource.plural,
                    api_version.rsplit('/').next().unwrap_or_default(),
                    resource.group
                )
            } else {
                String::new()
            };
            problems.push(invalid(format!(
                "it is a {kind} of {api_version}, the cluster serves {} as {}{hint}",
                resource.kind,
                resource.api_version()
            )));
            continue;
        }
        let name = text("/metadata/name");
        if !object::is_object_name(&name) {
            problems.push(invalid(format!("`{name}` is not a valid object name")));
            continue;
        }
        let source_namespace = match text("/metadata/namespace") {
            ns if ns.is_empty() => default_namespace.to_string(),
            ns => ns,
        };
        if !object::is_namespace_name(&source_namespace) {
            problems.push(invalid(format!(
                "`{source_namespace}` is not a valid namespace name"
            )));
            continue;
        }
        sources.insert(source_namespace.clone());
        let namespace = map
            .get(source_namespace.as_str())
            .map_or(source_namespace.clone(), |to| to.to_string());
        if let Some(other) = targets.insert(
            (namespace.clone(), name.clone()),
            item.place.locate(&item.path),
        ) {
            problems.push(invalid(format!(
                "it would be restored as {namespace}/{name}, like {other}"
            )));
            continue;
        }
        let mut stripped = item.object.clone();
        object::strip_server_fields(&mut stripped);
        stripped["metadata"]["namespace"] = json!(namespace);
        planned.push(Planned {
            path: item.path,
            place: item.place,
            lrs_type: item.object["metadata"]["labels"][LRS_TYPE_LABEL]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            source_namespace,
            namespace,
            name,
            object: stripped,
        });
    }
    let unused: Vec<&str> = mappings
        .iter()
        .map(|m| m.from.as_str())
        .filter(|from| !sources.contains(*from))
        .collect();
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    if !unused.is_empty() && !problems.is_empty() {
        // A file that could not be read may hold the namespace: the files come first.
        return Err(RestoreError::InvalidFiles { problems }.into());
    }
    if !unused.is_empty() {
        return Err(UsageError {
            message: format!(
                "--namespace-map: the backup has no object in namespace {}",
                unused.join(", ")
            ),
            hint: format!(
                "the backup's namespaces are {}; see `kubectl mlbackup show {}`",
                sources.into_iter().collect::<Vec<_>>().join(", "),
                backup.name
            ),
        }
        .into());
    }
    Ok((planned, problems))
}

/// The live objects of the namespaces, by (namespace, name): one paginated list per namespace
/// (a few requests, never one per object), several namespaces at a time.
pub(super) async fn live_objects(
    cluster: &Cluster,
    resource: &ServedResource,
    namespaces: &BTreeSet<String>,
) -> Result<HashMap<(String, String), Value>, ClusterError> {
    let lists: Vec<Result<Vec<Value>, ClusterError>> = futures::stream::iter(namespaces)
        .map(|namespace| list::all(cluster, resource, Some(namespace), ""))
        .buffer_unordered(MAX_IN_FLIGHT)
        .collect()
        .await;
    let mut live = HashMap::new();
    for list in lists {
        for object in list? {
            live.insert(key_of(&object), object);
        }
    }
    Ok(live)
}

/// (namespace, name) of an object.
pub(super) fn key_of(object: &Value) -> (String, String) {
    let text = |field: &str| {
        object["metadata"][field]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    (text("namespace"), text("name"))
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreResult {
    Created,
    Updated,
    Unchanged,
    /// Exists, differs from the backup, and `--existing=skip` left it alone.
    SkippedDiffers,
    Failed,
}

impl RestoreResult {
    fn as_str(self) -> &'static str {
        match self {
            RestoreResult::Created => "created",
            RestoreResult::Updated => "updated",
            RestoreResult::Unchanged => "unchanged",
            RestoreResult::SkippedDiffers => "skipped-differs",
            RestoreResult::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreItem {
    pub namespace: String,
    pub name: String,
    /// The namespace in the backup (differs from `namespace` with --namespace-map).
    pub source_namespace: String,
    pub r#type: String,
    pub path: String,
    pub result: RestoreResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSummary {
    pub total: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped_differs: usize,
    pub failed: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOutcome {
    pub backup: String,
    pub path: PathBuf,
    pub server: String,
    pub context: Option<String>,
    pub resource: String,
    /// `null` for a real run.
    pub dry_run: Option<DryRun>,
    pub existing: ExistingPolicy,
    pub interrupted: bool,
    pub summary: RestoreSummary,
    /// Namespaces created (or, in a dry run, that would be) for --create-namespaces.
    pub namespaces_created: Vec<String>,
    /// Files left out with --skip-invalid.
    pub invalid_files: Vec<Problem>,
    pub items: Vec<RestoreItem>,
    /// The journal the run was recorded in; `null` when it was not recorded (see
    /// `journalNote`).
    pub journal: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal_note: Option<String>,
    pub duration_seconds: f64,
}

impl Render for RestoreOutcome {
    fn render(&self) -> String {
        let mut text = String::new();
        if let Some(mode) = self.dry_run {
            let mode = match mode {
                DryRun::Client => "client",
                DryRun::Server => "server",
            };
            text.push_str(&format!(
                "DRY RUN ({mode}): nothing was changed; the results say what a restore would do.\n\n"
            ));
        }
        if !self.items.is_empty() {
            let rows: Vec<Vec<String>> = self
                .items
                .iter()
                .map(|item| {
                    vec![
                        item.namespace.clone(),
                        item.name.clone(),
                        printer::none_if_empty(&item.r#type).to_string(),
                        item.result.as_str().to_string(),
                        item.message.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            text.push_str(&printer::table(
                &["NAMESPACE", "NAME", "TYPE", "RESULT", "MESSAGE"],
                &rows,
            ));
            text.push('\n');
        }
        let s = &self.summary;
        text.push_str(&format!(
            "{} {} LRS objects of {} into {}: {} created, {} updated, {} unchanged, {} skipped \
             (differ from the backup), {} failed.\n",
            if self.interrupted {
                "INTERRUPTED restoring"
            } else if self.dry_run.is_some() {
                "Would restore"
            } else {
                "Restored"
            },
            s.total,
            self.backup,
            self.context.as_deref().unwrap_or(&self.server),
            s.created,
            s.updated,
            s.unchanged,
            s.skipped_differs,
            s.failed
        ));
        if !self.namespaces_created.is_empty() {
            text.push_str(&format!(
                "Namespaces created: {}\n",
                self.namespaces_created.join(", ")
            ));
        }
        for problem in &self.invalid_files {
            text.push_str(&format!(
                "Left out (invalid): {}: {}\n",
                problem.path, problem.detail
            ));
        }
        match (&self.journal, &self.journal_note) {
            (Some(path), _) => text.push_str(&format!("Recorded in {}\n", path.display())),
            (None, Some(note)) => text.push_str(&format!("Not recorded: {note}\n")),
            (None, None) => {}
        }
        text
    }
}

/// The line appended to `journal.jsonl` for each real restore.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JournalRecord<'a> {
    step: &'static str,
    at: chrono::DateTime<chrono::Utc>,
    tool_version: &'static str,
    server: &'a str,
    context: Option<&'a str>,
    resource: &'a str,
    existing: ExistingPolicy,
    namespace_map: BTreeMap<&'a str, &'a str>,
    only: Vec<String>,
    types: &'a [String],
    interrupted: bool,
    summary: &'a RestoreSummary,
    /// `namespace/name: message` of every failed object.
    failures: Vec<String>,
}

/// What one restore does (the flags of `restore`, or `recover`'s choice).
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub existing: ExistingPolicy,
    pub only: Vec<ObjectRef>,
    /// Only these workload types (empty: all).
    pub types: Vec<String>,
    /// Never these workload types.
    pub exclude_types: Vec<String>,
    pub namespace_map: Vec<NamespaceMapping>,
    pub create_namespaces: bool,
    pub dry_run: Option<DryRun>,
    pub skip_invalid: bool,
    /// `-n`: only the objects of this namespace of the backup.
    pub namespace: Option<String>,
}

pub async fn run(
    global: &GlobalArgs,
    args: &RestoreArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let root = folder::root(args.backups.dir.as_deref(), env);
    let backup = folder::resolve_for_reading(&root, &args.name)
        .with_context(|| format!("cannot restore the backup `{}`", args.name))?;
    let (cluster, resource) = super::connect_to_lrs(global, env, args.resource.as_ref()).await?;
    let options = RestoreOptions {
        existing: args.existing,
        only: args.only.clone(),
        types: args.types.clone(),
        exclude_types: Vec::new(),
        namespace_map: args.namespace_map.clone(),
        create_namespaces: args.create_namespaces,
        dry_run: args.dry_run,
        skip_invalid: args.skip_invalid,
        namespace: global.namespace.clone(),
    };
    let cancel = super::interrupt_token();
    let mut finished = restore(&cluster, &resource, &backup, &options, &cancel, printer).await?;
    let outcome = &mut finished.outcome;
    if args.dry_run.is_some() {
        outcome.journal_note = Some("dry runs change nothing and are not journaled".into());
    } else if !backup.has_journal() {
        outcome.journal_note =
            Some("the backup has no manifest.json, so it keeps no journal".into());
    } else {
        let record = JournalRecord {
            step: "restore",
            at: chrono::Utc::now(),
            tool_version: env!("CARGO_PKG_VERSION"),
            server: &outcome.server,
            context: outcome.context.as_deref(),
            resource: &outcome.resource,
            existing: args.existing,
            namespace_map: args
                .namespace_map
                .iter()
                .map(|m| (m.from.as_str(), m.to.as_str()))
                .collect(),
            only: args
                .only
                .iter()
                .map(|o| format!("{}/{}", o.namespace, o.name))
                .collect(),
            types: &args.types,
            interrupted: outcome.interrupted,
            summary: &outcome.summary,
            failures: outcome.failures(),
        };
        match backup.append_journal(&record) {
            Ok(path) => outcome.journal = Some(path),
            Err(err) => {
                printer.warning(&format!(
                    "the restore was not recorded in the journal: {err}"
                ));
                outcome.journal_note = Some(err.to_string());
            }
        }
    }
    super::report(printer, finished)
}

/// Reads and checks every file of `backup`, then applies the selected objects, several at a
/// time, until done or `cancel`. Writes no journal (the caller records the run its own way).
pub async fn restore(
    cluster: &Cluster,
    resource: &ServedResource,
    backup: &Backup,
    options: &RestoreOptions,
    cancel: &CancellationToken,
    printer: &Printer,
) -> anyhow::Result<Finished<RestoreOutcome>> {
    let started = Instant::now();
    let (planned, problems) = plan(backup, resource, &cluster.namespace, &options.namespace_map)?;
    if !problems.is_empty() && !options.skip_invalid {
        return Err(RestoreError::InvalidFiles { problems }.into());
    }
    let selected = select(planned, options)?;

    let persist = match options.dry_run {
        Some(DryRun::Server) => Persist::DryRun,
        _ => Persist::Yes,
    };
    let namespaces: BTreeSet<String> = selected.iter().map(|p| p.namespace.clone()).collect();
    let live = live_objects(cluster, resource, &namespaces)
        .await
        .context("cannot read the LRS objects of the cluster")?;
    let missing_in: BTreeSet<String> = selected
        .iter()
        .filter(|p| !live.contains_key(&(p.namespace.clone(), p.name.clone())))
        .map(|p| p.namespace.clone())
        .collect();
    let namespace_states = prepare_namespaces(
        cluster,
        &missing_in,
        options.create_namespaces,
        options.dry_run,
    )
    .await?;
    let namespaces_created: Vec<String> = namespace_states
        .iter()
        .filter(|(_, state)| **state == NamespaceState::New)
        .map(|(ns, _)| ns.clone())
        .collect();

    let progress = printer.progress("restoring LRS objects");
    progress.set_total(selected.len() as u64);
    let work = Work {
        cluster,
        resource,
        existing: options.existing,
        dry_run: options.dry_run,
        persist,
        live: &live,
        namespaces: &namespace_states,
    };
    let mut items: Vec<RestoreItem> = Vec::with_capacity(selected.len());
    let interrupted = {
        let mut results = futures::stream::iter(&selected)
            .map(|planned| work.restore(planned))
            .buffer_unordered(MAX_IN_FLIGHT);
        let collect = async {
            while let Some(item) = results.next().await {
                items.push(item);
                progress.inc();
            }
        };
        tokio::select! {
            _ = collect => false,
            () = cancel.cancelled() => true,
        }
    };
    progress.finish();
    items.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let summary = summarize(&items);
    let failed = summary.failed;
    let outcome = RestoreOutcome {
        backup: backup.name.clone(),
        path: backup.dir.clone(),
        server: cluster.server_url.clone(),
        context: cluster.context.clone(),
        resource: format!("{}/{}", resource.qualified_name(), resource.version),
        dry_run: options.dry_run,
        existing: options.existing,
        interrupted,
        summary,
        namespaces_created,
        invalid_files: problems,
        items,
        journal: None,
        journal_note: None,
        duration_seconds: started.elapsed().as_secs_f64(),
    };
    let exit = if interrupted {
        Exit::Interrupted
    } else if failed > 0 {
        Exit::Failure
    } else {
        Exit::Success
    };
    Ok(Finished::with(outcome, exit))
}

impl RestoreOutcome {
    /// `namespace/name: message` of every failed object.
    pub fn failures(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| i.result == RestoreResult::Failed)
            .map(|i| {
                format!(
                    "{}/{}: {}",
                    i.namespace,
                    i.name,
                    i.message.as_deref().unwrap_or_default()
                )
            })
            .collect()
    }
}

/// Applies `-n`, `--only` and `--type`; an `--only` that names no object of the backup is a
/// usage error (a typo must not restore nothing silently).
fn select(planned: Vec<Planned>, options: &RestoreOptions) -> anyhow::Result<Vec<Planned>> {
    let namespace = options.namespace.as_deref();
    let only: BTreeSet<&ObjectRef> = options.only.iter().collect();
    let unknown: Vec<String> = only
        .iter()
        .filter(|o| {
            !planned
                .iter()
                .any(|p| p.source_namespace == o.namespace && p.name == o.name)
        })
        .map(|o| format!("{}/{}", o.namespace, o.name))
        .collect();
    if !unknown.is_empty() {
        return Err(UsageError {
            message: format!("--only: not in the backup: {}", unknown.join(", ")),
            hint: "name objects by their namespace and name in the backup; list them with \
                   `kubectl mlbackup show BACKUP --files`"
                .into(),
        }
        .into());
    }
    Ok(planned
        .into_iter()
        .filter(|p| namespace.is_none_or(|ns| p.source_namespace == ns))
        .filter(|p| {
            only.is_empty()
                || only
                    .iter()
                    .any(|o| o.namespace == p.source_namespace && o.name == p.name)
        })
        .filter(|p| options.types.is_empty() || options.types.contains(&p.lrs_type))
        .filter(|p| !options.exclude_types.contains(&p.lrs_type))
        .collect())
}

/// What is known of a target namespace that some missing object needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamespaceState {
    /// Exists, or could not be checked (the write will tell).
    Usable,
    /// Created by this run (or would be, in a dry run).
    New,
    /// Known not to exist, and not to be created.
    Missing,
}

/// With --create-namespaces, creates the target namespaces (dry-run aware); in a client dry
/// run, reads whether they exist. Otherwise the writes themselves tell (404 per object).
async fn prepare_namespaces(
    cluster: &Cluster,
    namespaces: &BTreeSet<String>,
    create: bool,
    dry_run: Option<DryRun>,
) -> anyhow::Result<BTreeMap<String, NamespaceState>> {
    let mut states = BTreeMap::new();
    for namespace in namespaces {
        let state = match (create, dry_run) {
            (_, Some(DryRun::Client)) => {
                match objects::namespace_exists(cluster, namespace).await {
                    Ok(Some(false)) if create => NamespaceState::New,
                    Ok(Some(false)) => NamespaceState::Missing,
                    Ok(_) => NamespaceState::Usable,
                    Err(err) => {
                        return Err(anyhow::Error::new(err)
                            .context(format!("cannot check the namespace {namespace}")));
                    }
                }
            }
            (true, _) => {
                let persist = if dry_run.is_some() {
                    Persist::DryRun
                } else {
                    Persist::Yes
                };
                let created = objects::create_namespace(cluster, namespace, persist)
                    .await
                    .with_context(|| format!("cannot create the namespace {namespace}"))?;
                if created {
                    NamespaceState::New
                } else {
                    NamespaceState::Usable
                }
            }
            (false, _) => NamespaceState::Usable,
        };
        states.insert(namespace.clone(), state);
    }
    Ok(states)
}

/// Everything one object's restore needs.
struct Work<'a> {
    cluster: &'a Cluster,
    resource: &'a ServedResource,
    existing: ExistingPolicy,
    dry_run: Option<DryRun>,
    persist: Persist,
    live: &'a HashMap<(String, String), Value>,
    namespaces: &'a BTreeMap<String, NamespaceState>,
}

impl Work<'_> {
    async fn restore(&self, planned: &Planned) -> RestoreItem {
        let (result, message) = self.decide(planned).await;
        RestoreItem {
            namespace: planned.namespace.clone(),
            name: planned.name.clone(),
            source_namespace: planned.source_namespace.clone(),
            r#type: planned.lrs_type.clone(),
            path: planned.path.clone(),
            result,
            message,
        }
    }

    async fn decide(&self, planned: &Planned) -> (RestoreResult, Option<String>) {
        let key = (planned.namespace.clone(), planned.name.clone());
        let Some(live) = self.live.get(&key) else {
            return self.create(planned).await;
        };
        if live["metadata"]["deletionTimestamp"].is_string() {
            return being_deleted(live);
        }
        if object::same_desired_state(&planned.object, live) {
            return (RestoreResult::Unchanged, None);
        }
        match (self.existing, self.dry_run) {
            (ExistingPolicy::Skip, _) => (
                RestoreResult::SkippedDiffers,
                Some("exists and differs from the backup (--existing=update overwrites)".into()),
            ),
            (ExistingPolicy::Update, Some(DryRun::Client)) => (RestoreResult::Updated, None),
            (ExistingPolicy::Update, _) => self.update(planned, live.clone()).await,
        }
    }

    /// `--existing=update` of an object that differs: a replace that makes its labels,
    /// annotations and spec the backup's, guarded by the `resourceVersion` it was read at.
    /// (A server-side apply would not do: it removes only fields its own manager set, never
    /// what others added.) When someone writes in between, the object is read again and
    /// compared afresh, a few times.
    async fn update(&self, planned: &Planned, mut live: Value) -> (RestoreResult, Option<String>) {
        for _ in 0..UPDATE_ATTEMPTS {
            let wanted = object::converged(&live, &planned.object);
            let err = match objects::replace(
                self.cluster,
                self.resource,
                &planned.namespace,
                &planned.name,
                &wanted,
                self.persist,
            )
            .await
            {
                Ok(written) if object::same_desired_state(&written, &planned.object) => {
                    return (RestoreResult::Updated, None);
                }
                Ok(_) => {
                    return (
                        RestoreResult::Updated,
                        Some(
                            "the API server changed what was written (defaulting, pruning or a \
                             webhook): it still differs from the backup"
                                .into(),
                        ),
                    );
                }
                Err(err) => err,
            };
            if !objects::is_conflict(&err) {
                return failed(&err);
            }
            match objects::get(
                self.cluster,
                self.resource,
                &planned.namespace,
                &planned.name,
            )
            .await
            {
                Ok(Some(fresh)) if fresh["metadata"]["deletionTimestamp"].is_string() => {
                    return being_deleted(&fresh);
                }
                Ok(Some(fresh)) if object::same_desired_state(&planned.object, &fresh) => {
                    return (RestoreResult::Unchanged, None);
                }
                Ok(Some(fresh)) => live = fresh,
                Ok(None) => return self.create(planned).await,
                Err(err) => return failed(&err),
            }
        }
        (
            RestoreResult::Failed,
            Some(format!(
                "it changed again before each of {UPDATE_ATTEMPTS} updates (another writer keeps \
                 changing it); run the restore again"
            )),
        )
    }

    async fn create(&self, planned: &Planned) -> (RestoreResult, Option<String>) {
        let namespace = &planned.namespace;
        match self.namespaces.get(namespace) {
            Some(NamespaceState::Missing) => return missing_namespace(namespace),
            Some(NamespaceState::New) if self.dry_run.is_some() => {
                // A dry-run write into a namespace that does not exist yet would fail.
                return (
                    RestoreResult::Created,
                    Some(format!(
                        "namespace {namespace} would be created first; not checked by the server"
                    )),
                );
            }
            _ => {}
        }
        if self.dry_run == Some(DryRun::Client) {
            return (RestoreResult::Created, None);
        }
        match self.apply(planned).await {
            Ok(applied) if applied.created => (RestoreResult::Created, None),
            Ok(_) => (
                RestoreResult::Updated,
                Some("it appeared while the restore ran; the backup was applied over it".into()),
            ),
            Err(err) if objects::is_missing_namespace(&err, namespace) => {
                missing_namespace(namespace)
            }
            Err(ClusterError::NamespaceTerminating { .. }) => (
                RestoreResult::Failed,
                Some(format!(
                    "namespace {namespace} is being deleted, so nothing can be created in it; \
                     wait until it is gone and restore again with --create-namespaces, or \
                     restore elsewhere with --namespace-map {}=OTHER",
                    planned.source_namespace
                )),
            ),
            Err(err) => failed(&err),
        }
    }

    async fn apply(&self, planned: &Planned) -> Result<objects::Applied, ClusterError> {
        objects::apply(
            self.cluster,
            self.resource,
            &planned.namespace,
            &planned.name,
            &planned.object,
            self.persist,
        )
        .await
    }
}

/// How often `--existing=update` reads an object again after another writer changed it between
/// the read and the write (kubectl's `retry.RetryOnConflict` tries 5 times).
const UPDATE_ATTEMPTS: usize = 5;

fn being_deleted(live: &Value) -> (RestoreResult, Option<String>) {
    let finalizers = objects::finalizers_of(live);
    (
        RestoreResult::Failed,
        Some(format!(
            "it is being deleted (held by finalizers {}); run the restore again once it is gone",
            finalizers.join(", ")
        )),
    )
}

fn missing_namespace(namespace: &str) -> (RestoreResult, Option<String>) {
    (
        RestoreResult::Failed,
        Some(format!(
            "namespace {namespace} does not exist; create it, pass --create-namespaces, or \
             restore elsewhere with --namespace-map"
        )),
    )
}

/// The server's message, and what to do when there is something.
fn failed(err: &ClusterError) -> (RestoreResult, Option<String>) {
    let message = match err.hint() {
        Some(hint) => format!("{err} ({hint})"),
        None => err.to_string(),
    };
    (RestoreResult::Failed, Some(message))
}

fn summarize(items: &[RestoreItem]) -> RestoreSummary {
    let mut summary = RestoreSummary {
        total: items.len(),
        ..RestoreSummary::default()
    };
    for item in items {
        *match item.result {
            RestoreResult::Created => &mut summary.created,
            RestoreResult::Updated => &mut summary.updated,
            RestoreResult::Unchanged => &mut summary.unchanged,
            RestoreResult::SkippedDiffers => &mut summary.skipped_differs,
            RestoreResult::Failed => &mut summary.failed,
        } += 1;
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource() -> ServedResource {
        ServedResource {
            group: "lrs.datarobot.com".into(),
            version: "v1".into(),
            kind: "LongRunningService".into(),
            plural: "lrs".into(),
            namespaced: true,
        }
    }

    fn lrs(namespace: Option<&str>, name: &str, api_version: &str) -> String {
        let namespace = namespace.map_or(String::new(), |ns| format!("  namespace: {ns}\n"));
        format!(
            "apiVersion: {api_version}\nkind: LongRunningService\nmetadata:\n  name: {name}\n\
             {namespace}  uid: u-{name}\n  resourceVersion: \"7\"\n  labels:\n    \
             datarobot-lrs-type: deployment\nspec:\n  replicas: 1\nstatus:\n  phase: Running\n"
        )
    }

    /// A shell-loop folder holding `files`.
    fn folder(files: &[(&str, String)]) -> (tempfile::TempDir, Backup) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("lrs_backup_2025_01_01_00_00");
        std::fs::create_dir(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let backup = Backup::open(&dir).unwrap();
        (root, backup)
    }

    fn map(from: &str, to: &str) -> NamespaceMapping {
        NamespaceMapping {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn namespaces_are_mapped_and_defaulted_and_server_fields_stripped() {
        let (_root, backup) = folder(&[
            ("a.yaml", lrs(Some("dr-app"), "a", "lrs.datarobot.com/v1")),
            ("b.yaml", lrs(Some("team"), "b", "lrs.datarobot.com/v1")),
            ("c.yaml", lrs(None, "c", "lrs.datarobot.com/v1")),
        ]);
        let (planned, problems) =
            plan(&backup, &resource(), "ctx-ns", &[map("dr-app", "dr-new")]).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let err = plan(&backup, &resource(), "ctx-ns", &[map("nope", "x")]).unwrap_err();
        assert!(err.is::<UsageError>(), "{err}");
        let places: Vec<(&str, &str, &str)> = planned
            .iter()
            .map(|p| {
                (
                    p.source_namespace.as_str(),
                    p.namespace.as_str(),
                    p.name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            places,
            [
                ("dr-app", "dr-new", "a"),
                ("team", "team", "b"),
                ("ctx-ns", "ctx-ns", "c")
            ]
        );
        let a = &planned[0].object;
        assert_eq!(a["metadata"]["namespace"], "dr-new");
        assert!(a["metadata"].get("uid").is_none());
        assert!(a["metadata"].get("resourceVersion").is_none());
        assert!(a.get("status").is_none());
        assert_eq!(planned[0].lrs_type, "deployment");
    }

    #[test]
    fn bad_files_and_collisions_are_problems_and_mapping_mistakes_usage_errors() {
        let (_root, backup) = folder(&[
            ("a.yaml", lrs(Some("dr-app"), "a", "lrs.datarobot.com/v1")),
            ("b.yaml", lrs(Some("team"), "a", "lrs.datarobot.com/v1")),
            ("c.yaml", lrs(Some("dr-app"), "c", "lrs.datarobot.com/v2")),
            (
                "d.yaml",
                lrs(Some("dr-app"), "Bad_Name", "lrs.datarobot.com/v1"),
            ),
            ("e.yaml", String::new()),
        ]);
        let (planned, problems) =
            plan(&backup, &resource(), "default", &[map("team", "dr-app")]).unwrap();
        assert_eq!(planned.len(), 1);
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.detail.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("b.yaml", "it would be restored as dr-app/a, like a.yaml"),
                (
                    "c.yaml",
                    "it is a LongRunningService of lrs.datarobot.com/v2, the cluster serves \
                     LongRunningService as lrs.datarobot.com/v1 (if the cluster also serves that \
                     version, pass --resource lrs.v2.lrs.datarobot.com)"
                ),
                ("d.yaml", "`Bad_Name` is not a valid object name"),
                ("e.yaml", "the file is empty"),
            ]
        );
        // A mapping of a namespace no object has: the files that could not be read come
        // first (one of them may hold it).
        let err = plan(&backup, &resource(), "default", &[map("nope", "x")]).unwrap_err();
        match err.downcast_ref::<RestoreError>() {
            Some(RestoreError::InvalidFiles { problems }) => assert_eq!(
                problems.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
                ["c.yaml", "d.yaml", "e.yaml"]
            ),
            _ => panic!("not the files first: {err}"),
        }
        let twice = [map("team", "x"), map("team", "y")];
        assert!(
            plan(&backup, &resource(), "default", &twice)
                .unwrap_err()
                .is::<UsageError>()
        );
    }
}

/// `--existing=update` against the in-process fake cluster, where another writer can be put
/// between the plugin's read and its write.
#[cfg(test)]
mod against_the_fake {
    use super::*;
    use mlbackup_testkit::kube::{FakeKube, FakeKubeOptions};

    fn backed_up() -> Value {
        json!({
            "apiVersion": "lrs.datarobot.com/v1",
            "kind": "LongRunningService",
            "metadata": {
                "name": "cm-1",
                "namespace": "dr-app",
                "labels": {"datarobot-lrs-type": "deployment"},
                "finalizers": ["lrs.datarobot.com/cleanup"],
            },
            "spec": {"replicas": 1, "image": "model:1"},
        })
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_write_in_between_is_read_again_and_the_update_still_converges() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let kube = FakeKube::start(FakeKubeOptions {
            pods_root: dir.path().join("pods"),
            ..FakeKubeOptions::default()
        })
        .await
        .unwrap();
        let mut changed = backed_up();
        changed["spec"]["replicas"] = json!(3);
        kube.insert(changed).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, "fake", Some("dr-app"))
            .unwrap();
        let cluster = crate::cluster::testing::connect(&kubeconfig).await;
        let resource = crate::cluster::lrs::resolve(&cluster, None).await.unwrap();

        // The plugin reads the object; then someone else writes before the plugin does.
        let stale = objects::get(&cluster, &resource, "dr-app", "cm-1")
            .await
            .unwrap()
            .unwrap();
        let someone_else = kube::core::Request::new(resource.collection_path(Some("dr-app")))
            .patch(
                "cm-1",
                &kube::api::PatchParams {
                    field_manager: Some("someone-else".into()),
                    ..Default::default()
                },
                &kube::api::Patch::Merge(json!({"metadata": {"labels": {"team": "ml"}}})),
            )
            .unwrap();
        cluster.client.request::<Value>(someone_else).await.unwrap();

        let mut object = backed_up();
        object::strip_server_fields(&mut object);
        let planned = Planned {
            path: "dr-app/cm-1.yaml".into(),
            place: Place::default(),
            source_namespace: "dr-app".into(),
            namespace: "dr-app".into(),
            name: "cm-1".into(),
            lrs_type: "deployment".into(),
            object,
        };
        let live = HashMap::from([(key_of(&stale), stale)]);
        let namespaces = BTreeMap::new();
        let work = Work {
            cluster: &cluster,
            resource: &resource,
            existing: ExistingPolicy::Update,
            dry_run: None,
            persist: Persist::Yes,
            live: &live,
            namespaces: &namespaces,
        };
        kube.requests().clear();
        let (result, message) = work.decide(&planned).await;
        assert_eq!((result, message), (RestoreResult::Updated, None));
        let answers: Vec<(String, u16)> = kube
            .requests()
            .entries()
            .into_iter()
            .map(|r| (r.method, r.status))
            .collect();
        assert_eq!(
            answers,
            [
                ("PUT".to_string(), 409),
                ("GET".to_string(), 200),
                ("PUT".to_string(), 200)
            ],
            "the stale write is refused, the object read again, the write redone"
        );
        let now = kube.get("lrs", Some("dr-app"), "cm-1").unwrap();
        assert!(object::same_desired_state(&now, &backed_up()), "{now:#}");
    }
}
