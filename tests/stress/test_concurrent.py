"""Stress tests of one shared loaded model (in the spirit of diskcache's
``tests/stress_test_core.py``): several threads hammer ONE ``LoadedModel`` with every
analysis of ``ANALYSES`` and every method of ``METHODS`` at once; every result must
equal a sequential run of the same call (bit for bit: sequential repeats are exact),
no call may raise, and afterwards the model must be exactly as loaded
(``testing.models.model_state``: no taps, hooks, swapped modules or kernels, fused
attention flags or weights changed).

Also: leave-one-out importance interleaved with ``_rerun.states``, re-runs and
gradient explanations (``capture.forward(..., grad=True)``); two shared models at
once; a re-run that starts while leave-one-out has swapped the final block (paused
there on purpose); calls that raise in the middle of a forward or backward pass (the
model must be restored, the lock released, and the next call right), alone and
alongside threads whose calls succeed; and the process-wide torch settings
(threads, random state...) left alone by the pattern autoencoder's training, every
analysis, every method and every dataset step.

Run: ``.venv/bin/python -m pytest -q tests/stress -p no:cacheprovider``.
"""
from __future__ import annotations

import dataclasses
import random
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import torch
from timm.layers import Attention

from core import (ANALYSES, DATASET_STEPS, METHODS, ArrayCache, explain, load_batch, load_dataset,
                  load_model, run, run_step)
from core.analyses.axes import problems as output_problems
from core.analyses.importance import leave_one_out
from core.analyses.partial_pruning import modes_of_head
from core.data.builtin import demo_dataset
from core.data.records import Dataset
from core.dataset import autoencoder
from core.explain.gradients import attention_and_gradients
from core.model import LoadedModel, capture
from core.model._kernels import fast_path, onednn
from core.model._rerun import forward_from, states
from core.model.capture import _tapped
from testing.models import model_state, random_family, random_input, random_vit

IMAGES = [0, 1, 2, 3]  # demo images of the per-image analyses and the methods
OTHER_IMAGES = [4, 5]  # a second, differently sized batch in flight at the same time
# ~260 fast forwards per image and method: two images keep the suite fast
FEW_IMAGES = {"faithfulness": [6, 7]}
THREADS = 6
REPEATS = 3  # of every job in the concurrent run
BARRIER_TIMEOUT = 120.0


# --------------------------------------------------------------------------- helpers


@dataclass
class Job:
    """One call of the stress run and the sequential result it must give."""

    name: str
    call: Callable[[], Any]
    expected: Any = None
    check: Callable[[Any], None] | None = None  # extra checks of the result


def differences(expected: Any, got: Any, where: str = "") -> list[str]:
    """Where `got` is not exactly `expected` (tensors and arrays bit for bit, same dtype
    and shape; NaN equals NaN); empty when they are the same."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return [f"{where}: a {type(got).__name__}, expected a tensor"]
        return differences(expected.detach().cpu().numpy(), got.detach().cpu().numpy(), where)
    if isinstance(expected, np.ndarray):
        if not isinstance(got, np.ndarray):
            return [f"{where}: a {type(got).__name__}, expected an array"]
        if expected.dtype != got.dtype or expected.shape != got.shape:
            return [f"{where}: {got.dtype} {got.shape}, expected {expected.dtype} "
                    f"{expected.shape}"]
        nan_ok = expected.dtype.kind in "fc"
        if not np.array_equal(expected, got, equal_nan=nan_ok):
            worst = np.nanmax(np.abs(expected.astype(np.float64) - got.astype(np.float64)))
            return [f"{where}: values differ (max abs {worst:.3g})"]
        return []
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(expected) != set(got):
            return [f"{where}: keys {sorted(got) if isinstance(got, dict) else got!r}, "
                    f"expected {sorted(expected)}"]
        return [d for k in expected for d in differences(expected[k], got[k], f"{where}[{k}]")]
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(expected) != len(got):
            size = len(got) if isinstance(got, (list, tuple)) else type(got).__name__
            return [f"{where}: {size} items, expected {len(expected)}"]
        return [d for i, (e, g) in enumerate(zip(expected, got))
                for d in differences(e, g, f"{where}[{i}]")]
    if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        if type(got) is not type(expected):
            return [f"{where}: a {type(got).__name__}, expected a {type(expected).__name__}"]
        return [d for f in dataclasses.fields(expected)
                for d in differences(getattr(expected, f.name), getattr(got, f.name),
                                     f"{where}.{f.name}")]
    return [] if expected == got else [f"{where}: {got!r}, expected {expected!r}"]


def assert_same(expected: Any, got: Any, where: str) -> None:
    found = differences(expected, got, where)
    assert not found, "\n".join(found[:20])


def hammer(jobs: list[Job], threads: int = THREADS) -> list[str]:
    """Run `jobs` on `threads` threads that start together (a barrier), job k on thread
    k % threads, and compare every result with the job's expected one. Returns every
    failure: exceptions (with their traceback) and differences."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * len(jobs)
    failures: list[str] = []
    raised: set[int] = set()
    lock = threading.Lock()

    def worker(k: int) -> None:
        barrier.wait(timeout=BARRIER_TIMEOUT)
        for j in range(k, len(jobs), threads):
            try:
                results[j] = jobs[j].call()
                if jobs[j].check is not None:
                    jobs[j].check(results[j])
            except BaseException:  # noqa: BLE001 - every exception is a failure
                with lock:
                    raised.add(j)
                    failures.append(f"{jobs[j].name} raised:\n{traceback.format_exc()}")

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(worker, k) for k in range(threads)]:
            future.result()
    for j, (job, result) in enumerate(zip(jobs, results)):
        if job.expected is not None and j not in raised:
            failures += differences(job.expected, result, job.name)
    return failures


