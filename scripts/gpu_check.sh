#!/usr/bin/env bash
# The GPU checks in one run that fits a 10-minute window on one GPU (e.g. a lent device machine):
#
#   bash scripts/gpu_check.sh OUT        # OUT/summary.md, OUT/gpu_check.log, OUT/steps/NN-STEP.log, OUT/*.json
#
#   1. env          torch, CUDA, the device, its memory, bf16, whether ray / polars import     (30 s)
#   2. fold-batch   fold-batched == one fold at a time on CUDA (fp32, TF32 off) for STSTNet and
#                   Off-ApexNet, then the fold-batched speed-up at 68 folds                     (120 s)
#   3. hsta-step    hsta_base_224, batch 32, its recipe: step time and peak memory in fp32 and
#                   bf16, inputs staged on the GPU against gathered on the host (samples/s)    (90 s)
#   4. small-steps  ststnet, off_apexnet, htnet, htnet_small, c3d, timesformer, hsta_flow: step times
#                   at their paper input sizes, bf16 and fp32                                   (60 s)
#   5. profile      hsta-bench profile --device cuda on hsta_base_224: sdpa, flash, efficient,
#                   cuDNN in fp32 and bf16, against a GPU-sized matrix-product ceiling         (150 s)
#   6. causalnet    CausalNet as released (276.6 M parameters) on its own real inputs (causalnet-composite):
#                   its paper recipe (Adam 5e-5, batch 1024) for 20 of its 200 epochs over 5 subject folds,
#                   with the selection audit (--audit), into the runs' folder                     (150 s)
#   7. runs         real composite rows at the paper recipe (ststnet, off_apexnet, htnet, hsta_flow),
#                   each under what is left of the window, with the selection audit (--audit), then
#                   their leaderboard. htnet is HTNet as released (139.6 M parameters, 800 epochs at
#                   batch 256 over 68 folds: ~3 days on a 2-core CPU); a run the window cuts is resumed
#
# Steps 2-4 are scripts/gpu_checks.py. Every step runs under `timeout`; its output goes to the terminal,
# OUT/gpu_check.log and OUT/steps/NN-STEP.log as it comes. A step that fails or times out is reported
# (name, exit code) and the next one runs; OUT/summary.md gets a table (step, status, exit, seconds) and
# the checks' own tables. Exit 1 when a step failed or timed out (a run cut by the window is `cut`,
# not a failure: `hsta-bench run --resume` finishes it), 130 when interrupted, 2 on a bad setting.
# Steps needing what the machine lacks (Ray and polars for the runs, the composite's data, typer / rich /
# matplotlib for the profile) are `skipped`, saying why. The package runs from this checkout (PYTHONPATH).
#
# Settings (environment variables):
#   PYTHON             the interpreter (default: python3, or this checkout's .venv when only it has torch)
#   GPU_CHECK_STEPS    steps to run, comma-separated, each optionally NAME=SECONDS for its own timeout
#                      (default env,fold-batch,hsta-step,small-steps,profile,runs,leaderboard)
#   GPU_CHECK_SCALE    multiplies the budgets of steps 1-5 and of the leaderboard (default 1)
#   GPU_CHECK_WINDOW   seconds the whole check may take; the runs get what is left (default 560)
#   GPU_CHECK_DEVICE   cuda (default) or cpu;  GPU_CHECK_QUICK=1: tiny sizes and the smoke preset, so the
#                      whole script can be tried on a CPU (GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1)
#   GPU_CHECK_DATA     the MEGC2019 composite (default ../shared/data/megc2019-composite, or shared/...)
#   GPU_CHECK_MODELS   the models of the runs (default "ststnet off_apexnet htnet hsta_flow")
#   GPU_CHECK_CAUSAL_DATA  CausalNet's composite (default ../shared/data/causalnet-composite, or shared/...)
set -uo pipefail
if [[ -z ${EPOCHREALTIME:-} ]]; then echo "gpu_check: needs bash 5 or newer (this is $BASH_VERSION)" >&2; exit 2; fi

