//! The wire format of the remote-command streaming protocol: request options, subprotocol
//! choice, channel framing and the `Status` written on the error channel.

use std::fmt;

use serde_json::{Value, json};

/// Channel ids: the first byte of every binary frame.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// The error channel: one `Status` (v4, v5) or error text (v1) once the command is over.
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5 only: `[STREAM_CLOSE, id]` from the client half-closes channel `id` (EOF on stdin).
pub const STREAM_CLOSE: u8 = 255;

/// The binary subprotocols this server speaks. The base64 variants (`base64.channel.k8s.io`,
/// `v4.base64.channel.k8s.io`) are left out: neither kubectl nor kube-rs offers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamProtocol {
    /// `v5.channel.k8s.io`: v4 plus the CLOSE signal. Served by the API server itself (the
    /// stream translator), the only protocol kubectl's WebSocket executor offers.
    V5,
    /// `v4.channel.k8s.io`: a JSON `Status` on the error channel, success included.
    V4,
    /// `channel.k8s.io` (also chosen when the client names no protocol, as the kubelet does):
    /// the error channel carries only the error text of a failure.
    V1,
}

impl StreamProtocol {
    /// Server preference: v5 wins whenever offered, as on a real API server (it sends every
    /// request offering v5 to its translator, which speaks nothing else).
    pub const PREFERENCE: [StreamProtocol; 3] = [Self::V5, Self::V4, Self::V1];

    pub fn name(self) -> &'static str {
        match self {
            Self::V5 => "v5.channel.k8s.io",
            Self::V4 => "v4.channel.k8s.io",
            Self::V1 => "channel.k8s.io",
        }
    }

    pub fn supports_stream_close(self) -> bool {
        self == Self::V5
    }
}

/// The client offered subprotocols, none of which this server speaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requested protocol(s) are not supported: [{}]; supports [{}]", .requested.join(" "), supported_names())]
pub struct UnsupportedProtocols {
    pub requested: Vec<String>,
}

fn supported_names() -> String {
    StreamProtocol::PREFERENCE
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Picks the subprotocol for the offered ones (any order, empty entries ignored). No offer at
/// all means the legacy `channel.k8s.io`, as the kubelet's WebSocket server answers.
pub fn negotiate<S: AsRef<str>>(offered: &[S]) -> Result<StreamProtocol, UnsupportedProtocols> {
    let offered: Vec<&str> = offered
        .iter()
        .map(|p| p.as_ref().trim())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(StreamProtocol::V1);
    }
    StreamProtocol::PREFERENCE
        .into_iter()
        .find(|p| offered.contains(&p.name()))
        .ok_or_else(|| UnsupportedProtocols {
            requested: offered.iter().map(|p| p.to_string()).collect(),
        })
}

/// The query parameters of `pods/{name}/exec` (`PodExecOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub container: Option<String>,
}

/// Why an exec request is refused before the upgrade (answered with 400 and a `Status`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecOptionsError {
    #[error("you must specify at least one command for the container")]
    NoCommand,
    #[error("you must specify at least 1 of stdin, stdout, stderr")]
    NoStreams,
    #[error("invalid query string: {0}")]
    Malformed(String),
}

impl ExecOptions {
    /// Parses the raw query string (`command` repeated, values percent-encoded, `+` a space).
    /// Booleans follow the API server's query conversion: absent is false; present is true
    /// unless it reads `false` or `0`. With `tty`, stderr is merged into stdout, so it is
    /// dropped as the kubelet does.
    pub fn parse(raw_query: &str) -> Result<Self, ExecOptionsError> {
        let mut options = ExecOptions::default();
        let pairs = crate::query::strict_pairs(raw_query)
            .map_err(|err| ExecOptionsError::Malformed(err.to_string()))?;
        for (key, value) in pairs {
            let flag = !matches!(value.to_ascii_lowercase().as_str(), "false" | "0");
            match key.as_str() {
                "command" => options.command.push(value),
                "stdin" => options.stdin = flag,
                "stdout" => options.stdout = flag,
                "stderr" => options.stderr = flag,
                "tty" => options.tty = flag,
                "container" => options.container = Some(value),
                _ => {}
            }
        }
        if options.tty {
            options.stderr = false;
        }
        if options.command.is_empty() {
            return Err(ExecOptionsError::NoCommand);
        }
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(ExecOptionsError::NoStreams);
        }
        Ok(options)
    }
}

/// A server-to-client frame: the channel id, then the data.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(data.len() + 1);
    framed.push(channel);
    framed.extend_from_slice(data);
    framed
}

/// What a binary frame from the client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    Stdin(&'a [u8]),
    /// v5 CLOSE signal for the channel.
    CloseChannel(u8),
    /// A JSON `{"Width":..,"Height":..}`: without a terminal there is nothing to resize.
    Resize(&'a [u8]),
    /// Empty frames, frames to write-only channels, CLOSE under v1/v4: dropped, like wsstream.
    Ignored,
}

