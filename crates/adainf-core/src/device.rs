//! Compute devices by name: `flex` (pure-Rust CPU, always built), `wgpu`/`vulkan` and
//! `cuda[:N]` (cargo features of the same names). A device that is not built in or not present
//! gives an error saying what was tried and how to fix it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use burn::tensor::Device;

use crate::error::{Error, Result};

/// A compute device as named on the command line or in a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The pure-Rust CPU backend (`flex`, also `cpu`); always built.
    Flex,
    /// wgpu on whichever graphics API it picks (Vulkan, Metal, DX12, GL).
    Wgpu,
    /// wgpu pinned to Vulkan (SPIR-V kernels).
    Vulkan,
    /// An NVIDIA GPU through CUDA, by device index (`cuda` means `cuda:0`).
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses a device name, ignoring case and surrounding spaces: `flex` or `cpu`, `wgpu`,
    /// `vulkan`, `cuda` or `cuda:N`.
    pub fn parse(name: &str) -> Result<Self> {
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "flex" | "cpu" => Ok(DeviceSpec::Flex),
            "wgpu" => Ok(DeviceSpec::Wgpu),
            "vulkan" => Ok(DeviceSpec::Vulkan),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceSpec::Cuda(i)),
                _ => Err(Error::Device(format!(
                    "unknown device \"{name}\": use flex (CPU), wgpu, vulkan, cuda or cuda:N"
                ))),
            },
        }
    }

    /// The canonical name (`flex`, `wgpu`, `vulkan` or `cuda:N`), which `parse` reads back.
    pub fn name(&self) -> String {
        match self {
            DeviceSpec::Flex => "flex".into(),
            DeviceSpec::Wgpu => "wgpu".into(),
            DeviceSpec::Vulkan => "vulkan".into(),
            DeviceSpec::Cuda(i) => format!("cuda:{i}"),
        }
    }

    /// The name and, for GPU backends, the adapter the device runs on, e.g.
    /// `wgpu: llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn describe(&self, device: &Device) -> String {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if !matches!(self, DeviceSpec::Flex)
            && let Ok(Some(identity)) = without_panics(|| device.identity())
        {
            return format!("{}: {}", self.name(), identity.name);
        }
        let _ = device;
        self.name()
    }

    /// The burn device, checked to exist. Opened once per process and reused: a GPU runtime
    /// can only be started once, so a script naming the command's own device gets it back.
    pub fn open(&self) -> Result<Device> {
        static OPENED: OnceLock<Mutex<HashMap<String, Device>>> = OnceLock::new();
        let opened = OPENED.get_or_init(Default::default);
        let key = self.name();
        if let Some(device) = opened.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(device.clone());
        }
        let device = match self {
            DeviceSpec::Flex => Device::flex(),
            DeviceSpec::Wgpu => open_wgpu(false)?,
            DeviceSpec::Vulkan => open_wgpu(true)?,
            DeviceSpec::Cuda(i) => open_cuda(*i)?,
        };
        opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, device.clone());
        Ok(device)
    }
}

/// What `adainf devices` prints for one device: whether this build has it, whether it opened,
/// the adapter's name and the float types it computes in.
#[derive(Debug, serde::Serialize)]
pub struct DeviceProbe {
    /// The device's canonical name (`flex`, `cuda:0`, `wgpu`).
    pub device: String,
    /// Whether this binary was built with the device's backend (its cargo feature).
    pub built: bool,
    /// Whether the device opened (for a GPU: and ran a test computation).
    pub ok: bool,
    /// The device with its adapter, as `DeviceSpec::describe` gives it; set when it opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Float types with general support (`f32`, `bf16`, `f16`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dtypes: Vec<&'static str>,
    /// Why the device did not open; set when `ok` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Opens each device kind once: flex, then `cuda` and `wgpu` where built. (`vulkan` is left
/// out: it is wgpu again, and a process starts the wgpu runtime only once.)
pub fn probe_all() -> Vec<DeviceProbe> {
    use burn::tensor::FloatDType;
    let built = |spec: &DeviceSpec| match spec {
        DeviceSpec::Flex => true,
        DeviceSpec::Wgpu | DeviceSpec::Vulkan => cfg!(feature = "wgpu"),
        DeviceSpec::Cuda(_) => cfg!(feature = "cuda"),
    };
    [DeviceSpec::Flex, DeviceSpec::Cuda(0), DeviceSpec::Wgpu]
        .into_iter()
        .map(|spec| {
            let mut probe = DeviceProbe {
                device: spec.name(),
                built: built(&spec),
                ok: false,
                name: None,
                dtypes: Vec::new(),
                error: None,
            };
            match spec.open() {
                Ok(device) => {
                    probe.ok = true;
                    probe.name = Some(spec.describe(&device));
                    probe.dtypes = [
                        ("f32", FloatDType::F32),
                        ("bf16", FloatDType::BF16),
                        ("f16", FloatDType::F16),
                    ]
                    .into_iter()
                    .filter(|(_, dt)| device.supports_dtype(*dt))
                    .map(|(n, _)| n)
                    .collect();
                }
                Err(e) => probe.error = Some(e.to_string()),
            }
            probe
        })
        .collect()
}

/// Runs a backend call that may panic (cubecl and cudarc panic when a driver library is
/// missing) and returns the panic's message instead. The panic hook is silenced meanwhile so
/// the user sees our message only.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn without_panics<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend stopped without a message".into())
    })
}

