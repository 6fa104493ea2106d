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
    let mut subsets = Vec::new();
    for r in &mut rows {
        if let Some(run) = regular_subset(r) {
            r.warnings.push(format!(
                "a regular subset without interpolation is offered as a separate row ({} slices)",
                run.len()
            ));
            subsets.push(run);
        }
    }
    for run in subsets {
        let part = rows.len();
        let mut row = assemble(run, part);
        let base = row
            .description
            .trim_end_matches(&format!("(part {})", part + 1))
            .trim()
            .to_string();
        row.description = format!("{base} (regular subset)").trim().to_string();
        row.warnings
            .push("longest run of evenly spaced slices of an irregular series".to_string());
        rows.push(row);
    }
    rows
}

/// The longest run (≥ 3 slices) of evenly spaced slices of a resampled stack, if it is not the
/// whole stack: what a reader would pick to avoid interpolated slices.
fn regular_subset(row: &SeriesInfo) -> Option<Vec<DicomFrame>> {
    if !row.layout.resampled || row.problem.is_some() {
        return None;
    }
    let orientation = row.frames.first()?.orientation?;
    let s: Vec<f64> = row
        .frames
        .iter()
        .map(|f| f.position.map(|p| normal_position(&orientation, &p)))
        .collect::<Option<_>>()?;
    let steps: Vec<f64> = s.windows(2).map(|w| w[1] - w[0]).collect();
    let (mut best_start, mut best_len) = (0, 0);
    let mut start = 0;
    for i in 0..=steps.len() {
        let ends =
            i == steps.len() || (steps[i] - steps[start]).abs() > (0.01 * steps[start]).max(0.01);
        if ends {
            let slices = i - start + 1;
            if slices > best_len {
                (best_start, best_len) = (start, slices);
            }
            start = i;
        }
    }
    (best_len >= 3 && best_len < row.frames.len())
        .then(|| row.frames[best_start..best_start + best_len].to_vec())
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
    let layout = if first.mosaic {
        match mosaic_layout(&mut frames, pixel_spacing, &mut warnings) {
            Ok(l) => Some(l),
            Err(reason) => {
                let reason = format!("Siemens mosaic that cannot be un-mosaiced: {reason}");
                warnings.push(reason.clone());
                problem.get_or_insert(Problem::Image(reason));
                None
            }
        }
    } else if geometric {
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
            drop_copies(&mut frames, &mut warnings);
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

/// One mosaic file is one volume: keep the first (by acquisition/instance), lay out its tiles.
fn mosaic_layout(
    frames: &mut Vec<DicomFrame>,
    pixel_spacing: [f64; 2],
    warnings: &mut Vec<String>,
) -> Result<StackLayout, String> {
    frames.sort_by_key(secondary_key);
    if frames.len() > 1 {
        warnings.push(format!(
            "{} mosaic volumes (time points): the first is loaded",
            frames.len()
        ));
        frames.truncate(1);
    }
    let f = &frames[0];
    let info = f
        .mosaic_info
        .as_ref()
        .ok_or("no NumberOfImagesInMosaic in the CSA header")?;
    let (o, p) = match (f.orientation, f.position) {
        (Some(o), Some(p)) => (o, p),
        _ => return Err("no ImagePositionPatient/ImageOrientationPatient".to_string()),
    };
    let m = super::mosaic::tiles_per_side(info.slices) as usize;
    let (cols, rows) = (f.cols as usize, f.rows as usize);
    if cols % m != 0 || rows % m != 0 {
        return Err(format!("{cols}×{rows} is not a grid of {m}×{m} tiles"));
    }
    let (tile_cols, tile_rows) = (cols / m, rows / m);
    let row = Vector3::new(o[0], o[1], o[2]);
    let col = Vector3::new(o[3], o[4], o[5]);
    let plane_normal = row.cross(&col).normalize();
    let normal = match info.normal {
        Some(n) if Vector3::from(n).norm() > 0.5 => Vector3::from(n).normalize(),
        _ => plane_normal,
    };
    // PixelSpacing is [between rows, between columns].
    let (dx, dy) = (pixel_spacing[1], pixel_spacing[0]);
    let origin = Vector3::from(p)
        + row * dx * (cols - tile_cols) as f64 / 2.0
        + col * dy * (rows - tile_rows) as f64 / 2.0;
    let step = f
        .spacing_between_slices
        .or(f.slice_thickness)
        .unwrap_or(1.0);
    let n = info.slices as usize;
    warnings.push(format!(
        "Siemens mosaic: {n} slices un-mosaiced from {m}×{m} tiles of {tile_cols}×{tile_rows}"
    ));
    Ok(StackLayout {
        dims: [tile_cols, tile_rows, n],
        spacing_mm: [dx, dy, step],
        origin_mm: origin.into(),
        direction: Matrix3::from_columns(&[row, col, normal]),
        sources: (0..n)
            .map(|k| SliceSource {
                lower: k,
                upper: k,
                weight: 0.0,
            })
            .collect(),
        tilt_deg: 0.0,
        resampled: false,
        warnings: Vec::new(),
    })
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
            "{per_position} images at each of {} position(s) (time points, echoes, repeats or copies): the first volume is loaded",
            runs.len()
        ));
    } else if runs.iter().any(|r| r.len() > 1) {
        let extra: usize = runs.iter().map(|r| r.len() - 1).sum();
        warnings.push(format!(
            "{extra} duplicate image(s) at an already-used position ignored (the first by time/instance is kept)"
        ));
    }
    // Of copies at one position (e.g. the same image in several syntaxes), prefer one we can decode.
    for run in &mut runs {
        run.sort_by_key(|f| f.undecodable.is_some());
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

/// Without positions, several files holding the same frames (one image saved in several
/// syntaxes) are copies: keep the first decodable file.
fn drop_copies(frames: &mut Vec<DicomFrame>, warnings: &mut Vec<String>) {
    let mut files: Vec<&std::path::Path> = frames.iter().map(|f| f.path.as_path()).collect();
    files.sort();
    files.dedup();
    if files.len() < 2 {
        return;
    }
    let per_file = frames[0].frames_in_file as usize;
    let same_shape = frames.iter().all(|f| {
        f.frames_in_file as usize == per_file && f.instance_number == frames[0].instance_number
    });
    if !same_shape || frames.len() != per_file * files.len() {
        return;
    }
    let keep = frames
        .iter()
        .find(|f| f.undecodable.is_none())
        .unwrap_or(&frames[0])
        .path
        .clone();
    let copies = files.len();
    frames.retain(|f| f.path == keep);
    warnings.push(format!(
        "{copies} files hold the same image(s) without positions (copies in different syntaxes?): {} is used",
        keep.display()
    ));
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
