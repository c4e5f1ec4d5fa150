//! The object store, etcd-like: one monotonic resourceVersion bumped by every write, list
//! snapshots kept a while so that continue tokens read a consistent list (and go stale when
//! "compacted"), and a history of change events that watches replay and follow.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects. Ordering by this key
/// is the stable list order (etcd orders by key, which is namespace then name).
pub type ObjectKey = (String, String);

/// All objects of one resource type.
pub type Objects = BTreeMap<ObjectKey, Arc<Value>>;

/// The objects of one type at one resourceVersion, in key order: a page starts by binary search
/// (as etcd seeks to the continue key), so reading a list page by page is linear in its length.
pub type ListSnapshot = Vec<(ObjectKey, Arc<Value>)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches report it.
#[derive(Clone, Debug)]
pub struct StoreEvent {
    pub kind: EventType,
    pub plural: String,
    pub resource_version: u64,
    pub object: Arc<Value>,
}

/// How long list snapshots live: continue tokens older than this are stale, as after an etcd
/// compaction (the real default compaction interval is 5 minutes).
const SNAPSHOT_RETENTION: Duration = Duration::from_secs(300);
const MAX_SNAPSHOTS: usize = 64;
/// How many past events a watch can start from.
const HISTORY_LENGTH: usize = 20_000;

struct Snapshot {
    plural: String,
    resource_version: u64,
    taken: Instant,
    objects: Arc<ListSnapshot>,
}

pub struct Store {
    objects: HashMap<String, Objects>,
    resource_version: u64,
    snapshots: VecDeque<Snapshot>,
    history: VecDeque<StoreEvent>,
    events: broadcast::Sender<StoreEvent>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            objects: HashMap::new(),
            resource_version: 1000,
            snapshots: VecDeque::new(),
            history: VecDeque::new(),
            events: broadcast::channel(4096).0,
        }
    }
}

pub fn key_of(namespace: Option<&str>, name: &str) -> ObjectKey {
    (namespace.unwrap_or_default().to_string(), name.to_string())
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub fn get(&self, plural: &str, key: &ObjectKey) -> Option<Arc<Value>> {
        self.objects.get(plural)?.get(key).cloned()
    }

    /// The live objects of a type (shared, not copied).
    pub fn objects(&self, plural: &str) -> impl Iterator<Item = (&ObjectKey, &Arc<Value>)> {
        self.objects.get(plural).into_iter().flat_map(|m| m.iter())
    }

    /// Writes an object with the next resourceVersion (set into it), and records the event.
    pub fn put(&mut self, plural: &str, key: ObjectKey, mut object: Value) -> Arc<Value> {
        // What etcd holds is what the API server encoded; objects inserted by tests too.
        super::numbers::as_stored(&mut object);
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        let object = Arc::new(object);
        let previous = self
            .objects
            .entry(plural.to_string())
            .or_default()
            .insert(key, object.clone());
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(kind, plural, object.clone());
        object
    }

    /// Removes an object; the DELETED event carries its last state at a new resourceVersion.
    pub fn remove(&mut self, plural: &str, key: &ObjectKey) -> Option<Arc<Value>> {
        let removed = self.objects.get_mut(plural)?.remove(key)?;
        self.resource_version += 1;
        let mut last = (*removed).clone();
        last["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        let last = Arc::new(last);
        self.record(EventType::Deleted, plural, last.clone());
        Some(last)
    }

    fn record(&mut self, kind: EventType, plural: &str, object: Arc<Value>) {
        let event = StoreEvent {
            kind,
            plural: plural.to_string(),
            resource_version: self.resource_version,
            object,
        };
        if self.history.len() == HISTORY_LENGTH {
            self.history.pop_front();
        }
        self.history.push_back(event.clone());
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// The objects of a type as they are now, in key order.
    pub fn list_now(&self, plural: &str) -> ListSnapshot {
        self.objects(plural)
            .map(|(key, object)| (key.clone(), object.clone()))
            .collect()
    }

    /// The objects of a type as they are now, kept for continue tokens of lists at the current
    /// resourceVersion.
    pub fn snapshot(&mut self, plural: &str) -> Arc<ListSnapshot> {
        let now = Instant::now();
        self.snapshots
            .retain(|s| now.duration_since(s.taken) < SNAPSHOT_RETENTION);
        if let Some(existing) = self
            .snapshots
            .iter()
            .find(|s| s.plural == plural && s.resource_version == self.resource_version)
        {
            return existing.objects.clone();
        }
        let objects = Arc::new(self.list_now(plural));
        if self.snapshots.len() == MAX_SNAPSHOTS {
            self.snapshots.pop_front();
        }
        self.snapshots.push_back(Snapshot {
            plural: plural.to_string(),
            resource_version: self.resource_version,
            taken: now,
            objects: objects.clone(),
        });
        objects
    }

    /// The snapshot a continue token refers to, unless it has been compacted away.
    pub fn snapshot_at(&self, plural: &str, resource_version: u64) -> Option<Arc<ListSnapshot>> {
        self.snapshots
            .iter()
            .find(|s| {
                s.plural == plural
                    && s.resource_version == resource_version
                    && s.taken.elapsed() < SNAPSHOT_RETENTION
            })
            .map(|s| s.objects.clone())
    }

    /// Forgets every list snapshot: outstanding continue tokens become stale.
    pub fn compact(&mut self) {
        self.snapshots.clear();
    }

    /// Events after `resource_version` for a type, and a receiver for the ones to come (taken
    /// under the same lock, so none is missed); `None` when the history no longer reaches back.
    pub fn watch_from(
        &self,
        plural: &str,
        resource_version: u64,
    ) -> Option<(Vec<StoreEvent>, broadcast::Receiver<StoreEvent>)> {
        let oldest_known = self
            .history
            .front()
            .map_or(self.resource_version, |e| e.resource_version - 1);
        if resource_version < oldest_known {
            return None;
        }
        let past = self
            .history
            .iter()
            .filter(|e| e.resource_version > resource_version && e.plural == plural)
            .cloned()
            .collect();
        Some((past, self.events.subscribe()))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_bumps_the_resource_version_and_snapshots_stay_consistent() {
        let mut store = Store::default();
        let start = store.resource_version();
        let a = store.put("lrs", key_of(Some("ns"), "a"), json!({"metadata": {}}));
        assert_eq!(
            a["metadata"]["resourceVersion"],
            json!((start + 1).to_string())
        );
        let snapshot = store.snapshot("lrs");
        let at = store.resource_version();
        store.put("lrs", key_of(Some("ns"), "b"), json!({"metadata": {}}));
        store.remove("lrs", &key_of(Some("ns"), "a"));
        assert_eq!(store.resource_version(), start + 3);
        assert_eq!(snapshot.len(), 1);
        assert_eq!(store.snapshot_at("lrs", at).unwrap().len(), 1);
        store.compact();
        assert!(store.snapshot_at("lrs", at).is_none());
    }

    #[test]
    fn watch_replays_events_after_the_given_version() {
        let mut store = Store::default();
        let start = store.resource_version();
        store.put("lrs", key_of(Some("ns"), "a"), json!({"metadata": {}}));
        store.put("pods", key_of(Some("ns"), "p"), json!({"metadata": {}}));
        store.remove("lrs", &key_of(Some("ns"), "a"));
        let (past, _) = store.watch_from("lrs", start + 1).unwrap();
        assert_eq!(past.len(), 1);
        assert_eq!(past[0].kind, EventType::Deleted);
        assert!(store.watch_from("lrs", start - 10).is_none());
    }
}
