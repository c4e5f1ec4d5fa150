//! `schedule uninstall`: deletes exactly the objects install labelled for this schedule (found
//! by its labels, each deleted only while it is still the object found), and the namespace when
//! install created it, no other schedule is left in it and it holds nothing install did not
//! create (the user's credentials Secret, say).

use anyhow::Context;
use serde::Serialize;

use super::{CREATED_NAMESPACE_ANNOTATION, Kind, MANAGED_BY, ScheduleError, selector};
use crate::cli::{GlobalArgs, ScheduleTargetArgs};
use crate::cluster::objects::{self, Persist};
use crate::env::Env;
use crate::exit::Exit;
use crate::printer::{self, Printer, Render};

pub async fn run(
    global: &GlobalArgs,
    target: &ScheduleTargetArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let cluster = super::super::connect(global, env).await?;
    let namespace = &target.schedule_namespace;
    let context = || format!("cannot uninstall the schedule `{}`", target.name);
    let ours = selector(target);
    let mut removed = Vec::new();
    for kind in Kind::REMOVED {
        let resource = kind.resource();
        let scope = resource.namespaced.then_some(namespace.as_str());
        let found = objects::list(&cluster, &resource, scope, &ours)
            .await
            .with_context(context)?;
        for object in found {
            let metadata = &object.value["metadata"];
            let name = metadata["name"].as_str().unwrap_or_default();
            let uid = metadata["uid"].as_str().unwrap_or_default();
            objects::delete(&cluster, &resource, namespace, name, uid, Persist::Yes)
                .await
                .with_context(|| format!("cannot delete the {} `{name}`", resource.kind))
                .with_context(context)?;
            removed.push(RemovedObject {
                kind: resource.kind.clone(),
                name: name.to_string(),
            });
        }
    }
    if removed.is_empty() {
        return Err(ScheduleError::NotInstalled {
            name: target.name.clone(),
            namespace: namespace.clone(),
            foreign_cron_job: false,
        })
        .with_context(context);
    }
    // The namespace goes when install made it, no other schedule lives there, and nothing
    // install did not create: deleting it would take those along, unasked.
    let mut kept_namespace = None;
    let namespaces = Kind::Namespace.resource();
    let made_by_install = objects::get(&cluster, &namespaces, namespace, namespace)
        .await
        .with_context(context)?
        .filter(|ns| ns.value["metadata"]["annotations"][CREATED_NAMESPACE_ANNOTATION] == "true");
    if let Some(ns) = made_by_install {
        let others = objects::list(
            &cluster,
            &Kind::CronJob.resource(),
            Some(namespace),
            &format!("{}={}", MANAGED_BY.0, MANAGED_BY.1),
        )
        .await
        .with_context(context)?;
        let foreign = if others.is_empty() {
            foreign_objects(&cluster, namespace)
                .await
                .with_context(context)?
        } else {
            Vec::new()
        };
        if !foreign.is_empty() {
            kept_namespace = Some(KeptNamespace {
                name: namespace.clone(),
                holds: foreign,
            });
        } else if others.is_empty() {
            let uid = ns.value["metadata"]["uid"].as_str().unwrap_or_default();
            objects::delete(
                &cluster,
                &namespaces,
                namespace,
                namespace,
                uid,
                Persist::Yes,
            )
            .await
            .with_context(context)?;
            removed.push(RemovedObject {
                kind: namespaces.kind.clone(),
                name: namespace.clone(),
            });
        }
    }
    printer.data(&UninstallOutcome {
        schedule: target.name.clone(),
        namespace: namespace.clone(),
        removed,
        kept_namespace,
    })?;
    Ok(Exit::Success)
}

/// What the namespace holds that install did not make, as `Kind name`: Secrets, ConfigMaps and
/// ServiceAccounts without this tool's label, but for what Kubernetes makes in every namespace
/// (the `default` ServiceAccount, the `kube-root-ca.crt` ConfigMap, service account tokens).
async fn foreign_objects(
    cluster: &crate::cluster::Cluster,
    namespace: &str,
) -> Result<Vec<String>, crate::cluster::ClusterError> {
    let mut foreign = Vec::new();
    for (kind, made_by_kubernetes) in [
        (Kind::Secret, ""),
        (Kind::ConfigMap, "kube-root-ca.crt"),
        (Kind::ServiceAccount, "default"),
    ] {
        let resource = kind.resource();
        for object in objects::list(cluster, &resource, Some(namespace), "").await? {
            let metadata = &object.value["metadata"];
            let name = metadata["name"].as_str().unwrap_or_default();
            let ours = metadata["labels"][MANAGED_BY.0] == MANAGED_BY.1;
            let token = object.value["type"] == "kubernetes.io/service-account-token";
            if !ours && !token && name != made_by_kubernetes {
                foreign.push(format!("{} {name}", resource.kind));
            }
        }
    }
    Ok(foreign)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptNamespace {
    pub name: String,
    /// What is in it that install did not create, as `Kind name`.
    pub holds: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedObject {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UninstallOutcome {
    pub schedule: String,
    pub namespace: String,
    pub removed: Vec<RemovedObject>,
    /// The namespace install created, kept because it holds what install did not create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_namespace: Option<KeptNamespace>,
}

impl Render for UninstallOutcome {
    fn render(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .removed
            .iter()
            .map(|o| vec![o.kind.clone(), o.name.clone(), "deleted".to_string()])
            .collect();
        let mut text = format!(
            "{}\nSchedule {} in namespace {} uninstalled.\n",
            printer::table(&["KIND", "NAME", "ACTION"], &rows).trim_end(),
            self.schedule,
            self.namespace
        );
        if let Some(kept) = &self.kept_namespace {
            text.push_str(&format!(
                "Kept namespace {}: it holds {}, which install did not create.\n",
                kept.name,
                kept.holds.join(", ")
            ));
        }
        text
    }
}
