//! The API surface a restore needs from a cluster, as one document (`api-surface` writes it on
//! the target, `verify --against FILE` reads it where there is no way to the target): the LRS
//! group's versions and resources as discovery serves them, the CustomResourceDefinition with
//! its schemas, and the namespaces.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::list::ServedResource;
use super::lrs::{self, ApiResource, ResourceOverride};
use super::{CLUSTER_ID_NAMESPACE, Cluster, ClusterError};

/// The `kind` of the document, so that another YAML file given by mistake is named as such.
pub const KIND: &str = "MlbackupApiSurface";
/// The newest `format` this version writes and reads.
pub const FORMAT: u32 = 1;
/// The fields of the document, in the order they are written.
const FIELDS: &[&str] = &[
    "kind",
    "format",
    "takenAt",
    "server",
    "context",
    "namespace",
    "serverVersion",
    "clusterId",
    "group",
    "customResourceDefinition",
    "namespaces",
    "problems",
];
/// A larger file is not an API surface (a CRD with large schemas is a few hundred KiB).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What a cluster serves for a restore of LRS objects, at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiSurface {
    /// [`KIND`].
    pub kind: String,
    /// [`FORMAT`].
    pub format: u32,
    pub taken_at: DateTime<Utc>,
    /// The API server's URL.
    pub server: String,
    /// The kubeconfig context (`None` in a pod).
    pub context: Option<String>,
    /// The context's namespace: where objects without one are restored.
    pub namespace: String,
    /// The API server's `gitVersion`.
    pub server_version: String,
    /// The uid of `kube-system`, as backups record the cluster they come from.
    pub cluster_id: Option<String>,
    /// The API group of the resource; `None` when the cluster does not serve the group.
    pub group: Option<ServedGroup>,
    /// The CustomResourceDefinition of the resource (`managedFields` left out); `None` when the
    /// resource is not served or the definition could not be read (`problems` says why).
    pub custom_resource_definition: Option<Value>,
    /// Every namespace's name, sorted; `None` when they could not be listed.
    pub namespaces: Option<Vec<String>>,
    /// What could not be read, each in a sentence. Always written, last: a file cut short
    /// lacks it (see [`ApiSurface::load`]).
    pub problems: Vec<String>,
}

/// An API group as discovery serves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedGroup {
    pub name: String,
    pub preferred_version: Option<String>,
    pub versions: Vec<ServedVersion>,
}

/// One version of a group, with its resources.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedVersion {
    pub version: String,
    pub resources: Vec<ApiResource>,
}

/// Why a file is not an API surface this version reads.
#[derive(Debug, thiserror::Error)]
pub enum SurfaceFileError {
    #[error("cannot read the API surface {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the API surface {path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path} is not an API surface: {detail}")]
    Invalid { path: String, detail: String },
    #[error(
        "the API surface {path} is incomplete: it has no `{field}` (a file cut short, or \
         edited?)"
    )]
    Incomplete { path: String, field: &'static str },
    #[error(
        "the API surface {path} has format {format}; this version of kubectl-mlbackup reads \
         format {FORMAT} and older"
    )]
    Newer { path: String, format: u32 },
}

impl SurfaceFileError {
    /// What to do: every one of these is a bad `--against` argument (a usage error).
    pub fn hint(&self) -> String {
        const WRITE: &str =
            "write it on the target cluster with `kubectl mlbackup api-surface > FILE`";
        match self {
            SurfaceFileError::Read { .. } | SurfaceFileError::TooLarge { .. } => WRITE.into(),
            SurfaceFileError::Invalid { .. } | SurfaceFileError::Incomplete { .. } => {
                format!("{WRITE}, and carry it whole")
            }
            SurfaceFileError::Newer { .. } => {
                "upgrade kubectl-mlbackup, or write the file with this version".into()
            }
        }
    }
}

