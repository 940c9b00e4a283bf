//! The `argocd` tool, native over the Kubernetes API through Argo CD's CRDs (no argocd CLI or
//! API server needed), modelled on [`super::flux`].
//!
//! - `status` (read_only): Applications with sync status, health, revision, automated sync and
//!   the last operation's phase; or one Application in detail (conditions, unhealthy resources).
//! - `sync` (mutating; `dry_run: true` first): sets the Application's `operation` field the way
//!   Argo CD's API server does for `argocd app sync` (`initiatedBy` + `sync.revision/prune`); the
//!   application controller picks it up and reports `status.operationState`.
//! - `suspend` / `resume` (mutating; dry-run first): Argo CD has no suspend flag; automated sync
//!   is turned off by removing `spec.syncPolicy.automated`, kept in the annotation
//!   `bosun.dev/suspended-automated` so `resume` restores exactly what was there.
//! - `render` / `create` (read_only / workspace write): an `Application` or `AppProject`, checked
//!   by a server dry-run; `create` writes it into the GitOps clone in the workspace (commit and
//!   push it with git), as flux `create` does.

use super::flux::{in_workspace, safe_relative, server_check};
use super::k8s::{self, change_hash, kube_err};
use super::{Change, Invocation, Scope, Tool, ToolCtx, ToolError};
use crate::compact::{self, Row};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::kube_client::Cluster;
use futures::future::BoxFuture;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

pub const NAME: &str = "argocd";

/// Where a suspended Application's automated sync policy is kept.
pub const SUSPENDED: &str = "bosun.dev/suspended-automated";

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("status", EffectClass::ReadOnly),
    ("render", EffectClass::ReadOnly),
    ("create", EffectClass::ReadOnly),
    ("sync", EffectClass::Mutating),
    ("suspend", EffectClass::Mutating),
    ("resume", EffectClass::Mutating),
];

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Status,
    Render,
    Create,
    Sync,
    Suspend,
    Resume,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Render => "render",
            Self::Create => "create",
            Self::Sync => "sync",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
        }
    }
}

// Arguments of the argocd tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    operation: Operation,
    /// Application (default) or AppProject (render/create).
    kind: Option<String>,
    name: Option<String>,
    /// Where Argo CD's objects live (default argocd).
    namespace: Option<String>,
    context: Option<String>,
    /// sync/suspend/resume: true = server-side dry-run, needed first.
    dry_run: Option<bool>,
    /// create: .yaml path in the GitOps clone.
    file: Option<String>,
    repo_url: Option<String>,
    /// Application: path in the repo.
    path: Option<String>,
    /// Application: branch/tag/commit; sync: revision to sync to.
    revision: Option<String>,
    dest_namespace: Option<String>,
    /// Application: AppProject (default `default`).
    project: Option<String>,
    /// Application: automated sync (with prune and self-heal).
    automated: Option<bool>,
    /// sync: delete what the source no longer has.
    prune: Option<bool>,
    #[schemars(skip)]
    timeout_seconds: Option<u64>,
}

/// The argocd tool.
pub struct ArgoCd {
    access: k8s::ClusterAccess,
    max_tokens: usize,
}

fn need<'a>(v: &'a Option<String>, what: &str, op: Operation) -> Result<&'a str, ToolError> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ToolError::InvalidArguments(format!("`{what}` is required for {}", op.as_str()))
        })
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// `Application` or `AppProject` (any case, plural or short name).
fn kind_of(k: Option<&str>) -> Result<(&'static str, &'static str), ToolError> {
    match k.map(|k| k.trim().to_ascii_lowercase()).as_deref() {
        None | Some("application" | "applications" | "app" | "apps") => {
            Ok(("Application", "applications"))
        }
        Some("appproject" | "appprojects" | "proj") => Ok(("AppProject", "appprojects")),
        Some(other) => Err(ToolError::InvalidArguments(format!(
            "`{other}` is not an Argo CD kind bosun handles; use Application or AppProject"
        ))),
    }
}

fn ar(kind: &str, plural: &str) -> ApiResource {
    k8s::ar("argoproj.io", "v1alpha1", kind, plural)
}

/// Build the manifest `render`/`create` produce.
fn render(a: &Args) -> Result<Value, ToolError> {
    let op = a.operation;
    let (kind, _) = kind_of(a.kind.as_deref())?;
    let name = need(&a.name, "name", op)?;
    let ns = a.namespace.clone().unwrap_or_else(|| "argocd".into());
    let meta = json!({"name": name, "namespace": ns});
    let dest = json!({"server": "https://kubernetes.default.svc",
        "namespace": need(&a.dest_namespace, "dest_namespace", op)?});
    Ok(match kind {
        "AppProject" => json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject", "metadata": meta,
            "spec": {"sourceRepos": [need(&a.repo_url, "repo_url", op)?], "destinations": [dest]},
        }),
        _ => {
            let mut spec = json!({
                "project": a.project.clone().unwrap_or_else(|| "default".into()),
                "source": {"repoURL": need(&a.repo_url, "repo_url", op)?,
                    "path": need(&a.path, "path", op)?,
                    "targetRevision": a.revision.clone().unwrap_or_else(|| "HEAD".into())},
                "destination": dest,
            });
            if a.automated == Some(true) {
                spec["syncPolicy"] = json!({"automated": {"prune": true, "selfHeal": true}});
            }
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": meta, "spec": spec})
        }
    })
}

