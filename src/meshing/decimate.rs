//! Quadric-error edge collapse (Garland & Heckbert 1997) with the link condition, so a
//! manifold stays manifold, and a normal check, so no face flips over.

use super::MeshingError;
use crate::jobs::JobContext;
use crate::volume::TriMesh;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

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
    let m = nalgebra::Matrix3::new(q[0], q[1], q[2], q[1], q[4], q[5], q[2], q[5], q[7]);
    let rhs = nalgebra::Vector3::new(-q[3], -q[6], -q[8]);
    let mid = [0, 1, 2].map(|d| 0.5 * (a[d] + b[d]));
    let edge2: f64 = (0..3).map(|d| (a[d] - b[d]).powi(2)).sum();
    if m.determinant().abs() > 1e-12 {
        if let Some(inv) = m.try_inverse() {
            let p = inv * rhs;
            let p = [p.x, p.y, p.z];
            let off2: f64 = (0..3).map(|d| (p[d] - mid[d]).powi(2)).sum();
            // A far-away optimum means a near-singular quadric (flat region): do not trust it.
            if off2 <= edge2 * 4.0 {
                return (p, eval(q, p).max(0.0));
            }
        }
    }
    [a, b, mid]
        .into_iter()
        .map(|p| (p, eval(q, p).max(0.0)))
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .unwrap_or((mid, 0.0))
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

struct State {
    pos: Vec<[f64; 3]>,
    faces: Vec<[u32; 3]>,
    face_alive: Vec<bool>,
    vert_faces: Vec<Vec<u32>>,
    quadric: Vec<Quadric>,
    version: Vec<u32>,
    vert_alive: Vec<bool>,
}

