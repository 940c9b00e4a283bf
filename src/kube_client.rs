//! Kubernetes clients: one per (kubeconfig, context), built on demand and cached, with API
//! discovery cached alongside — in memory, and on disk per cluster ([`crate::discovery_cache`]),
//! refreshed once when a kind is missing from it.

use crate::discovery_cache::{self, CacheConfig};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Which cluster to talk to: a kubeconfig file (default: `$KUBECONFIG`, then `~/.kube/config`)
/// and a context in it (default: its current context).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KubeTarget {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// Errors building a client or discovering the API.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    #[error("cannot load kubeconfig{}: {detail} (set KUBECONFIG or pass --kubeconfig; `eval \"$(bosun sandbox env)\"` points at the sandbox)", .path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Kubeconfig {
        path: Option<PathBuf>,
        detail: String,
    },
    #[error("cannot reach the Kubernetes API ({context}): {detail}")]
    Api { context: String, detail: String },
    #[error("the Kubernetes API server {server} (context {context}) did not answer: {detail}; is the cluster running? (`bosun sandbox status` for the sandbox; --context picks another cluster)")]
    Unreachable {
        context: String,
        server: String,
        detail: String,
    },
}

/// The kubeconfig files `target` reads: `--kubeconfig`, else every file in `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn kubeconfig_files(target: &KubeTarget) -> Vec<PathBuf> {
    if let Some(p) = &target.kubeconfig {
        return vec![p.clone()];
    }
    if let Some(v) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    std::env::var_os("HOME")
        .map(|h| vec![PathBuf::from(h).join(".kube/config")])
        .unwrap_or_default()
}

/// Read the kubeconfig of `target`, each file checked first so a missing or unreadable one is
/// named plainly (kube's own message quotes the path twice).
fn read_kubeconfig(target: &KubeTarget) -> Result<Kubeconfig, KubeClientError> {
    let files = kubeconfig_files(target);
    if files.is_empty() {
        return Err(KubeClientError::Kubeconfig {
            path: None,
            detail: "no kubeconfig: KUBECONFIG is unset and there is no HOME".into(),
        });
    }
    for f in &files {
        if let Err(e) = std::fs::File::open(f) {
            return Err(KubeClientError::Kubeconfig {
                path: Some(f.clone()),
                detail: e.to_string(),
            });
        }
    }
    let kerr = |detail: String| KubeClientError::Kubeconfig {
        path: files.first().filter(|_| files.len() == 1).cloned(),
        detail,
    };
    match &target.kubeconfig {
        Some(p) => Kubeconfig::read_from(p),
        None => Kubeconfig::read(),
    }
    .map_err(|e| kerr(e.to_string()))
}

/// Check, before a model is asked anything, that `target` can be used: the kubeconfig is
/// readable, the context exists, and the API server answers (`/version`) within `timeout`.
/// Returns the context's name.
pub async fn preflight(
    target: &KubeTarget,
    timeout: std::time::Duration,
) -> Result<String, KubeClientError> {
    let kc = read_kubeconfig(target)?;
    if target.context.is_none() && kc.current_context.as_deref().is_none_or(str::is_empty) {
        let have: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(KubeClientError::Kubeconfig {
            path: target.kubeconfig.clone(),
            detail: if have.is_empty() {
                "it has no contexts".into()
            } else {
                format!(
                    "it has no current-context; pass --context (it has: {})",
                    have.join(", ")
                )
            },
        });
    }
    let server = {
        let ctx = target
            .context
            .clone()
            .or_else(|| kc.current_context.clone())
            .unwrap_or_default();
        kc.contexts
            .iter()
            .find(|c| c.name == ctx)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| kc.clusters.iter().find(|cl| cl.name == c.cluster))
            .and_then(|cl| cl.cluster.as_ref())
            .and_then(|cl| cl.server.clone())
            .unwrap_or_else(|| "(no server)".into())
    };
    let cluster = connect(target).await?;
    let unreachable = |detail: String| KubeClientError::Unreachable {
        context: cluster.context.clone(),
        server: server.clone(),
        detail,
    };
    match tokio::time::timeout(timeout, cluster.client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(cluster.context.clone()),
        Ok(Err(kube::Error::Api(s))) if s.code == 401 || s.code == 403 => {
            Err(unreachable(format!(
                "it rejected bosun's credentials (HTTP {}: {}); check the user of this context",
                s.code, s.message
            )))
        }
        Ok(Err(e)) => Err(unreachable(error_chain(&e))),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            timeout.as_secs()
        ))),
    }
}

