//! The toolbar, the data panel (volumes, window/level, cursor) and the status bar.

use super::slice_view::Hover;
use super::theme;
use super::{FileStatus, PickKind};
use crate::document::{
    Command, Document, Layout, Selection, Severity, ViewKind, VolumeEntry, WindowLevel, CT_PRESETS,
};
use std::path::PathBuf;

/// The File menu (projects, recent files, the planning report, screenshots) and the open
/// project's name with its unsaved-changes marker. A path the user must choose is asked for
/// by the caller: `picked` says which.
pub fn file_menu_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    files: &FileStatus,
    picked: &mut Option<PickKind>,
    commands: &mut Vec<Command>,
) {
    ui.menu_button("File", |ui| {
        if ui
            .button("Open project…")
            .on_hover_text("Open a .fuseprint project folder (Ctrl+O)")
            .clicked()
        {
            *picked = Some(PickKind::OpenProject);
            ui.close();
        }
        if ui
            .button("Save project")
            .on_hover_text("Save images, labels, transforms and meshes (Ctrl+S)")
            .clicked()
        {
            if files.project_path.is_some() {
                commands.push(Command::SaveProject);
            } else {
                *picked = Some(PickKind::SaveProject);
            }
            ui.close();
        }
        if ui
            .button("Save project as…")
            .on_hover_text("Save as a new project folder (Ctrl+Shift+S)")
            .clicked()
        {
            *picked = Some(PickKind::SaveProject);
            ui.close();
        }
        ui.menu_button("Open recent", |ui| {
            if files.recent.is_empty() {
                ui.label("Nothing opened yet.");
            }
            for path in &files.recent {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string());
                if ui
                    .button(name)
                    .on_hover_text(path.display().to_string())
                    .clicked()
                {
                    commands.push(Command::LoadPath(path.clone()));
                    ui.close();
                }
            }
        });
        ui.separator();
        let has_image = !doc.volumes.is_empty();
        if ui
            .add_enabled(has_image, egui::Button::new("Planning report…"))
            .on_hover_text(
                "One-page HTML report: fused views, the model, registration and accuracy \
                 figures, label volumes and the print profile",
            )
            .clicked()
        {
            *picked = Some(PickKind::SaveReport);
            ui.close();
        }
        ui.menu_button("Screenshot", |ui| {
            for view in ViewKind::ALL {
                let name = match view {
                    ViewKind::Slice(axis) => format!("{} view…", axis.name()),
                    ViewKind::ThreeD => "3D view…".to_string(),
                };
                if ui
                    .add_enabled(has_image, egui::Button::new(name))
                    .on_hover_text("Save a PNG of this view as it is shown")
                    .clicked()
                {
                    *picked = Some(PickKind::SaveScreenshot(view));
                    ui.close();
                }
            }
        });
    });
    let name = files.project_name.as_deref().unwrap_or("Unsaved session");
    let marker = if files.modified { " *" } else { "" };
    ui.label(format!("{name}{marker}"))
        .on_hover_text(match &files.project_path {
            Some(path) if files.modified => format!("{} (unsaved changes)", path.display()),
            Some(path) => path.display().to_string(),
            None => "Not saved as a project yet (File ▸ Save project as…)".to_string(),
        });
}

