//! 2-D convolution as im2col + gemm on NCHW data: the forward pass and both backward passes
//! (input gradient and weight gradient), for f32 and f64 (f16 and bf16 go through f32).
//!
//! Added by the adainf project (see `PATCHED.md` at the crate root). Upstream burn-flex computes
//! conv2d's backward pass through burn's generic route: the input gradient as a transposed
//! convolution and the weight gradient as a convolution whose kernel is the whole output-gradient
//! map, with layout swaps around both. Here all three passes share one data layout.
//!
//! Images are processed in chunks of `nb` images whose im2col columns sit side by side, so every
//! gemm has about `COLUMNS_PER_CHUNK` columns or more, even in late layers with tiny feature maps:
//!
//! ```text
//!   col   [K = c_in/groups · kh · kw,  nb · S]   S = out_h · out_w
//!   chan  [c_out,                      nb · S]   outputs or output gradients, channel-major
//!
//!   forward       chan  = W · col            then unpacked into the NCHW output
//!   input grad    dcol  = Wᵀ · chan(dy)      then added back into dx (col2im)
//!   weight grad   dW   += chan(dy) · colᵀ    summed over chunks in a fixed order (reproducible)
//! ```
//!
//! With one image per chunk the channel-major layout is the NCHW image itself and is used in
//! place. Chunks run in parallel (gemm single-threaded inside); when there are fewer chunks than
//! threads, chunks run one after another and gemm itself is parallel.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::AddAssign;

use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use super::matmul::GemmScalar;
use super::module::{f32_to_half, half_to_f32};
use crate::{FlexTensor, Layout};

/// Target number of gemm columns (output positions) per chunk of images.
const COLUMNS_PER_CHUNK: usize = 256;

/// Independent accumulators of the weight gradient (fixed, so that results do not depend on the
/// thread count).
const WEIGHT_GRAD_PARTS: usize = 4;

/// Element types of the gemm path.
pub(crate) trait ConvScalar: GemmScalar + AddAssign + Send + Sync {}
impl ConvScalar for f32 {}
impl ConvScalar for f64 {}

/// Shapes and options of one convolution, with padding as the number of leading zeros.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    c_in: usize,
    in_h: usize,
    in_w: usize,
    c_out: usize,
    groups: usize,
    kernel: [usize; 2],
    out_h: usize,
    out_w: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
}

impl Geometry {
    fn new(x: &[usize], weight: &[usize], out: [usize; 2], options: &ConvOptions<2>) -> Self {
        Geometry {
            batch: x[0],
            c_in: x[1],
            in_h: x[2],
            in_w: x[3],
            c_out: weight[0],
            groups: options.groups,
            kernel: [weight[2], weight[3]],
            out_h: out[0],
            out_w: out[1],
            stride: options.stride,
            pad: options.padding_begin(),
            dilation: options.dilation,
        }
    }

    /// Output size of a forward pass (padding on both sides, possibly asymmetric).
    fn forward_output(x: &[usize], weight: &[usize], options: &ConvOptions<2>) -> [usize; 2] {
        core::array::from_fn(|d| {
            let (begin, end) = options.padding[d];
            assert!(weight[2 + d] > 0, "conv2d: kernel size must be positive");
            let span = options.dilation[d] * (weight[2 + d] - 1) + 1;
            let padded = x[2 + d] + begin + end;
            assert!(
                padded >= span,
                "conv2d: kernel span {span} exceeds padded input {padded}"
            );
            (padded - span) / options.stride[d] + 1
        })
    }

    fn c_in_group(&self) -> usize {
        self.c_in / self.groups
    }
    fn c_out_group(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of the im2col matrix of one group.
    fn k(&self) -> usize {
        self.c_in_group() * self.kernel[0] * self.kernel[1]
    }
    fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }
    fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }
    fn in_image(&self) -> usize {
        self.c_in * self.in_plane()
    }
    fn out_image(&self) -> usize {
        self.c_out * self.out_plane()
    }
    /// A 1×1 kernel with unit stride and no padding: the input image is its own im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && [self.out_h, self.out_w] == [self.in_h, self.in_w]
    }
    fn images_per_chunk(&self) -> usize {
        COLUMNS_PER_CHUNK
            .div_ceil(self.out_plane().max(1))
            .clamp(1, self.batch.max(1))
    }
}

