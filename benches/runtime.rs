//! The runtime benchmark (issue #9): what bosun itself costs, apart from the model and the tools.
//! Prints a table and writes JSON; asserts nothing (the prompt budget has its own test,
//! `tests/integration/prompt_budget.rs`). What each figure means and excludes: docs/performance.md.
//!
//! ```sh
//! cargo bench --bench runtime                      # full run (a few minutes on 2 cores)
//! cargo bench --bench runtime -- --quick           # CI: same figures, fewer samples (< 1 min)
//! BOSUN_BENCH_QUICK=1 cargo bench --bench runtime  # the same
//! cargo bench --bench runtime -- --json out.json   # JSON elsewhere (default <target>/bench/runtime.json)
//! ```
//!
//! Sections:
//! - prompt: tokens of the system prompt + every tool schema of the default agent (repo root),
//!   o200k and cl100k; tokens of the compacted 10,000-pod listing (as `benches/compaction.rs`).
//! - turn: per tool-call turn overhead against the in-process scripted model at zero latency,
//!   measured from the server's side (its answer ready → the next request read), minus the tool
//!   call's own duration.
//! - cold start: the real `bosun run` binary, spawn → the scripted model reads its first request
//!   (including the preflight round trip to a stand-in `/version`).
//! - memory: peak RSS of `bosun run` with one session idle (waiting on the model) and after a
//!   50-turn task (wait4's ru_maxrss, so the model server in this process is not counted).
//! - concurrency: 1,000 embedded sessions (100 in quick mode) in one fresh process, each a 10-turn
//!   scripted task, against `bosun scripted-model` in another process: total time, peak RSS, errors.
//! - guard: `Guard::admit` latency with 10,000 recorded dry-run fingerprints.
//! - discovery: CPU (user + system, from wait4) of a one-call `bosun run` (`kubectl get
//!   namespaces`) against a real kube-apiserver (a sandbox started for the section, or
//!   `BOSUN_TEST_SANDBOX_DIR`'s) with a cold and a warm discovery disk cache, next to the CPU of
//!   one full `kube::Discovery::run` in this process (what every run paid before the cache).
//!
//! The `bosun` binary: cargo builds it for benches and passes `CARGO_BIN_EXE_bosun`; `BOSUN_BIN`
//! overrides it (the release binary is what should be measured).

#[path = "support/pods.rs"]
mod pods;
#[path = "support/prompt_tokens.rs"]
mod prompt_tokens;

use bosun::config::ModelConfig;
use bosun::guard::{Fingerprint, Guard};
use bosun::kube_client::KubeTarget;
use bosun::model::{OpenAiClient, ToolCall};
use bosun::planner::State;
use bosun::scripted::{Script, ScriptedServer};
use bosun::session::{Event, Op, Runtime, RuntimeOptions, Session};
use bosun::tools::k8s::{render_listing, ListStyle};
use prompt_tokens::{Count, Counter, BUDGET};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A 10-turn task: nine tool calls that need no cluster (skills, planner moves), then the answer.
fn ten_turns() -> String {
    let mut turns = String::new();
    let calls = [
        r#"{name: activate_skill, arguments: {name: kubernetes}}"#,
        r#"{name: transition, arguments: {to: coding, justification: "task understood"}}"#,
        r#"{name: activate_skill, arguments: {name: gitops}}"#,
        r#"{name: transition, arguments: {to: validation, justification: "manifests written"}}"#,
        r#"{name: activate_skill, arguments: {name: iac}}"#,
        r#"{name: transition, arguments: {to: coding, justification: "one fix needed"}}"#,
        r#"{name: activate_skill, arguments: {name: scripting}}"#,
        r#"{name: transition, arguments: {to: validation, justification: "fixed"}}"#,
        r#"{name: transition, arguments: {to: completion, justification: "done", report: "Status: Success\nSummary: nothing to change"}}"#,
    ];
    for c in calls {
        turns.push_str(&format!("  - reply: {{tool_calls: [{c}]}}\n"));
    }
    turns.push_str("  - reply: {content: \"Status: Success\"}\n");
    format!("per_conversation: true\nrecord_requests: false\nturns:\n{turns}")
}

/// A 50-turn task: 49 tool calls cycling through skills and planner moves, then the answer —
/// which comes late, so the process can be measured while it waits.
fn fifty_turns() -> String {
    let skills = [
        "kubernetes",
        "gitops",
        "iac",
        "scripting",
        "check-block-status",
    ];
    let mut turns = String::new();
    let mut state = "intake";
    for i in 0..49 {
        let call = if i % 2 == 0 {
            format!(
                "{{name: activate_skill, arguments: {{name: {}}}}}",
                skills[(i / 2) % skills.len()]
            )
        } else {
            let to = if state == "coding" {
                "validation"
            } else {
                "coding"
            };
            state = to;
            format!("{{name: transition, arguments: {{to: {to}, justification: \"step {i}\"}}}}")
        };
        turns.push_str(&format!("  - reply: {{tool_calls: [{call}]}}\n"));
    }
    turns.push_str("  - delay_ms: 1500\n    reply: {content: \"done\"}\n");
    format!("per_conversation: true\nrecord_requests: false\nturns:\n{turns}")
}

