//! The core: a [`Runtime`] (agent, tools, model, system prompt — shareable) and [`Session`]s
//! over it. A session takes operations and emits [`Event`]s; it never prints. Frontends (the
//! CLI, tests, embedders) render the events.

use crate::agent::Agent;
use crate::diag::Diagnostic;
use crate::guard::{Decision, Guard, GuardConfig};
use crate::kube_client::KubeTarget;
use crate::model::{ChatRequest, FinishReason, Message, ModelClient, ModelError, ToolSpec, Usage};
use crate::planner::State;
use crate::tools::transition::{self, TransitionArgs};
use crate::tools::{self, Registry, ToolCtx};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// Default cap on model turns per task when the agent does not set `max_turns`.
pub const DEFAULT_MAX_TURNS: u32 = 40;

/// Events a session emits, in order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A task started.
    TaskStarted { task: String, model: String },
    /// Streamed assistant text.
    AssistantDelta { text: String },
    /// A complete assistant text message.
    AssistantMessage { text: String },
    /// The model asked for a tool call.
    ToolCallStarted {
        call_id: String,
        tool: String,
        arguments: String,
    },
    /// What the guard decided about it.
    GuardDecision(Decision),
    /// The call finished (or was refused); `output` is exactly what the model receives.
    ToolCallFinished {
        call_id: String,
        tool: String,
        ok: bool,
        output: String,
        duration_ms: u64,
    },
    /// A change needs a human decision: answer with `Op::Approve` / `Op::Deny` and this id.
    ApprovalRequested {
        id: u64,
        request: crate::guard::ApprovalRequest,
    },
    /// The user interrupted the task; the session keeps its history and takes the next turn.
    TaskInterrupted,
    /// A subagent took over a sub-task; its tool calls follow, until `SubagentFinished`.
    SubagentStarted { agent: String, task: String },
    /// The subagent is done; its answer went back to the parent as a tool result.
    SubagentFinished { agent: String, ok: bool },
    /// The planner moved.
    StateChanged {
        from: State,
        to: State,
        justification: String,
    },
    /// One model round-trip finished.
    TurnComplete { turn: u32, usage: Usage },
    /// The task ended with a final answer.
    TaskComplete {
        /// The runtime's verdict (not the model's).
        status: TaskStatus,
        verdict: String,
        answer: String,
        turns: u32,
        tool_calls: u32,
        usage: Usage,
        state: State,
        report: Option<String>,
    },
    /// The task ended with an error.
    TaskFailed { error: String },
}

/// Where events go. A closed receiver is not an error: the session keeps working.
pub type EventSink = UnboundedSender<Event>;

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
    /// Tools of the embedding application, offered like built-in ones (each needs a manifest
    /// `tools/<name>.yaml` and a place in the agent's `tools:`; they pass the same guard).
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
            crate::scope::offered_prompt_tools(&registry, registry.prompt_tools(), mode);
        let system_prompt = crate::prompt::render_system(&agent, &prompt_tools, &environment)
            .map_err(|d| RuntimeError::Invalid(vec![d]))?;
        let specs = crate::scope::offered_specs(&registry, registry.specs(), mode);
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
        let loaded = Agent::load(dir).map_err(|d| RuntimeError::Invalid(d.0))?;
        let (rt, _warnings) = Self::new(loaded.agent, model, opts)?;
        Ok(Arc::new(rt))
    }

    /// The agent directory.
    pub fn agent_dir(&self) -> PathBuf {
        self.agent.dir.clone()
    }
}

/// What the runtime — not the model — concludes about a task that ended with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// The planner reached completion, every applied change passed its checks, nothing is
    /// pending — or the task changed nothing and tried to change nothing (a question answered).
    Success,
    /// Verification failed, the task moved to `failed`, or it tried to change something and
    /// ended anywhere but completion.
    Failed,
    /// A change was denied by policy or waits for a human approval.
    NeedsApproval,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::NeedsApproval => "needs_approval",
        }
    }
}

/// How a task ended with an answer (which may still be a failure: see [`Outcome::status`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The runtime's verdict.
    pub status: TaskStatus,
    /// Why the runtime decided `status` (one sentence).
    pub verdict: String,
    pub answer: String,
    pub turns: u32,
    pub tool_calls: u32,
    pub usage: Usage,
    /// The planner state the task ended in.
    pub state: State,
    /// The report given with the move to completion or failed, if any.
    pub report: Option<String>,
    /// Changes applied in this task, with the dry-run that authorised each.
    pub applied: Vec<AppliedChange>,
    /// Calls the policy denied or that waited for an approval that was not given.
    pub blocked: Vec<Decision>,
}

/// A change applied in this task whose declared checks have not passed yet.
#[derive(Debug, Clone)]
struct Pending {
    tool: String,
    target: String,
    follow: tools::FollowUps,
}

/// A change that was applied, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AppliedChange {
    pub tool: String,
    pub operation: String,
    pub target: String,
    pub fingerprint: String,
    pub approved_by: Option<String>,
    /// The first lines of the successful dry-run's output.
    pub dry_run_evidence: String,
    /// The first lines of the apply's output.
    pub result: String,
}

