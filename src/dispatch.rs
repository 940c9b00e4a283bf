//! The one path of a tool call: admit → audit → execute → record → redact → budget → audit,
//! with the events along the way. Every frontend goes through it — the session's turn loop,
//! its own verification and rollback calls, subagents, the MCP server's direct tool calls,
//! the embedding API and the tests — so there is no second copy of the pipeline to diverge.
//!
//! The session handles its planner verbs (`transition`, `delegate`) between [`CallEnv::admit`]
//! and [`CallEnv::finish`]; everything else is [`CallEnv::call`] or the same three steps.

use crate::audit::{AuditError, AuditLog, Record};
use crate::effect::EffectClass;
use crate::guard::{Admitted, Decision, Guard, RefusalKind, Verdict};
use crate::model::ToolCall;
use crate::planner::State;
use crate::protocol::{Event, EventSink};
use crate::store::{Entry, SessionFile};
use crate::tools::{FollowUps, Registry, ToolCtx};
use std::time::Instant;

/// What one call needs from its surroundings: the registry and services of the runtime, the
/// guard of the session (or MCP connection), where it is audited and saved, where events go.
pub struct CallEnv<'a> {
    pub registry: &'a Registry,
    pub ctx: &'a ToolCtx,
    pub guard: &'a Guard,
    /// `None`: not audited (an embedding without an audit dir).
    pub audit: Option<&'a AuditLog>,
    /// The session file where dry-runs and their use are saved for `--resume`, if any.
    pub file: Option<&'a SessionFile>,
    pub events: Option<&'a EventSink>,
    /// The session's Ctrl-C switch: a running read or dry-run is cancelled when it flips
    /// (`None`: calls always run to the end).
    pub interrupt: Option<&'a crate::protocol::Interrupt>,
}

/// The admission of one call.
pub struct Admission {
    pub decision: Decision,
    /// Present only when the call may run.
    pub admitted: Option<Admitted>,
    /// For a refusal: what the model is told.
    pub refusal: Option<String>,
    pub started: Instant,
}

/// The execution of an admitted call, before redaction.
pub struct Executed {
    pub ok: bool,
    /// The tool's text (or its error), not yet redacted.
    pub output: String,
    /// For a successful change: how to verify and undo it.
    pub follow_ups: FollowUps,
}

/// One call, start to finish.
pub struct Dispatched {
    pub decision: Decision,
    /// The admitted call's facts (tool, operation, effect, fingerprint), when it ran.
    pub ran: Option<Ran>,
    pub ok: bool,
    /// Exactly what the model (or MCP caller) receives: redacted and cut to the budget.
    pub output: String,
    pub follow_ups: FollowUps,
}

/// What ran, for the session's bookkeeping (the guard's sealed [`crate::guard::Receipt`]).
pub use crate::guard::Receipt as Ran;