fn one_turn(delay_ms: u64) -> String {
    format!(
        "per_conversation: true\nrecord_requests: false\nturns:\n  - delay_ms: {delay_ms}\n    reply: {{content: \"done\"}}\n"
    )
}

struct Opts {
    quick: bool,
    json: Option<PathBuf>,
    /// Internal: run one section in this (fresh) process and print its JSON.
    section: Option<String>,
    base_url: Option<String>,
    sessions: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        quick: std::env::var("BOSUN_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"),
        json: None,
        section: None,
        base_url: None,
        sessions: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--json" => o.json = args.next().map(PathBuf::from),
            "--section" => o.section = args.next(),
            "--base-url" => o.base_url = args.next(),
            "--sessions" => o.sessions = args.next().and_then(|s| s.parse().ok()).unwrap_or(0),
            _ => {} // `--bench` from cargo, filters
        }
    }
    o
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bosun_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BOSUN_BIN") {
        return PathBuf::from(p);
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_bosun") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/runtime-<hash> → target/<profile>/bosun
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(|d| d.join("bosun")))
        .unwrap_or_else(|| PathBuf::from("bosun"))
}

fn default_json() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|e| Some(e.parent()?.parent()?.parent()?.to_path_buf()))
        })
        .unwrap_or_else(|| repo().join("target"));
    target.join("bench").join("runtime.json")
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn rss_kib(pid: &str) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn client(base_url: &str) -> Arc<OpenAiClient> {
    Arc::new(
        OpenAiClient::new(&ModelConfig {
            base_url: Some(base_url.to_string()),
            model: "bench".into(),
            ..Default::default()
        })
        .expect("model client"),
    )
}

/// The default agent with a model at `base_url`, writing its audit log and session files under
/// `state` (as `bosun run` does).
fn runtime(base_url: &str, state: &Path) -> Arc<Runtime> {
    Runtime::from_dir(
        &repo(),
        client(base_url),
        RuntimeOptions {
            kube: KubeTarget {
                kubeconfig: Some(state.join("no-kubeconfig")),
                context: None,
            },
            max_turns: Some(60),
            loop_limit: Some(100),
            workspace: Some(state.to_path_buf()),
            audit_dir: Some(state.join("audit")),
            sessions_dir: Some(state.join("sessions")),
            ..Default::default()
        },
    )
    .expect("the default agent loads")
}

/// One table row: what, measured, target, verdict.
struct Table(Vec<[String; 4]>);

