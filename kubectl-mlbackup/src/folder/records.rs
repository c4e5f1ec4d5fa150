//! The manifest records of a backup being written, kept compact until the manifest is streamed
//! out: one small allocation per file, each namespace and type stored once, the checksum as
//! bytes. The objects themselves are never held: a backup of 50,000 LRSes keeps about 10 MiB
//! of records, against the 90 MiB that whole manifest items and their JSON took.

use std::collections::{BTreeMap, HashMap};

use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::ManifestItem;

/// One file as the writer records it, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    pub path: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub r#type: &'a str,
    pub uid: &'a str,
    pub resource_version: &'a str,
    pub sha256: [u8; 32],
    pub bytes: u64,
    /// Of the YAML inside, for an encrypted file.
    pub plaintext_sha256: Option<[u8; 32]>,
}

/// Strings that repeat across items (namespaces, types), stored once.
#[derive(Debug, Default)]
struct Interned {
    values: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Interned {
    fn id(&mut self, value: &str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.values.push(value.to_string());
        self.ids.insert(value.to_string(), id);
        id
    }

    fn get(&self, id: u32) -> &str {
        &self.values[id as usize]
    }
}

#[derive(Debug)]
struct Record {
    /// The path, name, uid and resourceVersion, one after the other (one allocation).
    text: Box<str>,
    /// Where the name, the uid and the resourceVersion start in `text`.
    starts: [usize; 3],
    namespace: u32,
    r#type: u32,
    sha256: [u8; 32],
    bytes: u64,
    /// Boxed: only encrypted backups have it, and a record stays small without it.
    plaintext_sha256: Option<Box<[u8; 32]>>,
}

impl Record {
    fn path(&self) -> &str {
        &self.text[..self.starts[0]]
    }

    fn name(&self) -> &str {
        &self.text[self.starts[0]..self.starts[1]]
    }

    fn uid(&self) -> &str {
        &self.text[self.starts[1]..self.starts[2]]
    }

    fn resource_version(&self) -> &str {
        &self.text[self.starts[2]..]
    }
}

/// The records of the files written so far, in the order they were written.
#[derive(Debug, Default)]
pub struct ItemRecords {
    records: Vec<Record>,
    namespaces: Interned,
    types: Interned,
}

impl ItemRecords {
    pub fn push(&mut self, item: ItemRef<'_>) {
        let mut text = String::with_capacity(
            item.path.len() + item.name.len() + item.uid.len() + item.resource_version.len(),
        );
        let mut starts = [0; 3];
        for (field, start) in [item.path, item.name, item.uid]
            .into_iter()
            .zip(&mut starts)
        {
            text.push_str(field);
            *start = text.len();
        }
        text.push_str(item.resource_version);
        self.records.push(Record {
            text: text.into_boxed_str(),
            starts,
            namespace: self.namespaces.id(item.namespace),
            r#type: self.types.id(item.r#type),
            sha256: item.sha256,
            bytes: item.bytes,
            plaintext_sha256: item.plaintext_sha256.map(Box::new),
        });
    }

    /// How many files were recorded (a file written twice counts twice until [`Self::listed`]).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn clear(&mut self) {
        *self = ItemRecords::default();
    }

    /// The paths of the files recorded from the `start`th on, in the order they were written.
    pub fn paths_from(&self, start: usize) -> impl Iterator<Item = &str> {
        self.records.iter().skip(start).map(Record::path)
    }

    /// The records as the manifest lists them: by path, and of a file written twice only the
    /// later record (it describes the file on disk).
    pub fn listed(&self) -> Listed<'_> {
        let mut order: Vec<usize> = (0..self.records.len()).collect();
        // Later records first among equal paths, so `dedup` keeps the latest.
        order.sort_unstable_by(|&a, &b| {
            self.records[a]
                .path()
                .cmp(self.records[b].path())
                .then(b.cmp(&a))
        });
        order.dedup_by(|later, kept| self.records[*later].path() == self.records[*kept].path());
        Listed {
            records: self,
            order,
        }
    }

    fn item(&self, index: usize) -> ManifestItem {
        let record = &self.records[index];
        ManifestItem {
            path: record.path().to_string(),
            namespace: self.namespaces.get(record.namespace).to_string(),
            name: record.name().to_string(),
            r#type: self.types.get(record.r#type).to_string(),
            uid: record.uid().to_string(),
            resource_version: record.resource_version().to_string(),
            sha256: super::hex(&record.sha256),
            bytes: record.bytes,
            plaintext_sha256: record.plaintext_sha256.as_deref().map(|h| super::hex(h)),
        }
    }
}

/// The manifest's `items`: serialized one at a time from the records, never all at once.
pub struct Listed<'a> {
    records: &'a ItemRecords,
    order: Vec<usize>,
}

