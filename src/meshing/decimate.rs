//! Quadric-error edge collapse (Garland & Heckbert 1997) with the link condition, so a
//! manifold stays manifold, and a normal check, so no face flips over.
//!
//! Collapses run in passes rather than from one global priority queue: each pass ranks the
//! edges by cost, then collapses the cheapest in order (blocks of the surface in parallel,
//! see [`decimate_timed`]), skipping any edge with an end that an earlier collapse of the
//! same pass moved (the survivor) or removed (on a ranked pass; coarse ones below). Faces are
//! renamed in place, so any other vertex's faces are still its pass-start faces minus the
//! removed ones: the checks of every collapse see the current surface, and the cost of every
//! edge a ranked pass collapses is exact. An edge's cost is recomputed only when a collapse
//! moved one of its ends, or after a coarse pass that computed none (below).
//!
//! The first passes are coarse: they collapse every legal edge whose cost is under a small
//! tolerance, in storage order without ranking (under the tolerance, order does not matter for
//! quality), so the ranked passes start from a much smaller mesh. On a coarse pass a survivor
//! may go on absorbing (up to [`COARSE_MAX_ABSORBED`] vertices, each collapse checked at its
//! cost at that moment, its faces found through the rows of the vertices merged into it), so
//! one pass takes most of the cheap edges instead of at most one per vertex. While no costs
//! are known (at the start, or after such a pass), a coarse pass computes none up front: it
//! walks every edge, and each collapse checks its own cost, as it must anyway.

use super::{MeshingError, StageTimes};
use crate::jobs::JobContext;
use crate::volume::TriMesh;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};

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
            // At the minimiser A·p = −b, so pᵀAp + 2bᵀp + c is just bᵀp + c: no second pass
            // over the quadric.
            let cost = q[3] * p[0] + q[6] * p[1] + q[8] * p[2] + q[9];
            return (p, cost.max(0.0));
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

