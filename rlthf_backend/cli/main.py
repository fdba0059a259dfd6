"""The ``rlthf-backend`` command line: one subcommand per thing a user does."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from rlthf_backend.cli.errors import OneLineErrors
from rlthf_backend.labelstudio.project_id import MAX_PROJECT_ID
from rlthf_backend.app.settings import ENGINE_SETTINGS, Settings, get_settings, load_settings

#: ``--project``: a Label Studio project id, refused by click (one line, exit 2) like any bad option.
PROJECT_ID = click.IntRange(1, MAX_PROJECT_ID)


def _setup_logging() -> None:
    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # One line per SDK request drowns the job's own progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@click.group(cls=OneLineErrors)
@click.version_option(package_name="rlthf-backend")
def main() -> None:
    """RLTHF for Label Studio: LLM pre-labels, reward-model triage, curated export."""
    _setup_logging()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9090, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="gunicorn worker processes")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(min=1), help="threads per worker")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the ML backend (Flask app under gunicorn)."""
    from rlthf_backend.server.gunicorn import run_gunicorn
    from rlthf_backend.server.preflight import check_can_serve

    check_can_serve(get_settings())  # a configuration that cannot work stops here, in one line
    if not get_settings().redis_url and workers > 1:
        logging.getLogger(__name__).warning(
            "REDIS_URL is not set: embedded mode keeps the job queue in one process, so one worker is used "
            "(asked for %d); set REDIS_URL and run `rlthf-backend worker` to scale out", workers)
        workers = 1
    run_gunicorn(host=host, port=port, workers=workers, threads=threads)


@main.command()
@click.option("--project", "project_id", required=True, type=PROJECT_ID, help="Label Studio project id")
@click.option("--all", "rejudge_all", is_flag=True, help="also tasks that already hold a prediction of this judge")
def prelabel(project_id: int, rejudge_all: bool) -> None:
    """Judge every task of a project that has no prediction yet and store the predictions."""
    from rlthf_backend.app.prelabel import prelabel_project

    summary = prelabel_project(get_settings(), project_id, rejudge_all=rejudge_all, progress=True)
    click.echo(summary.describe())
    if summary.interrupted:
        sys.exit(130)  # Ctrl-C: what was judged is stored and written; a rerun does the rest
    if summary.failed and not summary.written:
        sys.exit(1)


@main.command()
@click.option("--workers", default=1, show_default=True, type=int, help="worker processes")
@click.option("--burst", is_flag=True, help="exit when the queue is empty")
def worker(workers: int, burst: bool) -> None:
    """Run RQ worker(s) for the training queue (REDIS_URL)."""
    from rlthf_backend.app.jobs import jobs_config
    from rlthf_backend.jobs.worker import run_worker

    run_worker(jobs_config(get_settings()), workers=workers, burst=burst)


@main.command()
@click.option("--project", "project_id", required=True, type=PROJECT_ID, help="Label Studio project id")
@click.option("--round", "force_round", is_flag=True, help="run a curation round even if none is due")
@click.option("--full", "full_sync", is_flag=True,
              help="re-read the whole project from Label Studio instead of what changed since the last training")
def train(project_id: int, force_round: bool, full_sync: bool) -> None:
    """Run one training of a project here and now (the job the webhooks queue)."""
    import contextlib
    import json

    from rlthf_backend.app.training.pipeline import run_training

    settings = get_settings()
    guard = contextlib.nullcontext()
    if settings.redis_url:  # do not overlap a worker's training of the same project
        from rlthf_backend.app.jobs import jobs_config
        from rlthf_backend.jobs.connection import redis_from_config
        from rlthf_backend.jobs.queue import project_lock

        config = jobs_config(settings)
        guard = project_lock(redis_from_config(config), config, project_id)
    with guard:
        outcome = run_training(settings, project_id, force_round=force_round, full_sync=full_sync)
    click.echo(json.dumps(outcome.as_dict(), indent=1, default=str))


@main.command()
@click.option("--ls-port", default=8080, show_default=True, type=int, help="Label Studio's port")
@click.option("--port", default=9090, show_default=True, type=int, help="the backend's port")
@click.option("--judge", default="precomputed", show_default=True, type=click.Choice(["precomputed", "smollm2"]),
              help="precomputed: the GPT-4 / gpt-3.5-turbo verdicts published with the pairs; "
              "smollm2: a small local model judging live (offline, weak)")
def demo(ls_port: int, port: int, judge: str) -> None:
    """Label Studio + this backend + a project of real pairs, pre-labelled, on this machine."""
    from rlthf_backend.demo.run import DemoError, run_demo

    try:
        run_demo(get_settings(), ls_port=ls_port, backend_port=port, judge=judge)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc


def _settings_options(names: tuple[str, ...]):
    """One ``--name`` option per settings field in ``names``, documented as in the settings (a
    value given here overrides the environment and ``.env``; JSON values parse as JSON)."""

    def decorate(command):
        for name in reversed(names):
            spec = Settings.model_fields[name]
            command = click.option(f"--{name.replace('_', '-')}", name, default=None, metavar="VALUE",
                                   help=f"{spec.description} [env RLTHF_{name.upper()}]")(command)
        return command

    return decorate


def _dashed(loc: tuple) -> str:
    return "-".join(str(part) for part in loc).replace("_", "-")


