//! Connected components (6/26) and the island tools built on them: keep largest, keep the
//! pieces under chosen seeds, remove islands smaller than a volume in mm³.

use super::runs::{Run, RunMask};
use super::{Connectivity, Mask, SegmentationError};
use crate::volume::Volume;
use rayon::prelude::*;

/// Component of every run of a [`RunMask`], ids `0..sizes.len()` ordered by first voxel.
#[derive(Debug, Clone)]
pub struct RunComponents {
    pub run_component: Vec<u32>,
    /// Voxel count of each component.
    pub sizes: Vec<u64>,
}

impl RunComponents {
    /// Id of the component with the most voxels (the first one on ties).
    pub fn largest(&self) -> Option<u32> {
        let mut best: Option<(u32, u64)> = None;
        for (id, &n) in self.sizes.iter().enumerate() {
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((id as u32, n));
            }
        }
        best.map(|(id, _)| id)
    }
}

/// Union-find over run indices, with path halving and union by index (smaller root wins,
/// which keeps component ids in scan order).
struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
        }
    }
    #[inline]
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }
    #[inline]
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra < rb {
            self.parent[rb as usize] = ra;
        } else if rb < ra {
            self.parent[ra as usize] = rb;
        }
    }
}

/// Unions every run of `a` with every run of `b` it touches. `slack` is 1 when diagonal
/// neighbours count (runs ending at `i` and starting at `i + 1` touch) and 0 otherwise.
fn link_rows(
    uf: &mut UnionFind,
    runs: &[Run],
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
    slack: u32,
) {
    let (mut x, mut y) = (a.start, b.start);
    while x < a.end && y < b.end {
        let (ra, rb) = (runs[x], runs[y]);
        if ra.start < rb.end + slack && rb.start < ra.end + slack {
            uf.union(x as u32, y as u32);
        }
        if ra.end < rb.end {
            x += 1;
        } else {
            y += 1;
        }
    }
}

/// Labels the connected pieces of a run mask.
pub fn label_runs(runs: &RunMask, connectivity: Connectivity) -> RunComponents {
    let [_, ny, nz] = runs.dims;
    let mut uf = UnionFind::new(runs.runs.len());
    let diagonal = connectivity == Connectivity::TwentySix;
    let slack = u32::from(diagonal);
    for k in 0..nz {
        for j in 0..ny {
            let here = runs.row_range(j, k);
            if here.is_empty() {
                continue;
            }
            if j > 0 {
                link_rows(
                    &mut uf,
                    &runs.runs,
                    here.clone(),
                    runs.row_range(j - 1, k),
                    slack,
                );
            }
            if k > 0 {
                link_rows(
                    &mut uf,
                    &runs.runs,
                    here.clone(),
                    runs.row_range(j, k - 1),
                    slack,
                );
                if diagonal {
                    if j > 0 {
                        link_rows(
                            &mut uf,
                            &runs.runs,
                            here.clone(),
                            runs.row_range(j - 1, k - 1),
                            1,
                        );
                    }
                    if j + 1 < ny {
                        link_rows(
                            &mut uf,
                            &runs.runs,
                            here.clone(),
                            runs.row_range(j + 1, k - 1),
                            1,
                        );
                    }
                }
            }
        }
    }
    // Roots are the smallest index of their set, so one forward pass numbers them in scan order.
    let mut run_component = vec![0u32; runs.runs.len()];
    let mut sizes = Vec::new();
    for r in 0..runs.runs.len() {
        let root = uf.find(r as u32) as usize;
        let id = if root == r {
            sizes.push(0);
            (sizes.len() - 1) as u32
        } else {
            run_component[root]
        };
        run_component[r] = id;
        sizes[id as usize] += runs.runs[r].len();
    }
    RunComponents {
        run_component,
        sizes,
    }
}

