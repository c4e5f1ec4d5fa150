//! `scheduled-run` (hidden): what a scheduled Job's container runs. `backup` of every LRS type
//! into the location, then, when the schedule has retention rules, `prune --yes` with them; in
//! one process, because the image (FROM scratch) has no shell to chain two commands, and one
//! container keeps the pod's log and exit code the run's. Each step is the command itself,
//! parsed from the same flags a person would type, so the schedule runs exactly what the README
//! documents.

use std::ffi::OsString;

use clap::Parser;

use super::render::retention_flags;
use crate::cli::{Cli, Command, GlobalArgs, ScheduledRunArgs};
use crate::commands::{backup, prune};
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::printer::Printer;

/// The command lines of the two steps (the program name first, as clap expects).
pub fn steps(args: &ScheduledRunArgs) -> (Vec<OsString>, Option<Vec<OsString>>) {
    let program = OsString::from("kubectl-mlbackup");
    let mut backup: Vec<OsString> = vec![
        program.clone(),
        "backup".into(),
        "--all-types".into(),
        "--dir".into(),
        args.dir.clone().into(),
    ];
    if let Some(file) = &args.recipients_file {
        backup.extend(["--recipients-file".into(), file.clone().into()]);
    }
    let retention = retention_flags(&args.retention);
    let prune = (!retention.is_empty()).then(|| {
        let mut prune: Vec<OsString> = vec![
            program,
            "prune".into(),
            "--dir".into(),
            args.dir.clone().into(),
        ];
        prune.extend(retention.into_iter().map(OsString::from));
        prune.push("--yes".into());
        prune
    });
    (backup, prune)
}

fn parse(argv: Vec<OsString>) -> anyhow::Result<Command> {
    Cli::try_parse_from(&argv)
        .map(|cli| cli.command)
        .map_err(|err| {
            UsageError {
                message: format!(
                    "this plugin cannot run the step `{}`: {}",
                    argv.iter()
                        .skip(1)
                        .map(|a| a.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(" "),
                    err.kind()
                ),
                hint: "the schedule was installed by a newer plugin than the image holds: \
                       install it again with an --image of the same version"
                    .into(),
            }
            .into()
        })
}

pub async fn run(
    global: &GlobalArgs,
    args: &ScheduledRunArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (backup_argv, prune_argv) = steps(args);
    let Command::Backup(backup_args) = parse(backup_argv)? else {
        unreachable!("the first step is a backup");
    };
    let prune_args = match prune_argv.map(parse).transpose()? {
        Some(Command::Prune(prune_args)) => Some(prune_args),
        Some(_) => unreachable!("the second step is a prune"),
        None => None,
    };
    let exit = backup::run(global, &backup_args, env, printer).await?;
    if exit != Exit::Success {
        return Ok(exit);
    }
    match prune_args {
        Some(prune_args) => prune::run(&prune_args, env, printer).await,
        None => Ok(exit),
    }
}
