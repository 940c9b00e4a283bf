//! The embedding API: sessions as operations in / events out — concurrency, approvals asked of
//! the frontend, interrupts — and the shipped example.

use bosun::config::ModelConfig;
use bosun::effect::EffectClass;
use bosun::guard::Admitted;
use bosun::model::OpenAiClient;
use bosun::scripted::{Script, ScriptedServer};
use bosun::session::{Event, Op, Runtime, RuntimeOptions, SessionHandle};
use bosun::tools::{sha256_hex, Change, Invocation, Scope, Tool, ToolCtx, ToolError};
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An application tool: `apply` (mutating, with `dry_run: true` as its dry-run) and `delete`
/// (destructive). It records what it executed.
struct AppTool {
    ran: Arc<Mutex<Vec<String>>>,
}

impl Tool for AppTool {
    fn name(&self) -> &str {
        "app"
    }
    fn description(&self) -> &str {
        "an embedding application's tool"
    }
    fn operations(&self) -> &[(&'static str, EffectClass)] {
        &[
            ("apply", EffectClass::Mutating),
            ("delete", EffectClass::Destructive),
            ("check", EffectClass::ReadOnly),
            ("undo", EffectClass::Mutating),
        ]
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "operation": {"type": "string", "enum": ["apply", "delete", "check", "undo"]},
            "item": {"type": "string"}, "dry_run": {"type": ["boolean", "null"]}}})
    }
    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let op = args["operation"]
            .as_str()
            .ok_or_else(|| ToolError::InvalidArguments("operation".into()))?;
        let item = args["item"]
            .as_str()
            .ok_or_else(|| ToolError::InvalidArguments("item".into()))?;
        if op == "check" {
            return Ok(Invocation::read("check", format!("item {item}")));
        }
        Ok(Invocation {
            min_effect: None,
            operation: op.into(),
            target: format!("item {item}"),
            change: Some(Change {
                target: format!("item={item}"),
                content_hash: sha256_hex(op.as_bytes()),
                dry_run_hint: "call app with the same arguments and dry_run: true".into(),
            }),
            dry_run: args["dry_run"].as_bool().unwrap_or(false),
            scope: Scope {
                context: Some("bosun-sandbox".into()),
                ..Default::default()
            },
        })
    }
    fn follow_ups(&self, args: &Value) -> bosun::tools::FollowUps {
        let item = args["item"].as_str().unwrap_or_default();
        if args["operation"] != "apply" {
            return Default::default();
        }
        bosun::tools::FollowUps {
            verify: vec![bosun::tools::FollowUp {
                tool: "app".into(),
                arguments: json!({"operation": "check", "item": item}),
            }],
            rollback: Some(bosun::tools::FollowUp {
                tool: "app".into(),
                arguments: json!({"operation": "undo", "item": item}),
            }),
        }
    }
    fn execute<'a>(
        &'a self,
        call: Admitted,
        _: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let item = call.args["item"].as_str().unwrap_or("");
            if let Ok(mut r) = self.ran.lock() {
                r.push(format!("{}:{}:{}", call.operation, call.effect, item));
            }
            if call.operation == "check" && item == "broken" {
                return Err(ToolError::Failed(format!(
                    "{item} is not healthy: 0/2 replicas ready"
                )));
            }
            Ok("done".into())
        })
    }
}

/// A copy of the shipped agent that also lists the `app` tool.
fn agent_dir() -> tempfile::TempDir {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().expect("tempdir");
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir").flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
            }
        }
    };
    copy(&root.join("tools"), &d.path().join("tools"));
    copy(&root.join("prompts"), &d.path().join("prompts"));
    for s in [
        "kubernetes",
        "gitops",
        "iac",
        "scripting",
        "check-block-status",
    ] {
        copy(
            &root.join("skills").join(s),
            &d.path().join("skills").join(s),
        );
    }
    std::fs::copy(root.join("policy.yaml"), d.path().join("policy.yaml")).expect("policy");
    let agent = std::fs::read_to_string(root.join("agent.md")).expect("agent.md");
    let agent = agent.replacen("tools: [", "tools: [\"app\", ", 1);
    assert!(
        agent.contains("\"app\""),
        "agent.md tools line changed; update this test"
    );
    std::fs::write(d.path().join("agent.md"), agent).expect("write agent");
    std::fs::write(
        d.path().join("tools/app.yaml"),
        "name: app\ndescription: the app\noperations:\n  apply: {effect: mutating}\n  delete: {effect: destructive}\n  check: {effect: read_only}\n  undo: {effect: mutating}\n",
    )
    .expect("manifest");
    d
}

