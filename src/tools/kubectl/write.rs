//! kubectl changes: apply (and its server-side dry-run and diff), scale, rollout restart/undo,
//! annotate/label, delete, drain. Each takes `dry_run` (server-side `dryRun=All`).

use super::{Args, Kubectl};
use crate::compact;
use crate::kube_client::Cluster;
use crate::tools::k8s::{self, kube_err, list_all, parse_manifests, resolve_gvk, resolve_kind};
use crate::tools::{ToolCtx, ToolError};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, PropagationPolicy,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What objects were before bosun's last real apply of them (see [`restore`]).
pub(crate) type Snapshots = std::sync::Mutex<std::collections::HashMap<String, Option<Value>>>;

fn snapshot_key(
    context: &str,
    ar: &kube::api::ApiResource,
    ns: Option<&str>,
    name: &str,
) -> String {
    format!(
        "{context}|{}|{}|{}|{name}",
        ar.group,
        ar.kind,
        ns.unwrap_or("")
    )
}

/// A manifest document's coordinates — apiVersion, kind, name — and the namespace it lands in
/// if its kind is namespaced (its own, else the call's default). The one rule shared by the
/// guard's view of a call (`kubectl::effect`), `apply` and `restore`.
pub(super) struct DocRef<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub ns: String,
}

pub(super) fn doc_ref<'a>(d: &'a Value, default_ns: &str) -> DocRef<'a> {
    let s = |p: &str| d.pointer(p).and_then(Value::as_str).unwrap_or("");
    DocRef {
        api_version: s("/apiVersion"),
        kind: s("/kind"),
        name: s("/metadata/name"),
        ns: Some(s("/metadata/namespace"))
            .filter(|n| !n.is_empty())
            .unwrap_or(default_ns)
            .to_string(),
    }
}

/// `Kind ns/name`, or `Kind name` for a cluster-scoped kind.
fn doc_id(r: &DocRef<'_>, namespaced: bool) -> String {
    if namespaced {
        format!("{} {}/{}", r.kind, r.ns, r.name)
    } else {
        format!("{} {}", r.kind, r.name)
    }
}

/// The field manager bosun applies as.
pub const FIELD_MANAGER: &str = "bosun";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Apply,
    DryRun,
    Diff,
}

