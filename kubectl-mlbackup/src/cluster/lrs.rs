//! The LRS custom resource: found through API discovery like kubectl does (never a hard-coded
//! version), and listed page by page.

use std::fmt;
use std::str::FromStr;

use kube::api::ListParams;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::transport::send_json;
use super::{Cluster, ClusterError, RequestScope};

/// The API group of the LRS custom resource.
pub const LRS_GROUP: &str = "lrs.datarobot.com";
/// The plural name of the LRS custom resource.
pub const LRS_PLURAL: &str = "lrs";
/// The label that carries the workload type (`deployment`, `spark_app`, ...).
pub const LRS_TYPE_LABEL: &str = "datarobot-lrs-type";

/// A resource type as the cluster serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedResource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ServedResource {
    /// `lrs.lrs.datarobot.com` (`pods` in the core group): the name kubectl and RBAC use.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The collection's path, in one namespace or across all of them.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let group_version = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => {
                format!("{group_version}/namespaces/{ns}/{}", self.plural)
            }
            _ => format!("{group_version}/{}", self.plural),
        }
    }
}

/// `--resource PLURAL.VERSION.GROUP`, as in `kubectl get lrs.v1.lrs.datarobot.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceOverride {
    pub plural: String,
    pub version: String,
    pub group: String,
}

impl FromStr for ResourceOverride {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(plural), Some(version), Some(group))
                if !plural.is_empty() && !version.is_empty() && group.contains('.') =>
            {
                Ok(ResourceOverride {
                    plural: plural.to_string(),
                    version: version.to_string(),
                    group: group.to_string(),
                })
            }
            _ => Err(format!(
                "`{text}` is not PLURAL.VERSION.GROUP (for example lrs.v1.lrs.datarobot.com)"
            )),
        }
    }
}

