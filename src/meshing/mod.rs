//! Layer 1: label maps and scalar volumes to printable triangle meshes in LPS millimetres.
//!
//! Pipeline: extract (marching cubes for an isosurface, surface nets for all labels at once)
//! → smooth without shrinking (Taubin, constrained to the voxel cells) → decimate (quadric
//! edge collapse) → repair (small islands, holes, orientation) → check.

pub mod decimate;
pub mod marching_cubes;
pub mod mc_table;
pub mod repair;
pub mod report;
pub mod smooth;
mod stages;
pub mod surface_nets;

pub use decimate::{decimate, DecimateTarget};
pub use marching_cubes::isosurface;
pub use repair::{check, MeshCheck};
pub use report::{accuracy_report, AccuracyReport, PartAccuracy};
pub use smooth::SmoothParams;
pub use stages::StageTimes;

use crate::jobs::{Cancelled, JobContext};
use crate::volume::{LabelMap, Rgba, TriMesh, Volume, VolumeGeometry};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum MeshingError {
    #[error("meshing cancelled")]
    Cancelled(#[from] Cancelled),
    #[error("label {0} is not present in the label map")]
    LabelNotPresent(u16),
    #[error("the surface at level {0} is empty (no voxel reaches it)")]
    EmptySurface(f32),
}

/// What to do after extraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshingParams {
    pub smooth: Option<SmoothParams>,
    pub decimate: Option<DecimateTarget>,
    /// Islands with less enclosed volume than this are dropped (segmentation specks).
    pub min_component_mm3: f64,
    pub fill_holes: bool,
}

impl Default for MeshingParams {
    fn default() -> Self {
        Self {
            smooth: Some(SmoothParams::default()),
            decimate: None,
            min_component_mm3: 0.0,
            fill_holes: true,
        }
    }
}

/// One printable part: a label's surface with its name and colour.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSurface {
    pub label: u16,
    pub name: String,
    pub color: Rgba,
    pub mesh: TriMesh,
}

/// Grid index → isotropic "grid millimetres" (index × spacing), the frame smoothing runs in.
fn scale_to_grid_mm(geometry: &VolumeGeometry, positions_voxel: &mut [[f32; 3]]) {
    let s = geometry.spacing_mm.map(|x| x as f32);
    positions_voxel
        .par_iter_mut()
        .for_each(|p| *p = [p[0] * s[0], p[1] * s[1], p[2] * s[2]]);
}

/// Grid millimetres → world LPS; a mirroring direction matrix flips the winding back outward.
fn grid_mm_to_world(
    geometry: &VolumeGeometry,
    positions: Vec<[f32; 3]>,
    mut tris: Vec<[u32; 3]>,
) -> TriMesh {
    let d = geometry.direction;
    let o = geometry.origin_mm;
    let positions = positions
        .into_par_iter()
        .map(|p| {
            let p = p.map(f64::from);
            [0, 1, 2]
                .map(|r| (o[r] + d[(r, 0)] * p[0] + d[(r, 1)] * p[1] + d[(r, 2)] * p[2]) as f32)
        })
        .collect();
    if d.determinant() < 0.0 {
        tris.par_iter_mut().for_each(|t| t.swap(1, 2));
    }
    TriMesh::new(positions, tris)
}

/// Voxel-index mesh → world mesh.
pub(crate) fn finish_voxel_mesh(
    geometry: &VolumeGeometry,
    mut positions_voxel: Vec<[f32; 3]>,
    tris: Vec<[u32; 3]>,
) -> TriMesh {
    scale_to_grid_mm(geometry, &mut positions_voxel);
    grid_mm_to_world(geometry, positions_voxel, tris)
}

/// Isosurface of `volume` at `level`, then smoothing, decimation and repair per `params`.
pub fn iso_mesh(
    volume: &Volume<f32>,
    level: f32,
    params: &MeshingParams,
    ctx: &JobContext,
) -> Result<TriMesh, MeshingError> {
    iso_mesh_timed(volume, level, params, ctx, &StageTimes::default())
}

