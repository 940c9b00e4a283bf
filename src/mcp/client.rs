//! bosun as an MCP client: the servers an agent lists under `mcp_servers:` become bosun tools.
//!
//! At runtime start [`connect`] starts (or connects to) each server, lists its tools and wraps
//! each one as a [`Tool`] named `<server>__<tool>`. The wrapped tools are ordinary registry
//! entries: every call passes [`Guard::admit`](crate::guard::Guard::admit) like any other, and
//! output is redacted by the session like any other.
//!
//! **Classification** (bosun's code decides, from the server's annotations — never the model):
//!
//! | annotations | effect class |
//! |---|---|
//! | `readOnlyHint: true` | `read_only` |
//! | `destructiveHint: false` (not read-only) | `mutating` |
//! | no annotations at all | `mutating` |
//! | anything else (the MCP default for `destructiveHint` is true) | `destructive` |
//!
//! A `mutating` or `destructive` call runs only after a successful dry-run of the identical
//! change. A remote tool can offer one only by declaring a boolean `dry_run` argument: a call with
//! `dry_run: true` is then classified `dry_run` (bosun trusts the server to honour it, as it
//! trusts its annotations — the agent author chose the server), and it validates the identical
//! call without it. **A remote tool that changes something and has no `dry_run` argument is
//! therefore always refused** — the safe default. A manifest `tools/<server>__<tool>.yaml` listed
//! under `tools:` may make a remote tool stricter (operation `call`), never looser.
//!
//! Child processes get a clean environment (PATH, HOME, LANG, LC_ALL, TMPDIR and the `env:` of
//! the entry), run in the agent directory, and are stopped when the runtime is dropped.

use super::{client_tool_name, McpError, McpServerDef};
use crate::agent::Agent;
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::tools::{canonical_hash, Change, Invocation, Tool, ToolCtx, ToolError};
use futures::future::BoxFuture;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ContentBlock, Implementation,
    ToolAnnotations,
};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long starting a server and listing its tools may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default timeout of one remote tool call.
pub const DEFAULT_CALL_TIMEOUT_SECS: u64 = 120;
/// Longest description of a remote tool put in the system prompt (it is the server's text).
pub const MAX_DESCRIPTION: usize = 1024;
/// Longest remote tool output passed on to the model.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// The one operation of a remote tool.
pub const OPERATION: &str = "call";

const PASSED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"];
const STDERR_LINES: usize = 20;

