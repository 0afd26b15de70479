//! `locksmith serve`: every repository refreshed in the background on its own interval,
//! and the last state of each served at once (`/metrics`, `/locks`, `/`, `/healthz`) —
//! a scrape never waits for a backend.

pub mod agent;
pub mod http;
pub mod page;
pub mod state;
pub mod timeline;
pub mod web;

pub use state::HistoryOptions;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::Utc;
use tokio::task::JoinHandle;

use crate::config::RawRepoOptions;
use crate::error::Error;
use crate::exit::Exit;
use crate::fleet::{self, Member};
use crate::process::ThisHost;
use crate::report::{Document, Status, metrics};
use crate::watch::{Watch, refresh_within};

/// Where `serve` listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9856";

/// What is watched: one repository from the usual options, or a fleet file.
#[derive(Debug, Clone)]
pub enum Source {
    One {
        options: Box<RawRepoOptions>,
        interval: Duration,
    },
    File {
        path: PathBuf,
        /// The process's backend variables, under each repository's own `env`.
        env: std::collections::BTreeMap<String, String>,
        /// Where the file sets no interval or deadline (`--interval`, `--deadline`).
        defaults: fleet::Defaults,
    },
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub source: Source,
    /// The exporter web configuration (TLS, basic auth, headers).
    pub web_config: Option<PathBuf>,
    /// Host names answered besides IP literals, `localhost` and this host's name.
    pub allowed_hosts: Vec<String>,
    /// Requests answered at once (`None`: 40).
    pub max_requests: Option<usize>,
    /// Connections open at once (`None`: what the open-files limit leaves room for).
    pub max_connections: Option<usize>,
    /// Time to send a request's headers, and the longest idle wait (`None`: 10 s).
    pub header_timeout: Option<Duration>,
    /// The history and last readings (`None`: `--no-history`).
    pub history: Option<HistoryOptions>,
    /// Whether other hosts may ask about this host's processes ([`crate::peer::answer::PATH`]).
    pub agent: bool,
}

impl ServeOptions {
    /// The listener's limits: the defaults, and what was asked.
    fn limits(&self) -> http::Limits {
        let d = http::Limits::default();
        http::Limits {
            max_requests: self.max_requests.unwrap_or(d.max_requests),
            max_connections: self.max_connections.unwrap_or_else(http::connection_budget),
            header_timeout: self.header_timeout.unwrap_or(d.header_timeout),
            ..d
        }
    }
}

struct Slot {
    member: Member,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    statuses: RwLock<Vec<Arc<Mutex<Status>>>>,
    /// The status page reloads at the shortest interval (at least every 5 s, at most 60 s).
    reload: std::sync::atomic::AtomicU64,
    /// Connections open to the listener, and the most it holds.
    connections: Arc<std::sync::atomic::AtomicUsize>,
    max_connections: std::sync::atomic::AtomicUsize,
    /// The history, where one is kept.
    kept: Option<Arc<state::Kept>>,
    /// The fleet's peers, replaced whole on reload; every repository asks the current set.
    peers: Arc<RwLock<Arc<crate::peer::Peers>>>,
}

impl Shared {
    fn snapshot(&self) -> Vec<Status> {
        self.statuses
            .read()
            .expect("not poisoned")
            .iter()
            .map(|s| s.lock().expect("not poisoned").clone())
            .collect()
    }
}

fn log(line: &str) {
    eprintln!("locksmith serve: {}", crate::printable::printable(line));
}

/// `interval` give or take a tenth, so a fleet started together does not refresh in step.
fn jittered(interval: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let unit = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX); // 0..=1
    interval.mul_f64(0.9 + 0.2 * unit)
}

