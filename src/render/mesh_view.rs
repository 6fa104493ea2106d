//! Mesh viewer: `TriMesh`es (world LPS mm) in their label colours, Blinn-Phong lighting from
//! a camera-fixed light, depth testing, and transparency for nested structures.
//!
//! Transparency is **sorted per object**, not order-independent: opaque objects first (depth
//! written), then every transparent object's back faces, farthest first, then their front
//! faces, farthest first, blended without writing depth. Objects are ordered by their bounding
//! sphere: back faces by the sphere's far extent along the view direction, front faces by its
//! near extent. For a tumour inside an organ (nested, whatever the sizes) that gives outer
//! back → inner back → inner front → outer front, which is exact for convex nested shapes;
//! intersecting transparent objects can still show ordering errors.
//!
//! Depth is standard wgpu depth (`0` near, `1` far) of [`SceneView::clip_from_world`], in the
//! target's depth texture (`OffscreenTarget::depth_view`), so a volume raycaster drawn after the
//! meshes can stop its rays at `world_from_clip * (ndc_x, ndc_y, depth, 1)`.

use nalgebra::Point3;
use wgpu::util::DeviceExt;

use super::four_view::{SceneDrawer, SceneView};
use super::picking::{pick_meshes, PickHit};
use super::{GpuContext, OffscreenTarget, Ray, RenderError};
use crate::volume::{Rgba, TriMesh};

/// Light and material. The light direction is in camera space (x right, y up, z towards the
/// viewer), so the lighting follows the camera as it orbits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lighting {
    pub light_from_camera: [f64; 3],
    pub ambient: f32,
    pub diffuse: f32,
    pub specular: f32,
    pub shininess: f32,
}

