#!/usr/bin/env bash
# tests/slurm/cluster.sh -- a REAL Slurm cluster on localhost for tests/test_slurm.py
# (Debian 12 bookworm, slurm-wlm 22.05.x, munge), idempotent, without systemd.
# From ../shared/slurm/cluster-up.sh (a recipe tested on the CI machines); a user's clone has no
# shared folder, so the project carries its own copy.
#
# Usage (as root):
#   bash tests/slurm/cluster.sh            # install (apt, when missing) + configure + start, wait for idle nodes
#   bash tests/slurm/cluster.sh status     # print status only
#   bash tests/slurm/cluster.sh stop       # stop the daemons this script started (by PID file)
#   bash tests/slurm/cluster.sh smoke      # up + srun/sbatch smoke test
#   SLURM_NODES=2 SLURM_GPUS_PER_NODE=1 bash tests/slurm/cluster.sh   # what the tests use
#   export SLURM_CONF=/run/pythia-slurm/slurm.conf   # then sinfo/sbatch/snakemake reach it
#
# Environment knobs:
#   PYTHIA_SLURM_CONF_DIR  where slurm.conf, gres.conf (and slurmdbd.conf) go (default
#                     /run/pythia-slurm; clients need SLURM_CONF=<dir>/slurm.conf)
#   SLURM_ACCOUNTING=none|slurmdbd  (default none)
#       none     -> no accounting DB; `sacct` does NOT work ("Slurm accounting
#                   storage is disabled"). Use snakemake-executor-plugin-slurm
#                   with `--slurm-status-command squeue` (profile key
#                   `slurm-status-command: squeue`), otherwise Snakemake hangs.
#       slurmdbd -> also installs mariadb-server + slurmdbd, starts mariadbd and
#                   slurmdbd; `sacct` works and the plugin default (sacct) works.
#   SLURM_PARTITION   partition name (default: debug)
#   SLURM_CLUSTER     ClusterName (default: localcluster)
#   SLURM_DEF_MEM_PER_CPU  default MB per CPU for jobs without --mem (default 1000)
#   SLURM_MIN_JOB_AGE seconds finished jobs stay visible in squeue (default 600;
#                     the plugin needs >= 3*init_seconds_before_status_checks (=120 s
#                     by default) for `squeue` status checks)
#   SLURM_UP_TIMEOUT  seconds to wait for the node to become idle (default 90)
#   SLURM_SKIP_APT=1  do not call apt-get (packages already installed)
#   SLURM_NODES=N     emulate N compute nodes on this host (default 1). N>1 uses
#                     Debian's multiple-slurmd support: nodes node1..nodeN, one
#                     slurmd per node (`slurmd -N nodeX`) on ports 17001.., each
#                     advertising all real CPUs and RealMemory/N. For testing
#                     multi-node submissions (e.g. `nodes: 2` DeepSpeed rules).
#   SLURM_GPUS_PER_NODE=G  advertise G fake GPUs per node (default 0): GresTypes=gpu,
#                     Gres=gpu:G, gres.conf File=/dev/fakegpuK (char devices 1:3
#                     == /dev/null, created with mknod). Slurm then schedules
#                     --gpus/--gres and sets CUDA_VISIBLE_DEVICES; no real GPU.
#
# Only processes recorded in the PID files below are ever signalled:
#   /run/munge/munged.pid /run/slurm/slurmctld.pid /run/slurm/slurmd-<node>.pid
#   /run/slurm/slurmdbd.pid /run/mysqld/mariadb.pid
set -euo pipefail

ACTION="${1:-up}"
ACCOUNTING="${SLURM_ACCOUNTING:-none}"
PARTITION="${SLURM_PARTITION:-debug}"
CLUSTER="${SLURM_CLUSTER:-localcluster}"
DEF_MEM_PER_CPU="${SLURM_DEF_MEM_PER_CPU:-1000}"
MIN_JOB_AGE="${SLURM_MIN_JOB_AGE:-600}"
UP_TIMEOUT="${SLURM_UP_TIMEOUT:-90}"
DB_PASS="${SLURM_DB_PASS:-slurmdbpass}"
NNODES="${SLURM_NODES:-1}"
GPUS_PER_NODE="${SLURM_GPUS_PER_NODE:-0}"

