//! `schedule install`: checks every setting, then applies the schedule's objects with
//! server-side apply, or prints them (`--dry-run`).

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::render::{self, Settings};
use super::{
    CREATED_NAMESPACE_ANNOTATION, Kind, SCHEDULE_LABEL, SCHEDULE_NAMESPACE_LABEL, Schedule,
    ScheduleError,
};
use crate::cli::{GlobalArgs, ScheduleInstallArgs};
use crate::cluster::objects::{self, Persist};
use crate::cluster::{Cluster, ClusterError};
use crate::encryption::Recipients;
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::location::{Location, aws};
use crate::printer::{self, OutputFormat, Printer, Render};

pub async fn run(
    global: &GlobalArgs,
    args: &ScheduleInstallArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (mut settings, warnings) = check(args, env)?;
    for warning in &warnings {
        printer.warning(warning);
    }
    if matches!(
        Location::parse(args.dir.as_os_str()),
        Ok(Location::Folder { .. })
    ) {
        printer.warning(&format!(
            "--dir {} is a folder: the pod writes it inside its own file system, which is read-only \
             but for {} (an emptyDir, gone with the pod); use an s3:// location for backups that last",
            args.dir.display(),
            render::SCRATCH
        ));
    }
    if args.dry_run {
        printer.text(&print_manifests(
            &render::manifests(&settings),
            global.output,
        )?)?;
        return Ok(Exit::Success);
    }
    let cluster = super::super::connect(global, env).await?;
    let context = || {
        format!(
            "cannot install the schedule `{}` in the namespace `{}`",
            settings.name, settings.namespace
        )
    };
    let namespace = namespace_state(&cluster, &settings.namespace)
        .await
        .with_context(context)?;
    settings.creates_namespace = namespace.made_by_install;
    if let Some(secret) = &settings.credentials_secret {
        let checked = check_credentials_secret(&cluster, &settings.namespace, &namespace, secret)
            .await
            .with_context(context)?;
        if !checked {
            printer.warning(&format!(
                "cannot read the Secret `{secret}` in the namespace `{}` (forbidden): not checked \
                 that it holds AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                settings.namespace
            ));
        }
    }
    if let Some(warning) = refuse_shared_location(&cluster, &settings)
        .await
        .with_context(context)?
    {
        printer.warning(&warning);
    }
    let manifests = render::manifests(&settings);
    refuse_foreign(&cluster, &settings, &manifests)
        .await
        .with_context(context)?;
    let mut applied = Vec::new();
    for object in &manifests {
        let kind = render::kind_of(object).expect("the manifests are of known kinds");
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        // A namespace someone else made is theirs: applying ours would add our label to it (and
        // take its ownership in managedFields).
        if kind == Kind::Namespace && namespace.exists && !namespace.made_by_install {
            applied.push(AppliedObject {
                kind: kind.resource().kind,
                name: name.to_string(),
                action: "exists",
            });
            continue;
        }
        let result = objects::apply(
            &cluster,
            &kind.resource(),
            &settings.namespace,
            name,
            object,
            Persist::Yes,
        )
        .await
        .with_context(|| format!("cannot apply the {} `{name}`", kind.resource().kind))
        .with_context(context)?;
        applied.push(AppliedObject {
            kind: kind.resource().kind,
            name: name.to_string(),
            action: if result.created {
                "created"
            } else {
                "configured"
            },
        });
    }
    printer.data(&InstallOutcome {
        schedule: settings.name.clone(),
        namespace: settings.namespace.clone(),
        cron: settings.schedule.expression.clone(),
        time_zone: settings.schedule.time_zone.clone(),
        next_run: settings.schedule.next_after(Utc::now()),
        objects: applied,
        carried: carried_files(&settings),
    })?;
    Ok(Exit::Success)
}

