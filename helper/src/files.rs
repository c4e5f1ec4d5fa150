//! Writing files so that readers see the old content or the whole new one, never a half:
//! shared by the backup folder (plugin) and the deployment snapshot (plugin and helper).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Files may hold what the operator would not show anyone (specs, deployment names).
pub const FILE_MODE: u32 = 0o600;

/// The temp name a file is written under before the rename: hidden, in the same directory (so
/// the rename is atomic), recognisable as a writer's own (see [`is_temp_name`]).
pub fn temp_path(path: &Path) -> PathBuf {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{file_name}.tmp"))
}

/// Whether a file name is one of [`temp_path`]'s.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
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
    let temp = temp_path(path);
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&temp)?;
        let mut buffered = BufWriter::new(file);
        write(&mut buffered)?;
        let file = buffered
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    if durable && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
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
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_the_whole_file_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        assert!(!temp_path(&path).exists());
        assert!(is_temp_name(".state.json.tmp"));
        write_atomically_unsynced(&path, b"newer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"newer");
        assert!(!temp_path(&path).exists());
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
        assert!(!temp_path(&path).exists());
    }
}
