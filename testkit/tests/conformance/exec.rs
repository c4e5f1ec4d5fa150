//! Pod exec over WebSocket against real clients: kube-rs `Api::<Pod>::exec`, the real `kubectl
//! exec`, and raw WebSocket handshakes for what those clients never send.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess};
use mlbackup_testkit::kube::exec::{ExecTarget, serve_exec};
use mlbackup_testkit::serve::{RunningServer, ServerOptions, serve};
use mlbackup_testkit::tls::{TestPki, install_crypto_provider};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

const NAMESPACE: &str = "dr-core";
const POD: &str = "mmapp-app-7d9f-x2k4q";
const CONTAINER: &str = "app";
const DEADLINE: Duration = Duration::from_secs(60);

/// A minimal API server: `GET pod` (kubectl reads it first) and `pods/{name}/exec`, each pod
/// running in `root/<namespace>/<pod>`.
struct ExecServer {
    server: RunningServer,
    root: tempfile::TempDir,
    ca_pem: Option<String>,
}

#[derive(Clone)]
struct Workdirs(Arc<PathBuf>);

impl ExecServer {
    async fn start(tls: bool) -> Self {
        install_crypto_provider();
        let root = tempfile::tempdir().unwrap();
        let router = Router::new()
            .route("/api", get(|| async { discovery(CORE_VERSIONS) }))
            .route("/apis", get(|| async { discovery(NO_GROUPS) }))
            .route("/api/v1", get(|| async { discovery(CORE_V1_RESOURCES) }))
            .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod))
            .route("/api/v1/namespaces/{ns}/pods/{name}/exec", get(exec))
            .with_state(Workdirs(Arc::new(root.path().to_path_buf())));
        let pki = tls.then(|| TestPki::generate().unwrap());
        let options = ServerOptions {
            tls: pki.as_ref().map(|pki| pki.server_config.clone()),
            faults: Default::default(),
            log: Default::default(),
            error_body: Arc::new(|status, message| (status, message.to_string()).into_response()),
        };
        let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = serve(router, bind, options).await.unwrap();
        ExecServer {
            server,
            root,
            ca_pem: pki.map(|pki| pki.ca_pem),
        }
    }

    fn workdir(&self, pod: &str) -> PathBuf {
        self.root.path().join(NAMESPACE).join(pod)
    }

    fn kubeconfig(&self) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD
            .encode(self.ca_pem.as_deref().expect("a TLS server"));
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: nobody\n  user:
    token: not-checked-here\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n    namespace: {NAMESPACE}\ncurrent-context: fake\n",
            url = self.server.base_url()
        )
    }

    async fn kube_client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    fn ws_url(&self, pod: &str, query: &str) -> String {
        format!(
            "ws://{}/api/v1/namespaces/{NAMESPACE}/pods/{pod}/exec?{query}",
            self.server.addr()
        )
    }
}

// kubectl resolves `exec POD` through discovery (legacy, non-aggregated answers suffice).
const CORE_VERSIONS: &str = r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:6443"}]}"#;
const NO_GROUPS: &str = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#;
const CORE_V1_RESOURCES: &str = r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},{"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]}]}"#;

fn discovery(body: &'static str) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn get_pod(UrlPath((ns, name)): UrlPath<(String, String)>) -> Response {
    axum::Json(serde_json::json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "uid": "5c4b0a3e-0000-4000-8000-000000000001"},
        "spec": {"containers": [{"name": CONTAINER, "image": "datarobot/mmapp:11"}]},
        "status": {"phase": "Running"},
    }))
    .into_response()
}

