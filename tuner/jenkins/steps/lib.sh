# shellcheck shell=bash
# Shared helpers of the build steps (tuner/jenkins/steps/*.sh, shipped in the mlops package). Source
# it, do not run it. Every step runs as `mlops jenkins step NAME [ARGS]`, in the workspace: the
# checkout of the user's repository (no copy of this project is needed there).
#
# `mlops` is $MLOPS (a command, may hold arguments: `mlops jenkins step` sets it to the mlops that
# started the step), else `mlops` on PATH. The Python helpers below run with $PYTHON (default: the
# Python of that mlops, else python3) in isolated mode (-I): a module pushed into the workspace
# (json.py, html.py ...) is never imported by them.
#
# No secret is read or printed here: credentials reach the tools through the environment
# (Jenkins credentials binding), never through arguments, and only in the steps that call
# Jenkins, send mail or push; a step that trains refuses to run with one bound (refuse_secrets),
# except for the study URL (MLOPS_STORAGE) around a tune loop: see refuse_secrets.
#
# The pushed repository is untrusted: it may hold a symlink named mlops-out or mlops-trial
# (to /etc, to $HOME), a script named `--help` or `$(touch x).py`, names with spaces, tabs,
# newlines, `<img src=x onerror=...>` or bytes that are not UTF-8. So every step here:
#   - checks each path it writes, copies, removes or archives with check_path: relative, no
#     '..', no symlink on the way, inside the workspace ($PWD);
#   - lists files NUL-separated (git -z, find -print0) into arrays, never word-splits a name,
#     and puts `--` before file arguments;
#   - shows a name on the console as one shell word (q), writes it to a properties file
#     escaped (write_props), and HTML-escapes everything that goes into a build description
#     (describe).

# SITE_MLOPS_X=value (set by a job from jobs/project.yaml) -> MLOPS_X=value, unless empty: an
# empty site value keeps whatever the agent's environment already sets.
for _site_name in $(compgen -e); do
    case "$_site_name" in
        SITE_MLOPS_*)
            if [ -n "${!_site_name:-}" ]; then
                export "${_site_name#SITE_}=${!_site_name}"
            fi
            ;;
    esac
done
unset _site_name

mlops() {
    if [ -n "${MLOPS:-}" ]; then
        # shellcheck disable=SC2086  # $MLOPS may be "python3 -m tuner"
        command $MLOPS "$@"
    elif command -v mlops >/dev/null 2>&1; then
        command mlops "$@"
    else
        die "mlops is not on PATH; run the steps as 'mlops jenkins step NAME' (see docs/jenkins.md, mlops-install)"
    fi
}

# The Python used for the small helpers below (never the training).
py() {
    "${PYTHON:-python3}" -I "$@"
}

die() {
    echo "mlops: error: $*" >&2
    exit 2
}

# q VALUE: VALUE the way a file name or a build parameter is shown on the console: as it is
# when every character is printable, else as one shell word on one line (printf %q, e.g.
# $'models/new\nline.py'): a name holding a newline cannot start a line of its own (a forged
# "MLOPS_DESCRIPTION: ..." for the Description Setter).
q() {
    if [[ $1 =~ ^[[:print:]]*$ ]]; then
        printf '%s' "$1"
    else
        printf '%q' "$1"
    fi
}

