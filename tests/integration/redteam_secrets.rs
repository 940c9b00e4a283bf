//! Red team, class `secret into plain objects`: a `vault:` reference resolves only into a
//! Secret's `data`/`stringData`. In a ConfigMap, an annotation, a label, an env value, a custom
//! resource, or helm values a chart renders outside a Secret, it is refused before anything
//! resolves — nothing reaches the API server, and the value never shows up in any tool output.

use crate::common;

use base64::Engine;
use bosun::planner::State;
use common::{Driver, Outcome};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

const V: State = State::Validation;
const D: State = State::Deployment;

/// A driver whose `vault:` references resolve against the sandbox's OpenBao, and a fresh
/// secret in it: (driver, reference, value).
async fn setup() -> (Driver, String, String) {
    let mut d = Driver::new(vec![], Some(Driver::dev_approver()));
    let st = common::sandbox();
    d.ctx.secrets = Arc::new(common::OpenBaoResolver {
        addr: st.vault_addr.clone(),
        token: st.vault_token.clone(),
        redactor: d.ctx.redactor.clone(),
    });
    let path = common::vault_path();
    let value = format!("rt-secret-{}-value", common::suffix());
    common::vault_write(&path, json!({"password": value})).await;
    (d, format!("vault:secret/{path}#password"), value)
}

/// Neither the value nor its base64 nor its upper-case form is in any output or raw result.
fn no_leak(d: &Driver, value: &str) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
    let upper = value.to_uppercase();
    let raw = d.raw.lock().expect("raw").clone();
    for o in d.outputs().iter().chain(raw.iter()) {
        for needle in [value, b64.as_str(), upper.as_str()] {
            assert!(!o.contains(needle), "the secret leaked: {o}");
        }
    }
}

fn refused_or_failed(o: Outcome) -> String {
    match o {
        Outcome::Ok(s) => panic!("the attack succeeded: {s}"),
        Outcome::Failed(s) | Outcome::Refused(s) => s,
    }
}

/// The names of the objects in `ns` the tests could have created (the controller's own
/// `default` ServiceAccount, its token and `kube-root-ca.crt` left out).
async fn created(ns: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&format!(
        "[{}]",
        cluster_text(ns).await.replace("][", "],[")
    ))
    .expect("json");
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l.as_array().cloned().unwrap_or_default())
        .filter_map(|o| {
            o.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|n| n != "default" && n != "kube-root-ca.crt" && !n.starts_with("default-token-"))
        .collect();
    out.sort();
    out
}

/// Every object of `ns` as JSON text (ConfigMaps, Secrets, Deployments, ServiceAccounts).
async fn cluster_text(ns: &str) -> String {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
    use kube::api::{Api, ListParams};
    let c = common::kube().await;
    let lp = ListParams::default();
    let mut out = String::new();
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    out.push_str(&serde_json::to_string(&cms.list(&lp).await.expect("cms").items).expect("json"));
    let ss: Api<Secret> = Api::namespaced(c.clone(), ns);
    out.push_str(
        &serde_json::to_string(&ss.list(&lp).await.expect("secrets").items).expect("json"),
    );
    let ds: Api<Deployment> = Api::namespaced(c.clone(), ns);
    out.push_str(&serde_json::to_string(&ds.list(&lp).await.expect("deps").items).expect("json"));
    let sas: Api<ServiceAccount> = Api::namespaced(c, ns);
    out.push_str(&serde_json::to_string(&sas.list(&lp).await.expect("sas").items).expect("json"));
    out
}

