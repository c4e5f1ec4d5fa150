//! Custom resources against the structural schema (`openAPIV3Schema`) of their
//! CustomResourceDefinition, as kube-apiserver 1.33 treats them: unknown fields pruned (and named
//! for `fieldValidation`), non-nullable nulls dropped, values validated like kube-openapi's
//! validator with the apiextensions mapping to field errors, and the typed conversion
//! (structured-merge-diff) server-side apply runs on the applied configuration.
//!
//! Not simulated: `x-kubernetes-validations` (CEL rules are ignored), `default` (no defaulting),
//! list-type invariants (`x-kubernetes-list-type`), validation ratcheting, and the checks of the
//! formats `bsonobjectid`, `uri`, `email`, `hostname`, `isbn*`, `creditcard`, `ssn`,
//! `hexcolor`, `rgbcolor`, `duration` and `quantity` (accepted as any string).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use base64::Engine;
use regex::Regex;
use serde_json::{Map, Value};

use super::status::Cause;

/// The fields of `ObjectMeta`: `metadata` is pruned to these, whatever the schema says of it.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Kept at the root of a resource (and of an embedded resource) whatever the schema says.
const META_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

/// The formats apiextensions keeps for strings (`StripUnsupportedFormatsPostProcess`, with
/// go-openapi's normalisation that drops `-`); any other format is ignored.
const STRING_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "quantity",
];

fn flag(schema: &Value, key: &str) -> bool {
    schema[key].as_bool().unwrap_or(false)
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema["properties"].as_object()
}

/// `additionalProperties`: `Some(Some(schema))`, `Some(None)` for `true`, `None` when absent or
/// `false`.
fn additional(schema: &Value) -> Option<Option<&Value>> {
    match &schema["additionalProperties"] {
        Value::Object(_) => Some(Some(&schema["additionalProperties"])),
        Value::Bool(true) => Some(None),
        _ => None,
    }
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Prunes a whole custom resource as the API server's decoder does (structural pruning, then
/// `metadata` coerced to `ObjectMeta`, then non-nullable nulls without a default dropped).
/// Returns the paths of the unknown fields it removed, sorted (`metadata.foo`, `spec.bar`,
/// `spec.list[0].baz`): what `fieldValidation` Warn and Strict name.
pub fn prune(object: &mut Value, schema: &Value) -> Vec<String> {
    let mut pruned = Vec::new();
    if let Some(metadata) = object.get_mut("metadata") {
        prune_object_meta(metadata, "metadata", &mut pruned);
    }
    prune_node(object, Some(schema), "", true, &mut pruned);
    drop_nulls(object, schema);
    pruned.sort();
    pruned
}

fn prune_object_meta(metadata: &mut Value, path: &str, pruned: &mut Vec<String>) {
    if let Some(map) = metadata.as_object_mut() {
        map.retain(|key, _| {
            let known = OBJECT_META_FIELDS.contains(&key.as_str());
            if !known {
                pruned.push(child_path(path, key));
            }
            known
        });
    }
}

/// `pruning.prune`: `schema` `None` is the structural `nil` (`additionalProperties: true`), which
/// removes every field of a map below it. The resource root is an embedded resource whose
/// `metadata` [`prune`] coerced already.
fn prune_node(
    value: &mut Value,
    schema: Option<&Value>,
    path: &str,
    resource_root: bool,
    pruned: &mut Vec<String>,
) {
    if let Some(schema) = schema
        && flag(schema, "x-kubernetes-preserve-unknown-fields")
    {
        return skip_prune(value, schema, path, resource_root, pruned);
    }
    match value {
        Value::Object(map) => {
            let Some(schema) = schema else {
                for key in map.keys() {
                    pruned.push(child_path(path, key));
                }
                map.clear();
                return;
            };
            let embedded = resource_root || flag(schema, "x-kubernetes-embedded-resource");
            let props = properties(schema);
            let additional = additional(schema);
            map.retain(|key, child| {
                if embedded && META_FIELDS.contains(&key.as_str()) {
                    if key == "metadata" && !resource_root {
                        prune_object_meta(child, &child_path(path, key), pruned);
                    }
                    return true;
                }
                if let Some(property) = props.and_then(|p| p.get(key)) {
                    prune_node(child, Some(property), &child_path(path, key), false, pruned);
                    true
                } else if let Some(additional) = additional {
                    prune_node(child, additional, &child_path(path, key), false, pruned);
                    true
                } else {
                    pruned.push(child_path(path, key));
                    false
                }
            });
        }
        Value::Array(items) => {
            let item_schema = schema
                .and_then(|s| s.get("items"))
                .filter(|s| s.is_object());
            for (index, item) in items.iter_mut().enumerate() {
                prune_node(
                    item,
                    item_schema,
                    &format!("{path}[{index}]"),
                    false,
                    pruned,
                );
            }
        }
        _ => {}
    }
}

/// `pruning.skipPrune`: under `x-kubernetes-preserve-unknown-fields`, unknown fields stay and
/// the known ones are still pruned by their own schema.
fn skip_prune(
    value: &mut Value,
    schema: &Value,
    path: &str,
    resource_root: bool,
    pruned: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let embedded = resource_root || flag(schema, "x-kubernetes-embedded-resource");
            for (key, child) in map.iter_mut() {
                if embedded && META_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                if let Some(property) = properties(schema).and_then(|p| p.get(key)) {
                    prune_node(child, Some(property), &child_path(path, key), false, pruned);
                } else if let Some(additional) = additional(schema) {
                    prune_node(child, additional, &child_path(path, key), false, pruned);
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (index, item) in items.iter_mut().enumerate() {
                let item_path = format!("{path}[{index}]");
                skip_prune(item, &schema["items"], &item_path, false, pruned);
            }
        }
        _ => {}
    }
}

/// `structuraldefaulting.PruneNonNullableNullsWithoutDefaults`: a `null` where the schema is
/// neither nullable nor defaulted is dropped (in maps; nulls in lists stay and fail validation).
fn drop_nulls(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            let props = properties(schema);
            let additional = additional(schema).flatten();
            map.retain(|key, child| {
                let Some(child_schema) = props.and_then(|p| p.get(key)).or(additional) else {
                    return true;
                };
                if child.is_null() {
                    return flag(child_schema, "nullable") || child_schema.get("default").is_some();
                }
                drop_nulls(child, child_schema);
                true
            });
        }
        Value::Array(items) if schema["items"].is_object() => {
            for item in items {
                drop_nulls(item, &schema["items"]);
            }
        }
        _ => {}
    }
}

