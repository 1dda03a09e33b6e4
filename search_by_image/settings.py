"""Settings, read once from `SBI_*` environment variables (or a `.env` file).

This is the only module that reads the environment. Every path, limit and model choice of the
indexer and the service lives here so that `python with_faiss.py` and `uvicorn main:app` agree.
Relative default paths are anchored at the project folder, so both commands work from any cwd.
The top-level config.py re-exports this module for users' scripts.
"""

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from search_by_image.layout import ONNX_DIR

_CHECKOUT = Path(__file__).resolve().parent.parent
#: The repository folder, where the demo collection and saved/ live; for a package installed
#: outside a checkout (a wheel in site-packages), the current folder.
PROJECT_DIR = _CHECKOUT if (_CHECKOUT / "with_faiss.py").is_file() else Path.cwd()

ModelChoice = Literal["auto", "resnet50", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
ResizePolicy = Literal["keep_aspect", "center_crop"]
Pooling = Literal["gem", "avg"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
Runtime = Literal["auto", "torch", "onnx"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SBI_", env_file=".env", extra="ignore")

    images_dir: Path = PROJECT_DIR / "data" / "the_images"
    metadata_csv: Path = PROJECT_DIR / "data" / "the_data.csv"
    saved_dir: Path = PROJECT_DIR / "saved"

    model: ModelChoice = Field(
        "auto",
        description="auto: ResNet50 when its ImageNet weights can be had, else the bundled "
        "EfficientNet-Lite0.",
    )
    resize: ResizePolicy = Field(
        "keep_aspect", description="keep_aspect: whole image, longer side = image_size."
    )
    image_size: int = Field(448, ge=64, le=2048)
    grayscale: bool = Field(False, description="index and search without colour")
    pooling: Pooling = "gem"
    scales: tuple[float, ...] = Field(
        (1.0,), description="input scales whose descriptors are summed, e.g. [1, 0.707, 0.5]"
    )
    whitening: int = Field(
        512,
        ge=0,
        le=4096,
        description="PCA-whitening dimensions (eigenvalues shrunk towards their mean), learned on "
        "collections of 400+ images (384-d where there are fewer images than dimensions); 0 = off.",
    )
    precision: Precision = Field(
        "auto",
        description="auto: int8 EfficientNet-Lite0 on ONNX Runtime where the CPU has VNNI "
        "(about twice as fast, Holidays mAP within half a point: bench/README.md), else bf16 "
        "where the CPU/GPU runs it natively, else fp32.",
    )
    index_memory_mb: int = Field(
        4096, ge=16, description="above this size as float32, an index stores 8-bit codes (SQ8)"
    )
    runtime: Runtime = Field(
        "auto",
        description="auto: ONNX Runtime for EfficientNet-Lite on the CPU (faster than torch bf16: "
        "bench/README.md), torch otherwise. The ONNX file is exported once into saved/onnx/.",
    )
    onnx_dir: Path | None = Field(
        None, description="where exported and int8 ONNX models are cached; default saved_dir/onnx"
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    batch_size: int = Field(
        8,
        ge=1,
        le=1024,
        description="images per forward pass when indexing: on the CPU 8 ran int8 and fp32 "
        "EfficientNet-Lite0 as fast per image as 16 or faster, and the worker processes' last "
        "tasks shrink to a batch, so they finish closer together (bench/README.md, camera indexing)",
    )
    workers: int = Field(
        2,
        ge=0,
        le=64,
        description="indexing on the CPU: processes that each decode and embed a "
        "share of the images (about one per core); on a GPU: decode processes feeding it",
    )

    thumbnails: bool = Field(
        True,
        description="make the result grids' 448 px thumbnails while indexing and adding, in "
        "the same decode pass (the model's input encoded: about 1 ms an image, 3% of indexing a "
        "12 MP JPEG with int8: bench/README.md, camera); off: each is made on its first request",
    )

    query_batch: int = Field(
        0,
        ge=0,
        le=256,
        description="most images of concurrent queries embedded together (a query is 3 with "
        "query_rotations, never split); 0 = auto "
        "(batcher.py: 8 for an fp32 model on the CPU, whose batch of 16 is most of the service's "
        "peak memory; else 16)",
    )
    load_in_background: bool = Field(
        True,
        description="the service answers as soon as it starts and loads its indexes and models "
        "in the background (/health says loading; searches get 503 with Retry-After until then); "
        "off: it answers once they are loaded",
    )
    index_on_start: bool = Field(
        False,
        description="index every collection's folder in the background when the service "
        "starts (the container does): it answers at once, /health shows the progress",
    )
    watch: bool = Field(
        False,
        description="the service keeps every collection in step with its images folder as "
        "files appear, change or go away (indexing them in the background, at start too)",
    )
    watch_quiet_ms: int = Field(
        1000,
        ge=50,
        le=600_000,
        description="watch mode: a folder's changes are indexed once it "
        "has been quiet this long (a copy in progress is one run, not hundreds)",
    )
    duplicates_workers: int = Field(
        1,
        ge=0,
        le=64,
        description="processes that check a whole duplicates pass's pairs (a collection's first "
        "duplicates page, `--duplicates`); 1 = on threads of the service's own process (about "
        "1.7 of 2 cores busy); 0 = one per core. On 2 shared, loaded cores the processes cost "
        "more CPU than the threads (bench/README.md, the duplicates page on real photos)",
    )
    verify_top: int = Field(
        10,
        ge=0,
        le=100,
        description="check a search's top results with local features (ORB keypoints of their "
        "thumbnails, one geometric transform fitted by RANSAC): those the query's keypoints match "
        "rank higher, and only a verified match is labelled copy, also in duplicate groups; "
        "0 = off (ranked and labelled by the score alone)",
    )
    query_expansion: bool = Field(
        True,
        description="with verify_top: the descriptors of the results verified as the query's "
        "scene are added to the query's, and the other results among the top 100 ranked again "
        "by it (query expansion: more of the scene's other shots near the top; verified results "
        "keep their place); off: ranked by the query's own descriptor",
    )
    milvus_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = Field(
        "Bounded",
        description="for a collection stored in Milvus (python -m search_by_image.cli.storage "
        "export): how fresh each search's view is. Bounded (Milvus's own default): a write any "
        "replica acknowledged is in every replica's searches within Milvus's graceful time (5 s "
        "by default, common.gracefulTime; usually well under a second); Strong: in the next "
        "search, but every engine call of a request waits for the engine's time tick (0.3-1.3 s "
        "more a search measured, docs/milvus.md)",
    )
    query_rotations: bool = Field(
        True,
        description="also search with the query turned 90 and 270 degrees (two more images "
        "in its forward pass): photos stored sideways, as scans and exports without EXIF "
        "orientation are, are found upright and the other way round (rotations.py, "
        "bench/README.md); off: the upright query only",
    )
    reload_seconds: float = Field(
        2.0, ge=0, description="how often the service checks for indexes rewritten on disk; 0 = never"
    )

    search_requires_key: bool = Field(
        False, description="searching needs an API key (scope search or admin); writes always do"
    )
    rate_limit: str = Field(
        "300/minute",
        description="searches and writes per client (API key, else address); '' = off",
        validate_default=False,  # a known rule: parsing it would import `limits` at every start
    )
    trusted_proxies: list[str] = Field(
        [],
        description="addresses or CIDR ranges of reverse proxies whose X-Forwarded-For names the "
        "client for the rate limit; empty = forwarded headers are never believed",
    )
    cors_origins: list[str] = Field(
        [], description="origins allowed to call the API from a browser; empty = CORS off"
    )

    url_search: bool = Field(
        False,
        description="POST /search also takes `url`, the address of the query image, which the "
        "service fetches itself (api/url_fetch.py): http(s) only, public addresses only, each "
        "redirect checked again, the upload's size limit; off: a `url` is refused with a 422",
    )
    url_search_allow: list[str] = Field(
        [],
        description="addresses or CIDR ranges that URL search may fetch from although they are "
        "not public (a private deployment's own image server, tests); cloud metadata addresses "
        "stay refused; empty = public addresses only",
    )
    url_search_timeout_s: float = Field(
        10.0, gt=0, le=120, description="URL search: the longest one fetch may take, redirects included"
    )

    metrics_requires_key: bool = Field(
        False, description="GET /metrics needs an API key (any scope); off: open like /health"
    )

    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    upload_timeout_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="the longest a request's body (an upload) may take to arrive once its headers "
        "have; 408 beyond, so a stalled or trickling body cannot hold its memory for ever",
    )
    max_image_pixels: int = Field(50_000_000, ge=10_000)
    decode_memory_mb: int = Field(
        512,
        ge=16,
        description="memory that image decodes in flight may use at once, process-wide "
        "(estimated from declared pixels: a 7000x7000 WebP takes most of a gigabyte whatever its file size); "
        "decodes beyond it wait their turn",
    )
    max_add_files: int = Field(64, ge=1, description="images per add request")
    fold_rows: int = Field(
        50_000,
        ge=1,
        description="live adds and deletes kept beside the saved index before a background fold "
        "writes them into it (also folded past fold_fraction of the index, from 1,000 rows)",
    )
    fold_fraction: float = Field(0.05, gt=0, description="see fold_rows")
    max_add_pixels: int = Field(
        200_000_000, ge=10_000, description="pixels that the images of one add request may declare together"
    )
    log_level: str = "INFO"

    @property
    def onnx_cache(self) -> Path:
        return self.onnx_dir or self.saved_dir / ONNX_DIR

    @field_validator("trusted_proxies", "url_search_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry.strip(), strict=False)  # ValueError names the bad entry
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_rule(cls, value: str) -> str:
        if value:
            from limits import parse  # here, not at import: 0.06-0.15 s of every start

            parse(value)  # ValueError names the bad notation
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
