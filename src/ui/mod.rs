//! Layer 5: the desktop window's widgets. Reads a `&Document`, returns `Command`s; never runs
//! an algorithm, never touches files (the file dialog only yields a path).

mod dialogs;
mod panels;
pub mod slice_view;
pub mod theme;

use crate::document::{Command, Document, ViewAxis};
use slice_view::{Hover, SliceViewCache};

/// Widget state that is not part of the document: texture caches and the mouse read-out.
#[derive(Default)]
pub struct UiState {
    views: [SliceViewCache; 3],
    pub hover: Option<Hover>,
}

/// Draws the whole window for one frame.
pub fn show(ui: &mut egui::Ui, doc: &Document, state: &mut UiState) -> Vec<Command> {
    let mut commands = Vec::new();
    ui.ctx().input(|i| {
        for file in &i.raw.dropped_files {
            let path = file.path();
            if !path.as_os_str().is_empty() {
                commands.push(Command::LoadPath(path.to_path_buf()));
            }
        }
    });
    state.hover = None;

    egui::Panel::top("toolbar").show(ui, |ui| panels::toolbar_ui(ui, doc, &mut commands));
    egui::Panel::bottom("status").show(ui, |ui| {
        panels::status_ui(ui, doc, state.hover, &mut commands)
    });
    egui::Panel::left("data")
        .default_size(theme::LEFT_PANEL_WIDTH)
        .min_size(theme::LEFT_PANEL_WIDTH)
        .show(ui, |ui| panels::data_panel_ui(ui, doc, &mut commands));
    egui::CentralPanel::default_margins().show(ui, |ui| views_ui(ui, doc, state, &mut commands));

    if let Some(choice) = &doc.series_choice {
        dialogs::series_table_ui(ui.ctx(), choice, &mut commands);
    }
    if let Some(listing) = &doc.browser {
        dialogs::file_browser_ui(ui.ctx(), listing, &mut commands);
    }
    commands
}

/// Axial | coronal over sagittal | help, splitting the central area in four.
fn views_ui(ui: &mut egui::Ui, doc: &Document, state: &mut UiState, commands: &mut Vec<Command>) {
    let area = ui.available_rect_before_wrap();
    ui.allocate_rect(area, egui::Sense::hover());
    if doc.active_volume().is_none() {
        ui.put(
            area,
            egui::Label::new("Open a DICOM folder or a NIfTI file, or drop one here."),
        );
        return;
    }
    let gap = 4.0;
    let half = egui::vec2((area.width() - gap) / 2.0, (area.height() - gap) / 2.0);
    let cell = |col: f32, row: f32| {
        egui::Rect::from_min_size(
            area.min + egui::vec2(col * (half.x + gap), row * (half.y + gap)),
            half,
        )
    };
    let cells = [cell(0.0, 0.0), cell(1.0, 0.0), cell(0.0, 1.0)];
    for axis in ViewAxis::ALL {
        slice_view::slice_view_ui(
            ui,
            cells[axis.index()],
            doc,
            axis,
            &mut state.views[axis.index()],
            &mut state.hover,
            commands,
        );
    }
    let help = cell(1.0, 1.0).shrink(12.0);
    ui.scope_builder(egui::UiBuilder::new().max_rect(help), |ui| {
        panels::help_ui(ui, doc)
    });
}
