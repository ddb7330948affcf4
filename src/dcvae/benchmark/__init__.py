"""The benchmark runner (``dcvae benchmark``): grids of runs, their store, and the executors.

- ``grid``: the TOML grid file → a list of checked ``RunSpec`` (``dcvae.evaluation.run``);
- ``store``: the append-only results store, safe for concurrent workers;
- ``runner``: the local and Ray executors, each run through ``dcvae.evaluation.run.run_protocol``.

The report on a results directory is ``dcvae.report``.
"""

from dcvae.benchmark.grid import BenchmarkConfig, load_config, parse_config
from dcvae.benchmark.runner import EXECUTORS, run_benchmark, run_one
from dcvae.benchmark.store import ResultStore
from dcvae.evaluation.run import RunSpec

__all__ = ["EXECUTORS", "BenchmarkConfig", "ResultStore", "RunSpec", "load_config", "parse_config",
           "run_benchmark", "run_one"]
