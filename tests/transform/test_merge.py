"""``merge_files``: every output tensor equals a plain-numpy reference, for both methods, each
option, mixed input dtypes, pickle inputs and chunked reads; the recipe lands in the metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdlib.files.safetensors import read_table
from sdlib.hashcache import HashCache
from sdlib.transform import merge as merge_mod
from sdlib.transform.merge import MergeProgress, merge_files
from tests.support import merge_models as M
from tests.support.pickles import StateDict, Tensor, torch_legacy, torch_zip

TE = "cond_stage_model.transformer.text_model."
POS_IDS = TE + "embeddings.position_ids"
VAE_KEY = "first_stage_model.decoder.conv_in.weight"
UNET_KEY = "model.diffusion_model.out.2.weight"


def _models(tmp_path: Path, *dtypes: str, in_ch: int = 4) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for i, dtype in enumerate(dtypes):
        tensors = M.random_tensors(M.tiny_sd15(dtype, in_ch=in_ch if i == 0 else 4), seed=i)
        out.append((M.write_model(tmp_path / f"{'abc'[i]}.safetensors", tensors), tensors))
    return out


def _expect_merged(
    result: dict[str, Any],
    method: str,
    alpha: float,
    out_dtype: str | None,
    a: dict[str, Any],
    b: dict[str, Any],
    c: dict[str, Any] | None = None,
    skip: tuple[str, ...] = (),
) -> int:
    """Assert every float tensor of the UNet, text encoder and VAE equals the reference."""
    checked = 0
    for name, (dtype, _) in a.items():
        if not name.startswith(("model.", "first_stage_model.", "cond_stage_model.")):
            continue
        if dtype.startswith("I") or name.startswith(skip):
            continue
        want = M.reference(
            method, alpha, out_dtype or dtype, a[name], b[name], c[name] if c else None
        )
        got_dtype, got = result[name]
        assert got_dtype == (out_dtype or dtype), name
        np.testing.assert_array_equal(got.view(want.dtype), want, err_msg=name)
        checked += 1
    return checked


@pytest.mark.parametrize(
    ("dtypes", "out_dtype", "cast"),
    [
        (("F16", "F16"), None, "keep"),
        (("F32", "F16"), None, "keep"),
        (("F16", "F32"), "F16", "fp16"),
        (("BF16", "F32"), None, "keep"),
        (("F32", "BF16"), "BF16", "bf16"),
    ],
)
@pytest.mark.parametrize("alpha", [0.3, 0.75])
def test_weighted_sum_equals_reference(
    tmp_path: Path, dtypes: tuple[str, str], out_dtype: str | None, cast: str, alpha: float
) -> None:
    if "BF16" in (out_dtype or dtypes[0]):
        pytest.importorskip("torch")  # the bf16 rounding reference
    (pa, a), (pb, b) = _models(tmp_path, *dtypes)
    out = tmp_path / "out.safetensors"
    result = merge_files(pa, pb, output=out, method="weighted-sum", alpha=alpha, dtype=cast)
    got = M.read_model(out)
    assert list(read_table(out).tensors) == list(a)  # A's names, in A's order
    assert _expect_merged(got, "weighted-sum", alpha, out_dtype, a, b) == result.merged
    # Integers (CLIP position ids) are A's, bit for bit; the schedule buffer is A's, cast.
    np.testing.assert_array_equal(got[POS_IDS][1], a[POS_IDS][1])
    assert got[POS_IDS][0] == "I64"
    schedule = M.cast(M.to_f32(*a["alphas_cumprod"]), out_dtype or "F32")
    np.testing.assert_array_equal(got["alphas_cumprod"][1].view(schedule.dtype), schedule)


@pytest.mark.parametrize(
    ("dtypes", "cast", "out_dtype"),
    [
        (("F16", "F16", "F16"), "keep", None),
        (("F32", "F16", "BF16"), "keep", None),
        (("F16", "F32", "F32"), "bf16", "BF16"),
    ],
)
def test_add_difference_equals_reference(
    tmp_path: Path, dtypes: tuple[str, str, str], cast: str, out_dtype: str | None
) -> None:
    if "BF16" in (*dtypes, out_dtype):
        pytest.importorskip("torch")
    (pa, a), (pb, b), (pc, c) = _models(tmp_path, *dtypes)
    out = tmp_path / "out.safetensors"
    result = merge_files(pa, pb, pc, output=out, method="add-difference", alpha=0.6, dtype=cast)
    got = M.read_model(out)
    assert _expect_merged(got, "add-difference", 0.6, out_dtype, a, b, c) == result.merged > 300


def test_default_alphas(tmp_path: Path) -> None:
    (pa, a), (pb, b), (pc, c) = _models(tmp_path, "F32", "F32", "F32")
    merge_files(pa, pb, output=tmp_path / "ws.safetensors", method="weighted-sum")
    got = M.read_model(tmp_path / "ws.safetensors")
    _expect_merged(got, "weighted-sum", 0.5, None, a, b)
    merge_files(pa, pb, pc, output=tmp_path / "ad.safetensors", method="add-difference")
    got = M.read_model(tmp_path / "ad.safetensors")
    _expect_merged(got, "add-difference", 1.0, None, a, b, c)


def test_small_chunks_give_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many chunks per tensor (alternating buffers, the writer thread behind, slices of a
    strided pickle tensor read whole) change nothing."""
    (pa, _), (_, b), (pc, _) = _models(tmp_path, "F16", "F32", "F16")
    pb = _pickled(tmp_path / "b.ckpt", b, transpose=TE + "embeddings.token_embedding.weight")
    kwargs: dict[str, Any] = {"method": "add-difference", "alpha": 0.4, "dtype": "fp16"}
    merge_files(pa, pb, pc, output=tmp_path / "big.safetensors", **kwargs)
    monkeypatch.setattr(merge_mod, "CHUNK_ELEMENTS", 1000)
    merge_files(pa, pb, pc, output=tmp_path / "small.safetensors", **kwargs)
    assert (tmp_path / "big.safetensors").read_bytes() == (
        tmp_path / "small.safetensors"
    ).read_bytes()


