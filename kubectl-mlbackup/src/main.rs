//! Entry point of `kubectl-mlbackup`: parse the command line, run one subcommand, map the outcome
//! to an exit code. Everything else lives in the modules below.

mod cli;
mod cluster;
mod commands;
mod completion;
mod duration;
// Built ahead of the commands that will use it (issue 15: backup, verify, restore, rekey...);
// until they do, its items and re-exports are unused.
#[allow(dead_code, unused_imports)]
mod encryption;
mod env;
mod error;
mod folder;
mod helper_binary;
mod in_pod;
// The storage layer of s3:// backup locations; the commands use it once the folder module is
// split (issue 13), until then most of it is only reached by its tests.
#[allow(dead_code)]
mod location;
mod object;
mod printer;
mod yaml;

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
                error::Exit::Usage.into()
            } else {
                error::Exit::Success.into()
            };
        }
    };
    printer::init_logging(cli.global.verbosity);
    let env = env::Env::from_process();
    let printer = printer::Printer::new(cli.global.output, &env);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            printer.error(&anyhow::Error::new(err).context("cannot start the async runtime"));
            return error::Exit::Failure.into();
        }
    };
    let exit = runtime.block_on(commands::run(cli, env, &printer));
    exit.into()
}

/// `kubectl-mlbackup __complete WORDS...`, before clap parses anything: the words are a partial
/// command line, not this process's own.
fn complete(words: &[std::ffi::OsString]) -> ExitCode {
    let env = env::Env::from_process();
    let cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("."));
    let answer = completion::cobra_completions(words, &env, &cwd);
    let printer = printer::Printer::new(cli::OutputFormat::Table, &env);
    match printer.text(&answer) {
        Ok(()) => error::Exit::Success.into(),
        Err(_) => error::Exit::Failure.into(),
    }
}
