//! Writes that never leave a half-written file behind and never overwrite by accident.

use super::IoError;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes `path` through `f` into a temporary file in the same folder, then renames it
/// into place (a rename within one folder is atomic). With `no_overwrite`, an existing
/// `path` is refused with [`IoError::WouldOverwrite`] before anything is written.
pub fn write_atomic(
    path: &Path,
    no_overwrite: bool,
    f: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), IoError> {
    if no_overwrite && path.exists() {
        return Err(IoError::WouldOverwrite {
            path: path.to_path_buf(),
        });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(IoError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let tmp = tempfile::Builder::new()
        .prefix(".fuseprint-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| IoError::os(path, e))?;
    {
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
        f(&mut out).map_err(|e| IoError::os(path, e))?;
        out.flush().map_err(|e| IoError::os(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| IoError::os(path, e))?;
    if no_overwrite {
        // Another writer may have created `path` meanwhile: refuse rather than clobber.
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                IoError::WouldOverwrite {
                    path: path.to_path_buf(),
                }
            } else {
                IoError::os(path, e.error)
            }
        })?;
    } else {
        tmp.persist(path).map_err(|e| IoError::os(path, e.error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_overwrite_and_leaves_no_partial_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.bin");
        write_atomic(&path, true, |w| w.write_all(b"first")).expect("write");
        let err = write_atomic(&path, true, |w| w.write_all(b"second")).expect_err("exists");
        assert!(matches!(err, IoError::WouldOverwrite { .. }));
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        // A failing writer leaves the old file and no temporary behind.
        let err = write_atomic(&path, false, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .expect_err("fails");
        assert!(err.to_string().contains("out.bin"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), b"first");
        let leftovers = std::fs::read_dir(dir.path()).expect("ls").count();
        assert_eq!(leftovers, 1);
        write_atomic(&path, false, |w| w.write_all(b"forced")).expect("force");
        assert_eq!(std::fs::read(&path).expect("read"), b"forced");
    }
}
