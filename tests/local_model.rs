//! bosun against a real small model on the CPU: llama.cpp (the PyPI `xllamacpp` wheel) serving
//! Qwen2.5-Coder-0.5B-Instruct Q4_K_M, and the real sandbox cluster.
//!
//! Opt-in: `cargo test --features real-model --test local_model -- --nocapture` after
//! `scripts/install-local-model.sh`. Without the feature this file is not built; with it, a missing
//! model or engine fails with the install command.
//!
//! - `BOSUN_REAL_MODEL_GGUF`: another GGUF (default: the pinned 0.5B in ~/.cache/bosun/models)
//! - `BOSUN_REAL_MODEL_THREADS`: CPU threads for the server (default 1: the machine is shared)
//! - `BOSUN_REAL_MODEL_MIN_CALLS` / `BOSUN_REAL_MODEL_MIN_PASS`: how many of the five single-step
//!   cases must make the right call / also answer with facts from the cluster (defaults 4 and 2;
//!   see [`DEFAULT_MIN_CALLS`])
//!
//! The suite prints a table of cases with per-turn times and writes it as JSON to
//! `$CARGO_TARGET_TMPDIR/real-model-report.json`.

#[path = "integration/common/mod.rs"]
mod common;

use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MODEL_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const INSTALL: &str = "scripts/install-local-model.sh";

/// One real-model test at a time: they share the CPU.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This test binary is only built with `--features real-model`, so being here is the opt-in:
/// every test runs, and a missing model fails with the install command.
fn opted_in(_test: &str) -> bool {
    true
}

/// The model file; opted in and missing, the test fails with the install command.
fn model() -> PathBuf {
    let p = std::env::var_os("BOSUN_REAL_MODEL_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| bosun::sandbox::cache_dir().join("models").join(MODEL_FILE));
    assert!(
        p.is_file(),
        "the real-model suite needs the model {}, which is missing: run {INSTALL} (it pip-installs xllamacpp and assembles the pinned GGUF)",
        p.display()
    );
    p
}

fn threads() -> String {
    std::env::var("BOSUN_REAL_MODEL_THREADS").unwrap_or_else(|_| "1".into())
}

// ---------------------------------------------------------------- cluster fixtures

async fn ensure_namespace(name: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    let api: Api<Namespace> = Api::all(common::kube().await);
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace object");
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// A pod with the status a kubelet would report (the sandbox has none); exists already: kept.
async fn ensure_pod(ns: &str, name: &str, ready: bool, waiting: Option<&str>, restarts: i32) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let api: Api<Pod> = Api::namespaced(common::kube().await, ns);
    let app = name.rsplit_once('-').map_or(name, |(a, _)| a);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/instance": app}},
        "spec": {"containers": [{"name": "main", "image": format!("registry.example/{app}:1.0.0")}]}
    }))
    .expect("pod object");
    match api.create(&PostParams::default(), &pod).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => return,
        Err(e) => panic!("creating pod {ns}/{name}: {e}"),
    }
    let state = match waiting {
        Some(r) => json!({"waiting": {"reason": r}}),
        None => json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
    };
    let status = json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "main", "image": format!("registry.example/{app}:1.0.0"), "imageID": "",
        "ready": ready, "restartCount": restarts, "state": state}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("setting status of {ns}/{name}: {e}"));
}

async fn ensure_deployment(ns: &str, name: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, PostParams};
    let api: Api<Deployment> = Api::namespaced(common::kube().await, ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": format!("registry.example/{name}:2.3.1")}]}}}
    }))
    .expect("deployment object");
    match api.create(&PostParams::default(), &d).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating deployment {ns}/{name}: {e}"),
    }
}

async fn namespace_count() -> usize {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, ListParams};
    let api: Api<Namespace> = Api::all(common::kube().await);
    api.list(&ListParams::default())
        .await
        .expect("listing namespaces")
        .items
        .len()
}

