//! The session's files: saving and opening projects, autosave and crash recovery, the
//! recent-files list, the planning report and the questions asked before anything is
//! replaced. Every read and write runs as a job; the UI thread only takes snapshots
//! (shared images, a copy of the label map) and applies results.

use super::project_files::{self, FileOutcome, OpenedProject, ProjectExtras, RecentFiles};
use super::tasks::TaskOutcome;
use super::App;
use crate::document::autosave::{self, AutosavePolicy, Recoverable, Session};
use crate::document::project::{with_project_extension, SaveMode, SaveSummary};
use crate::document::{Command, StatusMessage, ViewKind};
use crate::jobs::{JobError, JobHandle, Lane};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the window opens on.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// The bundled sample study (`fuseprint` with no argument).
    Sample,
    Path(PathBuf),
    Nothing,
}

/// Where the app keeps its per-user files and how often it autosaves; tests point these at
/// temporary folders.
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub start: Start,
    /// Recovery folder root; `None` turns autosave and recovery off.
    pub recovery_root: Option<PathBuf>,
    /// The recent-files list; `None` keeps it in memory only.
    pub recent_file: Option<PathBuf>,
    /// Quiet time after a change before an autosave.
    pub autosave_idle: Duration,
    /// The inference engine; `None` takes FUSEPRINT_BACKEND's choice.
    pub backend: Option<crate::inference::BackendRequest>,
}

impl AppOptions {
    /// The user's own folders (`~/.local/share/fuseprint/recovery`, `~/.config/fuseprint`).
    pub fn per_user(start: Start) -> Self {
        Self {
            start,
            recovery_root: autosave::default_recovery_root(),
            recent_file: RecentFiles::per_user_file(),
            autosave_idle: autosave::DEFAULT_IDLE,
            backend: None,
        }
    }
}

/// A question waiting for the user's answer before something is replaced or lost.
#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    ReplaceProject(PathBuf),
    ReplaceReport(PathBuf),
    ReplaceScreenshot(ViewKind, PathBuf),
    /// There are unsaved changes; go on with `then` anyway?
    DiscardChanges(AfterDiscard),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AfterDiscard {
    Quit,
    Open(PathBuf),
}

impl Question {
    /// (text, yes, no) as the dialog shows them.
    pub fn words(&self) -> (String, &'static str, &'static str) {
        let name = |p: &Path| p.display().to_string();
        match self {
            Question::ReplaceProject(p) => (
                format!("A project already exists at {}. Replace it?", name(p)),
                "Replace",
                "Cancel",
            ),
            Question::ReplaceReport(p) | Question::ReplaceScreenshot(_, p) => (
                format!("{} already exists. Replace it?", name(p)),
                "Replace",
                "Cancel",
            ),
            Question::DiscardChanges(AfterDiscard::Quit) => (
                "There are unsaved changes. Quit without saving them?".to_string(),
                "Quit without saving",
                "Cancel",
            ),
            Question::DiscardChanges(AfterDiscard::Open(p)) => (
                format!(
                    "There are unsaved changes. Open {} without saving them?",
                    name(p)
                ),
                "Open without saving",
                "Cancel",
            ),
        }
    }
}

/// The app's file state.
pub struct Files {
    /// The open project's folder (where Save writes), once saved or opened.
    pub project_path: Option<PathBuf>,
    pub extras: ProjectExtras,
    /// Bumped by every change a save would keep; `saved_change` is its value when the
    /// open state was last saved or opened.
    pub change: u64,
    pub saved_change: u64,
    pub session: Option<Session>,
    pub autosave: Option<(u64, JobHandle<SaveSummary>)>,
    /// The change the last successful autosave holds.
    pub autosaved_change: Option<u64>,
    pub startup: Option<JobHandle<(RecentFiles, Vec<Recoverable>)>>,
    pub recoverable: Vec<Recoverable>,
    pub recent: RecentFiles,
    pub question: Option<Question>,
    /// Set once the user agreed to quit with unsaved changes.
    pub allow_close: bool,
    /// A screenshot waiting for its picture: (view, file).
    pub screenshot_wanted: Option<(ViewKind, PathBuf)>,
}

