// A small BPF object with BTF (a ring buffer, an event struct, a param), compiled by
// scripts/fuzz.sh as the seed of the `object` target. No headers, so only clang is needed.
#define SEC(n) __attribute__((section(n), used))
struct event {
	int pid;
	char comm[16];
	unsigned long long ts;
	union { int a; short b[2]; } u;
};
struct {
	int (*type)[27];
	int (*max_entries)[4096];
} events SEC(".maps");
struct event *unused_event __attribute__((unused));
volatile const int targ_pid = 0;
SEC("tracepoint/syscalls/sys_enter_openat")
int handle(void *ctx)
{
	return targ_pid;
}
char LICENSE[] SEC("license") = "GPL";
