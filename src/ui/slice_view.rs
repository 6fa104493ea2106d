//! One slice viewport: the CPU-sampled image, the linked crosshair and mouse interaction.

use super::theme;
use crate::document::slice::sample_slice;
use crate::document::{Command, Document, SlicePlane, ViewAxis, ViewState, WindowLevel};
use egui::{Color32, Pos2, Rect, Sense, Stroke, TextureHandle, TextureOptions, Vec2};
use nalgebra::Point3;

/// What lies under the mouse, for the status bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hover {
    pub world: [f64; 3],
    pub value: Option<f32>,
}

/// Last sampled slice and its texture; resampled only when the plane or the volume changes,
/// recoloured only when the window changes.
#[derive(Default)]
pub struct SliceViewCache {
    samples_key: Option<(u64, SlicePlane)>,
    samples: Vec<f32>,
    overlay_key: Option<(u64, SlicePlane)>,
    overlay_samples: Vec<f32>,
    texture_key: Option<TextureKey>,
    texture: Option<TextureHandle>,
}

/// Everything the slice texture's colours depend on.
#[derive(Debug, Clone, PartialEq)]
struct TextureKey {
    volume_id: u64,
    plane: SlicePlane,
    window: [u32; 2],
    overlay: Option<(u64, [u32; 2], u32)>,
}

fn window_bits(w: &WindowLevel) -> [u32; 2] {
    [w.center.to_bits(), w.width.to_bits()]
}

impl SliceViewCache {
    fn texture_for(
        &mut self,
        ctx: &egui::Context,
        doc: &Document,
        plane: &SlicePlane,
    ) -> Option<&TextureHandle> {
        let entry = doc.active_volume()?;
        let samples_key = (entry.id, plane.clone());
        if self.samples_key.as_ref() != Some(&samples_key) {
            self.samples = sample_slice(&entry.image.volume, plane);
            self.samples_key = Some(samples_key);
        }
        let overlay = doc.visible_overlay();
        if let Some((over, _)) = overlay {
            let key = (over.id, plane.clone());
            if self.overlay_key.as_ref() != Some(&key) {
                self.overlay_samples = sample_slice(&over.image.volume, plane);
                self.overlay_key = Some(key);
            }
        }
        let texture_key = TextureKey {
            volume_id: entry.id,
            plane: plane.clone(),
            window: window_bits(&entry.window),
            overlay: overlay.map(|(o, opacity)| (o.id, window_bits(&o.window), opacity.to_bits())),
        };
        if self.texture_key.as_ref() != Some(&texture_key) || self.texture.is_none() {
            let blend = overlay.map(|(o, opacity)| (&self.overlay_samples[..], o.window, opacity));
            let image = slice_image(&self.samples, plane, &entry.window, blend);
            match &mut self.texture {
                Some(t) => t.set(image, TextureOptions::LINEAR),
                None => {
                    self.texture = Some(ctx.load_texture(
                        format!("slice-{}", plane.axis.name()),
                        image,
                        TextureOptions::LINEAR,
                    ))
                }
            }
            self.texture_key = Some(texture_key);
        }
        self.texture.as_ref()
    }
}

/// Grey slice, optionally with a second volume blended on top in a "hot" colour map.
fn slice_image(
    samples: &[f32],
    plane: &SlicePlane,
    window: &WindowLevel,
    overlay: Option<(&[f32], WindowLevel, f32)>,
) -> egui::ColorImage {
    let pixels = samples
        .iter()
        .enumerate()
        .map(|(n, &v)| {
            let base = window.grey(v).unwrap_or(0.0);
            let mut rgb = [base; 3];
            if let Some((over, over_window, opacity)) = overlay {
                if let Some(g) = over.get(n).and_then(|&o| over_window.grey(o)) {
                    let hot = [
                        (3.0 * g).min(1.0),
                        (3.0 * g - 1.0).clamp(0.0, 1.0),
                        (3.0 * g - 2.0).clamp(0.0, 1.0),
                    ];
                    for c in 0..3 {
                        rgb[c] = rgb[c] * (1.0 - opacity) + hot[c] * opacity;
                    }
                }
            }
            let [r, g, b] = rgb.map(|c| (c * 255.0).round() as u8);
            Color32::from_rgb(r, g, b)
        })
        .collect();
    egui::ColorImage::new([plane.width_px, plane.height_px], pixels)
}

