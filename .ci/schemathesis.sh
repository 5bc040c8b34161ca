#!/usr/bin/env bash
# API conformance: schemathesis (PyPI, pinned below) against a live `proctor serve`.
#
# Starts the service on a free loopback port (port 0; it prints the one it got) with a fresh
# data directory (SQLite) and a generated PROCTOR_ADMIN_TOKEN, waits for /healthz, and seeds it
# with the CLI: a vendor and an evaluator with tokens; a builtin model granted to the evaluator
# and a second one under a manual grant; the arith example eval and dataset; one finished job
# and one waiting for the vendor's approval. Then it runs `st run` against the service's own
# /openapi.json once per role token (evaluator, vendor, admin, in that order) with the default
# checks, real ids offered through schemathesis dictionaries (see the configuration below).
# Reports (JUnit and NDJSON) go to a temporary directory, kept when a run fails; one summary
# line per role, then every distinct failure; exits non-zero when any run fails or tests
# nothing. Needs PROCTOR_BIN (the release `proctor` binary), python3 and curl; about three
# minutes on two cores once the venv exists.
#
# Knobs (environment): ST_MAX_TIME (seconds per role, default 55), ST_MAX_EXAMPLES (per
# operation and phase cycle, default 25), ST_WORKERS (default 1), ST_SEED (default 20240601),
# ST_REPORT_DIR (default: a new temporary directory), ST_ROLES (default
# "evaluator vendor admin").
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PROCTOR_BIN:?set PROCTOR_BIN to the release proctor binary}"
if [ ! -x "$PROCTOR_BIN" ]; then
    echo "schemathesis: PROCTOR_BIN=$PROCTOR_BIN is not an executable" >&2
    exit 1
fi
PROCTOR_BIN="$(cd "$(dirname "$PROCTOR_BIN")" && pwd)/$(basename "$PROCTOR_BIN")"

started=$(date +%s)
ST_VERSION=4.32.5
max_time="${ST_MAX_TIME:-55}"
max_examples="${ST_MAX_EXAMPLES:-25}"
# One worker: schemathesis's workers are threads, and CPython 3.11 before 3.11.8 can raise a
# spurious `SystemError: AST constructor recursion depth mismatch` when two threads compile
# at once (python/cpython#106905); one worker also keeps a seeded run's order reproducible.
st_workers="${ST_WORKERS:-1}"
seed="${ST_SEED:-20240601}"
roles="${ST_ROLES:-evaluator vendor admin}"

# --- schemathesis, in a venv reused across runs while it holds the pinned version. ----------
venv="$HOME/.cache/proctor-schemathesis-venv"
if [ "$("$venv/bin/st" --version 2>/dev/null || true)" != "st, version $ST_VERSION" ]; then
    echo "schemathesis: installing schemathesis==$ST_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
"$venv/bin/st" --version

# --- the service. -----------------------------------------------------------------------------
work="$(mktemp -d)"
reports="${ST_REPORT_DIR:-$work/reports}"
mkdir -p "$reports"
server_pid=""
keep_reports=0
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$keep_reports" = 1 ] && [ -z "${ST_REPORT_DIR:-}" ]; then
        # Keep the reports (and the server's log) for whoever reads the failure; drop the rest.
        rm -rf "$work/data" "$work/ex"
        echo "schemathesis: reports and the server log kept in $work" >&2
    elif [ "$keep_reports" = 1 ]; then
        cp "$work/serve.log" "$reports/serve.log" 2>/dev/null || true
        rm -rf "$work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# Whatever the caller's environment says about a database, data directory or credential key,
# this service gets fresh ones.
unset PROCTOR_DATABASE_URL PROCTOR_DATA_DIR PROCTOR_LISTEN PROCTOR_CREDENTIAL_KEY \
    PROCTOR_SERVER PROCTOR_TOKEN
admin_token="pct_$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
# Port 0: the kernel picks a free port and the service prints the one it got, so no other
# process can take it between choosing and binding. The run sends one client's thousands of
# requests: the per-account upload quota and the per-client connection limit are raised so
# that every operation is checked, not the 429 of an hour's quota.
PROCTOR_ADMIN_TOKEN="$admin_token" "$PROCTOR_BIN" serve \
    --data-dir "$work/data" --listen 127.0.0.1:0 \
    --quota-uploads-per-hour 1000000 --max-client-connections 512 >"$work/serve.log" 2>&1 &
