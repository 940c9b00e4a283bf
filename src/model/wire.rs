//! Lenient parsing of OpenAI-compatible chat-completion responses.
//!
//! Real servers (Ollama, vLLM, llama.cpp, LiteLLM…) omit or vary fields that async-openai's typed
//! responses require: missing `object`/`created`/`index`/`type`, `finish_reason` "" or "eos",
//! `arguments` as an object, usage without `completion_tokens`, stream tool-call chunks with
//! `index: null`, `{"error": "..."}` bodies. We parse a `serde_json::Value` by hand instead.
//!
//! Lenient is not credulous: a shape that cannot be read as an answer — `content` that is a number
//! or an object, a tool call without `function`/`name`, a stream that ends before its
//! `finish_reason` or `[DONE]`, a response with neither text nor calls — is
//! [`ModelError::Malformed`], never an empty success.

use super::{ChatResponse, FinishReason, ModelError, ToolCall, Usage};
use serde_json::Value;

fn excerpt(v: &Value) -> String {
    let s = v.to_string();
    s.chars().take(300).collect()
}

/// The error carried by a body, if the body is an error: `{"error": "..."}` or
/// `{"error": {"message": "..."}}`.
pub fn error_of(body: &Value) -> Option<String> {
    let e = body.get("error")?;
    if e.is_null() {
        return None;
    }
    let msg = match e {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
        other => other.to_string(),
    };
    // the endpoint's words end up on a terminal: no escape sequences
    Some(crate::term::printable(&msg).into_owned())
}

fn malformed(detail: impl Into<String>) -> ModelError {
    ModelError::Malformed {
        detail: detail.into(),
    }
}

/// What kind of JSON value `v` is, for error messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The text of a `content` field: a string, or content parts `[{"type":"text","text":"..."}]`.
/// Absent or null is no text; anything else (a number, an object, parts without text) is
/// malformed.
fn text_of(v: Option<&Value>) -> Result<Option<String>, ModelError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Array(parts)) => {
            let mut t = String::new();
            for (i, p) in parts.iter().enumerate() {
                match p.get("text") {
                    Some(Value::String(s)) => t.push_str(s),
                    // non-text parts (images, refusals with their own field) carry no text
                    None if p.is_object() => {}
                    other => {
                        return Err(malformed(format!(
                            "content part {i} is {}, not a text part",
                            other.map_or(kind(p), kind)
                        )))
                    }
                }
            }
            Ok(Some(t))
        }
        Some(other) => Err(malformed(format!(
            "`content` is {} ({}), not text",
            kind(other),
            excerpt(other)
        ))),
    }
}

fn arguments_of(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(), // arguments sent as an object
    }
}

/// Token usage; missing fields count as 0.
pub fn usage_of(body: &Value) -> Usage {
    let u = body.get("usage");
    let n = |k: &str| {
        u.and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Usage {
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
    }
}

/// Parse a non-streamed response body. A tool call the server sent without an `id` gets an
/// empty one; [`super::OpenAiClient`] replaces it with one unique across turns (the guard admits
/// each id once, so `call_0` on every turn would be refused as a replay).
pub fn parse_response(body: &Value) -> Result<ChatResponse, ModelError> {
    if let Some(e) = error_of(body) {
        return Err(ModelError::Api(e));
    }
    let choice = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| malformed(format!("no choices[0] in the response: {}", excerpt(body))))?;
    let msg = choice
        .get("message")
        .or_else(|| choice.get("delta"))
        .ok_or_else(|| malformed(format!("choices[0] has no message: {}", excerpt(body))))?;
    let content = text_of(msg.get("content"))?.filter(|s| !s.is_empty());
    let mut tool_calls = Vec::new();
    let calls = calls_of(msg)?;
    for (i, c) in calls.iter().enumerate() {
        let name = call_name(i, c)?;
        let f = c.get("function").unwrap_or(c);
        // empty when the server sent none; the client gives it an id unique across turns
        let id = c
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        tool_calls.push(ToolCall {
            id,
            name,
            arguments: arguments_of(f.get("arguments")),
        });
    }
    let finish_reason = FinishReason::parse(choice.get("finish_reason").and_then(Value::as_str));
    nonempty(ChatResponse {
        content,
        tool_calls,
        finish_reason,
        usage: usage_of(body),
    })
}

