//! The diffusion generator end to end through the script host: `data::save_npz` of
//! `gen::sample`'s output is the official AdaInf layout that numpy reads (`image` N×H×W×3
//! uint8, `label` all -1), with exactly the pixels adainf holds.
//!
//! The Python comes from `ADAINF_TEST_PYTHON` (`common::test_python`): without it the test
//! skips with a message, except under CI (`CI=true`), where it fails.

mod common;

use adainf_core::data::Dataset;
use adainf_core::data::loader::gather;
use adainf_core::train::{CancelFlag, Silent};
use adainf_script::{Host, HostConfig};
use common::*;
use std::process::Command;

/// Reads an npz with numpy and prints its keys, the image array's shape, dtype and bytes, and
/// the labels, as JSON.
const READ_NPZ: &str = r#"
import json, sys
import numpy as np
z = np.load(sys.argv[1])
img = z["image"]
print(json.dumps({
    "keys": sorted(z.files),
    "shape": list(img.shape),
    "dtype": str(img.dtype),
    "pixels": img.reshape(-1).tolist(),
    "labels": z["label"].tolist(),
}))
"#;

#[test]
fn numpy_reads_the_samples_of_a_diffusion_generator_with_the_pixels_adainf_holds() {
    let Some(python) = test_python("numpy") else {
        return;
    };
    let ws = Workspace::new("diffusion-npz");
    let npz = ws.0.join("samples.npz");
    let host = Host::new(
        HostConfig {
            device: burn::tensor::Device::flex(),
            device_name: "flex".into(),
            runs_dir: ws.0.join("runs"),
            max_operations: 200_000,
            max_memory_gib: 1,
            params: rhai::Map::new(),
            lib_dirs: vec![],
            cancel: CancelFlag::new(),
            executor: Default::default(),
            retry_failed: false,
        },
        Box::new(|| Box::new(Silent)),
    );
    let script = format!(
        r#"
let real = data::synthetic(#{{ n: 8, size: 16, seed: 0 }});
let g = gen::diffusion(real, #{{ steps: 2, batch: 2, channels: 4, channel_mult: [1, 2],
                                attention_at: [], timesteps: 20 }});
let s = gen::sample(g, 5, #{{ steps: 4, batch: 2, seed: 3 }});
data::save_npz(s, "{}");
s
"#,
        npz.display()
    );
    let samples: Dataset = host.engine().eval(&script).unwrap();
    let held = gather(&samples, &(0..samples.len()).collect::<Vec<_>>());
    let out = Command::new(&python)
        .args(["-c", READ_NPZ])
        .arg(&npz)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "numpy could not read the npz: {stderr}"
    );
    let got: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(got["keys"], serde_json::json!(["image", "label"]));
    assert_eq!(got["shape"], serde_json::json!([5, 16, 16, 3]));
    assert_eq!(got["dtype"], "uint8");
    let pixels: Vec<u8> = got["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(held.shape, [16, 16, 3]);
    assert_eq!(pixels.len(), held.pixels.len());
    let differing = pixels
        .iter()
        .zip(&held.pixels)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differing, 0,
        "{differing} pixel values differ from adainf's"
    );
    // The samples are images, not a constant.
    assert!(held.pixels.iter().any(|&p| p != held.pixels[0]));
    assert_eq!(got["labels"], serde_json::json!(vec![-1; 5]));
}
