//! `schedule status`: the schedule, its next run, its last run and last success, read from the
//! CronJob and its Jobs; overdue (exit 1) when two scheduled runs in a row passed without a
//! success, or when the last run failed.

use std::ffi::OsStr;

use anyhow::Context;
use chrono::{DateTime, Utc};
use mlbackup_helper::text::escape_controls;
use serde::Serialize;
use serde_json::Value;

use super::run_now::{cannot_start, finished, newest_pod};
use super::scheduled_run::{LAST_ATTEMPT, LAST_SUCCESS, RunRecord, RunStatus};
use super::{Kind, Schedule, ScheduleError, selector};
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
    let cron_job = objects::get(&cluster, &Kind::CronJob.resource(), namespace, &target.name)
        .await
        .with_context(context)?
        .ok_or_else(|| ScheduleError::NotInstalled {
            name: target.name.clone(),
            namespace: namespace.clone(),
        })
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
    let mut outcome = status_of(&cron_job.value, &jobs, &records, Utc::now());
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
        || matches!(
            outcome.last_run_result.as_deref(),
            Some("failed" | "cannot start")
        ) {
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

/// The location in the CronJob's container arguments (`--dir LOCATION`).
fn location_of(cron_job: &Value) -> Option<&str> {
    let args = cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()?;
    let at = args.iter().position(|a| a == "--dir")?;
    args.get(at + 1)?.as_str()
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

/// What the CronJob, its Jobs and the run records say, at `now`. The records are the runs' own
/// word and outlive the Jobs Kubernetes removes: they come first.
pub fn status_of(
    cron_job: &Value,
    jobs: &[Value],
    records: &Records,
    now: DateTime<Utc>,
) -> StatusOutcome {
    let spec = &cron_job["spec"];
    let expression = spec["schedule"].as_str().unwrap_or_default().to_string();
    let time_zone = spec["timeZone"].as_str().map(str::to_string);
    let schedule = Schedule::parse(&expression, time_zone.as_deref()).ok();
    let last = jobs.iter().max_by_key(|job| {
        time(&job["status"]["startTime"]).or_else(|| time(&job["metadata"]["creationTimestamp"]))
    });
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
        last_run_result: match &records.last_attempt {
            Some(attempt) => Some(
                match attempt.status {
                    RunStatus::Running => "running",
                    RunStatus::Succeeded => "succeeded",
                    RunStatus::Failed => "failed",
                    RunStatus::Interrupted => "interrupted",
                }
                .to_string(),
            ),
            None => last.map(|job| {
                match finished(job) {
                    Some((true, _)) => "succeeded",
                    Some((false, _)) => "failed",
                    None => "running",
                }
                .to_string()
            }),
        },
        last_success,
        last_run_problem: None,
        last_attempt: records.last_attempt.clone(),
        last_success_backup: records.last_success.as_ref().and_then(|r| r.backup.clone()),
        overdue,
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
    /// `succeeded`, `failed`, `interrupted` or `running`: the last attempt's record, else the
    /// newest Job's status; `cannot start` when the newest Job's pod waits for something missing.
    pub last_run_result: Option<String>,
    /// Why the newest Job's pod cannot start: its name, the kubelet's waiting reason and message.
    pub last_run_problem: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    /// The last run's record in the location, when it could be read.
    pub last_attempt: Option<RunRecord>,
    /// The backup of the last success, from its record.
    pub last_success_backup: Option<String>,
    pub overdue: bool,
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
                let mut line = format!(
                    "Last attempt:   started {} by {}: {}",
                    printer::time(attempt.started),
                    escape_controls(&attempt.holder),
                    self.last_run_result.as_deref().unwrap_or_default()
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
             {attempt}\
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
            &Records::default(),
            now,
        );
        assert!(!fresh.overdue);
        assert_eq!(fresh.next_run, Some(at("2026-11-30T02:00:00Z")));
        let one_missed = status_of(
            &cron_job(Some("2026-11-28T02:01:00Z")),
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
            &Records::default(),
            now,
        );
        assert!(two_missed.overdue);
        let never = status_of(&cron_job(None), &[], &Records::default(), now);
        assert!(never.overdue);
        let failed = json!({"metadata": {"name": "mlbackup-run-x", "creationTimestamp": "2026-11-29T02:00:00Z"},
            "status": {"startTime": "2026-11-29T02:00:01Z", "conditions": [{"type": "Failed", "status": "True"}]}});
        let after_failure = status_of(
            &cron_job(Some("2026-11-29T02:01:00Z")),
            &[failed],
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
        let status = status_of(&cron_job(None), &[], &records, now);
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
        let status = status_of(&cron_job(None), &[], &records, now);
        assert_eq!(status.last_run_result.as_deref(), Some("failed"));
        assert!(status.overdue);
    }
}
