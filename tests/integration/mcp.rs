//! MCP end to end, with a real MCP implementation we did not write: the official Python SDK
//! (PyPI `mcp`, installed by scripts/install-deps.sh). Its client drives `bosun mcp` over stdio
//! and streamable HTTP; its server (tests/mcp/server.py) is an MCP server the agent lists under
//! `mcp_servers:`. The model is the scripted one; kubectl runs against the real sandbox.

use crate::common;

use bosun::scripted::{Script, ScriptedServer};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const RUN_TOOL: &str = "run_infrastructure_engineer";

/// The Python with the MCP SDK (a venv made by scripts/install-deps.sh).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("BOSUN_PYTHON_MCP") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("BOSUN_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bosun")))
        .expect("HOME is set");
    let p = cache.join("python-mcp/current/bin/python");
    assert!(
        p.is_file(),
        "the Python MCP SDK is not installed ({} missing): run scripts/install-deps.sh",
        p.display()
    );
    p
}

fn scripts() -> PathBuf {
    common::repo_root().join("tests/mcp")
}

/// A clean environment for the Python client and the bosun it starts.
fn client_cmd(home: &Path, model: &ScriptedServer) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(python());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("RUST_LOG", "warn,rmcp=error")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("OPENAI_BASE_URL", model.base_url())
        .env("KUBECONFIG", &common::sandbox().kubeconfig)
        .current_dir(scripts())
        .kill_on_drop(true);
    c
}

