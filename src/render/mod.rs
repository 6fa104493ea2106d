//! GPU rendering with wgpu: the only module that knows wgpu (besides the app's window setup).
//!
//! Everything here works offscreen (for tests, the CLI and reports) and inside egui through
//! `egui_bridge.rs`, the one file that knows both. Shaders live as `.wgsl` files in `shaders/`
//! and are embedded at compile time so the binary needs nothing beside it.

pub mod camera;
pub mod colormap;
pub mod egui_bridge;
mod error;
pub mod four_view;
pub mod fusion;
mod gpu;
pub mod mesh_view;
pub mod picking;
mod picture;
pub mod png;
pub mod raycast;
pub mod slices;
pub mod transfer;
pub mod viewport_meshes;
pub mod volume_texture;

pub use camera::{volume_bounds_world, Camera, Projection, Ray, StandardView};
pub use colormap::Colormap;
pub use error::RenderError;
pub use four_view::{
    render_four_view, render_four_view_scene, render_scene, SceneDrawer, SceneView,
};
pub use fusion::{Fusion, LayerStyle, Window};
pub use gpu::{cleared_colour_pass, device_descriptor, GpuContext, OffscreenTarget, RgbaImage};
pub use mesh_view::{Lighting, MeshRenderer};
pub use picking::PickHit;
pub use png::{render_image, render_to_png, save_png, PngError};
pub use raycast::{
    ClipPlane, RaycastParams, Raycaster, RenderMode, SecondVolume, VolumeDrawer, VolumeLayer,
    MAX_CLIP_PLANES,
};
pub use slices::{LabelStyle, SliceParams, SlicePlane, SliceRenderer};
pub use transfer::{ControlPoint, TransferError, TransferFunction, ValueDomain};
pub use volume_texture::{
    plan_bricks, upload_labels, upload_volume, upload_volume_with, BrickPlan, LabelTexture,
    UploadOptions, VolumeTexture,
};

#[cfg(test)]
pub(crate) mod test_support {
    use super::GpuContext;

    /// GPU tests run wherever an adapter exists (lavapipe on CI); without one they say so and
    /// return, unless FUSEPRINT_REQUIRE_GPU is set (CI sets it), where a missing adapter fails.
    pub(crate) fn gpu_or_skip() -> Option<GpuContext> {
        match GpuContext::headless() {
            Ok(ctx) => Some(ctx),
            Err(e) if std::env::var_os("FUSEPRINT_REQUIRE_GPU").is_none() => {
                eprintln!("skipping GPU test: {e}");
                None
            }
            Err(e) => panic!("FUSEPRINT_REQUIRE_GPU is set but: {e}"),
        }
    }
}
