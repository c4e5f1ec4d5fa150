//! Runs a fake server's axum router on a loopback port: optional TLS, HTTP/1.1 with upgrades
//! (exec WebSockets), fault injection and the request log, for every fake alike.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use futures::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

use crate::faults::{Fault, Faults, RecordedRequest, RequestLog};

/// Renders an error answer (injected faults) in the body format of the server's API.
pub type ErrorRenderer = Arc<dyn Fn(StatusCode, &str) -> Response<Body> + Send + Sync>;

/// How to run a router.
#[derive(Clone)]
pub struct ServerOptions {
    /// Serve HTTPS with this config; plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub faults: Faults,
    pub log: RequestLog,
    pub error_body: ErrorRenderer,
}

/// A server running in the background until dropped (or `shutdown`).
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    task: JoinHandle<()>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` or `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting and closes every open connection.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `bind` (use port 0 for a free port) and serves `router` in a background task.
pub async fn serve(
    router: Router,
    bind: SocketAddr,
    options: ServerOptions,
) -> std::io::Result<RunningServer> {
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let tls = options.tls.is_some();
    let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(async move {
        // Dropping the JoinSet (when this task is aborted) aborts every connection too.
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let options = options.clone();
            let acceptor = acceptor.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    handle(router.clone(), options.clone(), req)
                });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http
                                .serve_connection(TokioIo::new(stream), service)
                                .with_upgrades()
                                .await;
                        }
                    }
                    None => {
                        let _ = http
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await;
                    }
                }
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Ok(RunningServer { addr, tls, task })
}

/// Applies the faults for this request, then lets the router answer, and records the outcome.
/// Returning an error makes hyper close the connection without an answer.
async fn handle(
    router: Router,
    options: ServerOptions,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let _serving = options.log.serving();
    let started = std::time::Instant::now();
    let mut record = RecordedRequest {
        at: chrono::Utc::now(),
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(str::to_string),
        status: 0,
        user_agent: header_text(&req, header::USER_AGENT),
        auth_scheme: header_text(&req, header::AUTHORIZATION)
            .and_then(|v| v.split_whitespace().next().map(str::to_string)),
        content_type: header_text(&req, header::CONTENT_TYPE),
        served_in: std::time::Duration::ZERO,
    };
    for fault in options.faults.take(req.method(), req.uri().path()) {
        let answer = match fault {
            Fault::Latency(delay) => {
                tokio::time::sleep(delay).await;
                continue;
            }
            Fault::Hold(gate) => {
                gate.pass().await;
                continue;
            }
            Fault::DropConnection => {
                record.served_in = started.elapsed();
                options.log.push(record);
                return Err(std::io::Error::other(
                    "connection dropped by an injected fault",
                ));
            }
            Fault::TooManyRequests { retry_after_secs } => {
                let mut answer = (options.error_body)(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests, please try again later",
                );
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                answer
            }
            Fault::Status(code) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (options.error_body)(status, "injected server error")
            }
            Fault::Answer {
                status,
                headers,
                body,
            } => {
                let mut answer = Response::new(Body::from(body));
                *answer.status_mut() =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                for (name, value) in headers {
                    if let (Ok(name), Ok(value)) = (
                        header::HeaderName::try_from(name),
                        HeaderValue::try_from(value),
                    ) {
                        answer.headers_mut().append(name, value);
                    }
                }
                answer
            }
            Fault::HugeBody(bytes) => {
                let mut answer = Response::new(huge_json(bytes));
                answer.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                answer
            }
        };
        record.status = answer.status().as_u16();
        record.served_in = started.elapsed();
        options.log.push(record);
        return Ok(answer);
    }
    let answer = match router.oneshot(req.map(Body::new)).await {
        Ok(answer) => answer,
        Err(never) => match never {},
    };
    record.status = answer.status().as_u16();
    record.served_in = started.elapsed();
    options.log.push(record);
    Ok(answer)
}

/// `{"data":"xxx…"}` of `bytes` bytes, made chunk by chunk as the client reads it.
fn huge_json(bytes: u64) -> Body {
    const CHUNK: u64 = 64 * 1024;
    let (head, tail) = (&b"{\"data\":\""[..], &b"\"}"[..]);
    let filler = bytes.saturating_sub((head.len() + tail.len()) as u64);
    let chunks = filler.div_ceil(CHUNK);
    let middle = futures::stream::iter(0..chunks).map(move |index| {
        let len = CHUNK.min(filler - index * CHUNK) as usize;
        Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; len]))
    });
    let stream = futures::stream::iter([Ok(axum::body::Bytes::from_static(head))])
        .chain(middle)
        .chain(futures::stream::iter([Ok(axum::body::Bytes::from_static(
            tail,
        ))]));
    Body::from_stream(stream)
}

fn header_text<B>(req: &Request<B>, name: header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
