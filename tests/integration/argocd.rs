//! The argocd tool on the sandbox (Argo CD's CRDs installed, no controller), through the real
//! guard: render/create an Application, status and health read from the object, a sync
//! requested through the `operation` field (dry-run first), suspend/resume of automated sync.

use crate::common::{self, Driver};

use bosun::planner::State;
use bosun::tools::argocd::ArgoCd;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;

/// The shipped agent with `argocd` added to its tools, the tool on the sandbox.
fn driver() -> (tempfile::TempDir, Driver) {
    let dir = common::agent_copy();
    let md = std::fs::read_to_string(dir.path().join("agent.md")).expect("agent.md");
    let md = md.replacen("tools: [\"helm\",", "tools: [\"argocd\", \"helm\",", 1);
    assert!(
        md.contains("\"argocd\""),
        "the agent's tools line changed shape"
    );
    std::fs::write(dir.path().join("agent.md"), md).expect("agent.md");
    let ws = dir.path().join("workspace");
    std::fs::create_dir_all(&ws).expect("ws");
    let tool = ArgoCd::new(Some(common::sandbox().kubeconfig.clone()), None);
    let d = Driver::for_agent(
        dir.path(),
        vec![Arc::new(tool)],
        Some(Driver::dev_approver()),
        ws,
    );
    (dir, d)
}

fn apps(client: kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client,
        ns,
        &bosun::tools::k8s::ar("argoproj.io", "v1alpha1", "Application", "applications"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_are_rendered_read_synced_suspended_and_resumed_through_the_guard() {
    let ns = common::namespace("argocd").await;
    let (_dir, d) = driver();
    let base = json!({"name": "web", "namespace": ns, "repo_url": "https://git.example.com/platform/apps.git",
        "path": "apps/web/overlays/dev", "dest_namespace": "shop", "automated": true});
    let mut render = base.clone();
    render["operation"] = json!("render");
    let out = d.call("argocd", render, State::Coding).await.ok();
    assert!(out.contains("kind: Application"), "{out}");
    assert!(
        out.contains("valid for the argoproj.io/v1alpha1 CRD"),
        "{out}"
    );
    let mut create = base.clone();
    create["operation"] = json!("create");
    create["file"] = json!("gitops/apps/web-app.yaml");
    let out = d.call("argocd", create, State::Coding).await.ok();
    assert!(out.starts_with("Wrote gitops/apps/web-app.yaml"), "{out}");
    let written =
        std::fs::read_to_string(d.ctx.workspace.join("gitops/apps/web-app.yaml")).expect("file");
    assert!(written.contains("selfHeal: true"), "{written}");
    // a file outside the GitOps checkout is refused
    let mut outside = base.clone();
    outside["operation"] = json!("create");
    outside["file"] = json!("../evil.yaml");
    assert!(!matches!(
        d.call("argocd", outside, State::Coding).await,
        common::Outcome::Ok(_)
    ));

    // the Application as Argo CD would have it, with the status its controller writes
    let obj: serde_json::Value = serde_saphyr::from_str(&written).expect("yaml");
    common::create(obj).await;
    let api = apps(common::kube().await, &ns);
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"sync": {"status": "OutOfSync", "revision": "abc1234def"},
            "health": {"status": "Degraded"},
            "resources": [{"kind": "Deployment", "namespace": "shop", "name": "web", "status": "OutOfSync", "health": {"status": "Degraded"}}]}})),
    )
    .await
    .expect("status");
    let out = d
        .call(
            "argocd",
            json!({"operation": "status", "namespace": ns}),
            State::Intake,
        )
        .await
        .ok();
    assert!(out.contains("OutOfSync/Degraded"), "{out}");
    assert!(out.contains("auto"), "{out}");
    let out = d
        .call(
            "argocd",
            json!({"operation": "status", "namespace": ns, "name": "web"}),
            State::Intake,
        )
        .await
        .ok();
    assert!(out.contains("health Degraded"), "{out}");
    assert!(
        out.contains("Deployment shop/web: OutOfSync Degraded"),
        "{out}"
    );

    // sync: no apply without its dry-run; then the operation field, as Argo CD's API sets it
    let sync = json!({"operation": "sync", "namespace": ns, "name": "web", "revision": "v2", "prune": true});
    let refused = d
        .call("argocd", sync.clone(), State::Deployment)
        .await
        .refused();
    assert!(refused.contains("dry_run: true"), "{refused}");
    let mut dry = sync.clone();
    dry["dry_run"] = json!(true);
    let out = d.call("argocd", dry, State::Validation).await.ok();
    assert!(out.contains("dry-run: nothing changed"), "{out}");
    assert!(api
        .get("web")
        .await
        .expect("get")
        .data
        .get("operation")
        .is_none());
    d.call("argocd", sync.clone(), State::Deployment).await.ok();
    let o = api.get("web").await.expect("get");
    assert_eq!(o.data["operation"]["sync"]["revision"], "v2");
    assert_eq!(o.data["operation"]["sync"]["prune"], true);
    assert_eq!(o.data["operation"]["initiatedBy"]["username"], "bosun");

    // suspend keeps the automated policy for resume, which restores it
    for (op, automated) in [("suspend", false), ("resume", true)] {
        let call = json!({"operation": op, "namespace": ns, "name": "web"});
        let mut dry = call.clone();
        dry["dry_run"] = json!(true);
        d.call("argocd", dry, State::Validation).await.ok();
        let out = d.call("argocd", call, State::Deployment).await.ok();
        assert!(out.contains(op.trim_end_matches('e')), "{out}");
        let o = api.get("web").await.expect("get");
        assert_eq!(
            o.data.pointer("/spec/syncPolicy/automated").is_some(),
            automated,
            "{op}: {:?}",
            o.data["spec"]
        );
        if automated {
            assert_eq!(o.data["spec"]["syncPolicy"]["automated"]["selfHeal"], true);
        }
    }
}
