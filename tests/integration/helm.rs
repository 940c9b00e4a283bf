//! The helm tool on the real helm 3 and 4 binaries against the sandbox's API server, through
//! the real guard: a local chart linted, rendered, dry-run, installed, upgraded, rolled back and
//! uninstalled; every change only after a dry-run of exactly that change.

use crate::common;

use bosun::planner::State;
use bosun::tools::helm::Helm;
use common::{Driver, Outcome};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

const V: State = State::Validation;
const D: State = State::Deployment;

fn helm_bin(name: &str) -> std::path::PathBuf {
    bosun::sandbox::find_binary(name).unwrap_or_else(|| {
        panic!("`{name}` is not installed: run scripts/install-deps.sh (see README.md)")
    })
}

fn driver(bin: &str) -> Driver {
    let helm = Helm::with_binary(Some(helm_bin(bin)), &common::kube_target());
    Driver::new(vec![Arc::new(helm)], Some(Driver::dev_approver()))
}

/// A chart with one ConfigMap whose data comes from values.
fn write_chart(dir: &Path, version: &str) {
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir");
    std::fs::write(
        dir.join("Chart.yaml"),
        format!("apiVersion: v2\nname: greeter\nversion: {version}\nappVersion: \"1.0\"\n"),
    )
    .expect("Chart.yaml");
    std::fs::write(dir.join("values.yaml"), "greeting: hello\n").expect("values");
    std::fs::write(
        dir.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\n  labels:\n    app.kubernetes.io/managed-by: {{ .Release.Service }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    )
    .expect("template");
}

async fn greeting(ns: &str, name: &str) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(common::kube().await, ns);
    api.get_opt(name)
        .await
        .expect("read configmap")
        .and_then(|c| c.data)
        .and_then(|d| d.get("greeting").cloned())
}