fn status_row(o: &DynamicObject) -> Row {
    let d = &o.data;
    let sync = s(d, "/status/sync/status");
    let health = s(d, "/status/health/status");
    let automated = d.pointer("/spec/syncPolicy/automated").is_some();
    let suspended = o
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(SUSPENDED));
    let status = match (sync, health) {
        ("", "") => "Unknown".to_string(),
        (s, h) => format!(
            "{}/{}",
            if s.is_empty() { "?" } else { s },
            if h.is_empty() { "?" } else { h }
        ),
    };
    Row {
        healthy: sync == "Synced" && health == "Healthy",
        status: status.clone(),
        cells: vec![
            o.metadata.name.clone().unwrap_or_default(),
            status,
            compact::clip_line(s(d, "/status/sync/revision"), 12),
            if automated {
                "auto".into()
            } else if suspended {
                "suspended".into()
            } else {
                "manual".into()
            },
            s(d, "/status/operationState/phase").to_string(),
            compact::clip_line(s(d, "/status/operationState/message"), 80),
        ],
    }
}

fn detail(o: &DynamicObject) -> String {
    let d = &o.data;
    let name = o.metadata.name.clone().unwrap_or_default();
    let mut out = format!(
        "Application {name}: sync {} at {}, health {}\nsource: {} {} @ {}\ndestination: {}\n",
        or_unknown(s(d, "/status/sync/status")),
        or_unknown(s(d, "/status/sync/revision")),
        or_unknown(s(d, "/status/health/status")),
        s(d, "/spec/source/repoURL"),
        s(d, "/spec/source/path"),
        s(d, "/spec/source/targetRevision"),
        s(d, "/spec/destination/namespace"),
    );
    out.push_str(&format!(
        "sync policy: {}\n",
        match d.pointer("/spec/syncPolicy/automated") {
            Some(a) => format!("automated {a}"),
            None => "manual".into(),
        }
    ));
    if let Some(op) = d.get("operation") {
        out.push_str(&format!(
            "requested operation (not yet taken by the controller): {op}\n"
        ));
    }
    if let Some(st) = d.pointer("/status/operationState") {
        out.push_str(&format!(
            "last operation: {} {}\n",
            s(st, "/phase"),
            s(st, "/message")
        ));
    }
    for c in d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "condition {}: {}\n",
            s(c, "/type"),
            s(c, "/message")
        ));
    }
    let bad: Vec<String> = d
        .pointer("/status/resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| s(r, "/health/status") != "Healthy" || s(r, "/status") != "Synced")
        .map(|r| {
            format!(
                "{} {}/{}: {} {}",
                s(r, "/kind"),
                s(r, "/namespace"),
                s(r, "/name"),
                s(r, "/status"),
                s(r, "/health/status")
            )
        })
        .collect();
    if !bad.is_empty() {
        out.push_str(&format!(
            "resources not synced or not healthy:\n  {}\n",
            bad.join("\n  ")
        ));
    }
    out
}

fn or_unknown(v: &str) -> &str {
    if v.is_empty() {
        "Unknown"
    } else {
        v
    }
}

impl ArgoCd {
    pub fn new(kubeconfig: Option<PathBuf>, default_context: Option<String>) -> Self {
        Self {
            access: k8s::ClusterAccess::new(kubeconfig, default_context),
            max_tokens: compact::DEFAULT_RESULT_TOKENS,
        }
    }

