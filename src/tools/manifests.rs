//! Kubernetes manifests as the helm and git tools handle them: parsing multi-document YAML,
//! resolving `vault:` references in values, masking secrets for display, diffing rendered
//! objects, and server-side dry-run (`dryRun=All` server-side apply) through kube-rs.

use super::ToolError;
use crate::kube_client::{is_namespaced, Cluster};
use crate::secrets::{find_refs, SecretResolver};
use base64::Engine;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::Value;
use std::collections::BTreeMap;

/// Parse multi-document YAML into objects (empty documents and non-objects are dropped; a
/// `List` is flattened).
pub fn parse_docs(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for d in docs {
        match d {
            Value::Object(_) if d.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(items) = d.get("items").and_then(Value::as_array) {
                    out.extend(items.iter().filter(|i| i.is_object()).cloned());
                }
            }
            Value::Object(_) => out.push(d),
            _ => {}
        }
    }
    Ok(out)
}

/// `Kind/name` or `Kind/namespace/name`: the identity of an object in a set.
pub fn object_key(o: &Value) -> String {
    let kind = o.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = o
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    match o.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// A secret value that came from a reference: `(reference, value)`.
pub type Resolved = Vec<(String, String)>;

/// Resolve every `vault:` reference in the string leaves of `v` (inside the runtime; the
/// resolver registers each value with the redactor). Returns the resolved copy and the pairs.
pub async fn resolve_refs(
    v: &Value,
    resolver: &dyn SecretResolver,
) -> Result<(Value, Resolved), ToolError> {
    let mut pairs: Resolved = Vec::new();
    let mut out = v.clone();
    let mut stack: Vec<&mut Value> = vec![&mut out];
    while let Some(x) = stack.pop() {
        match x {
            Value::String(s) => {
                let refs = find_refs(s);
                if refs.is_empty() {
                    continue;
                }
                let mut t = s.clone();
                for r in refs {
                    let val = resolver
                        .resolve(&r)
                        .await
                        .map_err(|e| ToolError::Failed(e.to_string()))?;
                    t = t.replace(&r.to_string(), &val);
                    if !pairs.iter().any(|(k, _)| k == &r.to_string()) {
                        pairs.push((r.to_string(), val));
                    }
                }
                *s = t;
            }
            Value::Array(a) => stack.extend(a.iter_mut()),
            Value::Object(m) => stack.extend(m.values_mut()),
            _ => {}
        }
    }
    Ok((out, pairs))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn unb64(s: &str) -> Option<String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// Put references back where their resolved values (plain, or base64 in a Secret's `data`)
/// appear, so objects can be shown and checked as the author wrote them.
pub fn unresolve(o: &mut Value, resolved: &Resolved) {
    if resolved.is_empty() {
        return;
    }
    let is_secret = o.get("kind").and_then(Value::as_str) == Some("Secret");
    if is_secret {
        if let Some(Value::Object(data)) = o.get_mut("data") {
            for v in data.values_mut() {
                if let Some(plain) = v.as_str().and_then(unb64) {
                    if let Some((r, _)) = resolved.iter().find(|(_, val)| *val == plain) {
                        *v = Value::String(r.clone());
                    }
                }
            }
        }
    }
    let mut stack: Vec<&mut Value> = vec![o];
    while let Some(x) = stack.pop() {
        match x {
            Value::String(s) => {
                for (r, val) in resolved {
                    if val.is_empty() {
                        continue;
                    }
                    let enc = b64(val);
                    if s == val || *s == enc {
                        *s = r.clone();
                        break;
                    }
                    // inside a longer string (a DSN, a config file) only when the value is long
                    // enough not to match by accident
                    if val.chars().count() >= 8 {
                        if s.contains(val.as_str()) {
                            *s = s.replace(val.as_str(), r);
                        }
                        if s.contains(&enc) {
                            *s = s.replace(&enc, r);
                        }
                    }
                }
            }
            Value::Array(a) => stack.extend(a.iter_mut()),
            Value::Object(m) => stack.extend(m.values_mut()),
            _ => {}
        }
    }
}

fn salt() -> &'static str {
    static SALT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SALT.get_or_init(|| {
        use rand::Rng;
        let mut r = rand::rng();
        (0..16)
            .map(|_| format!("{:02x}", r.random::<u8>()))
            .collect()
    })
}

/// A printable stand-in for a secret value: equal values get equal stand-ins within this
/// process (so a diff shows whether a value changed), but the value cannot be recovered.
pub fn hidden(value: &str) -> String {
    let h = super::sha256_hex(format!("{}{value}", salt()).as_bytes());
    format!("<hidden #{}>", &h[..8])
}

/// Mask the values of a Secret's `data` and `stringData` for display (references stay).
pub fn mask_secret_data(o: &mut Value) {
    if o.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(Value::Object(m)) = o.get_mut(field) {
            for v in m.values_mut() {
                let s = v.as_str().unwrap_or_default().to_string();
                if crate::secrets::VaultRef::parse(s.trim()).is_some() {
                    continue;
                }
                let plain = if field == "data" {
                    unb64(&s).unwrap_or(s)
                } else {
                    s
                };
                *v = Value::String(hidden(&plain));
            }
        }
    }
}

