//! YAML as `kubectl get -o yaml` writes it: keys sorted, and every string that a YAML 1.1
//! reader (kubectl, go-yaml) could take for something else quoted, so a file re-applies as is.
//!
//! Written with serde-saphyr because serde_yaml emits `yes`, `on`, `0755`... unquoted (YAML 1.2
//! rules), which kubectl would restore as booleans and numbers. Reading stays with serde_yaml.

use serde_json::Value;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
