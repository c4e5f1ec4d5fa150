//! Retention rules (`--keep-last`, `--keep-daily`, `--keep-weekly`, `--keep-monthly`,
//! `--keep-within`): which backups they keep and which go, and why. Pure: it sees only each
//! backup's name, creation time and whether it is complete, wherever the backups are stored.
//!
//! The semantics are restic's and borg's. Backups are taken newest first (ties: the greater name
//! first, as `_2` follows its twin). A backup is kept when any rule keeps it:
//! - `keep-last N`: the N newest complete backups;
//! - `keep-daily N` (weekly, monthly): the newest complete backup of each of the N newest days
//!   (ISO 8601 weeks, months) that have complete backups: days without one do not count;
//! - `keep-within D`: complete backups created at most D before now.
//!
//! Days, weeks and months are those of the given time zone. Whatever the rules say, the newest
//! complete backup that verifies is kept (a caller-supplied check, asked newest first until one
//! passes; when none passes, the newest complete one), a partial backup younger than a day is
//! kept (its backup may still be running) and an older one is deleted. Partial backups never
//! count for a rule.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jiff::tz::TimeZone;

/// Parses `--keep-within` (of `prune` and of `schedule install`, one rule for both): a duration
/// longer than 0, since `0s` keeps no backup by its age (it would keep only what the other
/// rules and the newest verified backup keep). The refusal repeats what was typed.
pub fn parse_keep_within(text: &str) -> Result<Duration, String> {
    let within = crate::duration::parse(text)?;
    if within.is_zero() {
        return Err(format!(
            "`{}` keeps no backup by its age: give a duration longer than 0, like 7d, or leave \
             --keep-within out",
            text.trim()
        ));
    }
    Ok(within)
}

/// A partial backup younger than this may belong to a backup that is still running.
pub const PARTIAL_GRACE: Duration = Duration::from_secs(86_400);

/// The rules, as the flags give them; `None` is a rule not asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_within: Option<Duration>,
}

impl Policy {
    /// Whether a calendar rule is asked for (the time zone matters only then).
    pub fn uses_calendar(&self) -> bool {
        self.keep_daily.is_some() || self.keep_weekly.is_some() || self.keep_monthly.is_some()
    }
}

/// What the rules see of one backup.
#[derive(Debug, Clone)]
pub struct Backup<'a> {
    pub name: &'a str,
    pub created_at: DateTime<Utc>,
    /// False for a partial backup (unfinished: running, failed or interrupted).
    pub complete: bool,
}

/// Why a backup is kept or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The newest complete backup that verifies: never deleted.
    NewestVerified,
    /// The newest complete backup, when none verifies: never deleted either, so that prune
    /// never leaves no complete backup at all (a damaged one may still hold what is needed).
    NewestNoneVerifies,
    /// `keep-last`: the `rank`-th newest complete backup.
    Last { rank: u32 },
    /// `keep-daily`: the newest backup of this day (`2026-11-21`).
    Daily(String),
    /// `keep-weekly`: the newest backup of this ISO week (`2026-W47`).
    Weekly(String),
    /// `keep-monthly`: the newest backup of this month (`2026-11`).
    Monthly(String),
    /// `keep-within`: created at most this long ago.
    Within(Duration),
    /// Partial and younger than [`PARTIAL_GRACE`].
    PartialRecent,
    /// Partial and older than [`PARTIAL_GRACE`]: deleted.
    PartialStale,
    /// Complete, but no rule keeps it: deleted. Why each rule given passed it over (`not
    /// among the 3 newest`, `2026-11-21 has a newer backup`, `older than 7d`).
    NoRule(Vec<String>),
    /// A complete backup newer than the one kept as [`Why::NewestVerified`] failed that check
    /// (a note beside the decision, not a reason for it).
    DoesNotVerify(String),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::NewestVerified => f.write_str("newest complete backup that verifies"),
            Why::NewestNoneVerifies => {
                f.write_str("newest complete backup (none verifies: kept as the last one)")
            }
            Why::Last { rank } => write!(f, "keep-last #{rank}"),
            Why::Daily(day) => write!(f, "keep-daily {day}"),
            Why::Weekly(week) => write!(f, "keep-weekly {week}"),
            Why::Monthly(month) => write!(f, "keep-monthly {month}"),
            Why::Within(limit) => write!(f, "keep-within {}", crate::duration::format(*limit)),
            Why::PartialRecent => f.write_str("partial, younger than a day: may still be written"),
            Why::PartialStale => f.write_str("partial, older than a day"),
            Why::NoRule(misses) if misses.is_empty() => f.write_str("no rule keeps it"),
            Why::NoRule(misses) => write!(f, "no rule keeps it: {}", misses.join(", ")),
            Why::DoesNotVerify(reason) => write!(f, "does not verify: {reason}"),
        }
    }
}

