//! The `mlbackup-helper` binary: the wire protocol as the plugin will use it over `kubectl
//! exec` (one request line on stdin, then control lines, JSON Lines on stdout, stdin left open),
//! and the commands for a person. The token never shows on stdout or stderr, even at the highest verbosity.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use mlbackup_helper::api::ApiUrl;
use mlbackup_helper::protocol::{
    ChangeRequest, Event, Operation, Outcome, PROTOCOL_VERSION, PlannedChange, Request,
};
use mlbackup_helper::secret::ApiToken;
use mlbackup_helper::tls::TlsOptions;
use mlbackup_testkit::datarobot::{
    DeploymentSeed, DeploymentStatus, FakeDataRobot, FakeDataRobotOptions, object_id,
};
use mlbackup_testkit::world::{Deployments, World};

fn helper() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mlbackup-helper"));
    command.env_clear();
    command
}

/// A fake DataRobot API with `active` active deployments, jobs of 40 ms.
async fn world(active: usize) -> World {
    World::builder()
        .datarobot(
            Deployments::Numbered {
                active,
                inactive: 0,
            },
            FakeDataRobotOptions {
                status_change_duration: Duration::from_millis(40),
                ..FakeDataRobotOptions::default()
            },
        )
        .start()
        .await
        .unwrap()
}

fn request(fake: &FakeDataRobot, token: &str, operation: Operation) -> Request {
    Request {
        protocol_version: PROTOCOL_VERSION,
        api_url: ApiUrl::parse(&fake.api_url()).unwrap(),
        token: ApiToken::new(token, "test").unwrap(),
        tls: TlsOptions {
            ca_pem: fake.ca_pem().map(str::to_string),
            insecure_skip_tls_verify: false,
        },
        request_timeout_seconds: 10.0,
        verbosity: 9,
        list_timeout_seconds: None,
        operation,
    }
}

