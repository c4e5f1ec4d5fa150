//! Writing files so that readers see the old content or the whole new one, never a half:
//! shared by the backup folder (plugin) and the deployment snapshot (plugin and helper).
//!
//! The temp file is created exclusively (`O_CREAT|O_EXCL`, so never through a symlink) under a
//! random name in the target's directory, by `tempfile`: a name someone else planted there,
//! a symlink to a file of the operator's in a shared directory say, is never opened.

use std::fs::{File, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Files may hold what the operator would not show anyone (specs, deployment names).
pub const FILE_MODE: u32 = 0o600;

/// Temp files are `.` + random characters + this: hidden, and recognisable as a writer's own
/// (see [`is_temp_name`]). The name does not grow with the target's, so a target name that fits
/// the file system's limit always has a temp name that fits too.
const TEMP_SUFFIX: &str = ".tmp";

/// Whether a file name is one a writer's temp file may have.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(TEMP_SUFFIX)
}

/// Writes `bytes` to `path` through a temp file (mode 0600) in the same directory: write,
/// fsync, rename, then fsync the directory (best effort) so the rename survives a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)
}

/// Like [`write_atomically`] (temp file, rename: readers never see half a file) but without
/// the fsyncs, for writers of many files that make them durable together afterwards: a backup
/// folder flushes its thousands of files once before its manifest vouches for them.
pub fn write_atomically_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

/// Like [`write_atomically_unsynced`], for content produced piece by piece: `write` streams it
/// into the temp file (buffered), so a large file never has to be whole in memory first.
pub fn write_atomically_unsynced_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    replace_with(path, false, write)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    replace_with(path, durable, |file| file.write_all(bytes))
}

fn replace_with(
    path: &Path,
    durable: bool,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Removed again when dropped before `persist` (any error below).
    let mut temp = tempfile::Builder::new()
        .prefix(".")
        .suffix(TEMP_SUFFIX)
        .permissions(Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)?;
    {
        let mut buffered = BufWriter::new(temp.as_file_mut());
        write(&mut buffered)?;
        buffered.flush()?;
    }
    if durable {
        temp.as_file().sync_all()?;
    }
    temp.persist(path).map_err(|err| err.error)?;
    if durable {
        sync_dir(dir);
    }
    Ok(())
}

/// Makes renames in `dir` durable. Best effort: not every filesystem lets a directory be synced.
pub fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_whole_file_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        write_atomically_unsynced(&path, b"newer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"newer");
        assert_eq!(names_in(dir.path()), ["state.json"], "no temp file left");
        assert!(is_temp_name(".state.json.tmp"));
        assert!(is_temp_name(".a1B2c3.tmp"));
        assert!(!is_temp_name("a.tmp"));
    }

    #[test]
    fn a_streamed_write_replaces_the_file_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write_atomically_unsynced_with(&path, |out| {
            out.write_all(b"new")?;
            out.write_all(b"est")
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"newest");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            FILE_MODE
        );
        assert_eq!(names_in(dir.path()), ["manifest.json"], "no temp file left");
    }

    #[test]
    fn a_failed_streamed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        write_atomically(&path, b"old").unwrap();
        let err = write_atomically_unsynced_with(&path, |out| {
            out.write_all(b"half")?;
            Err(io::Error::other("encoder failed"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "encoder failed");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names_in(dir.path()), ["manifest.json"], "no temp file left");
    }

    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("state.json");
        // The temp name the writer used to take, and a few more guesses.
        for planted in [".state.json.tmp", ".tmp", "..tmp"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(planted)).unwrap();
        }
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "a regular file, not a link");
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }
}
