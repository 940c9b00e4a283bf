//! Modes and scope on the real sandbox, through the real binary: `--mode read-only` offers and
//! admits only reads; `--mode suggest` changes nothing and writes a change proposal that
//! `bosun apply` re-validates and applies; `-n NAMESPACE` confines dry-runs and changes to that
//! namespace; `sessions list` shows outcomes. Also the
//! generated completions and man page, `bosun version`, and plain output under `NO_COLOR`.

use crate::common;

use bosun::scripted::{Script, ScriptedServer};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::Api;

async fn run_bosun(
    server: &ScriptedServer,
    extra: &[&str],
    env: &[(&str, &str)],
    task: &str,
) -> std::process::Output {
    let home = tempfile::tempdir().expect("tempdir");
    let st = common::sandbox();
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &st.kubeconfig)
        .envs(env.iter().copied())
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

fn bosun(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().expect("tempdir");
    common::bosun_cmd(home.path())
        .args(args)
        .output()
        .expect("running bosun")
}

/// A ConfigMap manifest as a JSON string (to embed in a script's arguments).
fn config_map(ns: &str, name: &str) -> String {
    let m = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  k: v\n"
    );
    serde_json::to_string(&m).expect("json string")
}

fn cluster_role(name: &str) -> String {
    let m = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\nrules: []\n"
    );
    serde_json::to_string(&m).expect("json string")
}

fn codes(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The operations a request offered for `tool` (None: the tool was not offered).
fn offered_ops(req: &serde_json::Value, tool: &str) -> Option<Vec<String>> {
    let t = req["tools"]
        .as_array()?
        .iter()
        .find(|t| t["function"]["name"] == tool)?;
    Some(
        t["function"]["parameters"]["properties"]["operation"]["enum"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn read_only_mode_offers_and_admits_only_reads() {
    let ns = common::namespace("ro").await;
    let cm = config_map(&ns, "ro-attempt");
    let script = format!(
        r#"
turns:
  - expect:
      system_contains: ["read-only"]
    reply:
      tool_calls:
        - {{name: kubectl, arguments: {{operation: get, kind: configmaps, namespace: {ns}}}}}
        - {{name: transition, arguments: {{to: validation, justification: "dry-run it"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {cm}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "apply it"}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {cm}}}}}
        - {{name: kubectl, arguments: {{operation: delete, kind: configmaps, name: ro-attempt, namespace: {ns}}}}}
  - reply: {{content: "I could not change anything: read-only mode."}}
"#
    );
    let server = ScriptedServer::start(Script::from_yaml(&script).expect("script"))
        .await
        .expect("server");
    let out = run_bosun(
        &server,
        &["--mode", "read-only"],
        &[],
        "Create the ConfigMap ro-attempt",
    )
    .await;
    // the refused changes stopped the task: exit 3
    assert_eq!(out.status.code(), Some(3), "{}", codes(&out));
    assert_eq!(server.failures(), Vec::<String>::new());

    // offered: only read operations, in every request
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    for req in &reqs {
        let kubectl = offered_ops(req, "kubectl").expect("kubectl is offered (it has reads)");
        assert!(kubectl.contains(&"get".to_string()), "{kubectl:?}");
        for op in [
            "apply",
            "apply_dry_run",
            "delete",
            "scale",
            "rollout_restart",
        ] {
            assert!(
                !kubectl.contains(&op.to_string()),
                "{op} offered: {kubectl:?}"
            );
        }
        for t in req["tools"].as_array().expect("tools") {
            let name = t["function"]["name"].as_str().unwrap_or_default();
            if name == "shell" {
                panic!("shell has no read operation and must not be offered");
            }
        }
    }

    // admitted: the read and the planner verbs; every change refused with the mode's reason
    let results = common::tool_results(&reqs[1]);
    assert_eq!(results.len(), 6, "{results:?}");
    assert!(results[0].contains("configmaps"), "{}", results[0]);
    for r in [&results[2], &results[4], &results[5]] {
        assert!(r.contains("read-only mode"), "{r}");
    }
    // the cluster is unchanged
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("ro-attempt").await.expect("get").is_none());
}

#[tokio::test]
async fn namespace_scope_refuses_writes_elsewhere_and_allows_them_inside() {
    let ns = common::namespace("scope").await;
    let other = common::namespace("scope-other").await;
    let role = format!("bosun-scope-{}", common::suffix());
    let inside = config_map(&ns, "inside");
    let script = format!(
        r#"
turns:
  - expect:
      system_contains: ["scoped to namespace `{ns}`"]
    reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-runs"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {elsewhere}}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {system}}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {cluster}}}}}
        - {{name: kubectl, arguments: {{operation: get, kind: configmaps, namespace: {other}}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {inside}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {inside}}}}}
  - reply: {{content: "Applied inside; the rest is out of scope."}}
"#,
        elsewhere = config_map(&other, "elsewhere"),
        system = config_map("kube-system", "bosun-scope-test"),
        cluster = cluster_role(&role),
    );
    let server = ScriptedServer::start(Script::from_yaml(&script).expect("script"))
        .await
        .expect("server");
    let out = run_bosun(&server, &["-n", &ns], &[], "Create the ConfigMaps").await;
    // the out-of-scope changes were stopped: exit 3
    assert_eq!(out.status.code(), Some(3), "{}", codes(&out));
    assert_eq!(server.failures(), Vec::<String>::new());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("scoped to namespace `{ns}`")),
        "{stderr}"
    );

    let reqs = server.requests();
    let results = common::tool_results(&reqs[1]);
    assert_eq!(results.len(), 8, "{results:?}");
    let scoped = format!("this task is scoped to namespace `{ns}`");
    assert!(
        results[1].contains(&format!("namespace `{other}`")),
        "{}",
        results[1]
    );
    assert!(
        results[2].contains("namespace `kube-system`"),
        "{}",
        results[2]
    );
    assert!(
        results[3].contains("cluster-scoped ClusterRole"),
        "{}",
        results[3]
    );
    for r in &results[1..4] {
        assert!(r.contains(&scoped), "{r}");
        assert!(r.contains("re-scope"), "{r}");
    }
    // reads elsewhere stay allowed
    assert!(!results[4].contains("scoped to"), "{}", results[4]);
    // inside the scope: dry-run and apply admitted
    assert!(!results[5].contains("scoped to"), "{}", results[5]);
    assert!(!results[7].contains("refused"), "{}", results[7]);

    let kube = common::kube().await;
    let mine: Api<ConfigMap> = Api::namespaced(kube.clone(), &ns);
    assert!(mine.get_opt("inside").await.expect("get").is_some());
    let theirs: Api<ConfigMap> = Api::namespaced(kube.clone(), &other);
    assert!(theirs.get_opt("elsewhere").await.expect("get").is_none());
    let sys: Api<ConfigMap> = Api::namespaced(kube.clone(), "kube-system");
    assert!(sys
        .get_opt("bosun-scope-test")
        .await
        .expect("get")
        .is_none());
    let roles: Api<ClusterRole> = Api::all(kube);
    assert!(roles.get_opt(&role).await.expect("get").is_none());
}

