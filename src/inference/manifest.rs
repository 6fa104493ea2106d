//! The JSON manifest beside each `.onnx`: everything the code must not hard-wire about a model
//! (its grid, intensity scaling, tiling, outputs, labels, licence).
//!
//! `models/README.md` documents every field with an example.

use crate::volume::VolumeGeometry;
use nalgebra::{Matrix3, Vector3};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a manifest could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "model has no manifest: expected {expected} beside it (a JSON file with task, input, output, \
         grid, normalisation, patch and labels; see models/README.md) ({model})"
    )]
    Missing { model: PathBuf, expected: PathBuf },
    #[error("cannot read manifest: {source} ({path})")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest is not valid: {message} ({path})")]
    Invalid { path: PathBuf, message: String },
}

/// What the model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Segmentation,
    Registration,
    Denoise,
}

/// What the chosen output tensor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// `[1, K, D, H, W]` unnormalised class scores (softmax gives probabilities).
    Logits,
    /// `[1, K, D, H, W]` class probabilities.
    Probabilities,
    /// `[1, D, H, W]` class indices (no confidence available).
    Labels,
    /// `[1, 3, D, H, W]` displacements (registration; `output.units` says voxels or mm, see
    /// `inference::registration`).
    #[serde(alias = "displacement_field")]
    Displacement,
}

/// How the spatial tensor axes `D, H, W` map to voxel axes of the model grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TensorAxes {
    /// `D = i, H = j, W = k`: a NIfTI array read by nibabel/numpy (`W` fastest in memory).
    #[default]
    Ijk,
    /// `D = k, H = j, W = i`: the voxel order in memory (`i` fastest), as ITK/SimpleITK arrays.
    Kji,
}

/// Intensity scaling applied on the model grid, before any crop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalisation {
    /// `(v - min) / (max - min)` over the whole grid.
    MinMax,
    /// `(v - p_low) / (p_high - p_low)` with percentiles in 0..100 (numpy's linear rule),
    /// optionally clipped to `[0, 1]`.
    Percentile {
        low: f64,
        high: f64,
        #[serde(default)]
        clip: bool,
    },
    /// `(v - mean) / std` over the voxels above `min_value` (or all).
    ZScore {
        #[serde(default)]
        min_value: Option<f32>,
    },
    /// CT: clip to `[min, max]` Hounsfield units then scale to `[0, 1]`.
    CtWindow { min: f32, max: f32 },
    /// Values passed unchanged.
    None,
}

/// Grid the model runs on, relative to the input image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridSpec {
    pub spacing_mm: [f64; 3],
    /// Three letters naming where each voxel axis points, e.g. `LIA` (i → Left, j → Inferior,
    /// k → Anterior), the same convention as nibabel's axis codes.
    pub orientation: String,
    /// Fixed dims centred on the input's centre (brainchop's 256³ "conform"); `None` covers the
    /// input's extent.
    #[serde(default)]
    pub dims: Option<[usize; 3]>,
}

/// Brainchop-style crop: run only on the bounding box of voxels above `threshold × max`
/// (after normalisation; `0` means above zero), grown by `padding` voxels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CropSpec {
    pub threshold: f32,
    #[serde(default)]
    pub padding: usize,
}

/// Whole volume in one run, or overlapping patches blended with Gaussian weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum PatchMode {
    WholeVolume,
    SlidingWindow {
        /// Patch size along `D, H, W`.
        size: [usize; 3],
        /// Fraction of a patch shared with its neighbour (0 ≤ overlap < 1).
        overlap: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    #[serde(default = "one")]
    pub channels: usize,
    #[serde(default)]
    pub tensor_axes: TensorAxes,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub name: String,
    pub kind: OutputKind,
}

/// Output class `class` becomes label `value` (usually the same number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelLabel {
    pub class: usize,
    pub value: u16,
    pub name: String,
    pub color: [u8; 3],
}

/// Everything fuseprint needs to know to run a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub task: Task,
    /// Modalities the model was made for (`CT`, `MR`); informative.
    #[serde(default)]
    pub modality: Vec<String>,
    /// The `.onnx` file, relative to the manifest.
    pub model_file: PathBuf,
    pub input: InputSpec,
    pub output: OutputSpec,
    pub grid: GridSpec,
    pub normalisation: Normalisation,
    #[serde(default)]
    pub crop: Option<CropSpec>,
    pub patch: PatchMode,
    /// Spatial tensor axes (0 = D, 1 = H, 2 = W) to flip for test-time augmentation.
    #[serde(default)]
    pub test_time_flips: Vec<usize>,
    /// Keep only the largest 6-connected piece of each label on the model grid (the other pieces
    /// become background): post-processing that the model's training chose on its training data
    /// (the brain mask's stray pieces in the neck and skull base).
    #[serde(default)]
    pub keep_largest_component: bool,
    /// Foreground classes; class 0 is background.
    pub labels: Vec<ModelLabel>,
    pub licence: String,
    pub provenance: String,
    /// Measured peak memory of a whole-volume run on tract, bytes per model-grid voxel (the
    /// whole process, inputs and outputs included). A model that declares it runs whole on
    /// tract when [`TRACT_FIELD_MM`] fits in [`TRACT_WHOLE_VOLUME_BUDGET_BYTES`]; otherwise tract
    /// gets [`TRACT_PATCH`]³ patches.
    #[serde(default)]
    pub tract_peak_bytes_per_voxel: Option<f64>,
    /// Folder the manifest was read from (model_file is relative to it).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Patch edge (voxels) that whole-volume models run in on tract. Stock tract unfolded each 3D