/// Objects ready to show: references restored, Secret values masked.
pub fn for_display(objs: &[Value], resolved: &Resolved) -> Vec<Value> {
    objs.iter()
        .map(|o| {
            let mut o = o.clone();
            unresolve(&mut o, resolved);
            mask_secret_data(&mut o);
            o
        })
        .collect()
}

/// Compare what the server rendered (`actual`, references already put back) with a local render
/// of the same chart where references were never resolved (`expected`). A string that differs
/// was computed from something bosun did not show the model — a secret transformed by a
/// template (`upper`, `sha256sum`, a DSN), a `lookup` of live data, a random value — so it is
/// masked, and its JSON pointer recorded (the same place is masked in the live object too).
pub fn mask_divergent(
    actual: &mut Value,
    expected: Option<&Value>,
    ptr: &str,
    out: &mut Vec<String>,
) {
    match actual {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                let p = format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1"));
                // identity fields stay readable
                let keep = matches!(
                    p.as_str(),
                    "/apiVersion" | "/kind" | "/metadata/name" | "/metadata/namespace"
                );
                if keep {
                    continue;
                }
                mask_divergent(v, expected.and_then(|e| e.get(k.as_str())), &p, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                let p = format!("{ptr}/{i}");
                mask_divergent(v, expected.and_then(|e| e.get(i)), &p, out);
            }
        }
        Value::String(s) if expected.and_then(Value::as_str) != Some(s.as_str()) => {
            *s = hidden(s);
            out.push(ptr.to_string());
        }
        _ => {}
    }
}

/// Mask the string leaves at `ptrs` (JSON pointers) in `o`.
pub fn mask_paths(o: &mut Value, ptrs: &[String]) {
    for p in ptrs {
        if let Some(Value::String(s)) = o.pointer_mut(p) {
            *s = hidden(s);
        }
    }
}

/// YAML of one object.
pub fn to_yaml(o: &Value) -> String {
    serde_saphyr::to_string(o).unwrap_or_else(|_| o.to_string())
}

/// A compact diff of two object sets (already masked): a summary line, one line per added /
/// removed / changed object, then unified diffs of the changed objects, at most `max_lines`.
pub fn diff_objects(old: &[Value], new: &[Value], max_lines: usize) -> String {
    let index = |v: &[Value]| -> BTreeMap<String, String> {
        v.iter().map(|o| (object_key(o), to_yaml(o))).collect()
    };
    let (a, b) = (index(old), index(new));
    let mut lines: Vec<String> = Vec::new();
    let (mut added, mut removed, mut changed, mut same) = (0, 0, 0, 0);
    let mut diffs: Vec<String> = Vec::new();
    for (k, y) in &b {
        match a.get(k) {
            None => {
                added += 1;
                lines.push(format!("+ {k}"));
            }
            Some(x) if x == y => same += 1,
            Some(x) => {
                changed += 1;
                lines.push(format!("~ {k}"));
                let d = similar::TextDiff::from_lines(x.as_str(), y.as_str());
                let text = d
                    .unified_diff()
                    .context_radius(2)
                    .header(&format!("live {k}"), &format!("new {k}"))
                    .to_string();
                diffs.push(text);
            }
        }
    }
    for k in a.keys() {
        if !b.contains_key(k) {
            removed += 1;
            lines.push(format!("- {k}"));
        }
    }
    let mut out =
        format!("objects: {added} added, {changed} changed, {removed} removed, {same} unchanged\n");
    let all: Vec<String> = lines
        .into_iter()
        .chain(diffs.iter().flat_map(|d| d.lines().map(str::to_string)))
        .collect();
    let n = all.len();
    for l in all.into_iter().take(max_lines) {
        out.push_str(&l);
        out.push('\n');
    }
    if n > max_lines {
        out.push_str(&format!("… {} more diff lines omitted\n", n - max_lines));
    }
    out
}