/// Output positions `o` in `0..count` whose input index `o·stride + offset` lies in `0..size`.
fn valid_range(count: usize, size: usize, stride: usize, offset: isize) -> (usize, usize) {
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset) as usize).div_ceil(stride)
    };
    let last = size as isize - 1 - offset;
    let hi = if last < 0 {
        0
    } else {
        (last as usize / stride + 1).min(count)
    };
    (lo.min(count), hi.max(lo.min(count)))
}

/// Calls `visit(row, plane, ranges…)` for every im2col row of one group: the input channel plane
/// it reads, and per kernel tap the offsets and valid output ranges along both axes.
fn for_each_tap(g: &Geometry, group: usize, mut visit: impl FnMut(usize, usize, Tap)) {
    let c_in_group = g.c_in_group();
    for c in 0..c_in_group {
        let plane = group * c_in_group + c;
        for i in 0..g.kernel[0] {
            let off_y = (i * g.dilation[0]) as isize - g.pad[0] as isize;
            let rows = valid_range(g.out_h, g.in_h, g.stride[0], off_y);
            for j in 0..g.kernel[1] {
                let off_x = (j * g.dilation[1]) as isize - g.pad[1] as isize;
                let cols = valid_range(g.out_w, g.in_w, g.stride[1], off_x);
                let row = (c * g.kernel[0] + i) * g.kernel[1] + j;
                visit(
                    row,
                    plane,
                    Tap {
                        off_y,
                        off_x,
                        rows,
                        cols,
                    },
                );
            }
        }
    }
}

/// One kernel tap: input offsets and the output ranges that read inside the input.
#[derive(Clone, Copy)]
struct Tap {
    off_y: isize,
    off_x: isize,
    rows: (usize, usize),
    cols: (usize, usize),
}

/// Zeroes a slice that is usually only a padding column or two wide (a `fill` would be a
/// `memset` call per image line).
#[inline(always)]
fn zero_small<T: ConvScalar>(s: &mut [T]) {
    match s.len() {
        0 => {}
        1 => s[0] = T::zero(),
        2 => {
            s[0] = T::zero();
            s[1] = T::zero();
        }
        _ => s.fill(T::zero()),
    }
}

impl Tap {
    /// With unit strides and `out_w == in_w`, the tap's valid outputs, read in line order, are
    /// one contiguous run `t0..t1` of the output plane that reads input `t + shift`, except the
    /// columns outside `cols`, which wrap to the neighbouring input line. `None`: no valid output.
    fn run(&self, out_w: usize, in_w: usize) -> Option<(usize, usize, isize)> {
        let ((ylo, yhi), (xlo, xhi)) = (self.rows, self.cols);
        (yhi > ylo && xhi > xlo).then(|| {
            let shift = self.off_y * in_w as isize + self.off_x;
            (ylo * out_w + xlo, (yhi - 1) * out_w + xhi, shift)
        })
    }

    /// Zeroes, in each valid output line of `plane`, the columns outside `cols`.
    fn zero_wrapped<T: ConvScalar>(&self, plane: &mut [T], out_w: usize) {
        let (xlo, xhi) = self.cols;
        for oy in self.rows.0..self.rows.1 {
            let line = &mut plane[oy * out_w..][..out_w];
            zero_small(&mut line[..xlo]);
            zero_small(&mut line[xhi..]);
        }
    }
}

impl Geometry {
    /// Unit strides and equal input and output widths: every tap is one contiguous run.
    fn taps_are_runs(&self) -> bool {
        self.stride == [1, 1] && self.out_w == self.in_w
    }
}

