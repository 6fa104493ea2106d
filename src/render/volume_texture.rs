//! Volumes and label maps as 3D textures, with the geometry that places them in world mm.
//!
//! Intensities are stored normalised to 0..1 over the volume's own (min, max) so 16-bit
//! floats keep ~11 bits of precision wherever they are (≈ 2 HU over a 4000 HU CT range);
//! [`VolumeTexture::value_range`] maps them back. Beside each volume sits a coarse brick
//! texture of (min, max) per 8³ voxels that the raycaster uses to skip empty space.
//!
//! A volume longer than the device's largest 3D texture (a whole-body CT of 512×512×2048
//! on a 2048 limit) is split into several textures, [`VolumeBrick`]s, along the axes that
//! exceed it. Each brick *owns* a box of voxels (the boxes tile the volume) and its texture
//! reaches [`BRICK_APRON`] voxels past that box into its neighbours, so trilinear samples and
//! central-difference gradients taken anywhere in the owned box read the same voxels they
//! would read in one big texture: the raycaster draws one ray segment per brick and the seams
//! do not show. Only when even 16-bit texels exceed the memory budget is the volume
//! block-averaged down (with a warning), and past a 4× reduction per axis it is refused.

use super::RenderError;
use crate::volume::{LabelMap, LabelTable, Volume, VolumeGeometry};
use nalgebra::{Matrix4, Vector3};
use rayon::prelude::*;
use wgpu::util::DeviceExt;

/// Voxels per side of an empty-space-skipping brick.
pub const BRICK_SIZE: usize = 8;

/// Voxels a texture brick reaches past the box it owns on each inner side: a gradient sample
/// one voxel beyond the box edge (central differences) is itself trilinear, which reads one
/// voxel further.
pub const BRICK_APRON: usize = 2;

/// Slices written per `write_texture` call: bounds the staging memory of a large upload.
const SLAB_BYTES: usize = 64 << 20;

/// Volume texture bytes (all bricks) [`UploadOptions::default`] allows. wgpu cannot tell how
/// much memory a GPU has; 4 GiB of volume fits the 8 GB cards fuseprint targets beside the
/// frame buffers, and holds a 512×512×4096 CT at 16 bits.
pub const DEFAULT_MAX_VOLUME_BYTES: u64 = 4 << 30;

/// 32-bit texels (where the device filters them) only up to this size; past it 16 bits,
/// whose ~11 significant bits over the normalised range are ~2 HU on CT.
const MAX_F32_BYTES: u64 = 512 << 20;

/// Past this reduction per axis a downsampled volume is not worth showing: refused instead.
const MAX_FALLBACK_FACTOR: usize = 4;

/// How a volume goes onto the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOptions {
    /// Largest texture side to use; `None` = the device's `max_texture_dimension_3d`. A
    /// smaller value forces bricking (tests on small phantoms, benchmarks).
    pub max_texture_dimension: Option<u32>,
    /// Texture bytes the volume may take in all (see [`DEFAULT_MAX_VOLUME_BYTES`]).
    pub max_bytes: u64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            max_texture_dimension: None,
            max_bytes: DEFAULT_MAX_VOLUME_BYTES,
        }
    }
}

/// One texture of a (possibly) bricked volume.
pub struct VolumeBrick {
    pub(crate) view: wgpu::TextureView,
    /// The raycaster's per-brick uniforms (`Brick` in shaders/raycast.wgsl).
    pub(crate) uniforms: wgpu::Buffer,
    pub plan: BrickPlan,
}

/// Where a texture brick sits in its volume's grid (`[i, j, k]`, voxels of the texture grid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrickPlan {
    /// Position in the grid of bricks.
    pub index: [usize; 3],
    /// First voxel of the texture.
    pub origin: [usize; 3],
    /// Texture size.
    pub size: [usize; 3],
    /// Voxels whose ray segments this brick draws: `owned_start..owned_end` per axis.
    pub owned_start: [usize; 3],
    pub owned_end: [usize; 3],
}

impl BrickPlan {
    /// Texel to LPS mm, given the whole grid's `world_from_voxel`.
    pub fn world_from_texel(&self, world_from_voxel: &Matrix4<f64>) -> Matrix4<f64> {
        let o = self.origin.map(|v| v as f64);
        world_from_voxel * Matrix4::new_translation(&Vector3::new(o[0], o[1], o[2]))
    }
}

