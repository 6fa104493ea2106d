//! Multi-planar slices on the GPU: axial, coronal, sagittal and oblique reformats of a fixed
//! volume, optionally fused with a registered moving volume and overlaid with a label map.
//!
//! A slice is a plane in world LPS mm seen through a viewport of `W × H` pixels: pixel centre
//! `(x + ½, y + ½)` shows the world point
//! `center + (x + ½ − W/2)·mm_per_pixel·right + (y + ½ − H/2)·mm_per_pixel·down`
//! ([`SlicePlane::world_at_pixel`]). Every image reaches that point through its own
//! `voxel_from_world` (the moving one through `moving_from_fixed` first), so any obliquity of
//! plane or grid is handled by the same shader.
//!
//! Use: [`SliceRenderer::new`] once per target format, `upload_*` when data changes,
//! [`SliceRenderer::prepare`] each frame, then [`SliceRenderer::paint`] inside any render pass
//! (a UI paint callback's or [`SliceRenderer::render_offscreen`]'s).

use nalgebra::{Matrix4, Point3, Vector3};
use wgpu::util::DeviceExt;

use super::colormap::{lut_rows, Colormap, LUT_SIZE};
use super::fusion::{Fusion, LayerStyle, Window};
use super::gpu::cleared_colour_pass;
use super::{GpuContext, OffscreenTarget, RenderError};
use crate::volume::{LabelMap, Volume, VolumeGeometry};

/// A viewing plane in world LPS millimetres.
#[derive(Debug, Clone, PartialEq)]
pub struct SlicePlane {
    /// World point shown at the viewport centre.
    pub center_mm: Point3<f64>,
    /// Unit world direction pointing to the screen's right.
    pub right: Vector3<f64>,
    /// Unit world direction pointing down the screen.
    pub down: Vector3<f64>,
    pub mm_per_pixel: f64,
}

impl SlicePlane {
    /// Seen from the feet (radiological convention): patient left on screen right, anterior up.
    pub fn axial(center_mm: Point3<f64>, mm_per_pixel: f64) -> Self {
        Self::new(center_mm, Vector3::x(), Vector3::y(), mm_per_pixel)
    }

    /// Seen from the front: patient left on screen right, superior up.
    pub fn coronal(center_mm: Point3<f64>, mm_per_pixel: f64) -> Self {
        Self::new(center_mm, Vector3::x(), -Vector3::z(), mm_per_pixel)
    }

    /// Seen from the patient's left: anterior on screen left, superior up.
    pub fn sagittal(center_mm: Point3<f64>, mm_per_pixel: f64) -> Self {
        Self::new(center_mm, Vector3::y(), -Vector3::z(), mm_per_pixel)
    }

    /// Any plane: `right` and `down` are orthonormalised (down is made perpendicular to right).
    pub fn new(
        center_mm: Point3<f64>,
        right: Vector3<f64>,
        down: Vector3<f64>,
        mm_per_pixel: f64,
    ) -> Self {
        let right = right.try_normalize(1e-12).unwrap_or_else(Vector3::x);
        let down = (down - right * right.dot(&down))
            .try_normalize(1e-12)
            .unwrap_or_else(|| right.cross(&Vector3::z()).normalize());
        Self {
            center_mm,
            right,
            down,
            mm_per_pixel,
        }
    }

    /// Unit normal pointing towards the viewer (right × down points away from the viewer).
    pub fn normal(&self) -> Vector3<f64> {
        -self.right.cross(&self.down)
    }

    /// World point at a (possibly fractional) pixel position; pixel centres are at `+0.5`.
    pub fn world_at_pixel(&self, viewport_px: [u32; 2], x: f64, y: f64) -> Point3<f64> {
        let [w, h] = viewport_px.map(f64::from);
        self.center_mm
            + self.right * ((x - w / 2.0) * self.mm_per_pixel)
            + self.down * ((y - h / 2.0) * self.mm_per_pixel)
    }

    /// The plane's size in mm for a viewport.
    pub fn size_mm(&self, viewport_px: [u32; 2]) -> [f64; 2] {
        viewport_px.map(|n| f64::from(n) * self.mm_per_pixel)
    }