#[tokio::test]
async fn helm3_install_upgrade_rollback_uninstall_through_the_guard() {
    let ns = common::namespace("helm3").await;
    let d = driver("helm3");
    let chart_dir = tempfile::tempdir().expect("tempdir");
    let chart = chart_dir.path().join("greeter");
    write_chart(&chart, "0.1.0");
    let base = json!({"release": "greeter", "namespace": ns, "chart": chart});
    let with = |op: &str, extra: serde_json::Value| {
        let mut a = base.clone();
        a["operation"] = json!(op);
        if let Some(m) = extra.as_object() {
            for (k, v) in m {
                a[k] = v.clone();
            }
        }
        a
    };

    // lint and template are local reads
    let lint = d
        .call("helm", with("lint", json!({})), State::Intake)
        .await
        .ok();
    assert!(lint.contains("lint passed"), "{lint}");
    let t = d
        .call(
            "helm",
            with("template", json!({"values": "greeting: hi"})),
            State::Intake,
        )
        .await
        .ok();
    assert!(
        t.contains("ConfigMap/greeter-config") && t.contains("greeting: hi"),
        "{t}"
    );

    // no change without its dry-run
    let r = d
        .call(
            "helm",
            with("upgrade", json!({"values": "greeting: v1"})),
            D,
        )
        .await
        .refused();
    assert!(
        r.contains("no successful") && r.contains("upgrade_dry_run"),
        "{r}"
    );
    // a dry-run is not allowed before validation
    let r = d
        .call(
            "helm",
            with("upgrade_dry_run", json!({"values": "greeting: v1"})),
            State::Coding,
        )
        .await
        .refused();
    assert!(r.contains("not allowed in the coding state"), "{r}");

    let dry = d
        .call(
            "helm",
            with("upgrade_dry_run", json!({"values": "greeting: v1"})),
            V,
        )
        .await
        .ok();
    assert!(
        dry.contains("would install release greeter") && dry.contains("server dry-run passed"),
        "{dry}"
    );
    assert!(dry.contains("+ ConfigMap/greeter-config"), "{dry}");
    assert_eq!(
        greeting(&ns, "greeter-config").await,
        None,
        "a dry-run persists nothing"
    );

    // different values than the dry-run: refused
    let r = d
        .call(
            "helm",
            with("upgrade", json!({"values": "greeting: other"})),
            D,
        )
        .await
        .refused();
    assert!(r.contains("no successful"), "{r}");
    let up = d
        .call(
            "helm",
            with("upgrade", json!({"values": "{greeting: v1}"})),
            D,
        )
        .await
        .ok();
    assert!(
        up.contains("revision 1") && up.contains("status deployed"),
        "{up}"
    );
    assert_eq!(greeting(&ns, "greeter-config").await.as_deref(), Some("v1"));
    // the dry-run was used up by the upgrade
    let r = d
        .call(
            "helm",
            with("upgrade", json!({"values": "greeting: v1"})),
            D,
        )
        .await
        .refused();
    assert!(r.contains("no successful"), "{r}");

    // upgrade: the dry-run shows the diff against the live release
    let dry = d
        .call(
            "helm",
            with("upgrade_dry_run", json!({"values": "greeting: v2"})),
            V,
        )
        .await
        .ok();
    assert!(
        dry.contains("would upgrade release greeter") && dry.contains("to revision 2"),
        "{dry}"
    );
    assert!(dry.contains("~ ConfigMap/greeter-config"), "{dry}");
    assert!(
        dry.contains("-  greeting: v1") && dry.contains("+  greeting: v2"),
        "{dry}"
    );
    // and the values against the live release's, helm-diff style
    assert!(
        dry.contains("--- live values")
            && dry.contains("\n-greeting: v1\n")
            && dry.contains("\n+greeting: v2"),
        "{dry}"
    );
    // editing the chart after the dry-run invalidates it
    std::fs::write(chart.join("templates/extra.yaml"), "# nothing\n").expect("edit");
    let r = d
        .call(
            "helm",
            with("upgrade", json!({"values": "greeting: v2"})),
            D,
        )
        .await
        .refused();
    assert!(r.contains("no successful"), "{r}");
    std::fs::remove_file(chart.join("templates/extra.yaml")).expect("undo edit");
    let up = d
        .call(
            "helm",
            with("upgrade", json!({"values": "greeting: v2"})),
            D,
        )
        .await
        .ok();
    assert!(up.contains("revision 2"), "{up}");
    assert_eq!(greeting(&ns, "greeter-config").await.as_deref(), Some("v2"));

    let h = d
        .call("helm", with("history", json!({})), State::Intake)
        .await
        .ok();
    assert!(
        h.contains("superseded") && h.contains("deployed") && h.contains("greeter-0.1.0"),
        "{h}"
    );
    let st = d
        .call("helm", with("status", json!({})), State::Intake)
        .await
        .ok();
    assert!(st.contains("revision 2, status deployed"), "{st}");
    let vals = d
        .call(
            "helm",
            with("show_values", json!({"chart": null})),
            State::Intake,
        )
        .await
        .ok();
    assert!(vals.contains("greeting: v2"), "{vals}");

    // rollback: dry-run first, with the same revision
    let r = d
        .call("helm", with("rollback", json!({"revision": 1})), D)
        .await
        .refused();
    assert!(r.contains("dry_run: true"), "{r}");
    let dry = d
        .call(
            "helm",
            with("rollback", json!({"revision": 1, "dry_run": true})),
            V,
        )
        .await
        .ok();
    assert!(
        dry.contains("to revision 1") && dry.contains("~ ConfigMap/greeter-config: /data/greeting"),
        "{dry}"
    );
    let rb = d
        .call("helm", with("rollback", json!({"revision": 1})), D)
        .await
        .ok();
    assert!(
        rb.contains("rolled back greeter to revision 1") && rb.contains("revision 3"),
        "{rb}"
    );
    assert_eq!(greeting(&ns, "greeter-config").await.as_deref(), Some("v1"));

    // uninstall: destructive, dry-run + approval
    let r = d
        .call("helm", with("uninstall", json!({})), D)
        .await
        .refused();
    assert!(r.contains("dry_run: true"), "{r}");
    let dry = d
        .call("helm", with("uninstall", json!({"dry_run": true})), V)
        .await
        .ok();
    assert!(
        dry.contains("would delete 1 objects: ConfigMap/greeter-config"),
        "{dry}"
    );
    let un = d.call("helm", with("uninstall", json!({})), D).await.ok();
    assert!(un.contains("uninstalled release greeter"), "{un}");
    assert_eq!(greeting(&ns, "greeter-config").await, None);
}

