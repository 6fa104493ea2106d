//! The right-hand panel: properties of the selected item and the workflow tabs (Segment, Edit,
//! Mesh & export, Register, Preprocess). Each tab is a thin view: it shows the document and
//! returns commands; `app` runs the work.

use super::panels::{help_ui, short, volume_properties_ui};
use crate::document::{
    Command, DenoisePreset, Document, ExportFormat, LabelInfo, PreprocessOp, QaMode,
    RegistrationMethod, Rgba, Selection, ThresholdPreset, Tool, ViewAxis,
};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Properties,
    Preprocess,
    Register,
    Segment,
    Edit,
    Export,
    View,
    Measure,
}

impl Tab {
    const ALL: [Tab; 8] = [
        Tab::Properties,
        Tab::Preprocess,
        Tab::Register,
        Tab::Segment,
        Tab::Edit,
        Tab::Export,
        Tab::View,
        Tab::Measure,
    ];

    fn title(self) -> &'static str {
        match self {
            Tab::Properties => "Properties",
            Tab::Preprocess => "Preprocess",
            Tab::Register => "Register",
            Tab::Segment => "Segment",
            Tab::Edit => "Edit",
            Tab::Export => "Mesh & export",
            Tab::View => "View",
            Tab::Measure => "Measurements",
        }
    }
}

/// Inputs the user is still choosing (not document state until applied).
#[derive(Debug, Clone)]
pub struct WorkflowState {
    pub tab: Tab,
    pub threshold: (f32, f32),
    pub live_preview: bool,
    pub export_format: ExportFormat,
    pub register_fixed: usize,
    pub register_moving: usize,
    pub resample_mm: f64,
    /// Cached label volumes (ml) for a labels revision: counting voxels each frame is too slow.
    volumes_ml: Option<(u64, Vec<(u16, f64)>)>,
    /// The Measurements tab's caches (region statistics and label volumes cost a pass over
    /// voxels).
    measures: super::measure_panel::MeasureCache,
    /// The four-view projection window (opened from the View tab).
    pub four_view: super::four_view::FourViewState,
}

impl Default for WorkflowState {
    fn default() -> Self {
        Self {
            tab: Tab::Properties,
            threshold: ThresholdPreset::Bone.range_hu(),
            live_preview: true,
            export_format: ExportFormat::ThreeMf,
            register_fixed: 0,
            register_moving: 1,
            resample_mm: 1.0,
            volumes_ml: None,
            measures: Default::default(),
            four_view: Default::default(),
        }
    }
}

pub fn workflow_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    state: &mut WorkflowState,
    commands: &mut Vec<Command>,
) {
    ui.horizontal_wrapped(|ui| {
        for tab in Tab::ALL {
            if ui.selectable_label(state.tab == tab, tab.title()).clicked() {
                state.tab = tab;
                // The preview belongs to the Segment tab; leaving it clears the tint.
                if tab != Tab::Segment && doc.threshold_preview.is_some() {
                    commands.push(Command::SetThresholdPreview(None));
                }
            }
        }
    });
    ui.separator();
    egui::ScrollArea::vertical().show(ui, |ui| match state.tab {
        Tab::Properties => properties_ui(ui, doc, state, commands),
        Tab::Preprocess => preprocess_ui(ui, doc, state, commands),
        Tab::Register => register_ui(ui, doc, state, commands),
        Tab::Segment => segment_ui(ui, doc, state, commands),
        Tab::Edit => edit_ui(ui, doc, state, commands),
        Tab::Export => export_ui(ui, doc, state, commands),
        Tab::View => super::view_panel::view_ui(ui, doc, &state.four_view, commands),
        Tab::Measure => super::measure_panel::measure_ui(ui, doc, &mut state.measures, commands),
    });
}

