//! Accuracy report: how far each mesh strays from the voxel surface it was built from.
//!
//! Distances are symmetric: mesh vertices to the nearest voxel boundary face, and voxel
//! boundary face centres to the nearest mesh triangle, both exact point-to-primitive
//! distances found through a uniform grid. Computed in grid millimetres (index × spacing),
//! which is the world frame up to a rotation.

use super::repair::MeshCheck;
use crate::volume::mesh::{cross, dot, sub};
use crate::volume::{TriMesh, VolumeGeometry};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// The seed's clinical budget for model error.
pub const DEFAULT_BUDGET_MM: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartAccuracy {
    pub name: String,
    pub label: Option<u16>,
    pub mean_mm: f64,
    pub p95_mm: f64,
    pub max_mm: f64,
    pub mesh_volume_mm3: f64,
    pub mask_volume_mm3: f64,
    /// (mesh − mask) / mask, percent.
    pub volume_difference_percent: f64,
    pub faces: usize,
    pub check: MeshCheck,
    /// p95 distance above the budget.
    pub over_budget: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    pub budget_mm: f64,
    pub rule: String,
    pub frame: String,
    pub parts: Vec<PartAccuracy>,
}

impl AccuracyReport {
    pub fn new(budget_mm: f64, parts: Vec<PartAccuracy>) -> Self {
        Self {
            budget_mm,
            rule: format!("a part is flagged when the 95th percentile of its symmetric mesh-to-voxel-surface distance exceeds {budget_mm} mm"),
            frame: "LPS millimetres".into(),
            parts,
        }
    }

    /// A few lines for a terminal or a status panel.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "{:<28} {:>9} {:>7} {:>7} {:>7} {:>11} {:>7}  checks\n",
            "part", "faces", "mean", "p95", "max", "volume ml", "Δvol%"
        ));
        for p in &self.parts {
            s.push_str(&format!(
                "{:<28} {:>9} {:>7.3} {:>7.3} {:>7.3} {:>11.3} {:>+7.2}  {}{}{}\n",
                truncate(&p.name, 28),
                p.faces,
                p.mean_mm,
                p.p95_mm,
                p.max_mm,
                p.mesh_volume_mm3 / 1000.0,
                p.volume_difference_percent,
                if p.check.watertight {
                    "watertight"
                } else {
                    "OPEN"
                },
                if p.check.manifold {
                    ", manifold"
                } else {
                    ", NON-MANIFOLD"
                },
                if p.over_budget { ", OVER BUDGET" } else { "" },
            ));
        }
        let over = self.parts.iter().filter(|p| p.over_budget).count();
        s.push_str(&format!(
            "distances in mm; {over} of {} parts over the {} mm budget ({})\n",
            self.parts.len(),
            self.budget_mm,
            self.rule
        ));
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// A uniform grid of primitive ids bucketed by bounding box.
struct Buckets {
    lo: [f64; 3],
    cell: f64,
    dims: [usize; 3],
    cells: Vec<Vec<u32>>,
}

impl Buckets {
    fn new(boxes: &[([f64; 3], [f64; 3])], cell: f64) -> Self {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for (a, b) in boxes {
            for d in 0..3 {
                lo[d] = lo[d].min(a[d]);
                hi[d] = hi[d].max(b[d]);
            }
        }
        let dims = [0, 1, 2].map(|d| (((hi[d] - lo[d]) / cell).floor() as usize + 1).max(1));
        let mut cells = vec![Vec::new(); dims[0] * dims[1] * dims[2]];
        let mut this = Self {
            lo,
            cell,
            dims,
            cells: Vec::new(),
        };
        for (id, (a, b)) in boxes.iter().enumerate() {
            let (ca, cb) = (this.cell_of(*a), this.cell_of(*b));
            for z in ca[2]..=cb[2] {
                for y in ca[1]..=cb[1] {
                    for x in ca[0]..=cb[0] {
                        cells[x + dims[0] * (y + dims[1] * z)].push(id as u32);
                    }
                }
            }
        }
        this.cells = cells;
        this
    }

    fn cell_of(&self, p: [f64; 3]) -> [usize; 3] {
        [0, 1, 2]
            .map(|d| (((p[d] - self.lo[d]) / self.cell).max(0.0) as usize).min(self.dims[d] - 1))
    }

