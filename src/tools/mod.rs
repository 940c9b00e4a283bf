//! Tools the model can call.
//!
//! A tool is one module implementing [`Tool`] plus one manifest `tools/<name>.yaml`. The
//! [`Registry`] joins the two: an operation is offered to the model only if both the code and the
//! manifest know it, and its effect class is the stricter of the two. Execution is only possible
//! with an [`Admitted`](crate::guard::Admitted) call, which only the [`guard`](crate::guard) can
//! create: there is no path from the model to an executor that skips the guard.

pub mod activate_skill;
pub mod argocd;
pub mod blocks;
pub mod confined;
pub mod delegate;
pub mod exec;
pub mod flux;
pub mod git;
pub mod helm;
pub mod k8s;
pub mod kubectl;
pub mod manifests;
pub mod metrics;
pub mod schema;
pub mod shell;
pub mod table;
pub mod terraform;
pub mod transition;
pub mod vault;

use crate::agent::{Agent, ToolManifest};
use crate::diag::Diagnostic;
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::model::ToolSpec;
use crate::prompt::{PromptOperation, PromptTool};
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Tools every agent gets without a manifest.
pub const BUILTIN_TOOL_NAMES: &[&str] = &[activate_skill::NAME, transition::NAME, delegate::NAME];

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
    /// Execute an admitted call. Returns the text the model sees (redacted by the session).
    fn execute<'a>(
        &'a self,
        call: &'a Admitted,
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

/// A tool plus what the agent's manifest allows of it.
pub struct Registered {
    pub tool: Arc<dyn Tool>,
    pub description: String,
    /// Offered operations and their effective (strictest) effect class.
    pub operations: BTreeMap<String, EffectClass>,
    /// What each offered operation does (the manifest's, else the built-in default's; may be
    /// empty): in `bosun tools` and the prompt template's `op.description`. Descriptions an
    /// agent's own manifest writes (different from the default's) are also put into the schema
    /// of the `operation` argument, where the model reads them.
    pub descriptions: BTreeMap<String, String>,
    pub spec: ToolSpec,
}

/// What an agent's manifest makes of a tool: its description and the offered operations with
/// their effective class and description.
struct Joined {
    description: String,
    operations: BTreeMap<String, EffectClass>,
    descriptions: BTreeMap<String, String>,
    /// The descriptions the agent's own manifest wrote (not the defaults'): put into the schema.
    for_model: BTreeMap<String, String>,
}

impl Joined {
    /// A tool offered as its code describes it (no manifest).
    fn plain(description: String, operations: BTreeMap<String, EffectClass>) -> Self {
        Self {
            description,
            operations,
            descriptions: BTreeMap::new(),
            for_model: BTreeMap::new(),
        }
    }
}

