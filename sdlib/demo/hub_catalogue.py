"""The demo Hub's repos: real repo ids, file names and tensor key names, small bytes.

``HUB_CATALOGUE`` describes model repos as the Hugging Face Hub has them (reference
huggingface.md section 1.6): a VAE repo, SD 1.5 with its single-file checkpoint *and* its
diffusers folders, the repo it was renamed from, LoRAs, a ControlNet, an embedding, a gated
repo and a repo with several top-level checkpoints. ``build_hub_files(directory)`` writes
every file deterministically (safetensors from ``sdlib.demo.specs`` key/shape specs, slimmed
as the Civitai demo's are) and records its size, sha256 and git blob id, so the demo Hub's
answers carry true LFS facts: ``hashlib.sha256`` over the bytes served equals the published
``lfs.oid`` / ``X-Linked-Etag``.

For download benchmarks, ``hub_large_repo(size)`` describes ``HUB_LARGE_REPO`` with one
generated file (``HUB_LARGE_PATH``: a safetensors header then zeros, as the Civitai demo's
``LargeFile``), read on the fly and never stored; only its sha256 is kept in ``hashes.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlib.demo.writers import Spec, write_safetensors

if TYPE_CHECKING:
    from sdlib.demo.catalogue import LargeFile

__all__ = [
    "GATED_TOKENS",
    "HUB_CATALOGUE",
    "HUB_LARGE_PATH",
    "HUB_LARGE_REPO",
    "HUB_RENAMES",
    "HUB_TOKENS",
    "HubFileSpec",
    "HubRepoSpec",
    "HubServedFile",
    "build_hub_files",
    "commit_of",
    "git_blob_id",
    "hub_large_repo",
    "lfs_pointer",
]

#: Tokens the demo Hub knows: the first has access to every gated repo, the second is a
#: valid account that has not been approved yet.
HUB_TOKENS = ("hf_demo_token", "hf_demo_pending")
GATED_TOKENS = ("hf_demo_token",)
#: Old repo id -> new one: the Hub answers the old name with a redirect (runwayml moved).
HUB_RENAMES: Mapping[str, str] = {
    "runwayml/stable-diffusion-v1-5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}
_LFS_EXTENSIONS = (".safetensors", ".ckpt", ".bin", ".gguf", ".pt", ".pth", ".sft", ".png")


@dataclass(frozen=True)
class HubFileSpec:
    """One file: tensors (a key of ``_TENSORS``) for weights, or text for small git files."""

    path: str
    tensors: str | None = None
    text: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: Files that hold the same bytes as another path in the repo (madebyollin's two names).
    same_as: str | None = None
    #: Size of a generated file (header + zeros, read on the fly, never written to disk).
    generated: int | None = None

    @property
    def lfs(self) -> bool:
        return self.path.lower().endswith(_LFS_EXTENSIONS)


@dataclass(frozen=True)
class HubRepoSpec:
    id: str
    files: tuple[HubFileSpec, ...]
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = None
    #: False, "auto" or "manual" (as the Hub's ``gated`` field).
    gated: bool | str = False
    downloads: int = 0
    likes: int = 0
    trending: int = 0
    created_at: str = "2023-01-01T00:00:00.000Z"
    last_modified: str = "2024-01-01T00:00:00.000Z"
    card: Mapping[str, Any] = field(default_factory=dict)
    #: Other revisions than ``main`` (branches, tags, ``refs/pr/N``).
    revisions: tuple[str, ...] = ()

    @property
    def author(self) -> str:
        return self.id.split("/", 1)[0]


def commit_of(repo: str, revision: str) -> str:
    """The demo's commit id of a revision (40 hex digits, stable across runs)."""
    return hashlib.sha1(f"sdlib-demo-hub:{repo}:{revision}".encode()).hexdigest()


