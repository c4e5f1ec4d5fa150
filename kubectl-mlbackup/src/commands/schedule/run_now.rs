//! `schedule run-now`: a Job made from the CronJob's template, as `kubectl create job
//! --from=cronjob/NAME` makes it; with `--wait`, followed to its end.

use std::time::Duration;

use anyhow::Context;
use mlbackup_helper::text::escape_controls;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Kind, ScheduleError};
use crate::cli::{DEFAULT_SCHEDULE, GlobalArgs, ScheduleRunNowArgs, ScheduleTargetArgs};
use crate::cluster::Cluster;
use crate::cluster::objects::{self, Persist};
use crate::commands::{Finished, report};
use crate::env::Env;
use crate::exit::Exit;
use crate::printer::{Printer, Render};

/// How many lines of the pod's log are shown at the end of a run.
const LOG_TAIL_LINES: u32 = 20;
/// How often a Job is looked at while waiting.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Waiting beyond the Job's own deadline: the controller needs a moment to record the end.
const WAIT_MARGIN: Duration = Duration::from_secs(60);

pub async fn run(
    global: &GlobalArgs,
    args: &ScheduleRunNowArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let cluster = super::super::connect(global, env).await?;
    let target = &args.target;
    let namespace = &target.schedule_namespace;
    let context = || format!("cannot start a run of the schedule `{}`", target.name);
    let cron_job = super::installed_cron_job(&cluster, target)
        .await
        .with_context(context)?;
    // The CronJob forbids overlapping runs (`concurrencyPolicy: Forbid`), and two runs would
    // fight over the location's lock: a run that has not ended holds this one back.
    let jobs = objects::list(
        &cluster,
        &Kind::Job.resource(),
        Some(namespace),
        &super::selector(target),
    )
    .await
    .with_context(context)?;
    if let Some(active) = jobs.iter().find(|job| finished(&job.value).is_none()) {
        return Err(ScheduleError::RunActive {
            schedule: target.name.clone(),
            job: active.value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            namespace: namespace.clone(),
        })
        .with_context(context);
    }
    let job = job_from(&cron_job.value);
    // From the create on, Ctrl-C must not drop the command with "nothing was changed": the Job
    // exists (or may, while the request is out), so this command says what it left running.
    // The create itself is never cut short.
    let cancel = crate::commands::interrupt_token();
    let created = objects::create(
        &cluster,
        &Kind::Job.resource(),
        namespace,
        &job,
        Persist::Yes,
    )
    .await
    .with_context(context)?;
    let name = created["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let outcome = RunOutcome {
        job: name.clone(),
        namespace: namespace.clone(),
        status: "started",
        log_tail: None,
        pod_state: None,
    };
    if !args.wait && !cancel.is_cancelled() {
        return report(printer, Finished::with(outcome, Exit::Success));
    }
    tokio::select! {
        biased;
        () = cancel.cancelled() => {
            let error = crate::exit::Interrupted(format!(
                "interrupted: the Job {name} was started and keeps running in the cluster; \
                 watch it with `kubectl mlbackup schedule status{}`",
                target_flags(target)
            ));
            report(
                printer,
                Finished {
                    outcome,
                    exit: Exit::Interrupted,
                    error: Some(error.into()),
                },
            )
        }
        exit = follow(&cluster, &created, outcome.clone(), printer) => exit,
    }
}

/// The flags that name a schedule other than the default one, for a command to suggest.
fn target_flags(target: &ScheduleTargetArgs) -> String {
    let mut flags = String::new();
    if target.name != DEFAULT_SCHEDULE {
        flags.push_str(&format!(" --name {}", target.name));
    }
    if target.schedule_namespace != DEFAULT_SCHEDULE {
        flags.push_str(&format!(
            " --schedule-namespace {}",
            target.schedule_namespace
        ));
    }
    flags
}