impl CallEnv<'_> {
    fn emit(&self, e: Event) {
        if let Some(tx) = self.events {
            let _ = tx.send(e);
        }
    }

    fn audit(&self, rec: &Record<'_>) -> Result<(), AuditError> {
        match self.audit {
            Some(a) => a.write(&self.ctx.redactor, rec),
            None => Ok(()),
        }
    }

    /// Started event → the guard (in `state`) → the decision audited (no record, no change) →
    /// for a change, the use of its dry-run saved with the session before anything runs →
    /// the decision event.
    pub async fn admit(&self, call: &ToolCall, state: State) -> Admission {
        let redactor = &self.ctx.redactor;
        let started = Instant::now();
        self.emit(Event::ToolCallStarted {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            arguments: redactor.redact(&call.arguments),
        });
        let (mut decision, mut admitted) =
            self.guard.admit(self.registry, call, state, self.ctx).await;
        let args = redactor.redact(&call.arguments);
        if let Err(e) = self.audit(&Record::Decided {
            decision: &decision,
            arguments: &args,
            state,
        }) {
            tracing::warn!("{e}");
            if admitted
                .as_ref()
                .is_some_and(|a| a.effect >= EffectClass::Mutating)
            {
                admitted = None;
                refuse(
                    &mut decision,
                    format!("the audit log could not be written ({e}); changes are not executed without an audit record"),
                );
            }
        }
        // the dry-run is used up from the moment its apply is admitted — saved before the apply
        // runs, so a resumed session cannot use it again whatever happens to the apply
        if let (Some(a), Some(file)) = (&admitted, self.file) {
            if let (true, Some(fp)) = (a.effect >= EffectClass::Mutating, &a.fingerprint) {
                if let Err(e) = file.append(
                    redactor,
                    &Entry::DryRunUsed {
                        fingerprint: fp.clone(),
                    },
                ) {
                    admitted = None;
                    refuse(
                        &mut decision,
                        format!("the session file could not be written ({e}); changes are not executed without a record of the dry-run they use"),
                    );
                    let _ = self.audit(&Record::Decided {
                        decision: &decision,
                        arguments: &args,
                        state,
                    });
                }
            }
        }
        let refusal = admitted
            .is_none()
            .then(|| format!("refused by bosun's guard: {}", decision.reason));
        self.emit(Event::GuardDecision(decision.clone()));
        Admission {
            decision,
            admitted,
            refusal,
            started,
        }
    }

    /// Run an admitted call (consumed: it runs once), record a successful dry-run (in the guard
    /// and the session file) and, for a successful change, collect its follow-ups.
    ///
    /// A read or dry-run is raced against the session's [`Interrupt`](crate::protocol::Interrupt):
    /// on Ctrl-C its future is dropped (a child process group is killed with it, see
    /// [`crate::tools::exec::run`]) and it ends as failed, "interrupted". A call that may change
    /// something (workspace writes included) is never raced: it finishes and is recorded.
    pub async fn execute(&self, a: Admitted) -> Executed {
        let r = a.receipt();
        let cancellable = matches!(r.effect, EffectClass::ReadOnly | EffectClass::DryRun);
        let (ok, output) = match self.registry.get(&r.tool) {
            Some(reg) => {
                let run = reg.tool.execute(a, self.ctx);
                let result = match self.interrupt.filter(|_| cancellable) {
                    Some(int) => tokio::select! {
                        r = run => Some(r),
                        _ = int.wait() => None,
                    },
                    None => Some(run.await),
                };
                match result {
                    Some(Ok(out)) => (true, out),
                    Some(Err(e)) => (false, format!("error: {e}")),
                    None => (
                        false,
                        format!(
                            "interrupted: the user stopped this {} call before it finished (it changed nothing)",
                            r.effect
                        ),
                    ),
                }
            }
            None => (false, format!("error: unknown tool {}", r.tool)),
        };
        self.guard.record(&r, ok);
        if let (true, EffectClass::DryRun, Some(fp), Some(file)) =
            (ok, r.effect, &r.fingerprint, self.file)
        {
            if let Err(e) = file.append(
                &self.ctx.redactor,
                &Entry::DryRun {
                    fingerprint: fp.clone(),
                    at: jiff::Timestamp::now().to_string(),
                },
            ) {
                tracing::warn!("{e}");
            }
        }
        let follow_ups = match (
            ok && r.effect >= EffectClass::Mutating,
            self.registry.get(&r.tool),
        ) {
            (true, Some(reg)) => reg.tool.follow_ups(&r.args),
            _ => FollowUps::default(),
        };
        Executed {
            ok,
            output,
            follow_ups,
        }
    }

    /// The one redaction point for what a call returns — before the model, events, logs — then
    /// the per-result token budget, the audit record and the finished event.
    pub fn finish(&self, call: &ToolCall, ok: bool, output: &str, started: Instant) -> String {
        let output = crate::compact::fit_budget(
            &self.ctx.redactor.redact(output),
            self.ctx.max_result_tokens,
        );
        let duration_ms = started.elapsed().as_millis() as u64;
        if let Err(e) = self.audit(&Record::Finished {
            call_id: &call.id,
            tool: &call.name,
            ok,
            summary: output.lines().next().unwrap_or(""),
            duration_ms,
        }) {
            tracing::warn!("{e}");
        }
        self.emit(Event::ToolCallFinished {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            ok,
            output: output.clone(),
            duration_ms,
        });
        output
    }

    /// One whole call: [`admit`](Self::admit) → [`execute`](Self::execute) →
    /// [`finish`](Self::finish). For frontends without planner verbs (MCP, tests, embedders).
    pub async fn call(&self, call: &ToolCall, state: State) -> Dispatched {
        let adm = self.admit(call, state).await;
        let (ran, ok, raw, follow_ups) = match adm.admitted {
            Some(a) => {
                let ran = a.receipt();
                let ex = self.execute(a).await;
                (Some(ran), ex.ok, ex.output, ex.follow_ups)
            }
            None => (
                None,
                false,
                adm.refusal.unwrap_or_default(),
                FollowUps::default(),
            ),
        };
        let output = self.finish(call, ok, &raw, adm.started);
        Dispatched {
            decision: adm.decision,
            ran,
            ok,
            output,
            follow_ups,
        }
    }
}

fn refuse(d: &mut Decision, reason: String) {
    d.verdict = Verdict::Refuse;
    d.refusal = Some(RefusalKind::Invalid);
    d.reason = reason;
}
