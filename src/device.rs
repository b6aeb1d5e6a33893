//! Choosing the compute device at run time.
//!
//! Burn 0.22 picks its backend from the [`Device`] a tensor lives on; this module maps the
//! user's `--device auto|wgpu|flex|cuda` onto one, and says which it chose.

use burn::tensor::Device;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The device a user asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// wgpu when a GPU adapter is found, else the pure-Rust CPU backend.
    #[default]
    Auto,
    /// wgpu: Metal on macOS, Vulkan/GL elsewhere (cargo feature `wgpu`).
    Wgpu,
    /// Flex, the pure-Rust CPU backend (always built).
    Flex,
    /// CUDA device 0 (cargo feature `cuda`).
    Cuda,
}

impl FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "wgpu" => Ok(Self::Wgpu),
            "flex" | "cpu" => Ok(Self::Flex),
            "cuda" => Ok(Self::Cuda),
            other => Err(Error::Device(format!(
                "unknown device `{other}` (expected auto, wgpu, flex or cuda)"
            ))),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Wgpu => "wgpu",
            Self::Flex => "flex",
            Self::Cuda => "cuda",
        })
    }
}

/// A resolved device and a human-readable description of it.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// The device (without autodiff; call `.autodiff()` for training).
    pub device: Device,
    /// Which backend it is: `wgpu`, `flex` or `cuda`.
    pub backend: DeviceChoice,
    /// A description for logs and run metadata.
    pub description: String,
}

/// Whether this build can reach a wgpu adapter that is a real GPU (not a CPU emulation).
#[cfg(feature = "wgpu")]
pub fn wgpu_gpu_available() -> bool {
    use burn::tensor::DeviceType;
    std::panic::catch_unwind(|| {
        Device::enumerate(DeviceType::Wgpu)
            .into_iter()
            .any(|d| !format!("{d:?}").contains("Cpu"))
    })
    .unwrap_or(false)
}

/// Whether this build can reach any wgpu adapter (a GPU or a CPU driver such as llvmpipe).
#[cfg(feature = "wgpu")]
pub fn wgpu_available() -> bool {
    use burn::tensor::DeviceType;
    std::panic::catch_unwind(|| !Device::enumerate(DeviceType::Wgpu).is_empty()).unwrap_or(false)
}

/// Whether this build can reach a wgpu adapter (always `false` without the `wgpu` feature).
#[cfg(not(feature = "wgpu"))]
pub fn wgpu_available() -> bool {
    false
}

/// Whether this build can reach a wgpu GPU (always `false` without the `wgpu` feature).
#[cfg(not(feature = "wgpu"))]
pub fn wgpu_gpu_available() -> bool {
    false
}

/// Resolve a [`DeviceChoice`]; a device this build or machine lacks is an error, not a panic.
pub fn select(choice: DeviceChoice) -> Result<SelectedDevice> {
    match choice {
        DeviceChoice::Auto => {
            if wgpu_gpu_available() {
                select(DeviceChoice::Wgpu)
            } else {
                let mut d = select(DeviceChoice::Flex)?;
                d.description = format!("{} (auto: no wgpu GPU adapter found)", d.description);
                Ok(d)
            }
        }
        DeviceChoice::Flex => Ok(SelectedDevice {
            device: Device::flex(),
            backend: DeviceChoice::Flex,
            description: "flex (pure-Rust CPU)".into(),
        }),
        DeviceChoice::Wgpu => select_wgpu(),
        DeviceChoice::Cuda => select_cuda(),
    }
}

#[cfg(feature = "wgpu")]
fn select_wgpu() -> Result<SelectedDevice> {
    use burn::tensor::DeviceType;
    let found = std::panic::catch_unwind(|| Device::enumerate(DeviceType::Wgpu).into_iter().next())
        .ok()
        .flatten();
    match found {
        Some(device) => Ok(SelectedDevice {
            description: format!("wgpu ({device:?})"),
            device,
            backend: DeviceChoice::Wgpu,
        }),
        None => Err(Error::Device(
            "wgpu was requested but no wgpu adapter (Metal/Vulkan/GL) was found on this machine"
                .into(),
        )),
    }
}

#[cfg(not(feature = "wgpu"))]
fn select_wgpu() -> Result<SelectedDevice> {
    Err(Error::Device(
        "wgpu was requested but this build lacks the `wgpu` cargo feature".into(),
    ))
}

