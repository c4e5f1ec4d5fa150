//! An S3-compatible bucket as a backup location, on `object_store`: the operations the backup
//! code needs (items, the create-only manifest, capped reads, listing and deleting backups),
//! every key confined to the location's prefix, read-only locations refused before any request,
//! and the store's failures turned into errors that say what is wrong without a secret.
//!
//! Layout under the prefix is the folder's (DESIGN.md section 4): `NAME/manifest.json`,
//! `NAME/<namespace>/<name>.yaml`, ...; keys given here are relative to the prefix.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use mlbackup_helper::text::error_chain;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{
    Certificate, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload,
    RetryConfig, UpdateVersion,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::S3Location;
use super::aws::{CredentialSource, Credentials, S3Settings};
use super::key::{self, KeyError};

/// Attempts at a create-only put that S3 answered with `409 ConditionalRequestConflict` (another
/// conditional write of the key in flight: the outcome is not known yet, AWS says retry).
const CREATE_CONFLICT_ATTEMPTS: u32 = 5;

/// A bucket prefix holding backups, opened.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

struct Inner {
    client: AmazonS3,
    location: S3Location,
    /// The endpoint for messages: a custom one's URL, else `AWS S3 (REGION)`.
    endpoint: String,
    region: String,
    credential_source: CredentialSource,
    /// The credentials come from STS for a web identity.
    web_identity: bool,
}

impl fmt::Debug for S3Store {
    /// Not derived: `AmazonS3`'s Debug would go down to its configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("location", &self.inner.location.to_string())
            .field("endpoint", &self.inner.endpoint)
            .field("credential_source", &self.inner.credential_source)
            .finish()
    }
}

/// Something the user should know about how the location was opened (shown by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// An `http://` endpoint: contents travel unencrypted (signatures do not reveal the key).
    PlainHttp { endpoint: String, from: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::PlainHttp { endpoint, from } => write!(
                f,
                "the S3 endpoint {endpoint} (from {from}) is plain http://: what is sent and \
                 read travels without TLS (age-encrypted files stay encrypted)"
            ),
        }
    }
}

/// An opened location and what to tell the user about it.
#[derive(Debug)]
pub struct Opened {
    pub store: S3Store,
    pub warnings: Vec<Warning>,
}

/// One object of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Relative to the backup (`manifest.json`, `ns/name.yaml`).
    pub path: String,
    pub size: u64,
    /// When the object was written, as the server reports it (`LastModified`).
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// A failure of an S3 location, in the user's terms. No variant holds a secret or a server's
/// response body (AWS's error bodies repeat the signed request, session token included).
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("cannot read the CA bundle {}", path.display())]
    CaBundle {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the CA bundle {} holds no usable PEM certificate", path.display())]
    BadCaBundle { path: std::path::PathBuf },

    #[error("cannot set up the S3 client for {location}: {detail}")]
    Client { location: String, detail: String },

    #[error("{location} is read-only: refusing to {action} `{key}`")]
    ReadOnly {
        location: String,
        action: &'static str,
        key: String,
    },

    #[error("`{key}` is not a valid key under {location}")]
    InvalidKey {
        location: String,
        key: String,
        #[source]
        source: KeyError,
    },

    #[error("`{key}` already exists in {location}")]
    AlreadyExists { location: String, key: String },

    #[error("`{key}` does not exist in {location}")]
    NotFound { location: String, key: String },

    #[error("`{key}` in {location} is larger than the {limit} bytes allowed")]
    TooLarge {
        location: String,
        key: String,
        limit: u64,
    },

    #[error("the bucket `{bucket}` does not exist at {endpoint}")]
    NoSuchBucket { bucket: String, endpoint: String },

    #[error("{endpoint} refused the credentials from {credential_source} ({code})")]
    BadCredentials {
        endpoint: String,
        code: String,
        credential_source: CredentialSource,
    },

    #[error("{endpoint} expects another region than `{region}` ({code})")]
    WrongRegion {
        endpoint: String,
        region: String,
        code: String,
    },

    #[error("access to {location} is denied to the credentials from {credential_source} ({code})")]
    AccessDenied {
        location: String,
        code: String,
        credential_source: CredentialSource,
    },

    #[error("cannot get AWS credentials from {credential_source}: {detail}")]
    Credentials {
        credential_source: CredentialSource,
        detail: String,
    },

    #[error("cannot reach the S3 endpoint {endpoint}: {detail}")]
    Unreachable { endpoint: String, detail: String },

    #[error("cannot {action} `{key}` in {location}: {detail}")]
    Request {
        action: &'static str,
        key: String,
        location: String,
        detail: String,
    },
}

