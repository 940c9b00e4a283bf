//! bosun as an MCP server: the agent as one tool, and optionally its guarded tools.
//!
//! **`run_<agent id>`** (`-` → `_`), input `{task}`: runs a fresh session on the shared
//! [`Runtime`] to its end and returns the final answer, the planner state and the report as text,
//! plus `structuredContent` `{status, answer, state, report, session, turns, tool_calls, approvals,
//! error}` — `approvals`: each change a human (or the approval policy) was asked about, with its
//! decision and what it would change (the dry-run's diff), also sent as a progress notification.
//! A failed task is `isError: true` with the message. A remote caller cannot answer an approval
//! prompt, so sessions use the runtime's approver (`--yes` / `--approve env=…`; by default
//! [`NoApprover`](crate::guard::NoApprover): changes that need approval are refused and the
//! report says so). While it runs, each tool call is sent as a progress notification when the
//! caller asked for progress.
//!
//! **`expose_tools`**: each tool of the runtime's registry (the planner's verbs are the session's
//! and not tools) is listed with its JSON schema and annotations derived from the effect classes
//! of its operations. A call goes through [`Guard::admit`] — one guard per MCP connection, in the
//! planner state `deployment`: the external orchestrator does the planning, while bosun still
//! enforces dry-run-before-apply (the dry-run must come earlier on the same connection), the
//! policy's deny rules and approvals, single use of call ids, and the audit log (no record, no
//! change). Output is redacted with the runtime's redactor exactly like in a session.
//!
//! Over streamable HTTP a "connection" is an MCP session (`Mcp-Session-Id`). The 2026-07-28
//! protocol revision has no sessions — each request would get a fresh guard, so no dry-run could
//! ever authorise an apply — so over HTTP bosun offers the revisions up to 2025-11-25, whose
//! `initialize` handshake opens a session. With a token (`BOSUN_MCP_TOKEN` / `--token-file`)
//! every request needs `Authorization: Bearer <token>`; without one, `--listen` binds loopback
//! only and accepts only loopback `Host` headers.

use super::{run_tool_name, McpError};
use crate::audit::AuditLog;
use crate::effect::EffectClass;
use crate::guard::Guard;
use crate::model::ToolCall;
use crate::planner::State;
use crate::session::{Event, Op, Runtime};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool as McpTool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// What `bosun mcp` offers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// Also list the registry's tools (guarded, one guard per connection).
    pub expose_tools: bool,
}

/// The MCP server handler for one connection. Cheap to clone (clones share the connection's
/// guard).
#[derive(Clone)]
pub struct BosunMcp {
    conn: Arc<Conn>,
}

struct Conn {
    rt: Arc<Runtime>,
    opts: ServeOptions,
    run_tool: String,
    /// Offer only protocol revisions with an `initialize` handshake (sessions), for HTTP.
    sessions_only: bool,
    guard: Guard,
    id: String,
    audit: OnceLock<Option<Result<AuditLog, String>>>,
    /// An empty registry: names this connection does not expose are judged against it (the
    /// guard refuses them as unknown tools, and the refusal is audited).
    nothing: crate::tools::Registry,
}

impl BosunMcp {
    /// A handler for one connection on `rt`.
    pub fn new(rt: Arc<Runtime>, opts: ServeOptions) -> Self {
        Self::with_sessions(rt, opts, false)
    }

    fn with_sessions(rt: Arc<Runtime>, opts: ServeOptions, sessions_only: bool) -> Self {
        let run_tool = run_tool_name(&rt.agent.def.id);
        let guard = Guard::new(rt.guard_config.clone());
        Self {
            conn: Arc::new(Conn {
                rt,
                opts,
                run_tool,
                sessions_only,
                guard,
                id: format!("mcp-{}", crate::audit::new_session_id()),
                audit: OnceLock::new(),
                nothing: crate::tools::Registry::default(),
            }),
        }
    }

    /// The name of the agent's tool, `run_<agent id>`.
    pub fn run_tool_name(&self) -> &str {
        &self.conn.run_tool
    }

    /// The tools this connection lists.
    pub fn tools(&self) -> Vec<McpTool> {
        let c = &self.conn;
        let mut out = vec![run_tool(&c.rt, &c.run_tool)];
        if c.opts.expose_tools {
            for name in exposed(&c.rt) {
                // the runtime's specs: only what its mode offers (read-only lists reads only)
                let spec = c.rt.specs.iter().find(|s| s.name == name);
                if let (Some(r), Some(spec)) = (c.rt.registry.get(name), spec) {
                    let schema = match &spec.parameters {
                        Value::Object(m) => m.clone(),
                        _ => Map::new(),
                    };
                    let offered = crate::call::offered_effects(r, c.rt.guard_config.mode);
                    out.push(
                        McpTool::new(name.to_string(), r.description.clone(), schema)
                            .with_annotations(annotations(offered.into_iter())),
                    );
                }
            }
        }
        out
    }

