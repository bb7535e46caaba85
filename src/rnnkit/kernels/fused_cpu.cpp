// The GRU recurrence of one direction of one layer, forward and backward written out
// (backpropagation through time, chapter 10.7), for the CPU.
//
// The input half of every gate, gx = W_i x + b_i, is computed for all T steps at once
// outside (one GEMM, as cuDNN does); so are the input and W_i gradients from dgx. What is
// left is the part that must run step by step, here in one C++ loop with no per-step
// Python or autograd work: per step one product with W_h, and elementwise gate math.
//
// Forward, per step t (torch's GRU, rnnkit.cells.gru):
//   gh = W_h h + b_h
//   r = sigmoid(gx_r + gh_r), z = sigmoid(gx_z + gh_z), n = tanh(gx_n + r * gh_n)
//   h' = (1 - z) * n + z * h
// Backward, with dh' the gradient reaching h' (from step t+1 and from the output at t):
//   dn = dh' (1 - z),  dz = dh' (h - n),  dh = dh' z + W_h^T dgh
//   da_n = dn (1 - n^2),  da_r = da_n gh_n r (1 - r),  da_z = dz z (1 - z)
//   dgx = (da_r, da_z, da_n),  dgh = (da_r, da_z, da_n r)
//   dW_h = sum_t dgh_t^T h_t,  db_h = sum_t dgh_t   (one GEMM over all steps, after the loop)
// Lengths: a step past a sequence's end keeps its state and outputs zero; a reset sets the
// state to zero before the step (the masks of rnnkit.backends.stack).

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace {

// Products small enough for a plain loop; larger ones go to the BLAS behind at::mm.
constexpr int64_t kSmallProduct = 1 << 15;
// From this many units per step (B*H) the gates' sigmoid and tanh run as ATen's vectorised
// kernels on the whole step; below, a scalar loop costs less than their dispatch.
constexpr int64_t kVectorGates = 256;

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// The gates' sigmoid and tanh over n contiguous values, in place. float32 on a CPU with
// AVX2 and FMA (the extension is then built with them, rnnkit.kernels.fused): eight at a
// time, exp by Cody-Waite range reduction and Cephes' degree-5 polynomial (within 2 ulp
// of expf), tanh(x) = 2 sigmoid(2x) - 1, a NaN staying NaN. float64, and float32
// elsewhere: std::exp and std::tanh, value by value.
template <typename T>
void sigmoid_n(T* p, int64_t n) {
  for (int64_t e = 0; e < n; ++e) p[e] = sigmoid(p[e]);
}

template <typename T>
void tanh_n(T* p, int64_t n) {
  for (int64_t e = 0; e < n; ++e) p[e] = std::tanh(p[e]);
}

#if defined(__AVX2__) && defined(__FMA__)
constexpr bool kSimd = true;

inline __m256 exp8(__m256 x) {
  // x = k ln 2 + r, |r| <= ln 2 / 2; exp x = 2^k exp r. min/max take x second, so that a
  // NaN passes through.
  x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x);
  x = _mm256_max_ps(_mm256_set1_ps(-88.3762626647949f), x);
  __m256 k = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f),
                                             _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

template <>
void sigmoid_n<float>(float* p, int64_t n) {
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) _mm256_storeu_ps(p + e, sigmoid8(_mm256_loadu_ps(p + e)));
  for (; e < n; ++e) p[e] = sigmoid(p[e]);
}

template <>
void tanh_n<float>(float* p, int64_t n) {
  const __m256 two = _mm256_set1_ps(2.0f), one = _mm256_set1_ps(1.0f);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    const __m256 s = sigmoid8(_mm256_mul_ps(two, _mm256_loadu_ps(p + e)));
    _mm256_storeu_ps(p + e, _mm256_fmsub_ps(two, s, one));
  }
  for (; e < n; ++e) p[e] = std::tanh(p[e]);
}
#else
constexpr bool kSimd = false;
#endif

// Whether the gates of scalar type T take sigmoid_n/tanh_n's vector path.
template <typename T>
constexpr bool simd_gates() {
  return kSimd && std::is_same<T, float>::value;
}

// y (B, N) = x (B, K) @ Wt (K, N) [+ b (N)], as B*K axpy's over contiguous rows of Wt, so
// that the compiler vectorises over N without reordering any sum.
template <typename T>
void small_product(const T* x, const T* Wt, const T* b, T* y, int64_t B, int64_t K, int64_t N) {
  for (int64_t i = 0; i < B; ++i) {
    T* yi = y + i * N;
    if (b != nullptr) {
      for (int64_t n = 0; n < N; ++n) yi[n] = b[n];
    } else {
      for (int64_t n = 0; n < N; ++n) yi[n] = T(0);
    }
    const T* xi = x + i * K;
    for (int64_t k = 0; k < K; ++k) {
      const T xk = xi[k];
      const T* w = Wt + k * N;
      for (int64_t n = 0; n < N; ++n) yi[n] += xk * w[n];
    }
  }
}

// From this many multiply-adds a float32 product goes to oneDNN's GEMM (the operator
// mkldnn::_linear_pointwise, y = x w^T + b), which torch's fused LSTM uses too, where
// rnnkit.kernels.gemm.enabled() says so: on an AMD EPYC it is 1.5-2.4 times faster there
// than at::mm's MKL, on an Intel Xeon slower (the same rule for the products outside this
// file). Python sets the flag before each call (set_onednn, rnnkit.kernels.fused).
constexpr int64_t kOneDNNProduct = 1 << 20;
std::atomic<bool> onednn_on{false};

const c10::OperatorHandle* onednn_linear() {
  static const std::optional<c10::OperatorHandle> op = [] {
    if (!at::hasMKLDNN()) return std::optional<c10::OperatorHandle>();
    return c10::Dispatcher::singleton().findOp({"mkldnn::_linear_pointwise", ""});
  }();
  return op.has_value() && onednn_on.load(std::memory_order_relaxed) ? &*op : nullptr;
}

// x (M, K) w^T (w: (N, K), any strides) + b through oneDNN, or an undefined tensor where
// that does not pay (not float32, fewer multiply-adds, no operator).
at::Tensor onednn_product(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!w.defined() || x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat ||
      x.size(0) * x.size(1) * w.size(0) < kOneDNNProduct)
    return at::Tensor();
  const c10::OperatorHandle* op = onednn_linear();
  if (op == nullptr) return at::Tensor();
  torch::jit::Stack stack{x, w, b.defined() ? c10::IValue(b) : c10::IValue(),
                          c10::IValue(std::string("none")),
                          c10::IValue(c10::List<std::optional<at::Scalar>>()), c10::IValue()};
  op->callBoxed(&stack);
  return stack[0].toTensor();
}

// w (N, K) made contiguous for oneDNN's product with `rows` rows, where that will pay;
// else an undefined tensor (product() then takes its other paths).
at::Tensor onednn_weight(const at::Tensor& w, int64_t rows) {
  if (w.scalar_type() != at::kFloat || rows * w.numel() < kOneDNNProduct ||
      onednn_linear() == nullptr)
    return at::Tensor();
  return w.contiguous();
}

// a^T b for a (M, P), b (M, Q), both row-major: the weight gradient, a sum over all M =
// T*B steps and samples. Through oneDNN where that pays, which copies its first operand
// to rows (it takes the second with any strides): so the narrower one goes first, and the
// (small) result is transposed where it comes out the other way round.
at::Tensor gradient_mm(const at::Tensor& a, const at::Tensor& b) {
  if (a.size(1) <= b.size(1)) {
    at::Tensor y = onednn_product(a.t(), b.t(), at::Tensor());
    if (y.defined()) return y;
  } else {
    at::Tensor y = onednn_product(b.t(), a.t(), at::Tensor());
    if (y.defined()) return y.t().contiguous();
  }
  return at::mm(a.t(), b);
}