impl Files {
    /// Starts this session's recovery marker and, off the UI thread, reads the recent-files
    /// list and looks for crashed sessions to offer.
    pub fn start(options: AppOptions, jobs: &crate::jobs::JobSystem) -> Self {
        let session = options.recovery_root.as_ref().and_then(|root| {
            let mut policy = AutosavePolicy::new(root);
            policy.idle = options.autosave_idle;
            Session::start(policy, None)
                .map_err(|e| tracing::warn!("autosave is off: {e}"))
                .ok()
        });
        let (root, recent_file) = (options.recovery_root.clone(), options.recent_file.clone());
        let startup = jobs.submit("recent files and recovery", move |_ctx| {
            if let Some(root) = &root {
                forget_crashes_without_autosave(root);
            }
            let recoverable = root
                .map(|r| autosave::find_recoverable_in(&r))
                .unwrap_or_default();
            Ok((RecentFiles::load(recent_file.clone()), recoverable))
        });
        Self {
            recent: RecentFiles {
                paths: Vec::new(),
                file: options.recent_file.clone(),
            },
            project_path: None,
            extras: ProjectExtras::default(),
            change: 0,
            saved_change: 0,
            session,
            autosave: None,
            autosaved_change: None,
            startup: Some(startup),
            recoverable: Vec::new(),
            question: None,
            allow_close: false,
            screenshot_wanted: None,
        }
    }

    pub fn is_modified(&self) -> bool {
        self.change != self.saved_change
    }

    /// What the window shows about the files.
    pub fn status(&self) -> crate::ui::FileStatus {
        crate::ui::FileStatus {
            project_name: self.project_path.as_deref().map(project_name),
            project_path: self.project_path.clone(),
            modified: self.is_modified(),
            question: self.question.as_ref().map(|q| {
                let (text, yes, no) = q.words();
                crate::ui::Prompt {
                    text,
                    yes: yes.to_string(),
                    no: no.to_string(),
                }
            }),
            recovery: self.recoverable.first().map(describe_recoverable),
            recent: self.recent.paths.clone(),
        }
    }
}

/// Removes the folders of sessions that ended without a clean exit before their first
/// autosave: nothing in them can be recovered, and they would pile up.
fn forget_crashes_without_autosave(root: &Path) {
    use crate::io::project::{list_session_folders, process_alive, remove_session_folder};
    for folder in list_session_folders(root) {
        let gone = folder
            .marker
            .as_ref()
            .is_some_and(|m| !process_alive(m.pid));
        if gone && folder.project.is_none() {
            if let Err(e) = remove_session_folder(&folder.dir) {
                tracing::warn!("leftover recovery folder: {e}");
            }
        }
    }
}

/// "plan" for `/cases/plan.fuseprint`.
pub fn project_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn describe_recoverable(r: &Recoverable) -> String {
    let when = r
        .saved_unix_s
        .map(|s| {
            let ago = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|now| now.as_secs().saturating_sub(s))
                .unwrap_or(0);
            format!("autosaved {} min ago", ago / 60)
        })
        .unwrap_or_else(|| "autosaved".to_string());
    match &r.original {
        Some(p) => format!(
            "A session working on {} did not exit cleanly ({when}).",
            p.display()
        ),
        None => format!("A session did not exit cleanly ({when})."),
    }
}

/// Commands that change nothing a save would keep (the view, the tool, dialogs) or that
/// only start work whose result counts as the change when it arrives.
pub fn changes_nothing_saved(command: &Command) -> bool {
    matches!(
        command,
        Command::SetCursor(_)
            | Command::ScrollSlice { .. }
            | Command::Zoom { .. }
            | Command::Pan { .. }
            | Command::ResetViews
            | Command::DismissMessage
            | Command::DismissSeriesChoice
            | Command::SetLayout(_)
            | Command::ToggleMaximize(_)
            | Command::Select(_)
            | Command::SetThresholdPreview(_)
            | Command::SetGrowRange(_)
            | Command::SetConfidenceOverlay(_)
            | Command::SetTool(_)
            | Command::SetActiveLabel(_)
            | Command::SetBrushRadius(_)
            | Command::SetEditableRange(_)
            | Command::SetOverwriteOtherLabels(_)
            | Command::SetQaMode(_)
            | Command::SetRegistrationConfidence(_)
            | Command::BrowseFolder(_)
            | Command::LoadPath(_)
            | Command::LoadSample
            | Command::CancelLoad
            | Command::SelectSeries(_)
            | Command::ApplyThreshold { .. }
            | Command::GrowRegion { .. }
            | Command::RunModel(_)
            | Command::KeepLargestIsland
            | Command::InterpolateSlices(_)
            | Command::BuildMeshes
            | Command::ExportModel { .. }
            | Command::RunRegistration
            | Command::Preprocess { .. }
            | Command::CancelTask(_)
            | Command::SaveProject
            | Command::SaveProjectAs(_)
            | Command::OpenProject(_)
            | Command::AnswerQuestion(_)
            | Command::RecoverSession(_)
            | Command::PostponeRecovery
            | Command::WriteReport(_)
            | Command::Screenshot { .. }
    )
}

