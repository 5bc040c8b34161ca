#!/usr/bin/env bash
# Interoperability of Proctor's transparency log with a tlog client nobody here wrote:
# aics-tlog (PyPI, pinned below; needs Python >= 3.12), a C2SP tlog-tiles / tlog-checkpoint /
# signed-note verifier, reads a live `proctor serve`'s tiles under /log/ and verifies
#   - the checkpoint, with the log's vkey as `proctor keys show` prints it (out of band: from
#     the data directory, not from the server);
#   - the inclusion of a job's attestation (the envelope's exact bytes) from the tiles, at the
#     index the attestation names, and that the entry bundle holds those bytes;
#   - the consistency of an older checkpoint (saved before more jobs ran) with the newer one,
#     from the tiles alone;
# and `proctor verify --policy` checks the job's attestation.tlog-proof receipt offline, after
# the server is gone, and refuses it once a byte of the receipt is changed.
#
# The log gets 131 jobs (262 entries): a full level-0 tile and entry bundle, partial ones,
# and a level-1 tile. Needs PROCTOR_BIN (the release `proctor` binary), python3.12 (or
# PYTHON312) and curl. About a minute on two cores once the venv exists.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PROCTOR_BIN:?set PROCTOR_BIN to the release proctor binary}"
if [ ! -x "$PROCTOR_BIN" ]; then
    echo "tlog-interop: PROCTOR_BIN=$PROCTOR_BIN is not an executable" >&2
    exit 1
fi
PROCTOR_BIN="$(cd "$(dirname "$PROCTOR_BIN")" && pwd)/$(basename "$PROCTOR_BIN")"
AICS_TLOG_VERSION=0.2.1
python312="${PYTHON312:-python3.12}"
if ! "$python312" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
    # pyenv shims name the interpreter but may not select it; look for the real one.
    for candidate in "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
        if [ -x "$candidate" ]; then
            python312="$candidate"
            break
        fi
    done
fi
"$python312" -c 'import sys; assert sys.version_info >= (3, 12)' || {
    echo "tlog-interop: aics-tlog needs Python >= 3.12; set PYTHON312" >&2
    exit 1
}

# --- aics-tlog, in a venv reused across runs while it holds the pinned version. ---------------
venv="$HOME/.cache/proctor-tlog-interop-venv"
if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aics-tlog"))' 2>/dev/null || true)" != "$AICS_TLOG_VERSION" ]; then
    echo "tlog-interop: installing aics-tlog==$AICS_TLOG_VERSION into $venv"
    rm -rf "$venv"
    "$python312" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "aics-tlog==$AICS_TLOG_VERSION"
fi
aics="$venv/bin/aics-tlog"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "tlog-interop: $*" >&2
    [ -f "$work/serve.log" ] && tail -n 30 "$work/serve.log" >&2
    exit 1
}

unset PROCTOR_DATABASE_URL PROCTOR_DATA_DIR PROCTOR_LISTEN PROCTOR_CREDENTIAL_KEY \
    PROCTOR_SERVER PROCTOR_TOKEN PROCTOR_LOG_ORIGIN
origin="proctor.ci.example/log"
admin_token="pct_$("$python312" -c 'import secrets; print(secrets.token_hex(32))')"
PROCTOR_ADMIN_TOKEN="$admin_token" "$PROCTOR_BIN" serve \
    --data-dir "$work/data" --listen 127.0.0.1:0 --origin "$origin" \
    --quota-uploads-per-hour 1000000 >"$work/serve.log" 2>&1 &
server_pid=$!
base=""
for _ in $(seq 1 300); do
    kill -0 "$server_pid" 2>/dev/null || fail "proctor serve exited during start-up"
    if [ -z "$base" ]; then
        base="$(sed -n 's|^proctor serve: listening on \(http://[0-9.:]*\).*|\1|p' "$work/serve.log" | head -n1)"
    fi
    if [ -n "$base" ] && curl -fsS -o /dev/null --max-time 2 "$base/healthz"; then
        break
    fi
    sleep 0.1
