//! `bosun run` end to end: the real binary, the scripted model server, the real API server.

use crate::common;

use bosun::scripted::{Script, ScriptedServer};

fn namespace_task_script(ns: &str) -> Script {
    Script::from_yaml(&format!(
        r#"
turns:
  - expect:
      tools_include: [kubectl, activate_skill]
      system_contains: ["Infrastructure Engineer", "activate_skill"]
      last_user_contains: ["unhealthy"]
    reply:
      content: "Checking the pods."
      tool_calls:
        - name: kubectl
          arguments: {{operation: get, kind: pods, namespace: {ns}}}
  - expect:
      last_tool_result_contains: ["web-1", "worker-1", "CrashLoopBackOff"]
    reply:
      content: "FINAL: worker-1 in {ns} is crash looping; web-1 is healthy."
"#
    ))
    .expect("script")
}

#[tokio::test]
async fn run_answers_from_the_real_cluster() {
    let ns = common::namespace("run").await;
    common::pod_with_status(&ns, "web-1", true, None, 0).await;
    common::pod_with_status(&ns, "worker-1", false, Some("CrashLoopBackOff"), 4).await;
    let server = ScriptedServer::start(namespace_task_script(&ns))
        .await
        .expect("server");

    let out = common::run_bosun(&server, &[], "Which pods look unhealthy?").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(server.failures(), Vec::<String>::new());
    assert_eq!(
        stdout.trim(),
        format!("FINAL: worker-1 in {ns} is crash looping; web-1 is healthy.")
    );

    // what the model received as the tool result: the real pods, with counts and status
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let results = common::tool_results(&reqs[1]);
    assert_eq!(results.len(), 1, "{results:?}");
    let r = &results[0];
    assert!(r.starts_with(&format!("2 pods in namespace {ns}")), "{r}");
    assert!(r.contains("1 CrashLoopBackOff, 1 Running"), "{r}");
    assert!(r.contains("ready 0/1, restarts 4"), "{r}");
    // unhealthy first
    let worker = r.find("worker-1").expect("worker listed");
    let web = r.find("web-1").expect("web listed");
    assert!(worker < web, "unhealthy pods must come first: {r}");
    // progress went to stderr, not stdout
    assert!(stderr.contains("→ kubectl"), "{stderr}");
}

#[tokio::test]
async fn run_streams_and_gives_the_same_answer() {
    let ns = common::namespace("stream").await;
    common::pod_with_status(&ns, "web-1", true, None, 0).await;
    common::pod_with_status(&ns, "worker-1", false, Some("CrashLoopBackOff"), 4).await;
    let server = ScriptedServer::start(namespace_task_script(&ns))
        .await
        .expect("server");
    let out = common::run_bosun(&server, &["--stream"], "Which pods look unhealthy?").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.failures(), Vec::<String>::new());
    assert!(stdout.contains("worker-1 in"), "{stdout}");
    assert_eq!(server.requests()[0]["stream"], true);
}

#[tokio::test]
async fn bad_calls_go_back_to_the_model_as_errors_not_crashes() {
    let script = Script::from_yaml(
        r#"
turns:
  - reply:
      tool_calls:
        - {id: c1, name: nosuchtool, arguments: {operation: status}}
        - {id: c2, name: kubectl, arguments: {operation: get}}
        - {id: c3, name: kubectl, arguments: "{not json"}
        - {id: c4, name: kubectl, arguments: {operation: get, kind: nosuchkind}}
        - {id: c5, name: kubectl, arguments: {operation: frobnicate, kind: pods}}
  - expect:
      last_tool_result_contains: ["unknown variant `frobnicate`"]
    reply:
      content: "done"
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let out = common::run_bosun(&server, &[], "do things").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.failures(), Vec::<String>::new());
    let results = common::tool_results(&server.requests()[1]);
    assert_eq!(results.len(), 5, "{results:?}");
    assert!(
        results[0].contains("unknown tool `nosuchtool`"),
        "{}",
        results[0]
    );
    assert!(
        results[0].starts_with("refused by bosun's guard"),
        "{}",
        results[0]
    );
    assert!(results[1].contains("`kind` is required"), "{}", results[1]);
    assert!(results[2].contains("not valid JSON"), "{}", results[2]);
    assert!(
        results[3].contains("no resource type `nosuchkind`"),
        "{}",
        results[3]
    );
    assert!(
        results[4].contains("unknown variant `frobnicate`"),
        "{}",
        results[4]
    );
}

