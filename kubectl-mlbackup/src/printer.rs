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