impl Table {
    fn row(&mut self, what: &str, value: String, target: &str, met: Option<bool>) {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "",
        };
        self.0
            .push([what.into(), value, target.into(), verdict.into()]);
    }

    fn print(&self) {
        let w: Vec<usize> = (0..4)
            .map(|i| {
                self.0
                    .iter()
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &self.0 {
            println!(
                "  {:<w0$}  {:>w1$}  {:<w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// prompt economy

fn prompt_section(t: &mut Table) -> Value {
    let rt = prompt_tokens::default_agent();
    let counter = Counter::new();
    let m = prompt_tokens::measure(&rt, &counter);
    let count = |s: &str| {
        let c = counter.count(s);
        (c.o200k, c.cl100k)
    };
    let (p, s, r, total) = (m.prompt, m.strict, m.relaxed, m.total());
    t.row(
        "system prompt tokens (o200k / cl100k)",
        format!("{} / {}", p.o200k, p.cl100k),
        "",
        None,
    );
    t.row(
        "tool schemas, strict (o200k / cl100k)",
        format!("{} / {}", s.o200k, s.cl100k),
        "",
        None,
    );
    t.row(
        "prompt + strict schemas (o200k / cl100k)",
        format!("{} / {}", total.o200k, total.cl100k),
        "≤ 4000",
        Some(total.within(BUDGET)),
    );
    let relaxed = p.plus(r);
    t.row(
        "  (relaxed schemas, non-OpenAI servers)",
        format!("{} / {}", relaxed.o200k, relaxed.cl100k),
        "",
        None,
    );

    // the compacted 10,000-pod listing (benches/compaction.rs has the full report)
    let (body, bad) = pods::listing();
    let objs = pods::parse(&body);
    let style = ListStyle {
        show_namespace: true,
        wide: false,
        max_tokens: 2_000,
    };
    let title = format!("{} pods in all namespaces (context bench)", pods::PODS);
    let mut out = render_listing("Pod", &title, &objs, style);
    let times = sorted(
        (0..7)
            .map(|_| {
                let t = Instant::now();
                out = render_listing("Pod", &title, &objs, style);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    let listing = count(&out);
    let named = bad.iter().filter(|n| out.contains(n.as_str())).count();
    t.row(
        "10,000-pod listing, compacted (o200k / cl100k)",
        format!("{} / {}", listing.0, listing.1),
        "≤ 2000",
        Some(listing.0 <= 2_000 && listing.1 <= 2_000),
    );
    t.row(
        "  compaction time, median of 7",
        format!("{:.1} ms", pct(&times, 50.0)),
        "",
        None,
    );
    let c = |c: Count| json!({"chars": c.chars, "o200k": c.o200k, "cl100k": c.cl100k});
    json!({
        "system_prompt": c(p),
        "tool_schemas_strict": c(s),
        "tool_schemas_relaxed": c(r),
        "tools": rt.specs.len(),
        "total_strict": {"o200k": total.o200k, "cl100k": total.cl100k, "target": BUDGET,
                          "met": total.within(BUDGET)},
        "pod_listing": {"pods": pods::PODS, "o200k": listing.0, "cl100k": listing.1, "target": 2000,
                         "met": listing.0 <= 2_000 && listing.1 <= 2_000,
                         "unhealthy_named": named, "unhealthy": pods::UNHEALTHY,
                         "compaction_ms_median": pct(&times, 50.0)},
    })
}

// ---------------------------------------------------------------------------------------------
// per-turn overhead

async fn turn_section(t: &mut Table, quick: bool) -> Value {
    let tasks = if quick { 30 } else { 300 };
    let warmup = 3;
    let server = ScriptedServer::start(Script::from_yaml(&ten_turns()).expect("script"))
        .await
        .expect("server");
    let state = tempfile::tempdir().expect("tempdir");
    let rt = runtime(&server.base_url(), state.path());
    let mut tool_ms: Vec<u64> = vec![];
    let mut task_ms = vec![];
    for k in 0..warmup + tasks {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut s = Session::new(rt.clone(), tx).expect("session");
        let started = Instant::now();
        s.run_task(&format!("bench task {k}"))
            .await
            .expect("the scripted task completes");
        drop(s);
        if k >= warmup {
            task_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
        while let Some(e) = rx.recv().await {
            if let (true, Event::ToolCallFinished { duration_ms, .. }) = (k >= warmup, e) {
                tool_ms.push(duration_ms);
            }
        }
    }
    let timings = server.timings();
    let timings = &timings[warmup * 10..];
    assert_eq!(timings.len(), tasks * 10, "10 requests per task");
    let mut gross = vec![];
    let mut net = vec![];
    let mut model = vec![];
    for (task, ts) in timings.chunks(10).enumerate() {
        for (i, w) in ts.windows(2).enumerate() {
            assert_eq!((w[0].turn, w[1].turn), (i, i + 1), "turns in order");
            let gap = w[1].received.duration_since(w[0].answered).as_secs_f64() * 1e3;
            gross.push(gap);
            net.push(gap - tool_ms[task * 9 + i] as f64);
        }
        model.extend(
            ts.iter()
                .map(|x| x.answered.duration_since(x.received).as_secs_f64() * 1e3),
        );
    }
    let (gross, net, model, task_ms) = (sorted(gross), sorted(net), sorted(model), sorted(task_ms));
    let tool_total: u64 = tool_ms.iter().sum();
    t.row(
        &format!("per tool-call turn overhead, p50 ({} turns)", net.len()),
        format!("{:.3} ms", pct(&net, 50.0)),
        "≤ 1 ms",
        Some(pct(&net, 50.0) <= 1.0),
    );
    t.row(
        "per tool-call turn overhead, p99",
        format!("{:.3} ms", pct(&net, 99.0)),
        "",
        None,
    );
    t.row(
        "  scripted model's own time per request, p50",
        format!("{:.3} ms", pct(&model, 50.0)),
        "(excluded)",
        None,
    );
    t.row(
        "  10-turn task, wall time p50",
        format!("{:.1} ms", pct(&task_ms, 50.0)),
        "",
        None,
    );
    json!({
        "turns": net.len(), "tasks": tasks,
        "overhead_ms": {"p50": pct(&net, 50.0), "p90": pct(&net, 90.0), "p99": pct(&net, 99.0), "max": pct(&net, 100.0)},
        "gross_gap_ms": {"p50": pct(&gross, 50.0), "p99": pct(&gross, 99.0)},
        "tool_duration_ms_total": tool_total,
        "model_server_ms": {"p50": pct(&model, 50.0), "p99": pct(&model, 99.0)},
        "task_wall_ms": {"p50": pct(&task_ms, 50.0), "p99": pct(&task_ms, 99.0)},
        "target_p50_ms": 1.0, "met": pct(&net, 50.0) <= 1.0,
        "audit_log_and_session_file": true,
    })
}

// ---------------------------------------------------------------------------------------------
// the real binary: cold start and memory

/// A stand-in for the API server's `/version`, which `bosun run` asks before its first model
/// call (the preflight): a real user pays that round trip, so the cold start includes it. It
/// answers every request with a 1.20 version object, on its own thread, for the process's life.
fn fake_apiserver_kubeconfig(home: &Path) -> PathBuf {
    use std::io::Write;
    static ADDR: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();
    let addr = *ADDR.get_or_init(|| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut s, &mut buf);
                let body = r#"{"major":"1","minor":"20","gitVersion":"v1.20.2","gitCommit":"","gitTreeState":"","buildDate":"","goVersion":"","compiler":"","platform":"linux/amd64"}"#;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        addr
    });
    let path = home.join("kubeconfig");
    let kc = format!("apiVersion: v1\nkind: Config\ncurrent-context: bench\nclusters:\n- name: bench\n  cluster: {{server: \"http://{addr}\"}}\ncontexts:\n- name: bench\n  context: {{cluster: bench, user: bench}}\nusers:\n- name: bench\n  user: {{token: bench}}\n");
    std::fs::write(&path, kc).expect("kubeconfig");
    path
}

fn bosun_run(base_url: &str, home: &Path, task: &str, extra: &[&str]) -> Command {
    bosun_run_on(
        &fake_apiserver_kubeconfig(home),
        base_url,
        home,
        task,
        extra,
    )
}

/// `bosun run` against the cluster of `kubeconfig`.
fn bosun_run_on(
    kubeconfig: &Path,
    base_url: &str,
    home: &Path,
    task: &str,
    extra: &[&str],
) -> Command {
    let mut c = Command::new(bosun_bin());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .current_dir(repo())
        .args(["--agent", &repo().to_string_lossy(), "run", "--base-url"])
        .arg(base_url)
        .args(["--model", "bench", "--quiet", "--kubeconfig"])
        .arg(kubeconfig)
        .arg("--audit-dir")
        .arg(home.join("audit"))
        .arg("--sessions-dir")
        .arg(home.join("sessions"))
        .args(extra)
        .arg(task)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Wait for a child; its exit code and stderr.
fn finish(mut child: std::process::Child) -> (i32, String) {
    let err = stderr_of(&mut child);
    let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
    (code, err)
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut s = String::new();
    if let Some(e) = child.stderr.as_mut() {
        let _ = std::io::Read::read_to_string(e, &mut s);
    }
    s
}

async fn cold_start_section(t: &mut Table, quick: bool) -> Value {
    let runs = if quick { 5 } else { 20 };
    let server = ScriptedServer::start(Script::from_yaml(&one_turn(0)).expect("script"))
        .await
        .expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let mut first = vec![];
    let mut whole = vec![];
    for k in 0..=runs {
        let before = server.timings().len();
        let t0 = Instant::now();
        let child = bosun_run(&server.base_url(), home.path(), &format!("cold {k}"), &[])
            .spawn()
            .expect("spawn bosun");
        let (code, err) = tokio::task::spawn_blocking(move || finish(child))
            .await
            .expect("join");
        let elapsed = t0.elapsed();
        assert_eq!(code, 0, "bosun run failed: {err}");
        let ts = server.timings();
        let Some(req) = ts.get(before) else {
            panic!("no request received")
        };
        if k > 0 {
            // run 0 warms the page cache
            first.push(req.received.duration_since(t0).as_secs_f64() * 1e3);
            whole.push(elapsed.as_secs_f64() * 1e3);
        }
    }
    let (first, whole) = (sorted(first), sorted(whole));
    t.row(
        &format!("cold start → first model request, p50 of {runs}"),
        format!("{:.1} ms", pct(&first, 50.0)),
        "≤ 30 ms",
        Some(pct(&first, 50.0) <= 30.0),
    );
    t.row(
        "  min / max",
        format!("{:.1} / {:.1} ms", pct(&first, 0.0), pct(&first, 100.0)),
        "",
        None,
    );
    t.row(
        "  whole 1-turn `bosun run`, p50",
        format!("{:.1} ms", pct(&whole, 50.0)),
        "",
        None,
    );
    json!({
        "runs": runs, "binary": bosun_bin(),
        "first_request_ms": {"p50": pct(&first, 50.0), "min": pct(&first, 0.0), "max": pct(&first, 100.0)},
        "one_turn_run_ms": {"p50": pct(&whole, 50.0)},
        "target_ms": 30, "met": pct(&first, 50.0) <= 30.0,
    })
}

/// `bosun run` against `script`: VmRSS and VmHWM (KiB) once the model has received `requests`
/// requests and is slow to answer the last one. Read from /proc while the process runs: after
/// exec, so nothing of this (large) benchmark process is counted — wait4's ru_maxrss would count
/// the parent's pages at fork.
async fn rss_while_waiting(
    script: &str,
    requests: usize,
    task: &str,
    extra: &[&str],
) -> (u64, u64) {
    let home = tempfile::tempdir().expect("tempdir");
    let server = ScriptedServer::start(Script::from_yaml(script).expect("script"))
        .await
        .expect("server");
    let child = bosun_run(&server.base_url(), home.path(), task, extra)
        .spawn()
        .expect("spawn bosun");
    let pid = child.id().to_string();
    let waited = Instant::now();
    while server.turns_served() < requests && waited.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss = rss_kib(&pid);
    let (code, err) = tokio::task::spawn_blocking(move || finish(child))
        .await
        .expect("join");
    assert_eq!(code, 0, "bosun run ({task}) failed: {err}");
    assert_eq!(server.timings().len(), requests, "{task}: model requests");
    rss
}

async fn memory_section(t: &mut Table) -> Value {
    // idle: the session sent its first request and waits for the (slow) model
    let (idle_rss, idle_hwm) = rss_while_waiting(&one_turn(1_500), 1, "idle", &[]).await;
    // 49 tool-call turns done, waiting for the 50th answer
    let (rss, peak) = rss_while_waiting(
        &fifty_turns(),
        50,
        "fifty",
        &["--max-turns", "60", "--loop-limit", "100"],
    )
    .await;
    t.row(
        "RSS, one idle session (`bosun run`)",
        format!("{:.1} MiB", mib(idle_rss)),
        "≤ 30 MB",
        Some(idle_rss * 1024 <= 30_000_000),
    );
    t.row(
        "peak RSS (VmHWM), 50-turn session (`bosun run`)",
        format!("{:.1} MiB", mib(peak)),
        "≤ 30 MB",
        Some(peak * 1024 <= 30_000_000),
    );
    json!({
        "idle_session": {"rss_kib": idle_rss, "hwm_kib": idle_hwm},
        "fifty_turn_session": {"peak_rss_kib": peak, "rss_kib": rss, "turns": 50},
        "target_bytes": 30_000_000,
        "met": idle_rss * 1024 <= 30_000_000 && peak * 1024 <= 30_000_000,
    })
}

// ---------------------------------------------------------------------------------------------
// concurrency: many embedded sessions in one fresh process

/// Parent side: start `bosun scripted-model` in its own process, run the sessions in a fresh
/// copy of this benchmark, collect its JSON.
fn concurrency_section(t: &mut Table, quick: bool) -> Value {
    let sessions = if quick { 100 } else { 1_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("ten.yaml");
    std::fs::write(&script, ten_turns()).expect("write script");
    let mut server = Command::new(bosun_bin())
        .args(["scripted-model", "--script"])
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bosun scripted-model");
    let mut url = String::new();
    if let Some(out) = server.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut url);
    }
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .args(["--section", "concurrency", "--base-url", url.trim()])
        .args(["--sessions", &sessions.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the concurrency section");
    // SIGINT: the scripted model prints its failures and exits
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGINT) };
    let server_err = stderr_of(&mut server);
    let _ = server.wait();
    let model_failures = server_err
        .lines()
        .filter(|l| l.contains("scripted model:"))
        .count();
    let mut v: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| json!({"error": "the concurrency section printed no result"}));
    v["model_failures"] = json!(model_failures);
    let errors = v["errors"].as_u64().unwrap_or(u64::MAX);
    t.row(
        &format!("{sessions} sessions × 10 turns: total time"),
        format!("{:.2} s", v["total_s"].as_f64().unwrap_or(f64::NAN)),
        "",
        None,
    );
    t.row(
        "  peak RSS of the process",
        format!("{:.1} MiB", mib(v["peak_rss_kib"].as_u64().unwrap_or(0))),
        "",
        None,
    );
    t.row(
        "  per session (peak − idle runtime) / sessions",
        format!(
            "{:.0} KiB",
            v["per_session_kib"].as_f64().unwrap_or(f64::NAN)
        ),
        "",
        None,
    );
    t.row(
        "  errors (sessions failed + model failures)",
        format!("{} + {model_failures}", errors),
        "0",
        Some(errors == 0 && model_failures == 0),
    );
    v
}

/// Child side: `--section concurrency`.
async fn concurrency_child(base_url: &str, sessions: usize) -> Value {
    let state = tempfile::tempdir().expect("tempdir");
    let rt = runtime(base_url, state.path());
    let (base_rss, _) = rss_kib("self");
    let started = Instant::now();
    let mut joins = Vec::with_capacity(sessions);
    for k in 0..sessions {
        let rt = rt.clone();
        joins.push(tokio::spawn(async move {
            let mut h = rt.spawn_session(None).map_err(|e| e.to_string())?;
            h.submit(Op::UserTurn {
                text: format!("concurrent task {k}"),
            });
            let r = loop {
                match h.next_event().await {
                    Some(Event::TaskComplete { turns, .. }) => break Ok(turns),
                    Some(Event::TaskFailed { error }) => break Err(error),
                    Some(_) => {}
                    None => break Err("the session ended early".to_string()),
                }
            };
            h.submit(Op::Shutdown);
            h.join().await;
            r
        }));
    }
    let mut errors = vec![];
    let mut turns = 0u64;
    for j in joins {
        match j.await {
            Ok(Ok(n)) => turns += u64::from(n),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let total = started.elapsed();
    let (rss, hwm) = rss_kib("self");
    for e in errors.iter().take(3) {
        eprintln!("session error: {e}");
    }
    json!({
        "sessions": sessions, "turns": turns, "errors": errors.len(),
        "total_s": total.as_secs_f64(),
        "turns_per_s": turns as f64 / total.as_secs_f64(),
        "runtime_rss_kib": base_rss, "peak_rss_kib": hwm, "final_rss_kib": rss,
        "per_session_kib": hwm.saturating_sub(base_rss) as f64 / sessions.max(1) as f64,
    })
}

// ---------------------------------------------------------------------------------------------
// guard decision latency

/// The guard's own cost is measured on a tool whose `resolve` does no I/O (kubectl's resolves
/// kinds through the API server's discovery, which is the cluster's cost, not the guard's): it
/// plans like kubectl — a change identified by target + content hash, `dry_run: true` as its
/// dry-run.
struct Rec;

impl bosun::tools::Tool for Rec {
    fn name(&self) -> &str {
        "rec"
    }
    fn description(&self) -> &str {
        "a benchmark tool"
    }
    fn operations(&self) -> &[(&'static str, bosun::effect::EffectClass)] {
        &[
            ("apply", bosun::effect::EffectClass::Mutating),
            ("get", bosun::effect::EffectClass::ReadOnly),
        ]
    }
    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "operation": {"type": "string", "enum": ["apply", "get"]},
            "namespace": {"type": "string"}, "manifests": {"type": ["string", "null"]},
            "dry_run": {"type": ["boolean", "null"]}}})
    }
    fn plan(&self, args: &Value) -> Result<bosun::tools::Invocation, bosun::tools::ToolError> {
        let ns = args["namespace"].as_str().unwrap_or("default").to_string();
        if args["operation"] == "get" {
            return Ok(bosun::tools::Invocation::read(
                "get",
                format!("pods in {ns}"),
            ));
        }
        let m = args["manifests"].as_str().unwrap_or("");
        Ok(bosun::tools::Invocation {
            operation: "apply".into(),
            target: format!("apply in {ns}"),
            change: Some(bosun::tools::Change {
                target: format!("context=kind-dev namespace={ns}"),
                content_hash: bosun::tools::sha256_hex(m.as_bytes()),
                dry_run_hint: "dry_run: true".into(),
            }),
            dry_run: args["dry_run"].as_bool().unwrap_or(false),
            scope: bosun::tools::Scope {
                context: Some("kind-dev".into()),
                namespace: Some(ns),
                kinds: vec!["Deployment".into()],
                objects: vec![],
            },
            min_effect: None,
        })
    }
    fn execute<'a>(
        &'a self,
        _: bosun::guard::Admitted,
        _: &'a bosun::tools::ToolCtx,
    ) -> futures::future::BoxFuture<'a, Result<String, bosun::tools::ToolError>> {
        Box::pin(async { Ok(String::new()) })
    }
}

/// A copy of the default agent that also lists `rec`, on `Runtime` with it as an extra tool.
fn guard_runtime(state: &Path) -> Arc<Runtime> {
    let dir = state.join("agent");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir").flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
            }
        }
    };
    let root = repo();
    copy(&root.join("tools"), &dir.join("tools"));
    copy(&root.join("prompts"), &dir.join("prompts"));
    for e in std::fs::read_dir(root.join("skills"))
        .expect("skills")
        .flatten()
    {
        copy(&e.path(), &dir.join("skills").join(e.file_name()));
    }
    std::fs::copy(root.join("policy.yaml"), dir.join("policy.yaml")).expect("policy");
    let agent = std::fs::read_to_string(root.join("agent.md")).expect("agent.md");
    std::fs::write(
        dir.join("agent.md"),
        agent.replacen("tools: [", "tools: [\"rec\", ", 1),
    )
    .expect("agent.md");
    std::fs::write(
        dir.join("tools/rec.yaml"),
        "name: rec\ndescription: bench\noperations:\n  apply: {effect: mutating}\n  get: {effect: read_only}\n",
    )
    .expect("manifest");
    Runtime::from_dir(
        &dir,
        client("http://127.0.0.1:9/v1"),
        RuntimeOptions {
            workspace: Some(state.to_path_buf()),
            extra_tools: vec![Arc::new(Rec)],
            ..Default::default()
        },
    )
    .expect("the bench agent loads")
}

