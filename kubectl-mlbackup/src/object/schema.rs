//! Whether a CustomResourceDefinition's structural schema (`openAPIV3Schema`) accepts an object,
//! with the errors kube-apiserver gives: the value validation of
//! `k8s.io/apiextensions-apiserver/pkg/apiserver/validation` (kube-openapi's validator), and the
//! unknown fields that pruning would drop, which a `fieldValidation=Strict` write refuses.
//!
//! Not checked here, as they need the server: `x-kubernetes-validations` (CEL rules), `format`
//! (kube checks a list of formats that this offline check does not claim to match), defaults,
//! admission webhooks and quotas.

use std::fmt;

use serde_json::{Map, Value};

/// One reason the schema refuses an object, printed as kube-apiserver prints a field error
/// (`spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer:
/// "string"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, as the API server writes it: `spec.ports[0].name`.
    pub field: String,
    pub kind: FieldErrorKind,
}

/// The kinds of field errors (`k8s.io/apimachinery/pkg/util/validation/field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Invalid value: VALUE: DETAIL`.
    Invalid { value: String, detail: String },
    /// `Required value`.
    Required,
    /// `Unsupported value: VALUE: supported values: "a", "b"`.
    NotSupported {
        value: String,
        supported: Vec<String>,
    },
    /// `Duplicate value: VALUE`.
    Duplicate { value: String },
    /// A field the schema does not declare: pruned by a default write, refused by a strict one
    /// (`unknown field "spec.foo"`, as a strict create says).
    Unknown,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        match &self.kind {
            FieldErrorKind::Invalid { value, detail } => {
                write!(f, "{field}: Invalid value: {value}: {detail}")
            }
            FieldErrorKind::Required => write!(f, "{field}: Required value"),
            FieldErrorKind::NotSupported { value, supported } => write!(
                f,
                "{field}: Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ),
            FieldErrorKind::Duplicate { value } => write!(f, "{field}: Duplicate value: {value}"),
            FieldErrorKind::Unknown => write!(f, "unknown field \"{field}\""),
        }
    }
}

/// The `openAPIV3Schema` of `version` in a CustomResourceDefinition (`apiextensions.k8s.io/v1`
/// keeps one per version; `v1beta1` may keep one for all in `spec.validation`). `None` when the
/// definition has no schema for it.
pub fn of_version<'a>(definition: &'a Value, version: &str) -> Option<&'a Value> {
    let spec = &definition["spec"];
    let own = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == version)?;
    [
        &own["schema"]["openAPIV3Schema"],
        &spec["validation"]["openAPIV3Schema"],
    ]
    .into_iter()
    .find(|schema| schema.is_object())
}

/// Every reason `schema` (a CRD version's `openAPIV3Schema`) refuses `object`, in field order.
/// `apiVersion`, `kind` and `metadata` are the API server's (validated as ObjectMeta, not by
/// the schema) and are skipped, as kube-apiserver does.
pub fn validate(schema: &Value, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(fields) = object.as_object() else {
        errors.push(invalid_type("", object, "object"));
        return errors;
    };
    let mut rest = Map::new();
    for (key, value) in fields {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            rest.insert(key.clone(), value.clone());
        }
    }
    let mut validator = Validator {
        errors: &mut errors,
        unknown: true,
    };
    // Of the metadata a schema may only restrict `name` and `generateName` (apiextensions'
    // structural schema rules), and those restrictions hold.
    for key in ["name", "generateName"] {
        if let Some(value) = fields.get("metadata").and_then(|m| m.get(key)) {
            let rules = &schema["properties"]["metadata"]["properties"][key];
            validator.value(rules, value, &format!("metadata.{key}"));
        }
    }
    validator.object_fields(schema, &rest, "");
    errors
}

struct Validator<'e> {
    errors: &'e mut Vec<FieldError>,
    /// Whether fields the schema does not declare are errors (the structural schema); the
    /// branches of `allOf`/`anyOf`/`oneOf`/`not` only validate values.
    unknown: bool,
}

