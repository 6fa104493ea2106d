//! Taubin λ/μ smoothing: a shrinking step then an inflating one, so a sphere keeps its
//! volume, optionally clamped to a box around each vertex's anchor (its voxel cell or its
//! extracted position) so the smoothed surface stays true to the segmentation.

use super::MeshingError;
use crate::jobs::JobContext;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SmoothParams {
    /// λ/μ pairs.
    pub iterations: usize,
    pub lambda: f32,
    pub mu: f32,
    /// Largest move from the anchor along each grid axis, in voxels; `None` = unconstrained.
    pub max_offset_voxels: Option<f32>,
}

impl Default for SmoothParams {
    fn default() -> Self {
        // Pass band k_pb = 1/λ + 1/μ ≈ 0.1 (Taubin 1995): removes the voxel staircase only.
        Self {
            iterations: 15,
            lambda: 0.5,
            mu: -0.53,
            max_offset_voxels: Some(0.5),
        }
    }
}

/// Vertex neighbours in compressed rows.
pub struct Adjacency {
    pub start: Vec<u32>,
    pub neighbours: Vec<u32>,
}

impl Adjacency {
    /// From polygon loops (triangles or quads): each consecutive pair is an edge.
    pub fn from_polygons<const N: usize>(vertex_count: usize, polys: &[[u32; N]]) -> Self {
        // Bucket both directions of every edge by vertex (a counting sort), then sort and
        // dedup each short row: linear, where sorting all edge pairs at once is not.
        let mut start = vec![0u32; vertex_count + 1];
        for p in polys {
            for &v in p {
                start[v as usize + 1] += 2;
            }
        }
        for v in 0..vertex_count {
            start[v + 1] += start[v];
        }
        let mut fill: Vec<u32> = start[..vertex_count].to_vec();
        let mut all = vec![0u32; start[vertex_count] as usize];
        for p in polys {
            for k in 0..N {
                let (a, b) = (p[k], p[(k + 1) % N]);
                all[fill[a as usize] as usize] = b;
                fill[a as usize] += 1;
                all[fill[b as usize] as usize] = a;
                fill[b as usize] += 1;
            }
        }
        drop(fill);
        // Rows sorted and deduplicated in place, chunks of rows in parallel; then packed.
        const CHUNK: usize = 8192;
        let bounds: Vec<usize> = (0..vertex_count.div_ceil(CHUNK))
            .map(|c| start[c * CHUNK] as usize)
            .chain(std::iter::once(all.len()))
            .collect();
        let mut slices: Vec<&mut [u32]> = Vec::with_capacity(bounds.len());
        let mut rest: &mut [u32] = &mut all;
        for w in bounds.windows(2) {
            let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(w[1] - w[0]);
            slices.push(chunk);
            rest = tail;
        }
        let row_lens: Vec<Vec<u32>> = slices
            .into_par_iter()
            .enumerate()
            .map(|(c, chunk)| {
                let base = start[c * CHUNK] as usize;
                let end = ((c + 1) * CHUNK).min(vertex_count);
                let mut lens = Vec::with_capacity(end - c * CHUNK);
                for v in c * CHUNK..end {
                    let row = &mut chunk[start[v] as usize - base..start[v + 1] as usize - base];
                    row.sort_unstable();
                    let mut kept = 0;
                    for i in 0..row.len() {
                        if i == 0 || row[i] != row[kept - 1] {
                            row[kept] = row[i];
                            kept += 1;
                        }
                    }
                    lens.push(kept as u32);
                }
                lens
            })
            .collect();
        let mut neighbours = Vec::with_capacity(all.len() / 2);
        let mut compact_start = Vec::with_capacity(vertex_count + 1);
        compact_start.push(0u32);
        for (v, &kept) in row_lens.iter().flatten().enumerate() {
            let s = start[v] as usize;
            neighbours.extend_from_slice(&all[s..s + kept as usize]);
            compact_start.push(neighbours.len() as u32);
        }
        Self {
            start: compact_start,
            neighbours,
        }
    }

    pub fn of(&self, v: usize) -> &[u32] {
        &self.neighbours[self.start[v] as usize..self.start[v + 1] as usize]
    }
}

