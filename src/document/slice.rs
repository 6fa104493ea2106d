//! Slice planes through the cursor, in world (LPS mm) space, and sampling a volume on them.
//!
//! Screen convention (radiological, as on a reading-room workstation):
//! - axial: viewed from the feet — patient left on screen right, anterior at the top;
//! - coronal: viewed from the front — patient left on screen right, superior at the top;
//! - sagittal: viewed from the patient's left — anterior on screen left, superior at the top.
//!
//! Planes are world-aligned, not voxel-aligned, so an oblique or flipped volume still shows
//! the anatomy the right way round.

use crate::volume::resample::trilinear_at;
use crate::volume::{Volume, VolumeGeometry};
use nalgebra::{Point3, Vector3};
use rayon::prelude::*;

/// Largest slice image side in pixels: finer volumes are shown at their field of view / this.
pub const MAX_SLICE_PIXELS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewAxis {
    Axial,
    Coronal,
    Sagittal,
}

impl ViewAxis {
    pub const ALL: [ViewAxis; 3] = [ViewAxis::Axial, ViewAxis::Coronal, ViewAxis::Sagittal];

    pub fn index(self) -> usize {
        match self {
            ViewAxis::Axial => 0,
            ViewAxis::Coronal => 1,
            ViewAxis::Sagittal => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ViewAxis::Axial => "Axial",
            ViewAxis::Coronal => "Coronal",
            ViewAxis::Sagittal => "Sagittal",
        }
    }

    /// World direction of increasing screen x.
    pub fn right_world(self) -> Vector3<f64> {
        match self {
            ViewAxis::Axial | ViewAxis::Coronal => Vector3::x(), // towards patient left
            ViewAxis::Sagittal => Vector3::y(),                  // towards posterior
        }
    }

    /// World direction of increasing screen y (downwards on screen).
    pub fn down_world(self) -> Vector3<f64> {
        match self {
            ViewAxis::Axial => Vector3::y(), // towards posterior
            ViewAxis::Coronal | ViewAxis::Sagittal => -Vector3::z(), // towards inferior
        }
    }

    /// Direction a positive slice step moves the plane: superior, anterior, left.
    pub fn normal_world(self) -> Vector3<f64> {
        match self {
            ViewAxis::Axial => Vector3::z(),
            ViewAxis::Coronal => -Vector3::y(),
            ViewAxis::Sagittal => Vector3::x(),
        }
    }

    /// Letters for the screen's left, right, top and bottom edges.
    pub fn edge_letters(self) -> [&'static str; 4] {
        match self {
            ViewAxis::Axial => ["R", "L", "A", "P"],
            ViewAxis::Coronal => ["R", "L", "S", "I"],
            ViewAxis::Sagittal => ["A", "P", "S", "I"],
        }
    }
}

/// A world-aligned image plane through the cursor covering a volume's whole field of view.
///
/// Pixel `(px, py)` (continuous, pixel centres at `n + 0.5`) sits at
/// `top_left_world + px·pixel_mm·right + py·pixel_mm·down`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlicePlane {
    pub axis: ViewAxis,
    pub top_left_world: Point3<f64>,
    pub pixel_mm: f64,
    pub width_px: usize,
    pub height_px: usize,
}

impl SlicePlane {
    /// The plane of `axis` through `cursor_world`, spanning the bounding box of `geometry`.
    pub fn through(geometry: &VolumeGeometry, axis: ViewAxis, cursor_world: Point3<f64>) -> Self {
        let (right, down) = (axis.right_world(), axis.down_world());
        let normal = right.cross(&down);
        let corners = voxel_grid_corners(geometry);
        let span = |dir: &Vector3<f64>| {
            corners
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| {
                    let d = c.coords.dot(dir);
                    (lo.min(d), hi.max(d))
                })
        };
        let (u_min, u_max) = span(&right);
        let (v_min, v_max) = span(&down);
        let finest_mm = geometry
            .spacing_mm
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        let largest_extent = (u_max - u_min).max(v_max - v_min);
        let pixel_mm = finest_mm.max(largest_extent / MAX_SLICE_PIXELS as f64);
        let width_px = ((u_max - u_min) / pixel_mm).round().max(1.0) as usize;
        let height_px = ((v_max - v_min) / pixel_mm).round().max(1.0) as usize;
        let depth = cursor_world.coords.dot(&normal);
        let top_left_world = Point3::from(right * u_min + down * v_min + normal * depth);
        Self {
            axis,
            top_left_world,
            pixel_mm,
            width_px,
            height_px,
        }
    }

    /// World point at continuous pixel coordinates (`(0, 0)` is the image's top-left corner).
    pub fn world_at_pixel(&self, px: f64, py: f64) -> Point3<f64> {
        self.top_left_world
            + self.axis.right_world() * (px * self.pixel_mm)
            + self.axis.down_world() * (py * self.pixel_mm)
    }

    /// Continuous pixel coordinates of a world point's projection onto the plane.
    pub fn pixel_of_world(&self, p: &Point3<f64>) -> (f64, f64) {
        let d = p - self.top_left_world;
        (
            d.dot(&self.axis.right_world()) / self.pixel_mm,
            d.dot(&self.axis.down_world()) / self.pixel_mm,
        )
    }

    /// Field of view in millimetres (width, height).
    pub fn extent_mm(&self) -> (f64, f64) {
        (
            self.width_px as f64 * self.pixel_mm,
            self.height_px as f64 * self.pixel_mm,
        )
    }
}