/// The `tool_calls` of a message or stream delta: absent or null is none; not a list is malformed.
fn calls_of(msg: &Value) -> Result<&[Value], ModelError> {
    match msg.get("tool_calls") {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(calls)) => Ok(calls.as_slice()),
        Some(other) => Err(malformed(format!(
            "`tool_calls` is {}, not a list",
            kind(other)
        ))),
    }
}

/// The function name of tool call `i`: `function.name`, or a top-level `name` (some servers
/// send calls flat). A call with neither is malformed.
fn call_name(i: usize, c: &Value) -> Result<String, ModelError> {
    let f = match (c.get("function"), c.get("name")) {
        (Some(f @ Value::Object(_)), _) => f,
        (None, Some(_)) => c,
        (Some(other), _) => {
            return Err(malformed(format!(
                "tool call {i} has `function` {}, not an object",
                kind(other)
            )))
        }
        (None, None) => {
            return Err(malformed(format!(
                "tool call {i} has no `function`: {}",
                excerpt(c)
            )))
        }
    };
    match f.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => Ok(n.clone()),
        other => Err(malformed(format!(
            "tool call {i} has no function name ({})",
            other.map_or("missing", kind)
        ))),
    }
}

/// A response with neither text nor tool calls answers nothing: malformed, unless it was cut by
/// the token limit (the session asks for a shorter answer then).
fn nonempty(r: ChatResponse) -> Result<ChatResponse, ModelError> {
    let blank = r.content.as_deref().is_none_or(|t| t.trim().is_empty());
    if blank && r.tool_calls.is_empty() && r.finish_reason != FinishReason::Length {
        return Err(malformed(format!(
            "the response has neither text nor tool calls (finish_reason {:?})",
            r.finish_reason
        )));
    }
    Ok(r)
}

/// Accumulates a streamed response chunk by chunk.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    content: String,
    calls: Vec<PartialCall>,
    finish: Option<String>,
    usage: Usage,
    done: bool,
}

#[derive(Debug, Default)]
struct PartialCall {
    index: Option<u64>,
    id: String,
    name: String,
    arguments: String,
}

