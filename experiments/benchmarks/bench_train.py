"""Training throughput of DS-CNN-S (and MicroNet-KWS-S) in JAX, side by side with a PyTorch peer.

    .venv/bin/python experiments/benchmarks/bench_train.py [--models ds-cnn-s micronet-kws-s] [--steps 30]

Prints samples/s (best and median of ``--repeats`` timed runs of ``--steps`` steps, after a warm-up) at
batch 100 with AdamW, hello-edge 49x10 features given as input, batch norm in training mode, for:

* JAX, one process (XLA's default 2 threads), with the compiled training kernels (`nas.models.native`) and
  without them (``KWSNAS_NATIVE=0``: the pure-JAX path a machine without a C++ compiler gets);
* JAX, two processes at once, each single-threaded and pinned to one core (`nas.runtime.configure_threads`);
  the sum is what two concurrent trials get (GUIDE §3: ~1.3x one process);
* JAX inference (running statistics), batch 100;
* JAX end to end: audio [100, 16000] -> time shift + noise augmentation -> MFCC
  (`nas.features.make_features_jax`) -> training step, all in one jitted step;
* the PyTorch peer (``pip install torch==2.13.0``, the ``bench`` extra): the same network (layers, TF SAME
  padding, batch norm eps 1e-3, momentum 0.1, AdamW) in eager mode with 2 threads, in channels-last
  memory format (its fastest here; the default NCHW is printed too); skipped with a line if torch is
  missing. The JAX / PyTorch ratio is against the channels-last figure: the two training runs alternate
  ``--rounds`` times and the ratio of each round's medians is printed, so a load that comes and goes on a
  shared machine (steal time) hits both sides alike.

Everything runs under the allocator setting of GUIDE §3 (`nas.runtime.ensure_fast_allocator`: this script
re-executes itself once); it speeds up PyTorch too, so both sides get it. The machine's load average is
printed first and last: other processes on the 2 cores distort every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from nas import runtime  # noqa: E402  (no JAX import: the allocator and thread flags come first)

BATCH = 100
NUM_CLASSES = 12
WORKER_MARK = "--worker"


# --- the specs ------------------------------------------------------------------------------------------------------
def get_spec(name: str):
    """A preset if `search_spaces.presets` has it, else DS-CNN-S written out (Hello Edge, ML-zoo size info)."""
    try:
        from search_spaces.presets import get_preset

        return get_preset(name)
    except (ImportError, ValueError):
        if name != "ds-cnn-s":
            return None
        from search_spaces.frontend import get_frontend
        from search_spaces.spec import ArchSpec, Conv, DSConv, GlobalAvgPool

        return ArchSpec("ds-cnn-s", "ds-cnn", get_frontend("hello-edge"),
                        (Conv(64, (10, 4), (2, 2)), *(DSConv(64) for _ in range(4)), GlobalAvgPool()))


def timed(run, steps: int, repeats: int) -> list[float]:
    """samples/s of ``repeats`` runs of ``steps`` calls of ``run`` (which blocks at its end)."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        out.append(steps * BATCH / (time.perf_counter() - start))
    return out


# --- JAX --------------------------------------------------------------------------------------------------------------
def jax_measure(name: str, mode: str, steps: int, repeats: int, go_file: str | None = None) -> list[float]:
    """mode: train | infer | e2e (audio -> augmentation -> MFCC -> train step)."""
    import jax
    import jax.numpy as jnp
    import optax

    from nas.features import make_features_jax
    from nas.models import apply_model, build_model, split_model

    spec = get_spec(name)
    graphdef, params, stats = split_model(build_model(spec, seed=0))
    tx = optax.adamw(1e-3, weight_decay=1e-4)
    opt_state = tx.init(params)
    key = jax.random.key(0)
    labels = jax.random.randint(jax.random.fold_in(key, 1), (BATCH,), 0, spec.num_classes)
    features = make_features_jax(spec.frontend)

    def loss_fn(p, s, x, y):
        logits, new_stats = apply_model(graphdef, p, s, x, True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_stats

    def train_step(p, s, o, x, y):
        (loss, s), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, y)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), s, o, loss

    def e2e_step(p, s, o, audio, noise, y, k):
        k_shift, k_gain, k_noise = jax.random.split(k, 3)
        shift = jax.random.randint(k_shift, (), -1600, 1601)  # +-100 ms, zero fill
        padded = jnp.pad(audio, ((0, 0), (1600, 1600)))
        shifted = jax.lax.dynamic_slice_in_dim(padded, 1600 - shift, audio.shape[1], axis=1)
        start = jax.random.randint(k_noise, (), 0, noise.shape[0] - audio.shape[1])
        segment = jax.lax.dynamic_slice_in_dim(noise, start, audio.shape[1])
        gain = jax.random.uniform(k_gain, (audio.shape[0], 1), maxval=0.1)
        mixed = jnp.clip(shifted + gain * segment, -1.0, 1.0)
        return train_step(p, s, o, features(mixed), y)

    state = [params, stats, opt_state]
    if mode == "train":
        step = jax.jit(train_step, donate_argnums=(0, 1, 2))
        x = jax.random.normal(key, (BATCH, *spec.frontend.feature_shape), jnp.float32)

        def run(n):
            for _ in range(n):
                state[0], state[1], state[2], loss = step(*state, x, labels)
            loss.block_until_ready()
    elif mode == "e2e":
        step = jax.jit(e2e_step, donate_argnums=(0, 1, 2))
        audio = 0.1 * jax.random.normal(key, (BATCH, spec.frontend.clip_samples), jnp.float32)
        noise = 0.1 * jax.random.normal(jax.random.fold_in(key, 2), (10 * spec.frontend.clip_samples,))
        counter = [0]

        def run(n):
            for _ in range(n):
                counter[0] += 1
                k = jax.random.fold_in(key, counter[0])
                state[0], state[1], state[2], loss = step(*state, audio, noise, labels, k)
            loss.block_until_ready()
    else:
        infer = jax.jit(lambda p, s, x: apply_model(graphdef, p, s, x, False)[0])
        x = jax.random.normal(key, (BATCH, *spec.frontend.feature_shape), jnp.float32)

        def run(n):
            for _ in range(n):
                out = infer(state[0], state[1], x)
            out.block_until_ready()
    run(5)  # compile and warm up
    if go_file:  # two-process mode: start timing together
        Path(go_file + f".ready{os.getpid()}").touch()
        while not Path(go_file).exists():
            time.sleep(0.01)
    return timed(run, steps, repeats)


