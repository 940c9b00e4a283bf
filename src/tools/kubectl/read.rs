//! kubectl read operations: get, describe, logs, events, rollout_status, auth_can_i,
//! api_resources, wait.

use super::{Args, Kubectl};
use crate::compact;
use crate::kube_client::{is_namespaced, Cluster};
use crate::tools::k8s::{
    self, ar, condition, kube_err, list_all, render_events, render_listing, resolve_gvk,
    resolve_kind, ListStyle,
};
use crate::tools::{table, ToolCtx, ToolError};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, LogParams, PostParams};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub(super) async fn api_resources(cluster: &Cluster) -> Result<String, ToolError> {
    // a listing of kinds is read fresh (as `kubectl api-resources` does), never from the cache
    let all = cluster.refresh().await.map_err(k8s::failed)?;
    let mut rows: Vec<Vec<String>> = all
        .iter()
        .map(|(ar, caps)| {
            vec![
                ar.plural.clone(),
                ar.api_version.clone(),
                is_namespaced(caps).to_string(),
                ar.kind.clone(),
            ]
        })
        .collect();
    rows.sort();
    Ok(table::render(
        &["NAME", "APIVERSION", "NAMESPACED", "KIND"],
        &rows,
        usize::MAX,
    ))
}

pub(super) async fn get(
    k: &Kubectl,
    cluster: &Cluster,
    a: &Args,
    ns: &str,
    ctx: &ToolCtx,
) -> Result<String, ToolError> {
    let kind = a.kind.clone().unwrap_or_default();
    let (ar, namespaced) = resolve_kind(cluster, &kind).await?;
    let all_ns = a.all_namespaces.unwrap_or(false);
    let api: Api<DynamicObject> = if !namespaced || all_ns {
        Api::all_with(cluster.client.clone(), &ar)
    } else {
        Api::namespaced_with(cluster.client.clone(), ns, &ar)
    };
    let show_ns = namespaced && all_ns;
    let style = ListStyle {
        show_namespace: show_ns,
        wide: a.wide.unwrap_or(false),
        max_tokens: k.max_tokens,
    };
    let is_secret = ar.kind == "Secret";
    if let Some(name) = &a.name {
        let mut obj = api
            .get(name)
            .await
            .map_err(|e| kube_err(e, &cluster.context))?;
        if is_secret {
            register_secret(&mut obj, ctx);
        }
        let title = format!("{} {name} (context {})", ar.kind, cluster.context);
        return Ok(render_listing(&ar.kind, &title, &[obj], style));
    }
    let mut lp = ListParams::default();
    if let Some(l) = &a.label_selector {
        lp = lp.labels(l);
    }
    if let Some(f) = &a.field_selector {
        lp = lp.fields(f);
    }
    let mut items = list_all(&api, lp, 50_000, &cluster.context).await?;
    if is_secret {
        for o in &mut items {
            register_secret(o, ctx);
        }
    }
    let where_ = if !namespaced {
        "cluster-wide".to_string()
    } else if all_ns {
        "in all namespaces".to_string()
    } else {
        format!("in namespace {ns}")
    };
    if items.is_empty() {
        return Ok(format!(
            "No {} found {where_} (context {}).",
            ar.plural, cluster.context
        ));
    }
    let title = format!(
        "{} {} {where_} (context {})",
        items.len(),
        ar.plural,
        cluster.context
    );
    Ok(render_listing(&ar.kind, &title, &items, style))
}

/// Register a Secret's values with the redactor (the listing shows keys only).
fn register_secret(o: &mut DynamicObject, ctx: &ToolCtx) {
    let mut v =
        json!({"kind": "Secret", "data": o.data.get("data").cloned().unwrap_or(Value::Null)});
    k8s::mask_secret(&mut v, &ctx.redactor);
}

