//! The volume raycaster: composite DVR with gradient shading, MIP and MinIP of one volume,
//! optionally a second registered volume and a label map, in world millimetres.
//!
//! Use: [`Raycaster::new`] once per target format; [`upload_volume`](super::upload_volume)
//! per volume; each frame [`Raycaster::prepare`] (uniforms, transfer tables, bind group)
//! then [`Raycaster::paint`] inside any render pass whose viewport is the view — or
//! [`Raycaster::render`] to do all of it into a texture.

use super::camera::Camera;
use super::four_view::{SceneDrawer, SceneView};
use super::transfer::{max_opacity_table, TransferFunction, OPACITY_BUCKETS};
use super::volume_texture::{BrickPlan, LabelTexture, VolumeTexture, BRICK_SIZE};
use nalgebra::{Matrix4, Point3, Vector3};

/// What each ray reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RenderMode {
    /// Front-to-back compositing through the transfer function, shaded by the gradient.
    #[default]
    Dvr,
    /// Maximum intensity projection (grey over the window).
    Mip,
    /// Minimum intensity projection (airways, over the window).
    MinIp,
}

impl RenderMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Dvr => "dvr",
            Self::Mip => "mip",
            Self::MinIp => "minip",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Dvr, Self::Mip, Self::MinIp]
            .into_iter()
            .find(|m| m.name() == name)
    }

    fn code(self) -> u32 {
        match self {
            Self::Dvr => 0,
            Self::Mip => 1,
            Self::MinIp => 2,
        }
    }
}

/// A plane that cuts away the side its normal points to (`dot(normal, p) > offset_mm`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipPlane {
    pub normal: Vector3<f64>,
    pub offset_mm: f64,
}

impl ClipPlane {
    /// The plane through `point` removing what lies in the direction `removed_side`.
    pub fn through(point: Point3<f64>, removed_side: Vector3<f64>) -> Self {
        let normal = removed_side.try_normalize(1e-12).unwrap_or_else(Vector3::z);
        Self {
            normal,
            offset_mm: normal.dot(&point.coords),
        }
    }
}

/// At most this many clip planes are honoured; the rest are ignored (with a log line).
pub const MAX_CLIP_PLANES: usize = 4;

/// A volume and the transfer function it is drawn with.
#[derive(Clone, Copy)]
pub struct VolumeLayer<'a> {
    pub volume: &'a VolumeTexture,
    pub transfer: &'a TransferFunction,
}

/// A second (registered) volume, e.g. MRI over CT.
#[derive(Clone, Copy)]
pub struct SecondVolume<'a> {
    pub layer: VolumeLayer<'a>,
    /// Maps the first volume's world (fixed) to this volume's world (moving), LPS mm.
    pub moving_from_fixed: Matrix4<f64>,
}

/// Everything one frame needs.
#[derive(Clone)]
pub struct RaycastParams<'a> {
    pub primary: VolumeLayer<'a>,
    pub second: Option<SecondVolume<'a>>,
    pub labels: Option<&'a LabelTexture>,
    /// Opacity per mm of labelled voxels (1 = an opaque surface).
    pub label_opacity_per_mm: f32,
    pub camera: Camera,
    pub mode: RenderMode,
    /// Coarser steps while the camera moves ([`Self::interactive_step_voxels`]).
    pub interactive: bool,
    /// Step between samples in voxels of the first volume at full quality.
    pub step_voxels: f64,
    pub interactive_step_voxels: f64,
    /// MIP/MinIP grey window in image units; `None` = the first volume's whole range.
    pub window: Option<(f32, f32)>,
    /// Only this world box (LPS mm, min and max corners) is drawn.
    pub clip_box_world: Option<[Point3<f64>; 2]>,
    pub clip_planes: Vec<ClipPlane>,
    /// Offsets each ray's first sample by a per-pixel random fraction of a step: trades
    /// wood-grain banding for fine noise.
    pub jitter: bool,
    pub frame_seed: u32,
    pub shading: bool,
    pub empty_space_skipping: bool,
    /// Clear colour [`Raycaster::render`] uses (premultiplied RGBA).
    pub background: [f64; 4],
}

