"""Model references: ids, model@version, site and API URLs, civitai.red, AIR URNs."""

from __future__ import annotations

import pytest

from sdlib.errors import UsageError
from sdlib.sources.civitai import CivitaiRef, parse_ref

CASES: list[tuple[str, CivitaiRef]] = [
    ("4384", CivitaiRef(model_id=4384)),
    ("  4384 ", CivitaiRef(model_id=4384)),
    ("4384@128713", CivitaiRef(model_id=4384, version_id=128713)),
    ("@128713", CivitaiRef(version_id=128713)),
    ("https://civitai.com/models/4384", CivitaiRef(model_id=4384, host="civitai.com")),
    (
        "https://civitai.com/models/4384/dreamshaper",
        CivitaiRef(model_id=4384, host="civitai.com"),
    ),
    (
        "https://civitai.com/models/4384/dreamshaper?modelVersionId=128713",
        CivitaiRef(model_id=4384, version_id=128713, host="civitai.com"),
    ),
    (
        "https://www.civitai.com/models/4384?modelVersionId=128713",
        CivitaiRef(model_id=4384, version_id=128713, host="www.civitai.com"),
    ),
    (
        "https://civitai.red/models/4384?modelVersionId=128713",
        CivitaiRef(model_id=4384, version_id=128713, host="civitai.red"),
    ),
    ("civitai.com/models/4384", CivitaiRef(model_id=4384, host="civitai.com")),
    (
        "https://civitai.com/api/download/models/128713",
        CivitaiRef(version_id=128713, host="civitai.com"),
    ),
    (
        "https://civitai.red/api/download/models/128713?type=Model&format=SafeTensor&fileId=99",
        CivitaiRef(version_id=128713, file_id=99, host="civitai.red"),
    ),
    ("https://civitai.com/api/v1/models/4384", CivitaiRef(model_id=4384, host="civitai.com")),
    (
        "https://civitai.com/api/v1/model-versions/128713",
        CivitaiRef(version_id=128713, host="civitai.com"),
    ),
    (
        "https://civitai.com/model-versions/128713",
        CivitaiRef(version_id=128713, host="civitai.com"),
    ),
    (
        "urn:air:sd1:checkpoint:civitai:4384@128713",
        CivitaiRef(model_id=4384, version_id=128713, ecosystem="sd1", air_type="checkpoint"),
    ),
    (
        "urn:air:sdxl:checkpoint:civitai:827184@2514310+2402203",
        CivitaiRef(
            model_id=827184, version_id=2514310, file_id=2402203, ecosystem="sdxl",
            air_type="checkpoint",
        ),
    ),
    (
        "urn:air:sd1:checkpoint:civitai:4384@128713+1287131.safetensor",
        CivitaiRef(
            model_id=4384, version_id=128713, file_id=1287131, ecosystem="sd1",
            air_type="checkpoint", format="safetensor",
        ),
    ),
    ("air:sdxl:lora:civitai:328553@368189", CivitaiRef(
        model_id=328553, version_id=368189, ecosystem="sdxl", air_type="lora")),
    ("civitai:4384@128713", CivitaiRef(model_id=4384, version_id=128713)),
    ("URN:AIR:SD1:EMBEDDING:CIVITAI:7808@9536", CivitaiRef(
        model_id=7808, version_id=9536, ecosystem="sd1", air_type="embedding")),
    ("urn:air:flux1:lora:civitai:706978", CivitaiRef(
        model_id=706978, ecosystem="flux1", air_type="lora")),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parses(text: str, expected: CivitaiRef) -> None:
    assert parse_ref(text) == expected


BAD = [
    "",
    "dreamshaper",
    "4384@",
    "4384@abc",
    "0",
    "99999999999",
    "https://huggingface.co/runwayml/stable-diffusion-v1-5",
    "https://civitai.com/user/Lykon",
    "https://civitai.com/models/abc",
    "https://civitai.com/models/4384?modelVersionId=x",
    "ftp://civitai.com/models/4384",
    "urn:air:sdxl:model:huggingface:stabilityai/sdxl-vae",
    "urn:air:sd1:checkpoint:civitai:abc@def",
    "C:\\models\\x.safetensors",
]


@pytest.mark.parametrize("text", BAD)
def test_rejects_with_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_ref(text)
    assert info.value.exit_code == 2
    assert repr(text.strip())[1:-1] in str(info.value)  # the message quotes the input


def test_extra_hosts_accept_a_configured_server() -> None:
    ref = parse_ref("http://127.0.0.1:8765/models/4384?modelVersionId=128713",
                    extra_hosts=["127.0.0.1:8765"])  # fmt: skip
    assert ref == CivitaiRef(model_id=4384, version_id=128713, host="127.0.0.1:8765")
    with pytest.raises(UsageError):
        parse_ref("http://127.0.0.1:8765/models/4384")


def test_str_round_trips_the_short_form() -> None:
    assert str(parse_ref("urn:air:sd1:checkpoint:civitai:4384@128713+5")) == "4384@128713+5"
    assert str(parse_ref("@9")) == "@9"


def test_download_url_is_civitais_documented_endpoint_and_parses_back() -> None:
    """The one place the download path is built (export, lock files and the client used to
    spell it each): civitai-api.md 2.9 and its AIR mapping, ``?fileId=`` for one file."""
    from sdlib.sources.civitai import download_url

    assert download_url("https://civitai.com", 128713) == (
        "https://civitai.com/api/download/models/128713"
    )
    url = download_url("https://civitai.red/", 128713, 9)
    assert url == "https://civitai.red/api/download/models/128713?fileId=9"
    ref = parse_ref(url)
    assert (ref.version_id, ref.file_id) == (128713, 9)
