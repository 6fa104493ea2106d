//! All labels of a label map in one pass: surface nets (one vertex per boundary cell, one quad
//! per pair of face-adjacent voxels with different labels), after VTK's vtkSurfaceNets3D.
//!
//! Two touching labels use the very same quads and vertices for their shared wall, so the
//! parts fit together with no gap and no overlap.

use super::MeshingError;
use crate::jobs::JobContext;
use crate::volume::Volume;
use rayon::prelude::*;

const NONE: u32 = u32::MAX;

/// One quad of the shared net, wound so its normal points from label `a` to label `b`.
#[derive(Debug, Clone, Copy)]
pub struct NetQuad {
    pub v: [u32; 4],
    pub a: u16,
    pub b: u16,
    /// Voxel holding label `a`; label `b` is its neighbour one step along `axis`.
    pub voxel: [i32; 3],
    pub axis: u8,
}

impl NetQuad {
    /// Lowest-corner voxel of the cell behind each of `v`.
    pub fn cells(&self) -> [[i32; 3]; 4] {
        let [i, j, k] = self.voxel;
        match self.axis {
            0 => [[i, j - 1, k - 1], [i, j, k - 1], [i, j, k], [i, j - 1, k]],
            1 => [[i - 1, j, k - 1], [i - 1, j, k], [i, j, k], [i, j, k - 1]],
            _ => [[i - 1, j - 1, k], [i, j - 1, k], [i, j, k], [i - 1, j, k]],
        }
    }
}

/// For each 2×2×2 occupancy mask, the face-connected component of each corner.
pub fn corner_components() -> &'static [[u8; 8]; 256] {
    static TABLE: std::sync::OnceLock<[[u8; 8]; 256]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[0u8; 8]; 256];
        for (mask, row) in t.iter_mut().enumerate() {
            let mut comp = [u8::MAX; 8];
            let mut next = 0;
            for start in 0..8 {
                if mask & (1 << start) == 0 || comp[start] != u8::MAX {
                    continue;
                }
                let mut stack = vec![start];
                comp[start] = next;
                while let Some(c) = stack.pop() {
                    for bit in 0..3 {
                        let n = c ^ (1 << bit);
                        if mask & (1 << n) != 0 && comp[n] == u8::MAX {
                            comp[n] = next;
                            stack.push(n);
                        }
                    }
                }
                next += 1;
            }
            *row = comp.map(|c| if c == u8::MAX { 0 } else { c });
        }
        t
    })
}

/// The multi-label net in voxel index coordinates.
#[derive(Debug, Clone, Default)]
pub struct SurfaceNet {
    pub positions_voxel: Vec<[f32; 3]>,
    /// Centre of each vertex's cell: the anchor the smoothing constraint measures from.
    pub cell_centres_voxel: Vec<[f32; 3]>,
    pub quads: Vec<NetQuad>,
}

pub(crate) struct Grid<'a> {
    pub(crate) labels: &'a [u16],
    pub(crate) dims: [usize; 3],
}

impl Grid<'_> {
    #[inline]
    pub(crate) fn at(&self, i: isize, j: isize, k: isize) -> u16 {
        let [nx, ny, nz] = self.dims;
        if i < 0 || j < 0 || k < 0 || i >= nx as isize || j >= ny as isize || k >= nz as isize {
            0
        } else {
            self.labels[i as usize + nx * (j as usize + ny * k as usize)]
        }
    }
}

