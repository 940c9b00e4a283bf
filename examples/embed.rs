//! Embedding bosun: one runtime, two sessions running concurrently in one process, each driven
//! through the operations-in / events-out protocol.
//!
//! ```sh
//! cargo run --example embed                 # uses a scripted model, no API key needed
//! cargo run --example embed -- path/to/agent
//! ```
//! With a real model, build the client from `bosun::config::resolve(..)` instead.

use bosun::config::ModelConfig;
use bosun::model::OpenAiClient;
use bosun::scripted::{Script, ScriptedServer};
use bosun::session::{Event, Op, Runtime, RuntimeOptions, SessionHandle};
use std::path::PathBuf;
use std::sync::Arc;

// Every session makes one call, then answers; the replies do not depend on which session asks.
const SCRIPT: &str = r#"
turns:
  - reply: {tool_calls: [{name: activate_skill, arguments: {name: kubernetes}}]}
  - reply: {tool_calls: [{name: activate_skill, arguments: {name: gitops}}]}
  - reply: {content: "answer one"}
  - reply: {content: "answer two"}
"#;

/// Drive one session through a task and return (tool calls seen, final answer).
async fn run(mut s: SessionHandle, task: &str) -> anyhow::Result<(String, usize, String)> {
    s.submit(Op::UserTurn { text: task.into() });
    let mut calls = 0;
    let answer = loop {
        match s.next_event().await {
            Some(Event::ToolCallFinished { .. }) => calls += 1,
            Some(Event::TaskComplete { answer, .. }) => break answer,
            Some(Event::TaskFailed { error }) => {
                anyhow::bail!("session {} failed: {error}", s.id())
            }
            Some(_) => {}
            None => anyhow::bail!("session {} ended early", s.id()),
        }
    };
    let id = s.id().to_string();
    s.submit(Op::Shutdown);
    s.join().await;
    Ok((id, calls, answer))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bosun::init_crypto();
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let server = ScriptedServer::start(Script::from_yaml(SCRIPT)?).await?;
    let model = OpenAiClient::new(&ModelConfig {
        base_url: Some(server.base_url()),
        model: "scripted".into(),
        ..Default::default()
    })?;
    let rt = Runtime::from_dir(&dir, Arc::new(model), RuntimeOptions::default())?;
    let a = rt.spawn_session(None)?;
    let b = rt.spawn_session(None)?;
    let (ra, rb) = tokio::join!(run(a, "first task"), run(b, "second task"));
    for (id, calls, answer) in [ra?, rb?] {
        println!("session {id}: {calls} tool call(s), answer: {answer}");
    }
    println!("model requests served: {}", server.requests().len());
    Ok(())
}
