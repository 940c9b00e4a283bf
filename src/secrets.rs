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
}
