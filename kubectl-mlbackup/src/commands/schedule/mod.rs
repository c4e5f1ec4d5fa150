//! `schedule`: backups taken by the cluster itself, on a Kubernetes CronJob. Here what the
//! subcommands share: the objects' names, kinds and labels, the checks of the schedule (cron
//! expression, time zone), and the errors; one module per subcommand, `render` for the
//! manifests, `scheduled_run` for what the Job's container runs.

pub mod install;
pub mod render;
pub mod run_now;
pub mod scheduled_run;
pub mod status;
pub mod uninstall;

use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::cli::{GlobalArgs, ScheduleCommand, ScheduleTargetArgs};
use crate::cluster::list::ServedResource;
use crate::cluster::objects;
use crate::env::Env;
use crate::exit::{Exit, UsageError};
use crate::printer::Printer;

/// Label of every object install makes: who manages it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-mlbackup");
/// Label of every object install makes: the schedule's name.
pub const SCHEDULE_LABEL: &str = "kubectl-mlbackup/schedule";
/// Label of every object install makes: the schedule's namespace (the ClusterRole and its
/// binding are cluster-wide, and schedules of the same name may live in two namespaces).
pub const SCHEDULE_NAMESPACE_LABEL: &str = "kubectl-mlbackup/schedule-namespace";
/// Annotation of a Namespace install created (not one that was there): uninstall removes it
/// once no schedule is left in it.
pub const CREATED_NAMESPACE_ANNOTATION: &str = "kubectl-mlbackup/created-by-install";

/// The label selector of exactly the objects of one schedule.
pub fn selector(target: &ScheduleTargetArgs) -> String {
    format!(
        "{}={},{SCHEDULE_LABEL}={},{SCHEDULE_NAMESPACE_LABEL}={}",
        MANAGED_BY.0, MANAGED_BY.1, target.name, target.schedule_namespace
    )
}

/// The selector of every CronJob this plugin installed, of any schedule.
pub fn installed_selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

/// The location in a CronJob's container arguments (`--dir LOCATION`).
pub fn location_of(cron_job: &serde_json::Value) -> Option<&str> {
    let args = cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()?;
    let at = args.iter().position(|a| a == "--dir")?;
    args.get(at + 1)?.as_str()
}

/// The CronJob of the schedule `target`: one this plugin installed, as its labels say. A CronJob
/// of that name it did not install is no schedule (install would refuse to take it over, and
/// uninstall leaves it alone).
pub async fn installed_cron_job(
    cluster: &crate::cluster::Cluster,
    target: &ScheduleTargetArgs,
) -> anyhow::Result<crate::object::Object> {
    let namespace = &target.schedule_namespace;
    let found = objects::get(cluster, &Kind::CronJob.resource(), namespace, &target.name).await?;
    match found {
        Some(cron_job) if is_installed(&cron_job.value, target) => Ok(cron_job),
        found => Err(ScheduleError::NotInstalled {
            name: target.name.clone(),
            namespace: namespace.clone(),
            foreign_cron_job: found.is_some(),
        }
        .into()),
    }
}

/// Whether `object` carries the labels install gives the objects of the schedule `target`.
fn is_installed(object: &serde_json::Value, target: &ScheduleTargetArgs) -> bool {
    let labels = &object["metadata"]["labels"];
    labels[MANAGED_BY.0] == MANAGED_BY.1
        && labels[SCHEDULE_LABEL] == target.name.as_str()
        && labels[SCHEDULE_NAMESPACE_LABEL] == target.schedule_namespace.as_str()
}

/// The name of the ClusterRole and its binding: one per schedule, cluster-wide.
pub fn cluster_role_name(target: &ScheduleTargetArgs) -> String {
    format!(
        "kubectl-mlbackup-{}-{}",
        target.schedule_namespace, target.name
    )
}

/// The kinds install makes, in the order they are applied (what others refer to first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Namespace,
    ServiceAccount,
    ClusterRole,
    ClusterRoleBinding,
    ConfigMap,
    CronJob,
    Job,
    Pod,
    /// Never made by install: the user's --credentials-secret, checked before install.
    Secret,
}

impl Kind {
    /// What uninstall removes, in this order (the CronJob first, so it starts no new Job).
    pub const REMOVED: [Kind; 6] = [
        Kind::CronJob,
        Kind::Job,
        Kind::ConfigMap,
        Kind::ClusterRoleBinding,
        Kind::ClusterRole,
        Kind::ServiceAccount,
    ];

