//! Segmentation with an ONNX model described by its manifest.
//!
//! input volume → model grid (manifest spacing, orientation, dims; trilinear) → intensity
//! normalisation → optional foreground crop → whole volume or Gaussian-blended sliding
//! window (optional flip test-time augmentation) → per-class probabilities → label,
//! max probability and normalised entropy → back onto the input grid (nearest for labels).
//!
//! Probabilities are accumulated only for a band of slices one patch deep along the tensor's
//! outer axis and turned into labels as soon as no later patch can touch them, so memory stays
//! bounded by `classes × patch depth × slice` rather than `classes × volume`.

use crate::inference::manifest::CropSpec;
use crate::inference::sliding_window::{gaussian_weights, patch_starts};
use crate::inference::{
    Backend, InferenceError, Manifest, Normalisation, OutputKind, PatchMode, Task, TensorAxes,
};
use crate::jobs::JobContext;
use crate::segmentation::components::largest_piece_where;
use crate::segmentation::Connectivity;
use crate::volume::{
    resample, resample_labels, Interpolation, LabelInfo, LabelMap, LabelTable, Rgba, Volume,
    VolumeGeometry,
};
use rayon::prelude::*;

/// Why a model segmentation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelSegmentationError {
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error("model {model}: is a {task:?} model, not a segmentation model")]
    NotSegmentation { model: String, task: Task },
    #[error("model {model}: cannot build its grid: {message}")]
    Grid { model: String, message: String },
    #[error("model {model}: the input has no voxel above the crop threshold")]
    EmptyCrop { model: String },
    #[error("cancelled")]
    Cancelled,
}

/// A model's answer on the input grid.
#[derive(Debug, Clone)]
pub struct ModelSegmentation {
    pub labels: LabelMap,
    /// Probability of the chosen label (0..1).
    pub max_probability: Volume<f32>,
    /// Entropy of the class probabilities divided by ln(classes): 0 certain, 1 uniform.
    pub entropy: Volume<f32>,
}

/// Segments `volume` with the model behind `backend`, as `manifest` describes it.
pub fn segment_with_model(
    volume: &Volume<f32>,
    manifest: &Manifest,
    backend: &mut dyn Backend,
    ctx: &JobContext,
) -> Result<ModelSegmentation, ModelSegmentationError> {
    if manifest.task != Task::Segmentation {
        return Err(ModelSegmentationError::NotSegmentation {
            model: manifest.name.clone(),
            task: manifest.task,
        });
    }
    let cancelled = || {
        ctx.check_cancelled()
            .map_err(|_| ModelSegmentationError::Cancelled)
    };

    ctx.set_stage("Resampling to the model grid");
    let grid = model_grid(volume.geometry(), manifest)?;
    let same_grid = grid.same_grid(volume.geometry(), 1e-6);
    let (fill, _) = volume.min_max();
    let mut on_grid = if same_grid {
        volume.clone()
    } else {
        resample(volume, &grid, None, Interpolation::Trilinear, fill)
    };
    ctx.sub(0.0, 0.1).set_progress(1.0);
    cancelled()?;

    ctx.set_stage("Normalising intensities");
    normalise(on_grid.data_mut(), &manifest.normalisation);
    let tensor_dims = tensor_dims(grid.dims, manifest.input.tensor_axes);
    let input = to_tensor_order(&on_grid, manifest.input.tensor_axes);
    drop(on_grid);
    let crop = crop_box(&input, tensor_dims, manifest.crop.as_ref()).ok_or_else(|| {
        ModelSegmentationError::EmptyCrop {
            model: manifest.name.clone(),
        }
    })?;
    ctx.sub(0.0, 0.15).set_progress(1.0);
    cancelled()?;

    ctx.set_stage("Running the model");
    let tensor_out = run_patches(
        &input,
        tensor_dims,
        crop,
        manifest,
        backend,
        &ctx.sub(0.15, 0.9),
    )?;
    drop(input);

    ctx.set_stage("Resampling to the input grid");
    let axes = manifest.input.tensor_axes;
    let mut labels_grid = Volume::new(
        grid.clone(),
        from_tensor_order(&tensor_out.labels, grid.dims, axes),
    )
    .map_err(|e| grid_error(manifest, e))?;
    if manifest.keep_largest_component {
        keep_largest_piece_per_label(&mut labels_grid, manifest);
    }
    let conf_grid = Volume::new(
        grid.clone(),
        from_tensor_order(&tensor_out.max_probability, grid.dims, axes),
    )
    .map_err(|e| grid_error(manifest, e))?;
    let ent_grid = Volume::new(
        grid.clone(),
        from_tensor_order(&tensor_out.entropy, grid.dims, axes),
    )
    .map_err(|e| grid_error(manifest, e))?;
    let target = volume.geometry();
    let (labels, max_probability, entropy) = if same_grid {
        (labels_grid, conf_grid, ent_grid)
    } else {
        (
            resample_labels(&labels_grid, target, None),
            resample(&conf_grid, target, None, Interpolation::Trilinear, 1.0),
            resample(&ent_grid, target, None, Interpolation::Trilinear, 0.0),
        )
    };
    ctx.set_progress(1.0);
    Ok(ModelSegmentation {
        labels: LabelMap::new(labels, label_table(manifest)),
        max_probability,
        entropy,
    })
}

