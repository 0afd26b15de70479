use std::collections::BTreeSet;

use super::answer::Question;
use super::*;

#[test]
fn flags_and_the_variable_name_hosts_and_urls() {
    let flags = vec![
        "hostb=http://127.0.0.1:9857".to_string(),
        " hostc = https://c:1/ , ".into(),
    ];
    let peers = Peers::from_options(&flags, &[]).unwrap();
    assert_eq!(
        peers.get("hostb").unwrap().url.expose(),
        "http://127.0.0.1:9857"
    );
    assert_eq!(peers.get("hostc").unwrap().masked, "https://c:1/");
    assert!(peers.get("hosta").is_none());
    for bad in [
        "hostb",
        "=http://x",
        "hostb=",
        "hostb=ftp://x",
        "hostb=not a url",
    ] {
        assert!(
            Peers::from_options(&[bad.to_string()], &[]).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn a_url_password_is_masked_shown_and_scrubbed() {
    let peers = Peers::from_options(&["b=https://ops:s3cret-pw@b:9857".into()], &[]).unwrap();
    let p = peers.get("b").unwrap();
    assert_eq!(p.username.as_deref(), Some("ops"));
    assert_eq!(p.password.as_ref().unwrap().expose(), "s3cret-pw");
    assert!(!p.masked.contains("s3cret-pw"), "{}", p.masked);
    assert!(!format!("{p:?}").contains("s3cret-pw"));
    let mut r = crate::secret::Redactor::default();
    peers.secrets_into(&mut r);
    assert_eq!(r.scrub("x s3cret-pw y"), "x *** y");
    let e = Peers::from_options(&["b:https://ops:s3cret-pw@b".into()], &[]).unwrap_err();
    assert!(!e.to_string().contains("s3cret-pw"), "{e}");
}

#[test]
fn a_peers_file_takes_paths_beside_itself_and_reads_its_password_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "hunter22\n").unwrap();
    let file = dir.path().join("peers.toml");
    std::fs::write(
        &file,
        r#"
[[peer]]
hostname = "hostb"
url = "https://hostb:9857"
ca_file = "ca.pem"
cert_file = "client.pem"
key_file = "client.key"
username = "prometheus"
password_file = "pw"
"#,
    )
    .unwrap();
    let peers = Peers::from_options(
        &["hostb=http://override:1".into()],
        std::slice::from_ref(&file),
    )
    .unwrap();
    // A flag names the same host later: it wins.
    assert_eq!(
        peers.get("hostb").unwrap().url.expose(),
        "http://override:1"
    );
    let peers = Peers::from_options(&[], std::slice::from_ref(&file)).unwrap();
    let p = peers.get("hostb").unwrap();
    assert_eq!(
        p.ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    assert_eq!(
        p.key_file.as_deref(),
        Some(dir.path().join("client.key").as_path())
    );
    assert_eq!(p.password.as_ref().unwrap().expose(), "hunter22");

    std::fs::write(
        &file,
        "[[peer]]\nhostname = \"b\"\nurl = \"http://b\"\ncert_file = \"c\"\n",
    )
    .unwrap();
    let e = Peers::from_options(&[], std::slice::from_ref(&file)).unwrap_err();
    assert!(
        e.to_string().contains("cert_file and key_file go together"),
        "{e}"
    );
    std::fs::write(
        &file,
        "[[peer]]\nhostname = \"b\"\nurl = \"http://b\"\nport = 1\n",
    )
    .unwrap();
    let e = Peers::from_options(&[], std::slice::from_ref(&file)).unwrap_err();
    assert!(e.to_string().contains("port"), "{e}");
    std::fs::write(
        &file,
        "[[peer]]\nhostname = \"b\"\nurl = \"http://b\"\npassword_file = \"nope\"\n",
    )
    .unwrap();
    let e = Peers::from_options(&[], &[file]).unwrap_err();
    assert!(e.to_string().contains("password file"), "{e}");
}

#[test]
fn each_host_is_asked_about_its_pids_and_where_restics_probe_lands() {
    let locks = [
        ("b", 10),
        ("b", 10),
        ("b", (1 << 32) + 7),
        ("b", -42),
        ("c", 0),
        ("c", 5),
    ];
    let q = ask::questions(locks.into_iter());
    assert_eq!(q["b"].pids, BTreeSet::from([7, 10]));
    assert_eq!(q["b"].groups, BTreeSet::from([42]));
    assert_eq!(q["c"].pids, BTreeSet::from([5]));
    let back = Question::parse(
        url::form_urlencoded::parse(q["b"].query().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect::<Vec<_>>()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .unwrap();
    assert_eq!(back, q["b"]);
}

#[test]
fn questions_beyond_reason_are_refused() {
    for bad in [
        ("pid", "0"),
        ("pid", "-1"),
        ("pid", "x"),
        ("pid", "4294967296"),
        ("user", "1"),
    ] {
        assert!(Question::parse([bad].into_iter()).is_err(), "{bad:?}");
    }
    let many = (1..=answer::MAX_ASKED as i32 + 1)
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert!(Question::parse([("pid", many.as_str())].into_iter()).is_err());
}

/// A peer answering with a clock at chrono's end of time made `now + offset` panic.
#[test]
fn a_clock_beyond_belief_is_refused_not_added() {
    use chrono::{DateTime, Utc};
    let answer = |now: DateTime<Utc>, host: &str| HostAnswer {
        hostname: host.into(),
        now,
        boot_time: None,
        processes: vec![],
        groups: vec![],
        kernel: Default::default(),
    };
    let sent = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let rtt = std::time::Duration::from_millis(20);
    let e = PeerView::measured(answer(DateTime::<Utc>::MAX_UTC, "b"), "b", sent, rtt).unwrap_err();
    assert!(e.contains("days off"), "{e}");
    let e = PeerView::measured(answer(sent, "c"), "b", sent, rtt).unwrap_err();
    assert!(e.contains("answers for host \"c\", not \"b\""), "{e}");
    let v = PeerView::measured(
        answer(sent + chrono::Duration::seconds(60), "b"),
        "b",
        sent,
        rtt,
    )
    .unwrap();
    assert_eq!(v.offset, chrono::Duration::milliseconds(59_990));
}
