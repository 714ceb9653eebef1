//! ResNet with the CIFAR stem of the official code (torchvision `resnet18` with
//! `conv1 = Conv2d(3, w, 3, stride 1, padding 2, bias=False)` and no max-pool), BasicBlocks,
//! stages of widths w, 2w, 4w, 8w with strides 1, 2, 2, 2, global average pooling.
//! `width = 64` and blocks `[2, 2, 2, 2]` is the standard ResNet-18 (512-d features).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The backbone architectures (serialised by these names in configs and run ids).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Backbone {
    /// The paper's ResNet-18: two BasicBlocks per stage.
    #[default]
    Resnet18,
    /// One BasicBlock per stage: a CPU-sized variant, not in the paper.
    Resnet10,
}

crate::closed_set!(Backbone, "backbone");

impl Backbone {
    /// BasicBlocks per stage.
    pub fn blocks(self) -> [usize; 4] {
        match self {
            Backbone::Resnet18 => [2, 2, 2, 2],
            Backbone::Resnet10 => [1, 1, 1, 1],
        }
    }
}

/// Shape of a CIFAR ResNet: first-stage width and BasicBlocks per stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Channels of the first stage (64 = standard).
    pub width: usize,
    /// BasicBlocks per stage ([2, 2, 2, 2] = ResNet-18).
    pub blocks: [usize; 4],
}

impl ResNetConfig {
    /// The ResNet of `backbone` at `width` channels in its first stage.
    pub fn new(backbone: Backbone, width: usize) -> Result<Self> {
        let blocks = backbone.blocks();
        if width == 0 || width > 1024 {
            return Err(Error::config(
                "width",
                format!("must be between 1 and 1024, got {width}"),
            ));
        }
        Ok(ResNetConfig { width, blocks })
    }

    /// Length of the output feature vector: 8 × `width`.
    pub fn feature_dim(&self) -> usize {
        8 * self.width
    }

    /// Builds the network on `device` with torchvision's initialisation.
    pub fn init(&self, device: &Device) -> ResNet {
        let w = self.width;
        let stem = conv(3, w, 3, 1, 2, device);
        let mut stages = Vec::new();
        let mut in_ch = w;
        for (s, &n) in self.blocks.iter().enumerate() {
            let out_ch = w << s;
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                stages.push(BasicBlock::new(in_ch, out_ch, stride, device));
                in_ch = out_ch;
            }
        }
        ResNet {
            stem,
            stem_bn: BatchNormConfig::new(w).init(device),
            blocks: stages,
        }
    }
}

/// torchvision's ResNet init: Kaiming normal, fan-out, ReLU gain; no conv bias.
fn conv(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(Initializer::KaimingNormal {
            gain: 2f64.sqrt(),
            fan_out_only: true,
        })
        .init(device)
}

/// `conv` computed in `dtype` (input and weight cast to it, the output cast back to f32), or
/// as stored when `dtype` is f32. The casts are differentiable, so f32 weights get f32
/// gradients (mixed precision with f32 master weights); batch norm, the losses and the
/// optimiser stay in f32.
fn conv_in(conv: &Conv2d, x: Tensor<4>, dtype: FloatDType) -> Tensor<4> {
    if dtype == FloatDType::F32 {
        return conv.forward(x);
    }
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
        unreachable!("every convolution of this ResNet has explicit padding")
    };
    let options = ConvOptions::new_with_padding(
        conv.stride,
        [(top, bottom), (left, right)],
        conv.dilation,
        conv.groups,
    );
    conv2d(x.cast(dtype), conv.weight.val().cast(dtype), None, options).cast(FloatDType::F32)
}

/// Shortcut projection of a BasicBlock: 1×1 convolution (with the block's stride) + batch norm.
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

/// Residual block: conv–BN–ReLU, conv–BN, plus the (projected) input, then ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Downsample>,
}

