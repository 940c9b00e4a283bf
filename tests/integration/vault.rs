//! The hashicorp-vault tool and the vault resolver on a real OpenBao, with the real helm and
//! terraform: a password generated in OpenBao ends up in a Kubernetes Secret, and its value
//! never appears in a tool result (redacted or not), a log line, the workspace, the event stream
//! or anything the model receives. The tests scan all of them for it.

use crate::common;

use base64::Engine;
use bosun::planner::State;
use bosun::scripted::{Script, ScriptedServer};
use bosun::tools::helm::Helm;
use bosun::tools::terraform::{Terraform, TerraformSettings};
use bosun::tools::vault::{VaultResolver, VaultTool};
use common::Driver;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

const V: State = State::Validation;
const D: State = State::Deployment;

/// Every log line of this test binary, at TRACE.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let l = Logs::default();
        let _ = tracing_subscriber::fmt()
            .with_writer(l.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .try_init();
        l
    })
}

/// A value read straight from OpenBao over HTTP (the test's own client, not bosun's).
async fn bao_read(path: &str) -> serde_json::Map<String, Value> {
    let st = common::sandbox();
    let v: Value = reqwest::Client::new()
        .get(format!("{}/v1/secret/data/{path}", st.vault_addr))
        .header("X-Vault-Token", &st.vault_token)
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    v.pointer("/data/data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// A chart that renders a Secret (and a ConfigMap) from values.
fn write_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).expect("mkdir");
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: db\nversion: 0.1.0\n",
    )
    .expect("chart");
    std::fs::write(
        dir.join("templates/secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-credentials\ntype: Opaque\nstringData:\n  username: {{ .Values.db.username | quote }}\n  password: {{ .Values.db.password | quote }}\n",
    )
    .expect("secret");
    std::fs::write(
        dir.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  host: {{ .Values.db.host | quote }}\n",
    )
    .expect("configmap");
}

fn files_under(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out
}

fn assert_absent(what: &str, haystack: &str, secret: &str) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    assert!(!haystack.contains(secret), "the password appears in {what}");
    assert!(
        !haystack.contains(&b64),
        "the password (base64) appears in {what}"
    );
}

