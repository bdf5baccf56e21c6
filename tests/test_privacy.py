"""ID numbers (身份证号) are blanked wherever they appear; nothing else is touched."""

from __future__ import annotations

import json

import pytest

from hallwatch.privacy import MASK, mask_id_numbers, mask_id_numbers_text

ID18 = "110105194912310021"
ID18X = "11010519491231002X"
ID15 = "110105491231002"

TEXT_MASKED = [
    ("18 digits", f"证件 {ID18} 已核验", f"证件 {MASK * 18} 已核验"),
    ("X suffix", f"sfz:{ID18X}", f"sfz:{MASK * 18}"),
    ("x suffix, lower case", ID18X.lower(), MASK * 18),
    ("15 digits (old card)", f"旧证{ID15}。", f"旧证{MASK * 15}。"),
    ("6-8-4 with spaces", "110105 19491231 0021", MASK * 20),
    ("6-8-4 with hyphens", "110105-19491231-002X", MASK * 20),
    ("6-6-3 with hyphens", "110105-491231-002", MASK * 17),
    ("followed by letters", f"{ID18}abc", f"{MASK * 18}abc"),
    ("after letters", f"id{ID18X}", f"id{MASK * 18}"),
    ("in free text, twice", f"{ID18}和{ID15}", f"{MASK * 18}和{MASK * 15}"),
    ("in a repr", f"satisfaction code '{ID18X}' is", f"satisfaction code '{MASK * 18}' is"),
]

TEXT_KEPT = [
    ("mobile phone", "手机 13800000000"),
    ("ticket number", "A017"),
    ("ULID", "01JBZ3K7Q8R9S0T1V2W3X4Y5Z6"),
    ("timestamp", "20261102093000"),
    ("timestamp with millis (17 digits)", "20261102093000123"),
    ("19-digit number", "1101051949123100219"),
    ("bank-card-like 16 digits", "6222021234567890"),
    ("epoch ms", "1793585700000"),
    ("ISO time", "2026-11-02T09:30:00+08:00"),
]


@pytest.mark.parametrize(("text", "masked"), [(t, m) for _, t, m in TEXT_MASKED],
                         ids=[i for i, _, _ in TEXT_MASKED])  # fmt: skip
def test_text_id_numbers_are_masked(text: str, masked: str) -> None:
    assert mask_id_numbers_text(text) == masked
    assert mask_id_numbers(text.encode()) == masked.encode()  # not JSON: same rule on bytes


@pytest.mark.parametrize("text", [t for _, t in TEXT_KEPT], ids=[i for i, _ in TEXT_KEPT])
def test_non_id_numbers_are_left_alone(text: str) -> None:
    assert mask_id_numbers_text(text) == text
    assert mask_id_numbers(text.encode()) == text.encode()


JSON_MASKED = [
    ("sfzhm top level", {"sfzhm": ID18, "qhh": "A017"}, {"sfzhm": MASK * 18, "qhh": "A017"}),
    ("zjh nested", {"data": {"zjh": ID18X}}, {"data": {"zjh": MASK * 18}}),
    ("cardNo in a list", {"items": [{"cardNo": ID15}]}, {"items": [{"cardNo": MASK * 15}]}),
    (
        "certificateNo deep",
        {"a": {"b": [{"c": {"certificateNo": ID18}}]}},
        {"a": {"b": [{"c": {"certificateNo": MASK * 18}}]}},
    ),
    ("field holds a number", {"id_number": 110105194912310021}, {"id_number": MASK * 18}),
    ("field not ID-shaped", {"zjh": "A12345"}, {"zjh": MASK * 6}),
    ("ID in another field", {"note": f"证件{ID18}"}, {"note": f"证件{MASK * 18}"}),
    ("grouped ID in a field", {"memo": "110105 19491231 0021"}, {"memo": MASK * 20}),
]


@pytest.mark.parametrize(("data", "masked"), [(d, m) for _, d, m in JSON_MASKED],
                         ids=[i for i, _, _ in JSON_MASKED])  # fmt: skip
def test_json_id_number_fields_are_masked_at_any_depth(
    data: dict[str, object], masked: dict[str, object]
) -> None:
    out = mask_id_numbers(json.dumps(data, ensure_ascii=False).encode())
    assert json.loads(out) == masked


def test_json_without_id_numbers_is_returned_unchanged() -> None:
    raw = (
        b'{"qhh":"A017","tel":"13800000000","at":"20261102093000",'
        b'"id":"01JBZ3K7Q8R9S0T1V2W3X4Y5Z6"}'
    )
    assert mask_id_numbers(raw) == raw


def test_null_id_field_is_kept() -> None:
    assert json.loads(mask_id_numbers(b'{"sfzh": null}')) == {"sfzh": None}


def test_broken_json_is_masked_as_text() -> None:
    assert mask_id_numbers(f'{{"sfzh": "{ID18X}"'.encode()) == f'{{"sfzh": "{MASK * 18}"'.encode()
