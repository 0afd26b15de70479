//! A host name is not a kernel: containers and Pods as UTS + PID namespaces on this
//! machine, running real restic. Each case shows, with real `restic unlock`, the removal
//! it guards against, and that locksmith refuses it while the holder lives and allows it
//! once the holder is dead. Also the second clock (the storage's), a fresh lock nobody can
//! judge, and what an unprivileged or `hidepid` view says it could not see.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use locksmith::seal::Encoding;
use serde_json::Value;

use crate::common::*;
use crate::peers::{OtherHost, locks_with, only_lock};

/// `locksmith unlock ARGS` with its artefacts in the test's directory, not started.
fn unlock_cmd(t: &TestRepo, args: &[&str]) -> Command {
    let root = t.dir.path();
    let mut c = t.locksmith();
    c.arg("unlock")
        .args(args)
        .env("RESTIC_BIN", t.restic_path())
        .env("RESTIC_CACHE_DIR", root.join("cache"))
        .env("UNLOCK_LOG_DIR", root.join("log"))
        .env("UNLOCK_HOOK_DIR", root.join("hooks"));
    c
}

/// `locksmith unlock ARGS`, run to its end.
fn unlock(t: &TestRepo, args: &[&str]) -> Output {
    let out = unlock_cmd(t, args).output().unwrap();
    assert_no_secret(&out, &t.password);
    out
}

/// `locksmith unlock ARGS`, which must exit `code` (20: refused).
fn unlock_exits(t: &TestRepo, args: &[&str], code: i32) -> String {
    let out = unlock(t, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "unlock {args:?}: {}",
        text(&out)
    );
    text(&out)
}

/// What real `restic unlock ARGS` removes from a copy of the repository (the hazard).
fn restic_removes_from_a_copy(t: &TestRepo, args: &[&str]) -> usize {
    let copy = tempfile::tempdir().unwrap();
    let path = copy.path().join("repo");
    copy_dir(&t.path, &path);
    let before = std::fs::read_dir(path.join("locks")).unwrap().count();
    let out = t
        .restic()
        .env("RESTIC_REPOSITORY", &path)
        .arg("unlock")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "restic unlock: {}", text(&out));
    before - std::fs::read_dir(path.join("locks")).unwrap().count()
}

fn field<'a>(l: &'a Value, k: &str) -> &'a Value {
    &l[k]
}

/// `kill -9 PID` inside `ns`, and a moment for its shell to reap it.
fn kill_9(ns: &OtherHost, t: &TestRepo, pid: i64) {
    let out = ns.run(t, &format!("kill -9 {pid}"));
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(300));
}

/// A live `restic backup` in a container that keeps this host's name, at a PID just
/// above `last` inside, free out here; the container and that PID. Tests running at once
/// take PIDs apart: the same host name and PID in two containers is one live holder to
/// anyone judging from this kernel.
fn backup_in_a_container_keeping_this_host_s_name(
    t: &TestRepo,
    last: u32,
) -> Option<(OtherHost, i64)> {
    let mut ctr = OtherHost::spawn(None, None)?;
    let before = t.lock_names().len();
    let pid = ctr.background(
        t,
        &format!("echo {last} > /proc/sys/kernel/ns_last_pid; sleep 600 | \"$RESTIC\" backup --stdin --stdin-filename f >/dev/null 2>&1 &"),
    );
    t.wait_for_locks(before);
    Some((ctr, pid))
}

/// A lock's (stale, unsafe, clocks_disagree).
fn by_the_clocks(l: &Value) -> (bool, bool, bool) {
    let b = |k: &str| l[k].as_bool().unwrap_or_else(|| panic!("{k} in {l:#}"));
    (b("stale"), b("unsafe"), b("clocks_disagree"))
}

