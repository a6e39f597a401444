# A local stand-in for python:3.11-slim-bookworm, for hosts that cannot reach Docker Hub
# (infra/docker.sh builds it FROM the debian:bookworm it imported from a debootstrap root).
# Debian's own Python 3.11 with venv and pip; the certificates under /usr/local/share/ca-certificates
# (the host's extra CAs, copied into the root by infra/docker.sh) are trusted once ca-certificates installs.
FROM debian:bookworm
ENV LANG=C.UTF-8
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip python-is-python3 \
    ca-certificates && rm -rf /var/lib/apt/lists/*
LABEL org.prefloop.stand-in="python:3.11-slim-bookworm"
CMD ["python3"]
