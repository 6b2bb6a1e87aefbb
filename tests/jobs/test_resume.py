"""Jobs that survive a restart: an interrupted job is queued again (at most `requeue` times), and
a training resumes from its last completed epoch in the same MLflow run.

The decision and the checkpoint are tested directly; `train` is interrupted in-process and
resumed; and a real server is killed (SIGKILL, its job's process too) mid-training and started
again on the same data folder.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from pygeoapi.util import JobStatus

from app_package.jobs.interruptions import after_interruption
from app_package.jobs.mlflow_runs import RUN_TAG
from app_package.jobs.store import open_store
from app_package.model.networks import build_model
from app_package.model.spec import ModelSpec
from app_package.training import checkpoint
from app_package.training.batches import ChipBatches
from app_package.training.config import TrainConfig
from app_package.training.loop import LoopState, fit
from app_package.training.train import train
from tests.support.datagen import make_chip
from tests.support.pgserve import PostgresServer
from tests.support.server import Server, job_processes
from tests.support.training import assert_no_run_left_running, make_catalog, quick_config, store

NOW = "2026-01-01T00:00:00Z"


# ------------------------------------------------------------------ the decision
def test_an_interrupted_job_is_queued_again_at_most_requeue_times() -> None:
    what = "the server restarted or its worker stopped while the job was running (pid 7 gone)"
    job: dict[str, object] = {"identifier": "j", "status": "running"}
    first = after_interruption(job, what, requeue=2, now=NOW)
    assert first["status"] == JobStatus.accepted.value and first["attempts"] == 1
    assert "queued again after an interruption" in first["message"] and "pid 7" in first["message"]
    assert first["progress"] == 0 and first["pid"] is None
    second = after_interruption({**job, **first}, what, requeue=2, now=NOW)
    assert second["status"] == JobStatus.accepted.value and second["attempts"] == 2
    third = after_interruption({**job, **second}, what, requeue=2, now=NOW)
    assert third["status"] == JobStatus.failed.value and third["finished"] == NOW
    assert "queued again 2 time(s) before" in third["message"]
    assert third["message"].endswith("submit it again") and "attempts" not in third
    # 0: failed at once, with the message of old
    never = after_interruption(job, what, requeue=0, now=NOW)
    assert never == {
        "status": JobStatus.failed.value,
        "message": f"interrupted: {what}; submit it again",
        "updated": NOW,
        "finished": NOW,
    }
    # an orderly shutdown is no crash: it does not use up a re-queue
    spent = {**job, "attempts": 2}
    shutdown = after_interruption(spent, "the server shut down", 2, NOW, counted=False)
    assert shutdown["status"] == JobStatus.accepted.value and shutdown["attempts"] == 2
    assert after_interruption(job, "shut down", 0, NOW, counted=False)["status"] == "failed"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_job_queued_again_is_not_taken_from_the_worker_that_claimed_it_since(
    backend: str, tmp_path: Path, pg: PostgresServer
) -> None:
    """Two workers sweep the same orphan: the first queues it again and it is claimed anew; the
    second's update, conditional on the dead worker's claim, changes nothing."""
    url = str(tmp_path / "jobs.db") if backend == "sqlite" else pg.create_database("requeue")
    store = open_store(url)
    try:
        store.add_unique({"identifier": "j", "process_id": "p", "status": "accepted",
                          "created": NOW}, None)  # fmt: skip
        (claimed,) = store.claim("dead-worker", 1, {})
        requeue = after_interruption(claimed, "its worker is gone", 1, NOW)
        assert store.update("j", requeue, {"running"}, owner="dead-worker")
        store.claim("live-worker", 1, {})
        assert not store.update("j", requeue, {"running"}, owner="dead-worker")  # the late sweep
        job = store.get("j")
        assert job is not None and job["status"] == "running" and job["owner"] == "live-worker"
        assert store.update("j", {"message": "mine"}, {"running"}, owner="live-worker")
        assert store.update("j", {"message": "any"}, {"running"})  # no owner condition
    finally:
        store.close()


# ------------------------------------------------------------------ the loop and its checkpoint
def _fit_synthetic(
    config: TrainConfig,
    on_state: object = None,
    resume: LoopState | None = None,
) -> tuple[torch.nn.Module, list[float], int]:
    rng = np.random.default_rng(0)
    x = np.stack([make_chip(c, rng, 12) for c in range(10) for _ in range(4)])
    y = np.repeat(np.arange(10), 4).astype(np.int64)
    spec = ModelSpec.for_bands(config.arch, config.resolved_bands())
    torch.manual_seed(config.seed)
    model = build_model(spec)
    cpu = torch.device("cpu")
    result = fit(
        model,
        ChipBatches(x, y, spec, cpu),
        ChipBatches(x[:20], y[:20], spec, cpu),
        config,
        on_state=on_state,  # type: ignore[arg-type]
        resume=resume,
    )
    return result.model, [h.val_loss for h in result.history], result.best_epoch


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("refit", [True, False])
def test_a_fit_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one(
    tmp_path: Path, refit: bool
) -> None:
    config = TrainConfig(
        stac="x", output=tmp_path / "o", epochs=4, batch_size=8, patience=0, refit=refit
    )
    whole, losses, best = _fit_synthetic(config)
    fp = checkpoint.fingerprint(config.params(), "digest")
    saved_epochs: list[int] = []

    def save_then_crash_after_epoch_2(state: LoopState) -> None:
        checkpoint.save_checkpoint(tmp_path, checkpoint.Checkpoint(state, "run-1", fp))
        saved_epochs.append(state.epoch)
        if state.epoch == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        _fit_synthetic(config, on_state=save_then_crash_after_epoch_2)
    assert saved_epochs == [0, 1, 2]  # before the first epoch, then after each one
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["checkpoint.pt"]  # no tmp
    saved = checkpoint.load_checkpoint(tmp_path, fp)
    assert saved is not None and saved.run_id == "run-1" and saved.state.epoch == 2
    assert [s.epoch for s in saved.state.history] == [1, 2]
    resumed, resumed_losses, resumed_best = _fit_synthetic(config, resume=saved.state)
    assert resumed_losses == losses and resumed_best == best
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # a checkpoint of other settings or data, or none, is not resumed
    assert checkpoint.load_checkpoint(tmp_path, checkpoint.fingerprint({}, "digest")) is None
    assert checkpoint.load_checkpoint(tmp_path / "none", fp) is None


def test_a_checkpoint_after_an_early_stop_goes_straight_to_the_refit(tmp_path: Path) -> None:
    config = TrainConfig(stac="x", output=tmp_path / "o", epochs=30, batch_size=8, patience=1)
    whole, losses, best = _fit_synthetic(config)
    assert len(losses) < 30  # it did stop early
    states: list[LoopState] = []
    _fit_synthetic(config, on_state=states.append)
    last = states[-1]
    assert last.stopped_early and last.epoch == len(losses)
    resumed, resumed_losses, resumed_best = _fit_synthetic(config, resume=last)
    assert resumed_losses == losses and resumed_best == best  # no epoch was added
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# ------------------------------------------------------------------ train: one MLflow run
def test_an_interrupted_training_resumes_in_the_same_mlflow_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    catalog = make_catalog(tmp_path / "data", 4)
    config = quick_config(catalog, tmp_path, epochs=4, patience=0)
    work = tmp_path / "work"

    def crash_at_epoch_3(percent: float, message: str) -> None:
        if message.startswith("epoch 3/"):  # epoch 3 is checkpointed and logged: then it dies
            raise Interrupted

    with pytest.raises(Interrupted):
        train(config, crash_at_epoch_3, checkpoints=work)
    assert (work / checkpoint.CHECKPOINT_FILE).is_file()
    messages: list[str] = []
    result = train(config, lambda p, m: messages.append(m), checkpoints=work)
    assert any(m.startswith("resumed after an interruption: 3 of 4 epochs") for m in messages)
    assert not any(m.startswith(("epoch 1/", "epoch 2/", "epoch 3/")) for m in messages)
    uri = store(tmp_path)
    assert_no_run_left_running(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("eurosat")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == result.run_id and run.info.status == "FINISHED"
    for metric in ("train_loss", "val_accuracy", "lr"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1, 2, 3, 4]
    (version,) = client.search_model_versions("name = 'eurosat-classifier'")
    assert version.run_id == run.info.run_id and result.version == "1"
    assert result.epochs_run == 4


# ------------------------------------------------------------------ a real server, killed
def _partial_outputs(data_dir: Path, job: str) -> list[Path]:
    return sorted((data_dir / "outputs").glob(f".{job}.tmp-*"))


def _wait_for_step(srv: Server, job: str) -> int:
    """Wait until the job's process runs and has reported a step; its pid."""
    deadline = time.monotonic() + 60
    while not (srv.status(job)["message"].startswith("step ") and job_processes(job)):
        assert time.monotonic() < deadline, srv.status(job)
        time.sleep(0.05)
    return min(job_processes(job))