/// A live connection to one MCP server. Dropping the last tool of a server closes it (and stops
/// a child process).
pub struct Connection {
    server: String,
    service: RunningService<RoleClient, ClientConfig>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Connection {
    fn stderr_tail(&self) -> String {
        tail(&self.stderr)
    }
}

fn tail(buf: &Mutex<VecDeque<String>>) -> String {
    let lines = match buf.lock() {
        Ok(g) => g.iter().cloned().collect::<Vec<_>>(),
        Err(p) => p.into_inner().iter().cloned().collect(),
    };
    if lines.is_empty() {
        String::new()
    } else {
        format!("; its stderr ended with:\n{}", lines.join("\n"))
    }
}

/// What [`connect`] found: the tools to offer, and what was left out and why.
#[derive(Default)]
pub struct Connected {
    pub tools: Vec<Arc<dyn Tool>>,
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tools.iter().map(|t| t.name()).collect();
        f.debug_struct("Connected")
            .field("tools", &names)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// Connect to every server the agent lists and wrap their tools. A server that cannot be
/// reached is an error: the agent was written expecting its tools.
pub async fn connect(agent: &Agent) -> Result<Connected, McpError> {
    let mut out = Connected::default();
    for def in &agent.def.mcp_servers {
        let conn = Arc::new(open(def, &agent.dir).await?);
        let listed = tokio::time::timeout(CONNECT_TIMEOUT, conn.service.peer().list_all_tools())
            .await
            .map_err(|_| McpError::List {
                server: def.name.clone(),
                message: format!("no answer in {} s", CONNECT_TIMEOUT.as_secs()),
            })?
            .map_err(|e| McpError::List {
                server: def.name.clone(),
                message: format!("{e}{}", conn.stderr_tail()),
            })?;
        let timeout = Duration::from_secs(def.timeout_secs.unwrap_or(DEFAULT_CALL_TIMEOUT_SECS));
        for t in listed {
            match McpTool::new(conn.clone(), &t, timeout) {
                Ok(tool) => out.tools.push(Arc::new(tool)),
                Err(why) => out.warnings.push(format!(
                    "mcp server `{}`: tool `{}` is not offered: {why}",
                    def.name, t.name
                )),
            }
        }
    }
    Ok(out)
}

async fn open(def: &McpServerDef, agent_dir: &Path) -> Result<Connection, McpError> {
    let err = |message: String| McpError::Connect {
        server: def.name.clone(),
        what: def.describe(),
        message,
    };
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bosun", env!("CARGO_PKG_VERSION")),
    );
    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(url) = &def.url {
        let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url.as_str());
        let service = tokio::time::timeout(CONNECT_TIMEOUT, info.serve(transport))
            .await
            .map_err(|_| err(format!("no answer in {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| err(e.to_string()))?;
        return Ok(Connection {
            server: def.name.clone(),
            service,
            stderr,
        });
    }
    let Some((program, args)) = def.command.split_first() else {
        return Err(err("no command".into()));
    };
    let cwd = match &def.cwd {
        Some(c) => agent_dir.join(c),
        None => agent_dir.to_path_buf(),
    };
    // a relative program with a slash is relative to the server's directory, not bosun's
    let program = if program.contains('/') && Path::new(program).is_relative() {
        cwd.join(program)
    } else {
        PathBuf::from(program)
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(args).current_dir(&cwd).env_clear();
    for k in PASSED_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    for (k, v) in &def.env {
        let v = match v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            Some(name) => std::env::var(name).unwrap_or_default(),
            None => v.clone(),
        };
        cmd.env(k, v);
    }
    let (transport, child_stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot start it: {e}")))?;
    if let Some(pipe) = child_stderr {
        let buf = stderr.clone();
        let server = def.name.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(mcp_server = %server, "{line}");
                let mut b = match buf.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                if b.len() == STDERR_LINES {
                    b.pop_front();
                }
                b.push_back(line);
            }
        });
    }
    let service = match tokio::time::timeout(CONNECT_TIMEOUT, info.serve(transport)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            // let the stderr reader catch the child's last words
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Err(err(format!("{e}{}", tail(&stderr))));
        }
        Err(_) => {
            return Err(err(format!(
                "no MCP handshake in {} s{}",
                CONNECT_TIMEOUT.as_secs(),
                tail(&stderr)
            )))
        }
    };
    Ok(Connection {
        server: def.name.clone(),
        service,
        stderr,
    })
}

/// bosun's effect class for a remote tool with these annotations (see the module docs).
pub fn classify(annotations: Option<&ToolAnnotations>) -> EffectClass {
    match annotations {
        None => EffectClass::Mutating,
        Some(a) if a.read_only_hint == Some(true) => EffectClass::ReadOnly,
        Some(a) if a.destructive_hint == Some(false) => EffectClass::Mutating,
        Some(_) => EffectClass::Destructive,
    }
}

