"""RWKV-IR: preset shapes and sizes, any input size, the design's invariants, weights I/O."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from resyn.models import build_model, load_model, read_metadata, save_model
from resyn.models.rwkvir_blocks import CrossBiWKV, DCShift, fancy_init
from resyn.ops import bi_wkv


def tiny(name="rwkvir-light", scale=2, **kw):
    kw.setdefault("embed_dim", 8)
    kw.setdefault("depths", (1, 1))
    return build_model(name, scale=scale, **kw).eval()


# Paper, Table: lightweight RWKV-IR has 859K / 867K / 879K parameters at x2 / x3 / x4.
@pytest.mark.parametrize("scale, paper", [(2, 859_000), (3, 867_000), (4, 879_000)])
def test_light_preset_parameter_count_matches_paper(scale, paper):
    n = sum(p.numel() for p in build_model("rwkvir-light", scale=scale).parameters())
    assert abs(n - paper) / paper <= 0.05, n


def test_classic_preset_size_and_structure():
    model = build_model("rwkvir-classic", scale=4)
    n = sum(p.numel() for p in model.parameters())
    assert 20e6 <= n <= 23.5e6, n
    assert model.config.embed_dim == 192 and model.config.depths == (6,) * 6
    assert model.config.hidden_rate == 4 and model.config.upsampler == "pixelshuffle"
    assert model.layers[0].blocks[0].channel_mix.key.out_features == 4 * 192


@pytest.mark.parametrize("name", ["rwkvir-light", "rwkvir-classic"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_output_shapes(name, scale):
    model = tiny(name, scale)
    y = model(torch.rand(2, 3, 5, 7))
    assert y.shape == (2, 3, 5 * scale, 7 * scale)


@pytest.mark.parametrize("in_channels", [1, 3])
def test_restore_preset_keeps_shape_and_channels(in_channels):
    model = tiny("rwkvir-restore", scale=1, in_channels=in_channels)
    x = torch.rand(1, in_channels, 9, 4)
    assert model(x).shape == x.shape


@pytest.mark.parametrize("hw", [(1, 1), (1, 9), (9, 1), (3, 5), (16, 11)])
def test_any_input_size(hw):
    model = tiny(scale=2)
    y = model(torch.rand(1, 3, *hw))
    assert y.shape == (1, 3, 2 * hw[0], 2 * hw[1]) and torch.isfinite(y).all()


def test_bfloat16_forward_is_finite_and_close_to_float32():
    model = tiny(scale=2)
    x = torch.rand(1, 3, 12, 10)
    y32 = model(x)
    y16 = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert y16.dtype == torch.bfloat16 and torch.isfinite(y16).all()
    assert (y16.float() - y32).abs().max() < 0.1


def test_training_step_gives_finite_gradients_to_every_parameter():
    model = tiny(scale=2).train()
    x, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    torch.nn.functional.l1_loss(model(x), target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    wkv = model.layers[0].blocks[0].spatial_mix.wkv
    assert wkv.decay_h.grad.abs().sum() > 0 and wkv.first_v.grad.abs().sum() > 0


@pytest.mark.gpu
@pytest.mark.parametrize("name,scale", [("rwkvir-light", 2), ("rwkvir-restore", 1)])
def test_cuda_forward_and_gradients_match_cpu(name, scale):
    torch.manual_seed(0)
    model = tiny(name, scale=scale).train()
    x, target = torch.rand(2, 3, 12, 10), torch.rand(2, 3, 12 * scale, 10 * scale)
    cpu_loss = torch.nn.functional.l1_loss(model(x), target)
    cpu_loss.backward()
    cpu_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.cuda()
    loss = torch.nn.functional.l1_loss(model(x.cuda()), target.cuda())
    loss.backward()
    assert abs(loss.item() - cpu_loss.item()) <= 1e-4 * abs(cpu_loss.item())
    for n, p in model.named_parameters():
        ref = cpu_grads[n]
        assert (p.grad.cpu() - ref).abs().max() <= 1e-3 * max(ref.abs().max().item(), 1e-6), n
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        y = model.eval()(torch.rand(1, 3, 33, 17, device="cuda"))
    assert torch.isfinite(y.float()).all()


def _grid_transpose(x, h, w):
    """Channels-first (B, C, h·w) row-major -> column-major."""
    B, C, _ = x.shape
    return x.view(B, C, h, w).transpose(2, 3).reshape(B, C, h * w)


def test_vertical_branch_is_horizontal_branch_on_the_transposed_image():
    torch.manual_seed(1)
    H, W, C = 4, 6, 5
    cross = CrossBiWKV(C, layer=1, n_layers=3)
    with torch.no_grad():
        cross.decay_v.copy_(torch.randn(C))
        cross.first_v.copy_(torch.randn(C))
    k, v = torch.randn(2, C, H * W), torch.randn(2, C, H * W)  # channels-first tokens

    vertical = cross.branch(k, v, (H, W), vertical=True)
    T = H * W
    # the literal definition, in the public (B, T, C) layout of bi_wkv
    kt, vt = _grid_transpose(k, H, W).transpose(1, 2), _grid_transpose(v, H, W).transpose(1, 2)
    on_transposed = bi_wkv(kt, vt, cross.decay_v / T, cross.first_v / T).transpose(1, 2)
    assert torch.allclose(vertical, _grid_transpose(on_transposed, W, H), atol=1e-6)
    both = cross(k, v, (H, W)).transpose(1, 2)  # tokens out
    assert torch.allclose(both, cross.branch(k, v, (H, W), False) + vertical, atol=1e-6)


def test_cross_bi_wkv_is_transpose_symmetric_when_branches_share_parameters():
    H, W, C = 3, 5, 4
    cross = CrossBiWKV(C)  # both branches start from the same fancy init
    k, v = torch.randn(1, C, H * W), torch.randn(1, C, H * W)
    out_t = cross(_grid_transpose(k, H, W), _grid_transpose(v, H, W), (W, H)).transpose(1, 2)
    want = cross(k, v, (H, W)).transpose(1, 2)
    assert torch.allclose(_grid_transpose(out_t, W, H), want, atol=1e-6)


def test_fancy_init_values():
    decay, first = fancy_init(4, layer=0, n_layers=4)
    assert decay[0] == pytest.approx(-5.0) and decay[-1] == pytest.approx(3.0)
    ln03 = torch.log(torch.tensor(0.3)).item()
    assert first.tolist() == pytest.approx([ln03, ln03 + 0.5, ln03 - 0.5, ln03])
    # deeper layers decay more slowly in the middle channels (larger exponent)
    assert fancy_init(4, 3, 4)[0][1] < decay[1]


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_dc_shift_options(norm, kernel):
    shift = DCShift(6, kernel_size=kernel, norm=norm).eval()
    assert shift.dw.kernel_size == (kernel, kernel)
    assert shift(torch.rand(2, 6, 5, 4)).shape == (2, 6, 5, 4)
    model = tiny(shift_kernel=kernel, shift_norm=norm, shift_residual=True)
    assert model(torch.rand(1, 3, 4, 4)).shape == (1, 3, 8, 8)


def test_dc_shift_sees_its_kernel_neighbourhood_only():
    # A depth-wise k x k conv between 1x1 convs: a pixel change moves outputs within k//2 only.
    shift = DCShift(3, kernel_size=3, norm="none").eval()
    x = torch.rand(1, 3, 9, 9)
    x2 = x.clone()
    x2[0, :, 4, 4] += 1.0
    diff = (shift(x2) - shift(x)).abs().sum(dim=1)[0]
    assert diff[3:6, 3:6].min() > 0
    mask = torch.ones_like(diff, dtype=torch.bool)
    mask[3:6, 3:6] = False
    assert diff[mask].max() == 0


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="odd"):
        DCShift(4, kernel_size=2)
    with pytest.raises(ValueError, match="shift_norm"):
        tiny(shift_norm="group")
    with pytest.raises(ValueError, match="unknown option\\(s\\) for rwkvir: embed_dims"):
        build_model("rwkvir-light", scale=2, embed_dims=8)
    with pytest.raises(ValueError, match=r"available presets: .*rwkvir-light"):
        build_model("rwkvir-lite")
    with pytest.raises(ValueError, match="supports scale 2, 3, 4, not 8"):
        build_model("rwkvir-light", scale=8)
    with pytest.raises(ValueError, match="expects \\(B, 3, H, W\\)"):
        tiny()(torch.rand(1, 1, 4, 4))


def test_save_and_load_round_trip(tmp_path):
    model = tiny("rwkvir-restore", scale=1, in_channels=1, shift_norm="instance")
    path = save_model(model, tmp_path / "m.safetensors", info={"task": "denoise-gray-25"})
    meta = read_metadata(path)
    assert meta["arch"] == "rwkvir" and meta["preset"] == "rwkvir-restore"
    assert meta["config"]["shift_norm"] == "instance" and meta["info"]["task"] == "denoise-gray-25"
    loaded = load_model(path)
    assert loaded.config == model.config
    x = torch.rand(1, 1, 6, 6)
    assert torch.equal(loaded(x), model(x))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


def test_load_rejects_foreign_and_broken_files(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="no resyn metadata"):
        load_model(foreign)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(broken)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_global_skip_starts_at_the_interpolated_input(mode):
    model = tiny(scale=3, global_skip=mode)
    x = torch.rand(1, 3, 5, 4)
    want = torch.nn.functional.interpolate(x, scale_factor=3, mode=mode, align_corners=False)
    assert torch.allclose(model(x), want, atol=1e-6)
    with pytest.raises(ValueError, match="global_skip must be"):
        tiny(global_skip="nearest-exact")
    with pytest.raises(ValueError, match="already adds the input"):
        tiny("rwkvir-restore", scale=1, global_skip="bilinear")


def test_residual_head_starts_at_the_identity():
    model = tiny("rwkvir-restore", scale=1)
    x = torch.rand(2, 3, 6, 7)
    assert torch.allclose(model(x), x, atol=1e-6)


def test_channel_mix_inference_path_equals_the_training_path():
    from resyn.models.rwkvir_blocks import ChannelMix

    torch.manual_seed(0)
    mix = ChannelMix(8, hidden_rate=3)
    x = torch.randn(2, 30, 8)
    trained = mix(x)
    with torch.inference_mode():
        inferred = mix(x)
    assert torch.allclose(trained, inferred, atol=1e-6)
    want = torch.sigmoid(mix.receptance(x)) * mix.value(torch.relu(mix.key(x)) ** 2)
    assert torch.allclose(trained, want, atol=1e-6)


def test_dc_shift_batch_norm_on_one_value_per_channel():
    # Training BatchNorm on batch x H x W = 1 has no batch statistics: a clear ValueError that
    # names the part and the ways out, instead of torch's bare "Expected more than 1 value".
    shift = DCShift(3, norm="batch").train()
    with pytest.raises(ValueError, match=r"DC-Shift BatchNorm.*\(1, 3, 1, 1\).*shift_norm="):
        shift(torch.rand(1, 3, 1, 1))
    model = tiny(shift_norm="batch").train()
    with pytest.raises(ValueError, match="DC-Shift BatchNorm"):
        model(torch.rand(1, 3, 1, 1))
    # more than one value per channel still trains: a batch of two pixels, or two pixels
    assert shift(torch.rand(2, 3, 1, 1)).shape == (2, 3, 1, 1)
    assert model(torch.rand(1, 3, 1, 2)).shape == (1, 3, 2, 4)
    # eval mode uses the running statistics, as before: 1x1 works and equals plain BatchNorm
    shift.eval()
    x = torch.rand(1, 3, 1, 1)
    plain = torch.nn.BatchNorm2d(3).eval()
    plain.load_state_dict(shift.norm_in.state_dict())
    assert torch.equal(shift.norm_in(x), plain(x))
    assert torch.isfinite(model.eval()(x)).all()


def test_dc_shift_instance_norm_on_one_pixel():
    shift = DCShift(3, norm="instance")
    with torch.no_grad():
        shift.norm_in.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    # one pixel: x - mean is exactly 0, so instance norm gives its bias (torch refuses, even
    # in eval mode, which broke 1x1 images with shift_norm="instance")
    x = torch.rand(2, 3, 1, 1)
    assert torch.equal(
        shift.eval().norm_in(x), shift.norm_in.bias.view(1, 3, 1, 1).expand(2, 3, 1, 1)
    )
    assert tiny(shift_norm="instance")(torch.rand(1, 3, 1, 1)).shape == (1, 3, 2, 2)
    # more than one pixel: unchanged InstanceNorm2d
    y = torch.rand(1, 3, 2, 3)
    plain = torch.nn.InstanceNorm2d(3, affine=True)
    plain.load_state_dict(shift.norm_in.state_dict())
    assert torch.equal(shift.norm_in(y), plain(y))
    with pytest.raises(ValueError, match="DC-Shift InstanceNorm"):
        shift.train()(torch.rand(2, 3, 1, 1))
