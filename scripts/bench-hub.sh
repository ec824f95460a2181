#!/usr/bin/env bash
# The hub under load, run on demand (scripts/bench.sh runs it; not part of the tests).
#   search:    10 concurrent keep-alive clients (wrk) on /api/v1/search with realistic
#              queries over 10 000 seeded packages, on SQLite and then on Postgres: p50,
#              p99 and req/s, min / median over RUNS runs.
#   manifests: GET of the same package's manifest (by tag, by digest, with a token) from
#              the hub and from docker-registry, same clients: req/s and the ratio.
# Seeding: rows are written straight into the database, shaped like what a push of a real
# package writes (owners, names, descriptions, keywords, programs with their sections,
# versions, stars, downloads, kernel matrices, signatures); the hub then fills the search
# columns itself at startup (`Db::refresh_stale_search`, the code a push runs). On Postgres
# the script then runs VACUUM ANALYZE, as autovacuum would shortly after such a load.
# Postgres is a throw-away cluster on 127.0.0.1 (initdb as the `postgres` user, like the
# e2e tests' `Postgres::start`); docker-registry runs with our config (scripts/sandbox.sh).
# Usage, as root: bash scripts/bench-hub.sh [RUNS]
#   BENCH_BIN=PATH benches that cargo-ebpf binary (no build); BENCH_HUB_SECONDS (default 4)
#   per wrk run; BENCH_HUB_PACKAGES (default 10000); BENCH_HUB_BACKENDS="sqlite postgres".
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${BENCH_HUB_SECONDS:-4}
packages=${BENCH_HUB_PACKAGES:-10000}
backends=${BENCH_HUB_BACKENDS:-sqlite postgres}

