//! [`Runtime`]: what sessions share and what does not change between them — the agent, the
//! registry, the model client, the rendered system prompt, the offered specs, guard settings,
//! subagent runtimes.

use crate::agent::Agent;
use crate::diag::Diagnostic;
use crate::guard::GuardConfig;
use crate::kube_client::KubeTarget;
use crate::model::{ModelClient, ToolSpec};
use crate::tools::{self, Registry, ToolCtx};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Default cap on model turns per task when the agent does not set `max_turns`.
pub const DEFAULT_MAX_TURNS: u32 = 40;
/// Options for building a [`Runtime`].
#[derive(Clone, Default)]
pub struct RuntimeOptions {
    /// The cluster the Kubernetes tools talk to.
    pub kube: KubeTarget,
    /// Overrides the agent's `max_turns`.
    pub max_turns: Option<u32>,
    /// Maximum model turns spent in one planner state (default: the task's limit).
    pub max_turns_per_state: Option<u32>,
    /// The token budget of one tool result (default `compact::DEFAULT_RESULT_TOKENS`).
    pub max_result_tokens: Option<usize>,
    /// The same call with the same arguments this many times in a task is a loop (default 3):
    /// the call is not run again, the model is nudged; one more repeat fails the task.
    pub loop_limit: Option<u32>,
    /// Extra facts rendered into the system prompt (`environment` in the template).
    pub environment: BTreeMap<String, String>,
    /// Where tools may write (default: a fresh temporary directory per runtime).
    pub workspace: Option<PathBuf>,
    /// Resolves `vault:` references (default: none configured).
    pub secrets: Option<Arc<dyn crate::secrets::SecretResolver>>,
    /// The redactor shared with the resolver (default: a new one).
    pub redactor: Option<Arc<crate::redact::Redactor>>,
    /// Dry-run age limit, approver, mode and task scope (the policy is always the agent's
    /// `policy.yaml`). The mode and scope also decide what the model is offered and told.
    pub guard: GuardConfig,
    /// Where each session's audit log (`<session>.audit.jsonl`) is written; `None`: no audit log.
    pub audit_dir: Option<PathBuf>,
    /// Where sessions are saved (`<id>.jsonl`) for `--resume`; `None`: not saved.
    pub sessions_dir: Option<PathBuf>,
    /// Suggest mode: the directory a task's change proposal is written to (`{session}` in it
    /// becomes the session id; each task of a session replaces the last one's);
    /// `None`: `<sessions_dir>/<session>.proposal`, or not written without a sessions dir.
    pub proposal_dir: Option<PathBuf>,
    /// Tools of the embedding application, offered like built-in ones when the agent lists them
    /// under `tools:` (a manifest `tools/<name>.yaml` is optional and may only tighten); they
    /// pass the same guard. See `examples/custom_tool.rs`.
    pub extra_tools: Vec<Arc<dyn tools::Tool>>,
}

/// Errors building a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// Everything a session needs that does not change between sessions. Cheap to share (`Arc`).
pub struct Runtime {
    pub agent: Agent,
    pub registry: Registry,
    pub model: Arc<dyn ModelClient>,
    pub system_prompt: String,
    pub specs: Vec<ToolSpec>,
    pub max_turns: u32,
    pub max_turns_per_state: u32,
    pub loop_limit: u32,
    pub ctx: ToolCtx,
    pub guard_config: GuardConfig,
    pub audit_dir: Option<PathBuf>,
    pub sessions_dir: Option<PathBuf>,
    /// See [`RuntimeOptions::proposal_dir`].
    pub proposal_dir: Option<PathBuf>,
    /// Runtimes of the agent's subagents, by id (they share this runtime's workspace, redactor,
    /// secrets and guard settings).
    pub subagents: BTreeMap<String, Arc<Runtime>>,
    /// The cluster the Kubernetes tools talk to (the report reads access points from it).
    pub kube: KubeTarget,
    /// Keeps a temporary workspace alive as long as the runtime.
    _workspace_dir: Option<tempfile::TempDir>,
}

