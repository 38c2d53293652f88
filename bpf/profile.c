// bee: stack sampling and off-CPU accounting, compiled by bcc.
//
// Every cpu-clock sample counts one (pid, tid, cpu, exec generation, event, user stack,
// kernel stack, time bucket, thread name) key in the kernel, with a count and a weight. In
// off-CPU mode, the sched:sched_switch tracepoint adds the time each thread spent off CPU
// to the stacks it blocked in (event 1). Counts and stacks are double-buffered:
// user space flips `active`, waits for in-flight programs to finish, then drains and
// clears the idle pair, so no sample is lost or counted twice and the maps never fill
// up during long runs. Only uapi types and tracepoint format fields are used, never
// kernel-internal struct layouts, so the program builds against generic headers.
//
// One compiled program serves every option of `bee record` (so that bee can ship it
// compiled, see bee_record/bpf_load.py): nothing here is a compile-time switch.
// - Switches and numbers are read at run time from `config` (struct bee_config), which
//   user space writes right after loading; until it has, nothing counts.
// - Map sizes are the defaults below; user space sets each map's size when it creates
//   the maps (a map an option set does not use gets one entry).
// - User space loads and attaches only the programs the options use: bee_on_cpu (the
//   cpu-clock sampler), bee_on_event_tp / bee_on_event_kp (-e probes: the probe's index
//   comes as its attach cookie), the sched_switch tracepoint (off-CPU), and the
//   tail-called programs of bpf/unwind.c and bpf/python.c (appended to this file) for the
//   program types used.
//
// No kernel header is included (they cost seconds of compile time): the few
// uapi-stable layouts the program needs are declared here.

#define TASK_COMM_LEN 16

// bpf_probe_read_user under a name of bee's own: at every call site of the helper by its
// own name, bcc 0.26's front end parses all of /proc/kallsyms (a check meant for kernels
// older than 5.5), about 70 ms of CPU each. unwind.c and python.c read user memory with it.
static long (*bee_read_user)(void *dst, u32 size, const void *unsafe_ptr) =
    (void *)BPF_FUNC_probe_read_user;

// The user registers as saved on kernel entry on x86-64 (uapi asm/ptrace.h layout).
struct bee_regs {
    unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
    unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

// The context of perf-event programs (uapi linux/bpf_perf_event.h on x86-64).
struct bpf_perf_event_data {
    struct bee_regs regs;
    u64 sample_period;
    u64 addr;
};

// Default map sizes (user space sets each map's own when it creates the maps).
#define BEE_COUNTS_SIZE 40960
#define BEE_STACK_SIZE 16384
#define BEE_PROCS_SIZE 65536
#define BEE_TARGETS_SIZE 65536

#define BEE_REANNOUNCE_NS 10000000ULL
#define BEE_OFFSTACK_SIZE 16384

#define BEE_EFAULT 14
#define BEE_EVENT_CPU 0
#define BEE_EVENT_OFFCPU 1

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
    u32 event;
    s32 kernel_stack;  // id in stacksN / offstacks, -1 none, -2 lost
    s32 py_stack;      // slot in py_stacksN (bpf/python.c), -1 none, -2 lost
    u32 bucket;        // time bucket (bee_bucket), in what was padding before user_stack
    s64 user_stack;    // like kernel_stack, or with BEE_F_DWARF the key in ustacksN / offustacks
    char comm[TASK_COMM_LEN];
};

struct bee_val {
    u64 count;
    u64 weight;
};

// A thread that went off CPU: when, and the stacks it blocked in (in `offstacks`).
struct bee_off {
    u64 ts;
    struct bee_key key;
};

struct bee_proc {
    u32 gen;
    u32 announced;  // 0 not yet, 1 at the first sample, 2 again a little later
    u64 first_ns;
};

struct bee_announce {
    u32 pid;
    u32 gen;
};

