//! Adding a tool: one type implementing `bosun::tools::Tool`, one line in
//! `RuntimeOptions::extra_tools`, one name in the agent's `tools:`. It describes itself (its
//! operations with their effect classes and a schemars schema) and is guarded exactly like the
//! built-ins: refused where the planner state forbids it, never applied without the identical
//! dry-run first, audited.
//!
//! ```sh
//! cargo run --example custom_tool          # a scripted model, no API key, no cluster
//! ```

use bosun::config::ModelConfig;
use bosun::effect::EffectClass;
use bosun::guard::Admitted;
use bosun::model::OpenAiClient;
use bosun::scripted::{Script, ScriptedServer};
use bosun::session::{Event, Op, Runtime, RuntimeOptions};
use bosun::tools::{sha256_hex, Change, Invocation, Tool, ToolCtx, ToolError};
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// A notebook in the workspace: `read` it, or `append` a line (a change: dry-run first).
struct Notes;

// The arguments, parsed once in `plan` and again (from the same admitted JSON) in `execute`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NotesArgs {
    operation: NotesOp,
    /// The line to append.
    line: Option<String>,
    /// true: only say what would be appended.
    dry_run: Option<bool>,
}

#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum NotesOp {
    Read,
    Append,
}

impl NotesArgs {
    fn parse(args: &Value) -> Result<Self, ToolError> {
        serde_json::from_value(args.clone()).map_err(|e| ToolError::InvalidArguments(e.to_string()))
    }
}

impl Tool for Notes {
    fn name(&self) -> &str {
        "notes"
    }
    fn description(&self) -> &str {
        "The team's notebook in the workspace: read it, or append a line."
    }
    fn operations(&self) -> &[(&'static str, EffectClass)] {
        &[
            ("read", EffectClass::ReadOnly),
            ("append", EffectClass::Mutating),
        ]
    }
    fn parameters(&self) -> Value {
        schemars::schema_for!(NotesArgs).to_value()
    }
    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let a = NotesArgs::parse(args)?;
        match (a.operation, a.line) {
            (NotesOp::Read, _) => Ok(Invocation::read("read", "notes.md")),
            (NotesOp::Append, Some(line)) => Ok(Invocation {
                operation: "append".into(),
                target: "notes.md".into(),
                // the identity of the change: a dry-run and its apply must agree on it
                change: Some(Change {
                    target: "notes.md".into(),
                    content_hash: sha256_hex(line.as_bytes()),
                    dry_run_hint: "call notes append with the same line and dry_run: true".into(),
                }),
                dry_run: a.dry_run == Some(true),
                scope: Default::default(),
                min_effect: None,
            }),
            (NotesOp::Append, None) => {
                Err(ToolError::InvalidArguments("append needs a `line`".into()))
            }
        }
    }
    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let path = ctx.workspace.join("notes.md");
            let a = NotesArgs::parse(&call.args)?;
            let line = a.line.unwrap_or_default();
            let fail = |e: std::io::Error| ToolError::Failed(format!("notes.md: {e}"));
            match (a.operation, a.dry_run == Some(true)) {
                (NotesOp::Read, _) => Ok(std::fs::read_to_string(&path).unwrap_or_default()),
                (NotesOp::Append, true) => Ok(format!("would append: {line}")),
                (NotesOp::Append, false) => {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(fail)?;
                    writeln!(f, "{line}").map_err(fail)?;
                    Ok(format!("appended: {line}"))
                }
            }
        })
    }
}

// The model: first it tries to append straight away (the guard refuses: intake allows no
// change), then it does it properly — dry-run in validation, apply in deployment.
const SCRIPT: &str = r#"
turns:
  - reply: {tool_calls: [{name: notes, arguments: {operation: append, line: "web v2 rolled out", dry_run: null}}]}
  - reply:
      tool_calls:
        - {name: transition, arguments: {to: validation, justification: "dry-run the note"}}
        - {name: notes, arguments: {operation: append, line: "web v2 rolled out", dry_run: true}}
        - {name: transition, arguments: {to: deployment, justification: "the dry-run passed"}}
        - {name: notes, arguments: {operation: append, line: "web v2 rolled out", dry_run: null}}
        - {name: transition, arguments: {to: verification, justification: "appended"}}
        - {name: notes, arguments: {operation: read, line: null, dry_run: null}}
        - {name: transition, arguments: {to: completion, justification: "the note is there", report: "Success: noted."}}
  - reply: {content: "Success: noted."}
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bosun::init_crypto();
    // an agent directory from bosun's built-in defaults, listing the new tool
    let dir = tempfile::tempdir()?;
    bosun::defaults::scaffold(dir.path())?;
    let agent_md = dir.path().join("agent.md");
    let text = std::fs::read_to_string(&agent_md)?.replacen("tools: [", "tools: [\"notes\", ", 1);
    std::fs::write(&agent_md, text)?;

    let server = ScriptedServer::start(Script::from_yaml(SCRIPT)?).await?;
    let model = OpenAiClient::new(&ModelConfig {
        base_url: Some(server.base_url()),
        model: "scripted".into(),
        ..Default::default()
    })?;
    let rt = Runtime::from_dir(
        dir.path(),
        Arc::new(model),
        RuntimeOptions {
            extra_tools: vec![Arc::new(Notes)], // the one line
            ..Default::default()
        },
    )?;
    let mut s = rt.spawn_session(None)?;
    s.submit(Op::UserTurn {
        text: "Note that web v2 is rolled out.".into(),
    });
    while let Some(e) = s.next_event().await {
        match e {
            Event::GuardDecision(d) => println!(
                "guard: {} {} → {:?}: {}",
                d.tool,
                d.operation.as_deref().unwrap_or("-"),
                d.verdict,
                d.reason
            ),
            Event::ToolCallFinished {
                tool, ok, output, ..
            } => {
                println!(
                    "  {tool} {}: {}",
                    if ok { "ok" } else { "refused" },
                    output.lines().next().unwrap_or("")
                )
            }
            Event::TaskComplete { status, answer, .. } => {
                println!("task: {} — {answer}", status.as_str());
                break;
            }
            Event::TaskFailed { error } => anyhow::bail!("task failed: {error}"),
            _ => {}
        }
    }
    s.submit(Op::Shutdown);
    s.join().await;
    Ok(())
}
