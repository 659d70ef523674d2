"""Custom operators, each with a pure-PyTorch path that runs on any device."""

from resyn.ops.bi_wkv import bi_wkv, bi_wkv_backend_status, bi_wkv_backends, cross_bi_wkv

__all__ = ["bi_wkv", "bi_wkv_backend_status", "bi_wkv_backends", "cross_bi_wkv"]
