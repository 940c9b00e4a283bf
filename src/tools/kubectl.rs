//! The `kubectl` tool, native through kube-rs (no kubectl binary needed).
//!
//! Operations implemented: `get` (get one object or list any kind, through API discovery;
//! namespaced or across all namespaces; label and field selectors) and `api_resources`.
//! Output is a compact table with a status column and counts by status, never raw JSON.

use super::{table, Invocation, Tool, ToolCtx, ToolError};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::kube_client::{is_namespaced, Clusters, KubeTarget};
use futures::future::BoxFuture;
use kube::api::{Api, DynamicObject, ListParams};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub const NAME: &str = "kubectl";

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("get", EffectClass::ReadOnly),
    ("api_resources", EffectClass::ReadOnly),
];

/// Rows shown before "… N more".
const MAX_ROWS: usize = 200;

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Get,
    ApiResources,
}

/// Arguments of the kubectl tool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    /// The operation: `get` lists objects of a kind (or gets one by name); `api_resources` lists the kinds the cluster serves.
    operation: Operation,
    /// Kind, plural or short name, e.g. pods, Deployment, ns, helmreleases.helm.toolkit.fluxcd.io. Required for get.
    kind: Option<String>,
    /// Object name; null lists all objects of the kind.
    name: Option<String>,
    /// Namespace; null means the context's default namespace.
    namespace: Option<String>,
    /// true lists across all namespaces.
    all_namespaces: Option<bool>,
    /// Label selector, e.g. `app=web,tier!=db`.
    label_selector: Option<String>,
    /// Field selector, e.g. `status.phase=Running`.
    field_selector: Option<String>,
    /// kubeconfig context; null means the current context.
    context: Option<String>,
    /// Timeout in seconds (default 30).
    timeout_seconds: Option<u64>,
}

/// The kubectl tool.
pub struct Kubectl {
    kubeconfig: Option<PathBuf>,
    default_context: Option<String>,
    clusters: Clusters,
}

impl Kubectl {
    pub fn new(kubeconfig: Option<PathBuf>, default_context: Option<String>) -> Self {
        Self {
            kubeconfig,
            default_context,
            clusters: Clusters::default(),
        }
    }

