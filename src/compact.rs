//! The compaction layer: every tool result is made affordable for a model before it is sent.
//!
//! - [`estimate_tokens`]: a cheap token estimate that errs on the safe side (it over-counts
//!   against the o200k and cl100k tokenizers on tables, logs, YAML, JSON, prose and random
//!   strings; the unit tests check this against the real tokenizers);
//! - [`fit_budget`]: cut any text to a token budget, keeping its head, its tail and the error
//!   lines in between, with a marker saying what was cut;
//! - [`summarise_table`]: long listings as counts by status, the unhealthy rows in full, then a
//!   few healthy rows and "… N more" markers;
//! - [`tail_logs`]: the last lines of a log plus the earlier error lines, repeats collapsed;
//! - [`strip_noise`]: drop managedFields and other bookkeeping from Kubernetes objects.

use serde_json::Value;
use std::collections::BTreeMap;

/// The default budget of one tool result, in tokens.
pub const DEFAULT_RESULT_TOKENS: usize = 2_000;

/// Healthy rows shown when a listing does not fit whole.
const HEALTHY_SAMPLE: usize = 25;

/// Longest line kept whole in logs and cut text.
const MAX_LINE_CHARS: usize = 400;

/// Estimate how many tokens `text` costs. Deliberately pessimistic: runs of lowercase letters
/// count a token per 3 characters (real BPE merges far more), mixed-case and digit runs a token
/// per 2, every punctuation mark one, a run of blanks one, and non-ASCII characters one per
/// UTF-8 continuation byte.
pub fn estimate_tokens(text: &str) -> usize {
    let b = text.as_bytes();
    let mut n = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() {
            let start = i;
            let mut upper = 0usize;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                if b[i].is_ascii_uppercase() {
                    upper += 1;
                }
                i += 1;
            }
            let len = i - start;
            // Capitalised words behave like lowercase ones; mixed case (base64, ids) splits
            // into many short tokens: one per capital plus one per two lowercase letters; all-capital
            // words split into pieces of about two letters.
            let mixed = upper > 1 && upper < len;
            n += if mixed {
                upper + (len - upper).div_ceil(2)
            } else if upper == len && len > 1 {
                len.div_ceil(2)
            } else {
                len.div_ceil(3)
            };
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            n += (i - start).div_ceil(2);
        } else if c == b' ' || c == b'\t' {
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            n += 1;
        } else if c.is_ascii() {
            n += 1;
            i += 1;
        } else {
            // a non-ASCII character: its lead byte plus continuation bytes
            let start = i;
            i += 1;
            while i < b.len() && (b[i] & 0xC0) == 0x80 {
                i += 1;
            }
            n += (i - start).saturating_sub(1).max(1);
        }
    }
    n
}

/// Whether a line reports an error (for keeping it when a log or text is cut).
pub fn is_error_line(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "error",
        "err=",
        "exception",
        "fatal",
        "panic",
        "traceback",
        "failed",
        "failure",
        "crit",
        "refused",
        "denied",
        "forbidden",
        "oomkilled",
        "timeout",
        "timed out",
        "level=warn",
        "warning",
    ];
    if WORDS.iter().any(|w| l.contains(w)) {
        return true;
    }
    // klog: E0102 15:04:05.000000 ...
    let t = line.trim_start().as_bytes();
    t.len() > 5 && (t[0] == b'E' || t[0] == b'F') && t[1..5].iter().all(u8::is_ascii_digit)
}

/// Cut a line to `max` characters (on a char boundary), marking the cut.
pub fn clip_line(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_string();
    }
    match line.char_indices().nth(max) {
        Some((i, _)) => format!("{}… [{} more chars]", &line[..i], line.len() - i),
        None => line.to_string(),
    }
}

