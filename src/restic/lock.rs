//! A lock file's JSON, decoded exactly as restic's Go `encoding/json` decodes it into its
//! `Lock` struct, so that "restic can load this lock" is predicted, not assumed. Go's rules
//! that serde's differ from: keys match case-insensitively (with Unicode's `ſ` and `K`
//! folds), a later duplicate key wins, `null` leaves a field as it was, a missing `time`
//! is Go's zero time, invalid UTF-8 is replaced rather than refused, and a value of the
//! wrong type fails the whole load.

use chrono::{DateTime, FixedOffset};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::gotime;

/// A lock file's content, as restic writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lock {
    /// Time of the last refresh (not of the command's start), in the writer's offset.
    #[serde(serialize_with = "ser_time")]
    pub time: DateTime<FixedOffset>,
    pub exclusive: bool,
    pub hostname: String,
    pub username: String,
    pub pid: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub uid: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub gid: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Go's `RFC3339Nano`, as restic writes it: the fraction without trailing zeros.
fn ser_time<S: Serializer>(t: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&go_time_text(t))
}

pub fn go_time_text(t: &DateTime<FixedOffset>) -> String {
    let full = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    // "…:SS.nnnnnnnnn" then "Z" or "±hh:mm".
    let zone_at = full.rfind(['Z', '+', '-']).unwrap_or(full.len());
    let (clock, zone) = full.split_at(zone_at);
    let clock = clock.trim_end_matches('0').trim_end_matches('.');
    format!("{clock}{zone}")
}

/// Why restic cannot load a lock's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The `time` value is not one Go's RFC 3339 parser takes.
    Time(String),
    /// Anything else: not JSON, not an object, a value of the wrong type.
    Json(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Time(e) | LoadError::Json(e) => f.write_str(e),
        }
    }
}

/// An object's members in document order, duplicates kept, each value as its raw text.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(member) = m.next_entry::<String, Box<RawValue>>()? {
                    out.push(member);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Go's `bytes.EqualFold` against one of the (lower-case ASCII) field names.
fn folds_to(key: &str, name: &str) -> bool {
    let mut k = key.chars();
    for n in name.chars() {
        let matches = match k.next() {
            Some(c) if c.to_ascii_lowercase() == n => true,
            Some('\u{17f}') => n == 's',
            Some('\u{212a}') => n == 'k',
            _ => false,
        };
        if !matches {
            return false;
        }
    }
    k.next().is_none()
}

const FIELDS: [&str; 7] = [
    "time",
    "exclusive",
    "hostname",
    "username",
    "pid",
    "uid",
    "gid",
];

fn field_of(key: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|f| **f == key)
        .or_else(|| FIELDS.iter().find(|f| folds_to(key, f)))
        .copied()
}

