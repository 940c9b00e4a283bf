//! The sessions a server runs. Each is a [`SessionHandle`] owned by a pump task that numbers
//! and keeps its events (for SSE replay), follows its status, planner state and pending
//! approvals (with the dry-run evidence of the same fingerprint), and forwards operations.

use crate::effect::EffectClass;
use crate::guard::{ApprovalRequest, Verdict};
use crate::model::Usage;
use crate::planner::State;
use crate::session::{Event, Op, SessionHandle, TaskStatus};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};

/// Events kept per session for replay; older ones are dropped (their numbers stay).
const KEPT_EVENTS: usize = 10_000;

/// What the caller asked for.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub task: String,
    pub mode: crate::scope::Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// RFC 3339.
    pub created: String,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    /// A change waits for a human: see `pending_approvals`.
    WaitingForApproval,
    /// The task ended with an answer; `outcome.status` is the runtime's verdict.
    Completed,
    /// The task ended with an error (`error`).
    Failed,
    /// Cancelled through the API.
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::WaitingForApproval => "waiting_for_approval",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn ended(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// How the task ended (from `Event::TaskComplete`).
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeView {
    pub status: TaskStatus,
    pub verdict: String,
    pub answer: String,
    pub turns: u32,
    pub tool_calls: u32,
    pub usage: Usage,
    pub report: Option<String>,
}

/// A change waiting for a human, answered by its fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct PendingApproval {
    #[serde(flatten)]
    pub request: ApprovalRequest,
    /// The output of the successful dry-run of this same change (the diff, the plan), as the
    /// model saw it (redacted); `None` when the dry-run was not seen in this session.
    pub dry_run_evidence: Option<String>,
    pub requested_at: String,
    #[serde(skip)]
    id: u64,
}

/// One event with its number and when the server received it.
#[derive(Debug, Clone, Serialize)]
pub struct Stamped {
    pub seq: u64,
    /// Unix time in microseconds.
    pub at_us: i64,
    pub event: Event,
}

impl Stamped {
    /// The event's `type` (`tool_call_started`, …).
    pub fn kind(&self) -> String {
        serde_json::to_value(&self.event)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_else(|| "event".into())
    }
}

/// `s` cut to `max` characters.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

impl Stamped {
    /// One line about the event for people (the inbox shows it; it is text, never markup).
    pub fn summary(&self) -> String {
        match &self.event {
            Event::TaskStarted { task, model } => format!("{model}: {}", cut(task, 300)),
            Event::AssistantDelta { text } | Event::AssistantMessage { text } => cut(text, 600),
            Event::ToolCallStarted {
                tool, arguments, ..
            } => format!("{tool} {}", cut(arguments, 300)),
            Event::GuardDecision(d) => format!(
                "{} {}{} — {}",
                match d.verdict {
                    Verdict::Allow => "allowed",
                    Verdict::Refuse => "refused",
                },
                d.tool,
                d.operation
                    .as_deref()
                    .map(|o| format!(".{o}"))
                    .unwrap_or_default(),
                cut(&d.reason, 300)
            ),
            Event::ToolCallFinished {
                tool, ok, output, ..
            } => format!(
                "{} {tool}: {}",
                if *ok { "ok" } else { "failed" },
                cut(output, 600)
            ),
            Event::ApprovalRequested { request, .. } => format!(
                "approval needed for {}.{} on {} ({}): {}",
                request.tool,
                request.operation,
                request.target,
                request.fingerprint,
                request.reason
            ),
            Event::TaskInterrupted => "interrupted".into(),
            Event::SubagentStarted { agent, task } => format!("{agent}: {}", cut(task, 300)),
            Event::SubagentFinished { agent, ok } => {
                format!("{agent} {}", if *ok { "finished" } else { "failed" })
            }
            Event::StateChanged {
                from,
                to,
                justification,
            } => format!("{from} → {to}: {}", cut(justification, 300)),
            Event::TurnComplete { turn, usage } => format!(
                "turn {turn}: {} prompt + {} completion tokens",
                usage.prompt_tokens, usage.completion_tokens
            ),
            Event::TaskComplete {
                status,
                verdict,
                answer,
                ..
            } => format!("{}: {verdict} — {}", status.as_str(), cut(answer, 600)),
            Event::TaskFailed { error } => cut(error, 600),
        }
    }

    /// The JSON sent to followers: the stamped event and its summary.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("summary".into(), self.summary().into());
        }
        v
    }
}

/// What a live follower receives.
#[derive(Debug, Clone)]
pub enum Live {
    Event(Arc<Stamped>),
    /// The session ended; no more events.
    End,
}

/// A session's view for the API and the inbox.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    #[serde(flatten)]
    pub info: SessionInfo,
    pub status: Status,
    /// The planner state.
    pub state: State,
    pub outcome: Option<OutcomeView>,
    pub error: Option<String>,
    pub pending_approvals: Vec<PendingApproval>,
    pub events: u64,
}

/// Why an approval could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("no change with fingerprint `{given}` is waiting for approval in session {session}; {}", pending_list(.pending))]
    NotPending {
        session: String,
        given: String,
        pending: Vec<String>,
    },
    #[error("session {0} has ended")]
    Ended(String),
}

