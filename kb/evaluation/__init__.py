"""`kb eval`: retrieval quality of every mode on test collections (Cranfield, BEIR) and question sets.

- ``datasets``: the collections; ``questions``: question sets written from a corpus, judged by evidence text;
- ``metrics``: trec_eval's measures through pytrec_eval, hit@k and MRR, and the no-good-match calibration.
"""
