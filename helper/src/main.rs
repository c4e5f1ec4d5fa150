//! `mlbackup-helper`: the static binary the plugin uploads into the DataRobot app pod, also
//! usable by hand.
//!
//! - `mlbackup-helper serve-request`: for the plugin. Writes `hello` on stdout, reads ONE JSON
//!   request line from stdin (never waiting for stdin to end), runs it and writes JSON Lines
//!   events (see `mlbackup_helper::protocol`), stopping early on a `cancel` control line or
//!   when stdin ends (the plugin is gone); logs on stderr.
//! - `mlbackup-helper list|deactivate|reactivate --api-url URL`: for a person in the pod, with
//!   the token from `LRS_DATAROBOT_API_TOKEN`/`DATAROBOT_API_TOKEN` or `--token-file`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use mlbackup_helper::api::{ApiUrl, URL_VAR, URL_VAR_ALT};
use mlbackup_helper::engine::{self, DEFAULT_CONCURRENCY, MAX_CONCURRENCY};
use mlbackup_helper::plan::{self, Action, StateFile};
use mlbackup_helper::protocol::{
    ChangeRequest, Control, Event, Operation, PROTOCOL_VERSION, Request, WireError,
};
use mlbackup_helper::secret::{self, ApiToken};
use mlbackup_helper::text::{escape_controls, escape_controls_keep_newlines};
use mlbackup_helper::tls::{CA_FILE_VAR, TlsOptions};
use tokio_util::sync::CancellationToken;

/// Bulk deactivate and reactivate DataRobot deployments, exactly: the states before are
/// recorded in a state file, and reactivate restores exactly those that were active.
#[derive(Debug, Parser)]
#[command(name = "mlbackup-helper", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the deployments visible to the token's user.
    List(Connection),
    /// Record the states of all deployments in --state FILE, then deactivate the active ones.
    Deactivate(ChangeArgs),
    /// Reactivate the deployments recorded active in --state FILE that are not active now.
    Reactivate(ChangeArgs),
    /// For the plugin: read one JSON request line on stdin, write JSON Lines events on stdout.
    #[command(hide = true)]
    ServeRequest,
}

#[derive(Debug, Args)]
struct Connection {
    /// The DataRobot app URL or API endpoint [default: $LRS_DATAROBOT_URL, else
    /// $DATAROBOT_ENDPOINT].
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// Read the API token from this file (else from $LRS_DATAROBOT_API_TOKEN or
    /// $DATAROBOT_API_TOKEN).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Also trust the CA certificates in this PEM file [default: $SSL_CERT_FILE].
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Do not check the server's certificate (anyone on the path can read the token).
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// Seconds one API request may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    request_timeout: f64,
    /// Log verbosity on stderr (1 steps, 6 every request).
    #[arg(short = 'v', long = "v", value_name = "LEVEL", default_value_t = 0)]
    verbosity: u8,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ChangeArgs {
    #[command(flatten)]
    connection: Connection,
    /// The state file: written before deactivating, read to reactivate.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["dry_run", "all"])]
    state: Option<PathBuf>,
    /// Only this deployment (repeatable).
    #[arg(long, value_name = "ID")]
    only: Vec<String>,
    /// Reactivate every inactive deployment, recorded or not (needs --yes).
    #[arg(long, requires = "yes", conflicts_with = "state")]
    all: bool,
    /// Confirm --all.
    #[arg(long)]
    yes: bool,
    /// Show what would change; change nothing (and write no state file).
    #[arg(long)]
    dry_run: bool,
    /// Deployments changed at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=MAX_CONCURRENCY as i64).map(usize::from))]
    concurrency: usize,
    /// Wait until each deployment has its new status.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    wait: bool,
    /// Seconds the whole change may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 900.0)]
    timeout: f64,
}

fn main() -> ExitCode {
    mlbackup_helper::tls::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let cancel = CancellationToken::new();
    let code = runtime.block_on(async {
        let watcher = cancel.clone();
        tokio::spawn(async move {
            stopped().await;
            watcher.cancel();
        });
        match cli.command {
            Command::ServeRequest => serve_request(&cancel).await,
            Command::List(connection) => by_hand(None, &connection, None, &cancel).await,
            Command::Deactivate(args) => {
                by_hand(
                    Some(Action::Deactivate),
                    &args.connection,
                    Some(&args),
                    &cancel,
                )
                .await
            }
            Command::Reactivate(args) => {
                by_hand(
                    Some(Action::Reactivate),
                    &args.connection,
                    Some(&args),
                    &cancel,
                )
                .await
            }
        }
    });
    // In-flight requests were finished; do not wait for anything else.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

/// SIGINT, SIGTERM or SIGHUP (a lost `kubectl exec` session).
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut streams = Vec::new();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        match signal(kind) {
            Ok(stream) => streams.push(stream),
            Err(err) => log_line(&format!("warning: cannot watch signal {kind:?}: {err}")),
        }
    }
    let waits = streams
        .iter_mut()
        .map(|s| Box::pin(async move { s.recv().await }));
    futures::future::select_all(waits).await;
}

