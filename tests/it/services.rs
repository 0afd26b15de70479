//! Real services on loopback, started by the tests and stopped by PID.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a service quietly and waits until it listens on `port`; `what` says how to
/// install it when it is missing.
fn launch(what: &str, port: u16, cmd: &mut Command) -> KillOnDrop {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    wait_for_port(port, &mut child, what);
    KillOnDrop(child)
}

pub fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("{what} exited: {st}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Debian's aiosmtpd, storing every message in a maildir.
pub struct SmtpSink {
    pub port: u16,
    _child: KillOnDrop,
    maildir: tempfile::TempDir,
}

pub struct Mail {
    pub subject: String,
    pub body: String,
    pub to: String,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let maildir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = launch(
            "aiosmtpd (apt-get install python3-aiosmtpd)",
            port,
            Command::new("/usr/bin/python3")
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(maildir.path().join("box")),
        );
        SmtpSink {
            port,
            _child: child,
            maildir,
        }
    }

    /// As [`SmtpSink::start`], but the server offers AUTH (PLAIN, LOGIN) on the plain
    /// connection, refuses mail without it and accepts only `user`/`password`.
    pub fn start_with_login(user: &str, password: &str) -> SmtpSink {
        let maildir = tempfile::tempdir().unwrap();
        let port = free_port();
        // A failed login must be `handled=False`, or aiosmtpd leaves the client waiting.
        let server = "import sys, time\n\
            from aiosmtpd.controller import Controller\n\
            from aiosmtpd.handlers import Mailbox\n\
            from aiosmtpd.smtp import AuthResult\n\
            port, box, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), sys.argv[4].encode()\n\
            def check(server, session, envelope, mechanism, data):\n\
            \x20   ok = data.login == user and data.password == pw\n\
            \x20   return AuthResult(success=ok, handled=ok)\n\
            Controller(Mailbox(box), hostname='127.0.0.1', port=port, authenticator=check,\n\
            \x20          auth_required=True, auth_require_tls=False).start()\n\
            while True: time.sleep(3600)\n";
        let child = launch(
            "aiosmtpd with AUTH (apt-get install python3-aiosmtpd)",
            port,
            Command::new("/usr/bin/python3")
                .args(["-c", server, &port.to_string()])
                .arg(maildir.path().join("box"))
                .args([user, password]),
        );
        SmtpSink {
            port,
            _child: child,
            maildir,
        }
    }

    /// Every message received, decoded by Python's own email parser.
    pub fn mails(&self) -> Vec<Mail> {
        let new = self.maildir.path().join("box").join("new");
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        // Maildir names do not sort by arrival; modification times do.
        paths.sort_by_key(|p| (std::fs::metadata(p).unwrap().modified().unwrap(), p.clone()));
        paths
            .iter()
            .map(|p| {
                let out = Command::new("/usr/bin/python3")
                    .arg("-c")
                    .arg(
                        "import email, sys, json\n\
                         from email.header import decode_header, make_header\n\
                         m = email.message_from_binary_file(open(sys.argv[1], 'rb'))\n\
                         print(json.dumps({'subject': str(make_header(decode_header(m['Subject']))),\
                         'to': m['To'], 'body': m.get_payload(decode=True).decode()}))",
                    )
                    .arg(p)
                    .output()
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
                Mail {
                    subject: v["subject"].as_str().unwrap().into(),
                    body: v["body"].as_str().unwrap().into(),
                    to: v["to"].as_str().unwrap().into(),
                }
            })
            .collect()
    }

    /// Raw bytes of every stored message.
    pub fn raw(&self) -> String {
        let new = self.maildir.path().join("box").join("new");
        std::fs::read_dir(&new)
            .map(|rd| {
                rd.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// One HTTP/1.1 request, read whole (headers, then `Content-Length` bytes of body).
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// `rclone serve restic` over a directory holding repositories.
pub struct RestServer {
    pub port: u16,
    pub tls: bool,
    _child: KillOnDrop,
}

impl RestServer {
    /// `auth`: basic-auth user and password; `tls`: certificate and key files.
    pub fn start(
        root: &std::path::Path,
        auth: Option<(&str, &str)>,
        tls: Option<(&Path, &Path)>,
    ) -> RestServer {
        let port = free_port();
        let mut cmd = Command::new("rclone");
        cmd.args(["serve", "restic", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(root);
        if let Some((u, p)) = auth {
            cmd.args(["--user", u, "--pass", p]);
        }
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        RestServer {
            port,
            tls: tls.is_some(),
            _child: launch(
                "rclone serve restic (apt-get install rclone)",
                port,
                &mut cmd,
            ),
        }
    }

    pub fn url(&self, userinfo: &str, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("rest:{scheme}://{userinfo}127.0.0.1:{}/{path}", self.port)
    }
}

/// moto's S3 server (PyPI moto[s3]), in memory, path-style.
pub struct MotoS3 {
    pub port: u16,
    _child: KillOnDrop,
}

impl MotoS3 {
    pub fn start() -> MotoS3 {
        let port = free_port();
        let child = launch(
            "moto_server (pip install 'moto[s3]' flask flask-cors)",
            port,
            Command::new("moto_server").args(["-H", "127.0.0.1", "-p", &port.to_string()]),
        );
        MotoS3 {
            port,
            _child: child,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Copies a local repository to `bucket/prefix` with rclone.
    pub fn upload(&self, from: &Path, bucket_and_prefix: &str) {
        let target = format!(
            ":s3,provider=Other,endpoint='{}',access_key_id=test,secret_access_key=test:{bucket_and_prefix}",
            self.endpoint()
        );
        rclone_copy(from, &target, &[]);
    }
}

/// The well-known key of Azure's storage emulator account `devstoreaccount1`.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A service started from a command line, waited for on its port, killed on drop.
pub struct Daemon {
    pub port: u16,
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(what: &str, port: u16, cmd: &mut Command, dir: tempfile::TempDir) -> Daemon {
        Daemon {
            port,
            _child: launch(what, port, cmd),
            _dir: dir,
        }
    }

    /// npm's azurite (blob service only), state in a temp dir, on the emulator's own port
    /// 10000: the only one rclone's (and restic 0.14's) emulator mode reaches.
    pub fn azurite() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = 10000;
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port 10000 is taken: azurite needs it"
        );
        let mut cmd = Command::new("azurite-blob");
        cmd.args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
        ])
        .arg(dir.path())
        .args(["--disableTelemetry", "--skipApiVersionCheck", "--loose"]);
        Daemon::start("azurite (npm install -g azurite)", port, &mut cmd, dir)
    }

    /// PyPI's gcp-storage-emulator, in memory, with one bucket.
    pub fn gcs(bucket: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new("gcp-storage-emulator");
        cmd.args(["start", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--default-bucket", bucket, "--in-memory"]);
        Daemon::start(
            "gcp-storage-emulator (pip install gcp-storage-emulator)",
            port,
            &mut cmd,
            dir,
        )
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// `rclone copy FROM TARGET` with extra environment (rclone seeds the emulators). A CA
/// bundle in the environment (AWS_CA_BUNDLE) makes rclone's S3 client refuse: unset.
pub fn rclone_copy(from: &Path, target: &str, env: &[(&str, &str)]) {
    let out = Command::new("rclone")
        .arg("copy")
        .arg(from)
        .arg(target)
        .envs(env.iter().copied())
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rclone copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Uploads a local repository into azurite with Microsoft's own Python client (PyPI
/// azure-storage-blob).
pub fn azurite_upload(az: &Daemon, from: &Path, container: &str, prefix: &str) {
    let script = r#"
import os, sys
from azure.storage.blob import BlobServiceClient
url, key, root, container, prefix = sys.argv[1:6]
svc = BlobServiceClient(account_url=url, credential={"account_name": "devstoreaccount1", "account_key": key})
c = svc.get_container_client(container)
if not c.exists():
    c.create_container()
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        with open(p, "rb") as fh:
            c.upload_blob(prefix + "/" + os.path.relpath(p, root), fh, overwrite=True)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(format!("{}/devstoreaccount1", az.url()))
        .arg(AZURITE_KEY)
        .arg(from)
        .arg(container)
        .arg(prefix)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upload to azurite: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private sshd on loopback that lets root in with a throwaway key.
pub struct Sshd {
    pub port: u16,
    pub client_key: PathBuf,
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["host_key", "client_key"] {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(name))
                .status()
                .expect("ssh-keygen is installed (openssh-client)");
            assert!(st.success());
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let cfg = d.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {host}\nPidFile {pid}\n\
                 AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nAllowUsers root\nSubsystem sftp internal-sftp\n",
                host = d.join("host_key").display(),
                pid = d.join("sshd.pid").display(),
                auth = d.join("authorized_keys").display(),
            ),
        )
        .unwrap();
        let child = launch(
            "sshd (apt-get install openssh-server)",
            port,
            Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&cfg),
        );
        Sshd {
            port,
            client_key: d.join("client_key"),
            _child: child,
            _dir: dir,
        }
    }

    /// restic's way in: its `sftp.command`.
    pub fn restic_command(&self) -> String {
        format!(
            "ssh -i {} -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes root@127.0.0.1 -s sftp",
            self.client_key.display(),
            self.port
        )
    }
}

/// One canned answer: for requests whose method and path start match.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub fn route(
    method: &'static str,
    path: &'static str,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> Route {
    Route {
        method,
        path,
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_string(),
    }
}

/// What the test server does with each request (one per connection; every request is
/// recorded first).
#[derive(Clone)]
pub enum Mode {
    /// 200, empty body (a webhook receiver).
    Ok,
    /// 500 to every request.
    Fail,
    /// Never answers (until the test ends, or a minute).
    Hang,
    /// Recorded responses by method and path prefix, 404 otherwise; `{SELF}` in a header
    /// or body stands for the server's own URL.
    Canned(Arc<Vec<Route>>),
    /// Forwards to a real server on `upstream`, with a fault.
    Proxy { upstream: u16, fault: Fault },
}

/// A proxy's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every third request answers 500.
    Every3rd500,
    /// Connections are accepted and never answered.
    Stall,
    /// Connections are closed at once, unanswered: the server went away.
    Gone,
    /// Every request waits 100 ms before it is forwarded.
    Slow,
    /// Lock files are answered one byte a second; everything else as the server answers.
    Trickle,
    /// These lock files are never answered to locksmith (by its User-Agent); restic, and
    /// every other request, get the server's answers.
    StallForLocksmith(Arc<Vec<String>>),
}

/// The tests' one HTTP server: a webhook receiver, a canned API, or a fault-injecting
/// proxy, by its mode, which a test may change while it runs.
pub struct TestServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub served: Arc<std::sync::atomic::AtomicUsize>,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
}

const EMPTY_200: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const EMPTY_500: &str =
    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

fn wait_for_stop(stop: &AtomicBool) {
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn canned(routes: &[Route], req: &Request, me: &str) -> String {
    match routes
        .iter()
        .find(|r| r.method == req.method && req.path.starts_with(r.path))
    {
        Some(r) => {
            let mut head = format!("HTTP/1.1 {} X\r\n", r.status);
            for (k, v) in &r.headers {
                head.push_str(&format!("{k}: {}\r\n", v.replace("{SELF}", me)));
            }
            let body = r.body.replace("{SELF}", me);
            format!(
                "{head}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        }
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    }
}

/// Forwards one request to `upstream` and relays the answer, with `fault`.
fn forward(
    client: &mut TcpStream,
    req: &Request,
    upstream: u16,
    fault: Fault,
    n: usize,
    stop: &AtomicBool,
) {
    let locksmith = req
        .headers
        .get("user-agent")
        .is_some_and(|v| v.starts_with("locksmith/"));
    match &fault {
        Fault::StallForLocksmith(ids)
            if locksmith
                && ids
                    .iter()
                    .any(|id| req.path.ends_with(&format!("/locks/{id}"))) =>
        {
            return wait_for_stop(stop);
        }
        Fault::Gone => return,
        Fault::Stall => return wait_for_stop(stop),
        Fault::Slow => std::thread::sleep(Duration::from_millis(100)),
        Fault::Every3rd500 if n.is_multiple_of(3) => {
            let _ = client.write_all(EMPTY_500.as_bytes());
            return;
        }
        _ => {}
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if k != "connection" {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("connection: close\r\n\r\n");
    if up.write_all(head.as_bytes()).is_err() || up.write_all(&req.body).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    let lock_file = req.path.contains("/locks/") && !req.path.ends_with('/');
    if fault == Fault::Trickle && lock_file {
        for b in answer {
            if stop.load(Ordering::Relaxed) || client.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        return;
    }
    let _ = client.write_all(&answer);
}

impl TestServer {
    pub fn start(mode: Mode) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = TestServer {
            port,
            requests: Arc::new(Mutex::new(Vec::new())),
            served: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            mode: Arc::new(Mutex::new(mode)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (reqs, served, mode, stop) = (
            server.requests.clone(),
            server.served.clone(),
            server.mode.clone(),
            server.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                let n = served.fetch_add(1, Ordering::Relaxed) + 1;
                let mode = mode.lock().unwrap().clone();
                let (reqs, stop) = (reqs.clone(), stop.clone());
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut c) else {
                        return;
                    };
                    reqs.lock().unwrap().push(req.clone());
                    let me = format!("http://127.0.0.1:{port}");
                    match mode {
                        Mode::Ok => drop(c.write_all(EMPTY_200.as_bytes())),
                        Mode::Fail => drop(c.write_all(EMPTY_500.as_bytes())),
                        Mode::Hang => wait_for_stop(&stop),
                        Mode::Canned(routes) => {
                            drop(c.write_all(canned(&routes, &req, &me).as_bytes()))
                        }
                        Mode::Proxy { upstream, fault } => {
                            forward(&mut c, &req, upstream, fault, n, &stop)
                        }
                    }
                });
            }
        });
        server
    }

    /// A canned API.
    pub fn canned(routes: Vec<Route>) -> TestServer {
        TestServer::start(Mode::Canned(Arc::new(routes)))
    }

    /// A proxy in front of `upstream`, faultless until told otherwise.
    pub fn proxy(upstream: u16) -> TestServer {
        TestServer::start(Mode::Proxy {
            upstream,
            fault: Fault::None,
        })
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// A proxy's new fault.
    pub fn set_fault(&self, fault: Fault) {
        let mut m = self.mode.lock().unwrap();
        if let Mode::Proxy { upstream, .. } = *m {
            *m = Mode::Proxy { upstream, fault };
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn taken(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