fn pending_list(p: &[String]) -> String {
    if p.is_empty() {
        "nothing is pending".into()
    } else {
        format!("pending: {}", p.join(", "))
    }
}

struct Inner {
    status: Status,
    state: State,
    outcome: Option<OutcomeView>,
    error: Option<String>,
    pending: Vec<PendingApproval>,
    /// Dry-run evidence by fingerprint, and the dry-run calls still running (call id → fp).
    evidence: HashMap<String, String>,
    dry_calls: HashMap<String, String>,
    events: VecDeque<Arc<Stamped>>,
    next_seq: u64,
    cancelled: bool,
    pump_done: bool,
}

/// One session of the server.
pub struct Tracked {
    pub info: SessionInfo,
    inner: Mutex<Inner>,
    ops: mpsc::UnboundedSender<Op>,
    live: broadcast::Sender<Live>,
}

fn now_us() -> i64 {
    let t = jiff::Timestamp::now();
    t.as_microsecond()
}

impl Tracked {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        }
    }

    /// The current view.
    pub fn view(&self) -> SessionView {
        let g = self.lock();
        SessionView {
            info: self.info.clone(),
            status: g.status,
            state: g.state,
            outcome: g.outcome.clone(),
            error: g.error.clone(),
            pending_approvals: g.pending.clone(),
            events: g.next_seq,
        }
    }

    /// Events after number `after` still kept, a receiver for what follows (subscribed under
    /// the same lock: nothing is missed or repeated), and whether the session already ended.
    pub fn follow(&self, after: u64) -> (Vec<Arc<Stamped>>, broadcast::Receiver<Live>, bool) {
        let g = self.lock();
        let backlog = g.events.iter().filter(|e| e.seq > after).cloned().collect();
        (backlog, self.live.subscribe(), g.pump_done)
    }

    /// Answer the pending change with fingerprint `fp`.
    pub fn answer(&self, fp: &str, approve: bool, reason: &str) -> Result<(), AnswerError> {
        let mut g = self.lock();
        if g.pump_done || g.status.ended() {
            return Err(AnswerError::Ended(self.info.id.clone()));
        }
        let Some(i) = g.pending.iter().position(|p| p.request.fingerprint == fp) else {
            return Err(AnswerError::NotPending {
                session: self.info.id.clone(),
                given: fp.chars().take(80).collect(),
                pending: g
                    .pending
                    .iter()
                    .map(|p| p.request.fingerprint.clone())
                    .collect(),
            });
        };
        let p = g.pending.remove(i);
        if g.pending.is_empty() && g.status == Status::WaitingForApproval {
            g.status = Status::Running;
        }
        let op = if approve {
            Op::Approve { id: p.id }
        } else {
            Op::Deny {
                id: p.id,
                reason: reason.to_string(),
            }
        };
        // under the lock: a second answer for the same change finds nothing pending
        let _ = self.ops.send(op);
        Ok(())
    }

    /// Stop the task at its next safe point and end the session; pending approvals are denied.
    /// Returns false when the session had already ended.
    pub fn cancel(&self) -> bool {
        let mut g = self.lock();
        if g.pump_done || g.status.ended() {
            return false;
        }
        g.cancelled = true;
        for p in std::mem::take(&mut g.pending) {
            let _ = self.ops.send(Op::Deny {
                id: p.id,
                reason: "the session was cancelled".into(),
            });
        }
        let _ = self.ops.send(Op::Shutdown);
        true
    }

    /// Whether the session has ended (its pump finished).
    pub fn done(&self) -> bool {
        self.lock().pump_done
    }

    /// Record one event; returns true when the task has ended.
    fn record(&self, event: Event) -> bool {
        let mut g = self.lock();
        let ended = g.apply(&event, self.info.id.as_str());
        let seq = g.next_seq + 1;
        g.next_seq = seq;
        let stamped = Arc::new(Stamped {
            seq,
            at_us: now_us(),
            event,
        });
        g.events.push_back(stamped.clone());
        if g.events.len() > KEPT_EVENTS {
            g.events.pop_front();
        }
        let _ = self.live.send(Live::Event(stamped));
        ended
    }

    fn finish(&self) {
        let mut g = self.lock();
        g.pump_done = true;
        if !g.status.ended() {
            g.status = if g.cancelled {
                Status::Cancelled
            } else {
                g.error
                    .get_or_insert_with(|| "the session ended without a result".into());
                Status::Failed
            };
        }
        g.pending.clear();
        let _ = self.live.send(Live::End);
    }
}

