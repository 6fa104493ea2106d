//! Triangle meshes in world LPS millimetres: pure data shared by meshing, export and render.

use serde::{Deserialize, Serialize};

/// An indexed triangle mesh. Triangles wind counter-clockwise seen from outside, so the
/// right-hand normal points out of the object (what STL and 3MF expect).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriMesh {
    pub positions_world_mm: Vec<[f32; 3]>,
    pub indices: Vec<[u32; 3]>,
    /// Per-vertex unit normals; empty until [`TriMesh::compute_normals`] runs.
    pub normals: Vec<[f32; 3]>,
}

impl TriMesh {
    pub fn new(positions_world_mm: Vec<[f32; 3]>, indices: Vec<[u32; 3]>) -> Self {
        Self {
            positions_world_mm,
            indices,
            normals: Vec::new(),
        }
    }

    pub fn vertex_count(&self) -> usize {
        self.positions_world_mm.len()
    }

    pub fn face_count(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Corner positions of face `f` in f64 (accumulating areas and volumes in f32 loses mm³).
    pub fn face_corners(&self, f: usize) -> [[f64; 3]; 3] {
        self.indices[f].map(|v| self.positions_world_mm[v as usize].map(f64::from))
    }

    /// Unnormalised face normal (length = twice the area).
    pub fn face_normal_scaled(&self, f: usize) -> [f64; 3] {
        let [a, b, c] = self.face_corners(f);
        cross(sub(b, a), sub(c, a))
    }

    /// Surface area in mm².
    pub fn area_mm2(&self) -> f64 {
        (0..self.indices.len())
            .map(|f| norm(self.face_normal_scaled(f)) * 0.5)
            .sum()
    }

    /// Signed enclosed volume in mm³ (divergence theorem); positive for a closed mesh
    /// with outward normals.
    pub fn signed_volume_mm3(&self) -> f64 {
        // Relative to the first vertex so large LPS offsets do not cancel digits.
        let origin = self
            .positions_world_mm
            .first()
            .map(|p| p.map(f64::from))
            .unwrap_or([0.0; 3]);
        (0..self.indices.len())
            .map(|f| {
                let [a, b, c] = self.face_corners(f).map(|p| sub(p, origin));
                dot(a, cross(b, c)) / 6.0
            })
            .sum()
    }

    /// Axis-aligned bounds `(min, max)`; `None` for an empty mesh.
    pub fn bounds_mm(&self) -> Option<([f32; 3], [f32; 3])> {
        let first = *self.positions_world_mm.first()?;
        let mut lo = first;
        let mut hi = first;
        for p in &self.positions_world_mm {
            for a in 0..3 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        Some((lo, hi))
    }

    /// Area-weighted per-vertex normals.
    pub fn compute_normals(&mut self) {
        let mut acc = vec![[0.0f64; 3]; self.positions_world_mm.len()];
        for f in 0..self.indices.len() {
            let n = self.face_normal_scaled(f);
            for &v in &self.indices[f] {
                let a = &mut acc[v as usize];
                for d in 0..3 {
                    a[d] += n[d];
                }
            }
        }
        self.normals = acc
            .into_iter()
            .map(|n| {
                let l = norm(n);
                if l > 0.0 {
                    n.map(|x| (x / l) as f32)
                } else {
                    [0.0; 3]
                }
            })
            .collect();
    }

    /// Reverses every triangle's winding (and normals), e.g. after a mirroring transform.
    pub fn flip_winding(&mut self) {
        for t in &mut self.indices {
            t.swap(1, 2);
        }
        for n in &mut self.normals {
            *n = n.map(|x| -x);
        }
    }

    /// Appends `other`, re-indexing its triangles.
    pub fn append(&mut self, other: &TriMesh) {
        let base = self.positions_world_mm.len() as u32;
        self.positions_world_mm
            .extend_from_slice(&other.positions_world_mm);
        self.indices
            .extend(other.indices.iter().map(|t| t.map(|v| v + base)));
        if self.normals.len() + other.normals.len() == self.positions_world_mm.len() {
            self.normals.extend_from_slice(&other.normals);
        } else {
            self.normals.clear();
        }
    }
}

pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
pub(crate) fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
pub(crate) mod phantoms {
    //! Meshes with known answers, shared by the unit tests.
    use super::TriMesh;

    /// A closed, outward-facing tetrahedron with unit legs along the axes.
    pub fn unit_tetra() -> TriMesh {
        TriMesh::new(
            vec![
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [0.0, 1.0, 0.0],
                [0.0, 0.0, 1.0],
            ],
            vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::phantoms::unit_tetra;

    #[test]
    fn tetra_volume_and_area() {
        let m = unit_tetra();
        assert!((m.signed_volume_mm3() - 1.0 / 6.0).abs() < 1e-9);
        let area = 1.5 + 3f64.sqrt() / 2.0;
        assert!((m.area_mm2() - area).abs() < 1e-6);
        let mut f = m.clone();
        f.flip_winding();
        assert!((f.signed_volume_mm3() + 1.0 / 6.0).abs() < 1e-9);
    }
}
