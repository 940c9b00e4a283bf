//! The kubectl tool on the real sandbox, driven through the real guard as the runtime does.

use crate::common;

use bosun::guard::{GuardConfig, PolicyApprover};
use bosun::planner::State;
use bosun::policy::Environment;
use common::Harness;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::Api;
use serde_json::{json, Value};
use std::sync::Arc;

const V: State = State::Validation;
const D: State = State::Deployment;

fn approving() -> GuardConfig {
    GuardConfig {
        approver: Arc::new(PolicyApprover {
            environments: vec![Environment::Dev],
            others: true,
            who: "test".into(),
        }),
        ..Default::default()
    }
}

/// Server-side dry-run of `manifests` in validation, then the identical apply in deployment.
async fn dry_run_and_apply(h: &Harness, ns: &str, manifests: &str, what: &str) -> String {
    h.call(
        "kubectl",
        kc(ns, "apply_dry_run", json!({"manifests": manifests})),
        V,
    )
    .await
    .unwrap_or_else(|e| panic!("dry-run before {what}: {e}"));
    h.call(
        "kubectl",
        kc(ns, "apply", json!({"manifests": manifests})),
        D,
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn kc(ns: &str, op: &str, extra: Value) -> Value {
    let mut v = json!({"operation": op, "namespace": ns});
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v
}

fn deployment(name: &str, image: &str, replicas: i64) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: {image}
        resources:
          requests: {{cpu: 50m, memory: 32Mi}}
          limits: {{cpu: 100m, memory: 64Mi}}
"#
    )
}

const CM: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: blue\n";

#[tokio::test]
async fn apply_needs_the_identical_dry_run_first() {
    let ns = common::namespace("apply").await;
    let h = Harness::new(GuardConfig::default());
    let apply = kc(&ns, "apply", json!({"manifests": CM}));

    // no dry-run yet: refused, with the call to make
    let r = h.call("kubectl", apply.clone(), D).await;
    let e = r.expect_err("apply without a dry-run must be refused");
    assert!(
        e.starts_with("refused:")
            && e.contains("call kubectl apply_dry_run with the same manifests"),
        "{e}"
    );
    // and nothing was created
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("settings").await.expect("get").is_none());

    let out = h
        .call(
            "kubectl",
            kc(&ns, "apply_dry_run", json!({"manifests": CM})),
            V,
        )
        .await
        .expect("dry-run passes");
    assert!(
        out.contains(&format!("ConfigMap {ns}/settings: would be created")),
        "{out}"
    );
    assert!(out.contains("nothing persisted"), "{out}");
    assert!(
        cms.get_opt("settings").await.expect("get").is_none(),
        "a dry-run must not persist"
    );

    let out = h
        .call("kubectl", apply.clone(), D)
        .await
        .expect("apply after the dry-run");
    assert!(
        out.contains(&format!("ConfigMap {ns}/settings: created")),
        "{out}"
    );
    let cm = cms.get("settings").await.expect("created");
    assert_eq!(
        cm.data.unwrap_or_default().get("mode").map(String::as_str),
        Some("blue")
    );
    let managers: Vec<String> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"bosun".to_string()), "{managers:?}");

    // the dry-run was used up
    let e = h
        .call("kubectl", apply.clone(), D)
        .await
        .expect_err("second apply");
    assert!(e.contains("no successful dry-run"), "{e}");

    // an edited manifest is a different change: the old dry-run does not cover it
    let edited = CM.replace("blue", "green");
    h.call(
        "kubectl",
        kc(&ns, "apply_dry_run", json!({"manifests": CM})),
        V,
    )
    .await
    .expect("dry-run of the old content");
    let e = h
        .call("kubectl", kc(&ns, "apply", json!({"manifests": edited})), D)
        .await
        .expect_err("edited manifest");
    assert!(e.starts_with("refused:"), "{e}");
    let out = h
        .call(
            "kubectl",
            kc(&ns, "apply_dry_run", json!({"manifests": edited})),
            V,
        )
        .await
        .expect("dry-run of the edit");
    assert!(
        out.contains("settings: would be configured (2 lines differ)"),
        "{out}"
    );
    let out = h
        .call("kubectl", kc(&ns, "apply", json!({"manifests": edited})), D)
        .await
        .expect("apply the edit");
    assert!(out.contains("configured"), "{out}");
    assert_eq!(
        cms.get("settings")
            .await
            .expect("get")
            .data
            .unwrap_or_default()
            .get("mode")
            .map(String::as_str),
        Some("green")
    );
    // applying the same content again reports it unchanged
    h.call(
        "kubectl",
        kc(&ns, "apply", json!({"manifests": edited, "dry_run": true})),
        V,
    )
    .await
    .expect("dry-run via the flag");
    let out = h
        .call("kubectl", kc(&ns, "apply", json!({"manifests": edited})), D)
        .await
        .expect("re-apply");
    assert!(out.contains("settings: unchanged"), "{out}");
}