impl App {
    /// Project, recovery, report and screenshot commands; `false` when `command` is not one.
    pub(super) fn apply_file_command(&mut self, command: &Command) -> bool {
        match command {
            Command::SaveProject => match self.files.project_path.clone() {
                Some(folder) => self.start_save(folder, SaveMode::Replace),
                None => {
                    self.document.notify(StatusMessage::warning(
                        "choose where to save the project (Save project as…)",
                    ));
                }
            },
            Command::SaveProjectAs(path) => {
                let folder = with_project_extension(path);
                let is_open_project = self.files.project_path.as_deref() == Some(&*folder);
                if folder.exists() && !is_open_project {
                    self.files.question = Some(Question::ReplaceProject(folder));
                } else {
                    self.start_save(folder, SaveMode::CreateNew);
                }
            }
            Command::OpenProject(path) => {
                if self.files.is_modified() {
                    self.files.question =
                        Some(Question::DiscardChanges(AfterDiscard::Open(path.clone())));
                } else {
                    self.start_open(path.clone());
                }
            }
            Command::AnswerQuestion(yes) => {
                let Some(question) = self.files.question.take() else {
                    return true;
                };
                if *yes {
                    self.go_ahead(question);
                }
            }
            Command::RecoverSession(recover) => self.answer_recovery(*recover),
            Command::PostponeRecovery => self.files.recoverable.clear(),
            Command::WriteReport(path) => {
                if path.exists() {
                    self.files.question = Some(Question::ReplaceReport(path.clone()));
                } else {
                    self.start_report(path.clone());
                }
            }
            Command::Screenshot { view, path } => {
                if path.exists() {
                    self.files.question = Some(Question::ReplaceScreenshot(*view, path.clone()));
                } else {
                    self.files.screenshot_wanted = Some((*view, path.clone()));
                }
            }
            _ => return false,
        }
        true
    }

    fn go_ahead(&mut self, question: Question) {
        match question {
            Question::ReplaceProject(folder) => self.start_save(folder, SaveMode::Replace),
            Question::ReplaceReport(path) => self.start_report(path),
            Question::ReplaceScreenshot(view, path) => {
                self.files.screenshot_wanted = Some((view, path))
            }
            Question::DiscardChanges(AfterDiscard::Open(path)) => self.start_open(path),
            Question::DiscardChanges(AfterDiscard::Quit) => self.files.allow_close = true,
        }
    }

    /// Whether the document may be replaced now (no job would apply its result to the new
    /// one); tells the user why not.
    fn can_replace_document(&mut self, what: &str) -> bool {
        if self.is_busy() {
            self.document.notify(StatusMessage::warning(format!(
                "{what}: wait for the running jobs to finish (or Stop them) first"
            )));
            return false;
        }
        true
    }

    fn start_save(&mut self, folder: PathBuf, mode: SaveMode) {
        // The snapshot shares the images; only the label map is copied.
        let project = project_files::project_of(&self.document, &self.files.extras);
        let contents = project.to_contents();
        let change = self.files.change;
        let label = format!("Saving {}", project_name(&folder));
        self.submit_task(label, Lane::Cpu, move |ctx| {
            project_files::save_project(contents, folder, mode, change, ctx)
                .map(|f| TaskOutcome::File(Box::new(f)))
        });
    }

