//! fuseprint patch: a fused, multithreaded instance normalisation (see PATCHES.md at the root of
//! this crate).
//!
//! tract-onnx expands ONNX `InstanceNormalization` into a chain of whole-tensor passes (a sum
//! reduction, a division for the mean, a subtraction, a square, a second sum and division for the
//! variance, an epsilon, a reciprocal square root, and three products and sums), each one
//! single-threaded. On MeshNet volumes (1 batch × 15 channels × 256³) that chain ran on one core
//! while the 3D convolutions used both. `PlaneNorm` computes the same result in two parallel
//! passes over the tensor:
//!
//! 1. every (n, c) plane is cut into chunks of at most `CHUNK` values; each chunk's count, mean
//!    and sum of squared deviations are computed in f64 (around a shift, the chunk's first value,
//!    so that the sum of squares does not cancel);
//! 2. the chunks of a plane are combined (Chan et al.'s pairwise update), giving each plane's mean
//!    and population variance, and from them `a = scale[c] / sqrt(var + eps)`;
//! 3. every chunk is normalised in place, `y = (x − mean) · a + bias[c]`, followed by the optional
//!    fused activation.
//!
//! The chunks (not the planes) are what tract's executor splits, so a tensor with fewer planes
//! than cores (MeshNet: 15 planes on 2 cores, uneven) still keeps every core busy.
//!
//! `detect_instance_norm` (called from `Reduce::codegen`) recognises the expanded chain and
//! replaces it; `TRACT_DISABLE_FUSED_INSTANCE_NORM=1` keeps tract's own chain (for A/B
//! comparisons).

use crate::internal::*;
use crate::ops::cast::Cast;
use crate::ops::math::{Add, Div, Mul, Recip, Rsqrt, Square, Sub};
use crate::ops::nn::gelu_exact::gelu_exact_f32;
use crate::ops::nn::graph_match::{is_bin, is_ew, outlet, scalar_const};
use crate::ops::nn::{GeluExact, Reduce, Reducer};

/// Values per chunk: large enough that the per-chunk bookkeeping is negligible, small enough
/// (128 KiB) to stay in a core's L2 cache and to split one MeshNet plane (up to 256³ values) into
/// hundreds of pieces.
const CHUNK: usize = 32 * 1024;

/// An element-wise activation fused after the normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlaneNormActivation {
    /// tract's `GeluExact`: `x / 2 · (1 + erf(x / √2))`, computed exactly as that op does.
    GeluExact,
}

/// Normalises each (n, c) plane of an f32 `[N, C, spatial…]` tensor:
/// `(x − mean) / sqrt(var + epsilon) · scale[c] + bias[c]`, then the optional activation.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaneNorm {
    pub epsilon: f32,
    /// One value per channel.
    pub scale: Vec<f32>,
    /// One value per channel.
    pub bias: Vec<f32>,
    pub activation: Option<PlaneNormActivation>,
}

// The op is compared (DynEq) for graph deduplication; epsilon is never NaN.
impl Eq for PlaneNorm {}

impl PlaneNorm {
    pub fn new(
        epsilon: f32,
        scale: Vec<f32>,
        bias: Vec<f32>,
        activation: Option<PlaneNormActivation>,
    ) -> TractResult<PlaneNorm> {
        ensure!(
            scale.len() == bias.len(),
            "PlaneNorm: {} scales for {} biases",
            scale.len(),
            bias.len()
        );
        Ok(PlaneNorm { epsilon, scale, bias, activation })
    }

