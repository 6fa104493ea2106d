//! fuseprint patch: small graph-matching helpers shared by the fused-op detectors
//! (`instance_norm.rs`, `elu.rs`; see PATCHES.md at the root of this crate).

use crate::internal::*;
use crate::ops::binary::TypedBinOp;
use crate::ops::element_wise::ElementWiseOp;

/// A single-output node's output.
pub fn outlet(node: &TypedNode) -> OutletId {
    OutletId::new(node.id, 0)
}

/// A two-input `TypedBinOp` whose mini-op is `B`.
pub fn is_bin<B: crate::ops::binary::BinMiniOp>(node: &TypedNode) -> bool {
    node.inputs.len() == 2 && node.op_as::<TypedBinOp>().is_some_and(|op| op.0.is::<B>())
}

/// A one-input `ElementWiseOp` whose mini-op is `E`.
pub fn is_ew<E: crate::ops::element_wise::ElementWiseMiniOp>(node: &TypedNode) -> bool {
    node.inputs.len() == 1 && node.op_as::<ElementWiseOp>().is_some_and(|op| op.0.is::<E>())
}

/// A constant holding one f32 value (whatever its rank).
pub fn scalar_const(model: &TypedModel, outlet: OutletId) -> TractResult<Option<f32>> {
    let fact = model.outlet_fact(outlet)?;
    rule_if!(fact.datum_type == f32::datum_type());
    rule_if_some!(konst = fact.konst.as_ref());
    rule_if!(konst.volume() == 1);
    Ok(Some(konst.cast_to_scalar::<f32>()?))
}
