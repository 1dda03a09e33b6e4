"""Index an images folder: `python with_faiss.py [--collection NAME] [--images DIR] [--rebuild]`.

Thin entry point: the command line is search_by_image/cli/index.py (`--help` lists every
flag; each overrides the matching SBI_* setting).
"""

import sys

from search_by_image.cli.index import main, parse_args, run

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(run())
