//! restic's envelope: `IV(16) ‖ AES-256-CTR ciphertext ‖ Poly1305-AES MAC(16)`, and the
//! scrypt derivation that turns a password into the key that opens a key file.

use aes::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::{Aes128, Aes256};
use poly1305::Poly1305;
use subtle::ConstantTimeEq;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

pub const IV_LEN: usize = 16;
pub const MAC_LEN: usize = 16;
/// The smallest envelope: an IV and a MAC around an empty ciphertext.
pub const OVERHEAD: usize = IV_LEN + MAC_LEN;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// Shorter than an IV plus a MAC.
    TooShort(usize),
    /// The MAC does not match: damaged, or sealed under another key.
    MacMismatch,
    /// restic never writes an all-zero IV.
    ZeroIv,
    /// scrypt parameters that restic could not have written, or that would exhaust memory.
    BadKdfParams(String),
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::TooShort(n) => write!(f, "{n} bytes is shorter than the 32-byte minimum"),
            CryptoError::MacMismatch => {
                write!(f, "MAC mismatch (damaged, or sealed under another key)")
            }
            CryptoError::ZeroIv => write!(f, "all-zero IV"),
            CryptoError::BadKdfParams(why) => write!(f, "unusable scrypt parameters: {why}"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// An encryption key plus the two halves of a Poly1305-AES key. Used both for the user key
/// (from scrypt) and the repository's master key.
#[derive(Clone)]
pub struct Key {
    pub encrypt: [u8; 32],
    pub mac_k: [u8; 16],
    pub mac_r: [u8; 16],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// scrypt's 64 output bytes, split as restic splits them.
    pub fn from_kdf_output(b: &[u8; 64]) -> Key {
        let mut k = Key {
            encrypt: [0; 32],
            mac_k: [0; 16],
            mac_r: [0; 16],
        };
        k.encrypt.copy_from_slice(&b[..32]);
        k.mac_k.copy_from_slice(&b[32..48]);
        k.mac_r.copy_from_slice(&b[48..]);
        k
    }

    fn mac(&self, iv: &[u8; IV_LEN], ciphertext: &[u8]) -> [u8; MAC_LEN] {
        let mut s = aes::Block::from(*iv);
        Aes128::new(&self.mac_k.into()).encrypt_block(&mut s);
        let mut one_time = [0u8; 32];
        one_time[..16].copy_from_slice(&self.mac_r);
        one_time[16..].copy_from_slice(&s);
        Poly1305::new(&one_time.into())
            .compute_unpadded(ciphertext)
            .into()
    }

    /// Verifies the MAC in constant time, then decrypts.
    pub fn open(&self, envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if envelope.len() < OVERHEAD {
            return Err(CryptoError::TooShort(envelope.len()));
        }
        let (iv, rest) = envelope.split_at(IV_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - MAC_LEN);
        let iv: [u8; IV_LEN] = iv.try_into().expect("split at IV_LEN");
        if !bool::from(self.mac(&iv, ciphertext).ct_eq(tag)) {
            return Err(CryptoError::MacMismatch);
        }
        if iv == [0; IV_LEN] {
            return Err(CryptoError::ZeroIv);
        }
        let mut plain = ciphertext.to_vec();
        Aes256Ctr::new(&self.encrypt.into(), &iv.into()).apply_keystream(&mut plain);
        Ok(plain)
    }

    /// Seals with the given IV; callers pass a fresh random one.
    pub fn seal_with_iv(&self, iv: [u8; IV_LEN], plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.extend_from_slice(&iv);
        let mut body = plain.to_vec();
        Aes256Ctr::new(&self.encrypt.into(), &iv.into()).apply_keystream(&mut body);
        let tag = self.mac(&iv, &body);
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        out
    }

    /// Seals with a random IV.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut iv = [0u8; IV_LEN];
        while iv == [0; IV_LEN] {
            getrandom::fill(&mut iv).expect("the OS random source works");
        }
        self.seal_with_iv(iv, plain)
    }
}

/// scrypt's parameters as a key file states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub n: u64,
    pub r: u32,
    pub p: u32,
}

