//! Isosurface of a scalar volume: marching cubes over z-slabs in parallel.
//!
//! The volume is padded (virtually) with "outside" so a bright object touching the border is
//! still closed. Vertices live on grid edges and are shared between cubes through per-plane
//! index arrays, so the mesh is indexed and watertight straight out of extraction.

use super::mc_table::{case_table, EDGE_CORNERS};
use super::{finish_voxel_mesh, MeshingError};
use crate::jobs::JobContext;
use crate::volume::{TriMesh, Volume};
use rayon::prelude::*;

const NONE: u32 = u32::MAX;

/// Surface where the volume crosses `level` (e.g. 300 HU for bone). Inside is `value >= level`;
/// normals point towards lower values. NaN counts as outside.
pub fn isosurface(
    volume: &Volume<f32>,
    level: f32,
    ctx: &JobContext,
) -> Result<TriMesh, MeshingError> {
    let (positions_voxel, tris) = isosurface_voxel(volume, level, ctx)?;
    Ok(finish_voxel_mesh(volume.geometry(), positions_voxel, tris))
}

struct Slab {
    positions: Vec<[f32; 3]>,
    tris: Vec<[u32; 3]>,
    /// Vertices on the slab's first plane: the first `bottom_count` local ids, the same
    /// vertices (same order) as the previous slab's top plane.
    bottom_count: u32,
    /// Local ids `top_start..` are the vertices on the plane after the slab's last cell layer.
    top_start: u32,
}

/// Marching cubes in voxel index coordinates (`[i, j, k]` as f32); triangles wind so the
/// right-hand normal points from inside to outside in index space.
///
/// Flying-edges-style: each padded row records where its inside run starts and ends, and
/// every later loop (x/y/z edge vertices, cells) visits only that trimmed range, so the empty
/// and solid bulk of a CT costs one compare per voxel. Slabs of cell layers run in parallel;
/// a vertex on a slab boundary is made by both slabs in the same order and merged by position
/// in that order.
pub fn isosurface_voxel(
    volume: &Volume<f32>,
    level: f32,
    ctx: &JobContext,
) -> Result<(Vec<[f32; 3]>, Vec<[u32; 3]>), MeshingError> {
    let [nx, ny, nz] = volume.dims();
    // Padded grid: one outside layer on every side.
    let (px, py, pz) = (nx + 2, ny + 2, nz + 2);
    let cell_layers = pz - 1;
    let threads = rayon::current_num_threads().max(1);
    let slab_count = (threads * 4).min(cell_layers).max(1);
    let per = cell_layers.div_ceil(slab_count);
    let ranges: Vec<(usize, usize)> = (0..slab_count)
        .map(|s| (s * per, ((s + 1) * per).min(cell_layers)))
        .filter(|(a, b)| a < b)
        .collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let slabs: Vec<Slab> = ranges
        .par_iter()
        .map(|&(c0, c1)| {
            let slab = mc_slab(volume, level, (px, py), c0, c1, ctx)?;
            let d = done.fetch_add(c1 - c0, std::sync::atomic::Ordering::Relaxed) + (c1 - c0);
            ctx.set_steps(d, cell_layers);
            Ok(slab)
        })
        .collect::<Result<_, MeshingError>>()?;
    Ok(stitch_slabs(slabs))
}

/// Joins slabs: each slab's bottom-plane vertices are the previous slab's top-plane ones.
fn stitch_slabs(slabs: Vec<Slab>) -> (Vec<[f32; 3]>, Vec<[u32; 3]>) {
    // Global id of each slab's first own (non-bottom) vertex, and of its top plane's first.
    let mut base = Vec::with_capacity(slabs.len());
    let mut total_v = 0u32;
    for s in &slabs {
        base.push(total_v);
        total_v += s.positions.len() as u32 - s.bottom_count;
    }
    let total_t: usize = slabs.iter().map(|s| s.tris.len()).sum();
    let mut positions = Vec::with_capacity(total_v as usize);
    for s in &slabs {
        positions.extend_from_slice(&s.positions[s.bottom_count as usize..]);
    }
    let mut tris = vec![[0u32; 3]; total_t];
    let mut chunks: Vec<&mut [[u32; 3]]> = Vec::with_capacity(slabs.len());
    let mut rest = tris.as_mut_slice();
    for s in &slabs {
        let (head, tail) = rest.split_at_mut(s.tris.len());
        chunks.push(head);
        rest = tail;
    }
    chunks.into_par_iter().enumerate().for_each(|(n, out)| {
        let s = &slabs[n];
        let own = base[n].wrapping_sub(s.bottom_count);
        // Bottom vertices are the previous slab's top plane, in the same order.
        let below = if n > 0 {
            let p = &slabs[n - 1];
            base[n - 1] + p.top_start - p.bottom_count
        } else {
            0
        };
        let remap = |v: u32| {
            if v < s.bottom_count {
                below + v
            } else {
                own.wrapping_add(v)
            }
        };
        for (o, t) in out.iter_mut().zip(&s.tris) {
            *o = t.map(remap);
        }
    });
    (positions, tris)
}