/// A backup in a container that keeps this host's name (Docker with a pinned `hostname:`,
/// host networking; restic issue 4922), its PID free out here: restic's probe finds no
/// such process and `restic unlock` removes the live lock. locksmith finds the restic by
/// its PID inside and its host name, and refuses; after `kill -9` it removes the lock.
#[test]
fn a_live_backup_in_a_container_keeping_this_host_s_name_is_not_removed() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let Some((ctr, pid)) = backup_in_a_container_keeping_this_host_s_name(&t, 29990) else {
            return;
        };
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "PID {pid} is taken out here: the case needs it free"
        );
        let l = only_lock(&locks_with(&t, &[], &[]));
        assert_eq!(
            (field(&l, "holder"), field(&l, "unsafe"), field(&l, "stale")),
            (&"alive".into(), &true.into(), &false.into()),
            "{r}: {l:#}"
        );
        assert_eq!(l["restic_unlock_removes"], true, "{r}: restic's rule stays");
        assert_eq!(l["namespace"], "another PID namespace of this host");
        assert_eq!(
            restic_removes_from_a_copy(&t, &[]),
            1,
            "{r}: restic unlock removes the live backup's lock"
        );
        unlock_exits(&t, &[], 20);
        assert_eq!(t.lock_names().len(), 1, "{r}: the live lock stays");

        kill_9(&ctr, &t, pid);
        let l = only_lock(&locks_with(&t, &[], &[]));
        assert_eq!(
            (field(&l, "holder"), field(&l, "stale")),
            (&"gone".into(), &true.into()),
            "{r}: {l:#}"
        );
        unlock_exits(&t, &[], 0);
        assert!(
            t.lock_names().is_empty(),
            "{r}: the dead job's lock is gone"
        );
    }
}

/// `unlock --wait` over the live backup of a container keeping this host's name: the
/// removal is refused while it lives (and still is when the wait runs out), and done
/// once it has ended, within one re-reading.
#[test]
fn unlock_wait_removes_the_lock_once_its_live_holder_has_ended() {
    crate::needs!("restic");
    let r = &restics()[0];
    let t = TestRepo::new(2).with(r);
    let Some((ctr, pid)) = backup_in_a_container_keeping_this_host_s_name(&t, 29970) else {
        return;
    };
    let out = unlock_exits(&t, &["--wait", "3s"], 20);
    assert!(out.contains("after waiting 3s (--wait)"), "{out}");
    assert_eq!(t.lock_names().len(), 1, "the live lock stays");
    let log = std::fs::read_to_string(t.dir.path().join("log/unlock-last.log")).unwrap();
    assert_eq!(
        log.matches("waiting (--wait 3s, ").count(),
        1,
        "one line per change: {log}"
    );
    assert!(log.contains("the wait (3s) ran out"), "{log}");

    let root = t.dir.path();
    let waiting = unlock_cmd(&t, &["--wait", "2m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(t.lock_names().len(), 1, "removed while its holder lived");
    kill_9(&ctr, &t, pid);
    let ended = Instant::now();
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        ended.elapsed() < Duration::from_secs(15),
        "{:?}",
        ended.elapsed()
    );
    assert!(t.lock_names().is_empty(), "the dead job's lock is gone");
    let log = std::fs::read_to_string(root.join("log/unlock-last.log")).unwrap();
    assert!(
        log.contains("waited ") && log.contains("result: success"),
        "{log}"
    );
}

/// A container with a name of its own (Docker's container ID, a Pod's name), seen whole
/// from this host: judged here, alive; after `kill -9` gone, which restic inside confirms.
#[test]
fn a_container_with_a_name_of_its_own_is_judged_on_this_kernel() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let Some(mut ctr) = OtherHost::spawn(Some("ctr1"), None) else {
            return;
        };
        let pid = ctr.backup(&t);
        let l = only_lock(&locks_with(&t, &[], &[]));
        assert_eq!(
            (field(&l, "holder"), field(&l, "judged_on")),
            (&"alive".into(), &this_host().into()),
            "{r}: {l:#}"
        );
        assert_eq!(l["namespace"], "container \"ctr1\" of this host");
        assert_eq!(
            restic_removes_from_a_copy(&t, &["--remove-all"]),
            1,
            "{r}: --remove-all removes whatever it finds"
        );
        unlock_exits(&t, &["--remove-all"], 20);
        assert_eq!(t.lock_names().len(), 1);

        kill_9(&ctr, &t, pid);
        let l = only_lock(&locks_with(&t, &[], &[]));
        assert_eq!(
            (field(&l, "holder"), field(&l, "stale")),
            (&"gone".into(), &true.into()),
            "{r}: {l:#}"
        );
        assert_eq!(
            l["restic_unlock_removes"], false,
            "{r}: restic here keeps it"
        );
        let why = l["reason"].as_str().unwrap();
        assert!(
            why.contains("restic unlock inside \"ctr1\" removes it now"),
            "{why}"
        );
        // restic inside ctr1 agrees that the holder is gone (on a copy); locksmith removes it.
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&t.path, copy.path());
        let inside = format!(
            "RESTIC_REPOSITORY={} \"$RESTIC\" unlock",
            copy.path().display()
        );
        let out = ctr.run(&t, &inside);
        assert!(out.status.success(), "{}", text(&out));
        let left = std::fs::read_dir(copy.path().join("locks"))
            .unwrap()
            .count();
        assert_eq!(left, 0, "{r}: restic inside ctr1 removes it");
        unlock_exits(&t, &["--remove-all"], 0);
        assert!(t.lock_names().is_empty());
    }
}