async fn watch_loop(
    member: Member,
    status: Arc<Mutex<Status>>,
    host: Arc<ThisHost>,
    kept: Option<Arc<state::Kept>>,
    peers: Arc<RwLock<Arc<crate::peer::Peers>>>,
) {
    let mut watch = Watch::new(member.options.clone(), member.resolved.clone());
    let mut keeping = kept.and_then(|k| {
        let (keeping, restored) = tokio::task::block_in_place(|| k.keeping(&member.name))?;
        watch.resume(restored.lives);
        if let Some((report, at)) = restored.reading {
            let mut s = status.lock().expect("not poisoned");
            s.report = Some(Arc::new(report));
            s.refreshed_at = Some(at);
            s.restored = true;
        }
        Some(keeping)
    });
    loop {
        watch.use_peers(peers.read().expect("not poisoned").clone());
        let started = std::time::Instant::now();
        let got = refresh_within(&mut watch, host.as_ref()).await;
        let took = started.elapsed().as_secs_f64();
        let delay = jittered(watch.next_delay(member.interval));
        if let Some(k) = &mut keeping {
            k.record(&member.name, &got, &watch.take_changes());
        }
        {
            let mut s = status.lock().expect("not poisoned");
            s.duration = Some(took);
            s.costs = watch.costs;
            s.exclusive_held_seconds = Some(watch.exclusive_held_seconds());
            s.history_failures = keeping.as_ref().map(|k| k.failures);
            s.retry_at = (delay > member.interval.mul_f64(1.1))
                .then(|| Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default());
            if let Some(m) = watch.masked() {
                s.location = Some(m);
            }
            settle(&mut s, &member.name, got);
        }
        wait_or_new_password(&watch, delay, member.interval).await;
    }
}

/// Sleeps `delay`; while backing off from a wrong password, looks at the password file
/// every `interval` and ends the wait as soon as it changed: a fixed password is tried at
/// the next interval, whatever the backoff.
async fn wait_or_new_password(watch: &Watch, delay: Duration, interval: Duration) {
    if !watch.backing_off() {
        return tokio::time::sleep(delay).await;
    }
    let source = watch.password_source().await;
    let until = tokio::time::Instant::now() + delay;
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            return;
        }
        tokio::time::sleep((until - now).min(interval)).await;
        if watch.password_source().await != source {
            return;
        }
    }
}

/// The refresh's outcome into the repository's status, and a log line where it changed.
fn settle(s: &mut Status, name: &str, got: Result<crate::report::Report, Error>) {
    match got {
        Ok(report) => {
            let before = s.report.as_ref().map_or(&[][..], |r| &r.peers[..]);
            for line in peer_changes(before, &report.peers) {
                log(&format!("{name}: {line}"));
            }
            s.report = Some(Arc::new(report));
            s.refreshed_at = Some(Utc::now());
            s.restored = false;
            if s.error.take().is_some() {
                log(&format!("{name}: refreshes again"));
            }
        }
        Err(e) => {
            let why = e.to_string();
            if s.error_text().as_deref() != Some(why.as_str()) {
                log(&format!("{name}: refresh failed: {why}"));
            }
            s.error = Some(Arc::new(e));
        }
    }
}

/// A line for each peer whose answering changed since the last reading (and for one
/// asked the first time that did not answer).
fn peer_changes(
    before: &[crate::peer::ask::PeerStatus],
    now: &[crate::peer::ask::PeerStatus],
) -> Vec<String> {
    now.iter()
        .filter_map(|p| {
            let was = before
                .iter()
                .find(|b| b.hostname == p.hostname)
                .map(|b| b.ok);
            match (was, p.ok) {
                (Some(false), true) => {
                    Some(format!("peer {} ({}) answers again", p.hostname, p.url))
                }
                (None | Some(true), false) => Some(format!(
                    "peer {} ({}) does not answer: {}; its locks cannot be judged",
                    p.hostname,
                    p.url,
                    p.error.as_deref().unwrap_or("no answer")
                )),
                _ => None,
            }
        })
        .collect()
}

fn start(member: Member, host: &Arc<ThisHost>, shared: &Shared) -> Slot {
    let status = Arc::new(Mutex::new(Status {
        name: member.name.clone(),
        ..Status::default()
    }));
    let kept = shared.kept.clone();
    let task = tokio::spawn(watch_loop(
        member.clone(),
        status.clone(),
        host.clone(),
        kept,
        shared.peers.clone(),
    ));
    Slot {
        member,
        status,
        task,
    }
}

