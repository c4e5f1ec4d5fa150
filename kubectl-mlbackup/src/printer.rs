//! Everything written for the user: data on stdout (table, JSON or YAML), errors and warnings
//! on stderr. Domain code returns values; only this module prints.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::env::Env;

/// An outcome that can show itself as a human-readable table or summary.
pub trait Render {
    fn render(&self) -> String;
}

/// Sends the plugin's `log` records (and the shared DataRobot engine's) to stderr at the
/// verbosity of `-v`.
pub fn init_logging(verbosity: u8) {
    mlbackup_helper::logging::init(verbosity, &["kubectl_mlbackup", "mlbackup_helper"]);
}

/// Writes outcomes and errors in the format the user asked for.
pub struct Printer {
    format: OutputFormat,
    color: bool,
    /// Progress bars only for a person watching: stderr a terminal and table output.
    show_progress: bool,
}

impl Printer {
    pub fn new(format: OutputFormat, env: &Env) -> Self {
        Printer {
            format,
            color: env.stderr_is_terminal && !env.no_color,
            show_progress: env.stderr_is_terminal && format == OutputFormat::Table,
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

    /// Writes text to stdout as it is, whatever `-o` says: for scripts and for the completion
    /// protocol, which have one format only.
    pub fn text(&self, text: &str) -> anyhow::Result<()> {
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

    /// `warning: <what>` on stderr, for things worth knowing that do not fail the command.
    pub fn warning(&self, message: &str) {
        let text = format!("{} {message}\n", self.paint("warning:", "1;33"));
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    /// Asks a yes/no question on the terminal (stderr, so stdout stays data) and reads the
    /// answer from stdin. Only `y` or `yes` mean yes; anything else, or end of input, is no.
    pub fn confirm(&self, question: &str) -> std::io::Result<bool> {
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(format!("{question} [y/N] ").as_bytes())?;
        stderr.flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        Ok(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        ))
    }

    /// A line on stderr announcing the next step of a long run, for a person watching (like
    /// the progress bars: only on a terminal and with table output).
    pub fn step(&self, title: &str) {
        if self.show_progress {
            let text = format!("{} {title}\n", self.paint("==>", "1;34"));
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }

    /// Asks before something that cannot be undone (the caller skips this for `--yes`): a usage
    /// error (exit 2) when no one can answer, `question` on the terminal otherwise, and an
    /// error when the answer is no.
    pub fn consent(
        &self,
        stdin_is_terminal: bool,
        consent: Consent<'_>,
        question: impl FnOnce() -> anyhow::Result<String>,
    ) -> anyhow::Result<()> {
        if !stdin_is_terminal {
            return Err(crate::error::UsageError {
                message: format!(
                    "refusing to {} without confirmation: stdin is not a terminal",
                    consent.what
                ),
                hint: consent.hint.to_string(),
            }
            .into());
        }
        let question = question()?;
        let yes = anyhow::Context::context(self.confirm(&question), "cannot read the answer")?;
        if !yes {
            anyhow::bail!("{}", consent.declined);
        }
        Ok(())
    }

    /// A progress bar on stderr, or a silent stand-in when nobody is watching.
    pub fn progress(&self, message: &str) -> Progress {
        let bar = self.show_progress.then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.set_message(message.to_string());
            bar
        });
        Progress { bar }
    }

    fn paint(&self, text: &str, ansi: &str) -> String {
        if self.color {
            format!("\x1b[{ansi}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// What to say around a confirmation (see [`Printer::consent`]).
pub struct Consent<'a> {
    /// What needs the yes, as in "refusing to {what} without confirmation".
    pub what: String,
    /// How to go ahead without being asked.
    pub hint: &'a str,
    /// Why nothing happened when the answer was no.
    pub declined: &'a str,
}

/// Progress of a long operation, drawn only when the printer decided someone watches.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn set_total(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// A short note after the bar, like a count of failures.
    pub fn set_message(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    pub fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Back to zero, for work that starts again.
    pub fn reset(&self) {
        if let Some(bar) = &self.bar {
            bar.reset();
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Columns aligned like kubectl's tables: upper-case headers, three spaces between columns,
/// the last column not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}   "));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut text = line(headers.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// A size for people: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A point in time for people, in UTC so that operators in different places agree.
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `a=1, b=2` for counts keyed by name; an empty key (label unset) shows as `<none>`.
pub fn counts(counts: &std::collections::BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "-".to_string();
    }
    counts
        .iter()
        .map(|(key, count)| format!("{}={count}", none_if_empty(key)))
        .collect::<Vec<_>>()
        .join(",")
}

/// kubectl's way of showing an unset value.
pub fn none_if_empty(value: &str) -> &str {
    if value.is_empty() { "<none>" } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_kubectl() {
        let text = table(
            &["NAME", "SIZE"],
            &[
                vec!["a".into(), "1 B".into()],
                vec!["longer-name".into(), "".into()],
            ],
        );
        assert_eq!(text, "NAME          SIZE\na             1 B\nlonger-name\n");
    }

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
    }
}
