//! The `flux` tool, native over the Kubernetes API (no flux binary needed).
//!
//! - `status` (read_only): every Flux object (GitRepository, OCIRepository, HelmRepository,
//!   HelmChart, Kustomization, HelmRelease) with Ready, reason, revision, suspended; or one
//!   object in detail with its conditions and events.
//! - `reconcile` (mutating): set `reconcile.fluxcd.io/requestedAt` (optionally on the source
//!   first) and wait, with a timeout, until the controller reports it in
//!   `status.lastHandledReconcileAt`.
//! - `suspend` / `resume` (mutating): `spec.suspend`; resume also requests a reconcile and waits.
//! - `render` / `create` (read_only: they touch only the session's workspace): a GitRepository,
//!   HelmRepository, Kustomization or HelmRelease manifest, checked by the API server with a
//!   dry-run when a cluster is reachable; `create` writes it as a file into the GitOps checkout
//!   in the workspace — GitOps is the preferred path, the git tool commits it.

use super::confined::{self, Root};
use super::k8s::{self, change_hash, condition, kube_err, list_all, ClusterAccess};
use super::{Change, Invocation, Scope, Tool, ToolCtx, ToolError};
use crate::compact::{self, Row};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::kube_client::{is_namespaced, Cluster};
use futures::future::BoxFuture;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const NAME: &str = "flux";

/// Where `git open` clones, relative to the workspace; `create` writes only below it.
const GITOPS_DIR: &str = "gitops";

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("status", EffectClass::ReadOnly),
    ("render", EffectClass::ReadOnly),
    ("create", EffectClass::ReadOnly),
    ("reconcile", EffectClass::Mutating),
    ("suspend", EffectClass::Mutating),
    ("resume", EffectClass::Mutating),
];

/// The annotation that asks a Flux controller to reconcile now.
pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";

/// Flux kinds: Kind, group, plural.
const KINDS: &[(&str, &str, &str)] = &[
    (
        "GitRepository",
        "source.toolkit.fluxcd.io",
        "gitrepositories",
    ),
    (
        "OCIRepository",
        "source.toolkit.fluxcd.io",
        "ocirepositories",
    ),
    (
        "HelmRepository",
        "source.toolkit.fluxcd.io",
        "helmrepositories",
    ),
    ("HelmChart", "source.toolkit.fluxcd.io", "helmcharts"),
    (
        "Kustomization",
        "kustomize.toolkit.fluxcd.io",
        "kustomizations",
    ),
    ("HelmRelease", "helm.toolkit.fluxcd.io", "helmreleases"),
];

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Status,
    Render,
    Create,
    Reconcile,
    Suspend,
    Resume,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Render => "render",
            Self::Create => "create",
            Self::Reconcile => "reconcile",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
        }
    }
}

// Arguments of the flux tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    operation: Operation,
    /// GitRepository, OCIRepository, HelmRepository, HelmChart, Kustomization or HelmRelease; status: null = all.
    kind: Option<String>,
    name: Option<String>,
    /// render/create default: flux-system.
    namespace: Option<String>,
    all_namespaces: Option<bool>,
    context: Option<String>,
    /// reconcile: the source first.
    with_source: Option<bool>,
    /// reconcile/suspend/resume: true = server-side dry-run, needed first.
    dry_run: Option<bool>,
    timeout_seconds: Option<u64>,
    /// create: .yaml path in the GitOps clone `git open` printed (absolute, or relative to the workspace).
    file: Option<String>,
    /// GitRepository/HelmRepository (oci:// for OCI).
    url: Option<String>,
    /// GitRepository.
    branch: Option<String>,
    interval: Option<String>,
    /// Kustomization: path in the source.
    path: Option<String>,
    /// Kustomization/HelmRelease.
    source_kind: Option<String>,
    /// Kustomization/HelmRelease.
    source_name: Option<String>,
    /// Kustomization/HelmRelease.
    target_namespace: Option<String>,
    /// Kustomization.
    prune: Option<bool>,
    /// HelmRelease.
    chart: Option<String>,
    /// HelmRelease: pin it.
    version: Option<String>,
    /// HelmRelease: YAML; secrets only as vault references or valuesFrom.
    values: Option<String>,
}

/// The flux tool.
pub struct Flux {
    access: ClusterAccess,
    max_tokens: usize,
}

