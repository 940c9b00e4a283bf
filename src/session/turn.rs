//! The turn loop: ask the model, run the calls it asked for through the one dispatch, and
//! keep the books (evidence, applied changes, pending checks) until a final answer.

use super::control::Verb;
use super::{AppliedChange, Event, Outcome, Pending, Runtime, Session, SessionError};
use crate::model::{ChatRequest, FinishReason, Message, ModelError, ToolSpec};
use crate::planner::State;

impl Session {
    /// Run one user task to its final answer.
    pub async fn run_task(&mut self, task: &str) -> Result<Outcome, SessionError> {
        let rt = self.runtime.clone();
        if !self.is_child {
            self.emit(Event::TaskStarted {
                task: task.to_string(),
                model: rt.model.model_name().to_string(),
            });
        }
        self.push(Message::User {
            content: task.to_string(),
        });
        self.interrupt.take(); // an interrupt before the task started does not count
        self.applied.clear();
        self.blocked.clear();
        self.change_attempted = false;
        self.verification_failed = false;
        self.validated.clear();
        self.proposed.clear();
        self.workspace_calls.clear();
        let span = if self.is_child {
            tracing::Span::current()
        } else {
            crate::telemetry::session_span(&rt.agent.def.id, &self.id)
        };
        let mut result = tracing::Instrument::instrument(self.drive(&rt), span.clone()).await;
        if !self.is_child {
            let status = match &result {
                Ok(o) => o.status.as_str(),
                Err(SessionError::Interrupted) => "interrupted",
                Err(_) => "error",
            };
            crate::telemetry::record_status(&span, status);
        }
        if matches!(result, Err(SessionError::Interrupted)) {
            self.repair_after_interrupt();
            if !self.is_child {
                self.save_outcome("interrupted", "the user interrupted the task");
                self.emit(Event::TaskInterrupted);
            }
            return result;
        }
        if self.is_child {
            return result;
        }
        if let Ok(o) = &mut result {
            if let Err(e) = self.write_proposal(&rt, task, o) {
                result = Err(e);
            }
        }
        match &result {
            Ok(o) => self.save_outcome(o.status.as_str(), &o.verdict),
            Err(e) => self.save_outcome("error", &e.to_string()),
        }
        match &result {
            Ok(o) => self.emit(Event::TaskComplete {
                status: o.status,
                verdict: o.verdict.clone(),
                answer: o.answer.clone(),
                turns: o.turns,
                tool_calls: o.tool_calls,
                usage: o.usage,
                state: o.state,
                report: o.report.clone(),
                proposal: o.proposal_dir.clone().map(|dir| super::ProposalWritten {
                    dir,
                    changes: o.proposed.len(),
                }),
            }),
            Err(e) => self.emit(Event::TaskFailed {
                error: e.to_string(),
            }),
        }
        result
    }

    /// The one call path ([`crate::dispatch`]) with this session's guard, audit log, session
    /// file and events.
    fn env<'a>(&'a self, rt: &'a Runtime) -> crate::dispatch::CallEnv<'a> {
        crate::dispatch::CallEnv {
            registry: &rt.registry,
            ctx: &rt.ctx,
            guard: &self.guard,
            audit: self.audit.as_deref(),
            file: self.file.as_ref(),
            events: Some(&self.events),
            interrupt: Some(&self.interrupt),
        }
    }

