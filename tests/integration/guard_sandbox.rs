//! The guard's rules on the real sandbox, through the real kubectl tool: a prod change waits
//! for approval, the approval is bound to the exact change (a different manifest needs a new
//! one), the approver is shown what the change does (the dry-run's diff against the live
//! objects, Secret data masked), and kube-system is not writable.

use crate::common;

use bosun::guard::{ApprovalDecision, ApprovalRequest, Approver, GuardConfig};
use bosun::planner::State;
use common::Harness;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Approves when switched on; remembers every request's change fingerprint.
#[derive(Default)]
struct Human {
    yes: AtomicBool,
    asked: Mutex<Vec<String>>,
    /// What each request showed as the change.
    diffs: Mutex<Vec<Option<String>>>,
}

impl Approver for Human {
    fn decide<'a>(&'a self, req: &'a ApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        Box::pin(async move {
            if let Ok(mut a) = self.asked.lock() {
                a.push(format!("{}:{}", req.reason, req.fingerprint));
            }
            if let Ok(mut d) = self.diffs.lock() {
                d.push(req.diff.clone());
            }
            if self.yes.load(Ordering::SeqCst) {
                ApprovalDecision::Approved { by: "alice".into() }
            } else {
                ApprovalDecision::Denied {
                    by: "alice".into(),
                    reason: "not now".into(),
                }
            }
        })
    }
}

fn configmap(ns: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {ns}\ndata:\n  level: \"{value}\"\n")
}

/// The sandbox's kubeconfig with its context called `prod` (so the policy sees a prod change).
fn prod_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&common::sandbox().kubeconfig).expect("kubeconfig");
    let p = dir.join("prod-kubeconfig");
    std::fs::write(&p, text.replace("bosun-sandbox", "prod")).expect("write");
    p
}

#[tokio::test]
async fn a_prod_change_waits_for_approval_and_the_approval_is_bound_to_that_change() {
    let ns = common::namespace("prod").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let human = Arc::new(Human::default());
    let h = Harness::with_kubeconfig(
        GuardConfig {
            approver: human.clone(),
            ..Default::default()
        },
        prod_kubeconfig(dir.path()),
    );
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    let apply = |v: &str, op: &str| json!({"operation": op, "namespace": ns, "manifests": configmap(&ns, v)});

    h.call("kubectl", apply("1", "apply_dry_run"), State::Validation)
        .await
        .expect("dry-run v1");
    // no approval yet: refused, nothing changed
    let r = h
        .call("kubectl", apply("1", "apply"), State::Deployment)
        .await
        .expect_err("waits for approval");
    assert!(
        r.contains("needs human approval")
            && r.contains("change in prod")
            && r.contains("alice did not approve"),
        "{r}"
    );
    assert!(cms.get_opt("settings").await.expect("get").is_none());
    // approved: the same change runs
    human.yes.store(true, Ordering::SeqCst);
    h.call("kubectl", apply("1", "apply"), State::Deployment)
        .await
        .expect("approved apply");
    assert_eq!(
        cms.get("settings")
            .await
            .expect("get")
            .data
            .and_then(|d| d.get("level").cloned()),
        Some("1".to_string())
    );
    // a different change is a different approval: v2 is asked again, and refused when denied
    human.yes.store(false, Ordering::SeqCst);
    h.call("kubectl", apply("2", "apply_dry_run"), State::Validation)
        .await
        .expect("dry-run v2");
    let r = h
        .call("kubectl", apply("2", "apply"), State::Deployment)
        .await
        .expect_err("v2 needs its own approval");
    assert!(r.contains("needs human approval"), "{r}");
    let asked = human.asked.lock().expect("lock").clone();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert_eq!(asked[0], asked[1], "v1 was asked twice for the same change");
    assert_ne!(
        asked[1], asked[2],
        "v2 is a different change, with a different fingerprint"
    );
    assert_eq!(
        cms.get("settings")
            .await
            .expect("get")
            .data
            .and_then(|d| d.get("level").cloned()),
        Some("1".to_string()),
        "v2 never ran"
    );
}

