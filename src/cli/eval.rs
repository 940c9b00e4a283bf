//! `bosun eval`: run the task suite on the sandbox and print Pass@1 / Pass@k / Pass^k.

use super::{exit, sandbox_cmd};
use bosun::eval::{self, score, EvalOptions, ModelChoice, Progress};
use bosun::sandbox;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Only tasks whose folder name matches (glob: `*`, `?`; several separated by commas).
    #[arg(long, value_name = "GLOB")]
    pub tasks: Option<String>,
    /// Runs per task (Pass@k and Pass^k need more than one).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub runs: u32,
    /// k of Pass@k and Pass^k (default: --runs).
    #[arg(long, value_name = "K")]
    pub k: Option<u32>,
    /// Replay each task's scripted transcript (scripted.yaml) instead of asking a model: runs
    /// the runtime, tools and verifiers deterministically, with no API key.
    #[arg(long, conflicts_with_all = ["model", "base_url", "model_timeout"])]
    pub scripted: bool,
    /// Model name for a real-model run [env: BOSUN_MODEL].
    #[arg(long)]
    pub model: Option<String>,
    /// OpenAI-compatible base URL for a real-model run, e.g. http://127.0.0.1:8080/v1
    /// [env: OPENAI_BASE_URL].
    #[arg(long)]
    pub base_url: Option<String>,
    /// Seconds to wait for one model answer (default: the configured timeout_secs, 120; a local
    /// model on a small CPU may need 600).
    #[arg(long, value_name = "SECS")]
    pub model_timeout: Option<u64>,
    /// Seconds the agent may take per task, overriding each task's `timeout`.
    #[arg(long, value_name = "SECS")]
    pub task_timeout: Option<u64>,
    /// API key [env: OPENAI_API_KEY].
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The task suite: a folder of task folders (default: evals/tasks in the agent directory).
    #[arg(long, value_name = "DIR")]
    pub suite: Option<PathBuf>,
    /// Runs at the same time.
    #[arg(long, short = 'j', default_value_t = 2)]
    pub jobs: usize,
    /// Where runs and results are written (default: $XDG_STATE_HOME/bosun/evals/<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Do not run the verifier before the agent (it normally must fail there).
    #[arg(long)]
    pub no_precheck: bool,
    /// The sandbox to use (default: the running one in the default directory, else a new one
    /// that is stopped afterwards).
    #[arg(long, env = "BOSUN_SANDBOX_DIR", value_name = "DIR")]
    pub sandbox_dir: Option<PathBuf>,
    /// Leave a sandbox started by this command running.
    #[arg(long)]
    pub keep: bool,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

fn model_choice(args: &EvalArgs, agent_dir: &Path) -> anyhow::Result<ModelChoice> {
    if args.scripted {
        return Ok(ModelChoice::Scripted);
    }
    let cwd = std::env::current_dir()?;
    let agent_model = bosun::agent::Agent::load(agent_dir)
        .ok()
        .and_then(|l| l.agent.def.model.clone());
    let mut cfg = bosun::config::resolve(
        &bosun::config::ModelOverrides {
            base_url: args.base_url.clone(),
            api_key: args.api_key.clone(),
            model: args.model.clone(),
            ..Default::default()
        },
        &cwd,
        agent_model.as_deref(),
    )?;
    if let Some(t) = args.model_timeout {
        cfg.timeout_secs = t.max(1);
    }
    if cfg.base_url.is_none() {
        anyhow::bail!(
            "no model to evaluate: pass --scripted (the stored transcripts, no API key), or --base-url URL --model NAME for an OpenAI-compatible endpoint (or set OPENAI_BASE_URL)"
        );
    }
    Ok(ModelChoice::Endpoint(cfg))
}

/// The first `max` characters of `s` on one line.
fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    format!("{}…", flat.chars().take(max).collect::<String>())
}

