"""English free text for service tickets and product reviews, assembled from varied templates.

Each text is opening + body + closing; a body may hold one ``{}`` slot (an item or a number).
Review text mostly matches the score, but some are sarcastic, mixed or mistyped on purpose.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.generate.identity import join, take

TICKET_BODIES = {
    "delivery": [
        "My parcel is {} days late and the tracking has not moved.",
        "Where is my order? It was supposed to arrive {} days ago.",
        "The courier left my package at the wrong address, can you check?",
        "Delivery was marked as done but I never received the {}.",
        "Could you tell me when my {} will be shipped?",
        "The box arrived damaged, the {} inside seems fine though.",
    ],
    "product": [
        "How do I set up the {}? The manual is only in one language.",
        "Is the {} compatible with the older model?",
        "The {} stopped working after a week, is it covered by warranty?",
        "Can you send me the size chart for the {}?",
        "The colour of the {} is different from the picture.",
        "Do you plan to restock the {}?",
    ],
    "account": [
        "I cannot log in to my account, the code never arrives.",
        "Please update the phone number on my account.",
        "How do I change my email address?",
        "I was charged twice, please check my account.",
        "Please merge my two accounts, I registered twice by mistake.",
        "My loyalty points from last month are missing.",
    ],
    "refund": [
        "I want a refund for the {}, it arrived broken.",
        "Please refund me, the {} does not work at all.",
        "I returned the {} {} days ago and still no refund.",
        "Refund please. The {} is not what was described.",
        "You promised a refund two weeks ago, where is my money?",
        "I cancelled the order but I was still charged for the {}.",
    ],
    "complaint": [
        "This is the third time I contact you about the {} and nobody answers.",
        "Very disappointed with your service, I will not shop here again.",
        "Your support agent hung up on me. Unacceptable.",
        "The {} was fake, I am really angry about this.",
        "Worst shopping experience ever, {} days waiting and no solution.",
        "I am tired of the delays and the rude replies, I am closing my account.",
    ],
}
TICKET_OPEN_CALM = ["Hi,", "Hello,", "Hello team,", "Dear support,", "", "Good morning,"]
TICKET_OPEN_ANGRY = ["", "Hello,", "Seriously,", "Listen,", "To whom it may concern:", "Again!"]
TICKET_CLOSE_CALM = ["Thanks.", "Thank you!", "Regards", "", "Thanks in advance.", "Have a nice day."]
TICKET_CLOSE_ANGRY = [
    "Please fix this now!",
    "This is unacceptable.",
    "",
    "I want an answer today.",
    "Very unhappy.",
    "Do something!",
]

REVIEW_POSITIVE = [
    "Great {}, exactly as described.",
    "Love it! The {} works perfectly.",
    "Excellent quality, fast delivery.",
    "Very happy with this {}, will buy again.",
    'Good value for money, "highly" recommended.',
    "Five stars, my family loves the {}.",
    "Works as expected, nice packaging.",
    "Better than I thought, the {} is solid.",
    "Fast shipping and great service.",
    "Perfect, no complaints.",
]
REVIEW_MIXED = [
    "The {} is okay, nothing special.",
    "Decent, but delivery was slow.",
    "Average quality for the price.",
    "Good {} but the packaging was damaged.",
    "Not bad, not great.",
    "It works, though the {} feels cheap.",
    "Fine for daily use, a bit overpriced.",
    "Some parts are good, others not so much.",
]
REVIEW_NEGATIVE = [
    "Terrible {}, broke after two days.",
    "Very disappointed, does not work.",
    "Poor quality, do not buy.",
    "The {} arrived damaged and support did not help.",
    "Waste of money.",
    "Worst purchase this year.",
    "Not as described, returning the {}.",
    "Cheap material, fell apart quickly.",
    "Awful, I want my money back.",
]
REVIEW_SARCASTIC = [
    "Great, another {} that broke after two days. Just perfect.",
    "Wonderful, the {} lasted almost a week. Amazing quality.",
    "Love waiting three weeks for a {} that does not work.",
    "Five stars for creativity: they sent me the wrong {}.",
]
TYPOS = [
    ("the", "teh"),
    ("great", "graet"),
    ("very", "vrey"),
    ("quality", "qualty"),
    ("would", "woudl"),
    ("recommend", "recomend"),
    ("delivery", "delivry"),
]


def _fill(rng: np.random.Generator, templates: list[str], choice: np.ndarray, slot: pa.Array) -> pa.Array:
    """Template bodies with the first ``{}`` filled from ``slot`` and any second from a number."""
    pre = [t.split("{}")[0] for t in templates]
    mid = [t.split("{}")[1] if t.count("{}") >= 1 else "" for t in templates]
    post = [t.split("{}")[2] if t.count("{}") >= 2 else "" for t in templates]
    has1 = np.array([t.count("{}") >= 1 for t in templates])[choice]
    has2 = np.array([t.count("{}") >= 2 for t in templates])[choice]
    n = len(choice)
    num = pc.cast(pa.array(rng.integers(2, 15, n)), pa.string())
    s1 = pc.if_else(pa.array(has1), slot, "")
    s2 = pc.if_else(pa.array(has2), num, "")
    return join(take(pre, choice), s1, take(mid, choice), s2, take(post, choice))


def ticket_texts(
    rng: np.random.Generator, category: np.ndarray, categories: list[str], angry: np.ndarray, item: pa.Array
) -> pa.Array:
    n = len(category)
    flat, off = [], []
    for c in categories:
        off.append(len(flat))
        flat += TICKET_BODIES[c]
    sizes = np.array([len(TICKET_BODIES[c]) for c in categories])
    choice = np.array(off)[category] + rng.integers(0, 1 << 20, n) % sizes[category]
    body = _fill(rng, flat, choice, item)
    opening = pc.if_else(
        pa.array(angry),
        take(TICKET_OPEN_ANGRY, rng.integers(0, 6, n)),
        take(TICKET_OPEN_CALM, rng.integers(0, 6, n)),
    )
    closing = pc.if_else(
        pa.array(angry),
        take(TICKET_CLOSE_ANGRY, rng.integers(0, 6, n)),
        take(TICKET_CLOSE_CALM, rng.integers(0, 6, n)),
    )
    return pc.utf8_trim_whitespace(join(opening, " ", body, " ", closing))


def review_texts(rng: np.random.Generator, score: np.ndarray, item: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Review text for each score, and which tone was used (0 negative, 1 mixed, 2 positive, 3 sarcastic)."""
    n = len(score)
    tone = np.where(score <= 2, 0, np.where(score == 3, 1, 2))
    u = rng.random(n)
    # Noise: mismatched tone, sarcasm that reads positive, mixed text on a good score.
    tone = np.where((score <= 2) & (u < 0.10), 3, tone)
    tone = np.where((score <= 2) & (u >= 0.10) & (u < 0.15), 1, tone)
    tone = np.where((score >= 4) & (u < 0.07), 1, tone)
    tone = np.where((score >= 4) & (u >= 0.07) & (u < 0.10), 0, tone)
    tone = np.where((score == 3) & (u < 0.25), np.where(u < 0.12, 0, 2), tone)
    pools = [REVIEW_NEGATIVE, REVIEW_MIXED, REVIEW_POSITIVE, REVIEW_SARCASTIC]
    flat, off = [], []
    for p in pools:
        off.append(len(flat))
        flat += p
    sizes = np.array([len(p) for p in pools])
    choice = np.array(off)[tone] + rng.integers(0, 1 << 20, n) % sizes[tone]
    text = _fill(rng, flat, choice, item)
    typo = pa.array(rng.random(n) < 0.06)
    mistyped = text
    for right, wrong in TYPOS:
        mistyped = pc.replace_substring(mistyped, right, wrong, max_replacements=1)
    text = pc.if_else(typo, mistyped, text)
    return text, tone
