"""The product catalogue, planted bundles, and how a person picks products."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.generate.identity import join, padded, take

# (category, share of the catalogue, median price, price sigma, brands, product nouns)
CATEGORIES = [
    (
        "electronics",
        10,
        899,
        0.9,
        ["Xiaomi", "Huawei", "Lenovo", "Anker", "OPPO", "vivo"],
        ["Smart Speaker", "Power Bank", "Earbuds", "Tablet", "Smart Watch", "Router", "Monitor", "Phone"],
    ),
    (
        "fashion",
        14,
        199,
        0.6,
        ["Li-Ning", "Bosideng", "Uniqlo", "Semir", "Peacebird", "Metersbonwe"],
        ["Down Jacket", "T-Shirt", "Jeans", "Hoodie", "Dress", "Sneakers", "Scarf", "Coat"],
    ),
    (
        "beauty",
        10,
        159,
        0.6,
        ["Proya", "Perfect Diary", "Herborist", "L'Oreal", "Florasis", "Chando"],
        ["Face Cream", "Serum", "Lipstick", "Sunscreen", "Cleanser", "Toner", "Eye Cream", "Mask Set"],
    ),
    (
        "grocery",
        14,
        39,
        0.6,
        ["Three Squirrels", "Bestore", "Yili", "Mengniu", "Master Kong", "Nongfu Spring"],
        [
            "Roasted Nuts, 500g",
            "Milk, 12 x 250ml",
            "Instant Noodles",
            "Green Tea",
            "Rice, 5kg",
            "Dried Fruit",
            "Sesame Oil",
            "Spring Water, 24 pack",
        ],
    ),
    (
        "home",
        10,
        129,
        0.8,
        ["Midea", "Supor", "Joyoung", "Haier", "Lock&Lock", "Deerma"],
        [
            "Rice Cooker",
            "Kettle",
            "Soymilk Maker",
            "Air Purifier",
            "Storage Box",
            "Wok",
            "Humidifier",
            "Vacuum",
        ],
    ),
    (
        "sports",
        7,
        229,
        0.7,
        ["Anta", "Xtep", "Decathlon", "Peak", "361 Degrees", "Li-Ning"],
        ["Running Shoes", "Yoga Mat", "Basketball", "Badminton Racket", "Dumbbells", "Jump Rope", "Gym Bag"],
    ),
    (
        "books",
        8,
        49,
        0.4,
        ["CITIC Press", "People's Literature", "Zhonghua Book", "Penguin", "Oxford UP"],
        ["Novel", "Cookbook", "History of China", "Poetry Collection", "Business Guide", "Children's Atlas"],
    ),
    (
        "toys",
        6,
        119,
        0.6,
        ["LEGO", "Pop Mart", "Bandai", "Hasbro", "Mattel"],
        ["Blind Box", "Building Set", "Puzzle", "Robot Kit", "Plush Panda", "Board Game"],
    ),
    (
        "baby",
        5,
        149,
        0.6,
        ["Feihe", "Babycare", "Pampers", "Goodbaby", "Beingmate"],
        ["Infant Formula", "Diapers", "Baby Wipes", "Stroller", "Bottle Set", "Baby Lotion"],
    ),
    (
        "pets",
        5,
        89,
        0.6,
        ["Royal Canin", "Myfoodie", "Pedigree", "Whiskas", "Navarch"],
        ["Cat Food, 2kg", "Dog Food", "Cat Litter", "Pet Treats", "Chew Toy", "Pet Shampoo"],
    ),
    (
        "health",
        6,
        99,
        0.6,
        ["Tong Ren Tang", "By-health", "Swisse", "Yunnan Baiyao", "Omron"],
        ["Vitamin C", "Fish Oil", "Blood Pressure Monitor", "Herbal Tea", "Protein Powder", "Thermometer"],
    ),
    (
        "outdoor",
        5,
        299,
        0.7,
        ["Toread", "Kailas", "Naturehike", "The North Face", "Camel"],
        ["Tent", "Hiking Boots", "Sleeping Bag", "Trekking Poles", "Rain Jacket", "Camping Lamp"],
    ),
]
CATEGORY_NAMES = [c[0] for c in CATEGORIES]
N_CATEGORIES = len(CATEGORIES)
REPURCHASE = {"grocery", "beauty", "pets", "baby", "health"}
ADJECTIVES = ["Classic", "Pro", "Lite", "Max", "Mini", "Plus", "Essential", "Premium", "Eco", "Smart"]
EVERGREEN_PER_CATEGORY = 10
GRID = 1 << 18  # cells of the popularity lookup grid (see Catalogue.locate)
N_FAVOURITES = 3


@dataclass
class Catalogue:
    product_id: pa.Array
    name: pa.Array
    category: np.ndarray  # int8
    brand: pa.Array
    price: np.ndarray  # float64, 2 decimals
    launch_day: np.ndarray  # horizon day (negative = before the horizon)
    disc_day: np.ndarray  # horizon day it stops being sold; huge when still sold
    quality: np.ndarray
    # Products grouped by category, most popular first, with per-category cumulative weights.
    by_cat: np.ndarray
    cat_start: np.ndarray
    cum_weight: np.ndarray
    bundles: list[tuple[int, ...]]

    @property
    def n(self) -> int:
        return len(self.price)

    def available(self, product: np.ndarray, day: np.ndarray) -> np.ndarray:
        return (self.launch_day[product] <= day) & (day < self.disc_day[product])

    @cached_property
    def _grid(self) -> tuple[float, np.ndarray, np.ndarray]:
        step = self.cum_weight[-1] / GRID
        edges = np.arange(GRID) * step
        return step, edges, np.searchsorted(self.cum_weight, edges, side="right")

    def locate(self, x: np.ndarray) -> np.ndarray:
        """``np.searchsorted(cum_weight, x, side="right")``, mostly by a grid lookup: a random
        binary search over the whole catalogue per draw was a hot spot. Where the grid cell of x
        holds a boundary the answer is searched as before, so the result is the same."""
        step, edges, first = self._grid
        n = len(self.cum_weight)
        cell = np.minimum((x / step).astype(np.int64), GRID - 1)
        cell = np.maximum(cell, 0)
        out = first[cell]
        ok = (edges[cell] <= x) & ((out == n) | (x < self.cum_weight[np.minimum(out, n - 1)]))
        miss = np.flatnonzero(~ok)
        out[miss] = np.searchsorted(self.cum_weight, x[miss], side="right")
        return out


def build_catalogue(rng: np.random.Generator, customers: int, horizon_days: int) -> Catalogue:
    n = int(np.clip(customers // 10, 500, 10_000))
    shares = np.array([c[1] for c in CATEGORIES], dtype=float)
    counts = np.maximum(np.floor(shares / shares.sum() * n).astype(int), 20)
    counts[np.argmax(counts)] += n - counts.sum()
    category = np.repeat(np.arange(N_CATEGORIES), counts).astype(np.int8)
    rank = np.concatenate([rng.permutation(c) for c in counts])  # popularity rank within category
    median = np.array([c[2] for c in CATEGORIES])[category]
    sigma = np.array([c[3] for c in CATEGORIES])[category]
    price = np.maximum(np.round(median * np.exp(rng.normal(0, sigma))), 2) - 0.1

    brand_lists = [c[4] for c in CATEGORIES]
    noun_lists = [c[5] for c in CATEGORIES]
    brand_flat = [b for bl in brand_lists for b in bl]
    noun_flat = [x for nl in noun_lists for x in nl]
    brand_off = np.cumsum([0] + [len(b) for b in brand_lists])[category]
    noun_off = np.cumsum([0] + [len(x) for x in noun_lists])[category]
    brand_n = np.array([len(b) for b in brand_lists])[category]
    noun_n = np.array([len(x) for x in noun_lists])[category]
    brand = take(brand_flat, brand_off + rng.integers(0, 1 << 30, n) % brand_n)
    noun = take(noun_flat, noun_off + rng.integers(0, 1 << 30, n) % noun_n)
    adj = take(ADJECTIVES, rng.integers(0, len(ADJECTIVES), n))
    model = pc.cast(pa.array(rng.integers(10, 999, n)), pa.string())
    name = join(brand, " ", adj, " ", noun, " ", model)
    # Some names say their pack size after a comma: quoting must cope.
    evergreen = rank < EVERGREEN_PER_CATEGORY
    launch = np.where(
        rng.random(n) < 0.75, rng.integers(-4 * 365, -30, n), rng.integers(0, horizon_days - 60, n)
    )
    launch = np.where(evergreen, np.minimum(launch, -60), launch)
    disc = np.full(n, 1 << 40, dtype=np.int64)
    can_stop = ~evergreen & (launch < horizon_days - 120)
    stop = np.flatnonzero(can_stop)[rng.random(can_stop.sum()) < 0.05 / can_stop.mean()]
    lo = np.maximum(launch[stop] + 60, 30)
    disc[stop] = lo + (rng.random(len(stop)) * (horizon_days - 1 - lo)).astype(int)

    order = np.lexsort((rank, category))
    weights = 1.0 / (rank[order] + 1.0) ** 0.9
    cat_start = np.concatenate([[0], np.cumsum(counts)])
    cum = np.cumsum(weights)

    bundles: list[tuple[int, ...]] = []
    n_bundles = int(np.clip(n // 100, 6, 60))
    for _ in range(n_bundles):
        size = 3 if rng.random() < 0.3 else 2
        cats = rng.choice(N_CATEGORIES, size=size, replace=False)
        bundles.append(
            tuple(int(order[cat_start[c] + rng.integers(0, EVERGREEN_PER_CATEGORY)]) for c in cats)
        )
    bundles = list(dict.fromkeys(bundles))

    return Catalogue(
        product_id=padded(np.arange(1, n + 1) + 100_000, 6, "P"),
        name=name,
        category=category,
        brand=brand,
        price=np.round(price, 2),
        launch_day=launch,
        disc_day=disc,
        quality=rng.normal(0, 1, n),
        by_cat=order,
        cat_start=cat_start,
        cum_weight=cum,
        bundles=bundles,
    )


def mix_hash(*keys: np.ndarray) -> np.ndarray:
    """A cheap deterministic 64-bit hash of integer columns (splitmix64 finaliser)."""
    h = np.full(len(keys[0]), 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in keys:
            h ^= np.asarray(k).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15) + (h << np.uint64(6))
            h ^= h >> np.uint64(30)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
    return h


def unit(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def choose_products(
    rng: np.random.Generator,
    cat: Catalogue,
    person: np.ndarray,
    day: np.ndarray,
    pref_cum: np.ndarray,
    value: np.ndarray,
) -> np.ndarray:
    """One product per (person, day): the person's category taste (``pref_cum``: running sums of
    each person's category shares), their favourites, popularity."""
    n = len(person)
    category = (rng.random(n)[:, None] > pref_cum[person]).sum(axis=1).clip(0, N_CATEGORIES - 1)
    size = cat.cat_start[category + 1] - cat.cat_start[category]
    repurchase = np.isin(category, [CATEGORY_NAMES.index(c) for c in REPURCHASE])
    fav = rng.random(n) < np.where(repurchase, 0.6, 0.25)
    k = rng.integers(0, N_FAVOURITES, n)
    fav_rank = (unit(mix_hash(person, category, k)) ** 2 * size).astype(int)
    out = cat.by_cat[cat.cat_start[category] + fav_rank]
    todo = ~fav | ~cat.available(out, day)
    for attempt in range(6):
        idx = np.flatnonzero(todo)
        if not len(idx):
            break
        c = category[idx]
        lo = np.where(cat.cat_start[c] > 0, cat.cum_weight[cat.cat_start[c] - 1], 0.0)
        hi = cat.cum_weight[cat.cat_start[c + 1] - 1]
        picks = []
        for _ in range(2):
            x = lo + rng.random(len(idx)) * (hi - lo)
            pos = np.minimum(cat.locate(x), cat.cat_start[c + 1] - 1)
            picks.append(cat.by_cat[pos])
        # Big spenders take the pricier of two candidates, thrifty ones the cheaper.
        pricier = np.where(cat.price[picks[0]] >= cat.price[picks[1]], picks[0], picks[1])
        cheaper = np.where(cat.price[picks[0]] >= cat.price[picks[1]], picks[1], picks[0])
        out[idx] = np.where(rng.random(len(idx)) < value[person[idx]], pricier, cheaper)
        todo[idx] = ~cat.available(out[idx], day[idx])
    idx = np.flatnonzero(todo)
    out[idx] = cat.by_cat[cat.cat_start[category[idx]]]  # the category's evergreen best seller
    return out
