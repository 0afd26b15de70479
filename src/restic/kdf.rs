//! scrypt as restic uses it: the parameters a key file states, their bounds, and the
//! derivation of the key that opens the key file.

use super::envelope::{CryptoError, Key};

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

    /// Derives the user key. The p lanes run in parallel on rayon's pool, so a key with
    /// p ≥ 2 costs about 1/min(p, cores) of its single-threaded time.
    pub fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Key, CryptoError> {
        self.check()?;
        let mut out = [0u8; 64];
        // Within the bounds, N, r and p fit a usize on every target locksmith builds for.
        super::scrypt::scrypt(
            password,
            salt,
            self.n as usize,
            self.r as usize,
            self.p as usize,
            &mut out,
        );
        Ok(Key::from_kdf_output(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
