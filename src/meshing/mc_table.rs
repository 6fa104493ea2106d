//! Marching-cubes case table, generated at first use rather than typed in.
//!
//! Each face of a cube is split by the same rule seen from either neighbouring cube (an
//! ambiguous face always separates its two inside corners), so adjacent cubes agree on the
//! segment where they meet and the surface is watertight without the asymptotic decider.
//!
//! Corner `c` sits at `(c & 1, (c >> 1) & 1, (c >> 2) & 1)`. Edges 0–3 run along x, 4–7
//! along y, 8–11 along z; see [`EDGE_CORNERS`].

use std::sync::OnceLock;

/// `(start corner, end corner)` of each edge; the end is the start plus the edge's axis.
pub const EDGE_CORNERS: [(u8, u8); 12] = {
    let mut e = [(0u8, 0u8); 12];
    let mut m = 0;
    while m < 4 {
        let (a, b) = ((m & 1) as u8, (m >> 1) as u8);
        e[m] = ((a << 1) | (b << 2), ((a << 1) | (b << 2)) | 1);
        e[4 + m] = (a | (b << 2), (a | (b << 2)) | 2);
        e[8 + m] = (a | (b << 1), (a | (b << 1)) | 4);
        m += 1;
    }
    e
};

/// Triangles (as edge triples) per case; the case's bit `c` is set when corner `c` is inside.
pub struct CaseTable {
    pub triangles: Vec<Vec<[u8; 3]>>,
}

pub fn case_table() -> &'static CaseTable {
    static TABLE: OnceLock<CaseTable> = OnceLock::new();
    TABLE.get_or_init(build)
}

fn corner_pos(c: u8) -> [f64; 3] {
    [(c & 1) as f64, ((c >> 1) & 1) as f64, ((c >> 2) & 1) as f64]
}

fn edge_of(c0: u8, c1: u8) -> usize {
    EDGE_CORNERS
        .iter()
        .position(|&(a, b)| (a, b) == (c0, c1) || (a, b) == (c1, c0))
        .unwrap_or(0)
}

fn faces() -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    for axis in 0..3u8 {
        let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
        for side in 0..2u8 {
            let base = side << axis;
            out.push([
                base,
                base | (1 << u),
                base | (1 << u) | (1 << v),
                base | (1 << v),
            ]);
        }
    }
    out
}

fn build() -> CaseTable {
    let faces = faces();
    let mut triangles = Vec::with_capacity(256);
    for case in 0..256u32 {
        let inside = |c: u8| case & (1 << c) != 0;
        // Each cut edge meets exactly two face segments, so the segments form closed loops.
        let mut links: [Vec<usize>; 12] = Default::default();
        for q in &faces {
            let fe: [usize; 4] = [0, 1, 2, 3].map(|k| edge_of(q[k], q[(k + 1) % 4]));
            let cut: Vec<usize> = (0..4)
                .filter(|&k| inside(q[k]) != inside(q[(k + 1) % 4]))
                .collect();
            let pairs: Vec<(usize, usize)> = match cut.len() {
                2 => vec![(fe[cut[0]], fe[cut[1]])],
                4 if inside(q[1]) => vec![(fe[0], fe[1]), (fe[2], fe[3])],
                4 => vec![(fe[1], fe[2]), (fe[3], fe[0])],
                _ => vec![],
            };
            for (a, b) in pairs {
                links[a].push(b);
                links[b].push(a);
            }
        }
        let mut used = [false; 12];
        let mut tris = Vec::new();
        for start in 0..12 {
            if used[start] || links[start].len() != 2 {
                continue;
            }
            let mut lp = vec![start];
            used[start] = true;
            let mut prev = start;
            let mut cur = links[start][0];
            while cur != start && !used[cur] {
                used[cur] = true;
                lp.push(cur);
                let next = if links[cur][0] == prev {
                    links[cur][1]
                } else {
                    links[cur][0]
                };
                prev = cur;
                cur = next;
            }
            let mid = |e: usize| {
                let (a, b) = EDGE_CORNERS[e];
                let (pa, pb) = (corner_pos(a), corner_pos(b));
                [0, 1, 2].map(|d| 0.5 * (pa[d] + pb[d]))
            };
            // Newell normal of the loop, compared with the inside→outside direction of its edges.
            let mut n = [0.0f64; 3];
            for i in 0..lp.len() {
                let (p, q) = (mid(lp[i]), mid(lp[(i + 1) % lp.len()]));
                n[0] += (p[1] - q[1]) * (p[2] + q[2]);
                n[1] += (p[2] - q[2]) * (p[0] + q[0]);
                n[2] += (p[0] - q[0]) * (p[1] + q[1]);
            }
            let mut outwardness = 0.0;
            for &e in &lp {
                let (a, b) = EDGE_CORNERS[e];
                let (pin, pout) = if inside(a) { (a, b) } else { (b, a) };
                let (pi, po) = (corner_pos(pin), corner_pos(pout));
                outwardness += (0..3).map(|d| n[d] * (po[d] - pi[d])).sum::<f64>();
            }
            if outwardness < 0.0 {
                lp.reverse();
            }
            for i in 1..lp.len() - 1 {
                tris.push([lp[0] as u8, lp[i] as u8, lp[i + 1] as u8]);
            }
        }
        triangles.push(tris);
    }
    CaseTable { triangles }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complementary_trivial_cases() {
        let t = case_table();
        assert!(t.triangles[0].is_empty());
        assert!(t.triangles[255].is_empty());
        // One inside corner: one triangle on its three edges.
        assert_eq!(t.triangles[1].len(), 1);
        let mut e = t.triangles[1][0].to_vec();
        e.sort();
        assert_eq!(e, vec![0, 4, 8]);
        // Every case has at most 5 triangles (classic MC bound).
        assert!(t.triangles.iter().all(|c| c.len() <= 5));
    }
}
