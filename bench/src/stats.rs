//! Samples, their median and p90, and the per-tool lines of a result table.

/// What a sample measures, for formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Kibibytes.
    KiB,
    /// Events per second.
    PerSec,
    /// A plain count.
    Count,
    /// Mebibytes per second.
    MiBps,
}

impl Unit {
    /// `1.234 ms`, `580 KiB`, ...
    pub fn show(self, v: f64) -> String {
        match self {
            Unit::Ms if v < 10.0 => format!("{v:.3} ms"),
            Unit::Ms => format!("{v:.1} ms"),
            Unit::KiB => format!("{v:.0} KiB"),
            Unit::PerSec => format!("{v:.2}/s"),
            Unit::Count => format!("{v:.0}"),
            Unit::MiBps => format!("{v:.0} MiB/s"),
        }
    }
}

/// One tool's samples in one row.
#[derive(Debug, Clone)]
pub struct Line {
    /// The tool and variant, e.g. `podvisor --interval 10ms`.
    pub tool: String,
    /// The samples, in `unit`.
    pub values: Vec<f64>,
    /// Runs that failed, with why.
    pub errors: Vec<String>,
}

impl Line {
    /// An empty line for `tool`.
    pub fn new(tool: impl Into<String>) -> Self {
        Self {
            tool: tool.into(),
            values: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Records one run's result.
    pub fn record(&mut self, result: Result<f64, String>) {
        match result {
            Ok(v) => self.values.push(v),
            Err(e) => {
                eprintln!("bench: {}: {e}", self.tool);
                self.errors.push(e);
            }
        }
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The median (mean of the two middle samples for an even count).
    pub fn median(&self) -> Option<f64> {
        let v = self.sorted();
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    /// The 90th percentile, nearest rank: 90% of the samples are at or below it.
    pub fn p90(&self) -> Option<f64> {
        self.quantile(0.9)
    }

    /// The smallest sample.
    pub fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    /// The largest sample.
    pub fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }

    /// In how many rounds this line was quicker than `other`, of how many rounds both ran:
    /// the k-th sample of each line is from the same round when both lines come from
    /// `ctx::alternate` and no run failed (otherwise the rounds cannot be matched: `None`).
    pub fn quicker_than(&self, other: &Line) -> Option<(usize, usize)> {
        let matched = self.errors.is_empty()
            && other.errors.is_empty()
            && self.values.len() == other.values.len()
            && !self.values.is_empty();
        matched.then(|| {
            let won = (self.values.iter().zip(&other.values))
                .filter(|(a, b)| a < b)
                .count();
            (won, self.values.len())
        })
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        let v = self.sorted();
        if v.is_empty() {
            return None;
        }
        let rank = (q * v.len() as f64).ceil() as usize;
        Some(v[rank.clamp(1, v.len()) - 1])
    }
}

/// A small xorshift generator: the random delays need no quality, only independence from the
/// tools' own poll cycles.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi) nanoseconds.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + (self.unit() * (hi - lo) as f64) as u64
    }

    /// Puts `items` in a new random order (Fisher-Yates).
    pub fn shuffle(&mut self, items: &mut [usize]) {
        for k in (1..items.len()).rev() {
            let j = ((self.unit() * (k + 1) as f64) as usize).min(k);
            items.swap(k, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(values: &[f64]) -> Line {
        Line {
            tool: "t".into(),
            values: values.to_vec(),
            errors: Vec::new(),
        }
    }

    #[test]
    fn median_and_p90() {
        let l = line(&[5.0, 1.0, 4.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!(l.median(), Some(5.5));
        assert_eq!(l.p90(), Some(9.0));
        assert_eq!(line(&[3.0, 1.0, 2.0]).median(), Some(2.0));
        assert_eq!(line(&[3.0, 1.0, 2.0]).p90(), Some(3.0));
        assert_eq!(line(&[]).median(), None);
    }

    #[test]
    fn rounds_are_compared_one_by_one() {
        let a = line(&[1.0, 5.0, 2.0, 9.0]);
        let b = line(&[2.0, 4.0, 3.0, 9.0]);
        // Quicker in rounds 1 and 3; a tie is not a win.
        assert_eq!(a.quicker_than(&b), Some((2, 4)));
        assert_eq!(b.quicker_than(&a), Some((1, 4)));
        // A failed run leaves the rounds unmatched.
        let mut c = line(&[2.0, 4.0, 3.0]);
        c.errors.push("no stamp".into());
        assert_eq!(a.quicker_than(&c), None);
        assert_eq!(a.quicker_than(&line(&[1.0])), None);
    }

    #[test]
    fn shuffle_permutes_and_moves_everyone() {
        let mut r = Rng::new(7);
        let mut order: Vec<usize> = (0..7).collect();
        let mut firsts = [0; 7];
        for _ in 0..700 {
            r.shuffle(&mut order);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..7).collect::<Vec<_>>());
            firsts[order[0]] += 1;
        }
        // Each of 7 goes first about 100 times in 700 rounds.
        assert!(firsts.iter().all(|&f| (50..150).contains(&f)), "{firsts:?}");
    }

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng::new(42);
        for _ in 0..1000 {
            let v = r.between(10, 20);
            assert!((10..20).contains(&v));
        }
    }
}
