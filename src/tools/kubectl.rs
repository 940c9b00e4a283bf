//! The `kubectl` tool, native through kube-rs (no kubectl binary needed).
//!
//! - read_only: `get` (any kind through API discovery; namespaced or all namespaces; label and
//!   field selectors; `wide` columns), `describe` (object + owner chain + events), `logs`,
//!   `events` (warnings first), `rollout_status`, `auth_can_i`, `api_resources`, `wait`.
//! - dry_run: `apply_dry_run` (server-side apply with `dryRun=All`, plus bosun's manifest
//!   checks), `diff` (dry-run result against the live object, as a unified diff).
//! - mutating: `apply`, `scale`, `rollout_restart`, `rollout_undo`, `annotate`, `label`.
//! - destructive: `delete` (by name or selector), `drain`.
//!
//! Every change computes the same [`Change`] for its dry-run (`apply_dry_run`, or the same call
//! with `dry_run: true`) and for the real call, so the guard can match them. Output goes through
//! [`crate::compact`]: tables, counts by status, unhealthy objects first, "… N more" markers.

mod effect;
mod read;
mod write;

use super::k8s::{self, canonical_kind, change_hash, parse_manifests, ClusterAccess};
use super::{Change, Invocation, Scope, Tool, ToolCtx, ToolError};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::kube_client::Cluster;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const NAME: &str = "kubectl";

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("get", EffectClass::ReadOnly),
    ("describe", EffectClass::ReadOnly),
    ("logs", EffectClass::ReadOnly),
    ("events", EffectClass::ReadOnly),
    ("rollout_status", EffectClass::ReadOnly),
    ("auth_can_i", EffectClass::ReadOnly),
    ("api_resources", EffectClass::ReadOnly),
    ("wait", EffectClass::ReadOnly),
    ("apply_dry_run", EffectClass::DryRun),
    ("diff", EffectClass::DryRun),
    ("apply", EffectClass::Mutating),
    ("scale", EffectClass::Mutating),
    ("rollout_restart", EffectClass::Mutating),
    ("rollout_undo", EffectClass::Mutating),
    ("annotate", EffectClass::Mutating),
    ("label", EffectClass::Mutating),
    ("restore", EffectClass::Mutating),
    ("delete", EffectClass::Destructive),
    ("drain", EffectClass::Destructive),
];

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Operation {
    Get,
    Describe,
    Logs,
    Events,
    RolloutStatus,
    AuthCanI,
    ApiResources,
    Wait,
    ApplyDryRun,
    Diff,
    Apply,
    Scale,
    RolloutRestart,
    RolloutUndo,
    Annotate,
    Label,
    // undo bosun's own last apply of these manifests: each object back to exactly what it was
    // before (deleted if the apply created it); a plain comment, so the schema stays an enum
    Restore,
    Delete,
    Drain,
}

impl Operation {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Describe => "describe",
            Self::Logs => "logs",
            Self::Events => "events",
            Self::RolloutStatus => "rollout_status",
            Self::AuthCanI => "auth_can_i",
            Self::ApiResources => "api_resources",
            Self::Wait => "wait",
            Self::ApplyDryRun => "apply_dry_run",
            Self::Diff => "diff",
            Self::Apply => "apply",
            Self::Scale => "scale",
            Self::RolloutRestart => "rollout_restart",
            Self::RolloutUndo => "rollout_undo",
            Self::Annotate => "annotate",
            Self::Label => "label",
            Self::Restore => "restore",
            Self::Delete => "delete",
            Self::Drain => "drain",
        }
    }
}

