//! The augmentation ops against torchvision's, at fixed parameters: reference outputs were
//! computed once with torchvision's functional transforms on float tensors and stored with the
//! script that made them (`tests/fixtures/make_color_fixtures.py` →
//! `tests/fixtures/color_fixtures.json`). Both implementations are checked: the batched tensor
//! path that GPUs run (`batch`) and the fused per-image path of the CPU backend (`fused`).
//!
//! Where adainf differs from torchvision by design, the test says how: blur replicates edge
//! pixels (torchvision reflects), so blur is compared away from the border; grayscale weighs
//! red 0.299 (torchvision 0.2989).

use burn::tensor::Device;
use serde::Deserialize;

use super::{AugSpec, JitterOp, ViewParams, batch, fused};
use crate::data::loader::HostBatch;
use crate::tensor::read_floats;

#[derive(Deserialize)]
struct Fixture {
    made_with: String,
    height: usize,
    width: usize,
    pixels: Vec<u8>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    op: String,
    factor: Option<f64>,
    sigma: Option<f64>,
    #[serde(rename = "box")]
    crop_box: Option<[f64; 4]>,
    flip: Option<bool>,
    output: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/color_fixtures.json"
    );
    let text = std::fs::read_to_string(path).expect("the fixture file is in the repository");
    serde_json::from_str(&text).expect("the fixture file parses")
}

/// Parameters that apply exactly one op of the case (everything else the identity).
fn params_of(case: &Case, h: usize, w: usize) -> ViewParams {
    let mut p = ViewParams::identity(h, w);
    let jitter = |op: JitterOp, factor: f64| {
        let neutral = [
            (JitterOp::Brightness, 1.0),
            (JitterOp::Contrast, 1.0),
            (JitterOp::Saturation, 1.0),
            (JitterOp::Hue, 0.0),
        ];
        let mut ops = neutral;
        ops[op as usize] = (op, factor);
        // The op under test first; the neutral ones after it change nothing.
        ops.swap(0, op as usize);
        Some(ops)
    };
    let factor = case.factor.unwrap_or(0.0);
    match case.op.as_str() {
        "brightness" => p.jitter = jitter(JitterOp::Brightness, factor),
        "contrast" => p.jitter = jitter(JitterOp::Contrast, factor),
        "saturation" => p.jitter = jitter(JitterOp::Saturation, factor),
        "hue" => p.jitter = jitter(JitterOp::Hue, factor),
        "grayscale" => p.gray = true,
        "solarize" => p.solarize = true,
        "blur" => p.blur_sigma = case.sigma.expect("blur cases have a sigma"),
        "crop" => {
            p.crop = case.crop_box.expect("crop cases have a box");
            p.flip = case.flip.unwrap_or(false);
        }
        other => panic!("unknown fixture op {other}"),
    }
    p
}

/// Both implementations' output (CHW) for one case.
fn ours(fx: &Fixture, params: &ViewParams) -> [Vec<f32>; 2] {
    let (h, w) = (fx.height, fx.width);
    let hb = HostBatch {
        pixels: fx.pixels.clone(),
        labels: vec![0],
        shape: [h, w, 3],
        generated: vec![false; 1],
    };
    let device = Device::flex();
    let batched = read_floats(batch::augment(
        batch::to_device(hb.clone(), &device),
        std::slice::from_ref(params),
    ));
    let unnormalised = AugSpec {
        mean: [0.0; 3],
        std: [1.0; 3],
        ..AugSpec::identity()
    };
    let fused = fused::augment_and_normalize(&hb, std::slice::from_ref(params), &unnormalised);
    [batched, fused]
}

/// Largest |a − b| over the pixels whose row and column are at least `border` from the edge.
fn worst(a: &[f32], b: &[f32], h: usize, w: usize, border: usize) -> f32 {
    let mut m = 0.0f32;
    for c in 0..3 {
        for y in border..h - border {
            for x in border..w - border {
                let k = (c * h + y) * w + x;
                m = m.max((a[k] - b[k]).abs());
            }
        }
    }
    m
}

#[test]
fn jitter_grayscale_solarize_blur_and_crop_match_torchvision() {
    let fx = fixture();
    let (h, w) = (fx.height, fx.width);
    assert_eq!(fx.pixels.len(), h * w * 3, "{}", fx.made_with);
    for case in &fx.cases {
        let params = params_of(case, h, w);
        let (tolerance, border) = match case.op.as_str() {
            // torchvision's grayscale weights are 0.2989/0.587/0.114 (ours 0.299/0.587/0.114).
            "brightness" | "contrast" | "saturation" | "grayscale" | "solarize" => (2e-4, 0),
            "crop" => (1e-5, 0),
            // Same Gaussian taps; edges differ (replicate vs reflect), so skip 3σ of border.
            "blur" => (1e-5, (3.0 * case.sigma.unwrap()).ceil() as usize),
            "hue" => (1e-5, 0),
            _ => unreachable!(),
        };
        for (path, got) in ["batched", "fused"].iter().zip(ours(&fx, &params)) {
            let err = worst(&got, &case.output, h, w, border);
            assert!(
                err <= tolerance,
                "{} {:?} ({path}): largest difference {err} > {tolerance}",
                case.op,
                case.factor.or(case.sigma)
            );
        }
    }
}
