//! `swift:container:/prefix` to an OpenDAL Swift operator. OpenDAL needs a storage URL
//! and a token; restic users give those (`OS_STORAGE_URL`, `OS_AUTH_TOKEN`) or, more
//! often, credentials to exchange for them: v1 (`ST_AUTH`, `ST_USER`, `ST_KEY`) or
//! Keystone v3 (`OS_AUTH_URL` with a user and password, or an application credential).

// Without the feature, only the declaration and the location parser are compiled for use.
#![cfg_attr(not(feature = "swift"), allow(dead_code, unused_imports))]

use std::collections::BTreeMap;

#[cfg(feature = "swift")]
use opendal::Operator;
#[cfg(feature = "swift")]
use opendal::services::Swift;
use serde::Deserialize;
use serde_json::json;

use super::Settings;
use crate::secret::Secret;

pub const DECLARED: super::Declared = super::Declared {
    scheme: "swift",
    options: &[],
    env_prefixes: &["OS_", "ST_"],
    secrets: &[
        "OS_PASSWORD",
        "OS_AUTH_TOKEN",
        "OS_APPLICATION_CREDENTIAL_SECRET",
        "ST_KEY",
    ],
};

/// `container:/prefix` → (container, prefix).
pub fn parse(spec: &str) -> Result<(String, String), String> {
    super::split_spec(spec, "container", "swift:container:/prefix")
}

#[derive(Debug)]
pub struct Session {
    pub storage_url: String,
    pub token: Secret,
}

#[derive(Deserialize)]
struct TokenBody {
    token: Token,
}

#[derive(Deserialize)]
struct Token {
    #[serde(default)]
    catalog: Vec<Service>,
}

