//! fuseprint patch: a direct 3D convolution (see PATCHES.md at the root of this crate).
//!
//! tract 0.23 has a direct convolution for two spatial axes only; 3D convolutions went through
//! im2col, whose gather and page zeroing dominate on volumes (MeshNet segmentation models: 3×3×3
//! dilated kernels on 128³ patches). This op computes f32, group-1, stride-1, channels-first 3D
//! convolutions with any kernel size, dilation and zero padding, directly:
//!
//! 1. the input is copied once into a channels-last buffer `[D][H][W + pads][Cin]` whose W axis
//!    carries the zero padding (padding along D and H is handled by skipping the taps that fall
//!    outside, which contribute zero);
//! 2. the weights are packed per tap as `[tap][Cin][Cout rounded up to 8]`;
//! 3. each output row (z, y) is computed in register blocks of 16 (or 8, or with AVX-512 24)
//!    output channels × a few voxels along W: one input value is broadcast and multiplied into
//!    the tap's weight vectors (256-bit AVX2 + FMA on x86_64 when the CPU has them, the same
//!    code compiled for AVX-512VL's 32 registers when it has those, a portable loop elsewhere);
//! 4. the block is written back channels-first.
//!
//! Output depth slices are split across tract's executor (`par_chunks_mut`). Shapes are read at
//! eval time, so symbolic D, H, W are fine.

use crate::internal::*;
use crate::ops::cnn::PoolSpec;
use crate::ops::nn::DataFormat;

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct DirectConv3d {
    pub pool_spec: PoolSpec,
}

impl DirectConv3d {
    /// Whether `DirectConv3d` computes this convolution: f32, channels-first, three spatial axes,
    /// group 1, unit strides. Everything else stays with the other codegen paths.
    pub fn handles(
        pool_spec: &PoolSpec,
        group: usize,
        input: &TypedFact,
        kernel: &TypedFact,
    ) -> bool {
        // `TRACT_DISABLE_DIRECT_CONV3D=1` keeps tract's own paths (A/B measurements).
        !crate::ops::patch_switch::is_on("TRACT_DISABLE_DIRECT_CONV3D")
            && input.datum_type == f32::datum_type()
            && kernel.datum_type == f32::datum_type()
            && !kernel.is_exotic()
            && matches!(pool_spec.data_format, DataFormat::NCHW | DataFormat::CHW)
            && group == 1
            && pool_spec.rank() == 3
            && pool_spec.strides().iter().all(|s| *s == 1)
            && pool_spec.dilations().iter().all(|d| *d >= 1)
    }
}

impl Op for DirectConv3d {
    fn name(&self) -> StaticName {
        "DirectConv3d".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(self.pool_spec.info())
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for DirectConv3d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (img, kernel, bias) = args_3!(inputs);
        let output = self.eval_f32(&img, &kernel, &bias)?;
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for DirectConv3d {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs.len() == 3,
            "DirectConv3d expects input, kernel and bias"
        );
        self.pool_spec.output_facts(&inputs[..1])
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let oshape = self.pool_spec.output_shape(&inputs[0].shape)?;
        let points: TDim = oshape.hw_dims().iter().product();
        let n = oshape.n().cloned().unwrap_or_else(|| 1.to_dim());
        let macs_per_point = self.pool_spec.input_channels
            * self.pool_spec.output_channels
            * self.pool_spec.kernel_shape.iter().product::<usize>();
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            n * points * macs_per_point
        )))
    }

    as_op!();
}

/// The geometry of one evaluation, all concrete.
struct Geometry {
    cin: usize,
    cout: usize,
    /// Output channels rounded up to the vector width (8).
    cout_padded: usize,
    input: [usize; 3],
    output: [usize; 3],
    kernel: [usize; 3],
    dilation: [usize; 3],
    pad_before: [usize; 3],
    /// Width of a channels-last row: W plus the padding before and after along W.
    padded_w: usize,
}

impl Geometry {
    fn taps(&self) -> usize {
        self.kernel.iter().product()
    }
}

const LANES: usize = 8;

