//! What the server says about itself: `/version`, legacy (unaggregated) API discovery, and the
//! OpenAPI v3 documents kubectl needs for `apply` (field validation support, patch schemas).

use serde_json::{Value, json};

use super::resources::{Catalog, ResourceType, VERBS};

pub const GIT_VERSION: &str = "v1.33.2";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "a57b6f7709f6c2722b92f07b8b4c48210a51fc40",
        "gitTreeState": "clean",
        "buildDate": "2025-06-17T18:29:10Z",
        "goVersion": "go1.24.4",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// The group of SelfSubjectAccessReview, served besides the catalog.
pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
}

fn all_groups(catalog: &Catalog) -> Vec<(String, Vec<String>)> {
    let mut groups = catalog.groups();
    groups.insert(
        1.min(groups.len()),
        (AUTHORIZATION_GROUP.to_string(), vec!["v1".to_string()]),
    );
    groups
}

pub fn group_list(catalog: &Catalog) -> Value {
    let groups: Vec<Value> = all_groups(catalog)
        .iter()
        .map(|(name, versions)| group_entry(name, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(catalog: &Catalog, name: &str) -> Option<Value> {
    let (name, versions) = all_groups(catalog).into_iter().find(|(g, _)| g == name)?;
    let mut entry = group_entry(&name, &versions);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

fn resource_entry(resource: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": VERBS,
    });
    if !resource.short_names.is_empty() {
        main["shortNames"] = json!(resource.short_names);
    }
    if matches!(
        resource.plural.as_str(),
        "pods" | "deployments" | "replicasets" | "statefulsets" | "jobs" | "cronjobs"
    ) {
        main["categories"] = json!(["all"]);
    }
    let mut entries = vec![main];
    if resource.status_subresource {
        entries.push(json!({
            "name": format!("{}/status", resource.plural),
            "singularName": "",
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    for sub in &resource.subresources {
        let (kind, verbs, group, version) = match sub.as_str() {
            "exec" => ("PodExecOptions", json!(["create", "get"]), "", ""),
            "log" => ("Pod", json!(["get"]), "", ""),
            "scale" => (
                "Scale",
                json!(["get", "patch", "update"]),
                "autoscaling",
                "v1",
            ),
            _ => (resource.kind.as_str(), json!(["update"]), "", ""),
        };
        let mut entry = json!({
            "name": format!("{}/{sub}", resource.plural),
            "singularName": "",
            "namespaced": resource.namespaced,
            "kind": kind,
            "verbs": verbs,
        });
        if !group.is_empty() {
            entry["group"] = json!(group);
            entry["version"] = json!(version);
        }
        entries.push(entry);
    }
    entries
}

/// The APIResourceList of a group version, if served.
pub fn resource_list(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    if group == AUTHORIZATION_GROUP && version == "v1" {
        return Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": [{
                "name": "selfsubjectaccessreviews",
                "singularName": "selfsubjectaccessreview",
                "namespaced": false,
                "kind": "SelfSubjectAccessReview",
                "verbs": ["create"],
            }],
        }));
    }
    let resources: Vec<Value> = catalog
        .in_group_version(group, version)
        .flat_map(resource_entry)
        .collect();
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

/// `io.k8s.api.core.v1.Pod`, `com.datarobot.lrs.v1.LongRunningService`: the schema names of
/// the real documents (custom resources use the reversed group).
fn schema_name(resource: &ResourceType) -> String {
    let group = match resource.group.as_str() {
        "" => "io.k8s.api.core".to_string(),
        "apps" => "io.k8s.api.apps".to_string(),
        "batch" => "io.k8s.api.batch".to_string(),
        "rbac.authorization.k8s.io" => "io.k8s.api.rbac".to_string(),
        custom => custom.split('.').rev().collect::<Vec<_>>().join("."),
    };
    format!("{group}.{}.{}", resource.version, resource.kind)
}

/// The relative path of a group version's document in the v3 index (`api/v1`, `apis/g/v`).
fn document_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_index(catalog: &Catalog) -> Value {
    let mut paths = serde_json::Map::new();
    let mut group_versions: Vec<(String, String)> = vec![(String::new(), "v1".to_string())];
    for (group, versions) in catalog.groups() {
        for version in versions {
            group_versions.push((group.clone(), version));
        }
    }
    for (group, version) in group_versions {
        let path = document_path(&group, &version);
        let hash = format!("{:016X}", fnv_hash(&path));
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// FNV-1a, for stable short hashes (document hashes, pod-template hashes).
pub fn fnv_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn query_parameter(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// The schema of a kind: typed metadata, free-form spec and status; pod containers merge by
/// name like the real strategic-merge-patch schema says.
fn kind_schema(resource: &ResourceType) -> Value {
    let gvk =
        json!([{"group": resource.group, "version": resource.version, "kind": resource.kind}]);
    let free_form = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let spec = match resource.plural.as_str() {
        "pods" => {
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {
            "containers": {"type": "array", "items": free_form,
                "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge",
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}}})
        }
        _ => free_form.clone(),
    };
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "default": {}},
            "spec": spec,
            "status": free_form,
        },
        "x-kubernetes-group-version-kind": gvk,
    })
}