/// The little platform the cases ask about.
async fn seed() {
    for ns in ["shop", "payments", "minio"] {
        ensure_namespace(ns).await;
    }
    ensure_pod("shop", "web-1", true, None, 0).await;
    ensure_pod("shop", "web-2", true, None, 0).await;
    ensure_deployment("shop", "storefront").await;
    ensure_pod("payments", "api-1", true, None, 0).await;
    ensure_pod("payments", "worker-1", false, Some("CrashLoopBackOff"), 6).await;
    ensure_pod("minio", "minio-0", true, None, 0).await;
    ensure_pod("minio", "minio-1", true, None, 0).await;
}

// ---------------------------------------------------------------- running bosun

/// What one `bosun run --output jsonl` did, with the arrival time of each event.
#[derive(Debug, Default)]
struct Trace {
    code: Option<i32>,
    events: Vec<(Duration, Value)>,
    stderr: String,
    total: Duration,
}

impl Trace {
    fn of_type(&self, t: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|(_, e)| e["type"] == t)
            .map(|(_, e)| e)
            .collect()
    }

    /// Seconds per model turn: from the task start or the last tool result to the turn's end.
    fn turn_secs(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut since = Duration::ZERO;
        for (at, e) in &self.events {
            match e["type"].as_str() {
                Some("task_started") | Some("tool_call_finished") => since = *at,
                Some("turn_complete") => {
                    out.push((*at - since).as_secs_f64());
                    since = *at;
                }
                _ => {}
            }
        }
        out
    }

    fn answer(&self) -> Option<String> {
        self.of_type("task_complete")
            .first()
            .and_then(|e| e["answer"].as_str().map(str::to_string))
    }
}

/// Run `bosun` with `args` in a clean environment against the sandbox, reading events as they
/// arrive.
async fn bosun(args: Vec<String>) -> Trace {
    let st = common::sandbox();
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.current_dir(home.path())
        .env("KUBECONFIG", &st.kubeconfig)
        .env("BOSUN_CACHE", bosun::sandbox::cache_dir())
        .env("BOSUN_LOCAL_THREADS", threads())
        .arg("--agent")
        .arg(common::repo_root())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let _home = home;
        let start = Instant::now();
        let mut child = cmd.spawn().expect("starting bosun");
        let err = child.stderr.take().expect("stderr");
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(err), &mut s);
            s
        });
        let mut events = Vec::new();
        let out = child.stdout.take().expect("stdout");
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                events.push((start.elapsed(), v));
            }
        }
        let status = child.wait().expect("waiting for bosun");
        Trace {
            code: status.code(),
            events,
            stderr: err_reader.join().unwrap_or_default(),
            total: start.elapsed(),
        }
    })
    .await
    .expect("join")
}

/// `bosun local serve` in the background, stopped (SIGTERM to bosun) on drop.
struct Served {
    child: std::process::Child,
    base_url: String,
    model: String,
    ready_after: Duration,
}