/// The verdict on one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Its index in the slice given to [`plan`].
    pub index: usize,
    pub keep: bool,
    /// Every reason that applies, the deciding ones first, notes last.
    pub why: Vec<Why>,
}

impl Decision {
    /// The reasons as one line, for a table or JSON.
    pub fn reason(&self) -> String {
        self.why
            .iter()
            .map(Why::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A calendar rule's state: how many buckets (days, weeks, months) it may keep in all, how many
/// it has kept, and the bucket it kept last.
struct Bucketing {
    unit: &'static str,
    count: u32,
    kept: u32,
    last: Option<String>,
}

impl Bucketing {
    fn new(unit: &'static str, count: Option<u32>) -> Option<Bucketing> {
        count.map(|count| Bucketing {
            unit,
            count,
            kept: 0,
            last: None,
        })
    }

    /// Keeps the backup when it opens a new bucket and the rule may keep more (`Ok` with the
    /// bucket); else says why not.
    fn offer(&mut self, bucket: String) -> Result<String, String> {
        if self.last.as_deref() == Some(bucket.as_str()) {
            return Err(format!("{bucket} has a newer backup"));
        }
        if self.kept == self.count {
            return Err(format!("beyond the {} newest {}s", self.count, self.unit));
        }
        self.kept += 1;
        self.last = Some(bucket.clone());
        Ok(bucket)
    }
}

/// Decides every backup, newest first. `verify(index)` checks the backup at `index` of
/// `backups`; it is asked for complete backups, newest first, until one passes (`Err` says why
/// one does not). The result has one decision per backup, newest first.
pub fn plan(
    backups: &[Backup<'_>],
    policy: &Policy,
    now: DateTime<Utc>,
    time_zone: &TimeZone,
    mut verify: impl FnMut(usize) -> Result<(), String>,
) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..backups.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&backups[a], &backups[b]);
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.name.cmp(a.name))
    });

    let mut verified: Option<usize> = None;
    let mut failed_checks: Vec<(usize, String)> = Vec::new();
    for &index in order.iter().filter(|&&i| backups[i].complete) {
        match verify(index) {
            Ok(()) => {
                verified = Some(index);
                break;
            }
            Err(reason) => failed_checks.push((index, reason)),
        }
    }
    let newest_complete = order.iter().copied().find(|&i| backups[i].complete);

    let mut rank = 0u32;
    let mut daily = Bucketing::new("day", policy.keep_daily);
    let mut weekly = Bucketing::new("week", policy.keep_weekly);
    let mut monthly = Bucketing::new("month", policy.keep_monthly);
    order
        .into_iter()
        .map(|index| {
            let backup = &backups[index];
            let age = (now - backup.created_at).to_std().unwrap_or(Duration::ZERO);
            let mut why = Vec::new();
            if !backup.complete {
                let keep = age < PARTIAL_GRACE;
                why.push(if keep {
                    Why::PartialRecent
                } else {
                    Why::PartialStale
                });
                return Decision { index, keep, why };
            }
            if verified == Some(index) {
                why.push(Why::NewestVerified);
            } else if verified.is_none() && newest_complete == Some(index) {
                why.push(Why::NewestNoneVerifies);
            }
            // Why each rule given passes this backup over, for when none keeps it.
            let mut misses = Vec::new();
            rank += 1;
            match policy.keep_last {
                Some(n) if rank <= n => why.push(Why::Last { rank }),
                Some(n) => misses.push(format!("not among the {n} newest")),
                None => {}
            }
            let date = time_zone.to_datetime(timestamp(backup.created_at)).date();
            let week = date.iso_week_date();
            let buckets = [
                (
                    &mut daily,
                    date.to_string(),
                    Why::Daily as fn(String) -> Why,
                ),
                (
                    &mut weekly,
                    format!("{:04}-W{:02}", week.year(), week.week()),
                    Why::Weekly,
                ),
                (
                    &mut monthly,
                    format!("{:04}-{:02}", date.year(), date.month()),
                    Why::Monthly,
                ),
            ];
            for (rule, bucket, reason) in buckets {
                match rule.as_mut().map(|rule| rule.offer(bucket)) {
                    Some(Ok(bucket)) => why.push(reason(bucket)),
                    Some(Err(miss)) => misses.push(miss),
                    None => {}
                }
            }
            match policy.keep_within {
                Some(limit) if age <= limit => why.push(Why::Within(limit)),
                Some(limit) => {
                    misses.push(format!("older than {}", crate::duration::format(limit)))
                }
                None => {}
            }
            let keep = !why.is_empty();
            if !keep {
                why.push(Why::NoRule(misses));
            }
            if let Some((_, reason)) = failed_checks.iter().find(|(i, _)| *i == index) {
                why.push(Why::DoesNotVerify(reason.clone()));
            }
            Decision { index, keep, why }
        })
        .collect()
}

