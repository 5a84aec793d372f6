import torch, time
from matrixnms import batched_matrix_nms
torch.manual_seed(0)
B,N=2,6
scores=torch.rand(B,N); xy=torch.rand(B,N,2)*10; boxes=torch.cat([xy, xy+torch.rand(B,N,2)*5+1],-1)
valid=torch.rand(B,N)<0.8; labels=torch.randint(0,2,(B,N))
batched_matrix_nms(scores, boxes=boxes, valid=valid, labels=labels, backend="generic")
t=time.time()
f=torch.compile(lambda s,b,v,l: batched_matrix_nms(s, boxes=b, valid=v, labels=l, backend="generic", post_top_k=4), fullgraph=True, backend="aot_eager")
r=f(scores,boxes,valid,labels); e=batched_matrix_nms(scores, boxes=boxes, valid=valid, labels=labels, backend="generic", post_top_k=4)
print(time.time()-t, [torch.equal(a,b) for a,b in zip(r,e)])
