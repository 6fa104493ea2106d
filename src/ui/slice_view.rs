//! One slice viewport: the CPU-sampled image, the linked crosshair and mouse interaction.

use super::theme;
use crate::document::slice::slice_step_mm;
use crate::document::slice::{sample_labels, sample_slice, sample_slice_mapped};
use crate::document::{
    Command, Document, Edit, LabelLayer, MeasureTool, Measurement, MeasurementKind, QaMode, Region,
    RegionShape, SliceFusion, SlicePlane, Tool, ViewAxis, ViewKind, ViewState, WindowLevel,
};
use egui::{Color32, Pos2, Rect, Sense, Stroke, TextureHandle, TextureOptions, Vec2};
use nalgebra::Point3;
use std::sync::Arc;

/// What lies under the mouse, for the status bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hover {
    pub world: [f64; 3],
    pub value: Option<f32>,
}

/// Last sampled slices and their texture; resampled only when the plane or the data change,
/// recoloured when anything drawn changes (the document revision).
#[derive(Default)]
pub struct SliceViewCache {
    samples_key: Option<(u64, SlicePlane)>,
    samples: Vec<f32>,
    overlay_key: Option<(u64, SlicePlane, [u64; 16])>,
    overlay_samples: Vec<f32>,
    labels_key: Option<(u64, SlicePlane)>,
    label_samples: Vec<u16>,
    reference_key: Option<(u64, SlicePlane)>,
    reference_samples: Vec<f32>,
    confidence_key: Option<(usize, SlicePlane)>,
    confidence_samples: Vec<f32>,
    texture_key: Option<(u64, SlicePlane)>,
    texture: Option<TextureHandle>,
    /// The brush stroke or scissors lasso being drawn (world points on this view's plane).
    gesture: Vec<Point3<f64>>,
    /// Clicks of the distance or angle being placed, and the tool they belong to.
    measure_points: Vec<Point3<f64>>,
    measure_tool: Option<MeasureTool>,
    /// Start and current corner of a region drag.
    measure_drag: Option<(Point3<f64>, Point3<f64>)>,
}

