//! How locksmith behaves over a network: bounded concurrency, a time limit per request,
//! retries with backoff for what may pass (5xx, 429, timeouts, resets) and none for what
//! will not (authentication, not found).

use std::future::Future;
use std::time::Duration;

use super::BackendError;

/// How the backends behave over a network, as resolved from the options.
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

/// The one retry policy (backon's exponential backoff): 100 ms, 200 ms, 400 ms … at most
/// 2 s between attempts, `retries` further attempts. OpenDAL's retry layer is set alike.
pub fn policy(retries: u32) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_factor(2.0)
        .with_max_times(retries as usize)
}

/// Runs `op` until it succeeds, fails finally, or has been retried `net.retries` times.
pub async fn with_retries<T, F, Fut>(net: &NetOptions, mut op: F) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    use backon::Retryable;
    use std::sync::atomic::{AtomicU32, Ordering};
    let attempts = AtomicU32::new(0);
    let counted = || {
        attempts.fetch_add(1, Ordering::Relaxed);
        op()
    };
    match counted
        .retry(policy(net.retries))
        .sleep(tokio::time::sleep)
        .when(|e| matches!(e, Attempt::Transient(_)))
        .await
    {
        Ok(v) => Ok(v),
        Err(Attempt::Final(e)) => Err(e),
        Err(Attempt::Transient(why)) => Err(BackendError::GaveUp {
            why,
            attempts: attempts.load(Ordering::Relaxed),
        }),
    }
}

/// Sends the request `make` builds, again after a transient failure (no connection, a
/// time-out, 5xx, 429) under the one policy; any other answer is the caller's to judge.
/// For the logins of B2 and Keystone, which precede the backend proper.
pub async fn send(
    what: &str,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    use reqwest::StatusCode as S;
    with_retries(&NetOptions::default(), || async {
        let resp = make()
            .send()
            .await
            .map_err(|e| transport_attempt(what, e))?;
        let s = resp.status();
        if s.is_server_error() || s == S::TOO_MANY_REQUESTS {
            return Err(Attempt::Transient(format!("{what}: server answered {s}")));
        }
        Ok(resp)
    })
    .await
    .map_err(|e| e.to_string())
}

/// Classifies an HTTP status: `None` for success.
pub fn status_attempt(what: &str, status: reqwest::StatusCode) -> Option<Attempt> {
    use reqwest::StatusCode as S;
    match status {
        s if s.is_success() => None,
        S::NOT_FOUND => Some(Attempt::Final(BackendError::NotFound)),
        S::UNAUTHORIZED | S::FORBIDDEN => Some(Attempt::Final(BackendError::Denied {
            what: what.to_string(),
            detail: format!("authentication failed ({status})"),
        })),
        s if s.is_server_error() || s == S::TOO_MANY_REQUESTS || s == S::REQUEST_TIMEOUT => Some(
            Attempt::Transient(format!("{what}: server answered {status}")),
        ),
        s => Some(Attempt::Final(BackendError::Status {
            what: what.to_string(),
            status: s.as_u16(),
        })),
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
