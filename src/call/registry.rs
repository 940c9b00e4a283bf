//! The registry: the tools of one agent, each joined with its manifest — the agent's file,
//! which may only tighten the compiled-in default, or the default itself — into the operations
//! offered (with their effective effect class), descriptions and a strict schema; and what a
//! task's mode offers of them.

use super::{schema, Tool};
use crate::agent::{Agent, ToolManifest, BUILTIN_TOOL_NAMES};
use crate::diag::Diagnostic;
use crate::effect::EffectClass;
use crate::model::ToolSpec;
use crate::prompt::{PromptOperation, PromptTool};
use crate::scope::Mode;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A tool plus what the agent's manifest allows of it.
pub struct Registered {
    pub tool: Arc<dyn Tool>,
    pub description: String,
    /// Offered operations and their effective (strictest) effect class.
    pub operations: BTreeMap<String, EffectClass>,
    /// What each offered operation does (the manifest's, else the built-in default's; may be
    /// empty): in `bosun tools` and the prompt template's `op.description`. Descriptions an
    /// agent's own manifest writes (different from the default's) are also put into the schema
    /// of the `operation` argument, where the model reads them.
    pub descriptions: BTreeMap<String, String>,
    pub spec: ToolSpec,
}

/// What an agent's manifest makes of a tool: its description and the offered operations with
/// their effective class and description.
struct Joined {
    description: String,
    operations: BTreeMap<String, EffectClass>,
    descriptions: BTreeMap<String, String>,
    /// The descriptions the agent's own manifest wrote (not the defaults'): put into the schema.
    for_model: BTreeMap<String, String>,
}

impl Joined {
    /// A tool offered as its code describes it (no manifest).
    fn plain(description: String, operations: BTreeMap<String, EffectClass>) -> Self {
        Self {
            description,
            operations,
            descriptions: BTreeMap::new(),
            for_model: BTreeMap::new(),
        }
    }
}

