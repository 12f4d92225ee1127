"""Small synthetic conversations for unit tests (written here; no real chat data)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from scoring_engine.conversation import Conversation, Message

NORMAL_LINES = {
    "cooking": [
        "did you try the new pasta recipe",
        "yes it needed more garlic though",
        "I bought fresh basil at the market",
        "we should cook dinner for the team on friday",
        "the oven at work is broken again",
        "my sister makes the best lasagna",
    ],
    "support": [
        "my wifi driver stopped working after the update",
        "try reinstalling the kernel module",
        "which version of the package do you have",
        "the installer crashed on the second disk",
        "check the log file under var log",
        "reboot and run the update manager again",
    ],
    "movies": [
        "have you seen the new space movie",
        "the soundtrack was amazing",
        "I prefer the original trilogy",
        "the director also made that heist film",
        "we watched it at the cinema downtown",
        "the sequel comes out next summer",
    ],
}
GROOMING_LINES = [
    "how old are you",
    "im 13",
    "you seem so mature for your age",
    "are you home alone right now",
    "dont tell your mom we talk",
    "delete the chat after ok",
    "this is our secret",
    "you are my special girl",
    "send me a picture of you",
    "can we meet at the park tomorrow",
    "i can pick you up after school",
    "whats your phone number",
    "i will buy you a new phone",
    "i love you so much",
]


def normal_conversation(rng: random.Random, index: int, source: str) -> Conversation:
    lines = NORMAL_LINES[source]
    n = rng.randint(4, 10)
    messages = tuple(Message(author=f"u{1 + i % 2}", text=rng.choice(lines)) for i in range(n))
    return Conversation(
        id=f"n-{source}-{index}",
        messages=messages,
        label="normal",
        source=source,
        case=f"n-{source}-{index}",
    )


def grooming_conversation(rng: random.Random, index: int, cases: int = 12) -> Conversation:
    n = rng.randint(4, 10)
    texts = [rng.choice(NORMAL_LINES["movies"]) for _ in range(n // 2)]
    texts += [rng.choice(GROOMING_LINES) for _ in range(n - len(texts))]
    messages = tuple(Message(author=f"u{1 + i % 2}", text=t) for i, t in enumerate(texts))
    return Conversation(
        id=f"g-{index}",
        messages=messages,
        label="grooming",
        source="synthetic-grooming",
        case=f"case-{index % cases}",
    )


def corpus(n_normal: int = 240, n_grooming: int = 60, seed: int = 0) -> list[Conversation]:
    rng = random.Random(seed)
    sources = list(NORMAL_LINES)
    conversations = [
        normal_conversation(rng, i, sources[i % len(sources)]) for i in range(n_normal)
    ]
    conversations += [grooming_conversation(rng, i) for i in range(n_grooming)]
    rng.shuffle(conversations)
    return conversations


def to_json(conversation: Conversation) -> dict[str, object]:
    record: dict[str, object] = {
        "id": conversation.id,
        "messages": [{"author": m.author, "text": m.text} for m in conversation.messages],
    }
    for key in ("label", "source", "case"):
        value = getattr(conversation, key)
        if value is not None:
            record[key] = value
    return record


def write_jsonl(path: Path, conversations: list[Conversation]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for conversation in conversations:
            handle.write(json.dumps(to_json(conversation)) + "\n")
    return path
