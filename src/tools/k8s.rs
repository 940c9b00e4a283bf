//! Kubernetes helpers shared by the `kubectl`, `flux` and `blocks` tools: kind resolution, error
//! mapping, status per kind, listings, manifests, change identities, Secret masking, events.

use super::{canonical_hash, ToolError};
use crate::compact::{self, Row};
use crate::kube_client::{is_namespaced, Cluster, Clusters, KubeTarget};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The context and default namespace a call will use, as far as the kubeconfig tells without
/// touching the network: the explicit context, else the tool's default, else the kubeconfig's
/// current context; the namespace of that context, else `default`.
pub fn kube_defaults(
    kubeconfig: Option<&Path>,
    explicit: Option<&str>,
) -> (Option<String>, Option<String>) {
    let kc = match kubeconfig {
        Some(p) => kube::config::Kubeconfig::read_from(p).ok(),
        None => kube::config::Kubeconfig::read().ok(),
    };
    let Some(kc) = kc else {
        return (explicit.map(str::to_string), None);
    };
    let ctx = explicit
        .map(str::to_string)
        .or_else(|| kc.current_context.clone());
    let ns = ctx.as_ref().map(|c| {
        kc.contexts
            .iter()
            .find(|n| &n.name == c)
            .and_then(|n| n.context.as_ref())
            .and_then(|c| c.namespace.clone())
            .unwrap_or_else(|| "default".into())
    });
    (ctx, ns)
}

/// How a Kubernetes tool reaches clusters: its kubeconfig, the context it uses when a call names
/// none, and the clients it has built (one per context). Shared by kubectl, flux and blocks.
pub struct ClusterAccess {
    pub kubeconfig: Option<PathBuf>,
    pub default_context: Option<String>,
    clusters: Clusters,
}

impl ClusterAccess {
    pub fn new(kubeconfig: Option<PathBuf>, default_context: Option<String>) -> Self {
        Self {
            kubeconfig,
            default_context,
            clusters: Clusters::default(),
        }
    }

    /// The context a call uses (the one it names, else the tool's default, else the
    /// kubeconfig's current one) and that context's namespace, or `namespace` when given.
    pub fn defaults(
        &self,
        context: Option<&str>,
        namespace: Option<&str>,
    ) -> (Option<String>, Option<String>) {
        let explicit = context.or(self.default_context.as_deref());
        let (ctx, ns) = kube_defaults(self.kubeconfig.as_deref(), explicit);
        (ctx, namespace.map(str::to_string).or(ns))
    }

    /// The client for `context` (`None`: the defaults above).
    pub async fn cluster(&self, context: Option<&str>) -> Result<Arc<Cluster>, ToolError> {
        let (ctx, _) = self.defaults(context, None);
        self.clusters
            .get(&KubeTarget {
                kubeconfig: self.kubeconfig.clone(),
                context: ctx,
            })
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))
    }
}

/// Map an API error to a tool error the model can act on; RBAC denials say so plainly.
pub fn kube_err(e: kube::Error, context: &str) -> ToolError {
    match e {
        kube::Error::Api(s) if s.code == 403 => ToolError::Failed(format!(
            "forbidden by RBAC in context {context}: {} — the identity of this context may not do this; do not retry, report it or use an identity that is allowed",
            s.message
        )),
        kube::Error::Api(s) if s.code == 404 => {
            ToolError::Failed(format!("not found: {}", s.message))
        }
        kube::Error::Api(s) if s.code == 401 => ToolError::Failed(format!(
            "unauthorized in context {context}: {} (the kubeconfig credentials were rejected)",
            s.message
        )),
        kube::Error::Api(s) => ToolError::Failed(format!(
            "API error {} ({}): {}",
            s.code, s.reason, s.message
        )),
        other => ToolError::Failed(format!("request to the API server failed: {other}")),
    }
}

pub fn failed(e: impl std::fmt::Display) -> ToolError {
    ToolError::Failed(e.to_string())
}

