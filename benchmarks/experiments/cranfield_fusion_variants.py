import sys, numpy as np, tempfile
from pathlib import Path
from kb.ingestion.sync import build_index
from kb.evaluation.datasets import load_collection
from kb.embedding.embedder import get_embedder
from kb.evaluation.metrics import trec_metrics
from kb.index import IndexStore
from kb.documents.terms import terms
from kb.settings import Settings
ct = int(sys.argv[1]) if len(sys.argv)>1 else 256
e = get_embedder()
col = load_collection(Path(__file__).resolve().parents[1] / 'data' / 'cranfield')
d = Path(f'/tmp/exp-{ct}')
s = Settings.from_env(environ={}, index_dir=d, chunk_tokens=ct, chunk_overlap=32)
build_index(s, embedder=e, documents=col.documents)
idx = IndexStore(d).load()
qids = [q for q in col.queries if col.qrels.get(q)]
Q = e.encode([col.queries[q] for q in qids])
V = np.asarray(idx.vectors)
D = Q @ V.T   # dense all
K = np.stack([idx.keyword.scores(terms(col.queries[q])) for q in qids])
docs = np.array([p.doc_id for p in idx.passages])
def run_from(S):
    run = {}
    for i,q in enumerate(qids):
        order = np.argsort(-S[i])[:400]
        run[q] = list(dict.fromkeys(docs[order]))[:100]
    return run
def ev(S, name):
    m = trec_metrics(col.qrels, run_from(S)); print(f"{name:40s} nDCG@10 {m['nDCG@10']:.3f} R@100 {m['Recall@100']:.3f} MRR {m['MRR@10']:.3f}")
ev(D,'dense'); ev(K,'bm25')
def pool_norm(S, kind, depth=100):
    out = np.zeros_like(S)
    for i in range(len(S)):
        top = np.argsort(-S[i])[:depth]; vals = S[i][top]
        if kind=='minmax': out[i] = (S[i]-vals.min())/(vals.max()-vals.min()+1e-9)
        elif kind=='z': out[i] = (S[i]-vals.mean())/(vals.std()+1e-9)
        elif kind=='max': out[i] = S[i]/(vals.max()+1e-9)
    return out
for kind in ['minmax','z']:
    Dn = pool_norm(D, kind); Kn = pool_norm(K, kind if kind!='minmax' else 'max')
    for w in [0.4,0.5,0.6,0.7]:
        ev(w*Dn+(1-w)*Kn, f'{kind} w={w}')
# dense PRF
for beta in [0.3,0.5,1.0]:
    for n in [3,5]:
        Q2 = []
        for i in range(len(qids)):
            top = np.argsort(-D[i])[:n]
            q2 = Q[i] + beta*V[top].mean(0); Q2.append(q2/np.linalg.norm(q2))
        D2 = np.array(Q2) @ V.T
        ev(D2, f'dense prf beta={beta} n={n}')
        Dn = pool_norm(D2,'z'); Kn = pool_norm(K,'z')
        ev(0.6*Dn+0.4*Kn, f'  hybrid z 0.6 with prf')
print('--- hybrid feedback')
H1 = 0.6*pool_norm(D,'z')+0.4*pool_norm(K,'z')
for beta in [0.5,1.0,2.0]:
    for n in [3,5,10]:
        Q2=[]
        for i in range(len(qids)):
            top=np.argsort(-H1[i])[:n]; q2=Q[i]+beta*V[top].mean(0); Q2.append(q2/np.linalg.norm(q2))
        D2=np.array(Q2)@V.T
        for w in [0.5,0.6,0.7]:
            ev(w*pool_norm(D2,'z')+(1-w)*pool_norm(K,'z'), f'hyb-fb beta={beta} n={n} w={w}')
print('--- pool-only feedback, union pool, z over pool')
def zs(x): return (x-x.mean())/(x.std()+1e-9)
def pooled(beta,n,w,fb=True):
    out=np.full(D.shape,-1e9)
    for i in range(len(qids)):
        pool=np.union1d(np.argsort(-D[i])[:100], np.argsort(-K[i])[:100][K[i][np.argsort(-K[i])[:100]]>0])
        d=D[i][pool]; k=K[i][pool]
        f=w*zs(d)+(1-w)*zs(k)
        if fb:
            top=pool[np.argsort(-f)[:n]]; q2=Q[i]+beta*V[top].mean(0); q2/=np.linalg.norm(q2)
            d2=V[pool]@q2; f=w*zs(d2)+(1-w)*zs(k)
        out[i][pool]=f
    return out
ev(pooled(0,0,0.6,False),'pool z w=0.6 no fb')
for beta in [1.0,2.0]:
    for n in [3,5]:
        for w in [0.6,0.7]:
            ev(pooled(beta,n,w), f'pool fb beta={beta} n={n} w={w}')
