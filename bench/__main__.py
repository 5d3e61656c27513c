"""Run the benchmarks: ``python -m bench`` (quick), ``--large`` (1M-row store), ``--only NAME``.

LoCoMo needs its data, which the project does not ship: ``--locomo-data PATH``
(or ``LOCOMO_DATA``); without it the LoCoMo benchmark is skipped with a note,
or, with ``--only locomo``, refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--large", action="store_true", help="store benchmark on 1,000,000 rows")
    parser.add_argument(
        "--only",
        choices=["startup", "store", "locomo", "guards", "lakebase", "serving", "background"],
        action="append",
        help="run only these benchmarks",
    )
    parser.add_argument(
        "--url", help="Postgres to use (default: an embedded server under bench/results/pg)"
    )
    parser.add_argument(
        "--locomo-data",
        type=Path,
        default=os.environ.get("LOCOMO_DATA") or None,
        help="LoCoMo's locomo10.json or a folder of per-conversation files (env LOCOMO_DATA)",
    )
    parser.add_argument(
        "--locomo-conversations", help="comma-separated LoCoMo conversations (default: all)"
    )
    parser.add_argument(
        "--locomo-embedder",
        choices=["auto", "hash", "minilm"],
        default="auto",
        help="auto: hash, and all-MiniLM-L6-v2 too when its extra is installed",
    )
    args = parser.parse_args(argv)
    selected = args.only or [
        "startup",
        "locomo",
        "store",
        "guards",
        "lakebase",
        "serving",
        "background",
    ]
    if "locomo" in selected and args.locomo_data is None:
        message = "LoCoMo needs --locomo-data PATH (README, 'Benchmarks', says where to get it)"
        if args.only:
            print(f"error: {message}", file=sys.stderr)
            return 2
        print(f"skipping LoCoMo: {message}")
        selected = [name for name in selected if name != "locomo"]
    if "startup" in selected:
        from bench import startup

        print(startup.render(startup.run()))
    if "locomo" in selected:
        from bench import locomo

        conversations = (
            [name.strip() for name in args.locomo_conversations.split(",")]
            if args.locomo_conversations
            else None
        )
        try:
            locomo.load_conversations(args.locomo_data, conversations)
            for kind in locomo.embedder_kinds(args.locomo_embedder):
                report = locomo.run(args.locomo_data, conversations, kind, url=args.url)
                print(locomo.render(report))
        except locomo.DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if "guards" in selected:
        from bench import run_guards

        report = run_guards.run(url=args.url)
        print(run_guards.render(report))
    if "store" in selected:
        from bench import store_scale

        report = store_scale.run(large=args.large, url=args.url)
        print(store_scale.render(report))
    if "serving" in selected:
        from bench import serving

        print(serving.render(serving.run(url=args.url)))
    if "background" in selected:
        from bench import background

        print(background.render(background.run(url=args.url)))
    if "lakebase" in selected:
        from bench import lakebase_rotation

        print(lakebase_rotation.render(lakebase_rotation.run()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