fn kind_of(s: &str) -> Result<&'static (&'static str, &'static str, &'static str), ToolError> {
    let c = k8s::canonical_kind(s);
    let l = s.trim().to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(k, _, p)| *k == c || *p == l || k.eq_ignore_ascii_case(&l))
        .ok_or_else(|| {
            ToolError::InvalidArguments(format!(
                "`{s}` is not a Flux kind; use one of {}",
                KINDS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
            ))
        })
}

fn need<'a>(v: &'a Option<String>, what: &str, op: &str) -> Result<&'a str, ToolError> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ToolError::InvalidArguments(format!("`{what}` is required for {op}")))
}

impl Flux {
    pub fn new(kubeconfig: Option<PathBuf>, default_context: Option<String>) -> Self {
        Self {
            access: ClusterAccess::new(kubeconfig, default_context),
            max_tokens: compact::DEFAULT_RESULT_TOKENS,
        }
    }

    fn parse(args: &Value) -> Result<Args, ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let op = a.operation.as_str();
        match a.operation {
            Operation::Status => {
                if let Some(k) = &a.kind {
                    kind_of(k)?;
                }
                if a.name.is_some() && a.kind.is_none() {
                    return Err(ToolError::InvalidArguments(
                        "status of one object needs its `kind` too".into(),
                    ));
                }
            }
            Operation::Reconcile | Operation::Suspend | Operation::Resume => {
                kind_of(need(&a.kind, "kind", op)?)?;
                need(&a.name, "name", op)?;
            }
            Operation::Render | Operation::Create => {
                render(&a)?;
                if a.operation == Operation::Create {
                    safe_relative(need(&a.file, "file", op)?)?;
                }
            }
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
        let deadline = Instant::now() + Duration::from_secs(secs);
        match a.operation {
            Operation::Render | Operation::Create => return self.render_or_create(&a, ctx).await,
            _ => {}
        }
        let cluster = self.cluster(&a).await?;
        let ns = a
            .namespace
            .clone()
            .unwrap_or_else(|| cluster.default_namespace.clone());
        match a.operation {
            Operation::Status => self.status(&cluster, &a, &ns).await,
            Operation::Reconcile => reconcile(&cluster, &a, &ns, deadline).await,
            Operation::Suspend | Operation::Resume => suspend(&cluster, &a, &ns, deadline).await,
            Operation::Render | Operation::Create => Err(ToolError::Failed("unreachable".into())),
        }
    }

    async fn status(&self, cluster: &Cluster, a: &Args, ns: &str) -> Result<String, ToolError> {
        let all_ns = a.all_namespaces == Some(true);
        if let (Some(k), Some(name)) = (&a.kind, &a.name) {
            let (ar, namespaced) = flux_ar(cluster, kind_of(k)?).await?;
            let api = k8s::api(cluster, &ar, namespaced, ns);
            let o = api
                .get(name)
                .await
                .map_err(|e| kube_err(e, &cluster.context))?;
            return Ok(detail(cluster, &ar, ns, &o, self.max_tokens).await);
        }
        let kinds: Vec<&(&str, &str, &str)> = match &a.kind {
            Some(k) => vec![kind_of(k)?],
            None => KINDS.iter().collect(),
        };
        let mut rows = Vec::new();
        let mut missing = Vec::new();
        for k in kinds {
            let (ar, namespaced) = match flux_ar(cluster, k).await {
                Ok(x) => x,
                Err(_) => {
                    missing.push(k.0);
                    continue;
                }
            };
            let api: Api<DynamicObject> = if all_ns || !namespaced {
                Api::all_with(cluster.client.clone(), &ar)
            } else {
                Api::namespaced_with(cluster.client.clone(), ns, &ar)
            };
            for o in list_all(&api, ListParams::default(), 10_000, &cluster.context).await? {
                rows.push(status_row(k.0, &o, all_ns));
            }
        }
        let where_ = if all_ns {
            "in all namespaces".to_string()
        } else {
            format!("in namespace {ns}")
        };
        let mut out = if rows.is_empty() {
            format!("No Flux objects {where_} (context {}).\n", cluster.context)
        } else {
            let mut header = vec!["KIND"];
            if all_ns {
                header.push("NAMESPACE");
            }
            header.extend([
                "NAME",
                "READY",
                "REASON",
                "REVISION",
                "SUSPENDED",
                "AGE",
                "MESSAGE",
            ]);
            compact::summarise_table(
                &format!(
                    "{} Flux objects {where_} (context {})",
                    rows.len(),
                    cluster.context
                ),
                &header,
                rows,
                self.max_tokens,
                "narrow it: a kind, a namespace, or kind + name for details",
            )
        };
        if !missing.is_empty() {
            out.push_str(&format!(
                "not served by this cluster (Flux CRDs missing?): {}\n",
                missing.join(", ")
            ));
        }
        Ok(out)
    }