/// Why a task did not end with an answer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the model used all {0} turns without a final answer; raise the limit (--max-turns, or max_turns in agent.md) or split the task")]
    MaxTurns(u32),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("the model is stuck in a loop: it called `{tool}` with the same arguments {times} times and ignored the nudge to stop; try a larger model, or rephrase the task")]
    Loop { tool: String, times: u32 },
    #[error("the model spent {0} turns in the {1} state without moving on; raise max_turns_per_state or split the task")]
    StateTurns(u32, State),
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// A switch a frontend flips to interrupt the running task (Ctrl-C). The task stops at the next
/// safe point: while waiting for the model, or between tool calls — never in the middle of a
/// tool call that may be changing something.
#[derive(Debug, Default)]
pub struct Interrupt {
    flag: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Interrupt {
    pub fn trigger(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn take(&self) -> bool {
        self.flag.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            if self.flag.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            n.await;
        }
    }
}

/// An approver that asks the frontend: it emits `Event::ApprovalRequested` and waits for
/// [`ChannelApprover::resolve`] (driven by `Op::Approve` / `Op::Deny`).
pub struct ChannelApprover {
    events: EventSink,
    next: std::sync::atomic::AtomicU64,
    pending: std::sync::Mutex<
        std::collections::HashMap<
            u64,
            tokio::sync::oneshot::Sender<crate::guard::ApprovalDecision>,
        >,
    >,
}

impl ChannelApprover {
    pub fn new(events: EventSink) -> Self {
        Self {
            events,
            next: std::sync::atomic::AtomicU64::new(1),
            pending: Default::default(),
        }
    }

    /// Answer request `id`. Returns false if no such request is waiting.
    pub fn resolve(&self, id: u64, decision: crate::guard::ApprovalDecision) -> bool {
        let tx = match self.pending.lock() {
            Ok(mut p) => p.remove(&id),
            Err(e) => e.into_inner().remove(&id),
        };
        tx.is_some_and(|tx| tx.send(decision).is_ok())
    }
}

impl crate::guard::Approver for ChannelApprover {
    fn decide<'a>(
        &'a self,
        req: &'a crate::guard::ApprovalRequest,
    ) -> futures::future::BoxFuture<'a, crate::guard::ApprovalDecision> {
        Box::pin(async move {
            let id = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (tx, rx) = tokio::sync::oneshot::channel();
            match self.pending.lock() {
                Ok(mut p) => p.insert(id, tx),
                Err(e) => e.into_inner().insert(id, tx),
            };
            let _ = self.events.send(Event::ApprovalRequested {
                id,
                request: req.clone(),
            });
            rx.await.unwrap_or(crate::guard::ApprovalDecision::Denied {
                by: "bosun".into(),
                reason: "the frontend went away before answering".into(),
            })
        })
    }
}

/// One conversation with the agent.
pub struct Session {
    id: String,
    /// Applied changes waiting for their verification (the gate before completion).
    pending: Vec<Pending>,
    /// Numbering of the runtime's own calls (verification, rollback).
    own_calls: u32,
    /// A subagent's session: task start/end events are the parent's to emit.
    is_child: bool,
    evidence: std::collections::HashMap<String, String>,
    applied: Vec<AppliedChange>,
    blocked: Vec<Decision>,
    file: Option<crate::store::SessionFile>,
    interrupt: Arc<Interrupt>,
    audit: Option<Arc<crate::audit::AuditLog>>,
    runtime: Arc<Runtime>,
    messages: Vec<Message>,
    guard: Arc<Guard>,
    state: State,
    report: Option<String>,
    usage: Usage,
    events: EventSink,
    /// The last run of the verification gate failed (and nothing has passed it since).
    verification_failed: bool,
    /// A change was attempted in this task (admitted, or refused for want of a dry-run).
    change_attempted: bool,
}

impl Session {
    /// A new session. Fails only if its audit log cannot be opened.
    pub fn new(runtime: Arc<Runtime>, events: EventSink) -> Result<Self, SessionError> {
        let messages = vec![Message::System {
            content: runtime.system_prompt.clone(),
        }];
        let id = crate::audit::new_session_id();
        let audit = match &runtime.audit_dir {
            Some(dir) => Some(Arc::new(crate::audit::AuditLog::open(dir, &id)?)),
            None => None,
        };
        let file = match &runtime.sessions_dir {
            Some(dir) => {
                let f = crate::store::SessionFile::open(dir, &id)?;
                f.append(
                    &runtime.ctx.redactor,
                    &crate::store::Entry::Meta {
                        id: id.clone(),
                        agent: runtime.agent.def.id.clone(),
                        model: runtime.model.model_name().to_string(),
                        created: jiff::Timestamp::now().to_string(),
                    },
                )?;
                f.append(
                    &runtime.ctx.redactor,
                    &crate::store::Entry::Message {
                        message: messages[0].clone(),
                    },
                )?;
                Some(f)
            }
            None => None,
        };
        Ok(Self {
            id,
            is_child: false,
            pending: vec![],
            own_calls: 0,
            evidence: Default::default(),
            applied: vec![],
            blocked: vec![],
            file,
            interrupt: Arc::new(Interrupt::default()),
            audit,
            guard: Arc::new(Guard::new(runtime.guard_config.clone())),
            runtime,
            messages,
            state: State::Intake,
            report: None,
            usage: Usage::default(),
            events,
            verification_failed: false,
            change_attempted: false,
        })
    }

    /// This session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session file, if saved.
    pub fn file_path(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(|f| f.path())
    }