#[tokio::test]
async fn the_server_dry_run_rejects_invalid_objects_and_checks_block_bad_manifests() {
    let ns = common::namespace("invalid").await;
    let h = Harness::new(GuardConfig::default());
    // no selector, no containers: the API server rejects it
    let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: bad\nspec:\n  template:\n    metadata:\n      labels: {app: bad}\n    spec:\n      containers: []\n";
    let e = h
        .call(
            "kubectl",
            kc(&ns, "apply_dry_run", json!({"manifests": bad})),
            V,
        )
        .await
        .expect_err("invalid object");
    assert!(
        e.contains("rejected by the server") && e.contains("selector"),
        "{e}"
    );
    // a failed dry-run does not authorise the apply
    let e = h
        .call("kubectl", kc(&ns, "apply", json!({"manifests": bad})), D)
        .await
        .expect_err("apply after a failed dry-run");
    assert!(e.contains("no successful dry-run"), "{e}");

    // bosun's checks: an unpinned image never reaches the server
    let latest = deployment("web", "nginx:latest", 1);
    let e = h
        .call(
            "kubectl",
            kc(&ns, "apply_dry_run", json!({"manifests": latest})),
            V,
        )
        .await
        .expect_err("unpinned image");
    assert!(
        e.contains("fails bosun's checks") && e.contains("nginx:latest"),
        "{e}"
    );

    // an unknown field in a built-in kind: the server rejects the typed patch
    let typo = deployment("web", "nginx:1.27.2", 1)
        .replace("  replicas: 1\n", "  replicas: 1\n  replicass: 2\n");
    let e = h
        .call(
            "kubectl",
            kc(&ns, "apply_dry_run", json!({"manifests": typo})),
            V,
        )
        .await
        .expect_err("unknown field");
    assert!(
        e.contains("unknown field") && e.contains(".spec.replicass"),
        "{e}"
    );
    // and in a custom resource, against its CRD schema
    let ks = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: apps\nspec:\n  interval: 5m\n  prune: true\n  intervall: 1m\n  sourceRef: {kind: GitRepository, name: platform}\n";
    let e = h
        .call(
            "kubectl",
            kc(&ns, "apply_dry_run", json!({"manifests": ks})),
            V,
        )
        .await
        .expect_err("unknown field in a custom resource");
    assert!(
        e.contains("unknown field") && e.contains(".spec.intervall"),
        "{e}"
    );
}

