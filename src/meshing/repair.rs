//! Repairs and checks a printable part needs: duplicate vertices, orientation, holes, small
//! islands, and a report of boundary / non-manifold edges and self-intersections.

use super::stages::StageTimes;
use crate::volume::TriMesh;
use rayon::prelude::*;
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
    /// Vertices where sheets touch at a point (more than one fan of faces).
    #[serde(default)]
    pub non_manifold_vertices: usize,
    pub components: usize,
    pub self_intersecting_pairs: usize,
    pub watertight: bool,
    pub manifold: bool,
}

/// Every face corner's edge as (lo << 32 | hi, corner = 3 × face + k), sorted: each run of one
/// key is the faces around one edge. A counting sort by the lower end (corners in order), then
/// each vertex's few edges by the higher end: the order of a full sort, in linear time.
pub(crate) fn sorted_edges(mesh: &TriMesh) -> Vec<(u64, u32)> {
    let key = |t: &[u32; 3], k: usize| {
        let (a, b) = (t[k], t[(k + 1) % 3]);
        (u64::from(a.min(b)) << 32) | u64::from(a.max(b))
    };
    let vertex_count = mesh
        .indices
        .par_iter()
        .map(|t| t[0].max(t[1]).max(t[2]) as usize + 1)
        .max()
        .unwrap_or(0);
    let mut start = vec![0u32; vertex_count + 1];
    for t in &mesh.indices {
        for k in 0..3 {
            start[(key(t, k) >> 32) as usize + 1] += 1;
        }
    }
    for v in 0..vertex_count {
        start[v + 1] += start[v];
    }
    let mut edges = vec![(0u64, 0u32); 3 * mesh.indices.len()];
    for (f, t) in mesh.indices.iter().enumerate() {
        for k in 0..3 {
            let e = key(t, k);
            let slot = &mut start[(e >> 32) as usize];
            edges[*slot as usize] = (e, (3 * f + k) as u32);
            *slot += 1;
        }
    }
    edges
        .par_chunk_by_mut(|x, y| x.0 >> 32 == y.0 >> 32)
        .for_each(|run| run.sort_unstable());
    edges
}

/// Runs of `sorted_edges` with one key.
fn edge_runs(edges: &[(u64, u32)]) -> impl Iterator<Item = &[(u64, u32)]> {
    edges.chunk_by(|x, y| x.0 == y.0)
}

/// Whether corner `c`'s edge runs from the lower vertex id to the higher.
fn runs_up(mesh: &TriMesh, c: u32) -> bool {
    let t = mesh.indices[c as usize / 3];
    let k = c as usize % 3;
    t[k] < t[(k + 1) % 3]
}

