//! One module per subcommand; each returns a serialisable outcome that the printer renders.

pub mod app;
pub mod backup;
mod delete;
pub mod deployments;
mod diff;
mod list;
mod prune;
pub mod restore;
mod show;
mod spark_cleanup;
mod verify;
mod version;

use std::path::PathBuf;

use crate::cli::{BackupDirArgs, Cli, Command};
use crate::env::Env;
use crate::error::Exit;
use crate::printer::Printer;

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

/// The directory holding the backups: `--dir`, else `MLBACKUP_DIR`, else the current directory.
pub fn backup_root(args: &BackupDirArgs, env: &Env) -> PathBuf {
    args.dir
        .clone()
        .or_else(|| env.mlbackup_dir.clone())
        .unwrap_or_else(|| PathBuf::from("."))
}
