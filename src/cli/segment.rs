//! `fuseprint segment <tool> …`: the classical segmentation tools on files.
//!
//! Image tools (`threshold`, `grow`) read any image `io::load_image` knows and write a label
//! map; label tools (`islands`, `morph`) read a label map (with its sidecar when present) and
//! change one label, leaving the others as they were unless `--overwrite` is given.

use super::progress::run_with_progress;
use crate::editing::{apply_mask, EditMask, Gesture, PaintValue, PrintProfile};
use crate::io::labels::{load_label_map, save_label_map};
use crate::io::{self, IoError};
use crate::jobs::JobContext;
use crate::segmentation::components::{
    keep_largest, keep_selected, remove_small_islands, threshold_keep_largest,
};
use crate::segmentation::morphology::{self, SmoothingMethod};
use crate::segmentation::region_grow::{
    confidence_connected, connected_threshold, seed_from_world,
};
use crate::segmentation::threshold::{threshold, ThresholdPreset};
use crate::segmentation::{logical, mask_of_label, Connectivity, Mask};
use crate::volume::{LabelInfo, LabelMap, LabelTable, Volume};
use anyhow::{bail, Context};
use nalgebra::Point3;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type Profiles = BTreeMap<u16, PrintProfile>;

#[derive(Debug, clap::Args)]
pub struct SegmentArgs {
    #[command(subcommand)]
    pub tool: SegmentTool,
}

#[derive(Debug, clap::Subcommand)]
pub enum SegmentTool {
    /// Voxels in [--low, --high] (or a --preset), optionally only the largest piece.
    Threshold(ThresholdArgs),
    /// Region growing from seed points (connected threshold, or confidence connected).
    Grow(GrowArgs),
    /// Keep the largest piece, the pieces under seeds, or drop pieces smaller than a volume.
    Islands(IslandsArgs),
    /// Morphology in millimetres on one label: dilate, erode, open, close, margin, fill holes,
    /// hollow, smooth.
    Morph(MorphArgs),
}

/// Where the result goes and what it is called.
#[derive(Debug, clap::Args)]
pub struct OutputArgs {
    /// Output label map (.nii or .nii.gz); a `.labels.json` sidecar is written beside it.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Label value the result is written as.
    #[arg(long, default_value_t = 1)]
    pub label: u16,
    /// Name for the label (default: the preset's or tool's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace the output if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ConnectivityArg {
    #[value(name = "6")]
    Six,
    #[value(name = "26")]
    TwentySix,
}

