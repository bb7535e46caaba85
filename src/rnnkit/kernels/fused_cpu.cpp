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

#include <torch/extension.h>

#include <cmath>
#include <vector>

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

// y = x @ Wt (+ b): x (B, K), Wt (K, N), both contiguous; y (B, N) written in place.
void product(const at::Tensor& x, const at::Tensor& Wt, const at::Tensor& b, at::Tensor& y) {
  const int64_t B = x.size(0), K = x.size(1), N = Wt.size(1);
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
}

const bool* mask_row(const at::Tensor& mask, int64_t t, int64_t B) {
  return mask.defined() ? mask.data_ptr<bool>() + t * B : nullptr;
}

}  // namespace

// gx (T, B, 3H), h0 (B, H), w_hh (3H, H), b_hh (3H) or undefined, valid and zero (T, B)
// bool or undefined. Returns out (T, B, H), h_T (B, H) and what the backward reads:
// h_prev (T, B, H), the state each step started from, and r, z, n, gh_n (T, B, H).
std::vector<at::Tensor> gru_forward(const at::Tensor& gx_in, const at::Tensor& h0,
                                    const at::Tensor& w_hh, const c10::optional<at::Tensor>& b_opt,
                                    const c10::optional<at::Tensor>& valid_opt,
                                    const c10::optional<at::Tensor>& zero_opt, bool reverse) {
  const at::Tensor gx = gx_in.contiguous();
  const int64_t T = gx.size(0), B = gx.size(1), H = h0.size(1);
  const at::Tensor Wt = w_hh.t().contiguous();  // (H, 3H)
  const at::Tensor b = b_opt.has_value() ? b_opt->contiguous() : at::Tensor();
  const at::Tensor valid = valid_opt.has_value() ? valid_opt->contiguous() : at::Tensor();
  const at::Tensor zero = zero_opt.has_value() ? zero_opt->contiguous() : at::Tensor();
  auto opts = gx.options();
  at::Tensor out = at::empty({T, B, H}, opts);
  at::Tensor h_prev = at::empty({T, B, H}, opts);
  at::Tensor r = at::empty({T, B, H}, opts), z = at::empty({T, B, H}, opts);
  at::Tensor n = at::empty({T, B, H}, opts), ghn = at::empty({T, B, H}, opts);
  at::Tensor h = h0.contiguous().clone();
  at::Tensor gh = at::empty({B, 3 * H}, opts);
  const bool vector = B * H >= kVectorGates;
  at::Tensor rz = at::empty({B, 2 * H}, opts), nb = at::empty({B, H}, opts);
  AT_DISPATCH_FLOATING_TYPES(gx.scalar_type(), "rnnkit_gru_forward", [&] {
    using T_ = scalar_t;
    T_* hp = h.data_ptr<T_>();
    const T_* ghp = gh.data_ptr<T_>();
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
      product(h, Wt, b, gh);
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
        at::sigmoid_(rz);
        for (int64_t i = 0; i < B; ++i)
          for (int64_t j = 0; j < H; ++j)
            nbp[i * H + j] = g[i * 3 * H + 2 * H + j] + rzp[i * 2 * H + j] * ghp[i * 3 * H + 2 * H + j];
        at::tanh_(nb);
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
            const T_ hv = (T_(1) - zv) * nv + zv * hp[e];
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
                                     const c10::optional<at::Tensor>& zero_opt, bool reverse) {
  const int64_t T = r.size(0), B = r.size(1), H = r.size(2);
  auto opts = r.options();
  const at::Tensor W = w_hh.contiguous();  // (3H, H): dh = dgh @ W
  const at::Tensor dout = dout_opt.has_value() ? dout_opt->contiguous() : at::Tensor();
  const at::Tensor valid = valid_opt.has_value() ? valid_opt->contiguous() : at::Tensor();
  const at::Tensor zero = zero_opt.has_value() ? zero_opt->contiguous() : at::Tensor();
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
    const T_* bp = back.data_ptr<T_>();
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = reverse ? s : T - 1 - s;  // the forward's order, reversed
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
          const T_ g = dhp[e] + (dop != nullptr ? dop[e] : T_(0));  // dh'
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
          dp[e] = g * zv;
        }
      }
      at::Tensor dg_t = dgh.select(0, t);
      product(dg_t, W, none, back);  // W_h^T dgh: (B, 3H) @ (3H, H)
      for (int64_t e = 0; e < B * H; ++e) dhp[e] = dp[e] + bp[e];
      if (reset != nullptr) {  // the state was set to zero before this step
        for (int64_t i = 0; i < B; ++i)
          if (reset[i]) std::fill(dhp + i * H, dhp + (i + 1) * H, T_(0));
      }
    }
  });
  at::Tensor flat = dgh.view({T * B, 3 * H});
  at::Tensor dw = at::mm(flat.t(), h_prev.view({T * B, H}));
  at::Tensor db = flat.sum(0);
  return {dgx, dh, dw, db};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gru_forward", &gru_forward, "GRU recurrence, forward (rnnkit.kernels.fused)");
  m.def("gru_backward", &gru_backward, "GRU recurrence, backward (rnnkit.kernels.fused)");
}