OUT_ARG=${1:-results/gpu-check}
mkdir -p "$OUT_ARG" || exit 2
OUT=$(cd "$OUT_ARG" && pwd)
CALLER=$PWD  # relative paths in PYTHON and GPU_CHECK_DATA are the caller's
[[ ${PYTHON:-} == */* && $PYTHON != /* ]] && PYTHON=$CALLER/$PYTHON
[[ -n ${GPU_CHECK_DATA:-} && $GPU_CHECK_DATA != /* ]] && GPU_CHECK_DATA=$CALLER/$GPU_CHECK_DATA
cd "$(dirname "$0")/.." || exit 2
REPO=$PWD
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 LC_NUMERIC=C

STEP_NAMES=(env fold-batch hsta-step small-steps profile causalnet runs leaderboard)
declare -A BUDGET=([env]=30 [fold-batch]=120 [hsta-step]=90 [small-steps]=60 [profile]=150 [causalnet]=150 [runs]=0
                   [leaderboard]=30)
declare -A SELECTED=() OWN=()
IFS=',' read -r -a wanted <<<"${GPU_CHECK_STEPS:-$(IFS=,; echo "${STEP_NAMES[*]}")}"
for item in "${wanted[@]}"; do
    item=${item//[[:space:]]/}
    [[ -z $item ]] && continue
    name=${item%%=*}
    if [[ -z ${BUDGET[$name]+x} ]]; then
        echo "gpu_check: GPU_CHECK_STEPS: unknown step '$name' (steps: ${STEP_NAMES[*]})" >&2
        exit 2
    fi
    SELECTED[$name]=1
    [[ $item == *=* ]] && OWN[$name]=${item#*=}
done
DEVICE=${GPU_CHECK_DEVICE:-cuda}
if [[ $DEVICE != cuda && $DEVICE != cpu ]]; then
    echo "gpu_check: GPU_CHECK_DEVICE=$DEVICE: expected cuda or cpu" >&2
    exit 2
fi
QUICK=()
[[ ${GPU_CHECK_QUICK:-0} == 1 ]] && QUICK=(--quick)
SCALE=${GPU_CHECK_SCALE:-1}
WINDOW=${GPU_CHECK_WINDOW:-560}
MODELS=${GPU_CHECK_MODELS:-ststnet off_apexnet htnet hsta_flow}
DATA=${GPU_CHECK_DATA:-}
if [[ -z $DATA ]]; then
    for candidate in ../shared/data/megc2019-composite shared/data/megc2019-composite; do
        [[ -d $candidate ]] && { DATA=$(cd "$candidate" && pwd); break; }
    done
fi
[[ -n ${GPU_CHECK_CAUSAL_DATA:-} && $GPU_CHECK_CAUSAL_DATA != /* ]] && GPU_CHECK_CAUSAL_DATA=$CALLER/$GPU_CHECK_CAUSAL_DATA
CAUSAL_DATA=${GPU_CHECK_CAUSAL_DATA:-}
if [[ -z $CAUSAL_DATA ]]; then
    for candidate in ../shared/data/causalnet-composite shared/data/causalnet-composite; do
        [[ -d $candidate ]] && { CAUSAL_DATA=$(cd "$candidate" && pwd); break; }
    done
fi
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    if ! python3 -c 'import torch' 2>/dev/null && [[ -x $REPO/.venv/bin/python ]] \
        && "$REPO/.venv/bin/python" -c 'import torch' 2>/dev/null; then
        PYTHON=$REPO/.venv/bin/python
    fi
fi

LOG=$OUT/gpu_check.log
mkdir -p "$OUT/steps"
rm -f "$OUT"/steps/*.log "$OUT"/{env,fold-batch,hsta-step,small-steps}.{json,md} "$OUT/summary.md"
: >"$LOG"
T0=$EPOCHREALTIME
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
ROWS=()  # step|status|exit|seconds|note
FAILED=0
INTERRUPTED=""
STEP_PID=""
N=0

say() { printf '%s\n' "$*" | tee -a "$LOG"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
scaled() { awk -v a="$1" -v s="$SCALE" 'BEGIN { printf "%g", a * s }'; }
left() { awk -v w="$WINDOW" -v a="$T0" -v b="$EPOCHREALTIME" -v r="$1" 'BEGIN { printf "%d", w - (b - a) - r }'; }
budget_of() { if [[ -n ${OWN[$1]+x} ]]; then echo "${OWN[$1]}"; else scaled "${BUDGET[$1]}"; fi; }
selected() { [[ -n ${SELECTED[$1]+x} ]]; }
record() { ROWS+=("$1|$2|$3|$4|$5"); [[ $2 == failed || $2 == "timed out" ]] && FAILED=1; return 0; }

skip() {  # NAME WHY
    say ""
    say "== $1: skipped: $2"
    record "$1" skipped - 0 "$2"
}

on_signal() {  # Ctrl-C or a TERM: stop the running step (timeout passes the signal to its whole group)
    INTERRUPTED=$1
    [[ -n $STEP_PID ]] && kill -s INT "$STEP_PID" 2>/dev/null
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

run_step() {  # NAME BUDGET [--cut] [--int] -- COMMAND...: run under timeout, tee'd; sets STEP_RC
    local name=$1 budget=$2 cut="" signal=TERM grace=15
    shift 2
    while [[ $1 == --* ]]; do
        case $1 in --cut) cut=1 ;; --int) signal=INT grace=30 ;; --) shift; break ;; esac
        shift
    done
    N=$((N + 1))
    local file fifo start rc tee_pid status
    printf -v file '%s/steps/%02d-%s.log' "$OUT" "$N" "$name"
    fifo=$OUT/steps/.fifo-$$
    say ""
    say "== [$N] $name (timeout ${budget}s): $*"
    printf '$ %s\n' "$*" >"$file"
    rm -f "$fifo" && mkfifo "$fifo"
    tee -a "$LOG" "$file" <"$fifo" &
    tee_pid=$!
    start=$EPOCHREALTIME
    timeout -k "$grace" -s "$signal" "$budget" "$@" </dev/null >"$fifo" 2>&1 &
    STEP_PID=$!
    wait "$STEP_PID"
    rc=$?
    while kill -0 "$STEP_PID" 2>/dev/null; do  # wait was cut short by a signal: the step is still stopping
        wait "$STEP_PID"
        rc=$?
    done
    STEP_PID=""
    for _ in $(seq 50); do kill -0 "$tee_pid" 2>/dev/null || break; sleep 0.1; done
    kill "$tee_pid" 2>/dev/null; wait "$tee_pid" 2>/dev/null
    rm -f "$fifo"
    local secs
    secs=$(since "$start")
    if [[ -n $INTERRUPTED ]]; then status=interrupted
    elif [[ $rc == 0 ]]; then status=ok
    elif [[ $rc == 124 || $rc == 137 ]]; then
        if [[ -n $cut ]]; then status=cut; else status="timed out"; fi
    else status=failed
    fi
    local note=""
    [[ $status == "timed out" ]] && note="stopped after ${budget}s"
    [[ $status == failed ]] && note=$(grep -v '^\s*$' "$file" | tail -n 1 | cut -c1-160 | tr '|' '/')
    [[ $status == cut ]] && note="cut by the window after ${budget}s"
    record "$name" "$status" "$rc" "$secs" "$note"
    say "-- $name: $status (exit $rc, ${secs}s)${note:+: $note}"
    STEP_RC=$rc
}

imports() { "$PYTHON" -c "import $1" >/dev/null 2>&1; }

write_summary() {
    {
        echo "# GPU check"
        echo
        echo "$(date -u '+%Y-%m-%d %H:%M UTC') on $HOSTNAME, commit $COMMIT, python \`$PYTHON\`,"
        echo "device $DEVICE${QUICK:+ (quick)}, $(since "$T0") s in all; logs: gpu_check.log, steps/"
        echo
        echo "| step | status | exit | seconds | note |"
        echo "|---|---|---|---|---|"
        local row
        for row in "${ROWS[@]}"; do
            IFS='|' read -r a b c d e <<<"$row"
            echo "| $a | $b | $c | $d | ${e:--} |"
        done
        local md
        for md in env fold-batch hsta-step small-steps; do
            [[ -f $OUT/$md.md ]] && { echo; cat "$OUT/$md.md"; }
        done
        local report
        report=$(ls -t "$OUT"/profile/profile-*/report-*.md 2>/dev/null | head -n 1)
        [[ -n $report ]] && { echo; echo "### profile"; echo; echo "report: ${report#"$OUT"/}"; }
        [[ -f $OUT/leaderboard.md ]] && printf '\n### runs\n\nleaderboard: leaderboard.md (runs in runs/)\n'
    } >"$OUT/summary.md"
    say ""
    say "$(sed -n '/^| step/,/^$/p' "$OUT/summary.md")"
    say "summary: $OUT/summary.md"
}