impl DirectConv3d {
    fn geometry(&self, shape: &[usize]) -> TractResult<(usize, Geometry)> {
        let spec = &self.pool_spec;
        let ishape = spec.data_format.shape(shape)?;
        let n = *ishape.n().unwrap_or(&1);
        let cin = *ishape.c();
        ensure!(
            cin == spec.input_channels,
            "DirectConv3d: {cin} input channels, expected {}",
            spec.input_channels
        );
        let hw = ishape.hw_dims();
        ensure!(
            hw.len() == 3,
            "DirectConv3d needs three spatial axes, got {shape:?}"
        );
        let padding = spec.computed_padding(hw);
        let dil = spec.dilations();
        let mut geo = Geometry {
            cin,
            cout: spec.output_channels,
            cout_padded: spec.output_channels.div_ceil(LANES) * LANES,
            input: [hw[0], hw[1], hw[2]],
            output: [0; 3],
            kernel: [
                spec.kernel_shape[0],
                spec.kernel_shape[1],
                spec.kernel_shape[2],
            ],
            dilation: [dil[0], dil[1], dil[2]],
            pad_before: [0; 3],
            padded_w: hw[2] + padding[2].pad_before + padding[2].pad_after,
        };
        for axis in 0..3 {
            geo.output[axis] = padding[axis].convoluted;
            geo.pad_before[axis] = padding[axis].pad_before;
        }
        Ok((n, geo))
    }

    fn eval_f32(&self, img: &Tensor, kernel: &Tensor, bias: &Tensor) -> TractResult<Tensor> {
        ensure!(
            img.datum_type() == f32::datum_type(),
            "DirectConv3d is f32 only"
        );
        let (n, geo) = self.geometry(img.shape())?;
        let oshape = self.pool_spec.output_shape(img.shape())?;
        let out_points: usize = geo.output.iter().product();
        if out_points == 0 || geo.cout == 0 {
            return Tensor::zero::<f32>(&oshape.shape);
        }
        // Not zeroed: `compute` writes every output value (every channel of every row of every
        // depth slice), and the pages are first touched there, on all threads, instead of by a
        // single-threaded fill of the whole tensor (hundreds of MB a layer on a 256³ MeshNet).
        // SAFETY: f32 has no invalid bit patterns, and every value is written before it is read.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&oshape.shape)? };
        let taps = geo.taps();
        let kernel_view = kernel.try_as_plain_ram()?;
        let kernel = kernel_view.as_slice::<f32>()?;
        ensure!(
            kernel.len() == geo.cout * geo.cin * taps,
            "DirectConv3d: kernel has {} values, expected {}×{}×{}",
            kernel.len(),
            geo.cout,
            geo.cin,
            taps
        );
        let bias = bias.cast_to::<f32>()?;
        let bias_view = bias.try_as_plain_ram()?;
        let bias = bias_view.as_slice::<f32>()?;
        ensure!(
            bias.len() == 1 || bias.len() == geo.cout,
            "DirectConv3d: bias has {} values for {} output channels",
            bias.len(),
            geo.cout
        );
        let weights = pack_weights(&geo, kernel);
        let mut bias_padded = vec![0f32; geo.cout_padded];
        for (co, b) in bias_padded.iter_mut().take(geo.cout).enumerate() {
            *b = if bias.len() == 1 { bias[0] } else { bias[co] };
        }
        let input_view = img.try_as_plain_ram()?;
        let input = input_view.as_slice::<f32>()?;
        let in_volume = geo.cin * geo.input.iter().product::<usize>();
        let out_volume = geo.cout * out_points;
        let mut output_view = output.try_as_plain_ram_mut()?;
        let out = output_view.as_slice_mut::<f32>()?;
        let isa = Isa::detect();
        for batch in 0..n {
            let channels_last = to_channels_last(&geo, &input[batch * in_volume..][..in_volume])?;
            compute(
                &geo,
                &channels_last,
                &weights,
                &bias_padded,
                &mut out[batch * out_volume..][..out_volume],
                isa,
            )?;
        }
        Ok(output)
    }
}

/// `[tap][Cin][Cout padded]` from the `[Cout][Cin][kd][kh][kw]` kernel.
fn pack_weights(geo: &Geometry, kernel: &[f32]) -> Vec<f32> {
    let taps = geo.taps();
    let mut packed = vec![0f32; taps * geo.cin * geo.cout_padded];
    for co in 0..geo.cout {
        for ci in 0..geo.cin {
            for t in 0..taps {
                packed[(t * geo.cin + ci) * geo.cout_padded + co] =
                    kernel[(co * geo.cin + ci) * taps + t];
            }
        }
    }
    packed
}

