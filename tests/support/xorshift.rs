//! A deterministic stream of test values (xorshift), shared by the tract-core patch tests so a
//! failure reproduces from its seed.

pub struct Random(pub u64);

impl Random {
    /// The next value in -1..1.
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// `offset + spread · (-1..1)`: planes with a mean far from zero check that a variance does
    /// not cancel.
    pub fn values(&mut self, len: usize, offset: f32, spread: f32) -> Vec<f32> {
        (0..len).map(|_| offset + spread * self.next()).collect()
    }
}