/// The owner chain: controller owner references followed upwards (at most 5 levels).
async fn owner_chain(cluster: &Cluster, ns: &str, obj: &DynamicObject) -> Vec<String> {
    let mut chain = Vec::new();
    let mut cur = obj.metadata.owner_references.clone().unwrap_or_default();
    for _ in 0..5 {
        let Some(o) = cur
            .iter()
            .find(|r| r.controller == Some(true))
            .or(cur.first())
            .cloned()
        else {
            break;
        };
        chain.push(format!("{}/{}", o.kind, o.name));
        let Ok((ar, namespaced)) = resolve_gvk(cluster, &o.api_version, &o.kind).await else {
            break;
        };
        let api = k8s::api(cluster, &ar, namespaced, ns);
        match api.get_opt(&o.name).await {
            Ok(Some(next)) => cur = next.metadata.owner_references.unwrap_or_default(),
            _ => {
                chain.push("(owner not found)".into());
                break;
            }
        }
    }
    chain
}

pub(super) async fn describe(
    k: &Kubectl,
    cluster: &Cluster,
    a: &Args,
    ns: &str,
    ctx: &ToolCtx,
) -> Result<String, ToolError> {
    let kind = a.kind.clone().unwrap_or_default();
    let name = a.name.clone().unwrap_or_default();
    let (ar, namespaced) = resolve_kind(cluster, &kind).await?;
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let obj = api
        .get(&name)
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let (status, detail) = k8s::status_of(&ar.kind, &obj.data);
    let owners = owner_chain(cluster, ns, &obj).await;
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let mut v = serde_json::to_value(&obj).map_err(k8s::failed)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), json!(ar.api_version));
        m.insert("kind".into(), json!(ar.kind));
    }
    k8s::mask_secret(&mut v, &ctx.redactor);
    compact::strip_noise(&mut v);
    let where_ = if namespaced {
        format!("{ns}/{name}")
    } else {
        name.clone()
    };
    let mut out = format!(
        "{} {where_} (context {}): {status}{}\n",
        ar.kind,
        cluster.context,
        if detail.is_empty() {
            String::new()
        } else {
            format!(", {detail}")
        }
    );
    if !owners.is_empty() {
        out.push_str(&format!("owners: {}\n", owners.join(" → ")));
    }
    let budget = k.max_tokens;
    out.push_str(&compact::fit_budget(&compact::to_yaml(&v), budget * 3 / 5));
    let evs = k8s::events(
        cluster,
        if namespaced { Some(ns) } else { None },
        Some(&format!("involvedObject.uid={uid}")),
    )
    .await
    .unwrap_or_default();
    if evs.is_empty() {
        out.push_str("events: none\n");
    } else {
        out.push_str(&render_events(
            &format!("events of {}/{name} ({})", ar.kind, evs.len()),
            evs,
            false,
            budget / 3,
        ));
    }
    Ok(out)
}