    /// Normalises `data`, `planes` consecutive planes of `plane_len` values, in place.
    pub fn normalize_in_place(
        &self,
        data: &mut [f32],
        planes: usize,
        plane_len: usize,
    ) -> TractResult<()> {
        ensure!(
            data.len() == planes * plane_len,
            "PlaneNorm: {} values for {planes} planes of {plane_len}",
            data.len()
        );
        let channels = self.scale.len();
        ensure!(
            channels > 0 && planes % channels == 0,
            "PlaneNorm: {planes} planes for {channels} channels"
        );
        if plane_len == 0 {
            return Ok(());
        }
        let total = data.len();
        let mut pieces: Vec<Piece> = data
            .chunks_mut(plane_len)
            .enumerate()
            .flat_map(|(plane, values)| {
                values.chunks_mut(CHUNK).map(move |values| Piece {
                    plane,
                    values,
                    moments: Moments::default(),
                })
            })
            .collect();

        // Pass 1: the moments of every chunk, in parallel.
        tract_linalg::multithread::par_chunks_mut(&mut pieces, 1, total, |_, pieces| {
            for piece in pieces {
                piece.moments = Moments::of(piece.values);
            }
            Ok(())
        })?;

        // Pass 2: per plane, combine its chunks (in order, so the result does not depend on the
        // thread count) and derive the affine map x ↦ (x − mean) · a + b.
        let mut moments = vec![Moments::default(); planes];
        for piece in &pieces {
            moments[piece.plane] = moments[piece.plane].merge(&piece.moments);
        }
        let maps: Vec<(f32, f32, f32)> = moments
            .iter()
            .enumerate()
            .map(|(plane, m)| {
                let c = plane % channels;
                let variance = m.m2 / m.count;
                let inv_std = 1.0 / (variance + self.epsilon as f64).sqrt();
                (m.mean as f32, (inv_std * self.scale[c] as f64) as f32, self.bias[c])
            })
            .collect();

        // Pass 3: normalise (and activate) every chunk in place, in parallel.
        let activation = self.activation;
        tract_linalg::multithread::par_chunks_mut(&mut pieces, 1, total, |_, pieces| {
            for piece in pieces {
                let (mean, a, b) = maps[piece.plane];
                for v in piece.values.iter_mut() {
                    *v = (*v - mean) * a + b;
                }
                match activation {
                    Some(PlaneNormActivation::GeluExact) => gelu_exact_f32(piece.values)?,
                    None => (),
                }
            }
            Ok(())
        })
    }
}

/// `TRACT_DISABLE_FUSED_INSTANCE_NORM=1` keeps tract's expanded chain (for A/B measurements).
pub fn fused_instance_norm_disabled() -> bool {
    crate::ops::patch_switch::is_on("TRACT_DISABLE_FUSED_INSTANCE_NORM")
}

/// One chunk of one plane.
struct Piece<'a> {
    plane: usize,
    values: &'a mut [f32],
    moments: Moments,
}

/// Count, mean and sum of squared deviations from the mean of a set of values.
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn of(values: &[f32]) -> Moments {
        let Some(first) = values.first() else {
            return Moments::default();
        };
        // Sums of deviations from a value of the chunk: no cancellation between a large mean and
        // a small variance. Eight independent lanes let the compiler vectorise the f64 sums.
        let shift = *first as f64;
        let mut s1 = [0f64; 8];
        let mut s2 = [0f64; 8];
        let mut lanes = values.chunks_exact(8);
        for group in &mut lanes {
            for i in 0..8 {
                let d = group[i] as f64 - shift;
                s1[i] += d;
                s2[i] += d * d;
            }
        }
        for (i, v) in lanes.remainder().iter().enumerate() {
            let d = *v as f64 - shift;
            s1[i] += d;
            s2[i] += d * d;
        }
        let count = values.len() as f64;
        let s1: f64 = s1.iter().sum();
        let s2: f64 = s2.iter().sum();
        Moments { count, mean: shift + s1 / count, m2: (s2 - s1 * s1 / count).max(0.0) }
    }

    /// The moments of the union of two sets (Chan, Golub & LeVeque's pairwise update).
    fn merge(&self, other: &Moments) -> Moments {
        if self.count == 0.0 {
            return *other;
        }
        if other.count == 0.0 {
            return *self;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        Moments {
            count,
            mean: self.mean + delta * other.count / count,
            m2: self.m2 + other.m2 + delta * delta * self.count * other.count / count,
        }
    }
}