    fn audit(&self) -> Option<Result<&AuditLog, String>> {
        let c = &self.conn;
        c.audit
            .get_or_init(|| {
                c.rt.audit_dir
                    .as_ref()
                    .map(|d| AuditLog::open(d, &c.id).map_err(|e| e.to_string()))
            })
            .as_ref()
            .map(|r| r.as_ref().map_err(Clone::clone))
    }

    /// Run the agent on `task` in a fresh session.
    async fn run_agent(&self, task: &str, ctx: &RequestContext<RoleServer>) -> CallToolResult {
        let rt = &self.conn.rt;
        if task.trim().is_empty() {
            return failure("`task` must not be empty", None);
        }
        let approver = rt.guard_config.approver.clone();
        let mut session = match rt.spawn_session(Some(approver)) {
            Ok(s) => s,
            Err(e) => return failure(&format!("cannot start a session: {e}"), None),
        };
        let id = session.id().to_string();
        session.submit(Op::UserTurn {
            text: task.to_string(),
        });
        let progress = ctx.meta.get_progress_token();
        let mut step = 0.0;
        // every change a human was asked about, with what it would change (its dry-run's diff)
        let mut approvals: Vec<Value> = Vec::new();
        let result = loop {
            let event = tokio::select! {
                e = session.next_event() => e,
                _ = ctx.ct.cancelled() => {
                    session.submit(Op::Interrupt);
                    session.submit(Op::Shutdown);
                    break failure("cancelled by the caller", Some(&id));
                }
            };
            let Some(event) = event else {
                break failure("the session ended without an answer", Some(&id));
            };
            let note = match event {
                Event::TaskComplete {
                    status,
                    verdict,
                    answer,
                    turns,
                    tool_calls,
                    state,
                    report,
                    proposal,
                    ..
                } => {
                    let mut text = answer.clone();
                    text.push_str(&format!(
                        "\n\n---\nstatus: {} ({verdict})\nstate: {state}",
                        status.as_str()
                    ));
                    if let Some(r) = &report {
                        text.push_str(&format!("\nreport: {r}"));
                    }
                    for a in &approvals {
                        text.push_str(&format!(
                            "\napproval {} for {}.{} {}:\n{}",
                            a["decision"].as_str().unwrap_or(""),
                            a["tool"].as_str().unwrap_or(""),
                            a["operation"].as_str().unwrap_or(""),
                            a["target"].as_str().unwrap_or(""),
                            a["diff"].as_str().unwrap_or("")
                        ));
                    }
                    if let Some(p) = &proposal {
                        text.push_str(&format!(
                            "\nproposal (suggest mode, nothing applied): {} change(s) in {}; apply with `bosun apply`",
                            p.changes,
                            p.dir.display()
                        ));
                    }
                    text.push_str(&format!(
                        "\nsession: {id} ({turns} turns, {tool_calls} tool calls)"
                    ));
                    let content = vec![ContentBlock::text(text)];
                    // the runtime's verdict decides: a failed task is an error to the caller
                    let mut r = if status == crate::session::TaskStatus::Success {
                        CallToolResult::success(content)
                    } else {
                        CallToolResult::error(content)
                    };
                    r.structured_content = Some(json!({
                        "status": status.as_str(), "verdict": verdict, "answer": answer, "state": state,
                        "report": report, "session": id, "turns": turns,
                        "tool_calls": tool_calls, "approvals": approvals, "error": null,
                        "proposal": proposal.as_ref().map(|p| p.dir.display().to_string())}));
                    break r;
                }
                Event::GuardDecision(d) if d.diff.is_some() => {
                    let a = approval_json(&d);
                    let msg = format!(
                        "approval {} for {}.{} {}; what it changes:\n{}",
                        a["decision"].as_str().unwrap_or(""),
                        d.tool,
                        d.operation.as_deref().unwrap_or("?"),
                        d.target.as_deref().unwrap_or(""),
                        d.diff.as_deref().unwrap_or("")
                    );
                    approvals.push(a);
                    Some(msg)
                }
                Event::TaskFailed { error } => break failure(&error, Some(&id)),
                Event::TaskInterrupted => break failure("interrupted", Some(&id)),
                Event::ToolCallFinished {
                    tool, ok, output, ..
                } => {
                    let first = output.lines().next().unwrap_or("");
                    Some(format!(
                        "{tool}: {}{}",
                        if ok { "" } else { "refused/failed: " },
                        first.chars().take(200).collect::<String>()
                    ))
                }
                _ => None,
            };
            if let (Some(token), Some(msg)) = (&progress, note) {
                step += 1.0;
                let _ = ctx
                    .peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), step).with_message(msg),
                    )
                    .await;
            }
        };
        session.submit(Op::Shutdown);
        result
    }

    /// A direct call of a tool: the guard decides, exactly as for a model's call — through the
    /// one call path ([`crate::dispatch`]): admission, audit, execution, record, redaction and
    /// the per-result budget. A name this connection does not expose is refused by the same
    /// path (and audited) as an unknown tool.
    async fn call_direct(&self, name: &str, args: Option<Map<String, Value>>) -> CallToolResult {
        let c = &self.conn;
        let rt = &c.rt;
        let call = ToolCall {
            id: format!("{}-{}", c.id, random_suffix()),
            name: name.to_string(),
            arguments: Value::Object(args.unwrap_or_default()).to_string(),
        };
        let audit = match self.audit() {
            Some(Ok(log)) => Some(log),
            Some(Err(e)) => {
                // no record, no call
                return CallToolResult::error(vec![ContentBlock::text(format!(
                    "refused by bosun's guard: the audit log could not be opened ({e}); no call runs without an audit record"
                ))]);
            }
            None => None,
        };
        let exposed_here = c.opts.expose_tools && exposed(rt).any(|n| n == name);
        let registry = if exposed_here {
            &rt.registry
        } else {
            &c.nothing
        };
        let env = crate::dispatch::CallEnv {
            registry,
            ctx: &rt.ctx,
            guard: &c.guard,
            audit,
            file: None,
            events: None,
            interrupt: None,
        };
        let d = env.call(&call, State::Deployment).await;
        let mut text = d.output;
        if let (false, Some(diff)) = (d.ok, &d.decision.diff) {
            // a refused approval: the caller sees what the change would have done
            text.push_str(&format!("\nwhat it would change:\n{diff}"));
        }
        let content = vec![ContentBlock::text(text)];
        if d.ok {
            CallToolResult::success(content)
        } else {
            CallToolResult::error(content)
        }
    }
}

