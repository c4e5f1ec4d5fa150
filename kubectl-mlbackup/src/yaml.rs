//! YAML as kubectl writes and reads it. Written as `kubectl get -o yaml` shows objects: keys
//! sorted, and every string that a YAML 1.1 reader (kubectl, go-yaml) could take for something
//! else quoted, so a file re-applies as is. Read as `kubectl apply -f` reads files: every `---`
//! document (empty ones skipped), a byte order mark skipped, numbers exact; and what kubectl
//! would read differently from how the file reads (a key written twice) refused.
//!
//! Written with serde-saphyr because serde_yaml emits `yes`, `on`, `0755`... unquoted (YAML 1.2
//! rules), which kubectl would restore as booleans and numbers; its floats are the shortest
//! form that reads back as the same double. Read with serde_yaml, straight into JSON values.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Renders an object as kubectl shows it.
pub fn to_kubectl_yaml(object: &Value) -> Result<String, serde_saphyr::SerializeError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    // kubectl's layout: list items at the parent key's indentation.
    options.compact_list_indent = true;
    // Long one-line strings stay on one line (kubectl never folds them); multi-line strings
    // still use literal `|` blocks, as kubectl writes them.
    options.min_fold_chars = usize::MAX;
    serde_saphyr::to_string_with_options(&sorted(object), options)
}

/// A copy with the keys of every map in alphabetical order (kubectl's output order), so the
/// files of two backups diff cleanly.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|key| (key.clone(), sorted(&map[key])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// One document of a YAML stream that holds something.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based, counting every document of the file (empty ones too), as a reader counts the
    /// `---` separators.
    pub index: usize,
    pub value: Value,
}

/// Why a document cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DocumentError {
    /// 1-based, like [`Document::index`].
    pub index: usize,
    /// With the line and column where the parser found it.
    pub reason: String,
}

/// Reads every document of a YAML (or JSON) file as `kubectl apply -f` reads it: a UTF-8 byte
/// order mark skipped, documents that hold nothing (empty, only comments, `null`) skipped,
/// numbers kept exactly (integers as written up to the 64-bit limits, floats as the same
/// double). Refused: a key written twice in one map (kubectl keeps one of them, so the file
/// would apply differently from how it reads), the YAML merge key `<<` (applied differently by
/// YAML readers), values JSON cannot hold (`.inf`, `.nan`, tags). The first error stops reading.
pub fn read_documents(bytes: &[u8]) -> Result<Vec<Document>, DocumentError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut documents = Vec::new();
    for (position, document) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
        let index = position + 1;
        let value = Exact.deserialize(document).map_err(|err| DocumentError {
            index,
            reason: err.to_string(),
        })?;
        if !value.is_null() {
            documents.push(Document { index, value });
        }
    }
    Ok(documents)
}

/// Reads one YAML value into a JSON value without losing anything (see [`read_documents`]).
/// Its errors get the path of the map or list they are in (`spec.containers[0]: ...`) and the
/// line from serde_yaml.
struct Exact;