/// One field error, as `field.Error`: its type (the cause's reason), field and body.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FieldError {
    kind: &'static str,
    field: String,
    body: String,
}

impl FieldError {
    fn cause(self) -> Cause {
        Cause::new(self.kind, self.body, self.field)
    }
}

/// The field of a kube-openapi error named `name` (`kubeOpenAPIResultToFieldErrors`): the path
/// without its leading `.`, or `<nil>` (the nil root path the apiserver validates with).
fn field_of(name: &str) -> String {
    match name {
        "" | "." => "<nil>".to_string(),
        _ => name.strip_prefix('.').unwrap_or(name).to_string(),
    }
}

/// `field.Invalid` (and `TypeInvalid`, whose text is the same) of a kube-openapi error.
fn invalid(kind: &'static str, name: &str, value: &str, detail: String) -> FieldError {
    FieldError {
        kind,
        field: field_of(name),
        body: format!("Invalid value: {value}: {detail}"),
    }
}

/// The errors of the composed keywords (`errors.New`, not a `*Validation`): reported at the nil
/// root path with an empty value.
fn composite(detail: String) -> FieldError {
    FieldError {
        kind: "FieldValueInvalid",
        field: "<nil>".to_string(),
        body: format!("Invalid value: \"\": {detail}"),
    }
}

/// Validates a whole custom resource against its schema, as
/// `apiservervalidation.ValidateCustomResource` plus the embedded-resource checks; `skip` is a
/// root field left out (`status`, which writes to the main resource do not change). With `old`
/// (an update), validation ratchets as in 1.33 (`CRDValidationRatcheting`): a node equal to the
/// node of the old object it correlates with (same map key; list items of
/// `x-kubernetes-list-type: map` by their keys) is not validated again.
pub fn validate(
    object: &Value,
    schema: &Value,
    skip: Option<&str>,
    old: Option<&Value>,
) -> Vec<Cause> {
    let mut errors = Vec::new();
    validate_node_but(object, schema, "", old, skip, &mut errors);
    validate_embedded(object, schema, "", &mut errors);
    errors.into_iter().map(FieldError::cause).collect()
}

/// The JSON type kube-openapi infers for a decoded value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The format go-openapi infers for a value (only numbers have one).
fn json_format(value: &Value) -> &'static str {
    match value {
        Value::Number(n) if n.is_f64() => "double",
        Value::Number(_) => "int64",
        _ => "",
    }
}

/// The schema's types: `x-kubernetes-int-or-string` is `integer,string`.
fn types_of(schema: &Value) -> Vec<&str> {
    if flag(schema, "x-kubernetes-int-or-string") {
        return vec!["integer", "string"];
    }
    schema["type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .into_iter()
        .collect()
}

/// The format kept for validation (`StripUnsupportedFormatsPostProcess`), if any.
fn format_of<'a>(schema: &'a Value, types: &[&str]) -> &'a str {
    let format = schema["format"].as_str().unwrap_or_default();
    if format.is_empty() {
        return "";
    }
    let kept = match types {
        [] | ["string"] | [_, _] => STRING_FORMATS.contains(&format.replace('-', "").as_str()),
        ["integer"] => format == "int32" || format == "int64",
        ["number"] => format == "float" || format == "double",
        _ => false,
    };
    if kept { format } else { "" }
}

fn as_f64(value: &Value) -> Option<f64> {
    value.as_f64()
}

fn is_integral(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// `SchemaValidator.Validate`: the type, the composed keywords, then the checks of the value's
/// kind (string, format, number, list, enum, object), each adding its errors.
fn validate_node(
    value: &Value,
    schema: &Value,
    name: &str,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    validate_node_but(value, schema, name, old, None, errors);
}

/// [`validate_node`], the field `skip` of an object left out (as if it were not there).
fn validate_node_but(
    value: &Value,
    schema: &Value,
    name: &str,
    old: Option<&Value>,
    skip: Option<&str>,
    errors: &mut Vec<FieldError>,
) {
    if old == Some(value) {
        return;
    }
    let types = types_of(schema);
    let format = format_of(schema, &types);
    if value.is_null() {
        if !types.is_empty() && !types.contains(&"null") && !flag(schema, "nullable") {
            errors.push(type_error(name, &types.join(","), "null"));
        }
        validate_enum(value, schema, name, errors);
        return;
    }
    if !types.is_empty() || !format.is_empty() {
        validate_type(value, &types, format, name, errors);
    }
    validate_composed(value, schema, name, old, errors);
    match value {
        Value::String(text) => {
            validate_string(text, schema, name, errors);
            if !format.is_empty() && !format_accepts(format, text) {
                errors.push(invalid(
                    "FieldValueTypeInvalid",
                    name,
                    &go_quote(text),
                    format!(
                        "{name} in body must be of type {format}: {}",
                        go_quote(text)
                    ),
                ));
            }
        }
        Value::Number(_) => validate_number(value, schema, name, errors),
        Value::Array(items) => validate_list(items, schema, name, old, errors),
        _ => {}
    }
    validate_enum(value, schema, name, errors);
    if let Value::Object(map) = value {
        validate_object(map, schema, name, old, skip, errors);
    }
}

/// `errors.InvalidType` with data, as `field.TypeInvalid`.
fn type_error(name: &str, expected: &str, actual: &str) -> FieldError {
    invalid(
        "FieldValueTypeInvalid",
        name,
        &go_quote(actual),
        format!(
            "{name} in body must be of type {expected}: {}",
            go_quote(actual)
        ),
    )
}

/// `typeValidator.Validate`: integers pass as numbers, integral numbers as integers.
fn validate_type(
    value: &Value,
    types: &[&str],
    format: &str,
    name: &str,
    errors: &mut Vec<FieldError>,
) {
    let actual = json_type(value);
    let float_int = actual == "number" && is_integral(value) && types.contains(&"integer");
    let int_float = actual == "integer" && types.contains(&"number");
    let text_or_list = matches!(value, Value::String(_) | Value::Array(_));
    let format_fits = format.is_empty()
        || types.contains(&actual)
        || json_format(value) == format
        || float_int
        || int_float;
    if !text_or_list && !format_fits {
        errors.push(type_error(name, format, json_format(value)));
        return;
    }
    // A format on a non-numeric schema is the format validator's, not the type's.
    let numeric = types.contains(&"number") || types.contains(&"integer");
    if !numeric && !format.is_empty() && text_or_list {
        return;
    }
    if !(types.contains(&actual) || float_int || int_float) {
        errors.push(type_error(name, &types.join(","), actual));
    }
}

fn schemas<'a>(schema: &'a Value, key: &str) -> &'a [Value] {
    schema[key]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `schemaPropsValidator`: anyOf, oneOf, allOf, not. The errors of the best failing alternative
