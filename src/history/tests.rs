use std::sync::{Arc, Mutex};

use chrono::Duration;

use super::*;
use crate::report::holders::tests::{lock, report, t};
use crate::report::{Ended, Memory};

fn store(dir: &Path) -> Arc<Mutex<Store>> {
    Arc::new(Mutex::new(Store::open(dir).unwrap()))
}

/// A serve that reads `locks` at minute `at` and records it.
fn read(m: &mut Memory, r: &mut Recorder, at: i64, locks: Vec<crate::locks::LockEntry>) {
    let mut rep = report(at, locks);
    let changed = m.update(&mut rep, t(at));
    r.good(&rep, &changed, t(at)).unwrap();
}

#[test]
fn a_restart_goes_on_with_the_lives_and_the_last_reading() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (mut r, restored) = Recorder::open(s.clone(), "nas").unwrap();
    assert!(restored.lives.is_empty() && restored.reading.is_none());
    let mut m = Memory::default();
    read(
        &mut m,
        &mut r,
        0,
        vec![lock(1, -20, "b", 7, true), lock(2, -1, "b", 8, false)],
    );
    read(&mut m, &mut r, 1, vec![lock(1, -20, "b", 7, true)]);
    drop((r, s));

    let s = store(dir.path());
    let (_, restored) = Recorder::open(s.clone(), "nas").unwrap();
    let held: Vec<_> = restored
        .lives
        .iter()
        .map(|l| (l.span.key.pid, l.span.last_seen))
        .collect();
    assert_eq!(held, vec![(7, t(1))], "the ended one is not resumed");
    let (reading, at) = restored.reading.unwrap();
    assert_eq!((reading.locks.len(), at), (1, t(1)));
    assert_eq!(reading.locks[0].at, t(-20));
    let h = s.lock().unwrap().history(t(-60), t(2), None).unwrap();
    let lives: Vec<_> = h.repositories[0]
        .holders
        .iter()
        .map(|l| (l.span.key.pid, l.span.ended, l.held_seconds()))
        .collect();
    assert_eq!(lives, vec![(7, None, 21 * 60), (8, Some(Ended::Gone), 60)]);
}

#[test]
fn an_unreadable_spell_ends_lives_and_a_later_reading_takes_them_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (mut r, _) = Recorder::open(s.clone(), "nas").unwrap();
    let mut m = Memory::default();
    read(&mut m, &mut r, 0, vec![lock(1, -1, "b", 7, true)]);
    r.failed(&m.unreadable(t(1))).unwrap();
    let ended = |s: &Arc<Mutex<Store>>| {
        let h = s.lock().unwrap().history(t(-60), t(9), None).unwrap();
        h.repositories[0]
            .holders
            .iter()
            .map(|l| l.span.ended)
            .collect::<Vec<_>>()
    };
    assert_eq!(ended(&s), vec![Some(Ended::Unreadable)]);
    // A restart while it cannot be read: the spell's lives are resumed, and taken up.
    let (mut r, restored) = Recorder::open(s.clone(), "nas").unwrap();
    let mut m = Memory::resume(restored.lives);
    read(&mut m, &mut r, 3, vec![lock(1, -1, "b", 7, true)]);
    assert_eq!(ended(&s), vec![None]);
}

#[test]
fn unlock_ends_the_removed_jobs_lives_and_serve_does_not_undo_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (mut r, _) = Recorder::open(s.clone(), "nas").unwrap();
    let mut m = Memory::default();
    read(&mut m, &mut r, 0, vec![lock(1, -40, "b", 7, true)]);
    let before = report(
        1,
        vec![lock(1, -40, "b", 7, true), lock(3, -50, "c", 9, false)],
    );
    let removed: Vec<_> = before.locks.iter().collect();
    s.lock()
        .unwrap()
        .record_removals("id", "/r", &removed, t(1))
        .unwrap();
    read(&mut m, &mut r, 2, vec![]);
    let h = s.lock().unwrap().history(t(-60), t(3), None).unwrap();
    let lives: Vec<_> = h.repositories[0]
        .holders
        .iter()
        .map(|l| (l.span.key.pid, l.span.ended, l.span.ended_at))
        .collect();
    assert_eq!(
        lives,
        vec![
            (9, Some(Ended::Removed), Some(t(1))),
            (7, Some(Ended::Removed), Some(t(1)))
        ]
    );
    let n: i64 = s
        .lock()
        .unwrap()
        .conn
        .query_row("SELECT COUNT(*) FROM removals", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[test]
fn a_quiet_reading_writes_no_reading_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (mut r, _) = Recorder::open(s.clone(), "nas").unwrap();
    let mut m = Memory::default();
    read(&mut m, &mut r, 0, vec![lock(1, -1, "b", 7, true)]);
    let changes = |s: &Arc<Mutex<Store>>| s.lock().unwrap().conn.total_changes();
    let before = changes(&s);
    read(&mut m, &mut r, 1, vec![lock(1, -1, "b", 7, true)]);
    assert_eq!(
        changes(&s) - before,
        1,
        "the repository's time read, nothing else"
    );
}

