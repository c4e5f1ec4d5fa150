//! The manifests of a schedule, rendered from checked settings: what `install` applies and what
//! `install --dry-run` prints. No request is made here.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    CREATED_NAMESPACE_ANNOTATION, Kind, MANAGED_BY, RBAC_GROUP, SCHEDULE_LABEL,
    SCHEDULE_NAMESPACE_LABEL, Schedule, cluster_role_name,
};
use crate::cli::{ScheduleRetentionArgs, ScheduleTargetArgs};
use crate::cluster::lrs::{LRS_GROUP, LRS_PLURAL};

/// The user and group the container runs as: not root, and no user the image needs to know
/// (a FROM-scratch image has no /etc/passwd), the usual "nonroot" id.
pub const RUN_AS: i64 = 65532;
/// Where the recipients ConfigMap is mounted, and its one key.
pub const RECIPIENTS_DIR: &str = "/etc/mlbackup/recipients";
pub const RECIPIENTS_KEY: &str = "recipients.txt";
/// Where the CA bundle ConfigMap is mounted, and its one key.
pub const CA_DIR: &str = "/etc/mlbackup/ca";
pub const CA_KEY: &str = "ca-bundle.pem";
/// The scratch directory (an emptyDir: the root file system is read-only).
pub const SCRATCH: &str = "/tmp";
/// How late the controller may still start a missed run (after a controller restart, say);
/// later, it waits for the next one.
pub const STARTING_DEADLINE_SECONDS: u64 = 3600;
/// How many finished runs of each outcome are kept (their pods' logs with them).
pub const HISTORY_LIMIT: u64 = 3;
/// Tries of one run: a transient failure gets one more, within --timeout.
pub const BACKOFF_LIMIT: u64 = 1;
/// The keys the credentials Secret holds (the standard AWS variables).
pub const CREDENTIAL_KEYS: [(&str, bool); 3] = [
    ("AWS_ACCESS_KEY_ID", false),
    ("AWS_SECRET_ACCESS_KEY", false),
    ("AWS_SESSION_TOKEN", true),
];

/// Everything a schedule is made of, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub namespace: String,
    pub schedule: Schedule,
    /// The location as given (`s3://BUCKET/PREFIX`, or a folder path).
    pub location: String,
    pub image: String,
    /// The age public keys, one per line in the ConfigMap; none: not encrypted.
    pub recipients: Vec<String>,
    pub retention: ScheduleRetentionArgs,
    pub timeout: Duration,
    pub credentials_secret: Option<String>,
    pub service_account_annotations: Vec<(String, String)>,
    /// The object store's endpoint and region as the installing operator's location has them
    /// (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `AWS_REGION`, the profile), carried into
    /// the pod as `AWS_ENDPOINT_URL` and `AWS_REGION`.
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    /// The CA bundle's path on the installing machine, and its PEM text.
    pub ca_bundle: Option<(std::path::PathBuf, String)>,
    /// The namespace does not exist yet: install creates it (and uninstall may remove it).
    pub creates_namespace: bool,
}

impl Settings {
    pub fn target(&self) -> ScheduleTargetArgs {
        ScheduleTargetArgs {
            name: self.name.clone(),
            schedule_namespace: self.namespace.clone(),
        }
    }

    fn labels(&self) -> Value {
        json!({
            MANAGED_BY.0: MANAGED_BY.1,
            SCHEDULE_LABEL: self.name,
            SCHEDULE_NAMESPACE_LABEL: self.namespace,
        })
    }

    fn metadata(&self, name: &str, namespaced: bool) -> Value {
        let mut metadata = json!({"name": name, "labels": self.labels()});
        if namespaced {
            metadata["namespace"] = json!(self.namespace);
        }
        metadata
    }

    fn recipients_config_map(&self) -> String {
        format!("{}-recipients", self.name)
    }

    pub fn ca_config_map(&self) -> String {
        format!("{}-ca-bundle", self.name)
    }
}

/// `--keep-last N ...`: the retention flags as `prune` takes them.
pub fn retention_flags(retention: &ScheduleRetentionArgs) -> Vec<String> {
    let mut flags = Vec::new();
    for (flag, value) in [
        ("--keep-last", retention.keep_last),
        ("--keep-daily", retention.keep_daily),
        ("--keep-weekly", retention.keep_weekly),
        ("--keep-monthly", retention.keep_monthly),
    ] {
        if let Some(n) = value {
            flags.extend([flag.to_string(), n.to_string()]);
        }
    }
    if let Some(within) = retention.keep_within {
        flags.extend(["--keep-within".to_string(), crate::duration::format(within)]);
    }
    flags
}

