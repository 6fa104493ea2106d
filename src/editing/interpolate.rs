//! Fill between slices: the user segments a label on a few slices, the empty slices between
//! them are filled by interpolating the shapes (shape-based interpolation, Raya & Udupa 1990:
//! linear blend of the two neighbouring key slices' signed distance maps, in mm).

use super::{EditError, Gesture, PaintValue, SliceOrientation};

/// Fills `label` on every slice (along `orientation`'s view axis) lying between two slices
/// that already contain it and containing none itself. Returns how many voxels changed.
pub fn fill_between_slices(
    gesture: &mut Gesture<'_>,
    label: u16,
    orientation: SliceOrientation,
) -> Result<usize, EditError> {
    if label == 0 {
        return Err(EditError::InvalidParameter(
            "cannot interpolate the background".into(),
        ));
    }
    let g = gesture.geometry().clone();
    let (w_axis, u_axis, v_axis) = orientation.axes();
    let (nu, nv, nw) = (g.dims[u_axis], g.dims[v_axis], g.dims[w_axis]);
    let (su, sv) = (g.spacing_mm[u_axis], g.spacing_mm[v_axis]);
    let at = |u: usize, v: usize, w: usize| {
        let mut p = [0usize; 3];
        p[u_axis] = u;
        p[v_axis] = v;
        p[w_axis] = w;
        p
    };
    let slice_mask = |w: usize| -> Vec<bool> {
        let vol = &gesture.map().volume;
        let mut m = vec![false; nu * nv];
        for v in 0..nv {
            for u in 0..nu {
                let [i, j, k] = at(u, v, w);
                m[u + nu * v] = vol.at(i, j, k) == label;
            }
        }
        m
    };
    // Read every slice before painting any (painting borrows the map mutably).
    let masks: Vec<Vec<bool>> = (0..nw).map(slice_mask).collect();
    let keys: Vec<usize> = (0..nw).filter(|&w| masks[w].iter().any(|&b| b)).collect();
    let mut changed = 0;
    for pair in keys.windows(2) {
        let (w0, w1) = (pair[0], pair[1]);
        if w1 - w0 < 2 {
            continue;
        }
        let d0 = signed_distance_mm(&masks[w0], nu, nv, su, sv);
        let d1 = signed_distance_mm(&masks[w1], nu, nv, su, sv);
        for w in w0 + 1..w1 {
            let t = (w - w0) as f32 / (w1 - w0) as f32;
            for v in 0..nv {
                for u in 0..nu {
                    let n = u + nu * v;
                    if (1.0 - t) * d0[n] + t * d1[n] < 0.0 {
                        let [i, j, k] = at(u, v, w);
                        changed += usize::from(gesture.paint(i, j, k, PaintValue::Label(label)));
                    }
                }
            }
        }
    }
    Ok(changed)
}

/// Signed distance (mm) to the boundary between pixel centres: negative inside, positive
/// outside, each side offset by half the distance to the nearest opposite pixel so the zero
/// level sits midway between an inside and an outside pixel.
fn signed_distance_mm(inside: &[bool], nu: usize, nv: usize, su: f64, sv: f64) -> Vec<f32> {
    let to_inside = edt_2d(inside, true, nu, nv, su, sv);
    let to_outside = edt_2d(inside, false, nu, nv, su, sv);
    inside
        .iter()
        .enumerate()
        .map(|(n, &b)| {
            if b {
                -(to_outside[n].sqrt() - 0.5 * to_outside[n].sqrt().min(su.min(sv) as f32))
            } else {
                to_inside[n].sqrt() - 0.5 * to_inside[n].sqrt().min(su.min(sv) as f32)
            }
        })
        .collect()
}

/// Squared distance (mm²) from each pixel to the nearest pixel where `inside == target`
/// (infinite when there is none). Separable Felzenszwalb–Huttenlocher, as in
/// `segmentation::distance`, in 2D (kept here so `editing` does not depend on `segmentation`).
fn edt_2d(inside: &[bool], target: bool, nu: usize, nv: usize, su: f64, sv: f64) -> Vec<f32> {
    let mut f: Vec<f64> = inside
        .iter()
        .map(|&b| if b == target { 0.0 } else { f64::INFINITY })
        .collect();
    let mut line = Vec::new();
    for v in 0..nv {
        line.clear();
        line.extend_from_slice(&f[v * nu..(v + 1) * nu]);
        let out = edt_1d(&line, su);
        f[v * nu..(v + 1) * nu].copy_from_slice(&out);
    }
    for u in 0..nu {
        line.clear();
        line.extend((0..nv).map(|v| f[u + nu * v]));
        let out = edt_1d(&line, sv);
        for (v, d) in out.into_iter().enumerate() {
            f[u + nu * v] = d;
        }
    }
    f.into_iter().map(|d| d as f32).collect()
}