// Arguments of the kubectl tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Args {
    pub operation: Operation,
    /// Kind, plural or short name, e.g. pods, Deployment, ns.
    pub kind: Option<String>,
    /// Object name; drain: the node.
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub all_namespaces: Option<bool>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub context: Option<String>,
    /// get: more columns (node, IP, images, labels).
    pub wide: Option<bool>,
    /// apply_dry_run/apply/diff: YAML documents.
    pub manifests: Option<String>,
    /// apply: take over fields owned by other managers.
    pub force_conflicts: Option<bool>,
    pub replicas: Option<i32>,
    pub to_revision: Option<i64>,
    /// annotate: `k=v,k2-` (`k2-` removes).
    pub annotations: Option<String>,
    /// label: `k=v,k2-` (`k2-` removes).
    pub labels: Option<String>,
    pub container: Option<String>,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    /// logs: the previous (crashed) instance.
    pub previous: Option<bool>,
    pub warnings_only: Option<bool>,
    /// auth_can_i: e.g. get, patch; kind is the resource (`pods/log`).
    pub verb: Option<String>,
    /// auth_can_i: as ServiceAccount `namespace/name`.
    pub as_service_account: Option<String>,
    /// wait: `condition=Available`, `delete` or `jsonpath={.status.phase}=Running`.
    pub wait_for: Option<String>,
    /// drain: also evict unmanaged and emptyDir pods.
    pub force: Option<bool>,
    /// Changes other than apply: true = server-side dry-run only, needed before the real call.
    pub dry_run: Option<bool>,
    pub timeout_seconds: Option<u64>,
}

/// The kubectl tool.
pub struct Kubectl {
    access: ClusterAccess,
    /// What each object was just before bosun's last real apply of it (`None`: it did not
    /// exist), keyed by context, group, kind, namespace and name — for `restore`.
    snapshots: write::Snapshots,
    /// Token budget of one result.
    pub(crate) max_tokens: usize,
}

fn need<'a>(v: &'a Option<String>, what: &str, op: Operation) -> Result<&'a str, ToolError> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ToolError::InvalidArguments(format!("`{what}` is required for {}", op.as_str()))
        })
}

impl Kubectl {
    pub fn new(kubeconfig: Option<PathBuf>, default_context: Option<String>) -> Self {
        Self {
            access: ClusterAccess::new(kubeconfig, default_context),
            snapshots: Default::default(),
            max_tokens: crate::compact::DEFAULT_RESULT_TOKENS,
        }
    }