// x @ Wt (+ b): x (B, K), Wt (K, N), both contiguous, written into y (B, N) - or, from
// oneDNN, a new (B, N) tensor (no copy into y): the result is the tensor returned. W is
// Wt^T as a contiguous (N, K) tensor, for oneDNN's product (undefined: not used).
at::Tensor product(const at::Tensor& x, const at::Tensor& Wt, const at::Tensor& b, at::Tensor& y,
                   const at::Tensor& W = at::Tensor()) {
  const int64_t B = x.size(0), K = x.size(1), N = Wt.size(1);
  if (B * K * N >= kOneDNNProduct && W.defined()) {
    at::Tensor r = onednn_product(x, W, b);
    if (r.defined()) return r;
  }
  if (B * K * N <= kSmallProduct) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnkit_small_product", [&] {
      small_product<scalar_t>(x.data_ptr<scalar_t>(), Wt.data_ptr<scalar_t>(),
                              b.defined() ? b.data_ptr<scalar_t>() : nullptr,
                              y.data_ptr<scalar_t>(), B, K, N);
    });
  } else if (b.defined()) {
    at::addmm_out(y, b, x, Wt);
  } else {
    at::mm_out(y, x, Wt);
  }
  return y;
}

// An optional argument, contiguous, or an undefined tensor where it is absent.
at::Tensor given(const c10::optional<at::Tensor>& t) {
  return t.has_value() ? t->contiguous() : at::Tensor();
}

const bool* mask_row(const at::Tensor& mask, int64_t t, int64_t B) {
  return mask.defined() ? mask.data_ptr<bool>() + t * B : nullptr;
}

// Layer normalisation of each of the B rows of v (B, N) in place, as F.layer_norm (biased
// variance, eps 1e-5): v = x^ w + b (+ extra), keeping x^ (B, N) and 1 / sqrt(var + eps) (B).
template <typename T>
void normalise(T* v, T* xhat, T* rstd, const T* w, const T* b, const T* extra, int64_t B,
               int64_t N) {
  for (int64_t i = 0; i < B; ++i) {
    T* row = v + i * N;
    T* xr = xhat + i * N;
    T mean = T(0), var = T(0);
    // The sums in SIMD lanes (-fopenmp-simd): their order changes, their value only in
    // the last bits.
#pragma omp simd reduction(+ : mean)
    for (int64_t n = 0; n < N; ++n) mean += row[n];
    mean /= T(N);
#pragma omp simd reduction(+ : var)
    for (int64_t n = 0; n < N; ++n) var += (row[n] - mean) * (row[n] - mean);
    const T r = T(1) / std::sqrt(var / T(N) + T(1e-5));
    rstd[i] = r;
    if (extra != nullptr) {
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) {
        xr[n] = (row[n] - mean) * r;
        row[n] = xr[n] * w[n] + b[n] + extra[n];
      }
    } else {
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) {
        xr[n] = (row[n] - mean) * r;
        row[n] = xr[n] * w[n] + b[n];
      }
    }
  }
}

// The gradient of v from that of LN(v) (dy, N wide), given x^ and rstd of the row:
// dv = rstd (dx - mean(dx) - x^ mean(dx x^)) with dx = dy w; adds dy x^ to dw.
template <typename T>
void normalise_backward(const T* dy, const T* xr, T r, const T* w, T* dw, T* dv, int64_t N) {
  T s1 = T(0), s2 = T(0);
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t n = 0; n < N; ++n) {
    const T dx = dy[n] * w[n];
    s1 += dx;
    s2 += dx * xr[n];
    dw[n] += dy[n] * xr[n];
  }
  s1 /= T(N);
  s2 /= T(N);
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) dv[n] = r * (dy[n] * w[n] - s1 - xr[n] * s2);
}

}  // namespace

// gx (T, B, 3H), h0 (B, H), w_hh (3H, H), b_hh (3H) or undefined, valid and zero (T, B)
// bool or undefined. Returns out (T, B, H), h_T (B, H) and what the backward reads:
// h_prev (T, B, H), the state each step started from, and r, z, n, gh_n (T, B, H).
// The options torch's GRU lacks, as rnnkit.cells.base applies them: mask (B, H) multiplies
// h^{t-1} in the recurrent product only (variational recurrent dropout; the z h^{t-1} term
// reads h^{t-1} itself); keep (T, B, H) bool are zoneout's training masks (a set unit keeps
// its previous value) and zoneout = p the evaluation blend p h^{t-1} + (1 - p) h'.
std::vector<at::Tensor> gru_forward(const at::Tensor& gx_in, const at::Tensor& h0,
                                    const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_opt,
                                    const c10::optional<at::Tensor>& valid_opt,
                                    const c10::optional<at::Tensor>& zero_opt, bool reverse,
                                    const c10::optional<at::Tensor>& mask_opt,
                                    const c10::optional<at::Tensor>& keep_opt, double zoneout) {
  const at::Tensor gx = gx_in.contiguous();
  const int64_t T = gx.size(0), B = gx.size(1), H = h0.size(1);
  const at::Tensor Wt = w_hh.t().contiguous();  // (H, 3H)
  const at::Tensor Wn = onednn_weight(w_hh, gx.size(1));
  const at::Tensor b = given(b_opt);
  const at::Tensor valid = given(valid_opt);
  const at::Tensor zero = given(zero_opt);
  auto opts = gx.options();
  at::Tensor out = at::empty({T, B, H}, opts);
  at::Tensor h_prev = at::empty({T, B, H}, opts);
  at::Tensor r = at::empty({T, B, H}, opts), z = at::empty({T, B, H}, opts);
  at::Tensor n = at::empty({T, B, H}, opts), ghn = at::empty({T, B, H}, opts);
  at::Tensor h = h0.contiguous().clone();
  at::Tensor gh = at::empty({B, 3 * H}, opts);
  at::Tensor rz = at::empty({B, 2 * H}, opts), nb = at::empty({B, H}, opts);
  const at::Tensor mask = given(mask_opt), keep_mask = given(keep_opt);
  at::Tensor hin = at::empty({B, H}, opts);
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_gru_forward", [&] {
    using T_ = scalar_t;
    constexpr bool simd = simd_gates<T_>();
    const bool vector = simd || B * H >= kVectorGates;
    T_* hp = h.data_ptr<T_>();
    T_* hinp = hin.data_ptr<T_>();
    const T_* mp = mask.defined() ? mask.data_ptr<T_>() : nullptr;
    const T_ p = static_cast<T_>(zoneout);
    T_* rzp = rz.data_ptr<T_>();
    T_* nbp = nb.data_ptr<T_>();
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = reverse ? T - 1 - s : s;
      const bool* reset = mask_row(zero, t, B);
      const bool* inside = mask_row(valid, t, B);
      if (reset != nullptr) {
        for (int64_t i = 0; i < B; ++i)
          if (reset[i]) std::fill(hp + i * H, hp + (i + 1) * H, T_(0));
      }
      std::copy(hp, hp + B * H, h_prev.data_ptr<T_>() + t * B * H);
      if (mp != nullptr) for (int64_t e = 0; e < B * H; ++e) hinp[e] = hp[e] * mp[e];
      const at::Tensor gh_t = product(mp != nullptr ? hin : h, Wt, b, gh, Wn);
      const T_* ghp = gh_t.data_ptr<T_>();
      const bool* kh = keep_mask.defined() ? keep_mask.data_ptr<bool>() + t * B * H : nullptr;
      const T_* g = gx.data_ptr<T_>() + t * B * 3 * H;
      T_* o = out.data_ptr<T_>() + t * B * H;
      T_* rp = r.data_ptr<T_>() + t * B * H;
      T_* zp = z.data_ptr<T_>() + t * B * H;
      T_* np = n.data_ptr<T_>() + t * B * H;
      T_* gnp = ghn.data_ptr<T_>() + t * B * H;
      if (vector) {  // the same gate values, the transcendentals vectorised
        for (int64_t i = 0; i < B; ++i)
          for (int64_t j = 0; j < 2 * H; ++j)
            rzp[i * 2 * H + j] = g[i * 3 * H + j] + ghp[i * 3 * H + j];
        if (simd) sigmoid_n(rzp, B * 2 * H); else at::sigmoid_(rz);
        for (int64_t i = 0; i < B; ++i)
          for (int64_t j = 0; j < H; ++j)
            nbp[i * H + j] = g[i * 3 * H + 2 * H + j] + rzp[i * 2 * H + j] * ghp[i * 3 * H + 2 * H + j];
        if (simd) tanh_n(nbp, B * H); else at::tanh_(nb);
      }
      for (int64_t i = 0; i < B; ++i) {
        const bool keep = inside != nullptr && !inside[i];
        for (int64_t j = 0; j < H; ++j) {
          const int64_t e = i * H + j, row = i * 3 * H;
          const T_ hn = ghp[row + 2 * H + j];
          T_ rv, zv, nv;
          if (vector) {
            rv = rzp[i * 2 * H + j];
            zv = rzp[i * 2 * H + H + j];
            nv = nbp[e];
          } else {
            rv = sigmoid(g[row + j] + ghp[row + j]);
            zv = sigmoid(g[row + H + j] + ghp[row + H + j]);
            nv = std::tanh(g[row + 2 * H + j] + rv * hn);
          }
          rp[e] = rv;
          zp[e] = zv;
          np[e] = nv;
          gnp[e] = hn;
          if (keep) {
            o[e] = T_(0);  // past the end: zero output, the state carried
          } else {
            T_ hv = (T_(1) - zv) * nv + zv * hp[e];
            if (kh != nullptr) {  // zoneout, training
              if (kh[e]) hv = hp[e];
            } else if (p > T_(0)) {  // zoneout, evaluation
              hv = p * hp[e] + (T_(1) - p) * hv;
            }
            o[e] = hv;
            hp[e] = hv;
          }
        }
      }
    }
  });
  return {out, h, h_prev, r, z, n, ghn};
}