#[tokio::test]
async fn diff_shows_a_compact_unified_diff_and_hides_secret_values() {
    let ns = common::namespace("diff").await;
    let h = Harness::new(GuardConfig::default());
    dry_run_and_apply(&h, &ns, CM, "apply").await;
    let out = h
        .call(
            "kubectl",
            kc(
                &ns,
                "diff",
                json!({"manifests": CM.replace("blue", "green")}),
            ),
            V,
        )
        .await
        .expect("diff");
    assert!(
        out.contains("-  mode: blue") && out.contains("+  mode: green"),
        "{out}"
    );
    assert!(out.contains("@@"), "{out}");
    assert!(!out.contains("managedFields"), "{out}");
    // diff changes nothing and authorises nothing
    assert_eq!(h.guard.dry_runs(), 0);

    // a literal secret fails the checks (a diff runs them too), without echoing the value
    let literal = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: new-secret-value-2\n";
    let e = h
        .call("kubectl", kc(&ns, "diff", json!({"manifests": literal})), V)
        .await
        .expect_err("literal secret");
    assert!(e.contains("stringData.password is a literal value"), "{e}");
    assert!(!e.contains("new-secret-value-2"), "{e}");

    // a Secret's values never appear in a diff, but a changed key is marked
    let h = Harness::new(GuardConfig::default()).with_vault();
    let path = common::vault_path();
    common::vault_write(&path, json!({"password": "new-secret-value-2"})).await;
    common::create(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns},
        "stringData": {"password": "old-secret-value-1", "user": "admin-user"}}),
    )
    .await;
    let m = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: vault:secret/{path}#password\n  user: vault:secret/{path}#password\n");
    let out = h
        .call("kubectl", kc(&ns, "diff", json!({"manifests": m})), V)
        .await
        .expect("diff of a secret");
    assert!(out.contains("<hidden, changed>"), "{out}");
    for v in [
        "new-secret-value-2",
        "old-secret-value-1",
        "admin-user",
        "bmV3LXNlY3JldC12YWx1ZS0y",
    ] {
        assert!(!out.contains(v), "{v} leaked: {out}");
    }
    let secrets: Api<Secret> = Api::namespaced(common::kube().await, &ns);
    let data = secrets
        .get("db")
        .await
        .expect("secret")
        .data
        .unwrap_or_default();
    assert_eq!(
        data.get("password").map(|b| b.0.clone()),
        Some(b"old-secret-value-1".to_vec()),
        "a diff changes nothing"
    );
}

#[tokio::test]
async fn vault_references_are_resolved_for_the_server_and_never_shown() {
    let ns = common::namespace("vault").await;
    let h = Harness::new(GuardConfig::default()).with_vault();
    let path = common::vault_path();
    common::vault_write(&path, json!({"password": "s3cr3t-from-vault-42"})).await;
    let m = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\nstringData:\n  password: vault:secret/{path}#password\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app2\ndata:\n  password: vault:secret/{path}#password\n"
    );
    let dry = h
        .call(
            "kubectl",
            kc(&ns, "apply_dry_run", json!({"manifests": m})),
            V,
        )
        .await
        .expect("dry-run resolves the reference");
    let out = h
        .call("kubectl", kc(&ns, "apply", json!({"manifests": m})), D)
        .await
        .expect("apply");
    let secrets: Api<Secret> = Api::namespaced(common::kube().await, &ns);
    for name in ["app", "app2"] {
        let s = secrets.get(name).await.expect("secret exists");
        let v = s
            .data
            .unwrap_or_default()
            .get("password")
            .map(|b| b.0.clone());
        assert_eq!(v, Some(b"s3cr3t-from-vault-42".to_vec()), "{name}");
    }
    let got = h
        .call("kubectl", kc(&ns, "get", json!({"kind": "secrets"})), V)
        .await
        .expect("get");
    let described = h
        .call(
            "kubectl",
            kc(&ns, "describe", json!({"kind": "secret", "name": "app"})),
            V,
        )
        .await
        .expect("describe");
    for text in [&dry, &out, &got, &described] {
        assert!(!text.contains("s3cr3t-from-vault-42"), "{text}");
        assert!(
            !text.contains("czNjcjN0LWZyb20tdmF1bHQtNDI"),
            "base64 leaked: {text}"
        );
    }
    assert!(got.contains("keys: password"), "{got}");
    assert!(described.contains("<hidden, "), "{described}");
    // the value is known to the redactor, so the session would mask it anywhere
    assert_eq!(
        h.ctx.redactor.redact("x s3cr3t-from-vault-42"),
        "x [REDACTED]"
    );
    // a missing reference is a clear error without any value
    let missing = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  k: vault:secret/{path}-nope#k\n");
    let e = h
        .call(
            "kubectl",
            kc(&ns, "apply_dry_run", json!({"manifests": missing})),
            V,
        )
        .await
        .expect_err("missing reference");
    assert!(e.contains("does not exist"), "{e}");
}

