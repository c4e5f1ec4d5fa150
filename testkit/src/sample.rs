//! Deterministic sample data that looks like a real DataRobot install: LRSes of several
//! `datarobot-lrs-type` values across namespaces (running and failed, with realistic specs) and
//! model deployments with ids like the real API's. The same seed gives the same data.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The LRS API group; the version is chosen by the fake server.
pub const LRS_GROUP: &str = "lrs.datarobot.com";
/// The label that carries the workload type.
pub const LRS_TYPE_LABEL: &str = "datarobot-lrs-type";

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// LRSes of type `deployment` (custom model deployments).
    pub lrs: usize,
    /// LRSes of type `spark_app` (interactive Spark sessions).
    pub spark: usize,
    /// LRSes of other types (`custom_application`, `custom_job`...).
    pub other: usize,
    /// The LRSes are spread over this many namespaces, the app namespace first.
    pub namespaces: usize,
    pub app_namespace: String,
    /// DataRobot deployments, of which `inactive_deployments` are inactive.
    pub deployments: usize,
    pub inactive_deployments: usize,
    pub seed: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            lrs: 12,
            spark: 3,
            other: 2,
            namespaces: 1,
            app_namespace: "dr-app".to_string(),
            deployments: 12,
            inactive_deployments: 2,
            seed: 1,
        }
    }
}

/// A model deployment as the DataRobot API knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleDeployment {
    pub id: String,
    pub label: String,
    pub description: String,
    pub active: bool,
    pub importance: String,
    pub created_at: DateTime<Utc>,
}

/// The whole population, generated once from a spec.
#[derive(Debug, Clone)]
pub struct Sample {
    pub namespaces: Vec<String>,
    /// LRS objects without server-set metadata (no uid, resourceVersion...): what a seeding
    /// client would create. `apiVersion` uses the version given to [`generate`].
    pub lrs: Vec<Value>,
    pub deployments: Vec<SampleDeployment>,
}

const MODEL_NAMES: &[&str] = &[
    "churn-xgb",
    "fraud-detector",
    "demand-forecast",
    "credit-risk",
    "ltv-regression",
    "readmission-risk",
    "price-elasticity",
    "sentiment-bert",
    "anomaly-iforest",
    "lead-scoring",
];
const OTHER_TYPES: &[&str] = &["custom_application", "custom_job", "model_workshop"];
const IMPORTANCE: &[&str] = &["CRITICAL", "HIGH", "MODERATE", "LOW"];

/// Generates the population of `spec`, with LRS objects of `lrs_version`.
pub fn generate(spec: &SampleSpec, lrs_version: &str) -> Sample {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let namespaces = namespace_names(spec);
    let epoch = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();

    let deployments: Vec<SampleDeployment> = (0..spec.deployments)
        .map(|i| {
            let model = MODEL_NAMES[i % MODEL_NAMES.len()];
            SampleDeployment {
                id: object_id(&mut rng, epoch + Duration::hours(i as i64)),
                label: format!("{model} v{} ({})", 1 + i / MODEL_NAMES.len(), env_of(i)),
                description: format!("Production scoring for {model}"),
                // The last ones are inactive, so the active set is easy to reason about.
                active: i < spec.deployments.saturating_sub(spec.inactive_deployments),
                importance: IMPORTANCE[rng.random_range(0..IMPORTANCE.len())].to_string(),
                created_at: epoch + Duration::hours(i as i64),
            }
        })
        .collect();

    let mut lrs = Vec::with_capacity(spec.lrs + spec.spark + spec.other);
    for i in 0..spec.lrs {
        // A deployment LRS belongs to a DataRobot deployment when there is one to point at.
        let deployment_id = deployments
            .get(i)
            .map(|d| d.id.clone())
            .unwrap_or_else(|| object_id(&mut rng, epoch));
        let namespace = &namespaces[i % namespaces.len()];
        lrs.push(deployment_lrs(
            &mut rng,
            lrs_version,
            namespace,
            &deployment_id,
            i,
        ));
    }
    for i in 0..spec.spark {
        let namespace = &namespaces[i % namespaces.len()];
        lrs.push(spark_lrs(&mut rng, lrs_version, namespace, epoch, i));
    }
    for i in 0..spec.other {
        let namespace = &namespaces[i % namespaces.len()];
        let kind = OTHER_TYPES[i % OTHER_TYPES.len()];
        lrs.push(other_lrs(&mut rng, lrs_version, namespace, kind, epoch, i));
    }
    Sample {
        namespaces,
        lrs,
        deployments,
    }
}

