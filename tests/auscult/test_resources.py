import os

import pytest

from auscult import resources


@pytest.mark.parametrize("cpu_max, expected", [("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", None)])
def test_a_cgroup_cpu_limit_caps_the_cpus_a_pool_may_use(tmp_path, monkeypatch, cpu_max, expected):
    (tmp_path / "cpu.max").write_text(cpu_max)
    monkeypatch.setattr(resources, "CGROUP_CPU_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)))  # a large node
    assert resources.available_cpus() == (expected or 64)


def test_without_a_cgroup_file_the_affinity_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "CGROUP_CPU_MAX", tmp_path / "absent")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2})
    assert resources.available_cpus() == 3
