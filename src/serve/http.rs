//! serve's listener, for a port any local user can reach: TLS and basic auth from the web
//! configuration, a Host allow-list against DNS rebinding, security headers, and limits —
//! connections, requests in flight, time to send headers, a connection's lifetime — so
//! that idle or trickling clients cannot take the scrape away.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::web::{LiveWeb, WebConfig, san_allowed};

/// What one client may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests being answered at once; past it, 503 (exporter-toolkit's default is 40).
    pub max_requests: usize,
    /// Time to send a request's headers (also the longest idle wait between requests).
    pub header_timeout: Duration,
    /// Time for a TLS handshake.
    pub handshake_timeout: Duration,
    /// A connection's whole life; a scraper opens another.
    pub lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            max_requests: 40,
            header_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(300),
        }
    }
}

/// Raises the soft limit on open files to the hard one (as Go programs do), and returns
/// the connections that leave room for the refreshes' own files.
pub fn connection_budget() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.maximum > limit.current {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    let soft = getrlimit(Resource::Nofile).current.unwrap_or(1 << 20);
    (soft.saturating_sub(256) as usize).clamp(16, 16384)
}

/// The Host names a request may carry, where that matters: DNS rebinding lets a web page
/// reach a listener on loopback only through a browser, and only without credentials or
/// TLS. There: IP literals always (rebinding needs a DNS name), `localhost`, this host's
/// name, and what `--allowed-hosts` adds (`*`: any). Beyond loopback any name passes, as
/// with every exporter (Prometheus targets, compose service names, FQDNs).
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    names: Vec<String>,
    any: bool,
    /// Names refused so far, each logged once (at most [`LOGGED_NAMES`]).
    logged: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Whose log: `serve` or `agent`.
    who: &'static str,
}

/// The most refused names logged: the log must not grow with what clients send.
const LOGGED_NAMES: usize = 64;

impl AllowedHosts {
    /// `listen`: the listener's address; beyond loopback, every name is allowed.
    pub fn new(extra: &[String], listen: std::net::SocketAddr, who: &'static str) -> AllowedHosts {
        let mut names = vec!["localhost".to_string(), crate::process::local_hostname()];
        names.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()));
        AllowedHosts {
            any: extra.iter().any(|h| h.trim() == "*") || !listen.ip().is_loopback(),
            names,
            logged: Arc::default(),
            who,
        }
    }

    /// `host` as the Host header carries it (with a port, an IPv6 literal in brackets).
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let name = name_of(host);
        name.parse::<IpAddr>().is_ok() || self.names.contains(&name)
    }

    /// The refusal of `host`: logged the first time, with the flag that allows it.
    fn refusal(&self, host: &str) -> String {
        let name = crate::printable::printable(&name_of(host)).into_owned();
        let why = format!(
            "Host {name:?} is not one this loopback listener answers for (DNS rebinding): start it with --allowed-hosts {name}, or listen beyond loopback, or require credentials or TLS (--web-config)"
        );
        if let Ok(mut seen) = self.logged.lock()
            && seen.len() < LOGGED_NAMES
            && seen.insert(name.clone())
        {
            eprintln!("locksmith {}: refused a request: {why}", self.who);
        }
        why
    }
}

/// The name of a Host header's value, lower case, without its port or a final dot.
fn name_of(host: &str) -> String {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// What every request passes through before a handler sees it.
#[derive(Clone)]
pub struct Guard {
    pub web: LiveWeb,
    pub hosts: AllowedHosts,
    pub in_flight: Arc<Semaphore>,
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}

/// Credentials of an `Authorization: Basic` header.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Host allow-list, basic auth, requests in flight; then the security headers. Credentials
/// are checked before a request slot is taken: wrong passwords wait for their bcrypt turn
/// without holding a slot a scraper needs.
pub async fn guard(State(g): State<Guard>, mut req: Request, next: Next) -> Response {
    let web = g.web.current();
    let guarded = !web.requires_auth() && web.tls.is_none();
    if let Some(host) = req.headers().get(header::HOST)
        && guarded
        && !host.to_str().is_ok_and(|h| g.hosts.allows(h))
    {
        let host = String::from_utf8_lossy(host.as_bytes()).into_owned();
        return refuse(StatusCode::MISDIRECTED_REQUEST, &g.hosts.refusal(&host));
    }
    if web.requires_auth() {
        let ok = match basic_credentials(&req) {
            Some((u, p)) => web.check(u, p).await,
            None => false,
        };
        if !ok {
            let mut r = refuse(StatusCode::UNAUTHORIZED, "unauthorized");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"locksmith\""),
            );
            return with_headers(r, &web);
        }
    }
    req.extensions_mut()
        .insert(Authenticated(web.authenticates()));
    let Ok(permit) = g.in_flight.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in flight",
        );
    };
    hold_until_sent(with_headers(next.run(req).await, &web), permit)
}