/// Runs `serve-request` with `request` as the first stdin line, stdin kept open (as over exec)
/// until stdout ends; returns the events and stderr.
fn serve(request: &Request) -> (Vec<Event>, String) {
    let mut child = helper()
        .arg("serve-request")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut line = serde_json::to_string(request).unwrap();
    line.push('\n');
    stdin.write_all(line.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut events = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        events.push(serde_json::from_str::<Event>(&line).unwrap_or_else(|e| panic!("{e}: {line}")));
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    (events, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_request_speaks_json_lines_without_waiting_for_stdin_to_end() {
    let world = world(3).await;
    let fake = world.datarobot();
    let token = fake.admin_token().to_string();

    let (events, stderr) = serve(&request(fake, &token, Operation::List));
    assert_eq!(
        events[0],
        Event::Hello {
            protocol_version: PROTOCOL_VERSION,
            helper_version: env!("CARGO_PKG_VERSION").into()
        }
    );
    let Some(Event::Deployments { deployments }) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(deployments.len(), 3);
    assert!(!stderr.contains(&token), "{stderr}");

    let planned: Vec<PlannedChange> = deployments
        .iter()
        .map(|d| PlannedChange {
            id: d.id.clone(),
            label: d.label.clone(),
            before: d.status.clone(),
        })
        .collect();
    let change = Operation::Change(ChangeRequest {
        target: mlbackup_helper::api::TargetStatus::Inactive,
        deployments: planned,
        concurrency: 2,
        wait: true,
        timeout_seconds: 30.0,
    });
    let (events, stderr) = serve(&request(fake, &token, change));
    let started = events
        .iter()
        .filter(|e| matches!(e, Event::Started { .. }))
        .count();
    let finished = events
        .iter()
        .filter(|e| matches!(e, Event::Finished { .. }))
        .count();
    assert_eq!((started, finished), (3, 3));
    let Some(Event::Report { report }) = events.last() else {
        panic!("{events:?}");
    };
    assert!(report.items.iter().all(|i| i.outcome == Outcome::Changed));
    // Logs go to stderr, a line per request; two workers' lines interleave as the timing
    // decides, so each deployment's PATCH line is looked for instead of a snapshot.
    for item in &report.items {
        let patch = format!(
            "debug: PATCH {}/deployments/{}/status/ 202 in ",
            fake.api_url(),
            item.id
        );
        let lines = stderr.lines().filter(|l| l.starts_with(&patch)).count();
        assert_eq!(lines, 1, "{patch} in\n{stderr}");
    }
    assert!(!stderr.contains(&token), "{stderr}");
    assert_eq!(fake.status_history().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_or_token_ends_with_an_error_event() {
    let world = world(1).await;
    let fake = world.datarobot();
    let wrong = "NotTheToken-0123456789abcdef";
    let (events, stderr) = serve(&request(fake, wrong, Operation::List));
    let Some(Event::Error { error }) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(error.kind, mlbackup_helper::api::ErrorKind::Unauthorized);
    // The event the plugin shows as its error and hint.
    mlbackup_testkit::assert_run_snapshot!(
        "refused_token",
        serde_json::to_string_pretty(&events.last()).unwrap()
    );
    let everything = format!("{events:?}{stderr}");
    assert!(!everything.contains(wrong));

    let mut other_version = serde_json::to_value(request(fake, wrong, Operation::List)).unwrap();
    other_version["protocolVersion"] = 99.into();
    other_version["token"] = "x y".into(); // not even a valid token: never echoed
    let mut child = helper()
        .arg("serve-request")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.as_mut().unwrap(), "{other_version}").unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let last: Event = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(matches!(last, Event::Error { .. }), "{text}");
    assert!(!text.contains("x y"), "{text}");
    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_line_after_the_request_stops_the_change_with_a_report() {
    stops_after_the_first_change(Stop::CancelLine).await;
}

/// The plugin killed, or its connection to the pod broken: a kubelet leaves the process
/// running with its stdin closed, so the end of stdin must stop it as a cancel line does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_stdin_stops_the_change_with_a_report() {
    stops_after_the_first_change(Stop::EndOfStdin).await;
}

/// How the plugin's side says stop.
enum Stop {
    CancelLine,
    EndOfStdin,
}

async fn stops_after_the_first_change(stop: Stop) {
    let world = world(0).await;
    let fake = world.datarobot();
    for n in 0..20 {
        fake.add_deployment(DeploymentSeed {
            id: object_id(n),
            ..DeploymentSeed::new(format!("model-{n}"), DeploymentStatus::Active)
        });
    }
    let token = fake.admin_token().to_string();
    let planned = (0..20)
        .map(|n| PlannedChange {
            id: object_id(n),
            label: format!("model-{n}"),
            before: Some("active".into()),
        })
        .collect();
    let change = Operation::Change(ChangeRequest {
        target: mlbackup_helper::api::TargetStatus::Inactive,
        deployments: planned,
        concurrency: 1,
        wait: true,
        timeout_seconds: 60.0,
    });
    let mut child = helper()
        .arg("serve-request")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = Some(child.stdin.take().unwrap());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let hello: Event = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(matches!(hello, Event::Hello { .. }), "{hello:?}");
    writeln!(
        stdin.as_mut().unwrap(),
        "{}",
        serde_json::to_string(&request(fake, &token, change)).unwrap()
    )
    .unwrap();
    // Once the first deployment is done, the plugin says stop.
    let mut events = Vec::new();
    for line in lines.by_ref() {
        let event: Event = serde_json::from_str(&line.unwrap()).unwrap();
        let done = matches!(event, Event::Finished { .. });
        events.push(event);
        if done {
            match stop {
                Stop::CancelLine => {
                    writeln!(stdin.as_mut().unwrap(), r#"{{"control":"cancel"}}"#).unwrap()
                }
                Stop::EndOfStdin => drop(stdin.take()),
            }
            break;
        }
    }
    for line in lines {
        events.push(serde_json::from_str(&line.unwrap()).unwrap());
    }
    let Some(Event::Report { report }) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(
        report.stopped,
        Some(mlbackup_helper::protocol::StopReason::Interrupted)
    );
    let not_attempted = report
        .items
        .iter()
        .filter(|i| i.outcome == Outcome::NotAttempted)
        .count();
    assert!(not_attempted > 0, "{report:?}");
    assert_eq!(fake.status_history().len(), 20 - not_attempted);
    drop(stdin);
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_hand_deactivate_and_reactivate_with_a_state_file() {
    let world = world(4).await;
    let fake = world.datarobot();
    fake.add_deployment(DeploymentSeed {
        id: object_id(9),
        ..DeploymentSeed::new("was-off", DeploymentStatus::Inactive)
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem().unwrap()).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", fake.admin_token())).unwrap();
    let state = dir.path().join("state.json");
    let run = |verb: &str| {
        helper()
            .args([verb, "--api-url", &fake.url(), "-v", "9"])
            .arg("--token-file")
            .arg(&token_file)
            .arg("--ca-file")
            .arg(&ca)
            .arg("--state")
            .arg(&state)
            .output()
            .unwrap()
    };
    let out = run("deactivate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A line per deployment as its change finishes, in the order the timing decides: the
    // lines are compared sorted, the summary after them whole.
    let (rows, summary) = stdout.trim_end().rsplit_once('\n').unwrap();
    let mut rows: Vec<&str> = rows.lines().collect();
    rows.sort();
    assert_eq!(
        rows,
        (0..4)
            .map(|n| format!("{}  changed  model-{n:04}", object_id(n)))
            .collect::<Vec<_>>(),
        "{stdout}"
    );
    assert_eq!(
        summary,
        "deactivate of 4 deployments to inactive: 4 changed"
    );
    assert!(
        !format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)).contains(fake.admin_token())
    );
    let out = run("reactivate");
    assert!(out.status.success());
    assert_eq!(
        fake.deployment(&object_id(9)).unwrap().status,
        DeploymentStatus::Inactive
    );
    assert_eq!(fake.status_history().len(), 8);

    // The token from the environment; no URL at all is a usage error.
    let out = helper()
        .args(["list"])
        .env("LRS_DATAROBOT_API_TOKEN", fake.admin_token())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_hand_state_is_never_written_through_a_symlink_another_user_planted() {
    use std::os::unix::fs::MetadataExt;
    let world = world(2).await;
    let fake = world.datarobot();
    let private = tempfile::tempdir().unwrap();
    let victim = private.path().join("authorized_keys");
    std::fs::write(&victim, "precious\n").unwrap();
    // The temp name the helper used to write the state file under.
    let shared = mlbackup_testkit::tools::plant_symlink_as_another_user(&victim, ".state.json.tmp");
    let ca = private.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem().unwrap()).unwrap();
    let state = shared.path().join("state.json");
    let out = helper()
        .args(["deactivate", "--api-url", &fake.url()])
        .env("LRS_DATAROBOT_API_TOKEN", fake.admin_token())
        .arg("--ca-file")
        .arg(&ca)
        .arg("--state")
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = std::fs::symlink_metadata(&state).unwrap();
    assert!(meta.file_type().is_file(), "the state file is not a link");
    let mine = std::fs::metadata(private.path()).unwrap().uid();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (mine, 0o600));
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(snapshot["deployments"].as_array().unwrap().len(), 2);
    // The other user's link is still there, untouched, and nothing else was left.
    let mut names: Vec<String> = std::fs::read_dir(shared.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".state.json.tmp", "state.json"]);
}
