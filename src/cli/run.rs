//! `bosun run`: one task, to its final answer.

use super::{exit, render, OutputFormat};
use anyhow::Context;
use bosun::agent::Agent;
use bosun::config::{self, ModelOverrides};
use bosun::kube_client::KubeTarget;
use bosun::model::OpenAiClient;
use bosun::session::{Runtime, RuntimeOptions, Session};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The task. Omit (or pass `-`) to read it from stdin.
    pub task: Vec<String>,
    /// OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1 [env: OPENAI_BASE_URL]
    #[arg(long)]
    pub base_url: Option<String>,
    /// API key [env: OPENAI_API_KEY]
    #[arg(long)]
    pub api_key: Option<String>,
    /// Model name [env: BOSUN_MODEL]
    #[arg(long)]
    pub model: Option<String>,
    /// Stream assistant text as it is generated.
    #[arg(long)]
    pub stream: bool,
    /// kubeconfig for the Kubernetes tools (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kube context (default: the kubeconfig's current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Maximum model turns for the task (default: agent.md max_turns, else 40).
    #[arg(long)]
    pub max_turns: Option<u32>,
    /// Output: text (answer on stdout, progress on stderr), json (one result object), jsonl (the event stream).
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// No progress lines on stderr (text output).
    #[arg(short, long)]
    pub quiet: bool,
}

fn read_task(args: &RunArgs) -> anyhow::Result<String> {
    let joined = args.task.join(" ");
    if !joined.trim().is_empty() && joined.trim() != "-" {
        return Ok(joined);
    }
    if std::io::stdin().is_terminal() && joined.trim() != "-" {
        anyhow::bail!("no task given: `bosun run \"your task\"`, or pipe it on stdin");
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading the task from stdin")?;
    if s.trim().is_empty() {
        anyhow::bail!("the task read from stdin is empty");
    }
    Ok(s.trim().to_string())
}

/// Build a runtime for the agent in `dir` from run flags.
pub fn build_runtime(dir: &Path, args: &RunArgs) -> anyhow::Result<Arc<Runtime>> {
    let loaded = match Agent::load(dir) {
        Ok(l) => l,
        Err(d) => anyhow::bail!("{d}\nfix the agent definition (see `bosun validate`)"),
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let cfg = config::resolve(
        &ModelOverrides {
            base_url: args.base_url.clone(),
            api_key: args.api_key.clone(),
            model: args.model.clone(),
            stream: args.stream.then_some(true),
        },
        &cwd,
        loaded.agent.def.model.as_deref(),
    )?;
    let model = OpenAiClient::new(&cfg)?;
    // one redactor for the runtime; the vault resolver registers every value it resolves in it
    let redactor = Arc::new(bosun::redact::Redactor::new());
    let secrets = bosun::tools::vault::VaultResolver::from_env(redactor.clone())
        .map(|r| Arc::new(r) as Arc<dyn bosun::secrets::SecretResolver>);
    let opts = RuntimeOptions {
        kube: KubeTarget {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        },
        max_turns: args.max_turns,
        secrets,
        redactor: Some(redactor),
        ..Default::default()
    };
    let (rt, warnings) = Runtime::new(loaded.agent, Arc::new(model), opts)?;
    for w in &warnings {
        tracing::info!("{w}");
    }
    Ok(Arc::new(rt))
}

pub async fn run(dir: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let task = read_task(&args)?;
    let rt = match build_runtime(dir, &args) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bosun: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    run_task(rt, &task, args.output, args.quiet).await
}

/// Run `task` on `rt`, rendering events in `format`. Shared by `run` and `demo`.
pub async fn run_task(
    rt: Arc<Runtime>,
    task: &str,
    format: OutputFormat,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let renderer = tokio::spawn(render::render(rx, format, quiet));
    let mut session = Session::new(rt, tx);
    let result = session.run_task(task).await;
    drop(session); // closes the event channel
    let _ = renderer.await;
    match result {
        Ok(outcome) => {
            if format == OutputFormat::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                    "status": "success", "answer": outcome.answer, "turns": outcome.turns,
                    "tool_calls": outcome.tool_calls, "usage": outcome.usage}))?
                );
            }
            Ok(ExitCode::from(exit::SUCCESS))
        }
        Err(e) => {
            if format == OutputFormat::Json {
                println!(
                    "{}",
                    serde_json::json!({"status": "failed", "error": e.to_string()})
                );
            }
            if format == OutputFormat::Text {
                eprintln!("bosun: task failed: {e}");
            }
            Ok(ExitCode::from(exit::TASK_FAILED))
        }
    }
}
