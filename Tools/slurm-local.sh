#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for checks (Tools/cluster-check.sh):
#   source Tools/slurm-local.sh; slurm_local_start DIR; ...sbatch...; slurm_local_stop
# Everything lives in DIR: slurm.conf, its own munge key and socket, state, spool, logs, pid files;
# SLURM_CONF points the client commands at it. Made for a container: root runs the daemons,
# processes are tracked by /proc (proctrack/linuxproc), no cgroups, no task binding (task/none).
# Ports 16817/16818, so a real Slurm on the machine is not disturbed. Needs slurm-wlm and munge
# (Tools/setup.sh installs them).

slurm_local_start() {
  local dir="$1" host cpus
  mkdir -p "$dir"/{state,spool,log}
  dir="$(cd "$dir" && pwd)"
  SLURM_LOCAL_DIR="$dir"
  host="$(hostname -s)"
  cpus="$(nproc)"
  # The daemons only accept credentials made with this key, by this munged.
  dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$dir/munge.key"
  munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed" || return 1
  cat > "$dir/slurm.conf" <<CONF
ClusterName=parscale-check
SlurmctldHost=$host
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=check Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -i || return 1
  slurmd || return 1
  # Ready when the node is idle.
  local i
  for i in $(seq 1 60); do
    if [ "$(sinfo -h -n "$host" -o %T 2>/dev/null)" = "idle" ]; then return 0; fi
    sleep 1
  done
  echo "slurm-local: the node did not become idle in 60 s; see $dir/log" >&2
  sinfo >&2 || true
  return 1
}

# Stops what slurm_local_start started (by its pid files only).
slurm_local_stop() {
  local dir="${SLURM_LOCAL_DIR:-}" f pid
  [ -n "$dir" ] || return 0
  for f in slurmd slurmctld munged; do
    pid="$(cat "$dir/$f.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
}