#[tokio::test]
async fn uninstall_without_an_approver_is_refused_after_its_dry_run() {
    let ns = common::namespace("helmapprove").await;
    let helm = Helm::with_binary(Some(helm_bin("helm3")), &common::kube_target());
    let d = Driver::new(vec![Arc::new(helm)], None);
    let chart_dir = tempfile::tempdir().expect("tempdir");
    let chart = chart_dir.path().join("greeter");
    write_chart(&chart, "0.1.0");
    let a =
        json!({"operation": "upgrade_dry_run", "release": "g", "namespace": ns, "chart": chart});
    d.call("helm", a.clone(), V).await.ok();
    let mut up = a.clone();
    up["operation"] = json!("upgrade");
    d.call("helm", up, D).await.ok();
    let un = json!({"operation": "uninstall", "release": "g", "namespace": ns, "dry_run": true});
    d.call("helm", un.clone(), V).await.ok();
    let mut real = un;
    real["dry_run"] = json!(false);
    let r = d.call("helm", real, D).await.refused();
    assert!(
        r.contains("needs human approval") && r.contains("no approver"),
        "{r}"
    );
    assert_eq!(
        greeting(&ns, "g-config").await.as_deref(),
        Some("hello"),
        "still installed"
    );
}

#[tokio::test]
async fn helm4_lints_renders_dry_runs_and_installs() {
    let ns = common::namespace("helm4").await;
    let d = driver("helm4");
    let chart_dir = tempfile::tempdir().expect("tempdir");
    let chart = chart_dir.path().join("greeter");
    write_chart(&chart, "0.2.0");
    let a = |op: &str| json!({"operation": op, "release": "g4", "namespace": ns, "chart": chart, "values": "greeting: four"});
    assert!(d
        .call("helm", a("lint"), State::Intake)
        .await
        .ok()
        .contains("lint passed"));
    let t = d.call("helm", a("template"), State::Intake).await.ok();
    assert!(t.contains("greeting: four"), "{t}");
    let dry = d.call("helm", a("upgrade_dry_run"), V).await.ok();
    assert!(
        dry.contains("would install release g4") && dry.contains("+ ConfigMap/g4-config"),
        "{dry}"
    );
    let up = d.call("helm", a("upgrade"), D).await.ok();
    assert!(up.contains("revision 1") && up.contains("deployed"), "{up}");
    assert_eq!(greeting(&ns, "g4-config").await.as_deref(), Some("four"));
}

#[tokio::test]
async fn a_failing_server_dry_run_records_nothing() {
    let ns = common::namespace("helmbad").await;
    let d = driver("helm3");
    let chart_dir = tempfile::tempdir().expect("tempdir");
    let chart = chart_dir.path().join("bad");
    write_chart(&chart, "0.1.0");
    // a Deployment without a selector: the API server rejects it
    std::fs::write(
        chart.join("templates/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  template:\n    metadata: {labels: {app: bad}}\n    spec: {containers: [{name: c, image: 'nginx:1.27.2'}]}\n",
    )
    .expect("template");
    let a =
        json!({"operation": "upgrade_dry_run", "release": "bad", "namespace": ns, "chart": chart});
    let f = d.call("helm", a.clone(), V).await.failed();
    assert!(f.contains("selector"), "{f}");
    let mut up = a;
    up["operation"] = json!("upgrade");
    assert!(matches!(d.call("helm", up, D).await, Outcome::Refused(_)));
}