/// A Pod inside a node that runs the agent: asked for the node, the agent answers for
/// its Pods' names too. Two agents claiming one name leave the lock unknown.
#[test]
fn a_node_s_agent_answers_for_its_pods() {
    crate::needs!("restic");
    for r in restics() {
        let t = TestRepo::new(2).with(r);
        let Some(mut node) = OtherHost::spawn(Some("node1"), None) else {
            return;
        };
        node.agent(&[], &[]);
        let mut pod = OtherHost::spawn(Some("pod1"), Some(&node)).unwrap();
        let pid = pod.backup(&t);
        let peer = ["--peer", &node.peer()];
        let l = only_lock(&locks_with(&t, &peer, &[]));
        assert_eq!(
            (field(&l, "holder"), field(&l, "judged_on")),
            (&"alive".into(), &"node1".into()),
            "{r}: {l:#}"
        );
        assert_eq!(l["namespace"], "container \"pod1\" of \"node1\"");
        unlock_exits(&t, &["--remove-all", "--peer", &node.peer()], 20);

        kill_9(&pod, &t, pid);
        let l = only_lock(&locks_with(&t, &peer, &[]));
        assert_eq!(
            (
                field(&l, "holder"),
                field(&l, "stale"),
                field(&l, "judged_on")
            ),
            (&"gone".into(), &true.into(), &"node1".into()),
            "{r}: {l:#}"
        );
        // A second node that also runs a Pod named pod1: nobody is believed.
        let Some(mut node2) = OtherHost::spawn(Some("node2"), None) else {
            return;
        };
        node2.agent(&[], &[]);
        let _pod2 = OtherHost::spawn(Some("pod1"), Some(&node2)).unwrap();
        let both = ["--peer", &node.peer(), "--peer", &node2.peer()];
        let l = only_lock(&locks_with(&t, &both, &[]));
        assert_eq!(l["holder"], "unknown", "{r}: {l:#}");
        let err = l["peer_error"].as_str().unwrap();
        assert!(
            err.contains("\"node1\"") && err.contains("\"node2\""),
            "{err}"
        );

        unlock_exits(&t, &["--remove-all", "--peer", &node.peer()], 0);
        assert!(t.lock_names().is_empty());
    }
}

