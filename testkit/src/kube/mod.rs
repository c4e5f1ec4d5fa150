//! Fake Kubernetes API server: namespaces, pods (with exec and logs), deployments and
//! statefulsets (with `scale` and simulated controllers), service accounts, config maps, secrets,
//! RBAC cluster roles and bindings (enforced for service accounts), cron jobs and jobs (whose pods
//! run as local processes, `jobs`) and the LRS custom resource (with its operator's finalizer
//! handling simulated, validated against the schema of its stored CRD, `schema`), over TLS with a
//! bearer token, strict where the real kube-apiserver is strict; plus the seeding and inspection
//! API the sandbox and the tests use without HTTP.

pub mod access;
mod api;
mod controller;
mod discovery;
pub mod exec;
mod fields;
mod jobs;
mod numbers;
mod operator;
mod protobuf;
mod resources;
mod routes;
mod schema;
mod selector;
mod status;
mod store;
mod strategic;
mod watch;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use serde_json::{Value, json};

pub use self::controller::AppWorkload;
pub use self::operator::LRS_FINALIZER;
pub use self::resources::LRS_GROUP;
pub use self::status::ApiError;

use self::api::Cluster;
use self::resources::Catalog;
use crate::faults::{Faults, RequestLog};
use crate::serve::{RunningServer, ServerOptions, serve};
use crate::tls::TestPki;

/// How to start a fake cluster.
#[derive(Clone, Debug)]
pub struct FakeKubeOptions {
    /// Served as group `lrs.datarobot.com`, plural `lrs`, kind `LongRunningService`, namespaced.
    pub lrs_version: String,
    /// `false`: a cluster without the CRD (discovery lacks it, its URLs answer 404).
    pub serve_lrs: bool,
    pub tls: bool,
    /// The bearer token clients must send.
    pub token: String,
    /// The user name in 403 messages.
    pub user: String,
    /// Caps `limit` (and is the page size when no limit is asked) to force pagination.
    pub max_page_size: Option<usize>,
    /// Per-pod working directories for exec: `<pods_root>/<ns>/<pod>/`.
    pub pods_root: PathBuf,
    pub bind: SocketAddr,
    /// How long the simulated Deployment and StatefulSet controllers take to react to a change
    /// of `spec.replicas` (pods created or marked terminating, status updated), and how long a
    /// terminating pod takes to go.
    pub controller_delay: Duration,
    /// How long the simulated LRS operator takes to release its finalizer
    /// (`lrs.datarobot.com/cleanup`) from an LRS marked for deletion; `None`: no operator runs
    /// (the finalizer holds the LRS until someone removes it, as when the operator is down).
    pub lrs_operator_delay: Option<Duration>,
}

fn random_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Default for FakeKubeOptions {
    fn default() -> Self {
        FakeKubeOptions {
            lrs_version: "v1".into(),
            serve_lrs: true,
            tls: true,
            token: random_token(),
            user: "sandbox-admin".into(),
            max_page_size: None,
            pods_root: std::env::temp_dir().join("mlbackup-fake-pods"),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            controller_delay: Duration::from_millis(500),
            lrs_operator_delay: Some(Duration::from_millis(500)),
        }
    }
}

/// The state of a new cluster, with the namespaces every cluster has.
fn new_cluster(options: &FakeKubeOptions) -> Arc<Cluster> {
    let cluster = Arc::new(Cluster {
        catalog: Catalog::new(options.serve_lrs.then_some(options.lrs_version.as_str())),
        store: Mutex::default(),
        access: access::AccessRules::default(),
        token: options.token.clone(),
        user: options.user.clone(),
        max_page_size: Mutex::new(options.max_page_size),
        pods_root: options.pods_root.clone(),
        before_exec: Mutex::default(),
        service_account_tokens: Mutex::default(),
        images: Mutex::default(),
    });
    for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        cluster.create_namespace(namespace);
    }
    if options.serve_lrs {
        cluster
            .insert(lrs_definition(&options.lrs_version))
            .expect("the LRS definition is a valid object");
    }
    cluster
}

/// The CustomResourceDefinition that serves the LRS at `version`, as the LRS operator's chart
/// installs it (`lrs.lrs.datarobot.com`): the schema keeps unknown fields under `spec` and
/// `status`, as the operator's does.
pub fn lrs_definition(version: &str) -> Value {
    lrs_definition_with_spec(
        version,
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    )
}

