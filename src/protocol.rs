//! The session protocol: operations in ([`Op`]), events out ([`Event`]), and how a task ended
//! ([`Outcome`], decided by the runtime — [`TaskStatus`]), or why it did not ([`SessionError`]).

use crate::guard::Decision;
use crate::model::{ModelError, Usage};
use crate::planner::State;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

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
        /// Suggest mode: where the change proposal was written, and how many changes it holds.
        #[serde(skip_serializing_if = "Option::is_none")]
        proposal: Option<ProposalWritten>,
    },
    /// The task ended with an error.
    TaskFailed { error: String },
}

/// A change proposal written at the end of a suggest-mode task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProposalWritten {
    pub dir: std::path::PathBuf,
    pub changes: usize,
}

/// Where events go. A closed receiver is not an error: the session keeps working.
pub type EventSink = UnboundedSender<Event>;

/// What the runtime — not the model — concludes about a task that ended with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Suggest mode: the change proposal — each change whose dry-run passed, with the calls
    /// that validate and make it (`bosun apply` replays them). Empty in other modes.
    pub proposed: Vec<crate::proposal::ProposedChange>,
    /// Where the proposal was written (`proposal.json` + one file per change), if it was.
    pub proposal_dir: Option<std::path::PathBuf>,
}

/// A change that was applied, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[error(transparent)]
    Proposal(#[from] crate::proposal::ProposalError),
}

/// Operations a frontend sends to a running session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A switch a frontend flips to interrupt the running task (Ctrl-C). The task stops at the next
/// safe point: while waiting for the model, between tool calls, or in the middle of a read or
/// dry-run (cancelled, its processes killed) — never in the middle of a tool call that may be
/// changing something (it finishes and is recorded first).
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

    pub(crate) fn take(&self) -> bool {
        self.flag.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether the switch is on (not consuming it).
    pub fn is_triggered(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves once the switch is on (not consuming it): what a cancellable tool call is raced
    /// against in [`crate::dispatch`].
    pub async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            if self.flag.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            n.await;
        }
    }
}
