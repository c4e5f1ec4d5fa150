//! Tests of the fake DataRobot API over real HTTPS with reqwest, as a client sees it.

use std::time::Duration;

use http::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use super::*;
use crate::faults::{Fault, FaultRule};

async fn start_with(options: FakeDataRobotOptions, count: usize) -> (FakeDataRobot, Client) {
    let dr = FakeDataRobot::start(options).await.unwrap();
    for n in 0..count {
        let status = if n % 4 == 3 {
            DeploymentStatus::Inactive
        } else {
            DeploymentStatus::Active
        };
        dr.add_deployment(DeploymentSeed {
            id: object_id(n as u64),
            label: format!("deployment-{n:03}"),
            status,
            description: (n % 2 == 0).then(|| format!("description {n}")),
            importance: Some("LOW".to_string()),
            created_at: Utc::now(),
        });
    }
    let client = Client::new(&dr, dr.admin_token());
    (dr, client)
}

async fn start(count: usize) -> (FakeDataRobot, Client) {
    let options = FakeDataRobotOptions {
        // Long enough that a loaded machine still polls inside the INITIALIZED window (the
        // first quarter) and the RUNNING one.
        status_change_duration: Duration::from_millis(600),
        ..FakeDataRobotOptions::default()
    };
    start_with(options, count).await
}

/// A reqwest client trusting the fake's CA, never following redirects (like the helper and the
/// Python client's poller), with one token.
struct Client {
    http: reqwest::Client,
    api: String,
    auth: String,
}

impl Client {
    fn new(dr: &FakeDataRobot, token: &str) -> Client {
        Client::with_auth(dr, &format!("Bearer {token}"))
    }