fn pp(dry_run: bool) -> PatchParams {
    PatchParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

fn escape_pointer(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn collect_ref_paths(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains("vault:") => out.push(path.to_string()),
        Value::Object(m) => {
            for (k, x) in m {
                collect_ref_paths(x, &format!("{path}/{}", escape_pointer(k)), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_ref_paths(x, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Resolve `vault:` references in every string of `doc` (Secret `data` values are base64
/// encoded after resolution). Values are registered with the redactor; errors never contain them.
async fn resolve_refs(doc: &Value, ctx: &ToolCtx) -> Result<Value, ToolError> {
    let mut v = doc.clone();
    let mut paths = Vec::new();
    collect_ref_paths(&v, "", &mut paths);
    if paths.is_empty() {
        return Ok(v);
    }
    // never resolve a reference outside a Secret's data/stringData (the plan refuses it too)
    crate::secrets::check_placement(doc, &k8s::doc_id(doc)).map_err(ToolError::InvalidArguments)?;
    let is_secret = v.get("kind").and_then(Value::as_str) == Some("Secret");
    for p in paths {
        let Some(s) = v.pointer(&p).and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        let resolved = crate::secrets::resolve_in(&s, &*ctx.secrets)
            .await
            .map_err(|e| ToolError::Failed(format!("{}: {e}", k8s::doc_id(doc))))?;
        if crate::secrets::VaultRef::parse(s.trim()).is_some() {
            ctx.redactor.register(&resolved);
        }
        let new = if is_secret && p.starts_with("/data/") {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(resolved.as_bytes())
        } else {
            resolved
        };
        if let Some(slot) = v.pointer_mut(&p) {
            *slot = Value::String(new);
        }
    }
    Ok(v)
}

fn rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" | "ConfigMap" | "Secret" | "PersistentVolumeClaim" => 2,
        _ => 3,
    }
}

/// An object as compared and diffed: no server bookkeeping, no status.
fn comparable(v: &Value) -> Value {
    let mut x = k8s::normalise(v);
    compact::strip_noise(&mut x);
    x
}

/// Mask Secret values in a live/new pair, marking the keys whose value changes.
fn mask_pair(live: Option<&mut Value>, new: &mut Value, ctx: &ToolCtx) {
    if new.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    let live_data = live
        .as_ref()
        .and_then(|l| l.get("data"))
        .cloned()
        .unwrap_or(Value::Null);
    let changed: BTreeSet<String> = new
        .get("data")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, v)| live_data.get(k.as_str()) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    k8s::mask_secret(new, &ctx.redactor);
    if let Some(m) = new.get_mut("data").and_then(Value::as_object_mut) {
        for (k, v) in m.iter_mut() {
            *v = Value::String(if changed.contains(k) {
                "<hidden, changed>".into()
            } else {
                "<hidden>".into()
            });
        }
    }
    if let Some(l) = live {
        k8s::mask_secret(l, &ctx.redactor);
        if let Some(m) = l.get_mut("data").and_then(Value::as_object_mut) {
            for (_, v) in m.iter_mut() {
                *v = Value::String("<hidden>".into());
            }
        }
    }
}

pub(super) async fn apply(
    k: &Kubectl,
    cluster: &Cluster,
    a: &Args,
    ns: &str,
    ctx: &ToolCtx,
    mode: Mode,
) -> Result<String, ToolError> {
    let docs = parse_manifests(a.manifests.as_deref().unwrap_or(""))?;
    let env = ctx.environment(&cluster.context);
    let dry = mode != Mode::Apply;
    let mut notes: Vec<String> = Vec::new();
    if dry {
        let findings = crate::checks::check_manifests(&docs, env);
        if crate::checks::has_errors(&findings) {
            let lines: Vec<String> = findings.iter().map(ToString::to_string).collect();
            return Err(ToolError::Failed(format!(
                "the change fails bosun's checks for environment {env} (context {}); nothing was sent to the server. Fix the manifests and dry-run again:\n{}",
                cluster.context,
                lines.join("\n")
            )));
        }
        notes.extend(findings.iter().map(ToString::to_string));
    }
    let new_namespaces: BTreeSet<String> = docs
        .iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some("Namespace"))
        .filter_map(|d| {
            d.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by_key(|&i| rank(docs[i].get("kind").and_then(Value::as_str).unwrap_or("")));
    let mut lines: Vec<String> = Vec::new();
    let mut diffs: Vec<String> = Vec::new();
    let mut failures = 0usize;
    for i in order {
        let d = &docs[i];
        // the same rule as the guard's view of this call (kubectl::effect)
        let r = doc_ref(d, ns);
        let (kind, name, obj_ns) = (r.kind, r.name, r.ns.clone());
        let (ar, namespaced) = match resolve_gvk(cluster, r.api_version, kind).await {
            Ok(x) => x,
            Err(e) => {
                failures += 1;
                lines.push(format!("  {kind} {name}: {e}"));
                continue;
            }
        };
        let id = doc_id(&r, namespaced);
        let mut obj = d.clone();
        if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            if namespaced {
                md.insert("namespace".into(), json!(obj_ns));
            } else {
                md.remove("namespace");
            }
        }
        let sent = match resolve_refs(&obj, ctx).await {
            Ok(v) => v,
            Err(e) => {
                failures += 1;
                lines.push(format!("  {id}: {e}"));
                continue;
            }
        };
        let api = k8s::api(cluster, &ar, namespaced, &obj_ns);
        let live = match api.get_opt(name).await {
            Ok(l) => l,
            Err(e) => {
                failures += 1;
                lines.push(format!("  {id}: {}", kube_err(e, &cluster.context)));
                continue;
            }
        };
        if dry && namespaced && live.is_none() && new_namespaces.contains(&obj_ns) {
            let ns_api: Api<DynamicObject> = Api::all_with(
                cluster.client.clone(),
                &k8s::ar("", "v1", "Namespace", "namespaces"),
            );
            if matches!(ns_api.get_opt(&obj_ns).await, Ok(None)) {
                lines.push(format!(
                    "  {id}: not dry-run by the server: its namespace {obj_ns} is created by this same change (checked by bosun only)"
                ));
                continue;
            }
        }
        let params = PatchParams {
            force: a.force_conflicts.unwrap_or(false),
            ..pp(dry)
        };
        let result = match api.patch(name, &params, &Patch::Apply(&sent)).await {
            Ok(r) => r,
            Err(e) => {
                failures += 1;
                let msg = match e {
                    kube::Error::Api(s) if s.code == 409 => format!(
                        "conflict with another field manager: {} — if bosun should own these fields, dry-run and apply again with force_conflicts: true",
                        s.message
                    ),
                    kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
                        format!("rejected by the server: {}", s.message)
                    }
                    kube::Error::Api(s) if s.message.contains("field not declared in schema") => {
                        format!(
                            "rejected by the server: unknown field ({}) — probably a typo or a field of another API version",
                            s.message
                        )
                    }
                    other => kube_err(other, &cluster.context).to_string(),
                };
                lines.push(format!("  {id}: {msg}"));
                continue;
            }
        };
        let mut res_v = serde_json::to_value(&result).map_err(k8s::failed)?;
        let mut live_v = match &live {
            Some(l) => Some(serde_json::to_value(l).map_err(k8s::failed)?),
            None => None,
        };
        if mode == Mode::Apply {
            // what the object was before this apply, for `restore` (the runtime's rollback)
            let key = snapshot_key(
                &cluster.context,
                &ar,
                namespaced.then_some(obj_ns.as_str()),
                name,
            );
            if let Ok(mut snaps) = k.snapshots.lock() {
                snaps.insert(key, live_v.clone());
            }
        }
        mask_pair(live_v.as_mut(), &mut res_v, ctx);
        let new_c = comparable(&res_v);
        let verb = |past: &str, future: &str| {
            if dry {
                format!("would be {future}")
            } else {
                past.to_string()
            }
        };
        let state = match &live_v {
            None => verb("created", "created"),
            Some(l) => {
                let old_c = comparable(l);
                if old_c == new_c {
                    "unchanged".to_string()
                } else {
                    let (ya, yb) = (compact::to_yaml(&old_c), compact::to_yaml(&new_c));
                    let td = similar::TextDiff::from_lines(&ya, &yb);
                    let changed = td
                        .iter_all_changes()
                        .filter(|c| c.tag() != similar::ChangeTag::Equal)
                        .count();
                    // a dry-run shows its diff too: it is what an approval of the change shows
                    if mode != Mode::Apply {
                        diffs.push(
                            td.unified_diff()
                                .context_radius(3)
                                .header(&format!("{id} (live)"), &format!("{id} (after apply)"))
                                .to_string(),
                        );
                    }
                    format!(
                        "{} ({changed} lines differ)",
                        verb("configured", "configured")
                    )
                }
            }
        };
        if mode == Mode::Diff && live_v.is_none() {
            diffs.push(format!(
                "+++ {id} (new object)\n{}",
                compact::to_yaml(&new_c)
                    .lines()
                    .map(|l| format!("+{l}\n"))
                    .collect::<String>()
            ));
        }
        lines.push(format!("  {id}: {state}"));
    }
    let what = match mode {
        Mode::Apply => "server-side apply",
        Mode::DryRun => "server-side dry-run (dryRun=All, nothing persisted)",
        Mode::Diff => "diff against a server-side dry-run (nothing persisted)",
    };
    let mut out = format!(
        "{what} of {} object(s), context {}, namespace {ns}, field manager {FIELD_MANAGER}:\n{}\n",
        docs.len(),
        cluster.context,
        lines.join("\n")
    );
    if !notes.is_empty() {
        out.push_str(&format!("checks ({env}):\n{}\n", notes.join("\n")));
    }
    if mode == Mode::Diff {
        if diffs.is_empty() {
            out.push_str("no differences\n");
        } else {
            out.push_str(&compact::fit_budget(
                &diffs.join("\n"),
                k.max_tokens * 3 / 4,
            ));
        }
    }
    if mode == Mode::DryRun && !diffs.is_empty() {
        out.push_str(
            "changes against the live objects (managedFields, status, resourceVersion left out):\n",
        );
        out.push_str(&compact::fit_budget(&diffs.join("\n"), k.max_tokens / 2));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    if failures > 0 {
        return Err(ToolError::Failed(format!(
            "{failures} of {} object(s) failed. {out}",
            docs.len()
        )));
    }
    match mode {
        Mode::DryRun => out.push_str(
            "The dry-run passed. To make the change: kubectl apply with exactly the same manifests, context and namespace.\n",
        ),
        Mode::Apply => out.push_str("Applied. Verify with rollout_status / get.\n"),
        Mode::Diff => {}
    }
    Ok(out)
}

fn dry_note(dry: bool) -> &'static str {
    if dry {
        " (dry-run: nothing changed)"
    } else {
        ""
    }
}

pub(super) async fn scale(cluster: &Cluster, a: &Args, ns: &str) -> Result<String, ToolError> {
    let (ar, namespaced) = resolve_kind(cluster, a.kind.as_deref().unwrap_or("")).await?;
    let name = a.name.clone().unwrap_or_default();
    let replicas = a.replicas.unwrap_or(0);
    let dry = a.dry_run == Some(true);
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let cur = api
        .get_scale(&name)
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let from = cur.spec.and_then(|s| s.replicas).unwrap_or(0);
    api.patch_scale(
        &name,
        &pp(dry),
        &Patch::Merge(json!({"spec": {"replicas": replicas}})),
    )
    .await
    .map_err(|e| kube_err(e, &cluster.context))?;
    Ok(format!(
        "{} {ns}/{name} scaled from {from} to {replicas} replicas{}",
        ar.kind,
        dry_note(dry)
    ))
}

fn workload_kind(kind: &str) -> Result<(), ToolError> {
    if matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") {
        Ok(())
    } else {
        Err(ToolError::InvalidArguments(format!(
            "rollouts apply to Deployment, StatefulSet and DaemonSet, not {kind}"
        )))
    }
}

pub(super) async fn rollout_restart(
    cluster: &Cluster,
    a: &Args,
    ns: &str,
) -> Result<String, ToolError> {
    let (ar, namespaced) = resolve_kind(cluster, a.kind.as_deref().unwrap_or("")).await?;
    workload_kind(&ar.kind)?;
    let name = a.name.clone().unwrap_or_default();
    let dry = a.dry_run == Some(true);
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": k8s::now_rfc3339()}}}}});
    api.patch(&name, &pp(dry), &Patch::Merge(&patch))
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    Ok(format!(
        "{} {ns}/{name} restarted: its pods are replaced by a rolling update{}; follow with rollout_status",
        ar.kind,
        dry_note(dry)
    ))
}

fn revision_of(o: &DynamicObject) -> Option<i64> {
    o.metadata
        .annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")?
        .parse()
        .ok()
}

pub(super) async fn rollout_undo(
    cluster: &Cluster,
    a: &Args,
    ns: &str,
) -> Result<String, ToolError> {
    let (ar, namespaced) = resolve_kind(cluster, a.kind.as_deref().unwrap_or("")).await?;
    workload_kind(&ar.kind)?;
    let name = a.name.clone().unwrap_or_default();
    let dry = a.dry_run == Some(true);
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let obj = api
        .get(&name)
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let owned = |o: &DynamicObject| {
        o.metadata
            .owner_references
            .as_ref()
            .is_some_and(|rs| rs.iter().any(|r| r.uid == uid))
    };
    let (patch, from, to) = if ar.kind == "Deployment" {
        let current = revision_of(&obj).unwrap_or(0);
        let rs_ar = k8s::ar("apps", "v1", "ReplicaSet", "replicasets");
        let rs_api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), ns, &rs_ar);
        let all = list_all(&rs_api, ListParams::default(), 2_000, &cluster.context).await?;
        let mut revs: Vec<(i64, DynamicObject)> = all
            .into_iter()
            .filter(|o| owned(o))
            .filter_map(|o| revision_of(&o).map(|r| (r, o)))
            .collect();
        revs.sort_by_key(|(r, _)| *r);
        let pick = match a.to_revision {
            Some(r) => revs.iter().find(|(x, _)| *x == r),
            None => revs.iter().rev().find(|(x, _)| *x < current),
        };
        let Some((rev, rs)) = pick else {
            let have: Vec<String> = revs.iter().map(|(r, _)| r.to_string()).collect();
            return Err(ToolError::Failed(format!(
                "no revision to roll back to for Deployment {ns}/{name} (current {current}; revisions: {})",
                if have.is_empty() { "none".to_string() } else { have.join(", ") }
            )));
        };
        let mut tmpl = rs
            .data
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(l) = tmpl
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            l.remove("pod-template-hash");
        }
        if let Some(m) = tmpl.as_object_mut() {
            m.insert("$patch".into(), json!("replace"));
        }
        (json!({"spec": {"template": tmpl}}), current, *rev)
    } else {
        let cr_ar = k8s::ar("apps", "v1", "ControllerRevision", "controllerrevisions");
        let cr_api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), ns, &cr_ar);
        let all = list_all(&cr_api, ListParams::default(), 2_000, &cluster.context).await?;
        let mut revs: Vec<(i64, DynamicObject)> = all
            .into_iter()
            .filter(|o| owned(o))
            .filter_map(|o| {
                o.data
                    .get("revision")
                    .and_then(Value::as_i64)
                    .map(|r| (r, o))
            })
            .collect();
        revs.sort_by_key(|(r, _)| *r);
        let current = revs.last().map(|(r, _)| *r).unwrap_or(0);
        let pick = match a.to_revision {
            Some(r) => revs.iter().find(|(x, _)| *x == r),
            None => revs.iter().rev().find(|(x, _)| *x < current),
        };
        let Some((rev, cr)) = pick else {
            return Err(ToolError::Failed(format!(
                "no earlier revision to roll back to for {} {ns}/{name} (current {current})",
                ar.kind
            )));
        };
        (
            cr.data.get("data").cloned().unwrap_or(Value::Null),
            current,
            *rev,
        )
    };
    api.patch(&name, &pp(dry), &Patch::Strategic(&patch))
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    Ok(format!(
        "{} {ns}/{name} rolled back from revision {from} to the pod template of revision {to}{}; follow with rollout_status",
        ar.kind,
        dry_note(dry)
    ))
}

