//! Kustomize overlays through kubectl on the sandbox: an overlay in the workspace's GitOps
//! clone is built by the real `kubectl kustomize`, dry-run and applied through the guard like
//! manifests; an overlay edited after its dry-run is refused; paths outside the workspace and
//! symlinks in the tree are refused; the applied change's undo restores the previous objects.

use crate::common::{self, Driver};

use bosun::planner::State;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// `gitops/apps/web/base` (a ConfigMap and a Service) and an overlay `overlays/dev` that sets
/// the namespace, a name prefix, a label and patches the ConfigMap.
fn layout(ws: &Path, ns: &str, level: &str) {
    write(
        ws,
        "gitops/apps/web/base/kustomization.yaml",
        "resources: [configmap.yaml, service.yaml]\n",
    );
    write(
        ws,
        "gitops/apps/web/base/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  level: base\n",
    );
    write(
        ws,
        "gitops/apps/web/base/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports: [{port: 80, protocol: TCP}]\n",
    );
    write(
        ws,
        "gitops/apps/web/overlays/dev/kustomization.yaml",
        &format!("namespace: {ns}\nnamePrefix: dev-\ncommonLabels: {{env: dev}}\nresources: [../../base]\npatches:\n  - path: level.yaml\n"),
    );
    write(
        ws,
        "gitops/apps/web/overlays/dev/level.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  level: {level}\n"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlay_is_built_dry_run_and_applied_and_an_edit_after_the_dry_run_is_refused() {
    let ns = common::namespace("kustomize").await;
    let d = Driver::new(vec![], Some(Driver::dev_approver()));
    let ws = d.ctx.workspace.clone();
    layout(&ws, &ns, "one");
    let call = |op: &str| json!({"operation": op, "kustomize": "gitops/apps/web/overlays/dev", "namespace": ns});

    let dry = d
        .call("kubectl", call("apply_dry_run"), State::Validation)
        .await
        .ok();
    assert!(dry.contains(&format!("ConfigMap {ns}/dev-web")), "{dry}");
    assert!(dry.contains(&format!("Service {ns}/dev-web")), "{dry}");
    let applied = d
        .call("kubectl", call("apply"), State::Deployment)
        .await
        .ok();
    assert!(applied.contains("Applied"), "{applied}");
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    let cm = cms.get("dev-web").await.expect("the overlay's ConfigMap");
    assert_eq!(
        cm.data
            .clone()
            .unwrap_or_default()
            .get("level")
            .map(String::as_str),
        Some("one")
    );
    assert_eq!(
        cm.metadata
            .labels
            .unwrap_or_default()
            .get("env")
            .map(String::as_str),
        Some("dev")
    );

    // an edit after the dry-run builds other objects: no dry-run matches, the apply is refused
    d.call("kubectl", call("apply_dry_run"), State::Validation)
        .await
        .ok();
    layout(&ws, &ns, "two");
    let refused = d
        .call("kubectl", call("apply"), State::Deployment)
        .await
        .refused();
    assert!(refused.contains("dry-run"), "{refused}");
    let cm = cms.get("dev-web").await.expect("get");
    assert_eq!(
        cm.data.unwrap_or_default().get("level").map(String::as_str),
        Some("one"),
        "nothing was applied"
    );

    // the declared undo of an overlay apply is a restore of exactly what was built
    let reg = d.registry.get("kubectl").expect("kubectl");
    d.call("kubectl", call("apply_dry_run"), State::Validation)
        .await
        .ok();
    d.call("kubectl", call("apply"), State::Deployment)
        .await
        .ok();
    let follow = reg.tool.follow_ups(&call("apply"));
    let rb = follow.rollback.expect("an undo");
    assert_eq!(rb.arguments["operation"], "restore");
    assert!(
        rb.arguments["manifests"]
            .as_str()
            .is_some_and(|m| m.contains("level: two")),
        "{rb:?}"
    );
    let mut args = rb.arguments.clone();
    args["dry_run"] = json!(true);
    d.call("kubectl", args, State::Deployment).await.ok();
    d.call("kubectl", rb.arguments.clone(), State::Deployment)
        .await
        .ok();
    let cm = cms.get("dev-web").await.expect("get");
    assert_eq!(
        cm.data.unwrap_or_default().get("level").map(String::as_str),
        Some("one"),
        "restored to the object before the last apply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlays_outside_the_workspace_or_with_symlinks_are_refused() {
    let ns = common::namespace("kustomize-bad").await;
    let d = Driver::new(vec![], Some(Driver::dev_approver()));
    let ws = d.ctx.workspace.clone();
    layout(&ws, &ns, "one");
    for dir in ["../../etc", "/etc", "gitops/../../x"] {
        let out = d
            .call(
                "kubectl",
                json!({"operation": "apply_dry_run", "kustomize": dir, "namespace": ns}),
                State::Validation,
            )
            .await;
        assert!(!matches!(out, common::Outcome::Ok(_)), "{dir}: {out:?}");
    }
    // a symlink anywhere in the tree (here to a file outside) refuses the build
    let secret = tempfile::tempdir().expect("tempdir");
    std::fs::write(secret.path().join("s.yaml"), "top-secret-value").expect("write");
    std::os::unix::fs::symlink(
        secret.path().join("s.yaml"),
        ws.join("gitops/apps/web/base/leak.yaml"),
    )
    .expect("symlink");
    let out = d
        .call(
            "kubectl",
            json!({"operation": "apply_dry_run", "kustomize": "gitops/apps/web/overlays/dev", "namespace": ns}),
            State::Validation,
        )
        .await;
    let text = format!("{out:?}");
    assert!(!matches!(out, common::Outcome::Ok(_)), "{text}");
    assert!(text.contains("symlink"), "{text}");
    assert!(!text.contains("top-secret-value"), "{text}");
    // manifests and kustomize together are ambiguous
    let both = d
        .call(
            "kubectl",
            json!({"operation": "apply_dry_run", "kustomize": "gitops/apps/web/overlays/dev",
                "manifests": "kind: ConfigMap", "namespace": ns}),
            State::Validation,
        )
        .await
        .refused();
    assert!(both.contains("not both"), "{both}");
}
