//! The web configuration (`--web-config FILE`), in Prometheus exporter-toolkit's format so
//! operators reuse what their other exporters use: `tls_server_config`,
//! `basic_auth_users` (bcrypt hashes) and `http_server_config.headers`. Every mistake is
//! found before anything listens, and named by the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    #[serde(default)]
    headers: BTreeMap<String, String>,
    http2: Option<bool>,
}

/// Why a web configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--web-config {}: {why}", file.display())]
pub struct WebConfigError {
    pub file: PathBuf,
    pub why: String,
}

/// Credentials that passed a bcrypt check, by user and the password's SHA-256. Only
/// successes are kept: one per configured user at most, so no flood of wrong passwords
/// can grow it or push a scraper's entry out.
type Verified = HashMap<String, [u8; 32]>;

/// The highest bcrypt cost accepted: each check at cost 14 already takes about a second
/// (doubling with each step), and checks run one at a time.
pub const MAX_BCRYPT_COST: u32 = 14;

/// One bcrypt check at a time.
#[derive(Clone)]
struct Turns(Arc<tokio::sync::Semaphore>);

impl Default for Turns {
    fn default() -> Self {
        Turns(Arc::new(tokio::sync::Semaphore::new(1)))
    }
}

/// A checked web configuration.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    /// A client certificate must name one of these (DNS, e-mail, IP or URI SAN).
    pub allowed_sans: Option<Vec<String>>,
    users: Arc<BTreeMap<String, String>>,
    /// Credentials already checked, by user and the password's SHA-256: bcrypt costs tens
    /// of milliseconds, and a scraper sends the same ones every time.
    verified: Arc<Mutex<Verified>>,
    /// bcrypt checks run one at a time (as exporter-toolkit serialises them): a flood of
    /// wrong passwords waits its turn, and a client gone while it waits costs nothing.
    bcrypt: Turns,
    pub headers: Vec<(axum::http::HeaderName, axum::http::HeaderValue)>,
    /// Every connection presents a verified client certificate.
    client_certs: bool,
}

/// The web configuration in force, re-read at SIGHUP: a renewed certificate is served
/// from the next handshake, and a removed user is refused from the next request (its
/// checked credentials go with the old configuration). A file that cannot be used is
/// said, and the configuration before it kept.
#[derive(Clone, Default)]
pub struct LiveWeb {
    path: Option<std::path::PathBuf>,
    now: Arc<std::sync::RwLock<WebConfig>>,
}

impl LiveWeb {
    pub fn new(path: Option<&Path>, first: WebConfig) -> LiveWeb {
        LiveWeb {
            path: path.map(Path::to_path_buf),
            now: Arc::new(std::sync::RwLock::new(first)),
        }
    }

    pub fn current(&self) -> WebConfig {
        self.now.read().expect("not poisoned").clone()
    }

    /// Reads the file again (off the runtime: it may be slow storage), and says how it went
    /// in a line for the log; `None` without a file.
    pub async fn reload(&self) -> Option<String> {
        let path = self.path.clone()?;
        let got = tokio::task::spawn_blocking(move || WebConfig::load(&path)).await;
        Some(match got {
            Ok(Ok(w)) => {
                *self.now.write().expect("not poisoned") = w;
                "web configuration reloaded".to_string()
            }
            Ok(Err(e)) => format!("web configuration reload failed, keeping the previous: {e}"),
            Err(_) => "web configuration reload failed".to_string(),
        })
    }
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let err = |why: String| WebConfigError {
            file: path.to_path_buf(),
            why,
        };
        let text = crate::files::read_config(path).map_err(|e| err(e.to_string()))?;
        let file: File = yaml_serde::from_str(&text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = file
            .tls_server_config
            .as_ref()
            .map(|t| tls_config(t, base))
            .transpose()
            .map_err(err)?;
        for (user, hash) in &file.basic_auth_users {
            let parts = hash
                .parse::<bcrypt::HashParts>()
                .map_err(|e| err(format!("basic_auth_users.{user}: not a bcrypt hash: {e}")))?;
            if parts.get_cost() > MAX_BCRYPT_COST {
                return Err(err(format!(
                    "basic_auth_users.{user}: bcrypt cost {} is above {MAX_BCRYPT_COST}: every check would take minutes (use htpasswd -nBC 10)",
                    parts.get_cost()
                )));
            }
        }
        let headers = file
            .http_server_config
            .as_ref()
            .map(http_headers)
            .transpose()
            .map_err(err)?
            .unwrap_or_default();
        let client_certs = file
            .tls_server_config
            .as_ref()
            .is_some_and(|t| t.client_auth_type.as_deref() == Some("RequireAndVerifyClientCert"));
        Ok(WebConfig {
            client_certs,
            allowed_sans: file.tls_server_config.and_then(|t| t.client_allowed_sans),
            tls,
            users: Arc::new(file.basic_auth_users),
            verified: Arc::default(),
            bcrypt: Turns::default(),
            headers,
        })
    }

    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether every request that reaches a handler was authenticated: by basic auth, or
    /// by a verified client certificate on every connection.
    pub fn authenticates(&self) -> bool {
        self.requires_auth() || self.client_certs
    }

