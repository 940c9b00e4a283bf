//! The tool-use shim and truncation handling, against the scripted server replaying responses
//! recorded from a real llama.cpp server (xllamacpp + Qwen2.5-Coder-0.5B; see
//! `tests/fixtures/local-llm/`), through the client and through `bosun run` end to end.

use crate::common;

use bosun::config::ModelConfig;
use bosun::model::{ChatRequest, FinishReason, Message, ModelClient, OpenAiClient, ToolSpec};
use bosun::scripted::{Script, ScriptedServer, Turn};
use serde_json::{json, Value};

/// The recorded responses.
fn fixture(name: &str) -> Value {
    let path =
        common::repo_root().join("tests/fixtures/local-llm/xllamacpp-qwen2.5-coder-0.5b.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture file"))
        .expect("fixture JSON");
    all.get(name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .clone()
}

/// A scripted turn answering with a recorded body (verbatim status and JSON).
fn recorded(name: &str) -> Turn {
    let f = fixture(name);
    Turn {
        raw: Some(f["response"].clone()),
        status: f["status"].as_u64().map(|s| s as u16),
        ..Default::default()
    }
}

/// A recorded body with its message content replaced (same shape, other text).
fn recorded_with_content(name: &str, content: &str) -> Turn {
    let mut t = recorded(name);
    if let Some(raw) = t.raw.as_mut() {
        raw["choices"][0]["message"]["content"] = json!(content);
    }
    t
}

fn reply(yaml: &str) -> Turn {
    let s = Script::from_yaml(&format!("turns:\n  - {yaml}\n")).expect("turn yaml");
    s.turns.into_iter().next().expect("one turn")
}

/// The tools bosun offers with the repository's agent.
fn specs() -> Vec<ToolSpec> {
    let loaded = bosun::agent::Agent::load(&common::repo_root()).expect("agent");
    let impls = bosun::tools::implementations(&loaded.agent, &Default::default());
    let (reg, _) = bosun::tools::Registry::build(&loaded.agent, impls).expect("registry");
    reg.specs()
}

fn client(server: &ScriptedServer, shim: Option<bool>, stream: bool) -> OpenAiClient {
    bosun::init_crypto();
    OpenAiClient::new(&ModelConfig {
        base_url: Some(server.base_url()),
        model: "qwen".into(),
        timeout_secs: 20,
        stream,
        shim,
        ..Default::default()
    })
    .expect("client")
}

async fn ask(c: &OpenAiClient, tools: &[ToolSpec]) -> bosun::model::ChatResponse {
    let msgs = [Message::User {
        content: "List the pods in namespace shop.".into(),
    }];
    c.complete(
        ChatRequest {
            messages: &msgs,
            tools,
        },
        &|_| {},
    )
    .await
    .expect("response")
}

fn args(c: &bosun::model::ToolCall) -> Value {
    serde_json::from_str(&c.arguments).expect("arguments are JSON")
}

#[tokio::test]
async fn recorded_text_calls_become_tool_calls() {
    // the model's own template: 0 of 6 calls came back structured — fenced or bare JSON in content
    let names = ["gguf_pods", "gguf_deployments", "gguf_bare_object"];
    let server = ScriptedServer::start(Script {
        model: None,
        turns: names.iter().map(|n| recorded(n)).collect(),
        ..Default::default()
    })
    .await
    .expect("server");
    let c = client(&server, None, false);
    assert!(
        c.shim(),
        "the shim is on by default for a loopback endpoint"
    );
    let tools = specs();
    let mut ids = Vec::new();
    for n in names {
        let r = ask(&c, &tools).await;
        assert_eq!(r.tool_calls.len(), 1, "{n}: {r:?}");
        let call = &r.tool_calls[0];
        assert_eq!(call.name, "kubectl", "{n}");
        assert!(call.id.starts_with("shim_"), "{n}: {}", call.id);
        assert_eq!(args(call)["operation"], "get", "{n}");
        assert_eq!(r.content, None, "{n}: the call is not also the answer");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls, "{n}");
        ids.push(call.id.clone());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "ids are unique across turns: {ids:?}");
    // the request offered relaxed schemas (optional properties optional), not strict ones
    let req = &server.requests()[0];
    let kubectl = req["tools"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["function"]["name"] == "kubectl"))
        .expect("kubectl offered");
    assert_eq!(kubectl["function"]["strict"], false);
    assert_eq!(
        kubectl["function"]["parameters"]["required"],
        json!(["operation"])
    );
    assert_eq!(
        kubectl["function"]["parameters"]["properties"]["kind"]["type"],
        "string"
    );
}

