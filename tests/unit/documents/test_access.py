"""Documents' access lists: as JSON, and from the corpus folder's rules."""

import pytest

from kb.documents.access import FolderAccess
from kb.documents.document import content_hash
from kb.documents.readers import parse_record
from kb.errors import UnreadableDocument


def test_access_is_read_sorted_and_checked():
    assert parse_record({"text": "x", "access": ["b", "a", "b"]}, "line 1").access == ("a", "b")
    assert parse_record({"text": "x", "access": []}, "line 1").access == ()
    assert parse_record({"text": "x"}, "line 1").access is None  # the folder's rule then
    for wrong in ("hr", [""], ["has space"], [5], ["x"] * 51):
        with pytest.raises(UnreadableDocument, match="access"):
            parse_record({"text": "x", "access": wrong}, "line 1")


def test_a_public_document_keeps_the_hash_it_always_had_and_access_changes_it():
    assert content_hash("T", "text", {}) == content_hash("T", "text", {}, ())
    assert content_hash("T", "text", {}, ("hr",)) != content_hash("T", "text", {})


def test_the_most_specific_folder_rule_wins(tmp_path):
    (tmp_path / ".kb-access").write_text("# a comment\nhr: hr\nhr/open: *\nlegal/contracts/: legal, sales  # x\n")
    rules = FolderAccess.read(tmp_path)
    assert rules.access_of("hr/pay.txt") == ("hr",) and rules.access_of("hr/open/leave.md") == ()
    assert rules.access_of("hr/deeper/x.md") == ("hr",) and rules.access_of("legal/contracts/a.pdf") == ("legal", "sales")
    assert rules.access_of("legal/other.md") == () and rules.access_of("top.md") == () and rules.access_of("hrx/a.md") == ()
    assert FolderAccess.read(tmp_path / "none").rules == ()


@pytest.mark.parametrize("line", ["hr", "hr:", ": hr", "../up: hr", ".kb: hr", "hr: bad group"])
def test_a_rule_kb_cannot_read_names_its_line(tmp_path, line):
    (tmp_path / ".kb-access").write_text(f"ok: fine\n{line}\n")
    with pytest.raises(UnreadableDocument, match="line 2"):
        FolderAccess.read(tmp_path)
