//! What bosun knows without an agent directory, compiled into the binary: the default manifest of
//! every built-in tool, the default system prompt, the built-in skills, the seed agent and the
//! default policy. An agent directory's own files override them; a tool manifest there may only
//! tighten its default (see [`crate::tools::Registry::build`]). `bosun init` writes them out.
//!
//! The texts are the repository's own `tools/*.yaml`, `skills/*/SKILL.md`,
//! `prompts/system.md.j2` and `policy.yaml` (the repository root is the reference agent), plus the
//! seed `src/defaults/seed.agent.md`. That every operation a tool's code implements is in its
//! compiled-in manifest, with the same or a stricter class, is checked by the tests
//! (`tests/defaults.rs`, and the unit test below).

use std::path::{Path, PathBuf};

/// The directory shown in diagnostics for a compiled-in file, e.g. `<built-in>/tools/helm.yaml`.
pub const BUILTIN_DIR: &str = "<built-in>";

/// The default manifests of the built-in tools, by tool name.
pub const MANIFESTS: &[(&str, &str)] = &[
    ("argocd", include_str!("../../tools/argocd.yaml")),
    ("blocks", include_str!("../../tools/blocks.yaml")),
    ("flux", include_str!("../../tools/flux.yaml")),
    ("git", include_str!("../../tools/git.yaml")),
    (
        "hashicorp-vault",
        include_str!("../../tools/hashicorp-vault.yaml"),
    ),
    ("helm", include_str!("../../tools/helm.yaml")),
    ("kubectl", include_str!("../../tools/kubectl.yaml")),
    ("metrics", include_str!("../../tools/metrics.yaml")),
    ("shell", include_str!("../../tools/shell.yaml")),
    ("terraform", include_str!("../../tools/terraform.yaml")),
];

/// The built-in skills (agentskills.io layout), by skill name.
pub const SKILLS: &[(&str, &str)] = &[
    (
        "check-block-status",
        include_str!("../../skills/check-block-status/SKILL.md"),
    ),
    ("gitops", include_str!("../../skills/gitops/SKILL.md")),
    ("iac", include_str!("../../skills/iac/SKILL.md")),
    (
        "kubernetes",
        include_str!("../../skills/kubernetes/SKILL.md"),
    ),
    ("scripting", include_str!("../../skills/scripting/SKILL.md")),
];

/// The default system prompt template (`prompts/system.md.j2`).
pub const SYSTEM_PROMPT: &str = include_str!("../../prompts/system.md.j2");

/// The seed agent (`agent.md` of `bosun init`): Druppie's infrastructure engineer, unchanged.
pub const SEED_AGENT: &str = include_str!("seed.agent.md");

/// The default policy (`policy.yaml` of `bosun init`).
pub const POLICY: &str = include_str!("../../policy.yaml");

/// The compiled-in manifest text of built-in tool `name`.
pub fn manifest_text(name: &str) -> Option<&'static str> {
    MANIFESTS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The compiled-in text of built-in skill `name`.
pub fn skill_text(name: &str) -> Option<&'static str> {
    SKILLS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The names of the tools that have a compiled-in manifest.
pub fn manifest_names() -> impl Iterator<Item = &'static str> {
    MANIFESTS.iter().map(|(n, _)| *n)
}

/// The names of the built-in skills.
pub fn skill_names() -> impl Iterator<Item = &'static str> {
    SKILLS.iter().map(|(n, _)| *n)
}

/// The path diagnostics show for a compiled-in file at `rel` (relative to an agent directory).
pub fn builtin_path(rel: impl AsRef<Path>) -> PathBuf {
    Path::new(BUILTIN_DIR).join(rel)
}

/// Whether `path` names a compiled-in file (see [`builtin_path`]).
pub fn is_builtin(path: &Path) -> bool {
    path.starts_with(BUILTIN_DIR)
}

/// Every file of a scaffolded agent directory, relative to it, with its text.
pub fn scaffold_files() -> Vec<(PathBuf, &'static str)> {
    let mut files = vec![
        (PathBuf::from("agent.md"), SEED_AGENT),
        (PathBuf::from("policy.yaml"), POLICY),
        (PathBuf::from("prompts").join("system.md.j2"), SYSTEM_PROMPT),
    ];
    for (name, text) in SKILLS {
        files.push((PathBuf::from("skills").join(name).join("SKILL.md"), text));
    }
    for (name, text) in MANIFESTS {
        files.push((PathBuf::from("tools").join(format!("{name}.yaml")), text));
    }
    files
}

/// Why `bosun init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} already exist(s): {}; bosun init never overwrites — choose an empty directory or move them away", .0.len(), .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Exists(Vec<PathBuf>),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Write the built-in defaults into `dir` as an agent directory (creating it). Refuses, writing
/// nothing, if any of the files already exists. Returns the files written.
pub fn scaffold(dir: &Path) -> Result<Vec<PathBuf>, InitError> {
    let files = scaffold_files();
    let existing: Vec<PathBuf> = files
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    if !existing.is_empty() {
        return Err(InitError::Exists(existing));
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        let io = |source| InitError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        // create_new: a file that appeared since the check above is not overwritten either
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_manifest_and_skill_names_itself() {
        for (name, text) in MANIFESTS {
            assert!(
                text.contains(&format!("name: {name}\n")),
                "tools/{name}.yaml"
            );
        }
        for (name, text) in SKILLS {
            assert!(
                text.contains(&format!("name: {name}\n")),
                "skills/{name}/SKILL.md"
            );
        }
    }
}