// The gradients of gru_forward's inputs from those of out and h_T (either may be
// undefined: zero): dgx (T, B, 3H), dh0 (B, H), dw_hh (3H, H), db_hh (3H).
std::vector<at::Tensor> gru_backward(const c10::optional<at::Tensor>& dout_opt,
                                     const c10::optional<at::Tensor>& dh_opt,
                                     const at::Tensor& w_hh, const at::Tensor& h_prev,
                                     const at::Tensor& r, const at::Tensor& z, const at::Tensor& n,
                                     const at::Tensor& ghn,
                                     const c10::optional<at::Tensor>& valid_opt,
                                     const c10::optional<at::Tensor>& zero_opt, bool reverse,
                                     const c10::optional<at::Tensor>& mask_opt,
                                     const c10::optional<at::Tensor>& keep_opt, double zoneout) {
  const int64_t T = r.size(0), B = r.size(1), H = r.size(2);
  const at::Tensor mask = given(mask_opt), keep_mask = given(keep_opt);
  auto opts = r.options();
  const at::Tensor W = w_hh.contiguous();  // (3H, H): dh = dgh @ W
  const at::Tensor Wn = onednn_weight(w_hh.t(), r.size(1));
  const at::Tensor dout = given(dout_opt);
  const at::Tensor valid = given(valid_opt);
  const at::Tensor zero = given(zero_opt);
  at::Tensor dh = dh_opt.has_value() ? dh_opt->contiguous().clone() : at::zeros({B, H}, opts);
  at::Tensor dgx = at::empty({T, B, 3 * H}, opts);
  at::Tensor dgh = at::empty({T, B, 3 * H}, opts);
  at::Tensor direct = at::empty({B, H}, opts);
  at::Tensor back = at::empty({B, H}, opts);
  const at::Tensor none;
  AT_DISPATCH_FLOATING_TYPES(r.scalar_type(), "rnnkit_gru_backward", [&] {
    using T_ = scalar_t;
    T_* dhp = dh.data_ptr<T_>();
    T_* dp = direct.data_ptr<T_>();
    const T_* mp = mask.defined() ? mask.data_ptr<T_>() : nullptr;
    const T_ p = static_cast<T_>(zoneout);
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = reverse ? s : T - 1 - s;  // the forward's order, reversed
      const bool* kh = keep_mask.defined() ? keep_mask.data_ptr<bool>() + t * B * H : nullptr;
      const bool* reset = mask_row(zero, t, B);
      const bool* inside = mask_row(valid, t, B);
      const int64_t at = t * B * H;
      const T_* rp = r.data_ptr<T_>() + at;
      const T_* zp = z.data_ptr<T_>() + at;
      const T_* np = n.data_ptr<T_>() + at;
      const T_* gnp = ghn.data_ptr<T_>() + at;
      const T_* hp = h_prev.data_ptr<T_>() + at;
      const T_* dop = dout.defined() ? dout.data_ptr<T_>() + at : nullptr;
      T_* dx = dgx.data_ptr<T_>() + t * B * 3 * H;
      T_* dg = dgh.data_ptr<T_>() + t * B * 3 * H;
      for (int64_t i = 0; i < B; ++i) {
        const int64_t row = i * 3 * H;
        if (inside != nullptr && !inside[i]) {  // past the end: the gradient passes through
          std::fill(dx + row, dx + row + 3 * H, T_(0));
          std::fill(dg + row, dg + row + 3 * H, T_(0));
          std::copy(dhp + i * H, dhp + (i + 1) * H, dp + i * H);
          continue;
        }
        for (int64_t j = 0; j < H; ++j) {
          const int64_t e = i * H + j;
          const T_ dhz = dhp[e] + (dop != nullptr ? dop[e] : T_(0));  // dh', after zoneout
          T_ g = dhz, kept = T_(0);  // zoneout's split: to h' and straight to h^{t-1}
          if (kh != nullptr) {
            if (kh[e]) { g = T_(0); kept = dhz; }
          } else if (p > T_(0)) {
            g = (T_(1) - p) * dhz;
            kept = p * dhz;
          }
          const T_ rv = rp[e], zv = zp[e], nv = np[e];
          const T_ dn = g * (T_(1) - zv);
          const T_ dz = g * (hp[e] - nv);
          const T_ da_n = dn * (T_(1) - nv * nv);
          const T_ da_r = da_n * gnp[e] * rv * (T_(1) - rv);
          const T_ da_z = dz * zv * (T_(1) - zv);
          dx[row + j] = da_r;
          dx[row + H + j] = da_z;
          dx[row + 2 * H + j] = da_n;
          dg[row + j] = da_r;
          dg[row + H + j] = da_z;
          dg[row + 2 * H + j] = da_n * rv;
          dp[e] = g * zv + kept;
        }
      }
      at::Tensor dg_t = dgh.select(0, t);
      const at::Tensor back_t = product(dg_t, W, none, back, Wn);  // W_h^T dgh
      const T_* bp = back_t.data_ptr<T_>();
      for (int64_t e = 0; e < B * H; ++e)  // m (W_h^T dgh): recurrent dropout's mask
        dhp[e] = dp[e] + (mp != nullptr ? mp[e] : T_(1)) * bp[e];
      if (reset != nullptr) {  // the state was set to zero before this step
        for (int64_t i = 0; i < B; ++i)
          if (reset[i]) std::fill(dhp + i * H, dhp + (i + 1) * H, T_(0));
      }
    }
  });
  at::Tensor flat = dgh.view({T * B, 3 * H});
  at::Tensor hin = mask.defined() ? h_prev * mask.unsqueeze(0) : h_prev;
  at::Tensor dw = gradient_mm(flat, hin.reshape({T * B, H}));
  at::Tensor db = flat.sum(0);
  return {dgx, dh, dw, db};
}

