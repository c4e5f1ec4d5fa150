//! Which deployments a deactivation or reactivation changes, decided before anything is
//! changed: deactivate only the active ones; reactivate exactly those recorded active in the
//! snapshot that are not active now (or, with `--all`, every inactive one).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::api::{Deployment, TargetStatus};
use crate::protocol::{ItemReport, Outcome, PlannedChange};
use crate::snapshot::{Snapshot, SnapshotError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Deactivate,
    Reactivate,
}

impl Action {
    pub fn target(self) -> TargetStatus {
        match self {
            Action::Deactivate => TargetStatus::Inactive,
            Action::Reactivate => TargetStatus::Active,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deactivate => "deactivate",
            Action::Reactivate => "reactivate",
        }
    }
}

/// Where reactivation learns what to reactivate.
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    /// Deactivate: the deployments active now.
    ActiveNow,
    /// Reactivate: those the snapshot recorded active.
    RecordedActive(&'a Snapshot),
    /// Reactivate `--all`: every inactive deployment.
    AllInactive,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("not among the deployments visible to the token's user: {}", .0.join(", "))]
    UnknownOnly(Vec<String>),
    #[error("there is no deployment snapshot at {path}")]
    NoSnapshot { path: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

impl PlanError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PlanError::UnknownOnly(_) => Some(
                "list the deployments with `kubectl mlbackup deployments list`; a deployment the \
                 token's user cannot see cannot be changed with it"
                    .into(),
            ),
            PlanError::NoSnapshot { .. } => Some(
                "reactivate reads the snapshot that deactivate wrote: give the same --backup or \
                 --state as to deactivate, or --all to reactivate every inactive deployment"
                    .into(),
            ),
            PlanError::Snapshot(_) => None,
        }
    }
}

/// Where the snapshot of a deactivation is kept, and what a reactivation goes by.
#[derive(Clone, Copy, Debug)]
pub enum StateFile<'a> {
    /// `deployments.json` in a backup folder, or a `--state` file.
    At(&'a Path),
    /// Only for `--dry-run` of a deactivation, and for `reactivate --all`.
    None,
}

/// A plan, and the snapshot it rests on.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub plan: Plan,
    /// The snapshot written (deactivate) or read (reactivate).
    pub snapshot: Option<Snapshot>,
}

/// Everything before the first change: for a deactivation, record the states of all visible
/// deployments (merged into an earlier run's snapshot) and write them unless `dry_run`; for a
/// reactivation, read the snapshot (none with `all`). Then plan.
pub fn prepare(
    action: Action,
    current: &[Deployment],
    state: StateFile<'_>,
    all: bool,
    only: &[String],
    dry_run: bool,
    api_url: &str,
) -> Result<Prepared, PlanError> {
    match (action, state) {
        (Action::Deactivate, StateFile::At(path)) => {
            let previous = Snapshot::read(path)?;
            let snapshot = Snapshot::record(previous, current, api_url, chrono::Utc::now());
            let plan = plan(action, current, Selection::ActiveNow, only)?;
            if !dry_run {
                snapshot.write(path)?;
                log::info!("deployment states recorded in {}", path.display());
            }
            Ok(Prepared {
                plan,
                snapshot: Some(snapshot),
            })
        }
        (Action::Deactivate, StateFile::None) => Ok(Prepared {
            plan: plan(action, current, Selection::ActiveNow, only)?,
            snapshot: None,
        }),
        (Action::Reactivate, _) if all => Ok(Prepared {
            plan: plan(action, current, Selection::AllInactive, only)?,
            snapshot: None,
        }),
        (Action::Reactivate, StateFile::At(path)) => {
            let snapshot = Snapshot::read(path)?.ok_or_else(|| PlanError::NoSnapshot {
                path: path.display().to_string(),
            })?;
            Ok(Prepared {
                plan: plan(action, current, Selection::RecordedActive(&snapshot), only)?,
                snapshot: Some(snapshot),
            })
        }
        (Action::Reactivate, StateFile::None) => Err(PlanError::NoSnapshot {
            path: "(none given)".into(),
        }),
    }
}

/// The changes to make, and what the plan left out on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub target: TargetStatus,
    pub changes: Vec<PlannedChange>,
    /// Named with `--only` but not to be changed (already there, or not recorded active), and
    /// recorded deployments that are no longer visible.
    pub set_aside: Vec<ItemReport>,
    /// Visible deployments that the plan does not touch.
    pub left_alone: usize,
}