def test_a_killed_job_process_is_queued_again_and_starts_from_scratch(tmp_path: Path) -> None:
    """The job's own process dies by a signal (the out-of-memory killer, an operator): the
    server's supervisor queues the job again; it runs again from the start, its half-written
    outputs gone."""
    data_dir = tmp_path / "var"
    srv = Server(data_dir, max_jobs=1).start()
    try:
        job = srv.submit("sleep", {"steps": 25, "seconds": 0.1})
        child = _wait_for_step(srv, job)
        first = _partial_outputs(data_dir, job)
        assert first  # what the first run was writing
        os.kill(child, signal.SIGKILL)
        s = srv.wait(job, ("successful", "failed", "dismissed"), timeout=60)
        assert s["status"] == "successful", s["message"]
        assert s["message"] == "done, resumed after an interruption"
        assert "killed by a signal" in srv.log()
        assert not _partial_outputs(data_dir, job)
        assert srv.get(f"/jobs/{job}/results").json()["type"] == "Catalog"
    finally:
        srv.stop()


def test_a_job_interrupted_again_after_its_requeue_fails(tmp_path: Path) -> None:
    """`requeue: 1`: a server crash queues the job again, a second crash fails it; each time
    what the interrupted run was writing is removed."""
    data_dir = tmp_path / "var"
    srv = Server(data_dir, max_jobs=1)
    job = ""
    try:
        for crash in (1, 2):
            srv.start()
            if crash == 1:
                job = srv.submit("sleep", {"steps": 600, "seconds": 0.1})
            _wait_for_step(srv, job)
            written = _partial_outputs(data_dir, job)
            assert written
            srv.stop(signal.SIGKILL)  # a crash: the server cleans nothing up
            for pid in job_processes(job):
                os.kill(pid, signal.SIGKILL)
        srv.start()
        s = srv.wait(job, ("failed",), timeout=30)
        assert "queued again 1 time(s) before" in s["message"], s["message"]
        assert s["message"].endswith("submit it again")
        assert not _partial_outputs(data_dir, job) and not (data_dir / "outputs" / job).exists()
    finally:
        srv.stop()