finish() {
    write_summary
    if [[ -n $INTERRUPTED ]]; then exit 130; fi
    exit "$FAILED"
}

say "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $HOSTNAME, repo $REPO, output $OUT"
chosen=""
for name in "${STEP_NAMES[@]}"; do selected "$name" && chosen+=" $name${OWN[$name]+=${OWN[$name]}}"; done
say "python: $PYTHON; device: $DEVICE${QUICK:+ (quick)}; steps:$chosen; budget scale $SCALE; window ${WINDOW}s"

# 1-4: scripts/gpu_checks.py (torch, numpy, pyyaml, pydantic)
if selected env; then
    run_step env "$(budget_of env)" -- "$PYTHON" scripts/gpu_checks.py env --device "$DEVICE" --out "$OUT"
fi
for check in fold-batch hsta-step small-steps; do
    [[ -n $INTERRUPTED ]] && finish
    selected "$check" || continue
    run_step "$check" "$(budget_of "$check")" -- "$PYTHON" scripts/gpu_checks.py "$check" --device "$DEVICE" \
        --out "$OUT" "${QUICK[@]}"
done
[[ -n $INTERRUPTED ]] && finish

# 5: the profiler on the paper-size model, every pinned sdpa kernel, fp32 and bf16
if selected profile; then
    if ! imports "typer, rich, matplotlib, yaml"; then
        skip profile "typer, rich, matplotlib or pyyaml is not importable with $PYTHON"
    else
        if [[ -n ${QUICK[*]} ]]; then
            sizes=(--preset smoke --model hsta_tiny --repeats 1 --set profile.ceiling_size=256
                   --set profile.min_seconds=0)
        else  # batch 8: the cases a training step makes, big enough for the GPU; an 8192² ceiling for a GPU
            sizes=(--model hsta_base_224 --batch 8 --set profile.ceiling_size=8192)
        fi
        run_step profile "$(budget_of profile)" -- "$PYTHON" -m hsta_bench profile --device "$DEVICE" "${sizes[@]}" \
            --backend sdpa --backend sdpa-flash --backend sdpa-efficient --backend sdpa-cudnn \
            --dtype fp32 --dtype bf16 --output "$OUT/profile"
    fi
