//! Every environment variable the plugin reads, in one place, read once at start.

use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;

/// `KUBECONFIG`: one or more kubeconfig files, separated like `PATH`.
pub const KUBECONFIG: &str = "KUBECONFIG";
/// `HOME`: where `~/.kube/config` is looked up.
pub const HOME: &str = "HOME";
/// `NO_COLOR`: any value turns colours off (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// `MLBACKUP_DIR`: the directory holding backups when `--dir` is not given.
pub const MLBACKUP_DIR: &str = "MLBACKUP_DIR";
/// `DR_CORE_NAMESPACE`: the namespace DataRobot is installed in (the runbook's variable).
pub const DR_CORE_NAMESPACE: &str = "DR_CORE_NAMESPACE";
/// `MLBACKUP_HELPER`: the helper binary to upload into the app pod, when `--helper` is not given.
pub const MLBACKUP_HELPER: &str = "MLBACKUP_HELPER";

/// `MLBACKUP_RECIPIENTS_FILE`: an age recipients file to encrypt backups to, when neither
/// `--recipient` nor `--recipients-file` is given.
pub const MLBACKUP_RECIPIENTS_FILE: &str = "MLBACKUP_RECIPIENTS_FILE";
/// `MLBACKUP_IDENTITY_FILE`: an age identity file to decrypt backups with, when `--identity` is
/// not given.
pub const MLBACKUP_IDENTITY_FILE: &str = "MLBACKUP_IDENTITY_FILE";
/// The standard AWS variables, read for `s3://` backup locations (`location::aws` says how):
/// endpoint, region, credentials, profile files, web identity of a pod, CA bundle.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
pub const AWS_ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const AWS_PROFILE: &str = "AWS_PROFILE";
pub const AWS_SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
pub const AWS_CONFIG_FILE: &str = "AWS_CONFIG_FILE";
pub const AWS_WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
pub const AWS_ROLE_ARN: &str = "AWS_ROLE_ARN";
pub const AWS_ROLE_SESSION_NAME: &str = "AWS_ROLE_SESSION_NAME";
pub const AWS_CA_BUNDLE: &str = "AWS_CA_BUNDLE";
pub const AWS_EC2_METADATA_DISABLED: &str = "AWS_EC2_METADATA_DISABLED";

/// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`: the API server, as the kubelet tells
/// every pod; with the service account's files, the in-cluster configuration used when no
/// kubeconfig is found (as kubectl does).
pub const KUBERNETES_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
pub const KUBERNETES_SERVICE_PORT: &str = "KUBERNETES_SERVICE_PORT";
/// `POD_NAMESPACE`: the namespace of the in-cluster configuration, before the service
/// account's `namespace` file (as client-go reads it).
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
/// `HOSTNAME`: in a pod, the pod's name; names the holder of a scheduled run's lock.
pub const HOSTNAME: &str = "HOSTNAME";
/// `MLBACKUP_TEST_SERVICE_ACCOUNT_DIR`: FOR TESTS ONLY. Where the in-cluster configuration reads
/// the service account's `token`, `ca.crt` and `namespace` instead of
/// `/var/run/secrets/kubernetes.io/serviceaccount`, so that a test can run the plugin as in a
/// pod without root. Not documented for users.
pub const MLBACKUP_TEST_SERVICE_ACCOUNT_DIR: &str = "MLBACKUP_TEST_SERVICE_ACCOUNT_DIR";

/// `HTTPS_PROXY`, else `https_proxy`: the proxy for an `https://` API server whose kubeconfig
/// entry has no `proxy-url` (as kubectl reads it).
pub const HTTPS_PROXY: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
/// `HTTP_PROXY`, else `http_proxy`: the same for an `http://` API server.
pub const HTTP_PROXY: [&str; 2] = ["HTTP_PROXY", "http_proxy"];
/// `NO_PROXY`, else `no_proxy`: API servers reached without the proxy of the two above.
pub const NO_PROXY: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// `LRS_DATAROBOT_URL`, else `DATAROBOT_ENDPOINT`: the DataRobot app URL or API endpoint.
pub use mlbackup_helper::api::{URL_VAR as LRS_DATAROBOT_URL, URL_VAR_ALT as DATAROBOT_ENDPOINT};
/// `LRS_DATAROBOT_API_TOKEN`, else `DATAROBOT_API_TOKEN`: the DataRobot API token.
pub use mlbackup_helper::secret::{
    TOKEN_VAR as LRS_DATAROBOT_API_TOKEN, TOKEN_VAR_ALT as DATAROBOT_API_TOKEN,
};
/// `SSL_CERT_FILE`: extra CA certificates (PEM) to trust for the DataRobot API.
pub use mlbackup_helper::tls::CA_FILE_VAR as SSL_CERT_FILE;

/// What the process environment says, captured once so the rest of the code is testable.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub kubeconfig: Option<OsString>,
    pub home: Option<PathBuf>,
    pub no_color: bool,
    pub stderr_is_terminal: bool,
    pub mlbackup_dir: Option<PathBuf>,
    /// Whether a confirmation question can be asked (and answered).
    pub stdin_is_terminal: bool,
    pub mlbackup_helper: Option<PathBuf>,
    /// [`DR_CORE_NAMESPACE`].
    pub dr_core_namespace: Option<String>,
    /// This program's own path as the OS reports it (the helpers are looked up beside it).
    pub current_exe: Option<PathBuf>,
    /// [`LRS_DATAROBOT_URL`], else [`DATAROBOT_ENDPOINT`].
    pub datarobot_url: Option<String>,
    /// [`LRS_DATAROBOT_API_TOKEN`] and [`DATAROBOT_API_TOKEN`] (Debug shows no value).
    pub datarobot_token: mlbackup_helper::secret::TokenVars,
    /// [`SSL_CERT_FILE`].
    pub ssl_cert_file: Option<PathBuf>,
    /// [`HTTPS_PROXY`], [`HTTP_PROXY`] and [`NO_PROXY`].
    pub proxy: ProxyVars,
    /// [`MLBACKUP_RECIPIENTS_FILE`].
    pub recipients_file: Option<PathBuf>,
    /// [`MLBACKUP_IDENTITY_FILE`].
    pub identity_file: Option<PathBuf>,
    /// The `AWS_*` variables above (Debug shows no secret).
    pub aws: AwsVars,
    /// The variables of the in-cluster configuration.
    pub in_cluster: InClusterVars,
}

