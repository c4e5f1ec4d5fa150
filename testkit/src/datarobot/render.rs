//! JSON renderings of the fake's objects in the shapes of the real API.
//!
//! The deployment object carries every field the Python client's `Deployment._converter`
//! (trafaret) knows, with values of the types it accepts: dates are always strings (its
//! `String >> dateutil.parser.parse` rejects `null`), `description`/`importance`/`status` may be
//! `null`. Beyond that, the fields a real deployment has (`capabilities`, `governance`,
//! `createdAt`...) are present so that clients written against the real API find them.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Caller, DeploymentSeed};

/// The API's timestamp form: RFC 3339, UTC, microseconds, `Z`.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A stable ObjectId-like id derived from another one (for the deployment's model, project,
/// prediction server...), so that a deployment renders the same way every time.
fn derived_id(id: &str, salt: &str) -> String {
    // FNV-1a, 64 bits, twice with different salts: enough spread for 24 hex digits.
    fn fnv(bytes: impl Iterator<Item = u8>) -> u64 {
        bytes.fold(0xcbf2_9ce4_8422_2325, |hash, b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
    let high = fnv(id.bytes().chain(salt.bytes()));
    let low = fnv(salt.bytes().chain(id.bytes()).chain(*b"#"));
    format!("{:08x}{:016x}", high as u32, low)
}

const ADMIN_PERMISSIONS: &[&str] = &[
    "CAN_ADD_CHALLENGERS",
    "CAN_APPROVE_REPLACEMENT_MODEL",
    "CAN_BE_MANAGED_BY_MLOPS_AGENT",
    "CAN_DELETE_CHALLENGERS",
    "CAN_EDIT_CHALLENGERS",
    "CAN_EDIT_DEPLOYMENT",
    "CAN_GRANT_PREDICTION_ACCESS",
    "CAN_MAKE_PREDICTIONS",
    "CAN_REPLACE_MODEL",
    "CAN_SCORE_CHALLENGERS",
    "CAN_SHARE",
    "CAN_SHARE_DEPLOYMENT_OWNERSHIP",
    "CAN_SUBMIT_ACTUALS",
    "CAN_UPDATE_DEPLOYMENT_THRESHOLDS",
    "CAN_VIEW",
];

const USER_PERMISSIONS: &[&str] = &["CAN_MAKE_PREDICTIONS", "CAN_VIEW"];

fn health(status: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    json!({
        "status": status,
        "message": "",
        "startDate": timestamp(start),
        "endDate": timestamp(end),
    })
}

/// One deployment as `GET deployments/` and `GET deployments/{id}/` answer it, seen by `caller`
/// (the `permissions` list is the caller's).
pub(crate) fn deployment(d: &DeploymentSeed, caller: Caller, base_url: &str) -> Value {
    let now = Utc::now();
    let week_ago = now - Duration::days(7);
    let model_id = derived_id(&d.id, "model");
    let project_id = derived_id(&d.id, "project");
    let owner_id = derived_id("owner", "user");
    let permissions = match caller {
        Caller::Admin => ADMIN_PERMISSIONS,
        Caller::User => USER_PERMISSIONS,
    };
    let owner = json!({
        "id": owner_id,
        "email": "mlops-admin@example.com",
        "firstName": "MLOps",
        "lastName": "Admin",
    });
    json!({
        "id": d.id,
        "label": d.label,
        "description": d.description,
        "status": d.status.as_str(),
        "importance": d.importance,
        "createdAt": timestamp(d.created_at),
        "defaultPredictionServer": {
            "id": derived_id("prediction-server", "server"),
            "url": base_url,
            "datarobot-key": derived_id("prediction-server", "key"),
        },
        "model": {
            "id": model_id,
            "type": "eXtreme Gradient Boosted Trees Classifier with Early Stopping",
            "targetName": "is_churn",
            "targetType": "Binary",
            "projectId": project_id,
            "projectName": format!("{} project", d.label),
            "unsupervisedMode": false,
            "unstructuredModelKind": false,
            "buildEnvironmentType": "DataRobot",
            "deployedAt": timestamp(d.created_at),
            "isDeprecated": false,
            "hasDecisionFlow": false,
        },
        "modelPackage": {
            "id": derived_id(&d.id, "model-package"),
            "name": format!("{} package", d.label),
            "registeredModelId": derived_id(&d.id, "registered-model"),
        },
        "capabilities": {
            "supportsBatchMonitoring": true,
            "supportsChallengerModels": true,
            "supportsFeatureDriftTracking": true,
            "supportsHumilityRecommendedRules": true,
            "supportsHumilityRules": true,
            "supportsHumilityRulesDefaultCalculations": true,
            "supportsModelReplacement": true,
            "supportsPredictionWarning": true,
            "supportsRetraining": true,
            "supportsScoringCodeDownload": false,
            "supportsSecondaryDatasets": false,
            "supportsSegmentedAnalysisDriftAndAccuracy": true,
            "supportsShapBasedPredictionExplanations": true,
            "supportsTargetDriftTracking": true,
        },
        "predictionUsage": {
            "dailyRates": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "lastTimestamp": timestamp(d.created_at),
        },
        "serviceHealth": health("unknown", week_ago, now),
        "modelHealth": health("unknown", week_ago, now),
        "accuracyHealth": health("unavailable", week_ago, now),
        "fairnessHealth": health("unavailable", week_ago, now),
        "customMetricsHealth": health("unknown", week_ago, now),
        "permissions": permissions,
        "owners": { "count": 1, "preview": [owner.clone()] },
        "creator": owner,
        "tags": [],
        "governance": {
            "approvalStatus": "APPROVED",
            "hasOpenChangeRequests": false,
            "reviewers": [],
        },
        "predictionEnvironment": {
            "id": derived_id("prediction-environment", "env"),
            "name": "DataRobot Serverless",
            "platform": "datarobotServerless",
            "isManagedByManagementAgent": false,
            "isDeleted": false,
            "plugin": null,
            "supportedModelFormats": ["datarobot", "customModel"],
        },
        "scoreCount": 0,
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn derived_ids_are_stable_distinct_object_ids() {
        let a = derived_id("65f0c0de0000000000000001", "model");
        assert_eq!(a, derived_id("65f0c0de0000000000000001", "model"));
        assert_ne!(a, derived_id("65f0c0de0000000000000002", "model"));
        assert_ne!(a, derived_id("65f0c0de0000000000000001", "project"));
        assert_eq!(a.len(), 24);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase())
        );
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let at = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(at), "2024-05-06T07:08:09.500000Z");
    }
}
