"""Pickles for the scanner, converter and merge tests: hostile payloads and benign SD shapes.

The writer itself (``Asm``, ``dump``, ``torch_zip`` ...) is ``sdlib.demo.pickles``, which the
demo server also uses; it is re-exported here so a test imports one module. Hostile payloads
only ever touch a *sentinel* file whose later absence proves they did not run.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from sdlib.demo.pickles import (
    ITEMSIZE,
    LEGACY_MAGIC,
    STORAGE_CLASS,
    Asm,
    Call,
    Global,
    Obj,
    Raw,
    StateDict,
    Tensor,
    dump,
    torch_legacy,
    torch_zip,
    zip_bytes,
)

__all__ = [
    "ITEMSIZE", "LEGACY_MAGIC", "LIGHTNING_CALLBACK", "STORAGE_CLASS", "Asm", "Call", "Global",
    "Obj", "Raw", "StateDict", "Tensor", "call_pickle", "dump", "f32", "hypernetwork",
    "lightning_checkpoint", "python_touch", "ramp", "shell_touch", "ti_embedding",
    "torch_legacy", "torch_zip", "zip_bytes",
]  # fmt: skip


def call_pickle(module: str, name: str, *args: object, proto: int = 2) -> bytes:
    """A whole pickle that calls ``module.name(*args)`` (str, int and list-of-str args)."""
    asm = Asm()
    if proto >= 2:
        asm.proto(proto)
    if proto >= 4:
        asm.short_str(module).short_str(name).stack_global()
    else:
        asm.global_(module, name)
    asm.op("MARK")
    for arg in args:
        _arg(asm, arg, proto)
    return asm.op("TUPLE").op("REDUCE").stop()


def _arg(asm: Asm, arg: object, proto: int) -> None:
    if isinstance(arg, str):
        asm.str_(arg) if proto >= 1 else asm.text_str(arg)
    elif isinstance(arg, int):
        asm.int_(arg) if proto >= 1 else asm.raw(b"I%d\n" % arg)
    elif isinstance(arg, list):
        asm.op("MARK")
        for item in arg:
            _arg(asm, item, proto)
        asm.op("LIST")
    elif isinstance(arg, bytes):
        asm.binbytes(arg)
    else:
        raise TypeError(type(arg))


def shell_touch(path: object) -> str:
    return f"touch '{path}'"


def python_touch(path: object) -> str:
    return f"open({str(path)!r}, 'w').close()"


# --- benign fixtures shaped like real SD files -----------------------------------------------


def f32(values: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def ramp(n: int, start: float = 0.0) -> bytes:
    """``n`` distinct fp32 values (exactly representable in fp16 and bf16 for small ``n``)."""
    return f32([start + i * 0.25 for i in range(n)])


LIGHTNING_CALLBACK = Global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")


def lightning_checkpoint(state: Mapping[str, Tensor], *, ema: bool = False) -> dict[str, object]:
    """An SD 1.x-era Lightning ``.ckpt``: the objects A1111's restricted unpickler allows."""
    sd = StateDict(state)
    sd.metadata = {"": {"version": 1}}
    f8 = Call(Global("numpy", "dtype"), ("f8", False, True))
    i8 = Call(Global("numpy", "dtype"), ("i8", False, True))
    scalar = Call(Global("numpy.core.multiarray", "scalar"), (f8, struct.pack("<d", 1e-4)))
    scalar2 = Call(Global("numpy._core.multiarray", "scalar"), (i8, struct.pack("<q", 7)))
    namespace = Obj(Global("argparse", "Namespace"), {"lr": 1e-4, "base": "v1-inference.yaml"})
    return {
        "epoch": 6,
        "global_step": 470000,
        "pytorch-lightning_version": "1.4.2",
        "state_dict": sd,
        "callbacks": {
            LIGHTNING_CALLBACK: {"best_model_score": Tensor(f32([0.5]), "F32", ()), "monitor": None}
        },
        "optimizer_states": [
            {
                "state": {0: {"exp_avg": Tensor(ramp(4), "F32", (4,))}},
                "param_groups": [{"lr": scalar, "params": [0]}],
            }
        ],
        "lr_schedulers": [{"last_epoch": scalar2}],
        "hparams_name": "args",
        "hyper_parameters": {"args": namespace, "tags": {"sd", "v1"}, "blob": b"\x00\xffbytes"},
        "extra": Call(Global("collections", "defaultdict"), (Global("__builtin__", "list"),)),
    }


def ti_embedding(vectors: int = 2, dim: int = 768, *, parameter_dict: bool = False) -> object:
    """An A1111 textual-inversion ``.pt`` (``string_to_param`` dict, or a pickled ParameterDict)."""
    param = Tensor(ramp(vectors * dim), "F32", (vectors, dim), param=True)
    if parameter_dict:
        params: object = Obj(
            Global("torch.nn.modules.container", "ParameterDict"),
            {
                "training": True,
                "_parameters": StateDict({"*": param}),
                "_buffers": StateDict(),
                "_non_persistent_buffers_set": set(),
                "_modules": StateDict(),
            },
        )
    else:
        params = {"*": param}
    return {
        "string_to_token": {"*": 265},
        "string_to_param": params,
        "name": "bad-thing",
        "step": 1875,
        "sd_checkpoint": "7ab762a7",
        "sd_checkpoint_name": "blossom",
    }


def hypernetwork(widths: Sequence[int] = (768, 1024, 320), mult: int = 2) -> dict[object, object]:
    """An A1111 hypernetwork: int keys holding (K, V) pairs of small MLP state dicts."""
    out: dict[object, object] = {}
    for w in widths:
        pair = []
        for _ in range(2):
            pair.append(
                StateDict(
                    {
                        "linear.0.weight": Tensor(ramp(w * mult * w), "F32", (w * mult, w)),
                        "linear.0.bias": Tensor(ramp(w * mult), "F32", (w * mult,)),
                        "linear.1.weight": Tensor(ramp(w * w * mult), "F32", (w, w * mult)),
                        "linear.1.bias": Tensor(ramp(w), "F32", (w,)),
                    }
                )
            )
        out[w] = tuple(pair)
    out.update(
        {
            "step": 4000,
            "name": "anime",
            "layer_structure": [1, mult, 1],
            "activation_func": "linear",
            "is_layer_norm": False,
            "weight_initialization": "Normal",
            "use_dropout": False,
            "sd_checkpoint": "a9263745",
            "sd_checkpoint_name": "sd-v1-4",
        }
    )
    return out
