//! The compaction benchmark: a 10,000-pod listing (37 unhealthy pods spread through it) as the
//! model receives it from `kubectl get pods --all-namespaces`. Prints the figures and whether
//! each target is met (≤ 2,000 tokens with o200k and cl100k, ≤ 200 ms, counts present, every
//! unhealthy pod named); asserts nothing.
//!
//! `cargo bench --bench compaction`

#[path = "support/pods.rs"]
mod pods;

use bosun::tools::k8s::{render_listing, ListStyle};
use pods::{PODS, UNHEALTHY};
use std::time::{Duration, Instant};

fn main() {
    bosun::init_crypto();
    let (body, bad_names) = pods::listing();

    // what the kube client does with the response (not the compaction itself)
    let t = Instant::now();
    let objs = pods::parse(&body);
    let parse = t.elapsed();
    assert_eq!(objs.len(), PODS);

    let style = ListStyle {
        show_namespace: true,
        wide: false,
        max_tokens: 2_000,
    };
    let title = format!("{PODS} pods in all namespaces (context bench)");
    // warm up, then the median of 15 runs
    let mut out = render_listing("Pod", &title, &objs, style);
    let mut times: Vec<Duration> = (0..15)
        .map(|_| {
            let t = Instant::now();
            out = render_listing("Pod", &title, &objs, style);
            t.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];

    let o200k = tiktoken_rs::o200k_base()
        .expect("o200k")
        .encode_with_special_tokens(&out)
        .len();
    let cl100k = tiktoken_rs::cl100k_base()
        .expect("cl100k")
        .encode_with_special_tokens(&out)
        .len();
    let estimate = bosun::compact::estimate_tokens(&out);
    let raw_o200k = tiktoken_rs::o200k_base()
        .expect("o200k")
        .encode_with_special_tokens(&String::from_utf8_lossy(&body[..body.len().min(2_000_000)]))
        .len();
    let named = bad_names
        .iter()
        .filter(|n| out.contains(n.as_str()))
        .count();
    let counts = out.lines().next().unwrap_or("").to_string();
    let yes = |b: bool| if b { "met" } else { "NOT MET" };

    println!(
        "compaction benchmark: {PODS} pods, {UNHEALTHY} unhealthy, {} MB of API JSON",
        body.len() / 1_000_000
    );
    println!(
        "  raw JSON: ~{} o200k tokens per 2 MB slice ({} MB total)",
        raw_o200k,
        body.len() / 1_000_000
    );
    println!(
        "  parse (kube client's work, not compaction): {:.1} ms",
        parse.as_secs_f64() * 1e3
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("  compaction: median {:.1} ms, worst {:.1} ms over 15 runs  [target ≤ 200 ms (median): {}]",
        median.as_secs_f64() * 1e3, worst.as_secs_f64() * 1e3, yes(median <= Duration::from_millis(200)));
    println!(
        "  machine load average while measuring: {} (shared cores inflate the worst case)",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("  tokens: o200k {o200k}, cl100k {cl100k}, bosun's estimate {estimate}  [target ≤ 2000: {}]",
        yes(o200k <= 2_000 && cl100k <= 2_000));
    println!(
        "  unhealthy pods named: {named}/{UNHEALTHY}  [{}]",
        yes(named == UNHEALTHY)
    );
    println!(
        "  counts line: {counts}  [{}]",
        yes(counts.contains("9963 Running"))
    );
    println!(
        "  output: {} lines, {} chars",
        out.lines().count(),
        out.len()
    );
    if std::env::var_os("BENCH_SHOW").is_some() {
        println!("---\n{out}");
    }
}
