//! Learning-rate schedule of the official code: linear warm-up from `warmup_start` to `base`
//! over `warmup` steps, then cosine decay to `min_lr` at `total` steps, stepped per optimiser
//! step.

/// Linear warm-up then cosine decay of the learning rate, per optimiser step.
#[derive(Clone, Debug)]
pub struct WarmupCosine {
    /// Peak learning rate, reached at the last warm-up step.
    pub base: f64,
    /// Warm-up length in optimiser steps (0 = none).
    pub warmup: usize,
    /// Step at which the cosine decay reaches `min_lr`, which then holds.
    pub total: usize,
    /// Learning rate at step 0 when warming up.
    pub warmup_start: f64,
    /// Final learning rate, from step `total` on.
    pub min_lr: f64,
}

impl WarmupCosine {
    /// The learning rate at optimiser step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            if self.warmup <= 1 {
                return self.base;
            }
            return self.warmup_start
                + step as f64 * (self.base - self.warmup_start) / (self.warmup - 1) as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let t = ((step - self.warmup) as f64 / span).min(1.0);
        self.min_lr + 0.5 * (self.base - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_official_closed_form() {
        let s = WarmupCosine {
            base: 0.4,
            warmup: 1000,
            total: 100_000,
            warmup_start: 3e-5,
            min_lr: 0.0,
        };
        assert!((s.lr(0) - 3e-5).abs() < 1e-12);
        assert!((s.lr(999) - 0.4).abs() < 1e-12);
        assert!((s.lr(500) - (3e-5 + 500.0 * (0.4 - 3e-5) / 999.0)).abs() < 1e-12);
        assert!((s.lr(1000) - 0.4).abs() < 1e-12);
        let mid = 1000 + 99_000 / 2;
        assert!((s.lr(mid) - 0.2).abs() < 1e-9);
        assert!(s.lr(100_000).abs() < 1e-12);
        for t in 1000..1100 {
            assert!(s.lr(t + 1) <= s.lr(t));
        }
    }
}
