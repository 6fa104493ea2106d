//! Temp file in the destination folder + rename: readers never see a partial file.

use super::ExportError;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes through `fill` into a temporary file beside `path`, then renames it into place.
/// Without `overwrite`, an existing `path` is an error (checked atomically at the rename).
pub fn write_atomic(
    path: &Path,
    overwrite: bool,
    fill: impl FnOnce(&mut BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<(), ExportError> {
    let io = |source: std::io::Error| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !overwrite && path.exists() {
        return Err(ExportError::Exists {
            path: path.to_path_buf(),
        });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".fuseprint-")
        .suffix(".part")
        .tempfile_in(&dir)
        .map_err(io)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        fill(&mut w).map_err(io)?;
        w.flush().map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    let result = if overwrite {
        tmp.persist(path).map(|_| ())
    } else {
        tmp.persist_noclobber(path).map(|_| ())
    };
    result.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            ExportError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io(e.error)
        }
    })
}