async fn exec(
    State(Workdirs(root)): State<Workdirs>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Response {
    let target = ExecTarget {
        workdir: root.join(&ns).join(&name),
        namespace: ns,
        pod: name,
        container: CONTAINER.to_string(),
        env: Vec::new(),
        before_exec: Default::default(),
    };
    serve_exec(upgrade, query, target).await
}

async fn read_all(reader: Option<impl AsyncRead + Unpin>) -> String {
    let mut text = String::new();
    if let Some(mut reader) = reader {
        reader.read_to_string(&mut text).await.unwrap();
    }
    text
}

/// Reads stdout and stderr to their ends while waiting for the status, as a client must (the
/// kube-rs buffers are small).
async fn outputs_and_status(
    process: &mut AttachedProcess,
) -> (
    String,
    String,
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Status,
) {
    let status = process.take_status().unwrap();
    let (stdout, stderr, status) = tokio::time::timeout(
        DEADLINE,
        futures::future::join3(
            read_all(process.stdout()),
            read_all(process.stderr()),
            status,
        ),
    )
    .await
    .expect("the exec session ends");
    (
        stdout,
        stderr,
        status.expect("a status on the error channel"),
    )
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

#[tokio::test]
async fn kube_rs_exec_relays_stdin_stdout_stderr_and_the_exit_code() {
    let server = ExecServer::start(true).await;
    let pods: Api<Pod> = Api::namespaced(server.kube_client().await, NAMESPACE);
    let mut process = pods
        .exec(
            POD,
            sh("cat; echo err >&2; exit 3"),
            &AttachParams::default().stdin(true).stderr(true),
        )
        .await
        .unwrap();
    let mut stdin = process.stdin().unwrap();
    stdin.write_all(b"hello\nworld\n").await.unwrap();
    // Shutting the writer down makes kube-rs send the v5 CLOSE signal for stdin: `cat` sees
    // EOF. (Only dropping it does not: the simplex pipe stays open.)
    stdin.shutdown().await.unwrap();
    let (stdout, stderr, status) = outputs_and_status(&mut process).await;
    assert_eq!(stdout, "hello\nworld\n");
    assert_eq!(stderr, "err\n");
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(
        status.message.as_deref(),
        Some("command terminated with non-zero exit code: command terminated with exit code 3")
    );
    let causes = status.details.unwrap().causes.unwrap();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason.as_deref(), Some("ExitCode"));
    assert_eq!(causes[0].message.as_deref(), Some("3"));
    process.join().await.unwrap();
}

#[tokio::test]
async fn kube_rs_exec_success_and_the_pod_environment() {
    let server = ExecServer::start(true).await;
    let pods: Api<Pod> = Api::namespaced(server.kube_client().await, NAMESPACE);
    let mut process = pods
        .exec(
            POD,
            sh(r#"pwd; echo "$HOME"; echo "$TMPDIR"; echo "$HOSTNAME $POD_NAMESPACE"; echo "${KUBECONFIG-unset}""#),
            &AttachParams::default(),
        )
        .await
        .unwrap();
    let (stdout, stderr, status) = outputs_and_status(&mut process).await;
    let workdir = server.workdir(POD);
    let workdir = workdir.canonicalize().unwrap();
    let workdir = workdir.display();
    assert_eq!(
        stdout,
        format!("{workdir}\n{workdir}\n{workdir}/tmp\n{POD} {NAMESPACE}\nunset\n")
    );
    assert_eq!(stderr, "");
    assert_eq!(status.status.as_deref(), Some("Success"));
    assert_eq!(status.reason, None);
    assert_eq!(status.details, None);
}

#[tokio::test]
async fn kube_rs_uploads_5_mib_through_stdin_without_closing_it() {
    const SIZE: usize = 5 * 1024 * 1024;
    let server = ExecServer::start(true).await;
    let pods: Api<Pod> = Api::namespaced(server.kube_client().await, NAMESPACE);
    let mut process = pods
        .exec(
            POD,
            sh(r#"head -c 5242880 > "$TMPDIR/blob"; wc -c < "$TMPDIR/blob""#),
            &AttachParams::default().stdin(true).stderr(true),
        )
        .await
        .unwrap();
    // Not a repeating short pattern, so that a lost or reordered chunk shows.
    let blob: Vec<u8> = (0..SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut stdin = process.stdin().unwrap();
    let upload = async {
        stdin.write_all(&blob).await.unwrap();
        stdin.flush().await.unwrap();
        // Keep stdin open: the helper upload must not depend on EOF.
        stdin
    };
    let (stdin, (stdout, stderr, status)) = tokio::time::timeout(
        DEADLINE,
        futures::future::join(upload, outputs_and_status(&mut process)),
    )
    .await
    .expect("the upload completes");
    assert_eq!(stdout.trim(), SIZE.to_string());
    assert_eq!(stderr, "");
    assert_eq!(status.status.as_deref(), Some("Success"));
    let written = std::fs::read(server.workdir(POD).join("tmp/blob")).unwrap();
    assert!(written == blob, "the uploaded bytes arrive intact");
    drop(stdin);
}

#[tokio::test]
async fn kube_rs_reads_5_mib_of_stdout_streamed_under_back_pressure() {
    let server = ExecServer::start(true).await;
    let pods: Api<Pod> = Api::namespaced(server.kube_client().await, NAMESPACE);
    let mut process = pods
        .exec(
            POD,
            sh("yes 0123456789abcdef | head -c 5242880; echo done >&2"),
            &AttachParams::default(),
        )
        .await
        .unwrap();
    let (stdout, stderr, status) = outputs_and_status(&mut process).await;
    assert_eq!(stdout.len(), 5 * 1024 * 1024);
    assert!(
        stdout
            .lines()
            .all(|line| line == "0123456789abcdef" || line.len() < 16)
    );
    assert_eq!(stderr, "done\n");
    assert_eq!(status.status.as_deref(), Some("Success"));
}

#[tokio::test]
async fn kube_rs_tty_runs_without_a_terminal_and_merges_stderr() {
    let server = ExecServer::start(true).await;
    let pods: Api<Pod> = Api::namespaced(server.kube_client().await, NAMESPACE);
    let mut process = pods
        .exec(
            POD,
            sh("echo out; sleep 0.1; echo err >&2; test -t 0 || echo no-terminal"),
            &AttachParams::interactive_tty(),
        )
        .await
        .unwrap();
    let mut stdin = process.stdin().unwrap();
    stdin.shutdown().await.unwrap();
    let (stdout, stderr, status) = outputs_and_status(&mut process).await;
    assert_eq!(stdout, "out\nerr\nno-terminal\n");
    assert_eq!(stderr, "");
    assert_eq!(status.status.as_deref(), Some("Success"));
}

#[tokio::test]
async fn concurrent_sessions_are_independent() {
    let server = ExecServer::start(true).await;
    let pods: Api<Pod> = Api::namespaced(server.kube_client().await, NAMESPACE);
    let sessions = (0..4).map(|i| {
        let pods = pods.clone();
        async move {
            let pod = format!("pod-{i}");
            let mut process = pods
                .exec(
                    &pod,
                    sh(&format!(
                        "read line; sleep 0.2; echo \"$line from $HOSTNAME\"; exit {i}"
                    )),
                    &AttachParams::default().stdin(true),
                )
                .await
                .unwrap();
            let mut stdin = process.stdin().unwrap();
            stdin
                .write_all(format!("hello {i}\n").as_bytes())
                .await
                .unwrap();
            let (stdout, _, status) = outputs_and_status(&mut process).await;
            (i, stdout, status)
        }
    });
    for (i, stdout, status) in futures::future::join_all(sessions).await {
        assert_eq!(stdout, format!("hello {i} from pod-{i}\n"));
        let expected = if i == 0 { "Success" } else { "Failure" };
        assert_eq!(status.status.as_deref(), Some(expected), "session {i}");
    }
}

/// As under a kubelet: a client that goes away does not stop the command; its stdin is
/// closed (it reads end-of-file) and what it still writes is dropped without SIGPIPE.
#[tokio::test]
async fn a_dropped_connection_closes_stdin_and_the_process_runs_on() {
    let server = ExecServer::start(true).await;
    let pods: Api<Pod> = Api::namespaced(server.kube_client().await, NAMESPACE);
    let mut process = pods
        .exec(
            POD,
            sh(r#"echo started; cat > /dev/null; echo "output no one reads"; echo eof > "$TMPDIR/after""#),
            &AttachParams::default().stdin(true),
        )
        .await
        .unwrap();
    let mut stdout = process.stdout().unwrap();
    let mut started = [0; 8];
    tokio::time::timeout(DEADLINE, stdout.read_exact(&mut started))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&started, b"started\n");
    let after = server.workdir(POD).join("tmp").join("after");
    assert!(!after.exists());
    // Aborts the client task: the TCP connection goes away without a close handshake.
    drop(stdout);
    drop(process);
    let ran_on = async {
        while !after.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), ran_on)
        .await
        .expect("the command read end-of-file and ran to its end");
}

// --- Raw protocol: what the clients above do not show. -----------------------------------------

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_connect(
    url: &str,
    protocols: Option<&str>,
) -> Result<(RawSocket, Option<String>), tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    if let Some(protocols) = protocols {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_string());
    Ok((socket, chosen))
}

/// Every message the server sends until it closes: binary frames, then the close code.
async fn raw_session(socket: &mut RawSocket) -> (Vec<Vec<u8>>, Option<CloseCode>) {
    let mut frames = Vec::new();
    let collect = async {
        while let Some(message) = socket.next().await {
            match message.unwrap() {
                Message::Binary(data) => frames.push(data.to_vec()),
                Message::Close(frame) => return frame.map(|f| f.code),
                other => panic!("unexpected message {other:?}"),
            }
        }
        None
    };
    let code = tokio::time::timeout(DEADLINE, collect).await.unwrap();
    (frames, code)
}

fn channel_text(frames: &[Vec<u8>], channel: u8) -> String {
    let bytes: Vec<u8> = frames
        .iter()
        .filter(|f| f.first() == Some(&channel))
        .flat_map(|f| f[1..].to_vec())
        .collect();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn raw_v5_ready_frame_first_status_last_then_normal_close() {
    let server = ExecServer::start(false).await;
    let url = server.ws_url(POD, "command=sh&command=-c&command=cat%3B+echo+e+%3E%262%3B+exit+7&stdin=true&stdout=true&stderr=true");
    let (mut socket, chosen) = raw_connect(&url, Some("v4.channel.k8s.io, v5.channel.k8s.io"))
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("v5.channel.k8s.io"));
    socket
        .send(Message::binary(b"\x00abc".to_vec()))
        .await
        .unwrap();
    socket.send(Message::binary(vec![255, 0])).await.unwrap();
    let (frames, close) = raw_session(&mut socket).await;
    assert_eq!(
        frames.first(),
        Some(&vec![1]),
        "an empty stdout frame announces the streams"
    );
    assert_eq!(channel_text(&frames, 1), "abc");
    assert_eq!(channel_text(&frames, 2), "e\n");
    let last = frames.last().unwrap();
    assert_eq!(last[0], 3, "the status comes last");
    assert_eq!(
        frames.iter().filter(|f| f[0] == 3).count(),
        1,
        "one status frame"
    );
    let status: serde_json::Value = serde_json::from_slice(&last[1..]).unwrap();
    assert_eq!(status["details"]["causes"][0]["message"], "7");
    assert_eq!(close, Some(CloseCode::Normal));
}

#[tokio::test]
async fn raw_v4_gets_the_kubelet_status_and_cannot_close_stdin_by_signal() {
    let server = ExecServer::start(false).await;
    let url = server.ws_url(POD, "command=sh&command=-c&command=exit+3&stdout=true");
    let (mut socket, chosen) = raw_connect(&url, Some("v4.channel.k8s.io")).await.unwrap();
    assert_eq!(chosen.as_deref(), Some("v4.channel.k8s.io"));
    let (frames, close) = raw_session(&mut socket).await;
    assert_eq!(
        channel_text(&frames, 3),
        r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
    );
    assert_eq!(close, Some(CloseCode::Normal));
}

#[tokio::test]
async fn raw_legacy_protocol_without_offer_writes_no_success_status() {
    let server = ExecServer::start(false).await;
    let url = server.ws_url(POD, "command=echo&command=hi&stdout=true");
    let (mut socket, chosen) = raw_connect(&url, None).await.unwrap();
    assert_eq!(chosen, None);
    let (frames, close) = raw_session(&mut socket).await;
    assert_eq!(channel_text(&frames, 1), "hi\n");
    assert_eq!(channel_text(&frames, 3), "");
    assert_eq!(close, Some(CloseCode::Normal));
}

#[tokio::test]
async fn raw_unknown_protocol_is_forbidden() {
    let server = ExecServer::start(false).await;
    let url = server.ws_url(POD, "command=echo&stdout=true");
    match raw_connect(&url, Some("v3.channel.k8s.io, base64.channel.k8s.io")).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(
                body.contains("requested protocol(s) are not supported"),
                "{body}"
            );
        }
        other => panic!("expected a 403, got {:?}", other.map(|(_, p)| p)),
    }
}