/// A guard decision that asked a human, for the caller: who decided and what it would change.
fn approval_json(d: &crate::guard::Decision) -> Value {
    json!({
        "decision": if d.approved_by.is_some() { "approved" } else { "denied" },
        "approved_by": d.approved_by, "reason": d.reason, "tool": d.tool,
        "operation": d.operation, "target": d.target, "fingerprint": d.fingerprint,
        "diff": d.diff,
    })
}

fn random_suffix() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}

fn failure(message: &str, session: Option<&str>) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(message.to_string())]);
    r.structured_content = Some(json!({
        "status": "failed", "answer": null, "state": null, "report": null,
        "session": session, "turns": null, "tool_calls": null, "error": message}));
    r
}

/// The registry tools offered directly (the planner's verbs are the session's, not tools:
/// they are not in the registry, so a caller cannot use them on their own).
fn exposed(rt: &Runtime) -> impl Iterator<Item = &str> {
    rt.registry.names()
}

/// MCP annotations from effect classes: all read-only (a dry-run changes nothing either) →
/// readOnlyHint (and idempotent); any destructive → destructiveHint; otherwise a tool that makes
/// additive changes. idempotentHint is claimed only for tools that change nothing.
pub fn annotations(effects: impl Iterator<Item = EffectClass>) -> ToolAnnotations {
    let max = effects.max().unwrap_or(EffectClass::ReadOnly);
    let read_only = max <= EffectClass::DryRun;
    let mut a = ToolAnnotations::new()
        .read_only(read_only)
        .destructive(max == EffectClass::Destructive);
    if read_only {
        a = a.idempotent(true);
    }
    a
}

fn run_tool(rt: &Runtime, name: &str) -> McpTool {
    let def = &rt.agent.def;
    let input = json!({
        "type": "object",
        "properties": {"task": {"type": "string", "description": "What the agent should do, in plain language."}},
        "required": ["task"],
        "additionalProperties": false
    });
    let nullable = |t: &str| json!({"type": [t, "null"]});
    let output = json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["success", "failed"]},
            "answer": nullable("string"),
            "state": nullable("string"),
            "report": nullable("string"),
            "session": nullable("string"),
            "turns": nullable("integer"),
            "tool_calls": nullable("integer"),
            "error": nullable("string"),
            "proposal": nullable("string")
        },
        "required": ["status"]
    });
    let obj = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let description = format!(
        "Run the `{}` agent ({}) on a task, to its final answer: {} Every tool call passes bosun's guard (dry-run before apply, policy, approvals). Returns the answer, the planner state and the report.",
        def.id, def.name, def.description
    );
    let mut a = annotations(
        exposed(rt)
            .filter_map(|n| rt.registry.get(n))
            .flat_map(|r| r.operations.values().copied().collect::<Vec<_>>()),
    );
    a.open_world_hint = Some(true);
    a.idempotent_hint = None;
    McpTool::new(name.to_string(), description, obj(input))
        .with_raw_output_schema(Arc::new(obj(output)))
        .with_title(def.name.clone())
        .with_annotations(a)
}