/// convolution's input (im2col): a whole 256³ head needed more than 20 GB (killed at 23 GB), a
/// 128³ patch about 7 GB. The direct 3D convolution patched into tract-core
/// (vendor/tract-core/PATCHES.md) brought a 128³ MeshNet patch down to ~0.7 GB; the patch rule
/// stays as the bound for models that declare nothing.
pub const TRACT_PATCH: usize = 128;

/// Field of view a whole-volume model must fit on tract to keep running whole: a 512 × 512 × 400
/// CT of 0.98 mm pixels and 1.25 mm slices (issue 6's memory bound).
pub const TRACT_FIELD_MM: [f64; 3] = [500.0, 500.0, 500.0];

/// Memory a whole-volume run on tract may take for [`TRACT_FIELD_MM`]: about what one
/// [`TRACT_PATCH`]³ patch of a MeshNet took on stock tract (7 GB), so no model gets more than the
/// patch rule allowed.
pub const TRACT_WHOLE_VOLUME_BUDGET_BYTES: f64 = 8.0 * 1024.0 * 1024.0 * 1024.0;

impl Manifest {
    /// Peak memory on tract of a whole-volume run over [`TRACT_FIELD_MM`] on this model's grid,
    /// when the manifest declares its bytes per voxel.
    pub fn tract_peak_bytes_for_field(&self) -> Option<f64> {
        // A grid with fixed dims (a conformed 256³ MeshNet) never holds more than those,
        // whatever the field of view.
        let voxels: f64 = (0..3)
            .map(|a| {
                let along_field = (TRACT_FIELD_MM[a] / self.grid.spacing_mm[a]).round() + 1.0;
                self.grid
                    .dims
                    .map_or(along_field, |d| along_field.min(d[a] as f64))
            })
            .product();
        self.tract_peak_bytes_per_voxel.map(|b| b * voxels)
    }

    /// On tract, runs a whole-volume model in [`TRACT_PATCH`]³ sliding windows so memory stays
    /// bounded, unless its declared peak memory fits the budget (see
    /// [`Manifest::tract_peak_bytes_per_voxel`]); other engines keep the manifest's mode.
    /// Returns whether the mode changed.
    pub fn bound_memory_for(&mut self, backend: super::BackendKind) -> bool {
        let fits = self
            .tract_peak_bytes_for_field()
            .is_some_and(|b| b <= TRACT_WHOLE_VOLUME_BUDGET_BYTES);
        if backend == super::BackendKind::Tract && self.patch == PatchMode::WholeVolume && !fits {
            self.patch = PatchMode::SlidingWindow {
                size: [TRACT_PATCH; 3],
                overlap: 0.25,
            };
            return true;
        }
        false
    }

