//! `verify`: checks a backup's files against its manifest (or, without one, that every YAML
//! file is a Kubernetes object); with `--against-cluster`, also that every object can be
//! restored in the current context (resource served, server-side dry-run apply accepted);
//! exit 1 with the bad files or objects when anything is wrong.

use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;
use mlbackup_helper::text::escape_controls;
use serde::Serialize;

use crate::cli::{GlobalArgs, VerifyArgs};
use crate::cluster::list::ServedResource;
use crate::cluster::lrs::{self, ResourceOverride};
use crate::cluster::objects::{self, MAX_IN_FLIGHT, Persist};
use crate::cluster::surface::ApiSurface;
use crate::cluster::{Cluster, ClusterError};
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::folder::Backup;
use crate::folder::{CatalogStatus, Problem};
use crate::object::schema;
use crate::printer::{self, Printer, Render};
use crate::store::Read;

use super::plan::Planned;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyOutcome {
    pub name: String,
    pub path: PathBuf,
    pub status: CatalogStatus,
    /// True when there are no problems.
    pub ok: bool,
    /// How many LRS files were checked.
    pub checked: usize,
    /// Sorted by path.
    pub problems: Vec<Problem>,
    /// For an encrypted backup: whether its files were decrypted and their YAML checked too
    /// (an identity was given), or only their ciphertext checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypted: Option<bool>,
    /// `--against-cluster`: whether each object can be restored in the current context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against_cluster: Option<ClusterCheck>,
}

/// Whether a backup can be restored in one cluster, object by object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCheck {
    pub server: String,
    pub context: Option<String>,
    /// `--against FILE`: the API surface the check read instead of asking the cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surface: Option<SurfaceSource>,
    /// `PLURAL.GROUP/VERSION` the objects need.
    pub resource: String,
    /// Why the resource is not served there; absent when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_served: Option<String>,
    /// What each object was checked by.
    pub checked_by: CheckedBy,
    /// What this check could not look at, each in a sentence.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_checked: Vec<String>,
    /// How many objects would not be restored.
    pub failed: usize,
    /// One per object (or per file that holds no restorable object), sorted by file.
    pub items: Vec<ItemCheck>,
}

/// The API surface file an offline check read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SurfaceSource {
    pub path: PathBuf,
    /// When `api-surface` read the cluster.
    pub taken_at: chrono::DateTime<chrono::Utc>,
}

/// What decided whether an object would be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckedBy {
    /// A server-side dry-run apply with strict field validation: the server's schema,
    /// admission and CEL rules.
    DryRunApply,
    /// The CustomResourceDefinition's schema in an API surface file, and its namespaces.
    Schema,
    /// Nothing: the API surface holds no schema for the version (`not_checked` says why).
    Nothing,
}

/// One object of the backup, checked against the cluster.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemCheck {
    pub path: String,
    /// `NAMESPACE/NAME` it would be restored as; absent when the file holds no valid LRS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    pub ok: bool,
    /// Why it would not be restored (the server's message, control characters escaped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ClusterCheck {
    fn render(&self) -> String {
        let mut place = match &self.context {
            Some(context) => format!("context {context} ({})", self.server),
            None => self.server.clone(),
        };
        if let Some(surface) = &self.surface {
            place.push_str(&format!(
                " as the API surface {} saw it at {}",
                surface.path.display(),
                printer::time(surface.taken_at)
            ));
        }
        let how = match self.checked_by {
            CheckedBy::DryRunApply => "accepted by a server-side dry-run apply",
            CheckedBy::Schema => "accepted by the CustomResourceDefinition's schema",
            CheckedBy::Nothing => "not checked against a schema",
        };
        let mut text = match (&self.not_served, self.failed) {
            (Some(detail), _) => format!(
                "NOT restorable in {place}: {} is not served there ({detail}).\n",
                self.resource
            ),
            (None, 0) if self.checked_by == CheckedBy::Nothing => format!(
                "Served in {place}: {}; {} objects {how}.\n",
                self.resource,
                self.items.len()
            ),
            (None, 0) => format!(
                "Restorable in {place}: {} is served; {} objects {how}.\n",
                self.resource,
                self.items.len()
            ),
            (None, failed) => format!(
                "NOT restorable in {place}: {failed} of {} objects would not be restored.\n",
                self.items.len()
            ),
        };
        for note in &self.not_checked {
            text.push_str(&format!("Not checked: {note}\n"));
        }
        let rows: Vec<Vec<String>> = self
            .items
            .iter()
            .map(|item| {
                vec![
                    item.path.clone(),
                    item.object.clone().unwrap_or_else(|| "-".into()),
                    match &item.message {
                        None if self.checked_by == CheckedBy::Nothing => "not checked".into(),
                        None => "ok".into(),
                        Some(message) => message.clone(),
                    },
                ]
            })
            .collect();
        if !rows.is_empty() {
            text.push_str(&printer::table(&["FILE", "OBJECT", "RESULT"], &rows));
        }
        text
    }
}

