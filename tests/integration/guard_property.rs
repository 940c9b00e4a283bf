//! Property test of the guard's central invariant: **the executor never sees a mutation without
//! a matching, successful, unused dry-run** — under random and adversarial call sequences: apply
//! without dry-run; dry-run then edit then apply; dry-run in one namespace, apply in another;
//! apply in the wrong planner state; failed dry-runs; replayed tool-call ids; destructive and prod
//! changes with approvals granted or denied; kube-system writes.
//!
//! The tool under the guard is a recording tool (the property is about the guard, not about a
//! cluster); `cargo test --test integration guard_property:: -- --nocapture` prints the case count.

use bosun::agent::{Agent, AgentDef, Prompts, ToolManifest};
use bosun::effect::EffectClass;
use bosun::guard::{Admitted, ApprovalDecision, ApprovalRequest, Approver, Guard, GuardConfig};
use bosun::model::ToolCall;
use bosun::planner::State;
use bosun::policy::Policy;
use bosun::tools::{sha256_hex, Change, Invocation, Registry, Scope, Tool, ToolCtx, ToolError};
use futures::future::BoxFuture;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const CASES: u32 = 10_000;

/// What the executor saw.
#[derive(Debug, Clone)]
struct Seen {
    id: String,
    op: String,
    effect: EffectClass,
    target: String,
    content: String,
    namespace: String,
}

struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn parse(args: &Value) -> Result<(String, String, String, String, bool), ToolError> {
    let s = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ToolError::InvalidArguments(format!("{k} missing")))
    };
    Ok((
        s("operation")?,
        s("context")?,
        s("namespace")?,
        s("content")?,
        args.get("fail").and_then(Value::as_bool).unwrap_or(false),
    ))
}

impl Tool for Recorder {
    fn name(&self) -> &str {
        "rec"
    }
    fn description(&self) -> &str {
        "records"
    }
    fn operations(&self) -> &[(&'static str, EffectClass)] {
        &[
            ("read", EffectClass::ReadOnly),
            ("apply_dry_run", EffectClass::DryRun),
            ("apply", EffectClass::Mutating),
            ("delete", EffectClass::Destructive),
        ]
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"operation": {"type": "string", "enum": ["read", "apply_dry_run", "apply", "delete"]}}})
    }
    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let (op, ctx, ns, content, _) = parse(args)?;
        let scope = Scope {
            context: Some(ctx.clone()),
            namespace: Some(ns.clone()),
            kinds: vec!["ConfigMap".into()],
            objects: vec![],
        };
        let change = Change {
            target: format!("context={ctx} namespace={ns}"),
            content_hash: sha256_hex(content.as_bytes()),
            dry_run_hint: "call rec apply_dry_run with the same arguments".into(),
        };
        // delete dry-runs via a flag, as kubectl's does
        let dry_flag = args
            .get("dry_run")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(match op.as_str() {
            "read" => Invocation::read("read", ns).with_scope(scope),
            "apply_dry_run" | "apply" | "delete" => Invocation {
                min_effect: None,
                operation: op.clone(),
                target: change.target.clone(),
                change: Some(change),
                dry_run: op == "apply_dry_run" || dry_flag,
                scope,
            },
            other => {
                return Err(ToolError::InvalidArguments(format!(
                    "unknown operation {other}"
                )))
            }
        })
    }
    fn execute<'a>(
        &'a self,
        call: Admitted,
        _ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let (op, ctx, ns, content, fail) = parse(&call.args)?;
            if let Ok(mut s) = self.seen.lock() {
                s.push(Seen {
                    id: call.call_id.clone(),
                    op,
                    effect: call.effect,
                    target: format!("context={ctx} namespace={ns}"),
                    content,
                    namespace: ns,
                });
            }
            if fail {
                Err(ToolError::Failed("the server rejected it".into()))
            } else {
                Ok("ok".into())
            }
        })
    }
}

/// Approves when the switch is on; counts requests.
struct Switch {
    on: AtomicBool,
    asked: AtomicUsize,
}

impl Approver for Switch {
    fn decide<'a>(&'a self, _req: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        Box::pin(async move {
            self.asked.fetch_add(1, Ordering::SeqCst);
            if self.on.load(Ordering::SeqCst) {
                ApprovalDecision::Approved { by: "prop".into() }
            } else {
                ApprovalDecision::Denied {
                    by: "prop".into(),
                    reason: "no".into(),
                }
            }
        })
    }
}

