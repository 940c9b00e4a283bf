//! `bosun serve`: an HTTP API over the same core as the REPL — each session is a
//! [`SessionHandle`](crate::session::SessionHandle) (operations in, events out) — and an
//! approvals inbox in the browser.
//!
//! - **API** (`/v1/…`, JSON; described by `/openapi.json`): create a session with a task (and a
//!   mode, context and namespace, as `bosun run` takes them), list and get sessions (status,
//!   planner state, outcome, pending approvals with fingerprint, environment, objects and the
//!   dry-run evidence of the same change), follow a session's events as server-sent events,
//!   approve or deny a pending change **by its fingerprint** (a fingerprint that is not pending
//!   is a 409 naming what is), cancel.
//! - **Inbox** (`/`, `/ui/sessions/{id}`): server-rendered HTML (minijinja, everything
//!   escaped) listing sessions and pending approvals with their diff and approve/deny forms; a
//!   session page follows its events live.
//! - **Access**: with a token, every request needs `Authorization: Bearer <token>` or the
//!   inbox's login cookie (`HttpOnly; SameSite=Strict`, set by `/login`); without one the server
//!   must listen on loopback and answers only loopback `Host` headers (as `bosun mcp`). Against
//!   cross-site requests: every state-changing request with an `Origin` must come from this
//!   server's own origin, inbox forms carry a per-server form token, and API `POST`s not
//!   authenticated by a bearer header must be `application/json` (a cross-site form cannot send
//!   that without a CORS preflight, which this server never answers).
//! - **Limits**: request bodies (`max_body`, 413), running sessions (`max_sessions`, 429 with
//!   `Retry-After`), sessions kept after they end (`keep_sessions`, oldest ended dropped first).

mod access;
mod api;
mod inbox;
mod openapi;
mod runtimes;
mod sessions;

pub use runtimes::{Runtimes, TaskSpec};
pub use sessions::{OutcomeView, PendingApproval, SessionInfo, SessionView, Stamped, Status};

use axum::http::Method;
use std::net::SocketAddr;
use std::sync::Arc;

/// How a server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `host:port`; port 0 picks one.
    pub listen: String,
    /// The bearer token; `None`: loopback only, no authentication.
    pub token: Option<String>,
    /// Sessions running at once; one more is a 429.
    pub max_sessions: usize,
    /// Largest request body in bytes; larger is a 413.
    pub max_body: usize,
    /// Sessions kept (running or ended); beyond it the oldest ended ones are forgotten.
    pub keep_sessions: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            token: None,
            max_sessions: 64,
            max_body: 64 * 1024,
            keep_sessions: 1000,
        }
    }
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("the inbox templates do not load: {0}")]
    Template(#[from] minijinja::Error),
}

/// What every handler shares.
pub(crate) struct AppInner {
    runtimes: Arc<Runtimes>,
    sessions: sessions::Sessions,
    token: Option<String>,
    /// The login cookie's value (derived from the token), when there is a token.
    cookie: Option<String>,
    /// The inbox forms' token (random per server).
    form_token: String,
    templates: minijinja::Environment<'static>,
}

/// The handlers' state.
#[derive(Clone)]
pub(crate) struct App(Arc<AppInner>);

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// One route: method, path (axum syntax, as in the OpenAPI document) and handler.
pub(crate) type Route = (Method, &'static str, axum::routing::MethodRouter<App>);

/// Every route the server answers (the OpenAPI document is checked against this list).
pub(crate) fn routes() -> Vec<Route> {
    let mut r = api::routes();
    r.extend(inbox::routes());
    r
}

/// 32 random bytes as hex.
fn random_hex() -> String {
    use rand::Rng;
    let mut b = [0u8; 32];
    rand::rng().fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running server. Stops (cancelling its sessions) on [`Server::shutdown`] or when dropped.
pub struct Server {
    addr: SocketAddr,
    app: App,
    ct: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cancel every session and stop serving.
    pub async fn shutdown(mut self) {
        self.app.sessions.cancel_all();
        self.ct.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.app.sessions.cancel_all();
        self.ct.cancel();
    }
}

/// Start serving sessions of `runtimes` as `cfg` says.
pub async fn serve(runtimes: Arc<Runtimes>, cfg: ServerConfig) -> Result<Server, ServerError> {
    crate::auth::check_listen(
        "the bosun API",
        &cfg.listen,
        cfg.token.as_deref(),
        "BOSUN_SERVE_TOKEN",
    )?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: cfg.listen.clone(),
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: cfg.listen.clone(),
            source,
        })?;
    let app = App(Arc::new(AppInner {
        runtimes,
        sessions: sessions::Sessions::new(cfg.max_sessions, cfg.keep_sessions),
        cookie: cfg.token.as_deref().map(access::cookie_value),
        token: cfg.token.clone(),
        form_token: random_hex(),
        templates: inbox::templates()?,
    }));
    let mut router = axum::Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            access::access,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(cfg.max_body))
        .with_state(app.clone());
    let ct = tokio_util::sync::CancellationToken::new();
    let stop = ct.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled_owned().await })
            .await;
    });
    Ok(Server {
        addr,
        app,
        ct,
        task: Some(task),
    })
}
