//! [`ModelClient`] for any OpenAI-compatible chat-completions endpoint.
//!
//! Requests are built with async-openai's request types and sent with reqwest; responses are read
//! as JSON values and parsed leniently ([`super::wire`]); streams are read as server-sent events
//! (eventsource-stream). The transport is ours, not async-openai's, because async-openai's retry
//! layer gives up on a 429 whose body is not OpenAI's JSON error, ignores `Retry-After` dates, has
//! no cap on the total wait, and hides a stream that breaks off before `[DONE]`.
//!
//! Retries ([`RetryPolicy`]): 408, 429, 5xx and connection failures, whatever the body; the wait
//! is the server's `Retry-After` (seconds or an HTTP date) when it sends one, else exponential
//! backoff with jitter; the total wait is capped — a server asking for more gets an error that
//! says so instead of a hang. A timeout is not retried (the next try would be as slow).
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
use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionTools, CreateChatCompletionRequest, FunctionCall, FunctionObject,
};
use eventsource_stream::Eventsource;
use futures::future::BoxFuture;
use futures::StreamExt;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How the client retries a request the endpoint could not answer (408, 429, 5xx, connection
/// failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// The first backoff delay when the server sends no `Retry-After`; doubles per retry.
    pub base_delay: Duration,
    /// The longest single backoff delay (a `Retry-After` may ask for more, within the total).
    pub max_delay: Duration,
    /// The most the client waits between tries, in total, for one request. A `Retry-After`
    /// beyond it ends the request with an error that says so.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_total_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1-based): exponential, full jitter in its upper
    /// half. Hand-written rather than a backoff crate: the delay is usually the server's
    /// `Retry-After`, and the cap is on the total wait, which such crates do not combine.
    fn backoff(&self, retry: u32) -> Duration {
        use rand::Rng;
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(rand::rng().random_range(0.0..=1.0))
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    // an HTTP date (RFC 9110 IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT")
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    let d = now.duration_until(when);
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

/// The OpenAI-compatible client.
pub struct OpenAiClient {
    http: reqwest::Client,
    api_key: String,
    retry: RetryPolicy,
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
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(cfg.timeout_secs))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ModelError::Unreachable {
                url: base_url.clone(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            http,
            // servers that need no key still get a harmless placeholder header
            api_key: cfg.api_key.clone().unwrap_or_else(|| "none".into()),
            retry: RetryPolicy::default(),
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

    /// Retry with `policy` instead of [`RetryPolicy::default`].
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
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

    fn unreachable(&self, e: &reqwest::Error) -> ModelError {
        ModelError::Unreachable {
            url: self.base_url.clone(),
            detail: if e.is_timeout() {
                "timed out (raise timeout_secs in bosun.toml for slow local models)".into()
            } else {
                // the source chain says what actually failed (refused, reset, DNS…)
                let mut d = e.to_string();
                let mut src = std::error::Error::source(e);
                while let Some(s) = src {
                    d.push_str(": ");
                    d.push_str(&s.to_string());
                    src = s.source();
                }
                d
            },
        }
    }

    /// POST the request, retrying per [`RetryPolicy`]; a 2xx response, or the error.
    async fn send(&self, body: &Value) -> Result<reqwest::Response, ModelError> {
        let url = format!("{}/chat/completions", self.base_url.trim_end_matches('/'));
        let mut waited = Duration::ZERO;
        let mut attempt = 1u32;
        loop {
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&self.api_key)
                .json(body)
                .send()
                .await;
            let (err, asked) = match sent {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) => {
                    let status = r.status().as_u16();
                    let asked = retry_after(r.headers());
                    let text = r.text().await.unwrap_or_default();
                    let err = http_error(status, &text);
                    if !(status == 408 || status == 429 || (500..600).contains(&status)) {
                        return Err(err);
                    }
                    (err, asked)
                }
                Err(e) if e.is_connect() => (self.unreachable(&e), None),
                Err(e) => return Err(self.unreachable(&e)),
            };
            if attempt >= self.retry.max_attempts {
                return Err(gave_up(err, format!("gave up after {attempt} tries")));
            }
            let delay = asked.unwrap_or_else(|| self.retry.backoff(attempt));
            if waited.saturating_add(delay) > self.retry.max_total_wait {
                return Err(gave_up(
                    err,
                    format!(
                        "the endpoint asks to retry in {} s; bosun waits at most {} s for one answer — try again later or use another endpoint",
                        delay.as_secs_f32().ceil(),
                        self.retry.max_total_wait.as_secs()
                    ),
                ));
            }
            tracing::warn!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                "model endpoint: {err}; retrying"
            );
            tokio::time::sleep(delay).await;
            waited = waited.saturating_add(delay);
            attempt += 1;
        }
    }

    /// Read a streamed (SSE) answer, passing text deltas on.
    async fn read_stream(
        &self,
        resp: reqwest::Response,
        on_delta: DeltaSink<'_>,
    ) -> Result<ChatResponse, ModelError> {
        let mut events = resp.bytes_stream().eventsource();
        let mut acc = StreamAccumulator::default();
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(eventsource_stream::EventStreamError::Transport(e)) if e.is_timeout() => {
                    return Err(self.unreachable(&e))
                }
                Err(e) => {
                    return Err(ModelError::Malformed {
                        detail: format!("the stream broke off: {e}"),
                    })
                }
            };
            let data = ev.data.trim();
            if data == "[DONE]" {
                acc.done();
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value = serde_json::from_str(data).map_err(|e| ModelError::Malformed {
                detail: format!(
                    "a stream event is not JSON ({e}): {}",
                    crate::term::printable(&data.chars().take(200).collect::<String>())
                ),
            })?;
            if let Some(text) = acc.push(&chunk)? {
                on_delta(&text);
            }
        }
        acc.finish()
    }
}