impl<'a> RaycastParams<'a> {
    /// Full-quality DVR of one volume, jittered, shaded, skipping empty space, on black.
    pub fn new(volume: &'a VolumeTexture, transfer: &'a TransferFunction, camera: Camera) -> Self {
        Self {
            primary: VolumeLayer { volume, transfer },
            second: None,
            labels: None,
            label_opacity_per_mm: 1.0,
            camera,
            mode: RenderMode::Dvr,
            interactive: false,
            step_voxels: 0.5,
            interactive_step_voxels: 1.5,
            window: None,
            clip_box_world: None,
            clip_planes: Vec::new(),
            jitter: true,
            frame_seed: 0,
            shading: true,
            empty_space_skipping: true,
            background: [0.0, 0.0, 0.0, 1.0],
        }
    }

    /// Distance between samples along a ray, mm.
    pub fn step_mm(&self) -> f64 {
        let voxels = if self.interactive {
            self.interactive_step_voxels
        } else {
            self.step_voxels
        };
        self.primary.volume.min_spacing_mm() * voxels.clamp(0.05, 8.0)
    }
}

/// Keep in sync with `Uniforms` in shaders/raycast.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RaycastUniforms {
    world_from_clip: [[f32; 4]; 4],
    tex1_from_world: [[f32; 4]; 4],
    tex2_from_world: [[f32; 4]; 4],
    label_tex_from_world: [[f32; 4]; 4],
    clip_planes: [[f32; 4]; 4],
    clip_box_min: [f32; 4],
    clip_box_max: [f32; 4],
    dims1: [f32; 4],
    dims2: [f32; 4],
    label_dims: [f32; 4],
    bricks: [f32; 4],
    window: [f32; 4],
    light: [f32; 4],
    flags: [u32; 4],
    flags2: [u32; 4],
    flags3: [u32; 4],
}

const _: () = assert!(std::mem::size_of::<RaycastUniforms>() == 5 * 64 + 11 * 16);

/// Keep in sync with `Brick` in shaders/raycast.wgsl: where one texture brick sits and which
/// part of each ray it draws.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct BrickUniforms {
    seg_lo: [f32; 4],
    seg_hi: [f32; 4],
    scale: [f32; 4],
    offset: [f32; 4],
    dims: [f32; 4],
}

const _: () = assert!(std::mem::size_of::<BrickUniforms>() == 5 * 16);

/// Texture coordinates far outside any volume: an outer brick face pushed out so the bricks'
/// boxes tile all space (a second volume or a clip box may reach past the first volume).
const FAR_OUTSIDE: f32 = 1e6;

impl BrickUniforms {
    /// For `plan` in a grid of `dims` voxels cut into `brick_count` bricks. Shared faces are
    /// computed by the same expression on both sides, so neighbouring segments meet exactly.
    pub(crate) fn new(plan: &BrickPlan, dims: [usize; 3], brick_count: usize) -> Self {
        let face = |v: usize, n: usize| v as f32 / n.max(1) as f32;
        let mut u = Self {
            seg_lo: [0.0; 4],
            seg_hi: [0.0; 4],
            scale: [1.0; 4],
            offset: [0.0; 4],
            dims: [1.0, 1.0, 1.0, brick_count as f32],
        };
        for c in 0..3 {
            let n = dims[c];
            u.seg_lo[c] = if plan.owned_start[c] == 0 {
                -FAR_OUTSIDE
            } else {
                face(plan.owned_start[c], n)
            };
            u.seg_hi[c] = if plan.owned_end[c] >= n {
                FAR_OUTSIDE
            } else {
                face(plan.owned_end[c], n)
            };
            let size = plan.size[c].max(1) as f32;
            u.scale[c] = n as f32 / size;
            u.offset[c] = -(plan.origin[c] as f32) / size;
            u.dims[c] = size;
        }
        u
    }
}

/// Back-to-front order of a volume's bricks seen from `eye_world`.
fn back_to_front(volume: &VolumeTexture, eye_world: Point3<f64>) -> Vec<usize> {
    let voxel_from_world = volume
        .world_from_voxel
        .try_inverse()
        .unwrap_or_else(Matrix4::identity);
    let eye = voxel_from_world.transform_point(&eye_world);
    let plans: Vec<BrickPlan> = volume.texture_bricks().copied().collect();
    order_back_to_front(&plans, [eye.x, eye.y, eye.z])
}

