//! scrypt (RFC 7914) as restic's key files use it, with the Salsa20/8 core chosen for the
//! CPU at run time.
//!
//! A lane's time is one long dependency chain of Salsa20/8 rounds (each block depends on
//! the one before, each V read on the block before that), so what decides the speed is the
//! latency of a round: add, rotate, xor. SSE2 needs three instructions to rotate; AVX-512VL
//! has a rotate instruction (`vprold`), which shortens every step of the chain. The XOR
//! with the V block is fused into the block mix instead of being a pass of its own. A
//! chain leaves most of a core's execution units idle, so the SIMD cores can run two
//! lanes at once, their instructions interleaved: a pair takes 1.3 to 1.5 times one lane.
//! Which core, paired or not, is fastest depends on the microarchitecture (on an AMD EPYC
//! the scalar code beat AVX-512), so each is timed at the first derivation and the fastest
//! kept ([`Engine::chosen`]). A pair needs a second V: lanes pair on every thread where
//! the memory budget ([`super::memory`]) holds both V, else fewer lanes are in flight.
//! Checked against RFC 7914's vectors and, on random parameters, against the `scrypt`
//! crate (tests below).

use rayon::prelude::*;
use sha2::Sha256;

/// The Salsa20/8 implementations, fastest available first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Core {
    /// Portable: sixteen words in registers, four independent quarter-rounds at a time.
    Scalar,
    /// x86-64's baseline: the state as four diagonals in SSE registers.
    #[cfg(target_arch = "x86_64")]
    Sse2,
    /// The same with AVX-512VL's rotate instruction.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Core {
    /// Every core this CPU can run, fastest first.
    pub fn available() -> Vec<Core> {
        #[allow(unused_mut)]
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") {
                v.push(Core::Avx512);
            }
            v.push(Core::Sse2);
        }
        v.push(Core::Scalar);
        v
    }

    pub fn name(self) -> &'static str {
        match self {
            Core::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Core::Sse2 => "sse2",
            #[cfg(target_arch = "x86_64")]
            Core::Avx512 => "avx512",
        }
    }

    /// SIMD cores keep each 16-word block as four diagonals.
    fn diagonal(self) -> bool {
        self != Core::Scalar
    }

    /// Whether the core runs two lanes interleaved ([`Core::block_mix2`]). The scalar
    /// code already keeps four quarter-rounds in flight and spills registers with more.
    fn pairs(self) -> bool {
        self != Core::Scalar
    }

    /// [`Core::block_mix`] of two lanes at once.
    fn block_mix2(self, x: [&[u32]; 2], v: Option<[&[u32]; 2]>, out: [&mut [u32]; 2]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE2 is part of x86-64's baseline.
            Core::Sse2 => unsafe { sse2::block_mix2(x, v, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only chosen when the CPU reports AVX-512F and AVX-512VL.
            Core::Avx512 => unsafe { avx512::block_mix2(x, v, out) },
            _ => {
                let [o0, o1] = out;
                self.block_mix(x[0], v.map(|v| v[0]), o0);
                self.block_mix(x[1], v.map(|v| v[1]), o1);
            }
        }
    }

    /// `out` = BlockMix(`x` ⊕ `v`) (`v` absent: `x` alone), blocks in the core's order.
    fn block_mix(self, x: &[u32], v: Option<&[u32]>, out: &mut [u32]) {
        match self {
            Core::Scalar => scalar::block_mix(x, v, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE2 is part of x86-64's baseline.
            Core::Sse2 => unsafe { sse2::block_mix(x, v, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only chosen when the CPU reports AVX-512F and AVX-512VL.
            Core::Avx512 => unsafe { avx512::block_mix(x, v, out) },
        }
    }
}

/// How lanes run: a core, and whether each thread interleaves two lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    pub core: Core,
    pub pairs: bool,
}

impl Engine {
    /// As `--version` and `compare.py` name it: `avx512, paired`.
    pub fn name(self) -> String {
        if self.pairs {
            format!("{}, paired", self.core.name())
        } else {
            self.core.name().to_string()
        }
    }

    /// Every engine this CPU can run.
    pub fn candidates() -> Vec<Engine> {
        let mut v = Vec::new();
        for core in Core::available() {
            v.push(Engine { core, pairs: false });
            if core.pairs() {
                v.push(Engine { core, pairs: true });
            }
        }
        v
    }

    /// The engine that runs a lane fastest here, timed once per process at the first
    /// derivation (about 4 ms). `LOCKSMITH_SCRYPT_CORE` (a core's name) and
    /// `LOCKSMITH_SCRYPT_PAIRS` (`0`, `1`) narrow the candidates, for benchmarks.
    pub fn chosen() -> Engine {
        static CHOSEN: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let core = std::env::var("LOCKSMITH_SCRYPT_CORE").ok();
            let pairs = match std::env::var("LOCKSMITH_SCRYPT_PAIRS").as_deref() {
                Ok("0") => Some(false),
                Ok("1") => Some(true),
                _ => None,
            };
            let all = Engine::candidates();
            let narrowed = |pairs: Option<bool>| -> Vec<Engine> {
                all.iter()
                    .copied()
                    .filter(|e| core.as_deref().is_none_or(|c| c == e.core.name()))
                    .filter(|e| pairs.is_none_or(|p| p == e.pairs))
                    .collect()
            };
            // An unknown name, or pairs asked of a core that does not pair, narrows nothing.
            let mut candidates = narrowed(pairs);
            if candidates.is_empty() {
                candidates = narrowed(None);
            }
            if candidates.is_empty() {
                candidates = all.clone();
            }
            fastest(&candidates)
        })
    }

    /// Seconds per lane of a small lane (N=128, r=8, in L2): a pair's time over two.
    fn lane_time(self, lanes: &mut [u8], v: &mut [u32], w: &mut [u32]) -> std::time::Duration {
        let t = std::time::Instant::now();
        let (first, second) = lanes.split_at_mut(128 * 8);
        if self.pairs {
            romix2(self.core, [first, second], 128, 8, [v, w]);
            t.elapsed() / 2
        } else {
            romix(self.core, first, 128, 8, v);
            t.elapsed()
        }
    }
}