    async fn render_or_create(&self, a: &Args, ctx: &ToolCtx) -> Result<String, ToolError> {
        let obj = render(a)?;
        let yaml = compact::to_yaml(&obj);
        // ask the API server (dry-run) whether the object is valid, when a cluster is reachable
        let check = match self.cluster(a).await {
            Ok(cluster) => server_check(&cluster, &obj).await,
            Err(e) => Ok(format!("not checked by a server ({e})")),
        };
        let check = check?;
        if a.operation == Operation::Render {
            return Ok(format!("{yaml}---\n# {check}; nothing written\n"));
        }
        let rel = in_workspace(
            &safe_relative(a.file.as_deref().unwrap_or(""))?,
            &ctx.workspace,
        )?;
        // written through a handle on the workspace: no symlink is followed at any depth and
        // no directory is created before a bad component is met
        let existed = Root::open(&ctx.workspace)?.write(&rel, yaml.as_bytes(), 0o644)?;
        Ok(format!(
            "{} {} ({} {}/{}; {check}). Commit and push it with the git tool, then flux reconcile the Kustomization that includes it.\n{yaml}",
            if existed { "replaced" } else { "wrote" },
            rel.display(),
            obj["kind"].as_str().unwrap_or(""),
            obj["metadata"]["namespace"].as_str().unwrap_or(""),
            obj["metadata"]["name"].as_str().unwrap_or(""),
        ))
    }
}

/// A `.yaml` path without `..` components: relative to the workspace, or absolute (then it must
/// lie inside the workspace — e.g. inside the clone `git open` printed). Argument parsing only:
/// the write itself is confined by `confined::Root`.
fn safe_relative(p: &str) -> Result<PathBuf, ToolError> {
    let path = Path::new(p.trim());
    let ok = !p.trim().is_empty()
        && path.components().all(|c| {
            matches!(
                c,
                Component::Normal(_) | Component::CurDir | Component::RootDir
            )
        });
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    if !ok || !yaml {
        return Err(ToolError::InvalidArguments(format!(
            "`file` must be a relative .yaml path inside the workspace (no `..`), or an absolute one inside it such as the clone `git open` printed + `/clusters/dev/minio/helmrelease.yaml`; got `{p}`"
        )));
    }
    Ok(path.to_path_buf())
}

/// `file` as a path relative to the workspace, inside its `gitops/` directory (where `git open`
/// clones).
fn in_workspace(file: &Path, workspace: &Path) -> Result<PathBuf, ToolError> {
    let rel = if file.is_absolute() {
        let canonical = workspace.canonicalize().ok();
        file.strip_prefix(workspace)
            .ok()
            .or_else(|| canonical.as_deref().and_then(|c| file.strip_prefix(c).ok()))
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                ToolError::InvalidArguments(format!(
                    "`{}` is outside the workspace {}; write inside the GitOps clone `git open` printed",
                    file.display(),
                    workspace.display()
                ))
            })?
    } else {
        file.to_path_buf()
    };
    let rel = confined::relative(&rel.to_string_lossy())?;
    if !rel.starts_with(GITOPS_DIR) {
        return Err(ToolError::InvalidArguments(format!(
            "`{}` is not in the workspace's GitOps directory: write inside the clone `git open` printed ({}/{GITOPS_DIR}/…)",
            file.display(),
            workspace.display()
        )));
    }
    Ok(rel)
}

