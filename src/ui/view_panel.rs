//! The View tab: transfer function (preset, ramp, opacity), projection, crop box and what the
//! 3D view shows; how the overlay joins the slices.

use super::theme;
use super::view3d::{chosen_preset, points_in_image_units, preset_ramp, transfer_for};
use crate::document::{
    Command, Document, Projection3d, RampEdit, SceneContent, SliceFusion, TfPoint, ViewSettings,
};
use crate::render::TransferFunction;

fn preset_help(name: &str) -> &'static str {
    match name {
        "ct-bone" => "CT: bone from about 200 HU, soft tissue clear",
        "ct-soft" => "CT: fat faint, muscle and organs reddish, bone white",
        "ct-angio" => "CT angiography: contrast-filled vessels red, dense bone pale",
        "mr-t1" => "MR T1: brighter tissue more opaque (relative to the image's range)",
        "mr-angio" => "MR angiography: only the brightest signal (flowing blood)",
        _ => "",
    }
}

pub fn view_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    four_view: &super::four_view::FourViewState,
    commands: &mut Vec<Command>,
) {
    let Some(entry) = doc.active_volume() else {
        ui.label("Open an image to set up the 3D view.");
        return;
    };
    let current = &doc.view_settings;
    let mut s: ViewSettings = current.clone();
    let hounsfield = entry.is_hounsfield();
    let range = entry.value_range;

    ui.heading("3D rendering");
    ui.horizontal(|ui| {
        ui.label("Show");
        for content in SceneContent::ALL {
            let tip = match content {
                SceneContent::Volume => "The raycast volume only",
                SceneContent::Meshes => "Only the surfaces made in Mesh & export",
                SceneContent::Both => "Surfaces with the volume blended over them",
            };
            if ui
                .selectable_label(s.content == content, content.name())
                .on_hover_text(tip)
                .clicked()
            {
                s.content = content;
            }
        }
    });
    if doc.meshes.is_empty() && s.content != SceneContent::Volume {
        ui.weak("No meshes yet: use Build meshes in Mesh & export.");
    }
    ui.horizontal(|ui| {
        ui.label("Projection");
        for projection in Projection3d::ALL {
            let tip = match projection {
                Projection3d::Composite => "Colour and opacity through the transfer function",
                Projection3d::Mip => "Brightest value along each ray (grey over the slice window)",
                Projection3d::MinIp => "Darkest value along each ray (airways)",
            };
            if ui
                .selectable_label(s.projection == projection, projection.name())
                .on_hover_text(tip)
                .clicked()
            {
                s.projection = projection;
            }
        }
    });

    super::four_view::controls_ui(ui, four_view);

    ui.separator();
    ui.strong("Transfer function");
    // What the ramp and opacity edits apply to: the preset, or the hand-edited points.
    let base_settings = ViewSettings {
        ramp: None,
        opacity_scale: 1.0,
        ..current.clone()
    };
    let base = transfer_for(&base_settings, hounsfield, range);
    let custom = current.points.is_some();
    let preset_name = chosen_preset(current, hounsfield)
        .map(|p| p.name)
        .filter(|_| !custom)
        .unwrap_or_default();
    ui.horizontal_wrapped(|ui| {
        for name in TransferFunction::PRESET_NAMES {
            if ui
                .selectable_label(preset_name == name, name)
                .on_hover_text(preset_help(name))
                .clicked()
            {
                s.preset = Some(name.to_string());
                s.points = None;
                s.ramp = None;
            }
        }
    });
    let span = (range.1 - range.0).max(1.0);
    let unit = if hounsfield { " HU" } else { "" };
    if let Some(base) = &base {
        let ramp = current.ramp.unwrap_or_else(|| preset_ramp(base, range));
        let (mut center, mut width) = (ramp.center, ramp.width);
        let c = ui.add(
            egui::Slider::new(
                &mut center,
                (range.0 - span * 0.25)..=(range.1 + span * 0.25),
            )
            .text("Ramp centre")
            .suffix(unit),
        );
        let w = ui.add(
            egui::Slider::new(&mut width, (span * 0.005)..=(span * 2.0))
                .logarithmic(true)
                .text("Ramp width")
                .suffix(unit),
        );
        if c.changed() || w.changed() {
            s.ramp = Some(RampEdit { center, width });
        }
        ui.add(
            egui::Slider::new(&mut s.opacity_scale, 0.0..=4.0)
                .text("Opacity")
                .suffix("×"),
        )
        .on_hover_text("Multiplies the opacity of every control point");
        if ui
            .add_enabled(
                current.ramp.is_some() || current.opacity_scale != 1.0 || custom,
                egui::Button::new("Reset to preset"),
            )
            .on_hover_text("Forget the ramp, opacity and point edits")
            .clicked()
        {
            s.ramp = None;
            s.opacity_scale = 1.0;
            s.points = None;
        }
        if let Some(tf) = transfer_for(current, hounsfield, range) {
            transfer_plot_ui(ui, &tf, range);
            if !custom
                && ui
                    .button("Edit points")
                    .on_hover_text("Turn the function shown into control points to edit one by one")
                    .clicked()
            {
                s.points = Some(points_in_image_units(&tf, range));
                s.ramp = None;
                s.opacity_scale = 1.0;
            }
        }
    }
    if let Some(points) = &mut s.points {
        points_editor_ui(ui, points, span, unit);
    }

    ui.separator();
    ui.strong("Crop box");
    for (axis, name) in [
        "Right to left",
        "Anterior to posterior",
        "Inferior to superior",
    ]
    .into_iter()
    .enumerate()
    {
        ui.horizontal(|ui| {
            let [mut lo, mut hi] = s.crop[axis];
            ui.add(egui::Slider::new(&mut lo, 0.0..=1.0).show_value(false))
                .on_hover_text(format!("{name}: where the box starts"));
            ui.add(egui::Slider::new(&mut hi, 0.0..=1.0).show_value(false))
                .on_hover_text(format!("{name}: where the box ends"));
            ui.label(name);
            s.crop[axis] = [lo.min(hi), hi.max(lo)];
        });
    }
    if ui
        .add_enabled(current.crops(), egui::Button::new("Reset crop"))
        .clicked()
    {
        s.crop = [[0.0, 1.0]; 3];
    }

    ui.separator();
    ui.strong("Slice fusion");
    ui.horizontal(|ui| {
        for fusion in SliceFusion::ALL {
            let tip = match fusion {
                SliceFusion::HotOverlay => "The overlay in a hot colour map over the grey image",
                SliceFusion::GreyBlend => "Grey over grey at the overlay opacity",
                SliceFusion::Checkerboard => "Alternating squares of each image (alignment check)",
            };
            if ui
                .selectable_label(s.slice_fusion == fusion, fusion.name())
                .on_hover_text(tip)
                .clicked()
            {
                s.slice_fusion = fusion;
            }
        }
    });
    let others: Vec<usize> = (0..doc.volumes.len())
        .filter(|i| Some(*i) != doc.active)
        .collect();
    if others.is_empty() {
        ui.weak("Open a second image to fuse it over this one.");
    } else {
        let chosen = doc.overlay.map(|o| o.volume);
        let name = |i: usize| super::panels::short(&doc.volumes[i].image.meta.description, 28);
        egui::ComboBox::from_label("Overlay")
            .selected_text(chosen.map(name).unwrap_or_else(|| "none".into()))
            .show_ui(ui, |ui| {
                if ui.selectable_label(chosen.is_none(), "none").clicked() {
                    commands.push(Command::SetOverlay(None));
                }
                for i in others {
                    if ui.selectable_label(chosen == Some(i), name(i)).clicked() {
                        commands.push(Command::SetOverlay(Some(i)));
                    }
                }
            });
        if let Some(overlay) = doc.overlay {
            let mut opacity = overlay.opacity;
            if ui
                .add(egui::Slider::new(&mut opacity, 0.0..=1.0).text("Overlay opacity"))
                .changed()
            {
                commands.push(Command::SetOverlayOpacity(opacity));
            }
        }
    }

    if s != *current {
        commands.push(Command::SetViewSettings(s));
    }
}

