//! The guard: the single chokepoint between the model and every executor.
//!
//! [`Guard::admit`] is the only way to obtain an [`Admitted`] call, and
//! [`Tool::execute`](super::Tool::execute) only accepts an `Admitted` — no call reaches an
//! executor without passing here (the type has a private field; it cannot be built elsewhere).
//!
//! Checks, in order (the first that fails refuses the call, with what to do instead):
//! 1. the tool exists and is offered to this agent;
//! 2. the arguments are a JSON object the tool's own parser accepts (`Tool::plan`, no I/O);
//! 3. the operation is offered (implemented and listed in the manifest);
//! 4. the effect class — the tool code's (a dry-run flag lowers it to `dry_run`), made stricter
//!    by the manifest — is allowed by the task's mode (read-only: reads only), stays inside the
//!    task's scope (a dry-run or change in another context or namespace, or on a cluster-scoped
//!    object, is refused), and is allowed in the planner's current state;
//! 5. **dry-run before apply**: a `mutating` or `destructive` call runs only if a successful
//!    dry-run of an equal [`Change`] (same tool, same target, same content hash) was recorded in
//!    this session, is younger than the configured maximum age and was not used by an earlier
//!    apply;
//! 6. approval: `destructive` calls, and every change in `prod`, need an approval from the
//!    [`Approver`], bound to the change's fingerprint (a different change is a different
//!    approval);
//! 7. each tool-call id is admitted once.
//!
//! After execution the session calls [`Guard::record`]: a successful dry-run records its
//! fingerprint; an apply consumes the dry-run it used.

use super::{Change, Invocation, ObjectRef, Registered, Registry, Scope, ToolCtx};
use crate::effect::EffectClass;
use crate::model::ToolCall;
use crate::planner::State;
use crate::policy::{Action, CallFacts, Environment, Policy};
use crate::scope::{Mode, TaskScope};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Prevents construction of [`Admitted`] outside this module.
#[derive(Debug, Clone)]
struct Seal;

/// A tool call the guard let through. Only [`Guard::admit`] creates these.
#[derive(Debug)]
pub struct Admitted {
    pub call_id: String,
    pub tool: String,
    pub operation: String,
    pub effect: EffectClass,
    pub args: Value,
    /// The change this call makes or dry-runs, if any.
    pub change: Option<Change>,
    /// Where the call acts, as the tool resolved it (objects with their real kinds and
    /// namespaces).
    pub scope: Scope,
    pub fingerprint: Option<Fingerprint>,
    _seal: Seal,
}

/// What an admitted call was, kept by the dispatch while the call itself is moved into the
/// tool: the guard records a successful dry-run from it, the session books the change. Only
/// [`Admitted::receipt`] makes one.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub tool: String,
    pub operation: String,
    pub effect: EffectClass,
    pub fingerprint: Option<Fingerprint>,
    pub args: Value,
    /// The namespace the call acts in, as the tool resolved it (for the policy's metric checks).
    pub namespace: Option<String>,
    _seal: Seal,
}

/// Why a check refused: the kind and what the model should do instead.
struct Refusal(RefusalKind, String);

impl Admitted {
    /// What this call is, for after it ran (see [`Receipt`]).
    pub fn receipt(&self) -> Receipt {
        Receipt {
            tool: self.tool.clone(),
            operation: self.operation.clone(),
            effect: self.effect,
            fingerprint: self.fingerprint.clone(),
            args: self.args.clone(),
            namespace: self.scope.namespace.clone(),
            _seal: Seal,
        }
    }

    /// For tools whose change identity covers files (a chart, a Terraform root, the GitOps
    /// clone): recompute the identity just before running and refuse if the files moved since
    /// the guard admitted the call — what runs is exactly what was checked. `redo` tells the
    /// model what to do (e.g. "dry-run it again").
    pub fn still_the_same(
        &self,
        now: Option<&Change>,
        what: &str,
        redo: &str,
    ) -> Result<(), super::ToolError> {
        if now == self.change.as_ref() {
            return Ok(());
        }
        Err(super::ToolError::Failed(format!(
            "the {what} changed after the call was admitted; {redo}"
        )))
    }
}

