//! `s3:` locations, as restic reads them, to an OpenDAL S3 operator.

use opendal::Operator;
use opendal::services::S3;

use crate::config::RepoConfig;

/// `s3:https://host[:port]/bucket[/prefix]`, `s3:http://…`, or `s3:host/bucket[/prefix]`
/// (https). Returns (endpoint, bucket, prefix).
pub fn parse(spec: &str) -> Result<(String, String, String), String> {
    let spec = spec.strip_prefix("//").unwrap_or(spec);
    let (scheme, rest) = if let Some(r) = spec.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = spec.strip_prefix("http://") {
        ("http", r)
    } else {
        ("https", spec)
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let mut parts = rest.splitn(3, '/');
    let host = parts.next().filter(|h| !h.is_empty()).ok_or("no host")?;
    let bucket = parts
        .next()
        .filter(|b| !b.is_empty())
        .ok_or("no bucket (s3:host/bucket[/prefix])")?;
    let prefix = parts.next().unwrap_or("").trim_matches('/');
    Ok((
        format!("{scheme}://{host}"),
        bucket.to_string(),
        prefix.to_string(),
    ))
}

pub fn operator(spec: &str, cfg: &RepoConfig) -> Result<Operator, String> {
    let (endpoint, bucket, prefix) = parse(spec)?;
    let region = cfg
        .options
        .get("s3.region")
        .map(String::as_str)
        .or(cfg.var("AWS_DEFAULT_REGION"))
        .or(cfg.var("AWS_REGION"))
        .unwrap_or("us-east-1");
    let mut b = S3::default()
        .endpoint(&endpoint)
        .bucket(&bucket)
        .root(&format!("/{prefix}"))
        .region(region)
        .disable_config_load()
        .disable_ec2_metadata();
    if cfg.options.get("s3.bucket-lookup").map(String::as_str) == Some("dns") {
        b = b.enable_virtual_host_style();
    }
    match (
        cfg.var("AWS_ACCESS_KEY_ID"),
        cfg.var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => {
            b = b.access_key_id(id).secret_access_key(secret);
            if let Some(t) = cfg.var("AWS_SESSION_TOKEN") {
                b = b.session_token(t);
            }
        }
        _ => b = b.skip_signature(),
    }
    Operator::new(b).map_err(|e| format!("S3 configuration: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_s3_forms() {
        assert_eq!(
            parse("https://s3.example.com:9000/bucket/some/prefix/").unwrap(),
            (
                "https://s3.example.com:9000".into(),
                "bucket".into(),
                "some/prefix".into()
            )
        );
        assert_eq!(
            parse("s3.amazonaws.com/bucket").unwrap(),
            (
                "https://s3.amazonaws.com".into(),
                "bucket".into(),
                "".into()
            )
        );
        assert_eq!(
            parse("http://127.0.0.1:5000/b/p").unwrap(),
            ("http://127.0.0.1:5000".into(), "b".into(), "p".into())
        );
        assert_eq!(
            parse("https://key:secret@host/b").unwrap().0,
            "https://host"
        );
        assert!(parse("host").is_err());
        assert!(parse("").is_err());
    }
}
