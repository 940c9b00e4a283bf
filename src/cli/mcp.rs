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
    /// prints the URL) instead of stdio. There is no authentication: keep it on loopback.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
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
            let s = server::serve_http(rt.clone(), opts, addr).await?;
            if !s.addr().ip().is_loopback() {
                eprintln!("bosun mcp: warning: listening on {} — bosun mcp has no authentication, and only loopback Host headers are accepted; put an authenticating proxy in front", s.addr());
            }
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

async fn wait_for_stop() {
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
