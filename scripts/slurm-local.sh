#!/usr/bin/env bash
# A Slurm cluster on this machine, for the slurm tests and for trying
# slurm/train.sbatch without a real cluster (docs/slurm.md).
#
#   scripts/slurm-local.sh start [--nodes N]  # munged, slurmctld, N slurmd; prints the SLURM_CONF to export
#   scripts/slurm-local.sh status             # running or not; sinfo and squeue when running
#   scripts/slurm-local.sh env                # "export SLURM_CONF=..." for eval
#   scripts/slurm-local.sh stop               # cancels the jobs, stops the daemons, removes the
#                                             # namespaces, links and the directory
#   scripts/slurm-local.sh fail NODE          # SIGKILL every process of NODE (a node losing power)
#   scripts/slurm-local.sh cut NODE           # NODE's link down (a network partition)
#   scripts/slurm-local.sh heal NODE          # link up again, and slurmd started if it is not running
#
# One node (the default) is this host itself, under its own hostname. With
# N >= 2 each node (node1 .. nodeN) is a network namespace with its own
# hostname (a UTS namespace), loopback, and a veth "mone0" into a bridge on
# the host, address $SUBNET.(10+i)/24; slurmctld listens on the bridge,
# $SUBNET.1. The namespaces have no route beyond that /24, so nothing a node
# runs can reach another network. The filesystem is shared: every node sees
# the cluster directory and the run directories, as on a cluster with a
# shared filesystem, and munged's socket.
#
# Everything (slurm.conf, munge key and socket, state, spool, logs) lives in
# one directory, so the machine's /etc/slurm, /etc/munge and system munged are
# never touched and two clusters (a user's and the test's) can run side by
# side with different directories and ports. start and stop are idempotent.
# Needs root (slurmd launches jobs as their submitting user) and Debian's
# slurm-wlm and munge (scripts/setup.sh installs them).
#
# Settings (environment):
#   MONE_SLURM_DIR   the cluster's directory (default /tmp/mone-slurm-$UID)
#   MONE_SLURM_PORT  slurmctld's port; slurmd takes the next one (default 6817)
#   MONE_SLURM_CPUS  CPUs each node offers (default: nproc); more than the
#                    machine has lets jobs oversubscribe the cores
#   MONE_SLURM_SUBNET  the first three octets of the private /24 the nodes of
#                    a multi-node cluster live in (default 10.213.7); the
#                    bridge and namespace names carry the third octet, so
#                    clusters on different subnets can run side by side
set -euo pipefail

cluster_dir=${MONE_SLURM_DIR:-/tmp/mone-slurm-$(id -u)}
ctld_port=${MONE_SLURM_PORT:-6817}
node_cpus=${MONE_SLURM_CPUS:-$(nproc)}
conf=$cluster_dir/slurm.conf
# The node names of the running (or last started) cluster, one a line.
nodes_file=$cluster_dir/nodes

say() { echo "slurm-local: $*"; }
die() { echo "slurm-local: error: $*" >&2; exit 1; }

# Sets the names and addresses derived from a subnet (A.B.C): the bridge,
# the host's address on it, and (below) each node's namespace, link and address.
use_subnet() {
  subnet=$1
  # Only private addresses: the test traffic must never look routable.
  [[ $subnet =~ ^(10\.[0-9]{1,3}|172\.(1[6-9]|2[0-9]|3[01])|192\.168)\.([0-9]{1,3})$ ]] &&
    [ "${BASH_REMATCH[3]}" -le 255 ] ||
    die "MONE_SLURM_SUBNET '$subnet' is not the first three octets of a private /24 (10.x.y, 172.16-31.y, 192.168.y)"
  octet=${BASH_REMATCH[3]}
  bridge=mone${octet}br
  host_addr=$subnet.1
}
namespace_of() { echo "mone$octet-$1"; }             # node1 -> mone7-node1
host_link_of() { echo "mone${octet}n${1#node}"; }    # node1 -> mone7n1 (the veth's host end; 15 chars at most)
address_of() { echo "$subnet.$((10 + ${1#node}))"; }  # node1 -> 10.213.7.11
# Runs a command on a node of a multi-node cluster: in its network namespace,
# under its hostname, and with the node's own directory mounted on
# $cluster_dir/node-tmp, the TmpFS of slurm.conf: Slurm's PMIx plugin makes
# its per-step directory there under a name without the node in it, so two
# nodes sharing one directory would collide ("File exists"). nsenter, not
# `ip netns exec`: that one also mounts a fresh /sys, without the cgroup
# filesystem slurmd insists on finding.
on_node() {
  local name=$1; shift
  nsenter --net="/run/netns/$(namespace_of "$name")" unshare --uts --mount \
    sh -c 'hostname "$0" && mount --bind "$1" "$2" && shift 2 && exec "$@"' \
    "$name" "$cluster_dir/tmp/$name" "$cluster_dir/node-tmp" "$@"
}

