"""A booster's own model file next to its pickle, scored without the booster's Python package (issue 18).

``import lightgbm`` imports scikit-learn whenever it is installed (its sklearn wrapper), and scikit-learn
imports SciPy: on the predictor's cold path that was a second of imports for a model that needs none of it.
So :meth:`common.registry.mlflow_registry.Registry.log_model` also logs a booster classifier's native model
(:func:`native_artifact`, named by the run tag :data:`NATIVE_MODEL_TAG`), and the predictor loads it straight
into the booster's shared library through its C API with ctypes, which is what the Python package itself
calls underneath: LightGBM's model text (:class:`LightGBMModel`), XGBoost's JSON model (:class:`XGBoostModel`;
``import xgboost`` imports scikit-learn too).

Nothing is trusted on that account: a native model serves only after it reproduced the probabilities the
training run recorded to 1e-9 (:func:`common.registry.mlflow_registry.load_back_problem`), exactly as an unpickled one.
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

#: The run tag naming a run's native model: JSON ``{"format": "lightgbm" | "xgboost", "path": <run artifact
#: path>, ...}`` (XGBoost's also holds the iteration range and missing value ``predict_proba`` uses). Written
#: with the file, so the predictor knows from the run (one call it makes anyway) whether there is one, without
#: probing for a file (MLflow's artifact proxy answers a missing file with a 500, not a 404).
NATIVE_MODEL_TAG = "retrain.native_model"
LIGHTGBM_ARTIFACT = "serving/lightgbm_model.txt"
XGBOOST_ARTIFACT = "serving/xgboost_model.json"


def native_artifact(model: Any) -> tuple[dict[str, Any], bytes] | None:
    """(the :data:`NATIVE_MODEL_TAG` value, the file's bytes) of ``model``'s native form, for the models that
    have one the predictor scores: a binary LightGBM or XGBoost (``binary:logistic``) classifier on labels
    0/1. None otherwise."""
    library = type(model).__module__.split(".", 1)[0]
    if [int(c) for c in getattr(model, "classes_", ())] != [0, 1]:
        return None
    if library == "lightgbm" and getattr(model, "_Booster", None) is not None and model.objective_ == "binary":
        # The trees predict_proba uses: the best iteration when early stopping recorded one, else all of them.
        return {"format": "lightgbm", "path": LIGHTGBM_ARTIFACT}, model._Booster.model_to_string().encode()
    if library == "xgboost" and getattr(model, "objective", None) == "binary:logistic":
        begin, end = model._get_iteration_range(None)  # the trees predict_proba uses (best_iteration if set)
        missing = float(model.missing)
        reference = {
            "format": "xgboost",
            "path": XGBOOST_ARTIFACT,
            "iteration_range": [int(begin), int(end)],
            "missing": None if missing != missing else missing,  # NaN (the default) as null: JSON has no NaN
        }
        return reference, bytes(model.get_booster().save_raw(raw_format="json"))
    return None


def native_reference(run_tags: Mapping[str, str]) -> dict[str, Any] | None:
    """What :data:`NATIVE_MODEL_TAG` says of the native model a run logged (``format``, ``path``, ...), or
    None (a version logged before, or a classifier without a native form: its pickle serves)."""
    text = run_tags.get(NATIVE_MODEL_TAG)
    return dict(json.loads(text)) if text else None


def load_native(reference: Mapping[str, Any], payload: bytes) -> LightGBMModel | XGBoostModel:
    """The model of a native file, as its :func:`native_reference` describes it."""
    if reference["format"] == "lightgbm":
        return LightGBMModel(payload)
    if reference["format"] == "xgboost":
        begin, end = reference["iteration_range"]
        missing = reference.get("missing")
        return XGBoostModel(payload, (int(begin), int(end)), float("nan") if missing is None else float(missing))
    raise ValueError(f"unknown native model format {reference['format']!r}")


def _shared_library(package: str, names: Mapping[str, str], default: str) -> Path:
    """A model library's shared object where its installed Python package keeps it (its package folder, its
    ``lib`` or ``bin`` folder, or beside it, as the packages' own ``libpath`` look), without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    name = names.get(sys.platform, default)
    for candidate in (folder.parent / name, folder / "lib" / name, folder / "bin" / name, folder / name):
        if candidate.is_file():
            return candidate
    raise ImportError(f"{name} not found in {folder}")


_PREDICT_NORMAL, _DTYPE_FLOAT64 = 0, 1  # C_API_PREDICT_NORMAL, C_API_DTYPE_FLOAT64 of LightGBM's c_api.h
_ONE_THREAD = b"num_threads=1"  # a request's rows are too few to share; idle OpenMP workers cost a wake-up
_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def lightgbm_library() -> ctypes.CDLL:
    """LightGBM's shared library, opened once (without importing the ``lightgbm`` package)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            path = _shared_library(
                "lightgbm", {"win32": "lib_lightgbm.dll", "darwin": "lib_lightgbm.dylib"}, "lib_lightgbm.so"
            )
            lib = ctypes.CDLL(str(path))
            lib.LGBM_GetLastError.restype = ctypes.c_char_p
            _lib = lib
        return _lib


_xgb_lib: ctypes.CDLL | None = None


def xgboost_library() -> ctypes.CDLL:
    """XGBoost's shared library, opened once (without importing the ``xgboost`` package)."""
    global _xgb_lib
    with _lib_lock:
        if _xgb_lib is None:
            path = _shared_library("xgboost", {"win32": "xgboost.dll", "darwin": "libxgboost.dylib"}, "libxgboost.so")
            lib = ctypes.CDLL(str(path))
            lib.XGBGetLastError.restype = ctypes.c_char_p
            _xgb_lib = lib
        return _xgb_lib


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


class XGBoostModel:
    """An XGBoost model (its JSON) loaded into the library (``XGBoosterLoadModelFromBuffer``): P(trend) of a
    ``binary:logistic`` model over ``iteration_range``, as ``XGBClassifier.predict_proba`` computes it
    (``XGBoosterPredictFromDense``, what ``Booster.inplace_predict`` calls on an array). Freed with this object."""

    def __init__(self, payload: bytes, iteration_range: tuple[int, int], missing: float) -> None:
        lib = xgboost_library()
        model = json.loads(payload)
        objective = model.get("learner", {}).get("objective", {}).get("name")
        if objective != "binary:logistic":
            raise ValueError(f"not a binary:logistic XGBoost model (objective {objective!r})")
        handle = ctypes.c_void_p()
        if lib.XGBoosterCreate(None, ctypes.c_uint64(0), ctypes.byref(handle)) != 0:
            raise RuntimeError(f"XGBoost booster creation failed: {lib.XGBGetLastError().decode(errors='replace')}")
        weakref.finalize(self, lib.XGBoosterFree, handle)
        status = lib.XGBoosterLoadModelFromBuffer(handle, ctypes.c_char_p(payload), ctypes.c_uint64(len(payload)))
        if status != 0:
            raise RuntimeError(f"XGBoost model load failed: {lib.XGBGetLastError().decode(errors='replace')}")
        lib.XGBoosterSetParam(handle, b"nthread", b"1")
        self._lib, self._handle = lib, handle
        self.n_features_in_ = int(model["learner"]["learner_model_param"]["num_feature"])
        self.feature_names_in_ = np.array(model["learner"].get("feature_names") or [], dtype=object)
        config = {
            "type": 0,  # the transformed value: the probability
            "training": False,
            "iteration_begin": iteration_range[0],
            "iteration_end": iteration_range[1],
            "strict_shape": False,
            "missing": missing,
            "cache_id": 0,
        }
        self._config = json.dumps(config).encode()  # NaN as NaN, which XGBoost's JSON reader takes

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """P(trend) per row of a (n, features) float array."""
        values = np.ascontiguousarray(rows, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_features_in_:
            raise ValueError(f"expected rows of {self.n_features_in_} features, got shape {values.shape}")
        interface = dict(values.__array_interface__)
        interface["data"] = [interface["data"][0], True]
        interface.pop("descr", None)
        shape, dims, result = ctypes.POINTER(ctypes.c_uint64)(), ctypes.c_uint64(), ctypes.POINTER(ctypes.c_float)()
        status = self._lib.XGBoosterPredictFromDense(
            self._handle,
            ctypes.c_char_p(json.dumps(interface).encode()),
            ctypes.c_char_p(self._config),
            None,  # no proxy: no base margin
            ctypes.byref(shape),
            ctypes.byref(dims),
            ctypes.byref(result),
        )
        if status != 0:
            raise RuntimeError(f"XGBoost prediction failed: {self._lib.XGBGetLastError().decode(errors='replace')}")
        count = int(np.prod([shape[i] for i in range(dims.value)]))
        if count != values.shape[0]:
            raise RuntimeError(f"XGBoost returned {count} values for {values.shape[0]} rows")
        # float32, as predict_proba returns it; copied out of the booster's per-thread buffer at once
        return np.ctypeslib.as_array(result, shape=(count,)).astype(np.float64)