/// The candidate with the shortest time per lane, best of three each, taken in turns.
fn fastest(candidates: &[Engine]) -> Engine {
    if let [only] = candidates {
        return *only;
    }
    let mut lanes = vec![7u8; 2 * 128 * 8];
    let (mut v, mut w) = (vec![0u32; 32 * 8 * 128], vec![0u32; 32 * 8 * 128]);
    let mut best = (std::time::Duration::MAX, candidates[0]);
    for _ in 0..3 {
        for &e in candidates {
            let took = e.lane_time(&mut lanes, &mut v, &mut w);
            if took < best.0 {
                best = (took, e);
            }
        }
    }
    best.1
}

/// Lanes in flight: how many threads run lanes, and whether each runs two at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flight {
    pub threads: usize,
    pub pairs: bool,
}

/// The lanes in flight for `p` lanes of `v` bytes each on up to `threads` threads within
/// `budget` bytes: as many threads as the budget holds one V for (at least one), and
/// pairs (`pairs`: the engine's) only where every thread's second V fits too. More
/// threads first: two threads with a lane each beat one thread with a pair.
pub fn flight(pairs: bool, threads: usize, p: usize, v: usize, budget: u64) -> Flight {
    let slots = usize::try_from(budget / v.max(1) as u64)
        .unwrap_or(usize::MAX)
        .max(1);
    let threads = threads.clamp(1, p.max(1)).min(slots);
    let needed: usize = shares(p, threads).iter().map(|&n| n.min(2)).sum();
    let pairs = pairs && v <= PAIR_MAX_V && p > threads && needed <= slots;
    Flight { threads, pairs }
}

