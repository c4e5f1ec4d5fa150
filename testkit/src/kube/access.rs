//! Simulated RBAC: for the sandbox's admin, deny rules a test can set; for a service account,
//! the ClusterRoles its ClusterRoleBindings grant, evaluated as the real RBAC authorizer does.
//! Both are checked on every request and answered by `SelfSubjectAccessReview`, so that a
//! missing permission looks the same both ways.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// What a request asks to do, in the terms of RBAC (the same fields as
/// `SelfSubjectAccessReview.spec.resourceAttributes`). Empty strings mean "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessAttributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl AccessAttributes {
    pub fn new(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> Self {
        AccessAttributes {
            verb: verb.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            namespace: namespace.unwrap_or_default().to_string(),
            ..Default::default()
        }
    }

    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.to_string();
        self
    }

    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The message of the real API server's 403, for example `lrs.lrs.datarobot.com is
    /// forbidden: User "alice" cannot list resource "lrs" in API group "lrs.datarobot.com" at
    /// the cluster scope`.
    pub fn forbidden_message(&self, user: &str) -> String {
        let qualified = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        let object = if self.name.is_empty() {
            qualified
        } else {
            format!("{qualified} \"{}\"", self.name)
        };
        let resource = if self.subresource.is_empty() {
            format!("resource \"{}\"", self.resource)
        } else {
            format!("resource \"{}/{}\"", self.resource, self.subresource)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", self.namespace)
        };
        format!(
            "{object} is forbidden: User \"{user}\" cannot {} {resource} in API group \"{}\" {scope}",
            self.verb, self.group
        )
    }
}

/// One denial. `None` fields match anything.
#[derive(Clone, Debug, Default)]
pub struct DenyRule {
    pub verb: Option<String>,
    pub group: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
}

impl DenyRule {
    /// Denies `verb` on `resource` (plural) of `group` everywhere; `subresource` like `exec`.
    pub fn new(verb: &str, group: &str, resource: &str) -> Self {
        DenyRule {
            verb: Some(verb.to_string()),
            group: Some(group.to_string()),
            resource: Some(resource.to_string()),
            subresource: Some(String::new()),
            namespace: None,
        }
    }

    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.to_string());
        self
    }

    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    fn matches(&self, attrs: &AccessAttributes) -> bool {
        fn field(rule: &Option<String>, value: &str) -> bool {
            rule.as_deref().is_none_or(|r| r == "*" || r == value)
        }
        field(&self.verb, &attrs.verb)
            && field(&self.group, &attrs.group)
            && field(&self.resource, &attrs.resource)
            && field(&self.subresource, &attrs.subresource)
            && field(&self.namespace, &attrs.namespace)
    }
}

/// The access rules of a fake cluster: everything is allowed but what a rule denies.
#[derive(Clone, Default)]
pub struct AccessRules {
    denied: Arc<Mutex<Vec<DenyRule>>>,
}

impl AccessRules {
    pub fn deny(&self, rule: DenyRule) {
        self.denied.lock().unwrap().push(rule);
    }

    pub fn allow_all(&self) {
        self.denied.lock().unwrap().clear();
    }

    pub fn allows(&self, attrs: &AccessAttributes) -> bool {
        !self.denied.lock().unwrap().iter().any(|r| r.matches(attrs))
    }

    /// Answers a `SelfSubjectAccessReview` (the request body as JSON): the same object with
    /// `status.allowed` set, as the real API server returns it.
    pub fn review(&self, request: &Value) -> Value {
        review_answer(request, self.allows(&review_attributes(request)))
    }
}

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// The kubeconfig's user: everything is allowed but what an [`AccessRules`] rule denies.
    Admin,
    /// A service account, by a token the sandbox's kubelet minted for its pod: allowed what its
    /// ClusterRoleBindings grant, nothing else.
    ServiceAccount { namespace: String, name: String },
}

impl Identity {
    /// The user name of 403 messages: `system:serviceaccount:NS:NAME` for a service account.
    pub fn user_name(&self, admin: &str) -> String {
        match self {
            Identity::Admin => admin.to_string(),
            Identity::ServiceAccount { namespace, name } => {
                format!("system:serviceaccount:{namespace}:{name}")
            }
        }
    }
}

/// Whether the ClusterRoles bound to service account `namespace`/`name` allow `attrs`, read
/// from the objects stored: a binding names the account among its subjects and a ClusterRole as
/// its roleRef; a rule allows when its apiGroups, resources (`plural` or `plural/sub`) and
/// verbs hold the request's (or `*`) and, when it lists resourceNames, the request names one of
/// them (so a list or create is never allowed by a rule with resourceNames).
pub fn rbac_allows(
    bindings: &[std::sync::Arc<Value>],
    roles: &[std::sync::Arc<Value>],
    namespace: &str,
    name: &str,
    attrs: &AccessAttributes,
) -> bool {
    let names_us = |binding: &Value| {
        binding["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == name && s["namespace"] == namespace
            })
        })
    };
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let holds = |list: &Value, wanted: &str| {
        list.as_array()
            .is_some_and(|items| items.iter().any(|i| i == "*" || i == wanted))
    };
    let rule_allows = |rule: &Value| {
        let names_ok = match rule["resourceNames"].as_array() {
            Some(names) if !names.is_empty() => {
                !attrs.name.is_empty() && names.iter().any(|n| n == attrs.name.as_str())
            }
            _ => true,
        };
        holds(&rule["apiGroups"], &attrs.group)
            && holds(&rule["resources"], &resource)
            && holds(&rule["verbs"], &attrs.verb)
            && names_ok
    };
    bindings
        .iter()
        .filter(|b| names_us(b) && b["roleRef"]["kind"] == "ClusterRole")
        .filter_map(|b| {
            roles
                .iter()
                .find(|r| r["metadata"]["name"] == b["roleRef"]["name"])
        })
        .any(|role| {
            role["rules"]
                .as_array()
                .is_some_and(|rules| rules.iter().any(rule_allows))
        })
}