    pub fn resource(self) -> ServedResource {
        let (group, kind, plural, namespaced) = match self {
            Kind::Namespace => ("", "Namespace", "namespaces", false),
            Kind::ServiceAccount => ("", "ServiceAccount", "serviceaccounts", true),
            Kind::ClusterRole => (RBAC_GROUP, "ClusterRole", "clusterroles", false),
            Kind::ClusterRoleBinding => (
                RBAC_GROUP,
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
            ),
            Kind::ConfigMap => ("", "ConfigMap", "configmaps", true),
            Kind::CronJob => ("batch", "CronJob", "cronjobs", true),
            Kind::Job => ("batch", "Job", "jobs", true),
            Kind::Pod => ("", "Pod", "pods", true),
            Kind::Secret => ("", "Secret", "secrets", true),
        };
        ServedResource {
            group: group.to_string(),
            version: "v1".to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
        }
    }

    /// The kind of an object's `kind` field.
    pub fn of(kind: &str) -> Option<Kind> {
        [
            Kind::Namespace,
            Kind::ServiceAccount,
            Kind::ClusterRole,
            Kind::ClusterRoleBinding,
            Kind::ConfigMap,
            Kind::CronJob,
            Kind::Job,
            Kind::Pod,
            Kind::Secret,
        ]
        .into_iter()
        .find(|k| k.resource().kind == kind)
    }
}

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The descriptors Kubernetes documents for a CronJob's schedule, each with its five fields.
const DESCRIPTORS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Whether a day-of-week field names day 7, alone, as a range's end or start, or in a list
/// (`7`, `5-7`, `1,7`, `7/2`), which robfig/cron (Kubernetes) refuses: its range is 0-6. A
/// step (`*/7`) is no day.
fn day_of_week_has_7(field: &str) -> bool {
    field.split(',').any(|part| {
        let range = part.split('/').next().unwrap_or_default();
        range.split('-').any(|bound| {
            bound
                .trim_start_matches('0')
                .parse::<u32>()
                .is_ok_and(|day| day > 6)
        })
    })
}

/// A checked cron expression with its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    pub time_zone: Option<String>,
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

impl Schedule {
    /// Checks `expression` as the CronJob controller reads it (5 fields, or a descriptor like
    /// `@daily`; no `TZ=` prefix: that is --time-zone) and `time_zone` as an IANA name.
    pub fn parse(expression: &str, time_zone: Option<&str>) -> Result<Schedule, UsageError> {
        let expression = expression.trim();
        let usage = |message: String, hint: &str| UsageError {
            message,
            hint: hint.to_string(),
        };
        let cron_hint = "five fields: minute hour day-of-month month day-of-week, like '0 3 * * *' \
                         (daily at 03:00) or '30 */6 * * 1-5'; or @hourly, @daily, @weekly, @monthly";
        if expression.starts_with("TZ=") || expression.starts_with("CRON_TZ=") {
            return Err(usage(
                format!(
                    "--schedule `{expression}`: a time zone in the expression is not supported by CronJobs"
                ),
                "give the time zone with --time-zone, like --time-zone Europe/Berlin",
            ));
        }
        // The descriptors Kubernetes documents, as five fields for the parser here (the CronJob
        // gets the descriptor as given). robfig/cron refuses others (`@reboot`), and `@every`
        // is no calendar schedule that the next and the overdue runs could be computed from.
        let fields_of_descriptor = if expression.starts_with('@') {
            Some(
                DESCRIPTORS
                    .iter()
                    .find(|(descriptor, _)| *descriptor == expression)
                    .map(|(_, fields)| *fields)
                    .ok_or_else(|| {
                        usage(
                            format!(
                                "--schedule `{expression}` is not one of the descriptors \
                                 Kubernetes documents for CronJobs: {}",
                                DESCRIPTORS
                                    .iter()
                                    .map(|(d, _)| *d)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            cron_hint,
                        )
                    })?,
            )
        } else {
            None
        };
        let fields = expression.split_whitespace().count();
        if fields_of_descriptor.is_none() && fields != 5 {
            return Err(usage(
                format!("--schedule `{expression}` has {fields} fields, not 5"),
                cron_hint,
            ));
        }
        // Kubernetes parses schedules with robfig/cron's standard parser: no `L`, `W` or `#`
        // (which croner would take), so the API server would refuse them.
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if let [_, _, day_of_month, _, day_of_week] = fields.as_slice() {
            let extension = |field: &str, letters: &[char]| {
                field
                    .chars()
                    .any(|c| letters.contains(&c.to_ascii_uppercase()))
            };
            if extension(day_of_month, &['L', 'W', '#']) || extension(day_of_week, &['L', '#']) {
                return Err(usage(
                    format!(
                        "--schedule `{expression}` uses `L`, `W` or `#`, which Kubernetes \
                         CronJobs do not support"
                    ),
                    cron_hint,
                ));
            }
            // Its days of the week are 0-6: Sunday is 0, never 7 (which croner would take).
            if day_of_week_has_7(day_of_week) {
                return Err(usage(
                    format!(
                        "--schedule `{expression}`: day-of-week 7 is not accepted by Kubernetes \
                         CronJobs (their days of the week are 0-6, Sunday is 0)"
                    ),
                    "write Sunday as 0 or SUN, like '0 3 * * 0' or '0 3 * * 1-5,0'",
                ));
            }
        }
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(fields_of_descriptor.unwrap_or(expression))
            .map_err(|err| {
                usage(
                    format!("--schedule `{expression}` is not a valid cron expression: {err}"),
                    cron_hint,
                )
            })?;
        let tz = match time_zone {
            None => chrono_tz::UTC,
            Some(name) => chrono_tz::Tz::from_str(name).map_err(|_| {
                usage(
                    format!("--time-zone `{name}` is not a known time zone"),
                    "an IANA time zone name, like Europe/Berlin, America/New_York or UTC",
                )
            })?,
        };
        let schedule = Schedule {
            expression: expression.to_string(),
            time_zone: time_zone.map(str::to_string),
            cron,
            tz,
        };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(usage(
                format!("--schedule `{expression}` never runs (no date matches it)"),
                cron_hint,
            ));
        }
        Ok(schedule)
    }

