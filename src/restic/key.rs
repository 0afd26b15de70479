//! `keys/<id>`: plain JSON naming scrypt's parameters and salt, and the master key sealed
//! under the key they derive from a password.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use super::envelope::{CryptoError, Key};
use super::kdf::KdfParams;
use crate::secret::Secret;

/// `keys/<id>` as restic writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub hostname: String,
    pub kdf: String,
    #[serde(rename = "N")]
    pub n: u64,
    pub r: u32,
    pub p: u32,
    pub salt: String,
    pub data: String,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct MasterKeyJson {
    pub mac: MacJson,
    pub encrypt: String,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct MacJson {
    pub k: String,
    pub r: String,
}

impl KeyFile {
    pub fn params(&self) -> KdfParams {
        KdfParams {
            n: self.n,
            r: self.r,
            p: self.p,
        }
    }

    pub fn validate(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        if self.kdf != "scrypt" {
            return Err(format!("unknown kdf {:?}", self.kdf));
        }
        let salt = B64.decode(&self.salt).map_err(|e| format!("salt: {e}"))?;
        if salt.len() != 64 {
            return Err(format!("salt is {} bytes, not 64", salt.len()));
        }
        let data = B64.decode(&self.data).map_err(|e| format!("data: {e}"))?;
        Ok((salt, data))
    }

    /// `Ok(None)`: this key is not for this password.
    pub fn unlock(&self, password: &Secret) -> Result<Option<Key>, String> {
        let (salt, data) = self.validate()?;
        let user = self
            .params()
            .derive(password.expose().as_bytes(), &salt)
            .map_err(|e| e.to_string())?;
        let plain = match user.open(&data) {
            Ok(p) => p,
            Err(CryptoError::MacMismatch) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let mk: MasterKeyJson =
            serde_json::from_slice(&plain).map_err(|e| format!("master key JSON: {e}"))?;
        master_from_json(&mk).map(Some)
    }
}

fn decode_exact<const N: usize>(what: &str, s: &str) -> Result<[u8; N], String> {
    let v = B64.decode(s).map_err(|e| format!("{what}: {e}"))?;
    v.try_into()
        .map_err(|v: Vec<u8>| format!("{what} is {} bytes, not {N}", v.len()))
}

fn master_from_json(mk: &MasterKeyJson) -> Result<Key, String> {
    Ok(Key {
        encrypt: decode_exact("master encrypt key", &mk.encrypt)?,
        mac_k: decode_exact("master mac.k", &mk.mac.k)?,
        mac_r: decode_exact("master mac.r", &mk.mac.r)?,
    })
}

#[cfg(any(test, feature = "testing"))]
pub(crate) fn master_to_json(k: &Key) -> MasterKeyJson {
    MasterKeyJson {
        mac: MacJson {
            k: B64.encode(k.mac_k),
            r: B64.encode(k.mac_r),
        },
        encrypt: B64.encode(k.encrypt),
    }
}
