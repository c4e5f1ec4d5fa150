//! The catalog of resource types the fake serves (namespaces, pods, deployments, replicasets,
//! statefulsets, service accounts, config maps, secrets, cluster roles and their bindings, cron
//! jobs, jobs, the LRS) and the per-type facts the real server derives from its registry: scope, names,
//! verbs, whether generation and a status subresource exist, whether it is a custom resource.

/// One served resource type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// `""` for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Served from a CRD: list items carry apiVersion/kind, a PUT needs a resourceVersion,
    /// strategic merge patch is refused.
    pub custom: bool,
    /// `metadata.generation` is kept and bumped on spec changes.
    pub tracks_generation: bool,
    /// Has a `status` subresource: writes to the main resource leave `status` alone.
    pub status_subresource: bool,
    /// Subresources besides `status` (discovery lists them).
    pub subresources: Vec<String>,
}

/// Verbs of every served resource, in discovery order.
pub const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (`pods` in the core group), as in the real server's messages.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The URL prefix of the group version: `/api/v1` or `/apis/group/version`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// The resource types of one fake cluster.
#[derive(Clone, Debug)]
pub struct Catalog {
    types: Vec<ResourceType>,
}

pub const LRS_GROUP: &str = "lrs.datarobot.com";
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
pub const BATCH_GROUP: &str = "batch";
pub const APIEXTENSIONS_GROUP: &str = "apiextensions.k8s.io";

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

impl Catalog {
    /// The built-in types, plus the LRS (at `lrs_version`) when the CRD is installed.
    pub fn new(lrs_version: Option<&str>) -> Self {
        let mut types = vec![
            ResourceType {
                group: String::new(),
                version: "v1".into(),
                plural: "namespaces".into(),
                singular: "namespace".into(),
                kind: "Namespace".into(),
                namespaced: false,
                short_names: names(&["ns"]),
                custom: false,
                tracks_generation: false,
                status_subresource: true,
                subresources: names(&["finalize"]),
            },
            ResourceType {
                group: String::new(),
                version: "v1".into(),
                plural: "pods".into(),
                singular: "pod".into(),
                kind: "Pod".into(),
                namespaced: true,
                short_names: names(&["po"]),
                custom: false,
                tracks_generation: false,
                status_subresource: true,
                subresources: names(&["exec", "log"]),
            },
            ResourceType {
                group: "apps".into(),
                version: "v1".into(),
                plural: "deployments".into(),
                singular: "deployment".into(),
                kind: "Deployment".into(),
                namespaced: true,
                short_names: names(&["deploy"]),
                custom: false,
                tracks_generation: true,
                status_subresource: true,
                subresources: names(&["scale"]),
            },
            ResourceType {
                group: "apps".into(),
                version: "v1".into(),
                plural: "replicasets".into(),
                singular: "replicaset".into(),
                kind: "ReplicaSet".into(),
                namespaced: true,
                short_names: names(&["rs"]),
                custom: false,
                tracks_generation: true,
                status_subresource: true,
                subresources: names(&["scale"]),
            },
            ResourceType {
                group: "apps".into(),
                version: "v1".into(),
                plural: "statefulsets".into(),
                singular: "statefulset".into(),
                kind: "StatefulSet".into(),
                namespaced: true,
                short_names: names(&["sts"]),
                custom: false,
                tracks_generation: true,
                status_subresource: true,
                subresources: names(&["scale"]),
            },
        ];
        // What `kubectl mlbackup schedule install` creates and the sandbox's kubelet runs.
        let plain = |group: &str,
                     plural: &str,
                     singular: &str,
                     kind: &str,
                     namespaced: bool,
                     short: &[&str],
                     status: bool| ResourceType {
            group: group.into(),
            version: "v1".into(),
            plural: plural.into(),
            singular: singular.into(),
            kind: kind.into(),
            namespaced,
            short_names: names(short),
            custom: false,
            tracks_generation: status,
            status_subresource: status,
            subresources: Vec::new(),
        };
        types.extend([
            plain(
                "",
                "serviceaccounts",
                "serviceaccount",
                "ServiceAccount",
                true,
                &["sa"],
                false,
            ),
            plain(
                "",
                "configmaps",
                "configmap",
                "ConfigMap",
                true,
                &["cm"],
                false,
            ),
            plain("", "secrets", "secret", "Secret", true, &[], false),
            plain(
                RBAC_GROUP,
                "clusterroles",
                "clusterrole",
                "ClusterRole",
                false,
                &[],
                false,
            ),
            plain(
                RBAC_GROUP,
                "clusterrolebindings",
                "clusterrolebinding",
                "ClusterRoleBinding",
                false,
                &[],
                false,
            ),
            plain(
                BATCH_GROUP,
                "cronjobs",
                "cronjob",
                "CronJob",
                true,
                &["cj"],
                true,
            ),
            plain(BATCH_GROUP, "jobs", "job", "Job", true, &[], true),
            // The definitions of custom resources: the LRS's is read into every backup.
            plain(
                APIEXTENSIONS_GROUP,
                "customresourcedefinitions",
                "customresourcedefinition",
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
                true,
            ),
        ]);
        if let Some(version) = lrs_version {
            types.push(ResourceType {
                group: LRS_GROUP.into(),
                version: version.into(),
                plural: "lrs".into(),
                singular: "longrunningservice".into(),
                kind: "LongRunningService".into(),
                namespaced: true,
                short_names: Vec::new(),
                custom: true,
                tracks_generation: true,
                status_subresource: true,
                subresources: Vec::new(),
            });
        }
        Catalog { types }
    }

    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type served at `group`/`version` under `plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn by_plural(&self, plural: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.plural == plural)
    }

    /// The type an object's `apiVersion` and `kind` name.
    pub fn by_api_version_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    pub fn namespaces(&self) -> &ResourceType {
        self.by_plural("namespaces")
            .expect("the namespaces type is always served")
    }

    /// The groups (besides core) in discovery order, each with its versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> + 'a {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.version == version)
    }
}
