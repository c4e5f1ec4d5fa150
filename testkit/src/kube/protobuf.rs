//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`): kubectl and client-go send
//! built-in objects (`kubectl create namespace|secret|configmap|serviceaccount`, access reviews)
//! as the `k8s\0` envelope around a `runtime.Unknown` whose `raw` field holds the message. The
//! kinds users create by hand are decoded here, by the field numbers of k8s.io/api's and
//! apimachinery's `generated.proto`, into the JSON the same request would have carried, so that
//! they take the JSON body's path (validation, defaults); other kinds are named as not decoded.

use base64::Engine;
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value};

const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body was not turned into JSON.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtobufError {
    /// Not the envelope, or a message whose bytes do not parse.
    #[error("{0}")]
    Malformed(String),
    /// A well-formed envelope around a kind this server has no field table for.
    #[error("the sandbox's API server does not decode protobuf bodies of {api_version} {kind}")]
    NotDecoded { api_version: String, kind: String },
}

/// One field value on the wire (fixed-width values are skipped: no decoded field has them).
#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a message in wire order, by field number.
fn fields(mut bytes: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, ProtobufError> {
    let truncated = || ProtobufError::Malformed("unexpected end of a protobuf message".into());
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let tag = varint(&mut bytes).ok_or_else(truncated)?;
        let skip = |bytes: &mut &[u8], n: usize| {
            let rest = bytes.get(n..).ok_or_else(truncated)?;
            *bytes = rest;
            Ok::<_, ProtobufError>(())
        };
        match tag & 7 {
            0 => fields.push((
                tag >> 3,
                Wire::Varint(varint(&mut bytes).ok_or_else(truncated)?),
            )),
            1 => skip(&mut bytes, 8)?,
            2 => {
                let length = usize::try_from(varint(&mut bytes).ok_or_else(truncated)?)
                    .map_err(|_| truncated())?;
                let value = bytes.get(..length).ok_or_else(truncated)?;
                fields.push((tag >> 3, Wire::Bytes(value)));
                bytes = &bytes[length..];
            }
            5 => skip(&mut bytes, 4)?,
            other => {
                return Err(ProtobufError::Malformed(format!(
                    "protobuf wire type {other} of field {} is not supported",
                    tag >> 3
                )));
            }
        }
    }
    Ok(fields)
}