#[tokio::test]
async fn activate_skill_loads_the_skill_body_on_demand() {
    let script = Script::from_yaml(
        r##"
turns:
  - reply:
      tool_calls:
        - {name: activate_skill, arguments: {name: kubernetes}}
  - expect:
      last_tool_result_contains: ["# Skill: kubernetes"]
    reply:
      content: "loaded"
"##,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let out = common::run_bosun(&server, &[], "load the kubernetes skill").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.failures(), Vec::<String>::new());
    // progressive disclosure: the body was not in the first request's system prompt
    let first_system = server.requests()[0]["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let body = std::fs::read_to_string(common::repo_root().join("skills/kubernetes/SKILL.md"))
        .expect("skill");
    let body_line = body
        .lines()
        .skip_while(|l| *l != "---")
        .skip(1)
        .skip_while(|l| *l != "---")
        .skip(1)
        .find(|l| l.len() > 40)
        .expect("a long body line");
    assert!(
        !first_system.contains(body_line),
        "skill body leaked into the system prompt"
    );
    assert!(common::tool_results(&server.requests()[1])[0].contains(body_line));
}

#[tokio::test]
async fn missing_endpoint_is_a_clear_usage_error() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = common::bosun_cmd(home.path())
        .current_dir(home.path())
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "hello"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OPENAI_BASE_URL") && err.contains("bosun.toml"),
        "{err}"
    );
}

#[tokio::test]
async fn config_file_supplies_the_endpoint_and_model() {
    let script = Script::from_yaml("turns:\n  - reply: {content: from-config}\n").expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("bosun.toml"),
        format!(
            "[model]\nbase_url = \"{}\"\nmodel = \"cfg-model\"\n",
            server.base_url()
        ),
    )
    .expect("write config");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.current_dir(home.path())
        .env("KUBECONFIG", &common::sandbox().kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "hi"]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-config");
    assert_eq!(server.requests()[0]["model"], "cfg-model");
}

#[tokio::test]
async fn max_turns_stops_a_looping_model() {
    let turn = "  - reply:\n      tool_calls:\n        - {name: kubectl, arguments: {operation: api_resources}}\n";
    let script = Script::from_yaml(&format!("turns:\n{}", turn.repeat(3))).expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let out = common::run_bosun(&server, &["--max-turns", "3"], "loop").await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("all 3 turns"), "{err}");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_repeated_call_is_nudged_then_fails_the_task() {
    let turn = "  - reply:\n      tool_calls:\n        - {name: kubectl, arguments: {operation: get, kind: namespaces}}\n";
    let script = Script::from_yaml(&format!(
        "turns:\n{}{}  - expect:\n      last_tool_result_contains: [\"not run: you already called `kubectl`\"]\n    reply:\n      tool_calls:\n        - {{name: kubectl, arguments: {{kind: namespaces, operation: get}}}}\n",
        turn, turn.repeat(2)
    ))
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let out = common::run_bosun(&server, &[], "loop").await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stuck in a loop") && err.contains("4 times"),
        "{err}"
    );
    assert_eq!(server.failures(), Vec::<String>::new());
    assert_eq!(
        server.requests().len(),
        4,
        "the 4th repeat ends the task without another request"
    );
}

// ---- model faults end to end: classified, told to the model once, then exit 1 — never an
// empty success

