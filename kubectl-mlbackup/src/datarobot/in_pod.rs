//! `--via pod`: runs the helper inside the DataRobot app pod, where the API is reachable. Checks
//! the permissions first, finds a ready pod that the app Deployment controls, and for each
//! request uploads the helper built for the pod's architecture into a fresh directory only the
//! exec user can write, checks and runs it in the same shell command, waits for its hello line
//! and only then sends the request (token included) on stdin; JSON Lines events come back on
//! stdout. Ctrl-C is passed on to the helper, which finishes what is in flight and reports.

use std::path::PathBuf;
use std::time::Duration;

use mlbackup_helper::protocol::{Control, Event, PROTOCOL_VERSION, Request};
use rand::Rng;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::helper_binary::{HelperNotFound, HelperSearch};
use crate::cluster::Cluster;
use crate::cluster::pod::{self, AppPod, AppTarget, Executable, PodError, SETUP_PREFIX};

/// The helper's file name in its private directory in the pod.
const REMOTE_NAME: &str = "mlbackup-helper";

/// How long, beyond one API request's timeout, the helper may take to report after Ctrl-C
/// (it finishes the requests in flight) before the plugin stops waiting.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// How long the fallback removal of the private directory may take (a fresh exec) before the
/// plugin gives up on it: an interrupted run must end promptly.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the pod's stderr may still be read once the exec is over. Its pipe ends only when
/// kube's message loop ends normally: a loop that failed, or was aborted by dropping the
/// process, leaves the pipe open for ever (kube's simplex pipes do not close on drop).
const STDERR_DRAIN: Duration = Duration::from_secs(2);

/// The most lines of the pod's stderr kept to explain a helper that did not start.
const EARLY_STDERR_LINES: usize = 20;

/// Why the helper could not be run in the pod, or stopped answering.
#[derive(Debug, thiserror::Error)]
pub enum InPodError {
    #[error(transparent)]
    Pod(#[from] PodError),

    #[error(transparent)]
    HelperNotFound(#[from] HelperNotFound),

    #[error("cannot read the helper binary {}", path.display())]
    ReadHelper {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The upload command refused or failed before the helper said hello: nothing was sent.
    #[error("the helper did not start in the pod {pod}: {message}")]
    NotStarted { pod: String, message: String },

    #[error(
        "the helper in the pod speaks protocol version {found}; this plugin speaks {PROTOCOL_VERSION}"
    )]
    Protocol { found: u32 },

    #[error("the helper answered something that is not the wire protocol: {line:?}")]
    Garbled { line: String },

    /// The exec stream ended before the final event: the outcome of what was under way is
    /// unknown. `seen` holds the events that did arrive.
    #[error("the connection to the helper in the pod {pod} broke before it finished{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Broken {
        pod: String,
        detail: Option<String>,
        seen: Vec<Event>,
    },

    /// Ctrl-C, and the helper's final report did not come in time (or the stream broke).
    #[error("interrupted while the helper was running in the pod {pod}")]
    Interrupted { pod: String, seen: Vec<Event> },
}

impl InPodError {
    pub fn hint(&self) -> Option<String> {
        match self {
            InPodError::Pod(inner) => inner.hint(),
            InPodError::HelperNotFound(inner) => Some(inner.hint()),
            InPodError::NotStarted { .. } => Some(
                "the container needs `sh`, `mkdir`, `ls`, `id`, `head`, `wc` and `chmod`, and a \
                 writable TMPDIR (else /tmp); pick another one with --container, or use --via \
                 local"
                    .into(),
            ),
            InPodError::Protocol { .. } => Some(
                "a helper of another version is in the way: run with --helper PATH pointing at \
                 the mlbackup-helper that came with this plugin"
                    .into(),
            ),
            InPodError::Broken { .. } | InPodError::Interrupted { .. } => {
                Some("a re-run is safe: it changes only what is not yet in the target state".into())
            }
            InPodError::ReadHelper { .. } | InPodError::Garbled { .. } => None,
        }
    }
}