    /// Smallest `dist(p, id)` over all primitives.
    fn nearest(&self, p: [f64; 3], dist: impl Fn(u32) -> f64) -> f64 {
        let c = self.cell_of(p);
        let mut best = f64::INFINITY;
        let max_r = self.dims.iter().copied().max().unwrap_or(1);
        for r in 0..=max_r {
            let r = r as isize;
            let range = |d: usize| {
                (
                    (c[d] as isize - r).max(0) as usize,
                    ((c[d] as isize + r) as usize).min(self.dims[d] - 1),
                )
            };
            let (x0, x1) = range(0);
            let (y0, y1) = range(1);
            let (z0, z1) = range(2);
            for z in z0..=z1 {
                for y in y0..=y1 {
                    for x in x0..=x1 {
                        let on_shell = (x as isize - c[0] as isize).abs() == r
                            || (y as isize - c[1] as isize).abs() == r
                            || (z as isize - c[2] as isize).abs() == r;
                        if !on_shell {
                            continue;
                        }
                        for &id in &self.cells[x + self.dims[0] * (y + self.dims[1] * z)] {
                            best = best.min(dist(id));
                        }
                    }
                }
            }
            // Anything in a further shell is at least r cells away.
            if best <= r as f64 * self.cell {
                break;
            }
        }
        best
    }
}

/// Closest distance from `p` to triangle `t` (Ericson, Real-Time Collision Detection 5.1.5).
pub fn point_triangle_distance(p: [f64; 3], t: [[f64; 3]; 3]) -> f64 {
    let [a, b, c] = t;
    let ab = sub(b, a);
    let ac = sub(c, a);
    let ap = sub(p, a);
    let d1 = dot(ab, ap);
    let d2 = dot(ac, ap);
    let closest = if d1 <= 0.0 && d2 <= 0.0 {
        a
    } else {
        let bp = sub(p, b);
        let d3 = dot(ab, bp);
        let d4 = dot(ac, bp);
        let cp = sub(p, c);
        let d5 = dot(ab, cp);
        let d6 = dot(ac, cp);
        let vc = d1 * d4 - d3 * d2;
        let vb = d5 * d2 - d1 * d6;
        let va = d3 * d6 - d5 * d4;
        let lerp = |x: [f64; 3], y: [f64; 3], s: f64| [0, 1, 2].map(|k| x[k] + s * (y[k] - x[k]));
        if d3 >= 0.0 && d4 <= d3 {
            b
        } else if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
            lerp(a, b, d1 / (d1 - d3))
        } else if d6 >= 0.0 && d5 <= d6 {
            c
        } else if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
            lerp(a, c, d2 / (d2 - d6))
        } else if va <= 0.0 && (d4 - d3) >= 0.0 && (d5 - d6) >= 0.0 {
            lerp(b, c, (d4 - d3) / ((d4 - d3) + (d5 - d6)))
        } else {
            let denom = 1.0 / (va + vb + vc);
            let v = vb * denom;
            let w = vc * denom;
            [0, 1, 2].map(|k| a[k] + ab[k] * v + ac[k] * w)
        }
    };
    let d = sub(p, closest);
    dot(d, d).sqrt()
}

/// A voxel boundary face: centre (grid mm), normal axis, half extents along all axes.
#[derive(Clone, Copy)]
struct Square {
    centre: [f64; 3],
    half: [f64; 3],
}