    fn save(&self, e: &crate::store::Entry) {
        if let Some(f) = &self.file {
            if let Err(err) = f.append(&self.runtime.ctx.redactor, e) {
                tracing::warn!("{err}");
            }
        }
    }

    /// Append a message to the conversation (and the session file).
    fn push(&mut self, m: Message) {
        self.save(&crate::store::Entry::Message { message: m.clone() });
        self.messages.push(m);
    }

    /// Resume saved session `id` from the runtime's sessions directory: its messages, planner
    /// state and fresh dry-runs come back; changes its audit log shows as applied (or cut off
    /// mid-apply) are marked so the guard will not apply them again.
    pub fn resume(
        runtime: Arc<Runtime>,
        events: EventSink,
        id: &str,
    ) -> Result<Self, SessionError> {
        let dir =
            runtime
                .sessions_dir
                .clone()
                .ok_or_else(|| crate::store::StoreError::NotFound {
                    id: id.into(),
                    dir: PathBuf::from("(sessions are not saved: no sessions dir)"),
                })?;
        let saved = crate::store::load(&dir, id)?;
        let audit = match &runtime.audit_dir {
            Some(d) => Some(Arc::new(crate::audit::AuditLog::open(d, id)?)),
            None => None,
        };
        let file = crate::store::SessionFile::open(&dir, id)?;
        let guard = Arc::new(Guard::new(runtime.guard_config.clone()));
        let now = jiff::Timestamp::now();
        // the file lists each dry-run not used up by an admitted apply (see store::load)
        for (fp, at) in &saved.dry_runs {
            let age = at
                .parse::<jiff::Timestamp>()
                .ok()
                .and_then(|t| u64::try_from(now.as_second() - t.as_second()).ok())
                .map(std::time::Duration::from_secs);
            if let Some(age) = age {
                guard.restore_dry_run(fp.clone(), age);
            }
        }
        if let Some(a) = &audit {
            for short in crate::store::applied_from_audit(a.path()) {
                guard.mark_applied(&short);
            }
        }
        let mut messages = saved.messages;
        if messages.is_empty() {
            messages.push(Message::System {
                content: runtime.system_prompt.clone(),
            });
        }
        let mut s = Self {
            id: id.to_string(),
            is_child: false,
            pending: vec![],
            own_calls: 0,
            evidence: Default::default(),
            applied: vec![],
            blocked: vec![],
            file: Some(file),
            interrupt: Arc::new(Interrupt::default()),
            audit,
            guard,
            runtime,
            messages,
            state: saved.state.unwrap_or(State::Intake),
            report: saved.report,
            usage: Usage::default(),
            events,
            verification_failed: false,
            change_attempted: false,
        };
        s.repair_after_interrupt();
        Ok(s)
    }

    /// Use `approver` for this session's approvals instead of the runtime's (the guard keeps
    /// its recorded dry-runs and applied changes).
    pub fn with_approver(mut self, approver: Arc<dyn crate::guard::Approver>) -> Self {
        self.guard = Arc::new(self.guard.with_approver(approver));
        self
    }

    /// The switch that interrupts this session's running task.
    pub fn interrupter(&self) -> Arc<Interrupt> {
        self.interrupt.clone()
    }

