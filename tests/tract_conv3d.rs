//! The direct 3D convolution patched into tract-core (vendor/tract-core/PATCHES.md) against a naive
//! loop: random tensors, several dilations, paddings and channel counts, sizes that are not
//! multiples of the vector width, concrete and symbolic spatial shapes; and mindgrab end to end
//! with both tract-core patches (this one and the fused instance normalisation) and with neither.

mod common;

use tract_core::internal::*;
use tract_core::ops::cnn::conv::{Conv, DirectConv3d, KernelFormat};
use tract_core::ops::cnn::{PaddingSpec, PoolSpec};
use tract_core::ops::nn::{DataFormat, PlaneNorm};
use tract_linalg::multithread::{multithread_tract_scope, Executor};

#[path = "support/xorshift.rs"]
mod xorshift;
use xorshift::Random;
#[path = "support/tract_values.rs"]
mod tract_values;
use tract_values::{tensor, values, with_switches_off};

/// A tensor of `shape` filled from `random` (values in -1..1).
fn random_tensor(random: &mut Random, shape: &[usize]) -> Tensor {
    tensor(shape, random.values(shape.iter().product(), 0.0, 1.0))
}

/// The env switches that turn off the tract-core patches mindgrab goes through (for A/B
/// comparisons; it has no ELU, so `TRACT_DISABLE_FUSED_ELU` would change nothing).
const PATCH_SWITCHES: [&str; 2] = [
    "TRACT_DISABLE_DIRECT_CONV3D",
    "TRACT_DISABLE_FUSED_INSTANCE_NORM",
];

/// Caps the direct convolution's kernel (vendor/tract-core/src/ops/cnn/conv/direct3d.rs): `portable`
/// or `avx2`; unset, the best the CPU has.
const ISA_SWITCH: &str = "TRACT_DIRECT_CONV3D_ISA";
/// The kernels every check runs (on a CPU without AVX2 all three are the portable loop).
const KERNELS: [Option<&str>; 3] = [Some("portable"), Some("avx2"), None];
/// Serialises the checks that flip [`ISA_SWITCH`]. Its own lock, not `with_switches_off`'s: that
/// one only sets switches to 1, and `run_tract` takes it inside, for the planning switches.
static KERNEL_SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Case {
    cin: usize,
    cout: usize,
    size: [usize; 3],
    kernel: [usize; 3],
    dilation: [usize; 3],
    pad_before: [usize; 3],
    pad_after: [usize; 3],
}

impl Case {
    /// A cubic `k³` kernel with the same dilation on every axis and "same" zero padding
    /// (`dilation · (k − 1) / 2` on each side), as MeshNet's layers have.
    fn same(cin: usize, cout: usize, size: [usize; 3], k: usize, dilation: usize) -> Self {
        let pad = dilation * (k - 1) / 2;
        Case {
            cin,
            cout,
            size,
            kernel: [k; 3],
            dilation: [dilation; 3],
            pad_before: [pad; 3],
            pad_after: [pad; 3],
        }
    }
}

