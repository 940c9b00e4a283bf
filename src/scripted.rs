//! A scripted model: a real OpenAI-compatible HTTP server (`POST /v1/chat/completions`,
//! `POST /v1/responses` for clients that speak only the Responses API, `GET /v1/models`) that replays a script of assistant turns, checks what it receives, and
//! records every request. Tests, `bosun demo`, evals and benchmarks drive bosun through it: the
//! runtime is what is under test; the model is the one honest fake.
//!
//! ```yaml
//! turns:
//!   - expect:                          # optional checks on the request answered by this turn
//!       tools_include: [kubectl]
//!       last_tool_result_contains: ["kube-system"]
//!     reply:
//!       content: "Looking at the namespaces."
//!       tool_calls:
//!         - name: kubectl
//!           arguments: {operation: get, kind: namespaces}
//!   - reply:
//!       content: "There are 4 namespaces."
//!   - raw: {"choices": [{"message": {"content": "verbatim body"}}]}   # a recorded server shape
//!     status: 200
//! ```
//! A failed expectation or a request after the last turn is answered with HTTP 400 and an error
//! body naming the problem (and recorded in [`ScriptedServer::failures`]).
//!
//! **Faults.** A turn can answer the way a broken or overloaded endpoint does, to test that bosun
//! classifies each fault (retry, model error, timeout) and never takes one for an empty success:
//! ```yaml
//! turns:
//!   - text: "Too Many Requests"          # a plain-text body (not JSON)…
//!     status: 429                        # …with this status
//!     headers: {Retry-After: "1"}        # extra response headers, on any turn
//!   - raw: {"error": "overloaded"}
//!     status: 503
//!   - reply: {tool_calls: [{name: kubectl, arguments: {operation: get, kind: pods}}]}
//!     cut_off: true                      # the body ends half-way: a stream stops mid tool call
//!                                        # (no finish_reason, no [DONE]), a JSON body mid-object
//!   - raw_stream:                        # SSE chunks sent verbatim, then [DONE] (unless cut_off)
//!       - {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1"}]}}]}
//!   - raw: {"choices": [{"message": {"content": 42}}]}     # numeric content
//!   - reply: {content: "\e[2J\0\a"}      # raw control bytes in content (YAML escapes)
//!   - delay_ms: 5000                     # a hang longer than the client's timeout
//!     reply: {content: "too late"}
//! ```
//!
//! Two settings for benchmarks (`benches/runtime.rs`), both off by default:
//! - `per_conversation: true` replays the script for every conversation independently, so many
//!   sessions can share one server: the turn answered is the number of assistant messages already
//!   in the request (0 for a conversation's first request).
//! - `record_requests: false` keeps no request bodies (thousands of requests carry the whole
//!   conversation each); [`ScriptedServer::timings`] is kept either way.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A script: the turns, answered in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub model: Option<String>,
    pub turns: Vec<Turn>,
    /// Replay the turns for each conversation (keyed by how many assistant messages the request
    /// carries) instead of once, in order, across all requests.
    #[serde(default)]
    pub per_conversation: bool,
    /// Keep every request body for [`ScriptedServer::requests`] (default true).
    #[serde(default = "yes")]
    pub record_requests: bool,
}

fn yes() -> bool {
    true
}

/// When the server received one request (its body read) and when its answer was ready.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The script turn that answered (0-based).
    pub turn: usize,
    pub received: std::time::Instant,
    pub answered: std::time::Instant,
}

