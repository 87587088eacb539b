# CPU image of the temporal ML backend for Label Studio. For a GPU image, install the CUDA torch build instead.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 PORT=9090 \
    MODEL_DIR=/data/models CACHE_DIR=/data/cache \
    YOLO_CONFIG_DIR=/data/ultralytics YOLO_AUTOINSTALL=false

RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# The CPU wheel index keeps torch and torchvision at the pinned versions without CUDA packages.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

COPY _wsgi.py model.py worker.py gunicorn.conf.py ./
COPY control_models ./control_models
COPY utils ./utils

VOLUME ["/data"]
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS -u "${BASIC_AUTH_USER}:${BASIC_AUTH_PASS}" "http://127.0.0.1:${PORT}/health" || exit 1
CMD ["gunicorn", "-c", "gunicorn.conf.py", "_wsgi:create_app()"]
