//! A dataset kept on the compute device: the distinct images a view reads are uploaded once,
//! and each batch is gathered by index there, so a GPU step moves only the batch's indices
//! across the bus. Pixels stay 8-bit: four u8 values are packed into one i32 word (WGSL has no
//! u8 type; CUDA would take u8, but one packed layout keeps every backend on the same code,
//! which the tests run on flex and lavapipe). A 1M × 32×32×3 set takes 3 GB on the device.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use super::Dataset;
use crate::error::{Error, Result};
use crate::tensor::ints;

/// Images uploaded per transfer while building the resident copy (bounds the host staging
/// buffer: 16k 32×32 images are 48 MB).
const UPLOAD_CHUNK: usize = 16_384;

/// The distinct images of a dataset view on a device, plus the view's item → image map.
pub struct ResidentData {
    /// [images, words_per_image] i32: pixel bytes in H, W, C (RGB) order, little-endian in
    /// each word, the last word of an image zero-padded.
    words: Tensor<2, Int>,
    /// Row of `words` holding each item of the view.
    rows: Vec<u32>,
    labels: Vec<i32>,
    shape: [usize; 3],
    device: Device,
}

/// 32-bit words holding one image of `shape`.
fn words_per_image(shape: [usize; 3]) -> usize {
    shape.iter().product::<usize>().div_ceil(4)
}

/// The item → distinct-image map of a view: for each item the row of the resident copy, and
/// the (store, row) pairs in upload order (sorted, so a memory-mapped file is read forwards).
fn distinct_images(data: &Dataset) -> (Vec<u32>, Vec<(u32, u32)>, usize) {
    let (stores, locations) = data.locations();
    let mut slot: Vec<Vec<u32>> = stores.iter().map(|s| vec![u32::MAX; s.len()]).collect();
    for &(s, r) in &locations {
        slot[s as usize][r as usize] = 0;
    }
    let mut order = Vec::new();
    for (s, rows) in slot.iter_mut().enumerate() {
        for (r, v) in rows.iter_mut().enumerate() {
            if *v == 0 {
                *v = order.len() as u32;
                order.push((s as u32, r as u32));
            }
        }
    }
    let rows = locations
        .iter()
        .map(|&(s, r)| slot[s as usize][r as usize])
        .collect();
    (rows, order, stores.len())
}

impl ResidentData {
    /// Bytes the distinct images of `data` would take on a device.
    pub fn bytes_needed(data: &Dataset) -> usize {
        let (_, order, _) = distinct_images(data);
        order.len() * words_per_image(data.shape()) * 4
    }

    /// Uploads the distinct images of `data` to `device`.
    pub fn upload(data: &Dataset, device: &Device) -> Result<Self> {
        let shape = data.shape();
        if shape[2] != 3 {
            return Err(Error::Data(format!(
                "{}: images have {} channels; training needs RGB (3)",
                data.description(),
                shape[2]
            )));
        }
        let (stores, _) = data.locations();
        let (rows, order, _) = distinct_images(data);
        let wpi = words_per_image(shape);
        let per = shape.iter().product::<usize>();
        let mut chunks = Vec::new();
        let mut bytes = Vec::with_capacity(wpi * 4);
        for piece in order.chunks(UPLOAD_CHUNK) {
            let mut words: Vec<i32> = Vec::with_capacity(piece.len() * wpi);
            for &(s, r) in piece {
                let store = &stores[s as usize];
                bytes.clear();
                let image = store.image(r as usize);
                if store.bgr {
                    for px in image.chunks_exact(3) {
                        bytes.extend_from_slice(&[px[2], px[1], px[0]]);
                    }
                } else {
                    bytes.extend_from_slice(image);
                }
                bytes.resize(wpi * 4, 0);
                words.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
            let data = TensorData::new(words, [piece.len(), wpi]);
            chunks.push(Tensor::<2, Int>::from_data(data, (device, DType::I32)));
            for store in &stores {
                store.pixels.release_mapped_pages();
            }
        }
        debug_assert!(per <= wpi * 4);
        let words = if chunks.len() == 1 {
            chunks.pop().expect("one chunk")
        } else {
            Tensor::cat(chunks, 0)
        };
        let labels = (0..data.len()).map(|i| data.label(i)).collect();
        Ok(ResidentData {
            words,
            rows,
            labels,
            shape,
            device: device.clone(),
        })
    }

    /// Number of items of the view.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the view holds no items.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The items at `indices` as float NCHW images in [0, 1] on the device (the same values
    /// `augment::batch::to_device` makes of a host batch), and their labels.
    pub fn gather(&self, indices: &[usize]) -> (Tensor<4>, Vec<i32>) {
        let [h, w, c] = self.shape;
        let b = indices.len();
        let wpi = words_per_image(self.shape);
        let idx = ints(
            indices.iter().map(|&i| self.rows[i] as i64).collect(),
            &self.device,
        );
        let words = self.words.clone().select(0, idx);
        let bytes: Vec<Tensor<2, Int>> = (0..4)
            .map(|k| {
                words
                    .clone()
                    .bitwise_right_shift_scalar(8 * k)
                    .bitwise_and_scalar(255)
            })
            .collect();
        let flat: Tensor<2, Int> = Tensor::stack::<3>(bytes, 2).reshape([b, wpi * 4]);
        let per = h * w * c;
        let flat = if per == wpi * 4 {
            flat
        } else {
            flat.slice([0..b, 0..per])
        };
        let images = flat
            .float()
            .reshape([b, h, w, c])
            .permute([0, 3, 1, 2])
            .div_scalar(255.0);
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        (images, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::batch::to_device;
    use crate::data::loader::gather;
    use crate::data::{ImageStore, tiny_store};
    use crate::tensor::read_floats;

    #[test]
    fn gathers_the_same_pixels_as_the_host_path() {
        let real = Dataset::from_store(tiny_store(7, 3, 1));
        let generated = Dataset::from_store(tiny_store(5, 3, 9));
        // Real ×3 then generated: the three replicas share one resident copy.
        let mix = Dataset::inflate(&real, &generated, 3).unwrap();
        // A BGR store is swapped to RGB once, on upload.
        let bgr = Dataset::from_store(tiny_store(4, 2, 3).with_bgr(true));
        // 5×5×3 = 75 bytes: the last word of each image is padded.
        let odd = Dataset::from_store(
            ImageStore::new(
                "odd".into(),
                "odd".into(),
                [5, 5, 3],
                2,
                (0..4 * 75)
                    .map(|i| (i * 7 % 256) as u8)
                    .collect::<Vec<u8>>(),
                vec![0, 1, -1, 1],
            )
            .unwrap(),
        );
        let device = Device::flex();
        for (data, distinct) in [(&mix, 12), (&bgr, 4), (&odd, 4)] {
            let resident = ResidentData::upload(data, &device).unwrap();
            assert_eq!(resident.len(), data.len());
            assert_eq!(
                ResidentData::bytes_needed(data),
                distinct * words_per_image(data.shape()) * 4
            );
            let idx: Vec<usize> = (0..data.len()).rev().step_by(2).collect();
            let (images, labels) = resident.gather(&idx);
            let host = gather(data, &idx);
            assert_eq!(labels, host.labels);
            assert_eq!(
                read_floats(images),
                read_floats(to_device(host, &device)),
                "{}",
                data.description()
            );
        }
        // Generated items are unlabeled in the mixture.
        assert_eq!(
            ResidentData::upload(&mix, &device).unwrap().labels[21..],
            [-1; 5]
        );
    }
}
