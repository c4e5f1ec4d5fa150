//! The plan that restore and diff share: a backup read and checked against the cluster's LRS
//! resource, its namespaces mapped, each object stripped of what the API server manages; and
//! the live objects to match it with.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::cli::NamespaceMapping;
use crate::cluster::list::ServedResource;
use crate::cluster::objects::{self, MAX_IN_FLIGHT};
use crate::cluster::{Cluster, ClusterError};
use crate::exit::UsageError;
use crate::folder::{Backup, CatalogStatus, Place, Problem, ProblemKind};
use crate::object::{self, Object};

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
        let head = &item.object.head;
        let (api_version, kind) = (head.api_version(), head.kind());
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
        let (source_namespace, name) = head.key();
        if !object::is_object_name(&name) {
            problems.push(invalid(format!("`{name}` is not a valid object name")));
            continue;
        }
        let source_namespace = match source_namespace {
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
        let lrs_type = head.lrs_type().to_string();
        let mut stripped = item.object.value;
        object::strip_server_fields(&mut stripped);
        stripped["metadata"]["namespace"] = json!(namespace);
        planned.push(Planned {
            path: item.path,
            place: item.place,
            lrs_type,
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
) -> Result<HashMap<(String, String), Object>, ClusterError> {
    let lists: Vec<Result<Vec<Object>, ClusterError>> = futures::stream::iter(namespaces)
        .map(|namespace| objects::list(cluster, resource, Some(namespace), ""))
        .buffer_unordered(MAX_IN_FLIGHT)
        .collect()
        .await;
    let mut live = HashMap::new();
    for list in lists {
        for object in list? {
            live.insert(object.head.key(), object);
        }
    }
    Ok(live)
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
