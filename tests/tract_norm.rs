//! The fused instance normalisation patched into tract-core (`PlaneNorm`,
//! vendor/tract-core/PATCHES.md): the op against a naive f64 reference (odd, tiny and large
//! planes, several channels, thread counts), and ONNX `InstanceNormalization` graphs through
//! tract-onnx with and without the rewrite.

use tract_core::internal::*;
use tract_core::ops::nn::{PlaneNorm, PlaneNormActivation};
use tract_linalg::multithread::{multithread_tract_scope, Executor};

#[path = "support/xorshift.rs"]
mod xorshift;
use xorshift::Random;
#[path = "support/tract_values.rs"]
mod tract_values;
use tract_values::{tensor, values, with_switches_off};
#[path = "support/onnx_proto.rs"]
mod onnx_proto;

/// `(x − mean) / sqrt(var + eps) · scale[c] + bias[c]` per (n, c) plane, all in f64.
fn reference(shape: &[usize], x: &[f32], eps: f32, scale: &[f32], bias: &[f32]) -> Vec<f32> {
    let channels = shape[1];
    let plane: usize = shape[2..].iter().product();
    let mut out = vec![0f32; x.len()];
    for (p, (src, dst)) in x.chunks(plane).zip(out.chunks_mut(plane)).enumerate() {
        let c = p % channels;
        let n = plane as f64;
        let mean = src.iter().map(|v| *v as f64).sum::<f64>() / n;
        let var = src.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for (d, v) in dst.iter_mut().zip(src) {
            *d = ((*v as f64 - mean) * inv * scale[c] as f64 + bias[c] as f64) as f32;
        }
    }
    out
}

/// The worst |got − expected| over max(1, |expected|).
fn worst_relative(got: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(got.len(), expected.len());
    got.iter()
        .zip(expected)
        .map(|(g, e)| (g - e).abs() / e.abs().max(1.0))
        .fold(0f32, f32::max)
}

/// Runs one op on one input through a plan (no optimisation).
fn try_run_op(op: impl TypedOp, input: &Tensor) -> TractResult<Tensor> {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(input.shape()))?;
    let y = model.wire_node("op", op, &[x])?;
    model.select_output_outlets(&y)?;
    let plan = model.into_runnable()?;
    let mut out = plan.run(tvec!(input.clone().into_tvalue()))?;
    Ok(out.remove(0).into_tensor())
}

fn run_op(op: impl TypedOp, input: &Tensor) -> Tensor {
    try_run_op(op, input).expect("the op runs")
}

struct Case {
    shape: Vec<usize>,
    offset: f32,
    spread: f32,
    eps: f32,
}

fn check_against_reference(case: &Case, seed: u64) {
    let mut random = Random(seed);
    let channels = case.shape[1];
    let x = random.values(case.shape.iter().product(), case.offset, case.spread);
    let scale = random.values(channels, 0.0, 2.0);
    let bias = random.values(channels, 0.0, 1.0);
    let expected = reference(&case.shape, &x, case.eps, &scale, &bias);
    let input = tensor(&case.shape, x);
    let op = PlaneNorm::new(case.eps, scale, bias, None).expect("op");

    // One thread, and three (more pieces than planes or the other way round, unevenly split):
    // the planes' statistics are combined in a fixed order, so the results are identical.
    let single = run_op(op.clone(), &input);
    let threaded = multithread_tract_scope(Executor::multithread(3), || run_op(op.clone(), &input));
    assert_eq!(single.shape(), &case.shape[..]);
    let (single, threaded) = (values(&single), values(&threaded));
    assert_eq!(
        single, threaded,
        "thread count changed the result for {:?}",
        case.shape
    );
    let worst = worst_relative(&single, &expected);
    assert!(
        worst < 1e-4,
        "{:?} (offset {}, spread {}): max relative error {worst}",
        case.shape,
        case.offset,
        case.spread
    );
}