/// The identity of a change: tool + target + content hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    pub tool: String,
    pub target: String,
    pub content_hash: String,
}

impl Fingerprint {
    pub fn of(tool: &str, change: &Change) -> Self {
        Self {
            tool: tool.to_string(),
            target: change.target.clone(),
            content_hash: change.content_hash.clone(),
        }
    }

    /// A short printable id: the first 12 hex digits of the hash of all parts.
    pub fn short(&self) -> String {
        let h = super::sha256_hex(
            format!("{}\n{}\n{}", self.tool, self.target, self.content_hash).as_bytes(),
        );
        h.chars().take(12).collect()
    }
}

/// The guard's verdict on one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Refuse,
}

/// A record of one decision, for events, logs and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub call_id: String,
    pub tool: String,
    pub operation: Option<String>,
    pub effect: Option<EffectClass>,
    pub target: Option<String>,
    pub fingerprint: Option<String>,
    pub verdict: Verdict,
    /// Why; for refusals, what the model should do instead.
    pub reason: String,
    /// Who approved, when an approval was needed and given.
    pub approved_by: Option<String>,
    /// For refusals: which rule refused.
    pub refusal: Option<RefusalKind>,
    /// The environment of the call's kube context, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// When a human was asked: what the change will do, as the approver saw it
    /// ([`ApprovalRequest::diff`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// For a change: the kube context and the objects it touches as the tool resolved them
    /// (the report reads them back from the audit log to find the access points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectRef>,
}

/// Why the guard refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// Unknown tool, bad arguments, operation not offered.
    Invalid,
    /// Not allowed in the planner's current state.
    State,
    /// A change without a matching, fresh, successful dry-run.
    NoDryRun,
    /// A policy deny rule.
    Policy,
    /// Needed a human approval that was not given.
    Approval,
    /// A replayed tool-call id.
    Replay,
    /// Already applied before the session was resumed.
    AlreadyApplied,
    /// Above what the task's mode allows (e.g. any dry-run or change in read-only mode).
    Mode,
    /// A dry-run or change outside the task's scope (another context or namespace, or a
    /// cluster-scoped object).
    Scope,
    /// Suggest mode: a change that passed every check up to its dry-run, refused so that it is
    /// recorded in the task's change proposal instead of applied (not a failure of the task).
    Proposed,
}

impl RefusalKind {
    /// Whether this refusal stopped a change the task needed: the task cannot honestly be called
    /// done (exit code 3).
    pub fn blocks_change(self) -> bool {
        matches!(
            self,
            Self::Policy | Self::Approval | Self::Mode | Self::Scope
        )
    }
}

/// What an approver is asked.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRequest {
    pub tool: String,
    pub operation: String,
    pub effect: EffectClass,
    pub target: String,
    pub environment: Option<Environment>,
    pub fingerprint: String,
    /// Why approval is needed.
    pub reason: String,
    /// The objects the change really touches (resolved by the tool).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectRef>,
    /// What will change: the tool's own result of the successful dry-run of exactly this change
    /// (kubectl: a unified diff of the server's dry-run result against the live object; helm:
    /// the rendered manifests and values against the live release; terraform: the plan's
    /// creates, updates and deletes by address) — recorded by the guard when that dry-run ran,
    /// never the model's words; redacted (Secret data masked) and capped at
    /// [`MAX_APPROVAL_DIFF`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// The most of a dry-run result an approval request carries.
pub const MAX_APPROVAL_DIFF: usize = 12_000;

/// `text` cut to [`MAX_APPROVAL_DIFF`] characters at a line end, saying how much was left out.
fn cap_diff(text: &str) -> String {
    if text.len() <= MAX_APPROVAL_DIFF {
        return text.to_string();
    }
    let mut end = MAX_APPROVAL_DIFF;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[..end].rfind('\n').map_or(end, |i| i + 1);
    let left = text[cut..].lines().count();
    format!("{}… {left} more line(s) not shown\n", &text[..cut])
}

/// An approver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalDecision {
    Approved { by: String },
    Denied { by: String, reason: String },
}

/// Decides on changes that need a human (interactive prompt, a `--yes`/`--approve env=dev`
/// policy, or an embedding application's callback).
pub trait Approver: Send + Sync {
    fn decide<'a>(&'a self, req: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision>;
}

