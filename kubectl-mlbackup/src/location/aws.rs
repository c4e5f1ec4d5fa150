//! The standard AWS configuration chain for `s3://` locations: endpoint, region, CA bundle and
//! credentials from the AWS variables (captured once in `env.rs`) and the shared files
//! (`~/.aws/config`, `~/.aws/credentials`), resolved into plain data before any request, so the
//! choice can be tested and named in errors without its secret values.
//!
//! Credentials, first found wins (the AWS CLI's order):
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (a pod's service-account token, exchanged
//!    at STS);
//! 3. the profile `AWS_PROFILE` (else `default`): keys, or `web_identity_token_file` +
//!    `role_arn`; the credentials file overrides the config file;
//! 4. the EC2 instance metadata service (unless `AWS_EC2_METADATA_DISABLED=true`).
//!
//! Endpoint: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's `services` section
//! (`s3 = endpoint_url = ...`), its `endpoint_url`; else AWS. A custom endpoint is addressed
//! path-style (`ENDPOINT/BUCKET/KEY`), which every S3-compatible store serves. Region:
//! `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`. CA bundle:
//! `AWS_CA_BUNDLE`, else the profile's `ca_bundle`: as in the AWS CLI it replaces the system's
//! trusted roots.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::env::{self, AwsVars, Secret};

use super::profile::{FileKind, ProfileFile};

/// Where the credentials came from, for messages: names, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    Environment { session_token: bool },
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`.
    WebIdentityEnvironment,
    /// A profile's keys or web identity settings, from this file.
    Profile { name: String, file: PathBuf },
    /// The EC2 instance metadata service.
    InstanceMetadata,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Environment {
                session_token: false,
            } => write!(
                f,
                "{} and {}",
                env::AWS_ACCESS_KEY_ID,
                env::AWS_SECRET_ACCESS_KEY
            ),
            CredentialSource::Environment {
                session_token: true,
            } => write!(
                f,
                "{}, {} and {}",
                env::AWS_ACCESS_KEY_ID,
                env::AWS_SECRET_ACCESS_KEY,
                env::AWS_SESSION_TOKEN
            ),
            CredentialSource::WebIdentityEnvironment => write!(
                f,
                "the web identity of {} and {}",
                env::AWS_WEB_IDENTITY_TOKEN_FILE,
                env::AWS_ROLE_ARN
            ),
            CredentialSource::Profile { name, file } => {
                write!(f, "the profile `{name}` in {}", file.display())
            }
            CredentialSource::InstanceMetadata => f.write_str("the EC2 instance metadata service"),
        }
    }
}

/// The credentials to sign with (values only in [`Secret`]s).
#[derive(Debug, Clone)]
pub enum Credentials {
    Static {
        key_id: String,
        secret_key: Secret,
        session_token: Option<Secret>,
    },
    WebIdentity {
        token_file: PathBuf,
        role_arn: String,
        session_name: String,
        /// `None`: AWS STS of the region.
        sts_endpoint: Option<String>,
    },
    InstanceMetadata,
}

/// A custom S3 endpoint, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host[:port][/path]`, without a trailing `/`.
    pub url: String,
    /// `http://`: requests and credentials' signatures travel unencrypted.
    pub plain_http: bool,
    /// The variable or profile setting it came from.
    pub from: String,
}

/// Everything needed to open an `s3://` location.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub region: String,
    /// `None`: AWS S3 of the region.
    pub endpoint: Option<Endpoint>,
    pub ca_bundle: Option<PathBuf>,
    pub credentials: Credentials,
    pub credential_source: CredentialSource,
}

/// The AWS configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    #[error("{set} is set but {missing} is not")]
    Incomplete {
        set: &'static str,
        missing: &'static str,
    },

    #[error("the profile `{name}` has {set} but no {missing} (in {})", file.display())]
    IncompleteProfile {
        name: String,
        file: PathBuf,
        set: &'static str,
        missing: &'static str,
    },

    #[error("the profile `{name}` (AWS_PROFILE) is in neither {} nor {}", credentials.display(), config.display())]
    ProfileNotFound {
        name: String,
        credentials: PathBuf,
        config: PathBuf,
    },

    #[error(
        "the profile `{name}` gets its credentials with `{setting}`, which kubectl-mlbackup does not support"
    )]
    UnsupportedProfile { name: String, setting: String },

    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the S3 endpoint `{url}` (from {from}) is not an http:// or https:// URL{reason}")]
    BadEndpoint {
        url: String,
        from: String,
        reason: String,
    },

    /// The URL is not repeated: it held credentials.
    #[error("the S3 endpoint from {from} holds credentials (`user:password@`)")]
    CredentialsInEndpoint { from: String },

    #[error(
        "no AWS credentials: none in the environment, in the profile `{profile}`, and {} is set",
        env::AWS_EC2_METADATA_DISABLED
    )]
    NoCredentials { profile: String },
}