fn matrix_bits(m: &Option<nalgebra::Matrix4<f64>>) -> [u64; 16] {
    let mut out = [0u64; 16];
    if let Some(m) = m {
        for (o, v) in out.iter_mut().zip(m.iter()) {
            *o = v.to_bits();
        }
    }
    out
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
            let index = doc
                .volumes
                .iter()
                .position(|v| v.id == over.id)
                .unwrap_or(0);
            let transform = doc.overlay_transform(index);
            let key = (over.id, plane.clone(), matrix_bits(&transform));
            if self.overlay_key.as_ref() != Some(&key) {
                self.overlay_samples =
                    sample_slice_mapped(&over.image.volume, plane, transform.as_ref());
                self.overlay_key = Some(key);
            }
        }
        if let Some(layer) = &doc.labels {
            let key = (layer.revision, plane.clone());
            if self.labels_key.as_ref() != Some(&key) {
                self.label_samples = sample_labels(&layer.map.volume, plane);
                self.labels_key = Some(key);
            }
        }
        let reference = doc.label_reference().map(|(_, v)| v).unwrap_or(entry);
        if doc.threshold_preview.is_some() && reference.id != entry.id {
            let key = (reference.id, plane.clone());
            if self.reference_key.as_ref() != Some(&key) {
                self.reference_samples = sample_slice(&reference.image.volume, plane);
                self.reference_key = Some(key);
            }
        }
        let confidence = confidence_volume(doc);
        if let Some(c) = &confidence {
            let key = (Arc::as_ptr(c) as usize, plane.clone());
            if self.confidence_key.as_ref() != Some(&key) {
                self.confidence_samples = sample_slice(c, plane);
                self.confidence_key = Some(key);
            }
        }
        let texture_key = (doc.revision, plane.clone());
        if self.texture_key.as_ref() != Some(&texture_key) || self.texture.is_none() {
            let layers = Layers {
                overlay: overlay.map(|(o, opacity)| (&self.overlay_samples[..], o.window, opacity)),
                checkerboard: doc
                    .registration
                    .as_ref()
                    .is_some_and(|r| r.qa == QaMode::Checkerboard)
                    || doc.view_settings.slice_fusion == SliceFusion::Checkerboard,
                grey_blend: doc.view_settings.slice_fusion == SliceFusion::GreyBlend,
                labels: doc.labels.as_ref().map(|l| (&self.label_samples[..], l)),
                preview: doc.threshold_preview.map(|range| {
                    let samples = if reference.id == entry.id {
                        &self.samples[..]
                    } else {
                        &self.reference_samples[..]
                    };
                    (samples, range)
                }),
                confidence: confidence.as_ref().map(|_| &self.confidence_samples[..]),
            };
            let image = slice_image(&self.samples, plane, &entry.window, &layers);
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

/// The confidence map to tint with: the registration's under review, else the model's.
fn confidence_volume(doc: &Document) -> Option<Arc<crate::volume::Volume<f32>>> {
    if let Some(reg) = doc.registration.as_ref().filter(|r| r.show_confidence) {
        return reg.confidence.clone();
    }
    if doc.show_confidence {
        return doc.labels.as_ref().and_then(|l| l.confidence.clone());
    }
    None
}

/// Everything blended over the grey slice.
struct Layers<'a> {
    overlay: Option<(&'a [f32], WindowLevel, f32)>,
    /// Alternate squares of the fixed and the moving image instead of blending them.
    checkerboard: bool,
    /// Blend the overlay in grey rather than its hot colour map.
    grey_blend: bool,
    labels: Option<(&'a [u16], &'a LabelLayer)>,
    preview: Option<(&'a [f32], (f32, f32))>,
    /// 1 = confident; low values are tinted red.
    confidence: Option<&'a [f32]>,
}

const CHECKER_SQUARES: usize = 8;

fn blend(rgb: &mut [f32; 3], colour: [f32; 3], alpha: f32) {
    for c in 0..3 {
        rgb[c] = rgb[c] * (1.0 - alpha) + colour[c] * alpha;
    }
}

/// Grey slice with the overlay (hot colour map or checkerboard), labels, threshold preview and
/// confidence tint on top.
fn slice_image(
    samples: &[f32],
    plane: &SlicePlane,
    window: &WindowLevel,
    layers: &Layers<'_>,
) -> egui::ColorImage {
    let width = plane.width_px.max(1);
    let square = (plane.width_px.max(plane.height_px) / CHECKER_SQUARES).max(1);
    let label_colours: Vec<Option<([f32; 3], f32)>> = match layers.labels {
        Some((_, layer)) => {
            let mut table = vec![None; 65536];
            for info in layer.map.table.iter().filter(|l| l.visible) {
                let [r, g, b, a] = info.color.0;
                table[info.value as usize] = Some((
                    [r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0],
                    layer.opacity * a as f32 / 255.0,
                ));
            }
            table
        }
        None => Vec::new(),
    };
    let pixels = samples
        .iter()
        .enumerate()
        .map(|(n, &v)| {
            let base = window.grey(v).unwrap_or(0.0);
            let mut rgb = [base; 3];
            if let Some((over, over_window, opacity)) = layers.overlay {
                if let Some(g) = over.get(n).and_then(|&o| over_window.grey(o)) {
                    if layers.checkerboard {
                        let (x, y) = (n % width / square, n / width / square);
                        if (x + y) % 2 == 1 {
                            rgb = [g; 3];
                        }
                    } else if layers.grey_blend {
                        blend(&mut rgb, [g; 3], opacity);
                    } else {
                        let hot = [
                            (3.0 * g).min(1.0),
                            (3.0 * g - 1.0).clamp(0.0, 1.0),
                            (3.0 * g - 2.0).clamp(0.0, 1.0),
                        ];
                        blend(&mut rgb, hot, opacity);
                    }
                }
            }
            if let Some((labels, _)) = layers.labels {
                if let Some(Some((colour, alpha))) = labels
                    .get(n)
                    .map(|&l| label_colours.get(l as usize).copied().flatten())
                {
                    blend(&mut rgb, colour, alpha);
                }
            }
            if let Some((reference, (low, high))) = layers.preview {
                if reference.get(n).is_some_and(|&r| r >= low && r <= high) {
                    blend(&mut rgb, theme::PREVIEW_RGB, 0.45);
                }
            }
            if let Some(conf) = layers.confidence {
                if let Some(&c) = conf.get(n).filter(|c| c.is_finite()) {
                    blend(
                        &mut rgb,
                        theme::LOW_CONFIDENCE_RGB,
                        (1.0 - c).clamp(0.0, 1.0) * 0.6,
                    );
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
    let hover_world = response
        .hover_pos()
        .map(|pos| world_at_screen(&plane, image, pos));
    if let Some(world) = hover_world {
        let active = doc.active.unwrap_or(0);
        *hover = Some(Hover {
            world: [world.x, world.y, world.z],
            value: doc.value_at(active, world),
        });
    }
    let points_per_mm = image.width() as f64 / (plane.pixel_mm * plane.width_px as f64);

    if response.double_clicked() {
        commands.push(Command::ToggleMaximize(ViewKind::Slice(axis)));
    }
    let modifiers = ui.input(|i| i.modifiers);
    let tool = doc.tools.tool;
    let nudging = doc.registration.is_some() && modifiers.alt;
    draw_measurements(&painter, &plane, image, doc);
    if cache.measure_tool != doc.measure_tool {
        cache.measure_points.clear();
        cache.measure_drag = None;
        cache.measure_tool = doc.measure_tool;
    }
    if nudging {
        nudge_commands(&response, axis, points_per_mm, commands);
    } else if let Some(measure) = doc.measure_tool.filter(|_| !modifiers.shift) {
        measure_commands(ui, &response, &plane, image, doc, measure, cache, commands);
        draw_pending_measurement(&painter, &plane, image, cache, response.hover_pos());
    } else if tool.edits() && !modifiers.shift {
        tool_commands(
            ui,
            &response,
            &plane,
            image,
            axis,
            tool,
            &mut cache.gesture,
            commands,
        );
        draw_tool_feedback(
            &painter,
            &plane,
            image,
            doc,
            tool,
            &cache.gesture,
            response.hover_pos(),
        );
    } else if let Some(pos) = response.interact_pointer_pos() {
        let primary = response.clicked() || response.dragged_by(egui::PointerButton::Primary);
        if primary && !modifiers.shift && image.contains(pos) {
            let world = world_at_screen(&plane, image, pos);
            commands.push(Command::SetCursor([world.x, world.y, world.z]));
        }
    }
    if response.dragged_by(egui::PointerButton::Primary) && modifiers.shift {
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
    if response.dragged_by(egui::PointerButton::Secondary) && !nudging {
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
            if doc.registration.is_some() && modifiers.alt {
                nudge_key_commands(ui, axis, commands);
            } else {
                key_commands(ui, axis, commands);
            }
            if ui.input(|i| i.key_pressed(egui::Key::M) && i.modifiers.is_none()) {
                commands.push(Command::ToggleMaximize(ViewKind::Slice(axis)));
            }
        }
    }
}

/// World direction of a screen drag in this view, in millimetres.
fn screen_to_world_mm(axis: ViewAxis, delta: Vec2, points_per_mm: f64) -> [f64; 3] {
    let v = axis.right_world() * (delta.x as f64 / points_per_mm)
        + axis.down_world() * (delta.y as f64 / points_per_mm);
    [v.x, v.y, v.z]
}

/// Alt + left-drag moves the moving image, Alt + right-drag turns it about the view's normal.
fn nudge_commands(
    response: &egui::Response,
    axis: ViewAxis,
    points_per_mm: f64,
    commands: &mut Vec<Command>,
) {
    let delta = response.drag_delta();
    if delta == Vec2::ZERO {
        return;
    }
    if response.dragged_by(egui::PointerButton::Primary) {
        commands.push(Command::NudgeRegistration {
            translate_mm: screen_to_world_mm(axis, delta, points_per_mm),
            rotate_deg: [0.0; 3],
        });
    } else if response.dragged_by(egui::PointerButton::Secondary) {
        let n = axis.normal_world() * (delta.x as f64 * NUDGE_DEG_PER_POINT);
        commands.push(Command::NudgeRegistration {
            translate_mm: [0.0; 3],
            rotate_deg: [n.x, n.y, n.z],
        });
    }
}

const NUDGE_DEG_PER_POINT: f64 = 0.2;
const NUDGE_MM_PER_KEY: f64 = 1.0;

/// Alt + arrows move the moving image by 1 mm on screen.
fn nudge_key_commands(ui: &egui::Ui, axis: ViewAxis, commands: &mut Vec<Command>) {
    use egui::Key;
    let (dx, dy) = ui.input(|i| {
        let count = |key| i.num_presses(key) as f64;
        (
            count(Key::ArrowRight) - count(Key::ArrowLeft),
            count(Key::ArrowDown) - count(Key::ArrowUp),
        )
    });
    if dx != 0.0 || dy != 0.0 {
        let v = axis.right_world() * (dx * NUDGE_MM_PER_KEY)
            + axis.down_world() * (dy * NUDGE_MM_PER_KEY);
        commands.push(Command::NudgeRegistration {
            translate_mm: [v.x, v.y, v.z],
            rotate_deg: [0.0; 3],
        });
    }
}

/// Left-button input of the editing tools.
#[allow(clippy::too_many_arguments)]
fn tool_commands(
    ui: &egui::Ui,
    response: &egui::Response,
    plane: &SlicePlane,
    image: Rect,
    axis: ViewAxis,
    tool: Tool,
    gesture: &mut Vec<Point3<f64>>,
    commands: &mut Vec<Command>,
) {
    let to_array = |p: &Point3<f64>| [p.x, p.y, p.z];
    let primary = egui::PointerButton::Primary;
    match tool {
        Tool::Brush | Tool::Eraser | Tool::Sphere | Tool::Scissors => {
            if response.drag_started_by(primary) {
                gesture.clear();
                if let Some(origin) = ui.input(|i| i.pointer.press_origin()) {
                    gesture.push(world_at_screen(plane, image, origin));
                }
            }
            if response.dragged_by(primary) {
                if let Some(pos) = response.interact_pointer_pos() {
                    gesture.push(world_at_screen(plane, image, pos));
                }
            }
            if response.drag_stopped_by(primary) && !gesture.is_empty() {
                let points: Vec<[f64; 3]> = gesture.iter().map(to_array).collect();
                gesture.clear();
                if tool == Tool::Scissors {
                    if points.len() >= 3 {
                        commands.push(Command::Edit(Edit::Scissors {
                            axis,
                            polygon: points,
                        }));
                    }
                } else {
                    commands.push(Command::Edit(Edit::Stroke { axis, points, tool }));
                }
            } else if response.clicked() && tool != Tool::Scissors {
                if let Some(pos) = response.interact_pointer_pos() {
                    let p = world_at_screen(plane, image, pos);
                    commands.push(Command::Edit(Edit::Stroke {
                        axis,
                        points: vec![to_array(&p)],
                        tool,
                    }));
                }
            }
        }
        Tool::Fill | Tool::RegionGrow => {
            if response.clicked() {
                if let Some(pos) = response.interact_pointer_pos() {
                    let at = to_array(&world_at_screen(plane, image, pos));
                    commands.push(if tool == Tool::Fill {
                        Command::Edit(Edit::Fill { axis, at })
                    } else {
                        Command::GrowRegion { seed: at }
                    });
                }
            }
        }
        Tool::Navigate => {}
    }
}

/// The brush outline under the mouse, and the stroke or lasso being drawn.
fn draw_tool_feedback(
    painter: &egui::Painter,
    plane: &SlicePlane,
    image: Rect,
    doc: &Document,
    tool: Tool,
    gesture: &[Point3<f64>],
    hover: Option<Pos2>,
) {
    let points_per_mm = image.width() / (plane.pixel_mm * plane.width_px as f64) as f32;
    let radius = doc.tools.brush_radius_mm as f32 * points_per_mm;
    let stroke = Stroke::new(1.0, theme::TOOL_OUTLINE);
    let screen: Vec<Pos2> = gesture
        .iter()
        .map(|p| screen_of_world(plane, image, p))
        .collect();
    match tool {
        Tool::Brush | Tool::Eraser | Tool::Sphere => {
            for p in &screen {
                painter.circle_stroke(*p, radius, stroke);
            }
            if let Some(pos) = hover {
                painter.circle_stroke(pos, radius, stroke);
            }
        }
        Tool::Scissors => {
            painter.add(egui::Shape::line(screen, stroke));
        }
        _ => {}
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

/// Clicks place distance and angle points; a drag draws a statistics region.
#[allow(clippy::too_many_arguments)]
fn measure_commands(
    ui: &egui::Ui,
    response: &egui::Response,
    plane: &SlicePlane,
    image: Rect,
    doc: &Document,
    tool: MeasureTool,
    cache: &mut SliceViewCache,
    commands: &mut Vec<Command>,
) {
    let to_array = |p: &Point3<f64>| [p.x, p.y, p.z];
    let primary = egui::PointerButton::Primary;
    let add = |kind| {
        Command::AddMeasurement(Measurement {
            name: String::new(),
            kind,
        })
    };
    match tool {
        MeasureTool::Distance | MeasureTool::Angle => {
            let Some(pos) = response
                .interact_pointer_pos()
                .filter(|_| response.clicked())
            else {
                return;
            };
            cache
                .measure_points
                .push(world_at_screen(plane, image, pos));
            if cache.measure_points.len() < tool.points_needed() {
                return;
            }
            let p: Vec<[f64; 3]> = cache
                .measure_points
                .drain(..)
                .map(|p| to_array(&p))
                .collect();
            commands.push(add(if tool == MeasureTool::Distance {
                MeasurementKind::Distance {
                    a_mm: p[0],
                    b_mm: p[1],
                }
            } else {
                MeasurementKind::Angle {
                    a_mm: p[0],
                    vertex_mm: p[1],
                    c_mm: p[2],
                }
            }));
        }
        MeasureTool::Region(shape) => {
            if response.drag_started_by(primary) {
                if let Some(origin) = ui.input(|i| i.pointer.press_origin()) {
                    let p = world_at_screen(plane, image, origin);
                    cache.measure_drag = Some((p, p));
                }
            }
            if response.dragged_by(primary) {
                if let (Some(pos), Some(drag)) =
                    (response.interact_pointer_pos(), &mut cache.measure_drag)
                {
                    drag.1 = world_at_screen(plane, image, pos);
                }
            }
            if response.drag_stopped_by(primary) {
                if let Some((a, b)) = cache.measure_drag.take() {
                    let volume = doc.active.unwrap_or(0);
                    if let Some(region) = drag_region(doc, plane.axis, shape, a, b) {
                        commands.push(add(MeasurementKind::RegionStats {
                            volume,
                            region,
                            label_map: None,
                        }));
                    }
                }
            }
        }
    }
}

/// The region a drag from `a` to `b` on a slice of `axis` draws: a box one slice thick (its
/// faces on the world axes, as the slices are) or a sphere centred on `a` through `b`.
/// `None` for a drag of no size.
pub fn drag_region(
    doc: &Document,
    axis: ViewAxis,
    shape: RegionShape,
    a: Point3<f64>,
    b: Point3<f64>,
) -> Option<Region> {
    let entry = doc.active_volume()?;
    if (b - a).norm() < 1e-6 {
        return None;
    }
    match shape {
        RegionShape::Circle => Some(Region::Sphere {
            centre_mm: [a.x, a.y, a.z],
            radius_mm: (b - a).norm(),
        }),
        RegionShape::Box => {
            let half = slice_step_mm(entry.image.volume.geometry(), axis) / 2.0;
            let normal = axis.normal_world();
            let mut min_mm = [0.0; 3];
            let mut max_mm = [0.0; 3];
            for k in 0..3 {
                if normal[k].abs() > 0.5 {
                    min_mm[k] = a[k] - half;
                    max_mm[k] = a[k] + half;
                } else {
                    min_mm[k] = a[k].min(b[k]);
                    max_mm[k] = a[k].max(b[k]);
                }
            }
            (0..3)
                .all(|k| max_mm[k] > min_mm[k])
                .then_some(Region::Box { min_mm, max_mm })
        }
    }
}

/// Signed distance of `p` from the view's plane (through the cursor), mm.
fn off_plane_mm(plane: &SlicePlane, doc: &Document, p: &Point3<f64>) -> f64 {
    (p - doc.cursor_point()).dot(&plane.axis.normal_world())
}

/// Stored measurements that lie on this slice, with their values.
fn draw_measurements(painter: &egui::Painter, plane: &SlicePlane, image: Rect, doc: &Document) {
    let Some(entry) = doc.active_volume() else {
        return;
    };
    let half = slice_step_mm(entry.image.volume.geometry(), plane.axis) / 2.0 + 1e-6;
    let stroke = Stroke::new(1.5, theme::MEASUREMENT);
    let font = egui::FontId::proportional(12.0);
    let on_plane = |p: &[f64; 3]| off_plane_mm(plane, doc, &Point3::from(*p)).abs() <= half;
    let screen = |p: &[f64; 3]| screen_of_world(plane, image, &Point3::from(*p));
    for m in &doc.measurements {
        let label = match m.geometric_value_text() {
            Some(value) => format!("{} {value}", m.name),
            None => m.name.clone(),
        };
        match &m.kind {
            MeasurementKind::Distance { a_mm, b_mm } if on_plane(a_mm) && on_plane(b_mm) => {
                let (a, b) = (screen(a_mm), screen(b_mm));
                painter.line_segment([a, b], stroke);
                for p in [a, b] {
                    painter.circle_filled(p, 2.5, theme::MEASUREMENT);
                }
                painter.text(
                    b + Vec2::new(6.0, 0.0),
                    egui::Align2::LEFT_CENTER,
                    label,
                    font.clone(),
                    theme::MEASUREMENT,
                );
            }
            MeasurementKind::Angle {
                a_mm,
                vertex_mm,
                c_mm,
            } if [a_mm, vertex_mm, c_mm].into_iter().all(on_plane) => {
                let points = vec![screen(a_mm), screen(vertex_mm), screen(c_mm)];
                painter.add(egui::Shape::line(points.clone(), stroke));
                painter.text(
                    points[1] + Vec2::new(6.0, 0.0),
                    egui::Align2::LEFT_CENTER,
                    label,
                    font.clone(),
                    theme::MEASUREMENT,
                );
            }
            MeasurementKind::RegionStats { region, .. } => match region {
                Region::Box { min_mm, max_mm } => {
                    let n = plane.axis.normal_world();
                    let depth = doc.cursor_point().coords.dot(&n);
                    let lo = Point3::from(*min_mm).coords.dot(&n);
                    let hi = Point3::from(*max_mm).coords.dot(&n);
                    if depth < lo.min(hi) - 1e-6 || depth > lo.max(hi) + 1e-6 {
                        continue;
                    }
                    let r = Rect::from_two_pos(screen(min_mm), screen(max_mm));
                    painter.rect_stroke(r, 0.0, stroke, egui::StrokeKind::Middle);
                    painter.text(
                        r.right_top() + Vec2::new(4.0, 0.0),
                        egui::Align2::LEFT_TOP,
                        label,
                        font.clone(),
                        theme::MEASUREMENT,
                    );
                }
                Region::Sphere {
                    centre_mm,
                    radius_mm,
                } => {
                    let d = off_plane_mm(plane, doc, &Point3::from(*centre_mm));
                    if d.abs() >= *radius_mm {
                        continue;
                    }
                    let points_per_mm =
                        image.width() as f64 / (plane.pixel_mm * plane.width_px as f64);
                    let r = ((radius_mm * radius_mm - d * d).sqrt() * points_per_mm) as f32;
                    let c = screen(centre_mm);
                    painter.circle_stroke(c, r, stroke);
                    painter.text(
                        c + Vec2::new(r + 4.0, 0.0),
                        egui::Align2::LEFT_CENTER,
                        label,
                        font.clone(),
                        theme::MEASUREMENT,
                    );
                }
                Region::Label { .. } => {}
            },
            _ => {}
        }
    }
}

/// The points clicked so far (joined, and to the mouse) or the region being dragged.
fn draw_pending_measurement(
    painter: &egui::Painter,
    plane: &SlicePlane,
    image: Rect,
    cache: &SliceViewCache,
    hover: Option<Pos2>,
) {
    let stroke = Stroke::new(1.0, theme::MEASUREMENT_PENDING);
    let mut points: Vec<Pos2> = cache
        .measure_points
        .iter()
        .map(|p| screen_of_world(plane, image, p))
        .collect();
    for p in &points {
        painter.circle_filled(*p, 2.5, theme::MEASUREMENT_PENDING);
    }
    if let (Some(h), false) = (hover, points.is_empty()) {
        points.push(h);
    }
    if points.len() >= 2 {
        painter.add(egui::Shape::line(points, stroke));
    }
    if let (Some((a, b)), Some(tool)) = (&cache.measure_drag, cache.measure_tool) {
        let (a, b) = (
            screen_of_world(plane, image, a),
            screen_of_world(plane, image, b),
        );
        if tool == MeasureTool::Region(RegionShape::Circle) {
            painter.circle_stroke(a, (b - a).length(), stroke);
        } else {
            painter.rect_stroke(
                Rect::from_two_pos(a, b),
                0.0,
                stroke,
                egui::StrokeKind::Middle,
            );
        }
    }
}
