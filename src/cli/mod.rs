//! Command-line parsing and dispatch.

mod apply;
mod chat;
mod demo;
mod eval;
mod local;
mod mcp;
mod render;
mod report;
mod run;
mod sandbox_cmd;
mod serve;
mod validate;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes (documented in README.md).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    pub const TASK_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const STOPPED: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(name = "bosun", version, about = "A guarded infrastructure-engineer agent runtime", long_about = None)]
pub struct Cli {
    /// Agent directory (holds agent.md, skills/, tools/, prompts/).
    #[arg(long, global = true, env = "BOSUN_AGENT_DIR", default_value = ".")]
    pub agent: PathBuf,
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Check agent.md, skills/, tools/ and prompts/; exit 1 with file:line:col on errors.
    Validate,
    /// Run one task to its final answer.
    Run(Box<run::RunArgs>),
    /// Apply a change proposal written by `run --mode suggest`: each change is dry-run again
    /// (same fingerprint, else refused), approved as the policy says, and applied through the
    /// guard — no model involved.
    Apply(Box<apply::ApplyArgs>),
    /// The interactive REPL (same flags as run; an optional first message).
    Chat(Box<run::RunArgs>),
    /// Serve the agent over MCP (stdio, or streamable HTTP with --listen): the tool
    /// `run_<agent id>` (task → report) and, with --expose-tools, the guarded tools themselves.
    Mcp(Box<mcp::McpArgs>),
    /// Serve the agent over HTTP: a JSON API (sessions, events as SSE, approvals by
    /// fingerprint; /openapi.json) and an approvals inbox in the browser.
    Serve(Box<serve::ServeArgs>),
    /// Show the tools the model sees.
    Tools {
        /// Print the JSON schemas exactly as sent to the model.
        #[arg(long)]
        json: bool,
        /// Print the full built-in manifest of tool NAME (YAML), to copy into tools/NAME.yaml
        /// and tighten.
        #[arg(long, value_name = "NAME", conflicts_with = "json")]
        manifest: Option<String>,
    },
    /// Scaffold an agent directory from the built-in defaults: agent.md (the seed), policy.yaml,
    /// prompts/, skills/, tools/. Never overwrites a file.
    Init {
        /// Where (created if missing).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// A throwaway local platform: etcd, kube-apiserver, OpenBao, a GitOps remote.
    Sandbox {
        #[command(subcommand)]
        cmd: sandbox_cmd::SandboxCmd,
        /// State directory (default: $BOSUN_SANDBOX_DIR or ~/.local/state/bosun/sandbox).
        #[arg(long, global = true)]
        dir: Option<PathBuf>,
    },
    /// Serve a scripted OpenAI-compatible model (for tests, evals and demos).
    ScriptedModel {
        /// The script (YAML; see `bosun::scripted`).
        #[arg(long)]
        script: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Saved sessions.
    Sessions {
        #[command(subcommand)]
        cmd: SessionsCmd,
        /// Sessions directory (default: ~/.local/state/bosun/sessions).
        #[arg(long, global = true)]
        dir: Option<PathBuf>,
    },
    /// Serve a local GGUF model with llama.cpp for bosun (xllamacpp or llama-server).
    Local {
        #[command(subcommand)]
        cmd: local::LocalCmd,
    },
    /// Run the eval task suite (evals/tasks) on the sandbox with a scripted or a real model;
    /// prints Pass@1, Pass@k and Pass^k and writes results.json and results.md.
    Eval(Box<eval::EvalArgs>),
    /// Try bosun with no API key: sandbox + scripted model + a sample task.
    Demo {
        /// Leave the sandbox running afterwards.
        #[arg(long)]
        keep: bool,
        /// Answer with a real local model instead of the scripted replay: a GGUF path, or
        /// without a value the one scripts/install-local-model.sh installs.
        #[arg(long, value_name = "PATH.gguf", num_args = 0..=1, default_missing_value = "auto")]
        local: Option<PathBuf>,
    },
    /// Print a shell completion script, e.g. `bosun completions bash > ~/.local/share/bash-completion/completions/bosun`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `bosun man > bosun.1 && man ./bosun.1`.
    Man,
    /// Print the version (as --version does).
    Version,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// List saved sessions, newest first.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Jsonl,
}

/// Logs on stderr; with `OTEL_EXPORTER_OTLP_ENDPOINT` set, bosun's spans also go out over OTLP
/// (the returned handle flushes them at exit).
pub fn init_tracing(verbose: u8) -> Option<bosun::telemetry::Telemetry> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let default = match verbose {
        // rmcp warns about errors it answers on purpose (e.g. a protocol revision it does not offer)
        0 => "warn,rmcp=error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // the filter is the log's own: spans it leaves out are not shown as log context either
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        // no escape codes in pipes or with NO_COLOR
        .with_ansi(render::color())
        .with_filter(filter);
    let (otel, telemetry) = match bosun::telemetry::otlp_layer() {
        Ok(Some((layer, t))) => (Some(layer), Some(t)),
        Ok(None) => (None, None),
        Err(e) => {
            eprintln!("bosun: {e}; traces are not exported");
            (None, None)
        }
    };
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    telemetry
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Validate => validate::validate(&cli.agent).await,
        Cmd::Tools {
            manifest: Some(name),
            ..
        } => validate::manifest(&name),
        Cmd::Tools { json, .. } => validate::tools(&cli.agent, json).await,
        Cmd::Init { dir } => validate::init(&dir),
        Cmd::Run(args) => run::run(&cli.agent, *args).await,
        Cmd::Chat(args) => chat::chat(&cli.agent, *args).await,
        Cmd::Apply(args) => apply::apply(&cli.agent, *args).await,
        Cmd::Mcp(args) => mcp::mcp(&cli.agent, *args).await,
        Cmd::Serve(args) => serve::serve(&cli.agent, *args).await,
        Cmd::Sandbox { cmd, dir } => sandbox_cmd::sandbox(cmd, dir).await,
        Cmd::ScriptedModel { script, listen } => {
            let s = bosun::scripted::Script::load(&script)?;
            let server = bosun::scripted::ScriptedServer::start_on(s, &listen).await?;
            println!("{}", server.base_url());
            eprintln!(
                "scripted model serving {} turns at {} (Ctrl-C to stop)",
                server.turns_total(),
                server.base_url()
            );
            tokio::signal::ctrl_c().await?;
            let failures = server.failures();
            for f in &failures {
                eprintln!("{f}");
            }
            Ok(ExitCode::from(if failures.is_empty() {
                exit::SUCCESS
            } else {
                exit::TASK_FAILED
            }))
        }
        Cmd::Eval(args) => eval::eval(&cli.agent, *args).await,
        Cmd::Demo { keep, local } => demo::demo(&cli.agent, keep, local).await,
        Cmd::Sessions {
            cmd: SessionsCmd::List { json },
            dir,
        } => {
            let dir = dir.unwrap_or_else(|| run::state_dir("sessions"));
            let list = bosun::store::list(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                eprintln!("no saved sessions in {}", dir.display());
            } else {
                println!(
                    "{:<26}  {:<14} {:<12} {:>4}  TASK",
                    "SESSION", "OUTCOME", "STATE", "MSGS"
                );
                for s in list {
                    println!(
                        "{:<26}  {:<14} {:<12} {:>4}  {}",
                        s.id,
                        s.outcome.as_deref().unwrap_or("-"),
                        s.state,
                        s.messages,
                        bosun::term::printable(&s.task.chars().take(80).collect::<String>())
                    );
                }
            }
            Ok(ExitCode::from(exit::SUCCESS))
        }
        Cmd::Local { cmd } => local::local(cmd).await,
        Cmd::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "bosun", &mut std::io::stdout());
            Ok(ExitCode::from(exit::SUCCESS))
        }
        Cmd::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
            Ok(ExitCode::from(exit::SUCCESS))
        }
        Cmd::Version => {
            print!("{}", Cli::command().render_version());
            Ok(ExitCode::from(exit::SUCCESS))
        }
    }
}
