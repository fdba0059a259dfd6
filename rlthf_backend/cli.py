"""The ``rlthf-backend`` command line: one subcommand per thing a user does."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from rlthf_backend.settings import get_settings


def _setup_logging() -> None:
    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per SDK request drowns the job's own progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@click.group()
@click.version_option(package_name="rlthf-backend")
def main() -> None:
    """RLTHF for Label Studio: LLM pre-labels, reward-model triage, curated export."""
    _setup_logging()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9090, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=4, show_default=True, type=int, help="threads per worker")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the ML backend (Flask app under gunicorn)."""
    from rlthf_backend.server.gunicorn import run_gunicorn

    run_gunicorn(host=host, port=port, workers=workers, threads=threads)


@main.command()
@click.option("--project", "project_id", required=True, type=int, help="Label Studio project id")
@click.option("--all", "rejudge_all", is_flag=True, help="also tasks that already hold a prediction of this judge")
def prelabel(project_id: int, rejudge_all: bool) -> None:
    """Judge every task of a project that has no prediction yet and store the predictions."""
    from rlthf_backend.labelstudio.prelabel import prelabel_project

    summary = prelabel_project(get_settings(), project_id, rejudge_all=rejudge_all, progress=True)
    click.echo(summary.describe())
    if summary.failed and not summary.written:
        sys.exit(1)


@main.command()
@click.option("--workers", default=1, show_default=True, type=int, help="worker processes")
@click.option("--burst", is_flag=True, help="exit when the queue is empty")
def worker(workers: int, burst: bool) -> None:
    """Run RQ worker(s) for the training queue (REDIS_URL)."""
    from rlthf_backend.jobs.worker import run_worker

    run_worker(get_settings(), workers=workers, burst=burst)


@main.command()
@click.option("--project", "project_id", required=True, type=int, help="Label Studio project id")
@click.option("--round", "force_round", is_flag=True, help="run a curation round even if none is due")
def train(project_id: int, force_round: bool) -> None:
    """Run one training of a project here and now (the job the webhooks queue)."""
    import contextlib
    import json

    from rlthf_backend.jobs.training import run_training

    settings = get_settings()
    guard = contextlib.nullcontext()
    if settings.redis_url:  # do not overlap a worker's training of the same project
        from rlthf_backend.jobs.connection import redis_from_settings
        from rlthf_backend.jobs.queue import project_lock

        guard = project_lock(redis_from_settings(settings), settings, project_id)
    with guard:
        outcome = run_training(settings, project_id, force_round=force_round)
    click.echo(json.dumps(outcome.as_dict(), indent=1, default=str))


@main.command()
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--judge", "judge_key", default=None, help="judge key in judged-pairs files (default: strongest present)")
@click.option("--strategy", "strategies", multiple=True, help="strategy to run (repeatable; default: all)")
@click.option("--budgets", default="2,4,6,8,10,15,20", show_default=True, help="% of the pool sent to people")
@click.option("--seeds", default=5, show_default=True, type=int)
@click.option("--out", "out_dir", default="results/simulate", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--reward-model", "reward_model", default="embedding", show_default=True)
@click.option("--limit", default=None, type=int, help="use only the first N pairs (quick runs)")
@click.option("--rm-option", "rm_options", multiple=True, metavar="KEY=VALUE",
              help="override a field of the curation RM's config (repeatable), e.g. n_ensemble=3")
@click.option("--quiet", is_flag=True, help="no per-replay progress lines")
def simulate(
    data_path: Path,
    judge_key: str | None,
    strategies: tuple[str, ...],
    budgets: str,
    seeds: int,
    out_dir: Path,
    reward_model: str,
    limit: int | None,
    rm_options: tuple[str, ...],
    quiet: bool,
) -> None:
    """Replay a dataset with known human labels and compare curation strategies.

    Files without LLM labels (HH-RLHF chosen/rejected) report the RM capacity ceiling instead.
    """
    import json as _json

    from rlthf_backend.core.simulate.runner import run_simulate_command

    overrides = {}
    for item in rm_options:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--rm-option")
        try:
            overrides[key.strip()] = _json.loads(value)
        except ValueError:
            overrides[key.strip()] = value
    run_simulate_command(
        data_path=data_path,
        judge_key=judge_key,
        strategies=strategies,
        budgets=[float(b) for b in budgets.split(",") if b.strip()],
        seeds=seeds,
        out_dir=out_dir,
        reward_model=reward_model,
        limit=limit,
        echo=click.echo,
        rm_options=overrides,
        quiet=quiet,
    )


if __name__ == "__main__":  # pragma: no cover
    main()