fi
[[ -n $INTERRUPTED ]] && finish

# 6: CausalNet as released on its own inputs, briefly: its recipe for 20 epochs over 5 subject folds, audited
if selected causalnet; then
    why=""
    if ! imports "ray, polars"; then why="Ray or polars is not importable with $PYTHON (the run needs both)"
    elif [[ -z $CAUSAL_DATA || ! -f $CAUSAL_DATA/combined_3_class2_for_optical_flow.csv ]]; then
        why="CausalNet's composite is not here (${CAUSAL_DATA:-../shared/data/causalnet-composite}; set GPU_CHECK_CAUSAL_DATA)"
    elif [[ $DEVICE == cuda ]] && ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' \
        2>/dev/null; then
        why="torch sees no CUDA device: 276.6 M parameters at batch 1024 would take hours on the CPU"
    fi
    if [[ -n $why ]]; then skip causalnet "$why"
    else
        recipe=(--preset paper --set models.causalnet.train.epochs=20)
        # quick (a CPU try of the script): the same code at a reduced width, one epoch
        [[ -n ${QUICK[*]} ]] && recipe=(--preset smoke --set presets.smoke.train.epochs=1
            --set models.causalnet.model.dim=16 --set 'models.causalnet.model.depths=[1,1,1]'
            --set models.causalnet.model.head_hidden=32)
        run_step causalnet "$(budget_of causalnet)" --cut --int -- "$PYTHON" -m hsta_bench run \
            --dataset causalnet-composite --data-root "causalnet-composite=$CAUSAL_DATA" --model causalnet \
            "${recipe[@]}" --set evaluation.scheme=kfold --set evaluation.k=5 --audit --output "$OUT/runs"
    fi
