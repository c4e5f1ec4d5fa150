//! Pod exec over WebSocket: the Kubernetes remote-command streaming protocol (`v5`, `v4` and
//! legacy `channel.k8s.io`) in front of a local process that stands in for the container.
//!
//! The session follows the real servers: on upgrade, an empty frame on the lowest writable
//! channel; stdout and stderr relayed as binary frames as soon as the process writes them; once
//! the process has exited and both pipes are drained, the status on the error channel, last;
//! then a WebSocket close (1000), after which the server waits for the client's close so that
//! nothing still in flight is cut off.
//!
//! When the client leaves while the command runs (a close frame, a broken connection, the
//! plugin killed), the command is not killed, as with a real kubelet and container runtime:
//! its stdin is closed (it reads end-of-file), what it still writes is drained and dropped, and
//! it runs until it ends on its own. Only a command still running [`ORPHAN_WAIT`] later is
//! killed with its process group, so that a test run leaves no process behind; that is logged
//! on stderr, as it means the command ignored the end of its stdin.
//!
//! `tty=true` runs the command without a terminal: stderr goes to the stdout channel (a
//! terminal merges them) and resize messages are ignored. Good enough for scripted use; an
//! interactive shell will not show a prompt.

mod protocol;

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

pub use protocol::{
    ExecOptions, ExecOptionsError, Outcome, StreamProtocol, UnsupportedProtocols, negotiate,
};

/// Where the command runs: the pod it stands for, and the pod's working directory (also
/// `HOME`; `TMPDIR` is its `tmp` subdirectory). Both are created when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub workdir: PathBuf,
    /// The container's `env` (literal values), set last as a container runtime sets the
    /// container's environment for an exec: a pod may have its own `PATH` or `TMPDIR`.
    pub env: Vec<(String, String)>,
    /// Run just before each command starts (for tests: another process of the pod acting at an
    /// exact moment).
    pub before_exec: BeforeExec,
}

/// A callback given the target and the command.
pub type ExecHook = Arc<dyn Fn(&ExecTarget, &[String]) + Send + Sync>;

/// The hook run before the command starts, if any.
#[derive(Clone, Default)]
pub struct BeforeExec(pub Option<ExecHook>);

impl std::fmt::Debug for BeforeExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "BeforeExec(set)"
        } else {
            "BeforeExec(none)"
        })
    }
}

impl PartialEq for BeforeExec {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for BeforeExec {}

/// Environment variables passed through from the server's own environment; everything else
/// is dropped, as a container does not see the operator's shell (tokens included).
/// `LLVM_PROFILE_FILE` lets coverage runs measure the uploaded helper too.
const INHERITED_ENV: [&str; 2] = ["PATH", "LLVM_PROFILE_FILE"];

/// Output read per frame. With `OUTGOING_FRAMES` queued at most, a session holds a bounded
/// amount of output in memory however fast the process writes and however slow the client.
const OUTPUT_CHUNK: usize = 32 * 1024;
const OUTGOING_FRAMES: usize = 16;

/// How long, after its close frame, the server waits for the client to read what is still in
/// flight and close. (The API server waits 15 minutes; tests need no such patience.)
const CLIENT_CLOSE_WAIT: Duration = Duration::from_secs(60);
/// How long a command may run on after its client left before the fake kills it (a kubelet
/// never does; see the module documentation).
pub const ORPHAN_WAIT: Duration = Duration::from_secs(120);

/// Upgrades to the k8s streaming protocol and runs the requested command as a local process.
pub async fn serve_exec(
    upgrade: WebSocketUpgrade,
    raw_query: Option<String>,
    target: ExecTarget,
) -> Response {
    let options = match ExecOptions::parse(raw_query.as_deref().unwrap_or_default()) {
        Ok(options) => options,
        Err(refusal) => return bad_request(&refusal.to_string()),
    };
    let offered: Vec<String> = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok().map(str::to_string))
        .collect();
    let protocol = match negotiate(&offered) {
        Ok(protocol) => protocol,
        // The Go WebSocket server refuses a handshake it cannot serve with a bare 403 and the
        // reason as text.
        Err(refusal) => return (StatusCode::FORBIDDEN, refusal.to_string()).into_response(),
    };
    // Echo the protocol only when the client named one: the legacy no-protocol handshake
    // answers without the header.
    let upgrade = if offered.iter().any(|p| p == protocol.name()) {
        upgrade.protocols([protocol.name()])
    } else {
        upgrade
    };
    upgrade.on_upgrade(move |socket| run_session(socket, protocol, options, target))
}

