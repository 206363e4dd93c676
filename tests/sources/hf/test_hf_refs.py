"""Hub references: ``hf:`` forms and every link the Hub's pages give, checked against
huggingface_hub's own parser (``parse_hf_uri``) and URL builder (``hf_hub_url``) as an
independent oracle, plus properties over generated repos, revisions and paths."""

from __future__ import annotations

import pytest
from huggingface_hub import hf_hub_url
from huggingface_hub.utils import parse_hf_uri
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdlib.errors import UsageError
from sdlib.names import safe_filename
from sdlib.sources.hf import HubRef, is_hub_ref, local_name, parse_hub_ref, resolve_url

REPO = "stabilityai/sdxl-vae"
FILE = "sdxl_vae.safetensors"

FORMS = [
    f"hf:{REPO}/{FILE}",
    f"hf://{REPO}/{FILE}",
    f"hf:{REPO}@main/{FILE}",
    f"hf:{REPO}@refs/pr/1/{FILE}",
    f"hf:{REPO}@feature%2Fx/{FILE}",
    f"hf:{REPO}@0123456789abcdef0123456789abcdef01234567/vae/{FILE}",
    f"hf:{REPO}",
    f"hf:{REPO}@v1.0",
    f"https://huggingface.co/{REPO}/blob/main/{FILE}",
    f"https://huggingface.co/{REPO}/resolve/main/{FILE}",
    f"https://huggingface.co/{REPO}/resolve/main/{FILE}?download=true",
    f"https://huggingface.co/{REPO}/resolve/refs%2Fpr%2F1/{FILE}",
    f"https://huggingface.co/{REPO}/blob/refs%2Fpr%2F3/sub%20dir/{FILE}",
    f"https://huggingface.co/{REPO}/raw/main/config.json",
    f"https://huggingface.co/{REPO}/tree/main",
    f"https://huggingface.co/{REPO}",
    f"https://hf.co/{REPO}/blob/main/{FILE}",
    f"huggingface.co/{REPO}/blob/main/{FILE}",
    f"https://huggingface.co/models/{REPO}/blob/main/{FILE}",
]


@pytest.mark.parametrize("text", FORMS)
def test_every_form_names_what_huggingface_hub_says(text: str) -> None:
    oracle = parse_hf_uri(text if not text.startswith("hf:") or text.startswith("hf://")
                          else "hf://" + text[3:])  # fmt: skip
    ref = parse_hub_ref(text)
    assert ref.repo == oracle.id
    assert ref.revision == oracle.revision
    assert (ref.path or "") == oracle.path_in_repo
    assert is_hub_ref(text)


def test_a_folder_link_is_marked_as_a_folder() -> None:
    ref = parse_hub_ref(f"https://huggingface.co/{REPO}/tree/main/unet")
    assert (ref.repo, ref.revision, ref.path, ref.folder) == (REPO, "main", "unet", True)
    assert not parse_hub_ref(f"https://huggingface.co/{REPO}/blob/main/{FILE}").folder


def test_links_on_the_configured_endpoint_are_hub_links_too() -> None:
    ref = parse_hub_ref(f"http://127.0.0.1:9/{REPO}/resolve/main/{FILE}",
                        endpoint="http://127.0.0.1:9")  # fmt: skip
    assert (ref.repo, ref.path) == (REPO, FILE)
    mirror = parse_hub_ref(f"https://mirror.example/hf/{REPO}/blob/main/{FILE}",
                           endpoint="https://mirror.example/hf")  # fmt: skip
    assert (mirror.repo, mirror.revision, mirror.path) == (REPO, "main", FILE)


@pytest.mark.parametrize(
    "text",
    [
        "hf:",
        "hf:onlyone",
        "hf:a/b@/x",
        "hf:-bad/repo",
        "hf:a--b/repo",
        "hf:a/b/../../etc/passwd",
        "hf:a/b/x\\y.safetensors",
        "hf:a/b@ma:in/x",
        "https://huggingface.co/stabilityai",
        "https://huggingface.co/datasets/a/b/blob/main/x.csv",
        "https://huggingface.co/a/b/discussions/1",
        "https://example.com/a/b/blob/main/x",
        "ftp://huggingface.co/a/b",
        "hf:" + "a" * 3000,
    ],
)
def test_bad_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_hub_ref(text)


