"""The PyTorch/torchvision peer of `adainf bench` (docs/performance.md).

Measures, on the same machine and with the same shapes as `adainf bench`:
  * the SimCLR train step: CIFAR ResNet-18 (3x3 stem, padding 2, no max-pool) at a given
    width, projector feat->2048->BN->ReLU->256, NT-Xent (tau 0.2) on two views, online linear
    probe on detached features, SGD with momentum; images/s = batch / step time (two views each);
    the views are random tensors prepared beforehand (in PyTorch augmentation runs in DataLoader
    workers, outside the step);
  * torchvision's per-image `symmetric` augmentation of the official code (RandomResizedCrop
    scale 0.08-1, ColorJitter 0.8/0.8/0.8/0.2 with p 0.8, RandomGrayscale 0.2, Gaussian blur
    p 0.5, horizontal flip, ToTensor, Normalize) on 32x32 PIL images: views/s in one process
    and through a DataLoader with 2 workers.

On a GPU (`--device cuda`) the step is timed the way a PyTorch user runs it, in one of two
modes: `eager-f32` (plain eager float32; TF32 off, as adainf's f32) and `bf16-cl` (bfloat16
autocast with channels_last model and inputs). The loss is not read back inside the timed loop;
the device is synchronised once at its end.

Usage: python pytorch_bench.py [--width 16] [--batch 128] [--steps 5] [--warmup 2]
                               [--device cpu|cuda] [--mode eager-f32|bf16-cl] [--skip-aug]
Prints JSON lines like `adainf bench`.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class CifarResNet18(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 2, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        layers, cin = [], w
        for s in range(4):
            cout = w << s
            for b in range(2):
                layers.append(Block(cin, cout, 2 if s > 0 and b == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.dim = cin

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)


def train_step_bench(width, batch, size, warmup, steps, device="cpu", mode="eager-f32"):
    torch.manual_seed(0)
    dev = torch.device(device)
    channels_last = mode == "bf16-cl"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    backbone = CifarResNet18(width).to(dev, memory_format=fmt)
    # SimCLR's projector in the official code: feat -> 2048 -> ReLU -> 256, no batch norm.
    projector = nn.Sequential(nn.Linear(backbone.dim, 2048), nn.ReLU(), nn.Linear(2048, 256)).to(dev)
    probe = nn.Linear(backbone.dim, 10).to(dev)
    params = list(backbone.parameters()) + list(projector.parameters()) + list(probe.parameters())
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    v1 = torch.rand(batch, 3, size, size, device=dev).to(memory_format=fmt)
    v2 = torch.rand(batch, 3, size, size, device=dev).to(memory_format=fmt)
    labels = torch.randint(0, 10, (batch,), device=dev)
    targets = torch.arange(2 * batch, device=dev).roll(batch)

    def nt_xent_on(z1, z2, tau=0.2):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        sim = z @ z.t() / tau
        sim.fill_diagonal_(float("-inf"))
        return F.cross_entropy(sim, targets)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=mode == "bf16-cl"):
            f1, f2 = backbone(v1), backbone(v2)
            loss = nt_xent_on(projector(f1), projector(f2))
            logits = probe(torch.cat([f1.detach(), f2.detach()]))
            loss = loss + F.cross_entropy(logits.float(), torch.cat([labels, labels]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - t
    out = {"bench": "simclr_train_step", "peer": f"pytorch {torch.__version__}", "device": str(dev),
           "mode": mode, "threads": torch.get_num_threads(), "width": width, "batch": batch, "size": size,
           "images_per_s": steps * batch / seconds, "seconds": seconds, "iterations": steps,
           "final_loss": float(loss)}
    if dev.type == "cuda":
        out["device_name"] = torch.cuda.get_device_name(dev)
    return out


class PilGaussianBlur:
    """solo-learn's blur: PIL's Gaussian filter with a radius drawn from [0.1, 2.0]."""

    def __call__(self, img):
        import random
        from PIL import ImageFilter

        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


def symmetric_transform():
    from torchvision import transforms as T

    return T.Compose([
        T.RandomResizedCrop(32, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomApply([T.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([PilGaussianBlur()], p=0.5),
        T.RandomHorizontalFlip(p=0.5),
        T.ToTensor(),
        T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ])


class Images(torch.utils.data.Dataset):
    def __init__(self, n):
        from PIL import Image
        import numpy as np

        rng = np.random.default_rng(0)
        self.images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
        self.transform = symmetric_transform()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i])


def augmentation_bench(batch, views):
    data = Images(batch)
    torch.set_num_threads(1)
    for i in range(batch):
        data[i]
    t = time.perf_counter()
    for k in range(views):
        data[k % batch]
    one = views / (time.perf_counter() - t)
    loader = torch.utils.data.DataLoader(Images(views), batch_size=batch, num_workers=2)
    t = time.perf_counter()
    count = sum(b.shape[0] for b in loader)
    two = count / (time.perf_counter() - t)
    return {"bench": "augment_symmetric", "peer": "torchvision (PIL, per image)",
            "views_per_s_one_process": one, "views_per_s_dataloader_2_workers": two, "views": views}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--aug-views", type=int, default=4096)
    p.add_argument("--skip-aug", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--mode", default="eager-f32", choices=["eager-f32", "bf16-cl"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(json.dumps(train_step_bench(a.width, a.batch, a.size, a.warmup, a.steps, a.device, a.mode)), flush=True)
    if not a.skip_aug:
        print(json.dumps(augmentation_bench(a.batch, a.aug_views)), flush=True)
