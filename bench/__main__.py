"""Run the benchmarks: ``python -m bench`` (quick), ``--large`` (1M-row store), ``--only NAME``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--large", action="store_true", help="store benchmark on 1,000,000 rows")
    parser.add_argument(
        "--only",
        choices=["startup", "store", "locomo", "guards", "lakebase", "long_threads"],
        action="append",
        help="run only these benchmarks",
    )
    parser.add_argument(
        "--turns", type=int, default=1000, help="turns per thread in long_threads (default 1000)"
    )
    parser.add_argument(
        "--url", help="Postgres to use (default: an embedded server under bench/results/pg)"
    )
    args = parser.parse_args(argv)
    selected = args.only or ["startup", "locomo", "store", "guards", "lakebase", "long_threads"]
    if "startup" in selected:
        from bench import startup

        print(startup.render(startup.run()))
    if "locomo" in selected:
        from bench import locomo

        kinds = ["hash", "minilm"] if locomo.minilm_available() else ["hash"]
        for kind in kinds:
            report = locomo.run(url=args.url, embedder_kind=kind)
            print(locomo.render(report))
    if "guards" in selected:
        from bench import run_guards

        report = run_guards.run(url=args.url)
        print(run_guards.render(report))
    if "long_threads" in selected:
        from bench import long_threads

        print(long_threads.render(long_threads.run(url=args.url, turns=args.turns)))
    if "store" in selected:
        from bench import store_scale

        report = store_scale.run(large=args.large, url=args.url)
        print(store_scale.render(report))
    if "lakebase" in selected:
        from bench import lakebase_rotation

        print(lakebase_rotation.render(lakebase_rotation.run()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
