//! The integration-test harness: one real sandbox per test binary (etcd, kube-apiserver,
//! kube-controller-manager, OpenBao, a bare git remote), and fresh, isolated resources per test —
//! a namespace, a vault path, a git remote — so tests can run in parallel.
//!
//! The sandbox's processes are tied to the harness thread (PR_SET_PDEATHSIG): when the test
//! binary exits — normally, on panic or when killed — the kernel stops them. Set
//! `BOSUN_TEST_SANDBOX_DIR` to the state directory of a running `bosun sandbox up` to reuse it.
//! A missing component fails the test with the install command; nothing is skipped.
#![allow(dead_code)]

use bosun::sandbox::{self, Lifetime, SandboxState, UpOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static SANDBOX: OnceLock<Result<SandboxState, String>> = OnceLock::new();

/// The shared sandbox, started on first use.
pub fn sandbox() -> &'static SandboxState {
    match SANDBOX.get_or_init(start) {
        Ok(s) => s,
        Err(e) => panic!("the test sandbox could not start: {e}"),
    }
}

fn start() -> Result<SandboxState, String> {
    bosun::init_crypto();
    if let Some(dir) = std::env::var_os("BOSUN_TEST_SANDBOX_DIR") {
        if let Ok(Some(st)) = sandbox::load_state(Path::new(&dir)) {
            if st.all_alive() {
                return Ok(st);
            }
        }
        return Err(format!(
            "BOSUN_TEST_SANDBOX_DIR={} holds no running sandbox; start one with `bosun sandbox up --dir …` or unset it",
            Path::new(&dir).display()
        ));
    }
    clean_stale();
    let dir = std::env::temp_dir().join(format!("bosun-test-{}", std::process::id()));
    let (tx, rx) = std::sync::mpsc::channel();
    // the processes die with this thread, so it lives as long as the test binary
    std::thread::Builder::new()
        .name("bosun-test-sandbox".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            // no stand-in kubelet: tests set pod status themselves (`pod_with_status`,
            // `mark_pods_ready`)
            let opts = UpOptions {
                lifetime: Lifetime::TiedToParent,
                controller_manager: true,
                kubelet: None,
            };
            let r = rt.block_on(sandbox::up(&dir, opts, &|_| {}));
            let _ = tx.send(r.map_err(|e| e.to_string()));
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

/// Remove state dirs of earlier test runs whose process is gone.
fn clean_stale() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name
            .strip_prefix("bosun-test-")
            .and_then(|p| p.parse::<u32>().ok())
        {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// A short random suffix for names.
pub fn suffix() -> String {
    use rand::Rng;
    let mut r = rand::rng();
    (0..6)
        .map(|_| (b'a' + r.random_range(0..26u8)) as char)
        .collect()
}

/// A kube client for the sandbox.
pub async fn kube() -> kube::Client {
    let st = sandbox();
    bosun::kube_client::connect(&bosun::kube_client::KubeTarget {
        kubeconfig: Some(st.kubeconfig.clone()),
        context: None,
    })
    .await
    .unwrap_or_else(|e| panic!("connecting to the sandbox: {e}"))
    .client
}

/// A fresh namespace `<prefix>-<random>`, created now.
pub async fn namespace(prefix: &str) -> String {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    let name = format!("{prefix}-{}", suffix());
    let api: Api<Namespace> = Api::all(kube().await);
    // tests play the kubelet themselves: a reused `bosun sandbox up` sandbox's stand-in kubelet
    // leaves their namespaces alone
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name,
        "labels": {(bosun::sandbox::kubelet::OPT_OUT_LABEL): "off"}}}))
    .expect("namespace object");
    api.create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

/// A fresh KV path prefix for this test: `tests/<random>`.
pub fn vault_path() -> String {
    format!("tests/{}", suffix())
}

/// A fresh bare git remote (with one commit on main) in a temp dir.
pub fn git_remote() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("remote.git");
    sandbox::init_remote(&p).expect("init bare remote");
    (d, p)
}

/// The repository root (the default agent lives here).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bosun binary under test.
pub fn bosun_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bosun"))
}

