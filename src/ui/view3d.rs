//! The 3D quadrant. Everything that draws it goes through [`show`], so the GPU raycaster and
//! mesh viewer (in `render`) replace the placeholder here and nowhere else.

use super::theme;
use crate::document::{Command, Document, ViewKind};
use crate::render::egui_bridge::{volume_callback, VolumeView};
use egui::{Rect, Sense, Vec2};
use std::sync::Arc;

/// Orbit of the 3D camera (widget state: dragging it changes nothing in the document).
#[derive(Debug, Clone, Copy, Default)]
pub struct Orbit {
    pub yaw_deg: f64,
    pub pitch_deg: f64,
}

/// Draws the 3D view into `rect`: the active volume raycast on the GPU (when the window has
/// a wgpu renderer), orbited by dragging; double-click or `M` maximises it.
pub fn show(
    ui: &mut egui::Ui,
    rect: Rect,
    doc: &Document,
    orbit: &mut Orbit,
    commands: &mut Vec<Command>,
) {
    let response = ui.interact(rect, ui.scope_id().with("view3d"), Sense::click_and_drag());
    if response.dragged_by(egui::PointerButton::Primary) {
        let d = response.drag_delta();
        orbit.yaw_deg += d.x as f64 * 0.5;
        orbit.pitch_deg = (orbit.pitch_deg + d.y as f64 * 0.5).clamp(-89.0, 89.0);
    }
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "3D view"));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, theme::VIEW_BACKGROUND);
    painter.text(
        rect.left_top() + Vec2::new(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        "3D",
        egui::FontId::proportional(14.0),
        theme::VIEW_TEXT,
    );
    if let Some(entry) = doc.active_volume() {
        let view = VolumeView {
            volume_id: entry.id,
            volume: Arc::clone(&entry.image) as Arc<_>,
            preset: if entry.is_hounsfield() {
                "ct-bone"
            } else {
                "mr-t1"
            },
            yaw_deg: orbit.yaw_deg,
            pitch_deg: orbit.pitch_deg,
        };
        painter.add(volume_callback(rect.shrink(1.0), view));
    }
    let mut lines = Vec::new();
    if !doc.meshes.is_empty() {
        for mesh in &doc.meshes {
            lines.push(format!(
                "{}: {} triangles, {:.1} ml",
                mesh.name,
                mesh.mesh.face_count(),
                mesh.volume_ml
            ));
        }
    }
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
