"""The content classifier: every synthetic fixture, the rules' edge cases, the real corpus."""

from __future__ import annotations

import csv
import json
import struct
from collections.abc import Mapping
from pathlib import Path

import pytest

from sdlib.demo import specs as S
from sdlib.demo.writers import write_safetensors
from sdlib.files import pickles, safetensors
from sdlib.files.classify import Classification, classify
from sdlib.files.tensors import TensorTable
from sdlib.taxonomy import Base, Container, Kind, Precision, Weights
from tests.support.paths import CORPUS

Spec = dict[str, tuple[str, tuple[int, ...]]]


def _classify(
    spec: Mapping[str, tuple[str, tuple[int, ...]]],
    *,
    metadata: Mapping[str, str] | None = None,
    container: Container = Container.SAFETENSORS,
) -> Classification:
    return classify(TensorTable.from_specs(spec, container, metadata))


def _fixture(name: str) -> Classification:
    spec, metadata = S.spec_with_metadata(name)
    container = S.CONTAINERS.get(name, Container.SAFETENSORS)
    return classify(TensorTable.from_specs(spec, container, metadata))


def _assert_expected(got: dict[str, object], expected: Mapping[str, object]) -> None:
    for key, want in expected.items():
        if key == "lora":
            assert isinstance(want, dict)
            lora = got["lora"]
            assert isinstance(lora, dict), f"no LoRA info: {got['evidence']}"
            for field, value in want.items():
                value = list(value) if isinstance(value, tuple) else value
                assert lora[field] == value, (field, lora, got["evidence"])
        else:
            want = list(want) if isinstance(want, tuple) else want
            assert got[key] == want, (key, got[key], want, got["evidence"])


# --- every registered fixture ------------------------------------------------------------------


def test_every_fixture_has_expectations() -> None:
    assert set(S.EXPECTED) == set(S.SPECS)


@pytest.mark.parametrize("name", sorted(S.SPECS))
def test_fixture(name: str) -> None:
    spec, _ = S.spec_with_metadata(name)
    result = _fixture(name)
    got = result.to_dict()
    _assert_expected(got, S.EXPECTED[name])
    assert result.tensors == len(spec)
    assert result.parameters == sum(_numel(shape) for _dt, shape in spec.values())
    assert result.evidence, "every verdict says why"
    # The JSON contract: plain types, enum values as lower-case strings.
    assert json.loads(json.dumps(got)) == got
    assert got["kind"] == str(result.kind) == result.kind.value


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@pytest.mark.parametrize(
    "name", sorted(n for n in S.SPECS if n not in S.CONTAINERS)
)  # pickle-shaped fixtures cannot be written as safetensors faithfully
def test_fixture_round_trips_through_the_safetensors_reader(name: str, tmp_path: Path) -> None:
    spec, metadata = S.spec_with_metadata(name)
    path = write_safetensors(tmp_path / f"{name}.safetensors", spec, metadata, sparse=True)
    from_file = classify(safetensors.read_table(path)).to_dict()
    assert from_file == _fixture(name).to_dict()


# --- evidence says why -------------------------------------------------------------------------


def test_inpaint_evidence_names_the_first_conv() -> None:
    result = _fixture("sd15_inpaint")
    assert any("[320, 9, 3, 3]" in e and "inpaint" in e for e in result.evidence)


def test_full_weights_evidence_counts_ema_tensors() -> None:
    result = _fixture("sd15_full_ema")
    ema = sum(1 for n in S.sd15_checkpoint(ema=True) if n.startswith("model_ema."))
    assert any(f"{ema:,} tensors under model_ema.*" in e for e in result.evidence)


def test_pickle_state_dict_wrapper_is_unwrapped_and_reported() -> None:
    result = _fixture("sd15_full_ema_pickle")
    assert any("state_dict." in e for e in result.evidence)


def test_unknown_reports_what_was_looked_at() -> None:
    result = _classify({"foo.bar.weight": ("F32", (3, 3)), "foo.baz": ("F32", (3,))})
    assert (result.kind, result.base, result.variant) == (Kind.UNKNOWN, Base.UNKNOWN, None)
    assert result.weights is Weights.NA
    assert any("foo (2)" in e for e in result.evidence)


def test_empty_table() -> None:
    result = _classify({})
    assert result.kind is Kind.UNKNOWN
    assert result.precision is None
    assert result.evidence == ("no tensors",)
    assert (result.tensors, result.parameters) == (0, 0)