/// Bounds on what a key file may ask of scrypt. restic calibrates its keys to about half a
/// second and 60 MiB on the machine that writes them (typically N=2^15, r=8, p up to
/// ~20); these leave room for rustic's and for faster machines while keeping a hostile
/// key file from taking gigabytes or minutes before the password is even checked.
pub mod bounds {
    /// One lane's memory, 128·r·N bytes: 8× restic's calibrated 32 MiB.
    pub const MAX_LANE_BYTES: u64 = 256 << 20;
    /// scrypt's p·128·r-byte buffer, allocated before any lane runs.
    pub const MAX_BLOCK_BYTES: u64 = 16 << 20;
    /// Parallel lanes.
    pub const MAX_P: u32 = 1024;
    /// The whole work, 128·r·N·p bytes passed through memory: 256 restic-sized lanes,
    /// about 10 s on one core here.
    pub const MAX_WORK_BYTES: u64 = 8 << 30;
}

impl KdfParams {
    /// 128·r·N, or `None` when that does not fit 64 bits.
    pub fn lane_bytes(&self) -> Option<u64> {
        128u64.checked_mul(u64::from(self.r))?.checked_mul(self.n)
    }

    /// Checks every parameter and the total work against [`bounds`], without overflow,
    /// before anything is allocated.
    pub fn check(&self) -> Result<(), CryptoError> {
        let bad = |why: String| Err(CryptoError::BadKdfParams(why));
        if self.n < 2 || !self.n.is_power_of_two() {
            return bad(format!("N={} is not a power of two above 1", self.n));
        }
        if self.r == 0 || self.p == 0 {
            return bad("r and p must be positive".into());
        }
        let beyond = "beyond any key restic (or rustic) writes";
        let lane = self.lane_bytes().filter(|b| *b <= bounds::MAX_LANE_BYTES);
        let Some(lane) = lane else {
            return bad(format!(
                "N={} r={} asks for more than {} MiB per lane, {beyond}",
                self.n,
                self.r,
                bounds::MAX_LANE_BYTES >> 20
            ));
        };
        if self.p > bounds::MAX_P {
            return bad(format!(
                "p={} is more than {} lanes, {beyond}",
                self.p,
                bounds::MAX_P
            ));
        }
        let block = 128 * u64::from(self.r) * u64::from(self.p);
        if block > bounds::MAX_BLOCK_BYTES {
            return bad(format!(
                "r={} p={} asks for a {} MiB buffer, {beyond}",
                self.r,
                self.p,
                block >> 20
            ));
        }
        if lane.saturating_mul(u64::from(self.p)) > bounds::MAX_WORK_BYTES {
            return bad(format!(
                "N={} r={} p={} is more than {} GiB of scrypt work, {beyond}",
                self.n,
                self.r,
                self.p,
                bounds::MAX_WORK_BYTES >> 30
            ));
        }
        Ok(())
    }

    fn to_scrypt(self) -> Result<scrypt::Params, CryptoError> {
        self.check()?;
        scrypt::Params::new(self.n.trailing_zeros() as u8, self.r, self.p)
            .map_err(|e| CryptoError::BadKdfParams(e.to_string()))
    }

