//! Layer 0: image data that never travels without its geometry.
//!
//! No file formats, no GPU, no UI here: everything is LPS millimetres (see [`geometry`]).

pub mod geometry;
pub mod label_map;
pub mod mesh;
pub mod meta;
pub mod print_profile;
pub mod resample;

pub use geometry::{GeometryError, VolumeGeometry};
pub use label_map::{LabelInfo, LabelMap, LabelTable, Rgba};
pub use mesh::TriMesh;
pub use meta::{ImageMeta, IntensityUnit, Modality};
pub use print_profile::PrintProfile;
pub use resample::{resample, resample_labels, Interpolation};

/// Why voxel data and geometry do not fit together.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum VolumeError {
    #[error("voxel buffer holds {actual} values but dims {dims:?} need {expected}")]
    LengthMismatch {
        dims: [usize; 3],
        expected: usize,
        actual: usize,
    },
    #[error(transparent)]
    Geometry(#[from] GeometryError),
}

/// A 3D image: voxels plus the grid that places them in the patient.
///
/// Data is `i`-fastest (`data[i + nx * (j + ny * k)]`), matching [`VolumeGeometry::linear_index`].
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T> {
    geometry: VolumeGeometry,
    data: Vec<T>,
}

impl<T: Copy + Send + Sync> Volume<T> {
    /// Pairs data with its geometry; refuses a buffer of the wrong length.
    pub fn new(geometry: VolumeGeometry, data: Vec<T>) -> Result<Self, VolumeError> {
        let expected = geometry.voxel_count();
        if data.len() != expected {
            return Err(VolumeError::LengthMismatch {
                dims: geometry.dims,
                expected,
                actual: data.len(),
            });
        }
        Ok(Self { geometry, data })
    }

    pub fn filled(geometry: VolumeGeometry, value: T) -> Self {
        let n = geometry.voxel_count();
        Self {
            geometry,
            data: vec![value; n],
        }
    }

    /// Builds each voxel from its `[i, j, k]` index (in parallel over slices).
    pub fn from_fn(geometry: VolumeGeometry, f: impl Fn([usize; 3]) -> T + Sync) -> Self {
        use rayon::prelude::*;
        let [nx, ny, _] = geometry.dims;
        let mut data = Vec::with_capacity(geometry.voxel_count());
        // SAFETY-free path: build per slice then concatenate.
        let slices: Vec<Vec<T>> = (0..geometry.dims[2])
            .into_par_iter()
            .map(|k| {
                let mut s = Vec::with_capacity(nx * ny);
                for j in 0..ny {
                    for i in 0..nx {
                        s.push(f([i, j, k]));
                    }
                }
                s
            })
            .collect();
        for s in slices {
            data.extend_from_slice(&s);
        }
        Self { geometry, data }
    }

    pub fn geometry(&self) -> &VolumeGeometry {
        &self.geometry
    }
    pub fn dims(&self) -> [usize; 3] {
        self.geometry.dims
    }
    pub fn data(&self) -> &[T] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
    pub fn into_data(self) -> Vec<T> {
        self.data
    }
    pub fn into_parts(self) -> (VolumeGeometry, Vec<T>) {
        (self.geometry, self.data)
    }

    /// Voxel at `(i, j, k)`; panics out of range like slice indexing.
    #[inline]
    pub fn at(&self, i: usize, j: usize, k: usize) -> T {
        self.data[self.geometry.linear_index(i, j, k)]
    }

    /// Voxel at a signed index, `None` outside the grid.
    #[inline]
    pub fn get(&self, i: i64, j: i64, k: i64) -> Option<T> {
        if self.geometry.contains_index(i, j, k) {
            Some(self.at(i as usize, j as usize, k as usize))
        } else {
            None
        }
    }

    #[inline]
    pub fn set(&mut self, i: usize, j: usize, k: usize, value: T) {
        let idx = self.geometry.linear_index(i, j, k);
        self.data[idx] = value;
    }

    /// Same grid, voxels converted one by one.
    pub fn map<U: Copy + Send + Sync>(&self, f: impl Fn(T) -> U + Sync + Send) -> Volume<U> {
        use rayon::prelude::*;
        Volume {
            geometry: self.geometry.clone(),
            data: self.data.par_iter().map(|v| f(*v)).collect(),
        }
    }

    /// Replaces the geometry keeping the voxels (e.g. after registration moved the grid).
    pub fn with_geometry(self, geometry: VolumeGeometry) -> Result<Self, VolumeError> {
        Self::new(geometry, self.data)
    }

    /// One axial (`k`) slice as a contiguous `nx * ny` slice.
    pub fn slice_k(&self, k: usize) -> &[T] {
        let n = self.geometry.dims[0] * self.geometry.dims[1];
        &self.data[k * n..(k + 1) * n]
    }
}

impl Volume<f32> {
    /// Smallest and largest finite value (`(0, 0)` when none is finite).
    pub fn min_max(&self) -> (f32, f32) {
        use rayon::prelude::*;
        let (lo, hi) = self
            .data
            .par_iter()
            .filter(|v| v.is_finite())
            .fold(
                || (f32::INFINITY, f32::NEG_INFINITY),
                |(lo, hi), &v| (lo.min(v), hi.max(v)),
            )
            .reduce(
                || (f32::INFINITY, f32::NEG_INFINITY),
                |a, b| (a.0.min(b.0), a.1.max(b.1)),
            );
        if lo > hi {
            (0.0, 0.0)
        } else {
            (lo, hi)
        }
    }

    /// Trilinear sample at a continuous voxel position; `None` outside the grid
    /// (positions within half a voxel of the border clamp to the edge voxel).
    pub fn sample_trilinear(&self, pos_in_voxel: [f64; 3]) -> Option<f32> {
        resample::trilinear_at(self, pos_in_voxel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_wrong_length() {
        let g = VolumeGeometry::axis_aligned([2, 3, 4], [1.0; 3], [0.0; 3]).expect("valid");
        let err = Volume::new(g, vec![0.0f32; 23]).expect_err("wrong length");
        assert_eq!(
            err,
            VolumeError::LengthMismatch {
                dims: [2, 3, 4],
                expected: 24,
                actual: 23
            }
        );
    }

    #[test]
    fn from_fn_is_i_fastest() {
        let g = VolumeGeometry::axis_aligned([3, 2, 2], [1.0; 3], [0.0; 3]).expect("valid");
        let v = Volume::from_fn(g, |[i, j, k]| (i + 10 * j + 100 * k) as u16);
        assert_eq!(&v.data()[..4], &[0, 1, 2, 10]);
        assert_eq!(v.at(2, 1, 1), 112);
        assert_eq!(v.get(-1, 0, 0), None);
        assert_eq!(v.slice_k(1)[0], 100);
    }

    #[test]
    fn min_max_ignores_nan() {
        let g = VolumeGeometry::axis_aligned([2, 2, 1], [1.0; 3], [0.0; 3]).expect("valid");
        let v = Volume::new(g, vec![f32::NAN, -3.0, 7.5, 1.0]).expect("fits");
        assert_eq!(v.min_max(), (-3.0, 7.5));
    }
}
