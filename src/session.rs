//! The core: a [`Runtime`] (agent, tools, model, system prompt — shareable) and [`Session`]s
//! over it. A session takes operations and emits [`Event`]s; it never prints. Frontends (the
//! CLI, tests, embedders) render the events.

use crate::agent::Agent;
use crate::diag::Diagnostic;
use crate::guard::{Decision, Guard, Verdict};
use crate::kube_client::KubeTarget;
use crate::model::{ChatRequest, FinishReason, Message, ModelClient, ModelError, ToolSpec, Usage};
use crate::tools::{self, Registry, ToolCtx};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Default cap on model turns per task when the agent does not set `max_turns`.
pub const DEFAULT_MAX_TURNS: u32 = 40;

/// Events a session emits, in order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A task started.
    TaskStarted { task: String, model: String },
    /// Streamed assistant text.
    AssistantDelta { text: String },
    /// A complete assistant text message.
    AssistantMessage { text: String },
    /// The model asked for a tool call.
    ToolCallStarted {
        call_id: String,
        tool: String,
        arguments: String,
    },
    /// What the guard decided about it.
    GuardDecision(Decision),
    /// The call finished (or was refused); `output` is exactly what the model receives.
    ToolCallFinished {
        call_id: String,
        tool: String,
        ok: bool,
        output: String,
        duration_ms: u64,
    },
    /// One model round-trip finished.
    TurnComplete { turn: u32, usage: Usage },
    /// The task ended with a final answer.
    TaskComplete {
        answer: String,
        turns: u32,
        tool_calls: u32,
        usage: Usage,
    },
    /// The task ended with an error.
    TaskFailed { error: String },
}

/// Where events go. A closed receiver is not an error: the session keeps working.
pub type EventSink = UnboundedSender<Event>;

/// Options for building a [`Runtime`].
#[derive(Clone, Default)]
pub struct RuntimeOptions {
    /// The cluster the Kubernetes tools talk to.
    pub kube: KubeTarget,
    /// Overrides the agent's `max_turns`.
    pub max_turns: Option<u32>,
    /// Extra facts rendered into the system prompt (`environment` in the template).
    pub environment: BTreeMap<String, String>,
    /// Where tools may write (default: a fresh temporary directory per runtime).
    pub workspace: Option<PathBuf>,
    /// Resolves `vault:` references (default: none configured).
    pub secrets: Option<Arc<dyn crate::secrets::SecretResolver>>,
    /// The redactor shared with the resolver (default: a new one).
    pub redactor: Option<Arc<crate::redact::Redactor>>,
}

/// Errors building a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// Everything a session needs that does not change between sessions. Cheap to share (`Arc`).
pub struct Runtime {
    pub agent: Agent,
    pub registry: Registry,
    pub model: Arc<dyn ModelClient>,
    pub system_prompt: String,
    pub specs: Vec<ToolSpec>,
    pub max_turns: u32,
    pub ctx: ToolCtx,
    /// Keeps a temporary workspace alive as long as the runtime.
    _workspace_dir: Option<tempfile::TempDir>,
}

impl Runtime {
    /// Build a runtime for `agent`. Returns warnings alongside.
    pub fn new(
        agent: Agent,
        model: Arc<dyn ModelClient>,
        opts: RuntimeOptions,
    ) -> Result<(Self, Vec<Diagnostic>), RuntimeError> {
        let impls = tools::implementations(&agent, &opts.kube);
        let (registry, warnings) = Registry::build(&agent, impls).map_err(RuntimeError::Invalid)?;
        let system_prompt =
            crate::prompt::render_system(&agent, &registry.prompt_tools(), &opts.environment)
                .map_err(|d| RuntimeError::Invalid(vec![d]))?;
        let specs = registry.specs();
        let (workspace, tmp) = match opts.workspace {
            Some(w) => (w, None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("bosun-workspace-")
                    .tempdir()
                    .map_err(|e| {
                        RuntimeError::Invalid(vec![Diagnostic::error(
                            &std::env::temp_dir(),
                            0,
                            0,
                            format!("cannot create a workspace directory: {e}; pass a workspace"),
                        )])
                    })?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let mut ctx = ToolCtx::new(workspace);
        if let Some(r) = opts.redactor {
            ctx.redactor = r;
        }
        if let Some(s) = opts.secrets {
            ctx.secrets = s;
        }
        let max_turns = opts
            .max_turns
            .or(agent.def.max_turns)
            .unwrap_or(DEFAULT_MAX_TURNS)
            .max(1);
        Ok((
            Self {
                agent,
                registry,
                model,
                system_prompt,
                specs,
                max_turns,
                ctx,
                _workspace_dir: tmp,
            },
            warnings,
        ))
    }

    /// The agent directory.
    pub fn agent_dir(&self) -> PathBuf {
        self.agent.dir.clone()
    }
}

/// How a task ended successfully.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub answer: String,
    pub turns: u32,
    pub tool_calls: u32,
    pub usage: Usage,
}

/// Why a task did not end with an answer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the model used all {0} turns without a final answer; raise max_turns in agent.md or split the task")]
    MaxTurns(u32),
}

