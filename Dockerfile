# CPU image: serves on 8000 as a non-root user, with the bundled collection indexed at build time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
# The CPU build of torch: a fraction of the size of the default CUDA one.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

RUN useradd --create-home --uid 10001 app
COPY --chown=app:app . .
USER app

# Index now, so the image starts serving at once. With network access `auto` fetches ResNet50's
# weights into the image's torch cache; without, it uses the bundled EfficientNet-Lite0.
RUN python with_faiss.py --quiet

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"

# The indexer runs first on every start: it only stats unchanged files, so a mounted images folder
# or an empty saved/ volume is (re)indexed before the service loads it.
CMD ["sh", "-c", "python with_faiss.py --quiet && exec uvicorn main:app --host 0.0.0.0 --port 8000"]