#[tokio::test]
async fn raw_missing_command_is_a_bad_request_status() {
    let server = ExecServer::start(false).await;
    let url = server.ws_url(POD, "stdout=true&stderr=true");
    match raw_connect(&url, Some("v5.channel.k8s.io")).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body: serde_json::Value =
                serde_json::from_slice(&response.body().clone().unwrap()).unwrap();
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["reason"], "BadRequest");
            assert_eq!(
                body["message"],
                "you must specify at least one command for the container"
            );
        }
        other => panic!("expected a 400, got {:?}", other.map(|(_, p)| p)),
    }
}

#[tokio::test]
async fn raw_command_not_found_is_an_internal_error_status() {
    let server = ExecServer::start(false).await;
    let url = server.ws_url(POD, "command=nope-not-installed&stdout=true&stderr=true");
    let (mut socket, _) = raw_connect(&url, Some("v5.channel.k8s.io")).await.unwrap();
    let (frames, close) = raw_session(&mut socket).await;
    let status: serde_json::Value = serde_json::from_str(&channel_text(&frames, 3)).unwrap();
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "InternalError");
    assert_eq!(status["code"], 500);
    let message = status["message"].as_str().unwrap();
    assert!(
        message.ends_with(
            r#"unable to start container process: exec: "nope-not-installed": executable file not found in $PATH: unknown"#
        ),
        "{message}"
    );
    assert_eq!(close, Some(CloseCode::Normal));
}