/// Builds the net. Cells are indexed by their lowest corner voxel, from -1 to n-1 per axis,
/// so objects touching the border are closed by the implicit background outside.
pub fn surface_net(labels: &Volume<u16>, ctx: &JobContext) -> Result<SurfaceNet, MeshingError> {
    let dims = labels.dims();
    let [nx, ny, nz] = dims;
    let grid = Grid {
        labels: labels.data(),
        dims,
    };
    let (cx, cy) = (nx + 1, ny + 1);
    ctx.set_stage("Surface nets: vertices");
    // Pass 1: active cells per layer (sorted by in-layer index) and their starting positions.
    let layers: Vec<(Vec<u32>, Vec<[f32; 3]>)> = (0..nz + 1)
        .into_par_iter()
        .map(|cz| {
            let ck = cz as isize - 1;
            let mut cells = Vec::new();
            let mut pos = Vec::new();
            for cjp in 0..cy {
                let cj = cjp as isize - 1;
                let interior_row =
                    cj >= 0 && ck >= 0 && (cj as usize) + 1 < ny && (ck as usize) + 1 < nz;
                let mut cip = 0;
                while cip < cx {
                    // Skip runs of cells whose eight corners all hold one label: most of a
                    // label map is the inside of one structure or background.
                    if interior_row && cip >= 1 && cip + SKIP_RUN < cx - 1 {
                        let o = (cip - 1) + nx * (cj as usize + ny * ck as usize);
                        if corners_uniform(grid.labels, o, nx, nx * ny) {
                            cip += SKIP_RUN;
                            continue;
                        }
                    }
                    let ci = cip as isize - 1;
                    cip += 1;
                    let cip = cip - 1;
                    let interior = ci >= 0
                        && cj >= 0
                        && ck >= 0
                        && (ci as usize) + 1 < nx
                        && (cj as usize) + 1 < ny
                        && (ck as usize) + 1 < nz;
                    let mut l = [0u16; 8];
                    if interior {
                        // Fast path without bounds checks per corner: most cells are uniform.
                        let o = ci as usize + nx * (cj as usize + ny * ck as usize);
                        let (sx, sy) = (nx, nx * ny);
                        let d = grid.labels;
                        let first = d[o];
                        if d[o + 1] == first
                            && d[o + sx] == first
                            && d[o + sx + 1] == first
                            && d[o + sy] == first
                            && d[o + sy + 1] == first
                            && d[o + sy + sx] == first
                            && d[o + sy + sx + 1] == first
                        {
                            continue;
                        }
                        l = [
                            first,
                            d[o + 1],
                            d[o + sx],
                            d[o + sx + 1],
                            d[o + sy],
                            d[o + sy + 1],
                            d[o + sy + sx],
                            d[o + sy + sx + 1],
                        ];
                    } else {
                        for (c, slot) in l.iter_mut().enumerate() {
                            *slot = grid.at(
                                ci + (c & 1) as isize,
                                cj + ((c >> 1) & 1) as isize,
                                ck + ((c >> 2) & 1) as isize,
                            );
                        }
                        if l.iter().all(|&x| x == l[0]) {
                            continue;
                        }
                    }
                    let mut sum = [0.0f32; 3];
                    let mut count = 0.0f32;
                    for &(c0, c1) in super::mc_table::EDGE_CORNERS.iter() {
                        if l[c0 as usize] != l[c1 as usize] {
                            let m = |c: u8, b: u8| ((c >> b) & 1) as f32;
                            for d in 0..3u8 {
                                sum[d as usize] += 0.5 * (m(c0, d) + m(c1, d));
                            }
                            count += 1.0;
                        }
                    }
                    cells.push((cip + cx * cjp) as u32);
                    pos.push([
                        ci as f32 + sum[0] / count,
                        cj as f32 + sum[1] / count,
                        ck as f32 + sum[2] / count,
                    ]);
                }
            }
            (cells, pos)
        })
        .collect();
    ctx.check_cancelled()?;
    ctx.set_progress(0.4);
    let mut offsets = Vec::with_capacity(layers.len() + 1);
    offsets.push(0u32);
    for (c, _) in &layers {
        let last = *offsets.last().unwrap_or(&0);
        offsets.push(last + c.len() as u32);
    }
    ctx.set_stage("Surface nets: faces");
    // Pass 2: quads. Task t handles x/y pairs in voxel plane k = t-1 and z pairs (k, k+1);
    // those use cell layers t-1 and t (padded numbering).
    let net_quads = |t: usize, below: &[u32], here: &[u32]| -> Result<Vec<NetQuad>, MeshingError> {
        let k = t as isize - 1;
        // Cell id at voxel-corner coordinates (ci, cj) in cell layer ck ∈ {k-1, k}.
        let id = |ci: isize, cj: isize, ck: isize| -> u32 {
            let layer = if ck == k { here } else { below };
            layer[(ci + 1) as usize + cx * (cj + 1) as usize]
        };
        let mut quads = Vec::new();
        let mut push = |v: [u32; 4], a: u16, b: u16, voxel: [isize; 3], axis: u8| {
            if v.iter().all(|&x| x != NONE) {
                quads.push(NetQuad {
                    v,
                    a,
                    b,
                    voxel: voxel.map(|x| x as i32),
                    axis,
                });
            }
        };
        for j in -1..ny as isize {
            let interior_row = j >= 0 && k >= 0 && (j as usize) + 1 < ny && (k as usize) + 1 < nz;
            let mut i = -1isize;
            while i < nx as isize {
                if interior_row && i >= 0 && (i as usize) + SKIP_RUN < nx - 1 {
                    let o = i as usize + nx * (j as usize + ny * k as usize);
                    if faces_uniform(grid.labels, o, nx, nx * ny) {
                        i += SKIP_RUN as isize;
                        continue;
                    }
                }
                let here_label = grid.at(i, j, k);
                i += 1;
                let i = i - 1;
                if i >= 0
                    && j >= 0
                    && k >= 0
                    && (i as usize) + 1 < nx
                    && (j as usize) + 1 < ny
                    && (k as usize) + 1 < nz
                {
                    let o = i as usize + nx * (j as usize + ny * k as usize);
                    let d = grid.labels;
                    if d[o + 1] == here_label
                        && d[o + nx] == here_label
                        && d[o + nx * ny] == here_label
                    {
                        continue;
                    }
                }
                if k >= 0 && j >= 0 {
                    let right = grid.at(i + 1, j, k);
                    if right != here_label {
                        push(
                            [
                                id(i, j - 1, k - 1),
                                id(i, j, k - 1),
                                id(i, j, k),
                                id(i, j - 1, k),
                            ],
                            here_label,
                            right,
                            [i, j, k],
                            0,
                        );
                    }
                }
                if k >= 0 && i >= 0 {
                    let up = grid.at(i, j + 1, k);
                    if up != here_label {
                        push(
                            [
                                id(i - 1, j, k - 1),
                                id(i - 1, j, k),
                                id(i, j, k),
                                id(i, j, k - 1),
                            ],
                            here_label,
                            up,
                            [i, j, k],
                            1,
                        );
                    }
                }
                if i >= 0 && j >= 0 {
                    let next = grid.at(i, j, k + 1);
                    if next != here_label {
                        push(
                            [
                                id(i - 1, j - 1, k),
                                id(i, j - 1, k),
                                id(i, j, k),
                                id(i - 1, j, k),
                            ],
                            here_label,
                            next,
                            [i, j, k],
                            2,
                        );
                    }
                }
            }
        }
        Ok(quads)
    };
    let quad_lists: Vec<Vec<NetQuad>> = (0..nz + 1)
        .into_par_iter()
        .map_init(
            || (vec![NONE; cx * cy], vec![NONE; cx * cy]),
            |(below, here), t| -> Result<Vec<NetQuad>, MeshingError> {
                if t % 16 == 0 {
                    ctx.check_cancelled()?;
                }
                let below_layer = t.checked_sub(1).map(|l| (&layers[l].0, offsets[l]));
                let here_layer = Some((&layers[t].0, offsets[t]));
                fill_ids(below, below_layer);
                fill_ids(here, here_layer);
                let quads = net_quads(t, below, here)?;
                // Reset only the entries set, not whole planes.
                clear_ids(below, below_layer);
                clear_ids(here, here_layer);
                Ok(quads)
            },
        )
        .collect::<Result<_, MeshingError>>()?;
    ctx.set_progress(0.9);
    let total = *offsets.last().unwrap_or(&0) as usize;
    let mut positions_voxel = Vec::with_capacity(total);
    let mut cell_centres_voxel = Vec::with_capacity(total);
    for (layer, (cells, pos)) in layers.iter().enumerate() {
        positions_voxel.extend_from_slice(pos);
        for &c in cells {
            let c = c as usize;
            cell_centres_voxel.push([
                (c % cx) as f32 - 0.5,
                (c / cx) as f32 - 0.5,
                layer as f32 - 0.5,
            ]);
        }
    }
    let quads = quad_lists.into_iter().flatten().collect();
    ctx.set_progress(1.0);
    Ok(SurfaceNet {
        positions_voxel,
        cell_centres_voxel,
        quads,
    })
}