/// Writes the im2col columns of one image (group `group`) into `col` at column `col0`; rows of
/// `col` are `ld` apart.
fn im2col<T: ConvScalar>(
    g: &Geometry,
    image: &[T],
    group: usize,
    col: &mut [T],
    ld: usize,
    col0: usize,
) {
    let (ow, sy, sx) = (g.out_w, g.stride[0], g.stride[1]);
    let runs = g.taps_are_runs();
    for_each_tap(g, group, |row, plane, tap| {
        let src = &image[plane * g.in_plane()..][..g.in_plane()];
        let dst = &mut col[row * ld + col0..][..g.out_plane()];
        if runs {
            match tap.run(ow, g.in_w) {
                Some((t0, t1, shift)) => {
                    let s0 = (t0 as isize + shift) as usize;
                    dst[..t0].fill(T::zero());
                    dst[t1..].fill(T::zero());
                    dst[t0..t1].copy_from_slice(&src[s0..s0 + (t1 - t0)]);
                    tap.zero_wrapped(dst, ow);
                }
                None => dst.fill(T::zero()),
            }
            return;
        }
        let (ylo, yhi) = tap.rows;
        let (xlo, xhi) = tap.cols;
        if xlo == xhi {
            // The tap reads only padding.
            dst.fill(T::zero());
            return;
        }
        dst[..ylo * ow].fill(T::zero());
        dst[yhi * ow..].fill(T::zero());
        for oy in ylo..yhi {
            let line = &mut dst[oy * ow..][..ow];
            let iy = (oy * sy) as isize + tap.off_y;
            let src_line = &src[iy as usize * g.in_w..][..g.in_w];
            zero_small(&mut line[..xlo]);
            zero_small(&mut line[xhi..]);
            if sx == 1 {
                let ix0 = (xlo as isize + tap.off_x) as usize;
                line[xlo..xhi].copy_from_slice(&src_line[ix0..ix0 + (xhi - xlo)]);
            } else {
                for ox in xlo..xhi {
                    line[ox] = src_line[((ox * sx) as isize + tap.off_x) as usize];
                }
            }
        }
    });
}

/// The adjoint of [`im2col`]: adds the columns of one image back into its input-shaped gradient.
/// The columns are scratch: entries that no input position receives may be zeroed on the way.
fn col2im_add<T: ConvScalar>(
    g: &Geometry,
    col: &mut [T],
    ld: usize,
    col0: usize,
    group: usize,
    image_grad: &mut [T],
) {
    let (ow, sy, sx) = (g.out_w, g.stride[0], g.stride[1]);
    let in_plane = g.in_plane();
    let runs = g.taps_are_runs();
    for_each_tap(g, group, |row, plane, tap| {
        let src = &mut col[row * ld + col0..][..g.out_plane()];
        let dst = &mut image_grad[plane * in_plane..][..in_plane];
        if runs {
            if let Some((t0, t1, shift)) = tap.run(ow, g.in_w) {
                // Wrapped columns would land on the neighbouring line: add zero there instead.
                tap.zero_wrapped(src, ow);
                let s0 = (t0 as isize + shift) as usize;
                for (d, &v) in dst[s0..s0 + (t1 - t0)].iter_mut().zip(&src[t0..t1]) {
                    *d += v;
                }
            }
            return;
        }
        let (xlo, xhi) = tap.cols;
        if xlo == xhi {
            return; // The tap reads only padding.
        }
        for oy in tap.rows.0..tap.rows.1 {
            let line = &src[oy * ow..][..ow];
            let iy = (oy * sy) as isize + tap.off_y;
            let dst_line = &mut dst[iy as usize * g.in_w..][..g.in_w];
            if sx == 1 {
                let ix0 = (xlo as isize + tap.off_x) as usize;
                for (d, &s) in dst_line[ix0..ix0 + (xhi - xlo)]
                    .iter_mut()
                    .zip(&line[xlo..xhi])
                {
                    *d += s;
                }
            } else {
                for ox in xlo..xhi {
                    dst_line[((ox * sx) as isize + tap.off_x) as usize] += line[ox];
                }
            }
        }
    });
}