/// The LRS definition with a typed `spec`, for tests of what the API server refuses and prunes:
/// `type` (required, one of the LRS types), `image` (a non-empty string), `replicas` (an
/// integer, at least 0); any other field of `spec` is unknown. Install it with
/// [`FakeKube::replace`] or `kubectl apply`.
pub fn typed_lrs_definition(version: &str) -> Value {
    lrs_definition_with_spec(
        version,
        json!({
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": [
                    "deployment", "spark_app", "custom_application", "custom_job", "model_workshop",
                ]},
                "image": {"type": "string", "minLength": 1},
                "replicas": {"type": "integer", "minimum": 0},
            },
        }),
    )
}

/// The LRS definition at `version` with `spec_schema` as the structural schema of `spec`
/// (`status` keeps unknown fields).
pub fn lrs_definition_with_spec(version: &str, spec_schema: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("lrs.{}", resources::LRS_GROUP)},
        "spec": {
            "group": resources::LRS_GROUP,
            "names": {
                "kind": "LongRunningService",
                "listKind": "LongRunningServiceList",
                "plural": "lrs",
                "singular": "longrunningservice",
            },
            "scope": "Namespaced",
            "versions": [{
                "name": version,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
        "status": {
            "acceptedNames": {"kind": "LongRunningService", "plural": "lrs"},
            "storedVersions": [version],
        },
    })
}

/// A running fake API server (stops when dropped).
pub struct FakeKube {
    cluster: Arc<Cluster>,
    server: RunningServer,
    ca_pem: Option<String>,
    tls: Option<Arc<rustls::ServerConfig>>,
    faults: Faults,
    requests: RequestLog,
    /// The simulated controllers (workloads, LRS operator), stopped with the server.
    controllers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        for controller in &self.controllers {
            controller.abort();
        }
    }
}

impl FakeKube {
    pub async fn start(options: FakeKubeOptions) -> anyhow::Result<FakeKube> {
        let cluster = new_cluster(&options);
        let pki = if options.tls {
            Some(TestPki::generate().context("generating the fake cluster's certificates")?)
        } else {
            None
        };
        let faults = Faults::default();
        let requests = RequestLog::default();
        // Discovery reports the address, which is known only once bound.
        let address = Arc::new(OnceLock::new());
        let router = routes::router(routes::RouterState {
            cluster: cluster.clone(),
            address: address.clone(),
        });
        let server = serve(
            router,
            options.bind,
            ServerOptions {
                tls: pki.as_ref().map(|p| p.server_config.clone()),
                faults: faults.clone(),
                log: requests.clone(),
                error_body: routes::error_renderer(),
            },
        )
        .await
        .context("binding the fake API server")?;
        let _ = address.set(server.addr().to_string());
        let mut controllers = vec![controller::spawn(cluster.clone(), options.controller_delay)];
        controllers.extend(jobs::spawn(
            cluster.clone(),
            jobs::KubeletConfig {
                server: server.base_url(),
                ca_pem: pki.as_ref().map(|p| p.ca_pem.clone()),
            },
        ));
        if let Some(delay) = options.lrs_operator_delay {
            controllers.push(operator::spawn(cluster.clone(), delay));
        }
        Ok(FakeKube {
            controllers,
            cluster,
            server,
            tls: pki.as_ref().map(|p| p.server_config.clone()),
            ca_pem: pki.map(|p| p.ca_pem),
            faults,
            requests,
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The server's TLS configuration (a certificate the kubeconfig's CA signed, valid for
    /// `localhost` and `127.0.0.1`), for a test service the same clients must trust, such as an
    /// `https://` proxy.
    pub fn tls_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    pub fn token(&self) -> &str {
        &self.cluster.token
    }

    /// A kubeconfig whose cluster, user and context are all named `context`, with the CA
    /// inline and the bearer token.
    pub fn kubeconfig_yaml(&self, context: &str, namespace: Option<&str>) -> String {
        let mut cluster = json!({"server": self.url()});
        if let Some(ca) = &self.ca_pem {
            cluster["certificate-authority-data"] = json!(STANDARD.encode(ca));
        }
        let mut context_entry = json!({"cluster": context, "user": context});
        if let Some(namespace) = namespace {
            context_entry["namespace"] = json!(namespace);
        }
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": {"token": self.token()}}],
            "contexts": [{"name": context, "context": context_entry}],
            "current-context": context,
            "preferences": {},
        });
        serde_yaml::to_string(&config).expect("a JSON value serialises as YAML")
    }

    /// Writes `kubeconfig_yaml` to `path`, readable by the owner only.
    pub fn write_kubeconfig(
        &self,
        path: &Path,
        context: &str,
        namespace: Option<&str>,
    ) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(self.kubeconfig_yaml(context, namespace).as_bytes())?;
        // `mode` applies only to new files.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
    }

