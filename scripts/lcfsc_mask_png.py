import sys
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import blocks  # noqa: F401
from flowgraph.graph import load_graph
from flowgraph.run import Runner
from flowgraph.taps import TapHub
run, cfsc, out, snr = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
torch.set_num_threads(1)
hub, got = TapHub(), {}
for name in ("enc.mask", "enc.mask_strategy", "enc.m"):
    hub.subscribe(name, lambda n, v, info: got.__setitem__(n, v), min_interval=0)
r = Runner(load_graph("graphs/lcfsc.yaml"), preset="quick", overrides={"cfsc_ckpt": cfsc}, taps=hub,
           out="/tmp/lcfsc_masks", quiet=True)
r.load_weights(f"{run}/checkpoints/last.pt")
r.evaluate(points=[{"snr_db": snr}], images=2, write=False)
mask, score = got["enc.mask"][0, 0], got["enc.mask_strategy"][0, 0]
m = float(got["enc.m"][0])
print("mask shape", tuple(got["enc.mask"].shape), "m*", m, "zeros/head", [(mask[h] == 0).sum().item() for h in range(mask.shape[0])])
H = mask.shape[0]
fig, ax = plt.subplots(2, H, figsize=(3 * H, 6), squeeze=False)
for hd in range(H):
    ax[0, hd].imshow(score[hd]); ax[0, hd].set_title(f"M_s, head {hd}")
    ax[1, hd].imshow(mask[hd], cmap="gray", vmin=0, vmax=1); ax[1, hd].set_title(f"M, m*={m:.4f}")
fig.suptitle(f"LCFSC enc.mask, first window, first NI-CFMA block, SNR {snr:g} dB")
fig.tight_layout(); fig.savefig(out, dpi=80)