/// The app namespace first, then `dr-tenant-1`, `dr-tenant-2`...
pub fn namespace_names(spec: &SampleSpec) -> Vec<String> {
    let mut names = vec![spec.app_namespace.clone()];
    names.extend((1..spec.namespaces.max(1)).map(|i| format!("dr-tenant-{i}")));
    names
}

fn env_of(i: usize) -> &'static str {
    ["prod", "staging", "prod", "dev"][i % 4]
}

/// A 24-hex-digit id like a MongoDB ObjectId: 4 bytes of time, 8 random bytes.
fn object_id(rng: &mut StdRng, at: DateTime<Utc>) -> String {
    format!("{:08x}{:016x}", at.timestamp() as u32, rng.random::<u64>())
}

fn short_hex(rng: &mut StdRng) -> String {
    format!("{:010x}", rng.random::<u64>() & 0xff_ffff_ffff)
}

fn lrs_status(rng: &mut StdRng, replicas: u64) -> Value {
    // About one in eight has failed, as on a real cluster after a bad image push.
    if rng.random_ratio(1, 8) {
        json!({
            "phase": "Failed",
            "readyReplicas": 0,
            "message": "Back-off pulling image: manifest unknown",
            "conditions": [{
                "type": "Ready", "status": "False", "reason": "ImagePullBackOff",
                "lastTransitionTime": "2026-11-02T08:14:55Z"
            }]
        })
    } else {
        json!({
            "phase": "Running",
            "readyReplicas": replicas,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "AllReplicasReady",
                "lastTransitionTime": "2026-11-02T08:10:31Z"
            }]
        })
    }
}

fn deployment_lrs(
    rng: &mut StdRng,
    version: &str,
    namespace: &str,
    deployment_id: &str,
    i: usize,
) -> Value {
    let model = MODEL_NAMES[i % MODEL_NAMES.len()];
    let custom_model_id = short_hex(rng);
    let replicas: u64 = if rng.random_ratio(1, 4) { 2 } else { 1 };
    let status = lrs_status(rng, replicas);
    let cpu = ["500m", "1", "2"][rng.random_range(0..3)];
    let memory = ["1Gi", "2Gi", "4Gi"][rng.random_range(0..3)];
    json!({
        "apiVersion": format!("{LRS_GROUP}/{version}"),
        "kind": "LongRunningService",
        "metadata": {
            "name": format!("cm-{deployment_id}"),
            "namespace": namespace,
            "labels": {
                LRS_TYPE_LABEL: "deployment",
                "datarobot.com/deployment-id": deployment_id,
                "datarobot.com/custom-model-id": custom_model_id,
                "app.kubernetes.io/managed-by": "lrs-operator"
            },
            "annotations": {
                "datarobot.com/model-name": model,
                "datarobot.com/custom-model-version": format!("{}", 1 + i % 5),
                "datarobot.com/created-by": "mlops-admin@example.com"
            },
            "finalizers": ["lrs.datarobot.com/cleanup"]
        },
        "spec": {
            "replicas": replicas,
            "image": format!(
                "registry.example.com/datarobot/custom-models/{model}:{custom_model_id}"
            ),
            "imagePullPolicy": "IfNotPresent",
            "serviceAccountName": "lrs-custom-model",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": cpu, "memory": memory},
                "limits": {"cpu": cpu, "memory": memory}
            },
            "env": [
                {"name": "MLOPS_DEPLOYMENT_ID", "value": deployment_id},
                {"name": "CUSTOM_MODEL_ID", "value": custom_model_id},
                {"name": "TARGET_TYPE", "value": if i.is_multiple_of(3) { "Regression" } else { "Binary" }},
                {"name": "DATAROBOT_ENDPOINT", "value": "http://mmapp-app.dr-app.svc:80/api/v2"},
                {"name": "DATAROBOT_API_TOKEN", "valueFrom": {"secretKeyRef": {
                    "name": format!("cm-{deployment_id}-token"), "key": "token"}}}
            ],
            "readinessProbe": {"httpGet": {"path": "/ping/", "port": 8080}, "periodSeconds": 10},
            "nodeSelector": {"datarobot.com/node-pool": "custom-models"}
        },
        "status": status
    })
}