/// Counts boundary and non-manifold edges, components and self-intersections.
pub fn check(mesh: &TriMesh) -> MeshCheck {
    let edges = sorted_edges(mesh);
    let mut boundary = 0;
    let mut non_manifold = 0;
    for run in edge_runs(&edges) {
        let up = run.iter().filter(|e| runs_up(mesh, e.1)).count();
        match (up, run.len() - up) {
            (1, 1) => {}
            (1, 0) | (0, 1) => boundary += 1,
            _ => non_manifold += 1,
        }
    }
    let components = face_components(mesh).1;
    let self_intersecting_pairs = self_intersections(mesh, 100_000);
    let non_manifold_vertices = non_manifold_vertices(mesh, &edges);
    MeshCheck {
        faces: mesh.indices.len(),
        vertices: mesh.positions_world_mm.len(),
        boundary_edges: boundary,
        non_manifold_edges: non_manifold,
        non_manifold_vertices,
        components,
        self_intersecting_pairs,
        watertight: boundary == 0 && non_manifold == 0 && !mesh.indices.is_empty(),
        manifold: non_manifold == 0 && non_manifold_vertices == 0,
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
    let edges = sorted_edges(mesh);
    orient_outward_with(mesh, &edges);
}

/// [`orient_outward`] given the mesh's [`sorted_edges`]; returns whether any face was turned
/// (which makes them stale: a turned face's corners run along other edges).
pub(crate) fn orient_outward_with(mesh: &mut TriMesh, edges: &[(u64, u32)]) -> bool {
    // The face across each corner's edge when exactly two faces share it (else none): only
    // manifold edges are walked across.
    let across = faces_across(mesh, edges, false);
    let n = mesh.indices.len();
    let mut visited = vec![false; n];
    // Faces are flipped at the end, so `across` (by corner) stays valid during the walk.
    let mut flip = vec![false; n];
    let mut comp = vec![0u32; n];
    let mut comp_count = 0;
    let mut stack = Vec::new();
    for seed in 0..n {
        if visited[seed] {
            continue;
        }
        visited[seed] = true;
        comp[seed] = comp_count;
        stack.push(seed);
        while let Some(f) = stack.pop() {
            let t = mesh.indices[f];
            for k in 0..3 {
                let g = across[3 * f + k] as usize;
                if g == u32::MAX as usize || g == f || visited[g] {
                    continue;
                }
                let (a, b) = if flip[f] {
                    (t[(k + 1) % 3], t[k])
                } else {
                    (t[k], t[(k + 1) % 3])
                };
                // A consistent neighbour runs the shared edge b→a.
                let u = mesh.indices[g];
                flip[g] = (0..3).any(|m| u[m] == a && u[(m + 1) % 3] == b);
                visited[g] = true;
                comp[g] = comp_count;
                stack.push(g);
            }
        }
        comp_count += 1;
    }
    let mut turned = false;
    for (t, &flipped) in mesh.indices.iter_mut().zip(&flip) {
        if flipped {
            t.swap(1, 2);
            turned = true;
        }
    }
    // Relative to one vertex, so large LPS offsets do not cancel the digits of small shells.
    let origin = mesh
        .positions_world_mm
        .first()
        .map(|p| p.map(f64::from))
        .unwrap_or([0.0; 3]);
    let mut vol = vec![0.0f64; comp_count as usize];
    for f in 0..n {
        let [a, b, c] = mesh
            .face_corners(f)
            .map(|p| crate::volume::mesh::sub(p, origin));
        vol[comp[f] as usize] +=
            crate::volume::mesh::dot(a, crate::volume::mesh::cross(b, c)) / 6.0;
    }
    // A shell inside another (the wall of a cavity: a marrow canal, or the body around an
    // organ labelled apart) must face into the cavity, i.e. enclose negative volume; turning
    // it "outward" would print the cavity solid and count its volume twice.
    let depth = nesting_depths(mesh, &comp, comp_count as usize);
    let flip_comp: Vec<bool> = vol
        .iter()
        .zip(&depth)
        .map(|(&v, &d)| (v < 0.0) != (d % 2 == 1))
        .collect();
    for f in 0..n {
        if flip_comp[comp[f] as usize] {
            mesh.indices[f].swap(1, 2);
            turned = true;
        }
    }
    mesh.normals.clear();
    turned
}

/// For each face component, how many other components enclose it: the number of components
/// a ray from a point on it (along +x) crosses an odd number of times.
///
/// There is one query point per component and usually far fewer components than faces, so
/// the points (not the faces) are bucketed by (y, z), and the faces are scanned in parallel,
/// each against the points in the buckets its (y, z) bounds cover.
fn nesting_depths(mesh: &TriMesh, comp: &[u32], comp_count: usize) -> Vec<u32> {
    if comp_count <= 1 {
        return vec![0; comp_count];
    }
    let pos = |v: u32| mesh.positions_world_mm[v as usize].map(f64::from);
    // A point strictly inside one face of each component (uneven weights keep it off the
    // face's medians, where other shells' vertices could line up).
    let mut query = vec![None; comp_count];
    for (f, t) in mesh.indices.iter().enumerate() {
        let slot = &mut query[comp[f] as usize];
        if slot.is_none() {
            let [a, b, c] = t.map(pos);
            *slot = Some([0, 1, 2].map(|d| 0.31 * a[d] + 0.33 * b[d] + 0.36 * c[d]));
        }
    }
    let points: Vec<(u32, [f64; 3])> = query
        .iter()
        .enumerate()
        .filter_map(|(c, q)| q.map(|q| (c as u32, q)))
        .collect();
    let side = ((points.len() as f64).sqrt().ceil() as usize).clamp(1, 1024);
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for (_, q) in &points {
        for d in 0..2 {
            lo[d] = lo[d].min(q[d + 1]);
            hi[d] = hi[d].max(q[d + 1]);
        }
    }
    let scale = [0, 1].map(|d| {
        let extent = hi[d] - lo[d];
        if extent > 0.0 {
            side as f64 / extent
        } else {
            0.0
        }
    });
    let cell = |x: f64, d: usize| (((x - lo[d]) * scale[d]).max(0.0) as usize).min(side - 1);
    let mut start = vec![0u32; side * side + 1];
    for (_, q) in &points {
        start[cell(q[1], 0) + side * cell(q[2], 1) + 1] += 1;
    }
    for c in 0..side * side {
        start[c + 1] += start[c];
    }
    let mut fill: Vec<u32> = start[..side * side].to_vec();
    let mut bucket = vec![0u32; points.len()];
    for (i, (_, q)) in points.iter().enumerate() {
        let c = cell(q[1], 0) + side * cell(q[2], 1);
        bucket[fill[c] as usize] = i as u32;
        fill[c] += 1;
    }
    // (component of the query, component of a face its ray crosses), in any order: only the
    // parity of each pair's count matters.
    let mut crossings: Vec<(u32, u32)> = mesh
        .indices
        .par_iter()
        .enumerate()
        .fold(Vec::new, |mut out, (f, &t)| {
            let p = t.map(pos);
            let (y0, y1) = (
                p[0][1].min(p[1][1]).min(p[2][1]),
                p[0][1].max(p[1][1]).max(p[2][1]),
            );
            let (z0, z1) = (
                p[0][2].min(p[1][2]).min(p[2][2]),
                p[0][2].max(p[1][2]).max(p[2][2]),
            );
            if y1 < lo[0] || y0 > hi[0] || z1 < lo[1] || z0 > hi[1] {
                return out;
            }
            let own = comp[f];
            for cz in cell(z0, 1)..=cell(z1, 1) {
                for cy in cell(y0, 0)..=cell(y1, 0) {
                    let c = cy + side * cz;
                    for &i in &bucket[start[c] as usize..start[c + 1] as usize] {
                        let (qc, q) = points[i as usize];
                        if qc != own
                            && (y0..=y1).contains(&q[1])
                            && (z0..=z1).contains(&q[2])
                            && ray_crosses(mesh, t, q)
                        {
                            out.push((qc, own));
                        }
                    }
                }
            }
            out
        })
        .reduce(Vec::new, |mut a, mut b| {
            a.append(&mut b);
            a
        });
    crossings.par_sort_unstable();
    let mut depth = vec![0u32; comp_count];
    for run in crossings.chunk_by(|a, b| a == b) {
        if run.len() % 2 == 1 {
            depth[run[0].0 as usize] += 1;
        }
    }
    depth
}

/// Whether the ray from `q` along +x passes through triangle `t`. A ray through an edge or a
/// vertex is moved by an infinitesimal (Simulation of Simplicity, q + (0, ε, ε²)), computed the
/// same way for both faces of an edge, so it crosses exactly one of them.
fn ray_crosses(mesh: &TriMesh, t: [u32; 3], q: [f64; 3]) -> bool {
    let pos = |v: u32| mesh.positions_world_mm[v as usize].map(f64::from);
    // Side of q's projection on (y, z) relative to the directed edge a→b, computed from the
    // lower vertex id so the reversed edge of the neighbouring face gets exactly the negation.
    let side_of = |a: u32, b: u32| -> (f64, i8) {
        let (lo, hi, sign) = if a < b { (a, b, 1.0) } else { (b, a, -1.0) };
        let (p, r) = (pos(lo), pos(hi));
        let (dy, dz) = (r[1] - p[1], r[2] - p[2]);
        let e = dy * (q[2] - p[2]) - dz * (q[1] - p[1]);
        let s = if e != 0.0 {
            e.signum()
        } else if dz != 0.0 {
            -dz.signum()
        } else if dy != 0.0 {
            dy.signum()
        } else {
            0.0 // both ends project to one point: no side at all
        };
        (e * sign, (s * sign) as i8)
    };
    let edges = [(t[1], t[2]), (t[2], t[0]), (t[0], t[1])].map(|(a, b)| side_of(a, b));
    let s = edges[0].1;
    if s == 0 || edges.iter().any(|e| e.1 != s) {
        return false;
    }
    // Barycentric weights of the corners opposite each edge give the hit's x.
    let w = edges.map(|e| e.0);
    let total = w[0] + w[1] + w[2];
    if total == 0.0 {
        return false;
    }
    let x = (w[0] * pos(t[0])[0] + w[1] * pos(t[1])[0] + w[2] * pos(t[2])[0]) / total;
    x > q[0]
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

/// [`fill_holes`] (when `fill`), [`orient_outward`] and [`split_non_manifold`] in turn, on one
/// edge table: it is sorted again only after a repair that changes it, which on a closed,
/// consistently wound surface (what extraction and decimation make) none does. Each step's
/// time goes to `times`.
pub(crate) fn fill_orient_split(mesh: &mut TriMesh, fill: bool, times: &StageTimes) {
    let mut edges = times.time("repair: edge table", || sorted_edges(mesh));
    if fill && times.time("fill holes", || fill_holes_with(mesh, &edges)) > 0 {
        edges = times.time("repair: edge table", || sorted_edges(mesh));
    }
    if times.time("orient outward", || orient_outward_with(mesh, &edges)) {
        edges = times.time("repair: edge table", || sorted_edges(mesh));
    }
    times.time("split non-manifold", || {
        split_non_manifold_with(mesh, &edges)
    });
}

/// Closes each boundary loop with a fan around its centroid; returns the number of holes filled.
pub fn fill_holes(mesh: &mut TriMesh) -> usize {
    let edges = sorted_edges(mesh);
    fill_holes_with(mesh, &edges)
}

/// [`fill_holes`] given the mesh's [`sorted_edges`]; they are stale once it returns non-zero
/// (the patches' edges are not in them).
pub(crate) fn fill_holes_with(mesh: &mut TriMesh, edges: &[(u64, u32)]) -> usize {
    // Directed boundary edges a→b; the patch must run b→a.
    let mut next: HashMap<u32, u32> = HashMap::new();
    for run in edge_runs(edges) {
        if let [(_, c)] = run {
            let t = mesh.indices[*c as usize / 3];
            let k = *c as usize % 3;
            next.insert(t[(k + 1) % 3], t[k]);
        }
    }
    let mut filled = 0;
    let mut done: std::collections::HashSet<u32> = Default::default();
    // In id order, not the map's (random) order: each loop's fan then starts at its lowest
    // vertex, and the same mesh gets the same patches, face for face, every run.
    let mut starts: Vec<u32> = next.keys().copied().collect();
    starts.sort_unstable();
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

/// Splits non-manifold edges and vertices so every edge has exactly two faces and every
/// vertex one fan; returns the number of vertex copies added.
///
/// Where voxels of a part touch only along an edge or at a corner (diagonal contacts), four
/// faces share an edge or two fans share a vertex. Around such an edge the faces are paired
/// by angle so each pair encloses solid (the part's own wedge), then each vertex gets one copy
/// per fan. Copies move a tenth of the way into their own fan, so readers that weld by
/// position (STL, slicers) keep the sheets apart. Call it on an outward-oriented mesh.
pub fn split_non_manifold(mesh: &mut TriMesh) -> usize {
    let edges = sorted_edges(mesh);
    split_non_manifold_with(mesh, &edges)
}

/// [`split_non_manifold`] given the mesh's [`sorted_edges`].
pub(crate) fn split_non_manifold_with(mesh: &mut TriMesh, edges: &[(u64, u32)]) -> usize {
    if mesh.indices.is_empty() {
        return 0;
    }
    let irregular = irregular_vertices(mesh, edges);
    if !irregular.contains(&true) {
        return 0;
    }
    split_at(mesh, edges, Some(&irregular))
}

/// Splits the vertices whose corners form more than one class; only the vertices marked in
/// `only` (all, when `None`) can be split: every other one must be one fan.
fn split_at(mesh: &mut TriMesh, edges: &[(u64, u32)], only: Option<&[bool]>) -> usize {
    let n = mesh.indices.len();
    let mut parent = corner_classes(mesh, edges, true, only);
    // One vertex per corner class; the first class met at a vertex keeps its id.
    let vertex_count = mesh.positions_world_mm.len();
    let mut owner: Vec<u32> = vec![u32::MAX; vertex_count];
    let mut copy_of_root: HashMap<u32, u32> = HashMap::new();
    let mut origin: Vec<u32> = Vec::new();
    for f in 0..n {
        for k in 0..3 {
            let v = mesh.indices[f][k];
            if only.is_some_and(|only| !only[v as usize]) {
                continue;
            }
            let root = find(&mut parent, (f * 3 + k) as u32);
            let id = if owner[v as usize] == u32::MAX {
                owner[v as usize] = root;
                v
            } else if owner[v as usize] == root {
                v
            } else {
                *copy_of_root.entry(root).or_insert_with(|| {
                    origin.push(v);
                    mesh.positions_world_mm
                        .push(mesh.positions_world_mm[v as usize]);
                    mesh.positions_world_mm.len() as u32 - 1
                })
            };
            mesh.indices[f][k] = id;
        }
    }
    let added = origin.len();
    if added == 0 {
        return 0;
    }
    // Every copy of a split vertex (the original included) moves into its own fan.
    let mut split = vec![false; mesh.positions_world_mm.len()];
    for &o in &origin {
        split[o as usize] = true;
    }
    split[vertex_count..].iter_mut().for_each(|s| *s = true);
    let mut sum = vec![[0.0f64; 4]; mesh.positions_world_mm.len()];
    for t in &mesh.indices {
        for k in 0..3 {
            let v = t[k] as usize;
            if !split[v] {
                continue;
            }
            for m in [t[(k + 1) % 3], t[(k + 2) % 3]] {
                let q = mesh.positions_world_mm[m as usize];
                for d in 0..3 {
                    sum[v][d] += f64::from(q[d]);
                }
                sum[v][3] += 1.0;
            }
        }
    }
    for (v, s) in sum.iter().enumerate() {
        if split[v] && s[3] > 0.0 {
            let p = &mut mesh.positions_world_mm[v];
            for d in 0..3 {
                let c = s[d] / s[3];
                p[d] += (0.1 * (c - f64::from(p[d]))) as f32;
            }
        }
    }
    mesh.normals.clear();
    added
}

/// The face across each corner's edge where exactly two faces share that edge (running
/// opposite ways, when `opposite`), else `u32::MAX`: how walks over a surface cross its edges.
fn faces_across(mesh: &TriMesh, edges: &[(u64, u32)], opposite: bool) -> Vec<u32> {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    let across: Vec<AtomicU32> = (0..3 * mesh.indices.len())
        .into_par_iter()
        .map(|_| AtomicU32::new(u32::MAX))
        .collect();
    edges.par_chunk_by(|x, y| x.0 == y.0).for_each(|run| {
        if let [(_, c0), (_, c1)] = run {
            if !opposite || runs_up(mesh, *c0) != runs_up(mesh, *c1) {
                across[*c0 as usize].store(c1 / 3, Relaxed);
                across[*c1 as usize].store(c0 / 3, Relaxed);
            }
        }
    });
    across.into_par_iter().map(AtomicU32::into_inner).collect()
}

/// The vertices a split may change: the ends of every edge that does not join exactly two
/// faces running opposite ways, and the vertices whose faces form more than one fan (found by
/// walking around each vertex). Extraction and decimation leave few or none, and this runs
/// in parallel, so the serial union-find is left with those few.
fn irregular_vertices(mesh: &TriMesh, edges: &[(u64, u32)]) -> Vec<bool> {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let vertex_count = mesh.positions_world_mm.len();
    let irregular: Vec<AtomicBool> = (0..vertex_count)
        .into_par_iter()
        .map(|_| AtomicBool::new(false))
        .collect();
    let across = faces_across(mesh, edges, true);
    // Both ends of every edge that is not a pair.
    across.par_iter().enumerate().for_each(|(c, &g)| {
        if g == u32::MAX {
            let t = mesh.indices[c / 3];
            irregular[t[c % 3] as usize].store(true, Relaxed);
            irregular[t[(c + 1) % 3] as usize].store(true, Relaxed);
        }
    });
    // Each vertex's corner count and first corner, then a walk around it from that corner:
    // one fan iff the walk meets every corner before it comes back.
    let mut corners = vec![0u32; vertex_count];
    let mut first = vec![u32::MAX; vertex_count];
    for (f, t) in mesh.indices.iter().enumerate() {
        for (k, &v) in t.iter().enumerate() {
            corners[v as usize] += 1;
            if first[v as usize] == u32::MAX {
                first[v as usize] = (3 * f + k) as u32;
            }
        }
    }
    irregular
        .into_par_iter()
        .zip(first)
        .zip(corners)
        .map(|((irregular, start), count)| {
            if irregular.into_inner() {
                return true;
            }
            if start == u32::MAX {
                return false;
            }
            let v = mesh.indices[start as usize / 3][start as usize % 3];
            let mut c = start;
            for step in 1..=count {
                // Across the edge leaving v at corner c, then on along that face's other edge
                // at v (every edge at v is paired, or v would be marked already).
                let g = across[c as usize];
                let Some(k) = mesh
                    .indices
                    .get(g as usize)
                    .and_then(|t| t.iter().position(|&w| w == v))
                else {
                    return true;
                };
                c = 3 * g + k as u32;
                if c == start {
                    // A cycle through `step` distinct corners at v: all of them, or a pinch.
                    return step != count;
                }
            }
            true
        })
        .collect()
}

fn find(p: &mut [u32], mut x: u32) -> u32 {
    while p[x as usize] != x {
        p[x as usize] = p[p[x as usize] as usize];
        x = p[x as usize];
    }
    x
}

/// Union-find over face corners (`3 * face + k`): corners at one vertex are joined across
/// every manifold edge, and across non-manifold edges by angular pairing when `pair_wedges`.
/// Each class is one fan, i.e. one vertex of a manifold mesh. With `only`, corners are joined
/// at the marked vertices only (the edges without a marked end are skipped): the classes
/// there are the same, and every other corner stays a class of its own.
fn corner_classes(
    mesh: &TriMesh,
    edges: &[(u64, u32)],
    pair_wedges: bool,
    only: Option<&[bool]>,
) -> Vec<u32> {
    let n = mesh.indices.len();
    let marked = |v: u32| only.is_none_or(|only| only[v as usize]);
    // (edge key, face, runs lo→hi) sorted by key: the faces around each edge.
    let edges: Vec<(u64, u32, bool)> = edges
        .par_iter()
        .filter(|&&(key, _)| marked((key >> 32) as u32) || marked(key as u32))
        .map(|&(key, c)| (key, c / 3, runs_up(mesh, c)))
        .collect();
    let mut parent: Vec<u32> = (0..3 * n as u32).into_par_iter().collect();
    let corner = |f: u32, v: u32| -> u32 {
        let t = mesh.indices[f as usize];
        let k = if t[0] == v {
            0
        } else if t[1] == v {
            1
        } else {
            2
        };
        f * 3 + k
    };
    let join = |parent: &mut Vec<u32>, f: u32, g: u32, a: u32, b: u32| {
        for v in [a, b].into_iter().filter(|&v| marked(v)) {
            let (rx, ry) = (find(parent, corner(f, v)), find(parent, corner(g, v)));
            if rx != ry {
                parent[rx as usize] = ry;
            }
        }
    };
    // Manifold edges first, so the fans they make are known when the others are paired.
    let mut crowded: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    while start < edges.len() {
        let mut end = start + 1;
        while end < edges.len() && edges[end].0 == edges[start].0 {
            end += 1;
        }
        let group = &edges[start..end];
        let (a, b) = ((group[0].0 >> 32) as u32, group[0].0 as u32);
        if group.len() == 2 && group[0].2 != group[1].2 {
            join(&mut parent, group[0].1, group[1].1, a, b);
        } else if pair_wedges && group.len() >= 4 && group.len() % 2 == 0 {
            crowded.push(start..end);
        }
        start = end;
    }
    for range in crowded {
        let group = &edges[range];
        let (a, b) = ((group[0].0 >> 32) as u32, group[0].0 as u32);
        // Faces already in one fan at an end of the edge are two ends of one sheet around
        // that vertex: pairing them closes the sheet there (and splits the vertex from the
        // other sheet). Otherwise pair by angle.
        let by_fan = [b, a].into_iter().find_map(|v| {
            let roots: Vec<(u32, u32, bool)> = group
                .iter()
                .map(|&(_, f, fwd)| (find(&mut parent, corner(f, v)), f, fwd))
                .collect();
            pair_within_classes(&roots)
        });
        let pairs = by_fan.unwrap_or_else(|| pair_faces_around_edge(mesh, a, b, group));
        for (f, g) in pairs {
            join(&mut parent, f, g, a, b);
        }
    }
    parent
}

/// Pairs faces (root, face, runs lo→hi) that share a root, one of each direction; `None`
/// unless every face gets a partner and the classes are not all one.
fn pair_within_classes(roots: &[(u32, u32, bool)]) -> Option<Vec<(u32, u32)>> {
    let first_root = roots.first()?.0;
    if roots.iter().all(|r| r.0 == first_root) {
        return None;
    }
    let mut pairs = Vec::new();
    let mut used = vec![false; roots.len()];
    for i in 0..roots.len() {
        if used[i] {
            continue;
        }
        let j = (i + 1..roots.len())
            .find(|&j| !used[j] && roots[j].0 == roots[i].0 && roots[j].2 != roots[i].2)?;
        used[i] = true;
        used[j] = true;
        pairs.push((roots[i].1, roots[j].1));
    }
    Some(pairs)
}

/// Vertices whose faces form more than one fan (sheets touching at a point).
fn non_manifold_vertices(mesh: &TriMesh, edges: &[(u64, u32)]) -> usize {
    let mut parent = corner_classes(mesh, edges, false, None);
    let mut owner: Vec<u32> = vec![u32::MAX; mesh.positions_world_mm.len()];
    let mut pinched = vec![false; mesh.positions_world_mm.len()];
    for f in 0..mesh.indices.len() {
        for k in 0..3 {
            let v = mesh.indices[f][k] as usize;
            let root = find(&mut parent, (f * 3 + k) as u32);
            if owner[v] == u32::MAX {
                owner[v] = root;
            } else if owner[v] != root {
                pinched[v] = true;
            }
        }
    }
    pinched.iter().filter(|&&p| p).count()
}

/// Pairs the faces around edge a–b so each pair bounds one solid wedge; empty when the faces
/// do not alternate in orientation (then the edge is left as it is).
fn pair_faces_around_edge(
    mesh: &TriMesh,
    a: u32,
    b: u32,
    group: &[(u64, u32, bool)],
) -> Vec<(u32, u32)> {
    use crate::volume::mesh::{cross, dot, norm, sub};
    let pa = mesh.positions_world_mm[a as usize].map(f64::from);
    let pb = mesh.positions_world_mm[b as usize].map(f64::from);
    let axis = sub(pb, pa);
    let len = norm(axis);
    if len == 0.0 {
        return Vec::new();
    }
    let d = axis.map(|x| x / len);
    // Any unit vector perpendicular to d, and the third axis of a right-handed frame.
    let helper = if d[0].abs() < 0.9 {
        [1.0, 0.0, 0.0]
    } else {
        [0.0, 1.0, 0.0]
    };
    let e1 = {
        let c = cross(d, helper);
        let l = norm(c);
        c.map(|x| x / l)
    };
    let e2 = cross(d, e1);
    // (angle, face, normal points towards increasing angle)
    let mut around: Vec<(f64, u32, bool)> = group
        .iter()
        .map(|&(_, f, _)| {
            let t = mesh.indices[f as usize];
            let c = t.iter().copied().find(|&v| v != a && v != b).unwrap_or(a);
            let pc = mesh.positions_world_mm[c as usize].map(f64::from);
            let r = sub(pc, pa);
            let along = dot(r, d);
            let r = [0, 1, 2].map(|i| r[i] - along * d[i]);
            let angle = dot(r, e2).atan2(dot(r, e1));
            let tangent = cross(d, r);
            let normal = mesh.face_normal_scaled(f as usize);
            (angle, f, dot(normal, tangent) > 0.0)
        })
        .collect();
    around.sort_by(|x, y| x.0.total_cmp(&y.0));
    let m = around.len();
    // A face whose normal points back (towards smaller angles) opens a wedge of solid that the
    // next face in angular order closes.
    if let Some(first) = (0..m).find(|&i| !around[i].2 && around[(i + 1) % m].2) {
        let wedges: Option<Vec<(u32, u32)>> = (0..m / 2)
            .map(|p| {
                let i = (first + 2 * p) % m;
                let j = (i + 1) % m;
                (!around[i].2 && around[j].2).then_some((around[i].1, around[j].1))
            })
            .collect();
        if let Some(pairs) = wedges {
            return pairs;
        }
    }
    // Smoothing can fold the sheets near the edge so the angles no longer alternate. Any
    // pairing of a face running a→b with one running b→a still makes the edge manifold: pair
    // each face with the next unpaired face of the other direction, in angular order.
    let direction = |f: u32| {
        group
            .iter()
            .find(|g| g.1 == f)
            .map(|g| g.2)
            .unwrap_or(false)
    };
    let order: Vec<(u32, bool)> = around.iter().map(|x| (x.1, direction(x.1))).collect();
    let mut used = vec![false; m];
    let mut pairs = Vec::with_capacity(m / 2);
    for i in 0..m {
        if used[i] {
            continue;
        }
        let Some(j) = (1..m)
            .map(|s| (i + s) % m)
            .find(|&j| !used[j] && order[j].1 != order[i].1)
        else {
            return Vec::new();
        };
        used[i] = true;
        used[j] = true;
        pairs.push((order[i].0, order[j].0));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_sorted_edges_equal_a_full_sort() {
        // Random faces over few vertices, so edges repeat and some faces are degenerate.
        let indices: Vec<[u32; 3]> = (0..3000u32)
            .map(|f| [0, 1, 2].map(|k| (f * 3 + k).wrapping_mul(2_654_435_761) >> 25))
            .collect();
        let mesh = TriMesh::new(vec![[0.0; 3]; 128], indices);
        let mut expected: Vec<(u64, u32)> = Vec::new();
        for (f, t) in mesh.indices.iter().enumerate() {
            for k in 0..3 {
                let (a, b) = (t[k], t[(k + 1) % 3]);
                let key = (u64::from(a.min(b)) << 32) | u64::from(a.max(b));
                expected.push((key, (3 * f + k) as u32));
            }
        }
        expected.sort_unstable();
        assert_eq!(sorted_edges(&mesh), expected);
    }

    /// The boundary of a union of unit voxels at integer corners, sharing vertices by
    /// position, outward (faces between two voxels are dropped).
    fn cubes(corners: &[[i32; 3]]) -> TriMesh {
        let mut ids: HashMap<[i32; 3], u32> = HashMap::new();
        let mut positions = Vec::new();
        let mut quads: Vec<[u32; 4]> = Vec::new();
        // Each face as 4 corner offsets, counter-clockwise seen from outside.
        const FACES: [[[i32; 3]; 4]; 6] = [
            [[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]],
            [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
            [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]],
            [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]],
            [[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]],
            [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]],
        ];
        for c in corners {
            for face in FACES {
                let q = face.map(|o| {
                    let p = [c[0] + o[0], c[1] + o[1], c[2] + o[2]];
                    *ids.entry(p).or_insert_with(|| {
                        positions.push(p.map(|x| x as f32));
                        positions.len() as u32 - 1
                    })
                });
                quads.push(q);
            }
        }
        let key = |q: &[u32; 4]| {
            let mut k = *q;
            k.sort_unstable();
            k
        };
        let mut count: HashMap<[u32; 4], usize> = HashMap::new();
        for q in &quads {
            *count.entry(key(q)).or_default() += 1;
        }
        let indices = quads
            .iter()
            .filter(|q| count[&key(q)] == 1)
            .flat_map(|q| [[q[0], q[1], q[2]], [q[0], q[2], q[3]]])
            .collect();
        TriMesh::new(positions, indices)
    }

    /// A cube `[lo, lo + size]³` of 12 triangles, outward when `outward`.
    fn box_shell(lo: f32, size: f32, outward: bool) -> TriMesh {
        let mut m = cubes(&[[0, 0, 0]]);
        for p in &mut m.positions_world_mm {
            *p = p.map(|x| lo + size * x);
        }
        if !outward {
            m.indices.iter_mut().for_each(|t| t.swap(1, 2));
        }
        m
    }

    fn union(parts: &[TriMesh]) -> TriMesh {
        let mut positions = Vec::new();
        let mut indices = Vec::new();
        for m in parts {
            let base = positions.len() as u32;
            positions.extend_from_slice(&m.positions_world_mm);
            indices.extend(m.indices.iter().map(|t| t.map(|v| v + base)));
        }
        TriMesh::new(positions, indices)
    }

    #[test]
    fn repairs_on_one_edge_table_match_the_repairs_one_by_one() {
        // Every repair has work here: cubes touching along an edge (non-manifold), a face
        // taken out (a hole), shells wound inward and a cavity.
        let mut touching = cubes(&[[0, 0, 0], [1, 1, 0]]);
        touching.indices.remove(3);
        let cases = [
            touching,
            union(&[box_shell(0.0, 6.0, false), box_shell(2.0, 2.0, true)]),
            cubes(&[[0, 0, 0], [1, 0, 0]]),
        ];
        for (i, case) in cases.into_iter().enumerate() {
            for fill in [false, true] {
                let mut apart = case.clone();
                if fill {
                    fill_holes(&mut apart);
                }
                orient_outward(&mut apart);
                split_non_manifold(&mut apart);
                let mut shared = case.clone();
                let times = StageTimes::default();
                fill_orient_split(&mut shared, fill, &times);
                assert_eq!(shared, apart, "case {i}, fill {fill}");
            }
        }
    }

    #[test]
    fn a_cavity_shell_faces_into_the_cavity() {
        // A 6 mm box with a 2 mm cavity, inside which sits a 1 mm island (a cavity's content
        // is solid again), and a 1 mm box outside; every orientation combination.
        let expected = 216.0 - 8.0 + 1.0 + 1.0;
        for flips in 0..16u32 {
            let mut m = union(&[
                box_shell(0.0, 6.0, flips & 1 == 0),
                box_shell(2.0, 2.0, flips & 2 == 0),
                box_shell(2.5, 1.0, flips & 4 == 0),
                box_shell(10.0, 1.0, flips & 8 == 0),
            ]);
            // Far from the origin, where LPS puts a scan.
            for p in &mut m.positions_world_mm {
                p[0] += 300.0;
                p[2] -= 900.0;
            }
            orient_outward(&mut m);
            let v = m.signed_volume_mm3();
            assert!((v - expected).abs() < 1e-3, "flips {flips:04b}: volume {v}");
        }
    }

    #[test]
    fn nesting_depths_count_the_shells_around_each_shell_over_many_buckets() {
        // Nine boxes-with-a-cavity-and-an-island spread over (y, z), so the query points fall
        // into many buckets and a face's bounds cover only some of them: depths 0, 1, 2.
        let mut parts = Vec::new();
        for gy in 0..3 {
            for gz in 0..3 {
                let offset = [gy as f32 * 3.0, gy as f32 * 10.0, gz as f32 * 10.0 - 400.0];
                for (lo, size) in [(0.0, 6.0), (2.0, 2.0), (2.5, 1.0)] {
                    let mut shell = box_shell(lo, size, true);
                    for p in &mut shell.positions_world_mm {
                        for d in 0..3 {
                            p[d] += offset[d];
                        }
                    }
                    parts.push(shell);
                }
            }
        }
        let m = union(&parts);
        let (comp, count) = face_components(&m);
        assert_eq!(count, 27);
        let depth = nesting_depths(&m, &comp, count);
        // Components are numbered in face order: shell k of the union is component k.
        let expected: Vec<u32> = (0..27).map(|k| k % 3).collect();
        assert_eq!(depth, expected);
    }

    #[test]
    fn rays_through_shared_edges_and_vertices_cross_a_closed_shell_by_parity() {
        // Rays level with the unit cube's edges, corners and face diagonals: the infinitesimal
        // shift (+ε in y, +ε² in z) decides which side they pass, and each face they pass is
        // counted once, so the count's parity says whether the start is inside.
        let m = cubes(&[[0, 0, 0]]);
        for (q, expected) in [
            ([-1.0, 0.5, 0.5], 2), // through the x = 0 face's diagonal
            ([-1.0, 0.0, 0.0], 2), // along an edge, shifted into the cube
            ([-1.0, 1.0, 0.5], 0), // along the y = 1 face, shifted off it
            ([-1.0, 0.5, 1.0], 0),
            ([0.5, 0.5, 0.5], 1),
            ([0.5, 0.0, 0.5], 1),
        ] {
            let hits = m.indices.iter().filter(|&&t| ray_crosses(&m, t, q)).count();
            assert_eq!(hits, expected, "query {q:?}");
        }
    }

    #[test]
    fn a_single_cube_is_closed_and_manifold() {
        let mut m = cubes(&[[0, 0, 0]]);
        let c = check(&m);
        assert!(c.watertight && c.manifold, "{c:?}");
        assert!((m.signed_volume_mm3() - 1.0).abs() < 1e-9);
        assert_eq!(split_non_manifold(&mut m), 0);
    }

    #[test]
    fn a_split_limited_to_the_irregular_vertices_equals_the_whole_union_find() {
        // Random voxel sets in a 3×3×3 grid: closed surfaces, some pinched at a corner or
        // crowded along an edge; every tenth with a face taken out.
        let mut seed = 12345u32;
        let mut seen = [0usize; 2];
        for case in 0..300 {
            let mut voxels = Vec::new();
            for i in 0..27 {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if seed >> 30 == 0 {
                    voxels.push([i % 3, i / 3 % 3, i / 9]);
                }
            }
            if voxels.is_empty() {
                continue;
            }
            let mut m = cubes(&voxels);
            if case % 10 == 0 {
                m.indices.pop();
            }
            let edges = sorted_edges(&m);
            let c = check(&m);
            let regular = c.boundary_edges == 0 && c.non_manifold_edges == 0 && c.manifold;
            let irregular = irregular_vertices(&m, &edges);
            assert_eq!(
                !irregular.contains(&true),
                regular,
                "case {case}: {voxels:?}"
            );
            seen[usize::from(regular)] += 1;
            let mut whole = m.clone();
            let added = split_at(&mut whole, &edges, None);
            let mut limited = m.clone();
            assert_eq!(
                split_non_manifold_with(&mut limited, &edges),
                added,
                "case {case}"
            );
            assert_eq!(limited, whole, "case {case}: {voxels:?}");
        }
        assert!(seen[0] > 10 && seen[1] > 10, "{seen:?}");
    }

    #[test]
    fn cubes_touching_along_an_edge_split_into_two_closed_sheets() {
        let mut m = cubes(&[[0, 0, 0], [1, 1, 0]]);
        let before = check(&m);
        assert_eq!(before.non_manifold_edges, 1, "{before:?}");
        assert!(!before.manifold);
        // The two ends of the shared edge get a second copy each.
        assert_eq!(split_non_manifold(&mut m), 2);
        let after = check(&m);
        assert!(after.watertight && after.manifold, "{after:?}");
        assert_eq!(after.components, 2);
        // Only the four copies at the contact move, a tenth of the way to their ring's
        // centroid; on 1 mm cubes that shaves a sliver off each cube's edge.
        let v = m.signed_volume_mm3();
        assert!((v - 2.0).abs() < 0.2, "volume {v}");
    }

    #[test]
    fn cubes_touching_at_a_corner_split_the_vertex() {
        let mut m = cubes(&[[0, 0, 0], [1, 1, 1]]);
        let before = check(&m);
        assert_eq!(
            (before.non_manifold_edges, before.non_manifold_vertices),
            (0, 1)
        );
        assert!(!before.manifold);
        assert_eq!(split_non_manifold(&mut m), 1);
        let after = check(&m);
        assert!(after.watertight && after.manifold, "{after:?}");
    }

    #[test]
    fn diagonal_voxels_of_a_checkerboard_column_stay_closed() {
        // Four cubes meeting around one vertical line, two by two diagonally, stacked twice:
        // edges with four faces all along the line.
        let mut m = cubes(&[[0, 0, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1]]);
        assert!(check(&m).non_manifold_edges >= 2);
        split_non_manifold(&mut m);
        let after = check(&m);
        assert!(after.watertight && after.manifold, "{after:?}");
        assert_eq!(after.components, 2);
    }
}