    /// Voxel position at the viewport's top-left corner, and its change across the width and
    /// height, for a grid with the given `voxel_from_world`.
    fn in_voxels(&self, viewport_px: [u32; 2], voxel_from_world: &Matrix4<f64>) -> [[f32; 4]; 3] {
        let [w, h] = self.size_mm(viewport_px);
        let corner = self.world_at_pixel(viewport_px, 0.0, 0.0);
        let o = voxel_from_world.transform_point(&corner);
        let du = voxel_from_world.transform_vector(&(self.right * w));
        let dv = voxel_from_world.transform_vector(&(self.down * h));
        [
            [o.x as f32, o.y as f32, o.z as f32, 0.0],
            [du.x as f32, du.y as f32, du.z as f32, 0.0],
            [dv.x as f32, dv.y as f32, dv.z as f32, 0.0],
        ]
    }
}

/// How labels are drawn over the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelStyle {
    /// Opacity of a label's interior (0 hides the fill).
    pub fill_opacity: f32,
    /// Draw label borders (pixels whose 4-neighbour on screen has another label).
    pub outline: bool,
    pub outline_opacity: f32,
}

impl Default for LabelStyle {
    fn default() -> Self {
        Self {
            fill_opacity: 0.4,
            outline: true,
            outline_opacity: 1.0,
        }
    }
}

/// Everything a frame needs besides the uploaded data.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceParams {
    pub plane: SlicePlane,
    pub viewport_px: [u32; 2],
    pub fixed_style: LayerStyle,
    pub moving_style: LayerStyle,
    /// World transform from the fixed image's frame to the moving image's (registration's
    /// result); identity when both already share a frame.
    pub moving_from_fixed: Matrix4<f64>,
    pub fusion: Fusion,
    pub labels: LabelStyle,
}