impl Runtime {
    /// Build a runtime for `agent`. Returns warnings alongside.
    pub fn new(
        agent: Agent,
        model: Arc<dyn ModelClient>,
        opts: RuntimeOptions,
    ) -> Result<(Self, Vec<Diagnostic>), RuntimeError> {
        let child_opts = opts.clone();
        let mut impls = tools::implementations(&agent, &opts.kube);
        impls.extend(opts.extra_tools.iter().cloned());
        let (registry, warnings) = Registry::build(&agent, impls).map_err(RuntimeError::Invalid)?;
        // the task's mode and scope: what the model is offered and told (the guard enforces both)
        let mode = opts.guard.mode;
        let mut environment = opts.environment.clone();
        for (k, v) in crate::scope::prompt_facts(mode, opts.guard.scope.as_ref()) {
            environment.entry(k).or_insert(v);
        }
        let prompt_tools =
            crate::call::offered_prompt_tools(&registry, registry.prompt_tools(), mode);
        let system_prompt = crate::prompt::render_system(&agent, &prompt_tools, &environment)
            .map_err(|d| RuntimeError::Invalid(vec![d]))?;
        let mut specs = crate::call::offered_specs(&registry, registry.specs(), mode);
        let subagent_list: Vec<(String, String)> = agent
            .subagents
            .iter()
            .map(|a| (a.def.id.clone(), a.def.description.clone()))
            .collect();
        specs.extend(super::control::specs(&subagent_list));
        let (workspace, tmp) = match opts.workspace {
            Some(w) => (w, None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("bosun-workspace-")
                    .tempdir()
                    .map_err(|e| {
                        RuntimeError::Invalid(vec![Diagnostic::error(
                            &std::env::temp_dir(),
                            0,
                            0,
                            format!("cannot create a workspace directory: {e}; pass a workspace"),
                        )])
                    })?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let mut ctx = ToolCtx::new(workspace);
        if let Some(r) = opts.redactor {
            ctx.redactor = r;
        }
        if let Some(s) = opts.secrets {
            ctx.secrets = s;
        }
        if let Some(n) = opts.max_result_tokens {
            ctx.max_result_tokens = n.max(200);
        }
        let mut guard_config = opts.guard;
        guard_config.policy = Arc::new(agent.policy.clone());
        ctx.environments = Arc::new(agent.policy.environments.clone());
        let max_turns = opts
            .max_turns
            .or(agent.def.max_turns)
            .unwrap_or(DEFAULT_MAX_TURNS)
            .max(1);
        let mut subagents = BTreeMap::new();
        for sub in &agent.subagents {
            let mut o = child_opts.clone();
            o.workspace = Some(ctx.workspace.clone());
            o.redactor = Some(ctx.redactor.clone());
            o.secrets = Some(ctx.secrets.clone());
            o.guard = guard_config.clone();
            o.sessions_dir = None;
            let (child, _) = Self::new(sub.clone(), model.clone(), o)?;
            subagents.insert(sub.def.id.clone(), Arc::new(child));
        }
        Ok((
            Self {
                agent,
                subagents,
                registry,
                model,
                system_prompt,
                specs,
                max_turns,
                max_turns_per_state: opts.max_turns_per_state.unwrap_or(max_turns).max(1),
                loop_limit: opts.loop_limit.unwrap_or(3).max(1),
                ctx,
                guard_config,
                audit_dir: opts.audit_dir,
                sessions_dir: opts.sessions_dir,
                kube: opts.kube.clone(),
                proposal_dir: opts.proposal_dir,
                _workspace_dir: tmp,
            },
            warnings,
        ))
    }

    /// Load the agent in `dir` and build a shared runtime: the embedding entry point.
    pub fn from_dir(
        dir: &std::path::Path,
        model: Arc<dyn ModelClient>,
        opts: RuntimeOptions,
    ) -> Result<Arc<Self>, RuntimeError> {
        let provided: Vec<String> = opts
            .extra_tools
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        let loaded = Agent::load_with(dir, &provided).map_err(|d| RuntimeError::Invalid(d.0))?;
        let (rt, _warnings) = Self::new(loaded.agent, model, opts)?;
        Ok(Arc::new(rt))
    }

    /// The agent directory.
    pub fn agent_dir(&self) -> PathBuf {
        self.agent.dir.clone()
    }
}
