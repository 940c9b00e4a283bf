//! Session persistence: one JSONL file per session under the sessions directory — the messages,
//! planner moves and recorded dry-runs, appended as they happen, so a session that crashed can be
//! resumed. On resume, the session's audit log says which changes were applied (or may have
//! been: decided but never finished); the guard refuses to apply those again.

use crate::guard::Fingerprint;
use crate::model::Message;
use crate::planner::State;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of a session file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Meta {
        id: String,
        agent: String,
        model: String,
        created: String,
    },
    Message {
        message: Message,
    },
    State {
        state: State,
    },
    DryRun {
        fingerprint: Fingerprint,
        at: String,
    },
    /// An apply was admitted on this dry-run: it is used up, whatever happened to the apply
    /// (written before the apply runs).
    DryRunUsed {
        fingerprint: Fingerprint,
    },
    Report {
        report: String,
    },
    /// How a task ended: the runtime's status (`success`, `failed`, `needs_approval`, or
    /// `interrupted` / `error` when it ended without an answer) and why.
    Outcome {
        status: String,
        verdict: String,
    },
}

/// Errors reading or writing session files.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write session file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no session `{id}` in {dir}; `bosun sessions list` shows the sessions")]
    NotFound { id: String, dir: PathBuf },
    #[error("{path}:{line}: corrupt session entry: {detail}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An open session file, appended to.
pub struct SessionFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl SessionFile {
    pub fn open(dir: &Path, id: &str) -> Result<Self, StoreError> {
        let path = dir.join(format!("{id}.jsonl"));
        let err = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry; the line is redacted before it is written.
    pub fn append(&self, redactor: &crate::redact::Redactor, e: &Entry) -> Result<(), StoreError> {
        let line = serde_json::to_string(e).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        let line = redactor.redact(&line);
        let mut f = match self.file.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        let err = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        f.write_all(line.as_bytes()).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
        f.flush().map_err(err)
    }
}

/// A session read back from disk.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    pub id: String,
    pub agent: String,
    pub model: String,
    pub created: String,
    pub messages: Vec<Message>,
    pub state: Option<State>,
    pub dry_runs: Vec<(Fingerprint, String)>,
    pub report: Option<String>,
    /// The last task's outcome: (status, verdict).
    pub outcome: Option<(String, String)>,
}

/// Read session `id` from `dir`. A truncated last line (a crash mid-write) is ignored; any other
/// corrupt line is an error.
pub fn load(dir: &Path, id: &str) -> Result<Saved, StoreError> {
    let path = dir.join(format!("{id}.jsonl"));
    let f = File::open(&path).map_err(|_| StoreError::NotFound {
        id: id.into(),
        dir: dir.to_path_buf(),
    })?;
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|source| StoreError::Read {
            path: path.clone(),
            source,
        })?;
    let mut s = Saved {
        id: id.into(),
        ..Default::default()
    };
    let n = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: Entry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(_) if i + 1 == n => break, // torn final write
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path,
                    line: i + 1,
                    detail: e.to_string(),
                })
            }
        };
        match e {
            Entry::Meta {
                agent,
                model,
                created,
                ..
            } => {
                s.agent = agent;
                s.model = model;
                s.created = created;
            }
            Entry::Message { message } => s.messages.push(message),
            Entry::State { state } => s.state = Some(state),
            Entry::DryRun { fingerprint, at } => s.dry_runs.push((fingerprint, at)),
            // entries are in order: a use removes the dry-runs of that change recorded before it
            Entry::DryRunUsed { fingerprint } => s.dry_runs.retain(|(f, _)| f != &fingerprint),
            Entry::Report { report } => s.report = Some(report),
            Entry::Outcome { status, verdict } => s.outcome = Some((status, verdict)),
        }
    }
    Ok(s)
}

/// A line of `bosun sessions list`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub created: String,
    pub agent: String,
    /// The final planner state of the last task.
    pub state: String,
    /// The last task's outcome (`success`, `failed`, `needs_approval`, `interrupted`, `error`);
    /// `None`: still running, or cut off before it ended.
    pub outcome: Option<String>,
    /// Why the runtime decided the outcome.
    pub verdict: Option<String>,
    pub messages: usize,
    pub task: String,
}

/// Every session in `dir`, newest first.
pub fn list(dir: &Path) -> Result<Vec<Summary>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => {
            return Err(StoreError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(id) = name.strip_suffix(".jsonl") else {
            continue;
        };
        let Ok(s) = load(dir, id) else { continue };
        let task = s
            .messages
            .iter()
            .find_map(|m| match m {
                Message::User { content } => Some(content.lines().next().unwrap_or("").to_string()),
                _ => None,
            })
            .unwrap_or_default();
        out.push(Summary {
            id: s.id,
            created: s.created,
            agent: s.agent,
            state: s.state.map_or("intake".into(), |st| st.to_string()),
            outcome: s.outcome.as_ref().map(|o| o.0.clone()),
            verdict: s.outcome.map(|o| o.1),
            messages: s.messages.len(),
            task,
        });
    }
    out.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(out)
}

/// From an audit log: fingerprints (short form) of changes that were applied, or decided and
/// never finished (a crash mid-apply — they may have been applied). Read with the same reader
/// as the report ([`crate::audit::read_changes`]).
pub fn applied_from_audit(audit: &Path) -> Vec<String> {
    let (changes, _) = crate::audit::read_changes(audit);
    let mut out: Vec<String> = changes
        .into_iter()
        .filter(|c| c.ok != Some(false) && !c.fingerprint.is_empty())
        .map(|c| c.fingerprint)
        .collect();
    out.sort();
    out.dedup();
    out
}