pub(super) async fn annotate(cluster: &Cluster, a: &Args, ns: &str) -> Result<String, ToolError> {
    let (ar, namespaced) = resolve_kind(cluster, a.kind.as_deref().unwrap_or("")).await?;
    let name = a.name.clone().unwrap_or_default();
    let dry = a.dry_run == Some(true);
    let (field, pairs) = match a.operation {
        super::Operation::Label => (
            "labels",
            k8s::parse_pairs(a.labels.as_deref().unwrap_or(""), "labels")?,
        ),
        _ => (
            "annotations",
            k8s::parse_pairs(a.annotations.as_deref().unwrap_or(""), "annotations")?,
        ),
    };
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let live = api
        .get(&name)
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let old = if field == "labels" {
        live.metadata.labels.unwrap_or_default()
    } else {
        live.metadata.annotations.unwrap_or_default()
    };
    api.patch(
        &name,
        &pp(dry),
        &Patch::Merge(k8s::meta_patch(field, pairs.clone())),
    )
    .await
    .map_err(|e| kube_err(e, &cluster.context))?;
    let changes: Vec<String> = pairs
        .iter()
        .map(|(k, v)| match (old.get(k), v.as_str()) {
            (None, Some(n)) => format!("{k}={}", compact::clip_line(n, 80)),
            (Some(o), Some(n)) if o == n => format!("{k} unchanged"),
            (Some(o), Some(n)) => format!(
                "{k}: {} → {}",
                compact::clip_line(o, 60),
                compact::clip_line(n, 60)
            ),
            (Some(_), None) => format!("{k} removed"),
            (None, None) => format!("{k} was not set"),
        })
        .collect();
    Ok(format!(
        "{} {ns}/{name} {field}: {}{}",
        ar.kind,
        changes.join(", "),
        dry_note(dry)
    ))
}