impl From<ConnectivityArg> for Connectivity {
    fn from(c: ConnectivityArg) -> Self {
        match c {
            ConnectivityArg::Six => Connectivity::Six,
            ConnectivityArg::TwentySix => Connectivity::TwentySix,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ThresholdArgs {
    /// Image: NIfTI file, DICOM file or folder.
    pub input: PathBuf,
    /// Lowest value kept (HU for CT).
    #[arg(long, allow_hyphen_values = true)]
    pub low: Option<f32>,
    /// Highest value kept.
    #[arg(long, allow_hyphen_values = true)]
    pub high: Option<f32>,
    /// bone, cortical-bone, calcification, soft-tissue, lung or contrast-vessels.
    #[arg(long, conflicts_with_all = ["low", "high"])]
    pub preset: Option<String>,
    /// Keep only the largest connected piece.
    #[arg(long)]
    pub largest: bool,
    #[arg(long, value_enum, default_value = "26")]
    pub connectivity: ConnectivityArg,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, clap::Args)]
pub struct GrowArgs {
    pub input: PathBuf,
    /// Seed in world LPS millimetres, `X,Y,Z`; repeat for several.
    #[arg(long, required = true, value_parser = parse_point, allow_hyphen_values = true)]
    pub seed: Vec<Point3<f64>>,
    #[arg(long, allow_hyphen_values = true, requires = "high")]
    pub low: Option<f32>,
    #[arg(long, allow_hyphen_values = true, requires = "low")]
    pub high: Option<f32>,
    /// Confidence connected: grow within mean ± this many standard deviations (no HU needed).
    #[arg(long, conflicts_with_all = ["low", "high"])]
    pub confidence: Option<f64>,
    /// Confidence connected: re-estimation rounds.
    #[arg(long, default_value_t = 4)]
    pub iterations: usize,
    #[arg(long, value_enum, default_value = "6")]
    pub connectivity: ConnectivityArg,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, clap::Args)]
pub struct IslandsArgs {
    /// Label map (.nii/.nii.gz).
    pub input: PathBuf,
    /// Label to clean (default: 1).
    #[arg(long = "of", default_value_t = 1)]
    pub of_label: u16,
    #[arg(long, group = "mode")]
    pub keep_largest: bool,
    /// Remove pieces smaller than this many mm³.
    #[arg(long, group = "mode")]
    pub min_mm3: Option<f64>,
    /// Keep the pieces containing these world points (`X,Y,Z` in LPS mm; repeatable).
    #[arg(long, group = "mode", value_parser = parse_point, allow_hyphen_values = true)]
    pub keep_at: Vec<Point3<f64>>,
    #[arg(long, value_enum, default_value = "26")]
    pub connectivity: ConnectivityArg,
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MorphOp {
    Dilate,
    Erode,
    Open,
    Close,
    /// Grow (positive --mm) or shrink (negative).
    Margin,
    FillHoles,
    /// Keep a shell of --mm wall thickness.
    Hollow,
    /// Gaussian-and-rethreshold with sigma --mm.
    Smooth,
    /// Majority vote in a box of 2·(--mm voxels)+1.
    Median,
}

#[derive(Debug, clap::Args)]
pub struct MorphArgs {
    pub input: PathBuf,
    #[arg(long, value_enum)]
    pub op: MorphOp,
    /// Radius, margin, wall thickness or sigma in millimetres (voxels for median).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub mm: f64,
    #[arg(long = "of", default_value_t = 1)]
    pub of_label: u16,
    /// Let the grown label replace other labels (otherwise only background changes).
    #[arg(long)]
    pub overwrite: bool,
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub force: bool,
}

fn parse_point(s: &str) -> Result<Point3<f64>, String> {
    let parts: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("expected X,Y,Z in millimetres, got {s:?}"))?;
    match parts[..] {
        [x, y, z] if parts.iter().all(|v| v.is_finite()) => Ok(Point3::new(x, y, z)),
        _ => Err(format!("expected X,Y,Z in millimetres, got {s:?}")),
    }
}

pub fn run(args: SegmentArgs) -> anyhow::Result<()> {
    match args.tool {
        SegmentTool::Threshold(a) => run_threshold(a),
        SegmentTool::Grow(a) => run_grow(a),
        SegmentTool::Islands(a) => run_islands(a),
        SegmentTool::Morph(a) => run_morph(a),
    }
}

fn refuse_existing(path: &Path, force: bool) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if !(name.ends_with(".nii") || name.ends_with(".nii.gz")) {
        bail!("output must end in .nii or .nii.gz: {}", path.display());
    }
    if !force && path.exists() {
        return Err(IoError::WouldOverwrite {
            path: path.to_path_buf(),
        }
        .into());
    }
    Ok(())
}

fn load_image(path: &Path) -> anyhow::Result<Volume<f32>> {
    let path = path.to_path_buf();
    let image = run_with_progress("load", move |ctx| io::load_image(&path, ctx))?;
    Ok(image.volume)
}

/// A fresh label map holding `mask` as `label`, and a one-line summary.
fn write_mask(mask: &Mask, out: &OutputArgs, default_name: &str) -> anyhow::Result<()> {
    if out.label == 0 {
        bail!("--label must be 1 or more (0 is background)");
    }
    let volume = mask.map(|m| if m != 0 { out.label } else { 0 });
    let mut table = LabelTable::new();
    let name = out.name.clone().unwrap_or_else(|| default_name.to_string());
    table.insert(LabelInfo::new(
        out.label,
        name.clone(),
        LabelTable::default_color(out.label),
    ));
    let map = LabelMap::new(volume, table);
    save_label_map(&out.output, &map, &Profiles::new(), out.force)?;
    println!(
        "{name}: {} voxels, {:.2} ml -> {}",
        crate::segmentation::count(mask),
        crate::segmentation::volume_ml(mask),
        out.output.display()
    );
    Ok(())
}

fn run_threshold(a: ThresholdArgs) -> anyhow::Result<()> {
    refuse_existing(&a.out.output, a.out.force)?;
    let (low, high, name) = match (&a.preset, a.low, a.high) {
        (Some(p), _, _) => {
            let preset = ThresholdPreset::from_name(p).with_context(|| {
                let names: Vec<_> = ThresholdPreset::ALL.iter().map(|p| p.name()).collect();
                format!("unknown preset {p:?} (choose from {})", names.join(", "))
            })?;
            let (l, h) = preset.range_hu();
            (l, h, preset.name().to_string())
        }
        (None, Some(l), Some(h)) => (l, h, format!("threshold {l}..{h}")),
        _ => bail!("give --low and --high, or --preset"),
    };
    if !(low <= high) {
        bail!("--low ({low}) must not exceed --high ({high})");
    }
    let image = load_image(&a.input)?;
    let mask = if a.largest {
        threshold_keep_largest(&image, low, high, a.connectivity.into())
    } else {
        threshold(&image, low, high)
    };
    write_mask(&mask, &a.out, &name)
}