fn properties_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    state: &mut WorkflowState,
    commands: &mut Vec<Command>,
) {
    match doc.selection {
        None | Some(Selection::Volume(_)) => volume_properties_ui(ui, doc, commands),
        Some(Selection::LabelMap) => label_table_ui(ui, doc, state, commands),
        Some(Selection::Label(value)) => {
            if let Some(info) = doc.labels.as_ref().and_then(|l| l.map.table.get(value)) {
                label_row_ui(ui, info, commands);
                let name = info.name.clone();
                let color = info.color;
                ui.separator();
                print_profile_ui(ui, doc, value, &name, color, commands);
            }
        }
        Some(Selection::Mesh(index)) => {
            if let Some(mesh) = doc.meshes.get(index) {
                ui.strong(&mesh.name);
                ui.label(format!(
                    "{} triangles, {} vertices",
                    mesh.mesh.face_count(),
                    mesh.mesh.vertex_count()
                ));
                ui.label(format!("Enclosed volume {:.2} ml", mesh.volume_ml));
                ui.label(format!("Surface {:.0} mm²", mesh.mesh.area_mm2()));
            }
        }
        Some(Selection::Transform(index)) => {
            if let Some(t) = doc.transforms.get(index) {
                ui.strong(&t.name);
                ui.label("moving_from_fixed (LPS mm):");
                let m = &t.moving_from_fixed;
                for r in 0..3 {
                    ui.monospace(format!(
                        "{:>8.4} {:>8.4} {:>8.4} {:>9.2}",
                        m[(r, 0)],
                        m[(r, 1)],
                        m[(r, 2)],
                        m[(r, 3)]
                    ));
                }
                for line in &t.figures {
                    ui.label(line);
                }
            }
        }
    }
    ui.separator();
    egui::CollapsingHeader::new("Mouse and keys").show(ui, help_ui);
}

fn preset_title(preset: ThresholdPreset) -> &'static str {
    match preset {
        ThresholdPreset::Bone => "Bone",
        ThresholdPreset::CorticalBone => "Cortical bone",
        ThresholdPreset::Calcification => "Calcification",
        ThresholdPreset::SoftTissue => "Soft tissue",
        ThresholdPreset::Lung => "Lung",
        ThresholdPreset::ContrastVessels => "Contrast vessels",
    }
}

fn reference_name(doc: &Document) -> String {
    doc.label_reference()
        .map(|(_, v)| v)
        .or(doc.active_volume())
        .map(|v| short(&v.image.meta.description, 30))
        .unwrap_or_else(|| "no image".to_string())
}

