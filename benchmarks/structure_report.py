"""How well kb reads real documents: headings, sentence starts and titles, this checkout against an older commit.

    apt-get install python3.11-doc                      # Sphinx HTML (any folder of documents will do)
    .venv/bin/python benchmarks/structure_report.py --make-corpus /tmp/real-docs
    .venv/bin/python benchmarks/structure_report.py --corpus /tmp/real-docs --ref 36cc6bd

``--make-corpus`` copies documents that ship with Debian into a folder: the Python tutorial and
HOWTOs (HTML), the Markdown files under /usr/share/doc, and the PDF manuals there (gunzipped).
Each version of kb reads and chunks every file of the folder as `kb build` would (its own readers
and chunker, the model's tokenizer), and three shares are reported:

- passages whose heading is a real heading of their document: a heading in the file itself
  (h1-h6 of the HTML, ``#`` and setext lines of the Markdown, the PDF's outline), read here
  with lxml, markdown-it-py and pypdf, independently of kb's readers, and compared with case,
  white space and Markdown's inline marks aside;
- sentence spans (what a highlight marks) that start where a sentence starts: the reference is
  pysbd run on each block element of the HTML (p, li, dd, td, h1-h6, pre as one) with its white
  space collapsed, so a hard-wrapped paragraph is one piece of text; HTML only;
- documents whose title differs from every other document's title.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    html = Path("/usr/share/doc/python3.11/html")
    for part in ("tutorial", "howto"):
        for page in sorted((html / part).glob("*.html")):
            if page.name not in ("index.html",):
                shutil.copy(page, folder / f"python-{part}-{page.name}")
    for md in sorted(Path("/usr/share/doc").rglob("*.md")):
        if md.is_file() and 2_000 <= md.stat().st_size <= 200_000:
            shutil.copy(md, folder / f"{md.parent.name}-{md.name}")
    for pdf in sorted(Path("/usr/share/doc").rglob("*.pdf*")):
        if pdf.suffix == ".gz" and pdf.name.endswith(".pdf.gz"):
            (folder / f"{pdf.parent.name}-{pdf.name[:-3]}").write_bytes(gzip.decompress(pdf.read_bytes()))
        elif pdf.suffix == ".pdf":
            shutil.copy(pdf, folder / f"{pdf.parent.name}-{pdf.name}")
    print(f"{len(list(folder.iterdir()))} files in {folder}")


def _norm(text: str) -> str:
    """Case, white space, permalink marks and Markdown's inline marks (`code`, *em*) aside."""
    return " ".join(text.replace("¶", " ").replace("`", "").replace("*", "").split()).strip().casefold()


def real_headings(path: Path) -> set[str]:
    """Headings written in the file itself, read without kb."""
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        from lxml import html as lhtml

        tree = lhtml.fromstring(path.read_bytes())
        return {_norm(h.text_content()) for h in tree.iter("h1", "h2", "h3", "h4", "h5", "h6")}
    if suffix == ".md":
        from markdown_it import MarkdownIt

        tokens = MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8", errors="replace"))
        return {_norm(tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open"}
    if suffix == ".pdf":
        from pypdf import PdfReader

        found: set[str] = set()

        def walk(items):
            for item in items:
                if isinstance(item, list):
                    walk(item)
                else:
                    found.add(_norm(str(item.title)))
        try:
            walk(PdfReader(str(path)).outline)
        except Exception:  # noqa: BLE001 - no outline
            pass
        return found
    return set()


def sentence_starts(path: Path) -> set[str]:
    """The first 30 characters of each sentence of each block element of an HTML page."""
    import pysbd
    from lxml import html as lhtml

    segmenter = pysbd.Segmenter(language="en", clean=False)
    tree = lhtml.fromstring(path.read_bytes())
    starts = set()
    for element in tree.iter("p", "li", "dd", "dt", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "pre"):
        text = " ".join(element.text_content().split())
        if not text:
            continue
        pieces = [text] if element.tag == "pre" else segmenter.segment(text)
        starts.update(_norm(piece)[:30] for piece in pieces if piece.strip())
        starts.add(_norm(text)[:30])
    return starts


def measure(corpus: Path) -> dict:
    """Run under the kb on PYTHONPATH: its own readers and chunker."""
    from kb.documents.chunking import Passage, chunk_document
    from kb.documents.reading import read_corpus
    from kb.embedding.embedder import embedder_for
    from kb.settings import Settings

    new = "sentences" in Passage.__dataclass_fields__  # kb is a namespace package: tell versions by their types
    if not new:
        from kb.documents.chunking import sentence_spans
    settings = Settings.from_env()
    embedder = embedder_for(settings)
    documents = read_corpus(corpus)
    passages = headed = real = 0
    spans = at_start = 0
    titles = Counter(d.title for d in documents)
    for document in documents:
        path = corpus / document.path
        headings = real_headings(path)
        starts = sentence_starts(path) if path.suffix.lower() in (".html", ".htm") else None
        for passage in chunk_document(document, embedder, settings):
            passages += 1
            heading = passage.heading
            if heading:
                headed += 1
                real += _norm(heading) in headings
            if starts is None:
                continue
            if new:
                sentences = [document.text[a:b] for a, b in passage.sentences]
            else:
                sentences = [passage.text[a:b] for a, b in sentence_spans(passage.text)]
            for sentence in sentences:
                spans += 1
                at_start += _norm(sentence)[:30] in starts or any(s.startswith(_norm(sentence)[:30]) for s in starts
                                                                   if len(_norm(sentence)) < 30)
    return {"documents": len(documents), "passages": passages, "headed": headed, "real_headings": real,
            "sentences": spans, "sentence_starts": at_start,
            "unique_titles": sum(1 for d in documents if titles[d.title] == 1),
            "by_format": dict(Counter(Path(d.path).suffix.lower() for d in documents))}


def run(code: Path, corpus: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", str(corpus)], cwd=code,
                            env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"measuring with {code} failed: {result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--make-corpus", type=Path)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--ref", default="36cc6bd", help="the older commit to compare with")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_corpus:
        make_corpus(args.make_corpus)
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    if not args.corpus:
        parser.error("--corpus (or --make-corpus) is needed")
    with tempfile.TemporaryDirectory(prefix="kb-structure-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.ref], cwd=REPO, check=True,
                       capture_output=True)
        try:
            rows = [(f"commit {args.ref}", run(old, args.corpus)), ("this checkout", run(REPO, args.corpus))]
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, capture_output=True)
    first = rows[0][1]
    print(f"\n{first['documents']} documents ({', '.join(f'{n} {k}' for k, n in sorted(first['by_format'].items()))})")
    print("| kb | passages | heading is a real heading | passages with no heading | "
          "sentence spans at a sentence start (HTML) | documents with a title of their own |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, r in rows:
        print(f"| {label} | {r['passages']:,} | {r['real_headings'] / r['passages']:.1%} | "
              f"{1 - r['headed'] / r['passages']:.1%} | {r['sentence_starts'] / max(1, r['sentences']):.1%} | "
              f"{r['unique_titles'] / r['documents']:.1%} |")


if __name__ == "__main__":
    main()