/// Bricks farthest (in bricks along the grid's axes) from the one holding `eye_voxel` first.
/// For the boxes of a grid, affine maps included, this is a visibility order from any eye:
/// a brick can only hide one that is farther along some axis.
fn order_back_to_front(plans: &[BrickPlan], eye_voxel: [f64; 3]) -> Vec<usize> {
    // The brick column holding the eye along each axis (outer bricks reach to infinity).
    let eye_cell: [usize; 3] = std::array::from_fn(|c| {
        plans
            .iter()
            .filter(|p| (p.owned_start[c] as f64 - 0.5) <= eye_voxel[c])
            .map(|p| p.index[c])
            .max()
            .unwrap_or(0)
    });
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&b| {
        let cells = (0..3)
            .map(|c| plans[b].index[c].abs_diff(eye_cell[c]))
            .sum::<usize>();
        std::cmp::Reverse(cells)
    });
    order
}

/// Opacities in transfer functions are per this many mm.
const OPACITY_REFERENCE_MM: f32 = 1.0;
const MAX_STEPS: f64 = 16384.0;

fn mat(m: &Matrix4<f64>) -> [[f32; 4]; 4] {
    m.cast::<f32>().into()
}

fn vec4(v: [f64; 3], w: f32) -> [f32; 4] {
    [v[0] as f32, v[1] as f32, v[2] as f32, w]
}

/// A transfer function baked for one volume's value range, on the GPU.
struct BakedTransfer {
    key: (TransferFunction, (f32, f32)),
    table: wgpu::TextureView,
    max_opacity: wgpu::TextureView,
}

impl BakedTransfer {
    fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        tf: &TransferFunction,
        range: (f32, f32),
    ) -> Self {
        let baked = tf.bake(range);
        let table = upload_2d(
            device,
            queue,
            "transfer function",
            wgpu::TextureDimension::D1,
            [baked.len() as u32, 1],
            wgpu::TextureFormat::Rgba32Float,
            bytemuck::cast_slice(&baked),
        );
        let max = max_opacity_table(&baked);
        let max_opacity = upload_2d(
            device,
            queue,
            "max opacity table",
            wgpu::TextureDimension::D2,
            [OPACITY_BUCKETS as u32; 2],
            wgpu::TextureFormat::R32Float,
            bytemuck::cast_slice(&max),
        );
        Self {
            key: (tf.clone(), range),
            table,
            max_opacity,
        }
    }
}

fn upload_2d(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    dimension: wgpu::TextureDimension,
    size: [u32; 2],
    format: wgpu::TextureFormat,
    bytes: &[u8],
) -> wgpu::TextureView {
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: size[0],
            height: size[1],
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let bytes_per_texel = bytes.len() as u32 / (size[0] * size[1]).max(1);
    queue.write_texture(
        texture.as_image_copy(),
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(size[0] * bytes_per_texel),
            rows_per_image: Some(size[1]),
        },
        wgpu::Extent3d {
            width: size[0],
            height: size[1],
            depth_or_array_layers: 1,
        },
    );
    texture.create_view(&Default::default())
}

/// Stand-ins bound where a frame has no second volume or no labels.
struct Placeholders {
    volume: wgpu::TextureView,
    labels: wgpu::TextureView,
    label_colours: wgpu::TextureView,
    depth: wgpu::TextureView,
}

impl Placeholders {
    fn new(device: &wgpu::Device) -> Self {
        use super::volume_texture::create_3d;
        let view = |t: wgpu::Texture| t.create_view(&Default::default());
        let label_colours = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("no label colours"),
            size: wgpu::Extent3d {
                width: 1,
                height: 1,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D1,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        });
        Self {
            volume: view(create_3d(
                device,
                "no volume",
                [1, 1, 1],
                wgpu::TextureFormat::R16Float,
            )),
            labels: view(create_3d(
                device,
                "no labels",
                [1, 1, 1],
                wgpu::TextureFormat::R8Uint,
            )),
            label_colours: view(label_colours),
            depth: view(device.create_texture(&wgpu::TextureDescriptor {
                label: Some("no scene depth"),
                size: wgpu::Extent3d {
                    width: 1,
                    height: 1,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: super::OffscreenTarget::DEPTH_FORMAT,
                usage: wgpu::TextureUsages::TEXTURE_BINDING,
                view_formats: &[],
            })),
        }
    }
}

