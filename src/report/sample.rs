//! Readings made by hand, for the decisions' table tests (the unlock plan, `run`, the
//! clocks): one shape, so a new verdict field is added in one place.

use chrono::{DateTime, Utc};

use super::{JudgedLock, Report};
use crate::locks::{Problem, Unreadable};
use crate::verdict::{Holder, Verdict};

/// A fresh lock's verdict (a minute old) with `holder`; nothing stale, unsafe or removable.
pub fn verdict(holder: Holder) -> Verdict {
    Verdict {
        age_seconds: 60,
        holder,
        holder_command: None,
        restic_unlock_removes: false,
        stale: false,
        abandoned: false,
        clock_skew: false,
        unsafe_: false,
        safe_after: None,
        reason: "why".into(),
        judged_on: None,
        peer_error: None,
        namespace: None,
        unseen: None,
        storage_age_seconds: None,
        clocks_disagree: false,
    }
}

/// A lock `id` of `u@h`, PID 7, written `at`, judged `verdict`.
pub fn lock(id: &str, exclusive: bool, at: DateTime<Utc>, verdict: Verdict) -> JudgedLock {
    JudgedLock {
        id: id.into(),
        exclusive,
        time: String::new(),
        at,
        hostname: "h".into(),
        username: "u".into(),
        pid: 7,
        uid: 0,
        gid: 0,
        verdict,
    }
}

/// A reading of `locks`, with `not_read` entries of `locks/` left unread.
pub fn report(locks: Vec<JudgedLock>, not_read: usize) -> Report {
    let mut r = Report::new(
        "/r",
        "id",
        2,
        Default::default(),
        Utc::now(),
        &crate::process::ThisHost::new(),
    );
    r.locks = locks;
    r.unreadable = (0..not_read)
        .map(|i| Unreadable {
            id: format!("{i:064}"),
            kind: Problem::NotRead,
            error: "not read before the deadline".into(),
        })
        .collect();
    r
}
