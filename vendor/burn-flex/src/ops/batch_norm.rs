//! Training-mode batch norm, forward and backward, fused per channel on the `[N, C, ...]` layout
//! (f32 and f64; f16 and bf16 through f32). Added by the adainf project (see `PATCHED.md`).
//!
//! Upstream burn-flex takes burn's generic route: each statistic is a `swap_dims` (a full layout
//! copy) followed by a reduction, and the normalisation and its gradient are chains of separate
//! element-wise operations. Here each pass reads the channel's `N` contiguous segments in place:
//!
//! ```text
//!   forward    mean, var  (one read of x, sums in f64)    y = a·x + b           (one write)
//!   backward   Σdy, Σdy·(x − mean)  (one read of x, dy)   dx = k1·dy + k2·(x − mean) + k3
//! ```

use alloc::vec;
use alloc::vec::Vec;

use burn_backend::DType;
use burn_backend::Element;
use burn_std::{Bytes, Shape};
use num_traits::Float;

use super::module::{f32_to_half, half_to_f32};
use crate::{FlexTensor, Layout};

/// Element types computed natively, with the two per-segment sums the passes need.
trait NormScalar: Float + Element + bytemuck::Pod + Send + Sync {
    /// (Σ (x − shift), Σ (x − shift)²).
    fn shifted_sums(x: &[Self], shift: Self) -> (f64, f64) {
        lane_sums(x, x, |v, _| v - shift, |v, _| (v - shift) * (v - shift))
    }
    /// (Σ dy, Σ dy·(x − mean)).
    fn grad_sums(dy: &[Self], x: &[Self], mean: Self) -> (f64, f64) {
        lane_sums(dy, x, |g, _| g, |g, v| g * (v - mean))
    }
}

impl NormScalar for f64 {}

/// f32 uses macerator's runtime-dispatched SIMD (AVX-512 where available) for segments long
/// enough to pay for the dispatch.
impl NormScalar for f32 {
    #[cfg(feature = "simd")]
    fn shifted_sums(x: &[f32], shift: f32) -> (f64, f64) {
        if x.len() < 32 {
            return lane_sums(x, x, |v, _| v - shift, |v, _| (v - shift) * (v - shift));
        }
        simd::sums(x, x, shift, true)
    }
    #[cfg(feature = "simd")]
    fn grad_sums(dy: &[f32], x: &[f32], mean: f32) -> (f64, f64) {
        if dy.len() < 32 {
            return lane_sums(dy, x, |g, _| g, |g, v| g * (v - mean));
        }
        simd::sums(dy, x, mean, false)
    }
}

#[cfg(feature = "simd")]
mod simd {
    use macerator::{Scalar, Simd, vload_unaligned};

    /// `shifted`: (Σ (a − c), Σ (a − c)²); otherwise (Σ a, Σ a·(b − c)). `a` and `b` have the
    /// same length.
    #[macerator::with_simd]
    pub(super) fn sums<S: Simd>(a: &[f32], b: &[f32], c: f32, shifted: bool) -> (f64, f64) {
        let lanes = <f32 as Scalar>::lanes::<S>();
        let full = a.len() / lanes * lanes;
        let cv = c.splat::<S>();
        let (mut s1, mut s2) = (0.0f32.splat::<S>(), 0.0f32.splat::<S>());
        let mut i = 0;
        while i < full {
            // SAFETY: i + lanes ≤ full ≤ a.len() = b.len().
            let (va, vb) = unsafe {
                (
                    vload_unaligned::<S, f32>(a.as_ptr().add(i)),
                    vload_unaligned::<S, f32>(b.as_ptr().add(i)),
                )
            };
            if shifted {
                let v = va - cv;
                s1 += v;
                s2 += v * v;
            } else {
                s1 += va;
                s2 += va * (vb - cv);
            }
            i += lanes;
        }
        let (mut t1, mut t2) = (s1.reduce_add() as f64, s2.reduce_add() as f64);
        for (&x, &y) in a[full..].iter().zip(&b[full..]) {
            let (u, w) = if shifted {
                (x - c, (x - c) * (x - c))
            } else {
                (x, x * (y - c))
            };
            t1 += u as f64;
            t2 += w as f64;
        }
        (t1, t2)
    }
}

/// `[N, C, inner]` view of a tensor of rank ≥ 2.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    inner: usize,
}

impl Dims {
    fn of(shape: &[usize]) -> Dims {
        assert!(shape.len() >= 2, "batch norm: input must have rank ≥ 2");
        Dims {
            n: shape[0],
            c: shape[1],
            inner: shape[2..].iter().product(),
        }
    }
    /// Values per channel.
    fn count(&self) -> f64 {
        (self.n * self.inner).max(1) as f64
    }
    /// The channel's segment of sample `n`.
    fn segment<'a, T>(&self, data: &'a [T], n: usize, ch: usize) -> &'a [T] {
        &data[(n * self.c + ch) * self.inner..][..self.inner]
    }
}