/// Run a client script; its stdout is one JSON object.
async fn run_client(mut cmd: tokio::process::Command) -> Value {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("starting the Python MCP client");
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the Python MCP client finished in time")
        .expect("the Python MCP client ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}):\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `bosun mcp --listen 127.0.0.1:0 …`, stopped when dropped.
struct HttpBosun {
    child: tokio::process::Child,
    url: String,
}

impl HttpBosun {
    async fn start(home: &Path, model: &ScriptedServer, agent: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(home, model, agent, extra, &[]).await
    }

    /// [`HttpBosun::start`] with extra environment variables.
    async fn start_with_env(
        home: &Path,
        model: &ScriptedServer,
        agent: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut c = tokio::process::Command::new(common::bosun_bin());
        c.env_clear()
            .envs(env.iter().copied())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("RUST_LOG", "warn,rmcp=error")
            .env("OPENAI_BASE_URL", model.base_url())
            .env("KUBECONFIG", &common::sandbox().kubeconfig)
            .arg("--agent")
            .arg(agent)
            .args(["mcp", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = c.spawn().expect("starting bosun mcp");
        let stdout = child.stdout.take().expect("stdout");
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("bosun mcp printed its URL in time")
            .expect("reading stdout")
            .expect("a URL line");
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Self { child, url }
    }
}

impl Drop for HttpBosun {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Stdio,
    Http,
}

/// Call `calls` on `bosun --agent AGENT mcp EXTRA` over `transport` with the Python client.
async fn over_mcp(
    transport: Transport,
    model: &ScriptedServer,
    agent: &Path,
    extra: &[&str],
    calls: Value,
) -> Value {
    let home = tempfile::tempdir().expect("tempdir");
    over_mcp_in(home.path(), transport, model, agent, extra, calls).await
}

/// [`over_mcp`] with `home` as HOME (where bosun writes its audit logs).
async fn over_mcp_in(
    home: &Path,
    transport: Transport,
    model: &ScriptedServer,
    agent: &Path,
    extra: &[&str],
    calls: Value,
) -> Value {
    match transport {
        Transport::Stdio => {
            let mut c = client_cmd(home, model);
            c.arg("client_stdio.py")
                .arg(calls.to_string())
                .arg(common::bosun_bin())
                .arg("--agent")
                .arg(agent)
                .arg("mcp")
                .args(extra);
            run_client(c).await
        }
        Transport::Http => {
            let server = HttpBosun::start(home, model, agent, extra).await;
            let mut c = client_cmd(home, model);
            c.arg("client_http.py")
                .arg(calls.to_string())
                .arg(&server.url);
            let out = run_client(c).await;
            drop(server);
            out
        }
    }
}

fn tool<'a>(out: &'a Value, name: &str) -> &'a Value {
    out["tools"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("tool {name} not listed: {:#}", out["tools"]))
}

const RUN_SCRIPT: &str = r#"
turns:
  - expect:
      tools_include: [kubectl]
      last_user_contains: ["namespaces"]
    reply:
      tool_calls:
        - {name: kubectl, arguments: {operation: get, kind: namespaces}}
  - expect:
      last_tool_result_contains: ["kube-system"]
    reply:
      tool_calls:
        - {name: transition, arguments: {to: completion, justification: "counted them", report: "Success: counted the namespaces; nothing changed."}}
  - reply:
      content: "FINAL: the cluster has its namespaces, all Active."
"#;

/// The agent as a tool, and the guarded tools themselves, over `transport`.
async fn the_agent_and_its_guarded_tools(transport: Transport) {
    let model = ScriptedServer::start(Script::from_yaml(RUN_SCRIPT).expect("script"))
        .await
        .expect("scripted model");
    let calls = json!([
        {"tool": RUN_TOOL, "args": {"task": "How many namespaces are there?"}},
        {"tool": "kubectl", "args": {"operation": "get", "kind": "namespaces"}},
        {"tool": "kubectl", "args": {"operation": "get"}},
        {"tool": "kubectl", "args": {"operation": "apply", "kind": "namespaces"}},
        {"tool": "transition", "args": {"to": "completion", "justification": "x"}},
    ]);
    let out = over_mcp(
        transport,
        &model,
        &common::repo_root(),
        &["--expose-tools"],
        calls,
    )
    .await;
    assert_eq!(out["server"]["name"], "bosun", "{out:#}");

    // listing: the agent as one tool; kubectl with honest annotations; no planner tool
    let run = tool(&out, RUN_TOOL);
    assert_eq!(run["inputSchema"]["required"], json!(["task"]));
    assert_eq!(run["inputSchema"]["properties"]["task"]["type"], "string");
    // kubectl can delete and drain: destructive; the blocks tool only reads
    let kubectl = tool(&out, "kubectl");
    assert_eq!(kubectl["annotations"]["readOnlyHint"], false, "{kubectl:#}");
    assert_eq!(kubectl["annotations"]["destructiveHint"], true);
    let ops = kubectl["inputSchema"]["properties"]["operation"]["enum"].clone();
    assert!(
        ops.as_array()
            .is_some_and(|o| o.contains(&json!("get")) && o.contains(&json!("delete"))),
        "{ops}"
    );
    let blocks = tool(&out, "blocks");
    assert_eq!(blocks["annotations"]["readOnlyHint"], true, "{blocks:#}");
    assert!(out["tools"]
        .as_array()
        .is_some_and(|ts| ts.iter().all(|t| t["name"] != "transition")));

    let calls = out["calls"].as_array().expect("calls");
    // run_<id>: the session ran to its end; the answer, state and report came back
    let r = &calls[0];
    assert_eq!(r["is_error"], false, "{r:#}");
    let text = r["text"].as_str().expect("text");
    assert!(
        text.starts_with("FINAL: the cluster has its namespaces"),
        "{text}"
    );
    assert!(text.contains("state: completion"), "{text}");
    assert!(
        text.contains("report: Success: counted the namespaces"),
        "{text}"
    );
    assert_eq!(r["structured"]["status"], "success");
    assert_eq!(r["structured"]["state"], "completion");
    assert_eq!(
        r["structured"]["report"],
        "Success: counted the namespaces; nothing changed."
    );
    assert_eq!(r["structured"]["tool_calls"], 2);
    assert!(r["structured"]["session"].is_string());
    // each tool call was reported as progress while the task ran
    let progress: Vec<&str> = r["progress"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        progress.len() == 2
            && progress[0].starts_with("kubectl: ")
            && progress[1].starts_with("transition: "),
        "{progress:?}"
    );
    assert_eq!(model.failures(), Vec::<String>::new());
    // the model really saw the cluster's answer
    assert!(common::tool_results(&model.requests()[1])[0].contains("kube-system"));

    // a direct read passes the guard and runs against the cluster
    let get = &calls[1];
    assert_eq!(get["is_error"], false, "{get:#}");
    assert!(
        get["text"]
            .as_str()
            .is_some_and(|t| t.contains("kube-system")),
        "{get:#}"
    );
    // invalid arguments: refused by the guard, with its reason
    let bad = &calls[2];
    assert_eq!(bad["is_error"], true);
    assert!(
        bad["text"]
            .as_str()
            .is_some_and(|t| t
                .starts_with("refused by bosun's guard: invalid arguments: `kind` is required")),
        "{bad:#}"
    );
    // an operation this agent is not offered: refused by the guard
    let apply = &calls[3];
    assert_eq!(apply["is_error"], true);
    assert!(
        apply["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("refused by bosun's guard:")),
        "{apply:#}"
    );
    // the planner is not a tool callers get
    let tr = &calls[4];
    assert_eq!(tr["is_error"], true);
    assert!(tr["text"]
        .as_str()
        .is_some_and(|t| t.contains("unknown tool `transition`")));
}

#[tokio::test]
async fn stdio_the_agent_as_a_tool_and_the_guarded_tools() {
    the_agent_and_its_guarded_tools(Transport::Stdio).await;
}

#[tokio::test]
async fn http_the_agent_as_a_tool_and_the_guarded_tools() {
    the_agent_and_its_guarded_tools(Transport::Http).await;
}

#[tokio::test]
async fn without_expose_tools_only_the_agent_is_offered_and_a_failed_task_is_an_error() {
    let model = ScriptedServer::start(
        Script::from_yaml(
            "turns:\n  - raw: {\"error\": \"the model is overloaded\"}\n    status: 400\n",
        )
        .expect("script"),
    )
    .await
    .expect("scripted model");
    let calls = json!([
        {"tool": RUN_TOOL, "args": {"task": "anything"}},
        {"tool": "kubectl", "args": {"operation": "get", "kind": "namespaces"}},
    ]);
    let out = over_mcp(Transport::Stdio, &model, &common::repo_root(), &[], calls).await;
    let names: Vec<&str> = out["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, vec![RUN_TOOL]);
    let failed = &out["calls"][0];
    assert_eq!(failed["is_error"], true, "{failed:#}");
    assert!(
        failed["text"]
            .as_str()
            .is_some_and(|t| t.contains("overloaded")),
        "{failed:#}"
    );
    assert_eq!(failed["structured"]["status"], "failed");
    let hidden = &out["calls"][1];
    assert_eq!(hidden["is_error"], true);
    assert!(hidden["text"]
        .as_str()
        .is_some_and(|t| t.contains("unknown tool `kubectl`")));
}

// ------------------------------------------------------------------ bosun as an MCP client

/// A copy of the shipped agent that lists the Python test server under `mcp_servers:`.
fn agent_with_docs_server(server: &str) -> tempfile::TempDir {
    let root = common::repo_root();
    let d = tempfile::tempdir().expect("tempdir");
    let copy_dir = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir").flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
            }
        }
    };
    copy_dir(&root.join("tools"), &d.path().join("tools"));
    copy_dir(&root.join("prompts"), &d.path().join("prompts"));
    for e in std::fs::read_dir(root.join("skills"))
        .expect("skills")
        .flatten()
    {
        copy_dir(&e.path(), &d.path().join("skills").join(e.file_name()));
    }
    std::fs::copy(root.join("policy.yaml"), d.path().join("policy.yaml")).expect("policy");
    let agent = std::fs::read_to_string(root.join("agent.md")).expect("agent.md");
    let entry = format!("mcp_servers:\n  - name: docs\n{server}");
    let agent = agent.replacen("max_turns:", &format!("{entry}max_turns:"), 1);
    assert!(
        agent.contains("mcp_servers:"),
        "agent.md changed; update this test"
    );
    std::fs::write(d.path().join("agent.md"), agent).expect("write agent");
    d
}

/// The `mcp_servers:` entry body starting the Python test server as a child process.
fn stdio_server_entry(calls_log: &Path) -> String {
    format!(
        "    command: [\"{}\", \"{}\"]\n    env: {{CALLS_LOG: \"{}\"}}\n",
        python().display(),
        scripts().join("server.py").display(),
        calls_log.display()
    )
}

const CLIENT_SCRIPT: &str = r#"
turns:
  - expect:
      tools_include: [docs__lookup, kubectl]
      tools_exclude: [docs__touch, docs__write_note, docs__drop_notes]
      system_contains: ["docs__lookup"]
    reply:
      tool_calls:
        - {name: docs__lookup, arguments: {topic: restarts}}
        - {name: docs__touch, arguments: {path: /etc/motd}}
        - {name: transition, arguments: {to: validation, justification: "dry-run the note first"}}
        - {name: docs__write_note, arguments: {title: runbook, body: "restart with rollout restart", dry_run: true}}
        - {name: transition, arguments: {to: deployment, justification: "the dry-run passed"}}
        - {name: docs__write_note, arguments: {title: runbook, body: "restart with rollout restart", dry_run: null}}
        - {name: docs__touch, arguments: {path: /etc/motd}}
  - expect:
      last_tool_result_contains: ["offers no dry-run"]
    reply:
      tool_calls:
        - {name: transition, arguments: {to: verification, justification: "the note is written"}}
        - {name: transition, arguments: {to: completion, justification: "nothing to verify", report: "runbook note written"}}
  - expect:
      last_tool_result_contains: ["completion"]
    reply:
      content: "FINAL: looked it up and wrote the runbook note; touching was refused."
"#;

/// The agent uses a remote MCP server's tools: the read-only one runs, the unannotated one is
/// refused by the guard (no dry-run is possible), the one with a `dry_run` argument is applied
/// after its dry-run.
async fn remote_tools_behind_the_guard(server_entry: String, calls_log: &Path) {
    let work = tempfile::tempdir().expect("tempdir");
    let agent = agent_with_docs_server(&server_entry);

    // validate names the server without contacting it
    let mut v = common::bosun_cmd(work.path());
    v.arg("--agent").arg(agent.path()).arg("validate");
    let out = v.output().expect("validate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mcp server `docs`"), "{text}");
    assert!(text.contains("not contacted by validate"), "{text}");
    // `bosun tools` contacts it and lists its tools as the model sees them
    let mut t = common::bosun_cmd(work.path());
    t.arg("--agent").arg(agent.path()).arg("tools");
    let out = t.output().expect("tools");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("docs__lookup") && text.contains("kubectl"),
        "{text}"
    );
    assert!(!calls_log.exists(), "listing tools calls none");

    let model = ScriptedServer::start(Script::from_yaml(CLIENT_SCRIPT).expect("script"))
        .await
        .expect("scripted model");
    let mut cmd = common::bosun_cmd(work.path());
    cmd.env("OPENAI_BASE_URL", model.base_url())
        .env("KUBECONFIG", &common::sandbox().kubeconfig)
        .arg("--agent")
        .arg(agent.path())
        .args([
            "run",
            "--output",
            "json",
            "Look up how to restart, and write a runbook note",
        ]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{:?} {stderr}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(model.failures(), Vec::<String>::new(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(v["status"], "success", "{v:#}");

    let results = common::tool_results(&model.requests()[1]);
    assert!(
        results[0].starts_with("docs for restarts"),
        "{}",
        results[0]
    );
    assert!(
        results[1].starts_with("refused by bosun's guard: `docs__touch.call` is mutating, which is not allowed in the intake state"),
        "{}",
        results[1]
    );
    assert!(
        results[3].starts_with("would write note 'runbook'"),
        "{}",
        results[3]
    );
    assert_eq!(results[5], "wrote note 'runbook'");
    assert!(
        results[6]
            .starts_with("refused by bosun's guard: no successful dry-run of this exact change")
            && results[6].contains("offers no dry-run"),
        "{}",
        results[6]
    );
    // what reached the remote server: never the refused tool
    let log = std::fs::read_to_string(calls_log).expect("calls log");
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        vec![
            "lookup restarts",
            "write_note dry-run runbook",
            "write_note runbook"
        ]
    );
}

#[tokio::test]
async fn remote_mcp_tools_over_stdio_run_behind_the_guard() {
    let work = tempfile::tempdir().expect("tempdir");
    let calls_log = work.path().join("calls.log");
    remote_tools_behind_the_guard(stdio_server_entry(&calls_log), &calls_log).await;
}

#[tokio::test]
async fn remote_mcp_tools_over_streamable_http_run_behind_the_guard() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let work = tempfile::tempdir().expect("tempdir");
    let calls_log = work.path().join("calls.log");
    // killed when dropped, also when an assertion fails
    let _server = tokio::process::Command::new(python())
        .arg(scripts().join("server.py"))
        .args(["http", &port.to_string()])
        .env("CALLS_LOG", &calls_log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the Python MCP server");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the Python MCP server did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entry = format!("    url: \"http://127.0.0.1:{port}/mcp\"\n");
    remote_tools_behind_the_guard(entry, &calls_log).await;
}