#[tokio::test]
async fn scale_restart_undo_annotate_and_label_each_need_their_dry_run() {
    let ns = common::namespace("ops").await;
    let h = Harness::new(GuardConfig::default());
    let v1 = deployment("web", "nginx:1.27.1", 1);
    dry_run_and_apply(&h, &ns, &v1, "apply v1").await;
    let deps: Api<Deployment> = Api::namespaced(common::kube().await, &ns);

    // scale
    let scale = kc(
        &ns,
        "scale",
        json!({"kind": "deploy", "name": "web", "replicas": 3}),
    );
    let e = h
        .call("kubectl", scale.clone(), D)
        .await
        .expect_err("no dry-run");
    assert!(
        e.contains("call kubectl scale with the same arguments and dry_run: true"),
        "{e}"
    );
    let mut dry = scale.clone();
    dry["dry_run"] = json!(true);
    let out = h.call("kubectl", dry, V).await.expect("scale dry-run");
    assert!(
        out.contains("scaled from 1 to 3") && out.contains("dry-run"),
        "{out}"
    );
    assert_eq!(
        deps.get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(1)
    );
    let out = h.call("kubectl", scale, D).await.expect("scale");
    assert!(out.contains("scaled from 1 to 3"), "{out}");
    assert_eq!(
        deps.get("web")
            .await
            .expect("get")
            .spec
            .and_then(|s| s.replicas),
        Some(3)
    );

    // label and annotate (with removal)
    for (op, field, pairs) in [
        ("label", "labels", "team=shop,app-"),
        ("annotate", "annotations", "owner=platform"),
    ] {
        let call = kc(
            &ns,
            op,
            json!({"kind": "deployment", "name": "web", field: pairs}),
        );
        let mut dry = call.clone();
        dry["dry_run"] = json!(true);
        h.call("kubectl", dry, V).await.expect("dry-run");
        let out = h.call("kubectl", call, D).await.expect(op);
        assert!(out.contains(field), "{out}");
    }
    let d = deps.get("web").await.expect("get");
    let labels = d.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("shop"));
    assert!(!labels.contains_key("app"), "label removed: {labels:?}");
    assert_eq!(
        d.metadata
            .annotations
            .unwrap_or_default()
            .get("owner")
            .map(String::as_str),
        Some("platform")
    );

    // restart
    let restart = kc(
        &ns,
        "rollout_restart",
        json!({"kind": "deployment", "name": "web"}),
    );
    let mut dry = restart.clone();
    dry["dry_run"] = json!(true);
    h.call("kubectl", dry, V).await.expect("dry-run");
    h.call("kubectl", restart, D).await.expect("restart");
    let d = deps.get("web").await.expect("get");
    let ann = d
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert!(
        ann.contains_key("kubectl.kubernetes.io/restartedAt"),
        "{ann:?}"
    );

    // a new image, then undo back to the template of the revision before it
    let v2 = deployment("web", "nginx:1.27.2", 3);
    dry_run_and_apply(&h, &ns, &v2, "apply v2").await;
    // the deployment controller records revisions in ReplicaSets
    let started = std::time::Instant::now();
    loop {
        let d = deps.get("web").await.expect("get");
        let rev = d
            .metadata
            .annotations
            .unwrap_or_default()
            .get("deployment.kubernetes.io/revision")
            .cloned();
        if rev.as_deref() == Some("3") {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 90,
            "revision 3 never appeared: {rev:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let undo = kc(
        &ns,
        "rollout_undo",
        json!({"kind": "deployment", "name": "web"}),
    );
    let mut dry = undo.clone();
    dry["dry_run"] = json!(true);
    let out = h.call("kubectl", dry, V).await.expect("undo dry-run");
    assert!(
        out.contains("from revision 3 to the pod template of revision 2"),
        "{out}"
    );
    h.call("kubectl", undo, D).await.expect("undo");
    let image = deps
        .get("web")
        .await
        .expect("get")
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].image.clone().unwrap_or_default());
    assert_eq!(image.as_deref(), Some("nginx:1.27.1"));
}

