//! The API token: a type that never shows its value (Debug, Display and errors print
//! `<redacted>`), read only from the environment or a file, never from the command line.

use std::fmt;
use std::path::Path;

/// `LRS_DATAROBOT_API_TOKEN`: the token, as the vendor runbook names it.
pub const TOKEN_VAR: &str = "LRS_DATAROBOT_API_TOKEN";
/// `DATAROBOT_API_TOKEN`: the token, as the official DataRobot clients name it.
pub const TOKEN_VAR_ALT: &str = "DATAROBOT_API_TOKEN";

const REDACTED: &str = "<redacted>";

/// A DataRobot API key. Its value leaves this type only through [`ApiToken::header_value`]
/// (the `Authorization` header) and through the wire request to the in-pod helper.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

/// Why no usable token was found.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no DataRobot API token: set {TOKEN_VAR} (or {TOKEN_VAR_ALT}) or pass --token-file")]
    Missing,
    #[error("the DataRobot API token {source_name} is empty")]
    Empty { source_name: String },
    #[error("the DataRobot API token {source_name} holds characters an HTTP header cannot carry")]
    Invalid { source_name: String },
    #[error("cannot read the token file {path}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl TokenError {
    pub fn hint(&self) -> Option<String> {
        match self {
            TokenError::Missing | TokenError::Empty { .. } => Some(format!(
                "export {TOKEN_VAR} with the API key of a user with the MLOps admin role (create \
                 one in DataRobot under Settings > API keys), or put it in a file readable only \
                 by you and pass --token-file PATH"
            )),
            TokenError::Invalid { .. } => {
                Some("the file or variable must hold only the API key (one line, no quotes)".into())
            }
            TokenError::Unreadable { .. } => None,
        }
    }
}

impl ApiToken {
    /// Trims surrounding whitespace (a trailing newline of a file or `echo`); refuses an empty
    /// value and one that cannot be sent in a header.
    pub fn new(value: &str, source_name: &str) -> Result<ApiToken, TokenError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(TokenError::Empty {
                source_name: source_name.to_string(),
            });
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Invalid {
                source_name: source_name.to_string(),
            });
        }
        Ok(ApiToken(value.to_string()))
    }

    /// Reads the token from `file`, which wins over the environment, else from the first of
    /// the two variables that is set (`env` looks a variable up: the process environment, or a
    /// captured copy of it).
    pub fn from_file_or_env(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ApiToken, TokenError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| TokenError::Unreadable {
                path: path.display().to_string(),
                source,
            })?;
            return ApiToken::new(&text, &format!("in {}", path.display()));
        }
        for name in [TOKEN_VAR, TOKEN_VAR_ALT] {
            if let Some(value) = env(name) {
                return ApiToken::new(&value, &format!("in {name}"));
            }
        }
        Err(TokenError::Missing)
    }

    /// `Bearer <token>`, marked sensitive so that HTTP-level logging leaves it out.
    pub fn header_value(&self) -> reqwest::header::HeaderValue {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.0))
            .expect("checked in ApiToken::new: visible ASCII only");
        value.set_sensitive(true);
        value
    }

    /// `text` with every occurrence of the token replaced: for text that came from elsewhere
    /// (a server's error message) before it is shown or logged.
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, REDACTED)
    }
}

/// The token variables as the environment had them, captured once (the plugin reads every
/// variable at start). Debug shows only which ones are set.
#[derive(Clone, Default)]
pub struct TokenVars(Vec<(&'static str, String)>);

impl TokenVars {
    pub fn from_process() -> TokenVars {
        TokenVars(
            [TOKEN_VAR, TOKEN_VAR_ALT]
                .into_iter()
                .filter_map(|name| {
                    std::env::var(name)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .map(|v| (name, v))
                })
                .collect(),
        )
    }

    /// The value of one of the token variables.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }
}

impl fmt::Debug for TokenVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| format!("{name}=<redacted>")))
            .finish()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Serialised as its value: the only serialised form is the wire request on the helper's
/// stdin (never argv, never a file).
impl serde::Serialize for ApiToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ApiToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        ApiToken::new(&value, "in the request").map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_never_shows() {
        let token = ApiToken::new(" s3cr3t-token\n", "test").unwrap();
        assert_eq!(format!("{token:?}"), "<redacted>");
        assert_eq!(format!("{token}"), "<redacted>");
        assert_eq!(
            token.scrub("bad token s3cr3t-token!"),
            "bad token <redacted>!"
        );
        assert!(token.header_value().is_sensitive());
        assert_eq!(
            token.header_value().to_str().unwrap(),
            "Bearer s3cr3t-token"
        );
    }

    #[test]
    fn empty_or_unsendable_values_are_refused() {
        assert!(matches!(
            ApiToken::new("  \n", "x"),
            Err(TokenError::Empty { .. })
        ));
        assert!(matches!(
            ApiToken::new("a b", "x"),
            Err(TokenError::Invalid { .. })
        ));
    }

    #[test]
    fn the_file_wins_then_the_runbook_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let env = |name: &str| Some(format!("from-{name}"));
        let token = ApiToken::from_file_or_env(Some(&file), env).unwrap();
        assert_eq!(token.scrub("from-file"), REDACTED);
        let token = ApiToken::from_file_or_env(None, env).unwrap();
        assert_eq!(token.scrub(&format!("from-{TOKEN_VAR}")), REDACTED);
        assert!(matches!(
            ApiToken::from_file_or_env(None, |_| None),
            Err(TokenError::Missing)
        ));
    }
}
