#!/usr/bin/env bash
# Single-node SLURM on localhost, for tests that must go through a real sbatch.
#
#   tests/cluster/slurm_cluster.sh start    # install what is missing, configure, start, wait for the node
#   tests/cluster/slurm_cluster.sh status   # exit 0 when up, 1 when down
#   tests/cluster/slurm_cluster.sh stop     # stop only the daemons this script started
#   tests/cluster/slurm_cluster.sh env      # print `export SLURM_CONF=...` for the current shell
#   tests/cluster/slurm_cluster.sh check    # is the state folder safe to use? (exit 0 yes, 1 no)
#
# Exit codes: 0 ok; 1 failure (a real problem, show it: an unsafe state folder is one); 2 usage;
# 77 this machine cannot run SLURM (not root, no apt-get, packages not installable): callers turn 77
# into a test SKIP (77 is the automake convention for "skipped").
#
# Environment:
#   IRNET_SLURM_DIR     state folder (default /run/irnet-slurm). The cluster is machine-wide (fixed
#                       ports 6817/6818, one munge socket), so the default is one fixed place outside
#                       any checkout: two worktrees then share one cluster instead of fighting over the
#                       ports. Root daemons read their configuration from it, so it must be root's
#                       alone: owned by root, mode 700, not a symbolic link, in a folder that only root
#                       can change (or a sticky one such as /tmp, for a `mktemp -d` folder). Anything
#                       else is refused before it is read or written (see check_state_dir).
#   IRNET_SLURM_GPUS    fake GPUs to declare as GRES (default 1), so rules with `resources: gpu=1`
#                       are schedulable here; they are copies of /dev/null, nothing runs on them.
#                       0 declares no GPUs.
#   IRNET_SLURM_WAIT_S  seconds to wait for the node to become usable (default 60).
#   IRNET_SLURM_ISOLATION  how jobs are kept from reading a system /etc/slurm/slurm.conf: auto
#                       (default: namespace where permitted, else path), namespace or path. See
#                       "Jobs and /etc/slurm" in tests/cluster/README.md.
#
# Facts behind the choices are in /work/shared/docs/snakemake-notes.md (Part 1).
set -euo pipefail
shopt -s extglob

DEFAULT_STATE=/run/irnet-slurm
FAKE_GPUS=${IRNET_SLURM_GPUS:-1}
WAIT_S=${IRNET_SLURM_WAIT_S:-60}
ISOLATION_REQUEST=${IRNET_SLURM_ISOLATION:-auto}
# Set by resolve_state: the canonical state folder and the files in it.
STATE=
CONF=
LOG=
# 1 once the state folder passed check_state_dir; until then nothing is written into it (not even the
# log: a prepared harness.log could be a link to a file that root would then append to).
STATE_TRUSTED=0
# Set by check_state_dir: 1 when the state folder exists.
STATE_EXISTS=0
# namespace or path, set by choose_isolation.
ISOLATION=
# Where SLURM commands look when SLURM_CONF is unset. Jobs always end up there: the Snakemake jobstep
# plugin removes SLURM_CONF (with every SLURM_* variable but the job's identity) from the environment of
# the `srun` that runs each rule. A file there that is not ours is never touched; jobs are kept away from
# it instead (choose_isolation). Only where nothing exists there do we link our file there, so that root
# can type `sinfo` without exporting SLURM_CONF.
SYS_ETC=/etc/slurm
SYS_CONF=$SYS_ETC/slurm.conf
# Client commands that a job may run; in path isolation each gets a wrapper that sets SLURM_CONF.
CLIENT_TOOLS=(srun sbatch salloc sattach scancel scontrol sinfo squeue sacct sstat)
PACKAGES=(munge slurm-client slurmctld slurmd slurm-wlm)
DAEMONS=(munged slurmctld slurmd)

EX_FAIL=1
EX_USAGE=2
EX_SKIP=77

log() {
    # Everything we do is appended to the log, so a failed CI run can be reconstructed afterwards.
    local line
    line="$(date '+%F %T') [$$] $*"
    echo "$line" >&2
    if ((STATE_TRUSTED)); then echo "$line" >>"$LOG"; fi
}

die() {
    local code=$1
    shift
    log "ERROR: $*"
    exit "$code"
}