#[tokio::test]
async fn delete_is_destructive_and_needs_an_approval() {
    let ns = common::namespace("delete").await;
    common::pod_with_status(&ns, "victim", true, None, 0).await;
    let call = kc(&ns, "delete", json!({"kind": "pod", "name": "victim"}));
    let mut dry = call.clone();
    dry["dry_run"] = json!(true);

    // nobody approves: refused after a successful dry-run
    let h = Harness::new(GuardConfig::default());
    let out = h.call("kubectl", dry.clone(), V).await.expect("dry-run");
    assert!(
        out.contains("would delete 1 pods") && out.contains("victim"),
        "{out}"
    );
    let e = h
        .call("kubectl", call.clone(), D)
        .await
        .expect_err("no approver");
    assert!(e.contains("needs human approval"), "{e}");
    let pods: Api<Pod> = Api::namespaced(common::kube().await, &ns);
    assert!(pods.get_opt("victim").await.expect("get").is_some());

    // an approver for dev approves
    let h = Harness::new(approving());
    h.call("kubectl", dry, V).await.expect("dry-run");
    let out = h.call("kubectl", call, D).await.expect("approved delete");
    assert!(out.contains("deleted 1 pods"), "{out}");
    assert!(pods.get_opt("victim").await.expect("get").is_none());

    // a selector-less, name-less delete is not even planned
    let e = h
        .call(
            "kubectl",
            kc(&ns, "delete", json!({"kind": "pods", "dry_run": true})),
            V,
        )
        .await
        .expect_err("no target");
    assert!(
        e.contains("needs a `name` or a non-empty `label_selector`"),
        "{e}"
    );
}

#[tokio::test]
async fn rbac_denial_is_a_clear_tool_error_and_auth_can_i_tells_in_advance() {
    let ns = common::namespace("rbac").await;
    common::create(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bot", "namespace": ns}})).await;
    // a kubeconfig that impersonates the ServiceAccount
    let st = common::sandbox();
    let admin = std::fs::read_to_string(&st.kubeconfig).expect("kubeconfig");
    let token = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .expect("admin token")
        .to_string();
    let server = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server");
    let ca = admin
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority: "))
        .expect("ca");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("bot.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: bot\n  user:\n    token: {token}\n    as: system:serviceaccount:{ns}:bot\ncontexts:\n- name: bot-dev\n  context: {{cluster: c, user: bot, namespace: {ns}}}\ncurrent-context: bot-dev\n"),
    )
    .expect("write kubeconfig");

    let admin_h = Harness::new(GuardConfig::default());
    let out = admin_h
        .call(
            "kubectl",
            kc(
                &ns,
                "auth_can_i",
                json!({"verb": "list", "kind": "pods", "as_service_account": format!("{ns}/bot")}),
            ),
            V,
        )
        .await
        .expect("can-i");
    assert!(out.starts_with("no:"), "{out}");

    let bot = Harness::with_kubeconfig(GuardConfig::default(), kubeconfig);
    let e = bot
        .call("kubectl", json!({"operation": "get", "kind": "pods"}), V)
        .await
        .expect_err("forbidden");
    assert!(e.contains("forbidden by RBAC in context bot-dev"), "{e}");
    assert!(
        e.contains(&format!("system:serviceaccount:{ns}:bot")),
        "{e}"
    );
    let out = bot
        .call(
            "kubectl",
            json!({"operation": "auth_can_i", "verb": "list", "kind": "pods"}),
            V,
        )
        .await
        .expect("self can-i");
    assert!(out.starts_with("no:"), "{out}");
    // a dry-run the identity may not do is a clear error too
    let e = bot
        .call(
            "kubectl",
            json!({"operation": "apply_dry_run", "manifests": CM}),
            V,
        )
        .await
        .expect_err("forbidden dry-run");
    assert!(e.contains("forbidden by RBAC"), "{e}");

    common::create(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "read-pods", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})).await;
    common::create(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "bot-reads", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
        "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": ns}]})).await;
    let out = admin_h
        .call(
            "kubectl",
            kc(
                &ns,
                "auth_can_i",
                json!({"verb": "list", "kind": "pods", "as_service_account": format!("{ns}/bot")}),
            ),
            V,
        )
        .await
        .expect("can-i");
    assert!(out.starts_with("yes:"), "{out}");
    let out = bot
        .call("kubectl", json!({"operation": "get", "kind": "pods"}), V)
        .await
        .expect("allowed now");
    assert!(out.starts_with("No pods found"), "{out}");
}