fn spark_lrs(
    rng: &mut StdRng,
    version: &str,
    namespace: &str,
    epoch: DateTime<Utc>,
    i: usize,
) -> Value {
    let session = object_id(rng, epoch + Duration::minutes(i as i64));
    let executors: u64 = rng.random_range(1..=4);
    let status = lrs_status(rng, 1);
    json!({
        "apiVersion": format!("{LRS_GROUP}/{version}"),
        "kind": "LongRunningService",
        "metadata": {
            "name": format!("spark-session-{session}"),
            "namespace": namespace,
            "labels": {
                LRS_TYPE_LABEL: "spark_app",
                "datarobot.com/session-id": session,
                "app.kubernetes.io/managed-by": "lrs-operator"
            },
            "annotations": {"datarobot.com/owner": "data-engineer@example.com"}
        },
        "spec": {
            "replicas": 1,
            "image": "registry.example.com/datarobot/spark-interactive:3.5.1-dr11",
            "sparkConf": {"spark.executor.instances": executors.to_string(),
                          "spark.dynamicAllocation.enabled": "false"},
            "driver": {"cores": 1, "memory": "2g"},
            "executor": {"cores": 2, "memory": "4g", "instances": executors},
            "idleTimeoutSeconds": 3600
        },
        "status": status
    })
}

fn other_lrs(
    rng: &mut StdRng,
    version: &str,
    namespace: &str,
    lrs_type: &str,
    epoch: DateTime<Utc>,
    i: usize,
) -> Value {
    let id = object_id(rng, epoch + Duration::days(i as i64));
    let status = lrs_status(rng, 1);
    json!({
        "apiVersion": format!("{LRS_GROUP}/{version}"),
        "kind": "LongRunningService",
        "metadata": {
            "name": format!("{}-{id}", lrs_type.replace('_', "-")),
            "namespace": namespace,
            "labels": {
                LRS_TYPE_LABEL: lrs_type,
                "app.kubernetes.io/managed-by": "lrs-operator"
            }
        },
        "spec": {
            "replicas": 1,
            "image": format!("registry.example.com/datarobot/{}:{id}", lrs_type.replace('_', "-")),
            "ports": [{"name": "http", "containerPort": 8080}],
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}
        },
        "status": status
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_population() {
        let spec = SampleSpec {
            namespaces: 3,
            ..SampleSpec::default()
        };
        let a = generate(&spec, "v1");
        let b = generate(&spec, "v1");
        assert_eq!(a.lrs, b.lrs);
        assert_eq!(a.deployments, b.deployments);
        let other = generate(
            &SampleSpec {
                seed: 2,
                ..spec.clone()
            },
            "v1",
        );
        assert_ne!(a.lrs, other.lrs);
    }

    #[test]
    fn counts_types_and_namespaces_follow_the_spec() {
        let spec = SampleSpec {
            lrs: 10,
            spark: 4,
            other: 3,
            namespaces: 3,
            deployments: 6,
            inactive_deployments: 2,
            ..SampleSpec::default()
        };
        let sample = generate(&spec, "v1beta1");
        let of_type = |t: &str| {
            sample
                .lrs
                .iter()
                .filter(|o| o["metadata"]["labels"][LRS_TYPE_LABEL] == t)
                .count()
        };
        assert_eq!(of_type("deployment"), 10);
        assert_eq!(of_type("spark_app"), 4);
        assert_eq!(sample.lrs.len(), 17);
        assert_eq!(sample.namespaces, ["dr-app", "dr-tenant-1", "dr-tenant-2"]);
        assert!(
            sample
                .lrs
                .iter()
                .all(|o| o["apiVersion"] == "lrs.datarobot.com/v1beta1")
        );
        let mut names: Vec<_> = sample.lrs.iter().map(|o| &o["metadata"]["name"]).collect();
        names.sort_by_key(|n| n.to_string());
        names.dedup();
        assert_eq!(names.len(), 17, "names are unique");
        assert_eq!(sample.deployments.iter().filter(|d| d.active).count(), 4);
        assert!(sample.deployments.iter().all(|d| d.id.len() == 24));
    }
}
