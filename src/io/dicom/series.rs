//! Grouping frames into series rows and laying each out as a volume.
//!
//! One SeriesInstanceUID may hold several things a radiologist would not stack together:
//! localizers, stray images with another orientation or size. Those become separate rows
//! (`part` > 0) and the main row says so in its warnings.

use std::collections::BTreeMap;

use nalgebra::{Matrix3, Vector3};

use super::geometry::{describe_orientation, normal_position, plan_stack, slice_normal};
use super::geometry::{SliceSource, StackLayout};
use super::header::DicomFrame;
use super::syntax::transfer_syntax_name;
use super::SeriesInfo;
use crate::volume::Modality;

/// Groups frames by series UID, splits each UID into homogeneous parts, lays them out.
pub(crate) fn build_series(frames: Vec<DicomFrame>) -> Vec<SeriesInfo> {
    let mut by_uid: BTreeMap<String, Vec<DicomFrame>> = BTreeMap::new();
    for f in frames {
        by_uid.entry(f.series_uid.clone()).or_default().push(f);
    }
    let mut out = Vec::new();
    for (_, frames) in by_uid {
        out.extend(split_uid(frames));
    }
    out.sort_by(|a, b| {
        (a.number.unwrap_or(i32::MAX), &a.uid, a.part).cmp(&(
            b.number.unwrap_or(i32::MAX),
            &b.uid,
            b.part,
        ))
    });
    out
}

/// Frames with the same size, pixel format, orientation and localizer flag stack together.
fn split_uid(frames: Vec<DicomFrame>) -> Vec<SeriesInfo> {
    let mut groups: Vec<Vec<DicomFrame>> = Vec::new();
    for f in frames {
        match groups.iter_mut().find(|g| same_stack(&g[0], &f)) {
            Some(g) => g.push(f),
            None => groups.push(vec![f]),
        }
    }
    // Main part first: not a localizer, most images.
    groups.sort_by_key(|g| (g[0].is_localizer(), std::cmp::Reverse(g.len())));
    let total_groups = groups.len();
    let mut rows: Vec<SeriesInfo> = groups
        .into_iter()
        .enumerate()
        .map(|(part, g)| assemble(g, part))
        .collect();
    if total_groups > 1 {
        let notes: Vec<String> = rows[1..]
            .iter()
            .map(|r| {
                format!(
                    "{} {} image(s) ({}×{}, {})",
                    r.slice_count,
                    if r.is_localizer { "localizer" } else { "stray" },
                    r.dims[0],
                    r.dims[1],
                    r.orientation
                )
            })
            .collect();
        rows[0].warnings.push(format!(
            "images that do not stack with this series were split off into separate rows: {}",
            notes.join("; ")
        ));
        for r in rows.iter_mut().skip(1) {
            r.warnings
                .push("split off from the main series of the same UID".to_string());
        }
    }
    rows
}

fn same_stack(a: &DicomFrame, b: &DicomFrame) -> bool {
    let same_orientation = match (&a.orientation, &b.orientation) {
        (Some(x), Some(y)) => x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-3),
        (None, None) => true,
        _ => false,
    };
    a.rows == b.rows
        && a.cols == b.cols
        && a.samples_per_pixel == b.samples_per_pixel
        && a.is_localizer() == b.is_localizer()
        && a.mosaic == b.mosaic
        && same_orientation
}

/// Secondary order for frames at the same position: time/echo first, then acquisition order.
fn secondary_key(f: &DicomFrame) -> (i32, i32, i32, u32) {
    (
        f.temporal_index.unwrap_or(0),
        f.acquisition_number.unwrap_or(0),
        f.instance_number.unwrap_or(0),
        f.frame,
    )
}