/// Plans `action` over the deployments visible now (`current`), restricted to `only` when it
/// is not empty.
pub fn plan(
    action: Action,
    current: &[Deployment],
    selection: Selection<'_>,
    only: &[String],
) -> Result<Plan, PlanError> {
    let target = action.target();
    let visible: HashSet<&str> = current.iter().map(|d| d.id.as_str()).collect();
    let recorded: HashMap<&str, bool> = match selection {
        Selection::RecordedActive(snapshot) => snapshot
            .deployments
            .iter()
            .map(|e| (e.id.as_str(), e.was_active()))
            .collect(),
        _ => HashMap::new(),
    };
    let unknown: Vec<String> = only
        .iter()
        .filter(|id| !visible.contains(id.as_str()) && !recorded.contains_key(id.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(PlanError::UnknownOnly(unknown));
    }
    let wanted = |id: &str| only.is_empty() || only.iter().any(|o| o == id);

    let mut changes = Vec::new();
    let mut set_aside = Vec::new();
    let mut left_alone = 0;
    for deployment in current {
        let status = deployment.status.as_deref();
        let planned = PlannedChange {
            id: deployment.id.clone(),
            label: deployment.label.clone(),
            before: deployment.status.clone(),
        };
        let why_not = match selection {
            Selection::ActiveNow if !TargetStatus::Active.is(status) => {
                Some(format!("not active ({})", status.unwrap_or("no status")))
            }
            Selection::RecordedActive(_) if recorded.get(deployment.id.as_str()) != Some(&true) => {
                Some(if recorded.contains_key(deployment.id.as_str()) {
                    "not active when the snapshot was taken".to_string()
                } else {
                    "not in the snapshot".to_string()
                })
            }
            Selection::RecordedActive(_) if TargetStatus::Active.is(status) => {
                Some("already active".to_string())
            }
            Selection::AllInactive if !TargetStatus::Inactive.is(status) => {
                Some(format!("not inactive ({})", status.unwrap_or("no status")))
            }
            _ => None,
        };
        match (wanted(&deployment.id), why_not) {
            (true, None) => changes.push(planned),
            (true, Some(reason)) if !only.is_empty() => {
                let outcome = if target.is(status) {
                    Outcome::Unchanged
                } else {
                    Outcome::Skipped
                };
                set_aside.push(
                    ItemReport::new(&planned, outcome)
                        .after(status.unwrap_or_default())
                        .message(reason),
                );
            }
            _ => left_alone += 1,
        }
    }
    if let Selection::RecordedActive(snapshot) = selection {
        for entry in &snapshot.deployments {
            if entry.was_active() && !visible.contains(entry.id.as_str()) && wanted(&entry.id) {
                let planned = PlannedChange {
                    id: entry.id.clone(),
                    label: entry.label.clone(),
                    before: None,
                };
                set_aside.push(
                    ItemReport::new(&planned, Outcome::Missing)
                        .message("recorded active, but no longer visible (deleted, or not shared with the token's user)"),
                );
            }
        }
    }
    Ok(Plan {
        target,
        changes,
        set_aside,
        left_alone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn d(id: &str, status: &str) -> Deployment {
        Deployment {
            id: id.into(),
            label: id.to_uppercase(),
            status: Some(status.into()),
        }
    }

    fn ids(plan: &Plan) -> Vec<&str> {
        plan.changes.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn deactivate_touches_only_active_ones() {
        let now = [
            d("a", "active"),
            d("b", "inactive"),
            d("c", "launching"),
            d("e", "active"),
        ];
        let plan = plan(Action::Deactivate, &now, Selection::ActiveNow, &[]).unwrap();
        assert_eq!(ids(&plan), ["a", "e"]);
        assert_eq!(plan.left_alone, 2);
        assert!(plan.set_aside.is_empty());
    }

    #[test]
    fn reactivate_is_exactly_the_recorded_active_not_active_now() {
        let before = [
            d("a", "active"),
            d("b", "inactive"),
            d("c", "active"),
            d("gone", "active"),
        ];
        let snapshot = Snapshot::record(None, &before, "u", Utc::now());
        let now = [
            d("a", "inactive"),
            d("b", "inactive"),
            d("c", "active"),
            d("new", "inactive"),
        ];
        let plan = plan(
            Action::Reactivate,
            &now,
            Selection::RecordedActive(&snapshot),
            &[],
        )
        .unwrap();
        assert_eq!(ids(&plan), ["a"]);
        assert_eq!(plan.left_alone, 3);
        assert_eq!(plan.set_aside.len(), 1);
        assert_eq!(plan.set_aside[0].id, "gone");
        assert_eq!(plan.set_aside[0].outcome, Outcome::Missing);

        let all = plan_all(&now);
        assert_eq!(all, ["a", "b", "new"]);
    }

    fn plan_all(now: &[Deployment]) -> Vec<String> {
        plan(Action::Reactivate, now, Selection::AllInactive, &[])
            .unwrap()
            .changes
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    #[test]
    fn only_narrows_the_plan_and_says_why_a_named_one_is_left() {
        let now = [d("a", "active"), d("b", "inactive"), d("c", "active")];
        let plan = plan(
            Action::Deactivate,
            &now,
            Selection::ActiveNow,
            &["c".into(), "b".into()],
        )
        .unwrap();
        assert_eq!(ids(&plan), ["c"]);
        assert_eq!(plan.set_aside.len(), 1);
        assert_eq!(plan.set_aside[0].outcome, Outcome::Unchanged);
        assert_eq!(plan.left_alone, 1);
        let err = super::plan(
            Action::Deactivate,
            &now,
            Selection::ActiveNow,
            &["zz".into()],
        );
        assert!(matches!(err, Err(PlanError::UnknownOnly(ids)) if ids == ["zz"]));
    }
}
