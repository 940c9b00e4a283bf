//! The `bosun serve` load benchmark (issue #20): 200 sessions at once through the HTTP API
//! against the scripted model, each followed over SSE to its end. Prints a table and writes
//! JSON; asserts only that every session finished (a benchmark of failures measures nothing).
//!
//! ```sh
//! cargo bench --bench serve                      # 200 sessions × 10 turns
//! BOSUN_BENCH_QUICK=1 cargo bench --bench serve  # CI: 200 sessions × 4 turns
//! cargo bench --bench serve -- --sessions 500 --json out.json
//! ```
//!
//! Figures:
//! - event latency: the server stamps each event when its session's pump receives it (`at_us`);
//!   the client subtracts that from when the SSE message arrives. Server-side fan-out and HTTP
//!   delivery under load; not the model's or the tools' time.
//! - session time: `POST /v1/sessions` sent → the stream's `end` received.
//! - create latency: `POST /v1/sessions` round trip (a runtime per mode/scope is built once).
//! - server RSS: VmRSS of the `bosun serve` process sampled every 20 ms (peak) and VmHWM at the
//!   end; the model and the client run in this process, so they are not counted.
//!
//! The `bosun` binary: `CARGO_BIN_EXE_bosun`, or `BOSUN_BIN` (measure the release binary).

#[path = "support/apiserver.rs"]
mod apiserver;

use bosun::scripted::{Script, ScriptedServer};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A task of `turns` model turns: tool calls that need no cluster, then the answer.
fn script(turns: usize) -> String {
    let calls = [
        r#"{name: activate_skill, arguments: {name: kubernetes}}"#,
        r#"{name: transition, arguments: {to: coding, justification: "task understood"}}"#,
        r#"{name: activate_skill, arguments: {name: gitops}}"#,
        r#"{name: transition, arguments: {to: validation, justification: "written"}}"#,
        r#"{name: activate_skill, arguments: {name: iac}}"#,
        r#"{name: transition, arguments: {to: coding, justification: "one fix"}}"#,
        r#"{name: activate_skill, arguments: {name: scripting}}"#,
        r#"{name: transition, arguments: {to: validation, justification: "fixed"}}"#,
        r#"{name: transition, arguments: {to: completion, justification: "done", report: "Status: Success"}}"#,
    ];
    let mut s = String::from("per_conversation: true\nrecord_requests: false\nturns:\n");
    for c in calls.iter().take(turns.saturating_sub(1)) {
        s.push_str(&format!("  - reply: {{tool_calls: [{c}]}}\n"));
    }
    s.push_str("  - reply: {content: \"Status: Success\"}\n");
    s
}

