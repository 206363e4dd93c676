"""sdlib's section of extra_model_paths.yaml: appended as text, read back by the library's
own reader, removed to the byte, with the user's sections and comments untouched."""

from __future__ import annotations

import os

import pytest

from sdlib.errors import ConfigError
from sdlib.library.comfy_paths import parse_extra_paths
from sdlib.store.comfy_section import SECTION, add_section, remove_section

USER = (
    "# my own paths, keep this comment\n"
    "a111:\n"
    "    base_path: /srv/webui   # where A1111 lives\n"
    "    checkpoints: models/Stable-diffusion\n"
    "    loras: |\n"
    "        models/Lora\n"
    "        models/LyCORIS\n"
)


@pytest.mark.parametrize("text", [USER, USER.rstrip("\n"), USER.replace("\n", "\r\n"), ""])
def test_add_then_remove_gives_back_the_text_and_the_reader_sees_both(text: str) -> None:
    store = os.path.abspath("store dir/with 'quotes' #hash")
    after = add_section(
        text, store, {"checkpoints": ["StableDiffusion"], "loras": ["Lora", "LyCORIS"]}
    )
    assert after.startswith(text)  # the user's bytes come first, unchanged
    folders = parse_extra_paths(after, "/srv/comfy")
    ours = [(f.key, f.path) for f in folders if f.section == SECTION]
    assert ours == [
        ("checkpoints", os.path.join(store, "StableDiffusion")),
        ("loras", os.path.join(store, "Lora")),
        ("loras", os.path.join(store, "LyCORIS")),
    ]
    theirs = [f for f in folders if f.section != SECTION]
    assert theirs == parse_extra_paths(text, "/srv/comfy")
    if "\r\n" in text:
        assert "\n" not in after.replace("\r\n", "")  # one line-ending style
    restored = remove_section(after)
    assert restored == (text if text.endswith("\n") or not text else text + "\n")


def test_a_second_section_is_refused() -> None:
    once = add_section(USER, "/store", {"vae": ["VAE"]})
    with pytest.raises(ConfigError):
        add_section(once, "/store", {"vae": ["VAE"]})


def test_text_without_the_block_is_left_alone() -> None:
    assert remove_section(USER) == USER
