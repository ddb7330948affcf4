"""The benchmark runner (``dcvae benchmark``) and its report (``dcvae report``).

- ``grid``: the TOML grid file → a list of checked ``RunSpec``;
- ``store``: the append-only results store, safe for concurrent workers;
- ``runner``: one run end to end, and the local and Ray executors.
"""

from dcvae.benchmark.grid import BenchmarkConfig, RunSpec, load_config, parse_config
from dcvae.benchmark.runner import EXECUTORS, run_benchmark, run_one
from dcvae.benchmark.store import ResultStore

__all__ = ["EXECUTORS", "BenchmarkConfig", "ResultStore", "RunSpec", "load_config", "parse_config",
           "run_benchmark", "run_one"]
