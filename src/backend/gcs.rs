//! `gs:bucket:/prefix` to an OpenDAL Google Cloud Storage operator, with restic's
//! variables.

#[cfg(feature = "gcs")]
use opendal::Operator;
#[cfg(feature = "gcs")]
use opendal::services::Gcs;

#[cfg(feature = "gcs")]
use super::Settings;

pub const DECLARED: super::Declared = super::Declared {
    scheme: "gs",
    options: &["gs.endpoint"],
    env_prefixes: &["GOOGLE_"],
    secrets: &["GOOGLE_ACCESS_TOKEN"],
};

/// `bucket:/prefix` (the prefix optional) → (bucket, prefix).
pub fn parse(spec: &str) -> Result<(String, String), String> {
    super::split_spec(spec, "bucket", "gs:bucket:/prefix")
}

/// Credentials as restic takes them: `GOOGLE_ACCESS_TOKEN`, else the service account file
/// in `GOOGLE_APPLICATION_CREDENTIALS`; `-o gs.endpoint=URL` points at another server (an
/// emulator), where no credentials are needed.
#[cfg(feature = "gcs")]
pub fn operator(spec: &str, cfg: &Settings) -> Result<Operator, String> {
    let (bucket, prefix) = parse(spec)?;
    let mut b = Gcs::default()
        .bucket(&bucket)
        .root(&format!("/{prefix}"))
        .disable_vm_metadata()
        .disable_config_load();
    if let Some(e) = cfg.options.get("gs.endpoint") {
        b = b.endpoint(e.trim_end_matches('/'));
    }
    match (
        cfg.var("GOOGLE_ACCESS_TOKEN"),
        cfg.var("GOOGLE_APPLICATION_CREDENTIALS"),
    ) {
        (Some(token), _) => b = b.token(token.to_string()),
        (None, Some(path)) => b = b.credential_path(path),
        (None, None) if cfg.options.contains_key("gs.endpoint") => b = b.skip_signature(),
        (None, None) => {
            return Err("set GOOGLE_ACCESS_TOKEN or GOOGLE_APPLICATION_CREDENTIALS".into());
        }
    }
    Operator::new(b).map_err(|e| format!("GCS configuration: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_gs_forms() {
        assert_eq!(parse("b:/p/q").unwrap(), ("b".into(), "p/q".into()));
        assert_eq!(parse("b").unwrap(), ("b".into(), "".into()));
        assert!(parse("").is_err());
    }
}