#[tokio::test]
async fn rollout_status_and_wait_report_progress_then_success() {
    let ns = common::namespace("rollout").await;
    let h = Harness::new(GuardConfig::default());
    let m = deployment("api", "nginx:1.27.2", 2);
    dry_run_and_apply(&h, &ns, &m, "apply").await;
    let started = std::time::Instant::now();
    let e = h
        .call(
            "kubectl",
            kc(
                &ns,
                "rollout_status",
                json!({"kind": "deployment", "name": "api", "timeout_seconds": 2}),
            ),
            V,
        )
        .await
        .expect_err("pods are not ready");
    assert!(
        e.contains("rollout not complete after") && e.contains("0/2 available"),
        "{e}"
    );
    assert!(
        started.elapsed().as_secs() < 6,
        "the timeout was not honoured"
    );
    let e = h
        .call("kubectl", kc(&ns, "wait", json!({"kind": "deployment", "name": "api", "wait_for": "condition=Available", "timeout_seconds": 1})), V)
        .await
        .expect_err("not available");
    // the controller may not have written the condition yet on a busy machine: either way it is
    // reported as not available
    assert!(
        e.contains("timed out")
            && (e.contains("Available=False") || e.contains("no Available condition yet")),
        "{e}"
    );

    common::mark_pods_ready(&ns, "app=api", 2).await;
    let out = h
        .call(
            "kubectl",
            kc(
                &ns,
                "rollout_status",
                json!({"kind": "deployment", "name": "api", "timeout_seconds": 30}),
            ),
            V,
        )
        .await
        .expect("rolled out");
    assert!(
        out.contains("successfully rolled out: 2/2 updated, 2/2 available"),
        "{out}"
    );
    let out = h
        .call("kubectl", kc(&ns, "wait", json!({"kind": "deployment", "name": "api", "wait_for": "condition=Available", "timeout_seconds": 20})), V)
        .await
        .expect("available");
    assert!(
        out.contains("condition=Available met for 1 deployments"),
        "{out}"
    );
    let out = h
        .call("kubectl", kc(&ns, "wait", json!({"kind": "pods", "label_selector": "app=api", "wait_for": "jsonpath={.status.phase}=Running", "timeout_seconds": 5})), V)
        .await
        .expect("pods running");
    assert!(out.contains("met for 2 pods"), "{out}");

    // describe: object, owner chain and events, without managedFields
    let pod = common::mark_pods_ready(&ns, "app=api", 2).await.remove(0);
    let out = h
        .call(
            "kubectl",
            kc(&ns, "describe", json!({"kind": "pod", "name": pod})),
            V,
        )
        .await
        .expect("describe");
    assert!(
        out.contains("owners: ReplicaSet/api-") && out.contains("→ Deployment/api"),
        "{out}"
    );
    assert!(!out.contains("managedFields"), "{out}");
    let out = h
        .call(
            "kubectl",
            kc(&ns, "get", json!({"kind": "pods", "wide": true})),
            V,
        )
        .await
        .expect("get wide");
    assert!(
        out.contains("2 pods in namespace") && out.contains("10.1.0.") && out.contains("NODE"),
        "{out}"
    );
}

