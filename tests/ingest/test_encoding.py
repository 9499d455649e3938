"""Telling a landing file's encoding: the byte scan, the plausibility choice, the UTF-8 copy."""

import hashlib

import pytest

from c360.ingest import encoding
from c360.ingest.encoding import CP1252, GB18030, UTF8, UTF8_SIG, UndecodableFile

LATIN = "name,city\nRenée,Zürich\nMüller,São Paulo\nMuñoz,Conceição\nAurélien,Málaga\n"
CHINESE = "name,city\n张伟,北京\n李娜,上海市\n王芳,广州\n刘洋,深圳\n"


def _file(tmp_path, data: bytes, name="f.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_latin1_bytes_that_gb18030_also_decodes_are_read_as_windows_1252(tmp_path):
    data = LATIN.encode("cp1252")
    assert data.decode(GB18030) != LATIN  # decodes without an error, into the wrong text
    path = _file(tmp_path, data)
    assert encoding.choose_encoding(path, encoding.scan_bytes(path)) == CP1252


def test_gb18030_bytes_that_windows_1252_also_decodes_are_read_as_gb18030(tmp_path):
    data = CHINESE.encode(GB18030)
    assert data.decode(CP1252) != CHINESE
    path = _file(tmp_path, data)
    assert encoding.choose_encoding(path, encoding.scan_bytes(path)) == GB18030


def test_a_single_chinese_character_field_reads_as_gb18030(tmp_path):
    path = _file(tmp_path, "gender,city\n男,x\n女,y\n".encode(GB18030))
    assert encoding.choose_encoding(path, encoding.scan_bytes(path)) == GB18030


def test_scan_finds_the_first_invalid_utf8_byte_across_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "CHUNK", 7)
    text = "a,b\n" + "伟" * 10 + "\n"
    valid = _file(tmp_path, text.encode(), "valid.csv")
    scan = encoding.scan_bytes(valid)
    assert scan.utf8 and scan.checksum == hashlib.sha256(valid.read_bytes()).hexdigest()
    broken = _file(tmp_path, b"\xef\xbb\xbf" + text.encode()[:-4] + b"\xe4\xbc" + b"x\n", "broken.csv")
    assert encoding.scan_bytes(broken).first_non_utf8 == 3 + len(text.encode()) - 4
    truncated = _file(tmp_path, text.encode() + b"\xe4\xbc", "truncated.csv")
    assert encoding.scan_bytes(truncated).first_non_utf8 == len(text.encode())


def test_scan_counts_nul_bytes_and_sees_a_byte_order_mark(tmp_path):
    scan = encoding.scan_bytes(_file(tmp_path, b"\xef\xbb\xbfa,b\n1,\x002\n\x00"))
    assert (scan.bom, scan.nul_bytes, scan.utf8) == (True, 2, True)
    path = _file(tmp_path, b"\xef\xbb\xbfa,b\n", "bom.csv")
    assert encoding.choose_encoding(path, encoding.scan_bytes(path)) == UTF8_SIG


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("a,b\n1,2\n".encode("utf-16"), "UTF-16 byte-order mark"),
        (b"PK\x03\x04" + b"\x00" * 40, "ZIP archive"),
        ("a,b\n1,2\n".encode("utf-16-le"), "UTF-16 without a byte-order mark"),
        (b"a,b\n" + bytes(range(128, 256)), "byte offset 4 is not UTF-8"),
    ],
)
def test_what_is_not_text_is_rejected_with_a_reason(tmp_path, data, problem):
    path = _file(tmp_path, data)
    with pytest.raises(UndecodableFile) as err:
        encoding.choose_encoding(path, encoding.scan_bytes(path))
    assert problem in err.value.problem


def test_the_utf8_copy_is_decoded_in_chunks_cut_at_line_breaks(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "CHUNK", 5)
    text = CHINESE + "没有换行"  # the last line has no line break
    src = _file(tmp_path, text.replace("\n", "\0\n", 2).encode(GB18030))
    dest = tmp_path / "out.csv"
    assert encoding.transcode(src, GB18030, dest) == 2
    assert dest.read_text(encoding=UTF8) == text
