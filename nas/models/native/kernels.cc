// Training kernels for XLA's CPU backend, called through the XLA FFI (`nas.models.native`).
//
// XLA's CPU backend runs the depthwise convolution and the training-mode batch norm of a DS-CNN as
// ~40 separate passes over full-size activations per step (GUIDE §3): every tap of the depthwise
// weight gradient, every statistic and every elementwise piece of the backward is its own loop over
// memory. Written here, each is one or two passes, with the per-tap and per-statistic work done on data
// that is already in cache:
//
//   kws_dw_fwd   y  = depthwise(x, k)                       one pass (per output pixel, all taps)
//   kws_dw_bwd   dx, dk from x, k, dy                       one pass (dx scattered per sample)
//   kws_bn_fwd   y = act(bn(x)), batch mean, biased var     stats per chunk in cache + one apply pass
//   kws_bn_bwd   dx, dscale, dbias                          sums per chunk in cache + one dx pass
//
// Layouts are NHWC (depthwise) and [rows, C] (batch norm), float32, channels innermost so the inner
// loops vectorise across channels. Summation orders never depend on the number of threads: work is cut
// into fixed units (one sample, or BN_CHUNK_ROWS rows), per-unit partial sums are combined in unit
// order, and no reassociation is allowed (built with -ffp-contract=off, no fast-math; `tn_panel` alone
// fuses multiply-adds). The same inputs give the same bits with 1 or 2 threads, and on any vector width.
//
// Padding follows the caller's TensorFlow SAME/VALID rule: ``pad_top``/``pad_left`` are given, the
// bottom/right padding is implied by the output size; taps that fall into the padding are skipped.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Rows per batch-norm work unit: 128 rows x 64 channels x 4 B = 32 KiB, so a unit's second pass (centred
// sums) reads from L1/L2 instead of memory.
constexpr int64_t BN_CHUNK_ROWS = 128;

enum Activation : int64_t { kNone = 0, kRelu = 1, kRelu6 = 2 };

using In = ffi::Buffer<ffi::F32>;
using Out = ffi::ResultBuffer<ffi::F32>;

// body(u) for every u in [0, units), spread over XLA's intra-op pool and the calling thread. Units are
// claimed from one counter; tasks that start after all units are claimed return without touching body.
template <typename F>
void parallel_for(ffi::ThreadPool& pool, int64_t units, const F& body) {
  const int64_t threads = pool.num_threads();
  if (threads <= 1 || units <= 1) {
    for (int64_t u = 0; u < units; ++u) body(u);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
  };
  auto shared = std::make_shared<Shared>();
  const F* fn = &body;
  auto work = [shared, fn, units]() {
    for (int64_t u; (u = shared->next.fetch_add(1)) < units;) {
      (*fn)(u);
      shared->done.fetch_add(1, std::memory_order_release);
    }
  };
  const int64_t helpers = std::min(threads, units) - 1;
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule(decltype(work)(work));  // Schedule takes an rvalue
  work();
  while (shared->done.load(std::memory_order_acquire) < units) std::this_thread::yield();
}

// Work units of `rows` consecutive rows of an [n, C] array: body(u, first row, end row) for every unit.
inline int64_t units_of(int64_t n, int64_t rows) { return (n + rows - 1) / rows; }

template <typename F>
void for_row_units(ffi::ThreadPool& pool, int64_t n, int64_t rows, const F& body) {
  parallel_for(pool, units_of(n, rows), [&](int64_t u) { body(u, u * rows, std::min(n, (u + 1) * rows)); });
}

// out = the sum of `units` partial arrays of `size` floats, in unit order (the thread-independent order).
void sum_units(const std::vector<float>& partial, int64_t units, int64_t size, float* out) {
  std::copy(partial.begin(), partial.begin() + size, out);
  for (int64_t u = 1; u < units; ++u) {
    const float* src = partial.data() + u * size;
    for (int64_t t = 0; t < size; ++t) out[t] += src[t];
  }
}

