"""The batch precompute on a Ray cluster: an :class:`~core.engine.Executor` that sends
each batch of decoded images to a Ray task and hands the results back to the driver,
which writes them into its cache (no shared file system is needed).

- The driver decodes the images, resolves targets and objects, and builds every cache
  key; images already in the cache are never sent. A killed run, started again,
  computes only what is missing: results are stored as each batch comes back.
- The model reaches the workers as the driver's state dict, put once into Ray's object
  store; each worker process rebuilds it once (``core.model.loading.from_state``, no
  file or download) and keeps it for every later task. A worker checks that its
  weights hash is the driver's.
- Tasks ask for one CPU (and one GPU when the cluster has GPUs). A worker process that
  dies during a task costs a retry (``max_retries``); a batch that still fails is
  listed with the reason, image by image, never lost silently.
- The code reaches the cluster as Ray's ``working_dir`` (this repository, without the
  virtual environment, the cache and the uploads).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from core.engine import Batch
from core.model import LoadedModel
from core.model._kernels import kernel_choice
from core.model.kernel_choice import KernelChoice
from core.model.loading import from_state
from core.storage.cache import Arrays

ROOT = Path(__file__).resolve().parents[1]
EXCLUDES = [".venv", ".git", "cache", "uploads", "test-artifacts", "__pycache__"]
RETRIES = 3  # task retries after its worker process died
INSTALL = ("Ray is not installed here: `pip install 'ray==2.60.0'` (it is in "
           "requirements.txt), or use --engine local.")

_worker_models: dict[str, LoadedModel] = {}  # in each worker process: identity -> model


def _worker_model(name: str, identity: str, state: dict[str, torch.Tensor],
                  kernels: KernelChoice | None) -> LoadedModel:
    """The worker process's copy of the driver's model, rebuilt on first use. A CPU
    worker takes the driver's measured kernel choice (`kernels`, from a CPU driver), so
    that its numbers are the driver's to the bit; others measure their own."""
    if identity not in _worker_models:
        lm = from_state(name, state)
        if lm.identity != identity:
            raise RuntimeError(f"the worker rebuilt {lm.identity}, not the driver's {identity}")
        if kernels is not None and lm.device.type == "cpu":
            lm.kernels = kernels
        _worker_models[identity] = lm
    return _worker_models[identity]


def _compute(name: str, identity: str, state: dict[str, torch.Tensor],
             kernels: KernelChoice | None, batch: Batch) -> list[list[Arrays]]:
    """A Ray task: one batch of the analyses it carries (``Batch.jobs``)."""
    return batch.compute(_worker_model(name, identity, state, kernels))


def start(address: str | None = None, workers: int | None = None) -> None:
    """Connect to the cluster at `address` (or ``$RAY_ADDRESS``), or start a local one
    with `workers` CPUs (default: this machine's), without the dashboard."""
    try:
        import ray
    except ImportError as err:
        raise RuntimeError(INSTALL) from err
    if ray.is_initialized():
        return
    runtime_env = {"working_dir": str(ROOT), "excludes": EXCLUDES}
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False,
                 runtime_env=runtime_env, log_to_driver=False)


class RayExecutor:
    """Computes batches as Ray tasks, at most `in_flight` at a time (default: twice the
    cluster's CPUs, or GPUs when it has them). Call :func:`start` first."""

    def __init__(self, lm: LoadedModel, in_flight: int | None = None) -> None:
        import ray
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        self.in_flight = in_flight or 2 * max(1, self.gpus or int(resources.get("CPU", 1)))
        state = {k: v.detach().cpu() for k, v in lm.model.state_dict().items()}
        kernels = kernel_choice(lm) if lm.device.type == "cpu" else None
        self.model = (lm.name, lm.identity, ray.put(state), kernels)
        self.task = ray.remote(_compute).options(
            num_cpus=1, num_gpus=1 if self.gpus else 0, max_retries=RETRIES)
        self.sent = 0  # images sent to the cluster (for tests and the summary)

    def map(self, batches: Iterable[Batch]
            ) -> Iterator[tuple[Batch, list[list[Arrays]] | str]]:
        import ray
        pending: dict[Any, Batch] = {}
        source = iter(batches)
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < self.in_flight:
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                    break
                pending[self.task.remote(*self.model, batch)] = batch
                self.sent += len(batch.indices)
            if not pending:
                break
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            batch = pending.pop(ready)
            try:
                results: list[list[Arrays]] | str = ray.get(ready)
            except ray.exceptions.RayTaskError as err:  # the analysis raised
                results = f"failed on the cluster: {str(err.cause or err).splitlines()[0]}"
            except ray.exceptions.RayError as err:  # workers died, nodes lost
                results = (f"not computed on the cluster, {RETRIES} retries used "
                           f"({type(err).__name__}: {str(err).splitlines()[0]})")
            yield batch, results
