# Production image: the service on a configured PostgreSQL (set DATABASE_URL or DATABASE_*).
# Migrations on start are opt-in here: MIGRATE_ON_START=true, or run
# `docker run … <image> encounters-service migrate upgrade`. See the README's Container section.
FROM python:3.11-slim

ARG GIT_HASH=unknown
ARG BUILD_NUMBER=unknown
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 PORT=5000 GIT_HASH=$GIT_HASH BUILD_NUMBER=$BUILD_NUMBER \
    LOCAL_DATABASE=false
RUN groupadd --gid 10001 encounters && useradd --create-home --uid 10001 --gid 10001 encounters
WORKDIR /app

COPY pyproject.toml README.md ./
COPY encounters_service ./encounters_service
COPY sql ./sql
COPY migrations ./migrations
# Editable install: the package reads sql/ and migrations/ next to it, in /app (owned by root,
# read-only for the service's user).
RUN pip install --no-cache-dir -e . && chown -R root:root /app

# Numeric, so that an orchestrator's runAsNonRoot can check it: the user `encounters`.
USER 10001:10001
EXPOSE 5000
# Healthy when the service answers and its database is reachable (/healthcheck is 503 otherwise).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthcheck' % os.environ.get('PORT', '5000'), timeout=2)"]
CMD ["encounters-service", "serve"]