/// Every flag checked, the files read: nothing is sent before all of it holds. With the
/// settings, the warnings about what the pod will (not) have of the operator's environment.
pub fn check(args: &ScheduleInstallArgs, env: &Env) -> anyhow::Result<(Settings, Vec<String>)> {
    let usage = |message: String, hint: &str| UsageError {
        message,
        hint: hint.to_string(),
    };
    let schedule = Schedule::parse(&args.schedule, args.time_zone.as_deref())?;
    let location = Location::parse(args.dir.as_os_str()).map_err(|err| {
        usage(
            format!("--dir: {err}"),
            "a location like s3://BUCKET/PREFIX (the bucket's keys come from --credentials-secret \
             or the pod's web identity, never from the location)",
        )
    })?;
    if location.is_read_only() {
        return Err(usage(
            format!(
                "--dir {} is read-only: a schedule writes a backup into it on every run",
                args.dir.display()
            ),
            "give the location without ?readonly (the schedule's credentials decide what it may \
             write)",
        )
        .into());
    }
    let location_text = args.dir.to_str().map(str::to_string).ok_or_else(|| {
        usage(
            format!("--dir {} is not UTF-8", args.dir.display()),
            "a Kubernetes manifest holds text only",
        )
    })?;
    if args.image.is_empty() || args.image.chars().any(char::is_whitespace) {
        return Err(usage(
            format!("--image `{}` is not an image reference", args.image),
            "like registry.example.com/kubectl-mlbackup:0.1.0",
        )
        .into());
    }
    let files: Vec<_> = args
        .recipients_file
        .clone()
        .or_else(|| {
            args.recipient
                .is_empty()
                .then(|| env.recipients_file.clone())
                .flatten()
        })
        .into_iter()
        .collect();
    let recipients = Recipients::from_keys_and_files(&args.recipient, &files).map_err(|err| {
        let hint = err.hint().unwrap_or_else(|| {
            "an age public key (age1...), as `age-keygen -y KEY_FILE` prints it".into()
        });
        usage(err.to_string(), &hint)
    })?;
    if recipients.is_none() && matches!(location, Location::S3(_)) {
        return Err(usage(
            "a scheduled backup into object storage must be encrypted: no recipient is given"
                .into(),
            "pass --recipient age1... or --recipients-file FILE (public keys only: the cluster \
             never holds a key that reads the backups)",
        )
        .into());
    }
    if let Some(secret) = &args.credentials_secret
        && !crate::object::is_object_name(secret)
    {
        return Err(usage(
            format!("--credentials-secret `{secret}` is not a valid Secret name"),
            "the name of a Secret in the schedule's namespace",
        )
        .into());
    }
    if args.timeout.is_zero() {
        return Err(usage(
            "--timeout must be longer than 0".into(),
            "like --timeout 1h",
        )
        .into());
    }
    // The endpoint, region and CA bundle as this machine's location has them (variables, then
    // the profile), so the pod reaches the same store; its credentials are its own.
    let place = aws::resolve_place(&env.aws, env.home.as_deref()).map_err(|err| {
        usage(
            format!("cannot read where the object store is: {err}"),
            "fix the AWS configuration, or unset AWS_PROFILE to use the variables alone",
        )
    })?;
    let endpoint_url = place.endpoint.as_ref().map(|e| e.url.clone());
    let mut warnings = Vec::new();
    if let Some(found) = &place.endpoint {
        let mut problems = Vec::new();
        if is_loopback(&found.url) {
            problems.push(
                "a loopback address: in the pod it is the pod itself, not this machine; set \
                 AWS_ENDPOINT_URL to an address the cluster reaches",
            );
        }
        if found.plain_http {
            problems.push(
                "not https://: the bucket's keys and the backups cross the network unprotected",
            );
        }
        if !problems.is_empty() {
            warnings.push(format!(
                "the endpoint {} (from {}) goes into the schedule's pod as AWS_ENDPOINT_URL, and \
                 it is {}",
                found.url,
                found.from,
                problems.join("; and ")
            ));
        }
    }
    let is_s3 = matches!(location, Location::S3(_));
    if is_s3 && args.credentials_secret.is_none() && args.service_account_annotation.is_empty() {
        warnings.push(
            "neither --credentials-secret nor --service-account-annotation is given: the pod has \
             no credentials for the bucket unless its node's or pod's identity provides them"
                .to_string(),
        );
    }
    // A CA bundle is for TLS: carried for an https:// endpoint, or AWS itself (no endpoint).
    let carry_ca = place.endpoint.as_ref().is_none_or(|e| !e.plain_http);
    if let (Some(path), false) = (&place.ca_bundle, carry_ca) {
        warnings.push(format!(
            "the CA bundle {} is not carried into the schedule's pod: the endpoint is not \
             https://",
            path.display()
        ));
    }
    let ca_bundle = match place.ca_bundle.as_ref().filter(|_| carry_ca) {
        Some(path) => {
            let pem = std::fs::read_to_string(path).map_err(|err| {
                usage(
                    format!("cannot read the CA bundle {}: {err}", path.display()),
                    "point AWS_CA_BUNDLE at the PEM file of the object store's CA, or unset it",
                )
            })?;
            Some((path.clone(), pem))
        }
        None => None,
    };
    let settings = Settings {
        name: args.target.name.clone(),
        namespace: args.target.schedule_namespace.clone(),
        schedule,
        location: location_text,
        image: args.image.clone(),
        recipients: recipients.map(|r| r.keys()).unwrap_or_default(),
        retention: args.retention.clone(),
        timeout: args.timeout,
        credentials_secret: args.credentials_secret.clone(),
        service_account_annotations: args.service_account_annotation.clone(),
        endpoint_url,
        region: place.region.clone(),
        ca_bundle,
        creates_namespace: false,
    };
    Ok((settings, warnings))
}

