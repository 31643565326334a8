"""Feasibility timing for the Multi30k En-De benchmark (Platanios et al. 2019 curriculum
issue): how many tokens/s, steps and how much val BLEU a small Transformer reaches on this
CPU in a fixed wall-clock budget, trained with hasten's own trainer.

    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python scripts/mt_feasibility.py --minutes 10

Prints one JSON line with the numbers at the end (and the BLEU curve on the way).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hasten.bench.mt_metrics import bleu, bleu_evaluator, translate
from hasten.data.translation import TranslationData, count_tokens, load_multi30k, train_bpe
from hasten.models.transformer import build_transformer, translation_loss
from hasten.trainer import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--src", default="en")
    ap.add_argument("--tgt", default="de")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=128, help="sentences per step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=float, default=0.05, help="fraction of the budget")
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--evals", type=int, default=4, help="BLEU evaluations during the run")
    ap.add_argument("--eval-limit", type=int, default=None, help="val sentences per eval")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    train_text = load_multi30k(args.src, args.tgt, "train")
    val_text = load_multi30k(args.src, args.tgt, "val")
    tok = train_bpe(train_text.src + train_text.tgt, args.vocab)
    train_data = TranslationData.from_text(train_text, tok)
    val_data = TranslationData.from_text(val_text, tok)
    prep = time.perf_counter() - t0
    print(f"data + BPE ({tok.vocab_size} pieces): {prep:.1f}s; "
          f"{train_data.tokens() / len(train_data):.1f} tokens per pair", flush=True)

    model = build_transformer(tok.vocab_size, d_model=args.d_model, heads=args.heads,
                              encoder_layers=args.layers, decoder_layers=args.layers,
                              ff=args.ff, dropout=0.1, pad_id=tok.pad_id, bos_id=tok.bos_id,
                              eos_id=tok.eos_id)
    params = sum(p.numel() for p in model.parameters())
    cfg = TrainConfig(budget=f"{args.minutes * 60:.0f}s", lr=args.lr, schedule="cosine",
                      schedule_params={"warmup": args.warmup, "final": 0.0},
                      micro_batch=args.batch, betas=(0.9, 0.98), weight_decay=0.01,
                      clip=1.0, precision=args.precision, eval_every=1.0 / args.evals,
                      metric="bleu", seed=args.seed, quiet=True, tensorboard=False,
                      device="cpu")
    evaluate = bleu_evaluator(val_data, val_text.tgt, tok, beam=1, limit=args.eval_limit)
    result = train(model, train_data, translation_loss(0.1, "token"), cfg, evaluate=evaluate,
                   tokens_fn=lambda b: count_tokens(b, tok.pad_id))
    for seconds, work, value in result.curve:
        print(f"  {seconds:7.1f}s train  step {work['steps']:6.0f}  val BLEU {value:.2f}",
              flush=True)
    t1 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        hyps = translate(model, val_data, tok, beam=1)
    decode_s = time.perf_counter() - t1
    report = {
        "params": params, "vocab": tok.vocab_size, "prep_s": round(prep, 1),
        "train_s": round(result.train_seconds, 1), "steps": result.steps,
        "tokens": result.work["tokens"],
        "tokens_per_s": round(result.work["tokens"] / result.train_seconds, 1),
        "sentences_per_s": round(result.work["examples_backpropagated"]
                                 / result.train_seconds, 1),
        "epochs": round(result.work["examples_backpropagated"] / len(train_data), 2),
        "val_bleu_greedy": round(bleu(hyps, val_text.tgt), 2), "val_decode_s": round(decode_s, 1),
        "eval_s": round(result.ledger.get("eval", 0.0), 1), "precision": args.precision,
        "threads": torch.get_num_threads(), "sample": hyps[:3],
    }
    print(json.dumps(report, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
