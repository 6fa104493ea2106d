//! `fuseprint metrics A B [--json]`: agreement of two label maps, overall first, then per label.

use super::progress::run_with_progress;
use crate::editing::PrintProfile;
use crate::io::labels::{apply_class_names, load_label_map, read_class_map};
use crate::jobs::JobContext;
use crate::segmentation::metrics::{compare_label_maps, OverlapMetrics};
use crate::volume::{resample_labels, LabelMap};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Label map to evaluate (.nii/.nii.gz).
    pub a: PathBuf,
    /// Reference label map. Resampled (nearest) onto A's grid when the grids differ.
    pub b: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Name labels from a TotalSegmentator-style class map (`class_map_total.json`).
    #[arg(long)]
    pub class_map: Option<PathBuf>,
}

fn fmt_mm(v: Option<f64>) -> String {
    v.map(|d| format!("{d:.2}"))
        .unwrap_or_else(|| "-".to_string())
}

fn line(m: &OverlapMetrics) -> String {
    format!(
        "dice {:.4}  jaccard {:.4}  hd95 {} mm  msd {} mm  volume {:.3} / {:.3} ml",
        m.dice,
        m.jaccard,
        fmt_mm(m.hausdorff95_mm),
        fmt_mm(m.mean_surface_distance_mm),
        m.volume_a_ml,
        m.volume_b_ml
    )
}

pub fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let (a_path, b_path) = (args.a.clone(), args.b.clone());
    let (mut a, b) = run_with_progress("load", move |ctx| {
        let (a, _) = load_label_map::<BTreeMap<u16, PrintProfile>>(&a_path, &ctx.sub(0.0, 0.5))?;
        let (b, _) = load_label_map::<BTreeMap<u16, PrintProfile>>(&b_path, &ctx.sub(0.5, 1.0))?;
        Ok::<_, crate::io::IoError>((a, b))
    })?;
    let b = if b.geometry().same_grid(a.geometry(), 1e-3) {
        b
    } else {
        eprintln!("note: grids differ; resampling B onto A's grid (nearest label)");
        let volume = resample_labels(&b.volume, a.geometry(), None);
        LabelMap::new(volume, b.table.clone())
    };
    if let Some(path) = &args.class_map {
        let names = read_class_map(path, None)?;
        apply_class_names(&mut a, &names);
    }
    let c = compare_label_maps(&a, &b, &JobContext::detached())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    println!("overall (non-zero): {}", line(&c.overall));
    for l in &c.per_label {
        println!("{:>5} {:<28} {}", l.label, l.name, line(&l.metrics));
    }
    Ok(())
}