impl Op for PlaneNorm {
    fn name(&self) -> StaticName {
        "PlaneNorm".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "epsilon: {}, channels: {}, activation: {:?}",
            self.epsilon,
            self.scale.len(),
            self.activation
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for PlaneNorm {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        ensure!(input.datum_type() == f32::datum_type(), "PlaneNorm is f32 only");
        ensure!(input.rank() >= 3, "PlaneNorm needs [N, C, spatial…], got {:?}", input.shape());
        ensure!(
            input.shape()[1] == self.scale.len(),
            "PlaneNorm: {} channels, expected {}",
            input.shape()[1],
            self.scale.len()
        );
        let planes = input.shape()[0] * input.shape()[1];
        let plane_len: usize = input.shape()[2..].iter().product();
        // The input is usually its producer's last use: then this takes it without a copy and
        // normalises in place.
        let mut tensor = input.into_tensor();
        {
            let mut view = tensor.try_as_plain_ram_mut()?;
            self.normalize_in_place(view.as_slice_mut::<f32>()?, planes, plane_len)?;
        }
        Ok(tvec!(tensor.into_tvalue()))
    }
}

impl TypedOp for PlaneNorm {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1, "PlaneNorm has one input");
        ensure!(inputs[0].datum_type == f32::datum_type(), "PlaneNorm is f32 only");
        ensure!(inputs[0].rank() >= 3, "PlaneNorm needs [N, C, spatial…]");
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let count: TDim = inputs[0].shape.iter().product();
        Ok(tvec!((Cost::FMA(f32::datum_type()), count * 4)))
    }

    as_op!();
}

/// Replaces tract-onnx's expansion of `InstanceNormalization`, anchored on its first `Reduce<Sum>`
/// (the plane sums for the mean), with one `PlaneNorm`. Matched conservatively, as decluttered
/// (before the chain's own codegen): Sum over all spatial axes → ÷ count (or × 1/count) → x −
/// mean → square → Sum → ÷ count (or `MeanOfSquares` of the difference) → + epsilon → rsqrt →
/// (x − mean) × rsqrt, then, when present, × per-channel scale, + per-channel bias and
/// `GeluExact`. Every intermediate must be used by the chain only; anything else keeps tract's
/// path.
pub fn detect_instance_norm(
    op: &Reduce,
    model: &TypedModel,
    node: &TypedNode,
) -> TractResult<Option<TypedModelPatch>> {
    rule_if!(op.reducer == Reducer::Sum);
    rule_if!(!fused_instance_norm_disabled());
    rule_if_some!((norm, output) = match_chain(op, model, node)?);
    let mut patch = TypedModelPatch::default();
    let x = patch.tap_model(model, node.inputs[0])?;
    let y = patch.wire_node(format!("{}.plane_norm", node.name), norm, &[x])?;
    patch.shunt_outside(model, output, y[0])?;
    Ok(Some(patch))
}

