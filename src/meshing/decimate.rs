//! Quadric-error edge collapse (Garland & Heckbert 1997) with the link condition, so a
//! manifold stays manifold, and a normal check, so no face flips over.
//!
//! Collapses run in passes rather than from one global priority queue: each pass ranks the
//! edges by cost, then collapses the cheapest in order, skipping any edge with an end that an
//! earlier collapse of the same pass moved (the survivor) or removed. Faces are renamed in
//! place, so any other vertex's faces are still its pass-start faces minus the removed ones:
//! the checks of every collapse see the current surface, and the cost of every edge a pass
//! collapses is exact. An edge's cost is recomputed only when a collapse moved one of its ends.

use super::MeshingError;
use crate::jobs::JobContext;
use crate::volume::TriMesh;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// When to stop collapsing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum DecimateTarget {
    /// Stop at this many faces (or when no legal collapse is left).
    Faces(usize),
    /// Stop before a collapse would move the surface further than this (quadric estimate).
    MaxErrorMm(f64),
}

type Quadric = [f64; 10];

fn plane_quadric(n: [f64; 3], d: f64) -> Quadric {
    let [a, b, c] = n;
    [
        a * a,
        a * b,
        a * c,
        a * d,
        b * b,
        b * c,
        b * d,
        c * c,
        c * d,
        d * d,
    ]
}

fn add(q: &mut Quadric, r: &Quadric) {
    for i in 0..10 {
        q[i] += r[i];
    }
}

fn eval(q: &Quadric, p: [f64; 3]) -> f64 {
    let [x, y, z] = p;
    q[0] * x * x
        + 2.0 * q[1] * x * y
        + 2.0 * q[2] * x * z
        + 2.0 * q[3] * x
        + q[4] * y * y
        + 2.0 * q[5] * y * z
        + 2.0 * q[6] * y
        + q[7] * z * z
        + 2.0 * q[8] * z
        + q[9]
}

/// Minimiser of the quadric when well conditioned, else the best of the ends and midpoint.
fn best_point(q: &Quadric, a: [f64; 3], b: [f64; 3]) -> ([f64; 3], f64) {
    // Symmetric 3×3 system [q0 q1 q2; q1 q4 q5; q2 q5 q7] p = -[q3 q6 q8], by cofactors.
    let c00 = q[4] * q[7] - q[5] * q[5];
    let c01 = q[2] * q[5] - q[1] * q[7];
    let c02 = q[1] * q[5] - q[2] * q[4];
    let det = q[0] * c00 + q[1] * c01 + q[2] * c02;
    let mid = [0, 1, 2].map(|d| 0.5 * (a[d] + b[d]));
    let edge2: f64 = (0..3).map(|d| (a[d] - b[d]).powi(2)).sum();
    if det.abs() > 1e-12 {
        let c11 = q[0] * q[7] - q[2] * q[2];
        let c12 = q[1] * q[2] - q[0] * q[5];
        let c22 = q[0] * q[4] - q[1] * q[1];
        let r = [-q[3], -q[6], -q[8]];
        let inv = 1.0 / det;
        let p = [
            (c00 * r[0] + c01 * r[1] + c02 * r[2]) * inv,
            (c01 * r[0] + c11 * r[1] + c12 * r[2]) * inv,
            (c02 * r[0] + c12 * r[1] + c22 * r[2]) * inv,
        ];
        let off2: f64 = (0..3).map(|d| (p[d] - mid[d]).powi(2)).sum();
        // A far-away optimum means a near-singular quadric (flat region): do not trust it.
        if p.iter().all(|x| x.is_finite()) && off2 <= edge2 * 4.0 {
            return (p, eval(q, p).max(0.0));
        }
    }
    [a, b, mid]
        .into_iter()
        .map(|p| (p, eval(q, p).max(0.0)))
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .unwrap_or((mid, 0.0))
}

/// Sorts by cost, cheapest first: an LSD radix sort on the cost's bits (costs are ≥ 0, so
/// their IEEE bits order like the values), linear where a comparison sort is not.
fn sort_by_cost(items: &mut Vec<Candidate>, scratch: &mut Vec<Candidate>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    scratch.clear();
    scratch.resize(
        items.len(),
        Candidate {
            cost: 0.0,
            u: 0,
            v: 0,
        },
    );
    for pass in 0..32u32.div_ceil(BITS) {
        let shift = pass * BITS;
        let digit = |c: &Candidate| ((c.cost.abs().to_bits() >> shift) as usize) & (BUCKETS - 1);
        let mut count = vec![0usize; BUCKETS + 1];
        for c in items.iter() {
            count[digit(c) + 1] += 1;
        }
        if count.iter().any(|&n| n == items.len()) {
            continue; // every key has this digit: the pass would not move anything
        }
        for d in 0..BUCKETS {
            count[d + 1] += count[d];
        }
        for c in items.iter() {
            let slot = &mut count[digit(c)];
            scratch[*slot] = *c;
            *slot += 1;
        }
        std::mem::swap(items, scratch);
    }
}

