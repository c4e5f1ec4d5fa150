//! `version`: the plugin's version and, when the cluster answers, the API server's, with the
//! context and namespace the plugin will act on.

use anyhow::Context;
use serde::Serialize;

use crate::cli::{GlobalArgs, VersionArgs};
use crate::cluster::Cluster;
use crate::env::Env;
use crate::error::Exit;
use crate::printer::{Printer, Render};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionOutcome {
    pub client_version: ClientVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<ServerVersion>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    pub version: &'static str,
    pub platform: String,
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
        platform: format!("{}/{}", std::env::consts::OS, kubernetes_arch()),
    };
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
        server_version,
    })?;
    match failure {
        None => Ok(Exit::Success),
        Some(err) => Err(err),
    }
}

async fn server_version(global: &GlobalArgs, env: &Env) -> anyhow::Result<ServerVersion> {
    let cluster = Cluster::connect(global, env)
        .await
        .context("cannot connect to the cluster")?;
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

/// The architecture in Kubernetes' terms (`amd64`, `arm64`), as node labels and kubectl say it.
fn kubernetes_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
