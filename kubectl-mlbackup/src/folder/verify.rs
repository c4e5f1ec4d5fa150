//! Reading a backup's objects, checked: every item of a manifest against its size, SHA-256,
//! kind and name; every YAML file of a folder without one read as `kubectl apply -f` reads it
//! (documents, Lists); nothing read through a symbolic link. What `verify` reports, and what
//! restore and diff read.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use kube::ResourceExt;
use serde::Serialize;

use super::catalog::{Backup, CatalogStatus, Loose, is_yaml_name, scan_yaml_files, walk};
use super::name::{is_safe_component, item_file_name};
use super::{
    BackupStatus, CRD_FILE, DEPLOYMENTS_FILE, FolderError, JOURNAL_FILE, MANIFEST_FILE, Manifest,
    ManifestItem, SavedFile, sha256_hex,
};
use crate::encryption::{FILE_SUFFIX, Identities, decrypt};
use crate::object::{Head, Object};

/// One LRS object read from a backup file.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Relative to the backup folder, with `/`.
    pub path: String,
    /// Where in the file: for files of several documents and Lists.
    pub place: Place,
    pub object: Object,
}

impl Backup {
    /// Reads every LRS file for a restore, checked as [`Backup::verify`] checks it (for a
    /// managed backup: listed, intact, of the recorded apiVersion and kind, named like its
    /// path; otherwise: a YAML object with apiVersion, kind and metadata.name). Returns the
    /// objects and a problem for each file that is not good, sorted by path.
    ///
    /// An encrypted backup is opened with [`Backup::identities`]: without one for a recipient
    /// the manifest names, this fails before reading any item, naming the recipients.
    pub fn read_objects(&self) -> Result<(Vec<StoredObject>, Vec<Problem>), FolderError> {
        let mut objects = Vec::new();
        let mut problems = Vec::new();
        match &self.manifest {
            Some(manifest) => {
                if let Some(recipients) = manifest.recipients() {
                    self.identities.check_opens(recipients)?;
                }
                for item in &manifest.items {
                    match check_item(&self.dir, manifest, item, &self.identities)
                        .and_then(|object| object.ok_or_else(|| unopened(item)))
                    {
                        Ok(object) => objects.push(StoredObject {
                            path: item.path.clone(),
                            place: Place::default(),
                            object,
                        }),
                        Err(problem) => problems.push(problem),
                    }
                }
            }
            None => {
                let (read, bad) = self.read_yaml_objects()?;
                objects.extend(read.into_iter().map(|(item, place, object)| StoredObject {
                    path: item.path,
                    place,
                    object,
                }));
                problems.extend(bad);
            }
        }
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((objects, problems))
    }

    /// The LRS files: the manifest's items, or for a backup without a manifest what reading its
    /// YAML files tells (unreadable files are left out; [`Backup::verify`] names them).
    pub fn items(&self) -> Result<Vec<ManifestItem>, FolderError> {
        match &self.manifest {
            Some(manifest) => Ok(manifest.items.clone()),
            None => Ok(self.read_yaml_files()?.0),
        }
    }

