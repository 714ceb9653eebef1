//! MoCo's queues of keys: for each view, the last `size` normalised keys (a ring buffer on the
//! device, replaced batch by batch), initialised with random unit vectors as in the official
//! code.

use burn::tensor::{Device, Distribution, Tensor};

use super::losses::l2_normalize;
use crate::error::{Error, Result};

/// MoCo key queues, one ring buffer of normalised keys per view.
pub struct KeyQueue {
    /// One [size, dim] buffer per view.
    pub keys: [Tensor<2>; 2],
    /// Row where the next batch of keys is written.
    pub ptr: usize,
    size: usize,
}

impl KeyQueue {
    /// Queues of `size` random unit keys of `dim` values; `size`: a positive multiple of `batch`.
    pub fn new(size: usize, dim: usize, batch: usize, device: &Device) -> Result<Self> {
        if size == 0 || !size.is_multiple_of(batch) {
            return Err(Error::config(
                "queue_size",
                format!("must be a positive multiple of the batch ({batch}), got {size}"),
            ));
        }
        let init = || {
            l2_normalize(Tensor::random(
                [size, dim],
                Distribution::Normal(0.0, 1.0),
                device,
            ))
        };
        Ok(KeyQueue {
            keys: [init(), init()],
            ptr: 0,
            size,
        })
    }

    /// Replaces the oldest `batch` keys of each view's queue.
    pub fn push(&mut self, k1: Tensor<2>, k2: Tensor<2>) {
        let [b, _] = k1.dims();
        let at = self.ptr;
        for (queue, k) in self.keys.iter_mut().zip([k1, k2]) {
            let [_, d] = queue.dims();
            *queue = queue.clone().slice_assign([at..at + b, 0..d], k.detach());
        }
        self.ptr = (self.ptr + b) % self.size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{floats, read_floats};

    #[test]
    fn keys_enter_at_the_pointer_and_wrap_around() {
        let device = Device::flex();
        let mut q = KeyQueue::new(4, 2, 2, &device).unwrap();
        let rows = |v: f32| floats(vec![v; 4], [2, 2], &device);
        q.push(rows(1.0), rows(-1.0));
        assert_eq!(q.ptr, 2);
        q.push(rows(2.0), rows(-2.0));
        assert_eq!(q.ptr, 0);
        q.push(rows(3.0), rows(-3.0));
        assert_eq!(
            read_floats(q.keys[0].clone()),
            vec![3.0, 3.0, 3.0, 3.0, 2.0, 2.0, 2.0, 2.0]
        );
        assert_eq!(read_floats(q.keys[1].clone())[4], -2.0);
        assert!(KeyQueue::new(5, 2, 2, &device).is_err());
    }
}
