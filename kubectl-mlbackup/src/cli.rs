//! The command line: every flag and subcommand, whose doc comments are the help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Back up, restore and quiesce the Long Running Services (LRS) and model deployments of a
/// self-managed DataRobot installation, safely and fast.
///
/// Run it as `kubectl mlbackup ...`. It uses the same kubeconfig, context and namespace as
/// kubectl.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-mlbackup",
    bin_name = "kubectl mlbackup",
    version,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The kubectl-style flags every subcommand accepts.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file to use (instead of KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The name of the kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The name of the kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The name of the kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// The namespace to work in (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// How long to wait for one API request before giving up, like `30s` or `1m`; `0` waits
    /// forever.
    #[arg(long, global = true, value_name = "DURATION", value_parser = crate::duration::parse)]
    pub request_timeout: Option<Duration>,

    /// Output format of the data written to stdout.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Log verbosity, like kubectl's: 1 shows steps, 6 and more shows every API request.
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        value_name = "LEVEL",
        num_args = 0..=1,
        default_value_t = 0,
        default_missing_value = "1"
    )]
    pub verbosity: u8,
}

/// How results are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables and summaries.
    Table,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the plugin version and the version of the cluster's API server.
    ///
    /// Also shows the context and namespace the plugin will act on. Exits 1 when the cluster
    /// cannot be reached (after printing the plugin version).
    #[command(after_long_help = "Examples:\n  \
        kubectl mlbackup version\n  \
        kubectl mlbackup version --context prod -o json\n  \
        kubectl mlbackup version --client")]
    Version(VersionArgs),
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Print only the plugin version; do not contact the cluster.
    #[arg(long)]
    pub client: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "kubectl-mlbackup",
            "version",
            "--context",
            "prod",
            "-n",
            "dr",
            "-o",
            "json",
            "--request-timeout",
            "1m30s",
            "-v=6",
        ])
        .unwrap();
        assert_eq!(cli.global.context.as_deref(), Some("prod"));
        assert_eq!(cli.global.namespace.as_deref(), Some("dr"));
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.request_timeout, Some(Duration::from_secs(90)));
        assert_eq!(cli.global.verbosity, 6);
    }

    #[test]
    fn a_bare_v_means_level_one() {
        let cli = Cli::try_parse_from(["kubectl-mlbackup", "-v", "version"]);
        // `-v version` reads "version" as the level and fails: kubectl's `-v` also needs a value
        // when it is separated by a space, so only `-v` at the end or `-v=N` are accepted forms.
        assert!(cli.is_err());
        let cli = Cli::try_parse_from(["kubectl-mlbackup", "version", "-v"]).unwrap();
        assert_eq!(cli.global.verbosity, 1);
    }
}
