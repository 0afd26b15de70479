//! Shared helpers: repositories made by restic over temp dirs, and the two programs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};
use locksmith::backend::LocalBackend;
use locksmith::locks::Lock;
use locksmith::repo::Repository;
use locksmith::restic::kdf::KdfParams;
use locksmith::seal::Encoding;
use locksmith::secret::Secret;
use serde_json::Value;
use tempfile::TempDir;

/// Distinctive, so a leak is found by a plain substring search.
pub const PASSWORD: &str = "it-Secret-pw-5bd1e7";
/// Fast key parameters; restic reads them from the key file.
pub const LOW: KdfParams = KdfParams {
    n: 1024,
    r: 8,
    p: 1,
};

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One restic release the tests run.
#[derive(Debug, Clone)]
pub struct Restic {
    pub path: PathBuf,
    /// (major, minor, patch), from `restic version`.
    pub version: (u32, u32, u32),
}

impl Restic {
    pub fn at_least(&self, minor: u32) -> bool {
        self.version >= (0, minor, 0)
    }

    fn of(path: PathBuf) -> Restic {
        let out = Command::new(&path)
            .arg("version")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let text = String::from_utf8_lossy(&out.stdout);
        let v = text
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("{}: no version in {text:?}", path.display()));
        let n: Vec<u32> = v.split('.').map(|p| p.parse().unwrap()).collect();
        Restic {
            path,
            version: (n[0], n[1], n.get(2).copied().unwrap_or(0)),
        }
    }
}

impl std::fmt::Display for Restic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b, c) = self.version;
        write!(f, "restic {a}.{b}.{c}")
    }
}

/// Every restic the tests cover: the one on PATH (Debian bookworm's 0.14) and those in
/// `LOCKSMITH_RESTICS` (colon-separated paths; `scripts/test` fetches 0.18 and 0.19).
pub fn restics() -> &'static [Restic] {
    static ALL: OnceLock<Vec<Restic>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = vec![Restic::of(which("restic"))];
        match std::env::var("LOCKSMITH_RESTICS") {
            Ok(v) if !v.is_empty() => {
                all.extend(std::env::split_paths(&v).map(Restic::of));
            }
            _ => skip("newer restic releases: set LOCKSMITH_RESTICS (scripts/restic-versions)"),
        }
        all
    })
}

/// A `restic` command with no RESTIC_* from the caller's environment and a private cache.
pub fn restic_cmd(cache: &Path) -> Command {
    restic_cmd_of(Path::new("restic"), cache)
}

pub fn restic_cmd_of(program: &Path, cache: &Path) -> Command {
    let mut c = Command::new(program);
    clear_restic_env(&mut c);
    c.env("RESTIC_CACHE_DIR", cache).stdin(Stdio::null());
    c
}

pub fn clear_restic_env(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("RESTIC_") {
            c.env_remove(k);
        }
    }
}

pub fn locksmith_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_locksmith"));
    clear_restic_env(&mut c);
    // Never the history of the user running the tests.
    for v in ["LOCKSMITH_STATE_DIR", "STATE_DIRECTORY"] {
        c.env_remove(v);
    }
    c.env(
        "XDG_STATE_HOME",
        std::env::temp_dir().join("locksmith-tests-no-state"),
    );
    c.stdin(Stdio::null());
    c
}

/// `script` running the shell command `cmd` on a terminal of its own, in the environment
/// `like` (a locksmith command made ready for a repository) would run in.
pub fn on_terminal(cmd: &str, like: &Command) -> Command {
    let mut c = Command::new("script");
    c.args(["-qec", cmd, "/dev/null"]);
    for (k, v) in like.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// restic init is slow (it calibrates scrypt): one template per format version, whose
/// calibrated key is swapped for a low-N key with the same password.
fn template(version: u32) -> &'static Path {
    static V1: OnceLock<TempDir> = OnceLock::new();
    static V2: OnceLock<TempDir> = OnceLock::new();
    let cell = if version == 1 { &V1 } else { &V2 };
    cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let out = restic_cmd(&dir.path().join("cache"))
            .args([
                "init",
                "-q",
                "--repository-version",
                &version.to_string(),
                "-r",
            ])
            .arg(&repo)
            .env("RESTIC_PASSWORD", PASSWORD)
            .output()
            .expect("restic is installed (apt-get install -y restic)");
        assert!(out.status.success(), "restic init: {out:?}");
        let calibrated: Vec<_> = std::fs::read_dir(repo.join("keys")).unwrap().collect();
        let r = open_repo(&repo);
        let (id, bytes) = r.new_key_file(PASSWORD, LOW, "it", "it-host").unwrap();
        std::fs::write(repo.join("keys").join(id), bytes).unwrap();
        for k in calibrated {
            std::fs::remove_file(k.unwrap().path()).unwrap();
        }
        std::fs::remove_dir_all(dir.path().join("cache")).ok();
        dir
    })
    .path()
}

