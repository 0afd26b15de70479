//! The one HTTP client builder. Every client locksmith makes — restic's REST protocol, the
//! object stores, B2's and Keystone's logins, the webhook — is built here: one TLS stack
//! (rustls), the CA certificates of `RESTIC_CACERT` where a backend is reached, time
//! limits, and a user agent.

use std::path::PathBuf;
use std::time::Duration;

/// What a client is built with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientSpec {
    /// Limit of one whole request; `None` where another layer (OpenDAL's) sets it.
    pub timeout: Option<Duration>,
    /// Limit of establishing a connection.
    pub connect_timeout: Duration,
    /// Extra trust anchors: PEM files, as `RESTIC_CACERT` names them.
    pub cacerts: Vec<PathBuf>,
    /// A client certificate and its key (PEM files), for a server that asks for one.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Idle connections kept per host (the requests that may run at once).
    pub idle_per_host: Option<usize>,
    /// Follow redirects (a backend's, a webhook's); never for a peer, whose redirect could
    /// send the request, and the client certificate, anywhere.
    pub follow_redirects: bool,
}

/// A client for `spec`, shared by every caller with the same spec and the same CA files'
/// content: each client loads the system's trust store (about a megabyte), and `serve`
/// with a hundred repositories on one server needs one connection pool, not a hundred.
pub fn client(spec: &ClientSpec) -> Result<reqwest::Client, String> {
    type Cache = std::collections::HashMap<(ClientSpec, Vec<Vec<u8>>), reqwest::Client>;
    static CLIENTS: std::sync::Mutex<Option<Cache>> = std::sync::Mutex::new(None);
    let mut pems = spec
        .cacerts
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| format!("RESTIC_CACERT {}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((cert, key)) = &spec.identity {
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut both = read(cert)?;
        both.push(b'\n');
        both.extend(read(key)?);
        pems.push(both);
    }
    let key = (spec.clone(), pems);
    let mut cache = CLIENTS.lock().expect("not poisoned");
    if let Some(c) = cache.get_or_insert_default().get(&key) {
        return Ok(c.clone());
    }
    let mut certs = Vec::new();
    for (p, pem) in spec.cacerts.iter().zip(&key.1) {
        certs.extend(
            reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("RESTIC_CACERT {}: {e}", p.display()))?,
        );
    }
    let identity = match (&spec.identity, key.1.last()) {
        (Some((cert, _)), Some(both)) => Some(
            reqwest::Identity::from_pem(both)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?,
        ),
        _ => None,
    };
    let made = build(spec, certs, identity)?;
    cache.get_or_insert_default().insert(key, made.clone());
    Ok(made)
}

/// A new client with `certs` (`RESTIC_CACERT`'s) beside the system's trust store.
fn build(
    spec: &ClientSpec,
    certs: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
) -> Result<reqwest::Client, String> {
    crate::install_tls_provider();
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("locksmith/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(spec.connect_timeout)
        .tls_certs_merge(certs);
    if let Some(t) = spec.timeout {
        b = b.timeout(t);
    }
    if let Some(id) = identity {
        b = b.identity(id);
    }
    if let Some(n) = spec.idle_per_host {
        b = b.pool_max_idle_per_host(n);
    }
    if !spec.follow_redirects {
        b = b.redirect(reqwest::redirect::Policy::none());
    }
    b.build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// The spec of a backend's client: `RESTIC_CACERT`, the run's time limits.
pub fn backend_spec(net: &super::NetOptions, cacerts: &[PathBuf]) -> ClientSpec {
    ClientSpec {
        timeout: Some(net.timeout),
        connect_timeout: net.timeout.min(Duration::from_secs(10)),
        cacerts: cacerts.to_vec(),
        identity: None,
        idle_per_host: Some(net.connections),
        follow_redirects: true,
    }
}
