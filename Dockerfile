# syntax=docker/dockerfile:1
# The one image every Drape service (and the CPU model server) runs: `drape serve NAME`.
#   docker build -t ghcr.io/drape-platform/drape:0.1.0 .
#
# Two stages: the first installs Drape and its dependencies into a virtual environment and
# checks the API stubs; the second holds only that environment and the system libraries
# OpenCV needs, and runs as an unprivileged user.
FROM python:3.11-slim AS build
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
# Every folder pyproject.toml maps into the `drape` package (a test keeps this list whole).
COPY protos ./protos
COPY services ./services
COPY models ./models
COPY recsys ./recsys
COPY catalog ./catalog
COPY synthetic ./synthetic
COPY monitoring ./monitoring
COPY cli ./cli
COPY tools/protogen.py ./tools/protogen.py
# CPU torch first (a GPU image swaps in the CUDA build and the `gpu` extra).
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install --no-cache-dir -c constraints.txt ".[cpu,s3]" \
    && python tools/protogen.py --check

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 OPENBLAS_NUM_THREADS=1 PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home drape && mkdir -p /var/lib/drape && chown drape /var/lib/drape
COPY --from=build /opt/venv /opt/venv
USER 10001
# The service this container runs (its first process, `drape serve NAME`) answers
# grpc.health.v1; a job's container has no service and is always healthy. Kubernetes ignores
# this and probes each service itself (the manifests).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["drape", "health"]
ENTRYPOINT []
CMD ["drape", "doctor"]