/// Whether the endpoint `url` is localhost, 127.0.0.0/8 or ::1: in the pod, the pod's own
/// address, not the operator's machine.
fn is_loopback(url: &str) -> bool {
    let uri = url.parse::<http::Uri>().ok();
    let host = uri
        .as_ref()
        .and_then(|u| u.host())
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The operator's files install carried into the cluster (the CA bundle's ConfigMap).
fn carried_files(settings: &Settings) -> Vec<CarriedFile> {
    match &settings.ca_bundle {
        Some((path, pem)) => vec![CarriedFile {
            variable: "AWS_CA_BUNDLE",
            path: path.display().to_string(),
            bytes: pem.len() as u64,
            config_map: settings.ca_config_map(),
        }],
        None => Vec::new(),
    }
}

/// The manifests as `-o yaml` (the default: `---`-separated documents, as kubectl reads them)
/// or `-o json` (one `List`, as `kubectl get -o json` writes several objects).
fn print_manifests(manifests: &[Value], format: OutputFormat) -> anyhow::Result<String> {
    Ok(match format {
        OutputFormat::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": manifests});
            serde_json::to_string_pretty(&list)? + "\n"
        }
        OutputFormat::Yaml | OutputFormat::Table => {
            let mut text = String::new();
            for object in manifests {
                text.push_str("---\n");
                text.push_str(&crate::yaml::to_kubectl_yaml(object)?);
                if !text.ends_with('\n') {
                    text.push('\n');
                }
            }
            text
        }
    })
}

/// What install finds of the schedule's namespace.
struct NamespaceState {
    /// It exists (or may: one the user may not read is taken as there).
    exists: bool,
    /// It is (or will be) one install made: it does not exist yet, or an earlier install made it
    /// (applying it again without the annotation would drop it). One the user may not read is
    /// taken as theirs.
    made_by_install: bool,
}