#[tokio::test]
async fn calls_to_tools_not_offered_and_the_shim_off_leave_text() {
    let server = ScriptedServer::start(Script {
        model: None,
        turns: vec![recorded("gguf_payments"), recorded("gguf_pods")],
        ..Default::default()
    })
    .await
    .expect("server");
    let tools = specs();
    // `check-block-status` is a skill, not a tool: no call, the text stays
    let r = ask(&client(&server, None, false), &tools).await;
    assert!(r.tool_calls.is_empty(), "{r:?}");
    assert!(r
        .content
        .as_deref()
        .is_some_and(|t| t.contains("check-block-status")));
    // --shim off: the fenced call stays text
    let r = ask(&client(&server, Some(false), false), &tools).await;
    assert!(r.tool_calls.is_empty(), "{r:?}");
    assert!(r
        .content
        .as_deref()
        .is_some_and(|t| t.starts_with("```json")));
}

#[tokio::test]
async fn structured_calls_from_the_fenced_template_pass_through() {
    // with bosun's fenced template llama.cpp parses the call itself; the shim stays out of it
    let server = ScriptedServer::start(Script {
        model: None,
        turns: vec![recorded("fenced_pods")],
        ..Default::default()
    })
    .await
    .expect("server");
    let r = ask(&client(&server, None, false), &specs()).await;
    assert_eq!(r.tool_calls.len(), 1);
    let recorded_id =
        fixture("fenced_pods")["response"]["choices"][0]["message"]["tool_calls"][0]["id"].clone();
    assert_eq!(json!(r.tool_calls[0].id), recorded_id);
    assert_eq!(
        args(&r.tool_calls[0]),
        json!({"operation": "get", "kind": "pods", "namespace": "shop"})
    );
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
}

#[tokio::test]
async fn hermes_tags_and_streamed_text_calls_are_read() {
    // Hermes/Qwen `<tool_call>` tags in content (what vLLM without a tool parser, and LM Studio,
    // return): a hand-written body in the documented shape, then the same call streamed
    let tagged = "<tool_call>\n{\"name\": \"activate_skill\", \"arguments\": {\"name\": \"kubernetes\"}}\n</tool_call>";
    let server = ScriptedServer::start(Script {
        model: None,
        turns: vec![
            Turn {
                raw: Some(json!({"choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": tagged}}]})),
                ..Default::default()
            },
            reply(&format!(
                "reply: {{content: {}}}",
                json!("Loading the skill.\n```json\n{\"name\": \"kubectl\", \"arguments\": {\"operation\": \"get\", \"kind\": \"namespaces\"}}\n```")
            )),
        ],
        ..Default::default()
    })
    .await
    .expect("server");
    let tools = specs();
    let r = ask(&client(&server, None, false), &tools).await;
    assert_eq!(r.tool_calls.len(), 1, "{r:?}");
    assert_eq!(r.tool_calls[0].name, "activate_skill");
    assert_eq!(args(&r.tool_calls[0]), json!({"name": "kubernetes"}));
    let r = ask(&client(&server, None, true), &tools).await;
    assert_eq!(r.tool_calls.len(), 1, "{r:?}");
    assert_eq!(r.tool_calls[0].name, "kubectl");
    assert_eq!(r.content.as_deref(), Some("Loading the skill."));
    assert_eq!(server.requests()[1]["stream"], true);
}

// ---------------------------------------------------------------- end to end: `bosun run`

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    events: Vec<Value>,
}

