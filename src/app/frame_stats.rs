//! Start-to-first-frame and frame-interval figures, logged when `FUSEPRINT_FRAME_STATS` is set
//! (which also keeps the window repainting continuously, so intervals measure capacity).

use std::time::{Duration, Instant};

const REPORT_EVERY: Duration = Duration::from_secs(2);

pub struct FrameStats {
    started: Instant,
    first_frame_seen: bool,
    enabled: bool,
    last_frame: Option<Instant>,
    window_start: Instant,
    intervals_ms: Vec<f64>,
    /// Time spent in our own `App::ui` per frame (draining jobs, widgets, slice sampling),
    /// as opposed to the interval, which also includes eframe's tessellation and the GPU.
    ui_ms: Vec<f64>,
    frame_start: Option<Instant>,
    loading_frames: usize,
}

impl FrameStats {
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            first_frame_seen: false,
            enabled: std::env::var_os("FUSEPRINT_FRAME_STATS").is_some(),
            last_frame: None,
            window_start: Instant::now(),
            intervals_ms: Vec::new(),
            ui_ms: Vec::new(),
            frame_start: None,
            loading_frames: 0,
        }
    }

    /// Records a frame start; returns whether stats are on, in which case the caller asks for
    /// continuous repaints so intervals measure rendering, not idle waiting.
    pub fn frame_started(&mut self, loading: bool) -> bool {
        let now = Instant::now();
        if !self.first_frame_seen {
            self.first_frame_seen = true;
            tracing::info!(
                "first frame {:.0} ms after start",
                (now - self.started).as_secs_f64() * 1000.0
            );
        }
        if !self.enabled {
            return false;
        }
        if let Some(last) = self.last_frame {
            self.intervals_ms.push((now - last).as_secs_f64() * 1000.0);
            if loading {
                self.loading_frames += 1;
            }
        }
        self.last_frame = Some(now);
        self.frame_start = Some(now);
        if now - self.window_start >= REPORT_EVERY && !self.intervals_ms.is_empty() {
            let mut v = std::mem::take(&mut self.intervals_ms);
            v.sort_by(|a, b| a.total_cmp(b));
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let p95 = v[((v.len() - 1) as f64 * 0.95).round() as usize];
            let state = match self.loading_frames {
                0 => "idle",
                n if n == v.len() => "loading",
                _ => "mixed",
            };
            let ui = std::mem::take(&mut self.ui_ms);
            let ui_mean = ui.iter().sum::<f64>() / ui.len().max(1) as f64;
            let ui_max = ui.iter().cloned().fold(0.0, f64::max);
            tracing::info!(
                "frames {state}: n={} interval mean {mean:.1} ms p95 {p95:.1} ms max {:.1} ms; \
                 App::ui mean {ui_mean:.1} ms max {ui_max:.1} ms",
                v.len(),
                v[v.len() - 1]
            );
            self.window_start = now;
            self.loading_frames = 0;
        }
        true
    }
}

impl FrameStats {
    pub fn frame_finished(&mut self) {
        if let Some(start) = self.frame_start.take() {
            self.ui_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
}
