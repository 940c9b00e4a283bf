//! Kubernetes clients: one per (kubeconfig, context), built on demand and cached, with API
//! discovery cached alongside.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use std::collections::HashMap;
use std::path::PathBuf;
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
}

/// Served resources with their capabilities, as discovered.
pub type Resources = Arc<Vec<(ApiResource, ApiCapabilities)>>;

/// A connected cluster: client, context name, default namespace, discovered resources.
pub struct Cluster {
    pub client: kube::Client,
    pub context: String,
    pub default_namespace: String,
    discovery: Mutex<Option<Resources>>,
}

impl Cluster {
    /// All served resources (recommended version per group), discovered once and cached.
    pub async fn resources(
        &self,
    ) -> Result<Arc<Vec<(ApiResource, ApiCapabilities)>>, KubeClientError> {
        let mut guard = self.discovery.lock().await;
        if let Some(d) = guard.as_ref() {
            return Ok(d.clone());
        }
        let disc = Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(|e| KubeClientError::Api {
                context: self.context.clone(),
                detail: e.to_string(),
            })?;
        let mut all = Vec::new();
        // every kind at its most stable served version: a kind served only in a non-preferred
        // version (CronJob in batch/v1beta1 on a 1.20 server, a CRD's older version) is found too
        for g in disc.groups() {
            all.extend(g.resources_by_stability());
        }
        let all = Arc::new(all);
        *guard = Some(all.clone());
        Ok(all)
    }

    /// Resolve what a user or model calls a kind: `pods`, `pod`, `Pod`, `po`,
    /// `deployments.apps`, `helmreleases.helm.toolkit.fluxcd.io`.
    pub async fn resolve(
        &self,
        kind: &str,
    ) -> Result<Option<(ApiResource, ApiCapabilities)>, KubeClientError> {
        let all = self.resources().await?;
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
        // prefer the core group and well-known groups when a kind name is ambiguous
        let mut found: Vec<_> = all.iter().filter(|(ar, _)| matches(ar)).cloned().collect();
        found.sort_by_key(|(ar, _)| (!ar.group.is_empty(), ar.group.contains('.')));
        Ok(found.into_iter().next())
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

/// A cache of connected clusters, keyed by target.
#[derive(Default)]
pub struct Clusters {
    cache: Mutex<HashMap<KubeTarget, Arc<Cluster>>>,
}

impl Clusters {
    /// The cluster for `target`, connecting on first use.
    pub async fn get(&self, target: &KubeTarget) -> Result<Arc<Cluster>, KubeClientError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(target) {
            return Ok(c.clone());
        }
        let c = Arc::new(connect(target).await?);
        cache.insert(target.clone(), c.clone());
        Ok(c)
    }
}

/// Connect to `target`.
pub async fn connect(target: &KubeTarget) -> Result<Cluster, KubeClientError> {
    let kerr = |detail: String| KubeClientError::Kubeconfig {
        path: target.kubeconfig.clone(),
        detail,
    };
    let kc = match &target.kubeconfig {
        Some(p) => Kubeconfig::read_from(p),
        None => Kubeconfig::read(),
    }
    .map_err(|e| kerr(e.to_string()))?;
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
    let client = kube::Client::try_from(cfg).map_err(|e| KubeClientError::Api {
        context: context.clone(),
        detail: e.to_string(),
    })?;
    Ok(Cluster {
        client,
        context,
        default_namespace,
        discovery: Mutex::new(None),
    })
}