// Activations as compile-time parameters: branch-free selects that vectorise.
template <int64_t ACT>
inline float activate(float z) {
  if constexpr (ACT == kRelu) return z > 0.0f ? z : 0.0f;
  if constexpr (ACT == kRelu6) return z > 0.0f ? (z < 6.0f ? z : 6.0f) : 0.0f;
  return z;
}

template <int64_t ACT>
inline float masked(float y, float g) {  // g where the activation passes (judged from its output y), else 0
  if constexpr (ACT == kRelu) return y > 0.0f ? g : 0.0f;
  if constexpr (ACT == kRelu6) return (y > 0.0f && y < 6.0f) ? g : 0.0f;
  return g;
}

// f(std::integral_constant<int64_t, ACT>) for the runtime activation code `act`.
template <typename F>
ffi::Error with_activation(int64_t act, const F& f) {
  switch (act) {
    case kRelu: return f(std::integral_constant<int64_t, kRelu>{});
    case kRelu6: return f(std::integral_constant<int64_t, kRelu6>{});
    case kNone: return f(std::integral_constant<int64_t, kNone>{});
    default: return ffi::Error::InvalidArgument("kws batch norm: unknown activation code");
  }
}

// Channels per register block: one AVX-512 vector (two AVX2 ones), as a GCC/Clang vector type so the
// accumulators stay in registers on any instruction set the compiler targets.
constexpr int64_t LANES = 16;
typedef float vf __attribute__((vector_size(LANES * sizeof(float))));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// out[c] = sum over t in order of a[a_off[t] + c] * b[b_off[t] + c], for c in [0, C): four independent
// register chains per 64 channels, then one per 16, then scalars. Every depthwise pass is this.
void dot_pairs(float* out, const float* a, const int64_t* a_off, const float* b, const int64_t* b_off,
               int64_t n, int64_t C) {
  int64_t c = 0;
  for (; c + 4 * LANES <= C; c += 4 * LANES) {
    vf s0 = {}, s1 = {}, s2 = {}, s3 = {};
    for (int64_t t = 0; t < n; ++t) {
      const float* ai = a + a_off[t] + c;
      const float* bi = b + b_off[t] + c;
      s0 += load(ai) * load(bi);
      s1 += load(ai + LANES) * load(bi + LANES);
      s2 += load(ai + 2 * LANES) * load(bi + 2 * LANES);
      s3 += load(ai + 3 * LANES) * load(bi + 3 * LANES);
    }
    store(out + c, s0);
    store(out + c + LANES, s1);
    store(out + c + 2 * LANES, s2);
    store(out + c + 3 * LANES, s3);
  }
  for (; c + LANES <= C; c += LANES) {
    vf acc = {};
    for (int64_t t = 0; t < n; ++t) acc += load(a + a_off[t] + c) * load(b + b_off[t] + c);
    store(out + c, acc);
  }
  for (; c < C; ++c) {
    float acc = 0.0f;
    for (int64_t t = 0; t < n; ++t) acc += a[a_off[t] + c] * b[b_off[t] + c];
    out[c] = acc;
  }
}

struct Geometry {
  int64_t b, h, w, c, kh, kw, oh, ow;
};

Geometry geometry(const In& x, const In& k, int64_t oh, int64_t ow) {
  auto xd = x.dimensions();
  auto kd = k.dimensions();
  return {xd[0], xd[1], xd[2], xd[3], kd[0], kd[1], oh, ow};
}

ffi::Error check_depthwise(const Geometry& g, int64_t kc) {
  if (kc != g.c) return ffi::Error::InvalidArgument("kws depthwise: kernel channels differ from the input's");
  return ffi::Error::Success();
}