/// `--wait`: follows the Job `created` to its end, then reports it.
async fn follow(
    cluster: &Cluster,
    created: &Value,
    mut outcome: RunOutcome,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let name = outcome.job.clone();
    let namespace = &outcome.namespace.clone();
    printer.step(&format!("Waiting for the Job {name} to finish"));
    let deadline = created["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map_or(Duration::from_secs(24 * 3600), Duration::from_secs)
        + WAIT_MARGIN;
    let mut ended: Option<(bool, Option<String>)> = None;
    let mut stuck: Option<String> = None;
    // The whole wait is bounded, a slow answer included: never past the Job's own deadline and
    // the margin.
    let waited = tokio::time::timeout(
        deadline,
        crate::poll::until_deadline(deadline, POLL_INTERVAL, async || {
            let job = objects::get(cluster, &Kind::Job.resource(), namespace, &name).await?;
            ended = job.as_ref().and_then(|job| finished(&job.value));
            if ended.is_none() {
                stuck = newest_pod(cluster, namespace, &name).await.and_then(|pod| {
                    cannot_start(&pod.value).map(|why| format!("{}: {why}", pod.name))
                });
            }
            Ok::<_, crate::cluster::ClusterError>(ended.is_some() || stuck.is_some())
        }),
    )
    .await;
    if let Ok(result) = waited {
        result.with_context(|| format!("cannot follow the Job {name}"))?;
    }
    // A pod the kubelet cannot start waits for a person, not for time: say so now rather than
    // at the Job's deadline. The Job is left to start once that is fixed.
    if let Some(problem) = stuck {
        outcome.status = "cannot start";
        outcome.pod_state = Some(problem.clone());
        let error = ScheduleError::RunCannotStart {
            job: name.clone(),
            namespace: namespace.clone(),
            problem,
            deadline: created["spec"]["activeDeadlineSeconds"]
                .as_u64()
                .map(|s| crate::duration::format(Duration::from_secs(s))),
        };
        return report(
            printer,
            Finished {
                outcome,
                exit: Exit::Failure,
                error: Some(error.into()),
            },
        );
    }
    if let Ok(Some(pod)) =
        tokio::time::timeout(WAIT_MARGIN, newest_pod(cluster, namespace, &name)).await
    {
        outcome.log_tail = tokio::time::timeout(
            WAIT_MARGIN,
            objects::pod_log_tail(cluster, namespace, &pod.name, LOG_TAIL_LINES),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .filter(|log| !log.trim().is_empty());
        // Without a log, what the kubelet says is all there is (a missing Secret key, an image
        // that cannot be pulled).
        if outcome.log_tail.is_none() {
            outcome.pod_state =
                pod_problem(&pod.value).map(|problem| format!("{}: {problem}", pod.name));
        }
    }
    let (exit, error) = match ended {
        Some((true, _)) => {
            outcome.status = "succeeded";
            (Exit::Success, None)
        }
        Some((false, reason)) => {
            outcome.status = "failed";
            let error = ScheduleError::RunFailed {
                job: name.clone(),
                reason,
                logged: outcome.log_tail.is_some(),
            };
            (Exit::Failure, Some(error.into()))
        }
        None => {
            outcome.status = "still running";
            let error = anyhow::anyhow!(
                "the Job {name} did not finish within {}",
                crate::duration::format(deadline)
            );
            (Exit::Failure, Some(error))
        }
    };
    report(
        printer,
        Finished {
            outcome,
            exit,
            error,
        },
    )
}

/// The Job `kubectl create job --from=cronjob/NAME` makes: the template's labels, annotations
/// and spec, the CronJob as its controlling owner (so the CronJob counts it as one of its runs
/// and `concurrencyPolicy: Forbid` holds), and a generated name.
pub fn job_from(cron_job: &Value) -> Value {
    let metadata = &cron_job["metadata"];
    let template = &cron_job["spec"]["jobTemplate"];
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations["cronjob.kubernetes.io/instantiate"] = json!("manual");
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": format!("{}-run-", metadata["name"].as_str().unwrap_or_default()),
            "namespace": metadata["namespace"],
            "labels": template["metadata"]["labels"],
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": metadata["name"],
                "uid": metadata["uid"], "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": template["spec"],
    })
}

