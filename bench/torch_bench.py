#!/usr/bin/env python3
"""PyTorch side of `npm run bench` (bench/inference.ts drives it; not meant to be run alone), and,
with --train-step, of the training-step column of `npm run bench:stages` (run alone; see
train_step_bench).

The same architectures as phoneside's classifiers, run by PyTorch on the CPU: torchvision
ResNet50 / MobileNetV2 (random weights: speed does not depend on them) with phoneside's head
(FC-BN-PReLU-Dropout x 2 -> FC(3) -> softmax), eval mode, torch.inference_mode(), 224x224; both
eager and as a frozen TorchScript module (torch.jit.optimize_for_inference).

Line protocol, so that each setting runs right after phoneside's (the machine's load drifts):
  stdin line 1: {files, minSeconds, size}         -> {torch, torchvision, mkldnn, int8Engine}
  then, per line: {id, headUnits, threads, batch, precision?} -> {macs, e2e, model, frozenE2e, frozenModel} (images/s)
  (precision 'int8': PyTorch's own static int8, FX graph mode, eager and frozen; or {error})
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
    # PyTorch's int8 peer: FX graph mode static quantization with the best engine this build has
    # (fbgemm or onednn use VNNI on x86; qnnpack is the ARM-first fallback).
    engines = torch.backends.quantized.supported_engines
    int8_engine = next((e for e in ("fbgemm", "x86", "onednn", "qnnpack") if e in engines), None)
    reply({"torch": torch.__version__, "torchvision": torchvision.__version__, "mkldnn": bool(torch.backends.mkldnn.is_available()), "int8Engine": int8_engine})

    def quantize(m):
        """(FX int8 module, the same traced and frozen), calibrated on the first 32 images."""
        import copy
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = int8_engine
        prepared = prepare_fx(copy.deepcopy(m), get_default_qconfig_mapping(int8_engine), example_inputs=(x_all[:1],))
        with torch.no_grad():
            prepared(x_all[:32])
        q = convert_fx(prepared)
        with torch.no_grad():
            frozen = torch.jit.freeze(torch.jit.trace(q, x_all[:8]))
        return q, frozen

    models = {}
    for line in sys.stdin:
        req = json.loads(line)
        name = req["id"]
        if req.get("precision") == "int8":
            key = name + "/int8"
            if key not in models:
                if int8_engine is None:
                    reply({"error": "this PyTorch build has no quantized engine"})
                    continue
                try:
                    q, frozen = quantize(build(name, req["headUnits"]))
                except Exception as err:  # an op without an int8 kernel in this build, say
                    reply({"error": f"PyTorch int8 failed: {err}"})
                    continue
                models[key] = (q, frozen, count_macs(build(name, req["headUnits"])))
            q, frozen, macs = models[key]
            torch.set_num_threads(req["threads"])
            bs = req["batch"]
            row = {"macs": macs, "model": time_model(q, x_all, bs), "e2e": time_e2e(q, bs), "frozenModel": time_model(frozen, x_all, bs), "frozenE2e": time_e2e(frozen, bs)}
            log(f"  torch int8 ({int8_engine}) {name} threads {req['threads']} batch {bs}: FX e2e {row['e2e']:.1f}, model {row['model']:.1f}; "
                f"frozen e2e {row['frozenE2e']:.1f}, model {row['frozenModel']:.1f} img/s")
            reply(row)
            continue
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


def train_step_bench(argv):
    """`python3 bench/torch_bench.py --train-step [--threads 1,2]`: PyTorch's side of bench/stages.ts's
    step column. One training step (forward + backward + AdamW) of the same trainable part as
    phoneside's --top-blocks 1, on a batch of 32 cached cut-layer activations: ResNet50's last
    bottleneck (activation_45 -> 1x1 512, 3x3 512, 1x1 2048, + identity, frozen BatchNorm) or
    MobileNetV2 0.35's Conv_1 (1x1 112 -> 1280, frozen BatchNorm, ReLU6), then global average
    pooling and the head (FC-BN-PReLU-Dropout x 2 -> FC(3)), cross-entropy (the focal loss costs
    the same). Prints ms per step (median of 5 after 2 warm-up steps) per thread count."""
    import statistics
    import torch
    from torch import nn

    threads = [int(t) for t in (argv[argv.index("--threads") + 1] if "--threads" in argv else "1,2").split(",")]
    torch.manual_seed(0)
    torch.set_num_interop_threads(1)

    def head(cin, units):
        layers = []
        for u in units:
            layers += [nn.Linear(cin, u), nn.BatchNorm1d(u), nn.PReLU(u), nn.Dropout(0.5)]
            cin = u
        return nn.Sequential(*layers, nn.Linear(cin, 3))

    class Bottleneck(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(2048, 512, 1), nn.BatchNorm2d(512)
            self.c2, self.b2 = nn.Conv2d(512, 512, 3, padding=1), nn.BatchNorm2d(512)
            self.c3, self.b3 = nn.Conv2d(512, 2048, 1), nn.BatchNorm2d(2048)

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = torch.relu(self.b2(self.c2(y)))
            return torch.relu(self.b3(self.c3(y)) + x)

    def mobilenet_top():
        return nn.Sequential(nn.Conv2d(112, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6())

    cases = [("resnet50", Bottleneck, 2048, 2048, [512, 128]), ("mobilenet_v2_0.35", mobilenet_top, 112, 1280, [256, 64])]
    print("backbone           step ms/batch32 (PyTorch %s, CPU): %s" % (torch.__version__, " | ".join(f"{t} thread(s)" for t in threads)))
    for name, make_top, cin, width, units in cases:
        row = []
        for t in threads:
            torch.set_num_threads(t)
            top, hd = make_top(), head(width, units)
            for m in top.modules():  # frozen BatchNorm, as phoneside's fine-tuned blocks
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
                    m.weight.requires_grad_(False)
                    m.bias.requires_grad_(False)
            hd.train()
            params = [p for p in list(top.parameters()) + list(hd.parameters()) if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
            x = torch.relu(torch.randn(32, cin, 7, 7))
            y = torch.arange(32) % 3
            times = []
            for i in range(7):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                logits = hd(top(x).mean(dim=(2, 3)))
                loss = nn.functional.cross_entropy(logits, y)
                loss.backward()
                opt.step()
                loss.item()
                if i >= 2:
                    times.append((time.perf_counter() - t0) * 1000)
            row.append(f"{statistics.median(times):8.1f}")
        print(f"{name:18} {' | '.join(row)}")


if __name__ == "__main__":
    if "--train-step" in sys.argv:
        train_step_bench(sys.argv)
    else:
        main()
