//! Change proposals: what a suggest-mode task would have applied — each change whose dry-run
//! passed, as the tool calls that validate and make it, with the dry-run's evidence and the
//! change's fingerprint — written as a directory (`proposal.json` + one file per change) and
//! read back by `bosun apply`, which replays the calls through the guard.
//!
//! Plain serde + std::fs: the format is bosun's own (no crate describes it), and the files are
//! redacted with the runtime's redactor before they are written, as session files are.

use crate::effect::EffectClass;
use crate::guard::Fingerprint;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The index file of a proposal directory.
pub const INDEX: &str = "proposal.json";

/// The format version written in the index.
pub const FORMAT: u32 = 1;

/// A tool call as recorded: replayed as-is (with a fresh call id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCall {
    pub tool: String,
    /// The call's arguments (a JSON object, `operation` included); `vault:` references stay
    /// references.
    pub arguments: Value,
}

/// One proposed change (one file of the directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposedChange {
    pub tool: String,
    /// The change's operation (`apply`, `upgrade`, `commit_push`, …).
    pub operation: String,
    pub target: String,
    /// The effect class the guard judged the change at (`mutating` or `destructive`).
    pub effect: EffectClass,
    /// The change's identity; a fresh dry-run at `bosun apply` must compute the same.
    pub fingerprint: Fingerprint,
    /// Its short printable form.
    pub short: String,
    /// Calls that prepared the workspace for the change, replayed (in order) before its
    /// dry-run: the successful calls made before it to the same tool when that tool keeps
    /// workspace state (has a `workspace_write` operation — e.g. git's `open`, `branch`,
    /// `write_file`), so a GitOps change is rebuilt in `bosun apply`'s own workspace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<RecordedCall>,
    /// The call that validated the change (a dry-run).
    pub dry_run: RecordedCall,
    /// The call that makes the change; `None` when the model dry-ran the change but never asked
    /// for it (listed as validated, not replayable).
    pub apply: Option<RecordedCall>,
    /// The dry-run's output, redacted: what the change would do (objects created/configured,
    /// rendered chart, plan summary, GitOps diff).
    pub evidence: String,
    /// sha256 of `evidence`: for tools whose dry-run output depends only on the change and the
    /// live state (see [`evidence_is_stable`]), a fresh dry-run must say the same, else the
    /// target drifted.
    pub evidence_sha256: String,
}

/// Whether `tool`'s dry-run output is a deterministic description of the change against the
/// live state (no timestamps, durations or generated names), so that comparing it detects
/// drift. kubectl's server-side dry-run says per object `would be created` /
/// `would be configured (N lines differ)` / `unchanged`.
pub fn evidence_is_stable(tool: &str) -> bool {
    tool == "kubectl"
}

/// A line of the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The change's file in the directory.
    pub file: String,
    pub tool: String,
    pub operation: String,
    pub target: String,
    pub fingerprint: String,
    pub replayable: bool,
}

/// `proposal.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub format: u32,
    pub session: String,
    pub agent: String,
    pub task: String,
    pub created: String,
    pub changes: Vec<IndexEntry>,
}

/// A whole proposal, as written or read.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub index: Index,
    pub changes: Vec<ProposedChange>,
}

/// Errors writing or reading a proposal.
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    #[error("cannot write the proposal {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the proposal {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a bosun proposal: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// The file name of change `n` (1-based).
fn file_name(n: usize, c: &ProposedChange) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect()
    };
    format!("{n:02}-{}-{}.json", safe(&c.tool), safe(&c.operation))
}

impl Proposal {
    /// A proposal of `changes` made by session `session`.
    pub fn new(session: &str, agent: &str, task: &str, changes: Vec<ProposedChange>) -> Self {
        let entries = changes
            .iter()
            .enumerate()
            .map(|(i, c)| IndexEntry {
                file: file_name(i + 1, c),
                tool: c.tool.clone(),
                operation: c.operation.clone(),
                target: c.target.clone(),
                fingerprint: c.short.clone(),
                replayable: c.apply.is_some(),
            })
            .collect();
        Self {
            index: Index {
                format: FORMAT,
                session: session.into(),
                agent: agent.into(),
                task: task.into(),
                created: jiff::Timestamp::now().to_string(),
                changes: entries,
            },
            changes,
        }
    }

