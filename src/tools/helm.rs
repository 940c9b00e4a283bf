//! The `helm` tool: the real helm binary (3 or 4), run with explicit argv, its own HELM_*_HOME
//! and HOME in the workspace, `KUBECONFIG` from the tool's kube target, and a timeout.
//!
//! Values are always passed as a file bosun writes (mode 0600 in the workspace, deleted after
//! use) — never `--set` on a command line. `vault:` references in values are resolved only for
//! `upgrade_dry_run` and `upgrade`, inside the runtime; rendered output shows the references
//! back in place of their values and masks every other Secret value.
//!
//! `upgrade_dry_run` ↔ `upgrade` share one change identity: target
//! `release=<r> namespace=<ns> context=<ctx>`, content = chart reference + version + hash of a
//! local chart's files + the values as written (references, not values) + create_namespace.
//! `rollback` and `uninstall` take `dry_run` and share the identity of their dry-run.

use super::confined::{self, Root};
use super::exec::{self, Cmd};
use super::k8s;
use super::manifests;
use super::{Change, Invocation, ObjectRef, Scope, Tool, ToolCtx, ToolError};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::kube_client::{Cluster, Clusters, KubeTarget};
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "helm";

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("status", EffectClass::ReadOnly),
    ("history", EffectClass::ReadOnly),
    ("show_values", EffectClass::ReadOnly),
    ("template", EffectClass::ReadOnly),
    ("lint", EffectClass::ReadOnly),
    ("upgrade_dry_run", EffectClass::DryRun),
    ("upgrade", EffectClass::Mutating),
    ("rollback", EffectClass::Mutating),
    ("uninstall", EffectClass::Destructive),
];

/// A local chart larger than this is refused (it is hashed for the change identity).
const MAX_CHART_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    Status,
    History,
    ShowValues,
    Template,
    Lint,
    UpgradeDryRun,
    Upgrade,
    Rollback,
    Uninstall,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::History => "history",
            Self::ShowValues => "show_values",
            Self::Template => "template",
            Self::Lint => "lint",
            Self::UpgradeDryRun => "upgrade_dry_run",
            Self::Upgrade => "upgrade",
            Self::Rollback => "rollback",
            Self::Uninstall => "uninstall",
        }
    }
}

// Arguments of the helm tool.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    operation: Operation,
    release: Option<String>,
    namespace: Option<String>,
    context: Option<String>,
    /// Local dir or .tgz, `oci://…`, or a chart name with `repo`.
    chart: Option<String>,
    /// Chart repository URL.
    repo: Option<String>,
    /// Required for repo and OCI charts.
    version: Option<String>,
    /// YAML.
    values: Option<String>,
    /// rollback: target revision; status/show_values: a past one.
    revision: Option<u32>,
    /// rollback/uninstall: true = simulate, needed before the real call.
    dry_run: Option<bool>,
    create_namespace: Option<bool>,
    timeout_seconds: Option<u64>,
}

/// Where a chart comes from.
#[derive(Debug, Clone)]
enum ChartSrc {
    /// A local directory or archive (canonical path) and the hash of its files; once the call
    /// runs, `copy` is bosun's private copy of it, which is what helm reads.
    Local {
        path: PathBuf,
        hash: String,
        copy: Option<PathBuf>,
    },
    Oci(String),
    Repo {
        url: String,
        name: String,
    },
}

impl ChartSrc {
    fn identity(&self, version: Option<&str>) -> Value {
        match self {
            ChartSrc::Local { path, hash, .. } => {
                json!({"local": path.display().to_string(), "files": hash})
            }
            ChartSrc::Oci(r) => json!({"oci": r, "version": version}),
            ChartSrc::Repo { url, name } => {
                json!({"repo": url, "chart": name, "version": version})
            }
        }
    }

    /// The chart argument and extra flags for helm.
    fn argv(&self, version: Option<&str>) -> Vec<String> {
        let mut v = match self {
            ChartSrc::Local { path, copy, .. } => {
                vec![copy.as_ref().unwrap_or(path).display().to_string()]
            }
            ChartSrc::Oci(r) => vec![r.clone()],
            ChartSrc::Repo { url, name } => vec![name.clone(), "--repo".into(), url.clone()],
        };
        if let (Some(ver), false) = (version, matches!(self, ChartSrc::Local { .. })) {
            v.push("--version".into());
            v.push(ver.to_string());
        }
        v
    }
}

/// Hash every file of a local chart (relative path + bytes), in a stable order, read through
/// `confined::Root` on the chart: a symlink anywhere in it is refused (a chart must not pull in
/// files from elsewhere). An archive is hashed as its bytes.
pub fn hash_tree(root: &Path, max_bytes: u64) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let meta = std::fs::symlink_metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if meta.is_file() {
        let b = confined::read_file_at(root, max_bytes).map_err(|e| e.to_string())?;
        return Ok(format!("{:x}", Sha256::digest(&b)));
    }
    Root::open(root)
        .and_then(|r| r.hash_tree(max_bytes))
        .map_err(|e| format!("chart {}: {e}", root.display()))
}