/// out[co][z][y][x] = bias[co] + Σ kernel[co][ci][a][b][c] · in[ci][z + a·dz − pz][…][…], zero outside.
fn reference(case: &Case, input: &[f32], kernel: &[f32], bias: &[f32]) -> (Vec<f32>, [usize; 3]) {
    let mut out_size = [0; 3];
    for axis in 0..3 {
        out_size[axis] = case.size[axis] + case.pad_before[axis] + case.pad_after[axis]
            - (case.kernel[axis] - 1) * case.dilation[axis];
    }
    let [d, h, w] = case.size;
    let [od, oh, ow] = out_size;
    let [kd, kh, kw] = case.kernel;
    let mut out = vec![0f32; case.cout * od * oh * ow];
    for co in 0..case.cout {
        for z in 0..od {
            for y in 0..oh {
                for x in 0..ow {
                    let mut sum = bias[co] as f64;
                    for ci in 0..case.cin {
                        for a in 0..kd {
                            for b in 0..kh {
                                for c in 0..kw {
                                    let zi = (z + a * case.dilation[0]) as isize
                                        - case.pad_before[0] as isize;
                                    let yi = (y + b * case.dilation[1]) as isize
                                        - case.pad_before[1] as isize;
                                    let xi = (x + c * case.dilation[2]) as isize
                                        - case.pad_before[2] as isize;
                                    if zi < 0
                                        || yi < 0
                                        || xi < 0
                                        || zi >= d as isize
                                        || yi >= h as isize
                                        || xi >= w as isize
                                    {
                                        continue;
                                    }
                                    let v = input[((ci * d + zi as usize) * h + yi as usize) * w
                                        + xi as usize];
                                    let k =
                                        kernel[(((co * case.cin + ci) * kd + a) * kh + b) * kw + c];
                                    sum += (v * k) as f64;
                                }
                            }
                        }
                    }
                    out[((co * od + z) * oh + y) * ow + x] = sum as f32;
                }
            }
        }
    }
    (out, out_size)
}

/// Runs `case` through tract's optimiser and plan (as ort-tract does), checks that the direct op
/// was chosen, and returns the output.
fn run_tract(
    case: &Case,
    symbolic: bool,
    input: &Tensor,
    kernel: &Tensor,
    bias: &Tensor,
) -> TractResult<Tensor> {
    let mut model = TypedModel::default();
    let spatial: TVec<TDim> = if symbolic {
        ["d", "h", "w"]
            .iter()
            .map(|s| model.sym(s).into())
            .collect()
    } else {
        case.size.iter().map(|s| s.to_dim()).collect()
    };
    let mut shape: TVec<TDim> = tvec![1.to_dim(), case.cin.to_dim()];
    shape.extend(spatial);
    let x = model.add_source("x", f32::fact(&shape))?;
    let k = model.add_const("kernel", kernel.clone())?;
    let b = model.add_const("bias", bias.clone())?;
    let pool_spec = PoolSpec::new(
        DataFormat::NCHW,
        case.kernel.iter().copied().collect(),
        PaddingSpec::Explicit(
            case.pad_before.iter().copied().collect(),
            case.pad_after.iter().copied().collect(),
        ),
        Some(case.dilation.iter().copied().collect()),
        None,
        case.cin,
        case.cout,
    );
    let conv = Conv::new(pool_spec, KernelFormat::OIHW, 1, None);
    let y = model.wire_node("conv", conv, &[x, k, b])?;
    model.select_output_outlets(&y)?;
    let model = with_switches_off(&PATCH_SWITCHES, false, || model.into_optimized())?;
    // A 1×1×1 kernel is a matrix product, which tract's declutter turns into an EinSum first.
    let pointwise = case.kernel.iter().all(|k| *k == 1);
    ensure!(
        pointwise || model.nodes().iter().any(|n| n.op_is::<DirectConv3d>()),
        "the optimised model does not use DirectConv3d:\n{model}"
    );
    let plan = model.into_runnable()?;
    let mut outputs = plan.run(tvec!(input.clone().into_tvalue()))?;
    Ok(outputs.remove(0).into_tensor())
}

