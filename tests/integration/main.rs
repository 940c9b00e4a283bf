//! The one integration-test binary: every suite is a module here, sharing one harness
//! (`common`: the sandbox — etcd, kube-apiserver, OpenBao, a git remote — started once per
//! run) and one link of bosun, kube, rmcp and git2. Run one suite with
//! `cargo test --test integration <module>::`.

mod common;

mod architecture;
mod blocks;
mod chat;
mod cli_run;
mod discovery_cache;
mod embedding;
mod evals;
mod flux;
mod git;
mod guard_property;
mod guard_sandbox;
mod helm;
mod interrupt;
mod kubectl;
mod mcp;
mod model_client;
mod modes;
mod planner;
mod prompt_budget;
mod redteam;
mod redteam_files;
mod redteam_helm;
mod redteam_secrets;
mod redteam_terraform;
mod resume;
mod sandbox;
mod shell;
mod shim;
mod terraform;
mod validate;
mod vault;
mod verification;
