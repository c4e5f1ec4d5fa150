//! Re-encrypting a backup to new recipients (key rotation): a verified copy written beside the
//! backup, then swapped in, so the backup is at every moment either the old one whole or the
//! new one whole. [`rekey_into`] writes the copy into any folder, for other places to reuse.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::catalog::{Backup, CatalogStatus};
use super::name::PARTIAL_SUFFIX;
use super::verify::read_beneath;
use super::writer::{create_private_dir, make_durable, write_manifest};
use super::{
    BackupStatus, CRD_FILE, DEPLOYMENTS_FILE, FolderError, JOURNAL_FILE, Manifest, ManifestItem,
    io_error, sha256_hex,
};
use crate::encryption::{self, Recipients};

/// The suffix of the copy being written: a `.partial` name, so a copy left by a killed rekey is
/// listed as a partial backup, never taken for the backup itself.
const REKEY_SUFFIX: &str = ".rekey";

/// What a rekey did.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct RekeyOutcome {
    pub name: String,
    pub path: PathBuf,
    /// How many item files were re-encrypted.
    pub items: usize,
    pub old_recipients: Vec<String>,
    pub new_recipients: Vec<String>,
    /// Whether the new files were also decrypted back and compared (an identity given is one
    /// of the new recipients); otherwise their ciphertext hashes were checked.
    pub decrypted_back: bool,
}

/// Re-encrypts `backup` (complete, encrypted, opened with identities for one of its recipients)
/// to `new`, in place: the copy `<name>.rekey.partial` is written beside it, verified, then
/// exchanged with the backup in one atomic rename (`renameat2(RENAME_EXCHANGE)`; where the file
/// system lacks it: the old one renamed aside, the new one in, each step leaving a whole backup
/// under a name that says what it is), and the old files deleted.
pub fn rekey(backup: &Backup, new: &Recipients) -> Result<RekeyOutcome, FolderError> {
    let refuse = |reason: String| FolderError::RekeyRefused {
        name: backup.name.clone(),
        reason,
    };
    if backup.loose.is_some() || backup.manifest.is_none() {
        return Err(refuse("it has no manifest.json".into()));
    }
    if backup.status != CatalogStatus::Complete {
        return Err(refuse("it is partial".into()));
    }
    let parent = match backup.dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let copy = parent.join(format!("{}{REKEY_SUFFIX}{PARTIAL_SUFFIX}", backup.name));
    let manifest = match rekey_into(backup, &copy, new) {
        Ok(manifest) => manifest,
        Err(err @ FolderError::RekeyRefused { .. }) if copy_left_by_another(&err) => {
            return Err(err);
        }
        Err(err) => {
            // Only the copy is removed; the backup was never touched.
            let _ = fs::remove_dir_all(&copy);
            return Err(err);
        }
    };
    let decrypted_back = backup.identities.check_opens(&new.keys()).is_ok();
    verify_copy(&copy, backup, decrypted_back)?;
    swap_in(&copy, &backup.dir)?;
    mlbackup_helper::files::sync_dir(&parent);
    Ok(RekeyOutcome {
        name: backup.name.clone(),
        path: backup.dir.clone(),
        items: manifest.items.len(),
        old_recipients: backup.recipients().unwrap_or_default().to_vec(),
        new_recipients: new.keys(),
        decrypted_back,
    })
}

/// Whether `err` is the refusal to write into a copy that was there before (it is not ours to
/// remove).
fn copy_left_by_another(err: &FolderError) -> bool {
    matches!(err, FolderError::RekeyRefused { reason, .. } if reason.contains(LEFT_OVER))
}

const LEFT_OVER: &str = "exists, left by an interrupted rekey";