/// Drops vertices no triangle uses (the duplicates left by stitching).
pub(crate) fn compact(
    positions: Vec<[f32; 3]>,
    mut tris: Vec<[u32; 3]>,
) -> (Vec<[f32; 3]>, Vec<[u32; 3]>) {
    let mut new_id = vec![NONE; positions.len()];
    for t in &tris {
        for &v in t {
            new_id[v as usize] = 0;
        }
    }
    let mut kept = Vec::with_capacity(positions.len());
    for (v, p) in positions.into_iter().enumerate() {
        if new_id[v] != NONE {
            new_id[v] = kept.len() as u32;
            kept.push(p);
        }
    }
    for t in &mut tris {
        *t = t.map(|v| new_id[v as usize]);
    }
    (kept, tris)
}

/// Row of a padded plane with no inside voxel.
const EMPTY_ROW: (u32, u32) = (u32::MAX, 0);

/// One padded plane: inside flags, and per row the x-edges `lo..=hi` that can cross (the
/// edge before the first inside voxel to the edge after the last), or [`EMPTY_ROW`].
struct Plane {
    kp: usize,
    inside: Vec<u8>,
    rows: Vec<(u32, u32)>,
    /// Vertex ids on this plane's crossing x- and y-edges (stale elsewhere: only crossing
    /// edges are ever looked up).
    xe: Vec<u32>,
    ye: Vec<u32>,
}

impl Plane {
    fn new(px: usize, py: usize) -> Self {
        let n = px * py;
        Self {
            kp: usize::MAX,
            inside: vec![0; n],
            rows: vec![EMPTY_ROW; py],
            xe: vec![NONE; n],
            ye: vec![NONE; n],
        }
    }
}

/// Fills `plane` with padded plane `kp` (0 and nz+1 are the outside padding).
fn load_plane(volume: &Volume<f32>, level: f32, kp: usize, px: usize, plane: &mut Plane) {
    let [nx, ny, nz] = volume.dims();
    plane.kp = kp;
    if kp == 0 || kp > nz {
        plane.rows.iter_mut().for_each(|r| *r = EMPTY_ROW);
        plane.inside.iter_mut().for_each(|v| *v = 0);
        return;
    }
    // A row marked empty holds only zero flags (the buffer is reused from an earlier plane),
    // so an empty row, most of a CT at a bone level, costs a count that vectorises and no
    // writes.
    let src = volume.slice_k(kp - 1);
    for j in 0..ny {
        let row = &src[j * nx..(j + 1) * nx];
        let o = (j + 1) * px + 1;
        let dst = &mut plane.inside[o..o + nx];
        let count: u32 = row.iter().map(|&v| u32::from(v >= level)).sum();
        let stale = std::mem::replace(&mut plane.rows[j + 1], EMPTY_ROW);
        if count == 0 {
            if stale != EMPTY_ROW {
                dst.iter_mut().for_each(|d| *d = 0);
            }
            continue;
        }
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = u8::from(v >= level);
        }
        let (first, last) = if count as usize == nx {
            (0, nx - 1)
        } else {
            let first = dst.iter().position(|&b| b != 0).unwrap_or(0);
            let last = dst.iter().rposition(|&b| b != 0).unwrap_or(nx - 1);
            (first, last)
        };
        // Padded x of voxel i is i + 1: edges from the one entering the first inside voxel to
        // the one leaving the last.
        plane.rows[j + 1] = (first as u32, last as u32 + 1);
    }
}

/// Value at padded coordinates; the padding is -inf (always outside).
#[inline]
fn value_at(volume: &Volume<f32>, ip: usize, jp: usize, kp: usize) -> f32 {
    let [nx, ny, nz] = volume.dims();
    if ip == 0 || jp == 0 || kp == 0 || ip > nx || jp > ny || kp > nz {
        f32::NEG_INFINITY
    } else {
        volume.data()[(ip - 1) + nx * ((jp - 1) + ny * (kp - 1))]
    }
}

#[inline]
fn interp(a: f32, b: f32, level: f32) -> f32 {
    let t = (level - a) / (b - a);
    if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.5
    }
}

/// Corners `lo..=hi` that can be inside in either of two rows (the union of their runs).
#[inline]
fn corner_span(a: (u32, u32), b: (u32, u32)) -> Option<(usize, usize)> {
    let lo = a.0.min(b.0);
    if lo == u32::MAX {
        return None;
    }
    Some((lo as usize + 1, a.1.max(b.1) as usize))
}

