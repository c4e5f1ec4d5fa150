//! `mlbackup-bench`: figures, not assertions (tests never time anything).
//!
//! - `mlbackup-bench backup`: times `kubectl mlbackup backup` against the vendor runbook's shell
//!   loop and against one `kubectl get -o yaml` (the floor: a single list call) on the sandbox,
//!   with CPU time and peak memory of each client, and prints the ratios. The sandbox's own
//!   time per list page (it runs in this process) is reported apart, so the fake's cost is
//!   never mistaken for the client's. Then the same backup encrypted (`--recipient`), and what
//!   encryption adds to its time. With `--s3`, also the same (unencrypted) backup to an `s3://`
//!   location on a real S3 server (s3s-fs on 127.0.0.1, see `mlbackup_testkit::s3`), against
//!   the backup to a local folder.
//! - `mlbackup-bench deployments`: times `kubectl mlbackup deployments deactivate --via local`
//!   (with and without waiting) against a sequential baseline that behaves like the vendor's
//!   in-pod tool, on the fake DataRobot API with latency per request; prints the speed-up, its
//!   share of the ideal (concurrency times), the most requests the server saw at once, and
//!   checks that every active deployment was changed exactly once.

#[path = "mlbackup-bench/deployments.rs"]
mod deployments;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use mlbackup_testkit::faults::RequestLog;
use mlbackup_testkit::sample::SampleSpec;
use mlbackup_testkit::sandbox::{Sandbox, SandboxOptions};
use serde::Serialize;

/// Benchmarks of kubectl-mlbackup on the sandbox.
#[derive(Debug, Parser)]
enum Cli {
    /// The LRS backup against the shell loop and one kubectl list.
    Backup(BackupArgs),
    /// Bulk deactivation against a sequential baseline like the vendor tool.
    Deployments(deployments::Args),
}

#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// LRSes of type `deployment`, all in the app namespace (where the shell loop works).
    #[arg(long, default_value_t = 2000)]
    lrs: usize,
    /// The plugin binary [default: kubectl-mlbackup beside this binary].
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// Runs of the fast commands; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip the shell loop (it starts two kubectl processes per object and takes minutes).
    #[arg(long)]
    skip_loop: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also back up to an s3:// location on a local S3 server (s3s-fs, on PATH or in
    /// ~/.cargo/bin).
    #[arg(long)]
    s3: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Sample {
    /// Wall time of the client process, waits for the server included.
    seconds: f64,
    /// User plus system CPU time of the client process (its own work only).
    cpu_seconds: f64,
    /// The system part of `cpu_seconds` (file creation, the flush: it depends on what else
    /// the machine writes and deletes).
    system_seconds: f64,
    peak_rss_mib: f64,
    /// What the sandbox spent answering the client's list requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerPages>,
}

/// The sandbox's time for the list pages of one run: from a request's arrival to its answer
/// (body encoded), measured inside the server.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerPages {
    pages: usize,
    total_seconds: f64,
    median_ms: f64,
    max_ms: f64,
}