/// The resource for a kind as a user or model writes it.
pub async fn resolve_kind(cluster: &Cluster, kind: &str) -> Result<(ApiResource, bool), ToolError> {
    let (ar, caps) = cluster.resolve(kind).await.map_err(failed)?.ok_or_else(|| {
        ToolError::Failed(format!(
            "the server has no resource type `{kind}`; run kubectl with operation api_resources to list the kinds"
        ))
    })?;
    Ok((ar, is_namespaced(&caps)))
}

/// The resource for `apiVersion` + `kind` as written in a manifest. Versions other than the
/// recommended one are accepted (the plural and scope do not change between versions).
pub async fn resolve_gvk(
    cluster: &Cluster,
    api_version: &str,
    kind: &str,
) -> Result<(ApiResource, bool), ToolError> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let found = cluster
        .lookup(|all| {
            all.iter()
                .find(|(ar, _)| ar.group == group && ar.kind == kind)
                .cloned()
        })
        .await
        .map_err(failed)?
        .ok_or_else(|| {
            ToolError::Failed(format!(
                "the server does not serve {kind} in {api_version} (is its CRD installed? see api_resources)"
            ))
        })?;
    if found.0.version != version {
        // accepted only if the server serves this version too
        let served = kube::discovery::group(&cluster.client, group)
            .await
            .map(|g| {
                g.versioned_resources(version)
                    .iter()
                    .any(|(r, _)| r.kind == kind)
            })
            .unwrap_or(false);
        if !served {
            return Err(ToolError::Failed(format!(
                "the server does not serve {kind} in {api_version}; it serves it as {}: write `apiVersion: {}`",
                found.0.api_version, found.0.api_version
            )));
        }
    }
    let mut ar = found.0.clone();
    ar.version = version.to_string();
    ar.api_version = api_version.to_string();
    Ok((ar, is_namespaced(&found.1)))
}

/// An API handle for one resource type in a namespace (or cluster-wide).
pub fn api(cluster: &Cluster, ar: &ApiResource, namespaced: bool, ns: &str) -> Api<DynamicObject> {
    if namespaced {
        Api::namespaced_with(cluster.client.clone(), ns, ar)
    } else {
        Api::all_with(cluster.client.clone(), ar)
    }
}

