//! The DataRobot client, the plan and the bulk engine against the fake DataRobot API, in this
//! process: pagination, exact deactivate/reactivate, re-runs, faults, timeouts, the bound.

use std::time::Duration;

use mlbackup_helper::api::{ApiError, ApiUrl, ClientOptions, DataRobotClient, ErrorKind};
use mlbackup_helper::engine;
use mlbackup_helper::plan::{self, Action, StateFile};
use mlbackup_helper::protocol::{ChangeReport, ChangeRequest, Event, Outcome, StopReason};
use mlbackup_helper::retry::RetryPolicy;
use mlbackup_helper::secret::ApiToken;
use mlbackup_helper::snapshot::Snapshot;
use mlbackup_helper::tls::TlsOptions;
use mlbackup_testkit::datarobot::{
    DeploymentSeed, DeploymentStatus, FakeDataRobot, FakeDataRobotOptions, object_id,
};
use mlbackup_testkit::faults::{Fault, FaultRule, Gate};
use mlbackup_testkit::world::{Deployments, World};
use tokio_util::sync::CancellationToken;

struct Setup {
    world: World,
    client: DataRobotClient,
    dir: tempfile::TempDir,
}

/// A fake with `active` active and `inactive` inactive deployments, and a client of it.
async fn setup(active: usize, inactive: usize, options: FakeDataRobotOptions) -> Setup {
    let world = World::builder()
        .datarobot(Deployments::Numbered { active, inactive }, options)
        .start()
        .await
        .unwrap();
    let token = world.datarobot().admin_token().to_string();
    let client = client_of(world.datarobot(), &token);
    Setup {
        world,
        client,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(2),
    }
}

fn client_of(fake: &FakeDataRobot, token: &str) -> DataRobotClient {
    DataRobotClient::new(
        ApiUrl::parse(&fake.url()).unwrap(),
        ApiToken::new(token, "test").unwrap(),
        &ClientOptions {
            request_timeout: Duration::from_secs(5),
            retry: fast_retries(),
            tls: TlsOptions {
                ca_pem: fake.ca_pem().map(str::to_string),
                insecure_skip_tls_verify: false,
            },
        },
    )
    .unwrap()
}

fn fast_jobs() -> FakeDataRobotOptions {
    FakeDataRobotOptions {
        status_change_duration: Duration::from_millis(40),
        ..FakeDataRobotOptions::default()
    }
}

impl Setup {
    fn fake(&self) -> &FakeDataRobot {
        self.world.datarobot()
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("deployments.json")
    }

    /// What the plugin and the helper do: list, record/read the snapshot, plan, change.
    async fn run(&self, action: Action, concurrency: usize, wait: bool) -> ChangeReport {
        self.run_with(action, concurrency, wait, 60.0, &CancellationToken::new())
            .await
    }

    async fn run_with(
        &self,
        action: Action,
        concurrency: usize,
        wait: bool,
        timeout_seconds: f64,
        cancel: &CancellationToken,
    ) -> ChangeReport {
        let deployments = engine::list(&self.client).await.unwrap();
        let state = self.state();
        let prepared = plan::prepare(
            action,
            &deployments,
            StateFile::At(&state),
            false,
            &[],
            false,
            &self.fake().api_url(),
        )
        .unwrap();
        let request = ChangeRequest {
            target: prepared.plan.target,
            deployments: prepared.plan.changes,
            concurrency,
            wait,
            timeout_seconds,
        };
        engine::change(&self.client, &request, cancel, &|_| {}).await
    }

    fn statuses(&self) -> Vec<DeploymentStatus> {
        self.fake().deployments().iter().map(|d| d.status).collect()
    }
}

