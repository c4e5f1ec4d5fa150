//! One module per subcommand, each with the work function it runs (`prepare` and `recover` run
//! several: see `runbook`); here, what they share: connecting, reporting an outcome, Ctrl-C.
//! The hint registry for their errors is `diagnostics`; `main.rs` dispatches to them.

pub mod app;
pub mod backup;
pub mod delete;
pub mod deployments;
pub mod diagnostics;
pub mod diff;
pub mod list;
pub mod prepare;
pub mod prune;
pub mod recover;
pub mod restore;
pub mod runbook;
pub mod show;
pub mod spark_cleanup;
pub mod verify;
pub mod version;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::env::Env;
use crate::exit::Exit;
use crate::printer::{Printer, Render};

/// A client of the cluster and its LRS resource type (found by discovery, or `--resource`):
/// what every command working on LRS objects starts with.
pub async fn connect_to_lrs(
    global: &crate::cli::GlobalArgs,
    env: &Env,
    resource: Option<&crate::cluster::lrs::ResourceOverride>,
) -> anyhow::Result<(crate::cluster::Cluster, crate::cluster::lrs::ServedResource)> {
    use anyhow::Context;
    let cluster = crate::cluster::Cluster::connect(&global.connect_options(), env)
        .await
        .context("cannot connect to the cluster")?;
    let resource = crate::cluster::lrs::resolve(&cluster, resource)
        .await
        .context("cannot find the LRS resource type")?;
    Ok((cluster, resource))
}

/// What a command's work function produced: the outcome to show, how the work ended, and an
/// error the outcome alone does not explain. The standalone commands print it with [`report`];
/// `prepare` and `recover` gather it into their own outcome.
pub struct Finished<T> {
    pub outcome: T,
    /// [`Exit::Success`], [`Exit::Failure`] (some items failed) or [`Exit::Interrupted`].
    pub exit: Exit,
    /// Shown after the outcome: why the work failed, or what an interruption left behind.
    pub error: Option<anyhow::Error>,
}

impl<T> Finished<T> {
    /// The work ended as `exit` with nothing more to say than its outcome.
    pub fn with(outcome: T, exit: Exit) -> Self {
        Finished {
            outcome,
            exit,
            error: None,
        }
    }
}

/// Prints a work function's outcome, then its error: an interruption keeps exit 130 (the error
/// says what it left behind), any other error exits as errors do.
pub fn report<T: Serialize + Render>(
    printer: &Printer,
    finished: Finished<T>,
) -> anyhow::Result<Exit> {
    printer.data(&finished.outcome)?;
    match (finished.error, finished.exit) {
        (Some(err), Exit::Interrupted) => {
            printer.error(&err);
            Ok(Exit::Interrupted)
        }
        (Some(err), _) => Err(err),
        (None, exit) => Ok(exit),
    }
}

/// Cancelled on SIGINT (Ctrl-C). While it exists SIGINT no longer ends the process: the work
/// watching it stops cleanly, records where it stopped, and exits 130.
pub fn interrupt_token() -> CancellationToken {
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    // Registered here, not in the task: a SIGINT that comes before the task first runs is
    // caught too.
    let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    tokio::spawn(async move {
        if let Ok(mut signal) = signal
            && signal.recv().await.is_some()
        {
            on_signal.cancel();
        }
    });
    cancel
}
