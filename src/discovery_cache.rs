//! API discovery cached on disk per cluster (as kubectl keeps `~/.kube/cache/discovery`), so a
//! one-call `bosun run` resolves kinds without re-reading every group/version of the server.
//!
//! Written here, not taken from a crate: kube has no disk cache (kube-rs/kube#1021 is open) and
//! its `Discovery`/`ApiGroup`/`ApiCapabilities` are not serialisable (only `ApiResource` is), so
//! the file holds the minimal resolution data bosun uses — each served resource's
//! [`ApiResource`], its scope and verbs — one JSON file per (server URL, CA) pair.
//!
//! The file is a cache, never a source of truth: a missing, stale, foreign or corrupt one is
//! ignored (and rewritten by the next discovery); failing to write one is not an error either.

use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// kubectl's default TTL for its discovery cache.
pub const DEFAULT_TTL: Duration = Duration::from_secs(6 * 3600);

/// Bumped when the file layout changes; a file of another version is ignored.
const FORMAT: u32 = 1;

/// Where and for how long discovery is cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// The directory holding one file per cluster.
    pub dir: PathBuf,
    /// How long a file is used before discovery runs again.
    pub ttl: Duration,
}

impl CacheConfig {
    /// From the environment: `BOSUN_DISCOVERY_TTL` (seconds; `0` turns the disk cache off;
    /// default 6 h), the directory `BOSUN_CACHE_DIR/discovery`, else
    /// `$XDG_CACHE_HOME/bosun/discovery`, else `~/.cache/bosun/discovery`. `None`: no cache
    /// (turned off, or no place for it).
    pub fn from_env() -> Option<Self> {
        let ttl = match std::env::var("BOSUN_DISCOVERY_TTL") {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
                Ok(0) => return None,
                Ok(s) => Duration::from_secs(s),
                Err(_) => {
                    tracing::warn!(
                        "BOSUN_DISCOVERY_TTL={v:?} is not a number of seconds; using 6 h"
                    );
                    DEFAULT_TTL
                }
            },
            _ => DEFAULT_TTL,
        };
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let base = var("BOSUN_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|x| x.join("bosun")))
            .or_else(|| var("HOME").map(|h| h.join(".cache/bosun")))?;
        Some(Self {
            dir: base.join("discovery"),
            ttl,
        })
    }

    /// The cache file of the cluster at `server` trusted through `ca` (PEM/DER bytes of the
    /// root certificates, if any): `<host>_<port>-<hash of URL and CA>.json`, so two clusters
    /// behind one address (a re-created sandbox) never share a file.
    pub fn file_for(&self, server: &str, ca: Option<&[Vec<u8>]>) -> PathBuf {
        let mut h = Sha256::new();
        h.update(server.as_bytes());
        for c in ca.unwrap_or_default() {
            h.update([0u8]);
            h.update(c);
        }
        let hash: String = h.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let host: String = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        self.dir.join(format!("{host}-{hash}.json"))
    }
}

#[derive(Serialize, Deserialize)]
struct File {
    format: u32,
    server: String,
    /// Seconds since the Unix epoch when discovery ran.
    written_at: u64,
    resources: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    resource: ApiResource,
    namespaced: bool,
    verbs: Vec<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The resources cached in `path` for `server`, if the file is there, readable, of this format
/// and this server, and younger than `ttl`. Anything else is `None` (a corrupt file included:
/// the caller runs discovery and overwrites it).
pub fn load(
    path: &Path,
    server: &str,
    ttl: Duration,
) -> Option<Vec<(ApiResource, ApiCapabilities)>> {
    let text = std::fs::read(path).ok()?;
    let f: File = match serde_json::from_slice(&text) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(path = %path.display(), "discovery cache unreadable, ignored: {e}");
            return None;
        }
    };
    let age = now_secs().checked_sub(f.written_at)?; // a file from the future is stale
    if f.format != FORMAT || f.server != server || age >= ttl.as_secs() || f.resources.is_empty() {
        return None;
    }
    Some(
        f.resources
            .into_iter()
            .map(|e| {
                let caps = ApiCapabilities {
                    scope: if e.namespaced {
                        Scope::Namespaced
                    } else {
                        Scope::Cluster
                    },
                    subresources: Vec::new(),
                    operations: e.verbs,
                };
                (e.resource, caps)
            })
            .collect(),
    )
}

/// Write `resources` for `server` to `path` atomically (a temporary file renamed over it),
/// readable by the owner only (0600; the directory 0700).
pub fn store(
    path: &Path,
    server: &str,
    resources: &[(ApiResource, ApiCapabilities)],
) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("the cache file has no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let f = File {
        format: FORMAT,
        server: server.to_string(),
        written_at: now_secs(),
        resources: resources
            .iter()
            .map(|(ar, caps)| Entry {
                resource: ar.clone(),
                namespaced: matches!(caps.scope, Scope::Namespaced),
                verbs: caps.operations.clone(),
            })
            .collect(),
    };
    let body = serde_json::to_vec(&f).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("discovery"),
        std::process::id()
    ));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // an older temporary file of the same name may have had other permissions
    out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    out.write_all(&body)?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(ApiResource, ApiCapabilities)> {
        vec![(
            ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                plural: "deployments".into(),
            },
            ApiCapabilities {
                scope: Scope::Namespaced,
                subresources: vec![],
                operations: vec!["get".into(), "list".into()],
            },
        )]
    }

    #[test]
    fn a_written_file_loads_back_for_its_server_only_and_not_after_its_ttl() {
        let d = tempfile::tempdir().unwrap();
        let cfg = CacheConfig {
            dir: d.path().join("discovery"),
            ttl: DEFAULT_TTL,
        };
        let p = cfg.file_for("https://127.0.0.1:6443", None);
        assert_ne!(
            p,
            cfg.file_for("https://127.0.0.1:6443", Some(&[b"ca".to_vec()]))
        );
        store(&p, "https://127.0.0.1:6443", &sample()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let got = load(&p, "https://127.0.0.1:6443", DEFAULT_TTL).unwrap();
        assert_eq!(got[0].0.kind, "Deployment");
        assert!(matches!(got[0].1.scope, Scope::Namespaced));
        assert!(load(&p, "https://other:6443", DEFAULT_TTL).is_none());
        assert!(load(&p, "https://127.0.0.1:6443", Duration::ZERO).is_none());
        std::fs::write(&p, b"{not json").unwrap();
        assert!(load(&p, "https://127.0.0.1:6443", DEFAULT_TTL).is_none());
    }
}