#[tokio::test]
async fn raw_output_streams_before_the_process_exits() {
    let server = ExecServer::start(false).await;
    let url = server.ws_url(
        POD,
        "command=sh&command=-c&command=echo+first%3B+read+x%3B+echo+second&stdin=true&stdout=true",
    );
    let (mut socket, _) = raw_connect(&url, Some("v5.channel.k8s.io")).await.unwrap();
    // The first line arrives while the process still waits for input.
    let first = tokio::time::timeout(DEADLINE, async {
        loop {
            let Message::Binary(data) = socket.next().await.unwrap().unwrap() else {
                continue;
            };
            if data.len() > 1 {
                return data.to_vec();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(first, b"\x01first\n");
    socket
        .send(Message::binary(b"\x00go\n".to_vec()))
        .await
        .unwrap();
    let (frames, close) = raw_session(&mut socket).await;
    assert_eq!(channel_text(&frames, 1), "second\n");
    assert_eq!(close, Some(CloseCode::Normal));
}

// --- The real kubectl. ------------------------------------------------------------------------

use mlbackup_testkit::tools::kubectl;

struct KubectlRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn kubectl_exec(server: &ExecServer, home: &Path, stdin: &[u8], args: &[&str]) -> KubectlRun {
    let kubeconfig = home.join("kubeconfig");
    std::fs::write(&kubeconfig, server.kubeconfig()).unwrap();
    let mut child = tokio::process::Command::new(kubectl())
        .arg("exec")
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("KUBECONFIG", &kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("kubectl finishes")
        .unwrap();
    KubectlRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn kubectl_exec_relays_streams_and_exits_with_the_command_code() {
    let server = ExecServer::start(true).await;
    let home = tempfile::tempdir().unwrap();
    let run = kubectl_exec(
        &server,
        home.path(),
        b"hello from stdin\n",
        &[
            POD,
            "-n",
            NAMESPACE,
            "-i",
            "--",
            "sh",
            "-c",
            "cat; echo err >&2; exit 3",
        ],
    )
    .await;
    assert_eq!(run.stdout, "hello from stdin\n", "stderr: {}", run.stderr);
    assert_eq!(
        run.stderr, "err\ncommand terminated with exit code 3\n",
        "kubectl reports the exit code"
    );
    assert_eq!(run.code, Some(3));

    let run = kubectl_exec(&server, home.path(), b"", &[POD, "--", "echo", "hi"]).await;
    assert_eq!(
        (run.stdout.as_str(), run.code),
        ("hi\n", Some(0)),
        "stderr: {}",
        run.stderr
    );
    assert_eq!(run.stderr, "");
}

#[tokio::test]
async fn kubectl_exec_of_a_missing_program_fails_like_containerd() {
    let server = ExecServer::start(true).await;
    let home = tempfile::tempdir().unwrap();
    let run = kubectl_exec(
        &server,
        home.path(),
        b"",
        &[POD, "--", "nope-not-installed"],
    )
    .await;
    assert_eq!(run.code, Some(1), "stderr: {}", run.stderr);
    assert!(
        run.stderr.starts_with("error: Internal error occurred: Internal error occurred: error executing command in container: failed to exec in container: failed to start exec \""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.ends_with(
            "exec: \"nope-not-installed\": executable file not found in $PATH: unknown\n"
        ),
        "{}",
        run.stderr
    );
}
