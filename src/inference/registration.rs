//! Registration models: (fixed, moving) → a dense displacement field, through the same
//! manifest and backends as segmentation models (`task: registration`, output kind
//! `displacement_field`).
//!
//! Both images are resampled (trilinear, by world position) onto the model grid, the
//! manifest's spacing and orientation centred on the fixed image, normalised each on its own,
//! and stacked as channels `[1, 2, D, H, W]` (fixed first). The model answers
//! `[1, 3, D, H, W]`: the moving point for the fixed point `x` is `x + u(x)`, with `u` in
//! model-grid voxels along `D, H, W` (`output.units: "voxels"`, VoxelMorph's convention) or in
//! LPS millimetres (`"mm"`). The result is always LPS millimetres on the model grid.

use super::manifest::{model_grid, OutputKind, Task, TensorAxes};
use super::{Backend, InferenceError, Manifest, ManifestError, Normalisation, Tensor};
use crate::volume::{Interpolation, Volume, VolumeGeometry};
use nalgebra::{Matrix3, Vector3};
use rayon::prelude::*;
use std::path::Path;

/// What the model's displacement channels are measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplacementUnits {
    /// Model-grid voxels along the tensor axes `D, H, W`.
    #[default]
    Voxels,
    /// LPS millimetres, components `x, y, z`.
    Mm,
}

/// A registration model's manifest plus the field units (an extra `output.units` key that
/// segmentation manifests do not have).
#[derive(Debug, Clone)]
pub struct RegistrationModel {
    pub manifest: Manifest,
    pub units: DisplacementUnits,
}

#[derive(serde::Deserialize)]
struct UnitsOnly {
    output: OutputUnits,
}

#[derive(serde::Deserialize)]
struct OutputUnits {
    #[serde(default)]
    units: DisplacementUnits,
}

impl RegistrationModel {
    /// Reads the manifest beside `model` and checks it describes a registration model.
    pub fn for_model(model: &Path) -> Result<Self, ManifestError> {
        let manifest = Manifest::for_model(model)?;
        let manifest_path = model.with_extension("json");
        let invalid = |message: String| ManifestError::Invalid {
            path: manifest_path.clone(),
            message,
        };
        if manifest.task != Task::Registration {
            return Err(invalid(format!(
                "task is {:?}, a registration model needs \"registration\"",
                manifest.task
            )));
        }
        if manifest.output.kind != OutputKind::Displacement {
            return Err(invalid(format!(
                "output.kind is {:?}, a registration model needs \"displacement_field\"",
                manifest.output.kind
            )));
        }
        let text =
            std::fs::read_to_string(&manifest_path).map_err(|source| ManifestError::Read {
                path: manifest_path.clone(),
                source,
            })?;
        let units = serde_json::from_str::<UnitsOnly>(&text)
            .map_err(|e| invalid(e.to_string()))?
            .output
            .units;
        Ok(Self { manifest, units })
    }
}

/// A displacement field in LPS millimetres on a grid: moving point = `x + u(x)`.
#[derive(Debug, Clone)]
pub struct DisplacementField {
    pub geometry: VolumeGeometry,
    /// One vector per voxel, `i` fastest.
    pub vectors_mm: Vec<Vector3<f32>>,
}

/// Intensity scaling as the manifest says. Percentiles use the nearest rank: close enough
/// for a registration model's input, whose exact scaling the displacement barely depends on.
fn normalise(data: &mut [f32], how: &Normalisation) {
    let finite = || data.iter().copied().filter(|v| v.is_finite());
    let (offset, scale, clip) = match *how {
        Normalisation::None => return,
        Normalisation::MinMax => {
            let lo = finite().fold(f32::INFINITY, f32::min);
            let hi = finite().fold(f32::NEG_INFINITY, f32::max);
            (lo, hi - lo, false)
        }
        Normalisation::Percentile { low, high, clip } => {
            let mut v: Vec<f32> = finite().collect();
            v.sort_by(f32::total_cmp);
            let at = |q: f64| {
                v.get(((v.len().max(1) - 1) as f64 * q / 100.0).round() as usize)
                    .copied()
                    .unwrap_or(0.0)
            };
            let (lo, hi) = (at(low), at(high));
            (lo, hi - lo, clip)
        }
        Normalisation::ZScore { min_value } => {
            let sel: Vec<f64> = finite()
                .filter(|v| min_value.is_none_or(|m| *v > m))
                .map(f64::from)
                .collect();
            let n = sel.len().max(1) as f64;
            let mean = sel.iter().sum::<f64>() / n;
            let var = sel.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            (mean as f32, var.sqrt() as f32, false)
        }
        Normalisation::CtWindow { min, max } => (min, max - min, true),
    };
    let scale = if scale > 0.0 { scale } else { 1.0 };
    data.par_iter_mut().for_each(|v| {
        let x = (*v - offset) / scale;
        let x = if x.is_finite() { x } else { 0.0 };
        *v = if clip { x.clamp(0.0, 1.0) } else { x };
    });
}

