//! `--via pod`: runs the helper inside the DataRobot app pod, where the API is reachable. Checks
//! the permissions first, finds a ready pod, uploads the helper built for the pod's
//! architecture (reused when a previous run left it), and speaks the wire protocol over the
//! exec streams: the request on the first stdin line, JSON Lines events on stdout.

use std::path::PathBuf;

use mlbackup_helper::protocol::{Event, PROTOCOL_VERSION, Request};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::cli::{GlobalArgs, PodArgs};
use crate::cluster::Cluster;
use crate::cluster::pod::{self, AppPod, PodError};
use crate::env::Env;
use crate::helper_binary::{self, HelperNotFound};

/// The stem of the helper's file name in the pod (the content hash follows).
const REMOTE_STEM: &str = "mlbackup-helper";

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

    #[error("interrupted while the helper was running in the pod {pod}")]
    Interrupted { pod: String, seen: Vec<Event> },
}

impl InPodError {
    pub fn hint(&self) -> Option<String> {
        match self {
            InPodError::Pod(inner) => inner.hint(),
            InPodError::HelperNotFound(inner) => Some(inner.hint()),
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

/// The helper, uploaded into a pod and ready to take requests.
pub struct InPod {
    cluster: Cluster,
    pub pod: AppPod,
    pub helper_path: String,
    keep_helper: bool,
}

impl InPod {
    /// Finds the pod, checks the permissions and uploads the helper.
    pub async fn start(global: &GlobalArgs, args: &PodArgs, env: &Env) -> anyhow::Result<InPod> {
        use anyhow::Context;
        let cluster = Cluster::connect(global, env)
            .await
            .context("cannot connect to the cluster")?;
        let namespace = cluster.app_namespace(args.app_namespace.as_deref(), global, env);
        let place = format!("{} in the namespace `{namespace}`", args.app);
        pod::check_exec_permissions(&cluster, &namespace, &args.app)
            .await
            .map_err(InPodError::from)
            .with_context(|| format!("cannot run the helper in {place}"))?;
        let pod = pod::find_app_pod(&cluster, &namespace, &args.app, args.container.as_deref())
            .await
            .map_err(InPodError::from)
            .with_context(|| format!("cannot run the helper in {place}"))?;
        let arch = pod::architecture(&cluster, &pod)
            .await
            .map_err(InPodError::from)
            .with_context(|| format!("cannot learn the architecture of the pod {}", pod.name))?;
        let local = helper_binary::locate(args.helper.as_deref(), env, &arch)
            .map_err(InPodError::from)
            .context("cannot find the helper to run in the pod")?;
        let bytes = std::fs::read(&local).map_err(|source| InPodError::ReadHelper {
            path: local.clone(),
            source,
        })?;
        let uploaded = pod::upload_executable(&cluster, &pod, REMOTE_STEM, &bytes)
            .await
            .map_err(InPodError::from)
            .with_context(|| format!("cannot upload the helper into the pod {}", pod.name))?;
        log::info!(
            "helper {} {} in {}/{} (container {}, {arch})",
            uploaded.path,
            if uploaded.reused {
                "reused"
            } else {
                "uploaded"
            },
            pod.namespace,
            pod.name,
            pod.container
        );
        Ok(InPod {
            cluster,
            pod,
            helper_path: uploaded.path,
            keep_helper: args.keep_helper,
        })
    }

    /// Runs one request and returns its final event; progress events go to `progress` as they
    /// arrive. The helper's stderr is logged (shown with `-v`).
    pub async fn run(
        &self,
        request: &Request,
        cancel: &CancellationToken,
        progress: &(dyn Fn(&Event) + Sync),
    ) -> Result<Event, InPodError> {
        let mut process = pod::start(
            &self.cluster,
            &self.pod,
            &[&self.helper_path, "serve-request"],
        )
        .await?;
        let mut stdin = process.stdin().expect("stdin is attached");
        let stdout = process.stdout().expect("stdout is attached");
        let stderr = process.stderr().expect("stderr is attached");
        let status = process.take_status().expect("status is taken once");
        let logs = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log::info!("helper: {line}");
            }
        });
        let mut line = serde_json::to_vec(request).expect("requests serialise");
        line.push(b'\n');
        let broken = |detail: String, seen: Vec<Event>| InPodError::Broken {
            pod: self.pod.name.clone(),
            detail: Some(detail),
            seen,
        };
        // The request is the first and only line; stdin stays open (no end-of-file needed).
        if let Err(err) = async {
            stdin.write_all(&line).await?;
            stdin.flush().await
        }
        .await
        {
            return Err(broken(err.to_string(), Vec::new()));
        }

        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let mut hello = false;
        let final_event = loop {
            let next = tokio::select! {
                next = lines.next_line() => next,
                () = cancel.cancelled() => {
                    return Err(InPodError::Interrupted { pod: self.pod.name.clone(), seen });
                }
            };
            let text = match next {
                Ok(Some(text)) => text,
                Ok(None) => break None,
                Err(err) => return Err(broken(err.to_string(), seen)),
            };
            if text.trim().is_empty() {
                continue;
            }
            let event: Event =
                serde_json::from_str(&text).map_err(|_| InPodError::Garbled { line: text })?;
            match &event {
                Event::Hello {
                    protocol_version, ..
                } => {
                    if *protocol_version != PROTOCOL_VERSION {
                        return Err(InPodError::Protocol {
                            found: *protocol_version,
                        });
                    }
                    hello = true;
                }
                _ if !hello => {
                    return Err(InPodError::Garbled {
                        line: "events before the hello line".into(),
                    });
                }
                final_event if final_event.is_final() => break Some(event),
                _ => {
                    progress(&event);
                    seen.push(event);
                }
            }
        };
        let exit = status.await;
        drop(stdin);
        let _ = logs.await;
        match final_event {
            Some(event) => Ok(event),
            None => Err(InPodError::Broken {
                pod: self.pod.name.clone(),
                detail: exit.and_then(|s| s.message),
                seen,
            }),
        }
    }

    /// Removes the helper from the pod unless `--keep-helper`.
    pub async fn finish(self) {
        if !self.keep_helper {
            pod::remove_file(&self.cluster, &self.pod, &self.helper_path).await;
        }
    }
}
