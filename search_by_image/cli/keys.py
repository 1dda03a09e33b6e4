"""Manage API keys: `python -m search_by_image.cli.keys create --scope admin --label ci`.

    create --scope search|admin [--label TEXT]   prints the new key once; only its hash is kept
    list                                         id, scope, label and creation time of each key
    revoke ID                                    the key stops working at once, also in a running service

Keys are stored in `<SBI_SAVED_DIR>/api_keys.json`.
"""

from __future__ import annotations

import argparse
import sys

from search_by_image.api.auth import KeyStore
from search_by_image.layout import KEYS_FILE
from search_by_image.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search_by_image.cli.keys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a new key and print it once")
    create.add_argument("--scope", choices=["search", "admin"], required=True)
    create.add_argument("--label", default="", help="a note on who or what uses the key")
    commands.add_parser("list", help="list the keys (never their secrets)")
    revoke = commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("id")
    args = parser.parse_args(argv)

    store = KeyStore(Settings().saved_dir / KEYS_FILE)
    if args.command == "create":
        record, key = store.create(args.scope, args.label)
        print(key)
        print(f"key {record.id} ({record.scope}) created; it is shown only this once", file=sys.stderr)
    elif args.command == "list":
        for record in store.records():
            print(f"{record.id}\t{record.scope}\t{record.created:%Y-%m-%d %H:%M}\t{record.label}")
    elif not store.revoke(args.id):
        print(f"no key with id {args.id!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