impl AwsConfigError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        let keys = format!(
            "set {} and {} (or AWS_PROFILE)",
            env::AWS_ACCESS_KEY_ID,
            env::AWS_SECRET_ACCESS_KEY
        );
        match self {
            AwsConfigError::Incomplete { missing, .. } => Some(format!("set {missing} too")),
            AwsConfigError::IncompleteProfile { name, missing, .. } => {
                Some(format!("add `{missing}` to the profile `{name}`"))
            }
            AwsConfigError::ProfileNotFound { .. } => Some(format!(
                "check AWS_PROFILE, or set {} / {} to the files holding it",
                env::AWS_SHARED_CREDENTIALS_FILE,
                env::AWS_CONFIG_FILE
            )),
            AwsConfigError::UnsupportedProfile { name, .. } => Some(format!(
                "export its credentials into the environment first: \
                 `eval \"$(aws configure export-credentials --profile {name} --format env)\"`"
            )),
            AwsConfigError::BadEndpoint { .. } => Some(
                "give the endpoint as https://HOST[:PORT] (or http:// for a local test server)"
                    .into(),
            ),
            AwsConfigError::CredentialsInEndpoint { .. } => {
                Some(format!("remove them from the URL and {keys}"))
            }
            AwsConfigError::NoCredentials { .. } => Some(keys),
            AwsConfigError::Read { .. } => None,
        }
    }
}

/// The default files, under `home`.
fn default_file(home: Option<&Path>, name: &str) -> PathBuf {
    match home {
        Some(home) => home.join(".aws").join(name),
        None => PathBuf::from("~/.aws").join(name),
    }
}

fn read_profile_file(path: &Path, kind: FileKind) -> Result<ProfileFile, AwsConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(ProfileFile::parse(&text, kind)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(ProfileFile::default()),
        Err(source) => Err(AwsConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// One profile's settings from both files, remembering which file each came from.
struct Profile {
    name: String,
    values: BTreeMap<String, (String, PathBuf)>,
    services: BTreeMap<String, String>,
}

impl Profile {
    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }
    fn file_of(&self, key: &str) -> PathBuf {
        self.values
            .get(key)
            .map(|(_, file)| file.clone())
            .unwrap_or_default()
    }
}

/// Resolves the settings for an `s3://` location from `vars` and the profile files under `home`.
pub fn resolve(vars: &AwsVars, home: Option<&Path>) -> Result<S3Settings, AwsConfigError> {
    let profile = load_profile(vars, home)?;
    let (credentials, credential_source) = credentials(vars, &profile)?;
    let place = place(vars, &profile)?;
    Ok(S3Settings {
        region: place.region.unwrap_or_else(|| "us-east-1".into()),
        endpoint: place.endpoint,
        ca_bundle: place.ca_bundle,
        credentials,
        credential_source,
    })
}

/// Where the object store is, apart from who may use it: what `schedule install` carries into
/// its pod, which brings credentials of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePlace {
    /// `None`: AWS S3 itself.
    pub endpoint: Option<Endpoint>,
    /// `None`: not set anywhere (AWS S3's default, us-east-1, applies).
    pub region: Option<String>,
    pub ca_bundle: Option<PathBuf>,
}

/// The endpoint, region and CA bundle by the chain of [`resolve`] (variables, then the
/// profile), without looking at credentials.
pub fn resolve_place(vars: &AwsVars, home: Option<&Path>) -> Result<StorePlace, AwsConfigError> {
    place(vars, &load_profile(vars, home)?)
}