fn segment_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    state: &mut WorkflowState,
    commands: &mut Vec<Command>,
) {
    ui.label(format!("On {}", reference_name(doc)));
    ui.label(format!("Into {}", doc.active_label_name()));
    ui.heading("Threshold");
    let mut range_changed = false;
    ui.horizontal_wrapped(|ui| {
        for preset in ThresholdPreset::ALL {
            let (low, high) = preset.range_hu();
            if ui
                .selectable_label(state.threshold == (low, high), preset_title(preset))
                .on_hover_text(format!("{low:.0} to {high:.0} HU"))
                .clicked()
            {
                state.threshold = (low, high);
                range_changed = true;
            }
        }
    });
    let (min, max) = doc
        .label_reference()
        .map(|(_, v)| v)
        .or(doc.active_volume())
        .map(|v| v.value_range)
        .unwrap_or((-1024.0, 3071.0));
    let (low, high) = &mut state.threshold;
    range_changed |= ui
        .add(
            egui::Slider::new(low, min..=max)
                .clamping(egui::SliderClamping::Never)
                .text("Low"),
        )
        .on_hover_text("Lowest value included (drag: live preview in the views)")
        .changed();
    range_changed |= ui
        .add(
            egui::Slider::new(high, min..=max)
                .clamping(egui::SliderClamping::Never)
                .text("High"),
        )
        .on_hover_text("Highest value included")
        .changed();
    let preview_toggled = ui
        .checkbox(&mut state.live_preview, "Live preview")
        .on_hover_text("Tint the voxels in range green in the slice views")
        .changed();
    let wanted = state.live_preview.then_some(state.threshold);
    if (range_changed || preview_toggled) && doc.threshold_preview != wanted {
        commands.push(Command::SetThresholdPreview(wanted));
    }
    if ui
        .button("Apply threshold")
        .on_hover_text("Write the voxels in range into the active label (undoable)")
        .clicked()
    {
        let (low, high) = state.threshold;
        commands.push(Command::ApplyThreshold { low, high });
        commands.push(Command::SetThresholdPreview(None));
    }
    ui.separator();
    ui.heading("Region growing");
    let (mut glow, mut ghigh) = doc.grow_range;
    let a = ui.add(egui::Slider::new(&mut glow, min..=max).text("Grow low"));
    let b = ui.add(egui::Slider::new(&mut ghigh, min..=max).text("Grow high"));
    if a.changed() || b.changed() {
        commands.push(Command::SetGrowRange((glow, ghigh)));
    }
    ui.horizontal(|ui| {
        if ui
            .button("Use threshold range")
            .on_hover_text("Grow through the threshold range above")
            .clicked()
        {
            commands.push(Command::SetGrowRange(state.threshold));
        }
        if ui
            .selectable_label(doc.tools.tool == Tool::RegionGrow, "Seed tool (G)")
            .on_hover_text(Tool::RegionGrow.help())
            .clicked()
        {
            commands.push(Command::SetTool(Tool::RegionGrow));
        }
    });
    if ui
        .button("Grow from the crosshair")
        .on_hover_text("Seed at the linked cursor")
        .clicked()
    {
        commands.push(Command::GrowRegion {
            seed: doc.cursor_world,
        });
    }
    ui.separator();
    ui.heading("Models");
    ui.small(format!(
        "Engine: {}",
        doc.backend.as_deref().unwrap_or("starting…")
    ));
    if doc.models.is_empty() {
        ui.label("No models found in models/ (a manifest .json beside each .onnx).");
    }
    for model in &doc.models {
        ui.horizontal(|ui| {
            ui.label(&model.name);
            if ui
                .button("Run")
                .on_hover_text(format!(
                    "Segment the reference image ({}) into: {}",
                    model.modality,
                    model.labels.join(", ")
                ))
                .clicked()
            {
                commands.push(Command::RunModel(model.manifest_path.clone()));
            }
        });
        ui.small(format!("labels: {}", model.labels.join(", ")));
    }
    let has_confidence = doc.labels.as_ref().is_some_and(|l| l.confidence.is_some());
    let mut show = doc.show_confidence;
    if ui
        .add_enabled(
            has_confidence,
            egui::Checkbox::new(&mut show, "Confidence overlay"),
        )
        .on_hover_text("Tint voxels where the model was unsure in red")
        .changed()
    {
        commands.push(Command::SetConfidenceOverlay(show));
    }
}