pub async fn eval(agent_dir: &Path, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let model = match model_choice(&args, agent_dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("bosun: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let suite = args
        .suite
        .clone()
        .unwrap_or_else(|| agent_dir.join("evals/tasks"));
    let tasks = match eval::task::discover(&suite, args.tasks.as_deref()) {
        Ok(t) if t.is_empty() => {
            eprintln!(
                "bosun: {}",
                eval::EvalError::NoTasks(
                    args.tasks.clone().unwrap_or_else(|| "*".into()),
                    suite.display().to_string()
                )
            );
            return Ok(ExitCode::from(exit::USAGE));
        }
        Ok(t) => t,
        Err(e) => {
            eprintln!("bosun: {e}\nfix the task definition (see evals/README.md)");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let bosun_bin = std::env::current_exe()?;
    let agent_dir = std::fs::canonicalize(agent_dir).unwrap_or_else(|_| agent_dir.to_path_buf());
    let out_dir = args.out.clone().unwrap_or_else(|| {
        super::run::state_dir("evals")
            .join(jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string())
    });
    let dir = args
        .sandbox_dir
        .clone()
        .unwrap_or_else(sandbox::default_dir);
    let (state, started_here) = match sandbox::load_state(&dir)? {
        Some(st) if st.all_alive() => (st, false),
        _ => {
            eprintln!("starting a sandbox in {} …", dir.display());
            let st = sandbox_cmd::up_with_kubelet(&dir).await?;
            (st, true)
        }
    };
    let label = model.label();
    eprintln!(
        "evaluating {} task(s) × {} run(s) with {label}; runs in {}",
        tasks.len(),
        args.runs.max(1),
        out_dir.display()
    );
    let opts = Arc::new(EvalOptions {
        agent_dir,
        bosun_bin,
        sandbox: state,
        model,
        runs: args.runs.max(1),
        jobs: args.jobs.max(1),
        out_dir: out_dir.clone(),
        precheck: !args.no_precheck,
        task_timeout: args
            .task_timeout
            .map(|s| std::time::Duration::from_secs(s.max(1))),
    });
    let color = super::render::color();
    let progress: Arc<dyn Fn(Progress) + Send + Sync> = Arc::new(move |p| match p {
        Progress::Started { .. } => {}
        Progress::Finished(r) => {
            let (mark, on, off) = match (r.passed, color) {
                (true, true) => ("✓", "\x1b[32m", "\x1b[0m"),
                (false, true) => ("✗", "\x1b[31m", "\x1b[0m"),
                (true, false) => ("✓", "", ""),
                (false, false) => ("✗", "", ""),
            };
            eprintln!(
                "{on}{mark}{off} {} #{}  {:.1} s, {} turns, {} tool calls, state {}{}",
                r.task,
                r.run,
                r.wall_ms as f64 / 1000.0,
                r.turns,
                r.tool_calls,
                r.final_state.as_deref().unwrap_or("-"),
                if r.passed {
                    String::new()
                } else {
                    format!(
                        "\n    {}\n    files: {}",
                        r.reasons
                            .iter()
                            .map(|x| one_line(x, 240))
                            .collect::<Vec<_>>()
                            .join("\n    "),
                        r.dir.display()
                    )
                }
            );
        }
    });
    let result = tokio::select! {
        r = eval::run_suite(tasks, opts, progress) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    if started_here && !args.keep {
        if let Err(e) = sandbox::down(&dir) {
            eprintln!("bosun: stopping the sandbox: {e}");
        }
    }
    let Some(result) = result else {
        eprintln!(
            "bosun: interrupted; the runs so far are in {}",
            out_dir.display()
        );
        return Ok(ExitCode::from(130));
    };
    let records = result?;
    let k = u64::from(args.k.unwrap_or(args.runs).max(1));
    let summary = score::summarize(&records, k);
    let (json, md) = eval::write_results(&out_dir, &records, &summary, &label)?;
    if args.json {
        println!("{}", std::fs::read_to_string(&json)?);
    } else {
        println!("{}", score::markdown(&summary, &label));
    }
    eprintln!(
        "Pass@1 {:.2}  Pass@{k} {:.2}  Pass^{k} {:.2}  ({} of {} runs passed)\nresults: {}\n         {}",
        summary.pass_at_1,
        summary.pass_at_k,
        summary.pass_hat_k,
        summary.passes,
        summary.runs,
        json.display(),
        md.display()
    );
    Ok(ExitCode::from(if summary.passes == summary.runs {
        exit::SUCCESS
    } else {
        exit::TASK_FAILED
    }))
}
