//! One module per subcommand; each returns a serialisable outcome that the printer renders.

pub mod app;
pub mod backup;
mod delete;
pub mod deployments;
pub mod diff;
mod list;
mod prepare;
mod prune;
mod recover;
#[cfg(test)]
mod render_tests;
pub mod restore;
mod runbook;
mod show;
pub mod spark_cleanup;
mod verify;
mod version;

use std::path::PathBuf;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{BackupDirArgs, Cli, Command};
use crate::env::Env;
use crate::error::Exit;
use crate::printer::{Printer, Render};

/// Runs the chosen subcommand and prints its outcome or its error.
pub async fn run(cli: Cli, env: Env, printer: &Printer) -> Exit {
    let result = match &cli.command {
        Command::Version(args) => version::run(&cli.global, args, &env, printer).await,
        Command::Backup(args) => backup::run(&cli.global, args, &env, printer).await,
        Command::List(args) => list::run(args, &env, printer),
        Command::Show(args) => show::run(args, &env, printer),
        Command::Verify(args) => verify::run(args, &env, printer),
        Command::Delete(args) => delete::run(args, &env, printer),
        Command::Prune(args) => prune::run(args, &env, printer),
        Command::Restore(args) => restore::run(&cli.global, args, &env, printer).await,
        Command::Diff(args) => diff::run(&cli.global, args, &env, printer).await,
        Command::SparkCleanup(args) => spark_cleanup::run(&cli.global, args, &env, printer).await,
        Command::App(args) => app::run(&cli.global, &args.command, &env, printer).await,
        Command::Completion(args) => printer
            .text(&crate::completion::script(args.shell))
            .map(|()| Exit::Success),
        Command::Prepare(args) => prepare::run(&cli.global, args, &env, printer).await,
        Command::Recover(args) => recover::run(&cli.global, args, &env, printer).await,
        Command::Deployments(command) => {
            deployments::run(&cli.global, command, &env, printer).await
        }
    };
    match result {
        Ok(exit) => exit,
        Err(err) => {
            printer.error(&err);
            crate::error::exit_for(&err)
        }
    }
}

/// A client of the cluster and its LRS resource type (found by discovery, or `--resource`):
/// what every command working on LRS objects starts with.
pub async fn connect_to_lrs(
    global: &crate::cli::GlobalArgs,
    env: &Env,
    resource: Option<&crate::cluster::lrs::ResourceOverride>,
) -> anyhow::Result<(crate::cluster::Cluster, crate::cluster::lrs::ServedResource)> {
    use anyhow::Context;
    let cluster = crate::cluster::Cluster::connect(global, env)
        .await
        .context("cannot connect to the cluster")?;
    let resource = crate::cluster::lrs::resolve(&cluster, resource)
        .await
        .context("cannot find the LRS resource type")?;
    Ok((cluster, resource))
}

/// The directory holding the backups: `--dir`, else `MLBACKUP_DIR`, else the current directory.
pub fn backup_root(args: &BackupDirArgs, env: &Env) -> PathBuf {
    args.dir
        .clone()
        .or_else(|| env.mlbackup_dir.clone())
        .unwrap_or_else(|| PathBuf::from("."))
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

/// Work stopped by Ctrl-C before it had anything to report: exit 130, like any interruption.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);
