"""Canonical person identities (names, contact keys, documents) and the messy ways sources spell them.

Everything is vectorised: names come from small weighted lists, keys are composed with
pyarrow string kernels, and check digits are computed on digit matrices.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from c360.checkdigits import luhn_check_digits, prc_check_chars

# (surname, relative frequency); frequencies follow the published top-surname shares.
SURNAMES = [
    ("Wang", 7.1),
    ("Li", 7.9),
    ("Zhang", 6.8),
    ("Liu", 5.4),
    ("Chen", 4.5),
    ("Yang", 3.1),
    ("Huang", 2.2),
    ("Zhao", 2.1),
    ("Wu", 2.0),
    ("Zhou", 1.9),
    ("Xu", 1.3),
    ("Sun", 1.2),
    ("Ma", 1.2),
    ("Zhu", 1.1),
    ("Hu", 1.1),
    ("Guo", 1.0),
    ("He", 1.0),
    ("Gao", 0.9),
    ("Lin", 0.9),
    ("Luo", 0.8),
    ("Zheng", 0.8),
    ("Liang", 0.7),
    ("Xie", 0.6),
    ("Song", 0.6),
    ("Tang", 0.5),
    ("Han", 0.5),
    ("Feng", 0.5),
    ("Deng", 0.5),
    ("Cao", 0.5),
    ("Peng", 0.4),
    ("Zeng", 0.4),
    ("Xiao", 0.4),
    ("Tian", 0.4),
    ("Dong", 0.4),
    ("Yuan", 0.4),
    ("Pan", 0.4),
    ("Cai", 0.3),
    ("Jiang", 0.9),
    ("Yu", 0.6),
    ("Du", 0.3),
    ("Ye", 0.3),
    ("Cheng", 0.3),
    ("Wei", 0.3),
    ("Su", 0.3),
    ("Lu", 0.5),
    ("Ding", 0.3),
    ("Ren", 0.3),
    ("Shen", 0.3),
    ("Yao", 0.3),
    ("Qian", 0.2),
    ("Fan", 0.3),
    ("Fang", 0.3),
    ("Shi", 0.3),
    ("Jin", 0.3),
    ("Tan", 0.3),
    ("Bai", 0.2),
    ("Qin", 0.2),
    ("Kong", 0.15),
    ("Meng", 0.2),
]
# Wade-Giles / Cantonese spellings of the same family names.
ALT_SURNAME = {
    "Zhang": "Chang",
    "Xu": "Hsu",
    "Zhou": "Chou",
    "Qian": "Chien",
    "Chen": "Chan",
    "Wang": "Wong",
    "Li": "Lee",
    "Wu": "Woo",
    "Zhao": "Chao",
    "Liu": "Lau",
    "Lin": "Lam",
    "Guo": "Kwok",
    "Xie": "Hsieh",
    "Cai": "Tsai",
    "Zheng": "Cheng",
    "Jiang": "Chiang",
    "Huang": "Hwang",
    "Yang": "Yeung",
    "Zhu": "Chu",
    "Sun": "Suen",
    "Ma": "Mah",
    "He": "Ho",
    "Gao": "Kao",
    "Luo": "Law",
    "Liang": "Leung",
    "Song": "Sung",
    "Tang": "Tong",
    "Deng": "Teng",
    "Cao": "Tsao",
    "Peng": "Pang",
    "Zeng": "Tseng",
    "Xiao": "Hsiao",
    "Ye": "Yip",
    "Su": "Soo",
    "Lu": "Loo",
    "Qin": "Chin",
    "Jin": "Kam",
    "Kong": "Hung",
    "Hu": "Hoo",
}
FEMALE = [
    "Fang",
    "Na",
    "Min",
    "Jing",
    "Li",
    "Xiuying",
    "Yan",
    "Juan",
    "Xia",
    "Ping",
    "Hong",
    "Yu",
    "Ling",
    "Mei",
    "Lan",
    "Ting",
    "Xue",
    "Qian",
    "Hui",
    "Yun",
    "Dan",
    "Jie",
    "Yang",
    "Xiaoyan",
    "Guiying",
    "Xiulan",
    "Yuying",
    "Lili",
    "Jingjing",
    "Hua",
    "Qing",
    "Wen",
    "Yue",
    "Ying",
    "Xin",
    "Shu",
    "Ning",
]
MALE = [
    "Wei",
    "Qiang",
    "Lei",
    "Jun",
    "Yong",
    "Jie",
    "Tao",
    "Ming",
    "Chao",
    "Gang",
    "Hui",
    "Jian",
    "Peng",
    "Hao",
    "Bo",
    "Bin",
    "Hua",
    "Ping",
    "Long",
    "Fei",
    "Kai",
    "Xin",
    "Yu",
    "Dong",
    "Lin",
    "Feng",
    "Jianhua",
    "Jianguo",
    "Zhiqiang",
    "Haiyang",
    "Zhiwei",
    "Jianjun",
    "Wenbo",
    "Yifan",
    "Zihao",
    "Haoran",
    "Junjie",
    "Xiaoming",
    "Guoqiang",
    "Hongwei",
]

# (city, region, postcode prefix, resident-id area prefix, weight)
CITIES = [
    ("Beijing", "Beijing", 100, 1101, 8),
    ("Shanghai", "Shanghai", 200, 3101, 9),
    ("Guangzhou", "Guangdong", 510, 4401, 6),
    ("Shenzhen", "Guangdong", 518, 4403, 6),
    ("Dongguan", "Guangdong", 523, 4419, 3),
    ("Foshan", "Guangdong", 528, 4406, 3),
    ("Hangzhou", "Zhejiang", 310, 3301, 5),
    ("Ningbo", "Zhejiang", 315, 3302, 2),
    ("Wenzhou", "Zhejiang", 325, 3303, 2),
    ("Nanjing", "Jiangsu", 210, 3201, 4),
    ("Suzhou", "Jiangsu", 215, 3205, 4),
    ("Wuxi", "Jiangsu", 214, 3202, 2),
    ("Chengdu", "Sichuan", 610, 5101, 6),
    ("Chongqing", "Chongqing", 400, 5001, 6),
    ("Wuhan", "Hubei", 430, 4201, 5),
    ("Xi'an", "Shaanxi", 710, 6101, 4),
    ("Tianjin", "Tianjin", 300, 1201, 5),
    ("Changsha", "Hunan", 410, 4301, 3),
    ("Zhengzhou", "Henan", 450, 4101, 4),
    ("Jinan", "Shandong", 250, 3701, 3),
    ("Qingdao", "Shandong", 266, 3702, 3),
    ("Shenyang", "Liaoning", 110, 2101, 3),
    ("Dalian", "Liaoning", 116, 2102, 2),
    ("Harbin", "Heilongjiang", 150, 2301, 3),
    ("Changchun", "Jilin", 130, 2201, 2),
    ("Kunming", "Yunnan", 650, 5301, 3),
    ("Xiamen", "Fujian", 361, 3502, 2),
    ("Fuzhou", "Fujian", 350, 3501, 2),
    ("Hefei", "Anhui", 230, 3401, 3),
    ("Nanchang", "Jiangxi", 330, 3601, 2),
    ("Shijiazhuang", "Hebei", 50, 1301, 3),
    ("Taiyuan", "Shanxi", 30, 1401, 2),
    ("Nanning", "Guangxi", 530, 4501, 2),
    ("Guiyang", "Guizhou", 550, 5201, 2),
    ("Urumqi", "Xinjiang", 830, 6501, 1),
    ("Haikou", "Hainan", 570, 4601, 1),
    ("Lanzhou", "Gansu", 730, 6201, 1),
    ("Hohhot", "Inner Mongolia", 10, 1501, 1),
]
EMAIL_DOMAINS = [
    ("qq.com", 30),
    ("163.com", 18),
    ("126.com", 8),
    ("gmail.com", 8),
    ("outlook.com", 6),
    ("sina.com", 5),
    ("hotmail.com", 5),
    ("foxmail.com", 5),
    ("139.com", 3),
    ("aliyun.com", 3),
    ("sohu.com", 3),
    ("yahoo.com", 2),
    ("icloud.com", 4),
]
MOBILE_PREFIXES = [
    130,
    131,
    132,
    133,
    135,
    136,
    137,
    138,
    139,
    147,
    150,
    151,
    152,
    153,
    155,
    156,
    157,
    158,
    159,
    166,
    170,
    176,
    177,
    178,
    180,
    181,
    182,
    183,
    185,
    186,
    187,
    188,
    189,
    191,
    198,
    199,
]


def weighted(rng: np.random.Generator, weights, n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def zipf_weights(n: int, s: float = 0.9) -> np.ndarray:
    return 1.0 / np.arange(1, n + 1) ** s


def take(values: list[str], idx: np.ndarray) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(idx))


def labels(values: list[str] | pa.Array, idx: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """``values[idx]`` (null where ``null``) as a dictionary array for a file column: the strings
    are spelled out by the writer's cast, on the writer thread."""
    if not isinstance(values, pa.Array):
        values = pa.array(values, pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(idx, dtype=np.int32), mask=null), values)


