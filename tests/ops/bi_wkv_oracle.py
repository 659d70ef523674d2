"""Slow, obvious references for bi_wkv: the formula evaluated literally in float64."""

from __future__ import annotations

import torch


def naive_bi_wkv(k, v, w, u):
    """y_t exactly as written, with a T x T weight matrix (float64, max-subtracted)."""
    k, v, w, u = (x.double() for x in (k, v, w, u))
    B, T, C = k.shape
    t = torch.arange(T, dtype=torch.float64)
    dist = (t[:, None] - t[None, :]).abs()  # (T, T): |t - i|
    expo = -(dist - 1)[None, :, :, None] * w + k[:, None, :, :]  # (B, t, i, C)
    diag = torch.eye(T, dtype=torch.bool)[None, :, :, None]
    expo = torch.where(diag, (u + k)[:, :, None, :].expand_as(expo), expo)
    expo = expo - expo.amax(dim=2, keepdim=True)
    weight = torch.exp(expo)
    return (weight * v[:, None]).sum(dim=2) / weight.sum(dim=2)


def naive_bi_wkv_rows(k, v, w, u, rows):
    """y_t for the positions ``rows`` only (O(len(rows)·T·C)), for sequences too long for T x T."""
    k, v, w, u = (x.double() for x in (k, v, w, u))
    B, T, C = k.shape
    t = torch.as_tensor(rows, dtype=torch.float64)
    i = torch.arange(T, dtype=torch.float64)
    dist = (t[:, None] - i[None, :]).abs()  # (R, T)
    expo = -(dist - 1)[None, :, :, None] * w + k[:, None, :, :]  # (B, R, T, C)
    is_diag = (dist == 0)[None, :, :, None]
    expo = torch.where(is_diag, (u + k)[:, None, :, :].expand_as(expo), expo)
    expo = expo - expo.amax(dim=2, keepdim=True)
    weight = torch.exp(expo)
    return (weight * v[:, None]).sum(dim=2) / weight.sum(dim=2)  # (B, R, C)