/// The blend states the raycaster draws with (one pipeline each, made when first needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Draw {
    /// Premultiplied "over": DVR, and MIP/MinIP of an unbricked volume.
    Over,
    /// `fs_footprint`, replacing what is there: the neutral start of bricked MIP/MinIP.
    Footprint,
    /// Bricked MIP: colour and alpha take the max.
    Max,
    /// Bricked MinIP: colour takes the min, alpha the max (coverage).
    Min,
}

impl Draw {
    fn slot(self) -> usize {
        self as usize
    }

    fn blend(self) -> Option<wgpu::BlendState> {
        let op = |operation| wgpu::BlendComponent {
            src_factor: wgpu::BlendFactor::One,
            dst_factor: wgpu::BlendFactor::One,
            operation,
        };
        match self {
            Draw::Over => Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
            Draw::Footprint => None,
            Draw::Max => Some(wgpu::BlendState {
                color: op(wgpu::BlendOperation::Max),
                alpha: op(wgpu::BlendOperation::Max),
            }),
            Draw::Min => Some(wgpu::BlendState {
                color: op(wgpu::BlendOperation::Min),
                alpha: op(wgpu::BlendOperation::Max),
            }),
        }
    }
}

/// The raycast pipeline and its per-frame state.
pub struct Raycaster {
    shader: wgpu::ShaderModule,
    pipeline_layout: wgpu::PipelineLayout,
    pipelines: [Option<wgpu::RenderPipeline>; 4],
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    uniforms: wgpu::Buffer,
    placeholders: Placeholders,
    transfers: [Option<BakedTransfer>; 2],
    /// This frame's draws in order: a pipeline and a bind group (one per brick).
    draws: Vec<(Draw, wgpu::BindGroup)>,
    target_format: wgpu::TextureFormat,
    depth_format: Option<wgpu::TextureFormat>,
}

