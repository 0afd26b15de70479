//! restic's REST protocol (rest-server, `rclone serve restic`), over reqwest.

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RANGE};
use reqwest::{Client, Url};
use serde::Deserialize;

use super::NetOptions;
use super::net::{Attempt, status_attempt, transport_attempt, with_retries};
use super::{Backend, BackendError, Dir, Entry};
use crate::secret::Secret;

pub const DECLARED: super::Declared = super::Declared {
    scheme: "rest",
    options: &[],
    env_prefixes: &["RESTIC_REST_"],
    secrets: &["RESTIC_REST_PASSWORD"],
};

const V2: &str = "application/vnd.x.restic.rest.v2";
/// The largest listing read: about 600,000 entries in restic's v2 form.
const LISTING_CAP: u64 = 64 << 20;
/// The slowest a body may arrive, after a grace period for the first bytes.
const MIN_RATE_BYTES: u64 = 1024;
const MIN_RATE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn rate_time(bytes: u64) -> std::time::Duration {
    std::time::Duration::from_millis(bytes.saturating_mul(1000) / MIN_RATE_BYTES)
}

pub struct RestBackend {
    base: Url,
    client: Client,
    user: Option<String>,
    password: Option<Secret>,
    net: NetOptions,
}

#[derive(Deserialize)]
struct V2Entry {
    name: String,
    size: u64,
}

impl RestBackend {
    /// `url` is what follows `rest:`. Credentials come from the URL's user info, else from
    /// `RESTIC_REST_USERNAME`/`RESTIC_REST_PASSWORD` (`user`, `password`).
    pub fn new(
        url: &str,
        user: Option<String>,
        password: Option<Secret>,
        cacerts: &[std::path::PathBuf],
        net: NetOptions,
    ) -> Result<RestBackend, String> {
        let mut base = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!("scheme {:?} is not http or https", base.scheme()));
        }
        let url_user = (!base.username().is_empty()).then(|| percent_decode(base.username()));
        let url_pass = base.password().map(|p| Secret::new(percent_decode(p)));
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let client = super::http::client(&super::http::backend_spec(&net, cacerts))?;
        Ok(RestBackend {
            base,
            client,
            user: url_user.or(user),
            password: url_pass.or(password),
            net,
        })
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("relative path joins")
    }

    fn request(&self, url: Url) -> reqwest::RequestBuilder {
        let r = self.client.get(url);
        match &self.user {
            Some(u) => r.basic_auth(u, self.password.as_ref().map(|p| p.expose())),
            None => r,
        }
    }

    /// GET with retries; at most `limit` bytes of the body.
    async fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        limit: u64,
    ) -> Result<(Option<String>, Vec<u8>), BackendError> {
        let what = format!("GET {path}");
        with_retries(&self.net, || async {
            let mut req = self.request(self.url(path));
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if limit < u64::MAX {
                req = req.header(RANGE, format!("bytes=0-{}", limit.saturating_sub(1)));
            }
            let mut resp = req.send().await.map_err(|e| transport_attempt(&what, e))?;
            if resp.status() == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
                // An empty file has no byte 0.
                return Ok((None, Vec::new()));
            }
            if let Some(a) = status_attempt(&what, resp.status()) {
                return Err(a);
            }
            let ctype = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut body = Vec::new();
            let started = tokio::time::Instant::now();
            loop {
                // A body that trickles in below the minimum rate is given up on, as a
                // time-out is: the request's limit alone would let each read take it whole.
                let due = started + MIN_RATE_GRACE + rate_time(body.len() as u64 + 1);
                let chunk = match tokio::time::timeout_at(due, resp.chunk()).await {
                    Ok(c) => c.map_err(|e| transport_attempt(&what, e))?,
                    Err(_) => {
                        return Err(Attempt::Transient(format!(
                            "{what}: the body arrived slower than {} KiB/s",
                            MIN_RATE_BYTES >> 10
                        )));
                    }
                };
                let Some(chunk) = chunk else { break };
                body.extend_from_slice(&chunk);
                if body.len() as u64 >= limit {
                    body.truncate(limit as usize);
                    break;
                }
            }
            Ok((ctype, body))
        })
        .await
    }
}

/// A REST listing: v2 (`[{"name","size"}]`) when the server says so by its content type,
/// else v1 (`["name"]`, sizes unknown). Sorted by name.
pub fn parse_listing(content_type: Option<&str>, body: &[u8]) -> Result<Vec<Entry>, String> {
    let bad = |e: serde_json::Error| format!("not a REST listing: {e}");
    let mut out: Vec<Entry> = if content_type.is_some_and(|c| c.starts_with(V2)) {
        serde_json::from_slice::<Vec<V2Entry>>(body)
            .map_err(bad)?
            .into_iter()
            .map(|e| Entry {
                name: e.name,
                size: Some(e.size),
                is_file: true,
                modified: None,
            })
            .collect()
    } else {
        // v1: names only. Reads are capped, so sizes are not fetched one HEAD at a time.
        serde_json::from_slice::<Vec<String>>(body)
            .map_err(bad)?
            .into_iter()
            .map(|name| Entry {
                name,
                size: None,
                is_file: true,
                modified: None,
            })
            .collect()
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[async_trait]
impl Backend for RestBackend {
    async fn read_config(&self) -> Result<Vec<u8>, BackendError> {
        self.get("config", None, 1 << 20).await.map(|(_, b)| b)
    }

    async fn list(&self, dir: Dir) -> Result<Vec<Entry>, BackendError> {
        let path = format!("{}/", dir.name());
        let (ctype, body) = match self.get(&path, Some(V2), LISTING_CAP + 1).await {
            Ok(r) => r,
            Err(BackendError::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if body.len() as u64 > LISTING_CAP {
            return Err(BackendError::TooLarge {
                what: format!("listing {path}"),
                cap_mib: LISTING_CAP >> 20,
            });
        }
        parse_listing(ctype.as_deref(), &body).map_err(|e| BackendError::Malformed {
            what: format!("listing {path}"),
            why: e.to_string(),
        })
    }

    async fn read(&self, dir: Dir, name: &str, limit: u64) -> Result<Vec<u8>, BackendError> {
        self.get(&format!("{}/{name}", dir.name()), None, limit)
            .await
            .map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        let b = RestBackend::new(
            "https://us%40r:p%3Ass@host:8000/repo",
            None,
            None,
            &[],
            NetOptions::default(),
        )
        .unwrap();
        assert_eq!(b.base.as_str(), "https://host:8000/repo/");
        assert_eq!(b.user.as_deref(), Some("us@r"));
        assert_eq!(b.password.as_ref().unwrap().expose(), "p:ss");
        assert_eq!(b.url("locks/").as_str(), "https://host:8000/repo/locks/");
        assert!(RestBackend::new("ftp://h/", None, None, &[], NetOptions::default()).is_err());
    }
}
