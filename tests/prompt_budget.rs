//! The prompt budget: the system prompt plus every tool schema, as the default agent (the
//! repository root) sends them on each request, must stay ≤ 4,000 tokens in both o200k and
//! cl100k. A budget guard, not a benchmark: `benches/runtime.rs` prints the same figures.
//!
//! `cargo test --test prompt_budget -- --nocapture` prints the breakdown per tool
//! (`BOSUN_SHOW_PROMPT=DIR` writes the prompt and the schemas there).

use bosun::config::ModelConfig;
use bosun::model::openai::tools_as_sent;
use bosun::model::OpenAiClient;
use bosun::session::{Runtime, RuntimeOptions};
use std::path::PathBuf;
use std::sync::Arc;

const BUDGET: usize = 4_000;

fn runtime() -> Arc<Runtime> {
    bosun::init_crypto();
    let model = OpenAiClient::new(&ModelConfig {
        // never contacted: the runtime is only built to render what it would send
        base_url: Some("http://127.0.0.1:9/v1".into()),
        model: "budget".into(),
        ..Default::default()
    })
    .expect("client");
    Runtime::from_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        Arc::new(model),
        RuntimeOptions::default(),
    )
    .expect("the default agent loads")
}

#[test]
fn system_prompt_and_tool_schemas_fit_the_budget() {
    let rt = runtime();
    let o200k = tiktoken_rs::o200k_base().expect("o200k");
    let cl100k = tiktoken_rs::cl100k_base().expect("cl100k");
    let count = |s: &str| {
        (
            o200k.encode_with_special_tokens(s).len(),
            cl100k.encode_with_special_tokens(s).len(),
        )
    };
    let prompt = count(&rt.system_prompt);
    // strict schemas are what OpenAI gets; other servers get the relaxed (smaller) form
    let tools = tools_as_sent(&rt.specs, true).to_string();
    let schemas = count(&tools);
    println!(
        "system prompt: {} chars, o200k {}, cl100k {}",
        rt.system_prompt.len(),
        prompt.0,
        prompt.1
    );
    println!(
        "tool schemas:  {} chars, o200k {}, cl100k {}",
        tools.len(),
        schemas.0,
        schemas.1
    );
    for spec in &rt.specs {
        let one = tools_as_sent(std::slice::from_ref(spec), true).to_string();
        let (o, c) = count(&one);
        println!(
            "  {:<16} {:>6} chars  o200k {o:>5}  cl100k {c:>5}",
            spec.name,
            one.len()
        );
    }
    if let Some(dir) = std::env::var_os("BOSUN_SHOW_PROMPT") {
        let dir = PathBuf::from(dir);
        std::fs::write(dir.join("system-prompt.md"), &rt.system_prompt).expect("write prompt");
        std::fs::write(dir.join("tools.json"), &tools).expect("write tools");
    }
    let total = (prompt.0 + schemas.0, prompt.1 + schemas.1);
    println!(
        "total: o200k {}, cl100k {} (budget {BUDGET})",
        total.0, total.1
    );
    assert!(
        total.0 <= BUDGET && total.1 <= BUDGET,
        "system prompt + tool schemas take o200k {} / cl100k {} tokens, over the {BUDGET} budget: \
         shorten descriptions or move detail into a skill",
        total.0,
        total.1
    );
}
