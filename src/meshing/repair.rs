//! Repairs and checks a printable part needs: duplicate vertices, orientation, holes, small
//! islands, and a report of boundary / non-manifold edges and self-intersections.

use crate::volume::TriMesh;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What the checks found on one mesh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshCheck {
    pub faces: usize,
    pub vertices: usize,
    /// Edges used by one face only: zero means watertight.
    pub boundary_edges: usize,
    /// Edges used by more than two faces, or twice in the same direction.
    pub non_manifold_edges: usize,
    pub components: usize,
    pub self_intersecting_pairs: usize,
    pub watertight: bool,
    pub manifold: bool,
}

fn edge_uses(mesh: &TriMesh) -> HashMap<(u32, u32), (u32, u32)> {
    // (lo, hi) -> (uses lo→hi, uses hi→lo)
    let mut m: HashMap<(u32, u32), (u32, u32)> = HashMap::with_capacity(mesh.indices.len() * 2);
    for t in &mesh.indices {
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            let e = m.entry((a.min(b), a.max(b))).or_default();
            if a < b {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    m
}

/// Counts boundary and non-manifold edges, components and self-intersections.
pub fn check(mesh: &TriMesh) -> MeshCheck {
    let uses = edge_uses(mesh);
    let mut boundary = 0;
    let mut non_manifold = 0;
    for &(f, r) in uses.values() {
        match (f, r) {
            (1, 1) => {}
            (1, 0) | (0, 1) => boundary += 1,
            _ => non_manifold += 1,
        }
    }
    let components = face_components(mesh).1;
    let self_intersecting_pairs = self_intersections(mesh, 100_000);
    MeshCheck {
        faces: mesh.indices.len(),
        vertices: mesh.positions_world_mm.len(),
        boundary_edges: boundary,
        non_manifold_edges: non_manifold,
        components,
        self_intersecting_pairs,
        watertight: boundary == 0 && non_manifold == 0 && !mesh.indices.is_empty(),
        manifold: non_manifold == 0,
    }
}

/// Welds vertices closer than `tolerance_mm` (grid-snapped) and drops degenerate faces.
pub fn merge_duplicate_vertices(mesh: &mut TriMesh, tolerance_mm: f32) {
    let q = |x: f32| (x / tolerance_mm).round() as i64;
    let mut seen: HashMap<[i64; 3], u32> = HashMap::with_capacity(mesh.positions_world_mm.len());
    let mut remap = Vec::with_capacity(mesh.positions_world_mm.len());
    let mut positions = Vec::new();
    for p in &mesh.positions_world_mm {
        let id = *seen.entry(p.map(q)).or_insert_with(|| {
            positions.push(*p);
            positions.len() as u32 - 1
        });
        remap.push(id);
    }
    mesh.positions_world_mm = positions;
    mesh.normals.clear();
    mesh.indices = mesh
        .indices
        .iter()
        .map(|t| t.map(|v| remap[v as usize]))
        .filter(|t| t[0] != t[1] && t[1] != t[2] && t[0] != t[2])
        .collect();
}

/// Face → component id via shared edges; returns ids and the count.
pub fn face_components(mesh: &TriMesh) -> (Vec<u32>, usize) {
    let n = mesh.indices.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    fn find(p: &mut [u32], mut x: u32) -> u32 {
        while p[x as usize] != x {
            p[x as usize] = p[p[x as usize] as usize];
            x = p[x as usize];
        }
        x
    }
    let mut by_vertex: Vec<u32> = vec![u32::MAX; mesh.positions_world_mm.len()];
    for (f, t) in mesh.indices.iter().enumerate() {
        for &v in t {
            let other = by_vertex[v as usize];
            if other == u32::MAX {
                by_vertex[v as usize] = f as u32;
            } else {
                let (a, b) = (find(&mut parent, f as u32), find(&mut parent, other));
                if a != b {
                    parent[a as usize] = b;
                }
            }
        }
    }
    let mut ids = vec![0u32; n];
    let mut roots: HashMap<u32, u32> = HashMap::new();
    for f in 0..n {
        let r = find(&mut parent, f as u32);
        let next = roots.len() as u32;
        ids[f] = *roots.entry(r).or_insert(next);
    }
    (ids, roots.len())
}

/// Makes neighbouring faces agree on winding, then turns each closed component outward.
pub fn orient_outward(mesh: &mut TriMesh) {
    let mut by_edge: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
    for (f, t) in mesh.indices.iter().enumerate() {
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            by_edge
                .entry((a.min(b), a.max(b)))
                .or_default()
                .push(f as u32);
        }
    }
    let n = mesh.indices.len();
    let mut visited = vec![false; n];
    let mut comp = vec![0u32; n];
    let mut comp_count = 0;
    for seed in 0..n {
        if visited[seed] {
            continue;
        }
        visited[seed] = true;
        comp[seed] = comp_count;
        let mut stack = vec![seed];
        while let Some(f) = stack.pop() {
            let t = mesh.indices[f];
            for k in 0..3 {
                let (a, b) = (t[k], t[(k + 1) % 3]);
                let Some(nbs) = by_edge.get(&(a.min(b), a.max(b))) else {
                    continue;
                };
                if nbs.len() != 2 {
                    continue; // only walk across manifold edges
                }
                for &g in nbs {
                    let g = g as usize;
                    if g == f || visited[g] {
                        continue;
                    }
                    // A consistent neighbour runs the shared edge b→a.
                    let u = mesh.indices[g];
                    let same_dir = (0..3).any(|m| u[m] == a && u[(m + 1) % 3] == b);
                    if same_dir {
                        mesh.indices[g].swap(1, 2);
                    }
                    visited[g] = true;
                    comp[g] = comp_count;
                    stack.push(g);
                }
            }
        }
        comp_count += 1;
    }
    let mut vol = vec![0.0f64; comp_count as usize];
    for f in 0..n {
        let [a, b, c] = mesh.face_corners(f);
        vol[comp[f] as usize] +=
            crate::volume::mesh::dot(a, crate::volume::mesh::cross(b, c)) / 6.0;
    }
    for f in 0..n {
        if vol[comp[f] as usize] < 0.0 {
            mesh.indices[f].swap(1, 2);
        }
    }
    mesh.normals.clear();
}

/// Removes components whose enclosed volume is below `min_mm3` (specks of segmentation noise).
pub fn remove_small_components(mesh: &mut TriMesh, min_mm3: f64) -> usize {
    let (ids, count) = face_components(mesh);
    let mut vol = vec![0.0f64; count];
    for f in 0..mesh.indices.len() {
        let [a, b, c] = mesh.face_corners(f);
        vol[ids[f] as usize] += crate::volume::mesh::dot(a, crate::volume::mesh::cross(b, c)) / 6.0;
    }
    let removed = vol.iter().filter(|v| v.abs() < min_mm3).count();
    if removed == 0 {
        return 0;
    }
    let mut f = 0;
    mesh.indices.retain(|_| {
        let keep = vol[ids[f] as usize].abs() >= min_mm3;
        f += 1;
        keep
    });
    let (p, t) = super::marching_cubes::compact(
        std::mem::take(&mut mesh.positions_world_mm),
        std::mem::take(&mut mesh.indices),
    );
    mesh.positions_world_mm = p;
    mesh.indices = t;
    mesh.normals.clear();
    removed
}

/// Closes each boundary loop with a fan around its centroid; returns the number of holes filled.
pub fn fill_holes(mesh: &mut TriMesh) -> usize {
    let uses = edge_uses(mesh);
    // Directed boundary edges a→b; the patch must run b→a.
    let mut next: HashMap<u32, u32> = HashMap::new();
    for t in &mesh.indices {
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            if uses
                .get(&(a.min(b), a.max(b)))
                .is_some_and(|&(f, r)| f + r == 1)
            {
                next.insert(b, a);
            }
        }
    }
    let mut filled = 0;
    let mut done: std::collections::HashSet<u32> = Default::default();
    let starts: Vec<u32> = next.keys().copied().collect();
    for s in starts {
        if done.contains(&s) {
            continue;
        }
        let mut lp = vec![s];
        done.insert(s);
        let mut cur = next[&s];
        let mut ok = true;
        while cur != s {
            if !done.insert(cur) {
                ok = false;
                break;
            }
            lp.push(cur);
            match next.get(&cur) {
                Some(&n) => cur = n,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok || lp.len() < 3 {
            continue;
        }
        let mut c = [0.0f32; 3];
        for &v in &lp {
            for d in 0..3 {
                c[d] += mesh.positions_world_mm[v as usize][d] / lp.len() as f32;
            }
        }
        let ci = mesh.positions_world_mm.len() as u32;
        mesh.positions_world_mm.push(c);
        for k in 0..lp.len() {
            mesh.indices.push([lp[k], lp[(k + 1) % lp.len()], ci]);
        }
        filled += 1;
    }
    if filled > 0 {
        mesh.normals.clear();
    }
    filled
}

/// Pairs of faces sharing no vertex that cross each other, found through a uniform grid;
/// stops counting at `cap`.
pub fn self_intersections(mesh: &TriMesh, cap: usize) -> usize {
    let Some((lo, hi)) = mesh.bounds_mm() else {
        return 0;
    };
    let n = mesh.indices.len();
    let cells_per_axis = ((n as f64).cbrt().ceil() as usize).clamp(1, 256);
    let size: [f32; 3] = [0, 1, 2].map(|d| ((hi[d] - lo[d]) / cells_per_axis as f32).max(1e-6));
    let cell_of = |p: [f32; 3]| {
        [0, 1, 2].map(|d| (((p[d] - lo[d]) / size[d]) as usize).min(cells_per_axis - 1))
    };
    let mut grid: HashMap<[usize; 3], Vec<u32>> = HashMap::new();
    for (f, t) in mesh.indices.iter().enumerate() {
        let ps = t.map(|v| mesh.positions_world_mm[v as usize]);
        let a = cell_of([0, 1, 2].map(|d| ps.iter().map(|p| p[d]).fold(f32::INFINITY, f32::min)));
        let b =
            cell_of([0, 1, 2].map(|d| ps.iter().map(|p| p[d]).fold(f32::NEG_INFINITY, f32::max)));
        for x in a[0]..=b[0] {
            for y in a[1]..=b[1] {
                for z in a[2]..=b[2] {
                    grid.entry([x, y, z]).or_default().push(f as u32);
                }
            }
        }
    }
    let mut pairs = std::collections::HashSet::new();
    for faces in grid.values() {
        for (i, &f) in faces.iter().enumerate() {
            for &g in &faces[i + 1..] {
                let (tf, tg) = (mesh.indices[f as usize], mesh.indices[g as usize]);
                if tf.iter().any(|v| tg.contains(v)) {
                    continue;
                }
                // Faces meeting at coincident vertex copies (split non-manifold spots) touch
                // by construction; that is not a crossing.
                let pf = tf.map(|v| mesh.positions_world_mm[v as usize]);
                let pg = tg.map(|v| mesh.positions_world_mm[v as usize]);
                if pf.iter().any(|p| pg.contains(p)) {
                    continue;
                }
                let key = (f.min(g), f.max(g));
                if pairs.contains(&key) {
                    continue;
                }
                if triangles_intersect(mesh.face_corners(f as usize), mesh.face_corners(g as usize))
                {
                    pairs.insert(key);
                    if pairs.len() >= cap {
                        return cap;
                    }
                }
            }
        }
    }
    pairs.len()
}

fn seg_tri(p: [f64; 3], q: [f64; 3], t: [[f64; 3]; 3]) -> bool {
    use crate::volume::mesh::{cross, dot, sub};
    let d = sub(q, p);
    let e1 = sub(t[1], t[0]);
    let e2 = sub(t[2], t[0]);
    let h = cross(d, e2);
    let a = dot(e1, h);
    if a.abs() < 1e-14 {
        return false;
    }
    let f = 1.0 / a;
    let s = sub(p, t[0]);
    let u = f * dot(s, h);
    if !(0.0..=1.0).contains(&u) {
        return false;
    }
    let qv = cross(s, e1);
    let v = f * dot(d, qv);
    if v < 0.0 || u + v > 1.0 {
        return false;
    }
    let w = f * dot(e2, qv);
    (0.0..=1.0).contains(&w)
}

/// Two non-coplanar triangles cross iff an edge of one pierces the other.
pub fn triangles_intersect(a: [[f64; 3]; 3], b: [[f64; 3]; 3]) -> bool {
    (0..3).any(|k| seg_tri(a[k], a[(k + 1) % 3], b))
        || (0..3).any(|k| seg_tri(b[k], b[(k + 1) % 3], a))
}