/// Each label keeps only its largest 6-connected piece; its other pieces become background.
fn keep_largest_piece_per_label(labels: &mut Volume<u16>, manifest: &Manifest) {
    for label in &manifest.labels {
        let value = label.value;
        let keep = largest_piece_where(labels, |v| v == value, Connectivity::Six);
        labels
            .data_mut()
            .par_iter_mut()
            .zip(keep.data().par_iter())
            .for_each(|(v, &k)| {
                if *v == value && k == 0 {
                    *v = 0;
                }
            });
    }
}

fn grid_error(manifest: &Manifest, e: impl std::fmt::Display) -> ModelSegmentationError {
    ModelSegmentationError::Grid {
        model: manifest.name.clone(),
        message: e.to_string(),
    }
}

/// The label table the manifest declares.
pub fn label_table(manifest: &Manifest) -> LabelTable {
    let mut table = LabelTable::new();
    for l in &manifest.labels {
        let [r, g, b] = l.color;
        table.insert(LabelInfo::new(l.value, l.name.clone(), Rgba::rgb(r, g, b)));
    }
    table
}

/// The grid the model runs on (see `inference::manifest::model_grid`), errors naming the model.
pub fn model_grid(
    input: &VolumeGeometry,
    manifest: &Manifest,
) -> Result<VolumeGeometry, ModelSegmentationError> {
    crate::inference::manifest::model_grid(input, manifest).map_err(|m| grid_error(manifest, m))
}