def lock_is_free(lm: LoadedModel) -> bool:
    """Whether another thread can take the model's lock (nothing left it held)."""
    got: list[bool] = []

    def take() -> None:
        acquired = lm.lock.acquire(timeout=5)
        got.append(acquired)
        if acquired:
            lm.lock.release()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join()
    return got == [True]


def assert_as_loaded(lm: LoadedModel, loaded: list[tuple]) -> None:
    """The model is exactly as loaded (no taps, hooks, swapped modules or kernels,
    flags or weights changed), no gradient was accumulated into its weights, and its
    lock is free."""
    now = model_state(lm.model)
    assert now == loaded, [row for row, original in zip(now, loaded) if row != original][:5]
    assert all(p.grad is None for p in lm.model.parameters()), "gradients left on weights"
    assert lock_is_free(lm), "the model's lock is still held"


def run_arrays(lm: LoadedModel, ds: Dataset, name: str, indices: list[int],
               target: Any = None) -> dict[int, dict[str, np.ndarray]]:
    """One analysis through the engine, no cache; every image must be computed."""
    result = run(lm, ds, indices, ANALYSES[name], target=target)
    assert not result.skipped and not result.missing and result.from_cache == 0
    assert sorted(result.arrays) == sorted(indices)
    return result.arrays