/// Splits each axis of `dims` longer than `max_side` into bricks of at most `max_side`
/// voxels (apron included), owned parts as even as possible; `i` fastest in the result.
pub fn plan_bricks(dims: [usize; 3], max_side: usize) -> Vec<BrickPlan> {
    let axis = |n: usize| -> Vec<(usize, usize, usize, usize)> {
        if n <= max_side {
            return vec![(0, n, 0, n)];
        }
        let per_brick = max_side.saturating_sub(2 * BRICK_APRON).max(1);
        let count = n.div_ceil(per_brick);
        (0..count)
            .map(|b| {
                let (start, end) = (b * n / count, (b + 1) * n / count);
                let origin = start.saturating_sub(BRICK_APRON);
                (origin, (end + BRICK_APRON).min(n) - origin, start, end)
            })
            .collect()
    };
    let [xs, ys, zs] = dims.map(axis);
    let mut plans = Vec::with_capacity(xs.len() * ys.len() * zs.len());
    for (bk, z) in zs.iter().enumerate() {
        for (bj, y) in ys.iter().enumerate() {
            for (bi, x) in xs.iter().enumerate() {
                plans.push(BrickPlan {
                    index: [bi, bj, bk],
                    origin: [x.0, y.0, z.0],
                    size: [x.1, y.1, z.1],
                    owned_start: [x.2, y.2, z.2],
                    owned_end: [x.3, y.3, z.3],
                });
            }
        }
    }
    plans
}

/// A volume on the GPU: one texture, or several bricks when it exceeds the largest 3D texture.
pub struct VolumeTexture {
    pub(crate) texture_bricks: Vec<VolumeBrick>,
    /// Bricks per axis.
    pub brick_grid: [usize; 3],
    pub(crate) bricks_view: wgpu::TextureView,
    /// Normalised (min, max) per brick, `i` fastest; for skipping decisions on the CPU side.
    pub(crate) brick_min_max: Vec<[f32; 2]>,
    /// Grid size `[i, j, k]` of the whole texture set (smaller than the volume's when it had
    /// to be downsampled).
    pub dims: [u32; 3],
    /// Empty-space-skipping bricks (8³ voxels) per axis.
    pub brick_counts: [u32; 3],
    /// Voxel (texture grid) to LPS mm, oblique directions included.
    pub world_from_voxel: Matrix4<f64>,
    /// Image values that stored 0 and 1 stand for.
    pub value_range: (f32, f32),
    /// Voxels averaged per texel along `[i, j, k]`: `[1, 1, 1]` unless the volume did not fit
    /// the memory budget even at 16 bits per voxel.
    pub downsample: [usize; 3],
    pub format: wgpu::TextureFormat,
    /// Bytes of the volume's textures (aprons included, skipping bricks not).
    pub texture_bytes: u64,
}

impl VolumeTexture {
    /// The textures the volume is split into (one unless it exceeds the largest 3D texture).
    pub fn texture_bricks(&self) -> impl Iterator<Item = &BrickPlan> {
        self.texture_bricks.iter().map(|b| &b.plan)
    }

    pub fn is_bricked(&self) -> bool {
        self.texture_bricks.len() > 1
    }

