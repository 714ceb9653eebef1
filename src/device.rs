//! Compute devices by name: `flex` (pure-Rust CPU, always built), `wgpu`/`vulkan` and
//! `cuda[:N]` (cargo features of the same names). A device that is not built in or not present
//! gives an error saying what was tried and how to fix it.

use burn::tensor::Device;

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Flex,
    Wgpu,
    Cuda(usize),
}

impl DeviceSpec {
    pub fn parse(name: &str) -> Result<Self> {
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "flex" | "cpu" => Ok(DeviceSpec::Flex),
            "wgpu" | "vulkan" => Ok(DeviceSpec::Wgpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceSpec::Cuda(i)),
                _ => Err(Error::Device(format!(
                    "unknown device \"{name}\": use flex (CPU), wgpu, vulkan, cuda or cuda:N"
                ))),
            },
        }
    }

    pub fn name(&self) -> String {
        match self {
            DeviceSpec::Flex => "flex".into(),
            DeviceSpec::Wgpu => "wgpu".into(),
            DeviceSpec::Cuda(i) => format!("cuda:{i}"),
        }
    }

    /// The burn device, checked to exist.
    pub fn open(&self) -> Result<Device> {
        match self {
            DeviceSpec::Flex => Ok(Device::flex()),
            DeviceSpec::Wgpu => open_wgpu(),
            DeviceSpec::Cuda(i) => open_cuda(*i),
        }
    }
}

#[cfg(feature = "wgpu")]
fn open_wgpu() -> Result<Device> {
    Device::wgpu_options().init().map_err(|e| {
        Error::Device(format!(
            "could not start a wgpu device: {e}. Install a Vulkan driver (on Debian without a GPU: \
             `apt-get install mesa-vulkan-drivers` for the software rasteriser) or use --device flex"
        ))
    })
}

#[cfg(not(feature = "wgpu"))]
fn open_wgpu() -> Result<Device> {
    Err(Error::Device(
        "this adainf was built without wgpu support; rebuild with `cargo build --release --features wgpu`, \
         or use --device flex"
            .into(),
    ))
}

#[cfg(feature = "cuda")]
fn open_cuda(index: usize) -> Result<Device> {
    let found = Device::enumerate(burn::tensor::DeviceType::Cuda).len();
    if index >= found {
        return Err(Error::Device(format!(
            "CUDA device {index} was asked for but {found} CUDA device(s) were found (is the NVIDIA \
             driver installed and `nvidia-smi` working?); use --device flex or wgpu otherwise"
        )));
    }
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_index: usize) -> Result<Device> {
    Err(Error::Device(
        "this adainf was built without CUDA support; rebuild with `cargo build --release --features cuda` \
         on a machine with the CUDA toolkit, or use --device flex"
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
        assert_eq!(DeviceSpec::parse("Vulkan").unwrap(), DeviceSpec::Wgpu);
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
