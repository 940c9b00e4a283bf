//! [`ModelClient`] for any OpenAI-compatible chat-completions endpoint, on async-openai.
//!
//! Requests are built with async-openai's request types; responses are read as JSON values and
//! parsed leniently ([`super::wire`]). async-openai's client retries 429 / 5xx / connection errors
//! with exponential backoff (honouring `Retry-After`); we add a per-request timeout.
//!
//! After parsing, calls the server sent without an id get one unique for this client
//! (`call_<n>`), and — when the shim is on ([`ModelConfig::shim_enabled`]) and the response has
//! no structured calls — calls the model wrote as text become `tool_calls` ([`super::shim`],
//! ids `shim_<n>`). Tool schemas go out strict to OpenAI and relaxed elsewhere
//! ([`ModelConfig::strict_tools_enabled`]).

use super::shim;
use super::wire::{self, StreamAccumulator};
use super::{ChatRequest, ChatResponse, DeltaSink, Message, ModelClient, ModelError, ToolSpec};
use crate::config::ModelConfig;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionTools, CreateChatCompletionRequest, FunctionCall, FunctionObject,
};
use futures::future::BoxFuture;
use futures::StreamExt;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// The OpenAI-compatible client.
pub struct OpenAiClient {
    client: async_openai::Client<OpenAIConfig>,
    base_url: String,
    model: String,
    stream: bool,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    shim: bool,
    strict_tools: bool,
    /// Numbers generated call ids; shared by all sessions on this client, so ids never repeat.
    next_id: AtomicU64,
}

impl OpenAiClient {
    /// Build a client from a resolved configuration. Fails with [`ModelError::NotConfigured`]
    /// when no base URL is known.
    pub fn new(cfg: &ModelConfig) -> Result<Self, ModelError> {
        let base_url = cfg.base_url.clone().ok_or(ModelError::NotConfigured)?;
        let mut oc = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/'));
        // servers that need no key still get a harmless placeholder header
        oc = oc.with_api_key(cfg.api_key.clone().unwrap_or_else(|| "none".into()));
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(cfg.timeout_secs))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ModelError::Unreachable {
                url: base_url.clone(),
                detail: e.to_string(),
            })?;
        let client = async_openai::Client::with_config(oc).with_http_client(http);
        Ok(Self {
            client,
            base_url,
            model: cfg.model.clone(),
            stream: cfg.stream,
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            shim: cfg.shim_enabled(),
            strict_tools: cfg.strict_tools_enabled(),
            next_id: AtomicU64::new(0),
        })
    }

    /// Whether the tool-use shim is on for this client.
    pub fn shim(&self) -> bool {
        self.shim
    }

    /// Ids for calls without one, then the shim.
    fn finish(&self, mut resp: ChatResponse, tools: &[ToolSpec]) -> ChatResponse {
        for c in &mut resp.tool_calls {
            if c.id.trim().is_empty() {
                c.id = format!("call_{}", self.next_id.fetch_add(1, Ordering::Relaxed));
            }
        }
        if self.shim
            && shim::apply(&mut resp, tools, || {
                self.next_id.fetch_add(1, Ordering::Relaxed)
            })
        {
            tracing::debug!(
                calls = resp.tool_calls.len(),
                "tool-use shim: read tool calls from the model's text"
            );
        }
        resp
    }

    fn request(&self, req: ChatRequest<'_>, stream: bool) -> CreateChatCompletionRequest {
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: req.messages.iter().map(to_openai_message).collect(),
            tools: (!req.tools.is_empty()).then(|| {
                req.tools
                    .iter()
                    .map(|t| to_openai_tool(t, self.strict_tools))
                    .collect()
            }),
            stream: Some(stream),
            stream_options: stream.then_some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            temperature: self.temperature,
            max_completion_tokens: self.max_tokens,
            ..Default::default()
        }
    }

    fn map_err(&self, e: OpenAIError) -> ModelError {
        match e {
            OpenAIError::Reqwest(r) => ModelError::Unreachable {
                url: self.base_url.clone(),
                detail: if r.is_timeout() {
                    "timed out (raise timeout_secs in bosun.toml for slow local models)".into()
                } else {
                    r.to_string()
                },
            },
            OpenAIError::ApiError(api) => ModelError::Http {
                status: api.status_code.as_u16(),
                message: api.api_error.message,
            },
            OpenAIError::JSONDeserialize(err, content) => {
                match serde_json::from_str::<Value>(&content)
                    .ok()
                    .as_ref()
                    .and_then(wire::error_of)
                {
                    Some(msg) => ModelError::Api(msg),
                    None => ModelError::Decode {
                        detail: err.to_string(),
                        excerpt: content.chars().take(300).collect(),
                    },
                }
            }
            OpenAIError::StreamError(s) => ModelError::Decode {
                detail: format!("stream: {s}"),
                excerpt: String::new(),
            },
            other => ModelError::Api(other.to_string()),
        }
    }
}

