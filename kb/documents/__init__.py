"""Reading documents: files and JSON in, Documents and their passages out.

- ``document``: the Document and its id (one rule for corpus files, uploads and JSON);
- ``readers``, ``html``, ``pdf``, ``parsed``: one reader per format (.txt .md .html .pdf .jsonl);
- ``structure``, ``sentences``, ``chunking``: headings, code and prose blocks, sentences, and passages of whole
  sentences sized in the model's tokens, with the context line the model reads before each;
- ``terms``: the words BM25 indexes and the page marks (tokenizer, stemmer, BM25's parameters);
- ``folder``, ``reading``: the corpus folder (kb's own `.kb/` in it, durable writes) and reading it.

Nothing here embeds, stores or searches: every other package builds on this one.
"""