# refuse_secrets WHAT [MLOPS_STORAGE]: a step that trains WHAT stops here when the Jenkins API
# token, the SMTP password, the git token or the study URL is in its environment. Jenkins binds
# them only around the steps that call Jenkins (the tune loop in build-per-trial mode), send mail
# (notify), push the tuned code (deliver) or run a tune loop on a shared study; a training script
# must never see them. (MLOPS_SMTP_PSW and MLOPS_GIT_PSW are what the Jenkinsfile's credentials()
# of the Notify and Deliver stages bind: refused too, should such a binding move to a stage that trains.)
# MLOPS_STORAGE (the study URL, e.g. postgresql+psycopg2://mlops:PASSWORD@db:5432/mlops: it holds the
# database password) is the one exception, and only where a step passes MLOPS_STORAGE as the
# second argument: mlops jenkins step tune and mlops jenkins step worker, whose tune loop (`mlops run`, `mlops
# worker`) needs it to reach the study. There the training runs one level down, in trial processes
# that get an allow-listed environment (tuner/runners/local.py trial_environment: no MLOPS_*, no
# name that looks like a secret; a Docker trial gets only the harness variables), so the URL is
# not handed to the training script (tests/test_secrets.py). That is not a wall against a hostile
# script running as the same user beside the tune loop (RUNNER=local, as in the Jenkinsfile's
# image): it could read the loop's /proc/<pid>/environ. Hence a database role that reaches the
# mlops database alone, from the agents alone (docs/jenkins.md); RUNNER=docker puts each trial in
# a container of its own, where the loop's processes are out of sight. Steps that run one trial
# (mlops jenkins step trial, the resumed trial of mlops jenkins step monitor) need no study and refuse it like
# the others. Only MLOPS_STORAGE can be let through; any other name asked for is a mistake in
# the step and stops it.
refuse_secrets() {
    local what=$1 allow_storage=0 name
    shift
    if [ $# -gt 0 ]; then
        [ "$*" = MLOPS_STORAGE ] || die "refuse_secrets: only MLOPS_STORAGE may be let through, not $(q "$*")"
        allow_storage=1
    fi
    for name in JENKINS_API_TOKEN MLOPS_SMTP_PASSWORD MLOPS_SMTP_PSW MLOPS_GIT_TOKEN MLOPS_GIT_TOKEN_FILE MLOPS_GIT_PSW MLOPS_STORAGE; do
        if [ -n "${!name:-}" ]; then
            if [ "$name" = MLOPS_STORAGE ]; then
                [ "$allow_storage" = 1 ] && continue
                die "MLOPS_STORAGE is bound in a step that trains $(q "$what") and needs no study; the study URL may hold the database password: bind it only around mlops jenkins step tune or mlops jenkins step worker (the tune loop; see docs/jenkins.md)"
            fi
            die "$name is bound in a step that trains $(q "$what"); a training script must never see it: bind it only around the steps that call Jenkins, send mail or push the tuned code (run 'mlops jenkins sync' to update the jobs; see docs/jenkins.md)"
        fi
    done
}

# check_storage: MLOPS_STORAGE, when set, must be a study URL mlops reads. The value is never
# shown (it may hold a password), not even in this error: mlops would quote a URL it cannot read.
check_storage() {
    case "${MLOPS_STORAGE:-}" in
        "" | postgresql://?* | postgresql+*://?* | journal:///?* | sqlite:///?*) ;;
        *) die "MLOPS_STORAGE is not a study URL (postgresql+psycopg2://USER:PASSWORD@HOST:5432/DB, journal:////shared/study.log, sqlite:////path/study.db); its value is not shown, it may hold a password: check the Secret text credential bound as MLOPS_STORAGE" ;;
    esac
}

# run_name SCRIPT COMMIT: <script stem>-<first 12 hex of COMMIT>, the name of the run directory
# (mlops-runs/<run_name>) and of the study in a shared storage (MLOPS_STORAGE): a rebuild of the
# same commit resumes it, and every worker of a build (mlops jenkins step worker) joins the same one.
run_name() {
    local stem=${1##*/}
    stem=${stem%.*}
    printf '%s\n' "$stem-${2:0:12}"
}

# The Python half of the helpers: paths, descriptions, properties. One program, a subcommand
# per helper; it gets names as arguments (bytes that are not UTF-8 arrive surrogate-escaped).
# shellcheck disable=SC2016  # Python source, not shell
_MLOPS_PY='
import html, os, sys

def shown(text):
    """text on one printable line: control and format characters, and bytes that are not
    UTF-8, as backslash escapes (a newline cannot start a line, a U+202E cannot reorder one)."""
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)

def fail(msg):
    print("mlops: error: " + msg, file=sys.stderr)
    sys.exit(2)

def inside(real, root):
    return real == root or real.startswith(root.rstrip("/") + "/")