fn to_openai_message(m: &Message) -> ChatCompletionRequestMessage {
    match m {
        Message::System { content } => {
            ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(content.clone()),
                name: None,
            })
        }
        Message::User { content } => {
            ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                content: ChatCompletionRequestUserMessageContent::Text(content.clone()),
                name: None,
            })
        }
        Message::Assistant {
            content,
            tool_calls,
        } => ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
            content: content
                .clone()
                .map(ChatCompletionRequestAssistantMessageContent::Text),
            tool_calls: (!tool_calls.is_empty()).then(|| {
                tool_calls
                    .iter()
                    .map(|c| {
                        ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                            id: c.id.clone(),
                            function: FunctionCall {
                                name: c.name.clone(),
                                arguments: c.arguments.clone(),
                            },
                        })
                    })
                    .collect()
            }),
            ..Default::default()
        }),
        Message::Tool {
            tool_call_id,
            content,
        } => ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
            content: ChatCompletionRequestToolMessageContent::Text(content.clone()),
            tool_call_id: tool_call_id.clone(),
        }),
    }
}

/// The `tools` array of a request exactly as this client sends it (strict schemas when `strict`,
/// their relaxed form otherwise): for measuring what the tool schemas cost in prompt tokens.
pub fn tools_as_sent(specs: &[ToolSpec], strict: bool) -> Value {
    Value::Array(
        specs
            .iter()
            .map(|t| serde_json::to_value(to_openai_tool(t, strict)).unwrap_or(Value::Null))
            .collect(),
    )
}

/// The tool as sent: the strict schema, or (for servers other than OpenAI) its relaxed form.
fn to_openai_tool(t: &ToolSpec, strict: bool) -> ChatCompletionTools {
    ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObject {
            name: t.name.clone(),
            description: Some(t.description.clone()),
            parameters: Some(if strict {
                t.parameters.clone()
            } else {
                shim::relax_schema(&t.parameters)
            }),
            strict: Some(strict),
        },
    })
}

impl ModelClient for OpenAiClient {
    fn complete<'a>(
        &'a self,
        req: ChatRequest<'a>,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ModelError>> {
        Box::pin(async move {
            let body = self.request(req, self.stream);
            if !self.stream {
                let v: Value = self
                    .client
                    .chat()
                    .create_byot(body)
                    .await
                    .map_err(|e| self.map_err(e))?;
                return Ok(self.finish(wire::parse_response(&v)?, req.tools));
            }
            let mut stream: async_openai::types::stream::StreamResponse<Value> = self
                .client
                .chat()
                .create_stream_byot(body)
                .await
                .map_err(|e| self.map_err(e))?;
            let mut acc = StreamAccumulator::default();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.map_err(e))?;
                if let Some(text) = acc.push(&chunk)? {
                    on_delta(&text);
                }
            }
            Ok(self.finish(acc.finish(), req.tools))
        })
    }

    fn model_name(&self) -> &str {
        &self.model
    }
}