fn match_chain(
    op: &Reduce,
    model: &TypedModel,
    sum: &TypedNode,
) -> TractResult<Option<(PlaneNorm, OutletId)>> {
    rule_if!(sum.inputs.len() == 1);
    let x = sum.inputs[0];
    let x_fact = model.outlet_fact(x)?;
    let rank = x_fact.rank();
    rule_if!(x_fact.datum_type == f32::datum_type() && rank >= 3);
    rule_if!(op.axes.iter().copied().eq(2..rank));
    rule_if_some!(channels = x_fact.shape[1].as_i64());
    rule_if!(channels > 0);
    let channels = channels as usize;
    let count: TDim = x_fact.shape[2..].iter().product::<TDim>().simplify();

    // mean = Σx / count; diff = x − mean
    rule_if_some!(mean = mean_of(model, sum, &count)?);
    rule_if_some!(diff = sole_consumer(model, mean));
    rule_if!(is_bin::<Sub>(diff) && diff.inputs[..] == [x, outlet(mean)]);

    // The difference feeds the variance and the product with rsqrt, nothing else.
    rule_if_some!(diff_consumers = consumers(model, diff, 2));
    let (var, product) = if let Some(var) = variance_of(model, op, diff, diff_consumers[0], &count)? {
        (var, diff_consumers[1])
    } else {
        rule_if_some!(var = variance_of(model, op, diff, diff_consumers[1], &count)?);
        (var, diff_consumers[0])
    };

    // rsqrt(var + epsilon)
    rule_if_some!(plus_eps = sole_consumer(model, var));
    rule_if!(is_bin::<Add>(plus_eps));
    rule_if_some!(eps = other_input(plus_eps, outlet(var)));
    rule_if_some!(epsilon = scalar_const(model, eps)?);
    rule_if_some!(rsqrt = sole_consumer(model, plus_eps));
    rule_if!(is_ew::<Rsqrt>(rsqrt) && rsqrt.inputs[..] == [outlet(plus_eps)]);
    rule_if_some!(rsqrt_consumer = sole_consumer(model, rsqrt));
    rule_if!(rsqrt_consumer.id == product.id && is_bin::<Mul>(product));
    rule_if!(other_input(product, outlet(diff)) == Some(outlet(rsqrt)));

    // Optional: × scale[c], + bias[c], GeluExact.
    let mut last = product;
    let mut scale = vec![1.0; channels];
    let mut bias = vec![0.0; channels];
    let mut activation = None;
    if let Some((values, next)) = per_channel_step::<Mul>(model, last, rank, channels)? {
        scale = values;
        last = next;
    }
    if let Some((values, next)) = per_channel_step::<Add>(model, last, rank, channels)? {
        bias = values;
        last = next;
    }
    if let Some(next) = sole_consumer(model, last) {
        if is_ew::<GeluExact>(next) && next.inputs[..] == [outlet(last)] {
            activation = Some(PlaneNormActivation::GeluExact);
            last = next;
        }
    }

    // Whatever the chain's shape arithmetic did, the result must be x's shape, in f32.
    let out_fact = model.outlet_fact(outlet(last))?;
    rule_if!(out_fact.datum_type == f32::datum_type() && out_fact.shape == x_fact.shape);
    Ok(Some((PlaneNorm::new(epsilon, scale, bias, activation)?, outlet(last))))
}

/// The `n` consumers of a single-output node, if it has exactly these and is not a model output.
fn consumers<'m>(model: &'m TypedModel, node: &TypedNode, n: usize) -> Option<Vec<&'m TypedNode>> {
    if node.outputs.len() != 1
        || node.outputs[0].successors.len() != n
        || model.outputs.contains(&outlet(node))
    {
        return None;
    }
    let nodes: Vec<&TypedNode> =
        node.outputs[0].successors.iter().map(|inlet| model.node(inlet.node)).collect();
    // One consumer reading the value twice would be a different graph.
    if nodes.iter().map(|n| n.id).collect::<std::collections::HashSet<_>>().len() != n {
        return None;
    }
    Some(nodes)
}

fn sole_consumer<'m>(model: &'m TypedModel, node: &TypedNode) -> Option<&'m TypedNode> {
    consumers(model, node, 1).map(|nodes| nodes[0])
}

/// The input of a two-input node that is not `known` (`known` must be exactly one of them).
fn other_input(node: &TypedNode, known: OutletId) -> Option<OutletId> {
    match node.inputs[..] {
        [a, b] if a == known && b != known => Some(b),
        [a, b] if b == known && a != known => Some(a),
        _ => None,
    }
}

/// `last`'s sole consumer when it is the binary op `B` of `last` and a per-channel constant
/// (the expansion's × scale and + bias), with that constant's values.
fn per_channel_step<'m, B: crate::ops::binary::BinMiniOp>(
    model: &'m TypedModel,
    last: &TypedNode,
    rank: usize,
    channels: usize,
) -> TractResult<Option<(Vec<f32>, &'m TypedNode)>> {
    rule_if_some!(next = sole_consumer(model, last));
    rule_if!(is_bin::<B>(next));
    rule_if_some!(k = other_input(next, outlet(last)));
    rule_if_some!(values = per_channel_const(model, k, rank, channels)?);
    Ok(Some((values, next)))
}