/// `chan[c, j·S + p] = images[j][c, p]` for the `nb` images of a chunk.
fn pack_channels<T: ConvScalar>(images: &[T], channels: usize, plane: usize, chan: &mut [T]) {
    if channels * plane == 0 {
        return;
    }
    let nb = images.len() / (channels * plane);
    let ld = nb * plane;
    for j in 0..nb {
        for c in 0..channels {
            chan[c * ld + j * plane..][..plane]
                .copy_from_slice(&images[(j * channels + c) * plane..][..plane]);
        }
    }
}

/// The inverse of [`pack_channels`].
fn unpack_channels<T: ConvScalar>(chan: &[T], channels: usize, plane: usize, images: &mut [T]) {
    if channels * plane == 0 {
        return;
    }
    let nb = images.len() / (channels * plane);
    let ld = nb * plane;
    for j in 0..nb {
        for c in 0..channels {
            images[(j * channels + c) * plane..][..plane]
                .copy_from_slice(&chan[c * ld + j * plane..][..plane]);
        }
    }
}

/// A row-major matrix view for gemm: element (r, c) at `ptr + r·rs + c·cs`.
#[derive(Clone, Copy)]
struct Mat<T> {
    ptr: *const T,
    rs: isize,
    cs: isize,
}

impl<T> Mat<T> {
    fn rows(ptr: *const T, ld: usize) -> Self {
        Mat {
            ptr,
            rs: ld as isize,
            cs: 1,
        }
    }
    fn transposed(ptr: *const T, ld: usize) -> Self {
        Mat {
            ptr,
            rs: 1,
            cs: ld as isize,
        }
    }
}

/// `dst[m×n] (row stride ld) = lhs[m×k] · rhs[k×n]`, or `+=` when `accumulate`.
///
/// # Safety
/// The views must be valid for the given sizes and `dst` must not alias `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm<T: ConvScalar>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    ld: usize,
    accumulate: bool,
    lhs: Mat<T>,
    rhs: Mat<T>,
    parallelism: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: the destination is zero (or unchanged when accumulating).
        if !accumulate {
            for r in 0..m {
                unsafe { core::ptr::write_bytes(dst.add(r * ld), 0, n) };
            }
        }
        return;
    }
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            ld as isize,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Per-worker scratch buffers, grown on demand.
#[derive(Default)]
struct Scratch<T> {
    col: Vec<T>,
    chan: Vec<T>,
}

fn grow<T: ConvScalar>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::zero());
    }
    &mut buf[..len]
}

/// Runs `work(first_image, chunk, scratch, parallelism)` over the chunks of `out` (each chunk
/// `chunk_len` elements, one run of `nb` images). Chunks run in parallel when there are at least
/// as many as threads; otherwise sequentially with a parallel gemm.
fn for_each_chunk<T: ConvScalar>(
    out: &mut [T],
    chunk_len: usize,
    nb: usize,
    work: impl Fn(usize, &mut [T], &mut Scratch<T>, gemm::Parallelism) + Send + Sync,
) {
    if chunk_len == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        if out.len().div_ceil(chunk_len) >= rayon::current_num_threads() {
            out.par_chunks_mut(chunk_len)
                .enumerate()
                .for_each_init(Scratch::default, |scratch, (i, chunk)| {
                    work(i * nb, chunk, scratch, gemm::Parallelism::None)
                });
            return;
        }
    }
    let mut scratch = Scratch::default();
    for (i, chunk) in out.chunks_mut(chunk_len).enumerate() {
        work(i * nb, chunk, &mut scratch, gemm_parallelism());
    }
}

fn gemm_parallelism() -> gemm::Parallelism {
    #[cfg(feature = "rayon")]
    {
        gemm::Parallelism::Rayon(0)
    }
    #[cfg(not(feature = "rayon"))]
    {
        gemm::Parallelism::None
    }
}

fn tensor<T: ConvScalar>(data: Vec<T>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape)),
        T::dtype(),
    )
}