    fn parse(args: &Value) -> Result<Args, ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let op = a.operation;
        match op {
            Operation::Status => {
                kind_of(a.kind.as_deref())?;
            }
            Operation::Render | Operation::Create => {
                render(&a)?;
                if op == Operation::Create {
                    safe_relative(need(&a.file, "file", op)?)?;
                }
            }
            Operation::Sync | Operation::Suspend | Operation::Resume => {
                if kind_of(a.kind.as_deref())?.0 != "Application" {
                    return Err(ToolError::InvalidArguments(format!(
                        "{} works on an Application",
                        op.as_str()
                    )));
                }
                need(&a.name, "name", op)?;
            }
        }
        Ok(a)
    }

    fn namespace(a: &Args) -> String {
        a.namespace.clone().unwrap_or_else(|| "argocd".into())
    }

    async fn run(&self, a: Args, ctx: &ToolCtx) -> Result<String, ToolError> {
        let ns = Self::namespace(&a);
        if matches!(a.operation, Operation::Render | Operation::Create) {
            let obj = render(&a)?;
            let yaml = compact::to_yaml(&obj);
            let check = match self.access.cluster(a.context.as_deref()).await {
                Ok(cluster) => server_check(&cluster, &obj).await?,
                Err(e) => format!("not checked by a server ({e})"),
            };
            if a.operation == Operation::Render {
                return Ok(format!("{yaml}---\n# {check}; nothing written\n"));
            }
            let rel = in_workspace(
                &safe_relative(a.file.as_deref().unwrap_or(""))?,
                &ctx.workspace,
            )?;
            let existed =
                super::confined::Root::open(&ctx.workspace)?.write(&rel, yaml.as_bytes(), 0o644)?;
            return Ok(format!(
                "{} {} ({check}). Commit and push it with the git tool; Argo CD picks it up from the repo that manages its Applications.\n{yaml}",
                if existed { "Replaced" } else { "Wrote" },
                rel.display()
            ));
        }
        let cluster = self.access.cluster(a.context.as_deref()).await?;
        let (kind, plural) = kind_of(a.kind.as_deref())?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), &ns, &ar(kind, plural));
        match a.operation {
            Operation::Status => self.status(&cluster, &api, &a, &ns).await,
            _ => change(&cluster, &api, &a, &ns).await,
        }
    }

    async fn status(
        &self,
        cluster: &Cluster,
        api: &Api<DynamicObject>,
        a: &Args,
        ns: &str,
    ) -> Result<String, ToolError> {
        if let Some(name) = &a.name {
            let o = api
                .get(name)
                .await
                .map_err(|e| kube_err(e, &cluster.context))?;
            return Ok(compact::fit_budget(&detail(&o), self.max_tokens));
        }
        let items = api
            .list(&ListParams::default())
            .await
            .map_err(|e| {
                ToolError::Failed(format!(
                    "listing Argo CD Applications in {ns} (are the Argo CD CRDs installed?): {}",
                    kube_err(e, &cluster.context)
                ))
            })?
            .items;
        if items.is_empty() {
            return Ok(format!(
                "No Argo CD Applications in namespace {ns} (context {}).\n",
                cluster.context
            ));
        }
        let rows: Vec<Row> = items.iter().map(status_row).collect();
        Ok(compact::summarise_table(
            &format!(
                "{} Applications in namespace {ns} (context {})",
                rows.len(),
                cluster.context
            ),
            &[
                "NAME",
                "SYNC/HEALTH",
                "REVISION",
                "SYNC POLICY",
                "LAST OP",
                "MESSAGE",
            ],
            rows,
            self.max_tokens,
            "name one Application for its details",
        ))
    }
}

/// `sync`, `suspend` or `resume` one Application (a server-side dry-run when asked).
async fn change(
    cluster: &Cluster,
    api: &Api<DynamicObject>,
    a: &Args,
    ns: &str,
) -> Result<String, ToolError> {
    let name = a.name.clone().unwrap_or_default();
    let dry = a.dry_run == Some(true);
    let o = api
        .get(&name)
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let id = format!("Application {ns}/{name}");
    let (patch, said) = match a.operation {
        Operation::Sync => {
            if let Some(op) = o.data.get("operation") {
                return Err(ToolError::Failed(format!(
                    "{id} already has an operation waiting for the controller: {op}; check argocd status first"
                )));
            }
            let mut sync = json!({"syncStrategy": {"hook": {}}});
            if let Some(r) = &a.revision {
                sync["revision"] = json!(r);
            }
            if a.prune == Some(true) {
                sync["prune"] = json!(true);
            }
            (
                json!({"operation": {"initiatedBy": {"username": "bosun"}, "sync": sync}}),
                "sync requested (operation set); the Argo CD controller runs it and reports status.operationState — check with argocd status".to_string(),
            )
        }
        Operation::Suspend => {
            let Some(auto) = o.data.pointer("/spec/syncPolicy/automated") else {
                return Err(ToolError::Failed(format!(
                    "{id} has no automated sync to suspend"
                )));
            };
            (
                json!({"metadata": {"annotations": {SUSPENDED: auto.to_string()}},
                    "spec": {"syncPolicy": {"automated": null}}}),
                "automated sync suspended (spec.syncPolicy.automated removed, kept for resume)"
                    .to_string(),
            )
        }
        _ => {
            let kept = o
                .metadata
                .annotations
                .as_ref()
                .and_then(|m| m.get(SUSPENDED))
                .and_then(|t| serde_json::from_str::<Value>(t).ok())
                .ok_or_else(|| {
                    ToolError::Failed(format!(
                        "{id} was not suspended by bosun (no {SUSPENDED} annotation); nothing to resume"
                    ))
                })?;
            (
                json!({"metadata": {"annotations": {SUSPENDED: null}},
                    "spec": {"syncPolicy": {"automated": kept}}}),
                "automated sync resumed as it was before the suspend".to_string(),
            )
        }
    };
    let pp = PatchParams {
        dry_run: dry,
        field_manager: Some("bosun".into()),
        ..Default::default()
    };
    api.patch(&name, &pp, &Patch::Merge(&patch))
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    Ok(format!(
        "{id}: {said}{}",
        if dry {
            " (dry-run: nothing changed)"
        } else {
            ""
        }
    ))
}

