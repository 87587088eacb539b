"""The backend Label Studio talks to: labeling config -> one control model per control tag ->
predictions for tasks, and background training on all of a project's annotations."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from label_studio_sdk.label_interface import LabelInterface

from control_models.base import AnnotatedTask, ControlModel, ModelContext, Progress
from control_models.timeline_labels import TimelineLabelsModel
from control_models.timeseries_labels import TimeSeriesLabelsModel
from utils.labelstudio.auth import LabelStudioCredentials
from utils.labelstudio.client import fetch_annotated_tasks
from utils.labelstudio.media import MediaResolver
from utils.labelstudio.outbound import OutboundPolicy
from utils.labelstudio.payloads import annotation_problem, integer_id, task_problem
from utils.labelstudio.predictions import PredictionPusher, tasks_to_repredict
from utils.labelstudio.training_data import labelled_tasks
from utils.service.annotation_store import AnnotationStore
from utils.service.errors import BadRequestError, LabelConfigError, NotFoundError, TaskError
from utils.service.files import read_json, write_json_atomic
from utils.service.job_engine import TRAIN, make_job_engine
from utils.service.model_store import ControlStore, ModelStore
from utils.service.prediction_jobs import PREDICT, Cancelled, PredictionJob, PredictionJobs
from utils.service.recent_errors import RecentErrors
from utils.service.resources import ResourceCache
from utils.service.settings import Settings
from utils.temporal.data_checks import TrainingSetCheck
from utils.temporal.data_checks import task_problem as steps_problem
from utils.temporal.evaluation import (
    Comparison,
    Verdict,
    constant_baseline_f1,
    held_out_task_ids,
    judge,
    macro_f1,
)

logger = logging.getLogger(__name__)

XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
TRAINING_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING"}


MAX_REPORTED_SKIPS = 20  # skipped annotations named in /health; the count covers the rest
JOB_TARGET = "worker.perform"  # the function RQ workers run for every job (see worker.py)

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
        torch.set_num_threads(settings.torch_threads)
        self.store = ModelStore(settings.model_dir, keep_versions=settings.model_versions_kept)
        projects_root = settings.model_dir / "projects"
        self.annotations = AnnotationStore(projects_root)
        handlers = {
            TRAIN: lambda pid, _payload: self.train_project(pid),
            PREDICT: lambda pid, payload: self.predictions.handle(pid, payload),
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
        Label Studio skips, so the pushed prediction is the only one of this version)."""
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
            if self.predictions.is_claimed(PredictionJob(pid, version, task["id"])):
                results.append([])  # its job pushes the prediction; a second one of this version must not be
                continue
            estimate = self._predict_seconds(task, models)
            if estimate > deadline - time.monotonic():
                results.append(self._defer(pid, task, version, estimate))
            else:
                results.append(self._predict_task(task, models, version))
        self.recent_errors.add(
            pid,
            [
                {"task": task.get("id") if isinstance(task, dict) else None, "error": item["error"]}
                for task, item in zip(tasks, results, strict=True)
                if "error" in item
            ],
        )
        return {"results": results}

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
        elif action == "START_TRAINING":
            marker = self._full_retrain_marker(pid)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        state = self.jobs.request(pid)
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
        errors: list[str] = []
        task_id = task.get("id") if isinstance(task, dict) else None
        for model in models:
            try:
                if not isinstance(task, dict):
                    raise TaskError(f"task must be an object, got {type(task).__name__}")
                regions.extend(model.predict_regions(task, progress))
            except TaskError as exc:
                logger.warning("task %s, control %s: no prediction: %s", task_id, model.from_name, exc)
                errors.append(f"{model.from_name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - one bad task must never fail the batch
                logger.exception("task %s, control %s: prediction failed", task_id, model.from_name)
                errors.append(f"{model.from_name}: prediction failed: {type(exc).__name__}: {exc}")
        scores = [r["score"] for r in regions if isinstance(r.get("score"), (int, float))]
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
        marker = self._full_retrain_marker(project_id)
        warm_start = not marker.exists()  # read before training: a START_TRAINING during it asks again
        marker.unlink(missing_ok=True)
        tasks, skipped = labelled_tasks(self._training_tasks(project_id))
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
            try:
                torch.set_num_threads(self.settings.torch_threads)  # YOLO loading resets it process-wide
                metrics[model.from_name] = self._train_control(project_id, model, examples, warm_start)
            except Exception as exc:  # noqa: BLE001 - other controls still train; the old model stays
                logger.error("project %s, control %s: training failed: %s", project_id, model.from_name, exc)
                metrics[model.from_name] = {"error": f"{type(exc).__name__}: {exc}"}
                failed += 1
        if failed and failed == len([m for m in metrics.values() if "skipped" not in m]):
            raise RuntimeError(f"every control failed to train: {metrics}")
        rejected = {name: m["rejected"] for name, m in metrics.items() if "rejected" in m}
        if any(m.get("serving") for m in metrics.values()):
            self._repredict(project_id, label_config)
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

    # --- the labeling loop: predictions pushed to Label Studio ---------------------------------
    def _pusher(self, project_id: str) -> PredictionPusher | None:
        credentials = self._credentials_for(project_id)
        if credentials is None or not credentials.usable:
            return None
        return PredictionPusher(credentials, self.settings.push_attempts, self.settings.push_backoff_s)

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
        if self._pusher(pid) is None:
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
        if self.settings.repredict_max_tasks and self._pusher(project_id) is not None:
            version = self.model_version(project_id, label_config)
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
        tasks = pusher.project_tasks(job.project_id)
        chosen = tasks_to_repredict(tasks, job.version, self.settings.repredict_max_tasks)
        jobs = [
            PredictionJob(
                job.project_id, job.version, task.id, {"id": task.id, "data": task.data}, job.reason
            )
            for task in chosen
        ]
        queued = self.predictions.submit(jobs)
        logger.info(
            "project %s: %d of %d tasks chosen for %s; %d queued",
            job.project_id,
            len(chosen),
            len(tasks),
            job.version,
            queued,
        )

    def _full_retrain_marker(self, project_id: str) -> Path:
        """Present between a START_TRAINING and the training it asked for, which then starts from scratch."""
        return self.store.project_dir(project_id) / "full-retrain-requested"

    def _train_control(
        self, project_id: str, model: ControlModel, examples: list[AnnotatedTask], warm_start: bool
    ) -> dict:
        """Check the data, fit a candidate on the tasks not held out (fine-tuning the serving model when
        `warm_start` and it fits), gate it, and promote it if accepted."""
        checked = _check_training_data(model, examples)  # the tasks' inputs are not kept beyond it
        if checked.problem:
            logger.warning("project %s, control %s: %s", project_id, model.from_name, checked.problem)
            return {"rejected": checked.problem, "unusable_tasks": checked.unusable}
        held_out = held_out_task_ids(project_id, checked.targets_of)
        store = model.context.store
        staging = store.staging()
        result = _with_store(model, staging).fit(
            [e for e in checked.examples if e.task_id not in held_out], warm_start=warm_start
        )
        candidate = staging.saved_version
        if candidate is None:
            return result  # nothing to learn ({"skipped": ...})
        # models without `task_steps` have nothing to score on: their candidates serve ungated
        verdict = self._gate(model, candidate, checked, held_out) if checked.targets_of else None
        accepted = verdict is None or verdict.accepted
        training = {k: v for k, v in result.items() if k != "version"}
        store.record(
            candidate,
            {
                "accepted": accepted,
                "gate": verdict.as_dict() if verdict else None,
                "training": {**training, "unusable_tasks": checked.unusable},
                "trained_on": sorted(e.task_id for e in checked.examples if e.task_id not in held_out),
            },
        )
        serves = accepted and store.promote(candidate)
        logger.info(
            "project %s, control %s: candidate %s %s",
            project_id,
            model.from_name,
            candidate,
            verdict.reason if verdict else "serves (no gate for this control)",
        )
        summary = {**training, "version": candidate, "serving": serves, "unusable_tasks": checked.unusable}
        if verdict is not None:
            summary["gate"] = verdict.as_dict()
            if not verdict.accepted:
                summary["rejected"] = verdict.reason
        return summary

    def _gate(self, model: ControlModel, candidate: str, checked: CheckedData, held_out: set[int]) -> Verdict:
        """Score the candidate on the held-out tasks (with too few tasks to hold any out, on the training
        tasks) against the constant baseline, and against the serving version on those of the tasks that the
        serving version did not train on, so that neither is scored on what it learnt."""
        scored = [e for e in checked.examples if e.task_id in held_out] or checked.examples
        store = model.context.store
        serving = store.current_version()
        candidate_model = _with_store(model, store.at(candidate))
        serving_model = _with_store(model, store.at(serving)) if serving else None
        truth, by_candidate, by_serving = {}, {}, {}
        for example in scored:
            task = {"id": example.task_id, "data": example.data}
            targets_of = checked.targets_of[example.task_id]
            truth[example.task_id] = targets_of(example.regions)
            by_candidate[example.task_id] = targets_of(_predicted_regions(candidate_model, task))
            if serving_model is not None:
                by_serving[example.task_id] = targets_of(_predicted_regions(serving_model, task))

        def pooled_f1(predicted: dict[int, np.ndarray], task_ids: list[int]) -> float | None:
            if not task_ids:
                return None
            return macro_f1(
                np.concatenate([truth[i] for i in task_ids]), np.concatenate([predicted[i] for i in task_ids])
            )

        comparison = None
        if serving is not None:
            seen = set(store.read_record(serving).get("trained_on") or []) if held_out else set()
            compared = [i for i in truth if i not in seen]
            comparison = Comparison(
                compared, pooled_f1(by_candidate, compared), pooled_f1(by_serving, compared)
            )
        return judge(
            candidate_f1=pooled_f1(by_candidate, list(truth)),
            baseline_f1=constant_baseline_f1(np.concatenate(list(truth.values()))),
            tolerance=self.settings.gate_tolerance,
            held_out_tasks=sorted(held_out),
            versus_serving=comparison,
        )


@dataclass(frozen=True)
class CheckedData:
    """A control's training tasks after the data checks: those usable, their steps, and why others are not."""

    examples: list[AnnotatedTask]
    targets_of: dict[int, Callable[[list[dict[str, Any]]], np.ndarray]]  # empty for models without steps
    unusable: list[str]
    problem: str | None = None


def _check_training_data(model: ControlModel, examples: list[AnnotatedTask]) -> CheckedData:
    """Leave out tasks that cannot be learnt from (with the reason), and refuse a set that cannot give a sane
    model (too little data, non-finite statistics, a label with no samples)."""
    totals = TrainingSetCheck(model.labels)
    targets_of: dict[int, Callable[[list[dict[str, Any]]], np.ndarray]] = {}
    unusable: list[str] = []
    for example in examples:
        try:
            steps = model.task_steps({"id": example.task_id, "data": example.data})
        except Exception as exc:  # noqa: BLE001 - one unreadable task never breaks the training
            unusable.append(str(exc) if isinstance(exc, TaskError) else f"task {example.task_id}: {exc!r}")
            continue
        if steps is None:
            return CheckedData(examples, {}, [])
        target = steps.targets_of(example.regions)
        problem = steps_problem(steps.inputs, target)
        if problem:
            unusable.append(f"task {example.task_id}: {problem}")
            continue
        totals.add(steps.inputs, target)
        targets_of[example.task_id] = steps.targets_of
    for reason in unusable:
        logger.warning("%s: training leaves out %s", model.from_name, reason)
    usable = [e for e in examples if e.task_id in targets_of]
    if not usable:
        return CheckedData(
            [], {}, unusable, f"training data refused: no usable task ({'; '.join(unusable[:3])})"
        )
    annotated = {
        label
        for e in usable
        for r in e.regions
        for label in (r.get("value") or {}).get(model.tag.lower()) or []
    }
    problem = totals.problem(annotated)
    if problem:
        return CheckedData(usable, targets_of, unusable, f"training data refused: {problem}")
    return CheckedData(usable, targets_of, unusable)


def _with_store(model: ControlModel, store: ControlStore) -> ControlModel:
    """The same control model on another view of its store (a staging store, or one fixed version)."""
    return type(model).create(model.control, replace(model.context, store=store))


def _predicted_regions(model: ControlModel, task: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's regions for a scored task; a prediction that fails counts as predicting nothing."""
    try:
        return model.predict_regions(task)
    except Exception as exc:  # noqa: BLE001 - a model that cannot predict a task scores nothing on it
        logger.warning("task %s: prediction for the gate failed: %s", task.get("id"), exc)
        return []
