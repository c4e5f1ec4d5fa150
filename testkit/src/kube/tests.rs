//! The fake API server's HTTP semantics, request by request through its router (no sockets):
//! what each verb answers, compared with what the real kube-apiserver answers.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use http::{Method, Request, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::access::DenyRule;
use super::api::Cluster;
use super::routes::{RouterState, router};
use super::{FakeKubeOptions, new_cluster};

mod crd_schema;

const LRS: &str = "/apis/lrs.datarobot.com/v1/namespaces/dr/lrs";

struct Server {
    cluster: Arc<Cluster>,
    router: Router,
}

fn server() -> Server {
    let cluster = new_cluster(&FakeKubeOptions {
        token: "secret".into(),
        ..Default::default()
    });
    cluster.create_namespace("dr");
    let router = router(RouterState {
        cluster: cluster.clone(),
        address: Arc::new(OnceLock::new()),
    });
    Server { cluster, router }
}

fn lrs(name: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "lrs.datarobot.com/v1",
        "kind": "LongRunningService",
        "metadata": {"name": name, "labels": {"datarobot-lrs-type": kind}},
        "spec": {"image": "a", "replicas": 1},
    })
}

impl Server {
    async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        uri: &str,
        content_type: &str,
        body: String,
    ) -> (u16, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::USER_AGENT, "unit-test/1.0");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let code = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (code, value)
    }

    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.call_as(Some("secret"), method, uri, "application/json", body)
            .await
    }

    async fn patch(&self, uri: &str, content_type: &str, body: &str) -> (u16, Value) {
        self.call_as(
            Some("secret"),
            Method::PATCH,
            uri,
            content_type,
            body.to_string(),
        )
        .await
    }

    async fn create(&self, object: Value) -> Value {
        let (code, created) = self.call(Method::POST, LRS, Some(object)).await;
        assert_eq!(code, 201, "{created}");
        created
    }
}

fn assert_status(answer: &(u16, Value), code: u16, reason: Option<&str>, message: &str) {
    let (actual, status) = answer;
    assert_eq!(*actual, code, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], code);
    assert_eq!(
        status.get("reason").and_then(Value::as_str),
        reason,
        "{status}"
    );
    assert_eq!(status["message"], message);
}

#[tokio::test]
async fn create_is_strict_like_the_real_server() {
    let server = server();
    let created = server.create(lrs("a", "deployment")).await;
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created["metadata"]["uid"].is_string());
    assert_eq!(
        created["metadata"]["managedFields"][0]["manager"],
        "unit-test"
    );

    let again = server
        .call(Method::POST, LRS, Some(lrs("a", "deployment")))
        .await;
    assert_status(
        &again,
        409,
        Some("AlreadyExists"),
        "lrs.lrs.datarobot.com \"a\" already exists",
    );
    assert_eq!(
        again.1["details"],
        json!({"name": "a", "group": "lrs.datarobot.com", "kind": "lrs"})
    );

    let mut with_version = lrs("b", "deployment");
    with_version["metadata"]["resourceVersion"] = json!("12");
    let answer = server.call(Method::POST, LRS, Some(with_version)).await;
    assert_status(
        &answer,
        500,
        None,
        "resourceVersion should not be set on objects to be created",
    );

    let answer = server
        .call(
            Method::POST,
            "/apis/lrs.datarobot.com/v1/namespaces/nope/lrs",
            Some(lrs("c", "deployment")),
        )
        .await;
    assert_status(
        &answer,
        404,
        Some("NotFound"),
        "namespaces \"nope\" not found",
    );

    let mut elsewhere = lrs("d", "deployment");
    elsewhere["metadata"]["namespace"] = json!("other");
    let answer = server.call(Method::POST, LRS, Some(elsewhere)).await;
    assert_status(
        &answer,
        400,
        Some("BadRequest"),
        "the namespace of the provided object does not match the namespace sent on the request",
    );

    let mut nameless = lrs("", "deployment");
    nameless["metadata"].as_object_mut().unwrap().remove("name");
    let answer = server.call(Method::POST, LRS, Some(nameless.clone())).await;
    assert_status(
        &answer,
        422,
        Some("Invalid"),
        "LongRunningService.lrs.datarobot.com \"\" is invalid: metadata.name: Required value: name or generateName is required",
    );
    nameless["metadata"]["generateName"] = json!("gen-");
    let generated = server.create(nameless).await;
    let name = generated["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let answer = server
        .call(Method::POST, LRS, Some(lrs("Bad_Name", "x")))
        .await;
    assert_eq!(answer.0, 422);
}

