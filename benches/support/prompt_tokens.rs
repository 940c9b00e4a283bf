//! What the default agent (the repository root) sends on every request — the system prompt and
//! every tool schema — counted with real tokenizers (tiktoken-rs: o200k and cl100k). Shared by
//! `tests/integration/prompt_budget.rs` (the budget guard) and `benches/runtime.rs` (the figures).
#![allow(dead_code)] // each includer uses a part

use bosun::config::ModelConfig;
use bosun::model::openai::tools_as_sent;
use bosun::model::OpenAiClient;
use bosun::session::{Runtime, RuntimeOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// The budget for the system prompt + strict tool schemas, in both encodings.
pub const BUDGET: usize = 4_000;

/// Tokens of one text in both encodings, and its length.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub chars: usize,
    pub o200k: usize,
    pub cl100k: usize,
}

impl Count {
    pub fn plus(self, o: Count) -> Count {
        Count {
            chars: self.chars + o.chars,
            o200k: self.o200k + o.o200k,
            cl100k: self.cl100k + o.cl100k,
        }
    }

    pub fn within(self, budget: usize) -> bool {
        self.o200k <= budget && self.cl100k <= budget
    }
}

pub struct Counter {
    o200k: tiktoken_rs::CoreBPE,
    cl100k: tiktoken_rs::CoreBPE,
}

impl Counter {
    pub fn new() -> Self {
        Self {
            o200k: tiktoken_rs::o200k_base().expect("o200k"),
            cl100k: tiktoken_rs::cl100k_base().expect("cl100k"),
        }
    }

    pub fn count(&self, s: &str) -> Count {
        Count {
            chars: s.len(),
            o200k: self.o200k.encode_with_special_tokens(s).len(),
            cl100k: self.cl100k.encode_with_special_tokens(s).len(),
        }
    }
}

/// The system prompt and the tools array as the OpenAI-compatible client sends them.
pub struct PromptTokens {
    pub prompt: Count,
    /// Strict schemas (what OpenAI gets).
    pub strict: Count,
    /// Relaxed schemas (what other servers get).
    pub relaxed: Count,
    /// Each tool's strict entry alone.
    pub per_tool: Vec<(String, Count)>,
}

impl PromptTokens {
    /// Prompt + strict schemas: what the budget applies to.
    pub fn total(&self) -> Count {
        self.prompt.plus(self.strict)
    }
}

/// The default agent's runtime, with a model that is never contacted.
pub fn default_agent() -> Arc<Runtime> {
    bosun::init_crypto();
    let model = OpenAiClient::new(&ModelConfig {
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

pub fn measure(rt: &Runtime, c: &Counter) -> PromptTokens {
    PromptTokens {
        prompt: c.count(&rt.system_prompt),
        strict: c.count(&tools_as_sent(&rt.specs, true).to_string()),
        relaxed: c.count(&tools_as_sent(&rt.specs, false).to_string()),
        per_tool: rt
            .specs
            .iter()
            .map(|s| {
                let one = tools_as_sent(std::slice::from_ref(s), true).to_string();
                (s.name.clone(), c.count(&one))
            })
            .collect(),
    }
}