/// Cells per skipped run; uniformity is checked over `SKIP_RUN + 1` voxels along x.
const SKIP_RUN: usize = 32;

/// Whether the `SKIP_RUN` cells starting at voxel `o` (their lowest corners) see one label at
/// all eight corners. Written branch-free so it vectorises.
#[inline]
fn corners_uniform(d: &[u16], o: usize, sx: usize, sy: usize) -> bool {
    let v = d[o];
    let n = SKIP_RUN + 1;
    let (r0, r1, r2, r3) = (
        &d[o..o + n],
        &d[o + sx..o + sx + n],
        &d[o + sy..o + sy + n],
        &d[o + sy + sx..o + sy + sx + n],
    );
    let mut diff = 0u16;
    for i in 0..n {
        diff |= (r0[i] ^ v) | (r1[i] ^ v) | (r2[i] ^ v) | (r3[i] ^ v);
    }
    diff == 0
}

/// Whether none of the `SKIP_RUN` voxels starting at `o` differs from its +x, +y or +z
/// neighbour (so none of them has a face on the net).
#[inline]
fn faces_uniform(d: &[u16], o: usize, sx: usize, sy: usize) -> bool {
    let n = SKIP_RUN;
    let (r, rx, ry, rz) = (
        &d[o..o + n],
        &d[o + 1..o + 1 + n],
        &d[o + sx..o + sx + n],
        &d[o + sy..o + sy + n],
    );
    let mut diff = 0u16;
    for i in 0..n {
        diff |= (r[i] ^ rx[i]) | (r[i] ^ ry[i]) | (r[i] ^ rz[i]);
    }
    diff == 0
}

fn clear_ids(dense: &mut [u32], layer: Option<(&Vec<u32>, u32)>) {
    if let Some((cells, _)) = layer {
        for &c in cells {
            dense[c as usize] = NONE;
        }
    }
}

/// Sets the net vertex id of each active cell of a layer (the rest must already be NONE).
fn fill_ids(dense: &mut [u32], layer: Option<(&Vec<u32>, u32)>) {
    if let Some((cells, offset)) = layer {
        for (n, &c) in cells.iter().enumerate() {
            dense[c as usize] = offset + n as u32;
        }
    }
}
