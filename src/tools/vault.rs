//! The `hashicorp-vault` tool and the runtime's vault reference resolver, over the Vault HTTP API
//! (HashiCorp Vault and OpenBao; `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_NAMESPACE`, `VAULT_CACERT`).
//!
//! The model never sees a secret value: `read` returns key names as references
//! `vault:<mount>/<path>#<key>`; `generate` stores a random value it never sees; `write` takes
//! literal values for configuration keys (a value of the form `vault:…` copies another secret
//! inside the runtime). References are resolved only by [`VaultResolver`], inside the runtime,
//! when a change is applied — and every value it returns is registered with the redactor first.
//!
//! `write`, `generate` and `delete` take `dry_run`: the dry-run checks that the mount is KV v2,
//! that the token has the capabilities the change needs (`sys/capabilities-self`), and says what
//! would change — by key name, never by value.

use super::{Change, Invocation, Tool, ToolCtx, ToolError};
use crate::effect::EffectClass;
use crate::guard::Admitted;
use crate::redact::Redactor;
use crate::secrets::{SecretError, SecretResolver, VaultRef};
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "hashicorp-vault";

const OPERATIONS: &[(&str, EffectClass)] = &[
    ("list", EffectClass::ReadOnly),
    ("metadata", EffectClass::ReadOnly),
    ("read", EffectClass::ReadOnly),
    ("write", EffectClass::Mutating),
    ("generate", EffectClass::Mutating),
    ("delete", EffectClass::Destructive),
];

/// Where the vault is and how to authenticate. The token is never printed.
#[derive(Clone)]
pub struct VaultConfig {
    pub addr: String,
    pub token: String,
    pub namespace: Option<String>,
    /// PEM file of a CA to trust (VAULT_CACERT).
    pub ca_cert: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConfig")
            .field("addr", &self.addr)
            .field("token", &"[REDACTED]")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl VaultConfig {
    /// From `VAULT_ADDR` and `VAULT_TOKEN` (both required), `VAULT_NAMESPACE`, `VAULT_CACERT`.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Some(Self {
            addr: var("VAULT_ADDR")?.trim_end_matches('/').to_string(),
            token: var("VAULT_TOKEN")?,
            namespace: var("VAULT_NAMESPACE"),
            ca_cert: var("VAULT_CACERT").map(Into::into),
        })
    }
}

