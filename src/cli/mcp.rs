//! `bosun mcp`: the agent as an MCP server, over stdio or streamable HTTP.

use super::{exit, run};
use bosun::mcp::server::{self, ServeOptions};
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("task", |a| a.hide(true)),
    mut_arg("output", |a| a.hide(true)),
    mut_arg("quiet", |a| a.hide(true)),
    mut_arg("resume", |a| a.hide(true))
)]
pub struct McpArgs {
    /// Serve streamable HTTP at http://ADDR/mcp (e.g. 127.0.0.1:8765; port 0 picks one and
    /// prints the URL) instead of stdio. A non-loopback address needs a token.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// With --listen: a file holding the bearer token every request must send
    /// (`Authorization: Bearer …`). The environment variable BOSUN_MCP_TOKEN works too.
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub token_file: Option<std::path::PathBuf>,
    /// Also offer the agent's tools themselves, annotated from their effect classes. Direct
    /// calls pass the same guard (one per connection): dry-run before apply, policy, approvals.
    #[arg(long)]
    pub expose_tools: bool,
    /// Model, cluster and approval flags, as for `bosun run` (no task: callers send tasks).
    #[command(flatten)]
    pub run: run::RunArgs,
}

pub async fn mcp(dir: &Path, args: McpArgs) -> anyhow::Result<ExitCode> {
    if !args.run.task.is_empty() || args.run.resume.is_some() {
        eprintln!(
            "bosun mcp takes no task and no --resume: callers send tasks with the run_<agent> tool"
        );
        return Ok(ExitCode::from(exit::USAGE));
    }
    if args.expose_tools && args.run.mode == run::ModeArg::Suggest {
        eprintln!(
            "bosun mcp: --expose-tools cannot be combined with --mode suggest: a direct tool call has no session to record a proposal in; callers use the run_<agent> tool in suggest mode"
        );
        return Ok(ExitCode::from(exit::USAGE));
    }
    // many sessions share one server: each writes its own proposal under --proposal-dir
    let mut args = args;
    if let Some(d) = &args.run.proposal_dir {
        if !d.to_string_lossy().contains("{session}") {
            args.run.proposal_dir = Some(d.join("{session}"));
        }
    }
    let rt = match run::build_runtime(dir, &args.run).await {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bosun: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let opts = ServeOptions {
        expose_tools: args.expose_tools,
    };
    let tool = bosun::mcp::run_tool_name(&rt.agent.def.id);
    match &args.listen {
        None => {
            if let Err(e) = run::preflight(&rt, &args.run).await {
                eprintln!("bosun: {e:#}");
                return Ok(ExitCode::from(exit::USAGE));
            }
            eprintln!(
                "bosun mcp: serving agent `{}` on stdio (tool {tool}{})",
                rt.agent.def.id,
                if opts.expose_tools {
                    " and the guarded tools"
                } else {
                    ""
                }
            );
            server::serve_stdio(rt, opts).await?;
        }
        Some(addr) => {
            let token =
                match bosun::auth::load_token(args.token_file.as_deref(), "BOSUN_MCP_TOKEN", "MCP")
                    .and_then(|t| {
                        bosun::auth::check_listen("MCP", addr, t.as_deref(), "BOSUN_MCP_TOKEN")?;
                        Ok(t)
                    }) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("bosun: {e}");
                        return Ok(ExitCode::from(exit::USAGE));
                    }
                };
            if let Err(e) = run::preflight(&rt, &args.run).await {
                eprintln!("bosun: {e:#}");
                return Ok(ExitCode::from(exit::USAGE));
            }
            let s = server::serve_http(rt.clone(), opts, addr, token).await?;
            println!("{}", s.url());
            eprintln!(
                "bosun mcp: serving agent `{}` at {} (tool {tool}); Ctrl-C to stop",
                rt.agent.def.id,
                s.url()
            );
            wait_for_stop().await;
            s.shutdown().await;
        }
    }
    Ok(ExitCode::from(exit::SUCCESS))
}

pub async fn wait_for_stop() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