/// Where `--via pod` runs the helper, resolved from the flags and the environment.
#[derive(Debug, Clone)]
pub struct PodOptions {
    /// `deploy/NAME` (a ready pod it controls) or `pod/NAME`.
    pub app: AppTarget,
    /// The namespace DataRobot is installed in.
    pub namespace: String,
    /// `None`: the pod's default container, else its first.
    pub container: Option<String>,
    pub helper: HelperSearch,
    /// Leave this run's copy of the helper in the pod.
    pub keep_helper: bool,
}

/// The pod and the helper binary for it, ready to take requests.
pub struct InPod {
    cluster: Cluster,
    pub pod: AppPod,
    /// Pods with the app's labels that its Deployment does not control (left alone).
    pub strangers: Vec<String>,
    helper: Vec<u8>,
    sha256: String,
    keep_helper: bool,
}

impl InPod {
    /// Finds the pod, checks the permissions and reads the helper built for its architecture.
    pub async fn start(cluster: &Cluster, options: &PodOptions) -> anyhow::Result<InPod> {
        use anyhow::Context;
        let namespace = &options.namespace;
        let place = format!("{} in the namespace `{namespace}`", options.app);
        pod::check_exec_permissions(cluster, namespace, &options.app)
            .await
            .map_err(InPodError::from)
            .with_context(|| format!("cannot run the helper in {place}"))?;
        let found = pod::find_app_pod(
            cluster,
            namespace,
            &options.app,
            options.container.as_deref(),
        )
        .await
        .map_err(InPodError::from)
        .with_context(|| format!("cannot run the helper in {place}"))?;
        let pod = found.pod;
        let arch = pod::architecture(cluster, &pod)
            .await
            .map_err(InPodError::from)
            .with_context(|| format!("cannot learn the architecture of the pod {}", pod.name))?;
        let local = options
            .helper
            .locate(&arch)
            .map_err(InPodError::from)
            .context("cannot find the helper to run in the pod")?;
        let helper = std::fs::read(&local).map_err(|source| InPodError::ReadHelper {
            path: local.clone(),
            source,
        })?;
        log::info!(
            "helper {} for {}/{} (container {}, {arch})",
            local.display(),
            pod.namespace,
            pod.name,
            pod.container
        );
        Ok(InPod {
            cluster: cluster.clone(),
            pod,
            strangers: found.strangers,
            sha256: crate::folder::sha256_hex(&helper),
            helper,
            keep_helper: options.keep_helper,
        })
    }