ffi::Error DwFwd(ffi::ThreadPool pool, In x, In k,
                 Out y, int64_t sh, int64_t sw, int64_t pad_top, int64_t pad_left) {
  auto yd = y->dimensions();
  const Geometry g = geometry(x, k, yd[1], yd[2]);
  if (auto err = check_depthwise(g, k.dimensions()[2]); err.failure()) return err;
  const float* xp = x.typed_data();
  const float* kp = k.typed_data();
  float* yp = y->typed_data();
  const int64_t C = g.c;
  parallel_for(pool, g.b, [&](int64_t b) {
    const float* xb = xp + b * g.h * g.w * C;
    float* yb = yp + b * g.oh * g.ow * C;
    std::vector<int64_t> xoff(static_cast<size_t>(g.kh * g.kw)), koff(xoff.size());
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        int64_t taps = 0;  // the taps inside the input, in (i, j) order: the summation order
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t ih = oh * sh - pad_top + i;
          if (ih < 0 || ih >= g.h) continue;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t iw = ow * sw - pad_left + j;
            if (iw < 0 || iw >= g.w) continue;
            xoff[taps] = (ih * g.w + iw) * C;
            koff[taps++] = (i * g.kw + j) * C;
          }
        }
        dot_pairs(yb + (oh * g.ow + ow) * C, xb, xoff.data(), kp, koff.data(), taps, C);
      }
    }
  });
  return ffi::Error::Success();
}

ffi::Error DwBwd(ffi::ThreadPool pool, In x, In k,
                 In dy, Out dx, Out dk,
                 int64_t sh, int64_t sw, int64_t pad_top, int64_t pad_left) {
  auto gd = dy.dimensions();
  const Geometry g = geometry(x, k, gd[1], gd[2]);
  if (auto err = check_depthwise(g, k.dimensions()[2]); err.failure()) return err;
  const float* xp = x.typed_data();
  const float* kp = k.typed_data();
  const float* gp = dy.typed_data();
  float* dxp = dx->typed_data();
  const int64_t C = g.c, taps = g.kh * g.kw * C;
  std::vector<float> partial(static_cast<size_t>(g.b * taps));  // dk per sample, summed in sample order
  parallel_for(pool, g.b, [&](int64_t b) {
    const float* xb = xp + b * g.h * g.w * C;
    const float* gb = gp + b * g.oh * g.ow * C;
    std::vector<int64_t> aoff(static_cast<size_t>(std::max(g.kh * g.kw, g.oh * g.ow))), boff(aoff.size());
    // dx[r] = sum over the taps (i, j) whose window covers input pixel r of dy[o] * k[i, j], gathered
    for (int64_t ih = 0; ih < g.h; ++ih) {
      for (int64_t iw = 0; iw < g.w; ++iw) {
        int64_t n = 0;
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t rows = ih + pad_top - i;
          if (rows < 0 || rows % sh != 0 || rows / sh >= g.oh) continue;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t cols = iw + pad_left - j;
            if (cols < 0 || cols % sw != 0 || cols / sw >= g.ow) continue;
            aoff[n] = ((rows / sh) * g.ow + cols / sw) * C;
            boff[n++] = (i * g.kw + j) * C;
          }
        }
        dot_pairs(dxp + b * g.h * g.w * C + (ih * g.w + iw) * C, gb, aoff.data(), kp, boff.data(), n, C);
      }
    }
    // dk[i, j] (this sample's part) = sum over the output pixels whose tap (i, j) is inside of x * dy
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        int64_t n = 0;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          const int64_t ih = oh * sh - pad_top + i;
          if (ih < 0 || ih >= g.h) continue;
          for (int64_t ow = 0; ow < g.ow; ++ow) {
            const int64_t iw = ow * sw - pad_left + j;
            if (iw < 0 || iw >= g.w) continue;
            aoff[n] = (ih * g.w + iw) * C;
            boff[n++] = (oh * g.ow + ow) * C;
          }
        }
        dot_pairs(partial.data() + b * taps + (i * g.kw + j) * C, xb, aoff.data(), gb, boff.data(), n, C);
      }
    }
  });
  sum_units(partial, g.b, taps, dk->typed_data());
  return ffi::Error::Success();
}

