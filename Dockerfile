# syntax=docker/dockerfile:1
# One target per service, each installing only its dependency group from pyproject.toml, so only
# the trainer and selfplay images carry torch:
#   docker build --target understanding_svc -t introspect/understanding_svc .
# compose.yaml builds every target; README "Deploying with containers" lists what each installs.
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 INTROSPECT_STATE_DIR=/state
WORKDIR /app
# The build context (see .dockerignore) is mounted, not copied: pip installs the project and the
# group's dependencies into site-packages, and the sources stay out of the image.

FROM base AS journal_svc
RUN --mount=type=bind,target=/src,rw pip install "/src[journal]"
CMD ["python", "-m", "journal_svc"]

FROM base AS understanding_svc
RUN --mount=type=bind,target=/src,rw pip install "/src[understanding]"
CMD ["python", "-m", "understanding_svc"]

FROM base AS torch
# torch's CPU wheels; for CUDA build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_EXTRA_INDEX_URL=$TORCH_INDEX

FROM torch AS selfplay_svc
RUN --mount=type=bind,target=/src,rw pip install "/src[selfplay]"
CMD ["python", "-m", "selfplay_svc"]

FROM torch AS trainer_svc
RUN --mount=type=bind,target=/src,rw pip install "/src[trainer]"
CMD ["python", "-m", "trainer_svc"]

# The one-shot job that brings the journal's schema to the latest revision, then gives the
# services' roles the passwords in JOURNAL_DATABASE_URL and READER_DATABASE_URL.
FROM base AS migrate
RUN --mount=type=bind,target=/src,rw pip install "/src[migrate]"
COPY alembic.ini ./
COPY migrations migrations
CMD ["sh", "-c", "alembic upgrade head && python -m shared.role_passwords"]