    pub(crate) fn parse(args: &Value) -> Result<Args, ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        use Operation::*;
        let op = a.operation;
        match op {
            Get => {
                if a.kind.as_deref().is_none_or(|k| k.trim().is_empty()) {
                    return Err(ToolError::InvalidArguments(
                        "`kind` is required for get (e.g. \"pods\"); use operation api_resources to see the kinds".into(),
                    ));
                }
            }
            Describe | RolloutStatus | RolloutRestart | RolloutUndo => {
                need(&a.kind, "kind", op)?;
                need(&a.name, "name", op)?;
            }
            Logs => {
                if a.name.is_none() && a.label_selector.is_none() {
                    return Err(ToolError::InvalidArguments(
                        "logs needs a pod `name` or a `label_selector`".into(),
                    ));
                }
            }
            AuthCanI => {
                need(&a.verb, "verb", op)?;
                need(&a.kind, "kind", op)?;
            }
            Wait => {
                need(&a.kind, "kind", op)?;
                need(&a.wait_for, "wait_for", op)?;
                if a.name.is_none() && a.label_selector.is_none() {
                    return Err(ToolError::InvalidArguments(
                        "wait needs a `name` or a `label_selector`".into(),
                    ));
                }
            }
            ApplyDryRun | Apply | Diff | Restore => {
                need(&a.manifests, "manifests", op)?;
            }
            Scale => {
                need(&a.kind, "kind", op)?;
                need(&a.name, "name", op)?;
                match a.replicas {
                    Some(r) if (0..=10_000).contains(&r) => {}
                    _ => {
                        return Err(ToolError::InvalidArguments(
                            "scale needs `replicas` between 0 and 10000".into(),
                        ))
                    }
                }
            }
            Annotate => {
                need(&a.kind, "kind", op)?;
                need(&a.name, "name", op)?;
                k8s::parse_pairs(need(&a.annotations, "annotations", op)?, "annotations")?;
            }
            Label => {
                need(&a.kind, "kind", op)?;
                need(&a.name, "name", op)?;
                k8s::parse_pairs(need(&a.labels, "labels", op)?, "labels")?;
            }
            Delete => {
                need(&a.kind, "kind", op)?;
                let sel = a.label_selector.as_deref().map(str::trim).unwrap_or("");
                if a.name.is_none() && sel.is_empty() {
                    return Err(ToolError::InvalidArguments(
                        "delete needs a `name` or a non-empty `label_selector`; deleting every object of a kind is not offered".into(),
                    ));
                }
                if a.all_namespaces == Some(true) {
                    return Err(ToolError::InvalidArguments(
                        "delete works in one namespace; all_namespaces is not accepted".into(),
                    ));
                }
            }
            Drain => {
                need(&a.name, "name (the node)", op)?;
            }
            Events | ApiResources => {}
        }
        Ok(a)
    }

    /// The context and namespace a call uses (see [`ClusterAccess::defaults`]).
    fn defaults(&self, a: &Args) -> (Option<String>, Option<String>) {
        self.access
            .defaults(a.context.as_deref(), a.namespace.as_deref())
    }

    async fn cluster(&self, a: &Args) -> Result<Arc<Cluster>, ToolError> {
        self.access.cluster(a.context.as_deref()).await
    }

    async fn run(&self, a: Args, secs: u64, ctx: &ToolCtx) -> Result<String, ToolError> {
        let cluster = self.cluster(&a).await?;
        let ns = a
            .namespace
            .clone()
            .unwrap_or_else(|| cluster.default_namespace.clone());
        let deadline = Instant::now() + Duration::from_secs(secs);
        let c = &*cluster;
        use Operation::*;
        match a.operation {
            ApiResources => read::api_resources(c).await,
            Get => read::get(self, c, &a, &ns, ctx).await,
            Describe => read::describe(self, c, &a, &ns, ctx).await,
            Logs => read::logs(self, c, &a, &ns).await,
            Events => read::events(self, c, &a, &ns).await,
            RolloutStatus => read::rollout_status(c, &a, &ns, deadline).await,
            AuthCanI => read::auth_can_i(c, &a, &ns).await,
            Wait => read::wait(c, &a, &ns, deadline).await,
            ApplyDryRun => write::apply(self, c, &a, &ns, ctx, write::Mode::DryRun).await,
            Diff => write::apply(self, c, &a, &ns, ctx, write::Mode::Diff).await,
            Apply => {
                let mode = if a.dry_run == Some(true) {
                    write::Mode::DryRun
                } else {
                    write::Mode::Apply
                };
                write::apply(self, c, &a, &ns, ctx, mode).await
            }
            Scale => write::scale(c, &a, &ns).await,
            RolloutRestart => write::rollout_restart(c, &a, &ns).await,
            RolloutUndo => write::rollout_undo(c, &a, &ns).await,
            Annotate | Label => write::annotate(c, &a, &ns).await,
            Restore => write::restore(self, c, &a, &ns, a.dry_run == Some(true)).await,
            Delete => write::delete(c, &a, &ns).await,
            Drain => write::drain(c, &a, deadline).await,
        }
    }
}

/// The human summary of a read call.
fn read_target(a: &Args, ctx: Option<&str>, ns: Option<&str>) -> String {
    let mut t = a.kind.clone().unwrap_or_else(|| match a.operation {
        Operation::ApiResources => "api resources".into(),
        Operation::Events => "events".into(),
        _ => "pods".into(),
    });
    if let Some(n) = &a.name {
        t.push_str(&format!("/{n}"));
    }
    if let Some(l) = &a.label_selector {
        t.push_str(&format!(" -l {l}"));
    }
    if a.all_namespaces == Some(true) {
        t.push_str(" in all namespaces");
    } else if let Some(ns) = ns {
        t.push_str(&format!(" in namespace {ns}"));
    }
    if let Some(c) = ctx {
        t.push_str(&format!(" (context {c})"));
    }
    t
}

impl Tool for Kubectl {
    fn name(&self) -> &str {
        NAME
    }

