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
            loading_frames: 0,
        }
    }

    pub fn frame_started(&mut self, ctx: &egui::Context, loading: bool) {
        let now = Instant::now();
        if !self.first_frame_seen {
            self.first_frame_seen = true;
            tracing::info!(
                "first frame {:.0} ms after start",
                (now - self.started).as_secs_f64() * 1000.0
            );
        }
        if !self.enabled {
            return;
        }
        ctx.request_repaint();
        if let Some(last) = self.last_frame {
            self.intervals_ms.push((now - last).as_secs_f64() * 1000.0);
            if loading {
                self.loading_frames += 1;
            }
        }
        self.last_frame = Some(now);
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
            tracing::info!(
                "frames {state}: n={} mean {mean:.1} ms p95 {p95:.1} ms max {:.1} ms",
                v.len(),
                v[v.len() - 1]
            );
            self.window_start = now;
            self.loading_frames = 0;
        }
    }
}