async fn runtime(
    script: &str,
    ran: Arc<Mutex<Vec<String>>>,
) -> (ScriptedServer, Arc<Runtime>, tempfile::TempDir) {
    bosun::init_crypto();
    let server = ScriptedServer::start(Script::from_yaml(script).expect("script"))
        .await
        .expect("server");
    let model = OpenAiClient::new(&ModelConfig {
        base_url: Some(server.base_url()),
        ..Default::default()
    })
    .expect("client");
    let dir = agent_dir();
    let rt = Runtime::from_dir(
        dir.path(),
        Arc::new(model),
        RuntimeOptions {
            extra_tools: vec![Arc::new(AppTool { ran })],
            ..Default::default()
        },
    )
    .expect("runtime");
    (server, rt, dir)
}

/// Read events until the task ends, answering approval requests with `approve`.
async fn drive(s: &mut SessionHandle, approve: bool) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(20), s.next_event())
        .await
        .expect("event in time")
    {
        if let Event::ApprovalRequested { id, .. } = &e {
            s.submit(if approve {
                Op::Approve { id: *id }
            } else {
                Op::Deny {
                    id: *id,
                    reason: "not today".into(),
                }
            });
        }
        let end = matches!(
            e,
            Event::TaskComplete { .. } | Event::TaskFailed { .. } | Event::TaskInterrupted
        );
        out.push(e);
        if end {
            break;
        }
    }
    out
}

const DELETE_FLOW: &str = r#"
turns:
  - reply:
      tool_calls:
        - {name: transition, arguments: {to: validation, justification: "dry-run first"}}
        - {name: app, arguments: {operation: delete, item: cache, dry_run: true}}
        - {name: transition, arguments: {to: deployment, justification: "dry-run passed"}}
        - {name: app, arguments: {operation: delete, item: cache, dry_run: null}}
  - reply: {content: "finished"}
"#;

#[tokio::test]
async fn a_destructive_call_waits_for_the_frontend_and_runs_when_approved() {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (server, rt, _d) = runtime(DELETE_FLOW, ran.clone()).await;
    let mut s = rt.spawn_session(None).expect("session");
    s.submit(Op::UserTurn {
        text: "clear the cache".into(),
    });
    let events = drive(&mut s, true).await;
    let req = events.iter().find_map(|e| match e {
        Event::ApprovalRequested { request, .. } => Some(request.clone()),
        _ => None,
    });
    let req = req.expect("an approval was requested");
    assert_eq!(req.operation, "delete");
    assert_eq!(req.effect, EffectClass::Destructive);
    assert_eq!(
        *ran.lock().expect("lock"),
        vec![
            "delete:dry_run:cache".to_string(),
            "delete:destructive:cache".to_string()
        ]
    );
    assert!(matches!(events.last(), Some(Event::TaskComplete { .. })));
    assert_eq!(server.failures(), Vec::<String>::new());
}

#[tokio::test]
async fn a_denied_approval_refuses_the_call() {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (server, rt, _d) = runtime(DELETE_FLOW, ran.clone()).await;
    let mut s = rt.spawn_session(None).expect("session");
    s.submit(Op::UserTurn {
        text: "clear the cache".into(),
    });
    let events = drive(&mut s, false).await;
    assert_eq!(
        *ran.lock().expect("lock"),
        vec!["delete:dry_run:cache".to_string()],
        "only the dry-run ran"
    );
    let refusal = events.iter().find_map(|e| match e {
        Event::ToolCallFinished {
            ok: false, output, ..
        } if output.contains("needs human approval") => Some(output.clone()),
        _ => None,
    });
    let refusal = refusal.expect("the model was told");
    assert!(
        refusal.contains("user did not approve: not today"),
        "{refusal}"
    );
    assert_eq!(server.failures(), Vec::<String>::new());
}

