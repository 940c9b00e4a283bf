//! The verification gate on the real sandbox: a deployment whose new version never becomes
//! ready fails its declared check (rollout status), and — as the policy says — bosun rolls it
//! back through the guard, leaving the previous version running.

use crate::common;

use bosun::config::ModelConfig;
use bosun::kube_client::KubeTarget;
use bosun::model::OpenAiClient;
use bosun::scripted::{Script, ScriptedServer};
use bosun::session::{Event, Op, Runtime, RuntimeOptions};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use std::sync::Arc;
use std::time::Duration;

fn manifest(ns: &str, tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: registry.example/web:{tag}\n          resources:\n            requests: {{cpu: 10m, memory: 16Mi}}\n            limits: {{cpu: 100m, memory: 64Mi}}\n"
    )
}

fn image(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verification_rolls_back_and_leaves_the_previous_version_running() {
    let ns = common::namespace("verify").await;
    // version 1, running and ready (the test plays the kubelet)
    let v1: serde_json::Value = serde_saphyr::from_str(&manifest(&ns, "1.0.0")).expect("yaml");
    common::create(v1).await;
    common::mark_pods_ready(&ns, "app=web", 1).await;
    let deployments: Api<Deployment> = Api::namespaced(common::kube().await, &ns);
    // wait until the deployment controller reports v1 available
    for _ in 0..100 {
        let d = deployments.get("web").await.expect("get");
        if d.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            >= 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let v2 = serde_json::to_string(&manifest(&ns, "2.0.0")).expect("json string");
    let script = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run v2"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, force_conflicts: true, manifests: {v2}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: kubectl, arguments: {{operation: apply, force_conflicts: true, manifests: {v2}}}}}
        - {{name: transition, arguments: {{to: verification, justification: "applied"}}}}
  # a model takes a moment before it answers; the deployment controller has started the rollout by then
  - delay_ms: 2000
    reply:
      tool_calls:
        - {{name: transition, arguments: {{to: completion, justification: "done", report: "Success"}}}}
  - expect:
      last_tool_result_contains: ["verification failed", "rolled back", "The policy rolled the failed changes back"]
    reply:
      tool_calls:
        - {{name: transition, arguments: {{to: failed, justification: "v2 never became ready; rolled back", report: "Fail: v2 rolled back to v1"}}}}
  - reply: {{content: "Fail: web 2.0.0 never became ready; bosun rolled it back to 1.0.0."}}
"#
    );
    // an agent copy whose policy rolls back failed verifications
    let dir = common::agent_copy();
    let policy = std::fs::read_to_string(dir.path().join("policy.yaml")).expect("policy");
    assert!(
        policy.contains("verification: {rollback: true}"),
        "the shipped policy rolls back failed verifications"
    );
    let (server, rt) = common::scripted_runtime(dir.path(), &script, vec![]).await;
    let mut s = rt.spawn_session(None).expect("session");
    let events = common::run_task(&mut s, "roll out web 2.0.0", 120).await;
    let outputs: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallFinished { tool, output, .. } => Some(format!(
                "{tool}: {}",
                output.lines().take(3).collect::<Vec<_>>().join(" | ")
            )),
            _ => None,
        })
        .collect();
    let now = deployments.get("web").await.expect("get");
    assert_eq!(
        server.failures(),
        Vec::<String>::new(),
        "tool results: {outputs:#?}\nimage now: {} status: {:?} generation {:?}",
        image(&now),
        now.status,
        now.metadata.generation
    );
    match events.last() {
        Some(Event::TaskComplete { state, status, .. }) => {
            assert_eq!(*state, bosun::planner::State::Failed);
            assert_eq!(*status, bosun::session::TaskStatus::Failed);
        }
        other => panic!("{other:?}"),
    }
    // the runtime's own calls: the check, then the undo's dry-run and the undo, all through the guard
    let own: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallStarted {
                call_id, arguments, ..
            } if call_id.starts_with("bosun-") => Some(arguments.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(own.len(), 3, "{own:?}");
    assert!(own[0].contains("rollout_status"), "{own:?}");
    assert!(
        own[1].contains("restore") && own[1].contains("\"dry_run\":true"),
        "{own:?}"
    );
    assert!(own[2].contains("restore"), "{own:?}");
    // the previous version is what runs now
    let d = deployments.get("web").await.expect("get");
    assert_eq!(image(&d), "registry.example/web:1.0.0");
}

/// A Deployment the task *created* never becomes ready: there is no previous revision to roll
/// back to, so bosun's undo deletes what the apply created — and the runtime calls the task
/// failed, even though the model claims success and never moves to `failed` itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_object_that_fails_verification_is_deleted_and_the_task_fails() {
    let ns = common::namespace("verify-new").await;
    let st = common::sandbox();
    let m = serde_json::to_string(&manifest(&ns, "3.0.0")).expect("json string");
    let script = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {m}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {m}}}}}
  - reply: {{content: "Success: web 3.0.0 is deployed."}}
  - expect:
      last_user_contains: ["verification failed", "rolled back"]
    reply: {{content: "Success: web 3.0.0 is deployed and healthy."}}
