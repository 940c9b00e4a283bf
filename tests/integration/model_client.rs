//! The OpenAI-compatible client against real HTTP: recorded response shapes of servers that
//! omit or vary fields, error bodies, retries.

use bosun::config::ModelConfig;
use bosun::model::openai::RetryPolicy;
use bosun::model::{ChatRequest, FinishReason, Message, ModelClient, ModelError, OpenAiClient};
use bosun::scripted::{Script, ScriptedServer};

fn client(server: &ScriptedServer, stream: bool) -> OpenAiClient {
    bosun::init_crypto();
    OpenAiClient::new(&ModelConfig {
        base_url: Some(server.base_url()),
        model: "m".into(),
        stream,
        timeout_secs: 20,
        ..Default::default()
    })
    .expect("client")
}

async fn ask(c: &OpenAiClient) -> Result<bosun::model::ChatResponse, ModelError> {
    let msgs = [Message::User {
        content: "hi".into(),
    }];
    c.complete(
        ChatRequest {
            messages: &msgs,
            tools: &[],
        },
        &|_| {},
    )
    .await
}

#[tokio::test]
async fn recorded_shapes_from_lenient_servers_parse() {
    // llama.cpp-like: no id/object/created/index/type, arguments as an object, finish "eos";
    // Ollama-like: usage without completion_tokens; vLLM-like: content parts array
    let script = Script::from_yaml(
        r#"
turns:
  - raw: {"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "kubectl", "arguments": {"operation": "get", "kind": "pods"}}}]}, "finish_reason": "eos"}]}
  - raw: {"model": "llama3", "choices": [{"message": {"role": "assistant", "content": "plain"}, "finish_reason": ""}], "usage": {"prompt_tokens": 9}}
  - raw: {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": [{"type": "text", "text": "from "}, {"type": "text", "text": "parts"}]}, "finish_reason": "length"}]}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = client(&server, false);
    let r = ask(&c).await.expect("shape 1");
    assert_eq!(r.tool_calls.len(), 1);
    assert_eq!(r.tool_calls[0].name, "kubectl");
    assert!(
        r.tool_calls[0].arguments.contains("\"kind\":\"pods\""),
        "{}",
        r.tool_calls[0].arguments
    );
    assert_eq!(r.finish_reason, FinishReason::Stop);
    let r = ask(&c).await.expect("shape 2");
    assert_eq!(r.content.as_deref(), Some("plain"));
    assert_eq!(r.usage.prompt_tokens, 9);
    let r = ask(&c).await.expect("shape 3");
    assert_eq!(r.content.as_deref(), Some("from parts"));
    assert_eq!(r.finish_reason, FinishReason::Length);
}

#[tokio::test]
async fn error_bodies_are_reported_with_their_message() {
    let script = Script::from_yaml(
        r#"
turns:
  - raw: {"error": "model \"llama9\" not found, try pulling it first"}
    status: 404
  - raw: {"error": {"message": "Invalid API key", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}
    status: 401
  - raw: {"error": "out of memory"}
    status: 200
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = client(&server, false);
    let e = ask(&c).await.expect_err("404");
    assert!(e.to_string().contains("not found, try pulling"), "{e}");
    let e = ask(&c).await.expect_err("401");
    assert!(
        matches!(&e, ModelError::Http { status: 401, message } if message.contains("Invalid API key")),
        "{e:?}"
    );
    let e = ask(&c).await.expect_err("error in a 200");
    assert!(e.to_string().contains("out of memory"), "{e}");
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let script = Script::from_yaml(
        r#"
turns:
  - raw: {"error": {"message": "Rate limit reached, retry", "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}}
    status: 429
  - raw: {"error": "upstream overloaded"}
    status: 503
  - reply: {content: "after retries"}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = client(&server, false);
    let r = ask(&c).await.expect("retried to success");
    assert_eq!(r.content.as_deref(), Some("after retries"));
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn streamed_responses_assemble_calls_and_report_usage() {
    let script = Script::from_yaml(
        r#"
turns:
  - reply:
      content: "Let me look at the cluster first."
      tool_calls:
        - {name: kubectl, arguments: {operation: get, kind: namespaces}}
        - {name: activate_skill, arguments: {name: kubernetes}}
      usage: {prompt_tokens: 120, completion_tokens: 30}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = client(&server, true);
    let seen = std::sync::Mutex::new(String::new());
    let msgs = [Message::User {
        content: "hi".into(),
    }];
    let r = c
        .complete(
            ChatRequest {
                messages: &msgs,
                tools: &[],
            },
            &|d| {
                if let Ok(mut s) = seen.lock() {
                    s.push_str(d)
                }
            },
        )
        .await
        .expect("stream");
    assert_eq!(
        seen.lock().expect("lock").as_str(),
        "Let me look at the cluster first."
    );
    assert_eq!(r.tool_calls.len(), 2);
    let args: serde_json::Value =
        serde_json::from_str(&r.tool_calls[0].arguments).expect("json args");
    assert_eq!(args["kind"], "namespaces");
    assert_eq!(r.tool_calls[1].name, "activate_skill");
    assert_eq!(r.usage.prompt_tokens, 120);
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        server.requests()[0]["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_says_so() {
    bosun::init_crypto();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let c = OpenAiClient::new(&ModelConfig {
        base_url: Some(format!("http://127.0.0.1:{port}/v1")),
        timeout_secs: 5,
        ..Default::default()
    })
    .expect("client");
    let e = ask(&c).await.expect_err("nothing listens");
    assert!(matches!(e, ModelError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("is the server running"), "{e}");
}

// ---- faults: every one is classified (retried, model error, timeout), none is an empty success

fn fast_retries(c: OpenAiClient) -> OpenAiClient {
    c.with_retry(RetryPolicy {
        base_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        ..Default::default()
    })
}

fn malformed(r: Result<bosun::model::ChatResponse, ModelError>) -> String {
    match r {
        Err(ModelError::Malformed { detail }) => detail,
        other => panic!("expected a Malformed model error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plain_text_429_is_retried_after_its_retry_after() {
    let script = Script::from_yaml(
        r#"
turns:
  - text: "Too Many Requests"
    status: 429
    headers: {Retry-After: "1"}
  - reply: {content: "after the wait"}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = client(&server, false);
    let t = std::time::Instant::now();
    let r = ask(&c).await.expect("retried to success");
    assert_eq!(r.content.as_deref(), Some("after the wait"));
    assert_eq!(server.requests().len(), 2);
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(950),
        "Retry-After: 1 was not honoured: {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_at_once_and_says_why() {
    let script = Script::from_yaml(
        r#"
turns:
  - text: "slow down"
    status: 429
    headers: {Retry-After: "3600"}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = client(&server, false);
    let t = std::time::Instant::now();
    let e = ask(&c).await.expect_err("capped");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    match &e {
        ModelError::Http {
            status: 429,
            message,
        } => {
            assert!(message.contains("slow down"), "{message}");
            assert!(
                message.contains("retry in 3600 s") && message.contains("at most 60 s"),
                "{message}"
            );
        }
        other => panic!("expected HTTP 429, got {other:?}"),
    }
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_given_up_with_the_count() {
    let script = Script::from_yaml(
        r#"
turns:
  - {text: "Internal Server Error", status: 500}
  - {raw: {"error": "upstream overloaded"}, status: 503}
  - {text: "", status: 502}
  - {text: "Internal Server Error", status: 500}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = fast_retries(client(&server, false));
    let e = ask(&c).await.expect_err("given up");
    assert!(
        matches!(&e, ModelError::Http { status: 500, message } if message.contains("gave up after 4 tries")),
        "{e:?}"
    );
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn a_stream_cut_mid_tool_call_is_a_model_error() {
    let script = Script::from_yaml(
        r#"
turns:
  - reply:
      content: "Checking."
      tool_calls: [{name: kubectl, arguments: {operation: get, kind: pods, namespace: default}}]
    cut_off: true
  - reply: {content: "whole"}
    cut_off: true
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let streamed = client(&server, true);
    let d = malformed(ask(&streamed).await);
    assert!(
        d.contains("stream ended before") && d.contains("1 tool call(s) were cut off"),
        "{d}"
    );
    // a plain JSON body cut mid-object
    let plain = client(&server, false);
    let d = malformed(ask(&plain).await);
    assert!(d.contains("not JSON"), "{d}");
}

#[tokio::test]
async fn invalid_tool_call_shapes_are_model_errors() {
    let script = Script::from_yaml(
        r#"
turns:
  - raw: {"choices": [{"message": {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]}, "finish_reason": "tool_calls"}]}
  - raw: {"choices": [{"message": {"tool_calls": [{"id": "c1", "function": {"arguments": "{}"}}]}, "finish_reason": "tool_calls"}]}
  - raw: {"choices": [{"message": {"tool_calls": {"id": "c1"}}}]}
  - raw_stream:
      - {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function"}]}}]}
      - {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = client(&server, false);
    assert!(malformed(ask(&c).await).contains("has no `function`"));
    assert!(malformed(ask(&c).await).contains("no function name"));
    assert!(malformed(ask(&c).await).contains("not a list"));
    let s = client(&server, true);
    assert!(malformed(ask(&s).await).contains("no function name"));
}

#[tokio::test]
async fn non_string_content_and_empty_answers_are_model_errors() {
    let script = Script::from_yaml(
        r#"
turns:
  - raw: {"choices": [{"message": {"content": 42}, "finish_reason": "stop"}]}
  - raw: {"choices": [{"message": {"content": {"text": "hidden"}}, "finish_reason": "stop"}]}
  - raw: {"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]}
  - raw_stream:
      - {"choices": [{"delta": {"content": 7}}]}
  - raw: {"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}]}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = client(&server, false);
    assert!(malformed(ask(&c).await).contains("`content` is a number (42)"));
    assert!(malformed(ask(&c).await).contains("`content` is an object"));
    assert!(malformed(ask(&c).await).contains("neither text nor tool calls"));
    let s = client(&server, true);
    assert!(malformed(ask(&s).await).contains("`content` is a number"));
    // a server that ignores `stream: true` and answers one JSON body is read as such
    let r = ask(&s).await.expect("JSON body to a streamed request");
    assert_eq!(r.content.as_deref(), Some("fine"));
}

#[tokio::test]
async fn a_hang_past_the_timeout_is_reported_once_not_retried() {
    let script = Script::from_yaml("turns:\n  - {delay_ms: 4000, reply: {content: too late}}\n")
        .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = OpenAiClient::new(&ModelConfig {
        base_url: Some(server.base_url()),
        model: "m".into(),
        timeout_secs: 1,
        ..Default::default()
    })
    .expect("client");
    let t = std::time::Instant::now();
    let e = ask(&c).await.expect_err("timeout");
    assert!(
        matches!(&e, ModelError::Unreachable { detail, .. } if detail.contains("timed out")),
        "{e:?}"
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn control_bytes_from_the_endpoint_are_escaped_in_errors() {
    let script = Script::from_yaml(
        r#"
turns:
  - text: "\e[31mboom\a\0"
    status: 400
  - raw: {"error": "\e]0;pwned\a"}
  - reply: {content: "raw \e[2J bytes"}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let c = client(&server, false);
    for _ in 0..2 {
        let e = ask(&c).await.expect_err("error").to_string();
        assert!(!e.contains(['\x1b', '\x07', '\0']), "{e:?}");
        assert!(e.contains("\\x1b"), "{e}");
    }
    // content is the model's text, passed on as is: the terminal frontends escape it
    let r = ask(&c).await.expect("content");
    assert_eq!(r.content.as_deref(), Some("raw \x1b[2J bytes"));
    assert_eq!(
        bosun::term::printable("raw \x1b[2J bytes"),
        "raw \\x1b[2J bytes"
    );
}
