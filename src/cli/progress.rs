//! Runs CLI work through the job system, with a progress bar when stderr is a terminal.

use crate::jobs::{JobContext, JobError, JobSystem};
use std::io::IsTerminal;
use std::time::Duration;

/// Runs `work` on a background job and waits, drawing a bar on a TTY.
pub fn run_with_progress<T, E, F>(name: &str, work: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    E: std::fmt::Display,
    F: FnOnce(&JobContext) -> Result<T, E> + Send + 'static,
{
    let jobs = JobSystem::headless();
    let handle = jobs.submit(name, move |ctx| {
        work(ctx).map_err(|e| JobError::Failed(e.to_string()))
    });
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(1000);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40.cyan/blue} {percent:>3}% {msg}")
        {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let result = handle.wait_with(Duration::from_millis(100), |fraction, stage| {
        if let Some(bar) = &bar {
            bar.set_position((fraction * 1000.0) as u64);
            bar.set_message(stage.to_string());
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result.map_err(|e| anyhow::anyhow!("{e}"))
}