/// `r`, keeping `held` (a request slot) until its body is sent or the client is gone: a
/// client that never reads its answer keeps its slot, so it cannot pile up answers.
pub fn hold_until_sent<T: Send + Sync + Unpin + 'static>(r: Response, held: T) -> Response {
    r.map(|body| axum::body::Body::new(Holding { body, _held: held }))
}

struct Holding<T> {
    body: axum::body::Body,
    _held: T,
}

impl<T: Unpin> axum::body::HttpBody for Holding<T> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Whether the request was authenticated (basic auth, or a verified client certificate):
/// the agent tells command names and start times only then.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub bool);

/// No sniffing, no framing, no scripts, no caching; then the web configuration's own.
fn with_headers(mut r: Response, web: &WebConfig) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (k, v) in &web.headers {
        h.insert(k.clone(), v.clone());
    }
    r
}

/// Accepts connections until `stop` fires, each served within `limits`.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    web: LiveWeb,
    limits: Limits,
    open: Arc<std::sync::atomic::AtomicUsize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            _ = stop.changed() => return,
            p = slots.clone().acquire_owned() => p.expect("never closed"),
        };
        let tcp = tokio::select! {
            _ = stop.changed() => return,
            got = listener.accept() => match got {
                Ok((tcp, _)) => tcp,
                // Out of files (EMFILE) or a connection reset before accept: wait a moment.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // The configuration in force when the connection came: its certificate and users.
        let (app, web, open) = (app.clone(), web.current(), open.clone());
        let counted = Open::count(open);
        tokio::spawn(async move {
            // Dropped however the connection ends (a panicking handler included).
            let _counted = counted;
            let _permit = permit;
            connection(tcp, app, web, limits).await;
        });
    }
}

/// One open connection in the gauge, for as long as it lives.
struct Open(Arc<std::sync::atomic::AtomicUsize>);

impl Open {
    fn count(open: Arc<std::sync::atomic::AtomicUsize>) -> Open {
        open.fetch_add(1, Relaxed);
        Open(open)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

async fn connection(tcp: tokio::net::TcpStream, app: axum::Router, web: WebConfig, limits: Limits) {
    let _ = tcp.set_nodelay(true);
    let Some(tls) = web.tls.clone() else {
        return http(tcp, app, limits).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let Ok(Ok(stream)) = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await
    else {
        return;
    };
    if let Some(allowed) = &web.allowed_sans {
        let ok = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .is_some_and(|c| san_allowed(c, allowed));
        if !ok {
            return;
        }
    }
    http(stream, app, limits).await
}

async fn http<I>(io: I, app: axum::Router, limits: Limits)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 << 10)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let _ = tokio::time::timeout(limits.lifetime, conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_a_rebinding_page_would_send_are_refused() {
        let loopback = "127.0.0.1:9856".parse().unwrap();
        let h = AllowedHosts::new(&["metrics.example.org".into()], loopback, "serve");
        for ok in [
            "127.0.0.1:9856",
            "[::1]:9856",
            "localhost:9856",
            "10.1.2.3",
            "metrics.example.org:443",
            "LOCALHOST",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example.com:9856",
            "127.0.0.1.evil.example.com",
            "localhost.evil.com",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
        assert!(AllowedHosts::new(&["*".into()], loopback, "serve").allows("anything.example"));
        let beyond = "0.0.0.0:9856".parse().unwrap();
        for name in ["backup-1.example.org:9856", "locksmith:9856", "hostb"] {
            assert!(
                AllowedHosts::new(&[], beyond, "serve").allows(name),
                "{name}"
            );
            assert!(!h.allows(name), "{name} on loopback");
        }
        let why = h.refusal("locksmith:9856");
        assert!(why.contains("--allowed-hosts locksmith"), "{why}");
    }
}
