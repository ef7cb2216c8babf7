"""Write the small synthetic datasets under data/samples/ (quickstart, docs, tests).

Deterministic: rerunning rewrites byte-identical files. Sentences are built from templates with
topic words, so a model can learn them in seconds, while shared filler words keep it honest.
"""

import random
from pathlib import Path

TOPICS = {
    "sports": ["match", "goal", "team", "coach", "league", "referee", "striker", "season", "tennis", "final"],
    "weather": ["rain", "storm", "sunny", "forecast", "wind", "snow", "cloudy", "temperature", "fog", "humid"],
    "food": ["recipe", "pasta", "soup", "bake", "spicy", "dessert", "bread", "cheese", "dinner", "salad"],
    "tech": ["laptop", "software", "battery", "phone", "update", "screen", "server", "keyboard", "app", "chip"],
}
TEMPLATES = [
    "what do you think about the {a} and the {b} ?",
    "the {a} was great but the {b} was not",
    "i read a long story about {a} , {b} and more",
    "is the new {a} better than the old {b} ?",
    "my friend told me the {a} ruined the {b} today",
    "nobody expected the {a} to change the {b} so much",
    "{a} {b} {c}",
    "tell me more about the {a} please",
]


def sentence(rng: random.Random, words: list[str]) -> str:
    a, b, c = rng.sample(words, 3)
    return rng.choice(TEMPLATES).format(a=a, b=b, c=c)


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows), encoding="utf-8")


def main() -> None:
    rng = random.Random(7)
    here = Path(__file__).parent
    for split, per_topic in (("train", 150), ("dev", 30)):
        rows = [(t, sentence(rng, w)) for t, w in TOPICS.items() for _ in range(per_topic)]
        rng.shuffle(rows)
        write(here / "quickstart" / f"{split}.tsv", rows)
    inputs = [sentence(rng, w) for w in TOPICS.values() for _ in range(2)]
    rng.shuffle(inputs)
    (here / "quickstart" / "input.txt").write_text("\n".join(inputs) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