# The configuration lives in a directory of its own, never /etc/slurm: a slurm.conf left in the
# default place makes every later Slurm client call on this machine (the Snakemake Slurm plugin
# runs `scontrol show config` at each start) wait ~10 s for a controller that is gone. The
# daemons, this script and the tests find it through SLURM_CONF (exported here; the tests and
# the README's demo export the same path).
CONF_DIR="${PYTHIA_SLURM_CONF_DIR:-/run/pythia-slurm}"
CONF="$CONF_DIR/slurm.conf"
export SLURM_CONF="$CONF"
DBD_CONF="$CONF_DIR/slurmdbd.conf"
RUN_DIR=/run/slurm
LOG_DIR=/var/log/slurm
SPOOL_CTLD=/var/lib/slurm/slurmctld
SPOOL_D=/var/lib/slurm/slurmd
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$RUN_DIR/slurmctld.pid
# slurmd pid files are per node: $RUN_DIR/slurmd-<NodeName>.pid (SlurmdPidFile uses %n)
DBD_PID=$RUN_DIR/slurmdbd.pid
MARIADB_PID=/run/mysqld/mariadb.pid

log() { printf '[slurm_local_up] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

pid_alive() { # pidfile -> 0 if the recorded process is alive
  local f=$1 p
  [ -s "$f" ] || return 1
  p=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null
}

stop_pidfile() { # pidfile name
  local f=$1 name=$2 p i
  if pid_alive "$f"; then
    p=$(cat "$f")
    log "stopping $name (pid $p)"
    kill "$p" 2>/dev/null || true
    for i in $(seq 1 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$p" 2>/dev/null; then
      log "$name (pid $p) did not stop after 15 s, sending SIGKILL"
      kill -9 "$p" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

wait_for() { # seconds description command...
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 1
  done
}

stop_slurmds() {
  local f
  for f in "$RUN_DIR"/slurmd-*.pid; do
    [ -e "$f" ] || continue
    stop_pidfile "$f" "slurmd($(basename "$f" .pid))"
  done
}

any_slurmd_alive() {
  local f
  for f in "$RUN_DIR"/slurmd-*.pid; do
    [ -e "$f" ] || continue
    pid_alive "$f" && return 0
  done
  return 1
}

node_names() { # prints the NodeNames this script configures
  local i
  if [ "$NNODES" -le 1 ]; then hostname -s; else for i in $(seq 1 "$NNODES"); do echo "node$i"; done; fi
}

do_stop() {
  stop_slurmds
  stop_pidfile "$CTLD_PID" slurmctld
  stop_pidfile "$DBD_PID" slurmdbd
  stop_pidfile "$MARIADB_PID" mariadbd
  stop_pidfile "$MUNGE_PID" munged
  rm -f "$RUN_DIR/conf"   # the jobs' client configuration (below)
}

install_packages() {
  local pkgs=(munge slurmctld slurmd slurm-client)
  if [ "$ACCOUNTING" = slurmdbd ]; then pkgs+=(slurmdbd mariadb-server); fi
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "packages already installed: ${pkgs[*]}"
    return
  fi
  [ "${SLURM_SKIP_APT:-0}" = 1 ] && die "missing packages ${missing[*]} and SLURM_SKIP_APT=1"
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # --no-install-recommends: slurm-wlm's recommends pull ~25 plugin/-dev packages we do not need.
  # policy-rc.d / missing systemd: the postinst scripts cannot start services here; we start them below.
  apt-get install -y -q --no-install-recommends "${pkgs[@]}"
}

prepare_dirs() {
  getent passwd slurm >/dev/null || die "user slurm missing (package install failed?)"
  getent passwd munge >/dev/null || die "user munge missing (package install failed?)"
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
  install -d -o munge -g munge -m 0711 /var/lib/munge
  install -d -o slurm -g slurm -m 0755 "$RUN_DIR" "$LOG_DIR" /var/lib/slurm "$SPOOL_CTLD"
  install -d -o root -g root -m 0755 "$SPOOL_D" "$CONF_DIR"
  local n
  for n in $(node_names); do install -d -o root -g root -m 0755 "$SPOOL_D/$n"; done
  if [ "$GPUS_PER_NODE" -gt 0 ]; then
    local k total=$(( GPUS_PER_NODE * (NNODES > 1 ? NNODES : 1) ))
    for k in $(seq 0 $(( total - 1 ))); do
      [ -e "/dev/fakegpu$k" ] || mknod -m 0666 "/dev/fakegpu$k" c 1 3 \
        || die "mknod /dev/fakegpu$k failed (no CAP_MKNOD?)"
    done
  fi
  if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    mungekey --create --keyfile=/etc/munge/munge.key --force
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0600 /etc/munge/munge.key
}

write_conf() { # writes slurm.conf (and slurmdbd.conf); echoes "changed" if slurm.conf changed
  local host nodeline tmp acct_lines tmp_gres
  host=$(hostname -s)
  tmp_gres=$(mktemp)
  # `slurmd -C` prints the real topology and memory of this machine, e.g.
  # NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
  nodeline=$(slurmd -C | head -n1)
  case "$nodeline" in NodeName=*) ;; *) die "unexpected 'slurmd -C' output: $nodeline";; esac
  local topo mem gres_line="" gres_types="" node_lines="" nodes_list i k=0
  topo=$(sed -E 's/^NodeName=[^ ]+ //; s/ RealMemory=[0-9]+//' <<<"$nodeline")
  mem=$(sed -nE 's/.*RealMemory=([0-9]+).*/\1/p' <<<"$nodeline")
  : > "$tmp_gres"
  if [ "$GPUS_PER_NODE" -gt 0 ]; then
    gres_types="GresTypes=gpu"
    gres_line=" Gres=gpu:${GPUS_PER_NODE}"
    echo "AutoDetect=off" >> "$tmp_gres"
  fi
  if [ "$NNODES" -le 1 ]; then
    node_lines="NodeName=${host} NodeAddr=127.0.0.1 ${topo} RealMemory=${mem}${gres_line} State=UNKNOWN"
    nodes_list=$host
    if [ "$GPUS_PER_NODE" -gt 0 ]; then
      echo "NodeName=${host} Name=gpu File=/dev/fakegpu[0-$(( GPUS_PER_NODE - 1 ))]" >> "$tmp_gres"
    fi
  else
    for i in $(seq 1 "$NNODES"); do
      node_lines+="NodeName=node${i} NodeHostname=${host} NodeAddr=127.0.0.1 Port=$(( 17000 + i )) ${topo} RealMemory=$(( mem / NNODES ))${gres_line} State=UNKNOWN"$'\n'
      if [ "$GPUS_PER_NODE" -gt 0 ]; then
        echo "NodeName=node${i} Name=gpu File=/dev/fakegpu[${k}-$(( k + GPUS_PER_NODE - 1 ))]" >> "$tmp_gres"
        k=$(( k + GPUS_PER_NODE ))
      fi
    done
    nodes_list="node[1-${NNODES}]"
  fi
  if [ "$ACCOUNTING" = slurmdbd ]; then
    acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
  else
    acct_lines="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
  fi
  tmp=$(mktemp)
  cat > "$tmp" <<EOF
# generated by cluster-up.sh -- single-node Slurm on localhost
ClusterName=${CLUSTER}
SlurmctldHost=${host}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${RUN_DIR}/slurmd-%n.pid
StateSaveLocation=${SPOOL_CTLD}
SlurmdSpoolDir=${SPOOL_D}/%n
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups needed:
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without DefMemPerCPU, a job without --mem gets ALL node memory under
# CR_*_Memory, so jobs run one at a time:
DefMemPerCPU=${DEF_MEM_PER_CPU}
${gres_types}
ReturnToService=2
MinJobAge=${MIN_JOB_AGE}
InactiveLimit=0
KillWait=30
Waittime=0
JobCompType=jobcomp/none
# no mail program installed; avoids "Configured MailProg is invalid" in slurmctld.log
MailProg=/bin/true
${acct_lines}
${node_lines}
PartitionName=${PARTITION} Nodes=${nodes_list} Default=YES MaxTime=INFINITE State=UP
EOF
  local gres_changed=0
  if [ -s "$tmp_gres" ]; then
    if ! { [ -f "$CONF_DIR/gres.conf" ] && cmp -s "$tmp_gres" "$CONF_DIR/gres.conf"; }; then
      install -m 0644 "$tmp_gres" "$CONF_DIR/gres.conf"; gres_changed=1; log "wrote $CONF_DIR/gres.conf"
    fi
  elif [ -f "$CONF_DIR/gres.conf" ]; then
    rm -f "$CONF_DIR/gres.conf"; gres_changed=1
  fi
  rm -f "$tmp_gres"
  if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF" && [ "$gres_changed" = 0 ]; then
    rm -f "$tmp"
  else
    [ -f "$CONF" ] && cp -f "$CONF" "$CONF.bak"
    install -m 0644 "$tmp" "$CONF"
    rm -f "$tmp"
    log "wrote $CONF"
    echo changed
  fi
  if [ "$ACCOUNTING" = slurmdbd ]; then
    tmp=$(mktemp)
    cat > "$tmp" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=${LOG_DIR}/slurmdbd.log
PidFile=${DBD_PID}
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=${DB_PASS}
StorageLoc=slurm_acct_db
EOF
    if ! { [ -f "$DBD_CONF" ] && cmp -s "$tmp" "$DBD_CONF"; }; then
      install -m 0600 -o slurm -g slurm "$tmp" "$DBD_CONF"   # slurmdbd refuses a world-readable conf
      log "wrote $DBD_CONF"
      echo dbd-changed
    fi
    rm -f "$tmp"
  fi
}

start_munge() {
  if pid_alive "$MUNGE_PID" && munge -n </dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running (pid $(cat "$MUNGE_PID"))"
    return
  fi
  rm -f "$MUNGE_PID"
  log "starting munged"
  # munged daemonizes itself and writes /run/munge/munged.pid; it must run as user munge.
  runuser -u munge -- /usr/sbin/munged
  wait_for 20 munge bash -c 'munge -n </dev/null | unmunge' || die "munged did not come up"
}

start_mariadb_slurmdbd() {
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  if ! pid_alive "$MARIADB_PID"; then
    log "starting mariadbd"
    setsid nohup /usr/sbin/mariadbd --user=mysql --pid-file="$MARIADB_PID" \
      >/var/log/mariadbd-slurm.out 2>&1 </dev/null &
  fi
  wait_for 60 mariadb mariadb -e 'select 1' || die "mariadbd did not come up (see /var/log/mariadbd-slurm.out)"
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
    ALTER USER 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  if [ "${1:-}" = restart ]; then stop_pidfile "$DBD_PID" slurmdbd; fi
  if ! pid_alive "$DBD_PID"; then
    log "starting slurmdbd"
    slurmdbd   # daemonizes, writes $DBD_PID
  fi
  wait_for 60 slurmdbd bash -c 'sacctmgr -n list cluster' || die "slurmdbd not answering (see $LOG_DIR/slurmdbd.log)"
}

start_slurm() {
  local restart=${1:-}
  if [ -n "$restart" ]; then
    stop_slurmds
    stop_pidfile "$CTLD_PID" slurmctld
  fi
  if ! pid_alive "$CTLD_PID"; then
    log "starting slurmctld"
    slurmctld            # daemonizes (use -D for foreground); runs as SlurmUser=slurm
  else
    log "slurmctld already running (pid $(cat "$CTLD_PID"))"
  fi
  wait_for 30 slurmctld scontrol ping || die "slurmctld not answering (see $LOG_DIR/slurmctld.log)"
  local n
  for n in $(node_names); do
    if pid_alive "$RUN_DIR/slurmd-$n.pid"; then
      log "slurmd for $n already running (pid $(cat "$RUN_DIR/slurmd-$n.pid"))"
    elif [ "$NNODES" -le 1 ]; then
      log "starting slurmd"
      slurmd             # daemonizes; runs as root; NodeName = hostname -s
    else
      log "starting slurmd -N $n"
      slurmd -N "$n"     # multiple-slurmd mode: one daemon per emulated node
    fi
  done
}

wait_idle() {
  local state end
  end=$(( $(date +%s) + UP_TIMEOUT ))
  while :; do
    local n ok=1 st
    state=""
    for n in $(node_names); do
      st=$(sinfo -h -N -n "$n" -o '%T' 2>/dev/null | head -n1 || true)
      state+="$n=$st "
      case "$st" in
        idle|mixed|allocated) ;;
        *drain*|down*|fail*)
          ok=0; log "node $n is '$st' -> resuming"
          scontrol update NodeName="$n" State=RESUME 2>/dev/null || true;;
        *) ok=0;;
      esac
    done
    if [ "$ok" = 1 ]; then log "nodes up: $state"; return 0; fi
    if [ "$(date +%s)" -ge "$end" ]; then
      log "nodes did not become idle within ${UP_TIMEOUT}s ($state)"
      tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR"/slurmd-*.log >&2 || true
      return 1
    fi
    sleep 1
  done
}

