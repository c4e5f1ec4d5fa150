//! The LRS operator of a DataRobot cluster, simulated as far as clients can tell: the
//! `lrs.datarobot.com/cleanup` finalizer it keeps on the LRSes it manages is released a delay
//! after an LRS is marked for deletion, so a plain `kubectl delete lrs ...` (which waits for the
//! objects to go) returns as on a real cluster. The release is an update through the API
//! server's own path, so the object goes once no finalizer is left and watches see `DELETED`.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::api::{Cluster, WriteOptions};
use super::store::{EventType, ObjectKey, key_of};

/// The finalizer the operator puts on the LRSes it manages and releases once it has cleaned up
/// after a deleted one.
pub const LRS_FINALIZER: &str = "lrs.datarobot.com/cleanup";

/// The operator's field manager, as its controller-runtime client names it.
const MANAGER: &str = "lrs-operator";

/// The plural the operator watches.
const LRS: &str = "lrs";

/// How many times a release is retried after a conflict (someone wrote in between).
const ATTEMPTS: usize = 5;

/// Runs the operator until the returned task is aborted: `delay` after an LRS carrying
/// [`LRS_FINALIZER`] is marked for deletion, the finalizer goes.
pub fn spawn(cluster: Arc<Cluster>, delay: Duration) -> tokio::task::JoinHandle<()> {
    let mut events = cluster.lock().subscribe();
    tokio::spawn(async move {
        // Objects already marked before the operator started (or while it lagged behind).
        let mut pending = deleting(&cluster);
        loop {
            for (key, uid) in pending.drain(..) {
                let cluster = cluster.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    release(&cluster, &key, &uid);
                });
            }
            match events.recv().await {
                Ok(event) if event.plural == LRS && event.kind != EventType::Deleted => {
                    if let Some(found) = waiting_for_us(&event.object) {
                        pending.push(found);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => pending = deleting(&cluster),
                Err(RecvError::Closed) => return,
            }
        }
    })
}

/// Every LRS marked for deletion that still carries the operator's finalizer.
fn deleting(cluster: &Cluster) -> Vec<(ObjectKey, String)> {
    let store = cluster.lock();
    store
        .objects(LRS)
        .filter_map(|(_, object)| waiting_for_us(object))
        .collect()
}

/// The key and uid of an LRS marked for deletion that still carries the operator's finalizer.
fn waiting_for_us(object: &Value) -> Option<(ObjectKey, String)> {
    let metadata = &object["metadata"];
    let ours = metadata["finalizers"]
        .as_array()
        .is_some_and(|list| list.iter().any(|f| f == LRS_FINALIZER));
    if !ours || metadata["deletionTimestamp"].is_null() {
        return None;
    }
    Some((
        key_of(
            metadata["namespace"].as_str(),
            metadata["name"].as_str().unwrap_or_default(),
        ),
        metadata["uid"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Removes the operator's finalizer from the LRS that is still the one marked (same uid), with
/// an update guarded by its resourceVersion, read again after a conflict.
fn release(cluster: &Cluster, key: &ObjectKey, uid: &str) {
    let Some(resource) = cluster.catalog.by_plural(LRS).cloned() else {
        return;
    };
    let options = WriteOptions {
        manager: MANAGER.to_string(),
        ..WriteOptions::default()
    };
    for _ in 0..ATTEMPTS {
        let Ok(current) = cluster.get(&resource, Some(&key.0), &key.1) else {
            return;
        };
        if current["metadata"]["uid"] != uid || waiting_for_us(&current).is_none() {
            return;
        }
        let mut released = current.clone();
        let others: Vec<Value> = current["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| *f != LRS_FINALIZER)
            .cloned()
            .collect();
        if let Some(metadata) = released["metadata"].as_object_mut() {
            if others.is_empty() {
                metadata.remove("finalizers");
            } else {
                metadata.insert("finalizers".into(), json!(others));
            }
        }
        match cluster.update(&resource, Some(&key.0), &key.1, released, &options) {
            Err(err) if err.code == StatusCode::CONFLICT => continue,
            _ => return,
        }
    }
}
