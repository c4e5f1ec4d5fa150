//! Access to the cluster: kubeconfig loading with kubectl's rules (in a pod without one, the
//! in-cluster configuration), the kube client, and the translation of API failures into errors
//! a user can act on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use crate::env::Env;

mod in_cluster;

/// The namespace whose uid identifies a cluster in a backup's manifest (`cluster.id`): it is
/// made with the cluster and lives as long as it.
pub const CLUSTER_ID_NAMESPACE: &str = "kube-system";

pub mod list;
pub mod lrs;
pub mod objects;
pub mod pod;
mod proxy;
pub mod surface;
mod transport;
pub mod workloads;

pub use transport::RetryPolicy;

/// The User-Agent of every request, so cluster admins can tell the plugin's traffic apart.
pub const USER_AGENT: &str = concat!("kubectl-mlbackup/", env!("CARGO_PKG_VERSION"));

/// The `details.causes[].reason` of the 403 the NamespaceLifecycle admission answers for a
/// create in a namespace that is being deleted.
const NAMESPACE_TERMINATING: &str = "NamespaceTerminating";

/// How long to wait for a TCP/TLS connection, whatever `--request-timeout` says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach the cluster: kubectl's flags, resolved once from the command line and handed
/// to [`Cluster::connect`].
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`: this file alone, instead of KUBECONFIG or ~/.kube/config.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// `-n`: the namespace to work in, instead of the context's.
    pub namespace: Option<String>,
    /// `--request-timeout`: zero means no limit.
    pub request_timeout: Option<Duration>,
}

/// A connected client and what the kubeconfig said about where it points.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub server_url: String,
    /// The kubeconfig context in use (`None` for an in-cluster config).
    pub context: Option<String>,
    /// The namespace to work in: `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// How requests that hit throttling or a server error are retried.
    pub retry: RetryPolicy,
    /// `-n` as given: it beats `DR_CORE_NAMESPACE` for [`Cluster::app_namespace`].
    namespace_flag: Option<String>,
}

/// A failure to reach or use the cluster, in the user's terms.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no kubeconfig found (looked at {looked})")]
    NoKubeconfig { looked: String },

    #[error("cannot read the kubeconfig `{}`", path.display())]
    ReadKubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },

    #[error("cannot use the kubeconfig")]
    UseKubeconfig(#[source] KubeconfigError),

    #[error(transparent)]
    Proxy(#[from] proxy::ProxyError),

    #[error("cannot set up the client for {url}")]
    Client {
        url: String,
        #[source]
        source: kube::Error,
    },

    #[error("cannot reach the cluster at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("the cluster at {url} rejected the credentials (401 Unauthorized)")]
    Unauthorized { url: String },

    #[error("{message}")]
    Forbidden { message: String, can_i: String },

    /// A 403 of the NamespaceLifecycle admission: nothing new can be created in a namespace
    /// that is being deleted. Not a permission problem.
    #[error("the namespace {namespace} is being deleted: {message}")]
    NamespaceTerminating { namespace: String, message: String },

    #[error("{message}")]
    NotFound { message: String },

    #[error("the LRS resource type `{resource}` is not served by this cluster ({detail})")]
    ResourceNotServed { resource: String, detail: String },

    /// A `continue` token went stale (410 Gone): the list must start again.
    #[error("the list changed too much while it was being read: {message}")]
    Expired { message: String },

    #[error("the API server answered {code} {reason}: {message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },

    #[error("unexpected answer from the API server at {url}")]
    Decode {
        url: String,
        #[source]
        source: kube::Error,
    },

    #[error(
        "the API server's answer to {request} is larger than {} MiB; it was not read",
        transport::MAX_ANSWER_BYTES >> 20
    )]
    TooLarge { request: String },

    /// A `continue` token came back that the list had already followed.
    #[error(
        "the API server's list of {resource} never ends: it handed back a `continue` token it \
         had already given"
    )]
    ListLoop { resource: String },
}