fn place(vars: &AwsVars, profile: &Profile) -> Result<StorePlace, AwsConfigError> {
    Ok(StorePlace {
        endpoint: endpoint(vars, profile, "s3", env::AWS_ENDPOINT_URL_S3)?,
        region: vars
            .region
            .clone()
            .or_else(|| vars.default_region.clone())
            .or_else(|| profile.get("region").map(str::to_string)),
        ca_bundle: vars.ca_bundle.clone().or_else(|| {
            profile
                .get("ca_bundle")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        }),
    })
}

/// The profile of `AWS_PROFILE` (else `default`) from the config and credentials files.
fn load_profile(vars: &AwsVars, home: Option<&Path>) -> Result<Profile, AwsConfigError> {
    let credentials_path = vars
        .shared_credentials_file
        .clone()
        .unwrap_or_else(|| default_file(home, "credentials"));
    let config_path = vars
        .config_file
        .clone()
        .unwrap_or_else(|| default_file(home, "config"));
    let config = read_profile_file(&config_path, FileKind::Config)?;
    let credentials_file = read_profile_file(&credentials_path, FileKind::Credentials)?;
    let profile_name = vars.profile.clone().unwrap_or_else(|| "default".into());

    let mut values = BTreeMap::new();
    let mut found = false;
    for (file, path) in [
        (&config, &config_path),
        (&credentials_file, &credentials_path),
    ] {
        if let Some(section) = file.profiles.get(&profile_name) {
            found = true;
            for (key, value) in section {
                values.insert(key.clone(), (value.clone(), path.clone()));
            }
        }
    }
    if !found && vars.profile.is_some() {
        return Err(AwsConfigError::ProfileNotFound {
            name: profile_name,
            credentials: credentials_path,
            config: config_path,
        });
    }
    let services = values
        .get("services")
        .and_then(|(name, _)| config.services.get(name))
        .cloned()
        .unwrap_or_default();
    Ok(Profile {
        name: profile_name,
        values,
        services,
    })
}