pub fn toolbar_ui(ui: &mut egui::Ui, doc: &Document, commands: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        if ui.button("Open file…").clicked() {
            let picked = rfd::FileDialog::new()
                .add_filter("NIfTI", &["nii", "gz"])
                .add_filter("All files", &["*"])
                .pick_file();
            commands.push(picked_or_browse(picked));
        }
        if ui.button("Open DICOM folder…").clicked() {
            commands.push(picked_or_browse(rfd::FileDialog::new().pick_folder()));
        }
        if ui.button("Browse…").clicked() {
            commands.push(Command::BrowseFolder(Some(start_folder())));
        }
        if ui.button("Add sample study").clicked() {
            commands.push(Command::LoadSample);
        }
        ui.separator();
        let history = doc.labels.as_ref().map(|l| &l.history);
        let can_undo = history.is_some_and(|h| h.can_undo());
        let can_redo = history.is_some_and(|h| h.can_redo());
        if ui
            .add_enabled(can_undo, egui::Button::new("Undo"))
            .on_hover_text("Undo the last label edit (Ctrl+Z)")
            .clicked()
        {
            commands.push(Command::Undo);
        }
        if ui
            .add_enabled(can_redo, egui::Button::new("Redo"))
            .on_hover_text("Redo (Ctrl+Y or Ctrl+Shift+Z)")
            .clicked()
        {
            commands.push(Command::Redo);
        }
        let four_up = doc.layout == Layout::FourUp;
        if ui
            .selectable_label(four_up, "Four views")
            .on_hover_text("Axial, coronal, sagittal and 3D. Double-click a view (or press M over it) to maximise it")
            .clicked()
        {
            commands.push(Command::SetLayout(Layout::FourUp));
        }
        for task in &doc.tasks {
            ui.separator();
            ui.label(&task.label);
            ui.add(
                egui::ProgressBar::new(task.fraction)
                    .desired_width(160.0)
                    .text(format!("{} {:.0} %", task.stage, task.fraction * 100.0)),
            );
            if ui
                .button("Stop")
                .on_hover_text(format!("Cancel {}", task.label))
                .clicked()
            {
                commands.push(Command::CancelTask(task.id));
            }
        }
        if let Some(load) = &doc.loading {
            ui.separator();
            ui.label(&load.label);
            ui.add(
                egui::ProgressBar::new(load.fraction)
                    .desired_width(220.0)
                    .show_percentage()
                    .text(format!("{} {:.0} %", load.stage, load.fraction * 100.0)),
            );
            if ui.button("Cancel").clicked() {
                commands.push(Command::CancelLoad);
            }
        }
    });
}

/// A system dialog's answer; with no dialog service on this desktop (`None` without a session
/// bus) the built-in browser opens instead, so the user is never left without a way in.
fn picked_or_browse(picked: Option<PathBuf>) -> Command {
    match picked {
        Some(path) => Command::LoadPath(path),
        None if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() => {
            Command::BrowseFolder(Some(start_folder()))
        }
        None => Command::BrowseFolder(None),
    }
}

fn start_folder() -> PathBuf {
    std::env::current_dir()
        .ok()
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"))
}

pub fn status_ui(
    ui: &mut egui::Ui,
    doc: &Document,
    hover: Option<Hover>,
    commands: &mut Vec<Command>,
) {
    ui.horizontal(|ui| {
        let unit = doc
            .active_volume()
            .map(|e| if e.is_hounsfield() { " HU" } else { "" })
            .unwrap_or("");
        let (what, world, value) = match hover {
            Some(h) => ("Mouse", h.world, h.value),
            None => (
                "Cursor",
                doc.cursor_world,
                doc.active.and_then(|a| doc.value_at(a, doc.cursor_point())),
            ),
        };
        ui.label(format!(
            "{what}  LPS ({:.1}, {:.1}, {:.1}) mm",
            world[0], world[1], world[2]
        ));
        ui.separator();
        match value {
            Some(v) => ui.label(format!("value {v:.1}{unit}")),
            None => ui.label("outside the volume"),
        };
        ui.separator();
        ui.label(format!(
            "Tool: {} · {}",
            doc.tools.tool.name(),
            doc.active_label_name()
        ));
        ui.separator();
        ui.label(format!(
            "Inference: {}",
            doc.backend.as_deref().unwrap_or("starting…")
        ));
        if let Some(message) = &doc.message {
            ui.separator();
            let text = egui::RichText::new(&message.text);
            let response = match message.severity {
                Severity::Info => ui.label(text),
                Severity::Warning => ui.label(text.color(theme::WARNING_TEXT)),
                Severity::Error => ui.label(text.color(theme::ERROR_TEXT).strong()),
            };
            response.on_hover_text(match message.severity {
                Severity::Info => "Notice",
                Severity::Warning => "Warning",
                Severity::Error => "Error: stays until dismissed",
            });
            if ui.small_button("Dismiss").clicked() {
                commands.push(Command::DismissMessage);
            }
        }
    });
}

