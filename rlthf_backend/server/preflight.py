"""What ``rlthf-backend serve`` checks before it starts gunicorn.

Deliberately free of the HTTP layer's imports: the gunicorn master must not import
``prometheus_client`` before ``PROMETHEUS_MULTIPROC_DIR`` is set, or the workers it forks would
count in memory instead of in the files ``/metrics`` aggregates.
"""

from __future__ import annotations

import tempfile

from rlthf_backend.app.settings import Settings


def check_can_serve(settings: Settings) -> None:
    """Raise (with a message naming the setting) when the backend could not work as configured.

    ``Settings`` already refuses half-set basic auth and impossible values; this adds what only
    building the judge tells (its kind, prompt template, client; models load on first use) and
    whether the model registry can be written. The judgment cache is not checked: without it the
    backend serves.
    """
    from rlthf_backend.app.judges import make_judge

    make_judge(settings, cache=False)
    # Trainings publish reward models here; a folder that cannot be written fails every one of them.
    model_dir = settings.resolved_model_dir
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=model_dir).close()
    except OSError as exc:
        raise ValueError(f"the model registry {model_dir} (RLTHF_MODEL_DIR, or RLTHF_DATA_DIR/models) cannot be "
                         f"written: {exc.strerror or exc}") from None
