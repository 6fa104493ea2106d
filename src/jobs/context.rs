//! What a running algorithm sees of its job: a progress sink and a cancel flag (ITK's pattern).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The job was cancelled; algorithms return this from where they poll [`JobContext::check_cancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// A shared flag; cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct ProgressState {
    /// f32 bits of the overall fraction in [0, 1].
    fraction_bits: AtomicU32,
    stage: Mutex<String>,
}

/// Shared progress: an overall fraction and the current stage's text.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<ProgressState>);

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn fraction(&self) -> f32 {
        f32::from_bits(self.0.fraction_bits.load(Ordering::Relaxed))
    }
    pub fn stage(&self) -> String {
        self.0.stage.lock().map(|s| s.clone()).unwrap_or_default()
    }
    fn set_fraction(&self, f: f32) {
        let f = if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.0.fraction_bits.store(f.to_bits(), Ordering::Relaxed);
    }
    fn set_stage(&self, stage: &str) {
        if let Ok(mut s) = self.0.stage.lock() {
            if s.as_str() != stage {
                s.clear();
                s.push_str(stage);
            }
        }
    }
}

/// Handed to every long-running algorithm.
///
/// A context may cover a sub-range of its parent's progress (`ctx.sub(0.2, 0.9)`), so a
/// composite job (resample → infer → post-process) reports one monotone bar.
#[derive(Debug, Clone)]
pub struct JobContext {
    progress: Progress,
    cancel: CancelToken,
    range: (f32, f32),
}

impl Default for JobContext {
    fn default() -> Self {
        Self::detached()
    }
}

impl JobContext {
    pub fn new(progress: Progress, cancel: CancelToken) -> Self {
        Self {
            progress,
            cancel,
            range: (0.0, 1.0),
        }
    }

    /// A context nobody watches: for tests and synchronous callers.
    pub fn detached() -> Self {
        Self::new(Progress::new(), CancelToken::new())
    }

    /// Reports `fraction` (0..1) of this context's own range.
    pub fn set_progress(&self, fraction: f32) {
        let (a, b) = self.range;
        self.progress
            .set_fraction(a + (b - a) * fraction.clamp(0.0, 1.0));
    }

    /// Names the current stage ("Decoding slices", "Sorting").
    pub fn set_stage(&self, stage: &str) {
        self.progress.set_stage(stage);
    }

    /// `done` of `total` steps finished.
    pub fn set_steps(&self, done: usize, total: usize) {
        self.set_progress(if total == 0 {
            1.0
        } else {
            done as f32 / total as f32
        });
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// `Err(Cancelled)` once the user asked to stop.
    pub fn check_cancelled(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// A child covering `[start, end]` of this context's range.
    pub fn sub(&self, start: f32, end: f32) -> JobContext {
        let (a, b) = self.range;
        Self {
            progress: self.progress.clone(),
            cancel: self.cancel.clone(),
            range: (
                a + (b - a) * start.clamp(0.0, 1.0),
                a + (b - a) * end.clamp(0.0, 1.0),
            ),
        }
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_ranges_map_into_parent() {
        let ctx = JobContext::detached();
        let child = ctx.sub(0.2, 0.6);
        child.set_progress(0.5);
        assert!((ctx.progress().fraction() - 0.4).abs() < 1e-6);
        let grandchild = child.sub(0.5, 1.0);
        grandchild.set_progress(1.0);
        assert!((ctx.progress().fraction() - 0.6).abs() < 1e-6);
        grandchild.set_stage("Meshing");
        assert_eq!(ctx.progress().stage(), "Meshing");
    }

    #[test]
    fn cancel_is_shared() {
        let ctx = JobContext::detached();
        let child = ctx.sub(0.0, 0.5);
        assert_eq!(child.check_cancelled(), Ok(()));
        ctx.cancel_token().cancel();
        assert_eq!(child.check_cancelled(), Err(Cancelled));
    }
}
