#!/usr/bin/env python3
"""The travelling GPU check: runs on a GPU machine that has no Rust and no network, from the
bundle `scripts/gpu-pack.sh` makes, and writes one JSON object per line to a results file.

What it records, in order (each line has a "check" key):
  env        the machine: GPU (nvidia-smi), python, torch
  device     what `adainf devices` opens: flex, cuda, wgpu (adapter names, float types)
  losses     the same seeded SimCLR steps (full `symmetric` augmentation, data on the device) on
             flex and on each GPU
  agreement  the largest relative loss difference to flex, against the tolerance (1e-3, f32)
  bench      `adainf bench` on each GPU at the paper's shape, f32 and each reduced precision the
             device supports
  peer       the PyTorch peer (docs/peer/pytorch_bench.py) on the same GPU, same model and
             batch: eager f32, and bf16 autocast with channels_last
  diffusion  `adainf bench --suite diffusion` on each usable CUDA GPU: the DDPM generator's
             training step and 50-step DDIM sampling at the paper's UNet (channels 128, batch
             128, 32x32), its PyTorch peer (scripts/ddpm_peer.py, run by adainf with this
             Python) on the same GPU, and the ratios ours/peer; with --tiny, a tiny UNet on flex
             against torch on the CPU (or the line saying why the peer did not run)
  run        a SimCLR training run of about --run-seconds at the paper's shape on 32x32
             synthetic data, through `adainf run`: images/s and the data_wait fraction
  done       wall time of the whole check

Each step runs under a time limit; a failure is recorded (with the end of its output) and the
check goes on. `--tiny` shrinks every shape so the same path runs in seconds on a machine
without a GPU (lavapipe for wgpu, the peer on the CPU); the test suite does that.

Usage on the GPU machine (see README, "Devices"):
  python3 scripts/gpu_check.py --bundle gpu-bundle --out "$OUT/gpu-check.jsonl"
Here, from a build:
  python3 scripts/gpu_check.py --bin target/release/adainf --tiny --gpus vulkan --out /tmp/r.jsonl
"""
import argparse
import glob
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-3


class Check:
    def __init__(self, out_path, budget_s):
        self.out = open(out_path, "w", encoding="utf-8")
        self.started = time.monotonic()
        self.budget_s = budget_s
        self.env = dict(os.environ)

    def left(self):
        return self.budget_s - (time.monotonic() - self.started)

    def emit(self, record):
        record.setdefault("t", round(time.monotonic() - self.started, 1))
        line = json.dumps(record, sort_keys=False)
        self.out.write(line + "\n")
        self.out.flush()
        print(line, flush=True)

    def call(self, args, limit_s):
        """Runs a command under a time limit; returns (ok, stdout lines as JSON where they parse,
        text of the end of the output)."""
        limit = max(5.0, min(limit_s, self.left()))
        try:
            p = subprocess.run(args, capture_output=True, text=True, timeout=limit, env=self.env, cwd=ROOT)
        except subprocess.TimeoutExpired as e:
            tail = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))
            return False, [], f"timed out after {limit:.0f} s; {tail[-1500:]}"
        except OSError as e:
            return False, [], str(e)
        parsed = []
        for line in p.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    parsed.append(json.loads(line))
                except ValueError:
                    pass
        tail = (p.stdout[-800:] + "\n" + p.stderr[-1500:]).strip()
        return p.returncode == 0, parsed, tail


