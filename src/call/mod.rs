//! The tool contract — a leaf of the module graph: what a tool is ([`Tool`]: typed plan,
//! effect resolution, execution of an [`Admitted`](guard::Admitted) call moved in), what a call
//! is about to do ([`Invocation`], [`Change`], [`Scope`]), the [`guard`] (the only maker of
//! `Admitted`) and the [`Registry`] that joins tools with their manifests. Nothing here knows a
//! particular tool, the session or a frontend; `tools` implements the contract, `dispatch`
//! drives it.

pub mod guard;
mod registry;
pub mod schema;

pub use crate::agent::mcp_servers::NAME_SEPARATOR;
pub use registry::{offered_effects, offered_prompt_tools, offered_specs, Registered, Registry};

use crate::effect::EffectClass;
use futures::future::BoxFuture;
use guard::Admitted;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What a tool call is about to do, as parsed from its arguments (by the tool's code, never by
/// asking the model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The operation, e.g. `get`.
    pub operation: String,
    /// A short description of the target, e.g. `pods in namespace shop (context kind-dev)`.
    pub target: String,
    /// For operations that change something (or dry-run a change): the identity of that change.
    pub change: Option<Change>,
    /// True when this call only asks a server or tool what the change would do (server-side
    /// dry-run, plan, render) — the tool's code guarantees it changes nothing.
    pub dry_run: bool,
    /// Where the call acts, for policy rules (kube context, namespace, kinds).
    pub scope: Scope,
    /// Raises the operation's effect class when what the call will really do is worse than its
    /// name says (a terraform plan that deletes is `destructive`). Never lowers it.
    pub min_effect: Option<EffectClass>,
}

/// Where a call acts. Tools fill in what applies to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scope {
    /// kube context (for helm/kubectl/flux) — the environment is derived from it.
    pub context: Option<String>,
    pub namespace: Option<String>,
    /// Kubernetes kinds touched (e.g. `Deployment`, `Secret`).
    pub kinds: Vec<String>,
    /// Every object the call touches, once [`Tool::resolve`] has normalised it (kind through
    /// discovery, namespace per object, rendered charts, terraform's plan). Policy is decided
    /// per object: the strictest action over all of them wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectRef>,
}

/// One Kubernetes object a call really touches, resolved by the tool's code: the kind as the
/// API server names it (never as the model spelled it), the namespace it will land in (`None`
/// for cluster-scoped objects).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ObjectRef {
    /// API group (`""` for the core group).
    pub group: String,
    /// The kind, e.g. `ClusterRole`.
    pub kind: String,
    /// The namespace; `None` when the kind is cluster-scoped.
    pub namespace: Option<String>,
    /// The object's name (may be empty for a selector or a generated name).
    pub name: String,
}

impl Invocation {
    /// A call that changes nothing and needs no dry-run (reads).
    pub fn read(operation: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            operation: operation.into(),
            target: target.into(),
            change: None,
            dry_run: false,
            scope: Scope::default(),
            min_effect: None,
        }
    }

    /// The same invocation with a scope.
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }
}

/// The identity of a change, for the dry-run-before-apply rule: a dry-run and the apply that
/// follows it must produce equal `Change`s (same tool, same target, same content).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Every part of where the change goes, e.g. `context=prod namespace=shop`, `release=minio
    /// namespace=minio context=dev`, `dir=/ws/tf`, `remote=/x.git branch=main`.
    pub target: String,
    /// sha256 (hex) of the normalised content: manifests after reference resolution, chart +
    /// version + values, the planfile bytes, the git tree.
    pub content_hash: String,
    /// What the model must call to dry-run this change, for the guard's refusal message.
    pub dry_run_hint: String,
}

/// sha256 of bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a JSON value in canonical form (object keys sorted at every level), so that the same
/// content hashes the same however it was written.
pub fn canonical_hash(v: &Value) -> String {
    fn canon(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    if let Some(x) = m.get(k) {
                        canon(x, out);
                    }
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canon(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canon(v, &mut s);
    sha256_hex(s.as_bytes())
}

/// A tool call the runtime itself makes on the model's behalf (verification, rollback).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FollowUp {
    pub tool: String,
    pub arguments: Value,
}

/// What a change declares about itself: read-only calls that verify it after it was applied, and
/// the call that undoes it (it must accept `dry_run: true`, which bosun runs first).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FollowUps {
    pub verify: Vec<FollowUp>,
    pub rollback: Option<FollowUp>,
}

