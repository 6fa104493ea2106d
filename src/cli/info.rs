//! `fuseprint info PATH [--json]`: what a DICOM folder or NIfTI file holds, one row per series.

use super::progress::run_with_progress;
use crate::io::{self, nifti, FileKind};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// A DICOM folder or file, or a .nii / .nii.gz file.
    pub path: PathBuf,
    /// Print JSON: rows (each with its LPS world_from_voxel affine) and skipped files.
    #[arg(long)]
    pub json: bool,
}

/// One series (or the one NIfTI volume) as `info` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesRow {
    pub index: usize,
    pub uid: String,
    pub modality: String,
    pub description: String,
    pub dims: [usize; 3],
    pub spacing_mm: [f64; 3],
    pub orientation: String,
    pub slice_count: usize,
    /// DICOM transfer syntax, or the NIfTI version and which header fields placed it.
    pub transfer_syntax: String,
    pub warnings: Vec<String>,
    /// 4×4 row-major voxel index → LPS millimetres, as the volume will load.
    pub world_from_voxel: Option<[[f64; 4]; 4]>,
}

fn affine_rows(g: &crate::volume::VolumeGeometry) -> [[f64; 4]; 4] {
    let m = g.world_from_voxel();
    let mut rows = [[0.0; 4]; 4];
    for (r, row) in rows.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = m[(r, c)];
        }
    }
    rows
}

#[derive(Debug, Clone, Serialize)]
pub struct SkippedRow {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InfoReport {
    pub path: String,
    pub format: String,
    pub series: Vec<SeriesRow>,
    /// Files that were not images, with why (DICOM only).
    pub skipped: Vec<SkippedRow>,
    /// NIfTI only: 4×4 row-major voxel index → LPS millimetres.
    pub world_from_voxel: Option<[[f64; 4]; 4]>,
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let path = args.path.clone();
    let report = run_with_progress("info", move |ctx| describe(&path, ctx))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Builds the report for a path (the work behind `info`).
pub fn describe(
    path: &std::path::Path,
    ctx: &crate::jobs::JobContext,
) -> Result<InfoReport, io::IoError> {
    match io::detect_kind(path)? {
        FileKind::Nifti => describe_nifti(path, ctx),
        FileKind::Dicom => describe_dicom(path, ctx),
    }
}

fn describe_nifti(
    path: &std::path::Path,
    ctx: &crate::jobs::JobContext,
) -> Result<InfoReport, io::IoError> {
    let img = nifti::read_nifti(path, ctx)?;
    let g = img.image.volume.geometry();
    let affine = affine_rows(g);
    let row = SeriesRow {
        index: 0,
        uid: String::new(),
        modality: img.image.meta.modality.code().to_string(),
        description: img.image.meta.description.clone(),
        dims: g.dims,
        spacing_mm: g.spacing_mm,
        orientation: g.orientation_code(),
        slice_count: g.dims[2],
        transfer_syntax: format!(
            "NIfTI-{} {:?} ({})",
            img.header.version,
            img.header.datatype,
            img.affine_source.name()
        ),
        warnings: img.image.meta.warnings.clone(),
        world_from_voxel: Some(affine),
    };
    Ok(InfoReport {
        path: path.display().to_string(),
        format: format!("NIfTI-{}", img.header.version),
        series: vec![row],
        skipped: Vec::new(),
        world_from_voxel: Some(affine),
    })
}

fn describe_dicom(
    path: &std::path::Path,
    ctx: &crate::jobs::JobContext,
) -> Result<InfoReport, io::IoError> {
    let scan = io::dicom::scan(path, ctx)?;
    let series = scan
        .series
        .iter()
        .enumerate()
        .map(|(index, s)| {
            let mut warnings = s.warnings.clone();
            match &s.problem {
                Some(io::dicom::Problem::Syntax { reason, .. }) => {
                    warnings.insert(0, format!("cannot load: {reason}"))
                }
                Some(io::dicom::Problem::Image(reason)) => {
                    warnings.insert(0, format!("cannot load: {reason}"))
                }
                None => {}
            }
            if s.is_localizer {
                warnings.insert(0, "localizer".into());
            }
            SeriesRow {
                index,
                uid: s.uid.clone(),
                modality: s.modality.code().to_string(),
                description: s.description.clone(),
                dims: s.dims,
                spacing_mm: s.spacing_mm,
                orientation: s.orientation.clone(),
                slice_count: s.slice_count,
                transfer_syntax: s.transfer_syntax.clone(),
                warnings,
                world_from_voxel: s.geometry().ok().map(|g| affine_rows(&g)),
            }
        })
        .collect();
    let skipped = scan
        .skipped
        .iter()
        .map(|s| SkippedRow {
            path: s.path.display().to_string(),
            reason: s.reason.clone(),
        })
        .collect();
    Ok(InfoReport {
        path: path.display().to_string(),
        format: "DICOM".into(),
        series,
        skipped,
        world_from_voxel: None,
    })
}

/// How many skipped files to name before summarising the rest.
const SKIPPED_SHOWN: usize = 5;

fn print_table(report: &InfoReport) {
    println!("{} ({})", report.path, report.format);
    let header = [
        "#",
        "modality",
        "description",
        "dims",
        "spacing mm",
        "orient",
        "slices",
        "syntax",
        "warnings",
    ];
    let rows: Vec<[String; 9]> = report
        .series
        .iter()
        .map(|s| {
            [
                s.index.to_string(),
                s.modality.clone(),
                s.description.clone(),
                format!("{}x{}x{}", s.dims[0], s.dims[1], s.dims[2]),
                format!(
                    "{:.3}x{:.3}x{:.3}",
                    s.spacing_mm[0], s.spacing_mm[1], s.spacing_mm[2]
                ),
                s.orientation.clone(),
                s.slice_count.to_string(),
                s.transfer_syntax.clone(),
                if s.warnings.is_empty() {
                    "-".to_string()
                } else {
                    s.warnings.join("; ")
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()).take(8) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (n, cell) in cells.iter().enumerate() {
            if n == cells.len() - 1 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{:<w$}  ", cell, w = widths[n]));
            }
        }
        s
    };
    println!("{}", line(&header.map(String::from)));
    for r in &rows {
        println!("{}", line(r));
    }
    if !report.skipped.is_empty() {
        println!("skipped {} files:", report.skipped.len());
        for s in report.skipped.iter().take(SKIPPED_SHOWN) {
            println!("  {}: {}", s.path, s.reason);
        }
        if report.skipped.len() > SKIPPED_SHOWN {
            println!("  … and {} more", report.skipped.len() - SKIPPED_SHOWN);
        }
    }
}