impl Listed<'_> {
    pub fn totals(&self) -> ItemTotals {
        ItemTotals {
            count: self.order.len(),
            bytes: self
                .order
                .iter()
                .map(|&i| self.records.records[i].bytes)
                .sum(),
        }
    }

    pub fn counts_by_type(&self) -> BTreeMap<String, usize> {
        self.count_by(|record| self.records.types.get(record.r#type))
    }

    pub fn counts_by_namespace(&self) -> BTreeMap<String, usize> {
        self.count_by(|record| self.records.namespaces.get(record.namespace))
    }

    fn count_by<'k>(&'k self, key: impl Fn(&'k Record) -> &'k str) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::<String, usize>::new();
        for &i in &self.order {
            let key = key(&self.records.records[i]);
            match counts.get_mut(key) {
                Some(count) => *count += 1,
                None => {
                    counts.insert(key.to_string(), 1);
                }
            }
        }
        counts
    }

    #[cfg(test)]
    pub fn items(&self) -> Vec<ManifestItem> {
        self.order.iter().map(|&i| self.records.item(i)).collect()
    }
}

impl Serialize for Listed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.order.len()))?;
        for &i in &self.order {
            seq.serialize_element(&self.records.item(i))?;
        }
        seq.end()
    }
}

/// What a written manifest's `items` add up to: what the backup command reports (the list
/// itself is on disk only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ItemTotals {
    pub count: usize,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item<'a>(namespace: &'a str, path: &'a str, rv: &'a str, bytes: u64) -> ItemRef<'a> {
        ItemRef {
            path,
            namespace,
            name: path.rsplit('/').next().unwrap().trim_end_matches(".yaml"),
            r#type: "deployment",
            uid: "0f6c2a52-8d8e-4a33-9b0f-2b1f1f3c9a10",
            resource_version: rv,
            sha256: [0xab; 32],
            bytes,
            plaintext_sha256: None,
        }
    }

    #[test]
    fn records_read_back_as_manifest_items_by_path_the_latest_write_winning() {
        let mut records = ItemRecords::default();
        records.push(item("team", "team/b.yaml", "1", 10));
        records.push(item("dr", "dr/a-b.yaml", "2", 20));
        records.push(item("dr", "dr/a.yaml", "3", 30));
        records.push(item("team", "team/b.yaml", "4", 40));
        assert_eq!(records.len(), 4);
        let listed = records.listed();
        let items = listed.items();
        let found: Vec<(&str, &str, &str, &str)> = items
            .iter()
            .map(|i| {
                (
                    i.path.as_str(),
                    i.namespace.as_str(),
                    i.name.as_str(),
                    i.resource_version.as_str(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("dr/a-b.yaml", "dr", "a-b", "2"),
                ("dr/a.yaml", "dr", "a", "3"),
                ("team/b.yaml", "team", "b", "4"),
            ]
        );
        assert_eq!(items[0].uid, "0f6c2a52-8d8e-4a33-9b0f-2b1f1f3c9a10");
        assert_eq!(items[0].sha256, "ab".repeat(32));
        assert_eq!(items[0].r#type, "deployment");
        assert_eq!(
            listed.totals(),
            ItemTotals {
                count: 3,
                bytes: 90
            }
        );
        assert_eq!(
            listed.counts_by_namespace(),
            BTreeMap::from([("dr".into(), 2), ("team".into(), 1)])
        );
        assert_eq!(
            listed.counts_by_type(),
            BTreeMap::from([("deployment".into(), 3)])
        );
        let json = serde_json::to_value(&listed).unwrap();
        assert_eq!(json, serde_json::to_value(&items).unwrap());
    }

    /// The memory bound of a backup: what the writer keeps per object is its record, a few
    /// hundred bytes at most, whatever the size of the object.
    #[test]
    fn a_record_holds_only_its_own_fields() {
        assert!(std::mem::size_of::<Record>() <= 96);
        let mut records = ItemRecords::default();
        for i in 0..1000 {
            let path = format!("dr-app/deployment-{i:05}-5f0c3a2b9d1e.yaml");
            records.push(item("dr-app", &path, "123456", 1_000_000));
        }
        // The text of one record: path, name, uid, resourceVersion; nothing of the object.
        let longest = records.records.iter().map(|r| r.text.len()).max().unwrap();
        assert_eq!(
            longest,
            "dr-app/deployment-00000-5f0c3a2b9d1e.yaml".len()
                + "deployment-00000-5f0c3a2b9d1e".len()
                + 36
                + 6
        );
        // One namespace and one type, however many records.
        assert_eq!(records.namespaces.values.len(), 1);
        assert_eq!(records.types.values.len(), 1);
        assert_eq!(records.listed().totals().bytes, 1_000_000_000);
    }
}
