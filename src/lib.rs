//! bosun — a runtime that turns an agent definition (`agent.md` + `skills/` + `tools/` + `prompts/`)
//! into a guarded infrastructure engineer driven by any OpenAI-compatible model.
//!
//! The library never prints: frontends (the `bosun` binary, tests, embedders) consume
//! [`session::Event`]s and render them.
//!
//! Module map (see `docs/architecture.md`):
//! - [`agent`]: loading and validating agent.md, skills, tool manifests, with file:line:col diagnostics.
//! - [`prompt`]: the system prompt, rendered from `prompts/` with minijinja.
//! - [`config`]: model endpoint configuration from flags, env and config files.
//! - [`model`]: the chat-completions client (async-openai) with lenient response parsing.
//! - [`tools`]: the tools the model can call, their JSON schemas and executors.
//! - [`scope`]: a task's mode (apply, read-only) and scope (context, namespace), enforced by the guard.
//! - [`call`]: the tool contract (a leaf): `Tool`, `Invocation`, `Change`, the [`guard`] (the single chokepoint every tool call passes before any executor runs) and the registry.
//! - [`dispatch`]: the one path of a tool call (admit → audit → execute → record → redact → budget → audit), for every frontend.
//! - [`protocol`]: operations in, events out, outcomes.
//! - [`session`]: the tool-calling loop over the protocol.
//! - [`scripted`]: a real OpenAI-compatible HTTP server that replays a script (tests, demo, benches).
//! - [`sandbox`]: a throwaway local platform: etcd, kube-apiserver, OpenBao, a bare git remote.
//! - [`kube_client`]: building a kube client from a kubeconfig, context and namespace.
//! - [`discovery_cache`]: API discovery cached on disk per cluster (as kubectl does).
//! - [`eval`]: the eval task suite (k8s-ai-bench layout) run on the sandbox, scored Pass@1/Pass@k/Pass^k.
//! - [`term`]: text from outside made safe to print on a terminal.
//! - [`server`]: `bosun serve`: the HTTP API over sessions, the approvals inbox.
//! - [`telemetry`]: OpenTelemetry spans (GenAI conventions) exported over OTLP when configured.
//! - [`auth`]: bearer-token and loopback rules shared by the HTTP servers.
//! - [`mcp`]: bosun as an MCP server (the agent and its guarded tools) and as an MCP client (remote tools behind the same guard).

pub mod agent;
pub mod audit;
pub mod auth;
pub mod blocks;
pub mod call;
pub mod checks;
pub mod compact;
pub mod config;
pub mod defaults;
pub mod diag;
pub mod discovery_cache;
pub mod dispatch;
pub mod document;
pub mod effect;
pub mod eval;
pub mod guard;
pub mod kube_client;
pub mod mcp;
pub mod model;
pub mod planner;
pub mod policy;
pub mod prompt;
pub mod proposal;
pub mod protocol;
pub mod redact;
pub mod sandbox;
pub mod scope;
pub mod scripted;
pub mod secrets;
pub mod server;
pub mod session;
pub mod store;
pub mod table;
pub mod telemetry;
pub mod term;
pub mod tools;

/// Install the process-wide rustls crypto provider (aws-lc-rs). Call once at start-up of any
/// binary or test that talks TLS; calling it again is harmless.
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