#[tokio::test]
async fn an_approval_shows_the_diff_against_the_live_objects_with_secret_data_masked() {
    let ns = common::namespace("approve-diff").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let human = Arc::new(Human {
        yes: AtomicBool::new(true),
        ..Default::default()
    });
    // a dev cluster whose policy wants a human for every change in this namespace
    std::fs::write(
        dir.path().join("policy.yaml"),
        format!("environments:\n  dev: [bosun-sandbox]\nrules:\n  - name: changes in {ns} need a human\n    action: approve\n    match:\n      namespace: {ns}\n      effect: [mutating, destructive]\n"),
    )
    .expect("policy");
    let policy = bosun::policy::Policy::load(dir.path()).expect("policy loads");
    let h = Harness::new(GuardConfig {
        approver: human.clone(),
        policy: Arc::new(policy),
        ..Default::default()
    })
    .with_vault();
    let path = common::vault_path();
    common::vault_write(&path, json!({"password": "new-pass-0815", "user": "app"})).await;
    // live: a Deployment with 1 replica and a Secret
    let deployment = |replicas: u32| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: registry.example/web:1.0.0\n          resources:\n            requests: {{cpu: 10m, memory: 16Mi}}\n            limits: {{cpu: 100m, memory: 64Mi}}\n")
    };
    let secret = |password: &str, user: &str| {
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {ns}\nstringData:\n  password: {password}\n  user: {user}\n")
    };
    common::create(serde_saphyr::from_str(&deployment(1)).expect("yaml")).await;
    common::create(serde_saphyr::from_str(&secret("old-pass-4711", "app")).expect("yaml")).await;
    // the change: 3 replicas, a new password, and a new ConfigMap
    let manifests = format!(
        "{}---\n{}---\n{}",
        deployment(3),
        secret(
            &format!("\"vault:secret/{path}#password\""),
            &format!("\"vault:secret/{path}#user\"")
        ),
        configmap(&ns, "debug")
    );
    let args = |op: &str| json!({"operation": op, "namespace": ns, "manifests": manifests, "force_conflicts": true});
    h.call("kubectl", args("apply_dry_run"), State::Validation)
        .await
        .expect("dry-run");
    h.call("kubectl", args("apply"), State::Deployment)
        .await
        .expect("approved apply");
    let diffs = human.diffs.lock().expect("lock").clone();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    let diff = diffs[0]
        .clone()
        .expect("the request carries the dry-run's diff");
    // the changed field, old and new value, from the server's dry-run against the live object
    assert!(diff.contains("-  replicas: 1"), "{diff}");
    assert!(diff.contains("+  replicas: 3"), "{diff}");
    assert!(
        diff.contains("ConfigMap") && diff.contains("would be created"),
        "{diff}"
    );
    // the Secret: which key changes, never a value (plain or base64)
    assert!(diff.contains("<hidden, changed>"), "{diff}");
    for secret_text in ["old-pass-4711", "new-pass-0815", "app"] {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret_text);
        assert!(
            !diff.contains(&b64),
            "{secret_text} leaked base64-encoded: {diff}"
        );
    }
    assert!(
        !diff.contains("old-pass-4711") && !diff.contains("new-pass-0815"),
        "{diff}"
    );
    assert!(
        !diff.contains("managedFields:") && !diff.contains("resourceVersion:"),
        "{diff}"
    );
}

#[tokio::test]
async fn kube_system_cannot_be_written() {
    let h = Harness::new(GuardConfig::default());
    let name = format!("bosun-probe-{}", common::suffix());
    let manifest = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: kube-system\ndata:\n  a: b\n");
    let args =
        |op: &str| json!({"operation": op, "namespace": "kube-system", "manifests": manifest});
    // the dry-run of a change the policy denies is refused by the same rule (validating it would
    // only invite a way around the rule), and so is the apply
    let r = h
        .call("kubectl", args("apply_dry_run"), State::Validation)
        .await
        .expect_err("the dry-run of a denied change is refused");
    assert!(
        r.contains("denied by rule `builtin: kube-system is not for agents`"),
        "{r}"
    );
    let r = h
        .call("kubectl", args("apply"), State::Deployment)
        .await
        .expect_err("denied");
    assert!(
        r.contains("denied by rule `builtin: kube-system is not for agents`"),
        "{r}"
    );
    let r = h
        .call("kubectl", json!({"operation": "delete", "namespace": "kube-system", "kind": "configmap", "name": "extension-apiserver-authentication", "dry_run": true}), State::Validation)
        .await
        .expect_err("the delete dry-run is refused too");
    assert!(r.contains("denied by rule"), "{r}");
    // reads stay allowed
    h.call(
        "kubectl",
        json!({"operation": "get", "namespace": "kube-system", "kind": "configmaps"}),
        State::Intake,
    )
    .await
    .expect("reading kube-system is fine");
    let r = h
        .call("kubectl", json!({"operation": "delete", "namespace": "kube-system", "kind": "configmap", "name": "extension-apiserver-authentication"}), State::Deployment)
        .await
        .expect_err("denied");
    assert!(r.contains("denied by rule"), "{r}");
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, "kube-system");
    assert!(cms.get_opt(&name).await.expect("get").is_none());
    assert!(cms
        .get_opt("extension-apiserver-authentication")
        .await
        .expect("get")
        .is_some());
}