/// One conversation with the agent.
pub struct Session {
    runtime: Arc<Runtime>,
    messages: Vec<Message>,
    guard: Guard,
    usage: Usage,
    events: EventSink,
}

impl Session {
    pub fn new(runtime: Arc<Runtime>, events: EventSink) -> Self {
        let messages = vec![Message::System {
            content: runtime.system_prompt.clone(),
        }];
        Self {
            runtime,
            messages,
            guard: Guard::new(),
            usage: Usage::default(),
            events,
        }
    }

    /// The conversation so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Total token usage so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Run one user task to its final answer.
    pub async fn run_task(&mut self, task: &str) -> Result<Outcome, SessionError> {
        let rt = self.runtime.clone();
        self.emit(Event::TaskStarted {
            task: task.to_string(),
            model: rt.model.model_name().to_string(),
        });
        self.messages.push(Message::User {
            content: task.to_string(),
        });
        let result = self.drive(&rt).await;
        match &result {
            Ok(o) => self.emit(Event::TaskComplete {
                answer: o.answer.clone(),
                turns: o.turns,
                tool_calls: o.tool_calls,
                usage: o.usage,
            }),
            Err(e) => self.emit(Event::TaskFailed {
                error: e.to_string(),
            }),
        }
        result
    }

    async fn drive(&mut self, rt: &Runtime) -> Result<Outcome, SessionError> {
        let mut calls_made = 0u32;
        let start_usage = self.usage;
        for turn in 1..=rt.max_turns {
            let events = self.events.clone();
            let on_delta = move |t: &str| {
                let _ = events.send(Event::AssistantDelta {
                    text: t.to_string(),
                });
            };
            let resp = rt
                .model
                .complete(
                    ChatRequest {
                        messages: &self.messages,
                        tools: &rt.specs,
                    },
                    &on_delta,
                )
                .await?;
            self.usage += resp.usage;
            self.emit(Event::TurnComplete {
                turn,
                usage: resp.usage,
            });
            let text = resp.content.clone().filter(|t| !t.trim().is_empty());
            if let Some(t) = &text {
                self.emit(Event::AssistantMessage { text: t.clone() });
            }
            // a call cut off by the token limit has broken arguments: drop it, ask for less
            let truncated = resp.finish_reason == FinishReason::Length;
            let calls: Vec<_> = resp
                .tool_calls
                .into_iter()
                .filter(|c| {
                    !(truncated && serde_json::from_str::<serde_json::Value>(&c.arguments).is_err())
                })
                .collect();
            if calls.is_empty() {
                if truncated {
                    self.messages.push(Message::Assistant {
                        content: text,
                        tool_calls: vec![],
                    });
                    self.messages.push(Message::User {
                        content: "Your last answer was cut off by the token limit. Retry with a shorter answer: one tool call at a time, no long explanations.".into(),
                    });
                    continue;
                }
                let answer = text.clone().unwrap_or_default();
                self.messages.push(Message::Assistant {
                    content: text,
                    tool_calls: vec![],
                });
                let mut usage = self.usage;
                usage.prompt_tokens -= start_usage.prompt_tokens;
                usage.completion_tokens -= start_usage.completion_tokens;
                return Ok(Outcome {
                    answer,
                    turns: turn,
                    tool_calls: calls_made,
                    usage,
                });
            }
            self.messages.push(Message::Assistant {
                content: text,
                tool_calls: calls.clone(),
            });
            for call in calls {
                calls_made += 1;
                let redactor = &rt.ctx.redactor;
                self.emit(Event::ToolCallStarted {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    arguments: redactor.redact(&call.arguments),
                });
                let started = Instant::now();
                let (decision, admitted) = self.guard.admit(&rt.registry, &call);
                let refused = decision.verdict == Verdict::Refuse;
                let reason = decision.reason.clone();
                self.emit(Event::GuardDecision(decision));
                let (ok, output) = match admitted {
                    Some(a) => match rt.registry.get(&a.tool) {
                        Some(reg) => match reg.tool.execute(&a, &rt.ctx).await {
                            Ok(out) => (true, out),
                            Err(e) => (false, format!("error: {e}")),
                        },
                        None => (false, format!("error: unknown tool {}", a.tool)),
                    },
                    None => {
                        debug_assert!(refused);
                        (false, format!("refused by bosun's guard: {reason}"))
                    }
                };
                // the one redaction point for tool output: before the model, events and logs
                let output = redactor.redact(&output);
                self.emit(Event::ToolCallFinished {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    ok,
                    output: output.clone(),
                    duration_ms: started.elapsed().as_millis() as u64,
                });
                self.messages.push(Message::Tool {
                    tool_call_id: call.id,
                    content: output,
                });
            }
        }
        Err(SessionError::MaxTurns(rt.max_turns))
    }
}
