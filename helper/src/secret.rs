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
    /// (a server's error message, a URL or header it sent back) before it is shown or logged.
    /// A URL may carry the token percent-encoded: when decoding the text reveals the token, the
    /// decoded text is shown, redacted.
    pub fn scrub(&self, text: &str) -> String {
        let plain = text.replace(&self.0, REDACTED);
        let decoded = percent_encoding::percent_decode_str(&plain).decode_utf8_lossy();
        if decoded.contains(&self.0) {
            decoded.replace(&self.0, REDACTED)
        } else {
            plain
        }
    }
}

/// A warning when the token file can be read by users other than its owner (as ssh warns
/// about a private key): anyone of them can act as the token's MLOps admin. `None` when the
/// file is private or cannot be looked at (reading it reports that).
pub fn token_file_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "the token file {} can be read by other users (mode {mode:04o}): run `chmod 600 {}`",
            path.display(),
            path.display()
        )
    })
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
    fn a_token_in_a_url_is_redacted_encoded_or_not() {
        let token = ApiToken::new("ab+c/d=", "test").unwrap();
        assert_eq!(
            token.scrub("https://sso.example.com/login?t=ab+c/d="),
            "https://sso.example.com/login?t=<redacted>"
        );
        assert_eq!(
            token.scrub("https://sso.example.com/login?t=ab%2Bc%2fd%3D&next=%2Fx"),
            "https://sso.example.com/login?t=<redacted>&next=/x"
        );
        // Text without the token keeps its encoding.
        assert_eq!(token.scrub("/a%20b"), "/a%20b");
    }

    #[test]
    fn a_token_file_others_can_read_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "t\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(token_file_warning(&file), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let warning = token_file_warning(&file).unwrap();
        assert!(warning.contains("mode 0640"), "{warning}");
        assert!(warning.contains("chmod 600"), "{warning}");
        assert_eq!(token_file_warning(&dir.path().join("missing")), None);
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
