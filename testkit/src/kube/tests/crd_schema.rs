//! Custom resources validated against the schema of their stored CustomResourceDefinition,
//! through the router: the answers of kube-apiserver 1.33 for a typed LRS definition (422 for bad
//! values, unknown fields pruned, warned of or refused as `fieldValidation` says, server-side
//! apply's typed conversion), on every write verb and in dry runs.

use http::{Method, Request, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::super::{lrs_definition_with_spec, typed_lrs_definition};
use super::{LRS, Server, assert_status, server};

/// A fake cluster whose LRS definition is the typed one.
fn typed_server() -> Server {
    let server = server();
    server
        .cluster
        .replace(typed_lrs_definition("v1"))
        .expect("the typed definition replaces the default one");
    server
}

fn typed_lrs(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "lrs.datarobot.com/v1",
        "kind": "LongRunningService",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// One request: the code, the `Warning` headers and the body.
async fn send(
    server: &Server,
    method: Method,
    uri: &str,
    content_type: &str,
    body: String,
) -> (u16, Vec<String>, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::AUTHORIZATION, "Bearer secret")
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = server.router.clone().oneshot(request).await.unwrap();
    let code = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all(header::WARNING)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        code,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn post(server: &Server, query: &str, object: &Value) -> (u16, Vec<String>, Value) {
    send(
        server,
        Method::POST,
        &format!("{LRS}{query}"),
        "application/json",
        object.to_string(),
    )
    .await
}

fn stored(server: &Server, name: &str) -> Option<Value> {
    let resource = server.cluster.catalog.by_plural("lrs").unwrap();
    server.cluster.get(resource, Some("dr"), name).ok()
}

const WRONG_TYPE: &str = "LongRunningService.lrs.datarobot.com \"a\" is invalid: spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"";

#[tokio::test]
async fn a_value_of_the_wrong_type_is_invalid_with_the_field_named() {
    let server = typed_server();
    let object = typed_lrs("a", json!({"type": "deployment", "replicas": "3"}));
    let (code, _, status) = post(&server, "", &object).await;
    assert_status(&(code, status.clone()), 422, Some("Invalid"), WRONG_TYPE);
    assert_eq!(status["details"]["name"], "a");
    assert_eq!(status["details"]["group"], "lrs.datarobot.com");
    assert_eq!(status["details"]["kind"], "LongRunningService");
    assert_eq!(
        status["details"]["causes"],
        json!([{
            "reason": "FieldValueTypeInvalid",
            "message": "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            "field": "spec.replicas",
        }])
    );
    assert!(stored(&server, "a").is_none());

    // The name's errors and the schema's come in one answer, the name's first.
    let object = typed_lrs("A_b", json!({"type": "deployment", "replicas": "3"}));
    let (code, _, status) = post(&server, "", &object).await;
    assert_eq!(code, 422);
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["metadata.name", "spec.replicas"], "{status}");

    // An integral number is an integer; a fraction is not.
    let whole = typed_lrs("b", json!({"type": "deployment", "replicas": 2.0}));
    assert_eq!(post(&server, "", &whole).await.0, 201);
    let fraction = typed_lrs("c", json!({"type": "deployment", "replicas": 1.5}));
    let (code, _, status) = post(&server, "", &fraction).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "LongRunningService.lrs.datarobot.com \"c\" is invalid: spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\""
    );
}

#[tokio::test]
async fn required_fields_enums_and_bounds_are_all_reported() {
    let server = typed_server();
    let object = typed_lrs("a", json!({"image": "", "replicas": -1}));
    let (code, _, status) = post(&server, "", &object).await;
    assert_status(
        &(code, status.clone()),
        422,
        Some("Invalid"),
        "LongRunningService.lrs.datarobot.com \"a\" is invalid: [spec.image: Invalid value: \"\": spec.image in body should be at least 1 chars long, spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0, spec.type: Required value]",
    );
    let reasons: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "FieldValueInvalid",
            "FieldValueInvalid",
            "FieldValueRequired"
        ]
    );

    let object = typed_lrs("a", json!({"type": "web"}));
    let (code, _, status) = post(&server, "", &object).await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "LongRunningService.lrs.datarobot.com \"a\" is invalid: spec.type: Unsupported value: \"web\": supported values: \"deployment\", \"spark_app\", \"custom_application\", \"custom_job\", \"model_workshop\""
    );
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldValueNotSupported"
    );
}