/// A small computation read back from `device`, so a device that enumerates but cannot run
/// kernels fails here rather than in the middle of a run.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn smoke_test(device: &Device) -> std::result::Result<(), String> {
    let sum = without_panics(|| {
        let x = burn::tensor::Tensor::<1>::ones([4], device);
        crate::tensor::read_floats(x.sum())[0]
    })?;
    if sum == 4.0 {
        Ok(())
    } else {
        Err(format!("a test sum of four ones gave {sum}"))
    }
}

#[cfg(feature = "wgpu")]
fn open_wgpu(vulkan_only: bool) -> Result<Device> {
    use burn::tensor::wgpu::WgpuBackend;
    let fix = "Install a Vulkan driver (on Debian without a GPU: `apt-get install \
               mesa-vulkan-drivers`, the lavapipe software device) or use --device flex";
    let (api, tried) = if vulkan_only {
        (WgpuBackend::Vulkan, "Vulkan through wgpu")
    } else {
        (WgpuBackend::Auto, "Vulkan, Metal, DX12 and GL through wgpu")
    };
    let device = without_panics(|| Device::wgpu_options().graphics_api(api).init())
        .and_then(|started| started.map_err(|e| e.to_string()))
        .map_err(|msg| {
            Error::Device(format!(
                "could not start a wgpu device (tried {tried}): {msg}. {fix}"
            ))
        })?;
    smoke_test(&device).map_err(|msg| {
        Error::Device(format!(
            "the wgpu device started but could not run a kernel: {msg}. {fix}"
        ))
    })?;
    Ok(device)
}

#[cfg(not(feature = "wgpu"))]
fn open_wgpu(_vulkan_only: bool) -> Result<Device> {
    Err(Error::Device(
        "this adainf was built without wgpu support; rebuild with `cargo build --release --features wgpu`, \
         or use --device flex"
            .into(),
    ))
}

#[cfg(feature = "cuda")]
fn open_cuda(index: usize) -> Result<Device> {
    let fix = "install the NVIDIA driver (check that `nvidia-smi` works), or use --device wgpu or \
               --device flex";
    let found = without_panics(|| Device::enumerate(burn::tensor::DeviceType::Cuda).len())
        .map_err(|msg| {
            let first = msg.split(" - ").next().unwrap_or(&msg).to_string();
            Error::Device(format!(
                "could not start CUDA device {index}: {first} (the NVIDIA driver library libcuda.so \
                 was not found or did not load); {fix}"
            ))
        })?;
    if index >= found {
        return Err(Error::Device(format!(
            "CUDA device {index} was asked for but {found} CUDA device(s) were found; {fix}"
        )));
    }
    let device = Device::cuda(index);
    smoke_test(&device).map_err(|msg| {
        Error::Device(format!(
            "CUDA device {index} was found but could not run a kernel: {msg}; {fix}"
        ))
    })?;
    Ok(device)
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_index: usize) -> Result<Device> {
    Err(Error::Device(
        "this adainf was built without CUDA support; rebuild with `cargo build --release --features cuda` \
         (it builds without CUDA installed; running needs the NVIDIA driver), or use --device flex"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_rejects_unknown_ones() {
        assert_eq!(DeviceSpec::parse("flex").unwrap(), DeviceSpec::Flex);
        assert_eq!(DeviceSpec::parse("cuda:2").unwrap(), DeviceSpec::Cuda(2));
        assert_eq!(DeviceSpec::parse("Vulkan").unwrap(), DeviceSpec::Vulkan);
        assert_eq!(DeviceSpec::parse("wgpu").unwrap(), DeviceSpec::Wgpu);
        let e = DeviceSpec::parse("tpu").unwrap_err().to_string();
        assert!(e.contains("tpu") && e.contains("flex"), "{e}");
        assert!(DeviceSpec::parse("cuda:x").is_err());
        assert!(DeviceSpec::Flex.open().is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_fix_it() {
        let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
