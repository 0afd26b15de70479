//! How locksmith behaves over a network: bounded concurrency, a time limit per request,
//! retries with backoff for what may pass (5xx, 429, timeouts, resets) and none for what
//! will not (authentication, not found).

use std::future::Future;
use std::time::Duration;

use super::BackendError;

#[derive(Debug, Clone)]
pub struct NetOptions {
    /// Requests in flight at once.
    pub connections: usize,
    /// Time limit of one request, body included.
    pub timeout: Duration,
    /// Further attempts after a transient failure.
    pub retries: u32,
    /// Time limit of a whole run's reading, however many requests and retries it takes.
    pub deadline: Duration,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            connections: 32,
            timeout: Duration::from_secs(30),
            retries: 4,
            deadline: Duration::from_secs(120),
        }
    }
}

/// A failed attempt: worth another try, or final.
pub enum Attempt {
    Transient(String),
    Final(BackendError),
}

/// Runs `op` until it succeeds, fails finally, or has been retried `retries` times,
/// waiting 100 ms, 200 ms, 400 ms … (at most 2 s) between attempts.
pub async fn with_retries<T, F, Fut>(net: &NetOptions, mut op: F) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let mut wait = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(Attempt::Final(e)) => return Err(e),
            Err(Attempt::Transient(why)) if attempt >= net.retries => {
                return Err(BackendError::Failed(format!(
                    "{why} (after {} attempts)",
                    attempt + 1
                )));
            }
            Err(Attempt::Transient(_)) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
                attempt += 1;
            }
        }
    }
}

/// Classifies an HTTP status: `None` for success.
pub fn status_attempt(what: &str, status: reqwest::StatusCode) -> Option<Attempt> {
    use reqwest::StatusCode as S;
    match status {
        s if s.is_success() => None,
        S::NOT_FOUND => Some(Attempt::Final(BackendError::NotFound)),
        S::UNAUTHORIZED | S::FORBIDDEN => Some(Attempt::Final(BackendError::Failed(format!(
            "{what}: authentication failed ({status}): check the credentials"
        )))),
        s if s.is_server_error() || s == S::TOO_MANY_REQUESTS || s == S::REQUEST_TIMEOUT => Some(
            Attempt::Transient(format!("{what}: server answered {status}")),
        ),
        s => Some(Attempt::Final(BackendError::Failed(format!(
            "{what}: server answered {s}"
        )))),
    }
}

/// A transport error, described without its URL (which may carry credentials).
pub fn transport_attempt(what: &str, e: reqwest::Error) -> Attempt {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_request() || e.is_decode() {
        "connection failed"
    } else {
        "request failed"
    };
    // The innermost cause says most ("connection refused"); none of them holds the URL.
    let mut cause: &dyn std::error::Error = &e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let detail = if std::ptr::addr_eq(cause, &e) {
        e.without_url().to_string()
    } else {
        cause.to_string()
    };
    Attempt::Transient(format!("{what}: {kind}: {detail}"))
}
