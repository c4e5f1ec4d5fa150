//! Strategic merge patch for the built-in kinds, as far as kubectl's patches need it: lists with
//! a merge key (containers by name, env by name, ...) merge element-wise, `$patch: delete|replace`
//! and the `$setElementOrder`/`$retainKeys`/`$deleteFromPrimitiveList` directives are honoured;
//! everything else merges like RFC 7386.

use serde_json::{Map, Value};

/// Merge keys of the built-in types' lists (from their `patchMergeKey` struct tags).
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "hostAliases" => "ip",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "ports" => "containerPort",
        "ownerReferences" => "uid",
        "conditions" => "type",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// Lists of scalars the server merges as sets.
fn is_merged_set(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge `patch` to `target`.
pub fn apply(target: &mut Value, patch: &Value) {
    let (Some(target_map), Some(patch_map)) = (target.as_object_mut(), patch.as_object()) else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch_map.clone();
        replacement.remove("$patch");
        *target_map = replacement;
        return;
    }
    let retain: Option<Vec<String>> =
        patch_map
            .get("$retainKeys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            });
    for (key, value) in patch_map {
        if key.starts_with("$setElementOrder/") || key == "$retainKeys" || key == "$patch" {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (
                target_map.get_mut(field).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        merge_field(target_map, key, value);
    }
    if let Some(retain) = retain {
        target_map.retain(|k, _| retain.contains(k));
    }
}

fn merge_field(target: &mut Map<String, Value>, key: &str, value: &Value) {
    if value.is_null() {
        target.remove(key);
        return;
    }
    match (target.get_mut(key), value) {
        (Some(existing @ Value::Object(_)), Value::Object(_)) => apply(existing, value),
        (Some(Value::Array(existing)), Value::Array(patch_items)) => {
            if let Some(merge_key) = merge_key(key) {
                merge_list(existing, patch_items, merge_key);
            } else if is_merged_set(key) {
                for item in patch_items {
                    if !existing.contains(item) {
                        existing.push(item.clone());
                    }
                }
            } else {
                *existing = patch_items.clone();
            }
        }
        _ => {
            let mut fresh = value.clone();
            strip_directives(&mut fresh);
            target.insert(key.to_string(), fresh);
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, patch_items: &[Value], merge_key: &str) {
    if patch_items
        .iter()
        .any(|item| item.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *existing = patch_items
            .iter()
            .filter(|item| item.get("$patch").is_none())
            .cloned()
            .collect();
        return;
    }
    for item in patch_items {
        let key = &item[merge_key];
        let position = existing.iter().position(|e| &e[merge_key] == key);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(index), true) => {
                existing.remove(index);
            }
            (None, true) => {}
            (Some(index), false) => apply(&mut existing[index], item),
            (None, false) => {
                let mut fresh = item.clone();
                strip_directives(&mut fresh);
                existing.push(fresh);
            }
        }
    }
}

/// A patch value inserted as new content must not keep directive keys.
fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name_and_directives_are_dropped() {
        let mut deployment = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "envoy"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"name": "web", "image": "nginx:2"}, {"name": "sidecar", "$patch": "delete"}]
        }}}});
        apply(&mut deployment, &patch);
        assert_eq!(
            deployment,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}]}
            ]}}}})
        );
    }

    #[test]
    fn plain_fields_merge_like_json_merge_patch() {
        let mut object =
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"args": ["x"]}});
        apply(
            &mut object,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"args": ["y"]}}),
        );
        assert_eq!(
            object,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"args": ["y"]}})
        );
    }
}
