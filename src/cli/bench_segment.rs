//! `fuseprint bench segment`: speed of the classical tools on a generated 512×512×400 CT, and
//! the undo memory of 200 brush strokes on a 512³ label map. A benchmark, not a test: figures
//! depend on the machine and its load.

use super::bench_runs::{summary, time};
use crate::editing::brush::{paint_stroke, BrushShape, BrushStroke};
use crate::editing::{EditMask, Gesture, PaintValue, SliceOrientation, UndoHistory};
use crate::segmentation::components::{keep_largest, threshold_keep_largest};
use crate::segmentation::gaussian::gaussian_smooth;
use crate::segmentation::threshold::threshold;
use crate::segmentation::{count, Connectivity};
use crate::volume::{LabelInfo, LabelMap, LabelTable, Rgba, Volume, VolumeGeometry};
use nalgebra::Point3;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct BenchSegmentArgs {
    /// Slices of the generated 512×512 CT.
    #[arg(long, default_value_t = 400)]
    pub slices: usize,
    /// Timed repetitions of each step (the best and the median are reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Brush strokes for the undo-memory measurement.
    #[arg(long, default_value_t = 200)]
    pub strokes: usize,
    /// Edge of the cubic label map for the undo measurement.
    #[arg(long, default_value_t = 512)]
    pub undo_size: usize,
    /// Run one part only (e.g. to read its CPU time with `/usr/bin/time` on a busy machine).
    #[arg(long, value_enum)]
    pub only: Option<BenchPart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchPart {
    Components,
    Gaussian,
    Undo,
}

/// Deterministic noise in [-1, 1) from a voxel index (no RNG crate, reproducible everywhere).
fn noise(i: usize, j: usize, k: usize) -> f32 {
    let mut h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (j as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (k as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    (h % 2000) as f32 / 1000.0 - 1.0
}

/// A torso-like CT in HU: air outside an elliptic body of soft tissue, a spine column with
/// attached ribs (one large bone piece), scattered small calcifications (islands), noise.
pub fn generate_ct(slices: usize) -> Volume<f32> {
    let g = VolumeGeometry::axis_aligned([512, 512, slices], [0.78, 0.78, 0.625], [0.0; 3])
        .expect("a valid benchmark grid");
    Volume::from_fn(g, |[i, j, k]| {
        let (x, y) = (i as f32 - 256.0, j as f32 - 256.0);
        let n = 20.0 * noise(i, j, k);
        let body = (x / 230.0).powi(2) + (y / 170.0).powi(2) <= 1.0;
        if !body {
            return -1000.0 + n;
        }
        let spine = (x / 28.0).powi(2) + ((y - 110.0) / 28.0).powi(2) <= 1.0;
        // A rib every 40 slices, 8 slices thick: an elliptic ring joined to the spine.
        let ring = ((x / 200.0).powi(2) + (y / 145.0).powi(2)).sqrt();
        let rib = k % 40 < 8 && (0.92..=1.0).contains(&ring) && y > -60.0;
        let speck = (i % 37 == 5) && (j % 41 == 7) && (k % 23 == 3);
        if spine || rib || speck {
            700.0 + 3.0 * n
        } else {
            40.0 + n
        }
    })
}

pub fn run(args: BenchSegmentArgs) -> anyhow::Result<()> {
    println!("threads: {}", rayon::current_num_threads());
    let wants = |part: BenchPart| args.only.is_none_or(|only| only == part);
    if args.only == Some(BenchPart::Undo) {
        return undo_memory(args.undo_size, args.strokes);
    }
    let t = Instant::now();
    let ct = generate_ct(args.slices);
    let g = ct.geometry().clone();
    println!(
        "generated CT {}x{}x{} @ {:?} mm in {:.2} s",
        g.dims[0],
        g.dims[1],
        g.dims[2],
        g.spacing_mm,
        t.elapsed().as_secs_f64()
    );
    let (low, high) = (200.0, 3000.0);
    if wants(BenchPart::Components) {
        components(&ct, low, high, args.repeat)?;
    }
    if wants(BenchPart::Gaussian) {
        let (secs, _) = time(args.repeat, || gaussian_smooth(&ct, 1.0));
        println!("Gaussian sigma 1 mm (separable f32): {}", summary(&secs));
    }
    drop(ct);
    if wants(BenchPart::Undo) {
        undo_memory(args.undo_size, args.strokes)?;
    }
    Ok(())
}

fn components(ct: &Volume<f32>, low: f32, high: f32, repeat: usize) -> anyhow::Result<()> {
    let (secs, fused) = time(repeat, || {
        threshold_keep_largest(ct, low, high, Connectivity::TwentySix)
    });
    println!(
        "threshold [{low}, {high}] + 26-connected components + keep largest (fused): {} -> {} voxels",
        summary(&secs),
        count(&fused)
    );
    let (secs, two_step) = time(repeat, || {
        let mask = threshold(ct, low, high);
        keep_largest(&mask, Connectivity::TwentySix)
    });
    if two_step.data() != fused.data() {
        anyhow::bail!("fused and two-step pipelines disagree");
    }
    println!(
        "threshold mask, then components + keep largest (two steps): {}",
        summary(&secs)
    );
    Ok(())
}

/// Paints `strokes` wandering disk strokes on a `size`³ map, one gesture each, then undoes
/// them all and checks the map is back bit for bit.
fn undo_memory(size: usize, strokes: usize) -> anyhow::Result<()> {
    let g = VolumeGeometry::axis_aligned([size; 3], [0.5; 3], [0.0; 3]).expect("valid grid");
    let mut map = LabelMap::empty(g);
    let mut table = LabelTable::new();
    table.insert(LabelInfo::new(1, "bone", Rgba::rgb(240, 230, 200)));
    table.insert(LabelInfo::new(2, "vessel", Rgba::rgb(200, 30, 30)));
    map.table = table;
    let original = map.clone();
    let mut history = UndoHistory::default();
    let extent = size as f64 * 0.5;
    let t = Instant::now();
    let mut painted = 0usize;
    for s in 0..strokes {
        let orientation = [
            SliceOrientation::Axial,
            SliceOrientation::Coronal,
            SliceOrientation::Sagittal,
        ][s % 3];
        // A 60 mm zig-zag of 20 pointer positions, radius 5 mm, somewhere in the volume.
        let f = |n: usize| (noise(s, n, 7) as f64 * 0.5 + 0.5) * (extent - 80.0) + 40.0;
        let start = Point3::new(f(0), f(1), f(2));
        let points = (0..20)
            .map(|n| {
                start + nalgebra::Vector3::new(3.0 * n as f64, 8.0 * (n % 2) as f64, 3.0 * n as f64)
            })
            .collect();
        let stroke = BrushStroke {
            shape: BrushShape::Disk(orientation),
            radius_mm: 5.0,
            points_in_world: points,
        };
        let mut gesture = Gesture::begin(&mut map, "paint", &EditMask::default(), None)?;
        painted += paint_stroke(&mut gesture, &stroke, PaintValue::Label(1 + (s % 2) as u16))?;
        history.push(gesture.finish());
    }
    let paint_secs = t.elapsed().as_secs_f64();
    let bytes = history.memory_bytes();
    println!(
        "undo: {} strokes on a {size}³ u16 map ({} MB), {painted} voxels painted: history {:.2} MB \
         ({:.1} kB per stroke, {} entries kept), {:.1} ms per stroke",
        strokes,
        map.geometry().voxel_count() * 2 / 1_000_000,
        bytes as f64 / 1e6,
        bytes as f64 / 1e3 / strokes.max(1) as f64,
        history.undo_len(),
        1000.0 * paint_secs / strokes.max(1) as f64,
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("autosave.nii.gz");
    let t = Instant::now();
    crate::io::labels::autosave(&path, &map, &())?;
    println!(
        "autosave of the edited map (atomic .nii.gz + sidecar): {:.2} s, {:.1} MB on disk",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&path)?.len() as f64 / 1e6
    );
    let t = Instant::now();
    while history.undo(&mut map)?.is_some() {}
    let undo_secs = t.elapsed().as_secs_f64();
    let identical = map == original;
    println!(
        "undo all: {:.1} ms per entry, map bit-identical to the start: {identical}",
        1000.0 * undo_secs / strokes.max(1) as f64
    );
    if !identical {
        anyhow::bail!("undo did not restore the map");
    }
    Ok(())
}
