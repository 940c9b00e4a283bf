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
