//! Morphology in millimetres with spherical (ellipsoidal in voxels) kernels, hole filling,
//! margins, hollowing for printing, and mask smoothing.
//!
//! Dilation and erosion compare a Euclidean distance map with the radius, so the kernel is an
//! exact ball in mm on anisotropic grids and the cost does not grow with the radius.

use super::components::label_runs;
use super::distance::{squared_distance_to_background_mm2, squared_distance_to_foreground_mm2};
use super::gaussian::gaussian_smooth;
use super::runs::RunMask;
use super::{Connectivity, Mask, SegmentationError};
use crate::volume::Volume;
use rayon::prelude::*;

/// Allowance so a voxel exactly `r` away is inside the ball despite rounding.
const EDGE_MM2: f32 = 1e-4;

fn check_radius(radius_mm: f64) -> Result<(), SegmentationError> {
    if radius_mm.is_finite() && radius_mm >= 0.0 {
        Ok(())
    } else {
        Err(SegmentationError::InvalidParameter(format!(
            "radius must be a finite, non-negative number of mm, got {radius_mm}"
        )))
    }
}

/// Voxels within `radius_mm` of the mask.
pub fn dilate(mask: &Mask, radius_mm: f64) -> Result<Mask, SegmentationError> {
    check_radius(radius_mm)?;
    let r2 = (radius_mm * radius_mm) as f32 + EDGE_MM2;
    Ok(squared_distance_to_foreground_mm2(mask).map(|d2| u8::from(d2 <= r2)))
}

/// Voxels whose ball of `radius_mm` lies entirely inside the mask (the grid's outside does not
/// erode, so a mask touching the border keeps its cut face).
pub fn erode(mask: &Mask, radius_mm: f64) -> Result<Mask, SegmentationError> {
    check_radius(radius_mm)?;
    let r2 = (radius_mm * radius_mm) as f32 + EDGE_MM2;
    Ok(squared_distance_to_background_mm2(mask).map(|d2| u8::from(d2 > r2)))
}

/// Erode then dilate: removes spurs and bridges thinner than `2 × radius_mm`.
pub fn open(mask: &Mask, radius_mm: f64) -> Result<Mask, SegmentationError> {
    dilate(&erode(mask, radius_mm)?, radius_mm)
}

/// Dilate then erode: closes gaps and dents narrower than `2 × radius_mm`.
pub fn close(mask: &Mask, radius_mm: f64) -> Result<Mask, SegmentationError> {
    erode(&dilate(mask, radius_mm)?, radius_mm)
}

/// Slicer's "Margin": grow (`margin_mm > 0`) or shrink (`< 0`) the surface by a distance.
pub fn margin(mask: &Mask, margin_mm: f64) -> Result<Mask, SegmentationError> {
    if margin_mm >= 0.0 {
        dilate(mask, margin_mm)
    } else {
        erode(mask, -margin_mm)
    }
}

/// Fills every cavity: background not connected (by faces) to the grid's border.
pub fn fill_holes(mask: &Mask) -> Mask {
    let background = RunMask::from_predicate(mask, |v| v == 0);
    let comps = label_runs(&background, Connectivity::Six);
    let [nx, ny, nz] = background.dims;
    let mut reaches_border = vec![false; comps.sizes.len()];
    for k in 0..nz {
        for j in 0..ny {
            let edge_row = j == 0 || k == 0 || j + 1 == ny || k + 1 == nz;
            for r in background.row_range(j, k) {
                let run = background.runs[r];
                if edge_row || run.start == 0 || run.end as usize == nx {
                    reaches_border[comps.run_component[r] as usize] = true;
                }
            }
        }
    }
    let outside = background.to_mask(mask.geometry(), |r| {
        reaches_border[comps.run_component[r] as usize]
    });
    outside.map(|v| 1 - v)
}

