//! Driving the real window headless (egui_kittest) in the UI integration tests.

use egui_kittest::Harness;
use fuseprint::app::App;

/// Steps the app until `done` holds, then `settle_steps` more frames so the UI shows it; panics
/// naming `what` if it never does. The step cap only guards against a hang; it is not a speed
/// requirement.
pub fn step_until_settled(
    h: &mut Harness<'static, App>,
    what: &str,
    settle_steps: usize,
    done: impl Fn(&App) -> bool,
) {
    for _ in 0..30_000 {
        if done(h.state()) {
            h.run_steps(settle_steps);
            return;
        }
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the app never reached: {what}");
}

/// [`step_until_settled`] with three settling frames.
#[allow(dead_code)] // not every UI test binary uses both
pub fn step_until(h: &mut Harness<'static, App>, what: &str, done: impl Fn(&App) -> bool) {
    step_until_settled(h, what, 3, done);
}

/// Steps until the bundled sample study (CT + MR) has loaded.
#[allow(dead_code)] // not every UI test binary starts from the sample
pub fn wait_for_sample(h: &mut Harness<'static, App>) {
    step_until(h, "the sample study loaded", |app| {
        app.document().volumes.len() == 2 && !app.is_loading()
    });
}
