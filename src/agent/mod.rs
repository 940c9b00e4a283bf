//! Loading an agent directory: `agent.md` (YAML frontmatter + markdown role), `skills/`,
//! `tools/` and `prompts/`. Every problem is a [`Diagnostic`] with file:line:col; all of them
//! are collected, not just the first.

pub mod manifest;
pub mod mcp_servers;
pub mod skill;

pub use crate::document::{frontmatter, yaml};

use crate::diag::{Diagnostic, Diagnostics};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use manifest::{OperationSpec, ToolManifest};

/// Names every agent has without a manifest: the built-in `activate_skill` tool and the
/// planner's verbs `transition` and `delegate` (the session's own, not tools).
pub const BUILTIN_TOOL_NAMES: &[&str] = &["activate_skill", "transition", "delegate"];
pub use skill::Skill;

/// `version:` may be written as a string or a number (`1.0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Version {
    Text(String),
    Number(f64),
}

/// The frontmatter of agent.md (Druppie's agent format, plus bosun's optional fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentDef {
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type", default = "default_type")]
    pub kind: String,
    #[serde(default, deserialize_with = "de_version")]
    pub version: Option<String>,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default, alias = "sub_agents")]
    pub subagents: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub max_turns: Option<u32>,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// MCP servers whose tools become bosun tools `<server>__<tool>` behind the same guard
    /// (see [`crate::mcp`]).
    #[serde(default)]
    pub mcp_servers: Vec<mcp_servers::McpServerDef>,
}

fn default_type() -> String {
    "agent".into()
}

fn de_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Version>::deserialize(d)?.map(|v| match v {
        Version::Text(s) => s,
        Version::Number(n) => n.to_string(),
    }))
}

const AGENT_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "type",
    "version",
    "skills",
    "subagents",
    "sub_agents",
    "tools",
    "model",
    "max_turns",
    "metadata",
    "mcp_servers",
];

/// The prompt templates of an agent (`prompts/*.j2`), by file name; `system.md.j2` is the
/// compiled-in default when the agent has none.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    pub templates: BTreeMap<String, String>,
    pub dir: PathBuf,
}

/// The name of the template that renders the system prompt.
pub const SYSTEM_TEMPLATE: &str = "system.md.j2";

/// A loaded, valid agent.
#[derive(Debug, Clone)]
pub struct Agent {
    pub dir: PathBuf,
    pub def: AgentDef,
    /// The markdown body of agent.md: the agent's role.
    pub role: String,
    pub skills: Vec<Skill>,
    pub tools: Vec<ToolManifest>,
    pub prompts: Prompts,
    /// `policy.yaml` (or the default policy when there is none).
    pub policy: crate::policy::Policy,
    /// The agents named under `subagents:`, from `agents/<id>.md` (same format as agent.md; they
    /// use this agent's skills/, tools/, prompts/ and policy).
    pub subagents: Vec<Agent>,
}

/// How deep subagents may nest (an agent whose subagent names it back is an error before this).
pub const MAX_SUBAGENT_DEPTH: usize = 3;

/// A loaded agent plus the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub agent: Agent,
    pub warnings: Vec<Diagnostic>,
}

impl Agent {
    /// Load the agent in `dir` (which holds agent.md). On failure, every error found is returned,
    /// followed by the warnings.
    pub fn load(dir: &Path) -> Result<Loaded, Diagnostics> {
        Self::load_with(dir, &[])
    }

    /// Like [`Agent::load`], for an embedding application that provides the tools named in
    /// `provided` itself (`RuntimeOptions::extra_tools`): those need no manifest — the tool's
    /// own operations and effect classes are offered, and a manifest, if present, may only
    /// tighten them.
    pub fn load_with(dir: &Path, provided: &[String]) -> Result<Loaded, Diagnostics> {
        Self::load_file(dir, &dir.join("agent.md"), &mut Vec::new(), provided)
    }

