#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the sweep tests and for trying sweeps by hand.
#
# Why: the sweep runner (bench/sweep) is tested against real Slurm, not a mock: job arrays, requeue, sacct.
# submitit asks sacct for the state of finished jobs; without accounting a cancelled job's result() waits
# forever, so this also runs slurmdbd on MariaDB.
#
#   scripts/slurm-local.sh up       install (Debian, root), configure, start, wait for the node to be idle
#   scripts/slurm-local.sh down     cancel our jobs, stop the daemons this script started, by PID, in reverse order
#   scripts/slurm-local.sh status   which daemons run, and sinfo; exit 0 only when the cluster is usable
#
# Idempotent: `up` on a running cluster only checks it (well under a second). Env: SLURM_ACCOUNTING=0 skips
# slurmdbd/MariaDB (sacct then fails and submitit can hang on cancelled jobs: only for quick experiments).
set -euo pipefail

ACCT=${SLURM_ACCOUNTING:-1}
RUN=/run/slurm
LOGDIR=/var/log/slurm
LOCK=/run/lock/slurm-local.lock
CLUSTER=mbench
PARTITION=debug
log() { echo "[slurm-local] $*" >&2; }
die() { echo "[slurm-local] error: $*" >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # wait_for <seconds> <cmd...>: poll every 0.2 s
  local n=$(( $1 * 5 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}
host() { hostname -s; }
node_ready() { sinfo -h -n "$(host)" -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)$'; }

usable() { # the cluster answers and the node takes jobs (and sacct works when accounting is on)
  command -v sinfo >/dev/null 2>&1 || return 1
  alive $RUN/slurmctld.pid && alive $RUN/slurmd.pid || return 1
  if [ "$ACCT" = 1 ]; then  # every accounting daemon, and sacct answering (a dead MariaDB breaks sacct only)
    alive $RUN/slurmdbd.pid && alive /run/mysqld/mysqld.pid || return 1
    sacct -n -X -S now >/dev/null 2>&1 || return 1
  fi
  node_ready
}

need_root_debian() {
  [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
  command -v apt-get >/dev/null 2>&1 && [ -f /etc/debian_version ] || die "needs Debian/Ubuntu (apt-get)"
}

install_packages() {
  local pkgs="munge slurmctld slurmd slurm-client"
  [ "$ACCT" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  # shellcheck disable=SC2086
  if ! dpkg -s $pkgs >/dev/null 2>&1; then
    log "installing $pkgs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
  fi
}

write_if_changed() { # write_if_changed <path> <mode>: stdin -> path, returns 0 when the content changed
  local tmp; tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  install -m "$2" "$tmp" "$1"; rm -f "$tmp"; return 0
}

configure() {
  local h mem node acct_conf
  h=$(host)
  # slurmd resolves its NodeName and slurmctld its host
  getent hosts "$h" >/dev/null || { log "adding $h to /etc/hosts"; echo "127.0.0.1 $h" >> /etc/hosts; }
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd $LOGDIR $RUN
  # 90% of RAM so that the node is not drained for "low RealMemory"; memory is not enforced (no cgroups here)
  mem=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) * 90 / 100 ))
  node=$(slurmd -C | head -1 | sed "s/RealMemory=[0-9]*/RealMemory=$mem/")
  if [ "$ACCT" = 1 ]; then
    acct_conf="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost"
  else
    acct_conf="AccountingStorageType=accounting_storage/none"
  fi
  # KillWait=30: a cancelled or requeued job gets SIGTERM, then 30 s to write its checkpoint before SIGKILL.
  # MinJobAge=300: finished jobs stay visible to scontrol for 5 minutes (sacct keeps them for good).
  if write_if_changed /etc/slurm/slurm.conf 644 <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$h
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
$acct_conf
JobCompType=jobcomp/none
JobRequeue=1
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=30
MaxArraySize=10001
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$h Default=YES MaxTime=INFINITE State=UP
EOF
  then
    log "wrote /etc/slurm/slurm.conf"
    alive $RUN/slurmctld.pid && scontrol reconfigure >/dev/null 2>&1 || true
  fi
}

start_munge() {
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
  chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key; chmod 755 /run/munge
  if ! alive /run/munge/munged.pid; then log "starting munged"; runuser -u munge -- /usr/sbin/munged 9>&-; fi
  wait_for 10 bash -c 'munge -n | unmunge' || die "munge does not work (see /var/log/munge/munged.log)"
}

start_accounting() {
  [ "$ACCT" = 1 ] || return 0
  mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
  if ! alive /run/mysqld/mysqld.pid; then
    log "starting mariadb"
    nohup /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
      --pid-file=/run/mysqld/mysqld.pid >$LOGDIR/mariadb.log 2>&1 9>&- &
  fi
  wait_for 30 mariadb-admin ping || { tail $LOGDIR/mariadb.log >&2; die "mariadb did not start"; }
  # a local, loopback-only database for a throwaway test cluster; the password is not a secret
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  write_if_changed /etc/slurm/slurmdbd.conf 600 <<EOF || true
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$LOGDIR/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm
EOF
  if ! alive $RUN/slurmdbd.pid; then log "starting slurmdbd"; /usr/sbin/slurmdbd 9>&-; fi
  wait_for 30 sacctmgr -n list cluster || { tail $LOGDIR/slurmdbd.log >&2; die "slurmdbd did not start"; }
  sacctmgr -n list cluster format=cluster | grep -qw $CLUSTER || sacctmgr -i add cluster $CLUSTER >/dev/null
}

start_slurm() {
  if ! alive $RUN/slurmctld.pid; then log "starting slurmctld"; /usr/sbin/slurmctld 9>&-; fi
  wait_for 30 scontrol ping || { tail $LOGDIR/slurmctld.log >&2; die "slurmctld did not answer"; }
  if ! alive $RUN/slurmd.pid; then log "starting slurmd"; /usr/sbin/slurmd 9>&-; fi
  if ! wait_for 60 node_ready; then
    # a node left DOWN/DRAIN by an earlier unclean stop comes back with an explicit resume
    scontrol update nodename="$(host)" state=resume >/dev/null 2>&1 || true
    wait_for 30 node_ready || {
      sinfo -N -l >&2; tail $LOGDIR/slurmctld.log $LOGDIR/slurmd.log >&2; die "node $(host) is not idle"; }
  fi
}

cmd_up() {
  if usable; then log "already up"; return 0; fi
  need_root_debian
  install_packages
  configure
  start_munge
  start_accounting
  start_slurm
  sinfo >&2
  log "ready (partition $PARTITION on $(host), logs in $LOGDIR)"
}

cmd_down() {
  [ "$(id -u)" = 0 ] || die "must run as root"
  if alive $RUN/slurmctld.pid; then
    # no job step may outlive slurmd
    local jobs; jobs=$(squeue -h -o %A 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -n "$jobs" ] && scancel --quiet $jobs 2>/dev/null || true
    for _ in $(seq 60); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  local pf pid
  for pf in $RUN/slurmd.pid $RUN/slurmctld.pid $RUN/slurmdbd.pid /run/mysqld/mysqld.pid /run/munge/munged.pid; do
    [ -s "$pf" ] || continue
    pid=$(cat "$pf")
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping $(basename "$pf" .pid) (pid $pid)"
      kill -TERM "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then log "SIGKILL $pid"; kill -KILL "$pid"; fi
    fi
    rm -f "$pf"
  done
  log "down"
}

cmd_status() {
  local pf rc=0
  for pf in /run/munge/munged.pid /run/mysqld/mysqld.pid $RUN/slurmdbd.pid $RUN/slurmctld.pid $RUN/slurmd.pid; do
    if alive "$pf"; then echo "$(basename "$pf" .pid): running (pid $(cat "$pf"))"
    else echo "$(basename "$pf" .pid): stopped"; fi
  done
  if usable; then sinfo; echo "cluster: up"; else echo "cluster: down"; rc=1; fi
  return $rc
}

case "${1:-}" in
  up|down)
    mkdir -p "$(dirname $LOCK)"
    # concurrent `up`s (parallel test sessions) wait for each other; daemons are started with fd 9 closed
    # so that they do not hold the lock after this script exits
    exec 9>"$LOCK"; flock 9
    "cmd_$1" ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