    /// One tool call, start to finish: a planner verb is the session's own
    /// ([`Self::run_verb`]); anything else goes through [`crate::dispatch`] — admission (in
    /// `state`), the tool, redaction, budget, audit and events. Returns (ok, what the model is
    /// told).
    pub(super) async fn run_call(
        &mut self,
        rt: &Runtime,
        call: &crate::model::ToolCall,
        state: State,
    ) -> Result<(bool, String), SessionError> {
        if let Some(verb) = Verb::parse(call, rt) {
            return self.run_verb(rt, call, verb).await;
        }
        let adm = self.env(rt).admit(call, state).await;
        if adm.decision.refusal.is_some_and(|k| k.blocks_change()) {
            self.blocked.push(adm.decision.clone());
        }
        let mut refusal = adm.refusal.clone();
        if adm.decision.refusal == Some(crate::guard::RefusalKind::Proposed)
            && !self.propose(rt, call, &adm.decision)
        {
            // the guard holds a dry-run this task did not see (restored by a resume): without
            // its call the change cannot be replayed, so the model is told to dry-run again
            refusal = Some("refused by bosun's guard: this task runs in suggest mode, and the dry-run of this change ran before the session was resumed, so the change cannot be recorded in the proposal yet: dry-run it again, then call it again".into());
        }
        // the task set out to change something when a change was admitted, or refused for want
        // of its dry-run (the model tried to apply): only completion makes that a success. A
        // change refused for the planner state, as already applied, or replayed is not counted
        let changes = adm
            .decision
            .effect
            .is_some_and(|e| e >= crate::effect::EffectClass::Mutating);
        let no_dry_run = adm.decision.refusal == Some(crate::guard::RefusalKind::NoDryRun);
        if (changes && adm.admitted.is_some()) || no_dry_run {
            self.change_attempted = true;
        }
        let approved_by = adm.decision.approved_by.clone();
        let target = adm.decision.target.clone().unwrap_or_default();
        let (ok, output) = match adm.admitted {
            None => (false, refusal.unwrap_or_default()),
            Some(a) => {
                let ran = a.receipt();
                let ex = self.env(rt).execute(a).await;
                self.bookkeep(rt, &ran, &ex, &target, approved_by);
                (ex.ok, ex.output)
            }
        };
        let output = self.env(rt).finish(call, ok, &output, adm.started);
        Ok((ok, output))
    }

    /// A planner verb: the session decides it (no tool runs, nothing outside changes); the
    /// call and its result are still audited and shown like any other.
    async fn run_verb(
        &mut self,
        rt: &Runtime,
        call: &crate::model::ToolCall,
        verb: Result<Verb, String>,
    ) -> Result<(bool, String), SessionError> {
        let started = std::time::Instant::now();
        self.emit(Event::ToolCallStarted {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            arguments: rt.ctx.redactor.redact(&call.arguments),
        });
        let (ok, output) = match verb {
            Err(e) => (false, format!("error: {e}")),
            Ok(Verb::Delegate { agent, task }) => Box::pin(self.delegate(rt, &agent, task)).await?,
            Ok(Verb::Transition(t)) => match Box::pin(self.transition(rt, &t)).await? {
                Ok(msg) => (true, msg),
                Err(why) => (false, format!("refused by bosun's planner: {why}")),
            },
        };
        Ok((ok, self.env(rt).finish(call, ok, &output, started)))
    }

    /// After a tool ran: a dry-run's output is kept as evidence; a change is listed as applied
    /// (with the evidence of its dry-run) and its checks wait for the verification gate.
    fn bookkeep(
        &mut self,
        rt: &Runtime,
        ran: &crate::dispatch::Ran,
        ex: &crate::dispatch::Executed,
        target: &str,
        approved_by: Option<String>,
    ) {
        use crate::effect::EffectClass;
        let redactor = &rt.ctx.redactor;
        if ex.ok && ran.effect >= EffectClass::Mutating {
            let mut follow = ex.follow_ups.clone();
            // the policy's metric checks, after the change's own
            let checks = &rt.guard_config.policy.verification.metrics;
            follow.verify.extend(
                checks
                    .iter()
                    .map(|c| crate::tools::metrics::check_follow_up(c, ran.namespace.as_deref())),
            );
            if !follow.verify.is_empty() || follow.rollback.is_some() {
                self.pending.push(Pending {
                    tool: ran.tool.clone(),
                    target: target.to_string(),
                    follow,
                });
            }
        }
        let head = |t: &str| t.lines().take(20).collect::<Vec<_>>().join("\n");
        let stateful = rt.registry.get(&ran.tool).is_some_and(|r| {
            r.operations
                .values()
                .any(|e| *e == EffectClass::WorkspaceWrite)
        });
        if ex.ok && ran.effect <= EffectClass::WorkspaceWrite && stateful {
            self.workspace_calls.push(crate::proposal::RecordedCall {
                tool: ran.tool.clone(),
                arguments: redact_json(redactor, &ran.args),
            });
        }
        let (true, Some(fp)) = (ex.ok, &ran.fingerprint) else {
            return;
        };
        if ran.effect == EffectClass::DryRun {
            self.evidence
                .insert(fp.short(), redactor.redact(&head(&ex.output)));
            self.validated.insert(
                fp.short(),
                super::Validated {
                    fingerprint: fp.clone(),
                    call: crate::proposal::RecordedCall {
                        tool: ran.tool.clone(),
                        arguments: redact_json(redactor, &ran.args),
                    },
                    setup: self
                        .workspace_calls
                        .iter()
                        .filter(|c| c.tool == ran.tool)
                        .cloned()
                        .collect(),
                    output: redactor.redact(&ex.output),
                },
            );
        } else if ran.effect >= EffectClass::Mutating {
            self.applied.push(AppliedChange {
                tool: ran.tool.clone(),
                operation: ran.operation.clone(),
                target: target.to_string(),
                fingerprint: fp.short(),
                approved_by,
                dry_run_evidence: self
                    .evidence
                    .get(&fp.short())
                    .cloned()
                    .unwrap_or_else(|| "(dry-run recorded before this session was resumed)".into()),
                result: redactor.redact(&head(&ex.output)),
            });
        }
    }