/// About the `take`-th smallest of the `valid` (non-NaN) costs, from an evenly strided
/// sample; rounded up a little so a pass gathers at least roughly `take` edges.
fn cost_quantile(costs: &[f32], valid: usize, take: usize) -> f32 {
    const SAMPLE: usize = 1 << 16;
    let stride = (costs.len() / SAMPLE).max(1);
    let mut sample: Vec<f32> = costs
        .iter()
        .step_by(stride)
        .copied()
        .filter(|c| !c.is_nan())
        .collect();
    if sample.is_empty() {
        return f32::INFINITY;
    }
    sample.sort_unstable_by(f32::total_cmp);
    let q = (take as f64 / valid.max(1) as f64 * 1.05).min(1.0);
    let i = ((sample.len() as f64 * q).ceil() as usize).min(sample.len() - 1);
    sample[i]
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
/// Ends a list of merged vertices.
const NO_VERTEX: u32 = u32::MAX;
/// A vertex merged into another this pass.
const REMOVED: u8 = u8::MAX;

/// A face's corners. Atomics (relaxed: plain loads and stores) let the blocks of a pass read
/// the faces they share while each renames only faces all of whose corners it owns.
type Face = [AtomicU32; 3];

fn load(f: &Face) -> [u32; 3] {
    [
        f[0].load(Ordering::Relaxed),
        f[1].load(Ordering::Relaxed),
        f[2].load(Ordering::Relaxed),
    ]
}

fn store(f: &Face, t: [u32; 3]) {
    for (slot, v) in f.iter().zip(t) {
        slot.store(v, Ordering::Relaxed);
    }
}

/// Faces around each vertex, in compressed rows, for the live faces at the start of a pass.
struct Incidence {
    start: Vec<u32>,
    faces: Vec<u32>,
}

impl Incidence {
    fn build(vertex_count: usize, faces: &[Face]) -> Self {
        let mut start = vec![0u32; vertex_count + 1];
        for t in faces.iter().map(load).filter(|t| t[0] != DEAD) {
            for v in t {
                start[v as usize + 1] += 1;
            }
        }
        for v in 0..vertex_count {
            start[v + 1] += start[v];
        }
        let mut fill: Vec<u32> = start[..vertex_count].to_vec();
        let mut list = vec![0u32; start[vertex_count] as usize];
        for (f, t) in faces
            .iter()
            .map(load)
            .enumerate()
            .filter(|(_, t)| t[0] != DEAD)
        {
            for v in t {
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

/// A face's plane as unit normal and offset; all zero for a degenerate face (no quadric).
fn face_plane(pos: &[[f64; 3]], t: [u32; 3]) -> [f64; 4] {
    let p = t.map(|v| pos[v as usize]);
    let nrm = normal(p[0], p[1], p[2]);
    let len = (nrm[0].powi(2) + nrm[1].powi(2) + nrm[2].powi(2)).sqrt();
    if len > 0.0 {
        let u = nrm.map(|x| x / len);
        [
            u[0],
            u[1],
            u[2],
            -(u[0] * p[0][0] + u[1] * p[0][1] + u[2] * p[0][2]),
        ]
    } else {
        [0.0; 4]
    }
}

#[derive(Clone, Copy)]
struct Candidate {
    cost: f32,
    u: u32,
    v: u32,
}

/// Where collapsing the edge between vertices `u` and `v` (indices into `pos` and
/// `quadric`) puts the survivor, and at what cost.
fn collapse_point(pos: &[[f64; 3]], quadric: &[Quadric], u: usize, v: usize) -> ([f64; 3], f64) {
    let mut q = quadric[u];
    add(&mut q, &quadric[v]);
    best_point(&q, pos[u], pos[v])
}

/// The cost a pass ranks the edge `u`–`v` by: its collapse cost as f32, or NaN (not an edge
/// to rank) over `max_cost`.
fn rank_cost(pos: &[[f64; 3]], quadric: &[Quadric], u: u32, v: u32, max_cost: f64) -> f32 {
    let cost = collapse_point(pos, quadric, u as usize, v as usize).1;
    if cost <= max_cost {
        cost as f32
    } else {
        f32::NAN
    }
}

/// Why a collapse did not happen.
#[derive(PartialEq)]
enum Refused {
    /// It would break the surface, cost more than the pass allows, or an end was removed or
    /// has absorbed its share this pass: skip it this pass.
    Illegal,
    /// Its neighbourhood reaches outside this block: leave it to the serial sweep.
    Foreign,
}

/// The corners of `ring` other than `end` (with repeats).
fn around(ring: &[(u32, [u32; 3])], end: u32) -> impl Iterator<Item = u32> + '_ {
    ring.iter().flat_map(|(_, t)| *t).filter(move |&w| w != end)
}

/// One block's share of the per-vertex state: vertices `lo..lo + pos.len()`. A block may
/// collapse an edge only when every vertex around both ends is its own, so the faces it
/// renames and the vertices it moves are touched by no other block; everything it reads is
/// its own too, except faces with a foreign corner, which no block writes.
struct Block<'a> {
    lo: u32,
    pos: &'a mut [[f64; 3]],
    quadric: &'a mut [Quadric],
    /// How many vertices each vertex has absorbed this pass ([`REMOVED`] once it is absorbed
    /// itself). Non-zero means its edges need a new cost next pass.
    absorbed: &'a mut [u8],
    /// The vertices merged into each survivor this pass, as a list through this table
    /// (global ids, [`NO_VERTEX`]-terminated): a survivor's faces are its own pass-start row
    /// and theirs, all renamed to it.
    next: &'a mut [u32],
    rules: PassRules,
    /// Which of this block's vertices the current check has met around its ends (see
    /// [`Block::link_condition`]), so no neighbour lists are sorted.
    marks: NeighbourMarks,
    /// Scratch face rings, reused across collapses.
    ru: Vec<(u32, [u32; 3])>,
    rv: Vec<(u32, [u32; 3])>,
}

/// What a pass allows a collapse.
#[derive(Clone, Copy)]
struct PassRules {
    /// A vertex that has absorbed this many takes no more collapses this pass.
    max_absorbed: u8,
    /// Largest cost a collapse may have when it is checked.
    max_cost: f64,
}

impl PassRules {
    /// A ranked pass: both ends untouched (a collapse's cost is exact only while both ends are
    /// as the ranking saw them), and the ranking already chose the costs.
    const RANKED: Self = Self {
        max_absorbed: 1,
        max_cost: f64::INFINITY,
    };

    /// A coarse pass: survivors go on absorbing, each collapse under the tolerance at the cost
    /// it has then (its ends may have moved since the candidates were gathered).
    fn coarse(tolerance: f64) -> Self {
        Self {
            max_absorbed: COARSE_MAX_ABSORBED,
            max_cost: tolerance,
        }
    }
}

/// Per-vertex marks valid for one check: a mark is `stamp << 2` plus bit 0 (a neighbour of
/// the edge's first end) and bit 1 (of the second). A new check takes a new stamp instead of
/// clearing the marks.
struct NeighbourMarks {
    mark: Vec<u32>,
    stamp: u32,
}

impl NeighbourMarks {
    const AROUND_U: u32 = 1;
    const AROUND_V: u32 = 2;

    fn new(len: usize) -> Self {
        Self {
            mark: vec![0; len],
            stamp: 0,
        }
    }

    fn next_check(&mut self) {
        if self.stamp == u32::MAX >> 2 {
            self.mark.iter_mut().for_each(|m| *m = 0);
            self.stamp = 0;
        }
        self.stamp += 1;
    }

    /// Marks `i` as met around `end`; true when it was not yet met around that end.
    fn meet(&mut self, i: usize, end: u32) -> bool {
        let m = &mut self.mark[i];
        if *m >> 2 != self.stamp {
            *m = self.stamp << 2 | end;
            true
        } else if *m & end == 0 {
            *m |= end;
            true
        } else {
            false
        }
    }

    fn around_both(&self, i: usize) -> bool {
        self.mark[i] & (Self::AROUND_U | Self::AROUND_V) == (Self::AROUND_U | Self::AROUND_V)
    }
}

impl<'a> Block<'a> {
    /// The block of vertices `lo..lo + pos.len()`, given their slices of the per-vertex state.
    fn new(
        lo: u32,
        pos: &'a mut [[f64; 3]],
        quadric: &'a mut [Quadric],
        absorbed: &'a mut [u8],
        next: &'a mut [u32],
        rules: PassRules,
    ) -> Self {
        let len = pos.len();
        Self {
            lo,
            pos,
            quadric,
            absorbed,
            next,
            rules,
            marks: NeighbourMarks::new(len),
            ru: Vec::new(),
            rv: Vec::new(),
        }
    }

    fn owns(&self, v: u32) -> bool {
        v >= self.lo && ((v - self.lo) as usize) < self.pos.len()
    }

    fn at(&self, v: u32) -> usize {
        (v - self.lo) as usize
    }

    /// [`Block::at`] for a vertex that may be another block's: `Foreign` if it is.
    fn own_at(&self, v: u32) -> Result<usize, Refused> {
        if self.owns(v) {
            Ok(self.at(v))
        } else {
            Err(Refused::Foreign)
        }
    }

    fn p(&self, v: u32) -> [f64; 3] {
        self.pos[self.at(v)]
    }

    /// The live faces around `v` (the pass-start rows of `v` and of the vertices merged into
    /// it, minus the removed faces), loaded once so the checks and the renaming of one
    /// collapse do not read each face again. A live face is in exactly one of those rows: a
    /// face with two of them would have been on the edge that merged them.
    fn ring_into(&self, faces: &[Face], inc: &Incidence, v: u32, out: &mut Vec<(u32, [u32; 3])>) {
        out.clear();
        let mut w = v;
        while w != NO_VERTEX {
            out.extend(
                inc.of(w)
                    .iter()
                    .map(|&f| (f, load(&faces[f as usize])))
                    .filter(|(_, t)| t[0] != DEAD),
            );
            w = self.next[self.at(w)];
        }
    }

    /// Checks and, if legal, collapses `v` into `u` at their quadric's best point.
    fn try_collapse(
        &mut self,
        faces: &[Face],
        inc: &Incidence,
        u: u32,
        v: u32,
    ) -> Result<(), Refused> {
        if !self.owns(u) || !self.owns(v) {
            return Err(Refused::Foreign);
        }
        let (au, av) = (self.absorbed[self.at(u)], self.absorbed[self.at(v)]);
        let max = self.rules.max_absorbed;
        if au == REMOVED || av == REMOVED || au >= max || av >= max {
            return Err(Refused::Illegal);
        }
        // The cost first: on a coarse pass it is what most refusals are for, and it needs
        // no ring.
        let (p, cost) = collapse_point(self.pos, self.quadric, self.at(u), self.at(v));
        if cost > self.rules.max_cost {
            return Err(Refused::Illegal);
        }
        let mut ru = std::mem::take(&mut self.ru);
        let mut rv = std::mem::take(&mut self.rv);
        self.ring_into(faces, inc, u, &mut ru);
        let verdict = self.check_collapse(faces, inc, [u, v], p, &ru, &mut rv);
        if let Ok(p) = verdict {
            for &(f, t) in &rv {
                let face = &faces[f as usize];
                if t.contains(&u) {
                    store(face, [DEAD; 3]); // one of the two faces on the edge
                } else {
                    store(face, t.map(|x| if x == v { u } else { x }));
                }
            }
            let qv = self.quadric[self.at(v)];
            let (iu, iv) = (self.at(u), self.at(v));
            add(&mut self.quadric[iu], &qv);
            self.pos[iu] = p;
            // Both under `max_absorbed`, which is far below REMOVED: no overflow.
            self.absorbed[iu] = (au + av + 1).min(REMOVED - 1);
            self.absorbed[iv] = REMOVED;
            // v's list joins u's: u, v, v's merged vertices, u's earlier ones.
            let mut tail = v;
            while self.next[self.at(tail)] != NO_VERTEX {
                tail = self.next[self.at(tail)];
            }
            let it = self.at(tail);
            self.next[it] = self.next[iu];
            self.next[iu] = v;
        }
        self.ru = ru;
        self.rv = rv;
        verdict.map(|_| ())
    }

    /// `p` if collapsing `v` into `u` there keeps the surface manifold and unflipped.
    fn check_collapse(
        &mut self,
        faces: &[Face],
        inc: &Incidence,
        [u, v]: [u32; 2],
        p: [f64; 3],
        ru: &[(u32, [u32; 3])],
        rv: &mut Vec<(u32, [u32; 3])>,
    ) -> Result<[f64; 3], Refused> {
        let mut shared = [[0u32; 3]; 2];
        let mut shared_count = 0;
        for (_, t) in ru {
            if t.contains(&v) {
                if shared_count == 2 {
                    return Err(Refused::Illegal); // non-manifold edge: leave it
                }
                shared[shared_count] = *t;
                shared_count += 1;
            }
        }
        if shared_count != 2 {
            return Err(Refused::Illegal); // boundary edge: leave it
        }
        self.ring_into(faces, inc, v, rv);
        self.link_condition(ru, rv, u, v, shared)?;
        if self.no_flip(ru, u, v, p) && self.no_flip(rv, u, v, p) {
            Ok(p)
        } else {
            Err(Refused::Illegal)
        }
    }

    /// The ends' common neighbours must be exactly the two opposite corners, else the
    /// collapse would pinch the surface; and a tetrahedron must not collapse flat.
    ///
    /// The same walk checks that every vertex around both rings is this block's (the marks
    /// are per block): `Foreign` at the first that is not, unless the walk has already found
    /// the collapse illegal, which it is then on the whole surface too.
    fn link_condition(
        &mut self,
        ru: &[(u32, [u32; 3])],
        rv: &[(u32, [u32; 3])],
        u: u32,
        v: u32,
        shared: [[u32; 3]; 2],
    ) -> Result<(), Refused> {
        let opposite = shared.map(|t| t.into_iter().find(|&w| w != u && w != v).unwrap_or(u));
        if opposite[0] == opposite[1] {
            return Err(Refused::Illegal);
        }
        self.marks.next_check();
        // Distinct neighbours of u (v among them), then of v (u among them).
        let mut count_u = 0;
        for w in around(ru, u) {
            let i = self.own_at(w)?;
            count_u += usize::from(self.marks.meet(i, NeighbourMarks::AROUND_U));
        }
        let mut count_v = 0;
        let mut common = 0;
        for w in around(rv, v) {
            let i = self.own_at(w)?;
            if self.marks.meet(i, NeighbourMarks::AROUND_V) {
                count_v += 1;
                if self.marks.around_both(i) {
                    if !opposite.contains(&w) {
                        return Err(Refused::Illegal);
                    }
                    common += 1;
                }
            }
        }
        if common == 2 && count_u + count_v - common - 2 >= 3 {
            Ok(())
        } else {
            Err(Refused::Illegal)
        }
    }

    /// No face of `ring` (other than the two removed) may turn over or collapse.
    fn no_flip(&self, ring: &[(u32, [u32; 3])], u: u32, v: u32, p: [f64; 3]) -> bool {
        for (_, t) in ring {
            if t.contains(&u) && t.contains(&v) {
                continue;
            }
            let before = normal(self.p(t[0]), self.p(t[1]), self.p(t[2]));
            let corners = t.map(|x| if x == u || x == v { p } else { self.p(x) });
            let after = normal(corners[0], corners[1], corners[2]);
            let lb2 = before[0].powi(2) + before[1].powi(2) + before[2].powi(2);
            let la2 = after[0].powi(2) + after[1].powi(2) + after[2].powi(2);
            let d = before[0] * after[0] + before[1] * after[1] + before[2] * after[2];
            // d < 0.2·|a|·|b| without the square roots: d < 0, or d² < 0.04·|a|²·|b|².
            if la2 <= 1e-24 || d < 0.0 || d * d < 0.04 * la2 * lb2 {
                return false;
            }
        }
        true
    }
}

/// About how many edges cost at most `coarse_cost`, from the edges of every 32nd face.
fn sampled_cheap_edges(
    faces: &[Face],
    pos: &[[f64; 3]],
    quadric: &[Quadric],
    coarse_cost: f32,
    max_cost: f64,
) -> usize {
    const STRIDE: usize = 32;
    let sampled: usize = faces
        .par_iter()
        .step_by(STRIDE)
        .map(|f| {
            let t = load(f);
            if t[0] == DEAD {
                return 0;
            }
            (0..3)
                .filter(|&k| {
                    let (u, v) = (t[k], t[(k + 1) % 3]);
                    u < v && rank_cost(pos, quadric, u, v, max_cost) <= coarse_cost
                })
                .count()
        })
        .sum();
    sampled * STRIDE
}

/// A block's way through its candidates in a pass: collapses up to its quota, and the edges
/// that reach outside the block set aside for the serial sweep.
struct BlockWalk {
    quota: usize,
    collapsed: usize,
    walked: usize,
    foreign: Vec<Candidate>,
}

impl BlockWalk {
    fn new(quota: usize) -> Self {
        Self {
            quota,
            collapsed: 0,
            walked: 0,
            foreign: Vec::new(),
        }
    }

    /// Tries to collapse `c`: `None` once the quota is met (`c` is not walked), else whether
    /// it collapsed.
    fn attempt(
        &mut self,
        blk: &mut Block,
        faces: &[Face],
        inc: &Incidence,
        c: Candidate,
        ctx: &JobContext,
    ) -> Result<Option<bool>, MeshingError> {
        if self.collapsed == self.quota {
            return Ok(None);
        }
        self.walked += 1;
        if self.walked % 65536 == 0 {
            ctx.check_cancelled()?;
        }
        Ok(Some(match blk.try_collapse(faces, inc, c.u, c.v) {
            Ok(()) => {
                self.collapsed += 1;
                true
            }
            Err(Refused::Foreign) => {
                self.foreign.push(c);
                false
            }
            Err(Refused::Illegal) => false,
        }))
    }
}

/// Vertices per block in a pass's parallel phase: small enough for every thread to get
/// several blocks, large enough that few collapses straddle a seam.
fn block_len(vertex_count: usize) -> usize {
    let blocks = 4 * rayon::current_num_threads().max(1);
    vertex_count.div_ceil(blocks).max(4096)
}

/// Coarse passes collapse every legal edge whose quadric error is under this (as a distance,
/// mm), unranked; the ranked passes take over from the smaller mesh they leave.
const COARSE_TOLERANCE_MM: f64 = 0.05;
/// On a coarse pass a vertex may absorb this many others (each collapse checked at its cost
/// then), so one pass takes most of the cheap edges instead of one per vertex.
const COARSE_MAX_ABSORBED: u8 = 3;
/// At most this many coarse passes.
const COARSE_PASSES: usize = 6;
/// Coarse passes stop once one removes less than 1/this of the live faces.
const COARSE_STOP_FRACTION: usize = 10;

/// Decimates a closed (or mostly closed) mesh; boundary edges are never collapsed.
pub fn decimate(
    mesh: &TriMesh,
    target: DecimateTarget,
    ctx: &JobContext,
) -> Result<TriMesh, MeshingError> {
    decimate_timed(mesh, target, ctx, &StageTimes::default())
}

/// [`decimate`], adding the time of each step to `times`.
///
/// Vertices are split into blocks of consecutive ids (extraction emits them slab by slab, so
/// a block is a slab of the surface). Each pass ranks the edges, then the blocks collapse the
/// cheapest of their own edges in parallel, and a serial sweep in cost order takes what they
/// left: edges near a seam, then costlier ones until the pass has its quota.
pub fn decimate_timed(
    mesh: &TriMesh,
    target: DecimateTarget,
    ctx: &JobContext,
    times: &StageTimes,
) -> Result<TriMesh, MeshingError> {
    let n = mesh.positions_world_mm.len();
    let mut pos: Vec<[f64; 3]> = mesh
        .positions_world_mm
        .par_iter()
        .map(|p| p.map(f64::from))
        .collect();
    let mut faces: Vec<Face> = mesh
        .indices
        .par_iter()
        .map(|t| t.map(AtomicU32::new))
        .collect();
    let (mut quadric, first_inc): (Vec<Quadric>, Incidence) =
        times.time("decimate: quadrics", || {
            // Each face's plane once, not once per corner (as n and d: 4 numbers, not 10).
            let planes: Vec<[f64; 4]> = faces
                .par_iter()
                .map(|f| face_plane(&pos, load(f)))
                .collect();
            let inc = Incidence::build(n, &faces);
            let quadric = (0..n as u32)
                .into_par_iter()
                .map(|v| {
                    let mut q = [0.0; 10];
                    for &f in inc.of(v) {
                        let [a, b, c, d] = planes[f as usize];
                        add(&mut q, &plane_quadric([a, b, c], d));
                    }
                    q
                })
                .collect();
            (quadric, inc)
        });
    // The first pass starts from the input faces: the table just built is its table.
    let mut first_inc = Some(first_inc);
    // No edge has a cost yet: the first pass that needs costs computes every one.
    let mut recost_all = true;
    let mut costless_passes = 0usize;
    let mut absorbed = vec![0u8; n];
    let mut next = vec![NO_VERTEX; n];
    let (face_target, max_cost) = match target {
        DecimateTarget::Faces(f) => (f, f64::INFINITY),
        DecimateTarget::MaxErrorMm(e) => (0, e * e),
    };
    let start_faces = faces.len();
    let mut live = start_faces;
    // Cost of the edge leaving corner k of face f (f32::NAN: not an edge to rank).
    let mut edge_cost = vec![f32::NAN; 3 * start_faces];
    let mut scratch: Vec<Candidate> = Vec::new();
    // How many candidates a pass ranks, per collapse still needed.
    let mut breadth = 2;
    let block = block_len(n);
    let mut passes = 0usize;
    // Quadric costs are squared distances (summed over the planes a vertex has gathered).
    let coarse_cost = COARSE_TOLERANCE_MM.powi(2).min(max_cost) as f32;
    let mut coarse_passes_left = COARSE_PASSES;
    while live > face_target {
        ctx.check_cancelled()?;
        passes += 1;
        let goal = start_faces.saturating_sub(face_target).max(1);
        ctx.set_steps(start_faces - live, goal);
        // Dead faces still cost a visit in every scan below: drop them once they are many.
        if 4 * live < 3 * faces.len() {
            times.time("decimate: compact", || {
                // One pass moves each live face and its three edge costs down, in order.
                let mut kept = 0;
                for f in 0..faces.len() {
                    let t = load(&faces[f]);
                    if t[0] != DEAD {
                        store(&faces[kept], t);
                        edge_cost.copy_within(3 * f..3 * f + 3, 3 * kept);
                        kept += 1;
                    }
                }
                faces.truncate(kept);
                edge_cost.truncate(3 * kept);
            });
            first_inc = None;
        }
        // Each interior edge once: from the face where it runs from lower to higher id. Only
        // edges with an end changed by the last pass (all, on the first) change cost.
        // The count of rankable edges comes with the costs, not from another scan.
        let coarse = coarse_passes_left > 0;
        let needed = (live - face_target).div_ceil(2);
        // While no costs are known, a coarse pass needs none up front: every edge is a
        // candidate and a collapse checks its own cost, as it must anyway (its ends may have
        // moved). Quadrics only grow, so an edge over the tolerance at the start stays over
        // it (the ill-conditioned fallback of `best_point` aside): the pass takes about the
        // edges a list of the cheap ones would have given it. Most edges change ends in it,
        // so costs computed before it would mostly be computed again after it. A sample
        // says whether cheap edges are plentiful enough for a coarse pass at all.
        let costless = coarse
            && recost_all
            && (face_target == 0
                || sampled_cheap_edges(&faces, &pos, &quadric, coarse_cost, max_cost) >= needed);
        let (valid, cheap) = if costless {
            (0, 0)
        } else {
            let recost = recost_all;
            recost_all = false;
            times.time("decimate: costs", || {
                let (pos, quadric, absorbed) = (&pos, &quadric, &absorbed);
                edge_cost
                    .par_chunks_mut(3)
                    .zip(faces.par_iter())
                    .map(|(costs, f)| {
                        let t = load(f);
                        for k in 0..3 {
                            let (u, v) = (t[k], t[(k + 1) % 3]);
                            if t[0] == DEAD || u > v {
                                costs[k] = f32::NAN;
                            } else if recost
                                || absorbed[u as usize] != 0
                                || absorbed[v as usize] != 0
                            {
                                costs[k] = rank_cost(pos, quadric, u, v, max_cost);
                            }
                        }
                        let valid = costs.iter().filter(|c| !c.is_nan()).count();
                        let cheap = costs.iter().filter(|&&c| c <= coarse_cost).count();
                        (valid, cheap)
                    })
                    .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
            })
        };
        // Towards a face count, once fewer edges are cheap than collapses are needed, a coarse
        // pass would go a small share of the way (a tenth, measured on the body phantom) for
        // a whole pass's scans: rank instead.
        let coarse = coarse && (costless || cheap >= needed || face_target == 0);
        if !coarse {
            coarse_passes_left = 0;
        }
        let rank_start = std::time::Instant::now();
        // Ranking more than the collapses still needed lets a pass get close to the goal
        // although some are illegal or locked; only the cheapest run.
        let take = if costless {
            usize::MAX // every edge; none is ranked
        } else if coarse {
            cheap
        } else {
            (breadth * needed).min(valid)
        };
        if take == 0 {
            if coarse {
                coarse_passes_left = 0;
                continue;
            }
            break;
        }
        if costless {
            // The costs this pass leaves behind are stale: the next pass that ranks or lists
            // cheap edges computes them all.
            recost_all = true;
            costless_passes += 1;
        }
        let ranks_all = !coarse && take == valid;
        // Only edges up to about the take-th cheapest cost are gathered and ranked: the
        // threshold comes from a sample, so no pass sorts or selects over every edge.
        let threshold = if coarse {
            coarse_cost
        } else if ranks_all {
            f32::INFINITY
        } else {
            cost_quantile(&edge_cost, valid, take)
        };
        // Each block takes the candidates it owns (both ends in it); the rest straddle a seam
        // and wait for the serial sweep. Gathered a run of faces per task, each into its own
        // per-block lists, then joined block by block in run order: no serial pass over all
        // candidates, and the lists do not depend on scheduling.
        let blocks = n.div_ceil(block);
        // The list after the blocks' own: edges across a seam.
        let seam = blocks;
        const RUN: usize = 1 << 16;
        // A costless pass has no lists: each block walks the faces themselves (below).
        let runs: Vec<Vec<Vec<Candidate>>> = if costless {
            Vec::new()
        } else {
            faces
                .par_chunks(RUN)
                .zip(edge_cost.par_chunks(3 * RUN))
                .map(|(run_faces, costs)| {
                    let mut lists: Vec<Vec<Candidate>> = vec![Vec::new(); seam + 1];
                    for (f, c) in run_faces.iter().zip(costs.chunks_exact(3)) {
                        if !c.iter().any(|&c| c <= threshold) {
                            continue;
                        }
                        let t = load(f);
                        for k in 0..3 {
                            if c[k] <= threshold {
                                let (u, v) = (t[k], t[(k + 1) % 3]);
                                let b = u as usize / block;
                                let slot = if v as usize / block == b { b } else { seam };
                                lists[slot].push(Candidate { cost: c[k], u, v });
                            }
                        }
                    }
                    lists
                })
                .collect()
        };
        let mut per_block = super::join_runs(&runs, seam + 1);
        drop(runs);
        let mut rest = per_block.pop().unwrap_or_default();
        // Each block walks its own edges up to a quota: its share of the cheapest `needed`
        // edges (of all of them, on a coarse pass). The quotas sum to at most `needed`, so the
        // parallel phase never overshoots the target, whatever the scheduling.
        //
        // A ranked pass's block puts its edges under the cut first, in the order they came
        // (face order, which follows the surface slab by slab), not cheapest first: every one
        // of them is among the cheapest `needed`, so the order only decides which of two
        // touching edges goes first, and walking in surface order keeps the rings it gathers
        // in cache (in cost order a collapse cost three times as much, measured on the body
        // phantom). The dearer edges after them are the serial sweep's, which ranks them.
        let mut quota: Vec<usize> = if costless {
            // Shares of `needed` by vertex count (the lists are empty).
            (0..blocks)
                .map(|b| needed * (block.min(n - b * block)) / n)
                .collect()
        } else if coarse {
            per_block.iter().map(Vec::len).collect()
        } else {
            let cut = cost_quantile(&edge_cost, valid, needed);
            per_block
                .par_iter_mut()
                .map(|list| {
                    let (mut under, over): (Vec<Candidate>, Vec<Candidate>) = std::mem::take(list)
                        .into_iter()
                        .partition(|c| c.cost <= cut);
                    let quota = under.len();
                    under.extend(over);
                    *list = under;
                    quota
                })
                .collect()
        };
        let shared_out: usize = quota.iter().sum();
        if shared_out > needed {
            for q in &mut quota {
                *q = *q * needed / shared_out;
            }
        }
        times.add("decimate: rank", rank_start.elapsed().as_secs_f64());
        let inc = match first_inc.take() {
            Some(inc) => inc,
            None => times.time("decimate: incidence", || Incidence::build(n, &faces)),
        };
        absorbed.par_iter_mut().for_each(|a| *a = 0);
        next.par_iter_mut().for_each(|w| *w = NO_VERTEX);
        let rules = if coarse {
            PassRules::coarse(f64::from(coarse_cost))
        } else {
            PassRules::RANKED
        };
        let parallel_start = std::time::Instant::now();
        let results: Vec<Result<(usize, usize, Vec<Candidate>), MeshingError>> = pos
            .par_chunks_mut(block)
            .zip(quadric.par_chunks_mut(block))
            .zip(absorbed.par_chunks_mut(block).zip(next.par_chunks_mut(block)))
            .zip(per_block.par_iter().zip(quota.par_iter()))
            .enumerate()
            .map(
                |(b, (((pos, quadric), (absorbed, next)), (list, &quota)))| -> Result<_, MeshingError> {
                    let mut blk =
                        Block::new((b * block) as u32, pos, quadric, absorbed, next, rules);
                    let mut walk = BlockWalk::new(quota);
                    if costless {
                        // Every edge from the face where it runs from lower to higher id, the
                        // lower end this block's, in face order: the faces that touch the
                        // block, from the first of its vertices' rows to the last. Faces are
                        // read as they are now (another block renames only faces all of whose
                        // corners are its own, never one with a corner here). There is no
                        // list, so none of it is left for the serial sweep.
                        let ids = b * block..(b * block + block).min(n);
                        let first = ids.clone().filter_map(|u| inc.of(u as u32).first()).min();
                        let last = ids.filter_map(|u| inc.of(u as u32).last()).max();
                        if let (Some(&first), Some(&last)) = (first, last) {
                            'faces: for f in first as usize..=last as usize {
                                let mut t = load(&faces[f]);
                                for k in 0..3 {
                                    if t[0] == DEAD {
                                        break;
                                    }
                                    let (u, v) = (t[k], t[(k + 1) % 3]);
                                    if u >= v || !blk.owns(u) {
                                        continue;
                                    }
                                    let c = Candidate { cost: 0.0, u, v };
                                    match walk.attempt(&mut blk, &faces, &inc, c, ctx)? {
                                        None => break 'faces,
                                        // The face is gone or renamed: read it again.
                                        Some(true) => t = load(&faces[f]),
                                        Some(false) => {}
                                    }
                                }
                            }
                        }
                        return Ok((walk.collapsed, 0, walk.foreign));
                    }
                    for &c in list {
                        if walk.attempt(&mut blk, &faces, &inc, c, ctx)?.is_none() {
                            break;
                        }
                    }
                    Ok((walk.collapsed, walk.walked, walk.foreign))
                },
            )
            .collect();
        // Edges a block walked are settled (collapsed, or illegal for good this pass) unless
        // they reached outside it; the serial sweep takes all the others, in cost order.
        let mut collapsed = 0;
        for (r, list) in results.into_iter().zip(&per_block) {
            let (c, walked, foreign) = r?;
            collapsed += c;
            rest.extend(foreign);
            rest.extend_from_slice(&list[walked..]);
        }
        times.add(
            "decimate: collapse (blocks)",
            parallel_start.elapsed().as_secs_f64(),
        );
        let serial_start = std::time::Instant::now();
        if !coarse {
            sort_by_cost(&mut rest, &mut scratch);
        }
        let mut all = Block::new(0, &mut pos, &mut quadric, &mut absorbed, &mut next, rules);
        for (i, c) in rest.iter().enumerate() {
            if collapsed == needed {
                break;
            }
            if i % 65536 == 65535 {
                ctx.check_cancelled()?;
            }
            if all.try_collapse(&faces, &inc, c.u, c.v).is_ok() {
                collapsed += 1;
            }
        }
        times.add(
            "decimate: collapse (serial)",
            serial_start.elapsed().as_secs_f64(),
        );
        if coarse {
            coarse_passes_left -= 1;
            // Once a coarse pass removes few faces, the cheap edges are used up: rank the rest.
            if 2 * collapsed * COARSE_STOP_FRACTION < live {
                coarse_passes_left = 0;
            }
        }
        if collapsed == 0 {
            if coarse {
                continue;
            }
            if ranks_all {
                break;
            }
            // The cheapest few are all illegal: look further down the ranking.
            breadth *= 4;
            continue;
        }
        live -= 2 * collapsed;
    }
    times.add("decimate: passes (a count)", passes as f64);
    times.add(
        "decimate: passes without costs (a count)",
        costless_passes as f64,
    );
    let mut new_id = vec![u32::MAX; n];
    let mut positions = Vec::new();
    let mut indices = Vec::with_capacity(live);
    for t in faces.iter().map(load).filter(|t| t[0] != DEAD) {
        indices.push(t.map(|v| {
            if new_id[v as usize] == u32::MAX {
                new_id[v as usize] = positions.len() as u32;
                positions.push(pos[v as usize].map(|x| x as f32));
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

    /// Per-vertex state for one block over a whole mesh, zero quadrics (collapses stay put).
    struct WholeMesh {
        pos: Vec<[f64; 3]>,
        quadric: Vec<Quadric>,
        absorbed: Vec<u8>,
        next: Vec<u32>,
    }

    impl WholeMesh {
        fn new(pos: Vec<[f64; 3]>) -> Self {
            let n = pos.len();
            Self {
                pos,
                quadric: vec![[0.0; 10]; n],
                absorbed: vec![0; n],
                next: vec![NO_VERTEX; n],
            }
        }

        fn block(&mut self, max_absorbed: u8) -> Block<'_> {
            let rules = PassRules {
                max_absorbed,
                max_cost: f64::INFINITY,
            };
            Block::new(
                0,
                &mut self.pos,
                &mut self.quadric,
                &mut self.absorbed,
                &mut self.next,
                rules,
            )
        }
    }

    /// The marching-cubes surface where `inside` (of the offsets from the centre of an n³
    /// grid of 1 mm voxels) crosses zero, vertices in slab order.
    fn centred_isosurface(n: usize, inside: impl Fn([f64; 3]) -> f64 + Sync) -> TriMesh {
        let g = crate::volume::VolumeGeometry::axis_aligned([n; 3], [1.0; 3], [0.0; 3])
            .expect("valid grid");
        let c = (n as f64 - 1.0) / 2.0;
        let field = crate::volume::Volume::from_fn(g, |[i, j, k]| {
            inside([i, j, k].map(|x| x as f64 - c)) as f32
        });
        super::super::isosurface(&field, 0.0, &JobContext::detached()).expect("surface")
    }

    /// A marching-cubes sphere of radius `r` voxels (1 mm), vertices in slab order.
    fn sphere(r: f64) -> TriMesh {
        centred_isosurface((2.0 * r + 8.0) as usize, |d| {
            r - d.iter().map(|x| x * x).sum::<f64>().sqrt()
        })
    }

    #[test]
    fn blocks_in_parallel_keep_a_closed_sphere_and_do_not_depend_on_scheduling() {
        let full = sphere(30.0);
        // Several blocks of at least 4096 vertices each, so seams and the serial sweep run.
        assert!(full.positions_world_mm.len() > 3 * 4096);
        let ctx = JobContext::detached();
        let a = decimate(&full, DecimateTarget::Faces(3000), &ctx).expect("decimate");
        let b = decimate(&full, DecimateTarget::Faces(3000), &ctx).expect("decimate");
        assert_eq!(a, b, "same input, same output");
        assert!(
            a.face_count() <= 3000 && a.face_count() >= 2990,
            "{}",
            a.face_count()
        );
        let c = crate::meshing::check(&a);
        assert!(c.watertight && c.manifold && c.components == 1, "{c:?}");
        let rel = a.signed_volume_mm3() / full.signed_volume_mm3() - 1.0;
        assert!(rel.abs() < 0.01, "volume changed by {rel}");
        let times = StageTimes::default();
        decimate_timed(&full, DecimateTarget::Faces(3000), &ctx, &times).expect("decimate");
        let stages: Vec<&str> = times.entries().iter().map(|e| e.0).collect();
        assert!(
            stages.contains(&"decimate: collapse (blocks)"),
            "{stages:?}"
        );
    }

    #[test]
    fn a_first_pass_without_costs_keeps_a_box_closed_and_true() {
        // A marching-cubes box: its flat sides are mostly edges under the coarse tolerance,
        // so the first pass walks every edge without a costs pass.
        let full = centred_isosurface(48, |d| 18.3 - d.iter().fold(0.0, |m, x| x.abs().max(m)));
        let ctx = JobContext::detached();
        for target in [
            DecimateTarget::Faces(full.face_count() / 8),
            DecimateTarget::MaxErrorMm(0.1),
        ] {
            let times = StageTimes::default();
            let a = decimate_timed(&full, target, &ctx, &times).expect("decimate");
            let without_costs = times
                .entries()
                .iter()
                .find(|e| e.0 == "decimate: passes without costs (a count)")
                .map(|e| e.1);
            assert!(without_costs >= Some(1.0), "{target:?}: {without_costs:?}");
            let b = decimate(&full, target, &ctx).expect("decimate");
            assert_eq!(a, b, "{target:?}: same input, same output");
            if let DecimateTarget::Faces(f) = target {
                assert!(
                    a.face_count() <= f && a.face_count() + 20 >= f,
                    "{}",
                    a.face_count()
                );
            } else {
                assert!(
                    a.face_count() * 10 < full.face_count(),
                    "{}",
                    a.face_count()
                );
            }
            let check = crate::meshing::check(&a);
            assert!(
                check.watertight && check.manifold && check.components == 1,
                "{check:?}"
            );
            let rel = a.signed_volume_mm3() / full.signed_volume_mm3() - 1.0;
            assert!(rel.abs() < 0.01, "{target:?}: volume changed by {rel}");
        }
    }

    #[test]
    fn a_survivor_that_goes_on_absorbing_sees_exactly_its_live_faces() {
        // One coarse-style pass by hand: every edge once, survivors may absorb up to three.
        let mesh = sphere(10.0);
        let n = mesh.positions_world_mm.len();
        let faces: Vec<Face> = mesh.indices.iter().map(|t| t.map(AtomicU32::new)).collect();
        let inc = Incidence::build(n, &faces);
        let mut state = WholeMesh::new(
            mesh.positions_world_mm
                .iter()
                .map(|p| p.map(f64::from))
                .collect(),
        );
        let mut blk = state.block(3);
        let mut collapsed = 0;
        for t in &mesh.indices {
            for k in 0..3 {
                let (u, v) = (t[k], t[(k + 1) % 3]);
                if u < v && blk.try_collapse(&faces, &inc, u, v).is_ok() {
                    collapsed += 1;
                }
            }
        }
        let chained = blk
            .absorbed
            .iter()
            .filter(|&&a| (2..REMOVED).contains(&a))
            .count();
        assert!(chained > 100, "{chained} survivors absorbed more than one");
        assert!(blk.absorbed.iter().all(|&a| a <= 5 || a == REMOVED));
        // Each vertex's ring (its row and its merged vertices' rows) is exactly the live faces
        // that hold it; a removed vertex is in none.
        let live: Vec<(u32, [u32; 3])> = faces
            .iter()
            .enumerate()
            .map(|(f, t)| (f as u32, load(t)))
            .filter(|(_, t)| t[0] != DEAD)
            .collect();
        assert_eq!(live.len(), mesh.face_count() - 2 * collapsed);
        let mut ring = Vec::new();
        for v in 0..n as u32 {
            let holding: Vec<u32> = live
                .iter()
                .filter(|(_, t)| t.contains(&v))
                .map(|(f, _)| *f)
                .collect();
            if blk.absorbed[v as usize] == REMOVED {
                assert!(
                    holding.is_empty(),
                    "removed vertex {v} still in {holding:?}"
                );
                continue;
            }
            blk.ring_into(&faces, &inc, v, &mut ring);
            let mut got: Vec<u32> = ring.iter().map(|(f, _)| *f).collect();
            got.sort_unstable();
            assert_eq!(got, holding, "vertex {v}");
        }
        let out = TriMesh::new(
            blk.pos.iter().map(|p| p.map(|x| x as f32)).collect(),
            live.iter().map(|(_, t)| *t).collect(),
        );
        let c = crate::meshing::check(&out);
        assert!(c.watertight && c.manifold && c.components == 1, "{c:?}");
    }

    #[test]
    fn a_tetrahedron_is_not_collapsed_flat() {
        let mesh = crate::volume::mesh::phantoms::unit_tetra();
        let out =
            decimate(&mesh, DecimateTarget::Faces(2), &JobContext::detached()).expect("decimate");
        assert_eq!(out.face_count(), 4);
        assert!(crate::meshing::check(&out).watertight);
    }

    #[test]
    fn the_link_condition_refuses_an_edge_whose_ends_share_a_third_neighbour() {
        // Around edge 0–1 of an octahedron: collapsing it is legal (the ends' common
        // neighbours are the two opposite corners of its faces). With 6 in place of 4 and 5,
        // both ends also share 6: illegal.
        let ring = |f: &[[u32; 3]]| -> Vec<(u32, [u32; 3])> {
            f.iter().enumerate().map(|(i, t)| (i as u32, *t)).collect()
        };
        let mut state = WholeMesh::new(vec![[0.0; 3]; 8]);
        let mut blk = state.block(1);
        let shared = [[0, 1, 2], [1, 0, 3]];
        // Around 0: 1, 2, 3, 4; around 1: 0, 2, 3, 5.
        let ru = ring(&[[0, 1, 2], [1, 0, 3], [0, 2, 4], [0, 4, 3]]);
        let rv = ring(&[[0, 1, 2], [1, 0, 3], [1, 5, 2], [1, 3, 5]]);
        assert!(blk.link_condition(&ru, &rv, 0, 1, shared).is_ok());
        // 6 around both ends as well: the collapse would pinch the surface at 6.
        let ru6 = ring(&[[0, 1, 2], [1, 0, 3], [0, 2, 6], [0, 6, 3]]);
        let rv6 = ring(&[[0, 1, 2], [1, 0, 3], [1, 6, 2], [1, 3, 6]]);
        let illegal = |r: Result<(), Refused>| r.err() == Some(Refused::Illegal);
        assert!(illegal(blk.link_condition(&ru6, &rv6, 0, 1, shared)));
        // The same legal check again after many checks, across a wrap of the stamps.
        blk.marks.stamp = u32::MAX >> 2;
        assert!(blk.link_condition(&ru, &rv, 0, 1, shared).is_ok());
        assert!(illegal(blk.link_condition(&ru6, &rv6, 0, 1, shared)));
        // A block that does not own 5 (vertices 0–4 only) leaves the legal collapse to the
        // serial sweep.
        let mut state = WholeMesh::new(vec![[0.0; 3]; 5]);
        let mut blk = state.block(1);
        let foreign = blk.link_condition(&ru, &rv, 0, 1, shared);
        assert!(foreign.err() == Some(Refused::Foreign));
    }

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

    #[test]
    fn the_cost_at_the_minimiser_is_the_quadric_there_and_its_least_value() {
        // Four planes with no common point, far from the origin as LPS millimetres are:
        // the cost given with the minimiser is the quadric evaluated there, and no nearby
        // point costs less.
        let c = [-180.0, 220.0, 95.0];
        let mut q = [0.0; 10];
        for (n, off) in [
            ([1.0, 0.0, 0.0], 0.1),
            ([0.0, 1.0, 0.0], -0.05),
            ([0.0, 0.0, 1.0], 0.02),
            ([0.577_350_269_189_625_8; 3], 0.2),
        ] {
            let d = -(n[0] * c[0] + n[1] * c[1] + n[2] * c[2]) + off;
            add(&mut q, &plane_quadric(n, d));
        }
        let (p, cost) = best_point(&q, c, [c[0] + 0.8, c[1], c[2]]);
        assert!(cost > 1e-3, "{cost}");
        assert!(
            (cost - eval(&q, p)).abs() < 1e-9,
            "{cost} vs {}",
            eval(&q, p)
        );
        for d in 0..3 {
            for step in [-0.01, 0.01] {
                let mut r = p;
                r[d] += step;
                assert!(eval(&q, r) > cost, "{r:?}");
            }
        }
    }
}
