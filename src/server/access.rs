//! Who may do what: the bearer token or the inbox's login cookie, loopback `Host` headers when
//! there is no token, and the cross-site checks on state-changing requests.

use super::App;
use crate::auth;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

/// The login cookie's name.
pub const COOKIE: &str = "bosun_serve";

/// The login cookie's value for `token`: derived, so the cookie is not the bearer token itself.
pub fn cookie_value(token: &str) -> String {
    crate::tools::sha256_hex(format!("bosun serve inbox cookie\n{token}").as_bytes())
}

/// Paths anyone may request (the login form itself, health, the stylesheet).
fn public(path: &str) -> bool {
    matches!(path, "/healthz" | "/login" | "/ui/style.css")
}

/// API paths answer 401; inbox pages send the browser to the login form.
fn is_api(path: &str) -> bool {
    path.starts_with("/v1/") || path == "/openapi.json"
}

/// Whether the request carries the login cookie.
pub fn cookie_ok(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == COOKIE && auth::constant_time_eq(v.as_bytes(), expected.as_bytes()))
}

/// A state-changing request that names an origin must name this server's (the `Host` it was
/// sent to).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // no Origin: not a cross-site browser request (browsers send it on every POST)
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host))
}

fn refuse(status: StatusCode, code: &'static str, message: &str) -> Response {
    super::api::ApiError::new(status, code, message).into_response()
}

/// The access middleware in front of every route.
pub async fn access(State(app): State<App>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let headers = req.headers();
    if app.token.is_none() && !auth::host_is_loopback(headers) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "host",
            "bosun serve without a token answers only requests addressed to a loopback host (127.0.0.1, localhost, [::1])",
        );
    }
    let changes = req.method() != Method::GET && req.method() != Method::HEAD;
    if changes && !same_origin(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "a cross-origin request may not change anything here",
        );
    }
    let bearer = app
        .token
        .as_deref()
        .is_some_and(|t| auth::bearer_matches(headers, t));
    if !public(&path) {
        if let (Some(_), Some(cookie)) = (&app.token, &app.cookie) {
            if !bearer && !cookie_ok(headers, cookie) {
                if is_api(&path) {
                    return auth::unauthorized(
                        "bosun serve: missing or wrong bearer token; send `Authorization: Bearer <the token bosun serve was started with>`\n",
                    );
                }
                return Redirect::to("/login").into_response();
            }
        }
    }
    // an API change not authenticated by a header must be JSON (see the module docs)
    if changes && is_api(&path) && !bearer {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content_type",
                "send `Content-Type: application/json` (a body of {} will do)",
            );
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().expect("h"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().expect("h"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().expect("h"));
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().expect("h"));
        assert!(!same_origin(&h));
        let v = cookie_value("0123456789abcdef");
        h.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={v}").parse().expect("h"),
        );
        assert!(cookie_ok(&h, &v));
        assert!(!cookie_ok(&h, &cookie_value("another token here")));
    }
}