impl Lock {
    /// Decodes a lock's JSON as restic does; the error says why restic cannot load it.
    pub fn from_go_json(bytes: &[u8]) -> Result<Lock, LoadError> {
        let json = |e: serde_json::Error| LoadError::Json(format!("not JSON: {e}"));
        let text = String::from_utf8_lossy(bytes);
        let mut lock = Lock {
            time: gotime::go_zero_time(),
            exclusive: false,
            hostname: String::new(),
            username: String::new(),
            pid: 0,
            uid: 0,
            gid: 0,
        };
        match serde_json::from_str::<Value>(&text).map_err(json)? {
            Value::Null => return Ok(lock),
            Value::Object(_) => {}
            other => {
                return Err(LoadError::Json(format!(
                    "not a JSON object but {}",
                    kind(&other)
                )));
            }
        }
        let members: Members = serde_json::from_str(&text).map_err(json)?;
        let mut first_error: Option<LoadError> = None;
        for (key, raw) in members.0 {
            let Some(field) = field_of(&key) else {
                continue;
            };
            let value: Value = serde_json::from_str(raw.get()).map_err(json)?;
            if value.is_null() {
                continue;
            }
            let got = lock.set(field, raw.get(), &value);
            if let Err(e) = got {
                // Go goes on decoding and reports the first error at the end.
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(lock),
        }
    }
}

impl Lock {
    /// One field, as Go's decoder sets it: `raw` as written, `value` parsed.
    fn set(&mut self, field: &str, raw: &str, value: &Value) -> Result<(), LoadError> {
        let wrong = |want: &str| {
            LoadError::Json(format!(
                "{field:?} is {} where restic wants {want}",
                kind(value)
            ))
        };
        let u32_wanted = "a 32-bit unsigned integer";
        match field {
            "time" => match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                Some(inner) => gotime::parse(inner)
                    .map(|t| self.time = t)
                    .map_err(LoadError::Time),
                None => Err(wrong("an RFC 3339 string")),
            },
            "exclusive" => value
                .as_bool()
                .map(|b| self.exclusive = b)
                .ok_or_else(|| wrong("true or false")),
            "hostname" => value
                .as_str()
                .map(|s| self.hostname = s.to_string())
                .ok_or_else(|| wrong("a string")),
            "username" => value
                .as_str()
                .map(|s| self.username = s.to_string())
                .ok_or_else(|| wrong("a string")),
            "pid" => value
                .as_i64()
                .map(|n| self.pid = n)
                .ok_or_else(|| wrong("a 64-bit integer")),
            "uid" => as_u32(value)
                .map(|n| self.uid = n)
                .ok_or_else(|| wrong(u32_wanted)),
            _ => as_u32(value)
                .map(|n| self.gid = n)
                .ok_or_else(|| wrong(u32_wanted)),
        }
    }
}

fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a non-integer number",
        Value::Number(_) => "a number out of range",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = r#"{"time":"2026-11-24T15:35:40.37577364Z","exclusive":false,"hostname":"otherhost","username":"bob","pid":13202,"uid":1234,"gid":1234}"#;

    #[test]
    fn restic_written_lock() {
        let l = Lock::from_go_json(REAL.as_bytes()).unwrap();
        assert_eq!(
            (l.hostname.as_str(), l.pid, l.uid, l.gid),
            ("otherhost", 13202, 1234, 1234)
        );
        assert_eq!(serde_json::to_string(&l).unwrap(), REAL);
    }

    #[test]
    fn go_decoding_rules() {
        let l = Lock::from_go_json(br#"{"TIME":"2026-11-24T15:35:40Z","HostName":"a","hostname":"b","PID":7,"uid":null,"u\u017fername":"eve"}"#).unwrap();
        assert_eq!(l.hostname, "b", "a later key wins");
        assert_eq!((l.pid, l.uid, l.username.as_str()), (7, 0, "eve"));
        assert_eq!(l.time.to_rfc3339(), "2026-11-24T15:35:40+00:00");
        let zero = Lock::from_go_json(br#"{"pid":5}"#).unwrap();
        assert_eq!(
            zero.time,
            gotime::go_zero_time(),
            "missing time is Go's zero time"
        );
        assert_eq!(Lock::from_go_json(b"null").unwrap().pid, 0);
        let nested = Lock::from_go_json(
            br#"{"x":{"time":"junk","a":"1","a":"2","y":["a","b"]},"hostname":"h","time":"2026-11-24T15:35:40Z"}"#,
        )
        .unwrap();
        assert_eq!(nested.hostname, "h");
    }

    #[test]
    fn what_fails_restics_load() {
        for bad in [
            r#"{"time":"2026-11-24 15:35:40Z"}"#,
            r#"{"time":5}"#,
            r#"{"exclusive":"true"}"#,
            r#"{"pid":1.5}"#,
            r#"{"pid":1e3}"#,
            r#"{"pid":18446744073709551615}"#,
            r#"{"uid":-1}"#,
            r#"{"gid":4294967296}"#,
            r#"{"hostname":7}"#,
            r#"[]"#,
            r#"{"pid":1} x"#,
        ] {
            assert!(Lock::from_go_json(bad.as_bytes()).is_err(), "{bad} loaded");
        }
        for bad_time in [r#"{"time":"2026-11-24 15:35:40Z"}"#, r#"{"time":"24:00"}"#] {
            assert!(matches!(
                Lock::from_go_json(bad_time.as_bytes()),
                Err(LoadError::Time(_))
            ));
        }
    }
}