# The pid in a pid file, if that process is alive.
live_pid() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Polls `condition` (a command) every half second for up to `seconds`.
wait_for() {
  local seconds=$1; shift
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}


# The cluster's nodes, one a line (written by start before anything else).
cluster_nodes() { cat "$nodes_file" 2>/dev/null || true; }
multi_node() { [ "$(cluster_nodes | wc -l)" -gt 1 ]; }
slurmd_pid_file() { echo "$cluster_dir/slurmd-$1.pid"; }

running() {
  local name
  live_pid "$cluster_dir/slurmctld.pid" >/dev/null || return 1
  [ -s "$nodes_file" ] || return 1
  for name in $(cluster_nodes); do
    live_pid "$(slurmd_pid_file "$name")" >/dev/null || return 1
  done
}

write_conf() {
  local count=$1 memory_mb name controller partition_nodes
  memory_mb=$(awk -v nodes="$count" '/^MemTotal:/ { print int($2 / 1024 / nodes) }' /proc/meminfo)
  if [ "$count" -eq 1 ]; then
    controller="$(hostname -s)(127.0.0.1)"
    partition_nodes=$(hostname -s)
  else
    controller="$(hostname -s)($host_addr)"
    partition_nodes="node[1-$count]"
  fi
  cat >"$conf" <<CONF
# Generated by scripts/slurm-local.sh on host $(hostname -s); rewritten on every start.
ClusterName=mone-local
SlurmctldHost=$controller
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SlurmUser=root
SlurmdUser=root
# Our own munged, on our own socket and key.
AuthType=auth/munge
# cred_expire is also how long a requeued job waits before it may start again
# (default 120 s); 10 s keeps the pre-emption test short.
AuthInfo=socket=$cluster_dir/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$cluster_dir/state
# %n: one spool, pid file and log per slurmd when several share the filesystem.
SlurmdSpoolDir=$cluster_dir/spool/%n
SlurmctldPidFile=$cluster_dir/slurmctld.pid
SlurmdPidFile=$cluster_dir/slurmd-%n.pid
SlurmctldLogFile=$cluster_dir/log/slurmctld.log
SlurmdLogFile=$cluster_dir/log/slurmd-%n.log
# No cgroups: containers and CI machines rarely delegate them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=pmix
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Finished jobs stay visible to scontrol for an hour (there is no slurmdbd,
# so scontrol show job is how the tests read a job's final state).
MinJobAge=3600
JobRequeue=1
ReturnToService=2
# The node's real hardware may differ from what we declare (MONE_SLURM_CPUS).
SlurmdParameters=config_overrides
CONF
  # Each node's own temporary directory (on_node), as on a real cluster.
  [ "$count" -eq 1 ] || echo "TmpFS=$cluster_dir/node-tmp" >>"$conf"
  if [ "$count" -eq 1 ]; then
    echo "NodeName=$partition_nodes NodeAddr=127.0.0.1 CPUs=$node_cpus RealMemory=$memory_mb State=UNKNOWN" >>"$conf"
  else
    for name in $(cluster_nodes); do
      echo "NodeName=$name NodeAddr=$(address_of "$name") CPUs=$node_cpus RealMemory=$memory_mb State=UNKNOWN" >>"$conf"
    done
  fi
  echo "PartitionName=local Nodes=$partition_nodes Default=YES MaxTime=INFINITE State=UP" >>"$conf"
}

start_munge() {
  mkdir -p "$cluster_dir/munge"
  chmod 700 "$cluster_dir/munge"
  [ -s "$cluster_dir/munge/munge.key" ] || mungekey --create --keyfile="$cluster_dir/munge/munge.key"
  live_pid "$cluster_dir/munge/munged.pid" >/dev/null && return
  # --force: the directory is under /tmp, whose permissions munged would otherwise refuse.
  munged --force --socket="$cluster_dir/munge/munge.socket" --key-file="$cluster_dir/munge/munge.key" \
    --pid-file="$cluster_dir/munge/munged.pid" --log-file="$cluster_dir/log/munged.log" \
    --seed-file="$cluster_dir/munge/munged.seed" ||
    die "munged did not start; see $cluster_dir/log/munged.log"
}

# A bridge, namespace or address of this subnet that is already there belongs
# to someone else (another cluster): refuse before writing anything that our
# stop would then act on.
check_network_free() {
  local count=$1 index
  if ip link show "$bridge" >/dev/null 2>&1; then
    die "link $bridge exists: another cluster on $subnet.0/24? stop it, or choose another MONE_SLURM_SUBNET"
  fi
  if ip -4 -o addr show | grep -q " inet ${subnet//./\\.}\."; then
    die "$subnet.0/24 is already on an interface of this host ($(ip -4 -o addr show | awk -v s="$subnet." 'index($4, s) == 1 { print $2 }'));" \
      "choose another MONE_SLURM_SUBNET"
  fi
  for ((index = 1; index <= count; index++)); do
    ! ip netns list | grep -q "^$(namespace_of "node$index")\b" || die "network namespace $(namespace_of "node$index") exists already"
  done
}

# The bridge on the host and, per node, a namespace with a veth into it.
create_network() {
  local name namespace
  ip link add "$bridge" type bridge
  # IPv4 only: no IPv6 router solicitations or duplicate-address probes.
  sysctl -qw "net.ipv6.conf.$bridge.disable_ipv6=1" 2>/dev/null || true
  ip addr add "$host_addr/24" dev "$bridge"
  ip link set "$bridge" up
  for name in $(cluster_nodes); do
    namespace=$(namespace_of "$name")
    ip netns add "$namespace"
    ip link add "$(host_link_of "$name")" type veth peer name mone0 netns "$namespace"
    sysctl -qw "net.ipv6.conf.$(host_link_of "$name").disable_ipv6=1" 2>/dev/null || true
    ip link set "$(host_link_of "$name")" master "$bridge" up
    ip netns exec "$namespace" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
    ip -n "$namespace" link set lo up
    ip -n "$namespace" addr add "$(address_of "$name")/24" dev mone0
    ip -n "$namespace" link set mone0 up
  done
}

# Kills what runs in the namespaces, then removes them and the bridge (which
# takes the veths with it). Quiet about what is already gone.
remove_network() {
  local name namespace pids
  for name in $(cluster_nodes); do
    namespace=$(namespace_of "$name")
    ip netns list | grep -q "^$namespace\b" || continue
    pids=$(ip netns pids "$namespace")
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    # Either end of a veth takes the other with it.
    ip link del "$(host_link_of "$name")" 2>/dev/null || true
    ip netns del "$namespace"
  done
  ip link del "$bridge" 2>/dev/null || true
}

start_slurmd() {
  local name=$1
  if multi_node; then
    on_node "$name" slurmd -N "$name"
  else
    slurmd
  fi || die "slurmd of $name did not start; see $cluster_dir/log/slurmd-$name.log"
}

nodes_idle() {
  [ "$(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)" -eq "$(cluster_nodes | wc -l)" ]
}

start() {
  local count=1 tool name
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) [ $# -ge 2 ] || die "--nodes needs a number"; count=$2; shift 2 ;;
      --nodes=*) count=${1#--nodes=}; shift ;;
      *) die "start: unknown option '$1' (usage: start [--nodes N])" ;;
    esac
  done
  [[ $count =~ ^[1-9][0-9]*$ ]] && [ "$count" -le 64 ] || die "--nodes '$count' is not a node count from 1 to 64"
  for tool in munged mungekey slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || die "'$tool' not found; install Debian's slurm-wlm and munge (scripts/setup.sh)"
  done
  [ "$(id -u)" -eq 0 ] || die "needs root: slurmd starts jobs as their submitting user"
  if [ "$count" -gt 1 ]; then
    for tool in ip unshare; do command -v "$tool" >/dev/null || die "'$tool' not found (iproute2, util-linux)"; done
  fi
  export SLURM_CONF=$conf
  if running; then
    [ "$(cluster_nodes | wc -l)" -eq "$count" ] ||
      die "a cluster of $(cluster_nodes | wc -l) node(s) is running in $cluster_dir; stop it first"
    say "already running in $cluster_dir"
  else
    if [ -d "$cluster_dir" ]; then
      say "found a stopped or half-started cluster in $cluster_dir; cleaning it up first"
      # With the names of the subnet it was started on.
      (if [ -s "$cluster_dir/subnet" ]; then use_subnet "$(cat "$cluster_dir/subnet")"; fi; stop >/dev/null)
    fi
    [ "$count" -eq 1 ] || check_network_free "$count"
    mkdir -p "$cluster_dir"/{state,spool,log}
    # Written first, so that stop finds everything a failed start left behind.
    echo "$subnet" >"$cluster_dir/subnet"
    if [ "$count" -eq 1 ]; then hostname -s; else seq -f 'node%g' 1 "$count"; fi >"$nodes_file"
    for name in $(cluster_nodes); do mkdir -p "$cluster_dir/spool/$name" "$cluster_dir/tmp/$name"; done
    mkdir -p "$cluster_dir/node-tmp"
    [ "$count" -eq 1 ] || create_network
    write_conf "$count"
    start_munge
    # -c: a clean controller state; jobs of an earlier cluster in this directory are gone.
    slurmctld -c || die "slurmctld did not start; see $cluster_dir/log/slurmctld.log"
    for name in $(cluster_nodes); do start_slurmd "$name"; done
    if ! wait_for 60 nodes_idle; then
      tail -n 20 "$cluster_dir"/log/slurm*.log >&2 || true
      die "nodes not idle within 60 s (states: $(sinfo -h -N -o '%N=%T' 2>&1 | sort -u | tr '\n' ' '))"
    fi
    if [ "$count" -eq 1 ]; then
      say "running in $cluster_dir (node $(cluster_nodes), $node_cpus CPUs, port $ctld_port)"
    else
      say "running in $cluster_dir ($count nodes node1-node$count on $subnet.0/24, link mone0," \
        "$node_cpus CPUs each, controller $host_addr:$ctld_port)"
    fi
  fi
  echo "export SLURM_CONF=$conf"
}

