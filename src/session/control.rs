//! The planner's verbs, run by the session itself (never by a tool): `transition` moves the
//! planner (through the verification gate before completion), `delegate` runs a subagent.

use super::{Event, Runtime, Session, SessionError};
use crate::planner::State;
use crate::tools::transition::TransitionArgs;

impl Session {
    /// Apply a transition request; `Err` is the refusal the model gets.
    pub(super) async fn transition(
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

    /// The planner verb `delegate`: run a subagent's session on the task (sharing this
    /// session's guard, audit log and events) and return its answer.
    pub(super) async fn delegate(
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
                self.proposed.extend(o.proposed.iter().cloned());
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
}
