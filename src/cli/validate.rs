//! `bosun validate`, `bosun tools` (and `--manifest`), `bosun init`.

use super::exit;
use bosun::agent::Agent;
use bosun::diag::Diagnostic;
use bosun::kube_client::KubeTarget;
use bosun::tools::{self, Registry};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

/// Everything `validate` checks, without a model: returns the registry and the diagnostics.
fn check(dir: &Path) -> (Option<(Agent, Registry, String)>, Vec<Diagnostic>) {
    let loaded = match Agent::load(dir) {
        Ok(l) => l,
        Err(d) => return (None, d.0),
    };
    let mut diags = loaded.warnings;
    let agent = loaded.agent;
    let impls = tools::implementations(&agent, &KubeTarget::default());
    let registry = match Registry::build(&agent, impls) {
        Ok((r, w)) => {
            diags.extend(w);
            r
        }
        Err(d) => {
            diags.extend(d);
            return (None, diags);
        }
    };
    for spec in registry.specs() {
        for v in tools::schema::violations(&spec.parameters) {
            let path = agent
                .manifest(&spec.name)
                .map(|m| m.path.clone())
                .unwrap_or_default();
            diags.push(Diagnostic::error(
                &path,
                1,
                1,
                format!(
                    "schema of `{}` is not acceptable to OpenAI strict mode: {v}",
                    spec.name
                ),
            ));
        }
    }
    match bosun::prompt::render_system(&agent, &registry.prompt_tools(), &BTreeMap::new()) {
        Ok(p) => (Some((agent, registry, p)), diags),
        Err(d) => {
            diags.push(d);
            (None, diags)
        }
    }
}

pub async fn validate(dir: &Path) -> anyhow::Result<ExitCode> {
    let (ok, mut diags) = check(dir);
    // the cluster the Kubernetes tools would use: a warning, not an error (validate checks the
    // definition; `bosun run` refuses to start without a usable cluster)
    if let Some((agent, registry, _)) = &ok {
        if let Some(tool) = registry
            .names()
            .find(|n| super::run::KUBE_TOOLS.contains(n))
        {
            if let Err(e) = bosun::kube_client::preflight(
                &KubeTarget::default(),
                std::time::Duration::from_secs(5),
            )
            .await
            {
                diags.push(Diagnostic::warning(
                    &agent.dir.join("agent.md"),
                    1,
                    1,
                    format!("the agent offers `{tool}`, but its cluster is not usable: {e}; `bosun run` would stop with exit 2"),
                ));
            }
        }
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    for d in &diags {
        eprintln!("{d}");
    }
    match ok {
        Some((agent, registry, prompt)) if errors == 0 => {
            let offered: Vec<&str> = registry.names().collect();
            println!(
                "ok: agent `{}` ({} skills, {} tool manifests; offered to the model: {}); system prompt {} chars; {} warning(s)",
                agent.def.id,
                agent.skills.len(),
                agent.tools.len(),
                offered.join(", "),
                prompt.len(),
                diags.len()
            );
            for m in &agent.def.mcp_servers {
                println!(
                    "mcp server `{}`: {} — its tools would be offered as `{}__<tool>` (not contacted by validate)",
                    m.name,
                    m.describe(),
                    m.name
                );
            }
            Ok(ExitCode::from(exit::SUCCESS))
        }
        _ => {
            eprintln!("{errors} error(s) in {}", dir.display());
            Ok(ExitCode::from(exit::TASK_FAILED))
        }
    }
}

pub async fn tools(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (ok, diags) = check(dir);
    let Some((agent, mut registry, _)) = ok else {
        for d in &diags {
            eprintln!("{d}");
        }
        eprintln!("the agent has errors; run `bosun validate`");
        return Ok(ExitCode::from(exit::USAGE));
    };
    // the agent's MCP servers are contacted: their tools are offered like built-in ones
    if !agent.def.mcp_servers.is_empty() {
        match bosun::mcp::client::connect(&agent).await {
            Ok(connected) => {
                for w in &connected.warnings {
                    eprintln!("bosun: {w}");
                }
                let mut impls = tools::implementations(&agent, &KubeTarget::default());
                impls.extend(connected.tools);
                match Registry::build(&agent, impls) {
                    Ok((r, _)) => registry = r,
                    Err(d) => {
                        for x in d {
                            eprintln!("{x}");
                        }
                        eprintln!("bosun: the MCP servers' tools do not fit the agent; listing the built-in tools only");
                    }
                }
            }
            Err(e) => eprintln!(
                "bosun: {e}; listing the built-in tools only (fix the server, or its entry under mcp_servers: in agent.md)"
            ),
        }
    }
    if json {
        let specs: Vec<serde_json::Value> = registry
            .specs()
            .into_iter()
            .map(|s| {
                serde_json::json!({"type": "function", "function": {
                    "name": s.name, "description": s.description,
                    "parameters": s.parameters, "strict": true}})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&specs)?);
        return Ok(ExitCode::from(exit::SUCCESS));
    }
    for name in registry.names() {
        let Some(r) = registry.get(name) else {
            continue;
        };
        println!("{name} — {}", r.description);
        for (op, effect) in &r.operations {
            let what = r.descriptions.get(op).map_or("", String::as_str);
            println!("    {op:<20} {:<16} {what}", effect.as_str());
        }
    }
    // built-in tools this agent does not list (opt-in ones such as shell and argocd)
    let idle: Vec<&str> = bosun::defaults::manifest_names()
        .filter(|n| registry.get(n).is_none())
        .collect();
    if !idle.is_empty() {
        println!(
            "\nalso built in, not offered (add to agent.md's tools: to offer; `bosun tools --manifest NAME` shows the operations): {}",
            idle.join(", ")
        );
    }
    Ok(ExitCode::from(exit::SUCCESS))
}

/// `bosun tools --manifest NAME`: the compiled-in manifest of a built-in tool, as YAML.
pub fn manifest(name: &str) -> anyhow::Result<ExitCode> {
    match bosun::defaults::manifest_text(name) {
        Some(text) => {
            print!("{text}");
            Ok(ExitCode::from(exit::SUCCESS))
        }
        None => {
            eprintln!(
                "bosun: no built-in tool `{name}`; built-in tools with a manifest: {}",
                bosun::defaults::manifest_names()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(ExitCode::from(exit::USAGE))
        }
    }
}

/// `bosun init [DIR]`: the built-in defaults written out as an agent directory.
pub fn init(dir: &Path) -> anyhow::Result<ExitCode> {
    match bosun::defaults::scaffold(dir) {
        Ok(files) => {
            for f in &files {
                println!("created {}", f.display());
            }
            println!(
                "agent directory ready: run `bosun --agent {} validate`; tighten tools/*.yaml (a missing file means the built-in default)",
                dir.display()
            );
            Ok(ExitCode::from(exit::SUCCESS))
        }
        Err(e) => {
            eprintln!("bosun init: {e}");
            Ok(ExitCode::from(match e {
                bosun::defaults::InitError::Exists(_) => exit::USAGE,
                bosun::defaults::InitError::Io { .. } => exit::TASK_FAILED,
            }))
        }
    }
}
