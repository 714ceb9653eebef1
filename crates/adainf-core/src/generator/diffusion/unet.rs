//! The denoising UNet of Ho et al. 2020 (DDPM) for small square images, laid out like the
//! PyTorch peer `scripts/ddpm_peer.py` (same modules, same parameter names and order, so a
//! torch state dict loads by name with `load_named`): a sinusoidal time embedding through a
//! two-layer MLP (4 × `channels`), GroupNorm residual blocks that add the projected embedding,
//! self-attention at the resolutions in `attention_at`, strided-conv downsampling (padded right
//! and bottom by one) and nearest-neighbour ×2 upsampling followed by a 3×3 conv, skip
//! connections by concatenation. `channels` 128, `channel_mult` [1, 2, 2, 2], 2 residual
//! blocks per level and attention at 16 is the paper's CIFAR-10 model (35,746,307 parameters).

use burn::module::{Module, ModuleMapper, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, GroupNorm, GroupNormConfig, Linear, LinearConfig};
use burn::nn::{PaddingConfig2d, PaddingConfig2d::Explicit};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// GroupNorm's epsilon in the reference implementations.
const NORM_EPS: f64 = 1e-6;

/// Shape of the UNet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Channels of the first level (128 = the paper's CIFAR-10 model).
    pub channels: usize,
    /// Channel multiplier of each level; one level per entry ([1, 2, 2, 2] for 32×32).
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level on the way down (the way up has one more).
    pub res_blocks: usize,
    /// Resolutions (side lengths) at which the blocks are followed by self-attention.
    pub attention_at: Vec<usize>,
    /// Dropout inside the residual blocks (active only on an autodiff device).
    pub dropout: f64,
    /// Side length of the (square) images.
    pub image_size: usize,
    /// Channels of the images (3 for RGB).
    pub image_channels: usize,
}

impl UNetConfig {
    /// The paper's CIFAR-10 model at `channels` in the first level, for `image_size` images.
    pub fn standard(channels: usize, image_size: usize) -> Self {
        UNetConfig {
            channels,
            channel_mult: vec![1, 2, 2, 2],
            res_blocks: 2,
            attention_at: vec![16],
            dropout: 0.1,
            image_size,
            image_channels: 3,
        }
    }

    /// GroupNorm groups: 32 as in the paper, or `channels` when it is below 32 (every
    /// normalised tensor has a multiple of `channels` channels, so this always divides).
    pub fn groups(&self) -> usize {
        self.channels.min(32)
    }

    /// Side lengths of the levels, from the input's down.
    pub fn resolutions(&self) -> Vec<usize> {
        (0..self.channel_mult.len())
            .map(|i| self.image_size >> i)
            .collect()
    }

    /// Checks that the network can be built and takes `image_size` images; errors name the
    /// option to change.
    pub fn check(&self) -> Result<()> {
        self.check_layers()?;
        self.check_images()
    }