pub fn parse_client_frame(protocol: StreamProtocol, data: &[u8]) -> ClientFrame<'_> {
    match data {
        [STREAM_CLOSE, channel, ..] if protocol.supports_stream_close() => {
            ClientFrame::CloseChannel(*channel)
        }
        [STDIN, rest @ ..] => ClientFrame::Stdin(rest),
        [RESIZE, rest @ ..] => ClientFrame::Resize(rest),
        _ => ClientFrame::Ignored,
    }
}

/// How the command ended, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code; a signal death counts as 128 + signal, as containerd reports it.
    Exited(i32),
    /// The runtime could not start the process; the runc-style reason, e.g.
    /// `exec: "nope": executable file not found in $PATH`.
    NotStarted { exec_id: String, reason: String },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(code) => write!(f, "exit code {code}"),
            Outcome::NotStarted { reason, .. } => write!(f, "not started: {reason}"),
        }
    }
}

/// The payload of the error channel for `outcome`, or `None` when nothing is written (v1
/// success). The texts follow the real servers:
/// - v4 is answered by the kubelet / container runtime (containerd): its exit message is
///   `error executing command [sh -c exit 3], exit code 3`;
/// - v5 by the API server's stream translator, which got the runtime's answer as a SPDY
///   client: the exit error it re-encodes reads `command terminated with exit code 3`, and a
///   runtime failure (a plain error to it) is wrapped in a second `InternalError`.
pub fn error_channel_payload(
    protocol: StreamProtocol,
    command: &[String],
    outcome: &Outcome,
) -> Option<Vec<u8>> {
    let status = status(protocol, command, outcome);
    match protocol {
        StreamProtocol::V5 | StreamProtocol::V4 => Some(status.to_string().into_bytes()),
        StreamProtocol::V1 => {
            let message = status.get("message")?.as_str()?;
            Some(message.as_bytes().to_vec())
        }
    }
}

/// The `metav1.Status` as Go's `json.Marshal` writes it (field order, empty `metadata`).
pub fn status(protocol: StreamProtocol, command: &[String], outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => {
            let exit_error = match protocol {
                StreamProtocol::V5 => format!("command terminated with exit code {code}"),
                StreamProtocol::V4 | StreamProtocol::V1 => format!(
                    "error executing command [{}], exit code {code}",
                    command.join(" ")
                ),
            };
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("command terminated with non-zero exit code: {exit_error}"),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        }
        Outcome::NotStarted { exec_id, reason } => {
            let runtime_error = format!(
                "error executing command in container: failed to exec in container: failed to \
                 start exec {exec_id:?}: OCI runtime exec failed: exec failed: unable to start \
                 container process: {reason}: unknown"
            );
            let kubelet = internal_error(&runtime_error);
            match protocol {
                StreamProtocol::V5 => {
                    internal_error(kubelet["message"].as_str().unwrap_or_default())
                }
                StreamProtocol::V4 | StreamProtocol::V1 => kubelet,
            }
        }
    }
}

