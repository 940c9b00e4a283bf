//! The sandbox is real: each component is exercised the way bosun's tools will use it.

use crate::common;

use bosun::sandbox;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::json;
use std::path::Path;
use std::process::Command;

fn need(bin: &str) -> std::path::PathBuf {
    sandbox::find_binary(bin).unwrap_or_else(|| {
        panic!("`{bin}` is not installed: run scripts/install-deps.sh (see README.md)")
    })
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn server_side_dry_run_rejects_an_invalid_deployment_and_persists_nothing() {
    let ns = common::namespace("dryrun").await;
    let ar = ApiResource {
        group: "apps".into(),
        version: "v1".into(),
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        plural: "deployments".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(common::kube().await, &ns, &ar);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    // no selector, no containers: invalid
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bad"}, "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}}
    }))
    .expect("object");
    let err = api
        .create(&dry, &bad)
        .await
        .expect_err("the server must reject it");
    let msg = err.to_string();
    assert!(
        msg.contains("selector") && msg.contains("Required"),
        "{msg}"
    );

    let good: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "good"},
        "spec": {"selector": {"matchLabels": {"app": "good"}},
                 "template": {"metadata": {"labels": {"app": "good"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.27.2"}]}}}
    }))
    .expect("object");
    api.create(&dry, &good)
        .await
        .expect("a valid dry-run passes");
    assert!(
        api.get_opt("good").await.expect("get").is_none(),
        "a dry-run must not persist"
    );
}

#[tokio::test]
async fn a_flux_kustomization_is_created_through_its_crd() {
    let ns = common::namespace("flux").await;
    let ar = ApiResource {
        group: "kustomize.toolkit.fluxcd.io".into(),
        version: "v1".into(),
        api_version: "kustomize.toolkit.fluxcd.io/v1".into(),
        kind: "Kustomization".into(),
        plural: "kustomizations".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(common::kube().await, &ns, &ar);
    let k: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "apps"},
        "spec": {"interval": "5m", "path": "./apps", "prune": true,
                 "sourceRef": {"kind": "GitRepository", "name": "platform"}}
    }))
    .expect("object");
    api.create(&PostParams::default(), &k)
        .await
        .expect("create Kustomization");
    let got = api.get("apps").await.expect("read back");
    assert_eq!(got.data["spec"]["path"], "./apps");
    // the CRD's schema is enforced: a wrong type is rejected
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
        "metadata": {"name": "bad"}, "spec": {"interval": "5m", "prune": "yes-please",
        "sourceRef": {"kind": "GitRepository", "name": "platform"}}
    }))
    .expect("object");
    let err = api
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("schema violation");
    assert!(err.to_string().contains("prune"), "{err}");
}

fn helm_env(cmd: &mut Command, tmp: &Path) {
    cmd.env("KUBECONFIG", &common::sandbox().kubeconfig)
        .env("HELM_CACHE_HOME", tmp.join("cache"))
        .env("HELM_CONFIG_HOME", tmp.join("config"))
        .env("HELM_DATA_HOME", tmp.join("data"));
}

#[tokio::test]
async fn helm_3_and_4_install_a_local_chart_with_server_dry_run() {
    for bin in ["helm3", "helm4"] {
        let helm = need(bin);
        let ns = common::namespace(bin).await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut c = Command::new(&helm);
        c.current_dir(tmp.path()).args(["create", "demo"]);
        helm_env(&mut c, tmp.path());
        let (ok, out) = run(&mut c);
        assert!(ok, "{bin} create: {out}");
        let mut c = Command::new(&helm);
        c.current_dir(tmp.path()).args([
            "install",
            "demo",
            "./demo",
            "--dry-run=server",
            "--namespace",
            &ns,
        ]);
        helm_env(&mut c, tmp.path());
        let (ok, out) = run(&mut c);
        assert!(ok, "{bin} install --dry-run=server: {out}");
        assert!(
            out.contains("kind: Deployment") && out.contains(&ns),
            "{bin}: {out}"
        );
        // nothing was installed
        let mut c = Command::new(&helm);
        c.args(["list", "--namespace", &ns, "--short"]);
        helm_env(&mut c, tmp.path());
        let (ok, out) = run(&mut c);
        assert!(
            ok && out.trim().is_empty(),
            "{bin} list after dry-run: {out}"
        );
    }
}