fn edit_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    state: &mut WorkflowState,
    commands: &mut Vec<Command>,
) {
    ui.heading("Tools");
    ui.horizontal_wrapped(|ui| {
        for tool in Tool::ALL {
            if ui
                .selectable_label(doc.tools.tool == tool, tool.name())
                .on_hover_text(format!("{} ({})", tool.help(), tool.shortcut()))
                .clicked()
            {
                commands.push(Command::SetTool(tool));
            }
        }
    });
    let mut radius = doc.tools.brush_radius_mm;
    if ui
        .add(
            egui::Slider::new(&mut radius, 0.5..=30.0)
                .text("Brush mm")
                .logarithmic(true),
        )
        .on_hover_text("Brush and sphere radius in millimetres")
        .changed()
    {
        commands.push(Command::SetBrushRadius(radius));
    }
    let mut overwrite = doc.tools.overwrite_other_labels;
    if ui
        .checkbox(&mut overwrite, "Paint over other labels")
        .on_hover_text("Off: only background voxels can be painted")
        .changed()
    {
        commands.push(Command::SetOverwriteOtherLabels(overwrite));
    }
    let mut limited = doc.tools.editable_range.is_some();
    let (mut low, mut high) = doc.tools.editable_range.unwrap_or(state.threshold);
    let toggled = ui
        .checkbox(&mut limited, "Editable intensity range")
        .on_hover_text("Tools change only voxels whose image value lies in this range")
        .changed();
    let mut changed = false;
    if limited {
        let (min, max) = doc
            .active_volume()
            .map(|v| v.value_range)
            .unwrap_or((-1024.0, 3071.0));
        changed |= ui
            .add(egui::Slider::new(&mut low, min..=max).text("From"))
            .changed();
        changed |= ui
            .add(egui::Slider::new(&mut high, min..=max).text("To"))
            .changed();
    }
    if toggled || changed {
        commands.push(Command::SetEditableRange(limited.then_some((low, high))));
    }
    ui.horizontal(|ui| {
        let history = doc.labels.as_ref().map(|l| &l.history);
        if ui
            .add_enabled(
                history.is_some_and(|h| h.can_undo()),
                egui::Button::new("Undo edit"),
            )
            .on_hover_text(format!(
                "Undo {} (Ctrl+Z)",
                history.and_then(|h| h.undo_name()).unwrap_or("")
            ))
            .clicked()
        {
            commands.push(Command::Undo);
        }
        if ui
            .add_enabled(
                history.is_some_and(|h| h.can_redo()),
                egui::Button::new("Redo edit"),
            )
            .on_hover_text("Redo (Ctrl+Y or Ctrl+Shift+Z)")
            .clicked()
        {
            commands.push(Command::Redo);
        }
    });
    ui.horizontal_wrapped(|ui| {
        if ui
            .button("Keep largest island")
            .on_hover_text("Remove every piece of the active label but the largest")
            .clicked()
        {
            commands.push(Command::KeepLargestIsland);
        }
        if ui
            .button("Fill between slices")
            .on_hover_text(
                "Interpolate the active label between the axial slices where it was drawn",
            )
            .clicked()
        {
            commands.push(Command::InterpolateSlices(ViewAxis::Axial));
        }
    });
    ui.separator();
    label_table_ui(ui, doc, state, commands);
}

/// Every label: visibility, colour, name, volume; the active one is highlighted.
fn label_table_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    state: &mut WorkflowState,
    commands: &mut Vec<Command>,
) {
    ui.heading("Labels");
    let Some(layer) = &doc.labels else {
        if ui.button("New label").clicked() {
            commands.push(Command::AddLabel);
        }
        return;
    };
    let fresh = state
        .volumes_ml
        .as_ref()
        .is_some_and(|(rev, _)| *rev == layer.revision);
    if !fresh {
        let histogram = layer.map.histogram();
        let voxel_ml = layer.map.geometry().voxel_volume_mm3() / 1000.0;
        let volumes = layer
            .map
            .table
            .iter()
            .map(|l| {
                let n = histogram.get(l.value as usize).copied().unwrap_or(0);
                (l.value, n as f64 * voxel_ml)
            })
            .collect();
        state.volumes_ml = Some((layer.revision, volumes));
    }
    let volumes = state
        .volumes_ml
        .as_ref()
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for info in layer.map.table.iter() {
        ui.horizontal(|ui| {
            let active = doc.tools.active_label == info.value;
            if ui
                .radio(active, "")
                .on_hover_text("Make this the label tools paint")
                .clicked()
            {
                commands.push(Command::SetActiveLabel(info.value));
            }
            label_row_ui(ui, info, commands);
            if let Some((_, ml)) = volumes.iter().find(|(v, _)| *v == info.value) {
                ui.small(format!("{ml:.1} ml"));
            }
        });
    }
    if ui
        .button("New label")
        .on_hover_text("Add a label and make it active")
        .clicked()
    {
        commands.push(Command::AddLabel);
    }
    let mut opacity = layer.opacity;
    if ui
        .add(egui::Slider::new(&mut opacity, 0.0..=1.0).text("Label opacity"))
        .changed()
    {
        commands.push(Command::SetLabelOpacity(opacity));
    }
}

