//! Field ownership (`metadata.managedFields`) and server-side apply: which manager owns which
//! fields, in the `FieldsV1` form; Update entries for ordinary writes, Apply entries, merging and
//! conflict detection for apply patches.
//!
//! Simplification against structured-merge-diff: every list is atomic (owned as a whole), which is
//! what a CRD schema without list-type markers gives; associative lists (`k:{...}` keys) are kept
//! as opaque path elements when read from an object but never produced.

use std::collections::BTreeSet;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::status::{ApiError, Cause};

/// One path of the `FieldsV1` tree: raw keys like `f:spec`; a trailing `.` marks the map itself.
pub type FieldPath = Vec<String>;

const NODE_ITSELF: &str = ".";

/// Fields the server manages itself, never owned by anyone.
const SYSTEM_FIELDS: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "uid"],
    &["metadata", "generation"],
    &["metadata", "managedFields"],
    &["metadata", "resourceVersion"],
    &["metadata", "deletionTimestamp"],
    &["metadata", "deletionGracePeriodSeconds"],
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    paths: BTreeSet<FieldPath>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn contains(&self, path: &FieldPath) -> bool {
        self.paths.contains(path)
    }

    /// Reads a `fieldsV1` tree.
    pub fn from_fields_v1(tree: &Value) -> Self {
        fn walk(node: &Value, prefix: &mut FieldPath, paths: &mut BTreeSet<FieldPath>) {
            let Some(children) = node.as_object() else {
                return;
            };
            if children.is_empty() && !prefix.is_empty() {
                paths.insert(prefix.clone());
            }
            for (key, child) in children {
                if key == NODE_ITSELF {
                    let mut marker = prefix.clone();
                    marker.push(NODE_ITSELF.into());
                    paths.insert(marker);
                    continue;
                }
                prefix.push(key.clone());
                walk(child, prefix, paths);
                prefix.pop();
            }
        }
        let mut paths = BTreeSet::new();
        walk(tree, &mut Vec::new(), &mut paths);
        FieldSet { paths }
    }

    pub fn to_fields_v1(&self) -> Value {
        let mut root = json!({});
        for path in &self.paths {
            let mut node = &mut root;
            for key in path {
                node = node
                    .as_object_mut()
                    .expect("fieldsV1 nodes are objects")
                    .entry(key.clone())
                    .or_insert_with(|| json!({}));
            }
        }
        root
    }

    /// The leaves an apply configuration sets: scalars, lists and empty maps.
    pub fn leaves_of(config: &Value, ignore_status: bool) -> Self {
        let mut paths = BTreeSet::new();
        collect(
            config,
            &mut Vec::new(),
            ignore_status,
            &mut |path, value| {
                if !is_map_with_children(value) {
                    paths.insert(path.clone());
                }
            },
        );
        FieldSet { paths }
    }

    fn remove_under(&mut self, prefix: &FieldPath) {
        self.paths.retain(|p| !p.starts_with(prefix));
    }
}

fn is_map_with_children(value: &Value) -> bool {
    value.as_object().is_some_and(|m| !m.is_empty())
}

fn is_system_field(path: &[String]) -> bool {
    SYSTEM_FIELDS.iter().any(|system| {
        system.len() == path.len()
            && system
                .iter()
                .zip(path)
                .all(|(s, p)| p.strip_prefix("f:") == Some(*s))
    })
}

/// Visits every node below the root (maps and leaves) with its `f:` path, skipping system fields
/// and, where a status subresource exists, `status`.
fn collect(
    value: &Value,
    prefix: &mut FieldPath,
    ignore_status: bool,
    visit: &mut dyn FnMut(&FieldPath, &Value),
) {
    let Some(map) = value.as_object() else {
        return;
    };
    for (key, child) in map {
        if child.is_null() {
            continue;
        }
        prefix.push(format!("f:{key}"));
        let skip =
            is_system_field(prefix) || (ignore_status && prefix.len() == 1 && key == "status");
        if !skip {
            visit(prefix, child);
            collect(child, prefix, ignore_status, visit);
        }
        prefix.pop();
    }
}

