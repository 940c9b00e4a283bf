//! `bosun sandbox up | down | status | env`.

use super::exit;
use bosun::sandbox::{self, Progress, UpOptions};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// Start etcd, kube-apiserver, kube-controller-manager, OpenBao and a GitOps remote.
    Up {
        /// Skip kube-controller-manager (faster, less memory; no namespace deletion or GC).
        #[arg(long)]
        no_controller_manager: bool,
        /// Do not run the stand-in kubelet: pods then stay Pending unless you set their status.
        #[arg(long)]
        no_kubelet: bool,
    },
    /// The stand-in kubelet `up` starts (binds pods, reports them Ready, finishes deletions; runs
    /// no containers). Runs until stopped.
    #[command(hide = true)]
    Kubelet {
        /// The sandbox's kubeconfig.
        #[arg(long)]
        kubeconfig: PathBuf,
    },
    /// Stop exactly the processes `up` started and remove the state directory.
    Down,
    /// Show each component and the endpoints.
    Status,
    /// Print shell exports: eval "$(bosun sandbox env)".
    Env,
}

/// This `bosun` executable, to run as the sandbox's stand-in kubelet.
fn kubelet_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().map_err(|e| {
        anyhow::anyhow!(
            "cannot find the bosun executable to run the stand-in kubelet ({e}); pass --no-kubelet"
        )
    })
}

/// Start a sandbox with the stand-in kubelet (as `bosun sandbox up` does), with progress.
pub async fn up_with_kubelet(dir: &Path) -> anyhow::Result<sandbox::SandboxState> {
    let opts = UpOptions {
        kubelet: Some(kubelet_exe()?),
        ..Default::default()
    };
    up_with_progress(dir, opts).await
}

/// Start a sandbox with a progress display on stderr.
pub async fn up_with_progress(
    dir: &Path,
    opts: UpOptions,
) -> anyhow::Result<sandbox::SandboxState> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(80));
    let pending: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let cb = |p: Progress| {
        let mut pend = match pending.lock() {
            Ok(g) => g,
            Err(e) => e.into_inner(),
        };
        match p {
            Progress::Started(s) => pend.push(s),
            Progress::Ready { step, ms } => {
                pend.retain(|s| *s != step);
                let line = format!("  ✓ {step:<16} {:>6.2} s", ms as f64 / 1000.0);
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
            }
        }
        bar.set_message(format!("starting {}", pend.join(", ")));
    };
    let r = sandbox::up(dir, opts, &cb).await;
    bar.finish_and_clear();
    Ok(r?)
}

pub async fn sandbox(cmd: SandboxCmd, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = dir.unwrap_or_else(sandbox::default_dir);
    match cmd {
        SandboxCmd::Kubelet { kubeconfig } => {
            let cluster = bosun::kube_client::connect(&bosun::kube_client::KubeTarget {
                kubeconfig: Some(kubeconfig),
                context: None,
            })
            .await?;
            eprintln!(
                "stand-in kubelet: serving every namespace not labelled {}=off",
                sandbox::kubelet::OPT_OUT_LABEL
            );
            sandbox::kubelet::serve_all(cluster.client, Default::default()).await;
            Ok(ExitCode::from(exit::SUCCESS))
        }
        SandboxCmd::Up {
            no_controller_manager,
            no_kubelet,
        } => {
            let opts = UpOptions {
                controller_manager: !no_controller_manager,
                kubelet: if no_kubelet {
                    None
                } else {
                    Some(kubelet_exe()?)
                },
                ..Default::default()
            };
            match up_with_progress(&dir, opts).await {
                Ok(st) => {
                    eprintln!(
                        "sandbox ready in {:.2} s ({})",
                        st.ready_ms as f64 / 1000.0,
                        st.dir.display()
                    );
                    eprintln!("  kube-apiserver  {}", st.api_url);
                    eprintln!("  openbao         {}", st.vault_addr);
                    eprintln!("  gitops remote   {}", st.gitops_remote.display());
                    eprintln!("point your shell at it:  eval \"$(bosun sandbox env)\"");
                    Ok(ExitCode::from(exit::SUCCESS))
                }
                Err(e) => {
                    eprintln!("bosun: sandbox: {e:#}");
                    Ok(ExitCode::from(exit::TASK_FAILED))
                }
            }
        }
        SandboxCmd::Down => match sandbox::down(&dir) {
            Ok(st) => {
                eprintln!(
                    "stopped {} processes; removed {}",
                    st.processes.len(),
                    dir.display()
                );
                Ok(ExitCode::from(exit::SUCCESS))
            }
            Err(e) => {
                eprintln!("bosun: sandbox: {e}");
                Ok(ExitCode::from(exit::TASK_FAILED))
            }
        },
        SandboxCmd::Status => match sandbox::status(&dir) {
            Ok((st, comps)) => {
                println!("sandbox {} (started {})", st.dir.display(), st.started_at);
                for c in &comps {
                    println!(
                        "  {:<24} pid {:<8} {}",
                        c.name,
                        c.pid,
                        if c.alive { "running" } else { "NOT RUNNING" }
                    );
                }
                println!("  kube-apiserver  {}", st.api_url);
                println!("  openbao         {}", st.vault_addr);
                println!("  gitops remote   {}", st.gitops_remote.display());
                let all = comps.iter().all(|c| c.alive);
                if !all {
                    eprintln!("some components are down: `bosun sandbox down && bosun sandbox up` to restart");
                }
                Ok(ExitCode::from(if all {
                    exit::SUCCESS
                } else {
                    exit::TASK_FAILED
                }))
            }
            Err(e) => {
                eprintln!("bosun: sandbox: {e}");
                Ok(ExitCode::from(exit::TASK_FAILED))
            }
        },
        SandboxCmd::Env => match sandbox::load_state(&dir)? {
            Some(st) => {
                print!("{}", st.env_exports());
                Ok(ExitCode::from(exit::SUCCESS))
            }
            None => {
                eprintln!(
                    "bosun: no sandbox in {}; start one with `bosun sandbox up`",
                    dir.display()
                );
                Ok(ExitCode::from(exit::TASK_FAILED))
            }
        },
    }
}