/// The input as `[D][H][padded W][Cin]`, zero in the W padding.
fn to_channels_last(geo: &Geometry, input: &[f32]) -> TractResult<Vec<f32>> {
    let [d, h, w] = geo.input;
    let cin = geo.cin;
    let row = geo.padded_w * cin;
    let mut buffer = vec![0f32; d * h * row];
    if buffer.is_empty() {
        return Ok(buffer);
    }
    let before = geo.pad_before[2];
    tract_linalg::multithread::par_chunks_mut(
        &mut buffer,
        h * row,
        d * h * row,
        |first_z, chunk| {
            for (dz, plane) in chunk.chunks_mut(h * row).enumerate() {
                let z = first_z + dz;
                for y in 0..h {
                    let dst = &mut plane[y * row..][..row];
                    for ci in 0..cin {
                        let src = &input[((ci * d + z) * h + y) * w..][..w];
                        for (x, v) in src.iter().enumerate() {
                            dst[(before + x) * cin + ci] = *v;
                        }
                    }
                }
            }
            Ok(())
        },
    )?;
    Ok(buffer)
}

/// One input row read by one kernel tap: where it starts in the channels-last buffer (already
/// shifted by the tap's W offset) and where the tap's packed weights start.
#[derive(Clone, Copy)]
struct TapRow {
    src: usize,
    weights: usize,
}

fn compute(
    geo: &Geometry,
    channels_last: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    isa: Isa,
) -> TractResult<()> {
    let [od, oh, ow] = geo.output;
    let flops = 2 * od * oh * ow * geo.cin * geo.cout * geo.taps();
    // The z indices are what the executor splits; the output is written through a pointer, each
    // z owning the (co, z, ·, ·) planes no other z touches.
    let mut zs: Vec<usize> = (0..od).collect();
    let out_addr = out.as_mut_ptr() as usize;
    let out_len = out.len();
    tract_linalg::multithread::par_chunks_mut(&mut zs, 1, flops, |_, chunk| {
        let mut tap_rows: Vec<TapRow> = Vec::with_capacity(geo.taps());
        let mut row_buffer = vec![0f32; ow * MAX_BLOCK_LANES];
        for &z in chunk.iter() {
            for y in 0..oh {
                collect_tap_rows(geo, z, y, &mut tap_rows);
                let mut c0 = 0;
                while c0 < geo.cout {
                    let width = block_width(geo.cout_padded - c0, isa);
                    row_block(
                        geo,
                        channels_last,
                        weights,
                        bias,
                        &tap_rows,
                        c0,
                        width,
                        &mut row_buffer,
                        isa,
                    );
                    for co in c0..geo.cout.min(c0 + width) {
                        let offset = ((co * od + z) * oh + y) * ow;
                        debug_assert!(offset + ow <= out_len);
                        // SAFETY: (co, z, y) rows are disjoint between z chunks and inside the
                        // output slice (offset + ow <= out_len by construction of the geometry).
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut((out_addr as *mut f32).add(offset), ow)
                        };
                        for (x, d) in dst.iter_mut().enumerate() {
                            *d = row_buffer[x * width + co - c0];
                        }
                    }
                    c0 += width;
                }
            }
        }
        Ok(())
    })
}

/// The widest block of output channels is 3 vectors of 8.
const MAX_BLOCK_LANES: usize = 3 * LANES;

/// How many of the `remaining` (padded) output channels the next register block computes: 16,
/// else 8; with AVX-512's 32 registers, all 24 when exactly 24 remain (MeshNets with 20 or 24
/// channels: one pass instead of a 16-channel pass and an 8-channel pass that reloads every
/// input value for a third of the work). AVX2's 16 registers cannot hold a 24-channel block.
fn block_width(remaining: usize, isa: Isa) -> usize {
    match remaining {
        24 if isa == Isa::Avx512 => 3 * LANES,
        r if r >= 2 * LANES => 2 * LANES,
        _ => LANES,
    }
}