// The options user space sets (see the top of this file); until it has, nothing counts.
struct bee_config {
    u64 timebase;       // bucket 0 starts here (bpf_ktime_get_ns); 0 until sampling starts
    u64 resolution_ns;  // width of the time buckets counts are kept per
    u64 cpu_weight;     // weight of one on-CPU sample (the period in ns in wall mode)
    u64 min_block_ns;   // off-CPU blocks counted: [min_block_ns, max_block_ns]
    u64 max_block_ns;
    u64 cgroup_id;      // only tasks in this cgroup v2 (or below), 0 for any
    u64 cgroup_level;   // the cgroup's level in the hierarchy
    u64 flags;          // BEE_F_*
};

// Switches in bee_config.flags (mirrored in bee_record/sampler.py).
#define BEE_F_FILTER_PIDS 1   // only count processes in `targets` (and their children)
#define BEE_F_USER 2          // collect user stacks
#define BEE_F_KERNEL 4        // collect kernel stacks
#define BEE_F_IDLE 8          // also count the idle task (pid 0)
#define BEE_F_PYTHON 16       // walk Python frames (bpf/python.c)
#define BEE_F_DWARF 32        // unwind user stacks from .eh_frame tables (bpf/unwind.c)
// (Off-CPU accounting is no switch: it runs when user space attaches sched_switch.)

BPF_HASH(counts0, struct bee_key, struct bee_val, BEE_COUNTS_SIZE);
BPF_HASH(counts1, struct bee_key, struct bee_val, BEE_COUNTS_SIZE);
BPF_STACK_TRACE(stacks0, BEE_STACK_SIZE);
BPF_STACK_TRACE(stacks1, BEE_STACK_SIZE);
BPF_ARRAY(active, u32, 1);
BPF_ARRAY(config, struct bee_config, 1);
// LRU: entries of long-gone processes make room for new ones on hosts with heavy churn.
BPF_TABLE("lru_hash", u32, struct bee_proc, procs, BEE_PROCS_SIZE);
BPF_HASH(targets, u32, u8, BEE_TARGETS_SIZE);
BPF_PERCPU_ARRAY(lost, u64, LOST_SLOTS);
BPF_PERF_OUTPUT(announce);
// Off-CPU stacks live in their own map, never cleared during the recording: a thread can
// stay blocked across many drains, so its stack id must stay valid until it wakes.
BPF_STACK_TRACE(offstacks, BEE_OFFSTACK_SIZE);
BPF_HASH(offstart, u32, struct bee_off, BEE_PROCS_SIZE);
// Program types, for the tail-call chains of the unwinder and the Python walker.
#define BEE_TAIL_PERF 0
#define BEE_TAIL_TP 1
#define BEE_TAIL_KP 2
#define BEE_PY_LINK 0  // indices in the bee_pytail_* program arrays (bpf/python.c)
#define BEE_PY_STORE 1
static __always_inline int bee_python_begin(struct bee_key *key, u64 weight, u32 buf,
                                            struct bee_regs *regs, u32 dest, u64 ts);
static __always_inline void bee_py_tail(void *ctx, int type, u32 index);
// The unwinder's tail-call chains, one per program type (see bpf/unwind.c).
BPF_PROG_ARRAY(bee_tail_perf, 1);
BPF_PROG_ARRAY(bee_tail_tp, 1);
BPF_PROG_ARRAY(bee_tail_kp, 1);
static __always_inline int bee_unwind_begin(struct bee_key *key, u64 weight, u32 buf,
                                            struct bee_regs *regs, u32 dest, u64 ts);
static __always_inline int bee_task_regs(struct bee_regs *out);
static __always_inline void bee_unwind_forget(u32 pid);

// Continue in the unwinder of this program type; returns only if the tail call failed.
static __always_inline void bee_tail(void *ctx, int type)
{
    if (type == BEE_TAIL_PERF)
        bee_tail_perf.call(ctx, 0);
    else if (type == BEE_TAIL_TP)
        bee_tail_tp.call(ctx, 0);
    else
        bee_tail_kp.call(ctx, 0);
}

static __always_inline void bee_lost(int slot)
{
    u64 *v = lost.lookup(&slot);
    if (v)
        (*v)++;
}

static __always_inline struct bee_config *bee_config(void)
{
    u32 zero = 0;
    return config.lookup(&zero);
}

