//! `bosun sandbox`: a throwaway, real local platform on 127.0.0.1 — etcd, kube-apiserver
//! (+ kube-controller-manager), an OpenBao dev server, a bare git repository as GitOps remote and —
//! when its binary is installed — a Prometheus scraping the API server and etcd, with the Flux CRDs
//! installed. Everything lives in one state directory; `down` stops exactly the
//! processes `up` started (pids checked against their executable) and removes it.
//!
//! Binaries are looked up in `$BOSUN_BIN_DIR`, then `~/.cache/bosun/bin` (where
//! `scripts/install-deps.sh` links them), then `$PATH`.

pub mod certs;
pub mod kubelet;
pub mod process;

pub use process::Lifetime;

/// Where bosun's `metrics` tool finds Prometheus (set by `sandbox env` when the sandbox runs one).
pub const PROMETHEUS_URL_ENV: &str = "BOSUN_PROMETHEUS_URL";

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The Flux CRDs, compiled in so the binary needs nothing at run time.
pub const FLUX_CRDS: &[(&str, &str)] = &[
    (
        "gitrepositories",
        include_str!("../../crds/flux/source.toolkit.fluxcd.io_gitrepositories.yaml"),
    ),
    (
        "ocirepositories",
        include_str!("../../crds/flux/source.toolkit.fluxcd.io_ocirepositories.yaml"),
    ),
    (
        "helmrepositories",
        include_str!("../../crds/flux/source.toolkit.fluxcd.io_helmrepositories.yaml"),
    ),
    (
        "helmcharts",
        include_str!("../../crds/flux/source.toolkit.fluxcd.io_helmcharts.yaml"),
    ),
    (
        "kustomizations",
        include_str!("../../crds/flux/kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
    ),
    (
        "helmreleases",
        include_str!("../../crds/flux/helm.toolkit.fluxcd.io_helmreleases.yaml"),
    ),
];

/// The Argo CD CRDs (Application, AppProject; from argoproj/argo-cd 3.6.0), compiled in like
/// Flux's: bosun works with Argo CD through them (there are no Argo CD controllers).
pub const ARGOCD_CRDS: &[(&str, &str)] = &[
    (
        "applications",
        include_str!("../../crds/argocd/application-crd.yaml"),
    ),
    (
        "appprojects",
        include_str!("../../crds/argocd/appproject-crd.yaml"),
    ),
];

const INSTALL_HINT: &str = "run scripts/install-deps.sh (it installs etcd, builds kube-apiserver, fetches helm and OpenBao into ~/.cache/bosun)";

/// Errors of the sandbox. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("`{name}` not found in $BOSUN_BIN_DIR, ~/.cache/bosun/bin or $PATH: {INSTALL_HINT}")]
    MissingBinary { name: String },
    #[error("a sandbox is already running in {dir} (started {started_at}); use it (`eval \"$(bosun sandbox env)\"`) or stop it with `bosun sandbox down`")]
    AlreadyRunning { dir: PathBuf, started_at: String },
    #[error("no sandbox is running in {dir}; start one with `bosun sandbox up`")]
    NotRunning { dir: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{component} did not become ready within {secs} s; last log lines ({log}):\n{tail}")]
    Timeout {
        component: String,
        secs: u64,
        log: PathBuf,
        tail: String,
    },
    #[error("{component} exited during start-up; last log lines ({log}):\n{tail}")]
    Exited {
        component: String,
        log: PathBuf,
        tail: String,
    },
    #[error("generating certificates: {0}")]
    Certs(String),
    #[error("setting up the cluster: {0}")]
    Kube(String),
    #[error("creating the GitOps remote: {0}")]
    Git(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let context = context.into();
    move |source| SandboxError::Io { context, source }
}

/// One process the sandbox started.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proc {
    pub name: String,
    pub pid: u32,
    /// Substring of the executable path, checked before signalling the pid.
    pub exe: String,
    pub log: PathBuf,
}

/// What a running sandbox is: written to `<dir>/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxState {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub env_file: PathBuf,
    pub api_url: String,
    pub vault_addr: String,
    pub vault_token: String,
    pub gitops_remote: PathBuf,
    /// The sandbox's Prometheus (scraping kube-apiserver and etcd every second); `None` when the
    /// `prometheus` binary is not installed (`scripts/install-deps.sh` installs it).
    #[serde(default)]
    pub prometheus_url: Option<String>,
    /// Why the installed Prometheus did not start, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_error: Option<String>,
    pub processes: Vec<Proc>,
    pub started_at: String,
    /// Milliseconds from `up` to ready.
    pub ready_ms: u64,
}