    /// The checks of the layers alone (channels, multipliers, blocks, dropout), which need
    /// no image size.
    pub fn check_layers(&self) -> Result<()> {
        let c = self.channels;
        if !(2..=1024).contains(&c) || !c.is_multiple_of(2) {
            return Err(Error::config(
                "channels",
                format!("must be an even number between 2 and 1024, got {c}"),
            ));
        }
        if c > 32 && !c.is_multiple_of(32) {
            return Err(Error::config(
                "channels",
                format!(
                    "above 32 it must be a multiple of 32 (GroupNorm uses 32 groups), got {c}; \
                     try {}",
                    c / 32 * 32
                ),
            ));
        }
        if self.channel_mult.is_empty() || self.channel_mult.iter().any(|&m| m == 0 || m > 16) {
            return Err(Error::config(
                "channel_mult",
                format!(
                    "must be a non-empty list of multipliers between 1 and 16, got {:?}",
                    self.channel_mult
                ),
            ));
        }
        if self.res_blocks == 0 {
            return Err(Error::config("res_blocks", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        Ok(())
    }

    /// The checks against the image size and channels (`attention_at` names resolutions).
    fn check_images(&self) -> Result<()> {
        if self.image_channels == 0 {
            return Err(Error::config("data", "images have no channels"));
        }
        let levels = self.channel_mult.len();
        let factor = 1usize << (levels - 1);
        if self.image_size == 0 || !self.image_size.is_multiple_of(factor) {
            return Err(Error::config(
                "data",
                format!(
                    "the UNet with {levels} levels (channel_mult {:?}) halves the images {} \
                     times, so their side must be a multiple of {factor}; got {}×{} images \
                     (resize them, or use a shorter channel_mult)",
                    self.channel_mult,
                    levels - 1,
                    self.image_size,
                    self.image_size
                ),
            ));
        }
        let res = self.resolutions();
        if let Some(bad) = self.attention_at.iter().find(|r| !res.contains(r)) {
            return Err(Error::config(
                "attention_at",
                format!("{bad} is not one of this UNet's resolutions {res:?}"),
            ));
        }
        Ok(())
    }

    /// Builds the network on `device` (burn's default initialisers, as torch's defaults).
    pub fn init(&self, device: &Device) -> Result<UNet> {
        self.check()?;
        let ch = self.channels;
        let groups = self.groups();
        let temb_ch = 4 * ch;
        let res = self.resolutions();
        let mut down = Vec::new();
        let mut block_in = ch;
        let mut skips = vec![ch];
        let last = self.channel_mult.len() - 1;
        for (i, &m) in self.channel_mult.iter().enumerate() {
            let block_out = ch * m;
            let mut blocks = Vec::new();
            let mut attn = Vec::new();
            for _ in 0..self.res_blocks {
                blocks.push(ResBlock::new(
                    block_in,
                    block_out,
                    temb_ch,
                    groups,
                    self.dropout,
                    device,
                ));
                block_in = block_out;
                skips.push(block_in);
                if self.attention_at.contains(&res[i]) {
                    attn.push(AttnBlock::new(block_in, groups, device));
                }
            }
            let resample = (i != last).then(|| {
                skips.push(block_in);
                conv(block_in, block_in, 3, 2, Explicit(0, 0, 1, 1), device)
            });
            down.push(Level {
                block: blocks,
                attn,
                resample,
            });
        }
        let mid_block_1 = ResBlock::new(block_in, block_in, temb_ch, groups, self.dropout, device);
        let mid_attn_1 = AttnBlock::new(block_in, groups, device);
        let mid_block_2 = ResBlock::new(block_in, block_in, temb_ch, groups, self.dropout, device);
        let mut up = Vec::new();
        for (i, &m) in self.channel_mult.iter().enumerate().rev() {
            let block_out = ch * m;
            let mut blocks = Vec::new();
            let mut attn = Vec::new();
            for _ in 0..=self.res_blocks {
                let skip = skips.pop().expect("one skip per down block");
                blocks.push(ResBlock::new(
                    block_in + skip,
                    block_out,
                    temb_ch,
                    groups,
                    self.dropout,
                    device,
                ));
                block_in = block_out;
                if self.attention_at.contains(&res[i]) {
                    attn.push(AttnBlock::new(block_in, groups, device));
                }
            }
            let resample =
                (i != 0).then(|| conv(block_in, block_in, 3, 1, Explicit(1, 1, 1, 1), device));
            up.push(Level {
                block: blocks,
                attn,
                resample,
            });
        }
        Ok(UNet {
            temb_dense_0: LinearConfig::new(ch, temb_ch).init(device),
            temb_dense_1: LinearConfig::new(temb_ch, temb_ch).init(device),
            conv_in: conv(self.image_channels, ch, 3, 1, Explicit(1, 1, 1, 1), device),
            down,
            mid_block_1,
            mid_attn_1,
            mid_block_2,
            up,
            norm_out: norm(groups, block_in, device),
            conv_out: conv(
                block_in,
                self.image_channels,
                3,
                1,
                Explicit(1, 1, 1, 1),
                device,
            ),
        })
    }
}

fn conv(
    in_ch: usize,
    out_ch: usize,
    kernel: usize,
    stride: usize,
    padding: PaddingConfig2d,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([in_ch, out_ch], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(padding)
        .init(device)
}

fn norm(groups: usize, channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups, channels)
        .with_epsilon(NORM_EPS)
        .init(device)
}

/// The sinusoidal embedding of timesteps `t` [B] in `dim` channels (sines then cosines,
/// frequencies 10000^(-k / (dim/2 − 1))), as in the reference code.
pub fn timestep_embedding(t: Tensor<1>, dim: usize) -> Tensor<2> {
    let half = dim / 2;
    let device = t.device();
    let scale = (10000f64).ln() / (half.max(2) - 1) as f64;
    let freqs: Vec<f32> = (0..half)
        .map(|k| (-(k as f64) * scale).exp() as f32)
        .collect();
    let freqs: Tensor<2> = Tensor::from_data(TensorData::new(freqs, [1, half]), &device);
    let [b] = t.dims();
    let args = t.reshape([b, 1]).expand([b, half]) * freqs.expand([b, half]);
    Tensor::cat(vec![args.clone().sin(), args.cos()], 1)
}

/// GroupNorm residual block with the time embedding added after the first convolution.
#[derive(Module, Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    temb_proj: Linear,
    norm2: GroupNorm,
    dropout: Dropout,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
}

impl ResBlock {
    fn new(
        in_ch: usize,
        out_ch: usize,
        temb_ch: usize,
        groups: usize,
        dropout: f64,
        device: &Device,
    ) -> Self {
        ResBlock {
            norm1: norm(groups, in_ch, device),
            conv1: conv(in_ch, out_ch, 3, 1, Explicit(1, 1, 1, 1), device),
            temb_proj: LinearConfig::new(temb_ch, out_ch).init(device),
            norm2: norm(groups, out_ch, device),
            dropout: DropoutConfig::new(dropout).init(),
            conv2: conv(out_ch, out_ch, 3, 1, Explicit(1, 1, 1, 1), device),
            nin_shortcut: (in_ch != out_ch)
                .then(|| conv(in_ch, out_ch, 1, 1, Explicit(0, 0, 0, 0), device)),
        }
    }

    fn forward(&self, x: Tensor<4>, temb: &Tensor<2>) -> Tensor<4> {
        let h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        let [b, c, hh, ww] = h.dims();
        let t = self
            .temb_proj
            .forward(silu(temb.clone()))
            .reshape([b, c, 1, 1])
            .expand([b, c, hh, ww]);
        let h = h + t;
        let h = self
            .conv2
            .forward(self.dropout.forward(silu(self.norm2.forward(h))));
        let shortcut = match &self.nin_shortcut {
            Some(s) => s.forward(x),
            None => x,
        };
        shortcut + h
    }
}

/// Single-head self-attention over the pixels, with a residual connection.
#[derive(Module, Debug)]
pub struct AttnBlock {
    norm: GroupNorm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
}

impl AttnBlock {
    fn new(ch: usize, groups: usize, device: &Device) -> Self {
        let c = || conv(ch, ch, 1, 1, Explicit(0, 0, 0, 0), device);
        AttnBlock {
            norm: norm(groups, ch, device),
            q: c(),
            k: c(),
            v: c(),
            proj_out: c(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let hn = self.norm.forward(x.clone());
        let q = self
            .q
            .forward(hn.clone())
            .reshape([b, c, n])
            .swap_dims(1, 2);
        let k = self.k.forward(hn.clone()).reshape([b, c, n]);
        let v = self.v.forward(hn).reshape([b, c, n]);
        let weights = softmax(q.matmul(k) * (c as f64).powf(-0.5), 2);
        let out = v.matmul(weights.swap_dims(1, 2)).reshape([b, c, h, w]);
        x + self.proj_out.forward(out)
    }
}

/// One level of the UNet: its residual blocks, their attention blocks (none, or one per
/// block), and the resampling conv (stride 2 down, after a ×2 nearest upsample up).
#[derive(Module, Debug)]
pub struct Level {
    block: Vec<ResBlock>,
    attn: Vec<AttnBlock>,
    resample: Option<Conv2d>,
}

/// The DDPM UNet: ε-prediction from a noisy image and its timestep.
#[derive(Module, Debug)]
pub struct UNet {
    temb_dense_0: Linear,
    temb_dense_1: Linear,
    conv_in: Conv2d,
    down: Vec<Level>,
    mid_block_1: ResBlock,
    mid_attn_1: AttnBlock,
    mid_block_2: ResBlock,
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// Nearest-neighbour ×2 upsampling.
fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}

impl UNet {
    /// The time embedding's width (= `channels`).
    pub fn channels(&self) -> usize {
        self.temb_dense_0.weight.dims()[0]
    }

    /// The MLP-projected time embedding [B, 4·channels] of timesteps `t` [B].
    pub fn time_embedding(&self, t: Tensor<1>) -> Tensor<2> {
        let e = timestep_embedding(t, self.channels());
        self.temb_dense_1
            .forward(silu(self.temb_dense_0.forward(e)))
    }

    /// Predicted noise [B, C, H, W] for noisy images `x` [B, C, H, W] (in [-1, 1] scale) at
    /// timesteps `t` [B] (as floats).
    pub fn forward(&self, x: Tensor<4>, t: Tensor<1>) -> Tensor<4> {
        let temb = self.time_embedding(t);
        let mut hs = vec![self.conv_in.forward(x)];
        for level in &self.down {
            for (j, block) in level.block.iter().enumerate() {
                let mut h = block.forward(hs[hs.len() - 1].clone(), &temb);
                if let Some(a) = level.attn.get(j) {
                    h = a.forward(h);
                }
                hs.push(h);
            }
            if let Some(c) = &level.resample {
                hs.push(c.forward(hs[hs.len() - 1].clone()));
            }
        }
        let mut h = hs[hs.len() - 1].clone();
        h = self.mid_block_1.forward(h, &temb);
        h = self.mid_attn_1.forward(h);
        h = self.mid_block_2.forward(h, &temb);
        for level in &self.up {
            for (j, block) in level.block.iter().enumerate() {
                let skip = hs.pop().expect("one skip per up block");
                h = block.forward(Tensor::cat(vec![h, skip], 1), &temb);
                if let Some(a) = level.attn.get(j) {
                    h = a.forward(h);
                }
            }
            if let Some(c) = &level.resample {
                h = c.forward(upsample2(h));
            }
        }
        self.conv_out.forward(silu(self.norm_out.forward(h)))
    }

    /// Replaces every parameter by the tensor of the same name in `named` (torch state-dict
    /// names: `down.0.block.1.conv1.weight`; GroupNorm's gamma/beta are `weight`/`bias`,
    /// linear weights are stored [out, in] as in torch). Every parameter must be found with
    /// the right number of values.
    pub fn load_named(
        self,
        named: &std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
    ) -> Result<UNet> {
        struct Loader<'a> {
            path: Vec<String>,
            named: &'a std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
            errors: Vec<String>,
            used: usize,
        }
        impl ModuleMapper for Loader<'_> {
            fn enter_module(&mut self, name: &str, _container: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _name: &str, _container: &str) {
                self.path.pop();
            }
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                // The parameter's own field name is the last entered module name.
                let mut parts: Vec<String> = self.path.clone();
                if let Some(last) = parts.last_mut() {
                    *last = match last.as_str() {
                        "gamma" => "weight".into(),
                        "beta" => "bias".into(),
                        other => other.into(),
                    };
                }
                let name = parts.join(".").replace("temb_dense_", "temb.dense.");
                let Some((shape, values)) = self.named.get(&name) else {
                    self.errors.push(format!("no tensor named {name}"));
                    return param;
                };
                let errors = &mut self.errors;
                let used = &mut self.used;
                param.map(|value| {
                    let dims = value.dims();
                    let device = value.device();
                    let torch_linear = D == 2 && shape.len() == 2;
                    let want: Vec<usize> = if torch_linear {
                        vec![dims[1], dims[0]]
                    } else {
                        dims.to_vec()
                    };
                    if *shape != want {
                        errors.push(format!("{name}: shape {shape:?}, expected {want:?}"));
                        return value;
                    }
                    *used += 1;
                    let t: Tensor<D> =
                        Tensor::from_data(TensorData::new(values.clone(), want), &device);
                    if torch_linear { t.swap_dims(0, 1) } else { t }
                })
            }
        }
        let mut loader = Loader {
            path: Vec::new(),
            named,
            errors: Vec::new(),
            used: 0,
        };
        let model = self.map(&mut loader);
        if loader.used != named.len() && loader.errors.is_empty() {
            loader.errors.push(format!(
                "{} tensors given, {} parameters loaded",
                named.len(),
                loader.used
            ));
        }
        if !loader.errors.is_empty() {
            return Err(Error::Data(format!(
                "loading UNet weights: {}",
                loader.errors.join("; ")
            )));
        }
        Ok(model)
    }
}