impl Tool for ArgoCd {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Argo CD through its CRDs: Application status and health, sync, suspend/resume of automated sync, and Application/AppProject manifests for the GitOps repo."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let a = Self::parse(args)?;
        let (ctx, _) = self.access.defaults(a.context.as_deref(), None);
        let ctx_s = ctx.clone().unwrap_or_else(|| "(current)".into());
        let ns = Self::namespace(&a);
        let (kind, _) = kind_of(a.kind.as_deref())?;
        let name = a.name.clone().unwrap_or_default();
        let scope = Scope {
            context: ctx,
            namespace: Some(ns.clone()),
            kinds: vec![kind.into()],
            objects: match a.operation {
                Operation::Sync | Operation::Suspend | Operation::Resume => {
                    vec![super::ObjectRef {
                        group: "argoproj.io".into(),
                        kind: kind.into(),
                        namespace: Some(ns.clone()),
                        name: name.clone(),
                    }]
                }
                _ => Vec::new(),
            },
        };
        let op = a.operation;
        match op {
            Operation::Status | Operation::Render | Operation::Create => {
                let what = if name.is_empty() {
                    format!("{kind}s in namespace {ns}")
                } else {
                    format!("{kind} {ns}/{name}")
                };
                let t = match &a.file {
                    Some(f) if op == Operation::Create => format!("{what} into workspace file {f}"),
                    _ => format!("{what} (context {ctx_s})"),
                };
                Ok(Invocation::read(op.as_str(), t).with_scope(scope))
            }
            Operation::Sync | Operation::Suspend | Operation::Resume => {
                let dry_run = a.dry_run == Some(true);
                let human = format!("{} Application {ns}/{name} (context {ctx_s})", op.as_str());
                Ok(Invocation {
                    min_effect: None,
                    operation: op.as_str().into(),
                    target: if dry_run {
                        format!("dry-run: {human}")
                    } else {
                        human
                    },
                    change: Some(Change {
                        target: format!("context={ctx_s} namespace={ns} Application/{name}"),
                        content_hash: change_hash(json!({"op": op.as_str(), "name": name,
                            "revision": a.revision, "prune": a.prune.unwrap_or(false)})),
                        dry_run_hint: format!(
                            "call argocd {} with the same arguments and dry_run: true",
                            op.as_str()
                        ),
                    }),
                    dry_run,
                    scope,
                })
            }
        }
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let a = Self::parse(&call.args)?;
            let secs = a.timeout_seconds.unwrap_or(60).clamp(1, 600);
            tokio::time::timeout(Duration::from_secs(secs), self.run(a, ctx))
                .await
                .map_err(|_| ToolError::Timeout(secs))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(v: Value) -> Result<Invocation, ToolError> {
        ArgoCd::new(Some("/nonexistent".into()), Some("dev".into())).plan(&v)
    }

    #[test]
    fn sync_and_its_dry_run_share_a_change_and_a_revision_is_another() {
        let real = plan(json!({"operation": "sync", "name": "web"})).expect("plan");
        let dry = plan(json!({"operation": "sync", "name": "web", "dry_run": true})).expect("plan");
        assert_eq!(real.change, dry.change);
        let other =
            plan(json!({"operation": "sync", "name": "web", "revision": "v2"})).expect("plan");
        assert_ne!(other.change, real.change);
        assert!(plan(json!({"operation": "sync", "kind": "AppProject", "name": "p"})).is_err());
    }

    #[test]
    fn render_builds_an_application_with_automated_sync() {
        let a = ArgoCd::parse(
            &json!({"operation": "render", "name": "web", "repo_url": "https://git.example/r.git",
            "path": "apps/web/overlays/dev", "dest_namespace": "shop", "automated": true}),
        )
        .expect("args");
        let o = render(&a).expect("render");
        assert_eq!(o["spec"]["source"]["path"], "apps/web/overlays/dev");
        assert_eq!(o["spec"]["syncPolicy"]["automated"]["prune"], true);
        assert_eq!(o["metadata"]["namespace"], "argocd");
    }
}
