//! Picking a point on a mesh surface: an exact CPU ray–triangle test along the camera ray,
//! so the answer is in LPS mm with no depth-buffer quantisation.

use nalgebra::{Point3, Vector3};

use super::Ray;
use crate::volume::TriMesh;

/// The first surface a ray meets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PickHit {
    /// Index of the object in the caller's list.
    pub object: usize,
    pub triangle: usize,
    pub point_world_mm: Point3<f64>,
    /// Distance from the ray origin, mm (the ray direction is unit length).
    pub distance_mm: f64,
}

/// Nearest hit over `(object index, mesh)` pairs; both faces of a triangle count, so a
/// camera inside a mesh still picks it.
pub fn pick_meshes<'a>(
    meshes: impl IntoIterator<Item = (usize, &'a TriMesh)>,
    ray: &Ray,
) -> Option<PickHit> {
    let dir = ray
        .direction
        .try_normalize(1e-12)
        .unwrap_or_else(Vector3::z);
    let mut best: Option<PickHit> = None;
    for (object, mesh) in meshes {
        for (triangle, face) in mesh.indices.iter().enumerate() {
            let Some(corners) = face_points(mesh, face) else {
                continue;
            };
            if let Some(t) = ray_triangle(&ray.origin, &dir, &corners) {
                if best.is_none_or(|b| t < b.distance_mm) {
                    best = Some(PickHit {
                        object,
                        triangle,
                        point_world_mm: ray.origin + dir * t,
                        distance_mm: t,
                    });
                }
            }
        }
    }
    best
}

/// A face's corners, `None` when an index is out of range (a malformed mesh is skipped,
/// not a panic).
fn face_points(mesh: &TriMesh, face: &[u32; 3]) -> Option<[Point3<f64>; 3]> {
    let p = |i: u32| {
        mesh.positions_world_mm
            .get(i as usize)
            .map(|v| Point3::from(v.map(f64::from)))
    };
    Some([p(face[0])?, p(face[1])?, p(face[2])?])
}

/// Möller–Trumbore: distance along `dir` to the triangle, if it is hit in front of `origin`.
pub fn ray_triangle(
    origin: &Point3<f64>,
    dir: &Vector3<f64>,
    [a, b, c]: &[Point3<f64>; 3],
) -> Option<f64> {
    let e1 = b - a;
    let e2 = c - a;
    let p = dir.cross(&e2);
    let det = e1.dot(&p);
    if det.abs() < 1e-12 {
        return None;
    }
    let inv = 1.0 / det;
    let s = origin - a;
    let u = s.dot(&p) * inv;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let q = s.cross(&e1);
    let v = dir.dot(&q) * inv;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    let t = e2.dot(&q) * inv;
    (t > 0.0).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ray_hits_a_triangle_at_the_known_point_and_misses_beside_it() {
        let tri = TriMesh::new(
            vec![[0.0, 0.0, 5.0], [10.0, 0.0, 5.0], [0.0, 10.0, 5.0]],
            vec![[0, 1, 2]],
        );
        let ray = Ray {
            origin: Point3::new(2.0, 3.0, -1.0),
            direction: Vector3::z(),
        };
        let hit = pick_meshes([(7, &tri)], &ray).expect("hit");
        assert_eq!(hit.object, 7);
        assert!((hit.point_world_mm - Point3::new(2.0, 3.0, 5.0)).norm() < 1e-12);
        assert!((hit.distance_mm - 6.0).abs() < 1e-12);
        let beside = Ray {
            origin: Point3::new(8.0, 8.0, -1.0),
            direction: Vector3::z(),
        };
        assert_eq!(pick_meshes([(0, &tri)], &beside), None);
        let behind = Ray {
            origin: Point3::new(2.0, 3.0, 9.0),
            direction: Vector3::z(),
        };
        assert_eq!(pick_meshes([(0, &tri)], &behind), None);
    }

    #[test]
    fn bad_indices_are_skipped() {
        let tri = TriMesh::new(vec![[0.0; 3]], vec![[0, 1, 2]]);
        let ray = Ray {
            origin: Point3::origin(),
            direction: Vector3::z(),
        };
        assert_eq!(pick_meshes([(0, &tri)], &ray), None);
    }
}