// The LSTM recurrence (rnnkit.cells.lstm, torch's gate order i, f, g = c~, o) of one
// direction, with the options torch's kernels lack: variational recurrent dropout (one
// (B, H) mask on h^{t-1} for the whole sequence) and zoneout (training: per-step masks,
// a unit whose mask is set keeps its previous value; evaluation: the expectation
// p s^{t-1} + (1 - p) s^t). Forward, per step:
//   a = gx + W_h (m * h) + b_h;  i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
//   c' = f c + i g;  h' = o tanh(c');  then zoneout mixes (h', c') with (h, c)
// Backward (10.7, 10.15), with dh', dc' the gradients reaching h', c':
//   do = dh' tanh(c');  dc = dc' + dh' o (1 - tanh^2 c');  df = dc c;  di = dc g;
//   dg = dc i;  dc_prev = dc f (+ zoneout's share);  da = (di i(1-i), df f(1-f),
//   dg (1-g^2), do o(1-o));  dh_prev = m * (W_h^T da) (+ zoneout's share)
// keep_h, keep_c: (T, B, H) bool zoneout masks (training) or undefined; zoneout: p for
// the evaluation blend (0: none).
// Layer normalisation (Ba et al. 2016, rnnkit.cells.lstm with layer_norm=True), when
// ln_hh_w is given: the recurrent product is normalised over its 4H units before b_h,
//   a = gx + LN_hh(W_h (m * h)) + b_h,  LN(v) = (v - mean v) / sqrt(var v + eps) * w + b,
// and the cell state over its H units inside the output: h' = o tanh(LN_c(c')); c' itself
// is what the next step reads. The normalised values and 1 / sqrt(var + eps) of both are
// kept for the backward:
//   dv = rstd (dx - mean(dx) - x^ mean(dx x^)),  dx = dy * w,  dw = sum dy x^,  db = sum dy
// (the gradient of a normalisation through its mean and variance).
// A projection (Sak et al. 2014, proj_size P, w_hr (P, H)) makes h = W_hr (o tanh c'), P
// wide - h0, the output, keep_h and the mask are then (., P), w_hh (4H, P) - with
// d(o tanh c') = dh W_hr per step and dW_hr = sum_t dh_t^T (o tanh c')_t after the loop.
std::vector<at::Tensor> lstm_forward(const at::Tensor& gx_in, const at::Tensor& h0,
                                     const at::Tensor& c0, const at::Tensor& w_hh,
                                     const c10::optional<at::Tensor>& b_opt,
                                     const c10::optional<at::Tensor>& mask_opt,
                                     const c10::optional<at::Tensor>& keep_h_opt,
                                     const c10::optional<at::Tensor>& keep_c_opt, double zoneout,
                                     const c10::optional<at::Tensor>& valid_opt,
                                     const c10::optional<at::Tensor>& zero_opt, bool reverse,
                                     const c10::optional<at::Tensor>& ln_hh_w_opt,
                                     const c10::optional<at::Tensor>& ln_hh_b_opt,
                                     const c10::optional<at::Tensor>& ln_c_w_opt,
                                     const c10::optional<at::Tensor>& ln_c_b_opt,
                                     const c10::optional<at::Tensor>& w_hr_opt) {
  const at::Tensor gx = gx_in.contiguous();
  // With a projection (Sak et al. 2014) h is W_hr (o tanh c'), R = P wide; else R = H.
  const at::Tensor w_hr = given(w_hr_opt);
  const bool proj = w_hr.defined();
  const int64_t T = gx.size(0), B = gx.size(1), H = c0.size(1), R = h0.size(1);
  const at::Tensor Wt = w_hh.t().contiguous();  // (R, 4H)
  const at::Tensor Wr_t = proj ? w_hr.t().contiguous() : at::Tensor();  // (H, P)
  const at::Tensor Wr_n = proj ? onednn_weight(w_hr, gx.size(1)) : at::Tensor();
  const at::Tensor Wn = onednn_weight(w_hh, gx.size(1));
  const at::Tensor ln_hh_w = given(ln_hh_w_opt), ln_hh_b = given(ln_hh_b_opt);
  const at::Tensor ln_c_w = given(ln_c_w_opt), ln_c_b = given(ln_c_b_opt);
  const bool ln = ln_hh_w.defined();
  const at::Tensor b = given(b_opt);
  const at::Tensor mask = given(mask_opt);
  const at::Tensor keep_h = given(keep_h_opt);
  const at::Tensor keep_c = given(keep_c_opt);
  const at::Tensor valid = given(valid_opt);
  const at::Tensor zero = given(zero_opt);
  auto opts = gx.options();
  at::Tensor out = at::empty({T, B, R}, opts);
  at::Tensor h_prev = at::empty({T, B, R}, opts), c_prev = at::empty({T, B, H}, opts);
  // o tanh(c') before the projection, kept for its gradient (the output itself without)
  at::Tensor hpre = proj ? at::empty({T, B, H}, opts) : at::empty({0}, opts);
  at::Tensor hstep = at::empty({B, H}, opts), hproj = at::empty({B, R}, opts);
  at::Tensor gates = at::empty({T, B, 4 * H}, opts);  // i, f, g, o after their nonlinearity
  at::Tensor tc = at::empty({T, B, H}, opts);         // tanh(c')
  at::Tensor h = h0.contiguous().clone(), c = c0.contiguous().clone();
  at::Tensor hin = at::empty({B, R}, opts), gh = at::empty({B, 4 * H}, opts);
  at::Tensor cnew = at::empty({B, H}, opts);  // c' of the step, before zoneout
  // Layer norm: x^ and rstd of the recurrent product and of c', per step and row.
  at::Tensor xh = ln ? at::empty({T, B, 4 * H}, opts) : at::empty({0}, opts);
  at::Tensor rh = ln ? at::empty({T, B}, opts) : at::empty({0}, opts);
  at::Tensor xc = ln ? at::empty({T, B, H}, opts) : at::empty({0}, opts);
  at::Tensor rc = ln ? at::empty({T, B}, opts) : at::empty({0}, opts);
  at::Tensor lnc = ln ? at::empty({B, H}, opts) : cnew;  // LN_c(c'): what tanh reads
  const at::Tensor none;
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_lstm_forward", [&] {
    using T_ = scalar_t;
    constexpr bool simd = simd_gates<T_>();
    const bool vector = B * H >= kVectorGates;
    T_* hp = h.data_ptr<T_>();
    T_* cp = c.data_ptr<T_>();
    T_* hinp = hin.data_ptr<T_>();
    const T_* mp = mask.defined() ? mask.data_ptr<T_>() : nullptr;
    const T_ p = static_cast<T_>(zoneout);
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = reverse ? T - 1 - s : s;
      const bool* reset = mask_row(zero, t, B);
      const bool* inside = mask_row(valid, t, B);
      if (reset != nullptr) {
        for (int64_t i = 0; i < B; ++i)
          if (reset[i]) {
            std::fill(hp + i * R, hp + (i + 1) * R, T_(0));
            std::fill(cp + i * H, cp + (i + 1) * H, T_(0));
          }
      }
      std::copy(hp, hp + B * R, h_prev.data_ptr<T_>() + t * B * R);
      std::copy(cp, cp + B * H, c_prev.data_ptr<T_>() + t * B * H);
      if (mp != nullptr) for (int64_t e = 0; e < B * R; ++e) hinp[e] = hp[e] * mp[e];
      const at::Tensor gh_t = product(mp != nullptr ? hin : h, Wt, ln ? none : b, gh, Wn);
      const T_* ghp = gh_t.data_ptr<T_>();
      if (ln) {  // gh = LN_hh(W_h h) + b_h, row by row, in place
        normalise(gh_t.data_ptr<T_>(), xh.data_ptr<T_>() + t * B * 4 * H,
                  rh.data_ptr<T_>() + t * B, ln_hh_w.data_ptr<T_>(), ln_hh_b.data_ptr<T_>(),
                  b.defined() ? b.data_ptr<T_>() : nullptr, B, 4 * H);
      }
      const T_* g = gx.data_ptr<T_>() + t * B * 4 * H;
      T_* a = gates.data_ptr<T_>() + t * B * 4 * H;
      for (int64_t e = 0; e < B * 4 * H; ++e) a[e] = g[e] + ghp[e];
      at::Tensor a_t = gates.select(0, t);
      if (simd) {
        for (int64_t i = 0; i < B; ++i) {
          T_* row = a + i * 4 * H;
          sigmoid_n(row, 2 * H);  // i, f
          tanh_n(row + 2 * H, H);  // g
          sigmoid_n(row + 3 * H, H);  // o
        }
      } else if (vector) {
        at::Tensor blocks = a_t.view({B, 4, H});
        blocks.select(1, 0).sigmoid_();
        blocks.select(1, 1).sigmoid_();
        blocks.select(1, 2).tanh_();
        blocks.select(1, 3).sigmoid_();
      } else {
        for (int64_t i = 0; i < B; ++i) {
          T_* row = a + i * 4 * H;
          for (int64_t j = 0; j < H; ++j) {
            row[j] = sigmoid(row[j]);
            row[H + j] = sigmoid(row[H + j]);
            row[2 * H + j] = std::tanh(row[2 * H + j]);
            row[3 * H + j] = sigmoid(row[3 * H + j]);
          }
        }
      }
      T_* tcp = tc.data_ptr<T_>() + t * B * H;
      T_* o = out.data_ptr<T_>() + t * B * R;
      const bool* kh = keep_h.defined() ? keep_h.data_ptr<bool>() + t * B * R : nullptr;
      const bool* kc = keep_c.defined() ? keep_c.data_ptr<bool>() + t * B * H : nullptr;
      T_* cnp = cnew.data_ptr<T_>();
      for (int64_t i = 0; i < B; ++i) {
        const T_* row = a + i * 4 * H;
        for (int64_t j = 0; j < H; ++j)
          cnp[i * H + j] = row[H + j] * cp[i * H + j] + row[j] * row[2 * H + j];
      }
      if (ln) {  // tanh reads LN_c(c')
        std::copy(cnp, cnp + B * H, lnc.data_ptr<T_>());
        normalise(lnc.data_ptr<T_>(), xc.data_ptr<T_>() + t * B * H, rc.data_ptr<T_>() + t * B,
                  ln_c_w.data_ptr<T_>(), ln_c_b.data_ptr<T_>(), static_cast<const T_*>(nullptr),
                  B, H);
      }
      if (simd) {
        std::copy(lnc.data_ptr<T_>(), lnc.data_ptr<T_>() + B * H, tcp);
        tanh_n(tcp, B * H);
      } else if (vector) {
        at::Tensor tc_t = tc.select(0, t);
        at::tanh_out(tc_t, lnc);
      } else {
        const T_* lp = lnc.data_ptr<T_>();
        for (int64_t e = 0; e < B * H; ++e) tcp[e] = std::tanh(lp[e]);
      }
      // c': zoneout mixes it with c; past a sample's end c is kept. And h' = o tanh(c'),
      // projected by W_hr where there is a projection.
      T_* hq = proj ? hpre.data_ptr<T_>() + t * B * H : hstep.data_ptr<T_>();
      for (int64_t i = 0; i < B; ++i) {
        const bool stay = inside != nullptr && !inside[i];
        const T_* row = a + i * 4 * H;
        for (int64_t j = 0; j < H; ++j) {
          const int64_t e = i * H + j;
          hq[e] = row[3 * H + j] * tcp[e];
          T_ cz = cnp[e];
          if (kc != nullptr) {  // zoneout, training
            if (kc[e]) cz = cp[e];
          } else if (p > T_(0)) {  // zoneout, evaluation
            cz = p * cp[e] + (T_(1) - p) * cz;
          }
          if (!stay) cp[e] = cz;
        }
      }
      at::Tensor h_src = proj ? product(hpre.select(0, t), Wr_t, none, hproj, Wr_n) : hstep;
      const T_* hs = h_src.data_ptr<T_>();
      for (int64_t i = 0; i < B; ++i) {
        const bool stay = inside != nullptr && !inside[i];
        for (int64_t j = 0; j < R; ++j) {
          const int64_t e = i * R + j;
          T_ hn = hs[e];
          if (kh != nullptr) {  // zoneout, training
            if (kh[e]) hn = hp[e];
          } else if (p > T_(0)) {  // zoneout, evaluation
            hn = p * hp[e] + (T_(1) - p) * hn;
          }
          if (stay) {
            o[e] = T_(0);
          } else {
            o[e] = hn;
            hp[e] = hn;
          }
        }
      }
    }
  });
  return {out, h, c, h_prev, c_prev, gates, tc, xh, rh, xc, rc, hpre};
}