    /// After an interruption: every tool call the model asked for gets a result, so the
    /// conversation stays valid for the next turn.
    fn repair_after_interrupt(&mut self) {
        let answered: std::collections::HashSet<String> = self
            .messages
            .iter()
            .filter_map(|m| match m {
                Message::Tool { tool_call_id, .. } => Some(tool_call_id.clone()),
                _ => None,
            })
            .collect();
        let missing: Vec<String> = self
            .messages
            .iter()
            .rev()
            .find_map(|m| match m {
                Message::Assistant { tool_calls, .. } if !tool_calls.is_empty() => Some(
                    tool_calls
                        .iter()
                        .filter(|c| !answered.contains(&c.id))
                        .map(|c| c.id.clone())
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default();
        for id in missing {
            self.push(Message::Tool {
                tool_call_id: id,
                content: "not run: the user interrupted the task".into(),
            });
        }
    }

    /// The audit log path, if auditing.
    pub fn audit_path(&self) -> Option<&std::path::Path> {
        self.audit.as_ref().map(|a| a.path())
    }

    fn audit(&self, rec: &crate::audit::Record<'_>) -> Result<(), crate::audit::AuditError> {
        match &self.audit {
            Some(a) => a.write(&self.runtime.ctx.redactor, rec),
            None => Ok(()),
        }
    }

    /// A subagent's session under this one: it shares this session's guard (dry-runs,
    /// approvals, used ids), audit log and event stream; it is not saved on its own.
    fn child(&self, rt: Arc<Runtime>) -> Self {
        let messages = vec![Message::System {
            content: rt.system_prompt.clone(),
        }];
        Self {
            id: format!("{}/{}", self.id, rt.agent.def.id),
            is_child: true,
            pending: vec![],
            own_calls: 0,
            evidence: Default::default(),
            applied: vec![],
            blocked: vec![],
            file: None,
            interrupt: self.interrupt.clone(),
            audit: self.audit.clone(),
            guard: self.guard.clone(),
            runtime: rt,
            messages,
            state: State::Intake,
            report: None,
            usage: Usage::default(),
            events: self.events.clone(),
            verification_failed: false,
            change_attempted: false,
        }
    }

    /// The planner state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The guard of this session.
    pub fn guard(&self) -> &Arc<Guard> {
        &self.guard
    }

    /// Apply a transition request; `Err` is the refusal the model gets.
    async fn transition(
        &mut self,
        rt: &Runtime,
        a: &TransitionArgs,
    ) -> Result<Result<String, String>, SessionError> {
        let from = self.state;
        if !from.successors().contains(&a.to) {
            let ok: Vec<&str> = from.successors().iter().map(|s| s.as_str()).collect();
            return Ok(Err(format!(
                "cannot move from {from} to {}; from {from} you may move to: {}",
                a.to,
                if ok.is_empty() {
                    "nothing (the task is over)".to_string()
                } else {
                    ok.join(", ")
                }
            )));
        }
        if a.to == State::Deployment && !self.guard.has_validated_change() {
            return Ok(Err("cannot move to deployment: no change has passed a dry-run yet (or the dry-runs have expired); run the dry-run of each change in the validation state first".into()));
        }
        // the verification gate: what was deployed must pass its own checks before completion
        if from == State::Verification && a.to == State::Completion {
            if let Err(why) = self.verification_gate(rt).await? {
                return Ok(Err(why));
            }
        }
        self.state = a.to;
        self.save(&crate::store::Entry::State { state: a.to });
        if matches!(a.to, State::Completion | State::Failed) {
            self.report = a.report.clone();
            if let Some(r) = &a.report {
                self.save(&crate::store::Entry::Report { report: r.clone() });
            }
        }
        if let Err(e) = self.audit(&crate::audit::Record::Transition {
            from,
            to: a.to,
            justification: &a.justification,
        }) {
            tracing::warn!("{e}");
        }
        self.emit(Event::StateChanged {
            from,
            to: a.to,
            justification: a.justification.clone(),
        });
        let next = match a.to {
            State::Deployment => " Apply exactly the changes whose dry-run passed; then move to verification.",
            State::Verification => " Check rollout status and health of what you deployed; then completion, or back to coding / deployment (rollback) if something is wrong.",
            State::Completion | State::Failed => " Now give your final answer: the report.",
            _ => "",
        };
        Ok(Ok(format!("state: {from} → {}.{next}", a.to)))
    }

    /// Run the checks every applied change declared. On failure, roll the changes back when the
    /// policy says so (dry-run first, then the undo; both through the guard and the audit log).
    /// `Ok(Err(message))` is the refusal the model gets.
    async fn verification_gate(
        &mut self,
        rt: &Runtime,
    ) -> Result<Result<(), String>, SessionError> {
        if self.pending.is_empty() {
            return Ok(Ok(()));
        }
        let r = Box::pin(self.run_gate(rt)).await?;
        self.verification_failed = r.is_err();
        Ok(r)
    }

    async fn run_gate(&mut self, rt: &Runtime) -> Result<Result<(), String>, SessionError> {
        let pending = std::mem::take(&mut self.pending);
        let mut failed: Vec<(Pending, String)> = Vec::new();
        for p in &pending {
            for v in &p.follow.verify {
                self.own_calls += 1;
                let call = crate::model::ToolCall {
                    id: format!("bosun-verify-{}-{}", self.id, self.own_calls),
                    name: v.tool.clone(),
                    arguments: v.arguments.to_string(),
                };
                let (ok, out) = Box::pin(self.run_call(rt, &call, State::Verification)).await?;
                if !ok {
                    failed.push((p.clone(), out));
                    break;
                }
            }
        }
        if failed.is_empty() {
            return Ok(Ok(()));
        }
        let mut msg = String::from("verification failed, so the task cannot complete:\n");
        for (p, out) in &failed {
            msg.push_str(&format!(
                "- {} {}: {}\n",
                p.tool,
                p.target,
                out.lines().next().unwrap_or("")
            ));
        }
        if !rt.guard_config.policy.verification.rollback {
            msg.push_str("The policy does not roll back automatically. Fix the change (coding → validation → deployment) or roll it back yourself, then verify again; or move to failed with a report.");
            // the failed changes stay pending: they are checked again next time
            self.pending = failed.into_iter().map(|(p, _)| p).collect();
            return Ok(Err(msg));
        }
        let mut all_rolled_back = true;
        // the undo calls are not gated again (the policy's metric checks just failed; they
        // would fail the undo too): what they would add to `pending` is dropped below
        let pending_before = self.pending.len();
        for (p, _) in &failed {
            let Some(rb) = &p.follow.rollback else {
                all_rolled_back = false;
                msg.push_str(&format!(
                    "- {} {}: no way to roll it back automatically; do it yourself\n",
                    p.tool, p.target
                ));
                continue;
            };
            let mut outcome = String::new();
            let mut done = false;
            for dry in [true, false] {
                let mut args = rb.arguments.clone();
                if let Some(o) = args.as_object_mut() {
                    o.insert(
                        "dry_run".into(),
                        if dry {
                            serde_json::Value::Bool(true)
                        } else {
                            serde_json::Value::Null
                        },
                    );
                }
                self.own_calls += 1;
                let call = crate::model::ToolCall {
                    id: format!("bosun-rollback-{}-{}", self.id, self.own_calls),
                    name: rb.tool.clone(),
                    arguments: args.to_string(),
                };
                let (ok, out) = Box::pin(self.run_call(rt, &call, State::Deployment)).await?;
                if !ok {
                    outcome = format!(
                        "rollback {} failed: {}",
                        if dry { "dry-run" } else { "" },
                        out.lines().next().unwrap_or("")
                    );
                    break;
                }
                if !dry {
                    done = true;
                    outcome = format!(
                        "rolled back ({}): {}",
                        rb.tool,
                        out.lines().next().unwrap_or("")
                    );
                }
            }
            all_rolled_back &= done;
            msg.push_str(&format!("- {} {}: {outcome}\n", p.tool, p.target));
        }
        self.pending.truncate(pending_before);
        msg.push_str(if all_rolled_back {
            "The policy rolled the failed changes back. Move to failed with a report of what happened, or back to coding to fix the change."
        } else {
            "Not every failed change could be rolled back: check the current state now, then move to failed with a report of what is running."
        });
        Ok(Err(msg))
    }

    /// The runtime's verdict on a task that ended with an answer: the model's words do not
    /// count, only the planner state, the verification gate and what the guard saw.
    fn verdict(&self) -> (TaskStatus, String) {
        if !self.blocked.is_empty() {
            return (
                TaskStatus::NeedsApproval,
                format!(
                    "{} change(s) were denied by policy or wait for a human approval",
                    self.blocked.len()
                ),
            );
        }
        if self.verification_failed {
            return (
                TaskStatus::Failed,
                "the checks of an applied change failed (see the verification and rollback results)".into(),
            );
        }
        if !self.pending.is_empty() {
            return (
                TaskStatus::Failed,
                format!(
                    "{} applied change(s) were never verified",
                    self.pending.len()
                ),
            );
        }
        match self.state {
            State::Failed => (
                TaskStatus::Failed,
                "the task moved to the failed state".into(),
            ),
            State::Completion => (
                TaskStatus::Success,
                "the task reached completion and every applied change passed its checks".into(),
            ),
            s if self.change_attempted || !self.applied.is_empty() => (
                TaskStatus::Failed,
                format!(
                    "the task tried to change something but ended in the {s} state, not completion"
                ),
            ),
            _ => (
                TaskStatus::Success,
                "the task answered without changing anything".into(),
            ),
        }
    }

    /// The per-turn planner note appended to the last message of each request.
    fn state_note(&self) -> String {
        let allowed: Vec<&str> = [
            crate::effect::EffectClass::ReadOnly,
            crate::effect::EffectClass::DryRun,
            crate::effect::EffectClass::Mutating,
            crate::effect::EffectClass::Destructive,
        ]
        .into_iter()
        .filter(|e| self.state.allows(*e))
        .map(|e| e.as_str())
        .collect();
        let moves: Vec<&str> = self.state.successors().iter().map(|s| s.as_str()).collect();
        format!(
            "\n\n[bosun] state: {}; allowed operations: {}; validated changes (dry-run passed, not yet applied): {}; next states: {}",
            self.state,
            allowed.join(", "),
            self.guard.dry_runs(),
            if moves.is_empty() { "none".to_string() } else { moves.join(", ") }
        )
    }

    /// The conversation so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Total token usage so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Run one user task to its final answer.
    pub async fn run_task(&mut self, task: &str) -> Result<Outcome, SessionError> {
        let rt = self.runtime.clone();
        if !self.is_child {
            self.emit(Event::TaskStarted {
                task: task.to_string(),
                model: rt.model.model_name().to_string(),
            });
        }
        self.push(Message::User {
            content: task.to_string(),
        });
        self.interrupt.take(); // an interrupt before the task started does not count
        self.applied.clear();
        self.blocked.clear();
        self.change_attempted = false;
        self.verification_failed = false;
        let result = self.drive(&rt).await;
        if matches!(result, Err(SessionError::Interrupted)) {
            self.repair_after_interrupt();
            if !self.is_child {
                self.emit(Event::TaskInterrupted);
            }
            return result;
        }
        if self.is_child {
            return result;
        }
        match &result {
            Ok(o) => self.emit(Event::TaskComplete {
                status: o.status,
                verdict: o.verdict.clone(),
                answer: o.answer.clone(),
                turns: o.turns,
                tool_calls: o.tool_calls,
                usage: o.usage,
                state: o.state,
                report: o.report.clone(),
            }),
            Err(e) => self.emit(Event::TaskFailed {
                error: e.to_string(),
            }),
        }
        result
    }

    /// The one call path ([`crate::dispatch`]) with this session's guard, audit log, session
    /// file and events.
    fn env<'a>(&'a self, rt: &'a Runtime) -> crate::dispatch::CallEnv<'a> {
        crate::dispatch::CallEnv {
            registry: &rt.registry,
            ctx: &rt.ctx,
            guard: &self.guard,
            audit: self.audit.as_deref(),
            file: self.file.as_ref(),
            events: Some(&self.events),
        }
    }

    /// One tool call, start to finish, through [`crate::dispatch`]: admission (in `state`),
    /// then the session's own verbs (`transition`, `delegate`) or the tool, then redaction,
    /// budget, audit and events. Returns (ok, what the model is told).
    async fn run_call(
        &mut self,
        rt: &Runtime,
        call: &crate::model::ToolCall,
        state: State,
    ) -> Result<(bool, String), SessionError> {
        let adm = self.env(rt).admit(call, state).await;
        if adm.decision.refusal.is_some_and(|k| k.blocks_change()) {
            self.blocked.push(adm.decision.clone());
        }
        // the task set out to change something when a change was admitted, or refused for want
        // of its dry-run (the model tried to apply): only completion makes that a success. A
        // change refused for the planner state, as already applied, or replayed is not counted
        let changes = adm
            .decision
            .effect
            .is_some_and(|e| e >= crate::effect::EffectClass::Mutating);
        let no_dry_run = adm.decision.refusal == Some(crate::guard::RefusalKind::NoDryRun);
        if (changes && adm.admitted.is_some()) || no_dry_run {
            self.change_attempted = true;
        }
        let approved_by = adm.decision.approved_by.clone();
        let target = adm.decision.target.clone().unwrap_or_default();
        let (ok, output) = match adm.admitted {
            None => (false, adm.refusal.clone().unwrap_or_default()),
            Some(a) if a.tool == tools::delegate::NAME => Box::pin(self.delegate(rt, &a)).await?,
            Some(a) if a.tool == transition::NAME => match TransitionArgs::parse(&a.args) {
                Ok(t) => match Box::pin(self.transition(rt, &t)).await? {
                    Ok(msg) => (true, msg),
                    Err(why) => (false, format!("refused by bosun's planner: {why}")),
                },
                Err(e) => (false, format!("error: {e}")),
            },
            Some(a) => {
                let ran = crate::dispatch::Ran::of(&a);
                let ex = self.env(rt).execute(a).await;
                self.bookkeep(rt, &ran, &ex, &target, approved_by);
                (ex.ok, ex.output)
            }
        };
        let output = self.env(rt).finish(call, ok, &output, adm.started);
        Ok((ok, output))
    }

    /// After a tool ran: a dry-run's output is kept as evidence; a change is listed as applied
    /// (with the evidence of its dry-run) and its checks wait for the verification gate.
    fn bookkeep(
        &mut self,
        rt: &Runtime,
        ran: &crate::dispatch::Ran,
        ex: &crate::dispatch::Executed,
        target: &str,
        approved_by: Option<String>,
    ) {
        use crate::effect::EffectClass;
        let redactor = &rt.ctx.redactor;
        if ex.ok && ran.effect >= EffectClass::Mutating {
            let mut follow = ex.follow_ups.clone();
            // the policy's metric checks, after the change's own
            let checks = &rt.guard_config.policy.verification.metrics;
            follow
                .verify
                .extend(checks.iter().map(|c| c.follow_up(ran.namespace.as_deref())));
            if !follow.verify.is_empty() || follow.rollback.is_some() {
                self.pending.push(Pending {
                    tool: ran.tool.clone(),
                    target: target.to_string(),
                    follow,
                });
            }
        }
        let head = |t: &str| t.lines().take(20).collect::<Vec<_>>().join("\n");
        let (true, Some(fp)) = (ex.ok, &ran.fingerprint) else {
            return;
        };
        if ran.effect == EffectClass::DryRun {
            self.evidence
                .insert(fp.short(), redactor.redact(&head(&ex.output)));
        } else if ran.effect >= EffectClass::Mutating {
            self.applied.push(AppliedChange {
                tool: ran.tool.clone(),
                operation: ran.operation.clone(),
                target: target.to_string(),
                fingerprint: fp.short(),
                approved_by,
                dry_run_evidence: self
                    .evidence
                    .get(&fp.short())
                    .cloned()
                    .unwrap_or_else(|| "(dry-run recorded before this session was resumed)".into()),
                result: redactor.redact(&head(&ex.output)),
            });
        }
    }

    /// The planner verb `delegate`: run a subagent's session on the task (sharing this
    /// session's guard, audit log and events) and return its answer.
    async fn delegate(
        &mut self,
        rt: &Runtime,
        a: &crate::guard::Admitted,
    ) -> Result<(bool, String), SessionError> {
        let agent = a
            .args
            .get("agent")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let task = a
            .args
            .get("task")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let Some(child_rt) = rt.subagents.get(agent).cloned() else {
            return Ok((false, format!("error: no subagent `{agent}`")));
        };
        let mut child = self.child(child_rt);
        let name = child.runtime.agent.def.id.clone();
        self.emit(Event::SubagentStarted {
            agent: name.clone(),
            task: task.clone(),
        });
        let r = Box::pin(child.run_task(&task)).await;
        self.emit(Event::SubagentFinished {
            agent: name.clone(),
            ok: r.is_ok(),
        });
        match r {
            Ok(o) => {
                self.applied.extend(o.applied.iter().cloned());
                self.blocked.extend(o.blocked.iter().cloned());
                self.usage += o.usage;
                Ok((
                    true,
                    format!(
                        "subagent {name} finished in state {}:\n{}{}",
                        o.state,
                        o.answer,
                        o.report
                            .map(|r| format!("\n\nreport:\n{r}"))
                            .unwrap_or_default()
                    ),
                ))
            }
            Err(SessionError::Interrupted) => Err(SessionError::Interrupted),
            Err(e) => Ok((false, format!("error: the subagent failed: {e}"))),
        }
    }

    async fn drive(&mut self, rt: &Runtime) -> Result<Outcome, SessionError> {
        let mut calls_made = 0u32;
        let start_usage = self.usage;
        // loop detection: how often each (tool, canonical arguments) was requested in this task
        let mut repeats: std::collections::HashMap<(String, String), u32> = Default::default();
        let mut state_turns = 0u32;
        let mut turn_state = self.state;
        let (mut malformed_retried, mut malformed_note) = (false, None::<String>);
        for turn in 1..=rt.max_turns {
            if self.state == turn_state {
                state_turns += 1;
                if state_turns > rt.max_turns_per_state {
                    return Err(SessionError::StateTurns(rt.max_turns_per_state, self.state));
                }
            } else {
                turn_state = self.state;
                state_turns = 1;
            }
            let events = self.events.clone();
            let on_delta = move |t: &str| {
                let _ = events.send(Event::AssistantDelta {
                    text: t.to_string(),
                });
            };
            // the planner state rides on the last message of every request (not stored), and only
            // tools with an operation allowed in this state are offered
            let mut request = self.messages.clone();
            let note = self.state_note();
            if let Some(Message::User { content } | Message::Tool { content, .. }) =
                request.last_mut()
            {
                content.push_str(&note);
            }
            let specs: Vec<ToolSpec> = rt
                .specs
                .iter()
                .filter(|spec| {
                    rt.registry
                        .get(&spec.name)
                        // in validation, a mutating operation may run as its dry-run
                        .is_some_and(|r| {
                            self.state == State::Validation
                                || r.operations.values().any(|e| self.state.allows(*e))
                        })
                })
                .cloned()
                .collect();
            if self.interrupt.take() {
                return Err(SessionError::Interrupted);
            }
            // an unusable answer (cut-off stream, call without a function…) is told to the
            // model once, on this request only; a second one fails the task
            if let Some(why) = malformed_note.as_deref() {
                if let Some(Message::User { content } | Message::Tool { content, .. }) =
                    request.last_mut()
                {
                    content.push_str(why);
                }
            }
            let interrupt = self.interrupt.clone();
            let resp = tokio::select! {
                r = rt.model.complete(
                    ChatRequest {
                        messages: &request,
                        tools: &specs,
                    },
                    &on_delta,
                ) => match r {
                    Err(ModelError::Malformed { detail }) if !malformed_retried => {
                        malformed_retried = true;
                        tracing::warn!("model sent an unusable response ({detail}); asking again once");
                        malformed_note = Some(format!("\n[bosun] your last response could not be used: {detail}. Answer again: plain text, or tool calls each with a function name and JSON arguments."));
                        continue;
                    }
                    r => {
                        malformed_note = None;
                        r?
                    }
                },
                _ = interrupt.wait() => {
                    interrupt.take();
                    return Err(SessionError::Interrupted);
                }
            };
            self.usage += resp.usage;
            self.emit(Event::TurnComplete {
                turn,
                usage: resp.usage,
            });
            let text = resp.content.clone().filter(|t| !t.trim().is_empty());
            if let Some(t) = &text {
                self.emit(Event::AssistantMessage { text: t.clone() });
            }
            // a call cut off by the token limit has broken arguments: drop it, ask for less
            let truncated = resp.finish_reason == FinishReason::Length;
            let calls: Vec<_> = resp
                .tool_calls
                .into_iter()
                .filter(|c| {
                    !(truncated && serde_json::from_str::<serde_json::Value>(&c.arguments).is_err())
                })
                .collect();
            if calls.is_empty() {
                if truncated {
                    self.push(Message::Assistant {
                        content: text,
                        tool_calls: vec![],
                    });
                    self.push(Message::User {
                        content: "Your last answer was cut off by the token limit. Retry with a shorter answer: one tool call at a time, no long explanations.".into(),
                    });
                    continue;
                }
                // a final answer with unverified changes: the gate runs now
                if !self.pending.is_empty() {
                    if let Err(why) = self.verification_gate(rt).await? {
                        self.push(Message::Assistant {
                            content: text,
                            tool_calls: vec![],
                        });
                        self.push(Message::User {
                            content: format!("[bosun] {why}"),
                        });
                        continue;
                    }
                }
                let answer = text.clone().unwrap_or_default();
                self.push(Message::Assistant {
                    content: text,
                    tool_calls: vec![],
                });
                let mut usage = self.usage;
                usage.prompt_tokens -= start_usage.prompt_tokens;
                usage.completion_tokens -= start_usage.completion_tokens;
                let (status, verdict) = self.verdict();
                return Ok(Outcome {
                    status,
                    verdict,
                    answer,
                    turns: turn,
                    tool_calls: calls_made,
                    usage,
                    state: self.state,
                    report: self.report.clone(),
                    applied: self.applied.clone(),
                    blocked: self.blocked.clone(),
                });
            }
            self.push(Message::Assistant {
                content: text,
                tool_calls: calls.clone(),
            });
            for call in calls {
                if self.interrupt.take() {
                    return Err(SessionError::Interrupted);
                }
                calls_made += 1;
                let redactor = &rt.ctx.redactor;
                let key = (
                    call.name.clone(),
                    serde_json::from_str::<serde_json::Value>(&call.arguments)
                        .map(|v| crate::tools::canonical_hash(&v))
                        .unwrap_or_else(|_| call.arguments.clone()),
                );
                let seen = repeats.entry(key).or_insert(0);
                *seen += 1;
                if *seen > rt.loop_limit {
                    return Err(SessionError::Loop {
                        tool: call.name.clone(),
                        times: *seen,
                    });
                }
                if *seen == rt.loop_limit {
                    let nudge = format!(
                        "not run: you already called `{}` with exactly these arguments {} times and the results are above. Use them: answer the user, or call something different. Repeating this call again ends the task as failed.",
                        call.name,
                        *seen - 1
                    );
                    self.emit(Event::ToolCallStarted {
                        call_id: call.id.clone(),
                        tool: call.name.clone(),
                        arguments: redactor.redact(&call.arguments),
                    });
                    self.emit(Event::ToolCallFinished {
                        call_id: call.id.clone(),
                        tool: call.name.clone(),
                        ok: false,
                        output: nudge.clone(),
                        duration_ms: 0,
                    });
                    self.push(Message::Tool {
                        tool_call_id: call.id,
                        content: nudge,
                    });
                    continue;
                }
                let (_ok, output) = self.run_call(rt, &call, self.state).await?;
                self.push(Message::Tool {
                    tool_call_id: call.id,
                    content: output,
                });
            }
        }
        Err(SessionError::MaxTurns(rt.max_turns))
    }
}

/// Operations a frontend sends to a running session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A task or follow-up from the user.
    UserTurn { text: String },
    /// Approve the pending approval request `id`.
    Approve { id: u64 },
    /// Deny it.
    Deny { id: u64, reason: String },
    /// Stop the running task at the next safe point; the session stays.
    Interrupt,
    /// End the session.
    Shutdown,
}

/// A session running in its own task: send [`Op`]s, receive [`Event`]s. This is the embedding
/// API; the CLI, the REPL and the MCP server are frontends over it.
pub struct SessionHandle {
    ops: tokio::sync::mpsc::UnboundedSender<Op>,
    events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    id: String,
    task: tokio::task::JoinHandle<()>,
}

impl SessionHandle {
    /// Send an operation. Returns false if the session has ended.
    pub fn submit(&self, op: Op) -> bool {
        self.ops.send(op).is_ok()
    }

    /// The next event; `None` once the session has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wait for the session task to end (after `Op::Shutdown`).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

impl Runtime {
    /// Start a session in its own task, with approvals asked of the frontend through
    /// [`Event::ApprovalRequested`] (or with `approver` when given, e.g. a policy).
    pub fn spawn_session(
        self: &Arc<Self>,
        approver: Option<Arc<dyn crate::guard::Approver>>,
    ) -> Result<SessionHandle, SessionError> {
        self.spawn(approver, None)
    }

    /// Like [`Runtime::spawn_session`], resuming saved session `resume` when given.
    pub fn spawn(
        self: &Arc<Self>,
        approver: Option<Arc<dyn crate::guard::Approver>>,
        resume: Option<&str>,
    ) -> Result<SessionHandle, SessionError> {
        let (etx, erx) = tokio::sync::mpsc::unbounded_channel();
        let (otx, mut orx) = tokio::sync::mpsc::unbounded_channel::<Op>();
        let channel = Arc::new(ChannelApprover::new(etx.clone()));
        let session = match resume {
            Some(id) => Session::resume(self.clone(), etx, id)?,
            None => Session::new(self.clone(), etx)?,
        };
        let mut session = session.with_approver(match approver {
            Some(a) => a,
            None => channel.clone(),
        });
        let id = session.id().to_string();
        let interrupt = session.interrupter();
        let task = tokio::spawn(async move {
            let mut queue: std::collections::VecDeque<String> = Default::default();
            loop {
                let text = match queue.pop_front() {
                    Some(t) => t,
                    None => match orx.recv().await {
                        Some(Op::UserTurn { text }) => text,
                        Some(Op::Shutdown) | None => break,
                        Some(Op::Approve { id }) => {
                            channel.resolve(
                                id,
                                crate::guard::ApprovalDecision::Approved { by: "user".into() },
                            );
                            continue;
                        }
                        Some(Op::Deny { id, reason }) => {
                            channel.resolve(
                                id,
                                crate::guard::ApprovalDecision::Denied {
                                    by: "user".into(),
                                    reason,
                                },
                            );
                            continue;
                        }
                        Some(Op::Interrupt) => continue,
                    },
                };
                let fut = session.run_task(&text);
                tokio::pin!(fut);
                let mut shutdown = false;
                loop {
                    if shutdown {
                        // stop at the next safe point, never mid tool call
                        let _ = (&mut fut).await;
                        break;
                    }
                    tokio::select! {
                        _ = &mut fut => break,
                        op = orx.recv() => match op {
                            Some(Op::Approve { id }) => {
                                channel.resolve(id, crate::guard::ApprovalDecision::Approved { by: "user".into() });
                            }
                            Some(Op::Deny { id, reason }) => {
                                channel.resolve(id, crate::guard::ApprovalDecision::Denied { by: "user".into(), reason });
                            }
                            Some(Op::Interrupt) => interrupt.trigger(),
                            Some(Op::UserTurn { text }) => queue.push_back(text),
                            Some(Op::Shutdown) | None => {
                                shutdown = true;
                                interrupt.trigger();
                            }
                        }
                    }
                }
                if shutdown {
                    break;
                }
            }
        });
        Ok(SessionHandle {
            ops: otx,
            events: erx,
            id,
            task,
        })
    }
}