/// `apierrors.NewInternalError(errors.New(cause))`.
fn internal_error(cause: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {cause}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": cause}]},
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn v5_wins_whatever_the_order_then_v4_then_legacy() {
        assert_eq!(
            negotiate(&["v4.channel.k8s.io", "v5.channel.k8s.io"]),
            Ok(StreamProtocol::V5)
        );
        assert_eq!(
            negotiate(&["v5.channel.k8s.io", "v4.channel.k8s.io"]),
            Ok(StreamProtocol::V5)
        );
        assert_eq!(
            negotiate(&["channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io"]),
            Ok(StreamProtocol::V4)
        );
        assert_eq!(negotiate(&["channel.k8s.io"]), Ok(StreamProtocol::V1));
        assert_eq!(negotiate::<&str>(&[]), Ok(StreamProtocol::V1));
        assert_eq!(negotiate(&[" "]), Ok(StreamProtocol::V1));
    }

    #[test]
    fn unknown_protocols_are_refused_with_the_offer_named() {
        let refused = negotiate(&["v3.channel.k8s.io", "base64.channel.k8s.io"]).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "requested protocol(s) are not supported: [v3.channel.k8s.io base64.channel.k8s.io]; \
             supports [v5.channel.k8s.io v4.channel.k8s.io channel.k8s.io]"
        );
    }

    #[test]
    fn query_with_repeated_encoded_command() {
        let options = ExecOptions::parse(
            "command=sh&command=-c&command=cat%3B+echo+err+%3E%262%3B+exit+3\
             &stdin=true&stdout=true&stderr=true&tty=false&container=c",
        )
        .unwrap();
        assert_eq!(
            options,
            ExecOptions {
                command: argv(&["sh", "-c", "cat; echo err >&2; exit 3"]),
                stdin: true,
                stdout: true,
                stderr: true,
                tty: false,
                container: Some("c".into()),
            }
        );
    }

    #[test]
    fn query_booleans_follow_the_api_server() {
        let options = ExecOptions::parse("command=ls&stdout=1&stderr=0&stdin=").unwrap();
        assert!(options.stdout && options.stdin && !options.stderr && !options.tty);
        let tty = ExecOptions::parse("command=sh&stdin=true&stderr=true&tty=true").unwrap();
        assert!(tty.tty && tty.stdin && !tty.stderr, "tty drops stderr");
    }

    #[test]
    fn query_errors() {
        assert_eq!(
            ExecOptions::parse("stdout=true"),
            Err(ExecOptionsError::NoCommand)
        );
        assert_eq!(
            ExecOptions::parse("command=ls"),
            Err(ExecOptionsError::NoStreams)
        );
        assert!(matches!(
            ExecOptions::parse("command=%zz&stdout=true"),
            Err(ExecOptionsError::Malformed(_))
        ));
    }

    #[test]
    fn frames_carry_the_channel_first() {
        assert_eq!(frame(STDOUT, b"hi"), vec![1, b'h', b'i']);
        assert_eq!(frame(ERROR, b""), vec![3]);
    }

    #[test]
    fn client_frames() {
        use StreamProtocol::*;
        assert_eq!(
            parse_client_frame(V5, &[0, 7, 8]),
            ClientFrame::Stdin(&[7, 8])
        );
        assert_eq!(
            parse_client_frame(V5, &[255, 0]),
            ClientFrame::CloseChannel(0)
        );
        assert_eq!(parse_client_frame(V4, &[255, 0]), ClientFrame::Ignored);
        assert_eq!(
            parse_client_frame(V5, &[4, b'{']),
            ClientFrame::Resize(b"{")
        );
        assert_eq!(parse_client_frame(V5, &[]), ClientFrame::Ignored);
        assert_eq!(parse_client_frame(V5, &[1, 2]), ClientFrame::Ignored);
    }

    #[test]
    fn success_status_is_minimal() {
        let body = error_channel_payload(StreamProtocol::V5, &argv(&["true"]), &Outcome::Exited(0));
        assert_eq!(
            String::from_utf8(body.unwrap()).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(
            error_channel_payload(StreamProtocol::V1, &argv(&["true"]), &Outcome::Exited(0)),
            None
        );
    }

    #[test]
    fn exit_status_as_the_kubelet_writes_it_for_v4() {
        let body = error_channel_payload(
            StreamProtocol::V4,
            &argv(&["sh", "-c", "exit 3"]),
            &Outcome::Exited(3),
        );
        assert_eq!(
            String::from_utf8(body.unwrap()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
    }

    #[test]
    fn exit_status_as_the_api_server_translator_writes_it_for_v5() {
        let body = error_channel_payload(
            StreamProtocol::V5,
            &argv(&["sh", "-c", "exit 3"]),
            &Outcome::Exited(3),
        );
        assert_eq!(
            String::from_utf8(body.unwrap()).unwrap(),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: command terminated with exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
    }

    #[test]
    fn v1_carries_only_the_error_text() {
        let body =
            error_channel_payload(StreamProtocol::V1, &argv(&["false"]), &Outcome::Exited(1));
        assert_eq!(
            String::from_utf8(body.unwrap()).unwrap(),
            "command terminated with non-zero exit code: error executing command [false], exit code 1"
        );
    }

    #[test]
    fn a_command_that_cannot_start_is_an_internal_error() {
        let outcome = Outcome::NotStarted {
            exec_id: "abc".into(),
            reason: r#"exec: "nope": executable file not found in $PATH"#.into(),
        };
        let v4 = status(StreamProtocol::V4, &argv(&["nope"]), &outcome);
        let runtime = "error executing command in container: failed to exec in container: \
                       failed to start exec \"abc\": OCI runtime exec failed: exec failed: \
                       unable to start container process: exec: \"nope\": executable file not \
                       found in $PATH: unknown";
        assert_eq!(
            v4,
            json!({"metadata": {}, "status": "Failure",
                   "message": format!("Internal error occurred: {runtime}"),
                   "reason": "InternalError", "details": {"causes": [{"message": runtime}]},
                   "code": 500})
        );
        let v5 = status(StreamProtocol::V5, &argv(&["nope"]), &outcome);
        assert_eq!(
            v5["message"],
            format!("Internal error occurred: Internal error occurred: {runtime}")
        );
        assert_eq!(v5["code"], 500);
    }
}
