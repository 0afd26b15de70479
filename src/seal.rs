//! Writing restic's formats: key files with chosen scrypt parameters and lock files with
//! chosen content. For fixtures and tests, which must make what restic cannot make on
//! demand (other hosts, old times, low-N keys, damaged files). Returns bytes; the library
//! itself never writes to a repository.

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::locks::Lock;
use crate::repo::Repository;
use crate::restic::envelope::{CryptoError, Key};
use crate::restic::kdf::KdfParams;
use crate::restic::key::{KeyFile, master_to_json};

/// The storage name restic gives these bytes.
pub fn id_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// How a lock's plaintext is encoded inside the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Plain JSON (format 1, and allowed in format 2).
    Json,
    /// `0x02` then a zstd frame without content size, as restic 0.14+ writes in format 2.
    Zstd,
}

/// A zstd frame that, like restic's, does not declare its content size.
pub fn zstd_frame(data: &[u8]) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd encoder");
    enc.include_contentsize(false).expect("zstd parameter");
    enc.write_all(data).expect("write to memory");
    enc.finish().expect("finish to memory")
}

impl Repository {
    /// Seals any plaintext under the master key, as restic stores unpacked files.
    pub fn seal_plaintext(&self, plain: &[u8]) -> (String, Vec<u8>) {
        let bytes = self.master.seal(plain);
        (id_of(&bytes), bytes)
    }

    /// Seals a lock as restic would write it.
    pub fn seal_lock(&self, lock: &Lock, encoding: Encoding) -> (String, Vec<u8>) {
        let json = serde_json::to_vec(lock).expect("a lock serialises");
        let plain = match encoding {
            Encoding::Json => json,
            Encoding::Zstd => {
                let mut p = vec![2u8];
                p.extend(zstd_frame(&json));
                p
            }
        };
        self.seal_plaintext(&plain)
    }

    /// A new key file for this repository's master key, with the given password and scrypt
    /// parameters (low N makes tests fast; restic reads N/r/p from the file).
    pub fn new_key_file(
        &self,
        password: &str,
        params: KdfParams,
        username: &str,
        hostname: &str,
    ) -> Result<(String, Vec<u8>), CryptoError> {
        let mut salt = [0u8; 64];
        getrandom::fill(&mut salt).expect("the OS random source works");
        let user = params.derive(password.as_bytes(), &salt)?;
        let master = serde_json::to_vec(&master_to_json(&self.master)).expect("serialises");
        let kf = KeyFile {
            created: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, false),
            username: username.into(),
            hostname: hostname.into(),
            kdf: "scrypt".into(),
            n: params.n,
            r: params.r,
            p: params.p,
            salt: B64.encode(salt),
            data: B64.encode(user.seal(&master)),
        };
        let bytes = serde_json::to_vec(&kf).expect("serialises");
        Ok((id_of(&bytes), bytes))
    }
}

/// Seals under a fresh random key: a well-formed envelope no repository can open.
pub fn seal_foreign(plain: &[u8]) -> (String, Vec<u8>) {
    let mut b = [0u8; 64];
    getrandom::fill(&mut b).expect("the OS random source works");
    let bytes = Key::from_kdf_output(&b).seal(plain);
    (id_of(&bytes), bytes)
}
