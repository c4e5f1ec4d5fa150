//! `diff`: a backup against the live cluster. Each object of the backup is missing, differs
//! (with a unified diff of labels, annotations and spec) or is the same; objects of the
//! backup's scope that the backup lacks are extra. Exit 1 when anything differs, like diff(1).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use super::plan::{self, Planned, RestoreError};
use crate::cli::{DiffArgs, GlobalArgs};
use crate::cluster::Cluster;
use crate::cluster::list::ServedResource;
use crate::cluster::objects;
use crate::env::Env;
use crate::exit::Exit;
use crate::folder;
use crate::object::{self, DEPLOYMENT_TYPE, Object, TYPE_LABEL};
use crate::printer::{self, Printer, Render};
use crate::store::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffStatus {
    /// In the backup, not in the cluster.
    Missing,
    /// In both, with other labels, annotations or spec.
    Differs,
    /// In the cluster (in the backup's scope), not in the backup.
    Extra,
    Same,
}

impl DiffStatus {
    fn as_str(self) -> &'static str {
        match self {
            DiffStatus::Missing => "missing",
            DiffStatus::Differs => "differs",
            DiffStatus::Extra => "extra",
            DiffStatus::Same => "same",
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffItem {
    pub status: DiffStatus,
    /// In the cluster (after --namespace-map).
    pub namespace: String,
    pub name: String,
    pub r#type: String,
    /// The file in the backup; `null` for extra objects.
    pub path: Option<String>,
    /// Unified diff from the backup to the cluster, for `differs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffSummary {
    /// Every object compared, like every command's summary.
    pub total: usize,
    pub missing: usize,
    pub differs: usize,
    pub same: usize,
    pub extra: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffOutcome {
    pub backup: String,
    pub path: PathBuf,
    pub server: String,
    pub context: Option<String>,
    /// The selector and namespaces that decide what is extra (empty: all namespaces). `null`
    /// for a folder or file that is no backup: it has no scope, so nothing is extra.
    pub selector: Option<String>,
    pub namespaces: Vec<String>,
    pub identical: bool,
    pub summary: DiffSummary,
    pub items: Vec<DiffItem>,
}

impl Render for DiffOutcome {
    fn render(&self) -> String {
        let mut text = String::new();
        let rows: Vec<Vec<String>> = self
            .items
            .iter()
            .filter(|item| item.status != DiffStatus::Same)
            .map(|item| {
                vec![
                    item.status.as_str().to_string(),
                    item.namespace.clone(),
                    item.name.clone(),
                    printer::none_if_empty(&item.r#type).to_string(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            text.push_str(&printer::table(
                &["STATUS", "NAMESPACE", "NAME", "TYPE"],
                &rows,
            ));
        }
        for item in &self.items {
            if let Some(diff) = &item.diff {
                text.push('\n');
                text.push_str(diff);
            }
        }
        if !text.is_empty() {
            text.push('\n');
        }
        let s = &self.summary;
        text.push_str(&format!(
            "{} {} and {}: {} missing in the cluster, {} differ, {} the same, {} extra in the \
             cluster.\n",
            if self.identical {
                "No differences between"
            } else {
                "Differences between"
            },
            self.backup,
            self.context.as_deref().unwrap_or(&self.server),
            s.missing,
            s.differs,
            s.same,
            s.extra
        ));
        text
    }
}

pub async fn run(
    global: &GlobalArgs,
    args: &DiffArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let store = super::open_store(&args.backups, env, printer)?;
    let mut found = store
        .find_for_reading(&args.name, Read::Everything)
        .await
        .with_context(|| format!("cannot compare the backup `{}`", args.name))?;
    found.backup = super::keys::open_backup(found.backup, &args.identity, env, printer, true)?;
    let (cluster, resource) = super::connect_to_lrs(global, env, args.resource.as_ref()).await?;
    let mut outcome =
        compare_with_cluster(&cluster, &resource, &found.backup, &args.namespace_map).await?;
    outcome.path = found.shown.clone();
    let exit = if outcome.identical {
        Exit::Success
    } else {
        Exit::Failure
    };
    printer.data(&outcome)?;
    Ok(exit)
}

/// Compares every object of `backup` (its namespaces mapped by `namespace_map`) with the
/// cluster, and finds the cluster's objects of the backup's scope that the backup lacks. Reads
/// only.
pub async fn compare_with_cluster(
    cluster: &Cluster,
    resource: &ServedResource,
    backup: &folder::Backup,
    namespace_map: &[crate::cli::NamespaceMapping],
) -> anyhow::Result<DiffOutcome> {
    let (planned, problems) = plan::plan(backup, resource, &cluster.namespace, namespace_map)?;
    if !problems.is_empty() {
        return Err(RestoreError::InvalidFiles { problems }.into());
    }
    let targets: BTreeSet<String> = planned.iter().map(|p| p.namespace.clone()).collect();
    let live = plan::live_objects(cluster, resource, &targets)
        .await
        .context("cannot read the LRS objects of the cluster")?;

    let (selector, scope) = match scope(backup, namespace_map, &targets) {
        Some((selector, scope)) => (Some(selector), scope),
        None => (None, BTreeSet::new()),
    };
    let in_scope = match (&selector, scope.is_empty()) {
        (None, _) => Ok(Vec::new()),
        (Some(selector), true) => objects::list(cluster, resource, None, selector).await,
        (Some(selector), false) => {
            let mut all = Vec::new();
            for namespace in &scope {
                all.extend(objects::list(cluster, resource, Some(namespace), selector).await?);
            }
            Ok(all)
        }
    }
    .context("cannot list the LRS objects of the backup's scope")?;

    let mut items: Vec<DiffItem> = planned
        .iter()
        .map(|planned| {
            compare(
                planned,
                live.get(&(planned.namespace.clone(), planned.name.clone())),
            )
        })
        .collect();
    let known: HashSet<(String, String)> = planned
        .iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();
    for object in in_scope {
        let key = object.head.key();
        if !known.contains(&key) {
            items.push(DiffItem {
                status: DiffStatus::Extra,
                namespace: key.0,
                name: key.1,
                r#type: object.head.lrs_type().to_string(),
                path: None,
                diff: None,
            });
        }
    }
    items.sort_by(|a, b| (a.status, &a.namespace, &a.name).cmp(&(b.status, &b.namespace, &b.name)));
    let summary = DiffSummary::of(&items);
    Ok(DiffOutcome {
        backup: backup.name.clone(),
        path: backup.dir.clone(),
        server: cluster.server_url.clone(),
        context: cluster.context.clone(),
        selector,
        namespaces: scope.into_iter().collect(),
        identical: summary.identical(),
        summary,
        items,
    })
}

impl DiffSummary {
    /// Counts the items by status.
    pub fn of(items: &[DiffItem]) -> DiffSummary {
        let mut summary = DiffSummary {
            total: items.len(),
            ..DiffSummary::default()
        };
        for item in items {
            *match item.status {
                DiffStatus::Missing => &mut summary.missing,
                DiffStatus::Differs => &mut summary.differs,
                DiffStatus::Same => &mut summary.same,
                DiffStatus::Extra => &mut summary.extra,
            } += 1;
        }
        summary
    }

    /// Nothing missing, differing or extra.
    pub fn identical(&self) -> bool {
        self.missing + self.differs + self.extra == 0
    }
}

/// The selector and namespaces (empty: all) in which a cluster object not in the backup is
/// extra: the backup's own, mapped like its objects. For a backup of all namespaces restored
/// elsewhere with --namespace-map, only the target namespaces (the rest of the cluster is not
/// what the user compares). `None` for a folder or file that is no backup: it has no scope.
fn scope(
    backup: &folder::Backup,
    mappings: &[crate::cli::NamespaceMapping],
    targets: &BTreeSet<String>,
) -> Option<(String, BTreeSet<String>)> {
    if backup.loose.is_some() {
        return None;
    }
    let map: BTreeMap<&str, &str> = mappings
        .iter()
        .map(|m| (m.from.as_str(), m.to.as_str()))
        .collect();
    match &backup.manifest {
        Some(manifest) => {
            let namespaces: BTreeSet<String> = manifest
                .namespaces
                .iter()
                .map(|ns| map.get(ns.as_str()).map_or(ns.clone(), |to| to.to_string()))
                .collect();
            let namespaces = if namespaces.is_empty() && !mappings.is_empty() {
                targets.clone()
            } else {
                namespaces
            };
            Some((manifest.selector.clone(), namespaces))
        }
        None if !mappings.is_empty() => Some((shell_loop_selector(), targets.clone())),
        None => Some((shell_loop_selector(), BTreeSet::new())),
    }
}

/// The documented shell loop's selector: the scope of backups without a manifest.
fn shell_loop_selector() -> String {
    format!("{TYPE_LABEL}={DEPLOYMENT_TYPE}")
}

fn compare(planned: &Planned, live: Option<&Object>) -> DiffItem {
    let (status, diff) = match live {
        None => (DiffStatus::Missing, None),
        Some(live) if object::same_desired_state(&planned.object, &live.value) => {
            (DiffStatus::Same, None)
        }
        Some(live) => (
            DiffStatus::Differs,
            Some(object::unified_diff(
                &planned.object,
                &live.value,
                &format!("backup/{}", planned.place.locate(&planned.path)),
                &format!("cluster/{}/{}", planned.namespace, planned.name),
            )),
        ),
    };
    DiffItem {
        status,
        namespace: planned.namespace.clone(),
        name: planned.name.clone(),
        r#type: planned.lrs_type.clone(),
        path: Some(planned.path.clone()),
        diff,
    }
}