/// A failed vault request. Never contains a secret value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VaultError {
    #[error("vault is not configured: set VAULT_ADDR and VAULT_TOKEN (eval \"$(bosun sandbox env)\" for the sandbox)")]
    NotConfigured,
    #[error("permission denied by vault for {0}: the token lacks the capability; ask for a policy granting it")]
    Forbidden(String),
    #[error("vault request {what} failed: {detail}")]
    Failed { what: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

impl From<VaultError> for ToolError {
    fn from(e: VaultError) -> Self {
        ToolError::Failed(e.to_string())
    }
}

/// KV v2 data at one path.
#[derive(Debug, Clone)]
pub struct KvData {
    pub data: Map<String, Value>,
    pub version: u64,
}

/// A small Vault/OpenBao HTTP client for KV v2.
#[derive(Clone)]
pub struct VaultClient {
    cfg: Option<VaultConfig>,
    http: reqwest::Client,
}

fn valid_segment_path(p: &str) -> bool {
    !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !p.split('/').any(|s| s.is_empty() || s == "." || s == "..")
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 128
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl VaultClient {
    pub fn new(cfg: Option<VaultConfig>) -> Self {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca) = cfg.as_ref().and_then(|c| c.ca_cert.as_ref()) {
            match std::fs::read(ca)
                .ok()
                .and_then(|pem| reqwest::Certificate::from_pem(&pem).ok())
            {
                Some(cert) => b = b.add_root_certificate(cert),
                None => {
                    tracing::warn!(path = %ca.display(), "VAULT_CACERT is not a readable PEM certificate; ignored")
                }
            }
        }
        let http = b.build().unwrap_or_else(|_| reqwest::Client::new());
        Self { cfg, http }
    }

    pub fn from_env() -> Self {
        Self::new(VaultConfig::from_env())
    }

    /// The address, or `unset`.
    pub fn addr(&self) -> &str {
        self.cfg.as_ref().map_or("unset", |c| c.addr.as_str())
    }

    fn cfg(&self) -> Result<&VaultConfig, VaultError> {
        self.cfg.as_ref().ok_or(VaultError::NotConfigured)
    }

    async fn request(
        &self,
        method: reqwest::Method,
        api_path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), VaultError> {
        let cfg = self.cfg()?;
        let url = format!("{}/v1/{api_path}", cfg.addr);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("X-Vault-Token", &cfg.token)
            .header("X-Vault-Request", "true");
        if let Some(ns) = &cfg.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let what = format!("{method} {api_path}");
        let resp = req.send().await.map_err(|e| VaultError::Failed {
            what: what.clone(),
            detail: format!("cannot reach {}: {e}", cfg.addr),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Ok((status, v))
    }

    fn fail(what: &str, status: u16, v: &Value) -> VaultError {
        if status == 403 {
            return VaultError::Forbidden(what.to_string());
        }
        // vault error bodies are {"errors": [..]}: messages, never data
        let errs: Vec<String> = v
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.chars().take(300).collect())
                    .collect()
            })
            .unwrap_or_default();
        VaultError::Failed {
            what: what.to_string(),
            detail: format!("HTTP {status}: {}", errs.join("; ")),
        }
    }

    /// KV v2 data at `mount/path`; `None` if absent or its latest version is deleted.
    pub async fn kv_read(&self, mount: &str, path: &str) -> Result<Option<KvData>, VaultError> {
        let api = format!("{mount}/data/{path}");
        let (st, v) = self.request(reqwest::Method::GET, &api, None).await?;
        match st {
            200 => {
                let data = v
                    .pointer("/data/data")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let version = v
                    .pointer("/data/metadata/version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                Ok(Some(KvData { data, version }))
            }
            404 => Ok(None),
            _ => Err(Self::fail(&format!("read {mount}/{path}"), st, &v)),
        }
    }

    /// Write the full data of `mount/path`, with check-and-set on `cas` (0 = must not exist).
    pub async fn kv_write(
        &self,
        mount: &str,
        path: &str,
        data: &Map<String, Value>,
        cas: u64,
    ) -> Result<u64, VaultError> {
        let api = format!("{mount}/data/{path}");
        let body = json!({"options": {"cas": cas}, "data": data});
        let (st, v) = self
            .request(reqwest::Method::POST, &api, Some(body))
            .await?;
        if (200..300).contains(&st) {
            Ok(v.pointer("/data/version")
                .and_then(Value::as_u64)
                .unwrap_or(0))
        } else if st == 400 && v.to_string().contains("check-and-set") {
            Err(VaultError::Failed {
                what: format!("write {mount}/{path}"),
                detail: "the secret changed while bosun was writing it (check-and-set failed); run the call again".into(),
            })
        } else {
            Err(Self::fail(&format!("write {mount}/{path}"), st, &v))
        }
    }

    /// Keys under `mount/path` (folders end with `/`).
    pub async fn kv_list(&self, mount: &str, path: &str) -> Result<Vec<String>, VaultError> {
        let api = if path.is_empty() {
            format!("{mount}/metadata")
        } else {
            format!("{mount}/metadata/{path}")
        };
        let method = reqwest::Method::from_bytes(b"LIST").unwrap_or(reqwest::Method::GET);
        let (st, v) = self.request(method, &api, None).await?;
        match st {
            200 => Ok(v
                .pointer("/data/keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()),
            404 => Ok(Vec::new()),
            _ => Err(Self::fail(&format!("list {mount}/{path}"), st, &v)),
        }
    }

    /// KV v2 metadata of `mount/path` (no values); `None` if absent.
    pub async fn kv_metadata(&self, mount: &str, path: &str) -> Result<Option<Value>, VaultError> {
        let api = format!("{mount}/metadata/{path}");
        let (st, v) = self.request(reqwest::Method::GET, &api, None).await?;
        match st {
            200 => Ok(v.get("data").cloned()),
            404 => Ok(None),
            _ => Err(Self::fail(&format!("metadata {mount}/{path}"), st, &v)),
        }
    }

    /// Soft-delete the latest version (`all` = false) or delete every version and the metadata.
    pub async fn kv_delete(&self, mount: &str, path: &str, all: bool) -> Result<(), VaultError> {
        let api = if all {
            format!("{mount}/metadata/{path}")
        } else {
            format!("{mount}/data/{path}")
        };
        let (st, v) = self.request(reqwest::Method::DELETE, &api, None).await?;
        if (200..300).contains(&st) {
            Ok(())
        } else {
            Err(Self::fail(&format!("delete {mount}/{path}"), st, &v))
        }
    }

    /// The token's capabilities on an API path (e.g. `secret/data/app`).
    pub async fn capabilities(&self, api_path: &str) -> Result<Vec<String>, VaultError> {
        let (st, v) = self
            .request(
                reqwest::Method::POST,
                "sys/capabilities-self",
                Some(json!({"paths": [api_path]})),
            )
            .await?;
        if st != 200 {
            return Err(Self::fail("sys/capabilities-self", st, &v));
        }
        let caps = v
            .get(api_path)
            .or_else(|| v.pointer(&format!("/data/{}", api_path.replace('/', "~1"))))
            .or_else(|| v.get("capabilities"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(caps)
    }

    /// The secrets engine type and KV version of `mount` (e.g. `("kv", Some(2))`).
    pub async fn mount_info(&self, mount: &str) -> Result<(String, Option<u64>), VaultError> {
        let api = format!("sys/internal/ui/mounts/{mount}");
        let (st, v) = self.request(reqwest::Method::GET, &api, None).await?;
        match st {
            200 => {
                let ty = v
                    .pointer("/data/type")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string();
                let ver = v
                    .pointer("/data/options/version")
                    .and_then(|x| x.as_str().and_then(|s| s.parse().ok()).or(x.as_u64()));
                Ok((ty, ver))
            }
            400 | 404 => Err(VaultError::Invalid(format!(
                "there is no secrets engine mounted at `{mount}/`; check the mount name (the sandbox's is `secret`)"
            ))),
            _ => Err(Self::fail(&format!("mount info of {mount}"), st, &v)),
        }
    }
}

/// Resolves `vault:` references inside the runtime; every value is registered with the
/// redactor before it is returned.
pub struct VaultResolver {
    client: VaultClient,
    redactor: Arc<Redactor>,
}

impl VaultResolver {
    /// A resolver for `cfg`. The token itself is registered with the redactor too (unless it is
    /// a short dev-server token such as `root`, which would mask that word everywhere).
    pub fn new(cfg: VaultConfig, redactor: Arc<Redactor>) -> Self {
        if cfg.token.len() >= 16 {
            redactor.register(&cfg.token);
        }
        Self {
            client: VaultClient::new(Some(cfg)),
            redactor,
        }
    }

    /// From the environment, if `VAULT_ADDR` and `VAULT_TOKEN` are set.
    pub fn from_env(redactor: Arc<Redactor>) -> Option<Self> {
        VaultConfig::from_env().map(|c| Self::new(c, redactor))
    }
}

impl SecretResolver for VaultResolver {
    fn resolve<'a>(&'a self, r: &'a VaultRef) -> BoxFuture<'a, Result<String, SecretError>> {
        Box::pin(async move {
            let data =
                self.client
                    .kv_read(&r.mount, &r.path)
                    .await
                    .map_err(|e| SecretError::Failed {
                        reference: r.to_string(),
                        detail: e.to_string(),
                    })?;
            let Some(d) = data else {
                return Err(SecretError::NotFound {
                    reference: r.to_string(),
                });
            };
            // everything at the path is secret to the model, not only the key asked for
            for v in d.data.values() {
                if let Some(s) = v.as_str() {
                    self.redactor.register(s);
                }
            }
            match d.data.get(&r.key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => {
                    let s = other.to_string();
                    self.redactor.register(&s);
                    Ok(s)
                }
                None => Err(SecretError::NotFound {
                    reference: r.to_string(),
                }),
            }
        })
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Operation {
    List,
    Metadata,
    Read,
    Write,
    Generate,
    Delete,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
enum Charset {
    // A-Z a-z 0-9 (plain comments: the field's description says it, variant docs would make
    // the schema an anyOf of consts)
    #[default]
    Alphanumeric,
    // 0-9 a-f
    Hex,
    // alphanumeric plus `-_`
    Urlsafe,
    // alphanumeric plus `!#%+-.:=@^_~`
    Symbols,
}

impl Charset {
    fn chars(self) -> &'static [u8] {
        match self {
            Charset::Alphanumeric => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
            }
            Charset::Hex => b"0123456789abcdef",
            Charset::Urlsafe => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            Charset::Symbols => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+-.:=@^_~"
            }
        }
    }
}

// Arguments of the hashicorp-vault tool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Args {
    operation: Operation,
    /// KV v2 mount, default `secret`.
    mount: Option<String>,
    path: Option<String>,
    /// write: YAML map (a vault reference copies a secret); other keys are kept.
    values: Option<String>,
    /// generate: the key to store under.
    key: Option<String>,
    /// generate: 16-256, default 32.
    length: Option<u32>,
    /// generate: default alphanumeric; urlsafe adds `-_`, symbols `!#%+-.:=@^_~`.
    charset: Option<Charset>,
    /// generate: replace an existing value (rotation).
    overwrite: Option<bool>,
    /// delete: all versions and metadata.
    destroy: Option<bool>,
    /// write/generate/delete: true = only check.
    dry_run: Option<bool>,
}

/// A validated request.
struct Req {
    op: Operation,
    mount: String,
    path: String,
    /// write: key → literal or reference, in key order.
    values: BTreeMap<String, WriteValue>,
}

#[derive(Debug, Clone)]
enum WriteValue {
    Literal(String),
    Copy(VaultRef),
}

impl WriteValue {
    fn identity(&self) -> String {
        match self {
            WriteValue::Literal(s) => format!("sha256:{}", super::sha256_hex(s.as_bytes())),
            WriteValue::Copy(r) => r.to_string(),
        }
    }
}

/// Whether a key name looks like it holds a secret.
pub fn sensitive_key(k: &str) -> bool {
    let l = k.to_ascii_lowercase().replace(['-', '.'], "_");
    [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "apikey",
        "api_key",
        "private",
        "auth",
    ]
    .iter()
    .any(|s| l.contains(s))
        || l.ends_with("key")
        || l.ends_with("_pw")
        || l == "pw"
}

/// The hashicorp-vault tool.
pub struct VaultTool {
    client: VaultClient,
}

impl VaultTool {
    pub fn new(cfg: Option<VaultConfig>) -> Self {
        Self {
            client: VaultClient::new(cfg),
        }
    }

    /// Configured from `VAULT_ADDR` / `VAULT_TOKEN` / `VAULT_NAMESPACE` / `VAULT_CACERT`.
    pub fn from_env() -> Self {
        Self::new(VaultConfig::from_env())
    }

    fn parse(args: &Value) -> Result<(Args, Req), ToolError> {
        let a: Args = serde_json::from_value(args.clone())
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let bad = |m: String| Err(ToolError::InvalidArguments(m));
        let mount = a
            .mount
            .clone()
            .unwrap_or_else(|| "secret".into())
            .trim_matches('/')
            .to_string();
        if !valid_segment_path(&mount) || mount.contains('/') {
            return bad(format!(
                "invalid mount `{mount}`: one name of letters, digits, `-_.`"
            ));
        }
        let path = a
            .path
            .clone()
            .unwrap_or_default()
            .trim_matches('/')
            .to_string();
        if path.is_empty() && a.operation != Operation::List {
            return bad("`path` is required, e.g. `apps/prod/web`".into());
        }
        if !path.is_empty() && !valid_segment_path(&path) {
            return bad(format!(
                "invalid path `{path}`: use letters, digits and `-_./`, no `..` or empty segments"
            ));
        }
        let mut values = BTreeMap::new();
        match a.operation {
            Operation::Write => {
                let text = a.values.clone().unwrap_or_default();
                if text.trim().is_empty() {
                    return bad("write needs `values`: a YAML map of key: value".into());
                }
                let parsed: Value = serde_saphyr::from_str(&text).map_err(|e| {
                    ToolError::InvalidArguments(format!("`values` is not a YAML map: {e}"))
                })?;
                let Value::Object(m) = parsed else {
                    return bad("`values` must be a YAML map of key: value".into());
                };
                if m.is_empty() {
                    return bad("`values` is empty".into());
                }
                for (k, v) in m {
                    if !valid_key(&k) {
                        return bad(format!("invalid key `{k}`: use letters, digits and `-_.`"));
                    }
                    let s = match v {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return bad(format!(
                                "value of `{k}` must be a string, number or boolean"
                            ))
                        }
                    };
                    let wv = if s.trim_start().starts_with("vault:") {
                        match VaultRef::parse(s.trim()) {
                            Some(r) => WriteValue::Copy(r),
                            None => return bad(format!("value of `{k}` looks like a vault reference but is not `vault:<mount>/<path>#<key>`")),
                        }
                    } else {
                        WriteValue::Literal(s)
                    };
                    values.insert(k, wv);
                }
            }
            Operation::Generate => {
                let key = a.key.clone().unwrap_or_default();
                if !valid_key(&key) {
                    return bad("generate needs `key`: the key name, e.g. `password` (letters, digits, `-_.`)".into());
                }
                let len = a.length.unwrap_or(32);
                if !(16..=256).contains(&len) {
                    return bad(format!("length {len} is out of range 16-256"));
                }
            }
            _ => {}
        }
        let op = a.operation;
        Ok((
            a,
            Req {
                op,
                mount,
                path,
                values,
            },
        ))
    }

    fn target(&self, r: &Req) -> String {
        format!(
            "addr={} mount={} path={}",
            self.client.addr(),
            r.mount,
            r.path
        )
    }

    fn change(&self, a: &Args, r: &Req) -> Option<Change> {
        let content = match r.op {
            Operation::Write => json!({
                "op": "write",
                "keys": r.values.iter().map(|(k, v)| (k.clone(), Value::String(v.identity()))).collect::<Map<_, _>>(),
            }),
            Operation::Generate => json!({
                "op": "generate",
                "key": a.key,
                "length": a.length.unwrap_or(32),
                "charset": format!("{:?}", a.charset.unwrap_or_default()),
                "overwrite": a.overwrite.unwrap_or(false),
            }),
            Operation::Delete => json!({"op": "delete", "destroy": a.destroy.unwrap_or(false)}),
            _ => return None,
        };
        let op = match r.op {
            Operation::Write => "write",
            Operation::Generate => "generate",
            _ => "delete",
        };
        Some(Change {
            target: self.target(r),
            content_hash: super::canonical_hash(&content),
            dry_run_hint: format!(
                "call hashicorp-vault {op} with the same arguments and dry_run: true first"
            ),
        })
    }

    async fn kv2(&self, mount: &str) -> Result<(), ToolError> {
        let (ty, ver) = self.client.mount_info(mount).await?;
        if ty != "kv" || ver != Some(2) {
            return Err(ToolError::Failed(format!(
                "mount `{mount}/` is {ty}{} — this tool supports KV version 2 only",
                ver.map(|v| format!(" v{v}")).unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Check the token may do `need` (any of) on `api_path`; returns its capabilities.
    async fn require(&self, api_path: &str, need: &[&str]) -> Result<Vec<String>, ToolError> {
        let caps = self.client.capabilities(api_path).await?;
        if caps.iter().any(|c| c == "root") || need.iter().any(|n| caps.iter().any(|c| c == n)) {
            Ok(caps)
        } else {
            Err(ToolError::Failed(format!(
                "the vault token may not {} `{api_path}` (its capabilities there: {}); a policy granting it is needed",
                need.join(" or "),
                if caps.is_empty() { "none".to_string() } else { caps.join(", ") }
            )))
        }
    }

    fn reference(r: &Req, key: &str) -> String {
        format!("vault:{}/{}#{key}", r.mount, r.path)
    }

    async fn run(&self, a: Args, r: Req, ctx: &ToolCtx) -> Result<String, ToolError> {
        let dry = a.dry_run.unwrap_or(false);
        let loc = if r.path.is_empty() {
            format!("{}/", r.mount)
        } else {
            format!("{}/{}", r.mount, r.path)
        };
        match r.op {
            Operation::List => {
                let keys = self.client.kv_list(&r.mount, &r.path).await?;
                if keys.is_empty() {
                    return Ok(format!("nothing under {loc}"));
                }
                Ok(format!(
                    "{} entries under {loc} (folders end with /):\n{}",
                    keys.len(),
                    keys.join("\n")
                ))
            }
            Operation::Metadata => {
                let Some(m) = self.client.kv_metadata(&r.mount, &r.path).await? else {
                    return Ok(format!("{loc} does not exist"));
                };
                let g = |k: &str| {
                    m.get(k)
                        .map(|v| v.to_string().trim_matches('"').to_string())
                        .unwrap_or_default()
                };
                let mut rows: Vec<Vec<String>> = m
                    .get("versions")
                    .and_then(Value::as_object)
                    .map(|vs| {
                        vs.iter()
                            .map(|(n, v)| {
                                let s = |k: &str| {
                                    v.get(k)
                                        .and_then(Value::as_str)
                                        .filter(|x| !x.is_empty())
                                        .unwrap_or("-")
                                        .to_string()
                                };
                                vec![
                                    n.clone(),
                                    s("created_time"),
                                    s("deletion_time"),
                                    v.get("destroyed")
                                        .map(|d| d.to_string())
                                        .unwrap_or_default(),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                rows.sort_by_key(|r| std::cmp::Reverse(r[0].parse::<u64>().unwrap_or(0)));
                Ok(format!(
                    "{loc}: current version {}, oldest {}, max versions {}, updated {}\n{}",
                    g("current_version"),
                    g("oldest_version"),
                    g("max_versions"),
                    g("updated_time"),
                    super::table::render(
                        &["VERSION", "CREATED", "DELETED", "DESTROYED"],
                        &rows,
                        20
                    )
                ))
            }
            Operation::Read => {
                let Some(d) = self.client.kv_read(&r.mount, &r.path).await? else {
                    return Ok(format!(
                        "{loc} does not exist (or its latest version is deleted)"
                    ));
                };
                for v in d.data.values() {
                    if let Some(s) = v.as_str() {
                        ctx.redactor.register(s);
                    }
                }
                let refs: Vec<String> = d.data.keys().map(|k| Self::reference(&r, k)).collect();
                Ok(format!(
                    "{loc} version {}: {} keys (values are never shown; use these references):\n{}",
                    d.version,
                    refs.len(),
                    refs.join("\n")
                ))
            }
            Operation::Write => self.write(&r, dry, ctx).await,
            Operation::Generate => self.generate(&a, &r, dry, ctx).await,
            Operation::Delete => {
                self.kv2(&r.mount).await?;
                let destroy = a.destroy.unwrap_or(false);
                let api = if destroy {
                    format!("{}/metadata/{}", r.mount, r.path)
                } else {
                    format!("{}/data/{}", r.mount, r.path)
                };
                let meta = self.client.kv_metadata(&r.mount, &r.path).await?;
                let Some(meta) = meta else {
                    return Err(ToolError::Failed(format!(
                        "{loc} does not exist; nothing to delete"
                    )));
                };
                let current = meta
                    .get("current_version")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let versions = meta
                    .get("versions")
                    .and_then(Value::as_object)
                    .map_or(0, Map::len);
                let what = if destroy {
                    format!("all {versions} versions and the metadata of {loc} (permanent)")
                } else {
                    format!("version {current} of {loc} (soft delete; earlier versions stay, it can be undeleted)")
                };
                if dry {
                    let caps = self.require(&api, &["delete"]).await?;
                    return Ok(format!(
                        "dry-run ok: would delete {what}. Token capabilities on {api}: {}",
                        caps.join(", ")
                    ));
                }
                self.client.kv_delete(&r.mount, &r.path, destroy).await?;
                Ok(format!("deleted {what}"))
            }
        }
    }

    async fn write(&self, r: &Req, dry: bool, ctx: &ToolCtx) -> Result<String, ToolError> {
        let loc = format!("{}/{}", r.mount, r.path);
        self.kv2(&r.mount).await?;
        let api = format!("{}/data/{}", r.mount, r.path);
        // literal values of secret-looking keys are masked from here on
        for (k, v) in &r.values {
            if let WriteValue::Literal(s) = v {
                if sensitive_key(k) {
                    ctx.redactor.register(s);
                }
            }
        }
        let caps = self.require(&api, &["create", "update"]).await?;
        if !caps.iter().any(|c| c == "read" || c == "root") {
            // without read, bosun cannot merge: it would wipe keys it cannot see
            return Err(ToolError::Failed(format!(
                "the token may not read {api}, so bosun cannot keep the other keys at {loc}; ask for read capability"
            )));
        }
        let current = self.client.kv_read(&r.mount, &r.path).await?;
        if let Some(c) = &current {
            for v in c.data.values() {
                if let Some(s) = v.as_str() {
                    ctx.redactor.register(s);
                }
            }
        }
        // resolve copies inside the runtime (the resolver registers each value)
        let mut resolved: BTreeMap<&str, String> = BTreeMap::new();
        for (k, v) in &r.values {
            let value = match v {
                WriteValue::Literal(s) => s.clone(),
                WriteValue::Copy(src) => ctx
                    .secrets
                    .resolve(src)
                    .await
                    .map_err(|e| ToolError::Failed(e.to_string()))?,
            };
            resolved.insert(k.as_str(), value);
        }
        let (mut new, mut changed, mut same) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in &resolved {
            match current.as_ref().and_then(|c| c.data.get(*k)) {
                None => new.push(*k),
                Some(Value::String(old)) if old == v => same.push(*k),
                Some(_) => changed.push(*k),
            }
        }
        let kept: Vec<&str> = current
            .as_ref()
            .map(|c| {
                c.data
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !resolved.contains_key(k))
                    .collect()
            })
            .unwrap_or_default();
        let summary = [
            ("new", &new),
            ("changed", &changed),
            ("unchanged", &same),
            ("other keys kept", &kept),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}: {}", v.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
        let version = current.as_ref().map_or(0, |c| c.version);
        if dry {
            return Ok(format!(
                "dry-run ok: would write {loc} (version {version} → {}): {summary}. Token capabilities: {}",
                version + 1,
                caps.join(", ")
            ));
        }
        if new.is_empty() && changed.is_empty() {
            return Ok(format!(
                "nothing to write: {loc} already holds these values ({summary})"
            ));
        }
        let mut data = current.map(|c| c.data).unwrap_or_default();
        for (k, v) in resolved {
            data.insert(k.to_string(), Value::String(v));
        }
        let v = self
            .client
            .kv_write(&r.mount, &r.path, &data, version)
            .await?;
        let refs: Vec<String> = r.values.keys().map(|k| Self::reference(r, k)).collect();
        let secretish: Vec<&String> = r.values.keys().filter(|k| sensitive_key(k)).collect();
        let note = if secretish.is_empty() {
            String::new()
        } else {
            "\nnote: values of secret-looking keys are masked in all output from now on; for new passwords and keys use generate, so no value passes through the conversation".to_string()
        };
        Ok(format!(
            "wrote {loc} version {v}: {summary}\nreferences:\n{}{note}",
            refs.join("\n")
        ))
    }

    async fn generate(
        &self,
        a: &Args,
        r: &Req,
        dry: bool,
        ctx: &ToolCtx,
    ) -> Result<String, ToolError> {
        let loc = format!("{}/{}", r.mount, r.path);
        let key = a.key.clone().unwrap_or_default();
        let reference = Self::reference(r, &key);
        let len = a.length.unwrap_or(32) as usize;
        let charset = a.charset.unwrap_or_default();
        let overwrite = a.overwrite.unwrap_or(false);
        self.kv2(&r.mount).await?;
        let api = format!("{}/data/{}", r.mount, r.path);
        let caps = self.require(&api, &["create", "update"]).await?;
        let can_read = caps.iter().any(|c| c == "read" || c == "root");
        if !can_read {
            return Err(ToolError::Failed(format!(
                "the token may not read {api}, so bosun cannot keep the other keys at {loc}; ask for read capability"
            )));
        }
        let current = self.client.kv_read(&r.mount, &r.path).await?;
        if let Some(c) = &current {
            for v in c.data.values() {
                if let Some(s) = v.as_str() {
                    ctx.redactor.register(s);
                }
            }
        }
        let exists = current.as_ref().is_some_and(|c| c.data.contains_key(&key));
        let version = current.as_ref().map_or(0, |c| c.version);
        if exists && !overwrite {
            return Ok(format!(
                "{reference} already exists; kept it (pass overwrite: true to rotate it). Use the reference {reference}"
            ));
        }
        let verb = if exists { "replace (rotate)" } else { "create" };
        if dry {
            return Ok(format!(
                "dry-run ok: would {verb} key `{key}` at {loc} with a random {len}-character {} value (version {version} → {}). Token capabilities: {}. Reference: {reference}",
                format!("{charset:?}").to_lowercase(),
                version + 1,
                caps.join(", ")
            ));
        }
        let value = random_string(len, charset);
        // masked before it can appear anywhere
        ctx.redactor.register(&value);
        let mut data = current.map(|c| c.data).unwrap_or_default();
        data.insert(key.clone(), Value::String(value));
        let v = self
            .client
            .kv_write(&r.mount, &r.path, &data, version)
            .await?;
        Ok(format!(
            "generated a random {len}-character value for `{key}` at {loc} (version {v}); the value is never shown. Reference: {reference}"
        ))
    }
}

/// A random string from a cryptographically secure generator (the OS-seeded thread RNG).
fn random_string(len: usize, charset: Charset) -> String {
    use rand::Rng;
    let chars = charset.chars();
    let mut rng = rand::rng();
    (0..len)
        .map(|_| chars[rng.random_range(0..chars.len())] as char)
        .collect()
}

fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::List => "list",
        Operation::Metadata => "metadata",
        Operation::Read => "read",
        Operation::Write => "write",
        Operation::Generate => "generate",
        Operation::Delete => "delete",
    }
}

impl Tool for VaultTool {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Vault/OpenBao KV v2: list, read key names as references, write, generate, delete. Values are never returned."
    }

    fn operations(&self) -> &[(&'static str, EffectClass)] {
        OPERATIONS
    }

    fn parameters(&self) -> Value {
        schemars::schema_for!(Args).to_value()
    }

    fn plan(&self, args: &Value) -> Result<Invocation, ToolError> {
        let (a, r) = Self::parse(args)?;
        let op = op_name(r.op);
        let mut inv = Invocation::read(op, self.target(&r));
        inv.change = self.change(&a, &r);
        inv.dry_run = inv.change.is_some() && a.dry_run.unwrap_or(false);
        Ok(inv)
    }

    fn execute<'a>(
        &'a self,
        call: Admitted,
        ctx: &'a ToolCtx,
    ) -> BoxFuture<'a, Result<String, ToolError>> {
        Box::pin(async move {
            let (a, r) = Self::parse(&call.args)?;
            tokio::time::timeout(Duration::from_secs(60), self.run(a, r, ctx))
                .await
                .map_err(|_| ToolError::Timeout(60))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_use_the_charset_and_differ() {
        let a = random_string(40, Charset::Hex);
        let b = random_string(40, Charset::Hex);
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn write_identity_never_holds_the_value() {
        let t = VaultTool::new(None);
        let inv = t
            .plan(&json!({"operation": "write", "path": "apps/web", "values": "user: admin\npassword: hunter2-long", "dry_run": true}))
            .expect("plan");
        assert!(inv.dry_run);
        let c = inv.change.expect("change");
        assert_eq!(c.target, "addr=unset mount=secret path=apps/web");
        assert!(!c.content_hash.contains("hunter2"));
        let inv2 = t
            .plan(&json!({"operation": "write", "path": "apps/web", "values": "{password: hunter2-long, user: admin}"}))
            .expect("plan");
        assert!(!inv2.dry_run);
        assert_eq!(
            inv2.change.expect("change"),
            c,
            "same keys and values, any YAML form"
        );
        let other = t
            .plan(&json!({"operation": "write", "path": "apps/web", "values": "user: admin\npassword: other"}))
            .expect("plan");
        assert_ne!(other.change.expect("change").content_hash, c.content_hash);
    }

    #[test]
    fn bad_paths_and_keys_are_refused() {
        let t = VaultTool::new(None);
        for args in [
            json!({"operation": "read", "path": "../sys"}),
            json!({"operation": "read", "path": "a//b"}),
            json!({"operation": "read"}),
            json!({"operation": "generate", "path": "a", "key": "pass word"}),
            json!({"operation": "generate", "path": "a", "key": "p", "length": 8}),
            json!({"operation": "write", "path": "a", "values": "- a\n- b"}),
            json!({"operation": "read", "mount": "a/b", "path": "x"}),
        ] {
            assert!(t.plan(&args).is_err(), "{args}");
        }
        assert!(sensitive_key("db-password") && sensitive_key("API_KEY") && !sensitive_key("host"));
    }
}