/// How `p` lanes split over `threads`: even shares, the larger first.
fn shares(p: usize, threads: usize) -> Vec<usize> {
    let mut left = p;
    (1..=threads)
        .rev()
        .map(|t| {
            let take = left.div_ceil(t);
            left -= take;
            take
        })
        .collect()
}

/// Word `i` of a diagonal block holds word `DIAGONAL[i]` of the plain block.
const DIAGONAL: [usize; 16] = [0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, 1, 6, 11];

/// Derives `out.len()` bytes. `n` must be a power of two ≥ 2 and `r`, `p` ≥ 1 (the
/// caller's bounds keep them sane). The chosen engine, with as many lanes in flight as
/// the memory budget holds.
pub fn scrypt(password: &[u8], salt: &[u8], n: usize, r: usize, p: usize, out: &mut [u8]) {
    let engine = Engine::chosen();
    let threads = rayon::current_num_threads();
    let f = flight(
        engine.pairs,
        threads,
        p,
        128 * r * n,
        super::memory::budget(),
    );
    derive(engine.core, f, password, salt, n, r, p, out)
}

/// As [`scrypt`] with a given core on every thread, lanes paired where a thread runs two
/// (`pairs`) or not, whatever the budget (benchmarks and tests compare them).
#[allow(clippy::too_many_arguments)]
pub fn scrypt_with(
    core: Core,
    pairs: bool,
    password: &[u8],
    salt: &[u8],
    n: usize,
    r: usize,
    p: usize,
    out: &mut [u8],
) {
    let threads = rayon::current_num_threads().clamp(1, p);
    derive(
        core,
        Flight { threads, pairs },
        password,
        salt,
        n,
        r,
        p,
        out,
    )
}

#[allow(clippy::too_many_arguments)]
fn derive(
    core: Core,
    flight: Flight,
    password: &[u8],
    salt: &[u8],
    n: usize,
    r: usize,
    p: usize,
    out: &mut [u8],
) {
    let lane = 128 * r;
    let mut b = vec![0u8; lane * p];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, 1, &mut b);
    // Each share is a rayon task that owns the V (128·r·N bytes) its lanes run in, one per
    // lane in flight: exactly that much memory, however the allocator caches freed blocks.
    let pairs = flight.pairs && core.pairs() && 128 * r * n <= PAIR_MAX_V;
    let mut lanes: Vec<&mut [u8]> = b.chunks_mut(lane).collect();
    let mut taken: Vec<Vec<&mut [u8]>> = Vec::with_capacity(flight.threads);
    for take in shares(p, flight.threads.clamp(1, p)) {
        taken.push(lanes.drain(..take).collect());
    }
    taken.into_par_iter().for_each(|share| {
        let mut v = vec![0u32; 32 * r * n];
        let mut w = Vec::new();
        let mut share = share.into_iter();
        while let Some(first) = share.next() {
            match if pairs { share.next() } else { None } {
                Some(second) => {
                    if w.is_empty() {
                        w = vec![0u32; 32 * r * n];
                    }
                    romix2(core, [first, second], n, r, [&mut v, &mut w]);
                }
                None => romix(core, first, n, r, &mut v),
            }
        }
    });
    pbkdf2::pbkdf2_hmac::<Sha256>(password, &b, 1, out);
}

/// The largest V that lanes are paired for: restic's calibration (at most 60 MiB of
/// memory, N and r powers of two) never makes a larger one.
const PAIR_MAX_V: usize = 32 << 20;

/// A lane's bytes as words, each block in the core's order.
fn to_words(core: Core, lane: &[u8]) -> Vec<u32> {
    let mut x: Vec<u32> = lane
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if core.diagonal() {
        for block in x.chunks_exact_mut(16) {
            let plain: [u32; 16] = block.try_into().expect("16 words");
            for (i, w) in block.iter_mut().enumerate() {
                *w = plain[DIAGONAL[i]];
            }
        }
    }
    x
}

