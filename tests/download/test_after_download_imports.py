"""What the steps after a download import (inspecting the file, the library index) is
imported on a thread of its own while the download runs, not on the installing thread
after the last byte: in a fresh process, those modules are first imported by that thread,
and are loaded when the download finishes (before the install inspects or records)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sdlib.demo.server import DemoServer

_CHILD = """
import json, sys, threading
from pathlib import Path
from sdlib.download import Finished
from sdlib.services import Context

AFTER = ("sdlib.inspect", "sdlib.library.installed")
seen = {"importers": {}}

def audit(event, args):
    if event == "import" and args[0] in AFTER and args[0] not in seen["importers"]:
        seen["importers"][args[0]] = threading.current_thread().name

sys.addaudithook(audit)

def on_event(event):
    if isinstance(event, Finished):
        for thread in threading.enumerate():
            if thread.name == "sdlib-import":
                thread.join(60)
        seen["loaded_at_finish"] = [m for m in AFTER if m in sys.modules]

with Context() as ctx:
    dest = ctx.destination(None, None, folder=Path(sys.argv[1]), create=True)
    installer = ctx.installer(on_event=on_event, destination=dest, previews=False)
    installer.install("4384@128713")
print(json.dumps(seen))
"""


def test_the_steps_after_a_download_are_imported_while_it_runs(
    civitai: DemoServer, cli_env: dict[str, str], tmp_path: Path
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "models")],
        env=cli_env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["importers"] == {
        "sdlib.inspect": "sdlib-import",
        "sdlib.library.installed": "sdlib-import",
    }
    assert seen["loaded_at_finish"] == ["sdlib.inspect", "sdlib.library.installed"]
