//! One module per subcommand; each returns a serialisable outcome that the printer renders.

mod version;

use crate::cli::{Cli, Command};
use crate::env::Env;
use crate::error::Exit;
use crate::printer::Printer;

/// Runs the chosen subcommand and prints its outcome or its error.
pub async fn run(cli: Cli, env: Env, printer: &Printer) -> Exit {
    let result = match &cli.command {
        Command::Version(args) => version::run(&cli.global, args, &env, printer).await,
    };
    match result {
        Ok(exit) => exit,
        Err(err) => {
            printer.error(&err);
            Exit::Failure
        }
    }
}