impl SliceParams {
    /// Grey CT-like window on the fixed image, hot map on the moving one, no fusion.
    pub fn new(plane: SlicePlane, viewport_px: [u32; 2]) -> Self {
        Self {
            plane,
            viewport_px,
            fixed_style: LayerStyle::new(Window::new(40.0, 400.0), Colormap::Grey),
            moving_style: LayerStyle::new(Window::new(500.0, 1000.0), Colormap::Hot),
            moving_from_fixed: Matrix4::identity(),
            fusion: Fusion::FixedOnly,
            labels: LabelStyle::default(),
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SliceUniforms {
    fixed: [[f32; 4]; 3],
    moving: [[f32; 4]; 3],
    label: [[f32; 4]; 3],
    fixed_grad: [[f32; 4]; 3],
    fixed_dims: [f32; 4],
    moving_dims: [f32; 4],
    label_dims: [f32; 4],
    fixed_window: [f32; 4],
    moving_window: [f32; 4],
    viewport: [f32; 4],
    fusion: [f32; 4],
    labels: [f32; 4],
}

/// A volume living on the GPU with the grid it came from.
struct GpuGrid {
    _texture: wgpu::Texture,
    view: wgpu::TextureView,
    geometry: VolumeGeometry,
}

/// Draws slices; one per viewport (each holds its own uniforms).
pub struct SliceRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: wgpu::Buffer,
    lut_view: wgpu::TextureView,
    dummy_float: wgpu::TextureView,
    dummy_uint: wgpu::TextureView,
    fixed: Option<GpuGrid>,
    moving: Option<GpuGrid>,
    labels: Option<(GpuGrid, wgpu::Buffer)>,
    empty_colors: wgpu::Buffer,
    bind_group: Option<wgpu::BindGroup>,
    has_moving: bool,
    has_labels: bool,
}

const SHADER: &str = include_str!("../../shaders/slice.wgsl");

impl SliceRenderer {
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target_format: wgpu::TextureFormat,
    ) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("slice.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let texture_entry = |binding, sample_type, dim| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension: dim,
                multisampled: false,
            },
            count: None,
        };
        let unfiltered = wgpu::TextureSampleType::Float { filterable: false };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("slice bind group layout"),
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
                texture_entry(1, unfiltered, wgpu::TextureViewDimension::D3),
                texture_entry(2, unfiltered, wgpu::TextureViewDimension::D3),
                texture_entry(
                    3,
                    wgpu::TextureSampleType::Uint,
                    wgpu::TextureViewDimension::D3,
                ),
                texture_entry(4, unfiltered, wgpu::TextureViewDimension::D2),
                wgpu::BindGroupLayoutEntry {
                    binding: 5,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: true },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("slice pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("slice pipeline"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format: target_format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("slice uniforms"),
            size: std::mem::size_of::<SliceUniforms>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let lut = create_texture(
            device,
            queue,
            "colour maps",
            wgpu::TextureDimension::D2,
            [LUT_SIZE as u32, Colormap::ALL.len() as u32, 1],
            wgpu::TextureFormat::Rgba8Unorm,
            &lut_rows(),
            4,
        );
        let dummy_float = create_texture(
            device,
            queue,
            "no volume",
            wgpu::TextureDimension::D3,
            [1, 1, 1],
            wgpu::TextureFormat::R32Float,
            &[0; 4],
            4,
        );
        let dummy_uint = create_texture(
            device,
            queue,
            "no labels",
            wgpu::TextureDimension::D3,
            [1, 1, 1],
            wgpu::TextureFormat::R16Uint,
            &[0; 2],
            2,
        );
        let empty_colors = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("no label colours"),
            contents: &[0; 4],
            usage: wgpu::BufferUsages::STORAGE,
        });
        Self {
            pipeline,
            layout,
            uniforms,
            lut_view: lut.create_view(&Default::default()),
            dummy_float: dummy_float.create_view(&Default::default()),
            dummy_uint: dummy_uint.create_view(&Default::default()),
            fixed: None,
            moving: None,
            labels: None,
            empty_colors,
            bind_group: None,
            has_moving: false,
            has_labels: false,
        }
    }

    /// The image every slice shows (CT in a fusion). Values are kept as they are (HU).
    pub fn upload_fixed(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        volume: &Volume<f32>,
    ) -> Result<(), RenderError> {
        self.fixed = Some(upload_f32(device, queue, volume, "fixed volume")?);
        self.rebind(device);
        Ok(())
    }

    /// The registered second image (MRI), shown through `moving_from_fixed`.
    pub fn upload_moving(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        volume: &Volume<f32>,
    ) -> Result<(), RenderError> {
        self.moving = Some(upload_f32(device, queue, volume, "moving volume")?);
        self.rebind(device);
        Ok(())
    }

    pub fn clear_moving(&mut self, device: &wgpu::Device) {
        self.moving = None;
        self.rebind(device);
    }

    /// A segmentation drawn in its table's colours (hidden labels are not drawn).
    pub fn upload_labels(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        labels: &LabelMap,
    ) -> Result<(), RenderError> {
        let geometry = labels.geometry().clone();
        let size = checked_size(device, geometry.dims, "label map")?;
        let texture = create_texture(
            device,
            queue,
            "label map",
            wgpu::TextureDimension::D3,
            size,
            wgpu::TextureFormat::R16Uint,
            bytemuck::cast_slice(labels.volume.data()),
            2,
        );
        let max = labels.table.iter().map(|l| l.value).max().unwrap_or(0) as usize;
        let mut colors = vec![0u32; max + 1];
        for info in labels.table.iter().filter(|l| l.visible) {
            colors[info.value as usize] = u32::from_le_bytes(info.color.0);
        }
        let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("label colours"),
            contents: bytemuck::cast_slice(&colors),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let grid = GpuGrid {
            view: texture.create_view(&Default::default()),
            _texture: texture,
            geometry,
        };
        self.labels = Some((grid, buffer));
        self.rebind(device);
        Ok(())
    }

    pub fn clear_labels(&mut self, device: &wgpu::Device) {
        self.labels = None;
        self.rebind(device);
    }

    /// The fixed image's grid, e.g. to centre the planes on it.
    pub fn fixed_geometry(&self) -> Option<&VolumeGeometry> {
        self.fixed.as_ref().map(|g| &g.geometry)
    }

    fn rebind(&mut self, device: &wgpu::Device) {
        let Some(fixed) = &self.fixed else {
            self.bind_group = None;
            return;
        };
        self.has_moving = self.moving.is_some();
        self.has_labels = self.labels.is_some();
        let moving = self.moving.as_ref().map_or(&self.dummy_float, |g| &g.view);
        let (labels, colors) = self
            .labels
            .as_ref()
            .map_or((&self.dummy_uint, &self.empty_colors), |(g, b)| {
                (&g.view, b)
            });
        self.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("slice bind group"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.uniforms.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&fixed.view),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(moving),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(labels),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: wgpu::BindingResource::TextureView(&self.lut_view),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: colors.as_entire_binding(),
                },
            ],
        }));
    }

    /// Writes this frame's uniforms. Fails only when no fixed image was uploaded.
    pub fn prepare(&self, queue: &wgpu::Queue, params: &SliceParams) -> Result<(), RenderError> {
        let fixed = self
            .fixed
            .as_ref()
            .ok_or_else(|| RenderError::Empty("no volume uploaded for the slice view".into()))?;
        let vp = params.viewport_px.map(|n| n.max(1));
        let plane = &params.plane;
        let fixed_vfw = fixed.geometry.voxel_from_world();
        let identity = [[0.0; 4]; 3];
        let moving = self.moving.as_ref().map_or(identity, |m| {
            plane.in_voxels(
                vp,
                &(m.geometry.voxel_from_world() * params.moving_from_fixed),
            )
        });
        let label = self.labels.as_ref().map_or(identity, |(g, _)| {
            plane.in_voxels(vp, &g.geometry.voxel_from_world())
        });
        // Gradient per mm = transpose(voxel_from_world linear part) × gradient per voxel.
        let lin = fixed_vfw.fixed_view::<3, 3>(0, 0).transpose();
        let col = |c: usize| {
            [
                lin[(0, c)] as f32,
                lin[(1, c)] as f32,
                lin[(2, c)] as f32,
                0.0,
            ]
        };
        let dims = |g: Option<&VolumeGeometry>| {
            g.map_or([1.0; 4], |g| {
                [g.dims[0] as f32, g.dims[1] as f32, g.dims[2] as f32, 0.0]
            })
        };
        let window =
            |s: &LayerStyle| [s.window.low(), s.window.width, s.colormap.row() as f32, 0.0];
        let [code, p0, p1] = params.fusion.shader_code();
        let [w_mm, h_mm] = plane.size_mm(vp);
        let data = SliceUniforms {
            fixed: plane.in_voxels(vp, &fixed_vfw),
            moving,
            label,
            fixed_grad: [col(0), col(1), col(2)],
            fixed_dims: dims(Some(&fixed.geometry)),
            moving_dims: dims(self.moving.as_ref().map(|g| &g.geometry)),
            label_dims: dims(self.labels.as_ref().map(|(g, _)| &g.geometry)),
            fixed_window: window(&params.fixed_style),
            moving_window: window(&params.moving_style),
            viewport: [vp[0] as f32, vp[1] as f32, w_mm as f32, h_mm as f32],
            fusion: [code, p0, p1, if self.has_moving { 1.0 } else { 0.0 }],
            labels: [
                params.labels.fill_opacity.clamp(0.0, 1.0),
                if params.labels.outline { 1.0 } else { 0.0 },
                params.labels.outline_opacity.clamp(0.0, 1.0),
                if self.has_labels { 1.0 } else { 0.0 },
            ],
        };
        queue.write_buffer(&self.uniforms, 0, bytemuck::bytes_of(&data));
        Ok(())
    }

    /// Draws into the current pass (its viewport is the slice's viewport). Draws nothing
    /// before a fixed image is uploaded.
    pub fn paint(&self, pass: &mut wgpu::RenderPass<'_>) {
        if let Some(bind_group) = &self.bind_group {
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, bind_group, &[]);
            pass.draw(0..3, 0..1);
        }
    }

    /// Renders one slice into the whole of `target` (whose size overrides `viewport_px`).
    pub fn render_offscreen(
        &self,
        ctx: &GpuContext,
        target: &OffscreenTarget,
        params: &SliceParams,
    ) -> Result<(), RenderError> {
        let mut params = params.clone();
        params.viewport_px = [target.width, target.height];
        self.prepare(&ctx.queue, &params)?;
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = cleared_colour_pass(&mut encoder, "slice pass", &target.color_view);
            self.paint(&mut pass);
        }
        ctx.queue.submit([encoder.finish()]);
        Ok(())
    }
}

