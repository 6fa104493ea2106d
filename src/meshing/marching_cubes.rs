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
    /// Local vertex ids on the slab's first plane (x- then y-edges), or empty for slab 0.
    bottom: Vec<u32>,
    /// Local vertex ids on the plane after the slab's last cell layer.
    top: Vec<u32>,
}

/// Marching cubes in voxel index coordinates (`[i, j, k]` as f32); triangles wind so the
/// right-hand normal points from inside to outside in index space.
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
            let slab = mc_slab(volume, level, (px, py, pz), c0, c1, ctx)?;
            let d = done.fetch_add(c1 - c0, std::sync::atomic::Ordering::Relaxed) + (c1 - c0);
            ctx.set_steps(d, cell_layers);
            Ok(slab)
        })
        .collect::<Result<_, MeshingError>>()?;
    Ok(stitch_slabs(slabs))
}

/// Joins slabs: each slab's bottom-plane vertices are the previous slab's top-plane ones.
fn stitch_slabs(slabs: Vec<Slab>) -> (Vec<[f32; 3]>, Vec<[u32; 3]>) {
    let total_v: usize = slabs.iter().map(|s| s.positions.len()).sum();
    let total_t: usize = slabs.iter().map(|s| s.tris.len()).sum();
    let mut positions = Vec::with_capacity(total_v);
    let mut tris = Vec::with_capacity(total_t);
    let mut prev_top_global: Vec<u32> = Vec::new();
    for slab in slabs {
        let base = positions.len() as u32;
        let mut remap: Vec<u32> = (0..slab.positions.len() as u32).map(|v| v + base).collect();
        if !slab.bottom.is_empty() && prev_top_global.len() == slab.bottom.len() {
            for (slot, &local) in slab.bottom.iter().enumerate() {
                if local != NONE && prev_top_global[slot] != NONE {
                    remap[local as usize] = prev_top_global[slot];
                }
            }
        }
        prev_top_global = slab
            .top
            .iter()
            .map(|&l| if l == NONE { NONE } else { remap[l as usize] })
            .collect();
        positions.extend_from_slice(&slab.positions);
        tris.extend(slab.tris.iter().map(|t| t.map(|v| remap[v as usize])));
    }
    compact(positions, tris)
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

/// One padded plane: values (outside = -inf) and inside flags.
struct Plane {
    values: Vec<f32>,
    inside: Vec<u8>,
}

fn load_plane(
    volume: &Volume<f32>,
    level: f32,
    kp: usize,
    px: usize,
    py: usize,
    plane: &mut Plane,
) {
    let [nx, ny, nz] = volume.dims();
    plane.values.iter_mut().for_each(|v| *v = f32::NEG_INFINITY);
    plane.inside.iter_mut().for_each(|v| *v = 0);
    if kp == 0 || kp > nz {
        return;
    }
    let src = volume.slice_k(kp - 1);
    for j in 0..ny {
        let row = &src[j * nx..(j + 1) * nx];
        let o = (j + 1) * px + 1;
        plane.values[o..o + nx].copy_from_slice(row);
        for (dst, &v) in plane.inside[o..o + nx].iter_mut().zip(row) {
            *dst = (v >= level) as u8;
        }
    }
    let _ = py;
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

/// Creates vertices on the x- and y-edges of padded plane `kp`; ids go in `xe`, `ye`.
fn plane_edges(
    plane: &Plane,
    level: f32,
    kp: usize,
    px: usize,
    py: usize,
    xe: &mut [u32],
    ye: &mut [u32],
    positions: &mut Vec<[f32; 3]>,
) {
    xe.iter_mut().for_each(|v| *v = NONE);
    ye.iter_mut().for_each(|v| *v = NONE);
    let z = kp as f32 - 1.0;
    for jp in 0..py {
        for ip in 0..px {
            let o = jp * px + ip;
            let a = plane.inside[o];
            if ip + 1 < px && plane.inside[o + 1] != a {
                let t = interp(plane.values[o], plane.values[o + 1], level);
                xe[o] = positions.len() as u32;
                positions.push([ip as f32 - 1.0 + t, jp as f32 - 1.0, z]);
            }
            if jp + 1 < py && plane.inside[o + px] != a {
                let t = interp(plane.values[o], plane.values[o + px], level);
                ye[o] = positions.len() as u32;
                positions.push([ip as f32 - 1.0, jp as f32 - 1.0 + t, z]);
            }
        }
    }
}

fn mc_slab(
    volume: &Volume<f32>,
    level: f32,
    (px, py, _pz): (usize, usize, usize),
    c0: usize,
    c1: usize,
    ctx: &JobContext,
) -> Result<Slab, MeshingError> {
    let table = case_table();
    let n = px * py;
    let mut positions = Vec::new();
    let mut tris = Vec::new();
    let new_plane = || Plane {
        values: vec![0.0; n],
        inside: vec![0; n],
    };
    let (mut lo, mut hi) = (new_plane(), new_plane());
    let (mut xlo, mut ylo) = (vec![NONE; n], vec![NONE; n]);
    let (mut xhi, mut yhi) = (vec![NONE; n], vec![NONE; n]);
    let mut ze = vec![NONE; n];
    load_plane(volume, level, c0, px, py, &mut lo);
    plane_edges(&lo, level, c0, px, py, &mut xlo, &mut ylo, &mut positions);
    let bottom = if c0 > 0 {
        let mut b = xlo.clone();
        b.extend_from_slice(&ylo);
        b
    } else {
        Vec::new()
    };
    for kp in c0..c1 {
        ctx.check_cancelled()?;
        load_plane(volume, level, kp + 1, px, py, &mut hi);
        plane_edges(
            &hi,
            level,
            kp + 1,
            px,
            py,
            &mut xhi,
            &mut yhi,
            &mut positions,
        );
        let z = kp as f32 - 1.0;
        for o in 0..n {
            ze[o] = NONE;
            if lo.inside[o] != hi.inside[o] {
                let t = interp(lo.values[o], hi.values[o], level);
                ze[o] = positions.len() as u32;
                let (ip, jp) = (o % px, o / px);
                positions.push([ip as f32 - 1.0, jp as f32 - 1.0, z + t]);
            }
        }
        for jp in 0..py - 1 {
            for ip in 0..px - 1 {
                let o = jp * px + ip;
                let case = (lo.inside[o]
                    | lo.inside[o + 1] << 1
                    | lo.inside[o + px] << 2
                    | lo.inside[o + px + 1] << 3
                    | hi.inside[o] << 4
                    | hi.inside[o + 1] << 5
                    | hi.inside[o + px] << 6
                    | hi.inside[o + px + 1] << 7) as usize;
                if case == 0 || case == 255 {
                    continue;
                }
                let edge_id = |e: u8| -> u32 {
                    let (c, _) = EDGE_CORNERS[e as usize];
                    let (x, y, zb) = ((c & 1) as usize, ((c >> 1) & 1) as usize, (c >> 2) & 1);
                    let at = o + x + y * px;
                    match e / 4 {
                        0 => {
                            if zb == 0 {
                                xlo[at]
                            } else {
                                xhi[at]
                            }
                        }
                        1 => {
                            if zb == 0 {
                                ylo[at]
                            } else {
                                yhi[at]
                            }
                        }
                        _ => ze[at],
                    }
                };
                for t in &table.triangles[case] {
                    tris.push(t.map(edge_id));
                }
            }
        }
        std::mem::swap(&mut lo, &mut hi);
        std::mem::swap(&mut xlo, &mut xhi);
        std::mem::swap(&mut ylo, &mut yhi);
    }
    let mut top = xlo;
    top.extend_from_slice(&ylo);
    Ok(Slab {
        positions,
        tris,
        bottom,
        top,
    })
}