    /// Checks every file: for managed backups each item is present with the recorded size and
    /// SHA-256, parses as an object of the recorded apiVersion and kind, and is named like its
    /// path, and nothing else is there; for the others every YAML file parses as an object with
    /// apiVersion, kind and metadata.name.
    ///
    /// The files of an encrypted backup are checked against the hash of their ciphertext,
    /// which needs no key; with [`Backup::identities`] (which must open the backup) each is
    /// also decrypted and checked as above, its YAML against the hash recorded for it.
    pub fn verify(&self) -> Result<Verification, FolderError> {
        let mut problems = Vec::new();
        let checked = match &self.manifest {
            Some(manifest) => {
                if let Some(recipients) = manifest.recipients()
                    && !self.identities.is_empty()
                {
                    self.identities.check_opens(recipients)?;
                }
                if manifest.status == BackupStatus::Partial || self.status == CatalogStatus::Partial
                {
                    problems.push(Problem {
                        path: MANIFEST_FILE.to_string(),
                        kind: ProblemKind::Incomplete,
                        detail: incomplete_detail(manifest),
                    });
                }
                for item in &manifest.items {
                    if let Err(problem) = check_item(&self.dir, manifest, item, &self.identities) {
                        problems.push(problem);
                    }
                }
                if let Some(crd) = &manifest.crd
                    && let Err(problem) = check_saved_file(&self.dir, crd)
                {
                    problems.push(problem);
                }
                problems.extend(self.unexpected_files(manifest)?);
                manifest.items.len()
            }
            None => {
                let (items, bad) = self.read_yaml_files()?;
                if self.status == CatalogStatus::Partial {
                    problems.push(Problem {
                        path: MANIFEST_FILE.to_string(),
                        kind: ProblemKind::Missing,
                        detail: "the backup was interrupted before it wrote its manifest".into(),
                    });
                }
                // Files, not objects: a file may hold several (documents, Lists).
                let checked = items
                    .iter()
                    .map(|item| &item.path)
                    .chain(bad.iter().map(|problem| &problem.path))
                    .collect::<BTreeSet<_>>()
                    .len();
                problems.extend(bad);
                checked
            }
        };
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Verification { checked, problems })
    }

    fn unexpected_files(&self, manifest: &Manifest) -> Result<Vec<Problem>, FolderError> {
        let mut expected: BTreeSet<&str> = manifest.items.iter().map(|i| i.path.as_str()).collect();
        expected.extend([MANIFEST_FILE, DEPLOYMENTS_FILE, JOURNAL_FILE]);
        if manifest.crd.is_some() {
            expected.insert(CRD_FILE);
        }
        let namespaces: BTreeSet<&str> = manifest
            .items
            .iter()
            .map(|i| i.namespace.as_str())
            .collect();
        let mut problems = Vec::new();
        for (path, file_type) in walk(&self.dir, 2)? {
            let unexpected = if file_type.is_dir() {
                !namespaces.contains(path.as_str())
            } else {
                !expected.contains(path.as_str())
            };
            if unexpected {
                let what = if file_type.is_symlink() {
                    "a symbolic link the manifest does not list"
                } else if file_type.is_dir() {
                    "a directory the manifest does not list"
                } else {
                    "a file the manifest does not list"
                };
                problems.push(Problem {
                    path,
                    kind: ProblemKind::Unexpected,
                    detail: what.to_string(),
                });
            }
        }
        Ok(problems)
    }

    /// Reads every YAML file of a backup without a manifest: the items it could read, and a
    /// problem for each file it could not.
    fn read_yaml_files(&self) -> Result<(Vec<ManifestItem>, Vec<Problem>), FolderError> {
        let (objects, problems) = self.read_yaml_objects()?;
        Ok((
            objects.into_iter().map(|(item, _, _)| item).collect(),
            problems,
        ))
    }

    /// [`Backup::read_yaml_files`] with the objects read, and where each is in its file.
    #[allow(clippy::type_complexity)]
    fn read_yaml_objects(
        &self,
    ) -> Result<(Vec<(ManifestItem, Place, Object)>, Vec<Problem>), FolderError> {
        let mut problems = Vec::new();
        // (path shown, folder, path under it): read beneath the folder, never through a link.
        let files: Vec<(String, PathBuf, String)> = match self.loose {
            Some(Loose::File) => {
                let parent = match self.dir.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                vec![(self.name.clone(), parent, self.name.clone())]
            }
            _ => {
                let layout = scan_yaml_files(&self.dir)?;
                // In a folder of any name other files are passed over, as kubectl passes them
                // over; a YAML name that is no regular file is not, because it is meant.
                problems.extend(
                    layout
                        .strangers
                        .into_iter()
                        .filter(|path| is_yaml_name(path))
                        .map(|path| Problem {
                            path,
                            kind: ProblemKind::Unreadable,
                            detail: "not a regular file (symbolic links are not followed)".into(),
                        }),
                );
                layout
                    .yaml_files
                    .into_iter()
                    .map(|path| (path.clone(), self.dir.clone(), path))
                    .collect()
            }
        };
        let mut items = Vec::new();
        for (path, dir, relative) in files {
            let bytes = match read_beneath(&dir, &relative) {
                Ok(bytes) => bytes,
                Err(err) => {
                    problems.push(Problem {
                        path,
                        kind: ProblemKind::Unreadable,
                        detail: err.to_string(),
                    });
                    continue;
                }
            };
            let objects = match read_file_objects(&bytes) {
                Ok(objects) => objects,
                Err(detail) => {
                    problems.push(Problem {
                        path,
                        kind: ProblemKind::Invalid,
                        detail,
                    });
                    continue;
                }
            };
            let sha256 = sha256_hex(&bytes);
            for object in objects {
                match object {
                    Ok(FileObject { place, object }) => {
                        let head = &object.head;
                        let (namespace, name) = head.key();
                        items.push((
                            ManifestItem {
                                path: path.clone(),
                                namespace,
                                name,
                                r#type: head.lrs_type().to_string(),
                                uid: head.uid().unwrap_or_default(),
                                resource_version: head.resource_version().unwrap_or_default(),
                                sha256: sha256.clone(),
                                bytes: bytes.len() as u64,
                                plaintext_sha256: None,
                            },
                            place,
                            object,
                        ));
                    }
                    Err(detail) => problems.push(Problem {
                        path: path.clone(),
                        kind: ProblemKind::Invalid,
                        detail,
                    }),
                }
            }
        }
        Ok((items, problems))
    }
}

