#!/usr/bin/env bash
# Event throughput, run on demand (scripts/bench.sh runs it last; not part of the tests).
# Builds, in a temp dir, a tracepoint-on-getppid BPF program sending one 64-byte event per
# call through a ring buffer, a hand-written libbpf C consumer (ring_buffer__poll + printf)
# and a trigger calling getppid at a fixed rate for a fixed time; then, RUNS times each,
# runs `ebpf-runner run OBJ --output json > /dev/null` (the runner `cargo ebpf run` is),
# the C consumer, and bpftrace when installed, and prints events received and lost, CPU per
# event (user+sys from /usr/bin/time, startup included, over the events received), max RSS:
# min and median over the runs, and the ratio ours / C.
# Usage, as root: bash scripts/bench-events.sh [RUNS] [RATE_PER_SEC] [SECONDS]
#   (BENCH_RUNNER=PATH benches that runner binary, no build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
rate=${2:-300000}
secs=${3:-4}

if [ -n "${BENCH_RUNNER:-}" ]; then
  RUNNER=$BENCH_RUNNER
else
  cargo build -q --release -p ebpf-runner --bin ebpf-runner
  RUNNER=$PWD/target/release/ebpf-runner
fi
work=$(mktemp -d /tmp/bench-events.XXXXXX)
trap 'rm -rf "$work"' EXIT

cat >"$work/prog.bpf.c" <<'C'
// One 64-byte event per getppid call, through a ring buffer.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event {
	__u32 pid;
	__u32 tgid;
	__u64 seq;
	__u32 cpu;
	__u32 flags;
	char comm[16];
	__u64 a;
	__u64 b;
	__u64 c;
};
struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

__u64 seq;

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	e->pid = (__u32)id;
	e->tgid = id >> 32;
	e->seq = __sync_fetch_and_add(&seq, 1);
	e->cpu = bpf_get_smp_processor_id();
	e->flags = 3;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->a = e->seq * 3;
	e->b = 42;
	e->c = id;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
C

cat >"$work/consumer.c" <<'C'
// The peer: a hand-written libbpf consumer printing each event with printf.
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>

struct event {
	unsigned int pid, tgid;
	unsigned long long seq;
	unsigned int cpu, flags;
	char comm[16];
	unsigned long long a, b, c;
};

static volatile sig_atomic_t stop;
static unsigned long long received;

static void on_signal(int sig) { (void)sig; stop = 1; }

static int on_event(void *ctx, void *data, size_t len)
{
	const struct event *e = data;
	(void)ctx; (void)len;
	received++;
	printf("{\"pid\":%u,\"tgid\":%u,\"seq\":%llu,\"cpu\":%u,\"flags\":%u,\"comm\":\"%s\","
	       "\"a\":%llu,\"b\":%llu,\"c\":%llu}\n",
	       e->pid, e->tgid, e->seq, e->cpu, e->flags, e->comm, e->a, e->b, e->c);
	return 0;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	struct bpf_program *prog;
	if (argc < 2 || !obj || bpf_object__load(obj)) {
		fprintf(stderr, "cannot load %s\n", argv[1]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__attach(prog)) {
			fprintf(stderr, "cannot attach\n");
			return 1;
		}
	}
	struct ring_buffer *rb =
		ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "events"), on_event, NULL, NULL);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "Attached\n");
	while (!stop)
		if (ring_buffer__poll(rb, 100) < 0 && !stop)
			break;
	fflush(stdout);
	fprintf(stderr, "Stopped after %llu event(s)\n", received);
	return 0;
}
C

cat >"$work/trigger.c" <<'C'
// Calls getppid RATE times a second (in 1 ms batches) for SECONDS; prints how many calls.
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long rate = atol(argv[1]), per_ms = rate / 1000;
	long long start = now_ns(), end = start + atoll(argv[2]) * 1000000000LL, calls = 0;
	for (long long tick = start; tick < end; tick += 1000000) {
		for (long i = 0; i < per_ms; i++)
			syscall(SYS_getppid);
		calls += per_ms;
		while (now_ns() < tick + 1000000)
			;
	}
	printf("%lld\n", calls);
	return 0;
}
C