/// Lower envelope of the parabolas `(x − q·s)² + f[q]`.
fn edt_1d(f: &[f64], s: f64) -> Vec<f64> {
    let pos = |q: usize| q as f64 * s;
    let mut sites: Vec<usize> = Vec::new();
    let mut bounds: Vec<f64> = Vec::new();
    for q in (0..f.len()).filter(|&q| f[q].is_finite()) {
        while let Some(&v) = sites.last() {
            let x = ((f[q] + pos(q).powi(2)) - (f[v] + pos(v).powi(2))) / (2.0 * (pos(q) - pos(v)));
            if bounds.last().is_some_and(|&b| x <= b) {
                sites.pop();
                bounds.pop();
            } else {
                sites.push(q);
                bounds.push(x);
                break;
            }
        }
        if sites.is_empty() {
            sites.push(q);
            bounds.push(f64::NEG_INFINITY);
        }
    }
    if sites.is_empty() {
        return f.to_vec();
    }
    let mut out = vec![0.0; f.len()];
    let mut k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while k + 1 < sites.len() && bounds[k + 1] < pos(q) {
            k += 1;
        }
        *o = (pos(q) - pos(sites[k])).powi(2) + f[sites[k]];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editing::phantoms::empty_map;
    use crate::editing::EditMask;
    use std::f64::consts::PI;

    #[test]
    fn circles_interpolate_to_intermediate_circles() {
        let mut map = empty_map([80, 80, 11], [0.5, 0.5, 1.5]);
        let (r0, r1) = (6.0, 16.0);
        for (k, r) in [(0usize, r0), (10, r1)] {
            for j in 0..80 {
                for i in 0..80 {
                    let (x, y) = (i as f64 * 0.5 - 20.0, j as f64 * 0.5 - 20.0);
                    if x * x + y * y <= r * r {
                        map.volume.set(i, j, k, 1);
                    }
                }
            }
        }
        let mut g =
            Gesture::begin(&mut map, "fill between", &EditMask::default(), None).expect("ok");
        let n = fill_between_slices(&mut g, 1, SliceOrientation::Axial).expect("valid");
        assert!(g.finish().is_some() && n > 0);
        for k in 1..10 {
            let r = r0 + (r1 - r0) * k as f64 / 10.0;
            let area_voxels = PI * r * r / 0.25;
            let got = map.volume.slice_k(k).iter().filter(|&&v| v == 1).count() as f64;
            // Within half a voxel of the expected radius.
            let tolerance = 2.0 * PI * r * 0.25 / 0.25;
            assert!(
                (got - area_voxels).abs() < tolerance,
                "slice {k}: {got} vs {area_voxels}"
            );
            // Centred: the circle's centre voxel is set, a voxel just outside the radius is not.
            assert_eq!(map.volume.at(40, 40, k), 1);
            let outside = ((20.0 + r + 1.0) / 0.5) as usize;
            assert_eq!(map.volume.at(outside, 40, k), 0);
        }
    }

    #[test]
    fn edt_2d_matches_brute_force() {
        let (nu, nv, su, sv) = (7, 5, 0.5, 2.0);
        let inside: Vec<bool> = (0..nu * nv).map(|n| n == 3 || n == 30).collect();
        let d = edt_2d(&inside, true, nu, nv, su, sv);
        for v in 0..nv {
            for u in 0..nu {
                let expect = [3usize, 30]
                    .iter()
                    .map(|&p| {
                        ((u as f64 - (p % nu) as f64) * su).powi(2)
                            + ((v as f64 - (p / nu) as f64) * sv).powi(2)
                    })
                    .fold(f64::INFINITY, f64::min);
                assert!((d[u + nu * v] as f64 - expect).abs() < 1e-4);
            }
        }
    }
}
