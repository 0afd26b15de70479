//! `config`: sealed under the master key, never compressed; its format version decides how
//! lock files are encoded.

use serde::{Deserialize, Serialize};

use super::envelope::Key;

#[derive(Serialize, Deserialize)]
pub(crate) struct ConfigJson {
    pub version: u32,
    pub id: String,
    #[serde(default)]
    pub chunker_polynomial: String,
}

/// The repository's ID and format version from its sealed `config`.
pub fn decode(master: &Key, config: &[u8]) -> Result<(String, u32), String> {
    let plain = master.open(config).map_err(|e| format!("config: {e}"))?;
    let cfg: ConfigJson =
        serde_json::from_slice(&plain).map_err(|e| format!("config JSON: {e}"))?;
    if !matches!(cfg.version, 1 | 2) {
        return Err(format!(
            "repository format version {} is not supported (1 and 2 are)",
            cfg.version
        ));
    }
    Ok((cfg.id, cfg.version))
}