# --- checkpoints and diffusion models ----------------------------------------------------------


def test_v_prediction_needs_evidence() -> None:
    assert _fixture("sd21_768v").variant == "v-prediction"
    plain = _classify(S.sd21_checkpoint())  # same tensors, no metadata: shapes cannot tell
    assert (plain.base, plain.variant) == (Base.SD2, None)
    marked = _classify({**S.sdxl_checkpoint(), "v_pred": ("F32", ())})
    assert (marked.base, marked.variant) == (Base.SDXL, "v-prediction")


def test_fp16_unet_with_fp32_vae_is_mixed() -> None:
    spec = S.sd15_checkpoint("F16")
    spec.update(S.ldm_vae("first_stage_model.", "F32"))
    result = _classify(spec)
    assert result.precision is Precision.MIXED
    assert any("mixed" in e for e in result.evidence)


def test_scalars_and_position_ids_do_not_make_a_file_mixed() -> None:
    # A bf16 LoRA with fp32 alphas, and a fp16 checkpoint with I64 position ids + fp32
    # schedule buffers, are not "mixed".
    lora = {k: ("F32", ()) if k.endswith(".alpha") else ("BF16", v[1])
            for k, v in S.lora_flux_kohya().items()}  # fmt: skip
    assert _classify(lora).precision is Precision.BF16
    assert _fixture("sd15_inpaint").precision is Precision.FP16


def test_baked_lora_keys_do_not_turn_a_checkpoint_into_a_lora() -> None:
    spec = {**S.sd15_checkpoint("F16"), **S.lora_sd15_kohya()}
    result = _classify(spec)
    assert (result.kind, result.base, result.lora) == (Kind.CHECKPOINT, Base.SD1, None)


def test_module_prefix_is_stripped() -> None:
    spec = {f"module.{k}": v for k, v in S.ldm_unet("", "F16").items()}
    result = _classify(spec)
    assert (result.kind, result.base) == (Kind.UNET, Base.SD1)
    assert any("module." in e for e in result.evidence)


def test_diffusers_sd15_unet() -> None:
    spec = S.diffusers_unet(
        mult=(1, 2, 4, 4), depth=(1, 1, 1, 0), mid_depth=1, ctx=768, linear=False, adm=None
    )
    result = _classify(spec)
    assert (result.kind, result.base, result.variant) == (Kind.UNET, Base.SD1, None)


def test_diffusion_only_comfyui_checkpoint() -> None:
    result = _classify(S.ldm_unet("model.diffusion_model.", "F16", ctx=1024, linear=True))
    assert (result.kind, result.base, result.components) == (Kind.CHECKPOINT, Base.SD2, ("unet",))


def test_distilled_sdxl_without_middle_attention() -> None:
    spec = {k: v for k, v in S.sdxl_checkpoint().items() if ".middle_block.1." not in k}
    assert _classify(spec).variant == "distilled"


def test_flux_img_in_variants_and_flux2() -> None:
    assert _classify(S.flux_transformer(img_in=384)).variant == "fill"
    flux2 = S.flux_transformer()
    flux2["img_in.weight"] = ("BF16", (3072, 128))
    flux2["txt_in.weight"] = ("BF16", (3072, 7680))
    result = _classify(flux2)
    assert (result.base, result.variant) == (Base.FLUX2, "klein-4b")


def test_sd35_large_by_qk_norm() -> None:
    spec = S.sd3_checkpoint()
    spec["model.diffusion_model.joint_blocks.0.x_block.attn.ln_q.weight"] = ("F16", (64,))
    assert _classify(spec).variant == "3.5-large"


_PIXART_ALPHA: Spec = {
    "t_block.1.weight": ("F16", (6912, 1152)),
    "ar_embedder.mlp.0.weight": ("F16", (1152, 256)),
}
_CASCADE_C: Spec = {
    "clf.1.weight": ("BF16", (16, 2048, 1, 1)),
    "clip_txt_mapper.weight": ("BF16", (2048, 1280)),
}


@pytest.mark.parametrize(
    ("spec", "base", "variant"),
    [
        (_PIXART_ALPHA, Base.PIXART, "alpha"),
        (_CASCADE_C, Base.CASCADE, "stage-c"),
        ({"mlp_t5.0.weight": ("F16", (8192, 2048))}, Base.UNKNOWN, "hunyuan-dit"),
    ],
)
def test_other_diffusion_families(spec: Spec, base: Base, variant: str) -> None:
    result = _classify(spec)
    assert (result.kind, result.base, result.variant) == (Kind.UNET, base, variant)


