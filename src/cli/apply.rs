//! `bosun apply PROPOSAL`: apply a suggest-mode change proposal without a model — every change
//! is re-validated (its recorded dry-run call replayed through the guard; the fresh fingerprint
//! must equal the proposal's, and for kubectl the dry-run must say the same), then its recorded
//! change call is replayed through the one dispatch: policy, approvals and audit as in a run.

use super::run::{self, RunArgs};
use super::{exit, OutputFormat};
use bosun::dispatch::CallEnv;
use bosun::guard::Guard;
use bosun::model::ToolCall;
use bosun::planner::State;
use bosun::proposal::{evidence_is_stable, Proposal, ProposedChange};
use clap::Parser;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// The proposal directory `bosun run --mode suggest` wrote (or its proposal.json).
    pub proposal: PathBuf,
    /// kubeconfig for the Kubernetes tools (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kube context (default: the kubeconfig's current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Approve changes that need approval in these environments without asking
    /// (`--approve env=dev[,tier]`; prod only when named), as for `bosun run`. Without it (and
    /// without --yes) each change that needs approval is shown on stderr and approved only by
    /// `yes` on stdin (no answer: denied).
    #[arg(long, value_name = "env=ENV[,ENV]")]
    pub approve: Vec<String>,
    /// Approve in dev and tier (never prod). The dry-run rule still applies.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Where the audit log goes (default: ~/.local/state/bosun/audit).
    #[arg(long)]
    pub audit_dir: Option<PathBuf>,
    /// text: one line per change on stderr; json: the result object on stdout.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// What happened to one change.
#[derive(Debug, Serialize)]
struct ChangeResult {
    tool: String,
    operation: String,
    target: String,
    fingerprint: String,
    /// `applied`, `drifted`, `refused`, `failed`, `check_failed`, `skipped`, `not_run`.
    result: &'static str,
    detail: String,
}

#[derive(Debug, Serialize)]
struct ApplyReport {
    /// `success`, `drifted`, `stopped`, `failed`.
    status: &'static str,
    proposal: String,
    session: String,
    changes: Vec<ChangeResult>,
    audit_log: Option<String>,
}

/// The runtime's flags for `bosun run`, defaulted, with apply's cluster and approval flags.
fn run_args(a: &ApplyArgs) -> anyhow::Result<RunArgs> {
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        run: RunArgs,
    }
    let mut r = Defaults::try_parse_from(["bosun-apply"])?.run;
    r.kubeconfig = a.kubeconfig.clone();
    r.context = a.context.clone();
    r.approve = a.approve.clone();
    r.yes = a.yes;
    r.audit_dir = a.audit_dir.clone();
    // no model is involved: the runtime needs a client, which is never called
    r.base_url = Some("http://127.0.0.1:9/v1".into());
    Ok(r)
}

fn call(id: String, rec: &bosun::proposal::RecordedCall) -> ToolCall {
    ToolCall {
        id,
        name: rec.tool.clone(),
        arguments: rec.arguments.to_string(),
    }
}