// Gradients of lstm_forward's inputs from those of out, h_T and c_T (each may be
// undefined): dgx (T, B, 4H), dh0 (B, R), dc0 (B, H), dw_hh (4H, R), db_hh (4H), with layer
// norm those of ln_hh's and ln_c's weight and bias, and with a projection dw_hr (P, H)
// (empty without).
std::vector<at::Tensor> lstm_backward(
    const c10::optional<at::Tensor>& dout_opt, const c10::optional<at::Tensor>& dh_opt,
    const c10::optional<at::Tensor>& dc_opt, const at::Tensor& w_hh, const at::Tensor& h_prev,
    const at::Tensor& c_prev, const at::Tensor& gates, const at::Tensor& tc,
    const c10::optional<at::Tensor>& mask_opt, const c10::optional<at::Tensor>& keep_h_opt,
    const c10::optional<at::Tensor>& keep_c_opt, double zoneout,
    const c10::optional<at::Tensor>& valid_opt, const c10::optional<at::Tensor>& zero_opt,
    bool reverse, const c10::optional<at::Tensor>& ln_hh_w_opt,
    const c10::optional<at::Tensor>& ln_c_w_opt, const c10::optional<at::Tensor>& xh_opt,
    const c10::optional<at::Tensor>& rh_opt, const c10::optional<at::Tensor>& xc_opt,
    const c10::optional<at::Tensor>& rc_opt, const c10::optional<at::Tensor>& w_hr_opt,
    const c10::optional<at::Tensor>& hpre_opt) {
  const int64_t T = tc.size(0), B = tc.size(1), H = tc.size(2), R = h_prev.size(2);
  const at::Tensor w_hr = given(w_hr_opt), hpre = given(hpre_opt);
  const bool proj = w_hr.defined();
  // d(o tanh c') = (the gradient reaching h) W_hr, one product per step
  const at::Tensor Wr = proj ? w_hr.contiguous() : at::Tensor();  // (P, H)
  const at::Tensor Wr_n = proj ? onednn_weight(w_hr.t(), tc.size(1)) : at::Tensor();
  const at::Tensor ln_hh_w = given(ln_hh_w_opt), ln_c_w = given(ln_c_w_opt);
  const at::Tensor xh = given(xh_opt), rh = given(rh_opt), xc = given(xc_opt), rc = given(rc_opt);
  const bool ln = ln_hh_w.defined();
  auto opts = tc.options();
  const at::Tensor W = w_hh.contiguous();  // (4H, R)
  const at::Tensor Wn = onednn_weight(w_hh.t(), tc.size(1));
  const at::Tensor dout = given(dout_opt);
  const at::Tensor mask = given(mask_opt);
  const at::Tensor keep_h = given(keep_h_opt);
  const at::Tensor keep_c = given(keep_c_opt);
  const at::Tensor valid = given(valid_opt);
  const at::Tensor zero = given(zero_opt);
  at::Tensor dh = dh_opt.has_value() ? dh_opt->contiguous().clone() : at::zeros({B, R}, opts);
  at::Tensor dc = dc_opt.has_value() ? dc_opt->contiguous().clone() : at::zeros({B, H}, opts);
  at::Tensor dgh = at::empty({T, B, 4 * H}, opts);
  // With layer norm the gates' gradient (dgx, and b_h's) differs from the recurrent
  // product's (dgh, before LN_hh); without, they are one tensor.
  at::Tensor dgx = ln ? at::zeros({T, B, 4 * H}, opts) : dgh;
  at::Tensor dln_hh_w = ln ? at::zeros({4 * H}, opts) : at::empty({0}, opts);
  at::Tensor dln_c_w = ln ? at::zeros({H}, opts) : at::empty({0}, opts);
  at::Tensor dln_c_b = ln ? at::zeros({H}, opts) : at::empty({0}, opts);
  at::Tensor direct = at::empty({B, R}, opts), back = at::empty({B, R}, opts);
  // The share of dh' that reaches the step's h (after zoneout), per step where it is kept
  // for dW_hr; and its image through W_hr.
  at::Tensor dhn_all = proj ? at::empty({T, B, R}, opts) : at::empty({B, R}, opts);
  at::Tensor dpre = at::empty({B, H}, opts);
  const at::Tensor none;
  AT_DISPATCH_FLOATING_TYPES(tc.scalar_type(), "rnnkit_lstm_backward", [&] {
    using T_ = scalar_t;
    std::vector<T_> dln(H), dcn(H);  // per row: dL/d(tanh's argument), dL/dc' (pass 1)
    T_* dlnp = dln.data();
    T_* dcnp = dcn.data();
    const T_* lncw = ln ? ln_c_w.data_ptr<T_>() : nullptr;
    const T_* lnhw = ln ? ln_hh_w.data_ptr<T_>() : nullptr;
    const T_* xhp = ln ? xh.data_ptr<T_>() : nullptr;
    const T_* rhp = ln ? rh.data_ptr<T_>() : nullptr;
    const T_* xcp = ln ? xc.data_ptr<T_>() : nullptr;
    const T_* rcp = ln ? rc.data_ptr<T_>() : nullptr;
    T_* dlncw = ln ? dln_c_w.data_ptr<T_>() : nullptr;
    T_* dlncb = ln ? dln_c_b.data_ptr<T_>() : nullptr;
    T_* dlnhw = ln ? dln_hh_w.data_ptr<T_>() : nullptr;
    T_* dgxp = ln ? dgx.data_ptr<T_>() : nullptr;
    T_* dhp = dh.data_ptr<T_>();
    T_* dcp = dc.data_ptr<T_>();
    T_* dp = direct.data_ptr<T_>();
    const T_* mp = mask.defined() ? mask.data_ptr<T_>() : nullptr;
    const T_ p = static_cast<T_>(zoneout);
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = reverse ? s : T - 1 - s;
      const bool* reset = mask_row(zero, t, B);
      const bool* inside = mask_row(valid, t, B);
      const int64_t at = t * B * H, atr = t * B * R;
      const T_* a = gates.data_ptr<T_>() + t * B * 4 * H;
      const T_* tcp = tc.data_ptr<T_>() + at;
      const T_* cpp = c_prev.data_ptr<T_>() + at;
      const T_* dop = dout.defined() ? dout.data_ptr<T_>() + atr : nullptr;
      const bool* kh = keep_h.defined() ? keep_h.data_ptr<bool>() + atr : nullptr;
      const bool* kc = keep_c.defined() ? keep_c.data_ptr<bool>() + at : nullptr;
      T_* dg = dgh.data_ptr<T_>() + t * B * 4 * H;
      // Pass 0, over h's R units: zoneout's split of dh' into the share reaching the
      // step's h and the share kept for h^{t-1}; past a sample's end all of it passes.
      at::Tensor dhn_t = proj ? dhn_all.select(0, t) : dhn_all;
      T_* dhnp = dhn_t.data_ptr<T_>();
      for (int64_t i = 0; i < B; ++i) {
        if (inside != nullptr && !inside[i]) {
          std::copy(dhp + i * R, dhp + (i + 1) * R, dp + i * R);
          std::fill(dhnp + i * R, dhnp + (i + 1) * R, T_(0));
          continue;
        }
        for (int64_t j = 0; j < R; ++j) {
          const int64_t e = i * R + j;
          const T_ dhz = dhp[e] + (dop != nullptr ? dop[e] : T_(0));
          T_ dhn = dhz, dh_keep = T_(0);
          if (kh != nullptr) {
            if (kh[e]) { dhn = T_(0); dh_keep = dhz; }
          } else if (p > T_(0)) {
            dhn = (T_(1) - p) * dhz; dh_keep = p * dhz;
          }
          dhnp[e] = dhn;
          dp[e] = dh_keep;
        }
      }
      // What reaches o tanh(c'): through W_hr with a projection, as it is without.
      const at::Tensor dq_t = proj ? product(dhn_t, Wr, none, dpre, Wr_n) : dhn_t;
      const T_* dq = dq_t.data_ptr<T_>();
      for (int64_t i = 0; i < B; ++i) {
        const T_* row = a + i * 4 * H;
        T_* drow = dg + i * 4 * H;
        if (inside != nullptr && !inside[i]) {  // past the end: dc passes through too
          std::fill(drow, drow + 4 * H, T_(0));
          continue;
        }
        // Pass 1: zoneout's split of dc', and the gradient reaching the tanh of the
        // output (dln: of LN_c(c') with layer norm, of c' without).
        for (int64_t j = 0; j < H; ++j) {
          const int64_t e = i * H + j;
          const T_ dcz = dcp[e];
          const T_ dhn = dq[e];
          T_ dcn = dcz, dc_keep = T_(0);
          if (kc != nullptr) {
            if (kc[e]) { dcn = T_(0); dc_keep = dcz; }
          } else if (p > T_(0)) {
            dcn = (T_(1) - p) * dcz; dc_keep = p * dcz;
          }
          const T_ t_c = tcp[e];
          const T_ ov = row[3 * H + j];
          drow[3 * H + j] = dhn * t_c * ov * (T_(1) - ov);  // da_o
          dlnp[j] = dhn * ov * (T_(1) - t_c * t_c);
          dcnp[j] = dcn;
          dcp[e] = dc_keep;
        }
        if (ln) {  // through LN_c to c'
          for (int64_t j = 0; j < H; ++j) dlncb[j] += dlnp[j];
          normalise_backward(dlnp, xcp + (t * B + i) * H, rcp[t * B + i], lncw, dlncw, dlnp, H);
        }
        // Pass 2: dc = dc' + (the output's share); the gate deltas.
        for (int64_t j = 0; j < H; ++j) {
          const int64_t e = i * H + j;
          const T_ iv = row[j], fv = row[H + j], gv = row[2 * H + j];
          const T_ d_c = dcnp[j] + dlnp[j];
          drow[j] = d_c * gv * iv * (T_(1) - iv);                 // da_i
          drow[H + j] = d_c * cpp[e] * fv * (T_(1) - fv);         // da_f
          drow[2 * H + j] = d_c * iv * (T_(1) - gv * gv);         // da_g
          dcp[e] += d_c * fv;
        }
        if (ln) {  // dgx = da; through LN_hh to the recurrent product W_h (m * h)
          T_* gxrow = dgxp + t * B * 4 * H + i * 4 * H;
          std::copy(drow, drow + 4 * H, gxrow);
          normalise_backward(gxrow, xhp + (t * B + i) * 4 * H, rhp[t * B + i], lnhw, dlnhw,
                             drow, 4 * H);
        }
      }
      at::Tensor dg_t = dgh.select(0, t);
      const at::Tensor back_t = product(dg_t, W, none, back, Wn);  // W_h^T da
      const T_* bp = back_t.data_ptr<T_>();
      for (int64_t e = 0; e < B * R; ++e)
        dhp[e] = dp[e] + (mp != nullptr ? mp[e] * bp[e] : bp[e]);
      if (reset != nullptr) {
        for (int64_t i = 0; i < B; ++i)
          if (reset[i]) {
            std::fill(dhp + i * R, dhp + (i + 1) * R, T_(0));
            std::fill(dcp + i * H, dcp + (i + 1) * H, T_(0));
          }
      }
    }
  });
  at::Tensor flat = dgh.view({T * B, 4 * H});
  at::Tensor hin = mask.defined() ? h_prev * mask.unsqueeze(0) : h_prev;
  at::Tensor dw = gradient_mm(flat, hin.reshape({T * B, R}));
  // b_h and LN_hh's bias both add to the gates: their gradient is the gates' own.
  at::Tensor db = dgx.view({T * B, 4 * H}).sum(0);
  at::Tensor dln_hh_b = ln ? db.clone() : at::empty({0}, opts);
  // dW_hr = sum_t (share reaching h^t)^T (o tanh c')^t, one product after the loop
  at::Tensor dw_hr = proj ? gradient_mm(dhn_all.view({T * B, R}), hpre.reshape({T * B, H}))
                          : at::empty({0}, opts);
  return {dgx, dh, dc, dw, db, dln_hh_w, dln_hh_b, dln_c_w, dln_c_b, dw_hr};
}