#[tokio::test]
async fn unknown_fields_are_pruned_warned_of_or_refused_as_field_validation_says() {
    let server = typed_server();
    let object = typed_lrs(
        "a",
        json!({"type": "deployment", "replicas": 1, "foo": 1, "bar": {"x": 1}}),
    );
    let mut with_meta = object.clone();
    with_meta["metadata"]["extra"] = json!("x");

    // Default (Warn): stored without them, one warning each.
    let (code, warnings, created) = post(&server, "", &with_meta).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"metadata.extra\"""#,
            r#"299 - "unknown field \"spec.bar\"""#,
            r#"299 - "unknown field \"spec.foo\"""#,
        ]
    );
    assert_eq!(
        created["spec"],
        json!({"type": "deployment", "replicas": 1})
    );
    assert!(created["metadata"].get("extra").is_none());
    assert_eq!(stored(&server, "a").unwrap()["spec"], created["spec"]);

    // Ignore: pruned silently.
    let mut other = object.clone();
    other["metadata"]["name"] = json!("b");
    let (code, warnings, created) = post(&server, "?fieldValidation=Ignore", &other).await;
    assert_eq!((code, warnings.len()), (201, 0));
    assert_eq!(
        created["spec"],
        json!({"type": "deployment", "replicas": 1})
    );

    // Strict: refused, as the decoder refuses a body.
    other["metadata"]["name"] = json!("c");
    let (code, _, status) = post(&server, "?fieldValidation=Strict", &other).await;
    assert_status(
        &(code, status),
        400,
        Some("BadRequest"),
        "LongRunningService in version \"v1\" cannot be handled as a LongRunningService: strict decoding error: unknown field \"spec.bar\", unknown field \"spec.foo\"",
    );
    assert!(stored(&server, "c").is_none());
    // The decoder names the URL's kind and version when the body does not.
    let bare = json!({"metadata": {"name": "c"}, "spec": {"type": "deployment", "foo": 1}});
    let (code, _, status) = post(&server, "?fieldValidation=Strict", &bare).await;
    assert_status(
        &(code, status),
        400,
        Some("BadRequest"),
        "LongRunningService in version \"v1\" cannot be handled as a LongRunningService: strict decoding error: unknown field \"spec.foo\"",
    );

    // A patch that adds one: refused without the decoder's prefix under Strict.
    let (code, _, status) = send(
        &server,
        Method::PATCH,
        &format!("{LRS}/a?fieldValidation=Strict"),
        "application/merge-patch+json",
        r#"{"spec":{"foo":1}}"#.into(),
    )
    .await;
    assert_status(
        &(code, status),
        400,
        Some("BadRequest"),
        "strict decoding error: unknown field \"spec.foo\"",
    );
    let (code, warnings, patched) = send(
        &server,
        Method::PATCH,
        &format!("{LRS}/a"),
        "application/merge-patch+json",
        r#"{"spec":{"foo":1,"replicas":2}}"#.into(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(warnings, [r#"299 - "unknown field \"spec.foo\"""#]);
    assert_eq!(
        patched["spec"],
        json!({"type": "deployment", "replicas": 2})
    );

    let (code, _, status) = post(&server, "?fieldValidation=strict", &object).await;
    assert_status(
        &(code, status),
        422,
        Some("Invalid"),
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"strict\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
    );
}

#[tokio::test]
async fn preserved_fields_stay_and_the_default_definition_keeps_everything() {
    // The default definition: spec and status keep unknown fields; no warning.
    let server = server();
    let object = typed_lrs(
        "a",
        json!({"anything": {"nested": [1, "x"]}, "replicas": "x"}),
    );
    let (code, warnings, created) = post(&server, "?fieldValidation=Strict", &object).await;
    assert_eq!((code, warnings.len()), (201, 0), "{created}");
    assert_eq!(created["spec"], object["spec"]);

    // Known fields below preserve-unknown-fields are still typed and pruned.
    server
        .cluster
        .replace(lrs_definition_with_spec(
            "v1",
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                   "properties": {"resources": {"type": "object",
                       "properties": {"cpu": {"type": "string"}}}}}),
        ))
        .unwrap();
    let object = typed_lrs("b", json!({"free": 1, "resources": {"cpu": "1", "gpu": 2}}));
    let (code, warnings, created) = post(&server, "", &object).await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [r#"299 - "unknown field \"spec.resources.gpu\"""#]
    );
    assert_eq!(
        created["spec"],
        json!({"free": 1, "resources": {"cpu": "1"}})
    );
}

