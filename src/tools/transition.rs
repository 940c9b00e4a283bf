//! `transition`: the model asks the planner to move to another state. The tool only parses and
//! validates the request; the session, which owns the state, decides and applies it.

use super::{Invocation, Tool, ToolCtx, ToolError};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::planner::State;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

pub const NAME: &str = "transition";

const OPERATIONS: &[(&str, EffectClass)] = &[("transition", EffectClass::ReadOnly)];

// Arguments of the transition tool.
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
    pub fn parse(args: &Value) -> Result<Self, ToolError> {
        let a: Self = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        if a.justification.trim().is_empty() {
            return Err(ToolError::InvalidArguments(
                "`justification` must say why the task is ready for that state".into(),
            ));
        }
        if matches!(a.to, State::Completion | State::Failed)
            && a.report.as_deref().is_none_or(|r| r.trim().is_empty())
        {
            return Err(ToolError::InvalidArguments(format!(
                "moving to {} needs a `report`: Success/Fail, the changes applied with their dry-run evidence, access points, credentials as vault references",
                a.to
            )));
        }
        Ok(a)
    }
}

/// The transition tool.
#[derive(Debug, Default)]
pub struct Transition;

impl Tool for Transition {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Move the task to another planner state."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(TransitionArgs).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let a = TransitionArgs::parse(args)?;
        Ok(Invocation::read("transition", format!("to {}", a.to)))
    }

    fn execute<'a>(
        &'a self,
        call: &'a Admitted,
        _ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        // the session applies transitions itself; reaching here means it was not intercepted
        Box::pin(async move {
            let a = TransitionArgs::parse(&call.args)?;
            Err(ToolError::Failed(format!(
                "transition to {} must be handled by the session",
                a.to
            )))
        })
    }
}
