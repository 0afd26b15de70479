//! `locksmith serve`: every repository refreshed in the background on its own interval,
//! and the last state of each served at once (`/metrics`, `/locks`, `/`, `/healthz`) —
//! a scrape never waits for a backend.

pub mod page;

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

async fn watch_loop(member: Member, status: Arc<Mutex<Status>>, host: Arc<ThisHost>) {
    let mut watch = Watch::new(member.options.clone(), member.resolved.clone());
    loop {
        let started = std::time::Instant::now();
        let got = refresh_within(&mut watch, host.as_ref()).await;
        let took = started.elapsed().as_secs_f64();
        {
            let mut s = status.lock().expect("not poisoned");
            s.duration = Some(took);
            s.costs = watch.costs;
            if let Some(m) = watch.masked() {
                s.location = Some(m);
            }
            match got {
                Ok(report) => {
                    s.report = Some(Arc::new(report));
                    s.refreshed_at = Some(Utc::now());
                    if s.error.take().is_some() {
                        log(&format!("{}: refreshes again", member.name));
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    if s.error_text().as_deref() != Some(why.as_str()) {
                        log(&format!("{}: refresh failed: {why}", member.name));
                    }
                    s.error = Some(Arc::new(e));
                }
            }
        }
        tokio::time::sleep(jittered(member.interval)).await;
    }
}

fn start(member: Member, host: &Arc<ThisHost>) -> Slot {
    let status = Arc::new(Mutex::new(Status {
        name: member.name.clone(),
        ..Status::default()
    }));
    let task = tokio::spawn(watch_loop(member.clone(), status.clone(), host.clone()));
    Slot {
        member,
        status,
        task,
    }
}

/// Replaces the watched set: unchanged repositories keep their task and state (their key
/// and what they read), the rest start anew, and removed ones stop.
fn apply(old: Vec<Slot>, members: Vec<Member>, host: &Arc<ThisHost>, shared: &Shared) -> Vec<Slot> {
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
            None => slots.push(start(m, host)),
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
        m.options.rereads_password = true;
    }
    Ok(members)
}

fn members_as_given(source: &Source) -> Result<Vec<Member>, Error> {
    match source {
        Source::One { options, interval } => {
            let options = RawRepoOptions {
                rereads_password: true,
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
        } => Ok(fleet::load(path, env, *defaults)?),
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
    let members = match members(&opts.source) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("locksmith: {}", crate::printable::printable(&e.to_string()));
            return e.exit();
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let exit = rt.block_on(serve(opts, members));
    // A password command still running in a blocking thread must not hold the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    exit
}

async fn serve(opts: &ServeOptions, initial: Vec<Member>) -> Exit {
    use tokio::signal::unix::{SignalKind, signal};
    let listener = match tokio::net::TcpListener::bind(opts.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("locksmith: cannot listen on {}: {e}", opts.listen);
            return Exit::Other;
        }
    };
    let host = Arc::new(ThisHost::new());
    let shared = Arc::new(Shared::default());
    let mut slots = apply(Vec::new(), initial, &host, &shared);
    log(&format!(
        "listening on http://{} ({} repositor{})",
        listener.local_addr().unwrap_or(opts.listen),
        slots.len(),
        if slots.len() == 1 { "y" } else { "ies" }
    ));
    let app = axum::Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/locks", get(locks_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(page_handler))
        .with_state(shared.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        eprintln!("locksmith: cannot install signal handlers");
        return Exit::Other;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match &opts.source {
                Source::File { path, .. } => match members(&opts.source) {
                    Ok(m) => {
                        slots = apply(slots, m, &host, &shared);
                        log(&format!("reloaded {} ({} repositories)", path.display(), slots.len()));
                    }
                    Err(why) => log(&format!("reload failed, keeping the previous configuration: {why}")),
                },
                Source::One { .. } => log("SIGHUP: nothing to reload without --config"),
            },
        }
    }
    for s in &slots {
        s.task.abort();
    }
    let _ = stop_tx.send(());
    // Open connections get a moment to finish; the process ends within a second regardless.
    let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
    for s in slots {
        let _ = s.task.await;
    }
    log("stopped");
    Exit::Ok
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::repositories(&shared.snapshot()),
    )
}

async fn locks_handler(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let snap = shared.snapshot();
    (
        [(header::CONTENT_TYPE, "application/json")],
        Document::of(&snap).render(),
    )
}

async fn page_handler(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let reload = shared.reload.load(std::sync::atomic::Ordering::Relaxed);
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page::render(&shared.snapshot(), Utc::now(), reload),
    )
}
