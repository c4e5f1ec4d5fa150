//! One snapshot of a run: exit code, stdout and stderr in one insta snapshot, through one set of
//! filters for what changes from run to run (the test's HOME and temporary directories, ports,
//! times and durations, sizes, uids). Used through [`crate::assert_run_snapshot`].

use std::path::Path;

pub use insta;

/// What varies between runs, and what it is shown as. Applied in this order, after the test's
/// HOME was replaced by `[HOME]`.
pub const FILTERS: &[(&str, &str)] = &[
    // Other temporary directories (a second HOME, a sticky /tmp of a pod).
    (r"/tmp/\.tmp[A-Za-z0-9]+", "[TEMP]"),
    (r"/tmp/pod-tmp-[A-Za-z0-9]+", "[TEMP]"),
    // The fake servers listen on a free port.
    (r"(127\.0\.0\.1|localhost|\[::1\]):\d+", "$1:[PORT]"),
    // Times of this run: RFC 3339 and the names of backups made now.
    (
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
        "[TIME]",
    ),
    (r"lrs_backup_\d{4}(_\d\d){4,5}", "lrs_backup_[TIME]"),
    // Durations measured by the run (whole seconds come from flags and stay).
    (r"\b\d+\.\d+ ?s\b", "[DURATION]"),
    (r"\b\d+ ?ms\b", "[DURATION]"),
    // Sizes on disk.
    (r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "[SIZE]"),
    // Uids the servers give objects.
    (
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        "[UID]",
    ),
];

/// The insta settings with [`FILTERS`], on top of the current ones.
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    settings
}

/// A run as it is snapshotted: exit code, then each stream under its own heading, `home`
/// shown as `[HOME]`.
pub fn render(code: i32, stdout: &str, stderr: &str, home: Option<&Path>) -> String {
    let text = format!("exit: {code}\n----- stdout -----\n{stdout}\n----- stderr -----\n{stderr}");
    match home {
        Some(home) => text.replace(&home.display().to_string(), "[HOME]"),
        None => text,
    }
}

/// Asserts a snapshot of `$text` (from [`render`], or any text of a run) with the filters of
/// [`settings`]: inline (`@"..."`) or in a file named after the test.
#[macro_export]
macro_rules! assert_run_snapshot {
    ($text:expr, @$snapshot:literal) => {{
        let text: String = $text;
        $crate::snapshot::settings().bind(|| {
            $crate::snapshot::insta::assert_snapshot!(text, @$snapshot);
        });
    }};
    ($text:expr) => {{
        let text: String = $text;
        $crate::snapshot::settings().bind(|| {
            $crate::snapshot::insta::assert_snapshot!(text);
        });
    }};
}