    fn start_open(&mut self, path: PathBuf) {
        if !self.can_replace_document("opening a project") {
            return;
        }
        let label = format!("Opening {}", project_name(&path));
        self.submit_task(label, Lane::Cpu, move |ctx| {
            project_files::open_project(&path, ctx)
                .map(|p| TaskOutcome::File(Box::new(FileOutcome::Opened(Box::new(p)))))
        });
    }

    fn start_report(&mut self, path: PathBuf) {
        let project = project_files::project_of(&self.document, &self.files.extras);
        let title = match &self.files.project_path {
            Some(p) => format!("Surgical planning report: {}", project_name(p)),
            None => String::new(),
        };
        self.submit_task("Planning report".to_string(), Lane::Cpu, move |ctx| {
            project_files::write_report(project, title, path, ctx)
                .map(|f| TaskOutcome::File(Box::new(f)))
        });
    }

    fn answer_recovery(&mut self, recover: bool) {
        if self.files.recoverable.is_empty() {
            return;
        }
        if recover && !self.can_replace_document("recovering the session") {
            return;
        }
        let offer = self.files.recoverable.remove(0);
        if recover {
            self.submit_task(
                "Recovering the session".to_string(),
                Lane::Cpu,
                move |ctx| {
                    let project = offer
                        .open(ctx)
                        .map_err(|e| JobError::Failed(e.to_string()))?;
                    let (document, extras) = project_files::document_of(project);
                    // Recovered: the autosave has served; the new session autosaves afresh.
                    if let Err(e) = offer.discard() {
                        tracing::warn!("could not remove the recovered autosave: {e}");
                    }
                    Ok(TaskOutcome::File(Box::new(FileOutcome::Opened(Box::new(
                        OpenedProject {
                            document,
                            extras,
                            folder: offer.original.clone().unwrap_or_default(),
                            recovered: true,
                        },
                    )))))
                },
            );
        } else {
            let handle = self.jobs.submit("discard recovery", move |_ctx| {
                offer.discard().map_err(|e| JobError::Failed(e.to_string()))
            });
            // Nothing to wait for: a failed discard only leaves a folder to offer again.
            drop(handle);
        }
    }

    /// A finished file job.
    pub(super) fn apply_file_outcome(&mut self, outcome: FileOutcome) {
        match outcome {
            FileOutcome::Saved { summary, change } => {
                self.files.saved_change = change;
                if let Some(session) = &mut self.files.session {
                    session.mark_saved(change);
                    if let Err(e) = session.set_project(Some(summary.folder.clone())) {
                        tracing::warn!("recovery marker: {e}");
                    }
                }
                self.document.notify(StatusMessage::info(format!(
                    "saved {} ({} files written, {} unchanged)",
                    summary.folder.display(),
                    summary.written.len(),
                    summary.reused.len()
                )));
                self.remember_recent(&summary.folder);
                self.files.project_path = Some(summary.folder);
            }
            FileOutcome::Opened(opened) => self.adopt(*opened),
            FileOutcome::ReportWritten {
                path,
                pictures,
                drawn,
            } => {
                let how = match drawn {
                    super::report_pictures::Drawn::Gpu(adapter) => {
                        format!("3D on the GPU: {adapter}")
                    }
                    super::report_pictures::Drawn::Cpu(_) => "3D drawn on the CPU".to_string(),
                };
                self.document.notify(StatusMessage::info(format!(
                    "wrote the planning report ({pictures} pictures, {how}): {}",
                    path.display()
                )));
            }
            FileOutcome::ScreenshotWritten(path) => {
                self.document.notify(StatusMessage::info(format!(
                    "saved the screenshot: {}",
                    path.display()
                )));
            }
        }
    }

    /// Replaces the open document by an opened (or recovered) project.
    fn adopt(&mut self, opened: OpenedProject) {
        let mut document = opened.document;
        document.continue_after(&self.document);
        // Found at start-up for this process, not stored in projects.
        document.backend = self.document.backend.take();
        document.models = std::mem::take(&mut self.document.models);
        self.document = document;
        self.ui_state.forget_views();
        self.files.extras = opened.extras;
        self.files.change += 1;
        if opened.recovered {
            let original = Some(opened.folder).filter(|f| !f.as_os_str().is_empty());
            self.files.project_path = original;
            self.document.notify(StatusMessage::info(
                "recovered the autosaved session: save it to keep it",
            ));
        } else {
            self.files.saved_change = self.files.change;
            if let Some(session) = &mut self.files.session {
                session.mark_saved(self.files.change);
                if let Err(e) = session.set_project(Some(opened.folder.clone())) {
                    tracing::warn!("recovery marker: {e}");
                }
            }
            self.remember_recent(&opened.folder);
            self.document.notify(StatusMessage::info(format!(
                "opened {}",
                opened.folder.display()
            )));
            self.files.project_path = Some(opened.folder);
        }
    }

