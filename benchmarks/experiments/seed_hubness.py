import sys, tempfile, numpy as np
from pathlib import Path
from kb.ingestion.sync import build_index
from kb.embedding.embedder import get_embedder
from kb.index import IndexStore
from kb.evaluation.questions import load_questions, first_hit_rank
from kb.search.pipeline import Searcher
from kb.settings import Settings
from kb.evaluation.metrics import evaluate_questions, evaluate_collection
from kb.evaluation.datasets import load_collection
ct=int(sys.argv[1]); ov=int(sys.argv[2])
e=get_embedder(); d=Path(tempfile.mkdtemp())
s=Settings.from_env(environ={}, index_dir=d, chunk_tokens=ct, chunk_overlap=ov, fusion='zscore', hybrid_weight=0.7, feedback=3, feedback_weight=1.0)
build_index(s, embedder=e); idx=IndexStore(d).load()
qs=load_questions('benchmarks/data/seed_questions.jsonl')
col=load_collection(Path(__file__).resolve().parents[1] / 'data' / 'cranfield')
def hubness(index, k):
    V=np.asarray(index.vectors); kk=min(k+1,len(V))
    sims, _ = index.faiss_index.search(V, kk)
    return sims[:,1:].mean(1)
# direct dense-only test of CSLS on seed
V=np.asarray(idx.vectors); hub=hubness(idx,5)
texts=[p.text for p in idx.passages]
for lam in [0,0.3,0.6,1.0]:
    r1=0; n=0
    for q in qs:
        if not q.evidence: continue
        qv=e.encode_query(q.q); sc=V@qv - lam*hub
        top=int(np.argmax(sc)); n+=1
        r1+= ' '.join(q.evidence.split()).lower() in ' '.join(texts[top].split()).lower()
    print('seed dense csls lam',lam,'hit@1',round(r1/n,3))
