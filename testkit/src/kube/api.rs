//! The verbs on objects (get, list, create, update, patch, delete, deletecollection) with the
//! semantics of the real API server's generic registry: strict create, optimistic concurrency,
//! generation, status subresource, finalizers, garbage collection of owned objects, dry run,
//! pagination with continue tokens, managed fields. HTTP framing lives in `routes`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{SecondsFormat, Utc};
use http::StatusCode;
use rand::Rng;
use serde_json::{Map, Value, json};

use super::access::AccessRules;
use super::fields::{self, Operation};
use super::resources::{Catalog, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::status::{ApiError, Cause};
use super::store::{ListSnapshot, ObjectKey, Store, key_of};
use super::strategic;

/// The state of one fake cluster, shared by the HTTP handlers and the seeding API.
pub struct Cluster {
    pub catalog: Catalog,
    pub store: Mutex<Store>,
    pub access: AccessRules,
    pub token: String,
    pub user: String,
    pub max_page_size: Mutex<Option<usize>>,
    pub pods_root: PathBuf,
    /// Run before each exec'd command starts (see [`FakeKube::before_exec`]).
    ///
    /// [`FakeKube::before_exec`]: super::FakeKube::before_exec
    pub before_exec: Mutex<super::exec::BeforeExec>,
    /// Tokens the sandbox's kubelet minted for pods, by token: the service account
    /// (namespace, name) each stands for.
    pub service_account_tokens: Mutex<std::collections::HashMap<String, (String, String)>>,
    /// The local binary each container image stands for (the sandbox's kubelet runs it).
    pub images: Mutex<std::collections::HashMap<String, PathBuf>>,
}

/// Options of every mutating request.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    /// The `fieldManager` parameter, else the client's user agent up to the first `/`.
    pub manager: String,
    /// Server-side apply only: take over fields other managers own.
    pub force: bool,
    /// The `fieldValidation` parameter: what unknown fields of a custom resource do.
    pub field_validation: FieldValidation,
    /// The `Warning` headers of the answer, as the real server's warning recorder collects them.
    pub warnings: Warnings,
}

/// `fieldValidation`: Warn when not given (the default since 1.23, for every verb).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Warnings a request collects for its answer (shared with the handler that answers).
#[derive(Clone, Debug, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Adds a warning unless it is there already (the recorder keeps each text once).
    pub fn add(&self, text: String) {
        let mut list = self.0.lock().unwrap();
        if !list.contains(&text) {
            list.push(text);
        }
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// How the object of a write reached the server, which decides how a strict decoding error is
/// reported: a body decoded as the object (create, update), or a patch applied to the stored one.
#[derive(Clone, Debug)]
enum Decoded {
    /// The apiVersion and kind the body named.
    Body(String, String),
    Patch,
}

impl Decoded {
    fn body(object: &Value) -> Self {
        let field = |key: &str| object[key].as_str().unwrap_or_default().to_string();
        Decoded::Body(field("apiVersion"), field("kind"))
    }
}

/// The stored CustomResourceDefinition of a custom resource type, with the index of the served
/// version: its schema is read from the stored object at every write, so replacing the CRD
/// changes what is validated.
struct Definition {
    crd: Arc<Value>,
    version: usize,
}

impl Definition {
    fn schema(&self) -> &Value {
        &self.crd["spec"]["versions"][self.version]["schema"]["openAPIV3Schema"]
    }
}

/// Options of list, watch and deletecollection.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    Foreground,
    #[default]
    Background,
    Orphan,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// The patch formats of the PATCH verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    StrategicMerge,
    Apply,
}

/// `object` with a JSON, merge or strategic merge patch `body` applied, as the API server's one
/// patcher does it for objects and subresources alike: an undecodable body is a 400, a JSON
/// patch that does not apply a 422. Server-side apply is not a patch of this kind.
pub fn patched(object: &Value, patch_type: PatchType, body: &[u8]) -> Result<Value, ApiError> {
    let mut patched = object.clone();
    match patch_type {
        PatchType::Merge | PatchType::StrategicMerge => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            if patch_type == PatchType::Merge {
                json_patch::merge(&mut patched, &patch);
            } else {
                strategic::apply(&mut patched, &patch);
            }
        }
        PatchType::Json => {
            let patch: json_patch::Patch =
                serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            json_patch::patch(&mut patched, &patch).map_err(|e| {
                let mut error = ApiError::for_code(StatusCode::UNPROCESSABLE_ENTITY, "");
                error.message = e.to_string();
                error
            })?;
        }
        PatchType::Apply => {
            return Err(ApiError::bad_request(
                "server-side apply is not a patch that can be applied here",
            ));
        }
    }
    super::numbers::as_stored(&mut patched);
    Ok(patched)
}