/// Which objects of two sets differ, and at which fields (JSON pointers), without any value:
/// for diffs where bosun cannot tell which values came from secrets (e.g. two stored revisions).
pub fn diff_fields(old: &[Value], new: &[Value], max_lines: usize) -> String {
    fn leaves(v: &Value, ptr: String, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, x)| {
                leaves(
                    x,
                    format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                )
            }),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| leaves(x, format!("{ptr}/{i}"), out)),
            other => {
                out.insert(ptr, other.to_string());
            }
        }
    }
    let index = |v: &[Value]| -> BTreeMap<String, BTreeMap<String, String>> {
        v.iter()
            .map(|o| {
                let mut m = BTreeMap::new();
                leaves(o, String::new(), &mut m);
                (object_key(o), m)
            })
            .collect()
    };
    let (a, b) = (index(old), index(new));
    let mut lines = Vec::new();
    for (k, nb) in &b {
        match a.get(k) {
            None => lines.push(format!("+ {k}")),
            Some(na) if na == nb => {}
            Some(na) => {
                let mut fields: Vec<&str> = nb
                    .iter()
                    .filter(|(p, v)| na.get(*p) != Some(v))
                    .map(|(p, _)| p.as_str())
                    .chain(
                        na.keys()
                            .filter(|p| !nb.contains_key(*p))
                            .map(String::as_str),
                    )
                    .collect();
                fields.sort();
                fields.dedup();
                let n = fields.len();
                fields.truncate(12);
                lines.push(format!(
                    "~ {k}: {}{}",
                    fields.join(", "),
                    if n > 12 {
                        format!(" … {} more", n - 12)
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }
    for k in a.keys().filter(|k| !b.contains_key(*k)) {
        lines.push(format!("- {k}"));
    }
    let n = lines.len();
    let mut out = format!("{n} objects differ (fields shown, values not):\n");
    for l in lines.iter().take(max_lines) {
        out.push_str(l);
        out.push('\n');
    }
    if n > max_lines {
        out.push_str(&format!("… {} more\n", n - max_lines));
    }
    out
}

/// Result of a server-side dry-run of a set of objects.
#[derive(Debug, Default)]
pub struct DryRunReport {
    pub ok: Vec<String>,
    pub errors: Vec<String>,
    /// Objects that could not be checked, with why (e.g. their namespace is created by the same change).
    pub skipped: Vec<String>,
}

/// Server-side apply with `dryRun=All` of every object (namespaced objects without a namespace
/// go to `default_ns`). Nothing is persisted.
pub async fn server_dry_run(cluster: &Cluster, objs: &[Value], default_ns: &str) -> DryRunReport {
    let mut rep = DryRunReport::default();
    let new_namespaces: Vec<&str> = objs
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Namespace"))
        .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    let new_crds: Vec<String> = objs
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition"))
        .filter_map(|o| {
            let g = o.pointer("/spec/group").and_then(Value::as_str)?;
            let k = o.pointer("/spec/names/kind").and_then(Value::as_str)?;
            Some(format!("{k}.{g}"))
        })
        .collect();
    for o in objs {
        let key = object_key(o);
        let api_version = o.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some(name) = o.pointer("/metadata/name").and_then(Value::as_str) else {
            rep.errors.push(format!("{key}: metadata.name is missing"));
            continue;
        };
        if api_version.is_empty() || kind.is_empty() {
            rep.errors
                .push(format!("{key}: apiVersion and kind are required"));
            continue;
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let lookup = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let found = match cluster.resolve(&lookup).await {
            Ok(f) => f,
            Err(e) => {
                rep.errors.push(format!("{key}: {e}"));
                continue;
            }
        };
        let Some((ar0, caps)) = found else {
            if new_crds.contains(&lookup) {
                rep.skipped.push(format!(
                    "{key}: its CustomResourceDefinition is part of this change"
                ));
            } else {
                rep.errors.push(format!(
                    "{key}: the server does not serve {api_version} {kind} (missing CRD or wrong apiVersion)"
                ));
            }
            continue;
        };
        let ar = ApiResource {
            group,
            version,
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            plural: ar0.plural.clone(),
        };
        let namespaced = is_namespaced(&caps);
        let ns = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(default_ns)
            .to_string();
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(cluster.client.clone(), &ns, &ar)
        } else {
            Api::all_with(cluster.client.clone(), &ar)
        };
        let mut obj = o.clone();
        if namespaced {
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("namespace".into(), Value::String(ns.clone()));
            }
        }
        let pp = PatchParams::apply("bosun").force().dry_run();
        match api.patch(name, &pp, &Patch::Apply(&obj)).await {
            Ok(_) => rep.ok.push(key),
            Err(kube::Error::Api(s))
                if s.code == 404 && namespaced && new_namespaces.contains(&ns.as_str()) =>
            {
                rep.skipped
                    .push(format!("{key}: namespace {ns} is created by this change"));
            }
            Err(kube::Error::Api(s)) => rep
                .errors
                .push(format!("{key}: rejected by the API server: {}", s.message)),
            Err(e) => rep.errors.push(format!("{key}: {e}")),
        }
    }
    rep
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_come_back_and_secrets_are_masked() {
        let resolved = vec![("vault:secret/a#pw".to_string(), "s3cret-value".to_string())];
        let o = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"pw": b64("s3cret-value"), "other": b64("literal-thing")},
            "stringData": {"dsn": "postgres://u:s3cret-value@db"}});
        let shown = for_display(&[o], &resolved);
        let text = to_yaml(&shown[0]);
        assert!(!text.contains("s3cret-value") && !text.contains(&b64("s3cret-value")));
        assert!(!text.contains("literal-thing") && !text.contains(&b64("literal-thing")));
        assert_eq!(shown[0]["data"]["pw"], "vault:secret/a#pw");
        assert!(shown[0]["data"]["other"]
            .as_str()
            .is_some_and(|s| s.starts_with("<hidden #")));
        assert_eq!(hidden("x"), hidden("x"));
        // a short value is put back only where it is the whole string
        let short = vec![("vault:secret/a#user".to_string(), "app".to_string())];
        let mut o = json!({"kind": "ConfigMap", "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "app"}}, "data": {"u": "app", "k": "apple"}});
        unresolve(&mut o, &short);
        assert_eq!(o["data"]["u"], "vault:secret/a#user");
        assert_eq!(o["data"]["k"], "apple");
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/name"],
            "vault:secret/a#user"
        );
        assert_ne!(hidden("x"), hidden("y"));
    }

    #[test]
    fn values_computed_from_unseen_data_are_masked() {
        let expected = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"plain": "x", "upper": "VAULT:SECRET/A#PW", "ref": "vault:secret/a#pw"}});
        let mut actual = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"plain": "x", "upper": "S3CRET-VALUE", "ref": "vault:secret/a#pw", "extra": "looked-up"}});
        let mut masked = Vec::new();
        mask_divergent(&mut actual, Some(&expected), "", &mut masked);
        assert_eq!(actual["data"]["plain"], "x");
        assert_eq!(actual["data"]["ref"], "vault:secret/a#pw");
        assert!(actual["data"]["upper"]
            .as_str()
            .is_some_and(|s| s.starts_with("<hidden #")));
        assert!(actual["data"]["extra"]
            .as_str()
            .is_some_and(|s| s.starts_with("<hidden #")));
        assert_eq!(
            masked,
            vec!["/data/extra".to_string(), "/data/upper".to_string()]
        );
        let mut live = json!({"data": {"upper": "OLD-S3CRET"}});
        mask_paths(&mut live, &masked);
        assert!(live["data"]["upper"]
            .as_str()
            .is_some_and(|s| s.starts_with("<hidden #")));
    }

    #[test]
    fn field_diffs_never_show_values() {
        let a =
            parse_docs("kind: ConfigMap\nmetadata: {name: a}\ndata: {k: old-secret, same: x}\n")
                .expect("yaml");
        let b = parse_docs("kind: ConfigMap\nmetadata: {name: a}\ndata: {k: new-secret, same: x}\n---\nkind: Service\nmetadata: {name: s}\n").expect("yaml");
        let d = diff_fields(&a, &b, 50);
        assert!(
            d.contains("~ ConfigMap/a: /data/k") && d.contains("+ Service/s"),
            "{d}"
        );
        assert!(!d.contains("secret"), "{d}");
    }

    #[test]
    fn diff_names_added_changed_removed() {
        let a = parse_docs("kind: ConfigMap\nmetadata: {name: a}\ndata: {k: v1}\n---\nkind: ConfigMap\nmetadata: {name: gone}\n").expect("yaml");
        let b = parse_docs("---\n# Source: x\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v2}\n---\nkind: Service\nmetadata: {name: new}\n---\n").expect("yaml");
        let d = diff_objects(&a, &b, 100);
        assert!(
            d.starts_with("objects: 1 added, 1 changed, 1 removed, 0 unchanged"),
            "{d}"
        );
        assert!(d.contains("+ Service/new") && d.contains("- ConfigMap/gone"));
        assert!(d.contains("-  k: v1") || d.contains("-  k: v1\n") || d.contains("k: v1"));
        assert!(d.contains("+") && d.contains("k: v2"), "{d}");
    }
}