/// Join manifest `m` with `tool`'s code. For a built-in tool whose manifest is the agent's own
/// file, its compiled-in default counts too: an operation's baseline class is the stricter of
/// the code's and the default's, and the file may only tighten — raise classes, drop operations,
/// add prerequisites (a looser class is an error at the operation's line). Without a file (the
/// compiled-in default itself), an operation the code implements but the default lacks is still
/// offered, with the code's class and a warning: none silently disappears.
fn join_manifest(
    m: &ToolManifest,
    tool: &dyn Tool,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<Joined> {
    let code_ops: BTreeMap<&str, EffectClass> = tool.operations().iter().copied().collect();
    let default = match m.is_builtin() {
        true => None,
        false => crate::agent::manifest::builtin(&m.name).and_then(Result::ok),
    };
    let mut ops = BTreeMap::new();
    let mut descriptions = BTreeMap::new();
    let mut for_model = BTreeMap::new();
    let mut missing = Vec::new();
    for (op, spec) in &m.operations {
        let Some(&code) = code_ops.get(op.as_str()) else {
            missing.push(op.as_str());
            continue;
        };
        let default_spec = default.as_ref().and_then(|d| d.operations.get(op));
        let baseline = code.max(default_spec.map_or(code, |d| d.effect));
        if spec.effect < baseline {
            let (l, c) = m.operation_pos(op);
            errors.push(Diagnostic::error(
                &m.path,
                l,
                c,
                format!(
                    "operation `{op}` is declared `{}` but bosun classifies it as `{baseline}`; a manifest may only make an operation stricter — write `effect: {baseline}`",
                    spec.effect
                ),
            ));
            continue;
        }
        ops.insert(op.clone(), spec.effect);
        let default_text = default_spec.map_or("", |d| d.description.trim());
        let description = match spec.description.trim() {
            "" => default_text.to_string(),
            own => {
                // the agent author's own words reach the model (the defaults' would cost the
                // prompt budget ~1,400 tokens; they stay in `bosun tools` and the prompt context)
                if own != default_text {
                    for_model.insert(op.clone(), own.to_string());
                }
                own.to_string()
            }
        };
        descriptions.insert(op.clone(), description);
    }
    if m.is_builtin() {
        for (op, code) in &code_ops {
            if !m.operations.contains_key(*op) {
                warnings.push(Diagnostic::warning(
                    &m.path,
                    1,
                    1,
                    format!(
                        "tool `{}`: operation `{op}` is implemented but missing from the built-in manifest; offered as `{code}` (a bug in this bosun: please report it)",
                        m.name
                    ),
                ));
                ops.insert(op.to_string(), *code);
            }
        }
    }
    if !missing.is_empty() {
        warnings.push(Diagnostic::warning(
            &m.path,
            1,
            1,
            format!(
                "tool `{}`: operations not implemented by this bosun, not offered: {}",
                m.name,
                missing.join(", ")
            ),
        ));
    }
    if ops.is_empty() {
        warnings.push(Diagnostic::warning(
            &m.path,
            1,
            1,
            format!(
                "tool `{}` has no implemented operation; it is not offered",
                m.name
            ),
        ));
        return None;
    }
    // prerequisites add up: the file's and the default's
    let mut effective = m.clone();
    if let Some(d) = &default {
        let p = &mut effective.prerequisites;
        for b in &d.prerequisites.binaries {
            if !p.binaries.contains(b) {
                p.binaries.push(b.clone());
            }
        }
        for e in &d.prerequisites.env {
            if !p.env.contains(e) {
                p.env.push(e.clone());
            }
        }
    }
    for unmet in effective.unmet_prerequisites() {
        warnings.push(Diagnostic::warning(
            &m.path,
            1,
            1,
            format!("tool `{}`: {unmet}", m.name),
        ));
    }
    let description = [
        m.description.as_str(),
        default.as_ref().map_or("", |d| d.description.as_str()),
        tool.description(),
    ]
    .into_iter()
    .map(str::trim)
    .find(|d| !d.is_empty())
    .unwrap_or_default()
    .to_string();
    Some(Joined {
        description,
        operations: ops,
        descriptions,
        for_model,
    })
}

/// Put each offered operation's description into the schema of the `operation` argument, where
/// the model chooses it: `name: what it does` lines after the argument's own description.
fn describe_operations(parameters: &mut Value, descriptions: &BTreeMap<String, String>) {
    let lines: Vec<String> = descriptions
        .iter()
        .filter(|(_, d)| !d.trim().is_empty())
        .map(|(op, d)| format!("{op}: {}", d.trim()))
        .collect();
    if lines.is_empty() {
        return;
    }
    if let Some(Value::Object(op)) = parameters.pointer_mut("/properties/operation") {
        let own = op
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string();
        let text = match own.is_empty() {
            true => lines.join("\n"),
            false => format!("{own}\n{}", lines.join("\n")),
        };
        op.insert("description".into(), Value::String(text));
    }
}

/// The tools of one agent, keyed by name.
#[derive(Default)]
pub struct Registry {
    tools: BTreeMap<String, Registered>,
}

impl Registry {
    /// Join the available implementations with the agent's manifests. Manifest problems that
    /// make a tool unsafe are errors; tools or operations without an implementation are warnings
    /// and are not offered.
    pub fn build(
        agent: &Agent,
        implementations: Vec<Arc<dyn Tool>>,
    ) -> Result<(Self, Vec<Diagnostic>), Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut impls: BTreeMap<String, Arc<dyn Tool>> = implementations
            .into_iter()
            .map(|t| (t.name().to_string(), t))
            .collect();
        let mut reg = Registry::default();
        for m in &agent.tools {
            let Some(tool) = impls.remove(&m.name) else {
                warnings.push(Diagnostic::warning(
                    &m.path,
                    1,
                    1,
                    format!(
                        "this bosun has no executor for tool `{}` yet; it is not offered to the model",
                        m.name
                    ),
                ));
                continue;
            };
            let Some(joined) = join_manifest(m, tool.as_ref(), &mut errors, &mut warnings) else {
                continue;
            };
            reg.insert(tool, joined);
        }
        // built-in tools that need no manifest
        for name in BUILTIN_TOOL_NAMES {
            if let Some(tool) = impls.remove(*name) {
                let ops = tool
                    .operations()
                    .iter()
                    .map(|(o, e)| (o.to_string(), *e))
                    .collect();
                let d = tool.description().to_string();
                reg.insert(tool, Joined::plain(d, ops));
            }
        }
        // tools of the MCP servers the agent lists: they carry their own operations (classified
        // by bosun's code from the server's annotations); everything else without a manifest is
        // not offered
        for (name, tool) in impls {
            let server = tool.mcp_server().map(str::to_string);
            let listed = server.as_deref().is_some_and(|s| {
                agent.def.mcp_servers.iter().any(|d| d.name == s)
                    && name.starts_with(&format!("{s}{}", crate::mcp::NAME_SEPARATOR))
            });
            if !listed {
                if let Some(s) = server {
                    warnings.push(Diagnostic::warning(
                        &agent.dir.join("agent.md"),
                        1,
                        1,
                        format!("tool `{name}` comes from MCP server `{s}`, which the agent does not list under mcp_servers: (or the name lacks the `{s}__` prefix); it is not offered"),
                    ));
                }
                continue;
            }
            let ops: BTreeMap<String, EffectClass> = tool
                .operations()
                .iter()
                .map(|(o, e)| (o.to_string(), *e))
                .collect();
            if ops.is_empty() || reg.tools.contains_key(&name) {
                continue;
            }
            let d = tool.description().to_string();
            reg.insert(tool, Joined::plain(d, ops));
        }
        if errors.is_empty() {
            Ok((reg, warnings))
        } else {
            errors.extend(warnings);
            Err(errors)
        }
    }

    fn insert(&mut self, tool: Arc<dyn Tool>, joined: Joined) {
        let Joined {
            description,
            operations: ops,
            descriptions,
            for_model,
        } = joined;
        let offered: Vec<&str> = ops.keys().map(String::as_str).collect();
        let raw = tool.parameters();
        // a remote MCP tool's own `operation` argument, if it has one, keeps its enum
        let own: Vec<String> = match tool.mcp_server() {
            Some(_) => raw
                .pointer("/properties/operation/enum")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            None => offered.iter().map(|s| s.to_string()).collect(),
        };
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        let mut parameters = schema::strict(raw, &own);
        describe_operations(&mut parameters, &for_model);
        let spec = ToolSpec {
            name: tool.name().to_string(),
            description: description.clone(),
            parameters,
        };
        self.tools.insert(
            tool.name().to_string(),
            Registered {
                tool,
                description,
                operations: ops,
                descriptions,
                spec,
            },
        );
    }

    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.tools.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The schemas the model sees.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|r| r.spec.clone()).collect()
    }

    /// The tools as shown in the system prompt.
    pub fn prompt_tools(&self) -> Vec<PromptTool> {
        self.tools
            .values()
            .map(|r| PromptTool {
                name: r.spec.name.clone(),
                description: r.description.clone(),
                operations: r
                    .operations
                    .iter()
                    .map(|(name, effect)| PromptOperation {
                        name: name.clone(),
                        effect: effect.to_string(),
                        description: r.descriptions.get(name).cloned().unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Every tool implementation this bosun ships, configured for `agent` and `kube`.
pub fn implementations(agent: &Agent, kube: &crate::kube_client::KubeTarget) -> Vec<Arc<dyn Tool>> {
    let mut tools: Vec<Arc<dyn Tool>> = vec![
        Arc::new(kubectl::Kubectl::new(
            kube.kubeconfig.clone(),
            kube.context.clone(),
        )),
        Arc::new(helm::Helm::new(kube)),
        Arc::new(git::Git::new(kube)),
        Arc::new(terraform::Terraform::from_env().with_policy(&agent.policy.terraform)),
        Arc::new(vault::VaultTool::from_env()),
        Arc::new(metrics::Metrics::from_env()),
        // offered only when the agent lists `shell` in its tools (the opt-in)
        Arc::new(shell::Shell),
        Arc::new(flux::Flux::new(
            kube.kubeconfig.clone(),
            kube.context.clone(),
        )),
        // offered when the agent lists `argocd` in its tools (the shipped agent's prompt budget
        // has no room for it by default)
        Arc::new(argocd::ArgoCd::new(
            kube.kubeconfig.clone(),
            kube.context.clone(),
        )),
        Arc::new(blocks::Blocks::new(
            agent.dir.join("blocks"),
            kube.kubeconfig.clone(),
            kube.context.clone(),
        )),
        Arc::new(activate_skill::ActivateSkill::new(agent.skills.clone())),
        Arc::new(transition::Transition),
    ];
    if !agent.subagents.is_empty() {
        tools.push(Arc::new(delegate::Delegate::new(
            agent
                .subagents
                .iter()
                .map(|a| (a.def.id.clone(), a.def.description.clone()))
                .collect(),
        )));
    }
    tools
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentDef, Prompts, ToolManifest};

    struct Fake;
    impl Tool for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn description(&self) -> &str {
            "fake"
        }
        fn operations(&self) -> &[(&'static str, EffectClass)] {
            &[
                ("read", EffectClass::ReadOnly),
                ("apply", EffectClass::Mutating),
            ]
        }
        fn parameters(&self) -> Value {
            serde_json::json!({"type": "object", "properties": {"operation": {"type": "string", "enum": ["read", "apply"]}}})
        }
        fn plan(&self, _: &Value) -> Result<Invocation, ToolError> {
            Err(ToolError::Failed("unused".into()))
        }
        fn execute<'a>(
            &'a self,
            _: &'a Admitted,
            _: &'a ToolCtx,
        ) -> BoxFuture<'a, Result<String, ToolError>> {
            Box::pin(async { Err(ToolError::Failed("unused".into())) })
        }
    }

    fn agent_with(ops: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fake.yaml");
        let text = format!("name: fake\noperations:\n{ops}");
        std::fs::write(&path, &text).expect("write");
        let mut m: ToolManifest = serde_saphyr::from_str(&text).expect("manifest");
        m.path = path;
        m.text = text;
        std::mem::forget(dir);
        Agent {
            dir: ".".into(),
            def: serde_saphyr::from_str::<AgentDef>(
                "id: a\nname: a\ndescription: a\ntools: [fake]\n",
            )
            .expect("def"),
            role: String::new(),
            skills: vec![],
            tools: vec![m],
            prompts: Prompts::default(),
            policy: crate::policy::Policy::default(),
            subagents: vec![],
        }
    }

    /// A tool as an MCP server would provide it: own operations, no manifest.
    struct Remote(&'static str, &'static str);
    impl Tool for Remote {
        fn name(&self) -> &str {
            self.0
        }
        fn description(&self) -> &str {
            "remote"
        }
        fn operations(&self) -> &[(&'static str, EffectClass)] {
            &[("call", EffectClass::Mutating)]
        }
        fn parameters(&self) -> Value {
            serde_json::json!({"type": "object", "properties": {"operation": {"type": "string", "enum": ["x", "y"]}}})
        }
        fn plan(&self, _: &Value) -> Result<Invocation, ToolError> {
            Err(ToolError::Failed("unused".into()))
        }
        fn execute<'a>(
            &'a self,
            _: &'a Admitted,
            _: &'a ToolCtx,
        ) -> BoxFuture<'a, Result<String, ToolError>> {
            Box::pin(async { Err(ToolError::Failed("unused".into())) })
        }
        fn mcp_server(&self) -> Option<&str> {
            Some(self.1)
        }
    }

    #[test]
    fn tools_of_listed_mcp_servers_need_no_manifest_and_keep_their_class() {
        let mut agent = agent_with("  read: {effect: read_only}\n");
        agent.def.mcp_servers =
            serde_saphyr::from_str("- {name: docs, command: [x]}\n").expect("servers");
        let tools: Vec<Arc<dyn Tool>> = vec![
            Arc::new(Fake),
            Arc::new(Remote("docs__write", "docs")),
            Arc::new(Remote("other__write", "other")),
            Arc::new(Remote("write", "docs")),
        ];
        let (reg, warnings) = Registry::build(&agent, tools).expect("builds");
        let r = reg.get("docs__write").expect("offered");
        assert_eq!(r.operations.get("call"), Some(&EffectClass::Mutating));
        // the remote tool's own `operation` argument is not bosun's operation enum
        assert_eq!(
            r.spec.parameters["properties"]["operation"]["enum"],
            serde_json::json!(["x", "y"])
        );
        assert!(reg.get("other__write").is_none(), "server not listed");
        assert!(reg.get("write").is_none(), "name without the server prefix");
        assert_eq!(
            warnings
                .iter()
                .filter(|w| w.message.contains("not offered"))
                .count(),
            2,
            "{warnings:#?}"
        );
    }

    #[test]
    fn a_manifest_can_make_a_remote_tool_stricter_not_looser() {
        let mut agent = agent_with("  call: {effect: destructive}\n");
        agent.def.mcp_servers =
            serde_saphyr::from_str("- {name: docs, command: [x]}\n").expect("servers");
        let (reg, _) =
            Registry::build(&agent, vec![Arc::new(Remote("fake", "docs"))]).expect("builds");
        let r = reg.get("fake").expect("offered through its manifest");
        assert_eq!(r.operations.get("call"), Some(&EffectClass::Destructive));
        let agent = agent_with("  call: {effect: read_only}\n");
        assert!(Registry::build(&agent, vec![Arc::new(Remote("fake", "docs"))]).is_err());
    }

    #[test]
    fn a_manifest_cannot_loosen_an_effect_class() {
        let agent = agent_with("  read: {effect: read_only}\n  apply: {effect: dry_run}\n");
        let errs = Registry::build(&agent, vec![Arc::new(Fake)])
            .err()
            .expect("must fail");
        let e = errs.iter().find(|d| d.is_error()).expect("an error");
        assert!(
            e.message
                .contains("`apply` is declared `dry_run` but bosun classifies it as `mutating`"),
            "{e}"
        );
        assert_eq!(e.line, 4);
    }

    #[test]
    fn tightening_wins_and_unlisted_operations_are_not_offered() {
        let agent = agent_with("  read: {effect: destructive}\n");
        let (reg, _) = Registry::build(&agent, vec![Arc::new(Fake)]).expect("builds");
        let r = reg.get("fake").expect("registered");
        assert_eq!(r.operations.get("read"), Some(&EffectClass::Destructive));
        assert!(!r.operations.contains_key("apply"));
        assert_eq!(
            r.spec.parameters["properties"]["operation"]["enum"],
            serde_json::json!(["read"])
        );
    }
}
