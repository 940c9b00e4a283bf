//! Authentication shared by bosun's HTTP servers (`bosun mcp --listen`, `bosun serve`): a bearer
//! token compared in constant time, and the rule that a server without a token listens on
//! loopback only and answers only loopback `Host` headers (no DNS rebinding from a web page).

use axum::http::{header, HeaderMap, StatusCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a server will not start with this address and token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("refusing to serve {what} on {addr} without authentication: anyone who reaches it could drive the agent. Set {env} or pass --token-file FILE (callers send `Authorization: Bearer <token>`), or listen on 127.0.0.1")]
    Unauthenticated {
        what: &'static str,
        addr: String,
        env: &'static str,
    },
    #[error("the {what} token is {len} characters; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)")]
    TooShort { what: &'static str, len: usize },
    #[error("cannot read the token file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The bearer token from `file`, else from the environment variable `env`; `None`: no
/// authentication. Surrounding whitespace is dropped; a token shorter than [`MIN_TOKEN_LEN`] is
/// refused.
pub fn load_token(
    file: Option<&Path>,
    env: &'static str,
    what: &'static str,
) -> Result<Option<String>, AuthError> {
    let t = match file {
        Some(f) => std::fs::read_to_string(f).map_err(|source| AuthError::Read {
            path: f.to_path_buf(),
            source,
        })?,
        None => match std::env::var(env) {
            Ok(t) => t,
            Err(_) => return Ok(None),
        },
    };
    let t = t.trim().to_string();
    if t.len() < MIN_TOKEN_LEN {
        return Err(AuthError::TooShort { what, len: t.len() });
    }
    Ok(Some(t))
}

/// Whether `addr` (`host:port`) names a loopback host (`localhost`, 127.0.0.0/8, `[::1]`).
pub fn is_loopback_addr(addr: &str) -> bool {
    addr.rsplit_once(':')
        .map(|(h, _)| h)
        .is_some_and(is_loopback_host)
}

/// Whether `host` (no port; IPv6 with or without brackets) is a loopback host.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_matches(['[', ']']);
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A server without a token may only listen on loopback.
pub fn check_listen(
    what: &'static str,
    addr: &str,
    token: Option<&str>,
    env: &'static str,
) -> Result<(), AuthError> {
    if token.is_none() && !is_loopback_addr(addr) {
        return Err(AuthError::Unauthenticated {
            what,
            addr: addr.to_string(),
            env,
        });
    }
    Ok(())
}

/// Whether the request's `Host` header names a loopback host (any port).
pub fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    // `[::1]:8080`, `127.0.0.1:8080`, `localhost`
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    is_loopback_host(name)
}

/// Whether `headers` carry `Authorization: Bearer <token>`.
pub fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    constant_time_eq(given, format!("Bearer {token}").as_bytes())
}

/// Byte equality that takes the same time wherever the first difference is.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `router` with every request required to carry `Authorization: Bearer <token>`: 401 with
/// `message` otherwise.
pub fn require_bearer(router: axum::Router, token: String, message: &'static str) -> axum::Router {
    let token = Arc::new(token);
    router.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let token = token.clone();
            async move {
                if bearer_matches(req.headers(), &token) {
                    return next.run(req).await;
                }
                unauthorized(message)
            }
        },
    ))
}

/// The 401 answer with its `WWW-Authenticate: Bearer` challenge.
pub fn unauthorized(message: &'static str) -> axum::response::Response {
    axum::response::IntoResponse::into_response((
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abd", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer ab", b"Bearer abc"));
        assert!(!constant_time_eq(b"", b"Bearer abc"));
    }

    #[test]
    fn loopback_addresses_and_hosts() {
        for a in ["127.0.0.1:0", "localhost:8080", "[::1]:9", "127.1.2.3:80"] {
            assert!(is_loopback_addr(a), "{a}");
        }
        for a in [
            "0.0.0.0:8080",
            "10.0.0.1:80",
            "example.com:80",
            "[::]:80",
            "nonsense",
        ] {
            assert!(!is_loopback_addr(a), "{a}");
        }
        assert!(check_listen("x", "0.0.0.0:1", None, "T").is_err());
        assert!(check_listen("x", "0.0.0.0:1", Some("t"), "T").is_ok());
        let mut h = HeaderMap::new();
        for (host, ok) in [
            ("127.0.0.1:8080", true),
            ("localhost", true),
            ("[::1]:80", true),
            ("evil.example:8080", false),
            ("127.0.0.1.evil.example", false),
        ] {
            h.insert(header::HOST, host.parse().expect("header"));
            assert_eq!(host_is_loopback(&h), ok, "{host}");
        }
    }
}