#[tokio::test]
async fn no_color_output_is_plain() {
    let ns = common::namespace("nocolor").await;
    let script = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: kubectl, arguments: {{operation: get, kind: pods, namespace: {ns}}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {cm}}}}}
  - reply: {{content: "done"}}
"#,
        cm = config_map(&ns, "x")
    );
    let server = ScriptedServer::start(Script::from_yaml(&script).expect("script"))
        .await
        .expect("server");
    let out = run_bosun(&server, &[], &[("NO_COLOR", "1")], "list pods").await;
    let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    assert!(!all.contains(&0x1b), "ESC in output: {}", codes(&out));
    // progress, a refusal and the answer were printed, just without colour
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("→ kubectl") && stderr.contains("guard refused"),
        "{stderr}"
    );
}

#[test]
fn completions_man_and_version() {
    for shell in ["bash", "zsh", "fish"] {
        let out = bosun(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", codes(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("bosun"), "{shell}: {text}");
        // the subcommands and the new flags are in the script
        assert!(
            text.contains("sandbox") && text.contains("namespace"),
            "{shell}"
        );
    }
    let man = bosun(&["man"]);
    assert!(man.status.success(), "{}", codes(&man));
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.contains(".TH bosun 1"), "{page}");
    let v = bosun(&["version"]);
    let flag = bosun(&["--version"]);
    assert!(v.status.success() && flag.status.success());
    assert_eq!(v.stdout, flag.stdout);
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("bosun "));
}

