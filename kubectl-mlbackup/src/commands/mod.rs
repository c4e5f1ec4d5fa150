//! One module per subcommand, each with the work function it runs (`prepare` and `recover` run
//! several: see `runbook`); here, what they share: connecting, reporting an outcome, Ctrl-C.
//! The hint registry for their errors is `diagnostics`; `main.rs` dispatches to them.

pub mod api_surface;
pub mod app;
pub mod backup;
pub mod copy;
pub mod delete;
pub mod deployments;
pub mod diagnostics;
pub mod diff;
pub mod keys;
pub mod list;
mod plan;
pub mod prune;
pub mod rekey;
#[cfg(test)]
mod render_tests;
pub mod restore;
pub mod runbook;
pub mod schedule;
pub mod show;
pub mod spark_cleanup;
pub mod verify;
pub mod version;

use anyhow::Context;
use mlbackup_helper::api::ApiUrl;
use mlbackup_helper::secret::ApiToken;
use mlbackup_helper::tls::TlsOptions;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{DataRobotArgs, GlobalArgs, Via};
use crate::cluster::Cluster;
use crate::cluster::list::ServedResource;
use crate::cluster::lrs::ResourceOverride;
use crate::datarobot::helper_binary::HelperSearch;
use crate::datarobot::in_pod::{InPod, PodOptions};
use crate::datarobot::{Api, DEFAULT_REQUEST_TIMEOUT_SECONDS, Route};
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::printer::{Printer, Render};

/// A client of the cluster the flags choose: made once, and handed to whatever the command
/// runs.
pub async fn connect(global: &GlobalArgs, env: &Env) -> anyhow::Result<Cluster> {
    Cluster::connect(&global.connect_options(), env)
        .await
        .context("cannot connect to the cluster")
}

/// A client of the cluster and its LRS resource type (found by discovery, or `--resource`):
/// what every command working on LRS objects starts with.
pub async fn connect_to_lrs(
    global: &GlobalArgs,
    env: &Env,
    resource: Option<&ResourceOverride>,
) -> anyhow::Result<(Cluster, ServedResource)> {
    let cluster = connect(global, env).await?;
    let resource = crate::cluster::lrs::resolve(&cluster, resource)
        .await
        .context("cannot find the LRS resource type")?;
    Ok((cluster, resource))
}