/// Replaces the watched set: unchanged repositories keep their task and state (their key
/// and what they read), the rest start anew, and removed ones stop.
fn apply(old: Vec<Slot>, members: Vec<Member>, host: &Arc<ThisHost>, shared: &Shared) -> Vec<Slot> {
    // One fleet-wide set of peers (every member carries the same): the new one, before any
    // task starts or refreshes again. Each agent is asked once per round (the shortest
    // interval), whatever the number of repositories.
    if let Some(m) = members.first() {
        let round = members.iter().map(|m| m.interval).min().unwrap_or_default();
        *shared.peers.write().expect("not poisoned") = Arc::new(m.options.peers.with_round(round));
    }
    let mut old: Vec<Option<Slot>> = old.into_iter().map(Some).collect();
    let mut slots = Vec::new();
    for m in members {
        let kept = old.iter_mut().find(|s| {
            s.as_ref().is_some_and(|s| {
                s.member.name == m.name
                    && s.member.entry == m.entry
                    && s.member.interval == m.interval
            })
        });
        match kept.and_then(Option::take) {
            Some(slot) => slots.push(slot),
            None => slots.push(start(m, host, shared)),
        }
    }
    for gone in old.into_iter().flatten() {
        gone.task.abort();
    }
    let shortest = slots
        .iter()
        .map(|s| s.member.interval.as_secs())
        .min()
        .unwrap_or(60);
    shared
        .reload
        .store(shortest.clamp(5, 60), std::sync::atomic::Ordering::Relaxed);
    *shared.statuses.write().expect("not poisoned") =
        slots.iter().map(|s| s.status.clone()).collect();
    slots
}

/// The members of `source`, or why they cannot be had (a configuration error). serve
/// reads passwords again after failures, so a password file must be a regular file.
pub fn members(source: &Source) -> Result<Vec<Member>, Error> {
    let mut members = members_as_given(source)?;
    for m in &mut members {
        m.options.regular_password_file = true;
    }
    Ok(members)
}

fn members_as_given(source: &Source) -> Result<Vec<Member>, Error> {
    match source {
        Source::One { options, interval } => {
            let options = RawRepoOptions {
                regular_password_file: true,
                ..(**options).clone()
            };
            let cfg = options.resolve()?;
            Ok(vec![Member {
                name: cfg.masked.to_string(),
                entry: fleet::Entry::default(),
                options,
                resolved: Some(cfg),
                interval: *interval,
            }])
        }
        Source::File {
            path,
            env,
            defaults,
        } => Ok(fleet::load(path, env, defaults.clone())?),
    }
}

/// Runs until SIGTERM or SIGINT. Configuration errors end it before anything listens.
pub fn run(opts: &ServeOptions) -> Exit {
    #[cfg(target_os = "linux")]
    {
        // Keys stay in memory for the process's life: keep them out of core dumps and
        // away from ptrace by other processes of the same user.
        let _ =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    }
    let Some(web) = web_config(opts.web_config.as_deref()) else {
        return Exit::Config;
    };
    let members = match members(&opts.source) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("locksmith: {}", crate::printable::printable(&e.to_string()));
            return e.exit();
        }
    };
    let kept = match opts.history.as_ref().map(state::Kept::open).transpose() {
        Ok(kept) => kept.flatten().map(Arc::new),
        Err(e) => {
            eprintln!("locksmith: {}", crate::printable::printable(&e.to_string()));
            return Exit::Config;
        }
    };
    let rt = listener_runtime();
    let exit = rt.block_on(serve(opts, web, members, kept));
    // A password command still running in a blocking thread must not hold the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    exit
}

/// The web configuration named (or none: plain HTTP, no auth); `None` after saying why it
/// cannot be used.
pub(crate) fn web_config(path: Option<&std::path::Path>) -> Option<web::WebConfig> {
    match path.map(web::WebConfig::load) {
        None => Some(web::WebConfig::default()),
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => {
            eprintln!("locksmith: {}", crate::printable::printable(&e.to_string()));
            None
        }
    }
}

