//! `azure:container:/prefix` to an OpenDAL Azure Blob operator, with restic's variables.

#[cfg(feature = "azure")]
use opendal::Operator;
#[cfg(feature = "azure")]
use opendal::services::Azblob;

#[cfg(feature = "azure")]
use super::Settings;

pub const DECLARED: super::Declared = super::Declared {
    scheme: "azure",
    options: &["azure.endpoint"],
    env_prefixes: &["AZURE_"],
    secrets: &["AZURE_ACCOUNT_KEY", "AZURE_ACCOUNT_SAS"],
};

/// `container:/prefix` (the prefix optional) → (container, prefix).
pub fn parse(spec: &str) -> Result<(String, String), String> {
    super::split_spec(spec, "container", "azure:container:/prefix")
}

/// The account's blob endpoint: `-o azure.endpoint=URL` (an emulator, a private cloud),
/// else `https://ACCOUNT.blob.AZURE_ENDPOINT_SUFFIX` (default `core.windows.net`).
#[cfg(feature = "azure")]
fn endpoint(account: &str, cfg: &Settings) -> String {
    match cfg.options.get("azure.endpoint") {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => format!(
            "https://{account}.blob.{}",
            cfg.var("AZURE_ENDPOINT_SUFFIX")
                .unwrap_or("core.windows.net")
        ),
    }
}

#[cfg(feature = "azure")]
pub fn operator(spec: &str, cfg: &Settings) -> Result<Operator, String> {
    let (container, prefix) = parse(spec)?;
    let account = cfg
        .var("AZURE_ACCOUNT_NAME")
        .ok_or("AZURE_ACCOUNT_NAME is not set")?;
    let mut b = Azblob::default()
        .container(&container)
        .root(&format!("/{prefix}"))
        .endpoint(&endpoint(account, cfg))
        .account_name(account);
    match (cfg.var("AZURE_ACCOUNT_KEY"), cfg.var("AZURE_ACCOUNT_SAS")) {
        (Some(key), _) => b = b.account_key(key),
        (None, Some(sas)) => b = b.sas_token(sas.trim_start_matches('?')),
        (None, None) => return Err("set AZURE_ACCOUNT_KEY or AZURE_ACCOUNT_SAS".into()),
    }
    Operator::new(b).map_err(|e| format!("Azure configuration: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_azure_forms() {
        assert_eq!(
            parse("backups:/host/a/").unwrap(),
            ("backups".into(), "host/a".into())
        );
        assert_eq!(parse("backups").unwrap(), ("backups".into(), "".into()));
        assert!(parse(":/x").is_err());
    }
}