/// Reads the API surface of `cluster` for the LRS (or the `wanted` override): the group and
/// each version's resources, the definition, the server's version, the cluster's id, and the
/// namespaces. A definition or namespaces the user may not read are left out and named in
/// `problems`; other failures are errors.
pub async fn read(
    cluster: &Cluster,
    wanted: Option<&ResourceOverride>,
) -> Result<ApiSurface, ClusterError> {
    let server_version = cluster.server_version().await?.git_version;
    let cluster_id = match cluster.namespace_uid(CLUSTER_ID_NAMESPACE).await {
        Ok(uid) => uid,
        Err(ClusterError::Forbidden { .. }) => None,
        Err(err) => return Err(err),
    };
    let group = match lrs::group_versions(cluster, wanted).await? {
        None => None,
        Some(served) => {
            let mut versions = Vec::new();
            for version in served.versions {
                let resources = lrs::version_resources(cluster, wanted, &version.version).await?;
                versions.push(ServedVersion {
                    version: version.version,
                    resources,
                });
            }
            Some(ServedGroup {
                name: wanted.map_or(lrs::LRS_GROUP, |w| w.group.as_str()).into(),
                preferred_version: served.preferred_version.map(|v| v.version),
                versions,
            })
        }
    };
    let mut surface = ApiSurface {
        kind: KIND.into(),
        format: FORMAT,
        taken_at: Utc::now(),
        server: cluster.server_url.clone(),
        context: cluster.context.clone(),
        namespace: cluster.namespace.clone(),
        server_version,
        cluster_id,
        group,
        custom_resource_definition: None,
        namespaces: None,
        problems: Vec::new(),
    };
    if let Ok(resource) = surface.resolve(wanted) {
        match lrs::definition(cluster, &resource).await {
            Ok(mut definition) => {
                if let Some(metadata) = definition["metadata"].as_object_mut() {
                    metadata.remove("managedFields");
                }
                surface.custom_resource_definition = Some(definition);
            }
            Err(err @ (ClusterError::Forbidden { .. } | ClusterError::NotFound { .. })) => {
                surface.problems.push(format!(
                    "the CustomResourceDefinition {} was not read ({err}): objects cannot be \
                     checked against its schema",
                    resource.qualified_name()
                ));
            }
            Err(err) => return Err(err),
        }
    }
    match cluster.namespace_names().await {
        Ok(mut names) => {
            names.sort();
            surface.namespaces = Some(names);
        }
        Err(err @ ClusterError::Forbidden { .. }) => surface.problems.push(format!(
            "the namespaces were not listed ({err}): whether a backup's namespaces exist \
             cannot be checked"
        )),
        Err(err) => return Err(err),
    }
    Ok(surface)
}