EPOCHS = 12


@pytest.mark.slow
def test_a_training_job_survives_a_server_crash(tmp_path: Path) -> None:
    """SIGKILL the server and its job's process mid-training; started again on the same data
    folder, the job is queued again, resumes from its checkpoint and ends with one MLflow run
    holding every epoch once and one registered version."""
    from mlflow.tracking import MlflowClient

    data_dir = tmp_path / "var"
    inputs = {"epochs": EPOCHS, "samples_per_class": 4, "patience": 0, "batch_size": 8}
    srv = Server(data_dir, max_jobs=1).start()
    try:
        job = srv.submit("eurosat-training", inputs)
        ckpt = data_dir / "work" / job / checkpoint.CHECKPOINT_FILE
        deadline = time.monotonic() + 300
        while not (srv.status(job)["message"].startswith("epoch ") and ckpt.is_file()):
            assert srv.status(job)["status"] in ("accepted", "running"), srv.status(job)
            assert time.monotonic() < deadline, srv.status(job)
            time.sleep(0.02)
        srv.stop(signal.SIGKILL)  # a crash: the server cleans nothing up
        for pid in job_processes(job):  # and its job's process with it
            os.kill(pid, signal.SIGKILL)
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        assert 1 <= saved["epoch"] < EPOCHS, "killed too late to test a resume"
        srv.start()  # the same data folder: the same job store and MLflow store
        s = srv.wait(job, ("successful", "failed", "dismissed"), timeout=300)
        assert s["status"] == "successful", s["message"]
        assert s["message"] == "done, resumed after an interruption"
        assert f"{saved['epoch']} of {EPOCHS} epochs done" in srv.log()
        assert not ckpt.parent.exists()  # the checkpoint goes with the finished job
    finally:
        srv.stop()
    uri = f"sqlite:///{data_dir.resolve() / 'mlflow.db'}"
    assert_no_run_left_running(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments, f"tags.`{RUN_TAG}` = '{job}'")
    assert run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert steps == list(range(1, EPOCHS + 1))  # every epoch, once
    losses = [m.value for m in client.get_metric_history(run.info.run_id, "train_loss")]
    assert all(math.isfinite(v) for v in losses)
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert len(versions) == 1
    assert len(client.search_model_versions("name = 'eurosat-classifier'")) == 1