/// The default approver: nobody is there to approve, so every request is denied with what to do.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoApprover;

impl Approver for NoApprover {
    fn decide<'a>(&'a self, _req: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        Box::pin(async {
            ApprovalDecision::Denied {
                by: "bosun".into(),
                reason: "no approver is configured: run interactively, or pass --approve env=<env> / --yes for non-prod".into(),
            }
        })
    }
}

/// Approves every request in the listed environments (and non-kube changes when `others`);
/// denies the rest. `--yes` = dev + tier; never prod unless listed explicitly.
#[derive(Debug, Clone)]
pub struct PolicyApprover {
    pub environments: Vec<Environment>,
    pub others: bool,
    pub who: String,
}

impl Approver for PolicyApprover {
    fn decide<'a>(&'a self, req: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        Box::pin(async move {
            let ok = match req.environment {
                Some(e) => self.environments.contains(&e),
                None => self.others,
            };
            if ok {
                ApprovalDecision::Approved {
                    by: self.who.clone(),
                }
            } else {
                ApprovalDecision::Denied {
                    by: self.who.clone(),
                    reason: format!(
                        "the approval policy does not cover {}",
                        req.environment
                            .map_or("this target".to_string(), |e| format!("environment {e}"))
                    ),
                }
            }
        })
    }
}

/// Settings of a guard.
#[derive(Clone)]
pub struct GuardConfig {
    /// A dry-run older than this no longer authorises an apply.
    pub dry_run_max_age: Duration,
    pub approver: Arc<dyn Approver>,
    /// Allow / approve / deny rules and the context → environment map.
    pub policy: Arc<Policy>,
    /// How far the task may go: `apply` (default) or `read-only`.
    pub mode: Mode,
    /// Where the task may write (reads are not confined); `None`: anywhere policy allows.
    pub scope: Option<TaskScope>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            dry_run_max_age: Duration::from_secs(15 * 60),
            approver: Arc::new(NoApprover),
            policy: Arc::new(Policy::default()),
            mode: Mode::default(),
            scope: None,
        }
    }
}

#[derive(Debug, Clone)]
struct DryRun {
    at: Instant,
    /// The dry-run's own (redacted) result: what an approval request shows.
    evidence: Option<Arc<str>>,
}

#[derive(Default, Clone)]
struct Inner {
    seen_ids: HashSet<String>,
    dry_runs: HashMap<Fingerprint, DryRun>,
    approvals: HashMap<Fingerprint, String>,
    /// Short fingerprints of changes applied before a resume (from the audit log).
    applied: HashSet<String>,
}

/// The guard. One per session (or shared by a session and its subagents).
pub struct Guard {
    cfg: GuardConfig,
    inner: Mutex<Inner>,
}