impl State {
    fn live_faces(&self, v: u32) -> impl Iterator<Item = u32> + '_ {
        self.vert_faces[v as usize]
            .iter()
            .copied()
            .filter(move |&f| self.face_alive[f as usize])
    }

    fn neighbours(&self, v: u32) -> Vec<u32> {
        let mut n: Vec<u32> = self
            .live_faces(v)
            .flat_map(|f| self.faces[f as usize])
            .filter(|&w| w != v)
            .collect();
        n.sort_unstable();
        n.dedup();
        n
    }

    /// Checks and, if legal, performs the collapse of `v` into `u` at `p`.
    fn try_collapse(&mut self, u: u32, v: u32, p: [f64; 3]) -> bool {
        let shared: Vec<u32> = self
            .live_faces(u)
            .filter(|&f| self.faces[f as usize].contains(&v))
            .collect();
        if shared.len() != 2 {
            return false; // boundary or non-manifold edge: leave it
        }
        let nu = self.neighbours(u);
        let nv = self.neighbours(v);
        let common: Vec<u32> = nu
            .iter()
            .copied()
            .filter(|w| nv.binary_search(w).is_ok())
            .collect();
        let opposite: Vec<u32> = {
            let mut o: Vec<u32> = shared
                .iter()
                .flat_map(|&f| self.faces[f as usize])
                .filter(|&w| w != u && w != v)
                .collect();
            o.sort_unstable();
            o.dedup();
            o
        };
        if common != opposite {
            return false; // link condition: the collapse would pinch the surface
        }
        if nu.len() + nv.len() - common.len() - 2 < 3 {
            return false;
        }
        for &w in [u, v].iter() {
            for f in self.live_faces(w) {
                let t = self.faces[f as usize];
                if t.contains(&u) && t.contains(&v) {
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
        for f in shared {
            self.face_alive[f as usize] = false;
        }
        let moved: Vec<u32> = self.live_faces(v).collect();
        for f in moved {
            for x in self.faces[f as usize].iter_mut() {
                if *x == v {
                    *x = u;
                }
            }
            self.vert_faces[u as usize].push(f);
        }
        self.vert_faces[v as usize].clear();
        let qv = self.quadric[v as usize];
        add(&mut self.quadric[u as usize], &qv);
        self.pos[u as usize] = p;
        self.vert_alive[v as usize] = false;
        self.version[u as usize] += 1;
        self.version[v as usize] += 1;
        let alive = &self.face_alive;
        self.vert_faces[u as usize].retain(|&f| alive[f as usize]);
        true
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    cost_bits: Reverse<u64>,
    u: u32,
    v: u32,
    ver_u: u32,
    ver_v: u32,
}

/// Decimates a closed (or mostly closed) mesh; boundary edges are never collapsed.
pub fn decimate(
    mesh: &TriMesh,
    target: DecimateTarget,
    ctx: &JobContext,
) -> Result<TriMesh, MeshingError> {
    let n = mesh.positions_world_mm.len();
    let mut st = State {
        pos: mesh
            .positions_world_mm
            .iter()
            .map(|p| p.map(f64::from))
            .collect(),
        faces: mesh.indices.clone(),
        face_alive: vec![true; mesh.indices.len()],
        vert_faces: vec![Vec::new(); n],
        quadric: vec![[0.0; 10]; n],
        version: vec![0; n],
        vert_alive: vec![true; n],
    };
    for (f, t) in mesh.indices.iter().enumerate() {
        let nrm = normal(
            st.pos[t[0] as usize],
            st.pos[t[1] as usize],
            st.pos[t[2] as usize],
        );
        let len = (nrm[0].powi(2) + nrm[1].powi(2) + nrm[2].powi(2)).sqrt();
        let q = if len > 0.0 {
            let u = nrm.map(|x| x / len);
            let p0 = st.pos[t[0] as usize];
            plane_quadric(u, -(u[0] * p0[0] + u[1] * p0[1] + u[2] * p0[2]))
        } else {
            [0.0; 10]
        };
        for &v in t {
            st.vert_faces[v as usize].push(f as u32);
            add(&mut st.quadric[v as usize], &q);
        }
    }
    let (face_target, max_cost) = match target {
        DecimateTarget::Faces(f) => (f, f64::INFINITY),
        DecimateTarget::MaxErrorMm(e) => (0, e * e),
    };
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Candidate>, st: &State, u: u32, v: u32| {
        let mut q = st.quadric[u as usize];
        add(&mut q, &st.quadric[v as usize]);
        let (_, cost) = best_point(&q, st.pos[u as usize], st.pos[v as usize]);
        heap.push(Candidate {
            cost_bits: Reverse(cost.to_bits()),
            u,
            v,
            ver_u: st.version[u as usize],
            ver_v: st.version[v as usize],
        });
    };
    for t in &mesh.indices {
        for k in 0..3 {
            let (a, b) = (t[k], t[(k + 1) % 3]);
            if a < b {
                push(&mut heap, &st, a, b);
            }
        }
    }
    let start_faces = mesh.indices.len();
    let mut live = start_faces;
    let mut steps = 0usize;
    while live > face_target {
        let Some(c) = heap.pop() else { break };
        let (u, v) = (c.u, c.v);
        if !st.vert_alive[u as usize]
            || !st.vert_alive[v as usize]
            || st.version[u as usize] != c.ver_u
            || st.version[v as usize] != c.ver_v
        {
            continue;
        }
        let cost = f64::from_bits(c.cost_bits.0);
        if cost > max_cost {
            break;
        }
        let mut q = st.quadric[u as usize];
        add(&mut q, &st.quadric[v as usize]);
        let (p, _) = best_point(&q, st.pos[u as usize], st.pos[v as usize]);
        if st.try_collapse(u, v, p) {
            live -= 2;
            for w in st.neighbours(u) {
                push(&mut heap, &st, u.min(w), u.max(w));
            }
        }
        steps += 1;
        if steps % 65536 == 0 {
            ctx.check_cancelled()?;
            let goal = start_faces.saturating_sub(face_target).max(1);
            ctx.set_steps(start_faces - live, goal);
        }
    }
    let mut new_id = vec![u32::MAX; n];
    let mut positions = Vec::new();
    let mut indices = Vec::with_capacity(live);
    for (f, t) in st.faces.iter().enumerate() {
        if !st.face_alive[f] {
            continue;
        }
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
