//! The row-wise constant padding and the parallel byte-copy slicing patched into tract-core
//! (vendor/tract-core/PATCHES.md) against tract's generic paths and naive loops: ranks 1 to 5,
//! every axis, padding on inner and outer axes or on none, a non-zero constant, empty inputs and
//! ranges, integer and boolean tensors, one thread and two.

use tract_core::internal::*;
use tract_core::ops::array::{Pad, PadMode, Slice};
use tract_linalg::multithread::{multithread_tract_scope, Executor};

#[path = "support/xorshift.rs"]
mod xorshift;
use xorshift::Random;
#[path = "support/tract_values.rs"]
mod tract_values;
use tract_values::{tensor, values, with_switches_off};

/// Keeps constant padding on tract's generic path (read when the op evaluates).
const GENERIC_SWITCH: &str = "TRACT_DISABLE_FAST_PAD";
/// Keeps slicing on tract's own copy (read when the op evaluates).
const GENERIC_SLICE_SWITCH: &str = "TRACT_DISABLE_FAST_SLICE";

/// Runs `Pad { pads, Constant(value) }` on `input` in a plain (unoptimised) plan, on `threads`.
fn run(input: &Tensor, pads: &[(usize, usize)], value: Tensor, threads: usize) -> Tensor {
    let pad = Pad::new(pads.to_vec(), PadMode::Constant(Arc::new(value)));
    run_op(input, pad, threads)
}

/// Runs `op` on `input` in a plain (unoptimised) plan, on `threads`.
fn run_op(input: &Tensor, op: impl Into<Box<dyn TypedOp>>, threads: usize) -> Tensor {
    let mut model = TypedModel::default();
    let x = model
        .add_source("x", TypedFact::shape_and_dt_of(input))
        .expect("source");
    let y = model.wire_node("op", op.into(), &[x]).expect("op wires");
    model.select_output_outlets(&y).expect("output");
    let plan = model.into_runnable().expect("plan");
    let mut out = multithread_tract_scope(Executor::multithread(threads), || {
        plan.run(tvec!(input.clone().into_tvalue()))
    })
    .expect("pad runs");
    out.remove(0).into_tensor()
}

/// out[i] = input[i - before] inside, `value` outside, over every axis.
fn naive(input: &[f32], shape: &[usize], pads: &[(usize, usize)], value: f32) -> Vec<f32> {
    let out_shape: Vec<usize> = shape
        .iter()
        .zip(pads)
        .map(|(d, (b, a))| d + b + a)
        .collect();
    let len: usize = out_shape.iter().product();
    (0..len)
        .map(|flat| {
            let mut rest = flat;
            let mut index = 0;
            let mut stride = 1;
            for axis in (0..shape.len()).rev() {
                let at = rest % out_shape[axis];
                rest /= out_shape[axis];
                let Some(i) = at.checked_sub(pads[axis].0).filter(|i| *i < shape[axis]) else {
                    return value;
                };
                index += i * stride;
                stride *= shape[axis];
            }
            input[index]
        })
        .collect()
}

