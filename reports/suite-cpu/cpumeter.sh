#!/bin/bash
# Measuring CPU of a command: busy and idle core-seconds of the whole machine (/proc/stat) over its run.
# usage: cpumeter.sh cmd...  -> prints busy core-seconds and wall
read -r _ u n s i w irq sirq st _ < /proc/stat
t0=$(date +%s.%N); b0=$((u+n+s+irq+sirq)); i0=$((i+w))
"$@"
rc=$?
read -r _ u n s i w irq sirq st _ < /proc/stat
t1=$(date +%s.%N); b1=$((u+n+s+irq+sirq)); i1=$((i+w))
python3 -c "print(f'wall {($t1-$t0):.1f}s busy {($b1-$b0)/100:.1f} core-s idle {($i1-$i0)/100:.1f} core-s')"
exit $rc