fn point_square_distance(p: [f64; 3], s: &Square) -> f64 {
    let mut d2 = 0.0;
    for k in 0..3 {
        let e = ((p[k] - s.centre[k]).abs() - s.half[k]).max(0.0);
        d2 += e * e;
    }
    d2.sqrt()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Accuracy of one part against the voxel mask `inside(i, j, k)` on `geometry`'s grid.
pub fn part_accuracy(
    name: &str,
    label: Option<u16>,
    mesh: &TriMesh,
    geometry: &VolumeGeometry,
    inside: impl Fn(usize, usize, usize) -> bool + Sync,
    budget_mm: f64,
) -> PartAccuracy {
    let check = super::repair::check(mesh);
    let [nx, ny, nz] = geometry.dims;
    let sp = geometry.spacing_mm;
    let inv = geometry.direction.transpose();
    let o = geometry.origin_mm;
    // World → grid mm (index × spacing); exact for orthonormal direction cosines.
    let to_grid = |p: [f32; 3]| {
        let w = nalgebra::Vector3::new(p[0] as f64 - o[0], p[1] as f64 - o[1], p[2] as f64 - o[2]);
        let g = inv * w;
        [g.x, g.y, g.z]
    };
    let verts: Vec<[f64; 3]> = mesh
        .positions_world_mm
        .par_iter()
        .map(|p| to_grid(*p))
        .collect();
    let mut lo = [0usize; 3];
    let mut hi = [0usize; 3];
    for d in 0..3 {
        let n = geometry.dims[d];
        let (mn, mx) = verts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v[d] / sp[d]), b.max(v[d] / sp[d]))
            });
        lo[d] = if mn.is_finite() {
            (mn - 2.0).max(0.0) as usize
        } else {
            0
        };
        hi[d] = if mx.is_finite() {
            ((mx + 2.0).max(0.0) as usize).min(n - 1)
        } else {
            n - 1
        };
    }
    let at = |i: isize, j: isize, k: isize| -> bool {
        i >= 0
            && j >= 0
            && k >= 0
            && (i as usize) < nx
            && (j as usize) < ny
            && (k as usize) < nz
            && inside(i as usize, j as usize, k as usize)
    };
    let mut voxels = 0usize;
    let mut squares = Vec::new();
    for k in lo[2]..=hi[2] {
        for j in lo[1]..=hi[1] {
            for i in lo[0]..=hi[0] {
                if !inside(i, j, k) {
                    continue;
                }
                voxels += 1;
                let (ii, jj, kk) = (i as isize, j as isize, k as isize);
                for axis in 0..3 {
                    for side in [-1isize, 1] {
                        let mut n = [ii, jj, kk];
                        n[axis] += side;
                        if at(n[0], n[1], n[2]) {
                            continue;
                        }
                        let mut centre = [i as f64 * sp[0], j as f64 * sp[1], k as f64 * sp[2]];
                        centre[axis] += side as f64 * 0.5 * sp[axis];
                        let mut half = [0.5 * sp[0], 0.5 * sp[1], 0.5 * sp[2]];
                        half[axis] = 0.0;
                        squares.push(Square { centre, half });
                    }
                }
            }
        }
    }
    let cell = 2.0 * sp.iter().cloned().fold(0.0, f64::max);
    let mut distances: Vec<f64> = Vec::new();
    if !squares.is_empty() && !mesh.indices.is_empty() {
        let sq_boxes: Vec<_> = squares
            .iter()
            .map(|s| {
                (
                    [0, 1, 2].map(|d| s.centre[d] - s.half[d]),
                    [0, 1, 2].map(|d| s.centre[d] + s.half[d]),
                )
            })
            .collect();
        let sq_grid = Buckets::new(&sq_boxes, cell);
        let tri_boxes: Vec<_> = mesh
            .indices
            .iter()
            .map(|t| {
                let c = t.map(|v| verts[v as usize]);
                (
                    [0, 1, 2].map(|d| c[0][d].min(c[1][d]).min(c[2][d])),
                    [0, 1, 2].map(|d| c[0][d].max(c[1][d]).max(c[2][d])),
                )
            })
            .collect();
        let tri_grid = Buckets::new(&tri_boxes, cell);
        distances = verts
            .par_iter()
            .map(|&p| sq_grid.nearest(p, |id| point_square_distance(p, &squares[id as usize])))
            .collect();
        distances.par_extend(squares.par_iter().map(|s| {
            tri_grid.nearest(s.centre, |id| {
                let t = mesh.indices[id as usize].map(|v| verts[v as usize]);
                point_triangle_distance(s.centre, t)
            })
        }));
    }
    distances.par_sort_unstable_by(f64::total_cmp);
    let mean = if distances.is_empty() {
        0.0
    } else {
        distances.iter().sum::<f64>() / distances.len() as f64
    };
    let p95 = percentile(&distances, 0.95);
    let max = distances.last().copied().unwrap_or(0.0);
    let mesh_volume = mesh.signed_volume_mm3();
    let mask_volume = voxels as f64 * geometry.voxel_volume_mm3();
    PartAccuracy {
        name: name.to_string(),
        label,
        mean_mm: mean,
        p95_mm: p95,
        max_mm: max,
        mesh_volume_mm3: mesh_volume,
        mask_volume_mm3: mask_volume,
        volume_difference_percent: if mask_volume > 0.0 {
            100.0 * (mesh_volume - mask_volume) / mask_volume
        } else {
            0.0
        },
        faces: mesh.face_count(),
        check,
        over_budget: p95 > budget_mm,
    }
}

/// Report for label surfaces against their label map.
pub fn accuracy_report(
    map: &crate::volume::LabelMap,
    parts: &[super::LabelSurface],
    budget_mm: f64,
) -> AccuracyReport {
    let geometry = map.geometry();
    let parts = parts
        .iter()
        .map(|p| {
            let label = p.label;
            part_accuracy(
                &p.name,
                Some(label),
                &p.mesh,
                geometry,
                |i, j, k| map.volume.at(i, j, k) == label,
                budget_mm,
            )
        })
        .collect();
    AccuracyReport::new(budget_mm, parts)
}

/// Unit check for the distance helper: cross product sanity.
#[allow(dead_code)]
fn _unused(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    cross(a, b)
}