impl StreamAccumulator {
    /// Feed one chunk; returns the text delta it carried, if any.
    pub fn push(&mut self, chunk: &Value) -> Result<Option<String>, ModelError> {
        if let Some(e) = error_of(chunk) {
            return Err(ModelError::Api(e));
        }
        if chunk.get("usage").is_some_and(|u| !u.is_null()) {
            self.usage = usage_of(chunk);
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Ok(None);
        };
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            if !f.is_empty() {
                self.finish = Some(f.to_string());
            }
        }
        let Some(delta) = choice.get("delta").or_else(|| choice.get("message")) else {
            return Ok(None);
        };
        let calls = calls_of(delta)?;
        for c in calls {
            let index = c.get("index").and_then(Value::as_u64);
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let f = match c.get("function") {
                None | Some(Value::Null) => None,
                Some(f @ Value::Object(_)) => Some(f),
                Some(other) => {
                    return Err(malformed(format!(
                        "a streamed tool call has `function` {}, not an object",
                        kind(other)
                    )))
                }
            };
            let name = match f.and_then(|f| f.get("name")) {
                None | Some(Value::Null) => None,
                Some(Value::String(n)) => Some(n.as_str()),
                Some(other) => {
                    return Err(malformed(format!(
                        "a streamed tool call's name is {}, not text",
                        kind(other)
                    )))
                }
            };
            let args = f.and_then(|f| f.get("arguments"));
            // which call does this fragment belong to? by index, else by id, else: a fragment
            // with a name starts a new call, one without continues the last.
            let pos = match (index, id) {
                (Some(i), _) => self.calls.iter().position(|p| p.index == Some(i)),
                (None, Some(id)) => self.calls.iter().position(|p| p.id == id),
                (None, None) if name.is_none() => self.calls.len().checked_sub(1),
                _ => None,
            };
            let pos = match pos {
                Some(p) => p,
                None => {
                    self.calls.push(PartialCall {
                        index,
                        ..Default::default()
                    });
                    self.calls.len() - 1
                }
            };
            let Some(p) = self.calls.get_mut(pos) else {
                continue;
            };
            if let Some(id) = id {
                p.id = id.to_string();
            }
            if let Some(n) = name {
                p.name.push_str(n);
            }
            match args {
                Some(Value::String(s)) => p.arguments.push_str(s),
                Some(Value::Null) | None => {}
                Some(other) => p.arguments.push_str(&other.to_string()),
            }
        }
        let text = text_of(delta.get("content"))?.filter(|s| !s.is_empty());
        if let Some(t) = &text {
            self.content.push_str(t);
        }
        Ok(text)
    }

    /// The stream's `data: [DONE]` arrived.
    pub fn done(&mut self) {
        self.done = true;
    }

    /// The complete response. A stream that ended with neither a `finish_reason` nor `[DONE]`
    /// was cut off (its last call may be half written): malformed, as is a call fragment that
    /// never got a name.
    pub fn finish(self) -> Result<ChatResponse, ModelError> {
        if self.finish.is_none() && !self.done {
            return Err(malformed(format!(
                "the stream ended before the response was complete (no finish_reason, no [DONE]){}",
                match self.calls.len() {
                    0 => String::new(),
                    n => format!("; {n} tool call(s) were cut off"),
                }
            )));
        }
        let mut tool_calls = Vec::new();
        for (i, p) in self.calls.into_iter().enumerate() {
            if p.name.trim().is_empty() {
                return Err(malformed(format!(
                    "streamed tool call {i} has no function name"
                )));
            }
            tool_calls.push(ToolCall {
                // empty when the server sent none (see `parse_response`)
                id: p.id,
                name: p.name,
                arguments: if p.arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    p.arguments
                },
            });
        }
        nonempty(ChatResponse {
            content: (!self.content.is_empty()).then_some(self.content),
            tool_calls,
            finish_reason: FinishReason::parse(self.finish.as_deref()),
            usage: self.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_minimal_llama_cpp_shape_without_optional_fields() {
        // no id/object/created, no index, no type, arguments as an object, finish_reason "eos"
        let body = json!({"choices":[{"message":{"role":"assistant","content":null,
            "tool_calls":[{"function":{"name":"kubectl","arguments":{"operation":"get","kind":"Namespace"}}}]},
            "finish_reason":"eos"}],"usage":{"prompt_tokens":12}});
        let r = parse_response(&body).expect("lenient parse");
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].name, "kubectl");
        assert_eq!(r.tool_calls[0].id, "", "no id sent: the client assigns one");
        let args: Value = serde_json::from_str(&r.tool_calls[0].arguments).expect("json");
        assert_eq!(args["kind"], "Namespace");
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(r.usage.prompt_tokens, 12);
        assert_eq!(r.usage.completion_tokens, 0);
    }

    #[test]
    fn error_bodies_become_api_errors() {
        for body in [
            json!({"error": "model 'x' not found"}),
            json!({"error": {"message": "model 'x' not found", "type": "invalid_request_error"}}),
        ] {
            match parse_response(&body) {
                Err(ModelError::Api(m)) => assert!(m.contains("not found"), "{m}"),
                other => panic!("expected Api error, got {other:?}"),
            }
        }
    }

    #[test]
    fn stream_chunks_with_null_index_are_joined() {
        let mut acc = StreamAccumulator::default();
        let chunks = [
            json!({"choices":[{"delta":{"content":"Look"}}]}),
            json!({"choices":[{"delta":{"content":"ing"}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":null,"id":"a","function":{"name":"kubectl","arguments":"{\"oper"}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":null,"function":{"arguments":"ation\":\"get\"}"}}]}}]}),
            json!({"choices":[{"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":7}}),
        ];
        let mut text = String::new();
        for c in &chunks {
            if let Some(t) = acc.push(c).expect("chunk") {
                text.push_str(&t);
            }
        }
        assert_eq!(text, "Looking");
        let r = acc.finish().expect("complete stream");
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].arguments, "{\"operation\":\"get\"}");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.usage.completion_tokens, 7);
    }
}