/// A private copy of a local chart in the workspace, made through `confined::Root` (no
/// symlinks): helm reads the copy, so what runs is exactly what was hashed. Deleted on drop.
struct Snapshot {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn snapshot(ctx: &ToolCtx, src: &Path, planned: &str) -> Result<Snapshot, ToolError> {
    use sha2::{Digest, Sha256};
    let base = ctx.workspace.join(".helm").join("charts");
    std::fs::create_dir_all(&base)
        .map_err(|e| ToolError::Failed(format!("creating {}: {e}", base.display())))?;
    let dir = tempfile::Builder::new()
        .prefix("chart-")
        .tempdir_in(&base)
        .map_err(|e| ToolError::Failed(format!("creating a chart copy: {e}")))?;
    let meta = std::fs::symlink_metadata(src)
        .map_err(|e| ToolError::Failed(format!("chart {}: {e}", src.display())))?;
    let dest = Root::open(dir.path())?;
    let (hash, path) = if meta.is_file() {
        let b = confined::read_file_at(src, MAX_CHART_BYTES)?;
        let name = Path::new("chart.tgz");
        dest.write(name, &b, 0o600)?;
        (format!("{:x}", Sha256::digest(&b)), dir.path().join(name))
    } else {
        let name = Path::new("chart");
        let into = dest.create_subdir(name)?;
        let h = Root::open(src)?.copy_tree(&into, MAX_CHART_BYTES)?;
        (h, dir.path().join(name))
    };
    if hash != planned {
        return Err(ToolError::Failed(format!(
            "the chart {} changed since this call was checked; call again (after a new dry-run for an upgrade)",
            src.display()
        )));
    }
    Ok(Snapshot { _dir: dir, path })
}

/// `values` with every `vault:` reference replaced by a stand-in (`variant` tells two sets apart).
fn stand_ins(values: &Value, variant: &str) -> Value {
    match values {
        Value::String(s) => {
            let mut t = s.clone();
            for r in crate::secrets::find_refs(s) {
                let id = super::sha256_hex(r.to_string().as_bytes());
                t = t.replace(
                    &r.to_string(),
                    &format!("standin{variant}{}", id.get(..16).unwrap_or("")),
                );
            }
            Value::String(t)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| stand_ins(x, variant)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), stand_ins(x, variant)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The objects of two renders (stand-ins `a` and `b`) that differ where a secret must not flow.
fn secret_flow(one: &[Value], two: &[Value]) -> Vec<String> {
    fn blank(o: &Value) -> Value {
        let mut x = o.clone();
        let core_secret = x.get("apiVersion").and_then(Value::as_str) == Some("v1")
            && x.get("kind").and_then(Value::as_str) == Some("Secret");
        if core_secret {
            for field in ["data", "stringData"] {
                if let Some(Value::Object(m)) = x.get_mut(field) {
                    for v in m.values_mut() {
                        if v.is_string() {
                            *v = Value::Null;
                        }
                    }
                }
            }
        }
        x
    }
    if one.len() != two.len() {
        return vec![format!(
            "the set of rendered objects ({} vs {} objects)",
            one.len(),
            two.len()
        )];
    }
    one.iter()
        .zip(two)
        .filter(|(x, y)| blank(x) != blank(y))
        .map(|(x, _)| manifests::object_key(x))
        .collect()
}

/// The objects a rendered chart creates or changes, resolved through the API server's discovery:
/// the kind as the server names it, its group, and the namespace each lands in (the release's
/// namespace when the template gives none; `None` for cluster-scoped kinds). A kind the server
/// does not serve is resolved from a CustomResourceDefinition in the same render, else refused.
async fn rendered_objects(
    cluster: &crate::kube_client::Cluster,
    docs: &[Value],
    release_ns: &str,
) -> Result<Vec<ObjectRef>, ToolError> {
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let api_version = d.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = d.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = d
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if kind.is_empty() || api_version.is_empty() {
            return Err(ToolError::InvalidArguments(format!(
                "the chart renders a document without apiVersion/kind ({name}); fix the template"
            )));
        }
        let (group, kind, namespaced) = match k8s::resolve_gvk(cluster, api_version, kind).await {
            Ok((ar, namespaced)) => (ar.group, ar.kind, namespaced),
            Err(e) => match crd_scope(docs, api_version, kind) {
                Some(namespaced) => (
                    api_version.split_once('/').map(|(g, _)| g).unwrap_or("").to_string(),
                    kind.to_string(),
                    namespaced,
                ),
                None => return Err(ToolError::InvalidArguments(format!(
                    "the chart renders {kind} {name} ({api_version}), which the server does not serve ({e}); install its CRD first or fix the template"
                ))),
            },
        };
        let namespace = namespaced.then(|| {
            d.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(release_ns)
                .to_string()
        });
        out.push(ObjectRef {
            group,
            kind,
            namespace,
            name,
        });
    }
    Ok(out)
}

/// The scope of `kind` in `api_version` from a CustomResourceDefinition in the same render
/// (`Some(true)` namespaced).
fn crd_scope(docs: &[Value], api_version: &str, kind: &str) -> Option<bool> {
    let group = api_version.split_once('/').map(|(g, _)| g)?;
    docs.iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition"))
        .find(|d| {
            d.pointer("/spec/group").and_then(Value::as_str) == Some(group)
                && d.pointer("/spec/names/kind").and_then(Value::as_str) == Some(kind)
        })
        .map(|d| d.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster"))
}

fn valid_name(s: &str, what: &str) -> Result<(), ToolError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !s.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(ToolError::InvalidArguments(format!(
            "invalid {what} `{s}`: lowercase letters, digits, `-` and `.`, at most 63 characters"
        )))
    }
}

/// The kubeconfig helm should use: the tool's, else `$KUBECONFIG`, else `~/.kube/config`.
fn kubeconfig_path(configured: Option<&Path>) -> Option<std::ffi::OsString> {
    if let Some(p) = configured {
        return Some(p.as_os_str().to_os_string());
    }
    if let Some(k) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return Some(k);
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config").into_os_string())
}

/// The current context of a kubeconfig, read locally.
pub fn current_context(configured: Option<&Path>) -> Option<String> {
    let kc = match configured {
        Some(p) => kube::config::Kubeconfig::read_from(p).ok()?,
        None => kube::config::Kubeconfig::read().ok()?,
    };
    kc.current_context
}

/// The helm tool.
pub struct Helm {
    binary: Option<PathBuf>,
    kube: KubeTarget,
    major: tokio::sync::OnceCell<u32>,
    clusters: Clusters,
}

/// A parsed, validated call.
struct Call {
    a: Args,
    op: Operation,
    release: String,
    namespace: String,
    context: Option<String>,
    chart: Option<ChartSrc>,
    values: Value,
}

impl Helm {
    /// The helm binary from `BOSUN_HELM` (`helm3`, `helm4` or a path), else `helm`, else `helm3`.
    pub fn new(kube: &KubeTarget) -> Self {
        let binary = match std::env::var("BOSUN_HELM").ok().filter(|v| !v.is_empty()) {
            Some(b) if b.contains('/') => Some(PathBuf::from(b)),
            Some(b) => crate::sandbox::find_binary(&b),
            None => {
                crate::sandbox::find_binary("helm").or_else(|| crate::sandbox::find_binary("helm3"))
            }
        };
        Self::with_binary(binary, kube)
    }

    /// A helm tool using `binary` (tests pick helm 3 or 4 this way).
    pub fn with_binary(binary: Option<PathBuf>, kube: &KubeTarget) -> Self {
        Self {
            binary,
            kube: kube.clone(),
            major: tokio::sync::OnceCell::new(),
            clusters: Clusters::default(),
        }
    }