server_pid=$!

base=""
for _ in $(seq 1 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "schemathesis: proctor serve exited during start-up:" >&2
        cat "$work/serve.log" >&2
        exit 1
    fi
    if [ -z "$base" ]; then
        base="$(sed -n 's|^proctor serve: listening on \(http://[0-9.:]*\).*|\1|p' "$work/serve.log" | head -n1)"
    fi
    if [ -n "$base" ] && curl -fsS -o /dev/null --max-time 2 "$base/healthz"; then
        break
    fi
    sleep 0.1
done
if [ -z "$base" ] || ! curl -fsS -o /dev/null --max-time 2 "$base/healthz"; then
    echo "schemathesis: proctor serve did not answer /healthz within 30 s:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi
echo "schemathesis: proctor serve (pid $server_pid) at $base"
export PROCTOR_SERVER="$base"

# --- seeding, with the CLI. -------------------------------------------------------------------
as() { # as TOKEN proctor-args...: one CLI command as that account; its stderr to seed.log
    local token="$1"
    shift
    echo "+ proctor $*" >>"$work/seed.log"
    if ! PROCTOR_TOKEN="$token" "$PROCTOR_BIN" "$@" 2>>"$work/seed.log"; then
        echo "schemathesis: seeding failed at \`proctor $*\`:" >&2
        cat "$work/seed.log" >&2
        return 1
    fi
}
json_field() { # json_field PATH.TO.FIELD < JSON
    python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print(v)' "$1"
}

vendor_id="$(as "$admin_token" account create st-vendor --role vendor --no-token --json | json_field account.id)"
vendor_token="$(as "$admin_token" account token create "$vendor_id" --name schemathesis)"
evaluator_id="$(as "$admin_token" account create st-evaluator --role evaluator --tier academic --no-token --json | json_field account.id)"
evaluator_token="$(as "$admin_token" account token create "$evaluator_id" --name schemathesis)"
# The one token that DELETE /v1/tokens/{id} may revoke (pinned below): drawing ids from the
# token lists, the admin's run would otherwise revoke its own token and be answered 401 after.
revocable_token_id="$(as "$admin_token" account token create "$evaluator_id" --name revocable --json | json_field id)"

printf 'adapter = "builtin"\nmodel = "arith"\n' >"$work/arith.toml"
printf 'adapter = "builtin"\nmodel = "echo"\n' >"$work/echo.toml"
model_id="$(as "$vendor_token" model register --name arith --version 1 --config "$work/arith.toml")"
grant_id="$(as "$vendor_token" grant create --model "$model_id" --account "$evaluator_id" \
    --policy standard --queries-total 100000)"
# A second model under a manual grant: its job waits for approval, so the vendor's approval
# routes have something to list.
manual_model_id="$(as "$vendor_token" model register --name echo --version 1 --config "$work/echo.toml")"
manual_grant_id="$(as "$vendor_token" grant create --model "$manual_model_id" --account "$evaluator_id" \
    --policy standard --approval manual)"

as "$evaluator_token" examples --out "$work/ex" >/dev/null
eval_sha="$(as "$evaluator_token" eval upload "$work/ex/arith.wasm")"
dataset_sha="$(as "$evaluator_token" dataset upload "$work/ex/arith.jsonl")"
job_id="$(as "$evaluator_token" job submit --eval "$eval_sha" --dataset "$dataset_sha" \
    --model "$model_id" --policy standard)"
job_status=""
for _ in $(seq 1 600); do
    job_status="$(as "$evaluator_token" job status "$job_id" | sed -n 's/^status *//p')"
    case "$job_status" in queued | running) sleep 0.2 ;; *) break ;; esac
done
if [ "$job_status" != succeeded ]; then
    echo "schemathesis: the seeded job $job_id ended ${job_status:-nowhere} (expected succeeded)" >&2
    as "$evaluator_token" job status "$job_id" >&2 || true
    exit 1
fi
pending_job_id="$(as "$evaluator_token" job submit --eval "$eval_sha" --dataset "$dataset_sha" \
    --model "$manual_model_id" --policy standard)"
