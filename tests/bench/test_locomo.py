"""The LoCoMo benchmark as a tool: its data formats, evidence ids, protocol and errors.

The data here is made up (two tiny conversations in LoCoMo's layout): the real
data is not part of the project.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import common, locomo
from bench.__main__ import main as bench_main


def conversation(topic: str, other: str) -> dict:
    """A LoCoMo-shaped conversation: two sessions, questions with messy evidence ids."""
    return {
        "speaker_a": "Ann",
        "speaker_b": "Bob",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [
            {"speaker": "Ann", "dia_id": "D1:1", "text": f"Did you ever try {topic}?"},
            {"speaker": "Bob", "dia_id": "D1:2", "text": "Yes, last summer, loved it."},
            {"speaker": "Ann", "dia_id": "D1:3", "text": f"I prefer {other} myself."},
        ],
        "session_2_date_time": "2:00 pm on 9 June, 2023",
        "session_2": [
            {"speaker": "Bob", "dia_id": "D2:1", "text": "My sister moved to Lisbon."},
            {"speaker": "Ann", "dia_id": "D2:2", "text": "Lisbon is lovely in spring."},
        ],
        "qa": [
            {"question": f"Who tried {topic}?", "evidence": ["D1:02"], "category": 4},
            {"question": "Where did Bob's sister move?", "evidence": ["D:2:1"], "category": 1},
            {
                "question": f"What does Ann prefer to {topic}?",
                "evidence": ["D1:3; D1:1"],
                "category": 2,
            },
            {"question": "Unanswerable", "evidence": ["D", "D9:9"], "category": 5},
        ],
    }


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "per-conversation"
    folder.mkdir()
    (folder / "7.json").write_text(json.dumps(conversation("surfing", "chess")))
    (folder / "12.json").write_text(json.dumps(conversation("pottery", "painting")))
    return folder


def test_evidence_ids_are_normalised() -> None:
    assert locomo.normalise_evidence(["D30:05", "D:11:26", "D8:6; D9:17", "D", "D30:5"]) == [
        "D30:5",
        "D11:26",
        "D8:6",
        "D9:17",
    ]


def test_both_layouts_read_the_same(data_folder: Path, tmp_path: Path) -> None:
    upstream = tmp_path / "locomo10.json"
    upstream.write_text(
        json.dumps(
            [
                {
                    "sample_id": name,
                    "conversation": {k: v for k, v in data.items() if k != "qa"},
                    "qa": data["qa"],
                }
                for name, data in (
                    ("7", conversation("surfing", "chess")),
                    ("12", conversation("pottery", "painting")),
                )
            ]
        )
    )
    folder = locomo.load_conversations(data_folder)
    single = locomo.load_conversations(upstream)
    assert [c.name for c in folder] == ["7", "12"] == [c.name for c in single]
    assert [c.turns for c in folder] == [c.turns for c in single]
    first = folder[0]
    assert [q["evidence"] for q in first.questions] == [["D1:2"], ["D2:1"], ["D1:3", "D1:1"]]
    # "D" names no turn and is not counted; "D9:9" is an id the conversation lacks.
    assert (first.skipped_questions, first.dropped_evidence) == (1, 1)
    assert [c.name for c in locomo.load_conversations(upstream, ["12"])] == ["12"]
    assert locomo.data_label(upstream, single) == "locomo10-7.12"


def test_context_layout_adds_neighbours_within_a_session(data_folder: Path) -> None:
    first = locomo.load_conversations(data_folder)[0]
    written = dict(locomo.memories(first, "dated"))
    assert written["D1:3"]["content"] == "(1:56 pm on 8 May, 2023) Ann: I prefer chess myself."
    assert written["D1:3"]["context"] == "Bob: Yes, last summer, loved it."
    assert written["D2:1"]["context"] == "Ann: Lisbon is lovely in spring."
    assert "context" not in dict(locomo.memories(first, "turn"))["D1:3"]


def test_leave_one_out_scores_each_conversation_with_what_the_others_chose() -> None:
    def result(name: str, recall: float) -> locomo.Result:
        return locomo.Result(name, "single-hop", {c: recall for c in locomo.COLUMNS})

    results = {
        ("vector", (layout, None)): [result("a", a), result("b", b), result("c", c)]
        for layout, (a, b, c) in {
            "turn": (0.5, 0.0, 0.0),  # best on a only
            "context": (0.0, 0.6, 0.6),  # best on b and c
            "dated": (0.0, 0.5, 0.5),
        }.items()
    }
    held_out, chosen = locomo.leave_one_out(results, "vector", ["a", "b", "c"])
    assert chosen == {"a": ("context", None), "b": ("context", None), "c": ("context", None)}
    # Held out, a scores 0 with what b and c chose, though "turn" would have scored 0.5.
    assert [r.figures["recall@10"] for r in held_out] == [0.0, 0.6, 0.6]


def test_run_writes_a_report_named_by_data_and_embedder(
    data_folder: Path, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS_DIRECTORY", tmp_path / "results")
    report = locomo.run(data_folder, ["7", "12"], "hash", url=database_url, log=lambda _: None)
    assert (tmp_path / "results" / "locomo_per-conversation-7.12_hash.md").exists()
    assert report["questions"] == 6
    assert set(report["loo"]) == {"vector", "lexical", "hybrid"}
    assert all(figures["questions"] == 6 for figures in report["loo"].values())
    # Each question's evidence is in its tiny conversation's top 20.
    assert report["dev"]["lexical|best on these"]["recall@20"] == pytest.approx(1.0)
    assert "Leave-one-conversation-out" in locomo.render(report)


def test_the_hybrid_sweep_ranks_as_the_store_does(data_folder: Path, database_url: str) -> None:
    from langgraph.store.base import PutOp
    from psycopg_pool import ConnectionPool

    from database.connect import CONNECTION_KWARGS
    from store.embeddings import HashEmbeddings
    from store.fusion import FusionWeights
    from store.postgres import MemoryStore

    first = locomo.load_conversations(data_folder)[0]
    with ConnectionPool(database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=1) as pool:
        store = MemoryStore(pool, embeddings=HashEmbeddings(384))
        store.setup()
        store.batch([PutOp(("c",), key, value) for key, value in locomo.memories(first, "dated")])
        for question in ("Who tried surfing last summer?", "Lisbon spring", "nothing matches"):
            swept = locomo.hybrid_sweep(store, ("c",), question, (0.3, 0.99))
            for weight, keys in swept.items():
                store.fusion = FusionWeights(lexical=weight, vector=1 - weight)
                found = store.search(("c",), query=question, limit=20, mode="hybrid")
                assert keys == [item.key for item in found]
            assert swept[0.3]  # the vector ranker finds something for any query


def test_bad_data_is_a_one_line_error(
    data_folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCOMO_DATA", raising=False)
    assert bench_main(["--only", "locomo"]) == 2
    assert "--locomo-data" in capsys.readouterr().err
    assert locomo.main(["--data", str(data_folder), "--conversations", "7,99"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: conversation(s) 99 not in {data_folder}; it holds 7, 12"
    )
    assert locomo.main(["--data", str(data_folder), "--conversations", "7"]) == 2
    assert "at least two" in capsys.readouterr().err