def test_components_limit_what_is_merged(tmp_path: Path) -> None:
    (pa, a), (pb, b) = _models(tmp_path, "F16", "F16")
    out = tmp_path / "out.safetensors"
    result = merge_files(pa, pb, output=out, method="weighted-sum", alpha=0.5, components=["unet"])
    got = M.read_model(out)
    for name, (_, bits) in a.items():
        if name.startswith(("first_stage_model.", "cond_stage_model.")):
            np.testing.assert_array_equal(got[name][1], bits, err_msg=name)
    merged = _expect_merged(
        got, "weighted-sum", 0.5, None, a, b, skip=("first_stage_model.", "cond_stage_model.")
    )
    assert merged == result.merged
    assert len(result.copied["vae not selected"]) == sum(
        n.startswith("first_stage_model.") for n in a
    )
    assert "text-encoder not selected" in result.copied


@pytest.mark.parametrize("prefixed", [False, True])
def test_bake_vae_replaces_the_vae(tmp_path: Path, prefixed: bool) -> None:
    (pa, a), (pb, b) = _models(tmp_path, "F16", "F16")
    vae = M.random_tensors(M.tiny_vae("first_stage_model." if prefixed else "", "F32"), seed=9)
    vae["loss.discriminator.weight"] = ("F32", np.ones((3, 3), "<f4"))  # training leftovers
    pv = M.write_model(tmp_path / "vae.safetensors", vae)
    out = tmp_path / "out.safetensors"
    result = merge_files(pa, pb, output=out, method="weighted-sum", alpha=0.5, bake_vae=pv)
    got = M.read_model(out)
    baked = 0
    for name, (_, bits) in vae.items():
        if name.startswith("loss."):
            assert name not in got
            continue
        target = name if prefixed else "first_stage_model." + name
        assert got[target][0] == a[target][0] == "F16"  # keep = A's dtype
        np.testing.assert_array_equal(got[target][1], bits.astype("<f2"), err_msg=name)
        baked += 1
    assert result.vae_tensors == baked == sum(n.startswith("first_stage_model.") for n in a)
    _expect_merged(got, "weighted-sum", 0.5, None, a, b, skip=("first_stage_model.",))
    assert json.loads(result.metadata["sdlib.merge"])["bake_vae"] == "vae.safetensors"


@pytest.mark.parametrize(("channels", "variant"), [(9, "inpaint"), (8, "instruct-pix2pix")])
@pytest.mark.parametrize("method", ["weighted-sum", "add-difference"])
def test_first_conv_merges_four_channels_and_keeps_a_extra(
    tmp_path: Path, channels: int, variant: str, method: str
) -> None:
    models = _models(tmp_path, "F16", "F16", "F16", in_ch=channels)
    (pa, a), (pb, b), (pc, c) = models
    extra = (pc,) if method == "add-difference" else ()
    out = tmp_path / "out.safetensors"
    result = merge_files(pa, pb, *extra, output=out, method=method, alpha=0.4)
    got = M.read_model(out)
    conv = got[M.CONV_IN][1]
    assert conv.shape == a[M.CONV_IN][1].shape == (8, channels, 3, 3)
    np.testing.assert_array_equal(conv[:, 4:], a[M.CONV_IN][1][:, 4:])  # A's extra channels
    cc = ("F16", c[M.CONV_IN][1]) if extra else None
    head = ("F16", np.ascontiguousarray(a[M.CONV_IN][1][:, :4]))
    np.testing.assert_array_equal(
        conv[:, :4], M.reference(method, 0.4, "F16", head, b[M.CONV_IN], cc)
    )
    assert result.first_conv == variant
    recipe = json.loads(result.metadata["sd_merge_recipe"])
    assert recipe["is_inpainting"] is (variant == "inpaint")
    assert recipe["is_instruct_pix2pix"] is (variant == "instruct-pix2pix")
    _expect_merged(got, method, 0.4, None, a, b, c if extra else None, skip=(M.CONV_IN,))