impl Render for VerifyOutcome {
    fn render(&self) -> String {
        let how = match self.decrypted {
            Some(true) => " (encrypted; decrypted and checked)",
            Some(false) => " (encrypted; ciphertext checked, no identity given to decrypt)",
            None => "",
        };
        if self.ok {
            let mut text = format!(
                "Backup {} is intact: {} LRS files checked{how}.\n",
                self.name, self.checked
            );
            if let Some(check) = &self.against_cluster {
                text.push_str(&check.render());
            }
            return text;
        }
        let rows: Vec<Vec<String>> = self
            .problems
            .iter()
            .map(|problem| {
                vec![
                    problem.path.clone(),
                    problem.kind.as_str().to_string(),
                    problem.detail.clone(),
                ]
            })
            .collect();
        format!(
            "Backup {} has {} problem(s) ({} LRS files checked{how}):\n{}",
            self.name,
            self.problems.len(),
            self.checked,
            printer::table(&["FILE", "PROBLEM", "DETAIL"], &rows)
        )
    }
}

pub async fn run(
    global: &GlobalArgs,
    args: &VerifyArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    // A file that is not an API surface is a bad argument, named before any work.
    let surface = match &args.against {
        Some(path) => Some((
            ApiSurface::load(path).map_err(|err| UsageError {
                message: err.to_string(),
                hint: err.hint(),
            })?,
            path.as_path(),
        )),
        None => None,
    };
    let store = super::open_store(&args.backups, env, printer)?;
    let context = || format!("cannot verify the backup `{}`", args.name);
    let mut found = store
        .find_for_reading(&args.name, Read::Everything)
        .await
        .with_context(context)?;
    // The ciphertext is checked without a key; an identity given must open the backup.
    // The objects themselves are needed to check them against a cluster.
    found.backup = super::keys::open_backup(
        found.backup,
        &args.identity,
        env,
        printer,
        args.against_cluster || args.against.is_some(),
    )?;
    let verification = found.backup.verify().with_context(context)?;
    let mut outcome = VerifyOutcome {
        ok: verification.problems.is_empty(),
        problems: verification
            .problems
            .into_iter()
            .map(|problem| Problem {
                path: found.locate(&problem.path),
                // A bucket's object is missing from the bucket, not from a disk.
                detail: match (found.in_bucket(), problem.kind) {
                    (true, crate::folder::ProblemKind::Missing) => {
                        "listed in the manifest, not in the bucket".into()
                    }
                    _ => problem.detail,
                },
                ..problem
            })
            .collect(),
        name: found.backup.name.clone(),
        path: found.shown.clone(),
        status: found.backup.status,
        checked: verification.checked,
        decrypted: found
            .backup
            .recipients()
            .map(|_| !found.backup.identities.is_empty()),
        against_cluster: None,
    };
    // Damaged files are reported first: what they hold cannot be trusted to check.
    if outcome.ok && args.against_cluster {
        let cluster = super::connect(global, env).await?;
        outcome.against_cluster = Some(
            check_restorable(Target::Cluster(&cluster), &found.backup)
                .await
                .context("cannot check the backup against the cluster")?,
        );
    } else if outcome.ok
        && let Some((surface, path)) = &surface
    {
        outcome.against_cluster = Some(
            check_restorable(Target::Surface { surface, path }, &found.backup)
                .await
                .context("cannot check the backup against the API surface")?,
        );
    }
    printer.data(&outcome)?;
    if let Some(check) = &outcome.against_cluster
        && (check.not_served.is_some() || check.failed > 0)
    {
        let place = check.context.as_deref().unwrap_or(&check.server);
        let place = match &check.surface {
            Some(surface) => format!(
                "{place} (as the API surface {} says)",
                surface.path.display()
            ),
            None => place.to_string(),
        };
        anyhow::bail!(
            "the backup `{}` would not restore in {place}: {}",
            outcome.name,
            match &check.not_served {
                Some(_) => format!("{} is not served there", check.resource),
                None => format!("{} of {} objects refused", check.failed, check.items.len()),
            }
        );
    }
    if let Some(check) = &outcome.against_cluster
        && check.checked_by == CheckedBy::Nothing
    {
        // Served is not restorable: a check that could look at no object does not pass.
        anyhow::bail!(
            "cannot tell whether the backup `{}` would restore: its objects were not checked \
             against a schema (see `Not checked`); write the API surface as a user who may get \
             customresourcedefinitions",
            outcome.name
        );
    }
    if outcome.ok {
        Ok(Exit::Success)
    } else {
        anyhow::bail!(
            "the backup `{}` failed verification: {} problem(s)",
            outcome.name,
            outcome.problems.len()
        )
    }
}

