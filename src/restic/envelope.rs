//! restic's envelope: `IV(16) ‖ AES-256-CTR ciphertext ‖ Poly1305-AES MAC(16)`, around
//! every file but the key files. Verified in constant time before anything is decrypted.

use aes::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::{Aes128, Aes256};
use poly1305::Poly1305;
use subtle::ConstantTimeEq;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

pub const IV_LEN: usize = 16;
pub const MAC_LEN: usize = 16;
/// The smallest envelope: an IV and a MAC around an empty ciphertext.
pub const OVERHEAD: usize = IV_LEN + MAC_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Shorter than an IV plus a MAC.
    #[error("{0} bytes is shorter than the 32-byte minimum")]
    TooShort(usize),
    /// The MAC does not match: damaged, or sealed under another key.
    #[error("MAC mismatch (damaged, or sealed under another key)")]
    MacMismatch,
    /// restic never writes an all-zero IV.
    #[error("all-zero IV")]
    ZeroIv,
    /// scrypt parameters that restic could not have written, or that would exhaust memory.
    #[error("unusable scrypt parameters: {0}")]
    BadKdfParams(String),
}

/// An encryption key plus the two halves of a Poly1305-AES key. Used both for the user key
/// (from scrypt) and the repository's master key.
#[derive(Clone)]
pub struct Key {
    pub encrypt: [u8; 32],
    pub mac_k: [u8; 16],
    pub mac_r: [u8; 16],
}

/// Keys are wiped when dropped: `serve` keeps them for the process's life, and a key
/// replaced after a password change should not linger in freed memory.
impl Drop for Key {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.encrypt.zeroize();
        self.mac_k.zeroize();
        self.mac_r.zeroize();
    }
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
}
