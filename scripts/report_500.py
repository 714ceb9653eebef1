#!/usr/bin/env python3
"""A synthetic runs folder for measuring `adainf report` at scale (docs/report.md).

  python3 scripts/report_500.py TEMPLATE_RUN_DIR OUT_DIR [N=500] [STEPS=10000]

Copies a real run folder's config.json, request.json and preview.png N times (25 settings ×
N/25 seeds; every 50th run failed, every 50th partial), with synthetic metrics (a row every 10
steps: STEPS/10 rows, probe every 500 steps), result.json and a kNN eval. The numbers are made
up; only the page's size and speed are measured with it.
"""
import hashlib
import json
import math
import os
import random
import shutil
import sys


def main(template, out, n=500, steps=10000):
    os.makedirs(out, exist_ok=True)
    config = json.load(open(os.path.join(template, "config.json")))
    request = json.load(open(os.path.join(template, "request.json")))
    preview = os.path.join(template, "preview.png")
    rng = random.Random(0)
    for i in range(n):
        run_id = hashlib.sha256(b"run %d" % i).hexdigest()[:24]
        d = os.path.join(out, run_id)
        os.makedirs(os.path.join(d, "evals"), exist_ok=True)
        setting, seed = "setting-%02d" % (i % 25), i // 25
        config["config"]["seed"] = seed
        config["config"]["steps"] = steps
        json.dump(config, open(os.path.join(d, "config.json"), "w"))
        request["id"] = run_id
        request["config"] = config["config"]
        request["tags"] = {"setting": setting, "seed": seed, "dup": i % 25 // 5}
        json.dump(request, open(os.path.join(d, "request.json"), "w"))
        if os.path.exists(preview):
            shutil.copy(preview, os.path.join(d, "preview.png"))
        failed, partial = i % 50 == 7, i % 50 == 13
        last = steps // 3 if (failed or partial) else steps
        base = 2.0 + 0.5 * rng.random()
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            for s in range(10, last + 1, 10):
                row = {"step": s, "loss": base * math.exp(-s / steps) + 0.05 * rng.random(),
                       "lr": 0.1 * 0.5 * (1 + math.cos(math.pi * s / steps))}
                if s % 500 == 0:
                    row["probe_acc"] = 0.3 + 0.4 * (1 - math.exp(-3 * s / steps)) + 0.02 * rng.random()
                row["images_per_s"] = 4000 + 100 * rng.random()
                row["data_wait"] = 0.01
                f.write(json.dumps(row) + "\n")
        if failed:
            json.dump({"error": "the loss became NaN at step %d; lower the learning rate" % last,
                       "owner": {"host": "bench", "pid": 1, "slurm": None, "since": 0}},
                      open(os.path.join(d, "failed.json"), "w"))
            continue
        if partial:
            os.makedirs(os.path.join(d, "checkpoint"), exist_ok=True)
            continue
        acc = 0.6 + 0.1 * (i % 25) / 25 + 0.02 * rng.random()
        json.dump({"id": run_id, "accuracy": acc, "final_loss": base * math.exp(-1), "steps": steps,
                   "train_seconds": 600 + 60 * rng.random(), "images_per_s": 4000, "data_wait": 0.01},
                  open(os.path.join(d, "result.json"), "w"))
        json.dump({"format": 1, "kind": "knn", "value": acc - 0.05, "options": {"k": 20}},
                  open(os.path.join(d, "evals", "0.json"), "w"))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], *(int(a) for a in args[2:]))
