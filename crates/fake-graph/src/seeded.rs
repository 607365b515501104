//! Deterministic randomness: everything the fake simulates is a function of a seed, a stream
//! (so that users, events and summary rows never share ids) and an index.

use rand::{Rng, RngCore};

/// A stable, UUID-shaped id derived from `(seed, stream, n)`.
pub(crate) fn uuid_like(seed: u64, stream: u64, n: u64) -> String {
    let hi = mix(seed, stream, n);
    let lo = splitmix64(hi ^ n);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xfff,
        0x8000 | ((lo >> 48) & 0x3fff),
        lo & 0xffff_ffff_ffff
    )
}

pub(crate) fn mix(seed: u64, stream: u64, n: u64) -> u64 {
    splitmix64(seed ^ splitmix64(stream ^ splitmix64(n)))
}

pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.bytes().chain(std::iter::once(0)))
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// A weighted random pick; `T::default()` only for an empty table.
pub(crate) fn pick<T: Copy + Default, R: Rng + ?Sized>(rng: &mut R, weighted: &[(T, u32)]) -> T {
    let total: u32 = weighted.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total.max(1));
    for (item, weight) in weighted {
        if r < *weight {
            return *item;
        }
        r -= weight;
    }
    weighted.first().map_or_else(T::default, |(item, _)| *item)
}

/// SplitMix64 as a `rand` generator: seeding and drawing cost a few
/// arithmetic operations, which matters when a count scans a million users.
/// Statistical quality is ample for simulated data; nothing here is secret.
pub(crate) struct SplitMix(pub(crate) u64);

impl RngCore for SplitMix {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        let out = splitmix64(self.0);
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        out
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            for (d, s) in chunk.iter_mut().zip(self.next_u64().to_le_bytes()) {
                *d = s;
            }
        }
    }
}
