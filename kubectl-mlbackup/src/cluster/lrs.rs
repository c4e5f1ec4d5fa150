//! The LRS custom resource: found through API discovery like kubectl does (never a hard-coded
//! version). It is listed like any other resource, by `list`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
pub(super) struct ApiGroup {
    pub versions: Vec<GroupVersion>,
    pub preferred_version: Option<GroupVersion>,
}

#[derive(Deserialize)]
pub(super) struct GroupVersion {
    pub version: String,
}

#[derive(Deserialize)]
pub(super) struct ApiResourceList {
    pub resources: Vec<ApiResource>,
}

/// One resource of an API group version, as discovery lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiResource {
    pub name: String,
    pub kind: String,
    pub namespaced: bool,
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
    let qualified = qualified_name(wanted);
    let not_served = |detail: String| ClusterError::ResourceNotServed {
        resource: qualified.clone(),
        detail,
    };
    let served = match group_versions(cluster, wanted).await? {
        Some(served) => served,
        None => return Err(not_served(not_served_group(group))),
    };
    let versions: Vec<String> = served.versions.into_iter().map(|v| v.version).collect();
    let preferred = served.preferred_version.map(|v| v.version);
    let version =
        choose_version(group, &versions, preferred.as_deref(), wanted).map_err(not_served)?;
    let resources = version_resources(cluster, wanted, &version).await?;
    find_resource(wanted, &version, &resources).map_err(not_served)
}

/// `PLURAL.GROUP` of the LRS, or of the override.
pub fn qualified_name(wanted: Option<&ResourceOverride>) -> String {
    let group = wanted.map_or(LRS_GROUP, |w| w.group.as_str());
    let plural = wanted.map_or(LRS_PLURAL, |w| w.plural.as_str());
    format!("{plural}.{group}")
}

/// Why a resource of `group` is not served when the group is not.
pub fn not_served_group(group: &str) -> String {
    format!("the API group `{group}` is not served")
}

/// `/apis/GROUP`: the group's versions; `None` when the group is not served.
pub(super) async fn group_versions(
    cluster: &Cluster,
    wanted: Option<&ResourceOverride>,
) -> Result<Option<ApiGroup>, ClusterError> {
    let group = wanted.map_or(LRS_GROUP, |w| w.group.as_str());
    match discover(cluster, wanted, &format!("/apis/{group}")).await {
        Ok(served) => Ok(Some(served)),
        Err(ClusterError::NotFound { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

/// `/apis/GROUP/VERSION`: the resources of one version of the group.
pub(super) async fn version_resources(
    cluster: &Cluster,
    wanted: Option<&ResourceOverride>,
    version: &str,
) -> Result<Vec<ApiResource>, ClusterError> {
    let group = wanted.map_or(LRS_GROUP, |w| w.group.as_str());
    let list: ApiResourceList =
        discover(cluster, wanted, &format!("/apis/{group}/{version}")).await?;
    Ok(list.resources)
}

/// One discovery document; a 403 names the resource looked for.
async fn discover<T: serde::de::DeserializeOwned>(
    cluster: &Cluster,
    wanted: Option<&ResourceOverride>,
    path: &str,
) -> Result<T, ClusterError> {
    let qualified = qualified_name(wanted);
    let scope = RequestScope {
        verb: "get",
        resource: &qualified,
        namespace: None,
    };
    send_json(cluster, get(path), &scope).await
}

/// The version a command uses: the one `wanted` names, which must be served, else the group's
/// preferred one (else its first). `Err` says why none can be used.
pub fn choose_version(
    group: &str,
    versions: &[String],
    preferred: Option<&str>,
    wanted: Option<&ResourceOverride>,
) -> Result<String, String> {
    match wanted {
        Some(w) if versions.contains(&w.version) => Ok(w.version.clone()),
        Some(w) => Err(format!(
            "the group `{group}` serves versions {}, not `{}`",
            versions.join(", "),
            w.version
        )),
        None => preferred
            .map(str::to_string)
            .or_else(|| versions.first().cloned())
            .ok_or_else(|| format!("the group `{group}` serves no version")),
    }
}

/// The LRS (or the override) among the resources of `version`. `Err` says it is not there.
pub fn find_resource(
    wanted: Option<&ResourceOverride>,
    version: &str,
    resources: &[ApiResource],
) -> Result<ServedResource, String> {
    let group = wanted.map_or(LRS_GROUP, |w| w.group.as_str());
    let plural = wanted.map_or(LRS_PLURAL, |w| w.plural.as_str());
    let resource = resources
        .iter()
        .find(|r| r.name == plural)
        .ok_or_else(|| format!("`{group}/{version}` has no resource `{plural}`"))?;
    Ok(ServedResource {
        group: group.to_string(),
        version: version.to_string(),
        kind: resource.kind.clone(),
        plural: resource.name.clone(),
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
