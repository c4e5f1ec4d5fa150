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
        if let Some(zone) = &args.time_zone {
            prune.extend(["--time-zone".into(), zone.into()]);
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cli::ScheduleRetentionArgs;

    fn args(time_zone: Option<&str>, retention: ScheduleRetentionArgs) -> ScheduledRunArgs {
        ScheduledRunArgs {
            dir: "s3://backups/prod".into(),
            recipients_file: Some("/etc/mlbackup/recipients/recipients.txt".into()),
            retention,
            time_zone: time_zone.map(str::to_string),
        }
    }

    fn text(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_prune_step_counts_days_in_the_schedules_time_zone() {
        let retention = ScheduleRetentionArgs {
            keep_daily: Some(7),
            keep_within: Some(Duration::from_secs(2 * 86400)),
            ..Default::default()
        };
        let (backup, prune) = steps(&args(Some("Europe/Berlin"), retention.clone()));
        assert_eq!(
            text(&backup),
            [
                "kubectl-mlbackup",
                "backup",
                "--all-types",
                "--dir",
                "s3://backups/prod",
                "--recipients-file",
                "/etc/mlbackup/recipients/recipients.txt"
            ]
        );
        let prune = prune.expect("retention rules make a prune step");
        assert_eq!(
            text(&prune),
            [
                "kubectl-mlbackup",
                "prune",
                "--dir",
                "s3://backups/prod",
                "--keep-daily",
                "7",
                "--keep-within",
                "2d",
                "--time-zone",
                "Europe/Berlin",
                "--yes"
            ]
        );
        // The steps parse as the commands a person would type, the zone included.
        let Command::Prune(parsed) = parse(prune).unwrap() else {
            panic!("not a prune");
        };
        assert_eq!(
            parsed
                .time_zone
                .map(|tz| tz.iana_name().map(str::to_string)),
            Some(Some("Europe/Berlin".to_string()))
        );
        // Without --time-zone at install, prune keeps its default (the pod's zone).
        let (_, prune) = steps(&args(None, retention));
        assert!(!text(&prune.unwrap()).contains(&"--time-zone".to_string()));
        // Without retention rules there is no prune step, zone or not.
        let (_, prune) = steps(&args(
            Some("Europe/Berlin"),
            ScheduleRetentionArgs::default(),
        ));
        assert!(prune.is_none());
    }
}