#[tokio::test]
async fn openbao_kv_v2_round_trips() {
    let st = common::sandbox();
    let path = common::vault_path();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/secret/data/{path}", st.vault_addr);
    let w = http
        .post(&url)
        .header("X-Vault-Token", &st.vault_token)
        .json(&json!({"data": {"user": "admin", "password": "s3cr3t-value"}}))
        .send()
        .await
        .expect("write");
    assert!(w.status().is_success(), "write: {}", w.status());
    let r: serde_json::Value = http
        .get(&url)
        .header("X-Vault-Token", &st.vault_token)
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    assert_eq!(r["data"]["data"]["password"], "s3cr3t-value");
    assert_eq!(r["data"]["metadata"]["version"], 1);
    // and a wrong token is refused
    let denied = http
        .get(&url)
        .header("X-Vault-Token", "wrong")
        .send()
        .await
        .expect("read");
    assert_eq!(denied.status().as_u16(), 403);
}

#[test]
fn terraform_plans_a_terraform_data_resource_offline() {
    let tf = need("terraform");
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("main.tf"),
        "resource \"terraform_data\" \"marker\" {\n  input = \"bosun\"\n}\n",
    )
    .expect("main.tf");
    let cli_cfg = tmp.path().join("terraform.rc");
    std::fs::write(&cli_cfg, "").expect("cli config");
    let tfc = |args: &[&str]| {
        let mut c = Command::new(&tf);
        c.current_dir(tmp.path())
            .env("TF_CLI_CONFIG_FILE", &cli_cfg)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .args(args);
        run(&mut c)
    };
    let (ok, out) = tfc(&["init", "-input=false", "-no-color"]);
    assert!(ok, "init: {out}");
    let (ok, out) = tfc(&["plan", "-input=false", "-no-color", "-out=plan.tfplan"]);
    assert!(ok, "plan: {out}");
    assert!(out.contains("1 to add, 0 to change, 0 to destroy"), "{out}");
    assert!(tmp.path().join("plan.tfplan").is_file());
}

#[test]
fn a_commit_is_pushed_to_a_bare_remote() {
    let (_keep, remote) = common::git_remote();
    let work = tempfile::tempdir().expect("tempdir");
    let repo =
        git2::Repository::clone(remote.to_str().expect("utf8 path"), work.path()).expect("clone");
    std::fs::create_dir_all(work.path().join("apps/web")).expect("mkdir");
    std::fs::write(
        work.path().join("apps/web/kustomization.yaml"),
        "resources: []\n",
    )
    .expect("write");
    let mut index = repo.index().expect("index");
    index
        .add_path(Path::new("apps/web/kustomization.yaml"))
        .expect("add");
    index.write().expect("index write");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = git2::Signature::now("bosun test", "test@bosun.invalid").expect("sig");
    let parent = repo.head().expect("head").peel_to_commit().expect("commit");
    repo.commit(Some("HEAD"), &sig, &sig, "Add web app", &tree, &[&parent])
        .expect("commit");
    let mut origin = repo.find_remote("origin").expect("origin");
    origin
        .push(&["refs/heads/main:refs/heads/main"], None)
        .expect("push");
    let bare = git2::Repository::open_bare(&remote).expect("open remote");
    let head = bare
        .find_reference("refs/heads/main")
        .expect("main")
        .peel_to_commit()
        .expect("commit");
    assert_eq!(head.message().ok(), Some("Add web app"));
    assert!(head
        .tree()
        .expect("tree")
        .get_path(Path::new("apps/web/kustomization.yaml"))
        .is_ok());
}

