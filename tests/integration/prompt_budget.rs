//! The prompt budget: the system prompt plus every tool schema, as the default agent (the
//! repository root) sends them on each request, must stay ≤ 4,000 tokens in both o200k and
//! cl100k. A budget guard, not a benchmark: `benches/runtime.rs` prints the same figures.
//!
//! `cargo test --test integration prompt_budget:: -- --nocapture` prints the breakdown per tool
//! (`BOSUN_SHOW_PROMPT=DIR` writes the prompt and the schemas there).

#[path = "../../benches/support/prompt_tokens.rs"]
mod prompt_tokens;

use bosun::model::openai::tools_as_sent;
use prompt_tokens::{Counter, BUDGET};
use std::path::PathBuf;

#[test]
fn system_prompt_and_tool_schemas_fit_the_budget() {
    let rt = prompt_tokens::default_agent();
    let t = prompt_tokens::measure(&rt, &Counter::new());
    for (what, c) in [("system prompt", t.prompt), ("tool schemas", t.strict)] {
        println!(
            "{what:<14} {:>6} chars  o200k {:>5}  cl100k {:>5}",
            c.chars, c.o200k, c.cl100k
        );
    }
    for (name, c) in &t.per_tool {
        println!(
            "  {name:<16} {:>6} chars  o200k {:>5}  cl100k {:>5}",
            c.chars, c.o200k, c.cl100k
        );
    }
    if let Some(dir) = std::env::var_os("BOSUN_SHOW_PROMPT") {
        let dir = PathBuf::from(dir);
        let tools = tools_as_sent(&rt.specs, true).to_string();
        std::fs::write(dir.join("system-prompt.md"), &rt.system_prompt).expect("write prompt");
        std::fs::write(dir.join("tools.json"), tools).expect("write tools");
    }
    let total = t.total();
    println!(
        "total: o200k {}, cl100k {} (budget {BUDGET})",
        total.o200k, total.cl100k
    );
    assert!(
        total.within(BUDGET),
        "system prompt + tool schemas take o200k {} / cl100k {} tokens, over the {BUDGET} budget: \
         shorten descriptions or move detail into a skill",
        total.o200k,
        total.cl100k
    );
}