/// The embedding API: the guard settings alone scope and restrict calls (no CLI involved).
#[tokio::test]
async fn guard_config_scope_and_mode_for_embedders() {
    use bosun::guard::GuardConfig;
    use bosun::planner::State;
    use bosun::scope::{Mode, TaskScope};
    let ns = common::namespace("embed-scope").await;
    let cm = |name: &str| {
        serde_json::json!({"operation": "apply_dry_run", "manifests": format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  k: v\n"
        )})
    };
    // another context: the namespace matches, the cluster does not
    let h = common::Harness::new(GuardConfig {
        scope: Some(TaskScope {
            context: Some("some-other-cluster".into()),
            namespace: Some(ns.clone()),
        }),
        ..Default::default()
    });
    let r = h
        .call("kubectl", cm("a"), State::Validation)
        .await
        .expect_err("other context");
    assert!(
        r.starts_with("refused:")
            && r.contains("would act on context `")
            && r.contains("scoped to namespace"),
        "{r}"
    );
    let read = serde_json::json!({"operation": "get", "kind": "configmaps", "namespace": ns});
    h.call("kubectl", read.clone(), State::Intake)
        .await
        .expect("reads are not confined");

    // read-only: the dry-run is refused before anything is resolved; the read runs
    let h = common::Harness::new(GuardConfig {
        mode: Mode::ReadOnly,
        ..Default::default()
    });
    let r = h
        .call("kubectl", cm("b"), State::Validation)
        .await
        .expect_err("read-only");
    assert!(r.contains("read-only mode"), "{r}");
    h.call("kubectl", read.clone(), State::Intake)
        .await
        .expect("read in read-only mode");

    // suggest: the dry-run runs; the change after it is refused as a proposal, and not applied
    let h = common::Harness::new(GuardConfig {
        mode: Mode::Suggest,
        ..Default::default()
    });
    h.call("kubectl", cm("c"), State::Validation)
        .await
        .expect("dry-run in suggest mode");
    let mut change = cm("c");
    change["operation"] = "apply".into();
    let r = h
        .call("kubectl", change.clone(), State::Deployment)
        .await
        .expect_err("suggest");
    assert!(r.contains("recorded as a proposal"), "{r}");
    // without its dry-run the change is refused for that, not proposed
    let mut other = cm("d");
    other["operation"] = "apply".into();
    let r = h
        .call("kubectl", other, State::Deployment)
        .await
        .expect_err("no dry-run");
    assert!(r.contains("no successful dry-run"), "{r}");
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("c").await.expect("get").is_none());

    // the runtime offers only reads in read-only mode, and says so in the system prompt
    let model = bosun::model::OpenAiClient::new(&bosun::config::ModelConfig {
        base_url: Some("http://127.0.0.1:9/v1".into()),
        ..Default::default()
    })
    .expect("client");
    let rt = bosun::session::Runtime::from_dir(
        &common::repo_root(),
        std::sync::Arc::new(model),
        bosun::session::RuntimeOptions {
            guard: GuardConfig {
                mode: Mode::ReadOnly,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .expect("runtime");
    assert!(rt.system_prompt.contains("read-only"));
    for spec in &rt.specs {
        let Some(reg) = rt.registry.get(&spec.name) else {
            // the planner's verbs are the session's, not tools
            assert!(
                ["transition", "delegate"].contains(&spec.name.as_str()),
                "{}",
                spec.name
            );
            continue;
        };
        if let Some(ops) = spec.parameters["properties"]["operation"]["enum"].as_array() {
            for op in ops.iter().filter_map(|o| o.as_str()) {
                assert_eq!(
                    reg.operations.get(op),
                    Some(&bosun::effect::EffectClass::ReadOnly),
                    "{}.{op} offered in read-only mode",
                    spec.name
                );
            }
        }
    }
}

/// A whole change as a model makes it: read, dry-run, deploy, verify, complete.
fn change_script(ns: &str, manifest: &str) -> String {
    format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: kubectl, arguments: {{operation: get, kind: configmaps, namespace: {ns}}}}}
        - {{name: transition, arguments: {{to: validation, justification: "dry-run it"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {manifest}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {manifest}}}}}
        - {{name: transition, arguments: {{to: verification, justification: "check it"}}}}
        - {{name: transition, arguments: {{to: completion, justification: "done", report: "the ConfigMap"}}}}
  - reply: {{content: "Done."}}
"#
    )
}

