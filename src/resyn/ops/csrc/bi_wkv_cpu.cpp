// Bi-WKV on the CPU: one pass per direction over each sequence, vectorised across channels.
//
// For batch b, channel c and sequence positions t = 0..T-1:
//
//   y_t = (Σ_{i≠t} e^{−(|t−i|−1)w + k_i} v_i + e^{u+k_t} v_t) / (Σ_{i≠t} e^{−(|t−i|−1)w + k_i} + e^{u+k_t})
//
// Every running sum is a mantissa and a log offset (value = a·e^p) with p the running maximum of
// its terms' log weights, so nothing overflows for any finite input (the Vision-RWKV kernel's
// scheme). A step of the decayed sum, a' = a·e^{−w} + v·e^{k}, is
//
//   x = p − w;  n = max(x, k);  a' = a·e^{x−n} + v·e^{k−n};  p' = n     (one exp: e^{−|x−k|})
//
// Offsets are float64 (p − w repeated T times in float32 would drift by T·ulp(p)); mantissas
// and exponentials are in the accumulation type A (float32, or float64 for float64 inputs).
//
// Layout: k, v, grad and the output are (B, C, T) *logical* tensors with any strides, read and
// written in place: (B, T, C) tokens are passed permuted, chunks of a (B, 3C, T) product as they
// are. With grid_h > 0 the T axis holds an H x W grid in row-major order and the sequence runs
// column-major over it (position t is memory index (t mod H)·W + t div H): the vertical branch
// of Cross-Bi-WKV reads the same k and v as the horizontal one, with no transposed copies.
//
// Work is split into tasks of (batch, block of L channels); each task gathers tiles of positions
// into a small [position][lane] buffer, runs the lanes of one position as one vector, and keeps
// one direction's per-position results in a scratch buffer for the other direction's pass.
//
// Backward (g = ∂L/∂y, D_t the denominator, α_t = g_t/D_t, K_ti the weight of i in row t):
//   ∂L/∂v_i = e^{k_i}(Zα_i + e^u α_i),  Zα_i = Σ_{t≠i} e^{−(|t−i|−1)w} α_t
//   ∂L/∂k_i = e^{k_i}(v_i Zα_i − Z(αy)_i) + e^{u+k_i} α_i (v_i − y_i)
//   ∂L/∂u   = Σ_t e^{u+k_t} α_t (v_t − y_t)
//   ∂L/∂w   = −Σ_t α_t Σ_{i≠t} (|t−i|−1) K_ti (v_i − y_t)
// with the distance-weighted sums from S_{t+1} = e^{−w}(S_t + a_t) (same offset as a), and v_t − y_t
// formed from the off-diagonal parts so that it keeps its precision where y ≈ v. The forward saves
// y, top and den per position (D_t = den_t·e^{top_t}); α is scanned with log weight −top_t.


#include "bi_wkv_common.h"
#include "bi_wkv_general.h"
#include "bi_wkv_scaled.h"

