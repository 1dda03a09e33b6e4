"""The layout of a saved folder (`saved/`, or `saved/collections/NAME/` for a named collection),
named once here; the modules that read and write each part import its name.

The index files (manifest to whitening) are the *base*, written whole by the indexer or a fold
and never changed by a live add or delete: those are rows of catalog.sqlite's log, laid over the
base when it is served (index/live_log.py, index/live_store.py).

    saved/
      manifest.json         the index's description, written last: its presence commits a build;
                            `folded_seq`: the last live write the base holds
      faiss_index.faiss     the FAISS index (memory-mapped when served)
      features.npy          one descriptor per image, in the index's row order
      images_paths.txt      one image path per row, relative to the images folder
      ids.npy               each row's stable image id
      fingerprints.npy      each row's file (size, mtime_ns) when indexed
      whitening.npz         the learned whitening (collections of 400+ images)
      .previous/            the last committed files while a new commit replaces them
      .lock                 the writer lock (indexer runs, live writes, a fold's renames)
      .fold.lock            one background fold at a time (serving/folding.py), whose files are
                            staged as .fold.*.tmp
      .shards/              an indexer run's finished shards, until it commits
      thumbnails/           448 px JPEG per image (the grid, verification's keypoints)
      unreadable.json       files the indexer could not read, and why
      trash/                deleted images and their metadata (JSON)
      catalog.sqlite        what the collection learns at run time (catalog/database.py), WAL:
                            the live writes' log (index/live_log.py), metadata rows, typed and
                            indexed (catalog/metadata_store.py), ...
      keypoints.sqlite      each image's local keypoints, computed once at indexing or add
                            (catalog/keypoint_store.py): verification reads them by path
      onnx/                 exported and quantized models (SBI_ONNX_DIR)
      api_keys.json         API keys (salted hashes), mode 0600
      .url_secret           the signing secret of image URLs, mode 0600
      collections/NAME/     a named collection's own saved folder, with collection.json
"""

INDEX_FILE = "faiss_index.faiss"
FEATURES_FILE = "features.npy"
PATHS_FILE = "images_paths.txt"
MANIFEST_FILE = "manifest.json"
WHITENING_FILE = "whitening.npz"
IDS_FILE = "ids.npy"
FINGERPRINTS_FILE = "fingerprints.npy"
PREVIOUS_DIR = ".previous"
LOCK_FILE = ".lock"
SHARDS_DIR = ".shards"
THUMBNAILS_DIR = "thumbnails"
UNREADABLE_FILE = "unreadable.json"
TRASH_DIR = "trash"
CATALOG_FILE = "catalog.sqlite"
KEYPOINTS_FILE = "keypoints.sqlite"
ONNX_DIR = "onnx"
KEYS_FILE = "api_keys.json"
URL_SECRET_FILE = ".url_secret"
COLLECTIONS_DIR = "collections"
#: in a named collection's saved folder: the images folder and CSV it was built from
SOURCE_FILE = "collection.json"
#: in a collection's images folder: where uploads through the API go
UPLOADS_DIR = "uploads"
