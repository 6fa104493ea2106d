//! fuseprint patch: a fused, multithreaded ELU (see PATCHES.md at the root of this crate).
//!
//! tract-hir expands ONNX `Elu` into whole-tensor nodes (a `0 < x` test, exp, − 1, × alpha
//! unless alpha is 1, and a select), each a single-threaded pass. On brainchop's
//! model20chan3cls (ten 3×3×3 layers of 20 channels on a 256³ head) they kept one core busy for
//! about 40 % of a tract run while the other waited. `FusedElu` computes
//! `0 < x ? x : (exp(x) − 1) · alpha` with tract-linalg's exp kernel, as the chain does, in one
//! pass split over tract's executor, in place when the input is its producer's last use.

use crate::internal::*;
use crate::ops::element_wise::ElementWiseOp;
use crate::ops::logic::{CompGT, CompLT, Iff};
use crate::ops::math::{Exp, Mul, Sub};
use crate::ops::nn::graph_match::{is_bin, is_ew, outlet, scalar_const};
use tract_linalg::routines::Func;

/// Values per parallel piece (128 KiB: stays in a core's L2 cache).
const PIECE: usize = 32 * 1024;
/// Values per exp kernel call.
const CHUNK: usize = 1024;

/// ELU on f32: `x` where `0 < x`, else `(exp(x) − 1) · alpha`.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedElu {
    pub alpha: f32,
}

// The op is compared (DynEq) for graph deduplication; alpha is never NaN (a constant of the
// model, checked when matched).
impl Eq for FusedElu {}

/// ELU in place, with the arithmetic of tract's expanded chain (same exp kernel, `− 1` then
/// `× alpha` in f32), so the result is bit-identical to it.
fn elu_f32(xs: &mut [f32], alpha: f32) -> TractResult<()> {
    let exp = Func::Exp.ew_f32()?;
    let mut scratch = vec![0f32; xs.len().min(CHUNK)];
    for chunk in xs.chunks_mut(CHUNK) {
        let e = &mut scratch[..chunk.len()];
        e.copy_from_slice(chunk);
        exp.run(e)?;
        for (x, e) in chunk.iter_mut().zip(e.iter()) {
            if !(0.0 < *x) {
                *x = (*e - 1.0) * alpha;
            }
        }
    }
    Ok(())
}

impl Op for FusedElu {
    fn name(&self) -> StaticName {
        "FusedElu".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("alpha: {}", self.alpha)])
    }

    op_as_typed_op!();
}

impl EvalOp for FusedElu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        ensure!(input.datum_type() == f32::datum_type(), "FusedElu is f32 only");
        let mut tensor = input.into_tensor();
        {
            let mut view = tensor.try_as_plain_ram_mut()?;
            let data = view.as_slice_mut::<f32>()?;
            let total = data.len();
            let mut pieces: Vec<&mut [f32]> = data.chunks_mut(PIECE).collect();
            let alpha = self.alpha;
            tract_linalg::multithread::par_chunks_mut(&mut pieces, 1, total, |_, pieces| {
                for piece in pieces {
                    elu_f32(piece, alpha)?;
                }
                Ok(())
            })?;
        }
        Ok(tvec!(tensor.into_tvalue()))
    }
}

impl TypedOp for FusedElu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1, "FusedElu has one input");
        ensure!(inputs[0].datum_type == f32::datum_type(), "FusedElu is f32 only");
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let count: TDim = inputs[0].shape.iter().product();
        Ok(tvec!((Cost::FMA(f32::datum_type()), count * 4)))
    }

    as_op!();
}

/// Replaces tract-hir's expansion of ONNX `Elu` on the f32 wire `x` with one `FusedElu`, called
/// from the chain's `Exp` at codegen (`ElementWiseOp::codegen`). Codegen runs in evaluation
/// order, so the − 1, × alpha and select after the exp are still as decluttered; the test may
/// come first, but a comparison has no optimised form and stays a `TypedBinOp`. Matched:
/// `Iff(CompLT(0, x) or CompGT(x, 0), x, Sub(Exp(x), 1) [× alpha])`, with the select's output
/// of x's shape. The chain's nodes that nothing else reads are pruned afterwards.
pub fn detect_elu(model: &TypedModel, x: OutletId) -> TractResult<Option<TypedModelPatch>> {
    // `TRACT_DISABLE_FUSED_ELU=1` keeps tract's expanded chain (A/B measurements).
    rule_if!(!crate::ops::patch_switch::is_on("TRACT_DISABLE_FUSED_ELU"));
    let fact = model.outlet_fact(x)?;
    rule_if!(fact.datum_type == f32::datum_type());
    for inlet in model.outlet_successors(x) {
        let iff = model.node(inlet.node);
        if !(iff.op_is::<Iff>() && iff.inputs.len() == 3 && iff.inputs[1] == x) {
            continue;
        }
        if !is_positive_test(model, model.node(iff.inputs[0].node), x)? {
            continue;
        }
        let Some(alpha) = negative_branch(model, iff.inputs[2], x)? else { continue };
        if model.outlet_fact(outlet(iff))?.shape != fact.shape {
            continue;
        }
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, x)?;
        let y = patch.wire_node(format!("{}.fused_elu", iff.name), FusedElu { alpha }, &[input])?;
        patch.shunt_outside(model, outlet(iff), y[0])?;
        return Ok(Some(patch));
    }
    Ok(None)
}

/// `0 < x` (as tract-hir wires it) or `x > 0`.
fn is_positive_test(model: &TypedModel, test: &TypedNode, x: OutletId) -> TractResult<bool> {
    let zero_then_x = is_bin::<CompLT>(test) && test.inputs[1] == x;
    let x_then_zero = is_bin::<CompGT>(test) && test.inputs[0] == x;
    if !(zero_then_x || x_then_zero) {
        return Ok(false);
    }
    let zero = if zero_then_x { test.inputs[0] } else { test.inputs[1] };
    Ok(zero != x && scalar_const(model, zero)? == Some(0.0))
}

/// The alpha of `Sub(Exp(x), 1)`, optionally multiplied by a finite scalar constant alpha
/// (tract drops the product when alpha is 1).
fn negative_branch(model: &TypedModel, neg: OutletId, x: OutletId) -> TractResult<Option<f32>> {
    let node = model.node(neg.node);
    let (alpha, minus_one) = if is_bin::<Mul>(node) {
        let (a, b) = (node.inputs[0], node.inputs[1]);
        match (scalar_const(model, a)?, scalar_const(model, b)?) {
            (Some(alpha), None) => (alpha, b),
            (None, Some(alpha)) => (alpha, a),
            _ => return Ok(None),
        }
    } else {
        (1.0, neg)
    };
    rule_if!(alpha.is_finite());
    let sub = model.node(minus_one.node);
    rule_if!(is_bin::<Sub>(sub));
    rule_if!(scalar_const(model, sub.inputs[1])? == Some(1.0));
    let exp = model.node(sub.inputs[0].node);
    rule_if!(is_ew::<Exp>(exp) && exp.inputs[0] == x);
    rule_if!(exp.op_as::<ElementWiseOp>().is_some_and(|op| op.1.is_none()));
    Ok(Some(alpha))
}
