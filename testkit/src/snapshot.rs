//! One snapshot of a run: exit code, stdout and stderr in one insta snapshot, through one set of
//! filters for what changes from run to run (the test's HOME and temporary directories, ports,
//! times and durations, sizes, uids). Used through [`crate::assert_run_snapshot`].
//!
//! Output made from fixed fixtures (backups dated 2025 with known sizes) has nothing that
//! varies: those tests snapshot [`render`]'s text with plain `insta::assert_snapshot!`, so that
//! the filters do not hide the sizes and dates they pin.

use std::path::Path;

pub use insta;

/// What varies between runs, and what it is shown as. Applied in this order, after the test's
/// HOME was replaced by `[HOME]`.
pub const FILTERS: &[(&str, &str)] = &[
    // Other temporary directories (a second HOME, a sticky /tmp of a pod).
    (r"/tmp/\.tmp[A-Za-z0-9]+", "[TEMP]"),
    (r"/tmp/pod-tmp-[A-Za-z0-9]+", "[TEMP]"),
    // The fake servers listen on a free port, also behind a name the tests resolve to them
    // (`cluster.invalid`: `.invalid` is reserved, never a real host).
    (
        r"(127\.0\.0\.1|localhost|\[::1\]|[A-Za-z0-9.-]+\.invalid):\d+",
        "$1:[PORT]",
    ),
    // Times of this run: RFC 3339 and the names of backups made now.
    (
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
        "[TIME]",
    ),
    // ... and as the plugin shows them to people (`printer::time`).
    (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "[TIME]"),
    // Durations measured by the run (`3.2s`; whole durations like `10m` or `200ms` come from
    // flags and stay).
    (r"\b\d+\.\d+ ?s\b", "[DURATION]"),
    // ... and in `-o json` (`"durationSeconds": 0.049`, a step's `"seconds"`).
    (
        r#""(durationSeconds|seconds)": \d+(\.\d+)?"#,
        r#""$1": [DURATION]"#,
    ),
    // ... and in log lines (`GET URL 200 in 3 ms`, `retrying in 450 ms`, with jitter).
    (r"\bin \d+ ms\b", "in [DURATION]"),
    // The resolver's own words for a name that does not resolve vary by machine (`Name or
    // service not known`, `Temporary failure in name resolution` without DNS).
    (
        r"(failed to lookup address information): [^\n]+",
        "$1: [RESOLVER]",
    ),
    // Pods a ReplicaSet made: its name (`mmapp-app-` and the template's hash), then five
    // random characters, as Kubernetes' name generator makes them.
    (
        r"(-[0-9a-f]{10})-[bcdfghjklmnpqrstvwxz2456789]{5}\b",
        "$1-[POD]",
    ),
    // The helper's private directory in the pod, named at random for each run.
    (
        r"\bmlbackup-helper-[0-9a-f]{16}\b",
        "mlbackup-helper-[RANDOM]",
    ),
    // Checksums of files that hold uids and times.
    (r"SHA-256 [0-9a-f]{12}\b", "SHA-256 [HASH]"),
    // Sizes of what a run wrote (`2.1 KiB`, `446 B`; limits like `4 MiB` stay).
    (r"\b\d+\.\d (KiB|MiB|GiB)\b", "[SIZE]"),
    (r"\b\d+ B\b", "[SIZE]"),
    // Uids the servers give objects.
    (
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        "[UID]",
    ),
];

/// The insta settings with [`FILTERS`], on top of the current ones, and the default names of
/// backups made today (or yesterday, for a run across midnight) shown as `lrs_backup_[TIME]`.
pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    let today = chrono::Local::now();
    for day in [today, today - chrono::Duration::days(1)] {
        settings.add_filter(
            &format!("{}(_\\d\\d){{2}}", day.format("lrs_backup_%Y_%m_%d")),
            "lrs_backup_[TIME]",
        );
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
/// [`settings`]: inline (`@"..."`), or in a file named after the test or given a name.
#[macro_export]
macro_rules! assert_run_snapshot {
    ($text:expr, @$snapshot:literal) => {{
        $crate::snapshot::settings().bind(|| {
            $crate::snapshot::insta::assert_snapshot!($text, @$snapshot);
        });
    }};
    ($text:expr) => {{
        $crate::snapshot::settings().bind(|| {
            $crate::snapshot::insta::assert_snapshot!($text);
        });
    }};
    ($name:expr, $text:expr) => {{
        $crate::snapshot::settings().bind(|| {
            $crate::snapshot::insta::assert_snapshot!($name, $text);
        });
    }};
}

#[cfg(test)]
mod tests {
    /// Each filter, on the kind of line it is for; what a run fixes (a flag's `10m`, `200ms`,
    /// a limit of `4 MiB`, an object's name) stays.
    #[test]
    fn what_varies_between_runs_is_replaced_and_nothing_else() {
        let text = super::render(
            1,
            concat!(
                "{\"durationSeconds\": 0.049398473, \"seconds\": 12}\n",
                "saved in /tmp/.tmpAb12Cd/b to https://cluster.invalid:39519 at ",
                "2025-06-01T10:00:00.123Z in 3.2s; waited 10m, 200ms\n",
                "seen at 2025-06-01 10:00:00 UTC\n",
            ),
            concat!(
                "debug: GET https://127.0.0.1:46557/api/v2/ 401 in 3 ms, retrying in 450 ms\n",
                "caused by: failed to lookup address information: Temporary failure in name resolution\n",
                "helper for dr-app/mmapp-app-d55b880881-7nhk7 in /home/me/pods/tmp/",
                "mlbackup-helper-2a46dd2e26b2729a; cm-695b7d90f9681a64d3301861.yaml\n",
                "2.1 KiB of 4 MiB, 446 B, SHA-256 0123456789ab, uid 9b2f6a0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            ),
            Some(std::path::Path::new("/home/me")),
        );
        crate::assert_run_snapshot!(text, @r#"
        exit: 1
        ----- stdout -----
        {"durationSeconds": [DURATION], "seconds": [DURATION]}
        saved in [TEMP]/b to https://cluster.invalid:[PORT] at [TIME] in [DURATION]; waited 10m, 200ms
        seen at [TIME]

        ----- stderr -----
        debug: GET https://127.0.0.1:[PORT]/api/v2/ 401 in [DURATION], retrying in [DURATION]
        caused by: failed to lookup address information: [RESOLVER]
        helper for dr-app/mmapp-app-d55b880881-[POD] in [HOME]/pods/tmp/mlbackup-helper-[RANDOM]; cm-695b7d90f9681a64d3301861.yaml
        [SIZE] of 4 MiB, [SIZE], SHA-256 [HASH], uid [UID]
        "#);
    }
}
