//! Logical operations between masks (e.g. "bone minus implant", "union of two labels").

use super::{check_same_grid, Mask, SegmentationError};
use crate::volume::Volume;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalOp {
    Union,
    Intersect,
    /// `a` and not `b`.
    Subtract,
    Xor,
}

pub fn combine(a: &Mask, b: &Mask, op: LogicalOp) -> Result<Mask, SegmentationError> {
    check_same_grid("second mask", a.geometry(), b.geometry())?;
    let data = a
        .data()
        .par_iter()
        .zip(b.data().par_iter())
        .map(|(&x, &y)| {
            let (x, y) = (x != 0, y != 0);
            u8::from(match op {
                LogicalOp::Union => x || y,
                LogicalOp::Intersect => x && y,
                LogicalOp::Subtract => x && !y,
                LogicalOp::Xor => x != y,
            })
        })
        .collect();
    Ok(Volume::new(a.geometry().clone(), data).expect("same grid"))
}

pub fn invert(mask: &Mask) -> Mask {
    mask.map(|v| u8::from(v == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segmentation::phantoms::grid;

    #[test]
    fn truth_tables() {
        let g = grid([4, 1, 1], [1.0; 3]);
        let a = Volume::new(g.clone(), vec![0, 0, 1, 1]).expect("fits");
        let b = Volume::new(g, vec![0, 1, 0, 1]).expect("fits");
        let run = |op| combine(&a, &b, op).expect("same grid").into_data();
        assert_eq!(run(LogicalOp::Union), vec![0, 1, 1, 1]);
        assert_eq!(run(LogicalOp::Intersect), vec![0, 0, 0, 1]);
        assert_eq!(run(LogicalOp::Subtract), vec![0, 0, 1, 0]);
        assert_eq!(run(LogicalOp::Xor), vec![0, 1, 1, 0]);
        assert_eq!(invert(&a).into_data(), vec![1, 1, 0, 0]);
        let other = Volume::filled(grid([2, 2, 1], [1.0; 3]), 0u8);
        assert!(combine(&a, &other, LogicalOp::Union).is_err());
    }
}
