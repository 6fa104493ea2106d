//! Reading tract tensors back in the tract-core patch tests.

use tract_core::internal::*;

/// An f32 tensor's values in row-major order.
pub fn values(tensor: &Tensor) -> Vec<f32> {
    tensor
        .to_plain_array_view::<f32>()
        .expect("an f32 tensor")
        .iter()
        .copied()
        .collect()
}
