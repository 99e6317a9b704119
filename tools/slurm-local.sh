#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (slurmctld + slurmd on localhost, munge for
# authentication), for the Slurm integration test and for trying `ddmlab deconstruct --slurm`
# without a cluster. Debian's packages: `apt-get install -y slurm-wlm munge`. Run as root.
#
#   tools/slurm-local.sh start     # idempotent; prints the SLURM_CONF to export
#   tools/slurm-local.sh status    # exit 0 when the node takes jobs
#   tools/slurm-local.sh stop
#
# Its files (slurm.conf, state, logs) live in $DDMLAB_SLURM_DIR (default /tmp/ddmlab-slurm);
# every client command needs SLURM_CONF=$DDMLAB_SLURM_DIR/slurm.conf.
set -euo pipefail
dir=${DDMLAB_SLURM_DIR:-/tmp/ddmlab-slurm}
conf=$dir/slurm.conf
export SLURM_CONF=$conf

need() {
  for b in munged slurmctld slurmd sbatch scontrol sinfo; do
    command -v "$b" >/dev/null || { echo "slurm-local: $b not found (apt-get install -y slurm-wlm munge)" >&2; exit 2; }
  done
}

write_conf() {
  mkdir -p "$dir/state" "$dir/spool"
  # slurmd -C reports this machine's CPUs, sockets, cores and memory in slurm.conf's own words.
  local node
  node=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
  cat > "$conf" <<EOF
ClusterName=ddmlab-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MinJobAge=3600
NodeName=localhost NodeHostname=$(hostname -s) $node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

# (sinfo waits a minute for a controller that is not running: ask only when one is.)
up() { pgrep -x slurmctld >/dev/null && timeout 10 sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

case "${1:-}" in
  start)
    need
    if up; then echo "export SLURM_CONF=$conf"; exit 0; fi
    write_conf
    pgrep -x munged >/dev/null || { mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true; munged --force; }
    pgrep -x slurmctld >/dev/null || slurmctld -f "$conf" -i
    pgrep -x slurmd >/dev/null || slurmd -f "$conf" -N localhost
    for _ in $(seq 60); do
      if up; then echo "export SLURM_CONF=$conf"; exit 0; fi
      scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
      sleep 1
    done
    echo "slurm-local: the node did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    exit 1
    ;;
  status)
    up
    ;;
  stop)
    pkill -x slurmd || true
    pkill -x slurmctld || true
    ;;
  *)
    echo "usage: $0 start|status|stop" >&2
    exit 2
    ;;
esac
