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

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

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

/// Writes `tensors` (name, shape, f32 values) in the safetensors format (the `safetensors`
/// crate lays the file out), atomically: a temporary file, then a rename.
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            TensorView::new(Dtype::F32, shape.clone(), b).map(|view| (name.as_str(), view))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::file(path, e))?;
    // One key: the crate keeps metadata in a HashMap, so two keys come out in either order
    // and the same weights would give files of different bytes.
    let metadata = [("format".to_string(), "pt".to_string())]
        .into_iter()
        .collect();
    let file = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::file(path, e))?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, file).map_err(|e| Error::file(&tmp, e))?;
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
        // The file reads back with the reference reader, every tensor F32 with its values.
        let read = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let conv1 = read.tensor("conv1.weight").unwrap();
        assert_eq!(conv1.dtype(), Dtype::F32);
        assert_eq!(conv1.shape(), [4, 3, 3, 3]);
        let mut c = Collect {
            path: Vec::new(),
            out: Vec::new(),
        };
        model.visit(&mut c);
        let stem = c.out.iter().find(|(p, _, _)| p == "stem.weight").unwrap();
        let want: Vec<u8> = stem.2.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(conv1.data(), &want[..]);
        // The same weights give the same bytes, export after export.
        for _ in 0..8 {
            save_backbone(&model, &cfg, &path).unwrap();
            assert!(
                std::fs::read(&path).unwrap() == bytes,
                "the export is not deterministic"
            );
        }
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