fn normal(a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> [f64; 3] {
    let u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ]
}

/// Marks a removed face (its first corner).
const DEAD: u32 = u32::MAX;

/// Faces around each vertex, in compressed rows, for the live faces at the start of a pass.
struct Incidence {
    start: Vec<u32>,
    faces: Vec<u32>,
}

impl Incidence {
    fn build(vertex_count: usize, faces: &[[u32; 3]]) -> Self {
        let mut start = vec![0u32; vertex_count + 1];
        for t in faces.iter().filter(|t| t[0] != DEAD) {
            for &v in t {
                start[v as usize + 1] += 1;
            }
        }
        for v in 0..vertex_count {
            start[v + 1] += start[v];
        }
        let mut fill: Vec<u32> = start[..vertex_count].to_vec();
        let mut list = vec![0u32; start[vertex_count] as usize];
        for (f, t) in faces.iter().enumerate().filter(|(_, t)| t[0] != DEAD) {
            for &v in t {
                list[fill[v as usize] as usize] = f as u32;
                fill[v as usize] += 1;
            }
        }
        Self { start, faces: list }
    }

    fn of(&self, v: u32) -> &[u32] {
        &self.faces[self.start[v as usize] as usize..self.start[v as usize + 1] as usize]
    }
}

/// Unit-normal plane quadric of a face; zero for a degenerate face.
fn face_quadric(pos: &[[f64; 3]], t: [u32; 3]) -> Quadric {
    let p = t.map(|v| pos[v as usize]);
    let nrm = normal(p[0], p[1], p[2]);
    let len = (nrm[0].powi(2) + nrm[1].powi(2) + nrm[2].powi(2)).sqrt();
    if len > 0.0 {
        let u = nrm.map(|x| x / len);
        plane_quadric(u, -(u[0] * p[0][0] + u[1] * p[0][1] + u[2] * p[0][2]))
    } else {
        [0.0; 10]
    }
}

#[derive(Clone, Copy)]
struct Candidate {
    cost: f32,
    u: u32,
    v: u32,
}

/// Working state of one decimation; `pos` and `quadric` are per vertex.
struct State {
    pos: Vec<[f64; 3]>,
    faces: Vec<[u32; 3]>,
    quadric: Vec<Quadric>,
    /// Survivors and removed vertices of this pass's collapses: their rows of the pass-start
    /// vertex→face table are stale, and edges at a survivor need a new cost.
    locked: Vec<bool>,
    /// Scratch neighbour lists, reused across collapses.
    nu: Vec<u32>,
    nv: Vec<u32>,
}

impl State {
    fn collapse_point(&self, u: u32, v: u32) -> ([f64; 3], f64) {
        let mut q = self.quadric[u as usize];
        add(&mut q, &self.quadric[v as usize]);
        best_point(&q, self.pos[u as usize], self.pos[v as usize])
    }

