//! Where voxels sit in the patient: dims, spacing, origin and direction in LPS millimetres.
//!
//! Conventions (shared by every module past `io`):
//! - `dims` is `[i, j, k]`, `i` fastest in memory.
//! - World space is DICOM patient space: +x Left, +y Posterior, +z Superior (LPS), millimetres.
//! - `origin_mm` is the world position of the *centre* of voxel `(0, 0, 0)`.
//! - `direction` holds, as columns, the unit world vectors of the `i`, `j` and `k` axes.
//!
//! So `world = origin + direction * diag(spacing) * voxel`.

use nalgebra::{Matrix3, Matrix4, Point3, Vector3};

/// Why a geometry was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum GeometryError {
    #[error("voxel spacing must be finite and positive, got {0:?} mm")]
    BadSpacing([f64; 3]),
    #[error("direction cosines are degenerate or not finite (determinant {0})")]
    DegenerateDirection(f64),
    #[error("origin is not finite: {0:?}")]
    BadOrigin([f64; 3]),
    #[error("a volume needs at least one voxel along each axis, got dims {0:?}")]
    EmptyDims([usize; 3]),
    #[error("world_from_voxel is not affine (last row {0:?})")]
    NotAffine([f64; 4]),
}

/// The sampling grid of a volume in patient LPS millimetres.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeGeometry {
    /// Voxel counts along `[i, j, k]`; `i` is fastest in memory.
    pub dims: [usize; 3],
    /// Distance between voxel centres along `[i, j, k]`, millimetres.
    pub spacing_mm: [f64; 3],
    /// World (LPS mm) position of the centre of voxel `(0, 0, 0)`.
    pub origin_mm: [f64; 3],
    /// Columns are the unit world directions of the `i`, `j`, `k` axes.
    pub direction: Matrix3<f64>,
}