/// What a field holds, and so how its JSON is written.
#[derive(Clone, Copy)]
enum Type {
    String,
    Bool,
    Int,
    /// `metav1.Time`: `{seconds=1, nanos=2}`, RFC 3339 in JSON, `null` when zero.
    Time,
    /// `metav1.FieldsV1`: `{raw=1}`, JSON kept as it is.
    RawJson,
    Message(&'static [Field]),
    /// `map<string, string>`: repeated entries `{key=1, value=2}`.
    StringMap,
    /// `map<string, bytes>`: base64 in JSON.
    BytesMap,
}

struct Field {
    number: u64,
    name: &'static str,
    ty: Type,
    repeated: bool,
    /// `json:",omitempty"` on a value that is not a pointer: the zero value is left out (Go's
    /// marshalling writes every non-pointer scalar on the wire, the JSON path omits it).
    omit_empty: bool,
}

/// A non-pointer field with `omitempty` (strings, counters, and messages, which JSON writes
/// even when empty).
const fn field(number: u64, name: &'static str, ty: Type) -> Field {
    Field {
        number,
        name,
        ty,
        repeated: false,
        omit_empty: true,
    }
}

/// A pointer (`*bool`, `*int64`) or a field without `omitempty`: written whenever it is on the
/// wire.
const fn kept(number: u64, name: &'static str, ty: Type) -> Field {
    Field {
        number,
        name,
        ty,
        repeated: false,
        omit_empty: false,
    }
}

const fn list(number: u64, name: &'static str, ty: Type) -> Field {
    Field {
        number,
        name,
        ty,
        repeated: true,
        omit_empty: true,
    }
}

// k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto
const OWNER_REFERENCE: &[Field] = &[
    kept(5, "apiVersion", Type::String),
    kept(1, "kind", Type::String),
    kept(3, "name", Type::String),
    kept(4, "uid", Type::String),
    kept(6, "controller", Type::Bool),
    kept(7, "blockOwnerDeletion", Type::Bool),
];
const MANAGED_FIELDS_ENTRY: &[Field] = &[
    field(1, "manager", Type::String),
    field(2, "operation", Type::String),
    field(3, "apiVersion", Type::String),
    field(4, "time", Type::Time),
    field(6, "fieldsType", Type::String),
    field(7, "fieldsV1", Type::RawJson),
    field(8, "subresource", Type::String),
];
const OBJECT_META: &[Field] = &[
    field(1, "name", Type::String),
    field(2, "generateName", Type::String),
    field(3, "namespace", Type::String),
    field(4, "selfLink", Type::String),
    field(5, "uid", Type::String),
    field(6, "resourceVersion", Type::String),
    field(7, "generation", Type::Int),
    field(8, "creationTimestamp", Type::Time),
    field(9, "deletionTimestamp", Type::Time),
    kept(10, "deletionGracePeriodSeconds", Type::Int),
    field(11, "labels", Type::StringMap),
    field(12, "annotations", Type::StringMap),
    list(13, "ownerReferences", Type::Message(OWNER_REFERENCE)),
    list(14, "finalizers", Type::String),
    list(17, "managedFields", Type::Message(MANAGED_FIELDS_ENTRY)),
];

// k8s.io/api/core/v1/generated.proto
const OBJECT_REFERENCE: &[Field] = &[
    field(1, "kind", Type::String),
    field(2, "namespace", Type::String),
    field(3, "name", Type::String),
    field(4, "uid", Type::String),
    field(5, "apiVersion", Type::String),
    field(6, "resourceVersion", Type::String),
    field(7, "fieldPath", Type::String),
];
const LOCAL_OBJECT_REFERENCE: &[Field] = &[field(1, "name", Type::String)];
const NAMESPACE_CONDITION: &[Field] = &[
    kept(1, "type", Type::String),
    kept(2, "status", Type::String),
    field(4, "lastTransitionTime", Type::Time),
    field(5, "reason", Type::String),
    field(6, "message", Type::String),
];
const NAMESPACE: &[Field] = &[
    field(1, "metadata", Type::Message(OBJECT_META)),
    field(
        2,
        "spec",
        Type::Message(&[list(1, "finalizers", Type::String)]),
    ),
    field(
        3,
        "status",
        Type::Message(&[
            field(1, "phase", Type::String),
            list(2, "conditions", Type::Message(NAMESPACE_CONDITION)),
        ]),
    ),
];
const SECRET: &[Field] = &[
    field(1, "metadata", Type::Message(OBJECT_META)),
    field(2, "data", Type::BytesMap),
    field(3, "type", Type::String),
    field(4, "stringData", Type::StringMap),
    kept(5, "immutable", Type::Bool),
];
const CONFIG_MAP: &[Field] = &[
    field(1, "metadata", Type::Message(OBJECT_META)),
    field(2, "data", Type::StringMap),
    field(3, "binaryData", Type::BytesMap),
    kept(4, "immutable", Type::Bool),
];
const SERVICE_ACCOUNT: &[Field] = &[
    field(1, "metadata", Type::Message(OBJECT_META)),
    list(2, "secrets", Type::Message(OBJECT_REFERENCE)),
    list(3, "imagePullSecrets", Type::Message(LOCAL_OBJECT_REFERENCE)),
    kept(4, "automountServiceAccountToken", Type::Bool),
];

// k8s.io/api/authorization/v1/generated.proto
const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    field(1, "metadata", Type::Message(OBJECT_META)),
    field(
        2,
        "spec",
        Type::Message(&[
            field(
                1,
                "resourceAttributes",
                Type::Message(&[
                    field(1, "namespace", Type::String),
                    field(2, "verb", Type::String),
                    field(3, "group", Type::String),
                    field(4, "version", Type::String),
                    field(5, "resource", Type::String),
                    field(6, "subresource", Type::String),
                    field(7, "name", Type::String),
                ]),
            ),
            field(
                2,
                "nonResourceAttributes",
                Type::Message(&[
                    field(1, "path", Type::String),
                    field(2, "verb", Type::String),
                ]),
            ),
        ]),
    ),
];

/// The kinds decoded, by `apiVersion` and `kind` of the envelope.
const KINDS: &[(&str, &str, &[Field])] = &[
    ("v1", "Namespace", NAMESPACE),
    ("v1", "Secret", SECRET),
    ("v1", "ConfigMap", CONFIG_MAP),
    ("v1", "ServiceAccount", SERVICE_ACCOUNT),
    (
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
        SELF_SUBJECT_ACCESS_REVIEW,
    ),
];

/// The kinds [`decode_object`] reads, for messages that name them.
pub fn decoded_kinds() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|(_, kind, _)| *kind)
}

