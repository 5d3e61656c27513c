"""User ids map to namespaces injectively; empty ids are refused."""

from __future__ import annotations

import pytest

from store.namespace import (
    HASHED_TAG,
    MAX_LITERAL_LENGTH,
    InvalidUserId,
    decode_user_label,
    encode_user_id,
    user_namespace,
)

ADVERSARIAL_IDS = [
    "a.b@x.com",
    "a-b@x.com",
    "a_b@x.com",
    "A.B@x.com",
    "alice",
    "Alice",
    "ALICE",
    "alice ",
    " alice",
    "%41lice",  # percent-encoded "Alice" written literally
    "al%ice",
    "~sha256~" + "0" * 64,  # looks like a hashed label
    "zoë",
    "zoe\u0308",  # the same name in decomposed unicode: a different id
    "用户",
    "👩‍💻",
    "a\x00b",
    "a\nb",
    "a\\b",
    "a'b\"c;--",
    "a\tb\x1b[31m",
    "x" * 10_000,
    "x" * 9_999 + "y",
    "x" * MAX_LITERAL_LENGTH,
    "x" * (MAX_LITERAL_LENGTH + 1),
]


def test_every_adversarial_id_gets_its_own_label() -> None:
    labels = [encode_user_id(user_id) for user_id in ADVERSARIAL_IDS]
    assert len(set(labels)) == len(ADVERSARIAL_IDS)


@pytest.mark.parametrize("user_id", ADVERSARIAL_IDS)
def test_labels_are_valid_store_labels_and_short(user_id: str) -> None:
    label = encode_user_id(user_id)
    assert "." not in label and "\x00" not in label and label
    assert len(label) <= max(MAX_LITERAL_LENGTH, len(HASHED_TAG) + 64)


@pytest.mark.parametrize("user_id", [u for u in ADVERSARIAL_IDS if len(u) < 60])
def test_literal_labels_decode_back(user_id: str) -> None:
    assert decode_user_label(encode_user_id(user_id)) == user_id


def test_a_literal_id_can_never_produce_a_hashed_label() -> None:
    long_label = encode_user_id("x" * 10_000)
    assert long_label.startswith(HASHED_TAG)
    assert decode_user_label(long_label) is None
    assert not encode_user_id(HASHED_TAG + long_label[len(HASHED_TAG) :]).startswith(HASHED_TAG)


def test_namespace_shape() -> None:
    assert user_namespace("a.b@x.com") == ("user_memories", "a%2Eb@x%2Ecom")


@pytest.mark.parametrize("bad", ["", None, 42])
def test_empty_or_non_string_ids_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidUserId, match="user id must be"):
        user_namespace(bad)  # type: ignore[arg-type]