/// A shell of the mask's own voxels within `wall_mm` of its surface: hollowing a solid for
/// printing keeps the outside shape and saves material. Cavities of the input stay hollow.
pub fn hollow(mask: &Mask, wall_mm: f64) -> Result<Mask, SegmentationError> {
    if !(wall_mm.is_finite() && wall_mm > 0.0) {
        return Err(SegmentationError::InvalidParameter(format!(
            "wall thickness must be a positive number of mm, got {wall_mm}"
        )));
    }
    let w2 = (wall_mm * wall_mm) as f32 + EDGE_MM2;
    let d2 = squared_distance_to_background_mm2(mask);
    let data = mask
        .data()
        .par_iter()
        .zip(d2.data().par_iter())
        .map(|(&m, &d)| u8::from(m != 0 && (d <= w2 || d.is_infinite())))
        .collect();
    Ok(Volume::new(mask.geometry().clone(), data).expect("same grid"))
}

/// How to smooth a mask's surface.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SmoothingMethod {
    /// Majority vote in a box of `2 r + 1` voxels per side: removes single-voxel noise, keeps
    /// edges.
    Median { radius_voxels: usize },
    /// Morphological closing (fills small dents and gaps).
    Closing { radius_mm: f64 },
    /// Gaussian blur of the 0/1 mask, re-thresholded at one half: rounds corners.
    Gaussian { sigma_mm: f64 },
}

pub fn smooth(mask: &Mask, method: SmoothingMethod) -> Result<Mask, SegmentationError> {
    match method {
        SmoothingMethod::Median { radius_voxels } => Ok(binary_median(mask, radius_voxels)),
        SmoothingMethod::Closing { radius_mm } => close(mask, radius_mm),
        SmoothingMethod::Gaussian { sigma_mm } => {
            let blurred = gaussian_smooth(&mask.map(f32::from), sigma_mm)?;
            Ok(blurred.map(|v| u8::from(v >= 0.5)))
        }
    }
}

/// Majority filter via three separable box sums of the voxel counts; at the border only the
/// voxels inside the grid vote.
fn binary_median(mask: &Mask, r: usize) -> Mask {
    if r == 0 {
        return mask.clone();
    }
    let dims = mask.dims();
    let g = mask.geometry();
    let counts = box_sum(mask.data(), r, dims);
    let window = |pos: usize, n: usize| (pos + r).min(n - 1) - pos.saturating_sub(r) + 1;
    let data = counts
        .par_iter()
        .enumerate()
        .map(|(idx, &c)| {
            let [i, j, k] = g.index3(idx);
            let cells = window(i, dims[0]) * window(j, dims[1]) * window(k, dims[2]);
            u8::from(2 * c as usize > cells)
        })
        .collect();
    Volume::new(g.clone(), data).expect("same grid")
}

