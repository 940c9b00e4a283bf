//! `activate_skill`: loads a skill's full instructions into the conversation (progressive
//! disclosure — the system prompt only lists skill names and descriptions).

use super::{Invocation, Tool, ToolCtx, ToolError};
use crate::agent::Skill;
use crate::effect::EffectClass;
use crate::guard::Admitted;
use futures::future::BoxFuture;
use serde_json::{json, Value};

pub const NAME: &str = "activate_skill";

const OPERATIONS: &[(&str, EffectClass)] = &[("activate", EffectClass::ReadOnly)];

/// The activate_skill tool over the agent's skills.
pub struct ActivateSkill {
    skills: Vec<Skill>,
}

impl ActivateSkill {
    pub fn new(skills: Vec<Skill>) -> Self {
        Self { skills }
    }

    fn skill(&self, args: &Value) -> Result<&Skill, ToolError> {
        let name = args.get("name").and_then(Value::as_str).ok_or_else(|| {
            ToolError::InvalidArguments("`name` (a skill name) is required".into())
        })?;
        self.skills.iter().find(|s| s.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.skills.iter().map(|s| s.name.as_str()).collect();
            ToolError::InvalidArguments(format!(
                "no skill `{name}`; the skills are: {}",
                names.join(", ")
            ))
        })
    }
}

impl Tool for ActivateSkill {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Load a skill's full instructions."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        let names: Vec<&str> = self.skills.iter().map(|s| s.name.as_str()).collect();
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": names}
            },
            "required": ["name"],
            "additionalProperties": false
        })
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let s = self.skill(args)?;
        Ok(Invocation::read("activate", format!("skill {}", s.name)))
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        _ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let s = self.skill(&call.args)?;
            let body = s.body().map_err(|e| ToolError::Failed(e.to_string()))?;
            let tools = if s.allowed_tools.is_empty() {
                String::new()
            } else {
                format!("\nTools this skill uses: {}\n", s.allowed_tools.join(", "))
            };
            Ok(format!("# Skill: {}\n{tools}\n{body}", s.name))
        })
    }
}