    fn with_auth(dr: &FakeDataRobot, auth: &str) -> Client {
        crate::tls::install_crypto_provider();
        let ca = reqwest::Certificate::from_pem(dr.ca_pem().unwrap().as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .redirect(Policy::none())
            .build()
            .unwrap();
        Client {
            http,
            api: dr.api_url(),
            auth: auth.to_string(),
        }
    }

    /// `path` is relative to the API URL, or absolute.
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}/{path}", self.api)
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("Authorization", &self.auth)
            .send()
            .await
            .unwrap()
    }

    async fn patch_status(&self, id: &str, body: Value) -> reqwest::Response {
        self.http
            .patch(self.url(&format!("deployments/{id}/status/")))
            .header("Authorization", &self.auth)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Polls a status job until it is no longer INITIALIZED/RUNNING; returns the last answer's
    /// code, `Location` and body, and every status seen on the way.
    async fn wait_job(&self, location: &str) -> (StatusCode, Option<String>, Value, Vec<String>) {
        let mut seen = Vec::new();
        for _ in 0..200 {
            let answer = self.get(location).await;
            let code = answer.status();
            let location = header(&answer, "location");
            let body: Value = answer.json().await.unwrap();
            let status = body["status"].as_str().unwrap_or_default().to_string();
            seen.push(status.clone());
            if code != StatusCode::OK || !matches!(status.as_str(), "INITIALIZED" | "RUNNING") {
                return (code, location, body, seen);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the status job never finished: {seen:?}");
    }
}

fn header(answer: &reqwest::Response, name: &str) -> Option<String> {
    answer
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn version_answers_what_the_python_client_parses() {
    let (dr, client) = start(0).await;
    let answer = client.get("version/").await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(header(&answer, "content-type").unwrap(), "application/json");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["major"], 2);
    let version = body["versionString"].as_str().unwrap();
    assert!(version.starts_with(&format!("2.{}.", body["minor"])));
    assert!(dr.url().starts_with("https://127.0.0.1:"));
    assert!(!dr.url().ends_with('/'));
    assert_eq!(dr.api_url(), format!("{}/api/v2", dr.url()));
}

#[tokio::test]
async fn pagination_follows_absolute_next_links_to_every_deployment() {
    let (dr, client) = start(130).await;
    let mut url = "deployments/".to_string();
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut totals = Vec::new();
    loop {
        let answer = client.get(&url).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let page: Value = answer.json().await.unwrap();
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert_eq!(page["count"].as_u64().unwrap() as usize, data.len());
        assert!(data.len() <= 20, "the default page size is 20");
        totals.push(page["totalCount"].as_u64().unwrap());
        ids.extend(data.iter().map(|d| d["id"].as_str().unwrap().to_string()));
        if pages > 1 {
            assert!(page["previous"].as_str().unwrap().starts_with(&dr.url()));
        } else {
            assert!(page["previous"].is_null());
        }
        match page["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&format!("{}/api/v2/deployments/?", dr.url())));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 7);
    assert!(totals.iter().all(|&t| t == 130), "{totals:?}");
    assert_eq!(ids.len(), 130);
    let expected: Vec<String> = dr.deployments().into_iter().map(|d| d.id).collect();
    assert_eq!(ids, expected, "every deployment once, in label order");
}

#[tokio::test]
async fn list_limits_are_capped_and_validated() {
    let (_dr, client) = start(130).await;
    let page: Value = client
        .get("deployments/?limit=500")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["count"], 100);
    assert!(
        page["next"]
            .as_str()
            .unwrap()
            .contains("offset=100&limit=100")
    );

    let page: Value = client
        .get("deployments/?offset=120&limit=50&search=deployment-12")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalCount"], 10, "deployment-120 .. deployment-129");
    assert_eq!(page["count"], 0);
    assert!(page["next"].is_null());
    assert!(
        page["previous"]
            .as_str()
            .unwrap()
            .contains("search=deployment-12")
    );

    for bad in ["limit=0", "limit=abc", "offset=-1", "orderBy=color"] {
        let answer = client.get(&format!("deployments/?{bad}")).await;
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["message"], "Invalid field data", "{bad}");
    }
}

#[tokio::test]
async fn deployment_objects_have_the_real_shape() {
    let (_dr, client) = start(1).await;
    let id = object_id(0);
    let d: Value = client
        .get(&format!("deployments/{id}/"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["id"], id.as_str());
    assert_eq!(d["status"], "active");
    assert_eq!(d["label"], "deployment-000");
    for field in [
        "defaultPredictionServer",
        "model",
        "capabilities",
        "predictionUsage",
        "serviceHealth",
        "modelHealth",
        "accuracyHealth",
        "permissions",
        "owners",
        "governance",
        "tags",
    ] {
        assert!(!d[field].is_null(), "{field} missing");
    }
    assert!(d["model"]["targetType"].is_string());
    assert!(d["serviceHealth"]["startDate"].is_string());
    assert!(d["createdAt"].as_str().unwrap().ends_with('Z'));

    let missing = client.get("deployments/000000000000000000000000/").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body, json!({"message": "Not Found"}));
}

#[tokio::test]
async fn status_change_runs_as_a_job_then_redirects_to_the_deployment() {
    let (dr, client) = start(1).await;
    let id = object_id(0);
    let answer = client
        .patch_status(&id, json!({"status": "inactive"}))
        .await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let location = header(&answer, "location").unwrap();
    assert!(location.starts_with(&format!("{}/api/v2/status/", dr.url())));
    assert!(location.ends_with('/'));
    assert_eq!(dr.in_flight_status_jobs(), 1);
    assert_eq!(
        dr.deployment(&id).unwrap().status,
        DeploymentStatus::Active,
        "the status flips only when the job completes"
    );

    let (code, target, _body, seen) = client.wait_job(&location).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(
        target.unwrap(),
        format!("{}/api/v2/deployments/{id}/", dr.url())
    );
    assert_eq!(seen.first().map(String::as_str), Some("INITIALIZED"));
    assert!(seen.iter().any(|s| s == "RUNNING"), "{seen:?}");
    assert_eq!(
        dr.deployment(&id).unwrap().status,
        DeploymentStatus::Inactive
    );

    let history = dr.status_history();
    assert_eq!(history.len(), 1);
    let change = &history[0];
    assert_eq!(change.deployment_id, id);
    assert_eq!(change.from, DeploymentStatus::Active);
    assert_eq!(change.to, DeploymentStatus::Inactive);
    assert_eq!(change.outcome, StatusOutcome::Completed);
    assert!(location.contains(&change.job_id));
    assert!(change.completed_at.unwrap() >= change.requested_at);
    assert_eq!(dr.in_flight_status_jobs(), 0);
    assert_eq!(dr.max_in_flight_status_jobs(), 1);

    // And back.
    let answer = client.patch_status(&id, json!({"status": "active"})).await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let (code, _, _, _) = client.wait_job(&header(&answer, "location").unwrap()).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(dr.deployment(&id).unwrap().status, DeploymentStatus::Active);
}

#[tokio::test]
async fn injected_failure_ends_the_next_job_in_error_only() {
    let (dr, client) = start(1).await;
    let id = object_id(0);
    dr.fail_status_changes_of(&id);
    let answer = client
        .patch_status(&id, json!({"status": "inactive"}))
        .await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let (code, _, body, _) = client.wait_job(&header(&answer, "location").unwrap()).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["status"], "ERROR");
    assert!(!body["message"].as_str().unwrap().is_empty());
    assert_eq!(dr.deployment(&id).unwrap().status, DeploymentStatus::Active);
    assert!(matches!(
        dr.status_history()[0].outcome,
        StatusOutcome::Failed(_)
    ));

    let answer = client
        .patch_status(&id, json!({"status": "inactive"}))
        .await;
    let (code, _, _, _) = client.wait_job(&header(&answer, "location").unwrap()).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(
        dr.deployment(&id).unwrap().status,
        DeploymentStatus::Inactive
    );
    assert_eq!(dr.status_history().len(), 2);
}

#[tokio::test]
async fn bad_status_requests_are_refused_without_a_job() {
    let (dr, client) = start(1).await;
    let id = object_id(0);
    for body in [
        json!({}),
        json!({"status": "paused"}),
        json!({"status": 1}),
        json!([]),
    ] {
        let answer = client.patch_status(&id, body.clone()).await;
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let answer = client.patch_status(&id, json!({"status": "active"})).await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let message: Value = answer.json().await.unwrap();
    assert_eq!(message["message"], "Deployment is already active.");

    let answer = client
        .patch_status("000000000000000000000000", json!({"status": "inactive"}))
        .await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);

    let first = client
        .patch_status(&id, json!({"status": "inactive"}))
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let second = client
        .patch_status(&id, json!({"status": "inactive"}))
        .await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    client.wait_job(&header(&first, "location").unwrap()).await;
    assert_eq!(dr.status_history().len(), 1);

    let unknown = client
        .get("status/00000000-0000-0000-0000-000000000000/")
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tokens_are_checked_and_both_schemes_accepted() {
    let (dr, _admin) = start(3).await;
    for auth in [
        format!("Bearer {}", dr.admin_token()),
        format!("Token {}", dr.admin_token()),
        format!("bearer {}", dr.user_token()),
    ] {
        let answer = Client::with_auth(&dr, &auth).get("deployments/").await;
        assert_eq!(answer.status(), StatusCode::OK, "{auth}");
    }
    for auth in [
        "Bearer wrong".to_string(),
        format!("Basic {}", dr.admin_token()),
        dr.admin_token().to_string(),
        String::new(),
    ] {
        let answer = Client::with_auth(&dr, &auth).get("version/").await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body, json!({"message": "Invalid Token"}));
    }
    let schemes: Vec<Option<String>> = dr
        .requests()
        .entries()
        .into_iter()
        .map(|r| r.auth_scheme)
        .collect();
    assert!(schemes.contains(&Some("Token".to_string())));
    assert!(schemes.contains(&Some("Bearer".to_string())));
}

#[tokio::test]
async fn user_without_the_admin_role_may_read_but_not_change() {
    let (dr, _admin) = start(1).await;
    let user = Client::new(&dr, dr.user_token());
    let id = object_id(0);
    let d: Value = user
        .get(&format!("deployments/{id}/"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        d["permissions"],
        json!(["CAN_MAKE_PREDICTIONS", "CAN_VIEW"])
    );
    let answer = user.patch_status(&id, json!({"status": "inactive"})).await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let body: Value = answer.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("permission"));
    assert!(dr.status_history().is_empty());
    assert_eq!(dr.deployment(&id).unwrap().status, DeploymentStatus::Active);
}

#[tokio::test]
async fn injected_429_carries_retry_after_and_a_json_body() {
    let (dr, client) = start(1).await;
    dr.faults().add(FaultRule::new(
        "/api/v2/deployments/",
        Fault::TooManyRequests {
            retry_after_secs: 3,
        },
        Some(1),
    ));
    let answer = client.get("deployments/").await;
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&answer, "retry-after").as_deref(), Some("3"));
    let body: Value = answer.json().await.unwrap();
    assert!(body["message"].is_string());
    assert_eq!(client.get("deployments/").await.status(), StatusCode::OK);
    assert_eq!(dr.requests().count(|r| r.status == 429), 1);
}

