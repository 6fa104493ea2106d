//! Autosave and crash recovery.
//!
//! Each running session owns a folder under the recovery root
//! (`$XDG_DATA_HOME/fuseprint/recovery`, else `~/.local/share/fuseprint/recovery`) holding a
//! marker (`session.lock`: process id, start time, the project it had open) and, after the
//! first autosave, a complete project (`autosave.fuseprint`). A clean exit deletes the folder.
//! At the next start, [`find_recoverable`] lists the folders whose process is gone and which
//! hold an autosave: those sessions did not exit cleanly, and the user is offered to recover.
//!
//! The policy is "after N idle minutes following a change": [`Session::tick`] says when a
//! save is due, [`Session::prepare`] returns what to write (cheap: the members are shared),
//! and the app runs [`AutosaveJob::run`] on the job system, so the UI thread never writes.
//! Re-saves reuse unchanged members (see `io::project`), so an autosave after a brush stroke
//! rewrites the label map, not the CT.
//!
//! A crashed session whose process id has since been reused by another process is taken for
//! a live one and not offered until that process ends; the folder is kept either way.

use super::project::{Project, ProjectError, SaveMode, SaveSummary};
use crate::io::project::{
    self as files, create_session_folder, list_session_folders, process_alive,
    remove_session_folder, write_session_marker, ProjectContents, SessionMarker,
};
use crate::io::IoError;
use crate::jobs::JobContext;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Minutes of quiet after a change before an autosave (long enough not to interrupt a
/// burst of edits, short enough to lose little).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(2 * 60);

/// The per-user recovery root: `$XDG_DATA_HOME/fuseprint/recovery`, else
/// `$HOME/.local/share/fuseprint/recovery`; `None` when neither variable is set.
pub fn default_recovery_root() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        p.is_absolute().then_some(p)
    };
    let data = std::env::var_os("XDG_DATA_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".local/share"))
        })?;
    Some(data.join("fuseprint").join("recovery"))
}

#[derive(Debug, Clone, PartialEq)]
pub struct AutosavePolicy {
    /// Quiet time after the last change before saving.
    pub idle: Duration,
    /// Where session folders live.
    pub root: PathBuf,
}

impl AutosavePolicy {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            idle: DEFAULT_IDLE,
            root: root.into(),
        }
    }

    /// The default idle time in the per-user recovery root (`None` without a home folder).
    pub fn per_user() -> Option<Self> {
        default_recovery_root().map(Self::new)
    }
}

/// What one autosave writes; run it on the job system.
#[derive(Debug, Clone)]
pub struct AutosaveJob {
    pub folder: PathBuf,
    pub contents: ProjectContents,
    /// The document revision this snapshot shows (hand it back to [`Session::finished`]).
    pub revision: u64,
}

impl AutosaveJob {
    pub fn run(&self, ctx: &JobContext) -> Result<SaveSummary, ProjectError> {
        files::save_project(&self.folder, &self.contents, SaveMode::Replace, ctx)
    }
}

/// The running session's recovery folder and autosave timing.
#[derive(Debug)]
pub struct Session {
    policy: AutosavePolicy,
    dir: PathBuf,
    marker: SessionMarker,
    /// Last revision seen and when it was first seen.
    last_change: Option<(u64, Instant)>,
    saved_revision: Option<u64>,
    in_flight: Option<u64>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Session {
    /// Creates this session's recovery folder and marker. `project` is the project open at
    /// start, if any (update it with [`Session::set_project`]).
    pub fn start(policy: AutosavePolicy, project: Option<PathBuf>) -> Result<Self, IoError> {
        let marker = SessionMarker {
            pid: std::process::id(),
            started_unix_s: unix_now(),
            project,
        };
        let dir = create_session_folder(&policy.root, &marker)?;
        Ok(Self {
            policy,
            dir,
            marker,
            last_change: None,
            saved_revision: None,
            in_flight: None,
        })
    }

    /// This session's recovery folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the autosaved project goes.
    pub fn autosave_folder(&self) -> PathBuf {
        self.dir.join(files::RECOVERY_PROJECT)
    }

    /// Records the project the user saved to or opened (shown when offering recovery).
    pub fn set_project(&mut self, project: Option<PathBuf>) -> Result<(), IoError> {
        self.marker.project = project;
        write_session_marker(&self.dir, &self.marker)
    }

    /// Marks `revision` as already safe on disk (e.g. right after the user saved or opened
    /// a project), so no autosave follows until the next change.
    pub fn mark_saved(&mut self, revision: u64) {
        self.saved_revision = Some(revision);
    }

    /// Call once per frame with the document's revision: true when an autosave is due
    /// (a change not yet saved, `idle` quiet time since it, and no autosave running).
    pub fn tick(&mut self, revision: u64, now: Instant) -> bool {
        match self.last_change {
            Some((seen, _)) if seen == revision => {}
            None => {
                // The state at start has nothing to protect yet: only a change starts the clock.
                self.last_change = Some((revision, now));
                self.saved_revision.get_or_insert(revision);
            }
            _ => self.last_change = Some((revision, now)),
        }
        if self.in_flight.is_some() || self.saved_revision == Some(revision) {
            return false;
        }
        self.last_change
            .is_some_and(|(_, since)| now.duration_since(since) >= self.policy.idle)
    }

    /// The data to write for `revision`; the session counts it as in flight until
    /// [`Session::finished`].
    pub fn prepare(&mut self, project: &Project, revision: u64) -> AutosaveJob {
        self.in_flight = Some(revision);
        AutosaveJob {
            folder: self.autosave_folder(),
            contents: project.to_contents(),
            revision,
        }
    }

    /// The autosave job ended: on success `revision` is safe; on failure the next tick
    /// tries again after another idle period.
    pub fn finished(&mut self, revision: u64, succeeded: bool, now: Instant) {
        self.in_flight = None;
        if succeeded {
            self.saved_revision = Some(revision);
        } else {
            self.last_change = Some((revision, now));
        }
    }

    /// Clean exit: deletes this session's recovery folder.
    pub fn end_clean(self) -> Result<(), IoError> {
        remove_session_folder(&self.dir)
    }
}

/// A session that did not exit cleanly and left an autosave.
#[derive(Debug, Clone, PartialEq)]
pub struct Recoverable {
    /// The session's recovery folder.
    pub dir: PathBuf,
    /// The autosaved project inside it.
    pub autosave: PathBuf,
    /// The project that session had open, if it had one.
    pub original: Option<PathBuf>,
    pub started_unix_s: u64,
    /// When the autosave was written, seconds since the Unix epoch.
    pub saved_unix_s: Option<u64>,
}

impl Recoverable {
    /// Reads the autosaved project (run it in a job).
    pub fn open(&self, ctx: &JobContext) -> Result<Project, ProjectError> {
        super::project::open(&self.autosave, ctx)
    }