#[cfg(feature = "cuda")]
fn select_cuda() -> Result<SelectedDevice> {
    use burn::tensor::DeviceType;
    let found = std::panic::catch_unwind(|| Device::enumerate(DeviceType::Cuda).into_iter().next())
        .ok()
        .flatten();
    match found {
        Some(device) => Ok(SelectedDevice {
            description: format!("cuda ({device:?})"),
            device,
            backend: DeviceChoice::Cuda,
        }),
        None => Err(Error::Device(
            "cuda was requested but no CUDA device was found".into(),
        )),
    }
}

#[cfg(not(feature = "cuda"))]
fn select_cuda() -> Result<SelectedDevice> {
    Err(Error::Device(
        "cuda was requested but this build lacks the `cuda` cargo feature (cargo build --features cuda)"
            .into(),
    ))
}

/// Make CubeCL (the compiler behind the wgpu and CUDA backends) write the source of every
/// kernel it compiles to `path`: WGSL on wgpu (SPIR-V assembly with the `vulkan` feature, MSL
/// with `metal`), LLVM IR for CUDA, each block headed by the kernel's name and id. Fused
/// kernels (Burn's fusion) and autotune candidates appear too. The file is truncated first.
///
/// Must be called before any device is selected or used (CubeCL reads its configuration
/// once); a later call is an error. Per-kernel timings come from the same mechanism:
/// `CUBECL_DEBUG_OPTION=profile` in the environment.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn log_kernels(path: &Path) -> Result<()> {
    use burn::cubecl::config::compilation::CompilationLogLevel;
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::io::create_dir_all(parent)?;
    }
    // CubeCL appends (several loggers share the file); start it empty.
    std::fs::File::create(path).map_err(|e| Error::write(path, e))?;
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    config.compilation.logger.level = CompilationLogLevel::Full;
    config.compilation.logger.file = Some(path.to_path_buf());
    config.compilation.logger.append = true;
    if CubeClRuntimeConfig::try_set(config) {
        Ok(())
    } else {
        Err(Error::Device(
            "kernel logging must be set up before the first device is used".into(),
        ))
    }
}

/// Without a CubeCL backend (`wgpu` or `cuda` feature) there are no compiled kernels to log.
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
pub fn log_kernels(path: &Path) -> Result<()> {
    Err(Error::Device(format!(
        "cannot log kernels to {}: this build has neither the `wgpu` nor the `cuda` feature",
        path.display()
    )))
}

/// What `--kernel-dump` writes in place of kernel sources on flex.
pub const FLEX_HAS_NO_KERNELS: &str = "flex, the pure-Rust CPU backend, runs Rust code compiled \
into the program: it generates no kernels, so there are none to dump. The per-phase profile \
of the steps is in profile.csv.";

/// `BURN_DEVICE`, when set, names a backend this build has: Burn panics on any other name
/// when it first needs its default device (loading optimizer state does).
pub fn check_burn_device() -> Result<()> {
    match std::env::var_os("BURN_DEVICE") {
        Some(value) => check_burn_device_value(&value.to_string_lossy()),
        None => Ok(()),
    }
}

/// [`check_burn_device`] of the value `value`.
pub(crate) fn check_burn_device_value(value: &str) -> Result<()> {
    let mut known = vec!["flex"];
    if cfg!(feature = "wgpu") {
        known.push("wgpu");
    }
    if cfg!(feature = "vulkan") {
        known.push("vulkan");
    }
    if cfg!(feature = "metal") {
        known.push("metal");
    }
    if cfg!(feature = "cuda") {
        known.push("cuda");
    }
    if known.contains(&value.to_lowercase().as_str()) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "BURN_DEVICE={value} names no backend of this build (it has: {}); unset it or pick \
             one",
            known.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `BURN_DEVICE` naming no backend of this build is a clear error on resume, not Burn's
    /// panic (the check of the value the variable would hold: setting it would race the other
    /// tests' threads).
    #[test]
    fn an_unknown_burn_device_is_refused() {
        assert!(check_burn_device_value("flex").is_ok());
        assert!(check_burn_device_value("FLEX").is_ok());
        let err = check_burn_device_value("tpu").unwrap_err().to_string();
        assert!(
            err.contains("BURN_DEVICE=tpu") && err.contains("flex"),
            "{err}"
        );
        if !cfg!(feature = "cuda") {
            assert!(check_burn_device_value("cuda").is_err());
        }
    }
}
