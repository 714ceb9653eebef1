//! Backbones. Only the CIFAR ResNet of the official code for now.

pub mod resnet;
pub mod safetensors;

pub use resnet::{Backbone, ResNet, ResNetConfig};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

/// Held while the process-wide host generator is seeded and drawn from (`init_seeded`,
/// `seed_device`).
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Seeds `device`'s generator under the same lock as `init_seeded`.
pub fn seed_device(device: &Device, seed: u64) {
    with_seed(device, seed, || ());
}

/// Runs `f` with `device`'s generator seeded with `seed`, holding the lock of `init_seeded`
/// throughout: the random values `f` draws on the device (dropout masks) are a function of
/// `seed` alone, whatever other threads do. A training loop that reseeds before each step
/// this way needs no generator state in its checkpoints.
pub fn with_seed<T>(device: &Device, seed: u64, f: impl FnOnce() -> T) -> T {
    let _held = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    f()
}

/// Builds a module with the host (flex) random generator seeded with `seed`, then moves it
/// to `device`. Every backend has its own random generator, so initialising on the host is
/// what makes one seed give the same initial weights on flex, wgpu and CUDA. Use an autodiff
/// host device (`autodiff: true`) for modules that will be trained.
pub fn init_seeded<M: Module>(
    seed: u64,
    autodiff: bool,
    device: &Device,
    build: impl FnOnce(&Device) -> M,
) -> M {
    let host = if autodiff {
        Device::flex().autodiff()
    } else {
        Device::flex()
    };
    // The host generator is one per process: two threads initialising at once (tests, a
    // host running runs side by side) would draw from each other's seeded stream.
    let _held = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    host.seed(seed);
    let module = build(&host);
    // Parameters are initialised lazily, on whatever device they are moved to before first
    // use; reading each one now pins their values to the host generator's.
    struct Materialize;
    impl ModuleVisitor for Materialize {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Materialize);
    module.fork(device)
}