/// The whole chain: an MCP client calls bosun's exposed tools, which are a remote MCP server's
/// tools; bosun's guard sits in the middle, with one guard (and dry-run record) per connection.
/// Destructive changes need an approval: with no approver (the default) they are refused; with
/// `--yes` the flags' approver approves them (non-kube changes included).
async fn chained(transport: Transport, yes: bool) {
    let work = tempfile::tempdir().expect("tempdir");
    let calls_log = work.path().join("calls.log");
    let agent = agent_with_docs_server(&stdio_server_entry(&calls_log));
    let model = ScriptedServer::start(Script::default())
        .await
        .expect("model");
    let note = json!({"title": "t", "body": "b"});
    let calls = json!([
        {"tool": "docs__touch", "args": {"path": "/etc/motd"}},
        {"tool": "docs__write_note", "args": note},
        {"tool": "docs__write_note", "args": {"title": "t", "body": "b", "dry_run": true}},
        {"tool": "docs__write_note", "args": note},
        {"tool": "docs__write_note", "args": note},
        {"tool": "docs__lookup", "args": {"topic": "x", "extra": 1}},
        {"tool": "docs__lookup", "args": {"topic": "x"}},
        {"tool": "docs__drop_notes", "args": {"dry_run": true}},
        {"tool": "docs__drop_notes", "args": {}},
    ]);
    let mut flags = vec!["--expose-tools"];
    if yes {
        flags.push("--yes");
    }
    let out = over_mcp_in(work.path(), transport, &model, agent.path(), &flags, calls).await;
    let lookup = tool(&out, "docs__lookup");
    assert_eq!(lookup["annotations"]["readOnlyHint"], true);
    let touch = tool(&out, "docs__touch");
    assert_eq!(touch["annotations"]["readOnlyHint"], false);
    let c = out["calls"].as_array().expect("calls");
    let refused = |i: usize, why: &str| {
        assert_eq!(c[i]["is_error"], true, "{:#}", c[i]);
        let t = c[i]["text"].as_str().unwrap_or_default();
        assert!(
            t.starts_with("refused by bosun's guard:") && t.contains(why),
            "{t}"
        );
    };
    refused(0, "offers no dry-run");
    refused(1, "no successful dry-run of this exact change");
    assert_eq!(c[2]["text"], "would write note 't' (1 chars)");
    assert_eq!(c[3]["text"], "wrote note 't'");
    // the apply used up the dry-run
    refused(4, "no successful dry-run");
    refused(5, "has no argument `extra`");
    assert_eq!(c[6]["is_error"], false);
    assert_eq!(
        tool(&out, "docs__drop_notes")["annotations"]["destructiveHint"],
        true
    );
    assert_eq!(c[7]["text"], "would delete 1 note");
    let mut expected = vec![
        "write_note dry-run t",
        "write_note t",
        "lookup x",
        "drop_notes dry-run",
    ];
    if yes {
        assert_eq!(c[8]["text"], "deleted 1 note", "{:#}", c[8]);
        expected.push("drop_notes");
    } else {
        refused(8, "needs human approval (destructive operation");
        refused(8, "no approver is configured");
    }
    let log = std::fs::read_to_string(&calls_log).expect("calls log");
    assert_eq!(log.lines().collect::<Vec<_>>(), expected);
    assert!(model.requests().is_empty(), "no model was asked");
    // every direct call was decided and recorded in the connection's audit log
    let dir = work.path().join(".local/state/bosun/audit");
    let logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("audit dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mcp-"))
        })
        .collect();
    assert_eq!(logs.len(), 1, "one audit log per connection: {logs:?}");
    let recs: Vec<Value> = std::fs::read_to_string(&logs[0])
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    let verdicts: Vec<&str> = recs
        .iter()
        .filter(|r| r["record"]["event"] == "decided")
        .filter_map(|r| r["record"]["decision"]["verdict"].as_str())
        .collect();
    let last = if yes { "allow" } else { "refuse" };
    assert_eq!(
        verdicts,
        vec!["refuse", "refuse", "allow", "allow", "refuse", "refuse", "allow", "allow", last]
    );
    assert!(recs
        .iter()
        .filter(|r| r["record"]["event"] == "decided")
        .all(|r| r["record"]["state"] == "deployment"));
}

