//! Without a password source, the password is asked for as restic asks for it.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn password_is_read_from_a_piped_stdin() {
    crate::needs!("restic");
    let t = TestRepo::new(1);
    let mut child = t
        .locksmith()
        .env_remove("RESTIC_PASSWORD")
        .args(["locks", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret(&out, PASSWORD);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["locks"].is_array(), "{v}");
}

/// On a terminal (`script` makes one) the prompt appears, and the typed password is not
/// echoed.
#[test]
fn password_is_asked_for_on_a_terminal_without_echo() {
    crate::needs!("restic", "script");
    let t = TestRepo::new(1);
    let mut like = t.locksmith();
    like.env_remove("RESTIC_PASSWORD");
    let cmd = format!("{} locks --json", env!("CARGO_BIN_EXE_locksmith"));
    let mut child = on_terminal(&cmd, &like)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let start = Instant::now();
    while !String::from_utf8_lossy(&seen.lock().unwrap()).contains("enter password") {
        assert!(start.elapsed() < Duration::from_secs(20), "no prompt");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Typed after the prompt, as a person would, once echo is off.
    std::thread::sleep(Duration::from_millis(300));
    let mut stdin = child.stdin.take().unwrap();
    write!(stdin, "{PASSWORD}\r").unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    let tty = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(status.success(), "{tty}");
    assert!(tty.contains("\"locks\""), "{tty}");
    assert!(!tty.contains(PASSWORD), "{tty}");
}
