"""What a memory is about: the subject of simple facts, so a new value replaces the old one.

"my favourite colour is blue" and "my favorite color is now green" are two
values of one subject, ``favourite colour``; saving the second updates the
memory that holds the first (with a revision) instead of adding a rival.
Deterministic and deliberately small: first-person facts ("my X is Y", "my X
is now Y", "my X changed to Y", "X is now Y", "I live in Y", "I work at Y").
A fact outside these forms has no subject and is only deduplicated by
similarity; a real model can still update it through ``update_memory``.
"""

from __future__ import annotations

import re

# Spellings that name the same thing; the first of each pair is the one kept.
_SPELLINGS = {
    "favorite": "favourite",
    "fav": "favourite",
    "color": "colour",
    "colors": "colours",
    "neighbor": "neighbour",
}
_LEADING = re.compile(
    r"^(?:(?:actually|also|so|ok|okay|update|correction|note|fyi|now|btw|please|"
    r"remember(?: that)?|note that)\b[,:]?\s*)+",
    re.I,
)
_VERB = r"(?:is now|are now|is|are|has become|have become|became|changed to|has changed to|switched to|=|:)"
_MY_FACT = re.compile(
    rf"^(?:my|the user's|user's|users)\s+(?P<subject>[a-z][a-z' -]{{0,40}}?)\s*{_VERB}\s+(?P<value>.+)$",
    re.I,
)
_NOW_FACT = re.compile(
    r"^(?P<subject>[a-z][a-z' -]{0,40}?)\s+(?:is|are)\s+now\s+(?P<value>.+)$",
    re.I,
)
_FIRST_PERSON = (
    (re.compile(r"^(?:i|the user)\s+(?:now\s+)?(?:lives?|live) in\s+(?P<value>.+)$", re.I), "home"),
    (
        re.compile(
            r"^(?:i|the user)\s+(?:now\s+)?(?:works?|work) (?:at|for)\s+(?P<value>.+)$", re.I
        ),
        "employer",
    ),
    (re.compile(r"^(?:i am|i'm|the user is) (?P<value>\d+) years old$", re.I), "age"),
)
_PRONOUN_SUBJECTS = frozenset({"it", "this", "that", "he", "she", "they", "there", "what", "who"})


def normalise_subject(subject: str) -> str:
    """One spelling per subject: lower case, single spaces, British spellings."""
    words = re.findall(r"[a-z0-9']+", subject.lower())
    words = [_SPELLINGS.get(word, word) for word in words if word not in ("current", "new")]
    while words and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)


# A second fact in the same memory ("my city is Lyon and my dog is Rex"): such a memory
# has no single subject, so a new value for one of its facts never overwrites the other.
_SECOND_FACT = re.compile(r"[;]|\b(?:and|but|while)\s+(?:my|i|i'm|i am)\b", re.I)


def parse_fact(content: str) -> tuple[str, str] | None:
    """``(subject, value)`` of a simple fact, or None when the text is not one."""
    text = _LEADING.sub("", " ".join(str(content).split())).strip().rstrip(".!")
    if _SECOND_FACT.search(text):
        return None
    for pattern, subject in _FIRST_PERSON:
        if match := pattern.match(text):
            return subject, _value(match.group("value"))
    match = _MY_FACT.match(text) or _NOW_FACT.match(text)
    if match is None:
        return None
    subject = normalise_subject(match.group("subject"))
    if not subject or subject in _PRONOUN_SUBJECTS:
        return None
    return subject, _value(match.group("value"))


def _value(raw: str) -> str:
    value = raw.strip().strip("\"'")
    return re.sub(r"^now\s+", "", value, flags=re.I)


def subject_of(content: str) -> str | None:
    """The subject ``content`` states a value for, or None."""
    fact = parse_fact(content)
    return fact[0] if fact else None


def canonical_fact(content: str) -> str | None:
    """``my <subject> is <value>`` for a simple fact (None otherwise): one wording per fact."""
    fact = parse_fact(content)
    if fact is None:
        return None
    subject, value = fact
    verb = "are" if subject.endswith("s") and not subject.endswith("ss") else "is"
    return f"my {subject} {verb} {value}"
