"""The batch precompute on Ray (``core.ray_executor``) against the local engine, on a
local Ray cluster this module starts itself (2 CPUs, no dashboard): the same numbers
for every registered analysis, images in the cache never sent, a run killed and
started again, a worker process that dies mid-task, bad images listed."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core import ANALYSES, load_dataset, run
from core.analyses import FORWARD
from core.storage.cache import ArrayCache
from testing.images import demo_class_folder, demo_flat_folder

import ray  # in requirements.txt

pytestmark = pytest.mark.slow  # left out of `make check` (the inner loop)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    from core import ray_executor
    ray_executor.start(workers=2)
    yield ray_executor
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, demo):
    return demo_class_folder(tmp_path_factory.mktemp("ray"), demo.class_names, per_class=3)


def test_every_analysis_gives_the_local_engines_numbers(cluster, demo, folder):
    ds = load_dataset(str(folder), demo.class_names)
    everything = list(range(len(ds)))
    executor = cluster.RayExecutor(demo)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task (1 CPU): parallel gradient sums differ
    try:  # at 1e-8 between thread counts
        local = {name: run(demo, ds, everything, a).arrays for name, a in ANALYSES.items()}
    finally:
        torch.set_num_threads(threads)
    for name, analysis in ANALYSES.items():
        remote = run(demo, ds, everything, analysis, executor=executor)
        assert not remote.skipped and sorted(remote.arrays) == everything, name
        for i in everything:
            for key in analysis.outputs:
                np.testing.assert_array_equal(remote.arrays[i][key], local[name][i][key],
                                              err_msg=f"{name} {key} image {i}")
    assert executor.sent == sum(map(computations, ANALYSES.values())) * len(ds)


def computations(analysis) -> int:
    """How many analyses a run without a cache computes: it and, recursively, the stored
    analyses it reads (each run once per image)."""
    return 1 + sum(computations(r.analysis) for r in analysis.reads if r.analysis.stored)


def test_images_in_the_cache_are_never_sent(cluster, demo, folder, tmp_path):
    ds = load_dataset(str(folder), demo.class_names)
    cache = ArrayCache(tmp_path)
    run(demo, ds, [0, 3, 7], FORWARD, cache=cache)
    executor = cluster.RayExecutor(demo)
    result = run(demo, ds, list(range(len(ds))), FORWARD, cache=cache, executor=executor)
    assert result.from_cache == 3 and executor.sent == len(ds) - 3
    assert len(result.arrays) == len(ds)


def test_bad_images_are_skipped_and_listed_as_in_the_local_path(cluster, demo, tmp_path):
    ds = load_dataset(str(demo_flat_folder(tmp_path)), demo.class_names)
    local = run(demo, ds, list(range(len(ds))), FORWARD)
    remote = run(demo, ds, list(range(len(ds))), FORWARD,
                 executor=cluster.RayExecutor(demo))
    assert remote.skipped == local.skipped and list(remote.skipped) == ["broken.png"]
    assert sorted(remote.arrays) == sorted(local.arrays)


def dying(marker: Path, every_time: bool):
    """FORWARD, except that the worker process exits in its first call (or in every one)."""
    def compute(lm, images, targets, params, reads):
        if every_time or not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies mid-task
        return FORWARD.compute(lm, images, targets, params, reads)
    return dataclasses.replace(FORWARD, name="forward_dying", compute=compute)


def test_a_worker_that_dies_costs_a_retry_not_an_image(cluster, demo, folder, tmp_path):
    ds = load_dataset(str(folder), demo.class_names)
    result = run(demo, ds, list(range(len(ds))), dying(tmp_path / "died", False),
                 executor=cluster.RayExecutor(demo))
    assert (tmp_path / "died").exists()  # a worker did die
    assert not result.skipped and len(result.arrays) == len(ds)
    expected = run(demo, ds, list(range(len(ds))), FORWARD).arrays
    for i, arrays in result.arrays.items():
        np.testing.assert_allclose(arrays["logits"], expected[i]["logits"], atol=1e-5)


def test_a_batch_whose_workers_always_die_is_listed_image_by_image(cluster, demo, folder,
                                                                   tmp_path):
    ds = load_dataset(str(folder), demo.class_names)
    result = run(demo, ds, list(range(len(ds))), dying(tmp_path / "died", True),
                 executor=cluster.RayExecutor(demo))
    assert not result.arrays and len(result.skipped) == len(ds)
    assert all(f.kind == "not_computed" and "retries used" in f.message
               for f in result.skipped.values())


def precompute_command(folder: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "core.precompute", "--model", "demo", "--images",
            str(folder), "--cache", str(cache), "--device", "cpu", "--engine", "ray",
            "--workers", "2"]


def test_a_killed_run_started_again_computes_only_what_is_missing(demo, tmp_path):
    folder = demo_class_folder(tmp_path, demo.class_names, per_class=10)
    cache_dir = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    first = subprocess.Popen(precompute_command(folder, cache_dir), cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    ds = load_dataset(str(folder), demo.class_names)
    deadline = time.time() + 300
    try:  # kill the driver (and its local cluster) once some results are stored
        while not run(demo, ds, list(range(len(ds))), FORWARD, cache=ArrayCache(cache_dir),
                      compute=False).from_cache:
            assert first.poll() is None and time.time() < deadline, "no result stored"
            time.sleep(0.5)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = {name: run(demo, ds, list(range(len(ds))), a, cache=ArrayCache(cache_dir),
                        compute=False).from_cache
              for name, a in ANALYSES.items() if a.precompute}
    assert 0 < before["forward"] and sum(before.values()) < len(before) * len(ds)
    again = subprocess.run(precompute_command(folder, cache_dir), cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"precompute: {len(ds)} images done, 0 skipped" in again.stdout
    for name, cached in before.items():
        assert f"{name}: {cached} from the cache, {len(ds) - cached} computed" in again.stdout


def test_without_ray_the_flag_says_how_to_get_it(monkeypatch, capsys, tmp_path):
    from core import precompute
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if not installed
    code = precompute.main(["--images", "demo", "--cache", str(tmp_path), "--engine", "ray"])
    assert code == 2
    assert "pip install 'ray==" in capsys.readouterr().err