fn label_row_ui(ui: &mut egui::Ui, info: &LabelInfo, commands: &mut Vec<Command>) {
    let mut visible = info.visible;
    if ui
        .checkbox(&mut visible, "")
        .on_hover_text("Visible")
        .changed()
    {
        commands.push(Command::SetLabelVisible(info.value, visible));
    }
    let [r, g, b, _] = info.color.0;
    let mut rgb = [r, g, b];
    if ui
        .color_edit_button_srgb(&mut rgb)
        .on_hover_text("Display colour")
        .changed()
    {
        commands.push(Command::SetLabelColor(
            info.value,
            Rgba::rgb(rgb[0], rgb[1], rgb[2]),
        ));
    }
    let mut name = info.name.clone();
    if ui
        .add(egui::TextEdit::singleline(&mut name).desired_width(110.0))
        .on_hover_text("Label name")
        .changed()
    {
        commands.push(Command::RenameLabel(info.value, name));
    }
}

fn print_profile_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    value: u16,
    name: &str,
    color: Rgba,
    commands: &mut Vec<Command>,
) {
    let mut profile = doc.mesh_plan.profile(value, name, color);
    let mut settings = doc.mesh_plan.settings(value);
    let mut profile_changed = false;
    let mut settings_changed = false;
    egui::Grid::new(("profile", value))
        .num_columns(2)
        .show(ui, |ui| {
            ui.label("Material");
            profile_changed |= ui
                .add(egui::TextEdit::singleline(&mut profile.material).desired_width(100.0))
                .on_hover_text("What the print operator loads (PLA white, TPU 85A, …)")
                .changed();
            ui.end_row();
            ui.label("Print colour");
            let [r, g, b, _] = profile.color.0;
            let mut rgb = [r, g, b];
            if ui.color_edit_button_srgb(&mut rgb).changed() {
                profile.color = Rgba::rgb(rgb[0], rgb[1], rgb[2]);
                profile_changed = true;
            }
            ui.end_row();
            ui.label("Infill %");
            profile_changed |= ui
                .add(egui::DragValue::new(&mut profile.infill_percent).range(0..=100))
                .changed();
            ui.end_row();
            ui.label("Walls");
            profile_changed |= ui
                .add(egui::DragValue::new(&mut profile.wall_count).range(1..=20))
                .changed();
            ui.end_row();
            ui.label("Smoothing");
            settings_changed |= ui
                .add(egui::DragValue::new(&mut settings.smoothing_iterations).range(0..=100))
                .on_hover_text("Taubin smoothing passes (0: the voxel staircase stays)")
                .changed();
            ui.end_row();
            ui.label("Keep triangles");
            let mut percent = settings.keep_fraction * 100.0;
            if ui
                .add(egui::Slider::new(&mut percent, 5.0..=100.0).suffix(" %"))
                .on_hover_text("Decimation: the fraction of triangles kept")
                .changed()
            {
                settings.keep_fraction = percent / 100.0;
                settings_changed = true;
            }
            ui.end_row();
        });
    if profile_changed {
        commands.push(Command::SetPrintProfile(value, profile));
    }
    if settings_changed {
        commands.push(Command::SetMeshSettings(value, settings));
    }
}

fn format_name(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::StlBinary => "STL",
        ExportFormat::StlAscii => "STL (ASCII)",
        ExportFormat::Obj => "OBJ",
        ExportFormat::Ply => "PLY",
        ExportFormat::ThreeMf => "3MF",
    }
}

fn format_extension(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::StlBinary | ExportFormat::StlAscii => "stl",
        ExportFormat::Obj => "obj",
        ExportFormat::Ply => "ply",
        ExportFormat::ThreeMf => "3mf",
    }
}

