//! One answer per agent per round. Every repository of a fleet asks the same agents about
//! mostly the same locks; the first to ask in a round asks for all of them (its own and
//! those the others wanted last round) and the rest read that answer.
//!
//! An answer is a snapshot of the agent's processes at the moment it was asked. It judges a
//! lock rightly only if the lock existed then: a holder dead or replaced at that moment
//! stays so, while a lock written afterwards may belong to a process started since. So an
//! answer serves only locks that had been read before it was asked: never by comparing
//! times (the writer's clock may be wrong), only by lock ID. A holder alive in the answer
//! may have ended since; that errs toward waiting, for at most one round.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::answer::Question;
use super::view::PeerView;
use crate::process::SignalTarget;

/// What a peer is asked about: lock IDs (read before the question is sent), and each
/// lock's PID and time (Unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted(pub BTreeMap<String, (i64, i64)>);

/// The most lock IDs one kept answer covers: beyond it, a round asks for its own only.
const MAX_COVERED: usize = 8192;

impl Wanted {
    /// The PIDs of these locks, and where restic's probe would land for each.
    pub fn question(&self) -> Question {
        let mut q = Question::default();
        for &(pid, time) in self.0.values() {
            q.about(pid);
            q.since = Some(q.since.map_or(time, |s| s.min(time)));
        }
        q
    }

    fn covered_by(&self, kept: &Wanted) -> bool {
        self.0.keys().all(|id| kept.0.contains_key(id))
    }
}

impl Question {
    /// Adds a lock's PID: the PID itself, and where restic's probe lands for it.
    pub fn about(&mut self, pid: i64) {
        if let Ok(p) = i32::try_from(pid)
            && p > 0
        {
            self.pids.insert(p);
        }
        match SignalTarget::of(pid) {
            SignalTarget::Process(k) => self.pids.insert(k),
            SignalTarget::Group(g) => self.groups.insert(g),
            _ => false,
        };
    }
}

/// A peer's answer (or why there is none), and what it covers.
pub(crate) type Got = Result<(PeerView, Duration), String>;

struct Kept {
    got: Got,
    at: Instant,
    covers: Wanted,
}

/// The answers of the current round, per agent; one asker at a time per agent.
#[derive(Default)]
pub struct Memo {
    round: Duration,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Kept>>>>>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memo {{ round: {:?} }}", self.round)
    }
}

impl Memo {
    /// Answers kept for `round` (zero: each reading asks anew).
    pub fn new(round: Duration) -> Memo {
        Memo {
            round,
            slots: Mutex::default(),
        }
    }

    /// The answer of `peer` about `wanted`: this round's, if it covers these locks (or the
    /// peer failed this round), else asked with `ask`, together with what was wanted in the
    /// last round, so that the other repositories find it.
    pub(crate) async fn answer<F, Fut>(&self, peer: &str, wanted: Wanted, ask: F) -> Got
    where
        F: FnOnce(Question) -> Fut,
        Fut: std::future::Future<Output = Got>,
    {
        if self.round.is_zero() {
            return ask(wanted.question()).await;
        }
        let slot = self
            .slots
            .lock()
            .expect("not poisoned")
            .entry(peer.to_string())
            .or_default()
            .clone();
        let mut kept = slot.lock().await;
        if let Some(k) = kept.as_ref()
            && k.at.elapsed() < self.round
            && (k.got.is_err() || wanted.covered_by(&k.covers))
        {
            return k.got.clone();
        }
        let mut covers = wanted;
        if let Some(k) = kept.as_ref()
            && k.at.elapsed() < self.round * 2
        {
            for (id, lock) in &k.covers.0 {
                if covers.0.len() >= MAX_COVERED {
                    break;
                }
                covers.0.entry(id.clone()).or_insert(*lock);
            }
        }
        let at = Instant::now();
        let got = ask(covers.question()).await;
        *kept = Some(Kept {
            got: got.clone(),
            at,
            covers,
        });
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn wanted(ids: &[(&str, i64)]) -> Wanted {
        Wanted(ids.iter().map(|(i, p)| (i.to_string(), (*p, 0))).collect())
    }

    async fn ask_counting(memo: &Memo, n: &AtomicUsize, w: Wanted) -> Question {
        let asked = Mutex::new(Question::default());
        let _ = memo
            .answer("b", w, |q| {
                n.fetch_add(1, Ordering::SeqCst);
                *asked.lock().unwrap() = q;
                async { Err("down".to_string()) }
            })
            .await;
        asked.into_inner().unwrap()
    }

    #[tokio::test]
    async fn a_failed_answer_serves_the_whole_round() {
        let memo = Memo::new(Duration::from_secs(60));
        let n = AtomicUsize::new(0);
        ask_counting(&memo, &n, wanted(&[("l1", 10)])).await;
        ask_counting(&memo, &n, wanted(&[("l2", 20)])).await;
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_a_round_every_reading_asks() {
        let memo = Memo::new(Duration::ZERO);
        let n = AtomicUsize::new(0);
        ask_counting(&memo, &n, wanted(&[("l1", 10)])).await;
        ask_counting(&memo, &n, wanted(&[("l1", 10)])).await;
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_lock_read_after_the_answer_is_asked_about_with_last_rounds_locks() {
        let memo = Memo::new(Duration::from_secs(60));
        let ok = |q: Question| async move {
            let _ = q;
            Err::<(PeerView, Duration), _>(String::new())
        };
        // A success is needed for coverage to matter: seed one by hand.
        let slot = memo
            .slots
            .lock()
            .unwrap()
            .entry("b".into())
            .or_default()
            .clone();
        let view = PeerView {
            answer: serde_json::from_value(serde_json::json!({
                "hostname": "b", "now": "2026-01-01T00:00:00Z", "boot_time": null,
                "processes": [], "groups": [],
                "kernel": {"names": [], "processes": [], "unseen": []}
            }))
            .unwrap(),
            offset: chrono::Duration::zero(),
        };
        *slot.lock().await = Some(Kept {
            got: Ok((view, Duration::ZERO)),
            at: Instant::now(),
            covers: wanted(&[("l1", 10)]),
        });
        let n = AtomicUsize::new(0);
        let got = memo.answer("b", wanted(&[("l1", 10)]), ok).await;
        assert!(got.is_ok(), "a lock read before the answer is judged by it");
        let q = ask_counting(&memo, &n, wanted(&[("l2", 20)])).await;
        assert_eq!(n.load(Ordering::SeqCst), 1, "a new lock is asked about");
        assert_eq!(q.pids, [10, 20].into(), "with what was wanted before");
    }
}