fn assemble(mut frames: Vec<DicomFrame>, part: usize) -> SeriesInfo {
    let first = frames[0].clone();
    let image_count = frames.len();
    let mut warnings = Vec::new();
    let mut problem = None;

    let mut syntaxes: Vec<String> = frames
        .iter()
        .map(|f| transfer_syntax_name(&f.transfer_syntax_uid))
        .collect();
    syntaxes.sort();
    syntaxes.dedup();
    if let Some(f) = frames.iter().find(|f| f.undecodable.is_some()) {
        let reason = f.undecodable.clone().unwrap_or_default();
        problem = Some(Problem::Syntax {
            uid: f.transfer_syntax_uid.clone(),
            reason: reason.clone(),
        });
        warnings.push(format!(
            "cannot be loaded: {} ({reason})",
            transfer_syntax_name(&f.transfer_syntax_uid)
        ));
    }
    if first.mosaic {
        let reason = "Siemens mosaic (many slices tiled in one image): un-mosaicing is not implemented, refused rather than loaded as a wrong volume".to_string();
        warnings.push(reason.clone());
        problem.get_or_insert(Problem::Image(reason));
    }
    if first.samples_per_pixel > 1 {
        warnings.push(format!(
            "colour image ({}, {} samples per pixel): converted to grey luminance",
            first.photometric, first.samples_per_pixel
        ));
    }
    if first.photometric.eq_ignore_ascii_case("MONOCHROME1") {
        if first.modality.eq_ignore_ascii_case("CT") {
            warnings.push(
                "MONOCHROME1 CT: values kept as stored HU (display with high = bright)".to_string(),
            );
        } else {
            warnings.push(
                "MONOCHROME1: stored values inverted so that high = bright, as for MONOCHROME2"
                    .to_string(),
            );
        }
    }
    let pixel_spacing = match first.pixel_spacing {
        Some(s) => s,
        None => {
            warnings.push("no PixelSpacing: 1 mm assumed in-plane".to_string());
            [1.0, 1.0]
        }
    };
    let rows = first.rows as usize;
    let cols = first.cols as usize;
    let fallback_step = first
        .spacing_between_slices
        .or(first.slice_thickness)
        .unwrap_or(1.0);

    let geometric = frames
        .iter()
        .all(|f| f.position.is_some() && f.orientation.is_some());
    let layout = if geometric {
        match stack_with_positions(
            &mut frames,
            pixel_spacing,
            rows,
            cols,
            fallback_step,
            &mut warnings,
        ) {
            Ok(l) => Some(l),
            Err(reason) => {
                warnings.push(format!("slice geometry unusable ({reason})"));
                None
            }
        }
    } else {
        None
    };
    let layout = match layout {
        Some(l) => l,
        None => {
            frames.sort_by_key(secondary_key);
            if frames.len() > 1 || first.position.is_none() {
                warnings.push(
                    "no usable ImagePositionPatient/ImageOrientationPatient for every image: slices stacked in instance order with an assumed step; world position is not reliable"
                        .to_string(),
                );
            }
            unplaced_layout(
                &first,
                pixel_spacing,
                rows,
                cols,
                frames.len(),
                fallback_step,
            )
        }
    };
    warnings.extend(layout.warnings.iter().cloned());
    let normal = first
        .orientation
        .as_ref()
        .map(slice_normal)
        .unwrap_or_else(Vector3::z);
    let description = match (part, first.is_localizer()) {
        (0, _) => first.description.clone(),
        (_, true) => format!("{} (localizer)", first.description),
        _ => format!("{} (part {})", first.description, part + 1),
    };
    SeriesInfo {
        uid: first.series_uid.clone(),
        number: first.series_number,
        modality: Modality::from_dicom_code(&first.modality),
        description,
        dims: layout.dims,
        spacing_mm: layout.spacing_mm,
        orientation: describe_orientation(&layout.direction, &normal),
        slice_count: image_count,
        transfer_syntax: syntaxes.join(", "),
        warnings,
        part,
        is_localizer: first.is_localizer(),
        frames,
        layout,
        problem,
    }
}

/// Sorts by position along the normal, resolves repeated positions, lays out the stack.
fn stack_with_positions(
    frames: &mut Vec<DicomFrame>,
    pixel_spacing: [f64; 2],
    rows: usize,
    cols: usize,
    fallback_step: f64,
    warnings: &mut Vec<String>,
) -> Result<StackLayout, String> {
    let orientation = frames[0].orientation.ok_or("no orientation")?;
    let s_of = |f: &DicomFrame| normal_position(&orientation, &f.position.unwrap_or([0.0; 3]));
    frames.sort_by(|a, b| {
        s_of(a)
            .total_cmp(&s_of(b))
            .then_with(|| secondary_key(a).cmp(&secondary_key(b)))
    });
    // Runs of frames at the same position (multi-echo, dynamics, duplicates).
    let mut runs: Vec<Vec<DicomFrame>> = Vec::new();
    for f in frames.drain(..) {
        match runs.last_mut() {
            Some(run) if (s_of(&run[0]) - s_of(&f)).abs() < 0.01 => run.push(f),
            _ => runs.push(vec![f]),
        }
    }
    let per_position = runs[0].len();
    if runs.iter().all(|r| r.len() == per_position) && per_position > 1 {
        warnings.push(format!(
            "{per_position} images at each of {} positions (time points, echoes or repeats): the first volume is loaded",
            runs.len()
        ));
    } else if runs.iter().any(|r| r.len() > 1) {
        let extra: usize = runs.iter().map(|r| r.len() - 1).sum();
        warnings.push(format!(
            "{extra} duplicate image(s) at an already-used position ignored (the first by time/instance is kept)"
        ));
    }
    frames.extend(runs.into_iter().filter_map(|r| r.into_iter().next()));
    let positions: Vec<[f64; 3]> = frames
        .iter()
        .map(|f| f.position.unwrap_or([0.0; 3]))
        .collect();
    plan_stack(
        &orientation,
        pixel_spacing,
        rows,
        cols,
        &positions,
        fallback_step,
    )
}

/// A plain stack for images without usable positions (secondary captures, some multi-frames).
fn unplaced_layout(
    first: &DicomFrame,
    pixel_spacing: [f64; 2],
    rows: usize,
    cols: usize,
    slices: usize,
    step: f64,
) -> StackLayout {
    let direction = match first.orientation {
        Some(o) => {
            let row = Vector3::new(o[0], o[1], o[2]);
            let col = Vector3::new(o[3], o[4], o[5]);
            let n = row.cross(&col);
            if n.norm() > 0.5 {
                Matrix3::from_columns(&[row, col, n.normalize()])
            } else {
                Matrix3::identity()
            }
        }
        None => Matrix3::identity(),
    };
    StackLayout {
        dims: [cols, rows, slices],
        spacing_mm: [pixel_spacing[1], pixel_spacing[0], step],
        origin_mm: first.position.unwrap_or([0.0; 3]),
        direction,
        sources: (0..slices)
            .map(|k| SliceSource {
                lower: k,
                upper: k,
                weight: 0.0,
            })
            .collect(),
        tilt_deg: 0.0,
        resampled: false,
        warnings: Vec::new(),
    }
}

/// Why a series row cannot be loaded, known at scan time.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    Syntax { uid: String, reason: String },
    Image(String),
}
