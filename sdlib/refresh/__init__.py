"""Telling running webUIs to rescan their model folders after sdlib changed them.

Best effort, by design: a webUI that is not running, not reachable, slow, or refusing the
call is noted in one line, never an error (an install that worked stays a success).

* ``plan_calls(ui, kinds)``: which refresh endpoints a webUI offers for the kinds of model
  that changed, and what it cannot be told about (pure, ``endpoints``);
* ``call_webui(client, webui, plan)``: make those calls over the caller's ``httpx2``
  client with the webUI's own timeout, no retries, no redirects, and its HTTP Basic
  credentials sent only to its own URL; the answer is a ``WebuiRefresh`` (``calls``).

What each webUI offers (``/work/shared/reference/shared-store.md`` section 2):
A1111, Forge and reForge ``POST /sdapi/v1/refresh-checkpoints``, ``refresh-vae``,
``refresh-embeddings``, ``refresh-loras`` and, with sd-webui-controlnet,
``GET /controlnet/model_list?update=true``; SD.Next ``refresh-checkpoints``,
``refresh-unets``, ``refresh-vae``, ``refresh-loras``; ComfyUI nothing (it lists new files
on its next request).
"""

from __future__ import annotations

from sdlib.refresh.calls import CallResult, WebuiRefresh, call_webui
from sdlib.refresh.endpoints import Call, RefreshPlan, plan_calls

__all__ = ["Call", "CallResult", "RefreshPlan", "WebuiRefresh", "call_webui", "plan_calls"]
