//! Exact Euclidean distance transform in millimetres (Felzenszwalb & Huttenlocher 2012):
//! three separable passes of a 1D lower-envelope-of-parabolas transform, each scaled by the
//! grid's spacing along that axis, parallel over lines.
//!
//! Morphology with spherical kernels (dilate/erode by r mm = compare a distance with r) and
//! surface-distance metrics both reduce to this, which is why they are exact and cost the same
//! whatever the radius.

use super::Mask;
use crate::volume::Volume;
use rayon::prelude::*;

/// Squared distance (mm²) from each voxel centre to the nearest voxel centre of the mask's
/// foreground; `0` on the foreground, `f32::INFINITY` everywhere when the mask is empty.
pub fn squared_distance_to_foreground_mm2(mask: &Mask) -> Volume<f32> {
    squared_distance_to(mask, true)
}

/// Squared distance (mm²) from each voxel to the nearest background voxel; `0` on the
/// background. Voxels beyond the grid do not count as background.
pub fn squared_distance_to_background_mm2(mask: &Mask) -> Volume<f32> {
    squared_distance_to(mask, false)
}

fn squared_distance_to(mask: &Mask, to_foreground: bool) -> Volume<f32> {
    let mut out = mask.map(|v| {
        if (v != 0) == to_foreground {
            0.0f32
        } else {
            f32::INFINITY
        }
    });
    squared_edt_in_place(&mut out);
    out
}

/// Transforms a field of `0` (sites) and `∞` (elsewhere), or any non-negative initial costs,
/// into squared distances in mm² along all three axes.
pub fn squared_edt_in_place(field: &mut Volume<f32>) {
    let [nx, ny, nz] = field.dims();
    let s = field.geometry().spacing_mm;
    let data = field.data_mut();
    // i: rows are contiguous.
    data.par_chunks_mut(nx)
        .for_each_init(LineScratch::default, |scratch, row| {
            scratch.transform(row, 1, nx, s[0]);
        });
    // j: within each contiguous slice, columns have stride nx.
    if ny > 1 {
        data.par_chunks_mut(nx * ny)
            .for_each_init(LineScratch::default, |scratch, slice| {
                for i in 0..nx {
                    scratch.transform(&mut slice[i..], nx, ny, s[1]);
                }
            });
    }
    // k: gather each (i, k) plane (one per j) so the strided pass stays in cache, then scatter.
    if nz > 1 {
        let planes: Vec<Vec<f32>> = (0..ny)
            .into_par_iter()
            .map_init(LineScratch::default, |scratch, j| {
                let mut plane = vec![0f32; nx * nz];
                for k in 0..nz {
                    let row = (j + ny * k) * nx;
                    plane[k * nx..(k + 1) * nx].copy_from_slice(&data[row..row + nx]);
                }
                for i in 0..nx {
                    scratch.transform(&mut plane[i..], nx, nz, s[2]);
                }
                plane
            })
            .collect();
        data.par_chunks_mut(nx * ny)
            .enumerate()
            .for_each(|(k, slice)| {
                for (j, plane) in planes.iter().enumerate() {
                    slice[j * nx..(j + 1) * nx].copy_from_slice(&plane[k * nx..(k + 1) * nx]);
                }
            });
    }
}

/// Buffers for one line, reused across lines by each worker.
#[derive(Default)]
struct LineScratch {
    f: Vec<f64>,
    sites: Vec<usize>,
    bounds: Vec<f64>,
}

impl LineScratch {
    /// 1D squared-distance transform of the `n` values `line[0], line[stride], …` in place.
    fn transform(&mut self, line: &mut [f32], stride: usize, n: usize, spacing: f64) {
        self.f.clear();
        self.f.extend((0..n).map(|q| line[q * stride] as f64));
        self.sites.clear();
        self.bounds.clear();
        let f = &self.f;
        let pos = |q: usize| q as f64 * spacing;
        for q in 0..n {
            if !f[q].is_finite() {
                continue;
            }
            loop {
                let Some(&v) = self.sites.last() else {
                    self.sites.push(q);
                    self.bounds.push(f64::NEG_INFINITY);
                    break;
                };
                // Where the parabola of q overtakes that of v.
                let x = ((f[q] + pos(q) * pos(q)) - (f[v] + pos(v) * pos(v)))
                    / (2.0 * (pos(q) - pos(v)));
                if x <= *self.bounds.last().unwrap_or(&f64::NEG_INFINITY) {
                    self.sites.pop();
                    self.bounds.pop();
                } else {
                    self.sites.push(q);
                    self.bounds.push(x);
                    break;
                }
            }
        }
        if self.sites.is_empty() {
            return; // no site on this line: everything stays as it was (∞)
        }
        let mut s = 0;
        for q in 0..n {
            let x = pos(q);
            while s + 1 < self.sites.len() && self.bounds[s + 1] < x {
                s += 1;
            }
            let v = self.sites[s];
            let d = x - pos(v);
            line[q * stride] = (d * d + f[v]) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::phantoms::grid;

    #[test]
    fn matches_brute_force_on_anisotropic_grid() {
        let g = grid([9, 7, 6], [0.7, 1.3, 2.1]);
        let sites = [[1usize, 2, 0], [7, 6, 5], [4, 0, 3]];
        let mut mask = Volume::filled(g.clone(), 0u8);
        for [i, j, k] in sites {
            mask.set(i, j, k, 1);
        }
        let d2 = squared_distance_to_foreground_mm2(&mask);
        let s = g.spacing_mm;
        for k in 0..6 {
            for j in 0..7 {
                for i in 0..9 {
                    let expect = sites
                        .iter()
                        .map(|p| {
                            (0..3)
                                .map(|a| ((([i, j, k][a] as f64) - p[a] as f64) * s[a]).powi(2))
                                .sum::<f64>()
                        })
                        .fold(f64::INFINITY, f64::min);
                    let got = d2.at(i, j, k) as f64;
                    assert!(
                        (got - expect).abs() < 1e-3,
                        "({i},{j},{k}) {got} vs {expect}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_mask_stays_infinite() {
        let g = grid([4, 3, 2], [1.0; 3]);
        let d2 = squared_distance_to_foreground_mm2(&Volume::filled(g, 0u8));
        assert!(d2.data().iter().all(|v| v.is_infinite()));
    }
}