    /// Adds `path` to the recent files and writes the list in a job.
    pub(super) fn remember_recent(&mut self, path: &Path) {
        self.files.recent.add(path);
        if let Some((file, text)) = self.files.recent.snapshot() {
            let handle = self
                .jobs
                .submit("recent files", move |_ctx| RecentFiles::store(&file, &text));
            // A list that could not be written is only a convenience lost.
            drop(handle);
        }
    }

    /// Once per frame: start-up results, a finished autosave, and a new autosave when due.
    pub(super) fn tick_files(&mut self, now: Instant) {
        if let Some(handle) = &mut self.files.startup {
            if let Some(result) = handle.try_take() {
                if let Ok((mut recent, recoverable)) = result {
                    // Paths opened before the list was read come first.
                    for path in self.files.recent.paths.iter().rev() {
                        recent.add(path);
                    }
                    self.files.recent = recent;
                    self.files.recoverable = recoverable;
                }
                self.files.startup = None;
            }
        }
        if let Some((revision, handle)) = &mut self.files.autosave {
            if let Some(result) = handle.try_take() {
                let revision = *revision;
                if let Err(e) = &result {
                    tracing::warn!("autosave: {e}");
                }
                if let Some(session) = &mut self.files.session {
                    session.finished(revision, result.is_ok(), now);
                }
                if result.is_ok() {
                    self.files.autosaved_change = Some(revision);
                }
                self.files.autosave = None;
            }
        }
        let change = self.files.change;
        let due = self
            .files
            .session
            .as_mut()
            .is_some_and(|s| s.tick(change, now));
        if due && !self.document.volumes.is_empty() {
            let project = project_files::project_of(&self.document, &self.files.extras);
            if let Some(session) = &mut self.files.session {
                let job = session.prepare(&project, change);
                let handle = self.jobs.submit("autosave", move |ctx| {
                    job.run(ctx).map_err(|e| JobError::Failed(e.to_string()))
                });
                self.files.autosave = Some((change, handle));
            }
        }
    }

    /// Clean exit: removes this session's recovery folder (no crash to offer next time).
    pub fn end_session(&mut self) {
        if let Some((_, handle)) = &self.files.autosave {
            handle.cancel();
        }
        if let Some(session) = self.files.session.take() {
            if let Err(e) = session.end_clean() {
                tracing::warn!("could not remove the recovery folder: {e}");
            }
        }
    }

    /// Whether there are changes not yet saved to a project.
    pub fn is_modified(&self) -> bool {
        self.files.is_modified()
    }

    /// The open project's folder, once saved or opened.
    pub fn project_path(&self) -> Option<&Path> {
        self.files.project_path.as_deref()
    }

    /// This session's recovery folder (autosave on).
    pub fn recovery_dir(&self) -> Option<&Path> {
        self.files.session.as_ref().map(|s| s.dir())
    }

    /// Whether an autosave job is running.
    pub fn is_autosaving(&self) -> bool {
        self.files.autosave.is_some()
    }

    /// Whether the last autosave holds every change made so far.
    pub fn autosave_is_current(&self) -> bool {
        self.files.autosave.is_none() && self.files.autosaved_change == Some(self.files.change)
    }

    /// Recently opened paths, newest first.
    pub fn recent_files(&self) -> &[PathBuf] {
        &self.files.recent.paths
    }

    /// Crashed sessions offered for recovery (read at start).
    pub fn recoverable(&self) -> &[Recoverable] {
        &self.files.recoverable
    }

    /// The next file dialog answers `path` without opening (tests, scripts).
    pub fn script_file_dialog(&mut self, path: PathBuf) {
        self.ui_state.picker.script(path);
    }
}
