"""Provenance (dcvae.evaluation.provenance): the commit and machine every record and report names."""

import re

from dcvae.evaluation.provenance import hardware, hardware_summary, source_commit


def test_the_commit_is_a_short_hash_flagged_when_the_sources_changed():
    commit = source_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{4,40}(\+local-changes)?", commit)


def test_the_machine_names_its_cpu_cores_and_torch():
    info = hardware()
    assert {"cpu", "cpu_cores", "torch_threads", "torch", "host"} <= set(info)
    assert info["cpu_cores"] >= 1 and info["torch_threads"] >= 1
    assert hardware_summary().endswith(f"{info['cpu_cores']} CPU cores")
