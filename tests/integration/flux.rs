//! The flux tool on the real sandbox (Flux CRDs, no Flux controllers: the tests play the
//! controller through the status subresource where one is needed).

use crate::common;

use bosun::guard::GuardConfig;
use bosun::planner::State;
use common::Harness;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};

fn ks_ar() -> ApiResource {
    ApiResource {
        group: "kustomize.toolkit.fluxcd.io".into(),
        version: "v1".into(),
        api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
        kind: "Kustomization".into(),
        plural: "kustomizations".into(),
    }
}

async fn kustomization(ns: &str, name: &str) {
    common::create(json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"interval": "5m", "path": "./apps", "prune": true, "sourceRef": {"kind": "GitRepository", "name": "platform"}}}))
    .await;
}

fn ready(status: &str, reason: &str, msg: &str) -> Value {
    json!({"type": "Ready", "status": status, "reason": reason, "message": msg,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

/// Play the kustomize-controller once: when the requestedAt annotation appears, report it
/// handled and Ready.
fn fake_controller(ns: String, name: String) -> tokio::task::JoinHandle<Option<String>> {
    tokio::spawn(async move {
        let api: Api<DynamicObject> = Api::namespaced_with(common::kube().await, &ns, &ks_ar());
        for _ in 0..100 {
            let o = api.get(&name).await.ok()?;
            if let Some(token) = o
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("reconcile.fluxcd.io/requestedAt"))
                .cloned()
            {
                let gen = o.metadata.generation.unwrap_or(1);
                let status = json!({"status": {"lastHandledReconcileAt": token, "observedGeneration": gen,
                    "lastAppliedRevision": "main@sha1:0123abcd",
                    "conditions": [ready("True", "ReconciliationSucceeded", "Applied revision: main@sha1:0123abcd")]}});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .ok()?;
                return Some(token);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        None
    })
}

#[tokio::test]
async fn status_lists_every_flux_object_unhealthy_first_and_details_one() {
    let ns = common::namespace("fluxstatus").await;
    common::create(json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "platform", "namespace": ns},
        "spec": {"interval": "1m", "url": "https://git.example/platform.git", "ref": {"branch": "main"}}})).await;
    common::set_status("source.toolkit.fluxcd.io/v1", "GitRepository", &ns, "platform", json!({
        "artifact": {"revision": "main@sha1:feedbeef", "path": "x", "url": "http://x", "lastUpdateTime": "2026-01-01T00:00:00Z", "digest": "sha256:00"},
        "conditions": [ready("True", "Succeeded", "stored artifact for revision 'main@sha1:feedbeef'")]})).await;
    kustomization(&ns, "apps").await;
    common::set_status("kustomize.toolkit.fluxcd.io/v1", "Kustomization", &ns, "apps", json!({
        "conditions": [ready("False", "BuildFailed", "kustomize build failed: accumulating resources")]})).await;
    common::create(json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "minio", "namespace": ns},
        "spec": {"interval": "10m", "suspend": true, "chart": {"spec": {"chart": "minio", "version": "5.4.0",
            "sourceRef": {"kind": "HelmRepository", "name": "minio"}}}}})).await;

    let h = Harness::new(GuardConfig::default());
    let out = h
        .call(
            "flux",
            json!({"operation": "status", "namespace": ns}),
            State::Intake,
        )
        .await
        .expect("status");
    assert!(
        out.starts_with(&format!("3 Flux objects in namespace {ns}")),
        "{out}"
    );
    assert!(out.contains("1 NotReady, 1 Ready, 1 Suspended"), "{out}");
    assert!(
        out.contains("BuildFailed") && out.contains("main@sha1:feedbeef"),
        "{out}"
    );
    let (apps, platform) = (
        out.find(" apps ").expect("apps"),
        out.find(" platform ").expect("platform"),
    );
    assert!(apps < platform, "unhealthy first: {out}");

    let out = h
        .call(
            "flux",
            json!({"operation": "status", "kind": "ks", "name": "apps", "namespace": ns}),
            State::Intake,
        )
        .await
        .expect("detail");
    assert!(
        out.contains(&format!("Kustomization {ns}/apps"))
            && out.contains("Ready=False BuildFailed"),
        "{out}"
    );
    assert!(
        out.contains("path ./apps") && out.contains("source platform"),
        "{out}"
    );
    assert!(
        out.contains("observed never (the latest spec is not reconciled yet)"),
        "{out}"
    );
}

