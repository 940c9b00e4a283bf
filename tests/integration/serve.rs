//! `bosun serve` end to end: the HTTP API over real sessions (the scripted model, kubectl
//! against the real sandbox under a kube context named `prod`), approvals by fingerprint, SSE,
//! cancel, limits, auth and the OpenAPI document; the approvals inbox in a real headless
//! Chromium (Debian's `chromium`, driven by npm `playwright-core`; both installed by
//! scripts/install-deps.sh).

use crate::common;

use bosun::scripted::{Script, ScriptedServer};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "serve-test-token-0123456789";

/// The sandbox's kubeconfig with its context called `prod` (the policy asks a human for every
/// change there).
fn prod_kubeconfig(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(&common::sandbox().kubeconfig).expect("kubeconfig");
    let p = dir.join("prod-kubeconfig");
    std::fs::write(&p, text.replace("bosun-sandbox", "prod")).expect("write");
    p
}

/// A script that dry-runs, then applies ConfigMap `name` in `ns` (the apply waits for a
/// human), then completes.
fn prod_script(ns: &str, name: &str, per_conversation: bool) -> Script {
    prod_script_slow(ns, name, per_conversation, 0)
}

/// [`prod_script`] whose turn after the approval takes `delay_ms` (a page can load meanwhile).
fn prod_script_slow(ns: &str, name: &str, per_conversation: bool, delay_ms: u64) -> Script {
    let m = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  level: \"<b>5</b>\"\n  token: \"hunter2-otel-canary-7f3a\"\n"
    );
    let cm = serde_json::to_string(&m).expect("json");
    let text = format!(
        r#"
per_conversation: {per_conversation}
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run first"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {cm}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "the dry-run passed"}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {cm}}}}}
  - delay_ms: {delay_ms}
    reply:
      tool_calls:
        - {{name: transition, arguments: {{to: verification, justification: "applied"}}}}
        - {{name: kubectl, arguments: {{operation: get, kind: configmaps, name: {name}, namespace: {ns}}}}}
        - {{name: transition, arguments: {{to: completion, justification: "verified", report: "Success: ConfigMap {name} applied in prod."}}}}
  - reply: {{content: "Applied the ConfigMap {name} in prod. <img src=x onerror=alert(1)>"}}
"#
    );
    Script::from_yaml(&text).expect("script")
}

/// `bosun serve --listen 127.0.0.1:0 …` as a child process, stopped when dropped.
pub struct ServeBin {
    child: tokio::process::Child,
    pub url: String,
    _home: tempfile::TempDir,
}

impl ServeBin {
    pub async fn start(model: &ScriptedServer, kubeconfig: &Path, env: &[(&str, &str)]) -> Self {
        let home = tempfile::tempdir().expect("tempdir");
        let mut c = tokio::process::Command::new(common::bosun_bin());
        c.env_clear()
            .envs(env.iter().copied())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("RUST_LOG", "warn")
            .env("OPENAI_BASE_URL", model.base_url())
            .env("KUBECONFIG", kubeconfig)
            .arg("--agent")
            .arg(common::repo_root())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = c.spawn().expect("starting bosun serve");
        let stdout = child.stdout.take().expect("stdout");
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("bosun serve printed its URL in time")
            .expect("reading stdout")
            .expect("a URL line");
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Self {
            child,
            url,
            _home: home,
        }
    }
}