/// Where a backup is checked for restorability: a live cluster, or the API surface a file holds.
pub enum Target<'a> {
    Cluster(&'a Cluster),
    Surface {
        surface: &'a ApiSurface,
        path: &'a Path,
    },
}

/// Whether each object of `backup` can be restored in `target`: the resource and version the
/// backup was taken from are served (found as restore finds them: by discovery, or in the
/// surface's discovery), and each object, read and stripped as restore sends it (`plan`), is
/// accepted: live, by a server-side apply with `dryRun=All` and strict field validation (what
/// restore sends); offline, by the CustomResourceDefinition's schema and the namespaces of the
/// surface. Nothing is written.
pub async fn check_restorable(target: Target<'_>, backup: &Backup) -> anyhow::Result<ClusterCheck> {
    let wanted = backup.manifest.as_ref().map(|m| ResourceOverride {
        plural: m.resource.plural.clone(),
        version: m.resource.version.clone(),
        group: m.resource.group.clone(),
    });
    let (server, context, surface) = match &target {
        Target::Cluster(cluster) => (cluster.server_url.clone(), cluster.context.clone(), None),
        Target::Surface { surface, path } => (
            surface.server.clone(),
            surface.context.clone(),
            Some(SurfaceSource {
                path: path.to_path_buf(),
                taken_at: surface.taken_at,
            }),
        ),
    };
    let mut check = ClusterCheck {
        server,
        context,
        surface,
        resource: wanted.as_ref().map_or_else(
            || lrs::qualified_name(None),
            |w| format!("{}.{}/{}", w.plural, w.group, w.version),
        ),
        not_served: None,
        checked_by: match target {
            Target::Cluster(_) => CheckedBy::DryRunApply,
            Target::Surface { .. } => CheckedBy::Schema,
        },
        not_checked: Vec::new(),
        failed: 0,
        items: Vec::new(),
    };
    let served = match &target {
        Target::Cluster(cluster) => match lrs::resolve(cluster, wanted.as_ref()).await {
            Ok(resource) => Ok(resource),
            Err(ClusterError::ResourceNotServed { detail, .. }) => Err(detail),
            Err(err) => return Err(err.into()),
        },
        Target::Surface { surface, .. } => surface.resolve(wanted.as_ref()),
    };
    let resource: ServedResource = match served {
        Ok(resource) => resource,
        Err(detail) => {
            check.not_served = Some(escape_controls(&detail).into_owned());
            return Ok(check);
        }
    };
    check.resource = format!("{}/{}", resource.qualified_name(), resource.version);
    let namespace = match &target {
        Target::Cluster(cluster) => &cluster.namespace,
        Target::Surface { surface, .. } => &surface.namespace,
    };
    let (planned, problems) = super::plan::plan(backup, &resource, namespace, &[])?;
    check.items = match target {
        Target::Cluster(cluster) => dry_run_each(cluster, &resource, &planned).await,
        Target::Surface { surface, .. } => {
            let (items, checked_by, not_checked) = schema_check_each(surface, &resource, &planned);
            check.checked_by = checked_by;
            check.not_checked = not_checked;
            items
        }
    };
    check
        .items
        .extend(problems.into_iter().map(|problem| ItemCheck {
            path: problem.path,
            object: None,
            ok: false,
            message: Some(escape_controls(&problem.detail).into_owned()),
        }));
    check.items.sort_by(|a, b| a.path.cmp(&b.path));
    check.failed = check.items.iter().filter(|item| !item.ok).count();
    Ok(check)
}