impl ServerHandler for BosunMcp {
    fn get_info(&self) -> ServerConfig {
        let def = &self.conn.rt.agent.def;
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.server_info = Implementation::new("bosun", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(format!(
            "bosun serves the agent `{}` ({}). Call `{}` with a task to have it done under bosun's guard.{}",
            def.id,
            def.name,
            self.conn.run_tool,
            if self.conn.opts.expose_tools {
                " Its tools are listed too: direct calls pass the same guard (state deployment: changes need a successful dry-run of the identical change earlier on this connection, policy and approvals apply)."
            } else {
                ""
            }
        ));
        info
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        if self.conn.sessions_only {
            Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
        } else {
            Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if name == self.conn.run_tool {
            let task = request
                .arguments
                .as_ref()
                .and_then(|a| a.get("task"))
                .and_then(Value::as_str);
            let Some(task) = task else {
                return Ok(failure("`task` (a string) is required", None).into());
            };
            return Ok(self.run_agent(task, &context).await.into());
        }
        // every other name — exposed tool, unknown, malformed — takes the one call path, so it
        // is judged and audited the same way
        Ok(self.call_direct(&name, request.arguments).await.into())
    }
}

/// Check that the names bosun would list are unique.
fn check_names(rt: &Runtime, opts: ServeOptions) -> Result<(), McpError> {
    let name = run_tool_name(&rt.agent.def.id);
    if opts.expose_tools && exposed(rt).any(|n| n == name) {
        return Err(McpError::DuplicateTool(name));
    }
    Ok(())
}

/// Serve one MCP connection over stdin/stdout until the client closes it.
pub async fn serve_stdio(rt: Arc<Runtime>, opts: ServeOptions) -> Result<(), McpError> {
    check_names(&rt, opts)?;
    let handler = BosunMcp::new(rt, opts);
    let running = handler
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Transport(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| McpError::Transport(e.to_string()))?;
    Ok(())
}

/// A running streamable-HTTP MCP server. Stops when [`HttpServer::shutdown`] is called or the
/// value is dropped.
pub struct HttpServer {
    addr: SocketAddr,
    ct: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HttpServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL, `http://ADDR/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Stop accepting requests and end every MCP session.
    pub async fn shutdown(mut self) {
        self.ct.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

/// Serve streamable HTTP at `http://ADDR/mcp`; each MCP session gets its own handler (and
/// guard). With `token`, every request must carry `Authorization: Bearer <token>` (401
/// otherwise) and any `Host` is accepted; without one, only loopback `Host` headers are (a
/// browser page cannot reach it through DNS rebinding), and the caller should bind loopback.
pub async fn serve_http(
    rt: Arc<Runtime>,
    opts: ServeOptions,
    addr: &str,
    token: Option<String>,
) -> Result<HttpServer, McpError> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    check_names(&rt, opts)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| McpError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| McpError::Listen {
        addr: addr.to_string(),
        source,
    })?;
    let ct = tokio_util::sync::CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_cancellation_token(ct.child_token());
    if token.is_some() {
        config = config.disable_allowed_hosts();
    }
    let service: StreamableHttpService<BosunMcp, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(BosunMcp::with_sessions(rt.clone(), opts, true)),
        Default::default(),
        config,
    );
    let mut app = axum::Router::new().nest_service("/mcp", service);
    if let Some(t) = token {
        app = crate::auth::require_bearer(
            app,
            t,
            "bosun mcp: missing or wrong bearer token; send `Authorization: Bearer <the token bosun mcp was started with>`\n",
        );
    }
    let stop = ct.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled_owned().await })
            .await;
    });
    Ok(HttpServer {
        addr: bound,
        ct,
        task: Some(task),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_follow_the_strictest_operation() {
        let a = annotations([EffectClass::ReadOnly, EffectClass::DryRun].into_iter());
        assert_eq!(a.read_only_hint, Some(true));
        assert_eq!(a.destructive_hint, Some(false));
        assert_eq!(a.idempotent_hint, Some(true));
        let a = annotations([EffectClass::ReadOnly, EffectClass::Mutating].into_iter());
        assert_eq!(a.read_only_hint, Some(false));
        assert_eq!(a.destructive_hint, Some(false));
        assert_eq!(a.idempotent_hint, None);
        let a = annotations([EffectClass::Destructive, EffectClass::ReadOnly].into_iter());
        assert_eq!(a.read_only_hint, Some(false));
        assert_eq!(a.destructive_hint, Some(true));
    }
}