/// One row per control point: value, opacity per mm, colour; add and remove points.
fn points_editor_ui(ui: &mut egui::Ui, points: &mut Vec<TfPoint>, span: f32, unit: &str) {
    let mut remove = None;
    egui::Grid::new("transfer points")
        .num_columns(4)
        .striped(true)
        .show(ui, |ui| {
            ui.strong("Value");
            ui.strong("Opacity per mm");
            ui.strong("Colour");
            ui.end_row();
            for (i, p) in points.iter_mut().enumerate() {
                ui.add(
                    egui::DragValue::new(&mut p.value)
                        .speed(span * 0.002)
                        .suffix(unit),
                );
                ui.add(
                    egui::DragValue::new(&mut p.opacity_per_mm)
                        .speed(0.005)
                        .range(0.0..=1.0),
                );
                ui.color_edit_button_rgb(&mut p.rgb);
                if ui
                    .small_button("Remove")
                    .on_hover_text("Remove this control point")
                    .clicked()
                {
                    remove = Some(i);
                }
                ui.end_row();
            }
        });
    if let Some(i) = remove.filter(|_| points.len() > 1) {
        points.remove(i);
    }
    if ui
        .button("Add point")
        .on_hover_text("A new point above the highest one")
        .clicked()
    {
        if let Some(last) = points
            .iter()
            .max_by(|a, b| a.value.total_cmp(&b.value))
            .copied()
        {
            points.push(TfPoint {
                value: last.value + span * 0.05,
                ..last
            });
        }
    }
}

/// Opacity (line) and colour (band) of the transfer function over the image's value range.
fn transfer_plot_ui(ui: &mut egui::Ui, tf: &TransferFunction, range: (f32, f32)) {
    let width = ui.available_width().max(50.0);
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 60.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, theme::VIEW_BACKGROUND);
    let baked = tf.bake(range);
    let n = baked.len().max(2);
    let max_opacity = baked.iter().map(|c| c[3]).fold(1e-6, f32::max);
    let band = 8.0;
    let columns = (rect.width() as usize).max(2);
    let mut line = Vec::with_capacity(columns);
    for x in 0..columns {
        let f = x as f32 / (columns - 1) as f32;
        let c = baked[((f * (n - 1) as f32).round() as usize).min(n - 1)];
        let px = rect.left() + f * rect.width();
        let rgb = [c[0], c[1], c[2]].map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8);
        painter.line_segment(
            [
                egui::pos2(px, rect.bottom() - band),
                egui::pos2(px, rect.bottom()),
            ],
            egui::Stroke::new(1.0, theme::rgb(rgb)),
        );
        let y = rect.bottom() - band - (c[3] / max_opacity) * (rect.height() - band - 4.0);
        line.push(egui::pos2(px, y));
    }
    painter.add(egui::Shape::line(
        line,
        egui::Stroke::new(1.5, theme::VIEW_TEXT),
    ));
}
