"""Interleaved timing for the transform benches (convert, merge): every side runs several
times, in alternating order, each from the same starting state, and the summary shows the
spread (min, median, max) so instability is visible instead of hidden behind a best-of.

Each run is a child process timed by wall clock and by its own CPU time (user + system,
from wait4): on a loaded machine the wall figures swing with what else runs, the CPU
figures much less, so both are printed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss: int
    out: str


def run_child(argv: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Wall and CPU seconds, peak RSS in bytes (this child only) and stdout."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{list(argv)[1:4]} failed:\n{err}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, usage.ru_maxrss * 1024, out)  # ru_maxrss is KiB on Linux


def settle() -> None:
    """Write out everything dirty (the previous run's output, its deletion) before the next
    run starts, so no run pays for another's disk work."""
    if hasattr(os, "sync"):
        os.sync()


def interleave(
    sides: dict[str, Callable[[], Run]], repeat: int, prepare: Callable[[str], None]
) -> dict[str, list[Run]]:
    """``repeat`` rounds; each round runs every side once, the order rotating by round;
    ``prepare(side)`` runs (untimed) before each run."""
    names = list(sides)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for i in range(repeat):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            prepare(name)
            runs[name].append(sides[name]())
    return runs


def spread(values: Sequence[float]) -> str:
    return f"min {min(values):.2f}  median {statistics.median(values):.2f}  max {max(values):.2f}"


def report(
    label: str, subject: list[Run], baseline: list[Run], baseline_label: str, target: float
) -> bool:
    """Print both sides' spread and the ratios; True when every run meets ``target``.

    A round's ratio is subject / baseline of that same round (they ran back to back); the
    worst round is what "in every run" means.
    """
    s_wall = [r.wall for r in subject]
    b_wall = [r.wall for r in baseline]
    rounds = [s / b for s, b in zip(s_wall, b_wall, strict=True)]
    print(f"    {label:<30} wall s: {spread(s_wall)}")
    print(f"    {baseline_label:<30} wall s: {spread(b_wall)}")
    print(
        f"    {'':<30} cpu s:  {label} {statistics.median(r.cpu for r in subject):.2f} / "
        f"{baseline_label} {statistics.median(r.cpu for r in baseline):.2f} (medians)"
    )
    ok = max(rounds) <= target
    print(
        f"    ratio per round: {' '.join(f'{r:.2f}' for r in rounds)}; best/best "
        f"{min(s_wall) / min(b_wall):.2f}, worst round {max(rounds):.2f} "
        f"(target <= {target} in every run: {'met' if ok else 'NOT met'})"
    )
    return ok
