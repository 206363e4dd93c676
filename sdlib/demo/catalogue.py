"""The demo catalogue: models a new user's guide names, as small but structurally real files.

``CATALOGUE`` describes models, versions, files and example images as plain data.
``build_files(directory)`` writes every file deterministically (safetensors via
``write_safetensors``, the few pickles as benign torch-zip archives written by hand, no torch
needed) and hashes them, so the API reports their true sizes and all six Civitai hashes.
``*_json`` functions shape the records exactly as Civitai's endpoints do (reference
civitai-api.md sections 2-3), including the differences between list and detail responses.

A "large" file (``LargeFile``) can be added for download benchmarks: a safetensors header
followed by zeros, generated on the fly and never stored; its hashes are computed once and
cached beside the generated files.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdlib.demo.writers import Spec, safetensors_header, write_safetensors
from sdlib.files.tensors import DTYPE_SIZES

__all__ = [
    "CATALOGUE",
    "CATALOGUE_NOW",
    "FileSpec",
    "ImageSpec",
    "LargeFile",
    "ModelSpec",
    "ServedFile",
    "VersionSpec",
    "build_files",
    "large_model",
]

#: The catalogue's "today": period filters (Week, Month...) count back from here, so
#: results do not change as the real calendar moves on.
CATALOGUE_NOW = "2024-06-01T00:00:00.000Z"


@dataclass(frozen=True)
class FileSpec:
    id: int
    name: str
    #: Which tensors to write: a key of ``TENSOR_SPECS``.
    tensors: str
    type: str = "Model"
    format: str = "SafeTensor"
    size: str | None = "pruned"
    fp: str | None = "fp16"
    primary: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageSpec:
    id: int
    width: int
    height: int
    meta: Mapping[str, Any] | None
    nsfw_level: int = 1


@dataclass(frozen=True)
class VersionSpec:
    id: int
    name: str
    base_model: str
    published_at: str
    files: tuple[FileSpec, ...]
    images: tuple[ImageSpec, ...] = ()
    trained_words: tuple[str, ...] = ()
    description: str | None = None
    base_model_type: str | None = "Standard"
    nsfw_level: int = 1
    #: ISO end of early access (download needs a token with early access until then).
    early_access_ends: str | None = None
    #: The creator requires a logged-in user to download.
    require_auth: bool = False
    download_count: int = 0
    thumbs_up: int = 0


@dataclass(frozen=True)
class ModelSpec:
    id: int
    name: str
    type: str
    creator: str
    versions: tuple[VersionSpec, ...]  # newest first, as Civitai lists them
    tags: tuple[str, ...] = ()
    description: str | None = None
    nsfw: bool = False
    nsfw_level: int = 1
    #: "Archived" or "TakenDown".
    mode: str | None = None
    poi: bool = False
    allow_commercial_use: tuple[str, ...] = ("Image", "RentCivit")
    downloads: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    comments: int = 0


@dataclass(frozen=True)
class LargeFile:
    """A safetensors file of ``size`` bytes generated on the fly (header + zeros)."""

    size: int
    #: The header's ``sdlib`` metadata: another label, other bytes (the demo Hub's copy).
    label: str = "benchmark"

    @property
    def header(self) -> bytes:
        body = self.size - 8
        meta = {"format": "pt", "sdlib": self.label}
        # One U8 tensor filling the rest; the header length decides the tensor length.
        for _ in range(3):
            head = safetensors_header({"benchmark.data": ("U8", (max(0, body),))}, meta)
            body = self.size - len(head)
        return safetensors_header({"benchmark.data": ("U8", (body,))}, meta)

    def open(self) -> io.RawIOBase:
        return _GeneratedReader(self.header, self.size)


class _GeneratedReader(io.RawIOBase):
    """A seekable read-only stream: ``head`` then zeros up to ``size`` bytes."""

    def __init__(self, head: bytes, size: int) -> None:
        self._head = head
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        end = self._pos + n
        head_part = max(0, min(end, len(self._head)) - self._pos)
        if head_part:
            view[:head_part] = self._head[self._pos : self._pos + head_part]
        view[head_part:n] = _zeros(n - head_part)
        self._pos = end
        return n

    def read(self, size: int | None = -1) -> bytes:
        """Past the header, one shared block of zeros (no allocation, no copy): download
        benchmarks share the cores with this server, which would otherwise spend about
        0.4 s of CPU per GiB making zeros a client never needs to see twice."""
        left = self._size - self._pos
        n = left if size is None or size < 0 else min(size, left)
        if n > 0 and self._pos >= len(self._head):
            self._pos += n
            return _zeros(n)
        return super().read(n) or b""


@functools.lru_cache(maxsize=4)
def _zeros(n: int) -> bytes:
    """``n`` zero bytes, the same object for the few sizes a server reads in."""
    return bytes(n)


@dataclass(frozen=True)
class ServedFile:
    """A generated file on disk (or a ``LargeFile``) with its true size and hashes."""

    spec: FileSpec
    size: int
    hashes: Mapping[str, str]
    path: Path | None = None
    large: LargeFile | None = None

    def open(self) -> io.RawIOBase | io.BufferedReader:
        if self.large is not None:
            return self.large.open()
        assert self.path is not None
        return open(self.path, "rb")


# --- tensor specs ---------------------------------------------------------------------------
# Real key names and shapes from ``sdlib.demo.specs``. A real checkpoint is gigabytes, so
# checkpoints and VAEs keep only their small tensors (biases, norms, small convs: most of the
# key names) plus the few larger "signature" tensors readers look at (the first
# cross-attention ``to_k``, whose width names the text encoder; position embeddings). LoRAs
# and LyCORIS keep every key at a low rank. Files come out at 0.1-5 MiB.

_SMALL = 64 << 10
_SIGNATURES = re.compile(
    r"(input_blocks\.(1|4)\.1\.transformer_blocks\.0\.attn2\.to_k\.weight"
    r"|embeddings\.position_embedding\.weight|positional_embedding"
    r"|conv_in\.weight|mid\.attn_1\.q\.weight|emb_params|clip_[lg])$"
)


def _nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    return int(math.prod(shape) * DTYPE_SIZES[dtype])


def slim(spec: Spec, *, small: int = _SMALL, signature_max: int = 3 << 20) -> dict[str, Any]:
    """The small tensors of ``spec`` plus its signature tensors, in the original order."""
    out: dict[str, Any] = {}
    for name, (dtype, shape) in spec.items():
        size = _nbytes(dtype, shape)
        if size <= small or (_SIGNATURES.search(name) and size <= signature_max):
            out[name] = (dtype, shape)
    return out


def _spec(name: str, *args: Any, **kwargs: Any) -> Callable[[], Spec]:
    def build() -> Spec:
        from sdlib.demo import specs

        made: Spec = getattr(specs, name)(*args, **kwargs)
        return made

    return build


TENSOR_SPECS: dict[str, Callable[[], Spec]] = {
    "sd1-checkpoint": lambda: slim(_spec("sd15_checkpoint", "F16", schedule=False)()),
    "sd1-checkpoint-full": lambda: slim(_spec("sd15_checkpoint", "F32", ema=True)()),
    "sdxl-checkpoint": lambda: slim(_spec("sdxl_checkpoint", "F16")()),
    "sd1-lora": _spec("lora_sd15_kohya", rank=4),
    "sd1-lycoris": _spec("loha_sd15", rank=2),
    "sd1-embedding": _spec("embedding_sd15", 8),
    "sd1-vae": lambda: slim(_spec("ldm_vae", "", "F32")()),
}


def tensor_spec(name: str) -> Spec:
    """The ``{key: (dtype, shape)}`` spec for a catalogue file kind."""
    return TENSOR_SPECS[name]()


# --- example images ------------------------------------------------------------------------


def _meta(
    prompt: str,
    *,
    sampler: str,
    steps: int,
    cfg: float,
    size: str,
    seed: int | float,
    clip_skip: int | None = None,
    model: str | None = None,
    negative: str = "(worst quality, low quality:1.4), easynegative",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "prompt": prompt,
        "negativePrompt": negative,
        "sampler": sampler,
        "steps": steps,
        "cfgScale": cfg,
        "seed": seed,
        "Size": size,
    }
    if clip_skip is not None:
        meta["Clip skip"] = str(clip_skip)  # A1111 infotext style: a string
    if model:
        meta["Model"] = model
    return meta


def _seed(n: int) -> int | float:
    # Every 7th seed is a float beyond int64, as Civitai sometimes serves them.
    return 1_000_003 * n % 4_294_967_296 if n % 7 else 1.2859270413054550e19


def _images(base_id: int, model: str, specs: Sequence[tuple[Any, ...]]) -> tuple[ImageSpec, ...]:
    out = []
    for i, (w, h, sampler, steps, cfg, clip, prompt) in enumerate(specs):
        meta = _meta(
            prompt, sampler=sampler, steps=steps, cfg=cfg, size=f"{w}x{h}",
            seed=_seed(base_id + i), clip_skip=clip, model=model,
        )  # fmt: skip
        out.append(ImageSpec(id=base_id + i, width=w, height=h, meta=meta))
    return tuple(out)


# --- the catalogue -------------------------------------------------------------------------

_PORTRAIT = "portrait of a woman, detailed face, soft light, 85mm, film grain"
_LANDSCAPE = "mountain lake at dawn, volumetric fog, highly detailed, masterpiece"
_ANIME = "1girl, solo, long hair, cherry blossoms, school uniform, smile, masterpiece"

_ST_META = {"format": "pt"}

CATALOGUE: tuple[ModelSpec, ...] = (
    ModelSpec(
        id=4384, name="DreamShaper", type="Checkpoint", creator="Lykon",
        tags=("anime", "landscapes", "3d", "base model", "illustration"),
        description="<p>A general purpose SD model that aims at doing everything well.</p>",
        downloads=1_254_301, thumbs_up=48_211, thumbs_down=112, comments=2_231,
        versions=(
            VersionSpec(
                id=128713, name="8", base_model="SD 1.5", published_at="2023-07-30T19:22:08.871Z",
                download_count=812_004, thumbs_up=31_020,
                files=(
                    FileSpec(128713_1, "dreamshaper_8.safetensors", "sd1-checkpoint", primary=True,
                             metadata=_ST_META),
                    FileSpec(128713_2, "dreamshaper_8.ckpt", "sd1-checkpoint",
                             format="PickleTensor"),
                    FileSpec(128713_3, "dreamshaper_8_full.safetensors", "sd1-checkpoint-full",
                             size="full", fp="fp32", metadata=_ST_META),
                ),
                images=_images(2_010_001, "dreamshaper_8", [
                    (512, 768, "DPM++ 2M Karras", 30, 7, 2, _PORTRAIT),
                    (768, 512, "DPM++ 2M Karras", 30, 7, 2, _LANDSCAPE),
                    (512, 768, "Euler a", 25, 6.5, 2, _ANIME),
                    (512, 768, "DPM++ 2M Karras", 40, 7, 1, _PORTRAIT + ", freckles"),
                ]),
            ),
            VersionSpec(
                id=109123, name="7", base_model="SD 1.5", published_at="2023-06-05T10:01:12.000Z",
                download_count=301_100, thumbs_up=12_774,
                files=(FileSpec(109123_1, "dreamshaper_7.safetensors", "sd1-checkpoint",
                                primary=True, metadata=_ST_META),),
                images=_images(2_020_001, "dreamshaper_7", [
                    (512, 768, "DPM++ SDE Karras", 28, 7, 2, _PORTRAIT),
                    (512, 512, "DPM++ SDE Karras", 28, 7, 2, _LANDSCAPE),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=4201, name="Realistic Vision V6.0 B1", type="Checkpoint", creator="SG_161222",
        tags=("photorealistic", "realistic", "base model", "portraits"),
        description="<p>Photorealistic portraits and scenes.</p>",
        downloads=1_020_550, thumbs_up=39_870, thumbs_down=95, comments=1_880,
        versions=(
            VersionSpec(
                id=245598, name="V6.0 B1 (VAE)", base_model="SD 1.5",
                published_at="2024-05-28T08:00:00.000Z",
                early_access_ends="2030-01-01T00:00:00.000Z",
                download_count=1_204, thumbs_up=310,
                files=(FileSpec(245598_1, "realisticVisionV60B1_v60B1VAE.safetensors",
                                "sd1-checkpoint", primary=True, metadata=_ST_META),),
                images=_images(2_030_001, "realisticVisionV60B1", [
                    (512, 768, "DPM++ SDE Karras", 25, 4, None, "RAW photo, " + _PORTRAIT),
                    (512, 768, "DPM++ SDE Karras", 25, 4.5, None, "RAW photo, a man, beard"),
                    (768, 512, "DPM++ 2M Karras", 30, 5, 1, "RAW photo, " + _LANDSCAPE),
                ]),
            ),
            VersionSpec(
                id=130072, name="V5.1 (VAE)", base_model="SD 1.5",
                published_at="2023-08-01T12:30:00.000Z", download_count=740_000, thumbs_up=26_000,
                files=(
                    FileSpec(130072_1, "realisticVisionV51_v51VAE.safetensors", "sd1-checkpoint",
                             primary=True, metadata=_ST_META),
                    FileSpec(130072_2, "realisticVisionV51_v51VAE.ckpt", "sd1-checkpoint",
                             format="PickleTensor"),
                    FileSpec(130072_3, "vae-ft-mse-840000-ema-pruned.safetensors", "sd1-vae",
                             type="VAE", size=None, fp="fp32"),
                ),
                images=_images(2_040_001, "realisticVisionV51", [
                    (512, 768, "DPM++ SDE Karras", 25, 4, 1, "RAW photo, " + _PORTRAIT),
                    (512, 768, "DPM++ SDE Karras", 30, 4, 1, "RAW photo, old fisherman"),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=43331, name="majicMIX realistic 麦橘写实", type="Checkpoint", creator="Merjic",
        tags=("photorealistic", "asian", "woman"), nsfw=True, nsfw_level=28,
        downloads=610_200, thumbs_up=20_100, thumbs_down=60, comments=900,
        versions=(
            VersionSpec(
                id=176425, name="v7", base_model="SD 1.5", published_at="2023-10-16T03:12:45.000Z",
                nsfw_level=28, download_count=400_000, thumbs_up=15_000,
                files=(FileSpec(176425_1, "majicmixRealistic_v7.safetensors", "sd1-checkpoint",
                                primary=True, metadata=_ST_META),),
                images=_images(2_050_001, "majicmixRealistic_v7", [
                    (512, 768, "Euler a", 30, 7, 2, "1girl, " + _PORTRAIT),
                    (512, 768, "Euler a", 30, 7, 2, "1girl, street, night"),
                    (512, 768, "DPM++ 2M Karras", 20, 7, 2, "1girl, beach"),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=101055, name="SD XL", type="Checkpoint", creator="civitai_official",
        tags=("base model", "sdxl"), description="<p>Stable Diffusion XL base 1.0.</p>",
        allow_commercial_use=("Image", "RentCivit", "Rent", "Sell"),
        downloads=700_120, thumbs_up=14_800, thumbs_down=300, comments=1_200,
        versions=(
            VersionSpec(
                id=128078, name="v1.0 VAE fix", base_model="SDXL 1.0",
                published_at="2023-07-27T18:00:00.000Z", download_count=650_000, thumbs_up=13_500,
                files=(FileSpec(128078_1, "sd_xl_base_1.0_0.9vae.safetensors", "sdxl-checkpoint",
                                primary=True, size="full", metadata=_ST_META),),
                images=_images(2_060_001, "sd_xl_base_1.0", [
                    (1024, 1024, "DPM++ 2M SDE Karras", 30, 7, None, _LANDSCAPE),
                    (1024, 1024, "DPM++ 2M SDE Karras", 30, 7, None, _PORTRAIT),
                    (832, 1216, "Euler a", 40, 6, None, "a fox in a snowy forest"),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=1102, name="Stable Diffusion v1.5", type="Checkpoint", creator="runwayml",
        tags=("base model",), description="<p>The original SD 1.5 release.</p>",
        downloads=380_000, thumbs_up=6_100, thumbs_down=70, comments=410,
        versions=(
            VersionSpec(
                id=1103, name="v1-5-pruned-emaonly", base_model="SD 1.5",
                published_at="2022-10-20T12:00:00.000Z", download_count=380_000, thumbs_up=6_100,
                files=(
                    FileSpec(1103_1, "v1-5-pruned-emaonly.safetensors", "sd1-checkpoint",
                             primary=True, fp="fp32", metadata=_ST_META),
                    FileSpec(1103_2, "v1-5-pruned.safetensors", "sd1-checkpoint-full",
                             size="full", fp="fp32", metadata=_ST_META),
                    FileSpec(1103_3, "v1-5-pruned-emaonly.ckpt", "sd1-checkpoint",
                             format="PickleTensor", fp="fp32"),
                ),
                images=_images(2_070_001, "v1-5-pruned-emaonly", [
                    (512, 512, "Euler a", 20, 7, 1, "an astronaut riding a horse"),
                    (512, 512, "Euler a", 20, 7, 1, _LANDSCAPE),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=1100, name="Stable Diffusion v1.4", type="Checkpoint", creator="CompVis",
        tags=("base model",), description="<p>The first widely used SD release.</p>",
        downloads=150_000, thumbs_up=2_900, thumbs_down=40, comments=150,
        versions=(
            VersionSpec(
                id=1101, name="sd-v1-4", base_model="SD 1.4",
                published_at="2022-08-22T12:00:00.000Z", download_count=150_000, thumbs_up=2_900,
                files=(
                    FileSpec(1101_1, "sd-v1-4.ckpt", "sd1-checkpoint-full", format="PickleTensor",
                             size="full", fp="fp32", primary=True),
                    FileSpec(1101_2, "sd-v1-4.safetensors", "sd1-checkpoint", fp="fp32",
                             metadata=_ST_META),
                ),
                images=_images(2_080_001, "sd-v1-4", [
                    (512, 512, "PLMS", 50, 7.5, 1, "a photograph of an astronaut riding a horse"),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=9409, name="Anything V5", type="Checkpoint", creator="Yuno779",
        tags=("anime", "base model"), downloads=520_000, thumbs_up=18_000, thumbs_down=80,
        comments=700, nsfw_level=3,
        versions=(
            VersionSpec(
                id=30163, name="Anything V5 [PRT]", base_model="SD 1.5",
                published_at="2023-04-01T00:00:00.000Z", download_count=420_000, thumbs_up=15_000,
                nsfw_level=3,
                files=(
                    FileSpec(30163_1, "anythingV5_PrtRE.safetensors", "sd1-checkpoint",
                             primary=True, metadata=_ST_META),
                    FileSpec(30163_2, "anythingV5_PrtRE.ckpt", "sd1-checkpoint",
                             format="PickleTensor"),
                ),
                images=_images(2_090_001, "anythingV5_PrtRE", [
                    (512, 768, "DPM++ 2M Karras", 20, 7, 2, _ANIME),
                    (512, 768, "DPM++ 2M Karras", 20, 7, 2, "1boy, armor, castle"),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=4823, name="Deliberate", type="Checkpoint", creator="XpucT",
        tags=("realistic", "art", "base model"), downloads=330_000, thumbs_up=11_000,
        thumbs_down=90, comments=640,
        versions=(
            VersionSpec(
                id=15236, name="v2", base_model="SD 1.5", published_at="2023-02-19T09:00:00.000Z",
                download_count=300_000, thumbs_up=10_000,
                files=(FileSpec(15236_1, "deliberate_v2.safetensors", "sd1-checkpoint",
                                primary=True, metadata=_ST_META),),
                images=_images(2_100_001, "deliberate_v2", [
                    (512, 768, "Euler a", 26, 6.5, 1, _PORTRAIT),
                    (512, 768, "Euler a", 26, 6.5, 1, "a knight, oil painting"),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=6424, name="ChilloutMix", type="Checkpoint", creator="tasuku",
        tags=("photorealistic", "asian"), nsfw=True, nsfw_level=28,
        downloads=900_000, thumbs_up=30_000, thumbs_down=400, comments=3_000,
        versions=(
            VersionSpec(
                id=11745, name="Chilloutmix-Ni-pruned-fp32-fix", base_model="SD 1.5",
                published_at="2023-01-26T00:00:00.000Z", nsfw_level=28, require_auth=True,
                download_count=900_000, thumbs_up=30_000,
                files=(FileSpec(11745_1, "chilloutmix_NiPrunedFp32Fix.safetensors",
                                "sd1-checkpoint", primary=True, fp="fp32", metadata=_ST_META),),
                images=_images(2_110_001, "chilloutmix_NiPrunedFp32Fix", [
                    (512, 768, "DPM++ SDE Karras", 28, 8, 2, "1girl, " + _PORTRAIT),
                    (512, 768, "DPM++ SDE Karras", 28, 8, 2, "1girl, cafe"),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=1890, name="F222", type="Checkpoint", creator="zeipher",
        tags=("photorealistic", "base model"), nsfw=True, nsfw_level=28,
        downloads=120_000, thumbs_up=2_100, thumbs_down=40, comments=90,
        versions=(
            VersionSpec(
                id=1891, name="F222", base_model="SD 1.4", published_at="2022-11-30T00:00:00.000Z",
                nsfw_level=28, download_count=120_000, thumbs_up=2_100,
                files=(FileSpec(1891_1, "f222.ckpt", "sd1-checkpoint-full", format="PickleTensor",
                                size="full", fp="fp32", primary=True),),
                images=_images(2_120_001, "f222", [
                    (512, 512, "Euler a", 30, 7, 1, _PORTRAIT),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=58390, name="Detail Tweaker LoRA (细节调整LoRA)", type="LORA", creator="Lykon",
        tags=("detailed", "tool", "concept"), downloads=600_000, thumbs_up=25_000,
        thumbs_down=20, comments=800,
        versions=(
            VersionSpec(
                id=62833, name="v1.0", base_model="SD 1.5", published_at="2023-05-05T00:00:00.000Z",
                download_count=600_000, thumbs_up=25_000,
                files=(FileSpec(62833_1, "add_detail.safetensors", "sd1-lora", primary=True,
                                size=None, metadata={
                                    "ss_network_module": "networks.lora", "ss_network_dim": "8",
                                    "ss_network_alpha": "4", "ss_base_model_version": "sd_v1",
                                    "ss_output_name": "add_detail"}),),
                images=_images(2_130_001, "dreamshaper_8", [
                    (512, 768, "DPM++ 2M Karras", 30, 7, 2, _PORTRAIT + ", <lora:add_detail:1>"),
                    (512, 768, "DPM++ 2M Karras", 30, 7, 2, _LANDSCAPE + ", <lora:add_detail:0.8>"),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=7371, name="Retro Anime Style (LoHa)", type="LoCon", creator="lycoris_fan",
        tags=("style", "anime", "retro"), downloads=41_000, thumbs_up=2_300, thumbs_down=5,
        comments=60,
        versions=(
            VersionSpec(
                id=8217, name="v2.0", base_model="SD 1.5", published_at="2023-09-12T00:00:00.000Z",
                trained_words=("retro anime", "1990s style"), download_count=30_000,
                thumbs_up=1_800,
                files=(FileSpec(8217_1, "retroAnime_v20.safetensors", "sd1-lycoris", primary=True,
                                size=None, metadata={
                                    "ss_network_module": "lycoris.kohya",
                                    "ss_network_args": '{"algo": "loha", "conv_dim": "4"}',
                                    "ss_base_model_version": "sd_v1"}),),
                images=_images(2_140_001, "anythingV5_PrtRE", [
                    (512, 768, "Euler a", 28, 8, 2, "retro anime, 1990s style, 1girl, city pop"),
                    (512, 768, "Euler a", 28, 8, 2, "retro anime, 1990s style, mecha"),
                ]),
            ),
            VersionSpec(
                id=8100, name="v1.0", base_model="SD 1.5", published_at="2023-03-01T00:00:00.000Z",
                trained_words=("retro anime",), download_count=11_000, thumbs_up=500,
                files=(FileSpec(8100_1, "retroAnime_v10.safetensors", "sd1-lycoris", primary=True,
                                size=None),),
            ),
        ),
    ),
    ModelSpec(
        id=7808, name="EasyNegative", type="TextualInversion", creator="rqdwdw",
        tags=("negative", "embedding"), downloads=1_500_000, thumbs_up=60_000, thumbs_down=300,
        comments=2_500,
        versions=(
            VersionSpec(
                id=9536, name="EasyNegative", base_model="SD 1.5",
                published_at="2023-02-10T00:00:00.000Z", trained_words=("easynegative",),
                download_count=1_500_000, thumbs_up=60_000,
                files=(FileSpec(9536_1, "easynegative.safetensors", "sd1-embedding", primary=True,
                                size=None, fp=None),),
                images=_images(2_150_001, "anythingV5_PrtRE", [
                    (512, 768, "DPM++ 2M Karras", 20, 7, 2, _ANIME),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=5086, name="Anime Lineart Hypernetwork", type="Hypernetwork", creator="hn_artist",
        tags=("style", "lineart"), downloads=9_000, thumbs_up=400, thumbs_down=3, comments=12,
        versions=(
            VersionSpec(
                id=5087, name="v1", base_model="SD 1.5", published_at="2022-12-01T00:00:00.000Z",
                trained_words=("lineart",), download_count=9_000, thumbs_up=400,
                files=(FileSpec(5087_1, "animeLineart_v1.pt", "sd1-hypernetwork",
                                format="PickleTensor", size=None, fp="fp32", primary=True),),
                images=_images(2_160_001, "anythingV5_PrtRE", [
                    (512, 512, "Euler a", 20, 7, 2, "lineart, 1girl, monochrome"),
                ]),
            ),
        ),
    ),
    ModelSpec(
        id=23906, name="vae-ft-mse-840000-ema-pruned", type="VAE", creator="stabilityai_mirror",
        tags=("vae",), downloads=420_000, thumbs_up=9_000, thumbs_down=10, comments=100,
        versions=(
            VersionSpec(
                id=28569, name="ft-mse-840000", base_model="SD 1.5",
                published_at="2023-03-20T00:00:00.000Z", download_count=420_000, thumbs_up=9_000,
                files=(FileSpec(28569_1, "vae-ft-mse-840000-ema-pruned.safetensors", "sd1-vae",
                                primary=True, fp="fp32", size=None),),
            ),
        ),
    ),
    ModelSpec(
        id=3666, name="Protogen x3.4", type="Checkpoint", creator="darkstorm2150",
        tags=("photorealistic",), mode="Archived", downloads=200_000, thumbs_up=5_000,
        thumbs_down=60, comments=300,
        versions=(
            VersionSpec(
                id=4048, name="x3.4", base_model="SD 1.5", published_at="2023-01-05T00:00:00.000Z",
                download_count=200_000, thumbs_up=5_000,
                files=(FileSpec(4048_1, "protogenX34_v34.safetensors", "sd1-checkpoint",
                                primary=True, metadata=_ST_META),),
            ),
        ),
    ),
)  # fmt: skip

#: Model id of the optional large benchmark file.
LARGE_MODEL_ID = 999_001
LARGE_VERSION_ID = 999_002
LARGE_FILE_ID = 999_003


def large_model() -> ModelSpec:
    """The catalogue entry for the generated benchmark file (its size is set at build time)."""
    return ModelSpec(
        id=LARGE_MODEL_ID, name="sdlib benchmark blob", type="Checkpoint", creator="sdlib",
        tags=("benchmark",), description="<p>Zeros behind a safetensors header.</p>",
        versions=(
            VersionSpec(
                id=LARGE_VERSION_ID, name="v1", base_model="Other",
                published_at="2024-01-01T00:00:00.000Z",
                files=(FileSpec(LARGE_FILE_ID, "sdlib_benchmark.safetensors", "large",
                                primary=True, size="full", fp=None),),
            ),
        ),
    )  # fmt: skip


# --- writing and hashing -------------------------------------------------------------------


def _fill(file_id: int) -> bytes:
    """A per-file byte pattern, so no two files share a hash.

    Bit 6 of every odd byte is clear: an even-aligned fp16, bf16, fp32 or fp64 element has
    its top byte there, so its exponent is never all ones. The demo models hold no NaN or
    Inf (their weights stay under 2 in magnitude), like real ones: convert and merge refuse
    NaN and Inf.
    """
    digest = hashlib.sha256(f"sdlib-demo:{file_id}".encode()).digest()
    return bytes(b & 0xBF if i % 2 else b for i, b in enumerate(digest))


def _write_file(spec: FileSpec, path: Path) -> None:
    if spec.tensors == "sd1-hypernetwork":
        _write_torch_zip(path, _hypernetwork_obj(), spec.id)
        return
    tensors = tensor_spec(spec.tensors)
    if spec.format == "PickleTensor":
        _write_torch_zip(path, {"state_dict": _TensorDict(tensors), "global_step": 470000},
                         spec.id)  # fmt: skip
        return
    write_safetensors(path, tensors, dict(spec.metadata) or None, fill=_fill(spec.id))


def _hypernetwork_obj() -> dict[Any, Any]:
    # A1111's layout (layer structure 1, 2, 1): {dim: [module for k, module for v], ...}.
    # Full weights for 320 only; the larger dims keep their biases to stay small.
    layers: dict[int, list[_TensorDict]] = {}
    for dim in (768, 320, 640, 1280):
        module: dict[str, tuple[str, tuple[int, ...]]] = {
            "linear.0.bias": ("F32", (dim * 2,)),
            "linear.1.bias": ("F32", (dim,)),
        }
        if dim == 320:
            module["linear.0.weight"] = ("F32", (dim * 2, dim))
            module["linear.1.weight"] = ("F32", (dim, dim * 2))
        layers[dim] = [_TensorDict(sorted(module.items())) for _ in range(2)]
    return {
        **layers,
        "step": 4000,
        "name": "animeLineart_v1",
        "layer_structure": [1.0, 2.0, 1.0],
        "activation_func": "linear",
        "is_layer_norm": False,
        "weight_initialization": "Normal",
        "use_dropout": False,
        "sd_checkpoint": "e1441589",
        "sd_checkpoint_name": "anything-v3-fp16-pruned",
    }


def build_files(
    directory: str | os.PathLike[str],
    catalogue: Sequence[ModelSpec] = CATALOGUE,
    *,
    large_size: int | None = None,
) -> dict[int, ServedFile]:
    """Write (or reuse) every catalogue file under ``directory``; return them by file id.

    A file is reused only when its recorded fingerprint (its catalogue entry, its tensor
    spec and the generator version) still matches and its size is unchanged; its hashes
    are then read from ``hashes.json`` instead of being recomputed.
    """
    from sdlib.hashing import hash_file, hash_stream

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    cache_path = root / "hashes.json"
    try:
        cache: dict[str, Any] = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    served: dict[int, ServedFile] = {}
    for model in catalogue:
        for version in model.versions:
            for spec in version.files:
                path = root / f"{spec.id}-{spec.name}"
                key = f"{spec.id}-{spec.name}"
                entry = cache.get(key)
                fingerprint = _fingerprint(spec)
                fresh = (
                    entry is not None
                    and entry.get("fingerprint") == fingerprint
                    and path.is_file()
                    and path.stat().st_size == entry.get("size")
                )
                if not fresh:
                    tmp = path.with_name(path.name + ".tmp")
                    _write_file(spec, tmp)
                    os.replace(tmp, path)
                    size = path.stat().st_size
                    entry = {"size": size, "fingerprint": fingerprint,
                             "hashes": _civitai_hashes(hash_file(path))}  # fmt: skip
                    cache[key] = entry
                assert entry is not None
                served[spec.id] = ServedFile(
                    spec=spec, size=entry["size"], hashes=entry["hashes"], path=path
                )
    if large_size:
        large = LargeFile(large_size)
        spec = large_model().versions[0].files[0]
        key = f"large-{large_size}"
        entry = cache.get(key)
        if not entry:
            with large.open() as fh:
                hashes = _civitai_hashes(hash_stream(fh, large_size))
            entry = {"size": large_size, "hashes": hashes}
            cache[key] = entry
        served[spec.id] = ServedFile(spec=spec, size=large_size, hashes=entry["hashes"],
                                     large=large)  # fmt: skip
    tmp = cache_path.with_name("hashes.json.tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    os.replace(tmp, cache_path)
    return served


#: Bump when the bytes written for an unchanged spec change.
_GENERATOR_VERSION = "3"


def _fingerprint(spec: FileSpec) -> str:
    tensors = None if spec.tensors == "sd1-hypernetwork" else tensor_spec(spec.tensors)
    text = repr((_GENERATOR_VERSION, spec, tensors))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _civitai_hashes(h: Any) -> dict[str, str]:
    out = {"AutoV1": h.autov1, "AutoV2": h.autov2, "SHA256": h.sha256, "CRC32": h.crc32,
           "BLAKE3": h.blake3, "AutoV3": h.autov3}  # fmt: skip
    return {k: v for k, v in out.items() if v}


# --- benign torch-zip pickles (via sdlib.demo.pickles) ------------------------------------


class _TensorDict(dict[str, tuple[str, tuple[int, ...]]]):
    """Marks a spec to be pickled as a state dict (an ``OrderedDict``) of tensors."""


def _to_pickle_obj(obj: Any, fill: bytes) -> Any:
    """Catalogue objects -> ``sdlib.demo.pickles`` values (tensors get ``fill`` data)."""
    from sdlib.demo import pickles

    if isinstance(obj, _TensorDict):
        out = pickles.StateDict()
        for key, (dtype, shape) in obj.items():
            nbytes = _nbytes(dtype, shape)
            data = (fill * (nbytes // len(fill) + 1))[:nbytes]
            out[key] = pickles.Tensor(data=data, dtype=dtype, shape=tuple(shape))
        return out
    if isinstance(obj, dict):
        return {k: _to_pickle_obj(v, fill) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_pickle_obj(v, fill) for v in obj]
    return obj


def _write_torch_zip(path: Path, obj: Any, file_id: int) -> None:
    """A torch.save-style zip whose only globals are the ones ``weights_only`` allows."""
    from sdlib.demo import pickles

    path.write_bytes(pickles.torch_zip(_to_pickle_obj(obj, _fill(file_id))))


# --- preview images ------------------------------------------------------------------------


def preview_png(image_id: int, width: int, height: int) -> bytes:
    """A small deterministic gradient PNG with the image's aspect ratio (long side 96 px)."""
    scale = 96 / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    seed = hashlib.sha256(str(image_id).encode()).digest()
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            rows += bytes((
                (seed[0] + x * 255 // w) % 256,
                (seed[1] + y * 255 // h) % 256,
                (seed[2] + (x + y) * 2) % 256,
            ))  # fmt: skip

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


def iter_versions(catalogue: Sequence[ModelSpec]) -> Iterator[tuple[ModelSpec, VersionSpec]]:
    for model in catalogue:
        for version in model.versions:
            yield model, version
