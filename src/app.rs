//! Composition root of the desktop window.

use std::path::PathBuf;
use std::process::ExitCode;

/// Opens the desktop window (placeholder until the first window lands).
pub fn run(_open: Option<PathBuf>) -> ExitCode {
    eprintln!("error: the desktop window is not built yet");
    ExitCode::FAILURE
}