/// Join manifest `m` with `tool`'s code. For a built-in tool whose manifest is the agent's own
/// file, its compiled-in default counts too: an operation's baseline class is the stricter of
/// the code's and the default's, and the file may only tighten — raise classes, drop operations,
/// add prerequisites (a looser class is an error at the operation's line). Without a file (the
/// compiled-in default itself), an operation the code implements but the default lacks is still
/// offered, with the code's class and a warning: none silently disappears.
fn join_manifest(
    m: &ToolManifest,
    tool: &dyn Tool,
    errors: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<Joined> {
    let code_ops: BTreeMap<&str, EffectClass> = tool.operations().iter().copied().collect();
    let default = match m.is_builtin() {
        true => None,
        false => crate::agent::manifest::builtin(&m.name).and_then(Result::ok),
    };
    let mut ops = BTreeMap::new();
    let mut descriptions = BTreeMap::new();
    let mut for_model = BTreeMap::new();
    let mut missing = Vec::new();
    for (op, spec) in &m.operations {
        let Some(&code) = code_ops.get(op.as_str()) else {
            missing.push(op.as_str());
            continue;
        };
        let default_spec = default.as_ref().and_then(|d| d.operations.get(op));
        let baseline = code.max(default_spec.map_or(code, |d| d.effect));
        if spec.effect < baseline {
            let (l, c) = m.operation_pos(op);
            errors.push(Diagnostic::error(
                &m.path,
                l,
                c,
                format!(
                    "operation `{op}` is declared `{}` but bosun classifies it as `{baseline}`; a manifest may only make an operation stricter — write `effect: {baseline}`",
                    spec.effect
                ),
            ));
            continue;
        }
        ops.insert(op.clone(), spec.effect);
        let default_text = default_spec.map_or("", |d| d.description.trim());
        let description = match spec.description.trim() {
            "" => default_text.to_string(),
            own => {
                // the agent author's own words reach the model (the defaults' would cost the
                // prompt budget ~1,400 tokens; they stay in `bosun tools` and the prompt context)
                if own != default_text {
                    for_model.insert(op.clone(), own.to_string());
                }
                own.to_string()
            }
        };
        descriptions.insert(op.clone(), description);
    }
    if m.is_builtin() {
        for (op, code) in &code_ops {
            if !m.operations.contains_key(*op) {
                warnings.push(Diagnostic::warning(
                    &m.path,
                    1,
                    1,
                    format!(
                        "tool `{}`: operation `{op}` is implemented but missing from the built-in manifest; offered as `{code}` (a bug in this bosun: please report it)",
                        m.name
                    ),
                ));
                ops.insert(op.to_string(), *code);
            }
        }
    }
    if !missing.is_empty() {
        warnings.push(Diagnostic::warning(
            &m.path,
            1,
            1,
            format!(
                "tool `{}`: operations not implemented by this bosun, not offered: {}",
                m.name,
                missing.join(", ")
            ),
        ));
    }
    if ops.is_empty() {
        warnings.push(Diagnostic::warning(
            &m.path,
            1,
            1,
            format!(
                "tool `{}` has no implemented operation; it is not offered",
                m.name
            ),
        ));
        return None;
    }
    // prerequisites add up: the file's and the default's
    let mut effective = m.clone();
    if let Some(d) = &default {
        let p = &mut effective.prerequisites;
        for b in &d.prerequisites.binaries {
            if !p.binaries.contains(b) {
                p.binaries.push(b.clone());
            }
        }
        for e in &d.prerequisites.env {
            if !p.env.contains(e) {
                p.env.push(e.clone());
            }
        }
    }
    for unmet in effective.unmet_prerequisites() {
        warnings.push(Diagnostic::warning(
            &m.path,
            1,
            1,
            format!("tool `{}`: {unmet}", m.name),
        ));
    }
    let description = [
        m.description.as_str(),
        default.as_ref().map_or("", |d| d.description.as_str()),
        tool.description(),
    ]
    .into_iter()
    .map(str::trim)
    .find(|d| !d.is_empty())
    .unwrap_or_default()
    .to_string();
    Some(Joined {
        description,
        operations: ops,
        descriptions,
        for_model,
    })
}

/// A tool's operations with the classes its code gives them.
fn own_operations(tool: &dyn Tool) -> BTreeMap<String, EffectClass> {
    tool.operations()
        .iter()
        .map(|(o, e)| (o.to_string(), *e))
        .collect()
}

/// Put each offered operation's description into the schema of the `operation` argument, where
/// the model chooses it: `name: what it does` lines after the argument's own description.
fn describe_operations(parameters: &mut Value, descriptions: &BTreeMap<String, String>) {
    let lines: Vec<String> = descriptions
        .iter()
        .filter(|(_, d)| !d.trim().is_empty())
        .map(|(op, d)| format!("{op}: {}", d.trim()))
        .collect();
    if lines.is_empty() {
        return;
    }
    if let Some(Value::Object(op)) = parameters.pointer_mut("/properties/operation") {
        let own = op
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string();
        let text = match own.is_empty() {
            true => lines.join("\n"),
            false => format!("{own}\n{}", lines.join("\n")),
        };
        op.insert("description".into(), Value::String(text));
    }
}

/// The tools of one agent, keyed by name.
#[derive(Default)]
pub struct Registry {
    tools: BTreeMap<String, Registered>,
}

impl Registry {
    /// Join the available implementations with the agent's manifests. Manifest problems that
    /// make a tool unsafe are errors; tools or operations without an implementation are warnings
    /// and are not offered.
    pub fn build(
        agent: &Agent,
        implementations: Vec<Arc<dyn Tool>>,
    ) -> Result<(Self, Vec<Diagnostic>), Vec<Diagnostic>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut impls: BTreeMap<String, Arc<dyn Tool>> = implementations
            .into_iter()
            .map(|t| (t.name().to_string(), t))
            .collect();
        let mut reg = Registry::default();
        for m in &agent.tools {
            let Some(tool) = impls.remove(&m.name) else {
                warnings.push(Diagnostic::warning(
                    &m.path,
                    1,
                    1,
                    format!(
                        "this bosun has no executor for tool `{}` yet; it is not offered to the model",
                        m.name
                    ),
                ));
                continue;
            };
            let Some(joined) = join_manifest(m, tool.as_ref(), &mut errors, &mut warnings) else {
                continue;
            };
            reg.insert(tool, joined);
        }
        // without a manifest, offered as their code describes them: the built-in tools that
        // need none, and tools the embedding application provides and the agent lists
        let plain: Vec<String> = impls
            .iter()
            .filter(|(n, t)| {
                BUILTIN_TOOL_NAMES.contains(&n.as_str())
                    || (agent.def.tools.contains(n) && t.mcp_server().is_none())
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in plain {
            if let Some(tool) = impls.remove(&name) {
                let j = Joined::plain(tool.description().to_string(), own_operations(&*tool));
                reg.insert(tool, j);
            }
        }
        // tools of the MCP servers the agent lists: they carry their own operations (classified
        // by bosun's code from the server's annotations); everything else without a manifest is
        // not offered
        for (name, tool) in impls {
            let server = tool.mcp_server().map(str::to_string);
            let listed = server.as_deref().is_some_and(|s| {
                agent.def.mcp_servers.iter().any(|d| d.name == s)
                    && name.starts_with(&format!("{s}{}", super::NAME_SEPARATOR))
            });
            if !listed {
                if let Some(s) = server {
                    warnings.push(Diagnostic::warning(
                        &agent.dir.join("agent.md"),
                        1,
                        1,
                        format!("tool `{name}` comes from MCP server `{s}`, which the agent does not list under mcp_servers: (or the name lacks the `{s}__` prefix); it is not offered"),
                    ));
                }
                continue;
            }
            let ops = own_operations(&*tool);
            if ops.is_empty() || reg.tools.contains_key(&name) {
                continue;
            }
            let d = tool.description().to_string();
            reg.insert(tool, Joined::plain(d, ops));
        }
        if errors.is_empty() {
            Ok((reg, warnings))
        } else {
            errors.extend(warnings);
            Err(errors)
        }
    }

    fn insert(&mut self, tool: Arc<dyn Tool>, joined: Joined) {
        let Joined {
            description,
            operations: ops,
            descriptions,
            for_model,
        } = joined;
        let offered: Vec<&str> = ops.keys().map(String::as_str).collect();
        let raw = tool.parameters();
        // a remote MCP tool's own `operation` argument, if it has one, keeps its enum
        let own: Vec<String> = match tool.mcp_server() {
            Some(_) => raw
                .pointer("/properties/operation/enum")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            None => offered.iter().map(|s| s.to_string()).collect(),
        };
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        let mut parameters = schema::strict(raw, &own);
        describe_operations(&mut parameters, &for_model);
        let spec = ToolSpec {
            name: tool.name().to_string(),
            description: description.clone(),
            parameters,
        };
        self.tools.insert(
            tool.name().to_string(),
            Registered {
                tool,
                description,
                operations: ops,
                descriptions,
                spec,
            },
        );
    }

    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.tools.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The schemas the model sees.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|r| r.spec.clone()).collect()
    }

    /// The tools as shown in the system prompt.
    pub fn prompt_tools(&self) -> Vec<PromptTool> {
        self.tools
            .values()
            .map(|r| PromptTool {
                name: r.spec.name.clone(),
                description: r.description.clone(),
                operations: r
                    .operations
                    .iter()
                    .map(|(name, effect)| PromptOperation {
                        name: name.clone(),
                        effect: effect.to_string(),
                        description: r.descriptions.get(name).cloned().unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect()
    }
}

// What a task's mode offers of the registry (specs, the prompt's tool list, annotations); the
// guard enforces the same mode on every call (`check_mode`).

/// The effect classes of `reg`'s operations that `mode` offers (for MCP annotations).
pub fn offered_effects(reg: &Registered, mode: Mode) -> Vec<EffectClass> {
    reg.operations
        .values()
        .copied()
        .filter(|e| mode.offers(*e))
        .collect()
}

/// The tool specs offered in `mode`: in read-only mode, operations above `read_only` leave each
/// schema's `operation` enum, and a tool left with no operation is not offered at all.
pub fn offered_specs(registry: &Registry, specs: Vec<ToolSpec>, mode: Mode) -> Vec<ToolSpec> {
    if mode != Mode::ReadOnly {
        return specs;
    }
    specs
        .into_iter()
        .filter_map(|mut spec| {
            let reg = registry.get(&spec.name)?;
            let allowed: Vec<&str> = reg
                .operations
                .iter()
                .filter(|(_, e)| mode.offers(**e))
                .map(|(o, _)| o.as_str())
                .collect();
            if allowed.is_empty() {
                return None;
            }
            if let Some(serde_json::Value::Array(ops)) =
                spec.parameters.pointer_mut("/properties/operation/enum")
            {
                ops.retain(|v| v.as_str().is_some_and(|s| allowed.contains(&s)));
            }
            Some(spec)
        })
        .collect()
}

/// The tools as listed in the system prompt in `mode` (the same filter as [`offered_specs`]).
pub fn offered_prompt_tools(
    registry: &Registry,
    tools: Vec<PromptTool>,
    mode: Mode,
) -> Vec<PromptTool> {
    if mode != Mode::ReadOnly {
        return tools;
    }
    tools
        .into_iter()
        .filter_map(|mut t| {
            let reg = registry.get(&t.name)?;
            t.operations
                .retain(|o| reg.operations.get(&o.name).is_some_and(|e| mode.offers(*e)));
            (!t.operations.is_empty()).then_some(t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{AgentDef, Prompts};
    use crate::call::guard::Admitted;
    use crate::call::{Invocation, ToolCtx, ToolError};
    use futures::future::BoxFuture;

    struct Fake;
    impl Tool for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn description(&self) -> &str {
            "fake"
        }
        fn operations(&self) -> &[(&'static str, EffectClass)] {
            &[
                ("read", EffectClass::ReadOnly),
                ("apply", EffectClass::Mutating),
            ]
        }
        fn parameters(&self) -> Value {
            serde_json::json!({"type": "object", "properties": {"operation": {"type": "string", "enum": ["read", "apply"]}}})
        }
        fn plan(&self, _: &Value) -> Result<Invocation, ToolError> {
            Err(ToolError::Failed("unused".into()))
        }
        fn execute<'a>(
            &'a self,
            _: Admitted,
            _: &'a ToolCtx,
        ) -> BoxFuture<'a, Result<String, ToolError>> {
            Box::pin(async { Err(ToolError::Failed("unused".into())) })
        }
    }

    fn agent_with(ops: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fake.yaml");
        let text = format!("name: fake\noperations:\n{ops}");
        std::fs::write(&path, &text).expect("write");
        let mut m: ToolManifest = serde_saphyr::from_str(&text).expect("manifest");
        m.path = path;
        m.text = text;
        std::mem::forget(dir);
        Agent {
            dir: ".".into(),
            def: serde_saphyr::from_str::<AgentDef>(
                "id: a\nname: a\ndescription: a\ntools: [fake]\n",
            )
            .expect("def"),
            role: String::new(),
            skills: vec![],
            tools: vec![m],
            prompts: Prompts::default(),
            policy: crate::policy::Policy::default(),
            subagents: vec![],
        }
    }

    /// A tool as an MCP server would provide it: own operations, no manifest.
    struct Remote(&'static str, &'static str);
    impl Tool for Remote {
        fn name(&self) -> &str {
            self.0
        }
        fn description(&self) -> &str {
            "remote"
        }
        fn operations(&self) -> &[(&'static str, EffectClass)] {
            &[("call", EffectClass::Mutating)]
        }
        fn parameters(&self) -> Value {
            serde_json::json!({"type": "object", "properties": {"operation": {"type": "string", "enum": ["x", "y"]}}})
        }
        fn plan(&self, _: &Value) -> Result<Invocation, ToolError> {
            Err(ToolError::Failed("unused".into()))
        }
        fn execute<'a>(
            &'a self,
            _: Admitted,
            _: &'a ToolCtx,
        ) -> BoxFuture<'a, Result<String, ToolError>> {
            Box::pin(async { Err(ToolError::Failed("unused".into())) })
        }
        fn mcp_server(&self) -> Option<&str> {
            Some(self.1)
        }
    }

    #[test]
    fn tools_of_listed_mcp_servers_need_no_manifest_and_keep_their_class() {
        let mut agent = agent_with("  read: {effect: read_only}\n");
        agent.def.mcp_servers =
            serde_saphyr::from_str("- {name: docs, command: [x]}\n").expect("servers");
        let tools: Vec<Arc<dyn Tool>> = vec![
            Arc::new(Fake),
            Arc::new(Remote("docs__write", "docs")),
            Arc::new(Remote("other__write", "other")),
            Arc::new(Remote("write", "docs")),
        ];
        let (reg, warnings) = Registry::build(&agent, tools).expect("builds");
        let r = reg.get("docs__write").expect("offered");
        assert_eq!(r.operations.get("call"), Some(&EffectClass::Mutating));
        // the remote tool's own `operation` argument is not bosun's operation enum
        assert_eq!(
            r.spec.parameters["properties"]["operation"]["enum"],
            serde_json::json!(["x", "y"])
        );
        assert!(reg.get("other__write").is_none(), "server not listed");
        assert!(reg.get("write").is_none(), "name without the server prefix");
        assert_eq!(
            warnings
                .iter()
                .filter(|w| w.message.contains("not offered"))
                .count(),
            2,
            "{warnings:#?}"
        );
    }

    #[test]
    fn a_manifest_can_make_a_remote_tool_stricter_not_looser() {
        let mut agent = agent_with("  call: {effect: destructive}\n");
        agent.def.mcp_servers =
            serde_saphyr::from_str("- {name: docs, command: [x]}\n").expect("servers");
        let (reg, _) =
            Registry::build(&agent, vec![Arc::new(Remote("fake", "docs"))]).expect("builds");
        let r = reg.get("fake").expect("offered through its manifest");
        assert_eq!(r.operations.get("call"), Some(&EffectClass::Destructive));
        let agent = agent_with("  call: {effect: read_only}\n");
        assert!(Registry::build(&agent, vec![Arc::new(Remote("fake", "docs"))]).is_err());
    }

    #[test]
    fn a_manifest_cannot_loosen_an_effect_class() {
        let agent = agent_with("  read: {effect: read_only}\n  apply: {effect: dry_run}\n");
        let errs = Registry::build(&agent, vec![Arc::new(Fake)])
            .err()
            .expect("must fail");
        let e = errs.iter().find(|d| d.is_error()).expect("an error");
        assert!(
            e.message
                .contains("`apply` is declared `dry_run` but bosun classifies it as `mutating`"),
            "{e}"
        );
        assert_eq!(e.line, 4);
    }

    #[test]
    fn tightening_wins_and_unlisted_operations_are_not_offered() {
        let agent = agent_with("  read: {effect: destructive}\n");
        let (reg, _) = Registry::build(&agent, vec![Arc::new(Fake)]).expect("builds");
        let r = reg.get("fake").expect("registered");
        assert_eq!(r.operations.get("read"), Some(&EffectClass::Destructive));
        assert!(!r.operations.contains_key("apply"));
        assert_eq!(
            r.spec.parameters["properties"]["operation"]["enum"],
            serde_json::json!(["read"])
        );
    }
}
