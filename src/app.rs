//! Composition root of the desktop window: owns the `Document` and the `JobSystem`, drains
//! finished jobs once per frame, draws `ui` and applies the `Command`s it returns.

mod frame_stats;
mod loading;
mod project_files;
pub(crate) mod report_pictures;
mod session;
mod startup;
mod tasks;

pub use session::{AppOptions, Start};

use crate::document::{
    labels::orientation_for, BrowserEntry, BrowserListing, Command, Document, ExportRecord,
    LoadStatus, ModelEntry, Selection, StatusMessage, TaskStatus, ViewKind,
};
use crate::inference::{BackendRequest, InferenceError};
use crate::jobs::{JobError, JobHandle, JobSystem, Lane};
use frame_stats::FrameStats;
use loading::{LoadOutcome, PendingScan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use tasks::{LabelOp, TaskOutcome};

/// Opens the desktop window: on `open` if given, otherwise on the bundled sample study.
pub fn run(open: Option<PathBuf>) -> ExitCode {
    let started = Instant::now();
    crate::jobs::background_global_pool();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("fuseprint")
            .with_inner_size([1500.0, 950.0])
            .with_drag_and_drop(true),
        wgpu_options: wgpu_options(),
        ..Default::default()
    };
    let result = eframe::run_native(
        "fuseprint",
        options,
        Box::new(move |cc| Ok(Box::new(App::with_start(cc, open, started)))),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: could not open the window: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Asks for the adapter's own limits (3D textures beyond wgpu's 2048 default) and for
/// filterable 32-bit float textures where the adapter has them, so later GPU views can sample
/// volumes directly.
fn wgpu_options() -> egui_wgpu::WgpuConfiguration {
    use egui_wgpu::wgpu;
    let mut config = egui_wgpu::WgpuConfiguration::default();
    if let egui_wgpu::WgpuSetup::CreateNew(create) = &mut config.wgpu_setup {
        create.device_descriptor =
            Arc::new(|adapter: &wgpu::Adapter| crate::render::device_descriptor(adapter));
    }
    config
}

/// Which adapter the window got and whether the device options took (later GPU views need them).
fn log_gpu(cc: &eframe::CreationContext<'_>) {
    let Some(render_state) = &cc.wgpu_render_state else {
        return;
    };
    let info = render_state.adapter.get_info();
    let device = &render_state.device;
    tracing::info!(
        "GPU: {} ({:?}); max 3D texture {}; float32 filterable: {}",
        info.name,
        info.backend,
        device.limits().max_texture_dimension_3d,
        device
            .features()
            .contains(egui_wgpu::wgpu::Features::FLOAT32_FILTERABLE)
    );
}

struct PendingLoad {
    label: String,
    handle: JobHandle<LoadOutcome>,
    /// The path opened, for the recent-files list.
    source: Option<PathBuf>,
}

/// A view's picture on its way from the renderer: which file, and the view's rectangle in
/// points with the scale it was drawn at.
struct Shot {
    path: PathBuf,
    rect: egui::Rect,
    pixels_per_point: f32,
    image: Arc<egui::ColorImage>,
}

struct PendingTask {
    id: u64,
    label: String,
    handle: JobHandle<TaskOutcome>,
}

pub struct App {
    document: Document,
    ui_state: crate::ui::UiState,
    jobs: JobSystem,
    loads: Vec<PendingLoad>,
    tasks: Vec<PendingTask>,
    next_task_id: u64,
    startup: Option<JobHandle<(String, Vec<ModelEntry>)>>,
    pending_scan: Option<PendingScan>,
    frame_stats: FrameStats,

    // Project files, autosave, recovery, report and screenshots (see app/session.rs).
    files: session::Files,
    shots: (
        std::sync::mpsc::Sender<Shot>,
        std::sync::mpsc::Receiver<Shot>,
    ),
    title: String,
    close_sent: bool,
}

impl App {
    /// Starts on the sample study (what `fuseprint` with no argument shows).
    pub fn new(cc: &eframe::CreationContext<'_>) -> Self {
        Self::with_start(cc, None, Instant::now())
    }

    /// Starts on `open` if given (else the sample); `started` is when the process began, for
    /// the start-to-first-frame figure.
    pub fn with_start(
        cc: &eframe::CreationContext<'_>,
        open: Option<PathBuf>,
        started: Instant,
    ) -> Self {
        let start = match open {
            Some(path) => Start::Path(path),
            None => Start::Sample,
        };
        Self::with_options(cc, AppOptions::per_user(start), started)
    }

    /// Starts on the sample with a chosen inference engine instead of FUSEPRINT_BACKEND's, so
    /// what the window shows does not depend on the environment (snapshot tests).
    pub fn with_backend(cc: &eframe::CreationContext<'_>, request: BackendRequest) -> Self {
        let mut options = AppOptions::per_user(Start::Sample);
        options.backend = Some(request);
        Self::with_options(cc, options, Instant::now())
    }

    /// Starts as `options` say: what to open, which inference engine, where autosaves and
    /// the recent list live.
    pub fn with_options(
        cc: &eframe::CreationContext<'_>,
        options: AppOptions,
        started: Instant,
    ) -> Self {
        log_gpu(cc);
        if let Some(render_state) = &cc.wgpu_render_state {
            crate::render::egui_bridge::install(render_state);
            crate::render::egui_bridge::install_four_view(render_state);
        }
        let ctx = cc.egui_ctx.clone();
        let jobs = JobSystem::new(Arc::new(move || ctx.request_repaint()));
        // Which inference engine runs and which models exist: found off the UI thread.
        let backend: Result<BackendRequest, InferenceError> = match options.backend.clone() {
            Some(request) => Ok(request),
            None => BackendRequest::from_env(),
        };
        let startup = Some(jobs.submit("find models", move |_ctx| Ok(startup::discover(backend))));
        let start = options.start.clone();
        let files = session::Files::start(options, &jobs);
        let mut app = Self {
            document: Document::new(),
            ui_state: Default::default(),
            jobs,
            loads: Vec::new(),
            tasks: Vec::new(),
            next_task_id: 0,
            startup,
            pending_scan: None,
            frame_stats: FrameStats::new(started),
            files,
            shots: std::sync::mpsc::channel(),
            title: String::new(),
            close_sent: false,
        };
        match start {
            Start::Path(path) => app.apply(Command::LoadPath(path)),
            Start::Sample => app.apply(Command::LoadSample),
            Start::Nothing => {}
        }
        // Scripts (screenshots, frame-time runs) open a second image, e.g. the MR of a CT + MR
        // pair, without a file dialog.
        if let Some(more) = std::env::var_os("FUSEPRINT_OPEN_ALSO") {
            for path in std::env::split_paths(&more) {
                app.apply(Command::LoadPath(path));
            }
        }
        app
    }

    pub fn document(&self) -> &Document {
        &self.document
    }

    /// Whether a load job is still running.
    pub fn is_loading(&self) -> bool {
        !self.loads.is_empty()
    }

    /// The window's widget state (e.g. what the 3D view last asked the renderer for).
    pub fn ui_state(&self) -> &crate::ui::UiState {
        &self.ui_state
    }

    /// Whether any job (load or workflow task) is still running.
    pub fn is_busy(&self) -> bool {
        !self.loads.is_empty() || !self.tasks.is_empty()
    }

    /// Applies one command: app-level ones start jobs or touch the browser, the rest go to
    /// the document. Public so tests can drive the app the way the widgets do.
    pub fn apply(&mut self, command: Command) {
        if !session::changes_nothing_saved(&command) {
            self.files.change += 1;
        }
        if self.apply_file_command(&command) {
            return;
        }
        match command {
            Command::LoadPath(path) if project_files::is_project_path(&path) => {
                self.apply_file_command(&Command::OpenProject(path));
            }
            Command::LoadPath(path) => {
                let label = format!("Opening {}", file_label(&path));
                let source = Some(path.clone());
                let handle = self
                    .jobs
                    .submit("load", move |ctx| loading::load_path(&path, ctx));
                self.loads.push(PendingLoad {
                    label,
                    handle,
                    source,
                });
            }
            Command::LoadSample => {
                let handle = self.jobs.submit("sample", loading::load_sample);
                self.loads.push(PendingLoad {
                    label: "Building the sample study".to_string(),
                    handle,
                    source: None,
                });
            }
            Command::CancelLoad => {
                for load in &self.loads {
                    load.handle.cancel();
                }
            }
            Command::SelectSeries(index) => self.load_series(index),
            Command::BrowseFolder(folder) => {
                self.document.browser = folder.map(|f| browse(&f));
            }
            Command::ApplyThreshold { low, high } => {
                self.start_label_op(LabelOp::Threshold { low, high })
            }
            Command::GrowRegion { seed } => {
                let (low, high) = self.document.grow_range;
                self.start_label_op(LabelOp::Grow { seed, low, high })
            }
            Command::RunModel(manifest) => self.start_label_op(LabelOp::Model(manifest)),
            Command::KeepLargestIsland => self.start_label_op(LabelOp::KeepLargest),
            Command::InterpolateSlices(axis) => {
                if let Some(layer) = &self.document.labels {
                    let orientation = orientation_for(layer.map.geometry(), axis);
                    self.start_label_op(LabelOp::Interpolate(orientation));
                }
            }
            Command::BuildMeshes => self.start_meshes(None),
            Command::ExportModel { path, format } => self.start_meshes(Some((path, format))),
            Command::RunRegistration => self.start_registration(),
            Command::Preprocess { volume, op } => {
                let Some(entry) = self.document.volumes.get(volume) else {
                    return;
                };
                let image = Arc::clone(&entry.image);
                let label = format!("{} ({})", op.name(), short(&entry.image.meta.description));
                self.submit_task(label, Lane::Cpu, move |ctx| {
                    tasks::preprocess(image, op, ctx)
                });
            }
            Command::CancelTask(id) => {
                for task in self.tasks.iter().filter(|t| t.id == id) {
                    task.handle.cancel();
                }
            }
            other => self.document.apply(other),
        }
        self.sync_load_status();
    }

    fn submit_task(
        &mut self,
        label: String,
        lane: Lane,
        work: impl FnOnce(&crate::jobs::JobContext) -> Result<TaskOutcome, JobError> + Send + 'static,
    ) {
        self.next_task_id += 1;
        let handle = self.jobs.submit_on(lane, &label, work);
        self.tasks.push(PendingTask {
            id: self.next_task_id,
            label,
            handle,
        });
        self.sync_task_status();
    }

    /// Starts a whole-volume label operation on a copy of the label map.
    fn start_label_op(&mut self, op: LabelOp) {
        if self.document.ensure_labels().is_none() {
            self.document
                .notify(StatusMessage::warning("load an image first"));
            return;
        }
        let Some(reference) = self
            .document
            .label_reference()
            .map(|(_, v)| Arc::clone(&v.image))
        else {
            self.document.notify(StatusMessage::warning("the label map's image was removed; its grid is kept but no tool can read intensities"));
            return;
        };
        let Some(layer) = &self.document.labels else {
            return;
        };
        // The job copies the map (if it must): the window only shares it.
        let map = Arc::clone(&layer.map);
        let revision = layer.revision;
        let mask = self.document.tools.mask();
        let label = self.document.tools.active_label.max(1);
        let lane = if matches!(op, LabelOp::Model(_)) {
            Lane::Inference
        } else {
            Lane::Cpu
        };
        let title = op.title();
        self.submit_task(title, lane, move |ctx| {
            tasks::run_label_op(op, map, revision, reference, mask, label, ctx)
        });
    }

    fn start_meshes(&mut self, export_to: Option<(PathBuf, crate::document::ExportFormat)>) {
        let Some(layer) = &self.document.labels else {
            self.document.notify(StatusMessage::warning(
                "nothing to mesh: segment something first",
            ));
            return;
        };
        let map = Arc::clone(&layer.map);
        let plan = self.document.mesh_plan.clone();
        let source = self
            .document
            .label_reference()
            .map(|(_, v)| v.image.meta.description.clone())
            .unwrap_or_default();
        let label = match &export_to {
            Some((path, _)) => format!("Exporting {}", file_label(path)),
            None => "Building meshes".to_string(),
        };
        self.submit_task(label, Lane::Cpu, move |ctx| {
            tasks::build_meshes(map, plan, source, export_to, ctx)
        });
    }

    fn start_registration(&mut self) {
        let Some(reg) = &self.document.registration else {
            return;
        };
        let (Some(fixed), Some(moving)) = (
            self.document.volumes.get(reg.fixed),
            self.document.volumes.get(reg.moving),
        ) else {
            return;
        };
        if reg.method == crate::document::RegistrationMethod::Landmarks && reg.landmarks.len() < 3 {
            self.document.notify(StatusMessage::warning(
                "landmark registration needs at least 3 pairs",
            ));
            return;
        }
        let (fixed, moving) = (Arc::clone(&fixed.image), Arc::clone(&moving.image));
        let (method, start, landmarks) = (reg.method, reg.moving_from_fixed, reg.landmarks.clone());
        self.submit_task(
            format!("{} registration", method.name()),
            Lane::Cpu,
            move |ctx| tasks::register(fixed, moving, method, start, landmarks, ctx),
        );
    }

    /// Applies finished workflow tasks to the document (once per frame).
    fn drain_tasks(&mut self) {
        if let Some(handle) = &mut self.startup {
            if let Some(result) = handle.try_take() {
                if let Ok((backend, models)) = result {
                    self.document.backend = Some(backend);
                    self.document.models = models;
                }
                self.startup = None;
            }
        }
        let mut still_running = Vec::new();
        for mut task in std::mem::take(&mut self.tasks) {
            match task.handle.try_take() {
                None => still_running.push(task),
                Some(Ok(outcome)) => {
                    tracing::info!(
                        "{}: done in {:.0} ms",
                        task.label,
                        task.handle.elapsed().as_secs_f64() * 1000.0
                    );
                    self.apply_outcome(outcome);
                }
                Some(Err(JobError::Cancelled)) => {
                    self.document
                        .notify(StatusMessage::info(format!("{}: cancelled", task.label)));
                }
                Some(Err(e)) => {
                    tracing::warn!("{}: {e}", task.label);
                    self.document
                        .notify(StatusMessage::error(format!("{}: {e}", task.label)));
                }
            }
        }
        self.tasks = still_running;
        self.sync_task_status();
    }

    fn apply_outcome(&mut self, outcome: TaskOutcome) {
        let outcome = match outcome {
            TaskOutcome::File(file) => return self.apply_file_outcome(*file),
            other => other,
        };
        self.files.change += 1;
        if let TaskOutcome::Registration {
            record: Some(record),
            ..
        } = &outcome
        {
            self.files.extras.registration = Some(record.clone());
        }
        let doc = &mut self.document;
        match outcome {
            TaskOutcome::Labels {
                base_revision,
                map,
                delta,
                confidence,
                summary,
            } => {
                let Some(layer) = &mut doc.labels else {
                    return;
                };
                if layer.revision != base_revision {
                    doc.notify(StatusMessage::warning(format!(
                        "{summary}, but the labels were edited while it ran: result discarded"
                    )));
                    return;
                }
                layer.map = Arc::new(map);
                layer.record(delta);
                layer.revision += 1;
                if let Some(c) = confidence {
                    layer.confidence = Some(Arc::new(c));
                }
                doc.notify(StatusMessage::info(summary));
            }
            TaskOutcome::Meshes {
                meshes,
                report,
                written,
            } => {
                doc.meshes = meshes;
                doc.accuracy = Some(report);
                if !written.is_empty() {
                    doc.notify(StatusMessage::info(format!(
                        "wrote {}",
                        written
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                    doc.last_export = Some(ExportRecord { files: written });
                }
            }
            TaskOutcome::Registration {
                moving_from_fixed,
                figures,
                confidence,
                ..
            } => {
                if let Some(reg) = &mut doc.registration {
                    reg.moving_from_fixed = moving_from_fixed;
                    reg.figures = figures;
                    reg.confidence = confidence.map(Arc::new);
                }
            }
            TaskOutcome::Volume(new) => {
                let index = doc.add_volume(*new);
                doc.apply(Command::Select(Some(Selection::Volume(index))));
            }
            TaskOutcome::File(_) => {}
        }
        doc.revision += 1;
    }

    fn sync_task_status(&mut self) {
        self.document.tasks = self
            .tasks
            .iter()
            .map(|t| TaskStatus {
                id: t.id,
                label: t.label.clone(),
                fraction: t.handle.fraction(),
                stage: t.handle.stage(),
            })
            .collect();
    }

    fn load_series(&mut self, index: usize) {
        let Some(scan) = self.pending_scan.take() else {
            return;
        };
        self.document.series_choice = None;
        let label = format!("Opening series {}", index + 1);
        let source = Some(scan.scan.root.clone());
        let handle = self.jobs.submit("load series", move |ctx| {
            loading::load_scanned_series(scan, index, ctx)
        });
        self.loads.push(PendingLoad {
            label,
            handle,
            source,
        });
    }

    /// Takes finished loads into the document (once per frame).
    fn drain_jobs(&mut self) {
        let mut still_running = Vec::new();
        for mut load in std::mem::take(&mut self.loads) {
            match load.handle.try_take() {
                None => still_running.push(load),
                Some(Ok(LoadOutcome::Volumes(volumes, focus))) => {
                    tracing::info!(
                        "{}: done in {:.0} ms",
                        load.label,
                        load.handle.elapsed().as_secs_f64() * 1000.0
                    );
                    self.files.change += 1;
                    if let Some(source) = &load.source {
                        self.remember_recent(source);
                    }
                    let mut first_new = None;
                    for volume in volumes {
                        let index = self.document.add_volume(volume);
                        first_new.get_or_insert(index);
                    }
                    if let Some(index) = first_new {
                        self.document.apply(Command::SetActiveVolume(index));
                    }
                    if let Some(focus) = focus {
                        self.document.apply(Command::SetCursor(focus));
                    }
                }
                Some(Ok(LoadOutcome::ChooseSeries(scan))) => {
                    self.document.series_choice = Some(scan.choice.clone());
                    self.pending_scan = Some(scan);
                }
                Some(Err(JobError::Cancelled)) => {
                    self.document
                        .notify(StatusMessage::info(format!("{}: cancelled", load.label)));
                }
                Some(Err(e)) => {
                    tracing::warn!("{}: {e}", load.label);
                    self.document.notify(StatusMessage::error(e.to_string()));
                }
            }
        }
        self.loads = still_running;
        self.sync_load_status();
    }

    fn sync_load_status(&mut self) {
        self.document.loading = self.loads.first().map(|load| {
            let more = self.loads.len() - 1;
            LoadStatus {
                label: if more > 0 {
                    format!("{} (+{more} more)", load.label)
                } else {
                    load.label.clone()
                },
                fraction: load.handle.fraction(),
                stage: load.handle.stage(),
            }
        });
    }
}

fn short(text: &str) -> String {
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn browse(folder: &Path) -> BrowserListing {
    let (entries, error) = match crate::io::browse::list_folder(folder) {
        Ok(entries) => (entries, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    BrowserListing {
        folder: folder.to_path_buf(),
        parent: folder.parent().map(Path::to_path_buf),
        entries: entries
            .into_iter()
            .map(|e| BrowserEntry {
                name: e.name,
                path: e.path,
                is_folder: e.is_folder,
            })
            .collect(),
        error,
    }
}

/// The window side of the session's files: title, closing, screenshots.
impl App {
    /// "plan * — fuseprint": the project's name and whether it has unsaved changes.
    fn window_title(&self) -> String {
        let name = self
            .files
            .project_path
            .as_deref()
            .map(session::project_name)
            .unwrap_or_else(|| "unsaved session".to_string());
        let marker = if self.files.is_modified() { " *" } else { "" };
        format!("{name}{marker} — fuseprint")
    }

    /// Before drawing: the title, a close request with unsaved changes (asks first), and a
    /// wanted screenshot (asks the renderer for the next frame's pixels).
    fn files_before_frame(&mut self, ctx: &egui::Context) {
        self.tick_files(Instant::now());
        let title = self.window_title();
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
        if ctx.input(|i| i.viewport().close_requested())
            && self.files.is_modified()
            && !self.files.allow_close
        {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.files.question = Some(session::Question::DiscardChanges(
                session::AfterDiscard::Quit,
            ));
        }
        if let Some((view, path)) = self.files.screenshot_wanted.take() {
            let index = ViewKind::ALL.iter().position(|v| *v == view).unwrap_or(0);
            match self.ui_state.view_rects[index] {
                Some(rect) => {
                    let sender = self.shots.0.clone();
                    let waker = ctx.clone();
                    let pixels_per_point = ctx.pixels_per_point();
                    let callback = egui::ScreenshotCallback::new(move |image| {
                        let _ = sender.send(Shot {
                            path,
                            rect,
                            pixels_per_point,
                            image,
                        });
                        waker.request_repaint();
                    });
                    ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(callback));
                }
                None => {
                    self.document.notify(StatusMessage::warning(
                        "that view is not shown: switch to four views first",
                    ));
                }
            }
        }
        while let Ok(shot) = self.shots.1.try_recv() {
            // Cropping copies the window's pixels: done in the job, not on this thread.
            self.submit_task(
                "Screenshot".to_string(),
                crate::jobs::Lane::Cpu,
                move |ctx| {
                    let (rgba, size) = crop_rgba(&shot.image, shot.rect, shot.pixels_per_point);
                    if size[0] == 0 || size[1] == 0 {
                        return Err(JobError::Failed("the view had no pixels to save".into()));
                    }
                    project_files::write_png(rgba, size, shot.path, ctx)
                        .map(|f| TaskOutcome::File(Box::new(f)))
                },
            );
        }
    }

    /// After the commands: quit once the user agreed to lose unsaved changes.
    fn files_after_frame(&mut self, ctx: &egui::Context) {
        if self.files.allow_close && !self.close_sent {
            self.close_sent = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

/// The pixels of `rect` (points) in a window picture taken at `pixels_per_point`, as
/// straight RGBA rows, with their size.
fn crop_rgba(
    image: &egui::ColorImage,
    rect: egui::Rect,
    pixels_per_point: f32,
) -> (Vec<u8>, [usize; 2]) {
    let [width, height] = image.size;
    let to_px =
        |v: f32, limit: usize| ((v * pixels_per_point).round().max(0.0) as usize).min(limit);
    let (x0, x1) = (to_px(rect.min.x, width), to_px(rect.max.x, width));
    let (y0, y1) = (to_px(rect.min.y, height), to_px(rect.max.y, height));
    let mut rgba = Vec::with_capacity((x1 - x0) * (y1 - y0) * 4);
    for y in y0..y1 {
        for pixel in &image.pixels[y * width + x0..y * width + x1] {
            rgba.extend_from_slice(&pixel.to_srgba_unmultiplied());
        }
    }
    (rgba, [x1 - x0, y1 - y0])
}

impl Drop for App {
    /// Leaving normally (the window closed, a test ended) is a clean exit; unwinding from a
    /// panic is a crash, whose autosave stays for recovery.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.end_session();
        }
    }
}

impl eframe::App for App {
    fn on_exit(&mut self) {
        self.end_session();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if self.frame_stats.frame_started(self.is_busy()) {
            ui.ctx().request_repaint();
        }
        self.drain_jobs();
        self.drain_tasks();
        let ctx = ui.ctx().clone();
        self.files_before_frame(&ctx);
        self.ui_state.files = self.files.status();
        let commands = crate::ui::show(ui, &self.document, &mut self.ui_state);
        for command in commands {
            self.apply(command);
        }
        self.files_after_frame(&ctx);
        if self.is_busy() {
            self.sync_task_status();
            // Keep the progress bar moving even between the job's own wake-ups.
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        self.frame_stats.frame_finished();
    }
}

// ---------------------------------------------------------------------------------------
// `fuseprint bench ui`: frame times of the real window code, idle and while a job runs.

/// The long job run while frames are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiBenchJob {
    /// Rigid registration of the sample MR onto the sample CT.
    Register,
    /// Bone threshold, then the meshes of every label.
    Mesh,
}

/// Per-frame times in milliseconds: `ui_ms` is `App::ui` alone (what the UI thread does for
/// us), `frame_ms` adds egui's layout pass and tessellation.
#[derive(Debug, Clone, Default)]
pub struct FrameTimes {
    pub ui_ms: Vec<f64>,
    pub frame_ms: Vec<f64>,
}

/// What `bench ui` measured.
#[derive(Debug, Clone)]
pub struct UiBench {
    pub idle: FrameTimes,
    pub busy: FrameTimes,
    /// How long the job ran (seconds) and whether it ended before the frames were counted.
    pub job_secs: f64,
    pub job_finished: bool,
}

/// Drives the real `App` headless (no window, no GPU: the 3D view's raycast is not drawn)
/// on the sample study at 60 frames per second: `frames` frames idle, then up to `frames`
/// frames while `job` runs on the workers; with `scroll`, every timed frame also moves the
/// axial slice (as a user paging through it), so each frame resamples a slice.
pub fn bench_ui(frames: usize, job: UiBenchJob, scroll: bool) -> Result<UiBench, String> {
    // As in the window: jobs' threads at background priority.
    crate::jobs::background_global_pool();
    let ctx = egui::Context::default();
    let cc = eframe::CreationContext::_new_kittest(ctx.clone());
    let options = AppOptions {
        start: Start::Sample,
        recovery_root: None,
        recent_file: None,
        autosave_idle: crate::document::autosave::DEFAULT_IDLE,
        backend: None,
    };
    let mut app = App::with_options(&cc, options, Instant::now());
    let mut frame = eframe::Frame::_new_kittest();
    let started = Instant::now();
    let period = std::time::Duration::from_micros(16_667);
    let mut frame_index = 0u64;
    let mut step = |app: &mut App, times: Option<&mut FrameTimes>| {
        frame_index += 1;
        if scroll && times.is_some() {
            // A user paging through the axial slices: every frame resamples a new one.
            let steps = if (frame_index / 40) % 2 == 0 { 1 } else { -1 };
            app.apply(Command::ScrollSlice {
                axis: crate::document::ViewAxis::Axial,
                steps,
            });
        }
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1500.0, 950.0),
            )),
            time: Some(started.elapsed().as_secs_f64()),
            ..Default::default()
        };
        let frame_start = Instant::now();
        let mut ui_ms = 0.0;
        let mut output = ctx.run_ui(input, |ui| {
            let t = Instant::now();
            eframe::App::ui(app, ui, &mut frame);
            ui_ms += t.elapsed().as_secs_f64() * 1000.0;
        });
        let shapes = std::mem::take(&mut output.shapes);
        let _ = ctx.tessellate(shapes, output.pixels_per_point);
        // No GPU takes the texture uploads; they are counted in the frame, then dropped.
        output.textures_delta.clear();
        let spent = frame_start.elapsed();
        if let Some(times) = times {
            times.ui_ms.push(ui_ms);
            times.frame_ms.push(spent.as_secs_f64() * 1000.0);
        }
        std::thread::sleep(period.saturating_sub(spent));
    };
    let wait_idle =
        |app: &mut App, step: &mut dyn FnMut(&mut App, Option<&mut FrameTimes>), what: &str| {
            let deadline = Instant::now() + std::time::Duration::from_secs(600);
            while app.is_busy() {
                if Instant::now() > deadline {
                    return Err(format!("{what} did not finish within 10 minutes"));
                }
                step(app, None);
            }
            Ok(())
        };
    step(&mut app, None);
    wait_idle(&mut app, &mut step, "loading the sample")?;
    if app.document.volumes.len() < 2 {
        return Err("the sample study did not load".into());
    }
    for _ in 0..10 {
        step(&mut app, None);
    }
    let mut idle = FrameTimes::default();
    for _ in 0..frames {
        step(&mut app, Some(&mut idle));
    }
    match job {
        UiBenchJob::Register => {
            app.apply(Command::BeginRegistration {
                fixed: 0,
                moving: 1,
            });
            app.apply(Command::RunRegistration);
        }
        UiBenchJob::Mesh => {
            app.apply(Command::ApplyThreshold {
                low: 200.0,
                high: 3000.0,
            });
            wait_idle(&mut app, &mut step, "the threshold")?;
            app.apply(Command::BuildMeshes);
        }
    }
    let job_start = Instant::now();
    let mut busy = FrameTimes::default();
    while app.is_busy() && busy.ui_ms.len() < frames {
        step(&mut app, Some(&mut busy));
    }
    let job_finished = !app.is_busy();
    if let Some(message) = &app.document.message {
        tracing::info!("bench ui: {message}");
    }
    for task in &app.tasks {
        task.handle.cancel();
    }
    Ok(UiBench {
        idle,
        busy,
        job_secs: job_start.elapsed().as_secs_f64(),
        job_finished,
    })
}
