//! Scenes drawn from a camera, and the four-view projection for Pepper's-ghost pyramids.
//!
//! Any 3D drawer (the mesh viewer, a volume raycaster) implements [`SceneDrawer`]; a
//! [`SceneView`] tells it the camera, the viewport and how many quarter turns to rotate the
//! picture on screen (the four-view needs rotated copies).
//!
//! Four-view layout (a square canvas of side `S`, cells of side `S/3`, black centre):
//! ```text
//!            [ back, upright        ]
//! [ left, top→left ] [ black ] [ right, top→right ]
//!            [ front, upside down   ]
//! ```
//! Each picture's top points away from the centre, as pyramid displays need (the pyramid
//! face above each cell reflects it upright). The cell below the centre shows the camera's own
//! view; going counter-clockwise round the screen (bottom → right → top → left) the camera
//! orbits a further 90° each time about the vertical (superior) axis through its target, so a
//! viewer walking round the pyramid walks round the object. `rotation_deg` turns all four
//! together for the rotating animation. Pictures are not mirrored.

use nalgebra::Matrix4;

use super::mesh_view::begin_scene_pass;
use super::{Camera, GpuContext, OffscreenTarget, RenderError};

/// One view of a scene: a camera, a viewport, and an on-screen rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneView {
    pub camera: Camera,
    pub viewport_px: [u32; 2],
    /// Counter-clockwise quarter turns of the picture within its viewport.
    pub quarter_turns: u32,
}

impl SceneView {
    pub fn new(camera: Camera, viewport_px: [u32; 2]) -> Self {
        Self {
            camera,
            viewport_px,
            quarter_turns: 0,
        }
    }

    /// Width over height of the picture before its rotation.
    pub fn camera_aspect(&self) -> f64 {
        let [w, h] = self.viewport_px.map(|n| f64::from(n.max(1)));
        if self.quarter_turns % 2 == 1 {
            h / w
        } else {
            w / h
        }
    }

    /// The camera's projection followed by the on-screen rotation; what drawers must use.
    pub fn clip_from_world(&self) -> Matrix4<f64> {
        screen_rotation(self.quarter_turns) * self.camera.clip_from_world(self.camera_aspect())
    }

    pub fn world_from_clip(&self) -> Matrix4<f64> {
        self.clip_from_world()
            .try_inverse()
            .unwrap_or_else(Matrix4::identity)
    }
}

/// Counter-clockwise rotation of normalised device x/y by quarter turns.
fn screen_rotation(quarter_turns: u32) -> Matrix4<f64> {
    let (c, s) = match quarter_turns % 4 {
        0 => (1.0, 0.0),
        1 => (0.0, 1.0),
        2 => (-1.0, 0.0),
        _ => (0.0, -1.0),
    };
    let mut m = Matrix4::identity();
    m[(0, 0)] = c;
    m[(0, 1)] = -s;
    m[(1, 0)] = s;
    m[(1, 1)] = c;
    m
}

/// Something that draws itself in 3D for a [`SceneView`]: the mesh viewer, a raycaster.
/// `prepare` writes this view's uniforms; `paint` draws into a pass with a colour target and
/// a `Depth32Float` depth attachment.
pub trait SceneDrawer {
    fn prepare(&mut self, queue: &wgpu::Queue, view: &SceneView);
    fn paint(&self, pass: &mut wgpu::RenderPass<'_>);

    /// True for drawers that do not depth-test but read the finished depth of what was drawn
    /// before them (the raycaster, [`VolumeDrawer`](super::VolumeDrawer), stops its rays at
    /// mesh surfaces). [`render_scene`] paints them in a second pass whose depth attachment is
    /// read-only, after handing them the depth texture through [`Self::read_depth`].
    fn reads_depth(&self) -> bool {
        false
    }

    /// The scene's depth texture, given before `prepare` to drawers that [`Self::reads_depth`].
    fn read_depth(&mut self, _depth: &wgpu::TextureView) {}
}

/// Which cell of the pyramid layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyramidCell {
    Bottom,
    Right,
    Top,
    Left,
}

