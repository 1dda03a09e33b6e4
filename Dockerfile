# CPU image without torch: serves on 8000 as a non-root user, indexes in the background.
#
#   docker build -t search-by-image .
#
# One stage, no torch (requirements.txt): the bundled EfficientNet-Lite0 ships as ONNX inside the
# package. Its int8 model is quantized here once, into SBI_ONNX_DIR, so a CPU with VNNI serves it
# from the first request; fp32 or int8 is chosen where the image runs. The model is pinned, never
# guessed at build time, and the image holds no index. docs/deploying.md.

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SBI_MODEL=efficientnet_lite0 \
    SBI_RUNTIME=onnx \
    SBI_ONNX_DIR=/app/models
WORKDIR /app
COPY requirements.txt .
# EXTRAS="pymilvus>=2.4,<4" for collections stored in Milvus (deploy/compose.milvus.yml)
ARG EXTRAS=""
RUN pip install -r requirements.txt ${EXTRAS:+"$EXTRAS"}
COPY . .
# Indexing the demo once with int8 quantizes the bundled model into SBI_ONNX_DIR; the index is dropped.
RUN SBI_PRECISION=int8 python with_faiss.py --quiet --output /tmp/demo-index \
 && rm -rf /tmp/demo-index && ls -l "$SBI_ONNX_DIR"
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
