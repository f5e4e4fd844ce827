"""The memory bench's child: one whole `graft run` in this process, measured from inside it.

Run as a script (``python bench/memory_child.py OUT_JSON -- <graft run args>``), so that the graft it imports is the
installed one (or the one on PYTHONPATH, to measure another commit): the bench folder holds no ``graft``.

What it measures, from this process itself (never the parent's view, never ``ru_maxrss``, which Linux carries
over fork + exec from a big parent):
  - ``VmHWM`` from /proc/self/status at the end: the high-water mark of this process's own address space;
  - ``VmRSS`` sampled every 0.1 s by a thread, attributed to each component by MLMD's execution start/end times
    (per-component peaks; a component shorter than a sample interval may show none).
If /proc/self/status cannot be read, it exits with an error instead of writing a number.
"""

from __future__ import annotations

import json
import sys
import threading
import time

SAMPLE_SECONDS = 0.1


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line: this bench needs Linux")


def main(argv: list[str]) -> int:
    out_json, graft_args = argv[0], argv[argv.index("--") + 1 :]
    _status_kb("VmHWM")  # fail now, before an hour of work, if it cannot be read
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.time(), _status_kb("VmRSS") / 1024.0))
            stop.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    import graft  # noqa: F401  (legacy Keras before TensorFlow)

    try:  # the CLI's home since the house moved (graft.cli); --graft-src trees from before keep graft.pipeline.cli
        from graft import cli
    except ImportError:
        from graft.pipeline import cli

    t0 = time.time()
    code = 0
    try:
        cli.main.main(args=graft_args, prog_name="graft", standalone_mode=False)
    except SystemExit as e:
        code = int(e.code or 0)
    seconds = time.time() - t0
    stop.set()
    sampler.join()
    peak_mb = _status_kb("VmHWM") / 1024.0

    from graft.pipeline import runs
    from graft.pipeline.config import load_config

    root = graft_args[graft_args.index("--root") + 1]
    cfg = load_config(None, [], base={"root": root})
    summary = runs.summarize(cfg.metadata_path, "latest", cfg.name, with_evaluation=False)
    components = {}
    for e in summary.executions:
        inside = [rss for t, rss in samples if e.start_ms / 1000 <= t <= e.end_ms / 1000]
        components[e.node_id] = {
            "seconds": e.seconds,
            "state": e.state,
            "peak_rss_mb": max(inside) if inside else None,
        }
    with open(out_json, "w") as f:
        json.dump(
            {
                "exit_code": code,
                "run_seconds": seconds,
                "peak_rss_mb": peak_mb,
                "sampled_peak_mb": max(s for _, s in samples),
                "components": components,
                "graft_file": graft.__file__,
            },
            f,
        )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