fn run_grow(a: GrowArgs) -> anyhow::Result<()> {
    refuse_existing(&a.out.output, a.out.force)?;
    let image = load_image(&a.input)?;
    let seeds = a
        .seed
        .iter()
        .map(|p| seed_from_world(image.geometry(), *p))
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = JobContext::detached();
    let (mask, name) = match (a.confidence, a.low, a.high) {
        (Some(m), _, _) => (
            confidence_connected(
                &image,
                &seeds,
                m,
                a.iterations,
                1,
                a.connectivity.into(),
                &ctx,
            )?,
            "confidence connected",
        ),
        (None, Some(l), Some(h)) => (
            connected_threshold(&image, &seeds, l, h, a.connectivity.into(), &ctx)?,
            "region",
        ),
        _ => bail!("give --low and --high, or --confidence"),
    };
    write_mask(&mask, &a.out, name)
}

fn load_labels(path: &Path) -> anyhow::Result<(LabelMap, Profiles)> {
    let path = path.to_path_buf();
    run_with_progress("load", move |ctx| load_label_map::<Profiles>(&path, ctx))
}

/// Replaces `label`'s voxels by `new_mask` through the editing rules (locks, overwrite).
fn replace_label(
    map: &mut LabelMap,
    label: u16,
    new_mask: &Mask,
    overwrite: bool,
) -> anyhow::Result<usize> {
    let rules = EditMask {
        overwrite_other_labels: overwrite,
        ..EditMask::default()
    };
    let old = mask_of_label(map, label);
    let removed = logical::combine(&old, new_mask, logical::LogicalOp::Subtract)?;
    let mut gesture = Gesture::begin(map, "segment", &rules, None)?;
    let mut changed = apply_mask(&mut gesture, &removed, PaintValue::Erase(Some(label)))?;
    changed += apply_mask(&mut gesture, new_mask, PaintValue::Label(label))?;
    Ok(changed)
}

fn run_islands(a: IslandsArgs) -> anyhow::Result<()> {
    refuse_existing(&a.output, a.force)?;
    let (mut map, profiles) = load_labels(&a.input)?;
    let mask = mask_of_label(&map, a.of_label);
    let c: Connectivity = a.connectivity.into();
    let kept = if a.keep_largest {
        keep_largest(&mask, c)
    } else if let Some(min) = a.min_mm3 {
        remove_small_islands(&mask, min, c)
    } else if !a.keep_at.is_empty() {
        let seeds = a
            .keep_at
            .iter()
            .map(|p| seed_from_world(map.geometry(), *p))
            .collect::<Result<Vec<_>, _>>()?;
        keep_selected(&mask, &seeds, c)?
    } else {
        bail!("choose --keep-largest, --min-mm3 N or --keep-at X,Y,Z");
    };
    let changed = replace_label(&mut map, a.of_label, &kept, false)?;
    save_label_map(&a.output, &map, &profiles, a.force)?;
    println!(
        "label {}: {changed} voxels removed -> {}",
        a.of_label,
        a.output.display()
    );
    Ok(())
}

fn run_morph(a: MorphArgs) -> anyhow::Result<()> {
    refuse_existing(&a.output, a.force)?;
    let (mut map, profiles) = load_labels(&a.input)?;
    let mask = mask_of_label(&map, a.of_label);
    let result = match a.op {
        MorphOp::Dilate => morphology::dilate(&mask, a.mm)?,
        MorphOp::Erode => morphology::erode(&mask, a.mm)?,
        MorphOp::Open => morphology::open(&mask, a.mm)?,
        MorphOp::Close => morphology::close(&mask, a.mm)?,
        MorphOp::Margin => morphology::margin(&mask, a.mm)?,
        MorphOp::FillHoles => morphology::fill_holes(&mask),
        MorphOp::Hollow => morphology::hollow(&mask, a.mm)?,
        MorphOp::Smooth => morphology::smooth(&mask, SmoothingMethod::Gaussian { sigma_mm: a.mm })?,
        MorphOp::Median => morphology::smooth(
            &mask,
            SmoothingMethod::Median {
                radius_voxels: a.mm.max(0.0).round() as usize,
            },
        )?,
    };
    let changed = replace_label(&mut map, a.of_label, &result, a.overwrite)?;
    save_label_map(&a.output, &map, &profiles, a.force)?;
    println!(
        "label {}: {changed} voxels changed -> {}",
        a.of_label,
        a.output.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_with_negative_values() {
        assert_eq!(
            parse_point("-1.5, 2,3e1").expect("valid"),
            Point3::new(-1.5, 2.0, 30.0)
        );
        assert!(parse_point("1,2").is_err());
        assert!(parse_point("1,2,nan").is_err());
    }
}
