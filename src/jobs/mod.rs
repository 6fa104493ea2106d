//! Layer 0: background work with progress, cancellation and error reporting.
//!
//! Used by the app (which drains finished jobs once per frame and passes a `wake` closure that
//! requests a repaint) and by the CLI (which polls progress to draw a bar). This is the only
//! module that creates threads. It knows nothing about images or egui.

mod context;

pub use context::{CancelToken, Cancelled, JobContext, Progress};

use crossbeam_channel::{Receiver, Sender};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a job ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    #[error("cancelled")]
    Cancelled,
    /// The algorithm's own error, already rendered with its context (file, model, …).
    #[error("{0}")]
    Failed(String),
    #[error("internal error (please report): {0}")]
    Panicked(String),
    #[error("the worker stopped before the job finished")]
    WorkerGone,
}

impl From<Cancelled> for JobError {
    fn from(_: Cancelled) -> Self {
        JobError::Cancelled
    }
}

/// Identifies a job for the lifetime of a [`JobSystem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// Which worker runs a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The CPU pool (IO, meshing, registration, export).
    Cpu,
    /// One dedicated thread: inference sessions are heavy, so they run one at a time.
    Inference,
}

type Task = Box<dyn FnOnce() + Send + 'static>;

/// Owns the worker threads. Dropping it lets queued jobs finish, then the workers exit.
pub struct JobSystem {
    cpu_tx: Option<Sender<Task>>,
    inference_tx: Option<Sender<Task>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    wake: Arc<dyn Fn() + Send + Sync>,
    next_id: AtomicU64,
}

impl JobSystem {
    /// `wake` is called whenever a job's progress changes noticeably or it finishes
    /// (the app passes its UI context's repaint request).
    pub fn new(wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let cpu_workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4);
        let (cpu_tx, cpu_rx) = crossbeam_channel::bounded::<Task>(256);
        let (inference_tx, inference_rx) = crossbeam_channel::bounded::<Task>(64);
        let mut workers = Vec::new();
        for n in 0..cpu_workers {
            workers.push(spawn_worker(format!("fuseprint-cpu-{n}"), cpu_rx.clone()));
        }
        workers.push(spawn_worker(
            "fuseprint-inference".to_string(),
            inference_rx,
        ));
        Self {
            cpu_tx: Some(cpu_tx),
            inference_tx: Some(inference_tx),
            workers,
            wake,
            next_id: AtomicU64::new(1),
        }
    }

    /// A system with no repaint hook (CLI, tests).
    pub fn headless() -> Self {
        Self::new(Arc::new(|| {}))
    }

    /// Runs `work` on the CPU pool.
    pub fn submit<T, F>(&self, name: &str, work: F) -> JobHandle<T>
    where
        T: Send + 'static,
        F: FnOnce(&JobContext) -> Result<T, JobError> + Send + 'static,
    {
        self.submit_on(Lane::Cpu, name, work)
    }

    /// Runs `work` on the chosen lane. Panics inside `work` become [`JobError::Panicked`].
    pub fn submit_on<T, F>(&self, lane: Lane, name: &str, work: F) -> JobHandle<T>
    where
        T: Send + 'static,
        F: FnOnce(&JobContext) -> Result<T, JobError> + Send + 'static,
    {
        let id = JobId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let ctx = JobContext::new(Progress::new(), CancelToken::new());
        let (result_tx, result_rx) = crossbeam_channel::bounded(1);
        let job_ctx = ctx.clone();
        let wake = self.wake.clone();
        let task: Task = Box::new(move || {
            let outcome = if job_ctx.is_cancelled() {
                Err(JobError::Cancelled)
            } else {
                match catch_unwind(AssertUnwindSafe(|| work(&job_ctx))) {
                    Ok(r) => r,
                    Err(payload) => Err(JobError::Panicked(panic_message(payload.as_ref()))),
                }
            };
            if outcome.is_ok() {
                job_ctx.set_progress(1.0);
            }
            let _ = result_tx.send(outcome);
            wake();
        });
        let tx = match lane {
            Lane::Cpu => self.cpu_tx.as_ref(),
            Lane::Inference => self.inference_tx.as_ref(),
        };
        if let Some(tx) = tx {
            if let Err(e) = tx.send(task) {
                // Workers are gone: run the failure path so the handle reports it.
                drop(e);
            }
        }
        JobHandle {
            id,
            name: name.to_string(),
            started_at: Instant::now(),
            ctx,
            result_rx,
            taken: false,
        }
    }
}