/// Two worker threads: the answers never wait for a refresh in progress.
pub(crate) fn listener_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// The endpoints, every one behind the guard.
fn router(shared: Arc<Shared>, guard: http::Guard, agent: bool) -> axum::Router {
    let app = axum::Router::new();
    let app = match agent {
        true => app.route(crate::peer::answer::PATH, get(agent::host_handler)),
        false => app,
    };
    app.route("/metrics", get(metrics_handler))
        .route("/locks", get(locks_handler))
        .route("/api/v1/history", get(history_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/-/healthy", get(|| async { "ok\n" }))
        .route("/-/ready", get(ready_handler))
        .route("/", get(page_handler))
        .with_state(shared)
        .layer(axum::middleware::from_fn_with_state(guard, http::guard))
}

async fn serve(
    opts: &ServeOptions,
    web: web::WebConfig,
    initial: Vec<Member>,
    kept: Option<Arc<state::Kept>>,
) -> Exit {
    let listener = match tokio::net::TcpListener::bind(opts.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("locksmith: cannot listen on {}: {e}", opts.listen);
            return Exit::Other;
        }
    };
    let host = Arc::new(ThisHost::new());
    let pruning = kept.clone().map(|k| tokio::spawn(k.prune_hourly()));
    let shared = Arc::new(Shared {
        kept,
        ..Shared::default()
    });
    let slots = apply(Vec::new(), initial, &host, &shared);
    let limits = opts.limits();
    log(&format!(
        "listening on {}://{} ({} repositor{}; at most {} connections, {} requests at once)",
        if web.tls.is_some() { "https" } else { "http" },
        listener.local_addr().unwrap_or(opts.listen),
        slots.len(),
        if slots.len() == 1 { "y" } else { "ies" },
        limits.max_connections,
        limits.max_requests,
    ));
    let web = web::LiveWeb::new(opts.web_config.as_deref(), web);
    let guard = http::Guard {
        web: web.clone(),
        hosts: http::AllowedHosts::new(&opts.allowed_hosts, opts.listen, "serve"),
        in_flight: Arc::new(tokio::sync::Semaphore::new(limits.max_requests)),
    };
    let app = router(shared.clone(), guard, opts.agent);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    shared
        .max_connections
        .store(limits.max_connections, std::sync::atomic::Ordering::Relaxed);
    let open = shared.connections.clone();
    let server = tokio::spawn(http::serve(
        listener,
        app,
        web.clone(),
        limits,
        open,
        stop_rx,
    ));
    let Some(slots) = until_stopped(opts, slots, &host, &shared, &web).await else {
        eprintln!("locksmith: cannot install signal handlers");
        return Exit::Other;
    };
    for s in &slots {
        s.task.abort();
    }
    if let Some(p) = pruning {
        p.abort();
    }
    let _ = stop_tx.send(true);
    // Open connections get a moment to finish; the process ends within a second regardless.
    let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
    for s in slots {
        let _ = s.task.await;
    }
    log("stopped");
    Exit::Ok
}

/// Reloads on SIGHUP (the fleet file and the web configuration) until SIGTERM or SIGINT;
/// the repositories watched by then.
async fn until_stopped(
    opts: &ServeOptions,
    mut slots: Vec<Slot>,
    host: &Arc<ThisHost>,
    shared: &Shared,
    web: &web::LiveWeb,
) -> Option<Vec<Slot>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return None;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Some(said) = web.reload().await {
                    log(&said);
                }
                match &opts.source {
                    Source::File { path, .. } => match members(&opts.source) {
                        Ok(m) => {
                            slots = apply(slots, m, host, shared);
                            log(&format!("reloaded {} ({} repositories)", path.display(), slots.len()));
                        }
                        Err(why) => log(&format!("reload failed, keeping the previous configuration: {why}")),
                    },
                    Source::One { .. } if opts.web_config.is_some() => {}
                    Source::One { .. } => log("SIGHUP: nothing to reload without --config or --web-config"),
                }
            }
        }
    }
    Some(slots)
}

