//! Building and reading tract tensors, and planning or running with fuseprint's tract-core patches
//! switched off, in the tract-core patch tests.

use tract_core::internal::*;

/// An f32 tensor of `shape` holding `values` in row-major order.
pub fn tensor(shape: &[usize], values: Vec<f32>) -> Tensor {
    tract_ndarray::ArrayD::from_shape_vec(shape, values)
        .expect("shape matches")
        .into()
}

/// An f32 tensor's values in row-major order.
pub fn values(tensor: &Tensor) -> Vec<f32> {
    tensor
        .to_plain_array_view::<f32>()
        .expect("an f32 tensor")
        .iter()
        .copied()
        .collect()
}

/// The patches' env switches are read when a model is optimised (most) or when it evaluates (the
/// Pad and Slice copies): every switch flip in a test binary goes through [`with_switches_off`],
/// which holds this lock, so a switch flipped for one model never affects another test's.
static SWITCHES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `work` (planning a model, or running one) with the env switches in `off` set to 1, and
/// every other switch of `switches` unset; all are unset again afterwards.
pub fn with_switches_off<T>(switches: &[&str], off: bool, work: impl FnOnce() -> T) -> T {
    let _guard = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    for switch in switches {
        if off {
            std::env::set_var(switch, "1");
        } else {
            std::env::remove_var(switch);
        }
    }
    let result = work();
    for switch in switches {
        std::env::remove_var(switch);
    }
    result
}