/// `bosun run` in `cwd` (for a bosun.toml) against `server`; exit code, stdout, stderr.
async fn run_in(
    cwd: &std::path::Path,
    server: &ScriptedServer,
    extra: &[&str],
) -> (Option<i32>, String, String) {
    let st = common::sandbox();
    let mut cmd = common::bosun_cmd(cwd);
    cmd.current_dir(cwd)
        .env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &st.kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .arg("run")
        .args(extra)
        .arg("list the pods");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("running bosun");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn fault_run(turn: &str, extra: &[&str]) -> (Option<i32>, String, String, ScriptedServer) {
    let script = Script::from_yaml(&format!("turns:\n{turn}{turn}")).expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = run_in(home.path(), &server, extra).await;
    (code, out, err, server)
}

#[tokio::test]
async fn a_stream_cut_mid_tool_call_is_fed_back_once_then_fails_the_task() {
    let turn = "  - reply: {tool_calls: [{name: kubectl, arguments: {operation: get, kind: pods}}]}\n    cut_off: true\n";
    let (code, out, err, server) = fault_run(turn, &["--stream"]).await;
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert_eq!(out.trim(), "", "no answer on a failed task");
    assert!(
        err.contains("task failed") && err.contains("stream ended before"),
        "{err}"
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "one retry turn, then the task fails");
    let second = reqs[1].to_string();
    assert!(
        second.contains("your last response could not be used"),
        "{second}"
    );
    assert!(!reqs[0].to_string().contains("could not be used"));
}

#[tokio::test]
async fn invalid_shapes_end_in_exit_1_not_an_empty_answer() {
    for turn in [
        // a tool call without `function`
        "  - raw: {\"choices\": [{\"message\": {\"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\"}]}, \"finish_reason\": \"tool_calls\"}]}\n",
        // numeric content
        "  - raw: {\"choices\": [{\"message\": {\"content\": 42}, \"finish_reason\": \"stop\"}]}\n",
        // nothing at all
        "  - raw: {\"choices\": [{\"message\": {\"content\": null}, \"finish_reason\": \"stop\"}]}\n",
    ] {
        let (code, out, err, server) = fault_run(turn, &[]).await;
        assert_eq!(code, Some(1), "{turn}\nstdout: {out}\nstderr: {err}");
        assert_eq!(out.trim(), "", "{turn}");
        assert!(err.contains("unusable response"), "{turn}: {err}");
        assert_eq!(server.requests().len(), 2, "{turn}");
    }
}

#[tokio::test]
async fn one_unusable_response_then_a_good_one_succeeds() {
    let script = Script::from_yaml(
        "turns:\n  - raw: {\"choices\": [{\"message\": {\"content\": {\"x\": 1}}}]}\n  - expect: {last_user_contains: [\"could not be used\"]}\n    reply: {content: \"all good\"}\n",
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = run_in(home.path(), &server, &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "all good");
    assert_eq!(server.failures(), Vec::<String>::new());
}

#[tokio::test]
async fn endpoint_errors_exit_1_after_retries_within_the_cap() {
    // a plain-text 429 asking for an hour: not waited for
    let turn =
        "  - text: \"Too Many Requests\"\n    status: 429\n    headers: {Retry-After: \"3600\"}\n";
    let t = std::time::Instant::now();
    let (code, out, err, server) = fault_run(turn, &[]).await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("HTTP 429") && err.contains("at most 60 s"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    // a plain-text 429 asking for a second, then an answer: retried, success
    let script = Script::from_yaml(
        "turns:\n  - text: \"Too Many Requests\"\n    status: 429\n    headers: {Retry-After: \"1\"}\n  - reply: {content: \"after the wait\"}\n",
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = run_in(home.path(), &server, &[]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "after the wait");
    // 503 on every try: given up after 4
    let turn = "  - {raw: {\"error\": \"overloaded\"}, status: 503}\n";
    let (code, _, err, server) = fault_run(&turn.repeat(2), &[]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("HTTP 503") && err.contains("gave up after 4 tries"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn a_hang_past_the_timeout_exits_1() {
    let script = Script::from_yaml("turns:\n  - {delay_ms: 5000, reply: {content: too late}}\n")
        .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("bosun.toml"),
        "[model]\ntimeout_secs = 1\n",
    )
    .expect("config");
    let (code, out, err) = run_in(home.path(), &server, &[]).await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(out.trim(), "");
}

#[tokio::test]
async fn control_bytes_from_the_model_are_escaped_on_the_terminal() {
    let script = Script::from_yaml(
        &"  - reply: {content: \"done \\e[2J\\e]0;title\\a\\0 end\"}\n"
            .repeat(2)
            .replacen("  - ", "turns:\n  - ", 1),
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    for extra in [&[][..], &["--stream"][..]] {
        let (code, out, err) = run_in(home.path(), &server, extra).await;
        assert_eq!(code, Some(0), "{err}");
        assert!(!out.contains(['\x1b', '\x07', '\0']), "{out:?}");
        assert!(!err.contains(['\x1b', '\x07', '\0']), "{err:?}");
        assert!(
            out.contains("done \\x1b[2J\\x1b]0;title\\x07\\x00 end"),
            "{out}"
        );
    }
}

// ---- preflight: the cluster is checked before the first model call (exit 2)

#[tokio::test]
async fn preflight_stops_a_run_without_a_usable_cluster_before_any_model_call() {
    let script = Script::from_yaml("turns:\n  - reply: {content: never}\n").expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    // a kubeconfig pointing at a port where nothing listens
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dead = home.path().join("dead-kubeconfig");
    std::fs::write(
        &dead,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:{port}\"}}\nusers:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: gone\n  context: {{cluster: c, user: u}}\ncurrent-context: gone\n"),
    )
    .expect("write kubeconfig");
    let missing = home.path().join("no-such-kubeconfig");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--kubeconfig".into(), missing.display().to_string()],
            format!("cannot load kubeconfig {}: No such file", missing.display()),
        ),
        (
            vec!["--context".into(), "nope".into()],
            "no context `nope` in the kubeconfig; it has: bosun-sandbox".into(),
        ),
        (
            vec!["--kubeconfig".into(), dead.display().to_string()],
            format!("https://127.0.0.1:{port} (context gone) did not answer"),
        ),
    ];
    for (flags, want) in cases {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let (code, out, err) = run_in(home.path(), &server, &flags).await;
        assert_eq!(code, Some(2), "{flags:?}\nstdout: {out}\nstderr: {err}");
        assert!(err.contains(&want), "{flags:?}: wanted {want:?} in {err}");
        assert!(!err.contains("'\""), "double quoting: {err}");
        assert!(err.contains("because the agent offers `"), "{err}");
    }
    assert!(
        server.requests().is_empty(),
        "the model was asked before the preflight"
    );

    // validate warns about the same, and does not fail
    let out = common::bosun_cmd(home.path())
        .env("KUBECONFIG", &missing)
        .arg("--agent")
        .arg(common::repo_root())
        .arg("validate")
        .output()
        .expect("validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning:")
            && err.contains("cluster is not usable")
            && err.contains("cannot load kubeconfig"),
        "{err}"
    );
}

// ---- outcomes decided by the runtime (issue 16's scenarios): a limit after an apply, and a
// run whose every apply was refused

/// `bosun run --output json` with `extra`; the exit code and the JSON report.
async fn run_json(server: &ScriptedServer, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["--output", "json"];
    args.extend_from_slice(extra);
    let out = common::run_bosun(server, &args, "set the level").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), json)
}

fn level_configmap(ns: &str) -> String {
    serde_json::to_string(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  level: \"3\"\n"
    ))
    .expect("json string")
}