"#
    );
    let server = ScriptedServer::start(Script::from_yaml(&script).expect("script"))
        .await
        .expect("server");
    let model = OpenAiClient::new(&ModelConfig {
        base_url: Some(server.base_url()),
        ..Default::default()
    })
    .expect("client");
    let rt = Runtime::from_dir(
        &common::repo_root(),
        Arc::new(model),
        RuntimeOptions {
            kube: KubeTarget {
                kubeconfig: Some(st.kubeconfig.clone()),
                context: None,
            },
            ..Default::default()
        },
    )
    .expect("runtime");
    let mut s = rt.spawn_session(None).expect("session");
    s.submit(Op::UserTurn {
        text: "create web 3.0.0".into(),
    });
    let mut last = None;
    while let Some(e) = tokio::time::timeout(Duration::from_secs(120), s.next_event())
        .await
        .expect("events in time")
    {
        let end = matches!(e, Event::TaskComplete { .. } | Event::TaskFailed { .. });
        last = Some(e);
        if end {
            break;
        }
    }
    match last {
        Some(Event::TaskComplete {
            status, verdict, ..
        }) => {
            assert_eq!(status, bosun::session::TaskStatus::Failed, "{verdict}");
            assert!(verdict.contains("checks"), "{verdict}");
        }
        other => panic!("{other:?}"),
    }
    let deployments: Api<Deployment> = Api::namespaced(common::kube().await, &ns);
    let mut gone = false;
    for _ in 0..50 {
        if deployments.get_opt("web").await.expect("get").is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        gone,
        "the created Deployment was not removed by the rollback"
    );
}

// ---- helm: a release whose pods never become ready (the stand-in kubelet cannot pull the
// image) fails its check, and bosun undoes the upgrade with helm's own rollback — or removes
// a release that upgrade installed — dry-run first, through the guard, in the report

/// A chart with one Deployment whose image comes from values; the rollout is declared stuck
/// after 6 s without progress.
fn web_chart(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir");
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    )
    .expect("Chart.yaml");
    std::fs::write(
        dir.join("values.yaml"),
        "image: registry.example/web:1.0.0\n",
    )
    .expect("values");
    std::fs::write(
        dir.join("templates/deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: 1\n  progressDeadlineSeconds: 6\n  selector:\n    matchLabels: {app: {{ .Release.Name }}}\n  template:\n    metadata:\n      labels: {app: {{ .Release.Name }}}\n    spec:\n      containers:\n        - name: web\n          image: {{ .Values.image | quote }}\n          resources:\n            requests: {cpu: 10m, memory: 16Mi}\n            limits: {cpu: 100m, memory: 64Mi}\n",
    )
    .expect("template");
}

/// `helm3` with the sandbox's kubeconfig, for the test's own setup and checks.
fn helm3(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    let bin = bosun::sandbox::find_binary("helm3")
        .expect("`helm3` is not installed: run scripts/install-deps.sh");
    std::process::Command::new(bin)
        .env("KUBECONFIG", &common::sandbox().kubeconfig)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .args(args)
        .output()
        .expect("running helm3")
}

/// `bosun run --output json --report FILE.md` with helm 3, the model answering "deployed" after
/// the upgrade; the exit code, the JSON report and the Markdown report.
async fn helm_task(ns: &str, chart: &std::path::Path) -> (Option<i32>, serde_json::Value, String) {
    let args = serde_json::json!({"release": "web", "namespace": ns,
        "chart": chart.display().to_string(), "values": "image: registry.example/broken:2.0.0"});
    let with = |op: &str| {
        let mut a = args.clone();
        a["operation"] = serde_json::json!(op);
        a.to_string()
    };
    let script = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run 2.0.0"}}}}
        - {{name: helm, arguments: {dry}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: helm, arguments: {real}}}
  - reply: {{content: "Success: web 2.0.0 is deployed."}}
  - expect:
      last_user_contains: ["verification failed", "rolled back"]
    reply: {{content: "Success: web 2.0.0 is deployed and healthy."}}
"#,
        dry = with("upgrade_dry_run"),
        real = with("upgrade"),
    );
    let server = ScriptedServer::start(Script::from_yaml(&script).expect("script"))
        .await
        .expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let report = home.path().join("report.md");
    let st = common::sandbox();
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &st.kubeconfig)
        .env(
            "BOSUN_HELM",
            bosun::sandbox::find_binary("helm3").expect("`helm3` is not installed"),
        )
        .arg("--agent")
        .arg(common::repo_root())
        .arg("run")
        .args(["--output", "json", "--report"])
        .arg(&report)
        .arg("deploy web 2.0.0 with helm");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("running bosun");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let mut json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{e}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let audit = json["audit_log"]
        .as_str()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    assert_eq!(server.failures(), Vec::<String>::new(), "{json:#}\n{audit}");
    let md = std::fs::read_to_string(&report).expect("report written");
    // the audit log follows the report into failure messages
    json["audit"] = serde_json::Value::String(audit);
    (out.status.code(), json, md)
}