def unpack(bundle, work):
    """The binary from the bundle (xz-compressed, stripped), executable, in `work`."""
    packed = os.path.join(bundle, "adainf.xz")
    binary = os.path.join(work, "adainf")
    with lzma.open(packed) as src, open(binary, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.chmod(binary, 0o755)
    return binary


def vulkan_loader(check, bundle, work):
    """wgpu needs libvulkan.so.1; a machine without it gets the bundle's copy of Debian's
    libvulkan1 (unpacked into `work`, never into /). Points the loader at the NVIDIA ICD when
    the driver ships one and nothing else is set."""
    have = subprocess.run(["sh", "-c", "ldconfig -p | grep -q 'libvulkan.so.1 '"]).returncode == 0
    note = {"check": "vulkan_loader", "system": have}
    if not have and bundle:
        debs = glob.glob(os.path.join(bundle, "libvulkan1_*.deb"))
        if debs:
            root = os.path.join(work, "vulkan")
            subprocess.run(["dpkg-deb", "-x", debs[0], root], check=False)
            libs = glob.glob(os.path.join(root, "usr/lib/*/libvulkan.so.1"))
            if libs:
                lib_dir = os.path.dirname(libs[0])
                check.env["LD_LIBRARY_PATH"] = lib_dir + ":" + check.env.get("LD_LIBRARY_PATH", "")
                note["carried"] = lib_dir
    icd = "/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"
    if os.path.exists(icd) and "VK_DRIVER_FILES" not in check.env and "VK_ICD_FILENAMES" not in check.env:
        check.env["VK_DRIVER_FILES"] = icd
        note["icd"] = icd
    check.emit(note)


def environment(check):
    record = {"check": "env", "python": sys.version.split()[0], "cpus": os.cpu_count()}
    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True)
        record["gpu"] = q.stdout.strip()
    try:
        import torch  # noqa: F401

        record["torch"] = torch.__version__
        record["torch_cuda"] = torch.cuda.is_available()
    except ImportError:
        record["torch"] = None
    check.emit(record)
    return record.get("torch") is not None


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundle", help="folder made by scripts/gpu-pack.sh")
    src.add_argument("--bin", help="an adainf binary to use as is")
    a.add_argument("--out", required=True, help="results file (JSON lines)")
    a.add_argument("--gpus", default="cuda,wgpu", help="GPU devices to check (default cuda,wgpu)")
    a.add_argument("--tiny", action="store_true", help="tiny shapes, peer on the CPU (no GPU needed)")
    a.add_argument("--budget-s", type=float, default=450, help="stop starting new steps after this")
    a.add_argument("--run-seconds", type=float, default=120, help="length of the training run")
    args = a.parse_args()

    check = Check(args.out, args.budget_s)
    work = tempfile.mkdtemp(prefix="adainf-gpu-check-")
    binary = unpack(args.bundle, work) if args.bundle else os.path.abspath(args.bin)
    check.env.setdefault("CUBECL_AUTOTUNE_LEVEL", "minimal" if args.tiny else "balanced")
    vulkan_loader(check, args.bundle, work)
    have_torch = environment(check)

    # The paper's shape, or a tiny one that lavapipe runs in seconds.
    if args.tiny:
        paper = dict(width=4, batch=16, size=16, steps=2, warmup=1)
        agree = dict(width=8, batch=32, size=16)
        peer_device = "cpu"
    else:
        paper = dict(width=64, batch=512, size=32, steps=20, warmup=5)
        agree = dict(width=8, batch=128, size=32)
        peer_device = "cuda"

    # 1. Devices.
    ok, lines, tail = check.call([binary, "devices"], 120)
    opened = {}
    for line in lines:
        check.emit({"check": "device", **line})
        if line.get("ok"):
            opened[line["device"]] = line
    if not ok:
        check.emit({"check": "device", "ok": False, "error": tail})
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]

    def probe_of(gpu):
        return opened.get("cuda:0" if gpu == "cuda" else gpu) or opened.get("wgpu" if gpu == "vulkan" else gpu)

    usable = [g for g in gpus if probe_of(g)]
    for g in gpus:
        if g not in usable:
            check.emit({"check": "skip", "asked": g, "reason": "the device did not open (see its device line)"})

    # 2. Agreement: the same seeded steps on flex and on each GPU, f32. Flex keeps the data on
    #    the "device" too, so it runs the GPUs' batched augmentation rather than its fused one.
    def losses(device):
        ok, lines, tail = check.call(
            [binary, "bench", "--suite", "losses", "--device", device, "--steps", "6", "--placement", "device",
             "--width", str(agree["width"]), "--batch", str(agree["batch"]), "--size", str(agree["size"])], 240)
        for line in lines:
            check.emit({"check": "losses", "asked": device, **line})
        if not ok or not lines:
            check.emit({"check": "losses", "asked": device, "ok": False, "error": tail})
            return None
        return lines[0]["losses"]

    reference = losses("flex")
    for g in usable:
        got = losses(g)
        if reference and got:
            worst = max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(reference, got))
            check.emit({"check": "agreement", "asked": g, "against": "flex", "steps": len(got),
                        "worst_relative": worst, "tolerance": TOLERANCE, "pass": worst <= TOLERANCE})

    # 3. adainf bench at the paper's shape, f32 and the reduced precisions each GPU supports.
    best = {}
    for g in usable:
        dtypes = probe_of(g).get("dtypes", ["f32"])
        for precision in [p for p in ("f32", "bf16", "f16") if p in dtypes]:
            if precision == "f16" and "bf16" in dtypes:
                continue  # one reduced precision per device: bf16 where it exists
            ok, lines, tail = check.call(
                [binary, "bench", "--device", g, "--precision", precision,
                 "--width", str(paper["width"]), "--batch", str(paper["batch"]), "--size", str(paper["size"]),
                 "--steps", str(paper["steps"]), "--warmup", str(paper["warmup"])], 300)
            for line in lines:
                check.emit({"check": "bench", "asked": g, **line})
                if line.get("bench") == "simclr_train_step":
                    key = (g, precision)
                    best[key] = line["images_per_s"]
            if not ok:
                check.emit({"check": "bench", "asked": g, "precision": precision, "ok": False, "error": tail})

    # 4. The PyTorch peer, same model and batch.
    if have_torch:
        for mode in ("eager-f32", "bf16-cl"):
            ok, lines, tail = check.call(
                [sys.executable, os.path.join(ROOT, "docs/peer/pytorch_bench.py"), "--device", peer_device,
                 "--mode", mode, "--skip-aug", "--width", str(paper["width"]), "--batch", str(paper["batch"]),
                 "--size", str(paper["size"]), "--steps", str(paper["steps"]), "--warmup", str(paper["warmup"])], 240)
            for line in lines:
                check.emit({"check": "peer", **line})
            if not ok:
                check.emit({"check": "peer", "mode": mode, "ok": False, "error": tail})
    else:
        check.emit({"check": "peer", "skipped": "torch is not installed for " + sys.executable})

    # 5. The diffusion generator against its PyTorch peer: one `adainf bench --suite diffusion`
    #    per device measures ours, runs the peer with this Python on the matching torch device
    #    (the copy of scripts/ddpm_peer.py built into the binary, so the two always match) and
    #    prints the ratios. PyTorch has no wgpu device, so the comparison runs on CUDA GPUs.
    if args.tiny:
        diffusion_devices = ["flex"]
        diffusion = dict(channels=4, batch=2, size=16, steps=1, warmup=1, sample_steps=2)
    else:
        diffusion_devices = [g for g in usable if g.startswith("cuda")]
        diffusion = dict(channels=128, batch=128, size=32, steps=10, warmup=3, sample_steps=50)
        for g in usable:
            if g not in diffusion_devices:
                check.emit({"check": "diffusion", "asked": g,
                            "skipped": f"PyTorch has no {g} device; the diffusion comparison runs on cuda"})
    for g in diffusion_devices:
        args_d = [binary, "bench", "--suite", "diffusion", "--device", g, "--python", sys.executable]
        for key, value in diffusion.items():
            args_d += ["--" + key.replace("_", "-"), str(value)]
        ok, lines, tail = check.call(args_d, 150)
        for line in lines:
            check.emit({"check": "diffusion", "asked": g, **line})
        if not ok or not lines:
            check.emit({"check": "diffusion", "asked": g, "ok": False, "error": tail})

    # 6. A training run of about --run-seconds through `adainf run`, on the first usable GPU, in
    #    its fastest measured precision.
    if usable:
        g = usable[0]
        measured = {p: v for (d, p), v in best.items() if d == g}
        precision = max(measured, key=measured.get) if measured else "f32"
        rate = measured.get(precision, 0.0)
        steps = max(10, int(args.run_seconds * rate / paper["batch"])) if rate else 10
        runs = os.path.join(work, "runs")
        ok, lines, tail = check.call(
            [binary, "run", os.path.join(ROOT, "scripts/gpu_run.rhai"), "--quiet", "--device", g, "--runs-dir", runs,
             "--", f"steps={steps}", f"width={paper['width']}", f"batch={paper['batch']}",
             f"size={paper['size']}", f"precision={precision}", f"n={max(4 * paper['batch'], 50000 if not args.tiny else 0)}"],
            args.run_seconds * 2 + 120)
        for line in lines:
            check.emit({"check": "run", "asked": g, **line})
        if not ok or not lines:
            check.emit({"check": "run", "asked": g, "ok": False, "error": tail})

    check.emit({"check": "done", "seconds": round(time.monotonic() - check.started, 1)})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