// ---- The Elman RNN (10.1, 10.2) with the options torch's kernels lack -----------------
//
// Forward, per step: a = gx + W_h (m * h) + b_h;  h' = tanh(a) or relu(a);  then zoneout
// mixes h' with h, as for the GRU. Backward, with dh' the gradient reaching h' (after
// zoneout's split): da = dh' (1 - h'^2) for tanh, dh' [a > 0] for relu;
// dh^{t-1} = (zoneout's kept share) + m (W_h^T da);  dW_h = sum_t da^T (m h^{t-1}).
// relu: whether the nonlinearity is relu (else tanh). Returns out, h_T and what the
// backward reads: h_prev and h' before zoneout (T, B, H).
std::vector<at::Tensor> rnn_forward(const at::Tensor& gx_in, const at::Tensor& h0,
                                    const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_opt,
                                    const c10::optional<at::Tensor>& valid_opt,
                                    const c10::optional<at::Tensor>& zero_opt, bool reverse,
                                    const c10::optional<at::Tensor>& mask_opt,
                                    const c10::optional<at::Tensor>& keep_opt, double zoneout,
                                    bool relu) {
  const at::Tensor gx = gx_in.contiguous();
  const int64_t T = gx.size(0), B = gx.size(1), H = h0.size(1);
  const at::Tensor Wt = w_hh.t().contiguous();  // (H, H)
  const at::Tensor Wn = onednn_weight(w_hh, gx.size(1));
  const at::Tensor b = given(b_opt), valid = given(valid_opt), zero = given(zero_opt);
  const at::Tensor mask = given(mask_opt), keep_mask = given(keep_opt);
  auto opts = gx.options();
  at::Tensor out = at::empty({T, B, H}, opts), h_prev = at::empty({T, B, H}, opts);
  at::Tensor act = at::empty({T, B, H}, opts);  // h' before zoneout
  at::Tensor h = h0.contiguous().clone(), hin = at::empty({B, H}, opts);
  at::Tensor gh = at::empty({B, H}, opts);
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_rnn_forward", [&] {
    using T_ = scalar_t;
    T_* hp = h.data_ptr<T_>();
    T_* hinp = hin.data_ptr<T_>();
    const T_* mp = mask.defined() ? mask.data_ptr<T_>() : nullptr;
    const T_ p = static_cast<T_>(zoneout);
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = reverse ? T - 1 - s : s;
      const bool* reset = mask_row(zero, t, B);
      const bool* inside = mask_row(valid, t, B);
      if (reset != nullptr) {
        for (int64_t i = 0; i < B; ++i)
          if (reset[i]) std::fill(hp + i * H, hp + (i + 1) * H, T_(0));
      }
      std::copy(hp, hp + B * H, h_prev.data_ptr<T_>() + t * B * H);
      if (mp != nullptr) for (int64_t e = 0; e < B * H; ++e) hinp[e] = hp[e] * mp[e];
      const at::Tensor gh_t = product(mp != nullptr ? hin : h, Wt, b, gh, Wn);
      const T_* ghp = gh_t.data_ptr<T_>();
      const T_* g = gx.data_ptr<T_>() + t * B * H;
      const bool* kh = keep_mask.defined() ? keep_mask.data_ptr<bool>() + t * B * H : nullptr;
      T_* ap = act.data_ptr<T_>() + t * B * H;
      T_* o = out.data_ptr<T_>() + t * B * H;
      for (int64_t e = 0; e < B * H; ++e) {  // 10.2
        const T_ a = g[e] + ghp[e];
        ap[e] = relu ? (a > T_(0) ? a : T_(0)) : a;
      }
      if (!relu) tanh_n(ap, B * H);
      for (int64_t i = 0; i < B; ++i) {
        const bool stay = inside != nullptr && !inside[i];
        for (int64_t j = 0; j < H; ++j) {
          const int64_t e = i * H + j;
          const T_ hn = ap[e];
          T_ hv = hn;
          if (kh != nullptr) {  // zoneout, training
            if (kh[e]) hv = hp[e];
          } else if (p > T_(0)) {  // zoneout, evaluation
            hv = p * hp[e] + (T_(1) - p) * hn;
          }
          if (stay) {
            o[e] = T_(0);  // past the end: zero output, the state carried
          } else {
            o[e] = hv;
            hp[e] = hv;
          }
        }
      }
    }
  });
  return {out, h, h_prev, act};
}

