//! A session killed mid-deployment resumes without applying again what its audit log says was
//! applied: the real binary, SIGKILL, `bosun run --resume`, the real API server.

use crate::common;

use bosun::scripted::{Script, ScriptedServer};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

/// The first scripted turn: dry-run, then apply, the ConfigMap `m` in `ns`.
fn dry_run_and_apply(ns: &str, m: &str) -> String {
    common::dry_run_then_apply(ns, m, m)
}

fn configmap(ns: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  level: \"1\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_session_resumes_without_a_second_apply() {
    let ns = common::namespace("resume").await;
    let st = common::sandbox();
    let m = serde_json::to_string(&configmap(&ns)).expect("json");
    let first = dry_run_and_apply(&ns, &m);
    let first = Script::from_yaml(&format!(
        r#"
turns:
{first}  - delay_ms: 60000
    reply: {{content: "never answered: the process is killed while it waits"}}
"#
    ))
    .expect("script");
    let server = ScriptedServer::start(first).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let sessions = home.path().join("sessions");
    let audit = home.path().join("audit");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &st.kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--output", "jsonl", "--sessions-dir"])
        .arg(&sessions)
        .arg("--audit-dir")
        .arg(&audit)
        .arg("set the level to 1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let killed = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn bosun");
        let out = child.stdout.take().expect("stdout");
        let mut applied = false;
        for line in BufReader::new(out).lines() {
            let line = line.expect("line");
            let v: serde_json::Value = serde_json::from_str(&line).expect("jsonl");
            if v["type"] == "tool_call_finished"
                && v["ok"] == true
                && v["output"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("server-side apply"))
            {
                applied = true;
                // the apply is done; the model is "thinking": kill the process, as a crash would
                std::thread::sleep(std::time::Duration::from_millis(300));
                child.kill().expect("kill");
                break;
            }
        }
        let status = child.wait().expect("wait");
        (applied, status)
    })
    .await
    .expect("join");
    assert!(
        killed.0,
        "the first run applied the change before it was killed"
    );
    assert!(!killed.1.success(), "killed, not finished");

    let list = bosun::store::list(&sessions).expect("sessions");
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0].id.clone();

    let second = Script::from_yaml(&format!(
        r#"
turns:
  - expect:
      last_user_contains: ["resumed"]
    reply:
      tool_calls:
        - {{name: kubectl, arguments: {{operation: apply, namespace: {ns}, manifests: {m}}}}}
  - expect:
      last_tool_result_contains: ["already applied in this session"]
    reply: {{content: "The change was applied before the interruption; nothing more to do."}}
"#
    ))
    .expect("script");
    let server2 = ScriptedServer::start(second).await.expect("server");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("OPENAI_BASE_URL", server2.base_url())
        .env("KUBECONFIG", &st.kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--resume", &id, "--sessions-dir"])
        .arg(&sessions)
        .arg("--audit-dir")
        .arg(&audit);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server2.failures(), Vec::<String>::new());
    // the resumed conversation carried the first run's history
    assert!(server2.requests()[0]
        .to_string()
        .contains("set the level to 1"));
    // exactly one apply was ever admitted, across both processes
    let log = std::fs::read_to_string(audit.join(format!("{id}.audit.jsonl"))).expect("audit log");
    let applies = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| {
            r["record"]["event"] == "decided" && r["record"]["decision"]["operation"] == "apply"
        })
        .map(|r| {
            r["record"]["decision"]["verdict"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect::<Vec<_>>();
    assert_eq!(
        applies,
        vec!["allow".to_string(), "refuse".to_string()],
        "{log}"
    );
}

/// An apply that failed (a 409 conflict) used up its dry-run: after `--resume` the identical
/// apply is refused until it is dry-run again — the use was saved with the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_apply_stays_used_up_across_resume() {
    let ns = common::namespace("resume409").await;
    let st = common::sandbox();
    let m = serde_json::to_string(&configmap(&ns)).expect("json");
    let first = Script::from_yaml(&format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, namespace: {ns}, manifests: {m}}}}}
  # meanwhile another field manager takes `data.level`: the apply conflicts (409)
  - delay_ms: 1500
    reply:
      tool_calls:
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: kubectl, arguments: {{operation: apply, namespace: {ns}, manifests: {m}}}}}
  - expect:
      last_tool_result_contains: ["conflict"]
    reply: {{content: "The apply conflicted."}}
