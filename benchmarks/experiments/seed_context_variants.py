import sys, tempfile
from pathlib import Path
import kb.ingestion.sync as kbuild
from kb.ingestion.sync import build_index
from kb.embedding.embedder import get_embedder
from kb.index import IndexStore
from kb.evaluation.questions import load_questions
from kb.settings import Settings
from kb.evaluation.metrics import evaluate_questions
ct=int(sys.argv[1]); variant=sys.argv[2]
orig=kbuild.context_of
if variant=='none': kbuild.context_of=lambda t,h: ''
elif variant=='heading': kbuild.context_of=lambda t,h: h
elif variant=='title': kbuild.context_of=lambda t,h: t
e=get_embedder(); d=Path(tempfile.mkdtemp())
s=Settings.from_env(environ={}, index_dir=d, chunk_tokens=ct, chunk_overlap=32, fusion='zscore', hybrid_weight=0.7, feedback=3, feedback_weight=1.0)
build_index(s, embedder=e); idx=IndexStore(d).load()
r,c=evaluate_questions(load_questions('benchmarks/data/seed_questions.jsonl'), idx, e, s)
print(ct, variant, {m:(round(v['hit@1'],3),round(v['hit@3'],3)) for m,v in r.items()}, 'calib', round(c.threshold,3), round(c.accuracy,3))