fn check(case: Case, seed: u64) {
    let mut random = Random(seed);
    let mut input_shape = vec![1, case.cin];
    input_shape.extend(case.size);
    let input = random_tensor(&mut random, &input_shape);
    let mut kernel_shape = vec![case.cout, case.cin];
    kernel_shape.extend(case.kernel);
    let kernel = random_tensor(&mut random, &kernel_shape);
    let bias = random_tensor(&mut random, &[case.cout]);
    let (expected, out_size) = reference(&case, &values(&input), &values(&kernel), &values(&bias));
    // Every kernel this CPU has: the switch is read when the op evaluates, so the checks that
    // flip it take turns.
    let _turn = KERNEL_SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let mut by_kernel: Vec<(&str, Vec<f32>)> = Vec::new();
    for kernel_switch in KERNELS {
        match kernel_switch {
            Some(isa) => std::env::set_var(ISA_SWITCH, isa),
            None => std::env::remove_var(ISA_SWITCH),
        }
        let name = kernel_switch.unwrap_or("best");
        for symbolic in [false, true] {
            let got = run_tract(&case, symbolic, &input, &kernel, &bias)
                .expect("tract runs the convolution");
            let mut expected_shape = vec![1, case.cout];
            expected_shape.extend(out_size);
            assert_eq!(got.shape(), &expected_shape[..], "symbolic: {symbolic}");
            let got = values(&got);
            let worst = got
                .iter()
                .zip(&expected)
                .map(|(g, e)| (g - e).abs())
                .fold(0f32, f32::max);
            // Sums of up to 20·27 products of values in -1..1: float rounding stays well below
            // 1e-4.
            assert!(
                worst < 1e-4,
                "max |tract - reference| = {worst} (symbolic: {symbolic}, kernel: {name})"
            );
            by_kernel.push((name, got));
        }
    }
    std::env::remove_var(ISA_SWITCH);
    // The AVX2 kernel and the best one (AVX-512VL where the CPU has it, with other register
    // blocks) do the same multiply-adds in the same order: the same bits.
    let avx2 = by_kernel.iter().filter(|(name, _)| *name == "avx2");
    let best = by_kernel.iter().filter(|(name, _)| *name == "best");
    for ((_, a), (_, b)) in avx2.zip(best) {
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "the AVX2 kernel and the best kernel differ"
        );
    }
}

#[test]
fn meshnet_layer_15_to_15_every_dilation() {
    // MeshNet's layers: 3×3×3, pads = dilation, dilations 1…16 (16 exceeds the volume here, so
    // most taps read padding).
    for (i, dilation) in [1, 2, 4, 16].into_iter().enumerate() {
        check(Case::same(15, 15, [9, 11, 19], 3, dilation), 1 + i as u64);
    }
}

#[test]
fn first_and_last_layers_and_wide_outputs() {
    // 1 → 15 (the first layer), 15 → 3 (a 1×1×1 head), 5 → 20 (one 24-channel register block
    // with AVX-512, a 16-channel and an 8-channel block with AVX2), 3 → 40 (16 + 24 or 16 + 16 + 8).
    check(Case::same(1, 15, [7, 8, 13], 3, 1), 11);
    check(Case::same(15, 3, [5, 6, 14], 1, 1), 12);
    check(Case::same(5, 20, [6, 7, 17], 3, 2), 13);
    check(Case::same(3, 40, [4, 5, 29], 3, 1), 14);
}

#[test]
fn asymmetric_padding_anisotropic_kernel_and_dilation() {
    check(
        Case {
            cin: 4,
            cout: 9,
            size: [6, 10, 23],
            kernel: [2, 3, 5],
            dilation: [1, 3, 2],
            pad_before: [0, 2, 4],
            pad_after: [1, 3, 1],
        },
        21,
    );
    // No padding: the output shrinks.
    check(
        Case {
            cin: 3,
            cout: 8,
            size: [7, 9, 12],
            kernel: [3; 3],
            dilation: [2, 1, 1],
            pad_before: [0; 3],
            pad_after: [0; 3],
        },
        22,
    );
}