impl ClusterError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ClusterError::NoKubeconfig { .. } => {
                Some("point KUBECONFIG or --kubeconfig at a kubeconfig file, as for kubectl".into())
            }
            ClusterError::UseKubeconfig(KubeconfigError::ParseNoProxy(_)) => Some(
                "kubectl skips NO_PROXY entries it cannot read, this plugin cannot: remove empty \
                 or malformed entries from NO_PROXY (or no_proxy)"
                    .into(),
            ),
            ClusterError::ReadKubeconfig { .. } | ClusterError::UseKubeconfig(_) => {
                Some("check it with `kubectl config view`; pick a context with --context".into())
            }
            ClusterError::Proxy(_) => Some(
                "fix the cluster's proxy-url in the kubeconfig (`kubectl config view`) or \
                 HTTPS_PROXY; kubectl takes the same"
                    .into(),
            ),
            ClusterError::Unreachable { .. } => Some(
                "check that `kubectl cluster-info` works with the same context (VPN, proxy, \
                 cluster up?); use --context to pick another cluster"
                    .into(),
            ),
            ClusterError::Unauthorized { .. } => Some(
                "your credentials expired or are wrong: log in again (for example refresh the \
                 kubeconfig from your cloud provider) and check `kubectl get --raw /version`"
                    .into(),
            ),
            ClusterError::Forbidden { can_i, .. } => Some(format!(
                "ask a cluster admin for this permission; check it with `{can_i}`"
            )),
            ClusterError::NamespaceTerminating { namespace, .. } => Some(format!(
                "wait until it is gone (`kubectl get namespace {namespace}` answers NotFound), \
                 then create it again; or restore into another namespace with --namespace-map"
            )),
            ClusterError::ResourceNotServed { resource, .. } => Some(format!(
                "is the LRS operator installed in this cluster? Check with `kubectl get crd \
                 {resource}`; if the resource has another name or version here, pass --resource \
                 PLURAL.VERSION.GROUP"
            )),
            ClusterError::Expired { .. } => {
                Some("run the command again; it starts a fresh list".into())
            }
            ClusterError::TooLarge { .. } => Some(
                "if the objects really are that large, list fewer at once with --page-size".into(),
            ),
            ClusterError::Client { .. }
            | ClusterError::NotFound { .. }
            | ClusterError::Api { .. }
            | ClusterError::Decode { .. }
            | ClusterError::ListLoop { .. } => None,
        }
    }
}

/// Server text with its control characters (newlines included) escaped.
fn one_line(text: String) -> String {
    mlbackup_helper::text::escape_controls(&text).into_owned()
}

/// What a request was for, to name the missing permission when the server answers 403.
#[derive(Debug, Clone)]
pub struct RequestScope<'a> {
    pub verb: &'a str,
    /// `plural` or `plural.group`, as `kubectl auth can-i` takes it.
    pub resource: &'a str,
    /// `None` for all namespaces or cluster-scoped resources.
    pub namespace: Option<&'a str>,
}

impl RequestScope<'_> {
    fn can_i(&self) -> String {
        match self.namespace {
            Some(ns) => format!("kubectl auth can-i {} {} -n {ns}", self.verb, self.resource),
            None => format!(
                "kubectl auth can-i {} {} --all-namespaces",
                self.verb, self.resource
            ),
        }
    }
}