/// `bosun run --mode suggest` of [`change_script`] for ConfigMap `name` in `ns`: the run's
/// output, the scripted server, and the proposal directory (under `state`).
async fn suggest(
    ns: &str,
    name: &str,
    state: &std::path::Path,
) -> (std::process::Output, ScriptedServer, std::path::PathBuf) {
    suggest_script(&change_script(ns, &config_map(ns, name)), name, state).await
}

/// `bosun run --mode suggest` of `script`, its proposal in `state/<name>.proposal`.
async fn suggest_script(
    script: &str,
    name: &str,
    state: &std::path::Path,
) -> (std::process::Output, ScriptedServer, std::path::PathBuf) {
    let server = ScriptedServer::start(Script::from_yaml(script).expect("script"))
        .await
        .expect("server");
    let dir = state.join(format!("{name}.proposal"));
    let sessions = state.join("sessions");
    let out = run_bosun(
        &server,
        &[
            "--mode",
            "suggest",
            "--proposal-dir",
            dir.to_str().expect("utf-8"),
            "--sessions-dir",
            sessions.to_str().expect("utf-8"),
            "-o",
            "json",
        ],
        &[],
        &format!("Create the ConfigMap {name}"),
    )
    .await;
    (out, server, dir)
}

/// `bosun apply DIR` against the sandbox (audit logs next to the proposal directory).
async fn apply_proposal(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    apply_proposal_answering(dir, extra, None).await
}

/// [`apply_proposal`] with `answer` on its stdin (`None`: stdin closed).
async fn apply_proposal_answering(
    dir: &std::path::Path,
    extra: &[&str],
    answer: Option<&str>,
) -> std::process::Output {
    let home = tempfile::tempdir().expect("tempdir");
    let st = common::sandbox();
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("KUBECONFIG", &st.kubeconfig)
        .arg("--agent")
        .arg(common::repo_root())
        .arg("apply")
        .arg(dir)
        .arg("--audit-dir")
        .arg(dir.with_extension("audit"))
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let answer = answer.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd.spawn().expect("running bosun apply");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some(a) = answer {
            stdin.write_all(a.as_bytes()).expect("answer");
        }
        drop(stdin);
        child.wait_with_output().expect("bosun apply")
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn suggest_mode_changes_nothing_and_its_proposal_applies_to_the_apply_mode_end_state() {
    let ns = common::namespace("suggest").await;
    let twin = common::namespace("suggest-twin").await;
    let state = tempfile::tempdir().expect("tempdir");
    let (out, server, dir) = suggest(&ns, "proposed", state.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", codes(&out));
    assert_eq!(server.failures(), Vec::<String>::new());
    let reqs = server.requests();
    // the model is told, and every change operation is still offered (calling it proposes it)
    assert!(reqs[0]["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("suggest")));
    let ops = offered_ops(&reqs[0], "kubectl").expect("kubectl offered");
    assert!(ops.contains(&"apply".to_string()), "{ops:?}");
    let results = common::tool_results(&reqs[1]);
    assert_eq!(results.len(), 7, "{results:?}");
    assert!(results[2].contains("would be created"), "{}", results[2]);
    assert!(
        results[4].contains("suggest mode") && results[4].contains("recorded as a proposal"),
        "{}",
        results[4]
    );
    assert!(!results[6].contains("refused"), "{}", results[6]);

    // the API server: nothing was created
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("proposed").await.expect("get").is_none());

    // the report: success, and the proposal with its evidence
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["status"], "success", "{report}");
    assert!(
        report["verdict"]
            .as_str()
            .unwrap_or("")
            .contains("proposal"),
        "{report}"
    );
    let listed = &report["proposal"]["changes"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(listed[0]["tool"], "kubectl");
    assert_eq!(listed[0]["operation"], "apply");
    assert_eq!(listed[0]["replayable"], true);
    assert!(listed[0]["dry_run_evidence"]
        .as_str()
        .unwrap_or("")
        .contains("would be created"));
    assert_eq!(report["proposal"]["dir"], dir.display().to_string());

    // the directory: an index and one file per change, with both calls and the fingerprint
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("proposal.json")).expect("index"))
            .expect("index json");
    assert_eq!(index["changes"][0]["file"], "01-kubectl-apply.json");
    assert_eq!(index["changes"][0]["fingerprint"], listed[0]["fingerprint"]);
    let change: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("01-kubectl-apply.json")).expect("change"),
    )
    .expect("change json");
    assert_eq!(change["dry_run"]["arguments"]["operation"], "apply_dry_run");
    assert_eq!(change["apply"]["arguments"]["operation"], "apply");
    assert!(change["apply"]["arguments"]["manifests"]
        .as_str()
        .is_some_and(|m| m.contains("name: proposed")));
    assert!(change["fingerprint"]["content_hash"].is_string());

    // sessions list: the outcome and the final state
    let list = bosun(&[
        "sessions",
        "list",
        "--json",
        "--dir",
        state.path().join("sessions").to_str().expect("utf-8"),
    ]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("list json");
    assert_eq!(list[0]["outcome"], "success", "{list}");
    assert_eq!(list[0]["state"], "completion", "{list}");

    // bosun apply: re-validated, applied through the guard, no model
    let applied = apply_proposal(&dir, &["-o", "json"]).await;
    assert_eq!(applied.status.code(), Some(0), "{}", codes(&applied));
    let r: serde_json::Value = serde_json::from_slice(&applied.stdout).expect("apply json");
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["changes"][0]["result"], "applied", "{r}");
    let audit =
        std::fs::read_to_string(r["audit_log"].as_str().expect("audit log")).expect("audit");
    assert!(
        audit.contains("apply_dry_run") && audit.contains("\"apply\""),
        "{audit}"
    );

    // the same task in apply mode, in a twin namespace: the same end state
    let script = change_script(&twin, &config_map(&twin, "proposed"));
    let server = ScriptedServer::start(Script::from_yaml(&script).expect("script"))
        .await
        .expect("server");
    let out = run_bosun(&server, &[], &[], "Create the ConfigMap proposed").await;
    assert_eq!(out.status.code(), Some(0), "{}", codes(&out));
    let kube = common::kube().await;
    let from_proposal = Api::<ConfigMap>::namespaced(kube.clone(), &ns)
        .get("proposed")
        .await
        .expect("applied from the proposal");
    let from_run = Api::<ConfigMap>::namespaced(kube, &twin)
        .get("proposed")
        .await
        .expect("applied by the run");
    assert_eq!(from_proposal.data, from_run.data);
    assert_eq!(from_proposal.metadata.labels, from_run.metadata.labels);
    assert_eq!(
        from_proposal.metadata.annotations,
        from_run.metadata.annotations
    );

    // applied once: the proposal's change is now `unchanged`, so a second apply is drift
    let again = apply_proposal(&dir, &[]).await;
    assert_eq!(again.status.code(), Some(3), "{}", codes(&again));
}