impl Raycaster {
    /// A raycaster drawing into colour targets of `target_format` with no depth attachment.
    pub fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        Self::with_depth(device, target_format, None)
    }

    /// Same, for render passes that carry a depth attachment of `depth_format` (the
    /// raycaster neither tests nor writes it; it can read a finished depth texture, see
    /// [`Self::prepare_with_depth`]).
    pub fn with_depth(
        device: &wgpu::Device,
        target_format: wgpu::TextureFormat,
        depth_format: Option<wgpu::TextureFormat>,
    ) -> Self {
        let texture = |binding, sample_type, view_dimension| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension,
                multisampled: false,
            },
            count: None,
        };
        let filterable = wgpu::TextureSampleType::Float { filterable: true };
        let exact = wgpu::TextureSampleType::Float { filterable: false };
        use wgpu::TextureViewDimension::{D1, D2, D3};
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("raycast"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
                texture(2, filterable, D3),
                texture(3, exact, D3),
                texture(4, exact, D1),
                texture(5, exact, D2),
                texture(6, filterable, D3),
                texture(7, exact, D1),
                texture(8, wgpu::TextureSampleType::Uint, D3),
                texture(9, exact, D1),
                texture(10, wgpu::TextureSampleType::Depth, D2),
                wgpu::BindGroupLayoutEntry {
                    binding: 11,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("raycast.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/raycast.wgsl").into()),
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("raycast"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("volume linear"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("raycast uniforms"),
            size: std::mem::size_of::<RaycastUniforms>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut raycaster = Self {
            shader,
            pipeline_layout,
            pipelines: [None, None, None, None],
            layout,
            sampler,
            uniforms,
            placeholders: Placeholders::new(device),
            transfers: [None, None],
            draws: Vec::new(),
            target_format,
            depth_format,
        };
        raycaster.ensure_pipeline(device, Draw::Over);
        raycaster
    }

    /// A raycaster for [`render_scene`](super::render_scene) and other passes with the
    /// offscreen depth attachment: [`VolumeDrawer`] needs one.
    pub fn for_scenes(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        Self::with_depth(
            device,
            target_format,
            Some(super::OffscreenTarget::DEPTH_FORMAT),
        )
    }

    pub fn target_format(&self) -> wgpu::TextureFormat {
        self.target_format
    }

    /// The depth attachment format the passes it paints in must carry (`None`: no depth).
    pub fn depth_format(&self) -> Option<wgpu::TextureFormat> {
        self.depth_format
    }

    fn ensure_pipeline(&mut self, device: &wgpu::Device, draw: Draw) {
        if self.pipelines[draw.slot()].is_some() {
            return;
        }
        let entry_point = if draw == Draw::Footprint {
            "fs_footprint"
        } else {
            "fs_main"
        };
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("raycast"),
            layout: Some(&self.pipeline_layout),
            vertex: wgpu::VertexState {
                module: &self.shader,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: self.depth_format.map(|format| wgpu::DepthStencilState {
                format,
                depth_write_enabled: Some(false),
                depth_compare: Some(wgpu::CompareFunction::Always),
                stencil: Default::default(),
                bias: Default::default(),
            }),
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &self.shader,
                entry_point: Some(entry_point),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format: self.target_format,
                    blend: draw.blend(),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        self.pipelines[draw.slot()] = Some(pipeline);
    }

    fn transfer(
        &mut self,
        slot: usize,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        layer: &VolumeLayer<'_>,
    ) {
        let range = layer.volume.value_range;
        let fresh = match &self.transfers[slot] {
            Some(b) => b.key.0 != *layer.transfer || b.key.1 != range,
            None => true,
        };
        if fresh {
            self.transfers[slot] = Some(BakedTransfer::new(device, queue, layer.transfer, range));
        }
    }

    /// Writes this frame's uniforms and transfer tables for a `width × height` viewport.
    pub fn prepare(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        params: &RaycastParams<'_>,
        width: u32,
        height: u32,
    ) {
        self.prepare_view(device, queue, params, None, [width, height], None);
    }

    /// [`Self::prepare`] for a frame whose target already holds meshes: `scene_depth` is their
    /// depth texture (`Depth32Float`, the target's size, standard 0 near .. 1 far depth of
    /// the same camera). Rays stop at those surfaces and the volume in front of them is
    /// blended over their colour. The texture must not be the pass's writable depth
    /// attachment: paint in a later pass, with that attachment read-only or without one.
    pub fn prepare_with_depth(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        params: &RaycastParams<'_>,
        width: u32,
        height: u32,
        scene_depth: Option<&wgpu::TextureView>,
    ) {
        self.prepare_view(device, queue, params, None, [width, height], scene_depth);
    }

    /// The general form: `world_from_clip` overrides the camera's projection (a
    /// [`SceneView`] turned on screen).
    pub(crate) fn prepare_view(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        params: &RaycastParams<'_>,
        world_from_clip: Option<Matrix4<f64>>,
        size: [u32; 2],
        scene_depth: Option<&wgpu::TextureView>,
    ) {
        let mut params = params.clone();
        if let Some(s) = &params.second {
            if s.layer.volume.is_bricked() {
                tracing::warn!(
                    "the second volume is split into bricks, which it cannot be drawn from: \
                     upload it within one texture (UploadOptions::max_bytes) to fuse it"
                );
                params.second = None;
            }
        }
        let params = &params;
        self.transfer(0, device, queue, &params.primary);
        let second_layer = params.second.as_ref().map(|s| s.layer);
        if let Some(layer) = &second_layer {
            self.transfer(1, device, queue, layer);
        }
        let aspect = f64::from(size[0].max(1)) / f64::from(size[1].max(1));
        let world_from_clip =
            world_from_clip.unwrap_or_else(|| params.camera.world_from_clip(aspect));
        let uniforms = uniforms(params, world_from_clip, scene_depth.is_some());
        queue.write_buffer(&self.uniforms, 0, bytemuck::bytes_of(&uniforms));

        self.draws.clear();
        let Some(first) = &self.transfers[0] else {
            return;
        };
        let second_tf = match (&second_layer, &self.transfers[1]) {
            (Some(_), Some(baked)) => &baked.table,
            _ => &first.table,
        };
        let v1 = params.primary.volume;
        let bind_group = |brick: &super::volume_texture::VolumeBrick| {
            let entries = [
                wgpu::BindingResource::Buffer(self.uniforms.as_entire_buffer_binding()),
                wgpu::BindingResource::Sampler(&self.sampler),
                wgpu::BindingResource::TextureView(&brick.view),
                wgpu::BindingResource::TextureView(&v1.bricks_view),
                wgpu::BindingResource::TextureView(&first.table),
                wgpu::BindingResource::TextureView(&first.max_opacity),
                wgpu::BindingResource::TextureView(
                    second_layer
                        .as_ref()
                        .map_or(&self.placeholders.volume, |l| {
                            &l.volume.texture_bricks[0].view
                        }),
                ),
                wgpu::BindingResource::TextureView(second_tf),
                wgpu::BindingResource::TextureView(
                    params.labels.map_or(&self.placeholders.labels, |l| &l.view),
                ),
                wgpu::BindingResource::TextureView(
                    params
                        .labels
                        .map_or(&self.placeholders.label_colours, |l| &l.colours_view),
                ),
                wgpu::BindingResource::TextureView(scene_depth.unwrap_or(&self.placeholders.depth)),
                wgpu::BindingResource::Buffer(brick.uniforms.as_entire_buffer_binding()),
            ];
            let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
                .into_iter()
                .enumerate()
                .map(|(binding, resource)| wgpu::BindGroupEntry {
                    binding: binding as u32,
                    resource,
                })
                .collect();
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("raycast"),
                layout: &self.layout,
                entries: &entries,
            })
        };
        let mut draws = Vec::new();
        if !v1.is_bricked() {
            draws.push((Draw::Over, bind_group(&v1.texture_bricks[0])));
        } else {
            let eye = match params.camera.projection {
                super::Projection::Perspective { .. } => params.camera.eye_world(),
                // Parallel rays: any point far enough behind the viewer orders the same.
                super::Projection::Orthographic { .. } => {
                    params.camera.target_world + params.camera.eye_direction() * 1e7
                }
            };
            let blend = match params.mode {
                RenderMode::Dvr => Draw::Over,
                RenderMode::Mip => Draw::Max,
                RenderMode::MinIp => Draw::Min,
            };
            let order = back_to_front(v1, eye);
            if blend != Draw::Over {
                draws.push((Draw::Footprint, bind_group(&v1.texture_bricks[order[0]])));
            }
            for b in order {
                draws.push((blend, bind_group(&v1.texture_bricks[b])));
            }
        }
        for (draw, _) in &draws {
            self.ensure_pipeline(device, *draw);
        }
        self.draws = draws;
    }

    /// Draws the prepared frame into the pass's current viewport (blending over what is there).
    pub fn paint(&self, pass: &mut wgpu::RenderPass<'_>) {
        for (draw, bind_group) in &self.draws {
            let Some(pipeline) = &self.pipelines[draw.slot()] else {
                continue;
            };
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.draw(0..3, 0..1);
        }
    }

    /// Prepares, clears `target` to `params.background` and draws: one submitted frame.
    pub fn render(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target: &wgpu::TextureView,
        size: [u32; 2],
        params: &RaycastParams<'_>,
    ) {
        self.prepare(device, queue, params, size[0], size[1]);
        let [r, g, b, a] = params.background;
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("raycast"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: target,
                    resolve_target: None,
                    depth_slice: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color { r, g, b, a }),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            self.paint(&mut pass);
        }
        queue.submit([encoder.finish()]);
    }

    /// Renders into an offscreen target and waits until the GPU is done: one timed frame.
    pub fn render_and_wait(
        &mut self,
        ctx: &super::GpuContext,
        target: &super::OffscreenTarget,
        params: &RaycastParams<'_>,
    ) -> Result<(), super::RenderError> {
        self.render(
            &ctx.device,
            &ctx.queue,
            &target.color_view,
            [target.width, target.height],
            params,
        );
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| super::RenderError::Device(e.to_string()))
    }
}

