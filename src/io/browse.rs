//! Folder listing for the app's built-in file browser (used where no system dialog exists).

use super::IoError;
use std::path::{Path, PathBuf};

/// One entry of a folder, folders first then files, each group sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderEntry {
    pub name: String,
    pub path: PathBuf,
    pub is_folder: bool,
}

/// Lists `folder`, skipping hidden entries (names starting with a dot).
pub fn list_folder(folder: &Path) -> Result<Vec<FolderEntry>, IoError> {
    let read = std::fs::read_dir(folder).map_err(|e| IoError::os(folder, e))?;
    let mut entries: Vec<FolderEntry> = read
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                return None;
            }
            let path = e.path();
            // Follows symlinks, so a linked data folder browses like a real one.
            let is_folder = std::fs::metadata(&path)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            Some(FolderEntry {
                name,
                path,
                is_folder,
            })
        })
        .collect();
    entries.sort_by(|a, b| {
        b.is_folder
            .cmp(&a.is_folder)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_folders_first_and_hides_dot_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("b.nii"), b"x").expect("write");
        std::fs::write(dir.path().join(".hidden"), b"x").expect("write");
        std::fs::create_dir(dir.path().join("z_series")).expect("mkdir");
        let names: Vec<(String, bool)> = list_folder(dir.path())
            .expect("listing")
            .into_iter()
            .map(|e| (e.name, e.is_folder))
            .collect();
        assert_eq!(
            names,
            vec![("z_series".into(), true), ("b.nii".into(), false)]
        );
        assert!(list_folder(&dir.path().join("missing")).is_err());
    }
}