/// The inverse of [`to_words`], into the lane.
fn from_words(core: Core, mut x: Vec<u32>, lane: &mut [u8]) {
    if core.diagonal() {
        for block in x.chunks_exact_mut(16) {
            let diag: [u32; 16] = block.try_into().expect("16 words");
            for (i, w) in diag.iter().enumerate() {
                block[DIAGONAL[i]] = *w;
            }
        }
    }
    for (c, w) in lane.chunks_exact_mut(4).zip(&x) {
        c.copy_from_slice(&w.to_le_bytes());
    }
}

/// ROMix of one lane, in place.
fn romix(core: Core, lane: &mut [u8], n: usize, r: usize, v: &mut [u32]) {
    let words = 32 * r;
    let mut x = to_words(core, lane);
    v[..words].copy_from_slice(&x);
    for i in 1..n {
        let (done, rest) = v.split_at_mut(i * words);
        core.block_mix(&done[(i - 1) * words..], None, &mut rest[..words]);
    }
    let mut y = vec![0u32; words];
    core.block_mix(&v[(n - 1) * words..], None, &mut x);
    for _ in 0..n {
        // Word 0 of the last block: in place in both orders.
        let j = x[words - 16] as usize & (n - 1);
        core.block_mix(&x, Some(&v[j * words..(j + 1) * words]), &mut y);
        std::mem::swap(&mut x, &mut y);
    }
    from_words(core, x, lane);
}

/// ROMix of two lanes in step, each with its own V: [`romix`] with every block mix
/// done for both at once.
fn romix2(core: Core, lanes: [&mut [u8]; 2], n: usize, r: usize, v: [&mut [u32]; 2]) {
    let words = 32 * r;
    let [l0, l1] = lanes;
    let [v0, v1] = v;
    let (mut x0, mut x1) = (to_words(core, l0), to_words(core, l1));
    v0[..words].copy_from_slice(&x0);
    v1[..words].copy_from_slice(&x1);
    for i in 1..n {
        let (done0, rest0) = v0.split_at_mut(i * words);
        let (done1, rest1) = v1.split_at_mut(i * words);
        core.block_mix2(
            [&done0[(i - 1) * words..], &done1[(i - 1) * words..]],
            None,
            [&mut rest0[..words], &mut rest1[..words]],
        );
    }
    let (mut y0, mut y1) = (vec![0u32; words], vec![0u32; words]);
    let last = (n - 1) * words;
    core.block_mix2([&v0[last..], &v1[last..]], None, [&mut x0, &mut x1]);
    for _ in 0..n {
        let j0 = (x0[words - 16] as usize & (n - 1)) * words;
        let j1 = (x1[words - 16] as usize & (n - 1)) * words;
        core.block_mix2(
            [&x0, &x1],
            Some([&v0[j0..j0 + words], &v1[j1..j1 + words]]),
            [&mut y0, &mut y1],
        );
        std::mem::swap(&mut x0, &mut y0);
        std::mem::swap(&mut x1, &mut y1);
    }
    from_words(core, x0, l0);
    from_words(core, x1, l1);
}

/// Where BlockMix puts output block `i` of `blocks`: even ones first, then odd ones.
#[inline(always)]
fn out_block(i: usize, blocks: usize) -> usize {
    if i.is_multiple_of(2) {
        i / 2
    } else {
        blocks / 2 + i / 2
    }
}

mod scalar {
    use super::out_block;

