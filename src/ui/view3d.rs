//! The 3D quadrant: the meshes from Mesh & export and the active volume raycast on the GPU,
//! drawn with the View tab's settings through `render::egui_bridge`.

use super::theme;
use crate::document::{
    Command, Document, Projection3d, RampEdit, SceneContent, TfPoint, ViewKind, ViewSettings,
};
use crate::render::egui_bridge::{volume_callback, MeshScene, VolumeView};
use crate::render::volume_bounds_world;
use crate::render::{ControlPoint, RenderMode, TransferFunction, ValueDomain};
use crate::volume::Volume;
use egui::{Rect, Sense, Vec2};
use nalgebra::Point3;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Orbit of the 3D camera (widget state: dragging it changes nothing in the document).
#[derive(Debug, Clone, Copy, Default)]
pub struct Orbit {
    pub yaw_deg: f64,
    pub pitch_deg: f64,
}

/// What the 3D view asked the renderer for in the last frame (for the status line and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame3d {
    /// The transfer function drawn (its preset name), `None` when the volume is hidden.
    pub transfer: Option<TransferFunction>,
    pub mode: RenderMode,
    pub clip_box_world: Option<[Point3<f64>; 2]>,
    /// Meshes handed to the mesh viewer.
    pub mesh_count: usize,
}

/// Widget state of the 3D quadrant.
#[derive(Clone, Default)]
pub struct View3dState {
    pub orbit: Orbit,
    pub last_frame: Option<Frame3d>,
    meshes: Option<Arc<MeshScene>>,
}

/// The preset used when the user has not chosen one: bone on CT, T1 otherwise.
pub fn default_preset(hounsfield: bool) -> &'static str {
    if hounsfield {
        "ct-bone"
    } else {
        "mr-t1"
    }
}

/// The preset's opacity ramp in image units: its first and last control points.
pub fn preset_ramp(tf: &TransferFunction, value_range: (f32, f32)) -> RampEdit {
    let points = tf.points();
    let (first, last) = match (points.first(), points.last()) {
        (Some(a), Some(b)) => (a.value, b.value),
        _ => (0.0, 1.0),
    };
    let to_image = |v: f32| match tf.domain {
        ValueDomain::Absolute => v,
        ValueDomain::Relative => value_range.0 + v * (value_range.1 - value_range.0),
    };
    let (lo, hi) = (to_image(first), to_image(last));
    RampEdit {
        center: (lo + hi) / 2.0,
        width: (hi - lo).max(1e-3),
    }
}

/// Name of a transfer function made of hand-edited points.
pub const CUSTOM_NAME: &str = "custom";

/// `tf`'s control points in image units, for the points editor.
pub fn points_in_image_units(tf: &TransferFunction, range: (f32, f32)) -> Vec<TfPoint> {
    tf.points()
        .iter()
        .map(|p| TfPoint {
            value: match tf.domain {
                ValueDomain::Absolute => p.value,
                ValueDomain::Relative => range.0 + p.value * (range.1 - range.0),
            },
            rgb: p.rgb,
            opacity_per_mm: p.opacity_per_mm,
        })
        .collect()
}

/// The preset the settings name, else the modality's.
pub fn chosen_preset(settings: &ViewSettings, hounsfield: bool) -> Option<TransferFunction> {
    let fallback = default_preset(hounsfield);
    let name = settings.preset.as_deref().unwrap_or(fallback);
    TransferFunction::preset(name)
        .or_else(|_| TransferFunction::preset(fallback))
        .ok()
}