def _settings_with(overrides: dict[str, str | None]) -> Settings:
    """The settings of this process (environment, ``.env``) with the given flags applied."""
    import json

    values = {}
    for name, raw in overrides.items():
        if raw is None:
            continue
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    try:
        return load_settings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"--{_dashed(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(problems) from None


@main.command()
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--judges", default=None, metavar="PATTERN,...",
              help="judged-pairs files: the judges whose verdicts to use (keys or shell patterns, e.g. "
              "'GPT-4/Vanilla_NoRules,ChatGPT/*'); the first is the primary, two or more make a judge panel "
              "(default: the strongest judge present per pair)")
@click.option("--budgets", default="2,4,6,8,10,15,20", show_default=True, help="% of the pool sent to people")
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--out", "out_dir", default="results/simulate", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--limit", default=None, type=click.IntRange(min=2), help="use only the first N pairs (quick runs)")
@click.option("--quiet", is_flag=True, help="no per-replay progress lines")
@_settings_options(ENGINE_SETTINGS)
def simulate(data_path: Path, judges: str | None, budgets: str, seeds: int, out_dir: Path, limit: int | None,
             quiet: bool, **engine_flags: str | None) -> None:
    """Replay a dataset with known human labels through the configured curation engine (the same
    settings the backend reads: environment, .env, or the flags below) beside every baseline and
    every other strategy the package ships.

    Files without LLM labels (HH-RLHF chosen/rejected) report the RM capacity ceiling instead.
    """
    from rlthf_backend.cli.simulate import run_simulate_command

    settings = _settings_with(engine_flags)
    try:
        budget_list = [float(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated percentages, got {budgets!r}",
                                 param_hint="--budgets") from None
    if not budget_list or any(not 0 < b <= 100 for b in budget_list):
        raise click.BadParameter(f"every budget must be a percentage in (0, 100], got {budgets!r}",
                                 param_hint="--budgets")
    engine = settings.engine_config()
    run_simulate_command(
        data_path=data_path,
        engine=engine,
        rm=settings.reward_model_spec(),
        judges=[j.strip() for j in judges.split(",") if j.strip()] if judges else None,
        panel_label_rule=settings.judge_panel_label,
        strategies=[engine.strategy],
        budgets=budget_list,
        seeds=seeds,
        out_dir=out_dir,
        limit=limit,
        echo=click.echo,
        quiet=quiet,
    )


@main.command()
@click.option("--project", "project_id", required=True, type=PROJECT_ID, help="Label Studio project id")
@click.option("--format", "fmt", required=True, type=click.Choice(["trl", "jsonl", "parquet", "hf", "csv"]),
              help="trl: prompt/chosen/rejected(/margin) JSONL; jsonl/parquet/csv: every provenance field; "
              "hf: a `datasets` folder with a dataset card")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="file (a folder for hf)")
@click.option("--include-dropped", is_flag=True, help="keep the pairs the engine dropped (marked `dropped`)")
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=None,
              help="only pairs whose estimated P(label right) is at least this")
@click.option("--conversational", is_flag=True, help="trl: chat messages instead of plain text")
@click.option("--push-to-hub", "push_repo", default=None, metavar="REPO",
              help="hf: also upload to this Hub dataset repo (needs HF_TOKEN)")
def export(project_id: int, fmt: str, out: Path, include_dropped: bool, min_confidence: float | None,
           conversational: bool, push_repo: str | None) -> None:
    """Export the curated dataset of a project, one row per pair with its provenance."""
    from rlthf_backend.app.errors import ProjectError
    from rlthf_backend.app.export import curated_dataset
    from rlthf_backend.export import ExportError, write_dataset
    from rlthf_backend.export.writers import check_options

    settings = get_settings()
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    try:
        check_options(fmt, conversational, push_repo, token)  # before reading anything
        data = curated_dataset(settings, project_id, include_dropped=include_dropped, min_confidence=min_confidence)
        written = write_dataset(data, fmt, out, conversational=conversational, push_repo=push_repo, hub_token=token)
    except (ExportError, ProjectError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(data.describe())
    click.echo(f"wrote {written} rows to {out} ({fmt}{', conversational' if conversational else ''})")


@main.command()
@click.option("--project", "project_id", default=None, type=int, help="also check this Label Studio project")
@click.option("--backend-url", default=None, help="the backend's URL as Label Studio knows it "
              "(default: the ML backend connected to the project)")
@click.option("--timeout", default=15.0, show_default=True, type=click.FloatRange(min=0.1),
              help="seconds each request to Label Studio or the backend may take in all")
def doctor(project_id: int | None, backend_url: str | None, timeout: float) -> None:
    """Check Label Studio, the connection, the project, jobs, judge and disk; one line per check, with the fix."""
    from rlthf_backend.cli.doctor import passed, run_checks

    checks = []
    for check in run_checks(get_settings(), project_id=project_id, backend_url=backend_url, timeout=timeout):
        click.echo(check.line())
        checks.append(check)
    failed = sum(c.verdict == "FAIL" for c in checks)
    click.echo("all checks passed" if passed(checks) else f"{failed} check(s) failed")
    sys.exit(0 if passed(checks) else 1)


@main.command()
@click.option("--project", "project_id", required=True, type=PROJECT_ID, help="Label Studio project id")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def report(project_id: int, out: Path) -> None:
    """Write the project's curation report: one self-contained HTML page."""
    from rlthf_backend.app.report import build_report

    html = build_report(get_settings(), project_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    click.echo(f"wrote {out} ({len(html) // 1024} KiB)")


if __name__ == "__main__":  # pragma: no cover
    main()