impl Drop for JobSystem {
    fn drop(&mut self) {
        self.cpu_tx.take();
        self.inference_tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn spawn_worker(name: String, rx: Receiver<Task>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if BACKGROUND_JOBS.load(Ordering::Relaxed) {
                lower_this_thread_priority();
            }
            for task in rx.iter() {
                task();
            }
        })
        .expect("the OS refused to start a worker thread")
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// The caller's view of one submitted job.
pub struct JobHandle<T> {
    pub id: JobId,
    pub name: String,
    pub started_at: Instant,
    ctx: JobContext,
    result_rx: Receiver<Result<T, JobError>>,
    taken: bool,
}

impl<T> JobHandle<T> {
    /// Overall fraction in [0, 1].
    pub fn fraction(&self) -> f32 {
        self.ctx.progress().fraction()
    }
    /// The stage text the job last reported.
    pub fn stage(&self) -> String {
        self.ctx.progress().stage()
    }
    /// Asks the job to stop; it ends with [`JobError::Cancelled`] at its next check.
    pub fn cancel(&self) {
        self.ctx.cancel_token().cancel();
    }
    pub fn is_cancel_requested(&self) -> bool {
        self.ctx.is_cancelled()
    }
    /// The result once finished; `None` while running. Returns the result only once.
    pub fn try_take(&mut self) -> Option<Result<T, JobError>> {
        if self.taken {
            return None;
        }
        match self.result_rx.try_recv() {
            Ok(r) => {
                self.taken = true;
                Some(r)
            }
            Err(crossbeam_channel::TryRecvError::Empty) => None,
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                self.taken = true;
                Some(Err(JobError::WorkerGone))
            }
        }
    }
    /// Blocks until the job ends (never call this on a UI thread).
    pub fn wait(mut self) -> Result<T, JobError> {
        self.taken = true;
        self.result_rx.recv().unwrap_or(Err(JobError::WorkerGone))
    }
    /// Blocks up to `timeout`, calling `tick` between polls (the CLI's progress bar).
    pub fn wait_with(
        mut self,
        poll: Duration,
        mut tick: impl FnMut(f32, &str),
    ) -> Result<T, JobError> {
        self.taken = true;
        loop {
            match self.result_rx.recv_timeout(poll) {
                Ok(r) => return r,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    tick(self.fraction(), &self.stage())
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(JobError::WorkerGone)
                }
            }
        }
    }
    pub fn elapsed(&self) -> Duration {
        self.started_at.elapsed()
    }
}

/// Set by [`background_global_pool`]: job workers started afterwards lower their own priority
/// too (a job's serial parts run on its worker, not in rayon's pool).
static BACKGROUND_JOBS: AtomicBool = AtomicBool::new(false);

/// Linux nice level of job threads in the window: 19 (scheduler weight 15 against the
/// window's 1024) rather than the earlier 5 (335) with the job workers left at 0. Measured with
/// `fuseprint bench ui --scroll` on 2 cores that other programs kept at load 6.5–9.4 (so the
/// figures scatter): App::ui p95 while registering 32–36 → 22–31 ms, median 9–13 → 6–10 ms (idle
/// 3–3.6 ms); the price is that the registration took 1.2–2.4× as long, because the other
/// programs' nice-0 threads now win every contest. On a machine with nothing else running the
/// jobs still get every cycle the window leaves. Not SCHED_IDLE: that would stop a job outright
/// while any other program keeps the CPU busy.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const BACKGROUND_NICE: libc::c_int = 19;