    /// Derives the user key. The p lanes run in parallel on rayon's pool, so a key with
    /// p ≥ 2 costs about 1/min(p, cores) of its single-threaded time.
    pub fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Key, CryptoError> {
        let params = self.to_scrypt()?;
        let mut out = [0u8; 64];
        scrypt::scrypt(password, salt, &params, &mut out)
            .map_err(|e| CryptoError::BadKdfParams(e.to_string()))?;
        Ok(Key::from_kdf_output(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn poly1305_aes(msg: &str, r: &str, k: &str, nonce: &str) -> String {
        let key = Key {
            encrypt: [0; 32],
            mac_k: h(k),
            mac_r: h(r),
        };
        hex::encode(key.mac(&h(nonce), &hex::decode(msg).unwrap()))
    }

    #[test]
    fn poly1305_aes_paper_vectors() {
        assert_eq!(
            poly1305_aes(
                "f3f6",
                "851fc40c3467ac0be05cc20404f3f700",
                "ec074c835580741701425b623235add6",
                "fb447350c4e868c52ac3275cf9d4327e"
            ),
            "f4c633c3044fc145f84f335cb81953de"
        );
        assert_eq!(
            poly1305_aes(
                "",
                "a0f3080000f46400d0c7e9076c834403",
                "75deaa25c09f208e1dc4ce6b5cad3fbf",
                "61ee09218d29b0aaed7e154a2c5509cc"
            ),
            "dd3fab2251f11ac759f0887129cc2ee7"
        );
        assert_eq!(
            poly1305_aes(
                "663cea190ffb83d89593f3f476b6bc24d7e679107ea26adb8caf6652d0656136",
                "48443d0bb0d21109c89a100b5ce2c208",
                "6acb5f61a7176dd320c5c1eb2edcdc74",
                "ae212a55399729595dea458bc621ff0e"
            ),
            "0ee1c16bb73f0f4fd19881753c01cdbe"
        );
    }

    fn vector_key() -> Key {
        Key {
            encrypt: h("303e8687b1d7db18421bdc6bb8588ccadac4d59ee87b8ff70c44e635790cafef"),
            mac_k: h("ef4d8824cb80b2bcc5fbff8a9b12a42c"),
            mac_r: h("cc8d4b948ee0ebfe1d415de921d10353"),
        }
    }

    const VECTOR_ENVELOPE: &str = "69fb41c62d12def4593bd71757138606338f621aeaeb39da0fe4f99233f8037a54ea63338a813bcf3f75d8c3cc75dddf8750";

    #[test]
    fn opens_restic_envelope_vector() {
        let plain = vector_key()
            .open(&hex::decode(VECTOR_ENVELOPE).unwrap())
            .unwrap();
        assert_eq!(plain, b"Dies ist ein Test!");
    }

    #[test]
    fn seal_reproduces_vector_with_same_iv() {
        let env = hex::decode(VECTOR_ENVELOPE).unwrap();
        let sealed =
            vector_key().seal_with_iv(env[..16].try_into().unwrap(), b"Dies ist ein Test!");
        assert_eq!(sealed, env);
    }

    #[test]
    fn any_flipped_bit_fails_the_mac() {
        let env = hex::decode(VECTOR_ENVELOPE).unwrap();
        for i in 0..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                vector_key().open(&bad),
                Err(CryptoError::MacMismatch),
                "byte {i}"
            );
        }
    }

    #[test]
    fn short_and_zero_iv_envelopes_are_rejected() {
        assert_eq!(vector_key().open(&[0; 31]), Err(CryptoError::TooShort(31)));
        let sealed = vector_key().seal_with_iv([0; 16], b"x");
        assert_eq!(vector_key().open(&sealed), Err(CryptoError::ZeroIv));
    }

    #[test]
    fn seal_open_round_trip() {
        let k = vector_key();
        assert_eq!(k.open(&k.seal(b"hello")).unwrap(), b"hello");
    }

    #[test]
    fn kdf_rejects_implausible_params() {
        for p in [
            KdfParams {
                n: 1000,
                r: 8,
                p: 1,
            },
            KdfParams { n: 1, r: 8, p: 1 },
            KdfParams {
                n: 1024,
                r: 0,
                p: 1,
            },
            KdfParams {
                n: 1 << 40,
                r: 8,
                p: 1,
            },
            // A huge p: gigabytes of buffer and minutes of lanes before the MAC says no.
            KdfParams {
                n: 2,
                r: 1,
                p: u32::MAX,
            },
            // r·p past 2^32 wrapped scrypt's own check.
            KdfParams {
                n: 2,
                r: 1 << 17,
                p: 1 << 15,
            },
            KdfParams {
                n: 1 << 15,
                r: 8,
                p: 1000,
            },
            // An N near 2^60 overflowed the lane size in checked builds.
            KdfParams {
                n: 1 << 60,
                r: 1 << 10,
                p: 1,
            },
            KdfParams {
                n: 1 << 63,
                r: u32::MAX,
                p: u32::MAX,
            },
        ] {
            assert!(p.derive(b"pw", &[0; 64]).is_err(), "{p:?}");
        }
    }

    #[test]
    fn restic_calibrated_params_pass_the_bounds() {
        for p in 1..=64 {
            KdfParams {
                n: 1 << 15,
                r: 8,
                p,
            }
            .check()
            .unwrap();
        }
        KdfParams {
            n: 1 << 18,
            r: 8,
            p: 1,
        }
        .check()
        .unwrap();
    }

    #[test]
    fn kdf_parallel_lanes_match_sequential_definition() {
        // scrypt with p lanes equals the published RFC 7914 vector for p=16.
        let p = KdfParams {
            n: 1024,
            r: 8,
            p: 16,
        };
        let params = p.to_scrypt().unwrap();
        let mut out = [0u8; 64];
        scrypt::scrypt(b"password", b"NaCl", &params, &mut out).unwrap();
        assert_eq!(
            hex::encode(out),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
        );
    }
}