def test_svd_by_temporal_layers() -> None:
    spec = S.ldm_unet("model.diffusion_model.", "F16", ctx=1024, linear=True, in_ch=8, adm=768)
    spec["model.diffusion_model.input_blocks.1.0.time_stack.in_layers.0.weight"] = ("F16", (320,))
    result = _classify(spec)
    assert (result.base, result.variant) == (Base.SVD, "img2vid")


# --- component files ---------------------------------------------------------------------------


def test_vae_under_checkpoint_prefix_is_a_vae() -> None:
    result = _classify(S.ldm_vae("first_stage_model.", "F16"))
    assert (result.kind, result.variant, result.components) == (Kind.VAE, "4-channel", ("vae",))


def test_flux2_vae_by_latent_channels() -> None:
    result = _classify(S.ldm_vae("", "BF16", z=32, quant=False))
    assert (result.kind, result.base) == (Kind.VAE, Base.FLUX2)


def test_clip_g_text_encoder() -> None:
    result = _classify(S.clip_l_hf("text_model.", "F16", width=1280, layers=32))
    assert (result.kind, result.variant, result.components) == (
        Kind.TEXT_ENCODER, "clip-g", ("text-encoder-2",)
    )  # fmt: skip


def test_controlnet_difference_and_control_lora() -> None:
    diff = _classify({**S.controlnet_sd15(), "difference": ("F16", ())})
    assert (diff.kind, diff.variant) == (Kind.CONTROLNET, "difference")
    control_lora = {**S.lora_sdxl_kohya(), "lora_controlnet": ("F16", ())}
    result = _classify(control_lora)
    assert (result.kind, result.variant) == (Kind.CONTROLNET, "control-lora")


def test_ip_adapter_plus_sdxl() -> None:
    spec = {
        "image_proj.latents": ("F16", (1, 16, 1280)),
        "image_proj.proj_in.weight": ("F16", (1280, 1280)),
        "ip_adapter.1.to_k_ip.weight": ("F16", (640, 2048)),
        "ip_adapter.1.to_v_ip.weight": ("F16", (640, 2048)),
    }
    result = _classify(spec)
    assert (result.kind, result.base, result.variant) == (Kind.IP_ADAPTER, Base.SDXL, "plus")


def test_hypernetwork_without_cross_attention_width_has_no_base() -> None:
    spec = {k: v for k, v in S.hypernetwork_sd15().items() if not k.startswith("768.")}
    result = _classify(spec, container=Container.PICKLE_ZIP)
    assert (result.kind, result.base) == (Kind.HYPERNETWORK, Base.UNKNOWN)


# --- LoRA family -------------------------------------------------------------------------------


def _lyco(suffixes: Mapping[str, tuple[int, ...]], module: str = "lora_unet_x_attn1_to_q") -> Spec:
    return {f"{module}.{s}": ("F16", shape) for s, shape in suffixes.items()}


@pytest.mark.parametrize(
    ("parts", "algo", "kind"),
    [
        ({"oft_blocks": (40, 8, 8), "alpha": ()}, "oft", Kind.LYCORIS),
        ({"oft_blocks": (4, 40, 8, 8)}, "boft", Kind.LYCORIS),
        ({"weight": (320,), "on_input": ()}, "ia3", Kind.LYCORIS),
        ({"a1.weight": (4, 320), "a2.weight": (320, 4), "b1.weight": (4, 320),
          "b2.weight": (320, 4)}, "glora", Kind.LYCORIS),
        ({"diff": (320, 320), "diff_b": (320,)}, "full-diff", Kind.LYCORIS),
        ({"lora_down.weight": (8, 320, 1, 1), "lora_mid.weight": (8, 8, 3, 3),
          "lora_up.weight": (320, 8, 1, 1)}, "locon", Kind.LYCORIS),
        ({"lora_A.weight": (8, 320), "lora_B.weight": (320, 8),
          "lora_magnitude_vector": (320,)}, "dora", Kind.LORA),
    ],
)  # fmt: skip
def test_lora_algorithms(parts: Mapping[str, tuple[int, ...]], algo: str, kind: Kind) -> None:
    result = _classify(_lyco(parts))
    assert result.lora is not None, result.evidence
    assert (result.kind, result.variant, result.lora.algo) == (kind, algo, algo)


