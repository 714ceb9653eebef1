//! The memory guard of scripts. Rhai's own data-size limits re-measure a whole value (every
//! nested item) after each call that changes it, which makes `a.push(x)` in a loop quadratic
//! (an hour to reach a 4M-item limit) and building nested data slower still; the host turns
//! them off. Instead the binary installs `Counting` as its global allocator, and the host stops
//! a script between two operations once the process's live heap passes the `--max-memory`
//! limit (`over_limit`): one atomic read per operation, so runaway growth (`s += s`,
//! `a = [a, a]`, `a.push(1)` forever) ends with a clear error within one operation of the limit.
//! Without the allocator installed (unit tests) the count stays 0 and the guard never fires.
//!
//! It also counts the work of copying. Rhai values are copied whole on assignment (`a = [a]`
//! deep-copies `a`), so a loop of a few operations can do quadratic work that neither the
//! operation budget nor the memory limit sees: 10,000 levels of `a = [a]` took 6 s, 100,000
//! levels would take ten minutes. The allocator counts the allocations of each thread, host
//! functions mark themselves (`HostCall`), and the host charges each allocation the script
//! itself made (`script_allocations`) to the operation budget like one operation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Allocations made by this thread (with `Counting` installed).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Of those, the ones made inside host functions (`HostCall`).
    static IN_HOST: Cell<u64> = const { Cell::new(0) };
    /// How many host calls this thread is inside, and its allocation count when the outermost
    /// began.
    static HOST_DEPTH: Cell<(u32, u64)> = const { Cell::new((0, 0)) };
}

fn count_allocation() {
    // `try_with`: a thread's locals may be gone while it exits; those frees are not counted.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

/// Marks a host function's body: what it allocates (training, reading data) is its own work,
/// not the script's, and is not charged to the operation budget. Nested calls (a host function
/// calling a script closure calling a host function) count once.
pub struct HostCall(());

impl HostCall {
    pub fn enter() -> HostCall {
        HOST_DEPTH.with(|d| {
            let (depth, start) = d.get();
            d.set(if depth == 0 {
                (1, allocations())
            } else {
                (depth + 1, start)
            });
        });
        HostCall(())
    }
}

impl Drop for HostCall {
    fn drop(&mut self) {
        HOST_DEPTH.with(|d| {
            let (depth, start) = d.get();
            if depth == 1 {
                IN_HOST.with(|h| h.set(h.get() + allocations().saturating_sub(start)));
            }
            d.set((depth - 1, start));
        });
    }
}

/// Allocations this thread made outside host functions so far: the copying work of scripts.
/// Inside a host call, what that call has allocated so far is left out too.
pub fn script_allocations() -> u64 {
    let now = allocations();
    let (depth, start) = HOST_DEPTH.with(Cell::get);
    let running = if depth > 0 {
        now.saturating_sub(start)
    } else {
        0
    };
    now.saturating_sub(IN_HOST.with(Cell::get))
        .saturating_sub(running)
}

/// The system allocator, counting the bytes it has handed out and not yet got back.
pub struct Counting;

// SAFETY: every call is forwarded to `System` unchanged; only a counter is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
            count_allocation();
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
            count_allocation();
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            count_allocation();
        }
        p
    }
}

/// Bytes of heap live now (0 where `Counting` is not the global allocator).
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The default `--max-memory`: three quarters of the machine's memory (`/proc/meminfo`), or
/// 16 GiB where that cannot be read; in GiB, at least 1.
pub fn default_limit_gib() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    total_kib.map_or(16, |k| (k * 3 / 4 / (1 << 20)).max(1))
}

/// The message of a script stopped by the guard (`limit_gib` as set).
pub fn over_limit_message(limit_gib: u64) -> String {
    format!(
        "the script's data grew past the memory limit of {limit_gib} GiB (a value growing without end, e.g. pushing in a loop or doubling a string?); if the script is right, raise the limit with --max-memory GIB"
    )
}

/// Whether the live heap is over `limit_gib`.
pub fn over_limit(limit_gib: u64) -> bool {
    live_bytes() as u64 > limit_gib.saturating_mul(1 << 30)
}
