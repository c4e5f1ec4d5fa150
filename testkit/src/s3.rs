//! A real S3 server for tests: the `s3s-fs` binary (installed by `.ci/run`), started on
//! 127.0.0.1 with its own directory, access key and secret key, and killed hard when dropped.
//!
//! s3s-fs keeps each bucket as a directory and each object as a file under it, so a test can
//! alter an object behind the server's back ([`S3Server::object_file`]).
//!
//! Clients talk to s3s-fs through a small front on 127.0.0.1 ([`S3Server::endpoint`]) that
//! makes it behave like real S3 where it does not: s3s-fs checks `If-None-Match: *` and then
//! writes, not atomically, so two create-only puts racing for one key could both succeed. Real
//! S3 lets exactly one win; the front serialises the writes (PUT, DELETE) of each key, so the
//! check and the write of one are never interleaved with another's, and a race test really
//! races. The front also carries the test kit's fault injection (a [`crate::faults::Gate`]
//! holds uploads in flight) and request log.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::Context;

/// The server's binary.
pub const BINARY: &str = "s3s-fs";
/// How to install it (later versions need a newer rustc than the project's).
pub const INSTALL: &str = "cargo install s3s-fs@0.14.1 --features binary --locked";
/// The bucket every server starts with.
pub const BUCKET: &str = "mlbackup-test";
/// What s3s-fs logs once it accepts connections (at `info`, hence `RUST_LOG` below).
const READY_MARK: &str = "server is running at ";

/// A running s3s-fs. Killed (SIGKILL) and its directory removed when dropped.
pub struct S3Server {
    child: Child,
    root: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`: the front (see the module's documentation).
    pub endpoint: String,
    /// Faults the front injects (for example a gate holding uploads).
    pub faults: crate::faults::Faults,
    /// The requests the front served.
    pub log: crate::faults::RequestLog,
    front: Option<tokio::runtime::Runtime>,
    /// A bucket that exists ([`BUCKET`]).
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Where the binary is: on `PATH`, else in `~/.cargo/bin` (where `cargo install` puts it).
pub fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(BINARY))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))?;
        Some(cargo_home.join("bin").join(BINARY)).filter(|p| p.is_file())
    })
}

impl S3Server {
    /// Starts a server for the test `test`, or returns `None` after printing why the test is
    /// skipped when the binary is missing. Under CI (`CI` set) a missing binary fails the test:
    /// `.ci/run` installs it, so missing means broken.
    pub fn start_or_skip(test: &str) -> Option<S3Server> {
        match find_binary() {
            Some(binary) => Some(
                S3Server::start(&binary)
                    .unwrap_or_else(|err| panic!("{test}: cannot start {BINARY}: {err:#}")),
            ),
            None if crate::tools::in_ci() => {
                panic!("{test}: {BINARY} is not installed (on PATH or in ~/.cargo/bin): {INSTALL}")
            }
            None => {
                eprintln!(
                    "skipping {test}: {BINARY} is not installed (on PATH or in ~/.cargo/bin); \
                     install it with `{INSTALL}`"
                );
                None
            }
        }
    }

    /// Starts `binary` on a free port of 127.0.0.1 with fresh keys and the bucket [`BUCKET`],
    /// and waits until it accepts connections.
    pub fn start(binary: &Path) -> anyhow::Result<S3Server> {
        let root = tempfile::Builder::new()
            .prefix("mlbackup-s3-")
            .tempdir()
            .context("cannot create the S3 server's directory")?;
        // A bucket of s3s-fs is a directory under its root.
        std::fs::create_dir(root.path().join(BUCKET)).context("cannot create the bucket")?;
        let access_key_id = format!(
            "MLBACKUPTEST{}",
            uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase()
        );
        let secret_access_key = format!("test-secret-{}", uuid::Uuid::new_v4().simple());
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .arg("--access-key")
            .arg(&access_key_id)
            // The server takes its keys only as arguments; they are the test's own.
            .arg("--secret-key")
            .arg(&secret_access_key)
            .arg(root.path())
            .env("RUST_LOG", "s3s_fs=info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        // No deadline: the server prints the line as soon as it listens, or exits (EOF).
        let endpoint = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some((_, url)) = line.split_once(READY_MARK) {
                        break url.trim().to_string();
                    }
                }
                Some(Err(err)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(err).context("cannot read the S3 server's output");
                }
                None => {
                    let status = child.wait()?;
                    let mut stderr = String::new();
                    if let Some(mut pipe) = child.stderr.take() {
                        let _ = pipe.read_to_string(&mut stderr);
                    }
                    anyhow::bail!("{BINARY} exited ({status}) before it was ready: {stderr}");
                }
            }
        };
        // Keep both pipes drained: a full pipe would stop the server mid-request.
        std::thread::spawn(move || lines.for_each(drop));
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || BufReader::new(stderr).lines().for_each(drop));
        }
        // Made before the front starts, so that a failure there kills s3s-fs (on drop).
        let mut server = S3Server {
            child,
            root,
            endpoint,
            faults: crate::faults::Faults::default(),
            log: crate::faults::RequestLog::default(),
            front: None,
            bucket: BUCKET.to_string(),
            access_key_id,
            secret_access_key,
        };
        let (front, endpoint) = start_front(&server.endpoint, &server.faults, &server.log)?;
        server.front = Some(front);
        server.endpoint = endpoint;
        Ok(server)
    }

    /// Creates another, empty bucket.
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        std::fs::create_dir(self.root.path().join(name))
            .with_context(|| format!("cannot create the bucket {name}"))
    }

    /// The file holding the object `key` of `bucket` on disk.
    pub fn object_file(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.path().join(bucket).join(key)
    }

    /// Kills the server now (the endpoint stops answering), keeping its directory.
    pub fn kill(&mut self) {
        if let Some(front) = self.front.take() {
            front.shutdown_background();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `https://` front of an [`S3Server`], with a certificate of a fresh test CA: for
/// `AWS_CA_BUNDLE`. Stops when dropped.
pub struct TlsFront {
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The CA that signed the front's certificate (PEM).
    pub ca_pem: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl S3Server {
    /// Starts a TLS front that forwards every connection to this server unchanged.
    pub fn tls_front(&self) -> anyhow::Result<TlsFront> {
        let pki = crate::tls::TestPki::generate()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config.clone());
        let backend = self.endpoint.trim_start_matches("http://").to_string();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        // Bound here, without `block_on`: the caller may be inside a runtime of its own.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("https://{}", listener.local_addr()?);
        runtime.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, backend) = (acceptor.clone(), backend.clone());
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(TlsFront {
            endpoint,
            ca_pem: pki.ca_pem,
            runtime: Some(runtime),
        })
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        // Without waiting: tests drop it from inside their own runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Hard: s3s-fs waits up to 10 s for open connections on a graceful stop.
        self.kill();
    }
}