async fn namespace_state(
    cluster: &Cluster,
    namespace: &str,
) -> Result<NamespaceState, ClusterError> {
    match objects::get(cluster, &Kind::Namespace.resource(), namespace, namespace).await {
        Ok(None) => Ok(NamespaceState {
            exists: false,
            made_by_install: true,
        }),
        Ok(Some(live)) => Ok(NamespaceState {
            exists: true,
            made_by_install: live.value["metadata"]["annotations"][CREATED_NAMESPACE_ANNOTATION]
                == "true",
        }),
        Err(ClusterError::Forbidden { .. }) => Ok(NamespaceState {
            exists: true,
            made_by_install: false,
        }),
        Err(err) => Err(err),
    }
}

/// Refuses, before any change, a --credentials-secret the pod could not start with (the kubelet
/// would hold it in CreateContainerConfigError until the run's deadline): the Secret is in the
/// schedule's namespace with the two keys the pod reads, not empty. `Ok(false)`: the user may not read
/// Secrets there, so it was not checked. Only the key names are looked at.
async fn check_credentials_secret(
    cluster: &Cluster,
    namespace: &str,
    state: &NamespaceState,
    secret: &str,
) -> anyhow::Result<bool> {
    let missing_secret = |namespace_missing| ScheduleError::NoCredentialsSecret {
        secret: secret.to_string(),
        namespace: namespace.to_string(),
        namespace_missing,
    };
    if !state.exists {
        return Err(missing_secret(true).into());
    }
    let live = match objects::get(cluster, &Kind::Secret.resource(), namespace, secret).await {
        Ok(Some(live)) => live,
        Ok(None) => return Err(missing_secret(false).into()),
        Err(ClusterError::Forbidden { .. }) => return Ok(false),
        Err(err) => return Err(err.into()),
    };
    let missing: Vec<String> = render::CREDENTIAL_KEYS
        .iter()
        .filter(|(key, optional)| !optional && live.value["data"].get(key).is_none())
        .map(|(key, _)| key.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ScheduleError::CredentialsKeysMissing {
            secret: secret.to_string(),
            namespace: namespace.to_string(),
            missing,
        }
        .into());
    }
    // An empty value reaches the pod as an empty variable, and the AWS SDK then looks for other
    // credentials (the node's metadata service) and fails far from the cause. Only whether the
    // value is empty is looked at, never what it holds.
    let empty: Vec<String> = render::CREDENTIAL_KEYS
        .iter()
        .filter(|(key, optional)| !optional && live.value["data"][key] == "")
        .map(|(key, _)| key.to_string())
        .collect();
    if !empty.is_empty() {
        return Err(ScheduleError::CredentialsKeysEmpty {
            secret: secret.to_string(),
            namespace: namespace.to_string(),
            empty,
        }
        .into());
    }
    Ok(true)
}

/// Refuses, before any change, a location another schedule this plugin installed writes to: the
/// two would prune each other's backups and fight over the location's lock. Looks in every
/// namespace the user may list CronJobs in; what it could not look at is said as a warning
/// (`Ok(Some(..))`). Installing the same schedule again is no conflict.
async fn refuse_shared_location(
    cluster: &Cluster,
    settings: &Settings,
) -> anyhow::Result<Option<String>> {
    let resource = Kind::CronJob.resource();
    let selector = super::installed_selector();
    let (cron_jobs, warning) = match objects::list(cluster, &resource, None, &selector).await {
        Ok(all) => (all, None),
        Err(ClusterError::Forbidden { .. }) => {
            match objects::list(cluster, &resource, Some(&settings.namespace), &selector).await {
                Ok(here) => (
                    here,
                    Some(format!(
                        "cannot list CronJobs in all namespaces (forbidden): not checked that no \
                         schedule outside the namespace `{}` writes to --dir {} already",
                        settings.namespace, settings.location
                    )),
                ),
                Err(ClusterError::Forbidden { .. }) => (
                    Vec::new(),
                    Some(format!(
                        "cannot list CronJobs (forbidden): not checked that no other schedule \
                         writes to --dir {} already",
                        settings.location
                    )),
                ),
                Err(err) => return Err(err.into()),
            }
        }
        Err(err) => return Err(err.into()),
    };
    let ours = Location::parse(settings.location.as_ref()).ok();
    for cron_job in &cron_jobs {
        let metadata = &cron_job.value["metadata"];
        let (name, namespace) = (
            metadata["name"].as_str().unwrap_or_default(),
            metadata["namespace"].as_str().unwrap_or_default(),
        );
        if name == settings.name && namespace == settings.namespace {
            continue;
        }
        let Some(theirs) = super::location_of(&cron_job.value) else {
            continue;
        };
        let same = theirs == settings.location
            || ours.is_some() && Location::parse(theirs.as_ref()).ok() == ours;
        if same {
            return Err(UsageError {
                message: format!(
                    "--dir {} is the location of the schedule `{name}` in the namespace \
                     `{namespace}` already: two schedules in one location would prune each \
                     other's backups and fight over its lock",
                    settings.location
                ),
                hint: format!(
                    "give this schedule a location of its own (another bucket prefix or \
                     folder), change that schedule instead (install it again with --name {name} \
                     --schedule-namespace {namespace}), or remove it first with `kubectl mlbackup \
                     schedule uninstall --name {name} --schedule-namespace {namespace}`"
                ),
            }
            .into());
        }
    }
    Ok(warning)
}

