"""The corpus folder as a record: what kb reads in it, and durable writes that can be rolled back."""

import os
import subprocess

from kb.documents.folder import corpus_files, remove_file, tidy, write_file
from kb.documents.readers import Parsed
from kb.stores.record import Record, iso_time, time_ns


def files(root):
    return [relative for relative, _, _ in corpus_files(root)]


def test_kb_reads_the_users_files_and_its_own_but_nothing_else_hidden(tmp_path):
    for relative in ("a.txt", "notes/b.md", ".kb/documents/x.jsonl", ".kb/uploads/r.pdf", ".kb/.gitignore",
                     ".kb/.lock", ".git/c.txt", "notes/.d.txt", ".kb/documents/.x.jsonl.tmp-1-2",
                     ".kb/uploads/.r.pdf.undo-1-3", "picture.png", ".kb/elsewhere/e.txt"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    assert files(tmp_path) == [".kb/documents/x.jsonl", ".kb/uploads/r.pdf", "a.txt", "notes/b.md"]


def test_a_write_is_rolled_back_to_the_old_file_or_to_nothing(tmp_path):
    path = tmp_path / "doc.jsonl"
    new = write_file(path, b"first")
    new.rollback()
    assert not path.exists(), "a new file is gone again"
    path.write_bytes(b"old")
    changed = write_file(path, b"new")
    assert path.read_bytes() == b"new"
    changed.rollback()
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["doc.jsonl"], "the old bytes, no link left"
    write_file(path, b"kept").keep()
    assert path.read_bytes() == b"kept" and os.listdir(tmp_path) == ["doc.jsonl"]


def test_writing_the_same_bytes_changes_nothing_and_a_time_is_kept(tmp_path):
    path = tmp_path / "doc.jsonl"
    write_file(path, b"same").keep()
    before = path.stat().st_mtime_ns
    write_file(path, b"same").rollback()
    assert path.read_bytes() == b"same" and path.stat().st_mtime_ns == before
    moment = "2025-06-01T12:30:00.123456Z"
    write_file(path, b"dated", time_ns(moment)).keep()
    assert iso_time(path.stat().st_mtime_ns) == moment


def test_a_removal_is_rolled_back_or_kept(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("text")
    removed = remove_file(path)
    assert not path.exists() and files(tmp_path) == []
    removed.rollback()
    assert path.read_text() == "text"
    remove_file(path).keep()
    assert os.listdir(tmp_path) == []


def test_tidy_removes_what_dead_writers_left_and_nothing_of_a_live_one(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    dead = ended.pid  # a writer that is gone
    (tmp_path / ".kb" / "documents").mkdir(parents=True)
    left = tmp_path / ".kb" / "documents" / f".x.jsonl.tmp-{dead}-0"
    mine = tmp_path / ".kb" / "documents" / f".y.jsonl.undo-{os.getpid()}-0"
    user = tmp_path / ".notes.txt"
    for path in (left, mine, user):
        path.write_text("x")
    tidy(tmp_path)
    assert not left.exists() and mine.exists() and user.exists()


def test_a_long_file_name_can_be_written_and_rolled_back(tmp_path):
    name = "报" * 81 + ".md"  # 246 bytes: under the 255 a name may have; kb's temporary names must fit too
    write_file(tmp_path / name, b"first").keep()
    write_file(tmp_path / name, b"second").rollback()
    assert (tmp_path / name).read_bytes() == b"first"


def test_a_document_sent_as_json_reads_back_equal_from_its_file(tmp_path):
    record = Record(tmp_path, in_folder=True)
    document = record.json_document(Parsed("Airships", "The Graf Zeppelin crossed the Atlantic.", {"date": "2024-05-01"},
                                           "note-1", None), "note-1")
    assert document.path == ".kb/documents/note-1.jsonl" and document.source == "api/note-1"
    record.save([document]).keep()
    [(relative, path, _)] = corpus_files(tmp_path)
    from kb.documents.reading import read_document

    [again] = read_document(path, relative)
    assert (again.id, again.source, again.path, again.content_hash) == (
        document.id, document.source, document.path, document.content_hash)
    elsewhere = Record(tmp_path, in_folder=False).json_document(
        Parsed("Airships", "The Graf Zeppelin crossed the Atlantic.", {"date": "2024-05-01"}, "note-1", None), "note-1")
    assert elsewhere.path == "" and elsewhere.content_hash == document.content_hash, "the same document on both stores"
