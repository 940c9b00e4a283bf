//! `bosun run` end to end: the real binary, the scripted model server, the real API server.

mod common;

use bosun::scripted::{Script, ScriptedServer};

async fn run_bosun(server: &ScriptedServer, extra: &[&str], task: &str) -> std::process::Output {
    let home = tempfile::tempdir().expect("tempdir");
    let st = common::sandbox();
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &st.kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .arg("run")
        .args(extra)
        .arg(task);
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("running bosun")
}

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

    let out = run_bosun(&server, &[], "Which pods look unhealthy?").await;
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
    let out = run_bosun(&server, &["--stream"], "Which pods look unhealthy?").await;
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
    let out = run_bosun(&server, &[], "do things").await;
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
    let out = run_bosun(&server, &[], "load the kubernetes skill").await;
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
    let out = run_bosun(&server, &["--max-turns", "3"], "loop").await;
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
    let out = run_bosun(&server, &[], "loop").await;
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
