exec(open(__file__.replace('cranfield_bm25_params.py', 'cranfield_fusion_variants.py')).read().split("for kind in ['minmax','z']")[0])  # data, ev() and pool_norm()
import bm25s
from kb.documents.chunking import embedding_text
texts=[embedding_text(idx.documents[p.doc_id].title, p) for p in idx.passages]
corpus=[terms(t) for t in texts]; vocab={}; ids=[[vocab.setdefault(t,len(vocab)) for t in doc] for doc in corpus]
qt=[terms(col.queries[q]) for q in qids]
for k1 in [0.9,1.2,1.5,2.0]:
    for b in [0.3,0.5,0.75,0.9]:
        r=bm25s.BM25(method='lucene',k1=k1,b=b); r.index(bm25s.tokenization.Tokenized(ids=ids,vocab=vocab),show_progress=False)
        K2=np.stack([r.get_scores_from_ids(r.get_tokens_ids(t)) if r.get_tokens_ids(t) else np.zeros(len(texts)) for t in qt])
        m=trec_metrics(col.qrels, run_from(K2)); h=trec_metrics(col.qrels, run_from(0.6*pool_norm(D,'z')+0.4*pool_norm(K2,'z')))
        print(f"k1={k1} b={b} bm25 {m['nDCG@10']:.3f}  hybrid-z0.6 {h['nDCG@10']:.3f}")