impl Drop for ServeBin {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A small JSON client for the API.
#[derive(Clone)]
pub struct Api2 {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl Api2 {
    pub fn new(base: &str, token: Option<&str>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            token: token.map(str::to_string),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .req(reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .req(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Poll session `id` until `pred` holds (60 s).
    pub async fn wait_for(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (s, v) = self.get(&format!("/v1/sessions/{id}")).await;
            assert_eq!(s, 200, "{v}");
            if pred(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "session {id} never reached {what}: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every SSE message of session `id` until its `end` (30 s): (event name, data).
    pub async fn follow(&self, id: &str) -> Vec<(String, Value)> {
        let r = self
            .req(reqwest::Method::GET, &format!("/v1/sessions/{id}/events"))
            .send()
            .await
            .expect("events");
        assert_eq!(r.status().as_u16(), 200);
        let mut stream = r.bytes_stream().eventsource();
        let mut out = Vec::new();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(60), stream.next())
                .await
                .expect("an event in time");
            let Some(Ok(ev)) = ev else { break };
            let end = ev.event == "end";
            out.push((
                ev.event.clone(),
                serde_json::from_str(&ev.data).unwrap_or(Value::Null),
            ));
            if end {
                break;
            }
        }
        out
    }
}

async fn config_map(ns: &str, name: &str) -> Option<ConfigMap> {
    let api: Api<ConfigMap> = Api::namespaced(common::kube().await, ns);
    api.get_opt(name).await.expect("get")
}

#[tokio::test]
async fn a_prod_change_waits_in_the_api_and_runs_when_approved_by_its_fingerprint() {
    let ns = common::namespace("serve").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let model = ScriptedServer::start(prod_script(&ns, "settings", false))
        .await
        .expect("model");
    let server = ServeBin::start(&model, &prod_kubeconfig(dir.path()), &[]).await;
    let api = Api2::new(&server.url, None);

    let (s, created) = api
        .post(
            "/v1/sessions",
            json!({"task": "set the level to 5 in prod", "namespace": ns}),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["namespace"], ns.as_str());
    assert_eq!(created["mode"], "apply");
    let follower = {
        let api = api.clone();
        let id = id.clone();
        tokio::spawn(async move { api.follow(&id).await })
    };

    let waiting = api
        .wait_for(&id, "waiting_for_approval", |v| {
            v["status"] == "waiting_for_approval"
        })
        .await;
    let p = &waiting["pending_approvals"][0];
    assert_eq!(p["environment"], "prod", "{p:#}");
    assert_eq!(p["tool"], "kubectl");
    assert_eq!(p["operation"], "apply");
    assert_eq!(waiting["state"], "deployment");
    let fp = p["fingerprint"].as_str().expect("fingerprint").to_string();
    assert_eq!(fp.len(), 12, "{fp}");
    let evidence = p["dry_run_evidence"]
        .as_str()
        .expect("the dry-run evidence");
    assert!(evidence.contains("settings"), "{evidence}");
    assert!(
        config_map(&ns, "settings").await.is_none(),
        "nothing changed before the approval"
    );

    // a wrong fingerprint is a conflict naming what is pending, never a generic yes
    let (s, e) = api
        .post(
            &format!("/v1/sessions/{id}/approvals/000000000000/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    let msg = e["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("no change with fingerprint `000000000000`") && msg.contains(&fp),
        "{msg}"
    );
    assert_eq!(e["error"]["code"], "not_pending");
    let (s, e) = api
        .post(
            &format!("/v1/sessions/nonexistent/approvals/{fp}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 404, "{e}");
    // an API change without a bearer header must be JSON (no cross-site form can send that)
    let r = api
        .http
        .post(format!("{}/v1/sessions/{id}/cancel", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("x=1")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 415);
    // a cross-origin change is refused
    let r = api
        .http
        .post(format!(
            "{}/v1/sessions/{id}/approvals/{fp}/approve",
            api.base
        ))
        .header("origin", "http://evil.example")
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
    // without a token, only loopback Host headers are answered (no DNS rebinding)
    let r = api
        .http
        .get(format!("{}/v1/sessions", api.base))
        .header("host", "evil.example")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 421);
    assert_eq!(
        api.get(&format!("/v1/sessions/{id}")).await.1["status"],
        "waiting_for_approval",
        "none of that answered the approval"
    );

    let (s, v) = api
        .post(
            &format!("/v1/sessions/{id}/approvals/{fp}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let done = api
        .wait_for(&id, "completed", |v| v["status"] == "completed")
        .await;
    assert_eq!(done["outcome"]["status"], "success", "{done:#}");
    assert_eq!(done["state"], "completion");
    assert!(done["pending_approvals"]
        .as_array()
        .expect("list")
        .is_empty());
    let cm = config_map(&ns, "settings")
        .await
        .expect("applied after the approval");
    assert_eq!(
        cm.data.and_then(|d| d.get("level").cloned()).as_deref(),
        Some("<b>5</b>")
    );
    // answered once: a second answer finds nothing pending
    let (s, e) = api
        .post(
            &format!("/v1/sessions/{id}/approvals/{fp}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 409, "{e}");

    // the stream: numbered, in order, with the approval and the end
    let events = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .expect("the stream ended")
        .expect("follower");
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    for n in ["task_started", "approval_requested", "task_complete", "end"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert_eq!(names.last(), Some(&"end"));
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|(_, d)| d["seq"].as_u64())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let req = events
        .iter()
        .find(|(n, _)| n == "approval_requested")
        .expect("approval");
    assert_eq!(req.1["event"]["request"]["fingerprint"], fp.as_str());
    // a late follower gets the same history, replayed from a number
    let replay = api.follow(&id).await;
    assert_eq!(replay.len(), events.len());
    let r = api
        .http
        .get(format!("{}/v1/sessions/{id}/events?after=3", api.base))
        .send()
        .await
        .expect("events");
    let text = r.text().await.expect("body");
    assert!(
        text.contains("id: 4\n") && !text.contains("id: 3\n"),
        "{text}"
    );
    assert_eq!(model.failures(), Vec::<String>::new());
}

/// An in-process server (the library) over the prod kubeconfig.
pub async fn in_process(
    model: &ScriptedServer,
    kubeconfig: &Path,
    cfg: bosun::server::ServerConfig,
) -> bosun::server::Server {
    bosun::init_crypto();
    let loaded = bosun::agent::Agent::load(&common::repo_root()).expect("agent");
    let client = bosun::model::OpenAiClient::new(&bosun::config::ModelConfig {
        base_url: Some(model.base_url()),
        ..Default::default()
    })
    .expect("client");
    let opts = bosun::session::RuntimeOptions {
        kube: bosun::kube_client::KubeTarget {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            context: None,
        },
        ..Default::default()
    };
    let runtimes = Arc::new(bosun::server::Runtimes::new(
        loaded.agent,
        Arc::new(client),
        opts,
    ));
    bosun::server::serve(runtimes, cfg).await.expect("serve")
}

#[tokio::test]
async fn deny_cancel_limits_and_the_token() {
    let ns = common::namespace("serve-deny").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let model = ScriptedServer::start(prod_script(&ns, "denied", true))
        .await
        .expect("model");
    let server = in_process(
        &model,
        &prod_kubeconfig(dir.path()),
        bosun::server::ServerConfig {
            listen: "127.0.0.1:0".into(),
            token: Some(TOKEN.into()),
            max_sessions: 1,
            max_body: 2048,
            keep_sessions: 10,
        },
    )
    .await;
    let api = Api2::new(&server.url(), Some(TOKEN));
    let anon = Api2::new(&server.url(), None);

    // the token
    let (s, _) = anon.get("/v1/sessions").await;
    assert_eq!(s, 401);
    let (s, _) = Api2::new(&server.url(), Some("wrong-token-0123456789"))
        .get("/v1/sessions")
        .await;
    assert_eq!(s, 401);
    let (s, v) = api.get("/v1/sessions").await;
    assert_eq!((s, v["sessions"].as_array().map(Vec::len)), (200, Some(0)));
    let r = reqwest::get(format!("{}/", server.url()))
        .await
        .expect("get");
    assert!(
        r.url().path() == "/login",
        "the inbox sends a browser without the cookie to the login form: {}",
        r.url()
    );

    // limits: the body, bad input
    let (s, e) = api
        .post("/v1/sessions", json!({"task": "x".repeat(4096)}))
        .await;
    assert_eq!(s, 413, "{e}");
    let (s, e) = api.post("/v1/sessions", json!({"task": "  "})).await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = api
        .post("/v1/sessions", json!({"task": "t", "namespace": "../etc"}))
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = api
        .post("/v1/sessions", json!({"task": "t", "colour": "blue"}))
        .await;
    assert!(s == 400 || s == 422, "{s} {e}");

    // one running session at most: the second is a 429 with Retry-After
    let (s, a) = api
        .post("/v1/sessions", json!({"task": "apply it", "namespace": ns}))
        .await;
    assert_eq!(s, 201, "{a}");
    let a = a["id"].as_str().expect("id").to_string();
    let r = api
        .http
        .post(format!("{}/v1/sessions", api.base))
        .bearer_auth(TOKEN)
        .json(&json!({"task": "another"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );

    // deny by fingerprint, with a reason the model is told
    let w = api
        .wait_for(&a, "waiting", |v| v["status"] == "waiting_for_approval")
        .await;
    let fp = w["pending_approvals"][0]["fingerprint"]
        .as_str()
        .expect("fp")
        .to_string();
    let (s, v) = api
        .post(
            &format!("/v1/sessions/{a}/approvals/{fp}/deny"),
            json!({"reason": "not during the freeze"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let events = api.follow(&a).await;
    let refused = events.iter().any(|(n, d)| {
        n == "tool_call_finished"
            && d["event"]["output"]
                .as_str()
                .is_some_and(|o| o.contains("not during the freeze"))
    });
    assert!(refused, "the model was told why: {events:#?}");
    let end = api
        .wait_for(&a, "ended", |v| {
            v["status"] == "completed" || v["status"] == "failed"
        })
        .await;
    assert_ne!(end["outcome"]["status"], "success", "{end:#}");
    assert!(
        config_map(&ns, "denied").await.is_none(),
        "denied: nothing changed"
    );

    // the slot is free again; cancel a session waiting for approval
    let (s, b) = api
        .post("/v1/sessions", json!({"task": "apply it", "namespace": ns}))
        .await;
    assert_eq!(s, 201, "{b}");
    let b = b["id"].as_str().expect("id").to_string();
    api.wait_for(&b, "waiting", |v| v["status"] == "waiting_for_approval")
        .await;
    let (s, v) = api
        .post(&format!("/v1/sessions/{b}/cancel"), json!({}))
        .await;
    assert_eq!(s, 202, "{v}");
    let c = api
        .wait_for(&b, "cancelled", |v| v["status"] == "cancelled")
        .await;
    assert!(c["pending_approvals"].as_array().expect("list").is_empty());
    let (s, _) = api
        .post(&format!("/v1/sessions/{b}/cancel"), json!({}))
        .await;
    assert_eq!(s, 409);
    assert!(
        config_map(&ns, "denied").await.is_none(),
        "cancelled: nothing changed"
    );
    let (_, list) = api.get("/v1/sessions").await;
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, vec![b.as_str(), a.as_str()], "newest first");
    server.shutdown().await;
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = ScriptedServer::start(Script::from_yaml("turns: []").expect("script"))
        .await
        .expect("model");
    let server = in_process(
        &model,
        &prod_kubeconfig(dir.path()),
        bosun::server::ServerConfig {
            listen: "127.0.0.1:0".into(),
            ..Default::default()
        },
    )
    .await;
    let api = Api2::new(&server.url(), None);
    let (s, doc) = api.get("/openapi.json").await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "{}", paths.len());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for (path, ops) in paths {
        let concrete = path
            .replace("{id}", "no-such-session")
            .replace("{fingerprint}", "000000000000");
        for method in ops.as_object().expect("ops").keys() {
            let m: reqwest::Method = method.to_uppercase().parse().expect("method");
            let r = client
                .request(m, format!("{}{concrete}", server.url()))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            // axum's own "no route" answers are 404/405 with an empty body; ours say why
            assert!(
                status != 405 && !(status == 404 && body.is_empty()),
                "{method} {path} is documented but not served: {status} {body}"
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn serve_refuses_a_public_address_without_a_token() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = common::bosun_cmd(home.path())
        .arg("--agent")
        .arg(common::repo_root())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .expect("bosun serve");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve the bosun API on 0.0.0.0:0 without authentication")
            && err.contains("BOSUN_SERVE_TOKEN"),
        "{err}"
    );
    let out = common::bosun_cmd(home.path())
        .env("BOSUN_SERVE_TOKEN", "short")
        .arg("--agent")
        .arg(common::repo_root())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .expect("bosun serve");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
}

/// The playwright-core package (npm, installed by scripts/install-deps.sh).
fn playwright_core() -> PathBuf {
    let cache = std::env::var_os("BOSUN_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bosun")))
        .expect("HOME is set");
    let p = cache.join("playwright-core/current/node_modules/playwright-core");
    assert!(
        p.join("package.json").is_file(),
        "playwright-core is not installed ({} missing): run scripts/install-deps.sh",
        p.display()
    );
    p
}

fn chromium() -> PathBuf {
    let p = std::env::var_os("BOSUN_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.is_file(),
        "Chromium is not installed ({} missing): run scripts/install-deps.sh (apt-get install chromium chromium-driver)",
        p.display()
    );
    p
}

/// Where the browser test leaves its screenshots.
fn screens() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("target"))
        .join("serve-screens")
}

#[tokio::test]
async fn the_inbox_in_chromium_approves_a_prod_change_and_follows_the_session_to_its_end() {
    let (pw, chromium) = (playwright_core(), chromium());
    let ns = common::namespace("serve-ui").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let model = ScriptedServer::start(prod_script_slow(&ns, "inbox", false, 1500))
        .await
        .expect("model");
    let server = ServeBin::start(
        &model,
        &prod_kubeconfig(dir.path()),
        &[("BOSUN_SERVE_TOKEN", TOKEN)],
    )
    .await;
    let api = Api2::new(&server.url, Some(TOKEN));
    let (s, v) = api
        .post(
            "/v1/sessions",
            json!({"task": "set the level to 5 in prod <script>alert('task')</script>", "namespace": ns}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let w = api
        .wait_for(&id, "waiting", |v| v["status"] == "waiting_for_approval")
        .await;
    let fp = w["pending_approvals"][0]["fingerprint"]
        .as_str()
        .expect("fp")
        .to_string();

    let mut c = tokio::process::Command::new("node");
    c.arg(common::repo_root().join("tests/serve/inbox.cjs"))
        .args([server.url.as_str(), TOKEN, id.as_str(), fp.as_str()])
        .arg(screens())
        .env("PLAYWRIGHT_CORE", &pw)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = c.spawn().expect("node (apt-get install nodejs)");
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the browser run finished in time")
        .expect("node ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser run failed:\n{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON from the browser run");
    eprintln!("browser: {r:#}");

    assert_eq!(r["loginUrl"], "/login", "not signed in: the login form");
    assert_eq!(r["afterLogin"], "/");
    assert_eq!(r["cookie"]["httpOnly"], true, "{r}");
    assert_eq!(r["cookie"]["sameSite"], "Strict", "{r}");
    assert_eq!(r["env"], "prod");
    assert!(r["cardClass"]
        .as_str()
        .is_some_and(|c| c.contains("env-prod")));
    let diff = r["diff"].as_str().expect("diff");
    assert!(diff.contains("inbox"), "{diff}");
    assert_eq!(r["diffElements"], 0, "the diff is text, not markup");
    assert_eq!(r["sessionLinked"], 1);
    assert_eq!(
        r["formAction"],
        format!("/ui/sessions/{id}/approvals/{fp}").as_str(),
        "the form is bound to the fingerprint"
    );
    assert_eq!(r["afterApprove"], format!("/ui/sessions/{id}").as_str());
    assert!(
        r["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("completed (success)")),
        "{r}"
    );
    assert_eq!(
        r["liveUpdated"], true,
        "the page followed the events without a reload"
    );
    let events: Vec<&str> = r["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        events.iter().any(|e| e.starts_with("task_complete")),
        "{events:?}"
    );
    assert!(
        r["answer"]
            .as_str()
            .is_some_and(|a| a.contains("<img src=x onerror=alert(1)>")),
        "the hostile answer is shown as text: {r}"
    );
    assert_eq!(r["images"], 0);
    assert_eq!(r["imagesAfterReload"], 0);
    assert_eq!(r["dialogs"], json!([]), "no script of the model's ran");
    assert_eq!(r["pendingAfter"], 0);
    for shot in ["inbox.png", "session-finished.png"] {
        assert!(screens().join(shot).is_file(), "{shot}");
    }

    let done = api.get(&format!("/v1/sessions/{id}")).await.1;
    assert_eq!(done["outcome"]["status"], "success", "{done:#}");
    assert!(
        config_map(&ns, "inbox").await.is_some(),
        "applied after the approval in the browser"
    );
    assert_eq!(model.failures(), Vec::<String>::new());
}

/// One span as an OTLP receiver got it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    name: String,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    attrs: std::collections::BTreeMap<String, String>,
}

/// A minimal OTLP/HTTP trace receiver (protobuf), decoding with the official
/// `opentelemetry-proto` messages.
async fn otlp_receiver() -> (String, Arc<std::sync::Mutex<Vec<ReceivedSpan>>>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;
    let spans = Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut got = Vec::new();
                for rs in req.resource_spans {
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            let attrs = s
                                .attributes
                                .iter()
                                .map(|kv| {
                                    let v = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                                        Some(Any::StringValue(s)) => s,
                                        Some(Any::IntValue(i)) => i.to_string(),
                                        Some(Any::BoolValue(b)) => b.to_string(),
                                        Some(Any::DoubleValue(d)) => d.to_string(),
                                        other => format!("{other:?}"),
                                    };
                                    (kv.key.clone(), v)
                                })
                                .collect();
                            got.push(ReceivedSpan {
                                name: s.name,
                                span_id: s.span_id,
                                parent: s.parent_span_id,
                                attrs,
                            });
                        }
                    }
                }
                store.lock().expect("spans").extend(got);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (format!("http://{addr}"), spans)
}

#[tokio::test]
async fn traces_reach_an_otlp_receiver_with_genai_attributes_and_no_secret() {
    const SECRET: &str = "hunter2-otel-canary-7f3a";
    let ns = common::namespace("serve-otel").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (endpoint, spans) = otlp_receiver().await;
    let model = ScriptedServer::start(prod_script(&ns, "otel", false))
        .await
        .expect("model");
    let mut server = ServeBin::start(
        &model,
        &prod_kubeconfig(dir.path()),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "bosun-serve-test"),
        ],
    )
    .await;
    let api = Api2::new(&server.url, None);
    let (s, v) = api
        .post(
            "/v1/sessions",
            json!({"task": format!("create the ConfigMap {SECRET}"), "namespace": ns}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let w = api
        .wait_for(&id, "waiting", |v| v["status"] == "waiting_for_approval")
        .await;
    let fp = w["pending_approvals"][0]["fingerprint"]
        .as_str()
        .expect("fp")
        .to_string();
    let (s, _) = api
        .post(
            &format!("/v1/sessions/{id}/approvals/{fp}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    api.wait_for(&id, "completed", |v| v["status"] == "completed")
        .await;
    // SIGTERM: the server stops and flushes its spans
    let pid = server.child.id().expect("pid");
    // SAFETY: signalling the child this test started, by its pid
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("bosun serve stopped on SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status:?}");

    let spans = spans.lock().expect("spans").clone();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let find = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let session = find("invoke_agent infrastructure-engineer");
    assert_eq!(session.len(), 1, "{names:?}");
    let session = session[0];
    assert_eq!(session.attrs["gen_ai.conversation.id"], id);
    assert_eq!(session.attrs["bosun.task.status"], "success");
    let turns = find("bosun.turn");
    assert_eq!(turns.len(), 3, "{names:?}");
    assert!(turns.iter().all(|t| t.parent == session.span_id));
    let chats: Vec<_> = spans
        .iter()
        .filter(|s| s.attrs.get("gen_ai.operation.name").map(String::as_str) == Some("chat"))
        .collect();
    assert_eq!(chats.len(), 3, "{names:?}");
    for c in &chats {
        assert!(c.name.starts_with("chat "), "{}", c.name);
        assert!(!c.attrs["gen_ai.request.model"].is_empty());
        let input: u64 = c.attrs["gen_ai.usage.input_tokens"]
            .parse()
            .expect("tokens");
        assert!(input > 0, "{c:?}");
        assert!(c.attrs.contains_key("gen_ai.usage.output_tokens"));
        assert!(turns.iter().any(|t| t.span_id == c.parent));
    }
    let tools = find("execute_tool kubectl");
    assert_eq!(tools.len(), 3, "dry-run, apply, get: {names:?}");
    assert!(tools
        .iter()
        .all(|t| turns.iter().any(|u| u.span_id == t.parent)));
    let guards = find("bosun.guard");
    let apply = guards
        .iter()
        .find(|g| g.attrs.get("bosun.guard.operation").map(String::as_str) == Some("apply"))
        .expect("the apply's guard span");
    assert_eq!(apply.attrs["bosun.guard.verdict"], "allow");
    assert_eq!(apply.attrs["bosun.guard.environment"], "prod");
    assert_eq!(apply.attrs["bosun.guard.fingerprint"], fp);
    assert_eq!(apply.attrs["bosun.guard.approved_by"], "user");
    assert!(tools.iter().any(|t| t.span_id == apply.parent));
    // nothing the model wrote or the tools returned rides along: not the task, not the manifest
    for s in &spans {
        for (k, v) in &s.attrs {
            assert!(!v.contains(SECRET), "{} {k}={v}", s.name);
        }
    }
    assert_eq!(model.failures(), Vec::<String>::new());
}