    /// Smallest distance between voxel centres of the texture grid, mm.
    pub fn min_spacing_mm(&self) -> f64 {
        (0..3)
            .map(|c| {
                Vector3::new(
                    self.world_from_voxel[(0, c)],
                    self.world_from_voxel[(1, c)],
                    self.world_from_voxel[(2, c)],
                )
                .norm()
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// Texture coordinates (0..1 across the grid, voxel centres at (i + 0.5) / n) from world.
    pub fn tex_from_world(&self) -> Matrix4<f64> {
        tex_from_world(self.dims, &self.world_from_voxel)
    }

    /// World positions of the 8 corners of the texture's box (outer voxel faces).
    pub fn corners_world(&self) -> [nalgebra::Point3<f64>; 8] {
        corners_world(self.dims, &self.world_from_voxel)
    }

    /// Fraction of bricks in which `transfer` makes something visible: the part of the
    /// volume empty-space skipping cannot skip in DVR.
    pub fn visible_brick_fraction(&self, transfer: &super::TransferFunction) -> f64 {
        use super::transfer::{max_opacity_table, OPACITY_BUCKETS};
        let table = max_opacity_table(&transfer.bake(self.value_range));
        let b = OPACITY_BUCKETS as f32;
        let bucket = |v: f32| (v * b).floor().clamp(0.0, b - 1.0) as usize;
        let visible = self
            .brick_min_max
            .iter()
            .filter(|[lo, hi]| table[bucket(*hi) * OPACITY_BUCKETS + bucket(*lo)] > 0.0)
            .count();
        visible as f64 / self.brick_min_max.len().max(1) as f64
    }

    /// Stored value for an image value (what the shader compares against).
    pub fn normalise(&self, value: f32) -> f32 {
        let (lo, hi) = self.value_range;
        (value - lo) / (hi - lo)
    }
}

pub(crate) fn tex_from_world(dims: [u32; 3], world_from_voxel: &Matrix4<f64>) -> Matrix4<f64> {
    let voxel_from_world = world_from_voxel
        .try_inverse()
        .unwrap_or_else(Matrix4::identity);
    let mut tex_from_voxel = Matrix4::identity();
    for c in 0..3 {
        let n = f64::from(dims[c].max(1));
        tex_from_voxel[(c, c)] = 1.0 / n;
        tex_from_voxel[(c, 3)] = 0.5 / n;
    }
    tex_from_voxel * voxel_from_world
}

pub(crate) fn corners_world(
    dims: [u32; 3],
    world_from_voxel: &Matrix4<f64>,
) -> [nalgebra::Point3<f64>; 8] {
    std::array::from_fn(|corner| {
        let v: [f64; 3] = std::array::from_fn(|axis| {
            if corner >> axis & 1 == 0 {
                -0.5
            } else {
                f64::from(dims[axis]) - 0.5
            }
        });
        nalgebra::Point3::from_homogeneous(
            world_from_voxel * nalgebra::Vector4::new(v[0], v[1], v[2], 1.0),
        )
        .unwrap_or_else(nalgebra::Point3::origin)
    })
}

/// Per-axis factors that bring `dims` within `limit`.
fn downsample_factors(dims: [usize; 3], limit: usize) -> [usize; 3] {
    dims.map(|n| n.div_ceil(limit.max(1)).max(1))
}

/// Grid of a volume reduced by `factors` (block averages: texel centre = block centre).
fn downsampled_world_from_voxel(geometry: &VolumeGeometry, factors: [usize; 3]) -> Matrix4<f64> {
    let mut voxel_from_texel = Matrix4::identity();
    for c in 0..3 {
        let f = factors[c] as f64;
        voxel_from_texel[(c, c)] = f;
        voxel_from_texel[(c, 3)] = (f - 1.0) * 0.5;
    }
    geometry.world_from_voxel() * voxel_from_texel
}

/// Uploads `volume` with [`UploadOptions::default`]: at full resolution, bricked when it
/// exceeds the device's largest 3D texture.
pub fn upload_volume(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    volume: &Volume<f32>,
) -> Result<VolumeTexture, RenderError> {
    upload_volume_with(device, queue, volume, &UploadOptions::default())
}

/// `"512×512×2048 (0.8×0.8×1 mm)"`: how errors and logs name a volume.
fn describe(geometry: &VolumeGeometry) -> String {
    let [x, y, z] = geometry.dims;
    let [sx, sy, sz] = geometry.spacing_mm;
    format!("{x}×{y}×{z} ({sx:.3}×{sy:.3}×{sz:.3} mm)")
}

/// Texture layout a volume gets: per-axis reduction, 32-bit texels or 16, total bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    factors: [usize; 3],
    float32: bool,
    bytes: u64,
}

fn texel_count(plans: &[BrickPlan]) -> u64 {
    plans
        .iter()
        .map(|p| p.size.iter().map(|n| *n as u64).product::<u64>())
        .sum()
}

/// Full resolution whenever 16-bit texels fit `max_bytes`, else the smallest uniform
/// reduction that fits; `None` past [`MAX_FALLBACK_FACTOR`].
fn choose_layout(
    dims: [usize; 3],
    max_side: usize,
    device_limit: usize,
    float32_filterable: bool,
    max_bytes: u64,
) -> Option<Layout> {
    for f in 1..=MAX_FALLBACK_FACTOR {
        // The skipping grid is one texture: it must fit the device too (a 16384-voxel axis).
        let factors = dims.map(|n| f.max(n.div_ceil(BRICK_SIZE * device_limit.max(1))));
        let reduced: [usize; 3] = std::array::from_fn(|c| dims[c].div_ceil(factors[c]));
        let texels = texel_count(&plan_bricks(reduced, max_side));
        if float32_filterable && factors == [1, 1, 1] && texels * 4 <= MAX_F32_BYTES.min(max_bytes)
        {
            return Some(Layout {
                factors,
                float32: true,
                bytes: texels * 4,
            });
        }
        if texels * 2 <= max_bytes {
            return Some(Layout {
                factors,
                float32: false,
                bytes: texels * 2,
            });
        }
    }
    None
}

/// Copies one brick's voxels out of the grid, normalised and converted to texels.
fn extract_brick<T: Send + Copy + Default>(
    values: &[f32],
    dims: [usize; 3],
    plan: &BrickPlan,
    texel: impl Fn(f32) -> T + Sync,
) -> Vec<T> {
    let [sx, sy, _] = plan.size;
    let [nx, ny, _] = dims;
    let mut out = vec![T::default(); plan.size.iter().product()];
    out.par_chunks_mut(sx * sy)
        .enumerate()
        .for_each(|(k, slab)| {
            for j in 0..sy {
                let row = ((plan.origin[2] + k) * ny + plan.origin[1] + j) * nx + plan.origin[0];
                for (dst, src) in slab[j * sx..(j + 1) * sx]
                    .iter_mut()
                    .zip(&values[row..row + sx])
                {
                    *dst = texel(*src);
                }
            }
        });
    out
}

/// Uploads `volume` as filterable float 3D textures (R32Float where the device filters it and
/// the volume is small, else R16Float), split into bricks along the axes longer than the
/// largest texture side. Only a volume whose 16-bit texels exceed `options.max_bytes` is
/// block-averaged down (logged); one that would need more than a 4× reduction per axis, or
/// that the GPU has no memory for, is refused with the sizes in the error.
pub fn upload_volume_with(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    volume: &Volume<f32>,
    options: &UploadOptions,
) -> Result<VolumeTexture, RenderError> {
    let geometry = volume.geometry();
    let device_limit = device.limits().max_texture_dimension_3d as usize;
    let max_side = options
        .max_texture_dimension
        .map_or(device_limit, |m| (m as usize).min(device_limit))
        .max(2 * BRICK_APRON + 1);
    let float32_filterable = device
        .features()
        .contains(wgpu::Features::FLOAT32_FILTERABLE);
    let Some(layout) = choose_layout(
        geometry.dims,
        max_side,
        device_limit,
        float32_filterable,
        options.max_bytes,
    ) else {
        let texels = texel_count(&plan_bricks(geometry.dims, max_side));
        return Err(RenderError::VolumeTooLarge {
            volume: describe(geometry),
            needed_mib: (texels * 2) >> 20,
            budget_mib: options.max_bytes >> 20,
            max_factor: MAX_FALLBACK_FACTOR,
        });
    };
    let factors = layout.factors;
    let dims_usize: [usize; 3] = std::array::from_fn(|c| geometry.dims[c].div_ceil(factors[c]));
    if factors != [1, 1, 1] {
        tracing::warn!(
            "volume {} needs more than the {} MiB texture budget at 16 bits per voxel: \
             rendering it block-averaged by {:?} to {:?}",
            describe(geometry),
            options.max_bytes >> 20,
            factors,
            dims_usize
        );
    }
    let (lo, hi) = volume.min_max();
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let scale = 1.0 / (hi - lo);
    let reduced = (factors != [1, 1, 1])
        .then(|| block_average(volume, factors, dims_usize, |v| (v - lo) * scale));
    let already_normalised = reduced.is_some();
    let values: &[f32] = reduced.as_deref().unwrap_or(volume.data());
    let normalise = move |v: f32| {
        if already_normalised {
            v
        } else if v.is_finite() {
            (v - lo) * scale
        } else {
            0.0
        }
    };
    let format = if layout.float32 {
        wgpu::TextureFormat::R32Float
    } else {
        wgpu::TextureFormat::R16Float
    };
    let plans = plan_bricks(dims_usize, max_side);
    let brick_grid = [0, 1, 2].map(|c| plans.iter().map(|p| p.index[c] + 1).max().unwrap_or(1));
    if plans.len() > 1 {
        tracing::info!(
            "volume {} exceeds a {max_side}-voxel texture side: drawing it from {} bricks {:?}",
            describe(geometry),
            plans.len(),
            brick_grid
        );
    }
    let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let mut texture_bricks = Vec::with_capacity(plans.len());
    for plan in &plans {
        let size = plan.size.map(|n| n as u32);
        let texture = create_3d(device, "volume brick", size, format);
        if layout.float32 {
            let texels = extract_brick(values, dims_usize, plan, &normalise);
            write_slabs(queue, &texture, size, bytemuck::cast_slice(&texels), 4);
        } else {
            let texels = extract_brick(values, dims_usize, plan, |v| f16_bits(normalise(v)));
            write_slabs(queue, &texture, size, bytemuck::cast_slice(&texels), 2);
        }
        let uniforms = super::raycast::BrickUniforms::new(plan, dims_usize, plans.len());
        texture_bricks.push(VolumeBrick {
            view: texture.create_view(&Default::default()),
            uniforms: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("volume brick uniforms"),
                contents: bytemuck::bytes_of(&uniforms),
                usage: wgpu::BufferUsages::UNIFORM,
            }),
            plan: *plan,
        });
    }
    let (brick_counts, brick_min_max) = brick_min_max(values, dims_usize, &normalise);
    let bricks = create_3d(
        device,
        "volume bricks",
        brick_counts,
        wgpu::TextureFormat::Rg32Float,
    );
    write_slabs(
        queue,
        &bricks,
        brick_counts,
        bytemuck::cast_slice(&brick_min_max),
        8,
    );
    if let Some(error) = pollster::block_on(out_of_memory.pop()) {
        return Err(RenderError::OutOfMemory {
            volume: describe(geometry),
            textures: plans.len(),
            bytes_mib: layout.bytes >> 20,
            message: error.to_string(),
        });
    }
    Ok(VolumeTexture {
        texture_bricks,
        brick_grid,
        bricks_view: bricks.create_view(&Default::default()),
        brick_min_max,
        dims: dims_usize.map(|n| n as u32),
        brick_counts,
        world_from_voxel: downsampled_world_from_voxel(geometry, factors),
        value_range: (lo, hi),
        downsample: factors,
        format,
        texture_bytes: layout.bytes,
    })
}