#[test]
fn retention_drops_old_lives_then_the_oldest_past_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (mut r, _) = Recorder::open(s.clone(), "nas").unwrap();
    let mut m = Memory::default();
    // 3,000 jobs, a minute each, then one still held.
    for i in 0..3000i64 {
        read(
            &mut m,
            &mut r,
            i,
            vec![lock(
                1,
                i - 1,
                &format!("host-{i:04}-{}", "x".repeat(200)),
                i,
                true,
            )],
        );
    }
    read(&mut m, &mut r, 3000, vec![lock(2, 2999, "held", 1, true)]);
    let mut st = s.lock().unwrap();
    let now = t(3000) + Duration::days(1);
    let keep = |days, size| Retention { days, size };
    assert_eq!(st.prune(keep(90, 64 << 20), now).unwrap(), 0);
    assert!(st.used_bytes().unwrap() > 1 << 20, "over a MiB of history");
    let gone = st.prune(keep(90, 1 << 20), now).unwrap();
    assert!(st.used_bytes().unwrap() <= 1 << 20);
    let h = st.history(t(-10), now, None).unwrap();
    let pids: Vec<i64> = h.repositories[0]
        .holders
        .iter()
        .map(|l| l.span.key.pid)
        .collect();
    assert_eq!(pids.len(), 3001 - gone);
    assert_eq!(
        pids[pids.len() - 2..],
        [2999, 1],
        "the newest and the held one stay"
    );
    // Days: lives ended over a day ago go; the held one stays while its repository is read.
    st.prune(keep(1, 64 << 20), t(3000) + Duration::hours(23))
        .unwrap();
    let h = st.history(t(-10), now, None).unwrap();
    let left: Vec<i64> = h.repositories[0]
        .holders
        .iter()
        .map(|l| l.span.key.pid)
        .collect();
    assert_eq!(left.first(), Some(&2939), "{left:?}");
    assert_eq!(left.last(), Some(&1), "the held one");
    // A repository not read for over the days kept (gone from the fleet): all of it.
    st.prune(keep(1, 64 << 20), t(3000) + Duration::days(365))
        .unwrap();
    let h = st.history(t(-10), now, None).unwrap();
    assert!(h.repositories[0].holders.is_empty());
    let file = std::fs::metadata(st.path()).unwrap().len();
    assert!(file <= 1 << 20, "pages given back: {file}");
}

#[test]
fn a_hosts_typical_hold_is_the_median_of_the_holds_it_ended_itself() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let (mut r, _) = Recorder::open(s.clone(), "nas").unwrap();
    let mut m = Memory::default();
    let mut at = 0;
    for (pid, minutes) in [(7, 10), (8, 30), (9, 20)] {
        read(&mut m, &mut r, at, vec![lock(1, at, "b", pid, false)]);
        let end = at + minutes;
        read(&mut m, &mut r, end, vec![lock(1, end, "b", pid, false)]);
        read(&mut m, &mut r, end + 1, vec![]);
        at = end + 2;
    }
    read(&mut m, &mut r, at, vec![lock(2, at, "b", 11, false)]);
    read(
        &mut m,
        &mut r,
        at + 5,
        vec![lock(2, at + 5, "b", 11, false)],
    );
    let store = s.lock().unwrap();
    let e = store.expected("id", "b", 11, false).unwrap();
    assert_eq!(
        (e.held_since, e.typical, e.samples),
        (Some(t(at)), Some(Duration::minutes(21)), 3),
        "holds of 11, 31 and 21 minutes (to the reading that found them gone)"
    );
    let other_kind = store.expected("id", "b", 11, true).unwrap();
    assert_eq!((other_kind.held_since, other_kind.typical), (None, None));
    let other_repository = store.expected("other", "b", 11, false).unwrap();
    assert_eq!(other_repository.samples, 0);
}
