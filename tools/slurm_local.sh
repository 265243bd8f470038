#!/usr/bin/env bash
# A real one-node Slurm on this machine, for the slurm tests (Debian's slurmctld, slurmd,
# slurm-client, munge; no systemd needed). Needs root.
#   tools/slurm_local.sh start   install if missing, configure, start, wait until the node is idle
#   tools/slurm_local.sh stop    cancel jobs, stop only the daemons this script started
# Settings that matter here are explained in ../shared/notes/slurm-local.md.
set -euo pipefail
cd "$(dirname "$0")/.."
state=/run/mpibatch-slurm
conf=/etc/slurm/slurm.conf

start() {
  bash tools/setup.sh --slurm >/dev/null
  mkdir -p "$state" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
  host=$(hostname)
  getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >> /etc/hosts

  # munge: its key, its run folder, its daemon.
  install -d -o munge -g munge -m 0755 /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    echo munged > "$state/started"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  fi

  node=$(slurmd -C | head -n 1)
  cat > "$conf" <<CONF
# Written by mpibatch's tools/slurm_local.sh: a one-node cluster for tests.
ClusterName=mpibatch-test
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=sched_interval=2,bf_interval=1
KillWait=2
OverTimeLimit=0
AuthInfo=cred_expire=10
$node
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  if [[ ! -s /run/slurmctld.pid ]] || ! kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null; then
    slurmctld
    echo slurmctld >> "$state/started"
  fi
  if [[ ! -s /run/slurmd.pid ]] || ! kill -0 "$(cat /run/slurmd.pid)" 2>/dev/null; then
    slurmd
    echo slurmd >> "$state/started"
  fi
  local i node_state
  for i in $(seq 100); do
    node_state=$(sinfo -h -o %T 2>/dev/null | head -n 1)
    if [[ $node_state == idle ]]; then
      echo "slurm_local: node $host idle"
      return 0
    fi
    # A run interrupted earlier (a CI job killed mid-test) can leave the node down, drained
    # or completing: its jobs are this test cluster's own, so cancel them and resume it.
    if ((i % 25 == 0)) && [[ $node_state =~ ^(down|drain|fail|completing) ]]; then
      echo "slurm_local: node $host is $node_state; cancelling its jobs and resuming it" >&2
      scancel --full --nodelist="$host" 2>/dev/null || true
      if [[ $node_state == completing* ]]; then
        scontrol update nodename="$host" state=down reason=slurm_local_stuck 2>/dev/null || true
      fi
      scontrol update nodename="$host" state=resume 2>/dev/null || true
    fi
    sleep 0.2
  done
  echo "slurm_local: the node did not become idle; see /var/log/slurm" >&2
  sinfo >&2 || true
  return 1
}

stop() {
  scancel --user=root 2>/dev/null || true
  [[ -f "$state/started" ]] || return 0
  for d in slurmd slurmctld; do
    if grep -qx "$d" "$state/started" && [[ -s /run/$d.pid ]]; then kill "$(cat /run/$d.pid)" 2>/dev/null || true; fi
  done
  if grep -qx munged "$state/started"; then pkill -u munge -x munged 2>/dev/null || true; fi
  rm -f "$state/started"
}

if [[ $(id -u) -ne 0 ]]; then
  echo "slurm_local: needs root (daemons, /etc/slurm): skipped" >&2
  exit 77
fi
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: tools/slurm_local.sh start|stop" >&2; exit 2 ;;
esac