#[test]
fn constant_padding_matches_the_generic_path_and_a_naive_loop() {
    let cases: &[(&[usize], &[(usize, usize)])] = &[
        (&[7], &[(2, 3)]),
        (&[3, 5], &[(0, 0), (1, 1)]),
        (&[3, 5], &[(2, 1), (0, 0)]),
        (&[2, 3, 4], &[(0, 0), (0, 0), (0, 0)]),
        (
            &[1, 2, 30, 40, 50],
            &[(0, 0), (0, 0), (1, 1), (0, 0), (0, 0)],
        ),
        (
            &[1, 2, 30, 40, 50],
            &[(0, 0), (0, 0), (0, 0), (3, 2), (0, 0)],
        ),
        (
            &[1, 2, 30, 40, 50],
            &[(0, 0), (0, 0), (0, 0), (0, 0), (4, 4)],
        ),
        (&[1, 1, 9, 8, 7], &[(1, 0), (0, 2), (3, 1), (2, 2), (1, 3)]),
        (&[2, 0, 3], &[(1, 1), (2, 0), (0, 1)]),
    ];
    let mut random = Random(7);
    for (i, &(shape, pads)) in cases.iter().enumerate() {
        let data = random.values(shape.iter().product(), 0.0, 1.0);
        let input = tensor(shape, data.clone());
        let value = if i % 2 == 0 { 0.0 } else { -1e9 };
        let expected = naive(&data, shape, pads, value);
        for threads in [1, 2] {
            let run_with_generic = |generic: bool| {
                with_switches_off(&[GENERIC_SWITCH], generic, || {
                    run(&input, pads, tensor(&[], vec![value]), threads)
                })
            };
            let (generic, fast) = (run_with_generic(true), run_with_generic(false));
            assert_eq!(fast.shape(), generic.shape(), "case {i}, {threads} threads");
            assert_eq!(values(&generic), expected, "generic, case {i}");
            assert_eq!(
                values(&fast),
                expected,
                "row-wise, case {i}, {threads} threads"
            );
        }
    }
    // An integer tensor padded with a float constant (cast to the tensor's type, as the
    // generic path does).
    let input: Tensor = tract_ndarray::arr2(&[[1i32, 2, 3], [4, 5, 6]]).into();
    let fast = run(&input, &[(1, 0), (0, 2)], tensor(&[], vec![7.0]), 1);
    let expected: Tensor =
        tract_ndarray::arr2(&[[7i32, 7, 7, 7, 7], [1, 2, 3, 7, 7], [4, 5, 6, 7, 7]]).into();
    assert_eq!(fast, expected);
}

#[test]
fn slicing_matches_tract_own_copy_and_ndarray() {
    let shapes: &[&[usize]] = &[
        &[11],
        &[3, 5],
        &[2, 3, 4],
        &[1, 2, 30, 40, 50],
        &[4, 1, 7, 9, 5],
    ];
    let mut random = Random(11);
    for (i, &shape) in shapes.iter().enumerate() {
        let data = random.values(shape.iter().product(), 0.0, 1.0);
        let input = tensor(shape, data);
        for axis in 0..shape.len() {
            let len = shape[axis];
            let ranges = [
                (0, len),
                (len / 3, len - len / 4),
                (len - 1, len),
                (len / 2, len / 2),
            ];
            for (start, end) in ranges {
                let view = input.to_plain_array_view::<f32>().expect("f32");
                let expected: Tensor = view
                    .slice_axis(tract_ndarray::Axis(axis), (start..end).into())
                    .to_owned()
                    .into();
                for threads in [1, 2] {
                    let op = || Slice::new(axis, start, end);
                    let run_with_generic = |generic: bool| {
                        with_switches_off(&[GENERIC_SLICE_SWITCH], generic, || {
                            run_op(&input, op(), threads)
                        })
                    };
                    let (generic, fast) = (run_with_generic(true), run_with_generic(false));
                    let what = format!("shape {i}, axis {axis}, {start}..{end}, {threads} threads");
                    assert_eq!(generic, expected, "generic, {what}");
                    assert_eq!(fast, expected, "byte copy, {what}");
                }
            }
        }
    }
    // Eight-byte integers and booleans: copied as bytes of their own size.
    let ints: Tensor = tract_ndarray::Array3::from_shape_fn((3, 4, 5), |(a, b, c)| {
        (a * 100 + b * 10 + c) as i64 - 250
    })
    .into();
    let fast = run_op(&ints, Slice::new(1, 1, 3), 2);
    let expected: Tensor = tract_ndarray::Array3::from_shape_fn((3, 2, 5), |(a, b, c)| {
        (a * 100 + (b + 1) * 10 + c) as i64 - 250
    })
    .into();
    assert_eq!(fast, expected);
    let flags: Tensor = tract_ndarray::arr2(&[[true, false, true], [false, false, true]]).into();
    let fast = run_op(&flags, Slice::new(1, 1, 3), 1);
    let expected: Tensor = tract_ndarray::arr2(&[[false, true], [false, true]]).into();
    assert_eq!(fast, expected);
}