    /// Runs one request and returns its final event; progress events go to `progress` as they
    /// arrive. The helper is uploaded afresh into a private directory, checked and run by one
    /// shell command; the request goes out only after the helper's hello line. On `cancel`
    /// the helper is told to stop and its final report (what it did) is still returned; the
    /// caller sees it as interrupted. The pod's stderr is logged (shown with `-v`).
    pub async fn run(
        &self,
        request: &Request,
        cancel: &CancellationToken,
        progress: &(dyn Fn(&Event) + Sync),
    ) -> Result<Event, InPodError> {
        let dir = format!("{REMOTE_NAME}-{:016x}", rand::rng().random::<u64>());
        let script = pod::upload_and_run(
            &dir,
            &Executable {
                name: REMOTE_NAME,
                size: self.helper.len(),
                sha256: &self.sha256,
                args: &["serve-request"],
            },
            self.keep_helper,
        );
        let mut process = pod::start(&self.cluster, &self.pod, &["sh", "-c", &script]).await?;
        let stdin = process.stdin().expect("stdin is attached");
        let stdout = process.stdout().expect("stdout is attached");
        let stderr = process.stderr().expect("stderr is attached");
        let status = process.take_status().expect("status is taken once");
        let early = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let logs = tokio::spawn({
            let early = early.clone();
            async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    log::info!("helper: {line}");
                    let mut early = early.lock().unwrap();
                    if early.len() < EARLY_STDERR_LINES {
                        early.push(line);
                    }
                }
            }
        });
        let session = Session {
            in_pod: self,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        let outcome = session.exchange(request, cancel, progress).await;
        let finished = match outcome {
            // The helper reported: its command ends by itself (the directory removed).
            Ok(event) => {
                let _ = tokio::time::timeout(CANCEL_GRACE, status).await;
                Ok(event)
            }
            Err(Failure::NoHello) => {
                let exit = tokio::time::timeout(CANCEL_GRACE, status)
                    .await
                    .ok()
                    .flatten();
                drain(logs, STDERR_DRAIN).await;
                let message = exit.as_ref().and_then(|s| s.message.as_deref());
                if message.is_some_and(|m| m.contains("executable file not found")) {
                    return Err(PodError::NoShell {
                        pod: self.pod.name.clone(),
                        container: self.pod.container.clone(),
                    }
                    .into());
                }
                let said: Vec<String> = early
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(|l| l.strip_prefix(SETUP_PREFIX).map(str::to_string))
                    .filter(|l| !l.starts_with("running "))
                    .collect();
                let message = if said.is_empty() {
                    let lines = early.lock().unwrap().join("; ");
                    match exit.and_then(|s| s.message) {
                        Some(status) if lines.is_empty() => status,
                        Some(status) => format!("{status}: {lines}"),
                        None if lines.is_empty() => "it ended without a word".to_string(),
                        None => lines,
                    }
                } else {
                    said.join("; ")
                };
                return Err(InPodError::NotStarted {
                    pod: self.pod.name.clone(),
                    message,
                });
            }
            Err(Failure::Error(err)) => {
                // The command may not get to its end (the connection is closed now): remove
                // what it uploaded, if it is still there.
                drop(process);
                if !self.keep_helper {
                    let removal =
                        pod::remove_private_dir(&self.cluster, &self.pod, &dir, REMOTE_NAME);
                    if tokio::time::timeout(CLEANUP_TIMEOUT, removal)
                        .await
                        .is_err()
                    {
                        log::warn!(
                            "could not remove {dir} from {}: no answer in {}s",
                            self.pod.name,
                            CLEANUP_TIMEOUT.as_secs()
                        );
                    }
                }
                // The process is gone, so its stderr never ends: what came was logged while
                // the directory was removed.
                drain(logs, Duration::ZERO).await;
                return Err(err);
            }
        };
        drain(logs, STDERR_DRAIN).await;
        finished
    }
}

/// Waits for the relay of the pod's stderr to log what is left, at most `wait`: its pipe may
/// never end (see [`STDERR_DRAIN`]).
async fn drain(logs: tokio::task::JoinHandle<()>, wait: Duration) {
    let abort = logs.abort_handle();
    if tokio::time::timeout(wait, logs).await.is_err() {
        abort.abort();
    }
}

/// Why an exchange ended without a final event.
enum Failure {
    /// The command ended before the helper's hello line: nothing was sent.
    NoHello,
    Error(InPodError),
}

impl From<InPodError> for Failure {
    fn from(err: InPodError) -> Self {
        Failure::Error(err)
    }
}

/// One request's streams.
struct Session<'a, W, R> {
    in_pod: &'a InPod,
    stdin: W,
    lines: tokio::io::Lines<BufReader<R>>,
}