pub async fn apply(dir: &Path, a: ApplyArgs) -> anyhow::Result<ExitCode> {
    let text = a.output == OutputFormat::Text;
    let proposal = match Proposal::load(&a.proposal) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bosun: {e}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    let ra = run_args(&a)?;
    let rt = match run::build_runtime(dir, &ra).await {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bosun: {e:#}");
            return Ok(ExitCode::from(exit::USAGE));
        }
    };
    if let Err(e) = run::preflight(&rt, &ra).await {
        eprintln!("bosun: {e:#}");
        return Ok(ExitCode::from(exit::USAGE));
    }
    let session = bosun::audit::new_session_id();
    let audit = match &rt.audit_dir {
        Some(d) => Some(bosun::audit::AuditLog::open(d, &session)?),
        None => None,
    };
    let mut cfg = rt.guard_config.clone();
    if a.approve.is_empty() && !a.yes {
        cfg.approver = std::sync::Arc::new(StdinApprover);
    }
    let guard = Guard::new(cfg);
    let env = CallEnv {
        registry: &rt.registry,
        ctx: &rt.ctx,
        guard: &guard,
        audit: audit.as_ref(),
        file: None,
        events: None,
        // no model, no session: a proposal's dry-runs and changes run to their end
        interrupt: None,
    };
    let mut results: Vec<ChangeResult> = Vec::new();
    let result = |c: &ProposedChange, result: &'static str, detail: String| ChangeResult {
        tool: c.tool.clone(),
        operation: c.operation.clone(),
        target: c.target.clone(),
        fingerprint: c.short.clone(),
        result,
        detail,
    };
    if text {
        eprintln!(
            "proposal {} (session {}, {} change(s)): {}",
            a.proposal.display(),
            proposal.index.session,
            proposal.changes.len(),
            bosun::term::printable(proposal.index.task.lines().next().unwrap_or(""))
        );
    }
    // 1. re-validate every change before applying any: the proposal's dry-runs all ran on the
    //    state before its first change, and so do these
    let mut drifted = false;
    for (n, c) in proposal.changes.iter().enumerate() {
        if c.apply.is_none() {
            results.push(result(
                c,
                "skipped",
                "validated only: the suggest-mode task dry-ran this change but never asked for it"
                    .into(),
            ));
            continue;
        }
        let why = revalidate(&env, &rt, c, &format!("apply-{session}-{n}")).await;
        match why {
            Some(w) => {
                drifted = true;
                if text {
                    eprintln!(
                        "✗ {}.{} {} ({}): refused — {}",
                        c.tool,
                        c.operation,
                        c.target,
                        c.short,
                        bosun::term::printable(&w)
                    );
                }
                results.push(result(c, "drifted", w));
            }
            None => {
                if text {
                    eprintln!(
                        "✓ {}.{} {} ({}): re-validated, same fingerprint",
                        c.tool, c.operation, c.target, c.short
                    );
                }
                results.push(result(c, "not_run", "re-validated".into()));
            }
        }
    }
    let mut status = if drifted { "drifted" } else { "success" };
    // 2. apply, in order, through the guard (the fresh dry-run authorises exactly one apply;
    //    approvals as the policy says), then the change's own checks
    if !drifted {
        for (n, (c, r)) in proposal.changes.iter().zip(results.iter_mut()).enumerate() {
            let Some(rec) = &c.apply else { continue };
            if status != "success" {
                break;
            }
            let ac = call(format!("apply-{session}-{n}"), rec);
            let d = env.call(&ac, State::Deployment).await;
            if d.ran.is_none() {
                status = "stopped";
                (r.result, r.detail) = ("refused", d.output.clone());
            } else if !d.ok {
                status = "failed";
                (r.result, r.detail) = ("failed", d.output.clone());
            } else {
                (r.result, r.detail) = (
                    "applied",
                    d.output.lines().take(20).collect::<Vec<_>>().join("\n"),
                );
                for (k, v) in d.follow_ups.verify.iter().enumerate() {
                    let vc = ToolCall {
                        id: format!("apply-{session}-{n}-verify-{k}"),
                        name: v.tool.clone(),
                        arguments: v.arguments.to_string(),
                    };
                    let chk = env.call(&vc, State::Verification).await;
                    if !chk.ok {
                        status = "failed";
                        r.result = "check_failed";
                        r.detail.push_str(&format!(
                            "\ncheck {} failed: {}",
                            v.tool,
                            chk.output.lines().next().unwrap_or("")
                        ));
                        break;
                    }
                }
            }
            if text {
                eprintln!(
                    "{} {}.{} {} ({}): {} — {}",
                    if r.result == "applied" { "✓" } else { "✗" },
                    c.tool,
                    c.operation,
                    c.target,
                    c.short,
                    r.result,
                    bosun::term::printable(r.detail.lines().next().unwrap_or(""))
                );
            }
        }
    }
    let audit_log = audit.as_ref().map(|l| l.path().display().to_string());
    if text {
        if let Some(l) = &audit_log {
            eprintln!("audit log: {l}");
        }
        match status {
            "drifted" => eprintln!("bosun: nothing was applied: the proposal no longer matches what it would do — run the task again in suggest mode (exit 3)"),
            "stopped" => eprintln!("bosun: a change was stopped by the guard (policy or approval); later changes were not applied (exit 3)"),
            "failed" => eprintln!("bosun: a change or its check failed; later changes were not applied (exit 1)"),
            _ => eprintln!("bosun: the proposal was applied"),
        }
    }
    if a.output == OutputFormat::Json {
        let rep = ApplyReport {
            status,
            proposal: a.proposal.display().to_string(),
            session,
            changes: results,
            audit_log,
        };
        println!("{}", serde_json::to_string_pretty(&rep)?);
    }
    Ok(ExitCode::from(match status {
        "success" => exit::SUCCESS,
        "failed" => exit::TASK_FAILED,
        _ => exit::STOPPED,
    }))
}