/// The transfer function the settings ask for on an image (CT or not, its value range): the
/// chosen preset, its control points stretched onto the edited ramp and its opacities scaled.
pub fn transfer_for(
    settings: &ViewSettings,
    hounsfield: bool,
    range: (f32, f32),
) -> Option<TransferFunction> {
    let mut tf = match settings.points.as_deref() {
        Some(points) if !points.is_empty() => TransferFunction::new(
            CUSTOM_NAME,
            ValueDomain::Absolute,
            points
                .iter()
                .map(|p| ControlPoint::new(p.value, p.rgb, p.opacity_per_mm))
                .collect(),
        )
        .ok()?,
        _ => chosen_preset(settings, hounsfield)?,
    };
    let mut points = tf.points().to_vec();
    if let Some(ramp) = settings.ramp {
        let old = preset_ramp(&tf, range);
        let (old_lo, new_lo) = (old.center - old.width / 2.0, ramp.center - ramp.width / 2.0);
        let scale = ramp.width / old.width;
        let span = (range.1 - range.0).max(1e-6);
        for p in &mut points {
            let in_image = match tf.domain {
                ValueDomain::Absolute => p.value,
                ValueDomain::Relative => range.0 + p.value * span,
            };
            let moved = new_lo + (in_image - old_lo) * scale;
            p.value = match tf.domain {
                ValueDomain::Absolute => moved,
                ValueDomain::Relative => (moved - range.0) / span,
            };
        }
    }
    for p in &mut points {
        p.opacity_per_mm = (p.opacity_per_mm * settings.opacity_scale).clamp(0.0, 1.0);
    }
    tf.set_points(points).ok()?;
    Some(tf)
}

/// The crop box of the settings in world millimetres, `None` when it keeps everything.
pub fn crop_box_world(settings: &ViewSettings, volume: &Volume<f32>) -> Option<[Point3<f64>; 2]> {
    if !settings.crops() {
        return None;
    }
    let [lo, hi] = volume_bounds_world(volume);
    let at = |a: usize, f: f32| lo[a] + (hi[a] - lo[a]) * f as f64;
    let c = &settings.crop;
    Some([
        Point3::new(at(0, c[0][0]), at(1, c[1][0]), at(2, c[2][0])),
        Point3::new(at(0, c[0][1]), at(1, c[1][1]), at(2, c[2][1])),
    ])
}

fn render_mode(projection: Projection3d) -> RenderMode {
    match projection {
        Projection3d::Composite => RenderMode::Dvr,
        Projection3d::Mip => RenderMode::Mip,
        Projection3d::MinIp => RenderMode::MinIp,
    }
}

