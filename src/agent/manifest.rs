//! Tool manifests: `tools/<name>.yaml` declares a tool's operations, each with its effect class,
//! and its prerequisites (binaries on PATH, environment variables).
//!
//! ```yaml
//! name: kubectl
//! description: Read and change Kubernetes objects.
//! prerequisites: { binaries: [], env: [] }
//! operations:
//!   get: { effect: read_only, description: List or get objects of any kind }
//! ```
//!
//! A manifest may make an operation *stricter* than bosun's built-in classification (e.g. mark a
//! read as mutating so it needs a dry-run and approval), never looser: that is a load error.
//!
//! The file is optional for a built-in tool: without `tools/<name>.yaml` the tool's compiled-in
//! default manifest ([`crate::defaults::MANIFESTS`]) is used.

use super::yaml;
use crate::diag::Diagnostic;
use crate::effect::EffectClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One operation of a tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationSpec {
    pub effect: EffectClass,
    #[serde(default)]
    pub description: String,
}

/// What must be present for a tool to work.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prerequisites {
    #[serde(default)]
    pub binaries: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
}

/// A parsed tool manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolManifest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub prerequisites: Prerequisites,
    pub operations: BTreeMap<String, OperationSpec>,
    /// Where it was read from; `<built-in>/tools/<name>.yaml` for a compiled-in default.
    #[serde(skip)]
    pub path: PathBuf,
    /// The text it was parsed from (for the line of an operation in diagnostics).
    #[serde(skip)]
    pub text: String,
}

const KEYS: &[&str] = &["name", "description", "prerequisites", "operations"];

/// Candidate paths for tool `name`.
pub fn candidate_paths(tools_dir: &Path, name: &str) -> [PathBuf; 2] {
    [
        tools_dir.join(format!("{name}.yaml")),
        tools_dir.join(format!("{name}.yml")),
    ]
}

/// Load the manifest of tool `name` from `tools_dir`; without a file there, the compiled-in
/// default manifest of the built-in tool `name`.
pub fn load(
    tools_dir: &Path,
    name: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<ToolManifest, Diagnostic> {
    let [yaml_path, yml_path] = candidate_paths(tools_dir, name);
    let path = if yaml_path.is_file() {
        yaml_path
    } else if yml_path.is_file() {
        yml_path
    } else if let Some(m) = builtin(name) {
        return m;
    } else {
        return Err(Diagnostic::error(
            &yaml_path,
            0,
            0,
            format!(
                "the agent names tool `{name}` but {} does not exist and bosun has no built-in tool of that name (built-in: {}); create the manifest (`bosun tools --manifest kubectl` shows the format) or fix the name",
                yaml_path.display(),
                crate::defaults::manifest_names().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Diagnostic::error(&path, 0, 0, format!("cannot read manifest: {e}")))?;
    parse(&path, &text, name, warnings)
}

/// The compiled-in default manifest of built-in tool `name`, if bosun has one.
pub fn builtin(name: &str) -> Option<Result<ToolManifest, Diagnostic>> {
    let text = crate::defaults::manifest_text(name)?;
    let path = crate::defaults::builtin_path(format!("tools/{name}.yaml"));
    Some(parse(&path, text, name, &mut Vec::new()))
}

/// Parse manifest `text` (read from `path`) of tool `name`.
pub fn parse(
    path: &Path,
    text: &str,
    name: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<ToolManifest, Diagnostic> {
    let (mut m, w): (ToolManifest, _) = yaml::parse(path, text, 0, KEYS)?;
    warnings.extend(w);
    if m.name != name {
        let (l, c) = yaml::key_pos(text, 0, "name");
        return Err(Diagnostic::error(
            path,
            l,
            c,
            format!(
                "manifest name `{}` must equal its file name `{name}`",
                m.name
            ),
        ));
    }
    if m.operations.is_empty() {
        let (l, c) = yaml::key_pos(text, 0, "operations");
        return Err(Diagnostic::error(
            path,
            l,
            c,
            "a tool manifest must list at least one operation",
        ));
    }
    m.path = path.to_path_buf();
    m.text = text.to_string();
    Ok(m)
}

impl ToolManifest {
    /// Line:col of an operation's key in the manifest file, for diagnostics.
    pub fn operation_pos(&self, op: &str) -> (usize, usize) {
        crate::diag::find_key_line(&self.text, op).unwrap_or((1, 1))
    }

    /// Whether this is a compiled-in default (the agent directory has no file for the tool).
    pub fn is_builtin(&self) -> bool {
        crate::defaults::is_builtin(&self.path)
    }

    /// Prerequisites that are not met on this machine, as human-readable lines.
    pub fn unmet_prerequisites(&self) -> Vec<String> {
        let mut out = Vec::new();
        for b in &self.prerequisites.binaries {
            if crate::sandbox::find_binary(b).is_none() {
                out.push(format!(
                    "binary `{b}` not found on PATH or in ~/.cache/bosun/bin (run scripts/install-deps.sh)"
                ));
            }
        }
        for e in &self.prerequisites.env {
            if std::env::var_os(e).is_none_or(|v| v.is_empty()) {
                out.push(format!("environment variable {e} is not set"));
            }
        }
        out
    }
}
