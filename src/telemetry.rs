//! OpenTelemetry traces: the spans a session makes (named and attributed after the GenAI
//! semantic conventions) and their export over OTLP (HTTP/protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set — off otherwise, at the cost of a disabled span.
//!
//! ```text
//! invoke_agent <agent>            gen_ai.agent.name, gen_ai.conversation.id (session), bosun.task.status
//! └─ bosun.turn                   bosun.turn
//!    ├─ chat <model>              gen_ai.request.model, gen_ai.usage.input_tokens / output_tokens
//!    └─ execute_tool <tool>       gen_ai.tool.name, gen_ai.tool.call.id, bosun.tool.ok
//!       └─ bosun.guard            bosun.guard.verdict, .operation, .effect, .target, .fingerprint,
//!                                 .environment, .reason, .approved_by (the wait for a human is inside)
//! ```
//! No argument, output or message text is recorded; the free-text attributes (target, reason)
//! pass the session's [`Redactor`] first.

use crate::guard::{Decision, Verdict};
use crate::model::Usage;
use crate::redact::Redactor;
use tracing::field::Empty;
use tracing::Span;

/// The session's span: `invoke_agent <agent>`.
pub fn session_span(agent: &str, session: &str) -> Span {
    tracing::info_span!(
        target: "bosun::telemetry",
        "invoke_agent",
        otel.name = format!("invoke_agent {agent}"),
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = agent,
        gen_ai.conversation.id = session,
        bosun.task.status = Empty,
    )
}

/// How the task ended, on its session span.
pub fn record_status(span: &Span, status: &str) {
    span.record("bosun.task.status", status);
}

/// One model turn and the tool calls it asked for (a child of the current span).
pub fn turn_span(turn: u32) -> Span {
    tracing::info_span!(target: "bosun::telemetry", "bosun.turn", bosun.turn = turn)
}

/// One model call: `chat <model>`.
pub fn model_span(parent: &Span, model: &str) -> Span {
    tracing::info_span!(
        target: "bosun::telemetry",
        parent: parent,
        "chat",
        otel.name = format!("chat {model}"),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "openai",
        gen_ai.request.model = model,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    )
}

/// The tokens a model call used.
pub fn record_usage(span: &Span, usage: Usage) {
    span.record("gen_ai.usage.input_tokens", usage.prompt_tokens);
    span.record("gen_ai.usage.output_tokens", usage.completion_tokens);
}

/// One tool call: `execute_tool <tool>`.
pub fn tool_span(parent: &Span, tool: &str, call_id: &str) -> Span {
    tracing::info_span!(
        target: "bosun::telemetry",
        parent: parent,
        "execute_tool",
        otel.name = format!("execute_tool {tool}"),
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = tool,
        gen_ai.tool.call.id = call_id,
        bosun.tool.ok = Empty,
    )
}

/// Whether the tool call succeeded.
pub fn record_tool_ok(span: &Span, ok: bool) {
    span.record("bosun.tool.ok", ok);
}

/// The guard's admission of one call (a child of the current span).
pub fn guard_span(tool: &str) -> Span {
    tracing::info_span!(
        target: "bosun::telemetry",
        "bosun.guard",
        bosun.guard.tool = tool,
        bosun.guard.verdict = Empty,
        bosun.guard.operation = Empty,
        bosun.guard.effect = Empty,
        bosun.guard.target = Empty,
        bosun.guard.fingerprint = Empty,
        bosun.guard.environment = Empty,
        bosun.guard.reason = Empty,
        bosun.guard.approved_by = Empty,
    )
}

/// The guard's decision, its free text redacted.
pub fn record_decision(span: &Span, d: &Decision, redactor: &Redactor) {
    if span.is_disabled() {
        return;
    }
    span.record(
        "bosun.guard.verdict",
        match d.verdict {
            Verdict::Allow => "allow",
            Verdict::Refuse => "refuse",
        },
    );
    if let Some(o) = &d.operation {
        span.record("bosun.guard.operation", o.as_str());
    }
    if let Some(e) = d.effect {
        span.record("bosun.guard.effect", e.to_string().as_str());
    }
    if let Some(t) = &d.target {
        span.record("bosun.guard.target", redactor.redact(t).as_str());
    }
    if let Some(f) = &d.fingerprint {
        span.record("bosun.guard.fingerprint", f.as_str());
    }
    if let Some(e) = d.environment {
        span.record(
            "bosun.guard.environment",
            format!("{e:?}").to_lowercase().as_str(),
        );
    }
    span.record("bosun.guard.reason", redactor.redact(&d.reason).as_str());
    if let Some(a) = &d.approved_by {
        span.record("bosun.guard.approved_by", redactor.redact(a).as_str());
    }
}

/// Why traces could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP exporter for OTEL_EXPORTER_OTLP_ENDPOINT: {0}")]
    Exporter(String),
}

/// The running exporter; [`Telemetry::shutdown`] flushes what is buffered.
pub struct Telemetry {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl Telemetry {
    /// Export every span still buffered, then stop.
    pub fn shutdown(self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

/// A boxed subscriber layer.
pub type BoxedLayer<S> = Box<dyn tracing_subscriber::Layer<S> + Send + Sync + 'static>;

/// The layer exporting bosun's spans over OTLP (HTTP/protobuf; the exporter reads
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, …) when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set; `None` otherwise. Only bosun's spans pass (no log events).
pub fn otlp_layer<S>() -> Result<Option<(BoxedLayer<S>, Telemetry)>, TelemetryError>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::Layer as _;
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none_or(|v| v.is_empty()) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "bosun".into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("bosun");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // spans only: log events carry free text, spans carry only the attributes above
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.is_span() && meta.target().starts_with("bosun")
        }))
        .boxed();
    Ok(Some((layer, Telemetry { provider })))
}
