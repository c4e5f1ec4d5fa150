//! `verify`: checks a backup's files against its manifest (or, without one, that every YAML
//! file is a Kubernetes object); with `--against-cluster`, also that every object can be
//! restored in the current context (resource served, server-side dry-run apply accepted);
//! exit 1 with the bad files or objects when anything is wrong.

use std::path::PathBuf;

use anyhow::Context;
use futures::StreamExt;
use mlbackup_helper::text::escape_controls;
use serde::Serialize;

use crate::cli::{GlobalArgs, VerifyArgs};
use crate::cluster::list::ServedResource;
use crate::cluster::lrs::ResourceOverride;
use crate::cluster::objects::{self, MAX_IN_FLIGHT, Persist};
use crate::cluster::{Cluster, ClusterError};
use crate::env::Env;
use crate::exit::Exit;
use crate::folder::Backup;
use crate::folder::{CatalogStatus, Problem};
use crate::printer::{self, Printer, Render};
use crate::store::Read;

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
    /// `PLURAL.GROUP/VERSION` the objects need.
    pub resource: String,
    /// Why the resource is not served there; absent when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_served: Option<String>,
    /// How many objects would not be restored.
    pub failed: usize,
    /// One per object (or per file that holds no restorable object), sorted by file.
    pub items: Vec<ItemCheck>,
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
        let place = match &self.context {
            Some(context) => format!("context {context} ({})", self.server),
            None => self.server.clone(),
        };
        let mut text = match (&self.not_served, self.failed) {
            (Some(detail), _) => format!(
                "NOT restorable in {place}: {} is not served there ({detail}).\n",
                self.resource
            ),
            (None, 0) => format!(
                "Restorable in {place}: {} is served; {} objects accepted by a server-side dry-run \
                 apply.\n",
                self.resource,
                self.items.len()
            ),
            (None, failed) => format!(
                "NOT restorable in {place}: {failed} of {} objects would not be restored.\n",
                self.items.len()
            ),
        };
        let rows: Vec<Vec<String>> = self
            .items
            .iter()
            .map(|item| {
                vec![
                    item.path.clone(),
                    item.object.clone().unwrap_or_else(|| "-".into()),
                    match &item.message {
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
        args.against_cluster,
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
            check_against(&cluster, &found.backup)
                .await
                .context("cannot check the backup against the cluster")?,
        );
    }
    printer.data(&outcome)?;
    if let Some(check) = &outcome.against_cluster
        && (check.not_served.is_some() || check.failed > 0)
    {
        anyhow::bail!(
            "the backup `{}` cannot be restored as it is in {}: {}",
            outcome.name,
            check.context.as_deref().unwrap_or(&check.server),
            match &check.not_served {
                Some(_) => format!("{} is not served there", check.resource),
                None => format!("{} of {} objects refused", check.failed, check.items.len()),
            }
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

/// Whether each object of `backup` can be restored in `cluster`: the resource and version the
/// backup was taken from are served (found by discovery, as restore finds them), and each
/// object, read and stripped as restore sends it (`plan`), is accepted by a server-side apply
/// with `dryRun=All`. Nothing is written.
pub async fn check_against(cluster: &Cluster, backup: &Backup) -> anyhow::Result<ClusterCheck> {
    let wanted = backup.manifest.as_ref().map(|m| ResourceOverride {
        plural: m.resource.plural.clone(),
        version: m.resource.version.clone(),
        group: m.resource.group.clone(),
    });
    let mut check = ClusterCheck {
        server: cluster.server_url.clone(),
        context: cluster.context.clone(),
        resource: wanted.as_ref().map_or_else(
            || {
                format!(
                    "{}.{}",
                    crate::cluster::lrs::LRS_PLURAL,
                    crate::cluster::lrs::LRS_GROUP
                )
            },
            |w| format!("{}.{}/{}", w.plural, w.group, w.version),
        ),
        not_served: None,
        failed: 0,
        items: Vec::new(),
    };
    let resource: ServedResource =
        match crate::cluster::lrs::resolve(cluster, wanted.as_ref()).await {
            Ok(resource) => resource,
            Err(ClusterError::ResourceNotServed { detail, .. }) => {
                check.not_served = Some(escape_controls(&detail).into_owned());
                return Ok(check);
            }
            Err(err) => return Err(err.into()),
        };
    check.resource = format!("{}/{}", resource.qualified_name(), resource.version);
    let (planned, problems) = super::plan::plan(backup, &resource, &cluster.namespace, &[])?;
    let resource = &resource;
    let applied: Vec<ItemCheck> = futures::stream::iter(&planned)
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
                let message = if objects::is_missing_namespace(&err, &planned.namespace) {
                    format!(
                        "namespace {} does not exist; restore creates it with \
                         --create-namespaces",
                        planned.namespace
                    )
                } else {
                    err.to_string()
                };
                escape_controls(&message).into_owned()
            });
            ItemCheck {
                path: planned.place.locate(&planned.path),
                object: Some(format!("{}/{}", planned.namespace, planned.name)),
                ok: message.is_none(),
                message,
            }
        })
        .buffered(MAX_IN_FLIGHT)
        .collect()
        .await;
    check.items = applied;
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