#[tokio::test]
async fn names_of_253_characters_are_valid_and_254_are_not_like_the_real_server() {
    let server = server();
    // `IsDNS1123Subdomain`: 253 characters at most; its parts have no limit of their own.
    let undotted = "a".repeat(253);
    server.create(lrs(&undotted, "deployment")).await;
    let dotted = format!(
        "{}.{}.{}.{}",
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(63),
        "e".repeat(61)
    );
    server.create(lrs(&dotted, "deployment")).await;
    // Created by server-side apply too.
    let applied = format!("{}.x", "f".repeat(251));
    let (code, created) = server
        .patch(
            &format!("{LRS}/{applied}?fieldManager=test"),
            "application/apply-patch+yaml",
            &lrs(&applied, "deployment").to_string(),
        )
        .await;
    assert_eq!(code, 201, "{created}");

    let too_long = "g".repeat(254);
    let answer = server
        .call(Method::POST, LRS, Some(lrs(&too_long, "deployment")))
        .await;
    assert_status(
        &answer,
        422,
        Some("Invalid"),
        &format!(
            "LongRunningService.lrs.datarobot.com \"{too_long}\" is invalid: metadata.name: Invalid value: \"{too_long}\": must be no more than 253 characters"
        ),
    );
    let answer = server
        .patch(
            &format!("{LRS}/{too_long}?fieldManager=test"),
            "application/apply-patch+yaml",
            &lrs(&too_long, "deployment").to_string(),
        )
        .await;
    assert_eq!(answer.0, 422, "{}", answer.1);
    let both = format!("{}_", "h".repeat(253));
    let (code, status) = server
        .call(Method::POST, LRS, Some(lrs(&both, "deployment")))
        .await;
    assert_eq!(code, 422);
    assert_eq!(status["details"]["causes"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn numbers_are_kept_as_the_real_server_keeps_them() {
    let server = server();
    let body = r#"{"apiVersion": "lrs.datarobot.com/v1", "kind": "LongRunningService",
        "metadata": {"name": "n"}, "spec": {"f": 0.9215686321258545, "g": 10587.436593658975,
        "h": 123456789.12345679, "i": 9007199254740993, "min": -9223372036854775808,
        "max": 9223372036854775807, "one": 1.0, "zero": -0.0, "tiny": 5e-324,
        "u": 18446744073709551615}}"#;
    let (code, created) = server
        .call_as(
            Some("secret"),
            Method::POST,
            LRS,
            "application/json",
            body.into(),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let (_, read) = server.call(Method::GET, &format!("{LRS}/n"), None).await;
    for answer in [&created, &read] {
        let spec = serde_json::to_string(&answer["spec"]).unwrap();
        assert_eq!(
            spec,
            r#"{"f":0.9215686321258545,"g":10587.436593658975,"h":123456789.12345679,"i":9007199254740993,"min":-9223372036854775808,"max":9223372036854775807,"one":1,"zero":0,"tiny":5e-324,"u":1.8446744073709552e+19}"#
        );
    }
    // A float that only reads like the stored integer changes nothing (no new resourceVersion).
    let version = read["metadata"]["resourceVersion"].clone();
    let (code, patched) = server
        .patch(
            &format!("{LRS}/n"),
            "application/merge-patch+json",
            r#"{"spec": {"one": 1.0, "zero": 0}}"#,
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["metadata"]["resourceVersion"], version);
}

#[tokio::test]
async fn status_is_ignored_on_the_main_resource_and_generation_follows_the_spec() {
    let server = server();
    let mut object = lrs("a", "deployment");
    object["status"] = json!({"phase": "Ready"});
    let created = server.create(object).await;
    assert!(created.get("status").is_none());

    let mut update = created.clone();
    update["metadata"]["labels"]["extra"] = json!("yes");
    let (code, relabelled) = server
        .call(Method::PUT, &format!("{LRS}/a"), Some(update))
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        relabelled["metadata"]["generation"], 1,
        "labels are not spec"
    );

    let mut update = relabelled.clone();
    update["spec"]["replicas"] = json!(2);
    update["status"] = json!({"phase": "Hacked"});
    let (_, respecced) = server
        .call(Method::PUT, &format!("{LRS}/a"), Some(update))
        .await;
    assert_eq!(respecced["metadata"]["generation"], 2);
    assert!(respecced.get("status").is_none());

    let (code, with_status) = server
        .call(Method::PUT, &format!("{LRS}/a/status"), Some(json!({"apiVersion": "lrs.datarobot.com/v1", "kind": "LongRunningService", "metadata": {"name": "a"}, "status": {"phase": "Ready"}})))
        .await;
    assert_eq!(code, 200, "{with_status}");
    assert_eq!(with_status["status"]["phase"], "Ready");
    assert_eq!(with_status["metadata"]["generation"], 2);
}

#[tokio::test]
async fn updates_need_the_current_resource_version() {
    let server = server();
    let created = server.create(lrs("a", "deployment")).await;
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let answer = server
        .call(Method::PUT, &format!("{LRS}/a"), Some(stale))
        .await;
    assert_status(
        &answer,
        409,
        Some("Conflict"),
        "Operation cannot be fulfilled on lrs.lrs.datarobot.com \"a\": the object has been modified; please apply your changes to the latest version and try again",
    );

    let mut unversioned = created.clone();
    unversioned["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let answer = server
        .call(Method::PUT, &format!("{LRS}/a"), Some(unversioned))
        .await;
    assert_status(
        &answer,
        422,
        Some("Invalid"),
        "lrs.lrs.datarobot.com \"a\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
    );

    // Built-ins allow unconditional updates.
    server.cluster.insert(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "dr"}, "spec": {"containers": []}})).unwrap();
    let (code, _) = server
        .call(
            Method::PUT,
            "/api/v1/namespaces/dr/pods/p",
            Some(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})),
        )
        .await;
    assert_eq!(code, 200);

    // An unchanged object is not written again.
    let (_, current) = server.call(Method::GET, &format!("{LRS}/a"), None).await;
    let (_, same) = server
        .call(Method::PUT, &format!("{LRS}/a"), Some(current.clone()))
        .await;
    assert_eq!(
        same["metadata"]["resourceVersion"],
        current["metadata"]["resourceVersion"]
    );
}

