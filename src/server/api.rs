//! The JSON API: create, list and get sessions, follow a session's events (SSE), approve or
//! deny a pending change by its fingerprint, cancel.

use super::sessions::{AnswerError, Live, SessionInfo, SessionView, Stamped, StartError, Tracked};
use super::{App, Route};
use crate::scope::Mode;
use crate::session::Op;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

/// An error answer: `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn no_session(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no_such_session",
            format!(
                "no session `{}` on this server (GET /v1/sessions lists them)",
                id.chars().take(80).collect::<String>()
            ),
        )
    }
}

impl From<AnswerError> for ApiError {
    fn from(e: AnswerError) -> Self {
        let code = match e {
            AnswerError::NotPending { .. } => "not_pending",
            AnswerError::Ended(_) => "session_ended",
        };
        Self::new(StatusCode::CONFLICT, code, e.to_string())
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Busy { .. } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sessions",
                e.to_string(),
            ),
            StartError::Session(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "session", e.to_string())
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::new(r.status(), "bad_request", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        r
    }
}

/// `POST /v1/sessions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub task: String,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
}

/// A Kubernetes namespace name (RFC 1123 label).
fn valid_namespace(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

/// Start a session with `req`'s task (shared by the API and the inbox).
pub fn create(app: &App, req: CreateSession) -> Result<Arc<Tracked>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let task = req.task.trim().to_string();
    if task.is_empty() {
        return Err(bad("`task` is empty: say what the agent should do".into()));
    }
    if let Some(n) = req.namespace.as_deref().filter(|n| !valid_namespace(n)) {
        return Err(bad(format!(
            "`namespace` {:?} is not a Kubernetes namespace name (lowercase letters, digits, `-`, at most 63)",
            n.chars().take(80).collect::<String>()
        )));
    }
    if let Some(c) = req.context.as_deref() {
        if c.is_empty() || c.len() > 253 || c.chars().any(char::is_control) {
            return Err(bad("`context` must be a kube context name".into()));
        }
    }
    let mut spec = app.runtimes.default_spec();
    if let Some(m) = req.mode {
        spec.mode = m;
    }
    if req.context.is_some() {
        spec.context = req.context.clone();
    }
    if req.namespace.is_some() {
        spec.namespace = req.namespace.clone();
    }
    let slot = app.sessions.slot()?;
    let rt = app
        .runtimes
        .get(&spec)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "runtime", e.to_string()))?;
    let handle = rt.spawn_session(None).map_err(StartError::from)?;
    handle.submit(Op::UserTurn { text: task.clone() });
    let info = SessionInfo {
        id: handle.id().to_string(),
        task,
        mode: spec.mode,
        namespace: spec.namespace.clone(),
        context: rt
            .guard_config
            .scope
            .as_ref()
            .and_then(|s| s.context.clone()),
        created: jiff::Timestamp::now().to_string(),
    };
    Ok(app.sessions.start(handle, info, slot))
}

async fn create_session(
    State(app): State<App>,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let t = create(&app, req)?;
    let location = format!("/v1/sessions/{}", t.info.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(t.view()),
    )
        .into_response())
}

async fn list_sessions(State(app): State<App>) -> Json<serde_json::Value> {
    let sessions: Vec<SessionView> = app.sessions.all().iter().map(|t| t.view()).collect();
    Json(json!({ "sessions": sessions }))
}

fn lookup(app: &App, id: &str) -> Result<Arc<Tracked>, ApiError> {
    app.sessions.get(id).ok_or_else(|| ApiError::no_session(id))
}

async fn get_session(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(lookup(&app, &id)?.view()))
}

/// The optional body of approve / deny.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    #[serde(default)]
    reason: Option<String>,
}

fn answer_body(body: &[u8]) -> Result<Answer, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Answer::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body must be empty or {{\"reason\": \"…\"}}: {e}"),
        )
    })
}

