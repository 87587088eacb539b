"""The backend Label Studio talks to: labeling config -> one control model per control tag ->
predictions for tasks, and background training on all of a project's annotations."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from label_studio_sdk.label_interface import LabelInterface

from control_models.base import AnnotatedTask, ControlModel, ModelContext, Progress
from control_models.timeline_labels import TimelineLabelsModel
from control_models.timeseries_labels import TimeSeriesLabelsModel
from training_gate import train_control
from utils.labelstudio.auth import LabelStudioCredentials
from utils.labelstudio.client import fetch_annotated_tasks
from utils.labelstudio.media import MediaResolver
from utils.labelstudio.outbound import OutboundPolicy
from utils.labelstudio.payloads import annotation_problem, integer_id, task_problem
from utils.labelstudio.predictions import PredictionPusher, tasks_to_repredict
from utils.labelstudio.training_data import labelled_tasks
from utils.service.annotation_store import make_annotation_store
from utils.service.errors import BadRequestError, LabelConfigError, NotFoundError, TaskError
from utils.service.files import read_json, safe_name, write_json_atomic
from utils.service.job_engine import TRAIN, make_job_engine
from utils.service.model_store import ModelStore
from utils.service.prediction_jobs import (
    BY_JOB,
    BY_REQUEST,
    PREDICT,
    Cancelled,
    PredictionJob,
    PredictionJobs,
)
from utils.service.recent_errors import RecentErrors
from utils.service.resources import ResourceCache
from utils.service.settings import Settings
from utils.temporal.evaluation import GateRule
from utils.temporal.training import TrainingStopped, stop_when

logger = logging.getLogger(__name__)

XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
MAX_RETRAIN_YIELDS = 3  # a follow-up full retrain waits for at most this many fine-tunings in a row
TRAINING_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING"}
SWEEP_BATCH = 50  # tasks a re-prediction sweep queues before queueing its next round behind newer jobs


MAX_REPORTED_SKIPS = 20  # skipped annotations named in /health; the count covers the rest
JOB_TARGET = "worker.perform"  # the function RQ workers run for every job (see worker.py)
PREPARE = "prepare"  # the job kind that reads a task's media ahead of a project's first training

CONTROL_MODEL_CLASSES: list[type[ControlModel]] = [TimelineLabelsModel, TimeSeriesLabelsModel]


def project_key(project: Any) -> str:
    """Label Studio names a project "<id>.<created timestamp>" in /setup and /predict, and by id in webhooks."""
    if isinstance(project, dict):
        project = project.get("id")
    if isinstance(project, bool) or project is None:
        raise BadRequestError("'project' is missing")
    text = str(project).split(".", 1)[0].strip()
    if not text.isdigit():
        raise BadRequestError(f"'project' must be a Label Studio project id, got {project!r}")
    return text


def config_hash(label_config: str) -> str:
    return hashlib.sha256(label_config.strip().encode()).hexdigest()[:8]


class TemporalBackend:
    """Everything behind the HTTP routes; one instance per worker process."""

    def __init__(self, settings: Settings, control_classes: list[type[ControlModel]] | None = None):
        self.settings = settings
        self._gate_rule = GateRule(settings.gate_tolerance, settings.gate_min_tasks_to_reject)
        torch.set_num_threads(settings.torch_threads)
        self.store = ModelStore(settings.model_dir, keep_versions=settings.model_versions_kept)
        projects_root = settings.model_dir / "projects"
        self.annotations = make_annotation_store(settings.redis_url, projects_root)
        handlers = {
            TRAIN: lambda pid, _payload: self.train_project(pid),
            PREDICT: lambda pid, payload: self.predictions.handle(pid, payload),
            PREPARE: lambda pid, payload: self.prepare_task(pid, payload),
        }
        self.jobs = make_job_engine(settings, projects_root, handlers, JOB_TARGET)
        self.predictions = PredictionJobs(
            self.jobs, projects_root, self.run_prediction_job, claim_ttl_s=settings.job_timeout_s
        )
        self.recent_errors = RecentErrors(projects_root)
        self.resources = ResourceCache(max_items=32)
        self.control_classes = control_classes if control_classes is not None else CONTROL_MODEL_CLASSES
        self._predictors = ResourceCache(max_items=64)
        self._setup_credentials: dict[str, LabelStudioCredentials] = {}
        self._env_credentials = (
            LabelStudioCredentials(settings.label_studio_url, settings.label_studio_api_key)
            if settings.label_studio_url
            else None
        )
        self.outbound = OutboundPolicy(settings.media_allowlist)
        self._lock = threading.Lock()

    # --- protocol ----------------------------------------------------------------------------
    def setup(self, project: Any, label_config: str, hostname: str = "", access_token: str = "") -> dict:
        pid = project_key(project)
        if hostname and access_token:
            with self._lock:
                known = self._setup_credentials.get(pid)
                if known is None or (known.url, known.api_key) != (hostname.rstrip("/"), access_token):
                    self._setup_credentials[pid] = LabelStudioCredentials(hostname, access_token)
        self._predictors_for(pid, label_config)  # validates the config and warms the models
        self._remember_config(pid, label_config)
        return {"model_version": self.model_version(pid, label_config)}

    def predict(self, tasks: list[dict[str, Any]], project: Any, label_config: str) -> dict:
        """Predictions for the tasks that fit in PREDICT_BUDGET_S; the others are handed to a job that
        pushes their prediction when done, and answered with a cached one or none (an empty list, which
        Label Studio skips, so the pushed prediction is the only one of this version). A task whose pushing
        job is already predicting it is answered with none once the job is done (see `_answer`)."""
        pid = project_key(project)
        models = self._predictors_for(pid, label_config)
        version = self.model_version(pid, label_config)
        self._remember_config(pid, label_config)
        deadline = time.monotonic() + self.settings.predict_budget_s
        results: list[Any] = []
        for task in tasks:
            if not isinstance(task, dict) or not isinstance(task.get("id"), int):
                results.append(self._predict_task(task, models, version))
                continue
            estimate = self._predict_seconds(task, models)
            if estimate > deadline - time.monotonic():
                results.append(self._defer(pid, task, version, estimate))
            else:
                results.append(self._answer(pid, task, models, version, deadline))
        self.recent_errors.add(
            pid,
            [
                {"task": task.get("id") if isinstance(task, dict) else None, "error": item["error"]}
                for task, item in zip(tasks, results, strict=True)
                if "error" in item
            ],
        )
        self._prepare_ahead(pid, models, tasks)
        return {"results": results}

    def _prepare_ahead(self, project_id: str, models: list[ControlModel], tasks: list[Any]) -> None:
        """Queue a job that reads the task's media for the first training (see `ControlModel.prepares_ahead`),
        once per task, when an annotator opens it (Label Studio asks /predict for that one task): /predict
        answers at once, and by the time the annotation arrives its video is encoded. Bulk requests (Retrieve
        Predictions on a whole project) queue nothing: they would put hours of encoding ahead of the training."""
        if len(tasks) != 1 or not isinstance(tasks[0], dict) or not isinstance(tasks[0].get("id"), int):
            return
        if any(model.prepares_ahead for model in models):
            task = tasks[0]
            job_id = f"{PREPARE}-{safe_name(project_id)}-{task['id']}"
            self.jobs.submit(PREPARE, project_id, {"task": task}, job_id=job_id)

    def prepare_task(self, project_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A PREPARE job: read the task's media into the caches of the controls that prepare ahead. A task
        that cannot be read is only logged: its training skips it with the reason."""
        label_config, task = self._stored_config(project_id), payload.get("task")
        if not label_config or not isinstance(task, dict):
            return {"skipped": "no stored label config or no task"}
        prepared = []
        for model in self._predictors_for(project_id, label_config):
            if not model.prepares_ahead:
                continue
            try:
                model.prepare(task)
                prepared.append(model.from_name)
            except TaskError as exc:
                logger.info("task %s, control %s: not prepared: %s", task.get("id"), model.from_name, exc)
        return {"task": task.get("id"), "prepared": prepared}

    def handle_event(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Record what a webhook says and schedule training or predictions; others are acknowledged."""
        if action == "TASKS_CREATED":
            return self._predict_new_tasks(payload)
        if action not in TRAINING_ACTIONS:
            return {"status": "ignored", "action": action}
        pid, label_config = self._webhook_project(payload)
        if not label_config:
            raise BadRequestError(f"project {pid}: no label_config in the webhook and none seen before")
        if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            annotation, task = payload.get("annotation"), payload.get("task")
            if isinstance(task, dict) and "id" not in task and isinstance(annotation, dict):
                task = {**task, "id": annotation.get("task")}  # Label Studio names the task in both
            problem = annotation_problem(annotation) or task_problem(task)
            if problem is not None:
                raise BadRequestError(f"{action}: {problem}")
            self.annotations.upsert(pid, annotation, task)
        elif action == "ANNOTATIONS_DELETED":
            deleted = payload.get("annotations")
            if not isinstance(deleted, list):
                raise BadRequestError("ANNOTATIONS_DELETED needs an 'annotations' list")
            ids = [integer_id(a.get("id")) if isinstance(a, dict) else None for a in deleted]
            if None in ids:
                index = ids.index(None)
                raise BadRequestError(f"ANNOTATIONS_DELETED: 'annotations[{index}].id' must be an integer")
            self.annotations.delete(pid, ids)
        state = self._request_full_retrain(pid) if action == "START_TRAINING" else self.jobs.request(pid)
        return {"status": "queued", "action": action, "project": pid, "requested": state["requested"]}

    def _webhook_project(self, payload: dict[str, Any]) -> tuple[str, str | None]:
        """The webhook's project id and label config: the one it carries (checked, so a broken config is
        reported rather than queued, and remembered), else the one seen before, if any."""
        project = payload.get("project")
        pid = project_key(project)
        label_config = project.get("label_config") if isinstance(project, dict) else None
        if not label_config:
            return pid, self._stored_config(pid)
        self._predictors_for(pid, label_config)
        self._remember_config(pid, label_config)
        return pid, label_config

    def health(self) -> dict[str, Any]:
        return {
            "status": "UP",
            "model_class": type(self).__name__,
            "jobs": self.jobs.overview(),
            "training": self.jobs.status(),
            "recent_errors": self.recent_errors.by_project(),
            "predictions": self.predictions.status(),
        }

    def model_version(self, project_id: str, label_config: str) -> str:
        """Names the serving version of every control and the config, read from MODEL_DIR on each call: it
        changes at once in every worker after a promotion, a pin or an unpin, so Label Studio re-predicts."""
        serving = [m.context.store.current_version() for m in self._predictors_for(project_id, label_config)]
        trained = "+".join(v or "untrained" for v in serving) if any(serving) else "v0"
        return f"{trained}.{config_hash(label_config)}"

    # --- versions ------------------------------------------------------------------------------
    def versions(self, project: Any) -> dict[str, Any]:
        """The kept versions of each control of the project, newest first."""
        pid = project_key(project)
        models = self._known_project_models(pid)
        return {"project": pid, "controls": {m.from_name: m.context.store.versions() for m in models}}

    def pin_version(self, project: Any, control: Any, version: Any) -> dict[str, Any]:
        """Serve `version` of `control` until unpinned (a rollback); `version` None unpins."""
        pid = project_key(project)
        models = {m.from_name: m for m in self._known_project_models(pid)}
        if control not in models:
            raise BadRequestError(f"'control' must be one of {sorted(models)}, got {control!r}")
        store = models[control].context.store
        if version is None:
            serving = store.unpin()
            logger.info("project %s, control %s: unpinned; %s serves", pid, control, serving)
        else:
            if not isinstance(version, str):
                raise BadRequestError(f"'version' must be a string or null, got {type(version).__name__}")
            try:
                store.pin(version)
            except KeyError:
                raise NotFoundError(
                    f"control {control!r} of project {pid} has no version {version!r}"
                ) from None
            logger.info("project %s, control %s: pinned %s", pid, control, version)
        label_config = self._stored_config(pid) or ""
        return {"model_version": self.model_version(pid, label_config), **self.versions(pid)}

    def _known_project_models(self, project_id: str) -> list[ControlModel]:
        label_config = self._stored_config(project_id)
        if not label_config:
            raise NotFoundError(f"project {project_id} is unknown here: no /setup or webhook has named it")
        return self._predictors_for(project_id, label_config)

    # --- control models ------------------------------------------------------------------------
    def build_control_models(self, project_id: str, label_config: str) -> list[ControlModel]:
        """One model per control tag this backend supports; LabelConfigError when there is none."""
        if not isinstance(label_config, str) or not label_config.strip():
            raise BadRequestError("the label config is empty")
        try:  # lxml refuses an `<?xml ... encoding?>` declaration in a str: the text is decoded already
            interface = LabelInterface(XML_DECLARATION.sub("", label_config, count=1))
        except Exception as exc:  # noqa: BLE001 - the SDK raises many XML/parse error types
            raise LabelConfigError(f"the label config cannot be parsed: {exc}") from exc
        supported_tags = {cls.tag for cls in self.control_classes}
        models: list[ControlModel] = []
        for control in interface.controls:
            if control.tag in supported_tags and not control.objects:
                objects = ", ".join(repr(o.name) for o in interface.objects) or "none"
                raise LabelConfigError(
                    f"<{control.tag} name={control.name!r}> has toName={','.join(control.to_name)!r}, but no "
                    f"object tag has that name (object tags: {objects}); set toName to the <Video> or "
                    "<TimeSeries> name"
                )
            for cls in self.control_classes:
                if cls.is_control_matched(control):
                    models.append(cls.create(control, self._context(project_id, control.name)))
                    break
        if not models:
            supported = ", ".join(sorted(supported_tags))
            raise LabelConfigError(f"the label config has no supported control tag (supported: {supported})")
        return models

    def _predictors_for(self, project_id: str, label_config: str) -> list[ControlModel]:
        key = (project_id, label_config.strip() if isinstance(label_config, str) else label_config)
        return self._predictors.get_or_create(
            key, lambda: self.build_control_models(project_id, label_config)
        )

    def _context(self, project_id: str, control_name: str) -> ModelContext:
        return ModelContext(
            store=self.store.control_store(project_id, control_name),
            media=self._media_for(project_id),
            settings=self.settings,
            resources=self.resources,
        )

    def _credentials_for(self, project_id: str) -> LabelStudioCredentials | None:
        """The settings' Label Studio when they are complete (URL and key), else what /setup sent."""
        env = self._env_credentials
        if env is not None and env.usable:
            return env
        with self._lock:
            return self._setup_credentials.get(project_id) or env

    def _known_origins(self, project_id: str) -> tuple[str, ...]:
        """The Label Studio URLs this project's media may come from: the settings' and /setup's, whichever
        of them provides the credentials."""
        with self._lock:
            setup = self._setup_credentials.get(project_id)
        return tuple(c.url for c in (self._env_credentials, setup) if c is not None and c.url)

    def _media_for(self, project_id: str) -> MediaResolver:
        s = self.settings
        return MediaResolver(
            cache_dir=s.cache_dir,
            credentials=lambda: self._credentials_for(project_id),
            local_roots=s.media_roots,
            local_files_document_root=s.local_files_document_root,
            max_bytes=s.media_max_bytes,
            timeout_s=s.media_timeout_s,
            policy=self.outbound,
            trusted_origins=lambda: self._known_origins(project_id),
            cache_max_bytes=s.media_cache_max_bytes,
        )

    def _predict_task(
        self, task: Any, models: list[ControlModel], version: str, progress: Progress | None = None
    ) -> dict[str, Any]:
        """One prediction item; a control that fails says why in `error`, a field Label Studio ignores."""
        regions: list[dict[str, Any]] = []
        scores: list[float] = []
        errors: list[str] = []
        task_id = task.get("id") if isinstance(task, dict) else None
        for model in models:
            try:
                if not isinstance(task, dict):
                    raise TaskError(f"task must be an object, got {type(task).__name__}")
                prediction = model.predict_task(task, progress)
                regions.extend(prediction.regions)
                scores.append(prediction.score)
            except TaskError as exc:
                logger.warning("task %s, control %s: no prediction: %s", task_id, model.from_name, exc)
                errors.append(f"{model.from_name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - one bad task must never fail the batch
                logger.exception("task %s, control %s: prediction failed", task_id, model.from_name)
                errors.append(f"{model.from_name}: prediction failed: {type(exc).__name__}: {exc}")
        # a control that could not predict the task adds no score; with none the task is least certain
        score = sum(scores) / len(scores) if scores else 0.0
        item: dict[str, Any] = {"result": regions, "score": score, "model_version": version}
        if errors:
            item["error"] = "; ".join(errors)
        return item

    # --- training ------------------------------------------------------------------------------
    def _remember_config(self, project_id: str, label_config: str) -> None:
        path = self.store.project_dir(project_id) / "project.json"
        if read_json(path, default={}).get("label_config") != label_config:
            write_json_atomic(path, {"label_config": label_config})

    def _stored_config(self, project_id: str) -> str | None:
        return read_json(self.store.project_dir(project_id) / "project.json", default={}).get("label_config")

    def _training_tasks(self, project_id: str) -> list[dict[str, Any]]:
        if self._env_credentials is not None and self._env_credentials.usable:
            return fetch_annotated_tasks(self._env_credentials, project_id)
        return self.annotations.tasks(project_id)

    def train_project(self, project_id: str) -> dict[str, Any]:
        """Retrain every control of the project on its annotated tasks (runs in a job thread); a candidate
        serves only when its data is sane and the held-out gate accepts it."""
        label_config = self._stored_config(project_id)
        if not label_config:
            raise LabelConfigError(f"project {project_id}: no label config known yet")
        models = self.build_control_models(project_id, label_config)
        requested_at_start = self.jobs.requested(project_id)
        asked = self._full_retrain_request(project_id)
        # taken before the tasks are read: a START_TRAINING from then on asks again, for the next run
        self._full_retrain_marker(project_id).unlink(missing_ok=True)
        tasks, skipped = labelled_tasks(self._training_tasks(project_id))
        data = _annotations_digest(tasks)
        # A full retrain a fine-tuning asked for yields to annotations made since (up to MAX_RETRAIN_YIELDS
        # times in a row): they get their fine-tuning, a fresh model in seconds, first, and the full retrain
        # follows on the data as it is then. Annotations made while it runs stop it for the same purpose.
        yielded = asked.get("yielded", 0) if asked else 0
        yields = bool(asked) and asked.get("after") != data and yielded < MAX_RETRAIN_YIELDS
        warm_start = asked is None or yields
        stoppable = bool(asked) and not yields and yielded < MAX_RETRAIN_YIELDS
        stop = self._annotations_changed(project_id, data, requested_at_start) if stoppable else None
        try:
            with stop_when(stop):
                metrics = self._train_controls(project_id, models, tasks, warm_start)
        except TrainingStopped:
            self._request_full_retrain(project_id, {"after": data, "yielded": yielded})
            logger.info(
                "project %s: full retrain stopped: new annotations are fine-tuned on first", project_id
            )
            return {
                "model_version": self.model_version(project_id, label_config),
                "tasks": len(tasks),
                "metrics": {},
                "stopped": "new annotations arrived: they are fine-tuned on first, then the full retrain runs",
            }
        rejected = {name: m["rejected"] for name, m in metrics.items() if "rejected" in m}
        if any(m.get("serving") for m in metrics.values()):
            self._repredict(project_id, label_config)
        # a fine-tuning the gate refused (relabelled annotations, say) is followed by a training from scratch
        refused = any("gate" in m and "rejected" in m for m in metrics.values())
        if yields or (warm_start and (refused or any(m.get("full_retrain_due") for m in metrics.values()))):
            # the fine-tuned model serves meanwhile
            self._request_full_retrain(project_id, {"after": data, "yielded": yielded + 1 if yields else 0})
        outcome = {
            "model_version": self.model_version(project_id, label_config),
            "tasks": len(tasks),
            "metrics": metrics,
            **({"rejected": rejected} if rejected else {}),
        }
        if skipped:
            outcome["skipped_annotations"] = skipped[:MAX_REPORTED_SKIPS]
            outcome["skipped_count"] = len(skipped)
        return outcome

    def _train_controls(
        self, project_id: str, models: list[ControlModel], tasks: list[Any], warm_start: bool
    ) -> dict[str, Any]:
        """Each control's training metrics; RuntimeError when every control that had data failed."""
        metrics: dict[str, Any] = {}
        failed = 0
        for model in models:
            examples = [
                AnnotatedTask(task_id, data, [r for r in result if r.get("from_name") == model.from_name])
                for task_id, data, result in tasks
            ]
            examples = [example for example in examples if example.regions]
            if not examples:
                metrics[model.from_name] = {"skipped": "no annotated tasks with regions of this control"}
                continue
            # the temporal nets are small: their many small operations run fastest on few threads (one
            # trains a watch model 1.6x as fast as two under gunicorn's OMP_WAIT_POLICY=PASSIVE), and the
            # other cores stay free for predictions; set again each time, since YOLO loading resets it
            torch.set_num_threads(self.settings.train_threads)
            try:
                metrics[model.from_name] = train_control(
                    project_id, model, examples, self._gate_rule, warm_start
                )
            except TrainingStopped:
                raise
            except Exception as exc:  # noqa: BLE001 - other controls still train; the old model stays
                logger.error("project %s, control %s: training failed: %s", project_id, model.from_name, exc)
                metrics[model.from_name] = {"error": f"{type(exc).__name__}: {exc}"}
                failed += 1
            finally:
                torch.set_num_threads(self.settings.torch_threads)  # predictions after it use their own
        if failed and failed == len([m for m in metrics.values() if "skipped" not in m]):
            raise RuntimeError(f"every control failed to train: {metrics}")
        return metrics

    def _annotations_changed(
        self, project_id: str, trained_on: str, requested_at_start: int | None
    ) -> Callable[[], bool]:
        """A stop condition for a follow-up full retrain: the project's annotations differ from those it
        trains on (`trained_on`, their digest). They are read again only when a newer training request came
        (a webhook), and never while a START_TRAINING waits, which wants this retrain to finish."""
        seen = requested_at_start

        def changed() -> bool:
            nonlocal seen
            now = self.jobs.requested(project_id)
            if (
                seen is None
                or now is None
                or now <= seen
                or self._full_retrain_request(project_id) is not None
            ):
                return False
            seen = now
            try:
                tasks, _ = labelled_tasks(self._training_tasks(project_id))
            except Exception as exc:  # noqa: BLE001 - cannot tell: the retrain goes on
                logger.warning("project %s: annotations unreadable mid-training: %s", project_id, exc)
                return False
            return _annotations_digest(tasks) != trained_on

        return changed

    # --- the labeling loop: predictions pushed to Label Studio ---------------------------------
    def _push_credentials(self, project_id: str) -> LabelStudioCredentials | None:
        """The credentials predictions are pushed with, when they are complete."""
        credentials = self._credentials_for(project_id)
        return credentials if credentials is not None and credentials.usable else None

    def _can_push(self, project_id: str) -> bool:
        return self._push_credentials(project_id) is not None

    def _pusher(self, project_id: str) -> PredictionPusher | None:
        credentials = self._push_credentials(project_id)  # read once: /setup may change them meanwhile
        if credentials is None:
            return None
        return PredictionPusher(credentials, self.settings.push_attempts, self.settings.push_backoff_s)

    def _answer(
        self, project_id: str, task: dict[str, Any], models: list[ControlModel], version: str, deadline: float
    ) -> Any:
        """Predict a cheap task now. With pushing on, /predict and the task's job agree on who produces the
        version's prediction: a queued job then leaves it to this answer, and a job that started first is
        waited for (within the budget) and answered with none, as its push is the prediction."""
        if not self._can_push(project_id):
            return self._predict_task(task, models, version)
        job = PredictionJob(project_id, version, task["id"])
        if self.predictions.produce(job, BY_REQUEST) == BY_JOB:
            while self.predictions.is_claimed(job) and time.monotonic() < deadline:
                time.sleep(0.1)
            return []
        item = self._predict_task(task, models, version)
        if "error" in item:
            self.predictions.withdraw(job, BY_REQUEST)
        return item

    def _predict_seconds(self, task: Any, models: list[ControlModel]) -> float:
        if not isinstance(task, dict):
            return 0.0
        return sum(model.predict_seconds(task) for model in models)

    def _defer(self, project_id: str, task: dict[str, Any], version: str, estimate: float) -> Any:
        cached = read_json(self._prediction_path(project_id, int(task["id"])), default=None)
        if isinstance(cached, dict) and cached.get("model_version") == version:
            return cached  # Label Studio stores it; a job would only find it there
        self.predictions.submit([PredictionJob(project_id, version, int(task["id"]), task, "long media")])
        logger.info(
            "task %s: predicting takes about %.0f s, over PREDICT_BUDGET_S; a job pushes it when done",
            task["id"],
            estimate,
        )
        return []

    def _prediction_path(self, project_id: str, task_id: int) -> Path:
        return self.store.project_dir(project_id) / "task-predictions" / f"{task_id}.json"

    def _predict_new_tasks(self, payload: dict[str, Any]) -> dict[str, Any]:
        """TASKS_CREATED: queue a pushed prediction per new task when the project's model can predict."""
        pid, label_config = self._webhook_project(payload)
        tasks = payload.get("tasks")
        if not label_config or not isinstance(tasks, list):
            raise BadRequestError("TASKS_CREATED needs 'tasks' and a project with its 'label_config'")
        models = self._predictors_for(pid, label_config)
        if not any(model.ready for model in models):
            return {"status": "ignored", "action": "TASKS_CREATED", "reason": "no trained model yet"}
        if not self._can_push(pid):
            return {"status": "ignored", "action": "TASKS_CREATED", "reason": "no Label Studio API access"}
        version = self.model_version(pid, label_config)
        jobs = [
            PredictionJob(pid, version, int(task["id"]), task)
            for task in tasks
            if isinstance(task, dict) and isinstance(task.get("id"), int)
        ]
        queued = self.predictions.submit(jobs)
        return {"status": "queued", "action": "TASKS_CREATED", "project": pid, "predictions": queued}

    def _repredict(self, project_id: str, label_config: str) -> None:
        """After a new model version: a sweep job finds the tasks without a prediction of it."""
        if self.settings.repredict_max_tasks and self._can_push(project_id):
            version = self.model_version(project_id, label_config)
            self.predictions.forget_older_versions(project_id, version)
            self.predictions.submit([PredictionJob(project_id, version, reason="new model version")])

    def run_prediction_job(self, job: PredictionJob, progress: Progress) -> str:
        """Predict one task and push it, or (sweep) queue the tasks lacking the job's version. A job of a
        version that is no longer the newest is cancelled: the newer version's jobs cover its tasks."""
        label_config = self._stored_config(job.project_id)
        if not label_config or self.model_version(job.project_id, label_config) != job.version:
            raise Cancelled(job.version)
        pusher = self._pusher(job.project_id)
        if job.task_id is None:
            if pusher is not None:
                self._sweep(job, pusher)
            return "done"
        if job.task is None:
            raise TaskError(f"task {job.task_id}: the job carries no task data")
        if pusher is not None and self.predictions.produce(job, BY_JOB) != BY_JOB:
            logger.info("task %s: /predict answered %s first; nothing to push", job.task_id, job.version)
            return "answered"
        models = self._predictors_for(job.project_id, label_config)
        prediction = self._predict_task(job.task, models, job.version, progress)
        if self.model_version(job.project_id, label_config) != job.version:
            raise Cancelled(job.version)
        write_json_atomic(self._prediction_path(job.project_id, job.task_id), prediction)
        if pusher is None:
            logger.info("task %s predicted; not pushed: no Label Studio API access", job.task_id)
        elif pusher.push(job.task_id, prediction["result"], prediction["score"], job.version):
            self.predictions.book.count(job.project_id, pushed=1)
        return "done"

    def _sweep(self, job: PredictionJob, pusher: PredictionPusher) -> None:
        """Queue the next SWEEP_BATCH tasks lacking the version, then the sweep's next round behind them, so
        that jobs queued meanwhile (new tasks) wait for one batch, not for the whole project."""
        tasks = pusher.project_tasks(job.project_id)
        left = self.settings.repredict_max_tasks - job.sweep_round * SWEEP_BATCH
        missing = [
            task
            for task in tasks_to_repredict(tasks, job.version, len(tasks))
            if not self.predictions.is_handled(PredictionJob(job.project_id, job.version, task.id))
        ]
        chosen = missing[: max(0, min(SWEEP_BATCH, left))]
        jobs = [
            PredictionJob(
                job.project_id, job.version, task.id, {"id": task.id, "data": task.data}, job.reason
            )
            for task in chosen
        ]
        if len(missing) > len(chosen) and left > SWEEP_BATCH:
            jobs.append(replace(job, sweep_round=job.sweep_round + 1))
        queued = self.predictions.submit(jobs)
        logger.info(
            "project %s, %s, round %d: %d of %d tasks lack it; %d queued",
            job.project_id,
            job.version,
            job.sweep_round,
            len(missing),
            len(tasks),
            queued,
        )

    def _request_full_retrain(
        self, project_id: str, follow_up: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Queue a training from scratch of every control: START_TRAINING's, or a fine-tuning's `follow_up`
        (`after`: the digest of the annotations it trained on, newer ones being fine-tuned on first;
        `yielded`: how many times in a row it already waited). A pending START_TRAINING stays unconditional."""
        if follow_up is None or self._full_retrain_request(project_id) != {}:
            write_json_atomic(self._full_retrain_marker(project_id), follow_up or {}, fsync=False)
        return self.jobs.request(project_id)

    def _full_retrain_request(self, project_id: str) -> dict[str, Any] | None:
        """The pending request for a full retrain: None when there is none, {} for START_TRAINING's (an
        unreadable marker counts as one), else a fine-tuning's follow-up."""
        marker = self._full_retrain_marker(project_id)
        if not marker.exists():
            return None
        asked = read_json(marker, default={})
        return asked if isinstance(asked, dict) else {}

    def _full_retrain_marker(self, project_id: str) -> Path:
        """Present between a request for a full retrain and the training that runs it."""
        return self.store.project_dir(project_id) / "full-retrain-requested"


def _annotations_digest(tasks: list[tuple[int, Any, list[dict[str, Any]]]]) -> str:
    """A digest of which tasks are annotated and how: it changes with every annotation made or changed."""
    canonical = json.dumps([[task_id, result] for task_id, _, result in tasks], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
