//! The OpenAI-compatible client against real HTTP: recorded response shapes of servers that
//! omit or vary fields, error bodies, retries.

use bosun::config::ModelConfig;
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