    /// Deletes the recovery folder (after recovering, or when the user declines).
    pub fn discard(&self) -> Result<(), IoError> {
        remove_session_folder(&self.dir)
    }
}

/// Sessions in the per-user recovery root that crashed with an autosave, newest first.
pub fn find_recoverable() -> Vec<Recoverable> {
    default_recovery_root()
        .map(|root| find_recoverable_in(&root))
        .unwrap_or_default()
}

/// [`find_recoverable`] for a given root.
pub fn find_recoverable_in(root: &Path) -> Vec<Recoverable> {
    let mut found: Vec<Recoverable> = list_session_folders(root)
        .into_iter()
        .filter_map(|s| {
            let marker = s.marker?;
            if process_alive(marker.pid) {
                return None;
            }
            Some(Recoverable {
                autosave: s.project?,
                dir: s.dir,
                original: marker.project,
                started_unix_s: marker.started_unix_s,
                saved_unix_s: s.saved_unix_s,
            })
        })
        .collect();
    found.sort_by(|a, b| b.started_unix_s.cmp(&a.started_unix_s));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_never_takes_over_another_sessions_folder() {
        // Another session of this process, started this second (or the next: the clock may
        // tick meanwhile), holds the folder the new one would be named.
        let dir = tempfile::tempdir().expect("tempdir");
        let now = unix_now();
        let taken: Vec<(PathBuf, SessionMarker)> = [now, now + 1]
            .into_iter()
            .map(|t| {
                let marker = SessionMarker {
                    pid: std::process::id(),
                    started_unix_s: t,
                    project: Some(PathBuf::from("other.fuseprint")),
                };
                let folder = dir.path().join(format!("session-{t}-{}", marker.pid));
                write_session_marker(&folder, &marker).expect("marker");
                (folder, marker)
            })
            .collect();
        let s = Session::start(AutosavePolicy::new(dir.path()), None).expect("starts");
        assert!(s.dir().join(files::MARKER_FILE).is_file());
        let folders = list_session_folders(dir.path());
        for (folder, marker) in &taken {
            assert_ne!(s.dir(), folder.as_path());
            let kept = folders
                .iter()
                .find(|f| &f.dir == folder)
                .expect("still there");
            assert_eq!(
                kept.marker.as_ref(),
                Some(marker),
                "the other session's marker is untouched"
            );
        }
    }

    #[test]
    fn autosave_waits_for_quiet_after_a_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut policy = AutosavePolicy::new(dir.path());
        policy.idle = Duration::from_secs(60);
        let mut s = Session::start(policy, None).expect("starts");
        assert!(s.dir().join(files::MARKER_FILE).is_file());
        let t0 = Instant::now();
        s.mark_saved(1);
        assert!(!s.tick(1, t0), "nothing changed");
        assert!(!s.tick(2, t0 + Duration::from_secs(10)), "just changed");
        assert!(!s.tick(3, t0 + Duration::from_secs(50)), "still editing");
        assert!(!s.tick(3, t0 + Duration::from_secs(100)), "40 s quiet");
        assert!(s.tick(3, t0 + Duration::from_secs(111)), "60 s quiet");
        let job = s.prepare(&Project::default(), 3);
        assert_eq!(job.folder, s.autosave_folder());
        assert!(!s.tick(3, t0 + Duration::from_secs(200)), "one at a time");
        s.finished(3, true, t0 + Duration::from_secs(201));
        assert!(!s.tick(3, t0 + Duration::from_secs(500)), "saved");
        assert!(!s.tick(4, t0 + Duration::from_secs(501)));
        let job = s.prepare(&Project::default(), 4);
        s.finished(job.revision, false, t0 + Duration::from_secs(600));
        assert!(
            !s.tick(4, t0 + Duration::from_secs(620)),
            "failed: wait again"
        );
        assert!(s.tick(4, t0 + Duration::from_secs(661)));
        let folder = s.dir().to_path_buf();
        s.end_clean().expect("clean exit");
        assert!(!folder.exists());
    }

    #[test]
    fn recovery_root_follows_xdg_then_home() {
        // Read-only check of the rule on this machine's environment.
        let root = default_recovery_root();
        match std::env::var_os("XDG_DATA_HOME").filter(|v| Path::new(v).is_absolute()) {
            Some(xdg) => assert_eq!(root, Some(PathBuf::from(xdg).join("fuseprint/recovery"))),
            None => {
                if let Some(home) = std::env::var_os("HOME").filter(|v| Path::new(v).is_absolute())
                {
                    assert_eq!(
                        root,
                        Some(PathBuf::from(home).join(".local/share/fuseprint/recovery"))
                    );
                }
            }
        }
    }
}