/// The same instant for jiff's calendar.
fn timestamp(time: DateTime<Utc>) -> jiff::Timestamp {
    // A `DateTime<Utc>` always lies within jiff's range (years -9999..=9999) for backups the
    // plugin can read; the epoch stands in for anything outside it.
    jiff::Timestamp::new(time.timestamp(), time.timestamp_subsec_nanos() as i32)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn complete<'a>(name: &'a str, time: &str) -> Backup<'a> {
        Backup {
            name,
            created_at: at(time),
            complete: true,
        }
    }

    fn partial<'a>(name: &'a str, time: &str) -> Backup<'a> {
        Backup {
            complete: false,
            ..complete(name, time)
        }
    }

    fn utc() -> TimeZone {
        TimeZone::UTC
    }

    const NOW: &str = "2026-03-01T12:00:00Z";

    /// Plans with every complete backup verifying; returns the names kept and deleted, newest
    /// first.
    fn run(
        backups: &[Backup<'_>],
        policy: &Policy,
        time_zone: &TimeZone,
    ) -> (Vec<String>, Vec<String>) {
        split(
            backups,
            &plan(backups, policy, at(NOW), time_zone, |_| Ok(())),
        )
    }

    fn split(backups: &[Backup<'_>], decisions: &[Decision]) -> (Vec<String>, Vec<String>) {
        let names = |keep: bool| {
            decisions
                .iter()
                .filter(|d| d.keep == keep)
                .map(|d| backups[d.index].name.to_string())
                .collect()
        };
        (names(true), names(false))
    }

    fn why<'a>(backups: &[Backup<'_>], decisions: &'a [Decision], name: &str) -> &'a Decision {
        decisions
            .iter()
            .find(|d| backups[d.index].name == name)
            .unwrap()
    }

    /// A February of daily backups at 02:00 UTC, with a gap (Feb 10..=14 missing) and two on
    /// Feb 20.
    fn february() -> Vec<Backup<'static>> {
        let mut backups = Vec::new();
        for day in 1..=28u32 {
            if (10..=14).contains(&day) {
                continue;
            }
            let name: &'static str = Box::leak(format!("b{day:02}").into_boxed_str());
            let time: String = format!("2026-02-{day:02}T02:00:00Z");
            backups.push(complete(name, &time));
        }
        backups.push(complete("b20-evening", "2026-02-20T20:00:00Z"));
        backups
    }

    #[test]
    fn keep_last_counts_complete_backups_newest_first() {
        let backups = vec![
            complete("old", "2026-02-01T00:00:00Z"),
            partial("stale.partial", "2026-02-27T00:00:00Z"),
            complete("new", "2026-02-28T00:00:00Z"),
            complete("mid", "2026-02-15T00:00:00Z"),
        ];
        let policy = Policy {
            keep_last: Some(2),
            ..Policy::default()
        };
        let decisions = plan(&backups, &policy, at(NOW), &utc(), |_| Ok(()));
        let (keep, delete) = split(&backups, &decisions);
        assert_eq!(keep, ["new", "mid"]);
        assert_eq!(delete, ["stale.partial", "old"]);
        assert_eq!(
            why(&backups, &decisions, "new").why,
            [Why::NewestVerified, Why::Last { rank: 1 }]
        );
        assert_eq!(why(&backups, &decisions, "mid").reason(), "keep-last #2");
        assert_eq!(
            why(&backups, &decisions, "old").reason(),
            "no rule keeps it: not among the 2 newest"
        );
        assert_eq!(
            why(&backups, &decisions, "stale.partial").reason(),
            "partial, older than a day"
        );
    }

    #[test]
    fn keep_daily_takes_the_newest_of_each_day_and_skips_days_without_backups() {
        let backups = february();
        let policy = Policy {
            keep_daily: Some(16),
            ..Policy::default()
        };
        let (keep, _) = run(&backups, &policy, &utc());
        // 28..15 are 14 days, then the gap 14..10 does not count: 09 and 08 are the 15th and
        // 16th. On the 20th, the evening backup is the day's newest.
        let mut expected: Vec<String> = (15..=28)
            .rev()
            .map(|d| {
                if d == 20 {
                    "b20-evening".into()
                } else {
                    format!("b{d:02}")
                }
            })
            .collect();
        expected.extend(["b09".to_string(), "b08".to_string()]);
        assert_eq!(keep, expected);
        let decisions = plan(&backups, &policy, at(NOW), &utc(), |_| Ok(()));
        assert_eq!(
            why(&backups, &decisions, "b08").why,
            [Why::Daily("2026-02-08".into())]
        );
        assert_eq!(
            why(&backups, &decisions, "b20").reason(),
            "no rule keeps it: 2026-02-20 has a newer backup"
        );
        assert_eq!(
            why(&backups, &decisions, "b07").reason(),
            "no rule keeps it: beyond the 16 newest days"
        );
    }

    #[test]
    fn keep_weekly_uses_iso_weeks() {
        // 2026-01-01 is a Thursday: ISO week 2026-W01 runs Mon 2025-12-29 to Sun 2026-01-04.
        let backups = vec![
            complete("sun-w01", "2026-01-04T10:00:00Z"),
            complete("mon-w01", "2025-12-29T10:00:00Z"),
            complete("sun-w52", "2025-12-28T10:00:00Z"),
            complete("mon-w02", "2026-01-05T10:00:00Z"),
        ];
        let policy = Policy {
            keep_weekly: Some(3),
            ..Policy::default()
        };
        let decisions = plan(&backups, &policy, at(NOW), &utc(), |_| Ok(()));
        assert_eq!(
            split(&backups, &decisions),
            (
                vec!["mon-w02".into(), "sun-w01".into(), "sun-w52".into()],
                vec!["mon-w01".into()]
            )
        );
        assert_eq!(
            why(&backups, &decisions, "sun-w01").reason(),
            "keep-weekly 2026-W01"
        );
        assert_eq!(
            why(&backups, &decisions, "sun-w52").reason(),
            "keep-weekly 2025-W52"
        );
    }

    #[test]
    fn keep_monthly_keeps_the_last_backup_of_each_month() {
        let backups = vec![
            complete("jan-31", "2026-01-31T23:59:00Z"),
            complete("jan-01", "2026-01-01T00:00:00Z"),
            complete("dec-31", "2025-12-31T23:59:59Z"),
            complete("feb-01", "2026-02-01T00:00:00Z"),
            complete("oct-15", "2025-10-15T00:00:00Z"),
        ];
        let policy = Policy {
            keep_monthly: Some(3),
            ..Policy::default()
        };
        let decisions = plan(&backups, &policy, at(NOW), &utc(), |_| Ok(()));
        // November has no backup: October is the 4th month with one, beyond 3.
        assert_eq!(
            split(&backups, &decisions),
            (
                vec!["feb-01".into(), "jan-31".into(), "dec-31".into()],
                vec!["jan-01".into(), "oct-15".into()]
            )
        );
        assert_eq!(
            why(&backups, &decisions, "dec-31").reason(),
            "keep-monthly 2025-12"
        );
    }

    #[test]
    fn calendar_days_are_those_of_the_time_zone() {
        // 23:30 UTC on Feb 1 is 00:30 on Feb 2 in Berlin (UTC+1 in winter).
        let backups = vec![
            complete("late", "2026-02-01T23:30:00Z"),
            complete("early", "2026-02-01T08:00:00Z"),
        ];
        let policy = Policy {
            keep_daily: Some(2),
            ..Policy::default()
        };
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let decisions = plan(&backups, &policy, at(NOW), &berlin, |_| Ok(()));
        assert_eq!(
            why(&backups, &decisions, "late").why,
            [Why::NewestVerified, Why::Daily("2026-02-02".into())]
        );
        assert_eq!(
            why(&backups, &decisions, "early").why,
            [Why::Daily("2026-02-01".into())]
        );
        // In UTC both are on Feb 1: one day, one backup kept by the rule.
        let decisions = plan(&backups, &policy, at(NOW), &utc(), |_| Ok(()));
        assert_eq!(
            why(&backups, &decisions, "early").reason(),
            "no rule keeps it: 2026-02-01 has a newer backup"
        );
        // A month boundary moves with the zone as well: 2026-01-31T23:30Z is February in Berlin.
        let backups = vec![
            complete("feb", "2026-02-10T00:00:00Z"),
            complete("edge", "2026-01-31T23:30:00Z"),
        ];
        let monthly = Policy {
            keep_monthly: Some(2),
            ..Policy::default()
        };
        assert_eq!(run(&backups, &monthly, &berlin).1, ["edge"]);
        assert_eq!(run(&backups, &monthly, &utc()).1, Vec::<String>::new());
    }

    #[test]
    fn summer_time_changes_the_offset_not_the_day() {
        // Berlin is UTC+2 in summer: 22:30 UTC on Jul 1 is already Jul 2 there.
        let backups = vec![complete("summer", "2025-07-01T22:30:00Z")];
        let policy = Policy {
            keep_daily: Some(1),
            ..Policy::default()
        };
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let decisions = plan(&backups, &policy, at(NOW), &berlin, |_| Ok(()));
        assert_eq!(
            decisions[0].why,
            [Why::NewestVerified, Why::Daily("2025-07-02".into())]
        );
    }

    #[test]
    fn any_rule_keeps_a_backup_and_every_reason_is_listed() {
        let backups = february();
        let policy = Policy {
            keep_last: Some(1),
            keep_daily: Some(2),
            keep_weekly: Some(1),
            keep_monthly: Some(1),
            keep_within: Some(Duration::from_secs(3 * 86_400)),
        };
        let decisions = plan(
            &backups,
            &policy,
            at("2026-03-01T00:00:00Z"),
            &utc(),
            |_| Ok(()),
        );
        assert_eq!(
            why(&backups, &decisions, "b28").reason(),
            "newest complete backup that verifies; keep-last #1; keep-daily 2026-02-28; \
             keep-weekly 2026-W09; keep-monthly 2026-02; keep-within 3d"
        );
        assert_eq!(
            why(&backups, &decisions, "b27").reason(),
            "keep-daily 2026-02-27; keep-within 3d"
        );
        // Feb 26 at 02:00 is 2 days 22 hours before now: within 3 days.
        assert_eq!(why(&backups, &decisions, "b26").reason(), "keep-within 3d");
        assert_eq!(
            why(&backups, &decisions, "b25").reason(),
            "no rule keeps it: not among the 1 newest, beyond the 2 newest days, 2026-W09 has a \
             newer backup, 2026-02 has a newer backup, older than 3d"
        );
        let (keep, delete) = split(&backups, &decisions);
        assert_eq!(keep, ["b28", "b27", "b26"]);
        assert_eq!(delete.len(), backups.len() - 3);
    }

    #[test]
    fn ties_are_broken_by_name_the_greater_first() {
        let backups = vec![
            complete("lrs_backup_2026_02_01_10_00", "2026-02-01T10:00:00Z"),
            complete("lrs_backup_2026_02_01_10_00_2", "2026-02-01T10:00:00Z"),
        ];
        let policy = Policy {
            keep_daily: Some(1),
            ..Policy::default()
        };
        let (keep, delete) = run(&backups, &policy, &utc());
        assert_eq!(keep, ["lrs_backup_2026_02_01_10_00_2"]);
        assert_eq!(delete, ["lrs_backup_2026_02_01_10_00"]);
    }

    #[test]
    fn partials_never_count_and_go_after_a_day() {
        let backups = vec![
            partial("running.partial", "2026-03-01T06:00:00Z"),
            partial("failed.partial", "2026-02-27T06:00:00Z"),
            complete("done", "2026-02-26T06:00:00Z"),
        ];
        let policy = Policy {
            keep_last: Some(1),
            keep_daily: Some(1),
            keep_within: Some(Duration::from_secs(30 * 86_400)),
            ..Policy::default()
        };
        let decisions = plan(&backups, &policy, at(NOW), &utc(), |_| Ok(()));
        assert_eq!(
            split(&backups, &decisions),
            (
                vec!["running.partial".into(), "done".into()],
                vec!["failed.partial".into()]
            )
        );
        assert_eq!(
            why(&backups, &decisions, "running.partial").why,
            [Why::PartialRecent]
        );
        // The partial, within 30 days, is still deleted: no rule counts partials.
        assert_eq!(
            why(&backups, &decisions, "failed.partial").why,
            [Why::PartialStale]
        );
        assert_eq!(
            why(&backups, &decisions, "done").reason(),
            "newest complete backup that verifies; keep-last #1; keep-daily 2026-02-26; keep-within 30d"
        );
    }

    #[test]
    fn the_newest_backup_that_verifies_stays_when_newer_ones_do_not() {
        let backups = vec![
            complete("broken-new", "2026-02-28T00:00:00Z"),
            complete("broken", "2026-02-27T00:00:00Z"),
            complete("good", "2026-01-01T00:00:00Z"),
            complete("older-good", "2025-12-01T00:00:00Z"),
        ];
        let policy = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        let mut asked = Vec::new();
        let decisions = plan(&backups, &policy, at(NOW), &utc(), |index| {
            asked.push(backups[index].name);
            match backups[index].name {
                "good" | "older-good" => Ok(()),
                _ => Err("2 problem(s)".into()),
            }
        });
        // Asked newest first, and no further than the first that passes.
        assert_eq!(asked, ["broken-new", "broken", "good"]);
        assert_eq!(
            split(&backups, &decisions),
            (
                vec!["broken-new".into(), "good".into()],
                vec!["broken".into(), "older-good".into()]
            )
        );
        assert_eq!(
            why(&backups, &decisions, "broken-new").reason(),
            "keep-last #1; does not verify: 2 problem(s)"
        );
        assert_eq!(
            why(&backups, &decisions, "broken").reason(),
            "no rule keeps it: not among the 1 newest; does not verify: 2 problem(s)"
        );
        assert_eq!(why(&backups, &decisions, "good").why, [Why::NewestVerified]);
    }

    #[test]
    fn when_no_backup_verifies_the_newest_complete_one_still_stays() {
        let backups = vec![
            complete("broken-old", "2024-01-01T00:00:00Z"),
            complete("broken", "2025-01-01T00:00:00Z"),
        ];
        let policy = Policy {
            keep_within: Some(Duration::from_secs(86_400)),
            ..Policy::default()
        };
        let decisions = plan(&backups, &policy, at(NOW), &utc(), |_| Err("bad".into()));
        assert_eq!(
            split(&backups, &decisions),
            (vec!["broken".into()], vec!["broken-old".into()])
        );
        assert_eq!(
            decisions[0].reason(),
            "newest complete backup (none verifies: kept as the last one); does not verify: bad"
        );
        assert_eq!(
            decisions[1].reason(),
            "no rule keeps it: older than 1d; does not verify: bad"
        );
    }

    #[test]
    fn keep_within_is_counted_from_now_and_includes_its_edge() {
        let backups = vec![
            complete("edge", "2026-02-22T12:00:00Z"),
            complete("beyond", "2026-02-22T11:59:59Z"),
            complete("future", "2026-03-02T00:00:00Z"),
        ];
        let policy = Policy {
            keep_within: Some(Duration::from_secs(7 * 86_400)),
            ..Policy::default()
        };
        // The future one (a clock ahead) is the newest and is kept as such: "edge" only by
        // the rule.
        let decisions = plan(&backups, &policy, at(NOW), &utc(), |_| Ok(()));
        assert_eq!(
            why(&backups, &decisions, "edge").why,
            [Why::Within(Duration::from_secs(7 * 86_400))]
        );
        assert_eq!(
            split(&backups, &decisions),
            (vec!["future".into(), "edge".into()], vec!["beyond".into()])
        );
    }
}