fn text(bytes: &[u8]) -> Value {
    // Go keeps a proto2 string's bytes as they are; its JSON encoder then writes invalid UTF-8
    // as U+FFFD, which is what the lossy conversion does.
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

fn wrong_wire(name: &str) -> ProtobufError {
    ProtobufError::Malformed(format!("field {name} has the wrong protobuf wire type"))
}

/// One value of a field, or `None` when it is the zero value that `omitempty` leaves out.
fn value(field: &Field, wire: Wire<'_>) -> Result<Option<Value>, ProtobufError> {
    let bytes = || match wire {
        Wire::Bytes(bytes) => Ok(bytes),
        Wire::Varint(_) => Err(wrong_wire(field.name)),
    };
    let number = || match wire {
        Wire::Varint(number) => Ok(number),
        Wire::Bytes(_) => Err(wrong_wire(field.name)),
    };
    let value = match field.ty {
        Type::String => text(bytes()?),
        Type::Bool => Value::Bool(number()? != 0),
        // int64 on the wire is the two's complement as an unsigned varint.
        Type::Int => Value::from(number()? as i64),
        Type::Time => time(bytes()?)?,
        Type::RawJson => {
            let raw = fields(bytes()?)?
                .into_iter()
                .rev()
                .find_map(|(n, w)| match (n, w) {
                    (1, Wire::Bytes(raw)) => Some(raw),
                    _ => None,
                })
                .unwrap_or_default();
            serde_json::from_slice(raw).map_err(|e| {
                ProtobufError::Malformed(format!("field {} is not JSON: {e}", field.name))
            })?
        }
        Type::Message(schema) => Value::Object(message(bytes()?, schema)?),
        Type::StringMap | Type::BytesMap => unreachable!("maps are read entry by entry"),
    };
    let empty = match &value {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    };
    Ok((!(field.omit_empty && empty)).then_some(value))
}

/// A `metav1.Time`: whole seconds in RFC 3339 (as its JSON has them; its unmarshaller drops the
/// nanoseconds too), `null` for the zero time, which Go marshals as an empty message.
fn time(bytes: &[u8]) -> Result<Value, ProtobufError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let mut seconds = 0i64;
    for (number, wire) in fields(bytes)? {
        if let (1, Wire::Varint(value)) = (number, wire) {
            seconds = value as i64;
        }
    }
    // Go's zero time (year 1), written out.
    if seconds == -62_135_596_800 {
        return Ok(Value::Null);
    }
    let at = DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| ProtobufError::Malformed(format!("time {seconds} is out of range")))?;
    Ok(Value::String(at.to_rfc3339_opts(SecondsFormat::Secs, true)))
}

/// One `{key=1, value=2}` entry of a map field.
fn map_entry(field: &Field, bytes: &[u8]) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    for (number, wire) in fields(bytes)? {
        match (number, wire) {
            (1, Wire::Bytes(k)) => key = String::from_utf8_lossy(k).into_owned(),
            (2, Wire::Bytes(v)) => value = v,
            (1 | 2, Wire::Varint(_)) => return Err(wrong_wire(field.name)),
            _ => {}
        }
    }
    let value = match field.ty {
        Type::BytesMap => Value::String(base64::engine::general_purpose::STANDARD.encode(value)),
        _ => text(value),
    };
    Ok((key, value))
}

/// A message as its JSON object. Fields without a number in `schema` are skipped, as Go's
/// generated unmarshallers skip unknown fields.
fn message(bytes: &[u8], schema: &[Field]) -> Result<Map<String, Value>, ProtobufError> {
    let mut object = Map::new();
    for (number, wire) in fields(bytes)? {
        let Some(field) = schema.iter().find(|f| f.number == number) else {
            continue;
        };
        match field.ty {
            Type::StringMap | Type::BytesMap => {
                let Wire::Bytes(entry) = wire else {
                    return Err(wrong_wire(field.name));
                };
                let (key, value) = map_entry(field, entry)?;
                object
                    .entry(field.name)
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("a map field is an object")
                    .insert(key, value);
            }
            _ if field.repeated => {
                // A list keeps every item, the empty ones too.
                let item = value(
                    &Field {
                        omit_empty: false,
                        ..*field
                    },
                    wire,
                )?
                .expect("kept values are always written");
                object
                    .entry(field.name)
                    .or_insert_with(|| Value::Array(Vec::new()))
                    .as_array_mut()
                    .expect("a repeated field is an array")
                    .push(item);
            }
            // A scalar seen again: the last one wins, as in protobuf. (A message seen again
            // would be merged; Go's marshallers never write one twice.)
            _ => match value(field, wire)? {
                Some(value) => {
                    object.insert(field.name.to_string(), value);
                }
                None => {
                    object.remove(field.name);
                }
            },
        }
    }
    Ok(object)
}

