//! The one protobuf body the fake must read: kubectl sends `SelfSubjectAccessReview` (a built-in
//! type) as `application/vnd.kubernetes.protobuf`, the `k8s\0` envelope around a
//! `runtime.Unknown` whose `raw` field holds the message.

use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// The length-delimited fields of a message, by field number (varints are skipped).
fn length_delimited_fields(mut bytes: &[u8]) -> Option<Vec<(u64, &[u8])>> {
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
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let tag = varint(&mut bytes)?;
        match tag & 7 {
            0 => {
                varint(&mut bytes)?;
            }
            2 => {
                let length = usize::try_from(varint(&mut bytes)?).ok()?;
                if length > bytes.len() {
                    return None;
                }
                let (value, rest) = bytes.split_at(length);
                fields.push((tag >> 3, value));
                bytes = rest;
            }
            _ => return None,
        }
    }
    Some(fields)
}

fn field<'a>(fields: &[(u64, &'a [u8])], number: u64) -> Option<&'a [u8]> {
    fields.iter().find(|(n, _)| *n == number).map(|(_, v)| *v)
}

/// Decodes a protobuf `SelfSubjectAccessReview` into its JSON form (the spec's resource or
/// non-resource attributes); `None` if the bytes are not one.
pub fn decode_access_review(body: &[u8]) -> Option<Value> {
    let unknown = length_delimited_fields(body.strip_prefix(MAGIC)?)?;
    let review = length_delimited_fields(field(&unknown, 2)?)?;
    let spec = length_delimited_fields(field(&review, 2).unwrap_or_default())?;
    let mut spec_json = Map::new();
    if let Some(attributes) = field(&spec, 1) {
        let attributes = length_delimited_fields(attributes)?;
        let names = [
            "namespace",
            "verb",
            "group",
            "version",
            "resource",
            "subresource",
            "name",
        ];
        let mut map = Map::new();
        for (number, name) in (1..).zip(names) {
            if let Some(value) = field(&attributes, number) {
                map.insert(name.into(), json!(String::from_utf8_lossy(value)));
            }
        }
        spec_json.insert("resourceAttributes".into(), Value::Object(map));
    }
    if let Some(attributes) = field(&spec, 2) {
        let attributes = length_delimited_fields(attributes)?;
        let text = |n| field(&attributes, n).map(|v| json!(String::from_utf8_lossy(v)));
        spec_json.insert(
            "nonResourceAttributes".into(),
            json!({"path": text(1), "verb": text(2)}),
        );
    }
    Some(
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {}, "spec": spec_json}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delimited(number: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, value.len() as u8];
        out.extend_from_slice(value);
        out
    }

    #[test]
    fn decodes_resource_attributes() {
        let mut attributes = delimited(2, b"list");
        attributes.extend(delimited(3, b"lrs.datarobot.com"));
        attributes.extend(delimited(5, b"lrs"));
        let spec = delimited(1, &attributes);
        let review = [delimited(1, b""), delimited(2, &spec)].concat();
        let unknown = [delimited(1, b""), delimited(2, &review)].concat();
        let body = [MAGIC.to_vec(), unknown].concat();
        let decoded = decode_access_review(&body).unwrap();
        assert_eq!(
            decoded["spec"]["resourceAttributes"],
            json!({"verb": "list", "group": "lrs.datarobot.com", "resource": "lrs"})
        );
        assert!(decode_access_review(b"{}").is_none());
    }
}
