//! `mlbackup-bench deployments`: bulk deactivation of many deployments on the fake DataRobot
//! API with latency per request: (a) a sequential baseline like the vendor's in-pod tool (one
//! request after another, no waiting), (b) `deployments deactivate --via local --wait=false`,
//! (c) the same with `--wait` (each followed until inactive), (d) (b) with `--via pod`: the
//! helper uploaded into the fake cluster's app pod and run there, for the overhead of the pod
//! path. Between runs the fake is put back as it was. Every run must change each active
//! deployment exactly once, and fail none.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use mlbackup_testkit::datarobot::{
    DeploymentSeed, DeploymentStatus, FakeDataRobot, FakeDataRobotOptions, object_id,
};
use mlbackup_testkit::faults::{Fault, FaultRule};
use mlbackup_testkit::kube::{FakeKube, FakeKubeOptions};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Deployments, all active.
    #[arg(long, default_value_t = 1000)]
    deployments: usize,
    /// Latency added to every API request, in milliseconds.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// The plugin's --concurrency.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long a status job takes on the fake, in milliseconds.
    #[arg(long, default_value_t = 200)]
    job_ms: u64,
    /// The plugin binary [default: kubectl-mlbackup beside this binary].
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// Runs of the plugin commands; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Skip (d), the pod path (it needs mlbackup-helper beside the plugin).
    #[arg(long)]
    skip_pod: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Measure {
    seconds: f64,
    /// The most requests the server was serving at once.
    max_in_flight_requests: usize,
    /// The most status jobs running at once.
    max_in_flight_jobs: usize,
    /// From the start to the first status change request (listing, snapshot, start-up).
    first_change_after: f64,
    /// From the first to the last status change request.
    changes_span: f64,
    changed: usize,
    failed: usize,
    repeated: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    deployments: usize,
    latency_ms: u64,
    concurrency: usize,
    baseline: Measure,
    no_wait: Measure,
    wait: Measure,
    pod: Option<Measure>,
    speedup_no_wait: f64,
    speedup_wait: f64,
    share_of_ideal_no_wait: f64,
    /// (d) minus (b): the upload and exec of the pod path.
    pod_overhead_seconds: Option<f64>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let plugin = super::plugin_path(args.plugin.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let work = tempfile::Builder::new()
        .prefix("mlbackup-bench-dr-")
        .tempdir()?;
    let fake = runtime.block_on(FakeDataRobot::start(FakeDataRobotOptions {
        status_change_duration: Duration::from_millis(args.job_ms),
        ..FakeDataRobotOptions::default()
    }))?;
    fake.faults().add(FaultRule::new(
        "",
        Fault::Latency(Duration::from_millis(args.latency_ms)),
        None,
    ));
    let ca_file = work.path().join("ca.pem");
    std::fs::write(&ca_file, fake.ca_pem().context("the fake serves TLS")?)?;
    let bench = Bench {
        fake: &fake,
        count: args.deployments,
    };
    eprintln!(
        "fake DataRobot API with {} active deployments, {} ms per request; measuring...",
        args.deployments, args.latency_ms
    );

    bench.reset()?;
    let baseline = bench.measure(|| {
        runtime.block_on(sequential_baseline(
            &fake.url(),
            fake.admin_token(),
            fake.ca_pem().unwrap(),
        ))
    })?;
    eprintln!("(a) sequential baseline: {:.2} s", baseline.seconds);

    // The fake cluster whose app pod runs the helper for (d).
    let cluster = if args.skip_pod {
        None
    } else {
        let kube = runtime.block_on(FakeKube::start(FakeKubeOptions {
            pods_root: work.path().join("pods"),
            ..FakeKubeOptions::default()
        }))?;
        kube.create_namespace("dr-app");
        kube.add_app_deployment("dr-app", "mmapp-app", 1)?;
        let kubeconfig = work.path().join("kubeconfig");
        kube.write_kubeconfig(&kubeconfig, "bench", Some("dr-app"))?;
        Some((kube, kubeconfig))
    };
    let plugin_run = |wait: bool, via_pod: Option<&Path>| -> anyhow::Result<Measure> {
        let mut samples = Vec::new();
        for n in 0..args.runs.max(1) {
            bench.reset()?;
            let state = work
                .path()
                .join(format!("state-{wait}-{}-{n}.json", via_pod.is_some()));
            let run = Deactivate {
                plugin: &plugin,
                fake: &fake,
                ca_file: &ca_file,
                state: &state,
                concurrency: args.concurrency,
                wait,
                kubeconfig: via_pod,
            };
            samples.push(bench.measure(|| run.run())?);
        }
        samples.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        Ok(samples[samples.len() / 2].clone())
    };
    let no_wait = plugin_run(false, None)?;
    eprintln!("(b) deactivate --wait=false: {:.2} s", no_wait.seconds);
    let wait = plugin_run(true, None)?;
    eprintln!("(c) deactivate --wait: {:.2} s", wait.seconds);
    let pod = match &cluster {
        Some((_, kubeconfig)) => {
            let pod = plugin_run(false, Some(kubeconfig))?;
            eprintln!(
                "(d) deactivate --wait=false --via pod: {:.2} s",
                pod.seconds
            );
            Some(pod)
        }
        None => None,
    };

    let speedup_no_wait = baseline.seconds / no_wait.seconds;
    let report = Report {
        deployments: args.deployments,
        latency_ms: args.latency_ms,
        concurrency: args.concurrency,
        speedup_wait: baseline.seconds / wait.seconds,
        share_of_ideal_no_wait: speedup_no_wait / args.concurrency as f64,
        pod_overhead_seconds: pod.as_ref().map(|p| p.seconds - no_wait.seconds),
        speedup_no_wait,
        baseline,
        no_wait,
        wait,
        pod,
    };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    Ok(())
}

struct Bench<'a> {
    fake: &'a FakeDataRobot,
    count: usize,
}