/// (Σ first(a[i], b[i]), Σ second(a[i], b[i])) over two equal-length segments in one pass, in
/// 16 lanes of T (vectorisable), returned as f64.
fn lane_sums<T: NormScalar>(
    a: &[T],
    b: &[T],
    first: impl Fn(T, T) -> T,
    second: impl Fn(T, T) -> T,
) -> (f64, f64) {
    const LANES: usize = 16;
    let (mut acc1, mut acc2) = ([T::zero(); LANES], [T::zero(); LANES]);
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (ca, cb) in ac.zip(bc) {
        for lane in 0..LANES {
            acc1[lane] = acc1[lane] + first(ca[lane], cb[lane]);
            acc2[lane] = acc2[lane] + second(ca[lane], cb[lane]);
        }
    }
    let (mut s1, mut s2) = (0.0, 0.0);
    for (&x, &y) in ar.iter().zip(br) {
        s1 += f64_of(first(x, y));
        s2 += f64_of(second(x, y));
    }
    let total = |acc: [T; LANES], tail: f64| acc.iter().fold(tail, |s, &v| s + f64_of(v));
    (total(acc1, s1), total(acc2, s2))
}

/// `per_channel(ch)` for every channel, in parallel when the tensor is large.
fn map_channels<R: Send>(d: Dims, per_channel: impl Fn(usize) -> R + Send + Sync) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        if d.n * d.c * d.inner >= super::PARALLEL_THRESHOLD {
            use rayon::prelude::*;
            return (0..d.c).into_par_iter().map(per_channel).collect();
        }
    }
    (0..d.c).map(per_channel).collect()
}

/// The output tensor filled segment by segment: `fill(ch, offset, out_segment)` writes the
/// channel-`ch` segment that starts at flat index `offset`. Samples run in parallel when large.
fn write_per_channel<T: NormScalar>(
    d: Dims,
    fill: impl Fn(usize, usize, &mut [T]) + Send + Sync,
) -> Vec<T> {
    let mut out = vec![T::zero(); d.n * d.c * d.inner];
    let sample = d.c * d.inner;
    if sample == 0 {
        return out;
    }
    let fill_sample = |n: usize, chunk: &mut [T]| {
        for (ch, segment) in chunk.chunks_mut(d.inner.max(1)).enumerate() {
            fill(ch, (n * d.c + ch) * d.inner, segment);
        }
    };
    #[cfg(feature = "rayon")]
    {
        if out.len() >= super::PARALLEL_THRESHOLD {
            use rayon::prelude::*;
            out.par_chunks_mut(sample)
                .enumerate()
                .for_each(|(n, chunk)| fill_sample(n, chunk));
            return out;
        }
    }
    for (n, chunk) in out.chunks_mut(sample).enumerate() {
        fill_sample(n, chunk);
    }
    out
}

fn vector<T: NormScalar>(values: Vec<T>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(Shape::from(shape)),
        T::dtype(),
    )
}

fn values<T: NormScalar>(t: &FlexTensor) -> Vec<T> {
    t.to_contiguous().storage::<T>().to_vec()
}

fn f64_of<T: NormScalar>(v: T) -> f64 {
    num_traits::ToPrimitive::to_f64(&v).unwrap_or(f64::NAN)
}

fn cast<T: NormScalar>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

/// Output, batch mean and biased batch variance.
fn train_impl<T: NormScalar>(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
) -> [FlexTensor; 3] {
    let x = x.to_contiguous();
    let shape = x.layout().shape().to_vec();
    let d = Dims::of(&shape);
    let xd: &[T] = x.storage();
    // One pass per channel, on values shifted by the channel's first value (the shifted-data
    // variance: no cancellation as long as the shift lies within the data).
    let stats = map_channels(d, |ch| {
        let Some(&shift) = (0..d.n).find_map(|n| d.segment(xd, n, ch).first()) else {
            return (0.0, 0.0);
        };
        let (sum, squares) = (0..d.n).fold((0.0f64, 0.0f64), |(s1, s2), n| {
            let (a, b) = T::shifted_sums(d.segment(xd, n, ch), shift);
            (s1 + a, s2 + b)
        });
        let mean_shifted = sum / d.count();
        // Rounding can make the difference slightly negative; a NaN must stay NaN.
        let var = squares / d.count() - mean_shifted * mean_shifted;
        let var = if var < 0.0 { 0.0 } else { var };
        (f64_of(shift) + mean_shifted, var)
    });
    let (gamma, beta) = (values::<T>(gamma), values::<T>(beta));
    // y = a·x + b with a = γ / √(var + ε), b = β − a·mean.
    let coef: Vec<(T, T)> = stats
        .iter()
        .enumerate()
        .map(|(ch, &(mean, var))| {
            let a = f64_of(gamma[ch]) / (var + epsilon).sqrt();
            (cast(a), cast(f64_of(beta[ch]) - a * mean))
        })
        .collect();
    let out = write_per_channel(d, |ch, offset, out| {
        let (a, b) = coef[ch];
        for (o, &v) in out.iter_mut().zip(&xd[offset..]) {
            *o = a * v + b;
        }
    });
    [
        vector(out, shape),
        vector(stats.iter().map(|s| cast::<T>(s.0)).collect(), vec![d.c]),
        vector(stats.iter().map(|s| cast::<T>(s.1)).collect(), vec![d.c]),
    ]
}