/// A constant of one f32 value per channel, broadcast over the other axes (`[1, C, 1, …]`, or one
/// value for every channel), as the expansion's scale and bias are.
fn per_channel_const(
    model: &TypedModel,
    outlet: OutletId,
    rank: usize,
    channels: usize,
) -> TractResult<Option<Vec<f32>>> {
    let fact = model.outlet_fact(outlet)?;
    rule_if!(fact.datum_type == f32::datum_type());
    rule_if_some!(konst = fact.konst.as_ref());
    if konst.volume() == 1 {
        rule_if!(konst.rank() <= rank);
        return Ok(Some(vec![konst.cast_to_scalar::<f32>()?; channels]));
    }
    rule_if!(konst.rank() == rank);
    rule_if!(konst.shape().iter().enumerate().all(|(axis, d)| *d == 1 || (axis == 1 && *d == channels)));
    let view = konst.try_as_plain_ram()?;
    Ok(Some(view.as_slice::<f32>()?.to_vec()))
}

/// Whether `outlet` is the f32 number of values in a plane (`count`), or its reciprocal: a
/// constant when the spatial shape is known, the cast of a symbolic dimension product (or its
/// `Recip`) otherwise.
fn is_plane_count(
    model: &TypedModel,
    outlet: OutletId,
    count: &TDim,
    reciprocal: bool,
) -> TractResult<bool> {
    let fact = model.outlet_fact(outlet)?;
    if fact.datum_type != f32::datum_type() || fact.shape.volume() != 1.to_dim() {
        return Ok(false);
    }
    if let Some(value) = scalar_const(model, outlet)? {
        let Ok(n) = count.to_i64() else { return Ok(false) };
        let expected = if reciprocal { 1.0 / n as f32 } else { n as f32 };
        return Ok(n > 0 && (value - expected).abs() <= expected.abs() * 1e-6);
    }
    let node = model.node(outlet.node);
    if reciprocal {
        // Symbolic: tract's declutter turns ÷ cast(count) into × recip(cast(count)).
        if !is_ew::<Recip>(node) {
            return Ok(false);
        }
        return is_plane_count(model, node.inputs[0], count, false);
    }
    let Some(cast) = node.op_as::<Cast>() else { return Ok(false) };
    if cast.to != f32::datum_type() || node.inputs.len() != 1 {
        return Ok(false);
    }
    let source = model.outlet_fact(node.inputs[0])?;
    let Some(konst) = source.konst.as_ref() else { return Ok(false) };
    if konst.datum_type() != TDim::datum_type() || konst.volume() != 1 {
        return Ok(false);
    }
    let view = konst.try_as_plain_ram()?;
    Ok(view.as_slice::<TDim>()?[0].clone().simplify() == *count)
}

/// The node that turns a plane sum into a plane mean: `Div(sum, count)` or `Mul(sum, 1/count)`.
fn mean_of<'m>(
    model: &'m TypedModel,
    sum: &TypedNode,
    count: &TDim,
) -> TractResult<Option<&'m TypedNode>> {
    rule_if_some!(mean = sole_consumer(model, sum));
    if is_bin::<Div>(mean) && mean.inputs[0] == outlet(sum) && mean.inputs[1] != outlet(sum) {
        rule_if!(is_plane_count(model, mean.inputs[1], count, false)?);
        return Ok(Some(mean));
    }
    rule_if!(is_bin::<Mul>(mean));
    rule_if_some!(k = other_input(mean, outlet(sum)));
    rule_if!(is_plane_count(model, k, count, true)?);
    Ok(Some(mean))
}

/// The variance of the planes of `diff` (x − mean), computed from `first`, one of diff's
/// consumers: Square → Sum → ÷ count, or `MeanOfSquares` (what tract's declutter makes of it when
/// the count is known).
fn variance_of<'m>(
    model: &'m TypedModel,
    op: &Reduce,
    diff: &TypedNode,
    first: &'m TypedNode,
    count: &TDim,
) -> TractResult<Option<&'m TypedNode>> {
    rule_if!(first.inputs[..] == [outlet(diff)]);
    if let Some(reduce) = first.op_as::<Reduce>() {
        rule_if!(reduce.reducer == Reducer::MeanOfSquares && reduce.axes == op.axes);
        return Ok(Some(first));
    }
    rule_if!(is_ew::<Square>(first));
    rule_if_some!(sum = sole_consumer(model, first));
    rule_if_some!(reduce = sum.op_as::<Reduce>());
    rule_if!(reduce.reducer == Reducer::Sum && reduce.axes == op.axes);
    mean_of(model, sum, count)
}
