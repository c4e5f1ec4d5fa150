//! The LRS custom resource: found through API discovery like kubectl does (never a hard-coded
//! version). It is listed like any other resource, by `list`.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use super::list::ServedResource;
use super::transport::send_json;
use super::{Cluster, ClusterError, RequestScope};

/// The API group of the LRS custom resource.
pub const LRS_GROUP: &str = "lrs.datarobot.com";
/// The plural name of the LRS custom resource.
pub const LRS_PLURAL: &str = "lrs";

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

/// The group of CustomResourceDefinitions.
pub const CRD_GROUP: &str = "apiextensions.k8s.io";

/// The CustomResourceDefinition that serves `resource` (`apiextensions.k8s.io/v1`, named
/// `PLURAL.GROUP`), as the server holds it: saved with a backup, so that the type its objects
/// need can be checked, or installed, where it is restored. One `get` by name, which the
/// schedule's ClusterRole grants and a user may not have.
pub async fn definition(
    cluster: &Cluster,
    resource: &ServedResource,
) -> Result<serde_json::Value, ClusterError> {
    let name = resource.qualified_name();
    let qualified = format!("customresourcedefinitions.{CRD_GROUP}");
    let scope = RequestScope {
        verb: "get",
        resource: &qualified,
        namespace: None,
    };
    send_json(
        cluster,
        get(&format!(
            "/apis/{CRD_GROUP}/v1/customresourcedefinitions/{name}"
        )),
        &scope,
    )
    .await
}

fn get(path: &str) -> http::Request<Vec<u8>> {
    let mut request = http::Request::new(Vec::new());
    *request.uri_mut() = path.parse().expect("discovery paths are valid URIs");
    request
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
}