fn count(report: &ChangeReport, outcome: Outcome) -> usize {
    report.counts().get(&outcome).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_follows_next_to_the_end() {
    let setup = setup(180, 70, FakeDataRobotOptions::default()).await;
    let listed = engine::list(&setup.client).await.unwrap();
    assert_eq!(listed.len(), 250);
    let ids: std::collections::HashSet<_> = listed.iter().map(|d| d.id.clone()).collect();
    assert_eq!(ids.len(), 250, "no deployment twice");
    let pages = setup
        .fake()
        .requests()
        .count(|r| r.path == "/api/v2/deployments/");
    assert_eq!(pages, 3, "pages of 100");
    assert!(
        setup
            .fake()
            .requests()
            .entries()
            .iter()
            .all(|r| r.auth_scheme.as_deref() == Some("Bearer"))
    );
    // The API endpoint form of the URL reaches the same API.
    let token = setup.fake().admin_token().to_string();
    let by_api_url = DataRobotClient::new(
        ApiUrl::parse(&setup.fake().api_url()).unwrap(),
        ApiToken::new(&token, "test").unwrap(),
        &ClientOptions {
            tls: TlsOptions {
                ca_pem: setup.fake().ca_pem().map(str::to_string),
                ..TlsOptions::default()
            },
            ..ClientOptions::default()
        },
    )
    .unwrap();
    assert_eq!(engine::list(&by_api_url).await.unwrap().len(), 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_then_reactivate_is_exact_and_reruns_change_nothing() {
    let setup = setup(7, 3, fast_jobs()).await;
    let before = setup.fake().deployments();

    let report = setup.run(Action::Deactivate, 4, true).await;
    assert_eq!(count(&report, Outcome::Changed), 7, "{report:#?}");
    assert_eq!(report.items.len(), 7, "only active ones are touched");
    assert!(
        setup
            .statuses()
            .iter()
            .all(|s| *s == DeploymentStatus::Inactive)
    );
    let history = setup.fake().status_history();
    assert_eq!(history.len(), 7);
    assert!(history.iter().all(|c| c.from == DeploymentStatus::Active));
    // The snapshot was on disk before the first change was requested.
    let snapshot = Snapshot::read(&setup.state()).unwrap().unwrap();
    assert!(snapshot.taken_at <= history[0].requested_at);
    assert_eq!(snapshot.deployments.len(), 10);
    assert_eq!(
        snapshot
            .deployments
            .iter()
            .filter(|e| e.was_active())
            .count(),
        7
    );

    // A second deactivation changes nothing and keeps what the first one recorded.
    let again = setup.run(Action::Deactivate, 4, true).await;
    assert!(again.items.is_empty());
    assert_eq!(setup.fake().status_history().len(), 7);
    let kept = Snapshot::read(&setup.state()).unwrap().unwrap();
    assert_eq!(
        kept.deployments.iter().filter(|e| e.was_active()).count(),
        7
    );

    let report = setup.run(Action::Reactivate, 4, true).await;
    assert_eq!(count(&report, Outcome::Changed), 7, "{report:#?}");
    let after = setup.fake().deployments();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.status, a.status, "{} is back as it was", b.id);
    }
    let again = setup.run(Action::Reactivate, 4, true).await;
    assert!(again.items.is_empty());
    assert_eq!(
        setup.fake().status_history().len(),
        14,
        "no repeated changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_bound_is_never_exceeded() {
    let setup = setup(60, 0, fast_jobs()).await;
    setup.fake().faults().add(FaultRule::new(
        "",
        Fault::Latency(Duration::from_millis(10)),
        None,
    ));
    let report = setup.run(Action::Deactivate, 5, true).await;
    assert_eq!(count(&report, Outcome::Changed), 60);
    assert!(report.max_in_flight <= 5, "{}", report.max_in_flight);
    let jobs = setup.fake().max_in_flight_status_jobs();
    assert!(jobs <= 5, "{jobs} status jobs at once");
    assert!(jobs >= 3, "the bound is used, not serialised: {jobs}");
    let served = setup.fake().requests().max_in_flight();
    assert!(served <= 5, "the server saw {served} requests at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_of_429_5xx_and_dropped_connections_end_right_or_reported() {
    let setup = setup(40, 5, fast_jobs()).await;
    let faults = setup.fake().faults();
    faults.add(
        FaultRule::new(
            "/status/",
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
            Some(15),
        )
        .with_method(http::Method::PATCH),
    );
    faults.add(FaultRule::new("/status/", Fault::Status(503), Some(10)).after(5));
    faults.add(FaultRule::new("/status/", Fault::Status(502), Some(5)).after(20));
    faults.add(FaultRule::new("/status/", Fault::DropConnection, Some(8)).after(12));
    faults.add(FaultRule::new("/deployments/", Fault::Status(504), Some(1)));
    let report = setup.run(Action::Deactivate, 8, true).await;
    assert_eq!(report.items.len(), 40);
    for item in &report.items {
        let now = setup.fake().deployment(&item.id).unwrap().status;
        match item.outcome {
            Outcome::Changed | Outcome::Unchanged => {
                assert_eq!(now, DeploymentStatus::Inactive, "{item:?}")
            }
            Outcome::Failed => assert!(item.message.is_some(), "{item:?}"),
            other => panic!("unexpected {other:?} for {item:?}"),
        }
    }
    // A re-run finishes what the storm left failed, and changes nothing twice.
    let rerun = setup.run(Action::Deactivate, 8, true).await;
    assert!(!rerun.incomplete(), "{rerun:#?}");
    assert_eq!(
        rerun.items.len(),
        count(&report, Outcome::Failed),
        "only the failed ones are left to do"
    );
    assert!(
        setup
            .statuses()
            .iter()
            .all(|s| *s == DeploymentStatus::Inactive)
    );
    let mut changed: Vec<_> = setup
        .fake()
        .status_history()
        .into_iter()
        .map(|c| c.deployment_id)
        .collect();
    changed.sort();
    let before = changed.len();
    changed.dedup();
    assert_eq!(before, changed.len(), "no deployment changed twice");
    let throttled = setup.fake().requests().count(|r| r.status == 429);
    assert_eq!(throttled, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_jobs_and_the_overall_timeout_are_reported() {
    let setup = setup(6, 0, fast_jobs()).await;
    let failing = object_id(2);
    setup.fake().fail_status_changes_of(&failing);
    let report = setup.run(Action::Deactivate, 3, true).await;
    let item = report.items.iter().find(|i| i.id == failing).unwrap();
    mlbackup_testkit::assert_run_snapshot!(
        "failed_status_job",
        serde_json::to_string_pretty(item).unwrap()
    );
    assert_eq!(count(&report, Outcome::Changed), 5);
    assert!(report.incomplete());

    // Slow jobs, a short overall timeout: in-flight ones fail as timed out, the rest are not
    // attempted, nothing is left unreported.
    let slow = setup_slow().await;
    let report = slow
        .run_with(Action::Deactivate, 2, true, 0.6, &CancellationToken::new())
        .await;
    assert_eq!(report.stopped, Some(StopReason::TimedOut));
    assert_eq!(report.items.len(), 8);
    assert_eq!(count(&report, Outcome::Failed), 2, "{report:#?}");
    assert_eq!(count(&report, Outcome::NotAttempted), 6);
    assert!(
        report
            .items
            .iter()
            .any(|i| i.error_kind == Some(ErrorKind::Timeout))
    );
}

async fn setup_slow() -> Setup {
    setup(
        8,
        0,
        FakeDataRobotOptions {
            status_change_duration: Duration::from_secs(5),
            ..FakeDataRobotOptions::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interruption_finishes_what_is_in_flight_and_starts_nothing_more() {
    let setup = setup(30, 0, fast_jobs()).await;
    // Status changes after the third are held until the run is interrupted: with three
    // workers, 4 to 6 were requested when it is.
    let gate = Gate::new();
    setup.fake().faults().add(
        FaultRule::new("/status/", gate.fault(), None)
            .with_method(http::Method::PATCH)
            .after(3),
    );
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    let held = gate.clone();
    tokio::spawn(async move {
        held.held(1).await;
        stopper.cancel();
        held.open();
    });
    let report = setup
        .run_with(Action::Deactivate, 3, true, 60.0, &cancel)
        .await;
    assert_eq!(report.stopped, Some(StopReason::Interrupted));
    assert_eq!(report.items.len(), 30);
    let not_attempted = count(&report, Outcome::NotAttempted);
    assert!(
        (30 - 6..=30 - 4).contains(&not_attempted),
        "4 to 6 were requested: {report:#?}"
    );
    let requested: std::collections::HashSet<_> = setup
        .fake()
        .status_history()
        .into_iter()
        .map(|c| c.deployment_id)
        .collect();
    for item in &report.items {
        match item.outcome {
            Outcome::NotAttempted => assert!(!requested.contains(&item.id), "{item:?}"),
            Outcome::Changed | Outcome::Requested => {
                assert!(requested.contains(&item.id), "{item:?}")
            }
            other => panic!("{other:?}: {item:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_already_running_is_waited_out() {
    let setup = setup(
        1,
        0,
        FakeDataRobotOptions {
            status_change_duration: Duration::from_millis(400),
            ..FakeDataRobotOptions::default()
        },
    )
    .await;
    // Someone else deactivates it first.
    let other = setup.client.clone();
    let (answer, _) = other
        .request_status(&object_id(0), mlbackup_helper::api::TargetStatus::Inactive)
        .await
        .unwrap();
    assert!(matches!(
        answer,
        mlbackup_helper::api::StatusRequest::Accepted { .. }
    ));
    let request = ChangeRequest {
        target: mlbackup_helper::api::TargetStatus::Inactive,
        deployments: vec![mlbackup_helper::protocol::PlannedChange {
            id: object_id(0),
            label: "model-0000".into(),
            before: Some("active".into()),
        }],
        concurrency: 1,
        wait: true,
        timeout_seconds: 30.0,
    };
    let report = engine::change(&setup.client, &request, &CancellationToken::new(), &|_| {}).await;
    assert_eq!(report.items[0].outcome, Outcome::Unchanged, "{report:#?}");
    assert_eq!(setup.fake().status_history().len(), 1);
    assert!(setup.fake().requests().count(|r| r.status == 409) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_get_their_own_errors_and_never_show() {
    let setup = setup(3, 0, fast_jobs()).await;
    let wrong = "wrong-token-0123456789";
    let err = engine::list(&client_of(setup.fake(), wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    assert!(err.hint().unwrap().contains("Settings > API keys"));
    assert!(!format!("{err} {err:?}").contains(wrong));

    let user = setup.fake().user_token().to_string();
    let client = client_of(setup.fake(), &user);
    assert!(!format!("{client:?}").contains(&user));
    let deployments = engine::list(&client).await.unwrap();
    let prepared = plan::prepare(
        Action::Deactivate,
        &deployments,
        StateFile::None,
        false,
        &[],
        false,
        "u",
    )
    .unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    let report = engine::change(
        &client,
        &ChangeRequest {
            target: prepared.plan.target,
            deployments: prepared.plan.changes,
            concurrency: 2,
            wait: true,
            timeout_seconds: 30.0,
        },
        &CancellationToken::new(),
        &|e: Event| events.lock().unwrap().push(e),
    )
    .await;
    assert_eq!(count(&report, Outcome::Failed), 3);
    for item in &report.items {
        assert_eq!(item.error_kind, Some(ErrorKind::Forbidden));
    }
    // What the plugin shows for each: the deployment named, the role it lacks.
    mlbackup_testkit::assert_run_snapshot!(
        "lacks_the_admin_role",
        serde_json::to_string_pretty(&report.items).unwrap()
    );
    let events = serde_json::to_string(&*events.lock().unwrap()).unwrap();
    assert!(!events.contains(&user));
    assert_eq!(setup.fake().status_history().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_after_the_first_are_read_at_once_and_complete() {
    let setup = setup(250, 30, fast_jobs()).await;
    setup.fake().faults().add(FaultRule::new(
        "/deployments/",
        Fault::Latency(Duration::from_millis(100)),
        None,
    ));
    let listed = setup.client.list_deployments().await.unwrap();
    let mut ids: Vec<_> = listed.iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 280, "every deployment once");
    let lists: Vec<_> = setup
        .fake()
        .requests()
        .entries()
        .into_iter()
        .filter(|r| r.path.ends_with("/deployments/"))
        .collect();
    assert_eq!(lists.len(), 3, "{lists:#?}");
    assert!(
        lists[1..]
            .iter()
            .all(|r| r.query.as_deref().unwrap().contains("offset="))
    );
    assert!(
        setup.fake().requests().max_in_flight() >= 2,
        "pages 2 and 3 were read at the same time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_changes_while_read_is_read_again_page_by_page() {
    let setup = setup(250, 0, fast_jobs()).await;
    // Pages 2 and 3 are slow; a deployment that sorts into the first page appears while they
    // are read, shifting every later one: read by offset, one would come twice and the new one
    // not at all.
    let gate = Gate::new();
    setup
        .fake()
        .faults()
        .add(FaultRule::new("/deployments/", gate.fault(), Some(2)).after(1));
    let client = setup.client.clone();
    let listing = tokio::spawn(async move { client.list_deployments().await });
    gate.held(1).await;
    setup.fake().add_deployment(DeploymentSeed {
        id: object_id(9_999),
        ..DeploymentSeed::new("model-0050a", DeploymentStatus::Active)
    });
    gate.open();
    let listed = listing.await.unwrap().unwrap();
    assert_eq!(listed.len(), 251, "the late deployment is in the list");
    let mut ids: Vec<_> = listed.iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 251, "and no deployment twice");
    assert!(listed.iter().any(|d| d.id == object_id(9_999)));
}