// The time bucket of now: (now - timebase) / resolution, 0 before the timebase. An
// off-CPU block counts in the bucket where it ended.
static __always_inline u32 bee_bucket(void)
{
    struct bee_config *c = bee_config();
    u64 now = bpf_ktime_get_ns();
    if (!c || !c->timebase || now < c->timebase || !c->resolution_ns)
        return 0;
    return (now - c->timebase) / c->resolution_ns;
}

// Add `value` to countsN[*key], counting a loss when the map is full. One function
// per buffer: bcc rewrites map accesses by name and cannot take a map through a pointer.
static __always_inline void bee_add0(struct bee_key *key, u64 weight)
{
    key->bucket = bee_bucket();
    struct bee_val *v = counts0.lookup(key);
    if (v) {
        __sync_fetch_and_add(&v->count, 1);
        __sync_fetch_and_add(&v->weight, weight);
        return;
    }
    struct bee_val init = {.count = 1, .weight = weight};
    if (counts0.insert(key, &init) != 0) {
        v = counts0.lookup(key);
        if (v) {
            __sync_fetch_and_add(&v->count, 1);
            __sync_fetch_and_add(&v->weight, weight);
        } else {
            bee_lost(LOST_COUNTS_FULL);
        }
    }
}

static __always_inline void bee_add1(struct bee_key *key, u64 weight)
{
    key->bucket = bee_bucket();
    struct bee_val *v = counts1.lookup(key);
    if (v) {
        __sync_fetch_and_add(&v->count, 1);
        __sync_fetch_and_add(&v->weight, weight);
        return;
    }
    struct bee_val init = {.count = 1, .weight = weight};
    if (counts1.insert(key, &init) != 0) {
        v = counts1.lookup(key);
        if (v) {
            __sync_fetch_and_add(&v->count, 1);
            __sync_fetch_and_add(&v->weight, weight);
        } else {
            bee_lost(LOST_COUNTS_FULL);
        }
    }
}

static __always_inline void bee_add_buf(struct bee_key *key, u64 weight, u32 buf)
{
    if (buf)
        bee_add1(key, weight);
    else
        bee_add0(key, weight);
}

static __always_inline u32 bee_active(void)
{
    u32 zero = 0;
    u32 *which = active.lookup(&zero);
    return which && *which ? 1 : 0;
}

static __always_inline void bee_add(struct bee_key *key, u64 weight)
{
    bee_add_buf(key, weight, bee_active());
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
    // Announce at the first sample, and once more BEE_REANNOUNCE_NS later: a process
    // first sampled in its dynamic loader has not mapped its libraries yet, and a
    // short-lived one may be gone by the next drain.
    u64 now = bpf_ktime_get_ns();
    if (!p->announced || (p->announced == 1 && now - p->first_ns > BEE_REANNOUNCE_NS)) {
        if (!p->announced)
            p->first_ns = now;
        p->announced += 1;
        struct bee_announce a = {.pid = pid, .gen = p->gen};
        announce.perf_submit(ctx, &a, sizeof(a));
    }
    return p->gen;
}

// Fill the identity part of a key for the current task; returns the configuration, or 0
// to skip the task.
static __always_inline struct bee_config *bee_identity(void *ctx, struct bee_key *key)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 pid = id >> 32;
    u32 tid = (u32)id;
    struct bee_config *c = bee_config();
    if (!c || !c->resolution_ns)  // not configured yet: nothing counts
        return 0;
    if (tid == 0 && !(c->flags & BEE_F_IDLE))
        return 0;
    if ((c->flags & BEE_F_FILTER_PIDS) && !targets.lookup(&pid))
        return 0;
    if (c->cgroup_id && bpf_get_current_ancestor_cgroup_id(c->cgroup_level) != c->cgroup_id)
        return 0;
    key->pid = pid;
    key->tid = tid;
    key->cpu = bpf_get_smp_processor_id();
    key->gen = pid ? bee_generation(ctx, pid) : 0;
    bpf_get_current_comm(&key->comm, sizeof(key->comm));
    return c;
}

// Map stack-id errors: -EFAULT means "no stack of this kind" (a kernel thread has no
// user stack), anything else is a loss.
static __always_inline s32 bee_stack_result(s32 id, int slot)
{
    if (id >= 0)
        return id;
    if (id == -BEE_EFAULT)
        return -1;
    bee_lost(slot);
    return -2;
}