#[tokio::test]
async fn logs_of_an_unscheduled_pod_say_why_and_events_put_warnings_first() {
    let ns = common::namespace("events").await;
    common::pod_with_status(&ns, "web-1", false, Some("CrashLoopBackOff"), 5).await;
    let pods: Api<Pod> = Api::namespaced(common::kube().await, &ns);
    let uid = pods
        .get("web-1")
        .await
        .expect("pod")
        .metadata
        .uid
        .unwrap_or_default();
    let h = Harness::new(GuardConfig::default());
    let e = h
        .call(
            "kubectl",
            kc(&ns, "logs", json!({"name": "web-1", "tail_lines": 20})),
            V,
        )
        .await
        .expect_err("no node, no logs");
    assert!(e.contains("not scheduled to a node"), "{e}");

    for (i, (t, reason, msg)) in [
        ("Normal", "Pulled", "Successfully pulled image"),
        ("Warning", "BackOff", "Back-off restarting failed container"),
        ("Normal", "Created", "Created container main"),
    ]
    .into_iter()
    .enumerate()
    {
        common::create(json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("web-1.{i}"), "namespace": ns},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": ns, "uid": uid},
            "type": t, "reason": reason, "message": msg, "count": 1 + i,
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
            "source": {"component": "kubelet"}}))
        .await;
    }
    let out = h
        .call("kubectl", kc(&ns, "events", json!({})), V)
        .await
        .expect("events");
    assert!(
        out.starts_with("3 events in namespace") && out.contains("2 Normal, 1 Warning"),
        "{out}"
    );
    let warn = out.find("BackOff").expect("warning listed");
    assert!(
        warn < out.find("Pulled").expect("normal listed"),
        "warnings first: {out}"
    );
    let out = h
        .call(
            "kubectl",
            kc(
                &ns,
                "events",
                json!({"warnings_only": true, "kind": "pod", "name": "web-1"}),
            ),
            V,
        )
        .await
        .expect("warnings");
    assert!(out.contains("BackOff") && !out.contains("Pulled"), "{out}");
    let out = h
        .call(
            "kubectl",
            kc(&ns, "describe", json!({"kind": "pod", "name": "web-1"})),
            V,
        )
        .await
        .expect("describe");
    assert!(
        out.contains("CrashLoopBackOff") && out.contains("events of Pod/web-1 (3)"),
        "{out}"
    );
}

