//! fuseprint patch (PATCHES.md): the environment switches that turn the patches off, read where
//! each patch decides, so an A/B comparison needs no rebuild.

/// Whether the switch `name` is on: set to anything but `0` (`TRACT_DISABLE_FAST_PAD=1`).
pub(crate) fn is_on(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v != "0")
}
