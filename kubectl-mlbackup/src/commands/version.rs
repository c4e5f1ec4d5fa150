//! `version`: the plugin's version, the helper it would upload (path and version) and, when the
//! cluster answers, the API server's, with the context and namespace the plugin will act on.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::cli::{GlobalArgs, VersionArgs};
use crate::datarobot::helper_binary::{HelperSearch, host_arch};
use crate::env::Env;
use crate::exit::Exit;
use crate::printer::{Printer, Render};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionOutcome {
    pub client_version: ClientVersion,
    pub helper: HelperVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<ServerVersion>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    pub version: &'static str,
    pub platform: String,
}

/// The helper the plugin would upload into a pod of this machine's architecture.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelperVersion {
    /// `linux/<arch>`.
    pub platform: String,
    /// `None` when no helper was found (`problem` says where the plugin looked).
    pub path: Option<PathBuf>,
    /// The first line the helper prints for `--version`.
    pub version: Option<String>,
    /// Why there is no path or no version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerVersion {
    pub git_version: String,
    pub platform: String,
    pub server: String,
    pub context: Option<String>,
    pub namespace: String,
}

impl Render for VersionOutcome {
    fn render(&self) -> String {
        let mut text = format!("Plugin Version: v{}\n", self.client_version.version);
        let helper = &self.helper;
        text.push_str(&match (&helper.path, &helper.version) {
            (Some(path), Some(version)) => format!("Helper: {} ({version})\n", path.display()),
            (Some(path), None) => format!(
                "Helper: {} ({})\n",
                path.display(),
                helper.problem.as_deref().unwrap_or("version unknown")
            ),
            (None, _) => format!(
                "Helper: none for {}: {}\n",
                helper.platform,
                helper.problem.as_deref().unwrap_or("not found")
            ),
        });
        if let Some(server) = &self.server_version {
            text.push_str(&format!(
                "Server Version: {} ({})\n",
                server.git_version, server.server
            ));
            text.push_str(&format!(
                "Context: {} (namespace {})\n",
                server.context.as_deref().unwrap_or("in-cluster"),
                server.namespace
            ));
        }
        text
    }
}

/// Prints the client version even when the cluster cannot be reached; then the error follows
/// on stderr and the exit status is 1, as with `kubectl version`.
pub async fn run(
    global: &GlobalArgs,
    args: &VersionArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let client_version = ClientVersion {
        version: env!("CARGO_PKG_VERSION"),
        platform: format!("{}/{}", std::env::consts::OS, host_arch()),
    };
    let helper = helper_version(env).await;
    let server = if args.client {
        Ok(None)
    } else {
        server_version(global, env).await.map(Some)
    };
    let (server_version, failure) = match server {
        Ok(version) => (version, None),
        Err(err) => (None, Some(err)),
    };
    printer.data(&VersionOutcome {
        client_version,
        helper,
        server_version,
    })?;
    match failure {
        None => Ok(Exit::Success),
        Some(err) => Err(err),
    }
}

async fn server_version(global: &GlobalArgs, env: &Env) -> anyhow::Result<ServerVersion> {
    let cluster = super::connect(global, env).await?;
    let info = cluster
        .server_version()
        .await
        .context("cannot read the API server's version")?;
    Ok(ServerVersion {
        git_version: info.git_version,
        platform: info.platform,
        server: cluster.server_url,
        context: cluster.context,
        namespace: cluster.namespace,
    })
}

/// Finds the helper for this machine's architecture and asks it for its version. A missing or
/// broken helper is reported, not an error: `version` must work for a plugin installed without
/// helpers (`cargo install`), which only the deployment commands need.
async fn helper_version(env: &Env) -> HelperVersion {
    let arch = host_arch();
    let platform = format!("linux/{arch}");
    let path = match HelperSearch::new(None, env).locate(arch) {
        Ok(path) => path,
        Err(not_found) => {
            return HelperVersion {
                platform,
                path: None,
                version: None,
                problem: Some(not_found.to_string()),
            };
        }
    };
    let (version, problem) = match run_version(&path).await {
        Ok(version) => (Some(version), None),
        Err(problem) => (None, Some(problem)),
    };
    HelperVersion {
        platform,
        path: Some(path),
        version,
        problem,
    }
}

/// `helper --version`'s first line; a helper that hangs is given up after a few seconds.
async fn run_version(path: &std::path::Path) -> Result<String, String> {
    let run = tokio::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(Duration::from_secs(5), run).await {
        Err(_) => return Err("no answer to --version within 5s".to_string()),
        Ok(Err(err)) => return Err(format!("cannot run it here: {err}")),
        Ok(Ok(output)) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().next().map(str::trim) {
        Some(line) if output.status.success() && !line.is_empty() => Ok(line.to_string()),
        _ => Err(format!("--version failed ({})", output.status)),
    }
}
