//! `s3:` locations, as restic reads them, to an OpenDAL S3 operator.

#[cfg(feature = "s3")]
use opendal::Operator;
#[cfg(feature = "s3")]
use opendal::services::S3;

#[cfg(feature = "s3")]
use super::Settings;

pub const DECLARED: super::Declared = super::Declared {
    scheme: "s3",
    options: &["s3.region", "s3.bucket-lookup"],
    env_prefixes: &["AWS_"],
    secrets: &["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"],
};

/// `s3:https://host[:port]/bucket[/prefix]`, `s3:http://…`, or `s3:host/bucket[/prefix]`
/// (https). Returns (endpoint, bucket, prefix). As restic's `ParseConfig`: a URL's
/// endpoint is its host and port only (user information never moves it elsewhere), and a
/// plain location's endpoint runs to the first `/`.
pub fn parse(spec: &str) -> Result<(String, String, String), String> {
    let (endpoint, path) = if spec.starts_with("http") {
        let url = url::Url::parse(spec).map_err(|e| format!("not a URL: {e}"))?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("no host")?;
        let host = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let path = percent_encoding::percent_decode_str(url.path())
            .decode_utf8_lossy()
            .into_owned();
        (format!("{}://{host}", url.scheme()), path)
    } else {
        let plain = spec.strip_prefix("//").unwrap_or(spec);
        let (host, path) = plain.split_once('/').unwrap_or((plain, ""));
        if host.is_empty() {
            return Err("no host".into());
        }
        (format!("https://{host}"), format!("/{path}"))
    };
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err("no bucket (s3:host/bucket[/prefix])".into());
    }
    Ok((
        endpoint,
        bucket.to_string(),
        prefix.trim_matches('/').to_string(),
    ))
}

#[cfg(feature = "s3")]
pub fn operator(spec: &str, cfg: &Settings) -> Result<Operator, String> {
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

    /// The credentials split took the last `@` anywhere: signed requests went to B.
    #[test]
    fn at_sign_in_s3_path_never_moves_the_endpoint() {
        for (spec, endpoint) in [
            (
                "http://127.0.0.1:9000/bucket/pre@evil.example/x",
                "http://127.0.0.1:9000",
            ),
            (
                "https://u:p@127.0.0.1/bucket/pre@evil.example/x",
                "https://127.0.0.1",
            ),
            ("127.0.0.1/bucket/pre@evil.example/x", "https://127.0.0.1"),
        ] {
            let (e, bucket, prefix) = parse(spec).unwrap();
            assert_eq!(e, endpoint, "{spec}");
            assert_eq!(bucket, "bucket", "{spec}");
            assert_eq!(prefix, "pre@evil.example/x", "{spec}");
        }
    }
}