"#
    ))
    .expect("script");
    let server = ScriptedServer::start(first).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let sessions = home.path().join("sessions");
    let audit = home.path().join("audit");
    let run = |base: String, extra: Vec<String>| {
        let mut cmd = common::bosun_cmd(home.path());
        cmd.env("OPENAI_BASE_URL", base)
            .env("KUBECONFIG", &st.kubeconfig)
            .arg("--agent")
            .arg(common::repo_root())
            .arg("run")
            .args(["--output", "jsonl"])
            .args(extra)
            .arg("--sessions-dir")
            .arg(&sessions)
            .arg("--audit-dir")
            .arg(&audit);
        cmd
    };
    let mut cmd = run(server.base_url(), vec![]);
    cmd.arg("set the level to 1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let handle = tokio::runtime::Handle::current();
    let ns2 = ns.clone();
    let code = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn bosun");
        let out = child.stdout.take().expect("stdout");
        for line in BufReader::new(out).lines() {
            let line = line.expect("line");
            let v: serde_json::Value = serde_json::from_str(&line).expect("jsonl");
            if v["type"] == "tool_call_finished" && v["ok"] == true && v["tool"] == "kubectl" {
                handle.block_on(common::create(serde_json::json!({"apiVersion": "v1",
                    "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns2},
                    "data": {"level": "0"}})));
            }
        }
        child.wait().expect("wait").code()
    })
    .await
    .expect("join");
    assert_eq!(server.failures(), Vec::<String>::new());
    assert_eq!(
        code,
        Some(1),
        "a task whose only apply failed is a failed task"
    );
    let id = bosun::store::list(&sessions).expect("sessions")[0]
        .id
        .clone();
    let second = Script::from_yaml(&format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: kubectl, arguments: {{operation: apply, namespace: {ns}, manifests: {m}}}}}
  - expect:
      last_tool_result_contains: ["no successful dry-run"]
    reply: {{content: "The dry-run was used up; it must be run again."}}
"#
    ))
    .expect("script");
    let server2 = ScriptedServer::start(second).await.expect("server");
    let mut cmd = run(server2.base_url(), vec!["--resume".into(), id.clone()]);
    cmd.arg("try again");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run");
    assert_eq!(
        server2.failures(),
        Vec::<String>::new(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(common::kube().await, &ns);
    let level = cm
        .get("settings")
        .await
        .expect("get")
        .data
        .unwrap_or_default();
    assert_eq!(
        level.get("level").map(String::as_str),
        Some("0"),
        "unchanged"
    );
}

/// Ctrl-C while the model thinks, after a change was applied: the run stops within seconds,
/// exits 130, and its report lists the change — taken from the audit log — with the verdict
/// that the task did not finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_after_an_apply_reports_the_change_and_exits_130() {
    let ns = common::namespace("ctrlc").await;
    let st = common::sandbox();
    let m = serde_json::to_string(&configmap(&ns)).expect("json");
    let first = dry_run_and_apply(&ns, &m);
    let script = Script::from_yaml(&format!(
        r#"
turns:
{first}  - delay_ms: 60000
    reply: {{content: "never answered: the user presses Ctrl-C while the model thinks"}}
"#
    ))
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let report = home.path().join("report.json");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &st.kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--output", "jsonl", "--report"])
        .arg(&report)
        .arg("set the level to 1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let (code, waited) = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("spawn bosun");
        let out = child.stdout.take().expect("stdout");
        for line in BufReader::new(out).lines() {
            let v: serde_json::Value = serde_json::from_str(&line.expect("line")).expect("jsonl");
            if v["type"] == "tool_call_finished"
                && v["output"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("server-side apply"))
            {
                std::thread::sleep(std::time::Duration::from_millis(300));
                let pid = i32::try_from(child.id()).expect("pid");
                // SAFETY: sending a signal to our own child process
                unsafe {
                    libc::kill(pid, libc::SIGINT);
                }
                break;
            }
        }
        let t = std::time::Instant::now();
        let status = child.wait().expect("wait");
        (status.code(), t.elapsed())
    })
    .await
    .expect("join");
    assert_eq!(code, Some(130), "Ctrl-C exits 130");
    assert!(
        waited.as_secs() < 20,
        "stopped in {waited:?}, not after the model's 60 s"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the report was written"))
            .expect("json report");
    assert_eq!(r["status"], "failed", "{r:#}");
    let changes = r["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{r:#}");
    assert_eq!(changes[0]["operation"], "apply");
    assert_eq!(changes[0]["ok"], true);
    assert!(changes[0]["dry_run_evidence"].is_string(), "{r:#}");
}