const MANIFEST: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n";

fn rec_call(id: String, manifests: &str, dry: bool) -> ToolCall {
    ToolCall {
        id,
        name: "rec".into(),
        arguments: json!({"operation": "apply", "namespace": "shop", "manifests": manifests,
                          "dry_run": dry})
        .to_string(),
    }
}

/// Microseconds per `Guard::admit` of `n` calls (in the deployment state), sorted. `before`
/// runs untimed before each call (an apply uses up its dry-run, so it records a new one).
async fn admit_times(
    guard: &Guard,
    rt: &Runtime,
    n: usize,
    admitted: bool,
    before: impl Fn(),
    call: impl Fn(usize) -> ToolCall,
) -> Vec<f64> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let call = call(i);
        before();
        let t = Instant::now();
        let (d, a) = guard
            .admit(&rt.registry, &call, State::Deployment, &rt.ctx)
            .await;
        v.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(a.is_some(), admitted, "{}", d.reason);
    }
    sorted(v)
}

async fn guard_section(t: &mut Table, quick: bool) -> Value {
    let n = if quick { 2_000 } else { 20_000 };
    let state = tempfile::tempdir().expect("tempdir");
    let rt = guard_runtime(state.path());
    let guard = Guard::new(rt.guard_config.clone());
    // the real dry-run gives the fingerprint; each timed apply finds it recorded
    let (d, admitted) = guard
        .admit(
            &rt.registry,
            &rec_call("dry".into(), MANIFEST, true),
            State::Validation,
            &rt.ctx,
        )
        .await;
    let admitted = admitted.unwrap_or_else(|| panic!("the dry-run is admitted: {}", d.reason));
    let fp = admitted.fingerprint.clone().expect("a fingerprint");
    let again = || guard.restore_dry_run(fp.clone(), Duration::ZERO);
    let alone = admit_times(&guard, &rt, n, true, again, |i| {
        rec_call(format!("alone-{i}"), MANIFEST, false)
    })
    .await;
    for i in 1..10_000u32 {
        guard.restore_dry_run(
            Fingerprint {
                tool: "rec".into(),
                target: format!("context=kind-dev namespace=team-{}", i % 40),
                content_hash: bosun::tools::sha256_hex(&i.to_be_bytes()),
            },
            Duration::ZERO,
        );
    }
    let recorded = guard.dry_runs() + 1;
    let other = MANIFEST.replace("replicas: 2", "replicas: 3");
    let allowed = admit_times(&guard, &rt, n, true, again, |i| {
        rec_call(format!("allow-{i}"), MANIFEST, false)
    })
    .await;
    let refused = admit_times(
        &guard,
        &rt,
        n,
        false,
        || {},
        |i| rec_call(format!("refuse-{i}"), &other, false),
    )
    .await;
    let read = admit_times(
        &guard,
        &rt,
        n,
        true,
        || {},
        |i| ToolCall {
            id: format!("read-{i}"),
            name: "rec".into(),
            arguments: r#"{"operation":"get","namespace":"shop"}"#.into(),
        },
    )
    .await;
    t.row(
        "guard: apply matched, 1 fingerprint recorded, p50 / p99",
        format!("{:.1} / {:.1} µs", pct(&alone, 50.0), pct(&alone, 99.0)),
        "",
        None,
    );
    t.row(
        &format!("guard: apply matched among {recorded} fingerprints, p50 / p99"),
        format!("{:.1} / {:.1} µs", pct(&allowed, 50.0), pct(&allowed, 99.0)),
        "",
        None,
    );
    t.row(
        "guard: apply without a dry-run (refused), p50 / p99",
        format!("{:.1} / {:.1} µs", pct(&refused, 50.0), pct(&refused, 99.0)),
        "",
        None,
    );
    t.row(
        "guard: read, p50 / p99",
        format!("{:.1} / {:.1} µs", pct(&read, 50.0), pct(&read, 99.0)),
        "",
        None,
    );
    let stats = |v: &[f64]| json!({"p50": pct(v, 50.0), "p99": pct(v, 99.0), "max": pct(v, 100.0)});
    json!({
        "recorded_fingerprints": recorded, "calls_each": n,
        "apply_matched_one_fingerprint_us": stats(&alone),
        "apply_matched_us": stats(&allowed),
        "apply_refused_us": stats(&refused),
        "read_us": stats(&read),
    })
}