#[tokio::test]
async fn drain_cordons_evicts_and_respects_disruption_budgets() {
    let ns = common::namespace("drain").await;
    let node = format!("node-{}", common::suffix());
    common::create(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})).await;
    for name in ["guarded", "free"] {
        common::create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "registry.example/app:1.0.0"}]}})).await;
    }
    common::mark_pods_ready(&ns, "app=guarded", 1).await;
    common::mark_pods_ready(&ns, "app=free", 1).await;
    common::create(json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "metadata": {"name": "guarded", "namespace": ns},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}})).await;

    let h = Harness::new(approving());
    let drain = json!({"operation": "drain", "name": node, "timeout_seconds": 4});
    let mut dry = drain.clone();
    dry["dry_run"] = json!(true);
    // bare pods would not come back: refused before anything changes
    let e = h.call("kubectl", dry, V).await.expect_err("unmanaged pods");
    assert!(
        e.contains("has no controller") && e.contains("force: true"),
        "{e}"
    );
    let nodes: Api<Node> = Api::all(common::kube().await);
    assert_ne!(
        nodes
            .get(&node)
            .await
            .expect("node")
            .spec
            .and_then(|s| s.unschedulable),
        Some(true)
    );

    let forced = json!({"operation": "drain", "name": node, "force": true, "timeout_seconds": 4});
    let mut dry = forced.clone();
    dry["dry_run"] = json!(true);
    let e = h
        .call("kubectl", dry, V)
        .await
        .expect_err("the PDB blocks one pod");
    assert!(
        e.contains("would evict 1 pod(s)") && e.contains("free"),
        "{e}"
    );
    assert!(
        e.contains("blocked by a PodDisruptionBudget") && e.contains("guarded"),
        "{e}"
    );
    // a failed dry-run authorises nothing
    let e = h
        .call("kubectl", forced.clone(), D)
        .await
        .expect_err("no successful dry-run");
    assert!(e.contains("no successful dry-run"), "{e}");

    // without the budget the dry-run passes, and the drain runs
    let pdb_ar = kube::discovery::ApiResource {
        group: "policy".into(),
        version: "v1beta1".into(),
        api_version: "policy/v1beta1".into(),
        kind: "PodDisruptionBudget".into(),
        plural: "poddisruptionbudgets".into(),
    };
    let pdbs: Api<kube::api::DynamicObject> =
        Api::namespaced_with(common::kube().await, &ns, &pdb_ar);
    pdbs.delete("guarded", &Default::default())
        .await
        .expect("delete the PDB");
    let mut dry = forced.clone();
    dry["dry_run"] = json!(true);
    let mut last = String::new();
    for _ in 0..20 {
        match h.call("kubectl", dry.clone(), V).await {
            Ok(out) => {
                last = out;
                break;
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(last.contains("would evict 2 pod(s)"), "{last}");
    let out = h.call("kubectl", forced, D).await.expect("drain");
    assert!(
        out.contains(&format!("node {node} cordoned")) && out.contains("evicted 2 pod(s)"),
        "{out}"
    );
    assert_eq!(
        nodes
            .get(&node)
            .await
            .expect("node")
            .spec
            .and_then(|s| s.unschedulable),
        Some(true)
    );
    let pods: Api<Pod> = Api::namespaced(common::kube().await, &ns);
    for name in ["guarded", "free"] {
        let p = pods.get_opt(name).await.expect("get");
        assert!(
            p.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
            "{name} was not evicted"
        );
    }
}

#[tokio::test]
async fn a_large_listing_reaches_the_model_summarised() {
    let ns = common::namespace("many").await;
    let client = common::kube().await;
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let names: Vec<String> = (0..300).map(|i| format!("w-{i:03}")).collect();
    futures::future::join_all(names.iter().map(|n| {
        let pods = pods.clone();
        let n = n.clone();
        async move {
            let p: Pod =
                serde_json::from_value(json!({"metadata": {"name": n, "labels": {"app": "w"}},
                "spec": {"containers": [{"name": "main", "image": "registry.example/app:1.0.0"}]}}))
                .expect("pod");
            pods.create(&Default::default(), &p)
                .await
                .expect("create pod");
        }
    }))
    .await;
    common::mark_pods_ready(&ns, "app=w", 300).await;
    for (i, reason) in [
        (7, "CrashLoopBackOff"),
        (150, "ImagePullBackOff"),
        (299, "CrashLoopBackOff"),
    ] {
        common::set_status("v1", "Pod", &ns, &names[i], json!({"containerStatuses": [{"name": "main", "image": "registry.example/app:1.0.0", "imageID": "",
            "ready": false, "restartCount": 9, "state": {"waiting": {"reason": reason}}}]})).await;
    }
    let h = Harness::new(GuardConfig::default());
    let out = h
        .call("kubectl", kc(&ns, "get", json!({"kind": "pods"})), V)
        .await
        .expect("get");
    assert!(
        out.starts_with(&format!("300 pods in namespace {ns}")),
        "{out}"
    );
    assert!(
        out.contains("297 Running, 2 CrashLoopBackOff, 1 ImagePullBackOff"),
        "{out}"
    );
    for i in [7, 150, 299] {
        assert!(out.contains(&names[i]), "{} missing: {out}", names[i]);
    }
    assert!(
        out.contains("more healthy not shown (") && out.contains("narrow it"),
        "{out}"
    );
    assert!(
        bosun::compact::estimate_tokens(&out) <= bosun::compact::DEFAULT_RESULT_TOKENS,
        "{out}"
    );
}