/// Scales intensities in place as the manifest says.
pub fn normalise(data: &mut [f32], how: &Normalisation) {
    let finite_min_max = |d: &[f32]| {
        d.par_iter()
            .filter(|v| v.is_finite())
            .fold(
                || (f32::INFINITY, f32::NEG_INFINITY),
                |(lo, hi), &v| (lo.min(v), hi.max(v)),
            )
            .reduce(
                || (f32::INFINITY, f32::NEG_INFINITY),
                |a, b| (a.0.min(b.0), a.1.max(b.1)),
            )
    };
    let (offset, scale, clip) = match *how {
        Normalisation::None => return,
        Normalisation::MinMax => {
            let (lo, hi) = finite_min_max(data);
            (lo, if hi > lo { hi - lo } else { 1.0 }, None)
        }
        Normalisation::Percentile { low, high, clip } => {
            let (lo, hi) = percentiles(data, low, high);
            (
                lo,
                if hi > lo { hi - lo } else { 1.0 },
                clip.then_some((0.0, 1.0)),
            )
        }
        Normalisation::ZScore { min_value } => {
            let sel = |v: &&f32| v.is_finite() && min_value.is_none_or(|m| **v > m);
            let (n, sum, sum2) = data
                .par_iter()
                .filter(sel)
                .fold(
                    || (0usize, 0f64, 0f64),
                    |(n, s, s2), &v| (n + 1, s + v as f64, s2 + (v as f64).powi(2)),
                )
                .reduce(|| (0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
            let mean = if n > 0 { sum / n as f64 } else { 0.0 };
            let var = if n > 0 {
                (sum2 / n as f64 - mean * mean).max(0.0)
            } else {
                0.0
            };
            let sd = var.sqrt();
            (mean as f32, if sd > 0.0 { sd as f32 } else { 1.0 }, None)
        }
        Normalisation::CtWindow { min, max } => (
            min,
            if max > min { max - min } else { 1.0 },
            Some((0.0, 1.0)),
        ),
    };
    data.par_iter_mut().for_each(|v| {
        let mut x = (*v - offset) / scale;
        if !x.is_finite() {
            x = 0.0;
        }
        if let Some((a, b)) = clip {
            x = x.clamp(a, b);
        }
        *v = x;
    });
}

/// Two percentiles (0..100) with numpy's default linear interpolation.
fn percentiles(data: &[f32], low: f64, high: f64) -> (f32, f32) {
    let mut values: Vec<f32> = data.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let n = values.len();
    let mut at = |q: f64| -> f32 {
        let h = (n - 1) as f64 * q / 100.0;
        let i = h.floor() as usize;
        let frac = h - i as f64;
        let (_, a, rest) = values.select_nth_unstable_by(i, f32::total_cmp);
        let a = *a;
        let b = if frac > 0.0 && !rest.is_empty() {
            rest.iter().copied().fold(f32::INFINITY, f32::min)
        } else {
            a
        };
        (a as f64 + frac * (b as f64 - a as f64)) as f32
    };
    let lo = at(low);
    let hi = at(high);
    (lo, hi)
}

/// Tensor dims `[D, H, W]` of a grid with voxel dims `[i, j, k]`.
fn tensor_dims(dims: [usize; 3], axes: TensorAxes) -> [usize; 3] {
    match axes {
        TensorAxes::Ijk => dims,
        TensorAxes::Kji => [dims[2], dims[1], dims[0]],
    }
}

/// Volume (i fastest) → tensor order (W fastest).
fn to_tensor_order(v: &Volume<f32>, axes: TensorAxes) -> Vec<f32> {
    match axes {
        TensorAxes::Kji => v.data().to_vec(),
        TensorAxes::Ijk => {
            let [ni, nj, nk] = v.dims();
            let data = v.data();
            let mut out = vec![0f32; data.len()];
            out.par_chunks_mut(nj * nk)
                .enumerate()
                .for_each(|(i, plane)| {
                    for j in 0..nj {
                        for k in 0..nk {
                            plane[j * nk + k] = data[i + ni * (j + nj * k)];
                        }
                    }
                });
            out
        }
    }
}

/// Tensor order (W fastest) → volume order (i fastest).
fn from_tensor_order<T: Copy + Send + Sync + Default>(
    t: &[T],
    dims: [usize; 3],
    axes: TensorAxes,
) -> Vec<T> {
    match axes {
        TensorAxes::Kji => t.to_vec(),
        TensorAxes::Ijk => {
            let [ni, nj, nk] = dims;
            let mut out = vec![T::default(); t.len()];
            out.par_chunks_mut(ni * nj)
                .enumerate()
                .for_each(|(k, slice)| {
                    for j in 0..nj {
                        for i in 0..ni {
                            slice[i + ni * j] = t[(i * nj + j) * nk + k];
                        }
                    }
                });
            out
        }
    }
}

/// Half-open box `[lo, hi)` in tensor coordinates.
type Box3 = ([usize; 3], [usize; 3]);

/// Bounding box of voxels above the crop threshold, grown by the padding (whole grid when no
/// crop is asked for); `None` when nothing is above the threshold.
fn crop_box(t: &[f32], dims: [usize; 3], crop: Option<&CropSpec>) -> Option<Box3> {
    let Some(crop) = crop else {
        return Some(([0; 3], dims));
    };
    let max = t
        .par_iter()
        .copied()
        .filter(|v| v.is_finite())
        .reduce(|| f32::NEG_INFINITY, f32::max);
    // brainchop: a threshold in (0, 1] is relative to the maximum, otherwise "above zero".
    let threshold = if crop.threshold > 0.0 && crop.threshold <= 1.0 {
        crop.threshold * max
    } else {
        0.0
    };
    let [_, nh, nw] = dims;
    let plane = nh * nw;
    let found = t
        .par_chunks(plane)
        .enumerate()
        .filter_map(|(d, slice)| {
            let mut lo = [usize::MAX; 3];
            let mut hi = [0usize; 3];
            for (idx, &v) in slice.iter().enumerate() {
                if v > threshold {
                    let p = [d, idx / nw, idx % nw];
                    for a in 0..3 {
                        lo[a] = lo[a].min(p[a]);
                        hi[a] = hi[a].max(p[a]);
                    }
                }
            }
            (lo[0] != usize::MAX).then_some((lo, hi))
        })
        .reduce_with(|a, b| {
            (
                [0, 1, 2].map(|i| a.0[i].min(b.0[i])),
                [0, 1, 2].map(|i| a.1[i].max(b.1[i])),
            )
        })?;
    let lo = [0, 1, 2].map(|a| found.0[a].saturating_sub(crop.padding));
    let hi = [0, 1, 2].map(|a| (found.1[a] + crop.padding + 1).min(dims[a]));
    Some((lo, hi))
}

/// Model outputs over the whole tensor grid (outside the crop: background, certain).
struct TensorOutputs {
    labels: Vec<u16>,
    max_probability: Vec<f32>,
    entropy: Vec<f32>,
}

/// Runs every patch of the crop box and blends them; finalises slices band by band.
fn run_patches(
    input: &[f32],
    dims: [usize; 3],
    crop: Box3,
    manifest: &Manifest,
    backend: &mut dyn Backend,
    ctx: &JobContext,
) -> Result<TensorOutputs, ModelSegmentationError> {
    let (lo, hi) = crop;
    let extent = [0, 1, 2].map(|a| hi[a] - lo[a]);
    let (patch, overlap, weighted) = match &manifest.patch {
        PatchMode::WholeVolume => (extent, 0.0, false),
        PatchMode::SlidingWindow { size, overlap } => (*size, *overlap, true),
    };
    let starts = [0, 1, 2].map(|a| patch_starts(extent[a], patch[a], overlap));
    // A patch never reads past the crop box: short axes are padded with zeros instead.
    let patch_in = [0, 1, 2].map(|a| patch[a].min(extent[a]));
    let weights = if weighted {
        gaussian_weights(patch)
    } else {
        vec![1.0; patch.iter().product()]
    };
    let value_of_class = |c: usize| -> u16 {
        manifest
            .labels
            .iter()
            .find(|l| l.class == c)
            .map_or(c as u16, |l| l.value)
    };

    let n = dims.iter().product();
    let mut out = TensorOutputs {
        labels: vec![0; n],
        max_probability: vec![1.0; n],
        entropy: vec![0.0; n],
    };
    let flips: Vec<Option<usize>> = std::iter::once(None)
        .chain(manifest.test_time_flips.iter().map(|&a| Some(a)))
        .collect();
    let total_runs = starts.iter().map(Vec::len).product::<usize>() * flips.len();
    let mut runs_done = 0usize;

    // Accumulator band: `patch_in[0]` slices of the crop box, each K class planes + 1 weight plane.
    let band_depth = patch_in[0];
    let plane = extent[1] * extent[2];
    let mut classes = 0usize;
    let mut band: Vec<f32> = Vec::new();
    let mut band_start = 0usize; // crop-relative D of the band's first slice

    for (si, &sd) in starts[0].iter().enumerate() {
        // Slices before `sd` are complete: no later patch starts before it.
        if classes > 0 && sd > band_start {
            let done = sd - band_start;
            finalise_slices(
                &band,
                classes,
                plane,
                done,
                band_start,
                lo,
                extent,
                dims,
                &value_of_class,
                &mut out,
            );
            let slice_len = (classes + 1) * plane;
            band.copy_within(done * slice_len.., 0);
            let keep = (band_depth - done) * slice_len;
            band[keep..].fill(0.0);
        }
        band_start = sd;
        for &sh in &starts[1] {
            for &sw in &starts[2] {
                let offset = [sd, sh, sw];
                let patch_input = extract_patch(input, dims, lo, offset, patch_in, patch);
                let mut probs: Option<Vec<f32>> = None;
                for flip in &flips {
                    ctx.check_cancelled()
                        .map_err(|_| ModelSegmentationError::Cancelled)?;
                    let mut x = patch_input.clone();
                    if let Some(axis) = flip {
                        flip_axis(&mut x, 1, patch, *axis);
                    }
                    let tensor =
                        crate::inference::Tensor::new(vec![1, 1, patch[0], patch[1], patch[2]], x)?;
                    let y = backend.run(&tensor).map_err(|e| match e {
                        InferenceError::Cancelled { .. } => ModelSegmentationError::Cancelled,
                        other => other.into(),
                    })?;
                    let (k, mut p) = to_probabilities(y, patch, manifest)?;
                    if let Some(axis) = flip {
                        flip_axis(&mut p, k, patch, *axis);
                    }
                    if classes == 0 {
                        classes = k;
                        band = vec![0.0; band_depth * (k + 1) * plane];
                    } else if k != classes {
                        return Err(InferenceError::OutputShape {
                            model: manifest.name.clone(),
                            output: manifest.output.name.clone(),
                            actual: vec![k],
                            expected: format!("{classes} classes like the first patch"),
                        }
                        .into());
                    }
                    match &mut probs {
                        None => probs = Some(p),
                        Some(acc) => acc.iter_mut().zip(&p).for_each(|(a, b)| *a += b),
                    }
                    runs_done += 1;
                    ctx.set_steps(runs_done, total_runs);
                }
                if let Some(p) = probs {
                    let scale = 1.0 / flips.len() as f32;
                    accumulate(
                        &mut band,
                        classes,
                        &p,
                        &weights,
                        patch,
                        patch_in,
                        [sh, sw],
                        extent,
                        scale,
                    );
                }
            }
        }
        let _ = si;
    }
    if classes > 0 {
        let remaining = extent[0] - band_start;
        finalise_slices(
            &band,
            classes,
            plane,
            remaining,
            band_start,
            lo,
            extent,
            dims,
            &value_of_class,
            &mut out,
        );
    }
    Ok(out)
}

/// Copies a `patch_in` box at crop-relative `offset` into a zero-padded `patch` tensor.
fn extract_patch(
    input: &[f32],
    dims: [usize; 3],
    lo: [usize; 3],
    offset: [usize; 3],
    patch_in: [usize; 3],
    patch: [usize; 3],
) -> Vec<f32> {
    let mut out = vec![0f32; patch.iter().product()];
    for d in 0..patch_in[0] {
        for h in 0..patch_in[1] {
            let src = ((lo[0] + offset[0] + d) * dims[1] + lo[1] + offset[1] + h) * dims[2]
                + lo[2]
                + offset[2];
            let dst = (d * patch[1] + h) * patch[2];
            out[dst..dst + patch_in[2]].copy_from_slice(&input[src..src + patch_in[2]]);
        }
    }
    out
}

/// Reverses spatial axis `axis` (0 = D) of a `[channels, D, H, W]` buffer in place.
fn flip_axis(x: &mut [f32], channels: usize, size: [usize; 3], axis: usize) {
    let [nd, nh, nw] = size;
    let vol = nd * nh * nw;
    for c in 0..channels {
        let v = &mut x[c * vol..(c + 1) * vol];
        match axis {
            0 => {
                for d in 0..nd / 2 {
                    for r in 0..nh * nw {
                        v.swap(d * nh * nw + r, (nd - 1 - d) * nh * nw + r);
                    }
                }
            }
            1 => {
                for d in 0..nd {
                    for h in 0..nh / 2 {
                        for w in 0..nw {
                            v.swap((d * nh + h) * nw + w, (d * nh + nh - 1 - h) * nw + w);
                        }
                    }
                }
            }
            _ => v.chunks_mut(nw).for_each(|row| row.reverse()),
        }
    }
}

/// The model output as `[K, D, H, W]` probabilities.
fn to_probabilities(
    y: crate::inference::Tensor,
    patch: [usize; 3],
    manifest: &Manifest,
) -> Result<(usize, Vec<f32>), ModelSegmentationError> {
    let vol: usize = patch.iter().product();
    let bad_shape = |expected: String, shape: &[usize]| -> ModelSegmentationError {
        InferenceError::OutputShape {
            model: manifest.name.clone(),
            output: manifest.output.name.clone(),
            actual: shape.to_vec(),
            expected,
        }
        .into()
    };
    let spatial_ok = |s: &[usize]| s.len() >= 3 && s[s.len() - 3..] == patch;
    match manifest.output.kind {
        OutputKind::Logits | OutputKind::Probabilities => {
            let s = &y.shape;
            if s.len() != 5 || s[0] != 1 || !spatial_ok(s) {
                return Err(bad_shape(
                    format!("[1, K, {}, {}, {}]", patch[0], patch[1], patch[2]),
                    s,
                ));
            }
            let k = s[1];
            let mut p = y.data;
            if manifest.output.kind == OutputKind::Logits {
                softmax_channels(&mut p, k, vol);
            }
            Ok((k, p))
        }
        OutputKind::Labels => {
            let s = &y.shape;
            let ok = spatial_ok(s) && s[..s.len() - 3].iter().all(|&d| d == 1);
            if !ok {
                return Err(bad_shape(
                    format!("[1, {}, {}, {}]", patch[0], patch[1], patch[2]),
                    s,
                ));
            }
            let k = manifest.class_count();
            let mut p = vec![0f32; k * vol];
            for (i, &c) in y.data.iter().enumerate() {
                let c = (c.max(0.0) as usize).min(k - 1);
                p[c * vol + i] = 1.0;
            }
            Ok((k, p))
        }
        OutputKind::Displacement => Err(ModelSegmentationError::NotSegmentation {
            model: manifest.name.clone(),
            task: Task::Registration,
        }),
    }
}

fn softmax_channels(p: &mut [f32], k: usize, vol: usize) {
    let (chunks, _) = p.split_at_mut(k * vol);
    // Per voxel across channel planes; done plane-wise to stay cache friendly.
    let mut max = vec![f32::NEG_INFINITY; vol];
    for c in 0..k {
        for (m, &v) in max.iter_mut().zip(&chunks[c * vol..(c + 1) * vol]) {
            *m = m.max(v);
        }
    }
    let mut sum = vec![0f32; vol];
    for c in 0..k {
        let plane = &mut chunks[c * vol..(c + 1) * vol];
        for ((v, m), s) in plane.iter_mut().zip(&max).zip(sum.iter_mut()) {
            *v = (*v - m).exp();
            *s += *v;
        }
    }
    for c in 0..k {
        for (v, s) in chunks[c * vol..(c + 1) * vol].iter_mut().zip(&sum) {
            *v /= s;
        }
    }
}

/// Adds one patch's probabilities, weighted, into the band (patch D 0 = band slice 0).
#[allow(clippy::too_many_arguments)]
fn accumulate(
    band: &mut [f32],
    k: usize,
    probs: &[f32],
    weights: &[f32],
    patch: [usize; 3],
    patch_in: [usize; 3],
    offset_hw: [usize; 2],
    extent: [usize; 3],
    scale: f32,
) {
    let vol: usize = patch.iter().product();
    let plane = extent[1] * extent[2];
    let slice_len = (k + 1) * plane;
    band.par_chunks_mut(slice_len)
        .take(patch_in[0])
        .enumerate()
        .for_each(|(d, slice)| {
            for h in 0..patch_in[1] {
                for w in 0..patch_in[2] {
                    let pi = (d * patch[1] + h) * patch[2] + w;
                    let bi = (offset_hw[0] + h) * extent[2] + offset_hw[1] + w;
                    let wt = weights[pi];
                    for c in 0..k {
                        slice[c * plane + bi] += wt * scale * probs[c * vol + pi];
                    }
                    slice[k * plane + bi] += wt;
                }
            }
        });
}

/// Turns the first `count` band slices into labels and confidences in the full tensor grid.
#[allow(clippy::too_many_arguments)]
fn finalise_slices(
    band: &[f32],
    k: usize,
    plane: usize,
    count: usize,
    band_start: usize,
    lo: [usize; 3],
    extent: [usize; 3],
    dims: [usize; 3],
    value_of_class: &(dyn Fn(usize) -> u16 + Sync),
    out: &mut TensorOutputs,
) {
    let slice_len = (k + 1) * plane;
    let ln_k = (k as f32).ln().max(f32::MIN_POSITIVE);
    for d in 0..count {
        let slice = &band[d * slice_len..(d + 1) * slice_len];
        let gd = lo[0] + band_start + d;
        for h in 0..extent[1] {
            for w in 0..extent[2] {
                let bi = h * extent[2] + w;
                let wsum = slice[k * plane + bi];
                let gi = (gd * dims[1] + lo[1] + h) * dims[2] + lo[2] + w;
                if wsum <= 0.0 {
                    continue;
                }
                let (mut best, mut best_p, mut ent) = (0usize, f32::NEG_INFINITY, 0f32);
                for c in 0..k {
                    let p = slice[c * plane + bi] / wsum;
                    if p > best_p {
                        best = c;
                        best_p = p;
                    }
                    if p > 0.0 {
                        ent -= p * p.ln();
                    }
                }
                out.labels[gi] = value_of_class(best);
                out.max_probability[gi] = best_p;
                out.entropy[gi] = (ent / ln_k).clamp(0.0, 1.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::manifest::{GridSpec, InputSpec, ModelLabel, OutputSpec};
    use crate::inference::Tensor;
    use crate::jobs::{CancelToken, Progress};
    use nalgebra::{Matrix3, Vector3};
    use std::path::PathBuf;

    /// Scores "bright" (class 1) against "dark" (class 0) voxel by voxel: a model with a known answer.
    struct ThresholdModel {
        runs: usize,
        shapes: Vec<Vec<usize>>,
    }

    impl Backend for ThresholdModel {
        fn run(&mut self, input: &Tensor) -> Result<Tensor, InferenceError> {
            self.runs += 1;
            self.shapes.push(input.shape.clone());
            let vol: usize = input.shape[2..].iter().product();
            let mut data = vec![0f32; 2 * vol];
            for (i, &x) in input.data.iter().enumerate() {
                data[vol + i] = 8.0 * (x - 0.5);
            }
            let mut shape = input.shape.clone();
            shape[1] = 2;
            Tensor::new(shape, data)
        }
        fn model_name(&self) -> &str {
            "threshold"
        }
    }

    fn manifest(patch: PatchMode, grid: GridSpec, flips: Vec<usize>) -> Manifest {
        Manifest {
            name: "threshold".into(),
            task: Task::Segmentation,
            modality: vec!["CT".into()],
            model_file: PathBuf::from("none.onnx"),
            input: InputSpec {
                name: "input".into(),
                channels: 1,
                tensor_axes: TensorAxes::Ijk,
            },
            output: OutputSpec {
                name: "logits".into(),
                kind: OutputKind::Logits,
            },
            grid,
            normalisation: Normalisation::MinMax,
            crop: None,
            patch,
            test_time_flips: flips,
            labels: vec![ModelLabel {
                class: 1,
                value: 7,
                name: "Bright".into(),
                color: [255, 0, 0],
            }],
            licence: "test".into(),
            provenance: "test".into(),
            tract_peak_bytes_per_voxel: None,
            keep_largest_component: false,
            base_dir: PathBuf::new(),
        }
    }

    /// A bright ellipsoid off-centre in a dark box, on a grid with the given spacing and direction.
    fn phantom(dims: [usize; 3], spacing: [f64; 3], direction: Matrix3<f64>) -> Volume<f32> {
        let g = VolumeGeometry::new(dims, spacing, [3.0, -5.0, 11.0], direction).expect("valid");
        let centre = g.world_from_voxel_point([0, 1, 2].map(|a| dims[a] as f64 * 0.45));
        Volume::from_fn(g.clone(), |[i, j, k]| {
            let p = g.world_from_voxel_point([i as f64, j as f64, k as f64]);
            let d = p - centre;
            let r2 = (d.x / 9.0).powi(2) + (d.y / 7.0).powi(2) + (d.z / 6.0).powi(2);
            if r2 < 1.0 {
                1000.0
            } else {
                -200.0
            }
        })
    }

    fn same_grid_spec(v: &Volume<f32>) -> GridSpec {
        GridSpec {
            spacing_mm: v.geometry().spacing_mm,
            orientation: v.geometry().orientation_code(),
            dims: Some(v.dims()),
        }
    }

    #[test]
    fn sliding_window_on_the_native_grid_recovers_the_phantom_exactly() {
        let v = phantom([30, 26, 22], [1.0; 3], Matrix3::identity());
        let m = manifest(
            PatchMode::SlidingWindow {
                size: [16, 12, 16],
                overlap: 0.5,
            },
            same_grid_spec(&v),
            vec![],
        );
        let mut model = ThresholdModel {
            runs: 0,
            shapes: vec![],
        };
        let out = segment_with_model(&v, &m, &mut model, &JobContext::detached()).expect("runs");
        assert!(model.runs > 4, "several patches: {}", model.runs);
        assert!(model.shapes.iter().all(|s| s == &vec![1, 1, 16, 12, 16]));
        let expected: Vec<u16> = v
            .data()
            .iter()
            .map(|&x| if x > 0.0 { 7 } else { 0 })
            .collect();
        assert_eq!(out.labels.volume.data(), expected.as_slice());
        assert!(out.labels.volume.geometry().same_grid(v.geometry(), 1e-9));
        assert_eq!(
            out.labels.table.get(7).map(|l| l.name.as_str()),
            Some("Bright")
        );
        // Normalised values are 0 and 1 → logits ∓4 → p = sigmoid(4) everywhere.
        let p = 1.0 / (1.0 + (-4.0f32).exp());
        assert!(out
            .max_probability
            .data()
            .iter()
            .all(|&x| (x - p).abs() < 1e-5));
        let h = -(p * p.ln() + (1.0 - p) * (1.0 - p).ln()) / 2f32.ln();
        assert!(out.entropy.data().iter().all(|&x| (x - h).abs() < 1e-4));
    }

    #[test]
    fn keep_largest_component_drops_the_smaller_pieces() {
        // The phantom's ellipsoid plus a separate bright 3×3×3 cube in a corner.
        let mut v = phantom([30, 26, 22], [1.0; 3], Matrix3::identity());
        for k in 1..4 {
            for j in 1..4 {
                for i in 1..4 {
                    v.set(i, j, k, 1000.0);
                }
            }
        }
        let mut m = manifest(PatchMode::WholeVolume, same_grid_spec(&v), vec![]);
        let model = || ThresholdModel {
            runs: 0,
            shapes: vec![],
        };
        let ctx = JobContext::detached();
        let all = segment_with_model(&v, &m, &mut model(), &ctx).expect("runs");
        m.keep_largest_component = true;
        let largest = segment_with_model(&v, &m, &mut model(), &ctx).expect("runs");
        let count =
            |s: &ModelSegmentation| s.labels.volume.data().iter().filter(|&&x| x == 7).count();
        assert_eq!(
            count(&all),
            count(&largest) + 27,
            "only the cube is dropped"
        );
        assert_eq!(all.labels.volume.at(2, 2, 2), 7);
        assert_eq!(largest.labels.volume.at(2, 2, 2), 0);
        let centre = [0, 1, 2].map(|a| (v.dims()[a] as f64 * 0.45) as usize);
        assert_eq!(largest.labels.volume.at(centre[0], centre[1], centre[2]), 7);
    }

    #[test]
    fn whole_volume_and_flip_tta_agree_with_sliding_window() {
        let v = phantom([20, 18, 17], [1.0; 3], Matrix3::identity());
        let whole = manifest(PatchMode::WholeVolume, same_grid_spec(&v), vec![0, 2]);
        let mut model = ThresholdModel {
            runs: 0,
            shapes: vec![],
        };
        let a = segment_with_model(&v, &whole, &mut model, &JobContext::detached()).expect("runs");
        assert_eq!(model.runs, 3, "identity plus two flips");
        let sliding = manifest(
            PatchMode::SlidingWindow {
                size: [8, 8, 8],
                overlap: 0.25,
            },
            same_grid_spec(&v),
            vec![],
        );
        let b = segment_with_model(
            &v,
            &sliding,
            &mut ThresholdModel {
                runs: 0,
                shapes: vec![],
            },
            &JobContext::detached(),
        )
        .expect("runs");
        assert_eq!(a.labels.volume.data(), b.labels.volume.data());
    }

    #[test]
    fn resamples_to_an_oblique_model_grid_and_back() {
        // Input: 2 mm RAS-ish; model: 1 mm LIA covering the input.
        let flip = Matrix3::from_diagonal(&Vector3::new(-1.0, -1.0, 1.0));
        let v = phantom([16, 14, 12], [2.0, 2.0, 2.0], flip);
        let grid = GridSpec {
            spacing_mm: [1.0; 3],
            orientation: "LIA".into(),
            dims: None,
        };
        let m = manifest(
            PatchMode::SlidingWindow {
                size: [24, 24, 24],
                overlap: 0.5,
            },
            grid,
            vec![],
        );
        let mg = model_grid(v.geometry(), &m).expect("grid");
        assert_eq!(mg.orientation_code(), "LIA");
        assert!((mg.center_world() - v.geometry().center_world()).norm() < 1e-9);
        let out = segment_with_model(
            &v,
            &m,
            &mut ThresholdModel {
                runs: 0,
                shapes: vec![],
            },
            &JobContext::detached(),
        )
        .expect("runs");
        assert!(out.labels.volume.geometry().same_grid(v.geometry(), 1e-9));
        let truth: Vec<bool> = v.data().iter().map(|&x| x > 0.0).collect();
        let got: Vec<bool> = out.labels.volume.data().iter().map(|&l| l == 7).collect();
        let both = truth.iter().zip(&got).filter(|(a, b)| **a && **b).count();
        let dice = 2.0 * both as f64
            / (truth.iter().filter(|x| **x).count() + got.iter().filter(|x| **x).count()) as f64;
        assert!(dice > 0.97, "dice {dice}");
    }

    #[test]
    fn cancel_stops_before_the_next_patch() {
        let v = phantom([20, 18, 17], [1.0; 3], Matrix3::identity());
        let m = manifest(
            PatchMode::SlidingWindow {
                size: [8, 8, 8],
                overlap: 0.5,
            },
            same_grid_spec(&v),
            vec![],
        );
        let token = CancelToken::new();
        token.cancel();
        let ctx = JobContext::new(Progress::new(), token);
        let mut model = ThresholdModel {
            runs: 0,
            shapes: vec![],
        };
        let err = segment_with_model(&v, &m, &mut model, &ctx).expect_err("cancelled");
        assert!(matches!(err, ModelSegmentationError::Cancelled));
        assert_eq!(model.runs, 0);
    }

    #[test]
    fn percentiles_follow_numpy_linear_rule() {
        let data: Vec<f32> = (0..=100).rev().map(|x| x as f32).collect();
        assert_eq!(percentiles(&data, 5.0, 95.0), (5.0, 95.0));
        let (lo, hi) = percentiles(&[4.0, 1.0, 3.0, 2.0], 5.0, 50.0);
        assert!(
            (lo - 1.15).abs() < 1e-6 && (hi - 2.5).abs() < 1e-6,
            "{lo} {hi}"
        );
    }

    #[test]
    fn crop_box_grows_by_padding_and_clamps() {
        let dims = [10, 10, 10];
        let mut t = vec![0f32; 1000];
        t[(5 * 10 + 4) * 10 + 3] = 1.0;
        t[(6 * 10 + 4) * 10 + 8] = 0.4;
        let spec = CropSpec {
            threshold: 0.5,
            padding: 2,
        };
        assert_eq!(
            crop_box(&t, dims, Some(&spec)),
            Some(([3, 2, 1], [8, 7, 6]))
        );
        let spec0 = CropSpec {
            threshold: 0.0,
            padding: 9,
        };
        assert_eq!(
            crop_box(&t, dims, Some(&spec0)),
            Some(([0, 0, 0], [10, 10, 10]))
        );
        assert_eq!(crop_box(&[0.0; 1000], dims, Some(&spec)), None);
    }

    #[test]
    fn tensor_order_round_trips() {
        let g = VolumeGeometry::axis_aligned([3, 4, 5], [1.0; 3], [0.0; 3]).expect("valid");
        let v = Volume::from_fn(g, |[i, j, k]| (i * 100 + j * 10 + k) as f32);
        let t = to_tensor_order(&v, TensorAxes::Ijk);
        assert_eq!(t[1], 1.0, "W (= k) fastest");
        assert_eq!(t[5], 10.0);
        assert_eq!(from_tensor_order(&t, [3, 4, 5], TensorAxes::Ijk), v.data());
    }
}
