//! Skills, in both supported layouts:
//! - agentskills.io: `skills/<name>/SKILL.md` with frontmatter `name` (= folder name),
//!   `description`, `allowed-tools`, `metadata` (also `license`, `compatibility`);
//! - Druppie's flat form: `skills/<id>.md` with `id`, `name`, `description`, `system_prompt`,
//!   `allowed_tools`.
//!
//! Only name and description are kept in memory and shown to the model; the body is read from
//! disk when the model activates the skill (progressive disclosure).
//!
//! A skill bosun ships ([`crate::defaults::SKILLS`]) needs no file: the agent directory's own
//! file overrides the compiled-in one.

use super::{frontmatter, yaml};
use crate::diag::Diagnostic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which layout a skill was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillFormat {
    AgentSkills,
    Druppie,
}

/// A skill's metadata; the body stays on disk until activation.
#[derive(Debug, Clone, Serialize)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub allowed_tools: Vec<String>,
    pub metadata: BTreeMap<String, serde_json::Value>,
    pub path: PathBuf,
    pub format: SkillFormat,
    /// The compiled-in text of a built-in skill the agent directory does not override.
    #[serde(skip)]
    pub builtin: Option<&'static str>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => s
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Self::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
struct AgentSkillsFront {
    name: Option<String>,
    description: Option<String>,
    #[serde(rename = "allowed-tools", alias = "allowed_tools")]
    allowed_tools: Option<StringOrList>,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}
const AGENTSKILLS_KEYS: &[&str] = &[
    "name",
    "description",
    "allowed-tools",
    "allowed_tools",
    "metadata",
    "license",
    "compatibility",
];

#[derive(Debug, Deserialize)]
struct DruppieFront {
    id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    #[allow(dead_code)]
    system_prompt: Option<String>,
    #[serde(alias = "allowed-tools")]
    allowed_tools: Option<StringOrList>,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
}
const DRUPPIE_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "system_prompt",
    "allowed_tools",
    "allowed-tools",
    "metadata",
    "type",
    "version",
];

/// The paths a skill named `name` may live at, in lookup order.
pub fn candidate_paths(skills_dir: &Path, name: &str) -> [PathBuf; 2] {
    [
        skills_dir.join(name).join("SKILL.md"),
        skills_dir.join(format!("{name}.md")),
    ]
}

/// Load the skill `name` from `skills_dir`. Errors are diagnostics; warnings are appended.
pub fn load(
    skills_dir: &Path,
    name: &str,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Skill, Diagnostic> {
    let [nested, flat] = candidate_paths(skills_dir, name);
    let (path, format) = if nested.is_file() {
        (nested, SkillFormat::AgentSkills)
    } else if flat.is_file() {
        (flat, SkillFormat::Druppie)
    } else if let Some(text) = crate::defaults::skill_text(name) {
        let path = crate::defaults::builtin_path(Path::new("skills").join(name).join("SKILL.md"));
        let mut skill = parse(&path, text, name, SkillFormat::AgentSkills, warnings)?;
        skill.builtin = Some(text);
        return Ok(skill);
    } else {
        return Err(Diagnostic::error(
            &nested,
            0,
            0,
            format!(
                "the agent names skill `{name}` but neither {} nor {} exists, and bosun has no built-in skill of that name (built-in: {}); create one of them or fix the name",
                nested.display(),
                flat.display(),
                crate::defaults::skill_names().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Diagnostic::error(&path, 0, 0, format!("cannot read skill: {e}")))?;
    parse(&path, &text, name, format, warnings)
}

/// Parse the text of skill `name` (read from `path`, written in `format`).
fn parse(
    path: &Path,
    text: &str,
    name: &str,
    format: SkillFormat,
    warnings: &mut Vec<Diagnostic>,
) -> Result<Skill, Diagnostic> {
    let path = path.to_path_buf();
    let doc = frontmatter::split(&path, text)?;
    let off = doc.yaml_line_offset;
    let required = |v: Option<String>, key: &str| {
        v.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            let (l, c) = yaml::key_pos(doc.yaml, off, key);
            Diagnostic::error(&path, l, c, format!("skill is missing a non-empty `{key}`"))
        })
    };
    // both layouts reduce to: the identifying key, its value, description, tools, metadata
    let (key, ident, description, allowed, metadata, what) = match format {
        SkillFormat::AgentSkills => {
            let (f, w): (AgentSkillsFront, _) =
                yaml::parse(&path, doc.yaml, off, AGENTSKILLS_KEYS)?;
            warnings.extend(w);
            (
                "name",
                f.name,
                f.description,
                f.allowed_tools,
                f.metadata,
                "folder name",
            )
        }
        SkillFormat::Druppie => {
            let (f, w): (DruppieFront, _) = yaml::parse(&path, doc.yaml, off, DRUPPIE_KEYS)?;
            warnings.extend(w);
            (
                "id",
                f.id.or(f.name),
                f.description,
                f.allowed_tools,
                f.metadata,
                "file name",
            )
        }
    };
    let ident = required(ident, key)?;
    if ident != name {
        let (l, c) = yaml::key_pos(doc.yaml, off, key);
        return Err(Diagnostic::error(
            &path,
            l,
            c,
            format!("skill {key} `{ident}` must equal its {what} `{name}`"),
        ));
    }
    Ok(Skill {
        name: ident,
        description: required(description, "description")?,
        allowed_tools: allowed.map(StringOrList::into_vec).unwrap_or_default(),
        metadata,
        path,
        format,
        builtin: None,
    })
}

/// Errors reading a skill body at activation time.
#[derive(Debug, thiserror::Error)]
pub enum SkillBodyError {
    #[error("cannot read skill file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostic),
}

impl Skill {
    /// The full instructions: the markdown body (for Druppie skills: `system_prompt`, then body).
    pub fn body(&self) -> Result<String, SkillBodyError> {
        let text = match self.builtin {
            Some(t) => t.to_string(),
            None => std::fs::read_to_string(&self.path).map_err(|source| SkillBodyError::Io {
                path: self.path.clone(),
                source,
            })?,
        };
        let doc = frontmatter::split(&self.path, &text).map_err(SkillBodyError::Invalid)?;
        let mut out = String::new();
        if self.format == SkillFormat::Druppie {
            let (f, _): (DruppieFront, _) =
                yaml::parse(&self.path, doc.yaml, doc.yaml_line_offset, DRUPPIE_KEYS)
                    .map_err(SkillBodyError::Invalid)?;
            if let Some(sp) = f.system_prompt {
                out.push_str(sp.trim());
                out.push_str("\n\n");
            }
        }
        out.push_str(doc.body.trim());
        Ok(out)
    }
}
