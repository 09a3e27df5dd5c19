# One image for every Introspect service; compose picks the module with `command`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml alembic.ini ./
COPY shared shared
COPY introspect introspect
COPY trainer_svc trainer_svc
COPY understanding_svc understanding_svc
COPY selfplay_svc selfplay_svc
COPY journal_svc journal_svc
COPY migrations migrations
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -e .
ENV PYTHONUNBUFFERED=1