fn credentials(
    vars: &AwsVars,
    profile: &Profile,
) -> Result<(Credentials, CredentialSource), AwsConfigError> {
    match (&vars.access_key_id, &vars.secret_access_key) {
        (Some(key_id), Some(secret_key)) => {
            return Ok((
                Credentials::Static {
                    key_id: key_id.clone(),
                    secret_key: secret_key.clone(),
                    session_token: vars.session_token.clone(),
                },
                CredentialSource::Environment {
                    session_token: vars.session_token.is_some(),
                },
            ));
        }
        (Some(_), None) => {
            return Err(AwsConfigError::Incomplete {
                set: env::AWS_ACCESS_KEY_ID,
                missing: env::AWS_SECRET_ACCESS_KEY,
            });
        }
        (None, Some(_)) => {
            return Err(AwsConfigError::Incomplete {
                set: env::AWS_SECRET_ACCESS_KEY,
                missing: env::AWS_ACCESS_KEY_ID,
            });
        }
        (None, None) => {}
    }
    let session_name = || {
        vars.role_session_name
            .clone()
            .or_else(|| profile.get("role_session_name").map(str::to_string))
            .unwrap_or_else(|| "kubectl-mlbackup".into())
    };
    let sts_endpoint = || -> Result<Option<String>, AwsConfigError> {
        Ok(endpoint(vars, profile, "sts", env::AWS_ENDPOINT_URL_STS)?.map(|e| e.url))
    };
    match (&vars.web_identity_token_file, &vars.role_arn) {
        (Some(token_file), Some(role_arn)) => {
            return Ok((
                Credentials::WebIdentity {
                    token_file: token_file.clone(),
                    role_arn: role_arn.clone(),
                    session_name: session_name(),
                    sts_endpoint: sts_endpoint()?,
                },
                CredentialSource::WebIdentityEnvironment,
            ));
        }
        (Some(_), None) => {
            return Err(AwsConfigError::Incomplete {
                set: env::AWS_WEB_IDENTITY_TOKEN_FILE,
                missing: env::AWS_ROLE_ARN,
            });
        }
        // AWS_ROLE_ARN alone is how some tools name a role to assume from a profile; the CLI
        // ignores it without a token file, and so does this.
        (None, _) => {}
    }

    let incomplete = |set: &'static str, missing: &'static str| {
        Err(AwsConfigError::IncompleteProfile {
            name: profile.name.clone(),
            file: profile.file_of(set),
            set,
            missing,
        })
    };
    match (
        profile.get("aws_access_key_id"),
        profile.get("aws_secret_access_key"),
    ) {
        (Some(key_id), Some(secret_key)) => {
            return Ok((
                Credentials::Static {
                    key_id: key_id.to_string(),
                    secret_key: Secret::new(secret_key.to_string()),
                    session_token: profile
                        .get("aws_session_token")
                        .map(|t| Secret::new(t.to_string())),
                },
                CredentialSource::Profile {
                    name: profile.name.clone(),
                    file: profile.file_of("aws_secret_access_key"),
                },
            ));
        }
        (Some(_), None) => return incomplete("aws_access_key_id", "aws_secret_access_key"),
        (None, Some(_)) => return incomplete("aws_secret_access_key", "aws_access_key_id"),
        (None, None) => {}
    }
    match (
        profile.get("web_identity_token_file"),
        profile.get("role_arn"),
    ) {
        (Some(token_file), Some(role_arn)) => {
            return Ok((
                Credentials::WebIdentity {
                    token_file: PathBuf::from(token_file),
                    role_arn: role_arn.to_string(),
                    session_name: session_name(),
                    sts_endpoint: sts_endpoint()?,
                },
                CredentialSource::Profile {
                    name: profile.name.clone(),
                    file: profile.file_of("web_identity_token_file"),
                },
            ));
        }
        (Some(_), None) => return incomplete("web_identity_token_file", "role_arn"),
        (None, _) => {}
    }
    // Ways of getting credentials that need more than this client does (running a program,
    // SSO, assuming a role with other credentials): refused by name rather than skipped, so
    // the user is not silently given other credentials.
    for setting in [
        "credential_process",
        "sso_session",
        "sso_start_url",
        "source_profile",
        "credential_source",
    ] {
        if profile.get(setting).is_some() {
            return Err(AwsConfigError::UnsupportedProfile {
                name: profile.name.clone(),
                setting: setting.to_string(),
            });
        }
    }
    if vars.ec2_metadata_disabled {
        return Err(AwsConfigError::NoCredentials {
            profile: profile.name.clone(),
        });
    }
    Ok((
        Credentials::InstanceMetadata,
        CredentialSource::InstanceMetadata,
    ))
}

/// The endpoint of `service` (`s3`, `sts`): its own variable, `AWS_ENDPOINT_URL`, the
/// profile's `services` section, the profile's `endpoint_url`.
fn endpoint(
    vars: &AwsVars,
    profile: &Profile,
    service: &str,
    service_var: &'static str,
) -> Result<Option<Endpoint>, AwsConfigError> {
    let service_specific = match service {
        "s3" => &vars.endpoint_url_s3,
        _ => &vars.endpoint_url_sts,
    };
    let service_key = format!("{service}.endpoint_url");
    let candidate = service_specific
        .as_ref()
        .map(|url| (url.clone(), service_var.to_string()))
        .or_else(|| {
            vars.endpoint_url
                .as_ref()
                .map(|url| (url.clone(), env::AWS_ENDPOINT_URL.to_string()))
        })
        .or_else(|| {
            profile.services.get(&service_key).map(|url| {
                (
                    url.clone(),
                    format!(
                        "`{service_key}` of the profile `{}`'s services",
                        profile.name
                    ),
                )
            })
        })
        .or_else(|| {
            profile.get("endpoint_url").map(|url| {
                (
                    url.to_string(),
                    format!("`endpoint_url` of the profile `{}`", profile.name),
                )
            })
        });
    candidate
        .map(|(url, from)| check_endpoint(&url, from))
        .transpose()
}