impl Default for Lighting {
    fn default() -> Self {
        // A headlight slightly above and left of the viewer: flat faces towards the viewer are
        // bright, and the shading still shows which way a surface curves.
        Self {
            light_from_camera: [-0.3, 0.4, 1.0],
            ambient: 0.2,
            diffuse: 0.75,
            specular: 0.25,
            shininess: 32.0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MeshUniforms {
    clip_from_world: [[f32; 4]; 4],
    eye_world: [f32; 4],
    light_world: [f32; 4],
    material: [f32; 4],
    view_dir: [f32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Vertex {
    position: [f32; 3],
    normal: [f32; 3],
}

struct GpuMesh {
    vertices: wgpu::Buffer,
    indices: wgpu::Buffer,
    index_count: u32,
}

/// What the draw order needs to know of an object.
#[derive(Debug, Clone, Copy)]
struct ObjectBounds {
    center: Point3<f64>,
    radius: f64,
    drawable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Opaque,
    TransparentBack,
    TransparentFront,
}

/// Draws a set of meshes; keeps CPU copies for picking.
pub struct MeshRenderer {
    opaque: wgpu::RenderPipeline,
    back: wgpu::RenderPipeline,
    front: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: wgpu::Buffer,
    colors: Option<wgpu::Buffer>,
    bind_group: Option<wgpu::BindGroup>,
    gpu: Vec<GpuMesh>,
    bounds: Vec<ObjectBounds>,
    meshes: Vec<TriMesh>,
    object_colors: Vec<Rgba>,
    visible: Vec<bool>,
    order: Vec<(Pass, usize)>,
    pub lighting: Lighting,
}

const SHADER: &str = include_str!("../../shaders/mesh.wgsl");

/// Colour and depth formats the pipelines are built for.
pub const MESH_DEPTH_FORMAT: wgpu::TextureFormat = OffscreenTarget::DEPTH_FORMAT;

impl MeshRenderer {
    /// `depth_format` must match the depth attachment of the passes `paint` is called in.
    pub fn new(
        device: &wgpu::Device,
        color_format: wgpu::TextureFormat,
        depth_format: wgpu::TextureFormat,
    ) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("mesh.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let buffer_entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("mesh bind group layout"),
            entries: &[
                buffer_entry(0, wgpu::BufferBindingType::Uniform),
                buffer_entry(1, wgpu::BufferBindingType::Storage { read_only: true }),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("mesh pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let attributes = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3];
        let blend = wgpu::BlendState {
            color: wgpu::BlendComponent {
                src_factor: wgpu::BlendFactor::SrcAlpha,
                dst_factor: wgpu::BlendFactor::OneMinusSrcAlpha,
                operation: wgpu::BlendOperation::Add,
            },
            alpha: wgpu::BlendComponent {
                src_factor: wgpu::BlendFactor::One,
                dst_factor: wgpu::BlendFactor::OneMinusSrcAlpha,
                operation: wgpu::BlendOperation::Add,
            },
        };
        let make = |label, cull, write_depth: bool, blend: Option<wgpu::BlendState>| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                vertex: wgpu::VertexState {
                    module: &module,
                    entry_point: Some("vs_main"),
                    compilation_options: Default::default(),
                    buffers: &[Some(wgpu::VertexBufferLayout {
                        array_stride: std::mem::size_of::<Vertex>() as u64,
                        step_mode: wgpu::VertexStepMode::Vertex,
                        attributes: &attributes,
                    })],
                },
                primitive: wgpu::PrimitiveState {
                    cull_mode: cull,
                    ..Default::default()
                },
                depth_stencil: Some(wgpu::DepthStencilState {
                    format: depth_format,
                    depth_write_enabled: Some(write_depth),
                    depth_compare: Some(wgpu::CompareFunction::Less),
                    stencil: Default::default(),
                    bias: Default::default(),
                }),
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &module,
                    entry_point: Some("fs_main"),
                    compilation_options: Default::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: color_format,
                        blend,
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        // Opaque meshes are closed surfaces: their back faces are never seen.
        let opaque = make("mesh opaque", Some(wgpu::Face::Back), true, None);
        let back = make(
            "mesh transparent back faces",
            Some(wgpu::Face::Front),
            false,
            Some(blend),
        );
        let front = make(
            "mesh transparent front faces",
            Some(wgpu::Face::Back),
            false,
            Some(blend),
        );
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mesh uniforms"),
            size: std::mem::size_of::<MeshUniforms>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            opaque,
            back,
            front,
            layout,
            uniforms,
            colors: None,
            bind_group: None,
            gpu: Vec::new(),
            bounds: Vec::new(),
            meshes: Vec::new(),
            object_colors: Vec::new(),
            visible: Vec::new(),
            order: Vec::new(),
            lighting: Lighting::default(),
        }
    }

    /// Replaces the scene's meshes; each colour's alpha is that object's opacity.
    /// Empty meshes are kept (so indices match the caller's) but never drawn.
    pub fn set_meshes(&mut self, device: &wgpu::Device, meshes: &[(&TriMesh, Rgba)]) {
        self.gpu.clear();
        self.bounds.clear();
        self.meshes.clear();
        for (mesh, _) in meshes {
            let mut mesh = (*mesh).clone();
            if mesh.normals.len() != mesh.positions_world_mm.len() {
                mesh.compute_normals();
            }
            let vertices: Vec<Vertex> = mesh
                .positions_world_mm
                .iter()
                .zip(&mesh.normals)
                .map(|(p, n)| Vertex {
                    position: *p,
                    normal: *n,
                })
                .collect();
            let (center, radius) = bounding_sphere(&mesh);
            self.gpu.push(GpuMesh {
                vertices: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("mesh vertices"),
                    contents: bytemuck::cast_slice(&vertices),
                    usage: wgpu::BufferUsages::VERTEX,
                }),
                indices: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("mesh indices"),
                    contents: bytemuck::cast_slice(&mesh.indices),
                    usage: wgpu::BufferUsages::INDEX,
                }),
                index_count: (mesh.indices.len() * 3) as u32,
            });
            self.bounds.push(ObjectBounds {
                center,
                radius,
                drawable: !mesh.indices.is_empty(),
            });
            self.meshes.push(mesh);
        }
        self.object_colors = meshes.iter().map(|(_, c)| *c).collect();
        self.visible = vec![true; meshes.len()];
        let colors = self.color_data();
        let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("mesh colours"),
            contents: bytemuck::cast_slice(&colors),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        });
        self.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("mesh bind group"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: self.uniforms.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: buffer.as_entire_binding(),
                },
            ],
        }));
        self.colors = Some(buffer);
    }

    /// Changes one object's colour/opacity without re-uploading its geometry.
    pub fn set_color(&mut self, queue: &wgpu::Queue, object: usize, color: Rgba) {
        if let Some(c) = self.object_colors.get_mut(object) {
            *c = color;
            self.write_colors(queue);
        }
    }

    /// Shows or hides one object (hidden objects are not drawn nor picked).
    pub fn set_visible(&mut self, object: usize, visible: bool) {
        if let Some(v) = self.visible.get_mut(object) {
            *v = visible;
        }
    }

    pub fn object_count(&self) -> usize {
        self.meshes.len()
    }

    fn color_data(&self) -> Vec<[f32; 4]> {
        let mut out: Vec<[f32; 4]> = self
            .object_colors
            .iter()
            .map(|c| c.0.map(|x| f32::from(x) / 255.0))
            .collect();
        // A storage binding may not be empty.
        if out.is_empty() {
            out.push([0.0; 4]);
        }
        out
    }

    fn write_colors(&self, queue: &wgpu::Queue) {
        if let Some(buffer) = &self.colors {
            queue.write_buffer(buffer, 0, bytemuck::cast_slice(&self.color_data()));
        }
    }

    /// The nearest visible surface point along `ray` (e.g. `camera.ray_through_pixel`).
    pub fn pick(&self, ray: &Ray) -> Option<PickHit> {
        pick_meshes(
            self.meshes
                .iter()
                .enumerate()
                .filter(|(i, _)| self.visible[*i] && self.object_colors[*i].0[3] > 0),
            ray,
        )
    }

    /// Renders the meshes alone into `target`, clearing colour to black and depth to far.
    pub fn render_offscreen(
        &mut self,
        ctx: &GpuContext,
        target: &OffscreenTarget,
        view: &SceneView,
    ) -> Result<(), RenderError> {
        let mut view = view.clone();
        view.viewport_px = [target.width, target.height];
        SceneDrawer::prepare(self, &ctx.queue, &view);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = begin_scene_pass(&mut encoder, target, true);
            SceneDrawer::paint(self, &mut pass);
        }
        ctx.queue.submit([encoder.finish()]);
        Ok(())
    }
}

