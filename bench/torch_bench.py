#!/usr/bin/env python3
"""PyTorch side of `npm run bench` (bench/inference.ts drives it; not meant to be run alone).

The same architectures as phoneside's classifiers, run by PyTorch on the CPU: torchvision
ResNet50 / MobileNetV2 (random weights: speed does not depend on them) with phoneside's head
(FC-BN-PReLU-Dropout x 2 -> FC(3) -> softmax), eval mode, torch.inference_mode(), 224x224; both
eager and as a frozen TorchScript module (torch.jit.optimize_for_inference).

Line protocol, so that each setting runs right after phoneside's (the machine's load drifts):
  stdin line 1: {files, minSeconds, size}         -> {torch, torchvision, mkldnn}
  then, per line: {id, headUnits, threads, batch} -> {macs, e2e, model, frozenE2e, frozenModel} (images/s)
Progress goes to stderr.
"""
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def reply(obj):
    print(json.dumps(obj), flush=True)


def main():
    cfg = json.loads(sys.stdin.readline())
    import numpy as np
    import torch
    import torchvision
    from PIL import Image, ImageOps
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_interop_threads(1)
    size = cfg["size"]
    bilinear = getattr(Image, "Resampling", Image).BILINEAR
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255

    def head(cin, units):
        layers = []
        for u in units:
            layers += [nn.Linear(cin, u), nn.BatchNorm1d(u), nn.PReLU(u), nn.Dropout(0.5)]
            cin = u
        return nn.Sequential(*layers, nn.Linear(cin, 3), nn.Softmax(dim=1))

    def build(name, units):
        if name == "resnet50":
            m = torchvision.models.resnet50()
            m.fc = head(m.fc.in_features, units)
        elif name.startswith("mobilenet_v2_"):
            m = torchvision.models.mobilenet_v2(width_mult=float(name.rsplit("_", 1)[1]))
            m.classifier = head(m.last_channel, units)
        else:
            raise SystemExit(f"torch_bench: no PyTorch model for {name}")
        return m.eval()

    def count_macs(m):
        total = [0]

        def conv(mod, _inp, out):
            total[0] += out[0].numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

        def linear(mod, _inp, _out):
            total[0] += mod.in_features * mod.out_features

        hooks = [mod.register_forward_hook(conv) for mod in m.modules() if isinstance(mod, nn.Conv2d)]
        hooks += [mod.register_forward_hook(linear) for mod in m.modules() if isinstance(mod, nn.Linear)]
        with torch.inference_mode():
            m(torch.zeros(1, 3, size, size))
        for h in hooks:
            h.remove()
        return total[0]

    def decode(path):
        im = Image.open(path)
        im.draft("RGB", (size, size))  # JPEG shrink-on-load, as sharp/libvips does
        im = ImageOps.exif_transpose(im).convert("RGB").resize((size, size), bilinear)
        return ((np.asarray(im, dtype=np.float32) - mean) / std).transpose(2, 0, 1)

    files = cfg["files"]
    min_s = cfg["minSeconds"]
    decoders = ThreadPoolExecutor(2)  # decodes one batch's images concurrently (PIL releases the GIL)
    prefetch = ThreadPoolExecutor(1)  # decodes the next batch while the current one runs

    def decode_batch(paths):
        return np.ascontiguousarray(np.stack(list(decoders.map(decode, paths))))

    def time_model(m, x, bs):
        with torch.inference_mode():
            for _ in range(3):  # oneDNN primitives are created on the first calls per shape
                m(x[:bs])
            done, i, t0 = 0, 0, time.perf_counter()
            while True:
                if i + bs > len(x):
                    i = 0
                m(x[i:i + bs])
                i += bs
                done += bs
                if time.perf_counter() - t0 >= min_s:
                    return done / (time.perf_counter() - t0)

    def time_e2e(m, bs):
        batches = [files[i:i + bs] for i in range(0, len(files), bs)]
        t0, n = time.perf_counter(), 0
        with torch.inference_mode():
            while True:
                nxt = prefetch.submit(decode_batch, batches[0])
                for k in range(len(batches)):
                    x = nxt.result()
                    nxt = prefetch.submit(decode_batch, batches[k + 1]) if k + 1 < len(batches) else None
                    m(torch.from_numpy(x))
                    n += len(x)
                    if time.perf_counter() - t0 >= min_s:
                        rate = n / (time.perf_counter() - t0)
                        if nxt is not None:
                            nxt.result()  # do not leave a decode running into the next timing
                        return rate

    x_all = torch.from_numpy(decode_batch(files))
    reply({"torch": torch.__version__, "torchvision": torchvision.__version__, "mkldnn": bool(torch.backends.mkldnn.is_available())})
    models = {}
    for line in sys.stdin:
        req = json.loads(line)
        name = req["id"]
        if name not in models:
            m = build(name, req["headUnits"])
            # PyTorch's own best CPU inference path: TorchScript, frozen, conv+BN folded, oneDNN
            # weights pre-packed (eager mode re-lays the weights out on every call).
            with torch.no_grad():
                frozen = torch.jit.optimize_for_inference(torch.jit.script(m))
            models[name] = (m, frozen, count_macs(m))
        m, frozen, macs = models[name]
        torch.set_num_threads(req["threads"])
        bs = req["batch"]
        row = {"macs": macs, "model": time_model(m, x_all, bs), "e2e": time_e2e(m, bs)}
        row["frozenModel"] = time_model(frozen, x_all, bs)
        row["frozenE2e"] = time_e2e(frozen, bs)
        log(f"  torch {name} threads {req['threads']} batch {bs}: eager e2e {row['e2e']:.1f}, model {row['model']:.1f}; "
            f"frozen e2e {row['frozenE2e']:.1f}, model {row['frozenModel']:.1f} img/s")
        reply(row)


if __name__ == "__main__":
    main()