/// The 8 outer corners of the voxel grid (voxel edges, half a voxel beyond the centres).
pub fn voxel_grid_corners(geometry: &VolumeGeometry) -> Vec<Point3<f64>> {
    let [nx, ny, nz] = geometry.dims.map(|d| d as f64 - 0.5);
    let mut out = Vec::with_capacity(8);
    for &i in &[-0.5, nx] {
        for &j in &[-0.5, ny] {
            for &k in &[-0.5, nz] {
                out.push(geometry.world_from_voxel_point([i, j, k]));
            }
        }
    }
    out
}

/// Trilinear samples at every pixel centre, row by row; NaN where the plane leaves the volume.
pub fn sample_slice(volume: &Volume<f32>, plane: &SlicePlane) -> Vec<f32> {
    sample_slice_mapped(volume, plane, None)
}

/// Like [`sample_slice`], with the volume's world reached through `sample_from_world` (e.g. a
/// registration's `moving_from_fixed`), so a moving image is drawn aligned with the fixed one.
pub fn sample_slice_mapped(
    volume: &Volume<f32>,
    plane: &SlicePlane,
    sample_from_world: Option<&nalgebra::Matrix4<f64>>,
) -> Vec<f32> {
    let mut voxel_from_world = volume.geometry().voxel_from_world();
    if let Some(m) = sample_from_world {
        voxel_from_world *= m;
    }
    let origin = voxel_from_world.transform_point(&plane.world_at_pixel(0.5, 0.5));
    let step_x = voxel_from_world.transform_vector(&(plane.axis.right_world() * plane.pixel_mm));
    let step_y = voxel_from_world.transform_vector(&(plane.axis.down_world() * plane.pixel_mm));
    let width = plane.width_px;
    crate::jobs::interactive(|| {
        (0..plane.height_px)
            .into_par_iter()
            .flat_map_iter(|y| {
                let row_start = origin + step_y * y as f64;
                (0..width).map(move |x| {
                    let p = row_start + step_x * x as f64;
                    trilinear_at(volume, [p.x, p.y, p.z]).unwrap_or(f32::NAN)
                })
            })
            .collect()
    })
}

/// Nearest-voxel labels at every pixel centre (0 outside the map): labels are never blended.
pub fn sample_labels(volume: &Volume<u16>, plane: &SlicePlane) -> Vec<u16> {
    let voxel_from_world = volume.geometry().voxel_from_world();
    let origin = voxel_from_world.transform_point(&plane.world_at_pixel(0.5, 0.5));
    let step_x = voxel_from_world.transform_vector(&(plane.axis.right_world() * plane.pixel_mm));
    let step_y = voxel_from_world.transform_vector(&(plane.axis.down_world() * plane.pixel_mm));
    let width = plane.width_px;
    crate::jobs::interactive(|| {
        (0..plane.height_px)
            .into_par_iter()
            .flat_map_iter(|y| {
                let row_start = origin + step_y * y as f64;
                (0..width).map(move |x| {
                    let p = row_start + step_x * x as f64;
                    volume
                        .get(p.x.round() as i64, p.y.round() as i64, p.z.round() as i64)
                        .unwrap_or(0)
                })
            })
            .collect()
    })
}

