//! `bosun chat` driven as a person would: in a real terminal (tmux), against the scripted model
//! and the sandbox.

use crate::common;

use bosun::scripted::{Script, ScriptedServer};
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    name: String,
}

impl Tmux {
    fn start(cmd: &str) -> Self {
        assert!(
            Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()),
            "tmux is needed for the REPL test: apt-get install tmux (scripts/install-deps.sh does it)"
        );
        let name = format!("bosun-chat-{}", common::suffix());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "180",
                "-y",
                "50",
                cmd,
            ])
            .status()
            .expect("tmux new-session");
        assert!(ok.success());
        Self { name }
    }

    fn send(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("send-keys");
        assert!(ok.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-S", "-200", "-t", &self.name])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Wait until the screen contains `text` `n` times.
    fn wait_for(&self, text: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if s.matches(text).count() >= n {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {text:?} ×{n}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `bosun chat` in a clean environment against `url` and the sandbox, then its exit code.
fn chat_cmd(home: &std::path::Path, url: &str, agent: &std::path::Path) -> String {
    format!(
        "env -i PATH=/usr/bin:/bin HOME={home} TERM=xterm OPENAI_BASE_URL={url} KUBECONFIG={kc} {bin} --agent {agent} chat; echo EXITED-$?; sleep 30",
        home = home.display(),
        kc = common::sandbox().kubeconfig.display(),
        bin = common::bosun_bin().display(),
        agent = agent.display(),
    )
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repl_streams_runs_tools_takes_commands_and_survives_ctrl_c() {
    let ns = common::namespace("chat").await;
    let script = Script::from_yaml(&format!(
        r#"
turns:
  - expect:
      last_user_contains: ["which namespaces"]
    reply:
      content: "Let me look at namespace {ns}."
      tool_calls:
        - {{name: kubectl, arguments: {{operation: get, kind: namespaces}}}}
  - expect:
      last_tool_result_contains: ["{ns}"]
    reply: {{content: "I see {ns} among them."}}
  - delay_ms: 15000
    reply: {{content: "this answer comes too late"}}
  - expect:
      last_user_contains: ["and now"]
    reply: {{content: "still here after the interrupt"}}
"#
    ))
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let cmd = chat_cmd(home.path(), &server.base_url(), &common::repo_root());
    let ns2 = ns.clone();
    let t = tokio::task::spawn_blocking(move || {
        let t = Tmux::start(&cmd);
        t.wait_for("intake>", 1);
        // a multi-line message: the backslash continues the line
        t.send(&["which namespaces \\", "Enter"]);
        t.wait_for("…", 1);
        t.send(&["are there?", "Enter"]);
        let s = t.wait_for("among them.", 1);
        assert!(s.contains("✓ kubectl"), "a line per tool call:\n{s}");
        assert!(
            s.contains(&format!("I see {ns2} among them.")),
            "streamed answer:\n{s}"
        );
        t.send(&["/state", "Enter"]);
        t.wait_for("state: intake · session ", 1);
        t.send(&["/skills", "Enter"]);
        t.wait_for("check-block-status:", 1);
        t.send(&["slow question", "Enter"]);
        std::thread::sleep(Duration::from_millis(800));
        t.send(&["C-c"]);
        t.wait_for("interrupted; the conversation is kept", 1);
        t.send(&["and now?", "Enter"]);
        t.wait_for("still here after the interrupt", 1);
        t.send(&["C-d"]);
        t.wait_for("EXITED-0", 1)
    })
    .await
    .expect("tmux driver");
    assert!(
        t.contains("saved; continue it with: bosun chat --resume"),
        "{t}"
    );
    assert!(!t.contains("this answer comes too late"), "{t}");
    assert_eq!(server.failures(), Vec::<String>::new());
    // the history file was written
    assert!(home.path().join(".local/state/bosun/history").is_file());
}

/// An approval prompt in the REPL shows what the change does — the dry-run's diff against the
/// live object, old and new value — before it asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_prompt_shows_the_diff_against_the_live_object() {
    let ns = common::namespace("chat-approve").await;
    let cm = |level: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  level: \"{level}\"\n")
    };
    common::create(serde_saphyr::from_str(&cm("1")).expect("yaml")).await;
    let m = serde_json::to_string(&cm("3")).expect("json string");
    let script = Script::from_yaml(&format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, force_conflicts: true, namespace: {ns}, manifests: {m}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: kubectl, arguments: {{operation: apply, force_conflicts: true, namespace: {ns}, manifests: {m}}}}}
  - expect:
      last_tool_result_contains: ["server-side apply"]
    reply: {{content: "level is 3 now."}}
"#
    ))
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    // the shipped agent, with a policy that wants a human for changes in this namespace
    let agent = common::agent_copy();
    std::fs::write(
        agent.path().join("policy.yaml"),
        format!("environments:\n  dev: [bosun-sandbox]\nrules:\n  - name: changes in {ns} need a human\n    action: approve\n    match:\n      namespace: {ns}\n      effect: [mutating, destructive]\n"),
    )
    .expect("policy");
    let home = tempfile::tempdir().expect("tempdir");
    let cmd = chat_cmd(home.path(), &server.base_url(), agent.path());
    let screen = tokio::task::spawn_blocking(move || {
        let t = Tmux::start(&cmd);
        t.wait_for("intake>", 1);
        t.send(&["set level to 3", "Enter"]);
        let prompt = t.wait_for("approve? [y/N]", 1);
        t.send(&["y", "Enter"]);
        t.wait_for("level is 3 now.", 1);
        t.send(&["C-d"]);
        t.wait_for("EXITED-0", 1);
        prompt
    })
    .await
    .expect("tmux driver");
    assert!(screen.contains("approval needed"), "{screen}");
    assert!(screen.contains("what will change"), "{screen}");
    assert!(
        screen.contains("-  level: '1'") || screen.contains("-  level: \"1\""),
        "the old value:\n{screen}"
    );
    assert!(
        screen.contains("+  level: '3'") || screen.contains("+  level: \"3\""),
        "the new value:\n{screen}"
    );
    assert_eq!(server.failures(), Vec::<String>::new());
    let api: kube::api::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::api::Api::namespaced(common::kube().await, &ns);
    let level = api
        .get("settings")
        .await
        .expect("get")
        .data
        .and_then(|d| d.get("level").cloned());
    assert_eq!(level.as_deref(), Some("3"), "approved, so applied");
}