#[derive(Deserialize)]
struct Service {
    #[serde(rename = "type")]
    kind: String,
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
struct Endpoint {
    interface: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    region_id: Option<String>,
    url: String,
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The environment's values by name, empty ones as unset.
type Vars<'a> = &'a (dyn Fn(&str) -> Option<&'a str> + Sync);

/// Exchanges the environment's credentials for a storage URL and a token.
pub async fn session(
    client: &reqwest::Client,
    env: &BTreeMap<String, String>,
) -> Result<Session, String> {
    let var = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if let (Some(url), Some(token)) = (var("OS_STORAGE_URL"), var("OS_AUTH_TOKEN")) {
        return Ok(Session {
            storage_url: url.to_string(),
            token: Secret::new(token),
        });
    }
    if let (Some(auth), Some(user), Some(key)) = (var("ST_AUTH"), var("ST_USER"), var("ST_KEY")) {
        return v1_session(client, auth, user, key).await;
    }
    keystone_session(client, &var).await
}

/// Swift's v1 authentication: `X-Auth-User` and `X-Auth-Key` for the URL and a token.
async fn v1_session(
    client: &reqwest::Client,
    auth: &str,
    user: &str,
    key: &str,
) -> Result<Session, String> {
    let resp = super::net::send("Swift v1 authentication", || {
        client
            .get(auth)
            .header("X-Auth-User", user)
            .header("X-Auth-Key", key)
    })
    .await?;
    if !resp.status().is_success() {
        return Err(format!(
            "Swift v1 authentication failed ({})",
            resp.status()
        ));
    }
    match (
        header(&resp, "x-storage-url"),
        header(&resp, "x-auth-token"),
    ) {
        (Some(url), Some(token)) => Ok(Session {
            storage_url: url,
            token: Secret::new(token),
        }),
        _ => Err("Swift v1 authentication: no X-Storage-Url or X-Auth-Token".into()),
    }
}

/// Keystone v3's request body: who (application credential or user and password) and
/// for which project.
fn keystone_request(var: Vars<'_>) -> Result<serde_json::Value, String> {
    let identity = match (
        var("OS_APPLICATION_CREDENTIAL_ID"),
        var("OS_APPLICATION_CREDENTIAL_SECRET"),
    ) {
        (Some(id), Some(secret)) => json!({"methods": ["application_credential"],
            "application_credential": {"id": id, "secret": secret}}),
        _ => {
            let domain = match var("OS_USER_DOMAIN_ID") {
                Some(id) => json!({"id": id}),
                None => json!({"name": var("OS_USER_DOMAIN_NAME").unwrap_or("Default")}),
            };
            json!({"methods": ["password"], "password": {"user": {
                "name": var("OS_USERNAME").ok_or("OS_USERNAME is not set")?,
                "password": var("OS_PASSWORD").ok_or("OS_PASSWORD is not set")?,
                "domain": domain}}})
        }
    };
    let mut auth = json!({"auth": {"identity": identity}});
    if let Some(project) = var("OS_PROJECT_NAME").or(var("OS_TENANT_NAME")) {
        let domain = match var("OS_PROJECT_DOMAIN_ID") {
            Some(id) => json!({"id": id}),
            None => json!({"name": var("OS_PROJECT_DOMAIN_NAME").unwrap_or("Default")}),
        };
        auth["auth"]["scope"] = json!({"project": {"name": project, "domain": domain}});
    } else if let Some(id) = var("OS_PROJECT_ID").or(var("OS_TENANT_ID")) {
        auth["auth"]["scope"] = json!({"project": {"id": id}});
    }
    Ok(auth)
}

/// Keystone v3: a token, and the object store's endpoint from its catalog.
async fn keystone_session(client: &reqwest::Client, var: Vars<'_>) -> Result<Session, String> {
    let auth_url = var("OS_AUTH_URL").ok_or(
        "set OS_STORAGE_URL and OS_AUTH_TOKEN, or ST_AUTH/ST_USER/ST_KEY, or OS_AUTH_URL with credentials",
    )?;
    let auth = keystone_request(var)?;
    let url = format!("{}/auth/tokens", auth_url.trim_end_matches('/'));
    let resp =
        super::net::send("Keystone authentication", || client.post(&url).json(&auth)).await?;
    if !resp.status().is_success() {
        return Err(format!(
            "Keystone authentication failed ({})",
            resp.status()
        ));
    }
    let token = header(&resp, "x-subject-token").ok_or("Keystone: no X-Subject-Token")?;
    let body: TokenBody = resp
        .json()
        .await
        .map_err(|e| format!("Keystone: unexpected answer: {e}"))?;
    let region = var("OS_REGION_NAME");
    let interface = var("OS_INTERFACE").unwrap_or("public");
    let url = body
        .token
        .catalog
        .iter()
        .filter(|s| s.kind == "object-store")
        .flat_map(|s| &s.endpoints)
        .find(|e| {
            e.interface == interface
                && region.is_none_or(|r| {
                    e.region.as_deref() == Some(r) || e.region_id.as_deref() == Some(r)
                })
        })
        .map(|e| e.url.clone())
        .ok_or("Keystone's catalog has no object-store endpoint for this region")?;
    Ok(Session {
        storage_url: url,
        token: Secret::new(token),
    })
}

#[cfg(feature = "swift")]
pub async fn operator(spec: &str, cfg: &Settings) -> Result<Operator, String> {
    let (container, prefix) = parse(spec)?;
    let client = super::http::client(&super::http::backend_spec(&cfg.net, &cfg.cacerts()))?;
    let s = session(&client, &cfg.env).await?;
    let b = Swift::default()
        .endpoint(&s.storage_url)
        .container(&container)
        .root(&format!("/{prefix}"))
        .token(s.token.expose());
    Operator::new(b).map_err(|e| format!("Swift configuration: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_swift_forms() {
        assert_eq!(parse("c:/p/q").unwrap(), ("c".into(), "p/q".into()));
        assert_eq!(parse("c").unwrap(), ("c".into(), "".into()));
        assert!(parse("").is_err());
    }
}