/// Smooths `positions` in place. `anchors` and `spacing_mm` define the constraint box:
/// `|p - anchor|` per axis at most `max_offset_voxels * spacing_mm[axis]`. Positions must be in
/// an isotropic frame (grid index × spacing) for the box to be axis-aligned.
pub fn taubin(
    positions: &mut [[f32; 3]],
    adjacency: &Adjacency,
    anchors: Option<(&[[f32; 3]], [f32; 3])>,
    params: &SmoothParams,
    ctx: &JobContext,
) -> Result<(), MeshingError> {
    // Four lanes per point (the last one zero): a neighbour's point is one 16-byte load and
    // the sums, the step and the clamp are vector operations, where three lanes took a
    // load and an add per axis. Each lane's arithmetic is the same as with three, so the
    // result is the same to the bit.
    let widen = |p: &[f32; 3]| [p[0], p[1], p[2], 0.0];
    let mut cur: Vec<[f32; 4]> = positions.par_iter().map(widen).collect();
    let mut next = cur.clone();
    let limit: Option<(Vec<[f32; 4]>, [f32; 4])> = anchors.and_then(|(a, spacing)| {
        params.max_offset_voxels.map(|m| {
            let half = spacing.map(|s| s * m);
            (
                a.par_iter().map(widen).collect(),
                [half[0], half[1], half[2], 0.0],
            )
        })
    });
    // Chunks of vertices per task, not one vertex each: the loop body is a few adds, so
    // per-item scheduling would cost as much as the work.
    const CHUNK: usize = 4096;
    let step = |from: &[[f32; 4]], to: &mut [[f32; 4]], factor: f32| {
        to.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            for (i, out) in out.iter_mut().enumerate() {
                let v = c * CHUNK + i;
                let nb = adjacency.of(v);
                let p = from[v];
                if nb.is_empty() {
                    *out = p;
                    continue;
                }
                let mut avg = [0.0f32; 4];
                for &n in nb {
                    let q = from[n as usize];
                    for d in 0..4 {
                        avg[d] += q[d];
                    }
                }
                let w = factor / nb.len() as f32;
                let mut r = [0.0f32; 4];
                for d in 0..4 {
                    r[d] = p[d] + (avg[d] * w - factor * p[d]);
                }
                if let Some((anchor, half)) = &limit {
                    let a = anchor[v];
                    // max then min, as `clamp` does, without its check that lo <= hi
                    // (half is never negative).
                    for d in 0..4 {
                        r[d] = r[d].max(a[d] - half[d]).min(a[d] + half[d]);
                    }
                }
                *out = r;
            }
        });
    };
    for it in 0..params.iterations {
        ctx.check_cancelled()?;
        ctx.set_steps(it, params.iterations);
        // λ into the scratch buffer, μ back: no copy between steps.
        step(&cur, &mut next, params.lambda);
        step(&next, &mut cur, params.mu);
    }
    positions
        .par_iter_mut()
        .zip(cur.par_iter())
        .for_each(|(p, c)| *p = [c[0], c[1], c[2]]);
    ctx.set_progress(1.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook step, three lanes and `clamp`: what the four-lane loop must equal.
    fn reference(
        positions: &mut [[f32; 3]],
        adjacency: &Adjacency,
        anchors: &[[f32; 3]],
        half: [f32; 3],
        params: &SmoothParams,
    ) {
        for _ in 0..params.iterations {
            for factor in [params.lambda, params.mu] {
                let from = positions.to_vec();
                for (v, out) in positions.iter_mut().enumerate() {
                    let nb = adjacency.of(v);
                    if nb.is_empty() {
                        continue;
                    }
                    let p = from[v];
                    let mut avg = [0.0f32; 3];
                    for &n in nb {
                        for d in 0..3 {
                            avg[d] += from[n as usize][d];
                        }
                    }
                    let w = factor / nb.len() as f32;
                    for d in 0..3 {
                        let r = p[d] + (avg[d] * w - factor * p[d]);
                        out[d] = r.clamp(anchors[v][d] - half[d], anchors[v][d] + half[d]);
                    }
                }
            }
        }
    }

    #[test]
    fn four_lane_steps_equal_the_plain_step_to_the_bit() {
        // A bumpy grid surface (quads), anchors at the unsmoothed points, a box small enough
        // that the clamp binds for some vertices and not others; one isolated vertex.
        let side = 40u32;
        let mut positions: Vec<[f32; 3]> = (0..side * side)
            .map(|i| {
                let (x, y) = ((i % side) as f32, (i / side) as f32);
                [
                    x * 0.9,
                    y * 1.1,
                    (i * 7919 % 13) as f32 * 0.1 + (x * 0.3).sin() * 2.0,
                ]
            })
            .collect();
        positions.push([5.0, 5.0, 5.0]);
        let quads: Vec<[u32; 4]> = (0..side - 1)
            .flat_map(|y| {
                (0..side - 1).map(move |x| {
                    let i = y * side + x;
                    [i, i + 1, i + side + 1, i + side]
                })
            })
            .collect();
        let adjacency = Adjacency::from_polygons(positions.len(), &quads);
        let anchors = positions.clone();
        let spacing = [0.9, 1.1, 1.0];
        let params = SmoothParams {
            max_offset_voxels: Some(0.3),
            ..SmoothParams::default()
        };
        let mut expected = positions.clone();
        reference(
            &mut expected,
            &adjacency,
            &anchors,
            spacing.map(|s| s * 0.3),
            &params,
        );
        let mut got = positions.clone();
        taubin(
            &mut got,
            &adjacency,
            Some((&anchors, spacing)),
            &params,
            &JobContext::detached(),
        )
        .expect("smooths");
        // The box matters: without it, many vertices end elsewhere.
        let mut free = positions.clone();
        reference(&mut free, &adjacency, &anchors, [f32::INFINITY; 3], &params);
        let clamped = free.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert!(clamped > 100, "{clamped} vertices moved by the box");
        assert_eq!(got, expected);
        assert_eq!(got[positions.len() - 1], [5.0, 5.0, 5.0]);
    }
}