fn check_endpoint(url: &str, from: String) -> Result<Endpoint, AwsConfigError> {
    let bad = |reason: &str| AwsConfigError::BadEndpoint {
        url: url.to_string(),
        from: from.clone(),
        reason: reason.to_string(),
    };
    let uri: http::Uri = url.parse().map_err(|_| bad(""))?;
    let plain_http = match uri.scheme_str() {
        Some("https") => false,
        Some("http") => true,
        _ => return Err(bad("")),
    };
    let Some(authority) = uri.authority() else {
        return Err(bad(": it has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(AwsConfigError::CredentialsInEndpoint { from });
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(bad(": it has a query or fragment"));
    }
    Ok(Endpoint {
        url: url.trim_end_matches('/').to_string(),
        plain_http,
        from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        for (name, text) in files {
            std::fs::write(home.path().join(".aws").join(name), text).unwrap();
        }
        home
    }

    fn env_keys() -> AwsVars {
        AwsVars {
            access_key_id: Some("AKIDENV".into()),
            secret_access_key: Some(Secret::new("env-secret".into())),
            ..AwsVars::default()
        }
    }

    #[test]
    fn environment_keys_come_first() {
        let home = home_with(&[(
            "credentials",
            "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = file-secret\n",
        )]);
        let settings = resolve(&env_keys(), Some(home.path())).unwrap();
        match &settings.credentials {
            Credentials::Static {
                key_id,
                secret_key,
                session_token,
            } => {
                assert_eq!(key_id, "AKIDENV");
                assert_eq!(secret_key.expose(), "env-secret");
                assert!(session_token.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            settings.credential_source.to_string(),
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        );
        assert_eq!(settings.region, "us-east-1");
        assert_eq!(settings.endpoint, None);
        // Debug output of the whole settings holds no secret.
        assert!(!format!("{settings:?}").contains("env-secret"));
    }

    #[test]
    fn half_set_environment_keys_are_an_error() {
        let vars = AwsVars {
            access_key_id: Some("AKID".into()),
            ..AwsVars::default()
        };
        let err = resolve(&vars, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
        );
        let vars = AwsVars {
            web_identity_token_file: Some("/var/run/token".into()),
            ..AwsVars::default()
        };
        assert!(matches!(
            resolve(&vars, None),
            Err(AwsConfigError::Incomplete {
                missing: "AWS_ROLE_ARN",
                ..
            })
        ));
    }

    #[test]
    fn web_identity_of_a_pod() {
        let vars = AwsVars {
            web_identity_token_file: Some(
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into(),
            ),
            role_arn: Some("arn:aws:iam::123456789012:role/backup".into()),
            region: Some("eu-west-1".into()),
            ..AwsVars::default()
        };
        let settings = resolve(&vars, None).unwrap();
        match &settings.credentials {
            Credentials::WebIdentity {
                token_file,
                role_arn,
                session_name,
                sts_endpoint,
            } => {
                assert!(token_file.ends_with("serviceaccount/token"));
                assert_eq!(role_arn, "arn:aws:iam::123456789012:role/backup");
                assert_eq!(session_name, "kubectl-mlbackup");
                assert_eq!(sts_endpoint, &None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            settings.credential_source,
            CredentialSource::WebIdentityEnvironment
        );
        assert_eq!(settings.region, "eu-west-1");
    }

    #[test]
    fn named_profile_from_both_files() {
        let home = home_with(&[
            (
                "config",
                "[default]\nregion = eu-west-1\n\
                 [profile team]\nregion = eu-central-1\nca_bundle = /etc/team-ca.pem\n\
                 services = local\n\
                 [services local]\ns3 =\n  endpoint_url = http://127.0.0.1:9000/\n",
            ),
            (
                "credentials",
                "[team]\naws_access_key_id = AKIDTEAM\naws_secret_access_key = team-secret\n\
                 aws_session_token = team-token\n",
            ),
        ]);
        let vars = AwsVars {
            profile: Some("team".into()),
            ..AwsVars::default()
        };
        let settings = resolve(&vars, Some(home.path())).unwrap();
        assert_eq!(settings.region, "eu-central-1");
        assert_eq!(settings.ca_bundle, Some(PathBuf::from("/etc/team-ca.pem")));
        let endpoint = settings.endpoint.clone().unwrap();
        assert_eq!(endpoint.url, "http://127.0.0.1:9000");
        assert!(endpoint.plain_http);
        assert_eq!(
            endpoint.from,
            "`s3.endpoint_url` of the profile `team`'s services"
        );
        match &settings.credentials {
            Credentials::Static {
                key_id,
                session_token,
                ..
            } => {
                assert_eq!(key_id, "AKIDTEAM");
                assert_eq!(session_token.as_ref().unwrap().expose(), "team-token");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            settings.credential_source.to_string(),
            format!(
                "the profile `team` in {}",
                home.path().join(".aws/credentials").display()
            )
        );
    }

    #[test]
    fn variables_override_the_profile() {
        let home = home_with(&[(
            "config",
            "[default]\nregion = eu-west-1\nendpoint_url = https://s3.example\n\
             ca_bundle = /etc/profile-ca.pem\n",
        )]);
        let vars = AwsVars {
            region: Some("ap-south-1".into()),
            endpoint_url: Some("https://minio.example:9000".into()),
            ca_bundle: Some("/etc/env-ca.pem".into()),
            ..env_keys()
        };
        let settings = resolve(&vars, Some(home.path())).unwrap();
        assert_eq!(settings.region, "ap-south-1");
        let endpoint = settings.endpoint.unwrap();
        assert_eq!(endpoint.url, "https://minio.example:9000");
        assert!(!endpoint.plain_http);
        assert_eq!(endpoint.from, "AWS_ENDPOINT_URL");
        assert_eq!(settings.ca_bundle, Some(PathBuf::from("/etc/env-ca.pem")));

        // The S3-specific variable beats the general one; the profile's endpoint is the last.
        let vars = AwsVars {
            endpoint_url_s3: Some("http://s3-only:1".into()),
            endpoint_url: Some("http://general:2".into()),
            ..env_keys()
        };
        let settings = resolve(&vars, Some(home.path())).unwrap();
        assert_eq!(settings.endpoint.unwrap().url, "http://s3-only:1");
        let settings = resolve(&env_keys(), Some(home.path())).unwrap();
        assert_eq!(settings.endpoint.unwrap().url, "https://s3.example");
        assert_eq!(settings.region, "eu-west-1");
    }

    #[test]
    fn missing_profile_and_unsupported_ones() {
        let home = home_with(&[(
            "config",
            "[profile sso]\nsso_session = corp\n[profile half]\naws_access_key_id = AKID\n",
        )]);
        let vars = |name: &str| AwsVars {
            profile: Some(name.into()),
            ..AwsVars::default()
        };
        let err = resolve(&vars("nope"), Some(home.path())).unwrap_err();
        assert!(
            matches!(err, AwsConfigError::ProfileNotFound { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("the profile `nope` (AWS_PROFILE) is in neither")
        );

        let err = resolve(&vars("sso"), Some(home.path())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the profile `sso` gets its credentials with `sso_session`, which kubectl-mlbackup \
             does not support"
        );
        assert!(
            err.hint()
                .unwrap()
                .contains("aws configure export-credentials --profile sso")
        );

        let err = resolve(&vars("half"), Some(home.path())).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the profile `half` has aws_access_key_id but no aws_secret_access_key"
            ),
            "{err}"
        );
    }

    #[test]
    fn no_credentials_at_all() {
        let home = home_with(&[]);
        let settings = resolve(&AwsVars::default(), Some(home.path())).unwrap();
        assert_eq!(
            settings.credential_source,
            CredentialSource::InstanceMetadata
        );
        let vars = AwsVars {
            ec2_metadata_disabled: true,
            ..AwsVars::default()
        };
        let err = resolve(&vars, Some(home.path())).unwrap_err();
        assert!(matches!(err, AwsConfigError::NoCredentials { .. }));
        assert!(err.hint().unwrap().contains("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn bad_endpoints() {
        let with = |url: &str| AwsVars {
            endpoint_url: Some(url.into()),
            ..env_keys()
        };
        for url in ["ftp://x", "127.0.0.1:9000", "http://", "https://x/?a=b"] {
            let err = resolve(&with(url), None).unwrap_err();
            assert!(
                matches!(err, AwsConfigError::BadEndpoint { .. }),
                "{url}: {err}"
            );
        }
        let err = resolve(&with("https://AKID:topsecret@minio.example"), None).unwrap_err();
        assert!(matches!(err, AwsConfigError::CredentialsInEndpoint { .. }));
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    #[test]
    fn unreadable_profile_file_is_named() {
        let home = home_with(&[]);
        std::fs::create_dir(home.path().join(".aws/config")).unwrap();
        let err = resolve(&env_keys(), Some(home.path())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot read {}", home.path().join(".aws/config").display())
        );
    }
}