impl fmt::Display for ResourceOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.plural, self.version, self.group)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroup {
    versions: Vec<GroupVersion>,
    preferred_version: Option<GroupVersion>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupVersion {
    version: String,
}

#[derive(Deserialize)]
struct ApiResourceList {
    resources: Vec<ApiResource>,
}

#[derive(Deserialize)]
struct ApiResource {
    name: String,
    kind: String,
    namespaced: bool,
}

/// Finds the LRS resource (or the `--resource` override) through discovery: the group's
/// preferred version unless the override names one, then the resource's kind and scope. Two
/// small requests: the one group (`/apis/GROUP`, not the list of every group a large cluster
/// serves), then its version's resources.
pub async fn resolve(
    cluster: &Cluster,
    wanted: Option<&ResourceOverride>,
) -> Result<ServedResource, ClusterError> {
    let group = wanted.map_or(LRS_GROUP, |w| w.group.as_str());
    let plural = wanted.map_or(LRS_PLURAL, |w| w.plural.as_str());
    let qualified = format!("{plural}.{group}");
    let not_served = |detail: String| ClusterError::ResourceNotServed {
        resource: qualified.clone(),
        detail,
    };
    let scope = RequestScope {
        verb: "get",
        resource: &qualified,
        namespace: None,
    };
    let served: ApiGroup = match send_json(cluster, get(&format!("/apis/{group}")), &scope).await {
        Ok(served) => served,
        Err(ClusterError::NotFound { .. }) => {
            return Err(not_served(format!("the API group `{group}` is not served")));
        }
        Err(err) => return Err(err),
    };
    let version = match wanted {
        Some(w) => {
            if !served.versions.iter().any(|v| v.version == w.version) {
                return Err(not_served(format!(
                    "the group `{group}` serves versions {}, not `{}`",
                    served
                        .versions
                        .iter()
                        .map(|v| v.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    w.version
                )));
            }
            w.version.clone()
        }
        None => served
            .preferred_version
            .or_else(|| served.versions.into_iter().next())
            .map(|v| v.version)
            .ok_or_else(|| not_served(format!("the group `{group}` serves no version")))?,
    };
    let resources: ApiResourceList =
        send_json(cluster, get(&format!("/apis/{group}/{version}")), &scope).await?;
    let resource = resources
        .resources
        .into_iter()
        .find(|r| r.name == plural)
        .ok_or_else(|| not_served(format!("`{group}/{version}` has no resource `{plural}`")))?;
    Ok(ServedResource {
        group: group.to_string(),
        version,
        kind: resource.kind,
        plural: resource.name,
        namespaced: resource.namespaced,
    })
}

fn get(path: &str) -> http::Request<Vec<u8>> {
    let mut request = http::Request::new(Vec::new());
    *request.uri_mut() = path.parse().expect("discovery paths are valid URIs");
    request
}

/// One page of a list. The items stay the JSON text the server sent until [`Self::objects`]
/// decodes them one at a time: a page in memory is its text, not a tree of values several times
/// larger, and a backup holds at most two pages (the one being written, the next one arriving).
#[derive(Debug)]
pub struct ListPage {
    items: Vec<Box<RawValue>>,
    api_version: String,
    kind: String,
    server_url: String,
    /// Where the next page starts; `None` on the last page.
    pub continue_token: Option<String>,
    /// The server's estimate of the items after this page, when it gives one.
    pub remaining: Option<u64>,
}

impl ListPage {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The items, decoded one by one as they are taken. Each gets the `apiVersion` and `kind`
    /// of the resource, as a `get` of the single object would show them.
    pub fn objects(self) -> impl Iterator<Item = Result<Value, ClusterError>> {
        let api_version = Value::String(self.api_version);
        let kind = Value::String(self.kind);
        let server_url = self.server_url;
        self.items.into_iter().map(move |raw| {
            let mut item: Value =
                serde_json::from_str(raw.get()).map_err(|source| ClusterError::Decode {
                    url: server_url.clone(),
                    source: kube::Error::SerdeError(source),
                })?;
            if let Some(object) = item.as_object_mut() {
                object
                    .entry("apiVersion")
                    .or_insert_with(|| api_version.clone());
                object.entry("kind").or_insert_with(|| kind.clone());
            }
            Ok(item)
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    #[serde(default)]
    items: Vec<Box<RawValue>>,
    #[serde(default)]
    metadata: ListMeta,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
    remaining_item_count: Option<u64>,
}

/// Lists one page. A stale `continue` token gives `ClusterError::Expired`.
pub async fn list_page(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    selector: &str,
    limit: u32,
    continue_token: Option<&str>,
) -> Result<ListPage, ClusterError> {
    let params = ListParams {
        label_selector: (!selector.is_empty()).then(|| selector.to_string()),
        limit: Some(limit),
        continue_token: continue_token.map(str::to_string),
        ..ListParams::default()
    };
    let request = kube::core::Request::new(resource.collection_path(namespace))
        .list(&params)
        .map_err(|err| ClusterError::Client {
            url: cluster.server_url.clone(),
            source: kube::Error::BuildRequest(err),
        })?;
    let qualified = resource.qualified_name();
    let scope = RequestScope {
        verb: "list",
        resource: &qualified,
        namespace,
    };
    let body: ListBody = send_json(cluster, request, &scope).await?;
    Ok(ListPage {
        items: body.items,
        api_version: resource.api_version(),
        kind: resource.kind.clone(),
        server_url: cluster.server_url.clone(),
        continue_token: body.metadata.continue_token.filter(|t| !t.is_empty()),
        remaining: body.metadata.remaining_item_count,
    })
}

/// Objects per page of [`list_all`].
const LIST_ALL_PAGE: u32 = 500;
/// How many times [`list_all`] starts again after its `continue` token went stale.
const LIST_ALL_RESTARTS: u32 = 3;

/// Every object of a list, read page by page. A stale `continue` token (410) starts the list
/// again, so the answer is always one consistent snapshot.
pub async fn list_all(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    selector: &str,
) -> Result<Vec<Value>, ClusterError> {
    let mut restarts = 0;
    'list: loop {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        let mut followed = std::collections::HashSet::new();
        loop {
            let page = match list_page(
                cluster,
                resource,
                namespace,
                selector,
                LIST_ALL_PAGE,
                token.as_deref(),
            )
            .await
            {
                Ok(page) => page,
                Err(ClusterError::Expired { message }) if restarts < LIST_ALL_RESTARTS => {
                    restarts += 1;
                    log::info!("the list expired ({message}); starting it again");
                    continue 'list;
                }
                Err(err) => return Err(err),
            };
            let next = page.continue_token.clone();
            for object in page.objects() {
                items.push(object?);
            }
            match next {
                Some(next) => {
                    if !followed.insert(next.clone()) {
                        return Err(ClusterError::ListLoop {
                            resource: resource.qualified_name(),
                        });
                    }
                    token = Some(next);
                }
                None => return Ok(items),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_override_reads_plural_version_group() {
        let parsed: ResourceOverride = "lrs.v1beta1.lrs.datarobot.com".parse().unwrap();
        assert_eq!(parsed.plural, "lrs");
        assert_eq!(parsed.version, "v1beta1");
        assert_eq!(parsed.group, "lrs.datarobot.com");
        assert_eq!(parsed.to_string(), "lrs.v1beta1.lrs.datarobot.com");
        assert!("lrs".parse::<ResourceOverride>().is_err());
        assert!("lrs.v1".parse::<ResourceOverride>().is_err());
    }

    #[test]
    fn collection_paths_follow_the_scope() {
        let lrs = ServedResource {
            group: LRS_GROUP.into(),
            version: "v1".into(),
            kind: "LongRunningService".into(),
            plural: LRS_PLURAL.into(),
            namespaced: true,
        };
        assert_eq!(lrs.collection_path(None), "/apis/lrs.datarobot.com/v1/lrs");
        assert_eq!(
            lrs.collection_path(Some("dr")),
            "/apis/lrs.datarobot.com/v1/namespaces/dr/lrs"
        );
        assert_eq!(lrs.qualified_name(), "lrs.lrs.datarobot.com");
    }
}