/// A `bosun` command with a clean, hermetic environment: no user config, no API key, the
/// sandbox's kubeconfig.
pub fn bosun_cmd(home: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(bosun_bin());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("RUST_LOG", "warn");
    c
}

/// Create a pod and set its status the way a kubelet would (the sandbox has no kubelet).
pub async fn pod_with_status(
    ns: &str,
    name: &str,
    ready: bool,
    waiting_reason: Option<&str>,
    restarts: i32,
) {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let api: Api<Pod> = Api::namespaced(kube().await, ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "registry.example/app:1.0.0"}]}
    }))
    .expect("pod object");
    api.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("creating pod {ns}/{name}: {e}"));
    let state = match waiting_reason {
        Some(r) => serde_json::json!({"waiting": {"reason": r}}),
        None => serde_json::json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
    };
    let status = serde_json::json!({"status": {"phase": "Running", "containerStatuses": [{
        "name": "main", "image": "registry.example/app:1.0.0", "imageID": "",
        "ready": ready, "restartCount": restarts, "state": state}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("setting status of {ns}/{name}: {e}"));
}

/// The sandbox as a kube target for tools.
pub fn kube_target() -> bosun::kube_client::KubeTarget {
    bosun::kube_client::KubeTarget {
        kubeconfig: Some(sandbox().kubeconfig.clone()),
        context: None,
    }
}

/// The sandbox's OpenBao as a vault configuration.
pub fn vault_config() -> bosun::tools::vault::VaultConfig {
    let st = sandbox();
    bosun::tools::vault::VaultConfig {
        addr: st.vault_addr.clone(),
        token: st.vault_token.clone(),
        namespace: None,
        ca_cert: None,
    }
}

/// Drives tools the way the session does: the shipped agent's registry, the real guard,
/// `admit` → `execute` → `record`.
pub struct Driver {
    pub registry: bosun::tools::Registry,
    pub guard: bosun::guard::Guard,
    pub ctx: bosun::tools::ToolCtx,
    /// Every call's arguments and its output or refusal, in order (for leak scans).
    pub transcript: std::sync::Mutex<Vec<(String, String)>>,
    /// Every tool result and error before redaction (a tool should not rely on the redactor).
    pub raw: std::sync::Mutex<Vec<String>>,
    next: std::sync::atomic::AtomicU32,
    _workspace: Option<tempfile::TempDir>,
}

/// What the guard or the tool said.
#[derive(Debug)]
pub enum Outcome {
    Ok(String),
    /// The tool ran and failed.
    Failed(String),
    /// The guard refused the call.
    Refused(String),
}

impl Outcome {
    pub fn ok(self) -> String {
        match self {
            Outcome::Ok(s) => s,
            other => panic!("expected success, got {other:?}"),
        }
    }
    pub fn failed(self) -> String {
        match self {
            Outcome::Failed(s) => s,
            other => panic!("expected a tool failure, got {other:?}"),
        }
    }
    pub fn refused(self) -> String {
        match self {
            Outcome::Refused(s) => s,
            other => panic!("expected a guard refusal, got {other:?}"),
        }
    }
}

impl Driver {
    /// The shipped agent's tools, with `replace` substituted by name (tests configure a tool
    /// explicitly instead of through environment variables), a guard with `approver`, and a
    /// fresh workspace.
    pub fn new(
        replace: Vec<std::sync::Arc<dyn bosun::tools::Tool>>,
        approver: Option<std::sync::Arc<dyn bosun::guard::Approver>>,
    ) -> Self {
        let ws = tempfile::tempdir().expect("workspace");
        let mut d = Self::with_workspace(replace, approver, ws.path().to_path_buf());
        d._workspace = Some(ws);
        d
    }

    pub fn with_workspace(
        replace: Vec<std::sync::Arc<dyn bosun::tools::Tool>>,
        approver: Option<std::sync::Arc<dyn bosun::guard::Approver>>,
        workspace: PathBuf,
    ) -> Self {
        Self::build(&repo_root(), replace, approver, workspace, kube_target())
    }

    /// The agent in `agent_dir` (e.g. a copy of the shipped one with a changed tool list), offline.
    pub fn for_agent(
        agent_dir: &Path,
        replace: Vec<std::sync::Arc<dyn bosun::tools::Tool>>,
        approver: Option<std::sync::Arc<dyn bosun::guard::Approver>>,
        workspace: PathBuf,
    ) -> Self {
        Self::build(agent_dir, replace, approver, workspace, Default::default())
    }

    /// Like `with_workspace`, without starting the sandbox (for tools that need no cluster).
    pub fn offline(
        replace: Vec<std::sync::Arc<dyn bosun::tools::Tool>>,
        approver: Option<std::sync::Arc<dyn bosun::guard::Approver>>,
        workspace: PathBuf,
    ) -> Self {
        Self::build(
            &repo_root(),
            replace,
            approver,
            workspace,
            Default::default(),
        )
    }

    fn build(
        agent_dir: &Path,
        replace: Vec<std::sync::Arc<dyn bosun::tools::Tool>>,
        approver: Option<std::sync::Arc<dyn bosun::guard::Approver>>,
        workspace: PathBuf,
        kube: bosun::kube_client::KubeTarget,
    ) -> Self {
        let loaded = bosun::agent::Agent::load(agent_dir).expect("the agent loads");
        let mut impls = bosun::tools::implementations(&loaded.agent, &kube);
        for r in replace {
            impls.retain(|t| t.name() != r.name());
            impls.push(r);
        }
        let (registry, _warnings) = match bosun::tools::Registry::build(&loaded.agent, impls) {
            Ok(r) => r,
            Err(d) => panic!("registry: {d:?}"),
        };
        // the agent's own policy, as the runtime uses it
        let mut cfg = bosun::guard::GuardConfig {
            policy: std::sync::Arc::new(loaded.agent.policy.clone()),
            ..Default::default()
        };
        if let Some(a) = approver {
            cfg.approver = a;
        }
        let mut ctx = bosun::tools::ToolCtx::new(workspace);
        ctx.environments = std::sync::Arc::new(cfg.policy.environments.clone());
        Self {
            registry,
            guard: bosun::guard::Guard::new(cfg),
            ctx,
            transcript: std::sync::Mutex::new(Vec::new()),
            raw: std::sync::Mutex::new(Vec::new()),
            next: std::sync::atomic::AtomicU32::new(0),
            _workspace: None,
        }
    }

    /// An approver that approves everything in dev and outside Kubernetes.
    pub fn dev_approver() -> std::sync::Arc<dyn bosun::guard::Approver> {
        std::sync::Arc::new(bosun::guard::PolicyApprover {
            environments: vec![bosun::policy::Environment::Dev],
            others: true,
            who: "test".into(),
        })
    }

    /// One call in planner state `state`. The output is redacted as the session does.
    pub async fn call(
        &self,
        tool: &str,
        args: serde_json::Value,
        state: bosun::planner::State,
    ) -> Outcome {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let call = bosun::model::ToolCall {
            id: format!("call-{n}"),
            name: tool.to_string(),
            arguments: args.to_string(),
        };
        // the production call path (bosun::dispatch), step by step to keep the raw output
        let env = self.env();
        let adm = env.admit(&call, state).await;
        let outcome = match adm.admitted {
            None => {
                let out = env.finish(&call, false, &adm.refusal.unwrap_or_default(), adm.started);
                Outcome::Refused(out)
            }
            Some(a) => {
                let ex = env.execute(a).await;
                self.raw.lock().expect("raw").push(ex.output.clone());
                let out = env.finish(&call, ex.ok, &ex.output, adm.started);
                if ex.ok {
                    Outcome::Ok(out)
                } else {
                    Outcome::Failed(out)
                }
            }
        };
        let text = match &outcome {
            Outcome::Ok(s) | Outcome::Failed(s) | Outcome::Refused(s) => s.clone(),
        };
        eprintln!("[{tool} {}] {text}", args["operation"]);
        self.transcript
            .lock()
            .expect("transcript")
            .push((format!("{tool} {args}"), text));
        outcome
    }

    /// The one call path with this driver's registry, guard and context.
    pub fn env(&self) -> bosun::dispatch::CallEnv<'_> {
        bosun::dispatch::CallEnv {
            registry: &self.registry,
            ctx: &self.ctx,
            guard: &self.guard,
            audit: None,
            file: None,
            events: None,
            interrupt: None,
        }
    }

    /// Every output and refusal so far.
    pub fn outputs(&self) -> Vec<String> {
        self.transcript
            .lock()
            .expect("transcript")
            .iter()
            .map(|(_, o)| o.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Driving tools through the real guard, as the runtime does.

/// The shipped agent's registry, a guard and a tool context, pointed at a kubeconfig.
pub struct Harness {
    pub registry: bosun::tools::Registry,
    pub guard: bosun::guard::Guard,
    pub ctx: bosun::tools::ToolCtx,
    /// The Ctrl-C switch calls are raced against, as a session's are (off unless a test flips it).
    pub interrupt: bosun::session::Interrupt,
    next_id: std::sync::atomic::AtomicUsize,
}

impl Harness {
    /// The shipped agent against the sandbox, with `cfg` for the guard.
    pub fn new(cfg: bosun::guard::GuardConfig) -> Self {
        Self::with_kubeconfig(cfg, sandbox().kubeconfig.clone())
    }

    /// The shipped agent against another kubeconfig (e.g. an impersonating one).
    pub fn with_kubeconfig(cfg: bosun::guard::GuardConfig, kubeconfig: PathBuf) -> Self {
        let agent = bosun::agent::Agent::load(&repo_root())
            .unwrap_or_else(|e| panic!("the shipped agent must load: {e}"))
            .agent;
        let impls = bosun::tools::implementations(
            &agent,
            &bosun::kube_client::KubeTarget {
                kubeconfig: Some(kubeconfig),
                context: None,
            },
        );
        let (registry, _) = bosun::tools::Registry::build(&agent, impls)
            .unwrap_or_else(|e| panic!("registry: {e:?}"));
        let workspace = tempfile::tempdir().expect("workspace").keep();
        let mut ctx = bosun::tools::ToolCtx::new(workspace);
        ctx.environments = std::sync::Arc::new(cfg.policy.environments.clone());
        Self {
            registry,
            guard: bosun::guard::Guard::new(cfg),
            ctx,
            interrupt: Default::default(),
            next_id: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Use a real vault resolver (the sandbox's OpenBao) for `vault:` references.
    pub fn with_vault(mut self) -> Self {
        let st = sandbox();
        self.ctx.secrets = std::sync::Arc::new(OpenBaoResolver {
            addr: st.vault_addr.clone(),
            token: st.vault_token.clone(),
            redactor: self.ctx.redactor.clone(),
        });
        self
    }

    /// One tool call: guard admission in `state`, execution, record. `Err` starts with
    /// `refused:` for guard refusals and `error:` for tool errors.
    pub async fn call(
        &self,
        tool: &str,
        args: serde_json::Value,
        state: bosun::planner::State,
    ) -> Result<String, String> {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let call = bosun::model::ToolCall {
            id: format!("call-{n}"),
            name: tool.to_string(),
            arguments: args.to_string(),
        };
        // the production call path (bosun::dispatch)
        let env = bosun::dispatch::CallEnv {
            registry: &self.registry,
            ctx: &self.ctx,
            guard: &self.guard,
            audit: None,
            file: None,
            events: None,
            interrupt: Some(&self.interrupt),
        };
        let d = env.call(&call, state).await;
        match (d.ok, d.ran.is_some()) {
            (true, _) => Ok(d.output),
            (false, true) => Err(d.output),
            (false, false) => Err(format!("refused: {}", d.decision.reason)),
        }
    }
}

/// Resolves `vault:<mount>/<path>#<key>` against the sandbox's OpenBao (KV v2), registering
/// every value with the redactor first.
pub struct OpenBaoResolver {
    pub addr: String,
    pub token: String,
    pub redactor: std::sync::Arc<bosun::redact::Redactor>,
}

impl bosun::secrets::SecretResolver for OpenBaoResolver {
    fn resolve<'a>(
        &'a self,
        r: &'a bosun::secrets::VaultRef,
    ) -> futures::future::BoxFuture<'a, Result<String, bosun::secrets::SecretError>> {
        Box::pin(async move {
            let url = format!("{}/v1/{}/data/{}", self.addr, r.mount, r.path);
            let fail = |detail: String| bosun::secrets::SecretError::Failed {
                reference: r.to_string(),
                detail,
            };
            let resp = reqwest::Client::new()
                .get(&url)
                .header("X-Vault-Token", &self.token)
                .send()
                .await
                .map_err(|e| fail(e.to_string()))?;
            if resp.status().as_u16() == 404 {
                return Err(bosun::secrets::SecretError::NotFound {
                    reference: r.to_string(),
                });
            }
            let v: serde_json::Value = resp.json().await.map_err(|e| fail(e.to_string()))?;
            let value = v["data"]["data"][&r.key]
                .as_str()
                .ok_or(bosun::secrets::SecretError::NotFound {
                    reference: r.to_string(),
                })?
                .to_string();
            self.redactor.register(&value);
            Ok(value)
        })
    }
}

/// Write a KV v2 secret into the sandbox's OpenBao.
pub async fn vault_write(path: &str, data: serde_json::Value) {
    let st = sandbox();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/secret/data/{path}", st.vault_addr))
        .header("X-Vault-Token", &st.vault_token)
        .json(&serde_json::json!({ "data": data }))
        .send()
        .await
        .expect("vault write");
    assert!(r.status().is_success(), "vault write: {}", r.status());
}

/// Create any object from JSON (test setup, not through the tools).
pub async fn create(obj: serde_json::Value) -> kube::api::DynamicObject {
    use kube::api::{Api, DynamicObject, PostParams};
    let client = kube().await;
    let api_version = obj["apiVersion"].as_str().expect("apiVersion").to_string();
    let kind = obj["kind"].as_str().expect("kind").to_string();
    let gvk = match api_version.split_once('/') {
        Some((g, v)) => kube::api::GroupVersionKind::gvk(g, v, &kind),
        None => kube::api::GroupVersionKind::gvk("", &api_version, &kind),
    };
    let (ar, caps) = kube::discovery::pinned_kind(&client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discovering {api_version} {kind}: {e}"));
    let api: Api<DynamicObject> = match (obj["metadata"]["namespace"].as_str(), caps.scope) {
        (Some(ns), kube::discovery::Scope::Namespaced) => Api::namespaced_with(client, ns, &ar),
        _ => Api::all_with(client, &ar),
    };
    let o: DynamicObject = serde_json::from_value(obj.clone()).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .unwrap_or_else(|e| panic!("creating {kind}: {e}"))
}

/// Set the status of an object through its status subresource (merge patch).
pub async fn set_status(
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
    status: serde_json::Value,
) {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    let client = kube().await;
    let gvk = match api_version.split_once('/') {
        Some((g, v)) => kube::api::GroupVersionKind::gvk(g, v, kind),
        None => kube::api::GroupVersionKind::gvk("", api_version, kind),
    };
    let (ar, _) = kube::discovery::pinned_kind(&client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discovering {kind}: {e}"));
    let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &ar);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("setting status of {kind} {ns}/{name}: {e}"));
}

/// Do what a kubelet would: mark every pod matching `selector` in `ns` Running and Ready with
/// an IP, so the ReplicaSet, Deployment and Endpoints controllers see them ready. Waits (up to
/// 20 s) until at least `min` pods exist.
pub async fn mark_pods_ready(ns: &str, selector: &str, min: usize) -> Vec<String> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams};
    let api: Api<Pod> = Api::namespaced(kube().await, ns);
    let started = std::time::Instant::now();
    let pods = loop {
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list pods");
        if list.items.len() >= min || started.elapsed().as_secs() > 20 {
            break list.items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert!(
        pods.len() >= min,
        "only {} pods match {selector} in {ns}",
        pods.len()
    );
    // the scheduler's and kubelet's part, as the evals' stand-in kubelet does it
    bosun::sandbox::kubelet::reconcile_selected(
        &kube().await,
        ns,
        Some(selector),
        &Default::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("marking pods {selector} in {ns} ready: {e}"));
    pods.iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

/// The `tool` messages of a request the scripted model recorded, in order.
pub fn tool_results(req: &serde_json::Value) -> Vec<String> {
    req["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["role"] == "tool")
                .filter_map(|m| m["content"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
