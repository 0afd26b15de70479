//! Object stores and SFTP through OpenDAL: one adapter from an `Operator` to [`Backend`],
//! with OpenDAL's own retry, time-limit and concurrency layers.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use opendal::layers::{ConcurrentLimitLayer, RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, HttpTransporter, OperationContext, Operator};
use opendal_http_transport_reqwest::ReqwestTransport;

use super::NetOptions;
use super::{Backend, BackendError, Dir, Entry};

pub struct ObjectBackend {
    op: Operator,
    /// Prepended to every path (`""`, or a directory with its trailing `/`).
    prefix: String,
    /// Sizes from the last listings: OpenDAL insists that a range read returns the whole
    /// range, so reads must know how much there is.
    sizes: Mutex<HashMap<String, u64>>,
}

impl ObjectBackend {
    /// Wraps a configured service, the repository below `prefix` of the operator's root:
    /// our HTTP client (rustls with ring, plus the `RESTIC_CACERT` roots), retries with
    /// backoff on what OpenDAL deems temporary (5xx, throttling, resets) and none on
    /// authentication or not-found.
    pub fn with_prefix(
        op: Operator,
        prefix: &str,
        net: &NetOptions,
        cacerts: &[std::path::PathBuf],
    ) -> Result<ObjectBackend, String> {
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        // OpenDAL's layers below set the request limits.
        let client = super::http::client(&super::http::ClientSpec {
            timeout: None,
            ..super::http::backend_spec(net, cacerts)
        })?;
        let transport = HttpTransporter::new(ReqwestTransport::new(client));
        let op = op
            .with_context(OperationContext::new().with_http_transport(transport))
            .layer(
                TimeoutLayer::new()
                    .with_timeout(net.timeout)
                    .with_io_timeout(net.timeout),
            )
            // OpenDAL retries with backon too; the same policy as `net::policy`.
            .layer(
                RetryLayer::new()
                    .with_max_times(net.retries as usize)
                    .with_min_delay(std::time::Duration::from_millis(100))
                    .with_max_delay(std::time::Duration::from_secs(2))
                    .with_factor(2.0)
                    .with_jitter(),
            )
            .layer(ConcurrentLimitLayer::new(net.connections.max(1)));
        Ok(ObjectBackend {
            op,
            prefix,
            sizes: Mutex::new(HashMap::new()),
        })
    }
}

fn failed(what: &str, e: opendal::Error) -> BackendError {
    // The innermost cause says most ("connection refused").
    let mut message = e.message().to_string();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(c) = cause {
        message = c.to_string();
        cause = c.source();
    }
    match e.kind() {
        ErrorKind::NotFound => BackendError::NotFound,
        ErrorKind::PermissionDenied => BackendError::Denied {
            what: what.to_string(),
            detail: format!("permission denied ({message})"),
        },
        kind => BackendError::Other(format!("{what}: {kind}: {message}")),
    }
}

#[async_trait]
impl Backend for ObjectBackend {
    async fn read_config(&self) -> Result<Vec<u8>, BackendError> {
        self.read_path("config", 1 << 20).await
    }

    async fn list(&self, dir: Dir) -> Result<Vec<Entry>, BackendError> {
        let path = format!("{}{}/", self.prefix, dir.name());
        let what = format!("listing {}/", dir.name());
        let entries = match self.op.list(&path).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(failed(&what, e)),
        };
        let mut out: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.path() != path)
            .map(|e| {
                let meta = e.metadata();
                let len = meta.content_length();
                Entry {
                    name: e.name().trim_end_matches('/').to_string(),
                    // OpenDAL says 0 for "unknown" too: let the capped read tell.
                    size: (len > 0).then_some(len),
                    is_file: meta.is_file(),
                    modified: meta.last_modified().map(std::time::SystemTime::from),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        let mut sizes = self.sizes.lock().expect("not poisoned");
        for e in &out {
            if let Some(size) = e.size {
                sizes.insert(format!("{path}{}", e.name), size);
            }
        }
        Ok(out)
    }

    async fn read(&self, dir: Dir, name: &str, limit: u64) -> Result<Vec<u8>, BackendError> {
        self.read_path(&format!("{}/{name}", dir.name()), limit)
            .await
    }
}

impl ObjectBackend {
    async fn read_path(&self, path: &str, limit: u64) -> Result<Vec<u8>, BackendError> {
        let what = path.to_string();
        let path = &format!("{}{path}", self.prefix);
        let known = self.sizes.lock().expect("not poisoned").get(path).copied();
        let size = match known {
            Some(s) => s,
            None => self
                .op
                .stat(path)
                .await
                .map_err(|e| failed(&what, e))?
                .content_length(),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        self.op
            .read_with(path)
            .range(0..size.min(limit))
            .await
            .map(|b| b.to_vec())
            .map_err(|e| failed(&what, e))
    }
}