/// Refuses, before any change, to take over an object of the same name that this schedule did
/// not make (uninstall would later delete it).
async fn refuse_foreign(
    cluster: &Cluster,
    settings: &Settings,
    manifests: &[Value],
) -> anyhow::Result<()> {
    for object in manifests {
        let Some(kind) = render::kind_of(object).filter(|k| *k != Kind::Namespace) else {
            continue;
        };
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let Some(live) = objects::get(cluster, &kind.resource(), &settings.namespace, name).await?
        else {
            continue;
        };
        let labels = &live.value["metadata"]["labels"];
        if labels[SCHEDULE_LABEL] != settings.name.as_str()
            || labels[SCHEDULE_NAMESPACE_LABEL] != settings.namespace.as_str()
        {
            return Err(ScheduleError::NotOurs {
                kind: kind.resource().kind,
                name: name.to_string(),
            }
            .into());
        }
    }
    Ok(())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedObject {
    pub kind: String,
    pub name: String,
    /// `created`, `configured`, or `exists` (a namespace install did not make, left as it is).
    pub action: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallOutcome {
    pub schedule: String,
    pub namespace: String,
    pub cron: String,
    pub time_zone: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    pub objects: Vec<AppliedObject>,
    /// Files of the operator's environment copied into the cluster.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<CarriedFile>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CarriedFile {
    /// The environment variable that named it.
    pub variable: &'static str,
    pub path: String,
    pub bytes: u64,
    pub config_map: String,
}

impl Render for InstallOutcome {
    fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .objects
            .iter()
            .map(|o| vec![o.kind.clone(), o.name.clone(), o.action.to_string()])
            .collect();
        let next = self
            .next_run
            .map_or_else(|| "never".to_string(), printer::time);
        let mut text = format!(
            "{}\nSchedule {} in namespace {}: {} ({}), next run {next}.\n",
            printer::table(&["KIND", "NAME", "ACTION"], &rows).trim_end(),
            self.schedule,
            self.namespace,
            self.cron,
            self.time_zone.as_deref().unwrap_or("UTC"),
        );
        for file in &self.carried {
            text.push_str(&format!(
                "Carried {} {} ({}) into the ConfigMap {}.\n",
                file.variable,
                mlbackup_helper::text::escape_controls(&file.path),
                printer::size(file.bytes),
                file.config_map
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_loopback_when_the_pod_would_reach_itself() {
        for url in [
            "http://localhost:9000",
            "https://LOCALHOST",
            "http://minio.localhost:9000",
            "http://127.0.0.1:9000",
            "https://127.1.2.3",
            "https://[::1]:9000",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://minio.example.com:9000",
            "http://10.0.0.5:9000",
            "https://[2001:db8::1]",
            "not a url",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
