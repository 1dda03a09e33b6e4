"""Index an images folder: `python with_faiss.py [--collection NAME] [--images DIR] [--rebuild]`;
search the saved index: `python with_faiss.py search PHOTO_OR_FOLDER... [--format table|csv|json]`.

Thin entry point: the command line is search_by_image/cli/index.py (`--help` lists every
flag; each overrides the matching SBI_* setting) and search_by_image/cli/search.py.
"""

import sys

from search_by_image.cli.index import main, parse_args, run

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(run())