# --- PyTorch ----------------------------------------------------------------------------------------------------------
def torch_measure(name: str, mode: str, steps: int, repeats: int, channels_last: bool = True) -> list[float]:
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    from search_spaces import spec as S

    torch.set_num_threads(2)
    torch.manual_seed(0)
    spec = get_spec(name)

    def same_pad(size, k, s):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        return total // 2, total - total // 2

    class Act(nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.kind = kind

        def forward(self, x):
            if self.kind == "relu":
                return F.relu(x, inplace=True)
            return F.relu6(x, inplace=True) if self.kind == "relu6" else x

    class ConvBN(nn.Module):
        """TF-SAME-padded (depthwise) conv + BN(eps 1e-3, momentum 0.1) + activation, NCHW."""

        def __init__(self, cin, cout, kernel, stride, padding, act, in_hw, groups=1):
            super().__init__()
            (t, b), (l_, r) = ((same_pad(in_hw[0], kernel[0], stride[0]), same_pad(in_hw[1], kernel[1], stride[1]))
                               if padding == "same" else ((0, 0), (0, 0)))
            symmetric = t == b and l_ == r  # let the convolution pad (no extra copy) where TF's rule allows
            self.pad = (0, 0, 0, 0) if symmetric else (l_, r, t, b)
            self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=(t, l_) if symmetric else 0, groups=groups,
                                  bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.1)
            self.act = Act(act)

        def forward(self, x):
            return self.act(self.bn(self.conv(F.pad(x, self.pad) if any(self.pad) else x)))

    layers, shape = [], spec.input_shape
    for layer, out_shape in zip(spec.all_layers(), spec.shapes(), strict=True):
        if isinstance(layer, S.Conv):
            layers.append(ConvBN(shape[-1], layer.filters, layer.kernel, layer.stride, layer.padding,
                                 layer.activation, shape[:2]))
        elif isinstance(layer, S.DSConv):
            dw = ConvBN(shape[-1], shape[-1], layer.kernel, layer.stride, layer.padding, layer.activation,
                        shape[:2], groups=shape[-1])
            pw = ConvBN(shape[-1], layer.filters, (1, 1), (1, 1), "valid", layer.activation, out_shape[:2])
            layers.append(nn.Sequential(dw, pw))
        elif isinstance(layer, S.GlobalAvgPool):
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif isinstance(layer, S.Dense):
            layers += [nn.Linear(shape[-1], layer.units), Act(layer.activation)]
        else:
            raise SystemExit(f"the PyTorch peer has no {layer.kind} layer")
        shape = out_shape
    model = nn.Sequential(*layers)
    x = torch.randn(BATCH, 1, *spec.frontend.feature_shape)
    if channels_last:  # NHWC kernels (oneDNN): ~1.7x faster than NCHW here for these depthwise nets
        model, x = model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    y = torch.randint(0, spec.num_classes, (BATCH,))

    def run(n):
        if mode == "train":
            model.train()
            for _ in range(n):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()
        else:
            model.eval()
            with torch.inference_mode():
                for _ in range(n):
                    model(x)

    run(5)
    return timed(run, steps, repeats)


