//! A tiny xorshift for the randomised tests (chaos, the binary fuzz): enough randomness for
//! choosing victims, moments and inputs, and replayable from the seed it prints.

use std::time::SystemTime;

pub struct Rng(u64);

impl Rng {
    /// Seeded from `var` when set (to replay a failure), else from the clock; says which.
    pub fn from_env(var: &str, what: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("{what} seed {seed} ({var}={seed} replays it)");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// How many rounds a randomised test runs: `var` when set, else `soak` under PODVISOR_SOAK=1
/// (scripts/reliability --full), else `quick` (cargo test stays fast).
pub fn rounds(var: &str, quick: usize, soak: usize) -> usize {
    if let Some(n) = std::env::var(var).ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if std::env::var_os("PODVISOR_SOAK").is_some() {
        soak
    } else {
        quick
    }
}
