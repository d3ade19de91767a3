"""The noisy linear imputation of ROAD, Remove And Debias (SPEC "ROAD"; Rong et al.,
ICML 2022): the faithfulness removal done without a fill colour. Each removed pixel
takes the weighted mean of its eight neighbours (direct ones weight 1/6, diagonal ones
1/12, as in the paper's imputer), removed neighbours included, so that the removed
pixels of one image solve one sparse linear system; then small Gaussian noise is added
to them (standard deviation ``NOISE`` in model-input units, a fixed seed, so that a
curve is reproducible). ``core.analyses.faithfulness`` removes patches with it."""
from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

NOISE = 0.01
SEED = 0
NEIGHBOURS = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
              (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))


def impute(image: np.ndarray, removed: np.ndarray, noise: float = NOISE,
           seed: int = SEED) -> np.ndarray:
    """`image` (channel, height, width) with its `removed` (height, width) pixels
    replaced by noisy linear imputation. Each removed pixel p satisfies
    ``sum_q w_q v_p - sum_{q removed} w_q v_q = sum_{q kept} w_q v_q`` over its
    neighbours q inside the image, solved for every channel at once."""
    h, w = removed.shape
    ys, xs = np.nonzero(removed)
    if len(ys) == 0:
        return image.copy()
    index = np.full((h, w), -1)
    index[ys, xs] = np.arange(len(ys))
    diagonal = np.zeros(len(ys))
    rhs = np.zeros((len(ys), image.shape[0]))
    rows, cols, values = [], [], []
    for dy, dx, weight in NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        p, qy, qx = np.nonzero(inside)[0], ny[inside], nx[inside]
        diagonal[p] += weight
        unknown = removed[qy, qx]
        rows.append(p[unknown])
        cols.append(index[qy[unknown], qx[unknown]])
        values.append(np.full(int(unknown.sum()), -weight))
        np.add.at(rhs, p[~unknown], weight * image[:, qy[~unknown], qx[~unknown]].T)
    system = scipy.sparse.csc_matrix(
        (np.concatenate(values + [diagonal]),
         (np.concatenate(rows + [np.arange(len(ys))]),
          np.concatenate(cols + [np.arange(len(ys))]))), shape=(len(ys), len(ys)))
    solved = scipy.sparse.linalg.spsolve(system, rhs).reshape(len(ys), -1)
    out = image.astype(np.float64, copy=True)
    jitter = np.random.default_rng(seed).standard_normal(solved.shape) * noise
    out[:, ys, xs] = (solved + jitter).T
    return out.astype(image.dtype)
