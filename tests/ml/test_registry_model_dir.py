"""ml.registry._save_model writes the MLflow model directory itself (no environment scan): stock MLflow loads
it through its own flavors and pyfunc, and its MLmodel carries what `mlflow.<flavor>.save_model` writes for
the same booster (flavor configuration, loader, signature) with requirements pinned to this environment."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import hybridtrader.ml.registry  # noqa: F401  (telemetry off before mlflow is first imported)
import lightgbm as lgb
import mlflow
import mlflow.lightgbm
import mlflow.pyfunc
import numpy as np
import pandas as pd
import yaml
from hybridtrader.ml.registry import RunRecord, _save_model
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema

RNG = np.random.default_rng(11)
X = RNG.standard_normal((400, 3))
Y = ((X[:, 0] - X[:, 2] + RNG.standard_normal(400)) > 0).astype(np.int32)
NAMES = ["f_a", "f_b", "f_c"]


def record(model: object, model_type: str) -> RunRecord:
    return RunRecord("s", {}, {}, {}, [], {}, model, model_type, NAMES)


def signature() -> ModelSignature:
    return ModelSignature(Schema([ColSpec("double", n) for n in NAMES]), Schema([ColSpec("double")]))


def stock_and_ours(tmp_path: Path, booster: object, model_type: str, flavor: object) -> tuple[Model, Model]:
    reqs = [f"{model_type}=={version(model_type)}"]
    flavor.save_model(booster, str(tmp_path / "stock"), signature=signature(), pip_requirements=reqs)
    _save_model(record(booster, model_type), tmp_path / "ours")
    return Model.load(str(tmp_path / "stock")), Model.load(str(tmp_path / "ours"))


def same_description(stock: Model, ours: Model, model_type: str) -> None:
    # What the flavor's loader reads for a native booster (serialization_format and skops types are for
    # scikit-learn models only), with the values the stock writer gives them.
    assert {"data", "model_class"} <= set(ours.flavors[model_type])
    for key, value in ours.flavors[model_type].items():
        assert stock.flavors[model_type][key] == value, key
    pyfunc = {k: v for k, v in stock.flavors["python_function"].items() if k != "python_version"}
    assert {k: ours.flavors["python_function"][k] for k in pyfunc} == pyfunc
    assert ours.signature == stock.signature


def test_lightgbm_directory_loads_in_stock_mlflow(tmp_path: Path) -> None:
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(X, label=Y, feature_name=NAMES), num_boost_round=12)
    stock, ours = stock_and_ours(tmp_path, booster, "lightgbm", mlflow.lightgbm)
    same_description(stock, ours, "lightgbm")
    path = tmp_path / "ours"
    expected = booster.predict(X)
    np.testing.assert_array_equal(mlflow.lightgbm.load_model(str(path)).predict(X), expected)
    loaded = mlflow.pyfunc.load_model(str(path))
    np.testing.assert_allclose(np.asarray(loaded.predict(pd.DataFrame(X, columns=NAMES))), expected)
    reqs = (path / "requirements.txt").read_text().splitlines()
    assert reqs == [f"mlflow=={mlflow.__version__}", f"lightgbm=={lgb.__version__}"]
    conda = yaml.safe_load((path / "conda.yaml").read_text())
    assert conda["dependencies"][-1] == {"pip": reqs}
    env = yaml.safe_load((path / "python_env.yaml").read_text())
    assert env["dependencies"] == ["-r requirements.txt"]
    assert env["python"] == ours.flavors["python_function"]["python_version"]


def test_xgboost_directory_loads_in_stock_mlflow(tmp_path: Path) -> None:
    import mlflow.xgboost
    import xgboost as xgb  # the optional extra, installed by CI

    params = {"objective": "binary:logistic", "nthread": 1, "seed": 0, "tree_method": "hist"}
    booster = xgb.train(params, xgb.DMatrix(X, label=Y, feature_names=NAMES), num_boost_round=12)
    stock, ours = stock_and_ours(tmp_path, booster, "xgboost", mlflow.xgboost)
    same_description(stock, ours, "xgboost")
    expected = booster.predict(xgb.DMatrix(X, feature_names=NAMES))
    loaded = mlflow.xgboost.load_model(str(tmp_path / "ours"))
    np.testing.assert_array_equal(loaded.predict(xgb.DMatrix(X, feature_names=NAMES)), expected)
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "ours"))
    np.testing.assert_allclose(np.asarray(pyfunc.predict(pd.DataFrame(X, columns=NAMES))), expected)
    assert (tmp_path / "ours" / "requirements.txt").read_text().splitlines() == [
        f"mlflow=={mlflow.__version__}",
        f"xgboost=={xgb.__version__}",
    ]