// Per-chunk mean and sum of squared deviations (two passes over a chunk that stays in cache), merged in
// chunk order with Chan et al.'s pairwise update in double precision.
void batch_stats(ffi::ThreadPool& pool, const float* x, int64_t n, int64_t C, std::vector<double>& mean,
                 std::vector<double>& m2) {
  const int64_t chunks = units_of(n, BN_CHUNK_ROWS);
  std::vector<float> cmean(static_cast<size_t>(chunks * C)), cm2(static_cast<size_t>(chunks * C));
  for_row_units(pool, n, BN_CHUNK_ROWS, [&](int64_t u, int64_t r0, int64_t r1) {
    float* __restrict mu = cmean.data() + u * C;
    float* __restrict s2 = cm2.data() + u * C;
    std::fill(mu, mu + C, 0.0f);
    std::fill(s2, s2 + C, 0.0f);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < C; ++c) mu[c] += x[r * C + c];
    const float inv = 1.0f / static_cast<float>(r1 - r0);
    for (int64_t c = 0; c < C; ++c) mu[c] *= inv;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const float d = x[r * C + c] - mu[c];
        s2[c] += d * d;
      }
  });
  mean.assign(static_cast<size_t>(C), 0.0);
  m2.assign(static_cast<size_t>(C), 0.0);
  double count = 0.0;
  for (int64_t u = 0; u < chunks; ++u) {
    const double nb = static_cast<double>(std::min(n, (u + 1) * BN_CHUNK_ROWS) - u * BN_CHUNK_ROWS);
    const double total = count + nb;
    for (int64_t c = 0; c < C; ++c) {
      const double delta = cmean[u * C + c] - mean[c];
      mean[c] += delta * nb / total;
      m2[c] += cm2[u * C + c] + delta * delta * count * nb / total;
    }
    count = total;
  }
}

template <int64_t ACT>
void bn_apply(ffi::ThreadPool& pool, const float* xp, float* yp, int64_t n, int64_t C, const float* inv,
              const float* shift) {
  for_row_units(pool, n, BN_CHUNK_ROWS, [&](int64_t, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* __restrict xr = xp + r * C;
      float* __restrict yr = yp + r * C;
      for (int64_t c = 0; c < C; ++c) yr[c] = activate<ACT>(xr[c] * inv[c] + shift[c]);
    }
  });
}

ffi::Error BnFwd(ffi::ThreadPool pool, In x, In scale,
                 In bias, Out y, Out mean_out,
                 Out var_out, float eps, int64_t act) {
  auto xd = x.dimensions();
  const int64_t n = xd[0], C = xd[1];
  if (n <= 0) return ffi::Error::InvalidArgument("kws batch norm: no rows");
  const float* xp = x.typed_data();
  std::vector<double> mean, m2;
  batch_stats(pool, xp, n, C, mean, m2);
  std::vector<float> inv(static_cast<size_t>(C)), shift(static_cast<size_t>(C));
  float* mo = mean_out->typed_data();
  float* vo = var_out->typed_data();
  for (int64_t c = 0; c < C; ++c) {
    mo[c] = static_cast<float>(mean[c]);
    vo[c] = static_cast<float>(m2[c] / static_cast<double>(n));
    inv[c] = scale.typed_data()[c] / std::sqrt(vo[c] + eps);
    shift[c] = bias.typed_data()[c] - mo[c] * inv[c];
  }
  float* yp = y->typed_data();
  return with_activation(act, [&](auto a) {
    bn_apply<decltype(a)::value>(pool, xp, yp, n, C, inv.data(), shift.data());
    return ffi::Error::Success();
  });
}

