//! What a kubectl call will really do: every object resolved through the API server's discovery
//! (kind as the server names it, group, scope) and placed in the namespace the executor will
//! use — the same rules as the executor, so the guard judges exactly what runs.
//!
//! Used by [`Tool::resolve`](crate::tools::Tool::resolve) for kubectl: policy, fingerprint and
//! approval are computed from [`resolve`]'s answer, never from how the model spelled a kind
//! (`clusterroles`, `ClusterRole`, `clusterrole.rbac.authorization.k8s.io` are one kind) or
//! where it put a namespace (the argument, `metadata.namespace`, the context's default).

use super::{Args, Operation};
use crate::kube_client::Cluster;
use crate::tools::k8s::{self, change_hash, parse_manifests};
use crate::tools::{Change, Invocation, ObjectRef, ToolError};
use serde_json::{json, Value};

/// Resolve `inv` (from the pure `plan`) against the cluster.
pub(super) async fn resolve(
    cluster: &Cluster,
    a: &Args,
    mut inv: Invocation,
) -> Result<Invocation, ToolError> {
    use Operation::*;
    let default_ns = a
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    // the context is the one the client really talks to, so the environment is never guessed
    // from a missing argument
    inv.scope.context = Some(cluster.context.clone());
    let (objects, content) = match a.operation {
        Get | Describe | Logs | Events | RolloutStatus | AuthCanI | ApiResources | Wait => {
            return Ok(inv)
        }
        ApplyDryRun | Apply | Diff => manifests(cluster, a, &default_ns).await?,
        Scale | RolloutRestart | RolloutUndo | Annotate | Label | Delete => {
            target(cluster, a, &default_ns).await?
        }
        Drain => {
            let node = a.name.clone().unwrap_or_default();
            let obj = ObjectRef {
                group: String::new(),
                kind: "Node".into(),
                namespace: None,
                name: node.clone(),
            };
            let content = json!({"op": "drain", "node": node, "force": a.force.unwrap_or(false)});
            (vec![obj], content)
        }
    };
    let mut kinds: Vec<String> = objects.iter().map(|o| o.kind.clone()).collect();
    if a.operation == Drain {
        kinds.push("Pod".into());
    }
    kinds.sort();
    kinds.dedup();
    inv.scope.kinds = kinds;
    let mut namespaces: Vec<Option<String>> = objects.iter().map(|o| o.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    inv.scope.namespace = match namespaces.as_slice() {
        [one] => one.clone(),
        _ => None,
    };
    let where_ = describe(&objects);
    if let Some(change) = inv.change.as_mut() {
        // the identity of the change is the resolved effect: context + every object as sent
        *change = Change {
            target: format!("context={} {where_}", cluster.context),
            content_hash: change_hash(json!({"context": cluster.context, "effect": content})),
            dry_run_hint: change.dry_run_hint.clone(),
        };
    }
    inv.target = format!(
        "{}{} {where_} (context {})",
        if inv.dry_run { "dry-run: " } else { "" },
        a.operation.as_str(),
        cluster.context
    );
    inv.scope.objects = objects;
    Ok(inv)
}

/// `kind ns/name, …` for targets and messages (cut to a readable length).
fn describe(objects: &[ObjectRef]) -> String {
    let ids: Vec<String> = objects
        .iter()
        .map(|o| {
            let kind = if o.group.is_empty() {
                o.kind.clone()
            } else {
                format!("{}.{}", o.kind, o.group)
            };
            let name = if o.name.is_empty() { "*" } else { &o.name };
            match &o.namespace {
                Some(ns) => format!("{kind} {ns}/{name}"),
                None => format!("{kind} {name}"),
            }
        })
        .collect();
    crate::compact::clip_line(&ids.join(", "), 300)
}

/// Manifests: every document resolved; the content is every object exactly as the executor
/// sends it (namespace set for namespaced kinds, removed for cluster-scoped ones) — all of it,
/// `status` included, so nothing can be added after the dry-run.
async fn manifests(
    cluster: &Cluster,
    a: &Args,
    default_ns: &str,
) -> Result<(Vec<ObjectRef>, Value), ToolError> {
    let docs = parse_manifests(a.manifests.as_deref().unwrap_or(""))?;
    let mut objects = Vec::with_capacity(docs.len());
    let mut sent = Vec::with_capacity(docs.len());
    for d in &docs {
        let api_version = d.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = d.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = d
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let (ar, namespaced) = k8s::resolve_gvk(cluster, api_version, kind)
            .await
            .map_err(|e| match k8s_kind_hint(cluster, kind) {
                Some(hint) => ToolError::InvalidArguments(hint),
                None => e,
            })?;
        let ns = namespaced.then(|| {
            d.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(default_ns)
                .to_string()
        });
        let mut obj = d.clone();
        if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            match &ns {
                Some(ns) => {
                    md.insert("namespace".into(), json!(ns));
                }
                None => {
                    md.remove("namespace");
                }
            }
        }
        objects.push(ObjectRef {
            group: ar.group.clone(),
            kind: ar.kind.clone(),
            namespace: ns,
            name: name.to_string(),
        });
        sent.push(obj);
    }
    let content = json!({
        "op": "apply",
        "force_conflicts": a.force_conflicts.unwrap_or(false),
        "objects": sent,
    });
    Ok((objects, content))
}

/// A manifest's kind must be written as the server names it (`ClusterRole`, not
/// `clusterroles`): the server would reject it anyway, and the guard must not be the one place
/// where spellings differ. Returns the fix when discovery knows the kind under another spelling.
fn k8s_kind_hint(_cluster: &Cluster, kind: &str) -> Option<String> {
    let canonical = k8s::canonical_kind(kind);
    (canonical != kind).then(|| {
        format!("a manifest's kind must be spelled as the API server names it: write `kind: {canonical}` (not `{kind}`)")
    })
}

/// Operations on existing objects: the kind resolved through discovery (any spelling, plural
/// or short name), the namespace only for namespaced kinds.
async fn target(
    cluster: &Cluster,
    a: &Args,
    default_ns: &str,
) -> Result<(Vec<ObjectRef>, Value), ToolError> {
    let kind = a.kind.as_deref().unwrap_or("");
    let (ar, namespaced) = k8s::resolve_kind(cluster, kind).await?;
    let ns = namespaced.then(|| default_ns.to_string());
    let pairs = match a.operation {
        Operation::Annotate => Some(Value::Object(k8s::parse_pairs(
            a.annotations.as_deref().unwrap_or(""),
            "annotations",
        )?)),
        Operation::Label => Some(Value::Object(k8s::parse_pairs(
            a.labels.as_deref().unwrap_or(""),
            "labels",
        )?)),
        _ => None,
    };
    let content = json!({
        "op": a.operation.as_str(),
        "group": ar.group, "version": ar.version, "kind": ar.kind, "namespace": ns,
        "name": a.name, "selector": a.label_selector,
        "replicas": a.replicas, "to_revision": a.to_revision, "pairs": pairs,
    });
    let obj = ObjectRef {
        group: ar.group.clone(),
        kind: ar.kind.clone(),
        namespace: ns,
        name: a.name.clone().unwrap_or_default(),
    };
    Ok((vec![obj], content))
}