fn object_meta_schema() -> Value {
    let string_map =
        json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}});
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "generateName": {"type": "string"},
            "labels": string_map,
            "annotations": string_map,
            "finalizers": {"type": "array", "items": {"type": "string", "default": ""},
                "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"},
            "resourceVersion": {"type": "string"},
            "uid": {"type": "string"},
            "generation": {"type": "integer", "format": "int64"},
            "creationTimestamp": {"type": "string", "format": "date-time"},
            "deletionTimestamp": {"type": "string", "format": "date-time"},
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        },
    })
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`: paths with their operations
/// (the PATCH operations list `fieldValidation`, which tells kubectl to validate server-side)
/// and the schemas of the kinds.
pub fn openapi_document(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceType> = catalog.in_group_version(group, version).collect();
    if resources.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    for resource in resources {
        let schema = schema_name(resource);
        schemas.insert(schema.clone(), kind_schema(resource));
        let gvk =
            json!({"group": resource.group, "version": resource.version, "kind": resource.kind});
        let object_content = json!({
            "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}},
            "application/yaml": {"schema": {"$ref": format!("#/components/schemas/{schema}")}},
        });
        let operation = |action: &str, id: &str, extra: Value| {
            let mut op = json!({
                "operationId": format!("{id}{}", resource.kind),
                "responses": {"200": {"description": "OK", "content": object_content}},
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
            });
            if let (Some(op), Some(extra)) = (op.as_object_mut(), extra.as_object()) {
                op.extend(extra.clone());
            }
            op
        };
        let write_parameters = json!(
            ["dryRun", "fieldManager", "fieldValidation"]
                .iter()
                .map(|n| query_parameter(n))
                .collect::<Vec<_>>()
        );
        let mut patch_parameters = write_parameters.as_array().cloned().unwrap_or_default();
        patch_parameters.push(query_parameter("force"));
        // Strategic merge patch is not listed, even for built-ins: kubectl would then compute
        // patches from these (partial) schemas; without it, it uses its compiled-in types.
        let patch_body = json!({"content": {
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
        }, "required": true});
        let base = resource.group_version_path();
        let (collection, item) = if resource.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", resource.plural),
                format!(
                    "{base}/namespaces/{{namespace}}/{}/{{name}}",
                    resource.plural
                ),
            )
        } else {
            (
                format!("{base}/{}", resource.plural),
                format!("{base}/{}/{{name}}", resource.plural),
            )
        };
        paths.insert(
            collection,
            json!({
                "get": operation("list", "list", json!({})),
                "post": operation("post", "create", json!({"parameters": write_parameters, "requestBody": {"content": object_content, "required": true}})),
                "delete": operation("deletecollection", "deleteCollection", json!({})),
            }),
        );
        paths.insert(
            item,
            json!({
                "get": operation("get", "read", json!({})),
                "put": operation("put", "replace", json!({"parameters": write_parameters, "requestBody": {"content": object_content, "required": true}})),
                "patch": operation("patch", "patch", json!({"parameters": patch_parameters, "requestBody": patch_body})),
                "delete": operation("delete", "delete", json!({})),
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}},
                ],
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