    /// Whether `user` and `password` are one of the configured users: at once for
    /// credentials that passed before, else by bcrypt, one check at a time, off the
    /// runtime. Dropped (the client gone) while it waits, it checks nothing.
    pub async fn check(&self, user: String, password: String) -> bool {
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if self.verified.lock().expect("not poisoned").get(&user) == Some(&digest) {
            return true;
        }
        let Ok(turn) = self.bcrypt.0.clone().acquire_owned().await else {
            return false;
        };
        let web = self.clone();
        // The turn is held until the check ends, even if its client has gone meanwhile.
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            web.check_now(&user, &password, digest)
        })
        .await
        .unwrap_or(false)
    }

    /// One bcrypt check (blocking). An unknown user costs a comparison too, so timing does
    /// not tell users apart.
    fn check_now(&self, user: &str, password: &str, digest: [u8; 32]) -> bool {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let ok = match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let dummy = DUMMY.get_or_init(|| bcrypt::hash("-", 10).unwrap_or_default());
                let _ = bcrypt::verify(password, dummy);
                false
            }
        };
        if ok {
            self.verified
                .lock()
                .expect("not poisoned")
                .insert(user.to_string(), digest);
        }
        ok
    }
}

fn http_headers(
    h: &HttpFile,
) -> Result<Vec<(axum::http::HeaderName, axum::http::HeaderValue)>, String> {
    if h.http2 == Some(true) {
        return Err("http_server_config.http2: locksmith serves HTTP/1.1 only".into());
    }
    h.headers
        .iter()
        .map(|(k, v)| {
            let name = axum::http::HeaderName::try_from(k.as_str())
                .map_err(|e| format!("http_server_config.headers.{k}: {e}"))?;
            let value = axum::http::HeaderValue::try_from(v.as_str())
                .map_err(|e| format!("http_server_config.headers.{k}: {e}"))?;
            Ok((name, value))
        })
        .collect()
}

fn beside(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// rustls' versions from the toolkit's names; rustls has TLS 1.2 and 1.3 only.
fn versions(t: &TlsFile) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |v: &Option<String>, default: u8, what: &str| match v.as_deref() {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other @ ("TLS10" | "TLS11")) => Err(format!(
            "tls_server_config.{what}: {other} is not offered (TLS 1.2 is the oldest locksmith speaks)"
        )),
        Some(other) => Err(format!(
            "tls_server_config.{what}: {other:?} is not one of TLS12, TLS13"
        )),
    };
    let (min, max) = (
        rank(&t.min_version, 12, "min_version")?,
        rank(&t.max_version, 13, "max_version")?,
    );
    if min > max {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let mut v = Vec::new();
    if max >= 13 {
        v.push(&rustls::version::TLS13);
    }
    if min <= 12 {
        v.push(&rustls::version::TLS12);
    }
    Ok(v)
}

fn tls_config(t: &TlsFile, base: &Path) -> Result<Arc<ServerConfig>, String> {
    let versions = versions(t)?;
    let (cert_file, key_file) = (beside(base, &t.cert_file), beside(base, &t.key_file));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|i| i.collect())
        .map_err(|e| format!("tls_server_config.cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no certificate",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| format!("tls_server_config.key_file {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let auth = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match (auth, &t.client_ca_file) {
        ("NoClientCert", _) => builder.with_no_client_auth(),
        ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven", Some(ca)) => {
            let ca = beside(base, ca);
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca)
                .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca.display()))?
            {
                let c = c.map_err(|e| {
                    format!("tls_server_config.client_ca_file {}: {e}", ca.display())
                })?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("tls_server_config: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven", None) => {
            return Err(format!(
                "tls_server_config: client_auth_type {auth} needs client_ca_file"
            ));
        }
        (other, _) => {
            return Err(format!(
                "tls_server_config.client_auth_type: {other:?} is not one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert (certificates are always verified)"
            ));
        }
    };
    if t.client_allowed_sans.is_some() && auth == "NoClientCert" {
        return Err("tls_server_config.client_allowed_sans needs a client_auth_type that verifies certificates".into());
    }
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether a verified client certificate names one of `allowed` in its SANs.
pub fn san_allowed(cert: &CertificateDer<'_>, allowed: &[String]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, x509)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    let Ok(Some(sans)) = x509.subject_alternative_name() else {
        return false;
    };
    sans.value.general_names.iter().any(|n| {
        let name = match n {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                s.to_string()
            }
            GeneralName::IPAddress(b) => match b.len() {
                4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).expect("4")).to_string(),
                16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).expect("16")).to_string(),
                _ => return false,
            },
            _ => return false,
        };
        allowed.contains(&name)
    })
}