fn forward_impl<T: ConvScalar>(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    let out = Geometry::forward_output(xs, ws, options);
    let g = Geometry::new(xs, ws, out, options);
    let (xd, wd): (&[T], &[T]) = (x.storage(), weight.storage());
    let (k, s, cog) = (g.k(), g.out_plane(), g.c_out_group());
    let nb = g.images_per_chunk();
    let mut output = vec![T::zero(); g.batch * g.out_image()];
    for_each_chunk(
        &mut output,
        nb * g.out_image(),
        nb,
        |b0, out_chunk, scratch, par| {
            let n = out_chunk.len() / g.out_image();
            let cols = n * s;
            let images = &xd[b0 * g.in_image()..][..n * g.in_image()];
            let chan = if n > 1 {
                grow(&mut scratch.chan, g.c_out * cols).as_mut_ptr()
            } else {
                out_chunk.as_mut_ptr()
            };
            for group in 0..g.groups {
                let rhs = if n == 1 && g.is_pointwise() {
                    images[group * k * s..].as_ptr()
                } else {
                    let col = grow(&mut scratch.col, k * cols);
                    for j in 0..n {
                        im2col(&g, &images[j * g.in_image()..], group, col, cols, j * s);
                    }
                    col.as_ptr()
                };
                // SAFETY: `chan` holds c_out × cols elements, W_group is c_out_group × k, `rhs` is
                // k × cols; the destination is a scratch or output buffer distinct from both.
                unsafe {
                    gemm(
                        cog,
                        cols,
                        k,
                        chan.add(group * cog * cols),
                        cols,
                        false,
                        Mat::rows(wd[group * cog * k..].as_ptr(), k),
                        Mat::rows(rhs, cols),
                        par,
                    );
                }
            }
            if n > 1 {
                unpack_channels(&scratch.chan[..g.c_out * cols], g.c_out, s, out_chunk);
            }
        },
    );
    if let Some(bias) = bias {
        let bias = bias.to_contiguous();
        let bd: &[T] = bias.storage();
        assert_eq!(bd.len(), g.c_out, "conv2d: bias length must equal c_out");
        for image in output.chunks_mut(g.out_image().max(1)) {
            for (plane, &b) in image.chunks_mut(s.max(1)).zip(bd) {
                plane.iter_mut().for_each(|v| *v += b);
            }
        }
    }
    tensor(output, vec![g.batch, g.c_out, g.out_h, g.out_w])
}

fn x_backward_impl<T: ConvScalar>(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let dy = output_grad.to_contiguous();
    let (xs, ws, ys) = (
        x.layout().shape(),
        weight.layout().shape(),
        dy.layout().shape(),
    );
    let g = Geometry::new(xs, ws, [ys[2], ys[3]], options);
    let (wd, dyd): (&[T], &[T]) = (weight.storage(), dy.storage());
    let (k, s, cog) = (g.k(), g.out_plane(), g.c_out_group());
    let nb = g.images_per_chunk();
    let mut dx = vec![T::zero(); g.batch * g.in_image()];
    for_each_chunk(
        &mut dx,
        nb * g.in_image(),
        nb,
        |b0, dx_chunk, scratch, par| {
            let n = dx_chunk.len() / g.in_image();
            let cols = n * s;
            let grads = &dyd[b0 * g.out_image()..][..n * g.out_image()];
            let chan = if n > 1 {
                let chan = grow(&mut scratch.chan, g.c_out * cols);
                pack_channels(grads, g.c_out, s, chan);
                chan.as_ptr()
            } else {
                grads.as_ptr()
            };
            for group in 0..g.groups {
                // dcol = W_groupᵀ · dy_group: k × cols.
                let lhs = Mat::transposed(wd[group * cog * k..].as_ptr(), k);
                // SAFETY: `chan` holds c_out × cols elements and W_group is c_out_group × k; the
                // destination (dx or the col scratch) is distinct from both.
                unsafe {
                    let rhs = Mat::rows(chan.add(group * cog * cols), cols);
                    if n == 1 && g.is_pointwise() {
                        let dst = dx_chunk[group * k * s..].as_mut_ptr();
                        gemm(k, cols, cog, dst, cols, false, lhs, rhs, par);
                    } else {
                        let col = grow(&mut scratch.col, k * cols);
                        gemm(k, cols, cog, col.as_mut_ptr(), cols, false, lhs, rhs, par);
                        for j in 0..n {
                            let image_grad = &mut dx_chunk[j * g.in_image()..][..g.in_image()];
                            col2im_add(&g, col, cols, j * s, group, image_grad);
                        }
                    }
                }
            }
        },
    );
    tensor(dx, vec![g.batch, g.c_in, g.in_h, g.in_w])
}