fn uniforms(
    params: &RaycastParams<'_>,
    world_from_clip: Matrix4<f64>,
    scene_depth: bool,
) -> RaycastUniforms {
    let v1 = params.primary.volume;
    let step_mm = params.step_mm();
    let (tex2_from_world, dims2) = match &params.second {
        Some(s) => (
            s.layer.volume.tex_from_world() * s.moving_from_fixed,
            s.layer.volume.dims,
        ),
        None => (Matrix4::identity(), [1, 1, 1]),
    };
    let (label_tex_from_world, label_dims) = match params.labels {
        Some(l) => (l.tex_from_world(), l.dims),
        None => (Matrix4::identity(), [1, 1, 1]),
    };
    if params.clip_planes.len() > MAX_CLIP_PLANES {
        tracing::warn!(
            "{} clip planes given, only the first {MAX_CLIP_PLANES} are used",
            params.clip_planes.len()
        );
    }
    let mut clip_planes = [[0.0f32; 4]; 4];
    for (slot, plane) in clip_planes.iter_mut().zip(&params.clip_planes) {
        *slot = vec4(plane.normal.into(), plane.offset_mm as f32);
    }
    let [box_min, box_max] = params
        .clip_box_world
        .unwrap_or([Point3::new(-1e9, -1e9, -1e9), Point3::new(1e9, 1e9, 1e9)]);
    // The longest path through either volume bounds the loop.
    let mut diagonal = diagonal_mm(v1.corners_world());
    if let Some(s) = &params.second {
        diagonal = diagonal.max(diagonal_mm(s.layer.volume.corners_world()));
    }
    let max_steps = (diagonal / step_mm + 4.0).clamp(1.0, MAX_STEPS) as u32;
    let (window_lo, window_hi) = params.window.unwrap_or(v1.value_range);
    // Skipping reads the first volume's bricks only, so it stays off when something else
    // could be visible in an empty brick.
    let skipping =
        params.empty_space_skipping && params.second.is_none() && params.labels.is_none();
    let dims_f = |d: [u32; 3], w: f32| [d[0] as f32, d[1] as f32, d[2] as f32, w];
    RaycastUniforms {
        world_from_clip: mat(&world_from_clip),
        tex1_from_world: mat(&v1.tex_from_world()),
        tex2_from_world: mat(&tex2_from_world),
        label_tex_from_world: mat(&label_tex_from_world),
        clip_planes,
        clip_box_min: vec4(box_min.into(), 0.0),
        clip_box_max: vec4(box_max.into(), 0.0),
        dims1: dims_f(v1.dims, step_mm as f32),
        dims2: dims_f(dims2, OPACITY_REFERENCE_MM),
        label_dims: dims_f(label_dims, params.label_opacity_per_mm.clamp(0.0, 1.0)),
        bricks: dims_f(v1.brick_counts, BRICK_SIZE as f32),
        window: [
            v1.normalise(window_lo),
            v1.normalise(window_hi),
            if params.jitter { 1.0 } else { 0.0 },
            OPACITY_BUCKETS as f32,
        ],
        light: [0.3, 0.7, 0.25, 24.0],
        flags: [
            params.mode.code(),
            u32::from(params.second.is_some()),
            u32::from(params.labels.is_some()),
            params.clip_planes.len().min(MAX_CLIP_PLANES) as u32,
        ],
        flags2: [
            u32::from(params.shading),
            u32::from(skipping),
            params.frame_seed,
            max_steps,
        ],
        flags3: [u32::from(scene_depth), 0, 0, 0],
    }
}