/// Distance one slice step moves along `axis`: the spacing of the voxel axis closest to the
/// view normal, so scrolling visits each acquired slice once.
pub fn slice_step_mm(geometry: &VolumeGeometry, axis: ViewAxis) -> f64 {
    let normal = axis.normal_world();
    (0..3)
        .max_by(|&a, &b| {
            let da = geometry.direction.column(a).dot(&normal).abs();
            let db = geometry.direction.column(b).dot(&normal).abs();
            da.total_cmp(&db)
        })
        .map(|a| geometry.spacing_mm[a])
        .unwrap_or(1.0)
}

/// Clamps a world point into the bounding box of the grid's voxel centres.
pub fn clamp_to_volume(geometry: &VolumeGeometry, p: Point3<f64>) -> Point3<f64> {
    let ijk = geometry.voxel_from_world_point(p);
    let clamped: [f64; 3] =
        std::array::from_fn(|a| ijk[a].clamp(0.0, (geometry.dims[a] - 1) as f64));
    if clamped == ijk {
        p
    } else {
        geometry.world_from_voxel_point(clamped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Matrix3;

    fn ramp_volume(direction: Matrix3<f64>) -> Volume<f32> {
        // Each voxel stores its own world x (left-right position): a flip would show at once.
        let g =
            VolumeGeometry::new([20, 30, 10], [1.0, 2.0, 3.0], [0.0; 3], direction).expect("valid");
        let w = g.clone();
        Volume::from_fn(g, move |[i, j, k]| {
            w.world_from_voxel_point([i as f64, j as f64, k as f64]).x as f32
        })
    }

    #[test]
    fn axial_pixels_grow_to_patient_left_and_posterior() {
        let v = ramp_volume(Matrix3::identity());
        let centre = v.geometry().center_world();
        let plane = SlicePlane::through(v.geometry(), ViewAxis::Axial, centre);
        let a = plane.world_at_pixel(0.0, 0.0);
        let b = plane.world_at_pixel(10.0, 5.0);
        assert!(b.x > a.x && b.y > a.y && (b.z - a.z).abs() < 1e-9);
        assert!((a.z - centre.z).abs() < 1e-9);
        // The field of view is the voxel grid's extent with square pixels of the finest spacing.
        assert_eq!(plane.pixel_mm, 1.0);
        assert_eq!((plane.width_px, plane.height_px), (20, 60));
        let (px, py) = plane.pixel_of_world(&b);
        assert!((px - 10.0).abs() < 1e-9 && (py - 5.0).abs() < 1e-9);
    }

    #[test]
    fn a_flipped_volume_shows_the_same_anatomy_as_an_unflipped_one() {
        let plain = ramp_volume(Matrix3::identity());
        // Stored right-to-left: voxel i grows to the patient's right.
        let flipped = ramp_volume(Matrix3::from_diagonal(&Vector3::new(-1.0, 1.0, 1.0)));
        for v in [&plain, &flipped] {
            let plane =
                SlicePlane::through(v.geometry(), ViewAxis::Coronal, v.geometry().center_world());
            let row = sample_slice(v, &plane);
            let mid = plane.height_px / 2 * plane.width_px;
            let (left_of_screen, right_of_screen) = (row[mid], row[mid + plane.width_px - 1]);
            // Screen right is patient left: larger world x on both.
            assert!(
                right_of_screen > left_of_screen,
                "{left_of_screen} vs {right_of_screen}"
            );
            // Each sample is the world x of its pixel centre (the data are a world-x ramp).
            let p = plane.world_at_pixel(
                plane.width_px as f64 - 0.5,
                (plane.height_px / 2) as f64 + 0.5,
            );
            assert!((right_of_screen as f64 - p.x).abs() < 1e-3);
        }
    }

    #[test]
    fn outside_the_volume_is_nan_and_scroll_steps_use_the_matching_spacing() {
        let v = ramp_volume(Matrix3::identity());
        let far = Point3::new(0.0, 0.0, 1e4);
        let plane = SlicePlane::through(v.geometry(), ViewAxis::Axial, far);
        assert!(sample_slice(&v, &plane).iter().all(|s| s.is_nan()));
        assert_eq!(slice_step_mm(v.geometry(), ViewAxis::Axial), 3.0);
        assert_eq!(slice_step_mm(v.geometry(), ViewAxis::Coronal), 2.0);
        assert_eq!(slice_step_mm(v.geometry(), ViewAxis::Sagittal), 1.0);
        let clamped = clamp_to_volume(v.geometry(), far);
        assert!((clamped.z - 27.0).abs() < 1e-9);
    }
}