/// One answer, with optional checks on the request it answers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub reply: Option<Reply>,
    /// A verbatim response body (takes precedence over `reply`).
    #[serde(default)]
    pub raw: Option<Value>,
    /// HTTP status for `raw` (default 200).
    #[serde(default)]
    pub status: Option<u16>,
    /// Wait this long before answering (a slow model, or a hang past the client's timeout).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// A verbatim plain-text body (takes precedence over `raw_stream`, `raw` and `reply`); the
    /// status is `status` (default 200).
    #[serde(default)]
    pub text: Option<String>,
    /// Server-sent events sent verbatim as `data:` lines, then `data: [DONE]` unless
    /// `cut_off` (takes precedence over `raw` and `reply`).
    #[serde(default)]
    pub raw_stream: Option<Vec<Value>>,
    /// Extra response headers (e.g. `Retry-After`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// End the body half-way: a streamed reply stops in the middle of its first tool call (or
    /// of its text), without `finish_reason` or `[DONE]`; a JSON body stops mid-object.
    #[serde(default)]
    pub cut_off: bool,
}

/// Checks on a received request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Tool names that must be offered.
    #[serde(default)]
    pub tools_include: Vec<String>,
    /// Tool names that must not be offered.
    #[serde(default)]
    pub tools_exclude: Vec<String>,
    /// Substrings the last `tool` message must contain.
    #[serde(default)]
    pub last_tool_result_contains: Vec<String>,
    /// Substrings no message may contain (e.g. a planted secret).
    #[serde(default)]
    pub no_message_contains: Vec<String>,
    /// Substrings the system prompt must contain.
    #[serde(default)]
    pub system_contains: Vec<String>,
    /// Substrings the last user message must contain.
    #[serde(default)]
    pub last_user_contains: Vec<String>,
}

/// An assistant reply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ScriptedCall>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub usage: Option<Value>,
}

/// A tool call in a reply. `arguments` may be an object (serialised) or a string (sent verbatim,
/// e.g. to test broken JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// Errors loading a script.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot read script {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid script{at}: {message}")]
    Parse { at: String, message: String },
}

impl Script {
    pub fn from_yaml(text: &str) -> Result<Self, ScriptError> {
        serde_saphyr::from_str(text).map_err(|e| ScriptError::Parse {
            at: e
                .location()
                .map(|l| format!(" at line {} col {}", l.line(), l.column()))
                .unwrap_or_default(),
            message: e.to_string().lines().next().unwrap_or_default().to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|e| match e {
            ScriptError::Parse { at, message } => ScriptError::Parse {
                at: format!(" {}{at}", path.display()),
                message,
            },
            other => other,
        })
    }
}

impl Default for Script {
    fn default() -> Self {
        Self {
            model: None,
            turns: vec![],
            per_conversation: false,
            record_requests: true,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    script: Script,
    next: usize,
    requests: Vec<Value>,
    timings: Vec<Timing>,
    failures: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    match s.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A running scripted server. Stops when dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    state: Shared,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ScriptedServer {
    /// Start on a free loopback port.
    pub async fn start(script: Script) -> std::io::Result<Self> {
        Self::start_on(script, "127.0.0.1:0").await
    }

    /// Start on `addr`.
    pub async fn start_on(script: Script, addr: &str) -> std::io::Result<Self> {
        let state: Shared = Arc::new(Mutex::new(Inner {
            script,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/responses", post(responses))
            .route("/responses", post(responses))
            .route("/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/health", get(|| async { "ok" }))
            .route("/_scripted/requests", get(requests))
            .route("/_scripted/failures", get(failures))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
        })
    }

    /// The base URL to give bosun (`…/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.state).requests.clone()
    }

    /// When each request arrived and was answered, in arrival order (kept even when request
    /// bodies are not).
    pub fn timings(&self) -> Vec<Timing> {
        lock(&self.state).timings.clone()
    }

    /// Failed expectations and unexpected requests.
    pub fn failures(&self) -> Vec<String> {
        lock(&self.state).failures.clone()
    }

    /// How many turns have been answered.
    pub fn turns_served(&self) -> usize {
        lock(&self.state).next
    }

    /// How many turns the script has.
    pub fn turns_total(&self) -> usize {
        lock(&self.state).script.turns.len()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn models(State(s): State<Shared>) -> Json<Value> {
    let name = lock(&s)
        .script
        .model
        .clone()
        .unwrap_or_else(|| "scripted".into());
    Json(json!({"object": "list", "data": [{"id": name, "object": "model"}]}))
}

async fn requests(State(s): State<Shared>) -> Json<Value> {
    Json(Value::Array(lock(&s).requests.clone()))
}

async fn failures(State(s): State<Shared>) -> Json<Value> {
    Json(json!(lock(&s).failures.clone()))
}

fn fail(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"message": msg, "type": "scripted_model_error"}})),
    )
        .into_response()
}

async fn chat(State(s): State<Shared>, body: axum::body::Bytes) -> Response {
    let received = std::time::Instant::now();
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return fail(format!("scripted model: request body is not JSON: {e}")),
    };
    let (turn, n) = match pick(&s, &req) {
        Ok(t) => t,
        Err(msg) => return fail(msg),
    };
    let response = answer(&turn, n, &req, &body, &s).await;
    timed(&s, n, received);
    response
}

