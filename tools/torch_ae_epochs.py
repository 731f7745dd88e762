#!/usr/bin/env python3
# The paper's AE(n) trained by PyTorch itself (its default init, Adam 1e-3, L1, batch 100, shuffled)
# for a few epochs per seed, printing train and validation MAE: the band fmnist's first epochs are
# compared with (bench/RESULTS.md). Usage: tools/torch_ae_epochs.py SEED [SEED ...] (run with /usr/bin/python3).
import os, sys, time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import Autoencoder, read_idx
torch.set_num_threads(2)
d='/usr/share/datasets/fashion-mnist/'
tr=torch.tensor(read_idx(d+'train-images-idx3-ubyte.gz'),dtype=torch.float32).reshape(-1,1,28,28)/255
te=torch.tensor(read_idx(d+'t10k-images-idx3-ubyte.gz'),dtype=torch.float32).reshape(-1,1,28,28)/255
val=te[:9900]
for seed in [int(s) for s in sys.argv[1:]]:
    torch.manual_seed(seed)
    m=Autoencoder(256)
    with torch.no_grad():
        if (m(tr[:100])>0).sum()==0: print('seed',seed,'dead init'); continue
    opt=torch.optim.Adam(m.parameters(),lr=1e-3); lossf=torch.nn.L1Loss()
    for ep in range(1,4):
        perm=torch.randperm(len(tr)); t=time.time(); s=0
        for i in range(0,len(tr),100):
            x=tr[perm[i:i+100]]; opt.zero_grad(); l=lossf(m(x),x); l.backward(); opt.step(); s+=l.item()
        with torch.no_grad(): v=np.mean([lossf(m(val[i:i+100]),val[i:i+100]).item() for i in range(0,9900,100)])
        print(f'seed {seed} epoch {ep} train {s/600:.5f} val {v:.5f} {time.time()-t:.1f}s', flush=True)
