//! The fused ELU patched into tract-core (`FusedElu`, vendor/tract-core/PATCHES.md): the op
//! against the formula in f64, ONNX `Elu` graphs through tract-onnx with and without the rewrite
//! (bit-identical, since the fused op runs the chain's own arithmetic), and brainchop's
//! model20chan3cls, whose nine activations are ELUs.

mod common;

use tract_core::internal::*;
use tract_core::ops::nn::FusedElu;
use tract_linalg::multithread::{multithread_tract_scope, Executor};

#[path = "support/xorshift.rs"]
mod xorshift;
use xorshift::Random;
#[path = "support/tract_values.rs"]
mod tract_values;
use tract_values::{tensor, values, with_switches_off};
#[path = "support/onnx_proto.rs"]
mod onnx_proto;
use onnx_proto::{constant, node, value_info, Dim};

const SWITCH: &str = "TRACT_DISABLE_FUSED_ELU";

fn run_op(op: FusedElu, input: &Tensor) -> Tensor {
    let mut model = TypedModel::default();
    let x = model
        .add_source("x", f32::fact(input.shape()))
        .expect("source");
    let y = model.wire_node("elu", op, &[x]).expect("wire");
    model.select_output_outlets(&y).expect("outputs");
    let plan = model.into_runnable().expect("plan");
    // Two threads, as the app gives tract.
    multithread_tract_scope(Executor::multithread(2), || {
        plan.run(tvec!(input.clone().into_tvalue()))
    })
    .expect("runs")
    .remove(0)
    .into_tensor()
}

#[test]
fn fused_elu_matches_the_formula() {
    let mut random = Random(7);
    // Several parallel pieces and a ragged tail; special values first.
    let mut xs = vec![0.0, -0.0, 1e-30, -1e-30, -100.0, 80.0, -1e-3, 3.0];
    xs.extend(random.values(100_003, 0.0, 6.0));
    for alpha in [1.0f32, 0.3] {
        let got = values(&run_op(
            FusedElu { alpha },
            &tensor(&[xs.len()], xs.clone()),
        ));
        for (x, y) in xs.iter().zip(&got) {
            let x64 = *x as f64;
            let want = if x64 > 0.0 {
                x64
            } else {
                alpha as f64 * x64.exp_m1()
            };
            let tolerance = 2e-7 * want.abs().max(1.0);
            assert!(
                (*y as f64 - want).abs() <= tolerance,
                "alpha {alpha}: elu({x}) = {y}, expected {want}"
            );
        }
    }
}

/// `y = Elu(a)` with `a = x · 2`, optionally with `a` a graph output too (so the fused op must
/// not overwrite a value someone else reads).
fn elu_graph(dims: &[Dim], alpha: f32, expose_input: bool) -> tract_onnx::pb::ModelProto {
    use tract_onnx::pb;
    let mut alpha_attr = pb::AttributeProto {
        name: "alpha".into(),
        f: alpha,
        ..Default::default()
    };
    alpha_attr.set_type(pb::attribute_proto::AttributeType::Float);
    let mut elu = node("Elu", &["a"], "y");
    elu.attribute.push(alpha_attr);
    let mut output = vec![value_info("y", dims)];
    if expose_input {
        output.push(value_info("a", dims));
    }
    onnx_proto::model(pb::GraphProto {
        name: "elu".into(),
        node: vec![node("Mul", &["x", "two"], "a"), elu],
        initializer: vec![constant("two", &[], &[2.0])],
        input: vec![value_info("x", dims)],
        output,
        ..Default::default()
    })
}

/// Optimises a model as ort-tract does (`plan` loads and optimises it), with the rewrite on or
/// off, and runs it on two threads: the outputs and the number of FusedElu nodes in the plan.
fn run_planned(
    plan: impl FnOnce() -> TractResult<TypedModel>,
    fused: bool,
    input: &Tensor,
) -> (Vec<Tensor>, usize) {
    let model = with_switches_off(&[SWITCH], !fused, plan).expect("the model plans on tract");
    let elus = model
        .nodes()
        .iter()
        .filter(|n| n.op_is::<FusedElu>())
        .count();
    let plan = model.into_runnable().expect("plan");
    let outputs = multithread_tract_scope(Executor::multithread(2), || {
        plan.run(tvec!(input.clone().into_tvalue()))
    })
    .expect("runs")
    .into_iter()
    .map(|v| v.into_tensor())
    .collect();
    (outputs, elus)
}