/// [`iso_mesh`], adding the time of each stage to `times`.
pub fn iso_mesh_timed(
    volume: &Volume<f32>,
    level: f32,
    params: &MeshingParams,
    ctx: &JobContext,
    times: &StageTimes,
) -> Result<TriMesh, MeshingError> {
    ctx.set_stage("Extracting isosurface");
    let (mut pos, tris) = times.time("extract (marching cubes)", || {
        marching_cubes::isosurface_voxel(volume, level, &ctx.sub(0.0, 0.3))
    })?;
    if tris.is_empty() {
        return Err(MeshingError::EmptySurface(level));
    }
    let geometry = volume.geometry();
    scale_to_grid_mm(geometry, &mut pos);
    if let Some(sp) = &params.smooth {
        ctx.set_stage("Smoothing");
        let adjacency = times.time("smoothing: adjacency", || {
            smooth::Adjacency::from_polygons(pos.len(), &tris)
        });
        let anchors = pos.clone();
        let spacing = geometry.spacing_mm.map(|x| x as f32);
        times.time("smoothing: Taubin", || {
            smooth::taubin(
                &mut pos,
                &adjacency,
                Some((&anchors, spacing)),
                sp,
                &ctx.sub(0.3, 0.5),
            )
        })?;
    }
    let mesh = times.time("to world", || grid_mm_to_world(geometry, pos, tris));
    postprocess(mesh, params, &ctx.sub(0.5, 1.0), times)
}

fn postprocess(
    mut mesh: TriMesh,
    params: &MeshingParams,
    ctx: &JobContext,
    times: &StageTimes,
) -> Result<TriMesh, MeshingError> {
    if params.min_component_mm3 > 0.0 {
        ctx.set_stage("Removing small islands");
        times.time("remove small islands", || {
            repair::remove_small_components(&mut mesh, params.min_component_mm3)
        });
    }
    if let Some(target) = params.decimate {
        ctx.set_stage("Decimating");
        mesh = times.time("decimate", || {
            decimate::decimate_timed(&mesh, target, ctx, times)
        })?;
    }
    repair::fill_orient_split(&mut mesh, params.fill_holes, times);
    times.time("normals", || mesh.compute_normals());
    Ok(mesh)
}

/// Every label present in `map` (or those in `only`), from one shared surface net.
pub fn label_surfaces(
    map: &LabelMap,
    only: Option<&[u16]>,
    params: &MeshingParams,
    ctx: &JobContext,
) -> Result<Vec<LabelSurface>, MeshingError> {
    label_surfaces_timed(map, only, params, ctx, &StageTimes::default())
}

