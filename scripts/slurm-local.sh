#!/usr/bin/env bash
# A real single-node Slurm on this machine, for testing `adainf run --executor slurm`
# (Debian's slurmctld, slurmd, slurm-client and munge; as root). The configuration is the one
# ../shared/reference/gpu-and-cluster.md §4 saw running; state, spool and logs live in DIR.
#
#   scripts/slurm-local.sh start DIR   # prints `export SLURM_CONF=DIR/slurm.conf`; waits until idle
#   scripts/slurm-local.sh stop DIR    # stops the daemons this script started
set -euo pipefail
action="${1:?usage: slurm-local.sh start|stop DIR}"
dir="${2:?usage: slurm-local.sh start|stop DIR}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

stop() {
  for d in slurmd slurmctld; do
    if [ -f "$dir/$d.pid" ]; then
      kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
    fi
  done
  if [ -f "$dir/munged.pid" ]; then
    kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
  fi
  sleep 1
  rm -f "$dir"/*.pid
}

case "$action" in
  stop)
    stop
    exit 0
    ;;
  start) ;;
  *)
    echo "usage: slurm-local.sh start|stop DIR" >&2
    exit 2
    ;;
esac

host="$(hostname -s)"
cpus="$(nproc)"
mem_mib="$(awk '/MemTotal/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)"
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
cat > "$dir/slurm.conf" <<EOF
ClusterName=ci
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"

# munge: its own socket and pid file under DIR, the packaged key.
install -d -o munge -g munge -m 0700 "$dir/munge"
mkdir -p /run/munge && chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
  runuser -u munge -- munged --pid-file="$dir/munge/munged.pid" 2>"$dir/munged.err" ||
    munged --force --pid-file="$dir/munge/munged.pid"
  cp "$dir/munge/munged.pid" "$dir/munged.pid" 2>/dev/null || true
fi
slurmctld -i -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 1 60); do
  if sinfo -h -o '%t' 2>/dev/null | grep -qx idle; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "slurm did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
stop
exit 1
