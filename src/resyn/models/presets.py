"""The built-in model presets (RWKV-IR: docs/rwkvir.md; the published baselines' hyper-parameters: docs/baselines.md)."""

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
        params=dict(embed_dim=48, depths=(6, 6, 6, 6), hidden_rate=3, upsampler="residual"),
        scales=(1,),
        default_scale=1,
        tasks=("denoise", "jpeg"),
        description="RWKV-IR for denoising / JPEG artifact removal (residual head, gray or color)",
    )
)

# --- Baselines (published hyper-parameters; see docs/baselines.md) -------------------------
_SWIN_CLASSIC = dict(
    embed_dim=180,
    depths=(6,) * 6,
    num_heads=(6,) * 6,
    window_size=8,
    mlp_ratio=2.0,
    img_size=64,
    resi_connection="1conv",
)
register_preset(
    Preset(
        name="swinir-classic",
        arch="swinir",
        params=dict(_SWIN_CLASSIC, upsampler="pixelshuffle"),
        scales=(2, 3, 4),
        description="SwinIR-M classic SR: C=180, 6 RSTB x 6 blocks, 6 heads, window 8 (~11.8M)",
    )
)
register_preset(
    Preset(
        name="swinir-light",
        arch="swinir",
        params=dict(
            embed_dim=60,
            depths=(6,) * 4,
            num_heads=(6,) * 4,
            window_size=8,
            mlp_ratio=2.0,
            img_size=64,
            upsampler="pixelshuffledirect",
            resi_connection="1conv",
        ),
        scales=(2, 3, 4),
        description="SwinIR lightweight SR: C=60, 4 RSTB x 6 blocks, window 8 (~0.91M)",
    )
)
register_preset(
    Preset(
        name="swinir-restore",
        arch="swinir",
        params=dict(_SWIN_CLASSIC, img_size=128, upsampler=""),
        scales=(1,),
        default_scale=1,
        tasks=("denoise", "jpeg"),
        description="SwinIR denoising / JPEG (residual head), the official color-DN layout",
    )
)
_MAMBA_CLASSIC = dict(
    embed_dim=180,
    depths=(6,) * 6,
    d_state=16,
    mlp_ratio=2.0,
    img_size=64,
    resi_connection="1conv",
)
register_preset(
    Preset(
        name="mambair-classic",
        arch="mambair",
        params=dict(_MAMBA_CLASSIC, upsampler="pixelshuffle"),
        scales=(2, 3, 4),
        description="MambaIR classic SR: C=180, 6 RSSG x 6 VSSB, d_state 16, expand 2 (~20.4M)",
    )
)
register_preset(
    Preset(
        name="mambair-light",
        arch="mambair",
        params=dict(
            embed_dim=60,
            depths=(6,) * 4,
            d_state=10,
            mlp_ratio=1.2,
            img_size=64,
            upsampler="pixelshuffledirect",
            resi_connection="1conv",
        ),
        scales=(2, 3, 4),
        description="MambaIR lightweight SR (Oct-2024 release): C=60, 4x6 VSSB, d_state 10 (~0.9M)",
    )
)
register_preset(
    Preset(
        name="mambair-restore",
        arch="mambair",
        params=dict(_MAMBA_CLASSIC, mlp_ratio=1.2, img_size=128, upsampler=""),
        scales=(1,),
        default_scale=1,
        tasks=("denoise", "jpeg"),
        description="MambaIR denoising / JPEG (residual head), the official DN/CAR layout",
    )
)