/// Every voxel's component id, `0` for background and `1..=n` for the pieces (scan order), and
/// each piece's voxel count (`sizes[id - 1]`).
pub fn label_components(mask: &Mask, connectivity: Connectivity) -> (Volume<u32>, Vec<u64>) {
    let runs = RunMask::from_mask(mask);
    let comps = label_runs(&runs, connectivity);
    let [nx, ny, _] = runs.dims;
    let mut data = vec![0u32; mask.geometry().voxel_count()];
    data.par_chunks_mut(nx * ny)
        .enumerate()
        .for_each(|(k, slice)| {
            for j in 0..ny {
                for r in runs.row_range(j, k) {
                    let run = runs.runs[r];
                    slice[j * nx + run.start as usize..j * nx + run.end as usize]
                        .fill(comps.run_component[r] + 1);
                }
            }
        });
    let labels = Volume::new(mask.geometry().clone(), data).expect("same grid as the mask");
    (labels, comps.sizes)
}

/// Only the largest connected piece of `mask` (empty in, empty out).
pub fn keep_largest(mask: &Mask, connectivity: Connectivity) -> Mask {
    largest_piece_where(mask, |v| v != 0, connectivity)
}

/// The largest connected piece of the voxels of `volume` where `inside(value)` holds, without
/// materialising the full mask first (e.g. one label of a label map).
pub fn largest_piece_where<T: Copy + Send + Sync>(
    volume: &Volume<T>,
    inside: impl Fn(T) -> bool + Sync,
    connectivity: Connectivity,
) -> Mask {
    let runs = RunMask::from_predicate(volume, inside);
    let comps = label_runs(&runs, connectivity);
    match comps.largest() {
        Some(best) => runs.to_mask(volume.geometry(), |r| comps.run_component[r] == best),
        None => super::empty_mask(volume.geometry()),
    }
}

/// Threshold `[low, high]` then keep the largest piece, without materialising the full
/// threshold mask (the CLI's `--largest` and the benchmark's path).
pub fn threshold_keep_largest(
    image: &Volume<f32>,
    low: f32,
    high: f32,
    connectivity: Connectivity,
) -> Mask {
    largest_piece_where(image, |v| v >= low && v <= high, connectivity)
}

/// The pieces of `mask` that contain at least one of `seeds` (voxel indices); seeds outside the
/// mask select nothing.
pub fn keep_selected(
    mask: &Mask,
    seeds: &[[usize; 3]],
    connectivity: Connectivity,
) -> Result<Mask, SegmentationError> {
    let runs = RunMask::from_mask(mask);
    let comps = label_runs(&runs, connectivity);
    let mut chosen = vec![false; comps.sizes.len()];
    let g = mask.geometry();
    for &[i, j, k] in seeds {
        if !g.contains_index(i as i64, j as i64, k as i64) {
            return Err(SegmentationError::SeedOutside([
                i as f64, j as f64, k as f64,
            ]));
        }
        for r in runs.row_range(j, k) {
            let run = runs.runs[r];
            if (run.start as usize..run.end as usize).contains(&i) {
                chosen[comps.run_component[r] as usize] = true;
            }
        }
    }
    Ok(runs.to_mask(g, |r| chosen[comps.run_component[r] as usize]))
}

/// Drops pieces smaller than `min_volume_mm3` (islands left by thresholding noise).
pub fn remove_small_islands(mask: &Mask, min_volume_mm3: f64, connectivity: Connectivity) -> Mask {
    let runs = RunMask::from_mask(mask);
    let comps = label_runs(&runs, connectivity);
    let voxel_mm3 = mask.geometry().voxel_volume_mm3();
    let big: Vec<bool> = comps
        .sizes
        .iter()
        .map(|&n| n as f64 * voxel_mm3 >= min_volume_mm3)
        .collect();
    runs.to_mask(mask.geometry(), |r| big[comps.run_component[r] as usize])
}

