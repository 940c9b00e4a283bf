//! The audit log: one append-only JSONL file per session. Every tool call is recorded twice —
//! when the guard decides (before anything runs) and when it finishes — with redacted arguments,
//! effect class, verdict and reason, fingerprint, approval, result summary and timing; planner
//! transitions are recorded too. A change is not executed if its decision cannot be written.

use crate::guard::Decision;
use crate::planner::State;
use crate::redact::Redactor;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One audit record.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record<'a> {
    Decided {
        decision: &'a Decision,
        /// Redacted arguments.
        arguments: &'a str,
        state: State,
    },
    Finished {
        call_id: &'a str,
        tool: &'a str,
        ok: bool,
        /// First line of the (redacted) result.
        summary: &'a str,
        duration_ms: u64,
    },
    Transition {
        from: State,
        to: State,
        justification: &'a str,
    },
}

/// An append-only audit file.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
    session: String,
}

/// The audit log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the audit log {path}: {source}")]
pub struct AuditError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl AuditLog {
    /// Open (append) `<dir>/<session>.audit.jsonl`, creating `dir`.
    pub fn open(dir: &Path, session: &str) -> Result<Self, AuditError> {
        let path = dir.join(format!("{session}.audit.jsonl"));
        let err = |source| AuditError {
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
            session: session.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record (redacted once more as a last line of defence) and flush it.
    pub fn write(&self, redactor: &Redactor, rec: &Record<'_>) -> Result<(), AuditError> {
        let line = serde_json::json!({
            "ts": jiff::Timestamp::now().to_string(),
            "session": self.session,
            "record": rec,
        })
        .to_string();
        let line = redactor.redact(&line);
        let mut f = match self.file.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        let err = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        f.write_all(line.as_bytes()).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
        f.flush().map_err(err)
    }
}

/// A new session id: UTC time plus random hex, sortable.
pub fn new_session_id() -> String {
    use rand::Rng;
    let t = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S").to_string();
    let r: u32 = rand::rng().random();
    format!("{t}-{r:08x}")
}