#[tokio::test]
async fn a_generated_password_reaches_a_kubernetes_secret_and_nothing_else() {
    let logs = logs();
    let ns = common::namespace("vault").await;
    let path = common::vault_path();
    let cfg = common::vault_config();
    let helm3 = bosun::sandbox::find_binary("helm3").expect("helm3: run scripts/install-deps.sh");
    let tf = bosun::sandbox::find_binary("terraform").expect("terraform on PATH");
    let mut d = Driver::new(
        vec![
            Arc::new(VaultTool::new(Some(cfg.clone()))),
            Arc::new(Helm::with_binary(Some(helm3), &common::kube_target())),
            Arc::new(Terraform::new(TerraformSettings {
                binary: Some(tf),
                plugin_mirror: None,
            })),
        ],
        Some(Driver::dev_approver()),
    );
    d.ctx.secrets = Arc::new(VaultResolver::new(cfg.clone(), d.ctx.redactor.clone()));
    let reference = format!("vault:secret/{path}#password");

    // generate: dry-run first, then the value is created inside bosun
    let gen = json!({"operation": "generate", "path": path, "key": "password", "length": 40});
    let r = d.call("hashicorp-vault", gen.clone(), D).await.refused();
    assert!(r.contains("dry_run: true"), "{r}");
    let mut gen_dry = gen.clone();
    gen_dry["dry_run"] = json!(true);
    let dry = d.call("hashicorp-vault", gen_dry.clone(), V).await.ok();
    assert!(
        dry.contains("would create key `password`") && dry.contains("40-character"),
        "{dry}"
    );
    let out = d.call("hashicorp-vault", gen.clone(), D).await.ok();
    assert!(out.contains(&format!("Reference: {reference}")), "{out}");
    let password = bao_read(&path).await["password"]
        .as_str()
        .expect("generated")
        .to_string();
    assert_eq!(password.len(), 40);
    // generating again keeps the existing value
    d.call("hashicorp-vault", gen_dry, V).await.ok();
    let again = d.call("hashicorp-vault", gen, D).await.ok();
    assert!(again.contains("already exists; kept"), "{again}");
    assert_eq!(bao_read(&path).await["password"], password.as_str());

    // write merges a non-secret key next to it
    let w = json!({"operation": "write", "path": path, "values": "username: app"});
    let mut w_dry = w.clone();
    w_dry["dry_run"] = json!(true);
    let dry = d.call("hashicorp-vault", w_dry, V).await.ok();
    assert!(
        dry.contains("new: username") && dry.contains("other keys kept: password"),
        "{dry}"
    );
    d.call("hashicorp-vault", w, D).await.ok();
    let data = bao_read(&path).await;
    assert_eq!(
        (data["username"].as_str(), data["password"].as_str()),
        (Some("app"), Some(password.as_str()))
    );
    // a copy by reference: the value moves inside the runtime only
    let copy_path = format!("{path}-copy");
    let c = json!({"operation": "write", "path": copy_path, "values": format!("password: {reference}")});
    let mut c_dry = c.clone();
    c_dry["dry_run"] = json!(true);
    d.call("hashicorp-vault", c_dry, V).await.ok();
    d.call("hashicorp-vault", c, D).await.ok();
    assert_eq!(bao_read(&copy_path).await["password"], password.as_str());

    // reads give key names as references
    let read = d
        .call(
            "hashicorp-vault",
            json!({"operation": "read", "path": path}),
            State::Intake,
        )
        .await
        .ok();
    assert!(
        read.contains(&reference) && read.contains(&format!("vault:secret/{path}#username")),
        "{read}"
    );
    let meta = d
        .call(
            "hashicorp-vault",
            json!({"operation": "metadata", "path": path}),
            State::Intake,
        )
        .await
        .ok();
    assert!(meta.contains("current version 2"), "{meta}");
    let parent = path.split('/').next().expect("prefix");
    let list = d
        .call(
            "hashicorp-vault",
            json!({"operation": "list", "path": parent}),
            State::Intake,
        )
        .await
        .ok();
    let leaf = path.rsplit('/').next().expect("leaf");
    assert!(list.contains(leaf), "{list}");

    // the password goes into a Kubernetes Secret through a Helm values file
    let chart_dir = tempfile::tempdir().expect("tempdir");
    let chart = chart_dir.path().join("db");
    write_chart(&chart);
    let values = format!("db:\n  username: vault:secret/{path}#username\n  password: {reference}\n  host: db.internal\n");
    let h = |op: &str| json!({"operation": op, "release": "db", "namespace": ns, "chart": chart, "values": values});
    let t = d.call("helm", h("template"), State::Intake).await.ok();
    assert!(
        t.contains(&reference),
        "template renders the references, unresolved: {t}"
    );
    let dry = d.call("helm", h("upgrade_dry_run"), V).await.ok();
    assert!(
        dry.contains("server dry-run passed") && dry.contains("+ Secret/db-credentials"),
        "{dry}"
    );
    assert!(
        dry.contains(&format!(
            "secrets resolved inside bosun (values never shown): {reference}"
        )) || dry.contains(&reference),
        "{dry}"
    );
    assert!(!dry.contains("checks:\nerror"), "{dry}");
    let up = d.call("helm", h("upgrade"), D).await.ok();
    assert!(up.contains("status deployed"), "{up}");
    let secrets: kube::Api<Secret> = kube::Api::namespaced(common::kube().await, &ns);
    let s = secrets
        .get("db-credentials")
        .await
        .expect("the Secret exists");
    let data = s.data.expect("data");
    assert_eq!(
        String::from_utf8_lossy(&data["password"].0),
        password,
        "the cluster holds the value from OpenBao"
    );
    assert_eq!(String::from_utf8_lossy(&data["username"].0), "app");
    let vals = d
        .call(
            "helm",
            json!({"operation": "show_values", "release": "db", "namespace": ns}),
            State::Intake,
        )
        .await
        .ok();
    assert!(
        vals.contains("username") && vals.contains("<hidden #"),
        "{vals}"
    );
    // an upgrade dry-run against the live release: the Secret is unchanged, no value shown
    let dry = d.call("helm", h("upgrade_dry_run"), V).await.ok();
    assert!(dry.contains("0 changed"), "{dry}");
    // a changed ConfigMap: shown in the diff
    let moved = values.replace("db.internal", "db2.internal");
    let mut a = h("upgrade_dry_run");
    a["values"] = json!(moved);
    let dry = d.call("helm", a, V).await.ok();
    assert!(
        dry.contains("~ ConfigMap/db-settings") && dry.contains("+  host: db2.internal"),
        "{dry}"
    );
    // a template that puts the secret, transformed, into the ConfigMap is refused before
    // anything resolves (the redactor alone would not catch it)
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  host: {{ .Values.db.host | quote }}\n  shout: {{ .Values.db.password | upper | quote }}\n",
    )
    .expect("configmap");
    let e = d.call("helm", h("upgrade_dry_run"), V).await;
    let e = format!("{e:?}");
    assert!(e.contains("ConfigMap") && e.contains("secretKeyRef"), "{e}");
    let upper = password.to_uppercase();
    for o in d.outputs() {
        assert!(!o.contains(&upper), "a transformed secret leaked: {o}");
    }

    // a terraform variable from vault: resolved into a private var file, never printed
    let tfdir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tfdir.path().join("main.tf"),
        "variable \"db_password\" {\n  type      = string\n  sensitive = true\n}\n\nresource \"terraform_data\" \"db\" {\n  input = var.db_password\n}\n",
    )
    .expect("main.tf");
    let p = d
        .call("terraform", json!({"operation": "plan", "dir": tfdir.path(), "vars": format!("db_password: {reference}")}), V)
        .await
        .ok();
    assert!(
        p.contains("Plan: 1 to add") && p.contains("+ terraform_data.db"),
        "{p}"
    );
    // the same through a .tfvars file in the repo that holds the reference
    std::fs::write(
        tfdir.path().join("dev.tfvars"),
        format!("db_password = \"{reference}\"\n"),
    )
    .expect("tfvars");
    let p = d
        .call(
            "terraform",
            json!({"operation": "plan", "dir": tfdir.path(), "var_file": "dev.tfvars", "planfile": "dev.tfplan"}),
            V,
        )
        .await
        .ok();
    assert!(p.contains("Plan: 1 to add"), "{p}");
    let tfvars = std::fs::read_to_string(tfdir.path().join("dev.tfvars")).expect("tfvars");
    assert!(tfvars.contains(&reference), "the file keeps the reference");

    // delete: destructive, dry-run and approval
    let del = json!({"operation": "delete", "path": copy_path});
    let mut del_dry = del.clone();
    del_dry["dry_run"] = json!(true);
    let dry = d.call("hashicorp-vault", del_dry, V).await.ok();
    assert!(dry.contains("would delete version 1"), "{dry}");
    d.call("hashicorp-vault", del, D).await.ok();
    let gone = d
        .call(
            "hashicorp-vault",
            json!({"operation": "read", "path": copy_path}),
            State::Intake,
        )
        .await
        .ok();
    assert!(gone.contains("does not exist"), "{gone}");

    // the scans: tool results (as the model sees them, and raw), logs, the workspace
    assert!(!d.ctx.redactor.is_empty());
    for o in d.outputs() {
        assert_absent("a tool result", &o, &password);
    }
    for o in d.raw.lock().expect("raw").iter() {
        assert_absent("a raw tool result (before redaction)", o, &password);
    }
    for (args, _) in d.transcript.lock().expect("transcript").iter() {
        assert_absent("the model's arguments", args, &password);
    }
    let log_text = String::from_utf8_lossy(&logs.0.lock().expect("logs")).to_string();
    assert!(
        log_text.contains("running helm"),
        "logs are captured at trace level"
    );
    assert_absent("the logs", &log_text, &password);
    for f in files_under(&d.ctx.workspace) {
        if f.extension().is_some_and(|e| e == "tfplan") {
            continue; // terraform keeps variables in its saved plan (mode 0600); that is its design
        }
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert_absent(
            &format!("workspace file {}", f.display()),
            &String::from_utf8_lossy(&bytes),
            &password,
        );
    }
    // the values file with the resolved value was deleted after use
    let leftovers: Vec<PathBuf> = files_under(&d.ctx.workspace.join(".helm/values"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn bosun_run_end_to_end_keeps_the_password_out_of_the_transcript() {
    let ns = common::namespace("vaultrun").await;
    let path = common::vault_path();
    let st = common::sandbox();
    let chart_dir = tempfile::tempdir().expect("tempdir");
    let chart = chart_dir.path().join("db");
    write_chart(&chart);
    let reference = format!("vault:secret/{path}#password");
    let chart_s = chart.display().to_string();
    let values = format!("{{db: {{username: 'vault:secret/{path}#username', password: '{reference}', host: db.internal}}}}");
    let script = Script::from_yaml(&format!(
        r#"
turns:
  - expect:
      tools_include: [hashicorp-vault, helm, git, terraform]
    reply:
      tool_calls:
        - {{name: transition, arguments: {{to: validation, justification: "generate the db password"}}}}
        - {{name: hashicorp-vault, arguments: {{operation: generate, path: "{path}", key: password, dry_run: true}}}}
        - {{name: hashicorp-vault, arguments: {{operation: generate, path: "{path}", key: username, length: 16, charset: hex, dry_run: true}}}}
  - expect:
      last_tool_result_contains: ["dry-run ok"]
    reply:
      tool_calls:
        - {{name: transition, arguments: {{to: deployment, justification: "dry-run passed"}}}}
        - {{name: hashicorp-vault, arguments: {{operation: generate, path: "{path}", key: password}}}}
        - {{name: hashicorp-vault, arguments: {{operation: generate, path: "{path}", key: username, length: 16, charset: hex}}}}
        - {{name: helm, arguments: {{operation: upgrade_dry_run, release: db, namespace: "{ns}", chart: "{chart_s}", values: "{values}"}}}}
        - {{name: helm, arguments: {{operation: upgrade, release: db, namespace: "{ns}", chart: "{chart_s}", values: "{values}"}}}}
  - expect:
      last_tool_result_contains: ["status deployed"]
    reply:
      tool_calls:
        - {{name: helm, arguments: {{operation: show_values, release: db, namespace: "{ns}"}}}}
        - {{name: hashicorp-vault, arguments: {{operation: read, path: "{path}"}}}}
  - expect:
      last_tool_result_contains: ["{reference}"]
    reply:
      tool_calls:
        - {{name: transition, arguments: {{to: verification, justification: "deployed"}}}}
        - {{name: transition, arguments: {{to: completion, justification: "verified", report: "Credentials: {reference}"}}}}
  - expect:
      last_tool_result_contains: ["completion"]
    reply:
      content: "Status: Success. Credentials: {reference}"
"#
    ))
    .expect("script");
    let server = ScriptedServer::start(script).await.expect("server");
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = common::bosun_cmd(home.path());
    cmd.env("OPENAI_BASE_URL", server.base_url())
        .env("KUBECONFIG", &st.kubeconfig)
        .env("VAULT_ADDR", &st.vault_addr)
        .env("VAULT_TOKEN", &st.vault_token)
        .env("BOSUN_CACHE", bosun::sandbox::cache_dir())
        .env("RUST_LOG", "trace")
        .arg("--agent")
        .arg(common::repo_root())
        .args(["run", "--output", "jsonl", "create the db credentials"]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run bosun");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        stderr
            .chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    assert_eq!(server.failures(), Vec::<String>::new());

    let password = bao_read(&path).await["password"]
        .as_str()
        .expect("generated")
        .to_string();
    let secrets: kube::Api<Secret> = kube::Api::namespaced(common::kube().await, &ns);
    let s = secrets
        .get("db-credentials")
        .await
        .expect("the Secret exists");
    assert_eq!(
        String::from_utf8_lossy(&s.data.expect("data")["password"].0),
        password
    );

    // the transcript (event stream), the logs, and everything the model received
    assert!(
        stdout.contains("\"type\":\"tool_call_finished\""),
        "{stdout}"
    );
    assert_absent("the event stream", &stdout, &password);
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "logs at trace level"
    );
    assert_absent("the logs", &stderr, &password);
    for (i, req) in server.requests().iter().enumerate() {
        assert_absent(&format!("model request {i}"), &req.to_string(), &password);
        assert!(
            !req.to_string().contains(&st.vault_token),
            "the vault token reached the model"
        );
    }
    assert!(
        !stdout.contains(&st.vault_token) && !stderr.contains(&st.vault_token),
        "the vault token leaked"
    );
    // the audit log and the saved session (default dirs under this run's HOME) hold no value either
    let state = home.path().join(".local/state/bosun");
    let mut scanned = 0;
    for sub in ["audit", "sessions"] {
        for e in std::fs::read_dir(state.join(sub))
            .expect("state dir")
            .flatten()
        {
            let text = std::fs::read_to_string(e.path()).expect("read");
            assert_absent(&e.path().display().to_string(), &text, &password);
            assert!(
                !text.contains(&st.vault_token),
                "the vault token is in {}",
                e.path().display()
            );
            scanned += 1;
        }
    }
    assert_eq!(scanned, 2, "one audit log and one session file");
    let last = server.requests().last().cloned().expect("requests");
    let results = common::tool_results(&last);
    assert!(
        results.iter().any(|r| r.contains("<hidden #")),
        "{results:?}"
    );
}