/// Writes a copy of `backup` into the new directory `dest` with every item re-encrypted to
/// `new`: each file checked against the manifest's hash of its ciphertext, decrypted with the
/// backup's identities, its YAML checked against the manifest's plaintext hash, encrypted again
/// with a fresh file key. `deployments.json` and `journal.jsonl` are copied as they are. The
/// manifest is the old one with the new recipients and file hashes. Made durable; returns the
/// manifest written. Fails before writing anything when the identities open none of the
/// backup's recipients.
pub fn rekey_into(backup: &Backup, dest: &Path, new: &Recipients) -> Result<Manifest, FolderError> {
    let refuse = |reason: String| FolderError::RekeyRefused {
        name: backup.name.clone(),
        reason,
    };
    let Some(source) = &backup.manifest else {
        return Err(refuse("it has no manifest.json".into()));
    };
    if source.status != BackupStatus::Complete {
        return Err(refuse("it is partial".into()));
    }
    let Some(old) = source.recipients() else {
        return Err(FolderError::NotEncrypted {
            name: backup.name.clone(),
        });
    };
    backup.identities.check_opens(old)?;
    match fs::DirBuilder::new().mode(0o700).create(dest) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            return Err(refuse(format!(
                "{} {LEFT_OVER}; the backup itself is whole: remove that folder (`rm -rf {}`) \
                 and run rekey again",
                dest.display(),
                dest.display()
            )));
        }
        Err(err) => return Err(io_error("create the folder", dest)(err)),
    }
    let mut items = Vec::with_capacity(source.items.len());
    for item in &source.items {
        items.push(rekey_item(backup, old, item, dest, new)?);
    }
    // The definition is not encrypted: copied as it is, with its record.
    for file in [DEPLOYMENTS_FILE, JOURNAL_FILE, CRD_FILE] {
        if backup.has_file(file) {
            let bytes = read_beneath(&backup.dir, file)
                .map_err(io_error("read", &backup.dir.join(file)))?;
            let path = dest.join(file);
            mlbackup_helper::files::write_atomically_unsynced(&path, &bytes)
                .map_err(io_error("write", &path))?;
        }
    }
    let mut manifest = source.clone();
    manifest.encryption = Some(new.record());
    manifest.items = items;
    write_manifest(dest, &manifest)?;
    make_durable(dest)?;
    Ok(manifest)
}

/// One item re-encrypted into `dest`, and its new manifest entry.
fn rekey_item(
    backup: &Backup,
    old: &[String],
    item: &ManifestItem,
    dest: &Path,
    new: &Recipients,
) -> Result<ManifestItem, FolderError> {
    let refuse = |reason: String| FolderError::RekeyRefused {
        name: backup.name.clone(),
        reason: format!("{}: {reason}", item.path),
    };
    // The manifest is data from disk: the path must be the one its names give (verify's rule),
    // so nothing is read or written outside the two folders.
    let (namespace, file) = item
        .path
        .split_once('/')
        .filter(|(namespace, file)| {
            *namespace == item.namespace
                && *file
                    == format!(
                        "{}{}",
                        super::name::item_file_name(&item.name),
                        encryption::FILE_SUFFIX
                    )
        })
        .ok_or_else(|| refuse("its path does not match its namespace and name".into()))?;
    let ciphertext =
        read_beneath(&backup.dir, &item.path).map_err(|err| refuse(err.to_string()))?;
    if sha256_hex(&ciphertext) != item.sha256 {
        return Err(refuse(
            "it does not match the manifest's SHA-256; run `verify` to see what is damaged".into(),
        ));
    }
    let Some(plaintext_sha256) = &item.plaintext_sha256 else {
        return Err(refuse(
            "the manifest records no plaintextSha256 for it".into(),
        ));
    };
    let sealed = encryption::rekey(&ciphertext, &backup.identities, old, plaintext_sha256, new)
        .map_err(|err| refuse(err.to_string()))?;
    let dir = dest.join(namespace);
    create_private_dir(&dir)?;
    let path = dir.join(file);
    mlbackup_helper::files::write_atomically_unsynced(&path, &sealed.ciphertext)
        .map_err(io_error("write", &path))?;
    Ok(ManifestItem {
        sha256: sealed.hashes.sha256,
        bytes: sealed.ciphertext.len() as u64,
        plaintext_sha256: Some(sealed.hashes.plaintext_sha256),
        ..item.clone()
    })
}