#[tokio::test]
async fn stdio_chain_mcp_client_to_bosun_to_mcp_server() {
    chained(Transport::Stdio, false).await;
}

#[tokio::test]
async fn http_chain_mcp_client_to_bosun_to_mcp_server_with_yes() {
    chained(Transport::Http, true).await;
}

/// `bosun mcp --listen` with a token: a request without it is refused (401) before it reaches
/// the MCP service; with it, a session starts. A non-loopback address without a token is refused.
#[tokio::test]
async fn http_with_a_token_refuses_requests_without_it() {
    let model = ScriptedServer::start(Script::default())
        .await
        .expect("scripted model");
    let home = tempfile::tempdir().expect("tempdir");
    let token = "t0ken-for-the-mcp-test-0123456789";
    let server = HttpBosun::start_with_env(
        home.path(),
        &model,
        &common::repo_root(),
        &[],
        &[("BOSUN_MCP_TOKEN", token)],
    )
    .await;
    let url = server.url.clone();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"}}});
    let http = reqwest::Client::new();
    let post = |auth: Option<String>| {
        let mut r = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let r = post(None).await.expect("request");
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().await.unwrap_or_default().contains("bearer token"));
    let r = post(Some("Bearer wrong-token-0123456789".into()))
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
    let r = post(Some(format!("Bearer {token}")))
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    drop(server);

    // without a token, a non-loopback address is refused with the fix
    let out = common::bosun_cmd(home.path())
        .env("OPENAI_BASE_URL", model.base_url())
        .arg("--agent")
        .arg(common::repo_root())
        .args(["mcp", "--listen", "0.0.0.0:0"])
        .output()
        .expect("bosun mcp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("BOSUN_MCP_TOKEN"), "{stderr}");
}

/// `bosun mcp --mode suggest`: the agent's task proposes instead of applying; the caller gets
/// the proposal's directory (one per session under --proposal-dir) in structuredContent.
#[tokio::test]
async fn suggest_mode_over_mcp_returns_the_proposal_and_changes_nothing() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let ns = common::namespace("mcp-suggest").await;
    let manifest = serde_json::to_string(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: via-mcp\n  namespace: {ns}\ndata:\n  k: v\n"
    ))
    .expect("json");
    let script = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run it"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {manifest}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {manifest}}}}}
  - reply: {{content: "Proposed."}}