def test_an_at_sign_in_a_file_name_is_part_of_the_name() -> None:
    ref = parse_hub_ref(f"hf:{REPO}/folder/model@v2.safetensors")
    assert (ref.revision, ref.path) == (None, "folder/model@v2.safetensors")


def test_str_round_trips() -> None:
    for text in (f"hf:{REPO}@refs/pr/1/{FILE}", f"hf:{REPO}@feature%2Fx/{FILE}", f"hf:{REPO}"):
        assert str(parse_hub_ref(text)) == text


@pytest.mark.parametrize(
    ("revision", "path"),
    [("main", FILE), ("refs/pr/1", "vae/x y.safetensors"), ("feature/x", "a#b.safetensors")],
)
def test_resolve_urls_are_huggingface_hubs(revision: str, path: str) -> None:
    endpoint = "http://127.0.0.1:8766"
    assert resolve_url(endpoint, REPO, revision, path) == hf_hub_url(
        REPO, path, revision=revision, endpoint=endpoint
    )


def test_local_names_follow_windows_rules() -> None:
    assert local_name("vae/sdxl_vae.safetensors") == "sdxl_vae.safetensors"
    assert local_name("CON.safetensors") == safe_filename("CON.safetensors")
    assert local_name("CON.safetensors") != "CON.safetensors"
    assert local_name('a<b>:"c|?*.safetensors') == safe_filename('a<b>:"c|?*.safetensors')
    assert ":" not in local_name("a:b.safetensors")


def test_civitai_references_are_not_hub_references() -> None:
    for text in ("4384", "4384@128713", "https://civitai.com/models/4384",
                 "urn:air:sd1:checkpoint:civitai:4384@128713"):  # fmt: skip
        assert not is_hub_ref(text)


# --- properties ------------------------------------------------------------------------------

_name = st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9_]|[-.](?=[A-Za-z0-9_])){0,20}", fullmatch=True)
_segment = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_characters="/\\\x7f"),
    min_size=1, max_size=12,
).filter(lambda s: s not in (".", "..") and s.strip() == s and "%" not in s)  # fmt: skip
_revision = st.one_of(
    st.just("main"),
    st.from_regex(r"v[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{40}", fullmatch=True),
    st.integers(1, 9999).map(lambda n: f"refs/pr/{n}"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(org=_name, name=_name, revision=st.none() | _revision,
       path=st.lists(_segment, min_size=1, max_size=4).map("/".join))  # fmt: skip
def test_generated_refs_parse_as_huggingface_hub_parses_them(
    org: str, name: str, revision: str | None, path: str
) -> None:
    if "--" in org or "--" in name or ".." in org or ".." in name:
        return
    ref = HubRef(f"{org}/{name}", revision, path)
    text = str(ref)
    parsed = parse_hub_ref(text)
    assert (parsed.repo, parsed.revision, parsed.path) == (ref.repo, revision, path)
    oracle = parse_hf_uri("hf://" + text[3:])
    assert (oracle.id, oracle.revision, oracle.path_in_repo) == (ref.repo, revision, path)
    # The same file as a pasted link, on any of the Hub's hosts.
    link = hf_hub_url(ref.repo, path, revision=revision or "main",
                      endpoint="https://huggingface.co")  # fmt: skip
    from_link = parse_hub_ref(link)
    assert (from_link.repo, from_link.rev, from_link.path) == (ref.repo, ref.rev, path)
    assert "/" not in local_name(path) and "\\" not in local_name(path)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_ref_or_a_usage_error(text: str) -> None:
    try:
        ref = parse_hub_ref("hf:" + text)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert ref.repo.count("/") == 1
    assert ref.path is None or ".." not in ref.path.split("/")