/// Verifies the copy as `verify` would, with the identities when they open it.
fn verify_copy(copy: &Path, backup: &Backup, decrypt: bool) -> Result<(), FolderError> {
    let mut written = Backup::open(copy)?;
    // Named `.partial` only until it is swapped in; its manifest says complete.
    written.status = CatalogStatus::Complete;
    if decrypt {
        written = written.with_identities(backup.identities.clone());
    }
    let problems = written.verify()?.problems;
    if let Some(first) = problems.first() {
        return Err(FolderError::RekeyUnverified {
            path: copy.to_path_buf(),
            detail: format!("{}: {}", first.path, first.detail),
        });
    }
    Ok(())
}

/// Puts the directory `new` in the place of `old` and deletes the old files.
fn swap_in(new: &Path, old: &Path) -> Result<(), FolderError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, new, CWD, old, RenameFlags::EXCHANGE) {
        Ok(()) => {
            // `new` now holds the old files.
            return fs::remove_dir_all(new).map_err(io_error("delete the old files at", new));
        }
        Err(errno)
            if errno == rustix::io::Errno::INVAL
                || errno == rustix::io::Errno::NOSYS
                || errno == rustix::io::Errno::OPNOTSUPP => {}
        Err(errno) => return Err(io_error("swap in the rekeyed copy", new)(errno.into())),
    }
    // No exchange on this file system: three renames, each leaving a whole backup.
    let mut aside = old.as_os_str().to_owned();
    aside.push(format!(".old{PARTIAL_SUFFIX}"));
    let aside = PathBuf::from(aside);
    fs::rename(old, &aside).map_err(io_error("rename aside", old))?;
    if let Err(err) = fs::rename(new, old) {
        // Put the old one back; if even that fails, the error names where it is.
        let _ = fs::rename(&aside, old);
        return Err(io_error("swap in the rekeyed copy", new)(err));
    }
    fs::remove_dir_all(&aside).map_err(io_error("delete the old files at", &aside))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::Identities;
    use crate::folder::testing::*;
    use crate::folder::*;
    use age::secrecy::ExposeSecret;
    use age::x25519;
    use std::os::unix::fs::PermissionsExt;

    /// An identity file and the recipients of its key.
    fn key(dir: &Path, name: &str) -> (Identities, Recipients) {
        let identity = x25519::Identity::generate();
        let path = dir.join(name);
        fs::write(&path, format!("{}\n", identity.to_string().expose_secret())).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let (identities, _) = Identities::read_files(&[path]).unwrap();
        let recipients = Recipients::from_keys_and_files(&[identity.to_public().to_string()], &[])
            .unwrap()
            .unwrap();
        (identities, recipients)
    }

    fn encrypted_backup(root: &Path, to: &Recipients) -> PathBuf {
        let mut writer = BackupWriter::create(root, None, started()).unwrap();
        writer.encrypt_to(Some(to.clone()));
        for (namespace, name) in [("dr", "a"), ("dr", "b"), ("team", "c")] {
            let yaml = lrs_yaml(namespace, name, "deployment");
            writer
                .write_item(namespace, name, "deployment", "u", "7", yaml.as_bytes())
                .unwrap();
        }
        writer.finish(info()).unwrap().0
    }

    #[test]
    fn a_rekeyed_backup_opens_with_the_new_key_only() {
        let root = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let (alice, to_alice) = key(keys.path(), "alice");
        let (bob, to_bob) = key(keys.path(), "bob");
        let dir = encrypted_backup(root.path(), &to_alice);
        fs::write(dir.join(DEPLOYMENTS_FILE), b"{}\n").unwrap();
        let before = Backup::open(&dir).unwrap().with_identities(alice.clone());
        let (objects_before, _) = before.read_objects().unwrap();
        let outcome = rekey(&before, &to_bob).unwrap();
        assert_eq!(outcome.items, 3);
        assert_eq!(outcome.new_recipients, to_bob.keys());
        assert!(!outcome.decrypted_back);
        assert_eq!(names_in(root.path()), ["lrs_backup_2025_11_21_14_05"]);
        let after = Backup::open(&dir).unwrap();
        assert_eq!(after.recipients().unwrap(), to_bob.keys());
        assert!(after.verify().unwrap().problems.is_empty());
        assert_eq!(fs::read(dir.join(DEPLOYMENTS_FILE)).unwrap(), b"{}\n");
        let err = after
            .clone()
            .with_identities(alice)
            .read_objects()
            .unwrap_err();
        assert!(matches!(
            err,
            FolderError::Encryption(encryption::EncryptionError::NoMatchingIdentity { .. })
        ));
        let (objects, problems) = after.with_identities(bob).read_objects().unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        let values = |o: &[super::super::verify::StoredObject]| {
            o.iter().map(|o| o.object.value.clone()).collect::<Vec<_>>()
        };
        assert_eq!(values(&objects), values(&objects_before));
    }

    #[test]
    fn a_failed_rekey_leaves_the_backup_as_it_was() {
        let root = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let (alice, to_alice) = key(keys.path(), "alice");
        let (_, to_bob) = key(keys.path(), "bob");
        let dir = encrypted_backup(root.path(), &to_alice);
        // The last item's recorded plaintext hash is wrong: the rekey stops there, after the
        // first items were written to the copy.
        let manifest_path = dir.join(MANIFEST_FILE);
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
        manifest["items"][2]["plaintextSha256"] = "0".repeat(64).into();
        fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let snapshot = |dir: &Path| {
            let mut files = Vec::new();
            for (path, kind) in super::super::catalog::walk(dir, 2).unwrap() {
                if kind.is_file() {
                    files.push((path.clone(), fs::read(dir.join(&path)).unwrap()));
                }
            }
            files
        };
        let before = snapshot(&dir);
        let backup = Backup::open(&dir).unwrap().with_identities(alice);
        let err = rekey(&backup, &to_bob).unwrap_err();
        assert!(err.to_string().contains("team/c.yaml.age"), "{err}");
        assert_eq!(snapshot(&dir), before);
        assert_eq!(names_in(root.path()), ["lrs_backup_2025_11_21_14_05"]);

        // A copy left by a rekey that was killed: refused, named, left for the user.
        let left = root
            .path()
            .join("lrs_backup_2025_11_21_14_05.rekey.partial");
        fs::create_dir(&left).unwrap();
        let err = rekey(&backup, &to_bob).unwrap_err();
        assert!(err.to_string().contains(LEFT_OVER), "{err}");
        assert!(left.is_dir());
        assert_eq!(snapshot(&dir), before);
    }

    #[test]
    fn only_encrypted_complete_backups_are_rekeyed_and_only_with_a_key() {
        let root = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let (_, to_alice) = key(keys.path(), "alice");
        let (mallory, to_bob) = key(keys.path(), "mallory");
        let (plain, _) = finished_backup(root.path());
        let err = rekey(&Backup::open(&plain).unwrap(), &to_bob).unwrap_err();
        assert!(matches!(err, FolderError::NotEncrypted { .. }), "{err:?}");
        let other = tempfile::tempdir().unwrap();
        let dir = encrypted_backup(other.path(), &to_alice);
        let err = rekey(
            &Backup::open(&dir).unwrap().with_identities(mallory),
            &to_bob,
        )
        .unwrap_err();
        assert!(err.to_string().contains(&to_alice.keys()[0]), "{err}");
        assert_eq!(names_in(other.path()), ["lrs_backup_2025_11_21_14_05"]);
    }
}
