//! The model side of the loop: message types, the [`ModelClient`] trait, and the OpenAI-compatible
//! client built on async-openai with lenient response parsing ([`wire`]) and the tool-use shim
//! for models that write their calls as text ([`shim`]).

pub mod openai;
pub mod shim;
pub mod wire;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use openai::OpenAiClient;

/// One tool call requested by the model. `arguments` is the raw JSON text the model produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One message of the conversation, in chat-completions roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    System {
        content: String,
    },
    User {
        content: String,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

/// A function the model may call: name, description and a JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// Why the model stopped, normalised; unknown values are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    ToolCalls,
    Length,
    ContentFilter,
    Other(String),
}

impl FinishReason {
    pub fn parse(s: Option<&str>) -> Self {
        match s.unwrap_or("") {
            "stop" | "eos" | "end_turn" | "" => Self::Stop,
            "tool_calls" | "function_call" | "tool_use" => Self::ToolCalls,
            "length" | "max_tokens" => Self::Length,
            "content_filter" => Self::ContentFilter,
            other => Self::Other(other.to_string()),
        }
    }
}

/// Token usage of one model call (0 where the server did not report it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

/// The assistant's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

/// What one call to the model sends.
#[derive(Debug, Clone, Copy)]
pub struct ChatRequest<'a> {
    pub messages: &'a [Message],
    pub tools: &'a [ToolSpec],
}

/// Receives streamed assistant text as it arrives.
pub type DeltaSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Errors talking to the model endpoint. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no model endpoint configured: set OPENAI_BASE_URL (and OPENAI_API_KEY if the server needs one), pass --base-url, or set base_url in ./bosun.toml or ~/.config/bosun/config.toml")]
    NotConfigured,
    #[error("the model endpoint {url} could not be reached: {detail} (is the server running? check --base-url / OPENAI_BASE_URL)")]
    Unreachable { url: String, detail: String },
    #[error("the model endpoint answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("the model endpoint returned an error: {0}")]
    Api(String),
    #[error("could not understand the model's response ({detail}); body starts with: {excerpt}")]
    Decode { detail: String, excerpt: String },
    /// The endpoint answered, but not with a usable answer: a stream cut off before it finished,
    /// a tool call without `function` or name, `content` that is a number or an object, a
    /// response with neither text nor calls. The session tells the model once and asks again;
    /// a second one fails the task.
    #[error("the model sent an unusable response: {detail} (if this repeats, the server or model is at fault: try another model, or turn streaming off)")]
    Malformed { detail: String },
}

impl ModelError {
    /// Whether the model may get another chance: the endpoint answered, but its answer could
    /// not be used (see [`ModelError::Malformed`]).
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::Malformed { .. })
    }
}

/// Anything that answers chat-completion requests. The runtime only talks to models through this
/// trait, so embedders can plug in their own client.
pub trait ModelClient: Send + Sync {
    /// Send one request; stream text deltas to `on_delta` when streaming is on.
    fn complete<'a>(
        &'a self,
        req: ChatRequest<'a>,
        on_delta: DeltaSink<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ModelError>>;

    /// The model name, for logs and reports.
    fn model_name(&self) -> &str;
}
