"""The README's quick tour runs as written, copied into a shell, from an empty folder against
the demo server (issue 16 item 6), and the README lists every runtime dependency.

Every ``console`` block between "## A quick tour" and the next "## " heading is read in
order; each ``$ `` line (with its ``\\`` continuation lines) runs through ``bash -c`` in one
temporary folder, with private config, cache and data dirs. The two lines that start the
demo server and point sdlib at it are done as the tour says, with this session's server:
``sdlib demo-server &`` is the ``civitai`` fixture, and ``export SDLIB_CIVITAI_URL=...``
takes its address. A ``toml`` block is the manifest the tour says to save as
``models.toml``. Every command must exit 0; one ending in ``echo "exit $?"`` must print the
exit code the README shows under it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sdlib.demo.server import DemoServer
from tests.support.cli import isolated_env

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
_EXIT = 'echo "exit $?"'


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def tour_blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block in the quick tour, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", _section("A quick tour"), re.M | re.S)


def commands(block: str) -> list[tuple[str, str | None]]:
    """Each ``$`` command of a console block (continuations joined) and, for one ending in
    ``echo "exit $?"``, the ``exit N`` line the README shows after it."""
    out: list[tuple[str, str | None]] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.startswith("$ "):
            continue
        command = line[2:]
        while command.endswith("\\") and i < len(lines):
            command += "\n" + lines[i]
            i += 1
        expected = None
        if command.rstrip().endswith(_EXIT):
            expected = next(x for x in lines[i:] if x.startswith("exit "))
        out.append((command, expected))
    return out


def test_the_tour_names_only_files_it_makes() -> None:
    """hash, inspect, convert and merge examples take files downloaded (or written) by an
    earlier command of the tour, not files a reader does not have."""
    tour = [c for lang, body in tour_blocks() if lang == "console" for c, _ in commands(body)]
    assert any(
        c.startswith("sdlib download 4384 --ui a1111 --root stable-diffusion-webui") for c in tour
    )
    for command in tour:
        words = command.split()
        if words[:2] in (["sdlib", "hash"], ["sdlib", "inspect"], ["sdlib", "convert"]):
            # Local files only: a model reference (4384@128713, a URL, hf:...) is remote.
            files = [
                w.rstrip(";")
                for w in words[2:]
                if "." in w and not w.startswith("-") and not re.search(r"@|://|^hf:", w)
            ]
            for f in files:
                made = f.startswith("stable-diffusion-webui/") or f == "evil.pkl"
                assert made, f"{command}: {f} is not a file the tour made"


def test_readme_lists_every_runtime_dependency() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in deps]
    install = _section("Install")
    missing = [n for n in names if not re.search(rf"\b{re.escape(n)}\b", install)]
    assert not missing, f"README's Install section does not name {missing}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest().upper()


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("curl")), reason="the tour is a bash session"
)
def test_the_quick_tour_runs_as_written(civitai: DemoServer, tmp_path: Path) -> None:
    tour = tmp_path / "tour"
    tour.mkdir()
    bin_dir = Path(sys.executable).parent  # where `sdlib` is installed
    env = isolated_env(
        tmp_path / "private",
        PATH=os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
        NO_COLOR="1",
        COLUMNS="200",
    )
    ran = []
    for lang, body in tour_blocks():
        if lang == "toml":  # "Save this one as `models.toml` in the tour's folder"
            (tour / "models.toml").write_text(body, encoding="utf-8")
            continue
        if lang != "console":
            continue
        for command, expected in commands(body):
            if command == "sdlib demo-server &":
                continue  # the session's demo server is already up
            if command.startswith("export "):
                name, _, value = command[len("export ") :].partition("=")
                env[name] = civitai.url if name == "SDLIB_CIVITAI_URL" else value
                continue
            proc = subprocess.run(
                ["bash", "-c", command],
                cwd=tour,
                env=env,
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=180,
            )
            said = f"$ {command}\n{proc.stdout}{proc.stderr}"
            assert proc.returncode == 0, said
            assert "Traceback" not in said, said
            if expected is not None:
                assert proc.stdout.splitlines()[-1] == expected, said
            ran.append(said)
    assert len(ran) >= 25

    # Independent facts: the files are the demo catalogue's bytes, hashed here.
    served = {f.spec.name: f.path for f in civitai.files.values() if f.path is not None}
    webui = tour / "stable-diffusion-webui"
    for rel in (
        "models/Stable-diffusion/dreamshaper_8.safetensors",
        "models/Stable-diffusion/dreamshaper_8.ckpt",
        "models/Stable-diffusion/dreamshaper_7.safetensors",
        "models/Lora/add_detail.safetensors",
        "embeddings/easynegative.safetensors",
    ):
        path = webui / rel
        assert path.is_file(), rel
        assert _sha256(path) == _sha256(served[path.name]), rel
    assert (tour / "webui" / "models" / "Lora" / "styles" / "detail_tweaker.safetensors").is_file()
    assert (tour / "models.lock").is_file() and (tour / "exported.toml").is_file()

    # What convert and merge wrote is read back by the reference reader.
    from safetensors import safe_open

    for made, tensors in (
        (webui / "models/Stable-diffusion/dreamshaper_8.pruned.bf16.safetensors", 717),
        (tour / "dreamshaper-7-8.safetensors", 717),
    ):
        with safe_open(str(made), framework="numpy") as f:
            assert len(list(f.keys())) == tensors, made
    assert not (tour / "x.safetensors").exists()  # the refused merge wrote nothing
    # The hostile pickle was judged, never run.
    assert not any("hello from a pickle" in r.split("\n", 1)[1] for r in ran)