/// A 400 with a `Status` body, as the API server answers a request it cannot serve.
fn bad_request(message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    });
    (
        StatusCode::BAD_REQUEST,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// How the exchange with the client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Status and close frame queued: wait for the client's close.
    Completed,
    /// The client closed or the connection broke while the command ran (which then ran on
    /// with its stdin closed).
    ClientLeft,
}

async fn run_session(
    socket: WebSocket,
    protocol: StreamProtocol,
    options: ExecOptions,
    target: ExecTarget,
) {
    let (sink, mut incoming) = socket.split();
    let (frames, queue) = mpsc::channel(OUTGOING_FRAMES);
    let (_, ending) = tokio::join!(
        write_frames(sink, queue),
        exchange(&mut incoming, frames, protocol, &options, &target)
    );
    if ending == Ending::Completed {
        let _ = tokio::time::timeout(CLIENT_CLOSE_WAIT, discard_until_closed(&mut incoming)).await;
    }
}

/// The only writer of the socket: sends the queued frames in order until the queue closes.
async fn write_frames(mut sink: SplitSink<WebSocket, Message>, mut queue: mpsc::Receiver<Message>) {
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
    // Dropping the receiver makes every producer stop instead of blocking on a dead socket.
}

async fn exchange(
    incoming: &mut SplitStream<WebSocket>,
    frames: mpsc::Sender<Message>,
    protocol: StreamProtocol,
    options: &ExecOptions,
    target: &ExecTarget,
) -> Ending {
    // Tell the client the streams are ready, on the lowest channel it reads.
    let ready_channel = if options.stdout || options.tty {
        protocol::STDOUT
    } else if options.stderr {
        protocol::STDERR
    } else {
        protocol::ERROR
    };
    if send_frame(&frames, ready_channel, &[]).await.is_err() {
        return Ending::ClientLeft;
    }

    if let Some(hook) = target.before_exec.0.clone() {
        let (target, command) = (target.clone(), options.command.clone());
        let _ = tokio::task::spawn_blocking(move || hook(&target, &command)).await;
    }
    let mut child = match spawn(options, target) {
        Ok(child) => child,
        Err(error) => {
            let outcome = Outcome::NotStarted {
                exec_id: new_exec_id(),
                reason: start_failure_reason(&options.command[0], &error),
            };
            finish(&frames, protocol, &options.command, &outcome).await;
            return Ending::Completed;
        }
    };
    // Armed while the command runs: if this future is dropped (the server's runtime shuts
    // down) or the client leaves, the whole process tree goes.
    let mut killer = GroupKiller { group: child.id() };
    let (stdout_channel, stderr_channel) = if options.tty {
        (protocol::STDOUT, protocol::STDOUT)
    } else {
        (protocol::STDOUT, protocol::STDERR)
    };
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let exited = async {
        tokio::join!(
            relay_output(stdout, stdout_channel, &frames),
            relay_output(stderr, stderr_channel, &frames)
        );
        child.wait().await
    };
    let mut exited = std::pin::pin!(exited);
    let ended = tokio::select! {
        status = &mut exited => Some(status),
        // Returning drops the process's stdin: it reads end-of-file.
        () = relay_client(incoming, protocol, stdin) => None,
    };
    match ended {
        Some(status) => {
            // Ended on its own: like a container runtime, leave any background process it
            // started alone (and never signal a process group id that may have been reused).
            killer.disarm();
            let outcome = match status {
                Ok(status) => Outcome::Exited(exit_code(status)),
                Err(error) => Outcome::NotStarted {
                    exec_id: new_exec_id(),
                    reason: format!("wait: {error}"),
                },
            };
            finish(&frames, protocol, &options.command, &outcome).await;
            Ending::Completed
        }
        None => {
            // The client is gone; the command runs on (its output drained) as under a
            // kubelet, until it ends or ORPHAN_WAIT is over.
            match tokio::time::timeout(ORPHAN_WAIT, &mut exited).await {
                Ok(_) => killer.disarm(),
                Err(_) => eprintln!(
                    "fake exec: {:?} still ran {ORPHAN_WAIT:?} after its client left; killed",
                    options.command
                ),
            }
            Ending::ClientLeft
        }
    }
}