/// The served resource of a Flux kind (whatever version the installed CRDs recommend).
async fn flux_ar(
    cluster: &Cluster,
    k: &(&str, &str, &str),
) -> Result<(ApiResource, bool), ToolError> {
    cluster
        .lookup(|all| {
            all.iter()
                .find(|(ar, _)| ar.group == k.1 && ar.kind == k.0)
                .map(|(ar, caps)| (ar.clone(), is_namespaced(caps)))
        })
        .await
        .map_err(k8s::failed)?
        .ok_or_else(|| {
            ToolError::Failed(format!(
                "the cluster does not serve {} ({}): are the Flux CRDs installed?",
                k.0, k.1
            ))
        })
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// The revision a Flux object last applied or fetched.
fn revision(d: &Value) -> String {
    for p in [
        "/status/lastAppliedRevision",
        "/status/artifact/revision",
        "/status/history/0/chartVersion",
        "/status/lastAttemptedRevision",
    ] {
        let r = s(d, p);
        if !r.is_empty() {
            return r.to_string();
        }
    }
    "-".into()
}

fn status_row(kind: &str, o: &DynamicObject, all_ns: bool) -> Row {
    let d = &o.data;
    let suspended = d.pointer("/spec/suspend") == Some(&Value::Bool(true));
    let (ready, reason, msg) = match condition(d, "Ready") {
        Some(c) => (s(c, "/status"), s(c, "/reason"), s(c, "/message")),
        None => ("Unknown", "", "no Ready condition yet (not reconciled)"),
    };
    let status = if suspended {
        "Suspended".to_string()
    } else {
        match ready {
            "True" => "Ready".into(),
            "False" => "NotReady".into(),
            _ => "Unknown".into(),
        }
    };
    let mut cells = vec![kind.to_string()];
    if all_ns {
        cells.push(o.metadata.namespace.clone().unwrap_or_default());
    }
    cells.extend([
        o.metadata.name.clone().unwrap_or_default(),
        ready.to_string(),
        reason.to_string(),
        compact::clip_line(&revision(d), 40),
        if suspended { "yes" } else { "no" }.to_string(),
        o.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| k8s::age(t.0))
            .unwrap_or_else(|| "-".into()),
        compact::clip_line(msg, 160),
    ]);
    Row {
        healthy: status == "Ready",
        status,
        cells,
    }
}

async fn detail(
    cluster: &Cluster,
    ar: &ApiResource,
    ns: &str,
    o: &DynamicObject,
    budget: usize,
) -> String {
    let d = &o.data;
    let name = o.metadata.name.clone().unwrap_or_default();
    let row = status_row(&ar.kind, o, false);
    let generation = o.metadata.generation.unwrap_or(0);
    let observed = d
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(-1);
    let mut out = format!(
        "{} {ns}/{name} (context {}): {}{}\n",
        ar.kind,
        cluster.context,
        row.status,
        match condition(d, "Ready") {
            Some(c) => format!(
                " — Ready={} {}: {}",
                s(c, "/status"),
                s(c, "/reason"),
                s(c, "/message")
            ),
            None => " — no Ready condition yet".into(),
        }
    );
    out.push_str(&format!(
        "suspended: {} · generation {generation}, observed {}{}\n",
        if d.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
            "yes"
        } else {
            "no"
        },
        if observed < 0 {
            "never".to_string()
        } else {
            observed.to_string()
        },
        if observed < generation {
            " (the latest spec is not reconciled yet)"
        } else {
            ""
        }
    ));
    out.push_str(&format!("revision: {}\n", revision(d)));
    let spec_bits: Vec<String> = [
        ("url", "/spec/url"),
        ("branch", "/spec/ref/branch"),
        ("path", "/spec/path"),
        ("source", "/spec/sourceRef/name"),
        ("chart", "/spec/chart/spec/chart"),
        ("version", "/spec/chart/spec/version"),
        ("chart source", "/spec/chart/spec/sourceRef/name"),
        ("target namespace", "/spec/targetNamespace"),
        ("interval", "/spec/interval"),
    ]
    .iter()
    .filter(|(_, p)| !s(d, p).is_empty())
    .map(|(n, p)| format!("{n} {}", s(d, p)))
    .collect();
    if !spec_bits.is_empty() {
        out.push_str(&format!("spec: {}\n", spec_bits.join(" · ")));
    }
    let requested = o
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTED_AT))
        .cloned();
    let handled = s(d, "/status/lastHandledReconcileAt");
    if requested.is_some() || !handled.is_empty() {
        out.push_str(&format!(
            "reconcile requested: {} · handled: {}\n",
            requested.as_deref().unwrap_or("-"),
            if handled.is_empty() { "-" } else { handled }
        ));
    }
    let conds: Vec<Vec<String>> = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    vec![
                        s(c, "/type").to_string(),
                        s(c, "/status").to_string(),
                        s(c, "/reason").to_string(),
                        compact::clip_line(s(c, "/message"), 200),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if !conds.is_empty() {
        out.push_str(&super::table::render(
            &["CONDITION", "STATUS", "REASON", "MESSAGE"],
            &conds,
            20,
        ));
    }
    let uid = o.metadata.uid.clone().unwrap_or_default();
    let evs = k8s::events(
        cluster,
        Some(ns),
        Some(&format!("involvedObject.uid={uid}")),
    )
    .await
    .unwrap_or_default();
    if !evs.is_empty() {
        out.push_str(&k8s::render_events(
            &format!("events ({})", evs.len()),
            evs,
            false,
            budget / 3,
        ));
    }
    compact::fit_budget(&out, budget)
}