/// `bosun run` on the scripted model, with the sandbox's kubeconfig: the agent offers kubectl, so
/// bosun checks the cluster before the first model call.
async fn run_bosun(server: &ScriptedServer, extra: &[&str], task: &str) -> Run {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.current_dir(home.path())
        .env("OPENAI_BASE_URL", server.base_url())
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--output", "jsonl", "--audit-dir"])
        .arg(home.path().join("audit"))
        .args(extra)
        .arg(task)
        .env("KUBECONFIG", &common::sandbox().kubeconfig);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("running bosun");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Run {
        code: out.status.code(),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        events,
    }
}

fn of_type<'a>(events: &'a [Value], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == t).collect()
}

#[tokio::test]
async fn text_calls_run_through_the_guard_against_the_real_cluster() {
    let ns = common::namespace("shim").await;
    common::pod_with_status(&ns, "web-1", true, None, 0).await;
    let fenced = format!("I will list the pods.\n```json\n{{\n  \"name\": \"kubectl\",\n  \"arguments\": {{\n    \"operation\": \"get\",\n    \"kind\": \"pods\",\n    \"namespace\": \"{ns}\"\n  }}\n}}\n```");
    let delete = format!("```json\n{{\"name\": \"kubectl\", \"arguments\": {{\"operation\": \"delete\", \"kind\": \"pods\", \"namespace\": \"{ns}\", \"name\": \"web-1\"}}}}\n```");
    let mut second = recorded_with_content("gguf_pods", &delete);
    second.expect.last_tool_result_contains = vec!["web-1".into(), "1 Running".into()];
    let mut third = recorded("gguf_pods"); // verbatim: context "shop" does not exist here
    third.expect.last_tool_result_contains = vec!["refused by bosun's guard".into()];
    let mut last = reply("reply: {content: \"FINAL: web-1 is running.\"}");
    last.expect.last_tool_result_contains = vec!["no context `shop`".into()];
    let server = ScriptedServer::start(Script {
        model: None,
        turns: vec![
            recorded_with_content("gguf_pods", &fenced),
            second,
            third,
            last,
        ],
        ..Default::default()
    })
    .await
    .expect("server");
    let r = run_bosun(&server, &[], "List the pods.").await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(server.failures(), Vec::<String>::new());
    let decisions = of_type(&r.events, "guard_decision");
    assert_eq!(
        decisions.len(),
        3,
        "every text call went to the guard: {decisions:?}"
    );
    assert_eq!(decisions[0]["verdict"], "allow");
    assert_ne!(
        decisions[1]["verdict"], "allow",
        "a delete written as text is still refused"
    );
    let started = of_type(&r.events, "tool_call_started");
    assert!(started.iter().all(|s| s["call_id"]
        .as_str()
        .is_some_and(|i| i.starts_with("shim_"))));
    // the shimmed call is stored as a structured call, with the text before it as content
    let req = &server.requests()[1];
    let assistant = req["messages"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["role"] == "assistant"))
        .expect("assistant message");
    assert_eq!(assistant["content"], "I will list the pods.");
    assert_eq!(assistant["tool_calls"][0]["function"]["name"], "kubectl");
    let done = of_type(&r.events, "task_complete");
    assert_eq!(done[0]["answer"], "FINAL: web-1 is running.");
}