fn log_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Writes one event as one line and flushes it, so the plugin sees progress as it happens.
fn write_event(event: &Event) {
    let mut line = serde_json::to_string(event).expect("events always serialise");
    line.push('\n');
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(line.as_bytes());
    let _ = stdout.flush();
}

async fn serve_request(cancel: &CancellationToken) -> u8 {
    write_event(&Event::hello());
    // One line, read on a blocking thread; stdin is never read to its end.
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await;
    let request = match line {
        Ok(Ok(line)) if !line.trim().is_empty() => serde_json::from_str::<Request>(&line)
            // serde's message may quote the offending input, which may be the token: say where.
            .map_err(|err| {
                format!(
                    "the request line is not a valid request (line {}, column {})",
                    err.line(),
                    err.column()
                )
            }),
        Ok(Ok(_)) => Err("stdin ended before the request line".to_string()),
        Ok(Err(err)) => Err(format!("cannot read the request line: {err}")),
        Err(err) => Err(format!("cannot read the request line: {err}")),
    };
    let request = match request {
        Ok(request) => request,
        Err(message) => {
            write_event(&Event::Error {
                error: WireError {
                    kind: mlbackup_helper::api::ErrorKind::Protocol,
                    message,
                    hint: None,
                },
            });
            return 1;
        }
    };
    init_logging(request.verbosity);
    watch_for_control(cancel.clone());
    let failed = std::sync::atomic::AtomicBool::new(false);
    engine::execute(request, cancel, &|event| {
        if matches!(event, Event::Error { .. }) {
            failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        write_event(&event);
    })
    .await;
    // The events carry the outcome; the exit code only says whether the request could run.
    if failed.load(std::sync::atomic::Ordering::SeqCst) {
        1
    } else {
        0
    }
}

/// Reads the lines the plugin may send after the request, on a thread of its own (stdin is
/// blocking): `cancel` stops the run as SIGINT does. The end of stdin changes nothing (the
/// plugin never closes it, and a request piped in by hand ends there).
fn watch_for_control(cancel: CancellationToken) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                // The plugin keeps stdin open for as long as it listens: its end means the
                // plugin is gone (killed, or its connection to the pod broke). A kubelet does
                // not stop the process then, so it stops itself: no change is made that no one
                // will see reported, and the token leaves the pod with it.
                Ok(0) | Err(_) => {
                    log::warn!("stdin ended: the plugin is gone; stopping");
                    cancel.cancel();
                    return;
                }
                Ok(_) if line.trim().is_empty() => {}
                Ok(_) => match serde_json::from_str::<Control>(&line) {
                    Ok(Control::Cancel) => {
                        log::info!("cancelled by the plugin");
                        cancel.cancel();
                    }
                    Err(_) => log::warn!("ignored a line on stdin that is not a control line"),
                },
            }
        }
    });
}

/// `list`, `deactivate`, `reactivate` for a person: the same steps the plugin takes.
async fn by_hand(
    action: Option<Action>,
    connection: &Connection,
    change: Option<&ChangeArgs>,
    cancel: &CancellationToken,
) -> u8 {
    init_logging(connection.verbosity);
    match run_by_hand(action, connection, change, cancel).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", escape_controls_keep_newlines(&err.message));
            if let Some(hint) = err.hint {
                eprintln!("hint: {}", escape_controls_keep_newlines(&hint));
            }
            if err.kind == mlbackup_helper::api::ErrorKind::Protocol {
                2
            } else {
                1
            }
        }
    }
}