/// What a pod's environment says about its cluster (empty counts as unset).
#[derive(Debug, Clone, Default)]
pub struct InClusterVars {
    /// [`KUBERNETES_SERVICE_HOST`].
    pub host: Option<String>,
    /// [`KUBERNETES_SERVICE_PORT`].
    pub port: Option<String>,
    /// [`POD_NAMESPACE`].
    pub pod_namespace: Option<String>,
    /// [`HOSTNAME`].
    pub hostname: Option<String>,
    /// [`MLBACKUP_TEST_SERVICE_ACCOUNT_DIR`] (tests only).
    pub service_account_dir: Option<PathBuf>,
}

impl InClusterVars {
    pub fn from_process() -> InClusterVars {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        InClusterVars {
            host: var(KUBERNETES_SERVICE_HOST),
            port: var(KUBERNETES_SERVICE_PORT),
            pod_namespace: var(POD_NAMESPACE),
            hostname: var(HOSTNAME),
            service_account_dir: std::env::var_os(MLBACKUP_TEST_SERVICE_ACCOUNT_DIR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// A secret value: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The AWS variables, as the process had them at start (empty counts as unset).
#[derive(Debug, Clone, Default)]
pub struct AwsVars {
    pub endpoint_url: Option<String>,
    pub endpoint_url_s3: Option<String>,
    pub endpoint_url_sts: Option<String>,
    pub region: Option<String>,
    pub default_region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub profile: Option<String>,
    pub shared_credentials_file: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    pub web_identity_token_file: Option<PathBuf>,
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub ca_bundle: Option<PathBuf>,
    pub ec2_metadata_disabled: bool,
}

impl AwsVars {
    pub fn from_process() -> AwsVars {
        let text = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        AwsVars {
            endpoint_url: text(AWS_ENDPOINT_URL),
            endpoint_url_s3: text(AWS_ENDPOINT_URL_S3),
            endpoint_url_sts: text(AWS_ENDPOINT_URL_STS),
            region: text(AWS_REGION),
            default_region: text(AWS_DEFAULT_REGION),
            access_key_id: text(AWS_ACCESS_KEY_ID),
            secret_access_key: text(AWS_SECRET_ACCESS_KEY).map(Secret),
            session_token: text(AWS_SESSION_TOKEN).map(Secret),
            profile: text(AWS_PROFILE),
            shared_credentials_file: path(AWS_SHARED_CREDENTIALS_FILE),
            config_file: path(AWS_CONFIG_FILE),
            web_identity_token_file: path(AWS_WEB_IDENTITY_TOKEN_FILE),
            role_arn: text(AWS_ROLE_ARN),
            role_session_name: text(AWS_ROLE_SESSION_NAME),
            ca_bundle: path(AWS_CA_BUNDLE),
            ec2_metadata_disabled: text(AWS_EC2_METADATA_DISABLED)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }
}

/// The proxy variables, each the first of its two spellings that is set and not empty (Go's
/// `httpproxy.FromEnvironment`, which kubectl uses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyVars {
    pub https_proxy: Option<String>,
    pub http_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl ProxyVars {
    fn from_process() -> Self {
        let first = |names: [&str; 2]| {
            names
                .into_iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        };
        ProxyVars {
            https_proxy: first(HTTPS_PROXY),
            http_proxy: first(HTTP_PROXY),
            no_proxy: first(NO_PROXY),
        }
    }
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            kubeconfig: std::env::var_os(KUBECONFIG).filter(|v| !v.is_empty()),
            home: std::env::var_os(HOME)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            no_color: std::env::var_os(NO_COLOR).is_some_and(|v| !v.is_empty()),
            stderr_is_terminal: std::io::stderr().is_terminal(),
            mlbackup_dir: std::env::var_os(MLBACKUP_DIR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            stdin_is_terminal: std::io::stdin().is_terminal(),
            mlbackup_helper: std::env::var_os(MLBACKUP_HELPER)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            dr_core_namespace: std::env::var(DR_CORE_NAMESPACE)
                .ok()
                .filter(|v| !v.is_empty()),
            current_exe: std::env::current_exe().ok(),
            datarobot_url: [LRS_DATAROBOT_URL, DATAROBOT_ENDPOINT]
                .into_iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty())),
            datarobot_token: mlbackup_helper::secret::TokenVars::from_process(),
            ssl_cert_file: std::env::var_os(SSL_CERT_FILE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            proxy: ProxyVars::from_process(),
            recipients_file: std::env::var_os(MLBACKUP_RECIPIENTS_FILE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            identity_file: std::env::var_os(MLBACKUP_IDENTITY_FILE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            aws: AwsVars::from_process(),
            in_cluster: InClusterVars::from_process(),
        }
    }
}

/// The local time zone, for prune's calendar rules when `--time-zone` is not given: `TZ` (an
/// IANA name or a POSIX rule), else `/etc/localtime`, else UTC (as in a `FROM scratch` image),
/// read by jiff with the system's rules. Read when a command needs it, not at start: it may
/// read a file.
pub fn local_time_zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::system()
}
