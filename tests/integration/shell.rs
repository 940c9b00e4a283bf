//! The opt-in shell tool: not offered unless the agent lists it; every run is destructive (a
//! dry-run and a human approval each time); argv without a shell; only PATH, HOME and LANG in
//! the environment; a timeout.

use crate::common;

use bosun::guard::{ApprovalDecision, ApprovalRequest, Approver};
use bosun::planner::State;
use common::Driver;
use futures::future::BoxFuture;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const V: State = State::Validation;
const D: State = State::Deployment;

/// Approves everything and counts the requests.
#[derive(Default)]
struct Counting(AtomicU32);

impl Approver for Counting {
    fn decide<'a>(&'a self, _req: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { ApprovalDecision::Approved { by: "test".into() } })
    }
}

/// A copy of the shipped agent whose tools include `shell`.
fn agent_with_shell(dir: &Path) {
    let root = common::repo_root();
    for sub in ["skills", "tools", "prompts", "blocks"] {
        copy_dir(&root.join(sub), &dir.join(sub));
    }
    let md = std::fs::read_to_string(root.join("agent.md")).expect("agent.md");
    let md = md.replacen("tools: [", "tools: [\"shell\", ", 1);
    assert!(
        md.contains("tools: [\"shell\", "),
        "the tools line changed; update this test"
    );
    std::fs::write(dir.join("agent.md"), md).expect("write agent.md");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

#[test]
fn shell_is_not_offered_unless_the_agent_lists_it() {
    let ws = tempfile::tempdir().expect("tempdir");
    let d = Driver::offline(vec![], None, ws.path().to_path_buf());
    assert!(d.registry.get("shell").is_none());
    assert!(d.registry.get("git").is_some());
}

#[tokio::test]
async fn every_run_needs_a_dry_run_and_an_approval_and_gets_no_shell_and_no_credentials() {
    let agent = tempfile::tempdir().expect("tempdir");
    agent_with_shell(agent.path());
    let ws = tempfile::tempdir().expect("tempdir");
    let approver = Arc::new(Counting::default());
    let d = Driver::for_agent(
        agent.path(),
        vec![],
        Some(approver.clone()),
        ws.path().to_path_buf(),
    );
    assert!(d.registry.get("shell").is_some());
    let cwd = ws.path().to_path_buf();

    // model text is never interpreted by a shell
    let echo = json!({"operation": "run", "argv": ["echo", "$(id)", "`whoami`", "a;b", "$HOME"], "cwd": cwd});
    let r = d.call("shell", echo.clone(), D).await.refused();
    assert!(r.contains("dry_run: true"), "{r}");
    let mut dry = echo.clone();
    dry["dry_run"] = json!(true);
    let out = d.call("shell", dry.clone(), V).await.ok();
    assert!(
        out.contains("would run echo '$(id)'") && out.contains("Running it needs a human approval"),
        "{out}"
    );
    assert_eq!(
        approver.0.load(Ordering::SeqCst),
        0,
        "a dry-run needs no approval"
    );
    let out = d.call("shell", echo.clone(), D).await.ok();
    assert_eq!(out.trim(), "exit 0\n$(id) `whoami` a;b $HOME");
    assert_eq!(approver.0.load(Ordering::SeqCst), 1);
    // the same command again: a new dry-run and a new approval
    let r = d.call("shell", echo.clone(), D).await.refused();
    assert!(r.contains("no successful dry-run"), "{r}");
    d.call("shell", dry, V).await.ok();
    d.call("shell", echo, D).await.ok();
    assert_eq!(approver.0.load(Ordering::SeqCst), 2, "approval every time");

    // the environment: PATH, HOME and LANG at most
    let env = json!({"operation": "run", "argv": ["env"], "cwd": cwd});
    let mut env_dry = env.clone();
    env_dry["dry_run"] = json!(true);
    d.call("shell", env_dry, V).await.ok();
    let out = d.call("shell", env, D).await.ok();
    let keys: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    // (bubblewrap sets PWD, the working directory, itself)
    assert!(
        keys.iter()
            .all(|k| ["PATH", "HOME", "LANG", "PWD"].contains(k)),
        "{out}"
    );
    assert!(keys.contains(&"PATH"), "{out}");

    // a script edited after its dry-run is a different change
    std::fs::write(cwd.join("hello.sh"), "echo hello\n").expect("script");
    let script = json!({"operation": "run", "argv": ["sh", "hello.sh"], "cwd": cwd});
    let mut script_dry = script.clone();
    script_dry["dry_run"] = json!(true);
    let out = d.call("shell", script_dry, V).await.ok();
    assert!(out.contains("hello.sh (sha256"), "{out}");
    std::fs::write(cwd.join("hello.sh"), "echo changed\n").expect("edit");
    let r = d.call("shell", script, D).await.refused();
    assert!(r.contains("no successful dry-run"), "{r}");

    // a timeout stops the program
    let slow =
        json!({"operation": "run", "argv": ["sleep", "30"], "cwd": cwd, "timeout_seconds": 1});
    let mut slow_dry = slow.clone();
    slow_dry["dry_run"] = json!(true);
    d.call("shell", slow_dry, V).await.ok();
    let started = std::time::Instant::now();
    let f = d.call("shell", slow, D).await.failed();
    assert!(f.contains("timed out after 1 s"), "{f}");
    assert!(started.elapsed().as_secs() < 15);
}
