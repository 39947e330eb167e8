# Production image: the service on a configured PostgreSQL (set DATABASE_URL or DATABASE_*).
# Migrations on start are opt-in here: MIGRATE_ON_START=true, or run `encounters-service migrate upgrade`.
FROM python:3.11-slim

ARG GIT_HASH=unknown
ARG BUILD_NUMBER=unknown
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=5000 \
    GIT_HASH=$GIT_HASH BUILD_NUMBER=$BUILD_NUMBER
RUN useradd --create-home --uid 10001 encounters
WORKDIR /app

COPY pyproject.toml README.md ./
COPY encounters_service ./encounters_service
COPY sql ./sql
COPY migrations ./migrations
# Editable install: the package reads sql/ and migrations/ next to it, in /app.
RUN pip install --no-cache-dir -e . && chown -R root:root /app

USER encounters
EXPOSE 5000
CMD ["encounters-service", "serve"]