/// Queues the status (when the protocol writes one) and the normal close.
async fn finish(
    frames: &mpsc::Sender<Message>,
    protocol: StreamProtocol,
    command: &[String],
    outcome: &Outcome,
) {
    if let Some(payload) = protocol::error_channel_payload(protocol, command, outcome) {
        let _ = send_frame(frames, protocol::ERROR, &payload).await;
    }
    let _ = frames
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

async fn send_frame(
    frames: &mpsc::Sender<Message>,
    channel: u8,
    data: &[u8],
) -> Result<(), mpsc::error::SendError<Message>> {
    frames
        .send(Message::Binary(protocol::frame(channel, data).into()))
        .await
}

/// Copies one output pipe to the client as it is written, one frame per read.
async fn relay_output(
    pipe: Option<impl AsyncRead + Unpin>,
    channel: u8,
    frames: &mpsc::Sender<Message>,
) {
    let Some(mut pipe) = pipe else { return };
    let mut buffer = vec![0; OUTPUT_CHUNK];
    // Once the client is gone, output is read and dropped (as a container runtime does), so
    // that the process never blocks on a full pipe nor dies of SIGPIPE.
    let mut client_gone = false;
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                if !client_gone && send_frame(frames, channel, &buffer[..read]).await.is_err() {
                    client_gone = true;
                }
            }
        }
    }
}

/// Feeds the client's stdin frames to the process until the client goes away (close frame,
/// end of stream or a broken connection). The v5 CLOSE signal for stdin closes the pipe (the
/// process reads EOF); so does the end of this function. Writing to the pipe waits for the
/// process to read, which holds back the client: back-pressure, not buffering.
async fn relay_client(
    incoming: &mut SplitStream<WebSocket>,
    protocol: StreamProtocol,
    mut stdin: Option<ChildStdin>,
) {
    while let Some(Ok(message)) = incoming.next().await {
        match message {
            Message::Binary(data) => match protocol::parse_client_frame(protocol, &data) {
                protocol::ClientFrame::Stdin(bytes) => {
                    if let Some(pipe) = stdin.as_mut() {
                        // A process that closed its stdin gets no more; the rest is dropped.
                        if pipe.write_all(bytes).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                protocol::ClientFrame::CloseChannel(protocol::STDIN) => stdin = None,
                protocol::ClientFrame::CloseChannel(_)
                | protocol::ClientFrame::Resize(_)
                | protocol::ClientFrame::Ignored => {}
            },
            Message::Close(_) => return,
            // Pings are answered by the WebSocket layer; text frames mean nothing in the
            // binary protocols.
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => {}
        }
    }
}

/// After the server's close frame: reads (and drops) whatever the client still sends until
/// its close, so the connection ends cleanly.
async fn discard_until_closed(incoming: &mut SplitStream<WebSocket>) {
    while let Some(Ok(message)) = incoming.next().await {
        if matches!(message, Message::Close(_)) {
            return;
        }
    }
}

fn spawn(options: &ExecOptions, target: &ExecTarget) -> std::io::Result<Child> {
    let tmp = target.workdir.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let mut command = Command::new(&options.command[0]);
    command
        .args(&options.command[1..])
        .current_dir(&target.workdir)
        .env_clear()
        .envs(
            INHERITED_ENV
                .iter()
                .filter_map(|name| Some((name, std::env::var_os(name)?))),
        )
        .env("HOME", &target.workdir)
        .env("TMPDIR", &tmp)
        .env("HOSTNAME", &target.pod)
        .env("POD_NAMESPACE", &target.namespace)
        .envs(target.env.iter().map(|(name, value)| (name, value)))
        .stdin(piped_if(options.stdin))
        .stdout(piped_if(options.stdout))
        .stderr(piped_if(options.stderr || options.tty))
        // Its own process group, so that the whole tree can be killed when the client leaves
        // (`sh -c 'sleep 1000'` would otherwise leave the sleep running).
        .process_group(0)
        .kill_on_drop(true);
    command.spawn()
}

fn piped_if(wanted: bool) -> Stdio {
    if wanted {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

/// The runc wording for a process that could not start.
fn start_failure_reason(program: &str, error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound if program.contains('/') => {
            format!("exec: {program:?}: stat {program}: no such file or directory")
        }
        ErrorKind::NotFound => format!("exec: {program:?}: executable file not found in $PATH"),
        ErrorKind::PermissionDenied => format!("exec: {program:?}: permission denied"),
        _ => format!("exec: {program:?}: {error}"),
    }
}

/// A container runtime exec id: 64 hex digits.
fn new_exec_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(255)
}

/// Kills a command's process group when dropped, unless disarmed.
struct GroupKiller {
    group: Option<u32>,
}

impl GroupKiller {
    fn disarm(&mut self) {
        self.group = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            // Neither std nor tokio offers killpg without unsafe code; the kill utility does.
            // It is quick, and waiting for it keeps it from lingering as a zombie.
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{group}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
