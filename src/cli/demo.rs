//! `bosun demo`: the main job with no API key. Brings up (or reuses) the sandbox, seeds two
//! namespaces — one healthy, one with a crash-looping pod — and runs the sample task against the
//! scripted model. The model's words are a replay; the tool calls run for real.

use super::{exit, run, sandbox_cmd, OutputFormat};
use anyhow::Context;
use bosun::agent::Agent;
use bosun::config::ModelConfig;
use bosun::kube_client::KubeTarget;
use bosun::model::OpenAiClient;
use bosun::sandbox;
use bosun::scripted::{Script, ScriptedServer};
use bosun::session::{Runtime, RuntimeOptions};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

const SCRIPT: &str = include_str!("../../examples/demo.script.yaml");
pub const TASK: &str = "How many namespaces does the cluster have, and which look unhealthy?";
/// The sample task for a small local model: one step, one tool call.
pub const LOCAL_TASK: &str = "List the pods in namespace payments. Which of them are unhealthy?";

async fn seed(kubeconfig: &Path) -> anyhow::Result<()> {
    let cluster = bosun::kube_client::connect(&KubeTarget {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: None,
    })
    .await?;
    let c = cluster.client;
    for (ns, pod, image, bad) in [
        ("shop", "shop-web", "nginx:1.27.2", false),
        (
            "payments",
            "payments-api",
            "ghcr.io/example/payments:1.4.2",
            true,
        ),
    ] {
        let nss: Api<Namespace> = Api::all(c.clone());
        // the demo plays the kubelet for its pods: the sandbox's stand-in leaves them alone
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns,
            "labels": {(bosun::sandbox::kubelet::OPT_OUT_LABEL): "off"}}}))?;
        match nss.create(&PostParams::default(), &n).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).context(format!("creating namespace {ns}")),
        }
        let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": pod, "labels": {"app": pod}},
            "spec": {"containers": [{"name": "main", "image": image}]}
        }))?;
        match pods.create(&PostParams::default(), &p).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).context(format!("creating pod {ns}/{pod}")),
        }
        // no kubelet in the sandbox: set the status a kubelet would report
        let state = if bad {
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}})
        } else {
            json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
        };
        let status = json!({"status": {"phase": "Running", "containerStatuses": [{
            "name": "main", "image": image, "imageID": "", "ready": !bad,
            "restartCount": if bad { 7 } else { 0 }, "state": state}]}});
        pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .with_context(|| format!("setting the status of {ns}/{pod}"))?;
    }
    Ok(())
}

/// The model `scripts/install-local-model.sh` installs.
fn default_local_model() -> std::path::PathBuf {
    sandbox::cache_dir().join("models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
}

/// Run the sample task with a real local model (no script: the model's own answer).
async fn demo_local(
    agent_dir: &Path,
    state: &sandbox::SandboxState,
    gguf: &Path,
) -> anyhow::Result<ExitCode> {
    use super::local::{LocalServer, Log, ServerOpts};
    if !gguf.is_file() {
        anyhow::bail!(
            "no model at {}: run scripts/install-local-model.sh (it installs the pinned Qwen2.5-Coder 0.5B GGUF), or pass --local PATH.gguf",
            gguf.display()
        );
    }
    let opts = ServerOpts {
        threads: None,
        ctx: 8192,
        template: "auto".into(),
        engine: super::local::Engine::Auto,
    };
    let port = sandbox::process::free_port()?;
    let mut server = LocalServer::start(gguf, port, &opts, Log::File)?;
    eprintln!("starting the local model server ({}) …", gguf.display());
    server
        .wait_healthy(std::time::Duration::from_secs(300))
        .await?;
    eprintln!(
        "model: {} on a local llama.cpp server at {} — a real model on this CPU: the first turn takes about half a minute\n",
        server.model, server.base_url
    );
    let loaded = Agent::load(agent_dir).map_err(|d| {
        anyhow::anyhow!("{d}\n(run the demo from the bosun repository, or pass --agent DIR)")
    })?;
    let cfg = ModelConfig {
        base_url: Some(server.base_url.clone()),
        model: server.model.clone(),
        temperature: Some(0.0),
        max_tokens: Some(1024),
        timeout_secs: 600,
        ..Default::default()
    };
    let opts = RuntimeOptions {
        kube: KubeTarget {
            kubeconfig: Some(state.kubeconfig.clone()),
            context: None,
        },
        max_turns: Some(8),
        ..Default::default()
    };
    let (rt, _) = Runtime::new(loaded.agent, Arc::new(OpenAiClient::new(&cfg)?), opts)?;
    eprintln!("task: {LOCAL_TASK}\n");
    let code = run::run_task(
        Arc::new(rt),
        LOCAL_TASK,
        OutputFormat::Text,
        false,
        None,
        &run::Outputs::default(),
    )
    .await;
    server.stop();
    code
}

pub async fn demo(
    agent_dir: &Path,
    keep: bool,
    local: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    let dir = sandbox::default_dir();
    let (state, started_here) = match sandbox::load_state(&dir)? {
        Some(st) if st.all_alive() => {
            eprintln!("using the running sandbox in {}", dir.display());
            (st, false)
        }
        _ => {
            eprintln!("starting a sandbox in {} …", dir.display());
            let st = sandbox_cmd::up_with_kubelet(&dir).await?;
            eprintln!("sandbox ready in {:.2} s", st.ready_ms as f64 / 1000.0);
            (st, true)
        }
    };
    let result = async {
        seed(&state.kubeconfig).await?;
        if let Some(path) = &local {
            let gguf = if path.as_os_str() == "auto" {
                default_local_model()
            } else {
                path.clone()
            };
            return demo_local(agent_dir, &state, &gguf).await;
        }
        let server = ScriptedServer::start(Script::from_yaml(SCRIPT)?).await?;
        eprintln!(
            "model: scripted replay at {} (no API key needed; the tool calls below run for real)\n",
            server.base_url()
        );
        let loaded = Agent::load(agent_dir).map_err(|d| {
            anyhow::anyhow!("{d}\n(run the demo from the bosun repository, or pass --agent DIR)")
        })?;
        let cfg = ModelConfig {
            base_url: Some(server.base_url()),
            model: "scripted-demo".into(),
            ..Default::default()
        };
        let opts = RuntimeOptions {
            kube: KubeTarget {
                kubeconfig: Some(state.kubeconfig.clone()),
                context: None,
            },
            ..Default::default()
        };
        let (rt, _) = Runtime::new(loaded.agent, Arc::new(OpenAiClient::new(&cfg)?), opts)?;
        eprintln!("task: {TASK}\n");
        let code = run::run_task(
            Arc::new(rt),
            TASK,
            OutputFormat::Text,
            false,
            None,
            &run::Outputs::default(),
        )
        .await?;
        let failures = server.failures();
        if !failures.is_empty() {
            for f in failures {
                eprintln!("{f}");
            }
            return Ok(ExitCode::from(exit::TASK_FAILED));
        }
        Ok::<_, anyhow::Error>(code)
    }
    .await;
    if started_here && !keep {
        if let Err(e) = sandbox::down(&dir) {
            eprintln!("bosun: stopping the sandbox: {e}");
        } else {
            eprintln!("\nsandbox stopped (run `bosun demo --keep` or `bosun sandbox up` to keep one running)");
        }
    } else if started_here {
        eprintln!("\nsandbox left running: eval \"$(bosun sandbox env)\"; stop it with `bosun sandbox down`");
    }
    result
}
