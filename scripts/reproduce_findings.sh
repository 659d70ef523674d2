#!/usr/bin/env bash
# Reproduce the benchmark numbers of docs/findings.md and the shipped model cards from the
# field's test sets. Resumable: each step (one task x one test set, one study) writes its own
# folder and a done-marker; run the script again after a kill and it skips what is done and
# redoes only the step that was cut.
#
#   .venv/bin/python scripts/prepare_testsets.py --swinir SWINIR_CLONE --denoising DENOISING_CLONE
#   bash scripts/reproduce_findings.sh [STEP_PREFIX ...]      # e.g. "eval/sr-x2" or "study"
#
# Test sets: runs/testsets (TESTSETS=...), written by scripts/prepare_testsets.py; results:
# runs/findings (FINDINGS=...). Both git-ignored. fp32 everywhere, the eval protocol of
# docs/evaluation.md (MATLAB bicubic LR where the set has none, crop border = scale, Y channel).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup-venv.sh
sets="${TESTSETS:-runs/testsets}"
out="${FINDINGS:-runs/findings}"
weights=src/resyn/weights
for s in Set5 Set14 CBSD68 Urban100 Manga109 McMaster; do
    [ -d "$sets/$s" ] || { echo "error: $sets/$s is missing; run scripts/prepare_testsets.py" >&2; exit 2; }
done
mkdir -p "$out/.done"
wanted=("$@")