fn run_graph(
    proto: &tract_onnx::pb::ModelProto,
    fused: bool,
    input: &Tensor,
) -> (Vec<Tensor>, usize) {
    use tract_onnx::prelude::*;
    let plan = || {
        tract_onnx::onnx()
            .model_for_proto_model(proto)
            .and_then(|m| m.into_optimized())
    };
    run_planned(plan, fused, input)
}

fn onnx_case(dims: &[Dim], shape: &[usize], alpha: f32, expose_input: bool, seed: u64) {
    let proto = elu_graph(dims, alpha, expose_input);
    let mut random = Random(seed);
    let x = random.values(shape.iter().product(), -0.5, 3.0);
    let input = tensor(shape, x.clone());
    let (fused, elus) = run_graph(&proto, true, &input);
    let (chain, none) = run_graph(&proto, false, &input);
    assert_eq!(elus, 1, "the Elu did not become one FusedElu");
    assert_eq!(none, 0, "{SWITCH} did not keep tract's chain");
    assert_eq!(fused.len(), chain.len());
    for (f, c) in fused.iter().zip(&chain) {
        assert_eq!(f.shape(), shape);
        // Same exp kernel, same f32 steps: bit for bit.
        let (f, c) = (values(f), values(c));
        assert!(
            f.iter().zip(&c).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{shape:?}, alpha {alpha}: fused and tract's chain differ"
        );
    }
    if expose_input {
        let a: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
        assert_eq!(values(&fused[1]), a, "the ELU's input was overwritten");
    }
}

#[test]
fn onnx_elu_symbolic_dims_like_meshnet() {
    let dims = [
        Dim::Fixed(1),
        Dim::Fixed(3),
        Dim::Named("d"),
        Dim::Named("h"),
        Dim::Named("w"),
    ];
    onnx_case(&dims, &[1, 3, 40, 41, 42], 1.0, false, 11);
    onnx_case(&dims, &[1, 3, 5, 6, 7], 0.25, false, 12);
}

#[test]
fn onnx_elu_concrete_dims_and_an_input_that_is_also_an_output() {
    let shape = [2, 4, 9, 10, 11];
    let dims: Vec<Dim> = shape.iter().map(|d| Dim::Fixed(*d)).collect();
    onnx_case(&dims, &shape, 1.0, true, 21);
    onnx_case(&dims, &shape, 1.7, true, 22);
}

/// model20chan3cls on a random 24³ input: its nine ELUs all fuse, and the logits are the same
/// bits as with tract's chain.
#[test]
fn model20chan3cls_elus_fuse_without_changing_the_logits() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let path = data.join("models/onnx_from_brainchop/model20chan3cls.onnx");
    let mut random = Random(3);
    let input = tensor(&[1, 1, 24, 24, 24], random.values(24 * 24 * 24, 0.5, 0.5));
    let run = |fused: bool| -> (Tensor, usize) {
        use tract_onnx::prelude::*;
        let plan = || {
            tract_onnx::onnx()
                .model_for_path(&path)
                .and_then(|m| m.into_optimized())
        };
        let (mut outputs, elus) = run_planned(plan, fused, &input);
        (outputs.remove(0), elus)
    };
    let (fused, elus) = run(true);
    let (chain, none) = run(false);
    assert_eq!(
        (elus, none),
        (9, 0),
        "FusedElu nodes with and without the rewrite"
    );
    assert_eq!(fused.shape(), chain.shape());
    let (f, c) = (values(&fused), values(&chain));
    assert!(f.iter().zip(&c).all(|(a, b)| a.to_bits() == b.to_bits()));
}