fn block_average(
    volume: &Volume<f32>,
    factors: [usize; 3],
    out_dims: [usize; 3],
    normalise: impl Fn(f32) -> f32 + Sync,
) -> Vec<f32> {
    let [nx, ny, nz] = volume.dims();
    let [ox, oy, _] = out_dims;
    let mut out = vec![0.0f32; out_dims.iter().product()];
    out.par_chunks_mut(ox * oy)
        .enumerate()
        .for_each(|(k, slab)| {
            for j in 0..oy {
                for i in 0..ox {
                    let (mut sum, mut count) = (0.0f64, 0u32);
                    for kk in k * factors[2]..((k + 1) * factors[2]).min(nz) {
                        for jj in j * factors[1]..((j + 1) * factors[1]).min(ny) {
                            for ii in i * factors[0]..((i + 1) * factors[0]).min(nx) {
                                let v = volume.at(ii, jj, kk);
                                if v.is_finite() {
                                    sum += f64::from(normalise(v));
                                    count += 1;
                                }
                            }
                        }
                    }
                    slab[j * ox + i] = if count > 0 {
                        (sum / f64::from(count)) as f32
                    } else {
                        0.0
                    };
                }
            }
        });
    out
}

/// (min, max) of each brick, widened by the one-voxel apron trilinear sampling reaches into,
/// and by a little for 16-bit rounding.
fn brick_min_max(
    values: &[f32],
    dims: [usize; 3],
    normalise: impl Fn(f32) -> f32 + Sync,
) -> ([u32; 3], Vec<[f32; 2]>) {
    let counts = dims.map(|n| n.div_ceil(BRICK_SIZE));
    let [nx, ny, nz] = dims;
    let range =
        |b: usize, n: usize| (b * BRICK_SIZE).saturating_sub(1)..((b + 1) * BRICK_SIZE + 1).min(n);
    let mut out = vec![[0.0f32; 2]; counts.iter().product()];
    out.par_chunks_mut(counts[0] * counts[1])
        .enumerate()
        .for_each(|(bk, slab)| {
            for bj in 0..counts[1] {
                for bi in 0..counts[0] {
                    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
                    for k in range(bk, nz) {
                        for j in range(bj, ny) {
                            let row = (k * ny + j) * nx;
                            for v in &values[row + range(bi, nx).start..row + range(bi, nx).end] {
                                let v = normalise(*v);
                                lo = lo.min(v);
                                hi = hi.max(v);
                            }
                        }
                    }
                    slab[bj * counts[0] + bi] = [lo - 1e-3, hi + 1e-3];
                }
            }
        });
    (counts.map(|n| n as u32), out)
}