impl SceneDrawer for MeshRenderer {
    fn prepare(&mut self, queue: &wgpu::Queue, view: &SceneView) {
        let camera = &view.camera;
        let clip = view.clip_from_world().cast::<f32>();
        let mut clip_cols = [[0.0f32; 4]; 4];
        for (c, col) in clip_cols.iter_mut().enumerate() {
            for (r, v) in col.iter_mut().enumerate() {
                *v = clip[(r, c)];
            }
        }
        let [lx, ly, lz] = self.lighting.light_from_camera;
        let light = (camera.right() * lx + camera.up() * ly + camera.eye_direction() * lz)
            .try_normalize(1e-12)
            .unwrap_or_else(|| camera.eye_direction());
        let eye = camera.eye_world();
        let to_eye = camera.eye_direction();
        let l = &self.lighting;
        let data = MeshUniforms {
            clip_from_world: clip_cols,
            eye_world: [eye.x as f32, eye.y as f32, eye.z as f32, 1.0],
            light_world: [light.x as f32, light.y as f32, light.z as f32, 0.0],
            material: [l.ambient, l.diffuse, l.specular, l.shininess.max(1.0)],
            view_dir: [
                to_eye.x as f32,
                to_eye.y as f32,
                to_eye.z as f32,
                if camera.is_orthographic() { 1.0 } else { 0.0 },
            ],
        };
        queue.write_buffer(&self.uniforms, 0, bytemuck::bytes_of(&data));
        self.order = draw_order(
            &self.bounds,
            &self.object_colors,
            &self.visible,
            eye,
            camera.forward(),
        );
    }

    fn paint(&self, pass: &mut wgpu::RenderPass<'_>) {
        let Some(bind_group) = &self.bind_group else {
            return;
        };
        pass.set_bind_group(0, bind_group, &[]);
        for &(kind, object) in &self.order {
            let mesh = &self.gpu[object];
            pass.set_pipeline(match kind {
                Pass::Opaque => &self.opaque,
                Pass::TransparentBack => &self.back,
                Pass::TransparentFront => &self.front,
            });
            pass.set_vertex_buffer(0, mesh.vertices.slice(..));
            pass.set_index_buffer(mesh.indices.slice(..), wgpu::IndexFormat::Uint32);
            let instance = object as u32;
            pass.draw_indexed(0..mesh.index_count, 0, instance..instance + 1);
        }
    }
}

