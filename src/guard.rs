//! The guard: the single chokepoint between the model and every executor.
//!
//! [`Guard::admit`] is the only way to obtain an [`Admitted`] call, and
//! [`Tool::execute`](crate::tools::Tool::execute) only accepts an `Admitted` — so no call reaches
//! an executor without passing here (the type has a private field; it cannot be built elsewhere).
//!
//! What it checks today, in order:
//! 1. the tool exists and is offered to this agent;
//! 2. the arguments are JSON and valid for the tool (its `plan` parses them without I/O);
//! 3. the operation is offered (implemented and listed in the agent's manifest);
//! 4. the operation's effect class is allowed: `read_only` and `dry_run` run; `mutating` and
//!    `destructive` are refused until the dry-run-before-apply rule is enforced here.
//! 5. a tool-call id is admitted once: a replayed id is refused.

use crate::effect::EffectClass;
use crate::model::ToolCall;
use crate::tools::Registry;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Mutex;

/// Prevents construction of [`Admitted`] outside this module.
#[derive(Debug)]
struct Seal;

/// A tool call the guard let through. Only [`Guard::admit`] creates these.
#[derive(Debug)]
pub struct Admitted {
    pub call_id: String,
    pub tool: String,
    pub operation: String,
    pub effect: EffectClass,
    pub args: Value,
    _seal: Seal,
}

/// The guard's verdict on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Refuse,
}

/// A record of one decision, for events, logs and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub call_id: String,
    pub tool: String,
    pub operation: Option<String>,
    pub effect: Option<EffectClass>,
    pub target: Option<String>,
    pub verdict: Verdict,
    /// Why; for refusals, what the model should do instead.
    pub reason: String,
}

/// The guard. One per session (it remembers the call ids it admitted).
#[derive(Debug, Default)]
pub struct Guard {
    seen_ids: Mutex<HashSet<String>>,
}

impl Guard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decide on `call`. On `Ok`, the call may be executed; on `Err`, the decision's reason is
    /// what the model is told.
    pub fn admit(&self, registry: &Registry, call: &ToolCall) -> (Decision, Option<Admitted>) {
        let mut d = Decision {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            operation: None,
            effect: None,
            target: None,
            verdict: Verdict::Refuse,
            reason: String::new(),
        };
        let refuse = |mut d: Decision, reason: String| {
            tracing::info!(tool = %d.tool, operation = ?d.operation, %reason, "guard refused call");
            d.reason = reason;
            (d, None)
        };
        let Some(reg) = registry.get(&call.name) else {
            let names: Vec<&str> = registry.names().collect();
            return refuse(
                d,
                format!(
                    "unknown tool `{}`; the tools offered are: {}",
                    call.name,
                    names.join(", ")
                ),
            );
        };
        let args: Value = match serde_json::from_str(&call.arguments) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return refuse(d, "arguments must be a JSON object".into()),
            Err(e) => {
                return refuse(
                    d,
                    format!("arguments are not valid JSON ({e}); send a JSON object matching the tool's schema"),
                )
            }
        };
        let inv = match reg.tool.plan(&args) {
            Ok(i) => i,
            Err(e) => return refuse(d, e.to_string()),
        };
        d.operation = Some(inv.operation.clone());
        d.target = Some(inv.target.clone());
        let Some(&effect) = reg.operations.get(&inv.operation) else {
            let offered: Vec<&str> = reg.operations.keys().map(String::as_str).collect();
            return refuse(
                d,
                format!(
                    "operation `{}` of `{}` is not offered to this agent; offered: {}",
                    inv.operation,
                    call.name,
                    offered.join(", ")
                ),
            );
        };
        d.effect = Some(effect);
        if effect >= EffectClass::Mutating {
            return refuse(
                d,
                format!(
                    "`{}.{}` is {effect}; this bosun build does not execute changes yet — describe the change and its dry-run result in your answer instead",
                    call.name, inv.operation
                ),
            );
        }
        {
            let mut seen = match self.seen_ids.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            if !seen.insert(call.id.clone()) {
                return refuse(
                    d,
                    format!(
                        "tool call id `{}` was already used; each call needs a new id",
                        call.id
                    ),
                );
            }
        }
        d.verdict = Verdict::Allow;
        d.reason = format!("{effect} operation");
        tracing::debug!(tool = %d.tool, operation = %inv.operation, %effect, "guard admitted call");
        let admitted = Admitted {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            operation: inv.operation,
            effect,
            args,
            _seal: Seal,
        };
        (d, Some(admitted))
    }
}
