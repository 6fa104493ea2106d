//! Composition root of the desktop window: owns the `Document` and the `JobSystem`, drains
//! finished jobs once per frame, draws `ui` and applies the `Command`s it returns.

mod frame_stats;
mod loading;
mod startup;
mod tasks;

use crate::document::{
    labels::orientation_for, BrowserEntry, BrowserListing, Command, Document, ExportRecord,
    LoadStatus, ModelEntry, Selection, TaskStatus,
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
        Self::with_options(cc, open, started, BackendRequest::from_env())
    }

    /// Starts on the sample with a chosen inference engine instead of FUSEPRINT_BACKEND's, so
    /// what the window shows does not depend on the environment (snapshot tests).
    pub fn with_backend(cc: &eframe::CreationContext<'_>, request: BackendRequest) -> Self {
        Self::with_options(cc, None, Instant::now(), Ok(request))
    }

    fn with_options(
        cc: &eframe::CreationContext<'_>,
        open: Option<PathBuf>,
        started: Instant,
        backend: Result<BackendRequest, InferenceError>,
    ) -> Self {
        log_gpu(cc);
        if let Some(render_state) = &cc.wgpu_render_state {
            crate::render::egui_bridge::install(render_state);
        }
        let ctx = cc.egui_ctx.clone();
        let jobs = JobSystem::new(Arc::new(move || ctx.request_repaint()));
        // Which inference engine runs and which models exist: found off the UI thread.
        let startup = Some(jobs.submit("find models", move |_ctx| Ok(startup::discover(backend))));
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
        };
        match open {
            Some(path) => app.apply(Command::LoadPath(path)),
            None => app.apply(Command::LoadSample),
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
        match command {
            Command::LoadPath(path) => {
                let label = format!("Opening {}", file_label(&path));
                let handle = self
                    .jobs
                    .submit("load", move |ctx| loading::load_path(&path, ctx));
                self.loads.push(PendingLoad { label, handle });
            }
            Command::LoadSample => {
                let handle = self.jobs.submit("sample", loading::load_sample);
                self.loads.push(PendingLoad {
                    label: "Building the sample study".to_string(),
                    handle,
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
            self.document.message = Some("load an image first".to_string());
            return;
        }
        let Some(reference) = self
            .document
            .label_reference()
            .map(|(_, v)| Arc::clone(&v.image))
        else {
            self.document.message =
                Some("the label map's image was removed; its grid is kept but no tool can read intensities".into());
            return;
        };
        let Some(layer) = &self.document.labels else {
            return;
        };
        let map = layer.map.clone();
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
            self.document.message = Some("nothing to mesh: segment something first".into());
            return;
        };
        let map = Arc::new(layer.map.clone());
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
            self.document.message =
                Some("landmark registration needs at least 3 pairs".to_string());
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
                    self.document.message = Some(format!("{}: cancelled", task.label));
                }
                Some(Err(e)) => {
                    tracing::warn!("{}: {e}", task.label);
                    self.document.message = Some(format!("{}: {e}", task.label));
                }
            }
        }
        self.tasks = still_running;
        self.sync_task_status();
    }

    fn apply_outcome(&mut self, outcome: TaskOutcome) {
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
                    doc.message = Some(format!(
                        "{summary}, but the labels were edited while it ran: result discarded"
                    ));
                    return;
                }
                layer.map = map;
                layer.record(delta);
                layer.revision += 1;
                if let Some(c) = confidence {
                    layer.confidence = Some(Arc::new(c));
                }
                doc.message = Some(summary);
            }
            TaskOutcome::Meshes {
                meshes,
                report,
                written,
            } => {
                doc.meshes = meshes;
                doc.accuracy = Some(report);
                if !written.is_empty() {
                    doc.message = Some(format!(
                        "wrote {}",
                        written
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    doc.last_export = Some(ExportRecord { files: written });
                }
            }
            TaskOutcome::Registration {
                moving_from_fixed,
                figures,
                confidence,
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
        let handle = self.jobs.submit("load series", move |ctx| {
            loading::load_scanned_series(scan, index, ctx)
        });
        self.loads.push(PendingLoad { label, handle });
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
                    self.document.message = Some(format!("{}: cancelled", load.label));
                }
                Some(Err(e)) => {
                    tracing::warn!("{}: {e}", load.label);
                    self.document.message = Some(e.to_string());
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

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if self.frame_stats.frame_started(self.is_busy()) {
            ui.ctx().request_repaint();
        }
        self.drain_jobs();
        self.drain_tasks();
        let commands = crate::ui::show(ui, &self.document, &mut self.ui_state);
        for command in commands {
            self.apply(command);
        }
        if self.is_busy() {
            self.sync_task_status();
            // Keep the progress bar moving even between the job's own wake-ups.
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        self.frame_stats.frame_finished();
    }
}
