//! `schedule status`: the schedule, its next run, its last run and last success, read from the
//! CronJob and its Jobs; overdue (exit 1) when two scheduled runs in a row passed without a
//! success, or when the newest run that ended failed.

use std::ffi::OsStr;

use anyhow::Context;
use chrono::{DateTime, Utc};
use mlbackup_helper::text::escape_controls;
use serde::Serialize;
use serde_json::Value;

use super::run_now::{cannot_start, finished, newest_pod};
use super::scheduled_run::{LAST_ATTEMPT, LAST_SUCCESS, RunRecord, RunStatus};
use super::{Kind, Schedule, location_of, selector};
use crate::cli::{GlobalArgs, ScheduleTargetArgs};
use crate::cluster::objects;
use crate::env::Env;
use crate::exit::Exit;
use crate::printer::{self, Printer, Render};
use crate::store::{RUNS_DIR, Store};

pub async fn run(
    global: &GlobalArgs,
    target: &ScheduleTargetArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let cluster = super::super::connect(global, env).await?;
    let namespace = &target.schedule_namespace;
    let context = || format!("cannot read the status of the schedule `{}`", target.name);
    let cron_job = super::installed_cron_job(&cluster, target)
        .await
        .with_context(context)?;
    let jobs: Vec<Value> = objects::list(
        &cluster,
        &Kind::Job.resource(),
        Some(namespace),
        &selector(target),
    )
    .await
    .with_context(context)?
    .into_iter()
    .map(|o| o.value)
    .collect();
    let records = read_records(&cron_job.value, &target.name, env, printer).await;
    // The pods name the Job the run record's holder (a pod) belongs to; pods that cannot be
    // listed leave the record matched to no Job, which status shows all the same.
    let pods: Vec<Value> = objects::list(
        &cluster,
        &Kind::Pod.resource(),
        Some(namespace),
        &selector(target),
    )
    .await
    .map(|pods| pods.into_iter().map(|o| o.value).collect())
    .unwrap_or_default();
    let mut outcome = status_of(&cron_job.value, &jobs, &pods, &records, Utc::now());
    // A last run whose pod the kubelet cannot start writes no record: its pod says why.
    let running = jobs.iter().find(|job| {
        job["metadata"]["name"].as_str() == outcome.last_run.as_deref() && finished(job).is_none()
    });
    if let Some(job) = running.and_then(|job| job["metadata"]["name"].as_str())
        && let Some(pod) = newest_pod(&cluster, namespace, job).await
        && let Some(why) = cannot_start(&pod.value)
    {
        outcome.last_run_result = Some("cannot start".to_string());
        outcome.last_run_problem = Some(format!("pod {}: {why}", pod.name));
    }
    let exit = if outcome.overdue
        || outcome.last_failed_run.is_some()
        || outcome.last_run_result.as_deref() == Some("cannot start")
    {
        Exit::Failure
    } else {
        Exit::Success
    };
    printer.data(&outcome)?;
    Ok(exit)
}

/// The run records the schedule's runs wrote into its location.
#[derive(Debug, Default)]
pub struct Records {
    pub last_attempt: Option<RunRecord>,
    pub last_success: Option<RunRecord>,
}

/// Reads the run records from the schedule's location with this machine's AWS settings (read
/// only); what cannot be read is said and the Jobs' statuses stand alone.
async fn read_records(cron_job: &Value, name: &str, env: &Env, printer: &Printer) -> Records {
    let Some(location) = location_of(cron_job) else {
        return Records::default();
    };
    let read = async {
        let store = Store::open_location(OsStr::new(location), true, env)?;
        let mut records = Records::default();
        for (file, slot) in [
            (LAST_ATTEMPT, &mut records.last_attempt),
            (LAST_SUCCESS, &mut records.last_success),
        ] {
            if let Some(bytes) = store.read_run_record(name, file).await? {
                *slot = Some(serde_json::from_slice(&bytes).map_err(|err| {
                    anyhow::anyhow!("{location}/{RUNS_DIR}/{name}/{file} is no run record: {err}")
                })?);
            }
        }
        anyhow::Ok(records)
    };
    match read.await {
        Ok(records) => records,
        Err(err) => {
            printer.warning(&format!(
                "cannot read the run records in {}: {}; showing what the Jobs say",
                escape_controls(location),
                escape_controls(&format!("{err:#}"))
            ));
            Records::default()
        }
    }
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A Job's result from its own status: its `Complete` or `Failed` condition, else `running`
/// while it has an active pod and `starting` before.
fn job_result(job: &Value) -> &'static str {
    match finished(job) {
        Some((true, _)) => "succeeded",
        Some((false, _)) => "failed",
        None if job["status"]["active"].as_u64().unwrap_or(0) > 0 => "running",
        None => "starting",
    }
}