/// [`label_surfaces`], adding the time of each stage to `times` (summed over parts, which
/// run in parallel).
pub fn label_surfaces_timed(
    map: &LabelMap,
    only: Option<&[u16]>,
    params: &MeshingParams,
    ctx: &JobContext,
    times: &StageTimes,
) -> Result<Vec<LabelSurface>, MeshingError> {
    let geometry = map.geometry();
    ctx.set_stage("Surface nets");
    let net = times.time("extract (surface nets)", || {
        surface_nets::surface_net(&map.volume, &ctx.sub(0.0, 0.3))
    })?;
    let simple_start = std::time::Instant::now();
    let simple = simple_cells(map, &net.cell_centres_voxel);
    let simple_secs = simple_start.elapsed().as_secs_f64();
    let mut pos = net.positions_voxel;
    let mut anchors = net.cell_centres_voxel;
    scale_to_grid_mm(geometry, &mut pos);
    scale_to_grid_mm(geometry, &mut anchors);
    // Which labels are present takes a scan of every voxel: it runs beside the adjacency,
    // which is mostly one thread's work.
    let mut present = None;
    if let Some(sp) = &params.smooth {
        ctx.set_stage("Smoothing");
        let adjacency = times.time("smoothing: adjacency", || {
            let (adjacency, labels) = rayon::join(
                || {
                    let quads: Vec<[u32; 4]> = net.quads.iter().map(|q| q.v).collect();
                    smooth::Adjacency::from_polygons(pos.len(), &quads)
                },
                || map.values_present(),
            );
            present = Some(labels);
            adjacency
        });
        let spacing = geometry.spacing_mm.map(|x| x as f32);
        times.time("smoothing: Taubin", || {
            smooth::taubin(
                &mut pos,
                &adjacency,
                Some((&anchors, spacing)),
                sp,
                &ctx.sub(0.3, 0.45),
            )
        })?;
    }
    let split_start = std::time::Instant::now();
    drop(anchors);
    // Split each quad once, along its shorter diagonal, so both labels get the same triangles.
    let d2 = |a: u32, b: u32| -> f32 {
        let (p, q) = (pos[a as usize], pos[b as usize]);
        (0..3).map(|d| (p[d] - q[d]).powi(2)).sum()
    };
    let mut labels: Vec<u16> = present
        .unwrap_or_else(|| map.values_present())
        .into_iter()
        .filter(|&l| l != 0)
        .collect();
    if let Some(only) = only {
        for l in only {
            if !labels.contains(l) {
                return Err(MeshingError::LabelNotPresent(*l));
            }
        }
        labels.retain(|l| only.contains(l));
    }
    // Per label, a vertex is copied once per face-connected group of that label's voxels in its
    // cell: two voxels touching only along an edge get separate (touching) sheets instead of
    // a non-manifold edge that slicers reject.
    let grid = surface_nets::Grid {
        labels: map.volume.data(),
        dims: geometry.dims,
    };
    let comps = surface_nets::corner_components();
    let mut slot_of = vec![u8::MAX; 1 << 16];
    for (s, &l) in labels.iter().enumerate() {
        slot_of[l as usize] = s as u8;
    }
    let slot = |l: u16| Some(slot_of[l as usize] as usize).filter(|&s| s != u8::MAX as usize);
    // Chunks of quads in parallel, each into its own per-label lists, joined in order so the
    // output does not depend on scheduling.
    let chunks: Vec<Vec<Vec<[(u32, u8); 3]>>> = net
        .quads
        .par_chunks(1 << 16)
        .map(|quads| {
            let mut per_label: Vec<Vec<[(u32, u8); 3]>> = vec![Vec::new(); labels.len()];
            for q in quads {
                let v = q.v;
                let split: [[usize; 3]; 2] = if d2(v[0], v[2]) <= d2(v[1], v[3]) {
                    [[0, 1, 2], [0, 2, 3]]
                } else {
                    [[0, 1, 3], [1, 2, 3]]
                };
                let sides = [(q.a, q.voxel, false), (q.b, step(q.voxel, q.axis), true)];
                let slots = sides.map(|(label, _, _)| slot(label));
                if slots.iter().all(Option::is_none) {
                    continue;
                }
                if v.iter().all(|&x| simple[x as usize]) {
                    // Every label in these cells is one face-connected group: copy 0 always.
                    for ((_, _, reverse), s) in sides.into_iter().zip(slots) {
                        let Some(s) = s else { continue };
                        for t in split {
                            let tri = t.map(|m| (v[m], 0u8));
                            per_label[s].push(if reverse {
                                [tri[0], tri[2], tri[1]]
                            } else {
                                tri
                            });
                        }
                    }
                    continue;
                }
                // Each cell's eight labels, read once for both sides.
                let cells = quad_cell_labels(&grid, q);
                for ((label, voxel, reverse), s) in sides.into_iter().zip(slots) {
                    let Some(s) = s else { continue };
                    let comp = side_components(comps, &cells, q, label, voxel);
                    for t in split {
                        let tri = t.map(|m| (v[m], comp[m]));
                        per_label[s].push(if reverse {
                            [tri[0], tri[2], tri[1]]
                        } else {
                            tri
                        });
                    }
                }
            }
            per_label
        })
        .collect();
    let per_label = join_runs(&chunks, labels.len());
    drop(chunks);
    times.add(
        "split quads per label",
        simple_secs + split_start.elapsed().as_secs_f64(),
    );
    ctx.check_cancelled()?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total_faces: usize = per_label.iter().map(Vec::len).sum();
    let post = ctx.sub(0.45, 1.0);
    let part = |(&label, tris): (&u16, Vec<[(u32, u8); 3]>)| -> Result<LabelSurface, MeshingError> {
        let (p, t) = times.time("gather part vertices", || gather(&pos, tris));
        let mesh = times.time("to world", || grid_mm_to_world(geometry, p, t));
        let mut part_params = params.clone();
        // A whole-model face budget is shared out in proportion to each part's size.
        if let Some(DecimateTarget::Faces(f)) = params.decimate {
            let share =
                (f as f64 * mesh.face_count() as f64 / total_faces.max(1) as f64).ceil() as usize;
            part_params.decimate = Some(DecimateTarget::Faces(share.max(4)));
        }
        let mesh = postprocess(
            mesh,
            &part_params,
            &JobContext::new(crate::jobs::Progress::new(), post.cancel_token().clone()),
            times,
        )?;
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        post.set_steps(d, labels.len());
        let info = map.table.get(label);
        Ok(LabelSurface {
            label,
            name: info
                .map(|i| i.name.clone())
                .unwrap_or_else(|| format!("label {label}")),
            color: info
                .map(|i| i.color)
                .unwrap_or_else(|| crate::volume::LabelTable::default_color(label)),
            mesh,
        })
    };
    // The largest part (the body, usually) is the critical path: it runs beside all the
    // others rather than among them. In one parallel loop, its thread, while waiting for a
    // piece of its own work that the other thread took, would pick up whole sibling parts
    // still queued behind it, and the largest part's end would wait for theirs.
    let largest = (0..labels.len()).max_by_key(|&i| (per_label[i].len(), std::cmp::Reverse(i)));
    let mut jobs: Vec<_> = labels.iter().zip(per_label).map(Some).collect();
    let first = largest.and_then(|i| jobs[i].take());
    let (first, mut surfaces) = rayon::join(
        || first.map(part),
        || {
            jobs.into_par_iter()
                .map(|job| job.map(part))
                .collect::<Vec<_>>()
        },
    );
    if let Some(i) = largest {
        surfaces[i] = first;
    }
    surfaces.into_iter().flatten().collect()
}