arch=$(uname -m | sed 's/x86_64/x86/; s/aarch64/arm64/')
clang -g -O2 -target bpf -D__TARGET_ARCH_$arch -I/usr/include/$(uname -m)-linux-gnu \
  -c "$work/prog.bpf.c" -o "$work/prog.bpf.o"
cc -O2 -o "$work/consumer" "$work/consumer.c" -lbpf
cc -O2 -o "$work/trigger" "$work/trigger.c"
cat >"$work/prog.bt" <<'BT'
tracepoint:syscalls:sys_enter_getppid { printf("{\"pid\":%d,\"tgid\":%d,\"cpu\":%d,\"comm\":\"%s\"}\n", tid, pid, cpu, comm); }
BT

# One measured run: CONSUMER... > /dev/null under /usr/bin/time; the trigger runs once the
# consumer says "Attached"; SIGINT after. Prints: received lost cpu_seconds max_rss_kb.
measure() {
  local log=$work/run.log times=$work/time.out
  : >"$log"
  /usr/bin/time -o "$times" -f '%U %S %M' "$@" >/dev/null 2>"$log" &
  local pid=$!
  for _ in $(seq 300); do grep -q -e '^Attached' -e '^Attaching' "$log" && break; sleep 0.1; done
  sleep 0.5
  local calls
  calls=$("$work/trigger" "$rate" "$secs")
  sleep 1
  pkill -INT -P "$pid" 2>/dev/null || true
  wait "$pid" || true
  local received
  received=$(grep -oE '[0-9]+ event' "$log" | grep -oE '[0-9]+' | tail -1)
  [ -n "$received" ] || received=$(grep -c '^{' "$work/bt.out" 2>/dev/null || true)
  read -r user sys rss <"$times"
  echo "$received $((calls > received ? calls - received : 0)) $(echo "$user + $sys" | bc -l) $rss"
}

declare -A results
peers=(ours c)
command -v bpftrace >/dev/null && peers+=(bpftrace)
for run in $(seq "$runs"); do
  for peer in "${peers[@]}"; do
    case $peer in
      ours) r=$(measure "$RUNNER" run "$work/prog.bpf.o" --output json) ;;
      c) r=$(measure "$work/consumer" "$work/prog.bpf.o") ;;
      bpftrace) r=$(measure bpftrace -o "$work/bt.out" "$work/prog.bt") ;;
    esac
    echo "run $run $peer: received lost cpu_s rss_kb = $r" >&2
    results[$peer]+="$r"$'\n'
  done
done

for peer in "${peers[@]}"; do printf '%s\n' "${results[$peer]}" >"$work/$peer.txt"; done
python3 - "$work" "$rate" "$secs" "${peers[@]}" <<'PY'
import statistics, sys
work, rate, secs, peers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def rows(peer):
    out = []
    for line in open(f"{work}/{peer}.txt"):
        if line.strip():
            rec, lost, cpu, rss = line.split()
            rec, lost = int(rec), int(lost)
            out.append(dict(received=rec, lost_pct=100 * lost / max(rec + lost, 1),
                            us_per_event=1e6 * float(cpu) / max(rec, 1), rss_mb=int(rss) / 1024))
    return out
data = {p: rows(p) for p in peers}
def stat(p, key, f):
    return f([r[key] for r in data[p]])
print(f"\nEvent throughput: {rate} getppid/s for {secs}s, {len(data[peers[0]])} runs; min / median")
print(f"| consumer | events received | lost % | CPU µs/event | max RSS MB |")
print(f"| --- | --- | --- | --- | --- |")
for p in peers:
    cells = [f"{stat(p, k, min):{fmt}} / {stat(p, k, statistics.median):{fmt}}"
             for k, fmt in [("received", ".0f"), ("lost_pct", ".2f"), ("us_per_event", ".2f"), ("rss_mb", ".1f")]]
    print(f"| {p} | " + " | ".join(cells) + " |")
for p in peers[1:]:
    ratio = stat("ours", "us_per_event", statistics.median) / stat(p, "us_per_event", statistics.median)
    got = stat("ours", "received", statistics.median) / stat(p, "received", statistics.median)
    print(f"ratios, ours / {p} (medians): CPU per event {ratio:.2f}, events received {got:.2f}")
PY
