//! Fault injection and the request log shared by the fake servers.
//!
//! Both live at the connection layer (see `serve`), below the routers, so that a fault can drop
//! a connection the way a broken load balancer does, and so every request is recorded whatever
//! the router answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::Method;
use serde::Serialize;

/// What an injected fault does to a matching request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then serve the request normally.
    Latency(Duration),
    /// Hold the request until the test opens the gate, then serve it normally: the test acts
    /// while the request is known to be in flight, whatever the machine's speed.
    Hold(Gate),
    /// Answer 429 Too Many Requests with a `Retry-After` header of this many seconds.
    TooManyRequests { retry_after_secs: u64 },
    /// Answer this status code (500, 502, 503, 504, ...) with the server's error body.
    Status(u16),
    /// Close the connection without answering.
    DropConnection,
    /// Answer exactly this, whatever the API would: a server that misbehaves (a list whose
    /// `next` leads back to itself, an object name no real API server accepts, a redirect that
    /// echoes the credentials back).
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Answer 200 with a JSON document of this many bytes (`{"data":"xxx…"}`), produced while
    /// it is sent, without a `Content-Length`: an answer too large to hold, which the test does
    /// not hold either.
    HugeBody(u64),
}

impl Fault {
    /// [`Fault::Answer`] with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Fault {
        Fault::Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }
}

/// Holds requests (through [`Fault::Hold`]) until the test opens it. Clones share one gate.
///
/// The test waits with [`Gate::wait_held`] (or [`Gate::held`] in async code) until a request
/// has arrived, does what must happen while it is in flight, then [`Gate::open`]s the gate.
/// Dropping every clone of the test's gate does not open it; a held request then waits until
/// the server stops.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    state: Arc<tokio::sync::watch::Sender<GateState>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct GateState {
    /// Requests that reached the gate so far (held now or let through later).
    arrived: usize,
    open: bool,
}

/// How long [`Gate::wait_held`] waits for a request before it fails the test: far longer than
/// any request needs to arrive, so it only ends a test that would otherwise hang.
const GATE_PATIENCE: Duration = Duration::from_secs(120);

impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }
}

impl Eq for Gate {}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// A [`Fault::Hold`] at this gate.
    pub fn fault(&self) -> Fault {
        Fault::Hold(self.clone())
    }

    /// Lets every held request through, and every later one.
    pub fn open(&self) {
        self.state.send_modify(|state| state.open = true);
    }

    /// How many requests reached the gate so far.
    pub fn arrived(&self) -> usize {
        self.state.borrow().arrived
    }

    /// Waits (async) until `count` requests reached the gate.
    pub async fn held(&self, count: usize) {
        let mut watch = self.state.subscribe();
        match tokio::time::timeout(GATE_PATIENCE, watch.wait_for(|s| s.arrived >= count)).await {
            Ok(result) => {
                result.expect("the gate's sender lives as long as the gate");
            }
            Err(_) => panic!(
                "{} of {count} requests reached the gate in {GATE_PATIENCE:?}",
                self.arrived()
            ),
        }
    }

    /// Waits (blocking the thread; not inside an async runtime) until `count` requests reached
    /// the gate.
    pub fn wait_held(&self, count: usize) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime to wait on");
        runtime.block_on(self.held(count));
    }

    /// The server side: counts the request in, then waits until the gate is open.
    pub(crate) async fn pass(&self) {
        self.state.send_modify(|state| state.arrived += 1);
        let mut watch = self.state.subscribe();
        // The sender lives in `self`, so the wait ends only by opening.
        let _ = watch.wait_for(|s| s.open).await;
    }
}

/// A fault and the requests it applies to.
#[derive(Clone, Debug)]
pub struct FaultRule {
    /// Only requests with this method; `None` matches every method.
    pub method: Option<Method>,
    /// Only requests whose path contains this text (`""` matches every path).
    pub path_contains: String,
    pub fault: Fault,
    /// How many matching requests it applies to; `None` means every one.
    pub times: Option<usize>,
    /// How many matching requests pass untouched before it applies (to fail a list mid-way).
    pub skip: usize,
}

impl FaultRule {
    /// A rule for every request whose path contains `path_contains`, applied `times` times.
    pub fn new(path_contains: impl Into<String>, fault: Fault, times: Option<usize>) -> Self {
        FaultRule {
            method: None,
            path_contains: path_contains.into(),
            fault,
            times,
            skip: 0,
        }
    }

    /// Lets the first `count` matching requests through before the fault applies.
    pub fn after(mut self, count: usize) -> Self {
        self.skip = count;
        self
    }

    /// Restricts the rule to one HTTP method.
    pub fn with_method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method) && path.contains(&self.path_contains)
    }
}

/// The fault rules of one server, settable by a test while the server runs.
#[derive(Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<FaultRule>>>,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        self.rules.lock().unwrap().push(rule);
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// The faults that apply to this request, in the order the rules were added; counts down
    /// the rules with a limited number of uses and forgets the used-up ones.
    pub fn take(&self, method: &Method, path: &str) -> Vec<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let mut hits = Vec::new();
        for rule in rules.iter_mut() {
            if rule.matches(method, path) && rule.times != Some(0) {
                if rule.skip > 0 {
                    rule.skip -= 1;
                    continue;
                }
                hits.push(rule.fault.clone());
                if let Some(n) = rule.times.as_mut() {
                    *n -= 1;
                }
            }
        }
        rules.retain(|r| r.times != Some(0));
        hits
    }
}

/// One request as a server saw it. Credentials are never recorded, only the auth scheme.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRequest {
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The answer's status code; 0 when the connection was dropped by a fault.
    pub status: u16,
    pub user_agent: Option<String>,
    /// `Bearer`, `Token`, `Basic`... or `None` when no Authorization header was sent.
    pub auth_scheme: Option<String>,
    pub content_type: Option<String>,
    /// How long the server took to produce the answer (its whole body, except for streamed
    /// answers such as watches; injected latency included): the server's own share of a
    /// request, which benchmarks report apart from the client's.
    #[serde(with = "seconds")]
    pub served_in: std::time::Duration,
}

/// A duration as fractional seconds in JSON.
mod seconds {
    pub fn serialize<S: serde::Serializer>(
        duration: &std::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(duration.as_secs_f64())
    }
}

/// Every request a server saw, in arrival order, and how many it was serving at once.
#[derive(Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<RecordedRequest>>>,
    in_flight: Arc<InFlight>,
}

#[derive(Default)]
struct InFlight {
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
}

/// A request being served; counted until dropped.
pub struct Serving(Arc<InFlight>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl RequestLog {
    /// Counts a request as being served (faults such as latency included) until the guard drops.
    pub fn serving(&self) -> Serving {
        use std::sync::atomic::Ordering;
        let now = self.in_flight.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.in_flight.max.fetch_max(now, Ordering::SeqCst);
        Serving(self.in_flight.clone())
    }

    /// The most requests served at the same time since the start (or the last reset).
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.max.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts counting the most requests at once afresh.
    pub fn reset_max_in_flight(&self) {
        use std::sync::atomic::Ordering;
        let now = self.in_flight.now.load(Ordering::SeqCst);
        self.in_flight.max.store(now, Ordering::SeqCst);
    }

    pub fn push(&self, entry: RecordedRequest) {
        self.entries.lock().unwrap().push(entry);
    }

    pub fn entries(&self) -> Vec<RecordedRequest> {
        self.entries.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap().clear();
    }

    /// How many recorded requests satisfy `pred`.
    pub fn count(&self, pred: impl Fn(&RecordedRequest) -> bool) -> usize {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .filter(|r| pred(r))
            .count()
    }
}