/// The OpenAI Responses API (`POST /v1/responses`, answered as SSE), for clients that speak
/// only it (the Codex CLI). The request is read as the Chat Completions request it stands for,
/// so the same script, turn order and `expect` checks apply.
async fn responses(State(s): State<Shared>, body: axum::body::Bytes) -> Response {
    let received = std::time::Instant::now();
    let raw: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return fail(format!("scripted model: request body is not JSON: {e}")),
    };
    let req = responses_as_chat(&raw);
    let (turn, n) = match pick(&s, &req) {
        Ok(t) => t,
        Err(msg) => return fail(msg),
    };
    let response = match prepare(&turn, n, &req, &s).await {
        Err(msg) => fail(msg),
        Ok(None) => fail(format!(
            "scripted model: turn {}: a `raw`, `text` or `raw_stream` turn cannot be answered on /v1/responses",
            n + 1
        )),
        Ok(Some(reply)) => {
            let (content, calls) = reply_parts(&reply, n);
            let mut events = vec![
                json!({"type": "response.created", "response": {"id": format!("resp_scripted_{}", n + 1)}}),
            ];
            if let Some(text) = content {
                events.push(json!({"type": "response.output_item.done", "item": {
                    "type": "message", "role": "assistant", "id": format!("msg_scripted_{}", n + 1),
                    "content": [{"type": "output_text", "text": text}]}}));
            }
            for c in &calls {
                events.push(json!({"type": "response.output_item.done", "item": {
                    "type": "function_call", "call_id": c["id"], "name": c["function"]["name"],
                    "arguments": c["function"]["arguments"]}}));
            }
            let input = (body.len() / 4) as u64;
            events.push(json!({"type": "response.completed", "response": {
                "id": format!("resp_scripted_{}", n + 1),
                "usage": {"input_tokens": input, "output_tokens": 10, "total_tokens": input + 10}}}));
            let mut out = String::new();
            for e in events {
                out.push_str(&format!(
                    "event: {}\ndata: {e}\n\n",
                    e["type"].as_str().unwrap_or("")
                ));
            }
            ([("content-type", "text/event-stream")], out).into_response()
        }
    };
    timed(&s, n, received);
    response
}

