//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// The real test data beside the checkout (`../shared/data`). Missing data skips the test with a
/// note, unless `FUSEPRINT_REQUIRE_DATA` is set (CI), where it is an error.
pub fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if p.is_dir() {
        Some(p)
    } else if std::env::var_os("FUSEPRINT_REQUIRE_DATA").is_some() {
        panic!("../shared/data is missing")
    } else {
        eprintln!("skipping: ../shared/data not found");
        None
    }
}
