//! What of an LRS object is its owner's and what the API server manages: the fields stripped
//! before a restore (DESIGN.md section 5), the state compared between a backup and the
//! cluster, and the unified diff of that state. The typed view of an object's head is in
//! `head`.

use serde_json::{Map, Value};

mod head;
pub mod schema;

pub use head::{DEPLOYMENT_TYPE, Head, Object, SPARK_TYPE, TYPE_LABEL};

/// `metadata` fields the API server sets (or that name things of one cluster only); a restore
/// must not send them. `ownerReferences` point at UIDs that do not exist in a new cluster.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "ownerReferences",
];

/// The annotation `kubectl apply` keeps: a second copy of the whole object as last applied,
/// possibly with values (credentials) the spec no longer has.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Removes what a backup does not store (DESIGN.md sections 4 and 11): `managedFields` (as
/// `kubectl get -o yaml` shows an object) and the [`LAST_APPLIED_ANNOTATION`]. An annotation
/// map left empty goes too, as the API server omits one.
pub fn strip_unstored_fields(object: &mut Value) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    metadata.remove("managedFields");
    let emptied = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
        .is_some_and(|annotations| {
            annotations.remove(LAST_APPLIED_ANNOTATION).is_some() && annotations.is_empty()
        });
    if emptied {
        metadata.remove("annotations");
    }
}

/// Removes what the API server manages, so the object can be applied to any cluster: the
/// fields of [`SERVER_METADATA`], `generateName` when `name` is set, and `status` (the
/// operator reconciles it).
pub fn strip_server_fields(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    map.remove("status");
    if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            metadata.remove(*field);
        }
        let named = metadata
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|name| !name.is_empty());
        if named {
            metadata.remove("generateName");
        }
    }
}

/// The top-level fields that are not the owner's desired state: the type, the metadata (of
/// which only labels and annotations are) and the status the operator reports.
const ENVELOPE: &[&str] = &["apiVersion", "kind", "metadata", "status"];

/// The state a backup restores and a diff compares: labels, annotations and every top-level
/// field but `apiVersion`, `kind`, `metadata` and `status` (for an LRS: `spec`), its numbers as
/// the API server stores them (see [`as_stored`]). Empty label or annotation maps count as
/// absent.
pub fn desired_state(object: &Value) -> Value {
    let mut state = Map::new();
    let mut metadata = Map::new();
    for field in ["labels", "annotations"] {
        if let Some(map) = object["metadata"][field]
            .as_object()
            .filter(|m| !m.is_empty())
        {
            metadata.insert(field.to_string(), Value::Object(map.clone()));
        }
    }
    if !metadata.is_empty() {
        state.insert("metadata".to_string(), Value::Object(metadata));
    }
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            if !ENVELOPE.contains(&key.as_str()) {
                state.insert(key.clone(), as_stored(value));
            }
        }
    }
    Value::Object(state)
}