/// are kept (the first, where kube-openapi compares how many checks passed).
fn validate_composed(
    value: &Value,
    schema: &Value,
    name: &str,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    let run = |sub: &Value| {
        let mut found = Vec::new();
        validate_node(value, sub, name, old, &mut found);
        found
    };
    let any_of = schemas(schema, "anyOf");
    if !any_of.is_empty() {
        let results: Vec<Vec<FieldError>> = any_of.iter().map(run).collect();
        if results.iter().all(|r| !r.is_empty()) {
            errors.push(composite(format!(
                "{} must validate at least one schema (anyOf)",
                go_quote(name)
            )));
            errors.extend(results.into_iter().next().unwrap_or_default());
        }
    }
    let one_of = schemas(schema, "oneOf");
    if !one_of.is_empty() {
        let results: Vec<Vec<FieldError>> = one_of.iter().map(run).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid != 1 {
            let why = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errors.push(composite(format!(
                "{} must validate one and only one schema (oneOf). {why}",
                go_quote(name)
            )));
            if valid == 0 {
                errors.extend(results.into_iter().next().unwrap_or_default());
            }
        }
    }
    let all_of = schemas(schema, "allOf");
    if !all_of.is_empty() {
        let mut valid = 0;
        for sub in all_of {
            let found = run(sub);
            if found.is_empty() {
                valid += 1;
            }
            errors.extend(found);
        }
        if valid != all_of.len() {
            let none = if valid == 0 { ". None validated" } else { "" };
            errors.push(composite(format!(
                "{} must validate all the schemas (allOf){none}",
                go_quote(name)
            )));
        }
    }
    if schema["not"].is_object() && run(&schema["not"]).is_empty() {
        errors.push(composite(format!(
            "{} must not validate the schema (not)",
            go_quote(name)
        )));
    }
}

fn limit(schema: &Value, key: &str) -> Option<i64> {
    schema[key].as_i64()
}

/// `stringValidator`: the first of maxLength (characters), minLength, pattern that fails.
fn validate_string(text: &str, schema: &Value, name: &str, errors: &mut Vec<FieldError>) {
    let length = text.chars().count() as i64;
    if let Some(max) = limit(schema, "maxLength")
        && length > max
    {
        errors.push(FieldError {
            kind: "FieldValueTooLong",
            field: field_of(name),
            body: format!("Too long: may not be more than {max} bytes"),
        });
        return;
    }
    if let Some(min) = limit(schema, "minLength")
        && length < min
    {
        errors.push(invalid(
            "FieldValueInvalid",
            name,
            &go_quote(text),
            format!("{name} in body should be at least {min} chars long"),
        ));
        return;
    }
    if let Some(pattern) = schema["pattern"].as_str()
        && !pattern_matches(pattern, text)
    {
        errors.push(invalid(
            "FieldValueInvalid",
            name,
            &go_quote(text),
            format!("{name} in body should match '{pattern}'"),
        ));
    }
}

/// Compiled patterns, shared by every request (a schema's patterns are few; compiling one per
/// write would not be cheap). A pattern Go's regexp would refuse makes the CRD invalid; here it
/// matches everything.
fn pattern_matches(pattern: &str, text: &str) -> bool {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Mutex::default).lock().unwrap();
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok())
        .as_ref()
        .is_none_or(|regex| regex.is_match(text))
}

/// `numberValidator`: multipleOf, maximum, minimum, each reported.
fn validate_number(value: &Value, schema: &Value, name: &str, errors: &mut Vec<FieldError>) {
    let Some(number) = as_f64(value) else {
        return;
    };
    let shown = go_value(value);
    if let Some(factor) = schema["multipleOf"].as_f64()
        && factor > 0.0
    {
        let quotient = number / factor;
        if quotient.fract() != 0.0 {
            errors.push(invalid(
                "FieldValueInvalid",
                name,
                &shown,
                format!(
                    "{name} in body should be a multiple of {}",
                    go_float(factor)
                ),
            ));
        }
    }
    if let Some(max) = schema["maximum"].as_f64() {
        let exclusive = flag(schema, "exclusiveMaximum");
        if number > max || (exclusive && number == max) {
            let relation = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(invalid(
                "FieldValueInvalid",
                name,
                &shown,
                format!("{name} in body should be {relation} {}", go_float(max)),
            ));
        }
    }
    if let Some(min) = schema["minimum"].as_f64() {
        let exclusive = flag(schema, "exclusiveMinimum");
        if number < min || (exclusive && number == min) {
            let relation = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(invalid(
                "FieldValueInvalid",
                name,
                &shown,
                format!("{name} in body should be {relation} {}", go_float(min)),
            ));
        }
    }
}

