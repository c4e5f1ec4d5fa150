//! `backup`: one paginated list of the LRSes, written as one YAML file per object into a new
//! backup folder (format of `folder`), with a manifest that says whether it is complete.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cli::{BackupArgs, GlobalArgs};
use crate::cluster::list::{self, ServedResource};
use crate::cluster::{Cluster, ClusterError, objects};
use crate::encryption::Recipients;
use crate::env::Env;
use crate::exit::Exit;
use crate::folder::{
    self, BackupInfo, BackupStatus, BackupWriter, ClusterRef, FolderError, ItemToWrite, ItemTotals,
    Manifest, ResourceRef,
};
use crate::object::Object;
use crate::printer::{Printer, Progress, Render};
use crate::store::{ItemUploads, Store, StoreError, Target};

use super::Finished;

/// Why a backup stopped before the end of the list.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error("cannot write {namespace}/{name} as YAML")]
    Encode {
        namespace: String,
        name: String,
        #[source]
        source: serde_saphyr::SerializeError,
    },
    #[error("the page download stopped unexpectedly")]
    Download(#[source] tokio::task::JoinError),
    /// An upload to the bucket failed: the listing stops there.
    #[error(transparent)]
    Upload(StoreError),
}

/// How many times a list is started again after its `continue` token went stale.
const MAX_LIST_RESTARTS: u32 = 3;
/// The first page asks for this many objects, each next one for twice as many up to the page
/// size: writing starts as soon as a few objects are in while the server prepares the rest,
/// instead of after a whole page (at a few hundred objects, that wait was a third of a backup).
const FIRST_PAGE_SIZE: u32 = 50;