impl Cluster {
    /// Loads the kubeconfig like kubectl does (in a pod without one, the in-cluster
    /// configuration) and builds a client; does not contact the server.
    pub async fn connect(given: &ConnectOptions, env: &Env) -> Result<Cluster, ClusterError> {
        let (kubeconfig, in_cluster) = load_kubeconfig_or_in_cluster(given, env)?;
        let options = KubeConfigOptions {
            context: given.context.clone(),
            cluster: given.cluster.clone(),
            user: given.user.clone(),
        };
        let context = options
            .context
            .clone()
            .or_else(|| kubeconfig.current_context.clone())
            .filter(|_| !in_cluster);
        let kubeconfig_proxy = proxy_url_of(&kubeconfig, &options, context.as_deref());
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
        // kubectl's choice of proxy, not kube-rs's (which reads HTTPS_PROXY for any server,
        // loopback included, and matches NO_PROXY against the proxy instead of the server).
        config.proxy_url =
            match proxy::choose(kubeconfig_proxy.as_deref(), &config.cluster_url, &env.proxy)? {
                Some((url, source)) => {
                    log::debug!(
                        "reaching {} through the proxy {} ({source})",
                        config.cluster_url,
                        proxy::redacted(&url.to_string())
                    );
                    Some(url)
                }
                None => None,
            };
        if let Some(timeout) = given.request_timeout.filter(|t| !t.is_zero()) {
            config.read_timeout = Some(timeout);
            config.write_timeout = Some(timeout);
            config.connect_timeout = Some(timeout.min(CONNECT_TIMEOUT));
        } else if given.request_timeout.is_some() {
            // `--request-timeout 0` means no limit, as in kubectl.
            config.read_timeout = None;
            config.write_timeout = None;
        }
        // The plugin retries under its own policy (see `transport`): kube's default waits up
        // to minutes, which is wrong for a command an operator is watching.
        config.default_retry = false;
        config.headers.push((
            HeaderName::from_static("user-agent"),
            HeaderValue::from_static(USER_AGENT),
        ));
        let server_url = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let namespace = given
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|source| ClusterError::Client {
            url: server_url.clone(),
            source,
        })?;
        Ok(Cluster {
            client,
            server_url,
            context,
            namespace,
            retry: RetryPolicy::default(),
            namespace_flag: given.namespace.clone(),
        })
    }

    /// A request that could not be built (a name or parameter the URL cannot carry).
    pub fn build_error(&self, err: kube::core::request::Error) -> ClusterError {
        ClusterError::Client {
            url: self.server_url.clone(),
            source: kube::Error::BuildRequest(err),
        }
    }

    /// Turns a failed request into an error that says what went wrong in the user's terms.
    pub fn explain(&self, err: kube::Error, scope: Option<&RequestScope<'_>>) -> ClusterError {
        let url = self.server_url.clone();
        match err {
            kube::Error::Api(status) => self.explain_answer(*status, scope),
            kube::Error::HyperError(source) => ClusterError::Unreachable {
                url,
                source: Box::new(source),
            },
            kube::Error::Service(source) => ClusterError::Unreachable { url, source },
            kube::Error::Auth(source) => ClusterError::Unreachable {
                url,
                source: Box::new(source),
            },
            other => ClusterError::Decode { url, source: other },
        }
    }

    /// Explains an error answer from its status code and `Status` body (when it has one).
    pub fn explain_status(
        &self,
        status: http::StatusCode,
        body: &[u8],
        scope: Option<&RequestScope<'_>>,
    ) -> ClusterError {
        let mut parsed: kube::core::Status = serde_json::from_slice(body).unwrap_or_default();
        parsed.code = status.as_u16();
        if parsed.message.is_empty() {
            parsed.message = String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(300)
                .collect();
        }
        if parsed.reason.is_empty() {
            parsed.reason = status.canonical_reason().unwrap_or_default().to_string();
        }
        self.explain_answer(parsed, scope)
    }

    fn explain_answer(
        &self,
        status: kube::core::Status,
        scope: Option<&RequestScope<'_>>,
    ) -> ClusterError {
        let kube::core::Status {
            code,
            reason,
            message,
            details,
            ..
        } = status;
        let has_cause = |wanted: &str| {
            details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == wanted))
        };
        // The server's words become one line of the user's error: a newline in them must not
        // start a line of its own (the printer escapes the other control characters).
        let (reason, message) = (one_line(reason), one_line(message));
        match code {
            401 => ClusterError::Unauthorized {
                url: self.server_url.clone(),
            },
            403 if has_cause(NAMESPACE_TERMINATING) => ClusterError::NamespaceTerminating {
                namespace: scope
                    .and_then(|s| s.namespace)
                    .unwrap_or_default()
                    .to_string(),
                message,
            },
            403 => ClusterError::Forbidden {
                message,
                can_i: scope
                    .map(RequestScope::can_i)
                    .unwrap_or_else(|| "kubectl auth can-i --list".to_string()),
            },
            404 => ClusterError::NotFound { message },
            410 => ClusterError::Expired { message },
            _ => ClusterError::Api {
                code,
                reason,
                message,
            },
        }
    }

    /// The namespace DataRobot is installed in: `--app-namespace`, else `-n`, else
    /// `DR_CORE_NAMESPACE`, else the context's namespace (an explicit flag beats the
    /// environment, as everywhere in kubectl).
    pub fn app_namespace(&self, flag: Option<&str>, env: &Env) -> String {
        flag.map(str::to_string)
            .or_else(|| self.namespace_flag.clone())
            .or_else(|| env.dr_core_namespace.clone())
            .unwrap_or_else(|| self.namespace.clone())
    }

    /// The uid of the namespace `name` (`kube-system`'s identifies the cluster: it is made
    /// with the cluster and lives as long as it), `None` when there is no such namespace.
    pub async fn namespace_uid(&self, name: &str) -> Result<Option<String>, ClusterError> {
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(self.client.clone());
        let namespace = namespaces
            .get_opt(name)
            .await
            .map_err(|err| self.explain(err, None))?;
        Ok(namespace.and_then(|namespace| namespace.metadata.uid))
    }

    /// The name of every namespace (one paginated list of their metadata).
    pub async fn namespace_names(&self) -> Result<Vec<String>, ClusterError> {
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(self.client.clone());
        let mut names = Vec::new();
        let mut params = kube::api::ListParams::default().limit(500);
        let scope = RequestScope {
            verb: "list",
            resource: "namespaces",
            namespace: None,
        };
        loop {
            let page = namespaces
                .list_metadata(&params)
                .await
                .map_err(|err| self.explain(err, Some(&scope)))?;
            names.extend(page.items.into_iter().filter_map(|ns| ns.metadata.name));
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(names),
            }
        }
    }

    /// The API server's version (`GET /version`).
    pub async fn server_version(
        &self,
    ) -> Result<k8s_openapi::apimachinery::pkg::version::Info, ClusterError> {
        self.client
            .apiserver_version()
            .await
            .map_err(|err| self.explain(err, None))
    }
}