    fn parse(args: &Value) -> Result<Args, ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        if a.operation == Operation::Get && a.kind.as_deref().is_none_or(|k| k.trim().is_empty()) {
            return Err(ToolError::InvalidArguments(
                "`kind` is required for get (e.g. \"pods\"); use operation api_resources to see the kinds".into(),
            ));
        }
        Ok(a)
    }

    fn target(&self, a: &Args) -> KubeTarget {
        KubeTarget {
            kubeconfig: self.kubeconfig.clone(),
            context: a.context.clone().or_else(|| self.default_context.clone()),
        }
    }

    async fn run(&self, a: Args) -> Result<String, ToolError> {
        let cluster = self
            .clusters
            .get(&self.target(&a))
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        match a.operation {
            Operation::ApiResources => {
                let all = cluster
                    .resources()
                    .await
                    .map_err(|e| ToolError::Failed(e.to_string()))?;
                let mut rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|(ar, caps)| {
                        vec![
                            ar.plural.clone(),
                            ar.api_version.clone(),
                            is_namespaced(caps).to_string(),
                            ar.kind.clone(),
                        ]
                    })
                    .collect();
                rows.sort();
                Ok(table::render(
                    &["NAME", "APIVERSION", "NAMESPACED", "KIND"],
                    &rows,
                    usize::MAX,
                ))
            }
            Operation::Get => {
                let kind = a.kind.clone().unwrap_or_default();
                let (ar, caps) = cluster
                    .resolve(&kind)
                    .await
                    .map_err(|e| ToolError::Failed(e.to_string()))?
                    .ok_or_else(|| {
                        ToolError::Failed(format!(
                            "the server has no resource type `{kind}`; run kubectl with operation api_resources to list the kinds"
                        ))
                    })?;
                let namespaced = is_namespaced(&caps);
                let all_ns = a.all_namespaces.unwrap_or(false);
                let ns = a
                    .namespace
                    .clone()
                    .unwrap_or_else(|| cluster.default_namespace.clone());
                let api: Api<DynamicObject> = if !namespaced || all_ns {
                    Api::all_with(cluster.client.clone(), &ar)
                } else {
                    Api::namespaced_with(cluster.client.clone(), &ns, &ar)
                };
                let show_ns = namespaced && all_ns;
                if let Some(name) = &a.name {
                    let obj = api
                        .get(name)
                        .await
                        .map_err(|e| kube_err(e, &cluster.context))?;
                    let rows = vec![row(&ar.kind, &obj, show_ns)];
                    return Ok(table::render(&header(&ar.kind, show_ns), &rows, MAX_ROWS));
                }
                let mut lp = ListParams::default().limit(500);
                if let Some(l) = &a.label_selector {
                    lp = lp.labels(l);
                }
                if let Some(f) = &a.field_selector {
                    lp = lp.fields(f);
                }
                let mut items = Vec::new();
                loop {
                    let page = api
                        .list(&lp)
                        .await
                        .map_err(|e| kube_err(e, &cluster.context))?;
                    let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
                    items.extend(page.items);
                    match next {
                        Some(c) if items.len() < 20_000 => lp = lp.continue_token(&c),
                        _ => break,
                    }
                }
                let where_ = if !namespaced {
                    "cluster-wide".to_string()
                } else if all_ns {
                    "in all namespaces".to_string()
                } else {
                    format!("in namespace {ns}")
                };
                if items.is_empty() {
                    return Ok(format!(
                        "No {} found {where_} (context {}).",
                        ar.plural, cluster.context
                    ));
                }
                let mut rows: Vec<Vec<String>> =
                    items.iter().map(|o| row(&ar.kind, o, show_ns)).collect();
                let status_col = if show_ns { 2 } else { 1 };
                let mut counts: BTreeMap<String, usize> = BTreeMap::new();
                for r in &rows {
                    *counts.entry(r[status_col].clone()).or_default() += 1;
                }
                // unhealthy first, so they survive truncation
                rows.sort_by_key(|r| healthy(&r[status_col]));
                let summary = counts
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Ok(format!(
                    "{} {} {where_} (context {}): {summary}\n{}",
                    items.len(),
                    ar.plural,
                    cluster.context,
                    table::render(&header(&ar.kind, show_ns), &rows, MAX_ROWS)
                ))
            }
        }
    }
}

fn kube_err(e: kube::Error, context: &str) -> ToolError {
    match e {
        kube::Error::Api(s) if s.code == 403 => ToolError::Failed(format!(
            "forbidden by RBAC in context {context}: {}",
            s.message
        )),
        kube::Error::Api(s) if s.code == 404 => {
            ToolError::Failed(format!("not found: {}", s.message))
        }
        kube::Error::Api(s) => ToolError::Failed(format!(
            "API error {} ({}): {}",
            s.code, s.reason, s.message
        )),
        other => ToolError::Failed(format!("request to the API server failed: {other}")),
    }
}

fn header(_kind: &str, show_ns: bool) -> Vec<&'static str> {
    if show_ns {
        vec!["NAMESPACE", "NAME", "STATUS", "DETAIL", "AGE"]
    } else {
        vec!["NAME", "STATUS", "DETAIL", "AGE"]
    }
}

fn healthy(status: &str) -> bool {
    matches!(
        status,
        "Active" | "Running" | "Succeeded" | "Ready" | "Available" | "Bound" | "Complete" | "-"
    )
}

fn row(kind: &str, o: &DynamicObject, show_ns: bool) -> Vec<String> {
    let (status, detail) = status_of(kind, &o.data);
    let mut r = Vec::with_capacity(5);
    if show_ns {
        r.push(o.metadata.namespace.clone().unwrap_or_default());
    }
    r.push(o.metadata.name.clone().unwrap_or_default());
    r.push(status);
    r.push(detail);
    r.push(
        o.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| age(t.0))
            .unwrap_or_else(|| "-".into()),
    );
    r
}