#[tokio::test]
async fn a_tampered_or_drifted_proposal_is_refused_and_applies_nothing() {
    let ns = common::namespace("drift").await;
    let state = tempfile::tempdir().expect("tempdir");
    let (out, _server, dir) = suggest(&ns, "drifting", state.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", codes(&out));
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);

    // tampered: the manifest in the change file edited after the proposal was written
    let tampered = state.path().join("tampered");
    std::fs::create_dir_all(&tampered).expect("mkdir");
    for f in ["proposal.json", "01-kubectl-apply.json"] {
        let text = std::fs::read_to_string(dir.join(f)).expect("read");
        let text = if f == "proposal.json" {
            text
        } else {
            assert!(text.contains("k: v"), "{text}");
            text.replace("k: v", "k: evil")
        };
        std::fs::write(tampered.join(f), text).expect("write");
    }
    let r = apply_proposal(&tampered, &[]).await;
    assert_eq!(r.status.code(), Some(3), "{}", codes(&r));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("proposal file was edited") && stderr.contains("nothing was applied"),
        "{stderr}"
    );
    assert!(cms.get_opt("drifting").await.expect("get").is_none());

    // drifted: someone else created the object since (same data, their label): the change
    // computes the same fingerprint, but its dry-run no longer says `would be created`
    let theirs: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "drifting", "namespace": ns, "labels": {"owner": "someone-else"}},
        "data": {"k": "v"}
    }))
    .expect("configmap");
    cms.create(&Default::default(), &theirs)
        .await
        .expect("create");
    let r = apply_proposal(&dir, &["-o", "json"]).await;
    assert_eq!(r.status.code(), Some(3), "{}", codes(&r));
    let rep: serde_json::Value = serde_json::from_slice(&r.stdout).expect("json");
    assert_eq!(rep["status"], "drifted", "{rep}");
    assert_eq!(rep["changes"][0]["result"], "drifted", "{rep}");
    assert!(
        rep["changes"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("live state drifted") && d.contains("would be created")),
        "{rep}"
    );
    // their object is left as they made it, and nothing was applied (no apply in the audit)
    let live = cms.get("drifting").await.expect("get");
    assert!(live
        .metadata
        .managed_fields
        .unwrap_or_default()
        .iter()
        .all(|m| m.manager.as_deref() != Some("bosun")));
    let audit = std::fs::read_to_string(rep["audit_log"].as_str().expect("audit")).expect("read");
    assert!(!audit.contains("\"operation\":\"apply\""), "{audit}");

    // a conflicting drift (their value for the same field): the fresh dry-run itself fails
    cms.delete("drifting", &Default::default())
        .await
        .expect("delete");
    let mut conflicting = theirs.clone();
    conflicting.metadata.labels = None;
    conflicting.data = Some([("k".to_string(), "theirs".to_string())].into());
    cms.create(&Default::default(), &conflicting)
        .await
        .expect("create");
    let r = apply_proposal(&dir, &[]).await;
    assert_eq!(r.status.code(), Some(3), "{}", codes(&r));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("fresh dry-run did not pass"), "{stderr}");
    let live = cms.get("drifting").await.expect("get");
    assert_eq!(
        live.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("theirs")
    );
}

