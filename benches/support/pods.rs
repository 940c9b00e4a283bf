//! The synthetic 10,000-pod listing shared by `benches/compaction.rs` and `benches/runtime.rs`:
//! 37 unhealthy pods spread through it, as the API server returns it (managedFields included).

use serde_json::{json, Value};

pub const PODS: usize = 10_000;
pub const UNHEALTHY: usize = 37;

/// One pod as the API server returns it (managedFields included).
pub fn pod(i: usize, bad: Option<&str>) -> Value {
    let ns = format!("team-{:02}", i % 40);
    let app = format!("svc-{}", i % 250);
    let name = format!("{app}-7d9f8c6b5-{:05x}", i * 7919 % 1_048_576);
    let (ready, state, restarts) = match bad {
        Some("Pending") => (
            false,
            json!({"waiting": {"reason": "ContainerCreating"}}),
            0,
        ),
        Some(r) => (
            false,
            json!({"waiting": {"reason": r, "message": "back-off 5m0s restarting failed container"}}),
            17,
        ),
        None => (
            true,
            json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
            0,
        ),
    };
    let phase = if bad == Some("Pending") {
        "Pending"
    } else {
        "Running"
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns, "uid": format!("3f0c2a1e-8b7d-4c6e-9a5f-{i:012}"),
            "resourceVersion": format!("{}", 100_000 + i), "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": app, "pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d9f8c6b5"),
                                  "uid": "0000", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"main\"}": {".": {}, "f:image": {}}}}}}]
        },
        "spec": {"nodeName": format!("node-{}", i % 60), "containers": [{
            "name": "main", "image": format!("registry.example/{app}:1.{}.0", i % 9),
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
            "env": [{"name": "LOG_LEVEL", "value": "info"}],
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler"},
        "status": {"phase": phase, "podIP": format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"name": "main", "ready": ready, "restartCount": restarts, "state": state,
                                   "image": format!("registry.example/{app}:1.0.0"), "imageID": ""}]}
    })
}

/// The listing: the PodList JSON body as the API server sends it, and the names of the unhealthy
/// pods.
pub fn listing() -> (Vec<u8>, Vec<String>) {
    let reasons = [
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "Pending",
        "CreateContainerConfigError",
        "Error",
    ];
    let bad_at: Vec<usize> = (0..UNHEALTHY)
        .map(|k| (k * PODS / UNHEALTHY + 113) % PODS)
        .collect();
    let items: Vec<Value> = (0..PODS)
        .map(|i| {
            let bad = bad_at
                .iter()
                .position(|&b| b == i)
                .map(|k| reasons[k % reasons.len()]);
            pod(i, bad)
        })
        .collect();
    let body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
    )
    .expect("serialise");
    let bad_names = bad_at
        .iter()
        .map(|&i| {
            items[i]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    (body, bad_names)
}

/// Parse the listing the way the kube client does (not part of compaction).
pub fn parse(body: &[u8]) -> Vec<kube::api::DynamicObject> {
    let list: Value = serde_json::from_slice(body).expect("parse");
    list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}