def check(name, path, kind, base="."):
    """kind "script": a file the step reads; a symlink is followed only when it resolves inside
    the workspace, and it must be a regular file. "in": the same, but it may be missing.
    "out": a path the step writes, copies to, removes or archives: no symlink anywhere on it."""
    root = os.path.realpath(base)
    what = f"\x27{shown(path)}\x27" if name == path else f"{name}=\x27{shown(path)}\x27"
    if path == "":
        fail(f"{name} is empty; give the path of a file in the repository")
    segments = path.split("/")
    if path.startswith("/") or ".." in segments:
        fail(f"{what} must be a path inside the repository checkout (relative, no \x27..\x27)")
    parts = [s for s in segments if s not in ("", ".")]
    if not parts:
        fail(f"{what} names the workspace itself; give a path inside it")
    current = root
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        if os.path.islink(current):
            if kind == "out":
                link = "/".join(parts[: i + 1])
                where = what if i == len(parts) - 1 else f"{what}: \x27{shown(link)}\x27"
                fail(f"{where} is a symlink (to \x27{shown(os.readlink(current))}\x27); refusing to follow it "
                     "out of the workspace: remove it from the repository")
        elif not os.path.lexists(current):
            break
    real = os.path.realpath(os.path.join(root, *parts))
    if not inside(real, root):
        fail(f"{what} resolves to \x27{shown(real)}\x27, outside the workspace; refusing to follow a symlink out of it")
    if kind == "script" and not os.path.isfile(real):
        fail(f"{what} is not a file in this checkout")

def describe(text):
    check("mlops-out", "mlops-out", "out")
    check("mlops-out/description.txt", "mlops-out/description.txt", "out")
    line = html.escape(shown(text), quote=True).replace("$", "&#36;")
    os.makedirs("mlops-out", exist_ok=True)
    with open("mlops-out/description.txt", "w", encoding="utf-8") as fh:
        fh.write(line + "\n")
    print("MLOPS_DESCRIPTION: " + line, flush=True)

