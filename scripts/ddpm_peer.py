#!/usr/bin/env python3
"""PyTorch peer of adainf's DDPM generator (crates/adainf-core/src/generator/diffusion/).

The same UNet (Ho et al. 2020, the CIFAR-10 model at channels 128: 35,746,307 parameters) with
the same module names and registration order as the Rust code, so a state dict maps one to one:

  temb.dense.{0,1}.{weight,bias}        time-embedding MLP (Linear weights [out, in])
  conv_in.{weight,bias}
  down.<level>.block.<j>.{norm1,conv1,temb_proj,norm2,conv2,nin_shortcut}.*
  down.<level>.attn.<j>.{norm,q,k,v,proj_out}.*      (levels whose resolution has attention)
  down.<level>.resample.*               stride-2 conv after padding right/bottom by one
  mid.{block_1,attn_1,block_2} are named mid_block_1, mid_attn_1, mid_block_2
  up.<k>.block.<j>.*, up.<k>.attn.<j>.*, up.<k>.resample.*   k = 0 is the LOWEST resolution
                                        (the order the forward pass visits them)
  norm_out.*, conv_out.*
GroupNorm weight/bias are burn's gamma/beta.

Usage:
  ddpm_peer.py count [--channels 128]           prints the parameter count
  ddpm_peer.py fixtures OUT.json                writes the test fixtures (small)
  ddpm_peer.py bench [--channels 128] [--batch 16] [--size 32] [--threads 2] [--device cpu|cuda[:N]]
                     [--steps 5] [--warmup 2] [--sample-steps 50]
                                                images/s of training and DDIM sampling, as JSON
                                                lines (`adainf bench --suite diffusion` runs it)
"""
import argparse
import copy
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def norm(ch, groups):
    return nn.GroupNorm(groups, ch, eps=1e-6)


def timestep_embedding(t, dim):
    half = dim // 2
    scale = math.log(10000.0) / (max(half, 2) - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float64) * -scale).float()
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb_ch, groups, dropout):
        super().__init__()
        self.norm1 = norm(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.temb_proj = nn.Linear(temb_ch, cout)
        self.norm2 = norm(cout, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        s = self.nin_shortcut(x) if self.nin_shortcut is not None else x
        return s + h


class AttnBlock(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.norm = norm(ch, groups)
        self.q = nn.Conv2d(ch, ch, 1)
        self.k = nn.Conv2d(ch, ch, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        hn = self.norm(x)
        q = self.q(hn).reshape(b, c, h * w).permute(0, 2, 1)
        k = self.k(hn).reshape(b, c, h * w)
        v = self.v(hn).reshape(b, c, h * w)
        wts = torch.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)
        out = torch.bmm(v, wts.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Level(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()
        self.resample = None


class UNet(nn.Module):
    def __init__(self, channels=128, channel_mult=(1, 2, 2, 2), res_blocks=2,
                 attention_at=(16,), dropout=0.1, image_size=32, image_channels=3):
        super().__init__()
        ch = channels
        groups = min(ch, 32)
        temb_ch = 4 * ch
        res = [image_size >> i for i in range(len(channel_mult))]
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, temb_ch), nn.Linear(temb_ch, temb_ch)])
        self.conv_in = nn.Conv2d(image_channels, ch, 3, 1, 1)
        self.down = nn.ModuleList()
        block_in = ch
        skips = [ch]
        last = len(channel_mult) - 1
        for i, m in enumerate(channel_mult):
            lv = Level()
            for _ in range(res_blocks):
                lv.block.append(ResBlock(block_in, ch * m, temb_ch, groups, dropout))
                block_in = ch * m
                skips.append(block_in)
                if res[i] in attention_at:
                    lv.attn.append(AttnBlock(block_in, groups))
            if i != last:
                lv.resample = nn.Conv2d(block_in, block_in, 3, 2, 0)
                skips.append(block_in)
            self.down.append(lv)
        self.mid_block_1 = ResBlock(block_in, block_in, temb_ch, groups, dropout)
        self.mid_attn_1 = AttnBlock(block_in, groups)
        self.mid_block_2 = ResBlock(block_in, block_in, temb_ch, groups, dropout)
        self.up = nn.ModuleList()
        for i in reversed(range(len(channel_mult))):
            lv = Level()
            for _ in range(res_blocks + 1):
                skip = skips.pop()
                lv.block.append(ResBlock(block_in + skip, ch * channel_mult[i], temb_ch, groups, dropout))
                block_in = ch * channel_mult[i]
                if res[i] in attention_at:
                    lv.attn.append(AttnBlock(block_in, groups))
            if i != 0:
                lv.resample = nn.Conv2d(block_in, block_in, 3, 1, 1)
            self.up.append(lv)
        self.norm_out = norm(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, image_channels, 3, 1, 1)
        self.ch = ch

    def time_embedding(self, t):
        e = timestep_embedding(t, self.ch)
        return self.temb.dense[1](F.silu(self.temb.dense[0](e)))

    def forward(self, x, t):
        temb = self.time_embedding(t)
        hs = [self.conv_in(x)]
        for lv in self.down:
            for j, blk in enumerate(lv.block):
                h = blk(hs[-1], temb)
                if len(lv.attn) > 0:
                    h = lv.attn[j](h)
                hs.append(h)
            if lv.resample is not None:
                hs.append(lv.resample(F.pad(hs[-1], (0, 1, 0, 1))))
        h = hs[-1]
        h = self.mid_block_2(self.mid_attn_1(self.mid_block_1(h, temb)), temb)
        for lv in self.up:
            for j, blk in enumerate(lv.block):
                h = blk(torch.cat([h, hs.pop()], dim=1), temb)
                if len(lv.attn) > 0:
                    h = lv.attn[j](h)
            if lv.resample is not None:
                h = lv.resample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


# ---- schedule and samplers (float64 schedule, as the Rust side) ----

def schedule(timesteps):
    betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
    abar = torch.cumprod(1.0 - betas, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    post_var = betas * (1.0 - prev) / (1.0 - abar)
    return betas, abar, post_var


def q_sample(x0, noise, ab):
    ab = torch.as_tensor(ab, dtype=torch.float64).reshape(-1, 1, 1, 1)
    return (x0.double() * ab.sqrt() + noise.double() * (1 - ab).sqrt()).float()


def ddpm_step(x, eps, ab, ab_prev, noise):
    x, eps, noise = x.double(), eps.double(), noise.double()
    beta = 1 - ab / ab_prev
    x0 = ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)
    mean = beta * math.sqrt(ab_prev) / (1 - ab) * x0 + (1 - ab_prev) * math.sqrt(1 - beta) / (1 - ab) * x
    var = beta * (1 - ab_prev) / (1 - ab)
    return (mean + (math.sqrt(var) * noise if ab_prev < 1 else 0)).float()


def ddim_step(x, eps, ab, ab_prev, eta, noise):
    x, eps, noise = x.double(), eps.double(), noise.double()
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(max(1 - ab / ab_prev, 0))
    out = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma ** 2, 0)) * eps + sigma * noise
    return out.float()