impl Served {
    async fn start(model: &Path) -> Self {
        let port = bosun::sandbox::process::free_port().expect("free port");
        let mut cmd = Command::new(common::bosun_bin());
        cmd.args(["local", "serve"])
            .arg(model)
            .args(["--port", &port.to_string(), "--threads", &threads()])
            .env("BOSUN_CACHE", bosun::sandbox::cache_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let started = Instant::now();
        let mut child = cmd.spawn().expect("starting bosun local serve");
        let out = child.stdout.take().expect("stdout");
        // the base URL is printed once the server is healthy
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            line
        });
        let line = tokio::time::timeout(Duration::from_secs(300), line)
            .await
            .expect("bosun local serve was not ready within 300 s")
            .expect("join");
        assert!(
            line.starts_with("http://127.0.0.1:"),
            "bosun local serve printed {line:?} instead of its base URL"
        );
        Self {
            child,
            base_url: line.trim().to_string(),
            model: model
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
            ready_after: started.elapsed(),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the cases

/// A single-step task: the call it needs, and facts from the cluster (in the tool's output, not
/// in the question) of which its answer must contain at least one.
struct Case {
    task: &'static str,
    kinds: &'static [&'static str],
    namespace: Option<&'static str>,
    facts: Vec<String>,
}

fn cases(namespaces: usize) -> Vec<Case> {
    vec![
        Case {
            task: "List the pods in namespace shop.",
            kinds: &["pods", "pod", "po", "Pod"],
            namespace: Some("shop"),
            facts: vec![
                "web-1".into(),
                "web-2".into(),
                "storefront-".into(),
                "3 pods".into(),
                "2 Running".into(),
                "1 Pending".into(),
            ],
        },
        Case {
            task: "Which pods in namespace payments are not ready?",
            kinds: &["pods", "pod", "po", "Pod"],
            namespace: Some("payments"),
            facts: vec![
                "worker-1".into(),
                "CrashLoopBackOff".into(),
                "restarts 6".into(),
            ],
        },
        Case {
            task: "Is the MinIO block in namespace minio ready?",
            kinds: &[],
            namespace: Some("minio"),
            facts: vec![
                "minio-0".into(),
                "minio-1".into(),
                "2/2".into(),
                "2 Running".into(),
                "2 pods".into(),
            ],
        },
        Case {
            task: "How many namespaces does the cluster have?",
            kinds: &["namespaces", "namespace", "ns", "Namespace"],
            namespace: None,
            facts: vec![namespaces.to_string()],
        },
        Case {
            task: "List the deployments in namespace shop.",
            kinds: &["deployments", "deployment", "deploy", "Deployment"],
            namespace: Some("shop"),
            facts: vec!["storefront".into(), "1 deployment".into()],
        },
    ]
}

/// How a case went.
#[derive(Debug)]
struct Verdict {
    call_ok: bool,
    answer_ok: bool,
    why: String,
}

fn judge(case: &Case, t: &Trace) -> Verdict {
    let started = t.of_type("tool_call_started");
    let decisions = t.of_type("guard_decision");
    let finished = t.of_type("tool_call_finished");
    // a call to kubectl the guard admitted, that ran, with the right kind and namespace
    let good_call = started.iter().any(|s| {
        let id = &s["call_id"];
        let args: Value = s["arguments"]
            .as_str()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or(Value::Null);
        let admitted = decisions
            .iter()
            .any(|d| &d["call_id"] == id && d["verdict"] == "allow");
        let ran = finished
            .iter()
            .any(|f| &f["call_id"] == id && f["ok"] == true);
        let kind_ok = case.kinds.is_empty()
            || args["kind"]
                .as_str()
                .is_some_and(|k| case.kinds.contains(&k));
        let ns_ok = case
            .namespace
            .is_none_or(|ns| args["namespace"] == ns || args["all_namespaces"] == true);
        s["tool"] == "kubectl" && admitted && ran && kind_ok && ns_ok
    });
    let answer = t.answer().unwrap_or_default();
    let answer_ok = !answer.is_empty() && case.facts.iter().any(|f| answer.contains(f.as_str()));
    let calls: Vec<String> = started
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["tool"].as_str().unwrap_or("?"),
                s["arguments"]
                    .as_str()
                    .unwrap_or("")
                    .replace(['\n', ' '], "")
            )
        })
        .collect();
    let failed = t
        .of_type("task_failed")
        .first()
        .and_then(|e| e["error"].as_str().map(str::to_string));
    Verdict {
        call_ok: good_call,
        answer_ok,
        why: format!(
            "calls: {calls:?}; answer: {:?}{}",
            answer.chars().take(200).collect::<String>(),
            failed.map(|f| format!("; failed: {f}")).unwrap_or_default()
        ),
    }
}

