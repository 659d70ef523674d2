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

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

namespace {

constexpr int64_t kTile = 64;
// Saved tensors (y, top, den per position) are laid out (B, ceil(C/16), T, 16): a task's lanes are
// contiguous at each position, for 8- and 16-lane tasks alike.
constexpr int64_t kSaveLanes = 16;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
// Running sums (mantissas) are float64: T sequential additions in float32 would lose up to T·eps
// of the sum (1e-2 at T = 2^18); exponentials and stored per-position values stay in A.
using M = double;

// e^x in float32 without a library call, so that loops over lanes vectorise: Cephes' polynomial
// on x − n·ln2, scaled by 2^n through the exponent bits. About 1 ulp; 0 below −87.3 (and for −inf);
// NaN in, NaN out. Arguments here are <= 0 (differences to running maxima) up to rounding.
inline float fexp(float x) {
  float xc = std::min(std::max(x, -87.3f), 88.0f);
  float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  float res = p * scale;
  res = x < -87.3f ? 0.0f : res;
  return x != x ? x : res;
}

inline double fexp(double x) { return std::exp(x); }

// One step of a decayed running sum: the factors for the old mantissa and for the new term.
template <typename A>
inline void step_factors(double& off, double w, double logw, A& old_f, A& new_f) {
  double x = off - w;
  double d = x - logw;
  A e = fexp(static_cast<A>(-std::fabs(d)));
  bool keep = d >= 0.0;
  old_f = keep ? A(1) : e;
  new_f = keep ? e : A(1);
  off = keep ? x : logw;
}

// Where the elements of one (batch, channel) sequence are: element t of the sequence is at
// base[c·sc + mem(t)·st], mem(t) = t or the column-major grid index.
struct Seq {
  int64_t T, sc, st, H, W;  // H = 0: mem(t) = t
};

// Gathers positions [t0, t0 + n) of L lanes (nl valid) into dst[n][L] as A; other lanes get 0.
template <int L, typename S, typename A>
void gather(const S* base, const Seq& s, int nl, int64_t t0, int64_t n, A* dst) {
  if (s.H == 0 && s.sc == 1) {  // lanes contiguous: position by position
    for (int64_t i = 0; i < n; ++i) {
      const S* src = base + (t0 + i) * s.st;
      for (int j = 0; j < L; ++j) dst[i * L + j] = j < nl ? static_cast<A>(src[j]) : A(0);
    }
    return;
  }
  for (int j = 0; j < L; ++j) {
    if (j >= nl) {
      for (int64_t i = 0; i < n; ++i) dst[i * L + j] = A(0);
      continue;
    }
    const S* row = base + j * s.sc;
    if (s.H == 0) {
      for (int64_t i = 0; i < n; ++i) dst[i * L + j] = static_cast<A>(row[(t0 + i) * s.st]);
    } else {
      int64_t r = t0 % s.H, col = t0 / s.H;
      for (int64_t i = 0; i < n; ++i) {
        dst[i * L + j] = static_cast<A>(row[(r * s.W + col) * s.st]);
        if (++r == s.H) { r = 0; ++col; }
      }
    }
  }
}

// Writes (or adds) src[n][L] to positions [t0, t0 + n) of the nl valid lanes.
template <int L, typename S, typename A>
void scatter(S* base, const Seq& s, int nl, int64_t t0, int64_t n, const A* src, bool add) {
  auto put = [add](S& d, A x) { d = add ? static_cast<S>(static_cast<A>(d) + x) : static_cast<S>(x); };
  if (s.H == 0 && s.sc == 1) {
    for (int64_t i = 0; i < n; ++i) {
      S* dst = base + (t0 + i) * s.st;
      for (int j = 0; j < nl; ++j) put(dst[j], src[i * L + j]);
    }
    return;
  }
  for (int j = 0; j < nl; ++j) {
    S* row = base + j * s.sc;
    if (s.H == 0) {
      for (int64_t i = 0; i < n; ++i) put(row[(t0 + i) * s.st], src[i * L + j]);
    } else {
      int64_t r = t0 % s.H, col = t0 / s.H;
      for (int64_t i = 0; i < n; ++i) {
        put(row[(r * s.W + col) * s.st], src[i * L + j]);
        if (++r == s.H) { r = 0; ++col; }
      }
    }
  }
}

// An uninitialised per-task buffer (every element is written before it is read).
template <typename T>
std::unique_ptr<T[]> scratch(int64_t n) {
  return std::unique_ptr<T[]>(new T[n]);
}

// A (B, C, T) logical tensor as pointer and strides.
template <typename S>
struct View {
  S* p;
  int64_t sb, sc, st;
  S* at(int64_t b, int64_t c) const { return p + b * sb + c * sc; }
};

template <typename S>
View<S> view_of(const at::Tensor& t) {
  return {t.data_ptr<S>(), t.stride(0), t.stride(1), t.stride(2)};
}

struct Params {
  std::vector<double> w, u;  // per channel
};

Params params_of(const at::Tensor& w, const at::Tensor& u) {
  auto wd = w.to(at::kDouble).contiguous();
  auto ud = u.to(at::kDouble).contiguous();
  Params p;
  p.w.assign(wd.data_ptr<double>(), wd.data_ptr<double>() + wd.numel());
  p.u.assign(ud.data_ptr<double>(), ud.data_ptr<double>() + ud.numel());
  return p;
}

// ---------------------------------------------------------------------------------------------
// Forward of one task: positions in order, L lanes from channel c0.
template <int L, typename S, typename A>
void forward_task(const View<S>& k, const View<S>& v, const View<S>& out, const Params& prm,
                  int64_t b, int64_t c0, int nl, const Seq& seq, const Seq& vseq, const Seq& oseq,
                  bool add, A* ys, A* top, A* den) {
  const int64_t T = seq.T;
  double w[L], u[L];
  for (int j = 0; j < L; ++j) {
    w[j] = j < nl ? prm.w[c0 + j] : 0.0;
    u[j] = j < nl ? prm.u[c0 + j] : 0.0;
  }
  // Reverse pass: the sums over i > t (mantissas c, d and offset q) at every position.
  auto rc = scratch<A>(T * L), rd = scratch<A>(T * L);
  auto rq = scratch<double>(T * L);
  alignas(64) A kt[kTile * L], vt[kTile * L], yt[kTile * L];
  {
    M c[L], d[L];
    double q[L];
    for (int j = 0; j < L; ++j) { c[j] = 0; d[j] = 0; q[j] = kNegInf; }
    for (int64_t end = T; end > 0; end -= kTile) {
      int64_t t0 = std::max<int64_t>(0, end - kTile), n = end - t0;
      gather<L>(k.at(b, c0), seq, nl, t0, n, kt);
      gather<L>(v.at(b, c0), vseq, nl, t0, n, vt);
      for (int64_t i = n - 1; i >= 0; --i) {
        const int64_t t = t0 + i;
#pragma omp simd
        for (int j = 0; j < L; ++j) {
          rc[t * L + j] = static_cast<A>(c[j]);
          rd[t * L + j] = static_cast<A>(d[j]);
          rq[t * L + j] = q[j];
          A fo, fn;
          step_factors<A>(q[j], w[j], static_cast<double>(kt[i * L + j]), fo, fn);
          c[j] = c[j] * M(fo) + M(vt[i * L + j]) * M(fn);
          d[j] = d[j] * M(fo) + M(fn);
        }
      }
    }
  }
  // Forward pass: the sums over i < t, combined with the stored ones and the diagonal term.
  M a[L], bb[L];
  double p[L];
  for (int j = 0; j < L; ++j) { a[j] = 0; bb[j] = 0; p[j] = kNegInf; }
  for (int64_t t0 = 0; t0 < T; t0 += kTile) {
    int64_t n = std::min(kTile, T - t0);
    gather<L>(k.at(b, c0), seq, nl, t0, n, kt);
    gather<L>(v.at(b, c0), vseq, nl, t0, n, vt);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = t0 + i;
#pragma omp simd
      for (int j = 0; j < L; ++j) {
        const double kk = static_cast<double>(kt[i * L + j]);
        const double q = rq[t * L + j];
        const double diag = u[j] + kk;
        // The common offset is rounded to the saved dtype, so that den·e^{top} is D exactly.
        const double tp = static_cast<double>(static_cast<A>(std::max(std::max(p[j], q), diag)));
        const A ep = fexp(static_cast<A>(p[j] - tp));
        const A eq = fexp(static_cast<A>(q - tp));
        const A ed = fexp(static_cast<A>(diag - tp));
        const A vv = vt[i * L + j];
        const M num = a[j] * M(ep) + M(rc[t * L + j]) * M(eq) + M(vv) * M(ed);
        const M dnm = bb[j] * M(ep) + M(rd[t * L + j]) * M(eq) + M(ed);
        const A y = static_cast<A>(num / dnm);
        const A dn = static_cast<A>(dnm);
        yt[i * L + j] = y;
        if (ys != nullptr) {
          ys[t * kSaveLanes + j] = y;
          top[t * kSaveLanes + j] = static_cast<A>(tp);
          den[t * kSaveLanes + j] = dn;
        }
        A fo, fn;
        step_factors<A>(p[j], w[j], kk, fo, fn);
        a[j] = a[j] * M(fo) + M(vv) * M(fn);
        bb[j] = bb[j] * M(fo) + M(fn);
      }
    }
    scatter<L>(out.at(b, c0), oseq, nl, t0, n, yt, add);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward of one task. ys/top/den: the task's saved rows (lane j of position t at t·16 + j).
// Outputs: gk, gv (float views), and per lane ∂L/∂w, ∂L/∂u shares and the guard's two maxima.
template <int L, typename S, typename A, typename G>
void backward_task(const View<S>& k, const View<S>& v, const View<S>& g, const View<G>& gk,
                   const View<G>& gv, const Params& prm, int64_t b, int64_t c0, int nl,
                   const Seq& seq, const Seq& vseq, const Seq& gseq, const Seq& oseq, bool add,
                   const A* ys,
                   const A* top, const A* den, double* gw_out, double* gu_out,
                   double* term_out, double* gkmax_out) {
  const int64_t T = seq.T;
  double w[L], u[L];
  for (int j = 0; j < L; ++j) {
    w[j] = j < nl ? prm.w[c0 + j] : 0.0;
    u[j] = j < nl ? prm.u[c0 + j] : 0.0;
  }
  // Per position, from the reverse pass: the reverse parts of (v − y), of the ∂L/∂w inner sum,
  // and of e^{k}·Zα, e^{k}·Z(αy).
  auto x1 = scratch<A>(T * L), x2 = scratch<A>(T * L), x3 = scratch<A>(T * L),
       x4 = scratch<A>(T * L);
  alignas(64) A kt[kTile * L], vt[kTile * L], gt[kTile * L], yt[kTile * L], tt[kTile * L],
      dt[kTile * L], gkt[kTile * L], gvt[kTile * L];
  auto saved_tile = [&](int64_t t0, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      for (int j = 0; j < L; ++j) {
        const int64_t o = (t0 + i) * kSaveLanes + j;
        yt[i * L + j] = ys[o];
        tt[i * L + j] = top[o];
        dt[i * L + j] = den[o];
      }
  };
  {
    M c[L], d[L], ra[L], ray[L], sc[L], sd[L];
    double q[L], qa[L];
    for (int j = 0; j < L; ++j) {
      c[j] = d[j] = ra[j] = ray[j] = 0;
      sc[j] = sd[j] = 0;
      q[j] = qa[j] = kNegInf;
    }
    for (int64_t end = T; end > 0; end -= kTile) {
      int64_t t0 = std::max<int64_t>(0, end - kTile), n = end - t0;
      gather<L>(k.at(b, c0), seq, nl, t0, n, kt);
      gather<L>(v.at(b, c0), vseq, nl, t0, n, vt);
      gather<L>(g.at(b, c0), gseq, nl, t0, n, gt);
      saved_tile(t0, n);
      for (int64_t i = n - 1; i >= 0; --i) {
        const int64_t t = t0 + i;
#pragma omp simd
        for (int j = 0; j < L; ++j) {
          const int64_t o = i * L + j;
          const double kk = static_cast<double>(kt[o]);
          const double tp = static_cast<double>(tt[o]);
          const M inv_den = M(1) / M(dt[o]);
          const M eq = M(fexp(static_cast<A>(q[j] - tp))) * inv_den;
          x1[t * L + j] = static_cast<A>((M(vt[o]) * d[j] - c[j]) * eq);
          x2[t * L + j] = static_cast<A>((sc[j] - M(yt[o]) * sd[j]) * eq);
          const M ea = M(fexp(static_cast<A>(qa[j] + kk)));
          x3[t * L + j] = static_cast<A>(ra[j] * ea);
          x4[t * L + j] = static_cast<A>(ray[j] * ea);
          A fo, fn;
          step_factors<A>(q[j], w[j], kk, fo, fn);
          sc[j] = (sc[j] + c[j]) * M(fo);
          sd[j] = (sd[j] + d[j]) * M(fo);
          c[j] = c[j] * M(fo) + M(vt[o]) * M(fn);
          d[j] = d[j] * M(fo) + M(fn);
          const M ga = M(gt[o]) * inv_den;
          step_factors<A>(qa[j], w[j], -tp, fo, fn);
          ra[j] = ra[j] * M(fo) + ga * M(fn);
          ray[j] = ray[j] * M(fo) + ga * M(yt[o]) * M(fn);
        }
      }
    }
  }
  M a[L], bb[L], fa[L], fay[L], sa[L], sb[L];
  double p[L], pa[L], gw[L], gu[L];
  A term[L], gkm[L];
  for (int j = 0; j < L; ++j) {
    a[j] = bb[j] = fa[j] = fay[j] = 0;
    sa[j] = sb[j] = 0;
    p[j] = pa[j] = kNegInf;
    gw[j] = gu[j] = 0;
    term[j] = gkm[j] = 0;
  }
  for (int64_t t0 = 0; t0 < T; t0 += kTile) {
    int64_t n = std::min(kTile, T - t0);
    gather<L>(k.at(b, c0), seq, nl, t0, n, kt);
    gather<L>(v.at(b, c0), vseq, nl, t0, n, vt);
    gather<L>(g.at(b, c0), gseq, nl, t0, n, gt);
    saved_tile(t0, n);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = t0 + i;
#pragma omp simd
      for (int j = 0; j < L; ++j) {
        const int64_t o = i * L + j;
        const double kk = static_cast<double>(kt[o]);
        const double tp = static_cast<double>(tt[o]);
        const M inv_den = M(1) / M(dt[o]);
        const M vv = vt[o], gg = gt[o], yy = yt[o];
        const M ep = M(fexp(static_cast<A>(p[j] - tp))) * inv_den;
        const M vmy = (vv * bb[j] - a[j]) * ep + M(x1[t * L + j]);
        const M gwin = (sa[j] - yy * sb[j]) * ep + M(x2[t * L + j]);
        const M eg = M(fexp(static_cast<A>(u[j] + kk - tp))) * inv_den * gg;
        gu[j] += eg * vmy;
        gw[j] -= gg * gwin;
        const M ea = M(fexp(static_cast<A>(pa[j] + kk)));
        const M z = fa[j] * ea + M(x3[t * L + j]);
        const M zy = fay[j] * ea + M(x4[t * L + j]);
        const M vz = vv * z;
        const A gkv = static_cast<A>(vz - zy + eg * vmy);
        gkt[o] = gkv;
        gvt[o] = static_cast<A>(z + eg);
        term[j] = std::max(term[j], static_cast<A>(std::max(std::fabs(vz), std::fabs(zy))));
        gkm[j] = std::max(gkm[j], std::fabs(gkv));
        A fo, fn;
        step_factors<A>(p[j], w[j], kk, fo, fn);
        sa[j] = (sa[j] + a[j]) * M(fo);
        sb[j] = (sb[j] + bb[j]) * M(fo);
        a[j] = a[j] * M(fo) + vv * M(fn);
        bb[j] = bb[j] * M(fo) + M(fn);
        const M ga = gg * inv_den;
        step_factors<A>(pa[j], w[j], -tp, fo, fn);
        fa[j] = fa[j] * M(fo) + ga * M(fn);
        fay[j] = fay[j] * M(fo) + ga * yy * M(fn);
      }
    }
    scatter<L>(gk.at(b, c0), oseq, nl, t0, n, gkt, add);
    scatter<L>(gv.at(b, c0), oseq, nl, t0, n, gvt, add);
  }
  for (int j = 0; j < nl; ++j) {
    gw_out[j] = gw[j];
    gu_out[j] = gu[j];
    term_out[j] = static_cast<double>(term[j]);
    gkmax_out[j] = static_cast<double>(gkm[j]);
  }
}

// ---------------------------------------------------------------------------------------------
// Where a task's saved rows start (see kSaveLanes).
int64_t saved_offset(int64_t b, int64_t c0, int64_t C, int64_t T) {
  const int64_t blocks = (C + kSaveLanes - 1) / kSaveLanes;
  return ((b * blocks + c0 / kSaveLanes) * T) * kSaveLanes + c0 % kSaveLanes;
}

int lanes_for(int64_t B, int64_t C) {
  // 16 lanes (one AVX-512 vector) when there are enough tasks to keep every thread busy; else 8.
  const int64_t tasks16 = B * ((C + 15) / 16);
  return tasks16 >= 4 * at::get_num_threads() ? 16 : 8;
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
      forward_task<L, S, A>(kv, vv, ov, prm, b, c0, nl, seq, vseq, oseq, add,
                            save ? ysp + off : nullptr, save ? tpp + off : nullptr,
                            save ? dnp + off : nullptr);
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
      backward_task<L, S, A, A>(kv, vv, gv_in, gkv, gvv, prm, b, c0, nl, seq, vseq, gseq, oseq, add,
                                ysp + off, tpp + off, dnp + off, st + so, st + plane + so,
                                st + 2 * plane + so, st + 3 * plane + so);
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
