# The image Cloud Run runs: the app under gunicorn, configured by gunicorn.conf.py
# from the environment. Secrets arrive at run time from Secret Manager
# (cloudbuild.yaml's --set-secrets), never in the image.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer: rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# The app runs unprivileged and cannot change its own code (owned by root);
# instance/ is its only writable place, for the SQLite sandbox when run locally.
# USER is numeric so that a runtime can tell it is not root without /etc/passwd.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-log-init --create-home app \
    && mkdir /app/instance \
    && chown app:app /app/instance

COPY . .

USER 10001:10001

# Cloud Run sends requests to $PORT (8080 unless configured otherwise).
EXPOSE 8080

# Exec form: gunicorn is PID 1 and receives Cloud Run's SIGTERM itself.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:app"]