done
curl -fsS -o /dev/null --max-time 2 "$base/healthz" || fail "proctor serve did not answer /healthz"
export PROCTOR_SERVER="$base"
tiles="$base/log"
echo "tlog-interop: proctor serve at $base, tiles at $tiles/"

# The log's vkey, from the data directory (what an operator hands a regulator), and the same
# as the server's convenience copy.
"$PROCTOR_BIN" keys show "$work/data" | sed -n 's/^vkey: \([^ ]*\).*/\1/p' >"$work/log.vkey"
[ -s "$work/log.vkey" ] || fail "\`proctor keys show\` printed no vkey"
[ "$(curl -fsS "$base/v1/log/vkey")" = "$(cat "$work/log.vkey")" ] ||
    fail "GET /v1/log/vkey differs from \`proctor keys show\`"
echo "tlog-interop: log vkey $(cat "$work/log.vkey")"

# --- jobs, with the CLI. ----------------------------------------------------------------------
as() { # as TOKEN proctor-args...
    local token="$1"
    shift
    PROCTOR_TOKEN="$token" "$PROCTOR_BIN" "$@" 2>>"$work/seed.log" ||
        fail "\`proctor $*\` failed: $(tail -n 5 "$work/seed.log")"
}
json_field() {
    "$python312" -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print(v)' "$1"
}
vendor_id="$(as "$admin_token" account create ti-vendor --role vendor --no-token --json | json_field account.id)"
vendor_token="$(as "$admin_token" account token create "$vendor_id" --name interop)"
evaluator_id="$(as "$admin_token" account create ti-evaluator --role evaluator --tier academic --no-token --json | json_field account.id)"
evaluator_token="$(as "$admin_token" account token create "$evaluator_id" --name interop)"
printf 'adapter = "builtin"\nmodel = "arith"\n' >"$work/arith.toml"
model_id="$(as "$vendor_token" model register --name arith --version 1 --config "$work/arith.toml")"
as "$vendor_token" grant create --model "$model_id" --account "$evaluator_id" \
    --policy standard --queries-total 100000000 >/dev/null
as "$evaluator_token" examples --out "$work/ex" >/dev/null
# A small dataset (the standard policy's min_samples is 10): many short jobs.
head -n 12 "$work/ex/arith.jsonl" >"$work/small.jsonl"
eval_sha="$(as "$evaluator_token" eval upload "$work/ex/arith.wasm")"
dataset_sha="$(as "$evaluator_token" dataset upload "$work/small.jsonl")"

run_jobs() { # run_jobs N: submits N jobs, waits for all; prints the last job's id
    local ids=() id status
    for _ in $(seq 1 "$1"); do
        ids+=("$(as "$evaluator_token" job submit --eval "$eval_sha" --dataset "$dataset_sha" \
            --model "$model_id" --policy standard)")
    done
    for id in "${ids[@]}"; do
        for _ in $(seq 1 600); do
            status="$(as "$evaluator_token" job status "$id" | sed -n 's/^status *//p')"
            case "$status" in queued | running) sleep 0.1 ;; *) break ;; esac
        done
        [ "$status" = succeeded ] || fail "job $id ended ${status:-nowhere}"
    done
    echo "${ids[-1]}"
}

first_job="$(run_jobs 1)"
curl -fsS "$tiles/checkpoint" >"$work/old-checkpoint"
old_size="$(sed -n 2p "$work/old-checkpoint")"
last_job="$(run_jobs 130)"
as "$evaluator_token" attestation get "$last_job" --out "$work/att" >/dev/null
curl -fsS "$tiles/checkpoint" >"$work/checkpoint"
size="$(sed -n 2p "$work/checkpoint")"
echo "tlog-interop: old checkpoint of $old_size entries, new of $size (first job $first_job, last $last_job)"
[ "$size" -gt 256 ] || fail "the log has $size entries; the check wants a full tile (> 256)"

