//! Exit codes, and the hints shown under errors users commonly hit.

use std::process::ExitCode;

use crate::cluster::ClusterError;
use crate::commands::app::NothingSelected;
use crate::commands::backup::BackupError;
use crate::commands::restore::RestoreError;
use crate::folder::FolderError;
use crate::helper_binary::HelperNotFound;

/// The process exit status, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Success,
    /// The operation failed or partly failed; the output says which items.
    Failure,
    /// The command line was wrong.
    Usage,
    /// Interrupted (SIGINT); what was done is recorded and a re-run is safe.
    #[allow(dead_code)] // used once the long-running commands land
    Interrupted,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(match exit {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 130,
        })
    }
}

/// The first hint that any error in the chain carries.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| {
        cause
            .downcast_ref::<ClusterError>()
            .and_then(ClusterError::hint)
            .or_else(|| {
                cause
                    .downcast_ref::<FolderError>()
                    .and_then(FolderError::hint)
            })
            .or_else(|| cause.downcast_ref::<UsageError>().map(|u| u.hint.clone()))
            .or_else(|| {
                cause
                    .downcast_ref::<NothingSelected>()
                    .map(NothingSelected::hint)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<RestoreError>()
                    .and_then(RestoreError::hint)
            })
            .or_else(|| {
                cause
                    .downcast_ref::<HelperNotFound>()
                    .map(HelperNotFound::hint)
            })
            .or_else(|| match cause.downcast_ref::<BackupError>()? {
                // Transparent wrappers: their inner error is not a link of the chain.
                BackupError::Cluster(inner) => inner.hint(),
                BackupError::Folder(inner) => inner.hint(),
                BackupError::Encode { .. } | BackupError::Download(_) => None,
            })
    })
}

/// A command line that clap accepts but that cannot work as given (for example a deletion
/// without --yes when no one can be asked): exit 2, like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
    pub hint: String,
}

/// The exit status for a command that failed with `err`.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        Exit::Usage
    } else {
        Exit::Failure
    }
}