    /// Parses a manifest file and checks it for consistency.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut manifest = Self::from_json(&text, path)?;
        manifest.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(manifest)
    }

    /// The manifest beside `model` (`x.onnx` → `x.json`), or a clear error naming what is missing.
    pub fn for_model(model: &Path) -> Result<Self, ManifestError> {
        let expected = model.with_extension("json");
        if !expected.is_file() {
            return Err(ManifestError::Missing {
                model: model.to_path_buf(),
                expected,
            });
        }
        let mut manifest = Self::load(&expected)?;
        manifest.model_file = model.to_path_buf();
        manifest.base_dir = PathBuf::new();
        Ok(manifest)
    }

    /// Parses JSON text; `path` is only used in messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let manifest: Manifest =
            serde_json::from_str(text).map_err(|e| ManifestError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        manifest
            .validate()
            .map_err(|message| ManifestError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        Ok(manifest)
    }

    /// Where the `.onnx` file is.
    pub fn model_path(&self) -> PathBuf {
        if self.model_file.is_absolute() {
            self.model_file.clone()
        } else {
            self.base_dir.join(&self.model_file)
        }
    }

    /// Number of classes the model scores (background included).
    pub fn class_count(&self) -> usize {
        self.labels
            .iter()
            .map(|l| l.class + 1)
            .max()
            .unwrap_or(1)
            .max(2)
    }

    fn validate(&self) -> Result<(), String> {
        if self
            .grid
            .spacing_mm
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(format!(
                "grid.spacing_mm must be positive, got {:?}",
                self.grid.spacing_mm
            ));
        }
        orientation_axes(&self.grid.orientation)?;
        if let Some(d) = self.grid.dims {
            if d.contains(&0) {
                return Err(format!("grid.dims must be positive, got {d:?}"));
            }
        }
        // Registration models take the (fixed, moving) pair as two channels.
        let channels = if self.task == Task::Registration {
            2
        } else {
            1
        };
        if self.input.channels != channels {
            return Err(format!(
                "input.channels = {} but {:?} models must take {channels}",
                self.input.channels, self.task
            ));
        }
        if let PatchMode::SlidingWindow { size, overlap } = &self.patch {
            if size.contains(&0) || !(0.0..1.0).contains(overlap) {
                return Err(format!(
                    "patch: size must be positive and 0 <= overlap < 1, got {size:?}, {overlap}"
                ));
            }
        }
        if let Normalisation::Percentile { low, high, .. } = self.normalisation {
            if !(0.0..=100.0).contains(&low) || !(0.0..=100.0).contains(&high) || low >= high {
                return Err(format!(
                    "normalisation: need 0 <= low < high <= 100, got {low}, {high}"
                ));
            }
        }
        if let Some(b) = self.tract_peak_bytes_per_voxel {
            if !(b.is_finite() && b > 0.0) {
                return Err(format!(
                    "tract_peak_bytes_per_voxel must be positive, got {b}"
                ));
            }
        }
        if let Some(&axis) = self.test_time_flips.iter().find(|a| **a > 2) {
            return Err(format!("test_time_flips: axis {axis} is not 0, 1 or 2"));
        }
        if self.labels.iter().any(|l| l.class == 0 || l.value == 0) {
            return Err("labels: class 0 / value 0 is the implicit background".into());
        }
        Ok(())
    }
}

/// The grid a model runs on: the manifest's spacing and orientation, centred on the input's
/// centre; its dims are the manifest's, or whatever covers the input's extent (segmentation
/// and registration models alike).
pub fn model_grid(input: &VolumeGeometry, manifest: &Manifest) -> Result<VolumeGeometry, String> {
    let axes = orientation_axes(&manifest.grid.orientation)?;
    let direction = Matrix3::from_columns(&axes.map(|a| Vector3::new(a[0], a[1], a[2])));
    let spacing = manifest.grid.spacing_mm;
    let dims = match manifest.grid.dims {
        Some(d) => d,
        None => {
            let mut lo = [f64::INFINITY; 3];
            let mut hi = [f64::NEG_INFINITY; 3];
            for corner in 0..8 {
                let v = [0, 1, 2].map(|a| {
                    if corner >> a & 1 == 1 {
                        input.dims[a] as f64 - 1.0
                    } else {
                        0.0
                    }
                });
                let w = input.world_from_voxel_point(v).coords;
                for a in 0..3 {
                    let along = direction.column(a).dot(&w);
                    lo[a] = lo[a].min(along);
                    hi[a] = hi[a].max(along);
                }
            }
            [0, 1, 2].map(|a| ((hi[a] - lo[a]) / spacing[a]).round() as usize + 1)
        }
    };
    let half = Vector3::from([0, 1, 2].map(|a| (dims[a] as f64 - 1.0) / 2.0 * spacing[a]));
    let origin = input.center_world() - direction * half;
    VolumeGeometry::new(dims, spacing, [origin.x, origin.y, origin.z], direction)
        .map_err(|e| e.to_string())
}