fn export_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    state: &mut WorkflowState,
    commands: &mut Vec<Command>,
) {
    let Some(layer) = &doc.labels else {
        ui.label("Segment something first (Segment or Edit).");
        return;
    };
    ui.heading("Parts");
    for info in layer.map.table.iter().filter(|l| l.visible) {
        egui::CollapsingHeader::new(format!("{} {}", info.value, info.name))
            .id_salt(("part", info.value))
            .show(ui, |ui| {
                print_profile_ui(ui, doc, info.value, &info.name, info.color, commands)
            });
    }
    ui.small("Hidden labels are left out of the model.");
    ui.separator();
    if ui
        .button("Build meshes")
        .on_hover_text("Surface every visible label with its settings and check accuracy")
        .clicked()
    {
        commands.push(Command::BuildMeshes);
    }
    ui.horizontal(|ui| {
        egui::ComboBox::from_id_salt("export format")
            .selected_text(format_name(state.export_format))
            .show_ui(ui, |ui| {
                for format in [
                    ExportFormat::ThreeMf,
                    ExportFormat::StlBinary,
                    ExportFormat::Obj,
                    ExportFormat::Ply,
                ] {
                    ui.selectable_value(&mut state.export_format, format, format_name(format));
                }
            });
        if ui
            .button("Export…")
            .on_hover_text("Build the meshes and write them (3MF keeps colours and print settings)")
            .clicked()
        {
            let ext = format_extension(state.export_format);
            let picked: Option<PathBuf> = rfd::FileDialog::new()
                .add_filter(format_name(state.export_format), &[ext])
                .set_file_name(format!("model.{ext}"))
                .save_file();
            match picked {
                Some(path) => commands.push(Command::ExportModel {
                    path,
                    format: state.export_format,
                }),
                None => commands.push(Command::DismissMessage),
            }
        }
    });
    if let Some(export) = &doc.last_export {
        for file in &export.files {
            ui.small(format!("wrote {}", file.display()));
        }
    }
    if let Some(report) = &doc.accuracy {
        ui.separator();
        ui.heading("Accuracy");
        ui.small(&report.rule);
        ui.monospace(report.summary());
    }
}

fn volume_combo(ui: &mut egui::Ui, doc: &Document, label: &str, index: &mut usize) -> bool {
    let mut changed = false;
    let name = |i: usize| {
        doc.volumes
            .get(i)
            .map(|v| short(&v.image.meta.description, 26))
            .unwrap_or_else(|| "—".to_string())
    };
    egui::ComboBox::from_label(label)
        .selected_text(name(*index))
        .show_ui(ui, |ui| {
            for i in 0..doc.volumes.len() {
                changed |= ui.selectable_value(index, i, name(i)).changed();
            }
        });
    changed
}

fn register_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    state: &mut WorkflowState,
    commands: &mut Vec<Command>,
) {
    if doc.volumes.len() < 2 {
        ui.label("Load two images (e.g. CT and MR) to register them.");
        return;
    }
    let Some(reg) = &doc.registration else {
        volume_combo(ui, doc, "Fixed", &mut state.register_fixed);
        volume_combo(ui, doc, "Moving", &mut state.register_moving);
        if ui
            .button("Start registration")
            .on_hover_text("Show the moving image over the fixed one to align it")
            .clicked()
        {
            commands.push(Command::BeginRegistration {
                fixed: state.register_fixed,
                moving: state.register_moving,
            });
        }
        return;
    };
    let name = |i: usize| {
        doc.volumes
            .get(i)
            .map(|v| short(&v.image.meta.description, 26))
            .unwrap_or_default()
    };
    ui.label(format!("Fixed: {}", name(reg.fixed)));
    ui.label(format!("Moving: {}", name(reg.moving)));
    ui.horizontal_wrapped(|ui| {
        for method in RegistrationMethod::ALL {
            if ui
                .selectable_label(reg.method == method, method.name())
                .clicked()
            {
                commands.push(Command::SetRegistrationMethod(method));
            }
        }
    });
    if reg.method == RegistrationMethod::Landmarks {
        ui.label(format!("{} landmark pairs", reg.landmarks.len()));
        if ui
            .button("Add pair at the crosshair")
            .on_hover_text("Put the crosshair on a feature in the fixed image and nudge the moving image until it matches, then add the pair")
            .clicked()
        {
            let p = nalgebra::Point3::from(doc.cursor_world);
            let q = reg.moving_from_fixed.transform_point(&p);
            commands.push(Command::AddLandmark {
                fixed: doc.cursor_world,
                moving: [q.x, q.y, q.z],
            });
        }
    }
    if ui
        .button("Run registration")
        .on_hover_text("Starts from the current (nudged) alignment")
        .clicked()
    {
        commands.push(Command::RunRegistration);
    }
    ui.separator();
    ui.label("Nudge (or Alt + drag in a view, Alt + right-drag to turn)");
    let nudge = |t: [f64; 3], r: [f64; 3]| Command::NudgeRegistration {
        translate_mm: t,
        rotate_deg: r,
    };
    egui::Grid::new("nudge").show(ui, |ui| {
        for (axis, name) in ["R-L (x)", "A-P (y)", "I-S (z)"].iter().enumerate() {
            ui.label(*name);
            let mut v = [0.0; 3];
            v[axis] = -1.0;
            if ui.small_button("-1 mm").clicked() {
                commands.push(nudge(v, [0.0; 3]));
            }
            v[axis] = 1.0;
            if ui.small_button("+1 mm").clicked() {
                commands.push(nudge(v, [0.0; 3]));
            }
            let mut r = [0.0; 3];
            r[axis] = -1.0;
            if ui.small_button("-1°").clicked() {
                commands.push(nudge([0.0; 3], r));
            }
            r[axis] = 1.0;
            if ui.small_button("+1°").clicked() {
                commands.push(nudge([0.0; 3], r));
            }
            ui.end_row();
        }
    });
    ui.horizontal(|ui| {
        for (mode, title) in [
            (QaMode::Overlay, "Overlay"),
            (QaMode::Checkerboard, "Checkerboard"),
        ] {
            if ui.selectable_label(reg.qa == mode, title).clicked() {
                commands.push(Command::SetQaMode(mode));
            }
        }
    });
    let mut show = reg.show_confidence;
    if ui
        .add_enabled(
            reg.confidence.is_some(),
            egui::Checkbox::new(&mut show, "Confidence map"),
        )
        .on_hover_text("Red where the images disagree after registration")
        .changed()
    {
        commands.push(Command::SetRegistrationConfidence(show));
    }
    for line in &reg.figures {
        ui.label(line);
    }
    ui.horizontal(|ui| {
        if ui
            .button("Accept")
            .on_hover_text("Keep this alignment: the moving image is drawn through it from now on")
            .clicked()
        {
            commands.push(Command::AcceptRegistration);
        }
        if ui.button("Reject").on_hover_text("Discard it").clicked() {
            commands.push(Command::RejectRegistration);
        }
    });
}