/// The taps that read inside the input for output row (z, y); the others read zero padding.
fn collect_tap_rows(geo: &Geometry, z: usize, y: usize, rows: &mut Vec<TapRow>) {
    rows.clear();
    let [d, h, _] = geo.input;
    let [kd, kh, kw] = geo.kernel;
    for a in 0..kd {
        let Some(zi) = (z + a * geo.dilation[0])
            .checked_sub(geo.pad_before[0])
            .filter(|zi| *zi < d)
        else {
            continue;
        };
        for b in 0..kh {
            let Some(yi) = (y + b * geo.dilation[1])
                .checked_sub(geo.pad_before[1])
                .filter(|yi| *yi < h)
            else {
                continue;
            };
            for c in 0..kw {
                let tap = (a * kh + b) * kw + c;
                rows.push(TapRow {
                    src: ((zi * h + yi) * geo.padded_w + c * geo.dilation[2]) * geo.cin,
                    weights: tap * geo.cin * geo.cout_padded,
                });
            }
        }
    }
}

/// Output channels `c0..c0 + width` of one output row, as `[x][width]` in `row`.
#[allow(clippy::too_many_arguments)]
fn row_block(
    geo: &Geometry,
    channels_last: &[f32],
    weights: &[f32],
    bias: &[f32],
    taps: &[TapRow],
    c0: usize,
    width: usize,
    row: &mut [f32],
    isa: Isa,
) {
    let ow = geo.output[2];
    let cin = geo.cin;
    let cp = geo.cout_padded;
    // Every read stays inside the buffers: the last x of a row reads padded column
    // ow - 1 + (kw - 1) * dilation < padded_w, and weights up to c0 + width <= cout_padded.
    debug_assert!(ow - 1 + (geo.kernel[2] - 1) * geo.dilation[2] < geo.padded_w);
    debug_assert!(c0 + width <= cp);
    debug_assert!(row.len() >= ow * width);
    let bias = &bias[c0..c0 + width];
    #[cfg(target_arch = "x86_64")]
    if isa != Isa::Portable {
        let args = x86::RowArgs {
            src: channels_last.as_ptr(),
            taps,
            cin,
            cp,
            // SAFETY: c0 < cout_padded, inside the packed weights.
            weights: unsafe { weights.as_ptr().add(c0) },
            bias: bias.as_ptr(),
            out: row.as_mut_ptr(),
            ow,
        };
        // SAFETY: the CPU has the instruction sets `isa` names (`Isa::detect`), and the reads
        // and writes are in bounds (see above).
        unsafe {
            match (isa, width) {
                (Isa::Avx512, 24) => x86::avx512::row::<3, 8>(&args),
                (Isa::Avx512, 16) => x86::avx512::row::<2, 12>(&args),
                (Isa::Avx512, _) => x86::avx512::row::<1, 24>(&args),
                (_, 16) => x86::avx2::row::<2, 6>(&args),
                (_, _) => x86::avx2::row::<1, 12>(&args),
            }
        }
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    for x in 0..ow {
        let acc = &mut row[x * width..][..width];
        acc.copy_from_slice(bias);
        for tap in taps {
            let src = &channels_last[tap.src + x * cin..][..cin];
            for (ci, v) in src.iter().enumerate() {
                let w = &weights[tap.weights + ci * cp + c0..][..width];
                for (a, w) in acc.iter_mut().zip(w) {
                    *a += v * w;
                }
            }
        }
    }
}

/// Which kernel computes the register blocks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Isa {
    /// Plain Rust (separate multiplies and adds).
    Portable,
    /// AVX2 + FMA: 16 vector registers, so blocks of 16 channels × 6 voxels or 8 × 12.
    Avx2,
    /// The same 256-bit code compiled for AVX-512VL: 32 vector registers and broadcasts folded
    /// into the multiply-adds, so larger blocks (24 channels × 8 voxels, 16 × 12, 8 × 24) and
    /// fewer loads per multiply-add. The same multiply-adds in the same order as `Avx2`, so the
    /// same results. (512-bit registers were tried, 16 channels × 24 voxels: slower than this
    /// on the Xeon it was measured on.)
    Avx512,
}