/// `Some((true, None))` when the Job completed, `Some((false, reason))` when it failed (the
/// `Failed` condition's reason and message), `None` while it runs.
pub fn finished(job: &Value) -> Option<(bool, Option<String>)> {
    let conditions = job["status"]["conditions"].as_array()?;
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c["type"] == kind && c["status"] == "True")
    };
    if holds("Complete").is_some() {
        return Some((true, None));
    }
    holds("Failed").map(|c| {
        let reason = [c["reason"].as_str(), c["message"].as_str()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        (false, (!reason.is_empty()).then_some(reason))
    })
}

/// The Job's newest pod, with its name, when it can be read.
pub async fn newest_pod(cluster: &Cluster, namespace: &str, job: &str) -> Option<NamedPod> {
    let selector = format!("job-name={job}");
    let mut pods = objects::list(cluster, &Kind::Pod.resource(), Some(namespace), &selector)
        .await
        .ok()?;
    pods.sort_by_key(|p| {
        p.value["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    let pod = pods.pop()?;
    Some(NamedPod {
        name: pod.value["metadata"]["name"].as_str()?.to_string(),
        value: pod.value,
    })
}

pub struct NamedPod {
    pub name: String,
    pub value: Value,
}

/// The `waiting` reasons of a container the kubelet keeps retrying but that will not start
/// until someone changes something: a Secret, ConfigMap or key its env names is missing
/// (`CreateContainerConfigError`), its image cannot be pulled (`ImagePullBackOff`, after a
/// first `ErrImagePull` that may pass), its name is not an image's, the runtime refuses it.
const CANNOT_START: [&str; 4] = [
    "CreateContainerConfigError",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerError",
];

/// Why the pod's container cannot start (`REASON: message`), when its `waiting` reason is one
/// of [`CANNOT_START`]; `None` while it runs, is still being created, or ended.
pub fn cannot_start(pod: &Value) -> Option<String> {
    let waiting = pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .map(|c| &c["state"]["waiting"])
        .find(|w| {
            w["reason"]
                .as_str()
                .is_some_and(|r| CANNOT_START.contains(&r))
        })?;
    let reason = waiting["reason"].as_str()?;
    Some(
        match waiting["message"].as_str().filter(|m| !m.is_empty()) {
            Some(message) => format!("{reason}: {}", escape_controls(message)),
            None => reason.to_string(),
        },
    )
}

/// Why a pod's container did not run or ended, as the kubelet records it: the container's
/// `waiting` or `terminated` reason and message (`CreateContainerConfigError: couldn't find key
/// ...`), then the pod's own (`DeadlineExceeded: ...`, when the pod's own
/// `activeDeadlineSeconds` ended it). `None` when nothing is recorded.
pub fn pod_problem(pod: &Value) -> Option<String> {
    let says = |at: &Value| {
        let text = [at["reason"].as_str(), at["message"].as_str()]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        (!text.is_empty()).then_some(text)
    };
    let container = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|c| says(&c["state"]["waiting"]).or_else(|| says(&c["state"]["terminated"])));
    let mut parts: Vec<String> = container.into_iter().collect();
    // The pod's own, unless it repeats the container's.
    parts.extend(says(&pod["status"]).filter(|own| !parts.contains(own)));
    (!parts.is_empty()).then(|| escape_controls(&parts.join("; ")).into_owned())
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub job: String,
    pub namespace: String,
    /// `started`, `succeeded`, `failed`, `cannot start` (its pod waits for something missing)
    /// or `still running`.
    pub status: &'static str,
    /// The end of the pod's log (with --wait).
    pub log_tail: Option<String>,
    /// Without a log: the pod's name and why its container did not run or cannot start, as the
    /// kubelet says.
    pub pod_state: Option<String>,
}

impl Render for RunOutcome {
    fn render(&self) -> String {
        let mut text = String::new();
        if let Some(log) = &self.log_tail {
            text.push_str(&format!(
                "Log of the Job's pod (last {LOG_TAIL_LINES} lines):\n"
            ));
            for line in log.lines() {
                text.push_str(&format!("  | {line}\n"));
            }
        }
        if let Some(state) = &self.pod_state {
            if self.status == "cannot start" {
                text.push_str(&format!("The Job's pod cannot start: {state}\n"));
            } else {
                text.push_str(&format!("The Job's pod wrote no log: {state}\n"));
            }
        }
        text.push_str(&format!(
            "Job {} in namespace {}: {}.\n",
            self.job, self.namespace, self.status
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_command_names_a_schedule_other_than_the_default() {
        let target = |name: &str, namespace: &str| ScheduleTargetArgs {
            name: name.into(),
            schedule_namespace: namespace.into(),
        };
        assert_eq!(target_flags(&target("mlbackup", "mlbackup")), "");
        assert_eq!(
            target_flags(&target("nightly", "ops")),
            " --name nightly --schedule-namespace ops"
        );
        assert_eq!(
            target_flags(&target("mlbackup", "ops")),
            " --schedule-namespace ops"
        );
    }

    #[test]
    fn a_pods_problem_is_what_the_kubelet_says() {
        let waiting = json!({"status": {"phase": "Pending", "containerStatuses": [{"name": "backup",
            "state": {"waiting": {"reason": "CreateContainerConfigError",
                "message": "couldn't find key AWS_SECRET_ACCESS_KEY in Secret mlbackup/s3-backup"}}}]}});
        assert_eq!(
            pod_problem(&waiting).as_deref(),
            Some(
                "CreateContainerConfigError: couldn't find key AWS_SECRET_ACCESS_KEY in Secret \
                 mlbackup/s3-backup"
            )
        );
        let killed = json!({"status": {"phase": "Failed", "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline",
            "containerStatuses": [{"name": "backup", "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert_eq!(
            pod_problem(&killed).as_deref(),
            Some(
                "ContainerCreating; DeadlineExceeded: Pod was active on the node longer than the \
                 specified deadline"
            )
        );
        // The pod's own, when it repeats the container's, once.
        let mut failed = waiting.clone();
        failed["status"]["reason"] = json!("CreateContainerConfigError");
        failed["status"]["message"] =
            waiting["status"]["containerStatuses"][0]["state"]["waiting"]["message"].clone();
        assert_eq!(pod_problem(&failed), pod_problem(&waiting));
        let bare = json!({"status": {"phase": "Failed", "reason": "DeadlineExceeded"}});
        // Server text is printed with its control characters escaped.
        let mut odd = waiting.clone();
        odd["status"]["containerStatuses"][0]["state"]["waiting"]["message"] = json!("a\u{1b}[2Jb");
        assert_eq!(
            pod_problem(&odd).as_deref(),
            Some("CreateContainerConfigError: a\\x1b[2Jb")
        );
        assert_eq!(pod_problem(&bare).as_deref(), Some("DeadlineExceeded"));
        assert_eq!(pod_problem(&json!({"status": {"phase": "Pending"}})), None);
    }

    #[test]
    fn a_pod_cannot_start_while_the_kubelet_waits_for_a_person() {
        let pod = |reason: &str, message: Option<&str>| {
            let mut waiting = json!({"reason": reason});
            if let Some(message) = message {
                waiting["message"] = json!(message);
            }
            json!({"status": {"phase": "Pending",
                "containerStatuses": [{"name": "backup", "state": {"waiting": waiting}}]}})
        };
        assert_eq!(
            cannot_start(&pod(
                "CreateContainerConfigError",
                Some("secret \"s3-backup\" not found")
            ))
            .as_deref(),
            Some("CreateContainerConfigError: secret \"s3-backup\" not found")
        );
        assert_eq!(
            cannot_start(&pod("ImagePullBackOff", None)).as_deref(),
            Some("ImagePullBackOff")
        );
        // Still being made, or a first pull that may pass: wait.
        assert_eq!(cannot_start(&pod("ContainerCreating", None)), None);
        assert_eq!(cannot_start(&pod("ErrImagePull", Some("timeout"))), None);
        let running = json!({"status": {"phase": "Running", "containerStatuses": [{"name": "backup",
            "state": {"running": {"startedAt": "2026-11-29T02:00:00Z"}}}]}});
        assert_eq!(cannot_start(&running), None);
    }
}
