//! Waiting in a test for something another thread or process does: one poll-until-deadline
//! loop that fails the test, naming what never happened, instead of hanging.

use std::time::{Duration, Instant};

/// How often the condition is checked: short next to anything a test waits for.
const POLL: Duration = Duration::from_millis(20);

/// Returns as soon as `check` is true; panics naming `what` when it is still false after
/// `deadline`. The deadline is a bound for a hang on a loaded machine, never a measurement:
/// choose it generously.
pub fn wait_until(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let give_up = Instant::now() + deadline;
    while !check() {
        assert!(
            Instant::now() < give_up,
            "timed out after {deadline:?} waiting until {what}"
        );
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_the_condition_holds() {
        let mut calls = 0;
        wait_until("the third call", Duration::from_secs(30), || {
            calls += 1;
            calls == 3
        });
        assert_eq!(calls, 3);
    }

    #[test]
    #[should_panic(expected = "waiting until the moon is blue")]
    fn names_what_never_happened() {
        wait_until("the moon is blue", Duration::from_millis(50), || false);
    }
}