print_status() {
  echo "== versions"
  echo "slurm: $(sinfo --version 2>/dev/null || echo n/a)   munge: $(munged --version 2>/dev/null | head -n1 || echo n/a)"
  echo "accounting: $(scontrol show config 2>/dev/null | awk -F'= ' '/^AccountingStorageType/{print $2}')   MinJobAge: $(scontrol show config 2>/dev/null | awk -F'= ' '/^MinJobAge/{print $2}')"
  echo "== daemons"
  local f
  for f in "$MUNGE_PID" "$MARIADB_PID" "$DBD_PID" "$CTLD_PID" "$RUN_DIR"/slurmd-*.pid; do
    if pid_alive "$f"; then echo "  $(basename "$f" .pid): pid $(cat "$f")"; fi
  done
  echo "== sinfo"
  sinfo -N -l 2>&1 || true
  echo "== squeue"
  squeue 2>&1 || true
}

smoke() {
  echo "== smoke: srun hostname"
  timeout 60 srun -N1 -n1 hostname
  echo "== smoke: sbatch --wrap"
  local out jid
  out=$(mktemp -d)
  jid=$(sbatch --parsable -o "$out/%j.out" --wrap 'echo sbatch-ok on $(hostname)')
  wait_for 60 sbatch-job bash -c "[ -s '$out/$jid.out' ] && ! squeue -h -j $jid -t PD,R,CG | grep -q ."
  cat "$out/$jid.out"
  rm -rf "$out"
  if [ "$ACCOUNTING" = slurmdbd ]; then
    echo "== smoke: sacct"
    sacct -X -j "$jid" --format=JobID,State,ExitCode
  fi
}