pub(super) async fn delete(cluster: &Cluster, a: &Args, ns: &str) -> Result<String, ToolError> {
    let (ar, namespaced) = resolve_kind(cluster, a.kind.as_deref().unwrap_or("")).await?;
    let dry = a.dry_run == Some(true);
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let names: Vec<String> = match (&a.name, &a.label_selector) {
        (Some(n), _) => vec![n.clone()],
        (None, Some(sel)) => {
            let items = list_all(
                &api,
                ListParams::default().labels(sel),
                1_000,
                &cluster.context,
            )
            .await?;
            if items.len() > 200 {
                return Err(ToolError::Failed(format!(
                    "{} {} match `{sel}`; bosun deletes at most 200 at a time — narrow the selector",
                    items.len(),
                    ar.plural
                )));
            }
            items.into_iter().filter_map(|o| o.metadata.name).collect()
        }
        (None, None) => vec![],
    };
    if names.is_empty() {
        return Ok(format!("No {} match; nothing deleted.", ar.plural));
    }
    let dp = DeleteParams {
        dry_run: dry,
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for n in &names {
        match api.delete(n, &dp).await {
            Ok(_) => done.push(n.clone()),
            Err(e) => failed.push(format!("{n}: {}", kube_err(e, &cluster.context))),
        }
    }
    let where_ = if namespaced {
        format!(" in namespace {ns}")
    } else {
        String::new()
    };
    let mut out = format!(
        "{} {} {}{where_}{}: {}",
        if dry { "would delete" } else { "deleted" },
        done.len(),
        ar.plural,
        dry_note(dry),
        compact::clip_line(&done.join(", "), 1_500)
    );
    if !failed.is_empty() {
        out.push_str(&format!("\nfailed: {}", failed.join("; ")));
        return Err(ToolError::Failed(out));
    }
    Ok(out)
}

/// The Eviction API version this server accepts.
async fn eviction_version(cluster: &Cluster) -> &'static str {
    let v1 = cluster.resources().await.ok().is_some_and(|all| {
        all.iter()
            .any(|(ar, _)| ar.group == "policy" && ar.version == "v1")
    });
    if v1 {
        "policy/v1"
    } else {
        "policy/v1beta1"
    }
}