def flat(t):
    return [round(float(v), 7) for v in t.detach().reshape(-1).tolist()]


def fixtures(path):
    g = torch.Generator().manual_seed(23)
    T = 1000
    betas, abar, post = schedule(T)
    picks = [0, 1, 2, 10, 99, 500, 998, 999]
    shape = [2, 3, 4, 4]
    n = lambda: torch.randn(shape, generator=g)
    x0, noise = n().clamp(-1, 1), n()
    tq = [37, 812]
    out = {
        "timesteps": T,
        "schedule": {"t": picks, "alpha_bar": [float(abar[t]) for t in picks],
                     "posterior_variance": [float(post[t]) for t in picks]},
        "shape": shape,
        "q_sample": {"x0": flat(x0), "noise": flat(noise), "t": tq,
                     "x_t": flat(q_sample(x0, noise, [abar[t] for t in tq]))},
    }
    x_t, eps, z = n(), n(), n()
    steps = []
    # (t, t_prev) pairs: a full-schedule step, a respaced step (50 of 1000), the last step.
    for t, tp in [(500, 499), (980, 960), (300, 100), (40, 0), (0, None)]:
        ab = float(abar[t])
        abp = 1.0 if tp is None else float(abar[tp])
        steps.append({"t": t, "t_prev": tp,
                      "ddpm": flat(ddpm_step(x_t, eps, ab, abp, z)),
                      "ddim_eta0": flat(ddim_step(x_t, eps, ab, abp, 0.0, z)),
                      "ddim_eta1": flat(ddim_step(x_t, eps, ab, abp, 1.0, z))})
    out["steps"] = {"x_t": flat(x_t), "eps": flat(eps), "noise": flat(z), "cases": steps}
    et = torch.tensor([0.0, 1.0, 17.0, 999.0])
    out["time_embedding"] = {"t": et.tolist(), "dim": 16, "values": flat(timestep_embedding(et, 16))}
    out["param_count"] = {"channels": 128, "count": sum(p.numel() for p in UNet(128).parameters()),
                          "channels_32": sum(p.numel() for p in UNet(32).parameters())}
    # A full forward at tiny width with torch's weights: channels 4, mult [1, 2], attention at 4,
    # 8x8 images.
    torch.manual_seed(5)
    cfg = dict(channels=4, channel_mult=(1, 2), res_blocks=1, attention_at=(4,), dropout=0.0,
               image_size=8, image_channels=3)
    net = UNet(**cfg).eval()
    xin = torch.randn([2, 3, 8, 8], generator=g)
    tin = torch.tensor([3.0, 640.0])
    with torch.no_grad():
        yout = net(xin, tin)
    out["forward"] = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                      "weights": {k: {"shape": list(v.shape), "values": flat(v)}
                                  for k, v in net.state_dict().items()},
                      "x": flat(xin), "t": tin.tolist(), "y": flat(yout)}
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