fn registry(seen: Arc<Mutex<Vec<Seen>>>) -> Registry {
    let dir = std::env::temp_dir().join(format!("bosun-prop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    let path = dir.join("rec.yaml");
    let text = "name: rec\noperations:\n  read: {effect: read_only}\n  apply_dry_run: {effect: dry_run}\n  apply: {effect: mutating}\n  delete: {effect: destructive}\n";
    std::fs::write(&path, text).expect("manifest");
    let mut m: ToolManifest = serde_saphyr::from_str(text).expect("manifest parses");
    m.path = path;
    let agent = Agent {
        dir: dir.clone(),
        def: serde_saphyr::from_str::<AgentDef>("id: p\nname: p\ndescription: p\ntools: [rec]\n")
            .expect("def"),
        role: String::new(),
        skills: vec![],
        tools: vec![m],
        prompts: Prompts::default(),
        policy: Policy::default(),
        subagents: vec![],
    };
    Registry::build(&agent, vec![Arc::new(Recorder { seen })])
        .expect("registry")
        .0
}

#[derive(Debug, Clone)]
enum Step {
    Call {
        op: &'static str,
        ctx: &'static str,
        ns: &'static str,
        content: &'static str,
        fail: bool,
        dry_flag: bool,
        reuse_id: bool,
    },
    State(State),
    Approvals(bool),
}

/// The natural flow, with adversarial edits: dry-run in validation, then maybe edit the content,
/// switch namespace or context, or skip the state change, then apply or delete.
fn flow() -> impl Strategy<Value = Vec<Step>> {
    (
        prop::sample::select(vec!["dev", "prod"]),
        prop::sample::select(vec!["a", "b", "kube-system"]),
        prop::sample::select(vec!["v1", "v2"]),
        prop::sample::select(vec!["none", "content", "namespace", "context", "no-state"]),
        prop::sample::select(vec!["apply", "delete"]),
        prop::bool::weighted(0.15),
        any::<bool>(),
    )
        .prop_map(|(ctx, ns, content, edit, op, fail, approve)| {
            let mut v = vec![Step::State(State::Validation)];
            v.push(Step::Call {
                op: if op == "apply" {
                    "apply_dry_run"
                } else {
                    "delete"
                },
                ctx,
                ns,
                content,
                fail,
                dry_flag: op == "delete",
                reuse_id: false,
            });
            if edit != "no-state" {
                v.push(Step::State(State::Deployment));
            }
            v.push(Step::Approvals(approve));
            let (ctx2, ns2, content2) = match edit {
                "content" => (ctx, ns, if content == "v1" { "v2" } else { "v1" }),
                "namespace" => (ctx, if ns == "a" { "b" } else { "a" }, content),
                "context" => (if ctx == "dev" { "prod" } else { "dev" }, ns, content),
                _ => (ctx, ns, content),
            };
            v.push(Step::Call {
                op,
                ctx: ctx2,
                ns: ns2,
                content: content2,
                fail: false,
                dry_flag: false,
                reuse_id: false,
            });
            v
        })
}

fn step() -> impl Strategy<Value = Vec<Step>> {
    prop_oneof![
        4 => flow(),
        5 => single().prop_map(|s| vec![s]),
    ]
}

fn single() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (
            prop::sample::select(vec!["read", "apply_dry_run", "apply", "delete"]),
            prop::sample::select(vec!["dev", "prod"]),
            prop::sample::select(vec!["a", "b", "kube-system"]),
            prop::sample::select(vec!["v1", "v2"]),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.3),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(op, ctx, ns, content, fail, dry_flag, reuse_id)| Step::Call { op, ctx, ns, content, fail, dry_flag, reuse_id }),
        2 => prop::sample::select(State::ALL.to_vec()).prop_map(Step::State),
        1 => any::<bool>().prop_map(Step::Approvals),
    ]
}

static TOTAL_CASES: AtomicUsize = AtomicUsize::new(0);
static MUTATIONS_RUN: AtomicUsize = AtomicUsize::new(0);
static MUTATIONS_REFUSED: AtomicUsize = AtomicUsize::new(0);

