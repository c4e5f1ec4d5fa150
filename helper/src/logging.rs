//! `log` records on stderr at a kubectl-like verbosity, for both binaries: 0 warnings only,
//! 1-5 the steps, 6-8 every API request (as kubectl's `-v=6`), 9 and more everything.

use std::io::Write;

/// Sends the records of the crates named in `targets` (module path prefixes) to stderr. The
/// dependencies log through `tracing`, not `log`, so they stay out anyway; the filter keeps it
/// that way if one ever switches.
pub fn init(verbosity: u8, targets: &'static [&'static str]) {
    struct StderrLogger {
        targets: &'static [&'static str],
    }
    impl log::Log for StderrLogger {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::max_level()
                && self
                    .targets
                    .iter()
                    .any(|t| metadata.target().starts_with(t))
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                let level = record.level().as_str().to_ascii_lowercase();
                // Records quote server text (URLs, messages, the helper's relayed stderr): one
                // record is one line, with nothing a terminal would act on.
                let text = record.args().to_string();
                let text = crate::text::escape_controls(&text);
                let _ = writeln!(std::io::stderr().lock(), "{level}: {text}");
            }
        }
        fn flush(&self) {}
    }
    let level = match verbosity {
        0 => log::LevelFilter::Warn,
        1..=5 => log::LevelFilter::Info,
        6..=8 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let logger = Box::leak(Box::new(StderrLogger { targets }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
