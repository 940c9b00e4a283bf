//! A stand-in for the kubelet the sandbox does not have. The sandbox runs the real control plane
//! (kube-apiserver, kube-controller-manager) but no nodes: pods are created by the real
//! controllers and then stay Pending forever. This loop does the kubelet's and scheduler's
//! bookkeeping through the real API: it binds unscheduled pods to a node, reports them Running
//! and Ready (with a pod IP, so the Endpoints controller fills Services), reports
//! `ImagePullBackOff` for images listed as unpullable, and finishes the graceful deletion of
//! terminating pods.
//!
//! `bosun sandbox up` runs it for every namespace as its own process (`bosun sandbox kubelet`,
//! [`serve_all`]); a namespace labelled [`OPT_OUT_LABEL`]`=off` is left alone — for pods whose
//! status a test, the demo or an eval task sets itself. Evals run one per task namespace
//! ([`Kubelet::spawn`]) with the task's unpullable images.
//!
//! It never runs a container. What it decides is only the image name: a pod whose images are all
//! pullable becomes Ready. That is the one honest shortcut; everything else the agent sees —
//! ReplicaSets, rollouts, endpoints, events from the controllers — is the real control plane's.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use std::time::Duration;

/// The node pods are bound to.
pub const NODE: &str = "bosun-sandbox-node";

/// A namespace with this label set to `off` is not served by the sandbox-wide stand-in kubelet.
pub const OPT_OUT_LABEL: &str = "bosun.dev/stand-in-kubelet";

/// What the stand-in kubelet does.
#[derive(Debug, Clone, Default)]
pub struct KubeletOptions {
    /// Images that fail to pull (exact match, or a prefix ending in `*`).
    pub unpullable: Vec<String>,
}

impl KubeletOptions {
    fn pullable(&self, image: &str) -> bool {
        !self.unpullable.iter().any(|u| match u.strip_suffix('*') {
            Some(prefix) => image.starts_with(prefix),
            None => image == u,
        })
    }
}