/// Why an object's namespace stops a restore, as restore would say it.
fn missing_namespace(namespace: &str) -> String {
    format!("namespace {namespace} does not exist; restore creates it with --create-namespaces")
}

fn item(planned: &Planned, message: Option<String>) -> ItemCheck {
    ItemCheck {
        path: planned.place.locate(&planned.path),
        object: Some(format!("{}/{}", planned.namespace, planned.name)),
        ok: message.is_none(),
        message: message.map(|message| escape_controls(&message).into_owned()),
    }
}

/// A server-side dry-run apply of each object, as restore would apply it.
async fn dry_run_each(
    cluster: &Cluster,
    resource: &ServedResource,
    planned: &[Planned],
) -> Vec<ItemCheck> {
    futures::stream::iter(planned)
        .map(|planned| async move {
            let result = objects::apply(
                cluster,
                resource,
                &planned.namespace,
                &planned.name,
                &planned.object,
                Persist::DryRun,
            )
            .await;
            let message = result.err().map(|err| {
                if objects::is_missing_namespace(&err, &planned.namespace) {
                    missing_namespace(&planned.namespace)
                } else {
                    err.to_string()
                }
            });
            item(planned, message)
        })
        .buffered(MAX_IN_FLIGHT)
        .collect()
        .await
}

/// Each object against the surface's namespaces and its definition's schema for the version;
/// with what could not be checked.
fn schema_check_each(
    surface: &ApiSurface,
    resource: &ServedResource,
    planned: &[Planned],
) -> (Vec<ItemCheck>, CheckedBy, Vec<String>) {
    let mut not_checked = surface.problems.clone();
    let found = surface
        .custom_resource_definition
        .as_ref()
        .and_then(|definition| schema::of_version(definition, &resource.version));
    let checked_by = match found {
        Some(found) => {
            if found.to_string().contains("\"x-kubernetes-validations\"") {
                not_checked.push(
                    "the schema's CEL rules (x-kubernetes-validations); a live check \
                     (--against-cluster) runs them"
                        .into(),
                );
            }
            CheckedBy::Schema
        }
        None => {
            if surface.custom_resource_definition.is_some() {
                not_checked.push(format!(
                    "the CustomResourceDefinition has no schema for {}: objects were not \
                     checked against one",
                    resource.version
                ));
            }
            CheckedBy::Nothing
        }
    };
    not_checked.push(
        "admission webhooks and quotas of the target; a live check (--against-cluster) asks \
         the server"
            .into(),
    );
    let items = planned
        .iter()
        .map(|planned| {
            let mut reasons = Vec::new();
            if let Some(namespaces) = &surface.namespaces
                && namespaces.binary_search(&planned.namespace).is_err()
            {
                reasons.push(missing_namespace(&planned.namespace));
            }
            if let Some(found) = found {
                reasons.extend(
                    schema::validate(found, &planned.object)
                        .iter()
                        .map(ToString::to_string),
                );
            }
            item(planned, (!reasons.is_empty()).then(|| reasons.join("; ")))
        })
        .collect();
    (items, checked_by, not_checked)
}