/// The raycaster as a [`SceneDrawer`]: in [`render_scene`](super::render_scene) it is drawn
/// after the meshes, reads their depth, and its rays stop at their surfaces.
pub struct VolumeDrawer<'a> {
    raycaster: &'a mut Raycaster,
    pub params: RaycastParams<'a>,
    device: wgpu::Device,
    depth: Option<wgpu::TextureView>,
}

impl<'a> VolumeDrawer<'a> {
    /// `raycaster` must paint into passes with the offscreen depth attachment
    /// ([`Raycaster::for_scenes`]); the camera comes from each [`SceneView`].
    pub fn new(
        device: &wgpu::Device,
        raycaster: &'a mut Raycaster,
        params: RaycastParams<'a>,
    ) -> Result<Self, super::RenderError> {
        if raycaster.depth_format() != Some(super::OffscreenTarget::DEPTH_FORMAT) {
            return Err(super::RenderError::Device(format!(
                "a scene's raycaster must be made for {:?} depth attachments \
                 (Raycaster::for_scenes), this one has {:?}",
                super::OffscreenTarget::DEPTH_FORMAT,
                raycaster.depth_format()
            )));
        }
        Ok(Self {
            raycaster,
            params,
            device: device.clone(),
            depth: None,
        })
    }
}