/// Fit `text` into `max_tokens` (estimated). Text that fits is returned unchanged. Otherwise
/// the head (about two thirds of the budget) and the tail are kept, error lines from the cut
/// middle are kept while they fit, and a marker line says how much was cut and how to ask for
/// less.
pub fn fit_budget(text: &str, max_tokens: usize) -> String {
    let total = estimate_tokens(text);
    if total <= max_tokens {
        return text.to_string();
    }
    const MARKER_COST: usize = 90;
    let usable = max_tokens.saturating_sub(MARKER_COST).max(1);
    let lines: Vec<&str> = text.lines().collect();
    let cost: Vec<usize> = lines.iter().map(|l| estimate_tokens(l) + 1).collect();

    // head: up to 2/3 of the budget
    let head_budget = usable * 2 / 3;
    let mut used = 0usize;
    let mut head_end = 0usize;
    let mut head: Vec<String> = Vec::new();
    while head_end < lines.len() && used + cost[head_end] <= head_budget {
        used += cost[head_end];
        head.push(lines[head_end].to_string());
        head_end += 1;
    }
    if head.is_empty() {
        // a single huge first line: keep a clipped part of it
        let chars = (head_budget * 2).max(20);
        if let Some(first) = lines.first() {
            let clipped = clip_line(first, chars);
            used += estimate_tokens(&clipped) + 1;
            head.push(clipped);
            head_end = 1;
        }
    }
    // tail: what is left, from the end backwards, leaving a little room for error lines
    let tail_budget = usable.saturating_sub(used) * 3 / 4;
    let mut tail_start = lines.len();
    let mut tail_used = 0usize;
    while tail_start > head_end && tail_used + cost[tail_start - 1] <= tail_budget {
        tail_start -= 1;
        tail_used += cost[tail_start];
    }
    used += tail_used;
    // error lines from the middle, newest first, while they fit
    let mut kept_errors: Vec<(usize, String)> = Vec::new();
    let mut i = tail_start;
    while i > head_end {
        i -= 1;
        if is_error_line(lines[i]) {
            let l = clip_line(lines[i], MAX_LINE_CHARS);
            let c = estimate_tokens(&l) + 1;
            if used + c > usable {
                break;
            }
            used += c;
            kept_errors.push((i, l));
        }
    }
    kept_errors.reverse();
    let cut_lines = tail_start.saturating_sub(head_end) - kept_errors.len();
    let mut out = head.join("\n");
    out.push('\n');
    out.push_str(&format!(
        "… [{cut_lines} lines (~{} tokens) cut to fit the {max_tokens}-token result budget{}; ask for less: a name, namespace, selector or tail]\n",
        total.saturating_sub(used),
        if kept_errors.is_empty() { String::new() } else { format!(", {} error lines kept", kept_errors.len()) }
    ));
    for (_, l) in &kept_errors {
        out.push_str(l);
        out.push('\n');
    }
    for l in &lines[tail_start..] {
        out.push_str(l);
        out.push('\n');
    }
    if !text.ends_with('\n') {
        out.pop();
    }
    out
}

/// One row of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub cells: Vec<String>,
    /// The status the row is counted under (e.g. `Running`, `CrashLoopBackOff`).
    pub status: String,
    pub healthy: bool,
}