/// Where each cell sits on the canvas and how it is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellPlacement {
    pub cell: PyramidCell,
    /// `[x, y, width, height]` in canvas pixels, y down.
    pub rect_px: [u32; 4],
    pub quarter_turns: u32,
    /// Extra camera orbit about the vertical axis for this cell, degrees.
    pub yaw_offset_deg: f64,
}

/// The four cells for a canvas; cells are squares of side `min(width, height) / 3` around
/// the canvas centre.
pub fn pyramid_layout(canvas_px: [u32; 2]) -> [CellPlacement; 4] {
    let [w, h] = canvas_px;
    let s = w.min(h) / 3;
    let (cx, cy) = (w / 2, h / 2);
    let left = cx.saturating_sub(s / 2);
    let top = cy.saturating_sub(s / 2);
    let place = |cell, x, y, quarter_turns, yaw_offset_deg| CellPlacement {
        cell,
        rect_px: [x, y, s, s],
        quarter_turns,
        yaw_offset_deg,
    };
    // Camera yaw grows clockwise seen from above; the cells go counter-clockwise, so each
    // next cell orbits by -90°.
    [
        place(PyramidCell::Bottom, left, top + s, 2, 0.0),
        place(PyramidCell::Right, left + s, top, 3, -90.0),
        place(PyramidCell::Top, left, top.saturating_sub(s), 0, -180.0),
        place(PyramidCell::Left, left.saturating_sub(s), top, 1, -270.0),
    ]
}

/// Renders `drawer` four times into `target` in the pyramid layout (black elsewhere).
/// Each cell is its own submission because drawers keep one set of uniforms.
pub fn render_four_view(
    ctx: &GpuContext,
    target: &OffscreenTarget,
    drawer: &mut dyn SceneDrawer,
    camera: &Camera,
    rotation_deg: f64,
) -> Result<(), RenderError> {
    render_four_view_scene(ctx, target, &mut [drawer], camera, rotation_deg)
}

/// [`render_four_view`] of several drawers: in each cell the depth-testing ones (meshes),
/// then those that read their depth (a [`VolumeDrawer`](super::VolumeDrawer)), as in
/// [`render_scene`].
pub fn render_four_view_scene(
    ctx: &GpuContext,
    target: &OffscreenTarget,
    drawers: &mut [&mut dyn SceneDrawer],
    camera: &Camera,
    rotation_deg: f64,
) -> Result<(), RenderError> {
    let cells = pyramid_layout([target.width, target.height]);
    if cells[0].rect_px[2] == 0 {
        return Err(RenderError::Empty(format!(
            "a {}×{} canvas is too small for four views",
            target.width, target.height
        )));
    }
    for drawer in drawers.iter_mut().filter(|d| d.reads_depth()) {
        drawer.read_depth(&target.depth_view);
    }
    let any_reader = drawers.iter().any(|d| d.reads_depth());
    for (i, cell) in cells.iter().enumerate() {
        let mut cam = *camera;
        cam.orbit(rotation_deg + cell.yaw_offset_deg, 0.0);
        let [x, y, w, h] = cell.rect_px;
        let view = SceneView {
            camera: cam,
            viewport_px: [w, h],
            quarter_turns: cell.quarter_turns,
        };
        for drawer in drawers.iter_mut() {
            drawer.prepare(&ctx.queue, &view);
        }
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            // Depth starts afresh in every cell: each is a scene of its own.
            let mut pass = begin_cell_pass(&mut encoder, target, i == 0);
            pass.set_viewport(x as f32, y as f32, w as f32, h as f32, 0.0, 1.0);
            pass.set_scissor_rect(x, y, w, h);
            for drawer in drawers.iter().filter(|d| !d.reads_depth()) {
                drawer.paint(&mut pass);
            }
        }
        if any_reader {
            let mut pass = begin_depth_reading_pass(
                &mut encoder,
                &target.color_view,
                Some(&target.depth_view),
            );
            pass.set_viewport(x as f32, y as f32, w as f32, h as f32, 0.0, 1.0);
            pass.set_scissor_rect(x, y, w, h);
            for drawer in drawers.iter().filter(|d| d.reads_depth()) {
                drawer.paint(&mut pass);
            }
        }
        ctx.queue.submit([encoder.finish()]);
    }
    Ok(())
}

