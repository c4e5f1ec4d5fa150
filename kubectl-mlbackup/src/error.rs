//! Exit codes, and the hints shown under errors users commonly hit.

use std::process::ExitCode;

use mlbackup_helper::api::ApiError;
use mlbackup_helper::plan::PlanError;
use mlbackup_helper::protocol::WireError;
use mlbackup_helper::secret::TokenError;

use crate::cluster::ClusterError;
use crate::cluster::pod::PodError;
use crate::commands::app::NothingSelected;
use crate::commands::backup::BackupError;
use crate::commands::deployments::{self, Incomplete};
use crate::commands::restore::RestoreError;
use crate::folder::FolderError;
use crate::helper_binary::HelperNotFound;
use crate::in_pod::InPodError;

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

/// An error that can tell the user what to do about it.
pub trait Hint {
    fn hint(&self) -> Option<String>;
}

/// Implements [`Hint`] for error types that already have a hint method of their own.
macro_rules! hint_by {
    ($($error:ty => $how:expr),+ $(,)?) => {
        $(impl Hint for $error {
            fn hint(&self) -> Option<String> {
                let how: fn(&$error) -> Option<String> = $how;
                how(self)
            }
        })+

        /// The first hint that any error in the chain carries.
        pub fn hint(err: &anyhow::Error) -> Option<String> {
            err.chain().find_map(|cause| {
                None$(.or_else(|| cause.downcast_ref::<$error>().and_then(Hint::hint)))+
            })
        }
    };
}

hint_by! {
    ClusterError => ClusterError::hint,
    FolderError => FolderError::hint,
    UsageError => |e| Some(e.hint.clone()),
    RestoreError => RestoreError::hint,
    HelperNotFound => |e| Some(e.hint()),
    ApiError => ApiError::hint,
    TokenError => TokenError::hint,
    PlanError => PlanError::hint,
    WireError => deployments::wire_hint,
    Incomplete => |e| e.hint.clone(),
    PodError => PodError::hint,
    InPodError => InPodError::hint,
    NothingSelected => |e| Some(e.hint()),
    // Transparent wrappers: their inner error is not a link of the chain.
    BackupError => |e| match e {
        BackupError::Cluster(inner) => inner.hint(),
        BackupError::Folder(inner) => inner.hint(),
        BackupError::Encode { .. } | BackupError::Download(_) => None,
    },
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
    } else if err
        .chain()
        .any(|cause| cause.is::<crate::commands::Interrupted>())
    {
        Exit::Interrupted
    } else {
        Exit::Failure
    }
}