"#
    );
    let model = ScriptedServer::start(Script::from_yaml(&script).expect("script"))
        .await
        .expect("scripted model");
    let proposals = tempfile::tempdir().expect("tempdir");
    let calls = json!([{"tool": RUN_TOOL, "args": {"task": "create the ConfigMap via-mcp"}}]);
    let out = over_mcp(
        Transport::Stdio,
        &model,
        &common::repo_root(),
        &[
            "--mode",
            "suggest",
            "--proposal-dir",
            proposals.path().to_str().expect("utf-8"),
        ],
        calls,
    )
    .await;
    let r = &out["calls"][0];
    assert_eq!(r["is_error"], false, "{r:#}");
    assert_eq!(r["structured"]["status"], "success", "{r:#}");
    let dir = r["structured"]["proposal"].as_str().expect("proposal dir");
    let session = r["structured"]["session"].as_str().expect("session");
    assert_eq!(
        Path::new(dir),
        proposals.path().join(session),
        "one proposal directory per session"
    );
    let p = bosun::proposal::Proposal::load(Path::new(dir)).expect("proposal");
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].operation, "apply");
    let cms: kube::api::Api<ConfigMap> = kube::api::Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("via-mcp").await.expect("get").is_none());

    // direct tool calls have no session to record a proposal in: refused as a usage error
    let home = tempfile::tempdir().expect("tempdir");
    let out = common::bosun_cmd(home.path())
        .arg("--agent")
        .arg(common::repo_root())
        .args(["mcp", "--mode", "suggest", "--expose-tools"])
        .stdin(Stdio::null())
        .output()
        .expect("bosun mcp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--expose-tools cannot be combined"),
        "{stderr}"
    );
}