    #[inline(always)]
    fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        s[b] ^= s[a].wrapping_add(s[d]).rotate_left(7);
        s[c] ^= s[b].wrapping_add(s[a]).rotate_left(9);
        s[d] ^= s[c].wrapping_add(s[b]).rotate_left(13);
        s[a] ^= s[d].wrapping_add(s[c]).rotate_left(18);
    }

    fn salsa8(b: &mut [u32; 16]) {
        let mut s = *b;
        for _ in 0..4 {
            quarter(&mut s, 0, 4, 8, 12);
            quarter(&mut s, 5, 9, 13, 1);
            quarter(&mut s, 10, 14, 2, 6);
            quarter(&mut s, 15, 3, 7, 11);
            quarter(&mut s, 0, 1, 2, 3);
            quarter(&mut s, 5, 6, 7, 4);
            quarter(&mut s, 10, 11, 8, 9);
            quarter(&mut s, 15, 12, 13, 14);
        }
        for (w, s) in b.iter_mut().zip(s) {
            *w = w.wrapping_add(s);
        }
    }

    pub fn block_mix(x: &[u32], v: Option<&[u32]>, out: &mut [u32]) {
        let blocks = x.len() / 16;
        if let Some(v) = v {
            // One independent read per cache line first, so the lines of V's block (at a
            // random place in a large buffer) are fetched together.
            let touched = v.iter().step_by(16).fold(0u32, |a, w| a ^ w);
            std::hint::black_box(touched);
        }
        let word = |k: usize| x[k] ^ v.map_or(0, |v| v[k]);
        let mut t: [u32; 16] = std::array::from_fn(|k| word((blocks - 1) * 16 + k));
        for i in 0..blocks {
            for (k, w) in t.iter_mut().enumerate() {
                *w ^= word(i * 16 + k);
            }
            salsa8(&mut t);
            let o = out_block(i, blocks) * 16;
            out[o..o + 16].copy_from_slice(&t);
        }
    }
}

/// Salsa20/8's eight rounds on the diagonal form of one or more states, one step of each
/// state after the other so their chains overlap.
#[cfg(target_arch = "x86_64")]
macro_rules! salsa8_rounds {
    ($rol:ident; $(($a:ident, $b:ident, $c:ident, $d:ident)),+) => {
        for _ in 0..4 {
            // Column round on the diagonals…
            $( $b = _mm_xor_si128($b, $rol!(_mm_add_epi32($a, $d), 7)); )+
            $( $c = _mm_xor_si128($c, $rol!(_mm_add_epi32($b, $a), 9)); )+
            $( $d = _mm_xor_si128($d, $rol!(_mm_add_epi32($c, $b), 13)); )+
            $( $a = _mm_xor_si128($a, $rol!(_mm_add_epi32($d, $c), 18)); )+
            $(
                $b = _mm_shuffle_epi32($b, 0b10_01_00_11);
                $c = _mm_shuffle_epi32($c, 0b01_00_11_10);
                $d = _mm_shuffle_epi32($d, 0b00_11_10_01);
            )+
            // …then the row round, with b and d in each other's place.
            $( $d = _mm_xor_si128($d, $rol!(_mm_add_epi32($a, $b), 7)); )+
            $( $c = _mm_xor_si128($c, $rol!(_mm_add_epi32($d, $a), 9)); )+
            $( $b = _mm_xor_si128($b, $rol!(_mm_add_epi32($c, $d), 13)); )+
            $( $a = _mm_xor_si128($a, $rol!(_mm_add_epi32($b, $c), 18)); )+
            $(
                $b = _mm_shuffle_epi32($b, 0b00_11_10_01);
                $c = _mm_shuffle_epi32($c, 0b01_00_11_10);
                $d = _mm_shuffle_epi32($d, 0b10_01_00_11);
            )+
        }
    };
}

