#!/bin/bash
# The GPU checks, one prepared script for a lent GPU machine (session 23 ran it on an H200;
# RESULTS.md "dreamer on a GPU"):
# --device cuda for every method, the speed table, then the GPU preset on CarRacing until
# DEADLINE seconds. Every step is independent; logs go to $OUT (default gpu_out/).
#   OUT=/tmp/gpu DEADLINE=450 bash benchmarks/gpu_checks.sh     (DEV=cpu: the same on the CPU)
# Wheels in .whl/ (packages the machine lacks) are installed into /tmp/site first.
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD/src:$PWD/benchmarks SDL_VIDEODRIVER=dummy
DEADLINE=${DEADLINE:-470}
DEV=${DEV:-cuda}
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"; L=$OUT/log.txt
step() { echo "=== [$SECONDS s] $*" | tee -a $L; }
step setup
[ -d .whl ] && { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >>$L 2>&1 || echo "pip failed" | tee -a $L; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>$L 2>&1
python3 -c "import torch,gymnasium,sys;print(sys.version.split()[0],torch.__version__,torch.cuda.is_available(),gymnasium.__version__)" >>$L 2>&1
W="python3 -m worldmodels"
R=/tmp/r
step "dreamer CartPole debug, killed then resumed"
timeout -s KILL 15 $W train --env CartPole-v1 --method dreamer --preset debug --set dreamer.total_steps=600 --device $DEV --seed 0 --run-dir $R/cp --quiet >>$L 2>&1; echo "rc=$? (137 = killed)" >>$L
tail -n 1 $R/cp/curve.jsonl >>$L 2>&1
timeout 100 $W train --run-dir $R/cp --resume --device $DEV --quiet >>$L 2>&1; echo "resume rc=$?" >>$L
tail -n 1 $R/cp/curve.jsonl >>$L 2>&1
timeout 40 $W diagnose --run-dir $R/cp --device $DEV --max-starts 200 --horizon 5 --quiet 2>&1 | tail -3 >>$L; echo "diagnose rc=$?" >>$L
timeout 40 python3 benchmarks/dream_envs_check.py $R/cp $DEV >>$L 2>&1; echo "dream rc=$?" >>$L
step "dreamer CarRacing debug (pixels)"
timeout 90 $W train --env CarRacing-v3 --method dreamer --preset debug --device $DEV --seed 0 --run-dir $R/car --quiet >>$L 2>&1; echo "rc=$?" >>$L
timeout 40 $W diagnose --run-dir $R/car --device $DEV --max-starts 50 --quiet 2>&1 | tail -2 >>$L; echo "diagnose rc=$?" >>$L
step "speed"
S=$OUT/speed.md
for a in "--env CartPole-v1" "--env CarRacing-v3 --preset gpu --fill 1500" "--env CarRacing-v3 --preset gpu --fill 1500 --set dreamer.bf16=false"; do
  timeout 80 python3 benchmarks/dreamer_speed.py $a --device $DEV --threads 1 --updates 10 >>$S 2>&1; echo "rc=$? ($a)" >>$S
done
step "other methods, CartPole debug"
for m in classic dream a2c wm-ppo mpc ppo; do
  timeout 40 $W train --env CartPole-v1 --method $m --preset debug --device $DEV --run-dir $R/m_$m --quiet 2>&1 | tail -2 >>$L; echo "$m rc=${PIPESTATUS[0]}" >>$L
done
step "classic CarRacing debug"
timeout 60 $W train --env CarRacing-v3 --method classic --preset debug --device $DEV --run-dir $R/car_classic --quiet 2>&1 | tail -2 >>$L; echo "rc=${PIPESTATUS[0]}" >>$L
step "dreamer CarRacing --preset gpu until the deadline"
left=$((DEADLINE - SECONDS)); echo "seconds left: $left" >>$L
if [ $left -gt 45 ]; then
  timeout -s KILL $left $W train --env CarRacing-v3 --method dreamer --preset gpu --device $DEV --seed 0 --run-dir $R/cargpu --quiet >>$L 2>&1; echo "rc=$?" >>$L
  cp $R/cargpu/curve.jsonl $OUT/cargpu_curve.jsonl; cp $R/cargpu/counters.json $OUT/cargpu_counters.json
  python3 -c "
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator as E
a=E('$R/cargpu/tb');a.Reload()
for t in sorted(a.Tags()['scalars']):
    s=a.Scalars(t); print(t, len(s), [(x.step, round(x.value,3)) for x in s[::max(1,len(s)//6)]][:8])
" >$OUT/cargpu_tb.txt 2>&1
fi
step done
