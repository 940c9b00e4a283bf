//! Scores: Pass@1, Pass@k and Pass^k, as k8s-ai-bench reports them, and the results table.
//!
//! For a task run `n` times with `c` passes: Pass@k = 1 − C(n−c, k) / C(n, k) (the chance that at
//! least one of k runs drawn from the n passes — the unbiased estimator of Chen et al.), Pass^k =
//! C(c, k) / C(n, k) (the chance that all k pass — the consistency measure of τ-bench). Suite
//! figures are the means over tasks.

use super::RunRecord;
use serde::Serialize;
use std::collections::BTreeMap;

/// C(n, k) as a float (small n).
fn choose(n: u64, k: u64) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Pass@k for `c` passes out of `n` runs.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> f64 {
    if n == 0 || k == 0 {
        return 0.0;
    }
    let k = k.min(n);
    if n - c < k {
        return 1.0;
    }
    1.0 - choose(n - c, k) / choose(n, k)
}

/// Pass^k for `c` passes out of `n` runs.
pub fn pass_hat_k(n: u64, c: u64, k: u64) -> f64 {
    if n == 0 || k == 0 {
        return 0.0;
    }
    let k = k.min(n);
    choose(c, k) / choose(n, k)
}

/// One task's figures.
#[derive(Debug, Clone, Serialize)]
pub struct TaskScore {
    pub task: String,
    pub difficulty: Option<String>,
    pub runs: u64,
    pub passes: u64,
    pub pass_at_1: f64,
    pub pass_at_k: f64,
    pub pass_hat_k: f64,
    pub mean_turns: f64,
    pub mean_tool_calls: f64,
    pub mean_wall_s: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub refusals: u64,
    pub approvals: u64,
    /// Why the failed runs failed (first reason of each).
    pub failures: Vec<String>,
}

/// The suite's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub k: u64,
    pub tasks: Vec<TaskScore>,
    pub pass_at_1: f64,
    pub pass_at_k: f64,
    pub pass_hat_k: f64,
    pub runs: u64,
    pub passes: u64,
}

/// Score `records` with `k`.
pub fn summarize(records: &[RunRecord], k: u64) -> Summary {
    let mut by_task: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        by_task.entry(r.task.as_str()).or_default().push(r);
    }
    let mut tasks = Vec::new();
    for (task, rs) in by_task {
        let n = rs.len() as u64;
        let c = rs.iter().filter(|r| r.passed).count() as u64;
        let mean = |f: &dyn Fn(&RunRecord) -> f64| rs.iter().map(|r| f(r)).sum::<f64>() / n as f64;
        tasks.push(TaskScore {
            task: task.to_string(),
            difficulty: rs.first().and_then(|r| r.difficulty.clone()),
            runs: n,
            passes: c,
            pass_at_1: pass_at_k(n, c, 1),
            pass_at_k: pass_at_k(n, c, k),
            pass_hat_k: pass_hat_k(n, c, k),
            mean_turns: mean(&|r| r.turns as f64),
            mean_tool_calls: mean(&|r| r.tool_calls as f64),
            mean_wall_s: mean(&|r| r.wall_ms as f64 / 1000.0),
            prompt_tokens: rs.iter().map(|r| r.prompt_tokens).sum(),
            completion_tokens: rs.iter().map(|r| r.completion_tokens).sum(),
            refusals: rs.iter().map(|r| r.refusals.len() as u64).sum(),
            approvals: rs.iter().map(|r| r.approvals.len() as u64).sum(),
            failures: rs
                .iter()
                .filter(|r| !r.passed)
                .filter_map(|r| r.reasons.first().cloned())
                .collect(),
        });
    }
    let t = tasks.len().max(1) as f64;
    Summary {
        k,
        pass_at_1: tasks.iter().map(|s| s.pass_at_1).sum::<f64>() / t,
        pass_at_k: tasks.iter().map(|s| s.pass_at_k).sum::<f64>() / t,
        pass_hat_k: tasks.iter().map(|s| s.pass_hat_k).sum::<f64>() / t,
        runs: records.len() as u64,
        passes: records.iter().filter(|r| r.passed).count() as u64,
        tasks,
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The results as a markdown table (one row per task, then the suite line).
pub fn markdown(s: &Summary, model: &str) -> String {
    let mut out = format!(
        "# bosun eval — {model}\n\n{} task(s), {} run(s), {} passed. Pass@1 {:.2} · Pass@{k} {:.2} · Pass^{k} {:.2}\n\n",
        s.tasks.len(),
        s.runs,
        s.passes,
        s.pass_at_1,
        s.pass_at_k,
        s.pass_hat_k,
        k = s.k
    );
    out.push_str(&format!(
        "| task | difficulty | passed | Pass@1 | Pass@{k} | Pass^{k} | turns | tool calls | tokens (prompt/completion) | refusals | approvals | wall s | why it failed |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        k = s.k
    ));
    for t in &s.tasks {
        out.push_str(&format!(
            "| {} | {} | {}/{} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {}/{} | {} | {} | {:.1} | {} |\n",
            cell(&t.task),
            t.difficulty.as_deref().unwrap_or("-"),
            t.passes,
            t.runs,
            t.pass_at_1,
            t.pass_at_k,
            t.pass_hat_k,
            t.mean_turns,
            t.mean_tool_calls,
            t.prompt_tokens,
            t.completion_tokens,
            t.refusals,
            t.approvals,
            t.mean_wall_s,
            cell(&t.failures.join("; "))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_k_matches_the_closed_forms() {
        // one run: pass@1 is the pass rate
        assert_eq!(pass_at_k(1, 1, 1), 1.0);
        assert_eq!(pass_at_k(1, 0, 1), 0.0);
        // 5 runs, 2 passes: pass@1 = 0.4
        assert!((pass_at_k(5, 2, 1) - 0.4).abs() < 1e-9);
        // pass@5 with any pass out of 5 is 1
        assert_eq!(pass_at_k(5, 1, 5), 1.0);
        // pass@2 of 5 with 2 passes: 1 - C(3,2)/C(5,2) = 1 - 3/10
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-9);
        // pass^2 of 5 with 2 passes: C(2,2)/C(5,2) = 1/10
        assert!((pass_hat_k(5, 2, 2) - 0.1).abs() < 1e-9);
        assert_eq!(pass_hat_k(5, 5, 5), 1.0);
        assert_eq!(pass_hat_k(5, 4, 5), 0.0);
        // k larger than n is clamped
        assert_eq!(pass_at_k(2, 1, 5), 1.0);
        assert_eq!(pass_at_k(0, 0, 1), 0.0);
    }
}
