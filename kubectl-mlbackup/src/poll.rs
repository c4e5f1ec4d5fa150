//! Waiting for the cluster to catch up: a check repeated at an interval until it says done or a
//! deadline passes (the app's pods following a scale, Spark sessions going away).

use std::time::{Duration, Instant};

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The check said done.
    Done,
    /// The deadline passed first; the last check was made at it or after it.
    TimedOut,
}

/// Runs `check` until it answers `Ok(true)` or `timeout` has passed, sleeping `interval` between
/// two checks (never past the deadline, where one last check is made). An error ends the wait
/// at once.
pub async fn until_deadline<E>(
    timeout: Duration,
    interval: Duration,
    mut check: impl AsyncFnMut() -> Result<bool, E>,
) -> Result<Waited, E> {
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(Waited::Done);
        }
        if Instant::now() >= deadline {
            return Ok(Waited::TimedOut);
        }
        tokio::time::sleep(interval.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_until_done() {
        let mut checks = 0;
        let waited = until_deadline(Duration::from_secs(3600), Duration::ZERO, async || {
            checks += 1;
            Ok::<_, ()>(checks == 3)
        })
        .await;
        assert_eq!(waited, Ok(Waited::Done));
        assert_eq!(checks, 3);
    }

    #[tokio::test]
    async fn a_passed_deadline_still_gets_one_check() {
        let mut checks = 0;
        let waited = until_deadline(Duration::ZERO, Duration::from_secs(3600), async || {
            checks += 1;
            Ok::<_, ()>(false)
        })
        .await;
        assert_eq!(waited, Ok(Waited::TimedOut));
        assert_eq!(checks, 1);
    }

    #[tokio::test]
    async fn an_error_ends_the_wait() {
        let mut checks = 0;
        let waited = until_deadline(Duration::from_secs(3600), Duration::ZERO, async || {
            checks += 1;
            if checks == 2 { Err("gone") } else { Ok(false) }
        })
        .await;
        assert_eq!(waited, Err("gone"));
        assert_eq!(checks, 2);
    }
}
