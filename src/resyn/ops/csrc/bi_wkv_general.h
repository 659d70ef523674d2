// The general tasks: running maxima with float64 offsets, exact for every finite input
// (see bi_wkv_cpu.cpp for the formulas).
#pragma once

#include "bi_wkv_common.h"

namespace resyn_bi_wkv {

// ---------------------------------------------------------------------------------------------
// Forward of one task: positions in order, L lanes from channel c0.
template <int L, typename S, typename A>
void forward_task(const View<S>& k, const View<S>& v, const View<S>& out, const Params& prm,
                  int64_t b, int64_t c0, int nl, const Seq& seq, const Seq& vseq, const Seq& oseq,
                  bool add, A* ys, A* top, A* den) {
  const int64_t T = seq.T;
  double w[L], u[L];
  lane_params<L>(prm, c0, nl, w, u);
  // Reverse pass: the sums over i > t (mantissas c, d and offset q) at every position.
  A* rc = scratch<A>(0, T * L);
  A* rd = scratch<A>(1, T * L);
  double* rq = scratch<double>(2, T * L);  // slot 2: A may be double too
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
                   const A* top, const A* den, const LaneStats& stats) {
  const int64_t T = seq.T;
  double w[L], u[L];
  lane_params<L>(prm, c0, nl, w, u);
  // Per position, from the reverse pass: the reverse parts of (v − y), of the ∂L/∂w inner sum,
  // and of e^{k}·Zα, e^{k}·Z(αy).
  A* x1 = scratch<A>(0, T * L);
  A* x2 = scratch<A>(1, T * L);
  A* x3 = scratch<A>(2, T * L);
  A* x4 = scratch<A>(3, T * L);
  alignas(64) A kt[kTile * L], vt[kTile * L], gt[kTile * L], yt[kTile * L], tt[kTile * L],
      dt[kTile * L], gkt[kTile * L], gvt[kTile * L];
  // k, v, the gradient and the saved y, top and den of positions [t0, t0 + n)
  auto load_tile = [&](int64_t t0, int64_t n) {
    gather<L>(k.at(b, c0), seq, nl, t0, n, kt);
    gather<L>(v.at(b, c0), vseq, nl, t0, n, vt);
    gather<L>(g.at(b, c0), gseq, nl, t0, n, gt);
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
      load_tile(t0, n);
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
    load_tile(t0, n);
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
  stats.write(nl, gw, gu, term, gkm);
}

}  // namespace resyn_bi_wkv