pub fn open_repo(path: &Path) -> Repository {
    rt().block_on(Repository::open(
        Arc::new(LocalBackend::new(path)),
        &Secret::new(PASSWORD),
        None,
    ))
    .unwrap()
}

/// A repository of its own for one test, in a temp dir.
pub struct TestRepo {
    pub dir: TempDir,
    pub path: PathBuf,
    pub password: String,
    pub key_hint: Option<String>,
    /// The restic this test runs (`restic` on PATH unless [`TestRepo::with`]).
    pub restic_bin: PathBuf,
    repo: OnceLock<Repository>,
}

impl TestRepo {
    pub fn new(version: u32) -> TestRepo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        copy_dir(&template(version).join("repo"), &path);
        TestRepo {
            dir,
            path,
            password: PASSWORD.into(),
            key_hint: None,
            restic_bin: PathBuf::from("restic"),
            repo: OnceLock::new(),
        }
    }

    /// A copy of `fixtures/NAME`, opened with `password.txt` through its low-N key.
    pub fn fixture(name: &str) -> TestRepo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        copy_dir(&fixture_dir().join(name), &path);
        let read = |f: &str| {
            std::fs::read_to_string(fixture_dir().join(f))
                .unwrap()
                .trim()
                .to_string()
        };
        TestRepo {
            dir,
            path,
            password: read("password.txt"),
            key_hint: Some(read(&format!("{name}.lowkey"))),
            restic_bin: PathBuf::from("restic"),
            repo: OnceLock::new(),
        }
    }

    /// The same repository, driven by another restic.
    pub fn with(mut self, restic: &Restic) -> TestRepo {
        self.restic_bin = restic.path.clone();
        self
    }

    pub fn repo(&self) -> &Repository {
        self.repo.get_or_init(|| {
            rt().block_on(Repository::open(
                Arc::new(LocalBackend::new(&self.path)),
                &Secret::new(self.password.clone()),
                self.key_hint.as_deref(),
            ))
            .unwrap()
        })
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.path.join("locks")
    }

    pub fn write_lock_file(&self, name: &str, bytes: &[u8]) {
        std::fs::create_dir_all(self.locks_dir()).unwrap();
        std::fs::write(self.locks_dir().join(name), bytes).unwrap();
    }

    /// A lock file as restic leaves it: stored when its `time` says (a time in the past
    /// becomes the file's modification time, the storage's clock agreeing with the
    /// writer's; [`TestRepo::seal_fresh`] makes them disagree).
    pub fn seal(&self, lock: &Lock, enc: Encoding) -> String {
        let id = self.seal_fresh(lock, enc);
        let at = std::time::SystemTime::from(lock.time);
        if at < std::time::SystemTime::now() {
            let f = std::fs::File::options()
                .write(true)
                .open(self.locks_dir().join(&id))
                .unwrap();
            f.set_modified(at).unwrap();
        }
        id
    }

    /// A lock file stored now, whatever its `time` (a writer whose clock is off).
    pub fn seal_fresh(&self, lock: &Lock, enc: Encoding) -> String {
        let (id, bytes) = self.repo().seal_lock(lock, enc);
        self.write_lock_file(&id, &bytes);
        id
    }

    pub fn lock_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.locks_dir())
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn restic(&self) -> Command {
        self.restic_by(&self.restic_bin)
    }

    /// The restic this test runs, as a path (for a shell inside a namespace).
    pub fn restic_path(&self) -> PathBuf {
        if self.restic_bin.is_absolute() {
            self.restic_bin.clone()
        } else {
            which("restic")
        }
    }

    /// A restic command for this repository, run by the given binary.
    pub fn restic_by(&self, program: &Path) -> Command {
        let mut c = restic_cmd_of(program, &self.dir.path().join("cache"));
        c.env("RESTIC_REPOSITORY", &self.path)
            .env("RESTIC_PASSWORD", &self.password);
        if let Some(h) = &self.key_hint {
            c.env("RESTIC_KEY_HINT", h);
        }
        c
    }

    pub fn locksmith(&self) -> Command {
        let mut c = locksmith_cmd();
        c.env("RESTIC_REPOSITORY", &self.path)
            .env("RESTIC_PASSWORD", &self.password);
        if let Some(h) = &self.key_hint {
            c.env("RESTIC_KEY_HINT", h);
        }
        c
    }

    /// `locksmith locks --json`, checked for success and for the password.
    pub fn locks_json(&self) -> Value {
        let out = self.locksmith().args(["locks", "--json"]).output().unwrap();
        assert_no_secret(&out, &self.password);
        assert!(out.status.success(), "locksmith: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `restic --no-lock cat lock ID`, parsed.
    pub fn cat_lock(&self, id: &str) -> Value {
        let out = self
            .restic()
            .args(["--no-lock", "cat", "lock", id])
            .output()
            .unwrap();
        assert!(out.status.success(), "restic cat lock {id}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The same, by another restic.
    pub fn cat_lock_with(&self, r: &Restic, id: &str) -> Value {
        let out = self
            .restic_by(&r.path)
            .args(["--no-lock", "cat", "lock", id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{r} cat lock {id}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn restic_ok(&self, args: &[&str]) -> String {
        let out = self.restic().args(args).output().unwrap();
        assert!(out.status.success(), "restic {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// A restic command that holds its lock while its stdin stays open.
    pub fn hold(&self, args: &[&str]) -> std::process::Child {
        let before = self.lock_names().len();
        let child = self
            .restic()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.wait_for_locks(before);
        child
    }

    /// Waits until `locks/` has more than `before` entries under their final names: a
    /// `-tmp-` upload is not done yet (restic still sets its mode before the rename).
    pub fn wait_for_locks(&self, before: usize) {
        let start = Instant::now();
        let done = || {
            self.lock_names()
                .iter()
                .filter(|n| locksmith::restic::is_id(n))
                .count()
        };
        while done() <= before {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no lock appeared within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn assert_no_secret(out: &Output, secret: &str) {
    let all = text(out);
    assert!(!all.contains(secret), "secret leaked:\n{all}");
}

pub fn lock_at(time: DateTime<FixedOffset>, host: &str, pid: i64) -> Lock {
    Lock {
        time,
        exclusive: false,
        hostname: host.into(),
        username: "bob".into(),
        pid,
        uid: 1234,
        gid: 1234,
    }
}

pub fn minutes_ago(m: i64) -> DateTime<FixedOffset> {
    (Utc::now() - chrono::Duration::minutes(m)).fixed_offset()
}

pub fn this_host() -> String {
    locksmith::process::local_hostname()
}

/// The lock objects of a report, by ID.
pub fn by_id(report: &Value) -> std::collections::BTreeMap<String, Value> {
    report["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l.clone()))
        .collect()
}

/// Every field of restic's view of a lock equals locksmith's (time as an instant).
pub fn assert_same_lock(ours: &Value, restic: &Value) {
    let t = |v: &Value| DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
    assert_eq!(t(ours), t(restic), "time: {ours} vs {restic}");
    for f in ["exclusive", "hostname", "username", "pid"] {
        assert_eq!(ours[f], restic[f], "{f}: {ours} vs {restic}");
    }
    for f in ["uid", "gid"] {
        assert_eq!(
            ours[f],
            restic.get(f).cloned().unwrap_or(Value::from(0)),
            "{f}"
        );
    }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// IDs of the locks a report says `restic unlock` keeps, sorted.
pub fn predicted_keep(report: &Value) -> Vec<String> {
    let mut keep: Vec<String> = by_id(report)
        .into_iter()
        .filter(|(_, l)| l["restic_unlock_removes"] == false)
        .map(|(id, _)| id)
        .collect();
    keep.sort();
    keep
}

/// A PID that belonged to a process that has exited.
pub fn dead_pid() -> i64 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id() as i64;
    c.wait().unwrap();
    pid
}

/// A test that cannot run here says so; under `scripts/test` (CI), where everything it
/// needs is installed, a skip is a failure.
pub fn skip(what: &str) {
    eprintln!("SKIP: {what}");
    assert!(
        std::env::var_os("LOCKSMITH_NO_SKIP").is_none(),
        "{what}: skipped, and LOCKSMITH_NO_SKIP is set"
    );
}

/// The full path of a program on PATH.
pub fn which(program: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(program))
                .find(|f| f.is_file())
        })
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

/// Runs a command, killing it (and failing) if it has not finished within `secs`.
pub fn run_within(cmd: &mut Command, secs: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {secs} s (hangs): {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs `cmd` (its output discarded) and returns its exit code and its own peak resident
/// memory in KiB. Measured from a small Python parent, not from here: exec(2) records the
/// old address space's high-water mark in the new program's, and a child spawned from this
/// test process (vfork or fork) would report this process's peak whenever it is the larger
/// (148 MiB in a full run, against 72 MiB alone, for a program that used far less).
pub fn peak_rss_kib(cmd: &Command) -> (Option<i32>, u64) {
    const PARENT: &str = "import resource, subprocess, sys\n\
        r = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL,\n\
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
        print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let out = wrapped("/usr/bin/python3", ["-c", PARENT], cmd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    let mut words = line.split_whitespace();
    let code: i32 = words.next().unwrap().parse().unwrap();
    let kib: u64 = words.next().unwrap().parse().unwrap();
    ((code >= 0).then_some(code), kib)
}

/// Whether every program named is on PATH (or a Python module, as `python3:MODULE`); a
/// missing one is said, and under `scripts/test` is a failure (see [`skip`]).
pub fn have(needs: &[&str]) -> bool {
    let found = |n: &str| match n.strip_prefix("python3:") {
        Some(module) => Command::new("/usr/bin/python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success()),
        None => std::env::var_os("PATH").is_some_and(|p| {
            std::env::split_paths(&p).any(|d| d.join(n).is_file())
                || Path::new("/usr/sbin").join(n).is_file()
        }),
    };
    let missing: Vec<&str> = needs.iter().copied().filter(|n| !found(n)).collect();
    if missing.is_empty() {
        return true;
    }
    skip(&format!(
        "needs {} (scripts/test installs everything)",
        missing.join(", ")
    ));
    false
}

/// Returns from the calling test, after saying why, when a program it needs is missing.
#[macro_export]
macro_rules! needs {
    ($($tool:expr),+ $(,)?) => {
        if !$crate::common::have(&[$($tool),+]) {
            return;
        }
    };
}

/// A system user of that name (made once), as (uid, gid). Needs root.
pub fn ensure_user(name: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, name]).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse::<u32>()
            .ok()
    };
    if id("-u").is_none() {
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .status()
            .unwrap();
        assert!(st.success() || id("-u").is_some(), "useradd {name}");
    }
    (id("-u").unwrap(), id("-g").unwrap())
}

/// `cmd` run as another user through setpriv (which execs it: the PID is the program's).
pub fn as_user(uid: u32, gid: u32, cmd: Command) -> Command {
    let ids = [format!("--reuid={uid}"), format!("--regid={gid}")];
    let mut c = wrapped(
        "setpriv",
        ids.iter()
            .map(String::as_str)
            .chain(["--clear-groups", "--"]),
        &cmd,
    );
    c.stdin(Stdio::null());
    c
}

/// `cmd` (program, arguments, variables set or removed, directory) as the arguments of
/// another program that runs it: setpriv, a measuring parent.
fn wrapped<'a>(program: &str, args: impl IntoIterator<Item = &'a str>, cmd: &Command) -> Command {
    let mut c = Command::new(program);
    c.args(args).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate for
/// `scraper.example` (client auth), as PEM files in `dir`: (ca, server cert, server key);
/// the client's are `client.pem` and `client.key` beside them.
pub fn write_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["scraper.example".to_string()]).unwrap();
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client.signed_by(&client_key, &ca).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
    paths
}
