//! `mlbackup-sandbox`: starts the fake cluster and DataRobot API on 127.0.0.1, prints one JSON
//! line saying where they are, and serves until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mlbackup_testkit::s3;
use mlbackup_testkit::sample::SampleSpec;
use mlbackup_testkit::sandbox::{S3Ready, Sandbox, SandboxOptions};

/// A local fake of a DataRobot cluster for trying kubectl-mlbackup (and kubectl) safely.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the fake Kubernetes API server and DataRobot API and serve until interrupted.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Where to write the kubeconfig of the sandbox (context `sandbox`).
    #[arg(long, value_name = "PATH")]
    kubeconfig: PathBuf,
    /// LRSes of type `deployment`.
    #[arg(long, default_value_t = 12)]
    lrs: usize,
    /// LRSes of type `spark_app`.
    #[arg(long, default_value_t = 3)]
    spark: usize,
    /// LRSes of other types (`custom_application`, `custom_job`, ...).
    #[arg(long, default_value_t = 2)]
    other: usize,
    /// Spread the LRSes over this many namespaces, the app namespace first.
    #[arg(long, default_value_t = 1)]
    namespaces: usize,
    /// DataRobot model deployments.
    #[arg(long, default_value_t = 12)]
    deployments: usize,
    /// How many of the deployments are inactive.
    #[arg(long, default_value_t = 2)]
    inactive_deployments: usize,
    /// Extra latency of every DataRobot API request, in milliseconds.
    #[arg(long, value_name = "L")]
    dr_latency_ms: Option<u64>,
    /// Seed of the sample data (the same seed gives the same objects).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The namespace DataRobot is installed in.
    #[arg(long, default_value = "dr-app")]
    app_namespace: String,
    /// The version the LRS resource is served at.
    #[arg(long, default_value = "v1")]
    lrs_version: String,
    /// Largest page of a list the API server returns (forces pagination).
    #[arg(long, value_name = "N")]
    max_page_size: Option<usize>,
    /// How long the LRS operator takes to release its finalizer (`lrs.datarobot.com/cleanup`)
    /// after an LRS is deleted, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    lrs_operator_delay_ms: u64,
    /// Run no LRS operator: deleted LRSes stay held by its finalizer (as when it is down).
    #[arg(long, conflicts_with = "lrs_operator_delay_ms")]
    no_lrs_operator: bool,
    /// Working directories of the processes exec'd in pods (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Start an S3 server too (the `s3s-fs` binary, on PATH or in ~/.cargo/bin), with a bucket,
    /// for `s3://` backup locations; its endpoint and keys go into the ready line.
    #[arg(long)]
    s3: bool,
    /// Run a Job's container of image IMAGE as the local binary PATH (the image's entrypoint,
    /// with the container's args, env and service account credentials), as a kubelet would run
    /// the image; repeat for several images. Sandbox only.
    #[arg(long, value_name = "IMAGE=PATH", value_parser = parse_image_binary)]
    image_binary: Vec<(String, PathBuf)>,
}

fn parse_image_binary(text: &str) -> Result<(String, PathBuf), String> {
    let (image, path) = text
        .split_once('=')
        .filter(|(image, path)| !image.is_empty() && !path.is_empty())
        .ok_or_else(|| format!("{text:?} is not IMAGE=PATH"))?;
    let path = std::path::absolute(path).map_err(|e| format!("{path}: {e}"))?;
    if !path.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    Ok((image.to_string(), path))
}

fn main() -> anyhow::Result<()> {
    mlbackup_testkit::tls::install_crypto_provider();
    let Command::Serve(args) = Cli::parse().command;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.inactive_deployments > args.deployments {
        anyhow::bail!("--inactive-deployments cannot exceed --deployments");
    }
    let temp_state = tempfile::Builder::new()
        .prefix("mlbackup-sandbox-")
        .tempdir()
        .context("cannot create the pods' state directory")?;
    let pods_root = args
        .state_dir
        .clone()
        .unwrap_or_else(|| temp_state.path().to_path_buf());
    let kubeconfig = std::path::absolute(&args.kubeconfig)?;
    let sandbox = Sandbox::start(SandboxOptions {
        sample: SampleSpec {
            lrs: args.lrs,
            spark: args.spark,
            other: args.other,
            namespaces: args.namespaces,
            app_namespace: args.app_namespace,
            deployments: args.deployments,
            inactive_deployments: args.inactive_deployments,
            seed: args.seed,
        },
        lrs_version: args.lrs_version,
        dr_latency: args.dr_latency_ms.map(Duration::from_millis),
        max_page_size: args.max_page_size,
        kubeconfig,
        pods_root,
        lrs_operator_delay: (!args.no_lrs_operator)
            .then(|| Duration::from_millis(args.lrs_operator_delay_ms)),
        image_binaries: args.image_binary,
    })
    .await?;
    let mut ready = sandbox.ready.clone();
    let s3 = match args.s3 {
        true => {
            let binary = s3::find_binary().with_context(|| {
                format!(
                    "--s3 needs {} (on PATH or in ~/.cargo/bin): install it with `{}`",
                    s3::BINARY,
                    s3::INSTALL
                )
            })?;
            let server = s3::S3Server::start(&binary)?;
            ready.s3 = Some(S3Ready::of(&server));
            Some(server)
        }
        false => None,
    };
    println!("{}", serde_json::to_string(&ready)?);
    wait_for_signal().await?;
    drop(s3);
    drop(sandbox);
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