def test_keys_in_only_one_input_are_copied_from_a_and_listed(tmp_path: Path) -> None:
    (pa, a), (_, b) = _models(tmp_path, "F16", "F16")
    gone = [UNET_KEY, TE + "final_layer_norm.weight"]
    b = {n: v for n, v in b.items() if n not in gone}
    b["model.diffusion_model.extra.weight"] = ("F16", np.zeros((2, 2), "<f2"))
    pb = M.write_model(tmp_path / "b2.safetensors", b)
    out = tmp_path / "out.safetensors"
    result = merge_files(pa, pb, output=out, method="weighted-sum", alpha=0.5)
    got = M.read_model(out)
    for name in gone:
        np.testing.assert_array_equal(got[name][1], a[name][1])
    assert sorted(result.copied["only in A (missing from B)"]) == sorted(gone)
    assert result.not_in_a == ("model.diffusion_model.extra.weight",)
    assert "model.diffusion_model.extra.weight" not in got
    assert sorted(json.loads(result.metadata["sdlib.only_in_a"])) == sorted(gone)
    assert json.loads(result.metadata["sdlib.not_in_a"]) == ["model.diffusion_model.extra.weight"]


def _pickled(
    path: Path, tensors: dict[str, Any], transpose: str | None = None, legacy: bool = False
) -> Path:
    """A torch checkpoint (zip, or pre-1.6 ``legacy``); ``transpose`` stores one 2-D tensor
    as a strided view of its transpose."""
    state = StateDict()
    for name, (dtype, arr) in tensors.items():
        if name == transpose:
            t = np.ascontiguousarray(arr.T)  # storage holds the transpose; the view undoes it
            state[name] = Tensor(t.tobytes(), dtype, arr.shape, stride=(1, arr.shape[0]))
        else:
            state[name] = Tensor(arr.tobytes(), dtype, arr.shape)
    obj = {"state_dict": state, "global_step": 5}
    path.write_bytes(torch_legacy(obj) if legacy else torch_zip(obj))
    return path


def test_pickle_inputs_go_through_the_safe_reader(tmp_path: Path) -> None:
    (_, a), (_, b), (_, c) = _models(tmp_path, "F16", "F32", "F16")
    strided = TE + "encoder.layers.0.mlp.fc1.weight"
    pa = _pickled(tmp_path / "a.ckpt", a, legacy=True)
    pb = _pickled(tmp_path / "b.ckpt", b, transpose=strided)
    pc = _pickled(tmp_path / "c.ckpt", c)
    out = tmp_path / "out.safetensors"
    result = merge_files(pa, pb, pc, output=out, method="add-difference", alpha=0.5)
    got = M.read_model(out)
    assert _expect_merged(got, "add-difference", 0.5, None, a, b, c) == result.merged
    roles = {i.role: i for i in result.inputs}
    assert roles["A"].container == "pickle-legacy" and roles["B"].container == "pickle-zip"
    assert {i.verdict for i in result.inputs} == {"safe"}
    assert list(read_table(out).tensors) == list(a)


def test_recipe_and_hashes_in_metadata(tmp_path: Path) -> None:
    (pa, _), (pb, _) = _models(tmp_path, "F16", "F16")
    out = tmp_path / "out.safetensors"
    result = merge_files(pa, pb, output=out, method="weighted-sum", alpha=0.25, dtype="fp16")
    md = read_table(out).metadata
    assert md == result.metadata
    sha = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (pa, pb)}
    assert json.loads(md["sdlib.merge_inputs"]) == [
        {"role": "A", "file": "a.safetensors", "sha256": sha[pa]},
        {"role": "B", "file": "b.safetensors", "sha256": sha[pb]},
    ]
    recipe = json.loads(md["sdlib.merge"])
    assert recipe["method"] == "weighted-sum" and recipe["alpha"] == 0.25
    assert recipe["dtype"] == "fp16" and recipe["components"] == ["unet", "text-encoder", "vae"]
    a1111 = json.loads(md["sd_merge_recipe"])
    assert a1111["primary_model_hash"] == sha[pa] and a1111["secondary_model_hash"] == sha[pb]
    assert a1111["interp_method"] == "Weighted sum" and a1111["multiplier"] == 0.25
    assert set(json.loads(md["sd_merge_models"])) == set(sha.values())
    assert [i.sha256 for i in result.inputs] == [sha[pa], sha[pb]]


