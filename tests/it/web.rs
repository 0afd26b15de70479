//! serve's web face as an attacker on the same host, and an operator securing it, would try
//! it: the web configuration (TLS, client certificates, basic auth), the Host allow-list,
//! the headers, readiness, and idle or trickling connections.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use locksmith::seal::Encoding;

use crate::common::*;
use crate::serve::{Serve, serve_one};

fn web_config(dir: &Path, tls: bool, users: &[(&str, &str)]) -> std::path::PathBuf {
    let mut yaml = String::new();
    if tls {
        let (ca, cert, key) = write_tls(dir);
        yaml.push_str(&format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_allowed_sans: [scraper.example]\n",
            cert.display(),
            key.display(),
            ca.display()
        ));
    }
    if !users.is_empty() {
        yaml.push_str("basic_auth_users:\n");
        for (u, p) in users {
            yaml.push_str(&format!("  {u}: {}\n", bcrypt::hash(p, 4).unwrap()));
        }
    }
    yaml.push_str(
        "http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n",
    );
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn client(dir: &Path, with_cert: bool) -> reqwest::blocking::Client {
    locksmith::install_tls_provider();
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let mut b = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(10));
    if with_cert {
        let mut pem = std::fs::read(dir.join("client.pem")).unwrap();
        pem.extend(std::fs::read(dir.join("client.key")).unwrap());
        b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// An operator's web configuration, as exporter-toolkit reads it: TLS with a verified
/// client certificate whose SAN is allowed, and a bcrypt basic-auth user.
#[test]
fn web_config_serves_tls_with_client_certificates_and_basic_auth() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    t.seal(&lock_at(minutes_ago(2), "otherhost", 5), Encoding::Zstd);
    let dir = t.dir.path();
    let web = web_config(dir, true, &[("prometheus", "scrape-secret")]);
    let serve = serve_one(&t, &["--web-config", web.to_str().unwrap()]);
    let url = format!("https://127.0.0.1:{}/metrics", serve.port);

    let anonymous = client(dir, false).get(&url).send();
    assert!(anonymous.is_err(), "served without a client certificate");
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", serve.port));
    assert!(
        plain.is_err() || plain.unwrap().status() != 200,
        "served over plain HTTP"
    );

    let c = client(dir, true);
    let no_auth = c.get(&url).send().unwrap();
    assert_eq!(no_auth.status(), 401);
    assert!(
        no_auth.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let wrong = c
        .get(&url)
        .basic_auth("prometheus", Some("guess"))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let started = Instant::now();
    loop {
        let ok = c
            .get(&url)
            .basic_auth("prometheus", Some("scrape-secret"))
            .send()
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(
            ok.headers()["strict-transport-security"],
            "max-age=31536000"
        );
        if ok
            .text()
            .unwrap()
            .contains("restic_locks_total{repository=")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never read");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!serve.log().contains("scrape-secret"));
}

/// Each mistake in a web configuration exits 2 before anything listens, naming the file.
#[test]
fn bad_web_config_exits_2_naming_the_file() {
    let t = TestRepo::new(2);
    let dir = t.dir.path();
    // A cost-31 hash (made from a cost-4 one: a real one takes days to make).
    let cost_31 = bcrypt::hash("x", 4).unwrap().replacen("$04$", "$31$", 1);
    let cost_31 = format!("basic_auth_users:\n  prom: {cost_31}\n");
    let cases = [
        (cost_31.as_str(), "bcrypt cost 31 is above 14"),
        ("tls_server_config:\n  cert_fil: x\n", "unknown field"),
        (
            "basic_auth_users:\n  prom: plaintext-password\n",
            "not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n",
            "/nonexistent.pem",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n",
            "TLS10",
        ),
    ];
    let pw = crate::serve::password_file(dir, "pw", PASSWORD);
    for (yaml, says) in cases {
        let path = dir.join("bad-web.yml");
        std::fs::write(&path, yaml).unwrap();
        let port = crate::services::free_port();
        let out = locksmith_cmd()
            .args([
                "-r",
                t.path.to_str().unwrap(),
                "-p",
                pw.to_str().unwrap(),
                "serve",
            ])
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--web-config",
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {e}");
        assert!(e.contains("bad-web.yml") && e.contains(says), "{yaml}: {e}");
    }
}

/// Anyone reaching the port read /locks under any Host (DNS rebinding from a page the
/// operator opens), with no nosniff, no frame ban and no Cache-Control.
#[test]
fn rebinding_hosts_are_refused_and_pages_carry_security_headers() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let serve = serve_one(&t, &["--allowed-hosts", "metrics.example.org"]);
    let ask = |path: &str, host: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut answer);
        answer
    };
    let rebound = ask("/locks", &format!("evil.example.com:{}", serve.port));
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    assert!(!rebound.contains("repositories"), "{rebound}");
    assert!(
        rebound.contains("--allowed-hosts evil.example.com"),
        "{rebound}"
    );
    // A compose service name on this loopback listener: refused, and the log says
    // which name and which flag allows it, once per name.
    for _ in 0..3 {
        assert!(ask("/metrics", "locksmith:9856").starts_with("HTTP/1.1 421"));
    }
    let log = serve.log();
    assert_eq!(
        log.matches(
            "refused a request: Host \"locksmith\" is not one this loopback listener answers for"
        )
        .count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("start it with --allowed-hosts locksmith"),
        "{log}"
    );
    assert!(ask("/locks", "metrics.example.org:9856").starts_with("HTTP/1.1 200"));
    let page = ask("/", &format!("localhost:{}", serve.port)).to_ascii_lowercase();
    for header in [
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "content-security-policy: default-src 'none'",
        "cache-control: no-store",
    ] {
        assert!(page.contains(header), "{header} in\n{page}");
    }
    assert!(!page.contains("script-src"), "{page}");
    for link in ["/metrics", "/locks", "/-/healthy", "/-/ready"] {
        assert!(page.contains(&format!("href=\"{link}\"")), "{link}");
    }
    assert!(ask("/-/healthy", "127.0.0.1").starts_with("HTTP/1.1 200"));
    serve.wait_settled(&[]);
    let ready = ask("/-/ready", "127.0.0.1");
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.contains("ready"),
        "{ready}"
    );
}

