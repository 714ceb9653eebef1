//! The `adainf` binary: see `adainf::cli`.

/// Counts live heap bytes for the script memory guard (`adainf_script::memory`).
#[global_allocator]
static ALLOCATOR: adainf::host::memory::Counting = adainf::host::memory::Counting;

fn main() -> std::process::ExitCode {
    // burn puts tensors it loads without being told a device (the optimizer state of a
    // checkpoint) on its default device, which in a wgpu build is the GPU: resuming a flex run
    // would open a GPU, or panic on a machine without one. The state moves to the run's device
    // on the next step anyway, so the host is the right default, and it always opens.
    // SAFETY: the first statement of `main`, before any other thread exists.
    unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    adainf::cli::main()
}