/// Ready once every repository was read, or failed, once.
async fn ready_handler(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let snap = shared.snapshot();
    let waiting = snap
        .iter()
        .filter(|s| (s.refreshed_at.is_none() || s.restored) && s.error.is_none())
        .count();
    match waiting {
        0 => (axum::http::StatusCode::OK, "ready\n".to_string()),
        n => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: {n} repositor{} not read yet\n",
                if n == 1 { "y" } else { "ies" }
            ),
        ),
    }
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::repositories(
            &shared.snapshot(),
            Some(metrics::Serving {
                open: shared
                    .connections
                    .load(std::sync::atomic::Ordering::Relaxed),
                max: shared
                    .max_connections
                    .load(std::sync::atomic::Ordering::Relaxed),
                usage: crate::process::own_usage(),
                set_aside: shared.kept.as_ref().map(|k| k.set_aside),
            }),
        ),
    )
}

async fn locks_handler(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let snap = shared.snapshot();
    (
        [(header::CONTENT_TYPE, "application/json")],
        Document::of(&snap).render(),
    )
}

async fn page_handler(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    let reload = shared.reload.load(std::sync::atomic::Ordering::Relaxed);
    let now = Utc::now();
    // The page is drawn without a timeline when the history cannot be read (or every
    // history slot is taken).
    let slot = shared.kept.as_ref().and_then(|k| k.answer_slot());
    let history = match (&shared.kept, &slot) {
        (Some(kept), Some(_)) => kept
            .read(now - timeline::SPAN, now, None, state::DEFAULT_LIVES)
            .await
            .ok(),
        _ => None,
    };
    let page = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page::render(&shared.snapshot(), now, reload, history.as_ref()),
    );
    http::hold_until_sent(page.into_response(), slot)
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    since: Option<String>,
    name: Option<String>,
    limit: Option<String>,
}

/// The history as `locksmith history --json` gives it (`?since=7d&name=NAME`).
async fn history_handler(
    State(shared): State<Arc<Shared>>,
    axum::extract::Query(q): axum::extract::Query<HistoryQuery>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let Some(kept) = shared.kept.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "no history: serve runs with --no-history or without a state directory\n",
        )
            .into_response();
    };
    let since = match crate::duration::parse_age(q.since.as_deref().unwrap_or("7d")) {
        Ok(d) => d,
        Err(why) => return (StatusCode::BAD_REQUEST, format!("since: {why}\n")).into_response(),
    };
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => state::DEFAULT_LIVES,
        Some(Ok(n)) if (1..=state::MAX_LIVES).contains(&n) => n,
        Some(_) => {
            let why = format!("limit: lives per repository, 1 to {}\n", state::MAX_LIVES);
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let Some(slot) = kept.answer_slot() else {
        let busy = "too many history answers in flight: try again\n";
        return (StatusCode::SERVICE_UNAVAILABLE, busy).into_response();
    };
    let now = Utc::now();
    let answer = match kept.read(now - since, now, q.name, limit).await {
        Ok(h) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string_pretty(&h).expect("a history serialises") + "\n",
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    http::hold_until_sent(answer, Some(slot))
}

#[cfg(test)]
mod tests {
    use crate::peer::ask::PeerStatus;

    fn peer(host: &str, ok: bool) -> PeerStatus {
        PeerStatus {
            hostname: host.into(),
            url: format!("http://{host}:9857"),
            ok,
            error: (!ok).then(|| "connection refused".into()),
            clock_offset_seconds: None,
            rtt_seconds: None,
        }
    }

    #[test]
    fn a_peer_s_state_change_is_one_log_line() {
        let up = [peer("hostb", true), peer("hostc", true)];
        let down = [peer("hostb", false), peer("hostc", true)];
        assert!(super::peer_changes(&up, &up).is_empty());
        assert_eq!(
            super::peer_changes(&up, &down),
            [
                "peer hostb (http://hostb:9857) does not answer: connection refused; its locks cannot be judged"
            ]
        );
        assert!(
            super::peer_changes(&down, &down).is_empty(),
            "once per change"
        );
        assert_eq!(
            super::peer_changes(&down, &up),
            ["peer hostb (http://hostb:9857) answers again"]
        );
        assert_eq!(
            super::peer_changes(&[], &down).len(),
            1,
            "down from the start"
        );
    }
}
