//! The building-block catalog and `blocks.check_status` on the real sandbox: the tests set
//! status through the status subresource (no kubelet, no Flux controllers), and the sandbox's
//! controller-manager rolls pod readiness up into Deployments and Endpoints.

use crate::common;

use bosun::guard::GuardConfig;
use bosun::planner::State;
use common::Harness;
use serde_json::json;
use std::process::Command;

async fn check(h: &Harness, ns: &str, env: &str) -> Result<String, String> {
    h.call(
        "blocks",
        json!({"operation": "check_status", "block": "minio", "environment": env, "namespace": ns}),
        State::Verification,
    )
    .await
}

#[tokio::test]
async fn the_catalog_lists_and_shows_blocks_per_environment() {
    let h = Harness::new(GuardConfig::default());
    let out = h
        .call("blocks", json!({"operation": "list"}), State::Intake)
        .await
        .expect("list");
    assert!(
        out.contains("minio") && out.contains("minio 5.4.0") && out.contains("object-storage"),
        "{out}"
    );
    assert!(out.contains("kong") && out.contains("kong 2.38.0"), "{out}");
    let out = h
        .call(
            "blocks",
            json!({"operation": "show", "block": "minio", "environment": "prod"}),
            State::Intake,
        )
        .await
        .expect("show");
    assert!(
        out.contains("credential root password: vault:kv/platform/prod/minio#root-password"),
        "{out}"
    );
    assert!(
        out.contains("existingSecret: minio-root") && out.contains("Deployment minio"),
        "{out}"
    );
    let e = h
        .call(
            "blocks",
            json!({"operation": "show", "block": "nope"}),
            State::Intake,
        )
        .await
        .expect_err("unknown block");
    assert!(
        e.contains("no block `nope`") && e.contains("kong, minio"),
        "{e}"
    );
    // the default context of the sandbox is dev: prod needs its own context
    let e = h
        .call(
            "blocks",
            json!({"operation": "check_status", "block": "minio", "environment": "prod"}),
            State::Intake,
        )
        .await
        .expect_err("no prod context");
    assert!(
        e.contains("no kube context is known for environment prod"),
        "{e}"
    );
}