impl SceneDrawer for VolumeDrawer<'_> {
    fn prepare(&mut self, queue: &wgpu::Queue, view: &SceneView) {
        let mut params = self.params.clone();
        params.camera = view.camera;
        self.raycaster.prepare_view(
            &self.device,
            queue,
            &params,
            Some(view.world_from_clip()),
            view.viewport_px,
            self.depth.as_ref(),
        );
    }

    fn paint(&self, pass: &mut wgpu::RenderPass<'_>) {
        self.raycaster.paint(pass);
    }

    fn reads_depth(&self) -> bool {
        true
    }

    fn read_depth(&mut self, depth: &wgpu::TextureView) {
        self.depth = Some(depth.clone());
    }
}

fn diagonal_mm(corners: [Point3<f64>; 8]) -> f64 {
    let mut longest = 0.0f64;
    for a in &corners {
        for b in &corners {
            longest = longest.max((a - b).norm());
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names_round_trip() {
        for mode in [RenderMode::Dvr, RenderMode::Mip, RenderMode::MinIp] {
            assert_eq!(RenderMode::from_name(mode.name()), Some(mode));
        }
        assert_eq!(RenderMode::from_name("xray"), None);
    }

    #[test]
    fn bricks_are_ordered_back_to_front_from_any_eye() {
        use crate::render::plan_bricks;
        let plans = plan_bricks([100, 100, 300], 64);
        assert_eq!(plans.len(), 2 * 2 * 5);
        let owned_centre = |p: &BrickPlan| -> [f64; 3] {
            std::array::from_fn(|c| (p.owned_start[c] + p.owned_end[c]) as f64 / 2.0 - 0.5)
        };
        for eye in [
            [50.0, 50.0, -500.0],
            [50.0, -400.0, 120.0],
            [30.0, 70.0, 150.0],
            [-200.0, 300.0, 900.0],
        ] {
            let order = order_back_to_front(&plans, eye);
            // Every brick drawn later that shares a face with an earlier one lies on the eye's
            // side of that face.
            for (n, &a) in order.iter().enumerate() {
                for &b in &order[n + 1..] {
                    let (pa, pb) = (&plans[a], &plans[b]);
                    let differing: Vec<usize> =
                        (0..3).filter(|c| pa.index[*c] != pb.index[*c]).collect();
                    if differing.len() != 1
                        || pa.index[differing[0]].abs_diff(pb.index[differing[0]]) != 1
                    {
                        continue;
                    }
                    let c = differing[0];
                    let face = pa.owned_start[c].max(pb.owned_start[c]) as f64 - 0.5;
                    let (ca, cb) = (owned_centre(pa)[c], owned_centre(pb)[c]);
                    // b is drawn over a: b must be nearer the eye across the face.
                    let eye_side = (eye[c] - face).signum();
                    assert!(
                        (cb - face).signum() == eye_side && (ca - face).signum() != eye_side,
                        "eye {eye:?}: brick {:?} drawn after {:?} but behind it",
                        pb.index,
                        pa.index
                    );
                }
            }
        }
    }

    #[test]
    fn clip_plane_removes_the_side_it_points_to() {
        let plane = ClipPlane::through(Point3::new(0.0, 0.0, 10.0), Vector3::new(0.0, 0.0, 2.0));
        let removed = |p: Point3<f64>| plane.normal.dot(&p.coords) > plane.offset_mm;
        assert!(removed(Point3::new(5.0, -3.0, 11.0)));
        assert!(!removed(Point3::new(5.0, -3.0, 9.0)));
    }
}