/// The attributes a `SelfSubjectAccessReview` (the request body as JSON) asks about.
pub fn review_attributes(request: &Value) -> AccessAttributes {
    let attrs = &request["spec"]["resourceAttributes"];
    let text = |key: &str| attrs[key].as_str().unwrap_or_default().to_string();
    AccessAttributes {
        verb: text("verb"),
        group: text("group"),
        resource: text("resource"),
        subresource: text("subresource"),
        namespace: text("namespace"),
        name: text("name"),
    }
}

/// The answer to a `SelfSubjectAccessReview`: the same object with `status.allowed` set, as the
/// real API server returns it.
pub fn review_answer(request: &Value, allowed: bool) -> Value {
    let mut answer = request.clone();
    answer["apiVersion"] = json!("authorization.k8s.io/v1");
    answer["kind"] = json!("SelfSubjectAccessReview");
    answer["status"] = if allowed {
        json!({"allowed": true, "reason": "allowed by the sandbox's rules"})
    } else {
        // RBAC has no explicit denials: it only fails to allow, with no reason.
        json!({"allowed": false})
    };
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_allows_only_what_a_bound_cluster_role_grants() {
        let role = std::sync::Arc::new(json!({"metadata": {"name": "reader"}, "rules": [
            {"apiGroups": ["lrs.datarobot.com"], "resources": ["lrs"], "verbs": ["get", "list"]},
            {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
             "verbs": ["get"], "resourceNames": ["lrs.lrs.datarobot.com"]},
        ]}));
        let binding = std::sync::Arc::new(json!({"metadata": {"name": "b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "backup", "namespace": "mlbackup"}]}));
        let allows = |ns: &str, sa: &str, attrs: &AccessAttributes| {
            rbac_allows(
                std::slice::from_ref(&binding),
                std::slice::from_ref(&role),
                ns,
                sa,
                attrs,
            )
        };
        let list = AccessAttributes::new("list", "lrs.datarobot.com", "lrs", None);
        assert!(allows("mlbackup", "backup", &list));
        assert!(
            !allows("other", "backup", &list),
            "a namesake in another namespace"
        );
        assert!(!allows(
            "mlbackup",
            "backup",
            &AccessAttributes::new("get", "", "secrets", Some("dr"))
        ));
        assert!(!allows(
            "mlbackup",
            "backup",
            &AccessAttributes::new("delete", "lrs.datarobot.com", "lrs", Some("dr"))
        ));
        let crd = AccessAttributes::new(
            "get",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
        );
        assert!(allows(
            "mlbackup",
            "backup",
            &crd.clone().with_name("lrs.lrs.datarobot.com")
        ));
        assert!(!allows(
            "mlbackup",
            "backup",
            &crd.clone().with_name("other.example.com")
        ));
        let list_crds = AccessAttributes::new(
            "list",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
        );
        assert!(!allows("mlbackup", "backup", &list_crds));
    }

    #[test]
    fn a_deny_rule_matches_only_its_verb_and_resource() {
        let rules = AccessRules::default();
        rules.deny(DenyRule::new("list", "lrs.datarobot.com", "lrs"));
        let list = AccessAttributes::new("list", "lrs.datarobot.com", "lrs", None);
        let get = AccessAttributes::new("get", "lrs.datarobot.com", "lrs", Some("dr"));
        assert!(!rules.allows(&list));
        assert!(rules.allows(&get));
        assert_eq!(
            list.forbidden_message("alice"),
            "lrs.lrs.datarobot.com is forbidden: User \"alice\" cannot list resource \"lrs\" in API group \"lrs.datarobot.com\" at the cluster scope"
        );
    }

    #[test]
    fn review_answers_exec_denial() {
        let rules = AccessRules::default();
        rules.deny(
            DenyRule::new("create", "", "pods")
                .subresource("exec")
                .in_namespace("dr"),
        );
        let review = json!({"spec": {"resourceAttributes": {
            "verb": "create", "resource": "pods", "subresource": "exec", "namespace": "dr"}}});
        assert_eq!(rules.review(&review)["status"]["allowed"], json!(false));
        let other_ns = json!({"spec": {"resourceAttributes": {
            "verb": "create", "resource": "pods", "subresource": "exec", "namespace": "x"}}});
        assert_eq!(rules.review(&other_ns)["status"]["allowed"], json!(true));
    }
}