/// `schemaSliceValidator`: the items, then minItems, maxItems, uniqueItems.
fn validate_list(
    items: &[Value],
    schema: &Value,
    name: &str,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    if schema["items"].is_object() {
        let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
            .as_array()
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let old_items = old
            .and_then(Value::as_array)
            .filter(|_| schema["x-kubernetes-list-type"] == "map" && !keys.is_empty());
        for (index, item) in items.iter().enumerate() {
            let correlated = old_items.and_then(|olds| {
                olds.iter().find(|o| {
                    keys.iter()
                        .all(|k| o.get(*k).is_some() && o.get(*k) == item.get(*k))
                })
            });
            validate_node(
                item,
                &schema["items"],
                &format!("{name}[{index}]"),
                correlated,
                errors,
            );
        }
    }
    let size = items.len() as i64;
    if let Some(min) = limit(schema, "minItems")
        && size < min
    {
        errors.push(invalid(
            "FieldValueInvalid",
            name,
            &size.to_string(),
            format!("{name} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = limit(schema, "maxItems")
        && size > max
    {
        errors.push(FieldError {
            kind: "FieldValueTooMany",
            field: field_of(name),
            body: format!("Too many: {size}: must have at most {max} items"),
        });
    }
    if flag(schema, "uniqueItems") {
        let mut seen = HashSet::with_capacity(items.len());
        if !items.iter().all(|item| seen.insert(item.to_string())) {
            errors.push(invalid(
                "FieldValueInvalid",
                name,
                "\"\"",
                format!("{name} in body shouldn't contain duplicates"),
            ));
        }
    }
    // apiextensions' listtype validation: a set holds each value once, a map each key once.
    let key_of = |item: &Value| -> String {
        match schema["x-kubernetes-list-type"].as_str() {
            Some("map") => {
                let keys = schema["x-kubernetes-list-map-keys"].as_array();
                let key: serde_json::Map<String, Value> = keys
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter_map(|k| item.get(k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                Value::Object(key).to_string()
            }
            _ => item.to_string(),
        }
    };
    if matches!(
        schema["x-kubernetes-list-type"].as_str(),
        Some("set" | "map")
    ) {
        let mut seen = HashSet::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let key = key_of(item);
            if !seen.insert(key.clone()) {
                let shown = if schema["x-kubernetes-list-type"] == "set" {
                    go_value(item)
                } else {
                    key
                };
                errors.push(FieldError {
                    kind: "FieldValueDuplicate",
                    field: field_of(&format!("{name}[{index}]")),
                    body: format!("Duplicate value: {shown}"),
                });
            }
        }
    }
}

/// Go's `reflect.DeepEqual` after conversion, as `basicCommonValidator` compares: numbers by
/// value, everything else exactly.
fn enum_matches(value: &Value, allowed: &Value) -> bool {
    match (value, allowed) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => value == allowed,
    }
}

/// `basicCommonValidator`: `enum`, reported as `field.NotSupported` with the allowed values.
fn validate_enum(value: &Value, schema: &Value, name: &str, errors: &mut Vec<FieldError>) {
    let Some(allowed) = schema["enum"].as_array().filter(|a| !a.is_empty()) else {
        return;
    };
    if allowed.iter().any(|a| enum_matches(value, a)) {
        return;
    }
    let supported: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(text) => go_quote(text),
            other => go_quote(&other.to_string()),
        })
        .collect();
    errors.push(FieldError {
        kind: "FieldValueNotSupported",
        field: field_of(name),
        body: format!(
            "Unsupported value: {}: supported values: {}",
            go_value(value),
            supported.join(", ")
        ),
    });
}

/// `objectValidator`: min/maxProperties (which end the check), additionalProperties schemas,
/// the properties, then `required`.
fn validate_object(
    map: &Map<String, Value>,
    schema: &Value,
    name: &str,
    old: Option<&Value>,
    skip: Option<&str>,
    errors: &mut Vec<FieldError>,
) {
    let old_child = |key: &str| old.and_then(|o| o.get(key));
    let kept = |key: &str| skip != Some(key);
    let count = map.keys().filter(|k| kept(k)).count() as i64;
    if let Some(min) = limit(schema, "minProperties")
        && count < min
    {
        errors.push(invalid(
            "FieldValueInvalid",
            name,
            &count.to_string(),
            format!("{name} in body should have at least {min} properties"),
        ));
        return;
    }
    if let Some(max) = limit(schema, "maxProperties")
        && count > max
    {
        errors.push(FieldError {
            kind: "FieldValueTooMany",
            field: field_of(name),
            body: format!("Too many: {count}: must have at most {max} items"),
        });
        return;
    }
    let props = properties(schema);
    if let Some(Some(additional)) = additional(schema) {
        for (key, child) in map.iter().filter(|(k, _)| kept(k)) {
            if props.is_none_or(|p| !p.contains_key(key)) {
                validate_node(
                    child,
                    additional,
                    &format!("{name}.{key}"),
                    old_child(key),
                    errors,
                );
            }
        }
    }
    if let Some(props) = props {
        for (key, property) in props {
            if let Some(child) = map.get(key).filter(|_| kept(key)) {
                validate_node(
                    child,
                    property,
                    &child_path(name, key),
                    old_child(key),
                    errors,
                );
            }
        }
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        if let Some(key) = required.as_str()
            && !(map.contains_key(key) && kept(key))
        {
            errors.push(FieldError {
                kind: "FieldValueRequired",
                field: field_of(&format!("{name}.{key}")),
                body: "Required value".to_string(),
            });
        }
    }
}

/// `objectmeta.Validate` for `x-kubernetes-embedded-resource` objects: apiVersion and kind are
/// required strings. (Their metadata is not validated here.)
fn validate_embedded(value: &Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(map) => {
            if flag(schema, "x-kubernetes-embedded-resource") {
                for key in ["apiVersion", "kind"] {
                    let field = child_path(path, key);
                    match map.get(key) {
                        None => errors.push(FieldError {
                            kind: "FieldValueRequired",
                            field,
                            body: "Required value: must not be empty".to_string(),
                        }),
                        Some(Value::String(text)) if text.is_empty() => errors.push(FieldError {
                            kind: "FieldValueInvalid",
                            field,
                            body: "Invalid value: \"\": must not be empty".to_string(),
                        }),
                        Some(Value::String(_)) => {}
                        Some(other) => errors.push(FieldError {
                            kind: "FieldValueInvalid",
                            field,
                            body: format!("Invalid value: {}: must be a string", go_value(other)),
                        }),
                    }
                }
            }
            let props = properties(schema);
            let additional = additional(schema).flatten();
            for (key, child) in map {
                if let Some(child_schema) = props.and_then(|p| p.get(key)).or(additional) {
                    validate_embedded(child, child_schema, &child_path(path, key), errors);
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (index, item) in items.iter().enumerate() {
                validate_embedded(item, &schema["items"], &format!("{path}[{index}]"), errors);
            }
        }
        _ => {}
    }
}

/// The string formats checked (go-openapi's strfmt): dates, base64, UUIDs, IP addresses, CIDRs
/// and MAC addresses. The other kept formats accept any string.
fn format_accepts(format: &str, text: &str) -> bool {
    use std::net::IpAddr;
    let uuid = |version: Option<char>| {
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        let dashes_ok = text.len() == 32 || text.len() == 36;
        dashes_ok
            && hex.len() == 32
            && hex.chars().all(|c| c.is_ascii_hexdigit())
            && version.is_none_or(|v| hex.as_bytes()[12] == v as u8)
    };
    match format.replace('-', "").as_str() {
        "date" => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok(),
        "datetime" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
        "byte" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .is_ok(),
        "uuid" => uuid(None),
        "uuid3" => uuid(Some('3')),
        "uuid4" => uuid(Some('4')),
        "uuid5" => uuid(Some('5')),
        "ipv4" => text.parse::<IpAddr>().is_ok() && text.contains('.'),
        "ipv6" => text.parse::<IpAddr>().is_ok() && text.contains(':'),
        "cidr" => text.split_once('/').is_some_and(|(ip, bits)| {
            let max = match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => 32,
                Ok(IpAddr::V6(_)) => 128,
                Err(_) => return false,
            };
            !bits.is_empty()
                && bits.chars().all(|c| c.is_ascii_digit())
                && bits.parse::<u32>().is_ok_and(|b| b <= max)
        }),
        "mac" => {
            let groups: Vec<&str> = text.split([':', '-']).collect();
            let dotted: Vec<&str> = text.split('.').collect();
            let hex = |part: &&str, len: usize| {
                part.len() == len && part.chars().all(|c| c.is_ascii_hexdigit())
            };
            (matches!(groups.len(), 6 | 8 | 20) && groups.iter().all(|g| hex(g, 2)))
                || (matches!(dotted.len(), 3 | 4 | 10) && dotted.iter().all(|g| hex(g, 4)))
        }
        _ => true,
    }
}

/// Server-side apply's typed conversion of the applied configuration (structured-merge-diff's
/// `ObjectToTyped`): fields the schema does not declare and scalars of the wrong type. The
/// messages, joined as `ValidationErrors` joins them; empty when the configuration converts.
pub fn typed_conversion_errors(config: &Value, schema: &Value) -> Option<String> {
    let mut errors = Vec::new();
    if let Value::Object(map) = config {
        for (key, child) in map {
            let path = format!(".{key}");
            match key.as_str() {
                "apiVersion" | "kind" => check_scalar(child, "string", &path, &mut errors),
                "metadata" => check_object_meta(child, &path, &mut errors),
                _ => match properties(schema).and_then(|p| p.get(key)) {
                    Some(property) => check_typed(child, property, &path, &mut errors),
                    None if flag(schema, "x-kubernetes-preserve-unknown-fields") => {}
                    None => match additional(schema) {
                        Some(Some(additional)) => {
                            check_typed(child, additional, &path, &mut errors)
                        }
                        Some(None) => {}
                        None => errors.push(format!("{path}: field not declared in schema")),
                    },
                },
            }
        }
    }
    match errors.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(format!("errors:\n  {}", many.join("\n  "))),
    }
}

fn check_object_meta(metadata: &Value, path: &str, errors: &mut Vec<String>) {
    if let Value::Object(map) = metadata {
        for key in map.keys() {
            if !OBJECT_META_FIELDS.contains(&key.as_str()) {
                errors.push(format!("{path}.{key}: field not declared in schema"));
            }
        }
    }
}

fn check_typed(value: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        return;
    }
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    match schema["type"].as_str().unwrap_or_default() {
        "object" => {
            let Value::Object(map) = value else {
                errors.push(format!(
                    "{path}: expected map, got &{{{}}}",
                    go_plain(value)
                ));
                return;
            };
            let embedded = flag(schema, "x-kubernetes-embedded-resource");
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if embedded && META_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                match properties(schema).and_then(|p| p.get(key)) {
                    Some(property) => check_typed(child, property, &child_path, errors),
                    None => match additional(schema) {
                        Some(Some(additional)) => {
                            check_typed(child, additional, &child_path, errors)
                        }
                        Some(None) => {}
                        None if preserve => {}
                        None => errors.push(format!("{child_path}: field not declared in schema")),
                    },
                }
            }
        }
        "array" => {
            let Value::Array(items) = value else {
                errors.push(format!(
                    "{path}: expected list, got &{{{}}}",
                    go_plain(value)
                ));
                return;
            };
            if schema["items"].is_object() {
                for (index, item) in items.iter().enumerate() {
                    check_typed(item, &schema["items"], &format!("{path}[{index}]"), errors);
                }
            }
        }
        "integer" | "number" => check_scalar(value, "numeric", path, errors),
        "string" => check_scalar(value, "string", path, errors),
        "boolean" => check_scalar(value, "boolean", path, errors),
        _ => {}
    }
}