# --- orchestration ----------------------------------------------------------------------------------------------------
def worker(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lib", choices=["jax", "torch"])
    p.add_argument("--name")
    p.add_argument("--mode")
    p.add_argument("--steps", type=int)
    p.add_argument("--repeats", type=int)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cpu", type=int, default=None)
    p.add_argument("--go", default=None)
    p.add_argument("--nchw", action="store_true")
    a = p.parse_args(argv)
    if a.lib == "jax":
        runtime.configure_threads(a.threads, a.cpu)
        result = jax_measure(a.name, a.mode, a.steps, a.repeats, a.go)
    else:
        result = torch_measure(a.name, a.mode, a.steps, a.repeats, channels_last=not a.nchw)
    print("RESULT " + json.dumps(result), flush=True)


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, WORKER_MARK, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def collect(proc: subprocess.Popen) -> list[float] | str:
    out, err = proc.communicate()
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return (err.strip().splitlines() or ["no output"])[-1]


def run_one(lib: str, name: str, mode: str, steps: int, repeats: int, *extra: str,
            env: dict[str, str] | None = None) -> list[float] | str:
    return collect(spawn(["--lib", lib, "--name", name, "--mode", mode, "--steps", str(steps),
                          "--repeats", str(repeats), *extra], env))


def run_two_jax(name: str, steps: int, repeats: int) -> list[float] | str:
    """Two single-threaded JAX trainers pinned to cores 0 and 1, timed together; per-repeat sums."""
    go = f"/tmp/kwsnas-bench-go-{os.getpid()}"
    procs = [spawn(["--lib", "jax", "--name", name, "--mode", "train", "--steps", str(steps), "--repeats",
                    str(repeats), "--threads", "1", "--cpu", str(cpu), "--go", go]) for cpu in (0, 1)]
    deadline = time.time() + 600
    while len(list(Path("/tmp").glob(Path(go).name + ".ready*"))) < 2 and time.time() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    Path(go).touch()
    results = [collect(p) for p in procs]
    for f in Path("/tmp").glob(Path(go).name + "*"):
        f.unlink()
    if any(isinstance(r, str) for r in results):
        return next(r for r in results if isinstance(r, str))
    return [a + b for a, b in zip(*results, strict=True)]


def fmt(r: list[float] | str) -> str:
    if isinstance(r, str):
        return f"failed: {r}"
    return f"best {max(r):7.0f}  median {statistics.median(r):7.0f}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == WORKER_MARK:
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ds-cnn-s", "micronet-kws-s"])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per repeat (>= 30)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3,
                        help="JAX and PyTorch training runs alternate this many times (noisy shared machines)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["two", "torch", "infer", "e2e", "plain"])
    args = parser.parse_args()
    runtime.ensure_fast_allocator()  # re-executes once: workers inherit GLIBC_TUNABLES
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    print(f"batch {BATCH}, {os.cpu_count()} CPUs, allocator tuned: {runtime.allocator_is_tuned()}, "
          f"torch: {torch_version or 'not installed'}, load average {os.getloadavg()[0]:.2f}")
    print("samples/s: best and median of", args.repeats, "runs of", args.steps, "steps after a warm-up")
    for name in args.models:
        if get_spec(name) is None:
            print(f"{name}: no such preset here, skipped")
            continue
        print(f"== {name}")
        with_torch = torch_version is not None and "torch" not in args.skip
        jax_train, torch_train, ratios = [], [], []
        for _ in range(args.rounds):  # alternate the two sides: a shared machine's load hits both alike
            j = run_one("jax", name, "train", args.steps, args.repeats)
            t = run_one("torch", name, "train", args.steps, args.repeats) if with_torch else "skipped"
            jax_train += [] if isinstance(j, str) else j
            torch_train += [] if isinstance(t, str) else t
            if not isinstance(j, str) and not isinstance(t, str):
                ratios.append(statistics.median(j) / statistics.median(t))
            if isinstance(j, str) or (with_torch and isinstance(t, str)):
                print(f"  failed: {j if isinstance(j, str) else t}")
                break
        print(f"  JAX train, 1 process (2 threads)        {fmt(jax_train or 'no run')}")
        if "plain" not in args.skip:
            plain = run_one("jax", name, "train", args.steps, args.repeats, env={"KWSNAS_NATIVE": "0"})
            print(f"  JAX train, pure-JAX path (no kernels)   {fmt(plain)}")
        if "two" not in args.skip:
            print(f"  JAX train, 2 processes x 1 thread (sum) {fmt(run_two_jax(name, args.steps, args.repeats))}")
        if "infer" not in args.skip:
            print(f"  JAX inference                            {fmt(run_one('jax', name, 'infer', args.steps * 5, args.repeats))}")
        if "e2e" not in args.skip:
            print(f"  JAX train end to end (augment + MFCC)    {fmt(run_one('jax', name, 'e2e', args.steps, args.repeats))}")
        if not with_torch:
            print("  PyTorch peer: skipped" + ("" if torch_version else
                                               " (torch not installed; pip install torch==2.13.0, the 'bench' extra)"))
            continue
        print(f"  PyTorch train (eager, 2 thr, NHWC)       {fmt(torch_train or 'no run')}")
        print(f"  PyTorch train (eager, 2 thr, NCHW)       {fmt(run_one('torch', name, 'train', args.steps, args.repeats, '--nchw'))}")
        if "infer" not in args.skip:
            print(f"  PyTorch inference                        {fmt(run_one('torch', name, 'infer', args.steps * 5, args.repeats))}")
        if ratios:
            print(f"  JAX / PyTorch-NHWC training, per round (medians): "
                  f"{', '.join(f'{r:.2f}x' for r in ratios)}; median {statistics.median(ratios):.2f}x")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