namespace {

using namespace resyn_bi_wkv;

// ---------------------------------------------------------------------------------------------
// Where a task's saved rows start (see kSaveLanes).
int64_t saved_offset(int64_t b, int64_t c0, int64_t C, int64_t T) {
  const int64_t blocks = (C + kSaveLanes - 1) / kSaveLanes;
  return ((b * blocks + c0 / kSaveLanes) * T) * kSaveLanes + c0 % kSaveLanes;
}

int lanes_for(int64_t B, int64_t C) {
  // 16 lanes: one AVX-512 vector, and a whole 64-byte line of a token's channels per read (the
  // passes are bound by memory at image sizes: 8 lanes read each line twice, measured 48 ms
  // against 27 ms per call at T = 65,536, C = 48, one thread). 8 only when 16 would leave
  // threads idle.
  const int64_t tasks16 = B * ((C + 15) / 16);
  return tasks16 >= at::get_num_threads() ? 16 : 8;
}

Seq seq_of(const at::Tensor& t, int64_t grid_h) {
  const int64_t T = t.size(2);
  return {T, t.stride(1), t.stride(2), grid_h, grid_h > 0 ? T / grid_h : 0};
}

void check_inputs(const at::Tensor& k, const at::Tensor& v, const at::Tensor& w,
                  const at::Tensor& u, int64_t grid_h) {
  TORCH_CHECK(k.device().is_cpu(), "bi_wkv_cpu: tensors must be on the CPU");
  TORCH_CHECK(k.dim() == 3 && v.sizes() == k.sizes(), "bi_wkv_cpu: k, v must be (B, C, T) alike");
  TORCH_CHECK(k.scalar_type() == v.scalar_type(), "bi_wkv_cpu: k and v dtypes differ");
  TORCH_CHECK(w.numel() == k.size(1) && u.numel() == k.size(1), "bi_wkv_cpu: w, u must be (C,)");
  TORCH_CHECK(grid_h >= 0 && (grid_h == 0 || k.size(2) % grid_h == 0),
              "bi_wkv_cpu: grid_h must divide T");
}

template <int L, typename S, typename A>
void forward_impl(const at::Tensor& k, const at::Tensor& v, const at::Tensor& w,
                  const at::Tensor& u, int64_t grid_h, const at::Tensor& out, bool add,
                  const at::Tensor& ys, const at::Tensor& top, const at::Tensor& den) {
  const int64_t B = k.size(0), C = k.size(1), T = k.size(2);
  const int64_t nblk = (C + L - 1) / L;
  const Params prm = params_of(w, u);
  const View<S> kv = view_of<S>(k), vv = view_of<S>(v), ov = view_of<S>(out);
  const Seq seq = seq_of(k, grid_h), vseq = seq_of(v, grid_h), oseq = seq_of(out, grid_h);
  const bool save = ys.numel() > 0;
  A* ysp = save ? ys.data_ptr<A>() : nullptr;
  A* tpp = save ? top.data_ptr<A>() : nullptr;
  A* dnp = save ? den.data_ptr<A>() : nullptr;
  at::parallel_for(0, B * nblk, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / nblk, c0 = (task % nblk) * L;
      const int nl = static_cast<int>(std::min<int64_t>(L, C - c0));
      const int64_t off = saved_offset(b, c0, C, T);
      A* y_s = save ? ysp + off : nullptr;
      A* t_s = save ? tpp + off : nullptr;
      A* d_s = save ? dnp + off : nullptr;
      if (scaled_fits<A>(prm, c0, nl, T))
        forward_task_scaled<L, S, A>(kv, vv, ov, prm, b, c0, nl, seq, vseq, oseq, add, y_s, t_s, d_s);
      else
        forward_task<L, S, A>(kv, vv, ov, prm, b, c0, nl, seq, vseq, oseq, add, y_s, t_s, d_s);
    }
  });
}

// forward(k, v, w, u, grid_h, out, accumulate, ys, top, den): y into `out` (added when
// accumulate); ys/top/den ((B, ceil(C/16), T, 16) contiguous, in sequence order, accumulation
// dtype) are filled for the backward unless empty.
void bi_wkv_forward(const at::Tensor& k, const at::Tensor& v, const at::Tensor& w,
                    const at::Tensor& u, int64_t grid_h, const at::Tensor& out, bool accumulate,
                    const at::Tensor& ys, const at::Tensor& top, const at::Tensor& den) {
  check_inputs(k, v, w, u, grid_h);
  TORCH_CHECK(out.sizes() == k.sizes() && out.scalar_type() == k.scalar_type(),
              "bi_wkv_cpu: out must match k");
  if (k.numel() == 0) return;
  const int lanes = lanes_for(k.size(0), k.size(1));
  if (k.scalar_type() == at::kDouble) {
    if (lanes == 16) forward_impl<16, double, double>(k, v, w, u, grid_h, out, accumulate, ys, top, den);
    else forward_impl<8, double, double>(k, v, w, u, grid_h, out, accumulate, ys, top, den);
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, k.scalar_type(), "bi_wkv_forward", [&] {
    if (lanes == 16) forward_impl<16, scalar_t, float>(k, v, w, u, grid_h, out, accumulate, ys, top, den);
    else forward_impl<8, scalar_t, float>(k, v, w, u, grid_h, out, accumulate, ys, top, den);
  });
}