    pub fn create_namespace(&self, name: &str) {
        self.cluster.create_namespace(name);
    }

    /// Stores an object of any served kind (`apiVersion` and `kind` decide) as the server would
    /// have created it (uid, resourceVersion, creationTimestamp unless given, generation),
    /// keeping `status` as given; creates its namespace if needed.
    pub fn insert(&self, object: Value) -> anyhow::Result<Value> {
        self.cluster.insert(object)
    }

    /// [`FakeKube::insert`], replacing the object of the same name if there is one (as a new
    /// object: new uid and resourceVersion). A replaced CustomResourceDefinition's schema is what
    /// its custom resources are validated against from then on (for example
    /// [`typed_lrs_definition`]).
    pub fn replace(&self, object: Value) -> anyhow::Result<Value> {
        self.cluster.replace(object)
    }

    /// An object by plural (`lrs`, `pods`, `deployments`, `namespaces`).
    pub fn get(&self, plural: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let resource = self.cluster.catalog.by_plural(plural)?;
        self.cluster.get(resource, namespace, name).ok()
    }

    /// The objects of a type, in one namespace or all, in key order.
    pub fn list(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let store = self.cluster.lock();
        store
            .objects(plural)
            .filter(|(key, _)| namespace.is_none_or(|ns| key.0 == ns))
            .map(|(_, object)| (**object).clone())
            .collect()
    }

    /// Removes an object at once, ignoring finalizers (simulates loss).
    pub fn remove(&self, plural: &str, namespace: Option<&str>, name: &str) -> bool {
        self.cluster
            .lock()
            .remove(plural, &store::key_of(namespace, name))
            .is_some()
    }

    /// An `apps/v1` Deployment `name` with `replicas` Running, Ready pods it owns, named like
    /// ReplicaSet pods (`NAME-<hash>-<5 chars>`), one container named after the app.
    pub fn add_app_deployment(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> anyhow::Result<()> {
        self.add_app_workload(&AppWorkload::deployment(namespace, name, replicas))
    }

    /// A Deployment or StatefulSet with its Running, Ready pods, as its controller would have
    /// left it.
    pub fn add_app_workload(&self, workload: &AppWorkload) -> anyhow::Result<()> {
        self.insert(workload.object())?;
        let key = store::key_of(Some(&workload.namespace), &workload.name);
        controller::reconcile(&self.cluster, workload.plural(), &key);
        Ok(())
    }

    /// Runs `hook` just before each command exec'd into a pod starts, with the pod and the
    /// command: lets a test act as another process of the pod would, at an exact moment.
    pub fn before_exec(&self, hook: impl Fn(&exec::ExecTarget, &[String]) + Send + Sync + 'static) {
        *self.cluster.before_exec.lock().unwrap() = exec::BeforeExec(Some(Arc::new(hook)));
    }

    /// Containers of `image` run `binary` (the image's entrypoint), as the sandbox's kubelet
    /// runs Jobs' pods.
    pub fn map_image(&self, image: &str, binary: &Path) {
        self.cluster
            .images
            .lock()
            .unwrap()
            .insert(image.to_string(), binary.to_path_buf());
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn requests(&self) -> &RequestLog {
        &self.requests
    }

    pub fn access(&self) -> &access::AccessRules {
        &self.cluster.access
    }

    pub fn set_max_page_size(&self, size: Option<usize>) {
        *self.cluster.max_page_size.lock().unwrap() = size;
    }

    /// Every outstanding continue token becomes stale (410 Expired), as after a compaction.
    pub fn expire_continue_tokens(&self) {
        self.cluster.lock().compact();
    }
}