def test_merge_history_is_carried_and_same_file_twice_works(tmp_path: Path) -> None:
    (pa, a), (pb, _) = _models(tmp_path, "F16", "F16")
    first = tmp_path / "ab.safetensors"
    merge_files(pa, pb, output=first, method="weighted-sum")
    again = tmp_path / "abab.safetensors"
    merge_files(first, first, output=again, method="weighted-sum", alpha=0.9)
    got = M.read_model(again)
    ab = M.read_model(first)
    for name in a:  # A*(1-M) + A*M in float32 then back to fp16 is A again
        np.testing.assert_array_equal(got[name][1], ab[name][1], err_msg=name)
    history = json.loads(read_table(again).metadata["sd_merge_models"])
    sha = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (pa, pb, first)}
    assert set(history) == sha  # the inputs of the first merge are remembered


def test_hash_cache_is_used(tmp_path: Path) -> None:
    (pa, _), (pb, _) = _models(tmp_path, "F16", "F16")
    with HashCache(tmp_path / "cache" / "hashes.sqlite") as cache:
        r1 = merge_files(
            pa, pb, output=tmp_path / "1.safetensors", method="weighted-sum", hashes=cache
        )
        assert cache.lookup(pa) is not None and cache.lookup(pb) is not None
        r2 = merge_files(
            pa, pb, output=tmp_path / "2.safetensors", method="weighted-sum", hashes=cache
        )
    assert [i.sha256 for i in r1.inputs] == [i.sha256 for i in r2.inputs]
    assert r1.inputs[0].sha256 == hashlib.sha256(pa.read_bytes()).hexdigest()


def test_progress_events(tmp_path: Path) -> None:
    (pa, _), (pb, _) = _models(tmp_path, "F16", "F16")
    events: list[MergeProgress] = []
    result = merge_files(
        pa, pb, output=tmp_path / "o.safetensors", method="weighted-sum", progress=events.append
    )
    stages = [e.stage for e in events]
    assert stages.index("verify") > stages.index("merge") and set(stages) == {"merge", "verify"}
    merge_events = [e for e in events if e.stage == "merge"]
    assert [e.done for e in merge_events] == sorted(e.done for e in merge_events)
    total = (
        result.bytes_written - (tmp_path / "o.safetensors").stat().st_size + merge_events[-1].total
    )
    assert merge_events[-1].done == merge_events[-1].total == total


def test_v_prediction_mismatch_is_noted(tmp_path: Path) -> None:
    (pa, a), (pb, _) = _models(tmp_path, "F16", "F16")
    a["v_pred"] = ("F32", np.zeros((0,), "<f4"))
    pa = M.write_model(tmp_path / "vpred.safetensors", a)
    result = merge_files(pa, pb, output=tmp_path / "o.safetensors", method="weighted-sum")
    assert any("v-prediction" in note for note in result.notes)
    assert "v_pred" in M.read_model(tmp_path / "o.safetensors")  # A's marker is kept


def test_sdxl_text_encoders_only(tmp_path: Path) -> None:
    """SDXL's two encoders live under conditioner.embedders.*: both count as text-encoder."""
    a = M.random_tensors(M.tiny_sdxl(), 0)
    b = M.random_tensors(M.tiny_sdxl(), 1)
    pa = M.write_model(tmp_path / "a.safetensors", a)
    pb = M.write_model(tmp_path / "b.safetensors", b)
    out = tmp_path / "out.safetensors"
    result = merge_files(
        pa, pb, output=out, method="weighted-sum", alpha=0.2, components=["text-encoder"]
    )
    got = M.read_model(out)
    merged = 0
    for name, (dtype, bits) in a.items():
        if name.startswith("conditioner.embedders.") and not name.endswith("position_ids"):
            want = M.reference("weighted-sum", 0.2, dtype, a[name], b[name])
            np.testing.assert_array_equal(got[name][1], want, err_msg=name)
            merged += 1
        else:
            np.testing.assert_array_equal(got[name][1], bits, err_msg=name)
    assert merged == result.merged and any(".embedders.1.model." in n for n in a)
