//! The task report (the seed agent's outputs): Success/Fail, the changes applied with their
//! dry-run evidence, access points, credentials as vault references only.

use anyhow::Context;
use bosun::session::{AppliedChange, Outcome, SessionError};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Report {
    /// The runtime's verdict (`success`, `failed`, `needs_approval`), never the model's.
    pub status: &'static str,
    /// Why the runtime decided `status`.
    pub verdict: String,
    pub task: String,
    pub session: String,
    pub agent: String,
    pub model: String,
    pub state: Option<String>,
    pub answer: Option<String>,
    pub report: Option<String>,
    pub error: Option<String>,
    pub changes_applied: Vec<AppliedChange>,
    /// Every change the audit log shows admitted — what reached a cluster, repository, vault
    /// or state file — with its result, dry-run evidence and whether it was a rollback; on
    /// success and failure alike (after a limit, an error or Ctrl-C too).
    pub changes: Vec<bosun::audit::ChangeRecord>,
    /// The checks the runtime ran on applied changes.
    pub verification: Vec<bosun::audit::CheckRecord>,
    /// Changes the policy denied or that wait for approval.
    pub blocked: Vec<Blocked>,
    /// Suggest mode: the change proposal (nothing of it was applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<ProposalSummary>,
    /// Where what the task changed is reached, read from the cluster after the task (Services
    /// of type LoadBalancer/NodePort and Ingress hosts and paths of the changed objects); see
    /// [`Report::read_access_points`].
    pub access_points: Vec<String>,
    /// URLs the model's answer names: its claim, not checked.
    pub claimed_access_points: Vec<String>,
    /// `vault:` references only — never values.
    pub credentials: Vec<String>,
    pub turns: Option<u32>,
    pub tool_calls: Option<u32>,
    pub usage: Option<bosun::model::Usage>,
    pub audit_log: Option<String>,
}

/// The change proposal of a suggest-mode task, as the report lists it.
#[derive(Debug, Serialize)]
pub struct ProposalSummary {
    /// The proposal directory (`bosun apply DIR`), when it was written.
    pub dir: Option<String>,
    pub changes: Vec<ProposedLine>,
}

/// One proposed change in the report.
#[derive(Debug, Serialize)]
pub struct ProposedLine {
    pub tool: String,
    pub operation: String,
    pub target: String,
    pub fingerprint: String,
    /// Whether `bosun apply` can replay it (the model asked for the change, not only its
    /// dry-run).
    pub replayable: bool,
    pub dry_run_evidence: String,
}

#[derive(Debug, Serialize)]
pub struct Blocked {
    pub tool: String,
    pub operation: Option<String>,
    pub target: Option<String>,
    pub reason: String,
    /// What the change would do (its dry-run's result), when a human was asked to approve it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

fn urls(text: &str, out: &mut Vec<String>) {
    for w in text.split(|c: char| c.is_whitespace() || "<>()[]\"'`,".contains(c)) {
        if (w.starts_with("http://") || w.starts_with("https://")) && w.len() > 8 {
            let w = w.trim_end_matches(['.', ';', ':']).to_string();
            if !out.contains(&w) {
                out.push(w);
            }
        }
    }
}

impl Report {
    pub fn new(
        task: &str,
        session: &str,
        agent: &str,
        model: &str,
        audit: Option<&str>,
        result: &Result<Outcome, SessionError>,
    ) -> Self {
        let (changes, verification) = audit
            .map(|a| bosun::audit::read_changes(Path::new(a)))
            .unwrap_or_default();
        let mut r = Report {
            status: "failed",
            verdict: String::new(),
            changes,
            verification,
            task: task.into(),
            session: session.into(),
            agent: agent.into(),
            model: model.into(),
            state: None,
            answer: None,
            report: None,
            error: None,
            changes_applied: vec![],
            blocked: vec![],
            proposal: None,
            access_points: vec![],
            claimed_access_points: vec![],
            credentials: vec![],
            turns: None,
            tool_calls: None,
            usage: None,
            audit_log: audit.map(str::to_string),
        };
        match result {
            Ok(o) => {
                r.status = o.status.as_str();
                r.verdict = o.verdict.clone();
                r.state = Some(o.state.to_string());
                r.answer = Some(o.answer.clone());
                r.report = o.report.clone();
                r.changes_applied = o.applied.clone();
                r.blocked = o
                    .blocked
                    .iter()
                    .map(|d| Blocked {
                        tool: d.tool.clone(),
                        operation: d.operation.clone(),
                        target: d.target.clone(),
                        reason: d.reason.clone(),
                        diff: d.diff.clone(),
                    })
                    .collect();
                if !o.proposed.is_empty() {
                    r.proposal = Some(ProposalSummary {
                        dir: o.proposal_dir.as_ref().map(|d| d.display().to_string()),
                        changes: o
                            .proposed
                            .iter()
                            .map(|c| ProposedLine {
                                tool: c.tool.clone(),
                                operation: c.operation.clone(),
                                target: c.target.clone(),
                                fingerprint: c.short.clone(),
                                replayable: c.apply.is_some(),
                                dry_run_evidence: c
                                    .evidence
                                    .lines()
                                    .take(20)
                                    .collect::<Vec<_>>()
                                    .join("\n"),
                            })
                            .collect(),
                    });
                }
                r.turns = Some(o.turns);
                r.tool_calls = Some(o.tool_calls);
                r.usage = Some(o.usage);
                let mut text = o.answer.clone();
                if let Some(rep) = &o.report {
                    text.push('\n');
                    text.push_str(rep);
                }
                for c in &o.applied {
                    text.push('\n');
                    text.push_str(&c.result);
                }
                urls(&text, &mut r.claimed_access_points);
                r.credentials = bosun::secrets::find_refs(&text)
                    .into_iter()
                    .map(|v| v.to_string())
                    .collect();
            }
            Err(e) => {
                r.error = Some(e.to_string());
                r.verdict = format!("the task did not finish: {e}");
                // what reached the world before it stopped, from the audit log
                r.changes_applied = r
                    .changes
                    .iter()
                    .filter(|c| c.ok != Some(false))
                    .map(|c| AppliedChange {
                        tool: c.tool.clone(),
                        operation: c.operation.clone(),
                        target: c.target.clone(),
                        fingerprint: c.fingerprint.clone(),
                        approved_by: c.approved_by.clone(),
                        dry_run_evidence: c.dry_run_evidence.clone().unwrap_or_default(),
                        result: if c.ok.is_none() {
                            "(cut off while running: it may have changed something)".into()
                        } else {
                            c.result.clone()
                        },
                    })
                    .collect();
            }
        }
        r
    }

