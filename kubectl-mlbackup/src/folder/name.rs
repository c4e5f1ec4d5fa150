//! The names of backups (`lrs_backup_YYYY_MM_DD_HH_MM`, `--name`, the suffixes of unfinished
//! and half-deleted ones) and of the files objects are stored in.

use chrono::{DateTime, Local, NaiveDateTime, TimeZone, Utc};

use super::{FolderError, sha256_hex};

/// The prefix of default names, shared with the documented shell loop.
pub const NAME_PREFIX: &str = "lrs_backup_";
/// A backup being written, or one that was abandoned.
pub const PARTIAL_SUFFIX: &str = ".partial";
/// A backup being deleted: renamed first so a half-deleted folder never looks like a backup.
pub(super) const DELETING_SUFFIX: &str = ".deleting";

/// `strftime` form of default names, like the runbook's `date "+%Y_%m_%d_%H_%M"`.
const NAME_TIME_FORMAT: &str = "%Y_%m_%d_%H_%M";
/// Enough for anyone starting backups in a loop within one minute; beyond that, something's wrong.
pub(super) const MAX_NAME_ATTEMPTS: u32 = 1000;
const MAX_NAME_LEN: usize = 200;

/// The longest item file name kept as `<name>.yaml`. File systems allow 255 bytes per name; the
/// rest is room for the writer's temp name around it (hidden prefix, random part, suffix).
/// Kubernetes allows object names of 253 characters, so longer ones are shortened.
const MAX_ITEM_FILE_NAME: usize = 200;
/// Hex digits of the SHA-256 of the full name in a shortened file name: 128 bits, so two names
/// with the same first characters never share a file, not even names made to (a collision of
/// 128 bits is out of reach).
const ITEM_NAME_HASH_LEN: usize = 32;

/// `lrs_backup_YYYY_MM_DD_HH_MM`, in local time like the runbook's `date`.
pub fn default_name(started: DateTime<Local>) -> String {
    format!("{NAME_PREFIX}{}", started.format(NAME_TIME_FORMAT))
}

/// The time a default name stands for (`lrs_backup_2026_11_21_14_05`, with or without a `_N`
/// or `.partial` suffix), read as local time.
pub(super) fn time_from_name(name: &str) -> Option<DateTime<Utc>> {
    let stamp = name.strip_prefix(NAME_PREFIX)?.get(..16)?;
    let naive = NaiveDateTime::parse_from_str(&format!("{stamp}_00"), "%Y_%m_%d_%H_%M_%S").ok()?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Checks a name given with `--name`: one plain path component that cannot be mistaken for a
/// partial or half-deleted backup, an option, or a hidden file.
pub fn validate_name(name: &str) -> Result<(), FolderError> {
    let invalid = |reason| {
        Err(FolderError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("it is longer than 200 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return invalid("only letters, digits, `.`, `_` and `-` are allowed");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return invalid("it must not start with `.` or `-`");
    }
    if name.ends_with(PARTIAL_SUFFIX) || is_being_deleted(name) {
        return invalid("names ending in `.partial` or `.deleting` are reserved");
    }
    Ok(())
}

/// `<name>.deleting` or `<name>.deleting_N`: the names [`Backup::delete`] renames to.
pub(super) fn is_being_deleted(name: &str) -> bool {
    name.rsplit_once(DELETING_SUFFIX).is_some_and(|(_, rest)| {
        rest.is_empty()
            || rest
                .strip_prefix('_')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The file an object is stored in within its namespace folder: `<name>.yaml` while that is
/// at most [`MAX_ITEM_FILE_NAME`] bytes, else the name's first characters, `_` and a short
/// SHA-256 of the whole name (`_` is not allowed in Kubernetes names, so a shortened name never
/// equals a kept one). Readers take names from the manifest or the file, never from this.
pub fn item_file_name(name: &str) -> String {
    const SUFFIX: &str = ".yaml";
    if name.len() + SUFFIX.len() <= MAX_ITEM_FILE_NAME {
        return format!("{name}{SUFFIX}");
    }
    let mut keep = MAX_ITEM_FILE_NAME - SUFFIX.len() - 1 - ITEM_NAME_HASH_LEN;
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    let hash = sha256_hex(name.as_bytes());
    format!("{}_{}{SUFFIX}", &name[..keep], &hash[..ITEM_NAME_HASH_LEN])
}

/// A namespace or object name that is safe as one path component. Kubernetes names are DNS
/// labels or subdomains, so this refuses nothing the API server accepts.
pub(super) fn is_safe_component(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 253
        && !part.starts_with('.')
        && !part.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folder::catalog::{open_for_reading, read_manifest};
    use crate::folder::testing::*;
    use crate::folder::*;
    use std::fs;

    /// A valid Kubernetes name of 253 characters: four dot-separated labels of up to 63.
    fn longest_name() -> String {
        let name = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(name.len(), 253);
        assert!(crate::object::is_object_name(&name));
        name
    }

    #[test]
    fn a_name_too_long_for_a_file_is_stored_shortened_and_read_back_exactly() {
        let root = tempfile::tempdir().unwrap();
        let long = longest_name();
        let mut writer = BackupWriter::create(root.path(), None, started()).unwrap();
        for name in [long.as_str(), "a"] {
            let yaml = lrs_yaml("dr", name, "deployment");
            writer
                .write_item("dr", name, "deployment", "u", "7", yaml.as_bytes())
                .unwrap();
        }
        // Written again (a list that restarted): one file, one record.
        let yaml = lrs_yaml("dr", &long, "deployment");
        writer
            .write_item("dr", &long, "deployment", "u", "8", yaml.as_bytes())
            .unwrap();
        let (dir, _) = writer.finish(info()).unwrap();
        let manifest = read_manifest(&dir.join(MANIFEST_FILE)).unwrap();
        let file = item_file_name(&long);
        assert_eq!(file.len(), MAX_ITEM_FILE_NAME);
        assert!(
            file.starts_with(&long[..162]) && file.ends_with(".yaml"),
            "{file}"
        );
        assert_ne!(file, item_file_name(&format!("{long}x")));
        // No valid name takes a shortened file: `_` is not allowed in Kubernetes names.
        let spelled = file.trim_end_matches(".yaml");
        assert!(!crate::object::is_object_name(spelled), "{spelled}");
        assert_eq!(
            names_in(&dir.join("dr")),
            ["a.yaml".to_string(), file.clone()]
        );
        let paths: Vec<(&str, &str)> = manifest
            .items
            .iter()
            .map(|i| (i.path.as_str(), i.name.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("dr/a.yaml", "a"),
                (format!("dr/{file}").as_str(), long.as_str())
            ]
        );
        let backup = Backup::open(&dir).unwrap();
        assert!(backup.verify().unwrap().problems.is_empty());
        let (objects, problems) = backup.read_objects().unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(objects[1].object.value["metadata"]["name"], long.as_str());
        // The same files without the manifest: names come from the files, not their names.
        fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        let loose = open_for_reading(&dir).unwrap();
        let names: Vec<String> = loose.items().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["a".to_string(), long]);
    }
}
