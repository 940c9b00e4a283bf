//! The system prompt, rendered from the agent's `prompts/system.md.j2` with minijinja.
//!
//! Template context:
//! - `agent`: `{id, name, description, version}`; `role`: the markdown body of agent.md
//! - `skills`: `[{name, description}]` (bodies are loaded on `activate_skill`)
//! - `tools`: `[{name, description, operations: [{name, effect, description}]}]` — only tools
//!   and operations this runtime can execute
//! - `environment`: free-form map (e.g. kube context) supplied by the frontend

use crate::agent::{Agent, SYSTEM_TEMPLATE};
use crate::diag::Diagnostic;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::collections::BTreeMap;

/// One operation as shown in the prompt.
#[derive(Debug, Clone, Serialize)]
pub struct PromptOperation {
    pub name: String,
    pub effect: String,
    /// What it does, from the tool's manifest (may be empty).
    pub description: String,
}

/// One tool as shown in the prompt.
#[derive(Debug, Clone, Serialize)]
pub struct PromptTool {
    pub name: String,
    pub description: String,
    pub operations: Vec<PromptOperation>,
}

#[derive(Serialize)]
struct Ctx<'a> {
    agent: AgentCtx<'a>,
    role: &'a str,
    skills: Vec<SkillCtx<'a>>,
    tools: &'a [PromptTool],
    environment: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct AgentCtx<'a> {
    id: &'a str,
    name: &'a str,
    description: &'a str,
    version: Option<&'a str>,
}

#[derive(Serialize)]
struct SkillCtx<'a> {
    name: &'a str,
    description: &'a str,
}

fn env_for(agent: &Agent) -> Result<Environment<'static>, Diagnostic> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    for (name, src) in &agent.prompts.templates {
        env.add_template_owned(name.clone(), src.clone())
            .map_err(|e| template_diag(agent, name, &e))?;
    }
    Ok(env)
}

fn template_diag(agent: &Agent, name: &str, e: &minijinja::Error) -> Diagnostic {
    let path = agent.prompts.dir.join(name);
    let line = e.line().unwrap_or(1);
    Diagnostic::error(
        &path,
        line,
        1,
        format!("template error: {}", e.detail().unwrap_or(&e.to_string())),
    )
}

/// Render the system prompt. Errors point into the template file.
pub fn render_system(
    agent: &Agent,
    tools: &[PromptTool],
    environment: &BTreeMap<String, String>,
) -> Result<String, Diagnostic> {
    let env = env_for(agent)?;
    let tmpl = env
        .get_template(SYSTEM_TEMPLATE)
        .map_err(|e| template_diag(agent, SYSTEM_TEMPLATE, &e))?;
    let ctx = Ctx {
        agent: AgentCtx {
            id: &agent.def.id,
            name: &agent.def.name,
            description: &agent.def.description,
            version: agent.def.version.as_deref(),
        },
        role: &agent.role,
        skills: agent
            .skills
            .iter()
            .map(|s| SkillCtx {
                name: &s.name,
                description: &s.description,
            })
            .collect(),
        tools,
        environment,
    };
    tmpl.render(minijinja::value::Serde(&ctx))
        .map(|s| s.trim().to_string())
        .map_err(|e| template_diag(agent, SYSTEM_TEMPLATE, &e))
}
