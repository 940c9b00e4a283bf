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
    #[serde(skip)]
    pub path: PathBuf,
}

const KEYS: &[&str] = &["name", "description", "prerequisites", "operations"];

/// Candidate paths for tool `name`.
pub fn candidate_paths(tools_dir: &Path, name: &str) -> [PathBuf; 2] {
    [
        tools_dir.join(format!("{name}.yaml")),
        tools_dir.join(format!("{name}.yml")),
    ]
}

/// Load the manifest of tool `name` from `tools_dir`.
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
    } else {
        return Err(Diagnostic::error(
            &yaml_path,
            0,
            0,
            format!(
                "the agent names tool `{name}` but {} does not exist; create it (see tools/kubectl.yaml for the format)",
                yaml_path.display()
            ),
        ));
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Diagnostic::error(&path, 0, 0, format!("cannot read manifest: {e}")))?;
    let (mut m, w): (ToolManifest, _) = yaml::parse(&path, &text, 0, KEYS)?;
    warnings.extend(w);
    if m.name != name {
        let (l, c) = yaml::key_pos(&text, 0, "name");
        return Err(Diagnostic::error(
            &path,
            l,
            c,
            format!(
                "manifest name `{}` must equal its file name `{name}`",
                m.name
            ),
        ));
    }
    if m.operations.is_empty() {
        let (l, c) = yaml::key_pos(&text, 0, "operations");
        return Err(Diagnostic::error(
            &path,
            l,
            c,
            "a tool manifest must list at least one operation",
        ));
    }
    m.path = path;
    Ok(m)
}

impl ToolManifest {
    /// Line:col of an operation's key in the manifest file, for diagnostics.
    pub fn operation_pos(&self, op: &str) -> (usize, usize) {
        std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| crate::diag::find_key_line(&t, op))
            .unwrap_or((1, 1))
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
