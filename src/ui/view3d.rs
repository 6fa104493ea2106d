//! The 3D quadrant. Everything that draws it goes through [`show`], so the GPU raycaster and
//! mesh viewer (in `render`) replace the placeholder here and nowhere else.

use super::theme;
use crate::document::{Command, Document, ViewKind};
use egui::{Rect, Sense, Vec2};

/// Draws the 3D view into `rect`; double-click or `M` maximises it.
pub fn show(ui: &mut egui::Ui, rect: Rect, doc: &Document, commands: &mut Vec<Command>) {
    let response = ui.interact(rect, ui.scope_id().with("view3d"), Sense::click());
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
    let mut lines = vec!["3D rendering arrives with the GPU renderer.".to_string()];
    if doc.meshes.is_empty() {
        lines.push("Build meshes (Mesh & export) to list the parts here.".to_string());
    } else {
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
        rect.center(),
        egui::Align2::CENTER_CENTER,
        lines.join("\n"),
        egui::FontId::proportional(13.0),
        theme::PLACEHOLDER_TEXT,
    );
    if response.double_clicked()
        || (response.hovered()
            && ui.input(|i| i.key_pressed(egui::Key::M) && i.modifiers.is_none()))
    {
        commands.push(Command::ToggleMaximize(ViewKind::ThreeD));
    }
}