/// Joins lists gathered a run at a time (`runs[r][b]`: run r's items for bucket b) into one
/// list per bucket, in run order, buckets in parallel: the result does not depend on how the
/// runs were scheduled.
pub(crate) fn join_runs<T: Clone + Send + Sync>(
    runs: &[Vec<Vec<T>>],
    buckets: usize,
) -> Vec<Vec<T>> {
    (0..buckets)
        .into_par_iter()
        .map(|b| {
            let mut list = Vec::with_capacity(runs.iter().map(|r| r[b].len()).sum());
            for r in runs {
                list.extend_from_slice(&r[b]);
            }
            list
        })
        .collect()
}

/// The surface of one label (the ARCHITECTURE entry point).
pub fn label_to_mesh(
    map: &LabelMap,
    label: u16,
    params: &MeshingParams,
    ctx: &JobContext,
) -> Result<TriMesh, MeshingError> {
    let mut parts = label_surfaces(map, Some(&[label]), params, ctx)?;
    parts
        .pop()
        .map(|p| p.mesh)
        .ok_or(MeshingError::LabelNotPresent(label))
}

fn step(v: [i32; 3], axis: u8) -> [i32; 3] {
    let mut v = v;
    v[axis as usize] += 1;
    v
}

/// The eight labels of the cell behind each of a quad's vertices.
fn quad_cell_labels(grid: &surface_nets::Grid, q: &surface_nets::NetQuad) -> [[u16; 8]; 4] {
    q.cells().map(|c| {
        std::array::from_fn::<u16, 8, _>(|corner| {
            grid.at(
                c[0] as isize + (corner & 1) as isize,
                c[1] as isize + ((corner >> 1) & 1) as isize,
                c[2] as isize + ((corner >> 2) & 1) as isize,
            )
        })
    })
}

/// Which copy of each of `q`'s vertices the side of `label` (the voxel `voxel`) uses: the
/// face-connected group of that voxel among the label's voxels in the vertex's cell.
fn side_components(
    comps: &[[u8; 8]; 256],
    cells: &[[u16; 8]; 4],
    q: &surface_nets::NetQuad,
    label: u16,
    voxel: [i32; 3],
) -> [u8; 4] {
    let lowest = q.cells();
    std::array::from_fn(|m| {
        let mask = cells[m]
            .iter()
            .enumerate()
            .fold(0usize, |mask, (corner, &l)| {
                mask | (usize::from(l == label) << corner)
            });
        let c = lowest[m];
        let corner = (voxel[0] - c[0]) | ((voxel[1] - c[1]) << 1) | ((voxel[2] - c[2]) << 2);
        comps[mask][corner as usize & 7]
    })
}

/// Per net vertex, whether each label among its cell's eight voxels is one face-connected
/// group there, so no label needs a second copy of the vertex: the split then skips reading
/// the four cells of each quad, which is most of its work.
fn simple_cells(map: &LabelMap, cell_centres_voxel: &[[f32; 3]]) -> Vec<bool> {
    let dims = map.geometry().dims;
    let grid = surface_nets::Grid {
        labels: map.volume.data(),
        dims,
    };
    let comps = surface_nets::corner_components();
    cell_centres_voxel
        .par_iter()
        .map(|c| {
            // A cell's centre is its lowest corner voxel + 0.5 along each axis.
            let lo = c.map(|x| (x - 0.5).round() as isize);
            let l: [u16; 8] = std::array::from_fn(|corner| {
                grid.at(
                    lo[0] + (corner & 1) as isize,
                    lo[1] + ((corner >> 1) & 1) as isize,
                    lo[2] + ((corner >> 2) & 1) as isize,
                )
            });
            // The background is never a part: its groups do not matter.
            l.iter().all(|&label| {
                if label == 0 {
                    return true;
                }
                let mask = l.iter().enumerate().fold(0usize, |m, (corner, &x)| {
                    m | (usize::from(x == label) << corner)
                });
                comps[mask].iter().all(|&c| c == 0)
            })
        })
        .collect()
}

