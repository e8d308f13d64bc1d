# ruff: noqa: RUF001  (CJK punctuation in literals is intended)
"""PII redaction: exact rewritten text and per-kind counts, English and Chinese."""

from prepflow.operators.text.pii import PiiRedactor, cn_id_ok, luhn_ok


def test_redacts_each_kind_and_counts_it(run):
    out = run(
        PiiRedactor(),
        [
            "Mail bob.smith@example.co.uk or call +1 415-555-0132 / (212) 555-0198. "
            "Card 4111 1111 1111 1111, not 4111 1111 1111 1112. SSN 123-45-6789. "
            "Server 192.168.0.1 and 2001:db8::8a2e:370:7334. Years 1999-2024, v3.10.2.",
            "手机13812345678，身份证11010519491231002X，不是110105194912310021，"
            "邮箱 zhang@qq.com 座机 010-62345678",
            None,
        ],
    ).kept
    assert out.column("text").to_pylist() == [
        "Mail <EMAIL> or call <PHONE> / <PHONE>. Card <CREDIT_CARD>, not 4111 1111 1111 1112. "
        "SSN <NATIONAL_ID>. Server <IP> and <IP>. Years 1999-2024, v3.10.2.",
        "手机<PHONE>，身份证<NATIONAL_ID>，不是110105194912310021，邮箱 <EMAIL> 座机 <PHONE>",
        None,
    ]
    assert out.column("pii_counts").to_pylist() == [
        {"email": 1, "national_id": 1, "credit_card": 1, "ip": 2, "phone": 2},
        {"email": 1, "national_id": 1, "credit_card": 0, "ip": 0, "phone": 2},
        {"email": 0, "national_id": 0, "credit_card": 0, "ip": 0, "phone": 0},
    ]


def test_kinds_and_placeholder_are_parameters(run):
    out = run(PiiRedactor(kinds=["email"], placeholder="[{kind}]"), ["a@b.io at 10.0.0.1"]).kept
    assert out.column("text").to_pylist() == ["[email] at 10.0.0.1"]
    assert out.column("pii_counts").to_pylist() == [{"email": 1}]


def test_checksums():
    assert luhn_ok("4111 1111 1111 1111") and not luhn_ok("4111 1111 1111 1112")
    assert cn_id_ok("11010519491231002X") and not cn_id_ok("110105194912310021")
