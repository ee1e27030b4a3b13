"""A booster's own model file next to its pickle, scored without the booster's Python package (issue 18).

``import lightgbm`` imports scikit-learn whenever it is installed (its sklearn wrapper), and scikit-learn
imports SciPy: on the predictor's cold path that was a second of imports for a model that needs none of it.
So :meth:`common.registry.Registry.log_model` also logs a LightGBM classifier's native model text
(:func:`native_artifact`, named by the run tag :data:`NATIVE_MODEL_TAG`), and the predictor loads that text straight into LightGBM's shared library through
its C API (:class:`LightGBMModel`, ctypes), which is what the ``lightgbm`` package itself calls underneath.

Nothing is trusted on that account: a native model serves only after it reproduced the probabilities the
training run recorded to 1e-9 (:func:`common.registry.load_back_problem`), exactly as an unpickled one.
Versions logged before (no native file) and every other classifier load through the pickle as before.

Nothing here imports a model library; the library is found on disk and opened with ctypes.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import sys
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: The run tag naming a run's native model: JSON ``{"format": "lightgbm", "path": <run artifact path>}``.
#: Written with the file, so the predictor knows from the run (one call it makes anyway) whether there is one,
#: without probing for a file (MLflow's artifact proxy answers a missing file with a 500, not a 404).
NATIVE_MODEL_TAG = "retrain.native_model"
LIGHTGBM_ARTIFACT = "serving/lightgbm_model.txt"

_PREDICT_NORMAL, _DTYPE_FLOAT64 = 0, 1  # C_API_PREDICT_NORMAL, C_API_DTYPE_FLOAT64 of LightGBM's c_api.h
_ONE_THREAD = b"num_threads=1"  # a request's rows are too few to share; idle OpenMP workers cost a wake-up


def native_artifact(model: Any) -> tuple[dict[str, str], bytes] | None:
    """(the :data:`NATIVE_MODEL_TAG` value, the file's bytes) of ``model``'s native form, for the models that
    have one the predictor scores (a binary LightGBM classifier on labels 0/1); None otherwise."""
    booster = getattr(model, "_Booster", None)
    if type(model).__module__.split(".", 1)[0] != "lightgbm" or booster is None:
        return None
    if getattr(model, "objective_", None) != "binary" or [int(c) for c in getattr(model, "classes_", ())] != [0, 1]:
        return None
    # The trees predict_proba uses: the best iteration when early stopping recorded one, else all of them.
    return {"format": "lightgbm", "path": LIGHTGBM_ARTIFACT}, booster.model_to_string().encode()


def native_reference(run_tags: Mapping[str, str]) -> tuple[str, str] | None:
    """(format, artifact path) of the native model a run logged, or None (a version logged before, or a
    classifier without a native form: its pickle serves)."""
    text = run_tags.get(NATIVE_MODEL_TAG)
    if not text:
        return None
    reference = json.loads(text)
    return str(reference["format"]), str(reference["path"])


def load_native(format: str, payload: bytes) -> LightGBMModel:
    """The model of a native file of ``format``."""
    if format != "lightgbm":
        raise ValueError(f"unknown native model format {format!r}")
    return LightGBMModel(payload)


_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def lightgbm_library() -> ctypes.CDLL:
    """LightGBM's shared library, found where the installed ``lightgbm`` package keeps it (as its ``libpath``
    does) without importing the package."""
    global _lib
    with _lib_lock:
        if _lib is None:
            spec = importlib.util.find_spec("lightgbm")
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("lightgbm is not installed")
            package = Path(next(iter(spec.submodule_search_locations)))
            name = {"win32": "lib_lightgbm.dll", "darwin": "lib_lightgbm.dylib"}.get(sys.platform, "lib_lightgbm.so")
            found = [p for p in (package.parent / name, package / "bin" / name, package / "lib" / name) if p.is_file()]
            if not found:
                raise ImportError(f"{name} not found next to {package}")
            lib = ctypes.CDLL(str(found[0]))
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            _lib = lib
        return _lib


def _check(lib: ctypes.CDLL, status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"LightGBM {what} failed: {lib.LGBM_GetLastError().decode(errors='replace')}")


class LightGBMModel:
    """A LightGBM model text loaded into the library (``LGBM_BoosterLoadModelFromString``): P(trend) of a
    binary model, as ``Booster.predict`` computes it, on one thread. Freed with this object."""

    def __init__(self, payload: bytes) -> None:
        lib = lightgbm_library()
        text = payload.decode()
        header = dict(line.split("=", 1) for line in text.split("\nTree=", 1)[0].splitlines() if "=" in line)
        if not header.get("objective", "").startswith("binary"):
            raise ValueError(f"not a binary LightGBM model (objective {header.get('objective')!r})")
        handle, iterations, columns = ctypes.c_void_p(), ctypes.c_int(), ctypes.c_int()
        _check(
            lib, lib.LGBM_BoosterLoadModelFromString(payload, ctypes.byref(iterations), ctypes.byref(handle)), "load"
        )
        weakref.finalize(self, lib.LGBM_BoosterFree, handle)
        _check(lib, lib.LGBM_BoosterGetNumFeature(handle, ctypes.byref(columns)), "num_feature")
        self._lib, self._handle, self.n_features_in_ = lib, handle, columns.value
        self.feature_names_in_ = np.array(header.get("feature_names", "").split(), dtype=object)
        self._single_row = LightGBMSingleRow.create(lib, handle, iterations=-1, columns=columns.value, owner=self)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """P(trend) per row of a (n, features) float array."""
        if self._single_row is not None and rows.shape[0] == 1:
            return self._single_row(rows[0])
        values = np.ascontiguousarray(rows, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_features_in_:
            raise ValueError(f"expected rows of {self.n_features_in_} features, got shape {values.shape}")
        out = np.empty(values.shape[0], dtype=np.float64)
        length = ctypes.c_int64()
        status = self._lib.LGBM_BoosterPredictForMat(
            self._handle,
            values.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_int(_DTYPE_FLOAT64),
            ctypes.c_int32(values.shape[0]),
            ctypes.c_int32(values.shape[1]),
            ctypes.c_int(1),  # row major
            ctypes.c_int(_PREDICT_NORMAL),
            ctypes.c_int(0),  # start iteration
            ctypes.c_int(-1),  # every tree in the text (it holds those predict_proba used)
            ctypes.c_char_p(_ONE_THREAD),
            ctypes.byref(length),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        )
        _check(self._lib, status, "prediction")
        if length.value != values.shape[0]:
            raise RuntimeError(f"LightGBM returned {length.value} values for {values.shape[0]} rows")
        return out


class LightGBMSingleRow:
    """LightGBM's C API for one row (``LGBM_BoosterPredictForMatSingleRowFast``): its configuration is
    parsed once here instead of on every call, which is most of a one-row ``Booster.predict``. Thread-safe
    since LightGBM 4.2 (the FastConfig owns its buffers). ``owner`` (the booster's holder) stays referenced
    for the config's lifetime; the config is freed with this object."""

    def __init__(self, owner: Any, lib: ctypes.CDLL, handle: ctypes.c_void_p, columns: int) -> None:
        self._owner, self._lib, self._handle, self._columns = owner, lib, handle, columns
        self._predict = lib.LGBM_BoosterPredictForMatSingleRowFast
        weakref.finalize(self, lib.LGBM_FastConfigFree, handle)

    @classmethod
    def create(
        cls, lib: ctypes.CDLL, booster: ctypes.c_void_p, *, iterations: int, columns: int, owner: Any
    ) -> LightGBMSingleRow | None:
        """None when this LightGBM does not offer the call (the caller then predicts a matrix)."""
        if not hasattr(lib, "LGBM_BoosterPredictForMatSingleRowFastInit"):
            return None
        handle = ctypes.c_void_p()
        status = lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster,
            ctypes.c_int(_PREDICT_NORMAL),
            ctypes.c_int(0),  # start iteration
            ctypes.c_int(iterations),
            ctypes.c_int(_DTYPE_FLOAT64),
            ctypes.c_int32(columns),
            ctypes.c_char_p(_ONE_THREAD),
            ctypes.byref(handle),
        )
        return cls(owner, lib, handle, columns) if status == 0 else None

    def __call__(self, row: np.ndarray) -> np.ndarray:
        values = np.ascontiguousarray(row, dtype=np.float64)
        if values.shape != (self._columns,):
            raise ValueError(f"expected {self._columns} features, got shape {values.shape}")
        length, result = ctypes.c_int64(), ctypes.c_double()
        status = self._predict(
            self._handle, values.ctypes.data_as(ctypes.c_void_p), ctypes.byref(length), ctypes.byref(result)
        )
        if status != 0 or length.value != 1:
            raise RuntimeError(f"LightGBM single-row prediction failed: {self._lib.LGBM_GetLastError().decode()}")
        return np.array([result.value])