pub(super) async fn drain(
    cluster: &Cluster,
    a: &Args,
    deadline: Instant,
) -> Result<String, ToolError> {
    let node = a.name.clone().unwrap_or_default();
    let dry = a.dry_run == Some(true);
    let force = a.force.unwrap_or(false);
    let nodes: Api<DynamicObject> =
        Api::all_with(cluster.client.clone(), &k8s::ar("", "v1", "Node", "nodes"));
    nodes
        .get(&node)
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let pods_ar = k8s::ar("", "v1", "Pod", "pods");
    let all_pods: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &pods_ar);
    let pods = list_all(
        &all_pods,
        ListParams::default().fields(&format!("spec.nodeName={node}")),
        5_000,
        &cluster.context,
    )
    .await?;
    let mut evict: Vec<(String, String)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut blocked: Vec<String> = Vec::new();
    for p in &pods {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let name = p.metadata.name.clone().unwrap_or_default();
        let id = format!("{ns}/{name}");
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let annotations = p.metadata.annotations.clone().unwrap_or_default();
        if annotations.contains_key("kubernetes.io/config.mirror") {
            skipped.push(format!("{id} (mirror pod)"));
            continue;
        }
        let owner = p
            .metadata
            .owner_references
            .as_ref()
            .and_then(|rs| rs.iter().find(|r| r.controller == Some(true)).cloned());
        if owner.as_ref().is_some_and(|o| o.kind == "DaemonSet") {
            skipped.push(format!("{id} (DaemonSet)"));
            continue;
        }
        let empty_dir = p
            .data
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .is_some_and(|vs| vs.iter().any(|v| v.get("emptyDir").is_some()));
        if !force && owner.is_none() {
            blocked.push(format!(
                "{id} has no controller (it would not be recreated)"
            ));
        } else if !force && empty_dir {
            blocked.push(format!("{id} has emptyDir data (it would be lost)"));
        } else {
            evict.push((ns, name));
        }
    }
    if !blocked.is_empty() {
        return Err(ToolError::Failed(format!(
            "drain of node {node} refused before changing anything: {}. Pass force: true (after a dry-run with force: true) if losing them is acceptable",
            blocked.join("; ")
        )));
    }
    nodes
        .patch(
            &node,
            &pp(dry),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let version = eviction_version(cluster).await;
    let mut evicted = Vec::new();
    let pdb_blocked: Vec<String>;
    let mut failed = Vec::new();
    let mut queue = evict;
    loop {
        let mut retry = Vec::new();
        for (ns, name) in queue {
            let api: Api<DynamicObject> =
                Api::namespaced_with(cluster.client.clone(), &ns, &pods_ar);
            let body = json!({"apiVersion": version, "kind": "Eviction",
                              "metadata": {"name": name, "namespace": ns}});
            let params = PostParams {
                dry_run: dry,
                ..Default::default()
            };
            match api
                .create_subresource::<Value, Value>("eviction", &name, &params, &body)
                .await
            {
                Ok(_) => evicted.push(format!("{ns}/{name}")),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(kube::Error::Api(s)) if s.code == 429 => retry.push((ns, name, s.message)),
                Err(e) => failed.push(format!("{ns}/{name}: {}", kube_err(e, &cluster.context))),
            }
        }
        if retry.is_empty() || dry || Instant::now() + Duration::from_secs(2) > deadline {
            pdb_blocked = retry
                .into_iter()
                .map(|(ns, n, m)| format!("{ns}/{n} ({m})"))
                .collect();
            break;
        }
        queue = retry.into_iter().map(|(ns, n, _)| (ns, n)).collect();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut out = format!(
        "node {node} {}{}; {} {} pod(s): {}",
        if dry { "would be cordoned" } else { "cordoned" },
        dry_note(dry),
        if dry { "would evict" } else { "evicted" },
        evicted.len(),
        compact::clip_line(&evicted.join(", "), 1_000)
    );
    if !skipped.is_empty() {
        out.push_str(&format!("; skipped: {}", skipped.join(", ")));
    }
    if !dry && !evicted.is_empty() {
        out.push_str("; evicted pods terminate once their kubelet confirms (use wait with wait_for: delete to follow)");
    }
    if !pdb_blocked.is_empty() || !failed.is_empty() {
        if !pdb_blocked.is_empty() {
            out.push_str(&format!(
                "\nblocked by a PodDisruptionBudget{}: {}",
                if dry { "" } else { " until the timeout" },
                pdb_blocked.join("; ")
            ));
        }
        if !failed.is_empty() {
            out.push_str(&format!("\nfailed: {}", failed.join("; ")));
        }
        return Err(ToolError::Failed(out));
    }
    Ok(out)
}

/// `restore`: undo bosun's own last apply of these manifests — each object back to exactly what
/// it was before (replaced with the captured object), or deleted if the apply created it. Only
/// objects this process applied can be restored (the snapshot lives in memory); anything else
/// is reported, not guessed.
pub(super) async fn restore(
    k: &Kubectl,
    cluster: &Cluster,
    a: &Args,
    ns: &str,
    dry: bool,
) -> Result<String, ToolError> {
    let docs = parse_manifests(a.manifests.as_deref().unwrap_or(""))?;
    let mut lines = Vec::new();
    let mut failures = 0usize;
    for d in &docs {
        let r = doc_ref(d, ns);
        let (name, obj_ns) = (r.name, r.ns.clone());
        let (ar, namespaced) = resolve_gvk(cluster, r.api_version, r.kind).await?;
        let id = doc_id(&r, namespaced);
        let key = snapshot_key(
            &cluster.context,
            &ar,
            namespaced.then_some(obj_ns.as_str()),
            name,
        );
        let snap = k.snapshots.lock().ok().and_then(|m| m.get(&key).cloned());
        let api = k8s::api(cluster, &ar, namespaced, &obj_ns);
        let r = match snap {
            None => Err(format!(
                "bosun has no record of {id} before an apply in this process, so it cannot restore it; check it with get/describe and roll it back by hand"
            )),
            Some(None) => {
                let dp = DeleteParams {
                    dry_run: dry,
                    propagation_policy: Some(PropagationPolicy::Foreground),
                    ..Default::default()
                };
                match api.delete(name, &dp).await {
                    Ok(_) => Ok(format!("{} (the apply created it)", if dry { "would be deleted" } else { "deleted" })),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok("already gone".into()),
                    Err(e) => Err(kube_err(e, &cluster.context).to_string()),
                }
            }
            Some(Some(before)) => {
                let live = api.get_opt(name).await.map_err(|e| kube_err(e, &cluster.context))?;
                let mut obj = k8s::normalise(&before);
                if let Some(m) = obj.as_object_mut() {
                    m.remove("status");
                }
                match live.and_then(|l| l.metadata.resource_version) {
                    None => {
                        // deleted since: create it again as it was
                        let o: DynamicObject = serde_json::from_value(obj).map_err(k8s::failed)?;
                        let pp = PostParams { dry_run: dry, field_manager: Some(FIELD_MANAGER.into()) };
                        api.create(&pp, &o).await.map(|_| format!("{} as it was before the apply", if dry { "would be re-created" } else { "re-created" })).map_err(|e| kube_err(e, &cluster.context).to_string())
                    }
                    Some(rv) => {
                        if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                            md.insert("resourceVersion".into(), json!(rv));
                        }
                        let o: DynamicObject = serde_json::from_value(obj).map_err(k8s::failed)?;
                        let pp = PostParams { dry_run: dry, field_manager: Some(FIELD_MANAGER.into()) };
                        api.replace(name, &pp, &o).await.map(|_| format!("{} to exactly the object captured before the apply", if dry { "would be restored" } else { "restored" })).map_err(|e| kube_err(e, &cluster.context).to_string())
                    }
                }
            }
        };
        match r {
            Ok(what) => {
                if !dry {
                    if let Ok(mut m) = k.snapshots.lock() {
                        m.remove(&key);
                    }
                }
                lines.push(format!("  {id}: {what}"));
            }
            Err(e) => {
                failures += 1;
                lines.push(format!("  {id}: {e}"));
            }
        }
    }
    let head = format!(
        "{}restore of {} object(s) (context {}){}",
        if dry { "dry-run: " } else { "" },
        docs.len(),
        cluster.context,
        if failures > 0 {
            format!(": {failures} failed")
        } else {
            String::new()
        }
    );
    let text = format!("{head}\n{}", lines.join("\n"));
    if failures > 0 {
        Err(ToolError::Failed(text))
    } else {
        Ok(text)
    }
}
