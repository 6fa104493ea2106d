//! Layer 5: the desktop window's widgets. Reads a `&Document`, returns `Command`s; never runs
//! an algorithm, never touches files (the file dialog only yields a path).

mod dialogs;
mod measure_panel;
mod panels;
pub mod slice_view;
pub mod theme;
pub mod view3d;
mod view_panel;
mod workflow;

use crate::document::{Command, Document, Layout, MeasureTool, RegionShape, Tool, ViewKind};
use slice_view::{Hover, SliceViewCache};
pub use workflow::{Tab, WorkflowState};

/// Widget state that is not part of the document: texture caches, the mouse read-out and the
/// workflow panels' unsaved inputs.
#[derive(Default)]
pub struct UiState {
    views: [SliceViewCache; 3],
    view3d: view3d::View3dState,
    pub hover: Option<Hover>,
    pub workflow: WorkflowState,
}

impl UiState {
    /// What the 3D view asked the renderer for in the last frame (`None`: nothing drawn).
    pub fn last_3d_frame(&self) -> Option<&view3d::Frame3d> {
        self.view3d.last_frame.as_ref()
    }
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
    shortcut_commands(ui.ctx(), &mut commands);

    egui::Panel::top("toolbar").show(ui, |ui| panels::toolbar_ui(ui, doc, &mut commands));
    egui::Panel::bottom("status").show(ui, |ui| {
        panels::status_ui(ui, doc, state.hover, &mut commands)
    });
    egui::Panel::left("data")
        .default_size(theme::LEFT_PANEL_WIDTH)
        .min_size(theme::LEFT_PANEL_WIDTH)
        .show(ui, |ui| panels::data_panel_ui(ui, doc, &mut commands));
    egui::Panel::right("workflow")
        .default_size(theme::RIGHT_PANEL_WIDTH)
        .min_size(theme::RIGHT_PANEL_WIDTH)
        .show(ui, |ui| {
            workflow::workflow_ui(ui, doc, &mut state.workflow, &mut commands)
        });
    egui::CentralPanel::default_margins().show(ui, |ui| views_ui(ui, doc, state, &mut commands));

    if let Some(choice) = &doc.series_choice {
        dialogs::series_table_ui(ui.ctx(), choice, &mut commands);
    }
    if let Some(listing) = &doc.browser {
        dialogs::file_browser_ui(ui.ctx(), listing, &mut commands);
    }
    commands
}

/// Keys that work anywhere unless a text field has the keyboard: undo/redo and the tools.
fn shortcut_commands(ctx: &egui::Context, commands: &mut Vec<Command>) {
    use egui::{Key, Modifiers};
    if ctx.memory(|m| m.focused().is_some()) {
        return;
    }
    ctx.input_mut(|i| {
        if i.consume_key(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z)
            || i.consume_key(Modifiers::COMMAND, Key::Y)
        {
            commands.push(Command::Redo);
        } else if i.consume_key(Modifiers::COMMAND, Key::Z) {
            commands.push(Command::Undo);
        }
        for tool in Tool::ALL {
            let key = match tool {
                Tool::Navigate => Key::Escape,
                Tool::Brush => Key::B,
                Tool::Eraser => Key::E,
                Tool::Sphere => Key::S,
                Tool::Fill => Key::F,
                Tool::Scissors => Key::X,
                Tool::RegionGrow => Key::G,
            };
            if i.consume_key(Modifiers::NONE, key) {
                commands.push(Command::SetTool(tool));
            }
        }
        for (key, tool) in [
            (Key::D, MeasureTool::Distance),
            (Key::A, MeasureTool::Angle),
            (Key::R, MeasureTool::Region(RegionShape::Box)),
        ] {
            if i.consume_key(Modifiers::NONE, key) {
                commands.push(Command::SetMeasureTool(Some(tool)));
            }
        }
    });
}

/// Four-up (axial | coronal over sagittal | 3D) or one maximised view.
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
    let cells = [
        cell(0.0, 0.0),
        cell(1.0, 0.0),
        cell(0.0, 1.0),
        cell(1.0, 1.0),
    ];
    for (n, view) in ViewKind::ALL.into_iter().enumerate() {
        let rect = match doc.layout {
            Layout::FourUp => cells[n],
            Layout::Single(v) if v == view => area,
            Layout::Single(_) => continue,
        };
        match view {
            ViewKind::Slice(axis) => slice_view::slice_view_ui(
                ui,
                rect,
                doc,
                axis,
                &mut state.views[axis.index()],
                &mut state.hover,
                commands,
            ),
            ViewKind::ThreeD => view3d::show(ui, rect, doc, &mut state.view3d, commands),
        }
    }
}
