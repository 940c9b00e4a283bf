//! The `metrics` tool against the sandbox's real Prometheus (Debian's `prometheus`, scraping the
//! sandbox's kube-apiserver and etcd every second), through the guard; and a policy metric
//! check that fails after a change, so the verification gate rolls the change back.

use crate::common::{self, Driver};

use bosun::planner::State;
use bosun::session::Event;
use bosun::tools::metrics::Metrics;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The sandbox's Prometheus URL; a sandbox without one fails the test with how to install it.
pub fn prometheus_url() -> String {
    let st = common::sandbox();
    st.prometheus_url.clone().unwrap_or_else(|| match &st.prometheus_error {
        Some(e) => panic!("the sandbox's Prometheus did not start: {e}"),
        None => panic!("the sandbox has no Prometheus: install it with scripts/install-deps.sh (apt-get install prometheus)"),
    })
}

fn driver() -> Driver {
    Driver::new(vec![Arc::new(Metrics::new(Some(prometheus_url())))], None)
}

/// Query until the output contains every one of `want` (Prometheus scrapes every second).
async fn query_until(d: &Driver, query: &str, want: &[&str]) -> String {
    let mut last = String::new();
    for _ in 0..60 {
        last = d
            .call(
                "metrics",
                json!({"operation": "query", "query": query}),
                State::Verification,
            )
            .await
            .ok();
        if want.iter().all(|w| last.contains(w)) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("`{query}` never showed {want:?}; last: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_api_server_and_etcd_and_the_tool_queries_it() {
    let d = driver();
    let out = query_until(&d, "up == 1", &["job=\"kube-apiserver\"", "job=\"etcd\""]).await;
    assert!(out.starts_with("up == 1: 2 series"), "{out}");

    // a range query: per series min/max/last and the sample count, never the samples
    let mut out = String::new();
    for _ in 0..30 {
        out = d
            .call(
                "metrics",
                json!({"operation": "query_range", "query": "sum by (job) (up)", "range_seconds": 30, "step_seconds": 1}),
                State::Verification,
            )
            .await
            .ok();
        if out.contains("2 series") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        out.contains("over the last 30 s (step 1 s): 2 series"),
        "{out}"
    );
    assert!(out.contains("{job=\"etcd\"} min="), "{out}");
    assert!(out.contains("last=1 samples="), "{out}");

    // a wide answer is cut to the budget: every API server request counter
    let out = query_until(&d, "apiserver_request_total", &["series"]).await;
    let budget = d.ctx.max_result_tokens;
    assert!(
        bosun::compact::estimate_tokens(&out) <= budget + 100,
        "{} tokens: {out}",
        bosun::compact::estimate_tokens(&out)
    );

    // checks: a condition that holds over 3 samples, one that does not
    let ok = d
        .call(
            "metrics",
            json!({"operation": "check", "name": "etcd is up", "query": "up{job=\"etcd\"} == 1", "samples": 3, "interval_seconds": 1}),
            State::Verification,
        )
        .await
        .ok();
    assert!(
        ok.starts_with("metric check passed: `etcd is up` held for 3 sample(s) 1 s apart"),
        "{ok}"
    );
    let failed = d
        .call(
            "metrics",
            json!({"operation": "check", "query": "up{job=\"etcd\"} == 0", "samples": 3, "interval_seconds": 1}),
            State::Verification,
        )
        .await
        .failed();
    assert!(failed.contains("does not hold (sample 1 of 3"), "{failed}");
    // Prometheus' own error reaches the model
    let bad = d
        .call(
            "metrics",
            json!({"operation": "query", "query": "sum(("}),
            State::Verification,
        )
        .await
        .failed();
    assert!(bad.contains("bad_data"), "{bad}");
    // the endpoint is not the model's to choose
    let refused = d
        .call(
            "metrics",
            json!({"operation": "query", "query": "up", "url": "http://169.254.169.254"}),
            State::Verification,
        )
        .await;
    assert!(!matches!(refused, common::Outcome::Ok(_)), "{refused:?}");
}

#[test]
fn without_an_endpoint_the_tool_says_how_to_set_one() {
    let ws = tempfile::tempdir().expect("ws");
    let d = Driver::offline(
        vec![Arc::new(Metrics::new(None))],
        None,
        ws.path().to_path_buf(),
    );
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let out = rt
        .block_on(d.call(
            "metrics",
            json!({"operation": "query", "query": "up"}),
            State::Verification,
        ))
        .failed();
    assert!(out.contains("BOSUN_PROMETHEUS_URL"), "{out}");
}

fn configmap(ns: &str, v: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: {ns}\ndata:\n  version: \"{v}\"\n")
}

/// The policy requires "no 404 answers from the API server in the last minute"; the test makes
/// some, so the check after the change fails and bosun restores the previous ConfigMap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_policy_metric_check_rolls_the_change_back() {
    let url = prometheus_url();
    let ns = common::namespace("metric-verify").await;
    let v1: serde_json::Value = serde_saphyr::from_str(&configmap(&ns, "1")).expect("yaml");
    common::create(v1).await;
    // 404s, until Prometheus has seen them
    let cms: Api<ConfigMap> = Api::namespaced(common::kube().await, &ns);
    let d = driver();
    // a counter series that is new has no rate yet: keep answering 404s until Prometheus sees some
    let mut seen = false;
    for _ in 0..60 {
        for _ in 0..3 {
            let _ = cms.get_opt("does-not-exist").await;
        }
        let out = d
            .call(
                "metrics",
                json!({"operation": "query", "query": "sum(rate(apiserver_request_total{code=\"404\"}[1m])) > 0"}),
                State::Verification,
            )
            .await
            .ok();
        if out.contains("1 series") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(seen, "Prometheus never saw the API server's 404 answers");

    let v2 = serde_json::to_string(&configmap(&ns, "2")).expect("json string");
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
        - {{name: transition, arguments: {{to: completion, justification: "done", report: "Success"}}}}
  - expect:
      last_tool_result_contains: ["verification failed", "metric check failed", "no 404s", "rolled back"]
    reply:
      tool_calls:
        - {{name: transition, arguments: {{to: failed, justification: "the metric check failed; rolled back", report: "Fail"}}}}
  - reply: {{content: "Fail: the API server answered 404s after the change; bosun rolled it back."}}
"#
    );
    // the shipped agent with a policy that adds a metric check to every change
    let dir = common::agent_copy();
    let policy = std::fs::read_to_string(dir.path().join("policy.yaml"))
        .expect("policy")
        .replace(
            "verification: {rollback: true}",
            "verification:\n  rollback: true\n  metrics:\n    - name: no 404s from the API server\n      query: 'sum(rate(apiserver_request_total{code=\"404\"}[1m])) == 0'\n      samples: 2\n      interval_seconds: 1\n",
        );
    assert!(
        policy.contains("no 404s"),
        "the shipped policy changed shape"
    );
    std::fs::write(dir.path().join("policy.yaml"), policy).expect("policy");
    let (server, rt) =
        common::scripted_runtime(dir.path(), &script, vec![Arc::new(Metrics::new(Some(url)))])
            .await;
    let mut s = rt.spawn_session(None).expect("session");
    let events = common::run_task(&mut s, "set web-config to version 2", 120).await;
    assert_eq!(server.failures(), Vec::<String>::new(), "{events:#?}");
    match events.last() {
        Some(Event::TaskComplete { status, .. }) => {
            assert_eq!(*status, bosun::session::TaskStatus::Failed)
        }
        other => panic!("{other:?}"),
    }
    // the runtime's own calls: the metric check, the undo's dry-run, the undo
    let own: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::ToolCallStarted {
                call_id,
                tool,
                arguments,
                ..
            } if call_id.starts_with("bosun-") => Some((tool.clone(), arguments.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(own.len(), 3, "{own:?}");
    assert_eq!(own[0].0, "metrics", "{own:?}");
    assert!(own[0].1.contains("\"operation\":\"check\""), "{own:?}");
    assert!(own[1].1.contains("restore") && own[1].1.contains("\"dry_run\":true"));
    let cm = cms.get("web-config").await.expect("get");
    assert_eq!(
        cm.data
            .unwrap_or_default()
            .get("version")
            .map(String::as_str),
        Some("1"),
        "the change was not rolled back"
    );
}