pub(super) async fn logs(
    k: &Kubectl,
    cluster: &Cluster,
    a: &Args,
    ns: &str,
) -> Result<String, ToolError> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), ns);
    let names: Vec<String> = match (&a.name, &a.label_selector) {
        (Some(n), _) => vec![n.clone()],
        (None, Some(sel)) => {
            let list = pods
                .list(&ListParams::default().labels(sel).limit(50))
                .await
                .map_err(|e| kube_err(e, &cluster.context))?;
            let mut v: Vec<String> = list
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            if v.is_empty() {
                return Ok(format!("No pods match {sel} in namespace {ns}."));
            }
            v.sort();
            v.truncate(5);
            v
        }
        (None, None) => vec![],
    };
    let tail = a.tail_lines.unwrap_or(100).clamp(1, 5_000) as usize;
    // fetch more than shown, so earlier error lines can be kept
    let fetch = (tail * 10).clamp(1_000, 20_000) as i64;
    let per_pod = k.max_tokens / names.len().max(1);
    let mut out = String::new();
    for name in &names {
        let pod = pods
            .get(name)
            .await
            .map_err(|e| kube_err(e, &cluster.context))?;
        if pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_none()
        {
            return Err(ToolError::Failed(format!(
                "pod {ns}/{name} has no logs: it is not scheduled to a node yet; check kubectl describe and events for why"
            )));
        }
        let containers: Vec<String> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        let container = match &a.container {
            Some(c) => c.clone(),
            None => containers.first().cloned().unwrap_or_default(),
        };
        let lp = LogParams {
            container: Some(container.clone()),
            tail_lines: Some(fetch),
            since_seconds: a.since_seconds,
            previous: a.previous.unwrap_or(false),
            limit_bytes: Some(8 * 1024 * 1024),
            ..Default::default()
        };
        let text = pods.logs(name, &lp).await.map_err(|e| match e {
            kube::Error::Api(s) if s.message.contains("does not have a host assigned") => {
                ToolError::Failed(format!(
                    "pod {ns}/{name} has no logs: it is not scheduled to a node yet (Pending); check kubectl describe and events for why"
                ))
            }
            other => kube_err(other, &cluster.context),
        })?;
        let others = if containers.len() > 1 && a.container.is_none() {
            format!(
                " (containers: {}; pass container for another)",
                containers.join(", ")
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "== logs of {ns}/{name} container {container}{}{others} ==\n",
            if a.previous == Some(true) {
                " (previous instance)"
            } else {
                ""
            }
        ));
        if text.trim().is_empty() {
            out.push_str("(no log lines)\n");
        } else {
            out.push_str(&compact::tail_logs(&text, tail, per_pod));
        }
    }
    Ok(out)
}

pub(super) async fn events(
    k: &Kubectl,
    cluster: &Cluster,
    a: &Args,
    ns: &str,
) -> Result<String, ToolError> {
    let all_ns = a.all_namespaces == Some(true);
    let mut fields: Vec<String> = Vec::new();
    if let Some(n) = &a.name {
        fields.push(format!("involvedObject.name={n}"));
    }
    if let Some(kind) = &a.kind {
        if a.name.is_some() {
            let (ar, _) = resolve_kind(cluster, kind).await?;
            fields.push(format!("involvedObject.kind={}", ar.kind));
        }
    }
    if a.warnings_only == Some(true) {
        fields.push("type=Warning".into());
    }
    if let Some(f) = &a.field_selector {
        fields.push(f.clone());
    }
    let sel = fields.join(",");
    let evs = k8s::events(
        cluster,
        if all_ns { None } else { Some(ns) },
        if sel.is_empty() { None } else { Some(&sel) },
    )
    .await?;
    let where_ = if all_ns {
        "in all namespaces".to_string()
    } else {
        format!("in namespace {ns}")
    };
    if evs.is_empty() {
        return Ok(format!(
            "No {}events {where_}{} (context {}).",
            if a.warnings_only == Some(true) {
                "warning "
            } else {
                ""
            },
            a.name
                .as_ref()
                .map(|n| format!(" for {n}"))
                .unwrap_or_default(),
            cluster.context
        ));
    }
    let title = format!(
        "{} events {where_} (context {})",
        evs.len(),
        cluster.context
    );
    Ok(render_events(&title, evs, all_ns, k.max_tokens))
}

