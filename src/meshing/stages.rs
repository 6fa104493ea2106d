//! Where the meshing pipeline spends its time, for `fuseprint bench mesh`.

use std::sync::Mutex;
use std::time::Instant;

/// Seconds per pipeline stage, in first-seen order. Parts are processed in parallel, so a
/// per-part stage is the sum over the threads that ran it (thread-seconds, not wall time).
#[derive(Debug, Default)]
pub struct StageTimes(Mutex<Vec<(&'static str, f64)>>);

impl StageTimes {
    /// Runs `f`, adding its duration to `stage`.
    pub fn time<R>(&self, stage: &'static str, f: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let r = f();
        self.add(stage, start.elapsed().as_secs_f64());
        r
    }

    pub fn add(&self, stage: &'static str, secs: f64) {
        // A panic elsewhere cannot leave a Vec of sums inconsistent: keep the data.
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match v.iter_mut().find(|(s, _)| *s == stage) {
            Some(entry) => entry.1 += secs,
            None => v.push((stage, secs)),
        }
    }

    pub fn entries(&self) -> Vec<(&'static str, f64)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_repeated_stages_in_first_seen_order() {
        let t = StageTimes::default();
        t.add("a", 1.0);
        t.add("b", 0.5);
        t.add("a", 2.0);
        assert_eq!(t.entries(), vec![("a", 3.0), ("b", 0.5)]);
        assert_eq!(t.time("c", || 7), 7);
        assert_eq!(t.entries().len(), 3);
    }
}