/// Number of connected pieces and their volumes in mm³, largest first.
pub fn island_volumes_mm3(mask: &Mask, connectivity: Connectivity) -> Vec<f64> {
    let comps = label_runs(&RunMask::from_mask(mask), connectivity);
    let voxel_mm3 = mask.geometry().voxel_volume_mm3();
    let mut v: Vec<f64> = comps.sizes.iter().map(|&n| n as f64 * voxel_mm3).collect();
    v.sort_by(|a, b| b.total_cmp(a));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::count;
    use crate::segmentation::phantoms::{grid, sphere};

    /// Brute-force flood fill, the reference for the run-based labelling.
    fn count_components_bfs(mask: &Mask, connectivity: Connectivity) -> usize {
        let g = mask.geometry();
        let mut seen = vec![false; g.voxel_count()];
        let offsets = connectivity.offsets();
        let mut n = 0;
        for start in 0..g.voxel_count() {
            if mask.data()[start] == 0 || seen[start] {
                continue;
            }
            n += 1;
            seen[start] = true;
            let mut stack = vec![start];
            while let Some(v) = stack.pop() {
                let [i, j, k] = g.index3(v);
                for o in &offsets {
                    let (a, b, c) = (i as i64 + o[0], j as i64 + o[1], k as i64 + o[2]);
                    if g.contains_index(a, b, c) {
                        let w = g.linear_index(a as usize, b as usize, c as usize);
                        if mask.data()[w] != 0 && !seen[w] {
                            seen[w] = true;
                            stack.push(w);
                        }
                    }
                }
            }
        }
        n
    }

    #[test]
    fn run_labelling_matches_flood_fill_on_noise() {
        let g = grid([23, 19, 17], [1.0; 3]);
        // A deterministic speckle dense enough to make diagonal-only contacts common.
        let mask = Volume::from_fn(g, |[i, j, k]| {
            let h = (i * 73_856_093) ^ (j * 19_349_663) ^ (k * 83_492_791);
            u8::from(h % 7 < 2)
        });
        for c in [Connectivity::Six, Connectivity::TwentySix] {
            let (_, sizes) = label_components(&mask, c);
            assert_eq!(sizes.len(), count_components_bfs(&mask, c), "{c:?}");
            assert_eq!(sizes.iter().sum::<u64>() as usize, count(&mask));
        }
    }

    #[test]
    fn diagonal_contact_joins_only_with_26() {
        let g = grid([3, 3, 3], [1.0; 3]);
        let mut mask = Volume::filled(g, 0u8);
        mask.set(0, 0, 0, 1);
        mask.set(1, 1, 1, 1);
        assert_eq!(label_components(&mask, Connectivity::Six).1.len(), 2);
        assert_eq!(label_components(&mask, Connectivity::TwentySix).1.len(), 1);
    }

    #[test]
    fn keep_largest_of_two_blobs() {
        let g = grid([40, 30, 30], [1.0; 3]);
        let big = sphere(&g, [10.0, 15.0, 15.0], 8.0);
        let small = sphere(&g, [31.0, 15.0, 15.0], 4.0);
        let both = Volume::from_fn(g.clone(), |[i, j, k]| big.at(i, j, k) | small.at(i, j, k));
        let kept = keep_largest(&both, Connectivity::TwentySix);
        assert!(kept.data() == big.data());
        let picked = keep_selected(&both, &[[31, 15, 15]], Connectivity::Six).expect("inside");
        assert!(picked.data() == small.data());
        // Small sphere: 4 mm radius, ~268 mm³; the big one ~2145 mm³.
        let cleaned = remove_small_islands(&both, 1000.0, Connectivity::TwentySix);
        assert!(cleaned.data() == big.data());
        let vols = island_volumes_mm3(&both, Connectivity::TwentySix);
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[0] as usize, count(&big));
    }

    #[test]
    fn fused_threshold_matches_two_step() {
        let g = grid([30, 20, 20], [1.0; 3]);
        let image = Volume::from_fn(g, |[i, j, _]| {
            if i < 10 || (i > 15 && j < 5) {
                500.0
            } else {
                0.0
            }
        });
        let mask = image.map(|v| u8::from((200.0..=3000.0).contains(&v)));
        let fused = threshold_keep_largest(&image, 200.0, 3000.0, Connectivity::TwentySix);
        assert!(fused.data() == keep_largest(&mask, Connectivity::TwentySix).data());
        assert_eq!(count(&fused), 10 * 20 * 20);
    }
}