#[tokio::test]
async fn a_destructive_proposal_is_applied_only_when_a_human_types_yes() {
    let ns = common::namespace("doomed").await;
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "doomed", "namespace": ns}, "data": {"k": "v"}
    }))
    .expect("configmap");
    cms.create(&Default::default(), &cm).await.expect("create");
    let script = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run it"}}}}
        - {{name: kubectl, arguments: {{operation: delete, kind: configmaps, name: doomed, namespace: {ns}, dry_run: true}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: kubectl, arguments: {{operation: delete, kind: configmaps, name: doomed, namespace: {ns}}}}}
  - reply: {{content: "Proposed the deletion."}}
"#
    );
    let state = tempfile::tempdir().expect("tempdir");
    let (out, server, dir) = suggest_script(&script, "doomed", state.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", codes(&out));
    let results = common::tool_results(&server.requests()[1]);
    assert!(
        results[3].contains("recorded as a proposal"),
        "{}",
        results[3]
    );
    assert!(cms.get_opt("doomed").await.expect("get").is_some());

    // nobody approves: the guard refuses the destructive change, exit 3, nothing deleted
    let r = apply_proposal(&dir, &[]).await;
    assert_eq!(r.status.code(), Some(3), "{}", codes(&r));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("re-validated") && stderr.contains("approval"),
        "{stderr}"
    );
    assert!(cms.get_opt("doomed").await.expect("get").is_some());

    // asked on stderr: any answer but `yes` denies
    let r = apply_proposal_answering(&dir, &[], Some("y\n")).await;
    assert_eq!(r.status.code(), Some(3), "{}", codes(&r));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("approval needed: destructive operation")
            && stderr.contains("object: ConfigMap")
            && stderr.contains("Only 'yes' is accepted"),
        "{stderr}"
    );
    assert!(cms.get_opt("doomed").await.expect("get").is_some());

    // `yes` approves exactly this change: deleted
    let r = apply_proposal_answering(&dir, &[], Some("yes\n")).await;
    assert_eq!(r.status.code(), Some(0), "{}", codes(&r));
    let gone = cms
        .get_opt("doomed")
        .await
        .expect("get")
        .is_none_or(|c| c.metadata.deletion_timestamp.is_some());
    assert!(gone);
}

