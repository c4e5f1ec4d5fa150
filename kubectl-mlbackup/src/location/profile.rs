//! The AWS shared config and credentials files (`~/.aws/config`, `~/.aws/credentials`) as the
//! AWS CLI and SDKs read them: not plain INI (a `[profile NAME]` header in one file and `[NAME]`
//! in the other, `s3 =` followed by indented sub-properties, comments only after whitespace in
//! values), which is why a general INI crate does not fit.

use std::collections::BTreeMap;

/// Which of the two files: their profile headers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `~/.aws/config`: `[default]`, `[profile NAME]`, `[services NAME]`, `[sso-session NAME]`.
    Config,
    /// `~/.aws/credentials`: `[NAME]`.
    Credentials,
}

/// The sections of one file: profiles and `services` sections, each a map of lowercase
/// property names to values; a sub-property is stored as `parent.name` (`s3.endpoint_url`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProfileFile {
    pub profiles: BTreeMap<String, BTreeMap<String, String>>,
    pub services: BTreeMap<String, BTreeMap<String, String>>,
}

/// Where the properties of the line being read go.
enum Target {
    None,
    Profile(String),
    Services(String),
}

impl ProfileFile {
    pub fn parse(text: &str, kind: FileKind) -> ProfileFile {
        let mut file = ProfileFile::default();
        let mut target = Target::None;
        // The property that indented lines continue, and whether its value was empty (then the
        // indented lines are sub-properties).
        let mut last: Option<(String, bool)> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let indented = line.starts_with([' ', '\t']);
            if indented {
                let Some((name, is_parent)) = &last else {
                    continue;
                };
                let Some(section) = file.section(&target) else {
                    continue;
                };
                if *is_parent {
                    if let Some((key, value)) = property(trimmed) {
                        section.insert(format!("{name}.{key}"), value);
                    }
                } else if let Some(value) = section.get_mut(name) {
                    value.push('\n');
                    value.push_str(trimmed);
                }
                continue;
            }
            last = None;
            if let Some(header) = trimmed.strip_prefix('[') {
                target = match header.split_once(']') {
                    Some((name, after)) if is_comment_or_empty(after) => section(name, kind),
                    _ => Target::None,
                };
                continue;
            }
            let Some((key, value)) = property(trimmed) else {
                continue;
            };
            if let Some(section) = file.section(&target) {
                last = Some((key.clone(), value.is_empty()));
                section.insert(key, value);
            }
        }
        file
    }

    fn section(&mut self, target: &Target) -> Option<&mut BTreeMap<String, String>> {
        match target {
            Target::None => None,
            Target::Profile(name) => Some(self.profiles.entry(name.clone()).or_default()),
            Target::Services(name) => Some(self.services.entry(name.clone()).or_default()),
        }
    }
}

fn section(header: &str, kind: FileKind) -> Target {
    let header = header.trim();
    match kind {
        FileKind::Credentials if !header.is_empty() => Target::Profile(header.to_string()),
        FileKind::Credentials => Target::None,
        FileKind::Config => {
            let mut words = header.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("default"), None, None) => Target::Profile("default".into()),
                (Some("profile"), Some(name), None) => Target::Profile(name.into()),
                (Some("services"), Some(name), None) => Target::Services(name.into()),
                // `[sso-session NAME]`, and `[NAME]` without `profile`, which the CLI ignores
                // in the config file too.
                _ => Target::None,
            }
        }
    }
}

fn is_comment_or_empty(text: &str) -> bool {
    let text = text.trim();
    text.is_empty() || text.starts_with('#') || text.starts_with(';')
}

/// `key = value`: the key lowercase, the value without a comment (one preceded by whitespace).
fn property(line: &str) -> Option<(String, String)> {
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    let mut value = value.trim();
    if let Some(at) = value
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '#' | ';')
                && value[..i]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_whitespace)
        })
        .map(|(i, _)| i)
    {
        value = value[..at].trim_end();
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file() {
        let file = ProfileFile::parse(
            "# comment\n\
             [default]\n\
             aws_access_key_id = AKIDDEFAULT\n\
             aws_secret_access_key=secret/with=equals   # a comment\n\
             \n\
             [team] ; comment\n\
             AWS_ACCESS_KEY_ID = AKIDTEAM\n\
             aws_secret_access_key = pass#word\n",
            FileKind::Credentials,
        );
        let default = &file.profiles["default"];
        assert_eq!(default["aws_access_key_id"], "AKIDDEFAULT");
        assert_eq!(default["aws_secret_access_key"], "secret/with=equals");
        let team = &file.profiles["team"];
        assert_eq!(team["aws_access_key_id"], "AKIDTEAM");
        // `#` not preceded by whitespace belongs to the value.
        assert_eq!(team["aws_secret_access_key"], "pass#word");
    }

    #[test]
    fn config_file() {
        let file = ProfileFile::parse(
            "[default]\n\
             region = eu-west-1\n\
             [profile team]\n\
             region = us-east-2\n\
             services = local-s3\n\
             s3 =\n  \
               endpoint_url = http://127.0.0.1:9000\n  \
               addressing_style = path\n\
             [services local-s3]\n\
             s3 =\n\
             \tendpoint_url = https://minio.example:9000\n\
             [sso-session corp]\n\
             sso_region = us-east-1\n\
             [ignored]\n\
             region = nowhere\n",
            FileKind::Config,
        );
        assert_eq!(file.profiles["default"]["region"], "eu-west-1");
        let team = &file.profiles["team"];
        assert_eq!(team["region"], "us-east-2");
        assert_eq!(team["s3"], "");
        assert_eq!(team["s3.endpoint_url"], "http://127.0.0.1:9000");
        assert_eq!(team["s3.addressing_style"], "path");
        assert_eq!(
            file.services["local-s3"]["s3.endpoint_url"],
            "https://minio.example:9000"
        );
        assert_eq!(file.profiles.len(), 2, "{file:?}");
    }

    #[test]
    fn continuation_lines_extend_a_value() {
        let file = ProfileFile::parse(
            "[profile x]\nrole_session_name = first\n  second\n",
            FileKind::Config,
        );
        assert_eq!(file.profiles["x"]["role_session_name"], "first\nsecond");
    }
}