pub(crate) fn create_3d(
    device: &wgpu::Device,
    label: &str,
    dims: [u32; 3],
    format: wgpu::TextureFormat,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: dims[0],
            height: dims[1],
            depth_or_array_layers: dims[2],
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D3,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

/// Writes a whole 3D texture a slab of slices at a time.
pub(crate) fn write_slabs(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    dims: [u32; 3],
    bytes: &[u8],
    bytes_per_texel: usize,
) {
    let slice_bytes = dims[0] as usize * dims[1] as usize * bytes_per_texel;
    let slices_per_slab = (SLAB_BYTES / slice_bytes.max(1)).max(1);
    let mut k = 0usize;
    while k < dims[2] as usize {
        let n = slices_per_slab.min(dims[2] as usize - k);
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture,
                mip_level: 0,
                origin: wgpu::Origin3d {
                    x: 0,
                    y: 0,
                    z: k as u32,
                },
                aspect: wgpu::TextureAspect::All,
            },
            &bytes[k * slice_bytes..(k + n) * slice_bytes],
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(dims[0] * bytes_per_texel as u32),
                rows_per_image: Some(dims[1]),
            },
            wgpu::Extent3d {
                width: dims[0],
                height: dims[1],
                depth_or_array_layers: n as u32,
            },
        );
        k += n;
    }
}