/// Re-validate one change: replay its workspace setup, then its dry-run through the guard.
/// `None` when the fresh dry-run passed with the proposal's fingerprint (and, where the tool's
/// dry-run output is deterministic, the same output); else why the change is refused.
async fn revalidate(
    env: &CallEnv<'_>,
    rt: &bosun::session::Runtime,
    c: &ProposedChange,
    id: &str,
) -> Option<String> {
    // the workspace the change was made in (e.g. the GitOps clone and its file writes)
    for (k, s) in c.setup.iter().enumerate() {
        let d = env
            .call(&call(format!("{id}-setup-{k}"), s), State::Coding)
            .await;
        if !d.ok {
            return Some(format!(
                "preparing its workspace failed: {}",
                d.output.lines().take(6).collect::<Vec<_>>().join("\n")
            ));
        }
    }
    let dc = call(format!("{id}-dry-run"), &c.dry_run);
    let adm = env.admit(&dc, State::Validation).await;
    let (ok, raw, fp) = match adm.admitted {
        Some(ad) => {
            let fp = ad.fingerprint.clone();
            let ex = env.execute(ad).await;
            (ex.ok, ex.output, fp)
        }
        None => (false, adm.refusal.clone().unwrap_or_default(), None),
    };
    let shown = env.finish(&dc, ok, &raw, adm.started);
    if !ok {
        return Some(format!(
            "its fresh dry-run did not pass: {}",
            shown.lines().take(6).collect::<Vec<_>>().join("\n")
        ));
    }
    if fp.as_ref() != Some(&c.fingerprint) {
        return Some(format!(
            "its fresh dry-run computes change {} but the proposal recorded {}: the proposal file was edited, or what the call resolves to changed since",
            fp.map(|f| f.short()).unwrap_or_else(|| "(none)".into()),
            c.short
        ));
    }
    let now = rt.ctx.redactor.redact(&raw);
    if evidence_is_stable(&c.tool) && bosun::tools::sha256_hex(now.as_bytes()) != c.evidence_sha256
    {
        return Some(format!(
            "the live state drifted since the proposal: the dry-run then said\n{}\nand now says\n{}",
            c.evidence.trim_end(),
            now.trim_end()
        ));
    }
    None
}

/// Asks on stderr and reads the answer from stdin, as `terraform apply` does: only `yes`
/// approves; any other answer, or none (stdin closed), denies.
struct StdinApprover;

impl bosun::guard::Approver for StdinApprover {
    fn decide<'a>(
        &'a self,
        req: &'a bosun::guard::ApprovalRequest,
    ) -> futures::future::BoxFuture<'a, bosun::guard::ApprovalDecision> {
        Box::pin(async move {
            eprintln!(
                "\napproval needed: {} — {}.{} ({})\n  target: {}{}\n  change: {}",
                req.reason,
                req.tool,
                req.operation,
                req.effect,
                bosun::term::printable(&req.target),
                req.environment
                    .map(|e| format!("\n  environment: {e}"))
                    .unwrap_or_default(),
                req.fingerprint
            );
            for o in &req.objects {
                eprintln!(
                    "  object: {} {}{}",
                    o.kind,
                    o.namespace
                        .as_deref()
                        .map(|n| format!("{n}/"))
                        .unwrap_or_default(),
                    o.name
                );
            }
            eprint!("Apply this change? Only 'yes' is accepted: ");
            let answer = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|_| line)
            })
            .await;
            let by = "the user at bosun apply".to_string();
            match answer {
                Ok(Ok(l)) if l.trim() == "yes" => bosun::guard::ApprovalDecision::Approved { by },
                _ => {
                    eprintln!();
                    bosun::guard::ApprovalDecision::Denied {
                        by,
                        reason: "not approved (only `yes` approves)".into(),
                    }
                }
            }
        })
    }
}