impl S3Error {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            S3Error::CaBundle { .. } | S3Error::BadCaBundle { .. } => Some(
                "point AWS_CA_BUNDLE (or the profile's ca_bundle) at a PEM file of the CA that \
                 signed the endpoint's certificate"
                    .into(),
            ),
            S3Error::ReadOnly { .. } => Some(
                "this location was opened read-only (`?readonly`); use it without the option to \
                 change it"
                    .into(),
            ),
            S3Error::NoSuchBucket { bucket, .. } => Some(format!(
                "check the bucket name, or create it (`aws s3 mb s3://{bucket}`); the endpoint \
                 comes from AWS_ENDPOINT_URL"
            )),
            S3Error::BadCredentials {
                code,
                credential_source,
                ..
            } => Some(match code.as_str() {
                "ExpiredToken" | "TokenRefreshRequired" => format!(
                    "the session token from {credential_source} has expired: get new credentials"
                ),
                "InvalidAccessKeyId" | "NotSignedUp" => format!(
                    "the access key id from {credential_source} is not known to the endpoint: \
                     check it, and that AWS_ENDPOINT_URL points at the right store"
                ),
                _ => format!(
                    "the credentials are wrong: check the secret key from {credential_source} \
                     (it does not match the access key id)"
                ),
            }),
            S3Error::WrongRegion { .. } => Some("set AWS_REGION to the bucket's region".into()),
            S3Error::AccessDenied {
                credential_source, ..
            } => Some(format!(
                "the credentials from {credential_source} are valid but lack permission on \
                 this bucket and prefix (s3:ListBucket, s3:GetObject, s3:PutObject, \
                 s3:DeleteObject)"
            )),
            S3Error::Credentials { .. } => Some(
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or \
                 AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN"
                    .into(),
            ),
            S3Error::Unreachable { .. } => Some(
                "check AWS_ENDPOINT_URL (or the profile's endpoint_url) and the network (a \
                 proxy comes from HTTPS_PROXY); for a certificate signed by a private CA, set \
                 AWS_CA_BUNDLE"
                    .into(),
            ),
            S3Error::TooLarge { .. } => {
                Some("this is not a file written by kubectl-mlbackup".into())
            }
            S3Error::Client { .. }
            | S3Error::InvalidKey { .. }
            | S3Error::AlreadyExists { .. }
            | S3Error::NotFound { .. }
            | S3Error::Request { .. } => None,
        }
    }
}

/// What a failure of the store was, taken apart. Only `status`, `code`, the transport cause and
/// the text before any response body are ever shown.
#[derive(Debug, Default)]
struct Failure {
    /// The HTTP status, when the server answered.
    status: Option<u16>,
    /// The S3 error code of the response body (`NoSuchBucket`).
    code: Option<String>,
    /// The kind and root cause of a transport failure (`Connection refused (os error 111)`);
    /// object_store strips URLs from its HTTP errors.
    transport: Option<(HttpErrorKind, String)>,
    /// The variant object_store chose.
    not_found: bool,
    exists: bool,
    /// The error's text up to any response body, at most 300 characters.
    short: String,
    /// The whole text, response body included: looked into, never shown.
    text: String,
}

