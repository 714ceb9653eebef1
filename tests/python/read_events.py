"""Reads a run folder's TensorBoard event files with the `tensorboard` package and prints what
it found as JSON (tests/tensorboard.rs compares it with the run's own files).

  python read_events.py RUN_DIR

- "files": the event files; "raw": per file, each event's step and summary tags, read record by
  record with TensorBoard's loader (which checks every CRC and raises on a bad one);
- "scalars", "images": what TensorBoard's EventAccumulator gives for the folder;
- "hparams": the HParams plugin data (session start: hparams and group; session end: status).
"""
import hashlib
import json
import os
import sys

from tensorboard.backend.event_processing import event_accumulator, event_file_loader
from tensorboard.plugins.hparams import plugin_data_pb2


def main(run_dir):
    files = sorted(f for f in os.listdir(run_dir) if "tfevents" in f)
    raw = []
    for name in files:
        events = []
        for event in event_file_loader.EventFileLoader(os.path.join(run_dir, name)).Load():
            events.append({
                "step": event.step,
                "tags": [v.tag for v in event.summary.value],
                "file_version": event.file_version,
            })
        raw.append({"file": name, "events": events})

    acc = event_accumulator.EventAccumulator(run_dir, size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0,
    })
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]}
    images = {
        t: [{"step": e.step, "width": e.width, "height": e.height,
             "sha256": hashlib.sha256(e.encoded_image_string).hexdigest()} for e in acc.Images(t)]
        for t in tags["images"]
    }
    hparams = {}
    for tag, content in acc.PluginTagToContent("hparams").items():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        kind = data.WhichOneof("data")
        if kind == "session_start_info":
            info = data.session_start_info
            values = {}
            for k, v in info.hparams.items():
                which = v.WhichOneof("kind")
                values[k] = getattr(v, which) if which else None
            hparams[tag] = {"hparams": values, "group": info.group_name}
        elif kind == "session_end_info":
            hparams[tag] = {"status": data.session_end_info.status}
        else:
            hparams[tag] = {"kind": kind}
    print(json.dumps({"files": files, "raw": raw, "scalars": scalars, "images": images,
                      "hparams": hparams}))


if __name__ == "__main__":
    main(sys.argv[1])