/// Where the slice image lands on screen: fitted into `view_rect` keeping square millimetres,
/// scaled by the view's zoom and shifted by its pan.
pub fn image_rect(view_rect: Rect, plane: &SlicePlane, view: &ViewState) -> Rect {
    let fit = (view_rect.width() / plane.width_px as f32)
        .min(view_rect.height() / plane.height_px as f32);
    let points_per_pixel = fit * view.zoom;
    let size = Vec2::new(
        plane.width_px as f32 * points_per_pixel,
        plane.height_px as f32 * points_per_pixel,
    );
    let points_per_mm = points_per_pixel as f64 / plane.pixel_mm;
    let pan = Vec2::new(
        (view.pan_mm[0] * points_per_mm) as f32,
        (view.pan_mm[1] * points_per_mm) as f32,
    );
    Rect::from_center_size(view_rect.center() + pan, size)
}

fn world_at_screen(plane: &SlicePlane, image: Rect, pos: Pos2) -> Point3<f64> {
    let px = (pos.x - image.min.x) as f64 / image.width() as f64 * plane.width_px as f64;
    let py = (pos.y - image.min.y) as f64 / image.height() as f64 * plane.height_px as f64;
    plane.world_at_pixel(px, py)
}

fn screen_of_world(plane: &SlicePlane, image: Rect, p: &Point3<f64>) -> Pos2 {
    let (px, py) = plane.pixel_of_world(p);
    Pos2::new(
        image.min.x + (px / plane.width_px as f64) as f32 * image.width(),
        image.min.y + (py / plane.height_px as f64) as f32 * image.height(),
    )
}

/// Draws one view into `rect` and turns its mouse input into commands.
pub fn slice_view_ui(
    ui: &mut egui::Ui,
    rect: Rect,
    doc: &Document,
    axis: ViewAxis,
    cache: &mut SliceViewCache,
    hover: &mut Option<Hover>,
    commands: &mut Vec<Command>,
) {
    let response = ui.interact(
        rect,
        ui.scope_id().with(("slice_view", axis.index())),
        Sense::click_and_drag(),
    );
    let label = format!("{} view", axis.name());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &label));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, theme::VIEW_BACKGROUND);
    let draw_title = |painter: &egui::Painter| {
        painter.text(
            rect.left_top() + Vec2::new(6.0, 4.0),
            egui::Align2::LEFT_TOP,
            axis.name(),
            egui::FontId::proportional(14.0),
            theme::accent(axis),
        );
    };

    let (Some(entry), Some(plane)) = (doc.active_volume(), doc.slice_plane(axis)) else {
        draw_title(&painter);
        return;
    };
    let view = doc.views[axis.index()];
    let image = image_rect(rect, &plane, &view);
    if let Some(texture) = cache.texture_for(ui.ctx(), doc, &plane) {
        let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
        painter.image(texture.id(), image, uv, Color32::WHITE);
    }
    draw_crosshair(&painter, rect, &plane, image, doc, axis);
    draw_edge_letters(&painter, rect, axis);
    draw_title(&painter);
    let depth_mm = doc.cursor_point().coords.dot(&axis.normal_world());
    painter.text(
        rect.left_bottom() + Vec2::new(6.0, -4.0),
        egui::Align2::LEFT_BOTTOM,
        format!("{depth_mm:.1} mm · zoom {:.2}", view.zoom),
        egui::FontId::proportional(12.0),
        theme::VIEW_TEXT,
    );

    // Hover read-out.
    if let Some(pos) = response.hover_pos() {
        let world = world_at_screen(&plane, image, pos);
        let active = doc.active.unwrap_or(0);
        *hover = Some(Hover {
            world: [world.x, world.y, world.z],
            value: doc.value_at(active, world),
        });
    }

    let shift = ui.input(|i| i.modifiers.shift);
    if let Some(pos) = response.interact_pointer_pos() {
        let primary = response.clicked() || response.dragged_by(egui::PointerButton::Primary);
        if primary && !shift && image.contains(pos) {
            let world = world_at_screen(&plane, image, pos);
            commands.push(Command::SetCursor([world.x, world.y, world.z]));
        }
    }
    if response.dragged_by(egui::PointerButton::Primary) && shift {
        let delta = response.drag_delta();
        let w = entry.window;
        // A full view's drag changes the width by its own size and moves the level by a width.
        let width =
            (w.width * (1.0 + delta.x / rect.width().max(1.0) * 2.0)).max(WindowLevel::MIN_WIDTH);
        let center = w.center - delta.y / rect.height().max(1.0) * w.width;
        commands.push(Command::SetWindowLevel {
            volume: doc.active.unwrap_or(0),
            window: WindowLevel::new(center, width),
        });
    }
    if response.dragged_by(egui::PointerButton::Secondary) {
        let dy = response.drag_delta().y;
        if dy != 0.0 {
            commands.push(Command::Zoom {
                axis,
                factor: (-dy * 0.01).exp(),
            });
        }
    }
    if response.dragged_by(egui::PointerButton::Middle) {
        let delta = response.drag_delta();
        let mm_per_point = plane.pixel_mm * plane.width_px as f64 / image.width().max(1.0) as f64;
        commands.push(Command::Pan {
            axis,
            delta_mm: [delta.x as f64 * mm_per_point, delta.y as f64 * mm_per_point],
        });
    }
    if response.hovered() {
        wheel_commands(ui, axis, commands);
        if ui.memory(|m| m.focused().is_none()) {
            key_commands(ui, axis, commands);
        }
    }
}