/// IEEE half-precision bits of `x`, rounded to nearest.
pub(crate) fn f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let round = (m >> (shift - 1)) & 1;
        return sign | (half + round) as u16;
    }
    // A carry out of the mantissa correctly bumps the exponent.
    let half = ((e as u32) << 10) | (mant >> 13);
    let round = (mant >> 12) & 1;
    sign | (half + round) as u16
}

/// Most distinct labels one label texture holds (index 0 is background).
pub const MAX_LABELS: usize = 255;

/// A label map on the GPU: compact 8-bit indices (nearest sampling) and a colour per index.
pub struct LabelTexture {
    pub(crate) view: wgpu::TextureView,
    pub(crate) colours: wgpu::Texture,
    pub(crate) colours_view: wgpu::TextureView,
    pub dims: [u32; 3],
    pub world_from_voxel: Matrix4<f64>,
    /// Label value of each index (`values[0] == 0`).
    pub values: Vec<u16>,
    pub downsample: [usize; 3],
}

impl LabelTexture {
    pub fn tex_from_world(&self) -> Matrix4<f64> {
        tex_from_world(self.dims, &self.world_from_voxel)
    }

    /// Re-reads colours and visibility from `table` (after the user recolours or hides one).
    pub fn update_colours(&self, queue: &wgpu::Queue, table: &LabelTable) {
        let colours = colour_table(&self.values, table);
        queue.write_texture(
            self.colours.as_image_copy(),
            bytemuck::cast_slice(&colours),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(256 * 4),
                rows_per_image: Some(1),
            },
            wgpu::Extent3d {
                width: 256,
                height: 1,
                depth_or_array_layers: 1,
            },
        );
    }
}

fn colour_table(values: &[u16], table: &LabelTable) -> Vec<[u8; 4]> {
    let mut colours = vec![[0u8; 4]; 256];
    for (index, value) in values.iter().enumerate().skip(1) {
        let info = table.get(*value);
        let visible = info.is_none_or(|i| i.visible);
        let rgba = info
            .map(|i| i.color)
            .unwrap_or_else(|| LabelTable::default_color(*value))
            .0;
        colours[index] = if visible {
            [rgba[0], rgba[1], rgba[2], 255]
        } else {
            [0; 4]
        };
    }
    colours
}