# --- the state folder ----------------------------------------------------------------------------------
# Root daemons read slurm.conf, gres.conf, pid files and device files from it, and slurm.conf names
# programs and plugins that they run. Whoever can write into the folder, or swap it, can therefore run
# code as root. Hence the rules below, checked before anything in it is read or written; each refusal is
# one line that names the folder and the reason.

# Sets STATE (canonical), CONF and LOG from IRNET_SLURM_DIR. The parent is resolved once, here, and only
# the resolved path is used afterwards: a symbolic link on the way could otherwise be re-pointed after
# the check.
resolve_state() {
    local want=${IRNET_SLURM_DIR:-$DEFAULT_STATE} parent base real_parent
    # The path is written unquoted into slurm.conf and into small sh scripts: keep it to plain characters.
    [[ $want =~ ^[A-Za-z0-9._/-]+$ ]] ||
        die $EX_FAIL "state folder '$want': only letters, digits and . _ - / are allowed in its path"
    [[ $want == /* ]] || die $EX_FAIL "state folder '$want': must be an absolute path"
    want=${want%%+(/)}
    base=${want##*/}
    parent=${want%/*}
    if [[ -z $base || $base == . || $base == .. ]]; then
        die $EX_FAIL "state folder '${want:-/}': must name a folder below /"
    fi
    real_parent=$(realpath -e -- "${parent:-/}" 2>/dev/null) ||
        die $EX_FAIL "state folder '$want': its parent folder ${parent:-/} does not exist"
    STATE=${real_parent%/}/$base
    CONF=$STATE/etc/slurm.conf
    LOG=$STATE/harness.log
}

unsafe() {
    die $EX_FAIL "unsafe state folder $STATE: $*; refusing to use it (IRNET_SLURM_DIR; see tests/cluster/README.md)"
}

# Owner uid and octal mode of a path, without following a final symbolic link.
owner_mode() { stat -c '%u %a' -- "$1"; }

# Every folder from the state folder's parent up to / must be root's and not writable by others (or
# sticky, as /tmp is: there nobody but root can rename or remove root's folder). Otherwise another user
# could move our folder away and put one of theirs in its place between the check and the daemons' use.
check_ancestors() {
    local dir=${STATE%/*} uid mode
    dir=${dir:-/}
    while :; do
        [[ -d $dir && ! -L $dir ]] || unsafe "its parent $dir is not a folder"
        read -r uid mode < <(owner_mode "$dir")
        if ((uid != 0)); then
            unsafe "its parent $dir belongs to uid $uid, not root (that user could replace the state folder)"
        fi
        if (((8#$mode & 8#022) && !(8#$mode & 8#1000))); then
            unsafe "its parent $dir is group/world-writable without the sticky bit (mode $mode)"
        fi
        [[ $dir == / ]] && break
        dir=${dir%/*}
        dir=${dir:-/}
    done
}

# Dies (exit 1, one line) unless the state folder is safe; sets STATE_EXISTS. A folder that does not
# exist yet is fine when its parents are: `start` creates it with mode 700.
check_state_dir() {
    local uid mode
    check_ancestors
    if [[ -L $STATE ]]; then
        unsafe "it is a symbolic link (to $(readlink -- "$STATE")), which could be re-pointed after this check"
    fi
    if [[ ! -e $STATE ]]; then
        STATE_EXISTS=0
        return 0
    fi
    [[ -d $STATE ]] || unsafe "it is not a folder"
    read -r uid mode < <(owner_mode "$STATE")
    ((uid == 0)) || unsafe "it belongs to uid $uid, not root"
    if ((8#$mode & 8#022)); then unsafe "it is group/world-writable (mode $mode)"; fi
    [[ $mode == 700 ]] || unsafe "it has mode $mode, not 700"
    STATE_EXISTS=1
}

# For start: creates the state folder if needed (mode 700, and never through an existing name: mkdir
# fails on anything already there, which is then checked like any existing folder) and trusts it.
ensure_state_dir() {
    check_state_dir
    if ((!STATE_EXISTS)); then
        mkdir -m 700 -- "$STATE" 2>/dev/null || true
        check_state_dir
        ((STATE_EXISTS)) || die $EX_FAIL "could not create the state folder $STATE"
    fi
    STATE_TRUSTED=1
}

pidfile() { echo "$STATE/run/$1.pid"; }

# PID of a daemon this script started, or nothing. The comm check guards against PID reuse: a stale
# pid file must never make us signal an unrelated process.
our_pid() {
    local name=$1 f pid
    f=$(pidfile "$name")
    [[ -s $f ]] || return 0
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    if [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$name" ]]; then
        echo "$pid"
    fi
}

# PIDs of a daemon with that exact name that we did not start (a site's own, or another harness copy).
# A process started with our slurm.conf is ours even without a pid record: right after a start, the
# daemon's short-lived pre-fork parent still exists for a moment.
foreign_pids() {
    local name=$1 ours pid
    ours=$(our_pid "$name")
    for pid in $(pgrep -x "$name" 2>/dev/null || true); do
        [[ $pid == "$ours" ]] && continue
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-f $CONF" && continue
        echo "$pid"
    done
}

# The whole configuration as text, derived from the machine every time, so that a changed core count or
# GPU setting is noticed by comparing it with what the running daemons were started with.
render_conf() {
    local cpus mem_kb real_mb gres_node="" task_prolog=""
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    # 90 %: slurmd drains a node that reports less memory than configured, and jobs need headroom.
    real_mb=$((mem_kb * 9 / 10 / 1024))
    if ((FAKE_GPUS > 0)); then gres_node=" Gres=gpu:$FAKE_GPUS"; fi
    if [[ $ISOLATION == path ]]; then
        task_prolog="# Puts $STATE/bin first in every task's PATH (path isolation, see slurm_cluster.sh).
TaskProlog=$STATE/etc/task_prolog"
    fi
    cat <<EOF
# Generated by tests/cluster/slurm_cluster.sh; rewritten (and the daemons restarted) when it changes.
# gres.conf, plugstack.conf, cgroup.conf, ... are looked up next to this file, in $STATE/etc, so that
# none of a site's files in /etc/slurm is read.
ClusterName=irnet-local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$(pidfile slurmctld)
SlurmdPidFile=$(pidfile slurmd)
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups in this container: track processes through /proc and do not bind tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# No accounting database: sacct does not work, so Snakemake must poll squeue (see profiles/slurm).
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# squeue and scontrol only know a finished job for MinJobAge seconds. The slurm executor plugin uses squeue
# only when MinJobAge >= 3 x slurm-init-seconds-before-status-checks, else it silently falls back to sacct
# (which fails here and hangs Snakemake). The tests read every job's record after the whole run: on a busy
# 2-core machine the tiny pipeline ran 372 s after its first job ended, and with 300 the first records were
# gone. An hour covers any test run; a test cluster's few thousand records cost nothing.
MinJobAge=3600
# A restarted slurmd comes back as "unexpectedly rebooted" (DOWN) otherwise.
ReturnToService=2
${gres_node:+GresTypes=gpu}
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb$gres_node State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
$task_prolog
EOF
}

render_gres() {
    ((FAKE_GPUS > 0)) || return 0
    echo "# Fake GPUs: Slurm 22.05 drops GPUs without a File=, which leaves the node INVALID."
    echo "NodeName=localhost Name=gpu File=$STATE/dev/fakegpu[0-$((FAKE_GPUS - 1))]"
}

node_state() {
    SLURM_CONF=$CONF timeout 10 sinfo -h -N -n localhost -o '%t' 2>/dev/null | head -n1 || true
}

# idle/mix/alloc means slurmctld answers and the node accepts jobs. Anything else is not usable (yet):
# down/drain/inval, unk while slurmd has not registered, or a flag suffix such as '*' (not responding).
node_usable() {
    local st
    st=$(node_state)
    [[ $st =~ ^(idle|mix|mixed|alloc|allocated|comp|completing)$ ]]
}

all_up() {
    local d
    for d in "${DAEMONS[@]}"; do
        if [[ -z $(our_pid "$d") && -z $(foreign_pids "$d") ]]; then return 1; fi
    done
    node_usable
}

# --- jobs and /etc/slurm ---------------------------------------------------------------------------
# A job's SLURM commands find their configuration through SLURM_CONF, else /etc/slurm/slurm.conf
# (Slurm 22.05, read_config.c: SLURM_CONF, then the default file if it exists, then configless). sbatch
# --export=ALL hands our SLURM_CONF to the batch script, but the Snakemake jobstep plugin (0.6) runs each
# rule through an `srun` from whose environment it removed every SLURM_* variable except the job's
# identity, SLURM_CONF included. That srun therefore reads /etc/slurm/slurm.conf: on a machine with a
# site's file there, it stopped with "Invalid generic resource (gres) specification" (no gpu in the
# site's GresTypes). Two ways to make jobs read ours without touching a file that is not ours:
#   namespace  slurmd (and with it every job) runs in a mount namespace of its own in which
#              $STATE/etc is mounted on /etc/slurm. Complete: a job sees only our configuration files,
#              whatever it runs and however. Needs the right to mount (CAP_SYS_ADMIN), which an
#              unprivileged container lacks.
#   path       a TaskProlog puts $STATE/bin first in each task's PATH; there, srun, sbatch, ... are
#              wrappers that set SLURM_CONF to our file. Works anywhere, but only for commands called
#              by name (as the plugin does), not as /usr/bin/srun.

# Can this process run slurmd with $STATE/etc on /etc/slurm? Tried for real, in a throwaway namespace
# (gone when `mount` exits): unshare alone may be allowed where mount is not (an AppArmor profile).
# `mount -n`: no /run/mount/utab bookkeeping, which would leave a folder behind on the host.
namespace_works() {
    command -v unshare >/dev/null && [[ -d $STATE/etc && -d $SYS_ETC ]] || return 1
    unshare --mount --propagation private -- mount -n --bind "$STATE/etc" "$SYS_ETC" 2>/dev/null
}

choose_isolation() {
    case $ISOLATION_REQUEST in
        auto) if namespace_works; then ISOLATION=namespace; else ISOLATION=path; fi ;;
        namespace | path) ISOLATION=$ISOLATION_REQUEST ;;
        *) die $EX_USAGE "IRNET_SLURM_ISOLATION must be auto, namespace or path, not '$ISOLATION_REQUEST'" ;;
    esac
}

# Does our slurmd, and so every job it starts, see our slurm.conf at /etc/slurm/slurm.conf? Asked
# through /proc/PID/root, which resolves paths in that process's mount namespace.
slurmd_sees_our_conf() {
    local pid
    pid=$(our_pid slurmd)
    [[ -n $pid && /proc/$pid/root$SYS_CONF -ef $CONF ]]
}

# Path isolation: the wrappers and the TaskProlog that puts them first in PATH. Not needed (and not
# written) in namespace isolation.
write_path_isolation() {
    local tool real
    for tool in "${CLIENT_TOOLS[@]}"; do
        real=$(PATH=/usr/local/bin:/usr/bin:/bin type -P "$tool") || continue
        write_if_changed "$STATE/bin/$tool" "#!/bin/sh
# Written by tests/cluster/slurm_cluster.sh: $tool in a job of the test cluster reads the test cluster's
# configuration, whatever SLURM_CONF the job's environment holds (none, in the Snakemake jobstep's srun).
SLURM_CONF=$CONF exec $real \"\$@\"" || true
        chmod 755 "$STATE/bin/$tool"
    done
    # Each line "export NAME=value" that a TaskProlog prints is set in the task's environment. It runs
    # with the task's environment, so the job's own PATH (a virtual environment's python) is kept.
    write_if_changed "$STATE/etc/task_prolog" "#!/bin/sh
# Written by tests/cluster/slurm_cluster.sh (TaskProlog, path isolation).
case :\$PATH: in
    *:$STATE/bin:*) ;;
    *) echo \"export PATH=$STATE/bin:\$PATH\" ;;
esac" || true
    chmod 755 "$STATE/etc/task_prolog"
}

# Up, and started with the configuration this machine and environment would produce now.
up_and_current() {
    local d
    for ((d = 0; d < FAKE_GPUS; d++)); do [[ -e $STATE/dev/fakegpu$d ]] || return 1; done
    [[ -f $CONF && $(<"$CONF") == "$(render_conf)" ]] || return 1
    if [[ $ISOLATION == namespace ]]; then slurmd_sees_our_conf || return 1; fi
    all_up
}

install_packages() {
    local missing=() p created_policy=0
    for p in "${PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die $EX_SKIP "packages missing (${missing[*]}) and no apt-get here"
    log "installing: ${missing[*]}"
    # Without systemd the maintainer scripts would try (and fail) to start the daemons; policy-rc.d
    # exit 101 tells invoke-rc.d "not allowed". Only remove it again if we created it.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    local rc=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >>"$LOG" 2>&1 || rc=$?
    if ((created_policy)); then rm -f /usr/sbin/policy-rc.d; fi
    ((rc == 0)) || die $EX_SKIP "apt-get could not install ${missing[*]} (rc $rc; see $LOG)"
}

# Writes a file only when its content differs; returns 0 when it changed.
write_if_changed() {
    local path=$1 content=$2
    if [[ -f $path && $(<"$path") == "$content" ]]; then return 1; fi
    printf '%s\n' "$content" >"$path.tmp"
    mv "$path.tmp" "$path"
    return 0
}

# Fake GPU device files. slurmd wants a character device (with a plain file, jobs are still scheduled
# but get no CUDA_VISIBLE_DEVICES); a copy of /dev/null (1,3) is one that nothing can misuse. Where mknod
# is not permitted, a plain file is kept. Returns 0 when a device file was (re)created.
make_fake_gpus() {
    local d f made=1
    for ((d = 0; d < FAKE_GPUS; d++)); do
        f=$STATE/dev/fakegpu$d
        [[ -c $f ]] && continue
        if mknod "$f.new" c 1 3 2>/dev/null; then
            mv -f "$f.new" "$f"
            made=0
        elif [[ ! -e $f ]]; then
            log "note: mknod not permitted; fake GPU $d is a plain file (no CUDA_VISIBLE_DEVICES in jobs)"
            : >"$f"
            made=0
        fi
    done
    return $made
}

# Writes slurm.conf, gres.conf and the device files. Returns 0 when anything the daemons read changed,
# so that the caller restarts them.
prepare_config() {
    local changed=1 link
    mkdir -p "$STATE"/{etc,ctld,spool,run,log,dev,bin}
    # /etc/slurm: linked to our file only where nothing is there. A file there, or a link to anything
    # else (a site's configuration, or an older harness's /tmp/irnet-slurm/slurm.conf), is left as it is.
    if [[ ! -e $SYS_CONF && ! -L $SYS_CONF ]]; then
        install -d -m 755 "$SYS_ETC"
        ln -s "$CONF" "$SYS_CONF"
        log "linked $SYS_CONF -> $CONF"
    fi
    # Now that $STATE/etc and /etc/slurm exist, the namespace can be tried.
    choose_isolation
    if ! { link=$(readlink -- "$SYS_CONF") && [[ $link == "$CONF" ]]; }; then
        log "note: $SYS_CONF is not ours; left as it is, jobs are kept from it ($ISOLATION isolation)"
    fi
    if [[ $ISOLATION == path ]]; then
        write_path_isolation
    else
        rm -f "$STATE"/bin/* "$STATE/etc/task_prolog"
    fi
    if write_if_changed "$CONF" "$(render_conf)"; then changed=0; fi
    if ((FAKE_GPUS > 0)); then
        if make_fake_gpus; then changed=0; fi
        if write_if_changed "$STATE/etc/gres.conf" "$(render_gres)"; then changed=0; fi
    elif [[ -e $STATE/etc/gres.conf ]]; then
        rm -f "$STATE/etc/gres.conf"
        changed=0
    fi
    return $changed
}

ensure_munge() {
    local pid
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating munge key"
        mkdir -p /etc/munge
        (umask 277 && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none)
    fi
    # munged insists that the key belongs to the user it runs as and is not readable by others.
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    if [[ -n $(our_pid munged) || -n $(foreign_pids munged) ]]; then return 0; fi
    # /run/munge is normally made by systemd-tmpfiles, which does not run here.
    install -d -o munge -g munge -m 755 /run/munge /var/lib/munge /var/log/munge
    rm -f /run/munge/munge.socket.2.lock
    rm -f /run/munge/munged.pid
    # As user munge, like the Debian service; its parent returns once the socket is ready.
    # 9>&-: the daemon must not inherit our lock fd, or it would hold the lock for its whole life.
    runuser -u munge -- /usr/sbin/munged >>"$LOG" 2>&1 9>&- ||
        die $EX_FAIL "munged did not start (see $LOG and /var/log/munge/munged.log)"
    # munged cannot write into our root-owned run dir; copy its own pid file over as our record.
    pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || die $EX_FAIL "munged wrote no pid file /run/munge/munged.pid"
    echo "$pid" >"$(pidfile munged)"
    log "started munged (pid $pid)"
}

# Starts a slurm daemon in the background; it daemonises itself and writes the pid file named in
# slurm.conf, which is our record of it.
start_slurm_daemon() {
    local name=$1 i pid
    shift
    "$@" >>"$LOG" 2>&1 9>&- || die $EX_FAIL "$name did not start (see $STATE/log/$name.log)"
    for ((i = 0; i < 50; i++)); do
        pid=$(our_pid "$name")
        [[ -n $pid ]] && break
        sleep 0.1
    done
    [[ -n $pid ]] || die $EX_FAIL "$name wrote no pid file (see $STATE/log/$name.log)"
    log "started $name (pid $pid)"
}

stop_one() {
    local name=$1 pid i
    pid=$(our_pid "$name")
    if [[ -z $pid ]]; then
        rm -f "$(pidfile "$name")"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        [[ -e /proc/$pid ]] || break
        sleep 0.1
    done
    if [[ -e /proc/$pid && $(</proc/"$pid"/comm) == "$name" ]]; then
        log "$name (pid $pid) ignored SIGTERM for 20 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$name")"
    log "stopped $name (pid $pid)"
}

wait_for_node() {
    local deadline=$((SECONDS + WAIT_S)) st
    while ((SECONDS < deadline)); do
        node_usable && return 0
        st=$(node_state)
        # A node that came back DOWN from an earlier life is returned to service explicitly.
        if [[ $st == down* ]]; then
            SLURM_CONF=$CONF scontrol update nodename=localhost state=resume >>"$LOG" 2>&1 || true
        fi
        sleep 0.5
    done
    SLURM_CONF=$CONF scontrol show node localhost >>"$LOG" 2>&1 || true
    die $EX_FAIL "node 'localhost' not usable after ${WAIT_S}s (state '${st:-no answer}');" \
        "see $STATE/log/slurmctld.log, $STATE/log/slurmd.log and $LOG"
}

cmd_start() {
    local t0=$SECONDS
    choose_isolation
    # Fast path while up with an unchanged configuration: no apt, no writes besides the log.
    if up_and_current; then
        log "start: already up (node $(node_state); $ISOLATION isolation)"
        return 0
    fi
    command -v dpkg-query >/dev/null || die $EX_SKIP "not a Debian-like system (no dpkg-query)"
    # Checked before anything is started, so that a refusal leaves nothing behind.
    local d
    for d in slurmctld slurmd; do
        if [[ -n $(foreign_pids "$d") ]]; then
            die $EX_FAIL "a $d that this script did not start is running (pid $(foreign_pids "$d" | xargs));" \
                "stop it or use that cluster directly"
        fi
    done
    log "start: bringing the cluster up in $STATE"
    install_packages
    local restart=0
    if prepare_config; then
        restart=1
        log "configuration in $STATE changed: (re)starting slurmctld and slurmd"
    fi
    if [[ $ISOLATION == namespace ]] && ! namespace_works; then
        die $EX_FAIL "IRNET_SLURM_ISOLATION=namespace, but this machine does not allow a mount namespace" \
            "(unshare --mount, mount --bind); use auto or path"
    fi
    ensure_munge
    if ((restart)); then
        # Daemons started with the old file would keep its node/partition definitions.
        stop_one slurmd
        stop_one slurmctld
    elif [[ $ISOLATION == namespace && -n $(our_pid slurmd) ]] && ! slurmd_sees_our_conf; then
        log "slurmd runs outside its namespace: restarting it"
        stop_one slurmd
    fi
    if [[ -z $(our_pid slurmctld) ]]; then start_slurm_daemon slurmctld /usr/sbin/slurmctld -f "$CONF"; fi
    if [[ -z $(our_pid slurmd) ]]; then
        if [[ $ISOLATION == namespace ]]; then
            # --propagation private: the bind mount must never reach the machine's own mount table.
            # shellcheck disable=SC2016  # $0, $1, $@ are the inner sh's arguments, expanded there
            start_slurm_daemon slurmd unshare --mount --propagation private -- \
                /bin/sh -c 'mount -n --bind "$0" "$1" && shift && exec "$@"' "$STATE/etc" "$SYS_ETC" \
                /usr/sbin/slurmd -f "$CONF" -N localhost
            slurmd_sees_our_conf || die $EX_FAIL "slurmd started, but does not see $CONF at $SYS_CONF"
        else
            start_slurm_daemon slurmd /usr/sbin/slurmd -f "$CONF" -N localhost
        fi
    fi
    wait_for_node
    log "start: up after $((SECONDS - t0)) s (node $(node_state); $ISOLATION isolation)"
}

cmd_stop() {
    if [[ ! -d $STATE/run ]]; then
        echo "nothing recorded in $STATE; nothing to stop"
        return 0
    fi
    local d
    # Reverse start order: slurmd before slurmctld (so it can say goodbye), munge last (both use it).
    for d in slurmd slurmctld munged; do stop_one "$d"; done
    if [[ -L $SYS_CONF && $(readlink -- "$SYS_CONF") == "$CONF" ]]; then
        rm -f "$SYS_CONF"
        log "removed link $SYS_CONF"
    fi
    log "stop: done"
}

cmd_status() {
    local d pid absent=0
    if ((EUID != 0 && STATE_EXISTS)) && [[ ! -r $STATE ]]; then
        echo "state folder $STATE is root's alone: status needs root"
        return 1
    fi
    for d in "${DAEMONS[@]}"; do
        pid=$(our_pid "$d")
        if [[ -n $pid ]]; then
            echo "$d: running (pid $pid, started by this harness)"
        elif [[ -n $(foreign_pids "$d") ]]; then
            echo "$d: running (pid $(foreign_pids "$d" | xargs), NOT started by this harness)"
        else
            echo "$d: not running"
            absent=1
        fi
    done
    if [[ -n $(our_pid slurmd) ]]; then
        if slurmd_sees_our_conf; then
            echo "jobs: read $CONF (it is what they see at $SYS_CONF)"
        elif [[ -f $CONF ]] && grep -q '^TaskProlog=' "$CONF"; then
            echo "jobs: SLURM commands called by name read $CONF (path isolation: $STATE/bin first in PATH)"
        else
            echo "jobs: WARNING: a job's srun reads $SYS_CONF, which is not ours; restart with start"
        fi
    fi
    if ((absent == 0)) && node_usable; then
        echo "node localhost: $(node_state); SLURM is up (SLURM_CONF=$CONF)"
        return 0
    fi
    echo "SLURM is down"
    return 1
}

main() {
    local cmd=${1:-}
    case $cmd in
        start | stop | status | env | check) ;;
        *)
            echo "usage: $0 {start|stop|status|env|check}" >&2
            exit $EX_USAGE
            ;;
    esac
    # Every command, read-only ones included, refuses an unsafe state folder before reading anything in
    # it: a client that reads a prepared slurm.conf loads the plugins it names.
    resolve_state
    check_state_dir
    case $cmd in
        check)
            if ((STATE_EXISTS)); then
                echo "state folder $STATE: safe"
            else
                echo "state folder $STATE: absent, in a safe parent; start creates it with mode 700"
            fi
            return 0
            ;;
        env)
            echo "export SLURM_CONF=$CONF"
            echo "export IRNET_SLURM_DIR=$STATE"
            return 0
            ;;
        status)
            cmd_status
            return
            ;;
    esac
    if ((EUID != 0)); then
        # The state folder is root's alone (mode 700), so without root the cluster's slurm.conf cannot
        # even be read: there is nothing a non-root caller could use.
        if [[ $cmd == stop ]]; then die $EX_FAIL "stop needs root (uid $EUID)"; fi
        die $EX_SKIP "the test cluster needs root (uid $EUID): its state folder $STATE is root's alone"
    fi
    if [[ $cmd == stop ]] && ((!STATE_EXISTS)); then
        echo "no state folder $STATE; nothing to stop"
        return 0
    fi
    ensure_state_dir
    # One start/stop at a time: two test sessions starting together must not both launch slurmctld.
    exec 9>>"$STATE/lock"
    flock -w 120 9 || die $EX_FAIL "another start/stop holds $STATE/lock for more than 120 s"
    "cmd_$cmd"
}

main "$@"
