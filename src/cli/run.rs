//! `bosun run`: one task, to its final answer.

use super::local::{stop_signal, LocalServer, Log, ServerOpts};
use super::{exit, render, report, OutputFormat};
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
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
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
    /// kube context (default: the kubeconfig's current context). Given, it also scopes the
    /// task: dry-runs and changes in any other context are refused.
    #[arg(long)]
    pub context: Option<String>,
    /// Scope the task to this namespace (in --context, else the current context): the model is
    /// told, and the guard refuses dry-runs and changes in other namespaces and on
    /// cluster-scoped objects. Reads elsewhere stay allowed.
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// read-only: only read operations are offered to the model and admitted by the guard.
    /// suggest: reads and dry-runs run, nothing is applied — each change whose dry-run passed
    /// is written to a change proposal (see --proposal-dir) for `bosun apply`.
    /// apply: reads, dry-runs and changes after a matching dry-run.
    #[arg(long, value_enum, default_value = "apply")]
    pub mode: ModeArg,
    /// --mode suggest: write the change proposal (proposal.json + one file per change) to DIR
    /// (default: SESSIONS_DIR/<session>.proposal).
    #[arg(long, value_name = "DIR")]
    pub proposal_dir: Option<PathBuf>,
    /// Maximum model turns for the task (default: agent.md max_turns, else 40).
    #[arg(long)]
    pub max_turns: Option<u32>,
    /// Maximum model turns in one planner state (default: the task's limit).
    #[arg(long)]
    pub max_turns_per_state: Option<u32>,
    /// The same call with the same arguments this many times is a loop (default 3).
    #[arg(long)]
    pub loop_limit: Option<u32>,
    /// Output: text (answer on stdout, progress on stderr), json (one result object), jsonl (the event stream).
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// No progress lines on stderr (text output).
    #[arg(short, long)]
    pub quiet: bool,
    /// Approve changes that need approval in these environments without asking, e.g.
    /// `--approve env=dev` or `--approve env=dev,tier`. Prod must be named explicitly.
    #[arg(long, value_name = "env=ENV[,ENV]")]
    pub approve: Vec<String>,
    /// Approve in dev and tier (never prod). The dry-run rule still applies.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Alias of --yes, for harnesses that pass it (k8s-ai-bench). Never disables the dry-run rule.
    #[arg(long, hide = true)]
    pub skip_permissions: bool,
    /// Where the audit log goes (default: $XDG_STATE_HOME/bosun/audit or ~/.local/state/bosun/audit).
    #[arg(long)]
    pub audit_dir: Option<PathBuf>,
    /// Where sessions are saved (default: $XDG_STATE_HOME/bosun/sessions or ~/.local/state/bosun/sessions).
    #[arg(long)]
    pub sessions_dir: Option<PathBuf>,
    /// Continue a saved session (see `bosun sessions list`); the task is optional.
    #[arg(long, value_name = "ID")]
    pub resume: Option<String>,
    /// Write the report (Success/Fail, changes with dry-run evidence, access points, credential
    /// references) to FILE.md or FILE.json.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write the event stream as JSON lines to FILE (k8s-ai-bench passes this).
    #[arg(long, value_name = "FILE")]
    pub trace_path: Option<PathBuf>,
    /// Tool-use shim: read tool calls the model writes as text (fenced JSON, <tool_call> tags, a
    /// bare JSON object). auto: on unless the endpoint is api.openai.com [config: shim]
    #[arg(long, value_enum)]
    pub shim: Option<ShimMode>,
    /// Serve this GGUF with a local llama.cpp server for this run: started, checked healthy,
    /// stopped afterwards (also on error or Ctrl-C). bosun never downloads weights.
    #[arg(long, value_name = "PATH.gguf", conflicts_with = "base_url")]
    pub local: Option<PathBuf>,
    /// --local: CPU threads (default: all cores, at most 8; use 1 on a busy machine).
    #[arg(long, env = "BOSUN_LOCAL_THREADS")]
    pub local_threads: Option<u32>,
    /// --local: context size in tokens.
    #[arg(long, default_value_t = 8192, env = "BOSUN_LOCAL_CTX")]
    pub local_ctx: u32,
    /// --local: chat template, a Jinja FILE, `gguf` (the model's own) or `auto` (bosun's
    /// fenced-JSON template for Qwen2.5-Coder, the model's own otherwise).
    #[arg(long, default_value = "auto", value_name = "FILE|gguf|auto")]
    pub local_template: String,
    /// --local: which llama.cpp server to run.
    #[arg(long, value_enum, default_value = "auto", env = "BOSUN_LOCAL_ENGINE")]
    pub local_engine: super::local::Engine,
}

