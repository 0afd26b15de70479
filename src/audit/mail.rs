//! The mail: SMTP spoken by lettre, configured from `SMTP_*` variables or, failing those,
//! from the msmtp configuration the containers already have.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};

use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Off,
    StartTls,
    Tls,
}

impl TlsMode {
    fn describe(self) -> &'static str {
        match self {
            TlsMode::Off => "off",
            TlsMode::StartTls => "starttls",
            TlsMode::Tls => "tls",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub from: Option<String>,
    /// Where these came from, for the log.
    pub source: String,
}

fn on(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" | "1" => Some(true),
        "off" | "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

fn default_port(tls: TlsMode) -> u16 {
    match tls {
        TlsMode::Off => 25,
        TlsMode::StartTls => 587,
        TlsMode::Tls => 465,
    }
}

/// `SMTP_HOST` (required), `SMTP_PORT`, `SMTP_TLS` (`off`, `starttls`, `tls`), `SMTP_USER`,
/// `SMTP_PASSWORD`, `SMTP_FROM`.
pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<SmtpSettings>, String> {
    let Some(host) = get("SMTP_HOST").filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let tls = match get("SMTP_TLS")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") | Some("off") | Some("none") => TlsMode::Off,
        Some("starttls") => TlsMode::StartTls,
        Some("tls") | Some("on") | Some("smtps") => TlsMode::Tls,
        Some(other) => return Err(format!("SMTP_TLS={other:?} is not off, starttls or tls")),
    };
    let port = match get("SMTP_PORT").filter(|p| !p.is_empty()) {
        Some(p) => p
            .parse()
            .map_err(|_| format!("SMTP_PORT={p:?} is not a port number"))?,
        None => default_port(tls),
    };
    Ok(Some(SmtpSettings {
        host,
        port,
        tls,
        user: get("SMTP_USER").filter(|u| !u.is_empty()),
        password: get("SMTP_PASSWORD")
            .filter(|p| !p.is_empty())
            .map(Secret::new),
        from: get("SMTP_FROM").filter(|f| !f.is_empty()),
        source: "SMTP_* variables".into(),
    }))
}

/// An msmtprc's sections in order: `<defaults>` or an account's name, with its keys.
type Sections = Vec<(String, Vec<(String, String)>)>;

/// The file's sections, and the account `account default : NAME` aliases, if any.
fn msmtprc_sections(text: &str) -> (Sections, Option<String>) {
    let mut sections: Sections = Vec::new();
    let mut default_alias = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(char::is_whitespace)
            .map(|(k, v)| (k, v.trim()))
            .unwrap_or((line, ""));
        let value = value.trim_matches('"').to_string();
        match key {
            "defaults" => sections.push(("<defaults>".into(), Vec::new())),
            "account" => {
                if let Some((name, parent)) = value.split_once(':') {
                    if name.trim() == "default" {
                        default_alias = Some(parent.trim().to_string());
                        continue;
                    }
                    sections.push((name.trim().into(), Vec::new()));
                } else {
                    sections.push((value, Vec::new()));
                }
            }
            _ => match sections.last_mut() {
                Some((_, kv)) => kv.push((key.to_string(), value)),
                None => sections.push(("<defaults>".into(), vec![(key.to_string(), value)])),
            },
        }
    }
    (sections, default_alias)
}

/// The keys msmtp would use: `defaults`, overlaid by the account named `default` (or
/// aliased), else by the first account.
fn msmtprc_account(text: &str) -> std::collections::HashMap<String, String> {
    let (sections, default_alias) = msmtprc_sections(text);
    let named = |pick: &dyn Fn(&str) -> bool| {
        sections
            .iter()
            .find(|(n, _)| pick(n))
            .map(|(n, _)| n.clone())
    };
    let wanted = default_alias
        .or_else(|| named(&|n| n == "default"))
        .or_else(|| named(&|n| n != "<defaults>"));
    let mut kv = std::collections::HashMap::new();
    for (name, pairs) in &sections {
        if name == "<defaults>" {
            kv.extend(pairs.iter().cloned());
        }
    }
    if let Some(w) = &wanted
        && let Some((_, pairs)) = sections.iter().find(|(n, _)| n == w)
    {
        kv.extend(pairs.iter().cloned());
    }
    kv
}