/// Opaque objects, then transparent back faces by far extent, then front faces by near
/// extent, each farthest first (see the module docs).
fn draw_order(
    meshes: &[ObjectBounds],
    colors: &[Rgba],
    visible: &[bool],
    eye: Point3<f64>,
    forward: nalgebra::Vector3<f64>,
) -> Vec<(Pass, usize)> {
    let drawn = |i: &usize| visible[*i] && meshes[*i].drawable && colors[*i].0[3] > 0;
    let all: Vec<usize> = (0..meshes.len()).filter(drawn).collect();
    let depth = |i: usize| (meshes[i].center - eye).dot(&forward);
    let mut order: Vec<(Pass, usize)> = all
        .iter()
        .filter(|i| colors[**i].0[3] == 255)
        .map(|i| (Pass::Opaque, *i))
        .collect();
    let mut transparent: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| colors[*i].0[3] < 255)
        .collect();
    transparent.sort_by(|a, b| {
        let (fa, fb) = (depth(*a) + meshes[*a].radius, depth(*b) + meshes[*b].radius);
        fb.total_cmp(&fa)
    });
    order.extend(transparent.iter().map(|i| (Pass::TransparentBack, *i)));
    transparent.sort_by(|a, b| {
        let (na, nb) = (depth(*a) - meshes[*a].radius, depth(*b) - meshes[*b].radius);
        nb.total_cmp(&na)
    });
    order.extend(transparent.iter().map(|i| (Pass::TransparentFront, *i)));
    order
}

/// Centre of the bounding box and the distance to its farthest vertex.
fn bounding_sphere(mesh: &TriMesh) -> (Point3<f64>, f64) {
    let Some((lo, hi)) = mesh.bounds_mm() else {
        return (Point3::origin(), 0.0);
    };
    let c = Point3::from([0, 1, 2].map(|a| (f64::from(lo[a]) + f64::from(hi[a])) / 2.0));
    let r = mesh
        .positions_world_mm
        .iter()
        .map(|p| (Point3::from(p.map(f64::from)) - c).norm())
        .fold(0.0, f64::max);
    (c, r)
}

/// A pass over the whole target with colour and depth, cleared or kept.
pub(crate) fn begin_scene_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    target: &'e OffscreenTarget,
    clear: bool,
) -> wgpu::RenderPass<'e> {
    let (color_load, depth_load) = if clear {
        (
            wgpu::LoadOp::Clear(wgpu::Color::BLACK),
            wgpu::LoadOp::Clear(1.0),
        )
    } else {
        (wgpu::LoadOp::Load, wgpu::LoadOp::Load)
    };
    encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some("scene pass"),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view: &target.color_view,
            resolve_target: None,
            depth_slice: None,
            ops: wgpu::Operations {
                load: color_load,
                store: wgpu::StoreOp::Store,
            },
        })],
        depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
            view: &target.depth_view,
            depth_ops: Some(wgpu::Operations {
                load: depth_load,
                store: wgpu::StoreOp::Store,
            }),
            stencil_ops: None,
        }),
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::Vector3;

    #[test]
    fn nested_transparent_objects_draw_outer_back_inner_back_inner_front_outer_front() {
        let bounds = [
            ObjectBounds {
                center: Point3::origin(),
                radius: 10.0,
                drawable: true,
            },
            ObjectBounds {
                center: Point3::origin(),
                radius: 30.0,
                drawable: true,
            },
            ObjectBounds {
                center: Point3::new(0.0, 50.0, 0.0),
                radius: 5.0,
                drawable: true,
            },
        ];
        let colors = [
            Rgba([255, 0, 0, 128]),
            Rgba([0, 0, 255, 80]),
            Rgba([0, 255, 0, 255]),
        ];
        let eye = Point3::new(0.0, -100.0, 0.0);
        let order = draw_order(&bounds, &colors, &[true; 3], eye, Vector3::y());
        assert_eq!(
            order,
            vec![
                (Pass::Opaque, 2),
                (Pass::TransparentBack, 1),
                (Pass::TransparentBack, 0),
                (Pass::TransparentFront, 0),
                (Pass::TransparentFront, 1),
            ]
        );
        // Hidden or fully transparent objects are skipped.
        let order = draw_order(&bounds, &colors, &[false, true, true], eye, Vector3::y());
        assert!(order.iter().all(|(_, i)| *i != 0));
    }
}