/// The objects, in the order they are applied.
pub fn manifests(settings: &Settings) -> Vec<Value> {
    let mut objects = Vec::new();
    let mut namespace = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": settings.namespace, "labels": {MANAGED_BY.0: MANAGED_BY.1}}});
    if settings.creates_namespace {
        namespace["metadata"]["annotations"] = json!({CREATED_NAMESPACE_ANNOTATION: "true"});
    }
    objects.push(namespace);
    let mut account = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": settings.metadata(&settings.name, true)});
    if !settings.service_account_annotations.is_empty() {
        account["metadata"]["annotations"] = settings
            .service_account_annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    objects.push(account);
    let role = cluster_role_name(&settings.target());
    // Read the LRS objects and their CRD, and the `kube-system` namespace, whose uid is the
    // manifest's cluster id: nothing else (no exec, no scale, no Secrets, no other namespace).
    objects.push(
        json!({"apiVersion": format!("{RBAC_GROUP}/v1"), "kind": "ClusterRole",
        "metadata": settings.metadata(&role, false),
        "rules": [
            {"apiGroups": [LRS_GROUP], "resources": [LRS_PLURAL], "verbs": ["get", "list"]},
            {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
             "resourceNames": [format!("{LRS_PLURAL}.{LRS_GROUP}")], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["namespaces"],
             "resourceNames": [crate::cluster::CLUSTER_ID_NAMESPACE], "verbs": ["get"]},
        ]}),
    );
    objects.push(json!({"apiVersion": format!("{RBAC_GROUP}/v1"), "kind": "ClusterRoleBinding",
        "metadata": settings.metadata(&role, false),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": settings.name, "namespace": settings.namespace}]}));
    if !settings.recipients.is_empty() {
        objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": settings.metadata(&settings.recipients_config_map(), true),
            "data": {RECIPIENTS_KEY: settings.recipients.join("\n") + "\n"}}));
    }
    if let Some((_, pem)) = &settings.ca_bundle {
        objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": settings.metadata(&settings.ca_config_map(), true),
            "data": {CA_KEY: pem}}));
    }
    objects.push(cron_job(settings));
    objects
}

fn cron_job(settings: &Settings) -> Value {
    let mut args = vec![
        "scheduled-run".to_string(),
        "--dir".to_string(),
        settings.location.clone(),
        "--name".to_string(),
        settings.name.clone(),
        // The lock's lease: Kubernetes stops the Job at --timeout, so a lock older than that is
        // a killed run's.
        "--lease".to_string(),
        crate::duration::format(settings.timeout),
    ];
    let mut mounts = vec![json!({"name": "scratch", "mountPath": SCRATCH})];
    let mut volumes = vec![json!({"name": "scratch", "emptyDir": {}})];
    let mut env = vec![json!({"name": "TMPDIR", "value": SCRATCH})];
    if !settings.recipients.is_empty() {
        args.extend([
            "--recipients-file".to_string(),
            format!("{RECIPIENTS_DIR}/{RECIPIENTS_KEY}"),
        ]);
        mounts.push(json!({"name": "recipients", "mountPath": RECIPIENTS_DIR, "readOnly": true}));
        volumes.push(
            json!({"name": "recipients", "configMap": {"name": settings.recipients_config_map()}}),
        );
    }
    args.extend(retention_flags(&settings.retention));
    // The days of --keep-daily are the schedule's, not the pod's (UTC).
    if let Some(zone) = &settings.schedule.time_zone {
        args.extend(["--time-zone".to_string(), zone.clone()]);
    }
    for (name, value) in [
        ("AWS_ENDPOINT_URL", &settings.endpoint_url),
        ("AWS_REGION", &settings.region),
    ] {
        if let Some(value) = value {
            env.push(json!({"name": name, "value": value}));
        }
    }
    if settings.ca_bundle.is_some() {
        env.push(json!({"name": "AWS_CA_BUNDLE", "value": format!("{CA_DIR}/{CA_KEY}")}));
        mounts.push(json!({"name": "ca-bundle", "mountPath": CA_DIR, "readOnly": true}));
        volumes.push(json!({"name": "ca-bundle", "configMap": {"name": settings.ca_config_map()}}));
    }
    if let Some(secret) = &settings.credentials_secret {
        for (key, optional) in CREDENTIAL_KEYS {
            let mut reference = json!({"name": secret, "key": key});
            if optional {
                reference["optional"] = json!(true);
            }
            env.push(json!({"name": key, "valueFrom": {"secretKeyRef": reference}}));
        }
    }
    let mut spec = json!({
        "schedule": settings.schedule.expression,
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
        "successfulJobsHistoryLimit": HISTORY_LIMIT,
        "failedJobsHistoryLimit": HISTORY_LIMIT,
        "jobTemplate": {
            "metadata": {"labels": settings.labels()},
            "spec": {
                "backoffLimit": BACKOFF_LIMIT,
                "activeDeadlineSeconds": settings.timeout.as_secs().max(1),
                "template": {
                    "metadata": {"labels": settings.labels()},
                    "spec": {
                        "serviceAccountName": settings.name,
                        "restartPolicy": "Never",
                        "securityContext": {
                            "runAsNonRoot": true,
                            "runAsUser": RUN_AS,
                            "runAsGroup": RUN_AS,
                            "fsGroup": RUN_AS,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": "backup",
                            "image": settings.image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": args,
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "runAsNonRoot": true,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": mounts,
                        }],
                        "volumes": volumes,
                    },
                },
            },
        },
    });
    if let Some(zone) = &settings.schedule.time_zone {
        spec["timeZone"] = json!(zone);
    }
    json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": settings.metadata(&settings.name, true), "spec": spec})
}

/// Whether `object` is one of `Kind` (for the install report).
pub fn kind_of(object: &Value) -> Option<Kind> {
    object["kind"].as_str().and_then(Kind::of)
}