// discovery: the disk cache against a real API server

/// A running sandbox: `BOSUN_TEST_SANDBOX_DIR`'s, else one started now whose processes end with
/// this benchmark (tied to a parked thread, as the test harness does).
fn bench_sandbox() -> bosun::sandbox::SandboxState {
    use bosun::sandbox::{self, Lifetime, UpOptions};
    if let Some(dir) = std::env::var_os("BOSUN_TEST_SANDBOX_DIR") {
        if let Ok(Some(st)) = sandbox::load_state(Path::new(&dir)) {
            if st.all_alive() {
                return st;
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("bosun-bench-{}", std::process::id()));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let opts = UpOptions {
            lifetime: Lifetime::TiedToParent,
            controller_manager: false,
            kubelet: None,
        };
        let _ = tx.send(
            rt.block_on(sandbox::up(&dir, opts, &|_| {}))
                .map_err(|e| e.to_string()),
        );
        loop {
            std::thread::park();
        }
    });
    rx.recv()
        .expect("sandbox thread")
        .unwrap_or_else(|e| panic!("the sandbox could not start: {e}"))
}

/// User + system CPU of this process's waited-for children so far, in ms.
fn children_cpu_ms() -> f64 {
    cpu_ms(libc::RUSAGE_CHILDREN)
}

