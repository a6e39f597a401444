# A local stand-in for prefecthq/prefect:<version>-python3.11, for hosts that cannot reach Docker Hub:
# the pinned prefect package (constraints.txt) on the Python base. Build from the repository root:
#   docker build -f infra/images/prefect.Dockerfile -t prefecthq/prefect:3.8.8-python3.11 .
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
COPY constraints.txt /tmp/constraints.txt
RUN python -m venv /opt/venv && pip install -c /tmp/constraints.txt prefect
LABEL org.prefloop.stand-in="prefecthq/prefect"
CMD ["prefect", "version"]