pub(super) async fn rollout_status(
    cluster: &Cluster,
    a: &Args,
    ns: &str,
    deadline: Instant,
) -> Result<String, ToolError> {
    let kind = a.kind.clone().unwrap_or_default();
    let name = a.name.clone().unwrap_or_default();
    let (ar, namespaced) = resolve_kind(cluster, &kind).await?;
    if !matches!(ar.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet") {
        return Err(ToolError::InvalidArguments(format!(
            "rollout_status works on Deployment, StatefulSet and DaemonSet, not {}",
            ar.kind
        )));
    }
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let started = Instant::now();
    loop {
        let o = api
            .get(&name)
            .await
            .map_err(|e| kube_err(e, &cluster.context))?;
        let (done, stuck, state) = k8s::rollout_state(&ar.kind, &o.data);
        if done {
            return Ok(format!(
                "{} {ns}/{name} successfully rolled out: {state} (waited {} s)",
                ar.kind,
                started.elapsed().as_secs()
            ));
        }
        if stuck {
            return Err(ToolError::Failed(format!(
                "{} {ns}/{name} rollout failed: {state}",
                ar.kind
            )));
        }
        if Instant::now() + Duration::from_secs(1) > deadline {
            return Err(ToolError::Failed(format!(
                "{} {ns}/{name} rollout not complete after {} s: {state}. Check pods (kubectl get pods -l …) and warning events; pass a larger timeout_seconds to wait longer",
                ar.kind,
                started.elapsed().as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub(super) async fn auth_can_i(cluster: &Cluster, a: &Args, ns: &str) -> Result<String, ToolError> {
    let verb = a.verb.clone().unwrap_or_default();
    let raw = a.kind.clone().unwrap_or_default();
    let (res, sub) = match raw.split_once('/') {
        Some((r, s)) => (r.to_string(), Some(s.to_string())),
        None => (raw.clone(), None),
    };
    let (group, plural, namespaced) = match resolve_kind(cluster, &res).await {
        Ok((ar, namespaced)) => (ar.group, ar.plural, namespaced),
        Err(_) => (String::new(), res.clone(), true),
    };
    let all_ns = a.all_namespaces == Some(true);
    let mut attrs = json!({"verb": verb, "group": group, "resource": plural});
    if namespaced && !all_ns {
        attrs["namespace"] = json!(ns);
    }
    if let Some(s) = &sub {
        attrs["subresource"] = json!(s);
    }
    if let Some(n) = &a.name {
        attrs["name"] = json!(n);
    }
    let (review_ar, body, who) = match &a.as_service_account {
        Some(sa) => {
            let (sns, sname) = sa.split_once('/').ok_or_else(|| {
                ToolError::InvalidArguments("as_service_account must be `namespace/name`".into())
            })?;
            let user = format!("system:serviceaccount:{sns}:{sname}");
            (
                ar(
                    "authorization.k8s.io",
                    "v1",
                    "SubjectAccessReview",
                    "subjectaccessreviews",
                ),
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
                       "spec": {"user": user, "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{sns}"), "system:authenticated"],
                                "resourceAttributes": attrs}}),
                format!("ServiceAccount {sns}/{sname}"),
            )
        }
        None => (
            ar(
                "authorization.k8s.io",
                "v1",
                "SelfSubjectAccessReview",
                "selfsubjectaccessreviews",
            ),
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
                   "spec": {"resourceAttributes": attrs}}),
            format!("the identity of context {}", cluster.context),
        ),
    };
    let api: Api<DynamicObject> = Api::all_with(cluster.client.clone(), &review_ar);
    let obj: DynamicObject = serde_json::from_value(body).map_err(k8s::failed)?;
    let res_obj = api
        .create(&PostParams::default(), &obj)
        .await
        .map_err(|e| kube_err(e, &cluster.context))?;
    let st = res_obj.data.get("status").cloned().unwrap_or(Value::Null);
    let allowed = st.get("allowed") == Some(&Value::Bool(true));
    let reason = st.get("reason").and_then(Value::as_str).unwrap_or("");
    let scope = if namespaced && !all_ns {
        format!(" in namespace {ns}")
    } else {
        String::new()
    };
    Ok(format!(
        "{}: {who} {} {verb} {raw}{}{scope}{}",
        if allowed { "yes" } else { "no" },
        if allowed { "may" } else { "may not" },
        a.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default(),
        if reason.is_empty() {
            String::new()
        } else {
            format!(" ({reason})")
        }
    ))
}

/// What `wait_for` asks.
enum WaitFor {
    Delete,
    Condition { kind: String, status: String },
    Path { path: String, value: String },
}