/// Create a Deployment in a fresh namespace of the sandbox at `kubeconfig` and wait until it is
/// available (the stand-in kubelet binds its pod and reports it Ready).
fn deployment_becomes_ready(kubeconfig: &Path) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Namespace;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = bosun::kube_client::connect(&bosun::kube_client::KubeTarget {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            context: None,
        })
        .await
        .expect("connect")
        .client;
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "web"}})).expect("ns");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27.2"}]}}}}))
        .expect("deployment");
        let api: Api<Deployment> = Api::namespaced(client, "web");
        api.create(&PostParams::default(), &d)
            .await
            .expect("create deployment");
        let started = std::time::Instant::now();
        loop {
            let d = api.get("web").await.expect("get deployment");
            let available = d
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            if available == 2 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the Deployment did not become available: {:?}",
                d.status
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
}

/// Stops a CLI-started sandbox even if the test fails.
struct Down<'a>(&'a Path);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = sandbox::down(self.0);
    }
}

#[test]
fn sandbox_cli_up_status_env_down() {
    common::sandbox(); // fail early, with the install command, if components are missing
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path().join("sb");
    let _down = Down(&dir);
    let bosun = |args: &[&str]| {
        let out = common::bosun_cmd(home.path())
            .arg("sandbox")
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .env("BOSUN_CACHE", sandbox::cache_dir())
            .output()
            .expect("run bosun");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, _, err) = bosun(&["up"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("sandbox ready in"), "{err}");
    for step in [
        "etcd",
        "kube-apiserver",
        "openbao",
        "flux CRDs",
        "gitops remote",
    ] {
        assert!(err.contains(step), "progress for {step} missing: {err}");
    }
    let st = sandbox::load_state(&dir).expect("state").expect("running");
    eprintln!("sandbox ready in {} ms", st.ready_ms);
    assert!(st.all_alive());
    // the stand-in kubelet runs by default: a Deployment created on `sandbox up` becomes Ready
    assert!(err.contains(sandbox::KUBELET), "{err}");
    assert!(
        st.processes.iter().any(|p| p.name == sandbox::KUBELET),
        "{:?}",
        st.processes
    );
    deployment_becomes_ready(&st.kubeconfig);

    let (code, out, _) = bosun(&["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("kube-apiserver") && out.contains("running"),
        "{out}"
    );

    let (code, _, err) = bosun(&["up"]);
    assert_eq!(code, 1);
    assert!(err.contains("already running"), "{err}");

    let (code, out, _) = bosun(&["env"]);
    assert_eq!(code, 0);
    for var in [
        "KUBECONFIG=",
        "VAULT_ADDR=",
        "VAULT_TOKEN=",
        "BOSUN_GITOPS_REMOTE=",
    ] {
        assert!(
            out.contains(&format!("export {var}")),
            "{var} missing: {out}"
        );
    }
    // the env really points at the sandbox: kubectl through it
    let kubectl = need("kubectl");
    let (ok, ns) = run(Command::new(&kubectl)
        .env("KUBECONFIG", &st.kubeconfig)
        .args(["get", "namespaces", "-o", "name"]));
    assert!(ok && ns.contains("namespace/kube-system"), "{ns}");

    let (code, _, err) = bosun(&["down"]);
    assert_eq!(code, 0, "{err}");
    for p in &st.processes {
        assert!(
            !sandbox::process::alive(p.pid, &p.exe),
            "{} still running",
            p.name
        );
    }
    assert!(!dir.exists());
    let (code, _, err) = bosun(&["status"]);
    assert_eq!(code, 1);
    assert!(err.contains("no sandbox is running"), "{err}");
}

#[test]
fn a_missing_component_fails_with_the_install_command() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = common::bosun_cmd(home.path())
        .env("PATH", "/usr/bin:/bin")
        .env("BOSUN_CACHE", home.path().join("empty-cache"))
        .args(["sandbox", "up", "--dir"])
        .arg(home.path().join("sb"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not found") && err.contains("scripts/install-deps.sh"),
        "{err}"
    );
}