template <int L, typename S, typename A>
void backward_impl(const at::Tensor& k, const at::Tensor& v, const at::Tensor& w,
                   const at::Tensor& u, int64_t grid_h, const at::Tensor& grad,
                   const at::Tensor& ys, const at::Tensor& top, const at::Tensor& den,
                   const at::Tensor& gk, const at::Tensor& gv, bool add, const at::Tensor& stats) {
  const int64_t B = k.size(0), C = k.size(1), T = k.size(2);
  const int64_t nblk = (C + L - 1) / L;
  const Params prm = params_of(w, u);
  const View<S> kv = view_of<S>(k), vv = view_of<S>(v), gv_in = view_of<S>(grad);
  const View<A> gkv = view_of<A>(gk), gvv = view_of<A>(gv);
  const Seq seq = seq_of(k, grid_h), vseq = seq_of(v, grid_h), gseq = seq_of(grad, grid_h),
            oseq = seq_of(gk, grid_h);
  TORCH_CHECK(gk.strides() == gv.strides(), "bi_wkv_cpu: gk and gv strides differ");
  const A* ysp = ys.data_ptr<A>();
  const A* tpp = top.data_ptr<A>();
  const A* dnp = den.data_ptr<A>();
  double* st = stats.data_ptr<double>();  // (4, B, C): gw, gu, term max, grad_k max
  const int64_t plane = B * C;
  at::parallel_for(0, B * nblk, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / nblk, c0 = (task % nblk) * L;
      const int nl = static_cast<int>(std::min<int64_t>(L, C - c0));
      const int64_t off = saved_offset(b, c0, C, T), so = b * C + c0;
      const LaneStats lane{st + so, st + plane + so, st + 2 * plane + so, st + 3 * plane + so};
      if (scaled_fits<A>(prm, c0, nl, T))
        backward_task_scaled<L, S, A, A>(kv, vv, gv_in, gkv, gvv, prm, b, c0, nl, seq, vseq, gseq,
                                         oseq, add, ysp + off, tpp + off, dnp + off, lane);
      else
        backward_task<L, S, A, A>(kv, vv, gv_in, gkv, gvv, prm, b, c0, nl, seq, vseq, gseq, oseq,
                                  add, ysp + off, tpp + off, dnp + off, lane);
    }
  });
}

// backward(k, v, w, u, grid_h, grad, ys, top, den, gk, gv, accumulate, stats): ∂L/∂k and ∂L/∂v
// into gk, gv (accumulation dtype, added when accumulate); stats (4, B, C) float64 receives the
// per (batch, channel) shares of ∂L/∂w and ∂L/∂u and the cancellation guard's two maxima.
void bi_wkv_backward(const at::Tensor& k, const at::Tensor& v, const at::Tensor& w,
                     const at::Tensor& u, int64_t grid_h, const at::Tensor& grad,
                     const at::Tensor& ys, const at::Tensor& top, const at::Tensor& den,
                     const at::Tensor& gk, const at::Tensor& gv, bool accumulate,
                     const at::Tensor& stats) {
  check_inputs(k, v, w, u, grid_h);
  TORCH_CHECK(grad.sizes() == k.sizes() && grad.scalar_type() == k.scalar_type(),
              "bi_wkv_cpu: grad must match k");
  TORCH_CHECK(ys.is_contiguous() && top.is_contiguous() && den.is_contiguous(),
              "bi_wkv_cpu: saved tensors must be contiguous");
  TORCH_CHECK(stats.scalar_type() == at::kDouble && stats.is_contiguous() &&
                  stats.numel() == 4 * k.size(0) * k.size(1),
              "bi_wkv_cpu: stats must be (4, B, C) float64");
  if (k.numel() == 0) return;
  const int lanes = lanes_for(k.size(0), k.size(1));
  if (k.scalar_type() == at::kDouble) {
    if (lanes == 16) backward_impl<16, double, double>(k, v, w, u, grid_h, grad, ys, top, den, gk, gv, accumulate, stats);
    else backward_impl<8, double, double>(k, v, w, u, grid_h, grad, ys, top, den, gk, gv, accumulate, stats);
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, k.scalar_type(), "bi_wkv_backward", [&] {
    if (lanes == 16) backward_impl<16, scalar_t, float>(k, v, w, u, grid_h, grad, ys, top, den, gk, gv, accumulate, stats);
    else backward_impl<8, scalar_t, float>(k, v, w, u, grid_h, grad, ys, top, den, gk, gv, accumulate, stats);
  });
}

}  // namespace

TORCH_LIBRARY(resyn_cpu, m) {
  m.def(
      "bi_wkv_forward(Tensor k, Tensor v, Tensor w, Tensor u, int grid_h, Tensor(a!) out, "
      "bool accumulate, Tensor(b!) ys, Tensor(c!) top, Tensor(d!) den) -> ()");
  m.def(
      "bi_wkv_backward(Tensor k, Tensor v, Tensor w, Tensor u, int grid_h, Tensor grad, "
      "Tensor ys, Tensor top, Tensor den, Tensor(a!) gk, Tensor(b!) gv, bool accumulate, "
      "Tensor(c!) stats) -> ()");
}

TORCH_LIBRARY_IMPL(resyn_cpu, CPU, m) {
  m.impl("bi_wkv_forward", &bi_wkv_forward);
  m.impl("bi_wkv_backward", &bi_wkv_backward);
}