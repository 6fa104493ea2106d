//! The toolbar, the data panel (volumes, window/level, cursor) and the status bar.

use super::slice_view::Hover;
use super::theme;
use crate::document::{Command, Document, VolumeEntry, WindowLevel, CT_PRESETS};
use std::path::PathBuf;

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
        if let Some(message) = &doc.message {
            ui.separator();
            ui.colored_label(theme::ERROR_TEXT, message);
            if ui.small_button("Dismiss").clicked() {
                commands.push(Command::DismissMessage);
            }
        }
    });
}

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
                    .clicked()
                {
                    commands.push(Command::SetActiveVolume(index));
                }
            });
            ui.horizontal(|ui| {
                ui.small(entry.summary());
                if ui.small_button("Remove").clicked() {
                    commands.push(Command::RemoveVolume(index));
                }
            });
            for warning in &entry.image.meta.warnings {
                ui.colored_label(theme::ERROR_TEXT, warning);
            }
        }
        if let (Some(index), Some(entry)) = (doc.active, doc.active_volume()) {
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
    });
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
fn short(text: &str, max: usize) -> String {
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

pub fn help_ui(ui: &mut egui::Ui, doc: &Document) {
    if let Some(entry) = doc.active_volume() {
        ui.strong(entry.summary());
        ui.label(format!(
            "Orientation {}",
            entry.image.volume.geometry().orientation_code()
        ));
        ui.add_space(8.0);
    }
    ui.label("Click or drag: move the crosshair");
    ui.label("Wheel, arrow up/down, Page Up/Down: slices");
    ui.label("Ctrl + wheel or right-drag: zoom");
    ui.label("Middle-drag: pan");
    ui.label("Shift + drag: window/level");
    ui.label("Drop a NIfTI file or DICOM folder to open it");
    ui.add_space(8.0);
    ui.small("Radiological convention: patient left on screen right (axial, coronal); anterior on screen left (sagittal).");
}
