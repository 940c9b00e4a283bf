//! `delegate`: hand a sub-task to one of the agent's subagents. The session runs the child with
//! the subagent's definition, sharing the parent's guard (dry-runs, approvals), audit log and
//! redactor; the child's report comes back as this call's result.

use super::{Invocation, Tool, ToolCtx, ToolError};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use futures::future::BoxFuture;
use serde_json::{json, Value};

pub const NAME: &str = "delegate";

const OPERATIONS: &[(&str, EffectClass)] = &[("delegate", EffectClass::ReadOnly)];

/// The delegate tool over the agent's subagents.
pub struct Delegate {
    agents: Vec<(String, String)>,
}

/// A parsed delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    pub agent: String,
    pub task: String,
}

impl Delegate {
    /// `agents`: (id, description) of each subagent.
    pub fn new(agents: Vec<(String, String)>) -> Self {
        Self { agents }
    }

    pub fn parse(&self, args: &Value) -> Result<Delegation, ToolError> {
        let agent = args
            .get("agent")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let task = args
            .get("task")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim();
        if !self.agents.iter().any(|(id, _)| id == agent) {
            let ids: Vec<&str> = self.agents.iter().map(|(i, _)| i.as_str()).collect();
            return Err(ToolError::InvalidArguments(format!(
                "no subagent `{agent}`; the subagents are: {}",
                ids.join(", ")
            )));
        }
        if task.is_empty() {
            return Err(ToolError::InvalidArguments(
                "`task` must say what the subagent should do".into(),
            ));
        }
        Ok(Delegation {
            agent: agent.into(),
            task: task.into(),
        })
    }
}

impl Tool for Delegate {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Hand a self-contained sub-task to a subagent; you get its report back. Its changes pass the same guard."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        let ids: Vec<&str> = self.agents.iter().map(|(i, _)| i.as_str()).collect();
        let desc: Vec<String> = self
            .agents
            .iter()
            .map(|(i, d)| format!("{i}: {d}"))
            .collect();
        json!({
            "type": "object",
            "properties": {
                "agent": {"type": "string", "enum": ids, "description": desc.join("; ")},
                "task": {"type": "string", "description": "The sub-task, with everything the subagent needs to know."}
            },
            "required": ["agent", "task"],
            "additionalProperties": false
        })
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let d = self.parse(args)?;
        Ok(Invocation::read(
            "delegate",
            format!("subagent {}", d.agent),
        ))
    }

    fn execute<'a>(
        &'a self,
        call: &'a Admitted,
        _ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let d = self.parse(&call.args)?;
            Err(ToolError::Failed(format!(
                "delegation to {} must be handled by the session",
                d.agent
            )))
        })
    }
}