/// Counts by status, the most frequent first: `9963 Running, 20 CrashLoopBackOff`.
pub fn status_counts(rows: &[Row]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.status.as_str()).or_default() += 1;
    }
    let mut v: Vec<(&str, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_cost(r: &Row) -> usize {
    r.cells
        .iter()
        .map(|c| estimate_tokens(c) + 1)
        .sum::<usize>()
        + 1
}

/// The cost of a row shown under its status heading (without the status cell).
fn grouped_cost(r: &Row) -> usize {
    row_cost(r).saturating_sub(estimate_tokens(&r.status) + 1) + 1
}

/// Rows grouped under `STATUS (n):` headings, without the status column, aligned per group.
fn render_groups(header: &[&str], groups: &[(String, usize, Vec<Row>)], out: &mut String) {
    for (status, total, rows) in groups {
        if rows.is_empty() {
            continue;
        }
        let shown = if rows.len() < *total {
            format!("{status} ({}, {} shown):\n", total, rows.len())
        } else {
            format!("{status} ({total}):\n")
        };
        out.push_str(&shown);
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let mut c = r.cells.clone();
                if let Some(i) = c.iter().position(|x| *x == r.status) {
                    c.remove(i);
                }
                c
            })
            .collect();
        let h: Vec<&str> = header.iter().copied().filter(|h| *h != "STATUS").collect();
        let t = crate::table::render(&h, &cells, usize::MAX);
        for line in t.lines().skip(1) {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// A listing as the model reads it: `title: counts`, then every row as a table (unhealthy first)
/// when it fits; otherwise the unhealthy rows in full, grouped under their status (as many as
/// the budget holds), a short sample of healthy rows, and "… N more" markers with counts and
/// `narrow_hint`.
pub fn summarise_table(
    title: &str,
    header: &[&str],
    rows: Vec<Row>,
    max_tokens: usize,
    narrow_hint: &str,
) -> String {
    let counts = status_counts(&rows);
    let mut out = format!("{title}: {counts}\n");
    if rows.is_empty() {
        return out;
    }
    let (mut bad, good): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| !r.healthy);
    bad.sort_by(|a, b| a.status.cmp(&b.status).then(a.cells.cmp(&b.cells)));
    let header_cost: usize = header.iter().map(|h| estimate_tokens(h) + 1).sum::<usize>() + 1;
    // room for the title, header and marker lines
    let budget = max_tokens.saturating_sub(estimate_tokens(&out) + header_cost + 80);
    let all_cost: usize = bad.iter().chain(good.iter()).map(row_cost).sum();
    if all_cost <= budget {
        let shown: Vec<Vec<String>> = bad.into_iter().chain(good).map(|r| r.cells).collect();
        out.push_str(&crate::table::render(header, &shown, usize::MAX));
        return fit_budget(&out, max_tokens);
    }
    // grouped by status, unhealthy groups first
    let group = |rows: Vec<Row>| -> Vec<(String, usize, Vec<Row>)> {
        let mut m: BTreeMap<String, Vec<Row>> = BTreeMap::new();
        for r in rows {
            m.entry(r.status.clone()).or_default().push(r);
        }
        let mut v: Vec<(String, usize, Vec<Row>)> =
            m.into_iter().map(|(s, rs)| (s, rs.len(), rs)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    };
    let mut used = 0usize;
    let mut markers = Vec::new();
    let mut bad_groups = group(bad);
    let mut cut_bad: Vec<Row> = Vec::new();
    for (status, _, rows) in bad_groups.iter_mut() {
        used += estimate_tokens(status) + 6;
        let mut keep = 0usize;
        for r in rows.iter() {
            let c = grouped_cost(r);
            if used + c > budget {
                break;
            }
            used += c;
            keep += 1;
        }
        cut_bad.extend(rows.split_off(keep));
    }
    if !cut_bad.is_empty() {
        markers.push(format!(
            "… {} more unhealthy not shown ({})",
            cut_bad.len(),
            status_counts(&cut_bad)
        ));
    }
    let mut good_groups = group(good);
    let mut cut_good: Vec<Row> = Vec::new();
    let mut sample = 0usize;
    for (status, _, rows) in good_groups.iter_mut() {
        used += estimate_tokens(status) + 6;
        let mut keep = 0usize;
        for r in rows.iter() {
            let c = grouped_cost(r);
            if sample >= HEALTHY_SAMPLE || used + c > budget {
                break;
            }
            used += c;
            keep += 1;
            sample += 1;
        }
        cut_good.extend(rows.split_off(keep));
    }
    if !cut_good.is_empty() {
        markers.push(format!(
            "… {} more healthy not shown ({})",
            cut_good.len(),
            status_counts(&cut_good)
        ));
    }
    render_groups(header, &bad_groups, &mut out);
    render_groups(header, &good_groups, &mut out);
    for m in &markers {
        out.push_str(m);
        out.push('\n');
    }
    if !markers.is_empty() && !narrow_hint.is_empty() {
        out.push_str(narrow_hint);
        out.push('\n');
    }
    fit_budget(&out, max_tokens)
}

/// Strip a leading timestamp-like prefix so that repeats of one message compare equal.
fn without_timestamp(line: &str) -> &str {
    let t = line.trim_start();
    let first = t.split_whitespace().next().unwrap_or("");
    let looks_like_time = first.len() >= 8
        && first.chars().filter(char::is_ascii_digit).count() >= 4
        && first
            .chars()
            .all(|c| c.is_ascii_digit() || "-:.TZ+/,[]".contains(c));
    if looks_like_time {
        t[first.len()..].trim_start()
    } else {
        t
    }
}

/// The last `tail` lines of `log`, preceded by the error lines of the earlier part (so a crash
/// cause is not lost), with consecutive repeats collapsed (`(×N)`), long lines clipped and the
/// whole kept within `max_tokens`.
pub fn tail_logs(log: &str, tail: usize, max_tokens: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let split = lines.len().saturating_sub(tail);
    let (earlier, last) = lines.split_at(split);
    // collapse consecutive repeats (ignoring timestamps)
    fn collapse(ls: &[&str]) -> Vec<String> {
        let mut out: Vec<(String, usize, String)> = Vec::new();
        for l in ls {
            let key = without_timestamp(l).to_string();
            match out.last_mut() {
                Some((k, n, _)) if *k == key => *n += 1,
                _ => out.push((key, 1, clip_line(l, MAX_LINE_CHARS))),
            }
        }
        out.into_iter()
            .map(|(_, n, l)| if n > 1 { format!("{l} (×{n})") } else { l })
            .collect()
    }
    let errors: Vec<&str> = earlier
        .iter()
        .copied()
        .filter(|l| is_error_line(l))
        .collect();
    let mut errs = collapse(&errors);
    let mut tail_lines = collapse(last);
    let header = |errs: &[String], cut_errs: usize| -> String {
        if earlier.is_empty() {
            return String::new();
        }
        let mut h = String::new();
        if !errs.is_empty() || cut_errs > 0 {
            h.push_str(&format!(
                "[error lines from the {} earlier lines{}]\n",
                earlier.len(),
                if cut_errs > 0 {
                    format!(", oldest {cut_errs} not shown")
                } else {
                    String::new()
                }
            ));
            for e in errs {
                h.push_str(e);
                h.push('\n');
            }
        }
        h.push_str(&format!(
            "… {} earlier lines not shown; last {} lines:\n",
            earlier.len(),
            last.len()
        ));
        h
    };
    // shrink to budget: drop the oldest error lines first (down to 10), then the oldest tail
    // lines, then the rest of the error lines
    let mut cut_errs = 0usize;
    let cost = |errs: &[String], tl: &[String], cut: usize| {
        estimate_tokens(&header(errs, cut))
            + tl.iter().map(|l| estimate_tokens(l) + 1).sum::<usize>()
    };
    while cost(&errs, &tail_lines, cut_errs) > max_tokens {
        if errs.len() > 10 {
            errs.remove(0);
            cut_errs += 1;
        } else if tail_lines.len() > 5 {
            tail_lines.remove(0);
        } else if !errs.is_empty() {
            errs.remove(0);
            cut_errs += 1;
        } else {
            break;
        }
    }
    let mut out = header(&errs, cut_errs);
    if tail_lines.len() < last.len() && earlier.is_empty() {
        out.push_str(&format!(
            "… {} earlier lines not shown\n",
            lines.len() - tail_lines.len()
        ));
    }
    for l in &tail_lines {
        out.push_str(l);
        out.push('\n');
    }
    fit_budget(&out, max_tokens)
}

/// Annotations that are bookkeeping, not information.
const NOISE_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
];

/// Remove what a model never needs from a Kubernetes object: managedFields, resourceVersion,
/// uid, selfLink, the last-applied annotation, nulls, empty maps, defaulted fields with their
/// default values, and the service-account token volume.
pub fn strip_noise(v: &mut Value) {
    if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "uid", "selfLink"] {
            md.remove(k);
        }
        if let Some(a) = md.get_mut("annotations").and_then(Value::as_object_mut) {
            for k in NOISE_ANNOTATIONS {
                a.remove(*k);
            }
            if a.is_empty() {
                md.remove("annotations");
            }
        }
    }
    drop_defaults(v);
}

