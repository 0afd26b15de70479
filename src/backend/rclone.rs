//! `rclone:remote:path`: rclone serves the remote over restic's REST protocol on a loopback
//! port for as long as locksmith runs. The port is never open to others: rclone requires
//! a user and password drawn at random for each start, handed over in its environment
//! (readable by its own user only), never on its command line (readable by everyone).
//! The repository's backend variables (`RCLONE_*`, a fleet member's `env`) reach it;
//! its stderr is kept for the error; a child that died is started again, with backoff.

use std::collections::{BTreeMap, VecDeque};
use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::NetOptions;
use super::rest::RestBackend;
use super::{Backend, BackendError, Dir, Entry};
use crate::secret::Secret;

pub const DECLARED: super::Declared = super::Declared {
    scheme: "rclone",
    options: &["rclone.program"],
    env_prefixes: &["RCLONE_"],
    secrets: &[],
};

/// Lines of rclone's stderr kept for the error.
const STDERR_LINES: usize = 20;
/// The first wait before a restart; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How to start rclone.
#[derive(Clone)]
struct Spec {
    remote: String,
    program: String,
    env: BTreeMap<String, String>,
    net: NetOptions,
}

/// One running `rclone serve restic`.
struct Served {
    child: Child,
    rest: Arc<RestBackend>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether rclone runs, and when it may be started again after it died.
struct State {
    served: Option<Served>,
    /// Why the last one ended, for the errors until the next start.
    ended: Option<String>,
    retry_at: Instant,
    backoff: Duration,
}

pub struct RcloneBackend {
    spec: Spec,
    state: tokio::sync::Mutex<State>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).expect("the system's random source");
    hex::encode(b)
}

fn tail(stderr: &Mutex<VecDeque<String>>) -> String {
    let lines = stderr.lock().expect("not poisoned");
    let text: Vec<&str> = lines.iter().map(String::as_str).collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", text.join(" / "))
    }
}

/// Keeps the last lines of `from` in `into`.
fn keep_stderr(from: std::process::ChildStderr, into: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            let mut lines = into.lock().expect("not poisoned");
            if lines.len() == STDERR_LINES {
                lines.pop_front();
            }
            lines.push_back(line.chars().take(500).collect());
        }
    });
}

impl Spec {
    /// Starts `PROGRAM serve restic --addr 127.0.0.1:PORT remote:path` (PROGRAM from
    /// `-o rclone.program`, default `rclone`) and waits until it listens.
    fn start(&self) -> Result<Served, String> {
        let program = &self.program;
        let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
        let (user, pass) = (random_token(), random_token());
        let mut child = Command::new(program)
            .args(["serve", "restic", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(&self.remote)
            .envs(&self.env)
            .env("RCLONE_USER", &user)
            .env("RCLONE_PASS", &pass)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        keep_stderr(child.stderr.take().expect("piped"), stderr.clone());
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(50)); // its last words
                return Err(format!(
                    "{program} serve restic exited ({st}){}",
                    tail(&stderr)
                ));
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} serve restic did not listen within 20 s{}",
                    tail(&stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let url = format!("http://127.0.0.1:{port}/");
        let rest = RestBackend::new(
            &url,
            Some(user),
            Some(Secret::new(pass)),
            &[],
            self.net.clone(),
        )?;
        Ok(Served {
            child,
            rest: Arc::new(rest),
            stderr,
        })
    }
}

impl RcloneBackend {
    /// Starts rclone for `remote`, with the repository's backend variables `env`.
    pub fn start(
        remote: &str,
        program: &str,
        env: &BTreeMap<String, String>,
        net: NetOptions,
    ) -> Result<RcloneBackend, String> {
        let spec = Spec {
            remote: remote.to_string(),
            program: program.to_string(),
            env: env.clone(),
            net,
        };
        let served = spec.start()?;
        Ok(RcloneBackend {
            spec,
            state: tokio::sync::Mutex::new(State {
                served: Some(served),
                ended: None,
                retry_at: Instant::now(),
                backoff: FIRST_BACKOFF,
            }),
        })
    }

    /// The running server: started again when it died and its backoff has passed.
    async fn rest(&self) -> Result<Arc<RestBackend>, BackendError> {
        let mut st = self.state.lock().await;
        if let Some(s) = &mut st.served
            && let Ok(Some(status)) = s.child.try_wait()
        {
            let why = format!(
                "{} serve restic exited ({status}){}",
                self.spec.program,
                tail(&s.stderr)
            );
            st.served = None;
            st.ended = Some(why);
            st.retry_at = Instant::now() + st.backoff;
        }
        if let Some(s) = &st.served {
            return Ok(s.rest.clone());
        }
        if Instant::now() < st.retry_at {
            let wait = st
                .retry_at
                .saturating_duration_since(Instant::now())
                .as_secs()
                + 1;
            let why = st.ended.clone().unwrap_or_default();
            return Err(BackendError::Other(format!(
                "{why}; starting it again in {wait} s"
            )));
        }
        let spec = self.spec.clone();
        let started = tokio::task::spawn_blocking(move || spec.start())
            .await
            .unwrap_or_else(|_| Err("rclone's start was interrupted".into()));
        match started {
            Ok(served) => {
                let rest = served.rest.clone();
                st.served = Some(served);
                st.ended = None;
                st.backoff = FIRST_BACKOFF;
                Ok(rest)
            }
            Err(why) => {
                st.ended = Some(why.clone());
                st.retry_at = Instant::now() + st.backoff;
                st.backoff = (st.backoff * 2).min(MAX_BACKOFF);
                Err(BackendError::Other(why))
            }
        }
    }
}

#[async_trait]
impl Backend for RcloneBackend {
    async fn read_config(&self) -> Result<Vec<u8>, BackendError> {
        self.rest().await?.read_config().await
    }
    async fn list(&self, dir: Dir) -> Result<Vec<Entry>, BackendError> {
        self.rest().await?.list(dir).await
    }
    async fn read(&self, dir: Dir, name: &str, limit: u64) -> Result<Vec<u8>, BackendError> {
        self.rest().await?.read(dir, name, limit).await
    }
}