/// The `proxy-url` of the cluster the connection uses: `--cluster`, else the context's.
fn proxy_url_of(
    kubeconfig: &Kubeconfig,
    options: &KubeConfigOptions,
    context: Option<&str>,
) -> Option<String> {
    let cluster = options.cluster.clone().or_else(|| {
        kubeconfig
            .contexts
            .iter()
            .find(|c| Some(c.name.as_str()) == context)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
    })?;
    kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.proxy_url.clone())
}

impl From<KubeconfigError> for ClusterError {
    fn from(source: KubeconfigError) -> Self {
        ClusterError::UseKubeconfig(source)
    }
}

/// The kubeconfig ([`load_kubeconfig`]); when there is none and no context, cluster or user is
/// named, the in-cluster configuration of a pod, as kubectl falls back to it. True when it is
/// the in-cluster one.
fn load_kubeconfig_or_in_cluster(
    given: &ConnectOptions,
    env: &Env,
) -> Result<(Kubeconfig, bool), ClusterError> {
    match load_kubeconfig(given, env) {
        Err(ClusterError::NoKubeconfig { looked })
            if given.context.is_none() && given.cluster.is_none() && given.user.is_none() =>
        {
            match in_cluster::kubeconfig(&env.in_cluster) {
                Some(kubeconfig) => Ok((kubeconfig, true)),
                None if env.in_cluster.host.is_some() => Err(ClusterError::NoKubeconfig {
                    looked: format!(
                        "{looked}, and, as KUBERNETES_SERVICE_HOST is set, the in-cluster \
                         service account token {}",
                        in_cluster::token_file(&env.in_cluster).display()
                    ),
                }),
                None => Err(ClusterError::NoKubeconfig { looked }),
            }
        }
        other => other.map(|kubeconfig| (kubeconfig, false)),
    }
}

/// The kubeconfig files in kubectl's order of precedence: `--kubeconfig` alone (it must exist),
/// else every file of `KUBECONFIG` that exists, else `~/.kube/config`. Later files fill only
/// what earlier ones leave unset.
fn load_kubeconfig(given: &ConnectOptions, env: &Env) -> Result<Kubeconfig, ClusterError> {
    let read = |path: &Path| {
        Kubeconfig::read_from(path).map_err(|source| ClusterError::ReadKubeconfig {
            path: path.to_path_buf(),
            source,
        })
    };
    if let Some(path) = &given.kubeconfig {
        return read(path);
    }
    let candidates: Vec<PathBuf> = match &env.kubeconfig {
        Some(list) => std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => env
            .home
            .iter()
            .map(|home| home.join(".kube").join("config"))
            .collect(),
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in candidates.iter().filter(|p| p.exists()) {
        let next = read(path)?;
        merged = Some(match merged {
            Some(config) => config.merge(next).map_err(ClusterError::UseKubeconfig)?,
            None => next,
        });
    }
    merged.ok_or_else(|| ClusterError::NoKubeconfig {
        looked: if candidates.is_empty() {
            "KUBECONFIG and ~/.kube/config (HOME is not set)".to_string()
        } else {
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// A client for a kubeconfig file, for the tests of the modules that talk to a cluster.
#[cfg(test)]
pub mod testing {
    pub async fn connect(kubeconfig: &std::path::Path) -> super::Cluster {
        let options = super::ConnectOptions {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            ..Default::default()
        };
        super::Cluster::connect(&options, &crate::env::Env::default())
            .await
            .unwrap()
    }
}
