"""What the real-learning tests' runs reach, over seeds and precisions: the ground for each test's bar, and for the
sizes that keep the suite quick. Each run is train.py's main() with the test's flags and another --seed and
--mixed_precision, in this process (as the tests run it), into --work; a finished run found there is read, not run
again. Prints one line per run and a table.

    python bench/real_learning_bars.py --only balanced pairs --seeds 42 1 2 --precisions bf16 no
    python bench/real_learning_bars.py --only pairs --pairs_sizes 600 1000 --pairs_tokens 64 96
"""
import argparse
import itertools
import json
import os
import pathlib
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the stand-in's folder (python standin_model.py DIR)")
    parser.add_argument("--imdb", default=os.path.join(SHARED, "imdb"))
    parser.add_argument("--ag_news", default=os.path.join(SHARED, "ag_news"))
    parser.add_argument("--work", default="/tmp/test-bars", help="the runs' folders")
    parser.add_argument("--only", nargs="+", default=["balanced", "pairs", "imdb", "topics", "sports_share"])
    parser.add_argument("--seeds", nargs="+", default=["42", "1", "2"])
    parser.add_argument("--precisions", nargs="+", default=["bf16", "no"])
    parser.add_argument("--balanced_sizes", nargs="+", default=["1000"])
    parser.add_argument("--pairs_sizes", nargs="+", default=["1000"])
    parser.add_argument("--pairs_tokens", nargs="+", default=["96"])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from conftest import in_process, make_rare, news_mixtures
    from test_after_the_first_run import news_pairs
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    table = []

    def run(name, data, flags, seed, precision, read):
        out = work / f"{name}-{precision}-{seed}"
        start = time.time()
        if not (out / "metrics.json").exists():
            proc = in_process("train", "--model_name", args.model, "--dataset_name", str(data), *flags, "--seed", seed,
                              "--mixed_precision", precision, "--output_dir", str(out))
            assert proc.returncode == 0, proc.stderr[-3000:]
        said = read(json.load(open(out / "metrics.json")))
        print(f"{name} {precision} seed {seed}: {said} ({time.time() - start:.0f} s)", flush=True)
        table.append((name, precision, seed, said))

    grid = list(itertools.product(args.precisions, args.seeds))
    if "balanced" in args.only:
        rare = work / "rare-sports"
        if not rare.exists():
            rare.mkdir()
            make_rare(args.ag_news, rare)
        for size, (precision, seed) in itertools.product(args.balanced_sizes, grid):
            for weights in ([], ["--class_weights", "balanced"]):
                run(f"balanced-{size}{'-weighted' if weights else ''}", rare,
                    ["--train_size", size, "--eval_size", "400", "--max_length", "128", "--validation_size", "100",
                     *weights], seed, precision,
                    lambda m: f"Sports recall {m['per_class']['Sports']['recall']:.3f}, macro F1 "
                              f"{m['eval_macro_f1']:.3f}, accuracy {m['eval_accuracy']:.3f}")
    if "pairs" in args.only:
        for size, tokens, (precision, seed) in itertools.product(args.pairs_sizes, args.pairs_tokens, grid):
            data = news_pairs(args.ag_news, work / f"pairs-{size}.jsonl", int(size) + 300)
            run(f"pairs-{size}-{tokens}", data, ["--text_column", "first", "second", "--label_column", "same",
                                                 "--train_size", size, "--eval_size", "300", "--max_length", tokens],
                seed, precision, lambda m: f"accuracy {m['eval_accuracy']:.3f}")
    if "imdb" in args.only:
        for precision, seed in grid:
            run("imdb", args.imdb, ["--train_size", "800", "--eval_size", "300", "--max_length", "64"], seed, precision,
                lambda m: f"accuracy {m['eval_accuracy']:.3f}")
    for label in ("topics", "sports_share"):
        if label in args.only:
            mixtures = work / "mixtures"
            if not (mixtures / "test.jsonl").exists():
                news_mixtures(args.ag_news, mixtures)
            for precision, seed in grid:
                run(label, mixtures, ["--label_column", label, "--train_size", "400", "--eval_size", "200",
                                      "--max_length", "96"], seed, precision,
                    lambda m: f"micro F1 {m['eval_micro_f1']:.3f}" if "eval_micro_f1" in m else
                    f"Spearman {m['eval_spearman']:.3f}, RMSE {m['eval_rmse']:.3f}")
    print("\n| run | precision | seed | result |\n|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