/// The value at a path of `f:` keys.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |node, key| {
        node.as_object()?.get(key.strip_prefix("f:")?)
    })
}

fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = object;
    for key in parents {
        let Some(next) = key
            .strip_prefix("f:")
            .and_then(|k| node.as_object_mut()?.get_mut(k))
        else {
            return;
        };
        node = next;
    }
    if let (Some(map), Some(key)) = (node.as_object_mut(), last.strip_prefix("f:")) {
        map.remove(key);
    }
}

/// `.spec.replicas`: how the real server prints a path in conflict messages.
pub fn display_path(path: &[String]) -> String {
    path.iter()
        .filter(|k| *k != NODE_ITSELF)
        .map(|k| match k.strip_prefix("f:") {
            Some(field) => format!(".{field}"),
            None => format!("[{}]", k.get(2..).unwrap_or(k)),
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: String,
    subresource: String,
    fields: FieldSet,
}

impl Entry {
    fn parse(value: &Value) -> Option<Entry> {
        Some(Entry {
            manager: value["manager"].as_str().unwrap_or_default().to_string(),
            operation: match value["operation"].as_str()? {
                "Apply" => Operation::Apply,
                _ => Operation::Update,
            },
            api_version: value["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: value["time"].as_str().unwrap_or_default().to_string(),
            subresource: value["subresource"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            fields: FieldSet::from_fields_v1(&value["fieldsV1"]),
        })
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(self.manager));
        entry.insert("operation".into(), json!(self.operation.as_str()));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if !self.time.is_empty() {
            entry.insert("time".into(), json!(self.time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            entry.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(entry)
    }

    fn is(&self, manager: &str, operation: Operation) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.is_empty()
    }

    /// How conflict messages name this manager.
    fn describe(&self) -> String {
        match self.operation {
            Operation::Apply => format!("{:?}", self.manager),
            Operation::Update => format!(
                "{:?} using {} at {}",
                self.manager, self.api_version, self.time
            ),
        }
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn entries_of(object: &Value) -> Vec<Entry> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| entries.iter().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

fn store_entries(object: &mut Value, entries: Vec<Entry>) {
    let entries: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(metadata) = object["metadata"].as_object_mut() {
        if entries.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// Paths `new` sets that `old` does not (new maps with a `.` marker, changed leaves), and paths
/// `old` has that `new` dropped.
fn diff(old: Option<&Value>, new: &Value, ignore_status: bool) -> (FieldSet, Vec<FieldPath>) {
    let mut changed = BTreeSet::new();
    collect(new, &mut Vec::new(), ignore_status, &mut |path, value| {
        let before = old.and_then(|o| value_at(o, path));
        if is_map_with_children(value) {
            if before.is_none_or(|b| !b.is_object()) {
                let mut marker = path.clone();
                marker.push(NODE_ITSELF.into());
                changed.insert(marker);
            }
        } else if before != Some(value) {
            changed.insert(path.clone());
        }
    });
    let mut removed: Vec<FieldPath> = Vec::new();
    if let Some(old) = old {
        collect(old, &mut Vec::new(), ignore_status, &mut |path, _| {
            if value_at(new, path).is_none() && !removed.iter().any(|r| path.starts_with(r)) {
                removed.push(path.clone());
            }
        });
    }
    (FieldSet { paths: changed }, removed)
}

/// Records an ordinary write (create, update, non-apply patch) by `manager` in `new`'s
/// managedFields: it takes over the fields it changed; removed fields lose their owners. Entries
/// the client sent in `new` (different from `old`'s) replace the old ones, like the real server.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    ignore_status: bool,
) {
    let sent = &new["metadata"]["managedFields"];
    let base = if sent.is_array() && old.is_none_or(|o| o["metadata"]["managedFields"] != *sent) {
        entries_of(new)
    } else {
        old.map(entries_of).unwrap_or_default()
    };
    let (changed, removed) = diff(old, new, ignore_status);
    let mut entries = base;
    for entry in &mut entries {
        for path in changed.paths.iter().chain(&removed) {
            if !entry.is(manager, Operation::Update) {
                entry.fields.remove_under(path);
            }
        }
        for path in &removed {
            entry.fields.remove_under(path);
        }
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.is(manager, Operation::Update))
        {
            Some(entry) => {
                entry.fields.paths.extend(changed.paths);
                entry.time = now();
                entry.api_version = api_version.to_string();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: Operation::Update,
                api_version: api_version.to_string(),
                time: now(),
                subresource: String::new(),
                fields: changed,
            }),
        }
    }
    store_entries(new, entries);
}

/// Server-side apply of `config` by `manager` over `live` (or over `skeleton` when the object
/// does not exist yet): the merged object, with its managedFields. Without `force`, a field
/// another manager owns with a different value is a 409 Conflict.
pub fn apply(
    live: Option<&Value>,
    skeleton: Value,
    config: &Value,
    manager: &str,
    api_version: &str,
    force: bool,
    ignore_status: bool,
) -> Result<Value, ApiError> {
    let mut entries = live.map(entries_of).unwrap_or_default();
    let applied = FieldSet::leaves_of(config, ignore_status);
    let current = live.unwrap_or(&skeleton);

    // (entry index, owned path) of every conflict.
    let mut conflicts: Vec<(usize, FieldPath)> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if entry.is(manager, Operation::Apply) {
            continue;
        }
        for owned in entry
            .fields
            .paths
            .iter()
            .filter(|p| p.last().is_some_and(|k| k != NODE_ITSELF))
        {
            let clash = applied.paths.iter().any(|set| {
                (set.starts_with(owned) || owned.starts_with(set))
                    && value_at(current, set) != value_at(config, set)
            });
            if clash {
                conflicts.push((index, owned.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force && !upgrades_client_side_apply(current, manager, &conflicts)
    {
        return Err(conflict_error(&entries, &conflicts));
    }
    for (index, path) in &conflicts {
        entries[*index].fields.remove_under(path);
    }

    let mut merged = current.clone();
    let previous = entries
        .iter()
        .find(|e| e.is(manager, Operation::Apply))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for dropped in previous.paths.difference(&applied.paths) {
        let owned_elsewhere = entries
            .iter()
            .any(|e| !e.is(manager, Operation::Apply) && e.fields.contains(dropped));
        if !owned_elsewhere {
            remove_at(&mut merged, dropped);
        }
    }
    let mut config_without_system = config.clone();
    if let Some(metadata) = config_without_system["metadata"].as_object_mut() {
        for system in [
            "resourceVersion",
            "managedFields",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            metadata.remove(system);
        }
    }
    json_patch::merge(&mut merged, &config_without_system);

    match entries.iter_mut().find(|e| e.is(manager, Operation::Apply)) {
        Some(entry) => {
            entry.fields = applied;
            entry.time = now();
            entry.api_version = api_version.to_string();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version: api_version.to_string(),
            time: now(),
            subresource: String::new(),
            fields: applied,
        }),
    }
    store_entries(&mut merged, entries);
    Ok(merged)
}

/// The real server's `lastAppliedManager`: `kubectl apply --server-side` (manager `kubectl`) may
/// take over fields from client-side apply when every conflict is on a field of the
/// last-applied-configuration annotation.
fn upgrades_client_side_apply(
    live: &Value,
    manager: &str,
    conflicts: &[(usize, FieldPath)],
) -> bool {
    if manager != "kubectl" {
        return false;
    }
    let Some(last_applied) =
        live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .as_str()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return false;
    };
    let allowed = FieldSet::leaves_of(&last_applied, false);
    conflicts.iter().all(|(_, path)| allowed.contains(path))
}

/// The message and causes of `fieldmanager.NewConflictError`.
fn conflict_error(entries: &[Entry], conflicts: &[(usize, FieldPath)]) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|(index, path)| {
            Cause::new(
                "FieldManagerConflict",
                format!("conflict with {}", entries[*index].describe()),
                display_path(path),
            )
        })
        .collect();
    let message = if let [(index, path)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            entries[*index].describe(),
            display_path(path)
        )
    } else {
        let mut by_manager: Vec<(String, Vec<String>)> = Vec::new();
        for (index, path) in conflicts {
            let manager = entries[*index].describe();
            match by_manager.iter_mut().find(|(m, _)| *m == manager) {
                Some((_, paths)) => paths.push(display_path(path)),
                None => by_manager.push((manager, vec![display_path(path)])),
            }
        }
        by_manager.sort();
        let lines: Vec<String> = by_manager
            .iter()
            .flat_map(|(manager, paths)| {
                std::iter::once(format!("conflicts with {manager}"))
                    .chain(paths.iter().map(|p| format!("- {p}")))
            })
            .collect();
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::apply_conflict(message, causes)
}

/// The (manager, operation) pairs of an object's managedFields.
#[cfg(test)]
fn managers(object: &Value) -> Vec<(String, String)> {
    entries_of(object)
        .into_iter()
        .map(|e| (e.manager, e.operation.as_str().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lrs(spec: Value) -> Value {
        json!({"apiVersion": "lrs.datarobot.com/v1", "kind": "LongRunningService",
               "metadata": {"name": "a", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn fields_v1_round_trips() {
        let tree = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:replicas": {}}});
        let set = FieldSet::from_fields_v1(&tree);
        assert!(set.contains(&vec!["f:spec".into(), "f:replicas".into()]));
        assert_eq!(set.to_fields_v1(), tree);
    }

    #[test]
    fn update_takes_over_changed_fields() {
        let mut created = lrs(json!({"image": "a", "replicas": 1}));
        record_update(None, &mut created, "creator", "v1", true);
        let mut updated = created.clone();
        updated["spec"]["image"] = json!("b");
        record_update(Some(&created), &mut updated, "editor", "v1", true);
        assert_eq!(
            managers(&updated),
            vec![
                ("creator".to_string(), "Update".to_string()),
                ("editor".to_string(), "Update".to_string())
            ]
        );
        let entries = entries_of(&updated);
        let image: FieldPath = vec!["f:spec".into(), "f:image".into()];
        assert!(!entries[0].fields.contains(&image));
        assert!(entries[1].fields.contains(&image));
    }

    #[test]
    fn apply_conflicts_unless_forced_and_shares_equal_values() {
        let mut live = lrs(json!({"image": "a", "replicas": 1}));
        record_update(
            None,
            &mut live,
            "kubectl-edit",
            "lrs.datarobot.com/v1",
            true,
        );
        let same = lrs(json!({"image": "a"}));
        let shared = apply(
            Some(&live),
            json!({}),
            &same,
            "me",
            "lrs.datarobot.com/v1",
            false,
            true,
        )
        .expect("same value is shared ownership");
        assert_eq!(managers(&shared).len(), 2);

        let different = lrs(json!({"image": "b"}));
        let error = apply(
            Some(&live),
            json!({}),
            &different,
            "me",
            "lrs.datarobot.com/v1",
            false,
            true,
        )
        .unwrap_err();
        assert_eq!(error.code.as_u16(), 409);
        assert!(
            error.message.starts_with(
                "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using lrs.datarobot.com/v1 at "
            ),
            "{}",
            error.message
        );
        assert!(error.message.ends_with(": .spec.image"));
        let status = error.to_status();
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldManagerConflict"
        );
        assert_eq!(status["details"]["causes"][0]["field"], ".spec.image");

        let forced = apply(
            Some(&live),
            json!({}),
            &different,
            "me",
            "lrs.datarobot.com/v1",
            true,
            true,
        )
        .unwrap();
        assert_eq!(forced["spec"]["image"], "b");
        assert_eq!(forced["spec"]["replicas"], 1);
    }

    #[test]
    fn apply_removes_fields_it_no_longer_sets() {
        let first = lrs(json!({"image": "a", "extra": true}));
        let created = apply(None, lrs(json!(null)), &first, "me", "v1", false, true).unwrap();
        assert_eq!(created["spec"]["extra"], true);
        let second = lrs(json!({"image": "a"}));
        let updated = apply(Some(&created), json!({}), &second, "me", "v1", false, true).unwrap();
        assert!(updated["spec"].get("extra").is_none());
    }
}
