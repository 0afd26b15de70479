use super::*;
use crate::report::holders::tests::{lock, report, t};

fn key_ids(changed: &[Life]) -> Vec<(i64, Option<Ended>)> {
    changed
        .iter()
        .map(|l| (l.span.key.pid, l.span.ended))
        .collect()
}

#[test]
fn memory_keeps_held_since_across_replacements_and_forgets_ended_jobs() {
    let mut m = Memory::default();
    let mut first = report(0, vec![lock(1, -1, "b", 7, true)]);
    assert_eq!(key_ids(&m.update(&mut first, t(0))), vec![(7, None)]);
    // restic wrote a new file and removed the old one: the life changes (its files).
    let mut second = report(5, vec![lock(2, 4, "b", 7, true)]);
    assert_eq!(m.update(&mut second, t(5)).len(), 1);
    assert_eq!(second.holders[0].span.held_since, t(-1));
    assert_eq!(second.holders[0].span.first_seen, t(0));
    assert_eq!(second.holders[0].lock_ids, vec!["02".repeat(32)]);
    assert_eq!(m.exclusive_held_seconds, 300.0);
    // Nothing changed: nothing to write.
    let mut quiet = report(6, vec![lock(2, 4, "b", 7, true)]);
    assert!(m.update(&mut quiet, t(6)).is_empty());
    // The job ended: a reading without it; the next job of that name starts afresh.
    let mut empty = report(10, vec![]);
    let ended = m.update(&mut empty, t(10));
    assert_eq!(key_ids(&ended), vec![(7, Some(Ended::Gone))]);
    assert_eq!(
        (ended[0].span.last_seen, ended[0].span.ended_at),
        (t(6), Some(t(10)))
    );
    assert_eq!(ended[0].held_seconds(), 7 * 60);
    let mut third = report(15, vec![lock(3, 14, "b", 7, true)]);
    m.update(&mut third, t(15));
    assert_eq!(third.holders[0].span.held_since, t(14));
    assert_eq!(
        m.exclusive_held_seconds, 420.0,
        "and only the minute since 14"
    );
}

#[test]
fn the_worst_verdict_stays_once_reached() {
    let mut m = Memory::default();
    // Another host's lock 40 minutes old: stale by age.
    let mut old = report(0, vec![lock(1, -40, "b", 7, false)]);
    let begun = m.update(&mut old, t(0));
    assert_eq!(begun[0].span.worst, Some(Worst::Stale));
    // It refreshed again: no longer stale, but the worst it reached stays.
    let mut fresh = report(1, vec![lock(2, 0, "b", 7, false)]);
    let changed = m.update(&mut fresh, t(1));
    assert_eq!(
        (changed[0].span.worst, changed[0].stale),
        (Some(Worst::Stale), false)
    );
    assert_eq!(fresh.holders[0].span.worst, Some(Worst::Stale));
}

/// (minutes between the readings, a lock file kept across the gap, the same job).
#[test]
fn across_a_gap_a_job_is_the_same_by_a_file_seen_or_a_short_gap() {
    let cases = [(5, false, true), (30, true, true), (30, false, false)];
    for (gap, keep_file, same) in cases {
        let mut m = Memory::default();
        let mut first = report(0, vec![lock(1, -1, "b", 7, true)]);
        m.update(&mut first, t(0));
        assert_eq!(m.unreadable(t(1)).len(), 1);
        assert!(m.unreadable(t(2)).is_empty(), "once per spell");
        let n = if keep_file { 1 } else { 2 };
        let mut back = report(gap, vec![lock(n, gap - 1, "b", 7, true)]);
        let changed = m.update(&mut back, t(gap));
        let first_seen = back.holders[0].span.first_seen;
        assert_eq!(first_seen == t(0), same, "gap {gap}, file kept {keep_file}");
        // Taken up again (ended cleared), or a new life beside the unreadable one.
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(changed[0].span.ended, None);
    }
}

#[test]
fn a_resumed_memory_goes_on_with_the_stored_lives() {
    let mut m = Memory::default();
    let mut first = report(0, vec![lock(1, -30, "b", 7, true)]);
    let lives = m.update(&mut first, t(0));
    // A restart: the stored life, and a reading with the job's next file 3 minutes on.
    let mut m = Memory::resume(lives);
    let mut next = report(3, vec![lock(2, 2, "b", 7, true)]);
    m.update(&mut next, t(3));
    assert_eq!(
        next.holders[0].span.held_since,
        t(-30),
        "held since before the restart"
    );
    // A stored life no reading finds again ends gone.
    let mut m = Memory::resume(m.update(&mut report(4, vec![]), t(4)));
    assert!(
        m.update(&mut report(5, vec![]), t(5)).is_empty(),
        "ended already"
    );
}

/// A lock whose PID a later process took (an earlier job) stays one life when that
/// process exits and the verdict turns from reused to gone: the lock file is the same.
#[test]
fn a_verdict_change_never_starts_a_new_life() {
    let mut m = Memory::default();
    let mut squatted = report(0, vec![lock(1, -90, "here", 100, true)]);
    assert!(
        squatted.holders[0].span.key.earlier,
        "PID 100 started after the lock"
    );
    let begun = m.update(&mut squatted, t(0));
    assert_eq!(begun.len(), 1);
    let id = begun[0].id;
    let mut freed = report(1, vec![lock(1, -90, "here", 100, true)]);
    freed.holders[0].span.key.earlier = false;
    let changed = m.update(&mut freed, t(1));
    assert_eq!(key_ids(&changed), vec![(100, None)], "one life, still held");
    assert_eq!(changed[0].id, id);
    assert!(!changed[0].span.key.earlier);
    assert_eq!(freed.holders[0].span.first_seen, t(0));
    let mut gone = report(2, vec![]);
    let ended = m.update(&mut gone, t(2));
    assert_eq!(key_ids(&ended), vec![(100, Some(Ended::Gone))]);
    assert_eq!(ended[0].id, id, "and it ends once");
}