fn incomplete_detail(manifest: &Manifest) -> String {
    if manifest.errors.is_empty() {
        "the backup did not finish".to_string()
    } else {
        format!("the backup did not finish: {}", manifest.errors.join("; "))
    }
}

/// What is wrong with one file of a backup.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// Listed in the manifest, not on disk.
    Missing,
    /// Size or SHA-256 differs from the manifest.
    Modified,
    /// Not YAML, not an object of the recorded kind, or named unlike its path.
    Invalid,
    /// Cannot be read (permissions, not a regular file).
    Unreadable,
    /// On disk, not in the manifest.
    Unexpected,
    /// The backup itself did not finish.
    Incomplete,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Missing => "missing",
            ProblemKind::Modified => "modified",
            ProblemKind::Invalid => "invalid",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::Unexpected => "unexpected",
            ProblemKind::Incomplete => "incomplete",
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Relative to the backup folder.
    pub path: String,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// How many LRS files were checked.
    pub checked: usize,
    /// Sorted by path; empty when the backup is good.
    pub problems: Vec<Problem>,
}

/// The problem of an encrypted item read without a key (never met: `read_objects` refuses an
/// encrypted backup without an identity that opens it before reading any item).
fn unopened(item: &ManifestItem) -> Problem {
    Problem {
        path: item.path.clone(),
        kind: ProblemKind::Unreadable,
        detail: "it is encrypted and no identity was given".into(),
    }
}

/// A file besides the items (like [`CRD_FILE`]): at its one place, with the bytes the manifest
/// records.
fn check_saved_file(dir: &Path, file: &SavedFile) -> Result<(), Problem> {
    let problem = |kind, detail: String| {
        Err(Problem {
            path: file.path.clone(),
            kind,
            detail,
        })
    };
    // A manifest is data from disk: only the one name is read.
    if file.path != CRD_FILE {
        return problem(
            ProblemKind::Invalid,
            format!(
                "the manifest lists its definition as `{}`, not `{CRD_FILE}`",
                file.path
            ),
        );
    }
    match read_recorded(dir, &file.path, file.bytes, &file.sha256) {
        Ok(_) => Ok(()),
        Err((kind, detail)) => problem(kind, detail),
    }
}

/// The bytes of `path` in `dir` when they are the `bytes` and `sha256` the manifest records;
/// else the problem (missing, unreadable or modified) and its detail.
fn read_recorded(
    dir: &Path,
    path: &str,
    bytes: u64,
    sha256: &str,
) -> Result<Vec<u8>, (ProblemKind, String)> {
    let read = match read_beneath(dir, path) {
        Ok(read) => read,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err((
                ProblemKind::Missing,
                "listed in the manifest, not on disk".into(),
            ));
        }
        Err(err) => return Err((ProblemKind::Unreadable, err.to_string())),
    };
    let actual = sha256_hex(&read);
    if read.len() as u64 != bytes || actual != sha256 {
        return Err((
            ProblemKind::Modified,
            format!(
                "{} bytes with SHA-256 {}, the manifest says {bytes} bytes with SHA-256 {}",
                read.len(),
                short_hash(&actual),
                short_hash(sha256)
            ),
        ));
    }
    Ok(read)
}