/// An error with its sources, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

/// Served resources with their capabilities, as discovered.
pub type Resources = Arc<Vec<(ApiResource, ApiCapabilities)>>;

/// A connected cluster: client, context name, default namespace, discovered resources.
pub struct Cluster {
    pub client: kube::Client,
    pub context: String,
    pub default_namespace: String,
    discovery: Mutex<Option<Resources>>,
    /// The disk cache of this cluster's discovery: (file, server URL, TTL).
    disk: Option<(PathBuf, String, std::time::Duration)>,
    /// Full discoveries this client ran (the disk cache is there to keep this at zero).
    runs: AtomicU64,
}

impl Cluster {
    /// All served resources (every kind at its most stable served version): from memory, else
    /// from the disk cache while it is fresh, else discovered (and the disk cache rewritten).
    pub async fn resources(&self) -> Result<Resources, KubeClientError> {
        let mut guard = self.discovery.lock().await;
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        if let Some((path, server, ttl)) = &self.disk {
            if let Some(all) = discovery_cache::load(path, server, *ttl) {
                let all = Arc::new(all);
                *guard = Some(all.clone());
                return Ok(all);
            }
        }
        let all = self.discover().await?;
        *guard = Some(all.clone());
        Ok(all)
    }

    /// Run discovery again (memory and disk), whatever is cached.
    pub async fn refresh(&self) -> Result<Resources, KubeClientError> {
        let mut guard = self.discovery.lock().await;
        let all = self.discover().await?;
        *guard = Some(all.clone());
        Ok(all)
    }

