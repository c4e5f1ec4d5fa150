//! `show`: everything a backup's manifest says, counts per type and per namespace, and which
//! optional files it holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::ShowArgs;
use crate::encryption::EncryptionRecord;
use crate::env::Env;
use crate::exit::Exit;
use crate::folder::{self, CatalogStatus, ClusterRef, ManifestItem, ResourceRef};
use crate::printer::{self, Printer, Render};
use crate::store::{Found, Read};

/// What `show` prints. Fields only a manifest can tell are absent for folders without one.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShowOutcome {
    pub name: String,
    pub path: PathBuf,
    pub status: CatalogStatus,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The namespaces asked for; empty means all namespaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    pub lrs_count: usize,
    pub counts_by_type: BTreeMap<String, usize>,
    pub counts_by_namespace: BTreeMap<String, usize>,
    pub size_bytes: u64,
    /// Whether `deployments.json` (deployment states before deactivation) is present.
    pub deployments_snapshot: bool,
    /// Whether `journal.jsonl` (steps of prepare/recover/restore) is present.
    pub journal: bool,
    /// How the files are encrypted and to whom; absent when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionRecord>,
    pub errors: Vec<String>,
    /// With `--files` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<ManifestItem>>,
}

impl Render for ShowOutcome {
    fn render(&self) -> String {
        let yes_no = |present: bool| if present { "yes" } else { "no" };
        let mut fields: Vec<(&str, String)> = vec![
            ("Name", self.name.clone()),
            ("Path", self.path.display().to_string()),
            ("Status", self.status.as_str().to_string()),
            ("Created", printer::time(self.created_at)),
        ];
        if let Some(finished_at) = self.finished_at {
            fields.push(("Finished", printer::time(finished_at)));
        }
        if let (Some(format), Some(tool)) = (self.format_version, &self.tool_version) {
            fields.push(("Format", format!("{format} (kubectl-mlbackup {tool})")));
        }
        if let Some(cluster) = &self.cluster {
            let context = cluster.context.as_deref().unwrap_or("none");
            // The id (the uid of kube-system) tells clusters apart in one bucket.
            let id = cluster
                .id
                .as_deref()
                .map(|id| format!(", id {id}"))
                .unwrap_or_default();
            fields.push((
                "Cluster",
                format!("{} (context {context}{id})", cluster.server),
            ));
        }
        if let Some(resource) = &self.resource {
            fields.push((
                "Resource",
                format!(
                    "{}.{}.{} (kind {})",
                    resource.plural, resource.version, resource.group, resource.kind
                ),
            ));
        }
        if let Some(selector) = &self.selector {
            fields.push(("Selector", printer::none_if_empty(selector).to_string()));
        }
        if let Some(namespaces) = &self.namespaces {
            let asked = if namespaces.is_empty() {
                "all".to_string()
            } else {
                namespaces.join(", ")
            };
            fields.push(("Namespaces", asked));
        }
        fields.push(("LRS", self.lrs_count.to_string()));
        fields.push(("Size", printer::size(self.size_bytes)));
        fields.push((
            "Deployments snapshot",
            yes_no(self.deployments_snapshot).into(),
        ));
        fields.push(("Journal", yes_no(self.journal).into()));
        fields.push((
            "Encrypted",
            match &self.encryption {
                Some(record) => format!("yes, to {}", record.recipients.join(", ")),
                None => "no".into(),
            },
        ));
        let width = fields
            .iter()
            .map(|(label, _)| label.len())
            .max()
            .unwrap_or(0)
            + 1;
        let mut text = String::new();
        for (label, value) in &fields {
            text.push_str(&format!("{:<width$} {value}\n", format!("{label}:")));
        }
        for (title, counts) in [
            ("TYPE", &self.counts_by_type),
            ("NAMESPACE", &self.counts_by_namespace),
        ] {
            let rows: Vec<Vec<String>> = counts
                .iter()
                .map(|(key, count)| {
                    vec![printer::none_if_empty(key).to_string(), count.to_string()]
                })
                .collect();
            if !rows.is_empty() {
                text.push('\n');
                text.push_str(&printer::table(&[title, "LRS"], &rows));
            }
        }
        if !self.errors.is_empty() {
            text.push_str("\nErrors:\n");
            for error in &self.errors {
                text.push_str(&format!("  {error}\n"));
            }
        }
        if let Some(files) = &self.files {
            let encrypted = self.encryption.is_some();
            let rows: Vec<Vec<String>> = files
                .iter()
                .map(|item| {
                    let mut row = vec![
                        item.path.clone(),
                        printer::none_if_empty(&item.r#type).to_string(),
                        item.bytes.to_string(),
                        item.sha256.clone(),
                    ];
                    if encrypted {
                        row.push(item.plaintext_sha256.clone().unwrap_or_default());
                    }
                    row
                })
                .collect();
            let mut headers = vec!["FILE", "TYPE", "BYTES", "SHA256"];
            if encrypted {
                headers.push("YAML SHA256");
            }
            text.push('\n');
            text.push_str(&printer::table(&headers, &rows));
        }
        text
    }
}

pub async fn run(args: &ShowArgs, env: &Env, printer: &Printer) -> anyhow::Result<Exit> {
    let store = super::open_store(&args.backups, env, printer)?;
    let context = || format!("cannot show the backup `{}`", args.name);
    // Without --files only the manifest is read (a bucket's other objects are only listed).
    let read = if args.files {
        Read::Everything
    } else {
        Read::Manifest
    };
    let mut found = store
        .find_for_reading(&args.name, read)
        .await
        .with_context(context)?;
    found.backup = super::keys::open_backup(found.backup, &args.identity, env, printer, false)?;
    let backup = &found.backup;
    if args.files && backup.recipients().is_some() && !backup.identities.is_empty() {
        // The files listed are vouched for: each one opens and holds the YAML recorded.
        let (_, problems) = backup.read_objects().with_context(context)?;
        if !problems.is_empty() {
            let listed: String = problems
                .iter()
                .map(|p| format!("\n  {}: {}", found.locate(&p.path), p.detail))
                .collect();
            return Err(anyhow::anyhow!(
                "{} file(s) do not decrypt to the YAML the manifest records:{listed}",
                problems.len()
            ))
            .with_context(context);
        }
    }
    let outcome = show(&found, args.files).with_context(context)?;
    printer.data(&outcome)?;
    Ok(Exit::Success)
}

fn show(found: &Found, with_files: bool) -> Result<ShowOutcome, folder::FolderError> {
    let backup = &found.backup;
    let items = backup.items()?;
    let manifest = backup.manifest.as_ref();
    Ok(ShowOutcome {
        name: backup.name.clone(),
        path: found.shown.clone(),
        status: backup.status,
        created_at: found.created_at(),
        finished_at: manifest.and_then(|m| m.finished_at),
        format_version: manifest.map(|m| m.format_version),
        tool_version: manifest.map(|m| m.tool_version.clone()),
        cluster: manifest.map(|m| m.cluster.clone()),
        resource: manifest.map(|m| m.resource.clone()),
        selector: manifest.map(|m| m.selector.clone()),
        namespaces: manifest.map(|m| m.namespaces.clone()),
        lrs_count: items.len(),
        counts_by_type: folder::count_by(&items, |item| &item.r#type),
        counts_by_namespace: folder::count_by(&items, |item| &item.namespace),
        size_bytes: found.size_bytes()?,
        deployments_snapshot: found.has_file(folder::DEPLOYMENTS_FILE),
        journal: found.has_file(folder::JOURNAL_FILE),
        encryption: manifest.and_then(|m| m.encryption.clone()),
        errors: manifest.map(|m| m.errors.clone()).unwrap_or_default(),
        files: with_files.then_some(items),
    })
}
