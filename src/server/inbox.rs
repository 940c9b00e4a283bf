//! The approvals inbox: server-rendered HTML (minijinja; every value escaped) listing sessions
//! and pending approvals with their diff and approve/deny forms, a session page that follows its
//! events live (`inbox/app.js`, text only), and the login form that sets the inbox cookie.
//! Forms carry the server's form token (see the access rules in `server`).

use super::api::{self, ApiError, CreateSession};
use super::{access, App, Route};
use crate::auth::constant_time_eq;
use crate::scope::Mode;
use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Form;
use minijinja::context;
use serde::Deserialize;

/// The templates, compiled in.
pub fn templates() -> Result<minijinja::Environment<'static>, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, src) in [
        ("base.html", include_str!("inbox/base.html")),
        ("macros.html", include_str!("inbox/macros.html")),
        ("inbox.html", include_str!("inbox/inbox.html")),
        ("session.html", include_str!("inbox/session.html")),
        ("login.html", include_str!("inbox/login.html")),
        ("error.html", include_str!("inbox/error.html")),
    ] {
        env.add_template(name, src)?;
    }
    Ok(env)
}

/// Headers of every page: no framing, scripts and styles only from here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Html(html),
    )
        .into_response()
}

fn render(app: &App, name: &str, ctx: minijinja::Value) -> Response {
    let agent = app.runtimes.agent_id();
    let ctx = context! { agent => agent, form_token => app.form_token.clone(), ..ctx };
    match app.templates.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => page(StatusCode::OK, html),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page could not be rendered: {e}"),
        )
            .into_response(),
    }
}

fn error_page(app: &App, e: ApiError, back: &str) -> Response {
    let mut r = render(
        app,
        "error.html",
        context! { status => e.status.as_u16(), message => e.message, back => back },
    );
    *r.status_mut() = e.status;
    r
}

async fn inbox(State(app): State<App>) -> Response {
    let sessions: Vec<_> = app.sessions.all().iter().map(|t| t.view()).collect();
    let pending_count: usize = sessions.iter().map(|s| s.pending_approvals.len()).sum();
    render(
        &app,
        "inbox.html",
        context! { sessions => minijinja::value::Serde(&sessions), pending_count => pending_count },
    )
}

async fn session(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some(t) = app.sessions.get(&id) else {
        return error_page(&app, ApiError::no_session(&id), "/");
    };
    let (events, _, done) = t.follow(0);
    let last_seq = events.last().map(|e| e.seq).unwrap_or(0);
    let events: Vec<_> = events
        .iter()
        .filter(|e| e.kind() != "assistant_delta")
        .map(|e| context! { kind => e.kind(), summary => e.summary() })
        .collect();
    render(
        &app,
        "session.html",
        context! { s => minijinja::value::Serde(t.view()), events => events, last_seq => last_seq, done => done },
    )
}

fn form_token_ok(app: &App, given: &str) -> bool {
    constant_time_eq(given.as_bytes(), app.form_token.as_bytes())
}

fn bad_form_token(app: &App, back: &str) -> Response {
    error_page(
        app,
        ApiError::new(
            StatusCode::FORBIDDEN,
            "form_token",
            "the form is stale or did not come from this server; reload the page and try again",
        ),
        back,
    )
}

#[derive(Debug, Deserialize)]
struct AnswerForm {
    form_token: String,
    decision: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    back: Option<String>,
}

async fn answer(
    State(app): State<App>,
    Path((id, fp)): Path<(String, String)>,
    Form(f): Form<AnswerForm>,
) -> Response {
    let back = match f.back.as_deref() {
        Some("inbox") => "/".to_string(),
        _ => format!("/ui/sessions/{id}"),
    };
    if !form_token_ok(&app, &f.form_token) {
        return bad_form_token(&app, &back);
    }
    let approve = match f.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return error_page(
                &app,
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "decision",
                    "decide approve or deny",
                ),
                &back,
            )
        }
    };
    match api::answer(&app, &id, &fp, approve, f.reason) {
        Ok(_) => Redirect::to(&format!("/ui/sessions/{id}")).into_response(),
        Err(e) => error_page(&app, e, &back),
    }
}

#[derive(Debug, Deserialize)]
struct NewForm {
    form_token: String,
    task: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    mode: Option<Mode>,
}

async fn start(State(app): State<App>, Form(f): Form<NewForm>) -> Response {
    if !form_token_ok(&app, &f.form_token) {
        return bad_form_token(&app, "/");
    }
    let req = CreateSession {
        task: f.task,
        mode: f.mode,
        namespace: f.namespace.filter(|n| !n.trim().is_empty()),
        context: None,
    };
    match api::create(&app, req) {
        Ok(t) => Redirect::to(&format!("/ui/sessions/{}", t.info.id)).into_response(),
        Err(e) => error_page(&app, e, "/"),
    }
}

async fn login_form(State(app): State<App>) -> Response {
    if app.token.is_none() {
        return Redirect::to("/").into_response();
    }
    render(&app, "login.html", context! { failed => false })
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    form_token: String,
    token: String,
}

async fn login(State(app): State<App>, Form(f): Form<LoginForm>) -> Response {
    let (Some(token), Some(cookie)) = (&app.token, &app.cookie) else {
        return Redirect::to("/").into_response();
    };
    if !form_token_ok(&app, &f.form_token) {
        return bad_form_token(&app, "/login");
    }
    if !constant_time_eq(f.token.trim().as_bytes(), token.as_bytes()) {
        let mut r = render(&app, "login.html", context! { failed => true });
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    (
        [(
            header::SET_COOKIE,
            format!(
                "{}={cookie}; HttpOnly; SameSite=Strict; Path=/",
                access::COOKIE
            ),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn app_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("inbox/app.js"),
    )
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", include_str!("inbox/style.css"))
}

/// The inbox's routes.
pub fn routes() -> Vec<Route> {
    vec![
        (Method::GET, "/", get(inbox)),
        (Method::GET, "/ui/sessions/{id}", get(session)),
        (Method::POST, "/ui/sessions", post(start)),
        (
            Method::POST,
            "/ui/sessions/{id}/approvals/{fingerprint}",
            post(answer),
        ),
        (Method::GET, "/login", get(login_form)),
        (Method::POST, "/login", post(login)),
        (Method::GET, "/ui/app.js", get(app_js)),
        (Method::GET, "/ui/style.css", get(style_css)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_what_they_show() {
        let env = templates().expect("templates load");
        let html = env
            .get_template("error.html")
            .and_then(|t| {
                t.render(context! {
                    agent => "a", form_token => "t", status => 409,
                    message => "<script>alert(1)</script>", back => "/\" onclick=\"x",
                })
            })
            .expect("renders");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
        assert!(!html.contains("\" onclick=\"x"), "{html}");
    }
}
