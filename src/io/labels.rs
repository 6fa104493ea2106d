//! Label maps on disk: the voxels as NIfTI (`.nii` / `.nii.gz`, via [`super::nifti`]) plus a
//! JSON sidecar beside it (`name.labels.json`) holding what NIfTI cannot: the label table
//! (names, colours, visibility, locks), per-label print settings, and the exact `f64` grid
//! (NIfTI stores the affine in `f32`).
//!
//! Label maps made by other tools load too: without a sidecar every value gets a generic entry,
//! and [`read_class_map`] names them from a TotalSegmentator-style `class_map*.json`.

use super::atomic::write_atomic;
use super::exact_geometry::ExactGeometry;
use super::nifti::{read_labels, write_labels};
use super::IoError;
use crate::jobs::JobContext;
use crate::volume::{LabelInfo, LabelMap, LabelTable};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The sidecar's `format` field, so a stray JSON file is not mistaken for one.
const SIDECAR_FORMAT: &str = "fuseprint-labels";
/// 2: print profiles are `volume::PrintProfile` (adds `extruder` and `suggestion`); version 1
/// sidecars read unchanged because both fields have defaults.
const SIDECAR_VERSION: u32 = 2;
/// A sidecar grid is trusted over the NIfTI's only when they agree this closely (mm): more
/// means the NIfTI was rewritten by another tool and its own header wins.
const SIDECAR_GRID_TOLERANCE_MM: f64 = 1e-3;

/// The sidecar's JSON shape. Print profiles are opaque here: the layers above own their type.
#[derive(Debug, Serialize)]
struct SidecarOut<'a, P> {
    format: &'static str,
    version: u32,
    labels: Vec<LabelInfo>,
    geometry: ExactGeometry,
    print_profiles: &'a P,
}

#[derive(Debug, Deserialize)]
struct SidecarIn<P> {
    format: String,
    #[allow(dead_code)]
    version: u32,
    labels: Vec<LabelInfo>,
    #[serde(default)]
    geometry: Option<ExactGeometry>,
    /// Missing or `null` (e.g. saved without profiles) reads as `P::default()`.
    #[serde(default)]
    print_profiles: Option<P>,
}

/// `scan.nii.gz` → `scan.labels.json` (same folder).
pub fn sidecar_path(nifti_path: &Path) -> PathBuf {
    let name = nifti_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let stem = [".nii.gz", ".nii"]
        .iter()
        .find(|ext| lower.ends_with(*ext))
        .map(|ext| &name[..name.len() - ext.len()])
        .unwrap_or(&name);
    nifti_path.with_file_name(format!("{stem}.labels.json"))
}

/// Saves the map as NIfTI (u8 when every label fits, else u16) and its sidecar, each written
/// atomically. `print_profiles` is stored as given (e.g. a `BTreeMap<u16, PrintProfile>`).
pub fn save_label_map<P: Serialize>(
    path: &Path,
    map: &LabelMap,
    print_profiles: &P,
    overwrite: bool,
) -> Result<(), IoError> {
    let sidecar = SidecarOut {
        format: SIDECAR_FORMAT,
        version: SIDECAR_VERSION,
        labels: map.table.iter().cloned().collect(),
        geometry: ExactGeometry::of(map.geometry()),
        print_profiles,
    };
    let json = serde_json::to_vec_pretty(&sidecar).map_err(|e| IoError::Corrupt {
        path: sidecar_path(path),
        reason: format!("cannot encode the label table: {e}"),
    })?;
    write_labels(path, map, overwrite)?;
    write_atomic(&sidecar_path(path), false, |w| {
        std::io::Write::write_all(w, &json)
    })
}

