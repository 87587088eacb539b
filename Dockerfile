# Image of the temporal ML backend for Label Studio.
# TORCH_VARIANT picks PyTorch's wheel index: cpu (default), or a CUDA one such as cu126 for a GPU image.
# torch and torchvision come from that index only (no silent fallback to PyPI's CUDA build); the last step
# checks the installed build, OpenCV and the service user, and fails the build when one is wrong.
FROM python:3.11-slim

ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 PORT=9090 \
    MODEL_DIR=/data/models CACHE_DIR=/data/cache \
    YOLO_CONFIG_DIR=/data/ultralytics YOLO_AUTOINSTALL=false

WORKDIR /app
COPY requirements.txt .
RUN grep -E '^(torch|torchvision)==' requirements.txt > /tmp/torch.txt \
    && pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" -r /tmp/torch.txt \
    && pip install --no-cache-dir -r requirements.txt \
    && rm /tmp/torch.txt

# The service runs unprivileged; its data directories exist in the image so that new named volumes
# mounted there start out owned by it.
RUN useradd --system --uid 10001 --create-home --shell /usr/sbin/nologin mlbackend \
    && mkdir -p /data/models /data/cache /data/ultralytics \
    && chown -R mlbackend /data
COPY . .
USER mlbackend
RUN python scripts/check_image.py --torch-variant "${TORCH_VARIANT}" --service-user \
    /data/models /data/cache /data/ultralytics

EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python", "scripts/healthcheck.py"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "_wsgi:create_app()"]
