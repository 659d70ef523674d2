// Shared pieces of the CPU Bi-WKV: the vectorisable exp, the decayed-sum step, the layout of
// (B, C, T) views (any strides, optional column-major grid order) and the per-thread scratch.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

namespace resyn_bi_wkv {

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

// Memory index of sequence positions t0, t0 + 1, ... along the T axis.
struct Cursor {
  const Seq& s;
  int64_t t, r, col;
  Cursor(const Seq& seq, int64_t t0) : s(seq), t(t0), r(seq.H ? t0 % seq.H : 0), col(seq.H ? t0 / seq.H : 0) {}
  int64_t mem() const { return s.H ? r * s.W + col : t; }
  void next() {
    ++t;
    if (s.H && ++r == s.H) { r = 0; ++col; }
  }
};

// Gathers positions [t0, t0 + n) of L lanes (nl valid) into dst[n][L] as A; other lanes get 0.
template <int L, typename S, typename A>
void gather(const S* base, const Seq& s, int nl, int64_t t0, int64_t n, A* dst) {
  if (s.sc == 1) {  // lanes contiguous (token layout): position by position
    // The rows are a stride apart (often a new page each, in the vertical order): prefetch a
    // few positions ahead, and copy each row as one vector.
    constexpr int64_t kAhead = 8;
    Cursor cur(s, t0), ahead(s, t0);
    for (int64_t i = 0; i < kAhead && i < n; ++i) ahead.next();
    for (int64_t i = 0; i < n; ++i, cur.next()) {
      if (i + kAhead < n) {
        __builtin_prefetch(base + ahead.mem() * s.st);
        ahead.next();
      }
      const S* src = base + cur.mem() * s.st;
      A* row = dst + i * L;
      if (nl == L && std::is_same<S, A>::value) {
        std::memcpy(row, src, sizeof(A) * L);
      } else if (nl == L) {
#pragma omp simd
        for (int j = 0; j < L; ++j) row[j] = static_cast<A>(src[j]);
      } else {
        for (int j = 0; j < L; ++j) row[j] = j < nl ? static_cast<A>(src[j]) : A(0);
      }
    }
    return;
  }
  for (int j = 0; j < L; ++j) {
    if (j >= nl) {
      for (int64_t i = 0; i < n; ++i) dst[i * L + j] = A(0);
      continue;
    }
    const S* row = base + j * s.sc;
    Cursor cur(s, t0);
    for (int64_t i = 0; i < n; ++i, cur.next()) dst[i * L + j] = static_cast<A>(row[cur.mem() * s.st]);
  }
}

// Writes (or adds) src[n][L] to positions [t0, t0 + n) of the nl valid lanes.
template <int L, typename S, typename A>
void scatter(S* base, const Seq& s, int nl, int64_t t0, int64_t n, const A* src, bool add) {
  auto put = [add](S& d, A x) { d = add ? static_cast<S>(static_cast<A>(d) + x) : static_cast<S>(x); };
  if (s.sc == 1) {
    Cursor cur(s, t0);
    for (int64_t i = 0; i < n; ++i, cur.next()) {
      S* dst = base + cur.mem() * s.st;
      const A* row = src + i * L;
      if (add) {
#pragma omp simd
        for (int j = 0; j < nl; ++j) dst[j] = static_cast<S>(static_cast<A>(dst[j]) + row[j]);
      } else if (nl == L && std::is_same<S, A>::value) {
        std::memcpy(dst, row, sizeof(A) * L);
      } else {
#pragma omp simd
        for (int j = 0; j < nl; ++j) dst[j] = static_cast<S>(row[j]);
      }
    }
    return;
  }
  for (int j = 0; j < nl; ++j) {
    S* row = base + j * s.sc;
    Cursor cur(s, t0);
    for (int64_t i = 0; i < n; ++i, cur.next()) put(row[cur.mem() * s.st], src[i * L + j]);
  }
}

// Per-thread scratch, kept between calls (no page faults on every call); every element is
// written before it is read. Slot i is one buffer; growing it drops its old contents.
template <typename T>
T* scratch(int slot, int64_t n) {
  thread_local std::vector<std::vector<T>> slots;
  if (static_cast<int64_t>(slots.size()) <= slot) slots.resize(slot + 1);
  auto& buf = slots[slot];
  if (static_cast<int64_t>(buf.size()) < n) {
    buf.clear();
    buf.shrink_to_fit();
    buf.resize(n);
  }
  return buf.data();
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

// w and u of a task's lanes (0 for lanes past the last channel).
template <int L>
inline void lane_params(const Params& prm, int64_t c0, int nl, double* w, double* u) {
  for (int j = 0; j < L; ++j) {
    w[j] = j < nl ? prm.w[c0 + j] : 0.0;
    u[j] = j < nl ? prm.u[c0 + j] : 0.0;
  }
}

// A backward task's per-lane results: its shares of ∂L/∂w and ∂L/∂u and the guard's maxima.
struct LaneStats {
  double *gw, *gu, *term, *gk_max;
  template <typename A>
  void write(int nl, const double* w_sum, const double* u_sum, const A* terms, const A* gk) const {
    for (int j = 0; j < nl; ++j) {
      gw[j] = w_sum[j];
      gu[j] = u_sum[j];
      term[j] = static_cast<double>(terms[j]);
      gk_max[j] = static_cast<double>(gk[j]);
    }
  }
};

inline Params params_of(const at::Tensor& w, const at::Tensor& u) {
  auto wd = w.to(at::kDouble).contiguous();
  auto ud = u.to(at::kDouble).contiguous();
  Params p;
  p.w.assign(wd.data_ptr<double>(), wd.data_ptr<double>() + wd.numel());
  p.u.assign(ud.data_ptr<double>(), ud.data_ptr<double>() + ud.numel());
  return p;
}

}  // namespace resyn_bi_wkv
