//! Small helpers for moving values between host memory and tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// A float tensor from host values.
pub fn floats<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// An int tensor from host values.
pub fn ints(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

/// Reads a float tensor back to the host (a device synchronisation: keep it off the hot path).
pub fn read_floats<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data().try_into_vec_as::<f32>().unwrap_or_default()
}

/// Reads an int tensor back to the host.
pub fn read_ints<const D: usize>(x: Tensor<D, Int>) -> Vec<i64> {
    x.into_data().try_into_vec_as::<i64>().unwrap_or_default()
}
