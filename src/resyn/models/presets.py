"""The built-in model presets (SPEC §5, and the published baselines' hyper-parameters)."""

from __future__ import annotations

from resyn.models.registry import Preset, register_preset

register_preset(
    Preset(
        name="rwkvir-classic",
        arch="rwkvir",
        params=dict(
            embed_dim=192, depths=(6, 6, 6, 6, 6, 6), hidden_rate=4, upsampler="pixelshuffle"
        ),
        scales=(2, 3, 4),
        description="RWKV-IR for classic SR: C=192, 6 GLLL x 6 GLLB, hidden rate 4",
    )
)
register_preset(
    Preset(
        name="rwkvir-light",
        arch="rwkvir",
        params=dict(
            embed_dim=48, depths=(6, 6, 6, 6), hidden_rate=3, upsampler="pixelshuffledirect"
        ),
        scales=(2, 3, 4),
        description="RWKV-IR for lightweight SR: C=48, 4 GLLL x 6 GLLB, hidden rate 3",
    )
)
register_preset(
    Preset(
        name="rwkvir-restore",
        arch="rwkvir",
        params=dict(
            embed_dim=48, depths=(6, 6, 6, 6), hidden_rate=3, upsampler="residual"
        ),
        scales=(1,),
        default_scale=1,
        tasks=("denoise", "jpeg"),
        description="RWKV-IR for denoising / JPEG artifact removal (residual head, gray or color)",
    )
)
