//! The verification gate: the checks every applied change declared, run before completion;
//! on failure the policy's rollback (dry-run first, through the guard); and the runtime's
//! verdict on a finished task.

use super::{Pending, Runtime, Session, SessionError, TaskStatus};
use crate::planner::State;

impl Session {
    /// Run the checks every applied change declared. On failure, roll the changes back when the
    /// policy says so (dry-run first, then the undo; both through the guard and the audit log).
    /// `Ok(Err(message))` is the refusal the model gets.
    pub(super) async fn verification_gate(
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
    pub(super) fn verdict(&self) -> (TaskStatus, String) {
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
        if self.state == State::Failed {
            return (
                TaskStatus::Failed,
                "the task moved to the failed state".into(),
            );
        }
        // suggest mode: proposing every change is the task's end — nothing was applied, so
        // nothing waits for verification and the planner need not reach completion
        if !self.proposed.is_empty() {
            return (
                TaskStatus::Success,
                format!(
                    "suggest mode: {} change(s) passed their dry-run and were recorded as a proposal; nothing was applied (`bosun apply` applies the proposal)",
                    self.proposed.len()
                ),
            );
        }
        match self.state {
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
}
