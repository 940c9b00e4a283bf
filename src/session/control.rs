//! The planner's verbs, run by the session itself (never by a tool): `transition` moves the
//! planner (through the verification gate before completion), `delegate` runs a subagent.

use super::{Event, Runtime, Session, SessionError};
use crate::model::{ToolCall, ToolSpec};
use crate::planner::State;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

/// The verb that moves the planner.
pub const TRANSITION: &str = "transition";
/// The verb that hands a sub-task to a subagent.
pub const DELEGATE: &str = "delegate";

// Arguments of `transition`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionArgs {
    pub to: State,
    /// What was done and checked.
    pub justification: String,
    /// Required for completion and failed: the report.
    pub report: Option<String>,
}

impl TransitionArgs {
    /// Parse and check a request; `Err` is what the model is told.
    pub fn parse(args: &Value) -> Result<Self, String> {
        let a: Self =
            serde_json::from_value(args.clone()).map_err(|e| format!("invalid arguments: {e}"))?;
        if a.justification.trim().is_empty() {
            return Err(
                "invalid arguments: `justification` must say why the task is ready for that state"
                    .into(),
            );
        }
        if matches!(a.to, State::Completion | State::Failed)
            && a.report.as_deref().is_none_or(|r| r.trim().is_empty())
        {
            return Err(format!(
                "invalid arguments: moving to {} needs a `report`: Success/Fail, the changes applied with their dry-run evidence, access points, credentials as vault references",
                a.to
            ));
        }
        Ok(a)
    }
}

/// A planner verb the model asked for, parsed.
pub(super) enum Verb {
    Transition(TransitionArgs),
    Delegate { agent: String, task: String },
}

impl Verb {
    /// `None`: not a verb (a tool call for the dispatch). `Some(Err)`: a verb with bad
    /// arguments — what the model is told.
    pub(super) fn parse(call: &ToolCall, rt: &Runtime) -> Option<Result<Self, String>> {
        let args = || -> Result<Value, String> {
            serde_json::from_str(&call.arguments)
                .map_err(|e| format!("invalid arguments: not JSON: {e}"))
        };
        match call.name.as_str() {
            TRANSITION => {
                Some(args().and_then(|a| TransitionArgs::parse(&a).map(Verb::Transition)))
            }
            DELEGATE if !rt.subagents.is_empty() => Some(args().and_then(|a| {
                let agent = a.get("agent").and_then(Value::as_str).unwrap_or_default();
                let task = a
                    .get("task")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .trim();
                if !rt.subagents.contains_key(agent) {
                    let ids: Vec<&str> = rt.subagents.keys().map(String::as_str).collect();
                    return Err(format!(
                        "invalid arguments: no subagent `{agent}`; the subagents are: {}",
                        ids.join(", ")
                    ));
                }
                if task.is_empty() {
                    return Err(
                        "invalid arguments: `task` must say what the subagent should do".into(),
                    );
                }
                Ok(Verb::Delegate {
                    agent: agent.into(),
                    task: task.into(),
                })
            })),
            _ => None,
        }
    }
}

/// The verbs' function specs, offered beside the registry's tools: `transition` always,
/// `delegate` when the agent has subagents.
pub(super) fn specs(subagents: &[(String, String)]) -> Vec<ToolSpec> {
    let mut out = vec![ToolSpec {
        name: TRANSITION.into(),
        description: "Move the task to another planner state.".into(),
        parameters: crate::tools::schema::strict(
            schemars::schema_for!(TransitionArgs).to_value(),
            &[],
        ),
    }];
    if !subagents.is_empty() {
        let ids: Vec<&str> = subagents.iter().map(|(i, _)| i.as_str()).collect();
        let desc: Vec<String> = subagents.iter().map(|(i, d)| format!("{i}: {d}")).collect();
        out.push(ToolSpec {
            name: DELEGATE.into(),
            description: "Hand a self-contained sub-task to a subagent; you get its report back. Its changes pass the same guard.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "agent": {"type": "string", "enum": ids, "description": desc.join("; ")},
                    "task": {"type": "string", "description": "The sub-task, with everything the subagent needs to know."}
                },
                "required": ["agent", "task"],
                "additionalProperties": false
            }),
        });
    }
    out
}

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
        agent: &str,
        task: String,
    ) -> Result<(bool, String), SessionError> {
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