/// /-/ready says 503 until every repository was read (or failed) once.
#[test]
fn ready_waits_for_every_repository() {
    let t = TestRepo::new(2);
    let pw = crate::serve::password_file(t.dir.path(), "pw", PASSWORD);
    let fleet = t.dir.path().join("fleet.toml");
    std::fs::write(
        &fleet,
        format!(
            "[[repository]]\nname = \"slow\"\nrepository = {:?}\npassword_command = \"sh -c 'sleep 3; cat {}'\"\n",
            t.path.display(),
            pw.display()
        ),
    )
    .unwrap();
    let serve = Serve::with_config(&fleet);
    let (status, body, _) = serve.get("/-/ready");
    assert_eq!(
        (status, body.trim()),
        (503, "not ready: 1 repository not read yet")
    );
    serve.wait_settled(&[]);
    assert_eq!(serve.get("/-/ready").0, 200);
}

/// This process's limits on open files (root may raise the hard one); children inherit
/// them.
fn allow_files(soft: u64, hard: u64) {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit(2) with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

/// 1,100 idle connections (any local user) made /metrics time out under the shipped
/// unit's file limit, and refreshes fail with "Too many open files". serve starts here
/// as systemd starts a service (1,024 open files, a higher hard limit); with 2,000 idle
/// and 300 trickling connections held, a scrape is answered and the repository still
/// refreshes. The scrape's time is printed, not asserted: machines differ.
#[test]
fn idle_and_trickling_connections_do_not_take_the_scrape() {
    crate::needs!("restic");
    allow_files(1024, 8192);
    let t = TestRepo::new(2);
    // Idle connections are closed after the header timeout: a long one here, so that a
    // loaded machine's slow connects do not close the first before the last is open.
    let serve = serve_one(&t, &["--header-timeout", "120"]);
    allow_files(8192, 8192);
    serve.wait_settled(&[]);
    let port = serve.port;
    let idle: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickling: Vec<_> = (0..300)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                let started = Instant::now();
                for b in b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
                    .iter()
                    .cycle()
                {
                    if stop.load(std::sync::atomic::Ordering::Relaxed)
                        || started.elapsed() > Duration::from_secs(20)
                        || s.write_all(&[*b]).is_err()
                    {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    // Every connection is held by serve (its header timeout closes them after 10 s).
    // Polled while 2,300 connections are being opened: its answer may take a while then,
    // which is not what this asks (the five scrapes below are, once they are open).
    let held = || -> f64 {
        let text = serve.get("/metrics").1;
        text.lines()
            .find_map(|l| l.strip_prefix("locksmith_http_connections "))
            .map_or(0.0, |v| v.parse().unwrap())
    };
    let started = Instant::now();
    while held() < 2300.0 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(250));
    }
    let n = held();
    assert!(n >= 2300.0, "{n} connections held by serve, 2,300 open");
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let (status, body, took) = serve.get("/metrics");
        assert_eq!(status, 200);
        assert!(body.contains("locksmith_refresh_success"));
        slowest = slowest.max(took);
    }
    let before = serve.metrics().get(
        "locksmith_refresh_timestamp_seconds",
        &t.path.display().to_string(),
    );
    std::thread::sleep(Duration::from_millis(2500));
    let after = serve.metrics().get(
        "locksmith_refresh_timestamp_seconds",
        &t.path.display().to_string(),
    );
    assert!(
        after > before,
        "refreshes go on while the connections are held"
    );
    eprintln!("slowest of 5 scrapes with 2,000 idle and 300 trickling connections: {slowest:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(idle);
    for th in trickling {
        let _ = th.join();
    }
}

/// An idle connection, or one that never finishes its headers, is closed after the
/// header timeout.
#[test]
fn idle_connections_are_closed_after_the_header_timeout() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let serve = serve_one(&t, &["--header-timeout", "1"]);
    let mut idle = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    let mut partial = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127")
        .unwrap();
    for s in [&mut idle, &mut partial] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 256];
        let started = Instant::now();
        let n = std::io::Read::read(s, &mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "held {:?}",
            started.elapsed()
        );
    }
}

