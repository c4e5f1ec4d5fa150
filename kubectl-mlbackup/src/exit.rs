//! How a run ends: the process exit status, and the two errors that choose one of their own (a
//! usage error exits 2, an interruption 130). A leaf: it knows no other module of the plugin.

use std::process::ExitCode;

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

/// A command line that clap accepts but that cannot work as given (for example a deletion
/// without --yes when no one can be asked): exit 2, like clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
    pub hint: String,
}

/// Work stopped by Ctrl-C before it had anything to report: exit 130, like any interruption.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// The exit status for a command that failed with `err`.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        Exit::Usage
    } else if err.chain().any(|cause| cause.is::<Interrupted>()) {
        Exit::Interrupted
    } else {
        Exit::Failure
    }
}