def join(*parts, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def padded(numbers: np.ndarray, width: int, prefix: str = "") -> pa.Array:
    """Zero-padded decimal strings with a prefix, e.g. padded([123], 7, "U") -> U0000123."""
    x = np.asarray(numbers, dtype=np.int64)
    head = prefix.encode()
    if len(x) and x.min() >= 0 and x.max() < 10**width and len(x) * (len(head) + width) < 2**31:
        return fixed_width(x, width, head)
    s = pc.utf8_lpad(pc.cast(pa.array(x), pa.string()), width, "0")
    return join(prefix, s) if prefix else s


def fixed_width(x: np.ndarray, width: int, head: bytes) -> pa.Array:
    """Every value written into its own ``head`` + ``width``-digit row of a byte matrix, which then
    is the string array's data as it stands (row i starts at i * row length)."""
    n, w = len(x), len(head) + width
    out = np.empty((n, w), dtype=np.uint8)
    out[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    v = x.copy()
    for k in range(w - 1, len(head) - 1, -1):
        out[:, k] = v % 10 + 48
        v //= 10
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out))


def sorted_unique(x: np.ndarray) -> np.ndarray:
    """np.unique for integers by a plain sort (numpy 2's hashing np.unique is ~20x slower here)."""
    s = np.sort(x)
    keep = np.ones(len(s), dtype=bool)
    keep[1:] = s[1:] != s[:-1]
    return s[keep]


def unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """n distinct random integers in [low, high), in random order."""
    out = sorted_unique(rng.integers(low, high, size=int(n * 1.1) + 16))
    while len(out) < n:
        out = sorted_unique(np.concatenate([out, rng.integers(low, high, size=n)]))
    return rng.permutation(out)[:n]


def digits_to_strings(digits: np.ndarray) -> pa.Array:
    """Rows of a uint8 ASCII matrix -> strings."""
    n, w = digits.shape
    data = np.ascontiguousarray(digits.astype(np.uint8))
    offsets = np.arange(0, (n + 1) * w, w, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def digit_matrix(values: np.ndarray, width: int) -> np.ndarray:
    p = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (np.asarray(values, dtype=np.int64)[:, None] // p) % 10


def national_ids(area: np.ndarray, birth: np.ndarray, male: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """18-character PRC resident ids: area(6) + birth date(8) + sequence(3, odd = male) + check."""
    b = birth.astype("datetime64[D]")
    y = b.astype("datetime64[Y]").astype(int) + 1970
    m = b.astype("datetime64[M]").astype(int) % 12 + 1
    d = (b - b.astype("datetime64[M]")).astype(int) + 1
    seq = rng.integers(0, 500, size=len(area)) * 2 + male.astype(int)
    body = np.hstack([digit_matrix(area, 6), digit_matrix(y * 10000 + m * 100 + d, 8), digit_matrix(seq, 3)])
    check = prc_check_chars(body)
    return digits_to_strings(np.hstack([body + 48, check[:, None]]))


def bank_cards(rng: np.random.Generator, n: int) -> pa.Array:
    """Luhn-valid card numbers, 16-19 digits, mostly UnionPay (62...)."""
    lengths = np.array([16, 17, 18, 19])[weighted(rng, [6, 1, 1, 4], n)]
    parts, rows = [], []
    for length in (16, 17, 18, 19):
        idx = np.flatnonzero(lengths == length)
        body = rng.integers(0, 10, size=(len(idx), length - 1))
        issuer = weighted(rng, [7, 2, 1], len(idx))
        body[:, 0] = np.where(issuer == 0, 6, np.where(issuer == 1, 4, 5))
        body[issuer == 0, 1] = 2
        full = np.hstack([body, luhn_check_digits(body)[:, None]]) + 48
        parts.append(digits_to_strings(full))
        rows.append(idx)
    # Back from length groups to person order: row i of the output is where person i landed.
    where = np.empty(n, dtype=np.int64)
    where[np.concatenate(rows)] = np.arange(n)
    return pa.concat_arrays(parts).take(pa.array(where))


def mobile_numbers(rng: np.random.Generator, n: int) -> pa.Array:
    prefix = np.array(MOBILE_PREFIXES)[rng.integers(0, len(MOBILE_PREFIXES), size=n)]
    nums = prefix.astype(np.int64) * 10**8 + unique_ints(rng, n, 0, 10**8)
    return pc.cast(pa.array(nums), pa.string())


def email_addresses(rng, first: pa.Array, last: pa.Array, birth_year: np.ndarray) -> pa.Array:
    """Lower-case name-based emails, unique per person."""
    n = len(first)
    f, l_ = pc.utf8_lower(first), pc.utf8_lower(last)
    initial = pc.utf8_slice_codeunits(f, 0, 1)
    local = pc.choose(
        pa.array(weighted(rng, [4, 3, 2, 2, 1, 1], n)),
        join(f, ".", l_),
        join(f, l_),
        join(l_, f),
        join(initial, l_),
        join(l_, ".", f),
        join(f, "_", l_),
    )
    style = weighted(rng, [3, 3, 2], n)
    year2 = pc.cast(pa.array(birth_year % 100 + 100), pa.string())
    suffix = pc.choose(
        pa.array(style),
        pa.array([""] * n),
        pc.cast(pa.array(rng.integers(1, 1000, size=n)), pa.string()),
        pc.utf8_slice_codeunits(year2, 1, 3),
    )
    local = join(local, suffix)
    domain = take([d for d, _ in EMAIL_DOMAINS], weighted(rng, [w for _, w in EMAIL_DOMAINS], n))
    emails = join(local, "@", domain)
    # Namesakes collide: give every later holder of an address a unique number. Dictionary codes
    # count up in order of first appearance, so a row repeats an earlier address exactly when its
    # code is not above every code before it.
    codes = emails.dictionary_encode().indices.to_numpy()
    dup = np.zeros(n, dtype=bool)
    dup[1:] = codes[1:] <= np.maximum.accumulate(codes)[:-1]
    if dup.any():
        idx = np.flatnonzero(dup)
        fixed = join(
            pc.utf8_lower(first.take(pa.array(idx))),
            pc.utf8_lower(last.take(pa.array(idx))),
            pc.cast(pa.array(idx + 10_000), pa.string()),
            "@",
            domain.take(pa.array(idx)),
        )
        emails = pc.replace_with_mask(emails, pa.array(dup), fixed)
    return emails


def by_style(style: np.ndarray, values: pa.Array, variants: list) -> pa.Array:
    """``pc.choose(style, *(f(values) for f in variants))``, but each variant is computed only on
    the rows that use it (most layouts are rare, and joins over every row dominated)."""
    style = np.asarray(style).astype(np.uint8)
    order = np.argsort(style, kind="stable")
    bounds = np.searchsorted(style[order], np.arange(len(variants) + 1))
    parts = [f(values.take(pa.array(order[lo:hi]))) for f, lo, hi in zip(variants, bounds[:-1], bounds[1:])]
    back = np.empty(len(style), dtype=np.int64)
    back[order] = np.arange(len(style))
    return pa.concat_arrays([p.cast(pa.string()) for p in parts]).take(pa.array(back))


def email_variants(emails: pa.Array, rng: np.random.Generator, clean_share: float = 0.6) -> pa.Array:
    """Same addresses with random upper-casing and stray spaces (valid after trim + lower)."""
    n = len(emails)
    rest = (1 - clean_share) / 5
    style = weighted(rng, [clean_share, rest * 1.5, rest * 1.5, rest, rest, rest * 0.5][:6], n)
    return by_style(
        style,
        emails,
        [
            lambda e: e,
            pc.utf8_upper,
            pc.utf8_capitalize,
            lambda e: join(" ", e),
            lambda e: join(e, "  "),
            lambda e: join(" ", pc.utf8_swapcase(pc.utf8_capitalize(e)), " "),
        ],
    )


def phone_variants(phones: pa.Array, rng: np.random.Generator, clean_share: float = 0.4) -> pa.Array:
    """13812345678 in the seven layouts people and tills use (valid after stripping +86/0086)."""
    n = len(phones)
    rest = (1 - clean_share) / 6

    def parts(x: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
        return tuple(pc.utf8_slice_codeunits(x, i, j) for i, j in ((0, 3), (3, 7), (7, 11)))

    def spaced(x: pa.Array, head: str, sep: str) -> pa.Array:
        a, b, c = parts(x)
        return join(head, a, sep, b, sep, c)

    style = weighted(rng, [clean_share] + [rest] * 6, n)
    return by_style(
        style,
        phones,
        [
            lambda x: x,
            lambda x: spaced(x, "+86 ", " "),
            lambda x: spaced(x, "+86-", "-"),
            lambda x: spaced(x, "", "-"),
            lambda x: spaced(x, "", " "),
            lambda x: join("0086 ", x),
            lambda x: join("(+86)", x),
        ],
    )


def invalid_emails(emails: pa.Array, rng: np.random.Generator) -> pa.Array:
    """Broken addresses: no domain, no @, no TLD, or a space inside."""
    local = pc.extract_regex(emails, r"(?P<l>[^@]*)@(?P<d>[^.]*)\.(?P<t>.*)")
    l_, d, t = (pc.struct_field(local, i) for i in range(3))
    style = rng.integers(0, 4, size=len(emails))
    return pc.choose(
        pa.array(style),
        join(l_, "@"),
        join(l_, ".", d, ".", t),
        join(l_, "@", d),
        join(pc.utf8_replace_slice(l_, 1, 1, " "), "@", d, ".", t),
    )


def invalid_phones(phones: pa.Array, rng: np.random.Generator) -> pa.Array:
    style = rng.integers(0, 4, size=len(phones))
    n = len(phones)
    return pc.choose(
        pa.array(style),
        pc.utf8_slice_codeunits(phones, 0, 6),
        pa.array(["phone: n/a"] * n),
        join(pc.utf8_slice_codeunits(phones, 0, 3), "-", pc.utf8_slice_codeunits(phones, 3, 7)),
        join("+86 ", pc.utf8_slice_codeunits(phones, 0, 9)),
    )


def name_typos(names: pa.Array, rng: np.random.Generator) -> pa.Array:
    """One character substituted or dropped (never the first letter, so initials survive)."""
    arr = np.asarray(names.to_numpy(zero_copy_only=False)).astype("U20")
    n = len(arr)
    codes = arr.view(np.uint32).reshape(n, 20).copy()
    length = (codes > 0).sum(axis=1)
    pos = 1 + (rng.random(n) * np.maximum(length - 1, 1)).astype(int)
    pos = np.minimum(pos, np.maximum(length - 1, 0))
    drop = (rng.random(n) < 0.5) & (length > 3)
    rows = np.arange(n)
    letters = np.frombuffer(b"aeiounghrs", dtype=np.uint8).astype(np.uint32)
    sub = letters[rng.integers(0, len(letters), size=n)]
    sub = np.where(sub == codes[rows, pos], letters[0] + (sub == letters[0]) * 4, sub)
    codes[rows[~drop], pos[~drop]] = sub[~drop]
    shifted = np.zeros_like(codes)
    cols = np.arange(20)
    keep = cols[None, :] < pos[:, None]
    shifted[keep] = codes[keep]
    tail = np.zeros_like(codes)
    tail[:, :-1] = codes[:, 1:]
    after = cols[None, :] >= pos[:, None]
    shifted[after] = tail[after]
    codes = np.where(drop[:, None], shifted, codes)
    out = codes.view("U20").ravel()
    return pa.array(out.astype(object), pa.string())


def alt_surnames(last: pa.Array) -> pa.Array:
    keys = pa.array(list(ALT_SURNAME), pa.string())
    idx = pc.index_in(last, value_set=keys)
    alts = pa.array(list(ALT_SURNAME.values()), pa.string()).take(pc.fill_null(idx, 0))
    return pc.if_else(pc.is_null(idx), last, alts)
