//! The core: a [`Runtime`] (agent, tools, model, system prompt — shareable) and [`Session`]s
//! over it. A session takes operations and emits [`Event`]s; it never prints. Frontends (the
//! CLI, tests, embedders) render the events.
//!
//! By concern: [`crate::protocol`] (ops, events, outcomes — shared with the dispatch), `runtime` (what sessions share), `handle`
//! (a session in its own task), `turn` (the loop), `control` (the planner's verbs), `verify`
//! (the verification gate, rollback, the verdict).

mod control;
mod handle;
mod runtime;
mod turn;
mod verify;

pub use crate::protocol::{
    AppliedChange, Event, EventSink, Interrupt, Op, Outcome, ProposalWritten, SessionError,
    TaskStatus,
};
pub use handle::{ChannelApprover, SessionHandle};
pub use runtime::{Runtime, RuntimeError, RuntimeOptions, DEFAULT_MAX_TURNS};

use crate::guard::{Decision, Guard};
use crate::model::{Message, Usage};
use crate::planner::State;
use crate::tools;
use std::path::PathBuf;
use std::sync::Arc;

/// A change applied in this task whose declared checks have not passed yet.
#[derive(Debug, Clone)]
struct Pending {
    tool: String,
    target: String,
    follow: tools::FollowUps,
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
    /// Successful dry-runs of changes in this task, by short fingerprint: the call and its
    /// redacted output (suggest mode turns them into the proposal).
    validated: std::collections::HashMap<String, Validated>,
    /// Suggest mode: the changes the guard refused as proposals, in order.
    proposed: Vec<crate::proposal::ProposedChange>,
    /// Successful calls to tools that keep workspace state, in order (a proposed change's
    /// setup, see [`crate::proposal::ProposedChange::setup`]).
    workspace_calls: Vec<crate::proposal::RecordedCall>,
}

/// A successful dry-run of a change, kept for the proposal.
#[derive(Debug, Clone)]
struct Validated {
    fingerprint: crate::guard::Fingerprint,
    call: crate::proposal::RecordedCall,
    /// The workspace calls to the same tool that came before it.
    setup: Vec<crate::proposal::RecordedCall>,
    output: String,
}

/// What distinguishes a new, a resumed and a child session; the rest starts empty.
struct Parts {
    id: String,
    file: Option<crate::store::SessionFile>,
    audit: Option<Arc<crate::audit::AuditLog>>,
    guard: Arc<Guard>,
    interrupt: Arc<Interrupt>,
    messages: Vec<Message>,
    state: State,
    report: Option<String>,
    is_child: bool,
}

impl Session {
    fn assemble(p: Parts, runtime: Arc<Runtime>, events: EventSink) -> Self {
        Self {
            id: p.id,
            is_child: p.is_child,
            pending: vec![],
            own_calls: 0,
            evidence: Default::default(),
            applied: vec![],
            blocked: vec![],
            file: p.file,
            interrupt: p.interrupt,
            audit: p.audit,
            guard: p.guard,
            runtime,
            messages: p.messages,
            state: p.state,
            report: p.report,
            usage: Usage::default(),
            events,
            verification_failed: false,
            change_attempted: false,
            validated: Default::default(),
            proposed: vec![],
            workspace_calls: vec![],
        }
    }

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
        let guard = Arc::new(Guard::new(runtime.guard_config.clone()));
        Ok(Self::assemble(
            Parts {
                id,
                file,
                audit,
                guard,
                interrupt: Arc::new(Interrupt::default()),
                messages,
                state: State::Intake,
                report: None,
                is_child: false,
            },
            runtime,
            events,
        ))
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
        let state = saved.state.unwrap_or(State::Intake);
        let mut s = Self::assemble(
            Parts {
                id: id.to_string(),
                file: Some(file),
                audit,
                guard,
                interrupt: Arc::new(Interrupt::default()),
                messages,
                state,
                report: saved.report,
                is_child: false,
            },
            runtime,
            events,
        );
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
        Self::assemble(
            Parts {
                id: format!("{}/{}", self.id, rt.agent.def.id),
                file: None,
                audit: self.audit.clone(),
                guard: self.guard.clone(),
                interrupt: self.interrupt.clone(),
                messages,
                state: State::Intake,
                report: None,
                is_child: true,
            },
            rt,
            self.events.clone(),
        )
    }

    /// The planner state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The guard of this session.
    pub fn guard(&self) -> &Arc<Guard> {
        &self.guard
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
}