impl<W, R> Session<'_, W, R>
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    fn pod(&self) -> String {
        self.in_pod.pod.name.clone()
    }

    fn broken(&self, detail: String, seen: Vec<Event>) -> InPodError {
        InPodError::Broken {
            pod: self.pod(),
            detail: Some(detail),
            seen,
        }
    }

    /// Uploads the helper, checks its hello, sends the request and reads events to the final
    /// one.
    async fn exchange(
        mut self,
        request: &Request,
        cancel: &CancellationToken,
        progress: &(dyn Fn(&Event) + Sync),
    ) -> Result<Event, Failure> {
        // The upload and the hello: the binary is written while the pod's answer is read (the
        // streams' buffers are small); the request waits for the hello.
        let upload = {
            let (stdin, helper) = (&mut self.stdin, &self.in_pod.helper);
            async move {
                stdin.write_all(helper).await?;
                stdin.flush().await
            }
        };
        let lines = &mut self.lines;
        let hello = async {
            loop {
                match lines.next_line().await {
                    Ok(Some(text)) if text.trim().is_empty() => continue,
                    other => return other,
                }
            }
        };
        let (uploaded, hello) = tokio::select! {
            both = async { tokio::join!(upload, hello) } => both,
            () = cancel.cancelled() => {
                return Err(InPodError::Interrupted { pod: self.pod(), seen: Vec::new() }.into());
            }
        };
        let hello = match hello {
            Ok(Some(text)) => text,
            Ok(None) => return Err(Failure::NoHello),
            Err(err) => return Err(self.broken(err.to_string(), Vec::new()).into()),
        };
        match serde_json::from_str::<Event>(&hello) {
            Ok(Event::Hello {
                protocol_version, ..
            }) if protocol_version == PROTOCOL_VERSION => {}
            Ok(Event::Hello {
                protocol_version, ..
            }) => {
                return Err(InPodError::Protocol {
                    found: protocol_version,
                }
                .into());
            }
            _ => return Err(InPodError::Garbled { line: hello }.into()),
        }
        if let Err(err) = uploaded {
            return Err(self.broken(err.to_string(), Vec::new()).into());
        }

        // The request is the first line after the binary; stdin stays open (no end-of-file
        // needed).
        self.send(request)
            .await
            .map_err(|err| self.broken(err.to_string(), Vec::new()))?;

        let mut seen = Vec::new();
        let mut give_up: Option<tokio::time::Instant> = None;
        let grace = Duration::try_from_secs_f64(request.request_timeout_seconds)
            .unwrap_or_default()
            .saturating_add(CANCEL_GRACE);
        loop {
            let next = tokio::select! {
                next = self.lines.next_line() => next,
                () = cancel.cancelled(), if give_up.is_none() => {
                    // Tell the helper; it finishes what is in flight and reports.
                    give_up = Some(tokio::time::Instant::now() + grace);
                    if self.send(&Control::Cancel).await.is_err() {
                        return Err(InPodError::Interrupted { pod: self.pod(), seen }.into());
                    }
                    continue;
                }
                () = tokio::time::sleep_until(give_up.unwrap_or_else(tokio::time::Instant::now)),
                    if give_up.is_some() => {
                    return Err(InPodError::Interrupted { pod: self.pod(), seen }.into());
                }
            };
            let text = match next {
                Ok(Some(text)) => text,
                Ok(None) if give_up.is_some() => {
                    return Err(InPodError::Interrupted {
                        pod: self.pod(),
                        seen,
                    }
                    .into());
                }
                Ok(None) => {
                    return Err(InPodError::Broken {
                        pod: self.pod(),
                        detail: None,
                        seen,
                    }
                    .into());
                }
                Err(err) => return Err(self.broken(err.to_string(), seen).into()),
            };
            if text.trim().is_empty() {
                continue;
            }
            let event: Event =
                serde_json::from_str(&text).map_err(|_| InPodError::Garbled { line: text })?;
            if event.is_final() {
                return Ok(event);
            }
            if matches!(event, Event::Hello { .. }) {
                return Err(InPodError::Garbled {
                    line: "a second hello line".into(),
                }
                .into());
            }
            progress(&event);
            seen.push(event);
        }
    }

    /// Writes one JSON line to the helper's stdin.
    async fn send(&mut self, message: &impl serde::Serialize) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(message).expect("requests serialise");
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await
    }
}