case "$ACTION" in
  stop)   do_stop; exit 0;;
  status) print_status; exit 0;;
  up|smoke) ;;
  *) die "unknown action '$ACTION' (use up|status|stop|smoke)";;
esac

case "$ACCOUNTING" in none|slurmdbd) ;; *) die "SLURM_ACCOUNTING must be none or slurmdbd";; esac

install_packages
prepare_dirs
changes=$(write_conf)
# Snakemake's Slurm jobstep strips every SLURM_* variable, SLURM_CONF too, before the srun it
# starts inside a job; Slurm's clients then look in /run/slurm/conf/ (after /etc/slurm), so that
# is a link to $CONF_DIR while the cluster runs (`stop` removes it).
ln -sfn "$CONF_DIR" "$RUN_DIR/conf"
start_munge
if [ "$ACCOUNTING" = slurmdbd ]; then
  if grep -q dbd-changed <<<"$changes"; then start_mariadb_slurmdbd restart; else start_mariadb_slurmdbd; fi
fi
if grep -qx changed <<<"$changes" && { pid_alive "$CTLD_PID" || any_slurmd_alive; }; then
  log "slurm.conf changed -> restarting slurmctld/slurmd"
  start_slurm restart
else
  start_slurm
fi
wait_idle
print_status
if [ "$ACTION" = smoke ]; then smoke; fi
