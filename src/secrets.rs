//! Vault references and their resolution.
//!
//! The model never sees a secret value: it handles references `vault:<mount>/<path>#<key>`.
//! References are resolved only inside the runtime, when a change is applied, by a
//! [`SecretResolver`]; every resolved value is registered with the [`Redactor`](crate::redact::Redactor)
//! first, so no tool output can echo it back.

use futures::future::BoxFuture;
use std::fmt;

/// A parsed `vault:<mount>/<path>#<key>` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VaultRef {
    pub mount: String,
    pub path: String,
    pub key: String,
}

impl VaultRef {
    /// Parse one reference. `None` if `s` is not exactly a well-formed reference.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("vault:")?;
        let (loc, key) = rest.split_once('#')?;
        let (mount, path) = loc.split_once('/')?;
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
                && !p.split('/').any(|seg| seg == ".." || seg.is_empty())
        };
        if !ok(mount)
            || !ok(path)
            || key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return None;
        }
        Some(Self {
            mount: mount.into(),
            path: path.into(),
            key: key.into(),
        })
    }
}

impl fmt::Display for VaultRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vault:{}/{}#{}", self.mount, self.path, self.key)
    }
}

/// Every reference in `text`, in order of appearance (duplicates kept once).
pub fn find_refs(text: &str) -> Vec<VaultRef> {
    let mut out: Vec<VaultRef> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("vault:") {
        let cand = &rest[i..];
        let end = cand
            .find(|c: char| c.is_whitespace() || "\"'`,;)]}".contains(c))
            .unwrap_or(cand.len());
        if let Some(r) = VaultRef::parse(&cand[..end]) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        rest = &cand[6..];
    }
    out
}

/// Why a reference could not be resolved. Never contains a secret value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    #[error("no vault is configured to resolve {0}: set VAULT_ADDR and VAULT_TOKEN (eval \"$(bosun sandbox env)\" for the sandbox)")]
    NoVault(String),
    #[error("{reference} does not exist: write it first with hashicorp-vault write or generate")]
    NotFound { reference: String },
    #[error("resolving {reference}: {detail}")]
    Failed { reference: String, detail: String },
}

/// Resolves references to values. Implementations must register each value with the runtime's
/// redactor before returning it.
pub trait SecretResolver: Send + Sync {
    fn resolve<'a>(&'a self, r: &'a VaultRef) -> BoxFuture<'a, Result<String, SecretError>>;
}

/// The resolver used when no vault is configured: every reference is an error that says how to
/// configure one.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoVault;

impl SecretResolver for NoVault {
    fn resolve<'a>(&'a self, r: &'a VaultRef) -> BoxFuture<'a, Result<String, SecretError>> {
        Box::pin(async move { Err(SecretError::NoVault(r.to_string())) })
    }
}

/// Replace every reference in `text` with its resolved value.
pub async fn resolve_in(text: &str, resolver: &dyn SecretResolver) -> Result<String, SecretError> {
    let mut out = text.to_string();
    for r in find_refs(text) {
        let v = resolver.resolve(&r).await?;
        out = out.replace(&r.to_string(), &v);
    }
    Ok(out)
}

/// The fix a misplaced reference needs.
pub const PLACEMENT_FIX: &str = "a vault: reference may only stand in a Secret's `data` or `stringData` (kind: Secret, apiVersion: v1): put the value in a Secret and reference that Secret (env valueFrom.secretKeyRef, envFrom.secretRef, a secret volume, or the chart's existingSecret)";

/// Where in a Kubernetes object a `vault:` reference may be resolved: only the values of a
/// core `Secret`'s `data` and `stringData`. Returns the JSON pointers of every string that holds
/// a reference anywhere else (a ConfigMap, an annotation, a label, an env value, a custom
/// resource, …) — resolving it would put the secret in plain text where anyone who can read
/// that object, and the model in a later session, can see it.
pub fn misplaced_refs(doc: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    fn walk(v: &Value, path: &str, allowed: bool, out: &mut Vec<String>) {
        match v {
            Value::String(s) if !allowed && !find_refs(s).is_empty() => {
                out.push(if path.is_empty() {
                    "/".into()
                } else {
                    path.to_string()
                })
            }
            Value::Object(m) => {
                for (k, x) in m {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    walk(x, &format!("{path}/{key}"), allowed, out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, &format!("{path}/{i}"), allowed, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let is_secret = doc.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && doc.get("kind").and_then(Value::as_str) == Some("Secret");
    match doc {
        Value::Object(m) => {
            for (k, x) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                let data = is_secret && (k == "data" || k == "stringData");
                match (data, x) {
                    // the values of data/stringData (one level), not the keys' structure
                    (true, Value::Object(d)) => {
                        for (dk, dv) in d {
                            let dkey = dk.replace('~', "~0").replace('/', "~1");
                            walk(dv, &format!("/{key}/{dkey}"), dv.is_string(), &mut out);
                        }
                    }
                    _ => walk(x, &format!("/{key}"), false, &mut out),
                }
            }
        }
        other => walk(other, "", false, &mut out),
    }
    out
}

/// `misplaced_refs` as an error naming the object, the fields and the fix.
pub fn check_placement(doc: &serde_json::Value, id: &str) -> Result<(), String> {
    let bad = misplaced_refs(doc);
    if bad.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{id}: a vault: reference at {} would be resolved into a plain field and is refused; {PLACEMENT_FIX}",
        bad.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_finds_references() {
        let r = VaultRef::parse("vault:secret/apps/minio#root-password").expect("parses");
        assert_eq!(
            (r.mount.as_str(), r.path.as_str(), r.key.as_str()),
            ("secret", "apps/minio", "root-password")
        );
        for bad in [
            "vault:secret#k",
            "vault:/x#k",
            "vault:secret/x#",
            "vault:secret/../x#k",
            "secret/x#k",
            "vault:se cret/x#k",
        ] {
            assert!(VaultRef::parse(bad).is_none(), "{bad}");
        }
        let refs = find_refs(
            "password: \"vault:secret/a#p\"\nuser: vault:secret/a#u, again vault:secret/a#p",
        );
        assert_eq!(
            refs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["vault:secret/a#p", "vault:secret/a#u"]
        );
    }

    #[test]
    fn references_resolve_only_into_secret_data() {
        use serde_json::json;
        let ok = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "data": {"pw": "vault:secret/a#pw"}, "stringData": {"dsn": "postgres://u:vault:secret/a#pw@h/db"}});
        assert!(misplaced_refs(&ok).is_empty());
        for bad in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"pw": "vault:secret/a#pw"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": {"x": "vault:secret/a#pw"}}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"x": "vault:secret/a#pw"}}}),
            json!({"apiVersion": "evil.io/v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"pw": "vault:secret/a#pw"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"pw": {"nested": "vault:secret/a#pw"}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "PW", "value": "vault:secret/a#pw"}]}]}}}}),
        ] {
            let e = check_placement(&bad, "x").expect_err("misplaced");
            assert!(e.contains("secretKeyRef"), "{e}");
        }
    }
}