#[tokio::test]
async fn reconcile_needs_a_dry_run_sets_requested_at_and_waits_for_the_controller() {
    let ns = common::namespace("fluxrec").await;
    kustomization(&ns, "apps").await;
    let h = Harness::new(GuardConfig::default());
    let call = json!({"operation": "reconcile", "kind": "kustomization", "name": "apps", "namespace": ns, "timeout_seconds": 15});
    let e = h
        .call("flux", call.clone(), State::Deployment)
        .await
        .expect_err("no dry-run");
    assert!(
        e.contains("call flux reconcile with the same arguments and dry_run: true"),
        "{e}"
    );
    let mut dry = call.clone();
    dry["dry_run"] = json!(true);
    let out = h
        .call("flux", dry.clone(), State::Validation)
        .await
        .expect("dry-run");
    assert!(out.contains("would be accepted"), "{out}");
    let api: Api<DynamicObject> = Api::namespaced_with(common::kube().await, &ns, &ks_ar());
    let annotated = |o: &DynamicObject| {
        o.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("reconcile.fluxcd.io/requestedAt"))
            .cloned()
    };
    assert_eq!(
        annotated(&api.get("apps").await.expect("get")),
        None,
        "a dry-run changes nothing"
    );

    let controller = fake_controller(ns.clone(), "apps".into());
    let out = h
        .call("flux", call.clone(), State::Deployment)
        .await
        .expect("reconcile");
    let token = controller
        .await
        .expect("join")
        .expect("the controller saw the request");
    assert!(
        out.contains(&format!("Kustomization {ns}/apps: reconciled")),
        "{out}"
    );
    assert!(
        out.contains("Ready=True ReconciliationSucceeded") && out.contains("main@sha1:0123abcd"),
        "{out}"
    );
    // the request the controller observed is the one on the object
    assert_eq!(annotated(&api.get("apps").await.expect("get")), Some(token));

    // no controller: the request is made, the wait times out with a clear message
    h.call("flux", dry, State::Validation)
        .await
        .expect("dry-run");
    let mut short = call.clone();
    short["timeout_seconds"] = json!(2);
    let mut short_dry = short.clone();
    short_dry["dry_run"] = json!(true);
    h.call("flux", short_dry, State::Validation)
        .await
        .expect("dry-run");
    let e = h
        .call("flux", short, State::Deployment)
        .await
        .expect_err("nobody handles it");
    assert!(
        e.contains("the controller did not handle it") && e.contains("Is the Flux controller"),
        "{e}"
    );
}

#[tokio::test]
async fn suspend_and_resume_toggle_spec_suspend() {
    let ns = common::namespace("fluxsus").await;
    kustomization(&ns, "apps").await;
    let h = Harness::new(GuardConfig::default());
    let api: Api<DynamicObject> = Api::namespaced_with(common::kube().await, &ns, &ks_ar());
    let suspended = |o: DynamicObject| o.data["spec"]["suspend"] == json!(true);
    for (op, want) in [("suspend", true), ("resume", false)] {
        let call = json!({"operation": op, "kind": "Kustomization", "name": "apps", "namespace": ns, "timeout_seconds": 15});
        let mut dry = call.clone();
        dry["dry_run"] = json!(true);
        h.call("flux", dry, State::Validation)
            .await
            .expect("dry-run");
        let controller = (op == "resume").then(|| fake_controller(ns.clone(), "apps".into()));
        let out = h.call("flux", call, State::Deployment).await.expect(op);
        assert_eq!(
            suspended(api.get("apps").await.expect("get")),
            want,
            "{out}"
        );
        if let Some(c) = controller {
            c.await
                .expect("join")
                .expect("reconcile requested on resume");
            assert!(
                out.contains("resumed; ") && out.contains("reconciled"),
                "{out}"
            );
        }
    }
    // a suspended object is not reconciled: flux says to resume it
    let call = json!({"operation": "suspend", "kind": "ks", "name": "apps", "namespace": ns});
    let mut dry = call.clone();
    dry["dry_run"] = json!(true);
    h.call("flux", dry, State::Validation)
        .await
        .expect("dry-run");
    h.call("flux", call, State::Deployment)
        .await
        .expect("suspend");
    let rec = json!({"operation": "reconcile", "kind": "ks", "name": "apps", "namespace": ns});
    let mut dry = rec.clone();
    dry["dry_run"] = json!(true);
    let out = h
        .call("flux", dry, State::Validation)
        .await
        .expect("dry-run");
    assert!(out.contains("it is suspended, resume it first"), "{out}");
    let e = h
        .call("flux", rec, State::Deployment)
        .await
        .expect_err("suspended");
    assert!(e.contains("is suspended; resume it"), "{e}");
}