impl Default for Guard {
    fn default() -> Self {
        Self::new(GuardConfig::default())
    }
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Self {
        Self {
            cfg,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The same guard state (dry-runs, approvals, used ids) with another approver.
    pub fn with_approver(&self, approver: Arc<dyn Approver>) -> Self {
        let mut cfg = self.cfg.clone();
        cfg.approver = approver;
        Self {
            cfg,
            inner: Mutex::new(self.lock().clone()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The environment of a kube context.
    pub fn environment(&self, context: &str) -> Environment {
        self.cfg.policy.environment(context)
    }

    /// Number of recorded (unused, not necessarily fresh) dry-runs.
    pub fn dry_runs(&self) -> usize {
        self.lock().dry_runs.len()
    }

    /// Whether a fresh, unused dry-run is recorded (the planner's "validated change").
    pub fn has_validated_change(&self) -> bool {
        let max = self.cfg.dry_run_max_age;
        self.lock().dry_runs.values().any(|d| d.at.elapsed() <= max)
    }

    /// Restore a dry-run recorded `age` ago (resuming a session). Already-expired ones are
    /// dropped.
    pub fn restore_dry_run(&self, fp: Fingerprint, age: Duration) {
        if age > self.cfg.dry_run_max_age {
            return;
        }
        let at = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        self.lock()
            .dry_runs
            .insert(fp, DryRun { at, evidence: None });
    }

    /// Mark a change (short fingerprint) as already applied — from the audit log of a resumed
    /// session. Applying it again is refused.
    pub fn mark_applied(&self, short: &str) {
        self.lock().applied.insert(short.to_string());
    }

    /// Decide on `call` in planner state `state`. The decision is always returned; the
    /// `Admitted` only when the call may run.
    ///
    /// The checks run in this order; the first that fails refuses the call:
    /// [`check_tool`](Self::check_tool) → the arguments parse → the tool's `plan` (pure) and
    /// `resolve` (the real effect, with I/O) → [`check_operation`](Self::check_operation) →
    /// [`check_mode`](Self::check_mode) → [`check_scope`](Self::check_scope) →
    /// [`check_state`](Self::check_state) → [`check_id`](Self::check_id) →
    /// [`check_policy`](Self::check_policy) → [`check_dry_run`](Self::check_dry_run) →
    /// [`check_approval`](Self::check_approval) → [`commit`](Self::commit), which takes the
    /// call id and **uses up the dry-run under the same lock that checks it**, so of two
    /// identical applies sent at once only one is admitted.
    pub async fn admit(
        &self,
        registry: &Registry,
        call: &ToolCall,
        state: State,
        ctx: &ToolCtx,
    ) -> (Decision, Option<Admitted>) {
        let mut d = Decision {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            operation: None,
            effect: None,
            target: None,
            fingerprint: None,
            verdict: Verdict::Refuse,
            reason: String::new(),
            approved_by: None,
            refusal: None,
            environment: None,
            diff: None,
            context: None,
            objects: Vec::new(),
        };
        match self.decide(registry, call, state, ctx, &mut d).await {
            Ok(admitted) => {
                d.verdict = Verdict::Allow;
                let effect = admitted.effect;
                d.reason = match &d.approved_by {
                    Some(by) => format!("{effect} operation; dry-run matched; approved by {by}"),
                    None if effect >= EffectClass::Mutating => {
                        format!("{effect} operation; dry-run matched")
                    }
                    None => format!("{effect} operation"),
                };
                tracing::debug!(tool = %d.tool, operation = %admitted.operation, %effect, "guard admitted call");
                (d, Some(admitted))
            }
            Err(Refusal(kind, reason)) => {
                tracing::info!(tool = %d.tool, operation = ?d.operation, %reason, "guard refused call");
                d.reason = reason;
                d.refusal = Some(kind);
                (d, None)
            }
        }
    }

    /// The checks, as named steps; fills `d` as it learns facts about the call.
    async fn decide(
        &self,
        registry: &Registry,
        call: &ToolCall,
        state: State,
        ctx: &ToolCtx,
        d: &mut Decision,
    ) -> Result<Admitted, Refusal> {
        let reg = Self::check_tool(registry, call)?;
        let args = Self::parse_args(call)?;
        let inv = reg
            .tool
            .plan(&args)
            .map_err(|e| Refusal(RefusalKind::Invalid, e.to_string()))?;
        d.operation = Some(inv.operation.clone());
        d.target = Some(inv.target.clone());
        let registered = Self::check_operation(reg, call, &inv)?;
        // no I/O for a call the mode refuses anyway (resolve can only make it stricter)
        self.check_mode(call, &inv, registered)?;
        self.check_id(call)?;
        // normalise first, decide second: everything below is judged on the effect the tool's
        // code resolved (kinds through discovery, namespaces per object, rendered charts,
        // terraform's plan), not on the arguments as written
        let inv = reg
            .tool
            .resolve(inv, &args, ctx)
            .await
            .map_err(|e| Refusal(RefusalKind::Invalid, e.to_string()))?;
        d.target = Some(inv.target.clone());
        // a call the tool's code marks as a dry-run changes nothing: it is at most dry_run; what
        // the tool found it will really do can only make it stricter
        let registered = registered.max(inv.min_effect.unwrap_or(EffectClass::ReadOnly));
        let effect = if inv.dry_run {
            registered.min(EffectClass::DryRun)
        } else {
            registered
        };
        d.effect = Some(effect);
        if effect >= EffectClass::Mutating {
            d.context = inv.scope.context.clone();
            d.objects = inv.scope.objects.clone();
        }
        self.check_mode(call, &inv, effect)?;
        self.check_scope(call, &inv, effect)?;
        Self::check_state(call, &inv, effect, state)?;
        let fingerprint = inv.change.as_ref().map(|c| Fingerprint::of(&call.name, c));
        d.fingerprint = fingerprint.as_ref().map(Fingerprint::short);
        let env = inv.scope.context.as_deref().map(|c| self.environment(c));
        d.environment = env;
        let decided = self.check_policy(call, &inv, registered, effect, env)?;
        if effect >= EffectClass::Mutating {
            self.check_dry_run(call, &inv, fingerprint.as_ref())?;
            self.check_proposal(call, &inv, effect, fingerprint.as_ref())?;
        }
        let key = fingerprint.clone().unwrap_or_else(|| Fingerprint {
            tool: call.name.clone(),
            target: inv.target.clone(),
            content_hash: super::canonical_hash(&args),
        });
        d.approved_by = self
            .check_approval(d, &inv, effect, env, decided, &key)
            .await?;
        self.commit(call, effect, fingerprint.as_ref())?;
        Ok(Admitted {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            operation: inv.operation,
            effect,
            args,
            change: inv.change,
            scope: inv.scope,
            fingerprint,
            _seal: Seal,
        })
    }

    /// Step 1: The tool exists and is offered to this agent.
    fn check_tool<'r>(registry: &'r Registry, call: &ToolCall) -> Result<&'r Registered, Refusal> {
        registry.get(&call.name).ok_or_else(|| {
            let names: Vec<&str> = registry.names().collect();
            Refusal(
                RefusalKind::Invalid,
                if names.is_empty() {
                    format!(
                        "unknown tool `{}`; no tool of that name is offered here",
                        call.name
                    )
                } else {
                    format!(
                        "unknown tool `{}`; the tools offered are: {}",
                        call.name,
                        names.join(", ")
                    )
                },
            )
        })
    }

    /// Step 2: The arguments are one JSON object.
    fn parse_args(call: &ToolCall) -> Result<Value, Refusal> {
        match serde_json::from_str(&call.arguments) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(Refusal(RefusalKind::Invalid, "arguments must be a JSON object".into())),
            Err(e) => Err(Refusal(
                RefusalKind::Invalid,
                format!("arguments are not valid JSON ({e}); send a JSON object matching the tool's schema"),
            )),
        }
    }

    /// Step 3: The operation is offered; returns its registered effect class (the code's, made
    /// stricter by the manifest).
    fn check_operation(
        reg: &Registered,
        call: &ToolCall,
        inv: &Invocation,
    ) -> Result<EffectClass, Refusal> {
        let Some(&registered) = reg.operations.get(&inv.operation) else {
            let offered: Vec<&str> = reg.operations.keys().map(String::as_str).collect();
            return Err(Refusal(
                RefusalKind::Invalid,
                format!(
                    "operation `{}` of `{}` is not offered to this agent; offered: {}",
                    inv.operation,
                    call.name,
                    offered.join(", ")
                ),
            ));
        };
        Ok(registered)
    }

    /// The effect class is allowed by the task's mode (read-only: nothing above `read_only`).
    /// Judged on the registered class before `resolve` and again on the resolved one.
    fn check_mode(
        &self,
        call: &ToolCall,
        inv: &Invocation,
        effect: EffectClass,
    ) -> Result<(), Refusal> {
        let mode = self.cfg.mode;
        // suggest mode: a change is judged like in apply mode and refused at the end
        // (`check_proposal`), so a proposal holds only changes that would have been admitted
        if mode.allows(effect) || (mode == Mode::Suggest && effect >= EffectClass::Mutating) {
            return Ok(());
        }
        Err(Refusal(
            RefusalKind::Mode,
            format!(
                "`{}.{}` is {effect}, and this task runs in {mode} mode, which allows only {} operations; do not retry it — answer from what you can read and describe the change you would make, so a human can run it outside {mode} mode",
                call.name,
                inv.operation,
                mode.max_effect()
            ),
        ))
    }

    /// A dry-run or change acts only inside the task's scope, judged on what `resolve` found:
    /// the context the client really uses, every object's namespace (a cluster-scoped object is
    /// outside every namespace). Reads are not confined.
    fn check_scope(
        &self,
        call: &ToolCall,
        inv: &Invocation,
        effect: EffectClass,
    ) -> Result<(), Refusal> {
        let Some(scope) = self.cfg.scope.as_ref().filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        if effect < EffectClass::DryRun {
            return Ok(());
        }
        let outside = |what: String| {
            Refusal(
                RefusalKind::Scope,
                format!(
                    "`{}.{}` would act on {what}, but this task is scoped to {scope}: dry-runs and changes outside it are refused. Do not retry elsewhere; if the change is needed there, stop and say so — a human must re-scope the task (e.g. `bosun run -n NAMESPACE --context CONTEXT`)",
                    call.name, inv.operation
                ),
            )
        };
        if let (Some(want), Some(got)) = (&scope.context, &inv.scope.context) {
            if want != got {
                return Err(outside(format!("context `{got}`")));
            }
        }
        let Some(ns) = &scope.namespace else {
            return Ok(());
        };
        for o in &inv.scope.objects {
            match &o.namespace {
                None => {
                    return Err(outside(format!(
                        "the cluster-scoped {} `{}`",
                        o.kind, o.name
                    )))
                }
                Some(n) if n != ns => {
                    return Err(outside(format!(
                        "{} `{}` in namespace `{n}`",
                        o.kind, o.name
                    )))
                }
                Some(_) => {}
            }
        }
        match &inv.scope.namespace {
            Some(n) if n != ns => Err(outside(format!("namespace `{n}`"))),
            // a Kubernetes change that names neither objects nor a namespace: where it lands
            // cannot be judged, so it is outside
            None if inv.scope.objects.is_empty() && inv.scope.context.is_some() => {
                Err(outside("objects it does not name".to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Step 4: The effect class is allowed in the planner's state.
    fn check_state(
        call: &ToolCall,
        inv: &Invocation,
        effect: EffectClass,
        state: State,
    ) -> Result<(), Refusal> {
        if state.allows(effect) {
            return Ok(());
        }
        let need = State::needed_for(effect);
        Err(Refusal(
            RefusalKind::State,
            format!(
                "`{}.{}` is {effect}, which is not allowed in the {state} state; call transition to {need} first (with a justification){}",
                call.name,
                inv.operation,
                if effect >= EffectClass::Mutating { ", after a successful dry-run of the same change" } else { "" }
            ),
        ))
    }

    /// Step 5: The call id is new (checked again, atomically, in [`commit`](Self::commit)).
    fn check_id(&self, call: &ToolCall) -> Result<(), Refusal> {
        if self.lock().seen_ids.contains(&call.id) {
            return Err(Self::replayed(call));
        }
        Ok(())
    }

    fn replayed(call: &ToolCall) -> Refusal {
        Refusal(
            RefusalKind::Replay,
            format!(
                "tool call id `{}` was already used; each call needs a new id",
                call.id
            ),
        )
    }

    /// Step 6: No policy rule denies the call — judged per object the call really touches (the
    /// strictest action wins), and for the dry-run of a change as if it were the change, so a
    /// denied change cannot even be validated. Returns the action (allow or approve).
    fn check_policy(
        &self,
        call: &ToolCall,
        inv: &Invocation,
        registered: EffectClass,
        effect: EffectClass,
        env: Option<Environment>,
    ) -> Result<(Action, Option<String>), Refusal> {
        let facts = |effect: EffectClass| -> Vec<CallFacts> {
            let base = CallFacts {
                tool: call.name.clone(),
                operation: inv.operation.clone(),
                context: inv.scope.context.clone(),
                namespace: inv.scope.namespace.clone(),
                kinds: inv.scope.kinds.clone(),
                environment: env,
                effect,
            };
            let mut all: Vec<CallFacts> = inv
                .scope
                .objects
                .iter()
                .map(|o| CallFacts {
                    namespace: o.namespace.clone(),
                    kinds: vec![o.kind.clone()],
                    ..base.clone()
                })
                .collect();
            all.push(base);
            all
        };
        let (mut action, mut rule) = self.cfg.policy.decide_all(&facts(effect));
        if effect == EffectClass::DryRun && inv.change.is_some() && action != Action::Deny {
            let as_change = registered.max(EffectClass::Mutating);
            if let (Action::Deny, r) = self.cfg.policy.decide_all(&facts(as_change)) {
                (action, rule) = (Action::Deny, r);
            }
        }
        if action == Action::Deny {
            let why = rule
                .and_then(|r| r.reason.clone())
                .unwrap_or_else(|| "this call is denied by policy; do not retry it".into());
            let name = rule.map_or("policy".to_string(), |r| r.name.clone());
            return Err(Refusal(
                RefusalKind::Policy,
                format!("denied by rule `{name}`: {why}"),
            ));
        }
        Ok((action, rule.map(|r| r.name.clone())))
    }

    /// Step 7: A change has a fresh, unused, successful dry-run of the identical change and was not
    /// applied before a resume. (Looked at here; used up atomically in [`commit`](Self::commit).)
    fn check_dry_run(
        &self,
        call: &ToolCall,
        inv: &Invocation,
        fingerprint: Option<&Fingerprint>,
    ) -> Result<(), Refusal> {
        let (Some(change), Some(fp)) = (inv.change.as_ref(), fingerprint) else {
            return Err(Refusal(
                RefusalKind::NoDryRun,
                format!("`{}.{}` declares no change identity, so bosun cannot match it to a dry-run; it is refused", call.name, inv.operation),
            ));
        };
        if self.lock().applied.contains(&fp.short()) {
            return Err(Refusal(
                RefusalKind::AlreadyApplied,
                format!(
                    "this exact change ({}) was already applied in this session before it was resumed (or its apply was cut off), per the audit log; check the current state with a read before changing anything again",
                    fp.short()
                ),
            ));
        }
        let max = self.cfg.dry_run_max_age;
        let age = self.lock().dry_runs.get(fp).map(|r| r.at.elapsed());
        match age {
            None => Err(Refusal(
                RefusalKind::NoDryRun,
                format!(
                    "no successful dry-run of this exact change ({} {}, content {}) is waiting to be used: {} — then apply the identical change (each dry-run authorises one apply)",
                    call.name,
                    change.target,
                    &change.content_hash.chars().take(12).collect::<String>(),
                    change.dry_run_hint
                ),
            )),
            Some(age) if age > max => Err(Refusal(
                RefusalKind::NoDryRun,
                format!(
                    "the dry-run of this change is {} s old (limit {} s); run it again: {}",
                    age.as_secs(),
                    max.as_secs(),
                    change.dry_run_hint
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Suggest mode: a change that passed every check so far (mode, scope, state, policy, a
    /// fresh matching dry-run) is refused here — nothing is applied — with the answer that it
    /// is recorded as a proposal. Its dry-run is not used up (`bosun apply` runs a new one).
    fn check_proposal(
        &self,
        call: &ToolCall,
        inv: &Invocation,
        effect: EffectClass,
        fingerprint: Option<&Fingerprint>,
    ) -> Result<(), Refusal> {
        if self.cfg.mode != Mode::Suggest {
            return Ok(());
        }
        Err(Refusal(
            RefusalKind::Proposed,
            format!(
                "this task runs in suggest mode, so nothing is applied: `{}.{}` ({effect}, change {}) passed its dry-run and is recorded as a proposal instead. Do not retry it; propose any other change the same way, then move on to verification and completion and summarise the proposal — a human applies it with `bosun apply`",
                call.name,
                inv.operation,
                fingerprint.map(Fingerprint::short).unwrap_or_default()
            ),
        ))
    }

    /// Step 8: Destructive calls, changes in prod and calls an `approve` rule matches need a yes for
    /// exactly this change (`key`). Returns who approved, if anyone had to.
    async fn check_approval(
        &self,
        d: &mut Decision,
        inv: &Invocation,
        effect: EffectClass,
        env: Option<Environment>,
        (action, rule): (Action, Option<String>),
        key: &Fingerprint,
    ) -> Result<Option<String>, Refusal> {
        let reason = if action == Action::Approve {
            format!(
                "rule `{}` requires approval",
                rule.as_deref().unwrap_or("policy")
            )
        } else if effect == EffectClass::Destructive {
            "destructive operation".to_string()
        } else if effect == EffectClass::Mutating && env == Some(Environment::Prod) {
            "change in prod".to_string()
        } else {
            return Ok(None);
        };
        let diff = {
            let g = self.lock();
            if let Some(by) = g.approvals.get(key).cloned() {
                return Ok(Some(by));
            }
            g.dry_runs
                .get(key)
                .and_then(|d| d.evidence.as_deref())
                .map(str::to_string)
        };
        // the decision (audit log, report) keeps what the approver was shown
        d.diff = diff.clone();
        let req = ApprovalRequest {
            diff,
            tool: d.tool.clone(),
            operation: inv.operation.clone(),
            effect,
            target: inv.target.clone(),
            environment: env,
            fingerprint: key.short(),
            reason: reason.clone(),
            objects: inv.scope.objects.clone(),
        };
        match self.cfg.approver.decide(&req).await {
            ApprovalDecision::Approved { by } => {
                self.lock().approvals.insert(key.clone(), by.clone());
                Ok(Some(by))
            }
            ApprovalDecision::Denied { by, reason: no } => Err(Refusal(
                RefusalKind::Approval,
                format!(
                    "this call needs human approval ({reason}; change {}), and {by} did not approve: {no}. Stop and report the change as waiting for approval, with its dry-run result",
                    key.short()
                ),
            )),
        }
    }

    /// Step 9: Under one lock: take the call id, and for a change use up its dry-run (and its
    /// approval). Whatever happens to the apply afterwards — success, failure, interruption —
    /// the next apply needs a new dry-run. Two identical applies racing: one wins here.
    fn commit(
        &self,
        call: &ToolCall,
        effect: EffectClass,
        fingerprint: Option<&Fingerprint>,
    ) -> Result<(), Refusal> {
        let mut g = self.lock();
        if g.seen_ids.contains(&call.id) {
            return Err(Self::replayed(call));
        }
        if effect >= EffectClass::Mutating {
            let Some(fp) = fingerprint else {
                return Err(Refusal(RefusalKind::NoDryRun, "no change identity".into()));
            };
            if g.dry_runs.remove(fp).is_none() {
                return Err(Refusal(
                    RefusalKind::NoDryRun,
                    format!(
                        "the dry-run of this change ({}) was used by another apply a moment ago; each dry-run authorises one apply — dry-run it again if it is still needed",
                        fp.short()
                    ),
                ));
            }
            g.approvals.remove(fp);
        }
        g.seen_ids.insert(call.id.clone());
        Ok(())
    }

    /// After execution: a successful dry-run records its fingerprint. (An apply used up its
    /// dry-run when it was admitted.)
    pub fn record(&self, call: &Receipt, succeeded: bool) {
        self.record_with_evidence(call, succeeded, None);
    }

    /// [`Guard::record`], keeping the dry-run's result (already redacted by the caller) as the
    /// evidence an approval request for the same change shows.
    pub fn record_with_evidence(&self, call: &Receipt, succeeded: bool, evidence: Option<&str>) {
        let Some(fp) = &call.fingerprint else { return };
        if call.effect == EffectClass::DryRun && succeeded {
            self.lock().dry_runs.insert(
                fp.clone(),
                DryRun {
                    at: Instant::now(),
                    evidence: evidence.map(|e| Arc::from(cap_diff(e))),
                },
            );
        }
    }

    /// Forget a dry-run (resuming a session whose file says it was used up by an apply).
    pub fn consume_dry_run(&self, fp: &Fingerprint) {
        self.lock().dry_runs.remove(fp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_diff_is_capped_at_a_line_end_and_says_what_was_left_out() {
        let short = "- a\n+ b\n";
        assert_eq!(cap_diff(short), short);
        let long: String = (0..5000).map(|i| format!("+ line {i} é\n")).collect();
        let capped = cap_diff(&long);
        assert!(capped.len() <= MAX_APPROVAL_DIFF + 40, "{}", capped.len());
        let (kept, note) = capped.rsplit_once("… ").expect("a note");
        assert!(kept.ends_with('\n'), "cut at a line end");
        let left: usize = note
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        assert_eq!(kept.lines().count() + left, 5000);
    }
}
