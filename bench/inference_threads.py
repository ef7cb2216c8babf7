"""Benchmark: how many threads a prediction command should use (`--threads`), per shipped model.

Runs each shipped model's command end to end (`dlcli tag|detect-faces ... --threads T`, start-up
included) with 1 and 2 threads, on an idle machine and beside a busy one (two processes spinning
on the CPU, as another job would), and reports the median wall time of each. The default that
dlcli/threads.py sets is the count that is best across these rows. Writes the table into
docs/benchmarks.md ("Threads for prediction").

    DLCLI_DATA_DIR=../shared/datasets python bench/inference_threads.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import replace_section

HEADING = "## Threads for prediction"


def workloads(root: Path, tmp: Path, n: int, photos: int) -> list[tuple[str, list[str], Path]]:
    """(what, command, input file) for every shipped model."""
    def write(name: str, lines: list[str]) -> Path:
        path = tmp / name
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    conll, sentence = [], []
    for line in (root / "conll2003_en" / "dev.iob1.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("-DOCSTART-"):
            sentence.append(line.split()[0])
        elif sentence:
            conll.append(" ".join(sentence))
            sentence = []
    pku = [line for line in (root / "cws_pku" / "dev.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    images = [json.loads(line)["image"] for line in (root / "faces_wider_train" / "annotations.jsonl")
              .read_text(encoding="utf-8").splitlines()[:photos]]
    return [
        (f"en-ner, {n:,} CoNLL-2003 dev sentences", ["tag", "en-ner"], write("en.txt", conll[:n])),
        (f"zh-seg, {n:,} PKU dev lines (unsegmented)", ["tag", "zh-seg"],
         write("zh_raw.txt", [x.replace(" ", "") for x in pku[:n]])),
        (f"zh-pos, {n:,} PKU dev lines (segmented)", ["tag", "zh-pos"], write("zh_seg.txt", pku[:n])),
        (f"zh-ner, {n:,} PKU dev lines (unsegmented)", ["tag", "zh-ner"],
         write("zh_ner.txt", [x.replace(" ", "") for x in pku[:n]])),
        (f"mtcnn, {photos} WIDER FACE photos", ["detect-faces", "-"],
         write("photos.txt", [str(root / "faces_wider_train" / x) for x in images])),
    ]


def timed(command: list[str], input_path: Path, threads: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    with open(input_path, "rb") as stdin:
        start = time.perf_counter()
        subprocess.run(["dlcli", *command, "--threads", str(threads)], stdin=stdin, stdout=subprocess.DEVNULL,
                       env=env, check=True)
        return time.perf_counter() - start


def busy(cores: int) -> list[subprocess.Popen]:
    """`cores` processes spinning on the CPU: another job on the machine."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DLCLI_DATA_DIR", "data")))
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for what, command, path in workloads(args.data_dir, Path(tmp), args.sentences, args.photos):
            cells = []
            for load in ("idle", "busy"):
                spinners = busy(os.cpu_count() or 2) if load == "busy" else []
                try:
                    for threads in (1, 2):
                        runs = [timed(command, path, threads) for _ in range(args.repeats)]
                        cells.append(statistics.median(runs))
                        print(f"{what}: {load}, {threads} thread(s): {', '.join(f'{t:.2f}' for t in runs)} s",
                              file=sys.stderr)
                finally:
                    for p in spinners:
                        p.kill()
            rows.append(f"| {what} | `dlcli {' '.join(command)}` | " + " | ".join(f"{t:.2f}" for t in cells) + " |")
    today = datetime.date.today().isoformat()
    section = [
        HEADING, "",
        f"Measured {today} on {os.cpu_count()} cores by `python bench/inference_threads.py`: median wall time in "
        f"seconds of {args.repeats} runs, start-up included; \"busy\": {os.cpu_count()} other processes spinning "
        "on the CPU, as another job would. The default of `--threads` (dlcli/threads.py) follows this table; "
        "`OMP_NUM_THREADS`, when set, takes its place.", "",
        "| input | command | idle, 1 thread | idle, 2 threads | busy, 1 thread | busy, 2 threads |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(section))
    if not args.no_append:
        replace_section(section)


if __name__ == "__main__":
    main()