# The processes of this cluster: its daemons, step daemons and job tasks all
# carry SLURM_CONF naming our file, which no other process has; except this
# script and its callers (a test that exported SLURM_CONF), which are skipped:
# every ancestor of this (sub)shell. Pure bash: a child process would carry
# the variable too.
cluster_pids() {
  local -A callers=()
  local pid=$BASHPID environ variable
  while [ "$pid" -gt 1 ]; do
    callers[$pid]=1
    pid=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status")
  done
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}; pid=${pid%/environ}
    [ -z "${callers[$pid]:-}" ] || continue
    while IFS= read -r -d '' variable; do
      if [ "$variable" = "SLURM_CONF=$conf" ]; then echo "$pid"; break; fi
    done 2>/dev/null <"$environ" || true
  done
}

no_jobs() { [ -z "$(squeue -h -o %i 2>/dev/null)" ]; }

stop() {
  export SLURM_CONF=$conf
  local name pid
  if live_pid "$cluster_dir/slurmctld.pid" >/dev/null; then
    # Let the jobs end the way Slurm ends them (their steps survive slurmd otherwise).
    scancel --user="$(id -un)" 2>/dev/null || true
    wait_for 60 no_jobs || say "jobs still listed after 60 s; killing what is left"
  fi
  for name in $(cluster_nodes); do
    if pid=$(live_pid "$(slurmd_pid_file "$name")"); then kill "$pid"; fi
  done
  for pid in slurmctld munge/munged; do
    if pid=$(live_pid "$cluster_dir/$pid.pid"); then kill "$pid"; fi
  done
  local deadline=$((SECONDS + 20)) left=()
  while mapfile -t left < <(cluster_pids) && [ ${#left[@]} -gt 0 ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "killing leftover processes: ${left[*]}"
      kill -KILL "${left[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  ! multi_node || remove_network
  rm -rf "$cluster_dir"
  say "stopped; removed $cluster_dir"
}

status() {
  export SLURM_CONF=$conf
  if running; then
    say "running in $cluster_dir (export SLURM_CONF=$conf)"
    sinfo
    squeue
  else
    say "not running ($cluster_dir)"
    return 3
  fi
}

# fail, cut and heal act on one node of a running multi-node cluster.
known_node() {
  multi_node || die "fail, cut and heal need a multi-node cluster (start --nodes N) in $cluster_dir"
  [ -n "${1:-}" ] || die "name a node (one of: $(cluster_nodes | tr '\n' ' '))"
  cluster_nodes | grep -qx "$1" || die "no node '$1' in $cluster_dir (nodes: $(cluster_nodes | tr '\n' ' '))"
}

fail_node() {
  known_node "$1"
  local pids
  pids=$(ip netns pids "$(namespace_of "$1")")
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -KILL $pids
  say "$1: killed every process on it ($(echo $pids | wc -w) with SIGKILL)"
}

cut_node() {
  known_node "$1"
  ip link set "$(host_link_of "$1")" down
  say "$1: link $(host_link_of "$1") down; the node is cut off from the others and the controller"
}

heal_node() {
  known_node "$1"
  export SLURM_CONF=$conf
  ip link set "$(host_link_of "$1")" up
  live_pid "$(slurmd_pid_file "$1")" >/dev/null || start_slurmd "$1"
  say "$1: link up, slurmd running"
}

# stop, fail, cut and heal act on the subnet the cluster was started with.
[ ! -s "$cluster_dir/subnet" ] || [ "${1:-}" = start ] || MONE_SLURM_SUBNET=$(cat "$cluster_dir/subnet")
use_subnet "${MONE_SLURM_SUBNET:-10.213.7}"
case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$conf" ;;
  fail) fail_node "${2:-}" ;;
  cut) cut_node "${2:-}" ;;
  heal) heal_node "${2:-}" ;;
  *) die "usage: $0 start [--nodes N] | stop | status | env | fail NODE | cut NODE | heal NODE" ;;
esac