fi
[[ -n $INTERRUPTED ]] && finish

# 7: real composite rows at the paper recipe, as many as fit the window, then their leaderboard
if selected runs; then
    why=""
    if ! imports "ray, polars"; then why="Ray or polars is not importable with $PYTHON (the runs need both)"
    elif [[ -z $DATA || ! -f $DATA/combined_3_class2_for_optical_flow.csv ]]; then
        why="the MEGC2019 composite is not here (${DATA:-../shared/data/megc2019-composite}; set GPU_CHECK_DATA)"
    elif [[ $DEVICE == cuda ]] && ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' \
        2>/dev/null; then
        why="torch sees no CUDA device: the paper recipes would take hours on the CPU"
    fi
    reserve=$(awk -v a="$(budget_of leaderboard)" 'BEGIN { printf "%d", a + 45 }')  # the leaderboard + a run's stop
    preset=(--preset paper)
    [[ -n ${QUICK[*]} ]] && preset=(--preset smoke --set presets.smoke.train.epochs=1)
    [[ -n $why ]] && skip runs "$why"
    for model in $MODELS; do
        [[ -n $INTERRUPTED ]] && finish
        [[ -n $why ]] && break
        budget=$(left "$reserve") least=60
        if [[ -n ${OWN[runs]+x} ]]; then  # runs=SECONDS: at most that each
            budget=$(awk -v a="$budget" -v b="${OWN[runs]}" 'BEGIN { printf "%d", b < a ? b : a }')
            least=$(awk -v b="${OWN[runs]}" 'BEGIN { printf "%d", b < 60 ? b : 60 }')
        fi
        if (( budget < least )); then skip "run-$model" "no time left in the ${WINDOW}s window"; continue; fi
        run_step "run-$model" "$budget" --cut --int -- "$PYTHON" -m hsta_bench run --dataset megc2019-flow \
            --data-root "megc2019-flow=$DATA" --model "$model" "${preset[@]}" --audit --output "$OUT/runs"
        if [[ $STEP_RC == 124 || $STEP_RC == 137 ]]; then
            last=$(ls -t "$OUT/runs" 2>/dev/null | head -n 1)
            say "   finish it later: hsta-bench run --resume $last --output $OUT/runs"
        fi
    done
fi
[[ -n $INTERRUPTED ]] && finish
if selected leaderboard; then
    if ! compgen -G "$OUT/runs/*/run.json" >/dev/null; then skip leaderboard "no runs in $OUT/runs"
    elif ! imports polars; then skip leaderboard "polars is not importable with $PYTHON"
    else
        run_step leaderboard "$(budget_of leaderboard)" -- "$PYTHON" -m hsta_bench leaderboard "$OUT/runs" \
            --output "$OUT/leaderboard.md"
    fi
fi
finish