/// Index into a `[D, H, W]` tensor (W fastest) of voxel `(i, j, k)`.
#[inline]
fn tensor_index(ijk: [usize; 3], dims: [usize; 3], axes: TensorAxes) -> usize {
    let [i, j, k] = ijk;
    let [ni, nj, nk] = dims;
    match axes {
        TensorAxes::Ijk => (i * nj + j) * nk + k,
        TensorAxes::Kji => (k * nj + j) * ni + i,
    }
}

/// Runs a registration model on `fixed` and `moving` (each resampled onto the model grid
/// by world position) and returns its displacement field in LPS mm.
pub fn predict_displacement(
    backend: &mut dyn Backend,
    model: &RegistrationModel,
    fixed: &Volume<f32>,
    moving: &Volume<f32>,
) -> Result<DisplacementField, InferenceError> {
    let manifest = &model.manifest;
    let grid = model_grid(fixed.geometry(), manifest).map_err(|message| {
        InferenceError::Manifest(ManifestError::Invalid {
            path: manifest.model_path().with_extension("json"),
            message,
        })
    })?;
    let axes = manifest.input.tensor_axes;
    let dims = grid.dims;
    let n = grid.voxel_count();
    let mut input = vec![0f32; 2 * n];
    for (c, image) in [fixed, moving].into_iter().enumerate() {
        let mut on_grid =
            crate::volume::resample(image, &grid, None, Interpolation::Trilinear, 0.0)
                .into_parts()
                .1;
        normalise(&mut on_grid, &manifest.normalisation);
        let channel = &mut input[c * n..(c + 1) * n];
        for (v, value) in on_grid.iter().enumerate() {
            let ijk = [
                v % dims[0],
                (v / dims[0]) % dims[1],
                v / (dims[0] * dims[1]),
            ];
            channel[tensor_index(ijk, dims, axes)] = *value;
        }
    }
    let spatial = match axes {
        TensorAxes::Ijk => dims,
        TensorAxes::Kji => [dims[2], dims[1], dims[0]],
    };
    let tensor = Tensor::new(vec![1, 2, spatial[0], spatial[1], spatial[2]], input)?;
    let output = backend.run(&tensor)?;
    let expected = vec![1, 3, spatial[0], spatial[1], spatial[2]];
    if output.shape != expected {
        return Err(InferenceError::OutputShape {
            model: backend.model_name().to_string(),
            output: manifest.output.name.clone(),
            actual: output.shape,
            expected: format!("{expected:?} (3 displacement channels on the input grid)"),
        });
    }
    // Voxel units: channel c moves along tensor axis c, i.e. along one voxel axis of the grid.
    let tensor_to_voxel_axis = match axes {
        TensorAxes::Ijk => [0, 1, 2],
        TensorAxes::Kji => [2, 1, 0],
    };
    let world_from_voxel_step: Matrix3<f64> =
        grid.direction * Matrix3::from_diagonal(&Vector3::from(grid.spacing_mm));
    let vectors_mm = (0..n)
        .into_par_iter()
        .map(|v| {
            let ijk = [
                v % dims[0],
                (v / dims[0]) % dims[1],
                v / (dims[0] * dims[1]),
            ];
            let t = tensor_index(ijk, dims, axes);
            let u = [0, 1, 2].map(|c| output.data[c * n + t] as f64);
            let mm = match model.units {
                DisplacementUnits::Mm => Vector3::from(u),
                DisplacementUnits::Voxels => {
                    let mut step = Vector3::zeros();
                    for (c, value) in u.iter().enumerate() {
                        step[tensor_to_voxel_axis[c]] = *value;
                    }
                    world_from_voxel_step * step
                }
            };
            mm.cast::<f32>()
        })
        .collect();
    Ok(DisplacementField {
        geometry: grid,
        vectors_mm,
    })
}