fn drop_defaults(v: &mut Value) {
    const DEFAULTS: &[(&str, &str)] = &[
        ("terminationMessagePath", "/dev/termination-log"),
        ("terminationMessagePolicy", "File"),
        ("dnsPolicy", "ClusterFirst"),
        ("schedulerName", "default-scheduler"),
        ("imagePullPolicy", "IfNotPresent"),
    ];
    match v {
        Value::Object(m) => {
            m.retain(|k, x| {
                if x.is_null() {
                    return false;
                }
                if let Some(s) = x.as_str() {
                    if DEFAULTS.iter().any(|(dk, dv)| dk == k && *dv == s) {
                        return false;
                    }
                }
                if k == "terminationGracePeriodSeconds" && x.as_i64() == Some(30) {
                    return false;
                }
                true
            });
            // the projected service-account token volume and its mounts
            for key in ["volumes", "volumeMounts"] {
                if let Some(Value::Array(a)) = m.get_mut(key) {
                    a.retain(|x| {
                        !x.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.starts_with("kube-api-access-"))
                    });
                }
            }
            for x in m.values_mut() {
                drop_defaults(x);
            }
            m.retain(|_, x| !matches!(x, Value::Object(o) if o.is_empty()));
            m.retain(|k, x| !(matches!(x, Value::Array(a) if a.is_empty()) && k != "containers"));
        }
        Value::Array(a) => a.iter_mut().for_each(drop_defaults),
        _ => {}
    }
}