/// A stand-in kubelet for `ns` that cannot pull `registry.example/broken*`, and the web chart.
async fn helm_setup(
    ns: &str,
) -> (
    bosun::sandbox::kubelet::Kubelet,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let kubelet = bosun::sandbox::kubelet::Kubelet::spawn(
        common::kube().await,
        ns,
        bosun::sandbox::kubelet::KubeletOptions {
            unpullable: vec!["registry.example/broken*".into()],
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let chart = dir.path().join("web");
    web_chart(&chart);
    (kubelet, dir, chart)
}

/// Exit 1, status failed, and the report's helm changes are the upgrade and bosun's restore,
/// both successful.
fn assert_failed_and_restored(code: Option<i32>, json: &serde_json::Value) {
    assert_eq!(code, Some(1), "{json:#}");
    assert_eq!(json["status"], "failed", "{json:#}");
    let changes: Vec<(String, bool, Option<bool>)> = json["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["tool"] == "helm")
        .map(|c| {
            (
                c["operation"].as_str().unwrap_or("").to_string(),
                c["rollback"].as_bool().unwrap_or(false),
                c["ok"].as_bool(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("upgrade".to_string(), false, Some(true)),
            ("restore".to_string(), true, Some(true)),
        ],
        "{json:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_upgrade_that_never_becomes_ready_is_rolled_back_to_the_previous_revision() {
    let ns = common::namespace("verify-helm").await;
    let (_kubelet, dir, chart) = helm_setup(&ns).await;
    // revision 1, running and ready
    let chart_s = chart.display().to_string();
    let v1 = helm3(
        dir.path(),
        &[
            "upgrade",
            "--install",
            "web",
            &chart_s,
            "-n",
            &ns,
            "--set",
            "image=registry.example/web:1.0.0",
            "--wait",
            "--timeout",
            "60s",
        ],
    );
    assert!(
        v1.status.success(),
        "{}",
        String::from_utf8_lossy(&v1.stderr)
    );

    let (code, json, md) = helm_task(&ns, &chart).await;
    assert_failed_and_restored(code, &json);
    let checks = json["verification"].as_array().expect("verification");
    assert!(
        checks
            .iter()
            .any(|c| c["ok"] == false && c["result"].as_str().unwrap_or("").contains("not ready")),
        "{json:#}"
    );
    assert!(md.contains("# bosun report: Fail"), "{md}");
    assert!(md.contains("rolled back by bosun: helm.restore"), "{md}");
    assert!(md.contains("rolled back web to revision 1"), "{md}");
    // helm's own rollback: revision 3 is revision 1's values, and that is what runs
    let values = helm3(
        dir.path(),
        &["get", "values", "web", "-n", &ns, "-o", "json"],
    );
    let values = String::from_utf8_lossy(&values.stdout);
    assert!(values.contains("registry.example/web:1.0.0"), "{values}");
    let history = helm3(dir.path(), &["history", "web", "-n", &ns, "-o", "json"]);
    let history: serde_json::Value = serde_json::from_slice(&history.stdout).expect("history json");
    let last = history
        .as_array()
        .and_then(|a| a.last())
        .expect("a revision");
    assert_eq!(last["revision"], 3, "{history:#}");
    assert!(
        last["description"]
            .as_str()
            .unwrap_or("")
            .contains("Rollback to 1"),
        "{history:#}"
    );
    let deployments: Api<Deployment> = Api::namespaced(common::kube().await, &ns);
    let d = deployments.get("web").await.expect("get");
    assert_eq!(image(&d), "registry.example/web:1.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helm_install_that_never_becomes_ready_is_uninstalled() {
    let ns = common::namespace("verify-helm-new").await;
    let (_kubelet, dir, chart) = helm_setup(&ns).await;

    let (code, json, md) = helm_task(&ns, &chart).await;
    assert_failed_and_restored(code, &json);
    assert!(md.contains("uninstalled release web"), "{md}");
    let status = helm3(dir.path(), &["status", "web", "-n", &ns]);
    assert!(!status.status.success(), "the release is still installed");
    let deployments: Api<Deployment> = Api::namespaced(common::kube().await, &ns);
    assert!(deployments.get_opt("web").await.expect("get").is_none());
}