def torch_settings() -> dict[str, Any]:
    """The process-wide torch settings a call could change for every other session."""
    return {"num_threads": torch.get_num_threads(),
            "num_interop_threads": torch.get_num_interop_threads(),
            "rng_state": torch.get_rng_state(),
            "grad_enabled": torch.is_grad_enabled(),
            "inference_mode": torch.is_inference_mode_enabled(),
            "default_dtype": torch.get_default_dtype(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "anomaly": torch.is_anomaly_enabled(),
            "matmul_precision": torch.get_float32_matmul_precision(),
            "mkldnn": torch.backends.mkldnn.enabled}


class Boom(RuntimeError):
    """The error the tests' own hooks raise in the middle of a forward."""


@contextmanager
def raising_hook(module: torch.nn.Module, when: Callable[[torch.Tensor], bool] = lambda _: True,
                 backward: bool = False) -> Iterator[None]:
    """A forward hook on `module` (or a full backward hook with `backward`) raising Boom
    when `when(the module's first input)`; removed on exit."""
    if backward:
        def hook(_module, _grad_in, _grad_out):
            raise Boom("raised in a backward pass")
        handle = module.register_full_backward_hook(hook)
    else:
        def hook(_module, args, _out):
            if when(args[0]):
                raise Boom("raised in a forward pass")
        handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shared() -> tuple[LoadedModel, list[tuple]]:
    """The one model every thread shares, and its state right after loading."""
    lm = load_model("demo", device="cpu")
    return lm, model_state(lm.model)


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return demo_dataset()


@pytest.fixture(scope="module")
def batches(shared, ds) -> dict[str, tuple[torch.Tensor, list[int | None]]]:
    """Input batches and their labels: ``main`` (IMAGES) and ``other`` (OTHER_IMAGES)."""
    lm, _ = shared
    out = {}
    for key, indices in (("main", IMAGES), ("other", OTHER_IMAGES)):
        x, kept, failures = load_batch(lm, ds, indices)
        assert kept == indices and not failures
        out[key] = (x, [ds.records[i].label for i in indices])
    return out


def analysis_calls(lm: LoadedModel, ds: Dataset) -> dict[str, Callable[[], Any]]:
    """Every analysis of the registry through the engine, on two image sets, and every
    class-specific one also on one fixed class."""
    calls: dict[str, Callable[[], Any]] = {}
    for name, analysis in ANALYSES.items():
        sets = [FEW_IMAGES[name]] if name in FEW_IMAGES else [IMAGES, OTHER_IMAGES]
        for indices in sets:
            calls[f"analysis {name} {indices}"] = (
                lambda name=name, indices=indices: run_arrays(lm, ds, name, indices))
        if analysis.class_specific and name not in FEW_IMAGES:
            calls[f"analysis {name} {OTHER_IMAGES} class 3"] = (
                lambda name=name: run_arrays(lm, ds, name, OTHER_IMAGES, target=3))
    return calls


def method_calls(lm: LoadedModel, batches) -> dict[str, Callable[[], Any]]:
    """Every explanation method of the registry on both batches (class-specific ones on
    the labels, and on the predictions)."""
    calls: dict[str, Callable[[], Any]] = {}
    for name, method in METHODS.items():
        for key, (x, labels) in batches.items():
            calls[f"method {name} {key}"] = (
                lambda name=name, x=x, labels=labels: explain(
                    lm, x, name, labels if METHODS[name].class_specific else None))
            if method.class_specific:
                calls[f"method {name} {key} prediction"] = (
                    lambda name=name, x=x: explain(lm, x, name, None))
    return calls


@pytest.fixture(scope="module")
def reference(shared, ds, batches) -> dict[str, Any]:
    """The sequential result of every call of the stress run, each computed twice to
    confirm that sequential repeats are bit-exact (so the stress run can demand it)."""
    lm, _ = shared
    calls = {**analysis_calls(lm, ds), **method_calls(lm, batches)}
    expected = {name: call() for name, call in calls.items()}
    for name, call in calls.items():
        assert_same(expected[name], call(), f"sequential repeat of {name}")
    return expected


# --------------------------------------------------------------------------- tests


def test_every_analysis_and_method_at_once_on_one_shared_model(shared, ds, batches, reference):
    """THREADS threads run every analysis and method REPEATS times, shuffled, on the one
    model: each result equals the sequential one bit for bit, nothing raises, every
    result matches its analysis's declared outputs, and the model is as loaded."""
    lm, loaded = shared
    calls = {**analysis_calls(lm, ds), **method_calls(lm, batches)}
    assert set(calls) == set(reference)
    assert {n.split()[1] for n in calls if n.startswith("analysis ")} == set(ANALYSES)
    assert {n.split()[1] for n in calls if n.startswith("method ")} == set(METHODS)

    def declared(name: str) -> Callable[[Any], None] | None:
        if not name.startswith("analysis "):
            return None
        analysis = ANALYSES[name.split()[1]]

        def check(arrays: dict[int, dict[str, np.ndarray]]) -> None:
            for index, values in arrays.items():
                assert not output_problems(analysis, values, lm), (index, output_problems(analysis, values, lm))
        return check

    jobs = [Job(name, calls[name], reference[name], declared(name))
            for name in calls for _ in range(REPEATS)]
    random.Random(0).shuffle(jobs)
    failures = hammer(jobs)
    assert not failures, "\n".join(failures[:10])
    assert_as_loaded(lm, loaded)


def test_leave_one_out_with_states_and_gradient_explanations_at_once(shared, batches):
    """Leave-one-out importance (kernels swapped, an attention module replaced by a
    given output), ``_rerun.states`` (hooks on every block), ``forward_from``, partial
    pruning and ``capture.forward(..., grad=True)`` gradient explanations interleaved on
    one model. Once raised ``'_Given' object has no attribute 'proj'`` and returned 18
    block inputs instead of 6."""
    lm, loaded = shared
    x, labels = batches["main"]
    y, other_labels = batches["other"]
    last = lm.num_layers - 1

    def grad_capture(inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with lm.lock:  # the backward of a grad=True capture runs under the lock too
            out = capture.forward(lm, inputs, grad=True)
            out.logits[:, 0].sum().backward(inputs=out.per_layer)  # nothing on the weights
            return (out.logits.detach(), out.attention,
                    torch.stack([a.grad for a in out.per_layer], dim=1))

    def check_states(result) -> None:
        assert (len(result.inputs), len(result.heads), len(result.outputs)) == (
            lm.num_layers,) * 3, "block inputs / head outputs / attention outputs"

    calls: dict[str, tuple[Callable[[], Any], Callable[[Any], None] | None]] = {
        "importance main": (lambda: leave_one_out(lm, x, labels), None),
        "importance other": (lambda: leave_one_out(lm, y, other_labels), None),
        "states main": (lambda: states(lm, x), check_states),
        "states other": (lambda: states(lm, y), check_states),
        "relevance main": (lambda: explain(lm, x, "relevance", labels), None),
        "relevance other": (lambda: explain(lm, y, "relevance", None), None),
        "gradient_rollout main": (lambda: explain(lm, x, "gradient_rollout", labels), None),
        "gradients other": (lambda: attention_and_gradients(lm, y, other_labels), None),
        "grad capture main": (lambda: grad_capture(x), None),
        "grad capture other": (lambda: grad_capture(y), None),
        "partial pruning main": (lambda: modes_of_head(lm, x, last, 1, labels), None),
        "partial pruning other": (lambda: modes_of_head(lm, y, 2, 3, other_labels), None),
    }
    base = {"main": states(lm, x), "other": states(lm, y)}
    for key in base:
        for layer in (0, last):
            hidden = base[key].inputs[layer]
            given = base[key].outputs[layer]
            calls[f"forward_from {key} {layer} given"] = (
                lambda hidden=hidden, layer=layer, given=given: forward_from(
                    lm, hidden, layer, attn_output=given), None)
            calls[f"forward_from {key} {layer} masked"] = (
                lambda hidden=hidden, layer=layer: forward_from(
                    lm, hidden, layer, mask=capture.head_mask(lm, [0, 2])), None)
    expected = {name: call() for name, (call, _) in calls.items()}
    for name, (call, check) in calls.items():
        if check is not None:
            check(expected[name])
        assert_same(expected[name], call(), f"sequential repeat of {name}")

    jobs = [Job(name, call, expected[name], check)
            for name, (call, check) in calls.items() for _ in range(3)]
    random.Random(1).shuffle(jobs)
    failures = hammer(jobs, threads=8)
    assert not failures, "\n".join(failures[:10])
    assert_as_loaded(lm, loaded)


def test_two_shared_models_at_once(shared, batches):
    """The demo and a random-init ViT with five prefix tokens (registers), each shared
    by all threads, hammered at once with leave-one-out, states, partial pruning,
    gradient explanations, captures and fast logits: every result is its sequential
    one bit for bit and both models end as loaded (each model's lock guards only it)."""
    demo, demo_loaded = shared
    registers, _ = random_vit("registers")
    registers_loaded = model_state(registers.model)
    inputs = {"demo": (demo, *batches["main"]),
              "registers": (registers, random_input(registers, 3, seed=3), [None, 7, 2])}
    calls: dict[str, Callable[[], Any]] = {}
    for key, (lm, x, targets) in inputs.items():
        masks = {lm.num_layers - 1: capture.head_mask(lm, [1], 3)}
        calls |= {
            f"{key} importance": lambda lm=lm, x=x, t=targets: leave_one_out(lm, x, t),
            f"{key} states": lambda lm=lm, x=x: states(lm, x),
            f"{key} partial pruning": lambda lm=lm, x=x, t=targets: modes_of_head(
                lm, x, lm.num_layers - 1, 1, t),
            f"{key} relevance": lambda lm=lm, x=x, t=targets: explain(lm, x, "relevance", t),
            f"{key} gradient rollout": lambda lm=lm, x=x: explain(lm, x, "gradient_rollout"),
            f"{key} masked capture": lambda lm=lm, x=x, m=masks: capture.forward(
                lm, x, masks=m).attention,
            f"{key} logits": lambda lm=lm, x=x: capture.logits(lm, x),
        }
    expected = {name: call() for name, call in calls.items()}
    jobs = [Job(name, call, expected[name]) for name, call in calls.items()
            for _ in range(3)]
    random.Random(3).shuffle(jobs)
    failures = hammer(jobs)
    assert not failures, "\n".join(failures[:10])
    assert_as_loaded(demo, demo_loaded)
    assert_as_loaded(registers, registers_loaded)


class WatchedLock:
    """A re-entrant lock like ``LoadedModel.lock`` that notes when a thread has to wait
    for it (so a test knows that thread got as far as the lock)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.waited = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        self.waited.set()
        return self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_exc) -> None:
        self.release()


def test_forward_from_looks_at_the_model_only_under_its_lock(shared, batches):
    """A re-run from layer 0 that starts while leave-one-out holds the model with its
    final block's attention replaced by a given output (``_rerun._Given``) must still
    take the final block's shortcut decided on the restored model, and give its
    sequential result bit for bit. Deterministic: leave-one-out is paused right there
    (a pre-hook on the final norm) until the re-run waits for the lock."""
    lm, loaded = shared
    watched = dataclasses.replace(lm, lock=WatchedLock())  # same model, observed lock
    x, labels = batches["main"]
    base = states(watched, x)
    mask = capture.head_mask(lm, [1, 2])
    expected_rerun = forward_from(watched, base.inputs[0], 0, mask=mask)
    expected_importance = leave_one_out(watched, x, labels)
    paused, resume = threading.Event(), threading.Event()

    def pause(_module, _args) -> None:
        final_swapped = not isinstance(lm.model.blocks[-1].attn, Attention)
        if final_swapped and not paused.is_set():
            paused.set()
            assert resume.wait(BARRIER_TIMEOUT), "never resumed"

    handle = lm.model.norm.register_forward_pre_hook(pause)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            importance = pool.submit(leave_one_out, watched, x, labels)
            assert paused.wait(BARRIER_TIMEOUT), "leave-one-out never swapped the final block"
            watched.lock.waited.clear()
            rerun = pool.submit(forward_from, watched, base.inputs[0], 0, mask=mask)
            assert watched.lock.waited.wait(BARRIER_TIMEOUT), "the re-run never waited"
            resume.set()
            got_rerun, got_importance = rerun.result(), importance.result()
    finally:
        resume.set()
        handle.remove()
    assert_same(expected_rerun, got_rerun, "forward_from from layer 0")
    assert_same(expected_importance, got_importance, "leave-one-out")
    assert_as_loaded(lm, loaded)


def _failure_cases(lm: LoadedModel, x: torch.Tensor, labels: list[int | None]
                   ) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """name -> (a call that raises in the middle, the same call done normally)."""
    n, last = len(x), lm.num_layers - 1
    mlp = lm.model.blocks[2].mlp
    wrong = torch.zeros(n, lm.data_config["input_size"][0] + 2,
                        *lm.data_config["input_size"][1:])  # wrong channel count
    masks = {1: capture.head_mask(lm, [0, 3], 1), 4: capture.head_mask(lm, [2], 4)}
    base = states(lm, x)
    is_variant_batch = lambda inputs: inputs.shape[0] != n  # noqa: E731 - re-runs only

    def hooked(call: Callable[[], Any], **kwargs) -> Callable[[], Any]:
        def raising() -> Any:
            with raising_hook(mlp, **kwargs):
                return call()
        return raising

    def inside(manager: Callable[[], Any]) -> Callable[[], Any]:
        """Raise inside the block of one of the private context managers."""
        def raising() -> None:
            with manager():
                lm.model(x)  # a forward with the manager's changes in place
                raise Boom("raised inside the block")
        return raising

    def locked_onednn():
        @contextmanager
        def manager():
            with lm.lock, onednn(lm):
                yield
        return manager()

    masked = lambda inputs: capture.forward(lm, inputs, masks=masks)  # noqa: E731
    grad = lambda inputs: capture.forward(lm, inputs, grad=True)  # noqa: E731
    fast = lambda inputs: capture.logits(lm, inputs)  # noqa: E731
    relevance = lambda inputs: explain(lm, inputs, "relevance", labels)  # noqa: E731
    importance = lambda inputs: leave_one_out(lm, inputs, labels)  # noqa: E731
    rerun_given = lambda hidden, given: forward_from(  # noqa: E731
        lm, hidden, 1, attn_output=given)
    pruning = lambda inputs: modes_of_head(lm, inputs, 1, 2, labels)  # noqa: E731
    return {
        # a hook on block 2's MLP raises in the middle of the forward
        "hook: capture.forward with masks": (hooked(lambda: masked(x)), lambda: masked(x)),
        "hook: capture.forward grad=True": (hooked(lambda: grad(x)), lambda: grad(x)),
        "hook: fast_path logits": (hooked(lambda: fast(x)), lambda: fast(x)),
        "hook: relevance forward": (hooked(lambda: relevance(x)), lambda: relevance(x)),
        "hook: relevance backward": (hooked(lambda: relevance(x), backward=True),
                                     lambda: relevance(x)),
        "hook: leave-one-out states": (hooked(lambda: importance(x)), lambda: importance(x)),
        "hook: leave-one-out forward_from (given z, onednn)": (
            hooked(lambda: importance(x), when=is_variant_batch), lambda: importance(x)),
        "hook: partial pruning forward_from (masked)": (
            hooked(lambda: pruning(x), when=is_variant_batch), lambda: pruning(x)),
        "hook: forward_from given z": (
            hooked(lambda: rerun_given(base.inputs[1], base.outputs[1])),
            lambda: rerun_given(base.inputs[1], base.outputs[1])),
        # inputs of the wrong shape
        "shape: capture.forward with masks": (lambda: masked(wrong), lambda: masked(x)),
        "shape: capture.forward grad=True": (lambda: grad(wrong), lambda: grad(x)),
        "shape: fast_path logits": (lambda: fast(wrong), lambda: fast(x)),
        "shape: relevance": (lambda: relevance(wrong), lambda: relevance(x)),
        "shape: leave-one-out": (lambda: importance(wrong), lambda: importance(x)),
        "shape: states": (lambda: states(lm, wrong), lambda: states(lm, x)),
        "shape: forward_from hidden": (
            lambda: rerun_given(base.inputs[1][..., :-1], base.outputs[1]),
            lambda: rerun_given(base.inputs[1], base.outputs[1])),
        "shape: forward_from given z": (
            lambda: rerun_given(base.inputs[1], base.outputs[1][:, :-1]),
            lambda: rerun_given(base.inputs[1], base.outputs[1])),
        "shape: forward_from mask": (
            lambda: forward_from(lm, base.inputs[last], last, mask=torch.ones(3, 5, 5)),
            lambda: forward_from(lm, base.inputs[last], last,
                                 mask=capture.head_mask(lm, [1]))),
        "shape: capture mask": (
            lambda: capture.forward(lm, x, masks={3: torch.ones(2, 3, 3)}),
            lambda: masked(x)),
        # raised inside the block of the private context managers
        "inside: fast_path": (inside(lambda: fast_path(lm, range(lm.num_layers))),
                              lambda: fast(x)),
        "inside: onednn": (inside(locked_onednn), lambda: importance(x)),
        "inside: taps": (inside(lambda: _tapped(lm, masks, range(lm.num_layers))),
                         lambda: masked(x)),
    }


def test_a_call_that_raises_leaves_the_model_as_loaded(shared, batches):
    """Each way of raising in the middle of a call (a hook raising in a forward or a
    backward pass, an input, hidden state, attention output or mask of the wrong shape,
    an error inside the private context managers) leaves the model exactly as loaded
    and its lock free, and the next normal call still gives the reference result."""
    lm, loaded = shared
    x, labels = batches["main"]
    cases = _failure_cases(lm, x, labels)
    expected = {name: normal() for name, (_, normal) in cases.items()}
    problems = []
    for name, (raising, normal) in cases.items():
        try:
            raising()
        except (Boom, RuntimeError, ValueError, IndexError) as err:
            raised = err
        else:
            problems.append(f"{name}: did not raise")
            continue
        if name.startswith(("hook", "inside")) and not isinstance(raised, Boom):
            problems.append(f"{name}: raised {raised!r}, not the test's own error")
        if model_state(lm.model) != loaded:
            changed = [row for row, original in zip(model_state(lm.model), loaded)
                       if row != original]
            problems.append(f"{name}: model left changed: {changed[:4]}")
        if not lock_is_free(lm):
            problems.append(f"{name}: the model's lock is still held")
            break  # every later call would wait forever
        problems += differences(expected[name], normal(), f"{name}: next normal call")
    assert not problems, "\n".join(problems)
    assert_as_loaded(lm, loaded)


def test_calls_that_raise_do_not_disturb_other_threads(shared, batches):
    """Threads whose calls fail (inputs of the wrong shape) run alongside threads whose
    calls succeed: the failures raise, the others give their sequential results."""
    lm, loaded = shared
    x, labels = batches["main"]
    cases = {name: pair for name, pair in _failure_cases(lm, x, labels).items()
             if name.startswith("shape")}  # hooks and swaps would hit every thread

    def expect_failure(call: Callable[[], Any]) -> Callable[[], str]:
        def failing() -> str:
            try:
                call()
            except (RuntimeError, ValueError, IndexError) as err:
                return type(err).__name__
            raise AssertionError("did not raise")
        return failing

    jobs = []
    for name, (raising, normal) in cases.items():
        jobs += [Job(f"{name} (raising)", expect_failure(raising))] * 3
        jobs += [Job(f"{name} (normal)", normal, normal())] * 3
    random.Random(2).shuffle(jobs)
    failures = hammer(jobs)
    assert not failures, "\n".join(failures[:10])
    assert_as_loaded(lm, loaded)


def test_no_process_wide_torch_setting_changes(shared, ds, tmp_path):
    """Thread count, random state, grad mode and the other process-wide torch settings
    are the same after the pattern autoencoder's training (which draws from its own
    generator), every analysis, every method and every dataset step."""
    lm, loaded = shared
    torch.manual_seed(1234)  # a known, non-default global random state
    start = torch_settings()
    previous = [start]
    changed: list[str] = []

    def note(what: str) -> None:
        """Record which settings the call `what` changed (against the previous call)."""
        after = torch_settings()
        changed.extend(f"{what} changed {key}" for key in after
                       if differences(previous[0][key], after[key]))
        previous[0] = after

    data = (np.random.default_rng(0).random((40, 7, 7)) < 0.1).astype(np.uint8)
    _, losses = autoencoder.train(data, autoencoder.Config(num_patches=7, code_dim=8),
                                  max_epochs=1, batch_size=16)
    assert losses.shape == (1,) and np.isfinite(losses).all()
    note("autoencoder.train")

    # four images: the dataset steps' t-SNE runs (below four points it is skipped)
    small = Dataset("four demo images", ds.records[:4], pixels=ds.pixels[:4],
                    relies=np.array([True, False, True, False]), clean=ds.pixels[:4])  # a
    # known shortcut for the prompt's rates
    everything = list(range(len(small)))
    cache = ArrayCache(tmp_path / "cache")
    for name, analysis in ANALYSES.items():
        result = run(lm, small, everything, analysis, cache=cache)  # (reads may be cached)
        assert sorted(result.arrays) == everything
        note(f"analysis {name}")
    x, _, _ = load_batch(lm, small, everything)
    for name in METHODS:
        explain(lm, x, name)
        note(f"method {name}")
    for name, step in DATASET_STEPS.items():
        params = step.params()
        if "max_epochs" in {f.name for f in dataclasses.fields(params)}:
            params = dataclasses.replace(params, max_epochs=1)
        result = run_step(lm, small, step, params, cache=cache)
        assert result.arrays is not None and not result.skipped
        note(f"dataset step {name}")

    assert not changed, changed
    assert not differences(start, torch_settings())
    assert_as_loaded(lm, loaded)


def test_a_model_without_classes_shared_by_sessions_with_other_references(ds):
    """A random-init DINOv2-S/14 with registers (no classes), shared: every analysis of
    the registry on the image's own embedding, and every class-specific one on two
    reference images' embeddings at once, each equal to its sequential result bit for
    bit; the model is as loaded after."""
    from core.engine import reference
    from testing.models import headless_vit
    lm, _ = headless_vit("dinov2_registers")
    loaded = model_state(lm.model)
    images = load_dataset("demo", lm.class_names)
    refs = [reference(lm, images, i) for i in (10, 11)]
    calls: dict[str, Callable[[], Any]] = {}
    for name, analysis in ANALYSES.items():
        indices = [6] if name in FEW_IMAGES else [0, 1]
        calls[f"{name} self"] = lambda name=name, indices=indices: run_arrays(
            lm, images, name, indices)
        if analysis.class_specific:
            for k, ref in enumerate(refs):
                calls[f"{name} reference {k}"] = (
                    lambda name=name, indices=indices, ref=ref: run_arrays(
                        lm, images, name, indices, target=ref))
    expected = {name: call() for name, call in calls.items()}
    for name, call in calls.items():
        assert_same(expected[name], call(), f"sequential repeat of {name}")
    differs = [n for n in calls if n.endswith("reference 0")
               and differences(expected[n], expected[n.replace("reference 0", "self")])]
    assert differs, "a reference image changes no result"
    jobs = [Job(name, call, expected[name], None) for name, call in calls.items()
            for _ in range(2)]
    random.Random(2).shuffle(jobs)
    failures = hammer(jobs)
    assert not failures, "\n".join(failures[:10])
    assert_as_loaded(lm, loaded)


@pytest.mark.parametrize("case", ["beit", "eva02_sub_ln"])
def test_beit_and_eva_calls_at_once_and_calls_that_raise(case):
    """BEiT and EVA (``testing.models.FAMILY_CASES``): their re-runs pass each block the
    model's shared bias or rope, and patch ablation masks removed tokens as keys. The
    family's calls hammered at once give their sequential results; calls that raise
    midway (a hook in a re-run batch, a shortened sequence, which these models refuse)
    leave the model as loaded and the next call right."""
    lm, _ = random_family(case)
    loaded = model_state(lm.model)
    x = random_input(lm, batch=2)
    labels: list[int | None] = [1, None]
    calls = {"importance": lambda: leave_one_out(lm, x, labels),
             "ablation": lambda: explain(lm, x, "ablation", labels),
             "relevance": lambda: explain(lm, x, "relevance", labels),
             "partial pruning": lambda: modes_of_head(lm, x, 1, 2, labels)}
    expected = {name: call() for name, call in calls.items()}
    jobs = [Job(f"{case} {name} #{r}", call, expected[name])
            for r in range(REPEATS) for name, call in calls.items()]
    failures = hammer(jobs, threads=4)
    assert not failures, "\n".join(failures[:5])
    base = states(lm, x)
    is_variant_batch = lambda inputs: inputs.shape[0] != len(x)  # noqa: E731
    for name in ("importance", "ablation", "partial pruning"):
        with pytest.raises(Boom), raising_hook(lm.model.blocks[1].mlp, when=is_variant_batch):
            calls[name]()
        assert_as_loaded(lm, loaded)
        assert_same(expected[name], calls[name](), f"{case} {name} after a raise")
    with pytest.raises(ValueError, match="position-dependent"):
        forward_from(lm, base.inputs[0][:, :-1], 0)
    assert_as_loaded(lm, loaded)


def test_sanity_checks_beside_every_analysis_leave_the_shared_model_as_loaded(shared, ds,
                                                                             tmp_path):
    """The sanity checks randomise copies of the model, never the shared one: run on
    two threads while four others run analyses on the same model, every result equals
    its sequential one and the model is as loaded."""
    from core.dataset.sanity import SANITY, SanityParams
    lm, loaded = shared
    small = Dataset("six demo images", ds.records[:6], pixels=ds.pixels[:6])

    def sanity(k: int) -> Any:  # its own cache each time: the step is computed every call
        return run_step(lm, small, SANITY, SanityParams(sample=0),
                        cache=ArrayCache(tmp_path / f"sanity{k}")).arrays

    others = {name: call for name, call in analysis_calls(lm, ds).items()
              if name.split()[1] in ("strength", "explanations", "importance")}
    expected = {"sanity": sanity(0), **{name: call() for name, call in others.items()}}
    counter = iter(range(1, 100))
    jobs = [Job("sanity", lambda: sanity(next(counter)), expected["sanity"])
            for _ in range(4)]
    jobs += [Job(name, call, expected[name]) for name, call in others.items()
             for _ in range(2)]
    random.Random(1).shuffle(jobs)
    failures = hammer(jobs)
    assert not failures, "\n".join(failures[:10])
    assert_as_loaded(lm, loaded)