impl Failure {
    fn of(err: &object_store::Error) -> Failure {
        // object_store keeps the status and body in a private type: they are only in the text
        // (`... status code: 404 Not Found: <?xml ...<Code>NoSuchBucket</Code>...`).
        let text = error_chain(err);
        let status = text
            .split_once("status code: ")
            .and_then(|(_, rest)| rest.get(..3))
            .and_then(|digits| digits.parse().ok());
        let code = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| code)
            .filter(|code| !code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(str::to_string);
        let mut transport = None;
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(current) = cause {
            if let Some(http) = current.downcast_ref::<HttpError>() {
                let mut root: &(dyn std::error::Error + 'static) = http;
                while let Some(next) = root.source() {
                    root = next;
                }
                transport = Some((http.kind(), root.to_string()));
                break;
            }
            cause = current.source();
        }
        let short = text
            .split('<')
            .next()
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect::<String>()
            .trim_end_matches([':', ' '])
            .to_string();
        Failure {
            status,
            code,
            transport,
            not_found: matches!(err, object_store::Error::NotFound { .. }),
            exists: matches!(
                err,
                object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
            ),
            short,
            text,
        }
    }

    /// Whether it happened getting credentials, before the request to the bucket: from the
    /// instance metadata service (its URL is in the text), or from STS for a web identity
    /// (the only request sent with its URL redacted, as the token is in it).
    fn is_credential_fetch(&self, source: &CredentialSource, web_identity: bool) -> bool {
        match source {
            CredentialSource::InstanceMetadata => self.text.contains("169.254.169.254"),
            _ if web_identity => {
                self.text.contains("performing POST REDACTED")
                    || self.text.contains("AssumeRoleWithWebIdentity")
                    || self.text.contains("Failed to read token file")
            }
            _ => false,
        }
    }

    /// `HTTP 500 (InternalError)`, the transport cause, or the short text.
    fn detail(&self) -> String {
        match (&self.status, &self.code, &self.transport) {
            (Some(status), Some(code), _) => format!("HTTP {status} ({code})"),
            (Some(status), None, _) => format!("HTTP {status}"),
            (None, _, Some((_, cause))) => cause.clone(),
            (None, _, None) => self.short.clone(),
        }
    }
}

impl S3Store {
    /// Opens `location` with `settings` (see `aws::resolve`). Sends no request: a wrong key or
    /// a missing bucket shows at the first operation, or at [`S3Store::check`].
    pub fn open(location: &S3Location, settings: &S3Settings) -> Result<Opened, S3Error> {
        let mut warnings = Vec::new();
        let mut options = ClientOptions::new();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(&settings.region)
            // The manifest is written with `If-None-Match: *` (object_store's default; said
            // here so that a change of default cannot turn create-only puts into overwrites).
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            // A few quick retries of what failed before reaching the server or with 5xx; an
            // unreachable endpoint fails within seconds, not object_store's 3 minutes.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            });
        let endpoint = match &settings.endpoint {
            Some(endpoint) => {
                if endpoint.plain_http {
                    options = options.with_allow_http(true);
                    warnings.push(Warning::PlainHttp {
                        endpoint: endpoint.url.clone(),
                        from: endpoint.from.clone(),
                    });
                }
                // Path-style (ENDPOINT/BUCKET/KEY): what every S3-compatible store serves,
                // and bucket names with dots keep working with TLS.
                builder = builder
                    .with_endpoint(&endpoint.url)
                    .with_virtual_hosted_style_request(false);
                endpoint.url.clone()
            }
            None => format!("AWS S3 ({})", settings.region),
        };
        if let Some(path) = &settings.ca_bundle {
            let pem = std::fs::read(path).map_err(|source| S3Error::CaBundle {
                path: path.clone(),
                source,
            })?;
            let certificates = Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certs| !certs.is_empty())
                .ok_or_else(|| S3Error::BadCaBundle { path: path.clone() })?;
            // As in the AWS CLI, the bundle replaces the system's roots.
            options = options.with_no_system_certificates(true);
            for certificate in certificates {
                options = options.with_root_certificate(certificate);
            }
        } else {
            // Mozilla's roots compiled in, beside the system's: the image is `FROM scratch`,
            // without CA files, where the system has none (and reqwest refuses to start).
            for root in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
                if let Ok(certificate) = Certificate::from_der(root) {
                    options = options.with_root_certificate(certificate);
                }
            }
        }
        builder = match &settings.credentials {
            Credentials::Static {
                key_id,
                secret_key,
                session_token,
            } => {
                let builder = builder
                    .with_access_key_id(key_id)
                    .with_secret_access_key(secret_key.expose());
                match session_token {
                    Some(token) => builder.with_token(token.expose()),
                    None => builder,
                }
            }
            Credentials::WebIdentity {
                token_file,
                role_arn,
                session_name,
                sts_endpoint,
            } => {
                let builder = builder
                    .with_config(
                        AmazonS3ConfigKey::WebIdentityTokenFile,
                        token_file.to_string_lossy(),
                    )
                    .with_config(AmazonS3ConfigKey::RoleArn, role_arn)
                    .with_config(AmazonS3ConfigKey::RoleSessionName, session_name);
                match sts_endpoint {
                    Some(url) => builder.with_config(AmazonS3ConfigKey::StsEndpoint, url),
                    None => builder,
                }
            }
            // object_store falls back to the instance metadata service by itself.
            Credentials::InstanceMetadata => builder,
        };
        let client = builder
            .with_client_options(options)
            .with_http_connector(super::request_log::LoggedConnector)
            .build()
            .map_err(|err| S3Error::Client {
                location: location.to_string(),
                detail: Failure::of(&err).short,
            })?;
        Ok(Opened {
            store: S3Store {
                inner: Arc::new(Inner {
                    client,
                    location: location.clone(),
                    endpoint,
                    region: settings.region.clone(),
                    credential_source: settings.credential_source.clone(),
                    web_identity: matches!(settings.credentials, Credentials::WebIdentity { .. }),
                }),
            },
            warnings,
        })
    }

    pub fn location(&self) -> &S3Location {
        &self.inner.location
    }

    pub fn is_read_only(&self) -> bool {
        self.inner.location.read_only
    }

    /// Checks `key` (relative to the prefix) before anything is changed, e.g. every path of a
    /// manifest about to be read or copied.
    pub fn check_key(&self, key: &str) -> Result<(), S3Error> {
        self.path(key).map(|_| ())
    }

    /// One request that needs the bucket and the credentials (a listing of at most one key):
    /// a wrong key or a missing bucket shows here, before anything is written.
    pub async fn check(&self) -> Result<(), S3Error> {
        let prefix = self.inner.location.prefix.path();
        let mut listing = self.inner.client.list(prefix.as_ref());
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(err)) => Err(self.error(err, "list", "")),
        }
    }

    /// Writes (or replaces) the object `key`. For items of a backup whose name this run holds;
    /// see [`S3Store::put_new`] for what must never be replaced.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        let path = self.writable(key, "write")?;
        self.inner
            .client
            .put_opts(&path, PutPayload::from(bytes), PutMode::Overwrite.into())
            .await
            .map(|_| ())
            .map_err(|err| self.error(err, "write", key))
    }

    /// Writes `key` only if no object has that key (`If-None-Match: *`): of two writers racing
    /// for one key exactly one succeeds, the other gets [`S3Error::AlreadyExists`]. For
    /// `manifest.json`, written last: its presence means "complete".
    pub async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        let path = self.writable(key, "create")?;
        let payload = PutPayload::from(bytes);
        let mut attempt = 1;
        loop {
            let result = self
                .inner
                .client
                .put_opts(&path, payload.clone(), PutMode::Create.into())
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(err) => {
                    let failure = Failure::of(&err);
                    if failure.code.as_deref() == Some("ConditionalRequestConflict")
                        && attempt < CREATE_CONFLICT_ATTEMPTS
                    {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                        continue;
                    }
                    return Err(self.classify(failure, "create", key));
                }
            }
        }
    }

    /// An upload queue: at most `concurrency` puts in flight, so memory stays bounded by
    /// `concurrency` items however many are written.
    pub fn uploads(&self, concurrency: usize) -> Uploads {
        Uploads {
            store: self.clone(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            tasks: JoinSet::new(),
            written: 0,
        }
    }

    /// Replaces `key` only while it is still the object that was read with `e_tag`
    /// (`If-Match`, a compare-and-swap S3 decides): of two writers replacing the same object
    /// exactly one succeeds, the other gets [`S3Error::AlreadyExists`] (changed meanwhile).
    pub async fn replace_if_unchanged(
        &self,
        key: &str,
        bytes: Vec<u8>,
        e_tag: String,
    ) -> Result<(), S3Error> {
        let path = self.writable(key, "replace")?;
        let mode = PutMode::Update(UpdateVersion {
            e_tag: Some(e_tag),
            version: None,
        });
        self.inner
            .client
            .put_opts(&path, PutPayload::from(bytes), mode.into())
            .await
            .map(|_| ())
            .map_err(|err| self.error(err, "replace", key))
    }

    /// Reads `key`, refusing objects larger than `max_bytes` (before reading them when the size
    /// is announced, and while reading in any case).
    pub async fn get(&self, key: &str, max_bytes: u64) -> Result<Vec<u8>, S3Error> {
        Ok(self.get_tagged(key, max_bytes).await?.0)
    }

    /// [`S3Store::get`] with the object's ETag, for [`S3Store::replace_if_unchanged`].
    pub async fn get_tagged(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, Option<String>), S3Error> {
        let path = self.path(key)?;
        let result = self
            .inner
            .client
            .get_opts(&path, GetOptions::default())
            .await
            .map_err(|err| self.error(err, "read", key))?;
        let too_large = || S3Error::TooLarge {
            location: self.inner.location.to_string(),
            key: key.to_string(),
            limit: max_bytes,
        };
        if result.meta.size > max_bytes {
            return Err(too_large());
        }
        let e_tag = result.meta.e_tag.clone();
        let mut bytes = Vec::with_capacity(usize::try_from(result.meta.size).unwrap_or(0));
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| self.error(err, "read", key))?;
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((bytes, e_tag))
    }

    /// The size of `key`, or `None` when there is no such object.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, S3Error> {
        let path = self.path(key)?;
        match self.inner.client.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(err) => match self.error(err, "read", key) {
                S3Error::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The names directly under the prefix that hold objects (`NAME/` common prefixes): the
    /// candidates for backups, sorted. Objects directly under the prefix are not backups.
    pub async fn list_names(&self) -> Result<Vec<String>, S3Error> {
        let prefix = self.inner.location.prefix.path();
        let listing = self
            .inner
            .client
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|err| self.error(err, "list", ""))?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|path| self.inner.location.prefix.strip(path))
            .filter(|name| key::check_part(name).is_ok())
            // The location's own records (`.mlbackup-runs/`), as a folder's dot entries.
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Whether any object exists under `NAME/`.
    pub async fn exists(&self, name: &str) -> Result<bool, S3Error> {
        let path = self.name_path(name)?;
        let mut listing = self.inner.client.list(Some(&path));
        match listing.next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(err)) => Err(self.error(err, "list", name)),
        }
    }

    /// Every object under `NAME/`, sorted by path.
    pub async fn list(&self, name: &str) -> Result<Vec<StoredObject>, S3Error> {
        let path = self.name_path(name)?;
        let metas: Vec<_> = self
            .inner
            .client
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|err| self.error(err, "list", name))?;
        let under = format!("{name}/");
        let mut objects: Vec<StoredObject> = metas
            .into_iter()
            .filter_map(|meta| {
                let key = self.inner.location.prefix.strip(&meta.location)?;
                Some(StoredObject {
                    path: key.strip_prefix(&under)?.to_string(),
                    size: meta.size,
                    modified: meta.last_modified,
                })
            })
            .collect();
        objects.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(objects)
    }

    /// Deletes the object `key` (no error when there is none, as S3 does).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let path = self.writable(key, "delete")?;
        self.inner
            .client
            .delete(&path)
            .await
            .map_err(|err| self.error(err, "delete", key))
    }

    /// Deletes everything under `NAME/`: the object `first` (the manifest) before the others,
    /// so that a delete cut short never leaves something that looks complete, and `last` (the
    /// claim) after them, so that what it leaves is still known as a backup. Returns how many
    /// objects were deleted.
    pub async fn delete_all(&self, name: &str, first: &str, last: &str) -> Result<u64, S3Error> {
        self.writable(name, "delete")?;
        let objects = self.list(name).await?;
        let mut deleted = 0;
        if objects.iter().any(|o| o.path == first) {
            self.delete(&format!("{name}/{first}")).await?;
            deleted += 1;
        }
        let paths: Vec<Path> = objects
            .iter()
            .filter(|o| o.path != first && o.path != last)
            .map(|o| self.path(&format!("{name}/{}", o.path)))
            .collect::<Result<_, _>>()?;
        let mut results = self
            .inner
            .client
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
        while let Some(result) = results.next().await {
            result.map_err(|err| self.error(err, "delete", name))?;
            deleted += 1;
        }
        if objects.iter().any(|o| o.path == last) {
            self.delete(&format!("{name}/{last}")).await?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn path(&self, key: &str) -> Result<Path, S3Error> {
        self.inner
            .location
            .prefix
            .join(key)
            .map_err(|source| S3Error::InvalidKey {
                location: self.inner.location.to_string(),
                key: key.escape_default().to_string(),
                source,
            })
    }

    fn name_path(&self, name: &str) -> Result<Path, S3Error> {
        key::check_part(name).map_err(|source| S3Error::InvalidKey {
            location: self.inner.location.to_string(),
            key: name.escape_default().to_string(),
            source,
        })?;
        self.path(name)
    }

    /// The path of `key` for a change, refused on a read-only location before anything else.
    fn writable(&self, key: &str, action: &'static str) -> Result<Path, S3Error> {
        if self.is_read_only() {
            return Err(S3Error::ReadOnly {
                location: self.inner.location.to_string(),
                action,
                key: key.escape_default().to_string(),
            });
        }
        self.path(key)
    }

    fn error(&self, err: object_store::Error, action: &'static str, key: &str) -> S3Error {
        self.classify(Failure::of(&err), action, key)
    }

    fn classify(&self, failure: Failure, action: &'static str, key: &str) -> S3Error {
        let inner = &*self.inner;
        let location = || inner.location.to_string();
        let key = key.to_string();
        if failure.is_credential_fetch(&inner.credential_source, inner.web_identity) {
            return S3Error::Credentials {
                credential_source: inner.credential_source.clone(),
                detail: failure.detail(),
            };
        }
        match failure.code.as_deref() {
            Some(
                code @ ("SignatureDoesNotMatch"
                | "InvalidAccessKeyId"
                | "NotSignedUp"
                | "InvalidToken"
                | "ExpiredToken"
                | "TokenRefreshRequired"
                | "InvalidSecurity"),
            ) => {
                return S3Error::BadCredentials {
                    endpoint: inner.endpoint.clone(),
                    code: code.to_string(),
                    credential_source: inner.credential_source.clone(),
                };
            }
            Some(code @ ("AuthorizationHeaderMalformed" | "PermanentRedirect")) => {
                return S3Error::WrongRegion {
                    endpoint: inner.endpoint.clone(),
                    region: inner.region.clone(),
                    code: code.to_string(),
                };
            }
            Some("NoSuchBucket") => {
                return S3Error::NoSuchBucket {
                    bucket: inner.location.bucket.clone(),
                    endpoint: inner.endpoint.clone(),
                };
            }
            _ => {}
        }
        if failure.status == Some(403) {
            return S3Error::AccessDenied {
                location: location(),
                code: failure.code.clone().unwrap_or_else(|| "HTTP 403".into()),
                credential_source: inner.credential_source.clone(),
            };
        }
        if failure.exists {
            return S3Error::AlreadyExists {
                location: location(),
                key,
            };
        }
        if failure.not_found || failure.status == Some(404) {
            return S3Error::NotFound {
                location: location(),
                key,
            };
        }
        if let Some((HttpErrorKind::Connect | HttpErrorKind::Timeout, cause)) = &failure.transport {
            return S3Error::Unreachable {
                endpoint: inner.endpoint.clone(),
                detail: cause.clone(),
            };
        }
        S3Error::Request {
            action,
            key,
            location: location(),
            detail: failure.detail(),
        }
    }
}

/// Puts running concurrently (see [`S3Store::uploads`]). Dropping it cancels what is in flight:
/// an interrupted backup leaves objects without a manifest, which list as partial.
pub struct Uploads {
    store: S3Store,
    permits: Arc<Semaphore>,
    tasks: JoinSet<Result<(), S3Error>>,
    written: u64,
}

impl Uploads {
    /// Starts writing `key`, waiting while `concurrency` puts are in flight. Returns the first
    /// failure of an earlier put as soon as it is known (the caller stops then).
    pub async fn put(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        // Checked here, not in the task: a bad key or a read-only location fails this call.
        self.store.writable(key, "write")?;
        self.reap()?;
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        self.reap()?;
        let store = self.store.clone();
        let key = key.to_string();
        self.tasks.spawn(async move {
            let result = store.put(&key, bytes).await;
            drop(permit);
            result
        });
        Ok(())
    }

    /// Waits for every put; the first failure, or how many objects were written.
    pub async fn finish(mut self) -> Result<u64, S3Error> {
        while let Some(done) = self.tasks.join_next().await {
            self.count(done)?;
        }
        Ok(self.written)
    }

    fn reap(&mut self) -> Result<(), S3Error> {
        while let Some(done) = self.tasks.try_join_next() {
            self.count(done)?;
        }
        Ok(())
    }

    fn count(
        &mut self,
        done: Result<Result<(), S3Error>, tokio::task::JoinError>,
    ) -> Result<(), S3Error> {
        match done {
            Ok(Ok(())) => {
                self.written += 1;
                Ok(())
            }
            Ok(Err(err)) => Err(err),
            // A put that panicked: re-raise it here, where it belongs.
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real S3 server (s3s-fs, see `mlbackup_testkit::s3`).

    use std::sync::Arc;

    use mlbackup_testkit::s3::S3Server;
    use tokio::sync::Barrier;

    use super::*;
    use crate::env::{AwsVars, Secret};
    use crate::location::Location;
    use crate::location::aws;

    const MANIFEST: &str = "manifest.json";

    fn vars(server: &S3Server) -> AwsVars {
        AwsVars {
            endpoint_url: Some(server.endpoint.clone()),
            access_key_id: Some(server.access_key_id.clone()),
            secret_access_key: Some(Secret::new(server.secret_access_key.clone())),
            ec2_metadata_disabled: true,
            ..AwsVars::default()
        }
    }

    fn open_with(location: &str, vars: &AwsVars) -> Opened {
        mlbackup_testkit::tls::install_crypto_provider();
        let Location::S3(location) = Location::parse(location.as_ref()).unwrap() else {
            panic!("{location} is not an s3:// location");
        };
        // An empty HOME: no profile files of the machine running the tests.
        let home = tempfile::tempdir().unwrap();
        let settings = aws::resolve(vars, Some(home.path())).unwrap();
        S3Store::open(&location, &settings).unwrap()
    }

    fn open(server: &S3Server, location: &str) -> S3Store {
        let opened = open_with(location, &vars(server));
        // The test server is plain http: said, as data.
        assert_eq!(
            opened.warnings,
            vec![Warning::PlainHttp {
                endpoint: server.endpoint.clone(),
                from: "AWS_ENDPOINT_URL".into()
            }]
        );
        opened.store
    }

    /// Everything a user sees of an error: message, causes, hint, and its Debug form.
    fn shown(err: &S3Error) -> String {
        format!(
            "{} | {} | {:?}",
            error_chain(err),
            err.hint().unwrap_or_default(),
            err
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn objects_round_trip_with_concurrent_uploads() {
        let Some(server) = S3Server::start_or_skip("objects_round_trip") else {
            return;
        };
        let store = open(&server, &format!("s3://{}/team/prod", server.bucket));
        store.check().await.unwrap();
        assert!(!store.exists("lrs_backup_1").await.unwrap());

        let mut uploads = store.uploads(4);
        for i in 0..40 {
            let body = format!("kind: LongRunningService\nmetadata:\n  name: lrs-{i}\n");
            uploads
                .put(
                    &format!("lrs_backup_1/ns-{}/lrs-{i}.yaml", i % 3),
                    body.into_bytes(),
                )
                .await
                .unwrap();
        }
        assert_eq!(uploads.finish().await.unwrap(), 40);
        store
            .put_new("lrs_backup_1/manifest.json", b"{\"items\": []}".to_vec())
            .await
            .unwrap();

        // Stored under the prefix, byte for byte.
        let on_disk = server.object_file(&server.bucket, "team/prod/lrs_backup_1/ns-2/lrs-5.yaml");
        assert_eq!(
            std::fs::read_to_string(on_disk).unwrap(),
            "kind: LongRunningService\nmetadata:\n  name: lrs-5\n"
        );
        assert_eq!(
            store
                .get("lrs_backup_1/ns-1/lrs-7.yaml", 1 << 20)
                .await
                .unwrap(),
            b"kind: LongRunningService\nmetadata:\n  name: lrs-7\n"
        );
        assert_eq!(
            store
                .get("lrs_backup_1/manifest.json", 1 << 20)
                .await
                .unwrap(),
            b"{\"items\": []}"
        );
        assert_eq!(
            store.size("lrs_backup_1/manifest.json").await.unwrap(),
            Some(13)
        );
        assert_eq!(store.size("lrs_backup_1/nothing.yaml").await.unwrap(), None);
        assert!(matches!(
            store.get("lrs_backup_1/nothing.yaml", 1 << 20).await,
            Err(S3Error::NotFound { key, .. }) if key == "lrs_backup_1/nothing.yaml"
        ));

        let objects = store.list("lrs_backup_1").await.unwrap();
        assert_eq!(objects.len(), 41);
        assert_eq!(objects[0].path, "manifest.json");
        assert_eq!(objects[1].path, "ns-0/lrs-0.yaml");
        assert!(store.exists("lrs_backup_1").await.unwrap());
        // A name that is a prefix of another is not confused with it.
        assert!(!store.exists("lrs_backup").await.unwrap());

        // Deleted: manifest and items, nothing else.
        store
            .put("lrs_backup_2/manifest.json", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store
                .delete_all("lrs_backup_1", MANIFEST, ".claim")
                .await
                .unwrap(),
            41
        );
        assert!(!store.exists("lrs_backup_1").await.unwrap());
        assert_eq!(store.list_names().await.unwrap(), vec!["lrs_backup_2"]);
        assert_eq!(store.list("lrs_backup_1").await.unwrap(), vec![]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backups_are_listed_under_their_prefix_only() {
        let Some(server) = S3Server::start_or_skip("backups_are_listed") else {
            return;
        };
        let bucket = &server.bucket;
        let root = open(&server, &format!("s3://{bucket}"));
        for key in [
            "clusters/prod/lrs_backup_2026_01_01_00_00/manifest.json",
            "clusters/prod/lrs_backup_2026_01_02_00_00/ns/a.yaml",
            "clusters/prod/before-upgrade/manifest.json",
            // An object directly under the prefix is not a backup.
            "clusters/prod/README",
            // Other clusters beside it, one whose name starts like it.
            "clusters/staging/lrs_backup_2026_01_01_00_00/manifest.json",
            "clusters/prod-eu/lrs_backup_2026_03_03_00_00/manifest.json",
        ] {
            root.put(key, b"{}".to_vec()).await.unwrap();
        }
        let prod = open(&server, &format!("s3://{bucket}/clusters/prod/"));
        assert_eq!(
            prod.list_names().await.unwrap(),
            vec![
                "before-upgrade",
                "lrs_backup_2026_01_01_00_00",
                "lrs_backup_2026_01_02_00_00"
            ]
        );
        let staging = open(&server, &format!("s3://{bucket}/clusters/staging"));
        assert_eq!(
            staging.list_names().await.unwrap(),
            vec!["lrs_backup_2026_01_01_00_00"]
        );
        assert_eq!(
            root.list_names().await.unwrap(),
            vec!["clusters"],
            "the bucket's root holds one prefix"
        );
        let empty = open(&server, &format!("s3://{bucket}/clusters/none"));
        assert_eq!(empty.list_names().await.unwrap(), Vec::<String>::new());
        empty.check().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_only_put_never_replaces() {
        let Some(server) = S3Server::start_or_skip("create_only_put") else {
            return;
        };
        let store = open(&server, &format!("s3://{}/prod", server.bucket));
        let key = "lrs_backup_1/manifest.json";
        store.put_new(key, b"first".to_vec()).await.unwrap();
        let err = store.put_new(key, b"second".to_vec()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "`lrs_backup_1/manifest.json` already exists in s3://{}/prod",
                server.bucket
            )
        );
        assert_eq!(store.get(key, 100).await.unwrap(), b"first");
    }

    /// Two writers start a create-only put of the same key at the same moment: exactly one
    /// wins, the other gets AlreadyExists, and the object is the winner's.
    ///
    /// s3s-fs 0.14.1 alone honours `If-None-Match: *` only between requests, not within a race
    /// (it checks that the file is absent, then writes a temp file and renames it over the key),
    /// so both racers won there. S3, MinIO and R2 decide atomically; the test kit's front
    /// (`mlbackup_testkit::s3`) serialises the writes of a key so that s3s-fs does too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_only_race_has_one_winner() {
        let Some(server) = S3Server::start_or_skip("create_only_race") else {
            return;
        };
        let store = open(&server, &format!("s3://{}/prod", server.bucket));
        let key = "lrs_backup_race/manifest.json";
        let gate = Arc::new(Barrier::new(2));
        let racers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let (store, gate) = (store.clone(), Arc::clone(&gate));
                tokio::spawn(async move {
                    gate.wait().await;
                    (who, store.put_new(key, who.as_bytes().to_vec()).await)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                (who, Ok(())) => winners.push(who),
                (_, Err(S3Error::AlreadyExists { .. })) => {}
                (who, Err(err)) => panic!("{who}: {err}"),
            }
        }
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        assert_eq!(
            store.get(key, 100).await.unwrap(),
            winners[0].as_bytes(),
            "the object is the winner's"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_keys_are_named_without_secrets() {
        let Some(server) = S3Server::start_or_skip("wrong_keys") else {
            return;
        };
        let location = format!("s3://{}/prod", server.bucket);
        let wrong_secret = "wrong-secret-value-0123456789";
        let store = open_with(
            &location,
            &AwsVars {
                secret_access_key: Some(Secret::new(wrong_secret.into())),
                session_token: Some(Secret::new("session-token-value".into())),
                ..vars(&server)
            },
        )
        .store;
        for err in [
            store.check().await.unwrap_err(),
            store.put("b/x.yaml", b"x".to_vec()).await.unwrap_err(),
        ] {
            assert!(
                matches!(&err, S3Error::BadCredentials { code, .. } if code == "SignatureDoesNotMatch"),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "{} refused the credentials from AWS_ACCESS_KEY_ID, \
                     AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (SignatureDoesNotMatch)",
                    server.endpoint
                )
            );
            assert!(err.hint().unwrap().starts_with("the credentials are wrong"));
            let shown = shown(&err);
            assert!(!shown.contains(wrong_secret), "{shown}");
            assert!(!shown.contains("session-token-value"), "{shown}");
            assert!(!shown.contains(&server.secret_access_key), "{shown}");
        }
        // Nothing was written.
        assert!(!server.object_file(&server.bucket, "prod/b/x.yaml").exists());

        let store = open_with(
            &location,
            &AwsVars {
                access_key_id: Some("AKIDNOTKNOWN".into()),
                ..vars(&server)
            },
        )
        .store;
        let err = store.check().await.unwrap_err();
        // S3 and MinIO say InvalidAccessKeyId; s3s says NotSignedUp, which S3 has too.
        assert!(
            matches!(&err, S3Error::BadCredentials { code, .. } if code == "NotSignedUp"),
            "{err:?}"
        );
        assert!(
            err.hint().unwrap().contains("access key id"),
            "{}",
            shown(&err)
        );
        assert!(!shown(&err).contains(&server.secret_access_key));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_bucket_is_named() {
        let Some(server) = S3Server::start_or_skip("missing_bucket") else {
            return;
        };
        let store = open(&server, "s3://no-such-bucket/prod");
        // Listings only: unlike S3, s3s-fs creates a missing bucket on a PutObject and answers
        // NoSuchKey to a GetObject in it. The backup code calls `check` before anything else.
        for err in [
            store.check().await.unwrap_err(),
            store.list_names().await.unwrap_err(),
            store.exists("b").await.unwrap_err(),
            store.list("b").await.unwrap_err(),
        ] {
            assert_eq!(
                err.to_string(),
                format!(
                    "the bucket `no-such-bucket` does not exist at {}",
                    server.endpoint
                )
            );
            assert!(
                err.hint()
                    .unwrap()
                    .contains("aws s3 mb s3://no-such-bucket")
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_endpoint_is_named() {
        let Some(mut server) = S3Server::start_or_skip("unreachable") else {
            return;
        };
        let store = open(&server, &format!("s3://{}/prod", server.bucket));
        server.kill();
        let err = store.check().await.unwrap_err();
        assert!(matches!(err, S3Error::Unreachable { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with(&format!(
                "cannot reach the S3 endpoint {}: ",
                server.endpoint
            )),
            "{err}"
        );
        assert!(err.to_string().contains("refused"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_only_location_refuses_every_change() {
        let Some(server) = S3Server::start_or_skip("read_only") else {
            return;
        };
        let bucket = &server.bucket;
        let writer = open(&server, &format!("s3://{bucket}/prod"));
        writer.put("b/manifest.json", b"{}".to_vec()).await.unwrap();
        let reader = open(&server, &format!("s3://{bucket}/prod?readonly"));
        assert!(reader.is_read_only());
        let errors = [
            reader.put("b/x.yaml", b"x".to_vec()).await.unwrap_err(),
            reader
                .put_new("c/manifest.json", b"{}".to_vec())
                .await
                .unwrap_err(),
            reader.delete("b/manifest.json").await.unwrap_err(),
            reader
                .delete_all("b", MANIFEST, ".claim")
                .await
                .unwrap_err(),
            reader
                .uploads(2)
                .put("b/y.yaml", b"y".to_vec())
                .await
                .unwrap_err(),
        ];
        for err in &errors {
            assert!(matches!(err, S3Error::ReadOnly { .. }), "{err:?}");
        }
        assert_eq!(
            errors[2].to_string(),
            format!(
                "s3://{bucket}/prod?readonly is read-only: refusing to delete `b/manifest.json`"
            )
        );
        assert!(errors[2].hint().unwrap().contains("?readonly"));
        // Reading works; nothing changed.
        assert_eq!(reader.get("b/manifest.json", 10).await.unwrap(), b"{}");
        assert_eq!(reader.list_names().await.unwrap(), vec!["b"]);
        let listed = writer.list("b").await.unwrap();
        let listed: Vec<(&str, u64)> = listed.iter().map(|o| (o.path.as_str(), o.size)).collect();
        assert_eq!(listed, [("manifest.json", 2)]);
        assert!(!server.object_file(bucket, "prod/c").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_that_would_leave_the_prefix_are_refused() {
        let Some(server) = S3Server::start_or_skip("keys_leave_prefix") else {
            return;
        };
        let bucket = &server.bucket;
        let root = open(&server, &format!("s3://{bucket}"));
        root.put("other/secret.yaml", b"theirs".to_vec())
            .await
            .unwrap();
        let store = open(&server, &format!("s3://{bucket}/prod"));
        for key in [
            "../other/secret.yaml",
            "/other/secret.yaml",
            "b/../../other/secret.yaml",
            "b//x",
            "",
        ] {
            let err = store.get(key, 100).await.unwrap_err();
            assert!(
                matches!(err, S3Error::InvalidKey { .. }),
                "{key:?}: {err:?}"
            );
            let err = store.put(key, b"x".to_vec()).await.unwrap_err();
            assert!(
                matches!(err, S3Error::InvalidKey { .. }),
                "{key:?}: {err:?}"
            );
        }
        for name in ["..", ".", "a/b", ""] {
            assert!(
                matches!(store.list(name).await, Err(S3Error::InvalidKey { .. })),
                "{name:?}"
            );
            assert!(
                matches!(
                    store.delete_all(name, MANIFEST, ".claim").await,
                    Err(S3Error::InvalidKey { .. })
                ),
                "{name:?}"
            );
        }
        let err = store.check_key("b/../../other/secret.yaml").unwrap_err();
        assert_eq!(
            error_chain(&err),
            format!(
                "`b/../../other/secret.yaml` is not a valid key under s3://{bucket}/prod: it has \
                 a `..` part, which could leave the prefix"
            )
        );
        assert_eq!(root.get("other/secret.yaml", 100).await.unwrap(), b"theirs");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_are_capped() {
        let Some(server) = S3Server::start_or_skip("reads_are_capped") else {
            return;
        };
        let store = open(&server, &format!("s3://{}/prod", server.bucket));
        store.put("b/big.yaml", vec![b'x'; 1000]).await.unwrap();
        let err = store.get("b/big.yaml", 999).await.unwrap_err();
        assert!(
            matches!(err, S3Error::TooLarge { limit: 999, .. }),
            "{err:?}"
        );
        assert_eq!(store.get("b/big.yaml", 1000).await.unwrap().len(), 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn credentials_and_endpoint_from_a_profile() {
        let Some(server) = S3Server::start_or_skip("profile") else {
            return;
        };
        mlbackup_testkit::tls::install_crypto_provider();
        let home = tempfile::tempdir().unwrap();
        let aws_dir = home.path().join(".aws");
        std::fs::create_dir(&aws_dir).unwrap();
        std::fs::write(
            aws_dir.join("config"),
            format!(
                "[profile team]\nregion = eu-west-1\nendpoint_url = {}\n",
                server.endpoint
            ),
        )
        .unwrap();
        std::fs::write(
            aws_dir.join("credentials"),
            format!(
                "[team]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                server.access_key_id, server.secret_access_key
            ),
        )
        .unwrap();
        let vars = AwsVars {
            profile: Some("team".into()),
            ec2_metadata_disabled: true,
            ..AwsVars::default()
        };
        let settings = aws::resolve(&vars, Some(home.path())).unwrap();
        let Location::S3(location) =
            Location::parse(format!("s3://{}/prod", server.bucket).as_ref()).unwrap()
        else {
            unreachable!()
        };
        let opened = S3Store::open(&location, &settings).unwrap();
        assert_eq!(
            opened.warnings[0].to_string(),
            format!(
                "the S3 endpoint {} (from `endpoint_url` of the profile `team`) is plain \
                 http://: what is sent and read travels without TLS (age-encrypted files stay \
                 encrypted)",
                server.endpoint
            )
        );
        let store = opened.store;
        store
            .put_new("b/manifest.json", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(store.get("b/manifest.json", 10).await.unwrap(), b"{}");

        // The same profile with a wrong secret: the error names the profile's file.
        std::fs::write(
            aws_dir.join("credentials"),
            format!(
                "[team]\naws_access_key_id = {}\naws_secret_access_key = not-the-secret\n",
                server.access_key_id
            ),
        )
        .unwrap();
        let settings = aws::resolve(&vars, Some(home.path())).unwrap();
        let store = S3Store::open(&location, &settings).unwrap().store;
        let err = store.check().await.unwrap_err();
        assert!(
            err.hint().unwrap().contains(&format!(
                "the profile `team` in {}",
                aws_dir.join("credentials").display()
            )),
            "{}",
            shown(&err)
        );
        assert!(!shown(&err).contains("not-the-secret"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn https_endpoint_trusted_through_the_ca_bundle() {
        let Some(server) = S3Server::start_or_skip("ca_bundle") else {
            return;
        };
        let front = server.tls_front().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca.pem");
        std::fs::write(&bundle, &front.ca_pem).unwrap();
        let location = format!("s3://{}/prod", server.bucket);
        let https = AwsVars {
            endpoint_url: Some(front.endpoint.clone()),
            ..vars(&server)
        };

        // The bundle trusted: no warning (https), and objects round trip.
        let opened = open_with(
            &location,
            &AwsVars {
                ca_bundle: Some(bundle.clone()),
                ..https.clone()
            },
        );
        assert_eq!(opened.warnings, vec![]);
        opened
            .store
            .put_new("b/manifest.json", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(
            opened.store.get("b/manifest.json", 10).await.unwrap(),
            b"{}"
        );

        // Without it, the test CA is not trusted: the connection is refused, and said.
        let err = open_with(&location, &https)
            .store
            .check()
            .await
            .unwrap_err();
        assert!(matches!(err, S3Error::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("certificate"), "{err}");

        // A bundle that is not PEM is named before any request.
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let Location::S3(parsed) = Location::parse(location.as_ref()).unwrap() else {
            unreachable!()
        };
        let settings = aws::resolve(
            &AwsVars {
                ca_bundle: Some(garbage.clone()),
                ..https.clone()
            },
            Some(dir.path()),
        )
        .unwrap();
        let err = S3Store::open(&parsed, &settings).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the CA bundle {} holds no usable PEM certificate",
                garbage.display()
            )
        );
    }
}