def git_blob_id(data: bytes) -> str:
    """Git's object id of a blob: sha1 of ``blob <size>\\0`` and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The LFS pointer file git stores in place of a large file."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def _readme(title: str, body: str, front: Mapping[str, Any]) -> str:
    lines = ["---"]
    for key, value in front.items():
        if isinstance(value, (list, tuple)):
            lines.append(f"{key}:")
            lines += [f"- {v}" for v in value]
        else:
            lines.append(f"{key}: {value}")
    return "\n".join([*lines, "---", "", f"# {title}", "", body, "", "## Usage", "", "..."]) + "\n"


def _spec(name: str, *args: Any, small: int | None = None, **kwargs: Any) -> Callable[[], Spec]:
    def build() -> Spec:
        from sdlib.demo import specs
        from sdlib.demo.catalogue import slim

        made: Spec = getattr(specs, name)(*args, **kwargs)
        return slim(made, small=small) if small is not None else made

    return build


_TENSORS: dict[str, Callable[[], Spec]] = {
    "sd1-checkpoint": _spec("sd15_checkpoint", "F16", schedule=False, small=64 << 10),
    "sdxl-checkpoint": _spec("sdxl_checkpoint", "F16", small=8 << 10),
    "sd-vae": _spec("ldm_vae", "", "F32", small=64 << 10),
    "flux-vae": _spec("ldm_vae", "", "BF16", z=16, small=64 << 10),
    "sd1-unet-diffusers": _spec(
        "diffusers_unet",
        "",
        "F16",
        ctx=768,
        linear=False,
        depth=(1, 1, 1),
        mid_depth=1,
        adm=None,
        small=64 << 10,
    ),
    "clip-l": _spec("clip_l_hf", small=64 << 10),
    "sd1-lora": _spec("lora_sd15_kohya", rank=4),
    "sdxl-lora": _spec("lora_sdxl_kohya", rank=1, small=4 << 10),
    "sd1-controlnet": _spec("controlnet_sd15", "F16", small=64 << 10),
    "sd1-embedding": _spec("embedding_sd15", 8),
}

_SD15_CARD = {"license": "creativeml-openrail-m", "tags": ["stable-diffusion", "text-to-image"]}
_F = HubFileSpec
_SD_VAE_CONFIG = json.dumps({"_class_name": "AutoencoderKL", "latent_channels": 4}, indent=2)

HUB_CATALOGUE: tuple[HubRepoSpec, ...] = (
    HubRepoSpec(
        "stabilityai/sdxl-vae",
        files=(
            _F("README.md", text=_readme("SDXL - VAE", "SDXL is a latent diffusion model; this "
               "is its autoencoder, fine-tuned for sharper details.", {"license": "mit"})),
            _F("config.json", text=_SD_VAE_CONFIG),
            _F("diffusion_pytorch_model.safetensors", tensors="sd-vae"),
            _F("sdxl_vae.safetensors", tensors="sd-vae"),
        ),
        tags=("diffusers", "safetensors", "stable-diffusion", "license:mit"),
        library_name="diffusers", downloads=1_012_345, likes=812, trending=5,
        card={"license": "mit"}, last_modified="2023-08-01T12:00:00.000Z",
    ),
    HubRepoSpec(
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        files=(
            _F("README.md", text=_readme("Stable Diffusion v1-5 Model Card", "Stable Diffusion "
               "is a latent text-to-image diffusion model capable of generating photo-realistic "
               "images given any text input.", _SD15_CARD)),
            _F("model_index.json", text=json.dumps({"_class_name": "StableDiffusionPipeline"})),
            _F("v1-5-pruned-emaonly.safetensors", tensors="sd1-checkpoint"),
            _F("scheduler/scheduler_config.json", text='{"_class_name": "PNDMScheduler"}'),
            _F("text_encoder/config.json", text='{"architectures": ["CLIPTextModel"]}'),
            _F("text_encoder/model.safetensors", tensors="clip-l"),
            _F("unet/config.json", text='{"_class_name": "UNet2DConditionModel"}'),
            _F("unet/diffusion_pytorch_model.safetensors", tensors="sd1-unet-diffusers"),
            _F("vae/config.json", text=_SD_VAE_CONFIG),
            _F("vae/diffusion_pytorch_model.safetensors", tensors="sd-vae"),
        ),
        tags=("diffusers", "safetensors", "stable-diffusion", "text-to-image",
              "diffusers:StableDiffusionPipeline", "license:creativeml-openrail-m"),
        pipeline_tag="text-to-image", library_name="diffusers", downloads=2_345_678,
        likes=1_234, trending=20, card=_SD15_CARD, revisions=("fp16", "refs/pr/1"),
        created_at="2024-08-30T00:00:00.000Z", last_modified="2024-09-03T00:00:00.000Z",
    ),
    HubRepoSpec(
        "stabilityai/stable-diffusion-xl-base-1.0",
        files=(
            _F("README.md", text=_readme("SD-XL 1.0-base Model Card", "SDXL consists of an "
               "ensemble of experts pipeline for latent diffusion.",
               {"license": "openrail++", "tags": ["text-to-image", "stable-diffusion"]})),
            _F("model_index.json", text='{"_class_name": "StableDiffusionXLPipeline"}'),
            _F("sd_xl_base_1.0.safetensors", tensors="sdxl-checkpoint"),
            _F("sd_xl_base_1.0_0.9vae.safetensors", tensors="sdxl-checkpoint",
               metadata={"modelspec.title": "SDXL 1.0 with the 0.9 VAE"}),
            _F("sd_xl_offset_example-lora_1.0.safetensors", tensors="sdxl-lora"),
            _F("vae/config.json", text=_SD_VAE_CONFIG),
            _F("vae/diffusion_pytorch_model.safetensors", tensors="sd-vae"),
        ),
        tags=("diffusers", "safetensors", "text-to-image", "stable-diffusion",
              "diffusers:StableDiffusionXLPipeline", "license:openrail++"),
        pipeline_tag="text-to-image", library_name="diffusers", downloads=3_000_000,
        likes=6_500, trending=40, card={"license": "openrail++"},
        last_modified="2023-10-30T00:00:00.000Z",
    ),
    HubRepoSpec(
        "madebyollin/sdxl-vae-fp16-fix",
        files=(
            _F("README.md", text=_readme("SDXL-VAE-FP16-Fix", "SDXL-VAE-FP16-Fix is the SDXL "
               "VAE, modified to run in fp16 precision without generating NaNs.",
               {"license": "mit"})),
            _F("config.json", text=_SD_VAE_CONFIG),
            _F("diffusion_pytorch_model.safetensors", tensors="sd-vae"),
            _F("sdxl.vae.safetensors", tensors="sd-vae", same_as="sdxl_vae.safetensors"),
            _F("sdxl_vae.safetensors", tensors="sd-vae"),
        ),
        tags=("diffusers", "safetensors", "license:mit"), library_name="diffusers",
        downloads=400_000, likes=600, trending=8, card={"license": "mit"},
    ),
    HubRepoSpec(
        "latent-consistency/lcm-lora-sdv1-5",
        files=(
            _F("README.md", text=_readme("Latent Consistency Model (LCM) LoRA: SDv1-5",
               "LCM-LoRA reduces the number of inference steps to between 2 and 8.",
               {"library_name": "diffusers", "base_model": "runwayml/stable-diffusion-v1-5",
                "tags": ["lora", "text-to-image"], "license": "openrail++"})),
            _F("pytorch_lora_weights.safetensors", tensors="sd1-lora"),
        ),
        tags=("diffusers", "lora", "text-to-image", "base_model:runwayml/stable-diffusion-v1-5",
              "base_model:adapter:runwayml/stable-diffusion-v1-5", "license:openrail++"),
        pipeline_tag="text-to-image", library_name="diffusers", downloads=150_000, likes=480,
        trending=3, card={"license": "openrail++", "base_model": "runwayml/stable-diffusion-v1-5"},
    ),
    HubRepoSpec(
        "latent-consistency/lcm-lora-sdxl",
        files=(
            _F("README.md", text=_readme("Latent Consistency Model (LCM) LoRA: SDXL",
               "LCM-LoRA for Stable Diffusion XL.",
               {"base_model": "stabilityai/stable-diffusion-xl-base-1.0", "tags": ["lora"]})),
            _F("pytorch_lora_weights.safetensors", tensors="sdxl-lora"),
        ),
        tags=("diffusers", "lora", "text-to-image",
              "base_model:stabilityai/stable-diffusion-xl-base-1.0",
              "base_model:adapter:stabilityai/stable-diffusion-xl-base-1.0", "license:openrail++"),
        pipeline_tag="text-to-image", library_name="diffusers", downloads=250_000, likes=780,
        trending=6,
        card={"license": "openrail++", "base_model": "stabilityai/stable-diffusion-xl-base-1.0"},
    ),
    HubRepoSpec(
        "comfyanonymous/ControlNet-v1-1_fp16_safetensors",
        files=(
            _F("README.md", text="Safetensors/FP16 versions of the new ControlNet-v1-1 "
               "checkpoints.\n"),
            _F("control_v11p_sd15_canny_fp16.safetensors", tensors="sd1-controlnet"),
        ),
        tags=("controlnet", "license:openrail"), downloads=90_000, likes=400, trending=2,
        card={"license": "openrail"},
    ),
    HubRepoSpec(
        "gsdf/EasyNegative",
        files=(_F("EasyNegative.safetensors", tensors="sd1-embedding"),),
        tags=("textual_inversion", "license:other"), downloads=50_000, likes=900, trending=1,
        card={"license": "other"},
    ),
    HubRepoSpec(
        "black-forest-labs/FLUX.1-dev",
        files=(
            _F("README.md", text=_readme("FLUX.1 [dev]", "FLUX.1 [dev] is a 12 billion "
               "parameter rectified flow transformer.",
               {"license": "other", "license_name": "flux-1-dev-non-commercial-license"})),
            _F("ae.safetensors", tensors="flux-vae"),
        ),
        tags=("diffusers", "safetensors", "text-to-image", "flux", "license:other"),
        pipeline_tag="text-to-image", library_name="diffusers", gated="auto",
        downloads=1_500_000, likes=11_000, trending=60, card={"license": "other"},
    ),
)  # fmt: skip


#: The repo ``hub_large_repo`` describes and its one generated file.
HUB_LARGE_REPO = "sdlib/benchmark"
HUB_LARGE_PATH = "sdlib_benchmark.safetensors"


def hub_large_repo(size: int) -> HubRepoSpec:
    """A repo with one generated safetensors file of ``size`` bytes (download benchmarks)."""
    return HubRepoSpec(
        HUB_LARGE_REPO, files=(HubFileSpec(HUB_LARGE_PATH, generated=size),),
        tags=("safetensors", "benchmark", "license:mit"), card={"license": "mit"},
    )  # fmt: skip


@dataclass(frozen=True)
class HubServedFile:
    """A repo file as the demo Hub serves it: bytes on disk (LFS), in memory (git) or
    generated on the fly (``large``)."""

    repo: str
    spec: HubFileSpec
    size: int
    sha256: str
    blob_id: str
    path: Path | None = None
    data: bytes | None = None
    large: LargeFile | None = None

    @property
    def lfs(self) -> bool:
        return self.spec.lfs

    def read(self) -> bytes:
        with self.open() as fh:
            data: bytes = fh.read()
        return data

    def open(self) -> Any:
        import io

        if self.data is not None:
            return io.BytesIO(self.data)
        if self.large is not None:
            return self.large.open()
        assert self.path is not None
        return open(self.path, "rb")


#: Bump when the bytes written for an unchanged spec change.
_GENERATOR_VERSION = "1"


def _fill(repo: str, path: str) -> bytes:
    """A per-file byte pattern (no NaN or Inf in any float width: bit 6 of odd bytes clear)."""
    digest = hashlib.sha256(f"sdlib-demo-hub:{repo}/{path}".encode()).digest()
    return bytes(b & 0xBF if i % 2 else b for i, b in enumerate(digest))


def build_hub_files(
    directory: str | os.PathLike[str], catalogue: Sequence[HubRepoSpec] = HUB_CATALOGUE
) -> dict[tuple[str, str], HubServedFile]:
    """Write (or reuse) every repo file under ``directory``; return them by (repo, path)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    cache_path = root / "hashes.json"
    try:
        cache: dict[str, Any] = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    out: dict[tuple[str, str], HubServedFile] = {}
    for repo in catalogue:
        for spec in repo.files:
            source = spec.same_as or spec.path
            if spec.generated is not None:
                out[(repo.id, spec.path)] = _generated(spec.generated, cache)
                continue
            if spec.text is not None:
                data = spec.text.encode()
                out[(repo.id, spec.path)] = HubServedFile(
                    repo.id, spec, len(data), hashlib.sha256(data).hexdigest(),
                    git_blob_id(data), data=data,
                )  # fmt: skip
                continue
            assert spec.tensors is not None
            key = f"{repo.id}/{source}"
            path = root / key.replace("/", "__")
            fingerprint = hashlib.sha256(
                repr((_GENERATOR_VERSION, spec.tensors, dict(spec.metadata))).encode()
            ).hexdigest()[:16]
            entry = cache.get(key)
            if not (entry and entry.get("fingerprint") == fingerprint and path.is_file()
                    and path.stat().st_size == entry.get("size")):  # fmt: skip
                tmp = path.with_name(path.name + ".tmp")
                write_safetensors(tmp, _TENSORS[spec.tensors](),
                                  {"format": "pt", **spec.metadata},
                                  fill=_fill(repo.id, source))  # fmt: skip
                os.replace(tmp, path)
                digest = hashlib.sha256()
                with open(path, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        digest.update(chunk)
                entry = {"fingerprint": fingerprint, "size": path.stat().st_size,
                         "sha256": digest.hexdigest()}  # fmt: skip
                cache[key] = entry
            pointer = lfs_pointer(entry["sha256"], entry["size"])
            out[(repo.id, spec.path)] = HubServedFile(
                repo.id, spec, entry["size"], entry["sha256"], git_blob_id(pointer), path=path
            )
    tmp_cache = cache_path.with_name("hashes.json.tmp")
    tmp_cache.write_text(json.dumps(cache, indent=1, sort_keys=True))
    os.replace(tmp_cache, cache_path)
    return out


def _generated(size: int, cache: dict[str, Any]) -> HubServedFile:
    """The generated file of ``hub_large_repo(size)``: its sha256 is hashed once (the bytes
    are streamed, never stored) and cached in ``cache`` under its size."""
    from sdlib.demo.catalogue import LargeFile

    large = LargeFile(size, label="hub-benchmark")
    key = f"large-{_GENERATOR_VERSION}-{size}"
    entry = cache.get(key)
    if not (entry and entry.get("size") == size):
        digest = hashlib.sha256()
        with large.open() as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
        entry = cache[key] = {"size": size, "sha256": digest.hexdigest()}
    pointer = lfs_pointer(entry["sha256"], size)
    spec = hub_large_repo(size).files[0]
    return HubServedFile(
        HUB_LARGE_REPO, spec, size, entry["sha256"], git_blob_id(pointer), large=large
    )