    /// The last run strictly before `before`.
    pub fn previous_before(&self, before: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&before.with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The time a success must be newer than, at `now`: the run before the latest one (the
    /// latest may still be running, or just missed its start), so a success is overdue only
    /// when two scheduled runs in a row have passed without one.
    pub fn success_due_since(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous_before(self.previous_before(now)?)
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Failures of the schedule commands that are not the cluster's.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("there is no schedule `{name}` in the namespace `{namespace}`")]
    NotInstalled {
        name: String,
        namespace: String,
        /// A CronJob of that name is there, but this plugin did not install it.
        foreign_cron_job: bool,
    },
    #[error("the run {job} failed{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    RunFailed {
        job: String,
        reason: Option<String>,
        /// Its pod wrote a log (shown above the error).
        logged: bool,
    },
    #[error("the run {job} cannot start: its pod {problem}")]
    RunCannotStart {
        job: String,
        namespace: String,
        /// The pod's name and the kubelet's waiting reason and message.
        problem: String,
        /// The Job's `activeDeadlineSeconds`, as a duration.
        deadline: Option<String>,
    },
    #[error(
        "the schedule `{schedule}` has a run that has not ended: the Job {job}; a second run \
         would find the location locked and fail"
    )]
    RunActive {
        schedule: String,
        job: String,
        namespace: String,
    },
    #[error("the object {kind} `{name}` exists and was not made by this schedule")]
    NotOurs { kind: String, name: String },
    #[error(
        "--credentials-secret: there is no Secret `{secret}` in the namespace `{namespace}`{}",
        if *namespace_missing { " (the namespace does not exist yet, so neither can the Secret)" } else { "" }
    )]
    NoCredentialsSecret {
        secret: String,
        namespace: String,
        namespace_missing: bool,
    },
    #[error(
        "--credentials-secret: the Secret `{secret}` in the namespace `{namespace}` has no key {}",
        missing.join(" and no key ")
    )]
    CredentialsKeysMissing {
        secret: String,
        namespace: String,
        missing: Vec<String>,
    },
    #[error(
        "--credentials-secret: in the Secret `{secret}` in the namespace `{namespace}`, {} empty",
        if empty.len() == 1 { format!("the key {} is", empty[0]) } else { format!("the keys {} are", empty.join(" and ")) }
    )]
    CredentialsKeysEmpty {
        secret: String,
        namespace: String,
        empty: Vec<String>,
    },
}