    /// Fill `access_points` from the cluster: the objects the audit log says were changed
    /// successfully (rollbacks left out), per kube context. A cluster that cannot be reached is
    /// said in the list instead.
    pub async fn read_access_points(&mut self, kube: &bosun::kube_client::KubeTarget) {
        let mut by_context: std::collections::BTreeMap<
            Option<String>,
            Vec<bosun::tools::ObjectRef>,
        > = Default::default();
        for c in self
            .changes
            .iter()
            .filter(|c| c.ok == Some(true) && !c.rollback)
        {
            if c.objects.is_empty() {
                continue;
            }
            let v = by_context.entry(c.context.clone()).or_default();
            for o in &c.objects {
                if !v.contains(o) {
                    v.push(o.clone());
                }
            }
        }
        for (context, objects) in by_context {
            let target = bosun::kube_client::KubeTarget {
                kubeconfig: kube.kubeconfig.clone(),
                context: context.clone().or_else(|| kube.context.clone()),
            };
            let read = async {
                match bosun::kube_client::connect(&target).await {
                    Ok(cluster) => bosun::tools::blocks::access_points(&cluster, &objects)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            };
            let found = tokio::time::timeout(std::time::Duration::from_secs(20), read)
                .await
                .unwrap_or_else(|_| Err("no answer within 20 s".into()));
            match found {
                Ok(v) => {
                    for a in v {
                        if !self.access_points.contains(&a) {
                            self.access_points.push(a);
                        }
                    }
                }
                Err(e) => self.access_points.push(format!(
                    "(could not read access points from context {}: {e})",
                    context.as_deref().unwrap_or("(current)")
                )),
            }
        }
    }

    fn markdown(&self) -> String {
        let mut m = format!(
            "# bosun report: {}\n\n- verdict (bosun's, not the model's): {}\n- task: {}\n- session: `{}` (agent `{}`, model `{}`)\n- final state: {}\n",
            match self.status {
                "success" => "Success",
                "needs_approval" => "Needs approval",
                _ => "Fail",
            },
            self.verdict,
            self.task.lines().next().unwrap_or(""),
            self.session,
            self.agent,
            self.model,
            self.state.as_deref().unwrap_or("-"),
        );
        if let Some(a) = &self.audit_log {
            m.push_str(&format!("- audit log: `{a}`\n"));
        }
        if let Some(e) = &self.error {
            m.push_str(&format!("\n## Error\n\n{e}\n"));
        }
        if self.status != "success" && self.model_claims_success() {
            m.push_str("\n> **The model's answer claims success; bosun's verdict is not success** — see the verdict above and the audit log. Trust the audit log.\n");
        }
        m.push_str("\n## Changes applied\n\n");
        if self.changes_applied.is_empty() {
            m.push_str("None.\n");
        }
        for c in &self.changes_applied {
            m.push_str(&format!(
                "### {}.{} — {}\n\nchange `{}`{}\n\nDry-run evidence:\n\n```\n{}\n```\n\nResult:\n\n```\n{}\n```\n\n",
                c.tool,
                c.operation,
                c.target,
                c.fingerprint,
                c.approved_by.as_ref().map(|b| format!(", approved by {b}")).unwrap_or_default(),
                c.dry_run_evidence,
                c.result
            ));
        }
        let undoable: Vec<_> = self
            .changes
            .iter()
            .filter_map(|c| Some((c, c.undo.as_ref()?)))
            .collect();
        if !undoable.is_empty() {
            m.push_str("\n## What would undo the changes (not run)\n\n");
            for (c, u) in undoable {
                m.push_str(&format!(
                    "### {}.{} — {}\n\n```\n{u}\n```\n\n",
                    c.tool, c.operation, c.target
                ));
            }
        }
        let approved: Vec<_> = self
            .changes
            .iter()
            .filter_map(|c| Some((c, c.approval_diff.as_ref()?)))
            .collect();
        if !approved.is_empty() {
            m.push_str("\n## Approvals: what the approver was shown\n\n");
            for (c, d) in approved {
                m.push_str(&format!(
                    "### {}.{} — {} (approved by {})\n\n```diff\n{d}\n```\n\n",
                    c.tool,
                    c.operation,
                    c.target,
                    c.approved_by.as_deref().unwrap_or("?")
                ));
            }
        }
        if let Some(p) = &self.proposal {
            m.push_str(&format!(
                "\n## Change proposal (suggest mode: nothing applied)\n\n{}\n\n",
                p.dir
                    .as_ref()
                    .map(|d| format!("Written to `{d}`; apply it with `bosun apply {d}`."))
                    .unwrap_or_else(|| "Not written (no proposal or sessions directory).".into())
            ));
            for c in &p.changes {
                m.push_str(&format!(
                    "### {}.{} — {}\n\nchange `{}`{}\n\nDry-run evidence:\n\n```\n{}\n```\n\n",
                    c.tool,
                    c.operation,
                    c.target,
                    c.fingerprint,
                    if c.replayable { "" } else { " (validated only: the change itself was never asked for, so `bosun apply` skips it)" },
                    c.dry_run_evidence
                ));
            }
        }
        let rolled_back: Vec<_> = self.changes.iter().filter(|c| c.rollback).collect();
        if !self.verification.is_empty() || !rolled_back.is_empty() {
            m.push_str("\n## Verification\n\n");
            for c in &self.verification {
                m.push_str(&format!(
                    "- {} {} {}: {}\n",
                    if c.ok { "passed" } else { "FAILED" },
                    c.tool,
                    c.target,
                    c.result
                ));
            }
            for c in rolled_back {
                m.push_str(&format!(
                    "- rolled back by bosun: {}.{} {} — {}\n",
                    c.tool,
                    c.operation,
                    c.target,
                    match c.ok {
                        Some(true) => c.result.clone(),
                        Some(false) => format!("FAILED: {}", c.result),
                        None => "cut off".into(),
                    }
                ));
            }
        }
        if !self.blocked.is_empty() {
            m.push_str("\n## Stopped by the guard or waiting for approval\n\n");
            for b in &self.blocked {
                m.push_str(&format!(
                    "- {}.{} {}: {}\n",
                    b.tool,
                    b.operation.as_deref().unwrap_or("?"),
                    b.target.as_deref().unwrap_or(""),
                    b.reason
                ));
                if let Some(d) = &b.diff {
                    m.push_str(&format!(
                        "\n  What it would change:\n\n```diff\n{d}\n```\n\n"
                    ));
                }
            }
        }
        m.push_str("\n## Access points\n\n");
        if self.access_points.is_empty() {
            m.push_str("None found in the cluster.\n");
        }
        for a in &self.access_points {
            m.push_str(&format!("- {a}\n"));
        }
        if !self.claimed_access_points.is_empty() {
            m.push_str("\nNamed by the model (not checked):\n\n");
            for a in &self.claimed_access_points {
                m.push_str(&format!("- {a}\n"));
            }
        }
        m.push_str("\n## Credentials (vault references)\n\n");
        if self.credentials.is_empty() {
            m.push_str("None.\n");
        }
        for c in &self.credentials {
            m.push_str(&format!("- `{c}`\n"));
        }
        if let Some(a) = &self.answer {
            m.push_str(&format!("\n## Answer\n\n{a}\n"));
        }
        if let Some(r) = &self.report {
            m.push_str(&format!("\n## Agent's report\n\n{r}\n"));
        }
        m
    }

    /// Whether the model's own words say it succeeded.
    fn model_claims_success(&self) -> bool {
        let text = format!(
            "{} {}",
            self.answer.as_deref().unwrap_or(""),
            self.report.as_deref().unwrap_or("")
        )
        .to_ascii_lowercase();
        [
            "success",
            "succeeded",
            "completed",
            "deployed",
            "all good",
            "done",
        ]
        .iter()
        .any(|w| text.contains(w))
    }

    /// Write as Markdown (`.md`) or JSON (`.json`).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => serde_json::to_string_pretty(self)?,
            Some("md") | Some("markdown") => self.markdown(),
            _ => anyhow::bail!(
                "--report wants a .md or .json file name, got {}",
                path.display()
            ),
        };
        std::fs::write(path, text).with_context(|| format!("writing the report {}", path.display()))
    }
}