/// World (LPS) unit vector of each voxel axis for a three-letter code such as `LIA`.
pub fn orientation_axes(code: &str) -> Result<[[f64; 3]; 3], String> {
    let letters: Vec<char> = code.trim().to_ascii_uppercase().chars().collect();
    if letters.len() != 3 {
        return Err(format!(
            "grid.orientation must be three letters, got {code:?}"
        ));
    }
    let mut axes = [[0.0; 3]; 3];
    let mut used = [false; 3];
    for (a, c) in letters.iter().enumerate() {
        let (world, sign) = match c {
            'L' => (0, 1.0),
            'R' => (0, -1.0),
            'P' => (1, 1.0),
            'A' => (1, -1.0),
            'S' => (2, 1.0),
            'I' => (2, -1.0),
            _ => {
                return Err(format!(
                    "grid.orientation {code:?}: {c:?} is not one of LRPASI"
                ))
            }
        };
        if used[world] {
            return Err(format!(
                "grid.orientation {code:?} names one body axis twice"
            ));
        }
        used[world] = true;
        axes[a][world] = sign;
    }
    Ok(axes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
        "name": "toy", "task": "segmentation", "model_file": "toy.onnx",
        "input": {"name": "input"}, "output": {"name": "logits", "kind": "logits"},
        "grid": {"spacing_mm": [1, 1, 1], "orientation": "LIA", "dims": [256, 256, 256]},
        "normalisation": {"kind": "percentile", "low": 5, "high": 95},
        "patch": {"mode": "sliding_window", "size": [64, 64, 64], "overlap": 0.5},
        "labels": [{"class": 1, "value": 1, "name": "Brain", "color": [255, 0, 0]}],
        "licence": "MIT", "provenance": "test"
    }"#;

    #[test]
    fn reads_a_minimal_manifest() {
        let m = Manifest::from_json(MINIMAL, Path::new("toy.json")).expect("valid");
        assert_eq!(m.task, Task::Segmentation);
        assert_eq!(m.input.channels, 1);
        assert_eq!(m.input.tensor_axes, TensorAxes::Ijk);
        assert_eq!(m.class_count(), 2);
        assert!(matches!(
            m.normalisation,
            Normalisation::Percentile { clip: false, .. }
        ));
    }

    #[test]
    fn missing_field_is_named() {
        let text = MINIMAL.replace(
            r#""normalisation": {"kind": "percentile", "low": 5, "high": 95},"#,
            "",
        );
        let err = Manifest::from_json(&text, Path::new("toy.json")).expect_err("incomplete");
        let msg = err.to_string();
        assert!(
            msg.contains("normalisation") && msg.contains("toy.json"),
            "{msg}"
        );
    }

    #[test]
    fn model_without_manifest_says_what_is_missing() {
        let err = Manifest::for_model(Path::new("/nonexistent/brain.onnx")).expect_err("none");
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/brain.json"), "{msg}");
        assert!(msg.contains("normalisation"), "{msg}");
    }

    fn whole_volume(bytes_per_voxel: Option<f64>, spacing_mm: f64) -> Manifest {
        let mut m = Manifest::from_json(MINIMAL, Path::new("toy.json")).expect("valid");
        m.patch = PatchMode::WholeVolume;
        m.grid.spacing_mm = [spacing_mm; 3];
        m.tract_peak_bytes_per_voxel = bytes_per_voxel;
        m
    }

    #[test]
    fn tract_patches_whole_volume_models_unless_their_declared_memory_fits() {
        use crate::inference::BackendKind;
        // Undeclared: patches on tract, whole elsewhere.
        let mut m = whole_volume(None, 2.0);
        assert!(!m.clone().bound_memory_for(BackendKind::OnnxRuntime));
        assert!(m.bound_memory_for(BackendKind::Tract));
        assert!(
            matches!(m.patch, PatchMode::SlidingWindow { size, .. } if size == [TRACT_PATCH; 3])
        );
        // Declared: the field's voxel count times the bytes per voxel decides.
        let field_voxels_2mm = 251.0_f64.powi(3);
        let just_fits = TRACT_WHOLE_VOLUME_BUDGET_BYTES / field_voxels_2mm;
        let mut m = whole_volume(Some(just_fits * 0.99), 2.0);
        assert!(!m.bound_memory_for(BackendKind::Tract));
        assert_eq!(m.patch, PatchMode::WholeVolume);
        // The same model on a 1 mm grid has 8x the voxels.
        assert!(whole_volume(Some(just_fits * 0.99), 1.0).bound_memory_for(BackendKind::Tract));
        assert!(whole_volume(Some(just_fits * 1.01), 2.0).bound_memory_for(BackendKind::Tract));
        // A conformed grid (fixed dims) counts its own voxels, not the field's: 256³ at
        // 150 bytes a voxel is 2.5 GB, and runs whole.
        let mut conformed = whole_volume(Some(150.0), 1.0);
        conformed.grid.dims = Some([256; 3]);
        let bytes = conformed.tract_peak_bytes_for_field().expect("declared");
        assert!((bytes - 150.0 * 256f64.powi(3)).abs() < 1.0, "{bytes}");
        assert!(!conformed.bound_memory_for(BackendKind::Tract));
        assert_eq!(conformed.patch, PatchMode::WholeVolume);
    }

    #[test]
    fn declared_memory_must_be_positive() {
        let text = MINIMAL.replace(
            r#""licence": "MIT""#,
            r#""tract_peak_bytes_per_voxel": -1, "licence": "MIT""#,
        );
        let err = Manifest::from_json(&text, Path::new("toy.json")).expect_err("negative");
        assert!(
            err.to_string().contains("tract_peak_bytes_per_voxel"),
            "{err}"
        );
    }

    #[test]
    fn orientation_codes_map_to_lps_axes() {
        let lia = orientation_axes("LIA").expect("valid");
        assert_eq!(lia, [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]]);
        assert!(orientation_axes("LLA").is_err());
        assert!(orientation_axes("LX").is_err());
    }
}
