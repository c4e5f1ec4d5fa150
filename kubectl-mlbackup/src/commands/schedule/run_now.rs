//! `schedule run-now`: a Job made from the CronJob's template, as `kubectl create job
//! --from=cronjob/NAME` makes it; with `--wait`, followed to its end.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Kind, ScheduleError};
use crate::cli::{GlobalArgs, ScheduleRunNowArgs};
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
    let cron_job = objects::get(&cluster, &Kind::CronJob.resource(), namespace, &target.name)
        .await
        .with_context(context)?
        .ok_or_else(|| ScheduleError::NotInstalled {
            name: target.name.clone(),
            namespace: namespace.clone(),
        })
        .with_context(context)?;
    let job = job_from(&cron_job.value);
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
    let mut outcome = RunOutcome {
        job: name.clone(),
        namespace: namespace.clone(),
        status: "started",
        log_tail: None,
    };
    if !args.wait {
        return report(printer, Finished::with(outcome, Exit::Success));
    }
    printer.step(&format!("Waiting for the Job {name} to finish"));
    let deadline = created["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map_or(Duration::from_secs(24 * 3600), Duration::from_secs)
        + WAIT_MARGIN;
    let mut ended: Option<(bool, Option<String>)> = None;
    crate::poll::until_deadline(deadline, POLL_INTERVAL, async || {
        let job = objects::get(&cluster, &Kind::Job.resource(), namespace, &name).await?;
        ended = job.as_ref().and_then(|job| finished(&job.value));
        Ok::<_, crate::cluster::ClusterError>(ended.is_some())
    })
    .await
    .with_context(|| format!("cannot follow the Job {name}"))?;
    outcome.log_tail = last_pod_log(&cluster, namespace, &name).await;
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

/// The end of the log of the Job's newest pod, when it can be read.
async fn last_pod_log(cluster: &Cluster, namespace: &str, job: &str) -> Option<String> {
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
    let pod = pods.last()?;
    let name = pod.value["metadata"]["name"].as_str()?;
    objects::pod_log_tail(cluster, namespace, name, LOG_TAIL_LINES)
        .await
        .ok()
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub job: String,
    pub namespace: String,
    /// `started`, `succeeded`, `failed` or `still running`.
    pub status: &'static str,
    /// The end of the pod's log (with --wait).
    pub log_tail: Option<String>,
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
        text.push_str(&format!(
            "Job {} in namespace {}: {}.\n",
            self.job, self.namespace, self.status
        ));
        text
    }
}
