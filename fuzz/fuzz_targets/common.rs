// Shared by the targets (each includes it): the fixed key and a host to judge from.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use locksmith::restic::envelope::Key;
use locksmith::process::{HostView, PidState};

/// The restic envelope test vector's key.
pub fn key() -> Key {
    let h = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    Key {
        encrypt: h("303e8687b1d7db18421bdc6bb8588ccadac4d59ee87b8ff70c44e635790cafef")
            .try_into()
            .unwrap(),
        mac_k: h("ef4d8824cb80b2bcc5fbff8a9b12a42c").try_into().unwrap(),
        mac_r: h("cc8d4b948ee0ebfe1d415de921d10353").try_into().unwrap(),
    }
}

/// A host where every odd PID lives (some started recently), named "h".
pub struct Host;

impl HostView for Host {
    fn hostname(&self) -> &str {
        "h"
    }
    fn probe(&self, pid: i32) -> PidState {
        match pid % 3 {
            0 => PidState::Absent,
            1 => PidState::Signalable,
            _ => PidState::NoPermission,
        }
    }
    fn probe_group(&self, group: i32) -> PidState {
        self.probe(group)
    }
    fn started(&self, pid: i32) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(1_700_000_000 + i64::from(pid % 1000) * 60, 0)
    }
    fn command(&self, pid: i32) -> Option<String> {
        Some(if pid % 2 == 0 { "restic" } else { "\u{1b}[2Jsh" }.to_string())
    }
}

/// Nothing a terminal would act on may reach the table.
pub fn assert_printable(table: &str) {
    for c in table.chars() {
        assert!(c == '\n' || !c.is_control(), "control character {c:?} in {table:?}");
    }
}