/// The vertex copies `tris` uses, renumbered from zero.
fn gather(pos: &[[f32; 3]], tris: Vec<[(u32, u8); 3]>) -> (Vec<[f32; 3]>, Vec<[u32; 3]>) {
    // Nearly every key is a vertex's first copy (component 0): a dense table for those, a
    // map for the few others.
    let mut first_copy = vec![u32::MAX; pos.len()];
    let mut other_copies: std::collections::HashMap<(u32, u8), u32> =
        std::collections::HashMap::new();
    let mut out = Vec::with_capacity(tris.len() / 2 + 3);
    let mut origin: Vec<u32> = Vec::with_capacity(tris.len() / 2 + 3);
    let tris: Vec<[u32; 3]> = tris
        .into_iter()
        .map(|t| {
            t.map(|key| {
                let mut add = || {
                    out.push(pos[key.0 as usize]);
                    origin.push(key.0);
                    out.len() as u32 - 1
                };
                if key.1 == 0 {
                    let slot = &mut first_copy[key.0 as usize];
                    if *slot == u32::MAX {
                        *slot = add();
                    }
                    *slot
                } else {
                    *other_copies.entry(key).or_insert_with(add)
                }
            })
        })
        .collect();
    separate_copies(&mut out, &origin, pos.len(), &tris);
    (out, tris)
}

/// Moves each copy of a split vertex a fifth of the way towards its own ring's centroid, so
/// readers that weld vertices by position (STL, trimesh, slicers) keep the sheets apart.
fn separate_copies(pos: &mut [[f32; 3]], origin: &[u32], source_count: usize, tris: &[[u32; 3]]) {
    let mut copies = vec![0u8; source_count];
    for &o in origin {
        copies[o as usize] = copies[o as usize].saturating_add(1);
    }
    let split: Vec<bool> = origin.iter().map(|&o| copies[o as usize] > 1).collect();
    if !split.iter().any(|&s| s) {
        return;
    }
    let mut sum = vec![[0.0f32; 4]; pos.len()];
    for t in tris {
        for k in 0..3 {
            let v = t[k] as usize;
            if !split[v] {
                continue;
            }
            for m in [t[(k + 1) % 3], t[(k + 2) % 3]] {
                let q = pos[m as usize];
                sum[v] = [
                    sum[v][0] + q[0],
                    sum[v][1] + q[1],
                    sum[v][2] + q[2],
                    sum[v][3] + 1.0,
                ];
            }
        }
    }
    for (v, s) in sum.iter().enumerate() {
        if split[v] && s[3] > 0.0 {
            for d in 0..3 {
                pos[v][d] += 0.2 * (s[d] / s[3] - pos[v][d]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split's shortcut (all four cells simple → every copy is the first) agrees with the
    /// full per-cell computation, on a label map full of voxels touching along edges and at
    /// corners only.
    #[test]
    fn simple_cells_shortcut_matches_the_full_component_lookup() {
        let g = VolumeGeometry::axis_aligned([14, 13, 12], [1.0; 3], [0.0; 3]).expect("grid");
        let labels = Volume::from_fn(g, |[i, j, k]| {
            let h = ((i * 73_856_093) ^ (j * 19_349_663) ^ (k * 83_492_791)) as u32;
            let h = h.wrapping_mul(2_654_435_761);
            [0u16, 0, 1, 2, 3][(h >> 16) as usize % 5]
        });
        let map = LabelMap::new(labels, crate::volume::LabelTable::new());
        let net = surface_nets::surface_net(&map.volume, &JobContext::detached()).expect("net");
        let simple = simple_cells(&map, &net.cell_centres_voxel);
        assert!(simple.iter().any(|&s| s) && simple.iter().any(|&s| !s));
        let grid = surface_nets::Grid {
            labels: map.volume.data(),
            dims: map.geometry().dims,
        };
        let comps = surface_nets::corner_components();
        let mut checked = 0;
        for q in &net.quads {
            if !q.v.iter().all(|&x| simple[x as usize]) {
                continue;
            }
            let cells = quad_cell_labels(&grid, q);
            for (label, voxel) in [(q.a, q.voxel), (q.b, step(q.voxel, q.axis))] {
                if label != 0 {
                    assert_eq!(side_components(comps, &cells, q, label, voxel), [0; 4]);
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked}");
    }
}