impl PatchType {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// What a write produced: the object and the status code to answer.
pub type Written = (StatusCode, Value);

fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The continue token of the real server: base64 of `{"v","rv","start"}`; `rv: -1` continues at
/// the latest state (handed out with a 410 for a token that went stale).
fn encode_continue(resource_version: i64, last: &ObjectKey) -> String {
    let start = format!("{}/{}\u{0}", last.0, last.1);
    let token = json!({"v": "meta.k8s.io/v1", "rv": resource_version, "start": start});
    URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(i64, ObjectKey), ApiError> {
    let invalid = |why: &str| ApiError::bad_request(format!("continue key is not valid: {why}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| invalid("illegal base64 data"))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("incorrect encoded start key"))?;
    if value["v"] != "meta.k8s.io/v1" {
        return Err(invalid(
            "server does not recognize this encoded key version",
        ));
    }
    let rv = value["rv"]
        .as_i64()
        .ok_or_else(|| invalid("incorrect encoded start resourceVersion"))?;
    let start = value["start"].as_str().unwrap_or_default();
    let (namespace, name) = start
        .trim_end_matches('\u{0}')
        .split_once('/')
        .ok_or_else(|| invalid("incorrect encoded start key"))?;
    Ok((rv, (namespace.to_string(), name.to_string())))
}

/// `validation.IsDNS1123Subdomain` (or `IsDNS1123Label` for namespaces) as field errors, one per
/// rule broken, as `ValidateObjectMeta` reports them. A subdomain's parts have no length limit of
/// their own: 253 characters without a dot are a valid name.
fn name_errors(name: &str, label_only: bool) -> Vec<Cause> {
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    };
    let (max_len, pattern_ok, pattern_message) = if label_only {
        (
            63,
            part_ok(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )
    } else {
        (
            253,
            name.split('.').all(part_ok),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    };
    let mut messages = Vec::new();
    if name.len() > max_len {
        messages.push(format!("must be no more than {max_len} characters"));
    }
    if !pattern_ok {
        messages.push(pattern_message.to_string());
    }
    messages
        .into_iter()
        .map(|message| {
            Cause::new(
                "FieldValueInvalid",
                format!("Invalid value: \"{name}\": {message}"),
                "metadata.name",
            )
        })
        .collect()
}

/// `names.SimpleNameGenerator`: five characters from an alphabet without vowels.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("just made an object")
}

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object["metadata"][field].as_str().unwrap_or_default()
}

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

/// The object without what the server manages in metadata, to tell a no-op write.
fn without_volatile_metadata(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(metadata) = copy["metadata"].as_object_mut() {
        metadata.remove("resourceVersion");
        metadata.remove("managedFields");
    }
    copy
}

/// The part of an object whose change bumps `metadata.generation`.
fn generation_relevant(object: &Value, resource: &ResourceType) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        if resource.status_subresource {
            map.remove("status");
        }
    }
    copy
}

fn parse_body(resource: &ResourceType, body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    let parsed: Result<Value, String> = if yaml {
        serde_yaml::from_slice(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    let value = parsed.map_err(|e| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e}",
            resource.kind
        ))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {})",
            resource.kind
        )));
    }
    let mut value = value;
    super::numbers::as_stored(&mut value);
    Ok(value)
}

impl Cluster {
    /// Whether `identity` may do what `attrs` say: the admin unless a deny rule says no; a
    /// service account as its ClusterRoleBindings say.
    pub fn allows(
        &self,
        identity: &super::access::Identity,
        attrs: &super::access::AccessAttributes,
    ) -> bool {
        match identity {
            super::access::Identity::Admin => self.access.allows(attrs),
            super::access::Identity::ServiceAccount { namespace, name } => {
                let store = self.lock();
                let collect = |plural: &str| -> Vec<Arc<Value>> {
                    store.objects(plural).map(|(_, o)| o.clone()).collect()
                };
                super::access::rbac_allows(
                    &collect("clusterrolebindings"),
                    &collect("clusterroles"),
                    namespace,
                    name,
                    attrs,
                )
            }
        }
    }