#[tokio::test]
async fn a_truncated_call_is_dropped_and_the_model_asked_to_retry_shorter() {
    // recorded: max_tokens cut the call, finish_reason "length", arguments `{"operation": "get",
    // "kind": "pods",`. Sent back, llama.cpp answers HTTP 500 (fixture
    // fenced_truncated_call_sent_back) — so it must never be sent back.
    let sent_back = fixture("fenced_truncated_call_sent_back");
    assert_eq!(sent_back["status"], 500);
    let mut retry =
        reply("reply: {tool_calls: [{name: activate_skill, arguments: {name: kubernetes}}]}");
    retry.expect.last_user_contains = vec!["cut off by the token limit".into()];
    let mut last = reply("reply: {content: done}");
    last.expect.last_tool_result_contains = vec!["# Skill: kubernetes".into()];
    let server = ScriptedServer::start(Script {
        model: None,
        turns: vec![recorded("fenced_pods_truncated_25"), retry, last],
        ..Default::default()
    })
    .await
    .expect("server");
    let r = run_bosun(&server, &[], "List the pods in namespace shop.").await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(server.failures(), Vec::<String>::new());
    // the truncated call never ran and never went back to the server
    let started = of_type(&r.events, "tool_call_started");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["tool"], "activate_skill");
    for req in server.requests() {
        for m in req["messages"].as_array().into_iter().flatten() {
            for c in m["tool_calls"].as_array().into_iter().flatten() {
                let a = c["function"]["arguments"].as_str().unwrap_or("{}");
                assert!(
                    serde_json::from_str::<Value>(a).is_ok(),
                    "invalid arguments sent back: {a}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_truncated_text_call_is_dropped_and_a_complete_one_before_the_cut_is_kept() {
    // recorded: the model's own template, an unclosed ```json fence cut by max_tokens
    let mut second = recorded_with_content(
        "gguf_pods_truncated",
        "```json\n{\"name\": \"activate_skill\", \"arguments\": {\"name\": \"gitops\"}}\n```\n```json\n{\n  \"name\": \"kubectl\",\n  \"arguments\": {\n    \"operation\": \"get\",\n    \"kind\": \"po",
    );
    second.expect.last_user_contains = vec!["cut off by the token limit".into()];
    let mut last = reply("reply: {content: done}");
    last.expect.last_tool_result_contains = vec!["# Skill: gitops".into()];
    let server = ScriptedServer::start(Script {
        model: None,
        turns: vec![recorded("gguf_pods_truncated"), second, last],
        ..Default::default()
    })
    .await
    .expect("server");
    let r = run_bosun(&server, &[], "List the pods in namespace shop.").await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(server.failures(), Vec::<String>::new());
    let started = of_type(&r.events, "tool_call_started");
    assert_eq!(started.len(), 1, "only the complete call ran: {started:?}");
    assert_eq!(started[0]["tool"], "activate_skill");
    assert_eq!(common::tool_results(&server.requests()[2]).len(), 1);
}

#[tokio::test]
async fn calls_without_ids_are_not_refused_as_replays() {
    // a server that sends no call ids (seen in the wild): each call still gets a fresh id, so
    // the guard's one-admission-per-id rule does not refuse the second turn's call
    let no_id = |skill: &str| Turn {
        raw: Some(
            json!({"choices": [{"finish_reason": "tool_calls", "message": {"role": "assistant",
            "tool_calls": [{"function": {"name": "activate_skill", "arguments": {"name": skill}}}]}}]}),
        ),
        ..Default::default()
    };
    let mut second = no_id("gitops");
    second.expect.last_tool_result_contains = vec!["# Skill: kubernetes".into()];
    let mut last = reply("reply: {content: done}");
    last.expect.last_tool_result_contains = vec!["# Skill: gitops".into()];
    let server = ScriptedServer::start(Script {
        model: None,
        turns: vec![no_id("kubernetes"), second, last],
        ..Default::default()
    })
    .await
    .expect("server");
    let r = run_bosun(&server, &[], "load two skills").await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(server.failures(), Vec::<String>::new());
    let ids: Vec<&str> = of_type(&r.events, "tool_call_started")
        .iter()
        .filter_map(|s| s["call_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn shim_flag_off_turns_a_text_call_into_the_answer() {
    let server = ScriptedServer::start(Script {
        model: None,
        turns: vec![recorded("gguf_bare_object")],
        ..Default::default()
    })
    .await
    .expect("server");
    let r = run_bosun(&server, &["--shim", "off"], "Is the MinIO block ready?").await;
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(of_type(&r.events, "tool_call_started").is_empty());
    let done = of_type(&r.events, "task_complete");
    assert!(done[0]["answer"]
        .as_str()
        .is_some_and(|a| a.starts_with("{\"name\": \"kubectl\"")));
}
