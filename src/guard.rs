//! The guard: the single chokepoint between the model and every executor.
//!
//! [`Guard::admit`] is the only way to obtain an [`Admitted`] call, and
//! [`Tool::execute`](crate::tools::Tool::execute) only accepts an `Admitted` — no call reaches an
//! executor without passing here (the type has a private field; it cannot be built elsewhere).
//!
//! Checks, in order (the first that fails refuses the call, with what to do instead):
//! 1. the tool exists and is offered to this agent;
//! 2. the arguments are a JSON object the tool's own parser accepts (`Tool::plan`, no I/O);
//! 3. the operation is offered (implemented and listed in the manifest);
//! 4. the effect class — the tool code's (a dry-run flag lowers it to `dry_run`), made stricter
//!    by the manifest — is allowed in the planner's current state;
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

use crate::effect::EffectClass;
use crate::model::ToolCall;
use crate::planner::State;
use crate::policy::{Action, CallFacts, Environment, Policy};
use crate::tools::{Change, Registry};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Prevents construction of [`Admitted`] outside this module.
#[derive(Debug)]
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
    pub fingerprint: Option<Fingerprint>,
    _seal: Seal,
}

impl Admitted {
    /// For tools whose change identity covers files (a chart, a Terraform root, the GitOps
    /// clone): recompute the identity just before running and refuse if the files moved since
    /// the guard admitted the call — what runs is exactly what was checked. `redo` tells the
    /// model what to do (e.g. "dry-run it again").
    pub fn still_the_same(
        &self,
        now: Option<&Change>,
        what: &str,
        redo: &str,
    ) -> Result<(), crate::tools::ToolError> {
        if now == self.change.as_ref() {
            return Ok(());
        }
        Err(crate::tools::ToolError::Failed(format!(
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
        let h = crate::tools::sha256_hex(
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
}

impl RefusalKind {
    /// Whether this refusal stopped a change the task needed: the task cannot honestly be called
    /// done (exit code 3).
    pub fn blocks_change(self) -> bool {
        matches!(self, Self::Policy | Self::Approval)
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
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            dry_run_max_age: Duration::from_secs(15 * 60),
            approver: Arc::new(NoApprover),
            policy: Arc::new(Policy::default()),
        }
    }
}

#[derive(Debug, Clone)]
struct DryRun {
    at: Instant,
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
        self.lock().dry_runs.insert(fp, DryRun { at });
    }

    /// Mark a change (short fingerprint) as already applied — from the audit log of a resumed
    /// session. Applying it again is refused.
    pub fn mark_applied(&self, short: &str) {
        self.lock().applied.insert(short.to_string());
    }

    /// Decide on `call` in planner state `state`. The decision is always returned; the
    /// `Admitted` only when the call may run.
    pub async fn admit(
        &self,
        registry: &Registry,
        call: &ToolCall,
        state: State,
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
        };
        let refuse = |kind: RefusalKind, mut d: Decision, reason: String| {
            tracing::info!(tool = %d.tool, operation = ?d.operation, %reason, "guard refused call");
            d.reason = reason;
            d.refusal = Some(kind);
            (d, None)
        };
        let Some(reg) = registry.get(&call.name) else {
            let names: Vec<&str> = registry.names().collect();
            return refuse(
                RefusalKind::Invalid,
                d,
                format!(
                    "unknown tool `{}`; the tools offered are: {}",
                    call.name,
                    names.join(", ")
                ),
            );
        };
        let args: Value = match serde_json::from_str(&call.arguments) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return refuse(RefusalKind::Invalid, d, "arguments must be a JSON object".into()),
            Err(e) => {
                return refuse(RefusalKind::Invalid,
                    d,
                    format!("arguments are not valid JSON ({e}); send a JSON object matching the tool's schema"),
                )
            }
        };
        let inv = match reg.tool.plan(&args) {
            Ok(i) => i,
            Err(e) => return refuse(RefusalKind::Invalid, d, e.to_string()),
        };
        d.operation = Some(inv.operation.clone());
        d.target = Some(inv.target.clone());
        let Some(&registered) = reg.operations.get(&inv.operation) else {
            let offered: Vec<&str> = reg.operations.keys().map(String::as_str).collect();
            return refuse(
                RefusalKind::Invalid,
                d,
                format!(
                    "operation `{}` of `{}` is not offered to this agent; offered: {}",
                    inv.operation,
                    call.name,
                    offered.join(", ")
                ),
            );
        };
        // a call the tool's code marks as a dry-run changes nothing: it is at most dry_run
        let effect = if inv.dry_run {
            registered.min(EffectClass::DryRun)
        } else {
            registered
        };
        d.effect = Some(effect);
        let fingerprint = inv.change.as_ref().map(|c| Fingerprint::of(&call.name, c));
        d.fingerprint = fingerprint.as_ref().map(Fingerprint::short);
        if !state.allows(effect) {
            let need = State::needed_for(effect);
            return refuse(RefusalKind::State,
                d,
                format!(
                    "`{}.{}` is {effect}, which is not allowed in the {state} state; call transition to {need} first (with a justification){}",
                    call.name,
                    inv.operation,
                    if effect >= EffectClass::Mutating { ", after a successful dry-run of the same change" } else { "" }
                ),
            );
        }
        // a replayed id is refused before anything else is asked (no approval prompt for it)
        if self.lock().seen_ids.contains(&call.id) {
            return refuse(
                RefusalKind::Replay,
                d,
                format!(
                    "tool call id `{}` was already used; each call needs a new id",
                    call.id
                ),
            );
        }
        let env = inv.scope.context.as_deref().map(|c| self.environment(c));
        d.environment = env;
        let facts = CallFacts {
            tool: call.name.clone(),
            operation: inv.operation.clone(),
            context: inv.scope.context.clone(),
            namespace: inv.scope.namespace.clone(),
            kinds: inv.scope.kinds.clone(),
            environment: env,
            effect,
        };
        let (mut action, mut rule) = self.cfg.policy.decide(&facts);
        // the dry-run of a change the policy denies is refused too: validating a change that can
        // never be applied only invites the model to look for a way around the rule
        if effect == EffectClass::DryRun && inv.change.is_some() && action != Action::Deny {
            let as_change = CallFacts {
                effect: registered.max(EffectClass::Mutating),
                ..facts.clone()
            };
            if let (Action::Deny, r) = self.cfg.policy.decide(&as_change) {
                (action, rule) = (Action::Deny, r);
            }
        }
        if action == Action::Deny {
            let why = rule
                .and_then(|r| r.reason.clone())
                .unwrap_or_else(|| "this call is denied by policy; do not retry it".into());
            let name = rule.map_or("policy".to_string(), |r| r.name.clone());
            return refuse(
                RefusalKind::Policy,
                d,
                format!("denied by rule `{name}`: {why}"),
            );
        }
        if effect >= EffectClass::Mutating {
            let (Some(change), Some(fp)) = (inv.change.as_ref(), fingerprint.as_ref()) else {
                return refuse(RefusalKind::NoDryRun,
                    d,
                    format!("`{}.{}` declares no change identity, so bosun cannot match it to a dry-run; it is refused", call.name, inv.operation),
                );
            };
            if self.lock().applied.contains(&fp.short()) {
                return refuse(RefusalKind::AlreadyApplied,
                    d,
                    format!(
                        "this exact change ({}) was already applied in this session before it was resumed (or its apply was cut off), per the audit log; check the current state with a read before changing anything again",
                        fp.short()
                    ),
                );
            }
            let max = self.cfg.dry_run_max_age;
            let status = {
                let g = self.lock();
                g.dry_runs.get(fp).map(|r| r.at.elapsed())
            };
            match status {
                None => {
                    return refuse(RefusalKind::NoDryRun,
                        d,
                        format!(
                            "no successful dry-run of this exact change ({} {}, content {}): {} — then apply the identical change",
                            call.name,
                            change.target,
                            &change.content_hash.chars().take(12).collect::<String>(),
                            change.dry_run_hint
                        ),
                    )
                }
                Some(age) if age > max => {
                    return refuse(RefusalKind::NoDryRun,
                        d,
                        format!(
                            "the dry-run of this change is {} s old (limit {} s); run it again: {}",
                            age.as_secs(),
                            max.as_secs(),
                            change.dry_run_hint
                        ),
                    )
                }
                Some(_) => {}
            }
        }
        let why_approval = if action == Action::Approve {
            Some(format!(
                "rule `{}` requires approval",
                rule.map_or("policy", |r| r.name.as_str())
            ))
        } else if effect == EffectClass::Destructive {
            Some("destructive operation".to_string())
        } else if effect == EffectClass::Mutating && env == Some(Environment::Prod) {
            Some("change in prod".to_string())
        } else {
            None
        };
        if let Some(reason) = why_approval {
            // an approval is bound to the exact change (fingerprint), or to the exact call
            let key = fingerprint.clone().unwrap_or_else(|| Fingerprint {
                tool: call.name.clone(),
                target: inv.target.clone(),
                content_hash: crate::tools::canonical_hash(&args),
            });
            let already = self.lock().approvals.get(&key).cloned();
            match already {
                Some(by) => d.approved_by = Some(by),
                None => {
                    let req = ApprovalRequest {
                        tool: call.name.clone(),
                        operation: inv.operation.clone(),
                        effect,
                        target: inv.target.clone(),
                        environment: env,
                        fingerprint: key.short(),
                        reason: reason.clone(),
                    };
                    match self.cfg.approver.decide(&req).await {
                        ApprovalDecision::Approved { by } => {
                            self.lock().approvals.insert(key, by.clone());
                            d.approved_by = Some(by);
                        }
                        ApprovalDecision::Denied { by, reason: no } => {
                            return refuse(RefusalKind::Approval,
                                d,
                                format!(
                                    "this call needs human approval ({reason}; change {}), and {by} did not approve: {no}. Stop and report the change as waiting for approval, with its dry-run result",
                                    key.short()
                                ),
                            )
                        }
                    }
                }
            }
        }
        if !self.lock().seen_ids.insert(call.id.clone()) {
            return refuse(
                RefusalKind::Replay,
                d,
                format!(
                    "tool call id `{}` was already used; each call needs a new id",
                    call.id
                ),
            );
        }
        d.verdict = Verdict::Allow;
        d.reason = match &d.approved_by {
            Some(by) => format!("{effect} operation; dry-run matched; approved by {by}"),
            None if effect >= EffectClass::Mutating => {
                format!("{effect} operation; dry-run matched")
            }
            None => format!("{effect} operation"),
        };
        tracing::debug!(tool = %d.tool, operation = %inv.operation, %effect, "guard admitted call");
        let admitted = Admitted {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            operation: inv.operation,
            effect,
            args,
            change: inv.change,
            fingerprint,
            _seal: Seal,
        };
        (d, Some(admitted))
    }

    /// After execution: a successful dry-run records its fingerprint; an apply (successful or
    /// not) uses up the dry-run it matched, so the next apply needs a new dry-run.
    pub fn record(&self, call: &Admitted, succeeded: bool) {
        let Some(fp) = &call.fingerprint else { return };
        let mut g = self.lock();
        match call.effect {
            EffectClass::DryRun if succeeded => {
                g.dry_runs.insert(fp.clone(), DryRun { at: Instant::now() });
            }
            EffectClass::Mutating | EffectClass::Destructive => {
                g.dry_runs.remove(fp);
                g.approvals.remove(fp);
            }
            _ => {}
        }
    }
}