    /// The loop: one model turn after another until a final answer, a limit or an interrupt.
    async fn drive(&mut self, rt: &Runtime) -> Result<Outcome, SessionError> {
        let mut t = TaskLoop::new(self.usage, self.state);
        for turn in 1..=rt.max_turns {
            let turn_span = crate::telemetry::turn_span(turn);
            t.count_state_turn(self.state, rt.max_turns_per_state)?;
            if self.interrupt.take() {
                return Err(SessionError::Interrupted);
            }
            let model_span = crate::telemetry::model_span(&turn_span, rt.model.model_name());
            let Some(resp) = self.ask_model(rt, &mut t, &model_span).await? else {
                continue; // an unusable answer: asked again once
            };
            self.usage += resp.usage;
            crate::telemetry::record_usage(&model_span, resp.usage);
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
                    self.push(Message::Assistant {
                        content: text,
                        tool_calls: vec![],
                    });
                    self.push(Message::User {
                        content: "Your last answer was cut off by the token limit. Retry with a shorter answer: one tool call at a time, no long explanations.".into(),
                    });
                    continue;
                }
                match self.final_answer(rt, text, turn, &t).await? {
                    Some(outcome) => return Ok(outcome),
                    None => continue, // the verification gate sent the model back to work
                }
            }
            self.push(Message::Assistant {
                content: text,
                tool_calls: calls.clone(),
            });
            for call in calls {
                if self.interrupt.take() {
                    return Err(SessionError::Interrupted);
                }
                t.calls_made += 1;
                let output = match t.repeat_check(&call, rt.loop_limit)? {
                    Some(nudge) => self.refuse_repeat(rt, &call, nudge),
                    None => {
                        let tool_span =
                            crate::telemetry::tool_span(&turn_span, &call.name, &call.id);
                        let (ok, output) = tracing::Instrument::instrument(
                            self.run_call(rt, &call, self.state),
                            tool_span.clone(),
                        )
                        .await?;
                        crate::telemetry::record_tool_ok(&tool_span, ok);
                        output
                    }
                };
                self.push(Message::Tool {
                    tool_call_id: call.id,
                    content: output,
                });
            }
        }
        Err(SessionError::MaxTurns(rt.max_turns))
    }

    /// The request of this turn: the conversation with the planner note on its last message
    /// (not stored), and only the tools with an operation the planner state allows.
    fn request(&self, rt: &Runtime) -> (Vec<Message>, Vec<ToolSpec>) {
        let mut request = self.messages.clone();
        let note = self.state_note();
        if let Some(Message::User { content } | Message::Tool { content, .. }) = request.last_mut()
        {
            content.push_str(&note);
        }
        let specs: Vec<ToolSpec> = rt
            .specs
            .iter()
            .filter(|spec| {
                match rt.registry.get(&spec.name) {
                    // in validation, a mutating operation may run as its dry-run
                    Some(r) => {
                        self.state == State::Validation
                            || r.operations.values().any(|e| self.state.allows(*e))
                    }
                    None => true, // the planner's verbs
                }
            })
            .cloned()
            .collect();
        (request, specs)
    }

    /// One model round-trip, abandoned on an interrupt. `Ok(None)`: the answer was unusable
    /// (cut-off stream, call without a function…) — the model is told so once, on the next
    /// request only; a second one fails the task.
    async fn ask_model(
        &self,
        rt: &Runtime,
        t: &mut TaskLoop,
        span: &tracing::Span,
    ) -> Result<Option<crate::model::ChatResponse>, SessionError> {
        let (mut request, specs) = self.request(rt);
        if let Some(why) = t.malformed_note.as_deref() {
            if let Some(Message::User { content } | Message::Tool { content, .. }) =
                request.last_mut()
            {
                content.push_str(why);
            }
        }
        let events = self.events.clone();
        let on_delta = move |t: &str| {
            let _ = events.send(Event::AssistantDelta {
                text: t.to_string(),
            });
        };
        let interrupt = self.interrupt.clone();
        let r = tokio::select! {
            r = tracing::Instrument::instrument(rt.model.complete(
                ChatRequest {
                    messages: &request,
                    tools: &specs,
                },
                &on_delta,
            ), span.clone()) => r,
            _ = interrupt.wait() => {
                interrupt.take();
                return Err(SessionError::Interrupted);
            }
        };
        match r {
            Err(ModelError::Malformed { detail }) if !t.malformed_retried => {
                t.malformed_retried = true;
                tracing::warn!("model sent an unusable response ({detail}); asking again once");
                t.malformed_note = Some(format!("\n[bosun] your last response could not be used: {detail}. Answer again: plain text, or tool calls each with a function name and JSON arguments."));
                Ok(None)
            }
            r => {
                t.malformed_note = None;
                Ok(Some(r?))
            }
        }
    }

    /// A final answer. With unverified changes the gate runs first; if it fails the model is
    /// told why and goes on (`None`). Otherwise the runtime's outcome.
    async fn final_answer(
        &mut self,
        rt: &Runtime,
        text: Option<String>,
        turn: u32,
        t: &TaskLoop,
    ) -> Result<Option<Outcome>, SessionError> {
        if !self.pending.is_empty() {
            if let Err(why) = self.verification_gate(rt).await? {
                self.push(Message::Assistant {
                    content: text,
                    tool_calls: vec![],
                });
                self.push(Message::User {
                    content: format!("[bosun] {why}"),
                });
                return Ok(None);
            }
        }
        let answer = text.clone().unwrap_or_default();
        self.push(Message::Assistant {
            content: text,
            tool_calls: vec![],
        });
        let mut usage = self.usage;
        usage.prompt_tokens -= t.start_usage.prompt_tokens;
        usage.completion_tokens -= t.start_usage.completion_tokens;
        let (status, verdict) = self.verdict();
        Ok(Some(Outcome {
            proposed: self.proposed.clone(),
            proposal_dir: None,
            status,
            verdict,
            answer,
            turns: turn,
            tool_calls: t.calls_made,
            usage,
            state: self.state,
            report: self.report.clone(),
            applied: self.applied.clone(),
            blocked: self.blocked.clone(),
        }))
    }

    /// A repeated call is not run: the model gets `nudge` as its result (with the events).
    fn refuse_repeat(&self, rt: &Runtime, call: &crate::model::ToolCall, nudge: String) -> String {
        self.emit(Event::ToolCallStarted {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            arguments: rt.ctx.redactor.redact(&call.arguments),
        });
        self.emit(Event::ToolCallFinished {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            ok: false,
            output: nudge.clone(),
            duration_ms: 0,
        });
        nudge
    }
}