/// The command that makes a credentials Secret the schedule's pod can use (no value in it: the
/// user fills them in, the secret key from a file so that it stays out of the shell history).
fn create_secret_command(secret: &str, namespace: &str) -> String {
    format!(
        "kubectl create secret generic {secret} -n {namespace} \
         --from-literal=AWS_ACCESS_KEY_ID=... --from-file=AWS_SECRET_ACCESS_KEY=..."
    )
}

impl ScheduleError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ScheduleError::NotInstalled {
                name,
                namespace,
                foreign_cron_job: true,
            } => Some(format!(
                "the CronJob `{name}` in the namespace `{namespace}` exists, but kubectl-mlbackup \
                 did not install it (it lacks the label {}={}): this plugin leaves it alone; name \
                 a schedule it installed with --name and --schedule-namespace, or install one \
                 under another --name",
                MANAGED_BY.0, MANAGED_BY.1
            )),
            ScheduleError::NotInstalled { .. } => Some(
                "install it with `kubectl mlbackup schedule install`, or name another with --name and \
                 --schedule-namespace"
                    .into(),
            ),
            ScheduleError::RunFailed {
                job, logged: true, ..
            } => Some(format!(
                "the log above ends the pod's; see it whole with `kubectl logs job/{job}`"
            )),
            // At the deadline the Job controller deletes the pod, and its log with it.
            ScheduleError::RunFailed {
                reason: Some(reason),
                logged: false,
                ..
            } if reason.starts_with("DeadlineExceeded") => Some(
                "the run did not end within the schedule's --timeout (the Job's \
                 activeDeadlineSeconds), and Kubernetes deleted its pod, log included; install \
                 the schedule again with a larger --timeout if the backups need longer"
                    .into(),
            ),
            ScheduleError::RunFailed {
                job, logged: false, ..
            } => Some(format!(
                "its pod wrote no log (its state, when shown above, says why); see its events \
                 with `kubectl describe pods -l job-name={job}`"
            )),
            ScheduleError::RunCannotStart {
                job,
                namespace,
                deadline,
                ..
            } => Some(format!(
                "fix what it names (a Secret's missing key: add it to the Secret); the kubelet \
                 keeps trying and the run starts by itself once it is fixed{}. Until then the Job \
                 counts as the schedule's running run, so scheduled runs are skipped; give up on \
                 it with `kubectl delete job {job} -n {namespace}`",
                deadline
                    .as_deref()
                    .map(|d| format!(", unless the Job's deadline ({d} from its start) fails it first"))
                    .unwrap_or_default()
            )),
            ScheduleError::RunActive { job, namespace, .. } => Some(format!(
                "wait for it to end (`kubectl mlbackup schedule status` shows it), or, if it is \
                 stuck, give up on it with `kubectl delete job {job} -n {namespace}` and run \
                 again"
            )),
            ScheduleError::NotOurs { .. } => Some(
                "choose another --name, or remove that object if it is a leftover".into(),
            ),
            ScheduleError::NoCredentialsSecret {
                secret,
                namespace,
                namespace_missing,
            } => Some(format!(
                "create it before installing{}: `{}`",
                if *namespace_missing {
                    format!(", in a new namespace (`kubectl create namespace {namespace}`)")
                } else {
                    String::new()
                },
                create_secret_command(secret, namespace)
            )),
            ScheduleError::CredentialsKeysMissing {
                secret, namespace, ..
            }
            | ScheduleError::CredentialsKeysEmpty {
                secret, namespace, ..
            } => Some(format!(
                "the pod reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from it (and \
                 AWS_SESSION_TOKEN when present); make it again with them: `kubectl delete secret \
                 {secret} -n {namespace}`, then `{}`",
                create_secret_command(secret, namespace)
            )),
        }
    }
}