/// A one-word status and a short detail, derived per kind from `.status`.
fn status_of(kind: &str, data: &Value) -> (String, String) {
    let st = data.get("status").unwrap_or(&Value::Null);
    let s = |p: &str| st.pointer(p).and_then(Value::as_str).map(str::to_string);
    let n = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    match kind {
        "Namespace" => (
            s("/phase").unwrap_or_else(|| "Active".into()),
            String::new(),
        ),
        "Pod" => {
            let phase = s("/phase").unwrap_or_else(|| "Unknown".into());
            let cs = st
                .get("containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ready = cs
                .iter()
                .filter(|c| c.get("ready") == Some(&Value::Bool(true)))
                .count();
            let restarts: i64 = cs.iter().map(|c| n(c, "/restartCount")).sum();
            let waiting = cs.iter().find_map(|c| {
                c.pointer("/state/waiting/reason")
                    .or_else(|| c.pointer("/state/terminated/reason"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            let total = data
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(cs.len(), Vec::len);
            let status = match waiting {
                Some(w) if w != "Completed" => w,
                _ => phase,
            };
            (
                status,
                format!("ready {ready}/{total}, restarts {restarts}"),
            )
        }
        "Deployment" | "StatefulSet" | "ReplicaSet" | "DaemonSet" => {
            let (want, ready) = if kind == "DaemonSet" {
                (n(st, "/desiredNumberScheduled"), n(st, "/numberReady"))
            } else {
                (n(data, "/spec/replicas"), n(st, "/readyReplicas"))
            };
            let status = if ready >= want {
                "Available"
            } else {
                "Progressing"
            };
            (status.into(), format!("ready {ready}/{want}"))
        }
        "PersistentVolumeClaim" | "PersistentVolume" => {
            (s("/phase").unwrap_or_else(|| "-".into()), String::new())
        }
        _ => {
            // generic: the Ready condition, as Flux and most operators report it
            let cond = st
                .get("conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
                });
            match cond {
                Some(c) => {
                    let ok = c.get("status").and_then(Value::as_str) == Some("True");
                    let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
                    let msg = c.get("message").and_then(Value::as_str).unwrap_or("");
                    (
                        if ok {
                            "Ready".into()
                        } else {
                            "NotReady".into()
                        },
                        format!("{reason} {msg}").trim().to_string(),
                    )
                }
                None => ("-".into(), String::new()),
            }
        }
    }
}

fn age(t: jiff::Timestamp) -> String {
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    match secs {
        s if s < 120 => format!("{}s", s.max(0)),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

impl Tool for Kubectl {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Read Kubernetes objects of any kind through the API server."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let a = Self::parse(args)?;
        let op = match a.operation {
            Operation::Get => "get",
            Operation::ApiResources => "api_resources",
        };
        let mut target = a.kind.clone().unwrap_or_else(|| "api resources".into());
        if let Some(n) = &a.name {
            target.push_str(&format!("/{n}"));
        }
        if a.all_namespaces == Some(true) {
            target.push_str(" in all namespaces");
        } else if let Some(ns) = &a.namespace {
            target.push_str(&format!(" in namespace {ns}"));
        }
        if let Some(c) = a.context.as_ref().or(self.default_context.as_ref()) {
            target.push_str(&format!(" (context {c})"));
        }
        Ok(Invocation::read(op, target))
    }

    fn execute<'a>(
        &'a self,
        call: &'a Admitted,
        _ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let a = Self::parse(&call.args)?;
            let secs = a.timeout_seconds.unwrap_or(30).clamp(1, 600);
            tokio::time::timeout(Duration::from_secs(secs), self.run(a))
                .await
                .map_err(|_| ToolError::Timeout(secs))?
        })
    }
}
