//! `locksmith agent`: this host's answers about its own processes, for the locksmith of
//! other hosts that share a repository with it. No repository, no password; the same
//! listener as serve (web configuration, Host allow-list, limits), loopback by default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{http, web};
use crate::exit::Exit;
use crate::peer::answer::{self, Question};

/// Where `agent` listens unless told otherwise: loopback only.
pub const DEFAULT_AGENT_LISTEN: &str = "127.0.0.1:9857";

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub listen: SocketAddr,
    pub web_config: Option<PathBuf>,
    pub allowed_hosts: Vec<String>,
}

/// The answer at [`answer::PATH`]: `?pid=1,2&group=3`.
pub async fn host_handler(
    axum::Extension(http::Authenticated(asker_known)): axum::Extension<http::Authenticated>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let q = match Question::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(q) => q,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    };
    // /proc reads: off the runtime's threads.
    let got = tokio::task::spawn_blocking(move || {
        let full = answer::answer(&q, &crate::process::ThisHost::new());
        if asker_known {
            full
        } else {
            full.for_anyone(q.since)
        }
    })
    .await;
    match got {
        Ok(a) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&a).expect("serialisable") + "\n",
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn log(line: &str) {
    eprintln!("locksmith agent: {}", crate::printable::printable(line));
}

/// Runs until SIGTERM or SIGINT.
pub fn run(opts: &AgentOptions) -> Exit {
    let Some(web) = super::web_config(opts.web_config.as_deref()) else {
        return Exit::Config;
    };
    super::listener_runtime().block_on(serve(opts, web))
}

async fn serve(opts: &AgentOptions, web: web::WebConfig) -> Exit {
    let listener = match tokio::net::TcpListener::bind(opts.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("locksmith: cannot listen on {}: {e}", opts.listen);
            return Exit::Other;
        }
    };
    let limits = http::Limits {
        max_connections: http::connection_budget(),
        ..http::Limits::default()
    };
    let web = web::LiveWeb::new(opts.web_config.as_deref(), web);
    let guard = http::Guard {
        web: web.clone(),
        hosts: http::AllowedHosts::new(&opts.allowed_hosts, opts.listen, "agent"),
        in_flight: Arc::new(tokio::sync::Semaphore::new(limits.max_requests)),
    };
    let app = axum::Router::new()
        .route(answer::PATH, get(host_handler))
        .route("/-/healthy", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn_with_state(guard, http::guard));
    log(&format!(
        "agent for {:?} listening on {}://{}",
        crate::process::local_hostname(),
        if web.current().tls.is_some() {
            "https"
        } else {
            "http"
        },
        listener.local_addr().unwrap_or(opts.listen),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = tokio::spawn(http::serve(
        listener,
        app,
        web.clone(),
        limits,
        open,
        stop_rx,
    ));
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("locksmith: cannot install signal handlers");
        return Exit::Other;
    };
    // SIGHUP re-reads the web configuration (a renewed certificate, changed users).
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => log(&web.reload().await.unwrap_or_else(|| "SIGHUP: nothing to reload without --web-config".into())),
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
    log("stopped");
    Exit::Ok
}
