//! Everything written for the user: data on stdout (table, JSON or YAML), errors and warnings
//! on stderr. Domain code returns values; only this module prints.

use std::io::Write;

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::env::Env;

/// An outcome that can show itself as a human-readable table or summary.
pub trait Render {
    fn render(&self) -> String;
}

/// Sends `log` records to stderr at the verbosity of `-v`: 0 warnings only, 1 the steps, 6 and
/// more every API request (as kubectl's `-v=6`).
pub fn init_logging(verbosity: u8) {
    struct StderrLogger;
    impl log::Log for StderrLogger {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::max_level()
        }
        fn log(&self, record: &log::Record<'_>) {
            // Only the plugin's own records: dependencies log through `tracing`, not `log`.
            if self.enabled(record.metadata()) && record.target().starts_with("kubectl_mlbackup") {
                let level = record.level().as_str().to_ascii_lowercase();
                let _ = writeln!(std::io::stderr().lock(), "{level}: {}", record.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: StderrLogger = StderrLogger;
    let level = match verbosity {
        0 => log::LevelFilter::Warn,
        1..=5 => log::LevelFilter::Info,
        6..=8 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Writes outcomes and errors in the format the user asked for.
pub struct Printer {
    format: OutputFormat,
    color: bool,
}

impl Printer {
    pub fn new(format: OutputFormat, env: &Env) -> Self {
        Printer {
            format,
            color: env.stderr_is_terminal && !env.no_color,
        }
    }

    /// Writes the outcome to stdout in the chosen format.
    pub fn data<T: Serialize + Render>(&self, outcome: &T) -> anyhow::Result<()> {
        let text = match self.format {
            OutputFormat::Table => outcome.render(),
            OutputFormat::Json => serde_json::to_string_pretty(outcome)? + "\n",
            OutputFormat::Yaml => serde_yaml::to_string(outcome)?,
        };
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }

    /// `error: <what>`, then one `  caused by: <why>` per cause, then `hint: <what to do>`.
    pub fn error(&self, err: &anyhow::Error) {
        let mut text = format!("{} {err}\n", self.paint("error:", "1;31"));
        for cause in err.chain().skip(1) {
            text.push_str(&format!("  caused by: {cause}\n"));
        }
        if let Some(hint) = crate::error::hint(err) {
            text.push_str(&format!("{} {hint}\n", self.paint("hint:", "1;36")));
        }
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    fn paint(&self, text: &str, ansi: &str) -> String {
        if self.color {
            format!("\x1b[{ansi}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}
