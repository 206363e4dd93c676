"""`sdlib tui --demo` starts the offline demo server and a demo webUI folder."""

from __future__ import annotations

from pathlib import Path

import httpx

from sdlib.cli.tui_cmd import _start_demo
from sdlib.config import Settings
from sdlib.library.layouts import detect


def test_start_demo_points_settings_at_a_live_demo_server(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "data")
    demo, server, root = _start_demo(settings)
    try:
        assert demo.civitai.base_url == server.url != settings.civitai.base_url
        response = httpx.get(f"{server.url}/api/v1/models", params={"query": "dream"})
        assert response.status_code == 200 and response.json()["items"]
        layout = detect(root)
        assert layout is not None and layout.name == "a1111"
    finally:
        server.stop()