impl ApiSurface {
    /// Reads a document [`read`] wrote (YAML or JSON), refusing other files by name.
    pub fn load(path: &Path) -> Result<ApiSurface, SurfaceFileError> {
        let shown = path.display().to_string();
        let read_error = |source| SurfaceFileError::Read {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        if size > MAX_FILE_BYTES {
            return Err(SurfaceFileError::TooLarge { path: shown });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let invalid = |detail: String| SurfaceFileError::Invalid {
            path: shown.clone(),
            detail,
        };
        // The head first, so that a newer format or another kind of file is named as such
        // rather than by the first field this version does not know.
        #[derive(Deserialize)]
        struct Head {
            kind: Option<String>,
            format: Option<u32>,
        }
        let head: Head = serde_yaml::from_str(&text).map_err(|err| invalid(err.to_string()))?;
        if head.kind.as_deref() != Some(KIND) {
            return Err(invalid(match head.kind {
                Some(kind) => format!("its kind is `{kind}`, not `{KIND}`"),
                None => format!("it has no `kind: {KIND}`"),
            }));
        }
        match head.format {
            Some(format) if format > FORMAT => {
                return Err(SurfaceFileError::Newer {
                    path: shown,
                    format,
                });
            }
            _ => {}
        }
        // Every field is written, `null` when it could not be read: one that is missing means
        // the file was cut short (or edited), and what it would have said is unknown.
        let document: serde_json::Value =
            serde_yaml::from_str(&text).map_err(|err| invalid(err.to_string()))?;
        if let Some(field) = FIELDS.iter().find(|field| document.get(**field).is_none()) {
            return Err(SurfaceFileError::Incomplete { path: shown, field });
        }
        serde_json::from_value(document).map_err(|err| invalid(err.to_string()))
    }

    /// The resource a restore would use there, chosen as [`lrs::resolve`] chooses it live.
    /// `Err` says why it is not served.
    pub fn resolve(&self, wanted: Option<&ResourceOverride>) -> Result<ServedResource, String> {
        let group_name = wanted.map_or(lrs::LRS_GROUP, |w| w.group.as_str());
        let group = self
            .group
            .as_ref()
            .filter(|group| group.name == group_name)
            .ok_or_else(|| lrs::not_served_group(group_name))?;
        let versions: Vec<String> = group.versions.iter().map(|v| v.version.clone()).collect();
        let version = lrs::choose_version(
            group_name,
            &versions,
            group.preferred_version.as_deref(),
            wanted,
        )?;
        let resources = group
            .versions
            .iter()
            .find(|v| v.version == version)
            .map(|v| v.resources.as_slice())
            .unwrap_or_default();
        lrs::find_resource(wanted, &version, resources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surface() -> ApiSurface {
        ApiSurface {
            kind: KIND.into(),
            format: FORMAT,
            taken_at: "2026-11-29T10:00:00Z".parse().unwrap(),
            server: "https://target:6443".into(),
            context: Some("target".into()),
            namespace: "default".into(),
            server_version: "v1.33.1".into(),
            cluster_id: None,
            group: Some(ServedGroup {
                name: lrs::LRS_GROUP.into(),
                preferred_version: Some("v1".into()),
                versions: ["v1", "v1beta1"]
                    .into_iter()
                    .map(|version| ServedVersion {
                        version: version.into(),
                        resources: vec![ApiResource {
                            name: "lrs".into(),
                            kind: "LongRunningService".into(),
                            namespaced: true,
                        }],
                    })
                    .collect(),
            }),
            custom_resource_definition: None,
            namespaces: Some(vec!["default".into()]),
            problems: Vec::new(),
        }
    }

    #[test]
    fn the_resource_is_chosen_as_discovery_chooses_it() {
        let surface = surface();
        let preferred = surface.resolve(None).unwrap();
        assert_eq!(preferred.version, "v1");
        assert_eq!(preferred.kind, "LongRunningService");
        let named: ResourceOverride = "lrs.v1beta1.lrs.datarobot.com".parse().unwrap();
        assert_eq!(surface.resolve(Some(&named)).unwrap().version, "v1beta1");
        let missing: ResourceOverride = "lrs.v2.lrs.datarobot.com".parse().unwrap();
        assert_eq!(
            surface.resolve(Some(&missing)).unwrap_err(),
            "the group `lrs.datarobot.com` serves versions v1, v1beta1, not `v2`"
        );
        let other: ResourceOverride = "lrs.v1.other.example.com".parse().unwrap();
        assert_eq!(
            surface.resolve(Some(&other)).unwrap_err(),
            "the API group `other.example.com` is not served"
        );
    }

    #[test]
    fn a_file_cut_short_is_incomplete_whatever_it_still_parses_as() {
        let mut written = surface();
        written.custom_resource_definition = None;
        let text = serde_yaml::to_string(&written).unwrap();
        let document: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let keys: Vec<&str> = document
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, FIELDS, "every field is written, in this order");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target.yaml");
        // Unread parts are written as null and read back; a line cut off is not.
        std::fs::write(&path, &text).unwrap();
        assert!(
            ApiSurface::load(&path)
                .unwrap()
                .custom_resource_definition
                .is_none()
        );
        let cut = &text[..text.find("namespaces:").unwrap()];
        std::fs::write(&path, cut).unwrap();
        assert_eq!(
            ApiSurface::load(&path).unwrap_err().to_string(),
            format!(
                "the API surface {} is incomplete: it has no `namespaces` (a file cut short, or \
                 edited?)",
                path.display()
            )
        );
    }

    #[test]
    fn a_file_round_trips_and_other_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target.yaml");
        std::fs::write(&path, serde_yaml::to_string(&surface()).unwrap()).unwrap();
        let loaded = ApiSurface::load(&path).unwrap();
        assert_eq!(loaded.server, "https://target:6443");
        assert_eq!(loaded.resolve(None).unwrap().version, "v1");

        std::fs::write(&path, "apiVersion: v1\nkind: ConfigMap\n").unwrap();
        let err = ApiSurface::load(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(
                "is not an API surface: its kind is `ConfigMap`, not `MlbackupApiSurface`"
            ),
            "{err}"
        );
        std::fs::write(&path, format!("kind: {KIND}\nformat: 9\n")).unwrap();
        let err = ApiSurface::load(&path).unwrap_err().to_string();
        assert!(err.contains("has format 9; this version"), "{err}");
        let err = ApiSurface::load(&dir.path().join("none.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot read the API surface"), "{err}");
    }
}