fn preprocess_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    state: &mut WorkflowState,
    commands: &mut Vec<Command>,
) {
    let Some(index) = doc.active else {
        ui.label("Load an image first.");
        return;
    };
    let Some(entry) = doc.active_volume() else {
        return;
    };
    ui.label(format!("On {}", short(&entry.image.meta.description, 30)));
    ui.small("Each step adds a new volume; the original is kept.");
    let ct = entry.is_hounsfield();
    let mut run = |op: PreprocessOp| commands.push(Command::Preprocess { volume: index, op });
    if ui
        .button("Denoise")
        .on_hover_text("Edge-preserving curvature diffusion with the CT or MR preset")
        .clicked()
    {
        run(PreprocessOp::Denoise(if ct {
            DenoisePreset::Ct
        } else {
            DenoisePreset::Mr
        }));
    }
    if ui
        .add_enabled(!ct, egui::Button::new("Bias correction"))
        .on_hover_text("Remove the MR's smooth intensity shading (N4-like)")
        .clicked()
    {
        run(PreprocessOp::BiasCorrection);
    }
    if ui
        .button("Normalise (z-score)")
        .on_hover_text("Zero mean, unit variance inside the body")
        .clicked()
    {
        run(PreprocessOp::NormaliseZScore);
    }
    ui.horizontal(|ui| {
        ui.add(
            egui::DragValue::new(&mut state.resample_mm)
                .range(0.2..=5.0)
                .suffix(" mm"),
        );
        if ui
            .button("Resample isotropic")
            .on_hover_text("Trilinear resampling to cubic voxels of this size")
            .clicked()
        {
            run(PreprocessOp::ResampleIsotropic(state.resample_mm));
        }
    });
    if ui
        .add_enabled(ct, egui::Button::new("Metal artefact reduction"))
        .on_hover_text("Normalised MAR: inpaint the metal traces in projection space (CT only)")
        .clicked()
    {
        run(PreprocessOp::MetalArtefactReduction);
    }
}