/// Milliseconds per slice frame for each fusion mode (a benchmark, not a test): two `dim³`
/// phantoms (the moving one rotated 10° about the vertical axis) and an oblique plane filling
/// a `viewport_px²` target, each frame waited for on the GPU.
pub fn bench_fusion_modes(
    ctx: &GpuContext,
    dim: usize,
    viewport_px: u32,
    frames: u32,
) -> Result<Vec<(Fusion, f64)>, RenderError> {
    let geometry = VolumeGeometry::axis_aligned([dim; 3], [1.0; 3], [0.0; 3])
        .map_err(|e| RenderError::Empty(e.to_string()))?;
    let c = (dim as f64 - 1.0) / 2.0;
    let fixed = Volume::from_fn(geometry.clone(), |[i, j, k]| {
        let r = ((i as f64 - c).powi(2) + (j as f64 - c).powi(2) + (k as f64 - c).powi(2)).sqrt();
        if r < c * 0.5 {
            1000.0
        } else {
            (40.0 + i as f64 * 0.1) as f32
        }
    });
    let moving = Volume::from_fn(geometry, |[i, j, k]| {
        ((i * 7 + j * 3 + k) % 200) as f32 * 5.0
    });
    let mut renderer = SliceRenderer::new(&ctx.device, &ctx.queue, OffscreenTarget::COLOR_FORMAT);
    renderer.upload_fixed(&ctx.device, &ctx.queue, &fixed)?;
    renderer.upload_moving(&ctx.device, &ctx.queue, &moving)?;
    let target = OffscreenTarget::new(ctx, viewport_px, viewport_px)?;
    let plane = SlicePlane::new(
        Point3::new(c, c, c),
        Vector3::new(1.0, 0.2, 0.1),
        Vector3::new(0.0, 0.3, -1.0),
        dim as f64 / f64::from(viewport_px),
    );
    let mut params = SliceParams::new(plane, [viewport_px; 2]);
    params.moving_from_fixed =
        nalgebra::Rotation3::from_axis_angle(&Vector3::z_axis(), 0.17).to_homogeneous();
    let mut out = Vec::new();
    for fusion in Fusion::ALL {
        params.fusion = fusion;
        // One warm-up frame so pipeline compilation is not counted.
        renderer.render_offscreen(ctx, &target, &params)?;
        wait(ctx)?;
        let start = std::time::Instant::now();
        for _ in 0..frames.max(1) {
            renderer.render_offscreen(ctx, &target, &params)?;
            wait(ctx)?;
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(frames.max(1));
        out.push((fusion, ms));
    }
    Ok(out)
}

fn wait(ctx: &GpuContext) -> Result<(), RenderError> {
    ctx.device
        .poll(wgpu::PollType::wait_indefinitely())
        .map(|_| ())
        .map_err(|e| RenderError::Device(e.to_string()))
}

fn checked_size(
    device: &wgpu::Device,
    dims: [usize; 3],
    what: &'static str,
) -> Result<[u32; 3], RenderError> {
    let limit = device.limits().max_texture_dimension_3d;
    let mut out = [0u32; 3];
    for a in 0..3 {
        let got = u32::try_from(dims[a]).unwrap_or(u32::MAX);
        if got > limit {
            return Err(RenderError::TooLarge { what, got, limit });
        }
        out[a] = got;
    }
    Ok(out)
}

fn upload_f32(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    volume: &Volume<f32>,
    what: &'static str,
) -> Result<GpuGrid, RenderError> {
    let size = checked_size(device, volume.dims(), what)?;
    let texture = create_texture(
        device,
        queue,
        what,
        wgpu::TextureDimension::D3,
        size,
        wgpu::TextureFormat::R32Float,
        bytemuck::cast_slice(volume.data()),
        4,
    );
    Ok(GpuGrid {
        view: texture.create_view(&Default::default()),
        _texture: texture,
        geometry: volume.geometry().clone(),
    })
}

#[allow(clippy::too_many_arguments)]
fn create_texture(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    label: &str,
    dimension: wgpu::TextureDimension,
    size: [u32; 3],
    format: wgpu::TextureFormat,
    bytes: &[u8],
    bytes_per_texel: u32,
) -> wgpu::Texture {
    let extent = wgpu::Extent3d {
        width: size[0],
        height: size[1],
        depth_or_array_layers: size[2],
    };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: extent,
        mip_level_count: 1,
        sample_count: 1,
        dimension,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    queue.write_texture(
        texture.as_image_copy(),
        bytes,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(size[0] * bytes_per_texel),
            rows_per_image: Some(size[1]),
        },
        extent,
    );
    texture
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_planes_face_the_viewer_and_pixels_step_by_the_spacing() {
        let c = Point3::new(10.0, -20.0, 30.0);
        assert_eq!(SlicePlane::axial(c, 1.0).normal(), -Vector3::z());
        assert_eq!(SlicePlane::coronal(c, 1.0).normal(), -Vector3::y());
        assert_eq!(SlicePlane::sagittal(c, 1.0).normal(), Vector3::x());
        let p = SlicePlane::axial(c, 0.5);
        // The pixel right of the centre (viewport 4 wide: centre at x = 2) is 0.5 mm left.
        let a = p.world_at_pixel([4, 4], 2.0, 2.0);
        let b = p.world_at_pixel([4, 4], 3.0, 2.0);
        assert_eq!(a, c);
        assert!((b - a - Vector3::new(0.5, 0.0, 0.0)).norm() < 1e-12);
    }

    #[test]
    fn oblique_axes_are_made_orthonormal() {
        let p = SlicePlane::new(
            Point3::origin(),
            Vector3::new(2.0, 0.0, 0.0),
            Vector3::new(1.0, 1.0, 0.0),
            1.0,
        );
        assert!((p.right.norm() - 1.0).abs() < 1e-12);
        assert!(p.right.dot(&p.down).abs() < 1e-12);
        assert!((p.down - Vector3::y()).norm() < 1e-12);
    }
}
