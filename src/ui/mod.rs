//! Layer 5: the desktop window's widgets. Reads a `&Document`, returns `Command`s; never runs
//! an algorithm, never touches files (the file dialog only yields a path).

mod dialogs;
pub mod four_view;
mod measure_panel;
mod panels;
pub mod slice_view;
pub mod theme;
pub mod view3d;
mod view_panel;
mod workflow;

use crate::document::{Command, Document, Layout, MeasureTool, RegionShape, Tool, ViewKind};
use slice_view::{Hover, SliceViewCache};
use std::collections::VecDeque;
use std::path::PathBuf;
pub use workflow::{Tab, WorkflowState};

/// Widget state that is not part of the document: texture caches, the mouse read-out and the
/// workflow panels' unsaved inputs.
#[derive(Default)]
pub struct UiState {
    views: [SliceViewCache; 3],
    view3d: view3d::View3dState,
    pub hover: Option<Hover>,
    pub workflow: WorkflowState,
    /// What the app tells the window about its files (set by the app before each frame).
    pub files: FileStatus,
    pub picker: FilePicker,
    /// Where each view (axial, coronal, sagittal, 3D) was drawn this frame, for screenshots.
    pub view_rects: [Option<egui::Rect>; 4],
    /// The built-in "save as" prompt used when no system file dialog is available.
    save_prompt: Option<(PickKind, String)>,
}

impl UiState {
    /// Drops cached slice pictures (the document was replaced by another).
    pub fn forget_views(&mut self) {
        self.views = Default::default();
    }
}

/// The project and file state the window shows; plain text so the widgets decide nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileStatus {
    /// The open project's name and folder (`None` before the first save).
    pub project_name: Option<String>,
    pub project_path: Option<PathBuf>,
    /// Changes since the last save or open.
    pub modified: bool,
    /// A question waiting for the user's answer.
    pub question: Option<Prompt>,
    /// A crashed session offered for recovery, described.
    pub recovery: Option<String>,
    /// Recently opened paths, newest first.
    pub recent: Vec<PathBuf>,
}

/// A yes/no question (e.g. replace an existing project?).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub text: String,
    pub yes: String,
    pub no: String,
}

/// What a file dialog is asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PickKind {
    OpenProject,
    SaveProject,
    SaveReport,
    SaveScreenshot(ViewKind),
}

impl PickKind {
    fn default_name(self) -> &'static str {
        match self {
            PickKind::OpenProject | PickKind::SaveProject => "plan.fuseprint",
            PickKind::SaveReport => "planning-report.html",
            PickKind::SaveScreenshot(_) => "view.png",
        }
    }
}

/// Asks the system file dialog for a path, unless paths were scripted: tests and scripts
/// hand the window the answers in advance, so no dialog ever opens for them.
#[derive(Debug, Default)]
pub struct FilePicker {
    scripted: VecDeque<PathBuf>,
    /// Never open a system dialog (set once anything is scripted).
    pub scripted_only: bool,
}

impl FilePicker {
    /// The next dialog answers `path` instead of opening.
    pub fn script(&mut self, path: PathBuf) {
        self.scripted.push_back(path);
        self.scripted_only = true;
    }

    /// A path for `kind`; `None` when the user cancelled (or no dialog could open).
    fn pick(&mut self, kind: PickKind) -> Option<PathBuf> {
        if let Some(path) = self.scripted.pop_front() {
            return Some(path);
        }
        if self.scripted_only {
            return None;
        }
        let dialog = rfd::FileDialog::new().set_file_name(kind.default_name());
        match kind {
            PickKind::OpenProject => dialog.pick_folder(),
            PickKind::SaveProject => dialog.save_file(),
            PickKind::SaveReport => dialog.add_filter("HTML", &["html"]).save_file(),
            PickKind::SaveScreenshot(_) => dialog.add_filter("PNG", &["png"]).save_file(),
        }
    }

    /// Whether a system dialog can be shown at all (the portal needs a session bus).
    fn has_system_dialogs(&self) -> bool {
        !self.scripted_only && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
    }
}

/// The command for a picked path of `kind`.
fn command_for(kind: PickKind, path: PathBuf) -> Command {
    match kind {
        PickKind::OpenProject => Command::OpenProject(path),
        PickKind::SaveProject => Command::SaveProjectAs(path),
        PickKind::SaveReport => Command::WriteReport(path),
        PickKind::SaveScreenshot(view) => Command::Screenshot { view, path },
    }
}

/// Asks for a path and queues its command; without any system dialog, opens the built-in
/// prompt (saves) or the built-in browser (opening a project).
fn pick_then(state: &mut UiState, kind: PickKind, commands: &mut Vec<Command>) {
    let has_dialogs = state.picker.has_system_dialogs();
    match state.picker.pick(kind) {
        Some(path) => commands.push(command_for(kind, path)),
        None if !has_dialogs && !state.picker.scripted_only => {
            let folder = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            if kind == PickKind::OpenProject {
                commands.push(Command::BrowseFolder(Some(folder)));
            } else {
                let name = folder.join(kind.default_name());
                state.save_prompt = Some((kind, name.display().to_string()));
            }
        }
        None => {}
    }
}

impl UiState {
    /// The four-view projection window's state (open, turning, its last cells).
    pub fn four_view(&self) -> &four_view::FourViewState {
        &self.workflow.four_view
    }

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
    file_shortcuts(ui.ctx(), state, &mut commands);
    shortcut_commands(ui.ctx(), &mut commands);

    // The File menu has its own row: the toolbar's progress bars and Stop buttons must stay
    // on screen in a narrow window.
    egui::Panel::top("menu_bar").show(ui, |ui| {
        ui.horizontal(|ui| {
            let mut picked = None;
            panels::file_menu_ui(ui, doc, &state.files, &mut picked, &mut commands);
            if let Some(kind) = picked {
                pick_then(state, kind, &mut commands);
            }
        });
    });
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
    if let Some(question) = &state.files.question {
        dialogs::question_ui(ui.ctx(), question, &mut commands);
    } else if let Some(offer) = &state.files.recovery {
        dialogs::recovery_ui(ui.ctx(), offer, &mut commands);
    }
    if state.workflow.four_view.is_open() {
        let scene = view3d::current_scene(doc, &mut state.view3d);
        four_view::show(ui.ctx(), scene, &state.workflow.four_view);
    }
    if let Some((kind, text)) = &mut state.save_prompt {
        match dialogs::save_prompt_ui(ui.ctx(), text) {
            Some(true) => {
                commands.push(command_for(*kind, PathBuf::from(text.trim())));
                state.save_prompt = None;
            }
            Some(false) => state.save_prompt = None,
            None => {}
        }
    }
    commands
}

/// Ctrl+S saves (asking where the first time), Ctrl+Shift+S saves as, Ctrl+O opens a project.
fn file_shortcuts(ctx: &egui::Context, state: &mut UiState, commands: &mut Vec<Command>) {
    use egui::{Key, Modifiers};
    let (save_as, save, open) = ctx.input_mut(|i| {
        let save_as = i.consume_key(Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
        let save = !save_as && i.consume_key(Modifiers::COMMAND, Key::S);
        let open = i.consume_key(Modifiers::COMMAND, Key::O);
        (save_as, save, open)
    });
    if save && state.files.project_path.is_some() {
        commands.push(Command::SaveProject);
    } else if save || save_as {
        pick_then(state, PickKind::SaveProject, commands);
    }
    if open {
        pick_then(state, PickKind::OpenProject, commands);
    }
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
    state.view_rects = [None; 4];
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
        state.view_rects[n] = Some(rect);
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
