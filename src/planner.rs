//! The planner state machine: Intake → Coding → Validation → Deployment → Verification →
//! Completion (+ Failed). The runtime owns the state; the model asks to move with the
//! `transition` tool, and the runtime checks every move.

use crate::effect::EffectClass;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Intake,
    Coding,
    Validation,
    Deployment,
    Verification,
    Completion,
    Failed,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Intake,
        State::Coding,
        State::Validation,
        State::Deployment,
        State::Verification,
        State::Completion,
        State::Failed,
    ];

    /// Whether an operation of `effect` may run in this state.
    ///
    /// - Intake, Coding: reads and workspace writes.
    /// - Validation: reads, workspace writes (an edit after a dry-run, to dry-run again) and
    ///   dry-runs.
    /// - Deployment: reads, workspace writes, dry-runs (to re-validate) and changes.
    /// - Verification, Completion, Failed: reads only.
    pub fn allows(self, effect: EffectClass) -> bool {
        match self {
            State::Intake | State::Coding => effect <= EffectClass::WorkspaceWrite,
            State::Validation => effect <= EffectClass::DryRun,
            State::Deployment => true,
            _ => effect == EffectClass::ReadOnly,
        }
    }

    /// The state in which `effect` would be allowed, for refusal messages.
    pub fn needed_for(effect: EffectClass) -> State {
        match effect {
            EffectClass::ReadOnly => State::Intake,
            EffectClass::WorkspaceWrite => State::Coding,
            EffectClass::DryRun => State::Validation,
            EffectClass::Mutating | EffectClass::Destructive => State::Deployment,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Intake => "intake",
            State::Coding => "coding",
            State::Validation => "validation",
            State::Deployment => "deployment",
            State::Verification => "verification",
            State::Completion => "completion",
            State::Failed => "failed",
        }
    }

    /// The moves the planner accepts from this state (before the state-specific checks).
    pub fn successors(self) -> &'static [State] {
        use State::*;
        match self {
            Intake => &[Coding, Validation, Verification, Completion, Failed],
            Coding => &[Validation, Completion, Failed],
            Validation => &[Coding, Deployment, Completion, Failed],
            Deployment => &[Verification, Failed],
            Verification => &[Coding, Deployment, Completion, Failed],
            Completion => &[],
            Failed => &[],
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