#[tokio::test]
async fn patches_by_content_type() {
    let server = server();
    server.create(lrs("a", "deployment")).await;
    let (code, merged) = server
        .patch(
            &format!("{LRS}/a"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":4,"image":null}}"#,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(merged["spec"], json!({"replicas": 4}));
    assert_eq!(merged["metadata"]["generation"], 2);

    let answer = server
        .patch(
            &format!("{LRS}/a"),
            "application/strategic-merge-patch+json",
            r#"{"spec":{}}"#,
        )
        .await;
    assert_status(
        &answer,
        415,
        Some("UnsupportedMediaType"),
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    );

    let (code, patched) = server
        .patch(
            &format!("{LRS}/a"),
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(patched["spec"]["replicas"], 5);

    let answer = server
        .patch(
            &format!("{LRS}/missing"),
            "application/merge-patch+json",
            "{}",
        )
        .await;
    assert_status(
        &answer,
        404,
        Some("NotFound"),
        "lrs.lrs.datarobot.com \"missing\" not found",
    );
}

#[tokio::test]
async fn server_side_apply_creates_updates_conflicts_and_forces() {
    let server = server();
    let uri = format!("{LRS}/a");
    let config = serde_yaml::to_string(&lrs("a", "deployment")).unwrap();
    let answer = server
        .patch(&uri, "application/apply-patch+yaml", &config)
        .await;
    assert_status(
        &answer,
        422,
        Some("Invalid"),
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
    );
    let (code, created) = server
        .patch(
            &format!("{uri}?fieldManager=backup"),
            "application/apply-patch+yaml",
            &config,
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Apply"
    );

    let (code, _) = server
        .patch(
            &uri,
            "application/merge-patch+json",
            r#"{"spec":{"image":"edited"}}"#,
        )
        .await;
    assert_eq!(code, 200);
    let answer = server
        .patch(
            &format!("{uri}?fieldManager=backup"),
            "application/apply-patch+yaml",
            &config,
        )
        .await;
    assert_eq!(answer.0, 409, "{}", answer.1);
    assert_eq!(answer.1["reason"], "Conflict");
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .starts_with("Apply failed with 1 conflict: conflict with \"unit-test\" using lrs.datarobot.com/v1 at "),
        "{}",
        answer.1
    );
    assert_eq!(answer.1["details"]["causes"][0]["field"], ".spec.image");

    let (code, forced) = server
        .patch(
            &format!("{uri}?fieldManager=backup&force=true"),
            "application/apply-patch+yaml",
            &config,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(forced["spec"]["image"], "a");

    let answer = server
        .patch(
            &format!("{uri}?force=true"),
            "application/merge-patch+json",
            "{}",
        )
        .await;
    assert_eq!(answer.0, 422);
}

#[tokio::test]
async fn dry_run_validates_and_persists_nothing() {
    let server = server();
    let (code, would_be) = server
        .call(
            Method::POST,
            &format!("{LRS}?dryRun=All"),
            Some(lrs("a", "deployment")),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(would_be["metadata"]["name"], "a");
    assert!(
        server
            .cluster
            .list(
                server.cluster.catalog.by_plural("lrs").unwrap(),
                Some("dr"),
                &Default::default()
            )
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let answer = server
        .call(
            Method::POST,
            &format!("{LRS}?dryRun=foo"),
            Some(lrs("a", "deployment")),
        )
        .await;
    assert_status(
        &answer,
        422,
        Some("Invalid"),
        "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"foo\"}: supported values: \"All\"",
    );

    let created = server.create(lrs("b", "deployment")).await;
    let (code, _) = server
        .call(Method::DELETE, &format!("{LRS}/b?dryRun=All"), None)
        .await;
    assert_eq!(code, 200);
    let (code, _) = server
        .patch(
            &format!("{LRS}/b?dryRun=All"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":9}}"#,
        )
        .await;
    assert_eq!(code, 200);
    let (_, still) = server.call(Method::GET, &format!("{LRS}/b"), None).await;
    assert_eq!(still, created);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let server = server();
    let mut object = lrs("a", "deployment");
    object["metadata"]["finalizers"] = json!(["lrs.datarobot.com/cleanup"]);
    server.create(object).await;
    let (code, marked) = server
        .call(
            Method::DELETE,
            &format!("{LRS}/a"),
            Some(json!({"propagationPolicy": "Foreground"})),
        )
        .await;
    assert_eq!(code, 200);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(marked["metadata"]["generation"], 2);

    let (code, _) = server.call(Method::GET, &format!("{LRS}/a"), None).await;
    assert_eq!(code, 200, "still there while the finalizer is");
    let (code, _) = server
        .patch(
            &format!("{LRS}/a"),
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = server.call(Method::GET, &format!("{LRS}/a"), None).await;
    assert_eq!(code, 404);

    let answer = server
        .call(
            Method::DELETE,
            &format!("{LRS}/a?propagationPolicy=Sideways"),
            None,
        )
        .await;
    assert_eq!(answer.0, 422);
}

#[tokio::test]
async fn creates_in_a_terminating_namespace_are_forbidden_with_the_namespace_terminating_cause() {
    let server = server();
    let mut held = lrs("held", "deployment");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    server.create(held).await;
    let (code, namespace) = server
        .call(Method::DELETE, "/api/v1/namespaces/dr", None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(namespace["status"]["phase"], "Terminating");

    let message = "lrs.lrs.datarobot.com \"new\" is forbidden: unable to create new content in \
                   namespace dr because it is being terminated";
    let expected_details = json!({
        "name": "new",
        "group": "lrs.datarobot.com",
        "kind": "lrs",
        "causes": [{
            "reason": "NamespaceTerminating",
            "message": "namespace dr is being terminated",
            "field": "metadata.namespace",
        }],
    });
    let created = server
        .call(Method::POST, LRS, Some(lrs("new", "deployment")))
        .await;
    assert_status(&created, 403, Some("Forbidden"), message);
    assert_eq!(created.1["details"], expected_details);
    let applied = server
        .patch(
            &format!("{LRS}/new?fieldManager=test"),
            "application/apply-patch+yaml",
            &lrs("new", "deployment").to_string(),
        )
        .await;
    assert_status(&applied, 403, Some("Forbidden"), message);
    assert_eq!(applied.1["details"], expected_details);

    // Objects that exist may still change (the finalizer's owner must be able to let go).
    let (code, _) = server
        .patch(
            &format!("{LRS}/held"),
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = server
        .call(Method::GET, "/api/v1/namespaces/dr", None)
        .await;
    assert_eq!(code, 404, "the namespace goes once it is empty");
}

#[tokio::test]
async fn deletecollection_by_label_answers_the_deleted_list() {
    let server = server();
    for (name, kind) in [
        ("s1", "spark_app"),
        ("s2", "spark_app"),
        ("m1", "deployment"),
    ] {
        server.create(lrs(name, kind)).await;
    }
    let (code, deleted) = server
        .call(
            Method::DELETE,
            &format!("{LRS}?labelSelector=datarobot-lrs-type%3Dspark_app"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(deleted["kind"], "LongRunningServiceList");
    assert_eq!(deleted["items"].as_array().unwrap().len(), 2);
    let (_, left) = server.call(Method::GET, LRS, None).await;
    assert_eq!(left["items"][0]["metadata"]["name"], "m1");
    assert_eq!(left["items"].as_array().unwrap().len(), 1);

    let answer = server
        .call(Method::GET, &format!("{LRS}?labelSelector=a%20b"), None)
        .await;
    assert_eq!(answer.0, 400);
    assert_eq!(answer.1["reason"], "BadRequest");
}

#[tokio::test]
async fn deleting_a_deployment_collects_its_pods_and_answers_a_status() {
    let server = server();
    let deployment = server
        .cluster
        .insert(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "dr"}, "spec": {}}))
        .unwrap();
    server.cluster.insert(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "dr",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": deployment["metadata"]["uid"]}]}})).unwrap();
    let (code, status) = server
        .call(
            Method::DELETE,
            "/apis/apps/v1/namespaces/dr/deployments/web",
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(status["status"], "Success");
    assert_eq!(status["details"]["kind"], "deployments");
    let (_, pods) = server
        .call(Method::GET, "/api/v1/namespaces/dr/pods", None)
        .await;
    assert!(pods["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn pages_continue_and_expire() {
    let server = server();
    for i in 0..5 {
        server.create(lrs(&format!("m{i}"), "deployment")).await;
    }
    let (_, first) = server
        .call(Method::GET, &format!("{LRS}?limit=2"), None)
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["metadata"]["remainingItemCount"], 3);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // Writes after the first page do not show up in the rest of a consistent list.
    server.create(lrs("m9", "deployment")).await;
    let (_, second) = server
        .call(
            Method::GET,
            &format!("{LRS}?limit=2&continue={token}"),
            None,
        )
        .await;
    let (_, third) = server
        .call(
            Method::GET,
            &format!(
                "{LRS}?limit=2&continue={}",
                second["metadata"]["continue"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(third["items"].as_array().unwrap().len(), 1);
    assert!(third["metadata"].get("continue").is_none());
    assert_eq!(
        third["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );

    server.cluster.lock().compact();
    let answer = server
        .call(
            Method::GET,
            &format!("{LRS}?limit=2&continue={token}"),
            None,
        )
        .await;
    assert_eq!(answer.0, 410);
    assert_eq!(answer.1["reason"], "Expired");
    assert!(
        answer.1["message"]
            .as_str()
            .unwrap()
            .starts_with("The provided continue parameter is too old")
    );
    let fresh = answer.1["metadata"]["continue"].as_str().unwrap();
    let (code, rest) = server
        .call(
            Method::GET,
            &format!("{LRS}?limit=10&continue={fresh}"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        rest["items"].as_array().unwrap().len(),
        4,
        "m2..m4 and m9 after the first page"
    );

    *server.cluster.max_page_size.lock().unwrap() = Some(1);
    let (_, capped) = server.call(Method::GET, LRS, None).await;
    assert_eq!(capped["items"].as_array().unwrap().len(), 1);
}

/// Reads a list to its end, `limit` at a time: the items' `namespace/name`, and each page's
/// `remainingItemCount`.
async fn read_pages(server: &Server, collection: &str, query: &str) -> (Vec<String>, Vec<Value>) {
    let (mut names, mut remaining) = (Vec::new(), Vec::new());
    let mut token: Option<String> = None;
    loop {
        let uri = match &token {
            Some(token) => format!("{collection}?{query}&continue={token}"),
            None => format!("{collection}?{query}"),
        };
        let (code, page) = server.call(Method::GET, &uri, None).await;
        assert_eq!(code, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            let metadata = &item["metadata"];
            names.push(format!(
                "{}/{}",
                metadata["namespace"].as_str().unwrap(),
                metadata["name"].as_str().unwrap()
            ));
        }
        remaining.push(page["metadata"]["remainingItemCount"].clone());
        match page["metadata"]["continue"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => return (names, remaining),
        }
    }
}

#[tokio::test]
async fn pages_start_where_the_last_one_ended_in_every_scope() {
    let server = server();
    // Namespaces whose names sort around each other: `a` < `a-b` < `b` (and `dr`).
    for namespace in ["a", "a-b", "b"] {
        server.cluster.create_namespace(namespace);
        for (name, kind) in [
            ("m1", "deployment"),
            ("m2", "spark_app"),
            ("m3", "deployment"),
        ] {
            let collection = format!("/apis/lrs.datarobot.com/v1/namespaces/{namespace}/lrs");
            let (code, _) = server
                .call(Method::POST, &collection, Some(lrs(name, kind)))
                .await;
            assert_eq!(code, 201);
        }
    }
    let all = "/apis/lrs.datarobot.com/v1/lrs";
    let (names, remaining) = read_pages(&server, all, "limit=2").await;
    assert_eq!(
        names,
        [
            "a/m1", "a/m2", "a/m3", "a-b/m1", "a-b/m2", "a-b/m3", "b/m1", "b/m2", "b/m3"
        ]
    );
    // Unfiltered, each page counts what is left after it, as etcd's range count does.
    assert_eq!(
        remaining,
        [json!(7), json!(5), json!(3), json!(1), Value::Null]
    );

    let one = "/apis/lrs.datarobot.com/v1/namespaces/a-b/lrs";
    let (names, remaining) = read_pages(&server, one, "limit=2").await;
    assert_eq!(names, ["a-b/m1", "a-b/m2", "a-b/m3"]);
    assert_eq!(remaining, [json!(1), Value::Null]);

    // With a selector the real server gives no count.
    let selected = "limit=2&labelSelector=datarobot-lrs-type%3Ddeployment";
    let (names, remaining) = read_pages(&server, all, selected).await;
    assert_eq!(names, ["a/m1", "a/m3", "a-b/m1", "a-b/m3", "b/m1", "b/m3"]);
    assert!(remaining.iter().all(Value::is_null), "{remaining:?}");
}

#[tokio::test]
async fn tokens_and_rules_guard_every_request() {
    let server = server();
    let answer = server
        .call_as(None, Method::GET, LRS, "application/json", String::new())
        .await;
    assert_status(&answer, 401, Some("Unauthorized"), "Unauthorized");
    let answer = server
        .call_as(
            Some("wrong"),
            Method::GET,
            "/api",
            "application/json",
            String::new(),
        )
        .await;
    assert_eq!(answer.0, 401);

    server
        .cluster
        .access
        .deny(DenyRule::new("delete", "lrs.datarobot.com", "lrs"));
    server.create(lrs("a", "deployment")).await;
    let answer = server.call(Method::DELETE, &format!("{LRS}/a"), None).await;
    assert_status(
        &answer,
        403,
        Some("Forbidden"),
        "lrs.lrs.datarobot.com \"a\" is forbidden: User \"sandbox-admin\" cannot delete resource \"lrs\" in API group \"lrs.datarobot.com\" in the namespace \"dr\"",
    );
}

#[tokio::test]
async fn a_cluster_without_the_crd_does_not_serve_it() {
    let cluster = new_cluster(&FakeKubeOptions {
        serve_lrs: false,
        token: "secret".into(),
        ..Default::default()
    });
    let server = Server {
        router: router(RouterState {
            cluster: cluster.clone(),
            address: Arc::new(OnceLock::new()),
        }),
        cluster,
    };
    let answer = server.call(Method::GET, LRS, None).await;
    assert_status(
        &answer,
        404,
        Some("NotFound"),
        "the server could not find the requested resource",
    );
    let (_, groups) = server.call(Method::GET, "/apis", None).await;
    assert!(!groups.to_string().contains("lrs.datarobot.com"));
    let answer = server.call(Method::GET, CRD, None).await;
    assert_status(
        &answer,
        404,
        Some("NotFound"),
        "customresourcedefinitions.apiextensions.k8s.io \"lrs.lrs.datarobot.com\" not found",
    );
}

/// The LRS's CustomResourceDefinition.
const CRD: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/lrs.lrs.datarobot.com";

#[tokio::test]
async fn the_lrs_definition_is_served_at_the_version_the_lrs_is() {
    let cluster = new_cluster(&FakeKubeOptions {
        lrs_version: "v1beta1".into(),
        token: "secret".into(),
        ..Default::default()
    });
    let server = Server {
        router: router(RouterState {
            cluster: cluster.clone(),
            address: Arc::new(OnceLock::new()),
        }),
        cluster,
    };
    let (status, crd) = server.call(Method::GET, CRD, None).await;
    assert_eq!(status, 200, "{crd}");
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["spec"]["group"], "lrs.datarobot.com");
    assert_eq!(crd["spec"]["names"]["plural"], "lrs");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["versions"][0]["name"], "v1beta1");
    assert!(crd["metadata"]["uid"].is_string(), "stored like any object");
    assert!(
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].is_object()
    );
}

#[tokio::test]
async fn watch_streams_deletions() {
    let server = server();
    let created = server.create(lrs("a", "deployment")).await;
    let version = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let request = Request::builder()
        .uri(format!("{LRS}?watch=true&fieldSelector=metadata.name%3Da&resourceVersion={version}&timeoutSeconds=5"))
        .header(header::AUTHORIZATION, "Bearer secret")
        .body(Body::empty())
        .unwrap();
    let response = server.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let (code, _) = server.call(Method::DELETE, &format!("{LRS}/a"), None).await;
    assert_eq!(code, 200);
    let mut body = response.into_body().into_data_stream();
    use futures::StreamExt;
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
        .await
        .expect("an event in time")
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_slice(&chunk).unwrap();
    assert_eq!(event["type"], "DELETED");
    assert_eq!(event["object"]["metadata"]["name"], "a");
}

/// The client library of the plugin (kube-rs) over TLS: discovery, paginated lists, apply.
#[tokio::test]
async fn kube_rs_discovers_lists_in_pages_and_applies() {
    use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};
    use kube::discovery::{Discovery, Scope};

    crate::tls::install_crypto_provider();
    let kube = super::FakeKube::start(FakeKubeOptions {
        max_page_size: Some(2),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..5 {
        let mut object = lrs(&format!("m{i}"), "deployment");
        object["metadata"]["namespace"] = json!(if i % 2 == 0 { "a" } else { "b" });
        kube.insert(object).unwrap();
    }
    let kubeconfig = Kubeconfig::from_yaml(&kube.kubeconfig_yaml("fake", None)).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let discovery = Discovery::new(client.clone())
        .filter(&["lrs.datarobot.com"])
        .run()
        .await
        .unwrap();
    let (resource, capabilities) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(r, _)| r.plural == "lrs")
        .expect("the LRS is discovered");
    assert_eq!(resource.kind, "LongRunningService");
    assert_eq!(capabilities.scope, Scope::Namespaced);

    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let mut names = Vec::new();
    let mut params = ListParams::default().labels("datarobot-lrs-type=deployment");
    loop {
        let page = all.list(&params).await.unwrap();
        names.extend(page.items.iter().map(|o| o.metadata.name.clone().unwrap()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(
        names,
        vec!["m0", "m2", "m4", "m1", "m3"],
        "namespace a first, then b"
    );

    let in_a: Api<DynamicObject> = Api::namespaced_with(client, "a", &resource);
    let mut restored = lrs("restored", "deployment");
    restored["metadata"]["namespace"] = json!("a");
    let applied = in_a
        .patch(
            "restored",
            &PatchParams::apply("kubectl-mlbackup"),
            &Patch::Apply(&restored),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.generation, Some(1));
    let error = in_a
        .create(
            &Default::default(),
            &serde_json::from_value::<DynamicObject>(applied_with_version(&restored)).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, kube::Error::Api(ref s) if s.code == 500),
        "{error:?}"
    );
}

fn applied_with_version(object: &Value) -> Value {
    let mut object = object.clone();
    object["metadata"]["name"] = json!("other");
    object["metadata"]["resourceVersion"] = json!("5");
    object
}

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/dr/deployments";
const STATEFULSETS: &str = "/apis/apps/v1/namespaces/dr/statefulsets";

impl Server {
    /// Seeds a workload with its running pods, as `FakeKube::add_app_workload` does.
    fn seed(&self, workload: &super::AppWorkload) -> Value {
        self.cluster.insert(workload.object()).unwrap();
        let key = super::store::key_of(Some("dr"), &workload.name);
        super::controller::reconcile(&self.cluster, workload.plural(), &key);
        self.cluster
            .get(
                self.cluster.catalog.by_plural(workload.plural()).unwrap(),
                Some("dr"),
                &workload.name,
            )
            .unwrap()
    }

    /// Names of the pods of `owner` (a name prefix), live and terminating.
    fn pods_of(&self, owner: &str) -> (Vec<String>, Vec<String>) {
        let store = self.cluster.lock();
        let mut live = Vec::new();
        let mut terminating = Vec::new();
        for (key, pod) in store.objects("pods") {
            if key.1.starts_with(&format!("{owner}-")) {
                if pod["metadata"]["deletionTimestamp"].is_null() {
                    live.push(key.1.clone());
                } else {
                    terminating.push(key.1.clone());
                }
            }
        }
        (live, terminating)
    }
}

#[tokio::test]
async fn the_scale_subresource_reads_and_writes_the_workload_replicas() {
    let server = server();
    let web = server.seed(&super::AppWorkload::deployment("dr", "web", 3));
    let scale_url = format!("{DEPLOYMENTS}/web/scale");
    let (code, scale) = server.call(Method::GET, &scale_url, None).await;
    assert_eq!(code, 200, "{scale}");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["replicas"], 3);
    assert_eq!(
        scale["status"]["selector"],
        "app=web,app.kubernetes.io/name=web"
    );
    assert_eq!(
        scale["metadata"]["resourceVersion"],
        web["metadata"]["resourceVersion"]
    );

    // PUT with a stale resourceVersion conflicts; with the current one it scales.
    let mut stale = scale.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["spec"]["replicas"] = json!(1);
    let answer = server.call(Method::PUT, &scale_url, Some(stale)).await;
    assert_eq!(answer.0, 409, "{}", answer.1);
    let mut wanted = scale.clone();
    wanted["spec"]["replicas"] = json!(1);
    let (code, scaled) = server.call(Method::PUT, &scale_url, Some(wanted)).await;
    assert_eq!(code, 200, "{scaled}");
    assert_eq!(scaled["spec"]["replicas"], 1);
    let (_, web) = server
        .call(Method::GET, &format!("{DEPLOYMENTS}/web"), None)
        .await;
    assert_eq!(web["spec"]["replicas"], 1);
    assert_eq!(web["metadata"]["generation"], 2, "scaling changes the spec");

    // Subresources are patched as objects are: a JSON patch applies, one that cannot is a 422.
    let (code, patched) = server
        .patch(
            &scale_url,
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["replicas"], 2);
    let (code, refused) = server
        .patch(
            &scale_url,
            "application/json-patch+json",
            r#"[{"op":"remove","path":"/spec/nothing"}]"#,
        )
        .await;
    assert_eq!(code, 422, "{refused}");

    // A merge patch (what `kubectl scale` sends), a dry run, and invalid values.
    let (code, patched) = server
        .patch(
            &scale_url,
            "application/merge-patch+json",
            r#"{"spec":{"replicas":0}}"#,
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    let (code, _) = server
        .patch(
            &format!("{scale_url}?dryRun=All"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":5}}"#,
        )
        .await;
    assert_eq!(code, 200);
    let (_, web) = server
        .call(Method::GET, &format!("{DEPLOYMENTS}/web"), None)
        .await;
    assert_eq!(web["spec"]["replicas"], 0, "the dry run stored nothing");
    let answer = server
        .patch(
            &scale_url,
            "application/merge-patch+json",
            r#"{"spec":{"replicas":-1}}"#,
        )
        .await;
    assert_eq!(answer.0, 422, "{}", answer.1);
    let answer = server
        .patch(&scale_url, "application/apply-patch+yaml", "spec: {}")
        .await;
    assert_eq!(answer.0, 415, "{}", answer.1);
    let answer = server
        .call(
            Method::GET,
            "/apis/apps/v1/namespaces/dr/deployments/nope/scale",
            None,
        )
        .await;
    assert_eq!(answer.0, 404);

    // StatefulSets have it too; the main resource refuses negative replicas as well.
    server.seed(&super::AppWorkload::stateful_set("dr", "db", 2));
    let (code, scale) = server
        .call(Method::GET, &format!("{STATEFULSETS}/db/scale"), None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(scale["spec"]["replicas"], 2);
    let answer = server
        .patch(
            &format!("{STATEFULSETS}/db"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":-2}}"#,
        )
        .await;
    assert_eq!(answer.0, 422, "{}", answer.1);
}

#[tokio::test]
async fn a_merge_patch_with_a_stale_resource_version_conflicts() {
    let server = server();
    let web = server.seed(&super::AppWorkload::deployment("dr", "web", 1));
    let version = web["metadata"]["resourceVersion"].as_str().unwrap();
    let body = |rv: &str| {
        json!({"metadata": {"resourceVersion": rv, "annotations": {"a": "1"}}, "spec": {"replicas": 0}})
            .to_string()
    };
    let url = format!("{DEPLOYMENTS}/web");
    let (code, patched) = server
        .patch(&url, "application/merge-patch+json", &body(version))
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["metadata"]["annotations"]["a"], "1");
    let answer = server
        .patch(&url, "application/merge-patch+json", &body(version))
        .await;
    assert_status(
        &answer,
        409,
        Some("Conflict"),
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again",
    );
}

/// Polls `check` until it holds or two seconds pass.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_lrs_operator_releases_its_finalizer_and_watches_see_the_lrs_go() {
    let server = server();
    let operator = super::operator::spawn(
        server.cluster.clone(),
        std::time::Duration::from_millis(100),
    );
    let mut a = lrs("a", "deployment");
    a["metadata"]["finalizers"] = json!([super::LRS_FINALIZER]);
    let created = server.create(a).await;
    let mut b = lrs("b", "deployment");
    b["metadata"]["finalizers"] = json!([super::LRS_FINALIZER, "example.com/hold"]);
    server.create(b).await;
    let version = created["metadata"]["resourceVersion"].as_str().unwrap();
    let request = Request::builder()
        .uri(format!(
            "{LRS}?watch=true&fieldSelector=metadata.name%3Da&resourceVersion={version}&timeoutSeconds=5"
        ))
        .header(header::AUTHORIZATION, "Bearer secret")
        .body(Body::empty())
        .unwrap();
    let response = server.router.clone().oneshot(request).await.unwrap();

    for name in ["a", "b"] {
        let (code, marked) = server
            .call(Method::DELETE, &format!("{LRS}/{name}"), None)
            .await;
        assert_eq!(code, 200);
        assert!(marked["metadata"]["deletionTimestamp"].is_string(), "held");
    }
    let mut events = response.into_body().into_data_stream();
    use futures::StreamExt;
    let mut seen = Vec::new();
    while seen
        .last()
        .is_none_or(|(kind, _): &(String, Value)| kind != "DELETED")
    {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), events.next())
            .await
            .expect("the LRS goes in time")
            .unwrap()
            .unwrap();
        for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let event: Value = serde_json::from_slice(line).unwrap();
            seen.push((
                event["type"].as_str().unwrap().to_string(),
                event["object"].clone(),
            ));
        }
    }
    let kinds: Vec<&str> = seen.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["MODIFIED", "DELETED"], "marked, then gone");
    // Like etcd's delete event, the object as last stored.
    assert_eq!(seen[1].1["metadata"]["name"], "a");
    let (code, _) = server.call(Method::GET, &format!("{LRS}/a"), None).await;
    assert_eq!(code, 404);

    // Another controller's finalizer stays, and holds the object.
    eventually("the operator lets go of b", || {
        let b = server.cluster.get(
            server.cluster.catalog.by_plural("lrs").unwrap(),
            Some("dr"),
            "b",
        );
        b.is_ok_and(|b| b["metadata"]["finalizers"] == json!(["example.com/hold"]))
    })
    .await;
    operator.abort();
}

#[tokio::test]
async fn the_controllers_follow_replicas_after_a_delay() {
    let server = server();
    let delay = std::time::Duration::from_millis(200);
    let controllers = super::controller::spawn(server.cluster.clone(), delay);
    server.seed(&super::AppWorkload::deployment("dr", "web", 2));
    assert_eq!(server.pods_of("web").0.len(), 2);

    let url = format!("{DEPLOYMENTS}/web");
    let (code, _) = server
        .patch(
            &url,
            "application/merge-patch+json",
            r#"{"spec":{"replicas":0}}"#,
        )
        .await;
    assert_eq!(code, 200);
    let deployment = || {
        server
            .cluster
            .get(
                server.cluster.catalog.by_plural("deployments").unwrap(),
                Some("dr"),
                "web",
            )
            .unwrap()
    };
    assert_eq!(server.pods_of("web").0.len(), 2, "nothing happens at once");
    assert_eq!(deployment()["status"]["replicas"], 2);
    // Then the pods terminate and the status says zero (the counts left out) while they do...
    eventually("pods terminating", || server.pods_of("web").1.len() == 2).await;
    let status = deployment()["status"].clone();
    assert!(status.get("replicas").is_none(), "{status}");
    assert!(status.get("readyReplicas").is_none(), "{status}");
    assert_eq!(
        status["observedGeneration"],
        deployment()["metadata"]["generation"]
    );
    // ...and are gone one delay later.
    eventually("pods gone", || server.pods_of("web") == (vec![], vec![])).await;

    let (code, _) = server
        .patch(
            &url,
            "application/merge-patch+json",
            r#"{"spec":{"replicas":3}}"#,
        )
        .await;
    assert_eq!(code, 200);
    eventually("three ready", || {
        deployment()["status"]["readyReplicas"] == 3
    })
    .await;
    assert_eq!(server.pods_of("web").0.len(), 3);
    assert_eq!(deployment()["status"]["observedGeneration"], 3);

    // A StatefulSet drops its highest ordinals and brings back the lowest missing ones.
    server.seed(&super::AppWorkload::stateful_set("dr", "db", 3));
    let mut names = server.pods_of("db").0;
    names.sort();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
    let sts_url = format!("{STATEFULSETS}/db/scale");
    server
        .patch(
            &sts_url,
            "application/merge-patch+json",
            r#"{"spec":{"replicas":1}}"#,
        )
        .await;
    eventually("db scaled to 1", || {
        server.pods_of("db") == (vec!["db-0".to_string()], vec![])
    })
    .await;
    server
        .patch(
            &sts_url,
            "application/merge-patch+json",
            r#"{"spec":{"replicas":2}}"#,
        )
        .await;
    eventually("db scaled to 2", || server.pods_of("db").0.len() == 2).await;
    let mut names = server.pods_of("db").0;
    names.sort();
    assert_eq!(names, ["db-0", "db-1"]);
    controllers.abort();
}

#[tokio::test]
async fn a_deployment_owns_a_replica_set_which_owns_the_pods_as_in_a_real_cluster() {
    let server = server();
    let web = server.seed(&super::AppWorkload::deployment("dr", "web", 2));
    let (_, sets) = server
        .call(Method::GET, "/apis/apps/v1/namespaces/dr/replicasets", None)
        .await;
    let sets = sets["items"].as_array().unwrap().clone();
    assert_eq!(sets.len(), 1, "{sets:?}");
    let set = &sets[0];
    let name = set["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web-"), "{name}");
    assert_eq!(
        set["metadata"]["ownerReferences"],
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
            "uid": web["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(set["spec"]["replicas"], 2);
    assert_eq!(set["status"]["readyReplicas"], 2);
    let hash = set["metadata"]["labels"]["pod-template-hash"].clone();
    assert_eq!(
        set["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash
    );
    let (_, pods) = server
        .call(Method::GET, "/api/v1/namespaces/dr/pods", None)
        .await;
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 2);
    for pod in pods {
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["name"], name);
        assert_eq!(
            pod["metadata"]["ownerReferences"][0]["uid"],
            set["metadata"]["uid"]
        );
        assert_eq!(pod["metadata"]["labels"]["pod-template-hash"], hash);
    }

    // Scaled through the Deployment, the ReplicaSet follows.
    server
        .patch(
            &format!("{DEPLOYMENTS}/web"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":1}}"#,
        )
        .await;
    super::controller::reconcile(
        &server.cluster,
        "deployments",
        &super::store::key_of(Some("dr"), "web"),
    );
    let (_, set) = server
        .call(
            Method::GET,
            &format!("/apis/apps/v1/namespaces/dr/replicasets/{name}"),
            None,
        )
        .await;
    assert_eq!(set["spec"]["replicas"], 1);
    assert_eq!(set["metadata"]["generation"], 2);

    // Deleting the Deployment collects the ReplicaSet, and through it the pods.
    let (code, _) = server
        .call(Method::DELETE, &format!("{DEPLOYMENTS}/web"), None)
        .await;
    assert_eq!(code, 200);
    let (_, sets) = server
        .call(Method::GET, "/apis/apps/v1/namespaces/dr/replicasets", None)
        .await;
    assert!(sets["items"].as_array().unwrap().is_empty());
    assert_eq!(server.pods_of("web"), (vec![], vec![]));
}

/// What `kubectl mlbackup schedule install` creates, served with the generic registry's
/// semantics: strict create, 404 and 409 `Status` bodies, server-side apply, dry run.
#[tokio::test]
async fn schedule_objects_are_served_like_the_real_server() {
    let server = server();
    let objects = [
        (
            "/api/v1/namespaces/dr/serviceaccounts",
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "backup"}}),
        ),
        (
            "/api/v1/namespaces/dr/configmaps",
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "backup"}, "data": {"k": "v"}}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            "clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "backup"}, "rules": []}),
        ),
        (
            "/apis/batch/v1/namespaces/dr/cronjobs",
            "cronjobs",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "backup"}, "spec": {"schedule": "0 3 * * *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}}),
        ),
    ];
    for (collection, plural, object) in objects {
        let (code, created) = server
            .call(Method::POST, collection, Some(object.clone()))
            .await;
        assert_eq!(code, 201, "{created}");
        assert!(
            created["metadata"]["uid"].is_string()
                && created["metadata"]["resourceVersion"].is_string()
                && created["metadata"]["creationTimestamp"].is_string(),
            "{created}"
        );
        let again = server.call(Method::POST, collection, Some(object)).await;
        let group = created["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .map_or("", |(g, _)| g);
        let qualified = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        assert_status(
            &again,
            409,
            Some("AlreadyExists"),
            &format!("{qualified} \"backup\" already exists"),
        );
        let missing = server
            .call(Method::GET, &format!("{collection}/nothing"), None)
            .await;
        assert_status(
            &missing,
            404,
            Some("NotFound"),
            &format!("{qualified} \"nothing\" not found"),
        );
    }
    let cron_job = server
        .cluster
        .get(
            server.cluster.catalog.by_plural("cronjobs").unwrap(),
            Some("dr"),
            "backup",
        )
        .unwrap();
    assert_eq!(
        cron_job["spec"]["concurrencyPolicy"], "Allow",
        "defaulted like the registry"
    );
    assert_eq!(cron_job["spec"]["successfulJobsHistoryLimit"], 3);
    // A Secret's stringData is stored as data; dry run persists nothing.
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"}, "stringData": {"AWS_ACCESS_KEY_ID": "AKIA"}});
    let collection = "/api/v1/namespaces/dr/secrets";
    let (code, dry) = server
        .call(
            Method::POST,
            &format!("{collection}?dryRun=All"),
            Some(secret.clone()),
        )
        .await;
    assert_eq!(code, 201);
    assert_eq!(dry["data"]["AWS_ACCESS_KEY_ID"], "QUtJQQ==");
    assert_eq!(dry["type"], "Opaque");
    assert_eq!(
        server
            .call(Method::GET, &format!("{collection}/s3"), None)
            .await
            .0,
        404
    );
    // Server-side apply creates a cluster-scoped binding, then a change updates it.
    let binding = |role: &str| {
        serde_yaml::to_string(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "backup"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "backup", "namespace": "dr"}]})).unwrap()
    };
    let uri = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/backup?fieldManager=kubectl-mlbackup";
    let (code, created) = server
        .patch(uri, "application/apply-patch+yaml", &binding("backup"))
        .await;
    assert_eq!(code, 201, "{created}");
    let (code, updated) = server
        .patch(uri, "application/apply-patch+yaml", &binding("other"))
        .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["roleRef"]["name"], "other");
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    // A protobuf body (kubectl's typed `create secret ...`) is not decoded: 415, as a server
    // without protobuf answers, never a half-read object.
    let protobuf = server
        .call_as(
            Some("secret"),
            Method::POST,
            collection,
            "application/vnd.kubernetes.protobuf",
            "k8s\0".into(),
        )
        .await;
    assert_eq!(protobuf.0, 415, "{}", protobuf.1);
}

/// A service account's token is authorised by the ClusterRoles bound to it, and nothing else:
/// the admin's deny rules do not apply, RBAC's do (403 with the account's user name).
#[tokio::test]
async fn a_service_account_may_only_what_its_cluster_role_grants() {
    let server = server();
    server
        .cluster
        .service_account_tokens
        .lock()
        .unwrap()
        .insert("sa-token".into(), ("mlbackup".into(), "backup".into()));
    let as_sa = |method: Method, uri: &'static str| {
        server.call_as(
            Some("sa-token"),
            method,
            uri,
            "application/json",
            String::new(),
        )
    };
    let forbidden = as_sa(Method::GET, LRS).await;
    assert_status(
        &forbidden,
        403,
        Some("Forbidden"),
        "lrs.lrs.datarobot.com is forbidden: User \"system:serviceaccount:mlbackup:backup\" cannot list resource \"lrs\" in API group \"lrs.datarobot.com\" in the namespace \"dr\"",
    );
    server.call(Method::POST, "/apis/rbac.authorization.k8s.io/v1/clusterroles", Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "lrs-reader"}, "rules": [{"apiGroups": ["lrs.datarobot.com"], "resources": ["lrs"], "verbs": ["get", "list"]}]}))).await;
    server.call(Method::POST, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "lrs-reader"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lrs-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "backup", "namespace": "mlbackup"}]}))).await;
    assert_eq!(as_sa(Method::GET, LRS).await.0, 200);
    assert_eq!(
        as_sa(Method::GET, "/apis").await.0,
        200,
        "discovery is every user's"
    );
    let secret = as_sa(Method::GET, "/api/v1/namespaces/dr/secrets/token").await;
    assert_status(
        &secret,
        403,
        Some("Forbidden"),
        "secrets \"token\" is forbidden: User \"system:serviceaccount:mlbackup:backup\" cannot get resource \"secrets\" in API group \"\" in the namespace \"dr\"",
    );
    assert_eq!(
        as_sa(
            Method::DELETE,
            "/apis/lrs.datarobot.com/v1/namespaces/dr/lrs/a"
        )
        .await
        .0,
        403
    );
    let (code, review) = server.call_as(Some("sa-token"), Method::POST, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "application/json",
        json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "dr"}}}).to_string()).await;
    assert_eq!(code, 201);
    assert_eq!(review["status"]["allowed"], false);
    assert_eq!(
        server
            .call_as(
                Some("unknown"),
                Method::GET,
                LRS,
                "application/json",
                String::new()
            )
            .await
            .0,
        401
    );
}