/// A GitOps change proposed in suggest mode: the remote is untouched; the proposal carries the
/// clone and the file write as its setup, and `bosun apply` rebuilds and pushes the same commit.
#[tokio::test]
async fn a_gitops_proposal_replays_its_file_writes_and_pushes_in_bosun_apply() {
    let ns = common::namespace("gitsuggest").await;
    let (_keep, remote) = common::git_remote();
    let head = |remote: &std::path::Path| {
        git2::Repository::open_bare(remote)
            .expect("remote")
            .refname_to_id("refs/heads/main")
            .expect("main")
    };
    let before = head(&remote);
    let content = serde_json::to_string(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-git\n  namespace: {ns}\ndata:\n  k: v\n"
    ))
    .expect("json");
    let remote_s = serde_json::to_string(&remote.display().to_string()).expect("json");
    let script = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: git, arguments: {{operation: open, remote: {remote_s}}}}}
        - {{name: git, arguments: {{operation: write_file, path: apps/from-git.yaml, content: {content}}}}}
        - {{name: transition, arguments: {{to: validation, justification: "dry-run the commit"}}}}
        - {{name: git, arguments: {{operation: commit_push, dry_run: true}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: git, arguments: {{operation: commit_push, message: "add from-git"}}}}
  - reply: {{content: "Proposed the commit."}}
"#
    );
    let state = tempfile::tempdir().expect("tempdir");
    let (out, server, dir) = suggest_script(&script, "gitops", state.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", codes(&out));
    let results = common::tool_results(&server.requests()[1]);
    assert!(results[3].contains("dry-run ok"), "{}", results[3]);
    assert!(
        results[5].contains("recorded as a proposal"),
        "{}",
        results[5]
    );
    assert_eq!(head(&remote), before, "suggest mode pushed");

    let change: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("01-git-commit-push.json")).expect("change file"),
    )
    .expect("json");
    let setup: Vec<&str> = change["setup"]
        .as_array()
        .expect("setup")
        .iter()
        .filter_map(|c| c["arguments"]["operation"].as_str())
        .collect();
    assert_eq!(setup, ["open", "write_file"], "{change:#}");

    let r = apply_proposal(&dir, &[]).await;
    assert_eq!(r.status.code(), Some(0), "{}", codes(&r));
    let after = head(&remote);
    assert_ne!(after, before, "bosun apply did not push");
    let repo = git2::Repository::open_bare(&remote).expect("remote");
    let tree = repo
        .find_commit(after)
        .expect("commit")
        .tree()
        .expect("tree");
    assert!(tree
        .get_path(std::path::Path::new("apps/from-git.yaml"))
        .is_ok());
}

/// An embedded runtime of the shipped agent in suggest mode on the sandbox, answering with
/// `server`; `opts` gives the directories.
fn suggest_runtime(
    server: &ScriptedServer,
    opts: bosun::session::RuntimeOptions,
) -> std::sync::Arc<bosun::session::Runtime> {
    bosun::init_crypto();
    let model = bosun::model::OpenAiClient::new(&bosun::config::ModelConfig {
        base_url: Some(server.base_url()),
        ..Default::default()
    })
    .expect("client");
    bosun::session::Runtime::from_dir(
        &common::repo_root(),
        std::sync::Arc::new(model),
        bosun::session::RuntimeOptions {
            kube: bosun::kube_client::KubeTarget {
                kubeconfig: Some(common::sandbox().kubeconfig.clone()),
                context: None,
            },
            guard: bosun::guard::GuardConfig {
                mode: bosun::scope::Mode::Suggest,
                ..Default::default()
            },
            ..opts
        },
    )
    .expect("runtime")
}

/// The embedding API: `GuardConfig { mode: Suggest }` and `RuntimeOptions::proposal_dir` — the
/// outcome carries the proposal, the directory holds it, the cluster is unchanged.
#[tokio::test]
async fn an_embedded_suggest_session_returns_and_writes_its_proposal() {
    let ns = common::namespace("embed-suggest").await;
    let script = change_script(&ns, &config_map(&ns, "embedded"));
    let server = ScriptedServer::start(Script::from_yaml(&script).expect("script"))
        .await
        .expect("server");
    let state = tempfile::tempdir().expect("tempdir");
    let rt = suggest_runtime(
        &server,
        bosun::session::RuntimeOptions {
            proposal_dir: Some(state.path().join("p-{session}")),
            ..Default::default()
        },
    );
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s = bosun::session::Session::new(rt, tx).expect("session");
    let o = s
        .run_task("Create the ConfigMap embedded")
        .await
        .expect("outcome");
    assert_eq!(
        o.status,
        bosun::session::TaskStatus::Success,
        "{}",
        o.verdict
    );
    assert!(o.applied.is_empty());
    assert_eq!(o.proposed.len(), 1);
    assert_eq!(o.proposed[0].operation, "apply");
    let dir = o.proposal_dir.expect("written");
    assert_eq!(dir, state.path().join(format!("p-{}", s.id())));
    let back = bosun::proposal::Proposal::load(&dir).expect("load");
    assert_eq!(back.changes, o.proposed);
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("embedded").await.expect("get").is_none());
}

