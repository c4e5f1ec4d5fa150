//! The in-cluster configuration, as kubectl (client-go) makes it when no kubeconfig is found:
//! the API server from `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`, and the service
//! account the kubelet mounts into the pod (bearer token, CA, namespace), as a kubeconfig made
//! in memory so that everything after loading stays the same.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use kube::config::{AuthInfo, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

use crate::env::InClusterVars;

/// Where the kubelet mounts the service account's files.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The name of the context, cluster and user of the kubeconfig made here.
const NAME: &str = "in-cluster";

/// The service account's directory (overridden by tests only, see `env`).
fn service_account_dir(vars: &InClusterVars) -> PathBuf {
    vars.service_account_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR))
}

/// The service account's token file.
pub fn token_file(vars: &InClusterVars) -> PathBuf {
    service_account_dir(vars).join("token")
}

/// The in-cluster kubeconfig, or `None` when this is not a pod: as client-go decides it, both
/// variables must be set and the token file must exist.
pub fn kubeconfig(vars: &InClusterVars) -> Option<Kubeconfig> {
    let (host, port) = (vars.host.as_deref()?, vars.port.as_deref()?);
    let dir = service_account_dir(vars);
    let token = token_file(vars);
    if !token.is_file() {
        return None;
    }
    let ca = dir.join("ca.crt");
    // The token file, not its text: kube reads it again as the kubelet rotates it (projected
    // tokens live an hour).
    let cluster = kube::config::Cluster {
        server: Some(server_url(host, port)),
        certificate_authority: ca.is_file().then(|| path_text(&ca)),
        ..Default::default()
    };
    let user = AuthInfo {
        token_file: Some(path_text(&token)),
        ..Default::default()
    };
    let namespace = vars.pod_namespace.clone().or_else(|| {
        std::fs::read_to_string(dir.join("namespace"))
            .ok()
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty())
    });
    Some(Kubeconfig {
        clusters: vec![NamedCluster {
            name: NAME.into(),
            cluster: Some(cluster),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: NAME.into(),
            auth_info: Some(user),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: NAME.into(),
            context: Some(Context {
                cluster: NAME.into(),
                user: Some(NAME.into()),
                namespace,
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(NAME.into()),
        ..Default::default()
    })
}

/// `https://HOST:PORT`, an IPv6 address in brackets (as client-go joins them).
fn server_url(host: &str, port: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("https://[{ip}]:{port}"),
        _ => format!("https://{host}:{port}"),
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(dir: &Path) -> InClusterVars {
        InClusterVars {
            host: Some("10.96.0.1".into()),
            port: Some("443".into()),
            pod_namespace: None,
            hostname: None,
            service_account_dir: Some(dir.to_path_buf()),
        }
    }

    #[test]
    fn a_pod_is_recognised_by_both_variables_and_the_token_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(kubeconfig(&vars(dir.path())).is_none(), "no token file");
        std::fs::write(dir.path().join("token"), "t").unwrap();
        assert!(kubeconfig(&vars(dir.path())).is_some());
        let without_port = InClusterVars {
            port: None,
            ..vars(dir.path())
        };
        assert!(kubeconfig(&without_port).is_none());
    }

    #[test]
    fn the_kubeconfig_names_the_files_and_the_namespace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "t").unwrap();
        std::fs::write(dir.path().join("namespace"), "mlbackup\n").unwrap();
        let config = kubeconfig(&vars(dir.path())).unwrap();
        let cluster = config.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.96.0.1:443"));
        assert_eq!(cluster.certificate_authority, None, "no ca.crt");
        let user = config.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token_file.as_deref(),
            Some(path_text(&dir.path().join("token")).as_str())
        );
        assert!(user.token.is_none(), "the file, not its text");
        let context = config.contexts[0].context.as_ref().unwrap();
        assert_eq!(context.namespace.as_deref(), Some("mlbackup"));
        // POD_NAMESPACE comes first, as in client-go.
        let config = kubeconfig(&InClusterVars {
            pod_namespace: Some("other".into()),
            ..vars(dir.path())
        })
        .unwrap();
        let context = config.contexts[0].context.as_ref().unwrap();
        assert_eq!(context.namespace.as_deref(), Some("other"));
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(server_url("fd00::1", "443"), "https://[fd00::1]:443");
        assert_eq!(
            server_url("kubernetes.default.svc", "6443"),
            "https://kubernetes.default.svc:6443"
        );
    }
}