impl<'de> DeserializeSeed<'de> for Exact {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// A float as JSON holds it, or why it cannot be held.
fn float<E: de::Error>(value: f64) -> Result<Value, E> {
    Number::from_f64(value).map(Value::Number).ok_or_else(|| {
        let text = match value {
            v if v.is_nan() => ".nan",
            v if v > 0.0 => ".inf",
            _ => "-.inf",
        };
        E::custom(format!("`{text}` is not a number JSON can hold"))
    })
}

impl<'de> Visitor<'de> for Exact {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    /// Beyond 64 bits: the nearest double, as kubectl's YAML reader makes of such integers.
    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Value, E> {
        match i64::try_from(value) {
            Ok(value) => Ok(Value::from(value)),
            Err(_) => float(value as f64),
        }
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Value, E> {
        match u64::try_from(value) {
            Ok(value) => Ok(Value::from(value)),
            Err(_) => float(value as f64),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        float(value)
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Exact)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(Key { seen: &object })? {
            if key == "<<" {
                return Err(de::Error::custom(
                    "`<<` is a YAML merge key, which YAML readers apply differently; write the \
                     merged keys out",
                ));
            }
            let value = map.next_value_seed(Exact)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, _) = data.variant::<String>()?;
        Err(de::Error::custom(format!(
            "a value with the YAML tag `!{tag}`, which JSON cannot hold"
        )))
    }
}

/// A map key as JSON holds it: scalars become their text, as kubectl converts them.
/// A map key as a string; refused when `seen` (the keys before it in its map) holds it already.
/// Refused here, while the key is read, so that the error points at the repeated key's line,
/// not at the start of its map.
struct Key<'a> {
    seen: &'a Map<String, Value>,
}

impl Key<'_> {
    fn new_key<E: de::Error>(&self, key: String) -> Result<String, E> {
        if self.seen.contains_key(&key) {
            return Err(E::custom(format!(
                "the key `{key}` is written twice (kubectl would keep only one of the values)"
            )));
        }
        Ok(key)
    }
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plain map key")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        self.new_key(value.to_string())
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<String, E> {
        self.new_key(value)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<String, E> {
        self.new_key(value.to_string())
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
        self.new_key(value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
        self.new_key(value.to_string())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<String, E> {
        self.new_key(value.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.new_key("null".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The numbers of issue 12: floats whose last digit a lossy parser changes, integers
    /// beyond 2^53 up to the 64-bit limits, and the edge cases of float formatting.
    const NUMBERS: &[&str] = &[
        "0.9215686321258545",
        "10587.436593658975",
        "123456789.12345679",
        "9007199254740993",
        "-9223372036854775808",
        "9223372036854775807",
        "18446744073709551615",
        "1.0",
        "-0.0",
        "5e-324",
    ];

    /// What the number is, exactly: its integer, or the bits of the nearest double (Rust's
    /// parser is exact).
    fn exactly(value: &Value) -> String {
        match value {
            Value::Number(n) if n.is_f64() => format!("f64:{:#x}", n.as_f64().unwrap().to_bits()),
            Value::Number(n) => format!("int:{n}"),
            other => format!("{other}"),
        }
    }

    fn expected(text: &str) -> String {
        if let Ok(int) = text.parse::<i64>() {
            format!("int:{int}")
        } else if let Ok(int) = text.parse::<u64>() {
            format!("int:{int}")
        } else {
            format!("f64:{:#x}", text.parse::<f64>().unwrap().to_bits())
        }
    }

    #[test]
    fn numbers_come_back_exactly_from_json_through_the_file() {
        // As the API server sends them, parsed as the cluster client parses them.
        let json = format!(
            "{{{}}}",
            NUMBERS
                .iter()
                .enumerate()
                .map(|(i, n)| format!("\"k{i}\": {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let received: Value = serde_json::from_str(&json).unwrap();
        let file = to_kubectl_yaml(&received).unwrap();
        let [read] = read_documents(file.as_bytes()).unwrap().try_into().unwrap();
        for (i, text) in NUMBERS.iter().enumerate() {
            let key = format!("k{i}");
            assert_eq!(exactly(&received[&key]), expected(text), "received {text}");
            assert_eq!(
                exactly(&read.value[&key]),
                expected(text),
                "{text} in\n{file}"
            );
        }
        assert!(file.contains("k0: 0.9215686321258545\n"), "{file}");
        assert!(file.contains("k7: 1.0\n"), "{file}");
        assert!(file.contains("k8: -0.0\n"), "{file}");
        // And back to JSON for the API server, as the restore sends it.
        let sent: Value =
            serde_json::from_slice(&serde_json::to_vec(&read.value).unwrap()).unwrap();
        for (i, text) in NUMBERS.iter().enumerate() {
            assert_eq!(
                exactly(&sent[&format!("k{i}")]),
                expected(text),
                "sent {text}"
            );
        }
    }

    #[test]
    fn every_document_is_read_and_empty_ones_are_skipped() {
        // A comment before the first `---` is no document of its own.
        let text = "# leading comment\n---\na: 1\n---\n---\n# only a comment\n---\nnull\n---\nb: [x, 2]\n...\n";
        let documents = read_documents(text.as_bytes()).unwrap();
        assert_eq!(
            documents,
            [
                Document {
                    index: 1,
                    value: json!({"a": 1})
                },
                Document {
                    index: 5,
                    value: json!({"b": ["x", 2]})
                },
            ]
        );
        assert_eq!(read_documents(b"").unwrap(), []);
    }

    #[test]
    fn a_byte_order_mark_and_crlf_line_ends_read_like_plain_text() {
        let plain = "kind: X\nspec:\n  text: |\n    two\n    lines\n---\nkind: Y\n";
        let windows = format!("\u{feff}{}", plain.replace('\n', "\r\n"));
        let expected = read_documents(plain.as_bytes()).unwrap();
        assert_eq!(expected.len(), 2);
        assert_eq!(expected[0].value["spec"]["text"], "two\nlines\n");
        assert_eq!(read_documents(windows.as_bytes()).unwrap(), expected);
    }

    #[test]
    fn a_key_written_twice_is_refused_with_its_path_and_line() {
        let text = "kind: X\n---\nspec:\n  containers:\n  - name: a\n    name: b\n";
        let err = read_documents(text.as_bytes()).unwrap_err();
        assert_eq!(err.index, 2);
        assert_eq!(
            err.reason,
            "spec.containers[0]: the key `name` is written twice (kubectl would keep only one of \
             the values) at line 6 column 5"
        );
        let labels = "metadata:\n  labels:\n    app.kubernetes.io/name: a\n    \"app.kubernetes.io/name\": b\n";
        let err = read_documents(labels.as_bytes()).unwrap_err();
        assert!(
            err.reason
                .starts_with("metadata.labels: the key `app.kubernetes.io/name` is written twice"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn what_json_cannot_hold_or_readers_apply_differently_is_refused() {
        for (text, reason) in [
            (
                "a: .inf\n",
                "a: `.inf` is not a number JSON can hold at line 1 column 4",
            ),
            (
                "base: &b {x: 1}\nspec:\n  <<: *b\n",
                "spec: `<<` is a YAML merge key, which YAML readers apply differently; write the \
                 merged keys out at line 3 column 3",
            ),
            (
                "a: !custom x\n",
                "a: a value with the YAML tag `!custom`, which JSON cannot hold at line 1 column 4",
            ),
        ] {
            let err = read_documents(text.as_bytes()).unwrap_err();
            assert_eq!((err.index, err.reason.as_str()), (1, reason), "{text}");
        }
        let err = read_documents(b"a: 1\n---\nb: [1\n").unwrap_err();
        assert_eq!(err.index, 2);
        assert!(err.reason.contains("line 4"), "{}", err.reason);
    }

    #[test]
    fn integers_beyond_64_bits_become_the_nearest_double_as_kubectl_reads_them() {
        let [document] = read_documents(
            b"big: 18446744073709551616\nsmall: -9223372036854775809\nkey: {1: a, true: b}\n",
        )
        .unwrap()
        .try_into()
        .unwrap();
        assert_eq!(document.value["big"].as_f64(), Some(18446744073709551616.0));
        assert!(document.value["big"].is_f64());
        assert_eq!(
            document.value["small"].as_f64(),
            Some(-9223372036854775809.0)
        );
        assert_eq!(document.value["key"], json!({"1": "a", "true": "b"}));
    }

    #[test]
    fn keys_are_sorted_at_every_level() {
        let yaml =
            to_kubectl_yaml(&json!({"spec": {"b": 1, "a": [{"z": 1, "c": 2}]}, "kind": "X"}))
                .unwrap();
        assert_eq!(yaml, "kind: X\nspec:\n  a:\n  - c: 2\n    z: 1\n  b: 1\n");
    }

    #[test]
    fn strings_that_yaml_1_1_reads_as_other_types_stay_strings() {
        let tricky = [
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "true",
            "NO",
            "null",
            "~",
            "0755",
            "1e3",
            "12",
            "0x1f",
            "1_000",
            ".5",
            "3:25:45",
            "",
            " lead",
            "a: b",
            "- x",
            "#c",
            "2026-01-05",
        ];
        let object = Value::Object(
            tricky
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("k{i:02}"), json!(s)))
                .collect(),
        );
        let yaml = to_kubectl_yaml(&object).unwrap();
        for (i, s) in tricky.iter().enumerate() {
            let line = yaml
                .lines()
                .find(|l| l.starts_with(&format!("k{i:02}:")))
                .unwrap();
            let value = line.split_once(": ").map_or("", |(_, v)| v);
            let unquoted_is_safe = !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphabetic())
                && !["yes", "no", "on", "off", "y", "n", "true", "false", "null"]
                    .contains(&s.to_ascii_lowercase().as_str());
            assert!(
                unquoted_is_safe || value.starts_with('\'') || value.starts_with('"'),
                "`{s}` must be quoted, got `{line}`"
            );
        }
        let back: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, object);
    }
}