async fn run_by_hand(
    action: Option<Action>,
    connection: &Connection,
    change: Option<&ChangeArgs>,
    cancel: &CancellationToken,
) -> Result<u8, WireError> {
    use mlbackup_helper::api::ErrorKind;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = connection
        .api_url
        .clone()
        .or_else(|| env(URL_VAR))
        .or_else(|| env(URL_VAR_ALT))
        .ok_or_else(|| WireError {
            kind: ErrorKind::Protocol,
            message: format!("no DataRobot URL: pass --api-url or set {URL_VAR}"),
            hint: None,
        })?;
    let api_url = ApiUrl::parse(&url).map_err(|e| WireError::from(&e))?;
    let token = ApiToken::from_file_or_env(connection.token_file.as_deref(), env)
        .map_err(|e| WireError::from_error(ErrorKind::Token, &e))?;
    if let Some(warning) = connection
        .token_file
        .as_deref()
        .and_then(secret::token_file_warning)
    {
        log_line(&format!("warning: {warning}"));
    }
    let ca_file = connection
        .ca_file
        .clone()
        .or_else(|| env(CA_FILE_VAR).map(PathBuf::from));
    let ca_pem = match ca_file {
        Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| WireError {
            kind: ErrorKind::Setup,
            message: format!("cannot read the CA file {}: {e}", path.display()),
            hint: None,
        })?),
        None => None,
    };
    let tls = TlsOptions {
        ca_pem,
        insecure_skip_tls_verify: connection.insecure_skip_tls_verify,
    };
    if let Some(warning) = mlbackup_helper::api::transport_warning(&api_url, &tls) {
        log_line(&format!("warning: {warning}"));
    }
    let request = |operation, list_timeout_seconds| Request {
        protocol_version: PROTOCOL_VERSION,
        api_url: api_url.clone(),
        token: token.clone(),
        tls: tls.clone(),
        request_timeout_seconds: connection.request_timeout,
        verbosity: connection.verbosity,
        list_timeout_seconds,
        operation,
    };
    // `--timeout` covers the whole change, the list before it included.
    let started = std::time::Instant::now();
    let list_timeout = change.map(|args| args.timeout);
    let deployments =
        match engine::final_event(request(Operation::List, list_timeout), cancel, &|_| {}).await {
            Event::Deployments { deployments } => deployments,
            Event::Error { error } => return Err(error),
            other => unreachable!("a list ends with deployments or an error, not {other:?}"),
        };
    let (Some(action), Some(args)) = (action, change) else {
        if connection.json {
            println!("{}", serde_json::to_string_pretty(&deployments).unwrap());
        } else {
            for d in &deployments {
                println!(
                    "{}  {:<9}  {}",
                    escape_controls(&d.id),
                    escape_controls(d.status.as_deref().unwrap_or("-")),
                    escape_controls(&d.label)
                );
            }
        }
        return Ok(0);
    };
    let state = match &args.state {
        Some(path) => StateFile::At(path),
        None => StateFile::None,
    };
    let prepared = plan::prepare(
        action,
        &deployments,
        state,
        args.all,
        &args.only,
        args.dry_run,
        api_url.as_url().as_str(),
    )
    .map_err(|e| WireError {
        hint: e.hint(),
        ..WireError::from_error(ErrorKind::Plan, &e)
    })?;
    let plan = prepared.plan;
    for item in &plan.set_aside {
        eprintln!(
            "{}  {}: {}",
            escape_controls(&item.id),
            item.outcome.as_str(),
            escape_controls(item.message.as_deref().unwrap_or_default())
        );
    }
    if args.dry_run {
        for change in &plan.changes {
            println!(
                "{}  would become {}  {}",
                escape_controls(&change.id),
                plan.target,
                escape_controls(&change.label)
            );
        }
        println!(
            "dry run: {} deployments would become {}, {} left alone",
            plan.changes.len(),
            plan.target,
            plan.left_alone
        );
        return Ok(0);
    }
    let total = plan.changes.len();
    let change_request = ChangeRequest {
        target: plan.target,
        deployments: plan.changes,
        concurrency: args.concurrency,
        wait: args.wait,
        // What the list left of it; never zero, which the engine reads as "no timeout".
        timeout_seconds: (args.timeout - started.elapsed().as_secs_f64()).max(0.001),
    };
    let show_progress = !connection.json;
    let report = match engine::final_event(
        request(Operation::Change(change_request), None),
        cancel,
        &|event| {
            if let (true, Event::Finished { item }) = (show_progress, event) {
                println!(
                    "{}  {}  {}{}",
                    escape_controls(&item.id),
                    item.outcome.as_str(),
                    escape_controls(&item.label),
                    item.message
                        .as_deref()
                        .map(|m| format!("  ({})", escape_controls(m)))
                        .unwrap_or_default()
                );
            }
        },
    )
    .await
    {
        Event::Report { report } => report,
        Event::Error { error } => return Err(error),
        other => unreachable!("a change ends with a report or an error, not {other:?}"),
    };
    if connection.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    } else {
        let counts: Vec<String> = report
            .counts()
            .iter()
            .map(|(outcome, n)| format!("{n} {}", outcome.as_str()))
            .collect();
        println!(
            "{} of {total} deployments to {}: {}",
            action.as_str(),
            report.target,
            counts.join(", ")
        );
        if report.incomplete() {
            println!("some deployments were not changed (see above); a re-run is safe");
        }
    }
    Ok(
        if report.stopped == Some(mlbackup_helper::protocol::StopReason::Interrupted) {
            130
        } else if report.incomplete() {
            1
        } else {
            0
        },
    )
}

/// The helper's own records (and its library's) on stderr at the request's verbosity.
fn init_logging(verbosity: u8) {
    mlbackup_helper::logging::init(verbosity, &["mlbackup_helper"]);
}
