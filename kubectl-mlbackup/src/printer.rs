//! Everything written for the user: data on stdout (table, JSON or YAML), errors and warnings
//! on stderr. Domain code returns values; only this module prints.
//!
//! Much of what is shown comes from servers (deployment labels anyone in DataRobot may set,
//! object names, error messages): control characters in it are escaped here, in every table
//! cell, message and summary, so that nothing a server sends acts on the terminal or forges a
//! line. JSON and YAML escape them by themselves.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use mlbackup_helper::text::{escape_controls, escape_controls_keep_newlines};
use serde::Serialize;

use crate::env::Env;

/// How results are written to stdout (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables and summaries.
    Table,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

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
    /// The hint for an error, from the registry at the top of the command layer (the printer
    /// sits below the modules whose errors it shows, so it is handed the registry).
    hints: fn(&anyhow::Error) -> Option<String>,
}

impl Printer {
    pub fn new(format: OutputFormat, env: &Env) -> Self {
        Printer {
            format,
            color: env.stderr_is_terminal && !env.no_color,
            show_progress: env.stderr_is_terminal && format == OutputFormat::Table,
            hints: |_| None,
        }
    }

    /// The printer, showing the hint `hints` finds under each error.
    pub fn with_hints(self, hints: fn(&anyhow::Error) -> Option<String>) -> Self {
        Printer { hints, ..self }
    }

    /// Writes the outcome to stdout in the chosen format.
    pub fn data<T: Serialize + Render>(&self, outcome: &T) -> anyhow::Result<()> {
        let text = match self.format {
            // Cells are escaped by `table`; the summaries around them quote server text too.
            OutputFormat::Table => escape_controls_keep_newlines(&outcome.render()).into_owned(),
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
        let clean = |text: String| escape_controls_keep_newlines(&text).into_owned();
        let mut text = format!(
            "{} {}\n",
            self.paint("error:", "1;31"),
            clean(err.to_string())
        );
        for cause in err.chain().skip(1) {
            text.push_str(&format!("  caused by: {}\n", clean(cause.to_string())));
        }
        if let Some(hint) = (self.hints)(err) {
            text.push_str(&format!(
                "{} {}\n",
                self.paint("hint:", "1;36"),
                clean(hint)
            ));
        }
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    /// `warning: <what>` on stderr, for things worth knowing that do not fail the command.
    pub fn warning(&self, message: &str) {
        let text = format!(
            "{} {}\n",
            self.paint("warning:", "1;33"),
            escape_controls_keep_newlines(message)
        );
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    /// Asks a yes/no question on the terminal (stderr, so stdout stays data) and reads the
    /// answer from stdin. Only `y` or `yes` mean yes; anything else, or end of input, is no.
    pub fn confirm(&self, question: &str) -> std::io::Result<bool> {
        let mut stderr = std::io::stderr().lock();
        let question = escape_controls_keep_newlines(question);
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
            let text = format!("{} {}\n", self.paint("==>", "1;34"), escape_controls(title));
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
            return Err(crate::exit::UsageError {
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
        self.inc_by(1);
    }

    pub fn inc_by(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(done);
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

/// The most characters a table cell shows; longer ones end in `…` (JSON and YAML output keep
/// them whole). Object names (253) fit with room to spare.
pub const MAX_CELL_CHARS: usize = 512;

/// Columns aligned like kubectl's tables: upper-case headers, three spaces between columns,
/// the last column not padded. Every cell is one line: control characters (newlines included)
/// are escaped, and a cell longer than [`MAX_CELL_CHARS`] is cut.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cells = |row: &[String]| -> Vec<(String, usize)> {
        row.iter()
            .map(|cell| {
                let cell = escape_controls(cell);
                let count = cell.chars().count();
                if count > MAX_CELL_CHARS {
                    let cut: String = cell.chars().take(MAX_CELL_CHARS - 1).collect();
                    (cut + "…", MAX_CELL_CHARS)
                } else {
                    (cell.into_owned(), count)
                }
            })
            .collect()
    };
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let lines: Vec<Vec<(String, usize)>> = std::iter::once(cells(&header))
        .chain(rows.iter().map(|row| cells(row)))
        .collect();
    let mut widths: Vec<usize> = vec![0; headers.len()];
    for line in &lines {
        for (width, (_, count)) in widths.iter_mut().zip(line) {
            *width = (*width).max(*count);
        }
    }
    let mut text = String::new();
    for line in lines {
        let last = line.len().saturating_sub(1);
        let mut row = String::new();
        for (index, ((cell, count), width)) in line.iter().zip(&widths).enumerate() {
            row.push_str(cell);
            if index != last {
                // Padded by hand: `format!`'s width is limited to u16 and panics beyond it.
                row.extend(std::iter::repeat_n(' ', width - count + 3));
            }
        }
        text.push_str(row.trim_end());
        text.push('\n');
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

/// `word` with its first letter in upper case, to start a sentence.
pub fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
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
    fn server_text_stays_in_its_cell() {
        let text = table(
            &["ID", "LABEL", "STATUS"],
            &[
                vec![
                    "1".into(),
                    "\x1b[2J\x1b]0;owned\x07x\nFORGED   row".into(),
                    "active".into(),
                ],
                vec!["2".into(), "c1\u{9b}31m".into(), "inactive".into()],
            ],
        );
        assert_eq!(
            text,
            "ID   LABEL                                    STATUS\n\
             1    \\x1b[2J\\x1b]0;owned\\x07x\\nFORGED   row   active\n\
             2    c1\\u{9b}31m                              inactive\n"
        );
    }

    #[test]
    fn a_huge_cell_is_cut_not_a_panic() {
        let label = "L".repeat(65_536);
        let text = table(
            &["ID", "LABEL", "STATUS"],
            &[vec!["1".into(), label, "active".into()]],
        );
        let row = text.lines().nth(1).unwrap();
        assert!(row.ends_with("…   active"), "{}", &row[row.len() - 40..]);
        assert_eq!(row.chars().count(), 5 + MAX_CELL_CHARS + 3 + 6);
    }

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
    }
}