/// `--mode apply|suggest|read-only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Apply,
    Suggest,
    ReadOnly,
}

impl From<ModeArg> for bosun::scope::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Apply => Self::Apply,
            ModeArg::ReadOnly => Self::ReadOnly,
            ModeArg::Suggest => Self::Suggest,
        }
    }
}

/// The task's scope from `-n/--namespace` and `--context`. With only a namespace, the context
/// is the kubeconfig's current one, so writes cannot escape to another cluster by naming one.
pub fn task_scope(args: &RunArgs) -> Option<bosun::scope::TaskScope> {
    bosun::scope::task_scope(
        args.kubeconfig.as_deref(),
        args.context.clone(),
        args.namespace.clone(),
    )
}

/// The task's mode and scope, when not the defaults, as one line for the terminal.
pub fn scope_line(rt: &Runtime) -> Option<String> {
    let g = &rt.guard_config;
    let mut parts = Vec::new();
    match g.mode {
        bosun::scope::Mode::Apply => {}
        bosun::scope::Mode::ReadOnly => parts.push(format!(
            "mode {} (only reads are offered and admitted)",
            g.mode
        )),
        bosun::scope::Mode::Suggest => parts.push(format!(
            "mode {} (reads and dry-runs run; changes are recorded as a proposal, never applied)",
            g.mode
        )),
    }
    if let Some(s) = g.scope.as_ref().filter(|s| !s.is_empty()) {
        parts.push(format!(
            "scoped to {s} (dry-runs and changes elsewhere are refused)"
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `--shim on|off|auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShimMode {
    On,
    Off,
    Auto,
}

impl ShimMode {
    fn setting(self) -> Option<bool> {
        match self {
            Self::On => Some(true),
            Self::Off => Some(false),
            Self::Auto => None,
        }
    }
}

/// The text sent when a session is resumed without a new task.
pub const RESUME_TEXT: &str = "The session was resumed after an interruption. Continue the task from where it stopped; check the current state before changing anything.";

/// The approver from --approve / --yes.
pub fn approver(args: &RunArgs) -> anyhow::Result<Arc<dyn bosun::guard::Approver>> {
    use bosun::policy::Environment;
    let mut envs: Vec<Environment> = Vec::new();
    if args.yes || args.skip_permissions {
        envs.extend([Environment::Dev, Environment::Tier]);
    }
    for a in &args.approve {
        let list = a.strip_prefix("env=").ok_or_else(|| {
            anyhow::anyhow!("--approve takes env=ENV[,ENV] (dev, tier, prod), got `{a}`")
        })?;
        for e in list.split(',').filter(|e| !e.is_empty()) {
            let env = match e.trim() {
                "dev" => Environment::Dev,
                "tier" => Environment::Tier,
                "prod" => Environment::Prod,
                other => anyhow::bail!(
                    "unknown environment `{other}` in --approve; use dev, tier or prod"
                ),
            };
            if !envs.contains(&env) {
                envs.push(env);
            }
        }
    }
    if envs.is_empty() {
        return Ok(Arc::new(bosun::guard::NoApprover));
    }
    Ok(Arc::new(bosun::guard::PolicyApprover {
        environments: envs,
        others: args.yes || args.skip_permissions,
        who: "command-line policy".into(),
    }))
}

/// `$XDG_STATE_HOME/bosun/<what>` or `~/.local/state/bosun/<what>`.
pub fn state_dir(what: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("bosun").join(what)
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
/// Connects the MCP servers the agent lists (their tools join the registry, behind the guard).
pub async fn build_runtime(dir: &Path, args: &RunArgs) -> anyhow::Result<Arc<Runtime>> {
    let (agent, model, opts) = runtime_parts(dir, args).await?;
    let (rt, warnings) = Runtime::new(agent, model, opts)?;
    for w in &warnings {
        tracing::info!("{w}");
    }
    Ok(Arc::new(rt))
}

/// What [`build_runtime`] builds a runtime from: the loaded agent, the model client and the
/// options (`bosun serve` builds one runtime per mode and scope from them).
pub async fn runtime_parts(
    dir: &Path,
    args: &RunArgs,
) -> anyhow::Result<(Agent, Arc<dyn bosun::model::ModelClient>, RuntimeOptions)> {
    let loaded = match Agent::load(dir) {
        Ok(l) => l,
        Err(d) => anyhow::bail!("{d}\nfix the agent definition (see `bosun validate`)"),
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut cfg = config::resolve(
        &ModelOverrides {
            base_url: args.base_url.clone(),
            api_key: args.api_key.clone(),
            model: args.model.clone(),
            stream: args.stream.then_some(true),
            shim: args.shim.map(ShimMode::setting),
        },
        &cwd,
        loaded.agent.def.model.as_deref(),
    )?;
    if args.local.is_some() {
        // small CPU models: greedy decoding, a cap on runaway answers, patience for cold turns
        cfg.temperature.get_or_insert(0.0);
        cfg.max_tokens.get_or_insert(1024);
        if cfg.timeout_secs == config::ModelConfig::default().timeout_secs {
            cfg.timeout_secs = 600;
        }
    }
    tracing::info!(shim = cfg.shim_enabled(), model = %cfg.model, "model configuration");
    let model = OpenAiClient::new(&cfg)?;
    // one redactor for the runtime; the vault resolver registers every value it resolves in it
    let redactor = Arc::new(bosun::redact::Redactor::new());
    let secrets = bosun::tools::vault::VaultResolver::from_env(redactor.clone())
        .map(|r| Arc::new(r) as Arc<dyn bosun::secrets::SecretResolver>);
    let mcp = bosun::mcp::client::connect(&loaded.agent).await?;
    for w in &mcp.warnings {
        tracing::warn!("{w}");
    }
    let opts = RuntimeOptions {
        kube: KubeTarget {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        },
        max_turns: args.max_turns,
        max_turns_per_state: args.max_turns_per_state,
        loop_limit: args.loop_limit,
        guard: bosun::guard::GuardConfig {
            approver: approver(args)?,
            mode: args.mode.into(),
            scope: task_scope(args),
            ..Default::default()
        },
        audit_dir: Some(args.audit_dir.clone().unwrap_or_else(|| state_dir("audit"))),
        sessions_dir: Some(
            args.sessions_dir
                .clone()
                .unwrap_or_else(|| state_dir("sessions")),
        ),
        proposal_dir: args.proposal_dir.clone(),
        secrets,
        redactor: Some(redactor),
        extra_tools: mcp.tools,
        ..Default::default()
    };
    Ok((loaded.agent, Arc::new(model), opts))
}

/// Tools that talk to a Kubernetes cluster.
pub const KUBE_TOOLS: &[&str] = &["kubectl", "flux", "blocks", "helm"];

/// Before the first model call: when the agent offers a Kubernetes tool, the kubeconfig must be
/// readable, the context must exist and the API server must answer — else a usage error (exit 2)
/// instead of a run whose every tool call fails.
pub async fn preflight(rt: &Runtime, args: &RunArgs) -> anyhow::Result<()> {
    preflight_tools(rt.specs.iter().map(|s| s.name.as_str()), args).await
}

/// [`preflight`] for an agent offering the tools `offered`.
async fn preflight_tools<'a>(
    mut offered: impl Iterator<Item = &'a str>,
    args: &RunArgs,
) -> anyhow::Result<()> {
    let Some(tool) = offered.find(|t| KUBE_TOOLS.contains(t)) else {
        return Ok(());
    };
    let target = KubeTarget {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    match bosun::kube_client::preflight(&target, Duration::from_secs(10)).await {
        Ok(context) => {
            tracing::info!(%context, "preflight: the cluster answers");
            Ok(())
        }
        Err(e) => anyhow::bail!(
            "{e}\n(checked before asking the model, because the agent offers `{tool}`)"
        ),
    }
}

pub async fn run(dir: &Path, mut args: RunArgs) -> anyhow::Result<ExitCode> {
    let task = match (&args.resume, read_task(&args)) {
        (_, Ok(t)) => t,
        (Some(_), Err(_)) => RESUME_TEXT.to_string(),
        (None, Err(e)) => return Err(e),
    };
    let outputs = Outputs {
        report: args.report.clone(),
        trace: args.trace_path.clone(),
    };
    let Some(model) = args.local.clone() else {
        let rt = match build_runtime(dir, &args).await {
            Ok(rt) => match preflight(&rt, &args).await {
                Ok(()) => rt,
                Err(e) => {
                    eprintln!("bosun: {e:#}");
                    return Ok(ExitCode::from(exit::USAGE));
                }
            },
            Err(e) => {
                eprintln!("bosun: {e:#}");
                return Ok(ExitCode::from(exit::USAGE));
            }
        };
        return run_task(
            rt,
            &task,
            args.output,
            args.quiet,
            args.resume.as_deref(),
            &outputs,
        )
        .await;
    };
    // --local: the cluster is checked before a model server is started for nothing
    let checked = match Agent::load(dir) {
        Ok(l) => preflight_tools(l.agent.def.tools.iter().map(String::as_str), &args).await,
        Err(d) => Err(anyhow::anyhow!(
            "{d}\nfix the agent definition (see `bosun validate`)"
        )),
    };
    if let Err(e) = checked {
        eprintln!("bosun: {e:#}");
        return Ok(ExitCode::from(exit::USAGE));
    }
    // --local: the server lives exactly as long as this function; Drop stops it on every path
    let opts = ServerOpts {
        threads: args.local_threads,
        ctx: args.local_ctx,
        template: args.local_template.clone(),
        engine: args.local_engine,
    };
    let started = Instant::now();
    let mut server = match bosun::sandbox::process::free_port()
        .map_err(anyhow::Error::from)
        .and_then(|port| LocalServer::start(&model, port, &opts, Log::File))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bosun: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    tokio::select! {
        r = server.wait_healthy(Duration::from_secs(300)) => if let Err(e) = r {
            eprintln!("bosun: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        },
        _ = stop_signal() => {
            server.stop();
            eprintln!("bosun: interrupted; the local server was stopped");
            return Ok(ExitCode::from(INTERRUPTED));
        }
    }
    if !args.quiet && args.output == OutputFormat::Text {
        eprintln!(
            "local model: {} ({}, template {}) ready at {} in {:.1}s",
            model.display(),
            server.model,
            server.template,
            server.base_url,
            started.elapsed().as_secs_f32()
        );
    }
    args.base_url = Some(server.base_url.clone());
    if args.model.is_none() {
        args.model = Some(server.model.clone());
    }
    let rt = match build_runtime(dir, &args).await {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bosun: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let code = tokio::select! {
        r = run_task(rt, &task, args.output, args.quiet, args.resume.as_deref(), &outputs) => r,
        _ = stop_signal() => {
            eprintln!("bosun: interrupted; stopping the local server");
            Ok(ExitCode::from(INTERRUPTED))
        }
    };
    server.stop();
    code
}

/// Where a run writes besides stdout/stderr.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// `--report FILE.md|FILE.json`.
    pub report: Option<PathBuf>,
    /// `--trace-path FILE`: the event stream as JSON lines.
    pub trace: Option<PathBuf>,
}

/// Exit code after Ctrl-C / SIGTERM (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

/// Run `task` on `rt`, rendering events in `format`. Shared by `run` and `demo`.
pub async fn run_task(
    rt: Arc<Runtime>,
    task: &str,
    format: OutputFormat,
    quiet: bool,
    resume: Option<&str>,
    outputs: &Outputs,
) -> anyhow::Result<ExitCode> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let trace = match &outputs.trace {
        Some(p) => Some(
            std::fs::File::create(p)
                .with_context(|| format!("creating the trace file {}", p.display()))?,
        ),
        None => None,
    };
    let renderer = tokio::spawn(render::render(rx, format, quiet, trace));
    let agent = rt.agent.def.id.clone();
    let model = rt.model.model_name().to_string();
    let session_rt = rt.clone();
    let mut session = match resume {
        Some(id) => Session::resume(rt, tx, id)?,
        None => Session::new(rt, tx)?,
    };
    if format == OutputFormat::Text && !quiet {
        eprintln!("session {}", session.id());
        if let Some(line) = scope_line(&session_rt) {
            eprintln!("{line}");
        }
    }
    let audit = session.audit_path().map(|p| p.display().to_string());
    let session_id = session.id().to_string();
    // Ctrl-C / SIGTERM: the session stops at its next safe point (a running read or dry-run is
    // cancelled; a running change finishes and is recorded), so the report below still lists
    // what changed; a second one exits now
    let interrupter = session.interrupter();
    let watcher = tokio::spawn(async move {
        stop_signal().await;
        eprintln!("bosun: interrupted; a running read stops now, a running change finishes first (Ctrl-C again to quit now)");
        interrupter.trigger();
        stop_signal().await;
        std::process::exit(i32::from(INTERRUPTED));
    });
    let result = session.run_task(task).await;
    watcher.abort();
    drop(session); // closes the event channel
    let _ = renderer.await;
    if let (Some(a), OutputFormat::Text, false) = (&audit, format, quiet) {
        eprintln!("audit log: {a}");
    }
    if let (Ok(o), OutputFormat::Text) = (&result, format) {
        if let Some(dir) = &o.proposal_dir {
            eprintln!(
                "proposal: {} change(s) in {} — review, then `bosun apply {}`",
                o.proposed.len(),
                dir.display(),
                dir.display()
            );
        }
    }
    let mut report =
        report::Report::new(task, &session_id, &agent, &model, audit.as_deref(), &result);
    report.read_access_points(&session_rt.kube).await;
    if let Some(path) = &outputs.report {
        report.write(path)?;
        if format == OutputFormat::Text && !quiet {
            eprintln!("report: {}", path.display());
        }
    }
    if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    match result {
        Ok(outcome) if outcome.status == bosun::session::TaskStatus::NeedsApproval => {
            if format == OutputFormat::Text {
                eprintln!(
                    "bosun: {} change(s) were stopped by the guard or are waiting for approval (exit 3)",
                    outcome.blocked.len()
                );
                for d in &outcome.blocked {
                    if let Some(diff) = &d.diff {
                        eprintln!(
                            "  {}.{} {} — what it would change:\n{}",
                            d.tool,
                            d.operation.as_deref().unwrap_or("?"),
                            d.target.as_deref().unwrap_or(""),
                            bosun::term::printable(diff)
                        );
                    }
                }
            }
            Ok(ExitCode::from(exit::STOPPED))
        }
        Ok(outcome) if outcome.status == bosun::session::TaskStatus::Failed => {
            if format == OutputFormat::Text {
                eprintln!("bosun: the task failed: {} (exit 1)", outcome.verdict);
            }
            Ok(ExitCode::from(exit::TASK_FAILED))
        }
        Ok(_) => Ok(ExitCode::from(exit::SUCCESS)),
        Err(bosun::session::SessionError::Interrupted) => Ok(ExitCode::from(INTERRUPTED)),
        Err(e) => {
            if format == OutputFormat::Text {
                eprintln!(
                    "bosun: task failed: {}",
                    bosun::term::printable(&e.to_string())
                );
            }
            Ok(ExitCode::from(exit::TASK_FAILED))
        }
    }
}