fn parse_wait_for(s: &str) -> Result<WaitFor, ToolError> {
    let s = s.trim();
    if s == "delete" {
        return Ok(WaitFor::Delete);
    }
    if let Some(c) = s.strip_prefix("condition=") {
        let (t, st) = c.split_once('=').unwrap_or((c, "True"));
        return Ok(WaitFor::Condition {
            kind: t.to_string(),
            status: st.to_string(),
        });
    }
    if let Some(p) = s.strip_prefix("jsonpath=") {
        if let Some(i) = p.find("}=") {
            return Ok(WaitFor::Path {
                path: p[..=i].to_string(),
                value: p[i + 2..].to_string(),
            });
        }
    }
    Err(ToolError::InvalidArguments(format!(
        "wait_for `{s}` is not understood; use `condition=Available`, `condition=Ready=False`, `delete` or `jsonpath={{.status.phase}}=Running`"
    )))
}

fn met(w: &WaitFor, o: &DynamicObject) -> (bool, String) {
    match w {
        WaitFor::Delete => (false, "still exists".into()),
        WaitFor::Condition { kind, status } => match condition(&o.data, kind) {
            Some(c) => {
                let have = c.get("status").and_then(Value::as_str).unwrap_or("Unknown");
                let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
                let msg = c.get("message").and_then(Value::as_str).unwrap_or("");
                (
                    have.eq_ignore_ascii_case(status),
                    format!("{kind}={have} {reason} {msg}").trim().to_string(),
                )
            }
            None => (false, format!("no {kind} condition yet")),
        },
        WaitFor::Path { path, value } => match k8s::json_path(&o.data, path) {
            Some(v) => {
                let have = k8s::short(v);
                (have == *value, format!("{path}={have}"))
            }
            None => (false, format!("{path} is not set")),
        },
    }
}

pub(super) async fn wait(
    cluster: &Cluster,
    a: &Args,
    ns: &str,
    deadline: Instant,
) -> Result<String, ToolError> {
    let w = parse_wait_for(a.wait_for.as_deref().unwrap_or(""))?;
    let kind = a.kind.clone().unwrap_or_default();
    let (ar, namespaced) = resolve_kind(cluster, &kind).await?;
    let api = k8s::api(cluster, &ar, namespaced, ns);
    let started = Instant::now();
    loop {
        let objs: Vec<DynamicObject> = match (&a.name, &a.label_selector) {
            (Some(n), _) => match api
                .get_opt(n)
                .await
                .map_err(|e| kube_err(e, &cluster.context))?
            {
                Some(o) => vec![o],
                None if matches!(w, WaitFor::Delete) => vec![],
                None => {
                    return Err(ToolError::Failed(format!(
                        "{} {n} does not exist in namespace {ns}",
                        ar.kind
                    )))
                }
            },
            (None, Some(sel)) => {
                list_all(
                    &api,
                    ListParams::default().labels(sel),
                    1_000,
                    &cluster.context,
                )
                .await?
            }
            (None, None) => vec![],
        };
        let mut pending: Vec<String> = objs
            .iter()
            .filter_map(|o| {
                let (ok, why) = met(&w, o);
                (!ok).then(|| format!("{}: {why}", o.metadata.name.clone().unwrap_or_default()))
            })
            .collect();
        if objs.is_empty() && !matches!(w, WaitFor::Delete) {
            pending.push("no object matches the selector yet".into());
        }
        let what = a.wait_for.as_deref().unwrap_or("");
        if pending.is_empty() {
            return Ok(format!(
                "{what} met for {} {} in {ns} after {} s",
                if matches!(w, WaitFor::Delete) {
                    "all".to_string()
                } else {
                    objs.len().to_string()
                },
                ar.plural,
                started.elapsed().as_secs()
            ));
        }
        if Instant::now() + Duration::from_millis(500) > deadline {
            return Err(ToolError::Failed(format!(
                "timed out after {} s waiting for {what} on {} {} in {ns}; not met: {}",
                started.elapsed().as_secs(),
                pending.len(),
                ar.plural,
                compact::clip_line(&pending.join("; "), 1_500)
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