/// What executors get besides the call: shared runtime services.
#[derive(Clone)]
pub struct ToolCtx {
    /// Register every secret value a tool learns here; all output is redacted with it.
    pub redactor: Arc<crate::redact::Redactor>,
    /// Resolves `vault:` references when a change is applied.
    pub secrets: Arc<dyn crate::secrets::SecretResolver>,
    /// A directory the session may write to (terraform dirs, values files, GitOps clones).
    pub workspace: PathBuf,
    /// Which environment each kube context is (from the policy); others are guessed by name.
    pub environments: Arc<BTreeMap<String, crate::policy::Environment>>,
    /// The token budget of one tool result: the session cuts longer results to it.
    pub max_result_tokens: usize,
}

impl ToolCtx {
    /// A context with no vault and a workspace at `workspace`.
    pub fn new(workspace: PathBuf) -> Self {
        Self {
            redactor: Arc::new(crate::redact::Redactor::new()),
            secrets: Arc::new(crate::secrets::NoVault),
            workspace,
            environments: Arc::new(BTreeMap::new()),
            max_result_tokens: crate::compact::DEFAULT_RESULT_TOKENS,
        }
    }

    /// The environment of a kube context.
    pub fn environment(&self, context: &str) -> crate::policy::Environment {
        self.environments
            .get(context)
            .copied()
            .unwrap_or_else(|| crate::policy::Environment::guess_from_context(context))
    }
}

/// A tool call failed; the message goes back to the model as the tool result.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {0} s; pass a larger timeout_seconds if the operation is slow")]
    Timeout(u64),
}

/// A tool implementation.
pub trait Tool: Send + Sync {
    /// The function name the model calls.
    fn name(&self) -> &str;
    /// Default description (the manifest's description wins when present).
    fn description(&self) -> &str;
    /// The operations this implementation supports, with their built-in effect class.
    fn operations(&self) -> &[(&'static str, EffectClass)];
    /// JSON schema of the arguments (before strict-mode post-processing).
    fn parameters(&self) -> Value;
    /// Validate the arguments and say what the call would do, including the identity of the
    /// change it makes or dry-runs. No network or cluster I/O (reading a local file the call
    /// names, such as a terraform planfile, is allowed).
    fn plan(&self, args: &Value) -> Result<Invocation, ToolError>;
    /// Turn the parsed call into the effect it will really have, with whatever I/O that takes
    /// (API discovery to resolve kinds and scopes, rendering a chart, reading a terraform plan
    /// as JSON, looking at the files a write touches). The guard calls this after [`Tool::plan`]
    /// and before any decision: policy, fingerprint and approval are computed from what it
    /// returns — never from how the model spelled the arguments. An error refuses the call.
    /// The default keeps the plan as it is (tools whose arguments already are the effect).
    fn resolve<'a>(
        &'a self,
        inv: Invocation,
        _args: &'a Value,
        _ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<Invocation, ToolError>> {
        Box::pin(async move { Ok(inv) })
    }
    /// For a change that was applied with these arguments: how to verify it and how to undo it.
    /// Called by the session after a successful `mutating`/`destructive` call (no I/O).
    fn follow_ups(&self, _args: &Value) -> FollowUps {
        FollowUps::default()
    }
    /// Execute an admitted call; the call is moved in, so it runs at most once. Returns the
    /// text the model sees (redacted by the dispatch).
    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>>;
    /// For a tool defined at run time by an MCP server (see [`crate::mcp::client`]): the name of
    /// that server. Such a tool needs no manifest — the registry offers it when the agent lists
    /// the server under `mcp_servers:` and the tool is named `<server>__<tool>`, with the effect
    /// classes of [`Tool::operations`] (bosun's classification of the server's annotations). A
    /// manifest `tools/<name>.yaml`, when the agent lists one, may still make it stricter.
    fn mcp_server(&self) -> Option<&str> {
        None
    }
}
