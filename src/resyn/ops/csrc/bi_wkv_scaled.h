// The single-scale tasks for the model's range (|w|·T and |u| up to 30).
#pragma once

#include "bi_wkv_common.h"

namespace resyn_bi_wkv {

// ---------------------------------------------------------------------------------------------
// The single-scale tasks, for the model's range (``scaled_fits``): one scale m = max_t k_t per
// lane, P_t = e^{k_t − m} <= 1, and the decay is a multiplication by r = e^{−w} per step, so the
// only exponential per element and pass is P. With |w|·T <= kScaledMaxWT and |u| <= kScaledMaxU
// every float64 sum stays far inside its range (below T²·e^{W}) and every denominator above
// e^{−W}; terms whose P underflows (k more than 87 below m) weigh at most e^{−87+W} of a result.
// The saved top is m at every position, so either backward reads either forward's tensors.
constexpr double kScaledMaxWT = 30.0;
constexpr double kScaledMaxU = 30.0;

// The single-scale tasks' per-lane factors: the decay per step r = e^{−w} and e^{u}.
template <int L>
inline void scaled_factors(const Params& prm, int64_t c0, int nl, M* r, M* eu) {
  lane_params<L>(prm, c0, nl, r, eu);
  for (int j = 0; j < L; ++j) {
    r[j] = std::exp(-r[j]);
    eu[j] = std::exp(eu[j]);
  }
}

template <int L, typename S, typename A>
void lane_max(const View<S>& k, const Seq& seq, int64_t b, int64_t c0, int nl, A* kt, A* m) {
  for (int j = 0; j < L; ++j) m[j] = -std::numeric_limits<A>::infinity();
  for (int64_t t0 = 0; t0 < seq.T; t0 += kTile) {
    const int64_t n = std::min(kTile, seq.T - t0);
    gather<L>(k.at(b, c0), seq, nl, t0, n, kt);
    for (int64_t i = 0; i < n; ++i)
#pragma omp simd
      for (int j = 0; j < L; ++j) m[j] = std::max(m[j], kt[i * L + j]);
  }
}

template <int L, typename S, typename A>
void forward_task_scaled(const View<S>& k, const View<S>& v, const View<S>& out,
                         const Params& prm, int64_t b, int64_t c0, int nl, const Seq& seq,
                         const Seq& vseq, const Seq& oseq, bool add, A* ys, A* top, A* den) {
  const int64_t T = seq.T;
  M r[L], eu[L];
  scaled_factors<L>(prm, c0, nl, r, eu);
  alignas(64) A kt[kTile * L], vt[kTile * L], yt[kTile * L], m[L];
  lane_max<L>(k, seq, b, c0, nl, kt, m);
  A* rc = scratch<A>(0, T * L);
  A* rd = scratch<A>(1, T * L);
  {
    M c[L], d[L];
    for (int j = 0; j < L; ++j) c[j] = d[j] = 0;
    for (int64_t end = T; end > 0; end -= kTile) {
      const int64_t t0 = std::max<int64_t>(0, end - kTile), n = end - t0;
      gather<L>(k.at(b, c0), seq, nl, t0, n, kt);
      gather<L>(v.at(b, c0), vseq, nl, t0, n, vt);
      for (int64_t i = n - 1; i >= 0; --i) {
        const int64_t t = t0 + i;
#pragma omp simd
        for (int j = 0; j < L; ++j) {
          rc[t * L + j] = static_cast<A>(c[j]);
          rd[t * L + j] = static_cast<A>(d[j]);
          const M P = fexp(kt[i * L + j] - m[j]);
          c[j] = c[j] * r[j] + P * M(vt[i * L + j]);
          d[j] = d[j] * r[j] + P;
        }
      }
    }
  }
  M a[L], bb[L];
  for (int j = 0; j < L; ++j) a[j] = bb[j] = 0;
  for (int64_t t0 = 0; t0 < T; t0 += kTile) {
    const int64_t n = std::min(kTile, T - t0);
    gather<L>(k.at(b, c0), seq, nl, t0, n, kt);
    gather<L>(v.at(b, c0), vseq, nl, t0, n, vt);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = t0 + i;
#pragma omp simd
      for (int j = 0; j < L; ++j) {
        const M P = fexp(kt[i * L + j] - m[j]);
        const M vv = vt[i * L + j];
        const M diag = eu[j] * P;
        const M dn = bb[j] + M(rd[t * L + j]) + diag;
        const A y = static_cast<A>((a[j] + M(rc[t * L + j]) + diag * vv) / dn);
        yt[i * L + j] = y;
        if (ys != nullptr) {
          ys[t * kSaveLanes + j] = y;
          top[t * kSaveLanes + j] = m[j];
          den[t * kSaveLanes + j] = static_cast<A>(dn);
        }
        a[j] = a[j] * r[j] + P * vv;
        bb[j] = bb[j] * r[j] + P;
      }
    }
    scatter<L>(out.at(b, c0), oseq, nl, t0, n, yt, add);
  }
}