#[tokio::test]
async fn a_block_goes_missing_then_progressing_then_ready_then_degraded() {
    let ns = common::namespace("block").await;
    let h = Harness::new(GuardConfig::default());

    let out = check(&h, &ns, "dev").await.expect("check");
    assert!(out.contains("Verdict: Missing"), "{out}");
    assert!(
        out.contains("no HelmRelease for release minio") && out.contains("Deployment minio"),
        "{out}"
    );

    // Flux has the HelmRelease; the chart's objects exist, nothing is ready yet
    common::create(
        json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "minio", "namespace": ns},
        "spec": {"interval": "10m", "chart": {"spec": {"chart": "minio", "version": "5.4.0",
            "sourceRef": {"kind": "HelmRepository", "name": "minio"}}}}}),
    )
    .await;
    common::create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "minio", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "minio"}},
                 "template": {"metadata": {"labels": {"app": "minio"}},
                              "spec": {"containers": [{"name": "minio", "image": "quay.io/minio/minio:RELEASE.2024-12-18T13-15-44Z"}]}}}})).await;
    for (name, port) in [("minio", 9000), ("minio-console", 9001)] {
        common::create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": "minio"}, "ports": [{"port": port, "targetPort": port}]}})).await;
    }
    let out = check(&h, &ns, "dev").await.expect("check");
    assert!(out.contains("Verdict: Progressing"), "{out}");
    assert!(
        out.contains(&format!(
            "HelmRelease {ns}/minio has no Ready condition yet"
        )),
        "{out}"
    );
    assert!(
        out.contains("Deployment minio: 0/1 updated") || out.contains("Deployment minio: "),
        "{out}"
    );

    // the controller reports Ready; the pods become ready (kubelet's part, done by the test)
    common::set_status("helm.toolkit.fluxcd.io/v2", "HelmRelease", &ns, "minio", json!({
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "InstallSucceeded",
                        "message": "Helm install succeeded for release minio/minio.v1 with chart minio@5.4.0",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]})).await;
    common::mark_pods_ready(&ns, "app=minio", 1).await;
    let started = std::time::Instant::now();
    let out = loop {
        let out = check(&h, &ns, "dev").await.expect("check");
        if out.contains("Verdict: Ready") || started.elapsed().as_secs() > 30 {
            break out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert!(out.contains("Verdict: Ready"), "{out}");
    assert!(out.contains("Ready=True InstallSucceeded"), "{out}");
    assert!(
        out.contains("pods of minio: 1/1 ready")
            && out.contains("Service minio: 1 ready endpoint(s)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("minio.{ns}.svc:9000 (S3 API)")),
        "{out}"
    );
    assert!(
        out.contains("root password: vault:kv/platform/dev/minio#root-password"),
        "{out}"
    );

    // a crash-looping pod makes it Degraded, naming the pod
    let pods: kube::api::Api<k8s_openapi::api::core::v1::Pod> =
        kube::api::Api::namespaced(common::kube().await, &ns);
    let pod = pods
        .list(&kube::api::ListParams::default().labels("app=minio"))
        .await
        .expect("pods")
        .items
        .remove(0)
        .metadata
        .name
        .unwrap_or_default();
    common::set_status("v1", "Pod", &ns, &pod, json!({
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        "containerStatuses": [{"name": "minio", "image": "quay.io/minio/minio:RELEASE.2024-12-18T13-15-44Z", "imageID": "",
            "ready": false, "restartCount": 6, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}}]})).await;
    let out = check(&h, &ns, "dev").await.expect("check");
    assert!(out.contains("Verdict: Degraded"), "{out}");
    assert!(
        out.contains(&format!("pod {pod} CrashLoopBackOff (restarts 6)")),
        "{out}"
    );

    // suspended is never simply Ready
    let api: kube::api::Api<kube::api::DynamicObject> = kube::api::Api::namespaced_with(
        common::kube().await,
        &ns,
        &kube::discovery::ApiResource {
            group: "helm.toolkit.fluxcd.io".into(),
            version: "v2".into(),
            api_version: "helm.toolkit.fluxcd.io/v2".into(),
            kind: "HelmRelease".into(),
            plural: "helmreleases".into(),
        },
    );
    api.patch(
        "minio",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await
    .expect("suspend");
    let out = check(&h, &ns, "dev").await.expect("check");
    assert!(
        out.contains("(suspended: Flux does not reconcile it)"),
        "{out}"
    );
}

#[tokio::test]
async fn helm_release_records_are_read_from_a_real_helm_install() {
    let helm = bosun::sandbox::find_binary("helm3")
        .unwrap_or_else(|| panic!("`helm3` is not installed: run scripts/install-deps.sh"));
    let ns = common::namespace("helmblock").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let st = common::sandbox();
    let run = |args: &[&str]| {
        let out = Command::new(&helm)
            .current_dir(tmp.path())
            .args(args)
            .env("KUBECONFIG", &st.kubeconfig)
            .env("HELM_CACHE_HOME", tmp.path().join("cache"))
            .env("HELM_CONFIG_HOME", tmp.path().join("config"))
            .env("HELM_DATA_HOME", tmp.path().join("data"))
            .output()
            .expect("running helm");
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // a chart named minio renders a Deployment and a Service named like the release
    run(&["create", "minio"]);
    run(&["install", "minio", "./minio", "--namespace", &ns]);
    let h = Harness::new(GuardConfig::default());
    let out = check(&h, &ns, "dev").await.expect("check");
    assert!(
        out.contains(
            "Helm release minio revision 1 deployed (chart minio-0.1.0): Install complete"
        ),
        "{out}"
    );
    // the release claims deployed but the block's console Service does not exist: Degraded
    assert!(out.contains("Verdict: Degraded"), "{out}");
    assert!(
        out.contains("missing: Service minio-console although the release is deployed"),
        "{out}"
    );
}

#[test]
fn bosun_validate_reports_a_broken_block_with_its_position() {
    let d = tempfile::tempdir().expect("tempdir");
    let root = common::repo_root();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        let out = Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .output()
            .expect("cp");
        assert!(out.status.success());
    };
    std::fs::copy(root.join("agent.md"), d.path().join("agent.md")).expect("agent.md");
    for sub in ["skills", "tools", "prompts", "blocks"] {
        copy(&root.join(sub), &d.path().join(sub));
    }
    let kong = d.path().join("blocks/kong.md");
    let text = std::fs::read_to_string(&kong).expect("read");
    std::fs::write(&kong, text.replace("version: 2.38.0", "version: latest")).expect("write");
    let home = tempfile::tempdir().expect("home");
    let out = common::bosun_cmd(home.path())
        .arg("--agent")
        .arg(d.path())
        .arg("validate")
        .output()
        .expect("run bosun validate");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let want = format!(
        "{}:12:5: error: deploy.chart.version `latest` is not a pinned version",
        kong.display()
    );
    assert!(err.contains(&want), "expected {want} in:\n{err}");
}
