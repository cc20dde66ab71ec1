"""Run every benchmark in this folder (each prints ratios measured in one run)."""

import runpy
import pathlib

for path in sorted(pathlib.Path(__file__).parent.glob("bench_*.py")):
    print(f"== {path.name}", flush=True)
    runpy.run_path(str(path), run_name="__main__")
