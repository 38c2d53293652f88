// bee: on-CPU stack sampling, compiled by bcc at run time.
//
// Every cpu-clock sample counts one (pid, tid, cpu, exec generation, user stack,
// kernel stack, thread name) key in the kernel. Counts and stacks are double-buffered:
// user space flips `active`, waits for in-flight programs to finish, then drains and
// clears the idle pair, so no sample is lost or counted twice and the maps never fill
// up during long runs. Only uapi types and tracepoint format fields are used, never
// kernel-internal struct layouts, so the program builds against generic headers.
//
// Options come as -D flags (see bee_record/sampler.py), never by editing this text:
//   BEE_COUNTS_SIZE, BEE_STACK_SIZE, BEE_PROCS_SIZE, BEE_TARGETS_SIZE
//   BEE_FILTER_PIDS   only count processes in `targets` (and their children)
//   BEE_USER_STACKS / BEE_KERNEL_STACKS   which stacks to collect (both by default)
//   BEE_INCLUDE_IDLE  also count the idle task (pid 0)

#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>
#include <linux/sched.h>

#ifndef BEE_COUNTS_SIZE
#define BEE_COUNTS_SIZE 40960
#endif
#ifndef BEE_STACK_SIZE
#define BEE_STACK_SIZE 16384
#endif
#ifndef BEE_PROCS_SIZE
#define BEE_PROCS_SIZE 65536
#endif
#ifndef BEE_TARGETS_SIZE
#define BEE_TARGETS_SIZE 65536
#endif

#define BEE_EFAULT 14

// Indices of the per-CPU lost-data counters, mirrored in bee_record/sampler.py.
#define LOST_USER_STACK 0
#define LOST_KERNEL_STACK 1
#define LOST_COUNTS_FULL 2
#define LOST_PROCS_FULL 3
#define LOST_SLOTS 4

struct bee_key {
    u32 pid;
    u32 tid;
    u32 cpu;
    u32 gen;
    s32 user_stack;
    s32 kernel_stack;
    char comm[TASK_COMM_LEN];
};

struct bee_proc {
    u32 gen;
    u32 announced;
};

struct bee_announce {
    u32 pid;
    u32 gen;
};

BPF_HASH(counts0, struct bee_key, u64, BEE_COUNTS_SIZE);
BPF_HASH(counts1, struct bee_key, u64, BEE_COUNTS_SIZE);
BPF_STACK_TRACE(stacks0, BEE_STACK_SIZE);
BPF_STACK_TRACE(stacks1, BEE_STACK_SIZE);
BPF_ARRAY(active, u32, 1);
BPF_HASH(procs, u32, struct bee_proc, BEE_PROCS_SIZE);
BPF_HASH(targets, u32, u8, BEE_TARGETS_SIZE);
BPF_PERCPU_ARRAY(lost, u64, LOST_SLOTS);
BPF_PERF_OUTPUT(announce);

static __always_inline void bee_lost(int slot)
{
    u64 *v = lost.lookup(&slot);
    if (v)
        (*v)++;
}

// Add `value` to countsN[*key], counting a loss when the map is full. One function
// per buffer: bcc rewrites map accesses by name and cannot take a map through a pointer.
static __always_inline void bee_add0(struct bee_key *key, u64 value)
{
    u64 *v = counts0.lookup(key);
    if (v) {
        __sync_fetch_and_add(v, value);
        return;
    }
    if (counts0.insert(key, &value) != 0) {
        v = counts0.lookup(key);
        if (v)
            __sync_fetch_and_add(v, value);
        else
            bee_lost(LOST_COUNTS_FULL);
    }
}

static __always_inline void bee_add1(struct bee_key *key, u64 value)
{
    u64 *v = counts1.lookup(key);
    if (v) {
        __sync_fetch_and_add(v, value);
        return;
    }
    if (counts1.insert(key, &value) != 0) {
        v = counts1.lookup(key);
        if (v)
            __sync_fetch_and_add(v, value);
        else
            bee_lost(LOST_COUNTS_FULL);
    }
}

// Tell user space about a process generation the first time it is sampled, so its
// maps and build-ids are captured while it still exists.
static __always_inline u32 bee_generation(void *ctx, u32 pid)
{
    struct bee_proc *p = procs.lookup(&pid);
    if (!p) {
        struct bee_proc fresh = {};
        if (procs.insert(&pid, &fresh) != 0) {
            bee_lost(LOST_PROCS_FULL);
            return 0;
        }
        p = procs.lookup(&pid);
        if (!p)
            return 0;
    }
    if (!p->announced) {
        p->announced = 1;
        struct bee_announce a = {.pid = pid, .gen = p->gen};
        announce.perf_submit(ctx, &a, sizeof(a));
    }
    return p->gen;
}

static __always_inline int bee_sample(void *ctx, u64 weight)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 pid = id >> 32;
    u32 tid = (u32)id;
#ifndef BEE_INCLUDE_IDLE
    if (tid == 0)
        return 0;
#endif
#ifdef BEE_FILTER_PIDS
    if (!targets.lookup(&pid))
        return 0;
#endif
    struct bee_key key = {};
    key.pid = pid;
    key.tid = tid;
    key.cpu = bpf_get_smp_processor_id();
    key.gen = pid ? bee_generation(ctx, pid) : 0;
    bpf_get_current_comm(&key.comm, sizeof(key.comm));

    u32 zero = 0;
    u32 *which = active.lookup(&zero);
    u32 buf = which ? *which : 0;

    key.user_stack = -1;
    key.kernel_stack = -1;
    if (buf == 0) {
#ifdef BEE_USER_STACKS
        key.user_stack = stacks0.get_stackid(ctx, BPF_F_USER_STACK);
#endif
#ifdef BEE_KERNEL_STACKS
        key.kernel_stack = stacks0.get_stackid(ctx, 0);
#endif
    } else {
#ifdef BEE_USER_STACKS
        key.user_stack = stacks1.get_stackid(ctx, BPF_F_USER_STACK);
#endif
#ifdef BEE_KERNEL_STACKS
        key.kernel_stack = stacks1.get_stackid(ctx, 0);
#endif
    }
    // A kernel thread has no user stack (-EFAULT): that is not a loss.
    if (key.user_stack == -BEE_EFAULT)
        key.user_stack = -1;
    else if (key.user_stack < -1) {
        bee_lost(LOST_USER_STACK);
        key.user_stack = -2;
    }
    if (key.kernel_stack == -BEE_EFAULT)
        key.kernel_stack = -1;
    else if (key.kernel_stack < -1) {
        bee_lost(LOST_KERNEL_STACK);
        key.kernel_stack = -2;
    }
    if (buf == 0)
        bee_add0(&key, weight);
    else
        bee_add1(&key, weight);
    return 0;
}

int bee_on_cpu(struct bpf_perf_event_data *ctx)
{
    return bee_sample(ctx, 1);
}

// A process that execs gets a new generation: its next sample announces it again so
// user space captures the new comm and maps.
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    struct bee_proc *p = procs.lookup(&pid);
    if (p) {
        p->gen++;
        p->announced = 0;
    }
    return 0;
}

#ifdef BEE_FILTER_PIDS
// Children of recorded processes are recorded too (as perf does by default).
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    if (targets.lookup(&parent)) {
        u32 child = args->child_pid;
        u8 one = 1;
        targets.update(&child, &one);
    }
    return 0;
}
#endif