#[tokio::test]
async fn kubectl_refuses_references_outside_secret_data() {
    let ns = common::namespace("rtsecret").await;
    let (d, r, value) = setup().await;
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: registry.example/web:1.0.0\n          env:\n            - name: DB_PASSWORD\n              value: \"{r}\"\n"
    );
    let attacks = [
        ("ConfigMap data", format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  password: \"{r}\"\n")),
        ("ConfigMap data inside a longer string", format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  dsn: \"password={r} host=db\"\n")),
        ("annotation on a Secret", format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations:\n    note: \"{r}\"\nstringData:\n  k: v\n")),
        ("label on a ConfigMap", format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels:\n    pw: \"{r}\"\n")),
        ("Deployment env value", deployment),
        ("a Secret kind of another group", format!("apiVersion: evil.example/v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  password: \"{r}\"\n")),
        ("a Secret kind spelled in lower case", format!("apiVersion: v1\nkind: secret\nmetadata:\n  name: s\nstringData:\n  password: \"{r}\"\n")),
        ("second document of several", format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ok\nstringData:\n  password: \"{r}\"\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  annotations:\n    token: \"{r}\"\n")),
        ("a Secret's type field", format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ntype: \"{r}\"\n")),
    ];
    for (what, m) in &attacks {
        for (op, state) in [("apply_dry_run", V), ("apply", D), ("diff", V)] {
            let e = refused_or_failed(
                d.call(
                    "kubectl",
                    json!({"operation": op, "namespace": ns, "manifests": m}),
                    state,
                )
                .await,
            );
            assert!(e.contains("secretKeyRef"), "{what} / {op}: {e}");
        }
    }
    assert_eq!(
        created(&ns).await,
        Vec::<String>::new(),
        "the cluster changed"
    );
    assert!(!cluster_text(&ns).await.contains(&value));
    no_leak(&d, &value);
    // the control: a Secret's stringData takes the reference, and the value stays hidden
    let ok = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: \"{r}\"\n"
    );
    d.call(
        "kubectl",
        json!({"operation": "apply_dry_run", "namespace": ns, "manifests": ok}),
        V,
    )
    .await
    .ok();
    d.call(
        "kubectl",
        json!({"operation": "apply", "namespace": ns, "manifests": ok}),
        D,
    )
    .await
    .ok();
    d.call(
        "kubectl",
        json!({"operation": "get", "namespace": ns, "kind": "Secret", "name": "db"}),
        V,
    )
    .await
    .ok();
    no_leak(&d, &value);
    // nothing but the Secret holds the value
    let text = cluster_text(&ns).await;
    assert!(!text.contains(&value), "a plain field holds the value");
}

fn write_chart(dir: &Path, templates: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir");
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: leaky\nversion: 0.1.0\n",
    )
    .expect("Chart.yaml");
    for (name, body) in templates {
        std::fs::write(dir.join("templates").join(name), body).expect("template");
    }
}

const SECRET_T: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-creds\nstringData:\n  password: {{ .Values.password | quote }}\n";

#[tokio::test]
async fn helm_refuses_charts_that_render_a_reference_outside_a_secret() {
    let ns = common::namespace("rthelmsecret").await;
    let (d, r, value) = setup().await;
    let variants: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("ConfigMap data", vec![("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  pw: {{ .Values.password | quote }}\n")]),
        ("ConfigMap data, transformed", vec![("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  pw: {{ .Values.password | b64enc | upper | quote }}\n")]),
        ("annotation", vec![("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  annotations:\n    pw: {{ .Values.password | quote }}\n")]),
        ("label", vec![("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels:\n    pw: {{ .Values.password | trunc 8 | quote }}\n")]),
        ("Deployment env value", vec![("dep.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: registry.example/web:1.0.0\n          env:\n            - name: PW\n              value: {{ .Values.password | quote }}\n")]),
        ("a Secret's annotation", vec![("s.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations:\n    pw: {{ .Values.password | quote }}\nstringData:\n  k: v\n")]),
        ("a hook", vec![("hook.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hook\n  annotations:\n    helm.sh/hook: pre-install\ndata:\n  pw: {{ .Values.password | quote }}\n")]),
    ];
    for (what, templates) in variants {
        let charts = tempfile::tempdir().expect("charts");
        let chart = charts.path().join("leaky");
        let mut all = templates.clone();
        all.push(("secret.yaml", SECRET_T));
        write_chart(&chart, &all);
        let values = format!("password: \"{r}\"\n");
        for (op, state) in [("upgrade_dry_run", V), ("upgrade", D)] {
            let e = refused_or_failed(
                d.call(
                    "helm",
                    json!({"operation": op, "release": "leaky", "namespace": ns, "chart": chart, "values": values}),
                    state,
                )
                .await,
            );
            assert!(
                e.contains("secretKeyRef") || e.contains("no successful"),
                "{what} / {op}: {e}"
            );
        }
    }
    assert_eq!(
        created(&ns).await,
        Vec::<String>::new(),
        "the cluster changed"
    );
    assert!(!cluster_text(&ns).await.contains(&value));
    no_leak(&d, &value);
    // the control: the same reference rendered only into the Secret installs
    let charts = tempfile::tempdir().expect("charts");
    let chart = charts.path().join("leaky");
    write_chart(&chart, &[("secret.yaml", SECRET_T)]);
    let args = |op: &str| -> Value {
        json!({"operation": op, "release": "ok", "namespace": ns, "chart": chart, "values": format!("password: \"{r}\"\n")})
    };
    d.call("helm", args("upgrade_dry_run"), V).await.ok();
    d.call("helm", args("upgrade"), D).await.ok();
    no_leak(&d, &value);
}
