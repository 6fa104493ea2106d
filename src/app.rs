//! Composition root of the desktop window: owns the `Document` and the `JobSystem`, drains
//! finished jobs once per frame, draws `ui` and applies the `Command`s it returns.

mod frame_stats;
mod loading;

use crate::document::{BrowserEntry, BrowserListing, Command, Document, LoadStatus};
use crate::jobs::{JobError, JobHandle, JobSystem};
use frame_stats::FrameStats;
use loading::{LoadOutcome, PendingScan};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

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

pub struct App {
    document: Document,
    ui_state: crate::ui::UiState,
    jobs: JobSystem,
    loads: Vec<PendingLoad>,
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
        log_gpu(cc);
        let ctx = cc.egui_ctx.clone();
        let jobs = JobSystem::new(Arc::new(move || ctx.request_repaint()));
        let mut app = Self {
            document: Document::new(),
            ui_state: Default::default(),
            jobs,
            loads: Vec::new(),
            pending_scan: None,
            frame_stats: FrameStats::new(started),
        };
        match open {
            Some(path) => app.apply(Command::LoadPath(path)),
            None => app.apply(Command::LoadSample),
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
            other => self.document.apply(other),
        }
        self.sync_load_status();
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
        if self.frame_stats.frame_started(self.is_loading()) {
            ui.ctx().request_repaint();
        }
        self.drain_jobs();
        let commands = crate::ui::show(ui, &self.document, &mut self.ui_state);
        for command in commands {
            self.apply(command);
        }
        if self.is_loading() {
            // Keep the progress bar moving even between the job's own wake-ups.
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        self.frame_stats.frame_finished();
    }
}