/// A resource type built from known coordinates (no discovery needed).
pub fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// List every object of a type, following continue tokens, up to `cap` objects.
pub async fn list_all(
    api: &Api<DynamicObject>,
    lp: ListParams,
    cap: usize,
    context: &str,
) -> Result<Vec<DynamicObject>, ToolError> {
    let mut lp = lp.limit(500);
    let mut items = Vec::new();
    loop {
        let page = api.list(&lp).await.map_err(|e| kube_err(e, context))?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        items.extend(page.items);
        match next {
            Some(c) if items.len() < cap => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    Ok(items)
}

/// The Kind for a name written by a model (`deploy`, `pods`, `Deployment`), for scopes and
/// targets; names it does not know are returned as written.
pub fn canonical_kind(k: &str) -> String {
    let l = k.trim().to_ascii_lowercase();
    let base = l.split('.').next().unwrap_or(&l);
    let known = [
        ("pod", "Pod"),
        ("po", "Pod"),
        ("deployment", "Deployment"),
        ("deploy", "Deployment"),
        ("statefulset", "StatefulSet"),
        ("sts", "StatefulSet"),
        ("daemonset", "DaemonSet"),
        ("ds", "DaemonSet"),
        ("replicaset", "ReplicaSet"),
        ("rs", "ReplicaSet"),
        ("service", "Service"),
        ("svc", "Service"),
        ("secret", "Secret"),
        ("configmap", "ConfigMap"),
        ("cm", "ConfigMap"),
        ("namespace", "Namespace"),
        ("ns", "Namespace"),
        ("node", "Node"),
        ("no", "Node"),
        ("ingress", "Ingress"),
        ("ing", "Ingress"),
        ("job", "Job"),
        ("cronjob", "CronJob"),
        ("persistentvolumeclaim", "PersistentVolumeClaim"),
        ("pvc", "PersistentVolumeClaim"),
        ("serviceaccount", "ServiceAccount"),
        ("sa", "ServiceAccount"),
        ("helmrelease", "HelmRelease"),
        ("hr", "HelmRelease"),
        ("kustomization", "Kustomization"),
        ("ks", "Kustomization"),
        ("gitrepository", "GitRepository"),
        ("gitrepo", "GitRepository"),
        ("helmrepository", "HelmRepository"),
        ("helmchart", "HelmChart"),
        ("ocirepository", "OCIRepository"),
    ];
    let candidates = [
        base.to_string(),
        base.strip_suffix("es").unwrap_or(base).to_string(),
        base.strip_suffix('s').unwrap_or(base).to_string(),
        base.strip_suffix("ies")
            .map(|s| format!("{s}y"))
            .unwrap_or_default(),
    ];
    for c in candidates {
        if let Some((_, k)) = known.iter().find(|(n, _)| *n == c) {
            return (*k).to_string();
        }
    }
    k.trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// status per kind and listings

/// Statuses counted as healthy.
pub fn healthy(status: &str) -> bool {
    matches!(
        status,
        "Active"
            | "Running"
            | "Succeeded"
            | "Ready"
            | "Available"
            | "Bound"
            | "Complete"
            | "Completed"
            | "Normal"
            | "-"
    )
}

/// `.status.conditions[type=t]` of an object.
pub fn condition<'a>(data: &'a Value, t: &str) -> Option<&'a Value> {
    data.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
}

fn s_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

fn n_at(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

/// A one-word status and a short detail, derived per kind from `.status`.
pub fn status_of(kind: &str, data: &Value) -> (String, String) {
    let st = data.get("status").unwrap_or(&Value::Null);
    match kind {
        "Namespace" => (
            s_at(st, "/phase").unwrap_or("Active").to_string(),
            String::new(),
        ),
        "Pod" => pod_status(data),
        "Deployment" | "StatefulSet" | "ReplicaSet" | "DaemonSet" => {
            let (want, ready) = if kind == "DaemonSet" {
                (
                    n_at(st, "/desiredNumberScheduled"),
                    n_at(st, "/numberReady"),
                )
            } else {
                (
                    data.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1),
                    n_at(st, "/readyReplicas"),
                )
            };
            let stuck = condition(data, "Progressing")
                .and_then(|c| c.get("reason"))
                .and_then(Value::as_str)
                == Some("ProgressDeadlineExceeded");
            let status = if stuck {
                "ProgressDeadlineExceeded"
            } else if ready >= want {
                "Available"
            } else {
                "Progressing"
            };
            (status.into(), format!("ready {ready}/{want}"))
        }
        "PersistentVolumeClaim" | "PersistentVolume" => {
            (s_at(st, "/phase").unwrap_or("-").to_string(), String::new())
        }
        "Node" => {
            let ready = condition(data, "Ready")
                .and_then(|c| c.get("status"))
                .and_then(Value::as_str)
                == Some("True");
            let unsched = data.pointer("/spec/unschedulable") == Some(&Value::Bool(true));
            let mut s = if ready { "Ready" } else { "NotReady" }.to_string();
            if unsched {
                s.push_str(",SchedulingDisabled");
            }
            (s, String::new())
        }
        "Service" => {
            let t = s_at(data, "/spec/type").unwrap_or("ClusterIP");
            let ip = s_at(data, "/spec/clusterIP").unwrap_or("-");
            let ports: Vec<String> = data
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            format!(
                                "{}/{}",
                                n_at(p, "/port"),
                                s_at(p, "/protocol").unwrap_or("TCP")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            ("-".into(), format!("{t} {ip} {}", ports.join(",")))
        }
        "Secret" => {
            let keys: Vec<&String> = data
                .get("data")
                .and_then(Value::as_object)
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            (
                "-".into(),
                format!(
                    "{} keys: {}",
                    s_at(data, "/type").unwrap_or("Opaque"),
                    keys.iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            )
        }
        "Job" => {
            let done = n_at(st, "/succeeded");
            let failed = condition(data, "Failed")
                .is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"));
            let s = if failed {
                "Failed"
            } else if condition(data, "Complete").is_some() {
                "Complete"
            } else {
                "Running"
            };
            (s.into(), format!("succeeded {done}"))
        }
        "Event" => (
            s_at(data, "/type").unwrap_or("Normal").to_string(),
            format!(
                "{} {}",
                s_at(data, "/reason").unwrap_or(""),
                s_at(data, "/message").unwrap_or("")
            ),
        ),
        _ => ready_condition_status(data),
    }
}

/// The Ready condition, as Flux and most operators report it.
pub fn ready_condition_status(data: &Value) -> (String, String) {
    match condition(data, "Ready") {
        Some(c) => {
            let st = c.get("status").and_then(Value::as_str).unwrap_or("Unknown");
            let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
            let msg = c.get("message").and_then(Value::as_str).unwrap_or("");
            (
                match st {
                    "True" => "Ready".to_string(),
                    "False" => "NotReady".to_string(),
                    _ => "Unknown".to_string(),
                },
                format!("{reason} {msg}").trim().to_string(),
            )
        }
        None => ("-".into(), String::new()),
    }
}

fn pod_status(data: &Value) -> (String, String) {
    let st = data.get("status").unwrap_or(&Value::Null);
    let phase = s_at(st, "/phase").unwrap_or("Unknown").to_string();
    let cs = st
        .get("containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = cs
        .iter()
        .filter(|c| c.get("ready") == Some(&Value::Bool(true)))
        .count();
    let restarts: i64 = cs.iter().map(|c| n_at(c, "/restartCount")).sum();
    let waiting = cs.iter().find_map(|c| {
        c.pointer("/state/waiting/reason")
            .or_else(|| c.pointer("/state/terminated/reason"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let total = data
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(cs.len(), Vec::len);
    let mut status = match waiting {
        Some(w) if w != "Completed" => w,
        _ => phase.clone(),
    };
    if data.pointer("/metadata/deletionTimestamp").is_some() {
        status = "Terminating".into();
    } else if status == "Running" && ready < total {
        // running but not ready: not healthy
        status = "NotReady".into();
    }
    (
        status,
        format!("ready {ready}/{total}, restarts {restarts}"),
    )
}

/// A short age: `45s`, `12m`, `5h`, `3d`.
pub fn age(t: jiff::Timestamp) -> String {
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    match secs {
        s if s < 120 => format!("{}s", s.max(0)),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn age_of(o: &DynamicObject) -> String {
    o.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| age(t.0))
        .unwrap_or_else(|| "-".into())
}

/// Extra `-o wide` columns per kind.
fn wide_cells(kind: &str, data: &Value) -> Vec<String> {
    match kind {
        "Pod" => vec![
            s_at(data, "/spec/nodeName").unwrap_or("-").to_string(),
            s_at(data, "/status/podIP").unwrap_or("-").to_string(),
        ],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            let images: Vec<&str> = data
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().filter_map(|c| s_at(c, "/image")).collect())
                .unwrap_or_default();
            vec![images.join(",")]
        }
        _ => {
            let labels: Vec<String> = data
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            vec![labels.join(",")]
        }
    }
}

fn wide_header(kind: &str) -> Vec<&'static str> {
    match kind {
        "Pod" => vec!["NODE", "IP"],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => vec!["IMAGES"],
        _ => vec!["LABELS"],
    }
}

/// How to render a listing.
#[derive(Debug, Clone, Copy)]
pub struct ListStyle {
    pub show_namespace: bool,
    pub wide: bool,
    pub max_tokens: usize,
}

/// A listing of objects of one kind: counts by status, unhealthy objects in full, the rest
/// summarised — within `style.max_tokens`.
pub fn render_listing(
    kind: &str,
    title: &str,
    items: &[DynamicObject],
    style: ListStyle,
) -> String {
    let mut header: Vec<&str> = Vec::with_capacity(7);
    if style.show_namespace {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "STATUS", "DETAIL", "AGE"]);
    if style.wide {
        header.extend(wide_header(kind));
    }
    let rows: Vec<Row> = items
        .iter()
        .map(|o| {
            let (status, detail) = status_of(kind, &o.data);
            let mut cells = Vec::with_capacity(header.len());
            if style.show_namespace {
                cells.push(o.metadata.namespace.clone().unwrap_or_default());
            }
            cells.push(o.metadata.name.clone().unwrap_or_default());
            cells.push(status.clone());
            cells.push(detail);
            cells.push(age_of(o));
            if style.wide {
                cells.extend(wide_cells(kind, &o.data));
            }
            Row {
                healthy: healthy(&status),
                status,
                cells,
            }
        })
        .collect();
    compact::summarise_table(
        title,
        &header,
        rows,
        style.max_tokens,
        "narrow it: a namespace, label_selector or field_selector (e.g. status.phase!=Running)",
    )
}

/// Whether a workload's rollout is complete, and a one-line account of where it stands.
pub fn rollout_state(kind: &str, d: &Value) -> (bool, bool, String) {
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let generation = n("/metadata/generation");
    let observed = n("/status/observedGeneration");
    let behind = observed < generation;
    match kind {
        "Deployment" => {
            let want = d
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let updated = n("/status/updatedReplicas");
            let available = n("/status/availableReplicas");
            let total = n("/status/replicas");
            let stuck = condition(d, "Progressing")
                .and_then(|c| c.get("reason"))
                .and_then(Value::as_str)
                == Some("ProgressDeadlineExceeded");
            let done = !behind && updated >= want && available >= want && total <= updated;
            let mut s = format!("{updated}/{want} updated, {available}/{want} available");
            if total > updated {
                s.push_str(&format!(
                    ", {} old replicas pending termination",
                    total - updated
                ));
            }
            if behind {
                s.push_str(", new spec not yet observed by the controller");
            }
            if stuck {
                let msg = condition(d, "Progressing")
                    .and_then(|c| c.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                s.push_str(&format!(", ProgressDeadlineExceeded: {msg}"));
            }
            (done, stuck, s)
        }
        "StatefulSet" => {
            let want = d
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let ready = n("/status/readyReplicas");
            let updated = n("/status/updatedReplicas");
            let cur = d.pointer("/status/currentRevision");
            let upd = d.pointer("/status/updateRevision");
            let done = !behind && ready >= want && (cur == upd || updated >= want);
            (
                done,
                false,
                format!("{ready}/{want} ready, {updated} updated"),
            )
        }
        "DaemonSet" => {
            let want = n("/status/desiredNumberScheduled");
            let updated = n("/status/updatedNumberScheduled");
            let available = n("/status/numberAvailable");
            let done = !behind && updated >= want && available >= want;
            (
                done,
                false,
                format!("{updated}/{want} updated, {available}/{want} available"),
            )
        }
        _ => (
            false,
            false,
            format!("rollout status is not defined for {kind}"),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// manifests and change identities

/// Parse multi-document YAML into objects; `List` kinds are expanded. Every object needs
/// `apiVersion`, `kind` and `metadata.name`.
pub fn parse_manifests(text: &str) -> Result<Vec<Value>, ToolError> {
    if text.trim().is_empty() {
        return Err(ToolError::InvalidArguments(
            "`manifests` is empty; pass the objects as YAML (several documents separated by ---)"
                .into(),
        ));
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        ToolError::InvalidArguments(format!(
            "manifests are not valid YAML: {}",
            e.to_string().lines().next().unwrap_or("parse error")
        ))
    })?;
    let mut out = Vec::new();
    for d in docs {
        match d {
            Value::Null => {}
            Value::Object(_) if d.get("kind").and_then(Value::as_str) == Some("List") => {
                for item in d
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    out.push(item);
                }
            }
            Value::Object(_) => out.push(d),
            other => {
                return Err(ToolError::InvalidArguments(format!(
                    "manifest document {} is not an object: {}",
                    out.len() + 1,
                    compact::clip_line(&other.to_string(), 80)
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(ToolError::InvalidArguments(
            "`manifests` holds no objects".into(),
        ));
    }
    if out.len() > 200 {
        return Err(ToolError::InvalidArguments(format!(
            "{} objects in one call; apply at most 200 at a time",
            out.len()
        )));
    }
    for (i, d) in out.iter().enumerate() {
        let missing: Vec<&str> = [
            ("apiVersion", "/apiVersion"),
            ("kind", "/kind"),
            ("metadata.name", "/metadata/name"),
        ]
        .iter()
        .filter(|(_, p)| {
            d.pointer(p)
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
        })
        .map(|(n, _)| *n)
        .collect();
        if !missing.is_empty() {
            return Err(ToolError::InvalidArguments(format!(
                "manifest object {} has no {}",
                i + 1,
                missing.join(", ")
            )));
        }
    }
    Ok(out)
}

/// `Kind/name` (with the namespace when set) of a manifest object.
pub fn doc_id(d: &Value) -> String {
    let kind = s_at(d, "/kind").unwrap_or("?");
    let name = s_at(d, "/metadata/name").unwrap_or("?");
    match s_at(d, "/metadata/namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// A manifest object without server-owned fields, for change identities and comparisons.
pub fn normalise(d: &Value) -> Value {
    let mut v = d.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            md.remove(k);
        }
    }
    v
}

/// The content hash of a change: canonical JSON of its parts.
pub fn change_hash(parts: Value) -> String {
    canonical_hash(&parts)
}

/// Parse `k=v,k2=v2,k3-` (or the same separated by newlines) into a patch map: `k3-` removes
/// `k3` (null).
pub fn parse_pairs(s: &str, what: &str) -> Result<serde_json::Map<String, Value>, ToolError> {
    let mut m = serde_json::Map::new();
    for part in s
        .split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if let Some((k, v)) = part.split_once('=') {
            let k = k.trim();
            if k.is_empty() {
                return Err(ToolError::InvalidArguments(format!(
                    "{what}: empty key in `{part}`"
                )));
            }
            m.insert(k.to_string(), Value::String(v.trim().to_string()));
        } else if let Some(k) = part.strip_suffix('-') {
            m.insert(k.trim().to_string(), Value::Null);
        } else {
            return Err(ToolError::InvalidArguments(format!(
                "{what}: `{part}` is neither `key=value` nor `key-` (to remove)"
            )));
        }
    }
    if m.is_empty() {
        return Err(ToolError::InvalidArguments(format!(
            "{what} is empty; pass e.g. \"team=shop,tier-\""
        )));
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------------------
// secrets

/// Replace Secret values by a placeholder (keys stay), registering each decoded value with the
/// redactor. Objects of other kinds are untouched.
pub fn mask_secret(v: &mut Value, redactor: &crate::redact::Redactor) {
    if v.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    use base64::Engine;
    for field in ["data", "stringData"] {
        if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
            for (_, x) in m.iter_mut() {
                if let Some(s) = x.as_str() {
                    if field == "data" {
                        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s) {
                            if let Ok(text) = String::from_utf8(bytes) {
                                redactor.register(&text);
                            }
                        }
                    }
                    redactor.register(s);
                    let len = s.len();
                    *x = Value::String(format!("<hidden, {len} bytes>"));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// events

/// Core events in `ns` (or all namespaces), optionally only for the object with `uid`.
pub async fn events(
    cluster: &Cluster,
    ns: Option<&str>,
    field_selector: Option<&str>,
) -> Result<Vec<DynamicObject>, ToolError> {
    let ar = ar("", "v1", "Event", "events");
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(cluster.client.clone(), ns, &ar),
        None => Api::all_with(cluster.client.clone(), &ar),
    };
    let mut lp = ListParams::default();
    if let Some(f) = field_selector {
        lp = lp.fields(f);
    }
    list_all(&api, lp, 5_000, &cluster.context).await
}

/// When an event last happened.
pub fn event_time(e: &DynamicObject) -> Option<jiff::Timestamp> {
    ["/lastTimestamp", "/eventTime", "/firstTimestamp"]
        .iter()
        .find_map(|p| s_at(&e.data, p))
        .and_then(|s| s.parse().ok())
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Events as a table: warnings first, newest first; counts by type.
pub fn render_events(
    title: &str,
    mut evs: Vec<DynamicObject>,
    show_ns: bool,
    max_tokens: usize,
) -> String {
    evs.sort_by(|a, b| {
        let wa = s_at(&a.data, "/type") == Some("Warning");
        let wb = s_at(&b.data, "/type") == Some("Warning");
        wb.cmp(&wa).then(event_time(b).cmp(&event_time(a)))
    });
    let mut header = vec![];
    if show_ns {
        header.push("NAMESPACE");
    }
    header.extend(["LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"]);
    let rows: Vec<Row> = evs
        .iter()
        .map(|e| {
            let d = &e.data;
            let t = s_at(d, "/type").unwrap_or("Normal").to_string();
            let obj = format!(
                "{}/{}",
                s_at(d, "/involvedObject/kind").unwrap_or("?"),
                s_at(d, "/involvedObject/name").unwrap_or("?")
            );
            let count = d.get("count").and_then(Value::as_i64).unwrap_or(1);
            let mut cells = vec![];
            if show_ns {
                cells.push(e.metadata.namespace.clone().unwrap_or_default());
            }
            cells.extend([
                event_time(e).map(age).unwrap_or_else(|| "-".into()),
                t.clone(),
                s_at(d, "/reason").unwrap_or("").to_string(),
                obj,
                count.to_string(),
                compact::clip_line(s_at(d, "/message").unwrap_or("").trim(), 200),
            ]);
            Row {
                healthy: t != "Warning",
                status: t,
                cells,
            }
        })
        .collect();
    compact::summarise_table(
        title,
        &header,
        rows,
        max_tokens,
        "narrow it: warnings_only, a namespace, or kind + name",
    )
}

/// A JSON pointer-ish read of `.a.b.c` (kubectl jsonpath subset: dots and `[n]`).
pub fn json_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let p = p.trim_start_matches('.');
    let mut cur = v;
    for seg in p.split('.').filter(|s| !s.is_empty()) {
        let (key, idx) = match seg.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// A compact one-line rendering of a value.
pub fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Flux-style timestamp for `reconcile.fluxcd.io/requestedAt`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// An object with only the fields a patch needs.
pub fn meta_patch(field: &str, m: serde_json::Map<String, Value>) -> Value {
    json!({"metadata": {field: Value::Object(m)}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_canonicalised() {
        for (i, o) in [
            ("pods", "Pod"),
            ("deploy", "Deployment"),
            ("Deployment", "Deployment"),
            ("deployments.apps", "Deployment"),
            ("ingresses", "Ingress"),
            ("statefulsets", "StatefulSet"),
            ("helmreleases", "HelmRelease"),
            ("widgets.example.com", "widgets.example.com"),
        ] {
            assert_eq!(canonical_kind(i), o, "{i}");
        }
    }

    #[test]
    fn manifests_parse_and_validate() {
        let docs = parse_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n").expect("parses");
        assert_eq!(docs.len(), 2);
        let e = parse_manifests("apiVersion: v1\nkind: ConfigMap\n").expect_err("no name");
        assert!(e.to_string().contains("metadata.name"), "{e}");
        let e = parse_manifests("a: [").expect_err("bad yaml");
        assert!(e.to_string().contains("not valid YAML"), "{e}");
    }

    #[test]
    fn pairs_parse_with_removals() {
        let m = parse_pairs("a=1, b=two,c-", "labels").expect("ok");
        assert_eq!(Value::Object(m), json!({"a": "1", "b": "two", "c": null}));
        assert!(parse_pairs("nonsense", "labels").is_err());
        assert!(parse_pairs(" , ", "labels").is_err());
    }

    #[test]
    fn secrets_are_masked_and_registered() {
        let r = crate::redact::Redactor::new();
        let mut s = json!({"kind": "Secret", "data": {"password": "aHVudGVyMi1zZWNyZXQ="}});
        mask_secret(&mut s, &r);
        assert_eq!(s["data"]["password"], "<hidden, 20 bytes>");
        assert_eq!(r.redact("pw hunter2-secret"), "pw [REDACTED]");
    }

    #[test]
    fn json_paths_read_nested_values() {
        let v = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready"}]}});
        assert_eq!(json_path(&v, "{.status.phase}"), Some(&json!("Running")));
        assert_eq!(
            json_path(&v, ".status.conditions[0].type"),
            Some(&json!("Ready"))
        );
        assert_eq!(json_path(&v, ".status.nope"), None);
    }
}