impl Inner {
    fn apply(&mut self, event: &Event, _id: &str) -> bool {
        match event {
            Event::StateChanged { to, .. } => self.state = *to,
            Event::GuardDecision(d) => {
                if let (Verdict::Allow, Some(EffectClass::DryRun), Some(fp)) =
                    (d.verdict, d.effect, &d.fingerprint)
                {
                    self.dry_calls.insert(d.call_id.clone(), fp.clone());
                }
                // the call the approval was for has been decided
                if let Some(fp) = &d.fingerprint {
                    self.pending.retain(|p| &p.request.fingerprint != fp);
                }
            }
            Event::ToolCallFinished {
                call_id,
                ok,
                output,
                ..
            } => {
                if let Some(fp) = self.dry_calls.remove(call_id) {
                    if *ok {
                        self.evidence.insert(fp, output.clone());
                    }
                }
            }
            Event::ApprovalRequested { id, request } => {
                self.pending.push(PendingApproval {
                    request: request.clone(),
                    dry_run_evidence: self.evidence.get(&request.fingerprint).cloned(),
                    requested_at: jiff::Timestamp::now().to_string(),
                    id: *id,
                });
                self.status = Status::WaitingForApproval;
            }
            Event::TaskComplete {
                status,
                verdict,
                answer,
                turns,
                tool_calls,
                usage,
                state,
                report,
                ..
            } => {
                self.state = *state;
                self.outcome = Some(OutcomeView {
                    status: *status,
                    verdict: verdict.clone(),
                    answer: answer.clone(),
                    turns: *turns,
                    tool_calls: *tool_calls,
                    usage: *usage,
                    report: report.clone(),
                });
                self.status = Status::Completed;
                self.pending.clear();
                return true;
            }
            Event::TaskFailed { error } => {
                self.error = Some(error.clone());
                self.status = Status::Failed;
                self.pending.clear();
                return true;
            }
            Event::TaskInterrupted => {
                if self.cancelled {
                    self.status = Status::Cancelled;
                } else {
                    self.status = Status::Failed;
                    self.error = Some("the task was interrupted".into());
                }
                self.pending.clear();
                return true;
            }
            _ => {}
        }
        if self.pending.is_empty() && self.status == Status::WaitingForApproval {
            self.status = Status::Running;
        }
        false
    }
}

/// Why a session was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{running} sessions are running, the most this server takes (--max-sessions); retry when one has finished")]
    Busy { running: usize },
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
}

/// Every session of the server.
pub struct Sessions {
    map: Mutex<Vec<Arc<Tracked>>>,
    slots: Arc<Semaphore>,
    max_running: usize,
    keep: usize,
}

impl Sessions {
    pub fn new(max_running: usize, keep: usize) -> Self {
        Self {
            map: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(max_running.max(1))),
            max_running: max_running.max(1),
            keep: keep.max(1),
        }
    }

    fn list_lock(&self) -> MutexGuard<'_, Vec<Arc<Tracked>>> {
        match self.map.lock() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        }
    }

    /// A running-session slot, or `Busy`.
    pub fn slot(&self) -> Result<OwnedSemaphorePermit, StartError> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| StartError::Busy {
                running: self.max_running,
            })
    }

    /// Start following `handle` (already given its task), holding `slot` until it ends.
    pub fn start(
        &self,
        handle: SessionHandle,
        info: SessionInfo,
        slot: OwnedSemaphorePermit,
    ) -> Arc<Tracked> {
        let (otx, orx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(1024);
        let tracked = Arc::new(Tracked {
            info,
            inner: Mutex::new(Inner {
                status: Status::Running,
                state: State::Intake,
                outcome: None,
                error: None,
                pending: vec![],
                evidence: Default::default(),
                dry_calls: Default::default(),
                events: VecDeque::new(),
                next_seq: 0,
                cancelled: false,
                pump_done: false,
            }),
            ops: otx,
            live,
        });
        tokio::spawn(pump(tracked.clone(), handle, orx, slot));
        let mut list = self.list_lock();
        list.push(tracked.clone());
        // forget the oldest ended sessions beyond `keep`
        while list.len() > self.keep {
            match list.iter().position(|t| t.done()) {
                Some(i) => {
                    list.remove(i);
                }
                None => break,
            }
        }
        tracked
    }

    /// Session `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Tracked>> {
        self.list_lock().iter().find(|t| t.info.id == id).cloned()
    }

    /// Every kept session, newest first.
    pub fn all(&self) -> Vec<Arc<Tracked>> {
        let mut v = self.list_lock().clone();
        v.reverse();
        v
    }

    /// Cancel every running session (server shutdown).
    pub fn cancel_all(&self) {
        for t in self.all() {
            t.cancel();
        }
    }
}

/// Moves events from the session into `tracked`, and operations the other way, until the
/// session ends; after the task's last event the session is shut down.
async fn pump(
    tracked: Arc<Tracked>,
    mut handle: SessionHandle,
    mut ops: mpsc::UnboundedReceiver<Op>,
    _slot: OwnedSemaphorePermit,
) {
    let mut ops_open = true;
    loop {
        tokio::select! {
            ev = handle.next_event() => match ev {
                Some(e) => {
                    if tracked.record(e) {
                        handle.submit(Op::Shutdown);
                    }
                }
                None => break,
            },
            op = ops.recv(), if ops_open => match op {
                Some(op) => {
                    handle.submit(op);
                }
                None => ops_open = false,
            },
        }
    }
    tracked.finish();
    handle.join().await;
}