def prop(text, key=False):
    """text escaped for java.util.Properties, after Jenkins expanded $VAR in the file (the
    Parameterized Trigger plugin does): ASCII only, so the file encoding does not matter."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[ch])
        elif ch in "=:#! ":
            out.append("\\" + ch)
        elif 0x20 < o < 0x7F and ch != "$":
            out.append(ch)
        else:
            units = ch.encode("utf-16-be", "surrogatepass")
            for k in range(0, len(units), 2):
                out.append("\\u%02x%02x" % (units[k], units[k + 1]))
    return "".join(out)

def write_props(path, pairs):
    check("properties file", path, "out")
    lines = []
    for key, value in zip(pairs[::2], pairs[1::2]):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            fail(f"{key}=\x27{shown(value)}\x27 is not valid UTF-8; a Jenkins parameter cannot carry it: rename the file")
        lines.append(f"{prop(key)}={prop(value)}\n")
    with open(path, "w", encoding="ascii") as fh:
        fh.writelines(lines)

def utf8(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        sys.exit(1)

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "check":
    check(*args)
elif cmd == "describe":
    describe(" ".join(args))
elif cmd == "props":
    write_props(args[0], args[1:])
elif cmd == "utf8":
    utf8(args[0])
else:
    fail(f"lib.sh: unknown helper {cmd}")
'

_mlops_py() {
    py -c "$_MLOPS_PY" "$@"
}

# check_path NAME PATH [KIND [BASE]]: die with one line unless PATH stays inside the
# workspace (or BASE): relative, no '..', and
#   KIND out    (default) a path the step writes, copies to, removes or archives: no symlink
#               anywhere on it, the last component included;
#   KIND script a file the step reads: must be a regular file; a symlink is followed only when
#               it resolves inside the workspace;
#   KIND in     as script, but it may be missing.
check_path() {
    _mlops_py check "$1" "$2" "${3:-out}" "${4:-.}" || exit $?
}

# A script path from a build parameter must be a file inside the checkout.
check_rel_path() {
    check_path "$2" "$1" script
}

# is_utf8 TEXT: true when TEXT is valid UTF-8 (what a Jenkins parameter can carry).
is_utf8() {
    _mlops_py utf8 "$1"
}

# fresh_dir NAME DIR: DIR checked (check_path ... out), emptied and created.
fresh_dir() {
    check_path "$1" "$2" out
    rm -rf -- "$2"
    mkdir -p -- "$2"
}

# drop_symlinks DIR: delete every symlink under DIR (find -P never follows one), so nothing
# that archives, stashes, publishes, copies or mails DIR can follow one out of the workspace
# (archiveArtifacts is told not to; stash and publishHTML cannot be told). One that cannot be
# removed stops the step.
drop_symlinks() {
    local dir=$1 link n=0
    [ ! -L "$dir" ] || die "$(q "$dir") is a symlink; refusing to follow it out of the workspace"
    [ -d "$dir" ] || return 0
    case "$dir" in
        /*) ;;
        *) dir=./$dir ;;
    esac
    while IFS= read -r -d '' link; do
        rm -f -- "$link" || die "cannot remove the symlink $(q "${link#./}"); refusing to go on with it in place"
        n=$((n + 1))
    done < <(find "$dir" -type l -print0)
    if [ "$n" -gt 0 ]; then
        echo "mlops: removed $n symlink(s) from $(q "${dir#./}"): nothing that archives or mails it may follow one"
    fi
}

# one_gpu_per_executor KIND: a step that trains KIND on an agent that lists GPUs (nvidia-smi -L)
# uses one of them, picked by the executor that runs it (EXECUTOR_NUMBER modulo the GPUs), so two
# builds on one agent never share a GPU: CUDA_VISIBLE_DEVICES for local trials, MLOPS_GPUS (the
# Docker runner's --gpus device) for trials in containers. TensorFlow allocates GPU memory as it
# needs it (TF_FORCE_GPU_ALLOW_GROWTH=true). A regression (scikit-learn) needs no GPU: it gets none
# (CUDA_VISIBLE_DEVICES empty, MLOPS_GPUS=none). What the agent already sets is left alone; with
# several workers on the agent (WORKERS_PER_AGENT > 1) mlops deals their GPUs itself.
one_gpu_per_executor() {
    local kind=$1 n gpu
    case "$kind" in
        regression)
            export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}" MLOPS_GPUS="${MLOPS_GPUS:-none}"
            return 0
            ;;
        cnn | ann) export TF_FORCE_GPU_ALLOW_GROWTH="${TF_FORCE_GPU_ALLOW_GROWTH:-true}" ;;
        *) return 0 ;;
    esac
    if [ -n "${CUDA_VISIBLE_DEVICES+set}" ] || [ -z "${EXECUTOR_NUMBER:-}" ] || [ "${WORKERS_PER_AGENT:-1}" != 1 ]; then
        return 0
    fi
    [[ $EXECUTOR_NUMBER =~ ^[0-9]+$ ]] || return 0
    n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
    [ "${n:-0}" -gt 0 ] || return 0
    gpu=$((EXECUTOR_NUMBER % n))
    export CUDA_VISIBLE_DEVICES=$gpu MLOPS_GPUS="${MLOPS_GPUS:-$gpu}"
    echo "mlops: executor $EXECUTOR_NUMBER trains on GPU $gpu of $n"
}

# ignore_dir DIR: DIR (a folder the steps create in the checkout: mlops-runs, mlops-trial,
# mlops-out) gets a .gitignore of "*", so a `git add -A` in the workspace never commits it and
# no later push finds a run directory among the training scripts. DIR is checked first.
ignore_dir() {
    check_path "$1" "$1" out
    mkdir -p -- "$1"
    check_path "$1/.gitignore" "$1/.gitignore" out
    [ -f "$1/.gitignore" ] || printf '%s\n' '# written by mlops: nothing here belongs in the repository' '*' > "$1/.gitignore"
}

# The folders the steps write in the checkout: never training scripts (mlops jenkins step
# download leaves them out of every pathspec).
# shellcheck disable=SC2034  # used by the steps that source this file
MLOPS_OWN_DIRS=(mlops-runs mlops-out mlops-trial mlops-changed mlops-tuned upstream .mlops-home)

# copy_out WHAT SRC DEST: copy the folder SRC (a WHAT) to DEST under mlops-out, to be archived
# and published: both paths checked again (training ran in between), DEST replaced whole, the
# symlinks inside the copy dropped.
copy_out() {
    local what=$1 src=$2 dest=$3
    check_path "$what" "$src" out
    check_path mlops-out "$dest" out
    rm -rf -- "$dest"
    ignore_dir mlops-out
    cp -a -- "$src" "$dest"
    drop_symlinks "$dest"
}

# write_props FILE KEY VALUE [KEY VALUE ...]: a properties file for the Parameterized Trigger
# plugin, every value escaped (a name with a newline cannot add a parameter, a $VAR in it is
# not expanded by Jenkins, non-ASCII is \uXXXX). FILE is checked like an output path.
write_props() {
    _mlops_py props "$@" || exit $?
}

# describe TEXT: the line the Description Setter plugin copies into the build description
# (publisher regexp: ^MLOPS_DESCRIPTION: ([^<>"$]*)$), also kept in mlops-out/description.txt
# for the Jenkinsfile (currentBuild.description). A build description is HTML: TEXT is put on
# one printable line and HTML-escaped (& < > " ' and $, which the plugin would expand as a
# variable); callers pass it raw. The plugin takes the first matching line of the console and
# wraps one that parses as a URL in <a href="...">: hence no quote may be left in it, and no
# other line may start with the marker (unmarked).
describe() {
    _mlops_py describe "$*" || exit $?
}

# unmarked COMMAND...: run COMMAND (stderr merged into stdout) with every "MLOPS_DESCRIPTION:"
# in its output defused, so that what a training script, a file name or an error message
# prints can never become the build description (the Description Setter takes the first
# matching line). Lines pass through as they come; the exit status is COMMAND's.
unmarked() {
    local rc=0
    # shellcheck disable=SC2016  # Python source, not shell
    "$@" 2>&1 | py -c '
import sys
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    out.write(line.replace(b"MLOPS_DESCRIPTION:", b"MLOPS_DESCRIPTION (not this step):"))
    out.flush()
' || rc=$?
    return "$rc"
}

# display_name SCRIPT: the build's display name, "#12 face_cnn.py" (tuner.jenkins.describe:
# one printable line, no markup character), in mlops-out/display-name.txt for the Build Name
# Setter (jobs) and currentBuild.displayName (Jenkinsfile). A name that cannot be made keeps "#N".
display_name() {
    local line
    check_path mlops-out mlops-out out
    check_path mlops-out/display-name.txt mlops-out/display-name.txt out
    mkdir -p mlops-out
    if line=$(mlops jenkins display-name --number "${BUILD_NUMBER:-0}" -- "$1" 2>/dev/null) && [ -n "$line" ]; then
        printf '%s\n' "$line" >mlops-out/display-name.txt
    else
        printf '#%s\n' "${BUILD_NUMBER:-0}" >mlops-out/display-name.txt
    fi
}

# describe_path PATH: describe a run directory (summary.json) or a trial workdir (result.json).
describe_path() {
    local line
    if line=$(mlops jenkins describe -- "$1" 2>/dev/null) && [ -n "$line" ]; then
        describe "$line"
    else
        describe "no outcome recorded in $1"
    fi
}

# git_commit VALUE: VALUE (GIT_COMMIT, a sha or a ref) as a full commit sha of this repository,
# or nothing (exit 1) when it is none; a value that looks like an option is never passed to git.
git_commit() {
    case "$1" in
        "" | -*) return 1 ;;
    esac
    git rev-parse -q --verify "$1^{commit}" 2>/dev/null
}

# commit_id VALUE: VALUE when it is a hex sha (as the Git plugin sets GIT_COMMIT), else the sha
# git resolves it to, else nothing (exit 1): safe to put in a path or a git command line.
commit_id() {
    if [[ $1 =~ ^[0-9a-f]{7,64}$ ]]; then
        printf '%s\n' "$1"
    else
        git_commit "$1"
    fi
}