    /// The identity a bearer token stands for, if any.
    pub fn identity(&self, token: &str) -> Option<super::access::Identity> {
        if token == self.token {
            return Some(super::access::Identity::Admin);
        }
        let tokens = self.service_account_tokens.lock().unwrap();
        let (namespace, name) = tokens.get(token)?;
        Some(super::access::Identity::ServiceAccount {
            namespace: namespace.clone(),
            name: name.clone(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap()
    }

    /// The page size the server uses for a requested `limit`.
    fn page_size(&self, requested: Option<usize>) -> Option<usize> {
        let cap = *self.max_page_size.lock().unwrap();
        match (requested.filter(|n| *n > 0), cap) {
            (Some(n), Some(cap)) => Some(n.min(cap)),
            (Some(n), None) => Some(n),
            (None, cap) => cap,
        }
    }

    fn namespace_state(store: &Store, namespace: &str) -> Option<Arc<Value>> {
        store.get("namespaces", &key_of(None, namespace))
    }

    /// NamespaceLifecycle admission for writes that create objects.
    fn admit_create(
        store: &Store,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        let Some(namespace) = namespace.filter(|_| resource.namespaced) else {
            return Ok(());
        };
        let state = Self::namespace_state(store, namespace)
            .ok_or_else(|| ApiError::namespace_not_found(namespace))?;
        if is_deleting(&state) {
            return Err(ApiError::namespace_terminating(resource, name, namespace));
        }
        Ok(())
    }

    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.lock()
            .get(&resource.plural, &key_of(namespace, name))
            .map(|o| (*o).clone())
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    /// A list answer, paginated like etcd: stable key order, continue tokens reading the
    /// snapshot of the first page, 410 Expired once that snapshot is compacted.
    pub fn list(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<Value, ApiError> {
        let page_size = self.page_size(options.limit);
        let mut store = self.lock();
        let (objects, resource_version, after): (Arc<ListSnapshot>, u64, Option<ObjectKey>) =
            match &options.continue_token {
                Some(token) => {
                    let (rv, last) = decode_continue(token)?;
                    let at = u64::try_from(rv).ok();
                    match at.and_then(|rv| store.snapshot_at(&resource.plural, rv)) {
                        Some(snapshot) => (snapshot, rv as u64, Some(last)),
                        None if rv == -1 => {
                            let rv = store.resource_version();
                            (store.snapshot(&resource.plural), rv, Some(last))
                        }
                        None => {
                            return Err(ApiError::expired(
                                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                                Some(encode_continue(-1, &last)),
                            ));
                        }
                    }
                }
                None => {
                    let rv = store.resource_version();
                    let objects = if page_size.is_some() {
                        store.snapshot(&resource.plural)
                    } else {
                        Arc::new(store.list_now(&resource.plural))
                    };
                    (objects, rv, None)
                }
            };
        drop(store);

        let unfiltered = options.labels == LabelSelector::default()
            && options.fields == FieldSelector::default();
        // Like etcd, seek to where the page starts instead of reading the list from its start:
        // the keys of one namespace are contiguous, and the page starts after the continue key.
        let (first, end) = match namespace {
            Some(ns) => (
                objects.partition_point(|(key, _)| key.0.as_str() < ns),
                objects.partition_point(|(key, _)| key.0.as_str() <= ns),
            ),
            None => (0, objects.len()),
        };
        let start = after
            .as_ref()
            .map_or(first, |last| {
                objects.partition_point(|(key, _)| key <= last)
            })
            .clamp(first, end);
        let candidates = &objects[start..end];
        let mut matching = candidates.iter().enumerate().filter(|(_, (_, object))| {
            options.labels.matches(object) && options.fields.matches(object)
        });
        let mut items = Vec::new();
        let mut last_key = None;
        for (index, (key, object)) in matching.by_ref() {
            if page_size.is_some_and(|size| items.len() == size) {
                // One more matched: this page is not the last. Unfiltered, every key after the
                // page counts (etcd's count of the rest of the range); filtered, the real server
                // gives no count.
                let remaining = candidates.len() - index;
                return Ok(self.list_body(
                    resource,
                    items,
                    resource_version,
                    last_key.map(|k: &ObjectKey| {
                        (
                            encode_continue(resource_version as i64, k),
                            unfiltered.then_some(remaining),
                        )
                    }),
                ));
            }
            items.push(self.list_item(resource, object));
            last_key = Some(key);
        }
        Ok(self.list_body(resource, items, resource_version, None))
    }

    /// List items: custom resources keep apiVersion/kind, built-ins drop them (as the real
    /// server's typed lists do).
    fn list_item(&self, resource: &ResourceType, object: &Value) -> Value {
        let mut item = object.clone();
        if !resource.custom
            && let Some(map) = item.as_object_mut()
        {
            map.remove("apiVersion");
            map.remove("kind");
        }
        item
    }

    fn list_body(
        &self,
        resource: &ResourceType,
        items: Vec<Value>,
        resource_version: u64,
        more: Option<(String, Option<usize>)>,
    ) -> Value {
        let mut metadata = Map::new();
        metadata.insert(
            "resourceVersion".into(),
            json!(resource_version.to_string()),
        );
        if let Some((token, remaining)) = more {
            metadata.insert("continue".into(), json!(token));
            if let Some(remaining) = remaining {
                metadata.insert("remainingItemCount".into(), json!(remaining));
            }
        }
        json!({
            "apiVersion": resource.api_version(),
            "kind": resource.list_kind(),
            "metadata": metadata,
            "items": items,
        })
    }

    /// The stored definition of a custom resource type (`PLURAL.GROUP`), when it has a schema
    /// for the served version.
    fn definition(store: &Store, resource: &ResourceType) -> Option<Definition> {
        if !resource.custom {
            return None;
        }
        let crd = store.get(
            "customresourcedefinitions",
            &key_of(None, &resource.qualified_resource()),
        )?;
        let version = crd["spec"]["versions"]
            .as_array()?
            .iter()
            .position(|v| v["name"] == resource.version.as_str())?;
        let definition = Definition { crd, version };
        definition.schema().is_object().then_some(definition)
    }

    /// What the decoder of a custom resource does with a new object: prunes the fields its
    /// schema does not know and, as `fieldValidation` says, refuses them (400), warns of them
    /// or drops them silently.
    fn decode_custom(
        store: &Store,
        resource: &ResourceType,
        object: &mut Value,
        options: &WriteOptions,
        decoded: Decoded,
    ) -> Result<(), ApiError> {
        let Some(definition) = Self::definition(store, resource) else {
            return Ok(());
        };
        let unknown = super::schema::prune(object, definition.schema());
        if unknown.is_empty() {
            return Ok(());
        }
        let errors: Vec<String> = unknown
            .iter()
            .map(|path| format!("unknown field {}", super::schema::go_quote(path)))
            .collect();
        match options.field_validation {
            FieldValidation::Ignore => Ok(()),
            FieldValidation::Warn => {
                errors.into_iter().for_each(|e| options.warnings.add(e));
                Ok(())
            }
            FieldValidation::Strict => {
                let strict = format!("strict decoding error: {}", errors.join(", "));
                Err(ApiError::bad_request(match decoded {
                    Decoded::Patch => strict,
                    Decoded::Body(group_version, kind) => {
                        // The decoder defaults what the body leaves out from the URL.
                        let version = match group_version.rsplit('/').next() {
                            Some(version) if !version.is_empty() => version,
                            _ => resource.version.as_str(),
                        };
                        let kind = if kind.is_empty() {
                            &resource.kind
                        } else {
                            &kind
                        };
                        format!(
                            "{kind} in version {} cannot be handled as a {}: {strict}",
                            super::schema::go_quote(version),
                            resource.kind
                        )
                    }
                }))
            }
        }
    }

    /// The strategy's validation of a custom resource against its schema (422 Invalid, every
    /// field error a cause), ratcheting against `old` on an update. `status` is left out of a
    /// create of a type with a status subresource: the server drops it.
    fn validate_custom(
        store: &Store,
        resource: &ResourceType,
        name: &str,
        object: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let causes = Self::custom_causes(store, resource, object, old);
        if causes.is_empty() {
            return Ok(());
        }
        Err(ApiError::invalid(
            &resource.group,
            &resource.kind,
            name,
            causes,
        ))
    }

    /// The field errors of [`Cluster::validate_custom`].
    fn custom_causes(
        store: &Store,
        resource: &ResourceType,
        object: &Value,
        old: Option<&Value>,
    ) -> Vec<Cause> {
        let Some(definition) = Self::definition(store, resource) else {
            return Vec::new();
        };
        let skip = (resource.status_subresource && old.is_none()).then_some("status");
        super::schema::validate(object, definition.schema(), skip, old)
    }

    /// Server-side apply's typed conversion of the applied configuration, before any merge: a
    /// field the schema does not declare (or a scalar of the wrong kind) fails it, whatever
    /// `fieldValidation` says, with the 500 the real server answers (it does not classify it).
    fn convert_applied(
        store: &Store,
        resource: &ResourceType,
        config: &Value,
    ) -> Result<(), ApiError> {
        let Some(definition) = Self::definition(store, resource) else {
            return Ok(());
        };
        let Some(errors) = super::schema::typed_conversion_errors(config, definition.schema())
        else {
            return Ok(());
        };
        let api_version = config["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Err(ApiError::unclassified(format!(
            "failed to create typed patch object ({}/{}; {group}/{version}, Kind={}): {errors}",
            text(config, "namespace"),
            text(config, "name"),
            config["kind"].as_str().unwrap_or_default(),
        )))
    }

    /// POST: the object as created (201), or as it would be (dry run).
    pub fn create(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        check_type(resource, &object)?;
        ensure_namespace_matches(resource, namespace, &mut object)?;
        let mut store = self.lock();
        let decoded = Decoded::body(&object);
        Self::decode_custom(&store, resource, &mut object, options, decoded)?;
        let name = text(&object, "name").to_string();
        Self::admit_create(&store, resource, namespace, &name)?;
        let name = self.validate_new_name(resource, &mut object, |object| {
            Self::custom_causes(&store, resource, object, None)
        })?;
        let key = key_of(namespace.filter(|_| resource.namespaced), &name);
        if !options.dry_run && !text(&object, "resourceVersion").is_empty() {
            return Err(ApiError::unclassified(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if store.get(&resource.plural, &key).is_some() {
            return Err(ApiError::already_exists(resource, &name));
        }
        validate_replicas(resource, &name, &object)?;
        prepare_for_create(resource, &mut object);
        fields::record_update(
            None,
            &mut object,
            &options.manager,
            &resource.api_version(),
            resource.status_subresource,
        );
        if options.dry_run {
            return Ok((StatusCode::CREATED, object));
        }
        let stored = store.put(&resource.plural, key, object);
        Ok((StatusCode::CREATED, (*stored).clone()))
    }

    /// Fills in `metadata.name` from `generateName` and validates it, with the errors `more`
    /// finds in the rest of the object (a custom resource's schema) in the same answer, as the
    /// strategy's validation reports them.
    fn validate_new_name(
        &self,
        resource: &ResourceType,
        object: &mut Value,
        more: impl FnOnce(&Value) -> Vec<Cause>,
    ) -> Result<String, ApiError> {
        let generate = text(object, "generateName").to_string();
        if text(object, "name").is_empty() && !generate.is_empty() {
            metadata_mut(object).insert("name".into(), json!(generate_name(&generate)));
        }
        let name = text(object, "name").to_string();
        let mut causes = if name.is_empty() {
            vec![Cause::new(
                "FieldValueRequired",
                "Required value: name or generateName is required",
                "metadata.name",
            )]
        } else {
            name_errors(&name, resource.plural == "namespaces")
        };
        causes.extend(more(object));
        if causes.is_empty() {
            Ok(name)
        } else {
            Err(ApiError::invalid(
                &resource.group,
                &resource.kind,
                &name,
                causes,
            ))
        }
    }

    /// PUT.
    pub fn update(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        check_type(resource, &object)?;
        ensure_namespace_matches(resource, namespace, &mut object)?;
        let body_name = text(&object, "name");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut store = self.lock();
        let decoded = Decoded::body(&object);
        Self::decode_custom(&store, resource, &mut object, options, decoded)?;
        let key = key_of(namespace.filter(|_| resource.namespaced), name);
        let old = store
            .get(&resource.plural, &key)
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        if text(&object, "resourceVersion").is_empty() && resource.custom {
            return Err(ApiError::invalid(
                &resource.group,
                &resource.plural,
                name,
                vec![Cause::new(
                    "FieldValueInvalid",
                    "Invalid value: 0x0: must be specified for an update",
                    "metadata.resourceVersion",
                )],
            ));
        }
        self.commit_update(
            &mut store,
            resource,
            key,
            &old,
            object,
            options,
            Operation::Update,
        )
    }

    /// PATCH in any of the four formats; an apply patch creates a missing object.
    pub fn patch(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let mut store = self.lock();
        let key = key_of(namespace.filter(|_| resource.namespaced), name);
        let old = store.get(&resource.plural, &key);
        if patch_type == PatchType::Apply {
            let config = parse_body(resource, body, true)?;
            check_type(resource, &config)?;
            if config["apiVersion"].is_null() || config["kind"].is_null() {
                return Err(ApiError::bad_request(
                    "error decoding patch: Object 'Kind' is missing in the applied configuration",
                ));
            }
            let config_name = text(&config, "name");
            if !config_name.is_empty() && config_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({config_name}) does not match the name on the URL ({name})"
                )));
            }
            Self::convert_applied(&store, resource, &config)?;
            let mut config = config;
            ensure_namespace_matches(resource, namespace, &mut config)?;
            let skeleton = json!({
                "apiVersion": resource.api_version(),
                "kind": resource.kind,
                "metadata": {"name": name},
            });
            let merged = fields::apply(
                old.as_deref(),
                skeleton,
                &config,
                &options.manager,
                &resource.api_version(),
                options.force,
                resource.status_subresource,
            )?;
            return match old {
                Some(old) => self.commit_update(
                    &mut store,
                    resource,
                    key,
                    &old,
                    merged,
                    options,
                    Operation::Apply,
                ),
                None => {
                    let mut merged = merged;
                    if let (Some(ns), true) = (namespace, resource.namespaced) {
                        metadata_mut(&mut merged).insert("namespace".into(), json!(ns));
                    }
                    Self::admit_create(&store, resource, namespace, name)?;
                    self.validate_new_name(resource, &mut merged, |object| {
                        Self::custom_causes(&store, resource, object, None)
                    })?;
                    let rv = text(&merged, "resourceVersion").to_string();
                    if !rv.is_empty() {
                        return Err(ApiError::not_found(resource, name));
                    }
                    prepare_for_create(resource, &mut merged);
                    if options.dry_run {
                        return Ok((StatusCode::CREATED, merged));
                    }
                    let stored = store.put(&resource.plural, key, merged);
                    Ok((StatusCode::CREATED, (*stored).clone()))
                }
            };
        }
        let old = old.ok_or_else(|| ApiError::not_found(resource, name))?;
        let mut patched = patched(&old, patch_type, body)?;
        Self::decode_custom(&store, resource, &mut patched, options, Decoded::Patch)?;
        // A patch cannot rename or move the object.
        let metadata = metadata_mut(&mut patched);
        metadata.insert("name".into(), json!(name));
        if let Some(ns) = namespace.filter(|_| resource.namespaced) {
            metadata.insert("namespace".into(), json!(ns));
        }
        self.commit_update(
            &mut store,
            resource,
            key,
            &old,
            patched,
            options,
            Operation::Update,
        )
    }

    /// The update path every write of an existing object shares.
    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &self,
        store: &mut Store,
        resource: &ResourceType,
        key: ObjectKey,
        old: &Value,
        mut new: Value,
        options: &WriteOptions,
        operation: Operation,
    ) -> Result<Written, ApiError> {
        let name = key.1.clone();
        let sent_version = text(&new, "resourceVersion").to_string();
        if !sent_version.is_empty() && sent_version != text(old, "resourceVersion") {
            return Err(ApiError::stale_resource_version(resource, &name));
        }
        let sent_uid = text(&new, "uid");
        if !sent_uid.is_empty() && sent_uid != text(old, "uid") {
            return Err(ApiError::conflict(
                resource,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {sent_uid}, UID in object meta: {}",
                    text(old, "uid")
                ),
            ));
        }
        new["apiVersion"] = json!(resource.api_version());
        new["kind"] = json!(resource.kind);
        validate_replicas(resource, &name, &new)?;
        let metadata = metadata_mut(&mut new);
        for system in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "generation",
        ] {
            match old["metadata"].get(system) {
                Some(value) => metadata.insert(system.into(), value.clone()),
                None => metadata.remove(system),
            };
        }
        if resource.status_subresource {
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        if is_deleting(old) {
            let before = finalizers(old);
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &resource.group,
                    &resource.kind,
                    &name,
                    vec![Cause::new(
                        "FieldValueForbidden",
                        format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                        "metadata.finalizers",
                    )],
                ));
            }
        }
        // The whole object, status included, as the real strategy validates it; what did not
        // change from the stored object is not validated again (ratcheting).
        Self::validate_custom(store, resource, &name, &new, Some(old))?;
        if resource.tracks_generation
            && generation_relevant(&new, resource) != generation_relevant(old, resource)
        {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            metadata_mut(&mut new).insert("generation".into(), json!(generation));
        }
        if operation == Operation::Update {
            fields::record_update(
                Some(old),
                &mut new,
                &options.manager,
                &resource.api_version(),
                resource.status_subresource,
            );
        }
        if without_volatile_metadata(&new) == without_volatile_metadata(old) {
            // Unchanged: the real server does not write (no new resourceVersion).
            return Ok((StatusCode::OK, old.clone()));
        }
        metadata_mut(&mut new).insert(
            "resourceVersion".into(),
            old["metadata"]["resourceVersion"].clone(),
        );
        if options.dry_run {
            return Ok((StatusCode::OK, new));
        }
        if is_deleting(&new) && finalizers(&new).is_empty() {
            store.remove(&resource.plural, &key);
            self.after_removal(store, resource, &new);
            return Ok((StatusCode::OK, new));
        }
        let stored = store.put(&resource.plural, key, new);
        Ok((StatusCode::OK, (*stored).clone()))
    }

    /// A write to the `status` subresource: only `status` of what `make` returns is kept.
    pub fn update_status(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        make: impl FnOnce(&Value) -> Result<Value, ApiError>,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        self.write_status(resource, namespace, name, make, options, false)
    }

    /// PUT of the `status` subresource: `body` is decoded as the object (a strict decoding
    /// error names its kind and version).
    pub fn replace_status(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        self.write_status(resource, namespace, name, |_| Ok(body), options, true)
    }

    fn write_status(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        make: impl FnOnce(&Value) -> Result<Value, ApiError>,
        options: &WriteOptions,
        decoded_as_body: bool,
    ) -> Result<Written, ApiError> {
        let mut store = self.lock();
        let key = key_of(namespace.filter(|_| resource.namespaced), name);
        let old = store
            .get(&resource.plural, &key)
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        let proposed = make(&old)?;
        let sent_version = text(&proposed, "resourceVersion");
        if !sent_version.is_empty() && sent_version != text(&old, "resourceVersion") {
            return Err(ApiError::stale_resource_version(resource, name));
        }
        let mut new = (*old).clone();
        match proposed.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
        if resource.custom {
            let decoded = if decoded_as_body {
                Decoded::body(&proposed)
            } else {
                Decoded::Patch
            };
            Self::decode_custom(&store, resource, &mut new, options, decoded)?;
            Self::validate_custom(&store, resource, name, &new, Some(&old))?;
        }
        if new == *old || options.dry_run {
            return Ok((StatusCode::OK, new));
        }
        let stored = store.put(&resource.plural, key, new);
        Ok((StatusCode::OK, (*stored).clone()))
    }

    /// The `scale` subresource of a workload as `autoscaling/v1` `Scale`.
    pub fn get_scale(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        Ok(scale_of(&self.get(resource, namespace, name)?))
    }

    /// A write to the `scale` subresource: `make` turns the current `Scale` into the wanted
    /// one; only its `spec.replicas` reaches the workload, through the update path every write
    /// shares (resourceVersion precondition, generation, managed fields, dry run).
    pub fn update_scale(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        make: impl FnOnce(&Value) -> Result<Value, ApiError>,
        options: &WriteOptions,
    ) -> Result<Written, ApiError> {
        let mut store = self.lock();
        let key = key_of(namespace.filter(|_| resource.namespaced), name);
        let old = store
            .get(&resource.plural, &key)
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        let proposed = make(&scale_of(&old))?;
        check_type_of(&proposed, "autoscaling/v1", "Scale")?;
        let body_name = text(&proposed, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let replicas = proposed["spec"]["replicas"].clone();
        if !replicas
            .as_i64()
            .is_some_and(|n| n >= 0 && n <= i64::from(i32::MAX))
        {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                vec![Cause::new(
                    "FieldValueInvalid",
                    format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                    "spec.replicas",
                )],
            ));
        }
        let mut new = (*old).clone();
        new["spec"]["replicas"] = replicas;
        // The Scale's resourceVersion is the workload's: a stale one is a conflict.
        metadata_mut(&mut new).insert(
            "resourceVersion".into(),
            json!(text(&proposed, "resourceVersion")),
        );
        let (code, written) = self.commit_update(
            &mut store,
            resource,
            key,
            &old,
            new,
            options,
            Operation::Update,
        )?;
        Ok((code, scale_of(&written)))
    }

    /// DELETE of one object: gone at once, or marked for deletion while finalizers remain.
    pub fn delete(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Written, ApiError> {
        let mut store = self.lock();
        self.delete_locked(&mut store, resource, namespace, name, options)
    }

    fn delete_locked(
        &self,
        store: &mut Store,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Written, ApiError> {
        let key = key_of(namespace.filter(|_| resource.namespaced), name);
        let old = store
            .get(&resource.plural, &key)
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        let uid = text(&old, "uid").to_string();
        if let Some(expected) = &options.precondition_uid
            && *expected != uid
        {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {expected}, UID in object meta: {uid}"
                ),
            ));
        }
        if let Some(expected) = &options.precondition_resource_version {
            let actual = text(&old, "resourceVersion");
            if expected != actual {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        // Namespaces always go through Terminating while the namespace controller empties them.
        let must_wait = !finalizers(&old).is_empty()
            || (resource.plural == "namespaces"
                && self.namespace_has_finalizing_content(store, name));
        if must_wait {
            let mut marked = (*old).clone();
            if !is_deleting(&marked) {
                let metadata = metadata_mut(&mut marked);
                metadata.insert("deletionTimestamp".into(), json!(timestamp()));
                metadata.insert("deletionGracePeriodSeconds".into(), json!(0));
                if resource.tracks_generation {
                    let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                    metadata.insert("generation".into(), json!(generation));
                }
                if resource.plural == "namespaces" {
                    marked["status"]["phase"] = json!("Terminating");
                }
            }
            if options.dry_run {
                return Ok((StatusCode::OK, marked));
            }
            let marked = store.put(&resource.plural, key, marked);
            if resource.plural == "namespaces" {
                self.empty_namespace(store, name);
            }
            return Ok((StatusCode::OK, (*marked).clone()));
        }
        if !options.dry_run {
            store.remove(&resource.plural, &key);
            if resource.plural == "namespaces" {
                self.empty_namespace(store, name);
            }
            if options.propagation != Propagation::Orphan {
                self.collect_dependents(store, &uid);
            }
            self.after_removal(store, resource, &old);
        }
        Ok((StatusCode::OK, self.deleted_answer(resource, &old)))
    }

    /// Pods, namespaces and custom resources answer with the deleted object; other built-ins
    /// with a Success status naming it.
    fn deleted_answer(&self, resource: &ResourceType, old: &Value) -> Value {
        if resource.custom || resource.plural == "pods" || resource.plural == "namespaces" {
            return old.clone();
        }
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": text(old, "name"),
                "group": resource.group,
                "kind": resource.plural,
                "uid": text(old, "uid"),
            },
        })
    }

    fn namespace_has_finalizing_content(&self, store: &Store, namespace: &str) -> bool {
        self.catalog
            .types()
            .iter()
            .filter(|t| t.namespaced)
            .any(|t| {
                store
                    .objects(&t.plural)
                    .any(|(key, object)| key.0 == namespace && !finalizers(object).is_empty())
            })
    }

    /// The namespace controller: deletes everything in the namespace (finalizers still hold
    /// objects back) and removes the namespace once it is empty.
    fn empty_namespace(&self, store: &mut Store, namespace: &str) {
        for resource in self.catalog.types().iter().filter(|t| t.namespaced) {
            let names: Vec<String> = store
                .objects(&resource.plural)
                .filter(|(key, _)| key.0 == namespace)
                .map(|(key, _)| key.1.clone())
                .collect();
            for name in names {
                let _ = self.delete_locked(
                    store,
                    resource,
                    Some(namespace),
                    &name,
                    &DeleteOptions::default(),
                );
            }
        }
        self.finish_namespace(store, namespace);
    }

    fn finish_namespace(&self, store: &mut Store, namespace: &str) {
        let Some(state) = Self::namespace_state(store, namespace) else {
            return;
        };
        let still_holds_objects = self
            .catalog
            .types()
            .iter()
            .filter(|t| t.namespaced)
            .any(|t| store.objects(&t.plural).any(|(key, _)| key.0 == namespace));
        if is_deleting(&state) && !still_holds_objects {
            store.remove("namespaces", &key_of(None, namespace));
        }
    }

    /// After an object is gone: a terminating namespace may now be empty.
    fn after_removal(&self, store: &mut Store, resource: &ResourceType, removed: &Value) {
        if resource.namespaced {
            self.finish_namespace(store, text(removed, "namespace"));
        }
    }

    /// The garbage collector, background cascading: deletes what the removed object owned.
    fn collect_dependents(&self, store: &mut Store, owner_uid: &str) {
        if owner_uid.is_empty() {
            return;
        }
        for resource in self.catalog.types() {
            let owned: Vec<ObjectKey> = store
                .objects(&resource.plural)
                .filter(|(_, object)| {
                    object["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner_uid))
                })
                .map(|(key, _)| key.clone())
                .collect();
            for key in owned {
                let namespace = (!key.0.is_empty()).then_some(key.0.as_str());
                let _ = self.delete_locked(
                    store,
                    resource,
                    namespace,
                    &key.1,
                    &DeleteOptions::default(),
                );
            }
        }
    }

    /// DELETE on a collection: the list of what was deleted (or marked for deletion).
    pub fn delete_collection(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        list: &ListOptions,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.lock();
        let targets: Vec<ObjectKey> = store
            .objects(&resource.plural)
            .filter(|(key, _)| namespace.is_none_or(|ns| key.0 == ns))
            .filter(|(_, object)| list.labels.matches(object) && list.fields.matches(object))
            .map(|(key, _)| key.clone())
            .collect();
        let mut items = Vec::new();
        for (ns, name) in targets {
            let ns = (!ns.is_empty()).then_some(ns.as_str());
            let old = store.get(&resource.plural, &key_of(ns, &name));
            let (_, answer) = self.delete_locked(&mut store, resource, ns, &name, options)?;
            let deleted = if answer["kind"] == "Status" {
                old.map(|o| (*o).clone()).unwrap_or(answer)
            } else {
                answer
            };
            items.push(self.list_item(resource, &deleted));
        }
        let rv = store.resource_version();
        Ok(self.list_body(resource, items, rv, None))
    }

    /// Seeds an object as stored (status kept), creating its namespace if needed.
    pub fn insert(&self, object: Value) -> anyhow::Result<Value> {
        self.seed(object, false)
    }

    /// [`Cluster::insert`], replacing the object of the same name.
    pub fn replace(&self, object: Value) -> anyhow::Result<Value> {
        self.seed(object, true)
    }

    fn seed(&self, object: Value, replace: bool) -> anyhow::Result<Value> {
        let resource = self
            .catalog
            .by_api_version_kind(
                object["apiVersion"].as_str().unwrap_or_default(),
                object["kind"].as_str().unwrap_or_default(),
            )
            .ok_or_else(|| anyhow::anyhow!("no served resource type for this apiVersion and kind"))?
            .clone();
        let namespace = text(&object, "namespace").to_string();
        if resource.namespaced && namespace.is_empty() {
            anyhow::bail!("a {} needs metadata.namespace", resource.kind);
        }
        if resource.namespaced {
            self.create_namespace(&namespace);
        }
        anyhow::ensure!(
            !text(&object, "name").is_empty(),
            "metadata.name is required"
        );
        let mut store = self.lock();
        if replace {
            let key = key_of(
                resource.namespaced.then_some(namespace.as_str()),
                text(&object, "name"),
            );
            store.remove(&resource.plural, &key);
        }
        Self::insert_locked(&mut store, &resource, object)
    }

    /// [`Cluster::insert`] under a lock already held, into an existing namespace.
    pub fn insert_locked(
        store: &mut Store,
        resource: &ResourceType,
        mut object: Value,
    ) -> anyhow::Result<Value> {
        let namespace = text(&object, "namespace").to_string();
        let name = text(&object, "name").to_string();
        let key = key_of(resource.namespaced.then_some(namespace.as_str()), &name);
        if store.get(&resource.plural, &key).is_some() {
            anyhow::bail!(ApiError::already_exists(resource, &name));
        }
        let status = object.get("status").cloned();
        let created = object["metadata"].get("creationTimestamp").cloned();
        prepare_for_create(resource, &mut object);
        if let Some(status) = status {
            object["status"] = status;
        }
        if let Some(created) = created.filter(|c| c.is_string()) {
            metadata_mut(&mut object).insert("creationTimestamp".into(), created);
        }
        Ok((*store.put(&resource.plural, key, object)).clone())
    }

    /// Creates a namespace unless it exists.
    pub fn create_namespace(&self, name: &str) {
        let mut store = self.lock();
        let key = key_of(None, name);
        if store.get("namespaces", &key).is_none() {
            let mut namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            prepare_for_create(self.catalog.namespaces(), &mut namespace);
            store.put("namespaces", key, namespace);
        }
    }
}