#[tokio::test]
async fn dry_run_validates_without_storing() {
    let server = typed_server();
    let bad = typed_lrs("a", json!({"type": "deployment", "replicas": "3"}));
    let (code, _, status) = post(&server, "?dryRun=All", &bad).await;
    assert_status(&(code, status), 422, Some("Invalid"), WRONG_TYPE);
    let good = typed_lrs("a", json!({"type": "deployment", "replicas": 3, "foo": 1}));
    let (code, warnings, would_be) = post(&server, "?dryRun=All", &good).await;
    assert_eq!(code, 201);
    assert_eq!(warnings, [r#"299 - "unknown field \"spec.foo\"""#]);
    assert_eq!(
        would_be["spec"],
        json!({"type": "deployment", "replicas": 3})
    );
    assert!(stored(&server, "a").is_none());

    let (code, _, _) = post(&server, "", &good).await;
    assert_eq!(code, 201);
    let before = stored(&server, "a").unwrap();
    let (code, _, status) = send(
        &server,
        Method::PATCH,
        &format!("{LRS}/a?dryRun=All"),
        "application/merge-patch+json",
        r#"{"spec":{"type":"web"}}"#.into(),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(stored(&server, "a").unwrap(), before);
}

#[tokio::test]
async fn updates_and_patches_are_validated_like_creates() {
    let server = typed_server();
    let good = typed_lrs("a", json!({"type": "deployment", "replicas": 1}));
    let (_, _, created) = post(&server, "", &good).await;
    let mut bad = created.clone();
    bad["spec"]["replicas"] = json!("3");
    let (code, _, status) = send(
        &server,
        Method::PUT,
        &format!("{LRS}/a"),
        "application/json",
        bad.to_string(),
    )
    .await;
    assert_status(&(code, status), 422, Some("Invalid"), WRONG_TYPE);

    let (code, _, status) = send(
        &server,
        Method::PATCH,
        &format!("{LRS}/a"),
        "application/json-patch+json",
        r#"[{"op":"remove","path":"/spec/type"}]"#.into(),
    )
    .await;
    assert_status(
        &(code, status),
        422,
        Some("Invalid"),
        "LongRunningService.lrs.datarobot.com \"a\" is invalid: spec.type: Required value",
    );
    assert_eq!(stored(&server, "a").unwrap(), created);
}

#[tokio::test]
async fn server_side_apply_converts_the_configuration_then_validates_the_result() {
    let server = typed_server();
    let server = &server;
    let apply = |name: &str, spec: Value| {
        let uri = format!("{LRS}/{name}?fieldManager=test");
        let body = serde_json::to_string(&typed_lrs(name, spec)).unwrap();
        async move {
            send(
                server,
                Method::PATCH,
                &uri,
                "application/apply-patch+yaml",
                body,
            )
            .await
        }
    };
    // A field the schema does not declare fails the typed conversion: 500, whatever
    // fieldValidation says (structured-merge-diff's error is not an API status).
    let (code, _, status) = apply("a", json!({"type": "deployment", "foo": 1})).await;
    assert_status(
        &(code, status),
        500,
        None,
        "failed to create typed patch object (/a; lrs.datarobot.com/v1, Kind=LongRunningService): .spec.foo: field not declared in schema",
    );
    let (code, _, status) =
        apply("a", json!({"type": "deployment", "replicas": "3", "x": 1})).await;
    assert_eq!(code, 500);
    assert_eq!(
        status["message"],
        "failed to create typed patch object (/a; lrs.datarobot.com/v1, Kind=LongRunningService): errors:\n  .spec.replicas: expected numeric (int or float), got string\n  .spec.x: field not declared in schema"
    );
    // A configuration that converts is validated once merged: 422.
    let (code, _, status) = apply("a", json!({"type": "deployment", "replicas": -2})).await;
    assert_status(
        &(code, status),
        422,
        Some("Invalid"),
        "LongRunningService.lrs.datarobot.com \"a\" is invalid: spec.replicas: Invalid value: -2: spec.replicas in body should be greater than or equal to 0",
    );
    assert!(stored(server, "a").is_none());
    let (code, _, applied) = apply("a", json!({"type": "deployment", "replicas": 2})).await;
    assert_eq!(code, 201, "{applied}");
    let (code, _, status) = apply("a", json!({"type": "web"})).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(stored(server, "a").unwrap()["spec"]["type"], "deployment");
}

#[tokio::test]
async fn the_schema_is_the_stored_definitions_at_every_request() {
    let server = server();
    let object = typed_lrs("a", json!({"replicas": "3"}));
    let (code, _, _) = post(&server, "?dryRun=All", &object).await;
    assert_eq!(code, 201, "the default definition keeps spec as it is");

    // The definition replaced through the API (server-side apply, as `kubectl apply
    // --server-side` does) is what the next write is validated against.
    let uri = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/lrs.lrs.datarobot.com?fieldManager=test&force=true";
    let body = serde_json::to_string(&typed_lrs_definition("v1")).unwrap();
    let (code, _, answer) = send(
        &server,
        Method::PATCH,
        uri,
        "application/apply-patch+yaml",
        body,
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let (code, _, status) = post(&server, "?dryRun=All", &object).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "LongRunningService.lrs.datarobot.com \"a\" is invalid: [spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\", spec.type: Required value]"
    );
}

#[tokio::test]
async fn updates_ratchet_what_did_not_change() {
    // Stored before the stricter definition (seeded as stored): replicas is a string.
    let server = typed_server();
    let mut old = typed_lrs("a", json!({"type": "deployment", "replicas": "3"}));
    old["metadata"]["namespace"] = json!("dr");
    server.cluster.insert(old).unwrap();
    let (code, _, patched) = send(
        &server,
        Method::PATCH,
        &format!("{LRS}/a"),
        "application/merge-patch+json",
        r#"{"metadata":{"labels":{"x":"y"}},"spec":{"image":"b"}}"#.into(),
    )
    .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["replicas"], "3");
    let (code, _, status) = send(
        &server,
        Method::PATCH,
        &format!("{LRS}/a"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":"4"}}"#.into(),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["details"]["causes"][0]["field"], "spec.replicas",
        "{status}"
    );
}