/// A real Prometheus scrapes serve with the README's configuration: HTTPS with the CA, a
/// client certificate, basic auth from a password file; the target is up.
#[test]
fn prometheus_scrapes_through_tls_client_certificates_and_basic_auth() {
    crate::needs!("restic", "prometheus");
    let t = TestRepo::new(2);
    let dir = t.dir.path();
    let web = web_config(dir, true, &[("prometheus", "scrape-secret")]);
    let serve = serve_one(&t, &["--web-config", web.to_str().unwrap()]);
    std::fs::write(dir.join("scrape.password"), "scrape-secret\n").unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: locksmith\n    scheme: https\n    tls_config:\n      ca_file: {d}/ca.pem\n      cert_file: {d}/client.pem\n      key_file: {d}/client.key\n    basic_auth:\n      username: prometheus\n      password_file: {d}/scrape.password\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            serve.port,
            d = dir.display()
        ),
    )
    .unwrap();
    let port = crate::services::free_port();
    let mut cmd = std::process::Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _prometheus = crate::services::KillOnDrop(cmd.spawn().unwrap());
    locksmith::install_tls_provider();
    let started = Instant::now();
    loop {
        let targets = reqwest::blocking::get(format!("http://127.0.0.1:{port}/api/v1/targets"))
            .ok()
            .and_then(|r| r.text().ok())
            .unwrap_or_default();
        if targets.contains("\"health\":\"up\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "target not up: {targets}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A flood of wrong passwords grew the verified-credentials cache to its limit, which then
/// emptied it whole, the scraper's entry with it: the scraper's next scrape waited behind
/// the flood's bcrypt checks and timed out. Only successes are kept now, and checks run
/// one at a time: the scraper is answered at once while the flood waits its turn.
#[test]
fn a_flood_of_wrong_passwords_never_delays_the_scraper() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let dir = t.dir.path();
    let web = dir.join("web.yml");
    // Cost 8: a few milliseconds a check, a second or more for the flood.
    let hash = bcrypt::hash("scrape-pw", 8).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prom: {hash}\n")).unwrap();
    let serve = serve_one(&t, &["--web-config", web.to_str().unwrap()]);
    let scrape = || {
        let started = Instant::now();
        let r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}/metrics", serve.port))
            .basic_auth("prom", Some("scrape-pw"))
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        started.elapsed()
    };
    scrape();
    let port = serve.port;
    let flood: Vec<_> = (0..300)
        .map(|i| {
            std::thread::spawn(move || {
                let _ = reqwest::blocking::Client::new()
                    .get(format!("http://127.0.0.1:{port}/metrics"))
                    .basic_auth("prom", Some(format!("wrong-{i}")))
                    .timeout(Duration::from_secs(30))
                    .send();
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let took = scrape();
        assert!(
            took < Duration::from_millis(500),
            "the scraper waited {took:?}"
        );
    }
    for f in flood {
        f.join().unwrap();
    }
}

/// The web configuration was read once: a renewed certificate was not served until a
/// restart, and a user removed from `basic_auth_users` still got 200, even after SIGHUP.
/// SIGHUP now re-reads it: the new certificate from the next handshake, the removed user
/// refused from the next request. A bad new file is said, and the old one kept.
#[test]
fn a_renewed_certificate_and_a_removed_user_take_effect_at_sighup() {
    let t = TestRepo::new(2);
    let dir = t.dir.path();
    let web = web_config(
        dir,
        true,
        &[("prometheus", "scrape-secret"), ("leaver", "old-pw")],
    );
    let serve = serve_one(&t, &["--web-config", web.to_str().unwrap()]);
    let url = format!("https://127.0.0.1:{}/metrics", serve.port);
    let status = |c: &reqwest::blocking::Client, user: &str, pw: &str| {
        c.get(&url)
            .basic_auth(user, Some(pw))
            .send()
            .map(|r| r.status().as_u16())
    };
    assert_eq!(status(&client(dir, true), "leaver", "old-pw").unwrap(), 200);
    // A new CA, certificate and client certificate, and the leaver removed.
    web_config(dir, true, &[("prometheus", "scrape-secret")]);
    let renewed = client(dir, true);
    assert!(
        status(&renewed, "prometheus", "scrape-secret").is_err(),
        "the renewed certificate served before SIGHUP"
    );
    serve.signal(libc::SIGHUP);
    let start = Instant::now();
    while !serve.log().contains("web configuration reloaded") {
        assert!(start.elapsed() < Duration::from_secs(5), "{}", serve.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        status(&renewed, "prometheus", "scrape-secret").unwrap(),
        200
    );
    assert_eq!(status(&renewed, "leaver", "old-pw").unwrap(), 401);
    // A broken file is said, and the configuration in force kept.
    std::fs::write(&web, "basic_auth_users: [").unwrap();
    serve.signal(libc::SIGHUP);
    let start = Instant::now();
    while !serve.log().contains("web configuration reload failed") {
        assert!(start.elapsed() < Duration::from_secs(5), "{}", serve.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        status(&renewed, "prometheus", "scrape-secret").unwrap(),
        200
    );
    assert!(!serve.log().contains("scrape-secret"));
}
