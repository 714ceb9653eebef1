//! Export of a trained backbone as a `.safetensors` file with torchvision's ResNet key names
//! (`conv1.weight`, `bn1.running_mean`, `layer2.0.downsample.0.weight`, …), so it loads into
//! PyTorch:
//!
//! ```python
//! import torch, torchvision
//! from safetensors.torch import load_file
//! m = torchvision.models.resnet18(num_classes=10)
//! m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 2, bias=False); m.maxpool = torch.nn.Identity()
//! missing, unexpected = m.load_state_dict(load_file("runs/<id>/backbone.safetensors"), strict=False)
//! # missing: only fc.weight, fc.bias (and num_batches_tracked buffers)
//! ```
//!
//! burn's batch-norm `gamma`/`beta` become `weight`/`bias`; convolution weights have the same
//! [out, in, kh, kw] layout in both frameworks.

use std::io::Write;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

use super::resnet::{ResNet, ResNetConfig};
use crate::error::{Error, Result};
use crate::tensor::read_floats;

/// Collects (burn path, shape, values) of every float tensor (parameters and BN statistics).
struct Collect {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        self.out
            .push((self.path.join("."), t.dims().to_vec(), read_floats(t)));
    }
}

/// burn path of our ResNet → torchvision name.
fn torchvision_name(path: &str, blocks: [usize; 4]) -> String {
    let bn = |leaf: &str| match leaf {
        "gamma" => "weight".to_string(),
        "beta" => "bias".to_string(),
        other => other.to_string(),
    };
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        ["stem", leaf] => format!("conv1.{leaf}"),
        ["stem_bn", leaf] => format!("bn1.{}", bn(leaf)),
        ["blocks", i, rest @ ..] => {
            let mut i: usize = i.parse().unwrap_or(0);
            let mut stage = 0;
            while stage < 3 && i >= blocks[stage] {
                i -= blocks[stage];
                stage += 1;
            }
            let tail = match rest {
                ["downsample", "conv", leaf] => format!("downsample.0.{leaf}"),
                ["downsample", "bn", leaf] => format!("downsample.1.{}", bn(leaf)),
                [layer, leaf] if layer.starts_with("bn") => format!("{layer}.{}", bn(leaf)),
                other => other.join("."),
            };
            format!("layer{}.{i}.{tail}", stage + 1)
        }
        _ => path.to_string(),
    }
}

/// Writes `tensors` (name, shape, f32 values) in the safetensors format.
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::json!({ "format": "pt", "producer": "adainf" }),
    );
    let mut offset = 0usize;
    for (name, shape, values) in tensors {
        let end = offset + 4 * values.len();
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut text = serde_json::to_string(&header).map_err(|e| Error::file(path, e))?;
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let tmp = path.with_extension("safetensors.tmp");
    let io = |e: std::io::Error| Error::file(&tmp, e);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    out.write_all(&(text.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(text.as_bytes()).map_err(io)?;
    for (_, _, values) in tensors {
        for v in values {
            out.write_all(&v.to_le_bytes()).map_err(io)?;
        }
    }
    out.flush().map_err(io)?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}

/// Exports `backbone` (built from `config`) with torchvision key names.
pub fn save_backbone(backbone: &ResNet, config: &ResNetConfig, path: &Path) -> Result<()> {
    let mut c = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    backbone.visit(&mut c);
    let renamed: Vec<_> = c
        .out
        .into_iter()
        .map(|(p, s, v)| (torchvision_name(&p, config.blocks), s, v))
        .collect();
    write_safetensors(path, &renamed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn names_follow_torchvision_and_the_file_parses() {
        let cfg = ResNetConfig::new(crate::model::Backbone::Resnet18, 4).unwrap();
        let model = cfg.init(&Device::flex());
        let path =
            std::env::temp_dir().join(format!("adainf-st-{}.safetensors", std::process::id()));
        save_backbone(&model, &cfg, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let keys: Vec<&String> = header.as_object().unwrap().keys().collect();
        for k in [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "layer1.1.conv2.weight",
            "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.running_var",
            "layer4.1.bn2.bias",
        ] {
            assert!(keys.iter().any(|x| *x == k), "{k} missing from {keys:?}");
        }
        // torchvision's resnet18 state dict has 122 keys: minus fc (2) and the 20 batch norms'
        // num_batches_tracked = 100 (stem 1 + 4, blocks 8 × 10, downsamples 3 × 5).
        assert_eq!(keys.len() - 1, 100);
        assert_eq!(
            header["layer2.0.conv1.weight"]["shape"],
            serde_json::json!([8, 4, 3, 3])
        );
        let end = header
            .as_object()
            .unwrap()
            .values()
            .filter_map(|v| v["data_offsets"][1].as_u64())
            .max()
            .unwrap() as usize;
        assert_eq!(bytes.len(), 8 + n + end);
        std::fs::remove_file(path).unwrap();
    }
}