/// structured-merge-diff's `validateScalar`.
fn check_scalar(value: &Value, scalar: &str, path: &str, errors: &mut Vec<String>) {
    let message = match (scalar, value) {
        (_, Value::Null)
        | ("numeric", Value::Number(_))
        | ("string", Value::String(_))
        | ("boolean", Value::Bool(_)) => return,
        ("numeric", other) => format!("expected numeric (int or float), got {}", go_type(other)),
        ("string", other) => format!(
            "expected string, got &value.valueUnstructured{{Value:{}}}",
            go_sharp(other)
        ),
        (_, other) => format!("expected boolean, got &{{{}}}", go_plain(other)),
    };
    errors.push(format!("{path}: {message}"));
}

/// Go's `%T` of a decoded JSON value.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's `%q`: a double-quoted string with Go escapes.
pub fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\u{b}' => quoted.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                quoted.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Go's `%v` of a float64 (shortest digits; exponent form below 1e-4 and from 1e21).
pub fn go_float(number: f64) -> String {
    let magnitude = number.abs();
    if magnitude != 0.0 && !(1e-4..1e21).contains(&magnitude) {
        let text = format!("{number:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    format!("{number}")
}

/// How `field.Error` shows a bad value: `%v` of numbers and booleans, `%q` of strings, `"null"`
/// for null, `%#v` of maps and lists.
fn go_value(value: &Value) -> String {
    match value {
        Value::Null => go_quote("null"),
        Value::String(text) => go_quote(text),
        Value::Number(n) if n.is_f64() => go_float(n.as_f64().unwrap_or_default()),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => go_sharp(other),
    }
}

/// Go's `%#v` of a decoded JSON value (map keys sorted, as fmt prints them).
fn go_sharp(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".to_string(),
        Value::String(text) => go_quote(text),
        Value::Number(n) if n.is_f64() => go_float(n.as_f64().unwrap_or_default()),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => format!(
            "[]interface {{}}{{{}}}",
            items.iter().map(go_sharp).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", go_quote(k), go_sharp(&map[k])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", entries.join(", "))
        }
    }
}