/// Sum of the non-zero voxels in the `(2r + 1)³` box around each voxel, clipped to the grid.
fn box_sum(data: &[u8], r: usize, dims: [usize; 3]) -> Vec<u32> {
    let [nx, ny, nz] = dims;
    let mut cur: Vec<u32> = data.iter().map(|&x| u32::from(x != 0)).collect();
    for (stride, n) in [(1, nx), (nx, ny), (nx * ny, nz)] {
        let prev = cur.clone();
        cur.par_iter_mut().enumerate().for_each(|(idx, out)| {
            let pos = (idx / stride) % n;
            let base = idx - pos * stride;
            let (lo, hi) = (pos.saturating_sub(r), (pos + r).min(n - 1));
            *out = (lo..=hi).map(|p| prev[base + p * stride]).sum();
        });
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::count;
    use crate::segmentation::phantoms::{grid, sphere};

    #[test]
    fn dilate_and_erode_a_sphere_by_millimetres() {
        let g = grid([48, 48, 48], [0.5, 0.5, 0.5]);
        let ball = sphere(&g, [12.0, 12.0, 12.0], 6.0);
        let grown = dilate(&ball, 3.0).expect("valid radius");
        let shrunk = erode(&ball, 3.0).expect("valid radius");
        // The continuous answers bracket the digital ones to within a voxel (0.5 mm).
        let c = [12.0, 12.0, 12.0];
        let subset = |a: &Mask, b: &Mask| a.data().iter().zip(b.data()).all(|(x, y)| x <= y);
        assert!(
            subset(&sphere(&g, c, 8.5), &grown) && subset(&grown, &sphere(&g, c, 9.0)),
            "grow"
        );
        assert!(
            subset(&sphere(&g, c, 2.99), &shrunk) && subset(&shrunk, &sphere(&g, c, 3.5)),
            "shrink"
        );
        // Opening a ball by less than its radius loses only lattice corners and closing adds
        // only as little (a few percent at 12 voxels radius).
        let (opened, closed) = (
            open(&ball, 2.0).expect("ok"),
            close(&ball, 2.0).expect("ok"),
        );
        assert!(subset(&opened, &ball) && subset(&ball, &closed));
        let n = count(&ball);
        let (lost, gained) = (n - count(&opened), count(&closed) - n);
        assert!(
            lost * 20 < n && gained * 20 < n,
            "lost {lost}, gained {gained} of {n}"
        );
        assert!(dilate(&ball, f64::NAN).is_err());
    }

    #[test]
    fn fill_holes_fills_a_cavity_not_an_open_cup() {
        let g = grid([30, 30, 30], [1.0; 3]);
        let outer = sphere(&g, [15.0, 15.0, 15.0], 10.0);
        let inner = sphere(&g, [15.0, 15.0, 15.0], 5.0);
        let shell = Volume::from_fn(g.clone(), |[i, j, k]| {
            outer.at(i, j, k) & (1 - inner.at(i, j, k))
        });
        assert!(fill_holes(&shell).data() == outer.data());
        // Cut the shell open along +k: the cavity now reaches the border and stays empty.
        let cup = Volume::from_fn(g, |[i, j, k]| {
            if k > 15 && (12..19).contains(&i) && (12..19).contains(&j) {
                0
            } else {
                shell.at(i, j, k)
            }
        });
        assert!(fill_holes(&cup).data() == cup.data());
    }

    #[test]
    fn hollow_leaves_a_wall_of_the_given_thickness() {
        let g = grid([40, 40, 40], [1.0; 3]);
        let ball = sphere(&g, [20.0, 20.0, 20.0], 15.0);
        let shell = hollow(&ball, 3.0).expect("valid wall");
        // Along the axis through the centre the wall spans radius 12.x..15: 3 voxels each side.
        let line: Vec<u8> = (0..40).map(|i| shell.at(i, 20, 20)).collect();
        assert_eq!(line.iter().filter(|&&v| v != 0).count(), 6, "{line:?}");
        assert!(shell.data().iter().zip(ball.data()).all(|(s, b)| s <= b));
        assert!(fill_holes(&shell).data() == ball.data());
    }

    #[test]
    fn smoothing_removes_speckle_and_keeps_a_ball() {
        let g = grid([30, 30, 30], [1.0; 3]);
        let ball = sphere(&g, [15.0, 15.0, 15.0], 8.0);
        let mut noisy = ball.clone();
        noisy.set(2, 2, 2, 1);
        noisy.set(15, 15, 15, 0);
        let median = smooth(&noisy, SmoothingMethod::Median { radius_voxels: 1 }).expect("ok");
        assert_eq!(median.at(2, 2, 2), 0);
        assert_eq!(median.at(15, 15, 15), 1);
        let gauss = smooth(&noisy, SmoothingMethod::Gaussian { sigma_mm: 1.0 }).expect("ok");
        assert_eq!(gauss.at(2, 2, 2), 0);
        assert_eq!(gauss.at(15, 15, 15), 1);
        let n = count(&ball) as f64;
        assert!((count(&gauss) as f64 - n).abs() < 0.05 * n);
    }
}