/// Checks one item of a manifest and returns the object its file holds; `None` for an
/// encrypted item when no identity was given (its ciphertext is checked, nothing more).
fn check_item(
    dir: &Path,
    manifest: &Manifest,
    item: &ManifestItem,
    identities: &Identities,
) -> Result<Option<Object>, Problem> {
    let resource = &manifest.resource;
    let problem = |kind, detail: String| {
        Err(Problem {
            path: item.path.clone(),
            kind,
            detail,
        })
    };
    let suffix = if manifest.encryption.is_some() {
        FILE_SUFFIX
    } else {
        ""
    };
    // A manifest is data from disk: never let its paths point outside the backup.
    let expected_path = format!("{}/{}{suffix}", item.namespace, item_file_name(&item.name));
    if !is_safe_component(&item.namespace)
        || !is_safe_component(&item.name)
        || item.path != expected_path
    {
        return problem(
            ProblemKind::Invalid,
            format!(
                "the manifest lists it for `{}/{}`, whose file would be `{expected_path}`",
                item.namespace, item.name
            ),
        );
    }
    let bytes = match read_recorded(dir, &item.path, item.bytes, &item.sha256) {
        Ok(bytes) => bytes,
        Err((kind, detail)) => return problem(kind, detail),
    };
    let plaintext;
    let yaml = match manifest.recipients() {
        None => &bytes,
        Some(_) if identities.is_empty() => return Ok(None),
        Some(recipients) => {
            let Some(expected) = &item.plaintext_sha256 else {
                return problem(
                    ProblemKind::Invalid,
                    "the manifest records no plaintextSha256 for this encrypted file".into(),
                );
            };
            plaintext = match decrypt(&bytes, identities, recipients) {
                Ok(plaintext) => plaintext,
                Err(err) => return problem(ProblemKind::Invalid, err.to_string()),
            };
            let actual = sha256_hex(&plaintext);
            if actual != *expected {
                return problem(
                    ProblemKind::Modified,
                    format!(
                        "it decrypts to YAML with SHA-256 {}, the manifest says {}",
                        short_hash(&actual),
                        short_hash(expected)
                    ),
                );
            }
            &plaintext
        }
    };
    let object = match read_single_object(yaml) {
        Ok(object) => object,
        Err(detail) => return problem(ProblemKind::Invalid, detail),
    };
    let head = &object.head;
    let (namespace, name) = head.key();
    let mismatches: Vec<String> = [
        (
            "apiVersion",
            head.api_version().to_string(),
            resource.api_version(),
        ),
        ("kind", head.kind().to_string(), resource.kind.clone()),
        ("metadata.name", name, item.name.clone()),
        ("metadata.namespace", namespace, item.namespace.clone()),
    ]
    .into_iter()
    .filter(|(_, found, expected)| found != expected)
    .map(|(field, found, expected)| format!("{field} is `{found}`, expected `{expected}`"))
    .collect();
    if mismatches.is_empty() {
        Ok(Some(object))
    } else {
        problem(ProblemKind::Invalid, mismatches.join("; "))
    }
}

fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Where an object is in its file: which `---` document (named only when the file has more
/// than one) and which item of a `kind: List`. Empty for a file that is one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    /// 1-based.
    pub document: Option<usize>,
    /// 1-based.
    pub item: Option<usize>,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.document, self.item) {
            (Some(document), Some(item)) => write!(f, "document {document}, item {item}"),
            (Some(document), None) => write!(f, "document {document}"),
            (None, Some(item)) => write!(f, "item {item}"),
            (None, None) => Ok(()),
        }
    }
}

impl Place {
    /// `path`, with the place in parentheses when there is one: `all.yaml (document 2)`.
    pub fn locate(self, path: &str) -> String {
        if self == Place::default() {
            path.to_string()
        } else {
            format!("{path} ({self})")
        }
    }

    /// `detail` prefixed with the place, when there is one.
    pub fn describe(self, detail: &str) -> String {
        if self == Place::default() {
            detail.to_string()
        } else {
            format!("{self}: {detail}")
        }
    }
}