/// [`BACKGROUND_NICE`], or FUSEPRINT_JOB_NICE (0–19) where set: on a machine busy with other
/// programs nice 19 jobs get little CPU (see above), and a user may prefer faster jobs to
/// smoother frames.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn background_nice() -> libc::c_int {
    std::env::var("FUSEPRINT_JOB_NICE")
        .ok()
        .and_then(|v| v.trim().parse::<libc::c_int>().ok())
        .map_or(BACKGROUND_NICE, |n| n.clamp(0, 19))
}

/// Makes long jobs background-priority threads (Linux `nice` [`BACKGROUND_NICE`]): rayon's
/// global pool, where they run their parallel loops, and the [`JobSystem`] workers created
/// after this call, where they run their serial parts. On a machine with few cores the
/// window's own thread and the [`interactive`] pool then win the CPU whenever they want it,
/// and jobs still get every cycle the window leaves. The window calls this before any
/// parallel work; elsewhere (CLI, tests) threads stay at normal priority. Returns whether the
/// pool was built here (false when something already started it).
pub fn background_global_pool() -> bool {
    BACKGROUND_JOBS.store(true, Ordering::Relaxed);
    rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("fuseprint-job-{i}"))
        .start_handler(|_| lower_this_thread_priority())
        .build_global()
        .is_ok()
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // std has no per-thread priority; two libc calls on our own thread.
fn lower_this_thread_priority() {
    // SAFETY: plain syscalls on the calling thread; failure only leaves the priority unchanged.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, background_nice());
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_thread_priority() {}

/// Runs `op` (typically a parallel iterator the UI thread waits on, such as slice sampling) on a
/// rayon pool of its own. Long jobs fill rayon's global pool; a frame that queued its rows there
/// would wait for a registration's tasks to finish (measured with `fuseprint bench ui --scroll`:
/// frame median 22 ms and p95 120 ms while registering, against 3 ms idle).
pub fn interactive<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("fuseprint-interactive-{i}"))
            .build()
            .ok()
    });
    match pool {
        Some(pool) => pool.install(op),
        // No pool could be made (thread limit): the global pool still gives the right answer.
        None => op(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn job_reports_result_and_wakes() {
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        let jobs = JobSystem::new(Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }));
        let h = jobs.submit("sum", |ctx| {
            ctx.set_stage("Adding");
            ctx.set_progress(0.5);
            Ok(2 + 2)
        });
        assert_eq!(h.wait(), Ok(4));
        drop(jobs);
        assert_eq!(woken.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn cancellation_stops_a_running_job() {
        let jobs = JobSystem::headless();
        let (started_tx, started_rx) = crossbeam_channel::bounded(1);
        let h = jobs.submit("spin", move |ctx| {
            let _ = started_tx.send(());
            loop {
                ctx.check_cancelled()?;
                std::thread::sleep(Duration::from_millis(1));
            }
            #[allow(unreachable_code)]
            Ok(())
        });
        started_rx.recv().expect("job started");
        h.cancel();
        assert_eq!(h.wait(), Err(JobError::Cancelled));
    }

    #[test]
    fn errors_and_panics_are_reported_not_propagated() {
        let jobs = JobSystem::headless();
        let failing = jobs.submit::<(), _>("fail", |_| {
            Err(JobError::Failed("scan.dcm: truncated".into()))
        });
        assert_eq!(
            failing.wait(),
            Err(JobError::Failed("scan.dcm: truncated".into()))
        );
        let panicking = jobs.submit::<(), _>("panic", |_| panic!("boom"));
        assert_eq!(panicking.wait(), Err(JobError::Panicked("boom".into())));
        // The worker survives a panic.
        assert_eq!(jobs.submit("after", |_| Ok(1)).wait(), Ok(1));
    }

    #[test]
    fn try_take_polls_without_blocking() {
        let jobs = JobSystem::headless();
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
        let mut h = jobs.submit_on(Lane::Inference, "gated", move |_| {
            go_rx
                .recv()
                .map_err(|_| JobError::Failed("gate dropped".into()))?;
            Ok("done")
        });
        assert!(h.try_take().is_none());
        go_tx.send(()).expect("gate");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = h.try_take() {
                assert_eq!(r, Ok("done"));
                break;
            }
            assert!(Instant::now() < deadline, "job never finished");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(h.try_take().is_none(), "a result is handed out once");
    }
}