/// One remote tool as a bosun tool.
pub struct McpTool {
    name: String,
    remote: String,
    description: String,
    ops: [(&'static str, EffectClass); 1],
    /// The remote input schema with optional properties made nullable (strict mode sends all).
    schema: Value,
    properties: BTreeSet<String>,
    required: BTreeSet<String>,
    /// The tool declares a boolean `dry_run` argument.
    dry_run: bool,
    timeout: Duration,
    conn: Arc<Connection>,
}

impl McpTool {
    fn new(
        conn: Arc<Connection>,
        t: &rmcp::model::Tool,
        timeout: Duration,
    ) -> Result<Self, String> {
        let name = client_tool_name(&conn.server, &t.name).ok_or_else(|| {
            format!(
                "`{}__{}` is longer than {} characters",
                conn.server,
                t.name,
                super::MAX_TOOL_NAME
            )
        })?;
        let raw = Value::Object((*t.input_schema).clone());
        let properties: BTreeSet<String> = raw
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let required: BTreeSet<String> = raw
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let dry_run = raw
            .pointer("/properties/dry_run/type")
            .is_some_and(|ty| match ty {
                Value::String(s) => s == "boolean",
                Value::Array(a) => a.iter().any(|x| x == "boolean"),
                _ => false,
            });
        let schema = nullable_optionals(raw, &required);
        // the model is sent strict schemas: one that cannot be made strict would break every
        // request, so such a tool is left out
        let strict = crate::tools::schema::strict(schema.clone(), &[]);
        let problems = crate::tools::schema::violations(&strict);
        if let Some(p) = problems.first() {
            return Err(format!(
                "its input schema cannot be expressed in OpenAI strict mode ({p})"
            ));
        }
        let mut description = t
            .description
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(MAX_DESCRIPTION)
            .collect::<String>();
        if description.trim().is_empty() {
            description = format!("tool `{}` of MCP server `{}`", t.name, conn.server);
        }
        let effect = classify(t.annotations.as_ref());
        Ok(Self {
            name,
            remote: t.name.to_string(),
            description,
            ops: [(OPERATION, effect)],
            schema,
            properties,
            required,
            dry_run,
            timeout,
            conn,
        })
    }

    /// The arguments as sent to the server: nulls the model sent for optional arguments removed.
    fn remote_args(&self, args: &Value) -> Map<String, Value> {
        args.as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, v)| !v.is_null() || self.required.contains(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Make each property not in `required` nullable, at the top level (strict mode requires every
/// property; a nullable one may be sent as null, which bosun drops before calling the server).
fn nullable_optionals(mut schema: Value, required: &BTreeSet<String>) -> Value {
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for (k, v) in props.iter_mut() {
            if required.contains(k) {
                continue;
            }
            let Value::Object(p) = v else { continue };
            match p.get("type").cloned() {
                Some(Value::String(t)) if t != "null" => {
                    p.insert("type".into(), Value::Array(vec![t.into(), "null".into()]));
                }
                Some(Value::Array(mut ts)) => {
                    if !ts.iter().any(|x| x == "null") {
                        ts.push("null".into());
                    }
                    p.insert("type".into(), Value::Array(ts));
                }
                Some(_) => {}
                None => {
                    let inner = std::mem::take(p);
                    p.insert(
                        "anyOf".into(),
                        Value::Array(vec![
                            Value::Object(inner),
                            serde_json::json!({"type": "null"}),
                        ]),
                    );
                }
            }
            if let Some(Value::Array(e)) = p.get_mut("enum") {
                if !e.contains(&Value::Null) {
                    e.push(Value::Null);
                }
            }
        }
    }
    schema
}

fn type_matches(ty: &Value, v: &Value) -> bool {
    let one = |t: &str| match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    };
    match ty {
        Value::String(t) => one(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(one),
        _ => true,
    }
}

impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        &self.ops
    }

    fn parameters(&self) -> Value {
        self.schema.clone()
    }

    fn mcp_server(&self) -> Option<&str> {
        Some(&self.conn.server)
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let Some(obj) = args.as_object() else {
            return Err(ToolError::InvalidArguments(
                "arguments must be a JSON object".into(),
            ));
        };
        if !self.properties.is_empty() {
            if let Some(k) = obj.keys().find(|k| !self.properties.contains(*k)) {
                return Err(ToolError::InvalidArguments(format!(
                    "`{}` has no argument `{k}`; its arguments are: {}",
                    self.name,
                    self.properties
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        if let Some(k) = self
            .required
            .iter()
            .find(|k| obj.get(*k).is_none_or(Value::is_null))
        {
            return Err(ToolError::InvalidArguments(format!(
                "`{}` needs argument `{k}`",
                self.name
            )));
        }
        for (k, v) in obj {
            if let Some(ty) = self.schema.pointer(&format!("/properties/{k}/type")) {
                if !type_matches(ty, v) {
                    return Err(ToolError::InvalidArguments(format!(
                        "argument `{k}` must be of type {ty}"
                    )));
                }
            }
        }
        let dry_run = self.dry_run && obj.get("dry_run") == Some(&Value::Bool(true));
        let effect = self.ops[0].1;
        let change = (effect >= EffectClass::Mutating).then(|| {
            let mut content = self.remote_args(args);
            content.remove("dry_run");
            Change {
                target: format!("mcp={} tool={}", self.conn.server, self.remote),
                content_hash: canonical_hash(&Value::Object(content)),
                dry_run_hint: if self.dry_run {
                    format!(
                        "call `{}` with the same arguments and dry_run: true (in the validation state)",
                        self.name
                    )
                } else {
                    format!(
                        "`{}` is an MCP tool that may change something and offers no dry-run, so bosun cannot validate the change and does not run it; do it another way or ask a human to",
                        self.name
                    )
                },
            }
        });
        Ok(Invocation {
            min_effect: None,
            operation: OPERATION.into(),
            target: format!(
                "tool `{}` of MCP server `{}`",
                self.remote, self.conn.server
            ),
            change,
            dry_run,
            scope: Default::default(),
        })
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        _ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let params = CallToolRequestParams::new(self.remote.clone())
                .with_arguments(self.remote_args(&call.args));
            let res =
                tokio::time::timeout(self.timeout, self.conn.service.peer().call_tool(params))
                    .await
                    .map_err(|_| ToolError::Timeout(self.timeout.as_secs()))?
                    .map_err(|e| {
                        ToolError::Failed(format!(
                            "MCP server `{}` failed: {e}{}",
                            self.conn.server,
                            self.conn.stderr_tail()
                        ))
                    })?;
            let mut text = render(&res.content);
            if text.is_empty() {
                if let Some(s) = &res.structured_content {
                    text = s.to_string();
                }
            }
            let text = cap(text);
            if res.is_error == Some(true) {
                return Err(ToolError::Failed(if text.is_empty() {
                    format!("`{}` failed without a message", self.name)
                } else {
                    text
                }));
            }
            Ok(text)
        })
    }
}

fn render(content: &[ContentBlock]) -> String {
    content
        .iter()
        .map(|c| match c {
            ContentBlock::Text(t) => t.text.clone(),
            ContentBlock::Image(i) => format!("[image {} omitted]", i.mime_type),
            ContentBlock::Audio(a) => format!("[audio {} omitted]", a.mime_type),
            ContentBlock::Resource(r) => match &r.resource {
                rmcp::model::ResourceContents::TextResourceContents { uri, text, .. } => {
                    format!("[{uri}]\n{text}")
                }
                other => format!("[binary resource {} omitted]", resource_uri(other)),
            },
            ContentBlock::ResourceLink(l) => format!("[resource {}]", l.uri),
            _ => "[content omitted]".to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn resource_uri(r: &rmcp::model::ResourceContents) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.get("uri").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

fn cap(mut text: String) -> String {
    if text.len() <= MAX_OUTPUT {
        return text;
    }
    let mut cut = MAX_OUTPUT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let more = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("\n… ({more} more bytes cut)"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classification_follows_the_annotations_and_defaults_to_changing() {
        let a = |r: Option<bool>, d: Option<bool>| {
            let mut x = ToolAnnotations::new();
            x.read_only_hint = r;
            x.destructive_hint = d;
            x
        };
        assert_eq!(classify(None), EffectClass::Mutating);
        assert_eq!(classify(Some(&a(Some(true), None))), EffectClass::ReadOnly);
        assert_eq!(
            classify(Some(&a(Some(true), Some(true)))),
            EffectClass::ReadOnly
        );
        assert_eq!(classify(Some(&a(None, Some(false)))), EffectClass::Mutating);
        assert_eq!(
            classify(Some(&a(Some(false), None))),
            EffectClass::Destructive
        );
        assert_eq!(
            classify(Some(&a(None, Some(true)))),
            EffectClass::Destructive
        );
        assert_eq!(classify(Some(&a(None, None))), EffectClass::Destructive);
    }

    #[test]
    fn optional_properties_become_nullable_and_the_schema_strict() {
        let s = json!({"type": "object", "properties": {
            "q": {"type": "string"}, "limit": {"type": "integer", "default": 5},
            "mode": {"enum": ["a", "b"]}}, "required": ["q"]});
        let req: BTreeSet<String> = ["q".to_string()].into();
        let n = nullable_optionals(s, &req);
        assert_eq!(n["properties"]["q"]["type"], "string");
        assert_eq!(n["properties"]["limit"]["type"], json!(["integer", "null"]));
        assert_eq!(n["properties"]["mode"]["anyOf"][1], json!({"type": "null"}));
        let strict = crate::tools::schema::strict(n, &[]);
        assert_eq!(
            crate::tools::schema::violations(&strict),
            Vec::<String>::new()
        );
    }

    #[test]
    fn long_output_is_cut() {
        let t = cap("é".repeat(MAX_OUTPUT));
        assert!(t.len() < MAX_OUTPUT + 40);
        assert!(t.ends_with("more bytes cut)"));
    }
}
