"""Does the spurious score find a known shortcut? (SPEC "Keypoints and spurious
correlations".)

On ``demo-watermark`` (trained with a corner marker that goes with "Bag"; see
``core.cli.train_demo``) and its shipped 1,000-image test sample, where the marker is
independent of the class and ``relies`` says per image whether the prediction changes
when the marker is erased: the model's accuracy on the unmarked images and on the
marked images of other classes, then the AUROC of each explanation method's spurious
score (share of the map outside the garment) against ``relies``, with the random map
and a uniformly random score as baselines; and the time per image of the keypoint
analysis and of the counterfactual; then the attention prompt's fix and keep rates
over alpha (SPEC "Prompting at inference"), for the object and for the keypoint patches
as the inside, with what bounds them (alpha 0 against the same images without the
marker). Last lines are the headlines, the prompt's for the object at the best alpha
(``core.dataset.prompt_rates.best_alpha``).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from core import ANALYSES, DATASET_STEPS, load_dataset, load_model, run, run_step
from core.analyses.prompt import PROMPT_OBJECTS, prompted
from core.dataset.prompt_rates import best_alpha, clean_predictions, in_words
from core.analyses.faithfulness import METHOD_NAMES, patch_pixels
from core.data.inputs import load_batch
from core.data.paths import BUILTIN_DIRS
from core.model import LoadedModel, logits


def hidden_outside(lm: LoadedModel, x: torch.Tensor, outside: torch.Tensor) -> np.ndarray:
    """Top-1 per image with the prompt at alpha 0: the outside (image, patch) patches
    removed as keys in every layer."""
    return np.concatenate([prompted(lm, x[b:b + 256], ~outside[b:b + 256], 0.0)
                           .argmax(-1).cpu().numpy() for b in range(0, len(x), 256)])


def main() -> None:
    lm = load_model("demo-watermark")
    ds = load_dataset("demo-watermark", lm.class_names)
    truth = np.load(BUILTIN_DIRS["demo-watermark"] / "images.npz")
    marked, relies = truth["marked"], truth["relies"]
    everything = list(range(len(ds)))
    labels = np.array([r.label for r in ds.records])
    shortcut = lm.class_names.index("Bag")

    start = time.perf_counter()
    spurious = run(lm, ds, everything, ANALYSES["spurious"]).arrays
    spurious_seconds = time.perf_counter() - start
    start = time.perf_counter()
    run(lm, ds, everything, ANALYSES["keypoints"])
    keypoint_seconds = time.perf_counter() - start

    predicted = np.array([int(spurious[i]["top_before"]) for i in everything])
    x, _, _ = load_batch(lm, ds, everything)
    clean_x, _, _ = load_batch(lm, dataclasses.replace(ds, pixels=ds.clean), everything)
    outside = torch.stack([torch.from_numpy(~spurious[i]["inside"]) for i in everything])
    removed = x * (1 - patch_pixels(lm, outside).to(x.dtype))
    start = time.perf_counter()
    for begin in range(0, len(x), 256):
        logits(lm, removed[begin:begin + 256])
    counterfactual_seconds = time.perf_counter() - start

    others = marked & (labels != shortcut)
    print(f"demo-watermark sample: {len(ds)} images, {int(marked.sum())} marked, "
          f"{int(relies.sum())} whose prediction relies on the marker")
    print(f"marked images of other classes predicted as Bag: "
          f"{100 * float((predicted[others] == shortcut).mean()):.1f}%")
    scores = np.stack([spurious[i]["score"] for i in everything])  # image method
    auroc = {m: roc_auc_score(relies, scores[:, k]) for k, m in enumerate(METHOD_NAMES)}
    random_score = roc_auc_score(relies, np.random.default_rng(0).random(len(relies)))
    changed = np.array([int(spurious[i]["top_after"] != spurious[i]["top_before"])
                        for i in everything])
    print(f"counterfactual (outside removed) changes the prediction of "
          f"{100 * changed[relies].mean():.1f}% of the relying images and "
          f"{100 * changed[~relies].mean():.1f}% of the others")
    print(f"spurious analysis (5 maps + counterfactual): "
          f"{1e3 * spurious_seconds / len(ds):.2f} ms/image on {lm.device}")
    start = time.perf_counter()
    rates = run_step(lm, ds, DATASET_STEPS["prompt_rates"]).arrays
    prompt_seconds = time.perf_counter() - start
    print("attention prompt, fix rate / keep rate per alpha (outside weight):")
    for o, name in enumerate(PROMPT_OBJECTS):
        print(f"  {name:<9} " + "  ".join(
            f"{a:g}: {rates['fix'][o, k]:.3f}/{rates['keep'][o, k]:.3f}"
            for k, a in enumerate(rates["alphas"])))
    print(f"  pixel counterfactual: {float(rates['pixel_fix']):.3f}/"
          f"{float(rates['pixel_keep']):.3f}; prompt analysis and rates "
          f"{1e3 * prompt_seconds / len(ds):.1f} ms/image")
    for o in range(len(PROMPT_OBJECTS)):
        print(in_words(rates, o, best_alpha(rates, o)))
    hidden, hidden_clean = hidden_outside(lm, x, outside), hidden_outside(lm, clean_x, outside)
    unprompted = clean_predictions(lm, ds, everything)
    print(f"alpha 0 with the object hides the marker: the prompted top-1 of a marked image "
          f"and of the same image without it agree for "
          f"{100 * float((hidden == hidden_clean)[marked].mean()):.1f}% of the "
          f"{int(marked.sum())} marked images")
    same = hidden_clean == unprompted
    print(f"what bounds the rates: without the marker, hiding the outside patches (alpha 0) "
          f"leaves the top-1 as it was for {100 * float(same[relies].mean()):.1f}% of the "
          f"relying images and {100 * float(same[~relies].mean()):.1f}% of the others; the "
          f"model needs the background as context, marker or not")
    best = max((m for m in METHOD_NAMES if m != "random"), key=auroc.get)
    print(f"clean_accuracy: {float((predicted[~marked] == labels[~marked]).mean()):.4f}")
    print(f"marked_other_classes_accuracy: {float((predicted[others] == labels[others]).mean()):.4f}")
    for m in METHOD_NAMES:
        print(f"auroc_{m}: {auroc[m]:.4f}")
    print(f"auroc_random_score: {random_score:.4f}")
    print(f"keypoints_ms_per_image: {1e3 * keypoint_seconds / len(ds):.2f}")
    print(f"counterfactual_ms_per_image: {1e3 * counterfactual_seconds / len(ds):.2f}")
    print(f"auroc_best_method: {best}")
    print(f"auroc_best: {auroc[best]:.4f}")
    a = best_alpha(rates, PROMPT_OBJECTS.index("object"))
    print(f"prompt_best_alpha: {rates['alphas'][a]:g}")
    print(f"prompt_fix_rate: {rates['fix'][0, a]:.4f}")
    print(f"prompt_keep_rate: {rates['keep'][0, a]:.4f}")


if __name__ == "__main__":
    main()