/// The DataRobot API as the flags and the environment say, everything that can be refused
/// checked before anything changes. `--via pod` starts the helper in the app pod of `cluster`
/// (connected here when the command has no cluster of its own).
pub async fn connect_to_datarobot(
    global: &GlobalArgs,
    args: &DataRobotArgs,
    cluster: Option<&Cluster>,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Api> {
    if args.refused_token.is_some() {
        return Err(UsageError {
            message: "the token is never taken from the command line: every user of this \
                      machine can read a process's arguments (ps, /proc, shell history)"
                .into(),
            hint: format!(
                "export {}=<API key> (or {}), or write it to a file only you can read and pass \
                 --token-file PATH",
                crate::env::LRS_DATAROBOT_API_TOKEN,
                crate::env::DATAROBOT_API_TOKEN
            ),
        }
        .into());
    }
    let url = args
        .api_url
        .clone()
        .or_else(|| env.datarobot_url.clone())
        .ok_or_else(|| UsageError {
            message: "no DataRobot API URL".into(),
            hint: format!(
                "pass --api-url https://datarobot.example.com or set {} (or {})",
                crate::env::LRS_DATAROBOT_URL,
                crate::env::DATAROBOT_ENDPOINT
            ),
        })?;
    let api_url = ApiUrl::parse(&url)?;
    let token = ApiToken::from_file_or_env(args.token_file.as_deref(), |name| {
        env.datarobot_token.get(name)
    })?;
    if let Some(warning) = args
        .token_file
        .as_deref()
        .and_then(mlbackup_helper::secret::token_file_warning)
    {
        printer.warning(&warning);
    }
    let ca_file = args.ca_file.clone().or_else(|| env.ssl_cert_file.clone());
    let ca_pem = match &ca_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CA file {}", path.display()))?,
        ),
        None => None,
    };
    let tls = TlsOptions {
        ca_pem,
        insecure_skip_tls_verify: args.insecure_skip_tls_verify,
    };
    // Said here once, wherever the requests run (the engine itself says nothing).
    if let Some(warning) = mlbackup_helper::api::transport_warning(&api_url, &tls) {
        printer.warning(&warning);
    }
    // Last: everything that can be refused locally is checked before the pod is touched.
    let route = match args.via {
        Via::Local => Route::Local,
        Via::Pod => {
            let connected;
            let cluster = match cluster {
                Some(cluster) => cluster,
                None => {
                    connected = connect(global, env).await?;
                    &connected
                }
            };
            let pod = &args.pod;
            let options = PodOptions {
                app: pod.app.clone(),
                namespace: cluster.app_namespace(pod.app_namespace.as_deref(), env),
                container: pod.container.clone(),
                helper: HelperSearch::new(pod.helper.as_deref(), env),
                keep_helper: pod.keep_helper,
            };
            let in_pod = InPod::start(cluster, &options).await?;
            if !in_pod.strangers.is_empty() {
                printer.warning(&format!(
                    "left alone: {} (labelled like {} in `{}` but not controlled by it; \
                     created by someone else?)",
                    in_pod.strangers.join(", "),
                    pod.app,
                    in_pod.pod.namespace
                ));
            }
            Route::Pod(Box::new(in_pod))
        }
    };
    Ok(Api {
        route,
        api_url,
        token,
        tls,
        request_timeout_seconds: global
            .request_timeout
            .map_or(DEFAULT_REQUEST_TIMEOUT_SECONDS, |t| t.as_secs_f64()),
        verbosity: global.verbosity,
    })
}

/// What a command's work function produced: the outcome to show, how the work ended, and an
/// error the outcome alone does not explain. The standalone commands print it with [`report`];
/// `prepare` and `recover` gather it into their own outcome.
pub struct Finished<T> {
    pub outcome: T,
    /// [`Exit::Success`], [`Exit::Failure`] (some items failed) or [`Exit::Interrupted`].
    pub exit: Exit,
    /// Shown after the outcome: why the work failed, or what an interruption left behind.
    pub error: Option<anyhow::Error>,
}

impl<T> Finished<T> {
    /// The work ended as `exit` with nothing more to say than its outcome.
    pub fn with(outcome: T, exit: Exit) -> Self {
        Finished {
            outcome,
            exit,
            error: None,
        }
    }
}

/// Prints a work function's outcome, then its error: an interruption keeps exit 130 (the error
/// says what it left behind), any other error exits as errors do.
pub fn report<T: Serialize + Render>(
    printer: &Printer,
    finished: Finished<T>,
) -> anyhow::Result<Exit> {
    printer.data(&finished.outcome)?;
    match (finished.error, finished.exit) {
        (Some(err), Exit::Interrupted) => {
            printer.error(&err);
            Ok(Exit::Interrupted)
        }
        (Some(err), _) => Err(err),
        (None, exit) => Ok(exit),
    }
}

