//! tract allocates each layer's output afresh (a 256³ MeshNet: ~1 GB a tensor, dozens a run).
//! glibc serves blocks that large with mmap and unmaps them on free, so every layer pays the
//! kernel for zeroing fresh pages: 34 of 214 CPU s on mindgrab's whole t1_crop, on one core.
//! While a tract run is in progress large blocks come from the heap instead, where the next
//! layer reuses them (148 -> 124 s wall, system time 34 -> 2 s, the same peak RSS);
//! after the last run in flight the defaults return and the heap is trimmed, so the memory goes
//! back to the system.

use std::sync::Mutex;

/// Runs in flight; the first one switches the allocator over, the last one switches back.
static IN_FLIGHT: Mutex<usize> = Mutex::new(0);

/// Held for the length of one tract run.
pub struct HeapReuse;

impl HeapReuse {
    pub fn begin() -> Self {
        let mut n = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        if *n == 0 {
            set_large_blocks_on_heap(true);
        }
        *n += 1;
        HeapReuse
    }
}

impl Drop for HeapReuse {
    fn drop(&mut self) {
        let mut n = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            set_large_blocks_on_heap(false);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // std has no handle on glibc's allocation policy.
fn set_large_blocks_on_heap(on: bool) {
    // glibc's defaults: 65,536 mmapped blocks at most, trim above 128 KiB of free heap top.
    let (mmap_max, trim_threshold) = if on {
        (0, libc::c_int::MAX)
    } else {
        (65_536, 128 * 1024)
    };
    // SAFETY: mallopt and malloc_trim only change glibc's allocation policy; they are
    // thread-safe and take no pointers.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, mmap_max);
        libc::mallopt(libc::M_TRIM_THRESHOLD, trim_threshold);
        if !on {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_large_blocks_on_heap(_on: bool) {}