/// A run record's status as `status` shows it.
fn record_result(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "interrupted",
    }
}

/// The Job whose pod wrote a run record: its holder is `POD (pid N)` (the pod's `HOSTNAME`), and
/// the pod's `job-name` label names its Job. `None` when the pod is gone or the run was no Job's.
fn job_of_record(record: &RunRecord, pods: &[Value]) -> Option<String> {
    let (host, _) = record.holder.rsplit_once(" (pid ")?;
    pods.iter()
        .find(|pod| pod["metadata"]["name"] == host)
        .and_then(|pod| pod["metadata"]["labels"]["job-name"].as_str())
        .map(str::to_string)
}

/// What the CronJob, its Jobs (and their pods) and the run records say, at `now`. Each Job's
/// result is its own status; the last attempt's record is shown as the run it belongs to (its
/// pod's Job, when that is still there). The records outlive the Jobs Kubernetes removes: the
/// last success and, without Jobs, the last result come from them.
pub fn status_of(
    cron_job: &Value,
    jobs: &[Value],
    pods: &[Value],
    records: &Records,
    now: DateTime<Utc>,
) -> StatusOutcome {
    let spec = &cron_job["spec"];
    let expression = spec["schedule"].as_str().unwrap_or_default().to_string();
    let time_zone = spec["timeZone"].as_str().map(str::to_string);
    let schedule = Schedule::parse(&expression, time_zone.as_deref()).ok();
    let started = |job: &Value| {
        time(&job["status"]["startTime"]).or_else(|| time(&job["metadata"]["creationTimestamp"]))
    };
    let last = jobs.iter().max_by_key(|job| started(job));
    let last_success = jobs
        .iter()
        .filter(|job| finished(job).is_some_and(|(ok, _)| ok))
        .filter_map(|job| time(&job["status"]["completionTime"]))
        .chain(time(&cron_job["status"]["lastSuccessfulTime"]))
        .chain(records.last_success.as_ref().and_then(|r| r.finished))
        .max();
    let created = time(&cron_job["metadata"]["creationTimestamp"]);
    let due_since = schedule.as_ref().and_then(|s| s.success_due_since(now));
    // Overdue: a success was due (two runs have passed since the schedule was made) and the
    // last one is older than that.
    let overdue = match (due_since, created) {
        (Some(due), Some(created)) if due > created => last_success.is_none_or(|s| s < due),
        _ => false,
    };
    let attempt_job = records
        .last_attempt
        .as_ref()
        .and_then(|attempt| job_of_record(attempt, pods))
        .filter(|job| jobs.iter().any(|j| j["metadata"]["name"] == job.as_str()));
    // The runs that ended, newest start first decides: every Job by its own status, and the
    // last attempt's record when it is no Job's that is still there (its Job was removed, or
    // it ran outside one).
    let mut ended: Vec<(Option<DateTime<Utc>>, bool, String)> = jobs
        .iter()
        .filter_map(|job| {
            finished(job).map(|(ok, _)| {
                let name = job["metadata"]["name"].as_str().unwrap_or_default();
                (started(job), !ok, name.to_string())
            })
        })
        .collect();
    if let Some(attempt) = records
        .last_attempt
        .as_ref()
        .filter(|_| attempt_job.is_none())
        && attempt.status != RunStatus::Running
    {
        ended.push((
            Some(attempt.started),
            attempt.status == RunStatus::Failed,
            format!("the run started {}", printer::time(attempt.started)),
        ));
    }
    let last_failed_run = ended
        .into_iter()
        .max_by_key(|(started, ..)| *started)
        .filter(|(_, failed, _)| *failed)
        .map(|(.., name)| name);
    StatusOutcome {
        schedule: cron_job["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        namespace: cron_job["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        cron: expression,
        time_zone,
        suspended: spec["suspend"] == true,
        next_run: schedule.as_ref().and_then(|s| s.next_after(now)),
        last_schedule: time(&cron_job["status"]["lastScheduleTime"]),
        last_run: last.and_then(|job| job["metadata"]["name"].as_str().map(str::to_string)),
        last_run_result: match last {
            Some(job) => Some(job_result(job).to_string()),
            None => records
                .last_attempt
                .as_ref()
                .map(|attempt| record_result(attempt.status).to_string()),
        },
        last_success,
        last_run_problem: None,
        last_attempt: records.last_attempt.clone(),
        last_attempt_job: attempt_job,
        last_success_backup: records.last_success.as_ref().and_then(|r| r.backup.clone()),
        overdue,
        last_failed_run,
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusOutcome {
    pub schedule: String,
    pub namespace: String,
    pub cron: String,
    pub time_zone: Option<String>,
    pub suspended: bool,
    pub next_run: Option<DateTime<Utc>>,
    pub last_schedule: Option<DateTime<Utc>>,
    /// The newest Job (scheduled or started by run-now).
    pub last_run: Option<String>,
    /// The newest Job's own status: `succeeded`, `failed`, `running`, `starting`, or `cannot
    /// start` when its pod waits for something missing; without Jobs, the last attempt's record
    /// (`succeeded`, `failed`, `interrupted` or `running`).
    pub last_run_result: Option<String>,
    /// Why the newest Job's pod cannot start: its name, the kubelet's waiting reason and message.
    pub last_run_problem: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    /// The last run's record in the location, when it could be read.
    pub last_attempt: Option<RunRecord>,
    /// The Job whose pod wrote the last attempt's record, while it is there.
    pub last_attempt_job: Option<String>,
    /// The backup of the last success, from its record.
    pub last_success_backup: Option<String>,
    pub overdue: bool,
    /// The newest run that ended (by its start), when it failed: `status` exits 1. A Job's
    /// name, or the start of a run that is no Job's any more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failed_run: Option<String>,
}

impl Render for StatusOutcome {
    fn render(&self) -> String {
        let when = |t: Option<DateTime<Utc>>| t.map_or_else(|| "never".to_string(), printer::time);
        let last_run = match (&self.last_run, &self.last_run_result) {
            (Some(job), Some(result)) => match &self.last_run_problem {
                Some(problem) => format!("{job} ({result}: {problem})"),
                None => format!("{job} ({result})"),
            },
            (None, Some(result)) => result.clone(),
            _ => "none".to_string(),
        };
        let attempt = match &self.last_attempt {
            Some(attempt) => {
                // The record's own status: it may be another Job's than the last run.
                let mut line = format!(
                    "Last attempt:   started {} by {}{}: {}",
                    printer::time(attempt.started),
                    escape_controls(&attempt.holder),
                    self.last_attempt_job
                        .as_deref()
                        .map(|job| format!(" of Job {job}"))
                        .unwrap_or_default(),
                    record_result(attempt.status)
                );
                if let Some(backup) = &attempt.backup {
                    line.push_str(&format!(", backup {}", escape_controls(backup)));
                }
                if let Some(error) = &attempt.error {
                    line.push_str(&format!(": {}", escape_controls(error)));
                }
                line + "\n"
            }
            None => String::new(),
        };
        // Why status exits 1 when the newest run is not the one that failed (it is running).
        let failed = match &self.last_failed_run {
            Some(run)
                if self.last_run.as_ref() != Some(run)
                    || self.last_run_result.as_deref() != Some("failed") =>
            {
                format!("Last ended:     {run} (failed)\n")
            }
            _ => String::new(),
        };
        let success_backup = self
            .last_success_backup
            .as_deref()
            .map(|b| format!(", backup {}", escape_controls(b)))
            .unwrap_or_default();
        format!(
            "Schedule:       {} in namespace {}\n\
             Cron:           {} ({}){}\n\
             Next run:       {}\n\
             Last scheduled: {}\n\
             Last run:       {last_run}\n\
             {failed}{attempt}\
             Last success:   {}{success_backup}{}\n",
            self.schedule,
            self.namespace,
            self.cron,
            self.time_zone.as_deref().unwrap_or("UTC"),
            if self.suspended { ", suspended" } else { "" },
            when(self.next_run),
            when(self.last_schedule),
            when(self.last_success),
            if self.overdue { " (OVERDUE)" } else { "" },
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn cron_job(last_success: Option<&str>) -> Value {
        json!({"metadata": {"name": "mlbackup", "namespace": "mlbackup", "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin"},
            "status": {"lastSuccessfulTime": last_success}})
    }

    #[test]
    fn a_success_is_overdue_after_two_missed_runs() {
        // Runs at 02:00 UTC. On the 29th at 12:00 the runs of the 29th and the 28th have passed.
        let now = at("2026-11-29T12:00:00Z");
        let fresh = status_of(
            &cron_job(Some("2026-11-29T02:01:00Z")),
            &[],
            &[],
            &Records::default(),
            now,
        );
        assert!(!fresh.overdue);
        assert_eq!(fresh.next_run, Some(at("2026-11-30T02:00:00Z")));
        let one_missed = status_of(
            &cron_job(Some("2026-11-28T02:01:00Z")),
            &[],
            &[],
            &Records::default(),
            now,
        );
        assert!(
            !one_missed.overdue,
            "the latest run may have been missed once"
        );
        let two_missed = status_of(
            &cron_job(Some("2026-11-27T02:01:00Z")),
            &[],
            &[],
            &Records::default(),
            now,
        );
        assert!(two_missed.overdue);
        let never = status_of(&cron_job(None), &[], &[], &Records::default(), now);
        assert!(never.overdue);
        let failed = json!({"metadata": {"name": "mlbackup-run-x", "creationTimestamp": "2026-11-29T02:00:00Z"},
            "status": {"startTime": "2026-11-29T02:00:01Z", "conditions": [{"type": "Failed", "status": "True"}]}});
        let after_failure = status_of(
            &cron_job(Some("2026-11-29T02:01:00Z")),
            &[failed],
            &[],
            &Records::default(),
            now,
        );
        assert_eq!(after_failure.last_run_result.as_deref(), Some("failed"));
    }

    #[test]
    fn the_run_records_come_before_the_jobs() {
        let now = at("2026-11-29T12:00:00Z");
        let record = |status, finished: &str| RunRecord {
            schedule: "mlbackup".into(),
            holder: "mlbackup-29-abcde (pid 1)".into(),
            started: at("2026-11-29T02:00:00Z"),
            finished: Some(at(finished)),
            status,
            backup: Some("lrs_backup_2026_11_29_03_00".into()),
            error: None,
        };
        // The Jobs are gone (history limits); the records still say the last success.
        let records = Records {
            last_attempt: Some(record(RunStatus::Succeeded, "2026-11-29T02:01:00Z")),
            last_success: Some(record(RunStatus::Succeeded, "2026-11-29T02:01:00Z")),
        };
        let status = status_of(&cron_job(None), &[], &[], &records, now);
        assert!(!status.overdue);
        assert_eq!(status.last_success, Some(at("2026-11-29T02:01:00Z")));
        assert_eq!(status.last_run_result.as_deref(), Some("succeeded"));
        assert_eq!(
            status.last_success_backup.as_deref(),
            Some("lrs_backup_2026_11_29_03_00")
        );
        // A failed attempt after an older success: failed, and overdue once two runs passed.
        let records = Records {
            last_attempt: Some(record(RunStatus::Failed, "2026-11-29T02:01:00Z")),
            last_success: Some(record(RunStatus::Succeeded, "2026-11-27T02:01:00Z")),
        };
        let status = status_of(&cron_job(None), &[], &[], &records, now);
        assert_eq!(status.last_run_result.as_deref(), Some("failed"));
        assert!(status.overdue);
    }

    /// Two Jobs of the schedule: the first succeeded and wrote the record, the second found the
    /// first's lock and failed (no record). The last run is the second's, failed, from its own
    /// status; the record is the first Job's, said so.
    #[test]
    fn each_jobs_result_is_its_own_and_the_record_is_matched_to_its_job() {
        let now = at("2026-11-29T12:00:00Z");
        let job = |name: &str, started: &str, condition: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": started},
                "status": {"startTime": started, "completionTime": started,
                    "conditions": [{"type": condition, "status": "True"}]}})
        };
        let jobs = [
            job("mlbackup-run-aaaaa", "2026-11-29T10:00:00Z", "Complete"),
            job("mlbackup-run-bbbbb", "2026-11-29T10:00:05Z", "Failed"),
        ];
        let pod = |name: &str, job: &str| json!({"metadata": {"name": name, "labels": {"job-name": job}}});
        let pods = [
            pod("mlbackup-run-aaaaa-x1x1x", "mlbackup-run-aaaaa"),
            pod("mlbackup-run-bbbbb-y2y2y", "mlbackup-run-bbbbb"),
        ];
        let record = RunRecord {
            schedule: "mlbackup".into(),
            holder: "mlbackup-run-aaaaa-x1x1x (pid 7)".into(),
            started: at("2026-11-29T10:00:01Z"),
            finished: Some(at("2026-11-29T10:00:09Z")),
            status: RunStatus::Succeeded,
            backup: Some("lrs_backup_2026_11_29_10_00".into()),
            error: None,
        };
        let records = Records {
            last_attempt: Some(record.clone()),
            last_success: Some(record),
        };
        let status = status_of(&cron_job(None), &jobs, &pods, &records, now);
        assert_eq!(status.last_run.as_deref(), Some("mlbackup-run-bbbbb"));
        assert_eq!(status.last_run_result.as_deref(), Some("failed"));
        assert_eq!(
            status.last_failed_run.as_deref(),
            Some("mlbackup-run-bbbbb")
        );
        assert_eq!(
            status.last_attempt_job.as_deref(),
            Some("mlbackup-run-aaaaa")
        );
        let shown = status.render();
        assert!(
            shown.contains("Last run:       mlbackup-run-bbbbb (failed)\n")
                && shown.contains(
                    "by mlbackup-run-aaaaa-x1x1x (pid 7) of Job mlbackup-run-aaaaa: succeeded, \
                     backup lrs_backup_2026_11_29_10_00\n"
                ),
            "{shown}"
        );
        // The failed one first, then a success: the newest run that ended decides.
        let jobs = [
            job("mlbackup-run-bbbbb", "2026-11-29T09:00:00Z", "Failed"),
            job("mlbackup-run-aaaaa", "2026-11-29T10:00:00Z", "Complete"),
        ];
        let status = status_of(&cron_job(None), &jobs, &pods, &records, now);
        assert_eq!(status.last_run_result.as_deref(), Some("succeeded"));
        assert_eq!(status.last_failed_run, None);
        // A failed run, then one still running: status names the failed one, why it exits 1.
        let mut running = job("mlbackup-run-ccccc", "2026-11-29T11:00:00Z", "Complete");
        running["status"] = json!({"startTime": "2026-11-29T11:00:00Z", "active": 1});
        let jobs = [
            job("mlbackup-run-bbbbb", "2026-11-29T10:30:00Z", "Failed"),
            running,
        ];
        let status = status_of(&cron_job(None), &jobs, &pods, &records, now);
        assert_eq!(status.last_run.as_deref(), Some("mlbackup-run-ccccc"));
        assert_eq!(
            status.last_failed_run.as_deref(),
            Some("mlbackup-run-bbbbb")
        );
        let shown = status.render();
        assert!(
            shown.contains("Last ended:     mlbackup-run-bbbbb (failed)\n"),
            "{shown}"
        );
        // A record whose pod is gone belongs to no Job that is left.
        let status = status_of(&cron_job(None), &jobs, &[], &records, now);
        assert_eq!(status.last_attempt_job, None);
    }
}