/// The document's meshes for the renderer, rebuilt only when they or their colours change.
fn mesh_scene(doc: &Document, cached: &mut Option<Arc<MeshScene>>) -> Option<Arc<MeshScene>> {
    if doc.meshes.is_empty() {
        *cached = None;
        return None;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for m in &doc.meshes {
        (Arc::as_ptr(&m.mesh) as usize).hash(&mut hasher);
        m.color.0.hash(&mut hasher);
    }
    let key = hasher.finish();
    if cached.as_ref().map(|s| s.key) != Some(key) {
        *cached = Some(Arc::new(MeshScene {
            key,
            meshes: doc
                .meshes
                .iter()
                .map(|m| (Arc::clone(&m.mesh), m.color))
                .collect(),
        }));
    }
    cached.clone()
}

/// What the 3D view shows of `doc` from `orbit` (the four-view projection shows the same):
/// the active volume with the View tab's transfer function, and `meshes` when given.
fn scene_view(doc: &Document, meshes: Option<Arc<MeshScene>>, orbit: Orbit) -> Option<VolumeView> {
    let settings = &doc.view_settings;
    let entry = doc.active_volume()?;
    // With nothing else to show, the volume stays visible rather than a black quadrant.
    let show_volume = settings.content.shows_volume() || meshes.is_none();
    let transfer = transfer_for(settings, entry.is_hounsfield(), entry.value_range)?;
    Some(VolumeView {
        volume_id: entry.id,
        volume: Arc::clone(&entry.image) as Arc<_>,
        mode: render_mode(settings.projection),
        window: Some((
            entry.window.center - entry.window.width / 2.0,
            entry.window.center + entry.window.width / 2.0,
        )),
        clip_box_world: crop_box_world(settings, &entry.image.volume),
        show_volume,
        meshes,
        yaw_deg: orbit.yaw_deg,
        pitch_deg: orbit.pitch_deg,
        transfer,
    })
}

/// The 3D view's scene for the four-view projection, from the 3D view's current orbit.
pub fn current_scene(doc: &Document, state: &mut View3dState) -> Option<VolumeView> {
    let meshes =
        mesh_scene(doc, &mut state.meshes).filter(|_| doc.view_settings.content.shows_meshes());
    scene_view(doc, meshes, state.orbit)
}

/// Draws the 3D view into `rect`, orbited by dragging; double-click or `M` maximises it.
pub fn show(
    ui: &mut egui::Ui,
    rect: Rect,
    doc: &Document,
    state: &mut View3dState,
    commands: &mut Vec<Command>,
) {
    let response = ui.interact(rect, ui.scope_id().with("view3d"), Sense::click_and_drag());
    let orbit = &mut state.orbit;
    if response.dragged_by(egui::PointerButton::Primary) {
        let d = response.drag_delta();
        orbit.yaw_deg += d.x as f64 * 0.5;
        orbit.pitch_deg = (orbit.pitch_deg + d.y as f64 * 0.5).clamp(-89.0, 89.0);
    }
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "3D view"));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, theme::VIEW_BACKGROUND);
    state.last_frame = None;
    let settings = &doc.view_settings;
    let meshes = mesh_scene(doc, &mut state.meshes).filter(|_| settings.content.shows_meshes());
    if let Some(view) = scene_view(doc, meshes.clone(), *orbit) {
        state.last_frame = Some(Frame3d {
            transfer: view.show_volume.then(|| view.transfer.clone()),
            mode: view.mode,
            clip_box_world: view.clip_box_world,
            mesh_count: meshes.as_ref().map_or(0, |m| m.meshes.len()),
        });
        painter.add(volume_callback(rect.shrink(1.0), view));
    }
    let title = match (settings.content, meshes.is_some()) {
        (SceneContent::Volume, _) | (_, false) => "3D".to_string(),
        (content, true) => format!("3D · {}", content.name().to_lowercase()),
    };
    painter.text(
        rect.left_top() + Vec2::new(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        title,
        egui::FontId::proportional(14.0),
        theme::VIEW_TEXT,
    );
    let lines: Vec<String> = doc
        .meshes
        .iter()
        .map(|mesh| {
            format!(
                "{}: {} triangles, {:.1} ml",
                mesh.name,
                mesh.mesh.face_count(),
                mesh.volume_ml
            )
        })
        .collect();
    painter.text(
        rect.left_bottom() + Vec2::new(6.0, -4.0),
        egui::Align2::LEFT_BOTTOM,
        lines.join("\n"),
        egui::FontId::proportional(12.0),
        theme::PLACEHOLDER_TEXT,
    );
    if response.double_clicked()
        || (response.hovered()
            && ui.input(|i| i.key_pressed(egui::Key::M) && i.modifiers.is_none()))
    {
        commands.push(Command::ToggleMaximize(ViewKind::ThreeD));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::VolumeGeometry;

    const CT_RANGE: (f32, f32) = (-1024.0, 3000.0);

    #[test]
    fn ramp_edit_moves_the_preset_onto_the_new_window_and_scales_opacity() {
        let preset = TransferFunction::preset("ct-bone").expect("preset");
        let ramp = preset_ramp(&preset, CT_RANGE);
        let first = preset.points()[0].value;
        let last = preset.points()[preset.points().len() - 1].value;
        assert_eq!(ramp.center, (first + last) / 2.0);
        assert_eq!(ramp.width, last - first);
        let settings = ViewSettings {
            preset: Some("ct-bone".into()),
            ramp: Some(RampEdit {
                center: ramp.center + 100.0,
                width: ramp.width * 0.5,
            }),
            opacity_scale: 0.5,
            ..Default::default()
        };
        let tf = transfer_for(&settings, true, CT_RANGE).expect("tf");
        let moved = tf.points();
        let new_lo = ramp.center + 100.0 - ramp.width / 4.0;
        let new_hi = ramp.center + 100.0 + ramp.width / 4.0;
        assert!((moved[0].value - new_lo).abs() < 1e-3);
        assert!((moved[moved.len() - 1].value - new_hi).abs() < 1e-3);
        for (a, b) in preset.points().iter().zip(moved) {
            assert!((b.opacity_per_mm - a.opacity_per_mm * 0.5).abs() < 1e-6);
            assert_eq!(a.rgb, b.rgb);
        }
        // Untouched settings give the modality's preset itself.
        let plain = transfer_for(&ViewSettings::default(), true, CT_RANGE).expect("tf");
        assert_eq!(plain, preset);
        let mr = transfer_for(&ViewSettings::default(), false, (0.0, 800.0)).expect("tf");
        assert_eq!(mr.name, "mr-t1");
    }

    #[test]
    fn a_relative_preset_ramp_is_edited_in_image_units() {
        let range = (0.0, 800.0);
        let preset = TransferFunction::preset("mr-t1").expect("preset");
        let ramp = preset_ramp(&preset, range);
        assert!((ramp.center - 800.0 * (0.08 + 1.0) / 2.0).abs() < 1e-3);
        let settings = ViewSettings {
            preset: Some("mr-t1".into()),
            ramp: Some(RampEdit {
                center: 200.0,
                width: 200.0,
            }),
            ..Default::default()
        };
        let tf = transfer_for(&settings, false, range).expect("tf");
        let p = tf.points();
        assert!((p[0].value - 100.0 / 800.0).abs() < 1e-5, "{p:?}");
        assert!((p[p.len() - 1].value - 300.0 / 800.0).abs() < 1e-5, "{p:?}");
    }

    #[test]
    fn edited_points_replace_the_preset_and_round_trip_in_image_units() {
        let range = (0.0, 800.0);
        let t1 = TransferFunction::preset("mr-t1").expect("preset");
        let mut points = points_in_image_units(&t1, range);
        assert!((points[0].value - 0.08 * 800.0).abs() < 1e-3);
        let settings = ViewSettings {
            points: Some(points.clone()),
            ..Default::default()
        };
        let same = transfer_for(&settings, false, range).expect("tf");
        assert_eq!(same.name, CUSTOM_NAME);
        for v in [0.0, 100.0, 333.0, 700.0, 900.0] {
            let (a, b) = (same.sample(v), t1.sample(v / 800.0));
            assert!(
                (0..4).all(|c| (a[c] - b[c]).abs() < 1e-5),
                "{v}: {a:?} vs {b:?}"
            );
        }
        points[1].opacity_per_mm = 0.9;
        let settings = ViewSettings {
            points: Some(points.clone()),
            ..Default::default()
        };
        let edited = transfer_for(&settings, false, range).expect("tf");
        assert!((edited.sample(points[1].value)[3] - 0.9).abs() < 1e-6);
    }

    #[test]
    fn crop_fractions_become_a_world_box_inside_the_volume() {
        let geometry =
            VolumeGeometry::axis_aligned([10, 20, 30], [1.0, 0.5, 2.0], [5.0, -3.0, 1.0])
                .expect("geometry");
        let volume = Volume::from_fn(geometry, |_| 0.0f32);
        let [lo, hi] = volume_bounds_world(&volume);
        let mut settings = ViewSettings::default();
        assert_eq!(crop_box_world(&settings, &volume), None);
        settings.crop[2] = [0.5, 1.0];
        let [a, b] = crop_box_world(&settings, &volume).expect("box");
        assert!((a.z - (lo.z + hi.z) / 2.0).abs() < 1e-9 && (b.z - hi.z).abs() < 1e-9);
        assert!((a.x - lo.x).abs() < 1e-9 && (b.y - hi.y).abs() < 1e-9);
        assert!((hi.z - lo.z - 60.0).abs() < 1e-9, "{lo} {hi}");
    }
}
