//! The webhook: one POST of the summary, no retry.

use std::time::Duration;

use crate::secret::Secret;

pub struct Webhook {
    pub url: Secret,
    pub auth: Option<Secret>,
    pub timeout: Duration,
}

/// `scheme://host/...`: never the path, query, user info or port's secrets.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}/...", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "(unparseable URL)".to_string(),
    }
}

impl Webhook {
    /// Delivers `body`; `Ok` carries the status line, `Err` a reason without secrets.
    pub async fn post(&self, body: String) -> Result<String, String> {
        // The contract's webhook: one POST within WEBHOOK_TIMEOUT, no retry.
        let client = crate::backend::http::client(&crate::backend::http::ClientSpec {
            timeout: Some(self.timeout),
            connect_timeout: self.timeout,
            follow_redirects: true,
            ..Default::default()
        })?;
        let mut req = client
            .post(self.url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(a) = &self.auth {
            req = req.header(reqwest::header::AUTHORIZATION, a.expose());
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => Ok(resp.status().to_string()),
            Ok(resp) => Err(format!("answered {}", resp.status())),
            Err(e) if e.is_timeout() => {
                Err(format!("no answer within {} s", self.timeout.as_secs()))
            }
            Err(e) if e.is_connect() => Err("cannot connect".to_string()),
            Err(_) => Err("request failed".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_only_scheme_and_host() {
        assert_eq!(
            shown_url("https://u:pw@hooks.example.com:8443/secret/path?token=abc"),
            "https://hooks.example.com/..."
        );
        assert_eq!(shown_url("not a url"), "(unparseable URL)");
    }
}