// dbias = sum(gz), dscale = rstd * sum(gz * (x - mean)), dx = scale * rstd * (gz - dbias/n - (x - mean) *
// rstd * dscale / n), with gz = dy where the activation passes (from its output y) and 0 elsewhere.
template <int64_t ACT>
ffi::Error bn_bwd(ffi::ThreadPool& pool, In& x, In& y,
                  In& dy, In& scale, In& mean_in,
                  In& var_in, Out& dx,
                  Out& dscale_out, Out& dbias_out, float eps) {
  auto xd = x.dimensions();
  const int64_t n = xd[0], C = xd[1];
  const float* __restrict xp = x.typed_data();
  const float* __restrict yp = y.typed_data();
  const float* __restrict gp = dy.typed_data();
  const float* __restrict mu = mean_in.typed_data();
  const int64_t chunks = units_of(n, BN_CHUNK_ROWS);
  std::vector<float> sum_gz(static_cast<size_t>(chunks * C)), sum_gzx(static_cast<size_t>(chunks * C));
  for_row_units(pool, n, BN_CHUNK_ROWS, [&](int64_t u, int64_t r0, int64_t r1) {
    float* __restrict s1 = sum_gz.data() + u * C;
    float* __restrict s2 = sum_gzx.data() + u * C;
    std::fill(s1, s1 + C, 0.0f);
    std::fill(s2, s2 + C, 0.0f);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const float gz = masked<ACT>(yp[r * C + c], gp[r * C + c]);
        s1[c] += gz;
        s2[c] += gz * (xp[r * C + c] - mu[c]);
      }
  });
  std::vector<float> rstd(static_cast<size_t>(C)), kx(static_cast<size_t>(C)), c1(static_cast<size_t>(C)),
      c2(static_cast<size_t>(C));
  float* dsp = dscale_out->typed_data();
  float* dbp = dbias_out->typed_data();
  for (int64_t c = 0; c < C; ++c) {
    double s1 = 0.0, s2 = 0.0;
    for (int64_t u = 0; u < chunks; ++u) {
      s1 += sum_gz[u * C + c];
      s2 += sum_gzx[u * C + c];
    }
    rstd[c] = 1.0f / std::sqrt(var_in.typed_data()[c] + eps);
    dbp[c] = static_cast<float>(s1);
    dsp[c] = static_cast<float>(s2) * rstd[c];
    kx[c] = scale.typed_data()[c] * rstd[c];
    c1[c] = dbp[c] / static_cast<float>(n);
    c2[c] = dsp[c] * rstd[c] / static_cast<float>(n);
  }
  float* __restrict dxp = dx->typed_data();
  const float* __restrict kxp = kx.data();
  const float* __restrict c1p = c1.data();
  const float* __restrict c2p = c2.data();
  for_row_units(pool, n, BN_CHUNK_ROWS, [&](int64_t, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const float gz = masked<ACT>(yp[r * C + c], gp[r * C + c]);
        dxp[r * C + c] = kxp[c] * (gz - c1p[c] - (xp[r * C + c] - mu[c]) * c2p[c]);
      }
  });
  return ffi::Error::Success();
}

ffi::Error BnBwd(ffi::ThreadPool pool, In x, In y, In dy,
                 In scale, In mean_in, In var_in,
                 Out dx, Out dscale_out,
                 Out dbias_out, float eps, int64_t act) {
  return with_activation(act, [&](auto a) {
    return bn_bwd<decltype(a)::value>(pool, x, y, dy, scale, mean_in, var_in, dx, dscale_out, dbias_out, eps);
  });
}


// Rows per weight-gradient work unit: 256 rows of A and B (2 x 64 KiB at 64 channels) stay in L2 while every
// output panel streams over them.
constexpr int64_t TN_CHUNK_ROWS = 256;

// acc[p][q] += a[r, i0 + p] * b[r, o0 + 16 q ...] over the rows of one unit: P x Q register accumulators.
// The one place that contracts to fused multiply-adds (this product is compute-bound; the others are
// memory-bound): each output's sum still runs in row order, so the bits are the same on every CPU with FMA.
template <int P, int Q>
__attribute__((optimize("fp-contract=fast"))) void tn_panel(const float* a, const float* b, float* out, int64_t r0, int64_t r1, int64_t I, int64_t O,
              int64_t i0, int64_t o0) {
  vf acc[P][Q] = {};
  for (int64_t r = r0; r < r1; ++r) {
    vf bv[Q];
    for (int q = 0; q < Q; ++q) bv[q] = load(b + r * O + o0 + q * LANES);
    for (int p = 0; p < P; ++p) {
      const float av = a[r * I + i0 + p];
      for (int q = 0; q < Q; ++q) acc[p][q] += bv[q] * av;
    }
  }
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < Q; ++q) store(out + (i0 + p) * O + o0 + q * LANES, acc[p][q]);
}