#[tokio::test]
async fn single_step_tasks_on_the_real_model() {
    if !opted_in("single_step_tasks_on_the_real_model") {
        return;
    }
    let _one = SERIAL.lock().await;
    let model = model();
    seed().await;
    let cases = cases(namespace_count().await);
    let served = Served::start(&model).await;
    eprintln!(
        "local server ready in {:.1}s at {} ({} thread(s))",
        served.ready_after.as_secs_f64(),
        served.base_url,
        threads()
    );
    let mut rows = Vec::new();
    let mut passed = 0;
    let mut calls_ok = 0;
    for case in &cases {
        let t = bosun(vec![
            "run".into(),
            "--base-url".into(),
            served.base_url.clone(),
            "--model".into(),
            served.model.clone(),
            "--max-turns".into(),
            "6".into(),
            "--output".into(),
            "jsonl".into(),
            "--audit-dir".into(),
            std::env::temp_dir()
                .join("bosun-real-model-audit")
                .display()
                .to_string(),
            case.task.into(),
        ])
        .await;
        let v = judge(case, &t);
        let pass = v.call_ok && v.answer_ok;
        passed += usize::from(pass);
        calls_ok += usize::from(v.call_ok);
        let turns = t.turn_secs();
        eprintln!(
            "{} {:<48} call {} answer {} turns {:?} ({:.1}s) — {}",
            if pass { "PASS" } else { "FAIL" },
            case.task,
            if v.call_ok { "ok" } else { "NO" },
            if v.answer_ok { "ok" } else { "NO" },
            turns.iter().map(|s| format!("{s:.1}s")).collect::<Vec<_>>(),
            t.total.as_secs_f64(),
            v.why
        );
        if t.code.is_none() || (!pass && !t.stderr.trim().is_empty()) {
            eprintln!(
                "  stderr: {}",
                t.stderr.trim().chars().take(600).collect::<String>()
            );
        }
        rows.push(
            json!({"task": case.task, "pass": pass, "call_ok": v.call_ok,
            "answer_ok": v.answer_ok, "turn_secs": turns, "total_secs": t.total.as_secs_f64(),
            "exit": t.code, "detail": v.why}),
        );
    }
    let min_pass = env_usize("BOSUN_REAL_MODEL_MIN_PASS", DEFAULT_MIN_PASS);
    let min_calls = env_usize("BOSUN_REAL_MODEL_MIN_CALLS", DEFAULT_MIN_CALLS);
    let report = json!({"model": model.display().to_string(), "threads": threads(),
        "server_ready_secs": served.ready_after.as_secs_f64(),
        "passed": passed, "calls_ok": calls_ok, "cases": cases.len(),
        "min_pass": min_pass, "min_calls": min_calls, "results": rows});
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("real-model-report.json");
    let _ = std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    );
    eprintln!(
        "{passed}/{n} cases passed (call and answer; need {min_pass}), {calls_ok}/{n} with the right call (need {min_calls}); report: {}",
        path.display(),
        n = cases.len(),
    );
    assert!(
        calls_ok >= min_calls && passed >= min_pass,
        "on the real model {calls_ok}/{n} cases made the right call (need {min_calls}) and {passed}/{n} also answered with cluster facts (need {min_pass}); see the lines above",
        n = cases.len()
    );
}

/// Measured on Qwen2.5-Coder-0.5B Q4_K_M, 1 thread, 3 runs: 4–5 of 5 cases made the right call
/// and 3–4 of 5 also answered with facts from the cluster (the misses: the same call repeated
/// until the turn limit, or an answer contradicting the tool result). The thresholds sit at the
/// measured floor for calls and one below it for answers, so noise from one case does not fail
/// CI while a broken shim, template or server (0–1 of 5) does.
const DEFAULT_MIN_CALLS: usize = 4;
const DEFAULT_MIN_PASS: usize = 2;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

