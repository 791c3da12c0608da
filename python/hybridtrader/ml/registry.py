"""MLflow registry: one run per training, one registered model per strategy, aliases for promotion.

Embedded default: a SQLite tracking/registry store `<data_dir>/mlflow/mlflow.db` with artifacts under
`<data_dir>/mlflow/artifacts`; `ml_training.model_registry.tracking_uri` points anywhere else. Only an
`MlflowClient` bound to that URI is used (no process-global MLflow state is changed), so stock MLflow
reads everything back: `mlflow.pyfunc.load_model("models:/<strategy>@champion")`.

Alias `champion` moves to a version only when it passed every gate; otherwise the new version becomes
`challenger`. MLflow telemetry is switched off unless the environment says otherwise (no network).

The embedded store runs in SQLite's write-ahead-log mode (set once, kept in the file): a training's
registration is two dozen small MLflow transactions, and a commit then syncs one log file instead of a
rollback journal and the database (about a third of the time per commit); a reader (a live node loading
the champion) no longer waits for a writer. Stock MLflow and sqlite3 read such a file as any other.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import yaml

from hybridtrader.config import Config
from hybridtrader.errors import StateError

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Before mlflow is imported anywhere in this process: no telemetry, nothing reaches the internet.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


def tracking_uri(config: Config) -> str:
    uri = config.ml_training.model_registry.tracking_uri
    if uri:
        return uri
    db = (config.data_dir / "mlflow" / "mlflow.db").resolve()
    return f"sqlite:///{db}"


def artifact_root(config: Config) -> str:
    loc = config.ml_training.model_registry.artifact_location
    return loc or (config.data_dir / "mlflow" / "artifacts").resolve().as_uri()


def write_ahead_log(db: Path) -> None:
    """Put the SQLite database `db` (created when missing) in write-ahead-log mode; the mode is kept in
    the file, so this changes a file once. Another process holding the file (an MLflow UI) leaves the mode
    as it is; a file that is not a database is a StateError naming it."""
    try:
        con = sqlite3.connect(db, timeout=1.0)
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode=WAL")
        finally:
            con.close()
    except sqlite3.OperationalError as e:  # locked by another process: the store works in its mode
        log.debug("model registry %s: journal mode unchanged (%s)", db, e)
    except sqlite3.DatabaseError as e:
        raise StateError(f"model registry: {db} is not a readable SQLite database ({e})") from None


@cache
def code_version() -> str:
    """Package version plus the git commit of the source tree when it is a checkout. Read once per process:
    the code a process runs is the code it loaded, whatever is committed later (and each read is two git
    subprocesses)."""
    from hybridtrader._core import __version__

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return f"{__version__}+g{out.stdout.strip()}{'.dirty' if dirty.stdout.strip() else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


@dataclass(frozen=True)
class RunRecord:
    strategy: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    fold_metrics: list[dict[str, float]]  # one dict per fold, logged with step = fold
    artifacts: dict[str, bytes]  # file name -> content (gate table, trials, plots)
    model: Any  # lightgbm.Booster or xgboost.Booster; None for a rule-only candidate
    model_type: str
    feature_names: list[str]
    registered_name: str = ""  # the registered model; "" for the strategy's own name


@dataclass(frozen=True)
class Registered:
    run_id: str
    model_id: str  # "<strategy>/<version>"
    version: str
    alias: str


class ModelRegistry:
    def __init__(self, config: Config) -> None:
        from mlflow import MlflowClient

        logging.getLogger("alembic").setLevel(logging.WARNING)
        self.config = config
        self.uri = tracking_uri(config)
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if not config.ml_training.model_registry.tracking_uri:
            write_ahead_log(Path(self.uri.removeprefix("sqlite:///")))
        self.client: MlflowClient = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self._experiments: dict[str, str] = {}  # strategy -> experiment id (an experiment is never renamed)

    def experiment_id(self, strategy: str) -> str:
        if strategy in self._experiments:
            return self._experiments[strategy]
        name = f"{self.config.ml_training.model_registry.experiment_prefix}/{strategy}"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            exp_id = str(exp.experiment_id)
        else:
            root = artifact_root(self.config)
            exp_id = str(self.client.create_experiment(name, artifact_location=f"{root}/{strategy}"))
        self._experiments[strategy] = exp_id
        return exp_id

    def warm_up(self) -> None:
        """Do once what a process's first registration otherwise does on its way (MLflow's pyfunc model
        modules imported, the model registry's store opened: about 0.1 s), so that a pipeline can have it
        done in its registration thread while the training starts instead of while a registration
        competes with the next training for the interpreter."""
        import mlflow.pyfunc  # noqa: F401  (what `_save_model` imports)

        self.client.search_registered_models(max_results=1)

    def prior_trials(self, strategy: str, data_hash: str, *tags: str) -> dict[str, list[float]]:
        """Per-period Sharpe ratios of every earlier trial of this strategy on the same bars (whatever its
        settings: trying other features or parameters on the same data is a trial too), read from each of
        the runs' `tags` (`trial_sharpes`: the model's trials; `rule_sharpes`: the unfiltered rule's), in
        one search. They count in the deflated Sharpe ratio's number of trials and variance. Runs on other
        data are other experiments."""
        exp = self.experiment_id(strategy)
        out: dict[str, list[float]] = {tag: [] for tag in tags}
        runs = self.client.search_runs(
            [exp], filter_string=f"tags.data_hash = '{data_hash}'", max_results=10_000
        )
        for run in runs:
            for tag, values in out.items():
                if tag in run.data.tags:
                    values.extend(float(x) for x in orjson.loads(run.data.tags[tag]))
        return out

    def log(self, record: RunRecord, promoted: bool) -> Registered:
        from mlflow.entities import Metric, Param, RunTag

        exp = self.experiment_id(record.strategy)
        run = self.client.create_run(exp, run_name=f"{record.strategy}-{time.strftime('%Y%m%dT%H%M%S')}")
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            metrics = [Metric(k, float(v), now, 0) for k, v in record.metrics.items()]
            for step, fold in enumerate(record.fold_metrics):
                metrics += [Metric(f"fold_{k}", float(v), now, step) for k, v in fold.items()]
            self.client.log_batch(
                run_id,
                metrics=metrics,
                params=[Param(k, v) for k, v in record.params.items()],
                tags=[RunTag(k, v) for k, v in record.tags.items()],
            )
            with tempfile.TemporaryDirectory() as tmp:  # the run's artifact tree, logged in one call
                for name, content in record.artifacts.items():
                    (Path(tmp) / name).write_bytes(content)
                if record.model is not None:
                    _save_model(record, Path(tmp) / "model")
                self.client.log_artifacts(run_id, tmp)
            self.client.set_terminated(run_id, "FINISHED")
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        # A rule-only candidate has no model: its version points at the run's artifacts (the rule's spec).
        source = f"{run.info.artifact_uri}/model" if record.model is not None else run.info.artifact_uri
        name = record.registered_name or record.strategy
        return self._register(name, record.tags, run_id, source, promoted)

    def _register(
        self, name: str, tags: dict[str, str], run_id: str, source: str, promoted: bool
    ) -> Registered:
        from mlflow.exceptions import MlflowException

        version_tags = {"promoted": str(promoted).lower(), "candidate": tags.get("candidate", "model")}
        try:
            mv = self.client.create_model_version(name, source, run_id=run_id, tags=version_tags)
        except MlflowException as e:
            # The name's first version (or its registered model was deleted): create the registered model,
            # then the version. Asking whether it exists first cost every later version a round trip.
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(name, description=f"hybridtrader strategy {tags['strategy']}")
            mv = self.client.create_model_version(name, source, run_id=run_id, tags=version_tags)
        alias = CHAMPION if promoted else CHALLENGER
        self.client.set_registered_model_alias(name, alias, mv.version)
        return Registered(run_id, f"{name}/{mv.version}", str(mv.version), alias)

    def alias_version(self, strategy: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(strategy, alias).version)
        except MlflowException:
            return None

    def load_version(self, strategy: str, version: str) -> tuple[Any, float]:
        """The booster of `strategy` version `version` and the probability threshold its run chose."""
        mv = self.client.get_model_version(strategy, version)
        threshold = float(self.client.get_run(mv.run_id).data.params["threshold"])
        if self.config.strategies[strategy].ml_model.model_type == "lightgbm":
            import mlflow.lightgbm

            return mlflow.lightgbm.load_model(mv.source), threshold
        import mlflow.xgboost

        return mlflow.xgboost.load_model(mv.source), threshold

    def champion_age_days(self, strategy: str) -> float | None:
        """Days since the current champion version was registered, None without a champion."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(strategy, CHAMPION)
        except MlflowException:
            return None
        return (time.time() * 1000 - mv.creation_timestamp) / 86_400_000