# step NAME COMMAND...: run unless done (or not selected); mark done only when it succeeds.
step() {
    local name=$1; shift
    local marker="$out/.done/${name//\//_}"
    if [ ${#wanted[@]} -gt 0 ]; then
        local w hit=0
        for w in "${wanted[@]}"; do [[ $name == "$w"* ]] && hit=1; done
        [ $hit = 1 ] || return 0
    fi
    if [ -f "$marker" ]; then echo "[findings] done: $name"; return 0; fi
    echo "[findings] running: $name"
    local start=$SECONDS rc=0
    "$@" || rc=$?
    if [ $rc = 3 ]; then return 0; fi  # its inputs are not there yet (said why); not done
    [ $rc = 0 ] || exit $rc
    echo "$((SECONDS - start)) s, $(date -u +%FT%TZ), $(nproc) cpu" > "$marker"
}

# eval TASK SET MODEL...: one benchmark folder, into OUT/eval/TASK/SET (rewritten whole).
eval_set() {
    local task=$1 set=$2; shift 2
    local dest="$out/eval/$task/$set"
    rm -rf "$dest"
    local models=() m
    for m in "$@"; do
        if [[ $m == *=*.safetensors && ! -f ${m#*=} ]]; then
            echo "[findings] not yet: ${m#*=} does not exist (its training step comes first)"
            return 3
        fi
        models+=(-m "$m")
    done
    .venv/bin/resyn eval "${models[@]}" -d "$set=$sets/$set" --task "$task" -o "$dest" \
        --precision fp32
}

# study EVAL_DIR SET TASK OUT: resyn study complexity over a finished evaluation.
study() {
    local from=$1 set=$2 task=$3 dest=$4
    if [ ! -f "$from/summary.csv" ]; then
        echo "[findings] not yet: $from is not evaluated (its eval step comes first)"
        return 3
    fi
    .venv/bin/resyn study complexity --from-eval "$from" -d "$set=$sets/$set" --task "$task" \
        -o "$dest"
}

# Shipped weights against their baseline, cheapest first (so an interrupted session still
# leaves whole sets behind): small SR sets, x4 before x2, then denoising.
for set in Set5 Set14 CBSD68; do
    step "eval/sr-x4/$set" eval_set sr-x4 "$set" bicubic "sr-x4=$weights/sr-x4.safetensors"
    step "eval/sr-x2/$set" eval_set sr-x2 "$set" bicubic "sr-x2=$weights/sr-x2.safetensors"
done
for set in Urban100 Manga109; do
    step "eval/sr-x4/$set" eval_set sr-x4 "$set" bicubic "sr-x4=$weights/sr-x4.safetensors"
    step "eval/sr-x2/$set" eval_set sr-x2 "$set" bicubic "sr-x2=$weights/sr-x2.safetensors"
done
for set in CBSD68 McMaster; do
    step "eval/denoise-25/$set" eval_set denoise-25 "$set" input \
        "denoise-25=$weights/denoise-25.safetensors"
done

# Finding 1: complexity vs BPP as predictors of per-image PSNR, from the evaluations above
# (no model is run again), with bootstrap 95% intervals.
for task in sr-x2 sr-x4; do
    for set in Urban100 Manga109; do
        step "study/$task/$set" study "$out/eval/$task/$set" "$set" "$task" \
            "$out/study/$task/$set"
    done
done

# Training data for findings 2 and 3, from the offline pools only (scripts/build_training_pool.py:
# 512-px tiles of data/train's sources; never a test set). "balanced": the ReSyn rule around the
# tiles' median complexity; "skewed": the same pools and set size with 85% of the images at/below
# that centre (the DF2K-like case of the paper's Fig. 2).
pool=runs/pool
build_pool() { .venv/bin/python scripts/build_training_pool.py --out "$pool"; }
build_set() {
    local name=$1 share=$2
    .venv/bin/resyn dataset build --source "real=$pool/real:real" \
        --source "synthetic=$pool/synthetic:synthetic" --out "$out/data/$name" --min-size 256 \
        --center "$(cat "$pool/center.txt")" --scales 2 --low-share "$share" --workers 1
}
step "data/pool" build_pool
step "data/balanced" build_set balanced 0.5
step "data/skewed" build_set skewed 0.85

# One budget for every model (issue 14: equal parameters, equal budget): light-sr-x2-50k with
# the batch and patch a CPU affords, the same seed, data order and iterations. FINDINGS_ITERS
# (default 2000) and FINDINGS_THREADS (default 1 per run) are recorded in each run.json.
iters="${FINDINGS_ITERS:-2000}"
train_x2() {
    local name=$1 model=$2 data=$3
    local run="$out/train/$name" resume=()
    [ -f "$run/model.safetensors" ] && return 0
    [ -f "$run/checkpoints/last.ckpt" ] && resume=(--resume)
    mkdir -p "$out/train"
    OMP_NUM_THREADS="${FINDINGS_THREADS:-1}" .venv/bin/resyn train light-sr-x2-50k --model "$model" \
        --train "$out/data/$data" --val data/test/ReSynDemo --out "$run" --accelerator cpu \
        --workers 0 --no-progress --seed 0 --set batch=8 --set patch=64 \
        --set iterations="$iters" --set "sched.milestones=[$((iters * 4 / 5))]" \
        --set val.every="$((iters / 4))" --set checkpoint_every=25 --set log_every=10 \
        "${resume[@]}" >> "$out/train/$name.log" 2>&1
}
step "train/rwkvir-light-balanced" train_x2 rwkvir-light-balanced rwkvir-light balanced
step "train/rwkvir-light-skewed" train_x2 rwkvir-light-skewed rwkvir-light skewed
step "train/swinir-light-balanced" train_x2 swinir-light-balanced swinir-light balanced
step "train/mambair-light-balanced" train_x2 mambair-light-balanced mambair-light balanced

# Finding 3: the three architectures at equal budget on the five SR sets (bicubic alongside).
trained() { echo "$1=$out/train/$2/model.safetensors"; }
for set in Set5 Set14 CBSD68 Urban100 Manga109; do
    step "eval/sr-x2-equal-budget/$set" eval_set sr-x2 "$set" bicubic \
        "$(trained RWKV-IR rwkvir-light-balanced)" "$(trained SwinIR swinir-light-balanced)" \
        "$(trained MambaIR mambair-light-balanced)"
    [[ $set == Urban100 || $set == Manga109 ]] || continue
    # Finding 2: balanced against skewed training data, per complexity bin.
    step "eval/sr-x2-balance/$set" eval_set sr-x2 "$set" \
        "$(trained balanced rwkvir-light-balanced)" "$(trained skewed rwkvir-light-skewed)"
    step "study/balance/$set" study "$out/eval/sr-x2-balance/$set" "$set" sr-x2 \
        "$out/study/balance/$set"
    step "study/equal-budget/$set" study "$out/eval/sr-x2-equal-budget/$set" "$set" sr-x2 \
        "$out/study/equal-budget/$set"
done

# The tables of docs/findings.md, the model cards and the README, from whatever is done so far.
if [ ${#wanted[@]} = 0 ] || [[ " ${wanted[*]} " == *" report "* ]]; then
    .venv/bin/python scripts/findings_report.py --findings "$out" --out docs
fi