/// A JSON value as YAML text (compact and readable for a model); falls back to JSON.
pub fn to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, status: &str, healthy: bool) -> Row {
        Row {
            cells: vec![name.into(), status.into(), "ready 1/1, restarts 0".into()],
            status: status.into(),
            healthy,
        }
    }

    #[test]
    fn short_text_is_unchanged_and_long_text_is_cut_with_errors_kept() {
        assert_eq!(fit_budget("hello\nworld", 100), "hello\nworld");
        let mut text = String::new();
        for i in 0..2000 {
            if i == 1000 {
                text.push_str("ERROR: database connection refused\n");
            } else {
                text.push_str(&format!("line {i} everything is fine here\n"));
            }
        }
        let out = fit_budget(&text, 300);
        assert!(estimate_tokens(&out) <= 300, "{}", estimate_tokens(&out));
        assert!(out.starts_with("line 0 "), "{out}");
        assert!(out.contains("line 1999 "), "{out}");
        assert!(out.contains("ERROR: database connection refused"), "{out}");
        assert!(out.contains("lines (~"), "{out}");
        // one giant line is clipped, not dropped
        let big = "x".repeat(100_000);
        let out = fit_budget(&big, 200);
        assert!(
            estimate_tokens(&out) <= 260 && out.starts_with("xxx"),
            "{out}"
        );
    }

    #[test]
    fn listings_keep_counts_and_every_unhealthy_row() {
        let mut rows: Vec<Row> = (0..5000)
            .map(|i| row(&format!("web-{i}"), "Running", true))
            .collect();
        for i in [17, 999, 4321] {
            rows[i] = row(&format!("web-{i}"), "CrashLoopBackOff", false);
        }
        let out = summarise_table(
            "5000 pods",
            &["NAME", "STATUS", "DETAIL"],
            rows,
            1000,
            "narrow it",
        );
        assert!(
            out.starts_with("5000 pods: 4997 Running, 3 CrashLoopBackOff\n"),
            "{out}"
        );
        for n in ["web-17 ", "web-999 ", "web-4321 "] {
            assert!(out.contains(n), "{n} missing: {out}");
        }
        assert!(out.contains("more healthy not shown (4"), "{out}");
        assert!(estimate_tokens(&out) <= 1000);
        // unhealthy rows come before healthy ones
        assert!(out.find("web-4321").unwrap_or(0) < out.find("Running (").unwrap_or(0));
        // a small listing is shown whole
        let out = summarise_table(
            "2 pods",
            &["NAME", "STATUS", "DETAIL"],
            vec![row("a", "Running", true), row("b", "Pending", false)],
            1000,
            "",
        );
        assert!(!out.contains("more"), "{out}");
        assert!(
            out.find("b ").unwrap_or(99) < out.find("a ").unwrap_or(0),
            "{out}"
        );
    }

    #[test]
    fn too_many_unhealthy_rows_get_a_marker_with_counts() {
        let rows: Vec<Row> = (0..3000)
            .map(|i| {
                row(
                    &format!("p-{i}"),
                    if i % 2 == 0 { "Pending" } else { "Error" },
                    false,
                )
            })
            .collect();
        let out = summarise_table("3000 pods", &["NAME", "STATUS", "DETAIL"], rows, 500, "");
        assert!(out.contains("more unhealthy not shown ("), "{out}");
        assert!(estimate_tokens(&out) <= 500);
    }

    #[test]
    fn logs_keep_the_tail_and_earlier_errors_collapsing_repeats() {
        let mut log = String::new();
        for i in 0..500 {
            if i == 10 {
                log.push_str("2026-01-01T00:00:10Z panic: nil pointer dereference\n");
            }
            log.push_str(&format!(
                "2026-01-01T00:00:{:02}Z GET /health 200\n",
                i % 60
            ));
        }
        for _ in 0..3 {
            log.push_str("2026-01-01T00:09:00Z retrying connection\n");
        }
        let out = tail_logs(&log, 20, 2000);
        assert!(out.contains("panic: nil pointer dereference"), "{out}");
        assert!(out.contains("retrying connection (×3)"), "{out}");
        assert!(out.contains("earlier lines not shown"), "{out}");
        assert!(out.lines().count() < 40, "{out}");
        // a short log is returned as is
        assert_eq!(tail_logs("a\nb\n", 100, 100), "a\nb\n");
    }

    #[test]
    fn noise_is_stripped() {
        let mut v = serde_json::json!({
            "metadata": {"name": "x", "uid": "u", "resourceVersion": "1", "managedFields": [{}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"dnsPolicy": "ClusterFirst", "containers": [{"name": "c", "terminationMessagePath": "/dev/termination-log", "resources": {}}],
                     "volumes": [{"name": "kube-api-access-abc"}]}
        });
        strip_noise(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}})
        );
    }

    /// The estimate must never be below what the real tokenizers count.
    #[test]
    fn the_estimate_errs_on_the_safe_side_of_real_tokenizers() {
        let o200k = tiktoken_rs::o200k_base().expect("o200k");
        let cl100k = tiktoken_rs::cl100k_base().expect("cl100k");
        let mut samples: Vec<String> = vec![
            "NAMESPACE  NAME                         STATUS            DETAIL                 AGE\nshop       web-7d9f8c6b5-x2k9p          Running           ready 1/1, restarts 0  3d\npayments   api-5f6d7c8b9-qwert          CrashLoopBackOff  ready 0/1, restarts 17 2h\n".into(),
            "2026-01-01T00:00:10.123456Z level=error msg=\"connection refused\" addr=10.0.3.17:5432 attempt=3\n".into(),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n      - image: registry.example/web:1.2.3\n".into(),
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"x","uid":"3f0c2a1e-8b7d-4c6e-9a5f-1d2e3f4a5b6c"}}"#.into(),
            "The quick brown fox jumps over the lazy dog. Kubernetes reconciles desired state continuously.".into(),
            "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGJhc2U2NCBzdHJpbmcgd2l0aCBtaXhlZCBDYXNl+/==".into(),
            "sha256:4f6a2b9c1d8e7f3a0b5c6d2e9f1a8b7c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9".into(),
            "… 9963 more healthy (9963 Running) — ÄÖÜ 日本語 🚀".into(),
            "E0102 15:04:05.123456       1 reflector.go:138] Failed to watch *v1.Pod: unknown (get pods)".into(),
            "0123456789 9876543210 31415926535897932384626433832795".into(),
            "UPPERCASE WORDS LIKE DEPLOYMENT AND STATEFULSET AND HTTP_PROXY_CONFIGURATION".into(),
        ];
        // pseudo-random identifiers and mixed tokens
        let mut x: u64 = 0x9E3779B97F4A7C15;
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=";
        for _ in 0..50 {
            let mut s = String::new();
            for _ in 0..200 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
            }
            samples.push(s);
        }
        for s in &samples {
            let est = estimate_tokens(s);
            let a = o200k.encode_with_special_tokens(s).len();
            let b = cl100k.encode_with_special_tokens(s).len();
            assert!(
                est >= a && est >= b,
                "estimate {est} < real (o200k {a}, cl100k {b}) for {s:?}"
            );
        }
    }
}