#[tokio::test]
async fn a_limit_after_an_apply_fails_and_reports_the_applied_change() {
    let ns = common::namespace("limit").await;
    let m = level_configmap(&ns);
    let script = Script::from_yaml(&format!(
        "turns:\n{}  - reply: {{tool_calls: [{{name: kubectl, arguments: {{operation: get, kind: configmaps, namespace: {ns}}}}}]}}\n",
        common::dry_run_then_apply(&ns, &m, &m)
    ))
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let (code, json) = run_json(&server, &["--max-turns", "2"]).await;
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(json["status"], "failed", "{json:#}");
    let applied: Vec<_> = json["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["operation"] == "apply" && c["ok"] == true)
        .collect();
    assert_eq!(
        applied.len(),
        1,
        "the applied ConfigMap is listed: {json:#}"
    );
    assert_eq!(
        json["changes_applied"].as_array().map(Vec::len),
        Some(1),
        "{json:#}"
    );
}

#[tokio::test]
async fn a_run_whose_every_apply_was_refused_fails_whatever_the_model_says() {
    let ns = common::namespace("refused").await;
    let m = level_configmap(&ns);
    // the apply is not the change that was dry-run: the dry-run rule refuses it
    let other = m.replace("\\\"3\\\"", "\\\"4\\\"");
    assert_ne!(m, other);
    let script = Script::from_yaml(&format!(
        "turns:\n{}  - reply: {{content: \"Success: the level is 3.\"}}\n",
        common::dry_run_then_apply(&ns, &m, &other)
    ))
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let (code, json) = run_json(&server, &[]).await;
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(json["status"], "failed", "{json:#}");
    assert!(
        json["verdict"]
            .as_str()
            .unwrap_or("")
            .contains("tried to change"),
        "{json:#}"
    );
    assert_eq!(
        json["changes"].as_array().map(Vec::len),
        Some(0),
        "{json:#}"
    );
}
