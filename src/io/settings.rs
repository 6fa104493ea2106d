//! Small per-user settings files (the recent-files list): read when present, written
//! atomically so a crash mid-write never leaves a truncated list.

use super::atomic::write_atomic;
use super::IoError;
use std::path::{Path, PathBuf};

/// Settings files larger than this are not ours (or are damaged): refused, not read whole.
const MAX_SETTINGS_BYTES: u64 = 1 << 20;

/// The per-user config folder: `$XDG_CONFIG_HOME/fuseprint`, else `$HOME/.config/fuseprint`;
/// `None` when neither variable holds an absolute path.
pub fn config_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        p.is_absolute().then_some(p)
    };
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".config"))
        })?;
    Some(base.join("fuseprint"))
}

/// The text of `path`, or `None` when it does not exist yet.
pub fn read_text(path: &Path) -> Result<Option<String>, IoError> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoError::os(path, e)),
    };
    if metadata.len() > MAX_SETTINGS_BYTES {
        return Err(IoError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{} bytes is too large for a settings file", metadata.len()),
        });
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| IoError::os(path, e))
}

/// Replaces `path` with `text` atomically, creating its folder first.
pub fn write_text(path: &Path, text: &str) -> Result<(), IoError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| IoError::os(dir, e))?;
    }
    write_atomic(path, false, |w| w.write_all(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_reads_as_none_and_a_written_one_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/recent.json");
        assert_eq!(read_text(&path).expect("missing is fine"), None);
        write_text(&path, "first").expect("writes");
        write_text(&path, "second").expect("replaces");
        assert_eq!(read_text(&path).expect("reads").as_deref(), Some("second"));
    }
}
