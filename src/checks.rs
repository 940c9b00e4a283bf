//! Validation checks on manifests before a change may count as dry-run: the platform rules a
//! reviewer would enforce. Each finding names the object and says how to fix it.
//!
//! - every container has CPU and memory requests and limits (error in tier/prod, warning in dev);
//! - no `:latest` or untagged image (error);
//! - no plaintext secret: Secret data and sensitive-looking env values must be vault references
//!   `vault:<mount>/<path>#<key>` (error);
//! - prod: Deployments/StatefulSets run ≥ 2 replicas and have a PodDisruptionBudget among the
//!   applied objects (error).

use crate::policy::Environment;
use serde::Serialize;
use serde_json::Value;

/// How serious a finding is. Errors make the dry-run fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// One problem with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    /// `Kind/name`.
    pub object: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{l}: {}: {}", self.object, self.message)
    }
}

/// Whether any finding is an error.
pub fn has_errors(f: &[Finding]) -> bool {
    f.iter().any(|x| x.level == Level::Error)
}

const SENSITIVE: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "APIKEY",
    "API_KEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "CREDENTIAL",
];

fn is_vault_ref(s: &str) -> bool {
    crate::secrets::VaultRef::parse(s.trim()).is_some()
}

fn pod_spec(kind: &str, o: &Value) -> Option<Value> {
    match kind {
        "Pod" => o.get("spec").cloned(),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            o.pointer("/spec/template/spec").cloned()
        }
        "CronJob" => o.pointer("/spec/jobTemplate/spec/template/spec").cloned(),
        _ => None,
    }
}

/// Check a set of objects that will be applied together in `env`.
pub fn check_manifests(docs: &[Value], env: Environment) -> Vec<Finding> {
    let mut out = Vec::new();
    let pdb_selectors: Vec<&Value> = docs
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some("PodDisruptionBudget"))
        .filter_map(|d| d.pointer("/spec/selector/matchLabels"))
        .collect();
    for d in docs {
        let kind = d.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = d
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let object = format!("{kind}/{name}");
        let mut push = |level, message: String| {
            out.push(Finding {
                level,
                object: object.clone(),
                message,
            })
        };
        if kind == "Secret" {
            for field in ["data", "stringData"] {
                if let Some(m) = d.get(field).and_then(Value::as_object) {
                    for (k, v) in m {
                        let plain = v.as_str().is_none_or(|s| !is_vault_ref(s));
                        if plain {
                            push(Level::Error, format!("{field}.{k} is a literal value; write the secret to vault (hashicorp-vault write or generate) and put its reference `vault:<mount>/<path>#<key>` here"));
                        }
                    }
                }
            }
        }
        let Some(spec) = pod_spec(kind, d) else {
            continue;
        };
        let containers = ["containers", "initContainers"]
            .iter()
            .filter_map(|k| spec.get(*k).and_then(Value::as_array))
            .flatten();
        for c in containers {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let last = image.rsplit('/').next().unwrap_or(image);
            if !image.contains('@') && (!last.contains(':') || last.ends_with(":latest")) {
                push(Level::Error, format!("container {cname} uses image `{image}` without a fixed tag; pin a version (e.g. `{}:1.2.3`) or a digest", image.trim_end_matches(":latest")));
            }
            for what in ["requests", "limits"] {
                for res in ["cpu", "memory"] {
                    if c.pointer(&format!("/resources/{what}/{res}")).is_none() {
                        let level = if env == Environment::Dev {
                            Level::Warning
                        } else {
                            Level::Error
                        };
                        push(level, format!("container {cname} has no {res} {what}; set resources.{what}.{res} (e.g. cpu: 100m, memory: 128Mi)"));
                    }
                }
            }
            if let Some(envs) = c.get("env").and_then(Value::as_array) {
                for e in envs {
                    let ename = e.get("name").and_then(Value::as_str).unwrap_or("");
                    let upper = ename.to_ascii_uppercase();
                    if let Some(v) = e.get("value").and_then(Value::as_str) {
                        if SENSITIVE.iter().any(|s| upper.contains(s))
                            && !v.is_empty()
                            && !is_vault_ref(v)
                        {
                            push(Level::Error, format!("container {cname} sets {ename} to a literal value; use valueFrom.secretKeyRef to a Secret whose data is a vault reference"));
                        }
                    }
                }
            }
        }
        if env == Environment::Prod && matches!(kind, "Deployment" | "StatefulSet") {
            let replicas = d
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if replicas < 2 {
                push(
                    Level::Error,
                    format!("runs {replicas} replica(s) in prod; set spec.replicas to at least 2"),
                );
            }
            let labels = d
                .pointer("/spec/template/metadata/labels")
                .and_then(Value::as_object);
            let covered = labels.is_some_and(|l| {
                pdb_selectors.iter().any(|sel| {
                    sel.as_object().is_some_and(|s| {
                        !s.is_empty() && s.iter().all(|(k, v)| l.get(k) == Some(v))
                    })
                })
            });
            if !covered {
                push(Level::Error, "has no PodDisruptionBudget in prod; add a policy/v1 PodDisruptionBudget (minAvailable: 1) selecting its pod labels to the same change".to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(replicas: i64, image: &str, resources: bool) -> Value {
        let res = if resources {
            json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}})
        } else {
            json!({})
        };
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": image, "resources": res,
                                              "env": [{"name": "DB_PASSWORD", "value": "hunter22"}]}]}}}})
    }

    #[test]
    fn findings_per_rule_and_environment() {
        let f = check_manifests(&[deploy(1, "nginx:latest", false)], Environment::Dev);
        let msgs: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert!(
            msgs.iter()
                .any(|m| m
                    .starts_with("error: Deployment/web: container c uses image `nginx:latest`")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("warning:") && m.contains("no cpu requests")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("DB_PASSWORD to a literal value")),
            "{msgs:?}"
        );
        assert!(
            !msgs.iter().any(|m| m.contains("replica")),
            "dev has no replica rule: {msgs:?}"
        );

        let f = check_manifests(&[deploy(1, "nginx:1.27.2", true)], Environment::Prod);
        let msgs: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert!(
            msgs.iter()
                .any(|m| m.contains("set spec.replicas to at least 2")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("no PodDisruptionBudget")),
            "{msgs:?}"
        );

        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
                         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        let mut d = deploy(3, "nginx:1.27.2", true);
        d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
        assert_eq!(check_manifests(&[d, pdb], Environment::Prod), vec![]);
    }

    #[test]
    fn secrets_must_be_vault_references() {
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                       "stringData": {"password": "vault:secret/db#password", "user": "admin"}});
        let f = check_manifests(&[s], Environment::Dev);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0]
            .message
            .starts_with("stringData.user is a literal value"));
    }
}