/// The largest request body the front forwards.
const MAX_FORWARDED_BODY: usize = 1 << 30;

/// Starts the front of s3s-fs at `backend` on its own runtime (the caller may be inside one of
/// its own); returns the runtime and the front's endpoint.
fn start_front(
    backend: &str,
    faults: &crate::faults::Faults,
    log: &crate::faults::RequestLog,
) -> anyhow::Result<(tokio::runtime::Runtime, String)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("cannot build the front's client")?;
    let front = Front {
        backend: backend.to_string(),
        client,
        writes: Arc::default(),
    };
    let router = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let front = front.clone();
        async move { front.forward(req).await }
    });
    let options = crate::serve::ServerOptions {
        tls: None,
        faults: faults.clone(),
        log: log.clone(),
        error_body: Arc::new(|status, message| {
            let mut answer = axum::response::Response::new(axum::body::Body::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code>\
                 <Message>{message}</Message></Error>"
            )));
            *answer.status_mut() = status;
            answer
        }),
    };
    // Started on the front's runtime without `block_on` (the caller may be inside a runtime);
    // the server stops with the runtime.
    let (ready, started) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let bind = "127.0.0.1:0".parse().expect("an address");
        match crate::serve::serve(router, bind, options).await {
            Ok(server) => {
                let _ = ready.send(Ok(server.base_url()));
                let _server = server;
                std::future::pending::<()>().await;
            }
            Err(err) => {
                let _ = ready.send(Err(err));
            }
        }
    });
    let endpoint = started
        .recv()
        .context("the front's runtime stopped")?
        .context("cannot start the front")?;
    Ok((runtime, endpoint))
}

/// Headers of one connection, not of the request (the body is forwarded whole).
fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    name == http::header::TRANSFER_ENCODING || name == http::header::CONNECTION
}

/// Forwards requests to s3s-fs, the writes of one key one at a time.
#[derive(Clone)]
struct Front {
    backend: String,
    client: reqwest::Client,
    /// A lock per key being written.
    writes: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Front {
    async fn forward(&self, req: axum::extract::Request) -> axum::response::Response {
        let (parts, body) = req.into_parts();
        let is_write = parts.method == http::Method::PUT || parts.method == http::Method::DELETE;
        let lock = is_write.then(|| {
            let mut writes = self.writes.lock().expect("the lock is never poisoned");
            writes
                .entry(parts.uri.path().to_string())
                .or_default()
                .clone()
        });
        let _writing = match &lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let answer = async {
            let body = axum::body::to_bytes(body, MAX_FORWARDED_BODY).await?;
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut request = self
                .client
                .request(parts.method.clone(), format!("{}{path}", self.backend))
                .body(body);
            // Every header as sent, Host included: the signature covers it.
            for (name, value) in parts.headers.iter().filter(|(n, _)| !is_hop_by_hop(n)) {
                request = request.header(name, value);
            }
            let response = request.send().await?;
            let mut answer = axum::response::Response::builder().status(response.status());
            for (name, value) in response.headers().iter().filter(|(n, _)| !is_hop_by_hop(n)) {
                answer = answer.header(name, value);
            }
            let bytes = response.bytes().await?;
            Ok::<_, anyhow::Error>(answer.body(axum::body::Body::from(bytes))?)
        }
        .await;
        answer.unwrap_or_else(|err| {
            let mut answer =
                axum::response::Response::new(axum::body::Body::from(format!("front: {err:#}")));
            *answer.status_mut() = http::StatusCode::BAD_GATEWAY;
            answer
        })
    }
}
