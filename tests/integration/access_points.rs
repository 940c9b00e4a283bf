//! The report's access points come from the cluster, not the model: `bosun run --output json`
//! on the sandbox, a task that applies a Pod and an Ingress; the report lists the NodePort of
//! the Service selecting the Pod and the Ingress URL routing to it — and not an unrelated
//! LoadBalancer, nor the URL the model made up (that one is only a claim).

use crate::common;

use bosun::scripted::{Script, ScriptedServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_lists_the_services_and_ingress_urls_of_what_the_task_changed() {
    let ns = common::namespace("access").await;
    let svc = |name: &str, ty: &str, app: &str, port: u16| {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": ty, "selector": {"app": app},
                     "ports": [{"port": port, "targetPort": 8080}]}})
    };
    common::create(svc("web", "ClusterIP", "web", 80)).await;
    let np = common::create(svc("web-np", "NodePort", "web", 8080)).await;
    common::create(svc("other", "LoadBalancer", "other", 443)).await;
    let node_port = np.data["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("a node port was allocated");

    let manifests = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: {ns}\n  labels: {{app: web}}\nspec:\n  containers:\n    - name: web\n      image: registry.example/web:1.0.0\n      resources:\n        requests: {{cpu: 10m, memory: 16Mi}}\n        limits: {{cpu: 100m, memory: 64Mi}}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  tls:\n    - hosts: [secure.{ns}.example.test]\n  rules:\n    - host: web.{ns}.example.test\n      http:\n        paths:\n          - path: /app\n            pathType: Prefix\n            backend: {{service: {{name: web, port: {{number: 80}}}}}}\n    - host: secure.{ns}.example.test\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend: {{service: {{name: web, port: {{number: 80}}}}}}\n"
    );
    let m = serde_json::to_string(&manifests).expect("json string");
    let script = format!(
        r#"
turns:
  - reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "dry-run"}}}}
        - {{name: kubectl, arguments: {{operation: apply_dry_run, manifests: {m}}}}}
        - {{name: transition, arguments: {{to: deployment, justification: "validated"}}}}
        - {{name: kubectl, arguments: {{operation: apply, manifests: {m}}}}}
        - {{name: transition, arguments: {{to: verification, justification: "applied"}}}}
        - {{name: transition, arguments: {{to: completion, justification: "done", report: "Success"}}}}
  - reply: {{content: "Status: Success\nAccess points:\n- https://made-up.example.com/"}}
"#
    );
    let server = ScriptedServer::start(Script::from_yaml(&script).expect("script"))
        .await
        .expect("server");
    let out = common::run_bosun(&server, &["--output", "json", "--quiet"], "expose web").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.failures(), Vec::<String>::new());
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    let points: Vec<String> = report["access_points"]
        .as_array()
        .expect("access_points")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    let has = |want: &str| points.iter().any(|p| p.starts_with(want));
    assert!(
        has(&format!("http://web.{ns}.example.test/app (Ingress web")),
        "{points:#?}"
    );
    assert!(
        has(&format!("https://secure.{ns}.example.test (Ingress web")),
        "{points:#?}"
    );
    assert!(
        has(&format!(
            "<node-ip>:{node_port} (NodePort of Service web-np port 8080)"
        )),
        "{points:#?}"
    );
    // the LoadBalancer that selects other pods is not an access point of this task, and the
    // ClusterIP Service is reached through the Ingress, not listed by itself
    assert!(!points.iter().any(|p| p.contains("other")), "{points:#?}");
    assert!(
        !points
            .iter()
            .any(|p| p.contains("in-cluster") && p.starts_with("web.")),
        "{points:#?}"
    );
    assert!(!points.iter().any(|p| p.contains("made-up")), "{points:#?}");
    assert_eq!(
        report["claimed_access_points"],
        json!(["https://made-up.example.com/"])
    );
    // the audit log's change names the objects the tool resolved
    let objects = &report["changes"][0]["objects"];
    assert_eq!(objects.as_array().map(Vec::len), Some(2), "{objects}");
}
