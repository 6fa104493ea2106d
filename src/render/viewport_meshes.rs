//! Meshes (and a volume among them) inside a render pass that has no depth attachment
//! (the window's, whose depth buffer a paint callback cannot read): the mesh viewer draws into an
//! offscreen colour + depth target of the viewport's size, the raycaster then marches each ray
//! up to the meshes' depth and blends the volume in front of them over their colour, and that
//! picture is laid onto the viewport with premultiplied-alpha blending.

use super::four_view::{begin_depth_reading_pass, SceneDrawer, SceneView};
use super::mesh_view::{MeshRenderer, MESH_DEPTH_FORMAT};
use super::picture::{picture_bind_group, picture_pipeline, picture_texture};
use super::raycast::{RaycastParams, Raycaster};
use crate::volume::{Rgba, TriMesh};

struct Target {
    size: [u32; 2],
    color_view: wgpu::TextureView,
    depth_view: wgpu::TextureView,
    bind_group: wgpu::BindGroup,
}

/// The mesh viewer plus its offscreen target and the pass that copies it onto a viewport.
pub struct ViewportMeshes {
    renderer: MeshRenderer,
    scene_key: Option<u64>,
    target: Option<Target>,
    blit: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    format: wgpu::TextureFormat,
}

impl ViewportMeshes {
    /// For passes whose colour target is `format` (the window's `target_format`).
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> Self {
        let (layout, blit) = picture_pipeline(
            device,
            "viewport meshes blit",
            wgpu::ShaderModuleDescriptor {
                label: Some("blit.wgsl"),
                source: wgpu::ShaderSource::Wgsl(include_str!("../../shaders/blit.wgsl").into()),
            },
            format,
            Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
        );
        Self {
            renderer: MeshRenderer::new(device, format, MESH_DEPTH_FORMAT),
            scene_key: None,
            target: None,
            blit,
            layout,
            format,
        }
    }

    /// Uploads `meshes` unless `scene_key` says they are the ones already uploaded.
    pub fn set_meshes(
        &mut self,
        device: &wgpu::Device,
        scene_key: u64,
        meshes: &[(&TriMesh, Rgba)],
    ) {
        if self.scene_key != Some(scene_key) {
            self.renderer.set_meshes(device, meshes);
            self.scene_key = Some(scene_key);
        }
    }

    fn ensure_target(&mut self, device: &wgpu::Device, size: [u32; 2]) {
        if self.target.as_ref().is_some_and(|t| t.size == size) {
            return;
        }
        let color_view = picture_texture(device, "viewport meshes colour", size, self.format)
            .create_view(&Default::default());
        let depth_view = picture_texture(device, "viewport meshes depth", size, MESH_DEPTH_FORMAT)
            .create_view(&Default::default());
        let bind_group =
            picture_bind_group(device, "viewport meshes blit", &self.layout, &color_view);
        self.target = Some(Target {
            size,
            color_view,
            depth_view,
            bind_group,
        });
    }

    /// Records the offscreen mesh pass for `view` (its viewport size is the target's size);
    /// run it before the pass [`Self::paint`] draws into.
    pub fn render(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        view: &SceneView,
    ) {
        self.render_with_volume(device, queue, encoder, view, None);
    }

    /// [`Self::render`], then `volume` raycast into the same picture with its rays stopped
    /// at the meshes (the raycaster must target this viewport's colour format; its camera is
    /// `view`'s).
    pub fn render_with_volume(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        view: &SceneView,
        volume: Option<(&mut Raycaster, &RaycastParams<'_>)>,
    ) {
        let size = view.viewport_px.map(|n| n.clamp(1, 8192));
        self.ensure_target(device, size);
        SceneDrawer::prepare(&mut self.renderer, queue, view);
        let Some(target) = &self.target else {
            return;
        };
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("viewport meshes"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &target.color_view,
                resolve_target: None,
                depth_slice: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: &target.depth_view,
                depth_ops: Some(wgpu::Operations {
                    load: wgpu::LoadOp::Clear(1.0),
                    store: wgpu::StoreOp::Store,
                }),
                stencil_ops: None,
            }),
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        SceneDrawer::paint(&self.renderer, &mut pass);
        drop(pass);
        let Some((raycaster, params)) = volume else {
            return;
        };
        let mut params = params.clone();
        params.camera = view.camera;
        raycaster.prepare_view(
            device,
            queue,
            &params,
            Some(view.world_from_clip()),
            size,
            Some(&target.depth_view),
        );
        // Depth goes along read-only when the raycaster's pipeline expects an attachment.
        let depth =
            (raycaster.depth_format() == Some(MESH_DEPTH_FORMAT)).then_some(&target.depth_view);
        let mut pass = begin_depth_reading_pass(encoder, &target.color_view, depth);
        raycaster.paint(&mut pass);
    }

    /// Lays the last rendered picture over the pass's current viewport.
    pub fn paint(&self, pass: &mut wgpu::RenderPass<'_>) {
        let Some(target) = &self.target else {
            return;
        };
        pass.set_pipeline(&self.blit);
        pass.set_bind_group(0, &target.bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
}