/// Sets a file's modification time `minutes` back.
fn age_file(path: &Path, minutes: i64) {
    let st = Command::new("touch")
        .args(["-d", &format!("{minutes} minutes ago")])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A writer whose clock runs 40 minutes behind: its lock reads 40 minutes old, but the
/// storage wrote it just now. restic removes it by age; locksmith does not call it stale
/// until the storage's clock agrees.
#[test]
fn a_lock_from_a_clock_behind_is_not_stale_while_its_file_is_fresh() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let id = t.seal_fresh(&lock_at(minutes_ago(40), "hostc", 4242), Encoding::Json);
    let l = only_lock(&locks_with(&t, &[], &[]));
    assert_eq!(by_the_clocks(&l), (false, true, true), "{l:#}");
    assert!(l["reason"].as_str().unwrap().contains("about 40m"), "{l}");
    assert_eq!(
        restic_removes_from_a_copy(&t, &[]),
        1,
        "restic removes it by age"
    );
    unlock_exits(&t, &[], 20);
    assert_eq!(t.lock_names(), vec![id.clone()]);

    age_file(&t.locks_dir().join(&id), 40);
    let l = only_lock(&locks_with(&t, &[], &[]));
    assert_eq!(by_the_clocks(&l), (true, false, false), "{l:#}");
    unlock_exits(&t, &[], 0);
    assert!(t.lock_names().is_empty());
}

/// The same over an object store: S3's listing carries each object's time.
#[test]
fn an_object_store_s_listing_is_the_second_clock() {
    crate::needs!("moto_server", "rclone");
    let t = TestRepo::new(2);
    t.seal_fresh(&lock_at(minutes_ago(40), "hostc", 4242), Encoding::Json);
    let s3 = crate::services::MotoS3::start();
    s3.upload(&t.path, "backups/repo");
    let repo = format!("s3:{}/backups/repo", s3.endpoint());
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("RESTIC_REPOSITORY", repo.as_str()),
    ];
    let report = locks_with(&t, &[], &env);
    let l = only_lock(&report);
    assert_eq!(by_the_clocks(&l), (false, true, true), "{l:#}");
    assert!(l["storage_age_seconds"].as_i64().unwrap() < 120, "{l}");
    assert_eq!(report["storage_clock"]["listed"], true);
}

/// `--remove-all` over another host's lock refreshed a minute ago, with no agent there:
/// nobody can judge it, so it is presumed alive (a running prune looks like this) and the
/// removal is refused; at 11 minutes, on both clocks, it is abandoned and goes.
#[test]
fn remove_all_over_a_fresh_lock_nobody_can_judge_is_refused() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let mut fresh = lock_at(minutes_ago(1), "hostc", 4242);
    fresh.exclusive = true;
    let id = t.seal(&fresh, Encoding::Json);
    let out = unlock(&t, &["--remove-all", "--dry-run"]);
    let said = text(&out);
    assert!(
        said.contains("hostc") && said.contains("locksmith agent"),
        "{said}"
    );
    let said = unlock_exits(&t, &["--remove-all"], 20);
    assert!(said.contains("--peer hostc=URL"), "{said}");
    assert!(
        said.contains("REFUSED: restic unlock --remove-all was not run")
            && said.contains("  safe after "),
        "{said}"
    );
    assert!(
        !said.contains("SIGHUP"),
        "--remove-all sends no probe: {said}"
    );
    assert!(
        said.contains(&format!(
            "--force would remove lock {} of bob@hostc PID 4242 (holder unknown)",
            &id[..8]
        )),
        "{said}"
    );
    assert_eq!(t.lock_names(), vec![id.clone()]);

    // A dead job's lock beside it: plain `unlock` is the safe command, and is named.
    let dead = t.seal(
        &lock_at(minutes_ago(0), &this_host(), dead_pid()),
        Encoding::Json,
    );
    let said = unlock_exits(&t, &["--remove-all"], 20);
    assert!(
        said.contains(&format!(
            "safe instead: `unlock` without --remove-all removes the stale lock {} of ",
            &dead[..8]
        )) && said.contains("and nothing else"),
        "{said}"
    );
    unlock_exits(&t, &[], 0);
    assert_eq!(
        t.lock_names(),
        vec![id.clone()],
        "plain unlock removed only the dead job's"
    );

    std::fs::remove_file(t.locks_dir().join(&id)).unwrap();
    fresh.time = minutes_ago(11);
    t.seal(&fresh, Encoding::Json);
    unlock_exits(&t, &["--remove-all"], 0);
    assert!(t.lock_names().is_empty());
}