fn cpu_ms(who: libc::c_int) -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(ru.ru_utime) + ms(ru.ru_stime)
}

async fn discovery_section(t: &mut Table, quick: bool) -> Value {
    let runs = if quick { 5 } else { 20 };
    let st = bench_sandbox();
    let script = "per_conversation: true\nrecord_requests: false\nturns:\n  - reply:\n      content: \"\"\n      tool_calls:\n        - {name: kubectl, arguments: {operation: get, kind: namespaces}}\n  - reply: {content: \"done\"}\n";
    let server = ScriptedServer::start(Script::from_yaml(script).expect("script"))
        .await
        .expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let cache = home.path().join(".cache/bosun/discovery");
    // one run's CPU (ms): the child's rusage, from wait4
    let one = |k: String| {
        let before = children_cpu_ms();
        let child = bosun_run_on(&st.kubeconfig, &server.base_url(), home.path(), &k, &[])
            .spawn()
            .expect("spawn bosun");
        let (code, err) = finish(child);
        assert_eq!(code, 0, "bosun run failed: {err}");
        children_cpu_ms() - before
    };
    let mut cold = vec![];
    let mut warm = vec![];
    one("warm-up".into()); // the page cache, and a cache file
    for k in 0..runs {
        let _ = std::fs::remove_dir_all(&cache);
        cold.push(one(format!("cold {k}")));
        warm.push(one(format!("warm {k}")));
    }
    // kube's full discovery in this process, as every run did before the disk cache
    let target = KubeTarget {
        kubeconfig: Some(st.kubeconfig.clone()),
        context: None,
    };
    let cluster = bosun::kube_client::connect_with(&target, None)
        .await
        .expect("connect");
    let mut full = vec![];
    for _ in 0..runs {
        let before = cpu_ms(libc::RUSAGE_SELF);
        kube::discovery::Discovery::new(cluster.client.clone())
            .run()
            .await
            .expect("discovery");
        full.push(cpu_ms(libc::RUSAGE_SELF) - before);
    }
    let (cold, warm, full) = (sorted(cold), sorted(warm), sorted(full));
    let (c, w, f) = (pct(&cold, 50.0), pct(&warm, 50.0), pct(&full, 50.0));
    t.row(
        &format!("one-call `bosun run` CPU, cold discovery cache, p50 of {runs}"),
        format!("{c:.1} ms"),
        "",
        None,
    );
    t.row(
        "  warm discovery cache, p50",
        format!("{w:.1} ms"),
        "< cold",
        Some(w < c),
    );
    t.row(
        "  warm / cold",
        format!("{:.2}", w / c.max(f64::MIN_POSITIVE)),
        "",
        None,
    );
    t.row(
        "  kube `Discovery::run` alone (in process), p50",
        format!("{f:.1} ms"),
        "",
        None,
    );
    json!({
        "runs": runs,
        "one_call_run_cpu_ms": {"cold": {"p50": c, "min": pct(&cold, 0.0), "max": pct(&cold, 100.0)},
                                 "warm": {"p50": w, "min": pct(&warm, 0.0), "max": pct(&warm, 100.0)}},
        "warm_over_cold": w / c.max(f64::MIN_POSITIVE),
        "full_discovery_cpu_ms": {"p50": f, "min": pct(&full, 0.0), "max": pct(&full, 100.0)},
    })
}

