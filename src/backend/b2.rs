//! `b2:bucket[:prefix]` to an OpenDAL B2 operator. OpenDAL needs the bucket's ID, which
//! restic users never give: it is looked up as restic does, through B2's own API.

// Without the feature, only the declaration and the location parser are compiled for use.
#![cfg_attr(not(feature = "b2"), allow(dead_code, unused_imports))]

#[cfg(feature = "b2")]
use opendal::Operator;
#[cfg(feature = "b2")]
use opendal::services::B2;
use serde::Deserialize;
use serde_json::json;

use super::Settings;
use crate::secret::Secret;

pub const DECLARED: super::Declared = super::Declared {
    scheme: "b2",
    options: &["b2.api-url"],
    env_prefixes: &["B2_"],
    secrets: &["B2_ACCOUNT_KEY"],
};

pub const API_URL: &str = "https://api.backblazeb2.com";

/// `bucket[:prefix]` → (bucket, prefix).
pub fn parse(spec: &str) -> Result<(String, String), String> {
    super::split_spec(spec, "bucket", "b2:bucket[:prefix]")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authorized {
    account_id: String,
    authorization_token: String,
    api_url: String,
    #[serde(default)]
    allowed: Option<Allowed>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Allowed {
    bucket_id: Option<String>,
    bucket_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Buckets {
    buckets: Vec<Bucket>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bucket {
    bucket_id: String,
    bucket_name: String,
}

/// `b2_authorize_account`, then (unless the key is restricted to this very bucket)
/// `b2_list_buckets` by name: the bucket's ID.
pub async fn bucket_id(
    client: &reqwest::Client,
    api_url: &str,
    key_id: &str,
    key: &Secret,
    bucket: &str,
) -> Result<String, String> {
    let auth = super::net::send("B2 authorization", || {
        client
            .get(format!("{api_url}/b2api/v2/b2_authorize_account"))
            .basic_auth(key_id, Some(key.expose()))
    })
    .await?;
    if !auth.status().is_success() {
        return Err(format!(
            "B2 authorization failed ({}): check B2_ACCOUNT_ID and B2_ACCOUNT_KEY",
            auth.status()
        ));
    }
    let auth: Authorized = auth
        .json()
        .await
        .map_err(|e| format!("B2 authorization: unexpected answer: {e}"))?;
    let allowed = auth.allowed.unwrap_or_default();
    if let (Some(id), Some(name)) = (allowed.bucket_id, allowed.bucket_name)
        && name == bucket
    {
        return Ok(id);
    }
    let list = super::net::send("B2 bucket lookup", || {
        client
            .post(format!("{}/b2api/v2/b2_list_buckets", auth.api_url))
            .header(reqwest::header::AUTHORIZATION, &auth.authorization_token)
            .json(&json!({"accountId": auth.account_id, "bucketName": bucket}))
    })
    .await?;
    if !list.status().is_success() {
        return Err(format!("B2 bucket lookup failed ({})", list.status()));
    }
    let list: Buckets = list
        .json()
        .await
        .map_err(|e| format!("B2 bucket lookup: unexpected answer: {e}"))?;
    list.buckets
        .into_iter()
        .find(|b| b.bucket_name == bucket)
        .map(|b| b.bucket_id)
        .ok_or_else(|| format!("B2 has no bucket {bucket:?} for this key"))
}

#[cfg(feature = "b2")]
pub async fn operator(spec: &str, cfg: &Settings) -> Result<Operator, String> {
    let (bucket, prefix) = parse(spec)?;
    let key_id = cfg.var("B2_ACCOUNT_ID").ok_or("B2_ACCOUNT_ID is not set")?;
    let key = Secret::new(
        cfg.var("B2_ACCOUNT_KEY")
            .ok_or("B2_ACCOUNT_KEY is not set")?,
    );
    let client = super::http::client(&super::http::backend_spec(&cfg.net, &cfg.cacerts()))?;
    let api = cfg
        .options
        .get("b2.api-url")
        .map_or(API_URL, String::as_str);
    let id = bucket_id(&client, api, key_id, &key, &bucket).await?;
    let b = B2::default()
        .bucket(&bucket)
        .bucket_id(&id)
        .application_key_id(key_id)
        .application_key(key.expose())
        .root(&format!("/{prefix}"));
    Operator::new(b).map_err(|e| format!("B2 configuration: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_b2_forms() {
        assert_eq!(
            parse("bkt:host/a").unwrap(),
            ("bkt".into(), "host/a".into())
        );
        assert_eq!(
            parse("bkt:/host/a/").unwrap(),
            ("bkt".into(), "host/a".into())
        );
        assert_eq!(parse("bkt").unwrap(), ("bkt".into(), "".into()));
        assert!(parse(":x").is_err());
    }
}
