//! Any bytes as a DICOM file in a folder: scan and load give typed errors, never a panic.
//! (The DICOM reader works on paths, so the bytes go through a temporary file.)
#![no_main]

use fuseprint::jobs::JobContext;
use libfuzzer_sys::fuzz_target;

/// libfuzzer-sys aborts on every panic, even one our decoder wrapper catches and turns into a
/// typed error (third-party codecs do panic on corrupt streams). Keep its verdict for panics that
/// escape: those still unwind to libfuzzer's own catch_unwind, which aborts.
fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

fuzz_target!(|data: &[u8]| {
    quiet_caught_panics();
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("image.dcm");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let ctx = JobContext::detached();
    if let Ok(scan) = fuseprint::io::dicom::scan(dir.path(), &ctx) {
        for index in 0..scan.series.len() {
            let _ = fuseprint::io::dicom::load_series(&scan, index, &ctx);
        }
    }
});