#[test]
fn plane_norm_matches_an_f64_reference() {
    let cases = [
        // One value per plane: zero variance, the output is the bias.
        Case {
            shape: vec![1, 3, 1, 1, 1],
            offset: 0.0,
            spread: 1.0,
            eps: 1e-5,
        },
        // Tiny odd planes, two batches, rank 3 and rank 5.
        Case {
            shape: vec![2, 5, 7],
            offset: 0.5,
            spread: 1.0,
            eps: 1e-5,
        },
        Case {
            shape: vec![2, 5, 3, 7, 11],
            offset: -2.0,
            spread: 3.0,
            eps: 1e-3,
        },
        // Planes of several chunks (32 Ki values each) with a remainder, MeshNet's 15 channels.
        Case {
            shape: vec![1, 15, 33, 37, 41],
            offset: 0.1,
            spread: 1.0,
            eps: 1e-5,
        },
        // A mean a thousand times the spread: the variance must not cancel.
        Case {
            shape: vec![1, 2, 41, 43, 47],
            offset: 1000.0,
            spread: 1.0,
            eps: 1e-5,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        check_against_reference(case, 100 + i as u64);
    }
}

#[test]
fn fused_gelu_equals_tracts_gelu_op() {
    let mut random = Random(7);
    let shape = [1, 4, 19, 23, 29];
    let x = random.values(shape.iter().product(), 0.3, 2.0);
    let scale = random.values(4, 0.0, 2.0);
    let bias = random.values(4, 0.0, 1.0);
    let input = tensor(&shape, x);
    let plain = PlaneNorm::new(1e-5, scale.clone(), bias.clone(), None).expect("op");
    let fused =
        PlaneNorm::new(1e-5, scale, bias, Some(PlaneNormActivation::GeluExact)).expect("op");
    let normalised = run_op(plain, &input);
    let then_gelu = run_op(tract_core::ops::nn::gelu_exact::gelu_exact(), &normalised);
    let fused = run_op(fused, &input);
    // The fused activation is the same arithmetic as GeluExact: bit for bit.
    assert_eq!(values(&fused), values(&then_gelu));
    // And it did something: GELU maps negative values towards zero.
    assert!(values(&normalised).iter().any(|v| *v < -0.5));
    assert!(values(&fused).iter().all(|v| *v > -0.2));
}

#[test]
fn plane_norm_rejects_a_channel_mismatch() {
    let op = PlaneNorm::new(1e-5, vec![1.0; 3], vec![0.0; 3], None).expect("op");
    let input = tensor(&[1, 4, 2, 2, 2], vec![0.0; 32]);
    assert!(try_run_op(op, &input).is_err());
}

/// ONNX graphs built in memory: `InstanceNormalization`, optionally followed by MeshNet's GELU
/// (`x · (1 + erf(x / √2)) · 0.5`).
mod onnx {
    use super::*;
    pub use crate::onnx_proto::Dim;
    use crate::onnx_proto::{constant, node, value_info};
    use tract_onnx::pb;

    pub struct Graph {
        pub dims: Vec<Dim>,
        pub gelu: bool,
        /// The normalisation's output is a graph output too (so the activation must not be
        /// fused into it).
        pub expose_norm: bool,
        pub eps: f32,
        pub scale: Vec<f32>,
        pub bias: Vec<f32>,
    }

    impl Graph {
        fn proto(&self) -> pb::ModelProto {
            let c = self.scale.len() as i64;
            let mut eps = pb::AttributeProto {
                name: "epsilon".into(),
                f: self.eps,
                ..Default::default()
            };
            eps.set_type(pb::attribute_proto::AttributeType::Float);
            let mut norm = node("InstanceNormalization", &["x", "scale", "bias"], "norm");
            norm.attribute.push(eps);
            let mut nodes = vec![norm];
            let mut initializer = vec![
                constant("scale", &[c], &self.scale),
                constant("bias", &[c], &self.bias),
            ];
            let mut outputs = vec![];
            if self.gelu {
                initializer.push(constant(
                    "inv_sqrt2",
                    &[],
                    &[std::f32::consts::FRAC_1_SQRT_2],
                ));
                initializer.push(constant("one", &[], &[1.0]));
                initializer.push(constant("half", &[], &[0.5]));
                nodes.push(node("Mul", &["norm", "inv_sqrt2"], "scaled"));
                nodes.push(node("Erf", &["scaled"], "erf"));
                nodes.push(node("Add", &["erf", "one"], "one_plus_erf"));
                nodes.push(node("Mul", &["norm", "one_plus_erf"], "x_ope"));
                nodes.push(node("Mul", &["x_ope", "half"], "y"));
                outputs.push(value_info("y", &self.dims));
            }
            if self.expose_norm || !self.gelu {
                outputs.push(value_info("norm", &self.dims));
            }
            crate::onnx_proto::model(pb::GraphProto {
                name: "instance_norm".into(),
                node: nodes,
                initializer,
                input: vec![value_info("x", &self.dims)],
                output: outputs,
                ..Default::default()
            })
        }

        /// Optimises the graph as ort-tract does, with the rewrite on or off, and runs it: the
        /// outputs, and whether the plan has a PlaneNorm (and with which activation).
        pub fn run(
            &self,
            fused: bool,
            input: &Tensor,
        ) -> (Vec<Tensor>, Vec<Option<PlaneNormActivation>>) {
            use tract_onnx::prelude::*;
            let model = with_switches_off(&["TRACT_DISABLE_FUSED_INSTANCE_NORM"], !fused, || {
                tract_onnx::onnx()
                    .model_for_proto_model(&self.proto())
                    .and_then(|m| m.into_optimized())
            });
            let model = model.expect("the graph plans on tract");
            let norms = model
                .nodes()
                .iter()
                .filter_map(|n| n.op_as::<PlaneNorm>())
                .map(|op| op.activation)
                .collect();
            let plan = model.into_runnable().expect("plan");
            let outputs = plan
                .run(tvec!(input.clone().into_tvalue()))
                .expect("runs")
                .into_iter()
                .map(|v| v.into_tensor())
                .collect();
            (outputs, norms)
        }
    }
}

use onnx::{Dim, Graph};

/// `[1, channels, d, h, w]` with symbolic spatial dims, as MeshNets are exported.
fn symbolic_dims(channels: usize) -> Vec<Dim> {
    vec![
        Dim::Fixed(1),
        Dim::Fixed(channels),
        Dim::Named("d"),
        Dim::Named("h"),
        Dim::Named("w"),
    ]
}

fn onnx_case(graph: &Graph, shape: &[usize], seed: u64) {
    let mut random = Random(seed);
    let input = tensor(shape, random.values(shape.iter().product(), 0.2, 1.5));
    let (fused, norms) = graph.run(true, &input);
    let (chain, none) = graph.run(false, &input);
    assert!(
        none.is_empty(),
        "TRACT_DISABLE_FUSED_INSTANCE_NORM did not keep tract's chain"
    );
    let expected_activation =
        (graph.gelu && !graph.expose_norm).then_some(PlaneNormActivation::GeluExact);
    assert_eq!(
        norms,
        vec![expected_activation],
        "the rewrite did not produce one PlaneNorm with the expected activation"
    );
    assert_eq!(fused.len(), chain.len());
    for (f, c) in fused.iter().zip(&chain) {
        assert_eq!(f.shape(), shape);
        assert_eq!(f.shape(), c.shape());
        let worst = worst_relative(&values(f), &values(c));
        assert!(
            worst < 1e-4,
            "{shape:?}: fused vs tract's chain differ by {worst}"
        );
    }
    // The normalisation itself against the f64 reference.
    let norm_output = if graph.gelu {
        fused.last()
    } else {
        fused.first()
    };
    if !graph.gelu || graph.expose_norm {
        let expected = reference(shape, &values(&input), graph.eps, &graph.scale, &graph.bias);
        let worst = worst_relative(&values(norm_output.expect("an output")), &expected);
        assert!(
            worst < 1e-4,
            "{shape:?}: fused vs f64 reference differ by {worst}"
        );
    }
}

#[test]
fn onnx_instance_normalization_symbolic_spatial_dims() {
    let graph = Graph {
        dims: symbolic_dims(3),
        gelu: false,
        expose_norm: false,
        eps: 1e-5,
        scale: vec![0.5, -1.5, 2.0],
        bias: vec![0.1, 0.0, -0.7],
    };
    onnx_case(&graph, &[1, 3, 5, 6, 7], 31);
    // Planes of several chunks.
    onnx_case(&graph, &[1, 3, 40, 41, 42], 32);
}

#[test]
fn onnx_instance_normalization_concrete_dims_with_gelu() {
    // Known dims let tract's declutter fold the counts into constants (and the variance into a
    // MeanOfSquares): the other form of the chain.
    let dims = [2, 4, 9, 10, 11];
    let graph = Graph {
        dims: dims.iter().map(|d| Dim::Fixed(*d)).collect(),
        gelu: true,
        expose_norm: false,
        eps: 1e-3,
        scale: vec![1.0, 0.25, -0.5, 3.0],
        bias: vec![0.0, 1.0, -1.0, 0.5],
    };
    onnx_case(&graph, &dims, 41);
}

#[test]
fn onnx_instance_normalization_symbolic_with_gelu_like_meshnet() {
    let graph = Graph {
        dims: symbolic_dims(5),
        gelu: true,
        expose_norm: false,
        eps: 1e-5,
        scale: vec![1.2, 0.8, -0.3, 0.0, 2.5],
        bias: vec![-0.2, 0.4, 0.0, 0.3, -1.0],
    };
    onnx_case(&graph, &[1, 5, 23, 29, 31], 51);
}

#[test]
fn onnx_gelu_stays_separate_when_the_normalisation_is_an_output() {
    let graph = Graph {
        dims: symbolic_dims(2),
        gelu: true,
        expose_norm: true,
        eps: 1e-5,
        scale: vec![1.0, 2.0],
        bias: vec![0.5, -0.5],
    };
    onnx_case(&graph, &[1, 2, 8, 9, 10], 61);
}