/// Creates the vertices on the crossing x- and y-edges of `plane`.
fn plane_edges(
    volume: &Volume<f32>,
    level: f32,
    px: usize,
    plane: &mut Plane,
    positions: &mut Vec<[f32; 3]>,
) {
    let kp = plane.kp;
    let z = kp as f32 - 1.0;
    let py = plane.rows.len();
    for jp in 0..py {
        let o = jp * px;
        let row = plane.rows[jp];
        if row != EMPTY_ROW {
            for ip in row.0 as usize..=row.1 as usize {
                if plane.inside[o + ip] != plane.inside[o + ip + 1] {
                    let t = interp(
                        value_at(volume, ip, jp, kp),
                        value_at(volume, ip + 1, jp, kp),
                        level,
                    );
                    plane.xe[o + ip] = positions.len() as u32;
                    positions.push([ip as f32 - 1.0 + t, jp as f32 - 1.0, z]);
                }
            }
        }
        if jp + 1 < py {
            if let Some((a, b)) = corner_span(row, plane.rows[jp + 1]) {
                for ip in a..=b {
                    if plane.inside[o + ip] != plane.inside[o + px + ip] {
                        let t = interp(
                            value_at(volume, ip, jp, kp),
                            value_at(volume, ip, jp + 1, kp),
                            level,
                        );
                        plane.ye[o + ip] = positions.len() as u32;
                        positions.push([ip as f32 - 1.0, jp as f32 - 1.0 + t, z]);
                    }
                }
            }
        }
    }
}

fn mc_slab(
    volume: &Volume<f32>,
    level: f32,
    (px, py): (usize, usize),
    c0: usize,
    c1: usize,
    ctx: &JobContext,
) -> Result<Slab, MeshingError> {
    let table = case_table();
    let n = px * py;
    // Per edge of a cube: id array and corner offset.
    let slots: [(u8, usize); 12] = std::array::from_fn(|e| {
        let (c, _) = EDGE_CORNERS[e];
        let (x, y, z) = (
            (c & 1) as usize,
            ((c >> 1) & 1) as usize,
            ((c >> 2) & 1) as u8,
        );
        let array = match e / 4 {
            0 => z,
            1 => 2 + z,
            _ => 4,
        };
        (array, x + y * px)
    });
    let mut positions = Vec::new();
    let mut tris = Vec::new();
    let (mut lo, mut hi) = (Plane::new(px, py), Plane::new(px, py));
    let mut ze = vec![NONE; n];
    load_plane(volume, level, c0, px, &mut lo);
    plane_edges(volume, level, px, &mut lo, &mut positions);
    let bottom_count = positions.len() as u32;
    let mut top_start = bottom_count;
    for kp in c0..c1 {
        ctx.check_cancelled()?;
        load_plane(volume, level, kp + 1, px, &mut hi);
        top_start = positions.len() as u32;
        plane_edges(volume, level, px, &mut hi, &mut positions);
        let z = kp as f32 - 1.0;
        // z-edges between the two planes.
        for jp in 0..py {
            let Some((a, b)) = corner_span(lo.rows[jp], hi.rows[jp]) else {
                continue;
            };
            let o = jp * px;
            for ip in a..=b {
                if lo.inside[o + ip] != hi.inside[o + ip] {
                    let t = interp(
                        value_at(volume, ip, jp, kp),
                        value_at(volume, ip, jp, kp + 1),
                        level,
                    );
                    ze[o + ip] = positions.len() as u32;
                    positions.push([ip as f32 - 1.0, jp as f32 - 1.0, z + t]);
                }
            }
        }
        // Cells: a cell row touches rows jp, jp+1 of both planes.
        for jp in 0..py - 1 {
            let four = [lo.rows[jp], lo.rows[jp + 1], hi.rows[jp], hi.rows[jp + 1]];
            let a = four.iter().map(|r| r.0).min().unwrap_or(u32::MAX);
            if a == u32::MAX {
                continue;
            }
            let b = four.iter().map(|r| r.1).max().unwrap_or(0) as usize;
            let o = jp * px;
            for ip in a as usize..=b.min(px - 2) {
                let c = o + ip;
                let case = (lo.inside[c]
                    | lo.inside[c + 1] << 1
                    | lo.inside[c + px] << 2
                    | lo.inside[c + px + 1] << 3
                    | hi.inside[c] << 4
                    | hi.inside[c + 1] << 5
                    | hi.inside[c + px] << 6
                    | hi.inside[c + px + 1] << 7) as usize;
                if case == 0 || case == 255 {
                    continue;
                }
                let id = |e: u8| -> u32 {
                    let (array, off) = slots[e as usize];
                    let at = c + off;
                    match array {
                        0 => lo.xe[at],
                        1 => hi.xe[at],
                        2 => lo.ye[at],
                        3 => hi.ye[at],
                        _ => ze[at],
                    }
                };
                for t in &table.triangles[case] {
                    tris.push(t.map(id));
                }
            }
        }
        std::mem::swap(&mut lo, &mut hi);
    }
    Ok(Slab {
        positions,
        tris,
        bottom_count,
        top_start,
    })
}