def bench(channels, batch, size, threads, device, steps, warmup, sample_steps):
    """Training and sampling images/s of the UNet, the same work as `adainf bench --suite
    diffusion` (src/bench/diffusion.rs says what each side does): a training step is the
    epsilon-prediction loss on a fixed synthetic batch in [-1, 1] (timesteps and noise drawn
    each step), backward, AdamW (lr 2e-4, no weight decay) and the EMA update (decay 0.9999) of
    every parameter; sampling is `sample_steps` DDIM steps (eta 0) of `batch` images with the
    EMA weights. Prints one JSON line per measurement."""
    torch.set_num_threads(threads)
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    # Plain float32 on a GPU, as adainf's f32: no TF32 in convolutions or matrix products.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    torch.manual_seed(0)
    net = UNet(channels, image_size=size).to(dev)
    ema = copy.deepcopy(net).eval()
    params, ema_params = list(net.parameters()), list(ema.parameters())
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)
    T = 1000
    _, abar, _ = schedule(T)
    x0 = torch.rand(batch, 3, size, size, device=dev) * 2 - 1

    def step():
        t = torch.randint(0, T, (batch,))
        noise = torch.randn_like(x0)
        xt = q_sample(x0, noise, abar[t].to(dev))
        loss = F.mse_loss(net(xt, t.float().to(dev)), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1.0 - 0.9999)
        return loss

    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()  # one read at the end waits for the queued work, as adainf does
    sync()
    seconds = time.perf_counter() - t0
    common = {"impl": "pytorch", "torch": torch.__version__, "device": str(dev), "channels": channels,
              "params": sum(p.numel() for p in params), "batch": batch, "size": size, "threads": threads}
    print(json.dumps({"bench": "diffusion_train_step", **common, "images_per_s": batch * steps / seconds,
                      "seconds": seconds, "iterations": steps}), flush=True)

    # DDIM with the EMA weights: the timesteps T*i/steps for i = steps-1 ... 0, as the Rust
    # `Schedule::sampling_steps`; noise is drawn every step, as adainf's sampler does.
    ts = [i * T // sample_steps for i in reversed(range(sample_steps))]

    def sample(ts):
        x = torch.randn(batch, 3, size, size, device=dev)
        for i, t in enumerate(ts):
            ab = float(abar[t])
            ab_prev = float(abar[ts[i + 1]]) if i + 1 < len(ts) else 1.0
            eps = ema(x, torch.full((batch,), float(t), device=dev))
            x = ddim_step(x, eps, ab, ab_prev, 0.0, torch.randn_like(x))
        return x.clamp(-1, 1)

    with torch.no_grad():
        sample(ts[:1])  # warm-up: one forward
        sync()
        t0 = time.perf_counter()
        sample(ts).sum().item()
        sync()
        seconds = time.perf_counter() - t0
    print(json.dumps({"bench": "diffusion_sample", **common, "sampler": "ddim", "sample_steps": sample_steps,
                      "eta": 0.0, "images_per_s": batch / seconds, "seconds": seconds, "iterations": 1}),
          flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["count", "fixtures", "bench"])
    p.add_argument("out", nargs="?")
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5, help="timed training steps")
    p.add_argument("--warmup", type=int, default=2, help="training steps before the timed ones")
    p.add_argument("--sample-steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    a = p.parse_args()
    if a.cmd == "count":
        print(sum(p.numel() for p in UNet(a.channels).parameters()))
    elif a.cmd == "fixtures":
        if not a.out:
            sys.exit("fixtures needs an output path")
        fixtures(a.out)
    else:
        bench(a.channels, a.batch, a.size, a.threads, a.device, a.steps, a.warmup, a.sample_steps)


if __name__ == "__main__":
    main()
