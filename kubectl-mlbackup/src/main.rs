//! Entry point of `kubectl-mlbackup`: parse the command line, run one subcommand, map the outcome
//! to an exit code. Everything else lives in the modules below; ARCHITECTURE.md shows their
//! layers.

mod cli;
mod cluster;
mod commands;
mod completion;
mod datarobot;
mod digest;
mod duration;
mod encryption;
mod env;
mod exit;
mod folder;
mod location;
mod object;
mod poll;
mod printer;
mod retention;
mod store;
mod yaml;

#[cfg(test)]
mod layers;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One rustls crypto provider for the whole process (kube and reqwest would otherwise race to
    // pick different ones and panic).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == completion::COMPLETE_COMMAND)
    {
        return complete(&args[2..]);
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => {
            let _ = usage.print();
            return if usage.use_stderr() {
                exit::Exit::Usage.into()
            } else {
                exit::Exit::Success.into()
            };
        }
    };
    printer::init_logging(cli.global.verbosity);
    let env = env::Env::from_process();
    let printer =
        printer::Printer::new(cli.global.output, &env).with_hints(commands::diagnostics::hint);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            printer.error(&anyhow::Error::new(err).context("cannot start the async runtime"));
            return exit::Exit::Failure.into();
        }
    };
    let exit = runtime.block_on(run(cli, env, &printer));
    exit.into()
}

/// Runs the chosen subcommand and prints its outcome or its error.
async fn run(cli: cli::Cli, env: env::Env, printer: &printer::Printer) -> exit::Exit {
    use commands::{interrupted_before_the_work, listen_for_interrupts};
    let cancel = listen_for_interrupts();
    let work = dispatch(&cli, &env, printer);
    let result = tokio::select! {
        biased;
        result = work => result,
        () = interrupted_before_the_work(&cancel) => Err(exit::Interrupted(
            "interrupted before anything was done; nothing was changed".into(),
        )
        .into()),
    };
    match result {
        Ok(exit) => exit,
        Err(err) => {
            printer.error(&err);
            exit::exit_for(&err)
        }
    }
}

/// The chosen subcommand's work.
async fn dispatch(
    cli: &cli::Cli,
    env: &env::Env,
    printer: &printer::Printer,
) -> anyhow::Result<exit::Exit> {
    use cli::Command;
    use commands::*;
    let global = &cli.global;
    let synchronous = matches!(
        cli.command,
        Command::List(_)
            | Command::Show(_)
            | Command::Verify(_)
            | Command::Rekey(_)
            | Command::Delete(_)
            | Command::Prune(_)
            | Command::Completion(_)
    );
    SYNCHRONOUS.store(synchronous, std::sync::atomic::Ordering::SeqCst);
    match &cli.command {
        Command::Version(args) => version::run(global, args, env, printer).await,
        Command::Backup(args) => backup::run(global, args, env, printer).await,
        Command::List(args) => list::run(args, env, printer).await,
        Command::Show(args) => show::run(args, env, printer).await,
        Command::Verify(args) => verify::run(global, args, env, printer).await,
        Command::ApiSurface(args) => api_surface::run(global, args, env, printer).await,
        Command::Rekey(args) => rekey::run(args, env, printer),
        Command::Delete(args) => delete::run(args, env, printer).await,
        Command::Copy(args) => copy::run(args, env, printer).await,
        Command::Prune(args) => prune::run_manual(args, env, printer).await,
        Command::Restore(args) => restore::run(global, args, env, printer).await,
        Command::Diff(args) => diff::run(global, args, env, printer).await,
        Command::SparkCleanup(args) => spark_cleanup::run(global, args, env, printer).await,
        Command::App(args) => app::run(global, &args.command, env, printer).await,
        Command::Completion(args) => printer
            .text(&completion::script(args.shell))
            .map(|()| exit::Exit::Success),
        Command::Prepare(args) => runbook::prepare::run(global, args, env, printer).await,
        Command::Recover(args) => runbook::recover::run(global, args, env, printer).await,
        Command::Deployments(command) => deployments::run(global, command, env, printer).await,
        Command::Schedule(command) => schedule::run(global, command, env, printer).await,
        Command::ScheduledRun(args) => {
            schedule::scheduled_run::run(global, args, env, printer).await
        }
    }
}

/// `kubectl-mlbackup __complete WORDS...`, before clap parses anything: the words are a partial
/// command line, not this process's own.
fn complete(words: &[std::ffi::OsString]) -> ExitCode {
    let env = env::Env::from_process();
    let cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("."));
    let answer = completion::cobra_completions(words, &env, &cwd);
    let printer = printer::Printer::new(printer::OutputFormat::Table, &env);
    match printer.text(&answer) {
        Ok(()) => exit::Exit::Success.into(),
        Err(_) => exit::Exit::Failure.into(),
    }
}
