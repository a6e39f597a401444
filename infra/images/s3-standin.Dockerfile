# An S3-compatible stand-in for MinIO where its image cannot be had: moto's server (pinned by
# constraints.txt), in memory, on MinIO's port. compose.s3-standin.yaml runs it as `minio`.
# Not for production: nothing it holds survives a restart.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
COPY constraints.txt /tmp/constraints.txt
RUN python -m venv /opt/venv && pip install -c /tmp/constraints.txt "moto[server]" boto3
EXPOSE 9000
HEALTHCHECK --interval=5s --retries=12 CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:9000/moto-api/')"]
ENTRYPOINT ["moto_server", "-H", "0.0.0.0", "-p", "9000"]
