//! One typed view of an object's head, used wherever metadata is read: `apiVersion`, `kind` and
//! k8s-openapi's `ObjectMeta`, with kube's `ResourceExt` accessors, as kube-rs' `DynamicObject`
//! gives typed metadata over free data. Only the head is typed: the object itself stays the
//! `serde_json::Value` it was read as, so a backup keeps every value exactly as it came.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicResourceScope, Resource};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The label that carries the workload type of an LRS.
pub const TYPE_LABEL: &str = "datarobot-lrs-type";
/// The type of custom model deployments: what the documented runbook backs up.
pub const DEPLOYMENT_TYPE: &str = "deployment";
/// The type of interactive Spark sessions.
pub const SPARK_TYPE: &str = "spark_app";

/// The head of a Kubernetes object. `ResourceExt` reads its metadata (`namespace()`, `uid()`,
/// `labels()`, `finalizers()`, ...).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: ObjectMeta,
}

fn null_as_default<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    Ok(Option::<ObjectMeta>::deserialize(deserializer)?.unwrap_or_default())
}

impl Head {
    /// Reads the head of `object` (the rest is not looked at). Fails when a field of the head
    /// has the wrong form (a label that is not a string, say), naming the field.
    pub fn of(object: &Value) -> Result<Head, serde_json::Error> {
        // Tracking the path costs on every object; only a head that fails is read again with it.
        if let Ok(head) = Head::deserialize(object) {
            return Ok(head);
        }
        serde_path_to_error::deserialize(object).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if path == "." {
                inner
            } else {
                serde::de::Error::custom(format!("`{path}`: {inner}"))
            }
        })
    }

    /// `apiVersion`, `""` when unset.
    pub fn api_version(&self) -> &str {
        self.api_version.as_deref().unwrap_or_default()
    }

    /// `kind`, `""` when unset.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or_default()
    }

    /// The value of the [`TYPE_LABEL`], `""` when unset.
    pub fn lrs_type(&self) -> &str {
        self.metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(TYPE_LABEL))
            .map_or("", String::as_str)
    }

    /// Whether the object is marked for deletion (finalizers may still hold it).
    pub fn is_being_deleted(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// (namespace, name), `""` for what is unset.
    pub fn key(&self) -> (String, String) {
        (
            self.metadata.namespace.clone().unwrap_or_default(),
            self.metadata.name.clone().unwrap_or_default(),
        )
    }
}

/// As kube-rs implements it for `DynamicObject`: the type is known at run time only.
impl Resource for Head {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// An object with its head read: typed metadata over free data, like kube-rs' `DynamicObject`,
/// except that the data is the whole object, untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub head: Head,
    pub value: Value,
}

impl Object {
    pub fn new(value: Value) -> Result<Object, serde_json::Error> {
        Ok(Object {
            head: Head::of(&value)?,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    #[test]
    fn the_head_is_read_typed_and_the_object_left_as_it_is() {
        let value = json!({
            "apiVersion": "lrs.datarobot.com/v1",
            "kind": "LongRunningService",
            "metadata": {
                "name": "cm-1", "namespace": "dr-app", "uid": "0b6c", "resourceVersion": "812",
                "generation": 3, "labels": {TYPE_LABEL: SPARK_TYPE},
                "deletionTimestamp": "2026-01-06T09:00:00Z", "finalizers": ["x/hold"],
            },
            "spec": {"big": 18446744073709551615u64, "f": 0.9215686321258545},
        });
        let object = Object::new(value.clone()).unwrap();
        assert_eq!(object.value, value);
        let head = &object.head;
        assert_eq!(head.api_version(), "lrs.datarobot.com/v1");
        assert_eq!(head.kind(), "LongRunningService");
        assert_eq!(head.key(), ("dr-app".to_string(), "cm-1".to_string()));
        assert_eq!(head.uid().as_deref(), Some("0b6c"));
        assert_eq!(head.resource_version().as_deref(), Some("812"));
        assert_eq!(head.metadata.generation, Some(3));
        assert_eq!(head.lrs_type(), SPARK_TYPE);
        assert!(head.is_being_deleted());
        assert_eq!(head.finalizers(), ["x/hold"]);
    }

    #[test]
    fn what_is_unset_reads_empty_and_a_field_of_the_wrong_form_is_named() {
        for value in [json!({}), json!({"metadata": null, "kind": null})] {
            let head = Head::of(&value).unwrap();
            assert_eq!(
                (head.api_version(), head.kind(), head.lrs_type()),
                ("", "", "")
            );
            assert_eq!(head.key(), (String::new(), String::new()));
            assert!(!head.is_being_deleted());
        }
        let err = Head::of(&json!({"metadata": {"labels": {"version": 1}}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`metadata.labels.version`: invalid type: integer `1`, expected a string"
        );
        let err = Head::of(&json!("text")).unwrap_err();
        assert!(err.to_string().starts_with("invalid type: string"), "{err}");
    }
}