impl ServerPages {
    /// The list requests (GETs of the LRS collection) in the sandbox's request log.
    fn from_log(log: &RequestLog) -> Option<ServerPages> {
        let mut times: Vec<Duration> = log
            .entries()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/lrs"))
            .map(|r| r.served_in)
            .collect();
        if times.is_empty() {
            return None;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Some(ServerPages {
            pages: times.len(),
            total_seconds: times.iter().sum::<Duration>().as_secs_f64(),
            median_ms: ms(times[times.len() / 2]),
            max_ms: ms(times[times.len() - 1]),
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    lrs: usize,
    shell_loop: Option<Sample>,
    kubectl_list: Sample,
    mlbackup: Sample,
    /// The same backup encrypted to one recipient.
    mlbackup_encrypted: Sample,
    /// The same backup to an s3:// location (`--s3`).
    mlbackup_s3: Option<Sample>,
    speedup_over_shell_loop: Option<f64>,
    ratio_to_kubectl_list: f64,
    /// Wall time of the encrypted backup over the plain one, minus 1.
    encryption_overhead: f64,
    /// (e) over (c): the bucket against the local folder.
    ratio_s3_to_folder: Option<f64>,
}

/// The public key of a test identity (made with `age-keygen`; it protects nothing): encrypting
/// needs only this, as a scheduled backup would.
const BENCH_RECIPIENT: &str = "age1534h5g5vjgxhvt9gk9xp92j2hr6ue6yxaq7855klm2lkp9wj8chsq5kgqq";

fn main() -> anyhow::Result<()> {
    mlbackup_testkit::tls::install_crypto_provider();
    match Cli::parse() {
        Cli::Backup(args) => backup(&args),
        Cli::Deployments(args) => deployments::run(&args),
    }
}

/// The plugin binary: `--plugin`, else `kubectl-mlbackup` beside this binary.
fn plugin_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let plugin = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()?
            .parent()
            .context("no parent directory")?
            .join("kubectl-mlbackup"),
    };
    if !plugin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p kubectl-mlbackup) or pass --plugin",
            plugin.display()
        );
    }
    Ok(plugin)
}

