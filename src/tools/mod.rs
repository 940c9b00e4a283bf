//! Tools the model can call.
//!
//! A tool is one module implementing [`Tool`] plus one manifest `tools/<name>.yaml`. The
//! [`Registry`] joins the two: an operation is offered to the model only if both the code and the
//! manifest know it, and its effect class is the stricter of the two. Execution is only possible
//! with an [`Admitted`](crate::guard::Admitted) call, which only the [`guard`](crate::guard) can
//! create: there is no path from the model to an executor that skips the guard.

pub mod activate_skill;
pub mod blocks;
pub mod confined;
pub mod exec;
pub mod flux;
pub mod git;
pub mod helm;
pub mod k8s;
pub mod kubectl;
pub mod manifests;
pub mod shell;
pub mod terraform;
pub mod vault;

pub use crate::agent::BUILTIN_TOOL_NAMES;
pub use crate::call::{
    canonical_hash, schema, sha256_hex, Change, FollowUp, FollowUps, Invocation, ObjectRef,
    Registered, Registry, Scope, Tool, ToolCtx, ToolError,
};
pub use crate::table;

use crate::agent::Agent;
use std::sync::Arc;

/// Every tool implementation this bosun ships, configured for `agent` and `kube`.
pub fn implementations(agent: &Agent, kube: &crate::kube_client::KubeTarget) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(kubectl::Kubectl::new(
            kube.kubeconfig.clone(),
            kube.context.clone(),
        )),
        Arc::new(helm::Helm::new(kube)),
        Arc::new(git::Git::new(kube)),
        Arc::new(terraform::Terraform::from_env().with_policy(&agent.policy.terraform)),
        Arc::new(vault::VaultTool::from_env()),
        // offered only when the agent lists `shell` in its tools (the opt-in)
        Arc::new(shell::Shell),
        Arc::new(flux::Flux::new(
            kube.kubeconfig.clone(),
            kube.context.clone(),
        )),
        Arc::new(blocks::Blocks::new(
            agent.dir.join("blocks"),
            kube.kubeconfig.clone(),
            kube.context.clone(),
        )),
        Arc::new(activate_skill::ActivateSkill::new(agent.skills.clone())),
    ]
}