#[tokio::test]
async fn create_writes_server_checked_manifests_into_the_workspace_only() {
    let ns = common::namespace("fluxcreate").await;
    let h = Harness::new(GuardConfig::default());
    let args = json!({"operation": "render", "kind": "HelmRelease", "name": "minio", "namespace": ns,
        "chart": "minio", "version": "5.4.0", "source_name": "minio", "target_namespace": "minio",
        "values": "mode: standalone\nexistingSecret: minio-root\n"});
    // render and create are workspace-only: allowed while coding
    let rendered = h
        .call("flux", args.clone(), State::Coding)
        .await
        .expect("render");
    assert!(
        rendered.contains("kind: HelmRelease") && rendered.contains("version: \"5.4.0\""),
        "{rendered}"
    );
    assert!(
        rendered.contains("valid for the helm.toolkit.fluxcd.io/v2 CRD"),
        "{rendered}"
    );
    let mut create = args.clone();
    create["operation"] = json!("create");
    create["file"] = json!("gitops/clusters/dev/minio/helmrelease.yaml");
    let out = h
        .call("flux", create.clone(), State::Coding)
        .await
        .expect("create");
    assert!(
        out.starts_with("wrote gitops/clusters/dev/minio/helmrelease.yaml"),
        "{out}"
    );
    let path = h
        .ctx
        .workspace
        .join("gitops/clusters/dev/minio/helmrelease.yaml");
    let text = std::fs::read_to_string(&path).expect("file written");
    let v: Value = serde_saphyr::from_str(&text).expect("valid YAML");
    assert_eq!(v["spec"]["chart"]["spec"]["chart"], "minio");
    assert_eq!(v["spec"]["values"]["existingSecret"], "minio-root");
    // nothing was applied to the cluster
    let hr_ar = ApiResource {
        group: "helm.toolkit.fluxcd.io".into(),
        version: "v2".into(),
        api_version: "helm.toolkit.fluxcd.io/v2".into(),
        kind: "HelmRelease".into(),
        plural: "helmreleases".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(common::kube().await, &ns, &hr_ar);
    assert!(api.get_opt("minio").await.expect("get").is_none());

    // escaping the workspace, literal secrets and invalid objects are refused
    let mut escape = create.clone();
    escape["file"] = json!("../../etc/x.yaml");
    let e = h
        .call("flux", escape, State::Coding)
        .await
        .expect_err("escape");
    assert!(
        e.contains("relative .yaml path inside the workspace"),
        "{e}"
    );
    let mut literal = args.clone();
    literal["values"] = json!("auth:\n  rootPassword: hunter2hunter2\n");
    let e = h
        .call("flux", literal, State::Coding)
        .await
        .expect_err("literal secret");
    assert!(
        e.contains("auth.rootPassword") && !e.contains("hunter2hunter2"),
        "{e}"
    );
    let mut bad = args.clone();
    bad["interval"] = json!("every five minutes");
    let e = h
        .call("flux", bad, State::Coding)
        .await
        .expect_err("invalid interval");
    assert!(
        e.contains("invalid for the cluster's Flux CRD") && e.contains("interval"),
        "{e}"
    );
}