fn backup(cli: &BackupArgs) -> anyhow::Result<()> {
    if !Path::new("/usr/bin/time").exists() {
        bail!("peak memory is read with GNU time: install it (apt-get install time)");
    }
    let plugin = plugin_path(cli.plugin.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let work = tempfile::Builder::new()
        .prefix("mlbackup-bench-")
        .tempdir()?;
    let sandbox = runtime.block_on(Sandbox::start(SandboxOptions {
        sample: SampleSpec {
            lrs: cli.lrs,
            spark: 0,
            other: 0,
            namespaces: 1,
            deployments: 0,
            inactive_deployments: 0,
            ..SampleSpec::default()
        },
        lrs_version: "v1".into(),
        dr_latency: None,
        max_page_size: None,
        kubeconfig: work.path().join("kubeconfig"),
        pods_root: work.path().join("pods"),
        lrs_operator_delay: mlbackup_testkit::kube::FakeKubeOptions::default().lrs_operator_delay,
        image_binaries: Vec::new(),
    }))?;
    let env = Env {
        kubeconfig: sandbox.ready.kubeconfig.clone(),
        home: work.path().join("home"),
        app_namespace: sandbox.ready.app_namespace.clone(),
        requests: sandbox.kube.requests().clone(),
    };
    std::fs::create_dir_all(&env.home)?;
    eprintln!(
        "sandbox ready with {} deployment LRSes; measuring...",
        cli.lrs
    );

    let shell_loop = if cli.skip_loop {
        None
    } else {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/runbook-lrs-backup.sh");
        let cwd = fresh_dir(work.path(), "loop")?;
        let sample = env.measure(
            &cwd,
            "bash",
            &[script.to_str().context("script path")?],
            None,
        )?;
        eprintln!("(a) shell loop: {:.1} s", sample.seconds);
        Some(sample)
    };
    let kubectl_list = median(cli.runs, || {
        let cwd = fresh_dir(work.path(), "list")?;
        let out = std::fs::File::create(cwd.join("all.yaml"))?;
        env.measure(
            &cwd,
            "kubectl",
            &[
                "get",
                "lrs",
                "-A",
                "-l",
                "datarobot-lrs-type=deployment",
                "-o",
                "yaml",
            ],
            Some(out),
        )
    })?;
    eprintln!("(b) kubectl get -o yaml: {:.2} s", kubectl_list.seconds);
    let plugin = plugin.to_str().context("plugin path")?;
    let mlbackup = median(cli.runs, || {
        let cwd = fresh_dir(work.path(), "mlbackup")?;
        env.measure(&cwd, plugin, &["backup", "-o", "json"], None)
    })?;
    eprintln!("(c) kubectl mlbackup backup: {:.2} s", mlbackup.seconds);
    let mlbackup_encrypted = median(cli.runs, || {
        let cwd = fresh_dir(work.path(), "encrypted")?;
        env.measure(
            &cwd,
            plugin,
            &["backup", "-o", "json", "--recipient", BENCH_RECIPIENT],
            None,
        )
    })?;
    eprintln!(
        "(d) kubectl mlbackup backup --recipient: {:.2} s",
        mlbackup_encrypted.seconds
    );
    let mlbackup_s3 = if cli.s3 {
        let binary = mlbackup_testkit::s3::find_binary().with_context(|| {
            format!(
                "--s3 needs {} (on PATH or in ~/.cargo/bin): {}",
                mlbackup_testkit::s3::BINARY,
                mlbackup_testkit::s3::INSTALL
            )
        })?;
        let server = mlbackup_testkit::s3::S3Server::start(&binary)?;
        let aws = [
            ("AWS_ENDPOINT_URL", server.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", server.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", server.secret_access_key.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
        ];
        let mut run = 0;
        let sample = median(cli.runs, || {
            run += 1;
            let cwd = fresh_dir(work.path(), "s3")?;
            let location = format!("s3://{}/bench-{run}", server.bucket);
            env.measure_with(
                &cwd,
                plugin,
                &["backup", "--dir", &location, "--no-encrypt", "-o", "json"],
                None,
                &aws,
            )
        })?;
        eprintln!(
            "(e) kubectl mlbackup backup to s3://: {:.2} s",
            sample.seconds
        );
        Some(sample)
    } else {
        None
    };

    let report = Report {
        lrs: cli.lrs,
        speedup_over_shell_loop: shell_loop.as_ref().map(|a| a.seconds / mlbackup.seconds),
        ratio_to_kubectl_list: mlbackup.seconds / kubectl_list.seconds,
        encryption_overhead: mlbackup_encrypted.seconds / mlbackup.seconds - 1.0,
        ratio_s3_to_folder: mlbackup_s3.as_ref().map(|d| d.seconds / mlbackup.seconds),
        mlbackup_s3,
        shell_loop,
        kubectl_list,
        mlbackup,
        mlbackup_encrypted,
    };
    print_report(&report);
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    drop(sandbox);
    Ok(())
}

/// The environment every measured command runs in: the sandbox's kubeconfig, a HOME of the
/// benchmark's own (kubectl's discovery cache included) and the runbook's variable.
struct Env {
    kubeconfig: PathBuf,
    home: PathBuf,
    app_namespace: String,
    /// The sandbox's request log, for its time per list page.
    requests: RequestLog,
}

impl Env {
    /// Runs `program ARGS` in `cwd` under GNU time, for its CPU time and peak resident memory
    /// (for the shell loop: the CPU of the whole tree, the memory of the largest of its
    /// kubectl processes), and collects the sandbox's time for the list pages it asked for.
    fn measure(
        &self,
        cwd: &Path,
        program: &str,
        args: &[&str],
        stdout: Option<std::fs::File>,
    ) -> anyhow::Result<Sample> {
        self.measure_with(cwd, program, args, stdout, &[])
    }

    /// [`Env::measure`] with more environment variables.
    fn measure_with(
        &self,
        cwd: &Path,
        program: &str,
        args: &[&str],
        stdout: Option<std::fs::File>,
        extra_env: &[(&str, String)],
    ) -> anyhow::Result<Sample> {
        let stats = tempfile::NamedTempFile::new()?;
        let mut command = Command::new("/usr/bin/time");
        command
            .arg("-f")
            .arg("%M %U %S")
            .arg("-o")
            .arg(stats.path())
            .arg(program)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("DR_CORE_NAMESPACE", &self.app_namespace)
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdout(match stdout {
                Some(file) => Stdio::from(file),
                None => Stdio::null(),
            });
        // No run pays for the writes of the one before (kubectl's output, earlier backups):
        // the plugin flushes the file system before its manifest, kubectl does not.
        let synced = Command::new("sync").status()?;
        if !synced.success() {
            bail!("sync failed: {synced}");
        }
        self.requests.clear();
        let started = Instant::now();
        let status = command.status()?;
        let elapsed = started.elapsed();
        if !status.success() {
            bail!("{program} {} failed: {status}", args.join(" "));
        }
        let figures: Vec<f64> = std::fs::read_to_string(stats.path())?
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .context("cannot read GNU time's output")?;
        let [peak_kib, user, system] = figures[..] else {
            bail!("GNU time printed {figures:?}, not peak RSS, user and system time");
        };
        Ok(Sample {
            seconds: elapsed.as_secs_f64(),
            cpu_seconds: user + system,
            system_seconds: system,
            peak_rss_mib: peak_kib / 1024.0,
            server: ServerPages::from_log(&self.requests),
        })
    }
}

fn fresh_dir(root: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    Ok(tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(root)?
        .keep())
}

fn median(runs: usize, mut run: impl FnMut() -> anyhow::Result<Sample>) -> anyhow::Result<Sample> {
    let mut samples = (0..runs.max(1))
        .map(|_| run())
        .collect::<anyhow::Result<Vec<_>>>()?;
    samples.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    Ok(samples[samples.len() / 2].clone())
}

fn print_report(report: &Report) {
    println!(
        "LRS backup of {} deployment LRSes on the sandbox (one namespace)",
        report.lrs
    );
    println!(
        "{:<42} {:>9} {:>9} {:>9} {:>10}",
        "client process", "wall", "CPU", "(system)", "peak RSS"
    );
    let row = |name: &str, sample: &Sample| {
        println!(
            "{name:<42} {:>8.2}s {:>8.2}s {:>8.2}s {:>6.1} MiB",
            sample.seconds, sample.cpu_seconds, sample.system_seconds, sample.peak_rss_mib
        );
    };
    if let Some(a) = &report.shell_loop {
        row("(a) documented shell loop", a);
    }
    row(
        "(b) kubectl get lrs -A -o yaml (floor)",
        &report.kubectl_list,
    );
    row("(c) kubectl mlbackup backup", &report.mlbackup);
    row(
        "(d) kubectl mlbackup backup --recipient",
        &report.mlbackup_encrypted,
    );
    if let Some(e) = &report.mlbackup_s3 {
        row("(e) kubectl mlbackup backup --dir s3://", e);
    }
    println!("sandbox, per list page (inside the wall times above, not in the CPU times)");
    let mut pages = vec![
        ("(b)", &report.kubectl_list),
        ("(c)", &report.mlbackup),
        ("(d)", &report.mlbackup_encrypted),
    ];
    if let Some(e) = &report.mlbackup_s3 {
        pages.push(("(e)", e));
    }
    for (name, sample) in pages {
        if let Some(server) = &sample.server {
            println!(
                "{name} {} pages, {:.2}s in all, median {:.1} ms, slowest {:.1} ms",
                server.pages, server.total_seconds, server.median_ms, server.max_ms
            );
        }
    }
    println!(
        "(c) CPU per object: {:.0} us",
        report.mlbackup.cpu_seconds / report.lrs.max(1) as f64 * 1e6
    );
    if let Some(speedup) = report.speedup_over_shell_loop {
        println!("(c) is {speedup:.0}x faster than (a)   [target: at least 50x]");
    }
    println!(
        "(c) takes {:.2}x the time of (b)      [target: at most 2x]",
        report.ratio_to_kubectl_list
    );
    println!(
        "(d) takes {:+.0}% of the time of (c)    [target: at most +30%]",
        report.encryption_overhead * 100.0
    );
    if let Some(ratio) = report.ratio_s3_to_folder {
        println!("(e) takes {ratio:.2}x the time of (c)      [target: at most 2x]");
    }
}