/// `value` with every number as the API server stores it, so that a file and the cluster
/// compare by what the cluster can hold. kube-apiserver decodes a number without `.` that fits
/// int64 as int64 and every other one as the nearest float64 (exactly), and encodes float64 in
/// Go's shortest form, plain below 1e21. After the round trip through etcd an integral float in
/// int64's range (`1.0`, `-0.0`, `1e3`) is an integer and an integer beyond int64 a float64;
/// every other number, one ulp apart included, stays itself.
pub fn as_stored(value: &Value) -> Value {
    match value {
        Value::Number(number) => Value::Number(stored_number(number)),
        Value::Array(items) => Value::Array(items.iter().map(as_stored).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), as_stored(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn stored_number(number: &serde_json::Number) -> serde_json::Number {
    let integral = |float: f64| {
        // Go's shortest digits are Rust's `Display`; digits without `.` that fit int64 decode
        // as an integer.
        (float.abs() < 1e21)
            .then(|| format!("{float}").parse::<i64>().ok())
            .flatten()
    };
    if let Some(unsigned) = number.as_u64() {
        if i64::try_from(unsigned).is_err()
            && let Some(float) = serde_json::Number::from_f64(unsigned as f64)
        {
            return float;
        }
    } else if number.is_f64()
        && let Some(int) = number.as_f64().and_then(integral)
    {
        return int.into();
    }
    number.clone()
}

/// Whether two objects agree on their [`desired_state`].
pub fn same_desired_state(a: &Value, b: &Value) -> bool {
    desired_state(a) == desired_state(b)
}

/// What `restore --existing=update` writes over `live`: the live object with the
/// [`desired_state`] of `backup` (its labels, annotations and spec; what others added since the
/// backup is gone). The rest stays as the cluster has it: `resourceVersion`, which guards the
/// write against a change made in between, the finalizers an operator holds and releases, owner
/// references, and `status`. `managedFields` is left out, so the server keeps its record.
pub fn converged(live: &Value, backup: &Value) -> Value {
    let mut object = Map::new();
    if let Some(fields) = live.as_object() {
        for (key, value) in fields {
            if ENVELOPE.contains(&key.as_str()) {
                object.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(fields) = backup.as_object() {
        for (key, value) in fields {
            if !ENVELOPE.contains(&key.as_str()) {
                object.insert(key.clone(), value.clone());
            }
        }
    }
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(metadata) = metadata.as_object_mut() {
        metadata.remove("managedFields");
        for field in ["labels", "annotations"] {
            match backup["metadata"][field]
                .as_object()
                .filter(|m| !m.is_empty())
            {
                Some(map) => metadata.insert(field.to_string(), Value::Object(map.clone())),
                None => metadata.remove(field),
            };
        }
    }
    Value::Object(object)
}

/// A unified diff (3 lines of context) of the [`desired_state`] of `from` and `to`, as YAML
/// with sorted keys; empty when they agree.
pub fn unified_diff(from: &Value, to: &Value, from_name: &str, to_name: &str) -> String {
    let render = |object: &Value| {
        crate::yaml::to_kubectl_yaml(&desired_state(object))
            // Plain JSON values always serialise; keep the diff readable if they ever do not.
            .unwrap_or_else(|err| format!("# cannot render: {err}\n"))
    };
    let (old, new) = (render(from), render(to));
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(from_name, to_name)
        .to_string()
}

/// A DNS-1123 label, as namespace names must be: at most 63 of `[a-z0-9-]`, alphanumeric at
/// both ends.
pub fn is_namespace_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A DNS-1123 subdomain, as the names of custom resources must be: at most 253 characters,
/// dot-separated labels.
pub fn is_object_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `kubectl get -o yaml` shows of an LRS (plus managedFields, as the API returns it).
    fn served() -> Value {
        json!({
            "apiVersion": "lrs.datarobot.com/v1",
            "kind": "LongRunningService",
            "metadata": {
                "name": "cm-1",
                "generateName": "cm-",
                "namespace": "dr-app",
                "uid": "0b6c",
                "resourceVersion": "812",
                "generation": 3,
                "creationTimestamp": "2026-01-05T09:00:00Z",
                "deletionTimestamp": "2026-01-06T09:00:00Z",
                "deletionGracePeriodSeconds": 0,
                "selfLink": "/apis/lrs.datarobot.com/v1/namespaces/dr-app/lrs/cm-1",
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "9"}],
                "labels": {"datarobot-lrs-type": "deployment"},
                "annotations": {"a": "b"},
                "finalizers": ["lrs.datarobot.com/cleanup"]
            },
            "spec": {"replicas": 2, "image": "x:1"},
            "status": {"phase": "Running"}
        })
    }

    #[test]
    fn names_follow_the_api_server_rules() {
        assert!(is_namespace_name("dr-app"));
        assert!(!is_namespace_name("Dr"));
        assert!(!is_namespace_name("a.b"));
        assert!(!is_namespace_name("-a"));
        assert!(!is_namespace_name(&"a".repeat(64)));
        assert!(is_object_name("cm-65a1.v2"));
        assert!(!is_object_name("a..b"));
        assert!(!is_object_name("a b"));
        assert!(!is_object_name(""));
    }

    #[test]
    fn stripping_keeps_only_what_the_owner_wrote() {
        let mut object = served();
        strip_server_fields(&mut object);
        assert_eq!(
            object,
            json!({
                "apiVersion": "lrs.datarobot.com/v1",
                "kind": "LongRunningService",
                "metadata": {
                    "name": "cm-1",
                    "namespace": "dr-app",
                    "labels": {"datarobot-lrs-type": "deployment"},
                    "annotations": {"a": "b"},
                    "finalizers": ["lrs.datarobot.com/cleanup"]
                },
                "spec": {"replicas": 2, "image": "x:1"}
            })
        );
    }

    #[test]
    fn generate_name_stays_when_there_is_no_name() {
        let mut object = json!({"metadata": {"generateName": "cm-", "uid": "1"}});
        strip_server_fields(&mut object);
        assert_eq!(object, json!({"metadata": {"generateName": "cm-"}}));
        let mut not_an_object = json!("text");
        strip_server_fields(&mut not_an_object);
        assert_eq!(not_an_object, json!("text"));
    }

    #[test]
    fn the_desired_state_ignores_server_fields_and_status() {
        let mut stripped = served();
        strip_server_fields(&mut stripped);
        assert!(same_desired_state(&served(), &stripped));
        let mut relabelled = served();
        relabelled["metadata"]["labels"]["team"] = json!("ml");
        assert!(!same_desired_state(&served(), &relabelled));
        let mut respecced = served();
        respecced["spec"]["replicas"] = json!(3);
        assert!(!same_desired_state(&served(), &respecced));
        let mut other_field = served();
        other_field["data"] = json!({"k": "v"});
        assert!(!same_desired_state(&served(), &other_field));
        let mut no_annotations = served();
        no_annotations["metadata"]["annotations"] = json!({});
        let mut absent = served();
        absent["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        assert!(same_desired_state(&no_annotations, &absent));
    }

    #[test]
    fn numbers_compare_as_the_api_server_stores_them() {
        let with = |text: &str| -> Value {
            serde_json::from_str(&format!(r#"{{"spec": {{"v": {text}}}}}"#)).unwrap()
        };
        for (file, cluster) in [
            ("1.0", "1"),
            ("-0.0", "0"),
            ("1e3", "1000"),
            ("18446744073709551615", "18446744073709552000"),
        ] {
            assert!(same_desired_state(&with(file), &with(cluster)), "{file}");
        }
        for (a, b) in [
            ("0.9215686321258545", "0.9215686321258544"),
            ("10587.436593658975", "10587.436593658973"),
            ("9007199254740993", "9007199254740992"),
            ("9223372036854775807", "9223372036854775806"),
            ("1.5", "1"),
            ("5e-324", "0"),
        ] {
            assert!(!same_desired_state(&with(a), &with(b)), "{a} {b}");
        }
        let diff = unified_diff(
            &with("123456789.12345679"),
            &with("123456789.12345678"),
            "a",
            "b",
        );
        assert!(
            diff.contains("-  v: 123456789.12345679\n+  v: 123456789.12345678\n"),
            "{diff}"
        );
    }

    #[test]
    fn the_converged_object_has_the_backups_state_and_keeps_what_the_cluster_owns() {
        let mut backup = served();
        strip_server_fields(&mut backup);
        let mut live = served();
        live["spec"]["replicas"] = json!(7);
        live["spec"]["added"] = json!(true);
        live["spec"].as_object_mut().unwrap().remove("image");
        live["data"] = json!({"k": "v"});
        live["metadata"]["labels"]["team"] = json!("ml");
        live["metadata"]["annotations"] = json!({"note": "patched"});
        live["metadata"]["finalizers"] = json!(["other.example.com/hold"]);
        let written = converged(&live, &backup);
        assert!(same_desired_state(&written, &backup), "{written:#}");
        assert!(
            written.get("data").is_none(),
            "a field the backup lacks is gone"
        );
        let metadata = &written["metadata"];
        assert_eq!(metadata["resourceVersion"], "812", "the write is guarded");
        assert_eq!(metadata["uid"], "0b6c");
        assert_eq!(metadata["finalizers"], json!(["other.example.com/hold"]));
        assert_eq!(
            metadata["ownerReferences"],
            live["metadata"]["ownerReferences"]
        );
        assert!(metadata.get("managedFields").is_none());
        assert_eq!(written["status"], live["status"]);

        let mut bare = backup.clone();
        bare["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        bare["metadata"]["labels"] = json!({});
        let written = converged(&live, &bare);
        assert!(written["metadata"].get("annotations").is_none());
        assert!(written["metadata"].get("labels").is_none());
        assert!(same_desired_state(&written, &bare));
    }

    #[test]
    fn the_unified_diff_shows_changed_lines_with_context() {
        let mut live = served();
        live["spec"]["replicas"] = json!(1);
        live["metadata"]["labels"]["team"] = json!("ml");
        let diff = unified_diff(
            &served(),
            &live,
            "backup/dr-app/cm-1",
            "cluster/dr-app/cm-1",
        );
        assert_eq!(
            diff,
            "--- backup/dr-app/cm-1\n\
             +++ cluster/dr-app/cm-1\n\
             @@ -3,6 +3,7 @@\n     \
                 a: b\n   \
               labels:\n     \
                 datarobot-lrs-type: deployment\n\
             +    team: ml\n \
             spec:\n   \
               image: x:1\n\
             -  replicas: 2\n\
             +  replicas: 1\n"
        );
        assert_eq!(unified_diff(&served(), &served(), "a", "b"), "");
    }

    #[test]
    fn the_last_applied_copy_and_managed_fields_are_not_stored() {
        let mut object = json!({
            "kind": "LRS",
            "metadata": {
                "name": "a",
                "managedFields": [{"manager": "kubectl"}],
                "annotations": {
                    "team": "ml",
                    LAST_APPLIED_ANNOTATION: "{\"spec\":{\"password\":\"old\"}}",
                },
            },
            "spec": {"password": "new"},
        });
        strip_unstored_fields(&mut object);
        assert_eq!(
            object,
            json!({
                "kind": "LRS",
                "metadata": {"name": "a", "annotations": {"team": "ml"}},
                "spec": {"password": "new"},
            })
        );
        // The only annotation gone: no empty map left behind.
        let mut object =
            json!({"metadata": {"name": "a", "annotations": {LAST_APPLIED_ANNOTATION: "{}"}}});
        strip_unstored_fields(&mut object);
        assert_eq!(object, json!({"metadata": {"name": "a"}}));
        // An empty map the server sent (it does not) is kept as it was; no metadata is no change.
        for unchanged in [
            json!({"metadata": {"name": "a", "annotations": {}}}),
            json!({"kind": "LRS"}),
            json!("not an object"),
        ] {
            let mut object = unchanged.clone();
            strip_unstored_fields(&mut object);
            assert_eq!(object, unchanged);
        }
    }
}