impl BasicBlock {
    fn new(in_ch: usize, out_ch: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || in_ch != out_ch).then(|| Downsample {
            conv: conv(in_ch, out_ch, 1, stride, 0, device),
            bn: BatchNormConfig::new(out_ch).init(device),
        });
        BasicBlock {
            conv1: conv(in_ch, out_ch, 3, stride, 1, device),
            bn1: BatchNormConfig::new(out_ch).init(device),
            conv2: conv(out_ch, out_ch, 3, 1, 1, device),
            bn2: BatchNormConfig::new(out_ch).init(device),
            downsample,
        }
    }

    fn forward(&self, x: Tensor<4>, dtype: FloatDType) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(conv_in(&d.conv, x.clone(), dtype)),
            None => x.clone(),
        };
        let out = relu(self.bn1.forward(conv_in(&self.conv1, x, dtype)));
        let out = self.bn2.forward(conv_in(&self.conv2, out, dtype));
        relu(out + identity)
    }
}

/// The CIFAR ResNet backbone: stem, BasicBlocks, global average pooling.
#[derive(Module, Debug)]
pub struct ResNet {
    stem: Conv2d,
    stem_bn: BatchNorm,
    blocks: Vec<BasicBlock>,
}

impl ResNet {
    /// [B, 3, H, W] normalised images → [B, 8·width] features.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_in(x, FloatDType::F32)
    }

    /// `forward` with the convolutions computed in `dtype` (see `conv_in`).
    pub fn forward_in(&self, x: Tensor<4>, dtype: FloatDType) -> Tensor<2> {
        let mut x = relu(self.stem_bn.forward(conv_in(&self.stem, x, dtype)));
        for block in &self.blocks {
            x = block.forward(x, dtype);
        }
        let [b, c, h, w] = x.dims();
        x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The official CIFAR stem pads by 2, so a 32×32 image gives 34×34 maps, then 17, 9 and 5
    /// after the stride-2 stages (padding 1 would give 32, 16, 8, 4).
    #[test]
    fn spatial_sizes_follow_the_padding_2_stem() {
        let device = Device::flex();
        let model = ResNetConfig::new(Backbone::Resnet18, 4)
            .unwrap()
            .init(&device);
        let x: Tensor<4> = Tensor::zeros([1, 3, 32, 32], &device);
        let mut x = relu(model.stem_bn.forward(model.stem.forward(x)));
        let mut sizes = vec![x.dims()[2..].to_vec()];
        for (i, block) in model.blocks.iter().enumerate() {
            x = block.forward(x, FloatDType::F32);
            if i % 2 == 1 {
                sizes.push(x.dims()[2..].to_vec());
            }
        }
        assert_eq!(
            sizes,
            vec![
                vec![34, 34],
                vec![34, 34],
                vec![17, 17],
                vec![9, 9],
                vec![5, 5]
            ]
        );
        assert_eq!(x.dims()[1], 32, "8 × width channels at the end");
    }

    #[test]
    fn resnet18_shapes_and_parameter_count() {
        let device = Device::flex();
        let cfg = ResNetConfig::new(Backbone::Resnet18, 64).unwrap();
        let model = cfg.init(&device);
        // torchvision resnet18 without fc has 11,176,512 parameters; the CIFAR stem's conv1 is
        // 3×3 instead of 7×7, i.e. 64·3·(49 − 9) fewer. burn's count also includes the batch
        // norms' running mean and variance: 2 × 4,800 channels.
        assert_eq!(model.num_params(), 11_176_512 - 64 * 3 * 40 + 2 * 4_800);
        let small = ResNetConfig::new(Backbone::Resnet18, 8)
            .unwrap()
            .init(&device);
        let x: Tensor<4> = Tensor::random([2, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(small.forward(x).dims(), [2, 64]);
        assert!(
            Backbone::parse("vgg")
                .unwrap_err()
                .to_string()
                .contains("resnet10")
        );
        assert!(ResNetConfig::new(Backbone::Resnet18, 0).is_err());
    }
}