/// Loads a label map and, when its sidecar exists, the label table, exact grid and print
/// profiles from it (`P::default()` without one).
pub fn load_label_map<P: DeserializeOwned + Default>(
    path: &Path,
    ctx: &JobContext,
) -> Result<(LabelMap, P), IoError> {
    let mut map = read_labels(path, ctx)?;
    let side = sidecar_path(path);
    if !side.is_file() {
        return Ok((map, P::default()));
    }
    let bytes = std::fs::read(&side).map_err(|e| IoError::os(&side, e))?;
    let sidecar: SidecarIn<P> = serde_json::from_slice(&bytes).map_err(|e| IoError::Corrupt {
        path: side.clone(),
        reason: format!("not a label sidecar: {e}"),
    })?;
    if sidecar.format != SIDECAR_FORMAT {
        return Err(IoError::Corrupt {
            path: side,
            reason: format!(
                "format is {:?}, expected {SIDECAR_FORMAT:?}",
                sidecar.format
            ),
        });
    }
    if let Some(exact) = sidecar.geometry.as_ref().and_then(|g| g.geometry().ok()) {
        if exact.same_grid(map.geometry(), SIDECAR_GRID_TOLERANCE_MM) {
            let (_, data) = map.volume.into_parts();
            map.volume = crate::volume::Volume::new(exact, data).map_err(|e| IoError::Corrupt {
                path: side.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    let mut table = LabelTable::new();
    for info in sidecar.labels {
        table.insert(info);
    }
    Ok((
        LabelMap::new(map.volume, table),
        sidecar.print_profiles.unwrap_or_default(),
    ))
}

/// Label names from a TotalSegmentator-style class map: either `{"1": "spleen", …}` or
/// `{"total": {"1": "spleen", …}, "total_mr": {…}}` with `task` choosing the inner map
/// (`None` takes `"total"`, or the only one).
pub fn read_class_map(path: &Path, task: Option<&str>) -> Result<BTreeMap<u16, String>, IoError> {
    let bytes = std::fs::read(path).map_err(|e| IoError::os(path, e))?;
    let corrupt = |reason: String| IoError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| corrupt("expected a JSON object of label ids to names".into()))?;
    let flat = obj.values().all(|v| v.is_string());
    let inner = if flat {
        obj
    } else {
        let key = match task {
            Some(t) => t.to_string(),
            None if obj.contains_key("total") => "total".to_string(),
            None if obj.len() == 1 => obj.keys().next().cloned().unwrap_or_default(),
            None => {
                return Err(corrupt(format!(
                    "several tasks ({}); choose one",
                    obj.keys().cloned().collect::<Vec<_>>().join(", ")
                )))
            }
        };
        obj.get(&key)
            .and_then(|v| v.as_object())
            .ok_or_else(|| corrupt(format!("no task {key:?}")))?
    };
    let mut names = BTreeMap::new();
    for (id, name) in inner {
        let value: u16 = id
            .trim()
            .parse()
            .map_err(|_| corrupt(format!("label id {id:?} is not a number 0..65535")))?;
        let name = name
            .as_str()
            .ok_or_else(|| corrupt(format!("name of label {id} is not a string")))?;
        names.insert(value, name.to_string());
    }
    Ok(names)
}

/// Renames the table's entries from a class map, adding entries for named values present in
/// the voxels; values the class map does not know keep their names.
pub fn apply_class_names(map: &mut LabelMap, names: &BTreeMap<u16, String>) {
    for value in map.values_present() {
        let Some(name) = names.get(&value) else {
            continue;
        };
        match map.table.get_mut(value) {
            Some(info) => info.name = name.clone(),
            None => map.table.insert(LabelInfo::new(
                value,
                name.clone(),
                LabelTable::default_color(value),
            )),
        }
    }
}

/// Writes the map for crash recovery, atomically (temp file + rename), so the file on disk is
/// always a whole map. Call it after each gesture through a job; see [`Autosaver`] to skip
/// unchanged maps.
pub fn autosave<P: Serialize>(
    path: &Path,
    map: &LabelMap,
    print_profiles: &P,
) -> Result<(), IoError> {
    save_label_map(path, map, print_profiles, true)
}

/// Autosaves only when the document's revision moved since the last successful save.
#[derive(Debug, Clone)]
pub struct Autosaver {
    path: PathBuf,
    saved_revision: Option<u64>,
}

impl Autosaver {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            saved_revision: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves if `revision` differs from the last saved one; returns whether it wrote.
    pub fn save_if_changed<P: Serialize>(
        &mut self,
        map: &LabelMap,
        print_profiles: &P,
        revision: u64,
    ) -> Result<bool, IoError> {
        if self.saved_revision == Some(revision) {
            return Ok(false);
        }
        autosave(&self.path, map, print_profiles)?;
        self.saved_revision = Some(revision);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Rgba, Volume, VolumeGeometry};
    use nalgebra::Rotation3;

    fn oblique_map() -> LabelMap {
        let rot = Rotation3::from_euler_angles(0.1, -0.2, 0.3).into_inner();
        let g = VolumeGeometry::new([9, 8, 7], [0.7, 0.9, 1.3], [-12.345678, 3.3, 101.1], rot)
            .expect("valid");
        let v = Volume::from_fn(g, |[i, j, k]| ((i + j + k) % 4) as u16 * 100);
        let mut table = LabelTable::new();
        let mut bone = LabelInfo::new(100, "bone", Rgba::rgb(1, 2, 3));
        bone.locked = true;
        table.insert(bone);
        let mut hidden = LabelInfo::new(300, "vessel", Rgba([9, 8, 7, 128]));
        hidden.visible = false;
        table.insert(hidden);
        LabelMap::new(v, table)
    }

    #[test]
    fn save_load_round_trip_keeps_voxels_table_profiles_and_exact_grid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seg.nii.gz");
        let map = oblique_map();
        let profiles: BTreeMap<u16, String> = [(100, "PLA white".to_string())].into();
        save_label_map(&path, &map, &profiles, false).expect("writes");
        assert!(dir.path().join("seg.labels.json").is_file());
        let (back, back_profiles): (LabelMap, BTreeMap<u16, String>) =
            load_label_map(&path, &JobContext::detached()).expect("reads");
        assert!(back == map, "label map changed in the round trip");
        assert_eq!(back_profiles, profiles);
        assert!(
            save_label_map(&path, &map, &profiles, false).is_err(),
            "no silent overwrite"
        );
    }

    #[test]
    fn version_1_sidecar_profiles_migrate_to_the_unified_profile() {
        use crate::volume::PrintProfile;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.nii.gz");
        let map = oblique_map();
        save_label_map(&path, &map, &(), false).expect("writes");
        // What the editing module wrote before the profiles were unified.
        let old = r#"{"format": "fuseprint-labels", "version": 1,
            "labels": [{"value": 100, "name": "bone", "color": [1, 2, 3, 255], "visible": true}],
            "print_profiles": {"100": {"material": "PETG", "color": [10, 20, 30, 255],
                                       "infill_percent": 15.0, "wall_count": 4}}}"#;
        std::fs::write(sidecar_path(&path), old).expect("write");
        let (back, profiles): (LabelMap, BTreeMap<u16, PrintProfile>) =
            load_label_map(&path, &JobContext::detached()).expect("old sidecar reads");
        let expected = PrintProfile {
            material: "PETG".into(),
            color: Rgba::rgb(10, 20, 30),
            infill_percent: 15.0,
            wall_count: 4,
            extruder: 1,
            suggestion: None,
        };
        assert_eq!(profiles.get(&100), Some(&expected));
        assert_eq!(back.table.get(100).map(|l| l.name.as_str()), Some("bone"));
        // Saved again, it is a current sidecar and round-trips.
        let new_path = dir.path().join("new.nii.gz");
        save_label_map(&new_path, &back, &profiles, false).expect("writes");
        let (_, again): (LabelMap, BTreeMap<u16, PrintProfile>) =
            load_label_map(&new_path, &JobContext::detached()).expect("reads");
        assert_eq!(again, profiles);
    }

    #[test]
    fn sidecar_path_strips_nifti_extensions() {
        assert_eq!(
            sidecar_path(Path::new("/a/b/x.nii.gz")),
            Path::new("/a/b/x.labels.json")
        );
        assert_eq!(sidecar_path(Path::new("y.NII")), Path::new("y.labels.json"));
    }

    #[test]
    fn autosaver_writes_only_on_new_revisions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("autosave.nii");
        let mut saver = Autosaver::new(&path);
        let map = oblique_map();
        assert!(saver.save_if_changed(&map, &(), 1).expect("writes"));
        assert!(!saver.save_if_changed(&map, &(), 1).expect("skips"));
        assert!(saver.save_if_changed(&map, &(), 2).expect("writes"));
        // Saved without profiles, read as an empty profile map.
        let (back, profiles): (LabelMap, BTreeMap<u16, String>) =
            load_label_map(&path, &JobContext::detached()).expect("reads");
        assert!(profiles.is_empty());
        assert_eq!(back.geometry(), map.geometry());
        assert!(back.volume.data() == map.volume.data());
    }

    #[test]
    fn class_maps_flat_or_by_task() {
        let dir = tempfile::tempdir().expect("tempdir");
        let flat = dir.path().join("flat.json");
        std::fs::write(&flat, r#"{"1": "spleen", "5": "liver"}"#).expect("write");
        let names = read_class_map(&flat, None).expect("flat");
        assert_eq!(names.get(&5).map(String::as_str), Some("liver"));
        let nested = dir.path().join("nested.json");
        std::fs::write(
            &nested,
            r#"{"total": {"1": "spleen"}, "total_mr": {"1": "x"}}"#,
        )
        .expect("write");
        assert_eq!(read_class_map(&nested, None).expect("total")[&1], "spleen");
        assert_eq!(
            read_class_map(&nested, Some("total_mr")).expect("task")[&1],
            "x"
        );
        std::fs::write(&flat, r#"{"one": "spleen"}"#).expect("write");
        let err = read_class_map(&flat, None).expect_err("bad id").to_string();
        assert!(err.ends_with("flat.json"), "{err}");
    }
}