fn bosun_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BOSUN_BIN") {
        return PathBuf::from(p);
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_bosun") {
        return PathBuf::from(p);
    }
    PathBuf::from("bosun")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
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

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// One session: create, follow to `end`. Returns (create ms, session ms, event latencies µs,
/// final status).
async fn one(
    http: reqwest::Client,
    base: String,
    i: usize,
) -> Result<(f64, f64, Vec<f64>, String), String> {
    let t0 = Instant::now();
    let r = http
        .post(format!("{base}/v1/sessions"))
        .json(&json!({"task": format!("bench task {i}"), "mode": "read-only"}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let created_ms = t0.elapsed().as_secs_f64() * 1e3;
    if r.status().as_u16() != 201 {
        return Err(format!(
            "create: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ));
    }
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let r = http
        .get(format!("{base}/v1/sessions/{id}/events"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = r.bytes_stream().eventsource();
    let mut lat = Vec::new();
    let mut status = String::from("no task_complete");
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(|e| e.to_string())?;
        if ev.event == "end" {
            break;
        }
        let d: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
        if let Some(at) = d["at_us"].as_i64() {
            lat.push((now_us() - at) as f64);
        }
        if ev.event == "task_complete" {
            status = d["event"]["status"].as_str().unwrap_or("?").to_string();
        }
        if ev.event == "task_failed" {
            status = format!("failed: {}", d["event"]["error"]);
        }
    }
    Ok((created_ms, t0.elapsed().as_secs_f64() * 1e3, lat, status))
}

fn main() {
    let mut quick = std::env::var("BOSUN_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut sessions = 200usize;
    let mut json_path = target_dir().join("bench").join("serve.json");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--sessions" => sessions = args.next().and_then(|s| s.parse().ok()).unwrap_or(200),
            "--json" => {
                if let Some(p) = args.next() {
                    json_path = PathBuf::from(p);
                }
            }
            _ => {}
        }
    }
    let turns = if quick { 4 } else { 10 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    bosun::init_crypto();
    rt.block_on(async move {
        let model = ScriptedServer::start(Script::from_yaml(&script(turns)).expect("script"))
            .await
            .expect("scripted model");
        let home = tempfile::tempdir().expect("tempdir");
        let kubeconfig = apiserver::fake_apiserver_kubeconfig(home.path());
        let mut child = Command::new(bosun_bin())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("RUST_LOG", "error")
            .env("OPENAI_BASE_URL", model.base_url())
            .arg("--agent")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(["serve", "--listen", "127.0.0.1:0", "--model", "bench", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(["--max-sessions", &(sessions + 8).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting bosun serve");
        let pid = child.id();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the URL");
        let base = line.trim().to_string();
        let (idle_rss, _) = rss_kib(pid);

        // sample the server's RSS while the sessions run
        let peak = Arc::new(AtomicU64::new(0));
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(pid).0, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(sessions * 2)
            .build()
            .expect("client");
        let start = Instant::now();
        let tasks: Vec<_> = (0..sessions)
            .map(|i| tokio::spawn(one(http.clone(), base.clone(), i)))
            .collect();
        let (mut creates, mut totals, mut lats, mut errors, mut statuses) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), std::collections::BTreeMap::new());
        for t in tasks {
            match t.await {
                Ok(Ok((c, total, l, status))) => {
                    creates.push(c);
                    totals.push(total);
                    lats.extend(l);
                    *statuses.entry(status).or_insert(0u32) += 1;
                }
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let wall = start.elapsed().as_secs_f64();
        sampling.store(false, Ordering::Relaxed);
        let _ = sampler.await;
        let (end_rss, hwm) = rss_kib(pid);
        let _ = child.kill();
        let _ = child.wait();
        for v in [&mut creates, &mut totals, &mut lats] {
            v.sort_by(|a, b| a.total_cmp(b));
        }
        let mib = |k: u64| k as f64 / 1024.0;
        let out = json!({
            "sessions": sessions, "turns_per_session": turns, "quick": quick,
            "completed": totals.len(), "errors": errors.len(), "statuses": statuses,
            "wall_s": wall, "sessions_per_s": totals.len() as f64 / wall,
            "events": lats.len(),
            "event_latency_ms": {"p50": pct(&lats, 50.0) / 1e3, "p99": pct(&lats, 99.0) / 1e3, "max": lats.last().copied().unwrap_or(f64::NAN) / 1e3},
            "session_ms": {"p50": pct(&totals, 50.0), "p99": pct(&totals, 99.0)},
            "create_ms": {"p50": pct(&creates, 50.0), "p99": pct(&creates, 99.0)},
            "server_rss_mib": {"idle": mib(idle_rss), "peak_sampled": mib(peak.load(Ordering::Relaxed)), "end": mib(end_rss), "hwm": mib(hwm)},
        });
        println!("bosun serve: {sessions} concurrent sessions × {turns} turns (scripted model, zero latency)");
        println!("  completed           {} / {sessions} in {wall:.2} s ({:.0} sessions/s), errors {}", totals.len(), totals.len() as f64 / wall, errors.len());
        println!("  event latency       p50 {:.2} ms   p99 {:.2} ms   ({} events)", pct(&lats, 50.0) / 1e3, pct(&lats, 99.0) / 1e3, lats.len());
        println!("  session time        p50 {:.0} ms   p99 {:.0} ms", pct(&totals, 50.0), pct(&totals, 99.0));
        println!("  create (POST)       p50 {:.1} ms   p99 {:.1} ms", pct(&creates, 50.0), pct(&creates, 99.0));
        println!("  server RSS          idle {:.1} MiB, peak {:.1} MiB (VmHWM {:.1} MiB), after {:.1} MiB", mib(idle_rss), mib(peak.load(Ordering::Relaxed)), mib(hwm), mib(end_rss));
        if let Some(dir) = json_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&json_path, serde_json::to_string_pretty(&out).expect("json")).expect("write json");
        println!("  json: {}", json_path.display());
        for e in errors.iter().take(5) {
            eprintln!("  error: {e}");
        }
        assert!(errors.is_empty(), "{} session(s) failed", errors.len());
    });
}