/// A pass over the whole target: colour cleared to black (first cell) or kept, depth cleared.
fn begin_cell_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    target: &'e OffscreenTarget,
    clear_colour: bool,
) -> wgpu::RenderPass<'e> {
    encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some("four-view cell"),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view: &target.color_view,
            resolve_target: None,
            depth_slice: None,
            ops: wgpu::Operations {
                load: if clear_colour {
                    wgpu::LoadOp::Clear(wgpu::Color::BLACK)
                } else {
                    wgpu::LoadOp::Load
                },
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
    })
}

/// Renders several drawers into one view of `target`, clearing first: the depth-testing ones
/// (meshes) in order, then those that read depth (a [`VolumeDrawer`](super::VolumeDrawer)),
/// whose rays stop at the meshes' surfaces and blend over them.
pub fn render_scene(
    ctx: &GpuContext,
    target: &OffscreenTarget,
    drawers: &mut [&mut dyn SceneDrawer],
    camera: &Camera,
) -> Result<(), RenderError> {
    let view = SceneView::new(*camera, [target.width, target.height]);
    for drawer in drawers.iter_mut() {
        if drawer.reads_depth() {
            drawer.read_depth(&target.depth_view);
        }
        drawer.prepare(&ctx.queue, &view);
    }
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    {
        let mut pass = begin_scene_pass(&mut encoder, target, true);
        for drawer in drawers.iter().filter(|d| !d.reads_depth()) {
            drawer.paint(&mut pass);
        }
    }
    if drawers.iter().any(|d| d.reads_depth()) {
        let mut pass =
            begin_depth_reading_pass(&mut encoder, &target.color_view, Some(&target.depth_view));
        for drawer in drawers.iter().filter(|d| d.reads_depth()) {
            drawer.paint(&mut pass);
        }
    }
    ctx.queue.submit([encoder.finish()]);
    Ok(())
}

/// A pass that keeps `color` and attaches `depth` read-only, so drawers may sample it.
pub(crate) fn begin_depth_reading_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    color: &'e wgpu::TextureView,
    depth: Option<&'e wgpu::TextureView>,
) -> wgpu::RenderPass<'e> {
    encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some("depth-reading pass"),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view: color,
            resolve_target: None,
            depth_slice: None,
            ops: wgpu::Operations {
                load: wgpu::LoadOp::Load,
                store: wgpu::StoreOp::Store,
            },
        })],
        depth_stencil_attachment: depth.map(|view| wgpu::RenderPassDepthStencilAttachment {
            view,
            depth_ops: None,
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
    use nalgebra::Vector4;

    #[test]
    fn quarter_turn_moves_the_right_edge_to_the_top() {
        let r = screen_rotation(1);
        let p = r * Vector4::new(1.0, 0.0, 0.5, 1.0);
        assert!((p - Vector4::new(0.0, 1.0, 0.5, 1.0)).norm() < 1e-12);
        assert!((screen_rotation(4) - Matrix4::identity()).norm() < 1e-12);
    }

    #[test]
    fn cells_surround_a_free_centre_without_overlap() {
        let cells = pyramid_layout([300, 300]);
        let centre = [100u32, 100, 100, 100];
        let overlap = |a: [u32; 4], b: [u32; 4]| {
            a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]
        };
        for (i, a) in cells.iter().enumerate() {
            assert!(!overlap(a.rect_px, centre), "{:?}", a.cell);
            for b in &cells[i + 1..] {
                assert!(!overlap(a.rect_px, b.rect_px));
            }
        }
        assert_eq!(cells[0].rect_px, [100, 200, 100, 100]);
        assert_eq!(cells[2].rect_px, [100, 0, 100, 100]);
        assert_eq!(cells[1].rect_px, [200, 100, 100, 100]);
        assert_eq!(cells[3].rect_px, [0, 100, 100, 100]);
    }
}