/// The source an object reconciles from: (Kind, name, namespace).
fn source_of(o: &DynamicObject, ns: &str) -> Option<(String, String, String)> {
    let d = &o.data;
    let r = d
        .pointer("/spec/sourceRef")
        .or_else(|| d.pointer("/spec/chart/spec/sourceRef"))
        .or_else(|| d.pointer("/spec/chartRef"))?;
    Some((
        s(r, "/kind").to_string(),
        s(r, "/name").to_string(),
        r.get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(ns)
            .to_string(),
    ))
}

/// Request a reconcile of one object and wait for the controller to handle it.
async fn request_and_wait(
    cluster: &Cluster,
    ar: &ApiResource,
    namespaced: bool,
    ns: &str,
    name: &str,
    dry: bool,
    deadline: Instant,
) -> Result<String, ToolError> {
    let api = k8s::api(cluster, ar, namespaced, ns);
    let before = api
        .get(name)
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let token = k8s::now_rfc3339();
    let patch = json!({"metadata": {"annotations": {REQUESTED_AT: token}}});
    let pp = PatchParams {
        dry_run: dry,
        field_manager: Some("bosun".into()),
        ..Default::default()
    };
    api.patch(name, &pp, &Patch::Merge(&patch))
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let id = format!("{} {ns}/{name}", ar.kind);
    if dry {
        return Ok(format!(
            "{id}: a reconcile request would be accepted (dry-run: nothing changed){}",
            if before.data.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
                "; note: it is suspended, resume it first"
            } else {
                ""
            }
        ));
    }
    let started = Instant::now();
    loop {
        let o = api
            .get(name)
            .await
            .map_err(|e| kube_err(e, &cluster.context))?;
        let handled = s(&o.data, "/status/lastHandledReconcileAt").to_string();
        let ready = condition(&o.data, "Ready");
        let ready_status = ready.map(|c| s(c, "/status")).unwrap_or("Unknown");
        if handled == token && ready_status != "Unknown" {
            let c = ready.cloned().unwrap_or(Value::Null);
            let line = format!(
                "{id}: reconciled in {} s — Ready={} {}: {} (revision {})",
                started.elapsed().as_secs(),
                s(&c, "/status"),
                s(&c, "/reason"),
                s(&c, "/message"),
                revision(&o.data)
            );
            return if ready_status == "True" {
                Ok(line)
            } else {
                Err(ToolError::Failed(format!("reconciliation failed: {line}")))
            };
        }
        if Instant::now() + Duration::from_secs(1) > deadline {
            return Err(ToolError::Failed(format!(
                "{id}: reconcile requested at {token} ({REQUESTED_AT} is set), but {} within {} s (lastHandledReconcileAt: {}). Is the Flux controller for {} running? Check flux status and the controller's logs",
                if handled == token { "Ready did not settle" } else { "the controller did not handle it" },
                started.elapsed().as_secs(),
                if handled.is_empty() { "never" } else { handled.as_str() },
                ar.kind
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn reconcile(
    cluster: &Cluster,
    a: &Args,
    ns: &str,
    deadline: Instant,
) -> Result<String, ToolError> {
    let k = kind_of(a.kind.as_deref().unwrap_or(""))?;
    let name = a.name.clone().unwrap_or_default();
    let (ar, namespaced) = flux_ar(cluster, k).await?;
    let dry = a.dry_run == Some(true);
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let o = api
        .get(&name)
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    if !dry && o.data.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
        return Err(ToolError::Failed(format!(
            "{} {ns}/{name} is suspended; resume it (flux resume) instead of reconciling",
            ar.kind
        )));
    }
    let mut lines = Vec::new();
    if a.with_source == Some(true) {
        let Some((sk, sn, sns)) = source_of(&o, ns) else {
            return Err(ToolError::Failed(format!(
                "{} {ns}/{name} has no sourceRef to reconcile",
                ar.kind
            )));
        };
        let sk = kind_of(&sk)?;
        let (sar, snamespaced) = flux_ar(cluster, sk).await?;
        lines.push(request_and_wait(cluster, &sar, snamespaced, &sns, &sn, dry, deadline).await?);
    }
    lines.push(request_and_wait(cluster, &ar, namespaced, ns, &name, dry, deadline).await?);
    Ok(lines.join("\n"))
}

async fn suspend(
    cluster: &Cluster,
    a: &Args,
    ns: &str,
    deadline: Instant,
) -> Result<String, ToolError> {
    let k = kind_of(a.kind.as_deref().unwrap_or(""))?;
    let name = a.name.clone().unwrap_or_default();
    let (ar, namespaced) = flux_ar(cluster, k).await?;
    let dry = a.dry_run == Some(true);
    let suspend = a.operation == Operation::Suspend;
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let pp = PatchParams {
        dry_run: dry,
        field_manager: Some("bosun".into()),
        ..Default::default()
    };
    api.patch(
        &name,
        &pp,
        &Patch::Merge(json!({"spec": {"suspend": suspend}})),
    )
    .await
    .map_err(|e| kube_err(e, &cluster.context))?;
    let id = format!("{} {ns}/{name}", ar.kind);
    if suspend {
        return Ok(format!(
            "{id} suspended{}: Flux stops reconciling it until flux resume",
            if dry {
                " (dry-run: nothing changed)"
            } else {
                ""
            }
        ));
    }
    if dry {
        return Ok(format!(
            "{id} would be resumed and reconciled (dry-run: nothing changed)"
        ));
    }
    match request_and_wait(cluster, &ar, namespaced, ns, &name, false, deadline).await {
        Ok(line) => Ok(format!("{id} resumed; {line}")),
        Err(e) => Err(ToolError::Failed(format!(
            "{id} resumed (spec.suspend=false), but: {e}"
        ))),
    }
}

/// Validate a rendered object with a server-side dry-run create/apply.
async fn server_check(cluster: &Cluster, obj: &Value) -> Result<String, ToolError> {
    let api_version = s(obj, "/apiVersion");
    let kind = s(obj, "/kind");
    let (ar, namespaced) = match k8s::resolve_gvk(cluster, api_version, kind).await {
        Ok(x) => x,
        Err(e) => return Ok(format!("not checked by the server ({e})")),
    };
    let ns = s(obj, "/metadata/namespace");
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let pp = PatchParams {
        dry_run: true,
        field_manager: Some("bosun".into()),
        ..Default::default()
    };
    match api.patch(s(obj, "/metadata/name"), &pp, &Patch::Apply(obj)).await {
        Ok(_) => Ok(format!("valid for the {} CRD (server dry-run, context {})", ar.api_version, cluster.context)),
        Err(kube::Error::Api(e)) if e.code == 404 && e.message.contains("namespaces") => Ok(format!(
            "not checked by the server: namespace {ns} does not exist in context {}",
            cluster.context
        )),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(format!("not checked by the server (forbidden: {})", e.message)),
        Err(kube::Error::Api(e)) => Err(ToolError::Failed(format!(
            "the rendered {kind} is invalid for the cluster's Flux CRD: {} — fix the arguments and render again",
            e.message
        ))),
        Err(e) => Ok(format!("not checked by the server ({e})")),
    }
}

/// Build the manifest `render`/`create` produce.
fn render(a: &Args) -> Result<Value, ToolError> {
    let op = a.operation.as_str();
    let k = kind_of(need(&a.kind, "kind", op)?)?;
    let name = need(&a.name, "name", op)?;
    let ns = a.namespace.clone().unwrap_or_else(|| "flux-system".into());
    let interval = a.interval.clone().unwrap_or_else(|| "10m".into());
    let meta = json!({"name": name, "namespace": ns});
    let obj = match k.0 {
        "GitRepository" => json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": meta,
            "spec": {"interval": interval, "url": need(&a.url, "url", op)?,
                     "ref": {"branch": a.branch.clone().unwrap_or_else(|| "main".into())}}}),
        "HelmRepository" => {
            let url = need(&a.url, "url", op)?;
            let mut spec = json!({"interval": interval, "url": url});
            if url.starts_with("oci://") {
                spec["type"] = json!("oci");
            }
            json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "HelmRepository", "metadata": meta, "spec": spec})
        }
        "Kustomization" => {
            let mut spec = json!({"interval": interval,
                "path": a.path.clone().unwrap_or_else(|| "./".into()),
                "prune": a.prune.unwrap_or(true),
                "sourceRef": {"kind": a.source_kind.clone().unwrap_or_else(|| "GitRepository".into()),
                              "name": need(&a.source_name, "source_name", op)?}});
            if let Some(t) = &a.target_namespace {
                spec["targetNamespace"] = json!(t);
            }
            json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": meta, "spec": spec})
        }
        "HelmRelease" => {
            let version = need(&a.version, "version", op)?;
            let mut spec = json!({"interval": interval,
                "chart": {"spec": {"chart": need(&a.chart, "chart", op)?, "version": version,
                    "sourceRef": {"kind": a.source_kind.clone().unwrap_or_else(|| "HelmRepository".into()),
                                  "name": need(&a.source_name, "source_name", op)?}}},
                "install": {"remediation": {"retries": 3}},
                "upgrade": {"remediation": {"retries": 3}}});
            if let Some(t) = &a.target_namespace {
                spec["targetNamespace"] = json!(t);
            }
            if let Some(v) = a.values.as_deref().filter(|v| !v.trim().is_empty()) {
                let values: Value = serde_saphyr::from_str(v).map_err(|e| {
                    ToolError::InvalidArguments(format!(
                        "`values` is not valid YAML: {}",
                        e.to_string().lines().next().unwrap_or("")
                    ))
                })?;
                if !values.is_object() {
                    return Err(ToolError::InvalidArguments("`values` must be a YAML mapping".into()));
                }
                let lit = crate::blocks::literal_secret_paths(&values);
                if !lit.is_empty() {
                    return Err(ToolError::InvalidArguments(format!(
                        "values {} hold literal secrets; the GitOps repo must not: use `vault:` references or an existing Secret (existingSecret / valuesFrom)",
                        lit.join(", ")
                    )));
                }
                spec["values"] = values;
            }
            json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "metadata": meta, "spec": spec})
        }
        other => {
            return Err(ToolError::InvalidArguments(format!(
                "render/create write GitRepository, HelmRepository, Kustomization or HelmRelease, not {other}"
            )))
        }
    };
    Ok(obj)
}