#[tokio::test]
async fn an_interrupt_stops_the_task_and_the_session_takes_the_next_turn() {
    let script = r#"
turns:
  - delay_ms: 3000
    reply: {content: "too late"}
  - expect:
      last_user_contains: ["second"]
    reply: {content: "second answer"}
"#;
    let (server, rt, _d) = runtime(script, Arc::new(Mutex::new(Vec::new()))).await;
    let mut s = rt.spawn_session(None).expect("session");
    s.submit(Op::UserTurn {
        text: "first".into(),
    });
    // wait until the model is being asked, then interrupt
    loop {
        match s.next_event().await {
            Some(Event::TaskStarted { .. }) => break,
            Some(_) => {}
            None => panic!("session ended"),
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    s.submit(Op::Interrupt);
    let events = drive(&mut s, false).await;
    assert!(
        matches!(events.last(), Some(Event::TaskInterrupted)),
        "{events:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "the interrupt did not cut the wait: {:?}",
        t.elapsed()
    );
    s.submit(Op::UserTurn {
        text: "second".into(),
    });
    let events = drive(&mut s, false).await;
    match events.last() {
        Some(Event::TaskComplete { answer, .. }) => assert_eq!(answer, "second answer"),
        other => panic!("expected completion, got {other:?}"),
    }
    assert_eq!(server.failures(), Vec::<String>::new());
}

/// Run example `name` (built by `cargo test` beside the test binary).
fn run_example(name: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("exe");
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|debug| debug.join("examples").join(name))
        .expect("examples dir");
    assert!(
        example.is_file(),
        "{} missing: cargo test builds examples",
        example.display()
    );
    std::process::Command::new(&example)
        .output()
        .expect("run example")
}

#[test]
fn the_custom_tool_example_is_guarded_like_a_builtin() {
    let out = run_example("custom_tool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    // refused in intake, dry-run admitted, the apply admitted on that dry-run, then success
    assert!(
        lines[0].starts_with("guard: notes append → Refuse")
            && lines[0].contains("not allowed in the intake state"),
        "{text}"
    );
    assert!(
        text.contains("guard: notes append → Allow: dry_run operation"),
        "{text}"
    );
    assert!(
        text.contains("Allow: mutating operation; dry-run matched"),
        "{text}"
    );
    assert!(text.contains("notes ok: web v2 rolled out"), "{text}");
    assert!(
        text.trim_end().ends_with("task: success — Success: noted."),
        "{text}"
    );
}

#[test]
fn an_application_tool_needs_no_manifest_and_a_manifest_only_tightens_it() {
    let dir = agent_dir();
    std::fs::remove_file(dir.path().join("tools/app.yaml")).expect("rm manifest");
    // the plain loader does not know the application's tool: a clear error
    let Err(err) = bosun::agent::Agent::load(dir.path()) else {
        panic!("an unknown tool without a manifest must not load");
    };
    assert!(err.to_string().contains("names tool `app`"), "{err}");
    let model: Arc<dyn bosun::model::ModelClient> = Arc::new(
        OpenAiClient::new(&ModelConfig {
            base_url: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        })
        .expect("client"),
    );
    let opts = || RuntimeOptions {
        extra_tools: vec![Arc::new(AppTool {
            ran: Default::default(),
        })],
        ..Default::default()
    };
    let rt = Runtime::from_dir(dir.path(), model.clone(), opts()).expect("runtime");
    let app = rt.registry.get("app").expect("offered without a manifest");
    assert_eq!(
        app.operations.get("delete"),
        Some(&EffectClass::Destructive)
    );
    assert_eq!(app.operations.get("check"), Some(&EffectClass::ReadOnly));
    assert!(rt.specs.iter().any(|s| s.name == "app"));
    // a manifest may make it stricter, never looser
    std::fs::write(
        dir.path().join("tools/app.yaml"),
        "name: app\noperations:\n  apply: {effect: destructive}\n  check: {effect: read_only}\n",
    )
    .expect("manifest");
    let rt = Runtime::from_dir(dir.path(), model.clone(), opts()).expect("runtime");
    let app = rt.registry.get("app").expect("offered");
    assert_eq!(app.operations.get("apply"), Some(&EffectClass::Destructive));
    assert!(
        !app.operations.contains_key("delete"),
        "dropped by the manifest"
    );
    std::fs::write(
        dir.path().join("tools/app.yaml"),
        "name: app\noperations:\n  delete: {effect: read_only}\n",
    )
    .expect("manifest");
    assert!(Runtime::from_dir(dir.path(), model, opts()).is_err());
}

#[test]
fn the_embedding_example_runs_two_sessions_concurrently() {
    let out = run_example("embed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let sessions: Vec<&str> = text.lines().filter(|l| l.starts_with("session ")).collect();
    assert_eq!(sessions.len(), 2, "{text}");
    assert_ne!(
        sessions[0].split(':').next(),
        sessions[1].split(':').next(),
        "distinct session ids"
    );
    assert!(text.contains("model requests served: 4"), "{text}");
}

#[tokio::test]
async fn a_resumed_session_does_not_apply_again_what_the_audit_log_says_was_applied() {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let state = tempfile::tempdir().expect("tempdir");
    let opts = |ran: Arc<Mutex<Vec<String>>>| RuntimeOptions {
        extra_tools: vec![Arc::new(AppTool { ran })],
        sessions_dir: Some(state.path().join("sessions")),
        audit_dir: Some(state.path().join("audit")),
        ..Default::default()
    };
    // first process: dry-run, apply — then the model endpoint dies mid-task
    let first = r#"
turns:
  - reply:
      tool_calls:
        - {name: transition, arguments: {to: validation, justification: "dry-run first"}}
        - {name: app, arguments: {operation: apply, item: web, dry_run: true}}
        - {name: transition, arguments: {to: deployment, justification: "dry-run passed"}}
        - {name: app, arguments: {operation: apply, item: web, dry_run: null}}
  - raw: {"error": "the model server went away"}
    status: 400
"#;
    bosun::init_crypto();
    let dir = agent_dir();
    let server = ScriptedServer::start(Script::from_yaml(first).expect("script"))
        .await
        .expect("server");
    let model = Arc::new(
        OpenAiClient::new(&ModelConfig {
            base_url: Some(server.base_url()),
            ..Default::default()
        })
        .expect("client"),
    );
    let rt = Runtime::from_dir(dir.path(), model, opts(ran.clone())).expect("runtime");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s1 = bosun::session::Session::new(rt, tx).expect("session");
    let id = s1.id().to_string();
    let err = s1
        .run_task("deploy web")
        .await
        .expect_err("the model went away");
    assert!(err.to_string().contains("went away"), "{err}");
    drop(s1);
    assert_eq!(
        *ran.lock().expect("lock"),
        vec![
            "apply:dry_run:web".to_string(),
            "apply:mutating:web".to_string()
        ]
    );

    // second process: resume; the model asks for the same apply again
    let second = r#"
turns:
  - expect:
      last_user_contains: ["resumed"]
    reply:
      tool_calls:
        - {name: app, arguments: {operation: apply, item: web, dry_run: null}}
  - expect:
      last_tool_result_contains: ["already applied in this session"]
    reply: {content: "web was already applied before the interruption"}
"#;
    let server2 = ScriptedServer::start(Script::from_yaml(second).expect("script"))
        .await
        .expect("server");
    let model2 = Arc::new(
        OpenAiClient::new(&ModelConfig {
            base_url: Some(server2.base_url()),
            ..Default::default()
        })
        .expect("client"),
    );
    let rt2 = Runtime::from_dir(dir.path(), model2, opts(ran.clone())).expect("runtime");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s2 = bosun::session::Session::resume(rt2, tx, &id).expect("resume");
    assert_eq!(
        s2.state(),
        bosun::planner::State::Deployment,
        "the planner state came back"
    );
    let out = s2
        .run_task("The session was resumed after an interruption.")
        .await
        .expect("completes");
    assert_eq!(
        out.answer,
        "web was already applied before the interruption"
    );
    assert_eq!(server2.failures(), Vec::<String>::new());
    assert_eq!(
        ran.lock().expect("lock").len(),
        2,
        "no second apply: {:?}",
        ran.lock().expect("lock")
    );
    // the history came back too: the first task's messages were sent
    let first_req = &server2.requests()[0];
    assert!(first_req.to_string().contains("deploy web"));
    let listed = bosun::store::list(&state.path().join("sessions")).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].task, "deploy web");
}

#[tokio::test]
async fn a_subagent_runs_under_the_same_guard_and_reports_back() {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let dir = agent_dir();
    let agent = std::fs::read_to_string(dir.path().join("agent.md")).expect("agent.md");
    std::fs::write(
        dir.path().join("agent.md"),
        agent.replacen("subagents: []", "subagents: [validator]", 1),
    )
    .expect("write");
    std::fs::create_dir_all(dir.path().join("agents")).expect("mkdir");
    std::fs::write(
        dir.path().join("agents/validator.md"),
        "---\nid: validator\nname: Validator\ndescription: Dry-runs changes and reports\nskills: []\ntools: [app]\n---\nYou validate changes with dry-runs.\n",
    )
    .expect("subagent");
    let script = r#"
turns:
  - expect:
      tools_include: [delegate]
    reply:
      tool_calls:
        - {name: delegate, arguments: {agent: validator, task: "dry-run applying web"}}
  - expect:
      last_user_contains: ["dry-run applying web"]
      system_contains: ["You validate changes with dry-runs."]
      tools_exclude: [delegate]
    reply:
      tool_calls:
        - {name: transition, arguments: {to: validation, justification: "validate"}}
        - {name: app, arguments: {operation: apply, item: web, dry_run: true}}
  - reply: {content: "VALIDATED web"}
  - expect:
      last_tool_result_contains: ["subagent validator finished", "VALIDATED web"]
    reply:
      tool_calls:
        - {name: transition, arguments: {to: validation, justification: "the subagent validated web"}}
        - {name: transition, arguments: {to: deployment, justification: "validated by the subagent"}}
        - {name: app, arguments: {operation: apply, item: web, dry_run: null}}
  - reply: {content: "web applied"}
"#;
    bosun::init_crypto();
    let server = ScriptedServer::start(Script::from_yaml(script).expect("script"))
        .await
        .expect("server");
    let model = Arc::new(
        OpenAiClient::new(&ModelConfig {
            base_url: Some(server.base_url()),
            ..Default::default()
        })
        .expect("client"),
    );
    let rt = Runtime::from_dir(
        dir.path(),
        model,
        RuntimeOptions {
            extra_tools: vec![Arc::new(AppTool { ran: ran.clone() })],
            ..Default::default()
        },
    )
    .expect("runtime");
    let mut s = rt.spawn_session(None).expect("session");
    s.submit(Op::UserTurn {
        text: "roll out web".into(),
    });
    let events = drive(&mut s, true).await;
    assert_eq!(server.failures(), Vec::<String>::new());
    match events.last() {
        Some(Event::TaskComplete { answer, .. }) => assert_eq!(answer, "web applied"),
        other => panic!("{other:?}"),
    }
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::SubagentStarted { agent, .. } if agent == "validator")));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::SubagentFinished { ok: true, .. })));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::TaskComplete { .. }))
            .count(),
        1,
        "one task, one completion"
    );
    // the dry-run the subagent ran authorised the parent's apply: one guard; and the model's
    // final answer did not skip the change's verification
    assert_eq!(
        *ran.lock().expect("lock"),
        vec![
            "apply:dry_run:web".to_string(),
            "apply:mutating:web".to_string(),
            "check:read_only:web".to_string()
        ]
    );
}

