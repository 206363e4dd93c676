"""What the steps after a download import (inspecting the file, the library index) is
imported on a thread of its own while the download runs, not on the installing thread
after the last byte: in a fresh process, once the download has finished, the install
imports none of ``sdlib.inspect``, ``sdlib.files`` or ``sdlib.library`` itself."""

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

seen = {"after": [], "background": []}
finished = threading.Event()

def audit(event, args):
    if event != "import" or not str(args[0]).startswith("sdlib"):
        return
    thread = threading.current_thread().name
    if thread == "sdlib-import":
        seen["background"].append(args[0])
    elif finished.is_set():
        seen["after"].append(args[0])

sys.addaudithook(audit)

def on_event(event):
    if isinstance(event, Finished):
        for thread in threading.enumerate():
            if thread.name == "sdlib-import":
                thread.join(60)
        finished.set()

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
    late = [m for m in seen["after"] if m.startswith(("sdlib.inspect", "sdlib.files",
                                                       "sdlib.library"))]  # fmt: skip
    assert late == []
    # They were imported, while the download ran, by the thread that does so.
    assert {"sdlib.inspect", "sdlib.files.classify", "sdlib.library.installed"} <= set(
        seen["background"]
    )