impl Bench<'_> {
    /// Every deployment active again, no job running, counters afresh.
    fn reset(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.fake.in_flight_status_jobs() > 0 {
            ensure!(
                Instant::now() < deadline,
                "status jobs still running after 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for n in 0..self.count {
            self.fake.add_deployment(DeploymentSeed {
                id: object_id(n as u64),
                ..DeploymentSeed::new(format!("model-{n:05}"), DeploymentStatus::Active)
            });
        }
        self.fake.requests().reset_max_in_flight();
        self.fake.reset_max_in_flight_status_jobs();
        Ok(())
    }

    /// Times `run`, then checks on the fake that each deployment was changed exactly once.
    fn measure(&self, run: impl FnOnce() -> anyhow::Result<usize>) -> anyhow::Result<Measure> {
        let history_before = self.fake.status_history().len();
        let log_before = self.fake.requests().entries().len();
        let started_at = chrono::Utc::now();
        let started = Instant::now();
        let failed = run()?;
        let seconds = started.elapsed().as_secs_f64();
        let mut changed: Vec<String> = self.fake.status_history()[history_before..]
            .iter()
            .map(|c| c.deployment_id.clone())
            .collect();
        changed.sort();
        let total = changed.len();
        changed.dedup();
        let patches: Vec<_> = self.fake.requests().entries()[log_before..]
            .iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| r.at)
            .collect();
        let seconds_between = |a: chrono::DateTime<chrono::Utc>,
                               b: chrono::DateTime<chrono::Utc>| {
            (b - a).to_std().unwrap_or_default().as_secs_f64()
        };
        let measure = Measure {
            seconds,
            max_in_flight_requests: self.fake.requests().max_in_flight(),
            max_in_flight_jobs: self.fake.max_in_flight_status_jobs(),
            first_change_after: patches
                .first()
                .map_or(0.0, |first| seconds_between(started_at, *first)),
            changes_span: match (patches.first(), patches.last()) {
                (Some(first), Some(last)) => seconds_between(*first, *last),
                _ => 0.0,
            },
            changed: changed.len(),
            failed,
            repeated: total - changed.len(),
        };
        if measure.changed != self.count || measure.failed > 0 || measure.repeated > 0 {
            bail!("a run did not change every deployment exactly once: {measure:?}");
        }
        Ok(measure)
    }
}