    fn load_file(
        dir: &Path,
        agent_md: &Path,
        chain: &mut Vec<String>,
        provided: &[String],
    ) -> Result<Loaded, Diagnostics> {
        let agent_md = agent_md.to_path_buf();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let text = match std::fs::read_to_string(&agent_md) {
            Ok(t) => t,
            Err(e) => {
                return Err(Diagnostics(vec![Diagnostic::error(
                    &agent_md,
                    0,
                    0,
                    format!(
                        "cannot read agent definition: {e} (run bosun in a directory with agent.md, or pass --agent DIR)"
                    ),
                )]))
            }
        };
        let (def, role) = match parse_agent_md(&agent_md, &text, &mut warnings) {
            Ok(x) => x,
            Err(d) => {
                errors.push(d);
                errors.extend(warnings);
                return Err(Diagnostics(errors));
            }
        };
        let mut skills = Vec::new();
        for name in &def.skills {
            match skill::load(&dir.join("skills"), name, &mut warnings) {
                Ok(s) => skills.push(s),
                Err(d) => errors.push(d),
            }
        }
        let mut tools = Vec::new();
        for name in &def.tools {
            match manifest::load(&dir.join("tools"), name, &mut warnings) {
                Ok(m) => tools.push(m),
                // the application's own tool describes itself
                Err(_) if provided.contains(name) => {}
                Err(d) => errors.push(d),
            }
        }
        for s in &skills {
            for t in &s.allowed_tools {
                if !def.tools.contains(t) && !BUILTIN_TOOL_NAMES.contains(&t.as_str()) {
                    warnings.push(Diagnostic::warning(
                        &s.path,
                        0,
                        0,
                        format!(
                            "skill `{}` allows tool `{t}`, which the agent does not list under tools:",
                            s.name
                        ),
                    ));
                }
            }
        }
        // the building-block catalog belongs to the `blocks` tool: check it when the agent has it
        if def.tools.iter().any(|t| t == "blocks") {
            match crate::blocks::load_catalog(&dir.join("blocks")) {
                Ok((_, w)) => warnings.extend(w),
                Err(d) => errors.extend(d.0),
            }
        }
        let prompts = match load_prompts(&dir.join("prompts")) {
            Ok(p) => p,
            Err(d) => {
                errors.push(d);
                Prompts::default()
            }
        };
        let mut subagents = Vec::new();
        chain.push(def.id.clone());
        for id in &def.subagents {
            let path = dir.join("agents").join(format!("{id}.md"));
            if chain.contains(id) || chain.len() > MAX_SUBAGENT_DEPTH {
                errors.push(Diagnostic::error(
                    &path,
                    0,
                    0,
                    format!(
                        "subagent `{id}` would nest too deep or loop ({} → {id})",
                        chain.join(" → ")
                    ),
                ));
                continue;
            }
            if !path.is_file() {
                errors.push(Diagnostic::error(
                    &path,
                    0,
                    0,
                    format!("the agent names subagent `{id}` but {} does not exist; create it (agent.md format)", path.display()),
                ));
                continue;
            }
            match Self::load_file(dir, &path, chain, provided) {
                Ok(l) => {
                    warnings.extend(l.warnings);
                    subagents.push(l.agent);
                }
                Err(d) => errors.extend(d.0),
            }
        }
        chain.pop();
        let policy = match crate::policy::Policy::load(dir) {
            Ok(p) => p,
            Err(d) => {
                errors.push(d);
                crate::policy::Policy::default()
            }
        };
        if !errors.is_empty() {
            errors.extend(warnings);
            return Err(Diagnostics(errors));
        }
        Ok(Loaded {
            agent: Agent {
                dir: dir.to_path_buf(),
                def,
                role,
                skills,
                tools,
                prompts,
                policy,
                subagents,
            },
            warnings,
        })
    }

    /// The skill named `name`, if the agent has it.
    pub fn skill(&self, name: &str) -> Option<&Skill> {
        self.skills.iter().find(|s| s.name == name)
    }

    /// The manifest of tool `name`, if the agent has it.
    pub fn manifest(&self, name: &str) -> Option<&ToolManifest> {
        self.tools.iter().find(|t| t.name == name)
    }
}

fn parse_agent_md(
    path: &Path,
    text: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<(AgentDef, String), Diagnostic> {
    let doc = frontmatter::split(path, text)?;
    let (def, w): (AgentDef, _) = yaml::parse(path, doc.yaml, doc.yaml_line_offset, AGENT_KEYS)?;
    warnings.extend(w);
    for (key, val) in [
        ("id", &def.id),
        ("name", &def.name),
        ("description", &def.description),
    ] {
        if val.trim().is_empty() {
            let (l, c) = yaml::key_pos(doc.yaml, doc.yaml_line_offset, key);
            return Err(Diagnostic::error(
                path,
                l,
                c,
                format!("`{key}` must not be empty"),
            ));
        }
    }
    if !def
        .id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        let (l, c) = yaml::key_pos(doc.yaml, doc.yaml_line_offset, "id");
        return Err(Diagnostic::error(
            path,
            l,
            c,
            format!(
                "id `{}` may only contain letters, digits, `-` and `_`",
                def.id
            ),
        ));
    }
    if let Some(problem) = mcp_servers::check_servers(&def.mcp_servers)
        .into_iter()
        .next()
    {
        let (l, c) = yaml::key_pos(doc.yaml, doc.yaml_line_offset, "mcp_servers");
        return Err(Diagnostic::error(path, l, c, problem));
    }
    if def.kind != "agent" {
        let (l, c) = yaml::key_pos(doc.yaml, doc.yaml_line_offset, "type");
        warnings.push(Diagnostic::warning(
            path,
            l,
            c,
            format!(
                "type is `{}`; bosun runs definitions of type `agent`",
                def.kind
            ),
        ));
    }
    Ok((def, doc.body.trim().to_string()))
}

/// The agent's `prompts/*.j2`; without `prompts/system.md.j2` (or without `prompts/`), the
/// compiled-in default system prompt.
fn load_prompts(dir: &Path) -> Result<Prompts, Diagnostic> {
    let system = dir.join(SYSTEM_TEMPLATE);
    let mut templates = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            templates.insert(
                SYSTEM_TEMPLATE.to_string(),
                crate::defaults::SYSTEM_PROMPT.to_string(),
            );
            return Ok(Prompts {
                templates,
                dir: crate::defaults::builtin_path("prompts"),
            });
        }
        Err(e) => {
            return Err(Diagnostic::error(
                &system,
                0,
                0,
                format!(
                    "cannot read the prompts directory {}: {e}; fix its permissions, or remove it to use the built-in system prompt",
                    dir.display()
                ),
            ))
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if !name.ends_with(".j2") {
            continue;
        }
        let text = std::fs::read_to_string(&p)
            .map_err(|e| Diagnostic::error(&p, 0, 0, format!("cannot read template: {e}")))?;
        templates.insert(name, text);
    }
    if !templates.contains_key(SYSTEM_TEMPLATE) {
        templates.insert(
            SYSTEM_TEMPLATE.to_string(),
            crate::defaults::SYSTEM_PROMPT.to_string(),
        );
    }
    Ok(Prompts {
        templates,
        dir: dir.to_path_buf(),
    })
}