echo "schemathesis: seeded vendor $vendor_id (model $model_id, grant $grant_id; manual: model $manual_model_id, grant $manual_grant_id), evaluator $evaluator_id (eval ${eval_sha:0:12}, dataset ${dataset_sha:0:12}, job $job_id succeeded, job $pending_job_id awaiting approval)"

# --- schemathesis's configuration. ------------------------------------------------------------
# The seeded ids, as dictionaries that half the generated values of these parameters are drawn
# from, so get-by-id routes reach real objects (and their answers' schemas are checked) and a
# job submission can name a real eval, dataset and model, while the other half stays random.
SEEDED="$vendor_id $evaluator_id $model_id $manual_model_id $grant_id $manual_grant_id $job_id $pending_job_id $eval_sha $dataset_sha" \
    EVAL_SHA="$eval_sha" DATASET_SHA="$dataset_sha" MODELS="$model_id $manual_model_id" \
    EVALUATOR_ID="$evaluator_id" REVOCABLE_TOKEN_ID="$revocable_token_id" \
    python3 - "$work/schemathesis.toml" <<'PY'
import json, os, sys

env = os.environ
ids = {
    "any": env["SEEDED"].split() + [0, 1],  # 0, 1: log indexes (integers, as the schema has them)
    "evals": [env["EVAL_SHA"]],
    "datasets": [env["DATASET_SHA"]],
    "models": env["MODELS"].split(),
    "accounts": [env["EVALUATOR_ID"]],
}
bindings = {
    "path.id": "any", "path.index": "any",
    "body.eval": "evals", "body.dataset": "datasets", "body.model": "models",
    "body.grantee.account": "accounts",
}
with open(sys.argv[1], "w") as f:
    for name, values in ids.items():
        f.write(f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n\n")
    f.write("[parameters]\n")
    for key, name in bindings.items():
        f.write(f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}\n')
    # Constraints no JSON Schema can state, whose 422 is the service's documented answer and not
    # a valid request rejected: a component's and a dataset's bytes are a binary string, which
    # no schema narrows to "a WebAssembly component" or "UTF-8 JSON lines"; a consistency
    # proof's `old` may not exceed its `new`, a relation between two query parameters. And two
    # rules between fields, which the description states in words (OpenAPI could say them with
    # a oneOf per role or adapter; not done yet): an account's `tier` is required exactly when
    # its role is `evaluator`, and a model's `base_url` exactly when its adapter speaks HTTP.
    # And rules against the service's state: a job's `policy` must name its grant's, and a
    # grant's `expires_at` must be in the future by the service's clock, and only a suspended
    # grant can be reinstated. And a grant's alert settings: `webhook_secret` only with a
    # `webhook` (a rule between fields again).
    for op in ("POST /v1/evals", "POST /v1/datasets", "GET /v1/log/proof/consistency",
               "POST /v1/accounts", "POST /v1/models", "POST /v1/jobs", "POST /v1/grants",
               "POST /v1/grants/{id}/reinstate", "PUT /v1/grants/{id}/alerts"):
        f.write(f'\n[[operations]]\ninclude-name = "{op}"\n')
        f.write('checks.positive_data_acceptance.expected-statuses = '
                '["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]\n')
    f.write('\n[[operations]]\ninclude-name = "DELETE /v1/tokens/{id}"\n')
    f.write(f'parameters = {{ "path.id" = "{env["REVOCABLE_TOKEN_ID"]}" }}\n')
PY
# Reads a run's NDJSON events: one summary line on stdout, and every distinct failure (operation,
# check, code, title, and one response's status and body) and error in FAILURES.
cat >"$work/summarize.py" <<'PY'
import base64, glob, json, sys

report_dir, role, rc, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
tested, failures, errors = set(), {}, {}
for path in glob.glob(f"{report_dir}/*.ndjson"):
    for line in open(path, encoding="utf-8"):
        event = json.loads(line)
        kind, value = next(iter(event.items()))
        if kind == "NonFatalError":
            first = value["value"].get("message", "").splitlines()[:1] or [""]
            key = (value.get("label") or "-", value["value"].get("type", "error"), first[0])
            errors[key] = errors.get(key, 0) + 1
        if kind != "ScenarioFinished":
            continue
        recorder = value["recorder"]
        if value["status"] in ("success", "failure", "error") and value["phase"] != "stateful":
            tested.add(recorder["label"])
        for case_id, checks in recorder.get("checks", {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                failure = check.get("failure_info", {}).get("failure", {})
                key = (recorder["label"], check["name"], failure.get("code", "?"), failure.get("title", ""))
                if key in failures:
                    failures[key][0] += 1
                    continue
                example = ""
                interaction = recorder.get("interactions", {}).get(case_id)
                if interaction and interaction.get("response"):
                    response = interaction["response"]
                    body = response.get("content") or {}
                    text = base64.b64decode(body["$base64"]).decode("utf-8", "replace") if "$base64" in body else str(body)
                    request = interaction["request"]
                    example = f'{request["method"]} /{request["uri"].split("/", 3)[-1]} -> {response["status_code"]} {text[:160]}'
                failures[key] = [1, example]
with open(out, "w", encoding="utf-8") as f:
    for (op, check, code, title), (n, example) in sorted(failures.items()):
        f.write(f"{role}\t{op}\t{check}\t{code} {title}\tx{n}\t{example}\n")
    for (op, kind, message), n in sorted(errors.items()):
        f.write(f"{role}\t{op}\terror\t{kind}: {message}\tx{n}\t\n")
status = "passed" if rc == 0 and tested else f"FAILED (st exit {rc})" if rc else "FAILED (nothing tested)"
ops = sorted({op for op, *_ in failures} | {op for op, *_ in errors})
print(f"{role}: {status}; {len(tested)} operations tested, {len(failures)} distinct failures and {len(errors)} errors in {len(ops)} operations")
sys.exit(0 if rc == 0 and tested else 1)
PY

# --- schemathesis, once per role. -------------------------------------------------------------
# The evaluator runs first: the vendor's run revokes the seeded grants (their ids are in the
# dictionary), which would leave the evaluator's job routes with less to reach. The admin's
# run adds accounts and tokens and revokes only the revocable one.
declare -A token_of=([admin]="$admin_token" [vendor]="$vendor_token" [evaluator]="$evaluator_token")
failed=()
summaries=()
cd "$work" # whatever st writes beside its reports lands here, not in the repository
for role in $roles; do
    echo
    echo "schemathesis: ==== as $role ===="
    rm -rf "${reports:?}/$role"
    mkdir -p "$reports/$role"
    # The default checks (every check but max_response_time, which runs only with a limit),
    # less object_level_authorization: it replays one identity's reads as the others listed
    # as peers under [auth.wfc], so with one token per run it has nothing to compare
    # (schemathesis would skip it silently; excluding it says so here).
    st=("$venv/bin/st" --config-file "$work/schemathesis.toml" run "$base/openapi.json"
        -H "Authorization: Bearer ${token_of[$role]}"
        --exclude-checks object_level_authorization
        --max-examples "$max_examples" --max-time "$max_time" --workers "$st_workers"
        --seed "$seed" --generation-database none --request-timeout 10
        --report junit,ndjson --report-dir "$reports/$role"
        --no-color)
    printf 'schemathesis: %s\n' "${st[*]/${token_of[$role]}/\$${role^^}_TOKEN}"
    if "${st[@]}"; then rc=0; else rc=$?; fi
    if line="$(python3 "$work/summarize.py" "$reports/$role" "$role" "$rc" "$reports/$role/failures.txt")"; then :; fi
    summaries+=("$line")
    case "$line" in "$role: passed;"*) ;; *) failed+=("$role") ;; esac
done
cd - >/dev/null

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "schemathesis: proctor serve died during the runs; its log:" >&2
    tail -n 50 "$work/serve.log" >&2
    failed+=("server")
fi

echo
echo "schemathesis: summary ($(($(date +%s) - started)) s):"
printf '  %s\n' "${summaries[@]}"
echo "  reports: $reports/{$(echo "$roles" | tr ' ' ',')}/"
if cat "$reports"/*/failures.txt 2>/dev/null | grep -q .; then
    echo "schemathesis: every distinct failure (role, operation, check, code, count, one example):"
    cat "$reports"/*/failures.txt | sed 's/^/  /'
fi
if [ "${#failed[@]}" -gt 0 ]; then
    keep_reports=1
    echo "schemathesis: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "schemathesis: every run passed"
