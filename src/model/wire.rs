//! Lenient parsing of OpenAI-compatible chat-completion responses.
//!
//! Real servers (Ollama, vLLM, llama.cpp, LiteLLM…) omit or vary fields that async-openai's typed
//! responses require: missing `object`/`created`/`index`/`type`, `finish_reason` "" or "eos",
//! `arguments` as an object, usage without `completion_tokens`, stream tool-call chunks with
//! `index: null`, `{"error": "..."}` bodies. We parse a `serde_json::Value` by hand instead.

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
    Some(match e {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string()),
        other => other.to_string(),
    })
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        // content parts: [{"type":"text","text":"..."}]
        Value::Array(parts) => {
            let t: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            Some(t)
        }
        _ => None,
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
        .ok_or_else(|| ModelError::Decode {
            detail: "no choices[0] in the response".into(),
            excerpt: excerpt(body),
        })?;
    let msg = choice
        .get("message")
        .or_else(|| choice.get("delta"))
        .ok_or_else(|| ModelError::Decode {
            detail: "choices[0] has no message".into(),
            excerpt: excerpt(body),
        })?;
    let content = text_of(msg.get("content")).filter(|s| !s.is_empty());
    let mut tool_calls = Vec::new();
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for c in calls {
            let f = c.get("function").unwrap_or(c);
            let Some(name) = f.get("name").and_then(Value::as_str) else {
                continue;
            };
            // empty when the server sent none; the client gives it an id unique across turns
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            tool_calls.push(ToolCall {
                id,
                name: name.to_string(),
                arguments: arguments_of(f.get("arguments")),
            });
        }
    }
    let finish_reason = FinishReason::parse(choice.get("finish_reason").and_then(Value::as_str));
    Ok(ChatResponse {
        content,
        tool_calls,
        finish_reason,
        usage: usage_of(body),
    })
}

/// Accumulates a streamed response chunk by chunk.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    content: String,
    calls: Vec<PartialCall>,
    finish: Option<String>,
    usage: Usage,
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
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                let index = c.get("index").and_then(Value::as_u64);
                let id = c
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty());
                let f = c.get("function");
                let name = f.and_then(|f| f.get("name")).and_then(Value::as_str);
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
        }
        let text = text_of(delta.get("content")).filter(|s| !s.is_empty());
        if let Some(t) = &text {
            self.content.push_str(t);
        }
        Ok(text)
    }

    /// The complete response.
    pub fn finish(self) -> ChatResponse {
        let tool_calls = self
            .calls
            .into_iter()
            .filter(|p| !p.name.is_empty())
            .map(|p| ToolCall {
                // empty when the server sent none (see `parse_response`)
                id: p.id,
                name: p.name,
                arguments: if p.arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    p.arguments
                },
            })
            .collect();
        ChatResponse {
            content: (!self.content.is_empty()).then_some(self.content),
            tool_calls,
            finish_reason: FinishReason::parse(self.finish.as_deref()),
            usage: self.usage,
        }
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
        let r = acc.finish();
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.tool_calls[0].arguments, "{\"operation\":\"get\"}");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.usage.completion_tokens, 7);
    }
}