/// Answer a pending change (shared by the API and the inbox).
pub fn answer(
    app: &App,
    id: &str,
    fingerprint: &str,
    approve: bool,
    reason: Option<String>,
) -> Result<SessionView, ApiError> {
    let t = lookup(app, id)?;
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "denied by the operator".into());
    t.answer(fingerprint, approve, &reason)?;
    Ok(t.view())
}

async fn approve(
    State(app): State<App>,
    Path((id, fp)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<SessionView>, ApiError> {
    answer_body(&body)?;
    Ok(Json(answer(&app, &id, &fp, true, None)?))
}

async fn deny(
    State(app): State<App>,
    Path((id, fp)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<SessionView>, ApiError> {
    let a = answer_body(&body)?;
    Ok(Json(answer(&app, &id, &fp, false, a.reason)?))
}

async fn cancel(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let t = lookup(&app, &id)?;
    if !t.cancel() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "session_ended",
            format!("session {id} has already ended"),
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(t.view())).into_response())
}

#[derive(Debug, Deserialize)]
struct After {
    #[serde(default)]
    after: Option<u64>,
}

fn sse(e: &Stamped) -> SseEvent {
    let data = e.to_json().to_string();
    SseEvent::default()
        .id(e.seq.to_string())
        .event(e.kind())
        .data(data)
}

struct Follow {
    tracked: Arc<Tracked>,
    backlog: VecDeque<Arc<Stamped>>,
    rx: tokio::sync::broadcast::Receiver<Live>,
    last: u64,
    ended: bool,
    finished: bool,
}

/// The events after `Last-Event-ID` (or `?after=N`), then live ones; ends with an `end` event
/// once the session has ended.
async fn events(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<After>,
    headers: HeaderMap,
) -> Result<Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let t = lookup(&app, &id)?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(q.after)
        .unwrap_or(0);
    let (backlog, rx, ended) = t.follow(after);
    let st = Follow {
        tracked: t,
        backlog: backlog.into(),
        rx,
        last: after,
        ended,
        finished: false,
    };
    let stream = futures::stream::unfold(st, |mut st| async move {
        let end = || SseEvent::default().event("end").data("{}");
        loop {
            if st.finished {
                return None;
            }
            if let Some(e) = st.backlog.pop_front() {
                st.last = e.seq;
                return Some((Ok(sse(&e)), st));
            }
            if st.ended {
                st.finished = true;
                return Some((Ok(end()), st));
            }
            match st.rx.recv().await {
                Ok(Live::Event(e)) if e.seq > st.last => {
                    st.last = e.seq;
                    return Some((Ok(sse(&e)), st));
                }
                Ok(Live::Event(_)) => {}
                Ok(Live::End) => st.ended = true,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // a slow follower: catch up from the kept events
                    let (b, _, ended) = st.tracked.follow(st.last);
                    st.backlog = b.into();
                    st.ended = st.ended || ended;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => st.ended = true,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn openapi() -> Json<serde_json::Value> {
    Json(super::openapi::document())
}

/// The API's routes.
pub fn routes() -> Vec<Route> {
    vec![
        (Method::GET, "/healthz", get(healthz)),
        (Method::GET, "/openapi.json", get(openapi)),
        (Method::GET, "/v1/sessions", get(list_sessions)),
        (Method::POST, "/v1/sessions", post(create_session)),
        (Method::GET, "/v1/sessions/{id}", get(get_session)),
        (Method::GET, "/v1/sessions/{id}/events", get(events)),
        (
            Method::POST,
            "/v1/sessions/{id}/approvals/{fingerprint}/approve",
            post(approve),
        ),
        (
            Method::POST,
            "/v1/sessions/{id}/approvals/{fingerprint}/deny",
            post(deny),
        ),
        (Method::POST, "/v1/sessions/{id}/cancel", post(cancel)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_checked() {
        for ok in ["shop", "a", "team-1", "x0"] {
            assert!(valid_namespace(ok), "{ok}");
        }
        for bad in [
            "",
            "Shop",
            "-a",
            "a-",
            "a_b",
            "a.b",
            &"x".repeat(64),
            "a/../b",
        ] {
            assert!(!valid_namespace(bad), "{bad}");
        }
    }
}