fn main() {
    bosun::init_crypto();
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    if o.section.as_deref() == Some("concurrency") {
        let v = rt.block_on(concurrency_child(
            o.base_url.as_deref().unwrap_or(""),
            o.sessions.max(1),
        ));
        println!("{v}");
        return;
    }
    let mode = if o.quick { "quick" } else { "full" };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bosun runtime benchmark ({mode}); {cores} cores, load average {} at start; binary {}",
        loadavg(),
        bosun_bin().display()
    );
    let load_start = loadavg();
    let mut t = Table(vec![]);
    let mut report = serde_json::Map::new();
    report.insert("mode".into(), json!(mode));
    report.insert("cores".into(), json!(cores));
    report.insert("load_average_start".into(), json!(load_start));
    report.insert("turn".into(), rt.block_on(turn_section(&mut t, o.quick)));
    report.insert(
        "cold_start".into(),
        rt.block_on(cold_start_section(&mut t, o.quick)),
    );
    report.insert("memory".into(), rt.block_on(memory_section(&mut t)));
    report.insert("concurrency".into(), concurrency_section(&mut t, o.quick));
    report.insert("guard".into(), rt.block_on(guard_section(&mut t, o.quick)));
    report.insert(
        "discovery".into(),
        rt.block_on(discovery_section(&mut t, o.quick)),
    );
    // last: the 10,000-pod listing makes this process large, which would slow the spawns above
    let mut p = Table(vec![]);
    report.insert("prompt".into(), prompt_section(&mut p));
    report.insert("load_average_end".into(), json!(loadavg()));
    p.0.extend(t.0);
    p.print();
    println!("load average at the end: {}", loadavg());
    let path = o.json.unwrap_or_else(default_json);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(
        &path,
        serde_json::to_string_pretty(&Value::Object(report)).unwrap_or_default(),
    ) {
        Ok(()) => println!("JSON: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