    /// How many full discoveries this client ran.
    pub fn discoveries(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// `find` over the served resources; when it finds nothing in cached data, discovery runs
    /// once more and `find` is asked again — a CRD installed after the cache was written (or
    /// after a long-lived `bosun mcp` started) is found, and a kind the server really lacks
    /// costs one discovery before the usual error.
    pub async fn lookup<T>(
        &self,
        find: impl Fn(&[(ApiResource, ApiCapabilities)]) -> Option<T>,
    ) -> Result<Option<T>, KubeClientError> {
        let before = self.discoveries();
        let all = self.resources().await?;
        if let Some(t) = find(&all) {
            return Ok(Some(t));
        }
        if self.discoveries() != before {
            // just discovered: asking again would find nothing new
            return Ok(None);
        }
        let all = self.refresh().await?;
        Ok(find(&all))
    }

    async fn discover(&self) -> Result<Resources, KubeClientError> {
        // discovery lists the groups, then reads each: a CRD or APIService removed in between
        // (another client changing the cluster) fails the whole run, so it is tried again
        // twice before the error counts
        let mut attempt = 0;
        let disc = loop {
            attempt += 1;
            match Discovery::new(self.client.clone()).run().await {
                Ok(d) => break d,
                Err(e) if attempt < 3 => {
                    tracing::debug!("discovery failed ({e}); trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
                }
                Err(e) => {
                    return Err(KubeClientError::Api {
                        context: self.context.clone(),
                        detail: e.to_string(),
                    })
                }
            }
        };
        self.runs.fetch_add(1, Ordering::Relaxed);
        let mut all = Vec::new();
        // every kind at its most stable served version: a kind served only in a non-preferred
        // version (CronJob in batch/v1beta1 on a 1.20 server, a CRD's older version) is found too
        for g in disc.groups() {
            all.extend(g.resources_by_stability());
        }
        if let Some((path, server, _)) = &self.disk {
            if let Err(e) = discovery_cache::store(path, server, &all) {
                tracing::debug!(path = %path.display(), "discovery cache not written: {e}");
            }
        }
        Ok(Arc::new(all))
    }

    /// Resolve what a user or model calls a kind: `pods`, `pod`, `Pod`, `po`,
    /// `deployments.apps`, `helmreleases.helm.toolkit.fluxcd.io`.
    pub async fn resolve(
        &self,
        kind: &str,
    ) -> Result<Option<(ApiResource, ApiCapabilities)>, KubeClientError> {
        let k = kind.trim().to_ascii_lowercase();
        let k = expand_short_name(&k);
        let (name, group) = match k.split_once('.') {
            Some((n, g)) => (n.to_string(), Some(g.to_string())),
            None => (k.to_string(), None),
        };
        let matches = |ar: &ApiResource| {
            let names = [ar.plural.to_ascii_lowercase(), ar.kind.to_ascii_lowercase()];
            names.contains(&name) && group.as_ref().is_none_or(|g| &ar.group == g)
        };
        self.lookup(|all| {
            // prefer the core group and well-known groups when a kind name is ambiguous
            let mut found: Vec<_> = all.iter().filter(|(ar, _)| matches(ar)).cloned().collect();
            found.sort_by_key(|(ar, _)| (!ar.group.is_empty(), ar.group.contains('.')));
            found.into_iter().next()
        })
        .await
    }
}

fn expand_short_name(k: &str) -> &str {
    match k {
        "po" => "pods",
        "svc" => "services",
        "deploy" => "deployments",
        "ns" => "namespaces",
        "cm" => "configmaps",
        "sa" => "serviceaccounts",
        "ds" => "daemonsets",
        "sts" => "statefulsets",
        "rs" => "replicasets",
        "ing" => "ingresses",
        "pvc" => "persistentvolumeclaims",
        "pv" => "persistentvolumes",
        "no" => "nodes",
        "ep" => "endpoints",
        "ev" => "events",
        "netpol" => "networkpolicies",
        "crd" | "crds" => "customresourcedefinitions",
        "pdb" => "poddisruptionbudgets",
        "hr" => "helmreleases",
        "ks" => "kustomizations",
        "gitrepo" => "gitrepositories",
        other => other,
    }
}

/// Whether a resource lives in namespaces.
pub fn is_namespaced(caps: &ApiCapabilities) -> bool {
    matches!(caps.scope, Scope::Namespaced)
}

/// A cache of connected clusters, keyed by target, with the discovery disk cache they use.
pub struct Clusters {
    cache: Mutex<HashMap<KubeTarget, Arc<Cluster>>>,
    disk: Option<CacheConfig>,
}

impl Default for Clusters {
    /// The disk cache from the environment ([`CacheConfig::from_env`]).
    fn default() -> Self {
        Self::with_disk_cache(CacheConfig::from_env())
    }
}

impl Clusters {
    /// Clusters whose discovery is cached in `disk` (`None`: in memory only).
    pub fn with_disk_cache(disk: Option<CacheConfig>) -> Self {
        Self {
            cache: Mutex::default(),
            disk,
        }
    }

    /// The cluster for `target`, connecting on first use.
    pub async fn get(&self, target: &KubeTarget) -> Result<Arc<Cluster>, KubeClientError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(target) {
            return Ok(c.clone());
        }
        let c = Arc::new(connect_with(target, self.disk.as_ref()).await?);
        cache.insert(target.clone(), c.clone());
        Ok(c)
    }
}

/// Connect to `target`, discovery cached on disk as the environment says.
pub async fn connect(target: &KubeTarget) -> Result<Cluster, KubeClientError> {
    connect_with(target, CacheConfig::from_env().as_ref()).await
}

/// Connect to `target`, discovery cached in `disk` (`None`: in memory only).
pub async fn connect_with(
    target: &KubeTarget,
    disk: Option<&CacheConfig>,
) -> Result<Cluster, KubeClientError> {
    let kerr = |detail: String| KubeClientError::Kubeconfig {
        path: target.kubeconfig.clone(),
        detail,
    };
    let kc = read_kubeconfig(target)?;
    let context = target
        .context
        .clone()
        .or_else(|| kc.current_context.clone())
        .unwrap_or_else(|| "default".into());
    if let Some(want) = &target.context {
        if !kc.contexts.iter().any(|c| &c.name == want) {
            let have: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(kerr(format!(
                "no context `{want}` in the kubeconfig; it has: {}",
                have.join(", ")
            )));
        }
    }
    let opts = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .map_err(|e| kerr(e.to_string()))?;
    // No transparent retries: every tool call must end within its own timeout, and a 429 can be
    // an answer (an eviction blocked by a PodDisruptionBudget). kube's default retry layer (15
    // attempts, backoff up to 1000 s) would hide both.
    cfg.default_retry = false;
    let default_namespace = cfg.default_namespace.clone();
    // one cache file per cluster: its address and the CA it is trusted through
    let disk = disk.map(|d| {
        let server = cfg.cluster_url.to_string();
        let path = d.file_for(&server, cfg.root_cert.as_deref());
        (path, server, d.ttl)
    });
    let client = kube::Client::try_from(cfg).map_err(|e| KubeClientError::Api {
        context: context.clone(),
        detail: e.to_string(),
    })?;
    Ok(Cluster {
        client,
        context,
        default_namespace,
        discovery: Mutex::new(None),
        disk,
        runs: AtomicU64::new(0),
    })
}