/// A Responses API request as the Chat Completions request it stands for.
fn responses_as_chat(req: &Value) -> Value {
    let text = |c: &Value| match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    let mut messages: Vec<Value> = Vec::new();
    if let Some(i) = req.get("instructions").and_then(Value::as_str) {
        messages.push(json!({"role": "system", "content": i}));
    }
    for item in req
        .get("input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
        {
            "message" => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("developer") => "system",
                    Some(r) => r,
                    None => "user",
                };
                messages.push(json!({"role": role, "content": text(item.get("content").unwrap_or(&Value::Null))}));
            }
            "function_call" => {
                let call = json!({"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")}});
                match messages.last_mut() {
                    Some(m) if m["role"] == "assistant" && m.get("tool_calls").is_some() => {
                        if let Some(calls) = m["tool_calls"].as_array_mut() {
                            calls.push(call);
                        }
                    }
                    _ => messages
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let out = item.get("output").unwrap_or(&Value::Null);
                messages.push(json!({"role": "tool", "tool_call_id": item.get("call_id"), "content": text(out)}));
            }
            // reasoning and other items carry nothing the script checks
            _ => {}
        }
    }
    let tools: Vec<Value> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .map(|t| {
            json!({"type": "function", "function": {"name": t.get("name"),
            "description": t.get("description"), "parameters": t.get("parameters")}})
        })
        .collect();
    json!({"model": req.get("model"), "messages": messages, "tools": tools, "stream": false})
}

/// The turn that answers `req`: the next one, or (`per_conversation`) the one its conversation
/// is at. A request past the end is a failure.
fn pick(s: &Shared, req: &Value) -> Result<(Turn, usize), String> {
    let mut g = lock(s);
    if g.script.record_requests {
        g.requests.push(req.clone());
    }
    let n = if g.script.per_conversation {
        assistant_messages(req)
    } else {
        g.next
    };
    match g.script.turns.get(n).cloned() {
        Some(t) => {
            g.next += 1;
            Ok((t, n))
        }
        None => {
            let msg = format!(
                "scripted model: script exhausted: request {} arrived but the script has {} turns",
                n + 1,
                g.script.turns.len()
            );
            g.failures.push(msg.clone());
            Err(msg)
        }
    }
}

fn timed(s: &Shared, n: usize, received: std::time::Instant) {
    lock(s).timings.push(Timing {
        turn: n,
        received,
        answered: std::time::Instant::now(),
    });
}

/// How many assistant messages a request carries: the turn a conversation is at.
fn assistant_messages(req: &Value) -> usize {
    req.get("messages")
        .and_then(Value::as_array)
        .map_or(0, |ms| {
            ms.iter()
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
                .count()
        })
}