/// Studies and series (the loaded volumes), label maps, meshes and transforms; clicking one
/// selects it for the properties tab.
pub fn data_panel_ui(ui: &mut egui::Ui, doc: &Document, commands: &mut Vec<Command>) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        ui.heading("Volumes");
        if doc.volumes.is_empty() {
            ui.label("None loaded.");
        }
        for (index, entry) in doc.volumes.iter().enumerate() {
            ui.horizontal(|ui| {
                let selected = doc.active == Some(index);
                if ui
                    .selectable_label(selected, &entry.image.meta.description)
                    .on_hover_text(format!("{}\n{}", entry.summary(), entry.image.meta.source))
                    .clicked()
                {
                    commands.push(Command::Select(Some(Selection::Volume(index))));
                }
            });
            ui.horizontal(|ui| {
                ui.small(entry.summary());
                if ui
                    .small_button("Remove")
                    .on_hover_text("Close this volume")
                    .clicked()
                {
                    commands.push(Command::RemoveVolume(index));
                }
            });
            for warning in &entry.image.meta.warnings {
                ui.colored_label(theme::ERROR_TEXT, warning);
            }
        }
        ui.separator();
        ui.heading("Label maps");
        match &doc.labels {
            None => {
                ui.label("None yet: threshold, grow or paint to start one.");
            }
            Some(layer) => {
                let on = doc
                    .label_reference()
                    .map(|(_, v)| short(&v.image.meta.description, 24))
                    .unwrap_or_else(|| "a closed volume".to_string());
                let selected = doc.selection == Some(Selection::LabelMap);
                if ui
                    .selectable_label(selected, format!("Labels on {on}"))
                    .clicked()
                {
                    commands.push(Command::Select(Some(Selection::LabelMap)));
                }
                for info in layer.map.table.iter() {
                    ui.horizontal(|ui| {
                        let mut visible = info.visible;
                        if ui
                            .checkbox(&mut visible, "")
                            .on_hover_text("Show or hide this label")
                            .changed()
                        {
                            commands.push(Command::SetLabelVisible(info.value, visible));
                        }
                        let (rect, _) =
                            ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                        ui.painter().rect_filled(rect, 2.0, theme::rgba(info.color));
                        let selected = doc.selection == Some(Selection::Label(info.value));
                        if ui
                            .selectable_label(selected, format!("{} {}", info.value, info.name))
                            .clicked()
                        {
                            commands.push(Command::Select(Some(Selection::Label(info.value))));
                        }
                    });
                }
            }
        }
        ui.separator();
        ui.heading("Meshes");
        if doc.meshes.is_empty() {
            ui.label("None built.");
        }
        for (index, mesh) in doc.meshes.iter().enumerate() {
            let selected = doc.selection == Some(Selection::Mesh(index));
            if ui
                .selectable_label(
                    selected,
                    format!("{} · {:.1} ml", mesh.name, mesh.volume_ml),
                )
                .clicked()
            {
                commands.push(Command::Select(Some(Selection::Mesh(index))));
            }
        }
        ui.separator();
        ui.heading("Transforms");
        if doc.transforms.is_empty() {
            ui.label("None accepted.");
        }
        for (index, transform) in doc.transforms.iter().enumerate() {
            let selected = doc.selection == Some(Selection::Transform(index));
            if ui.selectable_label(selected, &transform.name).clicked() {
                commands.push(Command::Select(Some(Selection::Transform(index))));
            }
        }
    });
}

/// Window/level, overlay and cursor of the active volume (the volume's properties).
pub fn volume_properties_ui(ui: &mut egui::Ui, doc: &Document, commands: &mut Vec<Command>) {
    if let (Some(index), Some(entry)) = (doc.active, doc.active_volume()) {
        ui.strong(entry.summary());
        ui.label(format!(
            "Orientation {}",
            entry.image.volume.geometry().orientation_code()
        ));
        ui.separator();
        window_level_ui(ui, index, entry, commands);
        ui.separator();
        overlay_ui(ui, doc, index, commands);
        ui.separator();
        ui.heading("Cursor");
        let [x, y, z] = doc.cursor_world;
        ui.label(format!("LPS ({x:.1}, {y:.1}, {z:.1}) mm"));
        if ui.button("Reset zoom and pan").clicked() {
            commands.push(Command::ResetViews);
        }
    }
}

