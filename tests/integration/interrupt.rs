//! Ctrl-C (the session's `Interrupt`) through the one call path: a read or dry-run is cancelled
//! and changes nothing; a change is never raced — it runs to its end and is recorded.

use crate::common;

use bosun::guard::GuardConfig;
use bosun::planner::State;
use common::Harness;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;

fn configmap(ns: &str, name: &str) -> serde_json::Value {
    let manifests =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n");
    json!({"operation": "apply_dry_run", "namespace": ns, "manifests": manifests})
}

#[tokio::test]
async fn an_interrupt_cancels_reads_and_dry_runs_but_a_change_runs_to_its_end() {
    let ns = common::namespace("interrupt").await;
    let h = Harness::new(GuardConfig::default());
    let dry = configmap(&ns, "kept");
    h.call("kubectl", dry.clone(), State::Validation)
        .await
        .expect("the dry-run before the interrupt");

    h.interrupt.trigger();
    let get = json!({"operation": "get", "kind": "configmaps", "namespace": ns});
    let e = h
        .call("kubectl", get, State::Validation)
        .await
        .expect_err("a read is cancelled");
    assert!(e.contains("interrupted"), "{e}");
    let e = h
        .call("kubectl", configmap(&ns, "other"), State::Validation)
        .await
        .expect_err("a dry-run is cancelled");
    assert!(e.contains("interrupted"), "{e}");

    // the change admitted on the earlier dry-run is not raced: it is applied and recorded
    let mut apply = dry.clone();
    apply["operation"] = json!("apply");
    h.call("kubectl", apply.clone(), State::Deployment)
        .await
        .expect("a change runs to its end despite the interrupt");
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    assert!(cms.get_opt("kept").await.expect("get").is_some());
    // recorded: the guard knows the dry-run was used
    let again = h.call("kubectl", apply, State::Deployment).await;
    assert!(again.is_err_and(|e| e.starts_with("refused:")));
}