// Whether user stacks come from the kernel's frame-pointer walk (get_stackid) or from
// the unwinder of bpf/unwind.c.
static __always_inline int bee_fp_user(u64 flags)
{
    return (flags & (BEE_F_USER | BEE_F_DWARF)) == BEE_F_USER;
}

static __always_inline int bee_dwarf_user(u64 flags)
{
    return (flags & (BEE_F_USER | BEE_F_DWARF)) == (BEE_F_USER | BEE_F_DWARF);
}

// Count one event for the current task with its stacks from the active buffer. `regs`
// are the event's registers when they are the user's (perf event in user mode), else 0;
// `type` is the program type (BEE_TAIL_*) for the unwinder's tail call.
static __always_inline int bee_count_current(void *ctx, u32 event, u64 weight,
                                             struct bee_regs *regs, int type)
{
    struct bee_key key = {};
    struct bee_config *c = bee_identity(ctx, &key);
    if (!c)
        return 0;
    u64 flags = c->flags;
    key.event = event;
    key.user_stack = -1;
    key.kernel_stack = -1;
    key.py_stack = -1;
    u32 buf = bee_active();
    // (bcc rewrites map calls by name: one call per buffer)
    if (bee_fp_user(flags))
        key.user_stack = bee_stack_result(
            buf ? stacks1.get_stackid(ctx, BPF_F_USER_STACK)
                : stacks0.get_stackid(ctx, BPF_F_USER_STACK), LOST_USER_STACK);
    if (flags & BEE_F_KERNEL)
        key.kernel_stack = bee_stack_result(
            buf ? stacks1.get_stackid(ctx, 0) : stacks0.get_stackid(ctx, 0), LOST_KERNEL_STACK);
    struct bee_regs task_regs;
    if (bee_dwarf_user(flags) && !regs && bee_task_regs(&task_regs))
        regs = &task_regs;
    // The walker's chain stores the Python stack, then goes on as below; it ends here.
    if ((flags & BEE_F_PYTHON) && bee_python_begin(&key, weight, buf, regs, 0, 0)) {
        bee_py_tail(ctx, type, BEE_PY_LINK);
        key.py_stack = -2;  // the walker is missing: count the sample all the same
    }
    if (bee_dwarf_user(flags) && bee_unwind_begin(&key, weight, buf, regs, 0, 0)) {
        bee_tail(ctx, type);
        key.user_stack = -2;  // the unwinder is missing: count the sample all the same
        bee_lost(LOST_USER_STACK);
    }
    bee_add_buf(&key, weight, buf);
    return 0;
}

int bee_on_cpu(struct bpf_perf_event_data *ctx)
{
    struct bee_config *c = bee_config();
    u64 weight = c ? c->cpu_weight : 0;
    if ((ctx->regs.cs & 3) != 3)  // in the kernel: the task's saved user registers
        return bee_count_current(ctx, BEE_EVENT_CPU, weight, 0, BEE_TAIL_PERF);
    struct bee_regs regs = {};
    regs.ip = ctx->regs.ip;
    regs.sp = ctx->regs.sp;
    regs.bp = ctx->regs.bp;
    regs.cs = ctx->regs.cs;
    return bee_count_current(ctx, BEE_EVENT_CPU, weight, &regs, BEE_TAIL_PERF);
}

// Event probes (-e tracepoint:..., -e uprobe:..., -e uretprobe:..., -e kprobe:...): one
// program per program type, attached to every probe of its type with the probe's index as
// the attach cookie; probe i counts event 2 + i.
static u64 (*bee_attach_cookie)(void *ctx) = (void *)BPF_FUNC_get_attach_cookie;

int bee_on_event_tp(void *ctx)
{
    return bee_count_current(ctx, 2 + (u32)bee_attach_cookie(ctx), 1, 0, BEE_TAIL_TP);
}

int bee_on_event_kp(void *ctx)
{
    return bee_count_current(ctx, 2 + (u32)bee_attach_cookie(ctx), 1, 0, BEE_TAIL_KP);
}