fn run_sequence(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let reg = registry(seen.clone());
    let approver = Arc::new(Switch {
        on: AtomicBool::new(false),
        asked: AtomicUsize::new(0),
    });
    let guard = Guard::new(GuardConfig {
        approver: approver.clone(),
        ..Default::default()
    });
    let ctx = ToolCtx::new(std::env::temp_dir());
    let mut state = State::Intake;
    // the reference model: successful, unused dry-runs by (target, content)
    let mut validated: HashSet<(String, String)> = HashSet::new();
    let mut approved_for: HashMap<(String, String), bool> = HashMap::new();
    let mut n = 0usize;
    let mut last_id = String::from("call-0");
    for s in steps {
        match s {
            Step::State(st) => state = st,
            Step::Approvals(on) => approver.on.store(on, Ordering::SeqCst),
            Step::Call {
                op,
                ctx: kctx,
                ns,
                content,
                fail,
                dry_flag,
                reuse_id,
            } => {
                n += 1;
                let id = if reuse_id {
                    last_id.clone()
                } else {
                    format!("call-{n}")
                };
                last_id = id.clone();
                let args = json!({"operation": op, "context": kctx, "namespace": ns, "content": content, "fail": fail, "dry_run": dry_flag});
                let call = ToolCall {
                    id: id.clone(),
                    name: "rec".into(),
                    arguments: args.to_string(),
                };
                let before = seen.lock().map(|s| s.len()).unwrap_or(0);
                let asked_before = approver.asked.load(Ordering::SeqCst);
                // the production path: the one dispatch (admit, then execute + record)
                let env = bosun::dispatch::CallEnv {
                    registry: &reg,
                    ctx: &ctx,
                    guard: &guard,
                    audit: None,
                    file: None,
                    events: None,
                    interrupt: None,
                };
                let adm = rt.block_on(env.admit(&call, state));
                let decision = adm.decision;
                let Some(a) = adm.admitted else {
                    if matches!(op, "apply" | "delete") && !dry_flag {
                        MUTATIONS_REFUSED.fetch_add(1, Ordering::Relaxed);
                    }
                    prop_assert!(!decision.reason.is_empty(), "a refusal must say why");
                    continue;
                };
                let result = rt.block_on(env.execute(a));
                let after = seen.lock().map(|s| s.clone()).unwrap_or_default();
                prop_assert_eq!(after.len(), before + 1);
                let e = &after[after.len() - 1];
                // ids are never executed twice
                prop_assert_eq!(
                    after.iter().filter(|x| x.id == e.id).count(),
                    1,
                    "replayed id executed: {}",
                    e.id
                );
                // the effect class never exceeds what the state allows
                prop_assert!(state.allows(e.effect), "{:?} ran in {state}", e.effect);
                let key = (e.target.clone(), e.content.clone());
                match e.effect {
                    EffectClass::Mutating | EffectClass::Destructive => {
                        MUTATIONS_RUN.fetch_add(1, Ordering::Relaxed);
                        // THE invariant: a matching successful unused dry-run existed
                        prop_assert!(
                            validated.contains(&key),
                            "mutation {} {:?} without a matching dry-run",
                            e.op,
                            key
                        );
                        prop_assert_eq!(state, State::Deployment);
                        prop_assert_ne!(
                            e.namespace.as_str(),
                            "kube-system",
                            "kube-system write executed"
                        );
                        if e.effect == EffectClass::Destructive || kctx == "prod" {
                            let asked_now = approver.asked.load(Ordering::SeqCst) > asked_before;
                            let had = approved_for.get(&key).copied().unwrap_or(false);
                            prop_assert!(
                                asked_now || had,
                                "destructive/prod change ran without approval"
                            );
                        }
                        validated.remove(&key);
                        approved_for.remove(&key);
                    }
                    EffectClass::DryRun => {
                        if result.ok {
                            validated.insert(key.clone());
                        }
                    }
                    EffectClass::ReadOnly | EffectClass::WorkspaceWrite => {}
                }
                if approver.asked.load(Ordering::SeqCst) > asked_before
                    && approver.on.load(Ordering::SeqCst)
                {
                    approved_for.insert(key, true);
                }
            }
        }
    }
    TOTAL_CASES.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn executor_never_sees_a_mutation_without_a_matching_dry_run(steps in prop::collection::vec(step(), 1..25)) {
        run_sequence(steps.into_iter().flatten().collect())?;
    }
}

#[test]
fn targeted_adversarial_sequences() {
    use Step::*;
    let call = |op, ns, content| Call {
        op,
        ctx: "dev",
        ns,
        content,
        fail: false,
        dry_flag: false,
        reuse_id: false,
    };
    // each sequence must run without violating the invariant; the assertions inside check it
    for seq in [
        vec![
            State(bosun::planner::State::Deployment),
            call("apply", "a", "v1"),
        ],
        vec![
            State(bosun::planner::State::Validation),
            call("apply_dry_run", "a", "v1"),
            State(bosun::planner::State::Deployment),
            call("apply", "a", "v2"),
        ],
        vec![
            State(bosun::planner::State::Validation),
            call("apply_dry_run", "a", "v1"),
            State(bosun::planner::State::Deployment),
            call("apply", "b", "v1"),
        ],
        vec![
            State(bosun::planner::State::Validation),
            call("apply_dry_run", "a", "v1"),
            call("apply", "a", "v1"),
        ],
        vec![
            State(bosun::planner::State::Validation),
            Call {
                op: "apply_dry_run",
                ctx: "dev",
                ns: "a",
                content: "v1",
                fail: true,
                dry_flag: false,
                reuse_id: false,
            },
            State(bosun::planner::State::Deployment),
            call("apply", "a", "v1"),
        ],
        vec![
            State(bosun::planner::State::Validation),
            call("apply_dry_run", "a", "v1"),
            State(bosun::planner::State::Deployment),
            call("apply", "a", "v1"),
            call("apply", "a", "v1"),
        ],
        vec![
            State(bosun::planner::State::Validation),
            call("apply_dry_run", "kube-system", "v1"),
            State(bosun::planner::State::Deployment),
            call("apply", "kube-system", "v1"),
        ],
    ] {
        run_sequence(seq).expect("invariant holds");
    }
}

#[test]
fn zz_report_case_count() {
    // runs after the property in name order when tests run single-threaded; prints what ran
    eprintln!(
        "guard property: {CASES} cases configured; completed so far {}; mutations executed {}, refused {}",
        TOTAL_CASES.load(Ordering::Relaxed),
        MUTATIONS_RUN.load(Ordering::Relaxed),
        MUTATIONS_REFUSED.load(Ordering::Relaxed)
    );
}