/// One object of a file.
struct FileObject {
    place: Place,
    object: Object,
}

/// Reads every object of a file as `kubectl apply -f` would (see [`crate::yaml::read_documents`]):
/// each document, and the items of each List (a document with `items`; items without `kind`
/// and `apiVersion` take the List's, without its `List` suffix). `Err`: the file cannot be read
/// at all; otherwise one result per object, an `Err` saying (with its place) why that document
/// or item is no Kubernetes object.
fn read_file_objects(bytes: &[u8]) -> Result<Vec<Result<FileObject, String>>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        // What the shell loop leaves behind when `kubectl get` failed.
        return Err("the file is empty".to_string());
    }
    let documents = crate::yaml::read_documents(bytes).map_err(|err| {
        let place = Place {
            document: (err.index > 1).then_some(err.index),
            item: None,
        };
        place.describe(&format!("not valid YAML: {}", err.reason))
    })?;
    if documents.is_empty() {
        return Err("the file holds no object (only empty documents)".to_string());
    }
    let several = documents.len() > 1 || documents[0].index > 1;
    let mut objects = Vec::new();
    for document in documents {
        let place = Place {
            document: several.then_some(document.index),
            item: None,
        };
        let value = document.value;
        let Some(items) = value.get("items") else {
            objects.push(
                read_object(value)
                    .map(|object| FileObject { place, object })
                    .map_err(|detail| place.describe(&detail)),
            );
            continue;
        };
        // kubectl's rule: any object with `items` is a list.
        let items = match items {
            serde_json::Value::Array(items) => items.clone(),
            serde_json::Value::Null => Vec::new(),
            _ => {
                objects.push(Err(place.describe("`items` is not a list")));
                continue;
            }
        };
        let list = match Head::of(&value) {
            Ok(list) => list,
            Err(err) => {
                objects.push(Err(place.describe(&err.to_string())));
                continue;
            }
        };
        let (list_version, list_kind) = (list.api_version(), list.kind());
        let item_kind = list_kind.strip_suffix("List").unwrap_or(list_kind);
        for (position, mut item) in items.into_iter().enumerate() {
            let place = Place {
                item: Some(position + 1),
                ..place
            };
            if let Some(map) = item.as_object_mut()
                && !map.contains_key("kind")
                && !map.contains_key("apiVersion")
            {
                map.insert("apiVersion".into(), list_version.into());
                map.insert("kind".into(), item_kind.into());
            }
            let read = if item.get("items").is_some() {
                Err("a list inside a list".to_string())
            } else {
                read_object(item)
            };
            objects.push(
                read.map(|object| FileObject { place, object })
                    .map_err(|detail| place.describe(&detail)),
            );
        }
    }
    Ok(objects)
}

/// Reads a file that must hold exactly one object (an item of a managed backup).
fn read_single_object(bytes: &[u8]) -> Result<Object, String> {
    let mut objects = read_file_objects(bytes)?;
    if objects.len() != 1 {
        return Err(format!(
            "it holds {} objects; a backup file holds one",
            objects.len()
        ));
    }
    if objects[0]
        .as_ref()
        .is_ok_and(|o| o.place != Place::default())
    {
        return Err("it holds a List; a backup file holds one object".to_string());
    }
    objects.pop().expect("one object").map(|read| read.object)
}

/// One document as an object with its head read, or what keeps it from being a Kubernetes
/// object: not a map, a head field of the wrong form, or no apiVersion, kind or name.
fn read_object(value: serde_json::Value) -> Result<Object, String> {
    if !value.is_object() {
        return Err("not a YAML object".to_string());
    }
    let object = Object::new(value).map_err(|err| err.to_string())?;
    let head = &object.head;
    for (field, text) in [("apiVersion", head.api_version()), ("kind", head.kind())] {
        if text.is_empty() {
            return Err(format!("`{field}` is missing"));
        }
    }
    if head.metadata.name.as_deref().unwrap_or_default().is_empty() {
        return Err(format!("`metadata.name` of the {} is missing", head.kind()));
    }
    Ok(object)
}