fn overlay_ui(ui: &mut egui::Ui, doc: &Document, active: usize, commands: &mut Vec<Command>) {
    ui.heading("Overlay");
    let current = doc.overlay.map(|o| o.volume).filter(|v| *v != active);
    let name = |v: Option<usize>| {
        v.and_then(|v| doc.volumes.get(v))
            .map(|e| short(&e.image.meta.description, 16))
            .unwrap_or_else(|| "None".to_string())
    };
    egui::ComboBox::from_label("blended")
        .selected_text(name(current))
        .width(LEFT_COMBO_WIDTH)
        .show_ui(ui, |ui| {
            if ui.selectable_label(current.is_none(), "None").clicked() {
                commands.push(Command::SetOverlay(None));
            }
            for index in (0..doc.volumes.len()).filter(|v| *v != active) {
                if ui
                    .selectable_label(current == Some(index), name(Some(index)))
                    .clicked()
                {
                    commands.push(Command::SetOverlay(Some(index)));
                }
            }
        });
    if let Some(overlay) = doc.overlay.filter(|o| Some(o.volume) == current) {
        let mut opacity = overlay.opacity;
        if ui
            .add(egui::Slider::new(&mut opacity, 0.0..=1.0).text("Opacity"))
            .changed()
        {
            commands.push(Command::SetOverlayOpacity(opacity));
        }
    }
}

const LEFT_COMBO_WIDTH: f32 = 160.0;

/// At most `max` characters, with an ellipsis when cut.
pub fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

fn window_level_ui(
    ui: &mut egui::Ui,
    index: usize,
    entry: &VolumeEntry,
    commands: &mut Vec<Command>,
) {
    ui.heading("Window / level");
    let set = |window: WindowLevel| Command::SetWindowLevel {
        volume: index,
        window,
    };
    ui.horizontal_wrapped(|ui| {
        if entry.is_hounsfield() {
            for preset in CT_PRESETS {
                let active = entry.window == preset.window;
                if ui.selectable_label(active, preset.name).clicked() {
                    commands.push(set(preset.window));
                }
            }
        }
        let active = entry.window == entry.auto_window;
        if ui.selectable_label(active, "Auto").clicked() {
            commands.push(set(entry.auto_window));
        }
    });
    let (low, high) = entry.value_range;
    let span = (high - low).max(1.0);
    let mut center = entry.window.center;
    let mut width = entry.window.width;
    let c = ui.add(egui::Slider::new(&mut center, low..=high).text("Level"));
    let w = ui.add(
        egui::Slider::new(
            &mut width,
            WindowLevel::MIN_WIDTH.max(span / 1000.0)..=span * 2.0,
        )
        .logarithmic(true)
        .text("Window"),
    );
    if c.changed() || w.changed() {
        commands.push(set(WindowLevel::new(center, width)));
    }
}

pub fn help_ui(ui: &mut egui::Ui) {
    ui.label("Click or drag: move the crosshair (Navigate tool)");
    ui.label("Double-click a view or M: maximise / four views");
    ui.label("B brush, E eraser, S sphere, F fill, X scissors, G grow, Esc navigate");
    ui.label("Ctrl+Z undo, Ctrl+Y or Ctrl+Shift+Z redo");
    ui.label("Alt + drag / Alt + arrows: nudge the moving image while registering");
    ui.label("Wheel, arrow up/down, Page Up/Down: slices");
    ui.label("Ctrl + wheel or right-drag: zoom");
    ui.label("Middle-drag: pan");
    ui.label("Shift + drag: window/level");
    ui.label("Drop a NIfTI file or DICOM folder to open it");
    ui.add_space(8.0);
    ui.small("Radiological convention: patient left on screen right (axial, coronal); anterior on screen left (sagittal).");
}
