import numpy as np, tempfile
from pathlib import Path
from kb.embedding.embedder import get_embedder
from kb.ingestion.sync import build_index, embedding_text
from kb.index import IndexStore
from kb.documents.sentences import sentence_spans
from kb.evaluation.questions import load_questions
from kb.settings import Settings
from kb.search.pipeline import Searcher
e=get_embedder(); d=Path(tempfile.mkdtemp())
s=Settings.from_env(environ={}, index_dir=d); build_index(s, embedder=e); idx=IndexStore(d).load()
tok=e.tokenizer
print(type(tok), tok.is_fast if hasattr(tok,'is_fast') else None)
doc=next(iter(idx.documents.values()))
texts=[embedding_text(doc.title,p) for p in idx.passages]
import time; t=time.time()
out=e.model.encode(texts, output_value=None, batch_size=32, convert_to_numpy=False)
print('encode all outputs', time.time()-t, out[0].keys() if isinstance(out[0],dict) else type(out[0]))
# sentence vectors by late chunking
sent={}  # (passage idx) -> list of (abs start, abs end, vec)
for i,(p,t_) in enumerate(zip(idx.passages,texts)):
    enc=tok(t_, return_offsets_mapping=True, truncation=True, max_length=256)
    offs=enc['offset_mapping']; te=out[i]['token_embeddings'].numpy()[out[i]['attention_mask'].numpy().astype(bool)]
    assert len(offs)==te.shape[0], (len(offs), te.shape)
    base=len(t_)-len(p.text)
    lst=[]
    for a,b in sentence_spans(p.text):
        rows=[j for j,(x,y) in enumerate(offs) if y>x and x>=base+a and y<=base+b]
        v=te[rows].mean(0); v/=np.linalg.norm(v); lst.append((p.start+a,p.start+b,v))
    sent[i]=lst
    pv=out[i]['sentence_embedding'].numpy(); 
    assert np.allclose(pv/np.linalg.norm(pv), idx.vectors[i], atol=1e-4)
qs=[q for q in load_questions('benchmarks/data/seed_questions.jsonl') if q.evidence]
srch=Searcher(idx,e,s)
ok_late=ok_ind=total=0
norm=lambda x:' '.join(x.split()).lower()
for q in qs:
    qv=e.encode_query(q.q)
    for h in srch.answer(q.q,3,highlights=False).hits:
        if norm(q.evidence) not in norm(h.text): continue
        pi=[i for i,p in enumerate(idx.passages) if p.id==h.passage_id][0]
        total+=1
        best=max(sent[pi], key=lambda r: float(r[2]@qv)); ok_late+= norm(q.evidence)[:40] in norm(doc.text[best[0]:best[1]])
        spans=[(h.start+a,h.start+b) for a,b in sentence_spans(h.text)]
        vecs=e.encode([doc.text[a:b] for a,b in spans]); bi=int(np.argmax(vecs@qv)); ok_ind+= norm(q.evidence)[:40] in norm(doc.text[spans[bi][0]:spans[bi][1]])
print('hits containing evidence', total, 'late-chunk best sentence ok', ok_late, 'independent ok', ok_ind)