/// The workloads whose pods the simulated controllers manage.
pub const WORKLOADS: [&str; 2] = ["deployments", "statefulsets"];

/// The types with a validated, defaulted `spec.replicas` (the workloads and the Deployments'
/// ReplicaSets).
const REPLICATED: [&str; 3] = ["deployments", "replicasets", "statefulsets"];

/// A workload's `spec.replicas`: the API server defaults it to 1.
pub fn desired_replicas(workload: &Value) -> i64 {
    workload["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// `autoscaling/v1` `Scale` of a workload, as the registry's scale subresource builds it.
fn scale_of(workload: &Value) -> Value {
    let metadata = &workload["metadata"];
    let mut scale_metadata = json!({"name": metadata["name"], "uid": metadata["uid"],
        "resourceVersion": metadata["resourceVersion"],
        "creationTimestamp": metadata["creationTimestamp"]});
    if let Some(namespace) = metadata["namespace"].as_str() {
        scale_metadata["namespace"] = json!(namespace);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_metadata,
        "spec": {"replicas": desired_replicas(workload)},
        "status": {
            "replicas": workload["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": super::selector::to_string(&workload["spec"]["selector"]),
        },
    })
}

/// Deployments, ReplicaSets and StatefulSets refuse a negative or non-integer `spec.replicas`.
fn validate_replicas(resource: &ResourceType, name: &str, object: &Value) -> Result<(), ApiError> {
    if !REPLICATED.contains(&resource.plural.as_str()) {
        return Ok(());
    }
    match object["spec"].get("replicas") {
        None | Some(Value::Null) => Ok(()),
        Some(replicas)
            if replicas
                .as_i64()
                .is_some_and(|n| (0..=i64::from(i32::MAX)).contains(&n)) =>
        {
            Ok(())
        }
        Some(replicas) => Err(ApiError::invalid(
            &resource.group,
            &resource.kind,
            name,
            vec![Cause::new(
                "FieldValueInvalid",
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                "spec.replicas",
            )],
        )),
    }
}

/// The body's apiVersion/kind, when given, must be the URL's.
fn check_type(resource: &ResourceType, object: &Value) -> Result<(), ApiError> {
    check_type_of(object, &resource.api_version(), &resource.kind)
}

fn check_type_of(
    object: &Value,
    expected_version: &str,
    expected_kind: &str,
) -> Result<(), ApiError> {
    if let Some(api_version) = object["apiVersion"].as_str()
        && api_version != expected_version
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected_version})"
        )));
    }
    if let Some(kind) = object["kind"].as_str()
        && kind != expected_kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({expected_kind})"
        )));
    }
    Ok(())
}