/// One host with ten thousand locks beside one live job: the agent is asked in batches
/// within its limit, and every lock is judged.
#[test]
fn a_peer_answers_for_ten_thousand_locks_of_one_host() {
    crate::needs!("restic");
    let t = TestRepo::new(2);
    let Some(mut host) = OtherHost::start("nodeb", &[], &[]) else {
        return;
    };
    let live = host.backup(&t);
    for i in 0..9_999 {
        // PIDs above pid_max: no process has them.
        t.seal(
            &lock_at(minutes_ago(1), "nodeb", 40_000 + i),
            Encoding::Json,
        );
    }
    let out = t
        .locksmith()
        .args(["locks", "--json", "--timeout", "60", "--peer", &host.peer()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let locks = report["locks"].as_array().unwrap();
    assert_eq!(report["counts"]["total"], 10_000);
    let unknown = locks.iter().filter(|l| l["holder"] == "unknown").count();
    assert_eq!(unknown, 0, "{}", report["peers"]);
    let alive: Vec<_> = locks.iter().filter(|l| l["holder"] == "alive").collect();
    assert_eq!(alive.len(), 1);
    assert_eq!(alive[0]["pid"], live);
}

/// `locksmith locks --json` as an unprivileged user, the test's directory opened to it.
fn locks_as_a_user(t: &TestRepo) -> Command {
    let (uid, gid) = ensure_user("locksmith-it");
    let st = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(t.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let mut c = t.locksmith();
    c.args(["locks", "--json"]);
    as_user(uid, gid, c)
}

/// Case 1 as an unprivileged user: `NSpid` in `/proc/*/status` is readable without
/// privileges, the container's host name is not; the restic found there counts as alive.
#[test]
fn an_unprivileged_run_finds_a_namespaced_restic_through_nspid() {
    crate::needs!("restic", "setpriv");
    let t = TestRepo::new(2);
    let Some(mut ctr) = OtherHost::spawn(None, None) else {
        return;
    };
    let before = t.lock_names().len();
    ctr.background(
        &t,
        "echo 29980 > /proc/sys/kernel/ns_last_pid; sleep 600 | \"$RESTIC\" backup --stdin --stdin-filename f >/dev/null 2>&1 &",
    );
    t.wait_for_locks(before);
    let out = locks_as_a_user(&t).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = only_lock(&report);
    assert_eq!(
        (&l["holder"], &l["unsafe"]),
        (&"alive".into(), &true.into()),
        "{l:#}"
    );
}

/// An unprivileged run under `hidepid=2` sees only its own processes: a lock of this host
/// whose PID is free is gone as far as it can see, and it says what it could not see.
#[test]
fn a_hidepid_run_names_what_it_could_not_see() {
    crate::needs!("unshare", "setpriv");
    if !is_root() {
        skip("mounting /proc with hidepid needs root");
        return;
    }
    let t = TestRepo::new(2);
    t.seal(
        &lock_at(minutes_ago(2), &this_host(), dead_pid()),
        Encoding::Json,
    );
    let user = locks_as_a_user(&t);
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t proc -o hidepid=2 proc /proc && exec \"$@\"")
        .arg("sh")
        .arg(user.get_program())
        .args(user.get_args());
    for (k, v) in user.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = only_lock(&report);
    assert_eq!(l["holder"], "gone", "{l:#}");
    let unseen = l["unseen"].as_str().unwrap_or_default();
    assert!(unseen.contains("hidepid"), "{l:#}");
    assert!(
        l["reason"].as_str().unwrap().contains("not proven dead"),
        "{l}"
    );
}