/// The object a protobuf body holds, as the JSON the same request would have carried:
/// `apiVersion` and `kind` from the envelope, then the message's fields.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    let inner = body.strip_prefix(MAGIC).ok_or_else(|| {
        ProtobufError::Malformed(format!(
            "provided data does not appear to be a protobuf message, expected prefix {:?}",
            MAGIC
        ))
    })?;
    // runtime.Unknown: typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3,
    // contentType=4.
    let mut type_meta = Map::new();
    let mut raw: &[u8] = &[];
    for (number, wire) in fields(inner)? {
        match (number, wire) {
            (1, Wire::Bytes(bytes)) => {
                type_meta = message(
                    bytes,
                    &[
                        kept(1, "apiVersion", Type::String),
                        kept(2, "kind", Type::String),
                    ],
                )?
            }
            (2, Wire::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let name = |key: &str| {
        type_meta
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (api_version, kind) = (name("apiVersion"), name("kind"));
    let (_, _, schema) = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .ok_or_else(|| ProtobufError::NotDecoded {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })?;
    let mut object = Map::new();
    object.insert("kind".into(), Value::from(kind));
    object.insert("apiVersion".into(), Value::from(api_version));
    object.extend(message(raw, schema)?);
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn delimited(number: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2];
        let mut length = value.len();
        while length >= 0x80 {
            out.push((length as u8) | 0x80);
            length >>= 7;
        }
        out.push(length as u8);
        out.extend_from_slice(value);
        out
    }

    fn varint_field(number: u8, value: u64) -> Vec<u8> {
        let mut out = vec![number << 3];
        let mut value = value;
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [
            delimited(1, api_version.as_bytes()),
            delimited(2, kind.as_bytes()),
        ]
        .concat();
        let unknown = [
            delimited(1, &type_meta),
            delimited(2, raw),
            delimited(3, b""),
            delimited(4, b""),
        ]
        .concat();
        [MAGIC.to_vec(), unknown].concat()
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        [delimited(1, key.as_bytes()), delimited(2, value)].concat()
    }

    /// ObjectMeta as Go marshals it: every non-pointer field written, empty or not.
    fn meta(name: &str, namespace: &str, extra: &[u8]) -> Vec<u8> {
        [
            delimited(1, name.as_bytes()),
            delimited(2, b""),
            delimited(3, namespace.as_bytes()),
            delimited(4, b""),
            delimited(5, b""),
            delimited(6, b""),
            varint_field(7, 0),
            delimited(8, b""),
            extra.to_vec(),
        ]
        .concat()
    }

    /// The bytes kubectl v1.33 sends for `kubectl create namespace mlbackup` (from `-v=8`).
    #[test]
    fn decodes_kubectls_namespace() {
        let body = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x20\x0a\x18\x0a\x08mlbackup\
\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00\x12\x00\x1a\x02\x0a\x00\x1a\x00\x22\x00";
        assert_eq!(
            decode_object(body).unwrap(),
            json!({"kind": "Namespace", "apiVersion": "v1",
                   "metadata": {"name": "mlbackup", "creationTimestamp": null},
                   "spec": {}, "status": {}})
        );
    }

    #[test]
    fn decodes_a_secret_with_binary_data_labels_and_type() {
        let labels = [
            delimited(11, &entry("app", b"mlbackup")),
            delimited(11, &entry("tier", b"")),
        ]
        .concat();
        let raw = [
            delimited(1, &meta("s3-backup", "mlbackup", &labels)),
            delimited(2, &entry("AWS_ACCESS_KEY_ID", b"AKIA")),
            delimited(2, &entry("blob", &[0, 0xff, 0x10])),
            delimited(3, b"Opaque"),
            delimited(4, &entry("plain", b"text")),
            varint_field(5, 1),
        ]
        .concat();
        let decoded = decode_object(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            decoded,
            json!({"kind": "Secret", "apiVersion": "v1",
                   "metadata": {"name": "s3-backup", "namespace": "mlbackup",
                                "creationTimestamp": null,
                                "labels": {"app": "mlbackup", "tier": ""}},
                   "data": {"AWS_ACCESS_KEY_ID": "QUtJQQ==", "blob": "AP8Q"},
                   "type": "Opaque", "stringData": {"plain": "text"}, "immutable": true})
        );
    }

    #[test]
    fn decodes_a_config_map_and_a_service_account() {
        let raw = [
            delimited(1, &meta("cm", "ns", &delimited(14, b"keep"))),
            delimited(2, &entry("config.txt", b"line\n")),
            delimited(3, &entry("bin", b"\x01")),
            varint_field(4, 0),
        ]
        .concat();
        assert_eq!(
            decode_object(&envelope("v1", "ConfigMap", &raw)).unwrap(),
            json!({"kind": "ConfigMap", "apiVersion": "v1",
                   "metadata": {"name": "cm", "namespace": "ns", "creationTimestamp": null,
                                "finalizers": ["keep"]},
                   "data": {"config.txt": "line\n"}, "binaryData": {"bin": "AQ=="},
                   "immutable": false})
        );
        let secret_ref = [delimited(1, b"Secret"), delimited(3, b"token")].concat();
        let raw = [
            delimited(1, &meta("robot", "ns", &[])),
            delimited(2, &secret_ref),
            delimited(3, &delimited(1, b"pull")),
            varint_field(4, 0),
        ]
        .concat();
        assert_eq!(
            decode_object(&envelope("v1", "ServiceAccount", &raw)).unwrap(),
            json!({"kind": "ServiceAccount", "apiVersion": "v1",
                   "metadata": {"name": "robot", "namespace": "ns", "creationTimestamp": null},
                   "secrets": [{"kind": "Secret", "name": "token"}],
                   "imagePullSecrets": [{"name": "pull"}],
                   "automountServiceAccountToken": false})
        );
    }

    #[test]
    fn decodes_owner_references_times_and_generation() {
        let owner = [
            delimited(5, b"v1"),
            delimited(1, b"ConfigMap"),
            delimited(3, b"owner"),
            delimited(4, b"1234"),
            varint_field(6, 1),
        ]
        .concat();
        let extra = [
            delimited(9, &varint_field(1, 1_700_000_000)),
            varint_field(10, 30),
            delimited(13, &owner),
        ]
        .concat();
        let mut metadata = meta("x", "", &extra);
        // generation 3 after the 0 `meta` wrote: the last value wins.
        metadata.extend(varint_field(7, 3));
        let raw = delimited(1, &metadata);
        let decoded = decode_object(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            decoded["metadata"],
            json!({"name": "x", "generation": 3, "creationTimestamp": null,
                   "deletionTimestamp": "2023-11-14T22:13:20Z",
                   "deletionGracePeriodSeconds": 30,
                   "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                        "name": "owner", "uid": "1234", "controller": true}]})
        );
    }

    #[test]
    fn decodes_resource_attributes_of_an_access_review() {
        let mut attributes = delimited(2, b"list");
        attributes.extend(delimited(3, b"lrs.datarobot.com"));
        attributes.extend(delimited(5, b"lrs"));
        let spec = delimited(1, &attributes);
        let review = [delimited(1, b""), delimited(2, &spec)].concat();
        let body = envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &review,
        );
        let decoded = decode_object(&body).unwrap();
        assert_eq!(
            decoded["spec"]["resourceAttributes"],
            json!({"verb": "list", "group": "lrs.datarobot.com", "resource": "lrs"})
        );
    }

    #[test]
    fn names_the_kinds_it_does_not_decode_and_refuses_broken_bytes() {
        assert_eq!(
            decode_object(&envelope("batch/v1", "Job", &[])),
            Err(ProtobufError::NotDecoded {
                api_version: "batch/v1".into(),
                kind: "Job".into()
            })
        );
        assert!(matches!(
            decode_object(b"{}"),
            Err(ProtobufError::Malformed(m)) if m.contains("expected prefix")
        ));
        // A length running past the end of the message.
        let mut body = envelope("v1", "Secret", &delimited(1, &delimited(1, b"name")));
        body.truncate(body.len() - 12);
        assert!(matches!(
            decode_object(&body),
            Err(ProtobufError::Malformed(_))
        ));
        // A string field sent as a number.
        let raw = delimited(1, &varint_field(1, 5));
        assert!(matches!(
            decode_object(&envelope("v1", "Secret", &raw)),
            Err(ProtobufError::Malformed(m)) if m.contains("field name")
        ));
    }
}