/// Wait the turn's delay and check its expectations. `Ok(None)`: a `raw` turn.
async fn prepare(turn: &Turn, n: usize, req: &Value, s: &Shared) -> Result<Option<Reply>, String> {
    if let Some(ms) = turn.delay_ms {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Err(why) = check(&turn.expect, req) {
        let msg = format!("scripted model: turn {}: expectation failed: {why}", n + 1);
        lock(s).failures.push(msg.clone());
        return Err(msg);
    }
    if turn.raw.is_some() || turn.text.is_some() || turn.raw_stream.is_some() {
        return Ok(None);
    }
    Ok(Some(turn.reply.clone().unwrap_or_default()))
}

/// `resp` with the turn's extra headers.
fn with_headers(
    mut resp: Response,
    headers: &std::collections::BTreeMap<String, String>,
) -> Response {
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// The first half of `body` (on a character boundary): a response cut off mid-way.
fn half(body: &str) -> String {
    body.chars().take(body.chars().count() / 2).collect()
}

/// A verbatim answer: `text`, `raw_stream` or `raw`.
fn verbatim(turn: &Turn) -> Response {
    let status = StatusCode::from_u16(turn.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
    if let Some(t) = &turn.text {
        return (status, [("content-type", "text/plain")], t.clone()).into_response();
    }
    if let Some(chunks) = &turn.raw_stream {
        let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        if !turn.cut_off {
            body.push_str("data: [DONE]\n\n");
        }
        return (status, [("content-type", "text/event-stream")], body).into_response();
    }
    let raw = turn.raw.clone().unwrap_or_default();
    if turn.cut_off {
        let body = half(&raw.to_string());
        return (status, [("content-type", "application/json")], body).into_response();
    }
    (status, Json(raw)).into_response()
}

/// A reply's text and its tool calls in the Chat Completions shape.
fn reply_parts(reply: &Reply, n: usize) -> (Option<String>, Vec<Value>) {
    let calls = reply
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let args = match &c.arguments {
                Value::String(s) => s.clone(),
                Value::Null => "{}".into(),
                other => other.to_string(),
            };
            json!({"id": c.id.clone().unwrap_or_else(|| format!("call_{}_{}", n + 1, i)),
                   "type": "function", "function": {"name": c.name, "arguments": args}})
        })
        .collect();
    (reply.content.clone(), calls)
}

async fn answer(turn: &Turn, n: usize, req: &Value, body: &[u8], s: &Shared) -> Response {
    let reply = match prepare(turn, n, req, s).await {
        Err(msg) => return fail(msg),
        Ok(Some(r)) => r,
        Ok(None) => return with_headers(verbatim(turn), &turn.headers),
    };
    with_headers(answer_reply(turn, &reply, n, req, body), &turn.headers)
}

/// A scripted reply in the Chat Completions shape, plain or streamed as the request asks.
fn answer_reply(turn: &Turn, reply: &Reply, n: usize, req: &Value, body: &[u8]) -> Response {
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("scripted")
        .to_string();
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let (_, calls) = reply_parts(reply, n);
    let finish = reply.finish_reason.clone().unwrap_or_else(|| {
        if calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
        .to_string()
    });
    let usage = reply.usage.clone().unwrap_or_else(|| {
        let prompt = (body.len() / 4) as u64;
        let completion = (reply.content.as_deref().map_or(0, str::len) / 4 + 10 * calls.len()) as u64;
        json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
    });
    if !stream {
        let mut message = json!({"role": "assistant", "content": reply.content});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        let full = json!({
            "id": format!("chatcmpl-scripted-{}", n + 1), "object": "chat.completion",
            "created": 0, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage
        });
        if turn.cut_off {
            let body = half(&full.to_string());
            return ([("content-type", "application/json")], body).into_response();
        }
        return Json(full).into_response();
    }
    // streamed: content in pieces, each call's arguments in two pieces, then usage and [DONE]
    let id = format!("chatcmpl-scripted-{}", n + 1);
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(json!({"role": "assistant"}), None)];
    if let Some(c) = &reply.content {
        let chars: Vec<char> = c.chars().collect();
        for piece in chars.chunks(16) {
            events.push(chunk(
                json!({"content": piece.iter().collect::<String>()}),
                None,
            ));
        }
    }
    for (i, c) in calls.iter().enumerate() {
        let args = c["function"]["arguments"]
            .as_str()
            .unwrap_or("{}")
            .to_string();
        let mid = args
            .char_indices()
            .nth(args.chars().count() / 2)
            .map_or(0, |(b, _)| b);
        events.push(chunk(
            json!({"tool_calls": [{"index": i, "id": c["id"], "type": "function",
                   "function": {"name": c["function"]["name"], "arguments": &args[..mid]}}]}),
            None,
        ));
        events.push(chunk(
            json!({"tool_calls": [{"index": i, "function": {"arguments": &args[mid..]}}]}),
            None,
        ));
    }
    if turn.cut_off {
        // stop in the middle of the first call (its first half of arguments sent), else half-way
        // through the text; no finish_reason, no usage, no [DONE]
        let keep = events
            .iter()
            .position(|e| e.pointer("/choices/0/delta/tool_calls").is_some())
            .map_or((events.len() / 2).max(2), |i| i + 1);
        events.truncate(keep);
        let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        return ([("content-type", "text/event-stream")], body).into_response();
    }
    events.push(chunk(json!({}), Some(&finish)));
    let mut body = String::new();
    for e in events {
        body.push_str(&format!("data: {e}\n\n"));
    }
    body.push_str(&format!(
        "data: {}\n\n",
        json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [], "usage": usage})
    ));
    body.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], body).into_response()
}

