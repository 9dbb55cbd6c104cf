import sys, tempfile, numpy as np
from pathlib import Path
from kb.ingestion.sync import build_index
from kb.embedding.embedder import get_embedder
from kb.index import IndexStore
from kb.evaluation.questions import load_questions, first_hit_rank
from kb.search.pipeline import Searcher
from kb.documents.sentences import sentence_spans
from kb.settings import Settings
ct=int(sys.argv[1]); ov=int(sys.argv[2])
e=get_embedder(); d=Path(tempfile.mkdtemp())
s=Settings.from_env(environ={}, index_dir=d, chunk_tokens=ct, chunk_overlap=ov, fusion='zscore', hybrid_weight=0.7, feedback=3, feedback_weight=1.0)
build_index(s, embedder=e); idx=IndexStore(d).load()
srch=Searcher(idx,e,s)
cache={}
def sv(t):
    if t not in cache: cache[t]=e.encode([t])[0]
    return cache[t]
qs=[q for q in load_questions('benchmarks/data/seed_questions.jsonl') if q.evidence]
for gamma in [0,0.5,1.0,2.0]:
  for depth in [5,10]:
    r1=r3=0
    for q in qs:
        hits=srch.answer(q.q,depth,highlights=False).hits
        qv=e.encode_query(q.q)
        fused=np.array([h.score for h in hits]); fz=(fused-fused.mean())/(fused.std()+1e-9)
        best=np.array([max(float(sv(h.text[a:b])@qv) for a,b in sentence_spans(h.text)) for h in hits]); bz=(best-best.mean())/(best.std()+1e-9)
        order=np.argsort(-(fz+gamma*bz))
        rr=first_hit_rank([hits[i] for i in order], q.evidence)
        r1+= rr==1; r3+= bool(rr and rr<=3)
    print(ct, ov, 'gamma',gamma,'depth',depth,'hit@1',round(r1/len(qs),3),'hit@3',round(r3/len(qs),3))