/// A terraform change proposed in suggest mode: planned (the dry-run), never applied; the
/// proposal holds the plan's summary as evidence, and `bosun apply` plans again in its own
/// workspace (same fingerprint) and applies exactly that plan.
#[tokio::test]
async fn a_terraform_proposal_is_planned_again_and_applied_by_bosun_apply() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("marker");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("main.tf"),
        "resource \"terraform_data\" \"marker\" {\n  input = \"proposed\"\n}\n",
    )
    .expect("write");
    let d = serde_json::to_string(&dir.display().to_string()).expect("json");
    let script = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "plan it"}}}}
        - {{name: terraform, arguments: {{operation: plan, dir: {d}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "planned"}}}}
        - {{name: terraform, arguments: {{operation: apply, dir: {d}}}}}
  - reply: {{content: "Proposed the plan."}}
"#
    );
    let state = tempfile::tempdir().expect("tempdir");
    let (out, server, pdir) = suggest_script(&script, "tf", state.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", codes(&out));
    let results = common::tool_results(&server.requests()[1]);
    assert!(results[1].contains("Plan: 1 to add"), "{}", results[1]);
    assert!(
        results[3].contains("recorded as a proposal"),
        "{}",
        results[3]
    );
    let tfstate = dir.join("terraform.tfstate");
    let in_state = |p: &std::path::Path| {
        std::fs::read_to_string(p).is_ok_and(|s| s.contains("terraform_data"))
    };
    assert!(!in_state(&tfstate), "suggest mode applied the plan");
    let change: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(pdir.join("01-terraform-apply.json")).expect("change file"),
    )
    .expect("json");
    assert!(change["evidence"]
        .as_str()
        .is_some_and(|e| e.contains("+ terraform_data.marker")));

    let r = apply_proposal(&pdir, &[]).await;
    assert_eq!(r.status.code(), Some(0), "{}", codes(&r));
    assert!(in_state(&tfstate), "bosun apply did not apply the plan");
}

/// Suggest mode across a resume: a dry-run restored from the session file has no recorded
/// call, so its change cannot be proposed — the model is told to dry-run it again, and the
/// change is proposed after that.
#[tokio::test]
async fn a_resumed_suggest_session_asks_for_a_new_dry_run_before_proposing() {
    let ns = common::namespace("resume-suggest").await;
    let cm = config_map(&ns, "resumed");
    let first = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run it"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {cm}}}}}
  - reply: {{content: "Validated; stopping here."}}
"#
    );
    let second = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: deployment, justification: "validated before"}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {cm}}}}}
  - expect:
      last_tool_result_contains: ["dry-run it again"]
    reply:
      tool_calls:
        - {{name: kubectl, arguments: {{operation: apply, dry_run: true, manifests: {cm}}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {cm}}}}}
  - reply: {{content: "Proposed."}}
"#
    );
    let state = tempfile::tempdir().expect("tempdir");
    let runtime = |server: &ScriptedServer| {
        suggest_runtime(
            server,
            bosun::session::RuntimeOptions {
                sessions_dir: Some(state.path().join("sessions")),
                ..Default::default()
            },
        )
    };
    let s1 = ScriptedServer::start(Script::from_yaml(&first).expect("script"))
        .await
        .expect("server");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s = bosun::session::Session::new(runtime(&s1), tx).expect("session");
    let id = s.id().to_string();
    let o = s
        .run_task("Create the ConfigMap resumed")
        .await
        .expect("outcome");
    // dry-run only: listed as validated, not replayable
    assert_eq!(o.proposed.len(), 1);
    assert!(o.proposed[0].apply.is_none());
    drop(s);

    let s2 = ScriptedServer::start(Script::from_yaml(&second).expect("script"))
        .await
        .expect("server");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s = bosun::session::Session::resume(runtime(&s2), tx, &id).expect("resume");
    let o = s.run_task("Go on").await.expect("outcome");
    assert_eq!(s2.failures(), Vec::<String>::new());
    assert_eq!(
        o.status,
        bosun::session::TaskStatus::Success,
        "{}",
        o.verdict
    );
    assert_eq!(o.proposed.len(), 1, "{:?}", o.proposed);
    assert!(o.proposed[0].apply.is_some());
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("resumed").await.expect("get").is_none());
}
