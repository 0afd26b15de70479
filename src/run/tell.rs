//! What a run tells while it waits: one line each time what is in the way changes (with
//! the time left by its host's typical hold, where serve's history is on this host), and
//! on a terminal a progress line under them.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::Utc;

use super::decide::Blocker;
use crate::history::{Expected, Place, Store};
use crate::verdict::Holder;

pub use crate::duration::words as human;

/// One holder in the history: (host, PID, exclusive).
type Key = (String, i64, bool);

pub struct Teller {
    /// stderr is a terminal: a progress line is drawn (and cleared before each line).
    terminal: bool,
    drawn: bool,
    /// What is in the way, as last said (without the expected times).
    said: String,
    history: Option<Store>,
    expected: HashMap<Key, Expected>,
}

impl Teller {
    /// `state`: where serve's history may be (read only, when it is there).
    pub fn new(state: Option<&Place>) -> Teller {
        Teller {
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
            said: String::new(),
            history: state.and_then(|p| Store::open_existing(&p.dir).ok()),
            expected: HashMap::new(),
        }
    }

    /// A line of its own (the progress line, if any, cleared first).
    pub fn say(&mut self, line: &str) {
        self.clear();
        eprintln!("locksmith run: {}", crate::printable::printable(line));
    }

    /// What is in the way now: said when it changed (the holders' expected times with
    /// it), and on a terminal the progress line redrawn.
    pub fn waiting(&mut self, now: String, blockers: &[Blocker], repository_id: &str) {
        if now != self.said {
            let expect: Vec<String> = blockers
                .iter()
                .filter(|b| b.holder == Holder::Alive)
                .filter_map(|b| self.expect(repository_id, b))
                .collect();
            let line = match expect.is_empty() {
                true => now.clone(),
                false => format!("{now} ({})", expect.join("; ")),
            };
            self.say(&line);
            self.said = now;
        }
    }

    /// On a terminal: how long the run has waited, and how long it still may.
    pub fn progress(&mut self, waited: Duration, left: Duration, next: Duration) {
        if !self.terminal {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Klocksmith run: waited {}, at most {} more; reading again in {}",
            human(waited),
            human(left),
            human(next)
        );
        let _ = err.flush();
        self.drawn = true;
    }

    /// What is in the way, as last said.
    pub fn last(&self) -> &str {
        &self.said
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
    }

    /// `b`'s hold by the history: how long it has held, and about how long is left.
    fn expect(&mut self, repository_id: &str, b: &Blocker) -> Option<String> {
        let store = self.history.as_ref()?;
        let key = (b.hostname.clone(), b.pid, b.exclusive);
        if !self.expected.contains_key(&key) {
            let got = store
                .expected(repository_id, &b.hostname, b.pid, b.exclusive)
                .ok()?;
            self.expected.insert(key.clone(), got);
        }
        expectation(&b.hostname, &self.expected[&key], Utc::now())
    }
}

/// The words for a hold's expectation at `now`: `None` when the history knows nothing.
fn expectation(host: &str, e: &Expected, now: chrono::DateTime<Utc>) -> Option<String> {
    let held = e
        .held_since
        .map(|t| (now - t).max(chrono::Duration::zero()));
    let words = |d: chrono::Duration| human(d.to_std().unwrap_or_default());
    match (held, e.typical) {
        (Some(h), Some(t)) if h < t => Some(format!(
            "held {}; {host}'s holds last {} as a rule: about {} left",
            words(h),
            words(t),
            words(t - h)
        )),
        (Some(h), Some(t)) => Some(format!(
            "held {}, longer than {host}'s usual {}",
            words(h),
            words(t)
        )),
        (None, Some(t)) => Some(format!("{host}'s holds last {} as a rule", words(t))),
        (Some(h), None) => Some(format!("held {}", words(h))),
        (None, None) => None,
    }
}

/// The waiting line: what is in the way, and what would clear it.
pub fn in_the_way(blockers: &[Blocker], unreadable: usize, recover: bool, cmd: &str) -> String {
    let mut parts: Vec<String> = blockers
        .iter()
        .map(|b| {
            let state = match (b.dead, b.removable) {
                (false, _) => match (b.holder, &b.doubt) {
                    (Holder::Alive, _) => "alive".to_string(),
                    (Holder::Unknown, _) => {
                        "cannot be judged from here (run `locksmith agent` on its host and pass --peer)".to_string()
                    }
                    (_, Some(doubt)) => format!("gone, but not proven dead: {doubt}"),
                    (_, None) => "gone, but not proven dead (see `locksmith locks`)".to_string(),
                },
                (true, true) if recover => "dead".to_string(),
                (true, true) => "dead: --recover would remove it".to_string(),
                (true, false) => "dead, but restic keeps it yet".to_string(),
            };
            let after = match (b.dead, b.removable, b.safe_after) {
                (true, false, Some(t)) => {
                    format!(", removable after {}", crate::duration::clock(t))
                }
                _ => String::new(),
            };
            format!("{}: {state}{after}", b.who)
        })
        .collect();
    if unreadable > 0 {
        parts.push(format!(
            "{unreadable} unreadable entr{} of locks/ (see `locksmith locks`)",
            if unreadable == 1 { "y" } else { "ies" }
        ));
    }
    format!("`{cmd}` waits for {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_time_left_comes_from_the_typical_hold() {
        let now = Utc::now();
        let ago = |m: i64| Some(now - chrono::Duration::minutes(m));
        let e = |held: Option<_>, typical: Option<i64>| Expected {
            held_since: held,
            typical: typical.map(chrono::Duration::minutes),
            samples: 5,
        };
        let cases = [
            (
                e(ago(12), Some(40)),
                Some("held 12m0s; hostb's holds last 40m0s as a rule: about 28m0s left"),
            ),
            (
                e(ago(55), Some(40)),
                Some("held 55m0s, longer than hostb's usual 40m0s"),
            ),
            (
                e(None, Some(40)),
                Some("hostb's holds last 40m0s as a rule"),
            ),
            (e(ago(3), None), Some("held 3m0s")),
            (e(None, None), None),
        ];
        for (e, want) in cases {
            assert_eq!(expectation("hostb", &e, now).as_deref(), want, "{e:?}");
        }
    }
}