impl Tool for Flux {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Inspect and reconcile Flux objects, and write Flux manifests into the GitOps repo."
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
        let ctx_s = ctx.as_deref().unwrap_or("(current)");
        let ns_s = ns.as_deref().unwrap_or("(default)");
        let kind = a
            .kind
            .as_deref()
            .and_then(|k| kind_of(k).ok())
            .map(|k| k.0.to_string());
        let scope = Scope {
            context: ctx.clone(),
            namespace: if a.all_namespaces == Some(true) {
                None
            } else {
                ns.clone()
            },
            kinds: kind.clone().into_iter().collect(),
            objects: Vec::new(),
        };
        let op = a.operation;
        match op {
            Operation::Status => {
                let mut t = match (&kind, &a.name) {
                    (Some(k), Some(n)) => format!("{k}/{n}"),
                    (Some(k), None) => k.clone(),
                    _ => "Flux objects".into(),
                };
                if a.all_namespaces == Some(true) {
                    t.push_str(" in all namespaces");
                } else {
                    t.push_str(&format!(" in namespace {ns_s}"));
                }
                Ok(
                    Invocation::read(op.as_str(), format!("{t} (context {ctx_s})"))
                        .with_scope(scope),
                )
            }
            Operation::Render | Operation::Create => {
                if op == Operation::Create {
                    // refused before anything runs: `..`, not .yaml
                    safe_relative(a.file.as_deref().unwrap_or(""))?;
                }
                let what = format!(
                    "{} {}/{}",
                    kind.unwrap_or_default(),
                    a.namespace.as_deref().unwrap_or("flux-system"),
                    a.name.as_deref().unwrap_or("")
                );
                let t = match &a.file {
                    Some(f) if op == Operation::Create => format!("{what} into workspace file {f}"),
                    _ => what,
                };
                Ok(Invocation::read(op.as_str(), t).with_scope(scope))
            }
            Operation::Reconcile | Operation::Suspend | Operation::Resume => {
                let k = kind.unwrap_or_default();
                let name = a.name.clone().unwrap_or_default();
                let dry_run = a.dry_run == Some(true);
                let human = format!(
                    "{} {k} {ns_s}/{name}{} (context {ctx_s})",
                    op.as_str(),
                    if a.with_source == Some(true) {
                        " with its source"
                    } else {
                        ""
                    }
                );
                Ok(Invocation {
                    min_effect: None,
                    operation: op.as_str().into(),
                    target: if dry_run {
                        format!("dry-run: {human}")
                    } else {
                        human
                    },
                    change: Some(Change {
                        target: format!("context={ctx_s} namespace={ns_s} {k}/{name}"),
                        content_hash: change_hash(
                            json!({"op": op.as_str(), "kind": k, "name": name,
                            "with_source": a.with_source.unwrap_or(false)}),
                        ),
                        dry_run_hint: format!(
                            "call flux {} with the same arguments and dry_run: true",
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
            tokio::time::timeout(Duration::from_secs(secs + 5), self.run(a, secs, ctx))
                .await
                .map_err(|_| ToolError::Timeout(secs))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(v: Value) -> Result<Invocation, ToolError> {
        Flux::new(Some("/nonexistent".into()), Some("dev".into())).plan(&v)
    }

    #[test]
    fn reconcile_and_its_dry_run_share_a_change() {
        let real = plan(json!({"operation": "reconcile", "kind": "ks", "name": "apps", "namespace": "flux-system"})).expect("plan");
        let dry = plan(json!({"operation": "reconcile", "kind": "Kustomization", "name": "apps", "namespace": "flux-system", "dry_run": true})).expect("plan");
        assert_eq!(real.change, dry.change);
        assert!(dry.dry_run && !real.dry_run);
        let other = plan(json!({"operation": "suspend", "kind": "ks", "name": "apps", "namespace": "flux-system"})).expect("plan");
        assert_ne!(other.change, real.change);
    }

    #[test]
    fn render_builds_flux_objects_and_refuses_literal_secrets() {
        let a: Args = serde_json::from_value(json!({"operation": "render", "kind": "helmrelease", "name": "minio",
            "namespace": "minio", "chart": "minio", "version": "5.4.0", "source_name": "minio",
            "values": "mode: standalone\nrootPassword: vault:kv/platform/dev/minio#root-password\n"})).expect("args");
        let o = render(&a).expect("renders");
        assert_eq!(o["spec"]["chart"]["spec"]["version"], "5.4.0");
        assert_eq!(o["spec"]["values"]["mode"], "standalone");
        let bad: Args = serde_json::from_value(json!({"operation": "render", "kind": "helmrelease", "name": "minio",
            "chart": "minio", "version": "5.4.0", "source_name": "minio", "values": "auth:\n  rootPassword: hunter2\n"})).expect("args");
        let e = render(&bad).expect_err("literal secret");
        assert!(e.to_string().contains("auth.rootPassword"), "{e}");
        for p in [
            "../x.yaml",
            "/w/../etc/x.yaml",
            "a/../../x.yaml",
            "x.txt",
            "",
        ] {
            assert!(safe_relative(p).is_err(), "{p}");
        }
        assert!(safe_relative("gitops/clusters/dev/x.yaml").is_ok());
        // an absolute path is accepted only inside the workspace
        let ws = tempfile::tempdir().expect("tempdir");
        let inside = ws.path().join("gitops/repo-1234/clusters/dev/x.yaml");
        let rel = in_workspace(
            &safe_relative(&inside.display().to_string()).expect("ok"),
            ws.path(),
        )
        .expect("inside");
        assert_eq!(rel, Path::new("gitops/repo-1234/clusters/dev/x.yaml"));
        let e = in_workspace(&safe_relative("/etc/x.yaml").expect("syntax ok"), ws.path())
            .expect_err("outside");
        assert!(e.to_string().contains("outside the workspace"), "{e}");
        assert_eq!(
            in_workspace(Path::new("gitops/a/x.yaml"), ws.path()).expect("relative"),
            Path::new("gitops/a/x.yaml")
        );
        assert!(in_workspace(Path::new(".helm/config/x.yaml"), ws.path()).is_err());
    }
}