template <int L, typename S, typename A, typename G>
void backward_task_scaled(const View<S>& k, const View<S>& v, const View<S>& g,
                          const View<G>& gk, const View<G>& gv, const Params& prm, int64_t b,
                          int64_t c0, int nl, const Seq& seq, const Seq& vseq, const Seq& gseq,
                          const Seq& oseq, bool add, const A* ys, const A* top, const A* den,
                          const LaneStats& stats) {
  const int64_t T = seq.T;
  M r[L], eu[L];
  scaled_factors<L>(prm, c0, nl, r, eu);
  alignas(64) A kt[kTile * L], vt[kTile * L], gt[kTile * L], yt[kTile * L], dt[kTile * L],
      gkt[kTile * L], gvt[kTile * L], m[L];
  lane_max<L>(k, seq, b, c0, nl, kt, m);
  // k, v, the gradient and the saved y and den of positions [t0, t0 + n), as [position][lane]
  auto load_tile = [&](int64_t t0, int64_t n) {
    gather<L>(k.at(b, c0), seq, nl, t0, n, kt);
    gather<L>(v.at(b, c0), vseq, nl, t0, n, vt);
    gather<L>(g.at(b, c0), gseq, nl, t0, n, gt);
    for (int64_t i = 0; i < n; ++i)
      for (int j = 0; j < L; ++j) {
        const int64_t o = (t0 + i) * kSaveLanes + j;
        yt[i * L + j] = ys[o];
        dt[i * L + j] = den[o];
      }
  };
  // Per position, from the reverse pass: v·G1 − Gv, G(dist)v − y·G(dist)1, and P times the
  // reverse α scans (α in units of e^{−m}), all over i > t.
  A* x1 = scratch<A>(0, T * L);
  A* x2 = scratch<A>(1, T * L);
  A* x3 = scratch<A>(2, T * L);
  A* x4 = scratch<A>(3, T * L);
  {
    M c[L], d[L], sc[L], sd[L], ra[L], ray[L];
    for (int j = 0; j < L; ++j) c[j] = d[j] = sc[j] = sd[j] = ra[j] = ray[j] = 0;
    for (int64_t end = T; end > 0; end -= kTile) {
      const int64_t t0 = std::max<int64_t>(0, end - kTile), n = end - t0;
      load_tile(t0, n);
      for (int64_t i = n - 1; i >= 0; --i) {
        const int64_t t = t0 + i;
#pragma omp simd
        for (int j = 0; j < L; ++j) {
          const int64_t o = i * L + j;
          const M P = fexp(kt[o] - m[j]);
          const M vv = vt[o], yy = yt[o];
          x1[t * L + j] = static_cast<A>(vv * d[j] - c[j]);
          x2[t * L + j] = static_cast<A>(sc[j] - yy * sd[j]);
          x3[t * L + j] = static_cast<A>(P * ra[j]);
          x4[t * L + j] = static_cast<A>(P * ray[j]);
          sc[j] = (sc[j] + c[j]) * r[j];
          sd[j] = (sd[j] + d[j]) * r[j];
          c[j] = c[j] * r[j] + P * vv;
          d[j] = d[j] * r[j] + P;
          const M ga = M(gt[o]) / M(dt[o]);
          ra[j] = ra[j] * r[j] + ga;
          ray[j] = ray[j] * r[j] + ga * yy;
        }
      }
    }
  }
  M a[L], bb[L], sa[L], sb[L], fa[L], fay[L], gw[L], gu[L];
  A term[L], gkm[L];
  for (int j = 0; j < L; ++j) {
    a[j] = bb[j] = sa[j] = sb[j] = fa[j] = fay[j] = gw[j] = gu[j] = 0;
    term[j] = gkm[j] = 0;
  }
  for (int64_t t0 = 0; t0 < T; t0 += kTile) {
    const int64_t n = std::min(kTile, T - t0);
    load_tile(t0, n);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = t0 + i;
#pragma omp simd
      for (int j = 0; j < L; ++j) {
        const int64_t o = i * L + j;
        const M P = fexp(kt[o] - m[j]);
        const M vv = vt[o], gg = gt[o], yy = yt[o];
        const M inv_den = M(1) / M(dt[o]);
        const M vmy = (vv * bb[j] - a[j] + M(x1[t * L + j])) * inv_den;
        const M gwin = (sa[j] - yy * sb[j] + M(x2[t * L + j])) * inv_den;
        const M eg = eu[j] * P * inv_den * gg;
        gu[j] += eg * vmy;
        gw[j] -= gg * gwin;
        const M z = P * fa[j] + M(x3[t * L + j]);
        const M zy = P * fay[j] + M(x4[t * L + j]);
        const M vz = vv * z;
        const A gkv = static_cast<A>(vz - zy + eg * vmy);
        gkt[o] = gkv;
        gvt[o] = static_cast<A>(z + eg);
        term[j] = std::max(term[j], static_cast<A>(std::max(std::fabs(vz), std::fabs(zy))));
        gkm[j] = std::max(gkm[j], std::fabs(gkv));
        sa[j] = (sa[j] + a[j]) * r[j];
        sb[j] = (sb[j] + bb[j]) * r[j];
        a[j] = a[j] * r[j] + P * vv;
        bb[j] = bb[j] * r[j] + P;
        const M ga = gg * inv_den;
        fa[j] = fa[j] * r[j] + ga;
        fay[j] = fay[j] * r[j] + ga * yy;
      }
    }
    scatter<L>(gk.at(b, c0), oseq, nl, t0, n, gkt, add);
    scatter<L>(gv.at(b, c0), oseq, nl, t0, n, gvt, add);
  }
  stats.write(nl, gw, gu, term, gkm);
}

// Whether the single-scale tasks are exact for a block of lanes (float32 accumulation only).
template <typename A>
bool scaled_fits(const Params& prm, int64_t c0, int nl, int64_t T) {
  if (!std::is_same<A, float>::value) return false;
  for (int j = 0; j < nl; ++j) {
    if (std::fabs(prm.w[c0 + j]) * static_cast<double>(T) > kScaledMaxWT) return false;
    if (std::fabs(prm.u[c0 + j]) > kScaledMaxU) return false;
  }
  return true;
}

}  // namespace resyn_bi_wkv
