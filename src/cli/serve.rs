//! `bosun serve`: the HTTP API and the approvals inbox (`bosun::server`).

use super::{exit, mcp::wait_for_stop, run};
use bosun::server::{self, Runtimes, ServerConfig};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("task", |a| a.hide(true)),
    mut_arg("output", |a| a.hide(true)),
    mut_arg("quiet", |a| a.hide(true)),
    mut_arg("resume", |a| a.hide(true)),
    mut_arg("report", |a| a.hide(true)),
    mut_arg("trace_path", |a| a.hide(true)),
    mut_arg("approve", |a| a.hide(true)),
    mut_arg("yes", |a| a.hide(true)),
    mut_arg("local", |a| a.hide(true))
)]
pub struct ServeArgs {
    /// Listen on ADDR (port 0 picks one; the URL is printed). A non-loopback address needs a
    /// token.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// A file holding the bearer token every request must send (`Authorization: Bearer …`;
    /// the inbox signs in with it). The environment variable BOSUN_SERVE_TOKEN works too.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Sessions running at once; one more is answered 429.
    #[arg(long, default_value_t = 64)]
    pub max_sessions: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_body: usize,
    /// Sessions kept in memory, running or ended (the oldest ended ones are forgotten first).
    #[arg(long, default_value_t = 1000)]
    pub keep_sessions: usize,
    /// Model and cluster flags, as for `bosun run`; --mode, --namespace and --context are the
    /// defaults of a session that names none. Approvals come from the API or the inbox.
    #[command(flatten)]
    pub run: run::RunArgs,
}

pub async fn serve(dir: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let r = &args.run;
    if !r.task.is_empty() || r.resume.is_some() || r.local.is_some() {
        eprintln!("bosun serve takes no task, --resume or --local: callers start sessions with POST /v1/sessions");
        return Ok(ExitCode::from(exit::USAGE));
    }
    if r.yes || r.skip_permissions || !r.approve.is_empty() {
        eprintln!("bosun serve takes no --yes/--approve: approvals are answered by fingerprint through the API or the inbox");
        return Ok(ExitCode::from(exit::USAGE));
    }
    let token = match bosun::auth::load_token(
        args.token_file.as_deref(),
        "BOSUN_SERVE_TOKEN",
        "bosun serve",
    )
    .and_then(|t| {
        bosun::auth::check_listen(
            "the bosun API",
            &args.listen,
            t.as_deref(),
            "BOSUN_SERVE_TOKEN",
        )?;
        Ok(t)
    }) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bosun: {e}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let (agent, model, opts) = match run::runtime_parts(dir, r).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bosun: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let runtimes = Arc::new(Runtimes::new(agent, model, opts));
    // the preflight on the default runtime: a server whose every session would fail says so now
    match runtimes.get(&runtimes.default_spec()) {
        Ok(rt) => {
            if let Err(e) = run::preflight(&rt, r).await {
                eprintln!("bosun: {e:#}");
                return Ok(ExitCode::from(exit::USAGE));
            }
        }
        Err(e) => {
            eprintln!("bosun: {e}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    }
    let cfg = ServerConfig {
        listen: args.listen.clone(),
        token,
        max_sessions: args.max_sessions,
        max_body: args.max_body,
        keep_sessions: args.keep_sessions,
    };
    let s = server::serve(runtimes.clone(), cfg).await?;
    println!("{}", s.url());
    eprintln!(
        "bosun serve: agent `{}` at {} (API /v1/sessions, OpenAPI /openapi.json, inbox /); Ctrl-C to stop",
        runtimes.agent_id(),
        s.url()
    );
    wait_for_stop().await;
    s.shutdown().await;
    Ok(ExitCode::from(exit::SUCCESS))
}