fn weight_backward_impl<T: ConvScalar>(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    let (xs, ws, ys) = (
        x.layout().shape(),
        weight.layout().shape(),
        dy.layout().shape(),
    );
    let g = Geometry::new(xs, ws, [ys[2], ys[3]], options);
    let (xd, dyd): (&[T], &[T]) = (x.storage(), dy.storage());
    let (k, s, cog) = (g.k(), g.out_plane(), g.c_out_group());
    let nb = g.images_per_chunk();
    let chunks = g.batch.div_ceil(nb);

    // Adds one chunk's contribution to `acc` (c_out × k).
    let add_chunk = |c: usize, acc: &mut [T], scratch: &mut Scratch<T>, par| {
        let b0 = c * nb;
        let n = nb.min(g.batch - b0);
        let cols = n * s;
        let images = &xd[b0 * g.in_image()..][..n * g.in_image()];
        let grads = &dyd[b0 * g.out_image()..][..n * g.out_image()];
        let chan = if n > 1 {
            let chan = grow(&mut scratch.chan, g.c_out * cols);
            pack_channels(grads, g.c_out, s, chan);
            chan.as_ptr()
        } else {
            grads.as_ptr()
        };
        for group in 0..g.groups {
            let col = if n == 1 && g.is_pointwise() {
                images[group * k * s..].as_ptr()
            } else {
                let col = grow(&mut scratch.col, k * cols);
                for j in 0..n {
                    im2col(&g, &images[j * g.in_image()..], group, col, cols, j * s);
                }
                col.as_ptr()
            };
            // SAFETY: dW_group (c_out_group × k, in `acc`) += dy_group (c_out_group × cols) ·
            // colᵀ (cols × k); `acc` is this worker's own buffer.
            unsafe {
                gemm(
                    cog,
                    k,
                    cols,
                    acc[group * cog * k..].as_mut_ptr(),
                    k,
                    true,
                    Mat::rows(chan.add(group * cog * cols), cols),
                    Mat::transposed(col, cols),
                    par,
                );
            }
        }
    };

    // The chunks are split into a fixed number of contiguous parts, each summed in order into its
    // own accumulator, and the parts are added in order: the result does not depend on the
    // number of threads or on how rayon schedules the work (a run is reproducible).
    let len = g.c_out * k;
    let parts = chunks.clamp(1, WEIGHT_GRAD_PARTS);
    let part = |p: usize, par| {
        let mut acc = vec![T::zero(); len];
        let mut scratch = Scratch::default();
        for c in (p * chunks / parts)..((p + 1) * chunks / parts) {
            add_chunk(c, &mut acc, &mut scratch, par);
        }
        acc
    };
    let partial: Vec<Vec<T>> = if parts > 1 && cfg!(feature = "rayon") {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            (0..parts)
                .into_par_iter()
                .map(|p| part(p, gemm::Parallelism::None))
                .collect()
        }
        #[cfg(not(feature = "rayon"))]
        unreachable!()
    } else {
        (0..parts).map(|p| part(p, gemm_parallelism())).collect()
    };
    let mut partial = partial.into_iter();
    let mut dw = partial.next().unwrap_or_else(|| vec![T::zero(); len]);
    for other in partial {
        dw.iter_mut().zip(&other).for_each(|(x, &y)| *x += y);
    }
    tensor(dw, ws.to_vec())
}