#[tokio::test]
async fn run_local_starts_the_server_answers_and_stops_it() {
    if !opted_in("run_local_starts_the_server_answers_and_stops_it") {
        return;
    }
    let _one = SERIAL.lock().await;
    let model = model();
    seed().await;
    // a uniquely named link, so the server's process can be told apart from any other; the
    // template is still chosen from the GGUF header (the name says nothing)
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir
        .path()
        .join(format!("renamed-{}.gguf", common::suffix()));
    std::os::unix::fs::symlink(&model, &link).expect("symlink");
    let needle = link.display().to_string();
    let t = bosun(vec![
        "run".into(),
        "--local".into(),
        needle.clone(),
        "--max-turns".into(),
        "6".into(),
        "--output".into(),
        "jsonl".into(),
        "--audit-dir".into(),
        dir.path().join("audit").display().to_string(),
        "List the pods in namespace shop.".into(),
    ])
    .await;
    let case = &cases(0)[0];
    let v = judge(case, &t);
    eprintln!(
        "run --local (cold): exit {:?}, answer with cluster facts: {}, turns {:?}, total {:.1}s — {}",
        t.code,
        v.answer_ok,
        t.turn_secs()
            .iter()
            .map(|s| format!("{s:.1}s"))
            .collect::<Vec<_>>(),
        t.total.as_secs_f64(),
        v.why
    );
    assert!(
        processes_with(&needle).is_empty(),
        "the local server is still running after bosun run --local"
    );
    assert_eq!(t.code, Some(0), "stderr: {}", t.stderr);
    assert!(
        t.of_type("task_started").first().is_some_and(|e| e["model"]
            .as_str()
            .is_some_and(|m| m.starts_with("renamed-"))),
        "the model name is the GGUF's file stem"
    );
    assert!(v.call_ok, "no admitted kubectl get pods in shop: {}", v.why);
    assert!(
        t.answer().is_some_and(|a| !a.trim().is_empty()),
        "no final answer: {}",
        v.why
    );
}

#[test]
fn run_local_without_a_model_file_says_where_models_come_from() {
    let home = tempfile::tempdir().expect("tempdir");
    let missing = home.path().join("nope.gguf");
    let out = common::bosun_cmd(home.path())
        .current_dir(home.path())
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--local"])
        .arg(&missing)
        .arg("hello")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("never downloads weights") && err.contains(INSTALL),
        "{err}"
    );
    let not_gguf = home.path().join("model.gguf");
    std::fs::write(&not_gguf, "not a model").expect("write");
    let out = common::bosun_cmd(home.path())
        .current_dir(home.path())
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--local"])
        .arg(&not_gguf)
        .arg("hello")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a GGUF model file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --local and --base-url do not mix
    let out = common::bosun_cmd(home.path())
        .args(["run", "--local"])
        .arg(&not_gguf)
        .args(["--base-url", "http://127.0.0.1:1/v1", "hello"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// `bosun eval` against the real model: the runs happen, each is scored by its verifier and
/// checks, and the JSON results and the markdown table are written — whatever the small model
/// manages (its pass rate is a measurement, not an assertion).
#[tokio::test]
async fn eval_runs_real_tasks_on_the_real_model_and_writes_the_table() {
    if !opted_in("eval_runs_real_tasks_on_the_real_model_and_writes_the_table") {
        return;
    }
    let _one = SERIAL.lock().await;
    let served = Served::start(&model()).await;
    let st = common::sandbox();
    let home = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("BOSUN_CACHE", bosun::sandbox::cache_dir())
        .arg("--agent")
        .arg(common::repo_root())
        .args([
            "eval",
            "--base-url",
            &served.base_url,
            "--model",
            &served.model,
        ])
        .args([
            "--model-timeout",
            "900",
            "--task-timeout",
            "1200",
            "--jobs",
            "1",
            "--out",
        ])
        .arg(out.path())
        .arg("--sandbox-dir")
        .arg(&st.dir)
        .args(["--tasks", "refuse-kube-system,scale-deployment"]);
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("bosun eval");
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(
        matches!(output.status.code(), Some(0) | Some(1)),
        "eval ran (exit 0 or 1): {stderr}"
    );
    let results: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("results.json")).expect("results.json"),
    )
    .expect("json");
    let runs = results["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 2, "{results}");
    for r in &runs {
        // the verifier failed before the agent, and the agent really talked to the model
        assert_eq!(r["precheck_failed"], true, "{r}");
        assert!(r["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{r}");
        assert!(r["passed"] == true || !r["reasons"].as_array().is_none_or(Vec::is_empty));
    }
    assert!(results["model"]
        .as_str()
        .unwrap_or_default()
        .contains(&served.model));
    let md = std::fs::read_to_string(out.path().join("results.md")).expect("results.md");
    assert!(
        md.contains("| refuse-kube-system |") && md.contains("| scale-deployment |"),
        "{md}"
    );
    println!("{md}");
}