#[tokio::test]
async fn a_failed_verification_rolls_the_change_back_when_the_policy_says_so() {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let script = r#"
turns:
  - reply:
      tool_calls:
        - {name: transition, arguments: {to: validation, justification: "dry-run"}}
        - {name: app, arguments: {operation: apply, item: broken, dry_run: true}}
        - {name: transition, arguments: {to: deployment, justification: "validated"}}
        - {name: app, arguments: {operation: apply, item: broken, dry_run: null}}
        - {name: transition, arguments: {to: verification, justification: "deployed"}}
        - {name: transition, arguments: {to: completion, justification: "looks done", report: "Success"}}
  - expect:
      last_tool_result_contains: ["verification failed", "0/2 replicas ready", "rolled back", "The policy rolled the failed changes back"]
    reply:
      tool_calls:
        - {name: transition, arguments: {to: failed, justification: "verification failed; rolled back", report: "Fail: broken was rolled back after its verification failed."}}
  - reply: {content: "Fail: broken was rolled back."}
"#;
    let (server, rt, dir) = runtime(script, ran.clone()).await;
    drop(rt);
    // the shipped policy: roll back on failed verification
    let policy = std::fs::read_to_string(dir.path().join("policy.yaml")).expect("policy");
    assert!(
        policy.contains("verification: {rollback: true}"),
        "the shipped policy rolls back failed verifications"
    );
    let model = OpenAiClient::new(&ModelConfig {
        base_url: Some(server.base_url()),
        ..Default::default()
    })
    .expect("client");
    let rt = Runtime::from_dir(
        dir.path(),
        Arc::new(model),
        RuntimeOptions {
            extra_tools: vec![Arc::new(AppTool { ran: ran.clone() })],
            ..Default::default()
        },
    )
    .expect("runtime");
    let mut s = rt.spawn_session(None).expect("session");
    s.submit(Op::UserTurn {
        text: "roll out broken".into(),
    });
    let events = drive(&mut s, true).await;
    assert_eq!(server.failures(), Vec::<String>::new());
    assert_eq!(
        *ran.lock().expect("lock"),
        vec![
            "apply:dry_run:broken".to_string(),
            "apply:mutating:broken".to_string(),
            "check:read_only:broken".to_string(),
            "undo:dry_run:broken".to_string(),
            "undo:mutating:broken".to_string(),
        ]
    );
    match events.last() {
        Some(Event::TaskComplete { state, report, .. }) => {
            assert_eq!(*state, bosun::planner::State::Failed);
            assert!(report.as_deref().unwrap_or("").starts_with("Fail"));
        }
        other => panic!("{other:?}"),
    }
}