/// `rest.EnsureObjectNamespaceMatchesRequestNamespace`.
fn ensure_namespace_matches(
    resource: &ResourceType,
    namespace: Option<&str>,
    object: &mut Value,
) -> Result<(), ApiError> {
    let requested = namespace
        .filter(|_| resource.namespaced)
        .unwrap_or_default();
    let given = text(object, "namespace").to_string();
    if given == requested {
        return Ok(());
    }
    if given.is_empty() || requested.is_empty() {
        let metadata = metadata_mut(object);
        if requested.is_empty() {
            metadata.remove("namespace");
        } else {
            metadata.insert("namespace".into(), json!(requested));
        }
        return Ok(());
    }
    Err(ApiError::bad_request(
        "the namespace of the provided object does not match the namespace sent on the request",
    ))
}

/// System fields of a new object and the per-type defaults (`PrepareForCreate`).
fn prepare_for_create(resource: &ResourceType, object: &mut Value) {
    object["apiVersion"] = json!(resource.api_version());
    object["kind"] = json!(resource.kind);
    let name = text(object, "name").to_string();
    let metadata = metadata_mut(object);
    metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    metadata.insert("creationTimestamp".into(), json!(timestamp()));
    for cleared in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "generation",
        "selfLink",
    ] {
        metadata.remove(cleared);
    }
    if resource.tracks_generation {
        metadata.insert("generation".into(), json!(1));
    }
    match resource.plural.as_str() {
        "deployments" | "replicasets" | "statefulsets" => {
            if object["spec"]["replicas"].is_null() && object["spec"].is_object() {
                object["spec"]["replicas"] = json!(1);
            }
            object["status"] = json!({});
        }
        "namespaces" => {
            let labels = metadata.entry("labels").or_insert_with(|| json!({}));
            labels["kubernetes.io/metadata.name"] = json!(name);
            object["spec"] = json!({"finalizers": ["kubernetes"]});
            object["status"] = json!({"phase": "Active"});
        }
        "pods" => object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
        "serviceaccounts" | "configmaps" | "clusterroles" | "clusterrolebindings" => {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        "secrets" => prepare_secret(object),
        "jobs" => super::jobs::default_job(object),
        "cronjobs" => super::jobs::default_cron_job(object),
        _ if resource.custom => {
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
        }
        _ => object["status"] = json!({}),
    }
}

/// A Secret as the registry stores it: `stringData` merged into `data` (base64), `type`
/// defaulted to `Opaque`, no status.
fn prepare_secret(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    map.remove("status");
    if let Some(Value::Object(strings)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        for (key, value) in strings {
            let text = value.as_str().unwrap_or_default();
            data[key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
    map.entry("type").or_insert_with(|| json!("Opaque"));
}