/// The `limit` of the list request that reads page `pages_read + 1`.
fn page_limit(page_size: u32, pages_read: u32) -> u32 {
    let ramp = u64::from(FIRST_PAGE_SIZE) << pages_read.min(16);
    u32::try_from(ramp).map_or(page_size, |ramp| ramp.min(page_size))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupOutcome {
    pub name: String,
    pub path: PathBuf,
    pub status: BackupStatus,
    pub resource: String,
    pub selector: String,
    pub namespaces: Vec<String>,
    pub objects: usize,
    pub bytes: u64,
    pub counts_by_type: BTreeMap<String, usize>,
    pub counts_by_namespace: BTreeMap<String, usize>,
    pub duration_seconds: f64,
    pub errors: Vec<String>,
    /// The age public keys every file is encrypted to; absent when the backup is not encrypted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub encrypted_to: Vec<String>,
}

impl Render for BackupOutcome {
    fn render(&self) -> String {
        let mut text = match self.status {
            BackupStatus::Complete => format!(
                "Backed up {} LRS objects to {} ({}) in {:.1}s\n",
                self.objects,
                self.path.display(),
                crate::printer::size(self.bytes),
                self.duration_seconds
            ),
            BackupStatus::Partial => format!(
                "PARTIAL backup: {} LRS objects written to {} before it stopped; it is not a \
                 complete backup\n",
                self.objects,
                self.path.display()
            ),
        };
        let counts = |counts: &BTreeMap<String, usize>| {
            counts
                .iter()
                .map(|(key, n)| format!("{key} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.counts_by_type.is_empty() {
            text.push_str(&format!(
                "  by type:      {}\n",
                counts(&self.counts_by_type)
            ));
            text.push_str(&format!(
                "  by namespace: {}\n",
                counts(&self.counts_by_namespace)
            ));
        } else {
            text.push_str(&format!(
                "  no LRS matched `{}` in {}\n",
                self.selector,
                if self.namespaces.is_empty() {
                    "any namespace".to_string()
                } else {
                    self.namespaces.join(", ")
                }
            ));
        }
        if !self.encrypted_to.is_empty() {
            text.push_str(&format!(
                "  encrypted to: {}\n",
                self.encrypted_to.join(", ")
            ));
        }
        for error in &self.errors {
            text.push_str(&format!("  error: {error}\n"));
        }
        text
    }
}

/// What one backup takes and where it goes (the flags of `backup`, or `prepare`'s choice).
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The label selector: the type part, then the user's `-l` (see `BackupArgs::selector`).
    pub selector: String,
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// The folder name; `None`: `lrs_backup_YYYY_MM_DD_HH_MM` (then `_2`...).
    pub name: Option<String>,
    pub page_size: u32,
    /// Encrypt every item to them (`None`: YAML files).
    pub recipients: Option<Recipients>,
}

pub async fn run(
    global: &GlobalArgs,
    args: &BackupArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    Ok(run_named(global, args, env, printer).await?.0)
}

/// [`run`], also returning the name of the backup it wrote (what `scheduled-run` records).
pub async fn run_named(
    global: &GlobalArgs,
    args: &BackupArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<(Exit, Option<String>)> {
    let store = super::open_store(&args.backups, env, printer)?;
    store.check_writable("write a backup")?;
    let recipients = super::keys::recipients_for_backup(&args.encrypt, env, &store.location())?;
    store.check().await?;
    let (cluster, resource) = super::connect_to_lrs(global, env, args.resource.as_ref()).await?;
    let options = BackupOptions {
        selector: args.selector(),
        namespace: if args.all_namespaces {
            None
        } else {
            global.namespace.clone()
        },
        name: args.name.clone(),
        page_size: args.page_size,
        recipients,
    };
    let cancel = super::interrupt_token();
    let finished = take(&cluster, &resource, &store, &options, &cancel, printer).await?;
    let name = finished.outcome.name.clone();
    Ok((super::report(printer, finished)?, Some(name)))
}

/// Lists page after page and writes each page while the next one is on its way. An error
/// before anything was captured leaves no folder behind; a later error or `cancel` leaves a
/// `.partial` folder whose manifest says what is missing. In a bucket the name is claimed
/// first, the backup written into a staging folder and then published (see `store`); a
/// backup cut short there is what was written, without a manifest.
pub async fn take(
    cluster: &Cluster,
    resource: &ServedResource,
    store: &Store,
    options: &BackupOptions,
    cancel: &CancellationToken,
    printer: &Printer,
) -> anyhow::Result<Finished<BackupOutcome>> {
    let started = Instant::now();
    let created_at = chrono::Utc::now();
    let Target {
        mut writer,
        publish,
    } = store
        .create(options.name.as_deref(), chrono::Local::now())
        .await
        .with_context(|| match store.folder() {
            Some(_) => "cannot create the backup folder",
            None => "cannot create the backup",
        })?;
    writer.encrypt_to(options.recipients.clone());
    save_definition(cluster, resource, &mut writer, printer).await?;
    let cluster_id = cluster
        .namespace_uid(crate::cluster::CLUSTER_ID_NAMESPACE)
        .await
        .unwrap_or_else(|err| {
            log::info!("the cluster's id (the uid of kube-system) is not known: {err}");
            None
        });
    log::info!(
        "writing backup {} in {}",
        writer.name(),
        writer.dir().display()
    );
    let info = BackupInfo {
        created_at,
        cluster: ClusterRef {
            server: cluster.server_url.clone(),
            context: cluster.context.clone(),
            id: cluster_id,
        },
        resource: ResourceRef {
            group: resource.group.clone(),
            version: resource.version.clone(),
            kind: resource.kind.clone(),
            plural: resource.plural.clone(),
        },
        selector: options.selector.clone(),
        namespaces: options.namespace.iter().cloned().collect(),
    };
    let progress = printer.progress("listing LRS objects");
    let what = Listing {
        cluster,
        resource,
        namespace: options.namespace.as_deref(),
        selector: &options.selector,
        page_size: options.page_size,
    };
    // A bucket's items are uploaded as they are written, while the list goes on.
    let mut uploads = publish.as_ref().map(|p| p.stream(writer.dir()));
    let listing = tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        result = list_into(&what, &mut writer, uploads.as_mut(), &progress) => Some(result),
    };
    progress.finish();
    let written = writer.written();
    // What was written is uploaded to its end (the folder is renamed once completed), unless
    // the run was interrupted or an upload failed: then the uploads stop where they are.
    let mut upload_failure = None;
    let mut any_uploaded = false;
    if let (Some(mut uploads), Some(publish)) = (uploads, &publish) {
        let upload_the_rest = match &listing {
            Some(Ok(())) => true,
            Some(Err(BackupError::Upload(_))) | None => false,
            Some(Err(_)) => written > 0,
        };
        if upload_the_rest {
            any_uploaded = true;
            // The definition was written before the list, and goes up after it (a list that
            // starts again deletes what was uploaded so far).
            let definition = writer.dir().join(folder::CRD_FILE).is_file();
            upload_failure = tokio::select! {
                result = async {
                    if definition {
                        uploads.send(std::iter::once(folder::CRD_FILE)).await?;
                    }
                    uploads.finish().await
                } => result.err(),
                () = cancel.cancelled() => Some(publish.interrupted()),
            };
        } else {
            any_uploaded = uploads.stop();
        }
    }

    let (mut exit, failure, (path, manifest)) = match listing {
        Some(Ok(())) if upload_failure.is_none() => (
            Exit::Success,
            None,
            writer
                .finish(info)
                .context("cannot complete the backup folder")?,
        ),
        Some(Ok(())) => {
            let folder = writer
                .abandon(
                    info,
                    vec![format!(
                        "the upload stopped after {written} objects were listed"
                    )],
                )
                .context("cannot record the partial backup")?;
            (Exit::Failure, None, folder)
        }
        Some(Err(err)) if written == 0 => {
            // Nothing was captured (a 403 on the first page, say): leave nothing behind.
            writer
                .discard()
                .context("cannot remove the empty backup folder")?;
            if let Some(publish) = &publish {
                publish
                    .release()
                    .await
                    .context("cannot release the backup's name in the bucket")?;
            }
            return Err(anyhow::Error::new(err).context("the backup failed"));
        }
        Some(Err(BackupError::Upload(err))) => {
            let reason = format!("the upload stopped after {written} objects were listed");
            let folder = writer
                .abandon(info, vec![reason])
                .context("cannot record the partial backup")?;
            upload_failure = Some(err);
            (Exit::Failure, None, folder)
        }
        Some(Err(err)) => {
            let reason = format!("listing stopped after {written} objects: {err}");
            let folder = writer
                .abandon(info, vec![reason])
                .context("cannot record the partial backup")?;
            (Exit::Failure, Some(err), folder)
        }
        None => {
            let reason =
                format!("interrupted after {written} objects; the list was not read to its end");
            let folder = writer
                .abandon(info, vec![reason])
                .context("cannot record the partial backup")?;
            (Exit::Interrupted, None, folder)
        }
    };
    let mut error = failure.map(|err| anyhow::Error::new(err).context("the backup is incomplete"));
    let mut outcome = outcome(&manifest, path.clone(), resource, started);
    if let Some(publish) = publish {
        outcome.path = publish.shown();
        let published = match (upload_failure, manifest.status) {
            (Some(err), _) => Err(err),
            (None, BackupStatus::Complete) => publish.complete(&path, cancel).await,
            // Interrupted before any upload began: nothing is sent, and the name is given up.
            (None, BackupStatus::Partial) if exit == Exit::Interrupted && !any_uploaded => {
                outcome.objects = 0;
                outcome.bytes = 0;
                let left = match publish.release().await {
                    Ok(()) => "nothing was left in the bucket".to_string(),
                    Err(err) => format!("its claim is left in the bucket ({err})"),
                };
                error = Some(anyhow::Error::new(crate::exit::Interrupted(format!(
                    "interrupted before the upload: {left}"
                ))));
                Ok(publish.shown())
            }
            // Interrupted while uploading: what arrived stays, without a manifest.
            (None, BackupStatus::Partial) if exit == Exit::Interrupted => {
                Err(publish.interrupted())
            }
            // Failed: what was captured is uploaded and kept, as a folder keeps its `.partial`
            // (no manifest: it lists as partial).
            (None, BackupStatus::Partial) => Ok(publish.shown()),
        };
        if let Err(err) = published {
            outcome.status = BackupStatus::Partial;
            exit = if matches!(err, StoreError::Interrupted(_)) {
                Exit::Interrupted
            } else {
                Exit::Failure
            };
            error = Some(anyhow::Error::new(err).context("the backup was not uploaded completely"));
        }
    }
    outcome.duration_seconds = started.elapsed().as_secs_f64();
    Ok(Finished {
        outcome,
        exit,
        error,
    })
}

/// Saves the resource's CustomResourceDefinition as [`folder::CRD_FILE`], so that where the
/// backup is restored the type can be checked or installed. A definition that cannot be read
/// (a user may not `get` CRDs) leaves the backup without it, with a warning: the objects are
/// what a backup must hold.
async fn save_definition(
    cluster: &Cluster,
    resource: &ServedResource,
    writer: &mut BackupWriter,
    printer: &Printer,
) -> anyhow::Result<()> {
    let definition = match crate::cluster::lrs::definition(cluster, resource).await {
        Ok(definition) => definition,
        Err(err) => {
            printer.warning(&format!(
                "the backup holds no {}: cannot read the CustomResourceDefinition {}: {err}",
                folder::CRD_FILE,
                resource.qualified_name()
            ));
            return Ok(());
        }
    };
    let mut definition = definition;
    crate::object::strip_unstored_fields(&mut definition);
    let yaml = crate::yaml::to_kubectl_yaml(&definition).with_context(|| {
        format!(
            "cannot write the CustomResourceDefinition {} as YAML",
            resource.qualified_name()
        )
    })?;
    writer
        .write_definition(yaml.as_bytes())
        .context("cannot save the resource's definition")
}

/// What one backup lists.
struct Listing<'a> {
    cluster: &'a Cluster,
    resource: &'a ServedResource,
    namespace: Option<&'a str>,
    selector: &'a str,
    page_size: u32,
}

/// Lists every page into the writer. A stale `continue` token restarts the list from the start
/// in a clean folder, so the backup never mixes two points in time.
async fn list_into(
    what: &Listing<'_>,
    writer: &mut BackupWriter,
    mut uploads: Option<&mut ItemUploads>,
    progress: &Progress,
) -> Result<(), BackupError> {
    let mut restarts = 0;
    loop {
        match list_once(what, writer, uploads.as_deref_mut(), progress).await {
            Err(BackupError::Cluster(ClusterError::Expired { message }))
                if restarts < MAX_LIST_RESTARTS =>
            {
                restarts += 1;
                log::info!("the list expired ({message}); starting it again");
                writer.clear()?;
                if let Some(uploads) = uploads.as_deref_mut() {
                    uploads.restart().await.map_err(BackupError::Upload)?;
                }
                progress.reset();
            }
            other => return other,
        }
    }
}

async fn list_once(
    what: &Listing<'_>,
    writer: &mut BackupWriter,
    mut uploads: Option<&mut ItemUploads>,
    progress: &Progress,
) -> Result<(), BackupError> {
    let page_size = what.page_size;
    let mut pages_requested = 0;
    let mut fetch = |token: Option<String>| {
        let limit = page_limit(page_size, pages_requested);
        pages_requested += 1;
        // The next page downloads on its own task while this one is written.
        let cluster = what.cluster.clone();
        let resource = what.resource.clone();
        let namespace = what.namespace.map(str::to_string);
        let selector = what.selector.to_string();
        tokio::spawn(async move {
            list::page(
                &cluster,
                &resource,
                namespace.as_deref(),
                &selector,
                limit,
                token.as_deref(),
            )
            .await
        })
    };
    let mut next = Some(fetch(None));
    let mut followed = std::collections::HashSet::new();
    while let Some(pending) = next.take() {
        // A page that downloaded while the last one was written is ready at once, and writing
        // does not wait either: without a yield here a fast list never gives the caller's
        // select a chance to see Ctrl-C until it ends.
        tokio::task::yield_now().await;
        let page = pending.await.map_err(BackupError::Download)??;
        if let Some(token) = page.continue_token.clone() {
            if !followed.insert(token.clone()) {
                return Err(ClusterError::ListLoop {
                    resource: what.resource.qualified_name(),
                }
                .into());
            }
            next = Some(fetch(Some(token)));
        }
        progress
            .set_total(writer.written() as u64 + page.len() as u64 + page.remaining.unwrap_or(0));
        // Files are written on this thread while the next page downloads on another; objects
        // are decoded just before they are written, a batch at a time (encrypted on every
        // core at once), so only a batch is ever whole in memory.
        let before = writer.written();
        let written = tokio::task::block_in_place(|| {
            let mut batch = Vec::with_capacity(WRITE_BATCH);
            for object in page.objects() {
                batch.push(encode_object(what.cluster, object?)?);
                if batch.len() == WRITE_BATCH {
                    write_batch(writer, &mut batch, progress)?;
                }
            }
            write_batch(writer, &mut batch, progress)
        });
        // A bucket's: this page's files (those written before an error too) go up while the
        // next page is listed and written.
        if let Some(uploads) = uploads.as_deref_mut() {
            uploads
                .send(writer.paths_written_since(before))
                .await
                .map_err(BackupError::Upload)?;
        }
        written?;
    }
    Ok(())
}

/// How many objects are encoded before they are written together: enough to keep every core
/// busy encrypting, few enough that memory stays small.
const WRITE_BATCH: usize = 64;

/// One object as its file will hold it, with what the manifest records of it.
struct Encoded {
    namespace: String,
    name: String,
    lrs_type: String,
    uid: String,
    resource_version: String,
    yaml: String,
}

/// One object as `kubectl get -o yaml` shows it, less what is not stored (managedFields and
/// the last-applied-configuration, a second copy of the spec that may hold older secrets;
/// dropped before its head is read: they are no part of the backup): keys sorted, values
/// exactly as the server sent them.
fn encode_object(cluster: &Cluster, mut object: Value) -> Result<Encoded, BackupError> {
    crate::object::strip_unstored_fields(&mut object);
    let Object { head, value } = objects::read_head(cluster, object)?;
    let (namespace, name) = head.key();
    let yaml = crate::yaml::to_kubectl_yaml(&value).map_err(|source| BackupError::Encode {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    })?;
    Ok(Encoded {
        lrs_type: head.lrs_type().to_string(),
        uid: head.uid().unwrap_or_default(),
        resource_version: head.resource_version().unwrap_or_default(),
        namespace,
        name,
        yaml,
    })
}

/// Writes the objects of `batch` (emptied) and counts them on the progress bar.
fn write_batch(
    writer: &mut BackupWriter,
    batch: &mut Vec<Encoded>,
    progress: &Progress,
) -> Result<(), BackupError> {
    let items: Vec<ItemToWrite<'_>> = batch
        .iter()
        .map(|e| ItemToWrite {
            namespace: &e.namespace,
            name: &e.name,
            lrs_type: &e.lrs_type,
            uid: &e.uid,
            resource_version: &e.resource_version,
            yaml: e.yaml.as_bytes(),
        })
        .collect();
    writer.write_items(&items)?;
    progress.inc_by(items.len() as u64);
    batch.clear();
    Ok(())
}

fn outcome(
    manifest: &Manifest<ItemTotals>,
    path: PathBuf,
    resource: &ServedResource,
    started: Instant,
) -> BackupOutcome {
    BackupOutcome {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        path,
        status: manifest.status,
        resource: format!("{}/{}", resource.qualified_name(), resource.version),
        selector: manifest.selector.clone(),
        namespaces: manifest.namespaces.clone(),
        objects: manifest.items.count,
        bytes: manifest.items.bytes,
        counts_by_type: manifest.counts_by_type.clone(),
        counts_by_namespace: manifest.counts_by_namespace.clone(),
        duration_seconds: started.elapsed().as_secs_f64(),
        errors: manifest.errors.clone(),
        encrypted_to: manifest.recipients().unwrap_or_default().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_grow_from_a_small_first_one_to_the_page_size() {
        let limits = |page_size| (0..8).map(|n| page_limit(page_size, n)).collect::<Vec<_>>();
        assert_eq!(limits(500), [50, 100, 200, 400, 500, 500, 500, 500]);
        assert_eq!(limits(10), [10; 8]);
        assert_eq!(limits(10_000), [50, 100, 200, 400, 800, 1600, 3200, 6400]);
        assert_eq!(page_limit(10_000, 40), 10_000);
    }
}