// Gradients of rnn_forward's inputs from those of out and h_T (either may be undefined):
// dgx (T, B, H), dh0 (B, H), dw_hh (H, H), db_hh (H).
std::vector<at::Tensor> rnn_backward(const c10::optional<at::Tensor>& dout_opt,
                                     const c10::optional<at::Tensor>& dh_opt,
                                     const at::Tensor& w_hh, const at::Tensor& h_prev,
                                     const at::Tensor& act,
                                     const c10::optional<at::Tensor>& valid_opt,
                                     const c10::optional<at::Tensor>& zero_opt, bool reverse,
                                     const c10::optional<at::Tensor>& mask_opt,
                                     const c10::optional<at::Tensor>& keep_opt, double zoneout,
                                     bool relu) {
  const int64_t T = act.size(0), B = act.size(1), H = act.size(2);
  auto opts = act.options();
  const at::Tensor W = w_hh.contiguous();  // (H, H): dh = da @ W
  const at::Tensor Wn = onednn_weight(w_hh.t(), act.size(1));
  const at::Tensor dout = given(dout_opt), valid = given(valid_opt), zero = given(zero_opt);
  const at::Tensor mask = given(mask_opt), keep_mask = given(keep_opt);
  at::Tensor dh = dh_opt.has_value() ? dh_opt->contiguous().clone() : at::zeros({B, H}, opts);
  at::Tensor dgx = at::empty({T, B, H}, opts);
  at::Tensor direct = at::empty({B, H}, opts), back = at::empty({B, H}, opts);
  const at::Tensor none;
  AT_DISPATCH_FLOATING_TYPES(act.scalar_type(), "rnnkit_rnn_backward", [&] {
    using T_ = scalar_t;
    T_* dhp = dh.data_ptr<T_>();
    T_* dp = direct.data_ptr<T_>();
    const T_* mp = mask.defined() ? mask.data_ptr<T_>() : nullptr;
    const T_ p = static_cast<T_>(zoneout);
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = reverse ? s : T - 1 - s;
      const bool* reset = mask_row(zero, t, B);
      const bool* inside = mask_row(valid, t, B);
      const int64_t at = t * B * H;
      const T_* ap = act.data_ptr<T_>() + at;
      const T_* dop = dout.defined() ? dout.data_ptr<T_>() + at : nullptr;
      const bool* kh = keep_mask.defined() ? keep_mask.data_ptr<bool>() + at : nullptr;
      T_* da = dgx.data_ptr<T_>() + at;
      for (int64_t i = 0; i < B; ++i) {
        if (inside != nullptr && !inside[i]) {  // past the end: the gradient passes through
          std::fill(da + i * H, da + (i + 1) * H, T_(0));
          std::copy(dhp + i * H, dhp + (i + 1) * H, dp + i * H);
          continue;
        }
        for (int64_t j = 0; j < H; ++j) {
          const int64_t e = i * H + j;
          const T_ dhz = dhp[e] + (dop != nullptr ? dop[e] : T_(0));
          T_ g = dhz, kept = T_(0);
          if (kh != nullptr) {
            if (kh[e]) { g = T_(0); kept = dhz; }
          } else if (p > T_(0)) {
            g = (T_(1) - p) * dhz;
            kept = p * dhz;
          }
          const T_ hn = ap[e];
          da[e] = relu ? (hn > T_(0) ? g : T_(0)) : g * (T_(1) - hn * hn);  // through 10.2
          dp[e] = kept;
        }
      }
      at::Tensor da_t = dgx.select(0, t);
      const at::Tensor back_t = product(da_t, W, none, back, Wn);  // W_h^T da
      const T_* bp = back_t.data_ptr<T_>();
      for (int64_t e = 0; e < B * H; ++e)
        dhp[e] = dp[e] + (mp != nullptr ? mp[e] : T_(1)) * bp[e];
      if (reset != nullptr) {
        for (int64_t i = 0; i < B; ++i)
          if (reset[i]) std::fill(dhp + i * H, dhp + (i + 1) * H, T_(0));
      }
    }
  });
  at::Tensor flat = dgx.view({T * B, H});
  at::Tensor hin = mask.defined() ? h_prev * mask.unsqueeze(0) : h_prev;
  at::Tensor dw = gradient_mm(flat, hin.reshape({T * B, H}));
  at::Tensor db = flat.sum(0);
  return {dgx, dh, dw, db};
}