impl SandboxState {
    /// Shell lines that point a shell at this sandbox.
    pub fn env_exports(&self) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let prometheus = match &self.prometheus_url {
            Some(u) => format!("export {}={}\n", PROMETHEUS_URL_ENV, q(u)),
            None => String::new(),
        };
        prometheus
            + &format!(
            "export KUBECONFIG={}\nexport VAULT_ADDR={}\nexport VAULT_TOKEN={}\nexport BOSUN_GITOPS_REMOTE={}\nexport BOSUN_SANDBOX_DIR={}\n",
            q(&self.kubeconfig.display().to_string()),
            q(&self.vault_addr),
            q(&self.vault_token),
            q(&self.gitops_remote.display().to_string()),
            q(&self.dir.display().to_string()),
        )
    }

    /// Whether every process is alive.
    pub fn all_alive(&self) -> bool {
        self.processes.iter().all(|p| process::alive(p.pid, &p.exe))
    }
}

/// Start-up progress, for a frontend's progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Started(&'static str),
    Ready { step: &'static str, ms: u64 },
}

/// Options for [`up`].
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub lifetime: Lifetime,
    /// Also run kube-controller-manager (namespace deletion, garbage collection, ReplicaSets).
    pub controller_manager: bool,
    /// Run the stand-in kubelet ([`kubelet`]) for every namespace as a process of the sandbox:
    /// this `bosun` executable with `sandbox kubelet --kubeconfig …`. `None`: pods stay Pending
    /// unless someone sets their status.
    pub kubelet: Option<PathBuf>,
}

impl Default for UpOptions {
    fn default() -> Self {
        Self {
            lifetime: Lifetime::Detached,
            controller_manager: true,
            kubelet: None,
        }
    }
}

/// The name of the stand-in kubelet in [`SandboxState::processes`].
pub const KUBELET: &str = "stand-in-kubelet";

/// The default state directory: `$BOSUN_SANDBOX_DIR`, else `$XDG_STATE_HOME/bosun/sandbox`,
/// else `~/.local/state/bosun/sandbox`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BOSUN_SANDBOX_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("bosun/sandbox");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".local/state/bosun/sandbox")
}

/// The bosun cache directory (`$BOSUN_CACHE` or `~/.cache/bosun`).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BOSUN_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/bosun")
}

/// Find an executable: `$BOSUN_BIN_DIR`, `~/.cache/bosun/bin`, then `$PATH`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("BOSUN_BIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(cache_dir().join("bin"));
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        })
    })
}

fn need(name: &str) -> Result<PathBuf, SandboxError> {
    find_binary(name).ok_or_else(|| SandboxError::MissingBinary { name: name.into() })
}

/// Read the state of the sandbox in `dir`, if there is one.
pub fn load_state(dir: &Path) -> Result<Option<SandboxState>, SandboxError> {
    let p = dir.join("state.json");
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("reading {}", p.display()))(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| SandboxError::Io {
            context: format!(
                "parsing {} (remove the directory if it is stale)",
                p.display()
            ),
            source: std::io::Error::other(e),
        })
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect()
}

