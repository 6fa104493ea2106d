//! Fill in slice: flood the 4-connected region of the clicked voxel's label on one slice,
//! e.g. the inside of a contour drawn with the brush.

use super::{EditError, Gesture, PaintValue, SliceOrientation};

/// Floods from `seed` (voxel index) through voxels holding the seed's current label, in the
/// slice of `orientation` through the seed. Returns how many voxels changed.
pub fn fill_in_slice(
    gesture: &mut Gesture<'_>,
    orientation: SliceOrientation,
    seed: [usize; 3],
    value: PaintValue,
) -> Result<usize, EditError> {
    let g = gesture.geometry().clone();
    if !g.contains_index(seed[0] as i64, seed[1] as i64, seed[2] as i64) {
        return Err(EditError::OutsideGrid(seed.map(|c| c as f64)));
    }
    let (_, u_axis, v_axis) = orientation.axes();
    let (nu, nv) = (g.dims[u_axis], g.dims[v_axis]);
    let voxel = |u: usize, v: usize| {
        let mut p = seed;
        p[u_axis] = u;
        p[v_axis] = v;
        p
    };
    let target = gesture.map().volume.at(seed[0], seed[1], seed[2]);
    // Find the region first, then paint: painting while flooding would change what is found.
    let mut region = vec![false; nu * nv];
    let mut stack = vec![(seed[u_axis], seed[v_axis])];
    region[seed[u_axis] + nu * seed[v_axis]] = true;
    let mut cells = Vec::new();
    while let Some((u, v)) = stack.pop() {
        cells.push((u, v));
        let neighbours = [
            (u.wrapping_sub(1), v),
            (u + 1, v),
            (u, v.wrapping_sub(1)),
            (u, v + 1),
        ];
        for (a, b) in neighbours {
            if a < nu && b < nv && !region[a + nu * b] {
                let [i, j, k] = voxel(a, b);
                if gesture.map().volume.at(i, j, k) == target {
                    region[a + nu * b] = true;
                    stack.push((a, b));
                }
            }
        }
    }
    let mut changed = 0;
    for (u, v) in cells {
        let [i, j, k] = voxel(u, v);
        changed += usize::from(gesture.paint(i, j, k, value));
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::editing::phantoms::{count, empty_map};
    use crate::editing::EditMask;

    #[test]
    fn fills_the_inside_of_a_drawn_square_only() {
        let mut map = empty_map([20, 4, 20], [1.0; 3]);
        // A square outline of label 1 on coronal slice j = 2: i, k in 5..=14.
        for t in 5..=14 {
            for (i, k) in [(t, 5), (t, 14), (5, t), (14, t)] {
                map.volume.set(i, 2, k, 1);
            }
        }
        let mut g = Gesture::begin(&mut map, "fill", &EditMask::default(), None).expect("ok");
        let n = fill_in_slice(
            &mut g,
            SliceOrientation::Coronal,
            [9, 2, 9],
            PaintValue::Label(1),
        )
        .expect("inside");
        g.finish();
        assert_eq!(n, 8 * 8);
        assert_eq!(count(&map, 1), 10 * 10);
        // Other slices untouched.
        assert!((0..20).all(|i| map.volume.at(i, 1, 9) == 0));
    }
}