def _save_model(record: RunRecord, path: Path) -> None:
    """An MLflow model directory of the booster in its library's native file, as the stock flavors
    (`mlflow.lightgbm` / `mlflow.xgboost`) write and load it: MLmodel (flavor + python_function, feature
    signature), the model file, requirements.txt, conda.yaml and python_env.yaml pinned to the versions
    running here.

    Written with MLflow's public model API rather than `mlflow.<flavor>.save_model`: that call checks
    the pinned requirements against the environment by scanning every installed distribution (about a
    second per process), a check that cannot fail for pins read from this very environment."""
    import platform
    from importlib.metadata import version

    import mlflow
    from mlflow import pyfunc
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema

    path.mkdir(parents=True)
    booster = record.model
    lib = record.model_type  # "lightgbm" or "xgboost": the flavor and the package share the name
    lib_version = version(lib)
    data = "model.lgb" if lib == "lightgbm" else "model.ubj"  # the stock flavors' file names
    booster.save_model(str(path / data))
    model = Model(
        signature=ModelSignature(
            inputs=Schema([ColSpec("double", n) for n in record.feature_names]),
            outputs=Schema([ColSpec("double")]),
        )
    )
    pyfunc.add_to_model(
        model, loader_module=f"mlflow.{lib}", data=data, conda_env="conda.yaml", python_env="python_env.yaml"
    )
    cls = type(booster)
    flavor: dict[str, Any] = {"data": data, "model_class": f"{cls.__module__}.{cls.__qualname__}"}
    if lib == "lightgbm":
        flavor["lgb_version"] = lib_version
    else:
        flavor |= {"xgb_version": lib_version, "model_format": "ubj"}
    model.add_flavor(lib, **flavor)
    model.model_size_bytes = (path / data).stat().st_size
    model.save(str(path / "MLmodel"))
    reqs = [f"mlflow=={mlflow.__version__}", f"{lib}=={lib_version}"]
    py = platform.python_version()
    (path / "requirements.txt").write_text("\n".join(reqs))
    conda = {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={py}", "pip", {"pip": reqs}],
    }
    (path / "conda.yaml").write_text(yaml.safe_dump(conda))
    python_env = {
        "python": py,
        "build_dependencies": ["pip", "setuptools", "wheel"],
        "dependencies": ["-r requirements.txt"],
    }
    (path / "python_env.yaml").write_text(yaml.safe_dump(python_env, sort_keys=False))