/// Gradients of input, gamma and beta.
fn backward_impl<T: NormScalar>(
    x: &FlexTensor,
    gamma: &FlexTensor,
    mean: &FlexTensor,
    variance: &FlexTensor,
    epsilon: f64,
    output_grad: &FlexTensor,
) -> [FlexTensor; 3] {
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    let shape = x.layout().shape().to_vec();
    let d = Dims::of(&shape);
    let (xd, dyd): (&[T], &[T]) = (x.storage(), dy.storage());
    let (gamma, mean, variance) = (values::<T>(gamma), values::<T>(mean), values::<T>(variance));
    // Per channel: Σdy and Σdy·(x − mean).
    let sums = map_channels(d, |ch| {
        let m = mean[ch];
        (0..d.n).fold((0.0f64, 0.0f64), |(sdy, sdyx), n| {
            let (xs, gs) = (d.segment(xd, n, ch), d.segment(dyd, n, ch));
            let (a, b) = T::grad_sums(gs, xs, m);
            (sdy + a, sdyx + b)
        })
    });
    let count = d.count();
    let mut gamma_grad = Vec::with_capacity(d.c);
    let mut beta_grad = Vec::with_capacity(d.c);
    // dx = k1·dy + k2·(x − mean) + k3, with x̂ = (x − mean)·inv_std:
    //   k1 = γ·inv_std, k2 = −k1·inv_std·Σ(dy·x̂)/count, k3 = −k1·Σdy/count.
    let coef: Vec<[T; 4]> = sums
        .iter()
        .enumerate()
        .map(|(ch, &(sdy, sdyx))| {
            let inv_std = 1.0 / (f64_of(variance[ch]) + epsilon).sqrt();
            let dgamma = sdyx * inv_std;
            gamma_grad.push(cast::<T>(dgamma));
            beta_grad.push(cast::<T>(sdy));
            let k1 = f64_of(gamma[ch]) * inv_std;
            [
                cast(k1),
                cast(-k1 * inv_std * dgamma / count),
                cast(-k1 * sdy / count),
                mean[ch],
            ]
        })
        .collect();
    let dx = write_per_channel(d, |ch, offset, out| {
        let [k1, k2, k3, m] = coef[ch];
        for ((o, &g), &v) in out.iter_mut().zip(&dyd[offset..]).zip(&xd[offset..]) {
            *o = k1 * g + k2 * (v - m) + k3;
        }
    });
    [
        vector(dx, shape),
        vector(gamma_grad, vec![d.c]),
        vector(beta_grad, vec![d.c]),
    ]
}

/// Runs `f` natively for f32/f64 and in f32 for half types, casting the results back.
fn dispatch(
    inputs: &[&FlexTensor],
    f32_fn: impl Fn(&[FlexTensor]) -> [FlexTensor; 3],
    f64_fn: impl Fn(&[FlexTensor]) -> [FlexTensor; 3],
) -> [FlexTensor; 3] {
    let dtype = inputs[0].dtype();
    match dtype {
        DType::F64 => f64_fn(&inputs.iter().map(|t| (*t).clone()).collect::<Vec<_>>()),
        DType::F32 => f32_fn(&inputs.iter().map(|t| (*t).clone()).collect::<Vec<_>>()),
        DType::F16 | DType::BF16 => {
            let converted: Vec<FlexTensor> = inputs.iter().map(|t| half_to_f32(t)).collect();
            f32_fn(&converted).map(|t| f32_to_half(t, dtype))
        }
        other => panic!("batch norm: unsupported dtype {other:?}"),
    }
}

/// Training-mode batch norm: `[output, mean, variance]`.
pub(crate) fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> [FlexTensor; 3] {
    dispatch(
        &[&x, &gamma, &beta],
        |t| train_impl::<f32>(&t[0], &t[1], &t[2], epsilon),
        |t| train_impl::<f64>(&t[0], &t[1], &t[2], epsilon),
    )
}

/// Gradients of training-mode batch norm: `[x_grad, gamma_grad, beta_grad]`.
pub(crate) fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> [FlexTensor; 3] {
    dispatch(
        &[&x, &gamma, &mean, &variance, &output_grad],
        |t| backward_impl::<f32>(&t[0], &t[1], &t[2], &t[3], epsilon, &t[4]),
        |t| backward_impl::<f64>(&t[0], &t[1], &t[2], &t[3], epsilon, &t[4]),
    )
}