/// The bookkeeping of one task's loop: limits and retries.
struct TaskLoop {
    calls_made: u32,
    start_usage: crate::model::Usage,
    /// Loop detection: how often each (tool, canonical arguments) was requested in this task.
    repeats: std::collections::HashMap<(String, String), u32>,
    state_turns: u32,
    turn_state: State,
    malformed_retried: bool,
    malformed_note: Option<String>,
}

impl TaskLoop {
    fn new(start_usage: crate::model::Usage, state: State) -> Self {
        Self {
            calls_made: 0,
            start_usage,
            repeats: Default::default(),
            state_turns: 0,
            turn_state: state,
            malformed_retried: false,
            malformed_note: None,
        }
    }

    /// Count a turn in `state`; too many in one state fails the task.
    fn count_state_turn(&mut self, state: State, limit: u32) -> Result<(), SessionError> {
        if state == self.turn_state {
            self.state_turns += 1;
            if self.state_turns > limit {
                return Err(SessionError::StateTurns(limit, state));
            }
        } else {
            self.turn_state = state;
            self.state_turns = 1;
        }
        Ok(())
    }

    /// The same call with the same arguments `limit` times is answered with a nudge instead of
    /// being run (`Some(nudge)`); once more fails the task.
    fn repeat_check(
        &mut self,
        call: &crate::model::ToolCall,
        limit: u32,
    ) -> Result<Option<String>, SessionError> {
        let key = (
            call.name.clone(),
            serde_json::from_str::<serde_json::Value>(&call.arguments)
                .map(|v| crate::tools::canonical_hash(&v))
                .unwrap_or_else(|_| call.arguments.clone()),
        );
        let seen = self.repeats.entry(key).or_insert(0);
        *seen += 1;
        if *seen > limit {
            return Err(SessionError::Loop {
                tool: call.name.clone(),
                times: *seen,
            });
        }
        Ok((*seen == limit).then(|| format!(
            "not run: you already called `{}` with exactly these arguments {} times and the results are above. Use them: answer the user, or call something different. Repeating this call again ends the task as failed.",
            call.name,
            *seen - 1
        )))
    }
}