# Caching headers: full tiles immutable, the checkpoint and partial tiles short-lived.
curl -fsS -D "$work/full.h" -o /dev/null "$tiles/tile/0/000"
grep -qi '^cache-control: public, max-age=31536000, immutable' "$work/full.h" ||
    fail "a full tile is not served immutable: $(cat "$work/full.h")"
curl -fsS -D "$work/cp.h" -o /dev/null "$tiles/checkpoint"
grep -qi '^cache-control: public, max-age=5' "$work/cp.h" || fail "the checkpoint is cached long"

# --- aics-tlog. -------------------------------------------------------------------------------
check() { # check WHAT aics-tlog-args...: runs aics-tlog, which prints one JSON object
    local what="$1"
    shift
    if ! "$aics" "$@" >"$work/aics.json" 2>"$work/aics.err"; then
        fail "aics-tlog $what failed: $(cat "$work/aics.json" "$work/aics.err")"
    fi
    "$python312" -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if r.get("ok") else 1)' \
        "$work/aics.json" || fail "aics-tlog $what: $(cat "$work/aics.json")"
    echo "tlog-interop: aics-tlog $what: ok"
}
check verify-checkpoint verify-checkpoint --vkey-file "$work/log.vkey" --origin "$origin" \
    --note "$work/checkpoint"
check "verify-checkpoint (from the tiles)" verify-checkpoint --vkey-file "$work/log.vkey" \
    --origin "$origin" --tiles "$tiles"
index="$("$python312" -c 'import json, sys; print(json.load(open(sys.argv[1]))["log_index"])' "$work/att/inclusion-proof.json")"
check "verify-inclusion (entry $index, from the tiles)" verify-inclusion \
    --vkey-file "$work/log.vkey" --origin "$origin" --tiles "$tiles" \
    --checkpoint "$work/checkpoint" --index "$index" --leaf "$work/att/attestation.json" \
    --entry-out "$work/entry"
cmp -s "$work/entry" "$work/att/attestation.json" ||
    fail "the entry bundle's entry $index is not the attestation's bytes"
check "verify-inclusion (entry 0, a full bundle)" verify-inclusion \
    --vkey-file "$work/log.vkey" --origin "$origin" --tiles "$tiles" \
    --checkpoint "$work/checkpoint" --index 0 --entry-out "$work/entry0" \
    --leaf <(curl -fsS "$base/v1/log/entries/0")
check "verify-consistency ($old_size -> $size, from the tiles)" verify-consistency \
    --vkey-file "$work/log.vkey" --origin "$origin" --tiles "$tiles" \
    --old-checkpoint "$work/old-checkpoint" --checkpoint "$work/checkpoint"
# And a changed leaf is refused.
printf 'x' >>"$work/entry"
if "$aics" verify-inclusion --vkey-file "$work/log.vkey" --origin "$origin" --tiles "$tiles" \
    --checkpoint "$work/checkpoint" --index "$index" --leaf "$work/entry" >/dev/null 2>&1; then
    fail "aics-tlog accepted a changed entry"
fi
echo "tlog-interop: aics-tlog refuses a changed entry: ok"

# --- the receipt, offline. --------------------------------------------------------------------
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
printf 'log %s\nquorum none\n' "$(cat "$work/log.vkey")" >"$work/policy.txt"
"$PROCTOR_BIN" verify "$work/att" --policy "$work/policy.txt" ||
    fail "proctor verify --policy refused the receipt"
"$python312" - "$work/att/attestation.tlog-proof" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0x01
open(path, "wb").write(bytes(data))
PY
if "$PROCTOR_BIN" verify "$work/att" --policy "$work/policy.txt" >"$work/tampered.txt" 2>&1; then
    fail "proctor verify --policy accepted a changed receipt"
fi
echo "tlog-interop: a changed receipt is refused: ok ($(grep -m1 FAILED "$work/tampered.txt" || true))"
echo "tlog-interop: all checks passed"