/// Go's `%v` of a decoded JSON value.
fn go_plain(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::String(text) => text.clone(),
        Value::Number(n) if n.is_f64() => go_float(n.as_f64().unwrap_or_default()),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_plain).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_plain(&map[k])))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The `field: body` lines of validating `object` against a root schema.
    fn errors(schema: Value, object: Value) -> Vec<String> {
        validate(&object, &schema, None, None)
            .into_iter()
            .map(|c| format!("{} | {}: {}", c.kind, c.field, c.message))
            .collect()
    }

    fn spec(properties: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}})
    }

    #[test]
    fn types_accept_integral_numbers_as_integers_and_integers_as_numbers() {
        let schema = spec(json!({"i": {"type": "integer"}, "n": {"type": "number"},
            "b": {"type": "boolean"}, "s": {"type": "string"}, "o": {"type": "object"},
            "a": {"type": "array"}, "ios": {"x-kubernetes-int-or-string": true}}));
        assert!(
            errors(
                schema.clone(),
                json!({"spec": {"i": 2.0, "n": 3, "b": true, "s": "x",
            "o": {}, "a": [], "ios": "50%"}})
            )
            .is_empty()
        );
        assert_eq!(
            errors(
                schema,
                json!({"spec": {"i": 2.5, "n": "1", "b": 1, "s": [], "o": [],
                "a": {}, "ios": true}})
            ),
            [
                "FieldValueTypeInvalid | spec.i: Invalid value: \"number\": spec.i in body must be of type integer: \"number\"",
                "FieldValueTypeInvalid | spec.n: Invalid value: \"string\": spec.n in body must be of type number: \"string\"",
                "FieldValueTypeInvalid | spec.b: Invalid value: \"integer\": spec.b in body must be of type boolean: \"integer\"",
                "FieldValueTypeInvalid | spec.s: Invalid value: \"array\": spec.s in body must be of type string: \"array\"",
                "FieldValueTypeInvalid | spec.o: Invalid value: \"array\": spec.o in body must be of type object: \"array\"",
                "FieldValueTypeInvalid | spec.a: Invalid value: \"object\": spec.a in body must be of type array: \"object\"",
                "FieldValueTypeInvalid | spec.ios: Invalid value: \"boolean\": spec.ios in body must be of type integer,string: \"boolean\"",
            ]
        );
    }

    #[test]
    fn null_is_a_type_error_unless_nullable() {
        let schema = spec(
            json!({"a": {"type": "string"}, "b": {"type": "string", "nullable": true},
            "l": {"type": "array", "items": {"type": "string"}}}),
        );
        assert_eq!(
            errors(schema, json!({"spec": {"a": null, "b": null, "l": [null]}})),
            [
                "FieldValueTypeInvalid | spec.a: Invalid value: \"null\": spec.a in body must be of type string: \"null\"",
                "FieldValueTypeInvalid | spec.l[0]: Invalid value: \"null\": spec.l[0] in body must be of type string: \"null\"",
            ]
        );
    }

    #[test]
    fn numbers_strings_lists_and_maps_are_bounded() {
        let schema = spec(json!({
            "min": {"type": "integer", "minimum": 1},
            "xmin": {"type": "integer", "minimum": 1, "exclusiveMinimum": true},
            "max": {"type": "number", "maximum": 1.5},
            "xmax": {"type": "number", "maximum": 1.5, "exclusiveMaximum": true},
            "mult": {"type": "integer", "multipleOf": 3},
            "long": {"type": "string", "maxLength": 3},
            "short": {"type": "string", "minLength": 3},
            "pat": {"type": "string", "pattern": "^[a-z]+$"},
            "few": {"type": "array", "minItems": 2},
            "many": {"type": "array", "maxItems": 1},
            "uniq": {"type": "array", "uniqueItems": true},
            "lean": {"type": "object", "minProperties": 1},
            "fat": {"type": "object", "maxProperties": 1},
        }));
        // Characters, not bytes, count: "héé" is three long.
        assert!(
            errors(
                schema.clone(),
                json!({"spec": {"long": "héé", "short": "héé", "min": 1,
                "xmin": 2, "max": 1.5, "mult": 6, "pat": "ab", "uniq": [1, "1"]}})
            )
            .is_empty()
        );
        assert_eq!(
            errors(
                schema,
                json!({"spec": {"min": 0, "xmin": 1, "max": 2, "xmax": 1.5,
                "mult": 4, "long": "abcd", "short": "ab", "pat": "A", "few": [1],
                "many": [1, 2], "uniq": [{"a": 1}, {"a": 1}], "lean": {}, "fat": {"a": 1, "b": 2}}})
            ),
            [
                "FieldValueInvalid | spec.min: Invalid value: 0: spec.min in body should be greater than or equal to 1",
                "FieldValueInvalid | spec.xmin: Invalid value: 1: spec.xmin in body should be greater than 1",
                "FieldValueInvalid | spec.max: Invalid value: 2: spec.max in body should be less than or equal to 1.5",
                "FieldValueInvalid | spec.xmax: Invalid value: 1.5: spec.xmax in body should be less than 1.5",
                "FieldValueInvalid | spec.mult: Invalid value: 4: spec.mult in body should be a multiple of 3",
                "FieldValueTooLong | spec.long: Too long: may not be more than 3 bytes",
                "FieldValueInvalid | spec.short: Invalid value: \"ab\": spec.short in body should be at least 3 chars long",
                "FieldValueInvalid | spec.pat: Invalid value: \"A\": spec.pat in body should match '^[a-z]+$'",
                "FieldValueInvalid | spec.few: Invalid value: 1: spec.few in body should have at least 2 items",
                "FieldValueTooMany | spec.many: Too many: 2: must have at most 1 items",
                "FieldValueInvalid | spec.uniq: Invalid value: \"\": spec.uniq in body shouldn't contain duplicates",
                "FieldValueInvalid | spec.lean: Invalid value: 0: spec.lean in body should have at least 1 properties",
                "FieldValueTooMany | spec.fat: Too many: 2: must have at most 1 items",
            ]
        );
    }

    #[test]
    fn enums_list_their_values_and_compare_numbers_by_value() {
        let schema =
            spec(json!({"e": {"enum": ["a", 1, true]}, "n": {"type": "number", "enum": [1]}}));
        assert!(errors(schema.clone(), json!({"spec": {"e": "a", "n": 1.0}})).is_empty());
        assert_eq!(
            errors(schema, json!({"spec": {"e": {"k": [1, "x"]}, "n": 2}})),
            [
                "FieldValueNotSupported | spec.e: Unsupported value: map[string]interface {}{\"k\":[]interface {}{1, \"x\"}}: supported values: \"a\", \"1\", \"true\"",
                "FieldValueNotSupported | spec.n: Unsupported value: 2: supported values: \"1\"",
            ]
        );
    }

    #[test]
    fn formats_kube_keeps_are_checked_and_others_ignored() {
        let schema = spec(json!({
            "t": {"type": "string", "format": "date-time"},
            "d": {"type": "string", "format": "date"},
            "u": {"type": "string", "format": "uuid"},
            "ip": {"type": "string", "format": "ipv4"},
            "c": {"type": "string", "format": "cidr"},
            "b": {"type": "string", "format": "byte"},
            "other": {"type": "string", "format": "no-such-format"},
            "i": {"type": "integer", "format": "int32"},
        }));
        assert!(
            errors(
                schema.clone(),
                json!({"spec": {"t": "2024-01-02T03:04:05Z", "d": "2024-01-02",
                "u": "123e4567-e89b-12d3-a456-426614174000", "ip": "10.0.0.1", "c": "10.0.0.0/8",
                "b": "aGk=", "other": "anything", "i": 7}})
            )
            .is_empty()
        );
        assert_eq!(
            errors(
                schema,
                json!({"spec": {"t": "yesterday", "d": "2024-13-01", "u": "x",
                "ip": "::1", "c": "10.0.0.0/33", "b": "!"}})
            ),
            [
                "FieldValueTypeInvalid | spec.t: Invalid value: \"yesterday\": spec.t in body must be of type date-time: \"yesterday\"",
                "FieldValueTypeInvalid | spec.d: Invalid value: \"2024-13-01\": spec.d in body must be of type date: \"2024-13-01\"",
                "FieldValueTypeInvalid | spec.u: Invalid value: \"x\": spec.u in body must be of type uuid: \"x\"",
                "FieldValueTypeInvalid | spec.ip: Invalid value: \"::1\": spec.ip in body must be of type ipv4: \"::1\"",
                "FieldValueTypeInvalid | spec.c: Invalid value: \"10.0.0.0/33\": spec.c in body must be of type cidr: \"10.0.0.0/33\"",
                "FieldValueTypeInvalid | spec.b: Invalid value: \"!\": spec.b in body must be of type byte: \"!\"",
            ]
        );
    }

    #[test]
    fn composed_keywords_report_at_the_nil_root_with_the_best_failure() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
            "allOf": [{"required": ["a"]}],
            "not": {"required": ["c"]},
        }}});
        assert!(errors(schema.clone(), json!({"spec": {"a": "x"}})).is_empty());
        assert_eq!(
            errors(schema.clone(), json!({"spec": {"c": "x"}})),
            [
                "FieldValueInvalid | <nil>: Invalid value: \"\": \"spec\" must validate at least one schema (anyOf)",
                "FieldValueRequired | spec.a: Required value",
                "FieldValueInvalid | <nil>: Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found none valid",
                "FieldValueRequired | spec.a: Required value",
                "FieldValueRequired | spec.a: Required value",
                "FieldValueInvalid | <nil>: Invalid value: \"\": \"spec\" must validate all the schemas (allOf). None validated",
                "FieldValueInvalid | <nil>: Invalid value: \"\": \"spec\" must not validate the schema (not)",
            ]
        );
        assert_eq!(
            errors(schema, json!({"spec": {"a": "x", "b": "y"}})),
            [
                "FieldValueInvalid | <nil>: Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
            ]
        );
    }

    #[test]
    fn additional_properties_type_map_values() {
        let schema = spec(json!({"labels": {"type": "object",
            "additionalProperties": {"type": "string", "maxLength": 2}}}));
        assert_eq!(
            errors(
                schema,
                json!({"spec": {"labels": {"ok": "ab", "n": 1, "long": "abc"}}})
            ),
            [
                "FieldValueTypeInvalid | spec.labels.n: Invalid value: \"integer\": spec.labels.n in body must be of type string: \"integer\"",
                "FieldValueTooLong | spec.labels.long: Too long: may not be more than 2 bytes",
            ]
        );
    }

    #[test]
    fn embedded_resources_need_api_version_and_kind_and_keep_their_metadata() {
        let schema = spec(json!({"template": {"type": "object",
            "x-kubernetes-embedded-resource": true,
            "properties": {"spec": {"type": "object"}}}}));
        let mut object = json!({"spec": {"template": {"kind": 3,
            "metadata": {"name": "t", "bogus": 1}, "spec": {}, "extra": 1}}});
        let pruned = prune(&mut object, &schema);
        assert_eq!(
            pruned,
            ["spec.template.extra", "spec.template.metadata.bogus"]
        );
        assert_eq!(object["spec"]["template"]["metadata"], json!({"name": "t"}));
        assert_eq!(
            errors(schema, object),
            [
                "FieldValueRequired | spec.template.apiVersion: Required value: must not be empty",
                "FieldValueInvalid | spec.template.kind: Invalid value: 3: must be a string",
            ]
        );
    }

    #[test]
    fn pruning_keeps_the_root_meta_fields_and_what_preserve_unknown_fields_covers() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "list": {"type": "array", "items": {"type": "object",
                    "properties": {"name": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {"typed": {"type": "object", "properties": {}}}},
                "n": {"type": "integer"},
                "m": {"type": "integer", "nullable": true},
            }},
        }});
        let mut object = json!({
            "apiVersion": "g/v1", "kind": "K",
            "metadata": {"name": "a", "labels": {"x": "y"}, "surprise": true},
            "spec": {
                "list": [{"name": "a", "extra": 1}, {"name": "b"}],
                "free": {"anything": {"deep": 1}, "typed": {"gone": 1}},
                "n": null, "m": null,
            },
            "status": {"phase": "x"},
        });
        let pruned = prune(&mut object, &schema);
        assert_eq!(
            pruned,
            [
                "metadata.surprise",
                "spec.free.typed.gone",
                "spec.list[0].extra",
                "status",
            ]
        );
        assert_eq!(
            object,
            json!({
                "apiVersion": "g/v1", "kind": "K",
                "metadata": {"name": "a", "labels": {"x": "y"}},
                "spec": {
                    "list": [{"name": "a"}, {"name": "b"}],
                    "free": {"anything": {"deep": 1}, "typed": {}},
                    "m": null,
                },
            })
        );
    }

    #[test]
    fn the_typed_conversion_of_apply_names_undeclared_fields_and_wrong_scalars() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "n": {"type": "integer"}, "s": {"type": "string"}, "b": {"type": "boolean"},
                "l": {"type": "array", "items": {"type": "object", "properties": {}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }},
        }});
        let fine = json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"n": 1.5, "s": "x", "b": false, "l": [{}], "free": {"any": 1}}});
        assert_eq!(typed_conversion_errors(&fine, &schema), None);
        let one = json!({"spec": {"n": "1"}});
        assert_eq!(
            typed_conversion_errors(&one, &schema).unwrap(),
            ".spec.n: expected numeric (int or float), got string"
        );
        let many = json!({"metadata": {"oops": 1}, "spec": {"s": 1, "b": "no",
            "l": [{"x": 1}]}, "top": 1});
        assert_eq!(
            typed_conversion_errors(&many, &schema).unwrap(),
            "errors:\n  .metadata.oops: field not declared in schema\n  .spec.s: expected string, got &value.valueUnstructured{Value:1}\n  .spec.b: expected boolean, got &{no}\n  .spec.l[0].x: field not declared in schema\n  .top: field not declared in schema"
        );
    }

    #[test]
    fn a_skipped_root_field_is_validated_as_absent() {
        let schema = json!({"type": "object", "required": ["status"], "maxProperties": 1,
            "properties": {"spec": {"type": "object"}, "status": {"type": "string"}}});
        let object = json!({"spec": {}, "status": {}});
        let causes: Vec<String> = validate(&object, &schema, Some("status"), None)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(causes, ["status: Required value"]);
    }

    #[test]
    fn a_list_type_set_holds_each_value_once_and_a_map_each_key() {
        let schema = spec(json!({
            "hosts": {"type": "array", "x-kubernetes-list-type": "set",
                "items": {"type": "string"}},
            "volumes": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        }));
        assert_eq!(
            errors(
                schema,
                json!({"spec": {"hosts": ["a", "b", "a"],
                    "volumes": [{"name": "x", "size": 1}, {"name": "y"}, {"name": "x"}]}})
            ),
            [
                "FieldValueDuplicate | spec.hosts[2]: Duplicate value: \"a\"",
                "FieldValueDuplicate | spec.volumes[2]: Duplicate value: {\"name\":\"x\"}",
            ]
        );
    }

    #[test]
    fn go_formatting_of_values() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e-7), "1.5e-07");
    }
}