static __always_inline void bee_offcpu_in(u32 next, u64 now);

// The task going off CPU is `current`: remember when and where it blocked. The task
// coming back gets the time since then added to those stacks. Attached in off-CPU mode
// only (user space loads it then).
TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    u32 prev = args->prev_pid;
    if (prev) {
        struct bee_off off = {};
        off.ts = now;
        struct bee_config *c = bee_identity(args, &off.key);
        if (c) {
            u64 flags = c->flags;
            off.key.event = BEE_EVENT_OFFCPU;
            off.key.user_stack = -1;
            off.key.kernel_stack = -1;
            off.key.py_stack = -1;
            if (bee_fp_user(flags))
                off.key.user_stack = bee_stack_result(
                    offstacks.get_stackid(args, BPF_F_USER_STACK), LOST_USER_STACK);
            if (flags & BEE_F_KERNEL)
                off.key.kernel_stack = bee_stack_result(offstacks.get_stackid(args, 0),
                                                        LOST_KERNEL_STACK);
            offstart.update(&prev, &off);
            // The Python walker and the unwinder replace the entry with their stacks
            // filled in; they end this program, so the thread coming in is handled first.
            bee_offcpu_in(args->next_pid, now);
            struct bee_regs *regs = 0;
            struct bee_regs task_regs;
            if (bee_dwarf_user(flags) && bee_task_regs(&task_regs))
                regs = &task_regs;
            if ((flags & BEE_F_PYTHON) && bee_python_begin(&off.key, 0, 0, regs, 1, now))
                bee_py_tail(args, BEE_TAIL_TP, BEE_PY_LINK);
            if (bee_dwarf_user(flags) && regs &&
                bee_unwind_begin(&off.key, 0, 0, regs, 1, now)) {
                bee_tail(args, BEE_TAIL_TP);
                off.key.user_stack = -2;
                bee_lost(LOST_USER_STACK);
                offstart.update(&prev, &off);
            }
            return 0;
        }
    }
    bee_offcpu_in(args->next_pid, now);
    return 0;
}

// The thread `next` comes back on CPU: add the time since it left to its stacks.
static __always_inline void bee_offcpu_in(u32 next, u64 now)
{
    struct bee_off *was = offstart.lookup(&next);
    if (!was)
        return;
    u64 delta = now - was->ts;
    struct bee_key key = was->key;
    offstart.delete(&next);
    struct bee_config *c = bee_config();
    if (!c || delta < c->min_block_ns || delta > c->max_block_ns)
        return;
    bee_add(&key, delta);
}

// A process that execs gets a new generation: its next sample announces it again so
// user space captures the new comm and maps.
TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    bee_unwind_forget(pid);
    struct bee_proc *p = procs.lookup(&pid);
    if (p) {
        p->gen++;
        p->announced = 0;
    } else {
        // Not sampled before its exec: the new image is generation 1 all the same, so
        // user space can tell pre-exec samples (e.g. of the `--` command's fork) apart.
        struct bee_proc fresh = {.gen = 1};
        procs.insert(&pid, &fresh);
    }
    return 0;
}

// A process keeps its generation until it execs or its pid is recycled. The main thread
// exiting does not end the process (its other threads run on), so nothing happens at
// exit: instead, a task created with a pid that `procs` knows starts a new generation.
// A live process's pid (its main thread's tid, kept while any of its threads runs) is
// never handed out again, so such an entry always belongs to a process that is gone.
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    u32 child = args->child_pid;
    bee_unwind_forget(child);  // unwind tables of a process that is gone
    struct bee_proc *p = procs.lookup(&child);
    if (p) {
        p->gen++;
        p->announced = 0;
    }
    struct bee_config *c = bee_config();
    if (c && (c->flags & BEE_F_FILTER_PIDS)) {
        // Children of recorded processes are recorded too (as perf does by default); a
        // recycled pid of a recorded process that is gone is not.
        u32 parent = bpf_get_current_pid_tgid() >> 32;
        if (targets.lookup(&parent)) {
            u8 one = 1;
            targets.update(&child, &one);
        } else {
            targets.delete(&child);
        }
    }
    return 0;
}
