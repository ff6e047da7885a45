"""The plain read beside staging: SHA-256, size, and line endings counted across block boundaries."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nto_etl import export_scan
from nto_etl.export_scan import scan_export


@pytest.mark.parametrize("tail_bytes", [1, 4096], ids=["tail of 1 byte", "whole block as tail"])
@pytest.mark.parametrize("block_bytes", [1, 2, 3, 7, 1024])
def test_counts_do_not_depend_on_where_blocks_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int, tail_bytes: int
) -> None:
    data = b'a,b\r\n1,"x\r\ny"\r\n2,"bare\rreturn"\n3,z\r\r\n\n\r\n'
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    monkeypatch.setattr(export_scan, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(export_scan, "TAIL_BYTES", tail_bytes)  # where a block's text ends is looked for
    scan = scan_export(str(path), {})
    assert scan.sha256 == hashlib.sha256(data).hexdigest()
    assert scan.size == len(data)
    assert scan.line_feeds == data.count(b"\n") == 7
    assert scan.bare_returns == 2  # "bare\rreturn" and the first CR of "\r\r\n"
    assert scan.trailing_line_feeds == 3


@pytest.mark.parametrize(
    ("data", "records", "extra"),
    [
        (b"a,b\n1,x\n2,y\n", 2, 0),
        (b"a,b\r\n1,x\r\n2,y\r\n", 2, 0),
        (b"a,b\n1,x\n2,y", 2, 0),  # no line feed after the last record
        (b"a,b\n", 0, 0),
        (b"a,b", 0, 0),
        (b'a,b\n1,"x\ny"\n2,"\n\n"', 2, 3),  # line feeds inside values
        (b"a,b\n1,x\n\n2,y\n", 2, 1),  # a blank line
        (b"a,b\r\n1,x\r\n2,y\r\n\r\n\r\n", 2, 0),  # blank lines at the end number no record
        (b'a,b\n1,"x\n\n"\n\n', 1, 2),  # line feeds ending a value are not blank lines
        (b"a,b\n\n\n", 0, 0),
        (b'a,b\r1,"x\ny"\r', 1, None),  # lines ended by bare CRs: the count says nothing
    ],
)
def test_extra_line_feeds_are_those_not_ending_a_record(
    tmp_path: Path, data: bytes, records: int, extra: int | None
) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    assert scan_export(str(path), {}).extra_line_feeds(records) == extra


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_export(str(tmp_path / "nowhere.csv"), {})
