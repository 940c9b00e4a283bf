//! The planner and the audit log, through the real binary and the scripted model.

use crate::common;

use bosun::scripted::{Script, ScriptedServer};
use serde_json::Value;

#[tokio::test]
async fn the_planner_refuses_bad_moves_and_records_everything() {
    let script = Script::from_yaml(
        r#"
turns:
  - expect:
      tools_include: [transition, kubectl]
      last_user_contains: ["[bosun] state: intake"]
    reply:
      tool_calls:
        - {id: t1, name: transition, arguments: {to: deployment, justification: "ship it"}}
        - {id: t2, name: transition, arguments: {to: validation, justification: "nothing to validate yet", report: null}}
        - {id: t3, name: transition, arguments: {to: deployment, justification: "validated?"}}
  - expect:
      last_tool_result_contains: ["no change has passed a dry-run"]
    reply:
      tool_calls:
        - {id: t4, name: transition, arguments: {to: completion, justification: "done"}}
        - {id: t5, name: transition, arguments: {to: completion, justification: "question answered", report: "Success: nothing to change."}}
  - expect:
      last_tool_result_contains: ["state: validation → completion"]
    reply:
      content: "Success: nothing to change."
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let audit_dir = home.path().join("audit");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &common::sandbox().kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--output", "json", "--audit-dir"])
        .arg(&audit_dir)
        .arg("Is anything to do?");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.failures(), Vec::<String>::new());

    let results = common::tool_results(&server.requests()[1]);
    assert!(
        results[0].starts_with("refused by bosun's planner: cannot move from intake to deployment"),
        "{}",
        results[0]
    );
    assert!(
        results[1].starts_with("state: intake → validation"),
        "{}",
        results[1]
    );
    assert!(
        results[2].contains("no change has passed a dry-run"),
        "{}",
        results[2]
    );
    let results = common::tool_results(&server.requests()[2]);
    assert!(results[3].contains("needs a `report`"), "{}", results[3]);

    let v: Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(v["status"], "success");
    assert_eq!(v["state"], "completion");
    assert_eq!(v["report"], "Success: nothing to change.");

    // the audit log: a finished record per call and the transitions; the planner's verbs are
    // the session's own (no guard decision: they run no tool and change nothing outside)
    let path = v["audit_log"].as_str().expect("audit path");
    assert!(
        path.starts_with(audit_dir.to_str().expect("utf8")),
        "{path}"
    );
    let text = std::fs::read_to_string(path).expect("audit log");
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    let kind = |k: &str| recs.iter().filter(|r| r["record"]["event"] == k).count();
    assert_eq!(kind("decided"), 0, "{text}");
    assert_eq!(kind("finished"), 5, "{text}");
    assert_eq!(kind("transition"), 2, "{text}");
    let first = recs
        .iter()
        .find(|r| r["record"]["event"] == "finished")
        .expect("finished");
    assert_eq!(first["record"]["tool"], "transition");
    assert_eq!(first["record"]["ok"], false);
    assert!(first["record"]["summary"]
        .as_str()
        .is_some_and(|s| s.contains("cannot move from intake to deployment")));
    assert!(recs
        .iter()
        .all(|r| r["session"].is_string() && r["ts"].is_string()));
}

#[tokio::test]
async fn jsonl_output_is_the_event_stream() {
    let script = Script::from_yaml(
        r#"
turns:
  - reply:
      content: "checking"
      tool_calls:
        - {name: kubectl, arguments: {operation: get, kind: namespaces}}
        - {name: kubectl, arguments: {operation: delete, kind: namespaces, name: default}}
  - reply: {content: "done"}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &common::sandbox().kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--output", "jsonl", "--audit-dir"])
        .arg(home.path().join("audit"))
        .arg("--report")
        .arg(home.path().join("report.md"))
        .arg("--trace-path")
        .arg(home.path().join("trace.jsonl"))
        .arg("list namespaces");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"task_started"));
    assert_eq!(types.last(), Some(&"task_complete"));
    assert_eq!(
        types.iter().filter(|t| **t == "tool_call_started").count(),
        2
    );
    assert_eq!(types.iter().filter(|t| **t == "guard_decision").count(), 2);
    let decisions: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "guard_decision")
        .collect();
    assert_eq!(decisions[0]["verdict"], "allow");
    assert_eq!(decisions[0]["effect"], "read_only");
    assert_eq!(decisions[1]["verdict"], "refuse");
    let done = events.last().expect("last");
    assert_eq!(done["answer"], "done");
    assert_eq!(done["state"], "intake");
    // the trace file holds the same stream; the report says what happened
    let trace = std::fs::read_to_string(home.path().join("trace.jsonl")).expect("trace");
    assert_eq!(trace.lines().count(), events.len());
    let report = std::fs::read_to_string(home.path().join("report.md")).expect("report");
    assert!(report.starts_with("# bosun report: Success"), "{report}");
    assert!(report.contains("## Changes applied\n\nNone."), "{report}");
    assert!(report.contains("## Answer\n\ndone"), "{report}");
}