/// A running stand-in kubelet; stops when dropped.
pub struct Kubelet {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Kubelet {
    /// Start reconciling `namespace` every 250 ms.
    pub fn spawn(client: Client, namespace: &str, opts: KubeletOptions) -> Self {
        let ns = namespace.to_string();
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = reconcile(&client, &ns, &opts).await {
                    tracing::debug!(namespace = %ns, "stand-in kubelet: {e}");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Self { task }
    }
}

/// Reconcile the pods of every namespace but the opted-out ones every 250 ms, forever: what the
/// sandbox's `bosun sandbox kubelet` process runs. Errors are logged and retried.
pub async fn serve_all(client: Client, opts: KubeletOptions) {
    // the node first: `sandbox up` waits for it as the sign this loop runs
    let mut node = false;
    loop {
        if !node {
            match ensure_node(&client).await {
                Ok(()) => node = true,
                Err(e) => tracing::warn!("stand-in kubelet: creating node {NODE}: {e}"),
            }
        }
        if let Err(e) = reconcile_all(&client, &opts).await {
            tracing::warn!("stand-in kubelet: {e}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One pass over the pods of every namespace not labelled [`OPT_OUT_LABEL`]`=off`.
pub async fn reconcile_all(client: &Client, opts: &KubeletOptions) -> Result<usize, kube::Error> {
    use k8s_openapi::api::core::v1::Namespace;
    let nss: Api<Namespace> = Api::all(client.clone());
    let off: std::collections::HashSet<String> = nss
        .list(&ListParams::default().labels(&format!("{OPT_OUT_LABEL}=off")))
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    let pods: Api<Pod> = Api::all(client.clone());
    let served: Vec<Pod> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .namespace
                .as_ref()
                .is_some_and(|ns| !off.contains(ns))
        })
        .collect();
    reconcile_pods(client, &served, opts).await
}

async fn ensure_node(client: &Client) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(NODE).await?.is_some() {
        return Ok(());
    }
    let node: Node = match serde_json::from_value(json!({"metadata": {"name": NODE}})) {
        Ok(n) => n,
        Err(_) => return Ok(()),
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// One pass over the pods of `namespace`. Returns how many pods it changed.
pub async fn reconcile(
    client: &Client,
    namespace: &str,
    opts: &KubeletOptions,
) -> Result<usize, kube::Error> {
    reconcile_selected(client, namespace, None, opts).await
}

/// One pass over the pods of `namespace` that match `selector` (a label selector).
pub async fn reconcile_selected(
    client: &Client,
    namespace: &str,
    selector: Option<&str>,
    opts: &KubeletOptions,
) -> Result<usize, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut lp = ListParams::default();
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    let pods = api.list(&lp).await?;
    reconcile_pods(client, &pods.items, opts).await
}

/// Do the kubelet's part for `pods` (of any namespaces). Returns how many it changed.
async fn reconcile_pods(
    client: &Client,
    pods: &[Pod],
    opts: &KubeletOptions,
) -> Result<usize, kube::Error> {
    if pods.is_empty() {
        return Ok(0);
    }
    ensure_node(client).await?;
    let mut changed = 0;
    for (i, p) in pods.iter().enumerate() {
        let (Some(name), Some(ns)) = (p.metadata.name.clone(), p.metadata.namespace.as_deref())
        else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        if p.metadata.deletion_timestamp.is_some() {
            // the kubelet stopped the containers: finish the graceful deletion
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) | Err(kube::Error::Api(_)) => changed += 1,
                Err(e) => return Err(e),
            }
            continue;
        }
        let Some(spec) = p.spec.as_ref() else {
            continue;
        };
        if spec.node_name.is_none() {
            let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}});
            match api
                .create_subresource::<_, Value>("binding", &name, &PostParams::default(), &binding)
                .await
            {
                Ok(_) => {}
                // already bound or gone: the next pass sees it
                Err(kube::Error::Api(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        let images: Vec<(String, String)> = spec
            .containers
            .iter()
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .collect();
        let ready = images.iter().all(|(_, img)| opts.pullable(img));
        let status = p.status.clone().unwrap_or_default();
        let is_ready = status
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let reported = status.container_statuses.as_ref().is_some_and(|cs| {
            cs.len() == images.len()
                && cs
                    .iter()
                    .zip(&images)
                    .all(|(s, (_, img))| &s.image == img && s.ready == ready)
        });
        if reported && is_ready == ready {
            continue;
        }
        let now = jiff::Timestamp::now().to_string();
        let containers: Vec<Value> = images
            .iter()
            .map(|(n, img)| {
                if opts.pullable(img) {
                    json!({"name": n, "image": img, "imageID": "", "ready": true, "restartCount": 0,
                        "started": true, "state": {"running": {"startedAt": now}}})
                } else {
                    json!({"name": n, "image": img, "imageID": "", "ready": false, "restartCount": 0,
                        "started": false, "state": {"waiting": {"reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{img}\": not found")}}})
                }
            })
            .collect();
        let flag = if ready { "True" } else { "False" };
        let body = json!({"status": {
            "phase": if ready { "Running" } else { "Pending" },
            "podIP": format!("10.1.{}.{}", (i / 250) % 250, 1 + i % 250),
            "hostIP": "10.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now}],
            "containerStatuses": containers}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => changed += 1,
            Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpullable_matches_exactly_or_by_prefix() {
        let o = KubeletOptions {
            unpullable: vec!["web:2.0.0".into(), "registry.example/bad/*".into()],
        };
        assert!(!o.pullable("web:2.0.0"));
        assert!(o.pullable("web:2.0.01"));
        assert!(!o.pullable("registry.example/bad/x:1"));
        assert!(o.pullable("registry.example/good/x:1"));
    }
}