/// Start a sandbox in `dir`.
pub async fn up(
    dir: &Path,
    opts: UpOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<SandboxState, SandboxError> {
    let t0 = Instant::now();
    if let Some(st) = load_state(dir)? {
        if st.all_alive() {
            return Err(SandboxError::AlreadyRunning {
                dir: dir.to_path_buf(),
                started_at: st.started_at,
            });
        }
        // stale: stop what is left, start over
        stop_all(&st);
    }
    let etcd = need("etcd")?;
    let apiserver = need("kube-apiserver")?;
    let kcm = if opts.controller_manager {
        Some(need("kube-controller-manager")?)
    } else {
        None
    };
    let bao = need("bao")?;
    // optional: without it the sandbox runs, and the `metrics` tool says how to install it
    let prometheus = find_binary("prometheus");

    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(format!("removing stale {}", dir.display())))?;
    }
    let pki_dir = dir.join("pki");
    std::fs::create_dir_all(&pki_dir).map_err(io(format!("creating {}", pki_dir.display())))?;
    let write = |name: &str, content: &str| -> Result<PathBuf, SandboxError> {
        let p = dir.join(name);
        std::fs::write(&p, content).map_err(io(format!("writing {}", p.display())))?;
        Ok(p)
    };

    progress(Progress::Started("certificates"));
    let t = Instant::now();
    let pki = certs::generate().map_err(|e| SandboxError::Certs(e.to_string()))?;
    let ca = write("pki/ca.crt", &pki.ca_cert)?;
    write("pki/ca.key", &pki.ca_key)?;
    let server_crt = write("pki/apiserver.crt", &pki.server_cert)?;
    let server_key = write("pki/apiserver.key", &pki.server_key)?;
    let sa_key = write("pki/sa.key", &pki.sa_key)?;
    let sa_pub = write("pki/sa.pub", &pki.sa_pub)?;
    let token = random_token();
    let tokens = write(
        "pki/tokens.csv",
        &format!("{token},admin,admin-uid,\"system:masters\"\n"),
    )?;
    progress(Progress::Ready {
        step: "certificates",
        ms: t.elapsed().as_millis() as u64,
    });

    let etcd_port = process::free_port().map_err(io("finding a free port"))?;
    let etcd_peer = process::free_port().map_err(io("finding a free port"))?;
    let api_port = process::free_port().map_err(io("finding a free port"))?;
    let bao_port = process::free_port().map_err(io("finding a free port"))?;
    let prom_port = process::free_port().map_err(io("finding a free port"))?;
    let mut procs: Vec<Proc> = Vec::new();
    let result = async {
        // etcd and OpenBao start in parallel
        progress(Progress::Started("etcd"));
        let t_etcd = Instant::now();
        let etcd_log = dir.join("etcd.log");
        let pid = process::spawn(
            &etcd,
            &[
                "--name".into(),
                "bosun".into(),
                "--data-dir".into(),
                dir.join("etcd-data").display().to_string(),
                "--listen-client-urls".into(),
                format!("http://127.0.0.1:{etcd_port}"),
                "--advertise-client-urls".into(),
                format!("http://127.0.0.1:{etcd_port}"),
                "--listen-peer-urls".into(),
                format!("http://127.0.0.1:{etcd_peer}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://127.0.0.1:{etcd_peer}"),
                "--initial-cluster".into(),
                format!("bosun=http://127.0.0.1:{etcd_peer}"),
                "--unsafe-no-fsync".into(),
            ],
            &etcd_log,
            opts.lifetime,
        )
        .map_err(io(format!("starting {}", etcd.display())))?;
        procs.push(Proc {
            name: "etcd".into(),
            pid,
            exe: "etcd".into(),
            log: etcd_log.clone(),
        });

        progress(Progress::Started("openbao"));
        let t_bao = Instant::now();
        let bao_log = dir.join("openbao.log");
        let vault_token = random_token();
        let pid = process::spawn(
            &bao,
            &[
                "server".into(),
                "-dev".into(),
                format!("-dev-root-token-id={vault_token}"),
                format!("-dev-listen-address=127.0.0.1:{bao_port}"),
            ],
            &bao_log,
            opts.lifetime,
        )
        .map_err(io(format!("starting {}", bao.display())))?;
        procs.push(Proc {
            name: "openbao".into(),
            pid,
            exe: "bao".into(),
            log: bao_log.clone(),
        });

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| SandboxError::Kube(e.to_string()))?;
        wait_http(&http, &format!("http://127.0.0.1:{etcd_port}/health"), "etcd", &procs[0], 30).await?;
        progress(Progress::Ready {
            step: "etcd",
            ms: t_etcd.elapsed().as_millis() as u64,
        });

        progress(Progress::Started("kube-apiserver"));
        let t_api = Instant::now();
        let api_log = dir.join("kube-apiserver.log");
        let pid = process::spawn(
            &apiserver,
            &[
                format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--tls-cert-file={}", server_crt.display()),
                format!("--tls-private-key-file={}", server_key.display()),
                format!("--client-ca-file={}", ca.display()),
                format!("--token-auth-file={}", tokens.display()),
                "--service-account-issuer=https://kubernetes.default.svc".into(),
                format!("--service-account-key-file={}", sa_pub.display()),
                format!("--service-account-signing-key-file={}", sa_key.display()),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--authorization-mode=RBAC".into(),
                "--disable-admission-plugins=ServiceAccount".into(),
                "--allow-privileged=true".into(),
                "--endpoint-reconciler-type=none".into(),
            ],
            &api_log,
            opts.lifetime,
        )
        .map_err(io(format!("starting {}", apiserver.display())))?;
        procs.push(Proc {
            name: "kube-apiserver".into(),
            pid,
            exe: "kube-apiserver".into(),
            log: api_log.clone(),
        });

        let api_url = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = write(
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: bosun-sandbox\n  cluster:\n    server: {api_url}\n    certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    token: {token}\ncontexts:\n- name: bosun-sandbox\n  context: {{cluster: bosun-sandbox, user: admin, namespace: default}}\ncurrent-context: bosun-sandbox\n",
                ca = ca.display()
            ),
        )?;

        // the GitOps remote, while the API server starts
        progress(Progress::Started("gitops remote"));
        let t_git = Instant::now();
        let remote = dir.join("gitops.git");
        init_remote(&remote)?;
        progress(Progress::Ready {
            step: "gitops remote",
            ms: t_git.elapsed().as_millis() as u64,
        });

        wait_http(&http, &format!("http://127.0.0.1:{bao_port}/v1/sys/health"), "openbao", &procs[1], 30).await?;
        progress(Progress::Ready {
            step: "openbao",
            ms: t_bao.elapsed().as_millis() as u64,
        });

        let client = wait_apiserver(&kubeconfig, &api_url, &pki.ca_cert, &token, &procs[2], 60).await?;
        progress(Progress::Ready {
            step: "kube-apiserver",
            ms: t_api.elapsed().as_millis() as u64,
        });

        if let Some(kcm) = &kcm {
            let kcm_log = dir.join("kube-controller-manager.log");
            let pid = process::spawn(
                kcm,
                &[
                    format!("--kubeconfig={}", kubeconfig.display()),
                    "--leader-elect=false".into(),
                    "--port=0".into(),
                    "--secure-port=0".into(),
                    format!("--service-account-private-key-file={}", sa_key.display()),
                    format!("--root-ca-file={}", ca.display()),
                    "--use-service-account-credentials=false".into(),
                    "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service,-attachdetach,-persistentvolume-binder,-pv-protection,-pvc-protection,-ttl,-bootstrapsigner,-tokencleaner".into(),
                ],
                &kcm_log,
                opts.lifetime,
            )
            .map_err(io(format!("starting {}", kcm.display())))?;
            procs.push(Proc {
                name: "kube-controller-manager".into(),
                pid,
                exe: "kube-controller-manager".into(),
                log: kcm_log,
            });
        }

        progress(Progress::Started("flux CRDs"));
        let t_crd = Instant::now();
        install_crds(&client).await?;
        progress(Progress::Ready {
            step: "flux CRDs",
            ms: t_crd.elapsed().as_millis() as u64,
        });
        if kcm.is_some() {
            // the controllers are up once they act: the service-account controller creates
            // `default` in every namespace; nothing is "ready" before that
            progress(Progress::Started("controllers"));
            let t_kcm = Instant::now();
            wait_controllers(&client, &procs[procs.len() - 1], 60).await?;
            progress(Progress::Ready {
                step: "controllers",
                ms: t_kcm.elapsed().as_millis() as u64,
            });
        }

        // optional, like its binary: a Prometheus that will not start (twice) leaves the
        // sandbox without one and says why, instead of failing everything else
        let mut prometheus_error = None;
        let mut prometheus_url = None;
        if let Some(bin) = &prometheus {
            progress(Progress::Started("prometheus"));
            let t_prom = Instant::now();
            let config = write(
                "prometheus.yml",
                &prometheus_config(&api_url, &ca, &write_token_file(dir, &token)?, etcd_port),
            )?;
            for attempt in 1..=2 {
                let port = match attempt {
                    1 => prom_port,
                    _ => process::free_port().map_err(io("finding a free port"))?,
                };
                let url = format!("http://127.0.0.1:{port}");
                let log = dir.join(format!("prometheus-{attempt}.log"));
                let pid = process::spawn(
                    bin,
                    &[
                        format!("--config.file={}", config.display()),
                        format!("--storage.tsdb.path={}", dir.join(format!("prometheus-data-{attempt}")).display()),
                        format!("--web.listen-address=127.0.0.1:{port}"),
                        "--storage.tsdb.retention.time=1d".into(),
                    ],
                    &log,
                    opts.lifetime,
                )
                .map_err(io(format!("starting {}", bin.display())))?;
                let p = Proc {
                    name: "prometheus".into(),
                    pid,
                    exe: "prometheus".into(),
                    log,
                };
                match wait_http(&http, &format!("{url}/-/ready"), "prometheus", &p, 60).await {
                    Ok(()) => {
                        procs.push(p);
                        prometheus_url = Some(url);
                        prometheus_error = None;
                        break;
                    }
                    Err(e) => {
                        process::stop(p.pid, &p.exe, Duration::from_secs(3));
                        tracing::warn!("sandbox prometheus, attempt {attempt}: {e}");
                        prometheus_error = Some(e.to_string());
                    }
                }
            }
            if prometheus_url.is_some() {
                progress(Progress::Ready {
                    step: "prometheus",
                    ms: t_prom.elapsed().as_millis() as u64,
                });
            }
        }

        if let Some(bosun) = &opts.kubelet {
            progress(Progress::Started(KUBELET));
            let t_kubelet = Instant::now();
            let log = dir.join("stand-in-kubelet.log");
            let pid = process::spawn(
                bosun,
                &[
                    "sandbox".into(),
                    "kubelet".into(),
                    "--kubeconfig".into(),
                    kubeconfig.display().to_string(),
                ],
                &log,
                opts.lifetime,
            )
            .map_err(io(format!("starting {} sandbox kubelet", bosun.display())))?;
            let exe = bosun
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "bosun".into());
            procs.push(Proc {
                name: KUBELET.into(),
                pid,
                exe,
                log,
            });
            // it is up once it has connected and made its first pass: the node exists
            wait_node(&client, &procs[procs.len() - 1], 30).await?;
            progress(Progress::Ready {
                step: KUBELET,
                ms: t_kubelet.elapsed().as_millis() as u64,
            });
        }

        let env_file = dir.join("env");
        let mut state = SandboxState {
            dir: dir.to_path_buf(),
            kubeconfig,
            env_file: env_file.clone(),
            api_url,
            vault_addr: format!("http://127.0.0.1:{bao_port}"),
            vault_token,
            gitops_remote: remote,
            prometheus_url,
            prometheus_error,
            processes: procs.clone(),
            started_at: jiff::Timestamp::now().to_string(),
            ready_ms: 0,
        };
        state.ready_ms = t0.elapsed().as_millis() as u64;
        std::fs::write(&env_file, state.env_exports())
            .map_err(io(format!("writing {}", env_file.display())))?;
        let json = serde_json::to_string_pretty(&state)
            .map_err(|e| SandboxError::Io { context: "serialising state".into(), source: std::io::Error::other(e) })?;
        std::fs::write(dir.join("state.json"), json)
            .map_err(io(format!("writing {}", dir.join("state.json").display())))?;
        Ok(state)
    }
    .await;
    if result.is_err() {
        // leave nothing behind but the logs
        for p in procs.iter().rev() {
            process::stop(p.pid, &p.exe, Duration::from_secs(3));
        }
    }
    result
}

