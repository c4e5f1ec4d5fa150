//! `restore`: every file of a backup read and checked first, then each object applied with
//! server-side apply (DESIGN.md section 5), several at a time, with a per-object report and a
//! record in the backup's journal. What it restores comes from the plan it shares with `diff`
//! (`super::plan`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cli::{DryRun, ExistingPolicy, GlobalArgs, NamespaceMapping, ObjectRef, RestoreArgs};
use crate::cluster::list::ServedResource;
use crate::cluster::objects::{self, MAX_IN_FLIGHT, Persist};
use crate::cluster::{Cluster, ClusterError};
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::folder::{Backup, Problem};
use crate::object::{self, Head, Object};
use crate::printer::{self, Printer, Render};
use crate::store::Read;

use super::Finished;
pub use super::plan::RestoreError;
use super::plan::{Planned, live_objects, plan};

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
    let store = super::open_store(&args.backups, env, printer)?;
    let mut found = store
        .find_for_reading(&args.name, Read::Everything)
        .await
        .with_context(|| format!("cannot restore the backup `{}`", args.name))?;
    found.backup = super::keys::open_backup(found.backup, &args.identity, env, printer, true)?;
    let backup = &found.backup;
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
    let mut finished = restore(&cluster, &resource, backup, &options, &cancel, printer).await?;
    let outcome = &mut finished.outcome;
    outcome.path = found.shown.clone();
    if args.dry_run.is_some() {
        outcome.journal_note = Some("dry runs change nothing and are not journaled".into());
    } else if store.is_read_only() {
        outcome.journal_note =
            Some("the backup location is read-only, so the restore is not journaled".into());
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
        match found.append_journal(&record).await {
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
    live: &'a HashMap<(String, String), Object>,
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
        if live.head.is_being_deleted() {
            return being_deleted(&live.head);
        }
        if object::same_desired_state(&planned.object, &live.value) {
            return (RestoreResult::Unchanged, None);
        }
        match (self.existing, self.dry_run) {
            (ExistingPolicy::Skip, _) => (
                RestoreResult::SkippedDiffers,
                Some("exists and differs from the backup (--existing=update overwrites)".into()),
            ),
            (ExistingPolicy::Update, Some(DryRun::Client)) => (RestoreResult::Updated, None),
            (ExistingPolicy::Update, _) => self.update(planned, live.value.clone()).await,
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
                Ok(Some(fresh)) if fresh.head.is_being_deleted() => {
                    return being_deleted(&fresh.head);
                }
                Ok(Some(fresh)) if object::same_desired_state(&planned.object, &fresh.value) => {
                    return (RestoreResult::Unchanged, None);
                }
                Ok(Some(fresh)) => live = fresh.value,
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

fn being_deleted(live: &Head) -> (RestoreResult, Option<String>) {
    (
        RestoreResult::Failed,
        Some(format!(
            "it is being deleted (held by finalizers {}); run the restore again once it is gone",
            live.finalizers().join(", ")
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

/// `--existing=update` against the in-process fake cluster, where another writer can be put
/// between the plugin's read and its write.
#[cfg(test)]
mod against_the_fake {
    use super::*;
    use crate::folder::Place;
    use mlbackup_testkit::kube::{FakeKube, FakeKubeOptions};
    use serde_json::json;

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
        let live = HashMap::from([(stale.head.key(), stale)]);
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