impl Isa {
    /// The best the CPU has, unless `TRACT_DIRECT_CONV3D_ISA` (`portable` or `avx2`) asks for
    /// less (A/B measurements, and tests of every kernel on one machine). Read at each
    /// evaluation.
    fn detect() -> Isa {
        let cap = std::env::var("TRACT_DIRECT_CONV3D_ISA").ok();
        if cap.as_deref() == Some("portable") {
            return Isa::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected;
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                let avx512 = is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512vl")
                    && cap.as_deref() != Some("avx2");
                return if avx512 { Isa::Avx512 } else { Isa::Avx2 };
            }
        }
        Isa::Portable
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::TapRow;

    /// One output row's inputs and output for a block of output channels.
    pub struct RowArgs<'a> {
        /// The channels-last input buffer.
        pub src: *const f32,
        pub taps: &'a [TapRow],
        pub cin: usize,
        /// Padded output channels: the stride of the packed weights' rows.
        pub cp: usize,
        /// The packed weights, already offset to the block's first output channel.
        pub weights: *const f32,
        /// The block's `8 × NB` biases.
        pub bias: *const f32,
        /// `[ow][8 × NB]`.
        pub out: *mut f32,
        pub ow: usize,
    }

    /// The row and block functions for one instruction set: the same source compiled twice
    /// (`target_feature` applies to a function's own body, so a generic inner block inherits
    /// it through inlining only when compiled for the same features).
    macro_rules! kernels {
        ($isa:ident, $features:literal) => {
            pub mod $isa {
                use super::RowArgs;
                use std::arch::x86_64::*;

                /// `NV` voxels at a time along the row, then one at a time.
                ///
                /// # Safety
                /// The CPU has `
                #[doc = $features]
                /// `; for every tap, `src + tap.src + x * cin + ci` is readable for x < ow and
                /// ci < cin, as are `weights + tap.weights + ci * cp + 8 · NB` and `8 · NB`
                /// biases; `out` has room for `ow × 8 · NB`.
                #[target_feature(enable = $features)]
                pub unsafe fn row<const NB: usize, const NV: usize>(args: &RowArgs) {
                    unsafe {
                        let width = 8 * NB;
                        let mut x = 0;
                        while x + NV <= args.ow {
                            block::<NB, NV>(args, x, args.out.add(x * width));
                            x += NV;
                        }
                        while x < args.ow {
                            block::<NB, 1>(args, x, args.out.add(x * width));
                            x += 1;
                        }
                    }
                }

                /// Voxels `x..x + NV` × `NB` vectors of 8 output channels, accumulated in
                /// registers over every tap and input channel, stored as `[NV][8 · NB]`.
                #[target_feature(enable = $features)]
                #[inline]
                unsafe fn block<const NB: usize, const NV: usize>(
                    args: &RowArgs,
                    x: usize,
                    out: *mut f32,
                ) {
                    unsafe {
                        let (cin, cp) = (args.cin, args.cp);
                        let src = args.src.add(x * cin);
                        let mut bias_v = [_mm256_setzero_ps(); NB];
                        for (b, v) in bias_v.iter_mut().enumerate() {
                            *v = _mm256_loadu_ps(args.bias.add(8 * b));
                        }
                        let mut acc = [bias_v; NV];
                        for tap in args.taps {
                            let s = src.add(tap.src);
                            let wt = args.weights.add(tap.weights);
                            for ci in 0..cin {
                                let mut wv = [_mm256_setzero_ps(); NB];
                                for (b, v) in wv.iter_mut().enumerate() {
                                    *v = _mm256_loadu_ps(wt.add(ci * cp + 8 * b));
                                }
                                for (v, a) in acc.iter_mut().enumerate() {
                                    let x = _mm256_broadcast_ss(&*s.add(v * cin + ci));
                                    for b in 0..NB {
                                        a[b] = _mm256_fmadd_ps(x, wv[b], a[b]);
                                    }
                                }
                            }
                        }
                        for (v, a) in acc.iter().enumerate() {
                            for (b, a) in a.iter().enumerate() {
                                _mm256_storeu_ps(out.add(v * 8 * NB + 8 * b), *a);
                            }
                        }
                    }
                }
            }
        };
    }

    kernels!(avx2, "avx2,fma");
    kernels!(avx512, "avx2,fma,avx512f,avx512vl");
}