def test_lora_base_from_transformer_block_index() -> None:
    # Self-attention only: no context width; a third transformer block exists only in SDXL.
    spec = S.lora_sdxl_kohya()
    spec = {k: v for k, v in spec.items() if "transformer_blocks_3_attn1" in k}
    result = _classify(spec)
    assert (result.kind, result.base) == (Kind.LORA, Base.SDXL)
    assert any("transformer block index" in e for e in result.evidence)


def test_sdxl_structure_beats_a_768_wide_text_encoder() -> None:
    # An SDXL LoRA that trained only the first (768-wide, CLIP-L) text encoder.
    spec = {k: v for k, v in S.lora_sdxl_kohya().items()
            if "transformer_blocks_3_attn1" in k or k.startswith("lora_te1_")}  # fmt: skip
    assert _classify(spec).base is Base.SDXL


def test_lora_base_from_sd1_proj_in_conv() -> None:
    spec = {
        k: v for k, v in S.lora_sd15_kohya().items() if "down_blocks_0_attentions_0_proj_in" in k
    }
    result = _classify(spec)
    assert result.base is Base.SD1
    assert any("proj_in" in e for e in result.evidence)


def test_lora_metadata_is_a_tie_breaker_not_a_verdict() -> None:
    # Resnet-only LoCon: the tensors do not name a base, so the metadata decides ...
    spec = {k: v for k, v in S.locon_sd15().items() if "resnets" in k}
    silent = _classify(spec, metadata={"ss_base_model_version": "sd_v2"})
    assert silent.base is Base.SD2
    assert any("metadata claims" in e for e in silent.evidence)
    # ... but when the tensors speak, they win and the disagreement is recorded.
    loud = _classify(S.lora_sd15_kohya(), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    assert loud.base is Base.SD1
    assert any("metadata claims sdxl" in e for e in loud.evidence)


def test_lora_without_any_clue_has_unknown_base() -> None:
    spec = {k: v for k, v in S.locon_sd15().items() if "resnets" in k}
    assert _classify(spec).base is Base.UNKNOWN


def test_kohya_metadata_summary() -> None:
    md = _fixture("lora_sdxl_kohya").metadata
    assert md["trained_on"] == "sd_xl_base_1.0.safetensors"
    assert md["network"] == "networks.lora"
    assert md["network_dim"] == "16"
    assert md["resolution"] == "(1024, 1024)"
    assert md["tags"].split(", ")[:2] == ["subject", "1girl"]
    assert "ss_tag_frequency" not in md  # a summary, not a dump
    assert _fixture("lokr_sdxl").metadata["algo"] == "lokr"
    assert _fixture("lora_flux_peft").metadata["software"] == "ai-toolkit"


def test_old_diffusers_and_xlabs_lora_names() -> None:
    old = {
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.down.weight":
            ("F32", (4, 768)),
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.up.weight":
            ("F32", (320, 4)),
    }  # fmt: skip
    result = _classify(old)
    assert result.lora is not None
    assert (result.base, result.lora.producer, result.lora.rank) == (Base.SD1, "diffusers", 4)
    xlabs = {
        "double_blocks.0.processor.qkv_lora1.down.weight": ("BF16", (16, 3072)),
        "double_blocks.0.processor.qkv_lora1.up.weight": ("BF16", (9216, 16)),
    }
    result = _classify(xlabs)
    assert result.lora is not None
    assert (result.base, result.lora.producer) == (Base.FLUX, "xlabs")


def test_cloneofsimo_parameter_list() -> None:
    # A pickled list of nn.Parameter, flattened to index names by the pickle reader.
    # cloneofsimo saves (up, down) pairs; accept the other order too.
    for up_first in (True, False):
        spec: Spec = {}
        for i in range(0, 8, 2):
            up, down = ("F32", (768, 4)), ("F32", (4, 768))
            spec[str(i)], spec[str(i + 1)] = (up, down) if up_first else (down, up)
        result = _classify(spec, container=Container.PICKLE_ZIP)
        assert result.lora is not None
        assert (result.kind, result.base, result.lora.rank) == (Kind.LORA, Base.SD1, 4)
    # Index-named tensors that are not LoRA pairs stay unknown.
    assert _classify({"0": ("F32", (768,)), "1": ("F32", (768,))}).kind is Kind.UNKNOWN


def test_embedding_token_dict() -> None:
    result = _classify({"<birb-style>": ("F32", (768,))}, container=Container.PICKLE_ZIP)
    assert (result.kind, result.base, result.vectors) == (Kind.EMBEDDING, Base.SD1, 1)
    result = _classify({"my-token": ("F32", (3, 1024))})
    assert (result.kind, result.base, result.vectors) == (Kind.EMBEDDING, Base.SD2, 3)


def test_a_lone_vector_is_not_called_an_embedding() -> None:
    # Aesthetic-gradient files are a bare [768] tensor: not a textual inversion.
    result = _classify({"tensor": ("F32", (768,))}, container=Container.PICKLE_ZIP)
    assert result.kind is Kind.UNKNOWN


# --- the real corpus ---------------------------------------------------------------------------

#: MANIFEST ``kind_expected`` -> the kinds we accept for it. Kinds with no equivalent in
#: sdlib's vocabulary (vae-approx, taesd, clip-stats...) are not asserted.
KIND_MAP: dict[str, set[Kind]] = {
    "embedding": {Kind.EMBEDDING},
    "lora": {Kind.LORA, Kind.LYCORIS},
    "upscaler": {Kind.UPSCALER},
    "checkpoint-fragment": {Kind.CHECKPOINT, Kind.TEXT_ENCODER, Kind.VAE},
    "empty-safetensors": {Kind.UNKNOWN},
}


def _manifest() -> list[dict[str, str]]:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        return []
    with open(CORPUS / "MANIFEST.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [r for r in rows if r["kind_expected"] in KIND_MAP]


def _header_table(path: Path) -> TensorTable:
    """A tiny, independent safetensors header reader (the test must not trust the code)."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    metadata = header.pop("__metadata__", {}) or {}
    spec = {k: (v["dtype"], tuple(v["shape"])) for k, v in header.items()}
    return TensorTable.from_specs(spec, Container.SAFETENSORS, metadata)


def _check(row: dict[str, str], result: Classification) -> None:
    assert result.kind in KIND_MAP[row["kind_expected"]], (row["file"], result.evidence)
    if row["base_expected"] != "unknown" and row["kind_expected"] != "empty-safetensors":
        assert str(result.base) == row["base_expected"], (row["file"], result.evidence)


_ROWS = _manifest()
_SAFETENSORS = [r for r in _ROWS if r["file"].endswith(".safetensors")]
_PICKLES = [r for r in _ROWS if not r["file"].endswith(".safetensors") and "/" in r["file"]
            and not r["file"].startswith("embeddings/corrupted/")
            and not r["file"].startswith("embeddings/lfs-pointer/")]  # fmt: skip
_NO_CORPUS = pytest.mark.skipif(not _ROWS, reason=f"real corpus not found at {CORPUS}")


@_NO_CORPUS
def test_corpus_has_safetensors_rows() -> None:
    assert len(_SAFETENSORS) >= 10


@_NO_CORPUS
@pytest.mark.parametrize("row", _SAFETENSORS, ids=[r["file"] for r in _SAFETENSORS])
def test_real_safetensors(row: dict[str, str]) -> None:
    _check(row, classify(_header_table(CORPUS / row["file"])))


def test_real_lokr_details() -> None:
    path = CORPUS / "models" / "smart_falcon_4_lokr.safetensors"
    if not path.is_file():
        pytest.skip(f"real corpus not found at {CORPUS}")
    result = classify(_header_table(path))
    assert result.lora is not None
    assert (result.kind, result.base, result.variant) == (Kind.LYCORIS, Base.SD1, "lokr")
    assert (result.lora.rank, result.lora.alpha, result.lora.producer) == (4, 4.0, "lycoris")
    assert result.lora.targets == ("unet", "text-encoder")
    assert result.metadata["trained_on"] == "animefull-final-pruned.safetensors"


def test_real_cloneofsimo_lora_with_tokens() -> None:
    path = CORPUS / "models" / "lora_disney.safetensors"
    if not path.is_file():
        pytest.skip(f"real corpus not found at {CORPUS}")
    result = classify(_header_table(path))
    assert result.lora is not None
    assert (result.kind, result.base, result.lora.rank) == (Kind.LORA, Base.SD1, 1)
    assert result.lora.producer == "cloneofsimo"
    assert result.metadata["embedded_tokens"] == "<s1>, <s2>"


@_NO_CORPUS
@pytest.mark.parametrize("row", _PICKLES, ids=[r["file"] for r in _PICKLES])
def test_real_pickles(row: dict[str, str]) -> None:
    # Structure only: the pickle reader never executes the file.
    table = pickles.read_table(CORPUS / row["file"])
    _check(row, classify(table))