/// Uploads a label map; more than [`MAX_LABELS`] distinct labels is refused. A grid larger
/// than the device's largest 3D texture is subsampled (nearest) with a warning.
pub fn upload_labels(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    labels: &LabelMap,
) -> Result<LabelTexture, RenderError> {
    let present = labels.values_present();
    let mut values = vec![0u16];
    values.extend(present.iter().copied().filter(|v| *v != 0));
    if values.len() - 1 > MAX_LABELS {
        return Err(RenderError::TooLarge {
            what: "number of distinct labels",
            got: (values.len() - 1) as u32,
            limit: MAX_LABELS as u32,
        });
    }
    let mut index_of = vec![0u8; usize::from(u16::MAX) + 1];
    for (index, value) in values.iter().enumerate() {
        index_of[usize::from(*value)] = index as u8;
    }
    let geometry = labels.geometry();
    let limit = device.limits().max_texture_dimension_3d as usize;
    let factors = downsample_factors(geometry.dims, limit);
    let out_dims: [usize; 3] = std::array::from_fn(|c| geometry.dims[c].div_ceil(factors[c]));
    if factors != [1, 1, 1] {
        tracing::warn!(
            "label map {:?} exceeds this GPU's 3D texture limit of {limit}: subsampled by {:?}",
            geometry.dims,
            factors
        );
    }
    let [ox, oy, _] = out_dims;
    let [nx, ny, nz] = geometry.dims;
    let mut indices = vec![0u8; out_dims.iter().product()];
    indices
        .par_chunks_mut(ox * oy)
        .enumerate()
        .for_each(|(k, slab)| {
            let kk = (k * factors[2] + factors[2] / 2).min(nz - 1);
            for j in 0..oy {
                let jj = (j * factors[1] + factors[1] / 2).min(ny - 1);
                for i in 0..ox {
                    let ii = (i * factors[0] + factors[0] / 2).min(nx - 1);
                    slab[j * ox + i] = index_of[usize::from(labels.volume.at(ii, jj, kk))];
                }
            }
        });
    let dims = out_dims.map(|n| n as u32);
    let texture = create_3d(device, "labels", dims, wgpu::TextureFormat::R8Uint);
    write_slabs(queue, &texture, dims, &indices, 1);
    let colours = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("label colours"),
        size: wgpu::Extent3d {
            width: 256,
            height: 1,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D1,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    // Nearest sampling: the texel centre is the picked voxel, not a block centre.
    let mut voxel_from_texel = Matrix4::identity();
    for c in 0..3 {
        voxel_from_texel[(c, c)] = factors[c] as f64;
        voxel_from_texel[(c, 3)] = (factors[c] / 2) as f64;
    }
    let label_texture = LabelTexture {
        view: texture.create_view(&Default::default()),
        colours_view: colours.create_view(&Default::default()),
        colours,
        dims,
        world_from_voxel: geometry.world_from_voxel() * voxel_from_texel,
        values,
        downsample: factors,
    };
    label_texture.update_colours(queue, &labels.table);
    Ok(label_texture)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_round_trip_the_unit_range() {
        assert_eq!(f16_bits(0.0), 0);
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(0.5), 0x3800);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(65504.0), 0x7bff);
        assert_eq!(f16_bits(1e6), 0x7c00);
        // Smallest subnormal.
        assert_eq!(f16_bits(2.0f32.powi(-24)), 1);
        // Decode and compare over 0..1: relative error within half an ulp (2^-11).
        let decode = |h: u16| {
            let e = i32::from((h >> 10) & 0x1f);
            let m = f32::from(h & 0x3ff);
            if e == 0 {
                m * 2.0f32.powi(-24)
            } else {
                (1.0 + m / 1024.0) * 2.0f32.powi(e - 15)
            }
        };
        for i in 1..=1000 {
            let x = i as f32 / 1000.0;
            let back = decode(f16_bits(x));
            assert!(
                (back - x).abs() <= x * 2.0f32.powi(-11) + 1e-7,
                "{x} -> {back}"
            );
        }
    }

    #[test]
    fn bricks_bound_every_value_trilinear_sampling_can_reach() {
        let dims = [19, 10, 9];
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n).map(|i| ((i * 7919) % 101) as f32 / 100.0).collect();
        let (counts, bricks) = brick_min_max(&values, dims, |v| v);
        assert_eq!(counts, [3, 2, 2]);
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let v = values[(k * dims[1] + j) * dims[0] + i];
                    // Every brick this voxel's apron touches must include it.
                    for (bi, bj, bk) in [(i / 8, j / 8, k / 8), ((i + 1) / 8, j / 8, k / 8)] {
                        if bi >= 3 {
                            continue;
                        }
                        let [lo, hi] = bricks[(bk * 2 + bj) * 3 + bi];
                        assert!(lo <= v && v <= hi, "voxel ({i},{j},{k}) in brick {bi}");
                    }
                }
            }
        }
    }

    #[test]
    fn bricks_tile_the_volume_reach_past_their_box_and_sit_where_their_voxels_are() {
        let dims = [512, 300, 3000];
        let limit = 2048;
        let plans = plan_bricks(dims, limit);
        // Only k exceeds the limit: 3000 voxels in bricks of at most 2048 with aprons.
        assert_eq!(plans.len(), 2);
        let plans = plan_bricks(dims, 200);
        assert_eq!(plans.len(), 3 * 2 * 16);
        // Every 7th voxel along each axis is owned by exactly one brick.
        let sampled = dims.map(|n| n.div_ceil(7));
        let mut owners = vec![0u8; sampled.iter().product()];
        for p in &plans {
            for c in 0..3 {
                assert!(p.size[c] <= 200, "{p:?}");
                // The texture holds the owned voxels plus the apron, clipped to the volume.
                assert_eq!(p.origin[c], p.owned_start[c].saturating_sub(BRICK_APRON));
                assert_eq!(
                    p.origin[c] + p.size[c],
                    (p.owned_end[c] + BRICK_APRON).min(dims[c])
                );
            }
            let axis = |c: usize| (p.owned_start[c]..p.owned_end[c]).filter(|v| v % 7 == 0);
            for k in axis(2) {
                for j in axis(1) {
                    for i in axis(0) {
                        owners[((k / 7) * sampled[1] + j / 7) * sampled[0] + i / 7] += 1;
                    }
                }
            }
        }
        assert!(owners.iter().all(|n| *n == 1));
        // And along each axis the owned ranges follow one another with no gap.
        for c in 0..3 {
            let mut ranges: Vec<(usize, usize)> = plans
                .iter()
                .map(|p| (p.owned_start[c], p.owned_end[c]))
                .collect();
            ranges.sort_unstable();
            ranges.dedup();
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges[ranges.len() - 1].1, dims[c]);
            assert!(ranges.windows(2).all(|w| w[0].1 == w[1].0), "{ranges:?}");
        }
        // Texel t of a brick is voxel origin + t of the volume, in world mm.
        let geometry =
            VolumeGeometry::axis_aligned(dims, [0.8, 0.7, 1.25], [10.0, -20.0, 30.0]).unwrap();
        let world_from_voxel = geometry.world_from_voxel();
        let p = plans[plans.len() - 1];
        let texel = nalgebra::Vector4::new(3.0, 4.0, 5.0, 1.0);
        let via_brick = p.world_from_texel(&world_from_voxel) * texel;
        let voxel = nalgebra::Vector4::new(
            p.origin[0] as f64 + 3.0,
            p.origin[1] as f64 + 4.0,
            p.origin[2] as f64 + 5.0,
            1.0,
        );
        assert!((via_brick - world_from_voxel * voxel).norm() < 1e-9);
    }

    #[test]
    fn a_whole_body_ct_stays_at_full_resolution_in_16_bits_until_the_budget_forces_less() {
        let dims = [512, 512, 2048];
        let layout = choose_layout(dims, 2048, 2048, true, DEFAULT_MAX_VOLUME_BYTES).unwrap();
        assert_eq!(layout.factors, [1, 1, 1]);
        assert!(
            !layout.float32,
            "2 GiB of 32-bit texels is past the 32-bit threshold"
        );
        assert_eq!(layout.bytes, 512 * 512 * 2048 * 2);
        // Past the limit: bricked, still full resolution, aprons included in the bytes.
        let tall = [512, 512, 3000];
        let layout = choose_layout(tall, 2048, 2048, true, DEFAULT_MAX_VOLUME_BYTES).unwrap();
        assert_eq!(layout.factors, [1, 1, 1]);
        assert_eq!(
            layout.bytes,
            512 * 512 * (3000 + 2 * BRICK_APRON as u64) * 2
        );
        // A 1 GiB budget halves each axis; a tiny one is refused.
        let layout = choose_layout(tall, 2048, 2048, true, 1 << 30).unwrap();
        assert_eq!(layout.factors, [2, 2, 2]);
        assert!(choose_layout(tall, 2048, 2048, true, 1 << 20).is_none());
        // Small volumes keep 32-bit texels where the device filters them.
        let small = choose_layout([256; 3], 2048, 2048, true, DEFAULT_MAX_VOLUME_BYTES).unwrap();
        assert!(small.float32);
    }

    #[test]
    fn downsampled_grid_keeps_the_volume_where_it_was() {
        let geometry =
            VolumeGeometry::axis_aligned([10, 4, 5000], [0.5, 0.5, 0.3], [1.0, 2.0, 3.0]).unwrap();
        let factors = downsample_factors(geometry.dims, 2048);
        assert_eq!(factors, [1, 1, 3]);
        let m = downsampled_world_from_voxel(&geometry, factors);
        // Texel 0 along k is the centre of voxels 0..3, i.e. voxel 1.
        let p = m * nalgebra::Vector4::new(0.0, 0.0, 0.0, 1.0);
        assert!((p.z - (3.0 + 0.3)).abs() < 1e-9);
        // The far edge of the last texel reaches past the last voxel by the padding only.
        let last = m * nalgebra::Vector4::new(0.0, 0.0, 1666.0 + 0.5, 1.0);
        assert!((last.z - (3.0 + 0.3 * (1666.0 * 3.0 + 1.0 + 1.5))).abs() < 1e-6);
    }
}
