//! The volume raycaster: composite DVR with gradient shading, MIP and MinIP of one volume,
//! optionally a second registered volume and a label map, in world millimetres.
//!
//! Use: [`Raycaster::new`] once per target format; [`upload_volume`](super::upload_volume)
//! per volume; each frame [`Raycaster::prepare`] (uniforms, transfer tables, bind group)
//! then [`Raycaster::paint`] inside any render pass whose viewport is the view — or
//! [`Raycaster::render`] to do all of it into a texture.

use super::camera::Camera;
use super::transfer::{max_opacity_table, TransferFunction, OPACITY_BUCKETS};
use super::volume_texture::{LabelTexture, VolumeTexture, BRICK_SIZE};
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
}

const _: () = assert!(std::mem::size_of::<RaycastUniforms>() == 5 * 64 + 10 * 16);

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
        }
    }
}

/// The raycast pipeline and its per-frame state.
pub struct Raycaster {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    uniforms: wgpu::Buffer,
    placeholders: Placeholders,
    transfers: [Option<BakedTransfer>; 2],
    bind_group: Option<wgpu::BindGroup>,
    target_format: wgpu::TextureFormat,
}

impl Raycaster {
    /// A raycaster drawing into colour targets of `target_format` with no depth attachment.
    pub fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        Self::with_depth(device, target_format, None)
    }

    /// Same, for render passes that carry a depth attachment of `depth_format` (the
    /// raycaster neither tests nor writes depth).
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
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("raycast"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: depth_format.map(|format| wgpu::DepthStencilState {
                format,
                depth_write_enabled: Some(false),
                depth_compare: Some(wgpu::CompareFunction::Always),
                stencil: Default::default(),
                bias: Default::default(),
            }),
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format: target_format,
                    blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
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
        Self {
            pipeline,
            layout,
            sampler,
            uniforms,
            placeholders: Placeholders::new(device),
            transfers: [None, None],
            bind_group: None,
            target_format,
        }
    }

    pub fn target_format(&self) -> wgpu::TextureFormat {
        self.target_format
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
        self.transfer(0, device, queue, &params.primary);
        let second_layer = params.second.as_ref().map(|s| s.layer);
        if let Some(layer) = &second_layer {
            self.transfer(1, device, queue, layer);
        }
        let uniforms = uniforms(params, width, height);
        queue.write_buffer(&self.uniforms, 0, bytemuck::bytes_of(&uniforms));

        let Some(first) = &self.transfers[0] else {
            return;
        };
        let second_tf = match (&second_layer, &self.transfers[1]) {
            (Some(_), Some(baked)) => &baked.table,
            _ => &first.table,
        };
        let v1 = params.primary.volume;
        let entries = [
            wgpu::BindingResource::Buffer(self.uniforms.as_entire_buffer_binding()),
            wgpu::BindingResource::Sampler(&self.sampler),
            wgpu::BindingResource::TextureView(&v1.view),
            wgpu::BindingResource::TextureView(&v1.bricks_view),
            wgpu::BindingResource::TextureView(&first.table),
            wgpu::BindingResource::TextureView(&first.max_opacity),
            wgpu::BindingResource::TextureView(
                second_layer
                    .as_ref()
                    .map_or(&self.placeholders.volume, |l| &l.volume.view),
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
        ];
        let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
            .into_iter()
            .enumerate()
            .map(|(binding, resource)| wgpu::BindGroupEntry {
                binding: binding as u32,
                resource,
            })
            .collect();
        self.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("raycast"),
            layout: &self.layout,
            entries: &entries,
        }));
    }

    /// Draws the prepared frame into the pass's current viewport (blending over what is there).
    pub fn paint(&self, pass: &mut wgpu::RenderPass<'_>) {
        let Some(bind_group) = &self.bind_group else {
            return;
        };
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bind_group, &[]);
        pass.draw(0..3, 0..1);
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

fn uniforms(params: &RaycastParams<'_>, width: u32, height: u32) -> RaycastUniforms {
    let v1 = params.primary.volume;
    let aspect = f64::from(width.max(1)) / f64::from(height.max(1));
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
        world_from_clip: mat(&params.camera.world_from_clip(aspect)),
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
    fn clip_plane_removes_the_side_it_points_to() {
        let plane = ClipPlane::through(Point3::new(0.0, 0.0, 10.0), Vector3::new(0.0, 0.0, 2.0));
        let removed = |p: Point3<f64>| plane.normal.dot(&p.coords) > plane.offset_mm;
        assert!(removed(Point3::new(5.0, -3.0, 11.0)));
        assert!(!removed(Point3::new(5.0, -3.0, 9.0)));
    }
}