/// Opens the backup location of `--dir`/`MLBACKUP_DIR` once for the command, showing what the
/// user should know about how it was opened.
pub fn open_store(
    backups: &crate::cli::BackupDirArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<crate::store::Store> {
    const CONTEXT: &str = "cannot open the backup location";
    let store = crate::store::Store::open(backups.dir.as_deref(), backups.read_only, env).map_err(
        |err| match (&err, err.hint()) {
            // A location that is no location is a usage error (exit 2).
            (crate::store::StoreError::Location(_), Some(hint)) => {
                anyhow::Error::new(err).context(crate::exit::UsageError {
                    message: CONTEXT.into(),
                    hint,
                })
            }
            _ => anyhow::Error::new(err).context(CONTEXT),
        },
    )?;
    for warning in &store.warnings {
        printer.warning(warning);
    }
    Ok(store)
}

/// The folder of a location, for what works on folders only so far (`prepare` and the
/// deployment snapshot of `deployments --backup`, which write into a backup while they change
/// the cluster: the snapshot must be durable before the first change, which a mirror of a
/// bucket's backup is not).
pub fn folder_only<'a>(
    store: &'a crate::store::Store,
    what: &str,
) -> anyhow::Result<&'a std::path::Path> {
    store.folder().ok_or_else(|| {
        crate::exit::UsageError {
            message: format!(
                "{what} works with a backup folder, not with {}",
                store.shown().display()
            ),
            hint: format!(
                "give {what} a folder with --dir, then copy the backup to the bucket with \
                 `kubectl mlbackup copy NAME --dir FOLDER --to {}`",
                store.shown().display()
            ),
        }
        .into()
    })
}

/// The process's Ctrl-C: cancelled on the first SIGINT. Set up by [`listen_for_interrupts`].
static INTERRUPT: std::sync::OnceLock<CancellationToken> = std::sync::OnceLock::new();

/// Set once a command watches [`INTERRUPT`] itself (it asked for [`interrupt_token`]).
static WATCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set while a command works synchronously (no await): the runtime cannot drop it at an await,
/// so a Ctrl-C ends the process as SIGINT did before (exit 130).
pub static SYNCHRONOUS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes over SIGINT for the whole command, before any work: the first Ctrl-C cancels the
/// [`interrupt_token`], the second ends the process at once (exit 130), whatever is still
/// being cleaned up.
pub fn listen_for_interrupts() -> CancellationToken {
    let cancel = INTERRUPT.get_or_init(CancellationToken::new).clone();
    let on_signal = cancel.clone();
    // Registered here, not in the task: a SIGINT that comes before the task first runs is
    // caught too.
    let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    tokio::spawn(async move {
        let Ok(mut signal) = signal else { return };
        if signal.recv().await.is_none() {
            return;
        }
        on_signal.cancel();
        if SYNCHRONOUS.load(std::sync::atomic::Ordering::SeqCst) {
            // Its files are written atomically and an interrupted delete is recognised: ending
            // here leaves nothing half-written.
            eprintln!("error: interrupted");
            std::process::exit(130);
        }
        if signal.recv().await.is_some() {
            // The user asked twice: stop waiting for what is still being wound down (a
            // cleanup in the pod, a helper's last report).
            eprintln!("error: interrupted again: stopped at once, without waiting for the cleanup");
            std::process::exit(130);
        }
    });
    cancel
}

/// Cancelled on SIGINT (Ctrl-C). Once asked for, SIGINT no longer ends the command: the work
/// watching it stops cleanly, records where it stopped, and exits 130. (Before, a Ctrl-C drops
/// the command's work: nothing was changed yet.)
pub fn interrupt_token() -> CancellationToken {
    WATCHED.store(true, std::sync::atomic::Ordering::SeqCst);
    INTERRUPT.get_or_init(CancellationToken::new).clone()
}

/// Ends when Ctrl-C comes before the command took over its handling: the work is dropped at
/// its next await (it changes nothing before it asks for the [`interrupt_token`]).
pub async fn interrupted_before_the_work(cancel: &CancellationToken) {
    cancel.cancelled().await;
    if WATCHED.load(std::sync::atomic::Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}

/// Says that `lock` replaced a stale one (a run stopped before it released its lock), whose
/// holder and lease it names.
pub fn warn_if_taken_over(
    printer: &Printer,
    store: &crate::store::Store,
    lock: &crate::store::Lock,
) {
    if let Some(old) = &lock.taken_over {
        printer.warning(&format!(
            "took over the lock of {} from `{}`, whose lease ended at {} (that run was stopped \
             before it could release it)",
            store.shown().display(),
            mlbackup_helper::text::escape_controls(&old.holder),
            crate::printer::time(old.lease_until),
        ));
    }
}