    /// Write the directory: one file per change, then the index. Every file is redacted with
    /// `redactor` (a value the runtime resolved never reaches the disk in clear).
    pub fn write(
        &self,
        dir: &Path,
        redactor: &crate::redact::Redactor,
    ) -> Result<(), ProposalError> {
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ProposalError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(werr(dir))?;
        let put = |name: &str, v: &dyn erased::Json| -> Result<(), ProposalError> {
            let path = dir.join(name);
            let text = v.pretty().map_err(werr(&path))?;
            std::fs::write(&path, redactor.redact(&text)).map_err(werr(&path))
        };
        for (e, c) in self.index.changes.iter().zip(&self.changes) {
            put(&e.file, c)?;
        }
        put(INDEX, &self.index)
    }

    /// Read a proposal from its directory (or its `proposal.json`). Each change file must name
    /// the fingerprint the index lists for it.
    pub fn load(path: &Path) -> Result<Self, ProposalError> {
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let read = |p: PathBuf| -> Result<String, ProposalError> {
            std::fs::read_to_string(&p).map_err(|source| ProposalError::Read { path: p, source })
        };
        let ipath = dir.join(INDEX);
        let index: Index =
            serde_json::from_str(&read(ipath.clone())?).map_err(|e| ProposalError::Invalid {
                path: ipath.clone(),
                detail: e.to_string(),
            })?;
        if index.format != FORMAT {
            return Err(ProposalError::Invalid {
                path: ipath,
                detail: format!("format {} (this bosun reads {FORMAT})", index.format),
            });
        }
        let mut changes = Vec::new();
        for e in &index.changes {
            if e.file.contains('/') || e.file.contains("..") {
                return Err(ProposalError::Invalid {
                    path: ipath,
                    detail: format!("change file `{}` is not a plain file name", e.file),
                });
            }
            let p = dir.join(&e.file);
            let c: ProposedChange =
                serde_json::from_str(&read(p.clone())?).map_err(|err| ProposalError::Invalid {
                    path: p.clone(),
                    detail: err.to_string(),
                })?;
            if c.fingerprint.short() != e.fingerprint {
                return Err(ProposalError::Invalid {
                    path: p,
                    detail: format!(
                        "its fingerprint {} is not the {} the index lists",
                        c.fingerprint.short(),
                        e.fingerprint
                    ),
                });
            }
            changes.push(c);
        }
        Ok(Self { index, changes })
    }
}

/// Pretty JSON of either file type behind one `&dyn` (so `write` has one writer closure).
mod erased {
    pub trait Json {
        fn pretty(&self) -> Result<String, std::io::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> Result<String, std::io::Error> {
            serde_json::to_string_pretty(self).map_err(std::io::Error::other)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fp = Fingerprint {
            tool: "kubectl".into(),
            target: "ns=a".into(),
            content_hash: "abc".into(),
        };
        let c = ProposedChange {
            tool: "kubectl".into(),
            operation: "apply".into(),
            target: "ns=a".into(),
            effect: EffectClass::Mutating,
            short: fp.short(),
            fingerprint: fp,
            setup: vec![],
            dry_run: RecordedCall {
                tool: "kubectl".into(),
                arguments: serde_json::json!({"operation": "apply_dry_run"}),
            },
            apply: None,
            evidence: "would be created".into(),
            evidence_sha256: crate::tools::sha256_hex(b"would be created"),
        };
        let p = Proposal::new("s1", "agent", "task", vec![c]);
        let r = crate::redact::Redactor::new();
        p.write(dir.path(), &r).expect("write");
        let back = Proposal::load(dir.path()).expect("load");
        assert_eq!(back.changes, p.changes);
        assert_eq!(back.index.changes[0].file, "01-kubectl-apply.json");
        // a change file naming another fingerprint than the index is refused
        let f = dir.path().join("01-kubectl-apply.json");
        let t = std::fs::read_to_string(&f)
            .expect("read")
            .replace("abc", "abd");
        std::fs::write(&f, t).expect("write");
        assert!(Proposal::load(&dir.path().join(INDEX)).is_err());
    }
}