/// A JSON value with every known secret masked (through its text, as session files are).
fn redact_json(redactor: &crate::redact::Redactor, v: &serde_json::Value) -> serde_json::Value {
    let text = redactor.redact(&v.to_string());
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

impl Session {
    /// Suggest mode: the guard refused `call` as a proposal (it passed every check and has a
    /// fresh matching dry-run): record the change with that dry-run's call and evidence.
    /// Whether the change is in the proposal (recorded now or before).
    fn propose(
        &mut self,
        rt: &Runtime,
        call: &crate::model::ToolCall,
        d: &crate::guard::Decision,
    ) -> bool {
        let Some(short) = &d.fingerprint else {
            return false;
        };
        if self.proposed.iter().any(|p| &p.short == short) {
            return true;
        }
        let Some(v) = self.validated.get(short) else {
            return false;
        };
        let redactor = &rt.ctx.redactor;
        let arguments = serde_json::from_str(&call.arguments)
            .map(|a| redact_json(redactor, &a))
            .unwrap_or(serde_json::Value::Null);
        self.proposed.push(crate::proposal::ProposedChange {
            tool: call.name.clone(),
            operation: d.operation.clone().unwrap_or_default(),
            target: d.target.clone().unwrap_or_default(),
            effect: d.effect.unwrap_or(crate::effect::EffectClass::Mutating),
            fingerprint: v.fingerprint.clone(),
            short: short.clone(),
            setup: v.setup.clone(),
            dry_run: v.call.clone(),
            apply: Some(crate::proposal::RecordedCall {
                tool: call.name.clone(),
                arguments,
            }),
            evidence_sha256: crate::tools::sha256_hex(v.output.as_bytes()),
            evidence: v.output.clone(),
        });
        true
    }

    /// Suggest mode, at the end of a task: the proposal — every proposed change, then every
    /// other change whose dry-run passed (validated, never asked for: not replayable) — goes
    /// into the outcome and, when the runtime has a proposal or sessions directory, to disk.
    fn write_proposal(
        &mut self,
        rt: &Runtime,
        task: &str,
        o: &mut Outcome,
    ) -> Result<(), SessionError> {
        if rt.guard_config.mode != crate::scope::Mode::Suggest {
            return Ok(());
        }
        let mut changes = self.proposed.clone();
        let mut rest: Vec<&super::Validated> = self
            .validated
            .iter()
            .filter(|(k, _)| !changes.iter().any(|c| &c.short == *k))
            .map(|(_, v)| v)
            .collect();
        rest.sort_by_key(|v| v.fingerprint.short());
        for v in rest {
            changes.push(crate::proposal::ProposedChange {
                tool: v.call.tool.clone(),
                operation: v
                    .call
                    .arguments
                    .get("operation")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                target: v.fingerprint.target.clone(),
                effect: crate::effect::EffectClass::DryRun,
                short: v.fingerprint.short(),
                fingerprint: v.fingerprint.clone(),
                setup: v.setup.clone(),
                dry_run: v.call.clone(),
                apply: None,
                evidence_sha256: crate::tools::sha256_hex(v.output.as_bytes()),
                evidence: v.output.clone(),
            });
        }
        if changes.is_empty() {
            return Ok(());
        }
        o.proposed = changes.clone();
        let dir = rt
            .proposal_dir
            .as_ref()
            .map(|d| std::path::PathBuf::from(d.to_string_lossy().replace("{session}", &self.id)));
        let dir = dir.or_else(|| {
            rt.sessions_dir
                .as_ref()
                .map(|d| d.join(format!("{}.proposal", self.id)))
        });
        if let Some(dir) = dir {
            let p = crate::proposal::Proposal::new(&self.id, &rt.agent.def.id, task, changes);
            p.write(&dir, &rt.ctx.redactor)?;
            o.proposal_dir = Some(dir);
        }
        Ok(())
    }
}

impl Session {
    /// The task's outcome in the session file (for `bosun sessions list`).
    fn save_outcome(&self, status: &str, verdict: &str) {
        self.save(&crate::store::Entry::Outcome {
            status: status.to_string(),
            verdict: verdict.to_string(),
        });
    }
}
