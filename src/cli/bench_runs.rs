//! Repeated timing for the `fuseprint bench` subcommands: on a shared machine one run can be
//! 10–25 % off, so a figure is the best of several runs, with their median beside it.

use std::time::Instant;

/// Wall and CPU seconds (all threads) of each run, in run order, and the last run's result.
pub fn time<T>(repeat: usize, mut f: impl FnMut() -> T) -> (Vec<(f64, f64)>, T) {
    let mut runs = Vec::new();
    let mut last = None;
    for _ in 0..repeat.max(1) {
        let cpu = crate::io::cpu_seconds();
        let t = Instant::now();
        let out = f();
        let wall = t.elapsed().as_secs_f64();
        let cpu = match (cpu, crate::io::cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        runs.push((wall, cpu));
        last = Some(out);
    }
    (runs, last.expect("at least one repetition"))
}

/// The best run (with its CPU time) and the median, by wall time. On a busy machine wall time
/// overstates; CPU time over the threads used bounds the idle figure.
pub fn summary(runs: &[(f64, f64)]) -> String {
    let walls: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let (best, median) = best_and_median(&walls);
    let cpu = runs.iter().find(|r| r.0 == best).map_or(f64::NAN, |r| r.1);
    format!(
        "best {best:.3} s (CPU {cpu:.2} s over {} threads), median {median:.3} s ({} runs)",
        rayon::current_num_threads(),
        runs.len()
    )
}

/// The smallest of `seconds` and the median (the upper middle one of an even count), as every
/// `fuseprint bench` figure reports them.
pub fn best_and_median(seconds: &[f64]) -> (f64, f64) {
    let mut sorted = seconds.to_vec();
    sorted.sort_by(f64::total_cmp);
    (sorted[0], sorted[sorted.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_stay_in_order_and_the_summary_ranks_them() {
        let mut n = 0;
        let (runs, last) = time(3, || {
            n += 1;
            n
        });
        assert_eq!((runs.len(), last), (3, 3));
        let s = summary(&[(3.0, 1.0), (1.0, 0.5), (2.0, 0.75)]);
        assert!(s.starts_with("best 1.000 s (CPU 0.50 s"), "{s}");
        assert!(s.contains("median 2.000 s (3 runs)"), "{s}");
    }
}