    fn neighbours_into(&self, inc: &Incidence, v: u32, out: &mut Vec<u32>) {
        out.clear();
        for &f in inc.of(v) {
            let t = self.faces[f as usize];
            if t[0] == DEAD {
                continue;
            }
            out.extend(t.iter().copied().filter(|&w| w != v));
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Checks and, if legal, performs the collapse of `v` into `u` at `p`. Neither end may be
    /// locked, so their rows of `inc` (less removed faces) are still exact.
    fn try_collapse(&mut self, inc: &Incidence, u: u32, v: u32, p: [f64; 3]) -> bool {
        let mut shared = [0u32; 2];
        let mut shared_count = 0;
        for &f in inc.of(u) {
            let t = self.faces[f as usize];
            if t[0] != DEAD && t.contains(&v) {
                if shared_count == 2 {
                    return false; // non-manifold edge: leave it
                }
                shared[shared_count] = f;
                shared_count += 1;
            }
        }
        if shared_count != 2 {
            return false; // boundary edge: leave it
        }
        let mut nu = std::mem::take(&mut self.nu);
        let mut nv = std::mem::take(&mut self.nv);
        self.neighbours_into(inc, u, &mut nu);
        self.neighbours_into(inc, v, &mut nv);
        let legal = self.link_condition(&nu, &nv, u, v, shared) && self.no_flip(inc, u, v, p);
        self.nu = nu;
        self.nv = nv;
        if !legal {
            return false;
        }
        for f in shared {
            self.faces[f as usize] = [DEAD; 3];
        }
        for &f in inc.of(v) {
            for x in self.faces[f as usize].iter_mut() {
                if *x == v {
                    *x = u;
                }
            }
        }
        let qv = self.quadric[v as usize];
        add(&mut self.quadric[u as usize], &qv);
        self.pos[u as usize] = p;
        self.locked[u as usize] = true;
        self.locked[v as usize] = true;
        true
    }

    /// The ends' common neighbours must be exactly the two opposite corners, else the
    /// collapse would pinch the surface; and a tetrahedron must not collapse flat.
    fn link_condition(&self, nu: &[u32], nv: &[u32], u: u32, v: u32, shared: [u32; 2]) -> bool {
        let mut opposite = shared.map(|f| {
            self.faces[f as usize]
                .into_iter()
                .find(|&w| w != u && w != v)
                .unwrap_or(u)
        });
        opposite.sort_unstable();
        if opposite[0] == opposite[1] {
            return false;
        }
        let mut common = 0;
        for w in nu {
            if nv.binary_search(w).is_ok() {
                if common == 2 || opposite[common] != *w {
                    return false;
                }
                common += 1;
            }
        }
        common == 2 && nu.len() + nv.len() - common - 2 >= 3
    }

    /// No face around `u` or `v` (other than the two removed) may turn over or collapse.
    fn no_flip(&self, inc: &Incidence, u: u32, v: u32, p: [f64; 3]) -> bool {
        for &w in [u, v].iter() {
            for &f in inc.of(w) {
                let t = self.faces[f as usize];
                if t[0] == DEAD || (t.contains(&u) && t.contains(&v)) {
                    continue;
                }
                let before = normal(
                    self.pos[t[0] as usize],
                    self.pos[t[1] as usize],
                    self.pos[t[2] as usize],
                );
                let corners = t.map(|x| {
                    if x == u || x == v {
                        p
                    } else {
                        self.pos[x as usize]
                    }
                });
                let after = normal(corners[0], corners[1], corners[2]);
                let (lb, la) = (
                    (before[0].powi(2) + before[1].powi(2) + before[2].powi(2)).sqrt(),
                    (after[0].powi(2) + after[1].powi(2) + after[2].powi(2)).sqrt(),
                );
                let d = before[0] * after[0] + before[1] * after[1] + before[2] * after[2];
                if la <= 1e-12 || d < 0.2 * la * lb {
                    return false;
                }
            }
        }
        true
    }
}

/// Decimates a closed (or mostly closed) mesh; boundary edges are never collapsed.
pub fn decimate(
    mesh: &TriMesh,
    target: DecimateTarget,
    ctx: &JobContext,
) -> Result<TriMesh, MeshingError> {
    let n = mesh.positions_world_mm.len();
    let pos: Vec<[f64; 3]> = mesh
        .positions_world_mm
        .par_iter()
        .map(|p| p.map(f64::from))
        .collect();
    let faces = mesh.indices.clone();
    let inc = Incidence::build(n, &faces);
    let quadric: Vec<Quadric> = (0..n as u32)
        .into_par_iter()
        .map(|v| {
            let mut q = [0.0; 10];
            for &f in inc.of(v) {
                add(&mut q, &face_quadric(&pos, faces[f as usize]));
            }
            q
        })
        .collect();
    drop(inc);
    let mut st = State {
        pos,
        faces,
        quadric,
        locked: vec![true; n],
        nu: Vec::new(),
        nv: Vec::new(),
    };
    let (face_target, max_cost) = match target {
        DecimateTarget::Faces(f) => (f, f64::INFINITY),
        DecimateTarget::MaxErrorMm(e) => (0, e * e),
    };
    let start_faces = st.faces.len();
    let mut live = start_faces;
    // Cost of the edge leaving corner k of face f (f32::NAN: not an edge to rank).
    let mut edge_cost = vec![f32::NAN; 3 * start_faces];
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut scratch: Vec<Candidate> = Vec::new();
    // How many candidates a pass ranks, per collapse still needed.
    let mut breadth = 2;
    while live > face_target {
        ctx.check_cancelled()?;
        let goal = start_faces.saturating_sub(face_target).max(1);
        ctx.set_steps(start_faces - live, goal);
        // Each interior edge once: from the face where it runs from lower to higher id. Only
        // edges with an end locked by the last pass (all, on the first) change cost.
        {
            let st = &st;
            edge_cost
                .par_chunks_mut(3)
                .zip(st.faces.par_iter())
                .for_each(|(costs, t)| {
                    for k in 0..3 {
                        let (u, v) = (t[k], t[(k + 1) % 3]);
                        if t[0] == DEAD || u > v {
                            costs[k] = f32::NAN;
                        } else if st.locked[u as usize] || st.locked[v as usize] {
                            let cost = st.collapse_point(u, v).1;
                            costs[k] = if cost <= max_cost {
                                cost as f32
                            } else {
                                f32::NAN
                            };
                        }
                    }
                });
        }
        candidates.clear();
        candidates.par_extend(
            edge_cost
                .par_iter()
                .enumerate()
                .filter(|(_, c)| !c.is_nan())
                .map(|(i, &cost)| {
                    let t = st.faces[i / 3];
                    Candidate {
                        cost,
                        u: t[i % 3],
                        v: t[(i % 3 + 1) % 3],
                    }
                }),
        );
        let needed = (live - face_target).div_ceil(2);
        // Ranking more than the collapses still needed lets a pass get close to the goal
        // although some are illegal or locked; only the cheapest run.
        let take = (breadth * needed).min(candidates.len());
        if take == 0 {
            break;
        }
        let ranks_all = take == candidates.len();
        if !ranks_all {
            candidates.select_nth_unstable_by(take - 1, |a, b| a.cost.total_cmp(&b.cost));
            candidates.truncate(take);
        }
        sort_by_cost(&mut candidates, &mut scratch);
        let ranked = &candidates[..];
        let inc = Incidence::build(n, &st.faces);
        st.locked.iter_mut().for_each(|l| *l = false);
        let mut collapsed = 0;
        for (attempt, c) in ranked.iter().enumerate() {
            if collapsed == needed {
                break;
            }
            if attempt % 65536 == 65535 {
                ctx.check_cancelled()?;
            }
            if st.locked[c.u as usize] || st.locked[c.v as usize] {
                continue;
            }
            let (p, _) = st.collapse_point(c.u, c.v);
            if st.try_collapse(&inc, c.u, c.v, p) {
                collapsed += 1;
            }
        }
        if collapsed == 0 {
            if ranks_all {
                break;
            }
            // The cheapest few are all illegal: look further down the ranking.
            breadth *= 4;
            continue;
        }
        live -= 2 * collapsed;
    }
    let mut new_id = vec![u32::MAX; n];
    let mut positions = Vec::new();
    let mut indices = Vec::with_capacity(live);
    for t in st.faces.iter().filter(|t| t[0] != DEAD) {
        indices.push(t.map(|v| {
            if new_id[v as usize] == u32::MAX {
                new_id[v as usize] = positions.len() as u32;
                positions.push(st.pos[v as usize].map(|x| x as f32));
            }
            new_id[v as usize]
        }));
    }
    ctx.set_progress(1.0);
    Ok(TriMesh::new(positions, indices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_orders_costs_like_a_comparison_sort() {
        // Costs spanning many binades, with ties and zeros.
        let mut items: Vec<Candidate> = (0..5000u32)
            .map(|i| Candidate {
                cost: ((i.wrapping_mul(2_654_435_761) % 1000) as f32).powi(3) * 1e-9,
                u: i,
                v: i + 1,
            })
            .collect();
        let mut expected: Vec<f32> = items.iter().map(|c| c.cost).collect();
        expected.sort_by(f32::total_cmp);
        sort_by_cost(&mut items, &mut Vec::new());
        let got: Vec<f32> = items.iter().map(|c| c.cost).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn best_point_of_three_planes_is_their_corner() {
        // Planes x = 1, y = 2, z = 3: the quadric's minimiser is (1, 2, 3) at zero cost.
        let mut q = [0.0; 10];
        add(&mut q, &plane_quadric([1.0, 0.0, 0.0], -1.0));
        add(&mut q, &plane_quadric([0.0, 1.0, 0.0], -2.0));
        add(&mut q, &plane_quadric([0.0, 0.0, 1.0], -3.0));
        let (p, cost) = best_point(&q, [0.5, 2.0, 3.0], [1.5, 2.5, 3.0]);
        for (got, want) in p.iter().zip([1.0, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-9, "{p:?}");
        }
        assert!(cost.abs() < 1e-9);
        // One plane only (singular): the best of the ends and midpoint, on the plane.
        let flat = plane_quadric([0.0, 0.0, 1.0], -3.0);
        let (p, cost) = best_point(&flat, [0.0, 0.0, 3.0], [1.0, 0.0, 4.0]);
        assert_eq!(p, [0.0, 0.0, 3.0]);
        assert_eq!(cost, 0.0);
    }
}
