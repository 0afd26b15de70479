//! The unlock contract's settings: flags and the environment, resolved once.

use std::path::PathBuf;
use std::time::Duration;

use crate::audit::mail;
use crate::config::RawRepoOptions;
use crate::location::Masked;
use crate::secret::{Redactor, Secret};

/// Which locks the removal asks restic for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `restic unlock`: the locks restic calls stale.
    StaleOnly,
    /// `restic unlock --remove-all`: every lock, unread.
    All,
}

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    pub scope: Scope,
    /// Inspect and say what would happen; never run restic.
    pub dry_run: bool,
    /// Run restic even where locksmith calls it unsafe.
    pub force: bool,
}

/// Where the run writes its files and looks for its hooks.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub log: PathBuf,
    pub hooks: PathBuf,
}

/// What the unlock run needs, resolved from flags and the environment contract.
#[derive(Debug, Clone)]
pub struct UnlockOptions {
    pub asked: Asked,
    pub log_dir: PathBuf,
    pub hook_dir: PathBuf,
    pub repo: RawRepoOptions,
    pub restic_bin: PathBuf,
    pub release: String,
    pub auto_unlock: String,
    pub hostname: String,
    pub log_verbose: bool,
    pub hook_timeout: Option<Duration>,
    pub metrics_dir: Option<PathBuf>,
    pub mail_rcpt: Vec<String>,
    pub mail_on_error: bool,
    pub smtp_env: Result<Option<mail::SmtpSettings>, String>,
    pub msmtprc: PathBuf,
    pub webhook_url: Option<Secret>,
    pub webhook_auth: Option<Secret>,
    pub webhook_timeout: Duration,
    pub webhook_on_error: bool,
    pub cacerts: Vec<PathBuf>,
    /// Problems with the settings themselves: logged, never fatal.
    pub warnings: Vec<String>,
    pub redactor: Redactor,
    /// Where the removals are recorded (serve's history), if anywhere.
    pub state: Option<crate::history::Place>,
    /// Where the removal is refused only until a danger passes (a live holder ends, a
    /// lock becomes restic's to remove), wait up to this long instead of refusing.
    pub wait: Option<Duration>,
    /// Who ran this unlock on its own (`locksmith run --recover` before its command), for
    /// the summary's `automatic`; `None`: an operator.
    pub automatic: Option<String>,
}

fn is_on(v: Option<String>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("on"))
}

/// `HOOK_TIMEOUT`: seconds, 0 or unset for no limit; anything else warns, no limit.
fn hook_timeout(v: Option<String>, warnings: &mut Vec<String>) -> Option<Duration> {
    let v = v?;
    match v.trim().parse::<u64>() {
        Ok(0) => None,
        Ok(n) => Some(Duration::from_secs(n)),
        Err(_) => {
            warnings.push(format!(
                "WARNING: HOOK_TIMEOUT={v:?} is not a non-negative integer: no time limit"
            ));
            None
        }
    }
}

/// `WEBHOOK_TIMEOUT`: positive seconds, 10 when unset; anything else warns, 10.
fn webhook_timeout(v: Option<String>, warnings: &mut Vec<String>) -> Duration {
    let ten = Duration::from_secs(10);
    let Some(v) = v else {
        return ten;
    };
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Duration::from_secs(n),
        _ => {
            warnings.push(format!(
                "WARNING: WEBHOOK_TIMEOUT={v:?} is not a positive integer: using 10"
            ));
            ten
        }
    }
}

/// Every secret the run may meet: the secret variables and the repository's URL
/// passwords (as given and from the repository file).
fn redactor(set: &dyn Fn(&str) -> Option<String>, repo: &RawRepoOptions) -> Redactor {
    let mut redactor = Redactor::default();
    for k in crate::config::secret_vars() {
        if let Some(v) = set(k) {
            redactor.add(&v);
        }
    }
    for given in [repo.repo.clone(), repo.resolve_repository().ok()]
        .into_iter()
        .flatten()
    {
        for pw in Masked::url_passwords(&given) {
            redactor.add(&pw);
        }
    }
    redactor
}

impl UnlockOptions {
    /// Reads the environment contract through `get` (tests pass their own).
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
        repo: RawRepoOptions,
        asked: Asked,
        dirs: Dirs,
    ) -> UnlockOptions {
        let set = |k: &str| get(k).filter(|v| !v.is_empty());
        let mut warnings = Vec::new();
        let hook_timeout = hook_timeout(set("HOOK_TIMEOUT"), &mut warnings);
        let webhook_timeout = webhook_timeout(set("WEBHOOK_TIMEOUT"), &mut warnings);
        let cacerts = set("RESTIC_CACERT")
            .map(|v| crate::backend::cacert_paths(&v))
            .unwrap_or_default();
        let redactor = redactor(&set, &repo);
        let msmtprc = set("MSMTP_CONFIG").unwrap_or_else(|| "/etc/msmtprc".into());
        UnlockOptions {
            asked,
            log_dir: dirs.log,
            hook_dir: dirs.hooks,
            repo,
            restic_bin: set("RESTIC_BIN").unwrap_or_else(|| "restic".into()).into(),
            release: set("RESTIC_BACKUP_HELPER_RELEASE").unwrap_or_else(|| "unknown".into()),
            auto_unlock: set("RESTIC_AUTO_UNLOCK").unwrap_or_else(|| "OFF".into()),
            hostname: set("HOSTNAME")
                .or_else(|| Some(crate::process::local_hostname()).filter(|h| !h.is_empty()))
                .unwrap_or_else(|| "unknown".into()),
            log_verbose: get("LOG_VERBOSE").is_none_or(|v| !v.eq_ignore_ascii_case("off")),
            hook_timeout,
            metrics_dir: set("METRICS_DIR").map(PathBuf::from),
            mail_rcpt: set("MAILX_RCPT")
                .map(|r| {
                    r.split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            mail_on_error: is_on(get("MAILX_ON_ERROR")),
            smtp_env: mail::from_env(get),
            msmtprc: msmtprc.into(),
            webhook_url: set("WEBHOOK_URL").map(Secret::new),
            webhook_auth: set("WEBHOOK_HEADER_AUTH").map(Secret::new),
            webhook_timeout,
            webhook_on_error: is_on(get("WEBHOOK_ON_ERROR")),
            cacerts,
            warnings,
            redactor,
            state: None,
            wait: None,
            automatic: None,
        }
    }
}

impl UnlockOptions {
    /// Where mail goes: `SMTP_*`, else the msmtp configuration file.
    pub fn smtp(&self) -> Result<mail::SmtpSettings, String> {
        match &self.smtp_env {
            Err(e) => Err(e.clone()),
            Ok(Some(s)) => Ok(s.clone()),
            Ok(None) => match std::fs::read_to_string(&self.msmtprc) {
                Ok(text) => mail::from_msmtprc(&text, &self.msmtprc.display().to_string())
                    .and_then(|s| {
                        s.ok_or_else(|| format!("{} names no SMTP host", self.msmtprc.display()))
                    }),
                Err(e) => Err(format!(
                    "no SMTP_HOST and cannot read {}: {e}",
                    self.msmtprc.display()
                )),
            },
        }
    }
}