pub async fn run(
    global: &GlobalArgs,
    command: &ScheduleCommand,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    match command {
        ScheduleCommand::Install(args) => install::run(global, args, env, printer).await,
        ScheduleCommand::RunNow(args) => run_now::run(global, args, env, printer).await,
        ScheduleCommand::Uninstall(args) => uninstall::run(global, args, env, printer).await,
        ScheduleCommand::Status(args) => status::run(global, args, env, printer).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_run_past_its_deadline_is_hinted_that_its_pod_is_gone() {
        let failed = |reason: &str| ScheduleError::RunFailed {
            job: "mlbackup-run-x".into(),
            reason: Some(reason.into()),
            logged: false,
        };
        let hint = failed("DeadlineExceeded: Job was active longer than specified deadline")
            .hint()
            .unwrap();
        assert!(
            hint.contains("--timeout") && hint.contains("deleted its pod"),
            "{hint}"
        );
        let hint = failed("BackoffLimitExceeded: Job has reached the specified backoff limit")
            .hint()
            .unwrap();
        assert!(
            hint.contains("kubectl describe pods -l job-name=mlbackup-run-x"),
            "{hint}"
        );
    }

    #[test]
    fn a_schedule_is_five_fields_in_a_known_time_zone() {
        let daily = Schedule::parse("0 3 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            daily.next_after(at("2026-11-29T12:00:00Z")),
            Some(at("2026-11-30T02:00:00Z"))
        );
        // Summer time: 03:00 in Berlin is 01:00 UTC.
        assert_eq!(
            daily.next_after(at("2026-07-01T12:00:00Z")),
            Some(at("2026-07-02T01:00:00Z"))
        );
        assert!(Schedule::parse("@daily", None).is_ok());
        let six = Schedule::parse("0 0 3 * * *", None).unwrap_err();
        assert_eq!(six.message, "--schedule `0 0 3 * * *` has 6 fields, not 5");
        let bad = Schedule::parse("61 3 * * *", None).unwrap_err();
        assert!(
            bad.message
                .starts_with("--schedule `61 3 * * *` is not a valid cron expression"),
            "{}",
            bad.message
        );
        let zone = Schedule::parse("0 3 * * *", Some("Europe/Berln")).unwrap_err();
        assert_eq!(
            zone.message,
            "--time-zone `Europe/Berln` is not a known time zone"
        );
        let tz = Schedule::parse("TZ=UTC 0 3 * * *", None).unwrap_err();
        assert!(tz.hint.contains("--time-zone"));
        // What robfig/cron (Kubernetes) refuses, and what never comes.
        for extension in ["0 3 L * *", "0 3 15W * *", "0 3 * * 5#2", "0 3 * * 5L"] {
            let err = Schedule::parse(extension, None).unwrap_err();
            assert!(
                err.message.contains("`L`, `W` or `#`"),
                "{extension}: {err}"
            );
        }
        assert!(Schedule::parse("0 3 * JUL SAT", None).is_ok(), "names stay");
        // Day-of-week 7 (Sunday to croner), refused by robfig/cron: alone, in a range or list.
        for seven in [
            "0 3 * * 7",
            "0 3 * * 5-7",
            "0 3 * * 1,7",
            "0 3 * * 7/2",
            "0 3 * * 07",
        ] {
            let err = Schedule::parse(seven, None).unwrap_err();
            assert_eq!(
                err.message,
                format!(
                    "--schedule `{seven}`: day-of-week 7 is not accepted by Kubernetes CronJobs \
                     (their days of the week are 0-6, Sunday is 0)"
                ),
            );
            assert!(err.hint.contains("Sunday as 0 or SUN"), "{}", err.hint);
        }
        for fine in [
            "0 3 * * 0",
            "0 3 * * 0-6",
            "0 3 * * */7",
            "0 3 7 * 1",
            "0 7 * * 1-5",
        ] {
            assert!(Schedule::parse(fine, None).is_ok(), "{fine}");
        }
        // The descriptors Kubernetes documents; others in our own words.
        let hourly = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(
            hourly.next_after(at("2026-11-29T12:30:00Z")),
            Some(at("2026-11-29T13:00:00Z"))
        );
        for descriptor in [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
        ] {
            let schedule = Schedule::parse(descriptor, None).unwrap();
            assert_eq!(
                schedule.expression, descriptor,
                "the CronJob gets it as given"
            );
        }
        for unsupported in ["@every 1h", "@reboot", "@DAILY", "@fortnightly"] {
            let err = Schedule::parse(unsupported, None).unwrap_err();
            assert_eq!(
                err.message,
                format!(
                    "--schedule `{unsupported}` is not one of the descriptors Kubernetes \
                     documents for CronJobs: @yearly, @annually, @monthly, @weekly, @daily, \
                     @midnight, @hourly"
                )
            );
        }
        assert!(
            Schedule::parse("0 0 29 2 *", None).is_ok(),
            "leap days come"
        );
        let never = Schedule::parse("0 0 31 2 *", None).unwrap_err();
        assert_eq!(
            never.message,
            "--schedule `0 0 31 2 *` never runs (no date matches it)"
        );
    }
}