    fn parse(&self, args: &Value) -> Result<Call, ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let op = a.operation;
        let bad = |m: &str| Err(ToolError::InvalidArguments(m.to_string()));
        let needs_release = !matches!(op, Operation::Lint | Operation::ShowValues)
            || (op == Operation::ShowValues && a.chart.is_none());
        let needs_chart = matches!(
            op,
            Operation::Template | Operation::Lint | Operation::UpgradeDryRun | Operation::Upgrade
        );
        let release = a.release.clone().unwrap_or_default();
        if needs_release {
            if release.is_empty() {
                return bad("`release` is required for this operation");
            }
            valid_name(&release, "release name")?;
        }
        let namespace = a.namespace.clone().unwrap_or_default();
        if needs_release || op == Operation::Template {
            if namespace.is_empty() {
                return bad("`namespace` is required: always name the release's namespace");
            }
            valid_name(&namespace, "namespace")?;
        }
        let context = a
            .context
            .clone()
            .or_else(|| self.kube.context.clone())
            .or_else(|| current_context(self.kube.kubeconfig.as_deref()));
        let chart =
            match (&a.chart, needs_chart || op == Operation::ShowValues) {
                (Some(c), true) => Some(self.chart(c, &a)?),
                (None, true) if op != Operation::ShowValues => return bad(
                    "`chart` is required: a local chart path, oci://… or a chart name with `repo`",
                ),
                _ => None,
            };
        if op == Operation::Lint && !matches!(chart, Some(ChartSrc::Local { .. })) {
            return bad("lint works on a local chart directory or archive");
        }
        if matches!(op, Operation::Rollback) && a.revision.is_none() {
            return bad("rollback needs `revision`: the revision to return to (see history)");
        }
        let values = match a.values.as_deref().map(str::trim) {
            None | Some("") => Value::Object(Default::default()),
            Some(t) => {
                let v: Value = serde_saphyr::from_str(t).map_err(|e| {
                    ToolError::InvalidArguments(format!("`values` is not valid YAML: {e}"))
                })?;
                match v {
                    Value::Object(_) => v,
                    Value::Null => Value::Object(Default::default()),
                    _ => return bad("`values` must be a YAML map"),
                }
            }
        };
        Ok(Call {
            a,
            op,
            release,
            namespace,
            context,
            chart,
            values,
        })
    }