fn text_of(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn check(e: &Expect, req: &Value) -> Result<(), String> {
    let msgs = req
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let role = |m: &Value, r: &str| m.get("role").and_then(Value::as_str) == Some(r);
    let tools: Vec<String> = req
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for t in &e.tools_include {
        if !tools.contains(t) {
            return Err(format!("tool `{t}` not offered; offered: {tools:?}"));
        }
    }
    for t in &e.tools_exclude {
        if tools.contains(t) {
            return Err(format!("tool `{t}` offered but must not be"));
        }
    }
    let last_tool = msgs.iter().rev().find(|m| role(m, "tool")).map(text_of);
    for s in &e.last_tool_result_contains {
        match &last_tool {
            Some(t) if t.contains(s.as_str()) => {}
            Some(t) => {
                return Err(format!(
                    "last tool result does not contain {s:?}; it is: {}",
                    t.chars().take(400).collect::<String>()
                ))
            }
            None => return Err(format!("no tool result yet (wanted one containing {s:?})")),
        }
    }
    let last_user = msgs
        .iter()
        .rev()
        .find(|m| role(m, "user"))
        .map(text_of)
        .unwrap_or_default();
    for s in &e.last_user_contains {
        if !last_user.contains(s.as_str()) {
            return Err(format!("last user message does not contain {s:?}"));
        }
    }
    let system = msgs
        .iter()
        .find(|m| role(m, "system"))
        .map(text_of)
        .unwrap_or_default();
    for s in &e.system_contains {
        if !system.contains(s.as_str()) {
            return Err(format!("system prompt does not contain {s:?}"));
        }
    }
    let whole = req.to_string();
    for s in &e.no_message_contains {
        if whole.contains(s.as_str()) {
            return Err(format!("the request contains the forbidden text {s:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(url: &str, body: Value) -> (u16, String) {
        let r = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    #[tokio::test]
    async fn the_responses_api_replays_the_same_script_with_its_checks() {
        let script = Script::from_yaml(
            r#"
turns:
  - expect: {tools_include: [shell], last_user_contains: ["namespaces"]}
    reply:
      content: "Listing them."
      tool_calls: [{name: shell, arguments: {command: ["kubectl", "get", "ns"]}}]
  - expect: {last_tool_result_contains: ["kube-system"]}
    reply: {content: "There are 4 namespaces."}
"#,
        )
        .expect("script");
        let server = ScriptedServer::start(script).await.expect("server");
        let url = format!("{}/responses", server.base_url());
        let tools =
            json!([{"type": "function", "name": "shell", "parameters": {"type": "object"}}]);
        let (code, sse) = post(&url, json!({"model": "m", "instructions": "be brief", "tools": tools,
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "how many namespaces?"}]}]}))
        .await;
        assert_eq!(code, 200, "{sse}");
        assert!(sse.contains("event: response.output_item.done"), "{sse}");
        assert!(
            sse.contains(r#""type":"function_call""#) && sse.contains(r#""call_id":"call_1_0""#),
            "{sse}"
        );
        assert!(sse.contains(r#""text":"Listing them.""#), "{sse}");
        assert!(
            sse.trim_end().ends_with(r#""type":"response.completed"}"#),
            "{sse}"
        );
        // the tool result comes back as function_call_output; the check reads it
        let input = json!([
            {"type": "message", "role": "user", "content": "how many namespaces?"},
            {"type": "function_call", "call_id": "call_1_0", "name": "shell", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1_0", "output": "NAME\ndefault\nkube-system"}]);
        let (code, sse) = post(&url, json!({"model": "m", "tools": tools, "input": input})).await;
        assert_eq!(code, 200, "{sse}");
        assert!(sse.contains("There are 4 namespaces."), "{sse}");
        assert!(server.failures().is_empty(), "{:?}", server.failures());
        // a failed check is a 400 naming it, as on /chat/completions
        let (code, body) = post(&url, json!({"model": "m", "input": []})).await;
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("script exhausted"), "{body}");
    }
}