command -v wrk >/dev/null || {
  echo "error: wrk is missing; install-deps.sh installs it (it is in scripts/test-tools.txt)" >&2
  exit 1
}
pg_bin=""
for dir in /usr/lib/postgresql/*/bin; do
  [ -x "$dir/initdb" ] && pg_bin=$dir
done
[ -n "$pg_bin" ] || {
  echo "error: PostgreSQL's server is missing; install-deps.sh installs it (postgresql)" >&2
  exit 1
}
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build -q --release -p cargo-ebpf
  BIN=$PWD/target/release/cargo-ebpf
fi

reg_port=${BENCH_REGISTRY_PORT:-5066}
hub_port=${BENCH_HUB_PORT:-5067}
pg_port=${BENCH_PG_PORT:-5068}
# shellcheck source=sandbox.sh
source scripts/sandbox.sh "$reg_port" bench-hub
hub=127.0.0.1:$hub_port
hub_pid=""
pg_dir=""

stop_all() {
  [ -z "$hub_pid" ] || kill "$hub_pid" 2>/dev/null || true
  [ -z "$pg_dir" ] || runuser -u postgres -- "$pg_bin/pg_ctl" stop -m immediate -D "$pg_dir/data" >/dev/null 2>&1 || true
  cleanup
  rm -rf "$work" "$pg_dir"
}
trap stop_all EXIT

# ------------------------------------------------------------------------------- seeding

# SQL inserting $packages packages (one or two versions each), stars, kernel matrices and
# verified signatures; the same text loads into SQLite and Postgres. Deterministic: no set
# is iterated (string hashes, so set order, change from run to run).
write_seed() { # OUT
  python3 - "$packages" >"$1" <<'PY'
import hashlib, json, random, sys
n = int(sys.argv[1]); rnd = random.Random(15)
first = "al bo ca da el fa ga ha io ja ka li mo nu ol pe qu ra si to ur vi wo xe yu zo".split()
owners = sorted({a + b + rnd.choice(["", "x", "dev", "lab", "42", "io"]) for a in first for b in first})[:900]
subj = ("tcp udp bio exec open kill sig oom sched runq dns http tls ssl file vfs ext4 xfs net sock "
        "cpu mem page irq softirq syscall mount cap bind connect accept retrans drop lock mutex "
        "futex tty shell bash python java node cgroup container pid fd inode dcache slab").split()
kind = "snoop top lat trace stat count dist slower life watch drop filter probe mon leak".split()
what = {"snoop": "Trace {s} events as they happen", "top": "Top {s} users by volume, refreshed",
        "lat": "Summarize {s} latency as a histogram", "trace": "Trace {s} calls with arguments",
        "stat": "Count {s} statistics per second", "count": "Count {s} calls by process",
        "dist": "Show the distribution of {s} sizes", "slower": "Show {s} operations slower than a threshold",
        "life": "Show the lifespan of {s} objects", "watch": "Watch {s} changes per container",
        "drop": "Drop unwanted {s} packets early", "filter": "Filter {s} traffic by rule",
        "probe": "Probe {s} functions with kprobes", "mon": "Monitor {s} health in production",
        "leak": "Find {s} leaks with stack traces"}
words = "network files process security latency performance tracing observability xdp dns containers kubernetes storage scheduler memory".split()
licenses = ["GPL-2.0", "GPL", "Dual BSD/GPL", "MIT", "Apache-2.0"]
formats = ["cargo-ebpf"] * 12 + ["eunomia"] * 3 + ["gadget", "bumblebee", "bpfman"]
def programs(s, k):
    p = []
    for i in range(rnd.choice([1, 1, 2, 3])):
        c = rnd.random()
        if k in ("drop", "filter") or c < 0.1:
            sec, t = rnd.choice([("xdp", "xdp"), ("tc", "sched_cls")])
        elif c < 0.5:
            sec, t = "tracepoint/syscalls/sys_enter_%s" % rnd.choice(["openat", "execve", "connect", "kill", "read", "write"]), "tracepoint"
        elif c < 0.75:
            sec, t = rnd.choice(["kprobe", "kretprobe"]) + "/%s_%s" % (s, rnd.choice(["init", "exit", "send", "recv"])), "kprobe"
        elif c < 0.9:
            sec, t = "fentry/%s_%s" % (s, rnd.choice(["open", "close"])), "tracing"
        else:
            sec, t = "uprobe/libc:%s" % rnd.choice(["malloc", "free", "getaddrinfo"]), "kprobe"
        p.append({"name": "handle_%s_%d" % (s, i), "section": sec, "type": t})
    return p
def q(v):
    return "'" + str(v).replace("'", "''") + "'"
def rows(table, cols, values):
    for i in range(0, len(values), 500):
        chunk = values[i:i + 500]
        print("INSERT INTO %s (%s) VALUES\n%s;" % (table, ", ".join(cols), ",\n".join("(" + ", ".join(v) + ")" for v in chunk)))
now = 1764547200
pkgs, vers, stars, mats, sigs, seen = [], [], [], [], [], set()
while len(pkgs) < n:
    o = rnd.choice(owners); s = rnd.choice(subj); k = rnd.choice(kind)
    name = s + k if rnd.random() < 0.7 else "%s-%s%s" % (s, k, rnd.choice(["", "2", "-ng", "-rs"]))
    repo = o + "/" + name
    if repo in seen: continue
    seen.add(repo)
    latest = "0.%d.%d" % (rnd.randint(1, 9), rnd.randint(0, 9))
    updated = now - rnd.randint(0, 365 * 86400)
    downloads = int(rnd.paretovariate(1.2) * 10)
    kw = rnd.sample(words, rnd.randint(0, 3))
    desc = what[k].format(s=s) + rnd.choice(["", ".", " (CO-RE, BTF)", " for Kubernetes nodes", " with JSON output"])
    pkgs.append([q(repo), q(o), q(name), q(desc), q(json.dumps(kw)), q(rnd.choice(licenses)), q(json.dumps([o])),
                 q("https://example.org/%s" % repo), q(latest), str(updated - 86400 * 30), str(updated), str(downloads)])
    arch = rnd.choice(["x86_64", "x86_64", "x86_64, aarch64", "aarch64"])
    fmt = rnd.choice(formats)
    for v in (sorted({latest, "0.0.1"}) if rnd.random() < 0.5 else [latest]):
        d = "sha256:" + hashlib.sha256((repo + v).encode()).hexdigest()
        vers.append([q(repo), q(v), q(d), str(rnd.randint(4000, 400000)), q(""), str(updated), q(arch),
                     q("cargo-ebpf"), q(name + ".bpf.o"), q("sha256:" + hashlib.sha256(d.encode()).hexdigest()),
                     q(json.dumps(programs(s, k))), str(downloads // 2), q(fmt), q("")])
        if v != latest: continue
        if rnd.random() < 0.3:
            series = rnd.choice([4019, 5004, 5010, 5015, 6001, 6006])
            mats.append([q(repo), q(d), q("fp"), q(o), q("{}"), str(series), str(updated)])
        if rnd.random() < 0.2:
            sigs.append([q(repo), q(d), q("fp-" + o), q(o), q("ci"), str(updated)])
    for u in rnd.sample(owners, min(len(owners), int(rnd.paretovariate(1.5)) - 1)):
        stars.append([q(u), q(repo), str(updated)])
rows("packages", ["repo", "owner", "name", "description", "keywords", "license", "authors", "source",
                  "latest_version", "created_at", "updated_at", "downloads"], pkgs)
rows("versions", ["repo", "version", "digest", "size", "created", "pushed_at", "arch", "runtime", "object",
                  "layer_digest", "programs", "downloads", "format", "meta"], vers)
rows("stars", ["user_name", "repo", "created_at"], stars)
rows("kernel_matrices", ["repo", "subject_digest", "fingerprint", "key_owner", "matrix", "loads_from", "verified_at"], mats)
rows("verified_signatures", ["repo", "subject_digest", "fingerprint", "key_owner", "key_label", "verified_at"], sigs)
PY
}

# ------------------------------------------------------------------------ hub and Postgres

wait_http() { # URL
  for _ in $(seq 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "error: $1 does not answer" >&2
  return 1
}

start_hub() { # DATA [DATABASE_URL]
  local db=()
  [ -z "${2:-}" ] || db=(--database "$2")
  "$BIN" hub serve --addr "$hub" --data "$1" "${db[@]}" 2>>"$1.log" &
  hub_pid=$!
  wait_http "http://$hub/v2/"
}

stop_hub() {
  kill "$hub_pid"
  wait "$hub_pid" 2>/dev/null || true
  hub_pid=""
}

start_postgres() {
  pg_dir=$(mktemp -d /tmp/bench-hub-pg.XXXXXX)
  chown postgres:postgres "$pg_dir"
  runuser -u postgres -- "$pg_bin/initdb" -A trust -U postgres -E UTF8 -D "$pg_dir/data" >/dev/null
  runuser -u postgres -- "$pg_bin/pg_ctl" start -w -t 30 -D "$pg_dir/data" -l "$pg_dir/pg.log" \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $pg_dir -c fsync=off" >/dev/null
  runuser -u postgres -- "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres hub
}

psql_run() { # FILE
  "$pg_bin/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d hub -f "$1" >/dev/null
}

# A hub on BACKEND with the seed loaded: first start migrates, the seed goes in while it
# is stopped, the second start fills the search columns (timed).
seeded_hub() { # BACKEND
  local data=$work/hub-$1 url="" db=()
  if [ "$1" = postgres ]; then
    start_postgres
    url=postgres://postgres@127.0.0.1:$pg_port/hub
    db=(--database "$url")
  fi
  start_hub "$data" "$url"
  stop_hub
  if [ "$1" = postgres ]; then
    psql_run "$work/seed.sql"
  else
    python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(open(sys.argv[2]).read()); c.commit()' \
      "$data/hub.db" "$work/seed.sql"
  fi
  local t0=$SECONDS
  start_hub "$data" "$url"
  echo "$1: $packages packages seeded; the hub indexed them at startup in $((SECONDS - t0)) s"
  if [ "$1" = postgres ]; then
    # What autovacuum does a minute after a bulk load: planner statistics, no dead rows.
    echo "VACUUM ANALYZE;" >"$work/analyze.sql"
    psql_run "$work/analyze.sql"
  fi
  printf 'bench-password' | "$BIN" hub user add bench --data "$data" "${db[@]}" --password-stdin >/dev/null 2>&1
  token=$("$BIN" hub token create bench --data "$data" "${db[@]}" 2>/dev/null)
  "$BIN" login "$hub" -u bench --password-stdin <<<"$token" >/dev/null 2>&1
  "$BIN" push "$hub/bench/bench:0.1.0" --manifest-path "$work/bench" >/dev/null 2>&1
}

# ------------------------------------------------------------------------------ measuring

# One wrk run: "P50_MS P99_MS REQ_PER_S" (fails on any non-2xx answer or socket error).
measure() { # URL [HEADER...]
  local url=$1 out args=()
  shift
  for h in "$@"; do args+=(-H "$h"); done
  out=$(wrk -t2 -c10 -d"${secs}s" --timeout 10s --latency "${args[@]}" "$url")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    echo "error: failed requests from $url:" >&2
    echo "$out" >&2
    return 1
  fi
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; return v * 1000 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
    END { printf "%.2f %.2f %.0f\n", p50, p99, rps }' <<<"$out"
}

# min / median of column COL of the lines on stdin.
min_median() { # COL
  sort -g -k"$1","$1" | awk -v c="$1" '{ v[NR] = $c } END { printf "%s / %s", v[1], v[int((NR + 1) / 2)] }'
}

# Runs URL $runs times; prints "LABEL  p50 min/med  p99 min/med  req/s min/med" and
# leaves the median req/s in $median_rps.
bench_url() { # LABEL URL [HEADER...]
  local label=$1 file
  file=$(mktemp "$work/runs.XXXXXX")
  shift
  for _ in $(seq "$runs"); do measure "$@" >>"$file"; done
  median_rps=$(awk '{ print $3 }' "$file" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  printf '  %-34s p50 %-14s p99 %-14s req/s %s\n' "$label" \
    "$(min_median 1 <"$file") ms" "$(min_median 2 <"$file") ms" "$(min_median 3 <"$file")"
}

# The package each backend's hub and docker-registry serve for the manifest GETs.
"$BIN" new bench --path "$work/bench" >/dev/null 2>&1
"$BIN" push "127.0.0.1:$reg_port/bench/bench:0.1.0" --manifest-path "$work/bench" >/dev/null 2>&1
write_seed "$work/seed.sql"
accept='Accept: application/vnd.oci.image.manifest.v1+json'
reg=http://127.0.0.1:$reg_port/v2/bench/bench/manifests
digest=$(curl -fsS -o /dev/null -D - -H "$accept" "$reg/0.1.0" | tr -d '\r' |
  awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }')

echo "wrk -t2 -c10 -d${secs}s, $runs runs each: min / median"
echo "docker-registry manifest GETs:"
bench_url "by tag" "$reg/0.1.0" "$accept"
reg_tag=$median_rps
bench_url "by digest" "$reg/$digest" "$accept"
reg_digest=$median_rps

for backend in $backends; do
  echo
  seeded_hub "$backend"
  # An owner with several packages, for the owner filter (`q=OWNER/`).
  owner=$(curl -fsS "http://$hub/api/v1/search?q=snoop&sort=downloads&per_page=1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["packages"][0]["owner"])')
  echo "search ($backend, $packages packages):"
  for query in "q=trace" "q=trace&sort=downloads" "q=tcp&sort=stars" "q=$owner/" \
    "kernel=6.1&sort=newest" "q=lat&arch=aarch64&kernel=5.10" "q=snoop+container&sort=stars" ""; do
    bench_url "${query:-(all packages)}" "http://$hub/api/v1/search?$query"
  done
  echo "hub manifest GETs ($backend):"
  m=http://$hub/v2/bench/bench/manifests
  bench_url "by tag, anonymous" "$m/0.1.0" "$accept"
  printf '  %-34s %s\n' "ratio hub / docker-registry" "$(echo "scale=2; $median_rps / $reg_tag" | bc)"
  bench_url "by digest, anonymous" "$m/$digest" "$accept"
  printf '  %-34s %s\n' "ratio hub / docker-registry" "$(echo "scale=2; $median_rps / $reg_digest" | bc)"
  bench_url "by tag, token" "$m/0.1.0" "$accept" "Authorization: Basic $(printf 'bench:%s' "$token" | base64 -w0)"
  printf '  %-34s %s\n' "ratio hub / docker-registry" "$(echo "scale=2; $median_rps / $reg_tag" | bc)"
  stop_hub
done
