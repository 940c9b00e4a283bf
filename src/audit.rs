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
        /// What would undo the change, when the tool says so (after
        /// [`crate::tools::UNDO_HEADER`] in its result).
        #[serde(skip_serializing_if = "Option::is_none")]
        undo: Option<&'a str>,
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

/// One change as the audit log tells it: the truth about what reached a cluster, repository,
/// vault or state file — whatever the model said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeRecord {
    pub call_id: String,
    pub tool: String,
    pub operation: String,
    pub target: String,
    pub fingerprint: String,
    pub effect: String,
    pub approved_by: Option<String>,
    /// `true` when the tool reported success; `false` when it failed; `None` when the log has
    /// no result (the run was cut off while it ran — it may have changed something).
    pub ok: Option<bool>,
    /// First line of the result.
    pub result: String,
    /// First line of the successful dry-run of the same change, when the log has one.
    pub dry_run_evidence: Option<String>,
    /// The runtime's own undo of a change whose checks failed.
    pub rollback: bool,
    /// What the approver was shown (the dry-run's result), when the change needed approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_diff: Option<String>,
    /// What would undo the change, as its tool computed it (terraform: the inverse of the
    /// applied plan); not run by bosun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
    /// The kube context of the change, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The Kubernetes objects it touched, as the tool resolved them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<crate::call::ObjectRef>,
}

/// A check the runtime ran on an applied change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckRecord {
    pub tool: String,
    pub target: String,
    pub ok: bool,
    pub result: String,
}

/// Every admitted change and every verification check in an audit log, in order. Lines that
/// do not parse are skipped (a line cut by a crash).
pub fn read_changes(path: &Path) -> (Vec<ChangeRecord>, Vec<CheckRecord>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (vec![], vec![]);
    };
    let mut changes: Vec<ChangeRecord> = Vec::new();
    let mut checks: Vec<(String, CheckRecord)> = Vec::new();
    let mut evidence: std::collections::HashMap<String, String> = Default::default();
    let mut dry_ids: std::collections::HashMap<String, String> = Default::default();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let r = &v["record"];
        match r["event"].as_str() {
            Some("decided") if r["decision"]["verdict"] == "allow" => {
                let d = &r["decision"];
                let id = s(&d["call_id"]);
                match d["effect"].as_str() {
                    Some("mutating" | "destructive") => changes.push(ChangeRecord {
                        rollback: id.starts_with("bosun-rollback-"),
                        call_id: id,
                        tool: s(&d["tool"]),
                        operation: s(&d["operation"]),
                        target: s(&d["target"]),
                        fingerprint: s(&d["fingerprint"]),
                        effect: s(&d["effect"]),
                        approved_by: d["approved_by"].as_str().map(str::to_string),
                        approval_diff: d["diff"].as_str().map(str::to_string),
                        undo: None,
                        ok: None,
                        result: String::new(),
                        dry_run_evidence: None,
                        context: d["context"].as_str().map(str::to_string),
                        objects: serde_json::from_value(d["objects"].clone()).unwrap_or_default(),
                    }),
                    Some("dry_run") => {
                        dry_ids.insert(id, s(&d["fingerprint"]));
                    }
                    Some("read_only") if id.starts_with("bosun-verify-") => checks.push((
                        id,
                        CheckRecord {
                            tool: s(&d["tool"]),
                            target: s(&d["target"]),
                            ok: false,
                            result: String::new(),
                        },
                    )),
                    _ => {}
                }
            }
            Some("finished") => {
                let id = s(&r["call_id"]);
                let ok = r["ok"].as_bool().unwrap_or(false);
                let summary = s(&r["summary"]);
                if let Some(fp) = dry_ids.remove(&id) {
                    if ok && !fp.is_empty() {
                        evidence.insert(fp, summary);
                    }
                } else if let Some(c) = changes.iter_mut().rev().find(|c| c.call_id == id) {
                    c.ok = Some(ok);
                    c.dry_run_evidence = evidence.get(&c.fingerprint).cloned();
                    c.result = summary;
                    c.undo = r["undo"].as_str().map(str::to_string);
                } else if let Some((_, c)) = checks.iter_mut().rev().find(|(i, _)| *i == id) {
                    c.ok = ok;
                    c.result = summary;
                }
            }
            _ => {}
        }
    }
    (changes, checks.into_iter().map(|(_, c)| c).collect())
}
