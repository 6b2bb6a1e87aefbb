"""MLflow runs that a job left open: every run a job starts carries its id as a tag, so a worker
can end it (FAILED) once the job failed or was dismissed and the MLflow server answers again."""

from __future__ import annotations

RUN_TAG = "app_package.job_id"  # tag on every MLflow run a job starts (MLFLOW_RUN_CONTEXT)


def end_open_runs(uri: str, job_id: str) -> int:
    """End as FAILED the RUNNING MLflow runs of a job (tagged with its id); how many."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return 0
    runs = client.search_runs(
        experiments, f"tags.`{RUN_TAG}` = '{job_id}' and attributes.status = 'RUNNING'"
    )
    for run in runs:
        client.set_terminated(run.info.run_id, "FAILED")
    return len(runs)