/// Brainchop's mindgrab (25 dilated 3×3×3 layers, each followed by InstanceNormalization and
/// GELU) on a 32³ crop of t1_crop, through tract-onnx as ort-tract plans it (symbolic D/H/W), with
/// both tract-core patches (the direct 3D convolution and the fused PlaneNorm) and with neither
/// (tract's im2col path and expanded normalisation chain): the brain masks agree (Dice ≥ 0.99) and
/// the logits to float rounding.
#[test]
fn mindgrab_patched_tract_matches_stock_tract() {
    let Some(data) = common::shared_data() else {
        return;
    };
    let dir = data.join("models/onnx_from_brainchop");
    let ctx = fuseprint::jobs::JobContext::detached();
    let t1 = fuseprint::io::load_image(&dir.join("t1_crop.nii.gz"), &ctx).expect("t1_crop loads");
    let volume = &t1.volume;
    let [ni, nj, nk] = volume.dims();
    let max = volume
        .data()
        .iter()
        .copied()
        .fold(f32::MIN, f32::max)
        .max(f32::MIN_POSITIVE);
    // A 32³ crop around the centre of the head: brain, its edge and some skull, min-max scaled
    // as the manifest does (the volume's minimum is 0).
    const EDGE: usize = 32;
    let start = [ni / 2 - EDGE / 2, nj / 2 - EDGE / 2, nk / 2 - EDGE / 2];
    let input: Tensor =
        tract_ndarray::Array5::from_shape_fn((1, 1, EDGE, EDGE, EDGE), |(_, _, i, j, k)| {
            let v = volume.get(
                (start[0] + i) as i64,
                (start[1] + j) as i64,
                (start[2] + k) as i64,
            );
            v.unwrap_or(0.0) / max
        })
        .into();

    // Returns the logits, the number of DirectConv3d and of PlaneNorm nodes in the plan.
    let run = |patched: bool| -> (Tensor, usize, usize) {
        use tract_onnx::prelude::*;
        let model = with_switches_off(&PATCH_SWITCHES, !patched, || {
            tract_onnx::onnx()
                .model_for_path(dir.join("mindgrab.onnx"))
                .and_then(|m| m.into_optimized())
        })
        .expect("mindgrab plans on tract");
        let count = |is: fn(&TypedNode) -> bool| model.nodes().iter().filter(|n| is(n)).count();
        let direct = count(|n| n.op_is::<DirectConv3d>());
        let norms = count(|n| n.op_is::<PlaneNorm>());
        let plan = model.into_runnable().expect("mindgrab plan");
        let started = std::time::Instant::now();
        // Two threads, as the app gives tract (both patches split their work over them).
        let mut out = multithread_tract_scope(Executor::multithread(2), || {
            plan.run(tvec!(input.clone().into_tvalue()))
        })
        .expect("mindgrab runs");
        eprintln!(
            "mindgrab {EDGE}³ on tract, patched {patched}: {:.1} s",
            started.elapsed().as_secs_f64()
        );
        (out.remove(0).into_tensor(), direct, norms)
    };
    let (patched, convs, norms) = run(true);
    assert!(
        convs > 0,
        "the direct 3D convolution was not chosen for mindgrab"
    );
    // mindgrab normalises after each of its dilated layers (all but the 1×1×1 head).
    assert!(
        norms >= 10,
        "only {norms} InstanceNormalizations became PlaneNorm"
    );
    let (stock, convs, norms) = run(false);
    assert!(
        convs == 0 && norms == 0,
        "the switches did not turn the patches off ({convs} DirectConv3d, {norms} PlaneNorm)"
    );

    assert_eq!(patched.shape(), &[1, 2, EDGE, EDGE, EDGE]);
    assert_eq!(patched.shape(), stock.shape());
    let (a, b) = (values(&patched), values(&stock));
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    eprintln!("logits up to {scale:.1}, max |patched - stock| = {worst:.2e}");
    assert!(
        worst <= 1e-4 * scale.max(1.0) * 10.0,
        "logits differ by {worst} (scale {scale})"
    );
    // Brain = logit 1 above logit 0.
    let points = EDGE * EDGE * EDGE;
    let brain = |l: &[f32]| {
        (0..points)
            .map(|p| l[points + p] > l[p])
            .collect::<Vec<bool>>()
    };
    let (ma, mb) = (brain(&a), brain(&b));
    let both = ma.iter().zip(&mb).filter(|(x, y)| **x && **y).count();
    let total = ma.iter().filter(|x| **x).count() + mb.iter().filter(|x| **x).count();
    assert!(
        total > points / 10,
        "the crop should hold brain ({total} mask voxels)"
    );
    let dice = 2.0 * both as f64 / total as f64;
    eprintln!("brain Dice patched vs stock: {dice:.5}");
    assert!(dice >= 0.99, "Dice {dice}");
}