fn bias_backward_impl<T: ConvScalar>(output_grad: FlexTensor) -> FlexTensor {
    let dy = output_grad.to_contiguous();
    let ys = dy.layout().shape();
    let (c_out, plane) = (ys[1], ys[2] * ys[3]);
    let dyd: &[T] = dy.storage();
    let mut db = vec![T::zero(); c_out];
    if c_out * plane > 0 {
        for image in dyd.chunks(c_out * plane) {
            for (sum, channel) in db.iter_mut().zip(image.chunks(plane)) {
                channel.iter().for_each(|&v| *sum += v);
            }
        }
    }
    tensor(db, vec![c_out])
}

/// Runs `f` in f32 on half-precision inputs (f16, bf16), converting the result back: sums and
/// gemm accumulation in half precision would lose too much.
fn via_f32<const N: usize>(
    inputs: [FlexTensor; N],
    f: impl FnOnce([FlexTensor; N]) -> FlexTensor,
) -> FlexTensor {
    let dtype = inputs[0].dtype();
    f32_to_half(f(inputs.map(|t| half_to_f32(&t))), dtype)
}

/// Should conv2d's forward pass take this path? Depthwise and few-input-channel convolutions
/// keep burn-flex's direct kernels, which beat gemm there.
pub(crate) fn handles_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> bool {
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    let depthwise = options.groups > 1 && options.groups == xs[1] && ws[1] == 1;
    let few_inputs = options.groups == 1 && xs[1] <= 4 && ws[0] <= 16;
    !depthwise && !few_inputs
}

/// conv2d forward.
pub(crate) fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => forward_impl::<f32>(x, weight, bias, options),
        DType::F64 => forward_impl::<f64>(x, weight, bias, options),
        DType::F16 | DType::BF16 => {
            let bias = bias.map(|b| half_to_f32(&b));
            via_f32([x, weight], |[x, w]| {
                forward_impl::<f32>(x, w, bias, options)
            })
        }
        dtype => panic!("conv2d: unsupported dtype {dtype:?}"),
    }
}

/// Gradient of conv2d with respect to its input.
pub(crate) fn conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => x_backward_impl::<f32>(x, weight, output_grad, options),
        DType::F64 => x_backward_impl::<f64>(x, weight, output_grad, options),
        DType::F16 | DType::BF16 => via_f32([x, weight, output_grad], |[x, w, dy]| {
            x_backward_impl::<f32>(x, w, dy, options)
        }),
        dtype => panic!("conv2d_x_backward: unsupported dtype {dtype:?}"),
    }
}

/// Gradient of conv2d with respect to its weight.
pub(crate) fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => weight_backward_impl::<f32>(x, weight, output_grad, options),
        DType::F64 => weight_backward_impl::<f64>(x, weight, output_grad, options),
        DType::F16 | DType::BF16 => via_f32([x, weight, output_grad], |[x, w, dy]| {
            weight_backward_impl::<f32>(x, w, dy, options)
        }),
        dtype => panic!("conv2d_weight_backward: unsupported dtype {dtype:?}"),
    }
}

/// Gradient of conv2d with respect to its bias: the output gradient summed per channel.
pub(crate) fn conv2d_bias_backward(output_grad: FlexTensor) -> FlexTensor {
    match output_grad.dtype() {
        DType::F32 => bias_backward_impl::<f32>(output_grad),
        DType::F64 => bias_backward_impl::<f64>(output_grad),
        DType::F16 | DType::BF16 => via_f32([output_grad], |[dy]| bias_backward_impl::<f32>(dy)),
        dtype => panic!("conv2d_bias_backward: unsupported dtype {dtype:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_range_clips_to_the_input() {
        // 3 outputs, input of 4, stride 1, offset -1 (padding 1): o = 0 reads -1.
        assert_eq!(valid_range(3, 4, 1, -1), (1, 3));
        // Stride 2, offset 1: o·2 + 1 < 4 → o ∈ {0, 1}.
        assert_eq!(valid_range(3, 4, 2, 1), (0, 2));
        // Entirely outside.
        assert_eq!(valid_range(2, 1, 1, 3), (0, 0));
    }
}