    /// An applied Deployment/StatefulSet/DaemonSet is verified by its rollout status; any apply
    /// is undone by `restore` of the same manifests: every object back to exactly what it was
    /// before the apply, and deleted if the apply created it.
    fn follow_ups(&self, args: &Value) -> super::FollowUps {
        let mut out = super::FollowUps::default();
        if args.get("operation").and_then(Value::as_str) != Some("apply") {
            return out;
        }
        let Some(text) = args.get("manifests").and_then(Value::as_str) else {
            return out;
        };
        let Ok(docs) = serde_saphyr::from_str_multiple::<Value, Vec<Value>>(text) else {
            return out;
        };
        let ns_arg = args.get("namespace").cloned().unwrap_or(Value::Null);
        let context = args.get("context").cloned().unwrap_or(Value::Null);
        for d in &docs {
            let kind = d.get("kind").and_then(Value::as_str).unwrap_or_default();
            if !matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") {
                continue;
            }
            let Some(name) = d.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            let ns = d
                .pointer("/metadata/namespace")
                .cloned()
                .unwrap_or_else(|| ns_arg.clone());
            out.verify.push(super::FollowUp {
                tool: NAME.into(),
                arguments: serde_json::json!({"operation": "rollout_status", "kind": kind,
                    "name": name, "namespace": ns, "context": context, "timeout_seconds": 30}),
            });
        }
        out.rollback = Some(super::FollowUp {
            tool: NAME.into(),
            arguments: serde_json::json!({"operation": "restore", "manifests": text,
                "namespace": ns_arg, "context": context}),
        });
        out
    }

    fn description(&self) -> &str {
        "Read, dry-run, apply and troubleshoot Kubernetes objects through the API server."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let a = Self::parse(args)?;
        let (ctx, ns) = self.defaults(&a);
        let op = a.operation;
        let all_ns = a.all_namespaces == Some(true);
        let kind = a.kind.as_deref().map(canonical_kind);
        let mut scope = Scope {
            context: ctx.clone(),
            namespace: if all_ns || op == Operation::Drain {
                None
            } else {
                ns.clone()
            },
            kinds: kind.clone().into_iter().collect(),
            objects: Vec::new(),
        };
        let ctx_s = ctx.as_deref().unwrap_or("(current)");
        let ns_s = ns.as_deref().unwrap_or("(default)");
        use Operation::*;
        let (content, target, human, hint) = match op {
            Get | Describe | Logs | Events | RolloutStatus | AuthCanI | ApiResources | Wait => {
                return Ok(Invocation::read(
                    op.as_str(),
                    read_target(&a, ctx.as_deref(), ns.as_deref()),
                )
                .with_scope(scope))
            }
            ApplyDryRun | Apply | Diff | Restore => {
                let docs = parse_manifests(a.manifests.as_deref().unwrap_or(""))?;
                // vault: references resolve only into Secret data: refused before anything runs
                for d in &docs {
                    crate::secrets::check_placement(d, &k8s::doc_id(d))
                        .map_err(ToolError::InvalidArguments)?;
                }
                if let Some(want) = &a.namespace {
                    for d in &docs {
                        if let Some(have) = d.pointer("/metadata/namespace").and_then(Value::as_str)
                        {
                            if have != want {
                                return Err(ToolError::InvalidArguments(format!(
                                    "{} names namespace {have} but the call's namespace is {want}; make them agree",
                                    k8s::doc_id(d)
                                )));
                            }
                        }
                    }
                }
                let mut kinds: Vec<String> = docs
                    .iter()
                    .filter_map(|d| d.get("kind").and_then(Value::as_str).map(str::to_string))
                    .collect();
                kinds.sort();
                kinds.dedup();
                scope.kinds = kinds;
                let ids: Vec<String> = docs.iter().map(k8s::doc_id).collect();
                let human = format!(
                    "{} object(s) in namespace {ns_s} (context {ctx_s}): {}",
                    docs.len(),
                    crate::compact::clip_line(&ids.join(", "), 200)
                );
                if op == Diff {
                    return Ok(Invocation {
                        min_effect: None,
                        operation: op.as_str().into(),
                        target: human,
                        change: None,
                        dry_run: true,
                        scope,
                    });
                }
                let objects: Vec<Value> = docs.iter().map(k8s::normalise).collect();
                if op == Restore {
                    (
                        json!({"op": "restore", "objects": objects}),
                        format!("context={ctx_s} namespace={ns_s}"),
                        format!("restore (undo bosun's last apply of) {human}"),
                        "call kubectl restore with the same manifests, context, namespace and dry_run: true"
                            .to_string(),
                    )
                } else {
                    (
                        json!({"op": "apply", "force_conflicts": a.force_conflicts.unwrap_or(false), "objects": objects}),
                        format!("context={ctx_s} namespace={ns_s}"),
                        human,
                        "call kubectl apply_dry_run with the same manifests, context and namespace"
                            .to_string(),
                    )
                }
            }
            Scale | RolloutRestart | RolloutUndo | Annotate | Label | Delete => {
                let k = kind.clone().unwrap_or_default();
                let what = match (&a.name, &a.label_selector) {
                    (Some(n), _) => format!("{k}/{n}"),
                    (None, Some(l)) => format!("{k} -l {l}"),
                    (None, None) => k.clone(),
                };
                let pairs = match op {
                    Annotate => Some(Value::Object(k8s::parse_pairs(
                        a.annotations.as_deref().unwrap_or(""),
                        "annotations",
                    )?)),
                    Label => Some(Value::Object(k8s::parse_pairs(
                        a.labels.as_deref().unwrap_or(""),
                        "labels",
                    )?)),
                    _ => None,
                };
                let content = json!({
                    "op": op.as_str(), "kind": k, "name": a.name, "selector": a.label_selector,
                    "replicas": a.replicas, "to_revision": a.to_revision, "pairs": pairs,
                });
                let extra = match op {
                    Scale => format!(" to {} replicas", a.replicas.unwrap_or(0)),
                    RolloutUndo => a
                        .to_revision
                        .map(|r| format!(" to revision {r}"))
                        .unwrap_or_else(|| " to the previous revision".into()),
                    Annotate => format!(" {}", a.annotations.as_deref().unwrap_or("")),
                    Label => format!(" {}", a.labels.as_deref().unwrap_or("")),
                    _ => String::new(),
                };
                (
                    content,
                    format!("context={ctx_s} namespace={ns_s} {what}"),
                    format!(
                        "{} {what}{extra} in namespace {ns_s} (context {ctx_s})",
                        op.as_str()
                    ),
                    format!(
                        "call kubectl {} with the same arguments and dry_run: true",
                        op.as_str()
                    ),
                )
            }
            Drain => {
                let node = a.name.clone().unwrap_or_default();
                scope.kinds = vec!["Node".into(), "Pod".into()];
                (
                    json!({"op": "drain", "node": node, "force": a.force.unwrap_or(false)}),
                    format!("context={ctx_s} node/{node}"),
                    format!("drain node {node} (context {ctx_s})"),
                    "call kubectl drain with the same arguments and dry_run: true".to_string(),
                )
            }
        };
        let dry_run = op == ApplyDryRun || a.dry_run == Some(true);
        Ok(Invocation {
            min_effect: None,
            operation: op.as_str().into(),
            target: if dry_run {
                format!("dry-run: {human}")
            } else {
                human
            },
            change: Some(Change {
                target,
                content_hash: change_hash(content),
                dry_run_hint: hint,
            }),
            dry_run,
            scope,
        })
    }

    fn resolve<'a>(
        &'a self,
        inv: Invocation,
        args: &'a Value,
        _ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<Invocation, ToolError>> {
        Box::pin(async move {
            // reads need no resolution; changes, their dry-runs and diffs are judged per object
            if inv.change.is_none() && !inv.dry_run {
                return Ok(inv);
            }
            let a = Self::parse(args)?;
            let cluster = self.cluster(&a).await?;
            effect::resolve(&cluster, &a, inv).await
        })
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let a = Self::parse(&call.args)?;
            let secs = a.timeout_seconds.unwrap_or(30).clamp(1, 600);
            // operations that wait report their own timeout with details; this is the backstop
            let waits = matches!(
                a.operation,
                Operation::RolloutStatus | Operation::Wait | Operation::Drain
            );
            let outer = if waits { secs + 5 } else { secs };
            tokio::time::timeout(Duration::from_secs(outer), self.run(a, secs, ctx))
                .await
                .map_err(|_| ToolError::Timeout(secs))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: Value) -> Result<Invocation, ToolError> {
        Kubectl::new(Some("/nonexistent/kubeconfig".into()), Some("dev".into())).plan(&args)
    }

    const M: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n";

    #[test]
    fn apply_and_its_dry_run_share_one_change() {
        let dry = plan(json!({"operation": "apply_dry_run", "manifests": M, "namespace": "shop"}))
            .expect("plan");
        let real =
            plan(json!({"operation": "apply", "manifests": M, "namespace": "shop"})).expect("plan");
        let flag = plan(
            json!({"operation": "apply", "dry_run": true, "manifests": M, "namespace": "shop"}),
        )
        .expect("plan");
        assert!(dry.dry_run && flag.dry_run && !real.dry_run);
        assert_eq!(dry.change, real.change);
        assert_eq!(flag.change, real.change);
        assert_eq!(real.scope.context.as_deref(), Some("dev"));
        assert_eq!(real.scope.kinds, vec!["ConfigMap".to_string()]);
        // formatting does not matter, content does
        let reformatted =
            "---\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: a}\ndata: {k: v}\n";
        let same =
            plan(json!({"operation": "apply", "manifests": reformatted, "namespace": "shop"}))
                .expect("plan");
        assert_eq!(same.change, real.change);
        let edited = plan(json!({"operation": "apply", "manifests": M.replace("k: v", "k: w"), "namespace": "shop"})).expect("plan");
        assert_ne!(edited.change, real.change);
        let elsewhere =
            plan(json!({"operation": "apply", "manifests": M, "namespace": "prod"})).expect("plan");
        assert_ne!(elsewhere.change, real.change);
    }

    #[test]
    fn changes_with_a_dry_run_flag_match_their_real_call() {
        for args in [
            json!({"operation": "scale", "kind": "deploy", "name": "web", "replicas": 3}),
            json!({"operation": "rollout_restart", "kind": "deployment", "name": "web"}),
            json!({"operation": "label", "kind": "pods", "name": "p", "labels": "a=1,b-"}),
            json!({"operation": "delete", "kind": "pods", "label_selector": "app=x"}),
            json!({"operation": "drain", "name": "node-1"}),
        ] {
            let real = plan(args.clone()).expect("plan");
            let mut d = args.clone();
            d["dry_run"] = json!(true);
            let dry = plan(d).expect("plan");
            assert!(dry.dry_run && !real.dry_run);
            assert_eq!(dry.change, real.change, "{args}");
            assert!(real
                .change
                .as_ref()
                .is_some_and(|c| c.dry_run_hint.contains("dry_run: true")));
        }
        let a = plan(json!({"operation": "scale", "kind": "deploy", "name": "web", "replicas": 3}))
            .expect("plan");
        let b = plan(json!({"operation": "scale", "kind": "deploy", "name": "web", "replicas": 4}))
            .expect("plan");
        assert_ne!(a.change, b.change);
    }

    #[test]
    fn reads_have_no_change_and_bad_calls_are_refused() {
        let r = plan(json!({"operation": "wait", "kind": "deploy", "name": "web", "wait_for": "condition=Available"})).expect("plan");
        assert!(r.change.is_none());
        for bad in [
            json!({"operation": "delete", "kind": "pods"}),
            json!({"operation": "delete", "kind": "pods", "label_selector": " "}),
            json!({"operation": "scale", "kind": "deploy", "name": "web"}),
            json!({"operation": "apply", "manifests": "kind: ConfigMap"}),
            json!({"operation": "apply", "manifests": M.replace("name: a", "name: a\n  namespace: x"), "namespace": "y"}),
            json!({"operation": "label", "kind": "pods", "name": "p", "labels": "nonsense"}),
        ] {
            assert!(plan(bad.clone()).is_err(), "{bad}");
        }
    }
}