/// Like the vendor's tool: list, then one PATCH per active deployment, one after another, not
/// waiting for the status jobs. Returns the number of failed requests.
async fn sequential_baseline(url: &str, token: &str, ca_pem: &str) -> anyhow::Result<usize> {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(
            mlbackup_helper_free_tls(ca_pem).context("cannot set up TLS for the baseline")?,
        )
        .build()?;
    let auth = format!("Token {token}");
    let mut next = Some(format!("{url}/api/v2/deployments/?limit=100"));
    let mut active = Vec::new();
    while let Some(page_url) = next {
        let page: serde_json::Value = client
            .get(&page_url)
            .header("Authorization", &auth)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for d in page["data"].as_array().context("no data")? {
            if d["status"] == "active" {
                active.push(d["id"].as_str().context("no id")?.to_string());
            }
        }
        next = page["next"].as_str().map(str::to_string);
    }
    let mut failed = 0;
    for id in active {
        let answer = client
            .patch(format!("{url}/api/v2/deployments/{id}/status/"))
            .header("Authorization", &auth)
            .json(&serde_json::json!({"status": "inactive"}))
            .send()
            .await?;
        if answer.status() != reqwest::StatusCode::ACCEPTED {
            failed += 1;
        }
    }
    Ok(failed)
}

/// A rustls configuration trusting the fake's CA (the baseline shares nothing with the plugin).
fn mlbackup_helper_free_tls(ca_pem: &str) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// One `kubectl-mlbackup deployments deactivate` run.
struct Deactivate<'a> {
    plugin: &'a Path,
    fake: &'a FakeDataRobot,
    ca_file: &'a Path,
    state: &'a Path,
    concurrency: usize,
    wait: bool,
    /// `--via pod` in the cluster of this kubeconfig; `--via local` when `None`.
    kubeconfig: Option<&'a Path>,
}

impl Deactivate<'_> {
    /// Runs it; returns the number of deployments that failed.
    fn run(&self) -> anyhow::Result<usize> {
        let mut command = Command::new(self.plugin);
        command
            .args(["deployments", "deactivate", "--yes", "-o", "json"])
            .arg("--state")
            .arg(self.state)
            .arg(format!("--concurrency={}", self.concurrency))
            .arg(format!("--wait={}", self.wait))
            .env_clear()
            .env("LRS_DATAROBOT_URL", self.fake.url())
            .env("LRS_DATAROBOT_API_TOKEN", self.fake.admin_token())
            .env("SSL_CERT_FILE", self.ca_file);
        match self.kubeconfig {
            Some(kubeconfig) => command
                .args(["--via", "pod"])
                .env("KUBECONFIG", kubeconfig)
                .env("DR_CORE_NAMESPACE", "dr-app"),
            None => command.args(["--via", "local"]),
        };
        let output = command.output()?;
        if !output.status.success() {
            bail!(
                "the plugin failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        Ok(report["summary"]["failed"].as_u64().unwrap_or(0) as usize)
    }
}

fn print_report(report: &Report) {
    println!(
        "Deactivating {} deployments on the fake DataRobot API, {} ms latency per request",
        report.deployments, report.latency_ms
    );
    println!(
        "{:<48} {:>9} {:>13} {:>9} {:>13} {:>10}",
        "", "wall", "first change", "changes", "max requests", "max jobs"
    );
    let row = |name: &str, m: &Measure| {
        println!(
            "{name:<48} {:>8.2}s {:>12.2}s {:>8.2}s {:>13} {:>10}",
            m.seconds,
            m.first_change_after,
            m.changes_span,
            m.max_in_flight_requests,
            m.max_in_flight_jobs
        );
    };
    row("(a) sequential, like the vendor tool", &report.baseline);
    row(
        &format!(
            "(b) deactivate --concurrency={} --wait=false",
            report.concurrency
        ),
        &report.no_wait,
    );
    row(
        &format!("(c) deactivate --concurrency={} --wait", report.concurrency),
        &report.wait,
    );
    if let Some(pod) = &report.pod {
        row("(d) (b) through the app pod (--via pod)", pod);
    }
    println!(
        "(b) is {:.1}x faster than (a): {:.0}% of the ideal {}x   [target: at least 80%]",
        report.speedup_no_wait,
        report.share_of_ideal_no_wait * 100.0,
        report.concurrency
    );
    println!(
        "(c) is {:.1}x faster than (a), and waits until every deployment is inactive",
        report.speedup_wait
    );
    if let Some(overhead) = report.pod_overhead_seconds {
        println!("(d) - (b): the pod path (upload and exec of the helper) costs {overhead:.2} s");
    }
    println!("every run changed each deployment exactly once, none failed");
}