impl Validator<'_> {
    fn push(&mut self, field: &str, kind: FieldErrorKind) {
        self.errors.push(FieldError {
            field: field.to_string(),
            kind,
        });
    }

    fn invalid(&mut self, field: &str, value: String, detail: String) {
        self.push(field, FieldErrorKind::Invalid { value, detail });
    }

    fn value(&mut self, schema: &Value, value: &Value, path: &str) {
        let Some(rules) = schema.as_object() else {
            return;
        };
        if value.is_null() {
            // A null the schema does not allow is pruned (CRD defaulting and nullable docs),
            // unless the schema keeps it.
            return;
        }
        let int_or_string = flag(rules, "x-kubernetes-int-or-string");
        if int_or_string {
            if !(value.is_string() || is_integer(value)) {
                self.invalid(
                    path,
                    quoted(type_name(value)),
                    format!(
                        "{} in body must be of type integer-or-string: {}",
                        path,
                        quoted(type_name(value))
                    ),
                );
                return;
            }
        } else if let Some(wanted) = rules.get("type").and_then(Value::as_str)
            && !has_type(value, wanted)
        {
            self.errors.push(invalid_type(path, value, wanted));
            return;
        }
        self.enumeration(rules, value, path);
        match value {
            Value::String(text) => self.string(rules, text, path),
            Value::Number(number) => self.number(rules, number.as_f64().unwrap_or(0.0), path),
            Value::Array(items) => self.array(rules, items, path),
            Value::Object(fields) => self.object(schema, fields, path),
            _ => {}
        }
        self.combinators(rules, value, path);
    }

    fn enumeration(&mut self, rules: &Map<String, Value>, value: &Value, path: &str) {
        if let Some(allowed) = rules.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            self.push(
                path,
                FieldErrorKind::NotSupported {
                    value: go_value(value),
                    supported: allowed.iter().map(go_value).collect(),
                },
            );
        }
    }

    fn string(&mut self, rules: &Map<String, Value>, text: &str, path: &str) {
        let length = text.chars().count() as u64;
        if let Some(max) = rules.get("maxLength").and_then(Value::as_u64)
            && length > max
        {
            let detail = format!("{} in body should be at most {max} chars long", path);
            self.invalid(path, go_value(&Value::from(text)), detail);
        }
        if let Some(min) = rules.get("minLength").and_then(Value::as_u64)
            && length < min
        {
            let detail = format!("{} in body should be at least {min} chars long", path);
            self.invalid(path, go_value(&Value::from(text)), detail);
        }
        if let Some(pattern) = rules.get("pattern").and_then(Value::as_str) {
            // kube-apiserver compiles patterns with Go's RE2 syntax, which the regex crate
            // shares; a pattern it cannot compile is not held against the object.
            if let Ok(regex) = regex::Regex::new(pattern)
                && !regex.is_match(text)
            {
                let detail = format!("{} in body should match '{pattern}'", path);
                self.invalid(path, go_value(&Value::from(text)), detail);
            }
        }
    }

    fn number(&mut self, rules: &Map<String, Value>, number: f64, path: &str) {
        let exclusive = |key: &str| flag(rules, key);
        if let Some(max) = rules.get("maximum").and_then(Value::as_f64) {
            let over = if exclusive("exclusiveMaximum") {
                number >= max
            } else {
                number > max
            };
            if over {
                let how = if exclusive("exclusiveMaximum") {
                    "less than"
                } else {
                    "less than or equal to"
                };
                let detail = format!("{} in body should be {how} {}", path, go_float(max));
                self.invalid(path, go_float(number), detail);
            }
        }
        if let Some(min) = rules.get("minimum").and_then(Value::as_f64) {
            let under = if exclusive("exclusiveMinimum") {
                number <= min
            } else {
                number < min
            };
            if under {
                let how = if exclusive("exclusiveMinimum") {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                let detail = format!("{} in body should be {how} {}", path, go_float(min));
                self.invalid(path, go_float(number), detail);
            }
        }
        if let Some(factor) = rules.get("multipleOf").and_then(Value::as_f64)
            && factor > 0.0
            && (number / factor).fract() != 0.0
        {
            let detail = format!(
                "{} in body should be a multiple of {}",
                path,
                go_float(factor)
            );
            self.invalid(path, go_float(number), detail);
        }
    }

    fn array(&mut self, rules: &Map<String, Value>, items: &[Value], path: &str) {
        let count = items.len() as u64;
        if let Some(max) = rules.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            let detail = format!("{} in body should have at most {max} items", path);
            self.push(
                path,
                FieldErrorKind::Invalid {
                    value: format!("{count}"),
                    detail,
                },
            );
        }
        if let Some(min) = rules.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            let detail = format!("{} in body should have at least {min} items", path);
            self.push(
                path,
                FieldErrorKind::Invalid {
                    value: format!("{count}"),
                    detail,
                },
            );
        }
        if flag(rules, "uniqueItems")
            && items
                .iter()
                .enumerate()
                .any(|(index, item)| items[..index].contains(item))
        {
            let detail = format!("{path} in body shouldn't contain duplicates");
            self.invalid(path, "\"\"".into(), detail);
        }
        // `x-kubernetes-list-type`: a set holds each value once, a map each key once
        // (apiextensions' listtype validation).
        match rules.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => {
                for (index, item) in items.iter().enumerate() {
                    if items[..index].contains(item) {
                        let value = go_value(item);
                        self.push(
                            &format!("{path}[{index}]"),
                            FieldErrorKind::Duplicate { value },
                        );
                    }
                }
            }
            Some("map") => {
                let keys: Vec<&str> = rules
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let key_of = |item: &Value| -> Value {
                    keys.iter()
                        .filter_map(|k| item.get(*k).map(|v| ((*k).to_string(), v.clone())))
                        .collect::<Map<String, Value>>()
                        .into()
                };
                for (index, item) in items.iter().enumerate() {
                    let key = key_of(item);
                    if items[..index].iter().any(|other| key_of(other) == key) {
                        let value = key.to_string();
                        self.push(
                            &format!("{path}[{index}]"),
                            FieldErrorKind::Duplicate { value },
                        );
                    }
                }
            }
            _ => {}
        }
        if let Some(item_schema) = rules.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.value(item_schema, item, &format!("{path}[{index}]"));
            }
        }
    }

    fn object(&mut self, schema: &Value, fields: &Map<String, Value>, path: &str) {
        let rules = schema.as_object().expect("checked by value");
        let count = fields.len() as u64;
        if let Some(max) = rules.get("maxProperties").and_then(Value::as_u64)
            && count > max
        {
            let detail = format!("{} in body should have at most {max} properties", path);
            self.invalid(path, format!("{count}"), detail);
        }
        if let Some(min) = rules.get("minProperties").and_then(Value::as_u64)
            && count < min
        {
            let detail = format!("{} in body should have at least {min} properties", path);
            self.invalid(path, format!("{count}"), detail);
        }
        if flag(rules, "x-kubernetes-embedded-resource") {
            // An embedded object is a Kubernetes object of its own: it names its type.
            for key in ["apiVersion", "kind"] {
                if fields
                    .get(key)
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    self.push(&join(path, key), FieldErrorKind::Required);
                }
            }
        }
        self.object_fields(schema, fields, path);
    }

    /// The properties of an object: each declared one against its schema, `required` ones
    /// present, the others against `additionalProperties` or kept by
    /// `x-kubernetes-preserve-unknown-fields`, else unknown.
    fn object_fields(&mut self, schema: &Value, fields: &Map<String, Value>, path: &str) {
        let Some(rules) = schema.as_object() else {
            return;
        };
        for required in rules
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if fields.get(required).is_none_or(Value::is_null) {
                self.push(&join(path, required), FieldErrorKind::Required);
            }
        }
        let properties = rules.get("properties").and_then(Value::as_object);
        let additional = rules.get("additionalProperties");
        let preserves = flag(rules, "x-kubernetes-preserve-unknown-fields");
        let embedded = flag(rules, "x-kubernetes-embedded-resource");
        for (key, value) in fields {
            let field = join(path, key);
            if let Some(property) = properties.and_then(|p| p.get(key)) {
                self.value(property, value, &field);
            } else if let Some(additional) = additional.filter(|a| a.is_object()) {
                self.value(additional, value, &field);
            } else if embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                // An embedded resource's head is kept whatever the schema lists.
            } else if self.unknown
                && !preserves
                && additional.and_then(Value::as_bool) != Some(true)
            {
                self.push(&field, FieldErrorKind::Unknown);
            }
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`: value validations only (a structural schema keeps
    /// types and properties out of them), so unknown fields are not theirs to judge.
    fn combinators(&mut self, rules: &Map<String, Value>, value: &Value, path: &str) {
        let branch = |schema: &Value| {
            let mut errors = Vec::new();
            Validator {
                errors: &mut errors,
                unknown: false,
            }
            .value(schema, value, path);
            errors
        };
        for schema in rules
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let errors = branch(schema);
            self.errors.extend(errors);
        }
        if let Some(any) = rules.get("anyOf").and_then(Value::as_array)
            && !any.is_empty()
            && !any.iter().any(|schema| branch(schema).is_empty())
        {
            let detail = format!("{} in body must validate at least one schema (anyOf)", path);
            self.invalid(path, quoted(type_name(value)), detail);
        }
        if let Some(one) = rules.get("oneOf").and_then(Value::as_array)
            && !one.is_empty()
            && one
                .iter()
                .filter(|schema| branch(schema).is_empty())
                .count()
                != 1
        {
            let detail = format!(
                "{} in body must validate one and only one schema (oneOf)",
                path
            );
            self.invalid(path, quoted(type_name(value)), detail);
        }
        if let Some(not) = rules.get("not")
            && branch(not).is_empty()
        {
            let detail = format!("{} in body should not validate the given schema", path);
            self.invalid(path, quoted(type_name(value)), detail);
        }
    }
}

/// Whether the schema keyword `key` is `true` (absent: false).
fn flag(rules: &Map<String, Value>, key: &str) -> bool {
    rules.get(key).and_then(Value::as_bool) == Some(true)
}

/// The type error kube-openapi gives: the value shown is the JSON type the object has.
fn invalid_type(path: &str, value: &Value, wanted: &str) -> FieldError {
    let actual = quoted(type_name(value));
    FieldError {
        field: path.to_string(),
        kind: FieldErrorKind::Invalid {
            value: actual.clone(),
            detail: format!("{} in body must be of type {wanted}: {actual}", path),
        },
    }
}

fn has_type(value: &Value, wanted: &str) -> bool {
    match wanted {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => is_integer(value),
        _ => true,
    }
}

/// JSON numbers without a fraction are integers (`1.0` is one, as Go's decoder reads it).
fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(number) => {
            number.is_i64() || number.is_u64() || number.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) if is_integer(value) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// A value as a field error shows it: strings quoted, numbers and booleans bare, the rest as
/// their JSON.
fn go_value(value: &Value) -> String {
    match value {
        Value::String(text) => quoted(text),
        Value::Number(number) => match number.as_f64() {
            Some(f) if !number.is_i64() && !number.is_u64() => go_float(f),
            _ => number.to_string(),
        },
        other => other.to_string(),
    }
}

/// A number as Go's `%v` prints a float64: `10`, `2.5`.
fn go_float(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e21 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A typed LRS schema, as an operator's chart would install it.
    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"type": "string", "enum": ["deployment", "spark"]},
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10},
                        "image": {"type": "string", "pattern": "^[a-z0-9./:-]+$", "maxLength": 20},
                        "port": {"x-kubernetes-int-or-string": true},
                        "ports": {"type": "array", "maxItems": 2, "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                        }},
                        "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string"}},
                        "hosts": {"type": "array", "x-kubernetes-list-type": "set",
                            "items": {"type": "string"}},
                        "volumes": {"type": "array", "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object",
                                "x-kubernetes-preserve-unknown-fields": true}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                            "x-kubernetes-preserve-unknown-fields": true},
                        "ratio": {"type": "number", "anyOf": [{"maximum": 1}, {"minimum": 100}]},
                    },
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            },
        })
    }

    fn lrs(spec: Value) -> Value {
        json!({"apiVersion": "lrs.datarobot.com/v1", "kind": "LongRunningService",
            "metadata": {"name": "a", "namespace": "dr-app", "labels": {"x": "y"}}, "spec": spec})
    }

    fn messages(spec: Value) -> Vec<String> {
        validate(&schema(), &lrs(spec))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn an_object_the_schema_describes_is_accepted() {
        let spec = json!({"type": "deployment", "replicas": 3, "image": "dr/app:1",
            "port": "http", "ports": [{"name": "http", "port": 80}], "tags": ["a", "b"],
            "labels": {"team": "ml"}, "extra": {"anything": [1, {"goes": true}]},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}},
            "ratio": 0.5});
        assert_eq!(messages(spec), Vec::<String>::new());
        // A float without a fraction is an integer, as Go's decoder reads it.
        assert_eq!(
            messages(json!({"type": "spark", "replicas": 2.0, "port": 8080})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_wrong_type_is_named_as_kube_apiserver_names_it() {
        assert_eq!(
            messages(json!({"type": "deployment", "replicas": "three"})),
            [
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type \
             integer: \"string\""
            ]
        );
        assert_eq!(
            messages(json!({"type": "deployment", "replicas": 1.5})),
            [
                "spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type \
             integer: \"number\""
            ]
        );
        assert_eq!(
            messages(json!({"type": "deployment", "port": true})),
            [
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type \
             integer-or-string: \"boolean\""
            ]
        );
        let top = validate(
            &schema(),
            &json!({"kind": "LongRunningService", "spec": []}),
        );
        assert_eq!(top[0].to_string(), {
            "spec: Invalid value: \"array\": spec in body must be of type object: \"array\""
        });
    }

    #[test]
    fn required_enum_and_bounds() {
        assert_eq!(
            messages(json!({"replicas": 11})),
            [
                "spec.type: Required value",
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or \
             equal to 10",
            ]
        );
        assert_eq!(
            messages(json!({"type": "cron", "replicas": -1})),
            [
                "spec.type: Unsupported value: \"cron\": supported values: \"deployment\", \"spark\"",
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or \
             equal to 0",
            ]
        );
        assert_eq!(
            messages(json!({"type": "spark", "image": "Has Spaces And Is Too Long"})),
            [
                "spec.image: Invalid value: \"Has Spaces And Is Too Long\": spec.image in body \
                 should be at most 20 chars long",
                "spec.image: Invalid value: \"Has Spaces And Is Too Long\": spec.image in body \
                 should match '^[a-z0-9./:-]+$'",
            ]
        );
    }

    #[test]
    fn arrays_maps_and_combinators() {
        let spec = json!({"type": "spark", "ports": [{"port": "80"}, {}, {}],
            "tags": ["a", "a"], "labels": {"team": 1}, "ratio": 50});
        assert_eq!(
            messages(spec),
            [
                "spec.ports: Invalid value: 3: spec.ports in body should have at most 2 items",
                "spec.ports[0].port: Invalid value: \"string\": spec.ports[0].port in body must be of \
             type integer: \"string\"",
                "spec.tags: Invalid value: \"\": spec.tags in body shouldn't contain duplicates",
                "spec.labels.team: Invalid value: \"integer\": spec.labels.team in body must be of \
             type string: \"integer\"",
                "spec.ratio: Invalid value: \"integer\": spec.ratio in body must validate at least \
             one schema (anyOf)",
            ]
        );
    }

    #[test]
    fn a_set_holds_each_value_once_and_a_map_each_key() {
        let spec = json!({"type": "spark", "hosts": ["a", "b", "a"],
            "volumes": [{"name": "x", "size": 1}, {"name": "y"}, {"name": "x", "size": 2}]});
        assert_eq!(
            messages(spec),
            [
                "spec.hosts[2]: Duplicate value: \"a\"",
                "spec.volumes[2]: Duplicate value: {\"name\":\"x\"}",
            ]
        );
    }

    #[test]
    fn unknown_fields_are_named_unless_the_schema_keeps_them() {
        let spec = json!({"type": "spark", "replicaz": 1, "extra": {"kept": 1},
            "ports": [{"name": "a", "protocol": "TCP"}]});
        assert_eq!(
            messages(spec),
            [
                "unknown field \"spec.replicaz\"",
                "unknown field \"spec.ports[0].protocol\"",
            ]
        );
        let mut object = lrs(json!({"type": "spark"}));
        object["status"] = json!({"phase": "Running"});
        object["extraTopLevel"] = json!(1);
        assert_eq!(
            validate(&schema(), &object)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["unknown field \"extraTopLevel\""]
        );
    }

    #[test]
    fn the_schema_may_restrict_the_name() {
        let mut restricted = schema();
        restricted["properties"]["metadata"] = json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 5}}});
        let errors = validate(&restricted, &lrs(json!({"type": "spark"})));
        assert!(errors.is_empty(), "{errors:?}");
        let mut long = lrs(json!({"type": "spark"}));
        long["metadata"]["name"] = json!("too-long");
        assert_eq!(
            validate(&restricted, &long)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "metadata.name: Invalid value: \"too-long\": metadata.name in body should be at \
              most 5 chars long"
            ]
        );
    }

    #[test]
    fn metadata_and_nulls_are_not_the_schemas() {
        let mut object = lrs(json!({"type": "spark", "replicas": null}));
        object["metadata"]["annotations"] = json!({"a": "b"});
        assert!(validate(&schema(), &object).is_empty());
        // An embedded resource names its type.
        assert_eq!(
            messages(json!({"type": "spark", "template": {"metadata": {}}})),
            [
                "spec.template.apiVersion: Required value",
                "spec.template.kind: Required value"
            ]
        );
    }

    #[test]
    fn the_schema_of_a_version_is_found_in_either_place() {
        let v1 = json!({"spec": {"versions": [
            {"name": "v1beta1", "schema": {"openAPIV3Schema": {"type": "object", "x": 1}}},
            {"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "x": 2}}},
        ]}});
        assert_eq!(of_version(&v1, "v1").unwrap()["x"], 2);
        assert_eq!(of_version(&v1, "v2"), None);
        let v1beta1 = json!({"spec": {"validation": {"openAPIV3Schema": {"type": "object"}},
            "versions": [{"name": "v1"}]}});
        assert!(of_version(&v1beta1, "v1").is_some());
    }
}