impl VolumeGeometry {
    /// A checked geometry. Direction columns are normalised; they need not be orthogonal
    /// (a gantry-tilted series has a sheared grid) but must span 3D.
    pub fn new(
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        origin_mm: [f64; 3],
        direction: Matrix3<f64>,
    ) -> Result<Self, GeometryError> {
        if dims.contains(&0) {
            return Err(GeometryError::EmptyDims(dims));
        }
        if spacing_mm.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(GeometryError::BadSpacing(spacing_mm));
        }
        if origin_mm.iter().any(|o| !o.is_finite()) {
            return Err(GeometryError::BadOrigin(origin_mm));
        }
        let mut direction = direction;
        for c in 0..3 {
            let n = direction.column(c).norm();
            if !n.is_finite() || n < 1e-9 {
                return Err(GeometryError::DegenerateDirection(direction.determinant()));
            }
            direction.set_column(c, &(direction.column(c) / n));
        }
        let det = direction.determinant();
        if !det.is_finite() || det.abs() < 1e-6 {
            return Err(GeometryError::DegenerateDirection(det));
        }
        Ok(Self {
            dims,
            spacing_mm,
            origin_mm,
            direction,
        })
    }

    /// Identity direction: `i` → Left, `j` → Posterior, `k` → Superior.
    pub fn axis_aligned(
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        origin_mm: [f64; 3],
    ) -> Result<Self, GeometryError> {
        Self::new(dims, spacing_mm, origin_mm, Matrix3::identity())
    }

    /// Decompose a 4×4 `world_from_voxel` affine (LPS mm) into a geometry.
    pub fn from_world_from_voxel(
        dims: [usize; 3],
        world_from_voxel: &Matrix4<f64>,
    ) -> Result<Self, GeometryError> {
        let last = world_from_voxel.row(3);
        let last = [last[0], last[1], last[2], last[3]];
        if (last[0].abs() + last[1].abs() + last[2].abs()) > 1e-9 || (last[3] - 1.0).abs() > 1e-9 {
            return Err(GeometryError::NotAffine(last));
        }
        let linear = world_from_voxel.fixed_view::<3, 3>(0, 0).into_owned();
        let spacing_mm = [
            linear.column(0).norm(),
            linear.column(1).norm(),
            linear.column(2).norm(),
        ];
        let origin_mm = [
            world_from_voxel[(0, 3)],
            world_from_voxel[(1, 3)],
            world_from_voxel[(2, 3)],
        ];
        if spacing_mm.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(GeometryError::BadSpacing(spacing_mm));
        }
        let mut direction = linear;
        for c in 0..3 {
            direction.set_column(c, &(linear.column(c) / spacing_mm[c]));
        }
        Self::new(dims, spacing_mm, origin_mm, direction)
    }

    /// The 4×4 affine taking a voxel index (continuous, centre-based) to LPS millimetres.
    pub fn world_from_voxel(&self) -> Matrix4<f64> {
        let linear = self.direction * Matrix3::from_diagonal(&Vector3::from(self.spacing_mm));
        let mut m = Matrix4::identity();
        m.fixed_view_mut::<3, 3>(0, 0).copy_from(&linear);
        m[(0, 3)] = self.origin_mm[0];
        m[(1, 3)] = self.origin_mm[1];
        m[(2, 3)] = self.origin_mm[2];
        m
    }

    /// Inverse of [`Self::world_from_voxel`]. Always exists: `new` refuses degenerate grids.
    pub fn voxel_from_world(&self) -> Matrix4<f64> {
        let linear = self.direction * Matrix3::from_diagonal(&Vector3::from(self.spacing_mm));
        let inv = linear.try_inverse().unwrap_or_else(Matrix3::identity);
        let t = -(inv * Vector3::from(self.origin_mm));
        let mut m = Matrix4::identity();
        m.fixed_view_mut::<3, 3>(0, 0).copy_from(&inv);
        m[(0, 3)] = t.x;
        m[(1, 3)] = t.y;
        m[(2, 3)] = t.z;
        m
    }

    /// World (LPS mm) position of a continuous voxel position.
    pub fn world_from_voxel_point(&self, pos_in_voxel: [f64; 3]) -> Point3<f64> {
        self.world_from_voxel()
            .transform_point(&Point3::from(pos_in_voxel))
    }

    /// Continuous voxel position of a world (LPS mm) point.
    pub fn voxel_from_world_point(&self, pos_in_world: Point3<f64>) -> [f64; 3] {
        let p = self.voxel_from_world().transform_point(&pos_in_world);
        [p.x, p.y, p.z]
    }

    pub fn voxel_count(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// Volume of one voxel in mm³ (parallelepiped, so sheared grids are right too).
    pub fn voxel_volume_mm3(&self) -> f64 {
        self.spacing_mm[0]
            * self.spacing_mm[1]
            * self.spacing_mm[2]
            * self.direction.determinant().abs()
    }

    /// Linear memory index of `(i, j, k)`; `i` fastest.
    #[inline]
    pub fn linear_index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// `(i, j, k)` of a linear memory index.
    #[inline]
    pub fn index3(&self, linear: usize) -> [usize; 3] {
        let i = linear % self.dims[0];
        let j = (linear / self.dims[0]) % self.dims[1];
        let k = linear / (self.dims[0] * self.dims[1]);
        [i, j, k]
    }

    pub fn contains_index(&self, i: i64, j: i64, k: i64) -> bool {
        i >= 0
            && j >= 0
            && k >= 0
            && (i as usize) < self.dims[0]
            && (j as usize) < self.dims[1]
            && (k as usize) < self.dims[2]
    }

    /// Size of the sampled region along each axis, centre of first to centre of last voxel.
    pub fn extent_mm(&self) -> [f64; 3] {
        [0, 1, 2].map(|a| (self.dims[a].saturating_sub(1)) as f64 * self.spacing_mm[a])
    }

    /// World position of the grid's centre.
    pub fn center_world(&self) -> Point3<f64> {
        self.world_from_voxel_point([0, 1, 2].map(|a| (self.dims[a] as f64 - 1.0) / 2.0))
    }

    /// Whether the direction cosines are a (signed) permutation of the identity, i.e. no obliquity.
    pub fn is_axis_aligned(&self, tolerance: f64) -> bool {
        (0..3).all(|c| {
            let col = self.direction.column(c);
            let max = col.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            (max - 1.0).abs() < tolerance
        })
    }

    /// The world axis (0 = L, 1 = P, 2 = S) that voxel axis `axis` runs most closely along,
    /// and whether it runs in the positive direction.
    pub fn closest_world_axis(&self, axis: usize) -> (usize, bool) {
        let col = self.direction.column(axis);
        let (mut best, mut best_abs) = (0, -1.0);
        for r in 0..3 {
            if col[r].abs() > best_abs {
                best = r;
                best_abs = col[r].abs();
            }
        }
        (best, col[best] > 0.0)
    }

    /// Same grid within `tol_mm` at every corner (so resampling between them is the identity).
    pub fn same_grid(&self, other: &Self, tol_mm: f64) -> bool {
        if self.dims != other.dims {
            return false;
        }
        let d = self.dims.map(|n| (n - 1) as f64);
        let corners = [
            [0.0, 0.0, 0.0],
            [d[0], 0.0, 0.0],
            [0.0, d[1], 0.0],
            [0.0, 0.0, d[2]],
            d,
        ];
        corners.iter().all(|c| {
            (self.world_from_voxel_point(*c) - other.world_from_voxel_point(*c)).norm() <= tol_mm
        })
    }

    /// Three-letter orientation code of the voxel axes in DICOM (LPS) terms, e.g. `LPS` or `LPI`.
    pub fn orientation_code(&self) -> String {
        const POS: [char; 3] = ['L', 'P', 'S'];
        const NEG: [char; 3] = ['R', 'A', 'I'];
        (0..3)
            .map(|a| {
                let (w, positive) = self.closest_world_axis(a);
                if positive {
                    POS[w]
                } else {
                    NEG[w]
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Rotation3;

    fn oblique() -> VolumeGeometry {
        let rot = Rotation3::from_euler_angles(0.3, -0.2, 0.7).into_inner();
        VolumeGeometry::new([17, 11, 9], [0.7, 1.3, 2.5], [-120.5, 33.25, 80.0], rot)
            .expect("valid geometry")
    }

    #[test]
    fn voxel_world_round_trip_oblique() {
        let g = oblique();
        for p in [
            [0.0, 0.0, 0.0],
            [16.0, 10.0, 8.0],
            [3.25, 7.5, 1.125],
            [-2.0, 20.0, 4.0],
        ] {
            let w = g.world_from_voxel_point(p);
            let back = g.voxel_from_world_point(w);
            for a in 0..3 {
                assert!(
                    (back[a] - p[a]).abs() < 1e-9,
                    "axis {a}: {p:?} -> {w:?} -> {back:?}"
                );
            }
        }
        let identity = g.voxel_from_world() * g.world_from_voxel();
        assert!((identity - Matrix4::identity()).norm() < 1e-9);
    }

    #[test]
    fn step_along_axis_moves_spacing_along_direction() {
        let g = oblique();
        let a = g.world_from_voxel_point([2.0, 3.0, 4.0]);
        let b = g.world_from_voxel_point([2.0, 3.0, 5.0]);
        let step = b - a;
        assert!((step.norm() - 2.5).abs() < 1e-12);
        assert!((step / 2.5 - g.direction.column(2)).norm() < 1e-12);
    }

    #[test]
    fn affine_decomposition_round_trip() {
        let g = oblique();
        let back = VolumeGeometry::from_world_from_voxel(g.dims, &g.world_from_voxel())
            .expect("decomposes");
        assert!(g.same_grid(&back, 1e-9));
        for a in 0..3 {
            assert!((g.spacing_mm[a] - back.spacing_mm[a]).abs() < 1e-12);
        }
    }

    #[test]
    fn origin_is_first_voxel_centre() {
        let g = VolumeGeometry::axis_aligned([4, 4, 4], [0.5, 0.5, 2.0], [10.0, -20.0, 30.0])
            .expect("valid");
        let w = g.world_from_voxel_point([0.0, 0.0, 0.0]);
        assert_eq!([w.x, w.y, w.z], [10.0, -20.0, 30.0]);
        let w = g.world_from_voxel_point([1.0, 2.0, 3.0]);
        assert_eq!([w.x, w.y, w.z], [10.5, -19.0, 36.0]);
        assert_eq!(g.orientation_code(), "LPS");
        assert!((g.voxel_volume_mm3() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_grids() {
        assert!(matches!(
            VolumeGeometry::axis_aligned([4, 4, 4], [0.0, 1.0, 1.0], [0.0; 3]),
            Err(GeometryError::BadSpacing(_))
        ));
        assert!(matches!(
            VolumeGeometry::axis_aligned([4, 0, 4], [1.0; 3], [0.0; 3]),
            Err(GeometryError::EmptyDims(_))
        ));
        let flat = Matrix3::new(1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0);
        assert!(matches!(
            VolumeGeometry::new([2, 2, 2], [1.0; 3], [0.0; 3], flat),
            Err(GeometryError::DegenerateDirection(_))
        ));
        assert!(VolumeGeometry::axis_aligned([2, 2, 2], [1.0; 3], [f64::NAN, 0.0, 0.0]).is_err());
    }

    #[test]
    fn flipped_axes_give_orientation_code() {
        let dir = Matrix3::new(-1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0);
        let g = VolumeGeometry::new([2, 2, 2], [1.0; 3], [0.0; 3], dir).expect("valid");
        assert_eq!(g.orientation_code(), "RIP");
        assert!(g.is_axis_aligned(1e-6));
    }

    #[test]
    fn linear_index_round_trip() {
        let g = oblique();
        for lin in [0, 1, 16, 17, 200, g.voxel_count() - 1] {
            let [i, j, k] = g.index3(lin);
            assert_eq!(g.linear_index(i, j, k), lin);
        }
    }
}