/// The account msmtp would use: `defaults`, overlaid by the account named `default` (or
/// aliased by `account default : NAME`), else by the first account.
pub fn from_msmtprc(text: &str, path: &str) -> Result<Option<SmtpSettings>, String> {
    let kv = msmtprc_account(text);
    let Some(host) = kv.get("host").cloned() else {
        return Ok(None);
    };
    let tls_on = kv.get("tls").and_then(|v| on(v)).unwrap_or(false);
    let starttls = kv.get("tls_starttls").and_then(|v| on(v)).unwrap_or(true);
    let tls = match (tls_on, starttls) {
        (false, _) => TlsMode::Off,
        (true, true) => TlsMode::StartTls,
        (true, false) => TlsMode::Tls,
    };
    let port = match kv.get("port") {
        Some(p) => p
            .parse()
            .map_err(|_| format!("{path}: port {p:?} is not a number"))?,
        None => default_port(tls),
    };
    let auth = kv.get("auth").map(|a| a.to_ascii_lowercase());
    let use_auth = !matches!(auth.as_deref(), Some("off") | None) || kv.contains_key("user");
    Ok(Some(SmtpSettings {
        host,
        port,
        tls,
        user: kv.get("user").cloned().filter(|_| use_auth),
        password: kv
            .get("password")
            .cloned()
            .filter(|_| use_auth)
            .map(Secret::new),
        from: kv.get("from").cloned(),
        source: path.to_string(),
    }))
}

/// Sends one plain-text mail; returns the server's answer, or why it failed. The lines
/// of the transcript (no secrets in them) are pushed to `transcript`.
pub fn send(
    s: &SmtpSettings,
    from_default: &str,
    rcpts: &[String],
    subject: &str,
    body: &str,
    transcript: &mut Vec<String>,
) -> Result<String, String> {
    let from = s.from.clone().unwrap_or_else(|| from_default.to_string());
    transcript.push(format!(
        "server {}:{} (tls {}, {}), from {}",
        s.host,
        s.port,
        s.tls.describe(),
        match &s.user {
            Some(u) => format!("login as {u}"),
            None => "no login".into(),
        },
        s.source
    ));
    transcript.push(format!("from: {from}"));
    transcript.push(format!("to: {}", rcpts.join(", ")));
    transcript.push(format!("subject: {subject}"));
    let mut msg = Message::builder()
        .from(from.parse().map_err(|e| format!("sender {from:?}: {e}"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for r in rcpts {
        msg = msg.to(r.parse().map_err(|e| format!("recipient {r:?}: {e}"))?);
    }
    let msg = msg
        .body(body.to_string())
        .map_err(|e| format!("cannot build the message: {e}"))?;
    let builder = match s.tls {
        TlsMode::Off => SmtpTransport::builder_dangerous(&s.host),
        TlsMode::StartTls => SmtpTransport::starttls_relay(&s.host).map_err(|e| e.to_string())?,
        TlsMode::Tls => SmtpTransport::relay(&s.host).map_err(|e| e.to_string())?,
    };
    let mut builder = builder.port(s.port).timeout(Some(Duration::from_secs(30)));
    if let (Some(u), Some(p)) = (&s.user, &s.password) {
        builder = builder.credentials(Credentials::new(u.clone(), p.expose().to_string()));
    }
    crate::install_tls_provider();
    match builder.build().send(&msg) {
        Ok(resp) => {
            let answer = format!(
                "{} {}",
                resp.code(),
                resp.message().collect::<Vec<_>>().join(" ")
            );
            transcript.push(format!("accepted: {answer}"));
            Ok(answer)
        }
        Err(e) => {
            transcript.push(format!("failed: {e}"));
            Err(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msmtprc_default_account_over_defaults() {
        let rc = "# msmtp\ndefaults\nport 2525\ntls off\n\naccount mail\nhost smtp.example.com\nfrom backup@example.com\nauth on\nuser bob\npassword \"s3cret\"\n\naccount default : mail\n";
        let s = from_msmtprc(rc, "/etc/msmtprc").unwrap().unwrap();
        assert_eq!(s.host, "smtp.example.com");
        assert_eq!(s.port, 2525);
        assert_eq!(s.tls, TlsMode::Off);
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.password.unwrap().expose(), "s3cret");
        assert_eq!(s.from.as_deref(), Some("backup@example.com"));
    }

    #[test]
    fn msmtprc_tls_ports() {
        let s = from_msmtprc("account a\nhost h\ntls on\n", "rc")
            .unwrap()
            .unwrap();
        assert_eq!((s.tls, s.port), (TlsMode::StartTls, 587));
        let s = from_msmtprc("account a\nhost h\ntls on\ntls_starttls off\n", "rc")
            .unwrap()
            .unwrap();
        assert_eq!((s.tls, s.port), (TlsMode::Tls, 465));
        assert!(from_msmtprc("# nothing\n", "rc").unwrap().is_none());
    }

    #[test]
    fn env_settings() {
        let env = |k: &str| match k {
            "SMTP_HOST" => Some("127.0.0.1".to_string()),
            "SMTP_PORT" => Some("2525".to_string()),
            "SMTP_TLS" => Some("starttls".to_string()),
            _ => None,
        };
        let s = from_env(&env).unwrap().unwrap();
        assert_eq!((s.port, s.tls), (2525, TlsMode::StartTls));
        let bad = |k: &str| match k {
            "SMTP_HOST" => Some("h".to_string()),
            "SMTP_TLS" => Some("maybe".to_string()),
            _ => None,
        };
        assert!(from_env(&bad).is_err());
    }
}
