//! Listing any resource type the cluster serves (the LRS, the app's workloads, pods): one page
//! at a time with a label selector, or every page into one consistent snapshot.

use kube::api::ListParams;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::transport::send_json;
use super::{Cluster, ClusterError, RequestScope};

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

/// One page of a list. The items stay the JSON text the server sent until [`Self::objects`]
/// decodes them one at a time: a page in memory is its text, not a tree of values several times
/// larger, and a backup holds at most two pages (the one being written, the next one arriving).
#[derive(Debug)]
pub struct Page {
    items: Vec<Box<RawValue>>,
    api_version: String,
    kind: String,
    server_url: String,
    /// Where the next page starts; `None` on the last page.
    pub continue_token: Option<String>,
    /// The server's estimate of the items after this page, when it gives one.
    pub remaining: Option<u64>,
}

impl Page {
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
pub async fn page(
    cluster: &Cluster,
    resource: &ServedResource,
    namespace: Option<&str>,
    selector: &str,
    limit: u32,
    continue_token: Option<&str>,
) -> Result<Page, ClusterError> {
    let params = ListParams {
        label_selector: (!selector.is_empty()).then(|| selector.to_string()),
        limit: Some(limit),
        continue_token: continue_token.map(str::to_string),
        ..ListParams::default()
    };
    let request = kube::core::Request::new(resource.collection_path(namespace))
        .list(&params)
        .map_err(|err| cluster.build_error(err))?;
    let qualified = resource.qualified_name();
    let scope = RequestScope {
        verb: "list",
        resource: &qualified,
        namespace,
    };
    let body: ListBody = send_json(cluster, request, &scope).await?;
    Ok(Page {
        items: body.items,
        api_version: resource.api_version(),
        kind: resource.kind.clone(),
        server_url: cluster.server_url.clone(),
        continue_token: body.metadata.continue_token.filter(|t| !t.is_empty()),
        remaining: body.metadata.remaining_item_count,
    })
}

/// Objects per page of [`all`].
const ALL_PAGE: u32 = 500;
/// How many times [`all`] starts again after its `continue` token went stale.
const ALL_RESTARTS: u32 = 3;

/// Every object of a list, read page by page. A stale `continue` token (410) starts the list
/// again, so the answer is always one consistent snapshot.
pub async fn all(
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
            let page = match page(
                cluster,
                resource,
                namespace,
                selector,
                ALL_PAGE,
                token.as_deref(),
            )
            .await
            {
                Ok(page) => page,
                Err(ClusterError::Expired { message }) if restarts < ALL_RESTARTS => {
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
    use crate::cluster::lrs::{LRS_GROUP, LRS_PLURAL};

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