/// An error status as a [`ModelError`]: the body's `error` message when it is JSON, else its text.
fn http_error(status: u16, body: &str) -> ModelError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .as_ref()
        .and_then(wire::error_of)
        .unwrap_or_else(|| {
            let t = body.trim();
            if t.is_empty() {
                "(empty body)".to_string()
            } else {
                crate::term::printable(&t.chars().take(300).collect::<String>()).into_owned()
            }
        });
    ModelError::Http { status, message }
}

/// Say why the client stopped retrying.
fn gave_up(err: ModelError, why: String) -> ModelError {
    match err {
        ModelError::Http { status, message } => ModelError::Http {
            status,
            message: format!("{message} ({why})"),
        },
        ModelError::Unreachable { url, detail } => ModelError::Unreachable {
            url,
            detail: format!("{detail} ({why})"),
        },
        other => other,
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
            let body = serde_json::to_value(self.request(req, self.stream))
                .map_err(|e| ModelError::Api(format!("cannot serialise the request: {e}")))?;
            let resp = self.send(&body).await?;
            let sse = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            // a server that ignores `stream: true` answers with one JSON body; read it as such
            let parsed = if self.stream && sse {
                self.read_stream(resp, on_delta).await?
            } else {
                let bytes = resp.bytes().await.map_err(|e| {
                    if e.is_timeout() {
                        self.unreachable(&e)
                    } else {
                        ModelError::Malformed {
                            detail: format!("the response body broke off: {e}"),
                        }
                    }
                })?;
                let v: Value =
                    serde_json::from_slice(&bytes).map_err(|e| ModelError::Malformed {
                        detail: format!(
                            "the body is not JSON ({e}); it starts with: {}",
                            crate::term::printable(
                                &String::from_utf8_lossy(&bytes)
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            )
                        ),
                    })?;
                let r = wire::parse_response(&v)?;
                if let Some(t) = r.content.as_deref().filter(|_| self.stream) {
                    on_delta(t);
                }
                r
            };
            Ok(self.finish(parsed, req.tools))
        })
    }

    fn model_name(&self) -> &str {
        &self.model
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn after(v: &str) -> Option<Duration> {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).ok()?);
        retry_after(&h)
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_never_panics() {
        assert_eq!(after("3"), Some(Duration::from_secs(3)));
        assert_eq!(after(" 1.5 "), Some(Duration::from_millis(1500)));
        assert_eq!(after("1e300"), None);
        assert_eq!(after("-1"), None);
        assert_eq!(after("soon"), None);
        // a date in the past: retry now
        assert_eq!(after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let future = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let date =
            jiff::fmt::rfc2822::to_string(&future.to_zoned(jiff::tz::TimeZone::UTC)).expect("date");
        let d = after(&date).expect("future date");
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for _ in 0..20 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(250) && d1 <= Duration::from_millis(500));
            assert!(p.backoff(10) <= p.max_delay);
        }
    }
}