// out[I, O] = a[N, I]^T b[N, O] for one unit's rows [r0, r1).
void tn_unit(const float* a, const float* b, float* out, int64_t r0, int64_t r1, int64_t I, int64_t O) {
  int64_t o0 = 0;
  for (; o0 + 4 * LANES <= O; o0 += 4 * LANES) {
    int64_t i0 = 0;
    for (; i0 + 4 <= I; i0 += 4) tn_panel<4, 4>(a, b, out, r0, r1, I, O, i0, o0);
    for (; i0 < I; ++i0) tn_panel<1, 4>(a, b, out, r0, r1, I, O, i0, o0);
  }
  for (; o0 + LANES <= O; o0 += LANES) {
    int64_t i0 = 0;
    for (; i0 + 4 <= I; i0 += 4) tn_panel<4, 1>(a, b, out, r0, r1, I, O, i0, o0);
    for (; i0 < I; ++i0) tn_panel<1, 1>(a, b, out, r0, r1, I, O, i0, o0);
  }
  for (; o0 < O; ++o0)
    for (int64_t i = 0; i < I; ++i) {
      float acc = 0.0f;
      for (int64_t r = r0; r < r1; ++r) acc += a[r * I + i] * b[r * O + o0];
      out[i * O + o0] = acc;
    }
}

// The weight gradient of a matrix product (1x1 convolution, dense layer): out = a^T b, summed per row unit
// and then over units in unit order.
ffi::Error MatmulTn(ffi::ThreadPool pool, In a, In b,
                    Out out) {
  const int64_t n = a.dimensions()[0], I = a.dimensions()[1], O = b.dimensions()[1];
  if (b.dimensions()[0] != n) return ffi::Error::InvalidArgument("kws matmul_tn: row counts differ");
  const float* ap = a.typed_data();
  const float* bp = b.typed_data();
  float* op = out->typed_data();
  const int64_t units = units_of(n, TN_CHUNK_ROWS);
  if (units <= 1) {
    tn_unit(ap, bp, op, 0, n, I, O);
    return ffi::Error::Success();
  }
  std::vector<float> partial(static_cast<size_t>(units * I * O));
  for_row_units(pool, n, TN_CHUNK_ROWS, [&](int64_t u, int64_t r0, int64_t r1) {
    tn_unit(ap, bp, partial.data() + u * I * O, r0, r1, I, O);
  });
  sum_units(partial, units, I * O, op);
  return ffi::Error::Success();
}


}  // namespace

// XLA's binding of each handler: its thread pool, the buffers in order, then the attributes. (A Binding cannot
// be passed to a helper: its move constructor is private.)
XLA_FFI_DEFINE_HANDLER_SYMBOL(KwsDwFwd, DwFwd,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Ret<In>()
                                  .Attr<int64_t>("sh")
                                  .Attr<int64_t>("sw")
                                  .Attr<int64_t>("pad_top")
                                  .Attr<int64_t>("pad_left"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(KwsDwBwd, DwBwd,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Ret<In>()
                                  .Ret<In>()
                                  .Attr<int64_t>("sh")
                                  .Attr<int64_t>("sw")
                                  .Attr<int64_t>("pad_top")
                                  .Attr<int64_t>("pad_left"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(KwsBnFwd, BnFwd,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Ret<In>()
                                  .Ret<In>()
                                  .Ret<In>()
                                  .Attr<float>("eps")
                                  .Attr<int64_t>("act"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(KwsBnBwd, BnBwd,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Ret<In>()
                                  .Ret<In>()
                                  .Ret<In>()
                                  .Attr<float>("eps")
                                  .Attr<int64_t>("act"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(KwsMatmulTn, MatmulTn,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<In>()
                                  .Arg<In>()
                                  .Ret<In>());