    fn chart(&self, c: &str, a: &Args) -> Result<ChartSrc, ToolError> {
        let bad = |m: String| Err(ToolError::InvalidArguments(m));
        let remote_needs_version =
            matches!(a.operation, Operation::UpgradeDryRun | Operation::Upgrade);
        if let Some(url) = &a.repo {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return bad(format!(
                    "`repo` must be an http(s) chart repository URL, got `{url}`"
                ));
            }
            if c.contains('/') || c.is_empty() {
                return bad("with `repo`, `chart` is the chart's name in that repository".into());
            }
            if remote_needs_version && a.version.is_none() {
                return bad("pin `version` for a repository chart, so the upgrade installs exactly what was dry-run".into());
            }
            return Ok(ChartSrc::Repo {
                url: url.clone(),
                name: c.to_string(),
            });
        }
        if c.starts_with("oci://") {
            if remote_needs_version && a.version.is_none() {
                return bad("pin `version` for an OCI chart, so the upgrade installs exactly what was dry-run".into());
            }
            return Ok(ChartSrc::Oci(c.to_string()));
        }
        if c.starts_with("http://") || c.starts_with("https://") {
            return bad("a chart URL is not supported: pass the repository URL as `repo` and the chart name as `chart`, or use oci://".into());
        }
        let p = PathBuf::from(c);
        let canon = std::fs::canonicalize(&p).map_err(|e| {
            ToolError::InvalidArguments(format!(
                "chart `{c}` is not a local chart ({e}); for a repository chart pass `repo` (URL) and the chart name"
            ))
        })?;
        let hash = hash_tree(&canon, MAX_CHART_BYTES).map_err(ToolError::InvalidArguments)?;
        Ok(ChartSrc::Local {
            path: canon,
            hash,
            copy: None,
        })
    }

    fn target(c: &Call) -> String {
        format!(
            "release={} namespace={} context={}",
            c.release,
            c.namespace,
            c.context.as_deref().unwrap_or("current")
        )
    }

    fn change(c: &Call) -> Option<Change> {
        let (content, hint) = match c.op {
            Operation::UpgradeDryRun | Operation::Upgrade => (
                json!({
                    "op": "upgrade",
                    "chart": c.chart.as_ref().map(|s| s.identity(c.a.version.as_deref())),
                    "values": c.values,
                    "create_namespace": c.a.create_namespace.unwrap_or(false),
                }),
                "call helm upgrade_dry_run with the same chart, version, values and create_namespace".to_string(),
            ),
            Operation::Rollback => (
                json!({"op": "rollback", "revision": c.a.revision}),
                "call helm rollback with the same revision and dry_run: true".to_string(),
            ),
            Operation::Uninstall => (
                json!({"op": "uninstall"}),
                "call helm uninstall with dry_run: true".to_string(),
            ),
            _ => return None,
        };
        Some(Change {
            target: Self::target(c),
            content_hash: super::canonical_hash(&content),
            dry_run_hint: hint,
        })
    }

    fn binary(&self) -> Result<&Path, ToolError> {
        self.binary.as_deref().ok_or_else(|| {
            ToolError::Failed(
                "helm is not installed: run scripts/install-deps.sh, or set BOSUN_HELM to a helm binary".into(),
            )
        })
    }

    async fn major(&self, ctx: &ToolCtx) -> u32 {
        *self
            .major
            .get_or_init(|| async {
                let Ok(bin) = self.binary() else { return 3 };
                let cmd = self
                    .cmd(bin, ctx, Duration::from_secs(20))
                    .arg("version")
                    .arg("--short");
                match exec::run(&cmd).await {
                    Ok(o) if o.stdout.trim_start().starts_with("v4") => 4,
                    _ => 3,
                }
            })
            .await
    }

    fn cmd(&self, bin: &Path, ctx: &ToolCtx, timeout: Duration) -> Cmd {
        let base = ctx.workspace.join(".helm");
        let mut cmd = Cmd::new(bin)
            .timeout(timeout)
            .env("HELM_CACHE_HOME", base.join("cache"))
            .env("HELM_CONFIG_HOME", base.join("config"))
            .env("HELM_DATA_HOME", base.join("data"));
        let _ = std::fs::create_dir_all(&base);
        cmd = cmd.rw(&base);
        if let Some(k) = kubeconfig_path(self.kube.kubeconfig.as_deref()) {
            // the sandbox shows helm its kubeconfig and the files that names, read-only
            for f in exec::kubeconfig_files(&k) {
                cmd = cmd.credential(f);
            }
            cmd = cmd.env("KUBECONFIG", k);
        }
        exec::private_home(cmd, &base.join("home"))
    }

    /// Flags selecting namespace and context.
    fn where_args(c: &Call) -> Vec<String> {
        let mut v = vec!["--namespace".to_string(), c.namespace.clone()];
        // always the context in the change's target, even if the current context moves
        if let Some(ctx) = &c.context {
            v.push("--kube-context".into());
            v.push(ctx.clone());
        }
        v
    }

    async fn helm(
        &self,
        ctx: &ToolCtx,
        args: Vec<String>,
        timeout: Duration,
    ) -> Result<exec::Output, ToolError> {
        let bin = self.binary()?;
        let mut cmd = self.cmd(bin, ctx, timeout).args(&args);
        // local charts and values files named on the command line: readable in the sandbox
        for a in &args {
            if a.starts_with('/') {
                cmd = cmd.ro(a);
            }
        }
        tracing::debug!(command = %cmd.display(), "running helm");
        exec::run(&cmd).await
    }

    /// A values file for helm: JSON (valid YAML), mode 0600, in the workspace; deleted on drop.
    fn values_file(ctx: &ToolCtx, v: &Value) -> Result<tempfile::NamedTempFile, ToolError> {
        let dir = ctx.workspace.join(".helm").join("values");
        std::fs::create_dir_all(&dir)
            .map_err(|e| ToolError::Failed(format!("creating {}: {e}", dir.display())))?;
        let mut f = tempfile::Builder::new()
            .prefix("values-")
            .suffix(".json")
            .tempfile_in(&dir)
            .map_err(|e| ToolError::Failed(format!("creating a values file: {e}")))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600));
        }
        use std::io::Write;
        f.write_all(v.to_string().as_bytes())
            .and_then(|_| f.flush())
            .map_err(|e| ToolError::Failed(format!("writing the values file: {e}")))?;
        Ok(f)
    }

    fn timeout(c: &Call, default: u64) -> u64 {
        c.a.timeout_seconds.unwrap_or(default).clamp(5, 3600)
    }

    async fn live_manifest(
        &self,
        ctx: &ToolCtx,
        c: &Call,
        revision: Option<u32>,
    ) -> Result<Option<String>, ToolError> {
        let mut args = vec!["get".to_string(), "manifest".into(), c.release.clone()];
        if let Some(r) = revision {
            args.push("--revision".into());
            args.push(r.to_string());
        }
        args.extend(Self::where_args(c));
        let out = self.helm(ctx, args, Duration::from_secs(60)).await?;
        if out.success() {
            Ok(Some(out.stdout))
        } else if out.combined().contains("not found") {
            Ok(None)
        } else {
            Err(fail("helm get manifest", &out))
        }
    }

    /// The call with its local chart replaced by a private copy (helm reads the copy, never the
    /// model's directory); the copy lives as long as the returned `Snapshot`.
    fn with_snapshot(mut c: Call, ctx: &ToolCtx) -> Result<(Call, Option<Snapshot>), ToolError> {
        let snap = match &c.chart {
            Some(ChartSrc::Local { path, hash, .. }) => {
                let snap = snapshot(ctx, path, hash)?;
                c.chart = Some(ChartSrc::Local {
                    path: path.clone(),
                    hash: hash.clone(),
                    copy: Some(snap.path.clone()),
                });
                Some(snap)
            }
            _ => None,
        };
        Ok((c, snap))
    }

    /// `helm template` of the call's release, chart, version and namespace with the values file
    /// `values` (hooks are always rendered; `crds` adds the chart's CRDs).
    fn template_argv(c: &Call, chart: &ChartSrc, values: &Path, crds: bool) -> Vec<String> {
        let mut args = vec!["template".to_string(), c.release.clone()];
        args.extend(chart.argv(c.a.version.as_deref()));
        args.extend(["--namespace".to_string(), c.namespace.clone()]);
        if crds {
            args.push("--include-crds".into());
        }
        args.extend(["-f".to_string(), values.display().to_string()]);
        args
    }

    async fn cluster(&self, c: &Call) -> Result<Arc<Cluster>, ToolError> {
        let target = KubeTarget {
            kubeconfig: self.kube.kubeconfig.clone(),
            context: c.context.clone(),
        };
        self.clusters.get(&target).await.map_err(k8s::failed)
    }

    /// What an upgrade (or its dry-run), rollback or uninstall really does: every object of the
    /// rendered chart (hooks and CRDs included, same release, namespace, version and values as
    /// the real call) or of the release's manifests, resolved through discovery; and the
    /// change identity, whose content covers that rendered output. `None` for other operations.
    async fn effect(
        &self,
        c: &Call,
        ctx: &ToolCtx,
    ) -> Result<Option<(Change, Vec<ObjectRef>, String)>, ToolError> {
        let Some(base) = Self::change(c) else {
            return Ok(None);
        };
        let (manifest, extra) = match c.op {
            Operation::UpgradeDryRun | Operation::Upgrade => {
                let Some(chart) = &c.chart else {
                    return Err(ToolError::InvalidArguments("`chart` is required".into()));
                };
                let vf = Self::values_file(ctx, &c.values)?;
                let args = Self::template_argv(c, chart, vf.path(), true);
                let out = self
                    .helm(ctx, args, Duration::from_secs(Self::timeout(c, 120)))
                    .await?;
                if !out.success() {
                    return Err(fail(
                        "helm template (to judge what the upgrade creates)",
                        &out,
                    ));
                }
                let ns = c.a.create_namespace.unwrap_or(false).then(|| ObjectRef {
                    group: String::new(),
                    kind: "Namespace".into(),
                    namespace: None,
                    name: c.namespace.clone(),
                });
                (out.stdout, ns)
            }
            Operation::Rollback | Operation::Uninstall => {
                // what the release holds now, and for a rollback what it returns to
                let now = self.live_manifest(ctx, c, None).await?.unwrap_or_default();
                let to = match (c.op, c.a.revision) {
                    (Operation::Rollback, Some(r)) => self
                        .live_manifest(ctx, c, Some(r))
                        .await?
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                (format!("{now}\n---\n{to}"), None)
            }
            _ => return Ok(None),
        };
        let docs = manifests::parse_docs(&manifest)
            .map_err(|e| ToolError::Failed(format!("helm rendered invalid YAML: {e}")))?;
        let cluster = self.cluster(c).await?;
        let mut objects = rendered_objects(&cluster, &docs, &c.namespace).await?;
        objects.extend(extra);
        objects.sort();
        objects.dedup();
        let change = Change {
            target: base.target,
            content_hash: k8s::change_hash(json!({
                "call": base.content_hash,
                "rendered": super::sha256_hex(manifest.as_bytes()),
            })),
            dry_run_hint: base.dry_run_hint,
        };
        Ok(Some((change, objects, cluster.context.clone())))
    }

    async fn run(&self, c: Call, ctx: &ToolCtx) -> Result<String, ToolError> {
        match c.op {
            Operation::Status => self.status(&c, ctx).await,
            Operation::History => self.history(&c, ctx).await,
            Operation::ShowValues => self.show_values(&c, ctx).await,
            Operation::Lint => {
                let Some(chart) = &c.chart else {
                    return Err(ToolError::InvalidArguments("`chart` is required".into()));
                };
                let vf = Self::values_file(ctx, &c.values)?;
                let mut args = vec!["lint".to_string()];
                args.extend(chart.argv(None));
                args.push("-f".into());
                args.push(vf.path().display().to_string());
                let out = self.helm(ctx, args, Duration::from_secs(120)).await?;
                let text = exec::compact(&out.combined(), 40, 10);
                if out.success() {
                    Ok(format!("lint passed\n{text}"))
                } else {
                    Err(ToolError::Failed(format!("lint failed\n{text}")))
                }
            }
            Operation::Template => {
                let Some(chart) = &c.chart else {
                    return Err(ToolError::InvalidArguments("`chart` is required".into()));
                };
                let vf = Self::values_file(ctx, &c.values)?;
                let args = Self::template_argv(&c, chart, vf.path(), false);
                let out = self
                    .helm(ctx, args, Duration::from_secs(Self::timeout(&c, 120)))
                    .await?;
                if !out.success() {
                    return Err(fail("helm template", &out));
                }
                let objs = manifests::parse_docs(&out.stdout)
                    .map_err(|e| ToolError::Failed(format!("helm rendered invalid YAML: {e}")))?;
                let shown = manifests::for_display(&objs, &Vec::new());
                let list: Vec<String> = shown.iter().map(manifests::object_key).collect();
                let yaml: String = shown
                    .iter()
                    .map(|o| format!("---\n{}", manifests::to_yaml(o)))
                    .collect();
                Ok(format!(
                    "rendered {} objects: {}\n{}",
                    list.len(),
                    list.join(", "),
                    exec::compact(&yaml, 300, 20)
                ))
            }
            Operation::UpgradeDryRun | Operation::Upgrade => self.upgrade(&c, ctx).await,
            Operation::Rollback => self.rollback(&c, ctx).await,
            Operation::Uninstall => self.uninstall(&c, ctx).await,
        }
    }

    async fn status(&self, c: &Call, ctx: &ToolCtx) -> Result<String, ToolError> {
        let mut args = vec![
            "status".to_string(),
            c.release.clone(),
            "-o".into(),
            "json".into(),
        ];
        if let Some(r) = c.a.revision {
            args.push("--revision".into());
            args.push(r.to_string());
        }
        args.extend(Self::where_args(c));
        let out = self.helm(ctx, args, Duration::from_secs(60)).await?;
        if !out.success() {
            return Err(fail("helm status", &out));
        }
        let mut v: Value = serde_json::from_str(json_part(&out.stdout))
            .map_err(|e| ToolError::Failed(format!("unexpected helm status output: {e}")))?;
        if v.pointer("/chart/metadata/name").is_none() {
            // `helm status` leaves the chart out: take it from the history
            let mut args = vec![
                "history".to_string(),
                c.release.clone(),
                "-o".into(),
                "json".into(),
                "--max".into(),
                "1".into(),
            ];
            args.extend(Self::where_args(c));
            if let Ok(h) = self.helm(ctx, args, Duration::from_secs(60)).await {
                let h: Value = serde_json::from_str(json_part(&h.stdout)).unwrap_or(Value::Null);
                if let Some(last) = h.as_array().and_then(|a| a.last()) {
                    let chart = last.get("chart").and_then(Value::as_str).unwrap_or("?");
                    let (name, ver) = chart.rsplit_once('-').unwrap_or((chart, "?"));
                    v["chart"] = json!({"metadata": {"name": name, "version": ver,
                        "appVersion": last.get("app_version").cloned().unwrap_or(Value::Null)}});
                }
            }
        }
        Ok(release_summary(&v, true))
    }

    async fn history(&self, c: &Call, ctx: &ToolCtx) -> Result<String, ToolError> {
        let mut args = vec![
            "history".to_string(),
            c.release.clone(),
            "-o".into(),
            "json".into(),
            "--max".into(),
            "20".into(),
        ];
        args.extend(Self::where_args(c));
        let out = self.helm(ctx, args, Duration::from_secs(60)).await?;
        if !out.success() {
            return Err(fail("helm history", &out));
        }
        let v: Value = serde_json::from_str(json_part(&out.stdout))
            .map_err(|e| ToolError::Failed(format!("unexpected helm history output: {e}")))?;
        let rows: Vec<Vec<String>> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .rev()
                    .map(|r| {
                        let s = |k: &str| {
                            r.get(k)
                                .map(|x| {
                                    x.as_str()
                                        .map(str::to_string)
                                        .unwrap_or_else(|| x.to_string())
                                })
                                .unwrap_or_default()
                        };
                        vec![
                            s("revision"),
                            s("status"),
                            s("chart"),
                            s("app_version"),
                            s("updated").chars().take(19).collect(),
                            s("description"),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(format!(
            "release {} in {} (newest first):\n{}",
            c.release,
            c.namespace,
            super::table::render(
                &[
                    "REVISION",
                    "STATUS",
                    "CHART",
                    "APP",
                    "UPDATED",
                    "DESCRIPTION"
                ],
                &rows,
                20
            )
        ))
    }

    async fn show_values(&self, c: &Call, ctx: &ToolCtx) -> Result<String, ToolError> {
        if let Some(chart) = &c.chart {
            let mut args = vec!["show".to_string(), "values".into()];
            args.extend(chart.argv(c.a.version.as_deref()));
            let out = self.helm(ctx, args, Duration::from_secs(120)).await?;
            if !out.success() {
                return Err(fail("helm show values", &out));
            }
            return Ok(format!(
                "default values of the chart:\n{}",
                exec::compact(&out.stdout, 300, 10)
            ));
        }
        let mut args = vec![
            "get".to_string(),
            "values".into(),
            c.release.clone(),
            "-o".into(),
            "json".into(),
        ];
        if let Some(r) = c.a.revision {
            args.push("--revision".into());
            args.push(r.to_string());
        }
        args.extend(Self::where_args(c));
        let out = self.helm(ctx, args, Duration::from_secs(60)).await?;
        if !out.success() {
            return Err(fail("helm get values", &out));
        }
        let mut v: Value = serde_json::from_str(json_part(&out.stdout)).unwrap_or(Value::Null);
        // a release's values hold resolved secrets: mask every secret-looking key
        mask_sensitive(&mut v);
        if v.is_null() || v.as_object().is_some_and(|m| m.is_empty()) {
            return Ok(format!("release {} has no user-supplied values", c.release));
        }
        Ok(format!(
            "user-supplied values of release {} (secret-looking keys masked):\n{}",
            c.release,
            exec::compact(&manifests::to_yaml(&v), 300, 10)
        ))
    }

    async fn upgrade(&self, c: &Call, ctx: &ToolCtx) -> Result<String, ToolError> {
        let Some(chart) = &c.chart else {
            return Err(ToolError::InvalidArguments("`chart` is required".into()));
        };
        let dry = c.op == Operation::UpgradeDryRun;
        let major = self.major(ctx).await;
        // a secret may only flow into Secret data: proven on stand-ins before anything resolves
        self.check_secret_flow(c, chart, ctx).await?;
        // references are resolved here, inside the runtime, into a private file
        let (resolved_values, resolved) =
            manifests::resolve_refs(&c.values, ctx.secrets.as_ref()).await?;
        let vf = Self::values_file(ctx, &resolved_values)?;
        let secs = Self::timeout(c, 300);
        let mut args = vec!["upgrade".to_string(), "--install".into(), c.release.clone()];
        args.extend(chart.argv(c.a.version.as_deref()));
        args.extend(Self::where_args(c));
        args.extend(["-f".to_string(), vf.path().display().to_string()]);
        args.extend(["-o".to_string(), "json".into()]);
        args.push(format!("--timeout={secs}s"));
        if c.a.create_namespace.unwrap_or(false) {
            args.push("--create-namespace".into());
        }
        if dry {
            args.push("--dry-run=server".into());
        } else if major >= 4 {
            args.push("--rollback-on-failure".into());
            args.push("--wait=watcher".into());
        } else {
            args.push("--atomic".into());
        }
        let live = if dry {
            self.live_manifest(ctx, c, None).await?
        } else {
            None
        };
        let out = self.helm(ctx, args, Duration::from_secs(secs + 30)).await;
        drop(vf);
        let out = out?;
        if !out.success() {
            return Err(fail(
                if dry {
                    "helm upgrade --install --dry-run=server"
                } else {
                    "helm upgrade --install"
                },
                &out,
            ));
        }
        let rel: Value = serde_json::from_str(json_part(&out.stdout))
            .map_err(|e| ToolError::Failed(format!("unexpected helm output (not JSON): {e}")))?;
        if !dry {
            return Ok(format!("upgrade done: {}", release_summary(&rel, false)));
        }
        let manifest = rel.get("manifest").and_then(Value::as_str).unwrap_or("");
        let new = manifests::parse_docs(manifest)
            .map_err(|e| ToolError::Failed(format!("helm rendered invalid YAML: {e}")))?;
        // platform checks on the objects as written (references back in place)
        let mut as_written = new.clone();
        for o in &mut as_written {
            manifests::unresolve(o, &resolved);
        }
        let env = ctx.environment(c.context.as_deref().unwrap_or(""));
        let findings = crate::checks::check_manifests(&as_written, env);
        let old = match &live {
            Some(m) => manifests::parse_docs(m).unwrap_or_default(),
            None => Vec::new(),
        };
        // what the model may see: the same chart rendered locally with the references as
        // written; anything the server render has beyond that is masked
        let expected = self.render_unresolved(c, chart, ctx).await?;
        let mut shown_new = manifests::for_display(&new, &resolved);
        let mut shown_old = manifests::for_display(&old, &resolved);
        let mut masked = 0usize;
        for o in &mut shown_new {
            let key = manifests::object_key(o);
            let exp = expected.iter().find(|e| manifests::object_key(e) == key);
            let mut ptrs = Vec::new();
            manifests::mask_divergent(o, exp, "", &mut ptrs);
            masked += ptrs.len();
            if let Some(l) = shown_old
                .iter_mut()
                .find(|l| manifests::object_key(l) == key)
            {
                manifests::mask_paths(l, &ptrs);
            }
        }
        let mut diff = manifests::diff_objects(&shown_old, &shown_new, 200);
        if masked > 0 {
            diff.push_str(&format!(
                "{masked} value(s) computed from data not shown to you (secrets, lookups, random values) are masked as <hidden #…>\n"
            ));
        }
        let head = match &live {
            None => format!(
                "would install release {} in {} (new), chart {}",
                c.release,
                c.namespace,
                chart_name(&rel)
            ),
            Some(_) => format!(
                "would upgrade release {} in {} to revision {}, chart {}",
                c.release,
                c.namespace,
                rel.get("version")
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                chart_name(&rel)
            ),
        };
        let mut text = format!(
            "{head}; server dry-run passed (env {env}, {} hook(s))\n{diff}",
            rel.get("hooks")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        );
        if !resolved.is_empty() {
            let refs: Vec<&str> = resolved.iter().map(|(r, _)| r.as_str()).collect();
            text.push_str(&format!(
                "secrets resolved inside bosun (values never shown): {}\n",
                refs.join(", ")
            ));
        }
        if !findings.is_empty() {
            text.push_str("checks:\n");
            for f in &findings {
                text.push_str(&format!("{f}\n"));
            }
        }
        if crate::checks::has_errors(&findings) {
            return Err(ToolError::Failed(format!(
                "dry-run failed the platform checks; fix the values or chart and dry-run again\n{text}"
            )));
        }
        Ok(text)
    }

    /// The chart rendered locally (`helm template`) with the values as written: references
    /// unresolved, no cluster lookups.
    /// `helm template` of the call's chart with `values` (hooks included), parsed.
    async fn render_with(
        &self,
        c: &Call,
        chart: &ChartSrc,
        values: &Value,
        ctx: &ToolCtx,
    ) -> Result<Vec<Value>, ToolError> {
        let vf = Self::values_file(ctx, values)?;
        let args = Self::template_argv(c, chart, vf.path(), false);
        let out = self.helm(ctx, args, Duration::from_secs(120)).await?;
        if !out.success() {
            return Err(fail("helm template", &out));
        }
        manifests::parse_docs(&out.stdout)
            .map_err(|e| ToolError::Failed(format!("helm rendered invalid YAML: {e}")))
    }

    /// With `vault:` references in the values, render the chart twice, each reference replaced
    /// by a different stand-in: every object but a core Secret must come out identical, and a
    /// Secret may differ only in its `data`/`stringData` values. Otherwise the chart would put
    /// the secret (or something computed from it) into a plain field, and the call is refused.
    async fn check_secret_flow(
        &self,
        c: &Call,
        chart: &ChartSrc,
        ctx: &ToolCtx,
    ) -> Result<(), ToolError> {
        if crate::secrets::find_refs(&c.values.to_string()).is_empty() {
            return Ok(());
        }
        let one = self
            .render_with(c, chart, &stand_ins(&c.values, "a"), ctx)
            .await?;
        let two = self
            .render_with(c, chart, &stand_ins(&c.values, "b"), ctx)
            .await?;
        let bad = secret_flow(&one, &two);
        if bad.is_empty() {
            return Ok(());
        }
        Err(ToolError::InvalidArguments(format!(
            "the chart puts values that come from vault: references into {} — outside a Secret's data; {}",
            bad.join(", "),
            crate::secrets::PLACEMENT_FIX
        )))
    }

    async fn render_unresolved(
        &self,
        c: &Call,
        chart: &ChartSrc,
        ctx: &ToolCtx,
    ) -> Result<Vec<Value>, ToolError> {
        self.render_with(c, chart, &c.values, ctx).await
    }

    async fn rollback(&self, c: &Call, ctx: &ToolCtx) -> Result<String, ToolError> {
        let dry = c.a.dry_run.unwrap_or(false);
        let rev = c.a.revision.unwrap_or(0);
        let major = self.major(ctx).await;
        let secs = Self::timeout(c, 300);
        if dry {
            let current = self.live_manifest(ctx, c, None).await?.ok_or_else(|| {
                ToolError::Failed(format!(
                    "release {} not found in {}",
                    c.release, c.namespace
                ))
            })?;
            let target = self
                .live_manifest(ctx, c, Some(rev))
                .await?
                .ok_or_else(|| {
                    ToolError::Failed(format!("release {} has no revision {rev}", c.release))
                })?;
            let mut args = vec!["rollback".to_string(), c.release.clone(), rev.to_string()];
            args.extend(Self::where_args(c));
            args.push(if major >= 4 {
                "--dry-run=server".into()
            } else {
                "--dry-run".into()
            });
            let out = self.helm(ctx, args, Duration::from_secs(120)).await?;
            if !out.success() {
                return Err(fail("helm rollback --dry-run", &out));
            }
            // both sides are stored revisions: which values came from secrets is unknown, so
            // the diff names fields only
            let diff = manifests::diff_fields(
                &manifests::parse_docs(&current).unwrap_or_default(),
                &manifests::parse_docs(&target).unwrap_or_default(),
                100,
            );
            return Ok(format!(
                "dry-run ok: rollback of {} in {} to revision {rev} would change:\n{diff}",
                c.release, c.namespace
            ));
        }
        let mut args = vec!["rollback".to_string(), c.release.clone(), rev.to_string()];
        args.extend(Self::where_args(c));
        args.push("--wait".into());
        args.push(format!("--timeout={secs}s"));
        let out = self.helm(ctx, args, Duration::from_secs(secs + 30)).await?;
        if !out.success() {
            return Err(fail("helm rollback", &out));
        }
        let current = Call {
            a: Args {
                revision: None,
                ..c.a.clone()
            },
            op: Operation::Status,
            release: c.release.clone(),
            namespace: c.namespace.clone(),
            context: c.context.clone(),
            chart: None,
            values: Value::Null,
        };
        let status = self.status(&current, ctx).await.unwrap_or_default();
        Ok(format!(
            "rolled back {} to revision {rev}\n{status}",
            c.release
        ))
    }

    async fn uninstall(&self, c: &Call, ctx: &ToolCtx) -> Result<String, ToolError> {
        let dry = c.a.dry_run.unwrap_or(false);
        let secs = Self::timeout(c, 300);
        let mut args = vec!["uninstall".to_string(), c.release.clone()];
        args.extend(Self::where_args(c));
        if dry {
            let live = self.live_manifest(ctx, c, None).await?.ok_or_else(|| {
                ToolError::Failed(format!(
                    "release {} not found in {}",
                    c.release, c.namespace
                ))
            })?;
            args.push("--dry-run".into());
            let out = self.helm(ctx, args, Duration::from_secs(120)).await?;
            if !out.success() {
                return Err(fail("helm uninstall --dry-run", &out));
            }
            let objs: Vec<String> = manifests::parse_docs(&live)
                .unwrap_or_default()
                .iter()
                .map(manifests::object_key)
                .collect();
            return Ok(format!(
                "dry-run ok: uninstalling {} from {} would delete {} objects: {}",
                c.release,
                c.namespace,
                objs.len(),
                objs.join(", ")
            ));
        }
        args.push("--wait".into());
        args.push(format!("--timeout={secs}s"));
        let out = self.helm(ctx, args, Duration::from_secs(secs + 30)).await?;
        if !out.success() {
            return Err(fail("helm uninstall", &out));
        }
        Ok(format!(
            "uninstalled release {} from {}",
            c.release, c.namespace
        ))
    }
}

/// helm sometimes prints warnings before the JSON document.
fn json_part(s: &str) -> &str {
    let mut at = 0;
    for line in s.split_inclusive('\n') {
        if line.starts_with('{') || line.starts_with('[') {
            return &s[at..];
        }
        at += line.len();
    }
    s
}

fn fail(what: &str, out: &exec::Output) -> ToolError {
    ToolError::Failed(format!(
        "{what} failed (exit {}):\n{}",
        out.code.map_or("signal".to_string(), |c| c.to_string()),
        exec::compact(&out.combined(), 30, 10)
    ))
}

fn chart_name(rel: &Value) -> String {
    let n = rel
        .pointer("/chart/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let v = rel
        .pointer("/chart/metadata/version")
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{n}-{v}")
}

/// One release as a few lines (never its values).
fn release_summary(rel: &Value, notes: bool) -> String {
    let s = |p: &str| {
        rel.pointer(p)
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .unwrap_or_else(|| "?".into())
    };
    let app = match rel
        .pointer("/chart/metadata/appVersion")
        .and_then(Value::as_str)
    {
        Some(a) if !a.is_empty() => format!(", app version {a}"),
        _ => String::new(),
    };
    let mut out = format!(
        "release {} in {}: revision {}, status {}, chart {}{app}, updated {}",
        s("/name"),
        s("/namespace"),
        s("/version"),
        s("/info/status"),
        chart_name(rel),
        s("/info/last_deployed")
            .chars()
            .take(19)
            .collect::<String>(),
    );
    if let Some(d) = rel.pointer("/info/description").and_then(Value::as_str) {
        out.push_str(&format!("\ndescription: {d}"));
    }
    if notes {
        if let Some(n) = rel
            .pointer("/info/notes")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
        {
            out.push_str(&format!("\nnotes:\n{}", exec::compact(n, 20, 5)));
        }
    }
    out
}

/// Mask values under secret-looking keys, at any depth.
fn mask_sensitive(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if super::vault::sensitive_key(k) && !x.is_object() && !x.is_array() {
                    let s = x
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string());
                    if crate::secrets::VaultRef::parse(s.trim()).is_none() {
                        *x = Value::String(manifests::hidden(&s));
                    }
                } else {
                    mask_sensitive(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_sensitive),
        _ => {}
    }
}

impl Tool for Helm {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Helm releases: status, history, values, template, lint, upgrade (after upgrade_dry_run), rollback, uninstall."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let c = self.parse(args)?;
        let target = match c.op {
            Operation::Lint | Operation::ShowValues if c.release.is_empty() => {
                format!("chart {}", c.a.chart.clone().unwrap_or_default())
            }
            _ => Self::target(&c),
        };
        let dry_run = match c.op {
            Operation::UpgradeDryRun => true,
            Operation::Rollback | Operation::Uninstall => c.a.dry_run.unwrap_or(false),
            _ => false,
        };
        Ok(Invocation {
            min_effect: None,
            operation: c.op.as_str().to_string(),
            target,
            change: Self::change(&c),
            dry_run,
            scope: Scope {
                context: c.context.clone(),
                namespace: (!c.namespace.is_empty()).then(|| c.namespace.clone()),
                kinds: Vec::new(),
                objects: Vec::new(),
            },
        })
    }

    fn resolve<'a>(
        &'a self,
        mut inv: Invocation,
        args: &'a Value,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<Invocation, ToolError>> {
        Box::pin(async move {
            let (c, _snapshot) = Self::with_snapshot(self.parse(args)?, ctx)?;
            let Some((change, objects, context)) = self.effect(&c, ctx).await? else {
                return Ok(inv);
            };
            let mut kinds: Vec<String> = objects.iter().map(|o| o.kind.clone()).collect();
            kinds.sort();
            kinds.dedup();
            let mut namespaces: Vec<Option<String>> =
                objects.iter().map(|o| o.namespace.clone()).collect();
            namespaces.sort();
            namespaces.dedup();
            inv.scope.namespace = match namespaces.as_slice() {
                [] => Some(c.namespace.clone()),
                [one] => one.clone(),
                _ => None,
            };
            inv.scope.context = Some(context);
            inv.scope.kinds = kinds;
            inv.scope.objects = objects;
            inv.change = Some(change);
            Ok(inv)
        })
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let (c, _snapshot) = Self::with_snapshot(self.parse(&call.args)?, ctx)?;
            // what runs is what was judged: the same copy of the chart, rendered the same
            let now = match self.effect(&c, ctx).await? {
                Some((change, _, _)) => Some(change),
                None => Self::change(&c),
            };
            call.still_the_same(now.as_ref(), "chart or its rendering", "dry-run it again")?;
            self.run(c, ctx).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_covers_chart_files_and_values() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("Chart.yaml"), "name: x\nversion: 0.1.0\n").expect("write");
        let h = Helm::with_binary(None, &KubeTarget::default());
        let args = |values: &str| {
            json!({"operation": "upgrade_dry_run", "release": "web", "namespace": "shop",
                   "context": "dev", "chart": d.path(), "values": values})
        };
        let a = h.plan(&args("a: 1")).expect("plan");
        assert!(a.dry_run);
        let ca = a.change.expect("change");
        assert_eq!(ca.target, "release=web namespace=shop context=dev");
        let mut up = args("{a: 1}");
        up["operation"] = json!("upgrade");
        let b = h.plan(&up).expect("plan");
        assert!(!b.dry_run);
        assert_eq!(b.change.expect("change"), ca);
        assert_ne!(h.plan(&args("a: 2")).expect("plan").change.expect("c"), ca);
        std::fs::write(d.path().join("values.yaml"), "b: 1\n").expect("write");
        assert_ne!(
            h.plan(&args("a: 1"))
                .expect("plan")
                .change
                .expect("c")
                .content_hash,
            ca.content_hash,
            "a file added to the chart changes the identity"
        );
    }

    #[test]
    fn remote_charts_must_be_pinned_and_names_valid() {
        let h = Helm::with_binary(None, &KubeTarget::default());
        for a in [
            json!({"operation": "upgrade_dry_run", "release": "r", "namespace": "n", "chart": "oci://r.example/c"}),
            json!({"operation": "upgrade", "release": "r", "namespace": "n", "chart": "podinfo", "repo": "https://x.example"}),
            json!({"operation": "status", "release": "R;rm", "namespace": "n"}),
            json!({"operation": "status", "release": "r"}),
            json!({"operation": "rollback", "release": "r", "namespace": "n"}),
            json!({"operation": "template", "release": "r", "namespace": "n", "chart": "/nonexistent/chart"}),
        ] {
            assert!(h.plan(&a).is_err(), "{a}");
        }
        let ok = h
            .plan(&json!({"operation": "upgrade_dry_run", "release": "r", "namespace": "n", "chart": "oci://r.example/c", "version": "1.2.3", "context": "prod-eu"}))
            .expect("pinned OCI chart");
        assert_eq!(ok.scope.context.as_deref(), Some("prod-eu"));
    }

    #[test]
    fn release_values_mask_secret_keys() {
        let mut v = json!({"auth": {"rootPassword": "abcdefgh", "user": "admin"}, "db": {"password": "vault:secret/a#p"}});
        mask_sensitive(&mut v);
        assert!(v["auth"]["rootPassword"]
            .as_str()
            .is_some_and(|s| s.starts_with("<hidden")));
        assert_eq!(v["db"]["password"], "vault:secret/a#p");
        // `auth` is an object: descended into, `user` kept
        assert_eq!(v["auth"]["user"], "admin");
    }
}
