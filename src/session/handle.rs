//! Running a session in its own task: [`SessionHandle`] (ops in, events out), the
//! [`Interrupt`] switch and the [`ChannelApprover`] that asks the frontend.

use super::{Event, EventSink, Op, Runtime, Session, SessionError};
use std::sync::Arc;

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

/// API; the CLI, the REPL and the MCP server are frontends over it.
pub struct SessionHandle {
    ops: tokio::sync::mpsc::UnboundedSender<Op>,
    events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    id: String,
    /// The planner state when the session task started: `intake` for a new session, the
    /// restored state for a resumed one.
    started_in: crate::planner::State,
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

    /// The planner state the session started in (the restored one after a resume); later
    /// moves arrive as [`Event::StateChanged`].
    pub fn started_in(&self) -> crate::planner::State {
        self.started_in
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
        let started_in = session.state();
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
            started_in,
            task,
        })
    }
}