/// Reads the regular file `relative` (components separated by `/`) under `dir`, opening each
/// component with `O_NOFOLLOW`: a symlink anywhere in the path (a namespace folder pointing
/// elsewhere, say) fails the read instead of leading out of the backup. Opened non-blocking and
/// checked to be a regular file, so a FIFO or device planted there cannot hang or feed it.
pub(super) fn read_beneath(dir: &Path, relative: &str) -> io::Result<Vec<u8>> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, openat, statat};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut current = rustix::fs::open(dir, flags | OFlags::DIRECTORY, Mode::empty())?;
    let mut parts = relative.split('/').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        let kind = if last {
            OFlags::NONBLOCK
        } else {
            OFlags::DIRECTORY
        };
        let opened = openat(&current, part, flags | kind, Mode::empty()).map_err(|errno| {
            // ELOOP or ENOTDIR, depending on the flags: say what it is.
            match statat(&current, part, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
                    io::Error::other("a symbolic link is in its path (not followed)")
                }
                _ => io::Error::from(errno),
            }
        })?;
        if !last {
            current = opened;
            continue;
        }
        let mut file = File::from(opened);
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    Err(io::Error::from(io::ErrorKind::InvalidInput))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::catalog::open_for_reading;
    use crate::folder::testing::*;
    use crate::folder::*;
    use std::fs;

    #[test]
    fn the_saved_definition_is_recorded_and_checked() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        let crd = b"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n";
        writer.write_definition(crd).unwrap();
        let yaml = lrs_yaml("dr", "a", "deployment");
        writer
            .write_item("dr", "a", "deployment", "uid-a", "7", yaml.as_bytes())
            .unwrap();
        let (dir, _) = writer.finish(info()).unwrap();
        let backup = resolve(root.path(), "lrs_backup_2025_11_21_14_05").unwrap();
        let record = backup.manifest.as_ref().unwrap().crd.clone().unwrap();
        assert_eq!(record.path, CRD_FILE);
        assert_eq!(record.sha256, sha256_hex(crd));
        assert_eq!(record.bytes, crd.len() as u64);
        let verification = backup.verify().unwrap();
        assert_eq!(verification.problems, []);
        assert_eq!(verification.checked, 1, "the definition is no LRS file");

        fs::write(dir.join(CRD_FILE), b"kind: Other\n").unwrap();
        let problems = backup.verify().unwrap().problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, CRD_FILE);
        assert_eq!(problems[0].kind, ProblemKind::Modified);

        fs::remove_file(dir.join(CRD_FILE)).unwrap();
        let problems = backup.verify().unwrap().problems;
        assert_eq!(problems[0].kind, ProblemKind::Missing);
    }

    #[test]
    fn a_manifest_without_a_definition_reads_and_a_stray_one_is_unexpected() {
        let root = tempfile::tempdir().unwrap();
        let (dir, manifest) = finished_backup(root.path());
        assert_eq!(manifest.crd, None);
        let text = fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
        assert!(
            !text.contains("\"crd\""),
            "old readers see the manifest they know"
        );
        fs::write(dir.join(CRD_FILE), b"kind: CustomResourceDefinition\n").unwrap();
        let backup = resolve(root.path(), "lrs_backup_2025_11_21_14_05").unwrap();
        let problems = backup.verify().unwrap().problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].kind, ProblemKind::Unexpected);
    }

    #[test]
    fn items_behind_a_symlink_are_refused_like_verify_refuses_them() {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(root.path());
        // The namespace folder moved elsewhere and linked back: same bytes, other place.
        let elsewhere = root.path().join("elsewhere");
        fs::rename(dir.join("dr"), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join("dr")).unwrap();
        let backup = Backup::open(&dir).unwrap();
        let (objects, problems) = backup.read_objects().unwrap();
        assert_eq!(objects.len(), 1, "only team/c.yaml is read");
        let found: Vec<(&str, ProblemKind, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.kind, p.detail.as_str()))
            .collect();
        let behind = "a symbolic link is in its path (not followed)";
        assert_eq!(
            found,
            [
                ("dr/a.yaml", ProblemKind::Unreadable, behind),
                ("dr/b.yaml", ProblemKind::Unreadable, behind),
            ]
        );
        let verified = backup.verify().unwrap().problems;
        let kinds: Vec<(&str, ProblemKind)> =
            verified.iter().map(|p| (p.path.as_str(), p.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("dr", ProblemKind::Unexpected),
                ("dr/a.yaml", ProblemKind::Unreadable),
                ("dr/b.yaml", ProblemKind::Unreadable),
            ]
        );
        // A symlinked item file, and a FIFO in its place, are refused too (and never block).
        fs::remove_file(dir.join("dr")).unwrap();
        fs::create_dir(dir.join("dr")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("a.yaml"), dir.join("dr/a.yaml")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("dr/b.yaml"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (_, problems) = backup.read_objects().unwrap();
        let details: Vec<&str> = problems.iter().map(|p| p.detail.as_str()).collect();
        assert_eq!(details, [behind, "not a regular file"]);
    }

    #[test]
    fn a_manifest_item_must_hold_exactly_one_object() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        let two = format!(
            "{}---\n{}",
            lrs_yaml("dr", "a", "deployment"),
            lrs_yaml("dr", "b", "deployment")
        );
        writer
            .write_item("dr", "a", "deployment", "u", "7", two.as_bytes())
            .unwrap();
        let (dir, _) = writer.finish(info()).unwrap();
        let problems = Backup::open(&dir).unwrap().verify().unwrap().problems;
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].detail,
            "it holds 2 objects; a backup file holds one"
        );
    }

    #[test]
    fn every_bad_document_is_named_with_its_file_and_place() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("bad");
        fs::create_dir(&dir).unwrap();
        let mut list = kubectl_list(&["a"]);
        list = list.replace(
            "items:\n",
            "items:\n- apiVersion: v1\n  kind: ConfigMap\n  data: {}\n",
        );
        fs::write(dir.join("list.yaml"), list).unwrap();
        fs::write(
            dir.join("twice.yaml"),
            format!(
                "{}---\nkind: X\nkind: Y\n",
                lrs_yaml("dr", "b", "deployment")
            ),
        )
        .unwrap();
        fs::write(dir.join("scalar.yaml"), "---\njust text\n").unwrap();
        fs::write(dir.join("comments.yaml"), "# nothing\n---\n").unwrap();
        let backup = open_for_reading(&dir).unwrap();
        let (objects, problems) = backup.read_objects().unwrap();
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.detail.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "comments.yaml",
                    "the file holds no object (only empty documents)"
                ),
                (
                    "list.yaml",
                    "item 1: `metadata.name` of the ConfigMap is missing"
                ),
                ("scalar.yaml", "not a YAML object"),
                (
                    // Line 14: the second `kind`, not the map's first key.
                    "twice.yaml",
                    "document 2: not valid YAML: the key `kind` is written twice (kubectl would \
                     keep only one of the values) at line 14 column 1"
                ),
            ]
        );
        // The good item of the List stays; a file that cannot be read gives nothing.
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].object.value["metadata"]["name"], "a");
    }

    /// Metadata that the API server (and `kubectl apply`) would refuse is refused when the file
    /// is read, naming the field, before anything is changed; the object's own fields are not
    /// looked at.
    #[test]
    fn a_head_field_of_the_wrong_form_is_named() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("lrs_backup_2025_01_01_00_00");
        fs::create_dir(&dir).unwrap();
        let good = lrs_yaml("dr", "a", "deployment");
        fs::write(dir.join("a.yaml"), &good).unwrap();
        fs::write(
            dir.join("b.yaml"),
            good.replace("name: a\n", "name: b\n")
                .replace("labels:\n", "labels:\n    version: 1\n"),
        )
        .unwrap();
        fs::write(
            dir.join("c.yaml"),
            good.replace("name: a\n", "name: c\n")
                .replace("  namespace: dr\n", "  namespace: dr\n  generation: one\n"),
        )
        .unwrap();
        let backup = Backup::open(&dir).unwrap();
        let (objects, problems) = backup.read_objects().unwrap();
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.path.as_str(), p.detail.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "b.yaml",
                    "`metadata.labels.version`: invalid type: integer `1`, expected a string"
                ),
                (
                    "c.yaml",
                    "`metadata.generation`: invalid type: string \"one\", expected i64"
                ),
            ]
        );
        assert_eq!(objects.len(), 1);
        assert_eq!(backup.verify().unwrap().problems, problems);
    }

    #[test]
    fn verify_names_every_bad_file() {
        let root = tempfile::tempdir().unwrap();
        let (dir, _) = finished_backup(root.path());
        fs::write(dir.join("dr/a.yaml"), "tampered").unwrap();
        fs::remove_file(dir.join("dr/b.yaml")).unwrap();
        fs::write(dir.join("dr/extra.yaml"), "x").unwrap();
        let backup = Backup::open(&dir).unwrap();
        let problems = backup.verify().unwrap().problems;
        let found: Vec<(&str, ProblemKind)> =
            problems.iter().map(|p| (p.path.as_str(), p.kind)).collect();
        assert_eq!(
            found,
            [
                ("dr/a.yaml", ProblemKind::Modified),
                ("dr/b.yaml", ProblemKind::Missing),
                ("dr/extra.yaml", ProblemKind::Unexpected),
            ]
        );
    }

    /// An encrypted backup: `.yaml.age` files, verified by their ciphertext hash without a key,
    /// read only with an identity for one of its recipients, the YAML checked against its hash.
    #[test]
    fn an_encrypted_backup_is_verified_without_a_key_and_read_with_one() {
        use crate::encryption::{Identities, Recipients};
        use age::secrecy::ExposeSecret;
        let identity = age::x25519::Identity::generate();
        let recipients = Recipients::from_keys_and_files(&[identity.to_public().to_string()], &[])
            .unwrap()
            .unwrap();
        let keys = tempfile::tempdir().unwrap();
        let key_file = keys.path().join("key.txt");
        fs::write(&key_file, identity.to_string().expose_secret()).unwrap();
        let (identities, _) = Identities::read_files(&[key_file]).unwrap();

        let root = tempfile::tempdir().unwrap();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        writer.encrypt_to(Some(recipients.clone()));
        let yaml = lrs_yaml("dr", "a", "deployment");
        writer
            .write_item("dr", "a", "deployment", "u", "7", yaml.as_bytes())
            .unwrap();
        let (dir, _) = writer.finish(info()).unwrap();
        let backup = Backup::open(&dir).unwrap();
        let manifest = backup.manifest.clone().unwrap();
        assert_eq!(
            manifest.format_version,
            crate::folder::ENCRYPTED_FORMAT_VERSION
        );
        assert_eq!(manifest.items[0].path, "dr/a.yaml.age");
        assert_eq!(
            manifest.items[0].plaintext_sha256.as_deref(),
            Some(sha256_hex(yaml.as_bytes()).as_str())
        );
        assert_eq!(names_in(&dir.join("dr")), ["a.yaml.age"]);
        let verified = backup.verify().unwrap();
        assert_eq!((verified.checked, verified.problems.len()), (1, 0));
        assert!(matches!(
            backup.read_objects().unwrap_err(),
            FolderError::Encryption(crate::encryption::EncryptionError::NoIdentity { .. })
        ));
        let backup = backup.with_identities(identities);
        let (objects, problems) = backup.read_objects().unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(objects[0].object.value["metadata"]["name"], "a");
        assert!(backup.verify().unwrap().problems.is_empty());
    }

    #[test]
    fn verify_checks_kind_and_name_even_when_the_checksum_matches() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        let wrong_kind = lrs_yaml("dr", "a", "deployment").replace("LongRunningService", "Pod");
        writer
            .write_item("dr", "a", "deployment", "u", "7", wrong_kind.as_bytes())
            .unwrap();
        let misnamed = lrs_yaml("dr", "other", "deployment");
        writer
            .write_item("dr", "b", "deployment", "u", "7", misnamed.as_bytes())
            .unwrap();
        let (dir, _) = writer.finish(info()).unwrap();
        let problems = Backup::open(&dir).unwrap().verify().unwrap().problems;
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].kind, ProblemKind::Invalid);
        assert_eq!(
            problems[0].detail,
            "kind is `Pod`, expected `LongRunningService`"
        );
        assert_eq!(problems[1].detail, "metadata.name is `other`, expected `b`");
    }
}