@pytest.mark.slow
def test_a_crash_leaves_no_cwl_runner_behind_and_the_job_runs_again(tmp_path: Path) -> None:
    """A CWL job's runner has its own session: SIGKILL the server and the job's process, and the
    runner lives on. Started again, the server kills it before the job runs again from scratch."""
    from app_package.defaults import CHAMPION_URI, SAMPLE_PRODUCT
    from app_package.jobs.cwl_engine import runner_work
    from app_package.jobs.identity import job_title

    env = {"APP_PACKAGE_ENGINE": "cwltool", "APP_PACKAGE_DEFAULT_MODEL": "true"}
    srv = Server(tmp_path / "var", max_jobs=1, extra_env=env).start()
    work = runner_work(srv.data_dir.resolve() / "outputs" / "job")
    try:
        job = srv.submit(
            "tile-classification", {"product": str(SAMPLE_PRODUCT), "model": CHAMPION_URI}
        )
        work = runner_work(srv.data_dir.resolve() / "outputs" / job)
        deadline = time.monotonic() + 120
        while not (runner := [p for p in job_processes(str(work)) if p not in job_processes(
            job_title(job))]):  # fmt: skip
            assert srv.status(job)["status"] in ("accepted", "running"), srv.status(job)
            assert time.monotonic() < deadline, srv.status(job)
            time.sleep(0.05)
        for pid in runner:  # frozen: it cannot finish by itself while the server is down
            os.kill(pid, signal.SIGSTOP)
        srv.stop(signal.SIGKILL)  # a crash: the server cleans nothing up
        for pid in job_processes(job_title(job)):  # the job's process, not its runner
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        assert set(runner) <= set(job_processes(str(work))), "the runner died with its job"
        srv.start()
        deadline = time.monotonic() + 10
        while left := set(runner) & set(job_processes(str(work))):
            assert time.monotonic() < deadline, f"the orphaned runner was left running: {left}"
            time.sleep(0.05)
        s = srv.wait(job, ("successful", "failed", "dismissed"), timeout=300)
        assert s["status"] == "successful", s["message"]
        assert s["message"] == "done, resumed after an interruption"
    finally:
        srv.stop()
        for pid in job_processes(str(work)):
            os.kill(pid, signal.SIGKILL)