/// Write the API server's bearer token to a file of its own (mode 0600) for Prometheus'
/// `credentials_file`, and return its path.
fn write_token_file(dir: &Path, token: &str) -> Result<PathBuf, SandboxError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join("pki/prometheus.token");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&p)
        .map_err(io(format!("writing {}", p.display())))?;
    f.write_all(token.as_bytes())
        .map_err(io(format!("writing {}", p.display())))?;
    Ok(p)
}

/// The sandbox Prometheus' configuration: kube-apiserver (`job="kube-apiserver"`, HTTPS with the
/// sandbox CA and the admin token) and etcd (`job="etcd"`), every second.
fn prometheus_config(api_url: &str, ca: &Path, token_file: &Path, etcd_port: u16) -> String {
    let api_host = api_url.trim_start_matches("https://");
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: kube-apiserver\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    authorization:\n      credentials_file: {token}\n    static_configs:\n      - targets: ['{api_host}']\n  - job_name: etcd\n    static_configs:\n      - targets: ['127.0.0.1:{etcd_port}']\n",
        ca = ca.display(),
        token = token_file.display(),
    )
}

async fn wait_http(
    http: &reqwest::Client,
    url: &str,
    component: &str,
    proc_: &Proc,
    secs: u64,
) -> Result<(), SandboxError> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        check_alive(component, proc_)?;
        if Instant::now() > deadline {
            return Err(SandboxError::Timeout {
                component: component.into(),
                secs,
                log: proc_.log.clone(),
                tail: process::log_tail(&proc_.log, 15),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn check_alive(component: &str, p: &Proc) -> Result<(), SandboxError> {
    if process::alive(p.pid, &p.exe) {
        Ok(())
    } else {
        Err(SandboxError::Exited {
            component: component.into(),
            log: p.log.clone(),
            tail: process::log_tail(&p.log, 15),
        })
    }
}

async fn wait_apiserver(
    kubeconfig: &Path,
    api_url: &str,
    ca_pem: &str,
    token: &str,
    p: &Proc,
    secs: u64,
) -> Result<kube::Client, SandboxError> {
    let cert = reqwest::Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|e| SandboxError::Certs(e.to_string()))?;
    let http = reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| SandboxError::Kube(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = http
            .get(format!("{api_url}/readyz"))
            .bearer_auth(token)
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            let target = crate::kube_client::KubeTarget {
                kubeconfig: Some(kubeconfig.to_path_buf()),
                context: None,
            };
            let cluster = crate::kube_client::connect(&target)
                .await
                .map_err(|e| SandboxError::Kube(e.to_string()))?;
            return Ok(cluster.client);
        }
        check_alive("kube-apiserver", p)?;
        if Instant::now() > deadline {
            return Err(SandboxError::Timeout {
                component: "kube-apiserver".into(),
                secs,
                log: p.log.clone(),
                tail: process::log_tail(&p.log, 15),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_controllers(client: &kube::Client, p: &Proc, secs: u64) -> Result<(), SandboxError> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    wait_exists(&api, "default", "kube-controller-manager", p, secs).await
}

/// Wait until the object `name` exists — the sign that the process `p` (`component`) acts.
async fn wait_exists<K>(
    api: &Api<K>,
    name: &str,
    component: &str,
    p: &Proc,
    secs: u64,
) -> Result<(), SandboxError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(Some(_)) = api.get_opt(name).await {
            return Ok(());
        }
        check_alive(component, p)?;
        if Instant::now() > deadline {
            return Err(SandboxError::Timeout {
                component: component.into(),
                secs,
                log: p.log.clone(),
                tail: process::log_tail(&p.log, 15),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_node(client: &kube::Client, p: &Proc, secs: u64) -> Result<(), SandboxError> {
    use k8s_openapi::api::core::v1::Node;
    let api: Api<Node> = Api::all(client.clone());
    wait_exists(&api, kubelet::NODE, KUBELET, p, secs).await
}

fn crd_resource() -> ApiResource {
    ApiResource {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        plural: "customresourcedefinitions".into(),
    }
}

/// Install the Flux and Argo CD CRDs and wait until they are established.
pub async fn install_crds(client: &kube::Client) -> Result<(), SandboxError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource());
    let mut names = Vec::new();
    for (what, text) in FLUX_CRDS.iter().chain(ARGOCD_CRDS) {
        let docs: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(text)
            .map_err(|e| SandboxError::Kube(format!("parsing the {what} CRD: {e}")))?;
        for doc in docs.into_iter().filter(|d| d.is_object()) {
            let obj: DynamicObject = serde_json::from_value(doc)
                .map_err(|e| SandboxError::Kube(format!("the {what} CRD: {e}")))?;
            let name = obj.metadata.name.clone().unwrap_or_default();
            // a plain create: the 1.20 API server drops schema fields it does not know (such as
            // x-kubernetes-validations), where server-side apply would reject them
            match api.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(SandboxError::Kube(format!("installing CRD {name}: {e}"))),
            }
            names.push(name);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let o = api
                .get(&name)
                .await
                .map_err(|e| SandboxError::Kube(format!("reading CRD {name}: {e}")))?;
            let established = o
                .data
                .pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("type").and_then(|t| t.as_str()) == Some("Established")
                            && c.get("status").and_then(|s| s.as_str()) == Some("True")
                    })
                });
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(SandboxError::Kube(format!(
                    "CRD {name} not established after 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// A bare repository with one commit on `main`, to serve as the GitOps remote.
pub fn init_remote(path: &Path) -> Result<(), SandboxError> {
    let g = |e: git2::Error| SandboxError::Git(e.to_string());
    let repo = git2::Repository::init_bare(path).map_err(g)?;
    let blob = repo
        .blob(b"# GitOps repository\n\nManaged by bosun. Layout: clusters/<env>/, apps/<name>/.\n")
        .map_err(g)?;
    let mut tb = repo.treebuilder(None).map_err(g)?;
    tb.insert("README.md", blob, 0o100644).map_err(g)?;
    let tree_id = tb.write().map_err(g)?;
    let tree = repo.find_tree(tree_id).map_err(g)?;
    let sig = git2::Signature::now("bosun sandbox", "sandbox@bosun.invalid").map_err(g)?;
    repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        "Initial commit",
        &tree,
        &[],
    )
    .map_err(g)?;
    repo.set_head("refs/heads/main").map_err(g)?;
    Ok(())
}

fn stop_all(st: &SandboxState) {
    for p in st.processes.iter().rev() {
        process::stop(p.pid, &p.exe, Duration::from_secs(5));
    }
}

/// Stop the sandbox in `dir` and remove its state. Errors if none is there.
pub fn down(dir: &Path) -> Result<SandboxState, SandboxError> {
    let st = load_state(dir)?.ok_or_else(|| SandboxError::NotRunning {
        dir: dir.to_path_buf(),
    })?;
    stop_all(&st);
    std::fs::remove_dir_all(dir).map_err(io(format!("removing {}", dir.display())))?;
    Ok(st)
}

/// Health of one component.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    pub name: String,
    pub pid: u32,
    pub alive: bool,
}

/// The state of the sandbox in `dir` with the liveness of each process.
pub fn status(dir: &Path) -> Result<(SandboxState, Vec<ComponentStatus>), SandboxError> {
    let st = load_state(dir)?.ok_or_else(|| SandboxError::NotRunning {
        dir: dir.to_path_buf(),
    })?;
    let comps = st
        .processes
        .iter()
        .map(|p| ComponentStatus {
            name: p.name.clone(),
            pid: p.pid,
            alive: process::alive(p.pid, &p.exe),
        })
        .collect();
    Ok((st, comps))
}
