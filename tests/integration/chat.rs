//! `bosun chat` (and `bosun run` at a terminal) driven as a person would: in a real terminal
//! (tmux), against the scripted model and the sandbox.

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

    /// The screen with its colours and attributes as escape sequences (`capture-pane -e`).
    fn screen_with_escapes(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-e", "-S", "-200", "-t", &self.name])
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
    let cmd = bosun_in_tmux(home.path(), &server.base_url(), "", "chat");
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

/// The shell command that runs `bosun ARGS` with the shipped agent in tmux with a clean
/// environment (`env` extra variables first), then says how it exited and stays on screen.
fn bosun_in_tmux(home: &std::path::Path, url: &str, env: &str, args: &str) -> String {
    bosun_in_tmux_with(home, url, env, &common::repo_root(), args)
}

/// [`bosun_in_tmux`] with the agent in `agent`.
fn bosun_in_tmux_with(
    home: &std::path::Path,
    url: &str,
    env: &str,
    agent: &std::path::Path,
    args: &str,
) -> String {
    format!(
        "env -i PATH=/usr/bin:/bin HOME={home} TERM=xterm OPENAI_BASE_URL={url} KUBECONFIG={kc} {env} {bin} --agent {agent} {args}; echo EXITED-$?; sleep 30",
        home = home.display(),
        kc = common::sandbox().kubeconfig.display(),
        bin = common::bosun_bin().display(),
        agent = agent.display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_a_running_read_within_seconds_and_the_repl_takes_the_next_input() {
    let ns = common::namespace("chat-cancel").await;
    common::create(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": ns}}))
    .await;
    // a 60 s wait that never ends by itself: the ConfigMap is never deleted
    let wait = format!(
        "{{name: kubectl, arguments: {{operation: wait, kind: configmaps, name: held, namespace: {ns}, wait_for: delete, timeout_seconds: 60}}}}"
    );
    let script = Script::from_yaml(&format!(
        r#"
turns:
  - expect: {{last_user_contains: ["wait one"]}}
    reply: {{content: "waiting once", tool_calls: [{wait}]}}
  - expect: {{last_user_contains: ["wait two"]}}
    reply: {{content: "waiting twice", tool_calls: [{wait}]}}
  - expect: {{last_user_contains: ["and now"]}}
    reply: {{content: "still here after two interrupts"}}
"#
    ))
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let cmd = bosun_in_tmux(home.path(), &server.base_url(), "", "chat");
    let screen = tokio::task::spawn_blocking(move || {
        let t = Tmux::start(&cmd);
        t.wait_for("intake>", 1);
        for (n, (input, said)) in [("wait one", "waiting once"), ("wait two", "waiting twice")]
            .into_iter()
            .enumerate()
        {
            t.send(&[input, "Enter"]);
            t.wait_for(said, 1);
            // the wait is running (the model's text came with the call)
            std::thread::sleep(Duration::from_millis(1500));
            let t0 = Instant::now();
            t.send(&["C-c"]);
            if n == 1 {
                // a second Ctrl-C in the same turn does no harm
                t.send(&["C-c"]);
            }
            t.wait_for("interrupted; the conversation is kept", n + 1);
            let took = t0.elapsed();
            assert!(
                took < Duration::from_secs(10),
                "the 60 s wait was not cancelled promptly: {took:?}\n{}",
                t.screen()
            );
        }
        t.wait_for("intake>", 3);
        t.send(&["and now?", "Enter"]);
        t.wait_for("still here after two interrupts", 1);
        t.send(&["C-d"]);
        t.wait_for("EXITED-0", 1)
    })
    .await
    .expect("tmux driver");
    // each cancelled call is reported as such, not as a timeout
    assert!(
        screen.matches("✗ kubectl").count() >= 2,
        "a line per cancelled call:\n{screen}"
    );
    assert!(screen.contains("interrupted: the user stopped"), "{screen}");
    assert_eq!(server.failures(), Vec::<String>::new());
    // the model was told the call was interrupted
    let reqs = server.requests();
    let last = reqs.last().expect("requests");
    let results = common::tool_results(last);
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(
        results.iter().all(|r| r.contains("interrupted")),
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_resume_the_prompt_and_state_show_the_restored_planner_state_and_no_color_is_plain() {
    let script = Script::from_yaml(
        r#"
turns:
  - expect: {last_user_contains: ["move on"]}
    reply:
      content: "moving"
      tool_calls:
        - {name: transition, arguments: {to: validation, justification: "the task is understood"}}
  - reply: {content: "now in validation"}
  - expect: {last_user_contains: ["where are we"]}
    reply: {content: "still in validation"}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let first = bosun_in_tmux(home.path(), &server.base_url(), "", "chat");
    let (id, coloured) = tokio::task::spawn_blocking(move || {
        let t = Tmux::start(&first);
        t.wait_for("intake>", 1);
        t.send(&["move on", "Enter"]);
        t.wait_for("now in validation", 1);
        t.wait_for("validation>", 1);
        let coloured = t.screen_with_escapes();
        t.send(&["C-d"]);
        let s = t.wait_for("EXITED-0", 1);
        let id = s
            .split("bosun chat --resume ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("the session id")
            .to_string();
        (id, coloured)
    })
    .await
    .expect("tmux driver");
    // on a terminal the REPL uses colour: the prompt, the tool names, the planner move
    assert!(coloured.contains("\x1b["), "{coloured}");

    let resumed = bosun_in_tmux(
        home.path(),
        &server.base_url(),
        "NO_COLOR=1",
        &format!("chat --resume {id}"),
    );
    let (screen, plain) = tokio::task::spawn_blocking(move || {
        let t = Tmux::start(&resumed);
        t.wait_for("validation>", 1);
        t.send(&["/state", "Enter"]);
        t.wait_for("state: validation · session ", 1);
        t.send(&["where are we?", "Enter"]);
        t.wait_for("still in validation", 1);
        let plain = t.screen_with_escapes();
        t.send(&["C-d"]);
        (t.wait_for("EXITED-0", 1), plain)
    })
    .await
    .expect("tmux driver");
    assert!(!screen.contains("intake>"), "{screen}");
    assert!(
        !plain.contains('\x1b'),
        "NO_COLOR: no escape sequences\n{plain:?}"
    );
    assert_eq!(server.failures(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_at_a_terminal_shows_a_progress_line_while_the_model_thinks_and_clears_it() {
    let script = Script::from_yaml(
        r#"
turns:
  - delay_ms: 4000
    reply: {content: "thought it through"}
"#,
    )
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let cmd = bosun_in_tmux(home.path(), &server.base_url(), "", "run 'think slowly'");
    let (during, after) = tokio::task::spawn_blocking(move || {
        let t = Tmux::start(&cmd);
        let during = t.wait_for("model thinking · ", 1);
        (during, t.wait_for("EXITED-0", 1))
    })
    .await
    .expect("tmux driver");
    assert!(during.contains(" s"), "elapsed seconds shown:\n{during}");
    assert!(after.contains("thought it through"), "{after}");
    assert!(
        !after.contains("model thinking"),
        "the progress line is cleared when done:\n{after}"
    );

    // piped: no progress line, no escape byte on stdout or stderr
    let server = ScriptedServer::start(
        Script::from_yaml("turns:\n  - delay_ms: 1500\n    reply: {content: \"plain answer\"}\n")
            .expect("script"),
    )
    .await
    .expect("server");
    let mut c = common::bosun_cmd(home.path());
    c.env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &common::sandbox().kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--stream", "answer plainly"]);
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .expect("join")
        .expect("bosun run");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "plain answer");
    assert!(!out.stdout.contains(&0x1b), "{stdout:?}");
    assert!(!out.stderr.contains(&0x1b), "{stderr:?}");
    assert!(!stderr.contains("model thinking"), "{stderr}");
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
    let cmd = bosun_in_tmux_with(home.path(), &server.base_url(), "", agent.path(), "chat");
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
