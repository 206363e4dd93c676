"""The synthetic specs match the key and parameter counts classify.md derives (section 1.7)."""

from __future__ import annotations

import math

import pytest

from sdlib.demo import specs as S
from sdlib.files.tensors import DTYPE_SIZES


def _params(spec: S.Spec) -> int:
    return sum(math.prod(shape) for _dt, shape in spec.values())


@pytest.mark.parametrize(
    ("spec", "keys", "params"),
    [
        (S.ldm_unet(""), 686, 859_520_964),  # SD1 UNet
        (S.ldm_unet("", ctx=1024, linear=True), 686, 865_910_724),  # SD2 UNet
        (S.ldm_unet("", mult=(1, 2, 4), depth=(0, 2, 10), mid_depth=10, ctx=2048, linear=True,
                    adm=2816), 1680, 2_567_463_684),  # SDXL UNet
        (S.ldm_vae(""), 248, 83_653_863),  # SD VAE
        (S.clip_l_hf(), 197, 123_060_557),  # CLIP-L text
        (S.clip_open("", width=1280, layers=32), 390, 694_659_841),  # OpenCLIP bigG text
        (S.controlnet_sd15(), 340, 361_279_120),  # SD1 ControlNet
    ],
)  # fmt: skip
def test_component_sizes_match_the_reference(spec: S.Spec, keys: int, params: int) -> None:
    assert (len(spec), _params(spec)) == (keys, params)


def test_refiner_unet_size() -> None:
    unet = {k: v for k, v in S.sdxl_refiner_checkpoint().items() if k.startswith("model.")}
    assert (len(unet), _params(unet)) == (1220, 2_259_526_660)


def test_ema_keys_use_the_dotless_litema_names() -> None:
    spec = S.sd15_checkpoint(ema=True)
    assert "model_ema.diffusion_modelinput_blocks00weight" in spec
    assert {"model_ema.decay", "model_ema.num_updates"} <= set(spec)
    ema = [k for k in spec if k.startswith("model_ema.diffusion_model")]
    assert len(ema) == sum(1 for k in spec if k.startswith("model.diffusion_model."))


@pytest.mark.parametrize("name", sorted(S.SPECS))
def test_specs_are_well_formed(name: str) -> None:
    spec, metadata = S.spec_with_metadata(name)
    assert spec
    for key, (dtype, shape) in spec.items():
        assert dtype in DTYPE_SIZES, key
        assert all(isinstance(d, int) and d > 0 for d in shape), key
    assert all(isinstance(v, str) for v in metadata.values())


def test_lora_fixtures_carry_kohya_metadata() -> None:
    md = S.METADATA["lora_sdxl_kohya"]
    assert md["ss_network_module"] == "networks.lora"
    assert md["ss_base_model_version"] == "sdxl_base_v1-0"
    assert (md["ss_network_dim"], md["ss_network_alpha"]) == ("16", "8.0")