#[tokio::test]
async fn concurrent_jobs_are_counted() {
    let options = FakeDataRobotOptions {
        status_change_duration: Duration::from_secs(2),
        ..FakeDataRobotOptions::default()
    };
    let (dr, client) = start_with(options, 6).await;
    let targets: Vec<String> = (0..6)
        .map(object_id)
        .filter(|id| dr.deployment(id).unwrap().status == DeploymentStatus::Active)
        .collect();
    assert_eq!(targets.len(), 5);
    // All at once, as a client with a concurrency of 5 would.
    let answers = futures::future::join_all(
        targets
            .iter()
            .map(|id| client.patch_status(id, json!({"status": "inactive"}))),
    )
    .await;
    let mut locations = Vec::new();
    for answer in &answers {
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        locations.push(header(answer, "location").unwrap());
    }
    for location in &locations {
        let (code, _, _, _) = client.wait_job(location).await;
        assert_eq!(code, StatusCode::SEE_OTHER);
    }
    assert_eq!(dr.max_in_flight_status_jobs(), 5);
    assert_eq!(dr.in_flight_status_jobs(), 0);
    let history = dr.status_history();
    assert_eq!(history.len(), 5);
    let mut changed: Vec<&str> = history.iter().map(|c| c.deployment_id.as_str()).collect();
    changed.sort();
    changed.dedup();
    assert_eq!(changed.len(), 5, "no deployment changed twice");
    assert!(
        dr.deployments()
            .iter()
            .all(|d| d.status == DeploymentStatus::Inactive)
    );
}

#[tokio::test]
async fn paths_behave_like_the_real_routing() {
    let (dr, client) = start(1).await;
    let answer = client.get("deployments?limit=5").await;
    assert_eq!(answer.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        header(&answer, "location").unwrap(),
        format!("{}/api/v2/deployments/?limit=5", dr.url())
    );
    // The app URL is not the API: `https://host/version/` is not found.
    let answer = client.get(&format!("{}/version/", dr.url())).await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&answer, "content-type").unwrap(), "application/json");
    let answer = client.get("projects/").await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let answer = client
        .http
        .delete(client.url("deployments/"))
        .header("Authorization", &client.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED);
}