// ---- Generation: a character language model's whole sampling loop -------------------
//
// rnnkit.models.lm.CharLM.sample, once the prompt is read: per character, pick the next one
// from softmax(logits / temperature) (10.2), feed it back through every stacked layer
// (one step of 10.4-10.7 for the LSTM, of the GRU or of the Elman RNN 10.2), and score the
// next one with the head. At batch 1 every product is a matrix-vector one of a few
// hundred rows; run from Python each costs its dispatch, several times its arithmetic.
//
// The pick is the inverse of the cumulative distribution at a uniform u drawn outside
// (torch's generator), the rule rnnkit.models._sampling.pick_index follows too:
//   w_i = exp((l_i - max l) / temperature) for the allowed i (never the unknown class;
//   with top_k, only l_i >= the k-th largest), 0 for the others;
//   the pick is the first i with w_0 + ... + w_i > u * (w_0 + ... + w_{V-1}).
// Temperature 0 picks the largest allowed logit (the first, on a tie).

namespace {

template <typename T>
int64_t pick_index(const T* logits, int64_t V, double u, double temperature, int64_t top_k,
                   int64_t unk, std::vector<double>& w) {
  double top = -INFINITY;
  int64_t best = -1;
  for (int64_t i = 0; i < V; ++i)
    if (i != unk && double(logits[i]) > top) {
      top = double(logits[i]);
      best = i;
    }
  if (temperature == 0.0) return best;
  double kth = -INFINITY;
  if (top_k > 0 && top_k < V) {
    std::vector<double> sorted;
    sorted.reserve(V);
    for (int64_t i = 0; i < V; ++i)
      sorted.push_back(i == unk ? -INFINITY : double(logits[i]));
    std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(),
                     std::greater<double>());
    kth = sorted[top_k - 1];
  }
  double total = 0.0;
  for (int64_t i = 0; i < V; ++i) {
    const double l = double(logits[i]);
    w[i] = (i == unk || l < kth) ? 0.0 : std::exp((l - top) / temperature);
    total += w[i];
  }
  const double target = u * total;
  double sum = 0.0;
  int64_t last = best;
  for (int64_t i = 0; i < V; ++i) {
    if (w[i] == 0.0) continue;
    sum += w[i];
    last = i;
    if (sum > target) return i;
  }
  return last;  // u * total rounded up to the total
}

}  // namespace

// kind: 0 Elman RNN (tanh), 1 Elman RNN (relu), 2 LSTM, 3 GRU (torch's gate orders).
// table (V, G): row v is W_ih x + b_ih of layer 0 for the embedding of character v.
// w_ih_t[k-1] (H, G) and b_ih[k-1] (G): layers k >= 1; w_hh_t[k] (H, G) and b_hh[k] (G).
// head_t (H, V), head_b (V). h, c (L, H) and logits (V) are read and left as after the
// last character; c is empty unless kind is LSTM. Returns the picked ids (N,), N = u.size(0).
at::Tensor lm_generate(int64_t kind, const at::Tensor& table, std::vector<at::Tensor> w_ih_t,
                       std::vector<at::Tensor> b_ih, std::vector<at::Tensor> w_hh_t,
                       std::vector<at::Tensor> b_hh, const at::Tensor& head_t,
                       const at::Tensor& head_b, at::Tensor h, at::Tensor c, at::Tensor logits,
                       const at::Tensor& u, double temperature, int64_t top_k, int64_t unk) {
  const int64_t L = static_cast<int64_t>(w_hh_t.size());
  const int64_t H = h.size(1), V = table.size(0), G = table.size(1), N = u.size(0);
  TORCH_CHECK(L >= 1 && static_cast<int64_t>(w_ih_t.size()) == L - 1, "lm_generate: layers");
  TORCH_CHECK(h.is_contiguous() && logits.is_contiguous() && (kind != 2 || c.is_contiguous()),
              "lm_generate: h, c and logits must be contiguous");
  at::Tensor ids = at::empty({N}, at::kLong);
  int64_t* out = ids.data_ptr<int64_t>();
  const double* up = u.data_ptr<double>();
  // Products as in the recurrences above (product): a plain loop when small, else BLAS.
  at::Tensor gx_t = at::empty({1, G}, table.options()), gh_t = at::empty({1, G}, table.options());
  at::Tensor logits_row = logits.view({1, V});
  AT_DISPATCH_FLOATING_TYPES(table.scalar_type(), "lm_generate", [&] {
    using T_ = scalar_t;
    std::vector<double> w(V);
    T_* gx = gx_t.data_ptr<T_>();
    const T_* gh = gh_t.data_ptr<T_>();
    const T_* rows = table.data_ptr<T_>();
    T_* hp = h.data_ptr<T_>();
    T_* cp = kind == 2 ? c.data_ptr<T_>() : nullptr;
    const T_* lp = logits.data_ptr<T_>();
    for (int64_t n = 0; n < N; ++n) {
      const int64_t id = pick_index(lp, V, up[n], temperature, top_k, unk, w);
      out[n] = id;
      for (int64_t k = 0; k < L; ++k) {
        T_* hk = hp + k * H;
        if (k == 0)
          std::copy(rows + id * G, rows + (id + 1) * G, gx);
        else  // the layer's input: the layer below's new h
          product(h.select(0, k - 1).view({1, H}), w_ih_t[k - 1], b_ih[k - 1], gx_t);
        product(h.select(0, k).view({1, H}), w_hh_t[k], b_hh[k], gh_t);
        if (kind == 2) {  // i, f, g, o: c = f c + i g, h = o tanh(c) (10.4-10.7)
          T_* ck = cp + k * H;
          for (int64_t j = 0; j < H; ++j) {
            const T_ iv = sigmoid(gx[j] + gh[j]);
            const T_ fv = sigmoid(gx[H + j] + gh[H + j]);
            const T_ gv = std::tanh(gx[2 * H + j] + gh[2 * H + j]);
            const T_ ov = sigmoid(gx[3 * H + j] + gh[3 * H + j]);
            ck[j] = fv * ck[j] + iv * gv;
            hk[j] = ov * std::tanh(ck[j]);
          }
        } else if (kind == 3) {  // r, z, n: h = (1 - z) n + z h (10.17)
          for (int64_t j = 0; j < H; ++j) {
            const T_ rv = sigmoid(gx[j] + gh[j]);
            const T_ zv = sigmoid(gx[H + j] + gh[H + j]);
            const T_ nv = std::tanh(gx[2 * H + j] + rv * gh[2 * H + j]);
            hk[j] = (T_(1) - zv) * nv + zv * hk[j];
          }
        } else {  // h = tanh(a) or relu(a) (10.2)
          for (int64_t j = 0; j < H; ++j) {
            const T_ a = gx[j] + gh[j];
            hk[j] = kind == 0 ? std::tanh(a) : (a > T_(0) ? a : T_(0));
          }
        }
      }
      product(h.select(0, L - 1).view({1, H}), head_t, head_b, logits_row);
    }
  });
  return ids;
}

void set_onednn(bool on) { onednn_on.store(on, std::memory_order_relaxed); }

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_onednn", &set_onednn, "route large float32 products to oneDNN (rnnkit.kernels.gemm)");
  m.def("gru_forward", &gru_forward, "GRU recurrence, forward (rnnkit.kernels.fused)");
  m.def("gru_backward", &gru_backward, "GRU recurrence, backward (rnnkit.kernels.fused)");
  m.def("lstm_forward", &lstm_forward, "LSTM recurrence, forward (rnnkit.kernels.fused)");
  m.def("lstm_backward", &lstm_backward, "LSTM recurrence, backward (rnnkit.kernels.fused)");
  m.def("rnn_forward", &rnn_forward, "Elman RNN recurrence, forward (rnnkit.kernels.fused)");
  m.def("rnn_backward", &rnn_backward, "Elman RNN recurrence, backward (rnnkit.kernels.fused)");
  m.def("lm_generate", &lm_generate, "a character LM's sampling loop (rnnkit.models.lm)");
}