/// The SIMD block mix, written once and compiled per rotate instruction.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_block_mix {
    ($features:literal, $rol:ident) => {
        use std::arch::x86_64::*;

        /// # Safety
        /// The CPU must have the features this function is compiled for.
        #[target_feature(enable = $features)]
        pub unsafe fn block_mix(x: &[u32], v: Option<&[u32]>, out: &mut [u32]) {
            assert!(out.len() == x.len() && v.is_none_or(|v| v.len() == x.len()));
            assert!(x.len() >= 16 && x.len().is_multiple_of(16));
            // SAFETY: the caller's guarantee; lengths checked above.
            unsafe {
                match v {
                    Some(v) => mix::<true>(x, v, out),
                    None => mix::<false>(x, x, out),
                }
            }
        }

        /// # Safety
        /// As `block_mix`.
        #[target_feature(enable = $features)]
        pub unsafe fn block_mix2(x: [&[u32]; 2], v: Option<[&[u32]; 2]>, out: [&mut [u32]; 2]) {
            let len = x[0].len();
            assert!(len >= 16 && len.is_multiple_of(16));
            assert!(x[1].len() == len && out.iter().all(|o| o.len() == len));
            assert!(v.is_none_or(|v| v.iter().all(|v| v.len() == len)));
            // SAFETY: the caller's guarantee; lengths checked above.
            unsafe {
                match v {
                    Some(v) => mix2::<true>(x, v, out),
                    None => mix2::<false>(x, x, out),
                }
            }
        }

        /// Block `k` (in 16-byte units) of `x`, XORed with `v`'s when `XOR`.
        ///
        /// # Safety
        /// `k` within both.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn load<const XOR: bool>(x: *const __m128i, v: *const __m128i, k: usize) -> __m128i {
            // SAFETY: the caller's bound; unaligned loads.
            unsafe {
                if XOR {
                    _mm_xor_si128(_mm_loadu_si128(x.add(k)), _mm_loadu_si128(v.add(k)))
                } else {
                    _mm_loadu_si128(x.add(k))
                }
            }
        }

        /// V's block is at a random place in a large buffer: ask for all its lines now,
        /// so they arrive together instead of one per block.
        ///
        /// # Safety
        /// `v` holds `blocks` 64-byte blocks.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn prefetch(v: *const __m128i, blocks: usize) {
            for k in 0..blocks {
                // SAFETY: within the caller's bound.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(v.add(4 * k) as *const i8) };
            }
        }

        /// The four registers of a state after Salsa20/8: its eight rounds, then the
        /// input added back (the feed-forward).
        #[target_feature(enable = $features)]
        #[inline]
        fn salsa8(s: [__m128i; 4]) -> [__m128i; 4] {
            let [mut a, mut b, mut c, mut d] = s;
            salsa8_rounds!($rol; (a, b, c, d));
            feed_forward([a, b, c, d], s)
        }

        /// As `salsa8`, two states at once, their rounds interleaved.
        #[target_feature(enable = $features)]
        #[inline]
        fn salsa8x2(s: [__m128i; 4], t: [__m128i; 4]) -> ([__m128i; 4], [__m128i; 4]) {
            let [mut a, mut b, mut c, mut d] = s;
            let [mut e, mut f, mut g, mut h] = t;
            salsa8_rounds!($rol; (a, b, c, d), (e, f, g, h));
            (feed_forward([a, b, c, d], s), feed_forward([e, f, g, h], t))
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn feed_forward(s: [__m128i; 4], input: [__m128i; 4]) -> [__m128i; 4] {
            std::array::from_fn(|k| _mm_add_epi32(s[k], input[k]))
        }

        /// One lane's block mix as the loop below runs it: where its blocks come from and
        /// go to (16-byte units).
        #[derive(Clone, Copy)]
        struct Lane {
            x: *const __m128i,
            v: *const __m128i,
            out: *mut __m128i,
        }

        impl Lane {
            fn new(x: &[u32], v: &[u32], out: &mut [u32]) -> Lane {
                Lane {
                    x: x.as_ptr() as *const __m128i,
                    v: v.as_ptr() as *const __m128i,
                    out: out.as_mut_ptr() as *mut __m128i,
                }
            }

            /// The state `s` XORed with input block `i`.
            ///
            /// # Safety
            /// `i` is a block of the lane.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn absorb<const XOR: bool>(self, s: [__m128i; 4], i: usize) -> [__m128i; 4] {
                // SAFETY: the caller's bound.
                std::array::from_fn(|k| _mm_xor_si128(s[k], unsafe {
                    load::<XOR>(self.x, self.v, 4 * i + k)
                }))
            }

            /// Stores `s` as output block `o`.
            ///
            /// # Safety
            /// `o` is a block of the lane.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn store(self, s: [__m128i; 4], o: usize) {
                for (k, w) in s.into_iter().enumerate() {
                    // SAFETY: the caller's bound; unaligned stores.
                    unsafe { _mm_storeu_si128(self.out.add(4 * o + k), w) };
                }
            }
        }

        /// # Safety
        /// As `block_mix`; `v`, `x` and `out` of the same length, a multiple of 16 words.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn mix<const XOR: bool>(x: &[u32], v: &[u32], out: &mut [u32]) {
            let blocks = x.len() / 16;
            let lane = Lane::new(x, v, out);
            // SAFETY: every block index is below `blocks`, the length of all three.
            unsafe {
                if XOR {
                    prefetch(lane.v, blocks);
                }
                let zero = [_mm_setzero_si128(); 4];
                let mut s = lane.absorb::<XOR>(zero, blocks - 1);
                for i in 0..blocks {
                    s = salsa8(lane.absorb::<XOR>(s, i));
                    lane.store(s, super::out_block(i, blocks));
                }
            }
        }

        /// `mix` of two lanes, their rounds interleaved.
        ///
        /// # Safety
        /// As `mix`, for each lane.
        #[target_feature(enable = $features)]
        #[inline]
        unsafe fn mix2<const XOR: bool>(x: [&[u32]; 2], v: [&[u32]; 2], out: [&mut [u32]; 2]) {
            let blocks = x[0].len() / 16;
            let [o0, o1] = out;
            let (l0, l1) = (Lane::new(x[0], v[0], o0), Lane::new(x[1], v[1], o1));
            // SAFETY: as in `mix`, for each lane.
            unsafe {
                if XOR {
                    prefetch(l0.v, blocks);
                    prefetch(l1.v, blocks);
                }
                let zero = [_mm_setzero_si128(); 4];
                let mut s = l0.absorb::<XOR>(zero, blocks - 1);
                let mut t = l1.absorb::<XOR>(zero, blocks - 1);
                for i in 0..blocks {
                    (s, t) = salsa8x2(l0.absorb::<XOR>(s, i), l1.absorb::<XOR>(t, i));
                    let o = super::out_block(i, blocks);
                    l0.store(s, o);
                    l1.store(t, o);
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    macro_rules! rol {
        ($w:expr, $n:literal) => {{
            let w = $w;
            _mm_or_si128(_mm_slli_epi32::<$n>(w), _mm_srli_epi32::<{ 32 - $n }>(w))
        }};
    }
    simd_block_mix!("sse2", rol);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    macro_rules! rol {
        ($w:expr, $n:literal) => {
            _mm_rol_epi32::<$n>($w)
        };
    }
    simd_block_mix!("sse2,avx512f,avx512vl", rol);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7914 section 12 (the fourth vector, N=2^20, is left to the release test run).
    const VECTORS: [(&str, &str, usize, usize, usize, &str); 3] = [
        (
            "",
            "",
            16,
            1,
            1,
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906",
        ),
        (
            "password",
            "NaCl",
            1024,
            8,
            16,
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640",
        ),
        (
            "pleaseletmein",
            "SodiumChloride",
            16384,
            8,
            1,
            "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887",
        ),
    ];

    /// (pairs wanted, threads, p, V MiB, budget MiB) → (threads, pairs).
    #[test]
    fn lanes_in_flight_follow_the_budget() {
        let mib = 1 << 20;
        let cases = [
            // restic's p=7 key on 2 cores, 256 MiB: pairs on both threads (4 V).
            ((true, 2, 7, 32, 256), (2, true)),
            // 64 MiB: one V per thread, unpaired.
            ((true, 2, 7, 32, 64), (2, false)),
            // 48 MiB: one thread, one lane at a time (fewer lanes in flight).
            ((true, 2, 7, 32, 48), (1, false)),
            // Less than one V: one lane all the same (the derivation must happen).
            ((true, 2, 7, 32, 16), (1, false)),
            // One core: a pair in two V.
            ((true, 1, 7, 32, 64), (1, true)),
            // No second lane on any thread: nothing to pair.
            ((true, 2, 2, 32, 256), (2, false)),
            // The engine does not pair.
            ((false, 2, 7, 32, 256), (2, false)),
            // 3 lanes on 2 threads need 3 V to pair one of them.
            ((true, 2, 3, 32, 96), (2, true)),
            ((true, 2, 3, 32, 80), (2, false)),
            // A V beyond restic's calibration is never paired.
            ((true, 2, 7, 64, 1024), (2, false)),
        ];
        for ((pairs, threads, p, v, budget), (t, paired)) in cases {
            let f = flight(pairs, threads, p, v * mib, budget as u64 * mib as u64);
            assert_eq!(
                (f.threads, f.pairs),
                (t, paired),
                "{pairs} {threads} {p} {v} {budget}"
            );
        }
    }

    #[test]
    fn the_chosen_engine_is_a_candidate_and_agrees_with_rfc7914() {
        let e = Engine::chosen();
        assert!(Engine::candidates().contains(&e), "{e:?}");
        let (pw, salt, n, r, p, want) = VECTORS[1];
        let mut out = [0u8; 64];
        scrypt(pw.as_bytes(), salt.as_bytes(), n, r, p, &mut out);
        assert_eq!(hex::encode(out), want);
    }

    #[test]
    fn rfc7914_vectors_on_every_core() {
        for core in Core::available() {
            for (pw, salt, n, r, p, want) in VECTORS {
                for pairs in [true, false] {
                    let mut out = [0u8; 64];
                    let (pw, salt) = (pw.as_bytes(), salt.as_bytes());
                    scrypt_with(core, pairs, pw, salt, n, r, p, &mut out);
                    assert_eq!(hex::encode(out), want, "{core:?} {pairs} N={n} r={r} p={p}");
                }
            }
        }
    }

    #[test]
    fn every_core_agrees_with_the_scrypt_crate_on_random_parameters() {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        let mut rnd = seed
            .iter()
            .cycle()
            .copied()
            .enumerate()
            .map(|(i, b)| b.wrapping_mul(31).wrapping_add(i as u8));
        let mut next = |m: u8| rnd.next().unwrap() % m;
        for _ in 0..12 {
            let log_n = 1 + next(10);
            let (r, p) = (1 + next(9) as u32, 1 + next(4) as u32);
            let pw: Vec<u8> = (0..next(40)).map(|_| next(255)).collect();
            let salt: Vec<u8> = (0..next(70)).map(|_| next(255)).collect();
            let len = 1 + next(100) as usize;
            let mut want = vec![0u8; len];
            let params = ::scrypt::Params::new(log_n, r, p).unwrap();
            ::scrypt::scrypt(&pw, &salt, &params, &mut want).unwrap();
            for core in Core::available() {
                let mut got = vec![0u8; len];
                scrypt_with(
                    core,
                    true,
                    &pw,
                    &salt,
                    1 << log_n,
                    r as usize,
                    p as usize,
                    &mut got,
                );
                assert_eq!(
                    got, want,
                    "{core:?} N=2^{log_n} r={r} p={p} seed {seed:02x?}"
                );
            }
        }
    }
}
