//! Effect classes: what a tool operation can do to the world. Ordered from harmless to harmful:
//! `read_only < workspace_write < dry_run < mutating < destructive`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What an operation can change. The guard reasons only in these terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectClass {
    /// Reads state; changes nothing anywhere.
    ReadOnly,
    /// Changes only files in the session's own workspace (a GitOps clone, a terraform dir);
    /// nothing leaves the machine until a `mutating` operation (commit_push, apply) takes it out.
    WorkspaceWrite,
    /// Asks a server or tool what a change would do (server-side dry-run, plan, render); changes nothing.
    DryRun,
    /// Changes state (apply, upgrade, write, commit+push).
    Mutating,
    /// Removes state or is irreversible (delete, uninstall, destroy, arbitrary commands).
    Destructive,
}

impl EffectClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "read_only",
            Self::WorkspaceWrite => "workspace_write",
            Self::DryRun => "dry_run",
            Self::Mutating => "mutating",
            Self::Destructive => "destructive",
        }
    }
}

impl fmt::Display for EffectClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