/// Wheel: one slice per notch; Ctrl (or Cmd) + wheel: zoom.
fn wheel_commands(ui: &egui::Ui, axis: ViewAxis, commands: &mut Vec<Command>) {
    ui.input(|i| {
        for event in &i.events {
            if let egui::Event::MouseWheel {
                delta, modifiers, ..
            } = event
            {
                if delta.y == 0.0 {
                    continue;
                }
                if modifiers.command || modifiers.ctrl {
                    let factor = if delta.y > 0.0 { 1.15 } else { 1.0 / 1.15 };
                    commands.push(Command::Zoom { axis, factor });
                } else {
                    let steps = if delta.y > 0.0 { 1 } else { -1 };
                    commands.push(Command::ScrollSlice { axis, steps });
                }
            }
        }
    });
}

/// Arrow up/down and Page Up/Down step slices in the view under the mouse (as in most
/// viewers), unless a text field or slider has the keyboard.
fn key_commands(ui: &egui::Ui, axis: ViewAxis, commands: &mut Vec<Command>) {
    use egui::Key;
    let steps = ui.input(|i| {
        let count = |key| i.num_presses(key) as i32;
        count(Key::ArrowUp) - count(Key::ArrowDown)
            + 10 * (count(Key::PageUp) - count(Key::PageDown))
    });
    if steps != 0 {
        commands.push(Command::ScrollSlice { axis, steps });
    }
}

fn draw_crosshair(
    painter: &egui::Painter,
    rect: Rect,
    plane: &SlicePlane,
    image: Rect,
    doc: &Document,
    axis: ViewAxis,
) {
    let centre = screen_of_world(plane, image, &doc.cursor_point());
    // The vertical line is the plane of the view whose normal is this view's "right" axis.
    let [vertical_axis, horizontal_axis] = match axis {
        ViewAxis::Axial => [ViewAxis::Sagittal, ViewAxis::Coronal],
        ViewAxis::Coronal => [ViewAxis::Sagittal, ViewAxis::Axial],
        ViewAxis::Sagittal => [ViewAxis::Coronal, ViewAxis::Axial],
    };
    let gap = 8.0;
    let v = Stroke::new(1.0, theme::accent(vertical_axis));
    let h = Stroke::new(1.0, theme::accent(horizontal_axis));
    painter.line_segment(
        [
            Pos2::new(centre.x, rect.top()),
            Pos2::new(centre.x, centre.y - gap),
        ],
        v,
    );
    painter.line_segment(
        [
            Pos2::new(centre.x, centre.y + gap),
            Pos2::new(centre.x, rect.bottom()),
        ],
        v,
    );
    painter.line_segment(
        [
            Pos2::new(rect.left(), centre.y),
            Pos2::new(centre.x - gap, centre.y),
        ],
        h,
    );
    painter.line_segment(
        [
            Pos2::new(centre.x + gap, centre.y),
            Pos2::new(rect.right(), centre.y),
        ],
        h,
    );
}

fn draw_edge_letters(painter: &egui::Painter, rect: Rect, axis: ViewAxis) {
    let [left, right, top, bottom] = axis.edge_letters();
    let font = egui::FontId::proportional(14.0);
    let colour = theme::VIEW_TEXT;
    let m = 6.0;
    painter.text(
        Pos2::new(rect.left() + m, rect.center().y),
        egui::Align2::LEFT_CENTER,
        left,
        font.clone(),
        colour,
    );
    painter.text(
        Pos2::new(rect.right() - m, rect.center().y),
        egui::Align2::RIGHT_CENTER,
        right,
        font.clone(),
        colour,
    );
    painter.text(
        Pos2::new(rect.center().x, rect.top() + m),
        egui::Align2::CENTER_TOP,
        top,
        font.clone(),
        colour,
    );
    painter.text(
        Pos2::new(rect.center().x, rect.bottom() - m),
        egui::Align2::CENTER_BOTTOM,
        bottom,
        font,
        colour,
    );
}
